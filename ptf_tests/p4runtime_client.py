"""A small typed P4Runtime client for the PTF suite: arbitration, pipeline push, entries by name.

Everything is addressed by the names in the P4Info (tables, match fields, actions, params,
counters, controller packet metadata); values may be ints, dotted IPv4 strings, colon MAC
strings or bytes and are encoded as P4Runtime canonical byte strings. The client remembers
every entity it inserted so a test can remove exactly what it added (:meth:`cleanup`).
Stream messages (packet-ins, idle-timeout notifications, digests) are read by a thread and
queued per kind.
"""

from __future__ import annotations

import ipaddress
import logging
import queue
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import text_format
from p4.config.v1 import p4info_pb2
from p4.v1 import p4runtime_pb2, p4runtime_pb2_grpc

log = logging.getLogger(__name__)

Value = int | str | bytes


class P4RuntimeError(RuntimeError):
    """The switch refused a request, or did not answer in time."""


# --- values -------------------------------------------------------------------------------------

def to_int(value: Value) -> int:
    """An int from an int, bytes (big-endian), 'a.b.c.d' or 'aa:bb:cc:dd:ee:ff'."""
    if isinstance(value, int):
        return value
    if isinstance(value, bytes):
        return int.from_bytes(value, "big")
    if ":" in value:
        return int(value.replace(":", ""), 16)
    if value.count(".") == 3:
        return int(ipaddress.IPv4Address(value))
    return int(value, 0)


def encode(value: Value, bitwidth: int) -> bytes:
    """The canonical P4Runtime byte string of ``value`` (no leading zero bytes, at least one)."""
    n = to_int(value)
    if n < 0 or n >= 1 << bitwidth:
        raise ValueError(f"{value!r} does not fit in {bitwidth} bits")
    return n.to_bytes(max(1, (n.bit_length() + 7) // 8), "big")


def decode(data: bytes) -> int:
    return int.from_bytes(data, "big")


# --- P4Info -------------------------------------------------------------------------------------

class P4Info:
    """Name lookups over a P4Info message. Names may be full (``SpliceIngress.flows.flows``) or
    the alias / last components (``flows``) when that is unambiguous."""

    def __init__(self, info: p4info_pb2.P4Info) -> None:
        self.proto = info
        self.tables = self._index(info.tables)
        self.actions = self._index(info.actions)
        self.counters = self._index(info.counters)
        self.direct_counters = self._index(info.direct_counters)
        self.packet_metadata = self._index(info.controller_packet_metadata)
        self.digests = self._index(info.digests)
        self._by_id: dict[int, Any] = {}
        for group in (info.tables, info.actions, info.counters, info.direct_counters, info.digests):
            for obj in group:
                self._by_id[obj.preamble.id] = obj

    @classmethod
    def from_file(cls, path: str | Path) -> P4Info:
        info = p4info_pb2.P4Info()
        text_format.Parse(Path(path).read_text(), info)
        return cls(info)

    @staticmethod
    def _index(objs: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        ambiguous: set[str] = set()
        for obj in objs:
            names = {obj.preamble.name, obj.preamble.alias}
            parts = obj.preamble.name.split(".")
            names.update(".".join(parts[i:]) for i in range(1, len(parts)))
            for name in names:
                if name in out and out[name] is not obj and name != obj.preamble.name:
                    ambiguous.add(name)
                out.setdefault(name, obj)
            out[obj.preamble.name] = obj
        for name in ambiguous:
            if out[name].preamble.name != name:
                del out[name]
        return out

    @staticmethod
    def _get(index: dict[str, Any], kind: str, name: str) -> Any:
        try:
            return index[name]
        except KeyError:
            raise KeyError(f"no {kind} named {name!r} in the P4Info") from None

    def table(self, name: str) -> p4info_pb2.Table:
        return self._get(self.tables, "table", name)

    def action(self, name: str) -> p4info_pb2.Action:
        return self._get(self.actions, "action", name)

    def counter(self, name: str) -> p4info_pb2.Counter:
        return self._get(self.counters, "counter", name)

    def direct_counter(self, name: str) -> p4info_pb2.DirectCounter:
        return self._get(self.direct_counters, "direct counter", name)

    def digest(self, name: str) -> p4info_pb2.Digest:
        return self._get(self.digests, "digest", name)

    def digest_members(self, name: str) -> list[str]:
        """Member names, in order, of the struct a digest carries."""
        struct = self.digest(name).type_spec.struct.name
        return [m.name for m in self.proto.type_info.structs[struct].members]

    def name_of(self, obj_id: int) -> str:
        return self._by_id[obj_id].preamble.name

    def action_for_table(self, table: p4info_pb2.Table, name: str) -> p4info_pb2.Action:
        """The action ``name`` as one of ``table``'s actions (short names resolve in its scope)."""
        ids = {ref.id for ref in table.action_refs}
        cands = [a for a in self.proto.actions if a.preamble.id in ids
                 and (a.preamble.name == name or a.preamble.alias == name
                      or a.preamble.name.endswith("." + name))]
        if len(cands) != 1:
            raise KeyError(f"table {table.preamble.name} has {len(cands)} actions named {name!r}")
        return cands[0]


# --- stream -------------------------------------------------------------------------------------

@dataclass
class PacketIn:
    payload: bytes
    metadata: dict[str, int]


@dataclass
class _Stream:
    requests: queue.Queue = field(default_factory=queue.Queue)
    arbitration: queue.Queue = field(default_factory=queue.Queue)
    packet_ins: queue.Queue = field(default_factory=queue.Queue)
    idle: queue.Queue = field(default_factory=queue.Queue)
    digests: queue.Queue = field(default_factory=queue.Queue)
    errors: queue.Queue = field(default_factory=queue.Queue)

    def request_iter(self) -> Iterator[p4runtime_pb2.StreamMessageRequest]:
        while True:
            item = self.requests.get()
            if item is None:
                return
            yield item


class P4RuntimeClient:
    """One primary controller session on one device."""

    def __init__(self, grpc_addr: str, device_id: int = 1, election_id: int = 1) -> None:
        self.grpc_addr = grpc_addr
        self.device_id = device_id
        self.election_id = election_id
        self.p4info: P4Info | None = None
        self._channel: grpc.Channel | None = None
        self._stub: p4runtime_pb2_grpc.P4RuntimeStub | None = None
        self._stream = _Stream()
        self._reader: threading.Thread | None = None
        # what this client inserted, in order, for cleanup()
        self._inserted: list[p4runtime_pb2.Entity] = []

    # connection ------------------------------------------------------------------------------
    def connect(self, timeout: float = 20.0) -> None:
        self._channel = grpc.insecure_channel(self.grpc_addr)
        grpc.channel_ready_future(self._channel).result(timeout=timeout)
        self._stub = p4runtime_pb2_grpc.P4RuntimeStub(self._channel)
        responses = self._stub.StreamChannel(self._stream.request_iter())
        self._reader = threading.Thread(target=self._read_stream, args=(responses,),
                                        name="p4rt-stream", daemon=True)
        self._reader.start()
        req = p4runtime_pb2.StreamMessageRequest()
        req.arbitration.device_id = self.device_id
        req.arbitration.election_id.low = self.election_id
        self._stream.requests.put(req)
        try:
            arb = self._stream.arbitration.get(timeout=timeout)
        except queue.Empty:
            raise P4RuntimeError("no arbitration answer from the switch") from None
        if arb.status.code != 0:
            raise P4RuntimeError(f"not primary: {arb.status.message}")

    def _read_stream(self, responses: Iterator[p4runtime_pb2.StreamMessageResponse]) -> None:
        try:
            for msg in responses:
                kind = msg.WhichOneof("update")
                if kind == "arbitration":
                    self._stream.arbitration.put(msg.arbitration)
                elif kind == "packet":
                    self._stream.packet_ins.put(msg.packet)
                elif kind == "idle_timeout_notification":
                    self._stream.idle.put(msg.idle_timeout_notification)
                elif kind == "digest":
                    self._stream.digests.put(msg.digest)
                elif kind == "error":
                    self._stream.errors.put(msg.error)
                    log.warning("stream error from the switch: %s", msg.error)
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.CANCELLED:
                log.warning("stream ended: %s", exc)

    def close(self) -> None:
        self._stream.requests.put(None)
        if self._channel is not None:
            self._channel.close()
        if self._reader is not None:
            self._reader.join(timeout=5)

    @property
    def stub(self) -> p4runtime_pb2_grpc.P4RuntimeStub:
        if self._stub is None:
            raise P4RuntimeError("not connected")
        return self._stub

    @property
    def info(self) -> P4Info:
        if self.p4info is None:
            raise P4RuntimeError("no pipeline: call set_pipeline() first")
        return self.p4info

    # pipeline --------------------------------------------------------------------------------
    def set_pipeline(self, p4info_path: str | Path, config_path: str | Path) -> None:
        info = P4Info.from_file(p4info_path)
        req = p4runtime_pb2.SetForwardingPipelineConfigRequest(
            device_id=self.device_id,
            action=p4runtime_pb2.SetForwardingPipelineConfigRequest.VERIFY_AND_COMMIT)
        req.election_id.low = self.election_id
        req.config.p4info.CopyFrom(info.proto)
        req.config.p4_device_config = Path(config_path).read_bytes()
        self.stub.SetForwardingPipelineConfig(req)
        self.p4info = info

    # building entities -----------------------------------------------------------------------
    def table_entry(self, table: str, match: Mapping[str, Any] | None = None, action: str | None = None,
                    params: Mapping[str, Value] | None = None, *, priority: int = 0,
                    idle_timeout_ns: int = 0) -> p4runtime_pb2.TableEntry:
        """A TableEntry from names. Match values: exact ``v``; lpm ``(v, prefix_len)`` or
        ``"a.b.c.d/len"``; ternary ``(v, mask)``; optional ``v``. An absent match is the
        default entry."""
        t = self.info.table(table)
        te = p4runtime_pb2.TableEntry(table_id=t.preamble.id, priority=priority,
                                      idle_timeout_ns=idle_timeout_ns)
        fields = {mf.name: mf for mf in t.match_fields}
        if match is None:
            te.is_default_action = True
        else:
            for name, value in match.items():
                mf = fields.get(name)
                if mf is None:
                    raise KeyError(f"table {t.preamble.name} has no match field {name!r}")
                fm = te.match.add(field_id=mf.id)
                kind = mf.match_type
                if kind == p4info_pb2.MatchField.EXACT:
                    fm.exact.value = encode(value, mf.bitwidth)
                elif kind == p4info_pb2.MatchField.LPM:
                    if isinstance(value, str) and "/" in value:
                        addr, plen = value.split("/")
                        value = (addr, int(plen))
                    v, plen = value
                    n = to_int(v) & (((1 << mf.bitwidth) - 1) ^ ((1 << (mf.bitwidth - plen)) - 1))
                    fm.lpm.value = encode(n, mf.bitwidth)
                    fm.lpm.prefix_len = plen
                elif kind == p4info_pb2.MatchField.TERNARY:
                    v, mask = value
                    fm.ternary.value = encode(to_int(v) & to_int(mask), mf.bitwidth)
                    fm.ternary.mask = encode(mask, mf.bitwidth)
                elif kind == p4info_pb2.MatchField.OPTIONAL:
                    fm.optional.value = encode(value, mf.bitwidth)
                else:
                    raise ValueError(f"match kind {kind} of {name} not supported here")
        if action is not None:
            a = self.info.action_for_table(t, action)
            te.action.action.action_id = a.preamble.id
            given = dict(params or {})
            for p in a.params:
                if p.name not in given:
                    raise KeyError(f"action {a.preamble.name} needs param {p.name!r}")
                te.action.action.params.add(param_id=p.id, value=encode(given.pop(p.name), p.bitwidth))
            if given:
                raise KeyError(f"action {a.preamble.name} has no params {sorted(given)}")
        return te

    # writing ---------------------------------------------------------------------------------
    def write(self, update_type: int, entity: p4runtime_pb2.Entity) -> None:
        req = p4runtime_pb2.WriteRequest(device_id=self.device_id)
        req.election_id.low = self.election_id
        req.updates.add(type=update_type, entity=entity)
        try:
            self.stub.Write(req)
        except grpc.RpcError as exc:
            raise P4RuntimeError(f"Write {p4runtime_pb2.Update.Type.Name(update_type)} failed: "
                                 f"{exc.code().name} {exc.details()}") from exc

    def insert(self, te: p4runtime_pb2.TableEntry) -> p4runtime_pb2.TableEntry:
        entity = p4runtime_pb2.Entity(table_entry=te)
        if te.is_default_action:
            self.write(p4runtime_pb2.Update.MODIFY, entity)
        else:
            self.write(p4runtime_pb2.Update.INSERT, entity)
            self._inserted.append(entity)
        return te

    def modify(self, te: p4runtime_pb2.TableEntry) -> None:
        self.write(p4runtime_pb2.Update.MODIFY, p4runtime_pb2.Entity(table_entry=te))

    def delete(self, te: p4runtime_pb2.TableEntry) -> None:
        entity = p4runtime_pb2.Entity(table_entry=te)
        self.write(p4runtime_pb2.Update.DELETE, entity)
        self._forget(entity)

    def insert_clone_session(self, session_id: int, ports: list[int]) -> None:
        entity = p4runtime_pb2.Entity()
        cs = entity.packet_replication_engine_entry.clone_session_entry
        cs.session_id = session_id
        for i, port in enumerate(ports):
            cs.replicas.add(egress_port=port, instance=i + 1)
        self.write(p4runtime_pb2.Update.INSERT, entity)
        self._inserted.append(entity)

    def insert_digest(self, name: str, max_timeout_ns: int = 0, max_list_size: int = 1,
                      ack_timeout_ns: int = 1_000_000_000) -> None:
        """Enable digest ``name`` (a DigestEntry; deleted again by cleanup())."""
        entity = p4runtime_pb2.Entity()
        de = entity.digest_entry
        de.digest_id = self.info.digest(name).preamble.id
        de.config.max_timeout_ns = max_timeout_ns
        de.config.max_list_size = max_list_size
        de.config.ack_timeout_ns = ack_timeout_ns
        self.write(p4runtime_pb2.Update.INSERT, entity)
        entity.digest_entry.ClearField("config")
        self._inserted.append(entity)

    def get_digests(self, name: str, timeout: float = 2.0) -> list[dict[str, int]] | None:
        """The next DigestList of ``name``, acknowledged, as one dict per digest (members by
        name), or None after ``timeout``."""
        try:
            msg = self._stream.digests.get(timeout=timeout)
        except queue.Empty:
            return None
        if msg.digest_id != self.info.digest(name).preamble.id:
            raise P4RuntimeError(f"digest list of {self.info.name_of(msg.digest_id)}, not {name}")
        ack = p4runtime_pb2.StreamMessageRequest()
        ack.digest_ack.digest_id = msg.digest_id
        ack.digest_ack.list_id = msg.list_id
        self._stream.requests.put(ack)
        names = self.info.digest_members(name)
        out = []
        for data in msg.data:
            members = data.struct.members
            if len(members) != len(names):
                raise P4RuntimeError(f"digest with {len(members)} members, P4Info says {len(names)}")
            out.append({n: decode(m.bitstring) for n, m in zip(names, members, strict=True)})
        return out

    def _forget(self, entity: p4runtime_pb2.Entity) -> None:
        key = _entity_key(entity)
        self._inserted = [e for e in self._inserted if _entity_key(e) != key]

    def cleanup(self) -> None:
        """Delete, newest first, everything this client inserted and has not deleted."""
        errors = []
        for entity in reversed(self._inserted):
            try:
                self.write(p4runtime_pb2.Update.DELETE, entity)
            except P4RuntimeError as exc:
                # an entry removed behind our back (e.g. by a test) is fine; keep going
                if "NOT_FOUND" not in str(exc):
                    errors.append(str(exc))
        self._inserted.clear()
        if errors:
            raise P4RuntimeError("cleanup failed: " + "; ".join(errors))

    # reading ---------------------------------------------------------------------------------
    def read(self, entity: p4runtime_pb2.Entity) -> list[p4runtime_pb2.Entity]:
        req = p4runtime_pb2.ReadRequest(device_id=self.device_id)
        req.entities.add().CopyFrom(entity)
        out: list[p4runtime_pb2.Entity] = []
        for resp in self.stub.Read(req):
            out.extend(resp.entities)
        return out

    def read_direct_counter(self, te: p4runtime_pb2.TableEntry) -> tuple[int, int]:
        """(packets, bytes) of the direct counter of entry ``te``."""
        entity = p4runtime_pb2.Entity()
        entity.direct_counter_entry.table_entry.CopyFrom(te)
        entity.direct_counter_entry.table_entry.ClearField("action")
        entity.direct_counter_entry.table_entry.idle_timeout_ns = 0
        got = self.read(entity)
        if len(got) != 1:
            raise P4RuntimeError(f"read {len(got)} direct counter entries, expected 1")
        data = got[0].direct_counter_entry.data
        return data.packet_count, data.byte_count

    def read_counter(self, name: str, index: int) -> tuple[int, int]:
        """(packets, bytes) of cell ``index`` of the indexed counter ``name``."""
        entity = p4runtime_pb2.Entity()
        entity.counter_entry.counter_id = self.info.counter(name).preamble.id
        entity.counter_entry.index.index = index
        got = self.read(entity)
        if len(got) != 1:
            raise P4RuntimeError(f"read {len(got)} counter cells, expected 1")
        data = got[0].counter_entry.data
        return data.packet_count, data.byte_count

    def read_table(self, table: str) -> list[p4runtime_pb2.TableEntry]:
        entity = p4runtime_pb2.Entity()
        entity.table_entry.table_id = self.info.table(table).preamble.id
        return [e.table_entry for e in self.read(entity)]

    # packet I/O ------------------------------------------------------------------------------
    def packet_out(self, payload: bytes, **metadata: int) -> None:
        """Send ``payload`` to the switch with the packet_out header fields given by name
        (fields not given are sent as 0)."""
        meta = self.info.packet_metadata["packet_out"]
        req = p4runtime_pb2.StreamMessageRequest()
        req.packet.payload = payload
        given = dict(metadata)
        for m in meta.metadata:
            req.packet.metadata.add(metadata_id=m.id, value=encode(given.pop(m.name, 0), m.bitwidth))
        if given:
            raise KeyError(f"packet_out has no fields {sorted(given)}")
        self._stream.requests.put(req)

    def get_packet_in(self, timeout: float = 2.0) -> PacketIn | None:
        """The next packet-in with its metadata by name, or None after ``timeout``."""
        try:
            msg = self._stream.packet_ins.get(timeout=timeout)
        except queue.Empty:
            return None
        meta = self.info.packet_metadata["packet_in"]
        names = {m.id: m.name for m in meta.metadata}
        return PacketIn(msg.payload, {names.get(m.metadata_id, str(m.metadata_id)): decode(m.value)
                                      for m in msg.metadata})

    def get_idle_timeout(self, timeout: float = 3.0) -> p4runtime_pb2.IdleTimeoutNotification | None:
        try:
            return self._stream.idle.get(timeout=timeout)
        except queue.Empty:
            return None

    def drain(self) -> None:
        """Forget stream messages left over from an earlier test."""
        for q in (self._stream.packet_ins, self._stream.idle, self._stream.digests, self._stream.errors):
            while True:
                try:
                    q.get_nowait()
                except queue.Empty:
                    break

    def wait_for(self, cond: Any, timeout: float = 3.0, interval: float = 0.01, what: str = "condition") -> Any:
        """Poll ``cond()`` until truthy; raise P4RuntimeError after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            value = cond()
            if value:
                return value
            if time.monotonic() > deadline:
                raise P4RuntimeError(f"timed out after {timeout}s waiting for {what}")
            time.sleep(interval)


def _entity_key(entity: p4runtime_pb2.Entity) -> bytes:
    """Identity of an entity for cleanup bookkeeping: the entity without action/data."""
    e = p4runtime_pb2.Entity()
    e.CopyFrom(entity)
    if e.HasField("table_entry"):
        e.table_entry.ClearField("action")
        e.table_entry.idle_timeout_ns = 0
    return e.SerializeToString(deterministic=True)
