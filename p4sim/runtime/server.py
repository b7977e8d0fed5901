"""P4Runtime gRPC server for p4sim: arbitration, pipeline config, Write/Read, stream I/O.

Serves the P4Runtime API (protos of p4runtime 1.4.1) the way BMv2's simple_switch_grpc does, so
controllers and p4runtime-shell work unchanged against either. Packets are not interpreted
here: the `Device` (device.py) runs the pipeline; this module keeps the SwitchState the device
reads, moves packet-outs to the device and packet-ins / digests / idle notifications from the
state to the primary client(s).

Arbitration follows the spec's "Client Arbitration and Controller Replication" rules, per
(device_id, role). One choice the spec leaves to BMv2 compatibility: when the primary's stream
closes, BMv2 (PI) promotes the live controller with the highest election id; the spec instead
leaves the role without a primary until a controller re-sends an arbitration update with an id
>= the highest seen. `promote_backup_on_disconnect` picks (default True = BMv2's behaviour).

Roles: named roles are separate arbitration domains; role.config is opaque to us and grants
full pipeline access (we define no partitioning scheme). Notifications go to each role's primary.

Write atomicity: CONTINUE_ON_ERROR only; ROLLBACK_ON_ERROR and DATAPLANE_ATOMIC -> UNIMPLEMENTED
(both optional in the spec).
"""

from __future__ import annotations

import logging
import queue
import threading
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, status_pb2
from p4.v1 import p4runtime_pb2, p4runtime_pb2_grpc

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
from p4sim.runtime.state import SwitchState

log = logging.getLogger(__name__)

P4RUNTIME_API_VERSION = "1.4.1"  # the installed p4runtime protos
READ_CHUNK = 1000  # entities per ReadResponse message
_END = object()  # stream queue sentinel: finish the StreamChannel RPC

SetAction = p4runtime_pb2.SetForwardingPipelineConfigRequest
GetType = p4runtime_pb2.GetForwardingPipelineConfigRequest


def _election_id(msg) -> int | None:
    """Uint128 election_id as an int; None when the field is unset (lower than any id)."""
    if not msg.HasField("election_id"):
        return None
    return (msg.election_id.high << 64) | msg.election_id.low


class _Session:
    """One StreamChannel: its arbitration identity and its outgoing message queue."""

    def __init__(self, peer: str) -> None:
        self.peer = peer
        self.queue: queue.Queue = queue.Queue()
        self.device_id: int | None = None
        self.role: str | None = None
        self.election_id: int | None = None

    def send(self, item: object) -> None:
        self.queue.put(item)


@dataclass
class _Role:
    sessions: list[_Session] = field(default_factory=list)
    primary: _Session | None = None
    highest: int | None = None
    config: any_pb2.Any | None = None


class P4RuntimeServer(p4runtime_pb2_grpc.P4RuntimeServicer):
    """A P4Runtime server for one device, driving a `Device` with a SwitchState per pipeline."""

    def __init__(self, device: Device, address: str = "127.0.0.1:9559", device_id: int = 1,
                 cpu_port: int | None = None, cert_file: str | None = None, key_file: str | None = None,
                 promote_backup_on_disconnect: bool = True, max_streams: int = 16,
                 unary_workers: int = 16) -> None:
        self.device = device
        self.address = address
        self.device_id = device_id
        self.cpu_port = cpu_port
        self.promote_backup_on_disconnect = promote_backup_on_disconnect
        self._cert_file = cert_file
        self._key_file = key_file
        # A stream holds one of the server's worker threads for its whole life: the pool has room
        # for max_streams of them and unary_workers more, and a stream past max_streams is refused
        # (RESOURCE_EXHAUSTED), so that idle streams can never take every thread from the RPCs.
        self.max_streams = max_streams
        self._stream_slots = threading.BoundedSemaphore(max_streams)
        self._max_workers = max_streams + unary_workers
        self._server: grpc.Server | None = None
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
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=self._max_workers,
                                                        thread_name_prefix="p4rt"))
        _add_servicer(self, server)
        if self._cert_file and self._key_file:
            with open(self._key_file, "rb") as kf, open(self._cert_file, "rb") as cf:
                creds = grpc.ssl_server_credentials([(kf.read(), cf.read())])
            self.port = server.add_secure_port(self.address, creds)
        else:
            self.port = server.add_insecure_port(self.address)
        if not self.port:
            raise OSError(f"cannot bind P4Runtime server to {self.address}")
        server.start()
        self._server = server
        log.info("P4Runtime server for device %d listening on %s (port %d)",
                 self.device_id, self.address, self.port)
        return self

    def stop(self, grace: float = 1.0) -> None:
        """Close every stream, stop the server and the state's timers."""
        with self._arb_lock:
            for s in list(self._sessions):
                s.send(_END)
        if self._server is not None:
            self._server.stop(grace).wait()
            self._server = None
        for st in {self._state, self._committed}:
            if st is not None:
                st.stop()
                st.set_notify(None)
        self.device.set_cpu_packet_handler(None)
        log.info("P4Runtime server stopped")

    def wait_for_termination(self, timeout: float | None = None) -> None:
        if self._server is not None:
            self._server.wait_for_termination(timeout)

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
        if role.highest is not None:
            mau.election_id.high = role.highest >> 64
            mau.election_id.low = role.highest & ((1 << 64) - 1)
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
    def StreamChannel(self, request_iterator, context):
        if not self._stream_slots.acquire(blocking=False):
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                          f"{self.max_streams} StreamChannels are open on this device: no more")
        try:
            yield from self._stream(request_iterator, context)
        finally:
            self._stream_slots.release()

    def _stream(self, request_iterator, context):
        session = _Session(context.peer())
        context.add_callback(lambda: session.send(_END))  # the RPC ended (cancel, deadline, stop)
        reader = threading.Thread(target=self._read_stream, args=(session, request_iterator),
                                  name="p4rt-stream-reader", daemon=True)
        reader.start()
        try:
            while True:
                item = session.queue.get()
                if item is _END:
                    return
                if isinstance(item, P4RTError):
                    context.abort(item.grpc_code, item.message)
                yield item
        finally:
            self._drop_session(session)

    def _read_stream(self, session: _Session, request_iterator) -> None:
        try:
            for req in request_iterator:
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
                    self._packet_out(session, req.packet)
                elif kind == "digest_ack":
                    self._digest_ack(session, req.digest_ack)
                else:
                    self._stream_error(session, code_pb2.UNIMPLEMENTED, f"unsupported stream message {kind}", req)
        except grpc.RpcError:
            pass  # the client went away; the RPC callback finishes the stream
        except _Undecodable as e:
            session.send(P4RTError(code_pb2.INTERNAL, str(e)))  # ends the stream with it, as a bad request
        except Exception:
            log.exception("stream reader for %s failed", session.peer)
        finally:
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
    def SetForwardingPipelineConfig(self, request, context):
        try:
            self._set_pipeline(request)
        except P4RTError as e:
            context.abort(e.grpc_code, e.message)
        return p4runtime_pb2.SetForwardingPipelineConfigResponse()

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

    def GetForwardingPipelineConfig(self, request, context):
        if request.device_id != self.device_id:
            context.abort(grpc.StatusCode.NOT_FOUND, f"unknown device id {request.device_id}")
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
    def Write(self, request, context):
        """Write RPC. `request` is the raw WriteRequest bytes (see _add_servicer) or a message."""
        if isinstance(request, bytes):
            try:
                batch = wire.decode_write_request(request)
            except wire.Fallback:
                try:
                    batch = wire.WriteBatch.from_proto(p4runtime_pb2.WriteRequest.FromString(request))
                except Exception:  # what grpc answers when a request deserializer fails
                    log.exception("Write: cannot parse the request")
                    context.abort(grpc.StatusCode.INTERNAL, "Exception deserializing request!")
        else:
            batch = wire.WriteBatch.from_proto(request)
        try:
            self._check_writer(batch.device_id, batch.role, batch.election_id)
            state = self._state
            if state is None:
                raise failed_precondition("no forwarding pipeline config set")
            if batch.atomicity != p4runtime_pb2.WriteRequest.CONTINUE_ON_ERROR:
                raise unimplemented("only CONTINUE_ON_ERROR atomicity is supported")
        except P4RTError as e:
            context.abort(e.grpc_code, e.message)
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
            self._set_batch_status(context, results, "Write failure.")
        return p4runtime_pb2.WriteResponse()

    @staticmethod
    def _set_batch_status(context, results: list[P4RTError | None], message: str) -> None:
        """Spec "Error Reporting": UNKNOWN overall, one p4.v1.Error per item in order (OK included)."""
        status = status_pb2.Status(code=code_pb2.UNKNOWN, message=message)
        for r in results:
            err = p4runtime_pb2.Error()
            if r is None:
                err.canonical_code = code_pb2.OK
            else:
                err.canonical_code = r.code
                err.message = r.message
            status.details.add().Pack(err)
        context.set_code(grpc.StatusCode.UNKNOWN)
        context.set_details(message)
        context.set_trailing_metadata((("grpc-status-details-bin", status.SerializeToString()),))

    def Read(self, request, context):
        if request.device_id != self.device_id:
            context.abort(grpc.StatusCode.NOT_FOUND, f"unknown device id {request.device_id}")
        state = self._state
        if state is None:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, "no forwarding pipeline config set")
        results: list[P4RTError | None] = []
        streams = []
        with state.lock:
            for entity in request.entities:
                try:
                    streams.append(wire.read_entity_encoded(state, entity))
                    results.append(None)
                except P4RTError as e:
                    results.append(e)
        # Responses go out as ReadResponse wire bytes (see _add_servicer): encoding table
        # entries directly is several times cheaper than building protobuf messages for them.
        yield from wire.read_response_chunks(streams, READ_CHUNK)
        if any(r is not None for r in results):
            self._set_batch_status(context, results, "Read failure.")

    def Capabilities(self, request, context):
        return p4runtime_pb2.CapabilitiesResponse(p4runtime_api_version=P4RUNTIME_API_VERSION)


class _Undecodable(Exception):
    """A stream message that is not a StreamMessageRequest."""


def _decode(message_type: Any, data: bytes, context: Any) -> Any:
    """``data`` as ``message_type``; INTERNAL when it is not one, as a gRPC server answers a
    request it cannot deserialize (BMv2's does). p4sim decodes requests itself: a request grpcio
    fails to deserialize is kept by grpcio for good (~20 KB each)."""
    try:
        return message_type.FromString(data)
    except Exception:  # noqa: BLE001 - any decoding failure is the client's bad request
        context.abort(grpc.StatusCode.INTERNAL, f"the request is not a {message_type.DESCRIPTOR.full_name}")


def _unary(method: Any, message_type: Any) -> Any:
    def handler(data: bytes, context: Any) -> Any:
        return method(_decode(message_type, data, context), context)
    return handler


def _unary_stream(method: Any, message_type: Any) -> Any:
    def handler(data: bytes, context: Any) -> Any:
        yield from method(_decode(message_type, data, context), context)
    return handler


def _stream_messages(request_iterator: Any) -> Any:
    for data in request_iterator:
        try:
            yield p4runtime_pb2.StreamMessageRequest.FromString(data)
        except Exception:  # noqa: BLE001 - ends the stream with INTERNAL
            raise _Undecodable("a stream message is not a p4.v1.StreamMessageRequest") from None


def _add_servicer(servicer: P4RuntimeServer, server: grpc.Server) -> None:
    """Register like p4runtime_pb2_grpc.add_P4RuntimeServicer_to_server, with two changes: every
    request arrives as bytes and is decoded here (a request grpcio fails to deserialize would
    leak, and Write's table entries are read by wire.py without building pure-Python protobuf
    messages), and Read yields encoded responses (the dominant cost of a large read)."""
    pb = p4runtime_pb2
    handlers = {
        "Write": grpc.unary_unary_rpc_method_handler(
            servicer.Write, request_deserializer=None,
            response_serializer=pb.WriteResponse.SerializeToString),
        "Read": grpc.unary_stream_rpc_method_handler(
            _unary_stream(servicer.Read, pb.ReadRequest), request_deserializer=None,
            response_serializer=None),  # Read yields ReadResponse bytes
        "SetForwardingPipelineConfig": grpc.unary_unary_rpc_method_handler(
            _unary(servicer.SetForwardingPipelineConfig, pb.SetForwardingPipelineConfigRequest),
            request_deserializer=None,
            response_serializer=pb.SetForwardingPipelineConfigResponse.SerializeToString),
        "GetForwardingPipelineConfig": grpc.unary_unary_rpc_method_handler(
            _unary(servicer.GetForwardingPipelineConfig, pb.GetForwardingPipelineConfigRequest),
            request_deserializer=None,
            response_serializer=pb.GetForwardingPipelineConfigResponse.SerializeToString),
        "StreamChannel": grpc.stream_stream_rpc_method_handler(
            lambda it, context: servicer.StreamChannel(_stream_messages(it), context), request_deserializer=None,
            response_serializer=pb.StreamMessageResponse.SerializeToString),
        "Capabilities": grpc.unary_unary_rpc_method_handler(
            _unary(servicer.Capabilities, pb.CapabilitiesRequest), request_deserializer=None,
            response_serializer=pb.CapabilitiesResponse.SerializeToString),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("p4.v1.P4Runtime", handlers),))


def migrate_state(old: SwitchState, new: SwitchState) -> list[P4RTError]:
    """Replay `old`'s control-plane state into `new` (RECONCILE_AND_COMMIT); returns what failed.

    Program-declared (const) entries are skipped: the new pipeline's loader installs its own.
    """
    errors: list[P4RTError] = []
    updates: list[p4runtime_pb2.Update] = []
    for request in entities.wildcard_read_all():
        kind = request.WhichOneof("entity")
        if kind in ("direct_counter_entry", "direct_meter_entry"):
            continue  # carried inside the table entries
        if kind == "table_entry":
            request.table_entry.counter_data.SetInParent()
            request.table_entry.meter_config.SetInParent()
        with old.lock:
            found = list(entities.read_entity(old, request))
        for ent in found:
            utype = p4runtime_pb2.Update.MODIFY
            if kind == "table_entry":
                if ent.table_entry.is_const:
                    continue
                ent.table_entry.is_const = False
                utype = p4runtime_pb2.Update.INSERT
            elif kind in ("packet_replication_engine_entry", "digest_entry"):
                utype = p4runtime_pb2.Update.INSERT
            updates.append(p4runtime_pb2.Update(type=utype, entity=ent))
    for table in old.tables.values():
        if table.default.action != table.initial_default and not table.default_is_const:
            ent = p4runtime_pb2.Entity()
            ent.table_entry.CopyFrom(entities.table_entry_to_proto(old, table, table.default, counter=True))
            updates.append(p4runtime_pb2.Update(type=p4runtime_pb2.Update.MODIFY, entity=ent))
    with new.lock:
        for update in updates:
            try:
                entities.apply_update(new, update)
            except P4RTError as e:
                errors.append(e)
    return errors
