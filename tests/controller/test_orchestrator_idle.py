"""Idle flows against p4sim: the switch reports each entry once per idle period, so a report can be
outdated by the time the flow's last entry goes idle; the daemon asks the switch before ending a
flow (a transfer that paused and resumed must not be reset), and still ends one truly idle."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from p4splice.controller import orchestrator
from p4splice.controller.daemon import Daemon
from p4splice.controller.splice.model import EntryMatch
from p4splice.controller.splice.splice import FlowState

from tests.controller.orchestrator_fixtures import U32, established, proxied, state
from tests.controller.switches import build_pipeline
from tests.controller.test_orchestrator_support import (
    C_PORT,
    P_PORT,
    Isns,
    Lab,
    flow_key,
    from_c,
    p_as_s,
    poll,
    run,
)

pytestmark = pytest.mark.integration

PACE = 0.2  # seconds between the frames that keep one entry hit (a fifth of the idle timeout)


async def keep_hitting(lab: Lab, port: int, frame: object, until: Callable[[], bool], what: str,
                       timeout: float = 8.0) -> None:
    """Send ``frame`` into ``port`` every PACE seconds until ``until()`` holds (or fail)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not until():
        assert loop.time() < deadline, f"no {what} within {timeout} s"
        lab.send(port, frame)
        await asyncio.sleep(PACE)  # the traffic's pace, not a readiness check


def reported_idle(d: Daemon, flow: object) -> set[EntryMatch]:
    return d.orch._idle_seen.get(flow, set())  # type: ignore[arg-type]


def test_an_idle_report_outdated_by_later_traffic_does_not_end_the_flow(lab: Lab) -> None:
    async def main() -> None:
        async with proxied(lab, idle_timeout=1.0) as (d, _):
            sport = 41300
            i: Isns = await established(lab, d, sport)
            flow = flow_key(sport)
            c2p = EntryMatch.c2s(flow, C_PORT)
            forwarding = set(d.orch.flow_entries[flow])
            # C keeps acknowledging (its C->P entry is hit) while the other three go idle.
            c_ack = from_c(sport, "A", (i.c + 1) & U32, i.s + 1)
            await keep_hitting(lab, C_PORT, c_ack, lambda: forwarding - {c2p} <= reported_idle(d, flow),
                               "idle reports of the other three entries")
            # Then the transfer turns around: P's data toward C (P->C hit), C silent until its
            # entry's report completes the set. The earlier reports are outdated by now.
            p_data = p_as_s(sport, "PA", i.p1 + 1, (i.c + 1) & U32, payload=b"more")
            await keep_hitting(lab, P_PORT, p_data, lambda: c2p in reported_idle(d, flow), "C->P's idle report")
            await d.orch.drain()
            assert state(d, sport) is FlowState.PROXIED
            assert d.orch.stats["idle_reports_outdated"] >= 1
            assert d.orch.core.flows.stats["reset"] == 0
            # Silent from now on, the flow is idle for real: reset (its entries translate).
            await poll(lambda: state(d, sport) is not FlowState.PROXIED, timeout=10, what="the idle flow reset")
            assert d.orch.core.flows.stats["reset"] == 1
    run(main(), timeout=60)


@pytest.mark.parametrize("batch", [1000, 3])
def test_a_flows_table_that_does_not_age_is_polled_for_idle_flows(lab: Lab, tmp_path: Path, batch: int,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """splice.p4 built with FLOWS_IDLE_TIMEOUT=0 (for BMv2, whose ageing sweep can abort under
    load): the entries carry no idle timeout and the switch sends no notifications; the daemon
    reads the entries' counters and ends the flow whose counters stopped, not the one still
    carrying traffic -- until that one stops too. With a poll that reads 3 of the 8 entries a
    round, the rounds take turns and get there too."""
    monkeypatch.setattr(orchestrator, "IDLE_POLL_BATCH", batch)
    program = build_pipeline(lab.switch.pipeline.kind, tmp_path / "no-ageing", defines=["FLOWS_IDLE_TIMEOUT=0"])
    assert not any(t.idle_timeout_behavior for t in program.p4info.tables)

    async def main() -> None:
        try:
            async with proxied(lab, idle_timeout=1.0, pipeline="push", program=program) as (d, _):
                assert d.orch.entries_age is False and d.orch.idle_poll_interval == 0.25
                busy, quiet = 41310, 41311
                i: Isns = await established(lab, d, busy)
                await established(lab, d, quiet, i)
                assert all(inst.entry.idle_timeout_ns == 0 for inst in d.orch.entries.values())
                # C keeps acknowledging on the busy flow (its C->P entry's counter moves); the
                # quiet one carries nothing and is ended after a second or so.
                c_ack = from_c(busy, "A", (i.c + 1) & U32, i.s + 1)
                await keep_hitting(lab, C_PORT, c_ack, lambda: state(d, quiet) is None, "the quiet flow ended")
                assert state(d, busy) is FlowState.PROXIED
                await poll(lambda: state(d, busy) is None, timeout=5.0, what="the busy flow ended once silent")
                assert d.orch.stats["idle_reports_outdated"] == 0  # no notifications were involved
        finally:
            await lab.stop_switch()  # the next test's daemon must not adopt this build
            await lab.start_switch()
    run(main())
