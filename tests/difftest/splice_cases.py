"""Seeded cases for p4src/splice.p4 on the switch pair: table state and frames, generated.

A case is a few ``flows`` entries with random actions and parameters (deltas near the 2^32 wrap,
window shifts in and out of range, NAT), and a few dozen frames: TCP segments of those flows and
of others, every TCP option mix the parser knows (and unknown kinds, bad lengths, too many),
flag sets, payload lengths, IPv4 options, TTLs at the edge, bad checksums, and the malformed
inputs of the Sanity control (truncations, bad IHL and data offset, short total length), plus
routed UDP, non-IPv4 frames and packet-outs. The same seed gives the same case.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from ptf_tests.packets import CLIENT_IP, HOST_MAC, PROXY_IP, SERVER_IP, SERVICE_PORT, SWITCH_MAC
from tests.difftest.pair import CPU, Entry, MarkerPlan, marker_payload

PORTS = (1, 2, 3)
CPU_PORT = 255
CLONE_SESSION = 99
PROXY_PORT = 3
MASK32 = 0xFFFFFFFF
MARKER_NET = "10.99"

ROUTES = "SpliceIngress.routing.routes"
SERVICES = "SpliceIngress.services.services"
FLOWS = "SpliceIngress.flows.flows"
MALFORMED = "SpliceIngress.sanity.malformed"
MAL_REASONS = 16

HOSTS = {1: CLIENT_IP, 2: SERVER_IP, 3: PROXY_IP}


# --- the fixed state: routes, the service, markers --------------------------------------------------

def base_entries() -> list[Entry]:
    routes = [Entry(ROUTES, {"ipv4_dst": (f"10.0.{p}.0", 24)}, "route",
                    {"port": p, "smac": SWITCH_MAC[p], "dmac": HOST_MAC[p]}) for p in PORTS]
    service = [Entry(SERVICES, {"server_addr": SERVER_IP, "server_port": SERVICE_PORT}, "proxied",
                     {"proxy_port": PROXY_PORT})]
    return routes + service


def _marker_dst(port: int | str) -> str:
    return f"{MARKER_NET}.{255 if port == CPU else port}.1"


def _marker_frame(port: int | str, n: int) -> bytes:
    return bytes(Ether(src="02:00:00:00:99:99", dst=SWITCH_MAC[1]) / IP(src=f"{MARKER_NET}.0.1", dst=_marker_dst(port))
                 / UDP(sport=9, dport=9) / Raw(marker_payload(n)))


def marker_plan() -> MarkerPlan:
    entries = [Entry(ROUTES, {"ipv4_dst": (f"{MARKER_NET}.{p}.0", 24)}, "route",
                     {"port": p, "smac": SWITCH_MAC[p], "dmac": HOST_MAC[p]}) for p in PORTS]
    entries.append(Entry(ROUTES, {"ipv4_dst": (f"{MARKER_NET}.255.0", 24)}, "to_cpu"))
    return MarkerPlan(entries, [*PORTS, CPU], _marker_frame,
                      out_metadata=lambda port: {"egress_port": port})


# --- random values ------------------------------------------------------------------------------------

def u32(rng: random.Random) -> int:
    """A 32-bit value, often at an edge of the wrap."""
    return rng.choice([
        rng.getrandbits(32), rng.getrandbits(32), 0, 1, MASK32, MASK32 - 1, 1 << 31, (1 << 31) - 1,
        MASK32 - rng.randrange(1 << 16), rng.randrange(1 << 16),
    ])


@dataclass
class Flow:
    """A flow key as the flows table matches it."""

    in_port: int
    src: str
    dst: str
    sport: int
    dport: int

    def match(self) -> dict[str, object]:
        return {"ingress_port": self.in_port, "src_addr": self.src, "dst_addr": self.dst,
                "src_port": self.sport, "dst_port": self.dport}


def random_flow(rng: random.Random) -> Flow:
    in_port = rng.choice(PORTS)
    src = HOSTS[in_port]
    dst = HOSTS[rng.choice([p for p in PORTS if p != in_port])]
    return Flow(in_port, src, dst, rng.randrange(1, 65536), rng.choice([SERVICE_PORT, rng.randrange(1, 65536)]))


def flow_entry(rng: random.Random, flow: Flow) -> Entry:
    action = rng.choice(["translate", "translate", "translate_nat", "hold", "punt", "drop"])
    if action in ("punt", "drop"):
        return Entry(FLOWS, flow.match(), action)
    out = rng.choice(PORTS)
    shift_range = 15 if rng.random() < 0.9 else 256  # now and then a shift the program must bound
    params: dict[str, object] = {
        "port": out, "smac": SWITCH_MAC[out], "dmac": HOST_MAC[out],
        "seq_delta": u32(rng), "ack_delta": u32(rng), "tsval_delta": u32(rng), "tsecr_delta": u32(rng),
        "win_shift_from": rng.randrange(shift_range), "win_shift_to": rng.randrange(shift_range),
    }
    if action == "translate_nat":
        params |= {"new_src_addr": HOSTS[rng.choice(PORTS)], "new_dst_addr": HOSTS[out],
                   "new_src_port": rng.randrange(1, 65536), "new_dst_port": rng.randrange(1, 65536)}
    return Entry(FLOWS, flow.match(), action, params)


# --- TCP options ----------------------------------------------------------------------------------------

def tcp_options(rng: random.Random) -> bytes:
    """Raw TCP option bytes: well-formed mixes most of the time, broken ones now and then."""
    opts = b""
    for _ in range(rng.choice([0, 0, 1, 2, 3, 4, 5, 8, 12, 17])):
        kind = rng.choice(["nop", "nop", "mss", "ws", "sackok", "sack", "ts", "ts", "eol", "unknown", "bad"])
        if kind == "nop":
            opts += b"\x01"
        elif kind == "eol":
            opts += b"\x00"
        elif kind == "mss":
            opts += struct.pack("!BBH", 2, 4, rng.randrange(65536))
        elif kind == "ws":
            opts += struct.pack("!BBB", 3, 3, rng.randrange(20))
        elif kind == "sackok":
            opts += b"\x04\x02"
        elif kind == "sack":
            blocks = rng.randrange(1, 5)
            opts += struct.pack("!BB", 5, 2 + 8 * blocks) + b"".join(
                struct.pack("!II", u32(rng), u32(rng)) for _ in range(blocks))
        elif kind == "ts":
            opts += struct.pack("!BBII", 8, 10, u32(rng), u32(rng))
        elif kind == "unknown":
            n = rng.randrange(0, 6)
            opts += struct.pack("!BB", rng.choice([6, 7, 19, 28, 30, 34, 253, 254]), 2 + n) + bytes(
                rng.randrange(256) for _ in range(n))
        else:  # a length the parser must refuse: 0, 1, a wrong fixed length, or past the end
            k = rng.choice([2, 3, 5, 8, 30])
            opts += struct.pack("!BB", k, rng.choice([0, 1, 3, 5, 9, 11, 40]))
    if len(opts) > 40:
        opts = opts[:40]
    return opts


# --- frames ----------------------------------------------------------------------------------------------

@dataclass
class Frame:
    what: str
    in_port: int
    data: bytes
    packet_out: dict[str, int] | None = None


def tcp_frame(rng: random.Random, flow: Flow, what: str) -> Frame:
    flags = rng.choice(["A", "A", "PA", "PA", "S", "SA", "F", "FA", "R", "RA", "FPA", "SR", "", "UA", "EA", "CA",
                        "SF", "FSRPAUEC"])
    payload = bytes(rng.randrange(256) for _ in range(rng.choice([0, 0, 1, 7, 40, 200, 536, 1400])))
    opts = tcp_options(rng)
    pad = (-len(opts)) % 4
    opts += b"\x00" * pad if rng.random() < 0.9 else b""
    data_offset = 5 + len(opts) // 4
    ip_options = rng.choice([b"", b"", b"", b"\x01\x01\x01\x00", b"\x94\x04\x00\x00"])
    ttl = rng.choice([64, 64, 64, 2, 1, 0, 255])
    tcp = TCP(sport=flow.sport, dport=flow.dport, seq=u32(rng), ack=u32(rng), flags=flags,
              window=rng.choice([0, 1, 1024, 65535, rng.randrange(65536)]),
              urgptr=rng.choice([0, 0, rng.randrange(65536)]), dataofs=data_offset)
    ip = IP(src=flow.src, dst=flow.dst, ttl=ttl, id=rng.randrange(65536),
            tos=rng.choice([0, 0, 0x10, 0xb8]), flags=rng.choice(["", "", "DF"]))
    if ip_options:
        ip.options = [Raw(ip_options)]  # type: ignore[list-item]
    # the option bytes ride as the start of the payload, inside the header dataofs sizes; scapy's
    # checksum covers the whole segment, so it is right whatever they hold
    pkt = Ether(src=HOST_MAC[flow.in_port], dst=SWITCH_MAC[flow.in_port]) / ip / tcp / Raw(opts + payload)
    raw = bytearray(bytes(pkt))
    if rng.random() < 0.06:
        what += ", bad TCP checksum"
        raw[-1 if payload else 14 + len(ip_options) + 20 + 16] ^= 0x5A
    if rng.random() < 0.04:
        what += ", bad IPv4 checksum"
        raw[24] ^= 0x33
    return Frame(what, flow.in_port, bytes(raw))


def malformed_frame(rng: random.Random, flow: Flow) -> Frame:
    """A frame the Sanity control (or the parser) must count and drop, or an edge it must pass."""
    base = bytearray(tcp_frame(rng, flow, "").data)
    kind = rng.choice(["truncated", "runt", "ihl", "version", "total_len_short", "total_len_long", "data_offset",
                       "data_offset_big", "fragment", "not_ipv4", "ether_only", "udp", "ip_only"])
    if kind == "truncated":
        base = base[:rng.randrange(15, max(16, len(base)))]
    elif kind == "runt":  # shorter than an IPv4 header (a veth takes nothing under 14 bytes)
        base = base[:rng.randrange(14, 34)]
    elif kind == "ihl":
        base[14] = 0x40 | rng.randrange(5)
    elif kind == "version":
        base[14] = (rng.choice([0, 6, 15]) << 4) | (base[14] & 0x0F)
    elif kind == "total_len_short":
        base[16:18] = struct.pack("!H", rng.randrange(0, 40))
    elif kind == "total_len_long":
        base[16:18] = struct.pack("!H", len(base) - 14 + rng.randrange(1, 100))
    elif kind == "data_offset":
        ihl = (base[14] & 0x0F) * 4
        base[14 + ihl + 12] = (rng.randrange(5) << 4) | (base[14 + ihl + 12] & 0x0F)
    elif kind == "data_offset_big":
        ihl = (base[14] & 0x0F) * 4
        base[14 + ihl + 12] = (15 << 4) | (base[14 + ihl + 12] & 0x0F)
    elif kind == "fragment":
        base[20:22] = struct.pack("!H", rng.choice([0x2000, 0x0001, 0x2010, 0x00FF]))
    elif kind == "not_ipv4":
        base[12:14] = struct.pack("!H", rng.choice([0x86DD, 0x0806, 0x8100, 0x88CC, 0x0000]))
    elif kind == "ether_only":
        base = base[:14]
    elif kind == "udp":
        return Frame("routed UDP", flow.in_port, bytes(Ether(src=HOST_MAC[flow.in_port], dst=SWITCH_MAC[flow.in_port])
                                                     / IP(src=flow.src, dst=flow.dst, ttl=rng.choice([64, 1]))
                                                     / UDP(sport=5000, dport=53) / Raw(b"q" * rng.randrange(60))))
    elif kind == "ip_only":
        base[23] = rng.choice([1, 17, 47, 255])
    return Frame(f"malformed: {kind}", flow.in_port, bytes(base))


# --- cases -----------------------------------------------------------------------------------------------

@dataclass
class Case:
    seed: int
    entries: list[Entry] = field(default_factory=list)
    frames: list[Frame] = field(default_factory=list)


def generate(seed: int, frames: int = 40, flows: int = 3) -> Case:
    rng = random.Random(seed)
    case = Case(seed)
    keys = [random_flow(rng) for _ in range(flows)]
    seen = set()
    for f in keys:
        k = (f.in_port, f.src, f.dst, f.sport, f.dport)
        if k not in seen:
            seen.add(k)
            case.entries.append(flow_entry(rng, f))
    # the reverse of a flow too, now and then, as the controller installs legs in pairs
    for _ in range(frames):
        r = rng.random()
        if r < 0.55:
            f = rng.choice(keys)
            case.frames.append(tcp_frame(rng, f, f"segment of flow {f.sport}->{f.dport}"))
        elif r < 0.70:
            f = random_flow(rng)
            case.frames.append(tcp_frame(rng, f, f"segment of no flow {f.sport}->{f.dport}"))
        elif r < 0.78:
            # a SYN or SYN-ACK of the proxied service: services decide
            c = Flow(1, CLIENT_IP, SERVER_IP, rng.randrange(1, 65536), SERVICE_PORT)
            s = Flow(rng.choice([2, PROXY_PORT]), SERVER_IP, CLIENT_IP, SERVICE_PORT, c.sport)
            fr = tcp_frame(rng, rng.choice([c, s]), "service handshake segment")
            case.frames.append(fr)
        elif r < 0.95:
            case.frames.append(malformed_frame(rng, rng.choice(keys)))
        else:
            f = rng.choice(keys)
            fr = tcp_frame(rng, f, "packet-out")
            fr.packet_out = {"egress_port": rng.choice(PORTS)}
            case.frames.append(fr)
    return case


def cases(seed: int, count: int, frames: int = 40) -> Iterator[Case]:
    for i in range(count):
        yield generate(seed * 100_003 + i, frames)
