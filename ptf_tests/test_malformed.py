"""PTF: malformed input is counted by reason and dropped, never rewritten, never forwarded."""

from __future__ import annotations

import struct

from packets import (
    CLIENT_IP,
    CLIENT_PORT,
    HOST_MAC,
    SERVER_IP,
    SERVICE_PORT,
    SWITCH_MAC,
    Translation,
    routed,
    tcp_segment,
    translate,
)
from scapy.layers.inet import IP
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from splice_base import (
    CLIENT,
    MAL_IPV4_HEADER,
    MAL_IPV4_LENGTH,
    MAL_TCP_DATA_OFFSET,
    MAL_TCP_OPT_DUPLICATE,
    MAL_TCP_OPT_LENGTH,
    MAL_TCP_OPT_OVERRUN,
    MAL_TCP_OPT_TOO_MANY,
    MAL_TRUNCATED,
    PROXY,
    SpliceTest,
)


def raw_tcp(options: bytes = b"", *, doff: int | None = None, payload: bytes = b"",
            flags: int = 0x18) -> bytes:
    """A frame whose TCP header is built by hand (any data offset, any option bytes)."""
    if doff is None:
        doff = 5 + (len(options) + 3) // 4
        options = options.ljust((doff - 5) * 4, b"\x00")
    tcp = struct.pack("!HHIIBBHHH", CLIENT_PORT, SERVICE_PORT, 1000, 2000, doff << 4, flags, 512, 0, 0)
    return bytes(Ether(src=HOST_MAC[CLIENT], dst=SWITCH_MAC[CLIENT])
                 / IP(src=CLIENT_IP, dst=SERVER_IP, proto=6) / Raw(tcp + options + payload))


TS_OPT = bytes([8, 10]) + bytes(8)


class MalformedBase(SpliceTest):
    def setUp(self) -> None:
        super().setUp()
        self.add_default_routes()
        # a translating entry for the very flow: a malformed segment must not use it
        self.add_flow(CLIENT, CLIENT_IP, SERVER_IP, CLIENT_PORT, SERVICE_PORT, "translate",
                      Translation(seq=1, ack=1, tsval=1, tsecr=1), PROXY)

    def assert_dropped(self, frame: bytes, reason: int) -> None:
        before = self.malformed_count(reason)
        self.send(CLIENT, frame)
        self.client.wait_for(lambda: self.malformed_count(reason) == before + 1,
                             what=f"malformed[{reason}] to count {frame.hex()}")
        self.expect_nothing_else()


class DataOffsetTooSmall(MalformedBase):
    def runTest(self) -> None:
        for doff in (0, 4):
            self.assert_dropped(raw_tcp(doff=doff, payload=b"x" * 20), MAL_TCP_DATA_OFFSET)


class OptionOverrun(MalformedBase):
    """An option whose length runs past the data offset, or whose length byte is outside it."""

    def runTest(self) -> None:
        self.assert_dropped(raw_tcp(bytes([253, 10, 0, 0]), doff=6, payload=b"y" * 8), MAL_TCP_OPT_OVERRUN)
        self.assert_dropped(raw_tcp(bytes([1, 1, 1, 2]), doff=6, payload=b"y" * 8), MAL_TCP_OPT_OVERRUN)
        self.assert_dropped(raw_tcp(bytes([1, 1]) + TS_OPT, doff=7, payload=b"y" * 8), MAL_TCP_OPT_OVERRUN)
        self.assert_dropped(raw_tcp(bytes([1, 1, 5, 18]) + bytes(8), doff=8), MAL_TCP_OPT_OVERRUN)


class OptionBadLength(MalformedBase):
    """Lengths that are wrong for the kind, or below 2 for an unknown kind."""

    def runTest(self) -> None:
        for opt in (bytes([2, 3, 5]), bytes([3, 4, 7, 0]), bytes([4, 3, 0]), bytes([8, 8]) + bytes(6),
                    bytes([5, 12]) + bytes(10), bytes([253, 1]), bytes([253, 0])):
            self.assert_dropped(raw_tcp(opt), MAL_TCP_OPT_LENGTH)


class OptionDuplicate(MalformedBase):
    def runTest(self) -> None:
        self.assert_dropped(raw_tcp(TS_OPT + TS_OPT), MAL_TCP_OPT_DUPLICATE)
        sack = bytes([5, 10]) + bytes(8)
        self.assert_dropped(raw_tcp(sack + sack), MAL_TCP_OPT_DUPLICATE)


class TooManyOptions(MalformedBase):
    """Forty NOPs need more slots than the parser has; sixteen fit."""

    def runTest(self) -> None:
        self.assert_dropped(raw_tcp(bytes([1]) * 40), MAL_TCP_OPT_TOO_MANY)
        ok = tcp_segment(flags="PA", options=[("NOP", None)] * 16, payload=b"fits")
        self.send(CLIENT, ok)
        self.expect(translate(ok, Translation(seq=1, ack=1, tsval=1, tsecr=1), PROXY), PROXY)
        self.expect_nothing_else()


class Truncated(MalformedBase):
    """A frame cut inside the TCP header or its options, or shorter than the IPv4 total length."""

    def runTest(self) -> None:
        full = tcp_segment(flags="PA", options=[("NOP", None), ("NOP", None), ("Timestamp", (1, 2))],
                           payload=b"z" * 40)
        self.assert_dropped(full[:14 + 20 + 10], MAL_TRUNCATED)   # inside the fixed TCP header
        self.assert_dropped(full[:14 + 20 + 20 + 5], MAL_TRUNCATED)  # inside the options
        self.assert_dropped(full[:-10], MAL_TRUNCATED)            # payload shorter than total_len
        self.assert_dropped(full[:14 + 10], MAL_TRUNCATED)        # inside the IPv4 header


class Ipv4HeaderBad(MalformedBase):
    """IHL below 5, or a version that is not 4, under the IPv4 ethertype."""

    def runTest(self) -> None:
        frame = bytearray(tcp_segment(flags="A", payload=b"q" * 20))
        for first in (0x44, 0x65):
            frame[14] = first
            self.assert_dropped(bytes(frame), MAL_IPV4_HEADER)


class Ipv4LengthShort(MalformedBase):
    """total_len smaller than the IPv4 + TCP headers (the frame itself is long enough)."""

    def runTest(self) -> None:
        frame = bytearray(tcp_segment(flags="A", payload=b"q" * 20))
        struct.pack_into("!H", frame, 16, 30)
        self.assert_dropped(bytes(frame), MAL_IPV4_LENGTH)


class EthernetPaddingIsFine(MalformedBase):
    """A frame longer than total_len (Ethernet padding) is not malformed; the padding is carried."""

    def runTest(self) -> None:
        self.client.cleanup()
        self.add_default_routes()
        frame = tcp_segment(flags="A") + bytes(6)
        self.send(CLIENT, frame)
        self.expect(routed(frame, 2), 2)
        self.expect_nothing_else()
