"""An index over a P4Info: every object by name, alias or id, with its ids and bit widths.

Entities (entities.py) are written with names; the wire wants ids. :class:`P4Index` is the one
place that knows the mapping. Every catalog answers ``get(name_or_alias_or_id)`` and raises
:class:`P4InfoLookupError` (a ``KeyError``) naming what was asked for and what exists, because
"KeyError: 'smak'" from deep inside a write is no help to whoever typed it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from google.protobuf import text_format
from p4.config.v1 import p4info_pb2, p4types_pb2
from p4.v1 import p4data_pb2

from ..files import MAX_P4INFO, read_bounded
from . import codec

__all__ = [
    "ActionInfo",
    "Catalog",
    "CounterInfo",
    "DigestInfo",
    "DirectCounterInfo",
    "DirectMeterInfo",
    "FieldInfo",
    "MatchFieldInfo",
    "MeterInfo",
    "P4Index",
    "P4InfoLookupError",
    "PacketMetadataInfo",
    "RegisterInfo",
    "TableInfo",
    "load_p4info",
]

_SHOWN = 20  # how many known names an error message lists before "..."


class P4InfoLookupError(KeyError):
    """A name or id that the P4Info does not have; says what kind of object and what exists."""

    def __init__(self, kind: str, key: str | int, known: list[str], scope: str = "") -> None:
        super().__init__(key)
        self.kind = kind
        self.key = key
        self.known = known
        self.scope = scope

    def __str__(self) -> str:
        where = f" of {self.scope}" if self.scope else " in the P4Info"
        shown = ", ".join(self.known[:_SHOWN]) + (", ..." if len(self.known) > _SHOWN else "")
        return f"no {self.kind} {self.key!r}{where} (known: {shown or 'none'})"


class _Named(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def name(self) -> str: ...
    @property
    def alias(self) -> str: ...


T = TypeVar("T", bound=_Named)


class Catalog(Generic[T]):
    """Objects of one kind, looked up by full name, alias or numeric id."""

    def __init__(self, kind: str, items: list[T], scope: str = "") -> None:
        self.kind = kind
        self.scope = scope
        self._items = items
        self._by_id = {it.id: it for it in items}
        self._by_name: dict[str, T] = {}
        # Full names win over aliases: an alias may equal another object's full name.
        for it in items:
            if it.alias and it.alias != it.name:
                self._by_name.setdefault(it.alias, it)
        for it in items:
            self._by_name[it.name] = it

    def get(self, key: str | int) -> T:
        found = self._by_id.get(key) if isinstance(key, int) else self._by_name.get(key)
        if found is None:
            raise P4InfoLookupError(self.kind, key, [it.alias or it.name for it in self._items], self.scope)
        return found

    __getitem__ = get

    def __contains__(self, key: object) -> bool:
        return key in self._by_id if isinstance(key, int) else key in self._by_name

    def __iter__(self) -> Iterator[T]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Catalog({self.kind}: {', '.join(it.alias or it.name for it in self._items)})"


@dataclass(frozen=True)
class FieldInfo:
    """An action parameter, a controller packet metadata field or a struct member."""

    id: int
    name: str
    bitwidth: int

    @property
    def alias(self) -> str:
        return self.name


@dataclass(frozen=True)
class MatchFieldInfo:
    id: int
    name: str
    bitwidth: int
    match_type: str  # "exact", "lpm", "ternary", "range", "optional" or the other_match_type

    @property
    def alias(self) -> str:
        return self.name


@dataclass(frozen=True)
class ActionInfo:
    id: int
    name: str
    alias: str
    params: Catalog[FieldInfo]


@dataclass(frozen=True)
class TableInfo:
    id: int
    name: str
    alias: str
    match_fields: Catalog[MatchFieldInfo]
    action_ids: tuple[int, ...]
    const_default_action_id: int
    size: int
    supports_idle_timeout: bool
    is_const: bool
    implementation_id: int
    direct_resource_ids: tuple[int, ...]

    @property
    def requires_priority(self) -> bool:
        """Spec: entries need a priority when any key is ternary, range or optional."""
        return any(f.match_type in ("ternary", "range", "optional") for f in self.match_fields)


@dataclass(frozen=True)
class CounterInfo:
    id: int
    name: str
    alias: str
    unit: str  # "bytes", "packets", "both" or "unspecified"
    size: int


@dataclass(frozen=True)
class DirectCounterInfo:
    id: int
    name: str
    alias: str
    unit: str
    table_id: int


@dataclass(frozen=True)
class MeterInfo:
    id: int
    name: str
    alias: str
    unit: str  # "bytes", "packets" or "unspecified"
    size: int


@dataclass(frozen=True)
class DirectMeterInfo:
    id: int
    name: str
    alias: str
    unit: str
    table_id: int


@dataclass(frozen=True)
class RegisterInfo:
    id: int
    name: str
    alias: str
    size: int
    bitwidth: int  # 0 when the element type is not a plain bitstring
    type_spec: p4types_pb2.P4DataTypeSpec


@dataclass(frozen=True)
class DigestInfo:
    id: int
    name: str
    alias: str
    type_spec: p4types_pb2.P4DataTypeSpec


@dataclass(frozen=True)
class PacketMetadataInfo:
    """A ``@controller_header``: "packet_in" or "packet_out" and its fields."""

    id: int
    name: str
    alias: str
    fields: Catalog[FieldInfo]


@dataclass(frozen=True)
class SimpleInfo:
    """Objects we only name (action profiles, value sets, externs): id, name, alias, size."""

    id: int
    name: str
    alias: str
    size: int


def _pre(obj: Any) -> tuple[int, str, str]:
    p = obj.preamble
    return p.id, p.name, p.alias or p.name


def _match_type(mf: p4info_pb2.MatchField) -> str:
    if mf.WhichOneof("match") == "other_match_type":
        return mf.other_match_type
    return p4info_pb2.MatchField.MatchType.Name(mf.match_type).lower()


def _bitwidth(spec: p4types_pb2.P4DataTypeSpec) -> int:
    if spec.WhichOneof("type_spec") != "bitstring":
        return 0
    bs = spec.bitstring
    kind = bs.WhichOneof("type_spec")
    return getattr(bs, kind).bitwidth if kind in ("bit", "int") else 0


def load_p4info(source: str | Path | bytes) -> p4info_pb2.P4Info:
    """A P4Info from a file path (text or binary protobuf) or from serialized bytes."""
    data = source if isinstance(source, bytes) else read_bounded(source, MAX_P4INFO)
    msg = p4info_pb2.P4Info()
    try:
        text_format.Parse(data.decode("utf-8"), msg)
    except (UnicodeDecodeError, text_format.ParseError):
        msg = p4info_pb2.P4Info.FromString(data)
    return msg


class P4Index:
    """Everything a controller needs from one P4Info, by name, alias or id."""

    def __init__(self, p4info: p4info_pb2.P4Info) -> None:
        self.p4info = p4info
        self._struct_layouts: dict[str, list[tuple[str, int, p4types_pb2.P4DataTypeSpec]]] = {}
        # per struct type: (member names, widths) when every member is a bit<W>, else None
        self._struct_flat: dict[str, tuple[tuple[str, ...], tuple[int, ...]] | None] = {}
        # entities.py's look-ups done once per table and key names, or per action: the controller
        # encodes several flows entries per connection, the same few shapes every time
        self.encode_cache: dict[Any, Any] = {}
        cu = p4info_pb2.CounterSpec.Unit
        mu = p4info_pb2.MeterSpec.Unit
        self.actions: Catalog[ActionInfo] = Catalog("action", [
            ActionInfo(*_pre(a), Catalog("param", [FieldInfo(p.id, p.name, p.bitwidth) for p in a.params],
                                         scope=f"action {a.preamble.name!r}"))
            for a in p4info.actions])
        self.tables: Catalog[TableInfo] = Catalog("table", [
            TableInfo(*_pre(t),
                      match_fields=Catalog("match field", [
                          MatchFieldInfo(m.id, m.name, m.bitwidth, _match_type(m)) for m in t.match_fields],
                          scope=f"table {t.preamble.name!r}"),
                      action_ids=tuple(r.id for r in t.action_refs),
                      const_default_action_id=t.const_default_action_id,
                      size=t.size,
                      supports_idle_timeout=t.idle_timeout_behavior == p4info_pb2.Table.NOTIFY_CONTROL,
                      is_const=t.is_const_table,
                      implementation_id=t.implementation_id,
                      direct_resource_ids=tuple(t.direct_resource_ids))
            for t in p4info.tables])
        self.counters: Catalog[CounterInfo] = Catalog("counter", [
            CounterInfo(*_pre(c), cu.Name(c.spec.unit).lower(), c.size) for c in p4info.counters])
        self.direct_counters: Catalog[DirectCounterInfo] = Catalog("direct counter", [
            DirectCounterInfo(*_pre(c), cu.Name(c.spec.unit).lower(), c.direct_table_id)
            for c in p4info.direct_counters])
        self.meters: Catalog[MeterInfo] = Catalog("meter", [
            MeterInfo(*_pre(m), mu.Name(m.spec.unit).lower(), m.size) for m in p4info.meters])
        self.direct_meters: Catalog[DirectMeterInfo] = Catalog("direct meter", [
            DirectMeterInfo(*_pre(m), mu.Name(m.spec.unit).lower(), m.direct_table_id)
            for m in p4info.direct_meters])
        self.registers: Catalog[RegisterInfo] = Catalog("register", [
            RegisterInfo(*_pre(r), r.size, _bitwidth(r.type_spec), r.type_spec) for r in p4info.registers])
        self.digests: Catalog[DigestInfo] = Catalog("digest", [
            DigestInfo(*_pre(d), d.type_spec) for d in p4info.digests])
        self.packet_metadata: Catalog[PacketMetadataInfo] = Catalog("controller packet metadata", [
            PacketMetadataInfo(*_pre(c), Catalog("metadata field", [
                FieldInfo(m.id, m.name, m.bitwidth) for m in c.metadata], scope=f"{c.preamble.name!r}"))
            for c in p4info.controller_packet_metadata])
        self.action_profiles: Catalog[SimpleInfo] = Catalog("action profile", [
            SimpleInfo(*_pre(a), a.size) for a in p4info.action_profiles])
        self.value_sets: Catalog[SimpleInfo] = Catalog("value set", [
            SimpleInfo(*_pre(v), v.size) for v in p4info.value_sets])

    @classmethod
    def from_file(cls, path: str | Path) -> P4Index:
        return cls(load_p4info(path))

    # Short forms: index.table("smac").match_fields["hdr.ethernet.src"].bitwidth
    def table(self, key: str | int) -> TableInfo:
        return self.tables.get(key)

    def action(self, key: str | int) -> ActionInfo:
        return self.actions.get(key)

    def counter(self, key: str | int) -> CounterInfo:
        return self.counters.get(key)

    def direct_counter(self, key: str | int) -> DirectCounterInfo:
        return self.direct_counters.get(key)

    def meter(self, key: str | int) -> MeterInfo:
        return self.meters.get(key)

    def register(self, key: str | int) -> RegisterInfo:
        return self.registers.get(key)

    def digest(self, key: str | int) -> DigestInfo:
        return self.digests.get(key)

    def controller_metadata(self, key: str | int) -> PacketMetadataInfo:
        return self.packet_metadata.get(key)

    def direct_counter_of(self, table: str | int) -> DirectCounterInfo | None:
        tid = self.tables.get(table).id
        return next((c for c in self.direct_counters if c.table_id == tid), None)

    # --- P4Data (digests, registers) ------------------------------------------------------------
    def decode_data(self, spec: p4types_pb2.P4DataTypeSpec, data: p4data_pb2.P4Data) -> Any:
        """P4Data as Python: bitstrings as ints, structs and headers as dicts by member name,
        tuples as lists, bools as bools. Anything else comes back as the message itself."""
        kind = data.WhichOneof("data")
        if kind == "bitstring":
            return codec.decode(data.bitstring, _bitwidth(spec), "P4Data")
        if kind == "bool":
            return data.bool
        if kind == "tuple" and spec.WhichOneof("type_spec") == "tuple":
            return [self.decode_data(s, d) for s, d in zip(spec.tuple.members, data.tuple.members, strict=True)]
        if kind == "struct" and spec.WhichOneof("type_spec") == "struct":
            # A digest's struct comes by the thousand a second: its members' names and widths are
            # looked up once per struct type, and bitstrings decoded straight from there.
            layout = self._struct_layouts.get(spec.struct.name)
            if layout is None:
                members = self.p4info.type_info.structs[spec.struct.name].members
                layout = self._struct_layouts[spec.struct.name] = [(m.name, _bitwidth(m.type_spec), m.type_spec)
                                                                   for m in members]
                self._struct_flat[spec.struct.name] = (
                    (tuple(m[0] for m in layout), tuple(m[1] for m in layout))
                    if all(m[1] for m in layout) else None)
            members_in = data.struct.members
            if len(layout) != len(members_in):
                raise ValueError(f"struct {spec.struct.name}: {len(members_in)} members, "
                                 f"the P4Info says {len(layout)}")
            flat = self._struct_flat.get(spec.struct.name)
            if flat is not None:
                # Every member a bit<W> (a digest's usual shape): one pass over the bytestrings. An
                # empty one (another kind of P4Data, or none) or a value too wide takes the path
                # below, which says what is wrong.
                raw = [d.bitstring for d in members_in]
                if all(raw):
                    values = [int.from_bytes(b, "big") for b in raw]
                    if not any(map(int.__rshift__, values, flat[1])):
                        return dict(zip(flat[0], values, strict=True))
            out: dict[str, Any] = {}
            for (name, width, mspec), d in zip(layout, members_in, strict=True):
                if width and d.WhichOneof("data") == "bitstring":
                    out[name] = codec.decode(d.bitstring, width, name)
                else:
                    out[name] = self.decode_data(mspec, d)
            return out
        if kind == "header" and spec.WhichOneof("type_spec") == "header":
            members = self.p4info.type_info.headers[spec.header.name].members
            return {m.name: codec.decode(d, _bitwidth_like(m.type_spec), m.name)
                    for m, d in zip(members, data.header.bitstrings, strict=True)}
        return data

    def encode_data(self, spec: p4types_pb2.P4DataTypeSpec, value: Any) -> p4data_pb2.P4Data:
        """Inverse of :meth:`decode_data` for bitstrings, bools, tuples and structs."""
        out = p4data_pb2.P4Data()
        kind = spec.WhichOneof("type_spec")
        if isinstance(value, p4data_pb2.P4Data):
            out.CopyFrom(value)
        elif kind == "bool":
            out.bool = bool(value)
        elif kind == "tuple":
            for s, v in zip(spec.tuple.members, value, strict=True):
                out.tuple.members.append(self.encode_data(s, v))
        elif kind == "struct":
            for m in self.p4info.type_info.structs[spec.struct.name].members:
                out.struct.members.append(self.encode_data(m.type_spec, value[m.name]))
        else:
            out.bitstring = codec.encode(value, _bitwidth(spec), "P4Data")
        return out


def _bitwidth_like(spec: p4types_pb2.P4BitstringLikeTypeSpec) -> int:
    kind = spec.WhichOneof("type_spec")
    return getattr(spec, kind).bitwidth if kind in ("bit", "int") else 0
