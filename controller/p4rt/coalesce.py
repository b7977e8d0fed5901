"""Write coalescing: updates from concurrent callers share Write RPCs, each caller sees its own result.

Every Write RPC has a fixed cost on both ends (a gRPC call in Python is a few hundred µs of CPU on
each side), and under load the controller issues many small writes for unrelated flows at once.
:class:`WriteCoalescer` sends a caller's updates at once when fewer than ``max_in_flight`` RPCs
are outstanding -- so a lone write pays no extra latency -- and otherwise queues them; when an
RPC completes, everything queued goes out as one batch (up to ``max_batch`` updates per RPC).

Only CONTINUE_ON_ERROR semantics are safe to merge: the switch applies each update on its own, so
a batch of A's and B's updates has the same effect as A's batch and B's batch. Each caller gets
back exactly what a Write of its own updates would have raised: a :class:`WriteError` whose
details are its own updates' (positions renumbered from 0), or the RPC's error when the whole call
failed. Callers that must see their writes applied before acting (a packet-out after its entry)
still do: ``write`` returns only after the RPC carrying its updates has completed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from .errors import WriteError

__all__ = ["WriteCoalescer"]

log = logging.getLogger("p4splice.p4rt.coalesce")

Writer = Callable[[list[Any]], Awaitable[None]]


class WriteCoalescer:
    """``await coalescer.write(updates)`` -- as ``session.write(updates)``, sharing RPCs under load."""

    def __init__(self, write: Writer, *, max_in_flight: int = 1, max_batch: int = 1000) -> None:
        if max_in_flight < 1 or max_batch < 1:
            raise ValueError("max_in_flight and max_batch must be at least 1")
        self._write = write
        self.max_in_flight = max_in_flight
        self.max_batch = max_batch
        self._queue: deque[tuple[list[Any], asyncio.Future[None]]] = deque()
        self._in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self.rpcs = 0  # Write RPCs sent
        self.updates = 0  # updates sent in them

    async def write(self, updates: Sequence[Any]) -> None:
        items = list(updates)
        if not items:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((items, fut))
        self._pump()
        await fut

    def _pump(self) -> None:
        while self._queue and self._in_flight < self.max_in_flight:
            batch: list[tuple[list[Any], asyncio.Future[None]]] = []
            size = 0
            # Whole callers only: a caller's updates never straddle two RPCs.
            while self._queue and (not batch or size + len(self._queue[0][0]) <= self.max_batch):
                items, fut = self._queue.popleft()
                if fut.cancelled():
                    continue
                batch.append((items, fut))
                size += len(items)
            if not batch:
                return
            self._in_flight += 1
            task = asyncio.get_running_loop().create_task(self._send(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _send(self, batch: list[tuple[list[Any], asyncio.Future[None]]]) -> None:
        merged = [u for items, _ in batch for u in items]
        self.rpcs += 1
        self.updates += len(merged)
        try:
            await self._write(merged)
        except WriteError as e:
            _split_error(e, batch)
        except BaseException as e:  # the RPC as a whole failed: every caller sees it
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(e)
            if not isinstance(e, Exception):
                raise
        else:
            for _, fut in batch:
                if not fut.done():
                    fut.set_result(None)
        finally:
            self._in_flight -= 1
            self._pump()


def _split_error(e: WriteError, batch: list[tuple[list[Any], asyncio.Future[None]]]) -> None:
    """Hand each caller the part of a batch's WriteError that is about its own updates."""
    if not e.details:
        # No per-update details (the whole RPC was refused): nobody's updates were applied.
        for _, fut in batch:
            if not fut.done():
                fut.set_exception(WriteError(e.rpc, e.code, e.message, []))
        return
    start = 0
    for items, fut in batch:
        mine = [dataclasses.replace(d, position=d.position - start) for d in e.details
                if start <= d.position < start + len(items)]
        start += len(items)
        if fut.done():
            continue
        if any(not d.ok for d in mine):
            fut.set_exception(WriteError(e.rpc, e.code, e.message, mine))
        else:
            fut.set_result(None)
