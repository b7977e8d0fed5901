"""The switch's control-plane state, built from a P4Info: what the controller writes, the data plane reads.

`SwitchState` owns the tables (p4sim.runtime.tables), indexed externs (externs), the packet
replication engine (pre), digest buffering (digests) and the controller packet headers, plus a
timer thread for digest timeouts and idle-timeout notifications. It knows nothing of gRPC:
messages for the controller (PacketIn, DigestList, IdleTimeoutNotification) go to the `notify`
callback the server installs, which routes them to the primary client.

Data-plane methods (lookup, count, register_*, meter_*, value_set_members, mcast_group,
clone_session, emit_digest, packet_in) take no lock on the hot path; control-plane mutations
run under `self.lock` (see tables.py for why lock-free lookups are safe).

Clock: entry idle times use time.monotonic_ns(); pass that clock's value as `now_ns` to lookup().
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from p4.config.v1 import p4info_pb2
from p4.v1 import p4runtime_pb2

from p4sim.runtime import codec
from p4sim.runtime.device import PipelineConfigError
from p4sim.runtime.digests import DigestEngine
from p4sim.runtime.externs import CounterArray, MeterArray, RegisterArray, ValueSet
from p4sim.runtime.pre import CloneSession, MulticastGroup, PacketReplicationEngine
from p4sim.runtime.profiles import ActionProfile
from p4sim.runtime.tables import ConstEntry, Entry, MeterConfig, Table

log = logging.getLogger(__name__)

Notify = Callable[[p4runtime_pb2.StreamMessageResponse], None]
TICK_S = 0.005  # timer granularity for digest timeouts and idle scans
MAX_BITWIDTH = 1 << 16  # widest match field, parameter, metadata or register cell taken
MAX_CELLS = 1 << 24  # most cells of one counter, meter or register array (a list of that length)


@dataclass(frozen=True, slots=True)
class ParamInfo:
    id: int
    name: str
    bitwidth: int


@dataclass(frozen=True, slots=True)
class ActionInfo:
    id: int
    name: str
    params: tuple[ParamInfo, ...]
    # param id -> (position, ParamInfo); built once here because every table write looks it up.
    param_index: dict[int, tuple[int, ParamInfo]] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "param_index", {p.id: (i, p) for i, p in enumerate(self.params)})


class ControllerHeader:
    """A @controller_header: fields packed MSB-first, total padded to whole bytes at the end."""

    def __init__(self, info: p4info_pb2.ControllerPacketMetadata) -> None:
        self.id = info.preamble.id
        self.name = info.preamble.name
        self.fields = tuple((m.id, m.name, m.bitwidth) for m in info.metadata)
        self.by_id = {fid: (fid, name, width) for fid, name, width in self.fields}
        bits = sum(w for _, _, w in self.fields)
        self.nbytes = (bits + 7) // 8
        self.pad = self.nbytes * 8 - bits

    def pack(self, values: dict[int, int]) -> bytes:
        acc = 0
        for fid, _, width in self.fields:
            acc = (acc << width) | (values.get(fid, 0) & ((1 << width) - 1))
        return (acc << self.pad).to_bytes(self.nbytes, "big") if self.nbytes else b""

    def unpack(self, frame: bytes) -> tuple[list[tuple[int, int]], bytes]:
        acc = int.from_bytes(frame[:self.nbytes], "big") >> self.pad
        values = []
        for fid, _, width in reversed(self.fields):
            values.append((fid, acc & ((1 << width) - 1)))
            acc >>= width
        values.reverse()
        return values, frame[self.nbytes:]


def _type_bitwidth(spec) -> int:
    kind = spec.WhichOneof("type_spec")
    if kind == "bitstring":
        bs = spec.bitstring
        which = bs.WhichOneof("type_spec")
        if which == "bit":
            return bs.bit.bitwidth
        if which == "int":
            return bs.int.bitwidth
        if which == "varbit":
            return bs.varbit.max_bitwidth
    if kind == "bool":
        return 1
    return 0


class SwitchState:
    """Everything the control plane writes and the data plane reads, for one P4Info."""

    def __init__(self, p4info: p4info_pb2.P4Info, notify: Notify | None = None) -> None:
        self.p4info = p4info
        self.lock = threading.RLock()
        self._notify = notify
        self._check_ids(p4info)
        self._check_widths_and_sizes(p4info)
        self.actions = {a.preamble.id: ActionInfo(
            a.preamble.id, a.preamble.name,
            tuple(ParamInfo(p.id, p.name, p.bitwidth) for p in a.params)) for a in p4info.actions}
        self.tables: dict[int, Table] = {}
        for t in p4info.tables:
            for ref in t.action_refs:
                if ref.id not in self.actions:
                    raise PipelineConfigError(f"table {t.preamble.name}: unknown action id {ref.id}")
            self.tables[t.preamble.id] = Table(t, self.lock)
        self.direct_counters: dict[int, int] = {}  # direct counter id -> table id
        for c in p4info.direct_counters:
            table = self._direct_table(c.direct_table_id, c.preamble.name)
            table.direct_counter_id = c.preamble.id
            table.has_direct_counter = True
            self.direct_counters[c.preamble.id] = table.id
        self.direct_meters: dict[int, int] = {}
        self.direct_meter_types: dict[int, int] = {}
        for m in p4info.direct_meters:
            table = self._direct_table(m.direct_table_id, m.preamble.name)
            table.direct_meter_id = m.preamble.id
            self.direct_meters[m.preamble.id] = table.id
            self.direct_meter_types[m.preamble.id] = m.spec.type
        self.action_profiles: dict[int, ActionProfile] = {}
        for ap in p4info.action_profiles:
            users = [t for t in self.tables.values()
                     if t.implementation_id == ap.preamble.id or t.id in ap.table_ids]
            self.action_profiles[ap.preamble.id] = ActionProfile(
                ap, {ref.id for t in users for ref in t.info.action_refs})
        for table in self.tables.values():
            if table.implementation_id and table.implementation_id not in self.action_profiles:
                raise PipelineConfigError(f"table {table.name}: unknown action profile id {table.implementation_id}")
        self.counters = {c.preamble.id: CounterArray(c) for c in p4info.counters}
        self.meters = {m.preamble.id: MeterArray(m) for m in p4info.meters}
        self.registers = {r.preamble.id: RegisterArray(r, _type_bitwidth(r.type_spec))
                          for r in p4info.registers}
        self.value_sets = {v.preamble.id: ValueSet(v) for v in p4info.value_sets}
        self.pre = PacketReplicationEngine()
        self.digests = DigestEngine(list(p4info.digests), p4info.type_info, self._send,
                                    time.monotonic_ns, time.time_ns)
        self.packet_in_header: ControllerHeader | None = None
        self.packet_out_header: ControllerHeader | None = None
        for cpm in p4info.controller_packet_metadata:
            if cpm.preamble.name == "packet_in":
                self.packet_in_header = ControllerHeader(cpm)
            elif cpm.preamble.name == "packet_out":
                self.packet_out_header = ControllerHeader(cpm)
        for table in self.tables.values():
            table.initial_default = self._p4info_default(table)
            table.default_is_const = table.info.const_default_action_id != 0
            table.reset_default()
        self._timer: threading.Thread | None = None
        self._stop = threading.Event()

    # ---------------------------------------------------------------------------------------
    # construction helpers
    @staticmethod
    def _check_ids(p4info: p4info_pb2.P4Info) -> None:
        seen: set[int] = set()
        groups = (p4info.tables, p4info.actions, p4info.counters, p4info.direct_counters,
                  p4info.meters, p4info.direct_meters, p4info.registers, p4info.digests,
                  p4info.value_sets, p4info.controller_packet_metadata, p4info.action_profiles)
        for group in groups:
            for obj in group:
                pid = obj.preamble.id
                if pid == 0 or pid in seen:
                    raise PipelineConfigError(f"P4Info: bad or duplicate id {pid} ({obj.preamble.name})")
                seen.add(pid)

    @staticmethod
    def _check_widths_and_sizes(p4info: p4info_pb2.P4Info) -> None:
        """Bit widths and array sizes this state can hold. A negative width fails `1 << width` in
        the middle of building the state, or later in the middle of a Write; a huge one makes
        every such mask a huge number. Counter, meter and register arrays are lists of their
        size, made here: a P4Info saying 2**31 cells would take all the memory there is."""
        widths = [(f"table {t.preamble.name} field {f.name}", f.bitwidth) for t in p4info.tables for f in t.match_fields]
        widths += [(f"action {a.preamble.name} param {p.name}", p.bitwidth) for a in p4info.actions for p in a.params]
        widths += [(f"{c.preamble.name} metadata {m.name}", m.bitwidth) for c in p4info.controller_packet_metadata
                   for m in c.metadata]
        widths += [(f"value set {v.preamble.name} field {f.name}", f.bitwidth) for v in p4info.value_sets
                   for f in v.match]
        widths += [(f"register {r.preamble.name}", _type_bitwidth(r.type_spec)) for r in p4info.registers]
        for what, width in widths:
            if width < 0:
                raise PipelineConfigError(f"P4Info: {what} has a negative bit width ({width})")
            if width > MAX_BITWIDTH:
                raise PipelineConfigError(f"P4Info: {what} is {width} bits wide; p4sim takes up to {MAX_BITWIDTH}")
        sizes = [(f"table {t.preamble.name}", t.size, None) for t in p4info.tables]
        sizes += [(f"value set {v.preamble.name}", v.size, None) for v in p4info.value_sets]
        sizes += [(f"{kind} {o.preamble.name}", o.size, MAX_CELLS)
                  for kind, group in (("counter", p4info.counters), ("meter", p4info.meters),
                                      ("register", p4info.registers)) for o in group]
        for what, size, most in sizes:
            if size < 0:
                raise PipelineConfigError(f"P4Info: {what} has a negative size ({size})")
            if most is not None and size > most:
                raise PipelineConfigError(f"P4Info: {what} has {size} cells; p4sim holds up to {most} per array")

    def _direct_table(self, table_id: int, name: str) -> Table:
        table = self.tables.get(table_id)
        if table is None:
            raise PipelineConfigError(f"direct resource {name}: unknown table id {table_id}")
        return table

    def _p4info_default(self, table: Table) -> tuple[int, tuple[int, ...]]:
        info = table.info
        if info.HasField("initial_default_action") and info.initial_default_action.action_id:
            call = info.initial_default_action
            action = self.actions.get(call.action_id)
            if action is not None:
                given = {arg.param_id: int.from_bytes(arg.value, "big") for arg in call.arguments}
                return call.action_id, tuple(given.get(p.id, 0) for p in action.params)
        if info.const_default_action_id:
            return info.const_default_action_id, ()
        for ref in info.action_refs:
            if self.actions[ref.id].name in ("NoAction", ".NoAction"):
                return ref.id, ()
        return 0, ()

    # ---------------------------------------------------------------------------------------
    # pipeline loader API
    def set_initial_default(self, table_id: int, action_id: int, params: tuple[int, ...],
                            const: bool) -> None:
        """Set the program's default action for a table (and reset the current default to it)."""
        with self.lock:
            table = self.tables[table_id]
            table.initial_default = (action_id, tuple(params))
            table.default_is_const = const
            table.reset_default()

    def add_const_entries(self, table_id: int, entries: Iterable[ConstEntry]) -> None:
        """Install the entries the program declares (key format: see p4sim.runtime.tables)."""
        with self.lock:
            table = self.tables[table_id]
            for ce in entries:
                entry = table.insert(tuple(ce.key), ce.priority, ce.action_id, tuple(ce.params),
                                     time.monotonic_ns())
                entry.is_const = ce.is_const

    # ---------------------------------------------------------------------------------------
    # data-plane API
    def table(self, table_id: int) -> Table:
        return self.tables[table_id]

    def lookup(self, table_id: int, key: tuple[int, ...], now_ns: int, packet_bytes: int) -> Entry:
        """Match `key` in a table: the hit Entry (`.hit` True) or the default entry (`.hit` False).

        Either way `.action` is (action_id, params-tuple), also as `.action_id` / `.params`.
        """
        return self.tables[table_id].lookup(key, now_ns, packet_bytes)

    def count(self, counter_id: int, index: int, packet_bytes: int) -> None:
        self.counters[counter_id].count(index, packet_bytes)

    def meter_config(self, meter_id: int, index: int) -> MeterConfig | None:
        """The cell's config, or None when unconfigured (the meter marks every packet GREEN)."""
        meter = self.meters[meter_id]
        return meter.configs[index] if 0 <= index < meter.size else None

    def meter_state(self, meter_id: int, index: int) -> object:
        meter = self.meters[meter_id]
        return meter.states[index] if 0 <= index < meter.size else None

    def set_meter_state(self, meter_id: int, index: int, state: object) -> None:
        meter = self.meters[meter_id]
        if 0 <= index < meter.size:
            meter.states[index] = state

    def register_read(self, register_id: int, index: int) -> int:
        reg = self.registers[register_id]
        return reg.values[index] if 0 <= index < reg.size else 0

    def register_write(self, register_id: int, index: int, value: int) -> None:
        reg = self.registers[register_id]
        if 0 <= index < reg.size:
            reg.values[index] = value & reg.mask

    def value_set_members(self, value_set_id: int) -> list[tuple[int, int]]:
        """Members as (value, mask) over the value set's fields concatenated MSB-first in P4Info order."""
        return self.value_sets[value_set_id].compiled

    def mcast_group(self, group_id: int) -> list[tuple[int, int]] | None:
        """(egress_port, instance) per replica, or None if the group is not programmed."""
        group: MulticastGroup | None = self.pre.groups.get(group_id)
        return list(group.pairs) if group is not None else None

    def clone_session(self, session_id: int) -> tuple[list[tuple[int, int]], int, int] | None:
        """(replicas as (egress_port, instance), class_of_service, packet_length_bytes), or None."""
        session: CloneSession | None = self.pre.sessions.get(session_id)
        if session is None:
            return None
        return list(session.pairs), session.class_of_service, session.packet_length_bytes

    def emit_digest(self, digest_id: int, values: tuple[int, ...]) -> None:
        """A digest from the data plane: one int per member of the digest's type, in order."""
        self.digests.emit(digest_id, tuple(values))

    def packet_in(self, frame: bytes) -> None:
        """A frame the pipeline sent to the CPU port: strip the packet_in header, notify the controller."""
        msg = p4runtime_pb2.StreamMessageResponse()
        header = self.packet_in_header
        if header is not None:
            if len(frame) < header.nbytes:
                log.warning("packet-in of %d bytes is shorter than its header; dropped", len(frame))
                return
            values, payload = header.unpack(frame)
            for fid, value in values:
                md = msg.packet.metadata.add()
                md.metadata_id = fid
                md.value = codec.encode(value)
            msg.packet.payload = payload
        else:
            msg.packet.payload = frame
        self._send(msg)

    # ---------------------------------------------------------------------------------------
    # notifications and timers
    def set_notify(self, notify: Notify | None) -> None:
        self._notify = notify

    def _send(self, msg: p4runtime_pb2.StreamMessageResponse) -> None:
        notify = self._notify
        if notify is not None:
            notify(msg)

    def start(self) -> None:
        """Start the timer thread (digest list timeouts, ack cache expiry, idle timeouts)."""
        if self._timer is not None:
            return
        self._stop.clear()
        self._timer = threading.Thread(target=self._run_timer, name="p4sim-runtime-timer", daemon=True)
        self._timer.start()

    def stop(self) -> None:
        self._stop.set()
        if self._timer is not None:
            self._timer.join(timeout=2)
            self._timer = None

    def _run_timer(self) -> None:
        while not self._stop.wait(TICK_S):
            try:
                self.tick()
            except Exception:  # a bad tick must not kill notifications for good
                log.exception("runtime timer tick failed")

    def tick(self) -> None:
        self.digests.tick()
        self.check_idle_timeouts()

    def check_idle_timeouts(self, now_ns: int | None = None) -> None:
        from p4sim.runtime.entities import table_entry_to_proto  # entities imports us for types

        now = time.monotonic_ns() if now_ns is None else now_ns
        for table in self.tables.values():
            if not table.idle_supported or not table._idle:
                continue
            with self.lock:
                expired = table.expired_entries(now)
                if not expired:
                    continue
                msg = p4runtime_pb2.StreamMessageResponse()
                note = msg.idle_timeout_notification
                for entry in expired:
                    note.table_entry.append(table_entry_to_proto(self, table, entry))
                note.timestamp = time.time_ns()
            self._send(msg)
