"""PTF: per-flow translation: seq, ack, SACK edges, timestamps, window, NAT, hold; checksums."""

from __future__ import annotations

import random

from packets import (
    CLIENT_IP,
    CLIENT_PORT,
    MASK32,
    PROXY_IP,
    SERVER_IP,
    SERVICE_PORT,
    Translation,
    held_ack,
    routed,
    tcp_segment,
    translate,
)
from splice_base import CLIENT, PIN_FIN_HELD, PIN_HELD, PIN_HELD_COPY, PROXY, SERVER, SpliceTest

NEAR_WRAP = 0xFFFFFFF0  # values that cross 2^32 when a delta of 0x20 or more is added
TS = ("Timestamp", (NEAR_WRAP + 3, 0xFFFFFF00))


def sack(*edges: int) -> tuple[str, tuple[int, ...]]:
    return ("SAck", tuple(e & MASK32 for e in edges))


class TranslateBase(SpliceTest):
    """A flow entry for client -> server segments arriving on the client port."""

    action = "translate"

    def install(self, t: Translation, out_port: int = PROXY, action: str | None = None) -> None:
        self.add_flow(CLIENT, CLIENT_IP, SERVER_IP, CLIENT_PORT, SERVICE_PORT, action or self.action, t, out_port)

    def check(self, frame: bytes, t: Translation, out_port: int = PROXY) -> None:
        self.send(CLIENT, frame)
        self.expect(translate(frame, t, out_port), out_port)

    def segment(self, **kw: object) -> bytes:
        kw.setdefault("flags", "PA")
        kw.setdefault("payload", b"data" * 8)
        return tcp_segment(**kw)  # type: ignore[arg-type]


class SeqDeltaAcrossWrap(TranslateBase):
    """seq + delta mod 2^32; nothing else changes (ack, options, window)."""

    def runTest(self) -> None:
        t = Translation(seq=0x100)
        self.install(t)
        self.check(self.segment(seq=NEAR_WRAP, ack=77, options=[("NOP", None), ("NOP", None), TS]), t)
        # subtracting: delta 2^32 - 0x100
        self.client.cleanup()
        t = Translation(seq=-0x100)
        self.install(t)
        self.check(self.segment(seq=0x10, ack=77), t)
        self.expect_nothing_else()


class AckDeltaAcrossWrap(TranslateBase):
    """ack + delta mod 2^32 when ACK is set; a segment without ACK keeps its ack field."""

    def runTest(self) -> None:
        t = Translation(ack=0x7FFFFFFF)
        self.install(t)
        self.check(self.segment(seq=5, ack=NEAR_WRAP), t)
        no_ack = self.segment(flags="P", seq=5, ack=NEAR_WRAP)
        self.check(no_ack, t)
        self.expect_nothing_else()


class TsvalDelta(TranslateBase):
    """TSval + delta; TSecr untouched when its delta is 0."""

    def runTest(self) -> None:
        t = Translation(tsval=0x20)
        self.install(t)
        self.check(self.segment(options=[("NOP", None), ("NOP", None), TS]), t)
        self.expect_nothing_else()


class TsecrDelta(TranslateBase):
    """TSecr + delta with ACK set; without ACK the TSecr is not an echo and stays."""

    def runTest(self) -> None:
        t = Translation(tsecr=0x1000)
        self.install(t)
        self.check(self.segment(options=[("NOP", None), ("NOP", None), TS]), t)
        self.check(self.segment(flags="P", options=[("NOP", None), ("NOP", None), TS]), t)
        self.expect_nothing_else()


class SackBlocks(TranslateBase):
    """Every edge of 1, 2, 3 and 4 SACK blocks moves by the ack delta (across the wrap)."""

    def runTest(self) -> None:
        t = Translation(ack=0x40)
        self.install(t)
        for n in range(1, 5):
            edges = [NEAR_WRAP + 8 * i for i in range(2 * n)]
            opts = [("NOP", None), ("NOP", None), sack(*edges)]
            self.check(self.segment(flags="A", payload=b"", ack=NEAR_WRAP - 100, options=opts), t)
        # with timestamps, three blocks fit
        opts = [("NOP", None), ("NOP", None), TS, ("NOP", None), ("NOP", None), sack(1, 2, 3, 4, 5, 6)]
        self.check(self.segment(flags="A", payload=b"", options=opts), t)
        self.expect_nothing_else()


class WithoutTimestamps(TranslateBase):
    """A segment without the timestamp option is rewritten only where it has fields."""

    def runTest(self) -> None:
        t = Translation(seq=3, ack=4, tsval=5, tsecr=6)
        self.install(t)
        self.check(self.segment(), t)
        self.check(self.segment(options=[("NOP", None), ("NOP", None), sack(10, 20)]), t)
        self.expect_nothing_else()


class AllFieldsTogether(TranslateBase):
    """Every delta at once, all crossing 2^32, with timestamps and SACK."""

    def runTest(self) -> None:
        t = Translation(seq=0x30, ack=0x31, tsval=0x32, tsecr=0x33, shift_from=7, shift_to=9)
        self.install(t)
        opts = [("NOP", None), ("NOP", None), TS, ("NOP", None), ("NOP", None),
                sack(NEAR_WRAP, NEAR_WRAP + 0x10, NEAR_WRAP + 0x20, NEAR_WRAP + 0x30)]
        self.check(self.segment(seq=NEAR_WRAP, ack=NEAR_WRAP + 1, window=5000, options=opts), t)
        self.expect_nothing_else()


class OddOffsetOptions(TranslateBase):
    """Timestamps and SACK at odd offsets (after one NOP, or after an odd-length unknown
    option): the checksum update must swap bytes for them."""

    def runTest(self) -> None:
        t = Translation(ack=0x01020304, tsval=0x0A0B0C0D, tsecr=0xF0E0D0C0)
        self.install(t)
        self.check(self.segment(options=[("NOP", None), TS]), t)
        self.check(self.segment(options=[(253, b"\x01"), TS, ("NOP", None), sack(100, 200)]), t)
        self.check(self.segment(options=[("NOP", None), sack(100, 200, 300, 400)]), t)
        self.expect_nothing_else()


class UnknownOptionsCarried(TranslateBase):
    """Unknown options, MSS/WS/SACK-permitted and EOL padding pass untouched around rewrites."""

    def runTest(self) -> None:
        t = Translation(seq=1, ack=2, tsval=3, tsecr=4)
        self.install(t)
        self.check(self.segment(options=[(30, b"\x11" * 10), TS, ("EOL", None)]), t)
        self.check(self.segment(options=[("MSS", 1200), ("WScale", 2), ("SAckOK", b""), (254, b"ab"),
                                         ("EOL", None)]), t)
        self.expect_nothing_else()


class WindowRescale(TranslateBase):
    """win' = min(0xFFFF, (win << from) >> to); saturates; a SYN-ACK's window is left alone (a SYN
    without ACK is never translated: test_handshake's NewConnection* tests)."""

    def runTest(self) -> None:
        t = Translation(shift_from=7, shift_to=9)
        self.install(t)
        for win in (0, 1, 3, 4, 1000, 0xFFFF):
            self.check(self.segment(window=win), t)
        self.client.cleanup()
        t = Translation(shift_from=14, shift_to=0)
        self.install(t)
        for win in (1, 3, 4, 0x1234):  # 4 << 14 = 0x10000: saturates
            self.check(self.segment(window=win), t)
        self.check(self.segment(flags="SA", payload=b"", window=0x1234), t)
        self.expect_nothing_else()


class NatRewrite(TranslateBase):
    """translate_nat: addresses and ports rewritten, both checksums still right."""

    action = "translate_nat"

    def runTest(self) -> None:
        t = Translation(seq=0x10, ack=0x20, tsval=1, tsecr=2, nat=(CLIENT_IP, PROXY_IP, 50000, 8080))
        self.install(t)
        self.check(self.segment(options=[("NOP", None), ("NOP", None), TS]), t)
        self.expect_nothing_else()


class HoldKeepsPayloadFromTheProxy(TranslateBase):
    """hold: pure ACKs pass translated; a data segment goes to the controller only (reason HELD:
    routed toward P, its TCP header untranslated); SYN and FIN are dropped (a FIN still reported, as
    FIN_HELD)."""

    action = "hold"

    def runTest(self) -> None:
        self.add_cpu_clone_session()
        t = Translation(seq=0x10, ack=0x20, tsval=1, tsecr=2)
        self.install(t)
        self.check(self.segment(flags="A", payload=b"", options=[("NOP", None), ("NOP", None), TS]), t)
        data = self.segment(flags="PA", payload=b"must not pass", options=[("NOP", None), ("NOP", None), TS])
        self.send(CLIENT, data)
        self.expect_packet_in(PIN_HELD, CLIENT, routed(data, PROXY))
        fin = self.segment(flags="FA", payload=b"")
        self.send(CLIENT, fin)
        self.expect_packet_in(PIN_FIN_HELD, CLIENT, fin)  # reported as dropped: it never reached P
        self.send(CLIENT, self.segment(flags="S", payload=b""))
        self.expect_no_packet_in()
        self.expect_nothing_else()


class HoldAckingPassesTheAckItself(TranslateBase):
    """hold_acking: pure ACKs pass translated; a data segment leaves toward P as its own pure ACK,
    translated, built by the switch (timestamps kept, SACK blocks and payload dropped), and the
    controller a copy of the segment as it came (HELD_COPY, for its payload); a FIN's ACK goes on
    too, the FIN reported (FIN_HELD, its only copy); a data segment without ACK and a SYN are
    dropped."""

    action = "hold_acking"

    def runTest(self) -> None:
        self.add_cpu_clone_session()
        t = Translation(seq=0x10, ack=-0x20, tsval=1, tsecr=2, shift_from=7, shift_to=5)
        self.install(t)
        self.check(self.segment(flags="A", payload=b"", options=[("NOP", None), ("NOP", None), TS]), t)
        for options in ([("NOP", None), ("NOP", None), TS],
                        [("NOP", None), TS, ("NOP", None), sack(0x1000, 0x2000)],  # TS at an odd offset
                        [("MSS", 1460)],
                        []):
            data = self.segment(flags="PA", seq=NEAR_WRAP, ack=5, window=1000, payload=b"must not pass" * 9,
                                options=options)
            self.send(CLIENT, data)
            self.expect_bytes(held_ack(data, t, PROXY), PROXY)
            self.expect_packet_in(PIN_HELD_COPY, CLIENT, data)  # the segment as it came, for its payload
        data = self.segment(flags="A", payload=b"x", ip_options=b"\x01\x01\x01\x00", options=[TS])
        self.send(CLIENT, data)
        self.expect_bytes(held_ack(data, t, PROXY), PROXY)  # the IPv4 options go too
        self.expect_packet_in(PIN_HELD_COPY, CLIENT, data)
        self.send(CLIENT, self.segment(flags="P", payload=b"no ACK"))
        # A FIN, with or without data: its ACK goes on, the FIN itself is dropped and reported.
        for fin in (self.segment(flags="FA", payload=b"", options=[("NOP", None), ("NOP", None), TS]),
                    self.segment(flags="FPA", payload=b"last words")):
            self.send(CLIENT, fin)
            self.expect_bytes(held_ack(fin, t, PROXY), PROXY)
            self.expect_packet_in(PIN_FIN_HELD, CLIENT, fin)
        self.send(CLIENT, self.segment(flags="S", payload=b""))
        self.expect_no_packet_in()
        self.expect_nothing_else()


class CorruptSegmentStaysCorrupt(TranslateBase):
    """A segment whose checksum does not match its bytes leaves with a checksum that still does
    not match: the incremental update carries the error, it never launders it."""

    def runTest(self) -> None:
        t = Translation(seq=0x1234, ack=0x5678, tsval=9, tsecr=10)
        self.install(t)
        good = self.segment(options=[("NOP", None), ("NOP", None), TS])
        bad = bytearray(good)
        bad[-1] ^= 0x5A  # payload damaged after the sender computed the checksum
        self.send(CLIENT, bytes(bad))
        want = bytearray(translate(good, t, PROXY))
        want[-1] ^= 0x5A
        self.expect_bytes(bytes(want), PROXY)
        self.expect_nothing_else()


class RandomSegments(TranslateBase):
    """Random deltas and fields, random option layouts: each output equals the model's."""

    def runTest(self) -> None:
        rng = random.Random(3)
        layouts = [
            lambda: [("NOP", None), ("NOP", None), ("Timestamp", (rng.getrandbits(32), rng.getrandbits(32)))],
            lambda: [("NOP", None), ("Timestamp", (rng.getrandbits(32), rng.getrandbits(32))), ("NOP", None),
                     sack(*[rng.getrandbits(32) for _ in range(4)])],
            lambda: [(rng.choice([253, 254]), bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 5)))),
                     sack(*[rng.getrandbits(32) for _ in range(2 * rng.randint(1, 3))])],
            lambda: [],
        ]
        for _ in range(3):
            self.client.cleanup()
            t = Translation(*(rng.getrandbits(32) for _ in range(4)), rng.randint(0, 14), rng.randint(0, 14))
            self.install(t)
            for _ in range(6):
                frame = self.segment(seq=rng.getrandbits(32), ack=rng.getrandbits(32),
                                     window=rng.getrandbits(16), options=rng.choice(layouts)(),
                                     payload=bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 40))))
                self.check(frame, t)
        self.expect_nothing_else()


class BothDirectionsOfALeg(SpliceTest):
    """The four per-leg entries of design note section 2 on one connection (C-P and P-S)."""

    def runTest(self) -> None:
        d1, d2, t1, t2 = 0x11111111, 0xEEEEEEEE, 0x1000, 0x2000
        sp = SERVICE_PORT
        legs = [  # (in port, src, dst, sport, dport, out port, translation)
            (CLIENT, CLIENT_IP, SERVER_IP, CLIENT_PORT, sp, PROXY, Translation(ack=d1, tsecr=t1)),
            (PROXY, SERVER_IP, CLIENT_IP, sp, CLIENT_PORT, CLIENT,
             Translation(seq=-d1, tsval=-t1, shift_from=7, shift_to=9)),
            (PROXY, CLIENT_IP, SERVER_IP, CLIENT_PORT, sp, SERVER,
             Translation(seq=-d2, tsval=-t2, shift_from=7, shift_to=7)),
            (SERVER, SERVER_IP, CLIENT_IP, sp, CLIENT_PORT, PROXY, Translation(ack=d2, tsecr=t2)),
        ]
        for in_port, src, dst, sport, dport, out_port, t in legs:
            self.add_flow(in_port, src, dst, sport, dport, "translate", t, out_port)
        for in_port, src, dst, sport, dport, out_port, t in legs:
            frame = tcp_segment(in_port=in_port, src=src, dst=dst, sport=sport, dport=dport, flags="PA",
                                seq=0xFFFFFF00, ack=0x7FFFFFF0, payload=b"leg",
                                options=[("NOP", None), ("NOP", None), ("Timestamp", (1000, 2000))])
            self.send(in_port, frame)
            self.expect(translate(frame, t, out_port), out_port)
        self.expect_nothing_else()

