"""Typed P4Runtime entities and stream messages, by name, with ints for values.

Each class converts with ``to_proto(index)`` / ``from_proto(index, msg)`` against a
:class:`~.p4info.P4Index`: names become ids and ints become canonical bytestrings on the way out,
and back on the way in. Values are plain ints (use ``codec.mac("..")`` / ``codec.ipv4("..")`` for
addresses) and every one is range-checked against its P4Info bit width before it leaves.

Read filters are the same classes with the unknowns left out: ``TableEntry("")`` reads every
table, ``TableEntry("smac")`` one table, ``CounterEntry("c")`` every index of one counter.

Don't-care matches are omitted on the wire as the spec requires (LPM /0, ternary mask 0, a full
range, an unset optional), so such a field does not come back from ``from_proto``.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from p4.v1 import p4runtime_pb2 as pb

from . import codec
from .p4info import MatchFieldInfo, P4Index, TableInfo

__all__ = [
    "LPM",
    "Action",
    "CloneSessionEntry",
    "CounterData",
    "CounterEntry",
    "DigestEntry",
    "DigestList",
    "DirectCounterEntry",
    "DirectMeterEntry",
    "Entity",
    "Exact",
    "IdleTimeoutNotification",
    "Match",
    "MeterConfig",
    "MeterEntry",
    "MulticastGroupEntry",
    "Optional",
    "PacketIn",
    "PacketOut",
    "Range",
    "RegisterEntry",
    "Replica",
    "TableEntry",
    "Ternary",
    "Update",
    "UpdateType",
    "entity_from_proto",
    "entity_to_proto",
]


# --- match kinds ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Exact:
    value: int


@dataclass(frozen=True)
class LPM:
    value: int
    prefix_len: int


@dataclass(frozen=True)
class Ternary:
    value: int
    mask: int


@dataclass(frozen=True)
class Range:
    low: int
    high: int


@dataclass(frozen=True)
class Optional:
    value: int


Match = Exact | LPM | Ternary | Range | Optional
_KIND_OF = {Exact: "exact", LPM: "lpm", Ternary: "ternary", Range: "range", Optional: "optional"}


def _match_parts(mf: MatchFieldInfo, m: Match, table: str) -> tuple[str, tuple[Any, ...]] | None:
    """The checked, encoded parts of one key, as (FieldMatch oneof name, its fields in field-number
    order); None for a don't-care, which the spec wants omitted."""
    if _KIND_OF.get(type(m)) != mf.match_type:
        raise ValueError(f"table {table!r} field {mf.name!r} is an {mf.match_type} match; got {m!r}")
    bw = mf.bitwidth
    enc = codec.encode
    try:
        if isinstance(m, Exact):
            return "exact", (enc(m.value, bw),)
        if isinstance(m, LPM):
            if not 0 <= m.prefix_len <= bw:
                raise ValueError(f"prefix length {m.prefix_len} not in 0..{bw}")
            value = enc(m.value, bw)
            if m.value & ((1 << (bw - m.prefix_len)) - 1):
                raise ValueError(f"{m.value:#x}/{m.prefix_len} has bits set beyond the prefix")
            return ("lpm", (value, m.prefix_len)) if m.prefix_len else None
        if isinstance(m, Ternary):
            value, mask = enc(m.value, bw), enc(m.mask, bw, "mask")
            if m.value & ~m.mask:
                raise ValueError(f"value {m.value:#x} has bits outside mask {m.mask:#x}")
            return ("ternary", (value, mask)) if m.mask else None
        if isinstance(m, Range):
            if m.low > m.high:
                raise ValueError(f"empty range {m.low}..{m.high}")
            low, high = enc(m.low, bw, "low"), enc(m.high, bw, "high")
            return None if (m.low == 0 and bw > 0 and m.high == (1 << bw) - 1) else ("range", (low, high))
        return "optional", (enc(m.value, bw),)
    except (ValueError, TypeError) as e:
        raise type(e)(f"table {table!r} field {mf.name!r}: {e}") from None


def _add_match(into: Any, mf: MatchFieldInfo, m: Match, table: str) -> None:
    """Append the FieldMatch of one key to ``into`` (a repeated field), unless the value is a
    don't-care. Built in place: with the pure-Python protobuf runtime every intermediate message
    and copy costs."""
    if type(m) is Exact and mf.match_type == "exact":
        # The common case inline (a flows entry has five exact keys): an int that fits, encoded
        # canonically; anything else goes through _match_parts, which says what is wrong.
        v, bw = m.value, mf.bitwidth
        if type(v) is int and v >= 0 and not (bw > 0 and v >> bw):
            into.add(field_id=mf.id).exact.value = v.to_bytes((v.bit_length() + 7) // 8 or 1, "big")
            return
    parts = _match_parts(mf, m, table)
    if parts is None:
        return
    kind, values = parts
    sub = getattr(into.add(field_id=mf.id), kind)
    if kind == "exact" or kind == "optional":
        sub.value = values[0]
    elif kind == "lpm":
        sub.value, sub.prefix_len = values
    elif kind == "ternary":
        sub.value, sub.mask = values
    else:
        sub.low, sub.high = values


def _match_str(m: Match) -> str:
    if isinstance(m, Exact):
        return f"{m.value:#x}"
    if isinstance(m, LPM):
        return f"{m.value:#x}/{m.prefix_len}"
    if isinstance(m, Ternary):
        return f"{m.value:#x}&&&{m.mask:#x}"
    if isinstance(m, Range):
        return f"{m.low:#x}..{m.high:#x}"
    return f"{m.value:#x}?"


def _match_from_proto(mf: MatchFieldInfo, fm: pb.FieldMatch) -> Match:
    bw, what = mf.bitwidth, mf.name
    kind = fm.WhichOneof("field_match_type")
    if kind == "exact":
        return Exact(codec.decode(fm.exact.value, bw, what))
    if kind == "lpm":
        return LPM(codec.decode(fm.lpm.value, bw, what), fm.lpm.prefix_len)
    if kind == "ternary":
        return Ternary(codec.decode(fm.ternary.value, bw, what), codec.decode(fm.ternary.mask, bw, what))
    if kind == "range":
        return Range(codec.decode(fm.range.low, bw, what), codec.decode(fm.range.high, bw, what))
    if kind == "optional":
        return Optional(codec.decode(fm.optional.value, bw, what))
    raise ValueError(f"field {what!r}: unsupported match kind {kind}")


# --- actions and table entries -------------------------------------------------------------------

@dataclass(frozen=True)
class Action:
    """An action and its parameters by name (every parameter must be given)."""

    name: str
    params: Mapping[str, int] = field(default_factory=dict)

    def to_proto(self, index: P4Index) -> pb.Action:
        out = pb.Action()
        self.fill(index, out)
        return out

    def fill(self, index: P4Index, out: pb.Action) -> None:
        """Write this action into ``out`` (in place, no intermediate message)."""
        action_id, params = self.encoded(index)
        out.action_id = action_id
        for pid, value in params:
            out.params.add(param_id=pid, value=value)

    def encoded(self, index: P4Index) -> tuple[int, list[tuple[int, bytes]]]:
        """(action id, [(param id, canonical bytes)] in the order given), checked: every
        parameter present and in range."""
        key = ("action", self.name)
        cached = index.encode_cache.get(key)
        if cached is None:
            found = index.actions.get(self.name)
            cached = index.encode_cache[key] = (found, {p.name: (p.id, p.bitwidth) for p in found.params})
        info, by_name = cached
        params = info.params
        out = []
        for pname, value in self.params.items():
            idw = by_name.get(pname)
            if idw is None:
                params.get(pname)  # raises, naming the parameters there are
            pid, bw = idw
            # A plain int that fits, inline (nine parameters per flows entry); anything else
            # through codec.encode, which says what is wrong.
            if type(value) is int and value >= 0 and not (bw > 0 and value >> bw):
                out.append((pid, value.to_bytes((value.bit_length() + 7) // 8 or 1, "big")))
                continue
            try:
                out.append((pid, codec.encode(value, bw)))
            except (ValueError, TypeError) as e:
                raise type(e)(f"action {info.name!r} param {pname!r}: {e}") from None
        if len(self.params) != len(params):
            missing = [p.name for p in params if p.name not in self.params]
            raise ValueError(f"action {info.name!r}: missing parameters {', '.join(missing)}")
        return info.id, out

    def __str__(self) -> str:
        return f"{self.name}({', '.join(f'{k}={v:#x}' for k, v in self.params.items())})"

    @classmethod
    def from_proto(cls, index: P4Index, msg: pb.Action) -> Action:
        info = index.actions.get(msg.action_id)
        params = {}
        for p in msg.params:
            pi = info.params.get(p.param_id)
            params[pi.name] = codec.decode(p.value, pi.bitwidth, pi.name)
        return cls(info.alias, params)


@dataclass(frozen=True)
class CounterData:
    packet_count: int = 0
    byte_count: int = 0

    def to_proto(self) -> pb.CounterData:
        return pb.CounterData(packet_count=self.packet_count, byte_count=self.byte_count)

    @classmethod
    def from_proto(cls, msg: pb.CounterData) -> CounterData:
        return cls(msg.packet_count, msg.byte_count)


@dataclass(frozen=True)
class MeterConfig:
    """Two-rate three-colour meter rates (units/s) and bursts (units), unit as in the P4Info."""

    cir: int
    cburst: int
    pir: int
    pburst: int

    def to_proto(self) -> pb.MeterConfig:
        return pb.MeterConfig(cir=self.cir, cburst=self.cburst, pir=self.pir, pburst=self.pburst)

    @classmethod
    def from_proto(cls, msg: pb.MeterConfig) -> MeterConfig:
        return cls(msg.cir, msg.cburst, msg.pir, msg.pburst)


def _table_id(index: P4Index, table: str) -> TableInfo | None:
    return None if table in ("", "*") else index.tables.get(table)


@dataclass(frozen=True)
class TableEntry:
    """A table entry. ``match`` maps match-field names to Match values (a bare int means Exact).

    ``counter_data`` / ``meter_config`` go with the entry when set (the table's direct
    resources); in a read filter, ``counter_data=CounterData()`` asks for the counters and
    ``time_since_last_hit_ns=0`` for each entry's idle time (tables with idle timeout only).
    ``time_since_last_hit_ns`` and ``is_const`` are otherwise filled in by reads, and a write
    never sends them (an entry read back can be written as it is).
    """

    table: str
    match: Mapping[str, Match] = field(default_factory=dict)
    action: Action | None = None
    priority: int = 0
    idle_timeout_ns: int = 0
    is_default: bool = False
    counter_data: CounterData | None = None
    meter_config: MeterConfig | None = None
    metadata: bytes = b""
    time_since_last_hit_ns: int | None = None
    is_const: bool = False

    entity_kind: ClassVar[str] = "table_entry"

    def __post_init__(self) -> None:
        if any(isinstance(v, int) for v in self.match.values()):
            object.__setattr__(self, "match", {k: Exact(v) if isinstance(v, int) else v
                                               for k, v in self.match.items()})

    def __str__(self) -> str:
        # Compact, for logs and error messages; repr() keeps every field.
        keys = ", ".join(f"{k}={_match_str(m)}" for k, m in self.match.items())
        head = f"{self.table or '*'}[{'default' if self.is_default else keys}]"
        if self.priority:
            head += f" prio {self.priority}"
        return f"{head} -> {self.action}" if self.action is not None else head

    @property
    def key(self) -> tuple[str, frozenset[tuple[str, Match]], int, bool]:
        """What identifies the entry in its table (hashable): table, match, priority, default."""
        return (self.table, frozenset(self.match.items()), self.priority, self.is_default)

    def to_proto(self, index: P4Index) -> pb.TableEntry:
        out = pb.TableEntry()
        self.fill(index, out)
        return out

    def fill(self, index: P4Index, out: pb.TableEntry) -> None:
        """Write this entry into ``out`` (in place, no intermediate messages)."""
        out.SetInParent()
        info = _table_id(index, self.table)
        if info is None:
            if self.match or self.action:
                raise ValueError("a wildcard table read filter takes no match or action")
        else:
            out.table_id = info.id
        if self.is_default and self.match:
            raise ValueError(f"table {self.table!r}: a default entry has no match")
        if self.match:
            assert info is not None
            # Keys in P4Info order: not required by the spec, but it makes messages comparable.
            # The order (and the look-ups) once per table and set of key names.
            names = tuple(self.match)
            key = ("match", info.id, names)
            order = index.encode_cache.get(key)
            if order is None:
                fields = info.match_fields
                order = index.encode_cache[key] = sorted(((fields.get(name), name) for name in names),
                                                         key=lambda fm: fm[0].id)
            into, match, table = out.match, self.match, info.name
            for mf, name in order:
                _add_match(into, mf, match[name], table)
        if self.action is not None:
            self.action.fill(index, out.action.action)
        if self.priority:
            out.priority = self.priority
        if self.idle_timeout_ns:
            out.idle_timeout_ns = self.idle_timeout_ns
        if self.is_default:
            out.is_default_action = True
        if self.metadata:
            out.metadata = self.metadata
        if self.counter_data is not None:
            out.counter_data.packet_count = self.counter_data.packet_count
            out.counter_data.byte_count = self.counter_data.byte_count
        if self.meter_config is not None:
            out.meter_config.CopyFrom(self.meter_config.to_proto())
        if self.time_since_last_hit_ns is not None:
            out.time_since_last_hit.elapsed_ns = self.time_since_last_hit_ns

    @classmethod
    def from_proto(cls, index: P4Index, msg: pb.TableEntry) -> TableEntry:
        info = index.tables.get(msg.table_id)
        match = {}
        for fm in msg.match:
            mf = info.match_fields.get(fm.field_id)
            match[mf.name] = _match_from_proto(mf, fm)
        action = None
        if msg.HasField("action"):
            kind = msg.action.WhichOneof("type")
            if kind != "action":
                raise ValueError(f"table {info.name!r}: action profile entries ({kind}) are not supported")
            action = Action.from_proto(index, msg.action.action)
        return cls(
            table=info.alias, match=match, action=action, priority=msg.priority,
            idle_timeout_ns=msg.idle_timeout_ns, is_default=msg.is_default_action,
            counter_data=CounterData.from_proto(msg.counter_data) if msg.HasField("counter_data") else None,
            meter_config=MeterConfig.from_proto(msg.meter_config) if msg.HasField("meter_config") else None,
            metadata=msg.metadata,
            time_since_last_hit_ns=(msg.time_since_last_hit.elapsed_ns
                                    if msg.HasField("time_since_last_hit") else None),
            is_const=msg.is_const)


# --- indexed externs -----------------------------------------------------------------------------

@dataclass(frozen=True)
class CounterEntry:
    """One cell of an indirect counter (``index=None`` in a read filter: every cell)."""

    counter: str
    index: int | None = None
    data: CounterData | None = None

    entity_kind: ClassVar[str] = "counter_entry"

    def to_proto(self, index: P4Index) -> pb.CounterEntry:
        out = pb.CounterEntry(counter_id=index.counters.get(self.counter).id if self.counter else 0)
        if self.index is not None:
            out.index.index = self.index
        if self.data is not None:
            out.data.CopyFrom(self.data.to_proto())
        return out

    @classmethod
    def from_proto(cls, index: P4Index, msg: pb.CounterEntry) -> CounterEntry:
        return cls(index.counters.get(msg.counter_id).alias,
                   msg.index.index if msg.HasField("index") else None,
                   CounterData.from_proto(msg.data) if msg.HasField("data") else None)


@dataclass(frozen=True)
class DirectCounterEntry:
    """The direct counter of one table entry (match the entry; an empty match reads them all)."""

    table_entry: TableEntry
    data: CounterData | None = None

    entity_kind: ClassVar[str] = "direct_counter_entry"

    def to_proto(self, index: P4Index) -> pb.DirectCounterEntry:
        out = pb.DirectCounterEntry()
        out.table_entry.CopyFrom(TableEntry(self.table_entry.table, self.table_entry.match,
                                            priority=self.table_entry.priority,
                                            is_default=self.table_entry.is_default).to_proto(index))
        if self.data is not None:
            out.data.CopyFrom(self.data.to_proto())
        return out

    @classmethod
    def from_proto(cls, index: P4Index, msg: pb.DirectCounterEntry) -> DirectCounterEntry:
        return cls(TableEntry.from_proto(index, msg.table_entry),
                   CounterData.from_proto(msg.data) if msg.HasField("data") else None)


@dataclass(frozen=True)
class MeterEntry:
    meter: str
    index: int | None = None
    config: MeterConfig | None = None  # None on write: back to the default (all green)

    entity_kind: ClassVar[str] = "meter_entry"

    def to_proto(self, index: P4Index) -> pb.MeterEntry:
        out = pb.MeterEntry(meter_id=index.meters.get(self.meter).id if self.meter else 0)
        if self.index is not None:
            out.index.index = self.index
        if self.config is not None:
            out.config.CopyFrom(self.config.to_proto())
        return out

    @classmethod
    def from_proto(cls, index: P4Index, msg: pb.MeterEntry) -> MeterEntry:
        return cls(index.meters.get(msg.meter_id).alias,
                   msg.index.index if msg.HasField("index") else None,
                   MeterConfig.from_proto(msg.config) if msg.HasField("config") else None)


@dataclass(frozen=True)
class DirectMeterEntry:
    table_entry: TableEntry
    config: MeterConfig | None = None

    entity_kind: ClassVar[str] = "direct_meter_entry"

    def to_proto(self, index: P4Index) -> pb.DirectMeterEntry:
        out = pb.DirectMeterEntry()
        out.table_entry.CopyFrom(TableEntry(self.table_entry.table, self.table_entry.match,
                                            priority=self.table_entry.priority,
                                            is_default=self.table_entry.is_default).to_proto(index))
        if self.config is not None:
            out.config.CopyFrom(self.config.to_proto())
        return out

    @classmethod
    def from_proto(cls, index: P4Index, msg: pb.DirectMeterEntry) -> DirectMeterEntry:
        return cls(TableEntry.from_proto(index, msg.table_entry),
                   MeterConfig.from_proto(msg.config) if msg.HasField("config") else None)


@dataclass(frozen=True)
class RegisterEntry:
    """One register cell; ``value`` is an int for bit<W> registers (P4Data as decoded otherwise).

    Note BMv2's P4Runtime server answers register reads and writes with UNIMPLEMENTED.
    """

    register: str
    index: int | None = None
    value: Any = None

    entity_kind: ClassVar[str] = "register_entry"

    def to_proto(self, index: P4Index) -> pb.RegisterEntry:
        info = index.registers.get(self.register) if self.register else None
        out = pb.RegisterEntry(register_id=info.id if info else 0)
        if self.index is not None:
            out.index.index = self.index
        if self.value is not None:
            if info is None:
                raise ValueError("a register value needs a register")
            out.data.CopyFrom(index.encode_data(info.type_spec, self.value))
        return out

    @classmethod
    def from_proto(cls, index: P4Index, msg: pb.RegisterEntry) -> RegisterEntry:
        info = index.registers.get(msg.register_id)
        return cls(info.alias, msg.index.index if msg.HasField("index") else None,
                   index.decode_data(info.type_spec, msg.data) if msg.HasField("data") else None)


# --- packet replication engine -------------------------------------------------------------------

@dataclass(frozen=True)
class Replica:
    port: int
    instance: int = 0


def _replicas(items: Iterable[Replica | int | tuple[int, int]]) -> tuple[Replica, ...]:
    out = []
    for r in items:
        if isinstance(r, Replica):
            out.append(r)
        elif isinstance(r, int):
            out.append(Replica(r))
        else:
            out.append(Replica(*r))
    return tuple(out)


def _replicas_to_proto(replicas: tuple[Replica, ...], into: Any) -> None:
    for r in replicas:
        # egress_port (uint32) is what every BMv2 release takes; the bytes `port` is newer.
        into.add(egress_port=r.port, instance=r.instance)


def _replicas_from_proto(msgs: Iterable[pb.Replica]) -> tuple[Replica, ...]:
    out = []
    for r in msgs:
        port = codec.decode(r.port, 0) if r.WhichOneof("port_kind") == "port" else r.egress_port
        out.append(Replica(port, r.instance))
    return tuple(out)


@dataclass(frozen=True)
class MulticastGroupEntry:
    """A multicast group; replicas as Replica, port ints or (port, instance) pairs."""

    group_id: int
    replicas: tuple[Replica, ...] = ()
    metadata: bytes = b""

    entity_kind: ClassVar[str] = "packet_replication_engine_entry"

    def __post_init__(self) -> None:
        object.__setattr__(self, "replicas", _replicas(self.replicas))

    def to_proto(self, index: P4Index | None = None) -> pb.PacketReplicationEngineEntry:
        out = pb.PacketReplicationEngineEntry()
        mg = out.multicast_group_entry
        mg.multicast_group_id = self.group_id
        mg.metadata = self.metadata
        _replicas_to_proto(self.replicas, mg.replicas)
        return out

    @classmethod
    def from_proto(cls, index: P4Index | None, msg: pb.PacketReplicationEngineEntry) -> MulticastGroupEntry:
        mg = msg.multicast_group_entry
        return cls(mg.multicast_group_id, _replicas_from_proto(mg.replicas), mg.metadata)


@dataclass(frozen=True)
class CloneSessionEntry:
    session_id: int
    replicas: tuple[Replica, ...] = ()
    class_of_service: int = 0
    packet_length_bytes: int = 0  # 0: clone the whole packet

    entity_kind: ClassVar[str] = "packet_replication_engine_entry"

    def __post_init__(self) -> None:
        object.__setattr__(self, "replicas", _replicas(self.replicas))

    def to_proto(self, index: P4Index | None = None) -> pb.PacketReplicationEngineEntry:
        out = pb.PacketReplicationEngineEntry()
        cs = out.clone_session_entry
        cs.session_id = self.session_id
        cs.class_of_service = self.class_of_service
        cs.packet_length_bytes = self.packet_length_bytes
        _replicas_to_proto(self.replicas, cs.replicas)
        return out

    @classmethod
    def from_proto(cls, index: P4Index | None, msg: pb.PacketReplicationEngineEntry) -> CloneSessionEntry:
        cs = msg.clone_session_entry
        return cls(cs.session_id, _replicas_from_proto(cs.replicas), cs.class_of_service,
                   cs.packet_length_bytes)


# --- digests -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DigestEntry:
    """Turns on a digest's stream delivery (INSERT), retunes it (MODIFY) or stops it (DELETE)."""

    digest: str
    max_timeout_ns: int = 0
    max_list_size: int = 1
    ack_timeout_ns: int = 1_000_000_000

    entity_kind: ClassVar[str] = "digest_entry"

    def to_proto(self, index: P4Index) -> pb.DigestEntry:
        out = pb.DigestEntry(digest_id=index.digests.get(self.digest).id if self.digest else 0)
        if self.digest:
            out.config.max_timeout_ns = self.max_timeout_ns
            out.config.max_list_size = self.max_list_size
            out.config.ack_timeout_ns = self.ack_timeout_ns
        return out

    @classmethod
    def from_proto(cls, index: P4Index, msg: pb.DigestEntry) -> DigestEntry:
        c = msg.config
        return cls(index.digests.get(msg.digest_id).alias, c.max_timeout_ns, c.max_list_size, c.ack_timeout_ns)


# --- entities on the wire ------------------------------------------------------------------------

Entity = (TableEntry | CounterEntry | DirectCounterEntry | MeterEntry | DirectMeterEntry | RegisterEntry
          | MulticastGroupEntry | CloneSessionEntry | DigestEntry)


def entity_to_proto(index: P4Index, entity: Entity, out: pb.Entity | None = None) -> pb.Entity:
    """The Entity message of ``entity`` (filled into ``out`` when given)."""
    if out is None:
        out = pb.Entity()
    target = getattr(out, entity.entity_kind)
    target.SetInParent()  # an all-wildcard filter is an empty message, and must still be present
    fill = getattr(entity, "fill", None)
    if fill is not None:
        fill(index, target)
    else:
        target.CopyFrom(entity.to_proto(index))
    return out


def entity_from_proto(index: P4Index, msg: pb.Entity) -> Entity:
    kind = msg.WhichOneof("entity")
    if kind == "table_entry":
        return TableEntry.from_proto(index, msg.table_entry)
    if kind == "counter_entry":
        return CounterEntry.from_proto(index, msg.counter_entry)
    if kind == "direct_counter_entry":
        return DirectCounterEntry.from_proto(index, msg.direct_counter_entry)
    if kind == "meter_entry":
        return MeterEntry.from_proto(index, msg.meter_entry)
    if kind == "direct_meter_entry":
        return DirectMeterEntry.from_proto(index, msg.direct_meter_entry)
    if kind == "register_entry":
        return RegisterEntry.from_proto(index, msg.register_entry)
    if kind == "digest_entry":
        return DigestEntry.from_proto(index, msg.digest_entry)
    if kind == "packet_replication_engine_entry":
        pre = msg.packet_replication_engine_entry
        if pre.WhichOneof("type") == "clone_session_entry":
            return CloneSessionEntry.from_proto(index, pre)
        return MulticastGroupEntry.from_proto(index, pre)
    raise ValueError(f"unsupported entity kind {kind}")


class UpdateType(enum.IntEnum):
    INSERT = pb.Update.INSERT
    MODIFY = pb.Update.MODIFY
    DELETE = pb.Update.DELETE


@dataclass(frozen=True)
class Update:
    type: UpdateType
    entity: Entity

    def to_proto(self, index: P4Index) -> pb.Update:
        out = pb.Update()
        self.fill(index, out)
        return out

    def fill(self, index: P4Index, out: pb.Update) -> None:
        out.type = int(self.type)
        entity_to_proto(index, self.entity, out.entity)
        if isinstance(self.entity, TableEntry) and self.entity.time_since_last_hit_ns is not None:
            out.entity.table_entry.ClearField("time_since_last_hit")  # read-only: see TableEntry

    def __str__(self) -> str:
        return f"{self.type.name} {self.entity}"


# --- stream messages -----------------------------------------------------------------------------

def _metadata_to_proto(index: P4Index, header: str, values: Mapping[str, int]) -> list[pb.PacketMetadata]:
    if not values and header not in index.packet_metadata:
        return []
    info = index.packet_metadata.get(header)
    out = []
    for name, value in values.items():
        f = info.fields.get(name)
        out.append(pb.PacketMetadata(metadata_id=f.id, value=codec.encode(value, f.bitwidth, f"{header}.{f.name}")))
    missing = [f.name for f in info.fields if f.name not in values]
    if missing:
        # The spec requires every field; say which instead of letting the switch reject it.
        raise ValueError(f"{header}: missing metadata {', '.join(missing)}")
    return out


def _metadata_from_proto(index: P4Index, header: str, items: Iterable[pb.PacketMetadata]) -> dict[str, int]:
    items = list(items)
    if not items:
        return {}
    info = index.packet_metadata.get(header)
    out = {}
    for md in items:
        f = info.fields.get(md.metadata_id)
        out[f.name] = codec.decode(md.value, f.bitwidth, f"{header}.{f.name}")
    return out


@dataclass(frozen=True)
class PacketOut:
    """A frame to send through the CPU port, with the ``packet_out`` header's fields by name."""

    payload: bytes
    metadata: Mapping[str, int] = field(default_factory=dict)

    def to_proto(self, index: P4Index) -> pb.PacketOut:
        return pb.PacketOut(payload=self.payload,
                            metadata=_metadata_to_proto(index, "packet_out", self.metadata))

    @classmethod
    def from_proto(cls, index: P4Index, msg: pb.PacketOut) -> PacketOut:
        return cls(msg.payload, _metadata_from_proto(index, "packet_out", msg.metadata))


@dataclass(frozen=True)
class PacketIn:
    """A frame the switch sent to the controller, with the ``packet_in`` header's fields."""

    payload: bytes
    metadata: Mapping[str, int] = field(default_factory=dict)

    def to_proto(self, index: P4Index) -> pb.PacketIn:
        return pb.PacketIn(payload=self.payload, metadata=_metadata_to_proto(index, "packet_in", self.metadata))

    @classmethod
    def from_proto(cls, index: P4Index, msg: pb.PacketIn) -> PacketIn:
        return cls(msg.payload, _metadata_from_proto(index, "packet_in", msg.metadata))


@dataclass(frozen=True)
class DigestList:
    """Digest messages as decoded P4Data (a struct digest gives dicts by member name)."""

    digest: str
    list_id: int
    data: tuple[Any, ...]
    timestamp_ns: int = 0

    @classmethod
    def from_proto(cls, index: P4Index, msg: pb.DigestList) -> DigestList:
        info = index.digests.get(msg.digest_id)
        return cls(info.alias, msg.list_id, tuple(index.decode_data(info.type_spec, d) for d in msg.data),
                   msg.timestamp)

    def to_proto(self, index: P4Index) -> pb.DigestList:
        info = index.digests.get(self.digest)
        return pb.DigestList(digest_id=info.id, list_id=self.list_id, timestamp=self.timestamp_ns,
                             data=[index.encode_data(info.type_spec, d) for d in self.data])


@dataclass(frozen=True)
class IdleTimeoutNotification:
    entries: tuple[TableEntry, ...]
    timestamp_ns: int = 0

    @classmethod
    def from_proto(cls, index: P4Index, msg: pb.IdleTimeoutNotification) -> IdleTimeoutNotification:
        return cls(tuple(TableEntry.from_proto(index, e) for e in msg.table_entry), msg.timestamp)

    def to_proto(self, index: P4Index) -> pb.IdleTimeoutNotification:
        return pb.IdleTimeoutNotification(table_entry=[e.to_proto(index) for e in self.entries],
                                          timestamp=self.timestamp_ns)
