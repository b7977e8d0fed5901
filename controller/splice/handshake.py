"""Claim 1's handshake as a state machine per flow, and the table that bounds pending handshakes.

The switch lets C's SYN and S's SYN-ACK pass end to end and gives the controller a copy (design
note section 1). From those the controller builds the proxy's two legs: it replays C's SYN toward
P (the claim's second request), completes leg 1 with C's own ACK, answers P's upstream SYN as S
would, and installs the four per-leg entries. Everything is expressed as commands (commands.py);
nothing here does I/O or reads a clock.

Segments that arrive while a leg is being made are held and released in order once it exists.
Failures before leg 1 carries any byte fail open (the connection simply runs end to end without
P) when configured so; after that they are resets, never silent corruption.
"""

from __future__ import annotations

import logging
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from enum import Enum

from ..lograte import RateLimitedLog
from .commands import (
    CancelTimer,
    Command,
    FlowEstablished,
    InstallLeg,
    InstallPunt,
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
    HandshakeFacts,
    LegParams,
    SpliceCounts,
    apply_translation,
    direct_params,
    leg1_params,
    leg2_params,
    proxy_disagreements,
)
from .model import ACK, RST, SYN, EntryMatch, FlowKey, Party, Ports, SegmentIn, Side, TcpSegment, party_of
from .options import Negotiated, SynOptions, Timestamps, find, negotiate
from .pending import BySource
from .seqmath import seq_add
from .switchrun import SwitchState, SwitchStep

log = logging.getLogger(__name__)
# per-flow lines: a SYN flood must not write one per SYN (controller/lograte.py)
_lines = RateLimitedLog(log)


@dataclass(frozen=True)
class HandshakeConfig:
    max_pending: int = 10_000  # handshakes in progress (a SYN flood cannot grow past this)
    syn_timeout: float = 30.0  # C's SYN seen, S has not answered
    ack_timeout: float = 10.0  # S answered, C's ACK (or P's SYN-ACK) still missing
    upstream_timeout: float = 30.0  # leg 1 is up, P has not opened its upstream leg
    proxy_ack_timeout: float = 5.0  # S's side answered P's upstream SYN, P has not ACKed
    proxy_rto: float = 1.0  # first re-send of the second request (doubles each time)
    proxy_syn_tries: int = 4  # sends of the second request before the proxy is deemed silent
    max_held_segments: int = 64  # per flow and direction; beyond, segments are dropped (senders retransmit)
    max_held_bytes: int = 256 * 1024  # per flow
    max_held_bytes_total: int = 64 * 1024 * 1024  # over all pending handshakes
    reset_linger: float = 3.0  # a reset flow answers stragglers with exact RSTs this long
    explicit_punt: bool = True  # False: the data plane punts service flows without entries itself
    fail_open: bool = True  # a proxy failing before leg 1 carries data: run end to end (else reset)
    # How long the switch keeps a slot nobody writes (HS_TIMEOUT_US): the deadlines of a handshake
    # the switch runs end before its slot can lapse, so its segments never meet neither slot nor entry.
    slot_lifetime: float = 5.0


class HsState(Enum):
    SYN_SEEN = "syn_seen"  # C's SYN learnt; waiting for S's SYN-ACK
    PROXY_SYN_SENT = "proxy_syn_sent"  # second request sent; waiting for P's SYN-ACK and C's ACK
    LEG1_UP = "leg1_up"  # leg 1 installed; waiting for P's upstream SYN
    UPSTREAM_SYN_ACKED = "upstream_syn_acked"  # answered P's upstream SYN; waiting for its ACK
    RESETTING = "resetting"  # aborted; answering stragglers with RSTs until the linger ends


@dataclass(eq=False, slots=True)
class Handshake:
    """Mutable per-flow state of one handshake (owned by the table)."""

    flow: FlowKey
    gen: int
    ports: Ports
    syn_c: TcpSegment
    opts_c: SynOptions
    state: HsState = HsState.SYN_SEEN
    syn_ack_s: TcpSegment | None = None
    opts_s: SynOptions | None = None
    negotiated: Negotiated | None = None
    c_ack: TcpSegment | None = None  # C's handshake ACK, payload stripped
    isn_p1: int | None = None
    opts_p1: SynOptions | None = None
    isn_p2: int | None = None
    opts_p2: SynOptions | None = None
    proxy_syn_sends: int = 0
    leg1: tuple[LegParams, LegParams] | None = None
    held_c: list[TcpSegment] = field(default_factory=list)
    held_s: list[TcpSegment] = field(default_factory=list)
    held_bytes: int = 0
    c_next: int = 0  # next sequence number C will send, as far as the controller saw
    punts: set[EntryMatch] = field(default_factory=set)
    switch_run: bool = False  # the switch runs this handshake (digests); the controller mirrors it
    fins: set[Party] = field(default_factory=set)  # FIN copies seen before the flow was established
    from_switch: bool = False  # it began in the switch (a slot may still answer for it)

    @property
    def isn_c(self) -> int:
        return self.syn_c.seq

    @property
    def isn_s(self) -> int:
        assert self.syn_ack_s is not None
        return self.syn_ack_s.seq

    @property
    def verified(self) -> bool:
        """C answered S's SYN-ACK: its address is real (the proof SYN cookies rely on)."""
        return self.c_ack is not None

    def timer(self, kind: TimerKind) -> TimerKey:
        return TimerKey(self.flow, kind, self.gen)

    def matches(self) -> tuple[EntryMatch, ...]:
        out = set(self.punts)
        if self.leg1 is not None:
            out.update(p.match for p in self.leg1)
        return tuple(sorted(out))

    def facts(self) -> HandshakeFacts:
        assert self.negotiated is not None and self.isn_p1 is not None and self.opts_p1 is not None
        return HandshakeFacts(
            flow=self.flow, ports=self.ports, isn_c=self.isn_c, isn_s=self.isn_s,
            isn_p1=self.isn_p1, isn_p2=self.isn_p2 if self.isn_p2 is not None else 0,
            negotiated=self.negotiated, proxy_leg1=self.opts_p1,
            proxy_leg2=self.opts_p2 if self.opts_p2 is not None else SynOptions(),
            tsval_c_ack=_tsval(self.c_ack),
        )


def _tsval(seg: TcpSegment | None) -> int | None:
    ts = find(seg.options, Timestamps) if seg is not None else None
    return ts.tsval if isinstance(ts, Timestamps) else None


def _leg1_ack(hs: Handshake) -> TcpSegment:
    """The ACK completing leg 1: C's own ACK through the C->P entry, echoing P's SYN-ACK TSval.

    Translated, C's TSecr (the TSval of the S SYN-ACK it took) + T1 is P's SYN-ACK TSval only if
    C took S's *first* SYN-ACK. After a retransmitted one (the first lost on C's side of the
    switch) it is later than anything P sent, and Linux (RFC 7323 section 5.2, since 6.x) refuses
    an ACK in SYN-RECV whose TSecr is not one of its SYN-ACKs' TSvals: P stayed in SYN-RECV and
    dropped C's first flight, which C resent only after its 3 s post-SYN-retransmission RTO."""
    assert hs.leg1 is not None and hs.c_ack is not None and hs.opts_p1 is not None
    ack = apply_translation(hs.leg1[0], hs.c_ack)
    assert ack is not None
    ts, p_tsval = find(ack.options, Timestamps), hs.opts_p1.tsval
    if isinstance(ts, Timestamps) and p_tsval is not None:
        ack = ack.with_(options=tuple(Timestamps(ts.tsval, p_tsval) if o is ts else o for o in ack.options))
    return ack


class HandshakeTable:
    """All pending handshakes, bounded; the entry point for their events.

    Pending handshakes are kept in two insertion-ordered maps: *unverified* (C has not ACKed S's
    SYN-ACK: possibly a spoofed SYN) and *verified*. When the bound is reached a new SYN evicts an
    unverified handshake: the oldest of the client address holding the most when that address
    holds many (a flooding host), else the oldest of all (pending.py); if every pending handshake is verified, the
    new SYN is refused. So a flood of SYNs only ever displaces other unanswered SYNs, a flood from
    few addresses its own first, and a client that completes its handshake is never displaced.
    """

    def __init__(self, config: HandshakeConfig | None = None) -> None:
        self.config = config or HandshakeConfig()
        if self.config.max_pending < 1:
            raise ValueError("max_pending must be at least 1")
        # by client address: at the bound, the source holding the most gives one up (pending.py)
        self._unverified: BySource[FlowKey, Handshake] = BySource(lambda flow: flow.client_ip)
        self._verified: OrderedDict[FlowKey, Handshake] = OrderedDict()
        self._resetting: OrderedDict[FlowKey, Handshake] = OrderedDict()
        # bypassed handshakes of the switch's: their pass-through entries outlive its slot
        self._passing: OrderedDict[FlowKey, Handshake] = OrderedDict()
        self.held_bytes_total = 0
        self.stats: Counter[str] = Counter()

    # ---- lookup ------------------------------------------------------------------------------

    def __len__(self) -> int:
        """Pending handshakes (lingering resets not included)."""
        return len(self._unverified) + len(self._verified)

    def __contains__(self, flow: FlowKey) -> bool:
        return self.get(flow) is not None

    def get(self, flow: FlowKey) -> Handshake | None:
        return self._unverified.get(flow) or self._verified.get(flow) or self._resetting.get(flow)

    def is_passing(self, flow: FlowKey) -> bool:
        """A bypassed handshake of the switch's, whose pass-through entries are still in."""
        return flow in self._passing

    def flows(self) -> list[FlowKey]:
        return [*self._unverified, *self._verified, *self._resetting, *self._passing]

    def find(self, ev: SegmentIn) -> tuple[Handshake, Side] | None:
        """The handshake a segment belongs to and the orientation it travels in (CLIENT: client to
        server; SERVER: server to client), or None."""
        seg = ev.segment
        for key, orient in (
            (FlowKey.from_client_segment(seg), Side.CLIENT),
            (FlowKey.from_server_segment(seg), Side.SERVER),
        ):
            hs = self.get(key)
            if hs is not None:
                return hs, orient
        return None

    # ---- events ------------------------------------------------------------------------------

    def on_segment(self, ev: SegmentIn) -> list[Command]:
        seg = ev.segment
        found = self.find(ev)
        if found is None:
            if seg.is_syn and not ev.from_proxy:
                return self._new(ev)
            self.stats["unmatched"] += 1
            log.debug("segment of no pending handshake: %s", seg)
            return []
        hs, orient = found
        if hs.state is HsState.RESETTING:
            return [] if ev.reported else self._answer_with_rst(hs, ev)
        if hs.switch_run and ev.declined:
            return self._take_over(hs) + self._dispatch(hs, orient, ev)
        if (hs.from_switch or hs.leg1 is not None) and ev.copy and ev.segment.is_fin and not ev.segment.is_rst:
            # A FIN the switch forwarded (a leg's entry, or the slot of a handshake it runs)
            # before the flow was established: nothing to send, but the flow must know it.
            if not ev.held:
                hs.fins.add(party_of(orient, ev.from_proxy))
            return []
        return self._dispatch(hs, orient, ev)

    def _dispatch(self, hs: Handshake, orient: Side, ev: SegmentIn) -> list[Command]:
        seg = ev.segment
        if ev.from_proxy:
            return self._from_proxy(hs, ev, orient)
        if orient is Side.CLIENT:
            if seg.is_syn:
                return self._client_syn(hs, ev)
            if seg.is_syn_ack:
                return self._simultaneous_open(hs, ev)
            return self._client_segment(hs, ev)
        if seg.is_syn_ack:
            return self._server_syn_ack(hs, ev)
        if seg.is_syn:
            return self._simultaneous_open(hs, ev)
        return self._server_segment(hs, ev)

    def on_timer(self, timer: TimerKey) -> list[Command]:
        passing = self._passing.get(timer.flow)
        if passing is not None and passing.gen == timer.gen and timer.kind is TimerKind.LINGER:
            del self._passing[timer.flow]
            return [RemoveFlow(passing.flow, passing.matches(), "the switch's slot has lapsed")]
        hs = self.get(timer.flow)
        if hs is None or hs.gen != timer.gen:
            return []  # a timer of a handshake that has since ended or restarted
        if timer.kind is TimerKind.LINGER and hs.state is HsState.RESETTING:
            self._forget(hs)
            return [RemoveFlow(hs.flow, hs.matches(), "reset linger over")]
        if timer.kind is TimerKind.PROXY_RETRY and hs.state is HsState.PROXY_SYN_SENT and hs.isn_p1 is None:
            if hs.proxy_syn_sends < self.config.proxy_syn_tries:
                self.stats["proxy_syn_resent"] += 1
                return self._send_proxy_syn(hs)
            return self._proxy_failed(hs, "the proxy did not answer the second request")
        if timer.kind is TimerKind.HANDSHAKE:
            self.stats[f"timeout_{hs.state.value}"] += 1
            if hs.state is HsState.SYN_SEEN:
                self._forget(hs)
                return [RemoveFlow(hs.flow, hs.matches(), "no answer from the server")]
            if hs.state is HsState.PROXY_SYN_SENT:
                if hs.c_ack is None:
                    # The switch lets another SYN take such a handshake's slot after a second
                    # (HS_ACK_WAIT_US) and routes a late ACK of its client on to S: S is left to
                    # complete with it end to end; P's leg is the proxy's alone, reset.
                    return self._abort(hs, "the client never acknowledged", reset_client=False,
                                       reset_server=not hs.switch_run)
                return self._proxy_failed(hs, "the proxy did not answer the second request")
            return self._abort(hs, f"proxy leg not completed ({hs.state.value})")
        return []

    def on_switch_step(self, step: SwitchStep) -> list[Command]:
        """A digest of a handshake the switch runs: mirror it, and install each leg's entries when
        the switch says the leg is up (docs/dataplane.md, "The switch's handshake")."""
        self.stats[f"switch_{step.state.name.lower()}"] += 1
        if not SwitchState.SYN_ACKED <= step.state <= SwitchState.LEG2_UP or step.flow in self._passing:
            return []
        if step.ports.server is None or not step.ports.proxy or (step.state >= SwitchState.LEG1_UP and not step.c_acked):
            # Not a step the switch's handshake makes (a digest from another program, or garbage):
            # no leg can be built on it.
            self.stats["switch_step_inconsistent"] += 1  # counted, not logged one by one: a flood of them
            log.debug("%s: a digest of state %s without what that state has learnt: ignored", step.flow,
                      step.state.name)
            return []
        hs = self.get(step.flow)
        out: list[Command] = []
        if hs is None:
            hs, out = self._mirror(step)
            if hs is None:
                return out
        elif not hs.from_switch or hs.state is HsState.RESETTING or hs.isn_c != step.isn_c:
            self.stats["switch_step_ignored"] += 1  # the controller's own, or an earlier incarnation
            return []
        return out + self._advance(hs, step)

    def _mirror(self, step: SwitchStep) -> tuple[Handshake | None, list[Command]]:
        out: list[Command] = []
        if len(self) >= self.config.max_pending:
            if not self._unverified:
                # The switch carries on alone; a later digest of this flow may find room.
                self.stats["switch_not_mirrored"] += 1
                return None, []
            out += self._evict_one()
        opts_c, opts_s = step.opts_c, step.opts_s
        hs = Handshake(
            flow=step.flow, gen=next_generation(), ports=step.ports, syn_c=step.syn_c(), opts_c=opts_c,
            state=HsState.PROXY_SYN_SENT, syn_ack_s=step.syn_ack_s(), opts_s=opts_s,
            negotiated=negotiate(opts_c, opts_s), c_next=seq_add(step.isn_c, 1), proxy_syn_sends=1,
            switch_run=True, from_switch=True,
        )
        self._unverified[step.flow] = hs
        # No re-send timer for the second request while the switch runs the handshake: it absorbs
        # P's answer, of which the controller hears only with leg 1 up, so silence is no sign of
        # a loss, and under a SYN flood each re-send would be a packet-out per spoofed SYN. One
        # really lost ends at the stage's deadline, open; a handshake taken over gets the timer.
        out.append(self._stage_timer(hs, self.config.ack_timeout))
        return hs, out

    def _advance(self, hs: Handshake, step: SwitchStep) -> list[Command]:
        """Take what ``step`` adds to the mirror, and do the controller's part of it."""
        assert hs.negotiated is not None
        out: list[Command] = []
        if step.c_acked:
            hs.c_ack = step.c_ack(hs.negotiated.timestamps)
            self._verify(hs)
        if step.state >= SwitchState.P1_KNOWN and hs.isn_p1 is None:
            hs.isn_p1, hs.opts_p1 = step.isn_p1, step.opts_p1
            out.append(CancelTimer(hs.timer(TimerKind.PROXY_RETRY)))
        if not hs.switch_run:
            # Handed over meanwhile: the controller completes what the switch had not.
            if hs.state is HsState.PROXY_SYN_SENT and hs.isn_p1 is not None and hs.c_ack is not None:
                out += self._complete_leg1(hs)
            return out
        if step.state >= SwitchState.LEG1_UP and hs.leg1 is None:
            out += self._complete_leg1(hs)
        if step.state is SwitchState.LEG2_UP:
            hs.isn_p2, hs.opts_p2 = step.isn_p2, step.opts_p2
            hs.state = HsState.UPSTREAM_SYN_ACKED
            out += self._complete_leg2(hs, None)
        return out

    def _take_over(self, hs: Handshake) -> list[Command]:
        """The switch hands the handshake over (reason DECLINED): from now on it is the
        controller's, with the punt entries its own handshakes have, under any leg entries."""
        hs.switch_run = False
        self.stats["switch_declined"] += 1
        new: set[EntryMatch] = set()
        if hs.ports.server is not None:
            new.add(EntryMatch.s2c(hs.flow, hs.ports.server))
        if hs.ports.proxy is not None:
            new.add(EntryMatch.c2s(hs.flow, hs.ports.proxy))
        if hs.leg1 is None:
            new.add(EntryMatch.c2s(hs.flow, hs.ports.client))
        new -= hs.punts
        hs.punts |= new
        out: list[Command] = [InstallPunt(hs.flow, tuple(sorted(new)))] if new else []
        if hs.state is HsState.PROXY_SYN_SENT and hs.isn_p1 is None:
            out.append(StartTimer(hs.timer(TimerKind.PROXY_RETRY), self.config.proxy_rto))
        return out

    def _stage_timer(self, hs: Handshake, seconds: float) -> StartTimer:
        """The deadline of a handshake stage; while the switch runs it, before its slot lapses."""
        if hs.switch_run:
            seconds = min(seconds, 0.8 * self.config.slot_lifetime)
        return StartTimer(hs.timer(TimerKind.HANDSHAKE), seconds)

    def on_proxy_down(self, proxy_port: int) -> list[Command]:
        """P on ``proxy_port`` died: its pending handshakes fail (open where no byte went through P)."""
        out: list[Command] = []
        for hs in [h for h in (*self._unverified.values(), *self._verified.values()) if h.ports.proxy == proxy_port]:
            out += self._proxy_failed(hs, "the proxy went down")
        return out

    # ---- C's SYN -------------------------------------------------------------------------------

    def _new(self, ev: SegmentIn) -> list[Command]:
        seg = ev.segment
        flow = FlowKey.from_client_segment(seg)
        if seg.payload:
            # Data on a SYN (TCP Fast Open) was accepted or refused by S, not by P: the proxy cannot
            # replay it faithfully, so the connection is not proxied.
            self.stats["not_proxied_syn_data"] += 1
            return [SendSegment(flow, Side.SERVER, None, seg, "SYN not proxied")] if not ev.copy else []
        if ev.proxy_port is None:
            self.stats["not_proxied_no_proxy"] += 1
            return [SendSegment(flow, Side.SERVER, None, seg, "SYN not proxied")] if not ev.copy else []
        out: list[Command] = []
        if len(self) >= self.config.max_pending:
            if not self._unverified:
                # Every pending handshake is a real client: keep them, refuse the newcomer. The
                # SYN already went to S (the switch forwards it), so S is told to drop it.
                self.stats["refused"] += 1
                rst = TcpSegment(seg.src_ip, seg.src_port, seg.dst_ip, seg.dst_port,
                                 seq=seq_add(seg.seq, 1), flags=RST, window=0)
                return [SendSegment(flow, Side.SERVER, None, rst, "pending handshakes full")]
            out += self._evict_one()
        hs = Handshake(
            flow=flow, gen=next_generation(), ports=Ports(client=ev.ingress_port, proxy=ev.proxy_port),
            syn_c=seg, opts_c=SynOptions.from_options(seg.options), c_next=seq_add(seg.seq, 1),
        )
        self._unverified[flow] = hs
        self.stats["syn"] += 1
        if self.config.explicit_punt:
            # S's SYN-ACK too: then it reaches the controller by this entry, whatever the services
            # entry does meanwhile (draining lets a SYN-ACK of no entry pass unseen).
            matches = [EntryMatch.c2s(flow, ev.ingress_port)]
            if ev.server_port is not None:
                matches.append(EntryMatch.s2c(flow, ev.server_port))
            hs.punts.update(matches)
            out.append(InstallPunt(flow, tuple(matches)))
        if not ev.copy:
            out.append(SendSegment(flow, Side.SERVER, None, seg, "C's SYN"))
        out.append(StartTimer(hs.timer(TimerKind.HANDSHAKE), self.config.syn_timeout))
        return out

    def _client_syn(self, hs: Handshake, ev: SegmentIn) -> list[Command]:
        seg = ev.segment
        if seg.seq == hs.isn_c:
            # A retransmission: nothing new to learn; it still has to reach S if it was punted.
            self.stats["syn_retransmit"] += 1
            if ev.copy:
                return []
            return [SendSegment(hs.flow, Side.SERVER, hs.ports.server, seg, "C's SYN (again)")]
        # Same 4-tuple, another ISN: C gave up on the earlier attempt. Drop what the proxy has of
        # it and start over, keeping the flow's place in the table bounded as before.
        self.stats["syn_new_isn"] += 1
        out = self._proxy_resets(hs)
        out.append(CancelTimer(hs.timer(TimerKind.HANDSHAKE)))
        out.append(CancelTimer(hs.timer(TimerKind.PROXY_RETRY)))
        self._forget(hs)
        out.append(RemoveFlow(hs.flow, hs.matches(), "restarted by a new SYN"))
        return out + self._new(ev)

    # ---- S's SYN-ACK -----------------------------------------------------------------------------

    def _server_syn_ack(self, hs: Handshake, ev: SegmentIn) -> list[Command]:
        seg = ev.segment
        out: list[Command] = []
        if not ev.copy:
            out.append(SendSegment(hs.flow, Side.CLIENT, hs.ports.client, seg, "S's SYN-ACK"))
        if seg.ack != seq_add(hs.isn_c, 1):
            self.stats["syn_ack_stale"] += 1
            _lines(logging.INFO, "syn-ack ignored", "%s: SYN-ACK acks %d, not ISN_c+1: ignored", hs.flow, seg.ack)
            return out
        if hs.syn_ack_s is not None:
            if seg.seq == hs.isn_s:
                self.stats["syn_ack_retransmit"] += 1
                return out
            self.stats["syn_ack_new_isn"] += 1
            if hs.c_ack is not None:
                # C already took the first SYN-ACK, and keeps it (it answers this one with a
                # challenge ACK). A server answers so when its SYN queue filled and a retransmitted
                # SYN got a syncookie: its first request, with the ISN C acknowledged, still stands
                # and takes the handshake's ACK. If it does not, S resets that ACK and the flow ends
                # on the RST. Resetting here would kill connections that work.
                self.stats["syn_ack_new_isn_ignored"] += 1
                _lines(logging.INFO, "syn-ack ignored", "%s: SYN-ACK with ISN %d after C acknowledged ISN %d: ignored",
                       hs.flow, seg.seq, hs.isn_s)
                return out
            # S restarted its answer before C took it: the proxy's leg 1 was built on the old ISN.
            out += self._proxy_resets(hs)
            hs.isn_p1 = hs.opts_p1 = None
            hs.proxy_syn_sends = 0
        hs.syn_ack_s = seg
        hs.opts_s = SynOptions.from_options(seg.options)
        hs.negotiated = negotiate(hs.opts_c, hs.opts_s)
        hs.ports = Ports(client=hs.ports.client, server=ev.ingress_port, proxy=hs.ports.proxy)
        hs.state = HsState.PROXY_SYN_SENT
        if self.config.explicit_punt:
            new = {EntryMatch.s2c(hs.flow, ev.ingress_port)}
            assert hs.ports.proxy is not None
            new.add(EntryMatch.c2s(hs.flow, hs.ports.proxy))  # P's ACK on leg 2 must stop here
            new -= hs.punts
            if new:
                hs.punts |= new
                out.append(InstallPunt(hs.flow, tuple(sorted(new))))
        out.append(StartTimer(hs.timer(TimerKind.HANDSHAKE), self.config.ack_timeout))
        return out + self._send_proxy_syn(hs)

    def _send_proxy_syn(self, hs: Handshake) -> list[Command]:
        """The claim's second request: a SYN from C to S with ISN_c and C's side of N, to P."""
        assert hs.negotiated is not None
        syn = TcpSegment(
            hs.flow.client_ip, hs.flow.client_port, hs.flow.server_ip, hs.flow.server_port,
            seq=hs.isn_c, ack=0, flags=SYN, window=hs.syn_c.window,
            options=hs.negotiated.client_side().to_options(),
        )
        hs.proxy_syn_sends += 1
        rto = self.config.proxy_rto * (2 ** (hs.proxy_syn_sends - 1))
        return [
            SendSegment(hs.flow, Side.PROXY, hs.ports.proxy, syn, "second request"),
            StartTimer(hs.timer(TimerKind.PROXY_RETRY), rto),
        ]

    # ---- segments from C and S while legs are being made ---------------------------------------------

    def _client_segment(self, hs: Handshake, ev: SegmentIn) -> list[Command]:
        seg = ev.segment
        if ev.ingress_port != hs.ports.client:
            self.stats["wrong_port"] += 1
            return []
        if seg.is_rst:
            out: list[Command] = [SendSegment(hs.flow, Side.SERVER, hs.ports.server, seg, "C's RST")]
            return (out if not ev.copy else []) + self._abort(hs, "client reset", reset_client=False,
                                                               reset_server=False)
        if hs.state is HsState.SYN_SEEN:
            self.stats["client_early"] += 1
            return []
        if hs.leg1 is not None:
            # Leg 1 exists: this segment crossed its install. Do what the C->P entry would.
            return self._translate_and_send(hs, hs.leg1[0], seg, Side.PROXY, hs.ports.proxy)
        out = []
        if hs.switch_run:
            # Early data the switch passed up to be held: it has sent C's ACK on itself, and
            # completes leg 1 itself (its digest says when).
            if hs.c_ack is None and seg.has_ack and seg.ack == seq_add(hs.isn_s, 1):
                hs.c_ack = seg.ack_only()
                self._verify(hs)
            return self._hold(hs, seg, from_client=True) if seg.seq_len else []
        if hs.c_ack is None:
            if not (seg.has_ack and seg.ack == seq_add(hs.isn_s, 1) and seg.seq == seq_add(hs.isn_c, 1)):
                self.stats["client_bad_ack"] += 1
                return []
            hs.c_ack = seg.ack_only()
            self._verify(hs)
            # C's ACK completes C-S at S; it goes on without payload (that belongs to P).
            out.append(SendSegment(hs.flow, Side.SERVER, hs.ports.server, hs.c_ack, "C's ACK"))
        if seg.seq_len:
            out += self._hold(hs, seg, from_client=True)
        if hs.isn_p1 is not None:
            out += self._complete_leg1(hs)
        return out

    def _server_segment(self, hs: Handshake, ev: SegmentIn) -> list[Command]:
        seg = ev.segment
        if hs.ports.server is not None and ev.ingress_port != hs.ports.server:
            self.stats["wrong_port"] += 1
            return []
        if seg.is_rst:
            # S refuses (or aborts): C hears it from S, P's legs are reset with it.
            self.stats["server_reset"] += 1
            out: list[Command] = []
            if not ev.copy:
                out.append(SendSegment(hs.flow, Side.CLIENT, hs.ports.client, seg, "S's RST"))
            return out + self._abort(hs, "server reset", reset_client=False, reset_server=False)
        if hs.state is HsState.SYN_SEEN:
            self.stats["server_early"] += 1
            return []
        # S's banner of a server-first protocol, or a pure ACK: wait for leg 2 (S->P).
        return self._hold(hs, seg, from_client=False)

    def _hold(self, hs: Handshake, seg: TcpSegment, *, from_client: bool) -> list[Command]:
        queue = hs.held_c if from_client else hs.held_s
        size = len(seg.payload)
        if (
            len(queue) >= self.config.max_held_segments
            or hs.held_bytes + size > self.config.max_held_bytes
            or self.held_bytes_total + size > self.config.max_held_bytes_total
        ):
            # Nothing of it was acknowledged: its sender retransmits once the leg exists.
            self.stats["held_dropped"] += 1
            return []
        queue.append(seg)
        hs.held_bytes += size
        self.held_bytes_total += size
        if from_client:
            end = seq_add(seg.seq, seg.seq_len)
            if (end - hs.c_next) & 0xFFFFFFFF < 1 << 31:
                hs.c_next = end
        self.stats["held"] += 1
        return []

    def _drain(self, hs: Handshake, queue: list[TcpSegment]) -> list[TcpSegment]:
        out = list(queue)
        for seg in queue:
            hs.held_bytes -= len(seg.payload)
            self.held_bytes_total -= len(seg.payload)
        queue.clear()
        return out

    # ---- the proxy's side ------------------------------------------------------------------------

    def _from_proxy(self, hs: Handshake, ev: SegmentIn, orient: Side) -> list[Command]:
        seg = ev.segment
        if hs.ports.proxy is not None and ev.ingress_port != hs.ports.proxy:
            self.stats["wrong_port"] += 1
            return []
        if seg.is_rst:
            self.stats["proxy_reset"] += 1
            return self._proxy_failed(hs, "the proxy reset a leg")
        if orient is Side.SERVER:  # leg 1: P speaking as S toward C
            if seg.is_syn_ack:
                return self._proxy_syn_ack(hs, ev)
            if hs.leg1 is not None and not seg.flags & SYN:
                return self._translate_and_send(hs, hs.leg1[1], seg, Side.CLIENT, hs.ports.client)
            self.stats["proxy_early"] += 1
            return []
        # leg 2: P speaking as C toward S
        if seg.is_syn:
            return self._proxy_upstream_syn(hs, ev)
        if hs.state is HsState.UPSTREAM_SYN_ACKED and seg.has_ack and not seg.flags & SYN:
            return self._complete_leg2(hs, seg)
        self.stats["proxy_early"] += 1
        return []

    def _proxy_syn_ack(self, hs: Handshake, ev: SegmentIn) -> list[Command]:
        seg = ev.segment
        if hs.state is not HsState.PROXY_SYN_SENT or seg.ack != seq_add(hs.isn_c, 1):
            if hs.leg1 is not None and hs.c_ack is not None and seg.seq == hs.isn_p1:
                # P did not get our ACK of leg 1 and re-sent its SYN-ACK: ACK it again.
                return [SendSegment(hs.flow, Side.PROXY, hs.ports.proxy, _leg1_ack(hs), "leg 1 ACK (again)")]
            self.stats["proxy_syn_ack_stale"] += 1
            return []
        if hs.isn_p1 is not None and seg.seq == hs.isn_p1:
            self.stats["proxy_syn_ack_retransmit"] += 1
            return []
        hs.isn_p1 = seg.seq
        hs.opts_p1 = SynOptions.from_options(seg.options)
        assert hs.negotiated is not None
        problems = proxy_disagreements(hs.negotiated, hs.opts_p1, SynOptions(tsval=0))
        out: list[Command] = [CancelTimer(hs.timer(TimerKind.PROXY_RETRY))]
        if problems:
            return out + self._proxy_failed(hs, problems[0])
        if hs.c_ack is not None:
            out += self._complete_leg1(hs)
        return out

    def _complete_leg1(self, hs: Handshake) -> list[Command]:
        """C's ACK and P's SYN-ACK are both in: install C->P and P->C, ACK P, release C's data."""
        assert hs.c_ack is not None
        c2p, p2c = leg1_params(hs.facts())
        hs.leg1 = (c2p, p2c)
        hs.state = HsState.LEG1_UP
        held = self._drain(hs, hs.held_c)
        out: list[Command] = [InstallLeg(hs.flow, (c2p, p2c))]
        if not hs.switch_run:  # the switch sent its own
            ack = _leg1_ack(hs)  # ack = ISN_s + 1 + D1 = ISN_p1 + 1, TSecr = P's SYN-ACK TSval
            out.append(SendSegment(hs.flow, Side.PROXY, hs.ports.proxy, ack, "leg 1 ACK"))
        if held:
            out.append(ReleaseHeld(hs.flow, self._translated(hs, c2p, held, Side.PROXY, hs.ports.proxy)))
        out.append(self._stage_timer(hs, self.config.upstream_timeout))
        self.stats["leg1_up"] += 1
        return out

    def _proxy_upstream_syn(self, hs: Handshake, ev: SegmentIn) -> list[Command]:
        seg = ev.segment
        if hs.state is HsState.UPSTREAM_SYN_ACKED and seg.seq == hs.isn_p2:
            self.stats["proxy_syn_retransmit"] += 1
            return [self._upstream_syn_ack(hs)]
        if hs.state not in (HsState.LEG1_UP, HsState.UPSTREAM_SYN_ACKED):
            self.stats["proxy_syn_early"] += 1
            return []
        if seg.payload:
            return self._abort(hs, "the proxy's upstream SYN carries data")
        hs.isn_p2 = seg.seq
        hs.opts_p2 = SynOptions.from_options(seg.options)
        assert hs.negotiated is not None and hs.opts_p1 is not None
        problems = proxy_disagreements(hs.negotiated, hs.opts_p1, hs.opts_p2)
        if problems:
            return self._abort(hs, problems[0])
        hs.state = HsState.UPSTREAM_SYN_ACKED
        return [
            self._upstream_syn_ack(hs),
            StartTimer(hs.timer(TimerKind.HANDSHAKE), self.config.proxy_ack_timeout),
        ]

    def _upstream_syn_ack(self, hs: Handshake) -> SendSegment:
        """Answer P's upstream SYN as S would: ISN_s and S's side of N."""
        assert hs.negotiated is not None and hs.opts_p2 is not None and hs.isn_p2 is not None
        assert hs.syn_ack_s is not None
        opts = hs.negotiated.server_side(hs.opts_p2, tsecr=hs.opts_p2.tsval or 0)
        syn_ack = TcpSegment(
            hs.flow.server_ip, hs.flow.server_port, hs.flow.client_ip, hs.flow.client_port,
            seq=hs.isn_s, ack=seq_add(hs.isn_p2, 1), flags=SYN | ACK, window=hs.syn_ack_s.window,
            options=opts.to_options(),
        )
        return SendSegment(hs.flow, Side.PROXY, hs.ports.proxy, syn_ack, "S's side of leg 2")

    def _complete_leg2(self, hs: Handshake, seg: TcpSegment | None) -> list[Command]:
        """P's ACK (or its first data) on leg 2: install P->S and S->P, release S's held data.
        ``seg`` None: the switch took P's ACK (and sent data riding on it on itself)."""
        if seg is not None and seg.ack != seq_add(hs.isn_s, 1):
            self.stats["proxy_bad_ack"] += 1
            return []
        assert hs.leg1 is not None
        facts = hs.facts()
        p2s, s2p = leg2_params(facts)
        legs = (hs.leg1[0], hs.leg1[1], p2s, s2p)
        out: list[Command] = [InstallLeg(hs.flow, (p2s, s2p))]
        if seg is not None and seg.seq_len:
            # P's ACK stops here (S has C's), but data riding on it is P's first bytes for S.
            sent = apply_translation(p2s, seg)
            assert sent is not None
            out.append(SendSegment(hs.flow, Side.SERVER, hs.ports.server, sent, "P's first data"))
        held = self._drain(hs, hs.held_s)
        if held:
            out.append(ReleaseHeld(hs.flow, self._translated(hs, s2p, held, Side.PROXY, hs.ports.proxy)))
        out.append(CancelTimer(hs.timer(TimerKind.HANDSHAKE)))
        out.append(FlowEstablished(facts, legs, frozenset(hs.fins)))
        self._forget(hs)
        self.stats["established"] += 1
        _lines(logging.INFO, "legs up", "%s: both legs up (D1=%d D2=%d)", hs.flow, facts.isn_p1 - facts.isn_s,
               facts.isn_p2 - facts.isn_c)
        return out

    # ---- helpers -----------------------------------------------------------------------------

    def _translated(
        self, hs: Handshake, params: LegParams, segs: list[TcpSegment], to: Side, port: int | None
    ) -> tuple[SendSegment, ...]:
        out = []
        for seg in segs:
            t = apply_translation(params, seg)
            if t is not None:
                out.append(SendSegment(hs.flow, to, port, t, "held"))
        return tuple(out)

    def _translate_and_send(
        self, hs: Handshake, params: LegParams, seg: TcpSegment, to: Side, port: int | None
    ) -> list[Command]:
        t = apply_translation(params, seg)
        return [SendSegment(hs.flow, to, port, t, "crossed the install")] if t is not None else []

    def _verify(self, hs: Handshake) -> None:
        if self._unverified.pop(hs.flow, None) is not None:
            self._verified[hs.flow] = hs
            self.stats["verified"] += 1

    def _forget(self, hs: Handshake) -> None:
        for table in (self._unverified, self._verified, self._resetting):
            if table.get(hs.flow) is hs:
                del table[hs.flow]
        if hs.held_bytes or hs.held_c or hs.held_s:
            self._drain(hs, hs.held_c)
            self._drain(hs, hs.held_s)

    def _evict_one(self) -> list[Command]:
        # one address past this many unanswered SYNs is flooding: its own go first (pending.py)
        hs = self._unverified.victim(heavy=max(8, self.config.max_pending // 16))
        self.stats["evicted"] += 1
        if hs.switch_run and hs.leg1 is None:
            # The switch runs it: forgetting the mirror stops nothing there. If C is real and ACKs,
            # the switch's next digest holds all the mirror held; if not, the slot lapses on its
            # own. No RSTs: under a flood they would be two packet-outs per spoofed SYN.
            self._forget(hs)
            return [CancelTimer(hs.timer(TimerKind.HANDSHAKE)), CancelTimer(hs.timer(TimerKind.PROXY_RETRY)),
                    RemoveFlow(hs.flow, hs.matches(), "evicted")]
        if hs.state is HsState.SYN_SEEN and self.config.fail_open:
            # S has not answered and P knows nothing: forget quietly. An RST per evicted SYN would
            # turn a flood into as many packet-outs; if S answers later and C is real, the
            # connection runs end to end (fail-open), as any other handshake the proxy cannot take.
            self._forget(hs)
            return [CancelTimer(hs.timer(TimerKind.HANDSHAKE)), RemoveFlow(hs.flow, hs.matches(), "evicted")]
        # P's leg is reset (P holds it for the proxy alone); S is left alone when failing open: a
        # real client slow to ACK then completes its handshake with S end to end, unproxied,
        # where an RST to S would fail its connection.
        return self._abort(hs, "evicted: too many pending handshakes", reset_client=False,
                           reset_server=not self.config.fail_open)

    def _proxy_resets(self, hs: Handshake) -> list[Command]:
        """RSTs for whatever the proxy holds of this flow (leg 1 from C's side, leg 2 from S's)."""
        out: list[Command] = []
        if hs.state is not HsState.SYN_SEEN and hs.proxy_syn_sends:
            rst = TcpSegment(hs.flow.client_ip, hs.flow.client_port, hs.flow.server_ip, hs.flow.server_port,
                             seq=hs.c_next, flags=RST, window=0)
            out.append(SendSegment(hs.flow, Side.PROXY, hs.ports.proxy, rst, "reset leg 1"))
        if hs.isn_p2 is not None and hs.syn_ack_s is not None:
            rst = TcpSegment(hs.flow.server_ip, hs.flow.server_port, hs.flow.client_ip, hs.flow.client_port,
                             seq=seq_add(hs.isn_s, 1), flags=RST, window=0)
            out.append(SendSegment(hs.flow, Side.PROXY, hs.ports.proxy, rst, "reset leg 2"))
        return out

    def _proxy_failed(self, hs: Handshake, reason: str) -> list[Command]:
        """The proxy cannot carry this flow. Before leg 1 is installed no byte has gone through P and
        C-S is already end to end, so the flow can simply run without P (fail-open)."""
        if hs.leg1 is None and self.config.fail_open and hs.state in (HsState.SYN_SEEN, HsState.PROXY_SYN_SENT):
            return self._bypass(hs, reason)
        return self._abort(hs, reason)

    def _bypass(self, hs: Handshake, reason: str) -> list[Command]:
        self.stats["bypassed"] += 1
        _lines(logging.INFO, "fail open", "%s: running end to end without the proxy: %s", hs.flow, reason)
        out = self._proxy_resets(hs)
        out += [CancelTimer(hs.timer(TimerKind.HANDSHAKE)), CancelTimer(hs.timer(TimerKind.PROXY_RETRY))]
        held_c, held_s = list(hs.held_c), list(hs.held_s)
        self._forget(hs)
        out.append(RemoveFlow(hs.flow, hs.matches(), f"bypass: {reason}"))
        if hs.from_switch and hs.ports.server is not None:
            # The switch's slot may still take the flow's segments (to hold, or all of them once
            # declined) until it lapses: entries that pass them end to end outlive it.
            legs = direct_params(hs.flow, hs.ports, SpliceCounts(0, 0, 0, 0))
            hs.gen, hs.leg1, hs.punts = next_generation(), None, {leg.match for leg in legs}
            self._passing[hs.flow] = hs
            out.append(InstallLeg(hs.flow, legs))
            out.append(StartTimer(hs.timer(TimerKind.LINGER), self.config.slot_lifetime))
        # Held segments go where their senders sent them, unchanged: with no proxy leg in between,
        # C and S share one sequence space.
        release = [SendSegment(hs.flow, Side.SERVER, hs.ports.server, s, "held (bypass)") for s in held_c]
        release += [SendSegment(hs.flow, Side.CLIENT, hs.ports.client, s, "held (bypass)") for s in held_s]
        if release:
            out.append(ReleaseHeld(hs.flow, tuple(release)))
        return out

    def _simultaneous_open(self, hs: Handshake, ev: SegmentIn) -> list[Command]:
        """Both ends sent a SYN: claim 1's order (SYN, then SYN-ACK) does not hold, so P cannot be
        given a faithful replay. Let the connection run end to end."""
        self.stats["simultaneous_open"] += 1
        out: list[Command] = []
        if not ev.copy:
            to = Side.SERVER if FlowKey.from_client_segment(ev.segment) == hs.flow else Side.CLIENT
            port = hs.ports.server if to is Side.SERVER else hs.ports.client
            out.append(SendSegment(hs.flow, to, port, ev.segment, "simultaneous open"))
        if hs.leg1 is None:
            return out + self._bypass(hs, "simultaneous open")
        return out + self._abort(hs, "simultaneous open after leg 1")

    def _abort(self, hs: Handshake, reason: str, *, reset_client: bool = True, reset_server: bool = True) -> list[Command]:
        """Give up on the handshake with RSTs toward every party that may hold state for it."""
        self.stats["aborted"] += 1
        _lines(logging.INFO, "aborted", "%s: handshake aborted: %s", hs.flow, reason)
        f = hs.flow
        resets = [r for r in self._proxy_resets(hs) if isinstance(r, SendSegment)]
        if reset_server:
            # Nothing but C's ACK ever reached S: ISN_c + 1 is exactly S's RCV.NXT.
            rst = TcpSegment(f.client_ip, f.client_port, f.server_ip, f.server_port,
                             seq=seq_add(hs.isn_c, 1), flags=RST, window=0)
            resets.append(SendSegment(f, Side.SERVER, hs.ports.server, rst, "reset server"))
        if reset_client and hs.syn_ack_s is not None:
            # Exact unless P already sent C data on leg 1; stragglers then get exact RSTs below.
            rst = TcpSegment(f.server_ip, f.server_port, f.client_ip, f.client_port,
                             seq=seq_add(hs.isn_s, 1), flags=RST, window=0)
            resets.append(SendSegment(f, Side.CLIENT, hs.ports.client, rst, "reset client"))
        out: list[Command] = [
            CancelTimer(hs.timer(TimerKind.HANDSHAKE)),
            CancelTimer(hs.timer(TimerKind.PROXY_RETRY)),
        ]
        if resets:
            out.append(ResetFlow(f, tuple(resets), reason))
        if hs.leg1 is None:
            self._forget(hs)
            out.append(RemoveFlow(f, hs.matches(), reason))
            return out
        # Leg 1 carried data the controller did not see: linger with every entry punting, and answer
        # whatever still arrives with an RST built from that segment's own ACK.
        self._forget(hs)
        self._drain(hs, hs.held_c)
        hs.state = HsState.RESETTING
        hs.gen = next_generation()
        matches = hs.matches()
        hs.punts = set(matches)
        hs.leg1 = None
        while len(self._resetting) >= self.config.max_pending:
            _, old = self._resetting.popitem(last=False)
            out.append(RemoveFlow(old.flow, old.matches(), "reset linger cut short"))
        self._resetting[f] = hs
        if hs.ports.proxy is not None:
            extra = {EntryMatch.s2c(f, hs.ports.proxy), EntryMatch.c2s(f, hs.ports.proxy)}
            if hs.ports.server is not None:
                extra.add(EntryMatch.s2c(f, hs.ports.server))
            hs.punts |= extra
        out.append(InstallPunt(f, tuple(sorted(hs.punts))))
        out.append(StartTimer(hs.timer(TimerKind.LINGER), self.config.reset_linger))
        return out

    def _answer_with_rst(self, hs: Handshake, ev: SegmentIn) -> list[Command]:
        seg = ev.segment
        if seg.is_rst:
            return []
        self.stats["straggler_reset"] += 1
        if ev.from_proxy:
            to, port = Side.PROXY, hs.ports.proxy
        elif FlowKey.from_client_segment(seg) == hs.flow:
            to, port = Side.CLIENT, hs.ports.client
        else:
            to, port = Side.SERVER, hs.ports.server
        return [SendSegment(hs.flow, to, port, rst_for(seg), "reset straggler")]
