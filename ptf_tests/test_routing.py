"""PTF: the switch as an ordinary IPv4 router (LPM, MAC rewrite, TTL, IPv4 checksum)."""

from __future__ import annotations

from packets import CLIENT_IP, SERVER_IP, routed, tcp_segment, udp_datagram
from scapy.layers.l2 import ARP, Ether
from splice_base import CLIENT, PIN_ROUTED, PROXY, SERVER, SpliceTest


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


class RouteToCpu(SpliceTest):
    """A to_cpu route hands the frame to the controller untouched (TTL and MACs as received), with
    the port it came in on; a longer route to a port still wins over a shorter to_cpu one."""

    def runTest(self) -> None:
        self.add_default_routes()
        self.add_cpu_route("10.0.3.254/32")
        self.add_cpu_route("10.9.0.0/16")
        self.add_route("10.9.1.0/24", SERVER)
        for port in (PROXY, CLIENT):
            frame = udp_datagram(in_port=port, src="10.0.3.1", dst="10.0.3.254", ttl=1)
            self.send(port, frame)
            self.expect_packet_in(PIN_ROUTED, port, frame)
        frame = udp_datagram(dst="10.9.1.7")
        self.send(CLIENT, frame)
        self.expect(routed(frame, SERVER), SERVER)
        self.expect_no_packet_in()
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
