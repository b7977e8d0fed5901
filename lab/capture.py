"""The handshakes as each host saw them: SYN and SYN-ACK frames captured on the lab's hosts'
interfaces (a raw socket in each namespace), so that the demo can show claim 1 happening -- the
client, the server and both of the proxy's legs with the same initial sequence numbers and
options, the proxy's own ISNs and the deltas the switch translates by.

At the proxy host, leg 1 is the SYN that comes in (from the switch, in the client's name) and the
SYN-ACK that goes out; leg 2 is the SYN that goes out (the proxy's upstream, in the client's
name) and the SYN-ACK that comes in (from the switch, in the server's name).
"""

from __future__ import annotations

import contextlib
import ctypes
import select
import socket
import struct
import threading
import time
from dataclasses import dataclass, field

from p4splice.controller.splice.options import (
    Mss,
    SackPermitted,
    Timestamps,
    UnknownOption,
    WindowScale,
    parse_options,
)

from . import netdev
from .topology import Host

__all__ = ["HandshakeCapture", "Seen", "View"]

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
SO_ATTACH_FILTER = 26
SYN, ACK = 0x02, 0x10

# A classic BPF program, so that the kernel hands the capture only IPv4/TCP frames with SYN set:
# the bulk transfers of the demo would otherwise flood the sockets (and drop a SYN now and then).
_SYN_FILTER = [
    (0x28, 0, 0, 12),  # ldh [12]: the ethertype
    (0x15, 0, 6, 0x0800),  # IPv4, else drop
    (0x30, 0, 0, 23),  # ldb [23]: the IP protocol
    (0x15, 0, 4, 6),  # TCP, else drop
    (0xB1, 0, 0, 14),  # ldxb 4*([14]&0xf): the IPv4 header's length
    (0x50, 0, 0, 27),  # ldb [x+27]: the TCP flags
    (0x45, 0, 1, SYN),  # SYN set, else drop
    (0x06, 0, 0, 0x40000),  # keep
    (0x06, 0, 0, 0),  # drop
]


def _attach_syn_filter(sock: socket.socket) -> None:
    code = b"".join(struct.pack("HBBI", *insn) for insn in _SYN_FILTER)
    buf = ctypes.create_string_buffer(code)
    prog = struct.pack("HL", len(_SYN_FILTER), ctypes.addressof(buf))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, prog)


@dataclass(frozen=True)
class Seen:
    """One SYN or SYN-ACK on one host's interface."""

    host: str
    outgoing: bool
    src: tuple[str, int]
    dst: tuple[str, int]
    syn_ack: bool
    seq: int
    options: str
    t: float = 0.0  # time.monotonic() when read


@dataclass
class View:
    """One connection's handshake, party by party (None where a frame was not seen)."""

    client_syn: Seen | None = None
    client_syn_ack: Seen | None = None
    server_syn: Seen | None = None
    server_syn_ack: Seen | None = None
    leg1_syn: Seen | None = None  # came in to the proxy
    leg1_syn_ack: Seen | None = None  # the proxy's answer: ISN_p1
    leg2_syn: Seen | None = None  # the proxy's upstream: ISN_p2
    leg2_syn_ack: Seen | None = None  # came in to the proxy

    def claim1(self) -> bool:
        """The legs carry the client's and the server's own ISNs and options."""
        c, s = self.client_syn, self.server_syn_ack
        ends = (self.server_syn, self.leg1_syn, self.client_syn_ack, self.leg2_syn_ack)
        if c is None or s is None or any(x is None for x in ends):
            return False
        assert self.server_syn and self.leg1_syn and self.client_syn_ack and self.leg2_syn_ack
        return (self.server_syn.seq == self.leg1_syn.seq == c.seq
                and self.client_syn_ack.seq == self.leg2_syn_ack.seq == s.seq
                and self.server_syn.options == self.leg1_syn.options == c.options
                and self.client_syn_ack.options == self.leg2_syn_ack.options == s.options)


def _describe(raw: bytes) -> str:
    """The SYN's options as negotiated, NOPs and EOL left out, timestamps without their values
    (every sender has its own clock)."""
    out = []
    for opt in parse_options(raw):
        if isinstance(opt, Mss):
            out.append(f"MSS {opt.value}")
        elif isinstance(opt, WindowScale):
            out.append(f"WS {opt.shift}")
        elif isinstance(opt, SackPermitted):
            out.append("SACK")
        elif isinstance(opt, Timestamps):
            out.append("TS")
        elif isinstance(opt, UnknownOption):
            out.append(f"kind {opt.kind}")
    return ", ".join(out) or "none"


@dataclass
class HandshakeCapture:
    """Captures on ``hosts`` from ``start()`` to ``stop()``."""

    hosts: list[Host]
    seen: list[Seen] = field(default_factory=list)
    _socks: list[tuple[Host, socket.socket]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> HandshakeCapture:
        for host in self.hosts:
            with netdev.netns_socket(host.netns):
                s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
            _attach_syn_filter(s)
            s.bind((host.ifname, ETH_P_ALL))
            s.setblocking(False)
            self._socks.append((host, s))
        self._thread = threading.Thread(target=self._run, name="handshake capture", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        for _, s in self._socks:
            s.close()

    def _run(self) -> None:
        by_fd = {s.fileno(): (h, s) for h, s in self._socks}
        while not self._stop.is_set():
            ready, _, _ = select.select(list(by_fd), [], [], 0.1)
            for fd in ready:
                host, s = by_fd[fd]
                with contextlib.suppress(BlockingIOError, OSError):
                    while True:
                        frame, addr = s.recvfrom(2048)
                        self._take(host, frame, addr[2] == PACKET_OUTGOING)

    def _take(self, host: Host, frame: bytes, outgoing: bool) -> None:
        if len(frame) < 54 or frame[12:14] != b"\x08\x00" or frame[23] != 6:
            return
        ihl = (frame[14] & 0x0F) * 4
        t = 14 + ihl
        sport, dport, seq, _ack, offflags = struct.unpack_from("!HHIIH", frame, t)
        flags = offflags & 0x1FF
        if not flags & SYN:
            return
        doff = (offflags >> 12) * 4
        try:
            options = _describe(frame[t + 20:t + doff])
        except ValueError:
            options = "(options the controller refuses)"
        src = (socket.inet_ntoa(frame[26:30]), sport)
        dst = (socket.inet_ntoa(frame[30:34]), dport)
        self.seen.append(Seen(host.name, outgoing, src, dst, bool(flags & ACK), seq, options, time.monotonic()))

    def view(self, client: tuple[str, int], server: tuple[str, int], client_host: str, server_host: str,
             proxy_host: str) -> View:
        """The first handshake of the connection client -> server, party by party."""
        v = View()
        for s in self.seen:
            forward = (s.src, s.dst) == (client, server)
            backward = (s.src, s.dst) == (server, client)
            if not (forward or backward):
                continue
            slot = None
            if s.host == client_host:
                slot = "client_syn" if forward and s.outgoing and not s.syn_ack else \
                    "client_syn_ack" if backward and not s.outgoing and s.syn_ack else None
            elif s.host == server_host:
                slot = "server_syn" if forward and not s.outgoing and not s.syn_ack else \
                    "server_syn_ack" if backward and s.outgoing and s.syn_ack else None
            elif s.host == proxy_host:
                if forward and not s.syn_ack:
                    slot = "leg2_syn" if s.outgoing else "leg1_syn"
                elif backward and s.syn_ack:
                    slot = "leg1_syn_ack" if s.outgoing else "leg2_syn_ack"
            if slot is not None and getattr(v, slot) is None:
                setattr(v, slot, s)
        return v
