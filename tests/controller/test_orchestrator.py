"""The controller daemon against p4sim running the splice program: claim 1's handshake with the exact
packets the proxy receives, data through the four legs, splices with zero and non-zero deltas."""

from __future__ import annotations

import asyncio
import logging

import pytest
from p4splice.controller.daemon import Daemon
from p4splice.controller.proxyapi.client import ProxyApiClient
from p4splice.controller.splice.model import EntryMatch
from p4splice.controller.splice.splice import FlowState
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from tests.controller.orchestrator_fixtures import U32, established, flow_in, proxied, running, state
from tests.controller.test_orchestrator_support import (
    C_IP,
    C_MAC,
    C_PORT,
    P_MAC,
    P_PORT,
    S_IP,
    S_MAC,
    S_PORT,
    SW_MAC,
    Isns,
    Lab,
    flow_key,
    from_c,
    from_s,
    handshake,
    opts,
    p_as_c,
    p_as_s,
    poll,
    run,
    ts_opt,
    valid_checksums,
    wire_flow,
)

pytestmark = pytest.mark.integration


# --- claim 1 ----------------------------------------------------------------------------------------

def test_claim1_handshake_exact_packets(lab: Lab) -> None:
    async def main() -> None:
        async with proxied(lab) as (d, proxy):
            i = Isns()
            seen = await handshake(lab, 40000, i)
            await flow_in(d, 40000)
            # C and S see an undisturbed end-to-end handshake: S gets C's SYN with C's ISN and options,
            # C gets S's SYN-ACK, S gets C's ACK.
            s_syn, c_syn_ack, s_ack = seen["s_syn"], seen["c_syn_ack"], seen["s_ack"]
            assert (s_syn[TCP].flags, s_syn[TCP].seq) == ("S", i.c)
            assert opts(s_syn) == [("MSS", 1460), ("SAckOK", b""), ts_opt(i.ts_c), ("NOP", None), ("WScale", 7)]
            assert (s_syn[IP].src, s_syn[IP].dst, s_syn.dst) == (C_IP, S_IP, S_MAC)
            assert (c_syn_ack[TCP].flags, c_syn_ack[TCP].seq, c_syn_ack[TCP].ack) == ("SA", i.s, (i.c + 1) & U32)
            assert c_syn_ack.dst == C_MAC
            assert (s_ack[TCP].flags, s_ack[TCP].seq, s_ack[TCP].ack) == ("A", (i.c + 1) & U32, i.s + 1)
            assert opts(s_ack)[-1] == ts_opt(i.ts_c + 1, i.ts_s)
            # The second request: a SYN from C to S with ISN_c and C's side of the negotiated options.
            p_syn = seen["p_syn"]
            assert (p_syn[IP].src, p_syn[TCP].sport, p_syn[IP].dst, p_syn[TCP].dport) == (C_IP, 40000, S_IP, 80)
            assert (p_syn[TCP].flags, p_syn[TCP].seq, p_syn[TCP].ack) == ("S", i.c, 0)
            assert opts(p_syn) == [("MSS", 1460), ("SAckOK", b""), ts_opt(i.ts_c, 0), ("NOP", None), ("WScale", 7)]
            assert p_syn.dst == P_MAC and valid_checksums(p_syn)
            # The ACK completing leg 1: ack ISN_p1 + 1, TSecr = P's first TSval.
            p_ack = seen["p_ack"]
            assert (p_ack[TCP].flags, p_ack[TCP].seq, p_ack[TCP].ack) == ("A", (i.c + 1) & U32, i.p1 + 1)
            assert opts(p_ack)[-1] == ts_opt(i.ts_c + 1, i.ts_p1)
            assert valid_checksums(p_ack)
            # P's upstream SYN answered as S would: ISN_s and S's side of N.
            p_syn_ack = seen["p_syn_ack"]
            assert (p_syn_ack[IP].src, p_syn_ack[IP].dst) == (S_IP, C_IP)
            assert (p_syn_ack[TCP].flags, p_syn_ack[TCP].seq, p_syn_ack[TCP].ack) == ("SA", i.s, i.p2 + 1)
            assert opts(p_syn_ack) == [("MSS", 1400), ("SAckOK", b""), ts_opt(i.ts_s, i.ts_p2), ("NOP", None),
                                       ("WScale", 9)]
            assert valid_checksums(p_syn_ack)
            # Neither P's SYN-ACK nor P's ACK reached C or S.
            await lab.quiet(C_PORT, 0.1)
            await lab.quiet(S_PORT, 0.1)
            assert state(d, 40000) is FlowState.PROXIED
            kinds = sorted(inst.kind for inst in d.orch.entries.values())
            assert kinds == ["translate"] * 4
            assert d.metrics.value("p4splice_handshakes_total", result="established") == 1
    run(main())


def test_data_through_the_four_legs(lab: Lab) -> None:
    async def main() -> None:
        async with proxied(lab) as (d, proxy):
            i = await established(lab, d, 40001)
            t1 = (i.ts_p1 - i.ts_s) & U32
            t2 = (i.ts_p2 - (i.ts_c + 1)) & U32  # leg 2 reads as C from its handshake ACK (TSval ts_c + 1) on
            # C -> P: seq aligned, ack + D1, TSecr + T1.
            lab.send(C_PORT, from_c(40001, "PA", (i.c + 1) & U32, i.s + 1,
                                    options=[("NOP", None), ("NOP", None), ts_opt(i.ts_c + 2, i.ts_s)],
                                    payload=b"GET / HTTP/1.1\r\n"))
            got = await lab.recv_tcp(P_PORT)
            assert (got[TCP].seq, got[TCP].ack) == ((i.c + 1) & U32, i.p1 + 1)
            assert opts(got)[-1] == ts_opt(i.ts_c + 2, (i.ts_s + t1) & U32)
            assert bytes(got[TCP].payload) == b"GET / HTTP/1.1\r\n" and valid_checksums(got)
            assert (got.src, got.dst) == (SW_MAC, P_MAC)
            # P -> S: seq - D2 (lands where C's stream starts at S), TSval - T2 (C's clock).
            lab.send(P_PORT, p_as_c(40001, "PA", i.p2 + 1, i.s + 1,
                                    options=[("NOP", None), ("NOP", None), ts_opt(i.ts_p2 + 5, i.ts_s)],
                                    payload=b"GET / HTTP/1.1\r\nX: 1\r\n"))
            got = await lab.recv_tcp(S_PORT)
            assert (got[TCP].seq, got[TCP].ack) == ((i.c + 1) & U32, i.s + 1)
            assert opts(got)[-1] == ts_opt((i.ts_p2 + 5 - t2) & U32, i.ts_s)
            assert got.dst == S_MAC and valid_checksums(got)
            # S -> P: ack + D2, TSecr + T2.
            lab.send(S_PORT, from_s(40001, "PA", i.s + 1, (i.c + 1 + 22) & U32,
                                    options=[("NOP", None), ("NOP", None), ts_opt(i.ts_s + 1, i.ts_c + 3)],
                                    payload=b"HTTP/1.1 200 OK\r\n"))
            got = await lab.recv_tcp(P_PORT)
            assert (got[TCP].seq, got[TCP].ack) == (i.s + 1, i.p2 + 1 + 22)
            assert opts(got)[-1] == ts_opt(i.ts_s + 1, (i.ts_c + 3 + t2) & U32)
            # P -> C: seq - D1, TSval - T1, window rescaled from P's shift (8) to S's (9).
            lab.send(P_PORT, p_as_s(40001, "PA", i.p1 + 1, (i.c + 1 + 16) & U32, window=1000,
                                    options=[("NOP", None), ("NOP", None), ts_opt(i.ts_p1 + 9, i.ts_c + 2)],
                                    payload=b"HTTP/1.1 200 OK\r\n"))
            got = await lab.recv_tcp(C_PORT)
            assert (got[TCP].seq, got[TCP].ack) == (i.s + 1, (i.c + 1 + 16) & U32)
            assert opts(got)[-1] == ts_opt((i.ts_p1 + 9 - t1) & U32, i.ts_c + 2)
            assert got[TCP].window == 500 and got.dst == C_MAC and valid_checksums(got)
    run(main())


def test_counters_leave_out_an_entry_the_switch_no_longer_has(lab: Lab) -> None:
    async def main() -> None:
        async with proxied(lab) as (d, _):
            i = await established(lab, d, 40002)
            flow = flow_key(40002)
            matches = list(d.orch.core.flows.get(flow).matches())
            c2p = EntryMatch.c2s(flow, C_PORT)
            start = await d.orch.counters(matches)
            lab.send(C_PORT, from_c(40002, "PA", (i.c + 1) & U32, i.s + 1, payload=b"counted"))
            await lab.recv_tcp(P_PORT)
            before = await d.orch.counters(matches)
            assert set(before) == set(matches) and before[c2p][0] == start[c2p][0] + 1
            # The switch loses one entry behind the controller's back (an operator's delete, say):
            # a Read naming it fails as a whole, so the others are read one by one.
            gone = next(m for m in matches if m != c2p)
            await d.session.delete(d.orch.entries[gone].entry)
            after = await d.orch.counters(matches)
            assert after == {m: before[m] for m in matches if m != gone}
    run(main())


async def _splice(lab: Lab, d: Daemon, proxy: ProxyApiClient, sport: int, counts: tuple[int, int, int, int]) -> None:
    assert await proxy.splice_prepare(wire_flow(sport)) == "holding"
    deltas = await proxy.splice(wire_flow(sport), *counts)
    a_c, b_s, a_s, b_c = counts
    assert (deltas.c2s, deltas.s2c) == (b_s - a_c, b_c - a_s)
    assert state(d, sport) is FlowState.SPLICED


def test_splice_verbatim_is_plain_forwarding(lab: Lab) -> None:
    async def main() -> None:
        async with proxied(lab) as (d, proxy):
            i = await established(lab, d, 40002)
            await _splice(lab, d, proxy, 40002, (0, 0, 0, 0))
            # C -> S direct, untouched but for TTL and MACs.
            lab.send(C_PORT, from_c(40002, "PA", (i.c + 1) & U32, i.s + 1,
                                    options=[("NOP", None), ("NOP", None), ts_opt(i.ts_c + 2, i.ts_s)], payload=b"hi"))
            got = await lab.recv_tcp(S_PORT)
            assert (got[TCP].seq, got[TCP].ack, bytes(got[TCP].payload)) == ((i.c + 1) & U32, i.s + 1, b"hi")
            assert opts(got)[-1] == ts_opt(i.ts_c + 2, i.ts_s) and got.dst == S_MAC
            lab.send(S_PORT, from_s(40002, "PA", i.s + 1, (i.c + 3) & U32,
                                    options=[("NOP", None), ("NOP", None), ts_opt(i.ts_s + 1, i.ts_c + 2)], payload=b"yo"))
            got = await lab.recv_tcp(C_PORT)
            assert (got[TCP].seq, got[TCP].ack) == (i.s + 1, (i.c + 3) & U32) and got.dst == C_MAC
            # Whatever P's sockets still send never reaches C or S.
            lab.send(P_PORT, p_as_s(40002, "PA", i.p1 + 1, (i.c + 1) & U32, payload=b"late"))
            lab.send(P_PORT, p_as_c(40002, "PA", i.p2 + 1, i.s + 1, payload=b"late"))
            await lab.quiet(C_PORT, 0.15)
            await lab.quiet(S_PORT, 0.05)
            assert d.metrics.value("p4splice_splices_total", kind="verbatim") == 1
    run(main())


def test_splice_with_rewritten_bytes(lab: Lab) -> None:
    async def main() -> None:
        async with proxied(lab) as (d, proxy):
            i = await established(lab, d, 40003)
            # P read 500 bytes from C and wrote 520 to S; read 3000 from S and wrote 2990 to C.
            await _splice(lab, d, proxy, 40003, (500, 520, 3000, 2990))
            c_next = (i.c + 1 + 500) & U32  # past the wrap
            lab.send(C_PORT, from_c(40003, "PA", c_next, i.s + 1 + 2990, payload=b"x" * 10,
                                    options=[("NOP", None), ("NOP", None), ("SAck", (i.s + 1 + 2980, i.s + 1 + 2990))]))
            got = await lab.recv_tcp(S_PORT)
            assert got[TCP].seq == (i.c + 1 + 520) & U32  # right after P's 520 bytes
            assert got[TCP].ack == i.s + 1 + 3000  # all S sent
            assert opts(got)[-1] == ("SAck", (i.s + 1 + 2990, i.s + 1 + 3000))
            assert valid_checksums(got)
            lab.send(S_PORT, from_s(40003, "A", i.s + 1 + 3000, (i.c + 1 + 530) & U32))
            got = await lab.recv_tcp(C_PORT)
            assert (got[TCP].seq, got[TCP].ack) == (i.s + 1 + 2990, (i.c + 1 + 510) & U32)
            assert d.metrics.value("p4splice_splices_total", kind="rewritten") == 1
    run(main())


def test_splice_refused_for_unknown_flow_and_double_report(lab: Lab) -> None:
    async def main() -> None:
        from p4splice.controller.proxyapi.protocol import ApiError

        async with proxied(lab) as (d, proxy):
            with pytest.raises(ApiError) as e:
                await proxy.splice_prepare(wire_flow(49999))
            assert e.value.code == "not_found"
            await established(lab, d, 40004)
            with pytest.raises(ApiError) as e:
                await proxy.splice(wire_flow(40004), 0, 0, 0, 0)
            assert e.value.code == "conflict"  # not holding
            info = await proxy.flow(wire_flow(40004))
            assert info["state"] == "proxied" and len(info["entries"]) == 4
            assert all("packets" in leg for leg in info["entries"])
    run(main())


def test_not_proxied_without_a_registered_proxy(lab: Lab) -> None:
    async def main() -> None:
        async with running(lab) as d:
            lab.send(C_PORT, from_c(40005, "S", 1, options=[("MSS", 1460)]))
            await lab.recv_tcp(S_PORT)
            lab.send(S_PORT, from_s(40005, "SA", 7, 2, options=[("MSS", 1460)]))
            await lab.recv_tcp(C_PORT)
            await lab.quiet(P_PORT, 0.1)
            assert not d.orch.entries and not d.orch.l2
    run(main())


def test_malformed_syn_options_are_not_proxied(lab: Lab) -> None:
    async def main() -> None:
        async with proxied(lab) as (d, proxy):
            # Two MSS options: the data plane passes it, the core's parser refuses it.
            lab.send(C_PORT, from_c(40006, "S", 1, options=[("MSS", 1460), ("MSS", 1400)]))
            await lab.recv_tcp(S_PORT)
            await poll(lambda: d.metrics.value("p4splice_failures_total", kind="bad_options") == 1)
            assert len(d.orch.core.handshakes) == 0 and not d.orch.entries
    run(main())


def _corrupt(pkt: Ether, layer: str) -> bytes:
    """``pkt`` with its IPv4 header checksum or its TCP checksum off by one."""
    raw = bytearray(bytes(pkt))
    at = 14 + 10 if layer == "ip" else 14 + 20 + 16
    raw[at + 1] ^= 0x01
    return bytes(raw)


def test_a_corrupt_segment_is_never_made_valid(lab: Lab, caplog: pytest.LogCaptureFixture) -> None:
    """A SYN to a proxied service with a wrong TCP or IPv4 checksum reaches the controller as the
    only instance: it is dropped and counted, never sent on with fresh checksums (the server would
    have answered it), and nothing is learnt from it; a corrupt SYN-ACK teaches no ISN either. (The
    controller's own handshakes: the switch's carry a corrupt segment on as it is.)"""
    async def main() -> None:
        async with proxied(lab, handshakes="controller") as (d, proxy):
            lab.send(C_PORT, _corrupt(from_c(40007, "S", 1, options=[("MSS", 1460)]), "tcp"))
            lab.send(C_PORT, _corrupt(from_c(40008, "S", 1, options=[("MSS", 1460)]), "ip"))
            await poll(lambda: d.orch.stats["bad_checksum"] == 2, what="both SYNs seen")
            await d.orch.drain()
            await lab.quiet(S_PORT, 0.2)
            await lab.quiet(P_PORT, 0.1)
            assert not d.orch.core.handshakes and not d.orch.entries
            # A valid SYN, then a corrupt SYN-ACK: the handshake waits for a good one.
            lab.send(C_PORT, from_c(40009, "S", 5, options=[("MSS", 1460)]))
            await lab.expect_tcp(S_PORT, lambda p: p[TCP].sport == 40009)
            lab.send(S_PORT, _corrupt(from_s(40009, "SA", 700, 6, options=[("MSS", 1460)]), "tcp"))
            await poll(lambda: d.orch.stats["bad_checksum"] == 3, what="the corrupt SYN-ACK seen")
            await lab.quiet(P_PORT, 0.2)  # no second request to the proxy on its word
            assert d.metrics.value("p4splice_failures_total", kind="bad_checksum") == 3
            # A flood of them is counted each, and logged a few lines per 5 s, not a line each.
            with caplog.at_level(logging.INFO, logger="p4splice.controller.orchestrator"):
                for k in range(60):
                    lab.send(C_PORT, _corrupt(from_c(41000 + k, "S", 1, options=[("MSS", 1460)]), "tcp"))
                await poll(lambda: d.orch.stats["bad_checksum"] == 63, what="the flood seen")
            lines = [r for r in caplog.records if "checksum wrong" in r.getMessage()]
            assert 1 <= len(lines) <= d.orch._lines.burst
    run(main())


def test_a_syn_in_a_first_fragment_goes_on_unproxied(lab: Lab) -> None:
    """The first fragment of an IPv4 packet carrying a SYN to a service: the switch hands it over
    (it carries the TCP header); the controller does not take fragments on, and sends it on as a
    router would rather than drop it (the same SYN to an unproxied port is routed)."""
    async def main() -> None:
        async with proxied(lab) as (d, proxy):
            syn = Ether(src=C_MAC, dst=SW_MAC) / IP(src=C_IP, dst=S_IP, ttl=64, flags="MF", id=99) / TCP(
                sport=40010, dport=80, flags="S", seq=11, options=[("MSS", 1460)]) / (b"f" * 16)
            lab.send(C_PORT, syn)
            got = await lab.expect_tcp(S_PORT, lambda p: p[TCP].sport == 40010)
            assert (got[IP].flags, got[IP].id, got[IP].ttl, got[TCP].seq) == ("MF", 99, 63, 11)
            assert bytes(got[IP])[20:] == bytes(syn[IP])[20:]  # the fragment's bytes as they came
            await lab.quiet(P_PORT, 0.1)
            assert not d.orch.core.handshakes and not d.orch.entries
    run(main())


def test_metrics_endpoint_serves(lab: Lab) -> None:
    async def main() -> None:
        import urllib.request

        async with proxied(lab, metrics_port=0) as (d, proxy):
            await established(lab, d, 40007)
            assert d.metrics_port
            body = await asyncio.to_thread(
                lambda: urllib.request.urlopen(f"http://127.0.0.1:{d.metrics_port}/metrics", timeout=3).read().decode())
            assert 'p4splice_handshakes_total{result="established"} 1.0' in body
            assert 'p4splice_flows{state="proxied"} 1.0' in body
            assert "p4splice_p4runtime_write_seconds_bucket" in body
    run(main())
