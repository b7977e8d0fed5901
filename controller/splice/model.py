"""Value types the splice core shares: sides, flow identity, TCP segments as plain fields.

The core never touches bytes on a wire: the orchestrator turns a packet-in into a ``TcpSegment``
(addresses, ports, the TCP header fields and parsed options, the payload) and a ``SendSegment``
command back into a packet-out. Keeping segments as frozen field records lets tests drive the
state machines and check the arithmetic without scapy or a switch.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum
from typing import NamedTuple, TypeAlias

from .options import TcpOption

FIN = 0x01
SYN = 0x02
RST = 0x04
PSH = 0x08
ACK = 0x10


class Side(Enum):
    """Who a segment comes from (or goes to), seen from the switch."""

    CLIENT = "client"  # C, behind the claim's ingress
    SERVER = "server"  # S, behind the claim's egress
    PROXY = "proxy"  # P, the application proxy on a host port


# Who sent a segment of a flow: C, S, or P on one of its legs ("p1" speaks as S toward C, "p2" as C
# toward S). The flow table keeps its FINs and RSTs by these.
Party: TypeAlias = Side | str


def party_of(orient: Side, from_proxy: bool) -> Party:
    """The sender of a segment travelling in ``orient`` (CLIENT: client to server)."""
    if from_proxy:
        return "p1" if orient is Side.SERVER else "p2"
    return orient


@dataclass(frozen=True, slots=True)
class TcpSegment:
    """A TCP/IPv4 segment as the fields the splice reads or rewrites."""

    src_ip: str
    src_port: int
    dst_ip: str
    dst_port: int
    seq: int
    ack: int = 0
    flags: int = ACK
    window: int = 0xFFFF
    options: tuple[TcpOption, ...] = ()
    payload: bytes = b""

    @property
    def is_syn(self) -> bool:
        return bool(self.flags & SYN) and not self.flags & ACK

    @property
    def is_syn_ack(self) -> bool:
        return bool(self.flags & SYN) and bool(self.flags & ACK)

    @property
    def is_rst(self) -> bool:
        return bool(self.flags & RST)

    @property
    def is_fin(self) -> bool:
        return bool(self.flags & FIN)

    @property
    def has_ack(self) -> bool:
        return bool(self.flags & ACK)

    @property
    def seq_len(self) -> int:
        """Sequence space the segment occupies: payload bytes, plus one each for SYN and FIN."""
        return len(self.payload) + (1 if self.flags & SYN else 0) + (1 if self.flags & FIN else 0)

    @property
    def is_pure_ack(self) -> bool:
        """Occupies no sequence space: an ACK, window update or SACK report (RST excluded)."""
        return self.seq_len == 0 and not self.is_rst

    def with_(self, **changes: object) -> TcpSegment:
        return replace(self, **changes)  # type: ignore[arg-type]

    def ack_only(self) -> TcpSegment:
        """The pure ACK inside this segment: same seq/ack/window/options, no payload, no FIN/PSH."""
        return replace(self, payload=b"", flags=self.flags & ~(FIN | PSH))


class FlowKey(NamedTuple):
    """A proxied connection, named by its real ends: the client's and the server's address/port.

    Every segment of the connection maps to one key whatever its direction or leg, because P is
    transparent (leg 1 speaks as S toward C, leg 2 as C toward S); the side a segment came from
    tells which direction and leg it is on. (A named tuple: it is hashed on every event, and a
    tuple's hash is computed in C.)
    """

    client_ip: str
    client_port: int
    server_ip: str
    server_port: int

    def __str__(self) -> str:
        return f"{self.client_ip}:{self.client_port}->{self.server_ip}:{self.server_port}"

    @classmethod
    def from_client_segment(cls, seg: TcpSegment) -> FlowKey:
        """Key of a segment travelling in the client-to-server orientation (C->S or P->S)."""
        return cls(seg.src_ip, seg.src_port, seg.dst_ip, seg.dst_port)

    @classmethod
    def from_server_segment(cls, seg: TcpSegment) -> FlowKey:
        """Key of a segment travelling in the server-to-client orientation (S->C or P->C)."""
        return cls(seg.dst_ip, seg.dst_port, seg.src_ip, seg.src_port)

    def orientation(self, seg: TcpSegment) -> Side | None:
        """CLIENT if ``seg`` goes client-to-server on this flow, SERVER if the reverse, else None."""
        if (seg.src_ip, seg.src_port, seg.dst_ip, seg.dst_port) == (
            self.client_ip, self.client_port, self.server_ip, self.server_port
        ):
            return Side.CLIENT
        if (seg.src_ip, seg.src_port, seg.dst_ip, seg.dst_port) == (
            self.server_ip, self.server_port, self.client_ip, self.client_port
        ):
            return Side.SERVER
        return None


class EntryMatch(NamedTuple):
    """The key of one flow-table entry: the ingress port and the segment's 4-tuple (protocol TCP)."""

    ingress_port: int
    src_ip: str
    src_port: int
    dst_ip: str
    dst_port: int

    @classmethod
    def c2s(cls, flow: FlowKey, ingress_port: int) -> EntryMatch:
        """Segments in the client-to-server orientation arriving on ``ingress_port``."""
        return cls(ingress_port, flow.client_ip, flow.client_port, flow.server_ip, flow.server_port)

    @classmethod
    def s2c(cls, flow: FlowKey, ingress_port: int) -> EntryMatch:
        """Segments in the server-to-client orientation arriving on ``ingress_port``."""
        return cls(ingress_port, flow.server_ip, flow.server_port, flow.client_ip, flow.client_port)


@dataclass(frozen=True, slots=True)
class Ports:
    """Switch ports of a flow's three parties (learnt from where the handshake arrived)."""

    client: int
    server: int | None = None
    proxy: int | None = None


@dataclass(frozen=True, slots=True)
class SegmentIn:
    """Event: a TCP segment reached the controller.

    ``copy`` is True when the switch forwarded the original and sent the controller a copy (the SYN
    and SYN-ACK clones); False when the controller got the only instance (a punted segment, the
    proxy's handshake), so anything that must still reach its destination is the controller's to send.
    ``from_proxy`` is True when it arrived on a proxy port.
    """

    segment: TcpSegment
    ingress_port: int
    from_proxy: bool = False
    copy: bool = False
    proxy_port: int | None = None  # the service's proxy port (services table), with C's SYN
    server_port: int | None = None  # the switch port toward S (routes), with C's SYN
    declined: bool = False  # the switch hands over the handshake it was running (reason DECLINED)
    held: bool = False  # a copy of what a hold entry kept from P: a FIN (reason FIN_HELD), data (HELD_COPY)
    reported: bool = False  # not the segment: a FIN the switch forwarded, reported in a fin_t digest
    # (addresses, ports and flags are right; its sequence numbers are not known)
