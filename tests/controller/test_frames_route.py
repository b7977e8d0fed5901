"""route_frame: how the controller sends on a SYN it could not parse (the switch gave it the only copy);
checksum_error: which checksum of a segment is wrong (the controller never acts on, or repairs, one)."""

from __future__ import annotations

from p4splice.controller.frames import checksum_error, route_frame
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Dot1Q, Ether


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


def test_checksum_error_names_the_wrong_one() -> None:
    good = bytes(Ether() / IP(src="10.0.1.1", dst="10.0.2.1") / TCP(flags="S", options=[("MSS", 1460)]) / b"hi")
    assert checksum_error(good) is None
    bad_ip = bytearray(good)
    bad_ip[24] ^= 0x10
    assert checksum_error(bytes(bad_ip)) == "IPv4 header"
    bad_tcp = bytearray(good)
    bad_tcp[-1] ^= 0x01  # the payload: only the TCP checksum covers it
    assert checksum_error(bytes(bad_tcp)) == "TCP"
    padded = good + b"\x00" * 8  # Ethernet padding past the IPv4 total length is not checked
    assert checksum_error(padded) is None
    tagged = bytes(Ether() / Dot1Q(vlan=5) / IP(src="10.0.1.1", dst="10.0.2.1") / TCP(flags="S"))
    assert checksum_error(tagged) is None
