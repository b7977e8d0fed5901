"""Seeded frames for the programs of tests/p4sim/programs on the switch pair: their table state,
their markers, and frames that walk their parsers (VLAN stacks, IPv4 headers good and bad, the
packet-out path), with the counters to compare afterwards."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.l2 import ARP, Dot1Q, Ether
from scapy.packet import Raw

from tests.difftest.pair import CPU, Entry, MarkerPlan, SwitchPair, marker_payload
from tests.difftest.splice_cases import Frame

PROGRAMS_DIR = Path(__file__).resolve().parents[1] / "p4sim" / "programs"
PORTS = (1, 2, 3)
CPU_PORT = 255


def _mac(port: int) -> str:
    return f"02:00:00:00:0{port}:0{port}"


@dataclass
class Program:
    source: Path
    entries: list[Entry]
    markers: MarkerPlan
    frames: Callable[[int, int], Iterator[Frame]]
    counters: list[tuple[str, int]] = field(default_factory=list)
    clone_sessions: dict[int, list[int]] = field(default_factory=dict)
    ports: Sequence[int] = PORTS

    def setup(self, pair: SwitchPair) -> None:
        for session, ports in self.clone_sessions.items():
            pair.clone_session(session, ports)


# --- parse_l3_full.p4: LPM routing, VLAN stacks, checksums, clones, packet-out --------------------------

L3 = "MyIngress.ipv4_lpm"


def _l3_marker(port: int | str, n: int) -> bytes:
    third = 255 if port == CPU else int(port)
    return bytes(Ether(src=_mac(9), dst=_mac(1)) / IP(src="10.99.0.1", dst=f"10.99.{third}.1", ttl=64)
                 / UDP(sport=9, dport=9) / Raw(marker_payload(n)))


def _l3_frames(seed: int, count: int) -> Iterator[Frame]:
    rng = random.Random(seed)
    for i in range(count):
        in_port = rng.choice(PORTS)
        dst = rng.choice(["10.0.1.5", "10.0.2.5", "10.0.3.5", "10.0.9.9", "192.168.1.1", "10.0.2.255"])
        l4 = rng.choice([TCP(sport=rng.randrange(65536), dport=80, flags="S"), UDP(sport=53, dport=53), ICMP()])
        ip = IP(src=f"10.0.{in_port}.1", dst=dst, ttl=rng.choice([64, 2, 1, 0]), tos=rng.choice([0, 0x28]),
                id=rng.randrange(65536))
        pkt = ip / l4 / Raw(bytes(rng.randrange(256) for _ in range(rng.randrange(0, 64))))
        kind = rng.choice(["plain", "plain", "vlan", "vlan2", "vlan3", "arp", "other", "bad_csum", "ihl", "llc",
                           "vlan_non_ip", "runt"])
        eth = Ether(src=_mac(in_port), dst="02:00:00:00:00:fe")
        if kind == "vlan":
            frame = bytes(eth / Dot1Q(vlan=rng.randrange(4096), prio=rng.randrange(8)) / pkt)
        elif kind == "vlan2":
            frame = bytes(eth / Dot1Q(vlan=10) / Dot1Q(vlan=20) / pkt)
        elif kind == "vlan3":  # one more tag than the stack holds
            frame = bytes(eth / Dot1Q(vlan=10) / Dot1Q(vlan=20) / Dot1Q(vlan=30) / pkt)
        elif kind == "arp":
            frame = bytes(eth / ARP(pdst=dst))
        elif kind == "other":
            frame = bytes(Ether(src=_mac(in_port), dst="02:00:00:00:00:fe", type=rng.choice([0x88B5, 0x86DD]))
                          / Raw(b"x" * 40))
        elif kind == "bad_csum":
            raw = bytearray(bytes(eth / pkt))
            raw[24] ^= 0xFF
            frame = bytes(raw)
        elif kind == "ihl":
            raw = bytearray(bytes(eth / pkt))
            raw[14] = 0x40 | rng.randrange(5)
            frame = bytes(raw)
        elif kind == "llc":  # a VLAN tag whose inner type is an 802.3 length: the parser rejects it
            frame = bytes(eth / Dot1Q(vlan=5, type=rng.randrange(0, 0x5DD)) / Raw(b"y" * 40))
        elif kind == "vlan_non_ip":
            frame = bytes(eth / Dot1Q(vlan=5, type=0x0800) / Raw(b"\x60" + b"z" * 39))
        elif kind == "runt":
            frame = bytes(eth / pkt)[:rng.randrange(14, 30)]  # a veth takes nothing under 14 bytes
        else:
            frame = bytes(eth / pkt)
        if rng.random() < 0.1:
            yield Frame(f"#{i} packet-out ({kind})", in_port, frame, packet_out={"egress_port": rng.choice(PORTS)})
        else:
            yield Frame(f"#{i} {kind} to {dst}", in_port, frame)


def parse_l3_full() -> Program:
    entries = [Entry(L3, {"dst": (f"10.0.{p}.0", 24)}, "ipv4_forward", {"dstAddr": _mac(p), "port": p})
               for p in PORTS]
    entries.append(Entry(L3, {"dst": ("10.0.9.0", 24)}, "send_to_cpu"))
    markers = [Entry(L3, {"dst": (f"10.99.{p}.0", 24)}, "ipv4_forward", {"dstAddr": _mac(p), "port": p})
               for p in PORTS]
    markers.append(Entry(L3, {"dst": ("10.99.255.0", 24)}, "send_to_cpu"))
    plan = MarkerPlan(markers, [*PORTS, CPU], _l3_marker, out_metadata=lambda p: {"egress_port": p})
    return Program(PROGRAMS_DIR / "parse_l3_full.p4", entries, plan, _l3_frames,
                   counters=[("MyIngress.port_counter", p) for p in (*PORTS, CPU_PORT)],
                   clone_sessions={100: [2]})


# --- grpc_cpu_learn.p4: L2 forwarding, to the CPU on a miss, packet-out ---------------------------------

LEARN_DMAC = "LearnIngress.dmac"
LEARN_SMAC = "LearnIngress.smac"


def _l2_marker(port: int | str, n: int) -> bytes:
    dst = "02:99:00:00:00:ff" if port == CPU else f"02:99:00:00:00:0{port}"
    return bytes(Ether(src=_mac(9), dst=dst, type=0x88B5) / Raw(marker_payload(n)))


def _l2_frames(seed: int, count: int) -> Iterator[Frame]:
    rng = random.Random(seed)
    for i in range(count):
        in_port = rng.choice(PORTS)
        dst = rng.choice([_mac(1), _mac(2), _mac(3), "02:00:00:00:07:07", "ff:ff:ff:ff:ff:ff"])
        length = rng.choice([14, 20, 60, 200, 1500])
        frame = bytes(Ether(src=rng.choice([_mac(in_port), "02:00:00:00:0a:0a"]), dst=dst,
                            type=rng.choice([0x0800, 0x88B5, 0x1234]))
                      / Raw(bytes(rng.randrange(256) for _ in range(max(0, length - 14)))))
        if rng.random() < 0.1:
            frame = frame[:14]  # the Ethernet header alone (a veth takes nothing shorter)
        if rng.random() < 0.1:
            yield Frame(f"#{i} packet-out", in_port, frame, packet_out={"egress_port": rng.choice(PORTS)})
        else:
            yield Frame(f"#{i} to {dst}", in_port, frame)


def grpc_cpu_learn() -> Program:
    entries = [Entry(LEARN_DMAC, {"hdr.ethernet.dst": _mac(p)}, "forward", {"port": p}) for p in PORTS]
    entries += [Entry(LEARN_SMAC, {"hdr.ethernet.src": _mac(p)}, "known") for p in PORTS]
    markers = [Entry(LEARN_DMAC, {"hdr.ethernet.dst": f"02:99:00:00:00:0{p}"}, "forward", {"port": p}) for p in PORTS]
    plan = MarkerPlan(markers, [*PORTS, CPU], _l2_marker, out_metadata=lambda p: {"egress_port": p})
    return Program(PROGRAMS_DIR / "grpc_cpu_learn.p4", entries, plan, _l2_frames)


PROGRAMS: list[Program] = [parse_l3_full(), grpc_cpu_learn()]
