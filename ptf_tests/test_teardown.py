"""PTF: FIN reports (fin_t digests) and RST copies, punt/drop flow actions, per-flow counters and idle timeout."""

from __future__ import annotations

from packets import (
    CLIENT_IP,
    CLIENT_PORT,
    SERVER_IP,
    SERVICE_PORT,
    Translation,
    routed,
    tcp_segment,
    translate,
)
from splice_base import (
    CLIENT,
    FIN_DIGEST,
    PIN_FIN_HELD,
    PIN_PUNT,
    PIN_RST,
    PROXY,
    SERVER,
    SpliceTest,
    fin_report,
)

FLOW = (CLIENT, CLIENT_IP, SERVER_IP, CLIENT_PORT, SERVICE_PORT)


class TeardownBase(SpliceTest):
    def setUp(self) -> None:
        super().setUp()
        self.add_default_routes()
        self.add_cpu_clone_session()


class FinReported(TeardownBase):
    """A FIN of a tracked flow is translated and forwarded, and reported in a fin_t digest (its
    leg and direction): no packet-in."""

    def runTest(self) -> None:
        self.client.insert_digest(FIN_DIGEST)
        t = Translation(seq=0x100, ack=0x200)
        self.add_flow(*FLOW, "translate", t, PROXY)
        back = (PROXY, SERVER_IP, CLIENT_IP, SERVICE_PORT, CLIENT_PORT)
        self.add_flow(*back, "translate", t, CLIENT)
        fin = tcp_segment(flags="FPA", seq=1, ack=2, payload=b"bye")
        self.send(CLIENT, fin)
        self.expect(translate(fin, t, PROXY), PROXY)
        self.assertEqual(self.client.get_digests(FIN_DIGEST), [fin_report(fin, CLIENT)])
        fin_p = tcp_segment(in_port=PROXY, src=SERVER_IP, dst=CLIENT_IP, sport=SERVICE_PORT, dport=CLIENT_PORT,
                            flags="FA", seq=7, ack=9)
        self.send(PROXY, fin_p)
        self.expect(translate(fin_p, t, CLIENT), CLIENT)
        self.assertEqual(self.client.get_digests(FIN_DIGEST), [fin_report(fin_p, PROXY)])
        self.expect_no_packet_in()
        self.expect_nothing_else()


class FinUnderHoldCopied(TeardownBase):
    """A FIN a hold entry drops (it never reaches P) goes to the controller as a copy, reason
    FIN_HELD, not as a report."""

    def runTest(self) -> None:
        self.client.insert_digest(FIN_DIGEST)
        self.add_flow(*FLOW, "hold", Translation(), PROXY)
        fin = tcp_segment(flags="FA", seq=1, ack=2)
        self.send(CLIENT, fin)
        self.expect_packet_in(PIN_FIN_HELD, CLIENT, fin)
        self.assertIsNone(self.client.get_digests(FIN_DIGEST, timeout=0.3))
        self.expect_nothing_else()


class RstReported(TeardownBase):
    """RST (with or without ACK, even with FIN) is reported as RST."""

    def runTest(self) -> None:
        t = Translation(seq=0x100, ack=0x200)
        self.add_flow(*FLOW, "translate", t, PROXY)
        for flags in ("R", "RA", "FRA"):
            rst = tcp_segment(flags=flags, seq=1, ack=2)
            self.send(CLIENT, rst)
            self.expect(translate(rst, t, PROXY), PROXY)
            self.expect_packet_in(PIN_RST, CLIENT, rst)
        self.expect_nothing_else()


class UntrackedFinNotReported(TeardownBase):
    """A FIN of a flow with no entry is only routed."""

    def runTest(self) -> None:
        fin = tcp_segment(flags="FA")
        self.send(CLIENT, fin)
        self.expect(routed(fin, SERVER), SERVER)
        self.expect_no_packet_in()
        self.expect_nothing_else()


class PuntAndDropActions(TeardownBase):
    """punt: controller only, untouched, reason PUNT (a FIN is not reported twice); drop: gone."""

    def runTest(self) -> None:
        self.add_flow(*FLOW, "punt")
        for flags in ("A", "FA"):
            seg = tcp_segment(flags=flags)
            self.send(CLIENT, seg)
            self.expect_packet_in(PIN_PUNT, CLIENT, seg)
        self.expect_no_packet_in()
        back = (SERVER, SERVER_IP, CLIENT_IP, SERVICE_PORT, CLIENT_PORT)
        self.add_flow(*back, "drop")
        self.send(SERVER, tcp_segment(in_port=SERVER, src=SERVER_IP, dst=CLIENT_IP, sport=SERVICE_PORT,
                                      dport=CLIENT_PORT, flags="PA", payload=b"x"))
        self.expect_nothing_else()


class FlowCounters(TeardownBase):
    """The flows table's direct counter counts each entry's packets and bytes."""

    def runTest(self) -> None:
        t = Translation(seq=1)
        entry = self.add_flow(*FLOW, "translate", t, PROXY)
        other = self.add_flow(PROXY, SERVER_IP, CLIENT_IP, SERVICE_PORT, CLIENT_PORT, "translate", t, CLIENT)
        frames = [tcp_segment(flags="PA", payload=b"p" * n) for n in (1, 10, 100)]
        for frame in frames:
            self.send(CLIENT, frame)
            self.expect(translate(frame, t, PROXY), PROXY)
        packets, nbytes = self.client.wait_for(
            lambda: (c := self.client.read_direct_counter(entry))[0] == 3 and c, what="3 packets counted")
        self.assertEqual(nbytes, sum(len(f) for f in frames))
        self.assertEqual(self.client.read_direct_counter(other), (0, 0))
        self.expect_nothing_else()


class IdleTimeoutNotified(TeardownBase):
    """An entry with an idle timeout that sees no traffic is reported idle; a busy one is not
    reported before it goes quiet."""

    def runTest(self) -> None:
        idle = self.add_flow(*FLOW, "translate", Translation(), PROXY, idle_timeout_ns=200_000_000)
        note = self.client.get_idle_timeout(timeout=3.0)
        self.assertIsNotNone(note, "no idle-timeout notification within 3 s")
        assert note is not None
        keys = [(e.table_id, tuple(m.SerializeToString() for m in e.match)) for e in note.table_entry]
        want = (idle.table_id, tuple(m.SerializeToString() for m in idle.match))
        self.assertIn(want, keys)
        self.assertGreater(note.timestamp, 0)
