"""PTF: packet-out, the controller sending a crafted segment out of any port."""

from __future__ import annotations

from packets import CLIENT_IP, SERVER_IP, tcp_segment
from splice_base import CLIENT, PROXY, SERVER, SpliceTest


class PacketOutAnyPort(SpliceTest):
    """A packet-out leaves by the port it names, byte for byte (no routing, no rewrite)."""

    def runTest(self) -> None:
        self.add_default_routes()
        for port in (CLIENT, SERVER, PROXY):
            # a deliberately odd segment: a wrong checksum and TTL 1 must survive untouched
            frame = bytearray(tcp_segment(in_port=port, src=SERVER_IP, dst=CLIENT_IP, flags="SA", ttl=1,
                                          options=[("MSS", 1000), ("WScale", 3)]))
            frame[-1] ^= 0xFF
            self.client.packet_out(bytes(frame), egress_port=port)
            self.expect_bytes(bytes(frame), port)
        self.expect_nothing_else()

