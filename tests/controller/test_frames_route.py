"""route_frame: how the controller sends on a SYN it could not parse (the switch gave it the only copy)."""

from __future__ import annotations

from p4splice.controller.frames import route_frame
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether


def test_route_frame_rewrites_macs_and_ttl_only() -> None:
    syn = Ether(src="02:00:00:00:01:01", dst="02:00:00:00:00:fe") / IP(src="10.0.1.1", dst="10.0.2.1", ttl=64) / \
        TCP(sport=40000, dport=80, flags="S", options=[("MSS", 1460), ("MSS", 1400)])
    raw = bytes(syn)
    out = route_frame(raw, bytes.fromhex("0200000000fe"), bytes.fromhex("020000000201"))
    assert out is not None
    got = Ether(out)
    assert (got.src, got.dst, got[IP].ttl) == ("02:00:00:00:00:fe", "02:00:00:00:02:01", 63)
    assert bytes(got[TCP]) == bytes(syn[TCP])  # options, ports, checksum: byte for byte
    ip = got[IP].copy()
    ip.chksum = None
    assert IP(bytes(ip)).chksum == got[IP].chksum


def test_route_frame_refuses_spent_ttl_and_non_ipv4() -> None:
    frame = bytes(Ether() / IP(ttl=1) / TCP())
    assert route_frame(frame, bytes(6), bytes(6)) is None
    assert route_frame(b"\x00" * 12 + b"\x86\xdd" + b"\x00" * 40, bytes(6), bytes(6)) is None
