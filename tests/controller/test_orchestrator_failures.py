"""The controller daemon's endings and failures against p4sim: teardown, proxy death, controller
restart, backup take-over, switch restart, SYN flood, and the admin socket's splice."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable

import pytest
from p4splice.controller.admin import admin_request
from p4splice.controller.daemon import Daemon
from p4splice.controller.p4rt import SwitchSession
from p4splice.controller.proxyapi.client import ProxyApiClient
from p4splice.controller.splice.splice import FlowState
from scapy.layers.inet import TCP

from tests.controller.orchestrator_fixtures import U32, established, flow_out, proxied, running, state
from tests.controller.test_orchestrator_support import (
    C_PORT,
    FAST,
    P_PORT,
    S_PORT,
    Isns,
    Lab,
    flow_key,
    from_c,
    from_s,
    handshake,
    p_as_c,
    p_as_s,
    poll,
    run,
    wire_flow,
)

pytestmark = pytest.mark.integration


async def spliced(lab: Lab, d: Daemon, proxy: ProxyApiClient, sport: int, counts=(0, 0, 0, 0)) -> Isns:  # noqa: ANN001
    i = await established(lab, d, sport)
    await proxy.splice_prepare(wire_flow(sport))
    await proxy.splice(wire_flow(sport), *counts)
    await d.orch.drain()
    return i


async def fin_both_ways(lab: Lab, sport: int, i: Isns, c_off: int = 0, s_off: int = 0) -> None:
    """FIN from C, FIN from S, final ACK from C, on a spliced flow (offsets: bytes already sent)."""
    c_seq, s_seq = (i.c + 1 + c_off) & U32, (i.s + 1 + s_off) & U32
    lab.send(C_PORT, from_c(sport, "FA", c_seq, s_seq))
    await lab.recv_tcp(S_PORT)
    lab.send(S_PORT, from_s(sport, "FA", s_seq, (c_seq + 1) & U32))
    await lab.recv_tcp(C_PORT)
    lab.send(C_PORT, from_c(sport, "A", (c_seq + 1) & U32, (s_seq + 1) & U32))
    await lab.recv_tcp(S_PORT)


async def table_size(d: Daemon) -> int:
    from p4splice.controller import dataplane as dp

    return len(await d.session.read_all(dp.flows_read(with_counters=False)))


# --- teardown ------------------------------------------------------------------------------------------

def test_teardown_after_fin_fin_ack_leaves_no_entries(lab: Lab) -> None:
    async def main() -> None:
        async with proxied(lab) as (d, proxy):
            i = await spliced(lab, d, proxy, 41000)
            assert await table_size(d) == 4  # two direct entries, two drops for P's sockets
            await fin_both_ways(lab, 41000, i)
            await flow_out(d, 41000, what="flow removed after the linger")
            assert await table_size(d) == 0 and not d.orch.entries and not d.orch.l2
    run(main())


def test_rst_of_a_proxied_flow_removes_it(lab: Lab) -> None:
    async def main() -> None:
        async with proxied(lab) as (d, proxy):
            i = await established(lab, d, 41001)
            # RST on both legs: C resets toward P, P resets toward S.
            lab.send(C_PORT, from_c(41001, "R", (i.c + 1) & U32))
            await lab.recv_tcp(P_PORT)
            lab.send(P_PORT, p_as_c(41001, "R", i.p2 + 1))
            await lab.recv_tcp(S_PORT)
            await flow_out(d, 41001)
            assert await table_size(d) == 0
    run(main())


# --- proxy death -------------------------------------------------------------------------------------

def test_proxy_death_splices_quiescent_flows_and_resets_the_others(lab: Lab) -> None:
    async def main() -> None:
        async with proxied(lab) as (d, proxy):
            i = await established(lab, d, 41010)  # quiescent
            await established(lab, d, 41011, i)  # bytes in the proxy
            quiet = [{"flow": wire_flow(41010), "a_c": 0, "b_s": 0, "a_s": 0, "b_c": 0}]
            proxy._stop_heartbeat()  # heartbeats by hand from here, then the proxy hangs
            await proxy.heartbeat(quiescent=quiet)
            await proxy.heartbeat(quiescent=quiet)  # the second report confirms
            await poll(lambda: state(d, 41010) is FlowState.SPLICED, timeout=3.0, what="quiescent flow spliced")
            await poll(lambda: state(d, 41011) is not FlowState.PROXIED, what="busy flow reset")
            await d.orch.drain()
            # The busy flow: RSTs toward both ends (C gets S's view of RCV.NXT: ISN_s + 1, and S C's).
            await lab.expect_tcp(C_PORT, lambda p: p[TCP].dport == 41011 and p[TCP].flags == "R"
                                 and p[TCP].seq == i.s + 1)
            await lab.expect_tcp(S_PORT, lambda p: p[TCP].sport == 41011 and p[TCP].flags == "R"
                                 and p[TCP].seq == (i.c + 1) & U32)
            lab.drain(C_PORT)
            lab.drain(S_PORT)
            # The quiescent flow now runs end to end.
            lab.send(C_PORT, from_c(41010, "PA", (i.c + 1) & U32, i.s + 1, payload=b"after"))
            got = await lab.expect_tcp(S_PORT, lambda p: p[TCP].sport == 41010)
            assert (got[TCP].seq, bytes(got[TCP].payload)) == ((i.c + 1) & U32, b"after")
            assert d.metrics.value("p4splice_splices_total", kind="fail_open") == 1
    run(main())


def test_quiescence_is_not_vouched_when_packets_crossed_since(lab: Lab) -> None:
    async def main() -> None:
        async with proxied(lab) as (d, proxy):
            i = await established(lab, d, 41012)
            quiet = [{"flow": wire_flow(41012), "a_c": 0, "b_s": 0, "a_s": 0, "b_c": 0}]
            await proxy.heartbeat(quiescent=quiet)
            await proxy.heartbeat(quiescent=quiet)
            # C sends bytes toward the proxy after its report: they may be buffered there now.
            lab.send(C_PORT, from_c(41012, "PA", (i.c + 1) & U32, i.s + 1, payload=b"in flight"))
            await lab.recv_tcp(P_PORT)
            await proxy.bye()
            assert state(d, 41012) is FlowState.RESETTING
    run(main())


# --- controller restart and take-over ---------------------------------------------------------------------

def test_controller_restart_keeps_spliced_flows_and_rebuilds_them(lab: Lab) -> None:
    async def main() -> None:
        async with proxied(lab) as (d, proxy):
            i = await spliced(lab, d, proxy, 41020, counts=(500, 520, 3000, 2990))
        # The controller is gone; the switch keeps the entries.
        c_seq = (i.c + 1 + 500) & U32
        lab.send(C_PORT, from_c(41020, "PA", c_seq, i.s + 1 + 2990, payload=b"while down"))
        got = await lab.recv_tcp(S_PORT)
        assert (got[TCP].seq, got[TCP].ack) == ((i.c + 1 + 520) & U32, i.s + 1 + 3000)
        async with running(lab) as d2:
            assert d2.restored == {"spliced": 1}
            fl = d2.orch.core.flows.get(flow_key(41020))
            assert fl is not None and fl.state is FlowState.SPLICED
            assert {p.seq_delta for p in fl.legs.values()} == {20, (-10) & U32}
            # ... and it is torn down properly later.
            await fin_both_ways(lab, 41020, i, c_off=500 + 10, s_off=2990)
            await flow_out(d2, 41020, what="restored flow removed")
            assert await table_size(d2) == 0
    run(main())


def test_restart_mid_handshake_removes_punts_and_resets_half_made_legs(lab: Lab) -> None:
    """The controller's own handshakes (punt entries; the switch's are test_orchestrator_switch_handshake's)."""
    async def main() -> None:
        async with proxied(lab, handshakes="controller") as (d, proxy):
            i = Isns()
            # Flow A: only C's SYN seen (punt entry). Flow B: leg 1 up, the proxy never opened leg 2.
            lab.send(C_PORT, from_c(41030, "S", 1, options=[("MSS", 1460)]))
            await lab.recv_tcp(S_PORT)
            lab.send(C_PORT, from_c(41031, "S", i.c, options=[("MSS", 1460)]))
            await lab.recv_tcp(S_PORT)
            lab.send(S_PORT, from_s(41031, "SA", i.s, (i.c + 1) & U32, options=[("MSS", 1400)]))
            await lab.recv_tcp(C_PORT)
            await lab.recv_tcp(P_PORT)
            lab.send(P_PORT, p_as_s(41031, "SA", i.p1, (i.c + 1) & U32, options=[("MSS", 1460)]))
            lab.send(C_PORT, from_c(41031, "A", (i.c + 1) & U32, i.s + 1))
            await lab.recv_tcp(S_PORT)
            await lab.recv_tcp(P_PORT)
            await poll(lambda: len([e for e in d.orch.entries.values() if e.kind == "translate"]) == 2)
            await d.orch.drain()
        lab.drain(C_PORT)
        lab.drain(S_PORT)
        async with running(lab) as d2:
            assert d2.restored == {"removed_handshake": 1, "reset_handshake": 1}
            await d2.orch.drain()
            # Best-effort RSTs toward both ends (the ISNs are not in the table: the probes that follow
            # make live ends answer with their exact numbers, which get exact RSTs).
            await lab.expect_tcp(C_PORT, lambda p: p[TCP].dport == 41031 and "R" in p[TCP].flags)
            await lab.expect_tcp(S_PORT, lambda p: p[TCP].sport == 41031 and "R" in p[TCP].flags)
            await poll(lambda: not d2.orch.core.flows._flows, what="reset linger over")
            await d2.orch.drain()
            assert await table_size(d2) == 0
    run(main())


def test_backup_controller_takes_over_when_the_primary_dies(lab: Lab) -> None:
    async def main() -> None:
        async with proxied(lab, election_id=20) as (d1, proxy):
            backup = lab.daemon(election_id=10, subdir="backup")
            starting = asyncio.create_task(backup.start())
            await poll(lambda: backup.session.is_connected, what="backup connected")
            assert not backup.session.is_primary and not starting.done()
            i = await spliced(lab, d1, proxy, 41040)
        await asyncio.wait_for(starting, 5)
        assert backup.session.is_primary and backup.restored == {"spliced": 1}
        await fin_both_ways(lab, 41040, i)
        await flow_out(backup, 41040, what="flow removed by the backup")
        assert await table_size(backup) == 0
        await backup.close()
    run(main())


def test_switch_restart_reinstalls_everything(lab: Lab) -> None:
    async def main() -> None:
        async with proxied(lab) as (d, proxy):
            i = await spliced(lab, d, proxy, 41050, counts=(500, 520, 3000, 2990))
            await lab.stop_switch()
            await poll(lambda: not d.session.is_connected, what="session lost")
            await lab.start_switch()  # same gRPC port, empty: no pipeline, no entries
            await poll(lambda: d.session.is_primary, timeout=5, what="session back")
            await poll(table_size_is(d, 4), timeout=5, what="entries re-installed")
            c_seq = (i.c + 1 + 500) & U32
            lab.send(C_PORT, from_c(41050, "PA", c_seq, i.s + 1 + 2990, payload=b"after restart"))
            got = await lab.recv_tcp(S_PORT)
            assert (got[TCP].seq, got[TCP].ack) == ((i.c + 1 + 520) & U32, i.s + 1 + 3000)
            # Services came back too: a new handshake is proxied.
            await handshake(lab, 41051, Isns())
            await poll(lambda: flow_key(41051) in d.orch.core.flows, what="new flow after the restart")
    run(main())


@pytest.mark.external_switch
def test_switch_crash_reinstalls_everything(lab: Lab) -> None:
    """The switch process SIGKILLed (no orderly end of the stream) and started again: the daemon
    reconnects, pushes the pipeline and puts the spliced flow's entries and its services back."""
    async def main() -> None:
        async with proxied(lab) as (d, proxy):
            i = await spliced(lab, d, proxy, 41052, counts=(500, 520, 3000, 2990))
            await asyncio.to_thread(lab.switch.kill)  # type: ignore[attr-defined]
            await poll(lambda: not d.session.is_connected, what="session lost")
            await lab.start_switch()
            await poll(lambda: d.session.is_primary, timeout=5, what="session back")
            await poll(table_size_is(d, 4), timeout=5, what="entries re-installed")
            c_seq = (i.c + 1 + 500) & U32
            lab.send(C_PORT, from_c(41052, "PA", c_seq, i.s + 1 + 2990, payload=b"after the crash"))
            got = await lab.expect_tcp(S_PORT, lambda p: p[TCP].sport == 41052)
            assert (got[TCP].seq, got[TCP].ack) == ((i.c + 1 + 520) & U32, i.s + 1 + 3000)
            await handshake(lab, 41053, Isns())
            await poll(lambda: flow_key(41053) in d.orch.core.flows, what="new flow after the crash")
    run(main())


def test_reads_and_writes_wait_for_the_push_to_a_restarted_switch(lab: Lab) -> None:
    """A switch started anew gets its pipeline while the session keeps reading and writing (an
    idle poll, flows set up or torn down, a test polling the table): those wait until the push
    has returned. BMv2 1.15.5 died (SIGSEGV) on a Read or Write that reached it while its first
    push was under way (docs/bmv2.md; almost every such Write did it)."""
    from p4splice.controller import dataplane as dp

    async def main() -> None:
        s = SwitchSession(lab.addr, lab.switch.device_id, election_id=10, backoff=FAST)
        await s.connect()
        try:
            await s.wait_primary(5)
            await s.set_pipeline(lab.switch.pipeline.p4info, lab.switch.pipeline.device_config)
            for _ in range(3):
                await lab.stop_switch()
                await poll(lambda: not s.is_connected, what="session lost")
                await lab.start_switch()
                await poll(lambda: s.is_primary, timeout=5, what="session back")
                await push_while_busy(lab, s)
                assert getattr(lab.switch, "died", lambda: None)() is None
                assert len(await s.read_all(dp.route_key(BUSY_ROUTE))) == 1
        finally:
            await s.close()
    run(main())


BUSY_ROUTE = "10.9.9.0/24"


async def push_while_busy(lab: Lab, s: SwitchSession) -> None:
    """Push the pipeline while two tasks read the flows table and insert a route, back to back,
    failing (no pipeline yet, the route there already) or not."""
    from p4splice.controller import dataplane as dp
    from p4splice.controller.p4rt import ClientError, Update, UpdateType

    entry = dp.route(BUSY_ROUTE, S_PORT, "02:00:00:00:00:fe", "02:00:00:00:00:01")
    done = asyncio.Event()
    sent = [0, 0]

    async def keep(i: int, op: Callable[[], Awaitable[object]]) -> None:
        while not done.is_set():
            sent[i] += 1
            with contextlib.suppress(ClientError):
                await op()

    ops = [asyncio.create_task(keep(0, lambda: s.read_all(dp.flows_read(with_counters=False)))),
           asyncio.create_task(keep(1, lambda: s.write([Update(UpdateType.INSERT, entry)])))]
    try:
        await poll(lambda: min(sent) >= 2, what="reads and writes going out")
        await s.set_pipeline(lab.switch.pipeline.p4info, lab.switch.pipeline.device_config)
    finally:
        done.set()
        await asyncio.gather(*ops)


def table_size_is(d: Daemon, n: int):  # noqa: ANN201
    async def check() -> bool:
        try:
            return await table_size(d) == n
        except Exception:
            return False
    return check


# --- SYN flood ---------------------------------------------------------------------------------------------

def test_syn_flood_is_bounded_and_a_real_handshake_completes(lab: Lab, caplog: pytest.LogCaptureFixture) -> None:
    """On the controller's own handshakes, whose SYNs all reach it. The flood's lines in the
    log are a few per kind, not one per SYN."""
    caplog.set_level(logging.INFO, logger="p4splice.controller")

    async def main() -> None:
        # overload_evictions 0: the bound is under test here, not the drain a flood also sets off
        async with proxied(lab, heartbeat_ms=5000, max_pending=40, handshakes="controller",
                           overload_evictions=0) as (d, proxy):
            rnd = random.Random(7)
            n = 400
            # All at once where the switch can take it; in bursts it can take elsewhere (BMv2 drops
            # beyond its 64-packet port queues, and a lost packet-in is not what this test is about).
            burst = lab.switch.max_burst or n
            for first in range(0, n, burst):
                for k in range(first, min(n, first + burst)):
                    lab.send(C_PORT, from_c(10000 + k, "S", rnd.getrandbits(32), options=[("MSS", 1460)]))
                sent = min(n, first + burst)
                await poll(lambda sent=sent: d.metrics.value("p4splice_packet_ins_total", reason="SYN") >= sent,
                           timeout=20, what="flood seen")
            await d.orch.drain()
            assert len(d.orch.core.handshakes) <= 40
            # two punt entries a pending handshake: C's SYN and S's SYN-ACK
            assert len(d.orch.entries) <= 80 and len(d.orch.l2) <= 40 and len(d.orch._timers) <= 40
            assert await table_size(d) <= 80
            lab.drain(S_PORT)
            await established(lab, d, 41060)
            assert state(d, 41060) is FlowState.PROXIED
            assert d.orch.core.handshakes.stats["evicted"] >= n - 40
        assert len(caplog.records) < 100  # 400 SYNs, 360 of them evicted
    run(main(), timeout=60)


def test_the_pending_bound_follows_the_flows_table(lab: Lab, caplog: pytest.LogCaptureFixture) -> None:
    """max_pending as configured (10,000 by default) cannot exceed what half the flows table
    holds at three entries a pending handshake: a flood of spoofed SYNs would fill the table real
    clients need first (4,096 entries: 682 pending). A smaller configured bound stays."""
    from p4splice.controller import dataplane as dp
    from p4splice.controller.orchestrator import ENTRIES_PER_PENDING

    async def main() -> None:
        async with running(lab) as d:
            size = d.session.index.table(dp.FLOWS).size
            assert d.orch.core.handshakes.config.max_pending == size // 2 // ENTRIES_PER_PENDING < 10_000
            # and a flood's refused writes are one error line per interval, not one each
            with caplog.at_level("ERROR", logger="p4splice.controller.orchestrator"):
                for k in range(500):
                    d.orch._write_refused(f"RESOURCE_EXHAUSTED {k}")
            lines = [r.getMessage() for r in caplog.records if "write refused" in r.getMessage()]
            assert lines == ["write refused: RESOURCE_EXHAUSTED 0"]
        async with running(lab, max_pending=40) as d:
            assert d.orch.core.handshakes.config.max_pending == 40
    run(main())


# --- admin ---------------------------------------------------------------------------------------------

def wire_flow_obj(sport: int):  # noqa: ANN201
    from p4splice.controller.proxyapi.protocol import Flow

    return Flow.from_json(wire_flow(sport))


def test_admin_splice_waits_for_the_proxys_report(lab: Lab) -> None:
    async def main() -> None:
        async with proxied(lab) as (d, proxy):
            await established(lab, d, 41070)
            flow = "10.0.1.1:41070-10.0.2.1:80"
            asking = asyncio.create_task(admin_request(d.config.admin_socket, "splice", flow=flow, wait=3))
            await poll(lambda: state(d, 41070) is FlowState.HOLDING, what="holding")
            await proxy.splice(wire_flow(41070), 0, 0, 0, 0)
            result = await asyncio.wait_for(asking, 5)
            assert result["state"] == "spliced"
            # The proxy was told (event splice_requested) ...
            event = await asyncio.wait_for(anext(proxy.events()), 2)
            assert event.name == "splice_requested" and event.flow == wire_flow_obj(41070)
            # ... and splicectl splice goes the same way.
            from p4splice.controller import cli

            await established(lab, d, 41071)
            asking = asyncio.create_task(asyncio.to_thread(
                cli.main, ["splice", "10.0.1.1:41071-10.0.2.1:80", "--admin-socket", d.config.admin_socket, "--json"]))
            await poll(lambda: state(d, 41071) is FlowState.HOLDING, what="holding")
            await proxy.splice(wire_flow(41071), 5, 5, 7, 7)
            assert await asyncio.wait_for(asking, 5) == 0
            status = await admin_request(d.config.admin_socket, "status")
            assert status["flows"]["spliced"] == 2 and status["proxies"][0]["port"] == P_PORT
            from p4splice.controller.proxyapi.protocol import ApiError

            with pytest.raises(ApiError) as e:
                await admin_request(d.config.admin_socket, "splice", flow="10.0.1.1:1-10.0.2.1:80", wait=1)
            assert e.value.code == "not_found"
    run(main())
