"""Established flows: the splice (switch-over) of design note section 3, proxy death, teardown.

A flow arrives here when the handshake table has installed its four per-leg entries. From then on
the controller sees only what the data plane copies to it (FIN, RST) or what it punts (while a flow
is being reset), plus the proxy's requests and the switch's idle notifications. The order of a
splice is fixed by the design note: hold (segments carrying sequence space toward P are dropped,
pure ACKs pass, so P's sends drain; a data segment's own ACK is passed on to P by the controller,
to which the hold sends such segments), wait for P's report (a_c, b_s, a_s, b_c), then turn the
C->P and S->P entries into direct C->S and S->C ones in place and make P's own entries drop.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum

from .commands import (
    CancelTimer,
    Command,
    InstallDrop,
    InstallLeg,
    InstallPunt,
    NotifyProxy,
    ReleaseHeld,
    RemoveFlow,
    ResetFlow,
    SendSegment,
    StartTimer,
    TimerKey,
    TimerKind,
    next_generation,
    rst_for,
)
from .legs import (
    Direction,
    HandshakeFacts,
    LegParams,
    SpliceCounts,
    apply_translation,
    direct_params,
    held_ack,
    with_hold,
)
from .model import ACK, FIN, RST, SYN, EntryMatch, FlowKey, Party, SegmentIn, Side, TcpSegment, party_of
from .options import Sack
from .seqmath import HALF32, seq_add, seq_le

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SpliceConfig:
    hold_timeout: float = 5.0  # the proxy must report within this after a splice request
    linger: float = 5.0  # entries stay after a close for retransmitted FINs and final ACKs
    reset_linger: float = 3.0  # a reset flow answers stragglers with exact RSTs this long
    idle_timeout: float = 7200.0  # controller-side backstop if the switch never reports idleness
    # Data segments a hold kept from P, kept here to go on as soon as the flow is spliced (or
    # proxied again) rather than after their senders' retransmission timeouts. Past these bounds
    # a segment is simply not kept: its sender retransmits it.
    held_per_flow: int = 64
    held_total: int = 8192


class FlowState(Enum):
    PROXIED = "proxied"  # four per-leg entries, P in the path
    HOLDING = "holding"  # splice requested: payload toward P dropped, waiting for P's counts (or its cancel)
    SPLICED = "spliced"  # two direct entries, P out of the path
    LINGER = "linger"  # closed; entries kept a little for retransmissions
    RESETTING = "resetting"  # aborted; answering stragglers with exact RSTs


@dataclass(eq=False, slots=True)
class Flow:
    facts: HandshakeFacts
    legs: dict[Direction, LegParams]
    gen: int
    state: FlowState = FlowState.PROXIED
    counts: SpliceCounts | None = None
    fins: set[Party] = field(default_factory=set)  # parties that sent a FIN
    rsts: set[str] = field(default_factory=set)  # legs reset: "leg1", "leg2", or "direct"
    drops: tuple[EntryMatch, ...] = ()
    punts: tuple[EntryMatch, ...] = ()
    # Per direction toward P: (ack, window) of the last held segment's ACK passed on to P.
    held_acks: dict[Direction, tuple[int, int]] = field(default_factory=dict)
    # Data segments the hold kept from P, as they arrived, by (match, seq, length): first copy kept.
    held: dict[tuple[EntryMatch, int, int], TcpSegment] = field(default_factory=dict)

    @property
    def flow(self) -> FlowKey:
        return self.facts.flow

    def timer(self, kind: TimerKind) -> TimerKey:
        return TimerKey(self.flow, kind, self.gen)

    def matches(self) -> tuple[EntryMatch, ...]:
        return tuple(sorted({p.match for p in self.legs.values()} | set(self.drops) | set(self.punts)))


class FlowTable:
    """Flows whose legs are installed, until their entries are removed."""

    def __init__(self, config: SpliceConfig | None = None) -> None:
        self.config = config or SpliceConfig()
        self._flows: dict[FlowKey, Flow] = {}
        self._held_count = 0  # segments in every flow's ``held``
        self.stats: Counter[str] = Counter()

    def __len__(self) -> int:
        return len(self._flows)

    def __contains__(self, flow: FlowKey) -> bool:
        return flow in self._flows

    def __iter__(self) -> Iterator[Flow]:
        """The flows tracked now (a snapshot: safe against changes while iterating)."""
        return iter(list(self._flows.values()))

    def keys(self) -> list[FlowKey]:
        return list(self._flows)

    def get(self, flow: FlowKey) -> Flow | None:
        return self._flows.get(flow)

    def forget(self, flow: FlowKey) -> None:
        """Drop the record without commands (the caller removes the entries)."""
        fl = self._flows.pop(flow, None)
        if fl is not None:
            self._take_held(fl)

    def by_state(self) -> Counter[str]:
        return Counter(f.state.value for f in self._flows.values())

    # ---- adoption ------------------------------------------------------------------------------

    def adopt(self, facts: HandshakeFacts, legs: tuple[LegParams, ...],
              fins: frozenset[Party] = frozenset()) -> list[Command]:
        fl = Flow(facts, {p.direction: p for p in legs}, next_generation())
        # FINs the controller saw before the flow was its own (the switch carried it meanwhile)
        fl.fins |= fins
        if fl.flow in self._flows:
            log.warning("%s: adopted again; the earlier record is replaced", fl.flow)
        self._flows[fl.flow] = fl
        self.stats["adopted"] += 1
        return [StartTimer(fl.timer(TimerKind.IDLE), self.config.idle_timeout)]

    # ---- the splice ----------------------------------------------------------------------------

    def request_splice(self, flow: FlowKey) -> list[Command]:
        """The proxy asks to be spliced out of ``flow``: stop payload toward it, let it drain."""
        fl = self._flows.get(flow)
        if fl is None:
            return [NotifyProxy(flow, "refused", "unknown flow")]
        if fl.state is FlowState.HOLDING:
            return [NotifyProxy(flow, "holding")]  # idempotent: the proxy may ask twice
        if fl.state is not FlowState.PROXIED:
            return [NotifyProxy(flow, "refused", f"flow is {fl.state.value}")]
        if _proxy_closed(fl.fins):
            # P's own FIN consumed sequence space on one leg only; no count can describe it.
            return [NotifyProxy(flow, "refused", "flow is closing")]
        fl.state = FlowState.HOLDING
        fl.held_acks.clear()
        held = (with_hold(fl.legs[Direction.C_TO_P]), with_hold(fl.legs[Direction.S_TO_P]))
        for p in held:
            fl.legs[p.direction] = p
        self.stats["splice_requested"] += 1
        return [
            InstallLeg(flow, held),
            NotifyProxy(flow, "holding"),
            StartTimer(fl.timer(TimerKind.HOLD), self.config.hold_timeout),
        ]

    def proxy_report(self, flow: FlowKey, counts: SpliceCounts) -> list[Command]:
        """P drained and reports what it received and sent: replace the legs by direct entries."""
        fl = self._flows.get(flow)
        if fl is None:
            return [NotifyProxy(flow, "refused", "unknown flow")]
        if fl.state is not FlowState.HOLDING:
            # Without the hold, bytes could reach P after it counted them.
            return [NotifyProxy(flow, "refused", f"flow is {fl.state.value}, not holding: request a splice first")]
        if not _fins_relayed(fl.fins):
            # A FIN P took and has not passed on: spliced now, its peer would never see it.
            return [NotifyProxy(flow, "refused", FIN_NOT_PASSED_ON)]
        return [CancelTimer(fl.timer(TimerKind.HOLD))] + self._splice(fl, counts)

    def cancel_splice(self, flow: FlowKey) -> list[Command]:
        """The proxy gives up a splice it prepared (its sockets would not drain): lift the hold so
        payload reaches it again, and the flow is proxied as before the request."""
        fl = self._flows.get(flow)
        if fl is None:
            return [NotifyProxy(flow, "refused", "unknown flow")]
        if fl.state is not FlowState.HOLDING:
            return [NotifyProxy(flow, "refused", f"flow is {fl.state.value}, not holding")]
        self.stats["splice_cancelled"] += 1
        return self._unhold(fl, "cancelled by the proxy")

    def _splice(self, fl: Flow, counts: SpliceCounts) -> list[Command]:
        c2s, s2c = direct_params(fl.flow, fl.facts.ports, counts)
        proxy_matches = tuple(sorted(
            fl.legs[d].match for d in (Direction.P_TO_C, Direction.P_TO_S) if d in fl.legs
        ))
        fl.legs = {Direction.C_TO_S: c2s, Direction.S_TO_C: s2c}
        fl.drops = proxy_matches
        fl.counts = counts
        fl.state = FlowState.SPLICED
        self.stats["spliced"] += 1
        if c2s.seq_delta == 0 and s2c.seq_delta == 0:
            self.stats["spliced_verbatim"] += 1
        log.info("%s: spliced (C->S seq %+d, S->C seq %+d)", fl.flow,
                 _signed(c2s.seq_delta), _signed(s2c.seq_delta))
        # C->P and S->P have the same match as C->S and S->C: modified in place, so there is no
        # instant at which a segment of C or S misses the table. P's entries then drop.
        return [
            InstallLeg(fl.flow, (c2s, s2c)),
            InstallDrop(fl.flow, proxy_matches),
            *self._release_held(fl, "held during the splice"),
            NotifyProxy(fl.flow, "spliced"),
        ]

    # ---- events from the data plane ----------------------------------------------------------

    def on_segment(self, ev: SegmentIn) -> list[Command]:
        """A FIN or RST copy of a tracked flow, a punted segment of a flow being reset, one punted
        just before its entry was installed, or a data segment the hold kept from P (reason HELD,
        or HELD_COPY where the switch passed its ACK on)."""
        found = self.find(ev.segment)
        if found is None:
            return []
        fl, orient = found
        seg = ev.segment
        if fl.state is FlowState.RESETTING:
            if seg.is_rst or ev.reported:
                return []  # (a reported FIN has no sequence numbers to answer; its sender's next try is punted)
            to = Side.PROXY if ev.from_proxy else orient
            port = {Side.PROXY: fl.facts.ports.proxy, Side.CLIENT: fl.facts.ports.client,
                    Side.SERVER: fl.facts.ports.server}[to]
            self.stats["straggler_reset"] += 1
            return [SendSegment(fl.flow, to, port, rst_for(seg), "reset straggler")]
        out: list[Command] = []
        if ev.held and ev.copy and seg.payload and not (seg.is_fin or seg.is_rst):
            # A hold_acking entry kept this from P and passed its ACK on itself (HELD_COPY): only
            # the payload is ours, to send on once the splice is in place (or at once, if it is).
            return self._forward(fl, ev, pass_ack=False) if fl.state is not FlowState.LINGER else []
        if not ev.copy and fl.state is not FlowState.LINGER:
            # Punted before an install took effect (the switch still had the punt entry): do what
            # the entry now in place would do, rather than make the sender retransmit.
            out += self._forward(fl, ev)
            if not (seg.is_fin or seg.is_rst):
                return out
        if fl.state is FlowState.SPLICED and ev.from_proxy:
            # The proxy's sockets left the connection at the splice: their abortive close (the
            # switch drops it) says nothing about C and S, whose bytes the direct entries carry.
            self.stats["proxy_close_after_splice"] += 1
            return out
        party = party_of(orient, ev.from_proxy)
        leg = "direct" if fl.state is FlowState.SPLICED else (
            "leg1" if party in (Side.CLIENT, "p1") else "leg2"
        )
        relayed = seg.is_fin and not seg.is_rst and _fins_relayed(fl.fins | {party})
        if fl.state is FlowState.HOLDING and ev.from_proxy and (seg.is_fin or seg.is_rst) and not relayed:
            # P closed a side while draining: the splice cannot describe that; stay proxied. (A FIN
            # P relays of one its peer sent it can be: each leg's FIN took one sequence number.)
            toward = "client" if orient is Side.SERVER else "server"
            out += self._unhold(fl, f"the proxy closed a side while draining ({'RST' if seg.is_rst else 'FIN'} "
                                    f"toward the {toward})")
        if seg.is_rst:
            fl.rsts.add(leg)
        elif seg.is_fin:
            if ev.held:
                return out  # dropped by the hold: its sender retransmits it after the splice
            # A FIN that passed before the hold was in place (its copy may come after the hold
            # request) reached P, which will pass it on: it counts.
            fl.fins.add(party)
        if self._finished(fl) and fl.state is not FlowState.LINGER:
            out += self._start_linger(fl)
        return out

    def _forward(self, fl: Flow, ev: SegmentIn, pass_ack: bool = True) -> list[Command]:
        seg = ev.segment
        match = EntryMatch(ev.ingress_port, seg.src_ip, seg.src_port, seg.dst_ip, seg.dst_port)
        for params in fl.legs.values():
            if params.match == match:
                to = _side_of(fl, params.egress_port)
                out = apply_translation(params, seg)
                if out is None:
                    # Held from P: its payload stays behind (the hold's rule), its ACK goes on.
                    self._keep_held(fl, match, seg)
                    return self._pass_held_ack(fl, params, seg, to) if pass_ack else []
                self.stats["forwarded_punted"] += 1
                return [SendSegment(fl.flow, to, params.egress_port, out, "punted before install")]
        return []

    def _keep_held(self, fl: Flow, match: EntryMatch, seg: TcpSegment) -> None:
        if not seg.payload or seg.flags & (SYN | FIN | RST):
            return
        key = (match, seg.seq, len(seg.payload))
        if key in fl.held:
            return  # a retransmission of one kept already
        if len(fl.held) >= self.config.held_per_flow or self._held_count >= self.config.held_total:
            self.stats["held_not_kept"] += 1
            return
        fl.held[key] = seg
        self._held_count += 1

    def _take_held(self, fl: Flow) -> list[tuple[EntryMatch, TcpSegment]]:
        """Empty the flow's kept segments (every way out of HOLDING calls this)."""
        taken = [(key[0], seg) for key, seg in fl.held.items()]
        fl.held.clear()
        self._held_count -= len(taken)
        return taken

    def _release_held(self, fl: Flow, why: str) -> list[Command]:
        """The kept segments, through the entries now in place (sent after they are written):
        exactly what their senders' retransmissions would meet."""
        sends: list[SendSegment] = []
        for match, seg in self._take_held(fl):
            for params in fl.legs.values():
                if params.match == match:
                    out = apply_translation(params, seg)
                    if out is not None:
                        sends.append(SendSegment(fl.flow, _side_of(fl, params.egress_port), params.egress_port,
                                                 out, why))
                    break
        self.stats["held_released"] += len(sends)
        return [ReleaseHeld(fl.flow, tuple(sends))] if sends else []

    def _pass_held_ack(self, fl: Flow, params: LegParams, seg: TcpSegment, to: Side) -> list[Command]:
        ack = held_ack(params, seg)
        if ack is None:
            return []
        last = fl.held_acks.get(params.direction)
        if last is not None and seq_le(ack.ack, last[0]) and ack.window == last[1] \
                and not any(isinstance(o, Sack) for o in ack.options):
            # Nothing new for P (a burst of data all carries the same ACK): repeating it would
            # only look like duplicate ACKs to P's congestion control.
            self.stats["held_ack_repeated"] += 1
            return []
        fl.held_acks[params.direction] = (ack.ack, ack.window)
        self.stats["held_ack_passed"] += 1
        return [SendSegment(fl.flow, to, params.egress_port, ack, "held segment's ACK")]

    def find(self, seg: TcpSegment) -> tuple[Flow, Side] | None:
        for key, orient in (
            (FlowKey.from_client_segment(seg), Side.CLIENT),
            (FlowKey.from_server_segment(seg), Side.SERVER),
        ):
            fl = self._flows.get(key)
            if fl is not None:
                return fl, orient
        return None

    def _finished(self, fl: Flow) -> bool:
        if fl.state in (FlowState.SPLICED,) or "direct" in fl.rsts:
            return "direct" in fl.rsts or {Side.CLIENT, Side.SERVER} <= fl.fins
        leg1 = "leg1" in fl.rsts or {Side.CLIENT, "p1"} <= fl.fins
        leg2 = "leg2" in fl.rsts or {"p2", Side.SERVER} <= fl.fins
        return leg1 and leg2

    def _start_linger(self, fl: Flow) -> list[Command]:
        out: list[Command] = []
        if fl.state is FlowState.HOLDING:
            out.append(CancelTimer(fl.timer(TimerKind.HOLD)))
        fl.state = FlowState.LINGER
        self._take_held(fl)
        self.stats["closed"] += 1
        return out + [
            CancelTimer(fl.timer(TimerKind.IDLE)),
            StartTimer(fl.timer(TimerKind.LINGER), self.config.linger),
        ]

    def _unhold(self, fl: Flow, why: str) -> list[Command]:
        """Back to PROXIED: the hold entries become the plain C->P and S->P translations again
        (modified in place, as for the hold). Whatever the hold dropped is retransmitted by its
        sender and now reaches the proxy."""
        released = (with_hold(fl.legs[Direction.C_TO_P], False), with_hold(fl.legs[Direction.S_TO_P], False))
        for p in released:
            fl.legs[p.direction] = p
        fl.state = FlowState.PROXIED
        self.stats["splice_abandoned"] += 1
        log.info("%s: splice abandoned, proxied again: %s", fl.flow, why)
        return [
            CancelTimer(fl.timer(TimerKind.HOLD)),
            InstallLeg(fl.flow, released),
            *self._release_held(fl, "held while the splice was tried"),
            NotifyProxy(fl.flow, "proxied", why),
        ]

    def on_timer(self, timer: TimerKey) -> list[Command]:
        fl = self._flows.get(timer.flow)
        if fl is None or fl.gen != timer.gen:
            return []
        if timer.kind is TimerKind.HOLD and fl.state is FlowState.HOLDING:
            return self._unhold(fl, "no report from the proxy in time")
        if timer.kind is TimerKind.LINGER and fl.state in (FlowState.LINGER, FlowState.RESETTING):
            return self._remove(fl, "closed" if fl.state is FlowState.LINGER else "reset")
        if timer.kind is TimerKind.IDLE:
            return self.on_idle(fl.flow)
        return []

    def on_idle(self, flow: FlowKey) -> list[Command]:
        """The switch reports the flow's entries idle (or the controller's backstop fired)."""
        fl = self._flows.get(flow)
        if fl is None:
            return []
        self.stats["idle"] += 1
        if fl.state in (FlowState.LINGER, FlowState.RESETTING):
            return self._remove(fl, "idle")
        if fl.state is FlowState.SPLICED and all(p.is_identity for p in fl.legs.values()):
            # Plain forwarding: without entries the switch routes the flow exactly the same way.
            return self._remove(fl, "idle (verbatim splice)")
        # Removing translating entries would leave the ends talking past each other: reset instead.
        return self._reset(fl, "idle timeout")

    def on_proxy_down(self, proxy_port: int, quiescent: dict[FlowKey, SpliceCounts]) -> list[Command]:
        """P on ``proxy_port`` died. Flows it had nothing buffered for (``quiescent``: the counts of its
        last report, which the orchestrator vouches nothing has crossed since) are spliced on the
        spot; every other flow that still goes through P is reset toward both ends. So is a
        quiescent flow with a FIN seen: the FIN took sequence space on one leg only, which the
        counts cannot describe."""
        out: list[Command] = []
        for fl in [f for f in self._flows.values() if f.facts.ports.proxy == proxy_port]:
            if fl.state not in (FlowState.PROXIED, FlowState.HOLDING):
                continue
            counts = quiescent.get(fl.flow)
            if counts is not None and not fl.fins:
                self.stats["fail_open_spliced"] += 1
                if fl.state is FlowState.HOLDING:
                    out.append(CancelTimer(fl.timer(TimerKind.HOLD)))
                out += self._splice(fl, counts)
            else:
                out += self._reset(fl, "the proxy went down with bytes in flight")
        return out

    def _reset(self, fl: Flow, reason: str) -> list[Command]:
        """RSTs toward C and S, then linger with every entry punting so that whatever they still send
        is answered with an RST carrying its own ACK (exact, whatever P had sent them)."""
        self.stats["reset"] += 1
        log.info("%s: reset: %s", fl.flow, reason)
        f, facts = fl.flow, fl.facts
        # Best guesses of each end's RCV.NXT (exact when P has sent nothing since the last counts).
        b_c = fl.counts.b_c if fl.counts else 0
        b_s = fl.counts.b_s if fl.counts else 0
        to_c = TcpSegment(f.server_ip, f.server_port, f.client_ip, f.client_port,
                          seq=seq_add(facts.isn_s, 1 + b_c), flags=RST, window=0)
        to_s = TcpSegment(f.client_ip, f.client_port, f.server_ip, f.server_port,
                          seq=seq_add(facts.isn_c, 1 + b_s), flags=RST, window=0)
        # An ACK far outside the window makes a live end answer with its current ACK (RFC 9293
        # section 3.10.7.4), which the punt entries bring back here to be answered exactly.
        probe_c = to_c.with_(seq=seq_add(to_c.seq, HALF32 - 1), flags=ACK, ack=seq_add(facts.isn_c, 1))
        probe_s = to_s.with_(seq=seq_add(to_s.seq, HALF32 - 1), flags=ACK, ack=seq_add(facts.isn_s, 1))
        resets = (
            SendSegment(f, Side.CLIENT, facts.ports.client, to_c, "reset client"),
            SendSegment(f, Side.CLIENT, facts.ports.client, probe_c, "probe client"),
            SendSegment(f, Side.SERVER, facts.ports.server, to_s, "reset server"),
            SendSegment(f, Side.SERVER, facts.ports.server, probe_s, "probe server"),
        )
        punts = {EntryMatch.c2s(f, facts.ports.client)}
        if facts.ports.server is not None:
            punts.add(EntryMatch.s2c(f, facts.ports.server))
        fl.punts = tuple(sorted(punts))
        drops = set(fl.drops)
        drops.update(p.match for p in fl.legs.values() if p.match not in punts)
        fl.drops = tuple(sorted(drops))
        fl.legs = {}
        was_holding = fl.state is FlowState.HOLDING
        fl.state = FlowState.RESETTING
        self._take_held(fl)
        out: list[Command] = []
        if was_holding:
            out.append(CancelTimer(fl.timer(TimerKind.HOLD)))
            out.append(NotifyProxy(f, "reset", reason))
        out += [
            CancelTimer(fl.timer(TimerKind.IDLE)),
            InstallPunt(f, fl.punts),
        ]
        if fl.drops:
            out.append(InstallDrop(f, fl.drops))
        out += [
            ResetFlow(f, resets, reason),
            StartTimer(fl.timer(TimerKind.LINGER), self.config.reset_linger),
        ]
        return out

    def reset(self, flow: FlowKey, reason: str = "operator") -> list[Command]:
        fl = self._flows.get(flow)
        return self._reset(fl, reason) if fl is not None and fl.state is not FlowState.RESETTING else []

    def _remove(self, fl: Flow, reason: str) -> list[Command]:
        del self._flows[fl.flow]
        self._take_held(fl)
        self.stats["removed"] += 1
        return [
            CancelTimer(fl.timer(TimerKind.IDLE)),
            CancelTimer(fl.timer(TimerKind.LINGER)),
            RemoveFlow(fl.flow, fl.matches(), reason),
        ]


#: Why a report is refused while a FIN P took has not been seen leaving P (its copy may be on its way).
FIN_NOT_PASSED_ON = "flow is closing: a FIN the proxy has not passed on"


def _proxy_closed(fins: set[Party]) -> bool:
    """P sent a FIN that is not the relay of its peer's: P closed on its own."""
    return ("p1" in fins and Side.SERVER not in fins) or ("p2" in fins and Side.CLIENT not in fins)


def _fins_relayed(fins: set[Party]) -> bool:
    """Whether every FIN seen took a sequence number on both legs of its direction: S's with P's
    toward C ("p1"), C's with P's toward S ("p2"). Then the byte counts describe the flow (each side
    of each direction consumed one more number) and a splice keeps the arithmetic."""
    return (Side.SERVER in fins) == ("p1" in fins) and (Side.CLIENT in fins) == ("p2" in fins)


def _side_of(fl: Flow, egress_port: int | None) -> Side:
    """Who an entry of ``fl`` that sends out of ``egress_port`` sends to."""
    return {fl.facts.ports.client: Side.CLIENT, fl.facts.ports.server: Side.SERVER}.get(egress_port, Side.PROXY)


def _signed(d: int) -> int:
    return d - (1 << 32) if d >= HALF32 else d
