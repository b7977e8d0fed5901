"""Per-leg translation parameters (design note sections 2 and 3) and a model of the rewrite itself.

From the facts of one claim-1 handshake this module computes what each flow-table entry must tell
the data plane: the four per-leg entries while P is in the path (C->P, P->C, P->S, S->P) and the two
direct entries once P is spliced out (C->S, S->C). Every delta is "add modulo 2^32", the form a
32-bit adder in the pipeline applies. ``apply_translation`` is the reference for what the data plane
must do to a segment; tests push whole byte streams through it to check the algebra.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from enum import Enum

from .model import RST, SYN, EntryMatch, FlowKey, Ports, TcpSegment
from .options import Negotiated, Sack, SynOptions, TcpOption, Timestamps
from .seqmath import Delta32, check_u32, clamp_shift, delta, neg, rescale_window, seq_add, u32

log = logging.getLogger(__name__)


class Direction(Enum):
    C_TO_P = "c2p"
    P_TO_C = "p2c"
    P_TO_S = "p2s"
    S_TO_P = "s2p"
    C_TO_S = "c2s"
    S_TO_C = "s2c"


@dataclass(frozen=True, slots=True)
class MacRewrite:
    """Placeholder for L2 rewriting on egress (None: leave the field as routing sets it)."""

    src_mac: str | None = None
    dst_mac: str | None = None


@dataclass(frozen=True, slots=True)
class LegParams:
    """What one flow-table entry does to the segments it matches.

    All deltas are added modulo 2^32: ``seq_delta`` to the sequence number; ``ack_delta`` to the
    acknowledgement number and to both edges of every SACK block; ``tsval_delta`` and ``tsecr_delta``
    to the timestamp option's fields. The window field is rescaled from ``win_shift_from`` to
    ``win_shift_to`` (a no-op when equal). With ``hold`` the entry drops segments that occupy
    sequence space (payload or FIN) and passes the rest, for the splice's drain phase.
    """

    direction: Direction
    match: EntryMatch
    egress_port: int
    seq_delta: Delta32 = 0
    ack_delta: Delta32 = 0
    tsval_delta: Delta32 = 0
    tsecr_delta: Delta32 = 0
    win_shift_from: int = 0
    win_shift_to: int = 0
    hold: bool = False
    mac: MacRewrite | None = None

    def __post_init__(self) -> None:
        for name in ("seq_delta", "ack_delta", "tsval_delta", "tsecr_delta"):
            check_u32(getattr(self, name), name)

    @property
    def is_identity(self) -> bool:
        """Rewrites nothing: plain forwarding to ``egress_port``."""
        return (
            self.seq_delta == self.ack_delta == self.tsval_delta == self.tsecr_delta == 0
            and self.win_shift_from == self.win_shift_to
            and not self.hold
        )


@dataclass(frozen=True, slots=True)
class HandshakeFacts:
    """Everything the handshake learnt that the translations depend on.

    ``proxy_leg1`` are the options of P's SYN-ACK on leg 1 (O_p1); ``proxy_leg2`` those of P's
    upstream SYN (O_p2).
    """

    flow: FlowKey
    ports: Ports
    isn_c: int
    isn_s: int
    isn_p1: int
    isn_p2: int
    negotiated: Negotiated
    proxy_leg1: SynOptions
    proxy_leg2: SynOptions
    # C's TSval in its handshake ACK: the newest of C's clock that S saw before P's leg 2 (None:
    # unknown, C's SYN's is used). Leg 2's timestamp anchor, see leg_deltas.
    tsval_c_ack: int | None = None


class ProxyDisagrees(ValueError):
    """P's side of a leg cannot be reconciled with N by rewriting (the leg must not be used)."""


def proxy_disagreements(n: Negotiated, leg1: SynOptions, leg2: SynOptions) -> list[str]:
    """Why the proxy's legs cannot carry the connection C and S negotiated ([] when they can).

    Window scale and SACK differences are absorbed by rescaling or are harmless (a proxy that never
    sends SACK blocks is still correct). Timestamps are not: once negotiated, C and S expect them on
    every segment (RFC 7323 section 3.2) and the data plane cannot add an option P did not send.
    """
    problems = []
    if n.timestamps and not leg1.timestamps:
        problems.append("timestamps negotiated but the proxy's SYN-ACK on leg 1 has none")
    if n.timestamps and not leg2.timestamps:
        problems.append("timestamps negotiated but the proxy's upstream SYN has none")
    return problems


@dataclass(frozen=True, slots=True)
class LegShifts:
    """Effective window shifts on each leg: what a sender multiplies by and its peer assumes."""

    c: int  # C's shift, as S knows it
    s: int  # S's shift, as C knows it
    p1: int  # P's shift on leg 1, as C would have to know it (0 when leg 1 is unscaled)
    p2: int  # P's shift on leg 2
    c_at_p: int  # the shift P applies to C's windows (C's shift if leg 1 is scaled, else 0)
    s_at_p: int  # the shift P applies to S's windows


def leg_shifts(n: Negotiated, leg1: SynOptions, leg2: SynOptions) -> LegShifts:
    # Leg 1 is scaled when N is (K's SYN to P carried C's WS) and P answered with WS; leg 2 when N is
    # and P's upstream SYN offered WS (K's SYN-ACK then carries S's).
    leg1_scaled = n.wscale and leg1.wscale is not None
    leg2_scaled = n.wscale and leg2.wscale is not None
    return LegShifts(
        c=n.shift_c,
        s=n.shift_s,
        p1=clamp_shift(leg1.wscale) if leg1_scaled and leg1.wscale is not None else 0,
        p2=clamp_shift(leg2.wscale) if leg2_scaled and leg2.wscale is not None else 0,
        c_at_p=n.shift_c if leg1_scaled else 0,
        s_at_p=n.shift_s if leg2_scaled else 0,
    )


@dataclass(frozen=True, slots=True)
class LegDeltas:
    d1: Delta32  # ISN_p1 - ISN_s
    d2: Delta32  # ISN_p2 - ISN_c
    t1: Delta32  # P's first TSval on leg 1 - S's first TSval
    t2: Delta32  # P's first TSval on leg 2 - C's TSval in its handshake ACK (else in its SYN)


def leg_deltas(facts: HandshakeFacts) -> LegDeltas:
    n = facts.negotiated
    t1 = t2 = 0
    if n.timestamps and facts.proxy_leg1.tsval is not None and n.tsval_s is not None:
        t1 = delta(facts.proxy_leg1.tsval, n.tsval_s)
    if n.timestamps and facts.proxy_leg2.tsval is not None and n.tsval_c is not None:
        # P's clock on leg 2 is read as C's from C's handshake ACK on, not from C's SYN: S has
        # taken that ACK's TSval as TS.Recent, and PAWS (RFC 7323 section 5) drops every segment
        # older than it -- anchored at the SYN, P's bytes lagged by the handshake's duration (a
        # retransmitted SYN: a second and more) and S dropped them until P's clock caught up. P
        # opens leg 2 only after that ACK, so P's translated clock never runs ahead of C's
        # either (after the splice S sees C's own TSvals, which must not look old).
        base = facts.tsval_c_ack if facts.tsval_c_ack is not None else n.tsval_c
        t2 = delta(facts.proxy_leg2.tsval, base)
    return LegDeltas(d1=delta(facts.isn_p1, facts.isn_s), d2=delta(facts.isn_p2, facts.isn_c), t1=t1, t2=t2)


def _need(port: int | None, what: str) -> int:
    if port is None:
        raise ValueError(f"the {what} port of the flow is not known yet")
    return port


def leg1_params(facts: HandshakeFacts) -> tuple[LegParams, LegParams]:
    """C->P and P->C (leg 1: C's side aligned, P's side offset by D1)."""
    n, flow, ports = facts.negotiated, facts.flow, facts.ports
    d, sh = leg_deltas(facts), leg_shifts(n, facts.proxy_leg1, facts.proxy_leg2)
    proxy = _need(ports.proxy, "proxy")
    c2p = LegParams(
        Direction.C_TO_P, EntryMatch.c2s(flow, ports.client), proxy,
        ack_delta=d.d1, tsecr_delta=d.t1, win_shift_from=sh.c, win_shift_to=sh.c_at_p,
    )
    p2c = LegParams(
        Direction.P_TO_C, EntryMatch.s2c(flow, proxy), ports.client,
        seq_delta=neg(d.d1), tsval_delta=neg(d.t1), win_shift_from=sh.p1, win_shift_to=sh.s,
    )
    return c2p, p2c


def leg2_params(facts: HandshakeFacts) -> tuple[LegParams, LegParams]:
    """P->S and S->P (leg 2: S's side aligned, P's side offset by D2)."""
    n, flow, ports = facts.negotiated, facts.flow, facts.ports
    d, sh = leg_deltas(facts), leg_shifts(n, facts.proxy_leg1, facts.proxy_leg2)
    proxy, server = _need(ports.proxy, "proxy"), _need(ports.server, "server")
    p2s = LegParams(
        Direction.P_TO_S, EntryMatch.c2s(flow, proxy), server,
        seq_delta=neg(d.d2), tsval_delta=neg(d.t2), win_shift_from=sh.p2, win_shift_to=sh.c,
    )
    s2p = LegParams(
        Direction.S_TO_P, EntryMatch.s2c(flow, server), proxy,
        ack_delta=d.d2, tsecr_delta=d.t2, win_shift_from=sh.s, win_shift_to=sh.s_at_p,
    )
    return p2s, s2p


def leg_params(facts: HandshakeFacts) -> tuple[LegParams, LegParams, LegParams, LegParams]:
    """The four per-leg entries: (C->P, P->C, P->S, S->P). Raises ``ProxyDisagrees`` if unusable."""
    problems = proxy_disagreements(facts.negotiated, facts.proxy_leg1, facts.proxy_leg2)
    if problems:
        raise ProxyDisagrees("; ".join(problems))
    return (*leg1_params(facts), *leg2_params(facts))


@dataclass(frozen=True, slots=True)
class SpliceCounts:
    """The proxy's report at the splice: bytes received from C and sent to S, received from S and
    sent to C. Counts may be 64-bit totals; only their value modulo 2^32 matters."""

    a_c: int
    b_s: int
    a_s: int
    b_c: int

    def __post_init__(self) -> None:
        for name in ("a_c", "b_s", "a_s", "b_c"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"byte count {name} must be a non-negative integer, got {value!r}")


def direct_params(flow: FlowKey, ports: Ports, counts: SpliceCounts) -> tuple[LegParams, LegParams]:
    """The two direct entries replacing the four per-leg ones (design note section 3).

    C->S: seq + (b_s - a_c), ack/SACK - (b_c - a_s); S->C: seq + (b_c - a_s), ack/SACK - (b_s - a_c).
    Timestamps and windows pass untouched: the handshake was end to end, so C and S already agree on
    each other's clocks and scales.
    """
    up = u32(counts.b_s - counts.a_c)  # how far P's output to S ran ahead of its input from C
    down = u32(counts.b_c - counts.a_s)  # same for the server-to-client direction
    server = _need(ports.server, "server")
    c2s = LegParams(Direction.C_TO_S, EntryMatch.c2s(flow, ports.client), server, seq_delta=up, ack_delta=neg(down))
    s2c = LegParams(Direction.S_TO_C, EntryMatch.s2c(flow, server), ports.client, seq_delta=down, ack_delta=neg(up))
    return c2s, s2c


def with_hold(params: LegParams, hold: bool = True) -> LegParams:
    return replace(params, hold=hold)


def held_ack(params: LegParams, seg: TcpSegment) -> TcpSegment | None:
    """The pure ACK the controller gives P for ``seg``, which the hold sent it instead of P.

    The hold keeps payload from P (nobody has acknowledged it, so its sender retransmits it after
    the splice), but the segment's acknowledgment, window and SACK blocks are what P's sends wait
    for while it drains: without them a busy sender's ACKs, all riding on data, never reach P.
    None for a segment that acknowledges nothing, or a SYN or RST.
    """
    if not seg.has_ack or seg.flags & (SYN | RST):
        return None
    return apply_translation(replace(params, hold=False), seg.ack_only())


def _translate_option(opt: TcpOption, params: LegParams, acking: bool) -> TcpOption:
    if isinstance(opt, Sack) and params.ack_delta:
        return Sack(tuple((seq_add(lo, params.ack_delta), seq_add(hi, params.ack_delta)) for lo, hi in opt.blocks))
    if isinstance(opt, Timestamps):
        # TSecr is only meaningful on a segment with ACK set (RFC 7323 section 3.2).
        tsecr = seq_add(opt.tsecr, params.tsecr_delta) if acking else opt.tsecr
        return Timestamps(seq_add(opt.tsval, params.tsval_delta), tsecr)
    return opt


def apply_translation(params: LegParams, seg: TcpSegment) -> TcpSegment | None:
    """What the data plane does to ``seg`` under ``params``; None when the entry drops it.

    A segment is rewritten only where it has the field: the ack number (and TSecr) only with ACK
    set, SACK edges and timestamps only when the option is present.
    """
    if params.hold and seg.seq_len > 0:
        return None
    acking = seg.has_ack
    return replace(
        seg,
        seq=seq_add(seg.seq, params.seq_delta),
        ack=seq_add(seg.ack, params.ack_delta) if acking else seg.ack,
        window=rescale_window(seg.window, params.win_shift_from, params.win_shift_to),
        options=tuple(_translate_option(o, params, acking) for o in seg.options),
    )
