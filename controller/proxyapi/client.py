"""The proxy's side of the proxy API: an asyncio client for the controller's Unix socket.

One :class:`ProxyApiClient` is one connection. It says hello, registers, keeps the heartbeat
going at the interval the controller granted, and turns error replies into :class:`ApiError`.
When the controller goes away every pending and later call raises :class:`ConnectionLost`;
whether and when to reconnect is the caller's decision (docs/proxy-api.md shows a loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .protocol import API_VERSION, MAX_LINE, ApiError, Flow, decode_line, encode
from .service import Deltas

__all__ = ["ConnectionLost", "Event", "FlowLike", "ProxyApiClient"]

log = logging.getLogger(__name__)

# Replies can be longer than requests (``flows`` of a busy proxy): the 64 KiB limit is the
# controller's on what it reads.
REPLY_LIMIT = 64 * 1024 * 1024

# A flow as the caller may give it: a Flow, ("client ip:port", "server ip:port"), or the wire form.
FlowLike = Flow | Sequence[str] | Mapping[str, str]


class ConnectionLost(ConnectionError):
    """The connection to the controller is gone (it closed, died, or :meth:`close` was called)."""


@dataclass(frozen=True)
class Event:
    """An event pushed by the controller: ``name`` (splice_requested, flow_reset, flow_closed,
    heartbeat_missed) and its ``fields`` as received."""

    name: str
    fields: dict[str, Any]

    @property
    def flow(self) -> Flow | None:
        value = self.fields.get("flow")
        return Flow.from_json(value) if value is not None else None


def _flow_json(flow: FlowLike) -> dict[str, str]:
    if isinstance(flow, Flow):
        return flow.to_json()
    if isinstance(flow, Mapping):
        return Flow.from_json(flow).to_json()
    client, server = flow
    return Flow.parse(client, server).to_json()


_CLOSED = object()  # ends the event iterator


class ProxyApiClient:
    """A proxy's connection to the controller at ``path``, as ``proxy_name``.

    ``on_event``: called (and awaited when it returns an awaitable) with each :class:`Event`;
    without it, events queue for :meth:`events`. ``timeout``: seconds to wait for any reply
    (None waits for ever).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        proxy_name: str,
        *,
        on_event: Callable[[Event], Awaitable[None] | None] | None = None,
        timeout: float | None = 10.0,
        version: int = API_VERSION,
    ) -> None:
        self.path = os.fspath(path)
        self.proxy_name = proxy_name
        self.on_event = on_event
        self.timeout = timeout
        self.version = version
        self.controller: str | None = None  # from hello
        self.heartbeat_ms: int | None = None  # granted by register
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._write_lock = asyncio.Lock()
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._next_id = 1
        self._read_task: asyncio.Task[None] | None = None
        self._beat_task: asyncio.Task[None] | None = None
        self._events: asyncio.Queue[Any] = asyncio.Queue()
        self._lost: ConnectionError | ApiError | None = None
        self._unsolicited: ApiError | None = None
        # Called before each automatic heartbeat: the flows to report as quiescent (None: omit).
        self.quiescent: Callable[[], list[dict[str, Any]] | None] | None = None

    async def __aenter__(self) -> ProxyApiClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def connected(self) -> bool:
        return self._writer is not None and self._lost is None

    @property
    def registered(self) -> bool:
        """True while the heartbeat runs (from register to bye, or until the controller refused it)."""
        return self._beat_task is not None and not self._beat_task.done()

    # --- connection -------------------------------------------------------------------------------

    async def connect(self) -> dict[str, Any]:
        """Open the connection and say hello; returns hello's result. Raises OSError when nobody
        listens, ApiError (unauthorized, unsupported_version, ...) when the controller refuses."""
        if self._writer is not None:
            raise RuntimeError("already connected; use a new ProxyApiClient to reconnect")
        self._reader, self._writer = await asyncio.open_unix_connection(self.path, limit=REPLY_LIMIT)
        self._read_task = asyncio.get_running_loop().create_task(self._read_loop())
        try:
            result = await self.request("hello", version=self.version, proxy=self.proxy_name)
        except BaseException:
            await self.close()
            raise
        self.controller = result.get("controller")
        log.info("connected to %s at %s as %s", self.controller, self.path, self.proxy_name)
        return result

    async def close(self) -> None:
        """Drop the connection (no bye: the controller then waits for a re-registration until the
        heartbeat deadline). Pending calls raise ConnectionLost; the event iterator ends."""
        self._stop_heartbeat()
        if self._lost is None:
            self._lose(ConnectionLost("closed by the client"), closed_here=True)
        if self._read_task is not None:
            self._read_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._read_task
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(Exception):
                await self._writer.wait_closed()

    # --- operations -------------------------------------------------------------------------------

    async def register(self, port: int, mac: str, heartbeat_ms: int = 1000, ip: str | None = None) -> int:
        """Register the proxy host (switch ``port``, ``mac``, and its ``ip`` on that port if the
        controller should probe the port) and start heartbeats at the interval the controller
        grants, which is returned."""
        args: dict[str, Any] = {"port": port, "mac": mac, "heartbeat_ms": heartbeat_ms}
        if ip is not None:
            args["ip"] = ip
        result = await self.request("register", **args)
        self.heartbeat_ms = int(result["heartbeat_ms"])
        self._stop_heartbeat()
        self._beat_task = asyncio.get_running_loop().create_task(self._beat_loop(self.heartbeat_ms / 1000))
        return self.heartbeat_ms

    async def heartbeat(self, quiescent: list[dict[str, Any]] | None = None) -> int:
        """One heartbeat by hand (the automatic ones need no help); returns the controller's
        ``now_ms`` (CLOCK_MONOTONIC, comparable with ``time.monotonic()`` on this host).
        ``quiescent``: the flows with nothing buffered, as ``{"flow", "a_c", "b_s", "a_s", "b_c"}``."""
        args: dict[str, Any] = {}
        if quiescent is not None:
            args["quiescent"] = [q | {"flow": _flow_json(q["flow"])} for q in quiescent]
        return int((await self.request("heartbeat", **args))["now_ms"])

    async def splice_prepare(self, flow: FlowLike) -> str:
        """Ask the switch to stop payload toward the proxy on ``flow``; returns "holding"."""
        return str((await self.request("splice_prepare", flow=_flow_json(flow)))["state"])

    async def splice(self, flow: FlowLike, a_c: int, b_s: int, a_s: int, b_c: int) -> Deltas:
        """Splice ``flow`` with the proxy's byte counts (sent only once its sockets have nothing
        unread and nothing unacknowledged); returns the deltas the direct entries apply."""
        result = await self.request("splice", flow=_flow_json(flow), a_c=a_c, b_s=b_s, a_s=a_s, b_c=b_c)
        deltas = result["deltas"]
        return Deltas(int(deltas["c2s"]), int(deltas["s2c"]))

    async def splice_cancel(self, flow: FlowLike) -> str:
        """Give up a splice after ``splice_prepare`` (the sockets would not drain, or the splice
        failed): payload reaches the proxy again; returns "proxied". ``conflict`` when the flow
        is not holding (any more: the controller's hold timeout may have ended it already)."""
        return str((await self.request("splice_cancel", flow=_flow_json(flow)))["state"])

    async def flow(self, flow: FlowLike) -> dict[str, Any]:
        return await self.request("flow", flow=_flow_json(flow))

    async def flows(self) -> list[dict[str, Any]]:
        return list((await self.request("flows"))["flows"])

    async def bye(self) -> None:
        """Leave: the controller handles this proxy's flows as on its failure. The connection
        stays open (close() it, or register again)."""
        # No heartbeat may follow the bye: it would only earn a not_registered.
        self._stop_heartbeat()
        await self.request("bye")

    async def request(self, op: str, **args: Any) -> dict[str, Any]:
        """Send one request and wait for its reply's result; raises ApiError on an error reply,
        ConnectionLost when the connection goes, TimeoutError after ``timeout``."""
        if self._lost is not None:
            raise self._lost
        if self._writer is None:
            raise ConnectionLost("not connected")
        req_id = self._next_id
        self._next_id += 1
        line = encode({"id": req_id, "op": op, **args})
        if len(line) > MAX_LINE:
            raise ValueError(f"request of {len(line)} bytes is over the API's {MAX_LINE}-byte line limit")
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[req_id] = future
        try:
            async with self._write_lock:
                self._writer.write(line)
                await self._writer.drain()
            return await asyncio.wait_for(future, self.timeout)
        except ConnectionError as exc:
            # The controller may have said why before it hung up (unauthorized): let the reader
            # take that line in before deciding what to raise.
            if self._lost is None and self._read_task is not None:
                await asyncio.wait({self._read_task}, timeout=1.0)
            if self._lost is None:
                self._lose(ConnectionLost(f"controller connection lost: {exc}"))
            raise self._lost or exc from None
        finally:
            self._pending.pop(req_id, None)
            if future.done() and not future.cancelled():
                future.exception()  # raised above or moot: keep asyncio from logging it as lost

    # --- events -----------------------------------------------------------------------------------

    async def events(self) -> AsyncIterator[Event]:
        """The controller's events, in order. Ends when close() is called; raises ConnectionLost
        when the controller goes away. (Not used when ``on_event`` was given.)"""
        while True:
            item = await self._events.get()
            if item is _CLOSED:
                self._events.put_nowait(_CLOSED)  # later iterators end too
                return
            if isinstance(item, BaseException):
                self._events.put_nowait(item)
                raise item
            yield item

    # --- internals --------------------------------------------------------------------------------

    async def _read_loop(self) -> None:
        assert self._reader is not None
        try:
            while True:
                line = await self._reader.readline()
                if not line.endswith(b"\n"):
                    break  # EOF
                await self._on_message(line[:-1])
        except (ConnectionError, ValueError) as exc:  # ValueError: a reply over REPLY_LIMIT
            # ECONNRESET too may follow an error line: Linux reports it to a peer whose bytes the
            # closing side left unread.
            self._lose(self._unsolicited or ConnectionLost(f"controller connection lost: {exc}"))
            return
        # Closed by the controller: if it said why first (unauthorized, unsupported_version,
        # bad_request for a framing error), that is what pending calls raise.
        reason = self._unsolicited or ConnectionLost(f"the controller at {self.path} closed the connection")
        self._lose(reason)

    async def _on_message(self, line: bytes) -> None:
        try:
            msg = decode_line(line)
        except ValueError:
            log.warning("controller sent a line that is not JSON: %.200r", line)
            return
        if not isinstance(msg, dict):
            log.warning("controller sent a non-object: %.200r", line)
            return
        if "event" in msg and "id" not in msg:
            fields = {k: v for k, v in msg.items() if k != "event"}
            await self._deliver(Event(str(msg["event"]), fields))
            return
        ok = msg.get("ok") is True
        error = None
        if not ok:
            body = msg.get("error") if isinstance(msg.get("error"), dict) else {}
            details = {k: v for k, v in body.items() if k not in ("code", "message")}
            code = body.get("code")
            message = str(body.get("message", ""))
            try:
                error = ApiError(str(code), message, **details)
            except ValueError:
                error = ApiError("internal", f"unknown error code {code!r}: {message}", **details)
        future = self._pending.get(msg.get("id"))  # type: ignore[arg-type]
        if future is None:
            if error is not None:
                # Not an answer to anything pending: the controller refuses the connection or
                # a line it could not parse (a client bug).
                log.warning("controller: %s", error)
                self._unsolicited = error
            return
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            result = msg.get("result")
            future.set_result(result if isinstance(result, dict) else {})

    async def _deliver(self, event: Event) -> None:
        if self.on_event is None:
            self._events.put_nowait(event)
            return
        try:
            outcome = self.on_event(event)
            if inspect.isawaitable(outcome):
                await outcome
        except Exception:
            log.exception("event handler failed on %s", event)

    def _lose(self, reason: ConnectionError | ApiError, closed_here: bool = False) -> None:
        if self._lost is not None:
            return
        self._lost = reason
        for future in self._pending.values():
            if not future.done():
                future.set_exception(reason)
        self._events.put_nowait(_CLOSED if closed_here else reason)
        if not closed_here:
            log.warning("proxy API connection of %s lost: %s", self.proxy_name, reason)
            self._stop_heartbeat()

    def _stop_heartbeat(self) -> None:
        task, self._beat_task = self._beat_task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    def _quiescent_now(self) -> list[dict[str, Any]] | None:
        if self.quiescent is None:
            return None
        try:
            return self.quiescent()
        except Exception:
            # A faulty callback must not stop the heartbeats: the controller would declare the
            # proxy dead and reset its flows.
            log.exception("quiescent callback of %s failed; heartbeat sent without it", self.proxy_name)
            return None

    async def _beat_loop(self, interval: float) -> None:
        # On a fixed cadence, not interval-after-reply: a slow reply must not stretch the period
        # the controller measures.
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            next_at = max(next_at + interval, loop.time())
            await asyncio.sleep(next_at - loop.time())
            try:
                quiet = self._quiescent_now()
                try:
                    await self.heartbeat(quiet)
                except ValueError as exc:
                    # The list made the line too long: a heartbeat without it is still proof of
                    # life, and leaving flows out only means they are reset if the proxy dies.
                    log.warning("heartbeat of %s without its quiescent list: %s", self.proxy_name, exc)
                    await self.heartbeat()
            except ApiError as exc:
                # not_registered: declared dead (a long stall) or unregistered by the
                # controller. The caller sees it on its next call; registering again resumes.
                log.warning("heartbeat of %s refused: %s; heartbeats stop", self.proxy_name, exc)
                return
            except (ConnectionError, TimeoutError) as exc:
                log.warning("heartbeat of %s failed: %s", self.proxy_name, exc)
                if self._lost is not None:
                    return
