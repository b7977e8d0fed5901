"""The daemon with the switch running claim 1's handshakes (``handshakes = "switch"``, the default):
no handshake packet crosses the controller, which learns each step from digests and installs the
legs' entries in the background; the handshake completes with the controller stopped."""

from __future__ import annotations

import pytest
from p4splice.controller import dataplane as dp
from p4splice.controller.p4rt.entities import TableEntry
from p4splice.controller.proxyapi.client import ProxyApiClient
from p4splice.controller.splice.splice import FlowState
from scapy.layers.inet import TCP

from tests.controller.orchestrator_fixtures import U32, flow_in, flow_key, proxied, state
from tests.controller.test_orchestrator_support import (
    C_PORT,
    P_MAC,
    P_PORT,
    S_PORT,
    Isns,
    Lab,
    from_c,
    from_s,
    handshake,
    p_as_c,
    p_as_s,
    poll,
    run,
    tcp,
    ts_opt,
)

pytestmark = pytest.mark.integration

HANDSHAKE_REASONS = ("SYN", "SYN_ACK", "PROXY_SYN", "PROXY_SYN_ACK")


async def services_inline(d) -> list[bool]:  # noqa: ANN001 - a Daemon
    entries = await d.session.read_all(TableEntry(dp.SERVICES))
    return [dp.parse_service(d.session.index, e).inline for e in entries]


def handshake_packet_ins(d) -> float:  # noqa: ANN001
    return sum(d.metrics.value("p4splice_packet_ins_total", reason=r) or 0 for r in HANDSHAKE_REASONS)


def test_the_switch_runs_the_handshake_and_the_controller_installs_the_legs(lab: Lab) -> None:
    async def main() -> None:
        async with proxied(lab) as (d, proxy):
            await poll(lambda: services_inline(d), what="service entry inline")
            assert await services_inline(d) == [True]
            sport = 42010
            seen = await handshake(lab, sport)
            await flow_in(d, sport)
            assert state(d, sport) is FlowState.PROXIED
            assert handshake_packet_ins(d) == 0, "a handshake packet went through the controller"
            assert d.metrics.value("p4splice_handshake_digests_total", state="LEG2_UP") >= 1
            # what P saw is the controller's own handshake, byte for byte (test_orchestrator.py
            # checks those packets on the controller's path)
            assert seen["p_syn"][TCP].flags == "S" and seen["p_ack"][TCP].flags == "A"
            assert sorted(e.kind for e in d.orch.entries.values()) == ["translate"] * 4
            # the switch stamps its digest lists: how far behind them the controller is can be told
            assert d.orch.overload is not None and d.orch.overload._offset_ns is not None
    run(main())


def test_early_data_is_held_by_the_controller_and_released_on_leg_1(lab: Lab) -> None:
    """C's request arrives before the proxy answered the second request: the switch passes it up,
    the controller holds it and sends it to P translated once the switch reports leg 1 up."""
    async def main() -> None:
        async with proxied(lab) as (d, proxy):
            await poll(lambda: services_inline(d), what="service entry inline")
            i, sport = Isns(), 42020
            lab.send(C_PORT, from_c(sport, "S", i.c, options=[("MSS", 1460), ("SAckOK", b""), ts_opt(i.ts_c),
                                                          ("NOP", None), ("WScale", 7)]))
            await lab.recv_tcp(S_PORT)
            lab.send(S_PORT, from_s(sport, "SA", i.s, (i.c + 1) & U32,
                                    options=[("MSS", 1400), ("SAckOK", b""), ts_opt(i.ts_s, i.ts_c), ("NOP", None),
                                             ("WScale", 9)]))
            await lab.recv_tcp(C_PORT)
            syn = await lab.recv_tcp(P_PORT)
            assert syn[TCP].seq == i.c
            lab.send(C_PORT, from_c(sport, "A", (i.c + 1) & U32, i.s + 1,
                                    options=[("NOP", None), ("NOP", None), ts_opt(i.ts_c + 1, i.ts_s)]))
            await lab.recv_tcp(S_PORT)
            lab.send(C_PORT, from_c(sport, "PA", (i.c + 1) & U32, i.s + 1, payload=b"GET / HTTP/1.0\r\n\r\n",
                                    options=[("NOP", None), ("NOP", None), ts_opt(i.ts_c + 2, i.ts_s)]))
            await poll(lambda: d.metrics.value("p4splice_packet_ins_total", reason="PUNT") == 1, what="held")
            await lab.quiet(P_PORT, 0.1)
            # P answers: the switch ACKs it itself, the controller releases C's request
            lab.send(P_PORT, p_as_s(sport, "SA", i.p1, (i.c + 1) & U32,
                                    options=[("MSS", 1460), ("SAckOK", b""), ts_opt(i.ts_p1, i.ts_c), ("NOP", None),
                                             ("WScale", 8)]))
            ack = await lab.recv_tcp(P_PORT)
            assert ack[TCP].flags == "A" and ack[TCP].ack == i.p1 + 1 and not bytes(ack[TCP].payload)
            req = await lab.recv_tcp(P_PORT)
            assert bytes(req[TCP].payload) == b"GET / HTTP/1.0\r\n\r\n"
            assert req[TCP].ack == i.p1 + 1, "released translated into P's sequence space"
    run(main())


def test_the_handshake_completes_with_the_controller_stopped(lab: Lab) -> None:
    """The controller is gone after setting the switch up: the switch alone makes both legs and
    translates every direction from its slot."""
    async def main() -> None:
        i, sport = Isns(), 42030
        async with proxied(lab) as (d, proxy):
            await poll(lambda: services_inline(d), what="service entry inline")
            await d.close()  # stopped while the proxy is in service: the entries stay as they are
            await handshake(lab, sport, i)
            # C -> P: ack into P's space; P -> S: seq into C's; S -> P: ack into P's
            lab.send(C_PORT, from_c(sport, "PA", (i.c + 1) & U32, i.s + 1, payload=b"ping",
                                    options=[("NOP", None), ("NOP", None), ts_opt(i.ts_c + 5, i.ts_s)]))
            got = await lab.recv_tcp(P_PORT)
            assert bytes(got[TCP].payload) == b"ping" and got[TCP].ack == i.p1 + 1
            lab.send(P_PORT, p_as_c(sport, "PA", i.p2 + 1, i.s + 1, payload=b"ping",
                                    options=[("NOP", None), ("NOP", None), ts_opt(i.ts_p2 + 5, i.ts_s)]))
            got = await lab.recv_tcp(S_PORT)
            assert bytes(got[TCP].payload) == b"ping" and got[TCP].seq == (i.c + 1) & U32
            lab.send(S_PORT, from_s(sport, "PA", i.s + 1, (i.c + 5) & U32, payload=b"pong",
                                    options=[("NOP", None), ("NOP", None), ts_opt(i.ts_s + 5, i.ts_c + 5)]))
            got = await lab.recv_tcp(P_PORT)
            assert bytes(got[TCP].payload) == b"pong" and got[TCP].ack == (i.p2 + 5) & U32
    run(main())


def test_services_follow_their_proxy(lab: Lab) -> None:
    """The switch runs a service's handshakes only while its proxy is in service: registered,
    the entry is proxied_inline with the proxy's MAC; gone, it is the controller's again."""
    async def main() -> None:
        async with proxied(lab) as (d, proxy):
            await poll(lambda: services_inline(d), what="service entry inline")
            (entry,) = await d.session.read_all(TableEntry(dp.SERVICES))
            assert entry.action.params["dmac"] == int(P_MAC.replace(":", ""), 16)
            await proxy.bye()
            await poll(lambda: not d.orch.proxy_macs, what="proxy gone")
            assert await services_inline(d) == [False]
            again = ProxyApiClient(d.config.proxy_socket, "proxy-2")
            await again.connect()
            try:
                await again.register(P_PORT, P_MAC, heartbeat_ms=200)
                assert await services_inline(d) == [True]
            finally:
                await again.close()
    run(main())


async def services_draining(d) -> list[bool]:  # noqa: ANN001 - a Daemon
    entries = await d.session.read_all(TableEntry(dp.SERVICES))
    return [dp.parse_service(d.session.index, e).draining for e in entries]


def test_falling_behind_the_digests_drains_the_services(lab: Lab) -> None:
    """A controller more than overload_lag behind the switch's digests (a SYN flood's) sets its
    services draining: a new connection runs end to end without the proxy and without a word to
    the controller; once it has caught up, the services take new connections again."""
    import time

    from p4splice.controller.p4rt.entities import DigestList

    async def main() -> None:
        async with proxied(lab) as (d, proxy):
            await poll(lambda: services_inline(d), what="service entry inline")
            await handshake(lab, 42099)  # the switch's lists tell how fast they come, in its clock
            await flow_in(d, 42099)
            guard = d.orch.overload
            assert guard is not None and guard._offset_ns is not None and not d.orch.draining
            late = time.time_ns() - guard._offset_ns - 3_000_000_000  # a list sent 3 s ago
            d.orch.on_digest_list(DigestList(dp.HANDSHAKE_DIGEST, 1 << 40, (), late))
            assert d.orch.draining
            await poll(lambda: _all(services_draining(d)), what="service entry draining")
            assert await services_inline(d) == [True]  # handshakes under way go on
            digests = d.metrics.value("p4splice_handshake_digests_total", state="SYN_ACKED")
            lab.send(C_PORT, from_c(42100, "S", 1000, options=[("MSS", 1460)]))
            got = await lab.expect_tcp(S_PORT, lambda p: p[TCP].sport == 42100)
            assert got[TCP].flags == "S" and got[TCP].seq == 1000
            lab.send(S_PORT, from_s(42100, "SA", 5000, 1001, options=[("MSS", 1460)]))
            got = await lab.expect_tcp(C_PORT, lambda p: p[TCP].dport == 42100)
            assert got[TCP].flags == "SA" and got[TCP].seq == 5000
            await lab.quiet(P_PORT, 0.2)  # the proxy hears nothing of it
            assert d.metrics.value("p4splice_handshake_digests_total", state="SYN_ACKED") == digests
            assert handshake_packet_ins(d) == 0
            # caught up (no list for a while) after the least drain: proxied again
            await poll(lambda: not d.orch.draining, timeout=10, what="the drain over")
            await poll(lambda: _not(services_draining(d)), what="service entry proxied_inline again")
            sport = 42101
            await handshake(lab, sport)
            await flow_in(d, sport)
            assert state(d, sport) is FlowState.PROXIED
            assert d.metrics.value("p4splice_failures_total", kind="overload") == 1
    run(main())


async def _not(flags) -> bool:  # noqa: ANN001 - an awaitable list of bools
    return not any(await flags)


async def _all(flags) -> bool:  # noqa: ANN001 - an awaitable list of bools
    got = await flags
    return bool(got) and all(got)


def test_a_flood_faster_than_the_pending_bound_drains_the_services(lab: Lab) -> None:
    """Spoofed SYNs the server answers, more a second than overload_evictions: the mirrors of
    their handshakes are evicted that fast, and the services drain though the controller keeps
    up with the digests; a real connection meanwhile runs end to end."""
    import asyncio
    import random

    from tests.controller.test_orchestrator_support import C_MAC, S_IP, S_MAC, S_TCP

    async def main() -> None:
        async with proxied(lab, max_pending=20, overload_evictions=20) as (d, proxy):
            await poll(lambda: services_inline(d), what="service entry inline")
            rnd = random.Random(3)
            for k in range(120):
                src, sport, isn = f"10.0.1.{2 + k % 200}", 20000 + k, rnd.getrandbits(32)
                lab.send(C_PORT, tcp(src, sport, S_IP, S_TCP, "S", isn, options=[("MSS", 1460)], smac=C_MAC))
                lab.send(S_PORT, tcp(S_IP, S_TCP, src, sport, "SA", rnd.getrandbits(32), (isn + 1) & U32,
                                     options=[("MSS", 1460)], smac=S_MAC))
                if d.orch.draining:
                    break
                await asyncio.sleep(0.02)  # the flood's pace
            await poll(lambda: d.orch.draining, what="the services drained")
            assert d.orch.overload is not None and d.orch.overload.eviction_rate > 20
            assert d.orch.core.handshakes.stats["evicted"] > 20
            await poll(lambda: _all(services_draining(d)), what="service entry draining")
            lab.drain(P_PORT)
            lab.send(C_PORT, from_c(42200, "S", 1000, options=[("MSS", 1460)]))
            got = await lab.expect_tcp(S_PORT, lambda p: p[TCP].sport == 42200)
            assert got[TCP].flags == "S"
            await lab.quiet(P_PORT, 0.2)  # not proxied: the proxy hears nothing of it
    run(main())


async def digest_list_size(d) -> int:  # noqa: ANN001 - a Daemon
    from p4splice.controller.p4rt.entities import DigestEntry

    (entry,) = await d.session.read_all(DigestEntry(dp.HANDSHAKE_DIGEST))
    return entry.max_list_size


async def list_size_is(d, n: int) -> bool:  # noqa: ANN001 - a Daemon
    """Both digests the controller takes (handshake steps and FINs) are in lists of ``n``."""
    from p4splice.controller.p4rt.entities import DigestEntry

    (fins,) = await d.session.read_all(DigestEntry(dp.FIN_DIGEST))
    return await digest_list_size(d) == n and fins.max_list_size == n


async def four_fins(lab: Lab, sport: int, i: Isns) -> None:
    """A proxied flow's close: C's FIN to P, P's on to S, S's to P, P's on to C, each seen through."""
    lab.send(C_PORT, from_c(sport, "FA", (i.c + 1) & U32, i.s + 1))
    await lab.recv_tcp(P_PORT)
    lab.send(P_PORT, p_as_c(sport, "FA", i.p2 + 1, i.s + 1))
    await lab.recv_tcp(S_PORT)
    lab.send(S_PORT, from_s(sport, "FA", i.s + 1, (i.c + 2) & U32))
    await lab.recv_tcp(P_PORT)
    lab.send(P_PORT, p_as_s(sport, "FA", i.p1 + 1, (i.c + 2) & U32))
    await lab.recv_tcp(C_PORT)


def test_the_four_fins_of_a_proxied_flow_come_as_digests(lab: Lab) -> None:
    """FINs reach the controller as fin_t digests (no packet-in), in lists as the handshake's
    steps are (one by one while they come slowly); the four of a proxied connection end it as
    copies did."""
    from p4splice.controller.p4rt.entities import DigestEntry

    async def main() -> None:
        async with proxied(lab) as (d, proxy):
            await poll(lambda: services_inline(d), what="service entry inline")
            (entry,) = await d.session.read_all(DigestEntry(dp.FIN_DIGEST))
            assert (entry.max_list_size, entry.max_timeout_ns) == (1, int(d.config.digest_delay * 1e9))
            sport, i = 42030, Isns()
            await handshake(lab, sport, i)
            await flow_in(d, sport)
            await four_fins(lab, sport, i)
            await poll(lambda: state(d, sport) is FlowState.LINGER, what="the flow closing")
            assert d.metrics.value("p4splice_fins_reported_total") == 4
            assert not d.metrics.value("p4splice_packet_ins_total", reason="FIN")
    run(main())


def test_digest_lists_grow_with_the_rate_and_shrink_when_it_falls(lab: Lab) -> None:
    """digest_batch = "auto" (the default): digests one by one while they come slowly, lists of
    many while they come fast, one by one again as soon as they stop; a connection after the
    burst is learnt from lists of one (a switch that holds a partial list would delay it)."""
    import asyncio
    import time

    from p4splice.controller.p4rt.entities import DigestList

    async def main() -> None:
        async with proxied(lab) as (d, proxy):
            assert d.config.digest_batch == "auto"
            await poll(lambda: services_inline(d), what="service entry inline")
            await handshake(lab, 42200)
            await flow_in(d, 42200)
            assert await digest_list_size(d) == 1
            # a burst: 20 digests every 2 ms or so (steps of a state the core does not take, not
            # stamped: the switch's clock is its own, BMv2's is not the wall clock): lists fill
            # within the 10 ms aimed at
            step = {"state": 0}
            t_end = time.monotonic() + 0.35
            while time.monotonic() < t_end:
                d.orch.on_digest_list(DigestList(dp.HANDSHAKE_DIGEST, 1, (step,) * 20, 0))
                await asyncio.sleep(0.002)  # pacing the burst, not waiting for anything
            assert d.orch.digest_batcher is not None and d.orch.digest_batcher.size > 1
            size = d.orch.digest_batcher.size
            await poll(lambda: list_size_is(d, size), what="the switch asked for longer lists")
            # nothing more comes: within a period or two the switch is asked for lists of one
            await poll(lambda: list_size_is(d, 1), timeout=2, what="lists of one again")
            assert d.orch.digest_batcher.size == 1
            t0 = time.monotonic()
            await handshake(lab, 42201)
            await flow_in(d, 42201)
            assert state(d, 42201) is FlowState.PROXIED
            assert time.monotonic() - t0 < 1.0
    run(main())


def test_a_flood_drains_the_controllers_handshakes_too(lab: Lab) -> None:
    """handshakes = "controller": SYNs faster than the pending bound can hold set the services
    proxied_draining. A new connection then runs end to end, unseen; a handshake taken before
    the drain goes on, its SYN-ACK reaching the controller by the punt entry its SYN installed."""
    import asyncio

    from p4splice.controller.splice.model import EntryMatch, FlowKey

    from tests.controller.test_orchestrator_support import C_IP, C_MAC, S_IP, S_TCP

    async def main() -> None:
        async with proxied(lab, handshakes="controller", max_pending=20, overload_evictions=20) as (d, proxy):
            real = 42300
            flow = FlowKey(C_IP, real, S_IP, S_TCP)
            lab.send(C_PORT, from_c(real, "S", 1000, options=[("MSS", 1460)]))
            await lab.expect_tcp(S_PORT, lambda p: p[TCP].sport == real)  # sent on by the controller
            await d.orch.drain()
            assert {EntryMatch.c2s(flow, C_PORT), EntryMatch.s2c(flow, S_PORT)} <= set(d.orch.flow_entries[flow])
            assert d.orch.overload is not None
            d.orch.overload.min_drain = 60.0  # the drain outlasts the test, whatever the backlog of the flood
            for k in range(400):  # one spoofed source: its own handshakes are the ones evicted
                lab.send(C_PORT, tcp("10.0.1.99", 20000 + k, S_IP, S_TCP, "S", k, options=[("MSS", 1460)], smac=C_MAC))
                if d.orch.draining:
                    break
                await asyncio.sleep(0.005)  # the flood's pace
            await poll(lambda: d.orch.draining, what="the services drained")
            stats = d.orch.core.handshakes.stats
            assert stats["syn"] - stats["verified"] > 20 and d.orch.overload.eviction_rate > 20  # unanswered SYNs
            await poll(lambda: _all(services_draining(d)), what="service entry draining")
            lab.drain(S_PORT)
            lab.send(C_PORT, from_c(42301, "S", 5000, options=[("MSS", 1460)]))
            got = await lab.expect_tcp(S_PORT, lambda p: p[TCP].sport == 42301)
            assert got[TCP].flags == "S"
            lab.send(S_PORT, from_s(42301, "SA", 9000, 5001, options=[("MSS", 1460)]))
            await lab.expect_tcp(C_PORT, lambda p: p[TCP].dport == 42301 and p[TCP].flags == "SA")
            new = FlowKey(C_IP, 42301, S_IP, S_TCP)
            assert d.orch.core.handshakes.get(new) is None and new not in d.orch.flow_entries  # unseen
            # A SYN the switch handed over before the drain and the controller takes from its
            # backlog during it: sent on unproxied, as routed (TTL - 1), no handshake, no entry.
            from p4splice.controller.p4rt.entities import PacketIn
            queued = FlowKey(C_IP, 42302, S_IP, S_TCP)
            syn = bytes(from_c(42302, "S", 6000, options=[("MSS", 1460)]))
            drained = d.metrics.value("p4splice_handshakes_total", result="drained") or 0
            d.orch.on_packet_in(PacketIn(syn, {"ingress_port": C_PORT, "reason": dp.PacketInReason.SYN}))
            got = await lab.expect_tcp(S_PORT, lambda p: p[TCP].sport == 42302)
            assert got[TCP].flags == "S" and got[TCP].seq == 6000 and got["IP"].ttl == from_c(42302, "S", 6000)["IP"].ttl - 1
            assert d.orch.core.handshakes.get(queued) is None and queued not in d.orch.flow_entries
            assert d.metrics.value("p4splice_handshakes_total", result="drained") == drained + 1
            # The handshake under way: S's answer reaches the controller, which sends it on to C
            # and the claim's second request to P.
            lab.drain(P_PORT)
            lab.send(S_PORT, from_s(real, "SA", 7000, 1001, options=[("MSS", 1460)]))
            await lab.expect_tcp(C_PORT, lambda p: p[TCP].dport == real and p[TCP].flags == "SA")
            second = await lab.expect_tcp(P_PORT, lambda p: p[TCP].sport == real and p[TCP].flags == "S")
            assert second[TCP].seq == 1000
    run(main())


@pytest.mark.parametrize("handshakes", ["switch", "controller"])
def test_a_new_connection_on_a_4_tuple_whose_entries_linger(lab: Lab, handshakes: str) -> None:
    """A client uses its port again while the previous connection's entries linger: its SYN is not
    translated by them (the switch hands it to the controller), the controller removes them and
    proxies the new connection with its own ISNs; nothing of it reaches anyone translated by the
    old connection's deltas. Whichever runs the handshakes."""
    async def main() -> None:
        async with proxied(lab, handshakes=handshakes) as (d, proxy):
            await poll(lambda: services_inline(d), what="service entry")
            assert await services_inline(d) == [handshakes == "switch"]
            sport, i = 42040, Isns()
            await handshake(lab, sport, i)
            await flow_in(d, sport)
            await four_fins(lab, sport, i)
            await poll(lambda: state(d, sport) is FlowState.LINGER, what="the flow closing")
            old_d1 = (i.p1 - i.s) & U32
            i2 = Isns(c=123456, s=2_000_000_000, p1=3_000_000_000, p2=400, ts_c=200000, ts_s=600000,
                      ts_p1=8000, ts_p2=9500)
            assert (i2.p1 - i2.s) & U32 != old_d1
            seen = await handshake(lab, sport, i2)
            assert seen["s_syn"][TCP].seq == i2.c and seen["p_syn"][TCP].seq == i2.c
            assert (seen["c_syn_ack"][TCP].seq, seen["c_syn_ack"][TCP].ack) == (i2.s, i2.c + 1)
            await poll(lambda: (fl := d.orch.core.flows.get(flow_key(sport))) is not None
                       and fl.facts.isn_c == i2.c, what="the new connection established")
            await d.orch.drain()
            assert state(d, sport) is FlowState.PROXIED
            assert d.orch.core.flows.stats["closed"] == 1
            # C's request reaches P with the new connection's ack translation (D1 of i2)
            lab.send(C_PORT, from_c(sport, "PA", (i2.c + 1) & U32, i2.s + 1, payload=b"GET /"))
            got = await lab.recv_tcp(P_PORT, skip_pure_acks=True)
            assert (got[TCP].seq, got[TCP].ack) == ((i2.c + 1) & U32, (i2.p1 + 1) & U32)
    run(main())


def test_a_drain_lasts_as_long_as_the_flood(lab: Lab) -> None:
    """Past its least time a drain goes on while the services' entries still take a flood of SYNs
    (their direct counters, read by the controller), and ends soon after the flood stops. (The
    controller's handshakes: a flood nobody answers drains them; the switch's drain on the same
    reads.)"""
    import asyncio
    import time

    from tests.controller.test_orchestrator_support import C_MAC, S_IP, S_TCP

    async def main() -> None:
        async with proxied(lab, handshakes="controller", max_pending=20, overload_evictions=20) as (d, proxy):
            guard = d.orch.overload
            assert guard is not None
            guard.min_drain = guard.max_drain = 1.0
            flooding = True

            async def flood() -> None:
                k = 0
                while flooding:  # one spoofed source; nobody answers its SYNs
                    lab.send(C_PORT, tcp("10.0.1.99", 20000 + k % 40000, S_IP, S_TCP, "S", k, options=[("MSS", 1460)],
                                         smac=C_MAC))
                    k += 1
                    await asyncio.sleep(0.004)  # the flood's pace

            flooder = asyncio.get_running_loop().create_task(flood())
            try:
                await poll(lambda: d.orch.draining, timeout=10.0, what="the services drained")
                start = time.monotonic()
                while time.monotonic() - start < 3.0:  # three times the drain's least time
                    assert d.orch.draining, f"the drain ended {time.monotonic() - start:.1f} s into the flood"
                    await asyncio.sleep(0.05)  # sampling the state, not waiting for it
                assert guard.syn_rate > 20 and guard.episodes == 1
            finally:
                flooding = False
                await flooder
            stopped = time.monotonic()
            await poll(lambda: not d.orch.draining, timeout=5.0, what="the drain's end after the flood")
            assert time.monotonic() - stopped < 3.0
    run(main())
