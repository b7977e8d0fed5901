"""Ethernet/IPv4/TCP frames <-> the splice core's ``TcpSegment``: parse packet-ins, build packet-outs.

Hand-written with ``struct`` rather than scapy: the controller parses every punted segment and
builds every packet-out, scapy costs tens of microseconds per layer, and the wire format needed
here is small and fixed. Options are parsed and written by the core's own ``options`` module, so
the controller reads exactly what the data plane's parser accepts.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
import struct
from dataclasses import dataclass

from .splice.model import TcpSegment
from .splice.options import parse_options, serialize_options

__all__ = ["EchoReply", "FrameError", "ParsedFrame", "build_echo_request", "build_frame", "checksum_error",
           "format_mac", "mac_bytes", "parse_echo_reply", "parse_frame", "route_frame"]

ETH_IPV4 = 0x0800
ETH_VLAN = 0x8100
PROTO_ICMP = 1
PROTO_TCP = 6
ICMP_ECHO_REPLY, ICMP_ECHO_REQUEST = 0, 8
DEFAULT_TTL = 64


class FrameError(ValueError):
    """Not an IPv4/TCP frame the controller can read (truncated, another protocol, a fragment)."""


@dataclass(frozen=True, slots=True)
class ParsedFrame:
    src_mac: bytes
    dst_mac: bytes
    segment: TcpSegment
    ttl: int


def mac_bytes(mac: str | int | bytes) -> bytes:
    if isinstance(mac, bytes):
        if len(mac) != 6:
            raise ValueError(f"a MAC address is 6 bytes, not {len(mac)}")
        return mac
    if isinstance(mac, int):
        return mac.to_bytes(6, "big")
    parts = mac.split(":")
    if len(parts) != 6:
        raise ValueError(f"not a MAC address: {mac!r}")
    return bytes(int(p, 16) for p in parts)


def format_mac(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


def _ip(raw: bytes) -> str:
    return socket.inet_ntoa(raw)


@functools.lru_cache(maxsize=4096)
def _packed(ip: str) -> bytes:
    # Cached: a handshake builds ~10 frames between the same few addresses, and parsing with
    # ipaddress (which also validates) is the costliest step of building one.
    return ipaddress.IPv4Address(ip).packed


def parse_frame(frame: bytes) -> ParsedFrame:
    """The TCP segment in ``frame``. Raises ``FrameError`` for anything else, and the core's
    ``OptionError`` (a ValueError too) for malformed TCP options."""
    if len(frame) < 14:
        raise FrameError("frame shorter than an Ethernet header")
    dst_mac, src_mac = frame[0:6], frame[6:12]
    (ethertype,) = struct.unpack_from("!H", frame, 12)
    off = 14
    if ethertype == ETH_VLAN:
        if len(frame) < 18:
            raise FrameError("truncated VLAN tag")
        (ethertype,) = struct.unpack_from("!H", frame, 16)
        off = 18
    if ethertype != ETH_IPV4:
        raise FrameError(f"ethertype {ethertype:#06x} is not IPv4")
    if len(frame) < off + 20:
        raise FrameError("truncated IPv4 header")
    vihl, _tos, total, _ident, frag, ttl, proto = struct.unpack_from("!BBHHHBB", frame, off)
    ihl = (vihl & 0x0F) * 4
    if vihl >> 4 != 4 or ihl < 20:
        raise FrameError("bad IPv4 version or header length")
    if proto != PROTO_TCP:
        raise FrameError(f"IP protocol {proto} is not TCP")
    if frag & 0x1FFF or frag & 0x2000:
        raise FrameError("IPv4 fragment")
    end = off + total
    if total < ihl + 20 or len(frame) < end:
        raise FrameError("truncated IPv4 packet")
    src_ip, dst_ip = _ip(frame[off + 12 : off + 16]), _ip(frame[off + 16 : off + 20])
    t = off + ihl
    sport, dport, seq, ack, offflags, window = struct.unpack_from("!HHIIHH", frame, t)
    doff = (offflags >> 12) * 4
    if doff < 20 or t + doff > end:
        raise FrameError("bad TCP data offset")
    options = parse_options(frame[t + 20 : t + doff])
    segment = TcpSegment(
        src_ip, sport, dst_ip, dport, seq=seq, ack=ack, flags=offflags & 0x1FF, window=window,
        options=options, payload=bytes(frame[t + doff : end]),
    )
    return ParsedFrame(bytes(src_mac), bytes(dst_mac), segment, ttl)


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def checksum_error(frame: bytes) -> str | None:
    """Which checksum of an IPv4/TCP frame (as ``parse_frame`` took it) is wrong: "IPv4 header",
    "TCP", or None when both are right. The controller must not act on a segment its receiver
    would drop, let alone send it on repaired."""
    off = 18 if struct.unpack_from("!H", frame, 12)[0] == ETH_VLAN else 14
    ihl = (frame[off] & 0x0F) * 4
    if _checksum(frame[off:off + ihl]) != 0:
        return "IPv4 header"
    total = struct.unpack_from("!H", frame, off + 2)[0]
    segment = frame[off + ihl:off + total]
    pseudo = frame[off + 12:off + 20] + struct.pack("!BBH", 0, PROTO_TCP, len(segment))
    return "TCP" if _checksum(pseudo + segment) != 0 else None


def build_frame(seg: TcpSegment, src_mac: bytes, dst_mac: bytes, ttl: int = DEFAULT_TTL, ident: int = 0) -> bytes:
    """An Ethernet/IPv4/TCP frame carrying ``seg``, with both checksums right (DF set, no IP options)."""
    opts = serialize_options(seg.options)
    doff = 20 + len(opts)
    src = _packed(seg.src_ip)
    dst = _packed(seg.dst_ip)
    tcp = struct.pack(
        "!HHIIHHHH", seg.src_port, seg.dst_port, seg.seq & 0xFFFFFFFF, seg.ack & 0xFFFFFFFF,
        (doff // 4) << 12 | (seg.flags & 0x1FF), seg.window & 0xFFFF, 0, 0,
    ) + opts + seg.payload
    pseudo = src + dst + struct.pack("!BBH", 0, PROTO_TCP, len(tcp))
    csum = _checksum(pseudo + tcp)
    tcp = tcp[:16] + struct.pack("!H", csum) + tcp[18:]
    return _ethernet_ipv4(src_mac, dst_mac, src, dst, PROTO_TCP, ident, ttl, tcp)


def _ethernet_ipv4(src_mac: bytes, dst_mac: bytes, src: bytes, dst: bytes, proto: int, ident: int, ttl: int,
                   payload: bytes) -> bytes:
    """Ethernet + a 20-byte IPv4 header (DF set, its checksum right) around ``payload``."""
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident & 0xFFFF, 0x4000, ttl, proto, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
    return mac_bytes(dst_mac) + mac_bytes(src_mac) + struct.pack("!H", ETH_IPV4) + ip + payload


def route_frame(frame: bytes, src_mac: bytes, dst_mac: bytes) -> bytes | None:
    """``frame`` as a router sends it on: new MACs, TTL - 1 and the IPv4 header checksum again;
    the rest byte for byte. None when it is not IPv4 or its TTL is spent."""
    if len(frame) < 34 or struct.unpack_from("!H", frame, 12)[0] != ETH_IPV4:
        return None
    ihl = (frame[14] & 0x0F) * 4
    if ihl < 20 or len(frame) < 14 + ihl or frame[22] <= 1:
        return None
    ip = bytearray(frame[14:14 + ihl])
    ip[8] -= 1
    ip[10:12] = b"\x00\x00"
    ip[10:12] = struct.pack("!H", _checksum(bytes(ip)))
    return mac_bytes(dst_mac) + mac_bytes(src_mac) + frame[12:14] + bytes(ip) + frame[14 + ihl:]


# --- ICMP echo (the controller's probes of proxy ports) ----------------------------------------------

@dataclass(frozen=True, slots=True)
class EchoReply:
    src_ip: str
    dst_ip: str
    ident: int
    seq: int
    payload: bytes


def build_echo_request(src_ip: str, dst_ip: str, ident: int, seq: int, src_mac: bytes, dst_mac: bytes,
                       payload: bytes = b"", ttl: int = DEFAULT_TTL) -> bytes:
    """An Ethernet/IPv4/ICMP echo request with both checksums right (DF set)."""
    icmp = struct.pack("!BBHHH", ICMP_ECHO_REQUEST, 0, 0, ident & 0xFFFF, seq & 0xFFFF) + payload
    icmp = icmp[:2] + struct.pack("!H", _checksum(icmp)) + icmp[4:]
    return _ethernet_ipv4(src_mac, dst_mac, _packed(src_ip), _packed(dst_ip), PROTO_ICMP, seq, ttl, icmp)


def parse_echo_reply(frame: bytes) -> EchoReply | None:
    """The ICMP echo reply in ``frame`` (checksums verified), or None for anything else."""
    if len(frame) < 14 + 20 + 8 or struct.unpack_from("!H", frame, 12)[0] != ETH_IPV4:
        return None
    vihl, _tos, total, _ident, frag, _ttl, proto = struct.unpack_from("!BBHHHBB", frame, 14)
    ihl = (vihl & 0x0F) * 4
    end = 14 + total
    if vihl >> 4 != 4 or ihl < 20 or proto != PROTO_ICMP or frag & 0x3FFF or len(frame) < end \
            or total < ihl + 8 or _checksum(frame[14:14 + ihl]) != 0:
        return None
    icmp = frame[14 + ihl:end]
    kind, code, _csum, ident, seq = struct.unpack_from("!BBHHH", icmp)
    if kind != ICMP_ECHO_REPLY or code != 0 or _checksum(icmp) != 0:
        return None
    return EchoReply(_ip(frame[26:30]), _ip(frame[30:34]), ident, seq, icmp[8:])
