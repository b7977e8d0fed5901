"""Helpers of the end-to-end tests (no tests here): running a scenario with a deadline, polling,
and the integrity verdict of one connection."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from p4splice.lab.topology import Lab
from p4splice.lab.traffic import ClientResult, ServerRecord, TrafficServer, expected_download_sha

from tests.asyncsupport import poll_until, run_bounded

T = TypeVar("T")


# What the suite measured, for the summary table it ends with (conftest.pytest_terminal_summary):
# (test, figure, value), in the order taken.
FIGURES: list[tuple[str, str, str]] = []


def figure(test: str, name: str, value: object) -> None:
    """Record one figure of ``test`` for the suite's closing summary."""
    FIGURES.append((test, name, f"{value:,.1f}" if isinstance(value, float) else str(value)))


def rate_mbit(result: ClientResult) -> float:
    """The connection's payload rate, both directions together, in Mbit/s."""
    seconds = max(result.finished - result.started, 1e-6)
    return (result.sent + result.received) * 8 / seconds / 1e6


def run(coro: Coroutine[Any, Any, T], timeout: float = 120.0) -> T:
    """One test coroutine on a fresh loop, with a hard deadline so that a hang fails."""
    return run_bounded(coro, timeout)


async def poll(check: Callable[[], Any], timeout: float = 10.0, what: str = "condition",
               interval: float = 0.02) -> Any:
    """Until ``check()`` (plain or async) is truthy; fails after ``timeout`` seconds."""
    return await poll_until(check, timeout, what, interval)


async def server_side(server: TrafficServer, result: ClientResult, timeout: float = 30.0) -> ServerRecord:
    """The server's record of the client's connection, once the server is done with it."""
    rec = await poll(lambda: server.record(result), timeout, f"the server to see {result.local}")
    await asyncio.wait_for(rec.done.wait(), timeout)
    return rec


def assert_exact(result: ClientResult, rec: ServerRecord) -> None:
    """Byte-exact both ways: what the client sent is what the server got, and back."""
    assert not result.error, f"{result.local}: {result.error} (server: {rec.error or 'ok'})"
    assert not rec.error, f"{result.local}: server: {rec.error}"
    assert (rec.received, result.sent) == (result.upload, result.upload)
    assert rec.received_sha == result.sent_sha, f"{result.local}: upload corrupted"
    assert (result.received, rec.sent) == (result.download, result.download)
    assert result.received_sha == rec.sent_sha == expected_download_sha(result), f"{result.local}: download corrupted"


def never_corrupt(result: ClientResult) -> str:
    """For connections that may fail (the proxy died under them): "ok" when byte-exact, "failed"
    when the client saw an error; anything that ended cleanly with wrong bytes is an assertion."""
    if result.error:
        return "failed"
    assert result.received == result.download, f"{result.local}: clean end after {result.received} bytes"
    assert result.received_sha == expected_download_sha(result), f"{result.local}: download corrupted"
    return "ok"


# The proxy logs "spliced" once the controller's reply is in: a short transfer can end (and the test
# look) before that line is read. How long to wait for a proxy's verdict that is not there yet.
VERDICT_WAIT = 1.0


def flow_of(result: ClientResult) -> str:
    """The proxy's name of ``result``'s connection (its log records' ``flow``)."""
    return f"{result.local[0]}:{result.local[1]}->{result.server[0]}:{result.server[1]}"


def _verdict(lab: Lab, result: ClientResult, kept_too: bool) -> tuple[str, dict[str, Any]] | None:
    flow = flow_of(result)
    kept = None
    for ev in lab.events():
        if ev.event == "spliced" and ev.record.get("flow") == flow:
            return "spliced", ev.record  # also after an earlier attempt that stayed in the path
        message = ev.record.get("message", "")
        # Kept: refused or failed ("staying in the path"), the drain timed out ("giving the
        # splice up": the proxy logs that one alone), or the connection ended while it drained
        # ("nothing left to splice").
        if (kept_too and kept is None and message.startswith(f"{flow}: ")
                and any(m in message for m in ("staying in the path", "giving the splice up",
                                                "nothing left to splice"))):
            kept = "kept", ev.record
    return kept


def _await_verdict(lab: Lab, result: ClientResult, kept_too: bool,
                   wait: float) -> tuple[str, dict[str, Any]] | None:
    deadline = time.monotonic() + wait
    while (verdict := _verdict(lab, result, kept_too)) is None and time.monotonic() < deadline:
        time.sleep(0.01)  # polling the proxy's log (a thread of the lab reads it) with a deadline
    return verdict


def spliced(lab: Lab, result: ClientResult, wait: float = VERDICT_WAIT) -> dict[str, Any] | None:
    """The proxy's ``spliced`` log record of this connection, if it spliced it (waiting up to
    ``wait`` s for the record to be read)."""
    verdict = _await_verdict(lab, result, False, wait)
    return verdict[1] if verdict is not None else None


def splice_outcome(lab: Lab, result: ClientResult, wait: float = VERDICT_WAIT) -> str | None:
    """"spliced"; "kept" when the proxy asked but stayed in the path (the connection ended while it
    drained, say: a safe outcome); None when the proxy never asked."""
    verdict = _await_verdict(lab, result, True, wait)
    return verdict[0] if verdict is not None else None


async def no_entries_left(lab: Lab, timeout: float = 20.0) -> None:
    """Every connection closed: the switch's flows table empties (linger, then removal)."""
    left: list[str] = []

    async def empty() -> bool:
        flows = await asyncio.to_thread(lab.flows)
        left[:] = [f"{c['connection']} {c['state']}" for c in flows["connections"]]
        return flows["entries"] == 0
    try:
        await poll(empty, timeout, "the switch's flows table to empty", interval=0.3)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; left: {left}") from None
