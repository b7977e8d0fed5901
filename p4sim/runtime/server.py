"""P4Runtime gRPC server for p4sim: arbitration, pipeline config, Write/Read, stream I/O.

Serves the P4Runtime API (protos of p4runtime 1.4.1) the way BMv2's simple_switch_grpc does, so
controllers and p4runtime-shell work unchanged against either. Packets are not interpreted
here: the `Device` (device.py) runs the pipeline; this module keeps the SwitchState the device
reads, moves packet-outs to the device and packet-ins / digests / idle notifications from the
state to the primary client(s). It runs on grpc.aio: a stream costs a coroutine, never a thread
(see P4RuntimeServer.__init__ for the threads and bounds).

Arbitration follows the spec's "Client Arbitration and Controller Replication" rules, per
(device_id, role). One choice the spec leaves to BMv2 compatibility: when the primary's stream
closes, BMv2 (PI) promotes the live controller with the highest election id; the spec instead
leaves the role without a primary until a controller re-sends an arbitration update with an id
>= the highest seen. `promote_backup_on_disconnect` picks (default True = BMv2's behaviour); it
also picks the election id arbitration updates carry: the current primary's (PI's) or the highest
seen (the spec's).

Roles: named roles are separate arbitration domains; role.config is opaque to us and grants
full pipeline access (we define no partitioning scheme). Notifications go to each role's primary.

Write atomicity: CONTINUE_ON_ERROR only; ROLLBACK_ON_ERROR and DATAPLANE_ATOMIC -> UNIMPLEMENTED
(both optional in the spec).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, status_pb2
from p4.v1 import p4runtime_pb2

from p4sim.runtime import codec, entities, wire
from p4sim.runtime.device import Device, PipelineConfigError
from p4sim.runtime.errors import (
    P4RTError,
    failed_precondition,
    invalid,
    not_found,
    permission_denied,
    unimplemented,
)
from p4sim.runtime.reconcile import migrate_state
from p4sim.runtime.state import SwitchState

log = logging.getLogger(__name__)

P4RUNTIME_API_VERSION = "1.4.1"  # the installed p4runtime protos
READ_CHUNK = 1000  # entities per ReadResponse message
# Notifications (packet-ins, digest lists, idle timeouts) waiting for one stream: a client that
# stops reading its stream loses those past this many (counted), as a switch's CPU queue would,
# instead of growing the server without bound.
STREAM_BACKLOG = 10_000
_END = object()  # stream queue sentinel: finish the StreamChannel RPC

SetAction = p4runtime_pb2.SetForwardingPipelineConfigRequest
GetType = p4runtime_pb2.GetForwardingPipelineConfigRequest


def _election_id(msg) -> int | None:
    """Uint128 election_id as an int; None when the field is unset (lower than any id)."""
    if not msg.HasField("election_id"):
        return None
    return (msg.election_id.high << 64) | msg.election_id.low


class _Session:
    """One StreamChannel: its arbitration identity and its outgoing message queue.

    The queue belongs to the server's event loop; ``send`` may be called from any thread (the
    data plane's, a timer's, the loop's own)."""

    def __init__(self, peer: str, loop: asyncio.AbstractEventLoop) -> None:
        self.peer = peer
        self.queue: asyncio.Queue[object] = asyncio.Queue()
        self.device_id: int | None = None
        self.role: str | None = None
        self.election_id: int | None = None
        self.dropped = 0  # notifications lost to STREAM_BACKLOG
        self._loop = loop

    def send(self, item: object) -> None:
        try:
            self._loop.call_soon_threadsafe(self._put, item)
        except RuntimeError:  # the loop is closed: the server has stopped
            pass

    def _put(self, item: object) -> None:
        if (isinstance(item, p4runtime_pb2.StreamMessageResponse) and item.WhichOneof("update") != "arbitration"
                and self.queue.qsize() >= STREAM_BACKLOG):
            self.dropped += 1
            if self.dropped & (self.dropped - 1) == 0:  # 1, 2, 4, 8, ...: a line now and then
                log.warning("stream %s does not read its notifications: %d dropped", self.peer, self.dropped)
            return
        self.queue.put_nowait(item)


@dataclass
class _Role:
    sessions: list[_Session] = field(default_factory=list)
    primary: _Session | None = None
    highest: int | None = None
    config: any_pb2.Any | None = None


class P4RuntimeServer:
    """A P4Runtime server for one device, driving a `Device` with a SwitchState per pipeline."""

    def __init__(self, device: Device, address: str = "127.0.0.1:9559", device_id: int = 1,
                 cpu_port: int | None = None, cert_file: str | None = None, key_file: str | None = None,
                 promote_backup_on_disconnect: bool = True, max_streams: int = 64,
                 unary_workers: int = 4) -> None:
        self.device = device
        self.address = address
        self.device_id = device_id
        self.cpu_port = cpu_port
        self.promote_backup_on_disconnect = promote_backup_on_disconnect
        self._cert_file = cert_file
        self._key_file = key_file
        # gRPC runs on one asyncio event loop (grpc.aio) in a thread of its own: an open stream
        # is a coroutine waiting there, not a thread, so idle streams take nothing from the
        # RPCs. Work that can take long (a Write batch, a Read, a pipeline push, a packet-out
        # through the pipeline) runs on a few worker threads, so the loop keeps serving the
        # streams meanwhile. Streams past max_streams are refused (RESOURCE_EXHAUSTED), and so
        # are calls past max_streams + 16 per worker in progress at once (gRPC's own limit).
        self.max_streams = max_streams
        self._streams = 0  # open StreamChannels (touched on the loop only)
        self._unary_workers = unary_workers
        self._max_rpcs = max_streams + 16 * unary_workers
        self._workers: futures.ThreadPoolExecutor | None = None
        self._packet_worker: futures.ThreadPoolExecutor | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: threading.Thread | None = None
        self._server: grpc.aio.Server | None = None
        self.port: int | None = None
        self._arb_lock = threading.RLock()
        self._roles: dict[str, _Role] = {"": _Role()}
        self._sessions: set[_Session] = set()
        self._pipe_lock = threading.Lock()  # serializes SetForwardingPipelineConfig
        self._state: SwitchState | None = None  # what Read/Write act on
        self._committed: SwitchState | None = None  # what the device runs
        self._config: p4runtime_pb2.ForwardingPipelineConfig | None = None
        self._saved: tuple[p4runtime_pb2.ForwardingPipelineConfig, SwitchState] | None = None

    # ---------------------------------------------------------------------------------------
    # lifecycle
    def start(self) -> P4RuntimeServer:
        """Bind and serve (returns once the port is bound); raises OSError if it cannot bind."""
        self._workers = futures.ThreadPoolExecutor(max_workers=self._unary_workers, thread_name_prefix="p4rt")
        self._packet_worker = futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="p4rt-packet-out")
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._loop_thread = threading.Thread(target=loop.run_forever, name="p4rt-loop", daemon=True)
        self._loop_thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self._start_server(), loop).result()
        except BaseException:
            self._close_loop()
            raise
        log.info("P4Runtime server for device %d listening on %s (port %d)",
                 self.device_id, self.address, self.port)
        return self

    async def _start_server(self) -> None:
        server = grpc.aio.server(maximum_concurrent_rpcs=self._max_rpcs)
        _add_handlers(self, server)
        if self._cert_file and self._key_file:
            with open(self._key_file, "rb") as kf, open(self._cert_file, "rb") as cf:
                creds = grpc.ssl_server_credentials([(kf.read(), cf.read())])
            port = server.add_secure_port(self.address, creds)
        else:
            port = server.add_insecure_port(self.address)
        if not port:
            raise OSError(f"cannot bind P4Runtime server to {self.address}")
        await server.start()
        self.port = port
        self._server = server

    def stop(self, grace: float = 1.0) -> None:
        """Close every stream, stop the server and the state's timers."""
        with self._arb_lock:
            for s in list(self._sessions):
                s.send(_END)
        server, loop = self._server, self._loop
        if server is not None and loop is not None and not loop.is_closed():
            asyncio.run_coroutine_threadsafe(server.stop(grace), loop).result()
            self._server = None
        self._close_loop()
        for st in {self._state, self._committed}:
            if st is not None:
                st.stop()
                st.set_notify(None)
        self.device.set_cpu_packet_handler(None)
        log.info("P4Runtime server stopped")

    def _close_loop(self) -> None:
        loop, thread = self._loop, self._loop_thread
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(loop.stop)
            if thread is not None:
                thread.join()
            loop.close()
        for pool in (self._workers, self._packet_worker):
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)

    def wait_for_termination(self, timeout: float | None = None) -> None:
        """Block until ``stop`` (from another thread) or ``timeout`` seconds."""
        if self._loop_thread is not None:
            self._loop_thread.join(timeout)

    @property
    def state(self) -> SwitchState | None:
        """The SwitchState Read/Write act on (None before any pipeline is set)."""
        return self._state

    # ---------------------------------------------------------------------------------------
    # arbitration
    def _role_update(self, role_name: str, role: _Role, session: _Session) -> p4runtime_pb2.StreamMessageResponse:
        msg = p4runtime_pb2.StreamMessageResponse()
        mau = msg.arbitration
        mau.device_id = self.device_id
        if role_name:
            mau.role.name = role_name
        if role.config is not None:
            mau.role.config.CopyFrom(role.config)
        # The spec's rule: the highest election id seen for the role (the id a backup must reach
        # to take over). BMv2 (PI) promotes backups by itself and sends the current primary's id
        # instead: after a promotion, the new primary's, lower than the one that left. With no
        # primary (only controllers without an id are left, which never become one) there is no
        # such id, and the field stays unset.
        if self.promote_backup_on_disconnect:
            eid = role.primary.election_id if role.primary is not None else None
        else:
            eid = role.highest
        if eid is not None:
            mau.election_id.high = eid >> 64
            mau.election_id.low = eid & ((1 << 64) - 1)
        if role.primary is session:
            mau.status.code = code_pb2.OK
            mau.status.message = "primary"
        elif role.primary is not None:
            mau.status.code = code_pb2.ALREADY_EXISTS
            mau.status.message = "backup: a primary exists"
        else:
            mau.status.code = code_pb2.NOT_FOUND
            mau.status.message = "backup: no primary"
        return msg

    def _notify_role(self, role_name: str, role: _Role, only: _Session | None = None) -> None:
        for s in [only] if only is not None else role.sessions:
            s.send(self._role_update(role_name, role, s))

    def _elect(self, role: _Role, sender: _Session | None) -> None:
        """Recompute the primary after `sender` announced itself (or after a stream closed)."""
        if self.promote_backup_on_disconnect:
            live = [s for s in role.sessions if s.election_id is not None]
            role.primary = max(live, key=lambda s: s.election_id) if live else None  # type: ignore[arg-type,return-value]
            if role.primary is not None and (role.highest is None or role.primary.election_id > role.highest):
                role.highest = role.primary.election_id
            return
        if sender is None:
            return
        eid = sender.election_id
        if eid is not None and (role.highest is None or eid >= role.highest):
            role.highest = eid
            role.primary = sender
        elif role.primary is sender:
            role.primary = None  # it downgraded itself

    def _arbitrate(self, session: _Session, mau: p4runtime_pb2.MasterArbitrationUpdate) -> None:
        eid = _election_id(mau)
        role_name = mau.role.name
        with self._arb_lock:
            if session.device_id is None:
                if mau.device_id != self.device_id:
                    raise not_found(f"unknown device id {mau.device_id}")
                role = self._roles.setdefault(role_name, _Role())
                if eid is not None and any(s.election_id == eid for s in role.sessions):
                    raise invalid(f"election id {eid} already used by another controller")
                session.device_id, session.role, session.election_id = mau.device_id, role_name, eid
                role.sessions.append(session)
                self._sessions.add(session)
            else:
                if mau.device_id != session.device_id:
                    raise failed_precondition("device id differs from this stream's")
                if role_name != session.role:
                    raise failed_precondition("role differs from this stream's; open a new stream")
                role = self._roles[role_name]
                if eid is not None and any(s is not session and s.election_id == eid for s in role.sessions):
                    raise invalid(f"election id {eid} already used by another controller")
                session.election_id = eid
            before = role.primary
            self._elect(role, session)
            if role.primary is session and mau.role.HasField("config"):
                role.config = any_pb2.Any()
                role.config.CopyFrom(mau.role.config)
            changed = role.primary is not before or role.primary is session
            log.info("arbitration: %s role=%r election_id=%s -> %s", session.peer, role_name, eid,
                     "primary" if role.primary is session else "backup")
            self._notify_role(role_name, role, None if changed else session)

    def _drop_session(self, session: _Session) -> None:
        with self._arb_lock:
            self._sessions.discard(session)
            if session.role is None:
                return
            role = self._roles.get(session.role)
            if role is None or session not in role.sessions:
                return
            role.sessions.remove(session)
            if role.primary is session:
                role.primary = None
                self._elect(role, None)
                log.info("arbitration: primary %s left role %r", session.peer, session.role)
                self._notify_role(session.role, role)

    def _is_primary(self, role_name: str, election_id: int | None) -> bool:
        with self._arb_lock:
            role = self._roles.get(role_name)
            return (role is not None and role.primary is not None
                    and role.primary.election_id == election_id)

    def _check_writer(self, device_id: int, role_name: str, election_id: int | None) -> None:
        """Spec order for Write / SetForwardingPipelineConfig: device, role, then primaryship."""
        if device_id != self.device_id:
            raise not_found(f"unknown device id {device_id}")
        if role_name not in self._roles:
            raise not_found(f"unknown role {role_name!r}")
        if not self._is_primary(role_name, election_id):
            raise permission_denied("not the primary controller for this role")

    def _notify(self, msg: p4runtime_pb2.StreamMessageResponse) -> None:
        """Deliver a PacketIn / DigestList / IdleTimeoutNotification to each role's primary."""
        with self._arb_lock:
            primaries = [r.primary for r in self._roles.values() if r.primary is not None]
        for p in primaries:
            p.send(msg)

    def _on_cpu_packet(self, frame: bytes) -> None:
        state = self._committed
        if state is not None:
            state.packet_in(frame)

    # ---------------------------------------------------------------------------------------
    # StreamChannel
    async def StreamChannel(self, requests: AsyncIterator[bytes],
                            context: grpc.aio.ServicerContext) -> AsyncIterator[p4runtime_pb2.StreamMessageResponse]:
        """One controller's stream: its requests are read by a task of their own, while this
        generator sends what the session's queue gets (replies, notifications, the end)."""
        if self._streams >= self.max_streams:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                f"{self.max_streams} StreamChannels are open on this device: no more")
        self._streams += 1
        session = _Session(context.peer(), asyncio.get_running_loop())
        reader = asyncio.create_task(self._read_stream(session, requests))
        try:
            while True:
                item = await session.queue.get()
                if item is _END:
                    return
                if isinstance(item, P4RTError):
                    await context.abort(item.grpc_code, item.message)
                yield item
        finally:
            self._streams -= 1
            reader.cancel()
            self._drop_session(session)

    async def _read_stream(self, session: _Session, requests: AsyncIterator[bytes]) -> None:
        loop = asyncio.get_running_loop()
        try:
            async for data in requests:
                try:
                    req = p4runtime_pb2.StreamMessageRequest.FromString(data)
                except Exception:  # noqa: BLE001 - ends the stream with INTERNAL, as a bad request
                    session.send(P4RTError(code_pb2.INTERNAL,
                                           "a stream message is not a p4.v1.StreamMessageRequest"))
                    return
                kind = req.WhichOneof("update")
                if kind == "arbitration":
                    try:
                        self._arbitrate(session, req.arbitration)
                    except P4RTError as e:
                        log.info("arbitration from %s rejected: %s", session.peer, e.message)
                        session.send(e)  # terminates the stream with this status
                        return
                elif session.device_id is None:
                    self._stream_error(session, code_pb2.FAILED_PRECONDITION,
                                       "send a MasterArbitrationUpdate first", req)
                elif kind == "packet":
                    # through the pipeline on a worker, one at a time and in order; waiting for
                    # it keeps a sender from queueing packets faster than the pipeline runs them
                    await loop.run_in_executor(self._packet_worker, self._packet_out, session, req.packet)
                elif kind == "digest_ack":
                    self._digest_ack(session, req.digest_ack)
                else:
                    self._stream_error(session, code_pb2.UNIMPLEMENTED, f"unsupported stream message {kind}", req)
        except asyncio.CancelledError:
            return  # the stream ended on the other side
        except grpc.RpcError:
            pass  # the client went away
        except Exception:
            log.exception("stream reader for %s failed", session.peer)
        session.send(_END)

    @staticmethod
    def _stream_error(session: _Session, code: int, message: str, req=None) -> None:
        msg = p4runtime_pb2.StreamMessageResponse()
        err = msg.error
        err.canonical_code = code
        err.message = message
        if req is not None:
            kind = req.WhichOneof("update")
            if kind == "packet":
                err.packet_out.packet_out.CopyFrom(req.packet)
            elif kind == "digest_ack":
                err.digest_list_ack.digest_list_ack.CopyFrom(req.digest_ack)
            elif kind == "other":
                err.other.other.CopyFrom(req.other)
        session.send(msg)

    def _packet_out(self, session: _Session, pkt: p4runtime_pb2.PacketOut) -> None:
        req = p4runtime_pb2.StreamMessageRequest(packet=pkt)
        if not self._is_primary(session.role or "", session.election_id):
            self._stream_error(session, code_pb2.PERMISSION_DENIED, "only the primary may send packet-out", req)
            return
        state = self._committed
        if state is None:
            self._stream_error(session, code_pb2.FAILED_PRECONDITION, "no pipeline committed", req)
            return
        header = state.packet_out_header
        frame = pkt.payload
        if header is not None:
            values: dict[int, int] = {}
            try:
                for md in pkt.metadata:
                    field_info = header.by_id.get(md.metadata_id)
                    if field_info is None:
                        raise invalid(f"unknown packet_out metadata id {md.metadata_id}")
                    if md.metadata_id in values:
                        raise invalid(f"packet_out metadata id {md.metadata_id} given twice")
                    values[md.metadata_id] = codec.decode(md.value, field_info[2], f"metadata {field_info[1]}")
                missing = [name for fid, name, _ in header.fields if fid not in values]
                if missing:
                    raise invalid(f"packet_out metadata missing: {', '.join(missing)}")
            except P4RTError as e:
                self._stream_error(session, code_pb2.INVALID_ARGUMENT, e.message, req)
                return
            frame = header.pack(values) + pkt.payload
        try:
            self.device.inject_packet_out(frame)
        except Exception as e:  # the device's fault, reported to the sender only
            log.exception("inject_packet_out failed")
            self._stream_error(session, code_pb2.INTERNAL, f"packet-out failed: {e}", req)

    def _digest_ack(self, session: _Session, ack: p4runtime_pb2.DigestListAck) -> None:
        state = self._state
        if state is None or ack.digest_id not in state.digests.types:
            self._stream_error(session, code_pb2.INVALID_ARGUMENT, f"unknown digest id {ack.digest_id}",
                               p4runtime_pb2.StreamMessageRequest(digest_ack=ack))
            return
        state.digests.ack(ack.digest_id, ack.list_id)

    # ---------------------------------------------------------------------------------------
    # pipeline config
    def _build_state(self, request) -> SwitchState:
        if not request.HasField("config") or not request.config.HasField("p4info"):
            raise invalid("a ForwardingPipelineConfig with a P4Info is required")
        try:
            state = SwitchState(request.config.p4info)
            self.device.verify_pipeline(request.config.p4info, request.config.p4_device_config)
        except PipelineConfigError as e:
            raise invalid(f"pipeline config rejected: {e}") from e
        return state

    def _set_pipeline(self, request) -> None:
        self._check_writer(request.device_id, request.role, _election_id(request))
        action = request.action
        with self._pipe_lock:
            if action == SetAction.VERIFY:
                self._build_state(request)
            elif action == SetAction.VERIFY_AND_SAVE:
                state = self._build_state(request)
                self._saved = (request.config, state)
                self._install_for_rpc(request.config, state)
            elif action == SetAction.VERIFY_AND_COMMIT:
                state = self._build_state(request)
                self._commit(request.config, state)
            elif action == SetAction.COMMIT:
                if request.HasField("config"):
                    raise invalid("COMMIT takes no config")
                if self._saved is None:
                    raise not_found("no saved config to commit")
                config, state = self._saved
                self._commit(config, state)
            elif action == SetAction.RECONCILE_AND_COMMIT:
                state = self._build_state(request)
                old = self._state
                if old is not None:
                    # Dry run into a scratch state first, so a config that cannot keep the
                    # current forwarding state is rejected before anything changes.
                    errors = migrate_state(old, SwitchState(request.config.p4info))
                    if errors:
                        raise invalid(f"cannot preserve forwarding state: {errors[0].message}")
                self._commit(request.config, state, migrate_from=old)
            else:
                raise invalid("unspecified SetForwardingPipelineConfig action")

    def install_pipeline(self, config: p4runtime_pb2.ForwardingPipelineConfig) -> None:
        """Commit a pipeline from the switch's own start-up (a program given on the command
        line), as if a controller had sent VERIFY_AND_COMMIT; raises P4RTError if rejected."""
        request = p4runtime_pb2.SetForwardingPipelineConfigRequest()
        request.config.CopyFrom(config)
        with self._pipe_lock:
            self._commit(config, self._build_state(request))

    def _install_for_rpc(self, config, state: SwitchState) -> None:
        stored = p4runtime_pb2.ForwardingPipelineConfig()
        stored.CopyFrom(config)
        old = self._state
        self._state = state
        self._config = stored
        state.set_notify(self._notify)
        if old is not None and old is not state and old is not self._committed:
            old.stop()
            old.set_notify(None)

    def _commit(self, config, state: SwitchState, migrate_from: SwitchState | None = None) -> None:
        try:
            self.device.commit_pipeline(config.p4info, config.p4_device_config, state)
        except PipelineConfigError as e:
            raise invalid(f"pipeline config rejected: {e}") from e
        if migrate_from is not None:
            for err in migrate_state(migrate_from, state):
                log.warning("reconcile: entity not carried over: %s", err.message)
        self.device.set_cpu_packet_handler(self._on_cpu_packet)
        old_committed = self._committed
        self._install_for_rpc(config, state)
        self._committed = state
        self._saved = None
        state.start()
        if old_committed is not None and old_committed is not state:
            old_committed.stop()
            old_committed.set_notify(None)
        log.info("pipeline committed: %d tables, cookie %s", len(state.tables),
                 config.cookie.cookie if config.HasField("cookie") else None)

    def get_pipeline(self, request: p4runtime_pb2.GetForwardingPipelineConfigRequest
                     ) -> p4runtime_pb2.GetForwardingPipelineConfigResponse:
        if request.device_id != self.device_id:
            raise not_found(f"unknown device id {request.device_id}")
        resp = p4runtime_pb2.GetForwardingPipelineConfigResponse()
        config = self._config
        if config is None:
            return resp
        rtype = request.response_type
        out = resp.config
        if config.HasField("cookie"):
            out.cookie.CopyFrom(config.cookie)
        if rtype in (GetType.ALL, GetType.P4INFO_AND_COOKIE):
            out.p4info.CopyFrom(config.p4info)
        if rtype in (GetType.ALL, GetType.DEVICE_CONFIG_AND_COOKIE):
            out.p4_device_config = config.p4_device_config
        return resp

    # ---------------------------------------------------------------------------------------
    # Write / Read / Capabilities
    def write(self, request: bytes) -> None:
        """A WriteRequest's bytes, applied; raises P4RTError for the whole request, or
        _BatchFailure with every update's result when some failed."""
        try:
            batch = wire.decode_write_request(request)
        except wire.Fallback:
            batch = wire.WriteBatch.from_proto(_decode(p4runtime_pb2.WriteRequest, request))
        self._check_writer(batch.device_id, batch.role, batch.election_id)
        state = self._state
        if state is None:
            raise failed_precondition("no forwarding pipeline config set")
        if batch.atomicity != p4runtime_pb2.WriteRequest.CONTINUE_ON_ERROR:
            raise unimplemented("only CONTINUE_ON_ERROR atomicity is supported")
        results: list[P4RTError | None] = []
        failed = False
        cache: entities.ActionCache = {}  # this batch's validated actions
        apply = entities.apply_write
        # The whole batch under the state lock: batches and reads are serializable.
        with state.lock:
            for update in batch.updates:
                try:
                    apply(state, update, cache)
                    results.append(None)
                except P4RTError as e:
                    results.append(e)
                    failed = True
                except Exception as e:  # a bug here must not take the batch down
                    log.exception("Write update failed")
                    results.append(P4RTError(code_pb2.INTERNAL, f"internal error: {e}"))
                    failed = True
        if failed:
            raise _BatchFailure(results, "Write failure.")

    def read(self, request: p4runtime_pb2.ReadRequest) -> tuple[Iterator[bytes], list[P4RTError | None]]:
        """ReadResponse bytes (lazily encoded: entries are picked now, under the state lock) and
        each entity's result."""
        if request.device_id != self.device_id:
            raise not_found(f"unknown device id {request.device_id}")
        state = self._state
        if state is None:
            raise failed_precondition("no forwarding pipeline config set")
        results: list[P4RTError | None] = []
        streams = []
        with state.lock:
            for entity in request.entities:
                try:
                    streams.append(wire.read_entity_encoded(state, entity))
                    results.append(None)
                except P4RTError as e:
                    results.append(e)
        # Responses go out as ReadResponse wire bytes: encoding table entries directly is
        # several times cheaper than building protobuf messages for them.
        return wire.read_response_chunks(streams, READ_CHUNK), results


class _BatchFailure(Exception):
    """Some updates of a Write (or entities of a Read) failed: spec "Error Reporting"."""

    def __init__(self, results: list[P4RTError | None], message: str) -> None:
        super().__init__(message)
        self.results = results
        self.message = message

    def report(self, context: grpc.aio.ServicerContext) -> None:
        """UNKNOWN overall, one p4.v1.Error per item in order (OK included)."""
        status = status_pb2.Status(code=code_pb2.UNKNOWN, message=self.message)
        for r in self.results:
            err = p4runtime_pb2.Error()
            if r is None:
                err.canonical_code = code_pb2.OK
            else:
                err.canonical_code = r.code
                err.message = r.message
            status.details.add().Pack(err)
        context.set_code(grpc.StatusCode.UNKNOWN)
        context.set_details(self.message)
        context.set_trailing_metadata((("grpc-status-details-bin", status.SerializeToString()),))


def _decode(message_type: Any, data: bytes) -> Any:
    """``data`` as ``message_type``; INTERNAL when it is not one, as a gRPC server answers a
    request it cannot deserialize (BMv2's does). p4sim decodes requests itself: a request grpcio
    fails to deserialize is kept by grpcio for good (~20 KB each)."""
    try:
        return message_type.FromString(data)
    except Exception:  # noqa: BLE001 - any decoding failure is the client's bad request
        raise P4RTError(code_pb2.INTERNAL, f"the request is not a {message_type.DESCRIPTOR.full_name}") from None


def _unary(server: P4RuntimeServer, work: Callable[[bytes], Any], inline: bool = False) -> Any:
    """An aio handler running ``work`` (request bytes -> response) on a worker thread (or on the
    loop, for what is always quick), its P4RTError the call's status."""
    async def handler(data: bytes, context: grpc.aio.ServicerContext) -> Any:
        try:
            if inline:
                return work(data)
            return await asyncio.get_running_loop().run_in_executor(server._workers, work, data)
        except P4RTError as e:
            await context.abort(e.grpc_code, e.message)
        except _BatchFailure as e:
            e.report(context)
            return p4runtime_pb2.WriteResponse()
        except Exception as e:  # a bug of ours: INTERNAL with what went wrong, and a log entry
            log.exception("P4Runtime request failed")
            await context.abort(grpc.StatusCode.INTERNAL, f"internal error: {e}")
    return handler


def _add_handlers(server: P4RuntimeServer, grpc_server: grpc.aio.Server) -> None:
    """What p4runtime_pb2_grpc.add_P4RuntimeServicer_to_server would register, with two changes:
    every request arrives as bytes and is decoded here (a request grpcio fails to deserialize
    would leak, and Write's table entries are read by wire.py without building pure-Python
    protobuf messages), and Read yields encoded responses (the dominant cost of a large read)."""
    pb = p4runtime_pb2

    def set_pipeline(data: bytes) -> Any:
        server._set_pipeline(_decode(pb.SetForwardingPipelineConfigRequest, data))
        return pb.SetForwardingPipelineConfigResponse()

    def write(data: bytes) -> Any:
        server.write(data)
        return pb.WriteResponse()

    async def read(data: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        try:
            chunks, results = await loop.run_in_executor(
                server._workers, lambda: server.read(_decode(pb.ReadRequest, data)))
        except P4RTError as e:
            await context.abort(e.grpc_code, e.message)
        while (chunk := await loop.run_in_executor(server._workers, next, chunks, None)) is not None:
            yield chunk
        if any(r is not None for r in results):
            _BatchFailure(results, "Read failure.").report(context)

    handlers = {
        "Write": grpc.unary_unary_rpc_method_handler(
            _unary(server, write), response_serializer=pb.WriteResponse.SerializeToString),
        "Read": grpc.unary_stream_rpc_method_handler(read),  # Read yields ReadResponse bytes
        "SetForwardingPipelineConfig": grpc.unary_unary_rpc_method_handler(
            _unary(server, set_pipeline),
            response_serializer=pb.SetForwardingPipelineConfigResponse.SerializeToString),
        "GetForwardingPipelineConfig": grpc.unary_unary_rpc_method_handler(
            _unary(server, lambda data: server.get_pipeline(_decode(pb.GetForwardingPipelineConfigRequest, data))),
            response_serializer=pb.GetForwardingPipelineConfigResponse.SerializeToString),
        "StreamChannel": grpc.stream_stream_rpc_method_handler(
            server.StreamChannel, response_serializer=pb.StreamMessageResponse.SerializeToString),
        "Capabilities": grpc.unary_unary_rpc_method_handler(
            _unary(server, lambda data: _capabilities(_decode(pb.CapabilitiesRequest, data)), inline=True),
            response_serializer=pb.CapabilitiesResponse.SerializeToString),
    }
    grpc_server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("p4.v1.P4Runtime", handlers),))


def _capabilities(_request: p4runtime_pb2.CapabilitiesRequest) -> p4runtime_pb2.CapabilitiesResponse:
    return p4runtime_pb2.CapabilitiesResponse(p4runtime_api_version=P4RUNTIME_API_VERSION)
