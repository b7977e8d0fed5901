"""Packet helpers for the PTF suite: TCP segments with options, and a Python model of the switch.

The model (:func:`translate`, :func:`routed`) computes what the switch must emit from the bytes
that went in, independently of the P4 program: it walks the TCP options itself, rewrites the
fields at their byte offsets, and recomputes both checksums over the whole header and segment
with scapy (no incremental update). Comparing the switch's output byte for byte with it checks
the RFC 1624 update against a full recomputation.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from scapy.layers.inet import IP, TCP, UDP, in4_chksum
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from scapy.utils import checksum

MASK32 = 0xFFFFFFFF

# Addresses used throughout the suite: client C, server S, proxy P (design note names).
SWITCH_MAC = {1: "02:00:00:00:00:01", 2: "02:00:00:00:00:02", 3: "02:00:00:00:00:03"}
HOST_MAC = {1: "02:00:00:00:01:01", 2: "02:00:00:00:02:02", 3: "02:00:00:00:03:03"}
CLIENT_IP = "10.0.1.1"
SERVER_IP = "10.0.2.1"
PROXY_IP = "10.0.3.1"
SERVICE_PORT = 80
CLIENT_PORT = 43210

TCP_FLAGS = {"F": 0x01, "S": 0x02, "R": 0x04, "P": 0x08, "A": 0x10}


def tcp_segment(*, in_port: int = 1, src: str = CLIENT_IP, dst: str = SERVER_IP,
                sport: int = CLIENT_PORT, dport: int = SERVICE_PORT, seq: int = 1000, ack: int = 0,
                flags: str = "A", window: int = 1024, options: list | None = None,
                payload: bytes = b"", ttl: int = 64, ip_options: bytes = b"") -> bytes:
    """The bytes of an Ethernet/IPv4/TCP frame as host ``in_port`` sends it to the switch.

    ``options`` is a scapy TCP options list, e.g. ``[("NOP", None), ("Timestamp", (1, 2))]``.
    """
    ip = IP(src=src, dst=dst, ttl=ttl, id=7)
    if ip_options:
        ip = IP(src=src, dst=dst, ttl=ttl, id=7, options=[Raw(ip_options)])  # type: ignore[list-item]
    pkt = (Ether(src=HOST_MAC[in_port], dst=SWITCH_MAC[in_port]) / ip
           / TCP(sport=sport, dport=dport, seq=seq & MASK32, ack=ack & MASK32, flags=flags,
                 window=window, options=options or []))
    if payload:
        pkt = pkt / Raw(payload)
    return bytes(pkt)


def udp_datagram(*, in_port: int = 1, src: str = CLIENT_IP, dst: str = SERVER_IP, ttl: int = 64,
                 payload: bytes = b"hello") -> bytes:
    return bytes(Ether(src=HOST_MAC[in_port], dst=SWITCH_MAC[in_port]) / IP(src=src, dst=dst, ttl=ttl)
                 / UDP(sport=5000, dport=53) / Raw(payload))


# --- the model ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Translation:
    """One flow entry's parameters, as the controller would install them."""

    seq: int = 0
    ack: int = 0
    tsval: int = 0
    tsecr: int = 0
    shift_from: int = 0
    shift_to: int = 0
    nat: tuple[str, str, int, int] | None = None  # new (src, dst, sport, dport)

    def params(self, port: int) -> dict[str, int | str]:
        """Action parameters of translate/hold (translate_nat adds the NAT ones)."""
        p: dict[str, int | str] = {
            "port": port, "smac": SWITCH_MAC[port], "dmac": HOST_MAC[port],
            "seq_delta": self.seq & MASK32, "ack_delta": self.ack & MASK32,
            "tsval_delta": self.tsval & MASK32, "tsecr_delta": self.tsecr & MASK32,
            "win_shift_from": self.shift_from, "win_shift_to": self.shift_to,
        }
        if self.nat is not None:
            src, dst, sport, dport = self.nat
            p.update(new_src_addr=src, new_dst_addr=dst, new_src_port=sport, new_dst_port=dport)
        return p


@dataclass(frozen=True)
class Layout:
    """Byte offsets in a frame: IPv4 header, TCP header, TCP options, end of TCP header."""

    ip: int
    tcp: int
    opts: int
    tcp_end: int
    ip_end: int


def layout(frame: bytes) -> Layout:
    ip = 14
    ihl = (frame[ip] & 0x0F) * 4
    total = struct.unpack_from("!H", frame, ip + 2)[0]
    tcp = ip + ihl
    doff = (frame[tcp + 12] >> 4) * 4
    return Layout(ip, tcp, tcp + 20, tcp + doff, ip + total)


def tcp_options_at(frame: bytes) -> list[tuple[int, int, int]]:
    """(kind, offset, length) of each TCP option, walking the header as RFC 9293 says."""
    lay = layout(frame)
    out = []
    i = lay.opts
    while i < lay.tcp_end:
        kind = frame[i]
        if kind == 0:
            out.append((0, i, 1))
            break
        if kind == 1:
            out.append((1, i, 1))
            i += 1
            continue
        length = frame[i + 1]
        out.append((kind, i, length))
        i += length
    return out


def _add32(buf: bytearray, off: int, delta: int) -> None:
    v = struct.unpack_from("!I", buf, off)[0]
    struct.pack_into("!I", buf, off, (v + delta) & MASK32)


def fix_checksums(buf: bytearray) -> None:
    """Recompute the IPv4 header and TCP checksums from scratch (scapy's ones'-complement sum)."""
    lay = layout(bytes(buf))
    struct.pack_into("!H", buf, lay.ip + 10, 0)
    struct.pack_into("!H", buf, lay.ip + 10, checksum(bytes(buf[lay.ip:lay.tcp])))
    struct.pack_into("!H", buf, lay.tcp + 16, 0)
    ip = Ether(bytes(buf))[IP]
    struct.pack_into("!H", buf, lay.tcp + 16, in4_chksum(6, ip, bytes(buf[lay.tcp:lay.ip_end])))


def routed(frame: bytes, out_port: int) -> bytes:
    """What routing emits: MACs of the out port, TTL - 1, IPv4 checksum recomputed."""
    buf = bytearray(frame)
    buf[0:6] = bytes.fromhex(HOST_MAC[out_port].replace(":", ""))
    buf[6:12] = bytes.fromhex(SWITCH_MAC[out_port].replace(":", ""))
    buf[14 + 8] -= 1
    ihl = (buf[14] & 0x0F) * 4
    struct.pack_into("!H", buf, 24, 0)
    struct.pack_into("!H", buf, 24, checksum(bytes(buf[14:14 + ihl])))
    return bytes(buf)


def translate(frame: bytes, t: Translation, out_port: int) -> bytes:
    """What a translate / translate_nat / passing-hold entry emits for ``frame``."""
    buf = bytearray(routed(frame, out_port))
    lay = layout(frame)
    flags = buf[lay.tcp + 13]
    has_ack = bool(flags & TCP_FLAGS["A"])
    _add32(buf, lay.tcp + 4, t.seq)
    if has_ack:
        _add32(buf, lay.tcp + 8, t.ack)
    if not flags & TCP_FLAGS["S"]:
        win = struct.unpack_from("!H", buf, lay.tcp + 14)[0]
        struct.pack_into("!H", buf, lay.tcp + 14, min(0xFFFF, (win << t.shift_from) >> t.shift_to))
    for kind, off, length in tcp_options_at(frame):
        if kind == 8:
            _add32(buf, off + 2, t.tsval)
            if has_ack:
                _add32(buf, off + 6, t.tsecr)
        elif kind == 5:
            for edge in range(off + 2, off + length, 4):
                _add32(buf, edge, t.ack)
    if t.nat is not None:
        src, dst, sport, dport = t.nat
        buf[lay.ip + 12:lay.ip + 16] = bytes(int(x) for x in src.split("."))
        buf[lay.ip + 16:lay.ip + 20] = bytes(int(x) for x in dst.split("."))
        struct.pack_into("!HH", buf, lay.tcp, sport, dport)
    fix_checksums(buf)
    return bytes(buf)


def held_ack(frame: bytes, t: Translation, out_port: int) -> bytes:
    """What a hold_acking entry emits for the data segment ``frame``: its pure ACK, translated as
    ``translate`` would, built anew the way Linux lays out such an ACK (IPv4 with DF, id 0, TTL 64,
    no IP options; TCP flags ACK alone; NOP NOP Timestamps if the segment had them, no other
    option) with no payload."""
    tr = Ether(translate(frame, t, out_port))
    ts = [o for o in tr[TCP].options if o[0] == "Timestamp"]
    opts = [("NOP", None), ("NOP", None), ts[0]] if ts else []
    ack = (Ether(src=tr.src, dst=tr.dst)
           / IP(src=tr[IP].src, dst=tr[IP].dst, flags="DF", id=0, ttl=64, tos=0)
           / TCP(sport=tr[TCP].sport, dport=tr[TCP].dport, seq=tr[TCP].seq, ack=tr[TCP].ack, flags="A",
                 window=tr[TCP].window, options=opts))
    return bytes(ack)


def checksums_ok(frame: bytes) -> tuple[bool, str]:
    """Whether the IPv4 and (if present) TCP checksums of ``frame`` equal a full recomputation."""
    pkt = Ether(frame)
    ip_sum = pkt[IP].chksum
    ihl = pkt[IP].ihl * 4
    hdr = bytearray(frame[14:14 + ihl])
    struct.pack_into("!H", hdr, 10, 0)
    if checksum(bytes(hdr)) != ip_sum:
        return False, f"IPv4 checksum {ip_sum:#06x}, full recomputation {checksum(bytes(hdr)):#06x}"
    if pkt.haslayer(TCP):
        buf = bytearray(frame)
        fix_checksums(buf)
        lay = layout(frame)
        got = struct.unpack_from("!H", frame, lay.tcp + 16)[0]
        want = struct.unpack_from("!H", buf, lay.tcp + 16)[0]
        if got != want:
            return False, f"TCP checksum {got:#06x}, full recomputation {want:#06x}"
    return True, ""
