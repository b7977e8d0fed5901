"""PTF: claim 1's handshake run by the switch (services entry ``proxied_inline``).

Every packet the switch builds is compared byte for byte with what the controller's own handshake
(``controller/splice/handshake.py``, fed the same segments) would send as a packet-out, and every
translation before the controller's entries exist with the entries the controller would install.
"""

from __future__ import annotations

import struct
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

from p4splice.controller.frames import build_frame, mac_bytes, parse_frame
from p4splice.controller.splice.commands import FlowEstablished, SendSegment
from p4splice.controller.splice.handshake import HandshakeConfig, HandshakeTable
from p4splice.controller.splice.legs import Direction, LegParams
from p4splice.controller.splice.model import SegmentIn, Side
from packets import (
    CLIENT_IP,
    HOST_MAC,
    MASK32,
    SERVER_IP,
    SERVICE_PORT,
    SWITCH_MAC,
    Translation,
    routed,
    tcp_segment,
    translate,
)
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from splice_base import (
    CLIENT,
    FIN_DIGEST,
    PIN_DECLINED,
    PIN_PUNT,
    PIN_RST,
    PIN_SYN,
    PROXY,
    SERVER,
    SpliceTest,
    fin_report,
)

HS_CLONE_SESSION_BASE = 512
HS_SLOTS = 65536
HS_DIGEST = "handshake_t"
(HS_SYN_SEEN, HS_SYN_ACKED, HS_C_ACKED, HS_P1_KNOWN, HS_LEG1_UP, HS_UPSTREAM, HS_LEG2_UP,
 HS_DECLINED) = range(1, 9)

ISN_C, ISN_S, ISN_P1, ISN_P2 = 0xFFFFFF00, 0x7FFFFFF0, 0x12345678, 0xFEDCBA98
TSV_C, TSV_S, TSV_P1, TSV_P2 = 0xFFFFFFF0, 5000, 0x80000000, 77

ALL_C = [("MSS", 1460), ("SAckOK", b""), ("Timestamp", (TSV_C, 0)), ("NOP", None), ("WScale", 7)]
ALL_S = [("MSS", 1400), ("NOP", None), ("NOP", None), ("SAckOK", b""), ("NOP", None), ("WScale", 9),
         ("Timestamp", (TSV_S, TSV_C))]


def slot_of(client_port: int, server_port: int = SERVICE_PORT, client_ip: str = CLIENT_IP) -> int:
    """The slot the switch gives a connection: CRC-32 of the lower (address, port) then the higher."""
    ends = sorted([(client_ip, client_port), (SERVER_IP, server_port)],
                  key=lambda e: (bytes(int(x) for x in e[0].split(".")), e[1]))
    data = b"".join(bytes(int(x) for x in a.split(".")) + struct.pack("!H", p) for a, p in ends)
    return zlib.crc32(data) % HS_SLOTS


_used_slots: set[int] = set()


def fresh_ports(n: int = 1) -> list[int]:
    """Client ports whose slots no earlier test of the run has used (slots outlive a test)."""
    out = []
    port = 20000 + len(_used_slots)
    while len(out) < n:
        port += 1
        if slot_of(port) not in _used_slots:
            _used_slots.add(slot_of(port))
            out.append(port)
    return out


def params_of(leg: LegParams) -> Translation:
    return Translation(seq=leg.seq_delta, ack=leg.ack_delta, tsval=leg.tsval_delta, tsecr=leg.tsecr_delta,
                       shift_from=leg.win_shift_from, shift_to=leg.win_shift_to)


class ControllerModel:
    """The controller's handshake for one connection, fed what the switch saw: what it would send."""

    def __init__(self) -> None:
        self.table = HandshakeTable(HandshakeConfig(explicit_punt=False))
        self.legs: dict[Direction, LegParams] = {}

    def feed(self, frame: bytes, port: int, *, copy: bool = False) -> list[bytes]:
        """Proxy-bound frames the controller would send for ``frame`` arriving on ``port``."""
        seg = parse_frame(frame).segment
        ev = SegmentIn(seg, port, from_proxy=port == PROXY, copy=copy,
                       proxy_port=PROXY if seg.is_syn and port != PROXY else None)
        out = []
        for cmd in self.table.on_segment(ev):
            if isinstance(cmd, SendSegment) and cmd.to is Side.PROXY:
                out.append(build_frame(cmd.segment, mac_bytes(SWITCH_MAC[PROXY]), mac_bytes(HOST_MAC[PROXY])))
            if isinstance(cmd, FlowEstablished):
                self.legs = {leg.direction: leg for leg in cmd.legs}
        return out


@dataclass
class Conn:
    """One connection's segments, as C, S and P send them (P answers what the switch sent it)."""

    cport: int
    c_opts: list
    s_opts: list
    p1_opts: list
    p2_opts: list
    ts: bool

    def c(self, **kw) -> bytes:
        return tcp_segment(in_port=CLIENT, sport=self.cport, **kw)

    def s(self, **kw) -> bytes:
        return tcp_segment(in_port=SERVER, src=SERVER_IP, dst=CLIENT_IP, sport=SERVICE_PORT, dport=self.cport, **kw)

    def p_as_s(self, **kw) -> bytes:
        return tcp_segment(in_port=PROXY, src=SERVER_IP, dst=CLIENT_IP, sport=SERVICE_PORT, dport=self.cport, **kw)

    def p_as_c(self, **kw) -> bytes:
        return tcp_segment(in_port=PROXY, sport=self.cport, **kw)

    def ts_opt(self, tsval: int, tsecr: int) -> list:
        return [("NOP", None), ("NOP", None), ("Timestamp", (tsval & MASK32, tsecr & MASK32))] if self.ts else []

    def syn(self) -> bytes:
        return self.c(flags="S", seq=ISN_C, window=64240, options=self.c_opts)

    def syn_ack(self) -> bytes:
        return self.s(flags="SA", seq=ISN_S, ack=ISN_C + 1, window=65160, options=self.s_opts)

    def proxy_syn_ack(self) -> bytes:
        return self.p_as_s(flags="SA", seq=ISN_P1, ack=ISN_C + 1, window=65483, options=self.p1_opts)

    def c_ack(self) -> bytes:
        return self.c(flags="A", seq=ISN_C + 1, ack=ISN_S + 1, window=502, options=self.ts_opt(TSV_C + 9, TSV_S))

    def proxy_syn(self) -> bytes:
        return self.p_as_c(flags="S", seq=ISN_P2, window=64240, options=self.p2_opts)

    def proxy_ack(self) -> bytes:
        return self.p_as_c(flags="A", seq=ISN_P2 + 1, ack=ISN_S + 1, window=502, options=self.ts_opt(TSV_P2 + 1, TSV_S))


def with_fin(frame: bytes) -> bytes:
    """The same segment with FIN set as well (checksums made again)."""
    pkt = Ether(frame)
    pkt[TCP].flags = pkt[TCP].flags | 0x01
    del pkt[IP].chksum, pkt[TCP].chksum
    return bytes(pkt)


def full_conn(cport: int) -> Conn:
    return Conn(cport, ALL_C, ALL_S,
                [("MSS", 1460), ("SAckOK", b""), ("Timestamp", (TSV_P1, TSV_C)), ("NOP", None), ("WScale", 7)],
                [("MSS", 1460), ("SAckOK", b""), ("Timestamp", (TSV_P2, 0)), ("NOP", None), ("WScale", 7)],
                ts=True)


class InlineBase(SpliceTest):
    """Routes, the CPU and proxy clone sessions, an inline service and its digest."""

    def setUp(self) -> None:
        super().setUp()
        self.add_default_routes()
        self.add_cpu_clone_session()
        self.client.insert_clone_session(HS_CLONE_SESSION_BASE + PROXY, [PROXY])
        self.client.insert(self.client.table_entry(
            "services", {"server_addr": SERVER_IP, "server_port": SERVICE_PORT}, "proxied_inline",
            {"proxy_port": PROXY, "smac": SWITCH_MAC[PROXY], "dmac": HOST_MAC[PROXY]}))
        self.client.insert_digest(HS_DIGEST)
        self.model = ControllerModel()

    # --- steps, each checked against the controller's model ---------------------------------
    def step(self, frame: bytes, port: int, out: dict[int, bytes], *, copy: bool = False,
             state: int | None = None) -> None:
        """Send ``frame`` on ``port``; expect exactly ``out`` (port -> frame) plus what the
        controller would have sent the proxy, and a digest with ``state`` if given."""
        want = self.model.feed(frame, port, copy=copy)
        self.send(port, frame)
        for p, f in out.items():
            self.expect(f, p)
        for f in want:
            self.expect(f, PROXY)
        if state is not None:
            self.expect_digest(state)
        else:  # steps the controller needs no digest of (the next one carries them)
            self.assertIsNone(self.client.get_digests(HS_DIGEST, timeout=0.05))
        self.expect_no_packet_in(0.05)
        self.expect_nothing_else()

    def expect_digest(self, state: int) -> dict[str, int]:
        got = self.client.get_digests(HS_DIGEST)
        self.assertIsNotNone(got, f"no digest (wanted state {state})")
        assert got is not None
        self.assertEqual(len(got), 1)
        self.assertEqual(got[0]["state"], state, f"digest {got[0]}")
        return got[0]

    def open_both_legs(self, conn: Conn, proxy_first: bool = True) -> None:
        self.step(conn.syn(), CLIENT, {SERVER: routed(conn.syn(), SERVER)}, copy=True)
        self.step(conn.syn_ack(), SERVER, {CLIENT: routed(conn.syn_ack(), CLIENT)}, copy=True, state=HS_SYN_ACKED)
        if proxy_first:
            self.step(conn.proxy_syn_ack(), PROXY, {})
            self.step(conn.c_ack(), CLIENT, {SERVER: routed(conn.c_ack(), SERVER)}, state=HS_LEG1_UP)
        else:
            self.step(conn.c_ack(), CLIENT, {SERVER: routed(conn.c_ack(), SERVER)})
            self.step(conn.proxy_syn_ack(), PROXY, {}, state=HS_LEG1_UP)
        self.step(conn.proxy_syn(), PROXY, {})
        self.step(conn.proxy_ack(), PROXY, {}, state=HS_LEG2_UP)
        self.assertEqual(len(self.model.legs), 4, "the controller's model did not establish the flow")

    def collide_until_taken(self, ip: str, port: int, deadline: float, pace: float, what: str) -> None:
        """Send the SYN of (ip, port), whose slot another connection holds, until the switch takes
        it (it goes on to S) rather than hand it to the controller (reason SYN), before ``deadline``."""
        syn = tcp_segment(in_port=CLIENT, src=ip, sport=port, flags="S", seq=ISN_C, options=ALL_C)
        while True:
            self.send(CLIENT, syn)
            pin = self.client.get_packet_in(0.3)
            if pin is None:
                break  # not to the controller: the slot was free, the SYN went on to S
            self.assertEqual(pin.metadata.get("reason"), PIN_SYN)
            self.assertLess(time.monotonic(), deadline, what)
            time.sleep(pace)  # the pace of the retries, not a readiness wait
        self.expect(routed(syn, SERVER), SERVER)

    def four_directions(self, conn: Conn) -> Iterator[tuple[bytes, int, Direction, int]]:
        """A data segment of each direction: (frame, in port, direction, out port)."""
        yield (conn.c(flags="PA", seq=ISN_C + 1, ack=ISN_S + 1, options=conn.ts_opt(TSV_C + 20, TSV_S),
                      payload=b"GET / HTTP/1.1\r\n\r\n"), CLIENT, Direction.C_TO_P, PROXY)
        yield (conn.p_as_c(flags="PA", seq=ISN_P2 + 1, ack=ISN_S + 1, options=conn.ts_opt(TSV_P2 + 5, TSV_S),
                           payload=b"GET / HTTP/1.1\r\nVia: p\r\n\r\n"), PROXY, Direction.P_TO_S, SERVER)
        yield (conn.s(flags="PA", seq=ISN_S + 1, ack=ISN_C + 19, window=500, options=conn.ts_opt(TSV_S + 7, 1),
                      payload=b"HTTP/1.1 200 OK\r\n\r\n"), SERVER, Direction.S_TO_P, PROXY)
        yield (conn.p_as_s(flags="PA", seq=ISN_P1 + 1, ack=ISN_C + 19, window=600,
                           options=conn.ts_opt(TSV_P1 + 9, TSV_C + 20), payload=b"HTTP/1.1 200 OK\r\n\r\n"),
               PROXY, Direction.P_TO_C, CLIENT)


class SynGoesOnAtOnce(InlineBase):
    """C's SYN reaches S with no controller in between, and takes a slot (no digest yet)."""

    def runTest(self) -> None:
        conn = full_conn(fresh_ports()[0])
        self.send(CLIENT, conn.syn())
        self.expect(routed(conn.syn(), SERVER), SERVER)
        self.expect_no_packet_in(0.1)
        self.assertIsNone(self.client.get_digests(HS_DIGEST, timeout=0.1))
        self.expect_nothing_else()


class HandshakeProxyFirst(InlineBase):
    """The whole handshake, P's SYN-ACK before C's ACK: the second request, the leg-1 ACK on a
    clone of C's ACK, S's answer to P's upstream SYN, byte for byte the controller's; a digest at
    each step; then all four directions translated as the controller's entries will."""

    def runTest(self) -> None:
        conn = full_conn(fresh_ports()[0])
        self.open_both_legs(conn, proxy_first=True)
        for frame, port, direction, out in self.four_directions(conn):
            self.send(port, frame)
            self.expect(translate(frame, params_of(self.model.legs[direction]), out), out)
        self.expect_no_packet_in(0.05)
        self.expect_nothing_else()


class HandshakeClientFirst(InlineBase):
    """C's ACK before P's SYN-ACK: the switch answers P's SYN-ACK with the leg-1 ACK itself."""

    def runTest(self) -> None:
        conn = full_conn(fresh_ports()[0])
        self.open_both_legs(conn, proxy_first=False)


class EntriesTakeOver(InlineBase):
    """Once the controller's four entries exist they translate, exactly as the slot did."""

    def runTest(self) -> None:
        conn = full_conn(fresh_ports()[0])
        self.open_both_legs(conn)
        entries = {}
        for direction, leg in self.model.legs.items():
            m = leg.match
            entries[direction] = self.add_flow(m.ingress_port, m.src_ip, m.dst_ip, m.src_port, m.dst_port,
                                               "translate", params_of(leg), leg.egress_port)
        for frame, port, direction, out in self.four_directions(conn):
            self.send(port, frame)
            self.expect(translate(frame, params_of(self.model.legs[direction]), out), out)
            self.assertEqual(self.client.read_direct_counter(entries[direction])[0], 1)
        self.expect_nothing_else()


class FinsBeforeTheEntriesReported(InlineBase):
    """The four FINs of a connection the slot still translates (no entry yet) go on translated and
    are reported in fin_t digests, as a flows entry's are (no packet-in)."""

    def runTest(self) -> None:
        self.client.insert_digest(FIN_DIGEST)
        conn = full_conn(fresh_ports()[0])
        self.open_both_legs(conn)
        for frame, port, direction, out in self.four_directions(conn):
            fin = with_fin(frame)
            self.send(port, fin)
            self.expect(translate(fin, params_of(self.model.legs[direction]), out), out)
            self.assertEqual(self.client.get_digests(FIN_DIGEST), [fin_report(fin, port)])
        self.expect_no_packet_in(0.05)
        self.expect_nothing_else()


class OptionMixes(InlineBase):
    """The crafted SYN and SYN-ACK for every combination of options the ends may agree on."""

    def runTest(self) -> None:
        mixes = [
            ([], [], [], []),
            ([("MSS", 536)], [("MSS", 1400)], [("MSS", 1460)], [("MSS", 1460)]),
            ([("MSS", 1460), ("SAckOK", b"")], [("MSS", 1400), ("NOP", None), ("NOP", None), ("SAckOK", b"")],
             [("MSS", 1460), ("NOP", None), ("NOP", None), ("SAckOK", b"")], [("MSS", 1460), ("SAckOK", b"")]),
            ([("NOP", None), ("WScale", 15)], [("NOP", None), ("WScale", 2)], [("NOP", None), ("WScale", 7)],
             [("NOP", None), ("WScale", 3)]),
            ([("WScale", 4), ("SAckOK", b"")], [("SAckOK", b"")], [("SAckOK", b"")], []),
            ([("NOP", None), ("NOP", None), ("Timestamp", (TSV_C, 0))], [("Timestamp", (TSV_S, TSV_C))],
             [("Timestamp", (TSV_P1, TSV_C))], [("Timestamp", (TSV_P2, 0))]),
            (ALL_C, [("MSS", 1400), ("Timestamp", (TSV_S, TSV_C))],
             [("MSS", 1460), ("Timestamp", (TSV_P1, TSV_C))], ALL_C),
        ]
        for (c_opts, s_opts, p1_opts, p2_opts), cport in zip(mixes, fresh_ports(len(mixes)), strict=True):
            self.model = ControllerModel()
            ts = any(o[0] == "Timestamp" for o in c_opts) and any(o[0] == "Timestamp" for o in s_opts)
            conn = Conn(cport, c_opts, s_opts, p1_opts, p2_opts, ts)
            with self.subTest(c=c_opts, s=s_opts):
                self.open_both_legs(conn)


class EarlySegmentsToController(InlineBase):
    """C's data before leg 1 exists and S's before leg 2 go to the controller, which holds them."""

    def runTest(self) -> None:
        conn = full_conn(fresh_ports()[0])
        self.step(conn.syn(), CLIENT, {SERVER: routed(conn.syn(), SERVER)}, copy=True)
        self.step(conn.syn_ack(), SERVER, {CLIENT: routed(conn.syn_ack(), CLIENT)}, copy=True, state=HS_SYN_ACKED)
        self.step(conn.c_ack(), CLIENT, {SERVER: routed(conn.c_ack(), SERVER)})
        data = conn.c(flags="PA", seq=ISN_C + 1, ack=ISN_S + 1, options=conn.ts_opt(TSV_C + 10, TSV_S), payload=b"hi")
        self.send(CLIENT, data)
        self.expect_packet_in(PIN_PUNT, CLIENT, data)
        banner = conn.s(flags="PA", seq=ISN_S + 1, ack=ISN_C + 1, options=conn.ts_opt(TSV_S + 1, TSV_C + 9),
                        payload=b"220 hello")
        self.send(SERVER, banner)
        self.expect_packet_in(PIN_PUNT, SERVER, banner)
        self.expect_nothing_else()


class BusySlotFallsBack(InlineBase):
    """A SYN whose slot holds another live connection takes the controller's path (reason SYN)."""

    def runTest(self) -> None:
        first = fresh_ports()[0]
        other_ip, other_port = colliding(first)
        a = full_conn(first)
        self.send(CLIENT, a.syn())
        self.expect(routed(a.syn(), SERVER), SERVER)
        b = tcp_segment(in_port=CLIENT, src=other_ip, sport=other_port, flags="S", seq=ISN_C, options=ALL_C)
        self.send(CLIENT, b)
        self.expect_packet_in(PIN_SYN, CLIENT, b)
        self.expect_nothing_else()


def colliding(first: int) -> tuple[str, int]:
    """A client (address, port) of the client subnet whose slot is that of CLIENT_IP:``first``
    (one client's own ports map onto the slots one to one)."""
    return next((f"10.0.1.{host}", port) for host in range(2, 255) for port in range(1024, 65536)
                if slot_of(port, client_ip=f"10.0.1.{host}") == slot_of(first))


class SlotExpires(InlineBase):
    """A slot nobody writes is free again after HS_TIMEOUT_US (5 s): a half-open connection
    cannot keep it. Until then a colliding SYN takes the controller's path. (C has ACKed here,
    and P not answered: a real client's handshake, which keeps its slot to the end.)"""

    def runTest(self) -> None:
        first = fresh_ports()[0]
        other_ip, other_port = colliding(first)
        a = full_conn(first)
        self.step(a.syn(), CLIENT, {SERVER: routed(a.syn(), SERVER)}, copy=True)
        self.step(a.syn_ack(), SERVER, {CLIENT: routed(a.syn_ack(), CLIENT)}, copy=True, state=HS_SYN_ACKED)
        self.step(a.c_ack(), CLIENT, {SERVER: routed(a.c_ack(), SERVER)})
        taken = time.monotonic()
        self.collide_until_taken(other_ip, other_port, taken + 10.0, 0.2, "the slot never lapsed")
        self.assertGreater(time.monotonic() - taken, 4.0, "the slot lapsed before HS_TIMEOUT_US")


class UnacknowledgedGivesItsSlotUp(InlineBase):
    """A handshake whose client has not ACKed S's SYN-ACK HS_ACK_WAIT_US (1 s) after its last
    step (a spoofed SYN, most likely) keeps its slot from colliding SYNs only that long; then a
    new connection takes it, and the old client's late ACK is routed on to S, end to end."""

    def runTest(self) -> None:
        first = fresh_ports()[0]
        other_ip, other_port = colliding(first)
        a = full_conn(first)
        self.step(a.syn(), CLIENT, {SERVER: routed(a.syn(), SERVER)}, copy=True)
        self.step(a.syn_ack(), SERVER, {CLIENT: routed(a.syn_ack(), CLIENT)}, copy=True, state=HS_SYN_ACKED)
        answered = time.monotonic()
        self.collide_until_taken(other_ip, other_port, answered + 4.0, 0.1,
                                 "the unacknowledged handshake kept its slot")
        self.assertGreater(time.monotonic() - answered, 0.9, "the slot was taken before HS_ACK_WAIT_US")
        self.send(CLIENT, a.c_ack())  # the first client answers after all: on to S, as unproxied
        self.expect(routed(a.c_ack(), SERVER), SERVER)
        self.expect_no_packet_in(0.1)
        self.expect_nothing_else()


class SynTheSwitchWillNotTake(InlineBase):
    """A SYN with data, or with an option given twice, takes the controller's path from the start
    (reason SYN): the controller decides what to do with it, as for any service."""

    def runTest(self) -> None:
        a, b = fresh_ports(2)
        twice = tcp_segment(in_port=CLIENT, sport=a, flags="S", seq=ISN_C, options=[("MSS", 1460), ("MSS", 1400)])
        self.send(CLIENT, twice)
        self.expect_packet_in(PIN_SYN, CLIENT, twice)
        data = tcp_segment(in_port=CLIENT, sport=b, flags="S", seq=ISN_C, options=ALL_C, payload=b"TFO")
        self.send(CLIENT, data)
        self.expect_packet_in(PIN_SYN, CLIENT, data)
        self.expect_nothing_else()


class ProxyDisagreesDeclines(InlineBase):
    """P's SYN-ACK without timestamps that C and S agreed on: the connection becomes the
    controller's (it fails it open); every later segment goes to the controller."""

    def runTest(self) -> None:
        conn = full_conn(fresh_ports()[0])
        conn.p1_opts = [("MSS", 1460), ("SAckOK", b""), ("NOP", None), ("WScale", 7)]
        self.step(conn.syn(), CLIENT, {SERVER: routed(conn.syn(), SERVER)}, copy=True)
        self.step(conn.syn_ack(), SERVER, {CLIENT: routed(conn.syn_ack(), CLIENT)}, copy=True, state=HS_SYN_ACKED)
        self.send(PROXY, conn.proxy_syn_ack())
        self.expect_packet_in(PIN_DECLINED, PROXY, conn.proxy_syn_ack())
        self.send(CLIENT, conn.c_ack())
        self.expect_packet_in(PIN_DECLINED, CLIENT, conn.c_ack())
        self.expect_nothing_else()


class DataOnClientAckDeclines(InlineBase):
    """C's handshake ACK carrying data: S must get the ACK and P the data, which the switch does not
    split; the connection becomes the controller's."""

    def runTest(self) -> None:
        conn = full_conn(fresh_ports()[0])
        self.step(conn.syn(), CLIENT, {SERVER: routed(conn.syn(), SERVER)}, copy=True)
        self.step(conn.syn_ack(), SERVER, {CLIENT: routed(conn.syn_ack(), CLIENT)}, copy=True, state=HS_SYN_ACKED)
        ack = conn.c(flags="PA", seq=ISN_C + 1, ack=ISN_S + 1, options=conn.ts_opt(TSV_C + 9, TSV_S), payload=b"x")
        self.send(CLIENT, ack)
        self.expect_packet_in(PIN_DECLINED, CLIENT, ack)
        self.send(PROXY, conn.proxy_syn_ack())
        self.expect_packet_in(PIN_DECLINED, PROXY, conn.proxy_syn_ack())
        self.expect_nothing_else()


class ResetBeforeLegs(InlineBase):
    """C's RST while the legs are being made: on to S, a copy to the controller (which resets P)."""

    def runTest(self) -> None:
        conn = full_conn(fresh_ports()[0])
        self.step(conn.syn(), CLIENT, {SERVER: routed(conn.syn(), SERVER)}, copy=True)
        self.step(conn.syn_ack(), SERVER, {CLIENT: routed(conn.syn_ack(), CLIENT)}, copy=True, state=HS_SYN_ACKED)
        rst = conn.c(flags="R", seq=ISN_C + 1)
        self.send(CLIENT, rst)
        self.expect(routed(rst, SERVER), SERVER)
        self.expect_packet_in(PIN_RST, CLIENT, rst)
        self.expect_nothing_else()


class DrainingTakesNoNewConnection(InlineBase):
    """The services entry ``draining`` (the controller too far behind its digests): a new
    connection runs end to end as to an unproxied port, with no slot, digest or packet-in, while a
    handshake under way goes on to both legs."""

    def runTest(self) -> None:
        under_way, new = (full_conn(p) for p in fresh_ports(2))
        self.step(under_way.syn(), CLIENT, {SERVER: routed(under_way.syn(), SERVER)}, copy=True)
        self.step(under_way.syn_ack(), SERVER, {CLIENT: routed(under_way.syn_ack(), CLIENT)}, copy=True,
                  state=HS_SYN_ACKED)
        self.client.modify(self.client.table_entry(
            "services", {"server_addr": SERVER_IP, "server_port": SERVICE_PORT}, "draining",
            {"proxy_port": PROXY, "smac": SWITCH_MAC[PROXY], "dmac": HOST_MAC[PROXY]}))
        for frame, port, out in ((new.syn(), CLIENT, SERVER), (new.syn_ack(), SERVER, CLIENT),
                                 (new.c_ack(), CLIENT, SERVER)):
            self.send(port, frame)
            self.expect(routed(frame, out), out)
            self.expect_no_packet_in(0.05)
            self.assertIsNone(self.client.get_digests(HS_DIGEST, timeout=0.05))
            self.expect_nothing_else()
        self.step(under_way.proxy_syn_ack(), PROXY, {})
        self.step(under_way.c_ack(), CLIENT, {SERVER: routed(under_way.c_ack(), SERVER)}, state=HS_LEG1_UP)
        self.step(under_way.proxy_syn(), PROXY, {})
        self.step(under_way.proxy_ack(), PROXY, {}, state=HS_LEG2_UP)
        self.assertEqual(len(self.model.legs), 4)


# --- a 4-tuple used again while the previous connection's entries linger ----------------------

def new_incarnation(conn: Conn) -> bytes:
    """C's SYN of a new connection on ``conn``'s 4-tuple (another ISN)."""
    return conn.c(flags="S", seq=ISN_C + 0x10000, window=64240, options=conn.c_opts)


class InstalledBase(InlineBase):
    def install_legs(self) -> list:
        out = []
        for leg in self.model.legs.values():
            m = leg.match
            out.append(self.add_flow(m.ingress_port, m.src_ip, m.dst_ip, m.src_port, m.dst_port, "translate",
                                     params_of(leg), leg.egress_port))
        return out


class NewConnectionMeetsEntries(InstalledBase):
    """A SYN without ACK meeting a connection's entries (its slot still live) is not translated
    by them, while segments with an ACK are: it goes to the controller untouched (reason
    DECLINED). Once the controller has removed the old entries, the new connection's segments
    go to it too (the slot declined), P's SYN-ACK among them."""

    def runTest(self) -> None:
        conn = full_conn(fresh_ports()[0])
        self.open_both_legs(conn)
        entries = self.install_legs()
        for frame, port, direction, out in self.four_directions(conn):
            self.send(port, frame)
            self.expect(translate(frame, params_of(self.model.legs[direction]), out), out)
        syn = new_incarnation(conn)
        self.send(CLIENT, syn)
        self.expect_packet_in(PIN_DECLINED, CLIENT, syn)
        self.expect_nothing_else()
        for te in entries:
            self.client.delete(te)
        p_syn_ack = conn.p_as_s(flags="SA", seq=ISN_P1 + 0x10000, ack=ISN_C + 0x10001, window=65483,
                                options=conn.p1_opts)
        self.send(PROXY, p_syn_ack)
        self.expect_packet_in(PIN_DECLINED, PROXY, p_syn_ack)
        self.expect_no_packet_in(0.05)
        self.expect_nothing_else()


class NewConnectionMeetsEntriesNoSlot(InstalledBase):
    """The same with the slot of that 4-tuple free (lapsed, or never this connection's): the SYN
    goes to the controller (reason SYN) without taking the slot, which a colliding connection's
    SYN then takes."""

    def runTest(self) -> None:
        first = fresh_ports()[0]
        other_ip, other_port = colliding(first)
        t = Translation(seq=0x100, ack=0x200)
        self.add_flow(CLIENT, CLIENT_IP, SERVER_IP, first, SERVICE_PORT, "translate", t, PROXY)
        syn = tcp_segment(in_port=CLIENT, sport=first, flags="S", seq=ISN_C, options=ALL_C)
        self.send(CLIENT, syn)
        self.expect_packet_in(PIN_SYN, CLIENT, syn)
        self.expect_nothing_else()
        other = tcp_segment(in_port=CLIENT, src=other_ip, sport=other_port, flags="S", seq=ISN_C, options=ALL_C)
        self.send(CLIENT, other)
        self.expect(routed(other, SERVER), SERVER)
        self.expect_no_packet_in(0.05)
        self.expect_nothing_else()


class NewConnectionOnALiveSlot(InlineBase):
    """C's SYN with another ISN on a slot whose connection is up, no entries in: a new connection
    on the 4-tuple, the controller's to sort out (reason DECLINED); the same ISN again is dropped
    as before (the slot's own SYN, long answered)."""

    def runTest(self) -> None:
        conn = full_conn(fresh_ports()[0])
        self.open_both_legs(conn)
        self.send(CLIENT, conn.syn())
        self.expect_no_packet_in(0.05)
        self.expect_nothing_else()
        syn = new_incarnation(conn)
        self.send(CLIENT, syn)
        self.expect_packet_in(PIN_DECLINED, CLIENT, syn)
        self.expect_nothing_else()


class DrainingNewConnectionMeetsEntries(InstalledBase):
    """A draining service routes a new connection end to end, but not one whose 4-tuple still has
    entries: that SYN goes to the controller (reason SYN), which removes them first."""

    def runTest(self) -> None:
        port = fresh_ports()[0]
        t = Translation(seq=0x100, ack=0x200)
        self.add_flow(CLIENT, CLIENT_IP, SERVER_IP, port, SERVICE_PORT, "translate", t, PROXY)
        self.client.modify(self.client.table_entry(
            "services", {"server_addr": SERVER_IP, "server_port": SERVICE_PORT}, "draining",
            {"proxy_port": PROXY, "smac": SWITCH_MAC[PROXY], "dmac": HOST_MAC[PROXY]}))
        syn = tcp_segment(in_port=CLIENT, sport=port, flags="S", seq=ISN_C, options=ALL_C)
        self.send(CLIENT, syn)
        self.expect_packet_in(PIN_SYN, CLIENT, syn)
        self.expect_nothing_else()


class ControllerServiceNewConnectionMeetsEntries(SpliceTest):
    """A service whose handshakes the controller runs (action proxied): a SYN without ACK meeting a
    spliced flow's entries goes to the controller untouched (reason SYN), not translated on."""

    def runTest(self) -> None:
        self.add_default_routes()
        self.add_cpu_clone_session()
        self.add_service(SERVER_IP)
        port = fresh_ports()[0]
        t = Translation(seq=0x100, ack=0x200)
        self.add_flow(CLIENT, CLIENT_IP, SERVER_IP, port, SERVICE_PORT, "translate", t, SERVER)
        syn = tcp_segment(in_port=CLIENT, sport=port, flags="S", seq=ISN_C, options=ALL_C)
        self.send(CLIENT, syn)
        self.expect_packet_in(PIN_SYN, CLIENT, syn)
        data = tcp_segment(in_port=CLIENT, sport=port, flags="PA", seq=ISN_C + 1, ack=5, payload=b"x")
        self.send(CLIENT, data)
        self.expect(translate(data, t, SERVER), SERVER)
        self.expect_no_packet_in(0.05)
        self.expect_nothing_else()
