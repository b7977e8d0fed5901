"""WriteCoalescer: concurrent writers share RPCs and each sees exactly its own result."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest
from google.rpc import code_pb2
from p4splice.controller.p4rt.coalesce import WriteCoalescer
from p4splice.controller.p4rt.errors import P4RuntimeRpcError, UpdateError, WriteError


class FakeSwitch:
    """Records each RPC's updates; an RPC stays open until released; "bad-*" updates fail."""

    def __init__(self) -> None:
        self.rpcs: list[list[Any]] = []
        self.gate: asyncio.Event | None = None
        self.fail_all: Exception | None = None

    async def write(self, updates: list[Any]) -> None:
        self.rpcs.append(list(updates))
        if self.gate is not None:
            await self.gate.wait()
        if self.fail_all is not None:
            raise self.fail_all
        details = [UpdateError(i, code_pb2.ALREADY_EXISTS if str(u).startswith("bad") else code_pb2.OK,
                               "exists" if str(u).startswith("bad") else "", u)
                   for i, u in enumerate(updates)]
        if any(not d.ok for d in details):
            raise WriteError("Write", grpc.StatusCode.UNKNOWN, "batch", details)


async def behind_an_open_rpc(first: str = "x", **limits: int) -> tuple[FakeSwitch, WriteCoalescer, asyncio.Task[None]]:
    """A gated switch, one RPC in flight (max_in_flight=1, ``limits`` besides): writes made now
    queue behind it until ``sw.gate`` is set."""
    sw = FakeSwitch()
    sw.gate = asyncio.Event()
    co = WriteCoalescer(sw.write, max_in_flight=1, **limits)
    blocker = asyncio.create_task(co.write([first]))
    await asyncio.sleep(0)  # let the first RPC start (a scheduling step, not a wait for time)
    return sw, co, blocker


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_a_lone_write_goes_out_at_once_and_alone() -> None:
    async def main() -> None:
        sw = FakeSwitch()
        co = WriteCoalescer(sw.write)
        await co.write(["a1", "a2"])
        await co.write(["b1"])
        assert sw.rpcs == [["a1", "a2"], ["b1"]]
        await co.write([])
        assert co.rpcs == 2 and co.updates == 3
    run(main())


def test_writes_queued_behind_an_rpc_share_the_next_one() -> None:
    async def main() -> None:
        sw, co, first = await behind_an_open_rpc("a")
        rest = [asyncio.create_task(co.write([f"b{i}", f"c{i}"])) for i in range(3)]
        await asyncio.sleep(0)
        assert sw.rpcs == [["a"]] and not first.done()
        sw.gate.set()
        await asyncio.gather(first, *rest)
        assert sw.rpcs == [["a"], ["b0", "c0", "b1", "c1", "b2", "c2"]]
    run(main())


def test_each_caller_gets_only_its_own_failures_renumbered() -> None:
    async def main() -> None:
        sw, co, blocker = await behind_an_open_rpc()
        ok = asyncio.create_task(co.write(["a1", "a2"]))
        bad = asyncio.create_task(co.write(["b1", "bad-b2"]))
        await asyncio.sleep(0)
        sw.gate.set()
        await blocker
        await ok  # its updates were applied: no error, though the shared RPC failed
        with pytest.raises(WriteError) as err:
            await bad
        assert [(d.position, d.update, d.ok) for d in err.value.details] == [(0, "b1", True), (1, "bad-b2", False)]
        assert [f.update for f in err.value.failures] == ["bad-b2"]
        assert sw.rpcs[1] == ["a1", "a2", "b1", "bad-b2"]
    run(main())


def test_a_failed_rpc_fails_every_caller_in_it() -> None:
    async def main() -> None:
        sw, co, blocker = await behind_an_open_rpc()
        tasks = [asyncio.create_task(co.write([n])) for n in ("a", "b")]
        await asyncio.sleep(0)
        sw.fail_all = P4RuntimeRpcError("Write", grpc.StatusCode.UNAVAILABLE, "gone")
        sw.gate.set()
        results = await asyncio.gather(blocker, *tasks, return_exceptions=True)
        assert all(isinstance(r, P4RuntimeRpcError) and r.code is grpc.StatusCode.UNAVAILABLE for r in results)
        sw.fail_all = WriteError("Write", grpc.StatusCode.PERMISSION_DENIED, "not primary", [])
        with pytest.raises(WriteError, match="PERMISSION_DENIED"):
            await co.write(["c"])
    run(main())


def test_batches_respect_max_batch_without_splitting_a_caller() -> None:
    async def main() -> None:
        sw, co, blocker = await behind_an_open_rpc(max_batch=4)
        tasks = [asyncio.create_task(co.write([f"{n}{i}" for i in range(3)])) for n in "abc"]
        big = asyncio.create_task(co.write([f"d{i}" for i in range(6)]))  # larger than max_batch: alone
        await asyncio.sleep(0)
        sw.gate.set()
        await asyncio.gather(blocker, *tasks, big)
        assert [len(r) for r in sw.rpcs] == [1, 3, 3, 3, 6]
    run(main())


def test_a_cancelled_caller_is_dropped_before_sending() -> None:
    async def main() -> None:
        sw, co, blocker = await behind_an_open_rpc()
        gone = asyncio.create_task(co.write(["cancelled"]))
        kept = asyncio.create_task(co.write(["kept"]))
        await asyncio.sleep(0)
        gone.cancel()
        sw.gate.set()
        await asyncio.gather(blocker, kept)
        assert sw.rpcs == [["x"], ["kept"]]
    run(main())


def test_limits_are_checked() -> None:
    with pytest.raises(ValueError):
        WriteCoalescer(FakeSwitch().write, max_in_flight=0)
