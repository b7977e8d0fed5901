"""What the asyncio test modules share: one scenario on a fresh loop with a hard deadline (a hang
fails instead of blocking the suite), and polling for a condition with a deadline (never a bare
sleep as a readiness check). Each suite's support module wraps these with its own defaults."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import signal
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

# After the deadline, what is cancelled gets this long to unwind before the loop is abandoned.
UNWIND_GRACE = 10.0


class ScenarioBlocked(AssertionError):
    """The scenario's deadline passed while the event loop itself was blocked (synchronous code in
    a coroutine, or a task that would not unwind): raised from a timer signal, wherever the main
    thread was."""


def run_bounded(coro: Coroutine[Any, Any, T], timeout: float, grace: float = UNWIND_GRACE) -> T:
    """Run ``coro`` on a loop of its own and return its result; fail after ``timeout`` seconds
    whatever blocks.

    ``asyncio.run`` cannot promise that: after a timeout it waits without end for every cancelled
    task to finish (a socket that never drains) and for every thread of its executor (a blocking
    call in ``to_thread``). Here, the scenario is cancelled at ``timeout``; the tasks left get
    ``grace`` seconds to finish, the executor's threads are not waited for, and, in the main
    thread, a timer signal at ``timeout + 2 * grace`` interrupts even a loop blocked in
    synchronous code.
    """
    loop = asyncio.new_event_loop()
    executor = concurrent.futures.ThreadPoolExecutor(thread_name_prefix="scenario")
    loop.set_default_executor(executor)
    alarm = threading.current_thread() is threading.main_thread()
    if alarm:
        def blocked(signum: int, frame: Any) -> None:
            raise ScenarioBlocked(f"the scenario blocked its event loop past its {timeout}s deadline")
        previous = signal.signal(signal.SIGALRM, blocked)
        signal.setitimer(signal.ITIMER_REAL, timeout + 2 * grace)
    try:
        asyncio.set_event_loop(loop)
        try:
            return loop.run_until_complete(_bounded(coro, timeout))
        finally:
            _unwind(loop, grace)
    finally:
        if alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
        asyncio.set_event_loop(None)
        executor.shutdown(wait=False, cancel_futures=True)
        loop.close()


async def _bounded(coro: Coroutine[Any, Any, T], timeout: float) -> T:
    task = asyncio.get_running_loop().create_task(coro)
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if task in done:
        return task.result()
    # Where it waited, before cancelling unwinds it: the await that never returned.
    where = _awaiting(task.get_coro())
    task.cancel()
    raise AssertionError(f"the scenario did not finish within its {timeout}s deadline; it was waiting at:\n{where}")


def _awaiting(coro: Any) -> str:
    """The chain of awaits a suspended coroutine is in, outermost first, one line each."""
    lines = []
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is not None:
            lines.append(f"  {frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}")
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return "\n".join(lines)


def _unwind(loop: asyncio.AbstractEventLoop, grace: float) -> None:
    """Cancel the tasks the scenario left and give them ``grace`` seconds to finish."""
    pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.wait(pending, timeout=grace))
    with contextlib.suppress(Exception):
        loop.run_until_complete(asyncio.wait_for(loop.shutdown_asyncgens(), grace))


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
