"""Helpers for the proxy API tests: an in-memory SpliceService, a raw JSON-lines peer, a
bounded test runner and a polling wait. No tests here."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from p4splice.controller.proxyapi import ApiError, Deltas, Flow, FlowInfo, ProxyApiServer

from tests.asyncsupport import poll_until, run_bounded

T = TypeVar("T")

FLOW = Flow("10.0.1.1", 40000, "10.0.2.1", 80)
FLOW_JSON = {"client": "10.0.1.1:40000", "server": "10.0.2.1:80"}
MAC = "02:00:00:00:00:0a"


def run(coro: Coroutine[Any, Any, T], timeout: float = 8.0) -> T:
    """One test coroutine on a fresh loop, with a hard deadline so that a hang fails."""
    return run_bounded(coro, timeout)


async def poll(check: Callable[[], Any], timeout: float = 3.0, what: str = "condition",
               interval: float = 0.005) -> Any:
    """Until ``check()`` (plain or async) is truthy; fails after ``timeout`` seconds."""
    return await poll_until(check, timeout, what, interval)


class FakeService:
    """A SpliceService in memory: flows per proxy with a state; records every call.

    ``table[proxy][flow]`` is a state string ("established", "holding", "spliced"). Set
    ``unavailable`` to refuse everything as an unreachable switch would, ``grant`` to impose a
    heartbeat interval, ``crash`` to make the next call fail with a plain exception, ``gate`` to
    hold splices until it is set.
    """

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.table: dict[str, dict[Flow, str]] = {}
        self.dead: list[str] = []
        self.unavailable = False
        self.grant: int | None = None
        self.crash = False
        self.gate: asyncio.Event | None = None

    def add_flow(self, proxy: str, flow: Flow = FLOW, state: str = "established") -> None:
        self.table.setdefault(proxy, {})[flow] = state

    def called(self, method: str) -> list[tuple[Any, ...]]:
        return [args for name, args in self.calls if name == method]

    def _enter(self, method: str, *args: Any) -> None:
        self.calls.append((method, args))
        if self.crash:
            self.crash = False
            raise RuntimeError("the fake service crashed")
        if self.unavailable:
            raise ApiError("unavailable", "switch unreachable; retry later")

    def _state(self, proxy: str, flow: Flow) -> str:
        try:
            return self.table[proxy][flow]
        except KeyError:
            raise ApiError("not_found", f"no flow {flow}") from None

    def _info(self, flow: Flow, state: str) -> FlowInfo:
        return {"flow": flow.to_json(), "state": state, "legs": [], "deltas": None, "counters": {"packets": 0}}

    async def register(self, proxy: str, port: int, mac: str, heartbeat_ms: int, ip: str | None = None) -> int:
        self._enter("register", proxy, port, mac, heartbeat_ms)
        if port == 255:
            raise ApiError("bad_request", "argument 'port': 255 is the switch's CPU port")
        return self.grant if self.grant is not None else heartbeat_ms

    async def heartbeat(self, proxy: str, quiescent: Sequence[Mapping[str, Any]] | None = None) -> None:
        # recorded as (proxy,) when the proxy sent no quiescent list, as the real server calls it
        self._enter("heartbeat", proxy, *([] if quiescent is None else [list(quiescent)]))

    async def splice_prepare(self, proxy: str, flow: Flow) -> None:
        self._enter("splice_prepare", proxy, flow)
        if self._state(proxy, flow) != "established":
            raise ApiError("conflict", f"flow {flow} is {self.table[proxy][flow]}")
        self.table[proxy][flow] = "holding"

    async def splice(self, proxy: str, flow: Flow, a_c: int, b_s: int, a_s: int, b_c: int) -> Deltas:
        self._enter("splice", proxy, flow, a_c, b_s, a_s, b_c)
        if self.gate is not None:
            await self.gate.wait()
        if self._state(proxy, flow) != "holding":
            raise ApiError("conflict", f"flow {flow} is not holding")
        self.table[proxy][flow] = "spliced"
        return Deltas.from_counts(a_c, b_s, a_s, b_c)

    async def splice_cancel(self, proxy: str, flow: Flow) -> None:
        self._enter("splice_cancel", proxy, flow)
        if self._state(proxy, flow) != "holding":
            raise ApiError("conflict", f"flow {flow} is not holding")
        self.table[proxy][flow] = "established"

    async def flow(self, proxy: str, flow: Flow) -> FlowInfo:
        self._enter("flow", proxy, flow)
        return self._info(flow, self._state(proxy, flow))

    async def flows(self, proxy: str) -> list[FlowInfo]:
        self._enter("flows", proxy)
        return [self._info(f, s) for f, s in sorted(self.table.get(proxy, {}).items())]

    async def bye(self, proxy: str) -> None:
        self._enter("bye", proxy)

    async def proxy_dead(self, proxy: str) -> None:
        self.calls.append(("proxy_dead", (proxy,)))
        self.dead.append(proxy)


class Raw:
    """A bare JSON-lines peer, for what the client would never send."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, path: Path) -> Raw:
        reader, writer = await asyncio.open_unix_connection(os.fspath(path), limit=1 << 20)
        return cls(reader, writer)

    async def send(self, message: dict[str, Any] | bytes) -> None:
        data = message if isinstance(message, bytes) else json.dumps(message).encode() + b"\n"
        self.writer.write(data)
        await self.writer.drain()

    async def recv(self, timeout: float = 3.0) -> dict[str, Any]:
        line = await asyncio.wait_for(self.reader.readline(), timeout)
        assert line.endswith(b"\n"), f"connection closed (got {line!r})"
        return json.loads(line)

    async def call(self, message: dict[str, Any]) -> dict[str, Any]:
        await self.send(message)
        return await self.recv()

    async def hello(self, proxy: str = "p1") -> dict[str, Any]:
        return await self.call({"id": 0, "op": "hello", "version": 1, "proxy": proxy})

    async def register(self, heartbeat_ms: int = 1000, port: int = 3) -> dict[str, Any]:
        return await self.call({"id": 0, "op": "register", "port": port, "mac": MAC, "heartbeat_ms": heartbeat_ms})

    async def closed(self, timeout: float = 3.0) -> bool:
        """True when the peer closed the connection within ``timeout``. A close with our bytes
        still unread in its socket reaches us as ECONNRESET (Linux AF_UNIX), else as EOF."""
        try:
            return await asyncio.wait_for(self.reader.read(), timeout) == b""
        except ConnectionResetError:
            return True
        finally:
            self.writer.close()

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except ConnectionError:
            pass


@asynccontextmanager
async def serving(path: Path, service: FakeService | None = None, **kw: Any):  # type: ignore[no-untyped-def]
    """A started server on ``path``; closed on exit."""
    server = ProxyApiServer(path, service if service is not None else FakeService(), **kw)
    await server.start()
    try:
        yield server
    finally:
        await server.close()


def error_of(reply: dict[str, Any]) -> str:
    assert reply["ok"] is False, reply
    return reply["error"]["code"]


def result_of(reply: dict[str, Any]) -> dict[str, Any]:
    assert reply["ok"] is True, reply
    return reply["result"]


async def wait_for(awaitable: Awaitable[T], timeout: float = 3.0) -> T:
    return await asyncio.wait_for(awaitable, timeout)
