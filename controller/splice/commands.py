"""Commands the splice core asks the orchestrator to carry out, and the timers it asks for.

The core is sans-IO: each event it handles returns a list of these, in the order they must take
effect (an entry install before the packet that relies on it). The orchestrator maps them onto
P4Runtime writes, packet-outs and its own timer wheel, and feeds results back as events.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from enum import Enum
from typing import TypeAlias

from .legs import HandshakeFacts, LegParams
from .model import ACK, RST, EntryMatch, FlowKey, Party, Side, TcpSegment

_generations = itertools.count(1)


def next_generation() -> int:
    """A number never handed out before in this process: names one incarnation of a flow's state,
    shared by the handshake and flow tables so their timers can never be mistaken for each other."""
    return next(_generations)


class TimerKind(Enum):
    HANDSHAKE = "handshake"  # deadline of the current handshake stage
    PROXY_RETRY = "proxy_retry"  # re-send the second request to a silent proxy
    HOLD = "hold"  # the proxy must report its counts within this time after a splice request
    LINGER = "linger"  # entries stay this long after a close or reset, for retransmissions
    IDLE = "idle"  # controller-side backstop when the switch's idle notification never comes


@dataclass(frozen=True, order=True, slots=True)
class TimerKey:
    """Names one timer. ``gen`` changes whenever a flow's state is rebuilt, so a timer of an earlier
    incarnation that fires late is recognised and ignored."""

    flow: FlowKey
    kind: TimerKind
    gen: int


@dataclass(frozen=True, slots=True)
class SendSegment:
    """Packet-out of a TCP segment. ``egress_port`` None: let the switch route it (its destination's
    port is not known to the core)."""

    flow: FlowKey
    to: Side
    egress_port: int | None
    segment: TcpSegment
    why: str = ""


@dataclass(frozen=True, slots=True)
class InstallPunt:
    """Insert or modify these entries so that matching segments go to the controller only."""

    flow: FlowKey
    matches: tuple[EntryMatch, ...]


@dataclass(frozen=True, slots=True)
class InstallDrop:
    """Insert or modify these entries so that matching segments are dropped (a spliced-out proxy's
    sockets must never reach C or S)."""

    flow: FlowKey
    matches: tuple[EntryMatch, ...]


@dataclass(frozen=True, slots=True)
class InstallLeg:
    """Insert or modify translation entries (one per ``LegParams``; the match is in the params)."""

    flow: FlowKey
    legs: tuple[LegParams, ...]


@dataclass(frozen=True, slots=True)
class RemoveEntries:
    """Delete some of a flow's entries (the flow itself stays)."""

    flow: FlowKey
    matches: tuple[EntryMatch, ...]


@dataclass(frozen=True, slots=True)
class RemoveFlow:
    """Delete every entry of the flow; the core has forgotten it."""

    flow: FlowKey
    matches: tuple[EntryMatch, ...]
    reason: str


@dataclass(frozen=True, slots=True)
class ReleaseHeld:
    """Send segments the controller held while a leg was being made, in this order, after the
    entries installed before this command are in place."""

    flow: FlowKey
    segments: tuple[SendSegment, ...]


@dataclass(frozen=True, slots=True)
class ResetFlow:
    """Abort a connection: send these RSTs. Segments of the flow that still arrive are answered by
    the core with exact RSTs while the flow lingers (its entries punt meanwhile)."""

    flow: FlowKey
    resets: tuple[SendSegment, ...]
    reason: str


@dataclass(frozen=True, slots=True)
class StartTimer:
    timer: TimerKey
    delay: float


@dataclass(frozen=True, slots=True)
class CancelTimer:
    timer: TimerKey


@dataclass(frozen=True, slots=True)
class FlowEstablished:
    """Both legs are up and their four entries installed: the flow leaves the handshake table."""

    facts: HandshakeFacts
    legs: tuple[LegParams, ...]
    fins: frozenset[Party] = frozenset()  # FINs the switch carried before the flow was established


@dataclass(frozen=True, slots=True)
class NotifyProxy:
    """Tell the proxy (through the proxy API) about one of its flows: ``holding`` (drain now and
    report), ``spliced``, ``proxied`` (the hold was lifted: cancelled, timed out, or the proxy
    closed a side), ``reset``, ``refused`` (with ``detail``)."""

    flow: FlowKey
    status: str
    detail: str = ""


Command: TypeAlias = (
    SendSegment
    | InstallPunt
    | InstallDrop
    | InstallLeg
    | RemoveEntries
    | RemoveFlow
    | ReleaseHeld
    | ResetFlow
    | StartTimer
    | CancelTimer
    | FlowEstablished
    | NotifyProxy
)


def rst_for(seg: TcpSegment) -> TcpSegment:
    """The RST that answers ``seg`` as a closed port would (RFC 9293 section 3.10.7.1): sequence
    number taken from the segment's ACK, so it lands exactly on the sender's RCV.NXT."""
    if seg.has_ack:
        return TcpSegment(seg.dst_ip, seg.dst_port, seg.src_ip, seg.src_port, seq=seg.ack, ack=0, flags=RST, window=0)
    return TcpSegment(
        seg.dst_ip, seg.dst_port, seg.src_ip, seg.src_port,
        seq=0, ack=(seg.seq + seg.seq_len) & 0xFFFFFFFF, flags=RST | ACK, window=0,
    )
