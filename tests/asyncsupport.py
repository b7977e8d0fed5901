"""What the asyncio test modules share: one scenario on a fresh loop with a hard deadline (a hang
fails instead of blocking the suite), and polling for a condition with a deadline (never a bare
sleep as a readiness check). Each suite's support module wraps these with its own defaults."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run_bounded(coro: Coroutine[Any, Any, T], timeout: float) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout)
    return asyncio.run(bounded())


async def poll_until(check: Callable[[], Any], timeout: float, what: str = "condition",
                     interval: float = 0.005) -> Any:
    """Call ``check`` (plain or async) until its result is truthy and return that; fail with an
    AssertionError naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if isinstance(result, Awaitable):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)
