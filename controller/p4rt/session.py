"""One controller's asyncio session with one P4Runtime device (grpc.aio).

A :class:`SwitchSession` owns a gRPC channel and the StreamChannel on it. It arbitrates with its
election id and role, tracks whether it is the primary (``is_primary``, ``primary_event``),
reconnects with exponential backoff when the stream drops (switch restart, network), and hands
stream messages out by kind: packet-ins, digest lists (acknowledged automatically), idle-timeout
notifications, arbitration changes and stream errors, each to registered handlers or, if there
are none, to a bounded asyncio queue.

Unary RPCs (Write, Read, pipeline config) are methods taking the typed entities of entities.py.

Take-over by a backup, both ways the spec and BMv2 allow:

* the server promotes the live backup with the highest election id when the primary's stream
  closes (BMv2/PI, p4sim's default): we see an arbitration update with status OK, nothing to do;
* the server leaves the role without a primary and tells the backups (status NOT_FOUND) that
  whoever re-arbitrates with an election id >= the highest it has seen becomes primary: with
  ``takeover=True`` we re-send our arbitration, with the highest id + 1 if ours is lower. A new
  stream always starts from the configured id again, so two backups racing for the same bumped
  id end with one primary and one backup rather than a loop.

Nothing here is global: every session has its own channel, tasks and queues.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2
from p4.config.v1 import p4info_pb2
from p4.v1 import p4runtime_pb2 as pb
from p4.v1 import p4runtime_pb2_grpc

from .entities import (
    DigestList,
    Entity,
    IdleTimeoutNotification,
    PacketIn,
    PacketOut,
    Update,
    UpdateType,
)
from .errors import (
    NotConnectedError,
    P4RuntimeRpcError,
    PipelineError,
    WriteError,
)
from .p4info import P4Index, load_p4info
from .reader import ReadSession, Tls, open_channel

__all__ = ["ArbitrationChange", "Backoff", "StreamError", "SwitchSession"]

log = logging.getLogger(__name__)

_U128 = (1 << 128) - 1

Atomicity = pb.WriteRequest.Atomicity
CONTINUE_ON_ERROR = pb.WriteRequest.CONTINUE_ON_ERROR
ROLLBACK_ON_ERROR = pb.WriteRequest.ROLLBACK_ON_ERROR
DATAPLANE_ATOMIC = pb.WriteRequest.DATAPLANE_ATOMIC

#: Stream message kinds, the names used by ``add_handler`` and the queues.
KINDS = ("packet_in", "digest", "idle_timeout", "arbitration", "error")


@dataclass(frozen=True)
class Backoff:
    """Reconnect delays: ``initial * factor**attempt`` capped at ``maximum``, +-``jitter``."""

    initial: float = 0.05
    maximum: float = 5.0
    factor: float = 2.0
    jitter: float = 0.2

    def delay(self, attempt: int) -> float:
        base = min(self.maximum, self.initial * self.factor ** min(attempt, 64))
        # Jitter so that many controllers of one restarted switch do not come back in lockstep.
        return base * (1 + random.uniform(-self.jitter, self.jitter))


@dataclass(frozen=True)
class ArbitrationChange:
    """This session's role changed or was restated by the switch (or the stream was lost)."""

    is_primary: bool
    election_id: int  # the highest election id the switch reports (ours when primary)
    code: int  # google.rpc.Code of the update: OK primary, ALREADY_EXISTS / NOT_FOUND backup
    message: str = ""
    connected: bool = True  # False: synthesized locally because the stream went away


@dataclass(frozen=True)
class StreamError:
    """A StreamError from the switch: one of our stream messages (packet-out, ack) was refused."""

    code: int
    message: str
    kind: str  # "packet_out", "digest_list_ack", "other" or "" when the switch did not say
    msg: pb.StreamError

    @property
    def code_name(self) -> str:
        return code_pb2.Code.Name(self.code) if self.code in code_pb2.Code.values() else str(self.code)


Handler = Callable[[Any], Awaitable[None] | None]
ReconnectHook = Callable[["SwitchSession"], Awaitable[None]]


def _u128(msg: Any, value: int) -> None:
    msg.high, msg.low = value >> 64, value & ((1 << 64) - 1)


def _as_updates(kind: UpdateType, entities: Entity | Iterable[Entity]) -> list[Update]:
    items = [entities] if hasattr(entities, "entity_kind") else list(entities)  # type: ignore[arg-type]
    return [Update(kind, e) for e in items]


def _read_file(value: bytes | str | Path | None) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    return Path(value).read_bytes()


# Stream errors that answer the arbitration itself: the same request would fail again.
_REFUSALS = frozenset({grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND,
                       grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED})


class PushGate:
    """Reads and writes, any number at once, against a pipeline push, alone.

    BMv2 1.15.5's P4Runtime server (PI) dies with SIGSEGV when a Read or Write reaches a switch
    that has never had a pipeline while its first SetForwardingPipelineConfig is under way: the
    push creates the device's state before it locks it against other requests, and a Read or
    Write in between finds it without a P4Info (``pi_p4info_is_valid_id(NULL, ...)``, see
    docs/bmv2.md). A controller pushes to such a switch each time one restarted, with reads and
    writes of its own still coming (idle polls, flows being set up or torn down). So a session
    sends none while its push is on the wire, and pushes only once those already sent have
    been answered; what waits is sent as soon as the push returns, in the order it came.
    """

    def __init__(self) -> None:
        self._users = 0
        self._idle = asyncio.Event()  # no read or write in flight
        self._idle.set()
        self._open = asyncio.Event()  # no push in flight
        self._open.set()

    @property
    def pushing(self) -> bool:
        return not self._open.is_set()

    @contextlib.asynccontextmanager
    async def shared(self) -> AsyncIterator[None]:
        """Around a Read, Write or GetForwardingPipelineConfig."""
        while not self._open.is_set():
            await self._open.wait()
        self._users += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._users -= 1
            if self._users == 0:
                self._idle.set()

    @contextlib.asynccontextmanager
    async def exclusive(self) -> AsyncIterator[None]:
        """Around a SetForwardingPipelineConfig: after those in flight, before any new one."""
        while not self._open.is_set():
            await self._open.wait()
        self._open.clear()
        try:
            await self._idle.wait()
            yield
        finally:
            self._open.set()


class SwitchSession:
    """A controller's session with one P4Runtime device.

    ``async with SwitchSession(addr, device_id=1, election_id=10) as s:`` connects and waits for
    the first arbitration answer (primary or backup); ``await s.wait_primary()`` waits for the
    primary role. ``index`` is the P4Index of the pipeline in use: set by :meth:`set_pipeline`
    or :meth:`adopt_pipeline`, or given up front when the P4Info is known.
    """

    def __init__(self, address: str, device_id: int = 0, election_id: int = 1, role: str = "", *,
                 root_certificates: bytes | str | Path | None = None,
                 private_key: bytes | str | Path | None = None,
                 certificate_chain: bytes | str | Path | None = None,
                 tls_server_name: str | None = None,
                 role_config: any_pb2.Any | None = None,
                 index: P4Index | None = None,
                 on_reconnect: ReconnectHook | None = None,
                 on_write_latency: Callable[[float], None] | None = None,
                 auto_ack_digests: bool = True,
                 takeover: bool = True,
                 backoff: Backoff | None = None,
                 queue_size: int = 10_000,
                 rpc_timeout: float | None = 30.0,
                 connect_timeout: float | None = 10.0,
                 name: str | None = None) -> None:
        if not 0 < election_id <= _U128:
            raise ValueError(f"election id {election_id} must be in 1..2**128-1")
        self.address = address
        self.device_id = device_id
        self.role = role
        self.role_config = role_config
        self.name = name or f"{address}#{device_id}"
        self._configured_election_id = election_id
        self._election_id = election_id
        self._tls = Tls(_read_file(root_certificates), _read_file(private_key), _read_file(certificate_chain),
                        tls_server_name)
        self._index = index
        self.on_reconnect = on_reconnect
        self._setting_up = False  # on_reconnect is running: no packet-outs until it is done
        self.push_gate = PushGate()  # no Read or Write while a pipeline push is in flight
        self.on_write_latency = on_write_latency
        self.auto_ack_digests = auto_ack_digests
        self.takeover = takeover
        self.backoff = backoff or Backoff()
        self.rpc_timeout = rpc_timeout
        self.connect_timeout = connect_timeout  # what `async with` waits for the first answer

        self._channel: grpc.aio.Channel | None = None
        self._stub: p4runtime_pb2_grpc.P4RuntimeStub | None = None
        self._reader: ReadSession | None = None
        self._write_raw: Any = None  # Write taking the request's bytes (set with the channel)
        self._out: asyncio.Queue[pb.StreamMessageRequest | None] | None = None
        self._runner: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing = False
        self._streams_opened = 0  # streams that got an arbitration answer (1 = first connect)
        self._takeover_attempt = None

        self.primary_event = asyncio.Event()
        self.connected_event = asyncio.Event()
        self.highest_election_id: int | None = None
        self.last_error: str | None = None  # why the last stream failed, for messages and status
        # set when the switch refused our arbitration itself (bad election id, unknown device):
        # retrying cannot help, so connect() fails at once instead of racing until its timeout
        self.refused_event = asyncio.Event()
        self._handlers: dict[str, list[Handler]] = {k: [] for k in KINDS}
        self.queues: dict[str, asyncio.Queue[Any]] = {k: asyncio.Queue(queue_size) for k in KINDS}
        self.dropped: dict[str, int] = dict.fromkeys(KINDS, 0)

    # --- state ------------------------------------------------------------------------------------
    @property
    def is_primary(self) -> bool:
        return self.primary_event.is_set()

    @property
    def is_connected(self) -> bool:
        return self.connected_event.is_set()

    @property
    def election_id(self) -> int:
        """The election id in use (above the configured one after a spec-style take-over)."""
        return self._election_id

    @property
    def index(self) -> P4Index:
        if self._index is None:
            raise PipelineError(f"{self.name}: no P4Info yet: call set_pipeline() or adopt_pipeline()")
        return self._index

    @property
    def has_index(self) -> bool:
        return self._index is not None

    # Queues by kind, for consumers that prefer `await session.packet_ins.get()`.
    @property
    def packet_ins(self) -> asyncio.Queue[PacketIn]:
        return self.queues["packet_in"]

    @property
    def digest_lists(self) -> asyncio.Queue[DigestList]:
        return self.queues["digest"]

    @property
    def idle_notifications(self) -> asyncio.Queue[IdleTimeoutNotification]:
        return self.queues["idle_timeout"]

    @property
    def arbitration_changes(self) -> asyncio.Queue[ArbitrationChange]:
        return self.queues["arbitration"]

    @property
    def stream_errors(self) -> asyncio.Queue[StreamError]:
        return self.queues["error"]

    def add_handler(self, kind: str, handler: Handler) -> None:
        """Send messages of ``kind`` (one of KINDS) to ``handler`` instead of its queue.

        Handlers run in arrival order on the stream's reader task (an async one is awaited before
        the next message is read), so they must not wait for later stream messages themselves.
        """
        if kind not in self._handlers:
            raise ValueError(f"unknown stream message kind {kind!r} (kinds: {', '.join(KINDS)})")
        self._handlers[kind].append(handler)

    def remove_handler(self, kind: str, handler: Handler) -> None:
        self._handlers[kind].remove(handler)

    # --- lifecycle --------------------------------------------------------------------------------
    async def __aenter__(self) -> SwitchSession:
        try:
            await self.connect(self.connect_timeout)
        except BaseException:
            await self.close()  # __aexit__ will not run: do not leave the reconnect loop behind
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Start connecting in the background (returns at once)."""
        if self._runner is not None:
            return
        self._closing = False
        self._new_channel()
        self._runner = asyncio.create_task(self._run(), name=f"p4rt-session-{self.name}")

    async def connect(self, timeout: float | None = 10.0) -> None:
        """Start, and wait until the switch has answered our arbitration (primary or backup).

        Raises NotConnectedError, with the last stream error, if it has not within ``timeout``;
        the session keeps trying in the background until closed.
        """
        await self.start()
        self.refused_event.clear()
        connected = asyncio.ensure_future(self.connected_event.wait())
        refused = asyncio.ensure_future(self.refused_event.wait())
        try:
            done, _ = await asyncio.wait({connected, refused}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            connected.cancel()
            refused.cancel()
        if self.connected_event.is_set():
            return
        if self.refused_event.is_set():
            raise NotConnectedError(f"{self.name}: the switch refused our arbitration: {self.last_error}")
        raise NotConnectedError(f"{self.name}: no arbitration answer within {timeout}s"
                                f" (last error: {self.last_error or 'none'})")

    async def wait_connected(self, timeout: float | None = None) -> None:
        async with asyncio.timeout(timeout):
            await self.connected_event.wait()

    async def wait_primary(self, timeout: float | None = None) -> None:
        async with asyncio.timeout(timeout):
            await self.primary_event.wait()

    async def close(self) -> None:
        """End the stream (gracefully: the switch sees our half-close), stop tasks, close the channel."""
        self._closing = True
        if self._out is not None:
            self._out.put_nowait(None)
        runner, self._runner = self._runner, None
        if runner is not None:
            if self._out is not None:
                try:
                    # Give the switch a moment to end the stream by itself after our half-close.
                    await asyncio.wait_for(asyncio.shield(runner), timeout=1.0)
                except (TimeoutError, asyncio.CancelledError):
                    pass
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._close_channel()
        self._lost_stream()
        log.info("%s: session closed", self.name)

    def _new_channel(self) -> None:
        self._channel = open_channel(self.address, self._tls, [
            # Our own backoff decides when to retry; keep gRPC's from adding long waits on top.
            ("grpc.initial_reconnect_backoff_ms", int(self.backoff.initial * 1000) or 1),
            ("grpc.min_reconnect_backoff_ms", int(self.backoff.initial * 1000) or 1),
            ("grpc.max_reconnect_backoff_ms", int(self.backoff.maximum * 1000) or 1),
        ])
        self._stub = p4runtime_pb2_grpc.P4RuntimeStub(self._channel)
        self._reader = ReadSession(self._stub, self.device_id, self.role, self.rpc_timeout)

    async def _close_channel(self) -> None:
        channel, self._channel = self._channel, None
        self._stub = None
        self._reader = None
        if channel is not None:
            await channel.close(grace=None)

    # --- the stream -------------------------------------------------------------------------------
    async def _run(self) -> None:
        attempt = 0
        while not self._closing:
            established_before = self._streams_opened
            try:
                await self._stream_once()
                if not self._closing:
                    log.warning("%s: stream ended by the switch", self.name)
            except asyncio.CancelledError:
                raise
            except grpc.aio.AioRpcError as e:
                self.last_error = f"{e.code().name}: {e.details()}"
                if e.code() in _REFUSALS and self._streams_opened == established_before:
                    self.refused_event.set()
                if not self._closing:
                    # Loud once, then quiet while the switch stays away (backoff can run for long).
                    log.log(logging.WARNING if attempt == 0 else logging.DEBUG, "%s: stream failed: %s: %s",
                            self.name, e.code().name, e.details())
            except Exception:
                log.exception("%s: stream handling failed", self.name)
            finally:
                self._lost_stream()
            if self._closing:
                return
            attempt = 0 if self._streams_opened > established_before else attempt + 1
            delay = self.backoff.delay(attempt)
            log.info("%s: reconnecting in %.2fs (attempt %d)", self.name, delay, attempt + 1)
            await asyncio.sleep(delay)
            # A fresh channel: a closed or broken one may sit in gRPC's own reconnect backoff.
            await self._close_channel()
            self._new_channel()

    async def _stream_once(self) -> None:
        out: asyncio.Queue[pb.StreamMessageRequest | None] = asyncio.Queue()
        self._out = out
        self._election_id = self._configured_election_id
        self._takeover_attempt: tuple[int | None, int] | None = None
        got_arbitration = False

        async def requests() -> AsyncIterator[pb.StreamMessageRequest]:
            while (item := await out.get()) is not None:
                yield item

        assert self._stub is not None
        call = self._stub.StreamChannel(requests())
        out.put_nowait(self._arbitration_request())
        try:
            async for resp in call:
                kind = resp.WhichOneof("update")
                if kind == "arbitration":
                    await self._on_arbitration(resp.arbitration)
                    if not got_arbitration:
                        got_arbitration = True
                        self._streams_opened += 1
                        self.connected_event.set()
                        if self._streams_opened > 1 and self.on_reconnect is not None:
                            # held from here, before anything else can run on the new stream
                            self._setting_up = True
                            self._spawn(self._call_reconnect_hook(), "on_reconnect")
                elif kind == "packet":
                    await self._decode_and_dispatch("packet_in", PacketIn.from_proto, resp.packet)
                elif kind == "digest":
                    if self.auto_ack_digests:
                        # Ack first: the switch holds back this digest's data until it is acked.
                        ack = pb.StreamMessageRequest()
                        ack.digest_ack.digest_id = resp.digest.digest_id
                        ack.digest_ack.list_id = resp.digest.list_id
                        out.put_nowait(ack)
                    await self._decode_and_dispatch("digest", DigestList.from_proto, resp.digest)
                elif kind == "idle_timeout_notification":
                    await self._decode_and_dispatch("idle_timeout", IdleTimeoutNotification.from_proto,
                                                    resp.idle_timeout_notification)
                elif kind == "error":
                    err = resp.error
                    which = err.WhichOneof("details") or ""
                    se = StreamError(err.canonical_code, err.message, which, err)
                    log.warning("%s: stream error %s: %s (%s)", self.name, se.code_name, se.message, which)
                    await self._dispatch("error", se)
                else:
                    log.debug("%s: ignoring stream message %s", self.name, kind)
        finally:
            self._out = None
            out.put_nowait(None)  # end the request generator if the call is still around
            call.cancel()

    def _arbitration_request(self) -> pb.StreamMessageRequest:
        req = pb.StreamMessageRequest()
        arb = req.arbitration
        arb.device_id = self.device_id
        if self.role:
            arb.role.name = self.role
        if self.role_config is not None:
            arb.role.config.CopyFrom(self.role_config)
        _u128(arb.election_id, self._election_id)
        return req

    async def _on_arbitration(self, arb: pb.MasterArbitrationUpdate) -> None:
        highest = (arb.election_id.high << 64) | arb.election_id.low
        self.highest_election_id = highest if arb.HasField("election_id") else None
        primary = arb.status.code == code_pb2.OK
        was = self.is_primary
        if primary:
            self.primary_event.set()
        else:
            self.primary_event.clear()
        if primary != was:
            log.info("%s: %s (election id %d, highest %s)", self.name, "primary" if primary else "backup",
                     self._election_id, self.highest_election_id)
        await self._dispatch("arbitration", ArbitrationChange(primary, highest, arb.status.code,
                                                              arb.status.message))
        if arb.status.code == code_pb2.NOT_FOUND and self.takeover and self._out is not None:
            # No primary, and the switch will not name one by itself: claim the role (spec rules).
            if self.highest_election_id is not None and self._election_id < self.highest_election_id:
                self._election_id = min(_U128, self.highest_election_id + 1)
            attempt = (self.highest_election_id, self._election_id)
            if attempt == self._takeover_attempt:
                # Already asked with this id and the switch still names no primary: asking again
                # would only loop. Wait for the next change instead.
                log.warning("%s: re-arbitration with election id %d did not make us primary",
                            self.name, self._election_id)
                return
            self._takeover_attempt = attempt
            log.info("%s: no primary; re-arbitrating with election id %d", self.name, self._election_id)
            self._out.put_nowait(self._arbitration_request())

    def _lost_stream(self) -> None:
        was_primary = self.is_primary
        was_connected = self.is_connected
        self.primary_event.clear()
        self.connected_event.clear()
        if was_connected:
            change = ArbitrationChange(False, self.highest_election_id or 0, code_pb2.UNAVAILABLE,
                                       "stream lost", connected=False)
            if was_primary and not self._closing:
                log.warning("%s: lost the stream while primary", self.name)
            # Synchronous here (called from finally blocks): queue it, or hand to handlers as a task.
            self._spawn(self._dispatch("arbitration", change), "arbitration-lost")

    async def _call_reconnect_hook(self) -> None:
        assert self.on_reconnect is not None
        log.info("%s: reconnected; running on_reconnect", self.name)
        try:
            await self.on_reconnect(self)
        finally:
            self._setting_up = False

    def _spawn(self, coro: Awaitable[Any], what: str) -> None:
        async def guarded() -> None:
            try:
                await coro
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s: %s failed", self.name, what)

        task = asyncio.get_running_loop().create_task(guarded(), name=f"p4rt-{what}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _decode_and_dispatch(self, kind: str, decode: Callable[[P4Index, Any], Any], msg: Any) -> None:
        if self._index is None:
            log.warning("%s: %s dropped: no P4Info to decode it (set or adopt a pipeline)", self.name, kind)
            self.dropped[kind] += 1
            return
        try:
            item = decode(self._index, msg)
        except (KeyError, ValueError) as e:
            log.warning("%s: %s dropped: cannot decode it: %s", self.name, kind, e)
            self.dropped[kind] += 1
            return
        await self._dispatch(kind, item)

    async def _dispatch(self, kind: str, item: Any) -> None:
        handlers = self._handlers[kind]
        if handlers:
            for h in list(handlers):
                try:
                    result = h(item)
                    if inspect.isawaitable(result):
                        await result
                except Exception:
                    log.exception("%s: %s handler failed", self.name, kind)
            return
        q = self.queues[kind]
        if q.full():
            # Never block the stream on a slow consumer: lose the oldest, say so.
            q.get_nowait()
            self.dropped[kind] += 1
            log.warning("%s: %s queue full; dropped the oldest (%d so far)", self.name, kind, self.dropped[kind])
        q.put_nowait(item)

    def send(self, req: pb.StreamMessageRequest) -> None:
        """Queue a raw stream message; raises NotConnectedError when there is no stream."""
        if self._out is None or not self.is_connected:
            raise NotConnectedError(f"{self.name}: no stream to the switch")
        self._out.put_nowait(req)

    async def packet_out(self, packet: PacketOut | bytes, metadata: dict[str, int] | None = None) -> None:
        """Send a frame out through the CPU port; ``metadata`` are the packet_out header's fields.

        Refused while ``on_reconnect`` sets a reconnected switch up again: a switch that restarted
        has no pipeline to run the frame through yet, and BMv2 1.15.5 was seen to crash (SIGSEGV)
        taking a packet-out while its pipeline was being set."""
        if self._out is None or not self.is_connected:
            raise NotConnectedError(f"{self.name}: no stream to the switch")
        if self._setting_up:
            raise NotConnectedError(f"{self.name}: the switch is being set up again")
        if isinstance(packet, bytes):
            packet = PacketOut(packet, metadata or {})
        req = pb.StreamMessageRequest()
        req.packet.CopyFrom(packet.to_proto(self.index))
        self.send(req)

    # --- unary RPCs ---------------------------------------------------------------------------------
    def _rpc_stub(self) -> p4runtime_pb2_grpc.P4RuntimeStub:
        if self._stub is None:
            raise NotConnectedError(f"{self.name}: session not started")
        return self._stub

    async def write(self, updates: Iterable[Update | pb.Update], atomicity: int = CONTINUE_ON_ERROR) -> None:
        """One Write RPC with these updates; raises WriteError listing each failed update."""
        items = list(updates)
        if not items:
            return
        async with self.push_gate.shared():
            await self._write(items, atomicity)

    async def _write(self, items: list[Update | pb.Update], atomicity: int) -> None:
        req = pb.WriteRequest(device_id=self.device_id, role=self.role, atomicity=atomicity)
        _u128(req.election_id, self._election_id)
        index = self._index
        for item in items:
            # Filled in place: one message tree, no intermediate copies.
            if isinstance(item, pb.Update):
                req.updates.add().CopyFrom(item)
            else:
                item.fill(index or self.index, req.updates.add())
        stub = self._rpc_stub()
        t0 = time.perf_counter()
        try:
            await stub.Write(req, timeout=self.rpc_timeout)
        except grpc.aio.AioRpcError as e:
            raise WriteError.build("Write", e, items) from None
        finally:
            if self.on_write_latency is not None:
                try:
                    self.on_write_latency(time.perf_counter() - t0)
                except Exception:
                    log.exception("%s: on_write_latency hook failed", self.name)

    async def insert(self, entities: Entity | Iterable[Entity]) -> None:
        await self.write(_as_updates(UpdateType.INSERT, entities))

    async def modify(self, entities: Entity | Iterable[Entity]) -> None:
        await self.write(_as_updates(UpdateType.MODIFY, entities))

    async def delete(self, entities: Entity | Iterable[Entity]) -> None:
        await self.write(_as_updates(UpdateType.DELETE, entities))

    def _read_session(self) -> ReadSession:
        self._rpc_stub()  # raises NotConnectedError before start()
        assert self._reader is not None
        return self._reader

    async def read(self, filters: Entity | Iterable[Entity]) -> AsyncIterator[Entity]:
        """Entities matching the filters, as they stream in (``async for e in s.read(...)``)."""
        async with self.push_gate.shared():
            async for ent in self._read_session().read(self.index, filters):
                yield ent

    async def read_all(self, filters: Entity | Iterable[Entity]) -> list[Entity]:
        return [e async for e in self.read(filters)]

    async def set_pipeline(self, p4info: p4info_pb2.P4Info | str | Path, device_config: bytes,
                           cookie: int | None = None,
                           action: int = pb.SetForwardingPipelineConfigRequest.VERIFY_AND_COMMIT) -> None:
        """Push a pipeline (VERIFY_AND_COMMIT by default): P4Info plus the target's device config."""
        info = p4info if isinstance(p4info, p4info_pb2.P4Info) else load_p4info(p4info)
        req = pb.SetForwardingPipelineConfigRequest(device_id=self.device_id, role=self.role, action=action)
        _u128(req.election_id, self._election_id)
        req.config.p4info.CopyFrom(info)
        req.config.p4_device_config = device_config
        if cookie is not None:
            req.config.cookie.cookie = cookie
        stub = self._rpc_stub()
        async with self.push_gate.exclusive():
            try:
                await stub.SetForwardingPipelineConfig(req, timeout=self.rpc_timeout)
            except grpc.aio.AioRpcError as e:
                raise P4RuntimeRpcError.from_grpc("SetForwardingPipelineConfig", e) from None
            if action != pb.SetForwardingPipelineConfigRequest.VERIFY:
                self._index = P4Index(info)  # before any read or write that waited goes out
        log.info("%s: pipeline set (%d tables, cookie %s)", self.name, len(info.tables), cookie)

    async def get_pipeline(self, response_type: int = pb.GetForwardingPipelineConfigRequest.ALL
                           ) -> pb.ForwardingPipelineConfig:
        async with self.push_gate.shared():
            return await self._read_session().get_pipeline(response_type)

    async def adopt_pipeline(self) -> int | None:
        """Use the pipeline the switch already runs (its P4Info); returns its cookie (None if unset).

        Raises PipelineError when the switch has none.
        """
        try:
            config = await self.get_pipeline(pb.GetForwardingPipelineConfigRequest.P4INFO_AND_COOKIE)
        except P4RuntimeRpcError as e:
            # Some servers answer "no pipeline" with an error rather than an empty config.
            if e.code in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.NOT_FOUND):
                raise PipelineError(f"{self.name}: the switch has no pipeline: {e.message}") from e
            raise
        if not config.HasField("p4info") or not (config.p4info.tables or config.p4info.actions):
            raise PipelineError(f"{self.name}: the switch has no pipeline to adopt")
        self._index = P4Index(config.p4info)
        cookie = config.cookie.cookie if config.HasField("cookie") else None
        log.info("%s: adopted the switch's pipeline (%d tables, cookie %s)", self.name,
                 len(config.p4info.tables), cookie)
        return cookie

    async def capabilities(self) -> str:
        """The P4Runtime API version the switch implements."""
        return await self._read_session().capabilities()
