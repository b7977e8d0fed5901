"""The suites' bounded runner: a scenario past its deadline fails, whatever it blocks on."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from tests.asyncsupport import ScenarioBlocked, run_bounded


def test_result_comes_back() -> None:
    async def answer() -> int:
        await asyncio.sleep(0)
        return 42
    assert run_bounded(answer(), 5.0, grace=0.1) == 42


def test_a_slow_scenario_fails_at_its_deadline() -> None:
    start = time.monotonic()
    with pytest.raises(AssertionError, match=r"within its 0.2s deadline; it was waiting at:\n.*in sleep"):
        run_bounded(asyncio.sleep(30), 0.2, grace=0.1)
    assert time.monotonic() - start < 5


def test_a_task_that_will_not_unwind_is_abandoned() -> None:
    """A cancelled task whose cleanup never ends (a socket that never drains) would keep
    asyncio.run's shutdown waiting for good."""
    async def stubborn() -> None:
        try:
            await asyncio.sleep(30)
        finally:
            await asyncio.shield(asyncio.sleep(30))  # the cleanup ignores further cancellation

    async def scenario() -> None:
        asyncio.get_running_loop().create_task(stubborn())
        await asyncio.sleep(30)

    start = time.monotonic()
    with pytest.raises(AssertionError, match="deadline"):
        run_bounded(scenario(), 0.2, grace=0.3)
    assert time.monotonic() - start < 5


def test_a_blocked_thread_is_not_waited_for() -> None:
    release = threading.Event()

    async def scenario() -> None:
        await asyncio.to_thread(release.wait, 30)

    start = time.monotonic()
    try:
        with pytest.raises(AssertionError, match="deadline"):
            run_bounded(scenario(), 0.2, grace=0.1)
        assert time.monotonic() - start < 5
    finally:
        release.set()


def test_a_loop_blocked_in_synchronous_code_is_interrupted() -> None:
    async def scenario() -> None:
        time.sleep(30)  # no await: wait_for cannot fire; only the timer signal can

    start = time.monotonic()
    with pytest.raises(ScenarioBlocked):
        run_bounded(scenario(), 0.2, grace=0.1)
    assert time.monotonic() - start < 5
