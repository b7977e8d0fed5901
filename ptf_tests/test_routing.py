"""PTF: the switch as an ordinary IPv4 router (LPM, MAC rewrite, TTL, IPv4 checksum)."""

from __future__ import annotations

from packets import CLIENT_IP, SERVER_IP, routed, tcp_segment, udp_datagram
from scapy.layers.l2 import ARP, Ether
from splice_base import CLIENT, PROXY, SERVER, SpliceTest


class RouteUdp(SpliceTest):
    """A UDP datagram follows the longest prefix, gets the port's MACs and TTL - 1."""

    def runTest(self) -> None:
        self.add_default_routes()
        self.add_route("10.0.2.128/25", PROXY)  # longer prefix wins
        frame = udp_datagram(dst=SERVER_IP)
        self.send(CLIENT, frame)
        self.expect(routed(frame, SERVER), SERVER)
        frame = udp_datagram(dst="10.0.2.200")
        self.send(CLIENT, frame)
        self.expect(routed(frame, PROXY), PROXY)
        self.expect_nothing_else()


class RouteTcpUntouched(SpliceTest):
    """A TCP segment of an unproxied, untracked flow keeps its TCP header byte for byte."""

    def runTest(self) -> None:
        self.add_default_routes()
        frame = tcp_segment(flags="PA", seq=0xFFFFFFF0, ack=5, options=[("NOP", None), ("NOP", None),
                            ("Timestamp", (11, 22))], payload=b"x" * 30)
        self.send(CLIENT, frame)
        self.expect(routed(frame, SERVER), SERVER)
        back = tcp_segment(in_port=SERVER, src=SERVER_IP, dst=CLIENT_IP, sport=80, dport=43210, flags="A")
        self.send(SERVER, back)
        self.expect(routed(back, CLIENT), CLIENT)
        self.expect_nothing_else()


class RouteIpv4Options(SpliceTest):
    """IPv4 options are skipped by IHL and carried; TCP behind them is still parsed."""

    def runTest(self) -> None:
        self.add_default_routes()
        frame = tcp_segment(flags="A", ip_options=b"\x01\x01\x01\x00" * 2, payload=b"opt")
        self.send(CLIENT, frame)
        self.expect(routed(frame, SERVER), SERVER)
        self.expect_nothing_else()


class NoRouteDrops(SpliceTest):
    """No matching prefix: dropped (the table's default action)."""

    def runTest(self) -> None:
        self.add_route("10.0.2.0/24", SERVER)
        self.send(CLIENT, udp_datagram(dst="192.0.2.1"))
        self.expect_nothing_else()


class TtlExpiredDrops(SpliceTest):
    """TTL 1 cannot be forwarded: dropped, not sent with TTL 0."""

    def runTest(self) -> None:
        self.add_default_routes()
        self.send(CLIENT, udp_datagram(ttl=1))
        self.send(CLIENT, tcp_segment(ttl=1))
        self.expect_nothing_else()


class NonIpv4Drops(SpliceTest):
    """Frames that are not IPv4 (here ARP) are not routed."""

    def runTest(self) -> None:
        self.add_default_routes()
        self.send(CLIENT, bytes(Ether(src="02:00:00:00:01:01", dst="ff:ff:ff:ff:ff:ff")
                                / ARP(pdst=SERVER_IP)))
        self.expect_nothing_else()
