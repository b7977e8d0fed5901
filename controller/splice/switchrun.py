"""Handshakes the switch runs itself: what its digests say, in the splice core's terms.

For a service whose entry is ``proxied_inline`` the switch carries claim 1's handshake out alone
(p4src/include/handshake.p4) and reports each step with a digest holding everything it learnt so far
(``handshake_t``). ``SwitchStep`` is one such report; ``HandshakeTable.on_switch_step`` keeps a mirror
of the handshake from them, installs the legs' entries when the switch says a leg is up, and takes
the handshake over as its own when the switch hands it over (packet-in reason DECLINED).

The switch reports the FINs its flows entries forward in digests too (``fin_t``): ``fin_reported``
makes each the event a copy of that FIN would have been, less its sequence numbers.
"""

from __future__ import annotations

import functools
import socket
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum

from .model import ACK, FIN, SYN, FlowKey, Ports, SegmentIn, TcpSegment
from .options import Nop, SynOptions, Timestamps
from .seqmath import seq_add

# SYNOPT_* of p4src/include/headers.p4: which options a SYN or SYN-ACK carried
OPT_MSS, OPT_WS, OPT_SACK, OPT_TS = 0x01, 0x02, 0x04, 0x08


def _ipv4(value: int) -> str:
    return socket.inet_ntoa(struct.pack("!I", value))


class SwitchState(IntEnum):
    """HS_* of p4src/include/headers.p4: the step a connection's slot reached."""

    SYN_SEEN = 1
    SYN_ACKED = 2  # S's SYN-ACK forwarded; the second request sent to P
    C_ACKED = 3  # C's handshake ACK forwarded to S; P's SYN-ACK not in yet
    P1_KNOWN = 4  # P's SYN-ACK absorbed; C's ACK not in yet
    LEG1_UP = 5  # leg 1 ACKed to P
    UPSTREAM = 6  # P's upstream SYN answered
    LEG2_UP = 7  # P's ACK absorbed: both legs up
    DECLINED = 8  # handed to the controller


@functools.lru_cache(maxsize=4096)
def syn_options(flags: int, mss: int, ws: int, tsval: int, tsecr: int = 0) -> SynOptions:
    """A SYN's options from the switch's summary of them (unknown kinds are not kept: the
    controller's own replay drops them too). Remembered (SynOptions is immutable): each digest
    of a connection repeats the options of the steps before it, and the steps not reached yet
    are zeros, so most of a handshake's twelve are ones made before."""
    return SynOptions(
        mss=mss if flags & OPT_MSS else None,
        wscale=ws if flags & OPT_WS else None,
        sack_permitted=bool(flags & OPT_SACK),
        tsval=tsval if flags & OPT_TS else None,
        tsecr=tsecr if flags & OPT_TS else 0,
    )


@dataclass(frozen=True, slots=True)
class SwitchStep:
    """One digest: the slot of ``flow`` reached ``state``; what the switch knows of it so far.

    Fields of steps not reached yet are meaningless (the switch sends zeros)."""

    state: SwitchState
    flow: FlowKey
    ports: Ports  # the client's and server's ingress ports and the proxy's port
    isn_c: int
    window_c: int
    opts_c: SynOptions
    isn_s: int
    window_s: int
    opts_s: SynOptions
    isn_p1: int
    opts_p1: SynOptions  # of P's SYN-ACK on leg 1
    isn_p2: int
    opts_p2: SynOptions  # of P's upstream SYN
    c_acked: bool
    window_c_ack: int
    tsval_c_ack: int

    @classmethod
    def from_digest(cls, data: Mapping[str, int]) -> SwitchStep | None:
        """A ``handshake_t`` digest (members by name, as P4Runtime decodes it); None for a state
        the core does not take."""
        try:
            state = SwitchState(data["state"])
        except ValueError:
            return None
        return cls(
            state=state,
            flow=FlowKey(_ipv4(data["client_addr"]), data["client_port"], _ipv4(data["server_addr"]),
                         data["server_port"]),
            ports=Ports(data["client_ingress"], data["server_ingress"] or None, data["proxy_port"]),
            isn_c=data["isn_c"], window_c=data["window_c"],
            opts_c=syn_options(data["opts_c"], data["mss_c"], data["ws_c"], data["tsval_c"]),
            isn_s=data["isn_s"], window_s=data["window_s"],
            opts_s=syn_options(data["opts_s"], data["mss_s"], data["ws_s"], data["tsval_s"]),
            isn_p1=data["isn_p1"], opts_p1=syn_options(data["opts_p1"], 0, data["ws_p1"], data["tsval_p1"]),
            isn_p2=data["isn_p2"], opts_p2=syn_options(data["opts_p2"], 0, data["ws_p2"], data["tsval_p2"]),
            c_acked=bool(data["c_acked"]), window_c_ack=data["window_c_ack"], tsval_c_ack=data["tsval_c_ack"],
        )

    def syn_c(self) -> TcpSegment:
        f = self.flow
        return TcpSegment(f.client_ip, f.client_port, f.server_ip, f.server_port, seq=self.isn_c, flags=SYN,
                          window=self.window_c, options=self.opts_c.to_options())

    def syn_ack_s(self) -> TcpSegment:
        f = self.flow
        return TcpSegment(f.server_ip, f.server_port, f.client_ip, f.client_port, seq=self.isn_s,
                          ack=seq_add(self.isn_c, 1), flags=SYN | ACK, window=self.window_s,
                          options=self.opts_s.to_options())

    def c_ack(self, timestamps: bool) -> TcpSegment:
        """C's handshake ACK as the switch took it (NOP NOP TS, or no option: it declines others)."""
        f = self.flow
        opts = (Nop(), Nop(), Timestamps(self.tsval_c_ack, self.opts_s.tsval or 0)) if timestamps else ()
        return TcpSegment(f.client_ip, f.client_port, f.server_ip, f.server_port, seq=seq_add(self.isn_c, 1),
                          ack=seq_add(self.isn_s, 1), flags=ACK, window=self.window_c_ack, options=opts)


def fin_reported(data: Mapping[str, int], proxy_ports: set[int] | frozenset[int]) -> SegmentIn | None:
    """The core's event for a ``fin_t`` digest (members by name): a copy of the FIN, marked
    ``reported`` since its sequence numbers are not known. None when a member is missing."""
    try:
        port = data["ingress_port"]
        seg = TcpSegment(_ipv4(data["src_addr"]), data["src_port"], _ipv4(data["dst_addr"]), data["dst_port"],
                         seq=0, flags=ACK | FIN)
    except (KeyError, TypeError, struct.error):
        return None
    return SegmentIn(seg, port, from_proxy=port in proxy_ports, copy=True, reported=True)
