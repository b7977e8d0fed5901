"""PTF: ISN capture of service handshakes, and the proxy's handshakes going to the controller only."""

from __future__ import annotations

from packets import CLIENT_IP, CLIENT_PORT, PROXY_IP, SERVER_IP, SERVICE_PORT, routed, tcp_segment
from scapy.layers.inet import TCP
from scapy.layers.l2 import Ether
from splice_base import (
    CLIENT,
    PIN_PROXY_SYN,
    PIN_PROXY_SYN_ACK,
    PIN_PUNT,
    PIN_SYN,
    PIN_SYN_ACK,
    PROXY,
    SERVER,
    SpliceTest,
)

SYN_OPTIONS = [("MSS", 1460), ("SAckOK", b""), ("Timestamp", (123456, 0)), ("NOP", None), ("WScale", 7)]
SYN_ACK_OPTIONS = [("MSS", 1400), ("NOP", None), ("NOP", None), ("SAckOK", b""), ("NOP", None),
                   ("WScale", 9), ("Timestamp", (777, 123456))]


class CaptureBase(SpliceTest):
    def setUp(self) -> None:
        super().setUp()
        self.add_default_routes()
        self.add_cpu_clone_session()
        self.add_service(SERVER_IP)

    def options_of(self, payload: bytes) -> dict:
        return {name: value for name, value in Ether(payload)[TCP].options}


class SynCaptured(CaptureBase):
    """The client's SYN goes to the controller only (ISN, options), which sends it on to the server
    once its punt entry is in: a nearby server's answer would otherwise let C's ACK through first."""

    def runTest(self) -> None:
        syn = tcp_segment(flags="S", seq=0xFFFFFFFE, window=64240, options=SYN_OPTIONS)
        self.send(CLIENT, syn)
        pin = self.expect_packet_in(PIN_SYN, CLIENT, syn)
        seg = Ether(pin.payload)[TCP]
        self.assertEqual(seg.seq, 0xFFFFFFFE)
        opts = self.options_of(pin.payload)
        self.assertEqual(opts["MSS"], 1460)
        self.assertEqual(opts["WScale"], 7)
        self.assertIn("SAckOK", opts)
        self.assertEqual(opts["Timestamp"], (123456, 0))
        self.expect_nothing_else()


class SynAckCaptured(CaptureBase):
    """The server's SYN-ACK goes on to the client and its copy to the controller."""

    def runTest(self) -> None:
        synack = tcp_segment(in_port=SERVER, src=SERVER_IP, dst=CLIENT_IP, sport=SERVICE_PORT,
                             dport=CLIENT_PORT, flags="SA", seq=0x80000000, ack=0xFFFFFFFF,
                             window=65160, options=SYN_ACK_OPTIONS)
        self.send(SERVER, synack)
        self.expect(routed(synack, CLIENT), CLIENT)
        pin = self.expect_packet_in(PIN_SYN_ACK, SERVER, synack)
        seg = Ether(pin.payload)[TCP]
        self.assertEqual((seg.seq, seg.ack), (0x80000000, 0xFFFFFFFF))
        opts = self.options_of(pin.payload)
        self.assertEqual((opts["MSS"], opts["WScale"], opts["Timestamp"]), (1400, 9, (777, 123456)))
        self.expect_nothing_else()


class DrainingRoutesNewHandshakes(CaptureBase):
    """proxied_draining (the controller too far behind to take more): a SYN and a SYN-ACK of no
    flows entry run end to end, routed and unseen; the proxy's handshakes still reach the
    controller, and a SYN-ACK a punt entry was installed for (a handshake under way) goes to it."""

    def runTest(self) -> None:
        self.client.modify(self.client.table_entry(
            "services", {"server_addr": SERVER_IP, "server_port": SERVICE_PORT}, "proxied_draining",
            {"proxy_port": PROXY}))
        syn = tcp_segment(flags="S", seq=77, options=SYN_OPTIONS)
        self.send(CLIENT, syn)
        self.expect(routed(syn, SERVER), SERVER)
        synack = tcp_segment(in_port=SERVER, src=SERVER_IP, dst=CLIENT_IP, sport=SERVICE_PORT,
                             dport=CLIENT_PORT, flags="SA", seq=0x80000000, ack=78, options=SYN_ACK_OPTIONS)
        self.send(SERVER, synack)
        self.expect(routed(synack, CLIENT), CLIENT)
        self.expect_no_packet_in()
        proxy_syn = tcp_segment(in_port=PROXY, src=CLIENT_IP, dst=SERVER_IP, flags="S", seq=99, options=SYN_OPTIONS)
        self.send(PROXY, proxy_syn)
        self.expect_packet_in(PIN_PROXY_SYN, PROXY, proxy_syn)
        other = 43211  # a handshake under way: its SYN-ACK has the controller's punt entry
        self.add_flow(SERVER, SERVER_IP, CLIENT_IP, SERVICE_PORT, other, "punt")
        pending = tcp_segment(in_port=SERVER, src=SERVER_IP, dst=CLIENT_IP, sport=SERVICE_PORT,
                              dport=other, flags="SA", seq=5, ack=1001, options=SYN_ACK_OPTIONS)
        self.send(SERVER, pending)
        self.expect_packet_in(PIN_PUNT, SERVER, pending)
        self.expect_nothing_else()


class ProxyHandshakeToControllerOnly(CaptureBase):
    """SYN-ACK (leg 1) and SYN (leg 2) from the proxy port reach the controller and nobody else."""

    def runTest(self) -> None:
        synack = tcp_segment(in_port=PROXY, src=SERVER_IP, dst=CLIENT_IP, sport=SERVICE_PORT,
                             dport=CLIENT_PORT, flags="SA", seq=5, ack=1001, options=SYN_ACK_OPTIONS)
        self.send(PROXY, synack)
        self.expect_packet_in(PIN_PROXY_SYN_ACK, PROXY, synack)
        syn = tcp_segment(in_port=PROXY, src=CLIENT_IP, dst=SERVER_IP, flags="S", seq=99, options=SYN_OPTIONS)
        self.send(PROXY, syn)
        self.expect_packet_in(PIN_PROXY_SYN, PROXY, syn)
        self.expect_nothing_else()


class UnproxiedHandshakeNotCaptured(CaptureBase):
    """SYNs of other services, and non-handshake segments of the service, are only routed."""

    def runTest(self) -> None:
        other = tcp_segment(flags="S", dport=443, options=SYN_OPTIONS)
        self.send(CLIENT, other)
        self.expect(routed(other, SERVER), SERVER)
        other_host = tcp_segment(flags="S", dst=PROXY_IP, options=SYN_OPTIONS)
        self.send(CLIENT, other_host)
        self.expect(routed(other_host, PROXY), PROXY)
        ack = tcp_segment(flags="A", seq=1, ack=2)
        self.send(CLIENT, ack)
        self.expect(routed(ack, SERVER), SERVER)
        self.expect_no_packet_in()
        self.expect_nothing_else()


class ServiceEntryCountsItsHandshakes(CaptureBase):
    """The services entry's direct counter counts each SYN and SYN-ACK it takes, not the flow's
    other segments: what the controller reads while draining to tell a flood from its end."""

    def runTest(self) -> None:
        entry = self.client.table_entry("services", {"server_addr": SERVER_IP, "server_port": SERVICE_PORT},
                                        "proxied", {"proxy_port": PROXY})
        self.assertEqual(self.client.read_direct_counter(entry)[0], 0)
        syn = tcp_segment(flags="S", seq=77, options=SYN_OPTIONS)
        self.send(CLIENT, syn)
        self.expect_packet_in(PIN_SYN, CLIENT, syn)
        synack = tcp_segment(in_port=SERVER, src=SERVER_IP, dst=CLIENT_IP, sport=SERVICE_PORT,
                             dport=CLIENT_PORT, flags="SA", seq=0x80000000, ack=78, options=SYN_ACK_OPTIONS)
        self.send(SERVER, synack)
        self.expect(routed(synack, CLIENT), CLIENT)
        self.expect_packet_in(PIN_SYN_ACK, SERVER, synack)
        data = tcp_segment(flags="PA", seq=78, ack=0x80000001, payload=b"GET /")
        self.send(CLIENT, data)
        self.expect(routed(data, SERVER), SERVER)
        self.expect_nothing_else()
        self.assertEqual(self.client.read_direct_counter(entry)[0], 2)
