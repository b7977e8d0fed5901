"""P4Info generation: builds the P4Runtime P4Info message p4c-bm2-ss would emit for a program.

The rules follow p4c's control-plane serializer and its v1model architecture handler:

* ids: ``@id`` values are reserved first (the entity prefix is added when the top byte is 0);
  every other name of a kind, taken in bytewise-sorted order, gets
  ``prefix << 24 | (jenkins(name) & 0xFFFFFF)``, probing the hash upwards on a collision.
  One set of taken ids is shared by every kind. Inner ids (match fields, params, packet
  metadata, value-set fields) count 1..N by position, ``@id`` values taking precedence.
* aliases: the shortest dot-suffix of the name that no other control-plane symbol shares
  (every kind, hidden objects included; controller headers take part by header type name).
* p4c generates P4Info right after its frontend, so never-applied tables and unreferenced
  actions/value sets are gone, top-level actions are copied into each control that uses them,
  and a table without ``default_action`` gets ``@defaultonly NoAction``.
* order: blocks in V1Switch parameter order; actions per control (used top-level actions
  first, then the control's own); direct counters/meters in the order of their tables.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from google.protobuf import json_format, text_format
from p4.config.v1 import p4info_pb2, p4types_pb2

from . import ast
from .errors import CompileError
from .lexer import EOF, Lexer
from .model import (
    ActionInfo,
    ActionRefInfo,
    BlockUse,
    ExternInstance,
    ProgramModel,
    TableInfo,
    ValueSetInfo,
)
from .types import (
    BitT,
    BoolT,
    EnumT,
    ErrorT,
    HeaderT,
    NewT,
    StackT,
    StructLikeT,
    TupleT,
    Type,
    UnionT,
    VarbitT,
    strip_newtype,
    width_of,
)

log = logging.getLogger(__name__)

# Id prefixes (p4info.proto's P4Ids.Prefix).
ACTION = 0x01
TABLE = 0x02
VALUE_SET = 0x03
CONTROLLER_HEADER = 0x04
ACTION_PROFILE = 0x11
COUNTER = 0x12
DIRECT_COUNTER = 0x13
METER = 0x14
DIRECT_METER = 0x15
REGISTER = 0x16
DIGEST = 0x17

ARCH = "v1model"
NOACTION = "NoAction"

# Annotations P4Info represents elsewhere (names, ids, documentation) and never copies.
_SKIPPED_ANNOTATIONS = {"name", "id", "brief", "description"}

_COUNTER_UNITS = {
    "packets": p4info_pb2.CounterSpec.PACKETS,
    "bytes": p4info_pb2.CounterSpec.BYTES,
    "packets_and_bytes": p4info_pb2.CounterSpec.BOTH,
}
_METER_UNITS = {"packets": p4info_pb2.MeterSpec.PACKETS, "bytes": p4info_pb2.MeterSpec.BYTES}
_MATCH_TYPES = {
    "exact": p4info_pb2.MatchField.EXACT,
    "lpm": p4info_pb2.MatchField.LPM,
    "ternary": p4info_pb2.MatchField.TERNARY,
    "range": p4info_pb2.MatchField.RANGE,  # v1model's
    "optional": p4info_pb2.MatchField.OPTIONAL,  # v1model's
}


# -- ids and aliases ------------------------------------------------------------------------------


def jenkins_hash(name: str) -> int:
    """Jenkins one-at-a-time hash of the UTF-8 bytes of ``name`` (32 bits), as p4c computes it."""
    h = 0
    for b in name.encode():
        h = (h + b) & 0xFFFFFFFF
        h = (h + (h << 10)) & 0xFFFFFFFF
        h ^= h >> 6
    h = (h + (h << 3)) & 0xFFFFFFFF
    h ^= h >> 11
    h = (h + (h << 15)) & 0xFFFFFFFF
    return h


class SymbolTable:
    """Control-plane symbols of every kind: their ids and aliases.

    Symbols are added first (``add``); ``assign_ids`` then hands out the ids, after which
    ``id``/``alias`` answer. Adding a (kind, name) twice is harmless, as in p4c.
    """

    def __init__(self) -> None:
        self._kinds: dict[int, dict[str, int | None]] = {}
        self._taken: set[int] = set()
        self._names: set[str] = set()
        self._suffix_counts: dict[tuple[str, ...], int] = {}

    def add(self, prefix: int, name: str, user_id: int | None = None) -> None:
        table = self._kinds.setdefault(prefix, {})
        if name in table:
            return
        if user_id is not None:
            if user_id >> 24 == 0:
                user_id |= prefix << 24
            elif user_id >> 24 != prefix:
                raise ValueError(f"{name}: @id {user_id:#x} has the wrong 8-bit prefix (expected {prefix:#x})")
            if user_id in self._taken:
                raise ValueError(f"{name}: @id {user_id:#x} is assigned to multiple declarations")
            self._taken.add(user_id)
        table[name] = user_id
        self._add_suffixes(name)

    def _add_suffixes(self, name: str) -> None:
        if name in self._names:
            return
        self._names.add(name)
        parts = name.split(".")
        for n in range(1, len(parts) + 1):
            key = tuple(parts[-n:])
            self._suffix_counts[key] = self._suffix_counts.get(key, 0) + 1

    def assign_ids(self) -> None:
        # Kinds in prefix order, names bytewise-sorted: the probing result depends on both.
        for prefix in sorted(self._kinds):
            table = self._kinds[prefix]
            for name in sorted((n for n, i in table.items() if i is None), key=lambda n: n.encode()):
                h = jenkins_hash(name)
                start = h
                while True:
                    cand = (prefix << 24) | (h & 0xFFFFFF)
                    if cand not in self._taken:
                        break
                    h = (h + 1) & 0xFFFFFFFF
                    if h == start:
                        raise ValueError(f"no P4Runtime id left for {name}")
                self._taken.add(cand)
                table[name] = cand

    def id(self, prefix: int, name: str) -> int:
        v = self._kinds[prefix][name]
        assert v is not None, "ids are not assigned yet"
        return v

    def alias(self, name: str) -> str:
        parts = name.split(".")
        for n in range(1, len(parts) + 1):
            if self._suffix_counts.get(tuple(parts[-n:]), 0) < 2:
                return ".".join(parts[-n:])
        return name


def inner_ids(items: list[list[ast.Annotation]]) -> list[int]:
    """Ids of inner objects (match fields, params, metadata): ``@id`` first, then by position.

    Like p4c, an element without ``@id`` at position i (from 1) takes i, or the next free
    value above the last one handed out when i is taken.
    """
    user = [_id_annotation(annos) for annos in items]
    taken = {u for u in user if u is not None}
    out: list[int] = []
    index = 1
    for u in user:
        if u is not None:
            out.append(u)
            index += 1
            continue
        while index in taken:
            index += 1
        out.append(index)
        taken.add(index)
    return out


# -- annotations ------------------------------------------------------------------------------------


def _find(annos: Iterable[ast.Annotation], name: str) -> ast.Annotation | None:
    for a in annos:
        if a.name == name:
            return a
    return None


def _const_value(e: ast.Expr) -> int | str | bool | None:
    if isinstance(e, ast.IntLiteral):
        return e.value
    if isinstance(e, ast.StringLiteral):
        return e.value
    if isinstance(e, ast.BoolLiteral):
        return e.value
    return None


def _id_annotation(annos: Iterable[ast.Annotation]) -> int | None:
    a = _find(annos, "id")
    if a is None:
        return None
    if a.args:
        v = _const_value(a.args[0])
        if isinstance(v, int) and not isinstance(v, bool):
            return v
    if a.raw is not None:
        return int(a.raw.strip(), 0)
    raise ValueError("@id needs an integer argument")


def _string_arg(a: ast.Annotation) -> str | None:
    if a.args and isinstance(a.args[0], ast.StringLiteral):
        return a.args[0].value
    if a.raw is not None:
        raw = a.raw.strip()
        if len(raw) >= 2 and raw[0] == raw[-1] == '"':
            return raw[1:-1]
    return None


def _annotation_text(a: ast.Annotation) -> str:
    """An unstructured annotation as p4c prints it into P4Info: the name, then the body's tokens
    as written, one space between each (``@a(x+1, "s")`` is ``@a(x + 1 , "s")``); an empty
    body prints as the bare name."""
    if a.raw is None:
        return f"@{a.name}"
    try:
        toks = Lexer(a.raw, "<annotation>").tokenize()
        body = " ".join(t.text for t in toks if t.kind != EOF)
    except CompileError:
        body = a.raw.strip()
    return f"@{a.name}({body})" if body else f"@{a.name}"


def _structured(a: ast.Annotation, out: p4types_pb2.StructuredAnnotation) -> None:
    def expr(e: ast.Expr, dst: p4types_pb2.Expression) -> None:
        v = _const_value(e)
        if isinstance(v, bool):
            dst.bool_value = v
        elif isinstance(v, int):
            dst.int64_value = v
        elif isinstance(v, str):
            dst.string_value = v
        else:
            raise ValueError(f"@{a.name}: structured annotation values must be literals")

    out.name = a.name
    if a.kv:
        for k, e in a.kv.items():
            kv = out.kv_pair_list.kv_pairs.add()
            kv.key = k
            expr(e, kv.value)
    elif a.args:
        for e in a.args:
            expr(e, out.expression_list.expressions.add())


def add_annotations(msg: object, annos: Iterable[ast.Annotation], skip: Iterable[str] = ()) -> None:
    """Copy annotations to a message with ``annotations``/``structured_annotations`` fields."""
    skipped = _SKIPPED_ANNOTATIONS | set(skip)
    for a in annos:
        if a.name in skipped:
            continue
        if a.structured:
            _structured(a, msg.structured_annotations.add())  # type: ignore[attr-defined]
        else:
            msg.annotations.append(_annotation_text(a))  # type: ignore[attr-defined]


def add_documentation(msg: object, annos: Iterable[ast.Annotation]) -> None:
    """Set ``doc`` from @brief / @description (only when one of them is present)."""
    for a in annos:
        if a.name in ("brief", "description"):
            text = _string_arg(a) or ""
            setattr(msg.doc, a.name, text)  # type: ignore[attr-defined]


def set_preamble(pre: p4info_pb2.Preamble, id_: int, name: str, alias: str, annos: Iterable[ast.Annotation]) -> None:
    annos = list(annos)
    pre.id = id_
    pre.name = name
    pre.alias = alias
    add_annotations(pre, annos)
    add_documentation(pre, annos)


def _hidden(annos: Iterable[ast.Annotation]) -> bool:
    return _find(annos, "hidden") is not None


# -- type specs ---------------------------------------------------------------------------------------


def _translation(t: NewT) -> tuple[str, int | None] | None:
    """``@p4runtime_translation("uri", bit<W>|string)`` of a new type: (uri, W or None for string)."""
    a = _find(t.annotations, "p4runtime_translation")
    if a is None:
        return None
    raw = a.raw or ""
    m = re.match(r'\s*"([^"]*)"\s*,\s*(.+?)\s*$', raw, re.S)
    if m is None:
        raise ValueError(f"type {t.name}: cannot read @p4runtime_translation({raw})")
    sdn = m.group(2)
    # the SDN type: a bit width (``32``, as p4c's P4Runtime spec section on translation has
    # it), ``bit<32>``, or ``string``
    wm = re.fullmatch(r"(?:bit\s*<\s*(\w+)\s*>|(\d\w*))", sdn)
    if wm is not None:
        return m.group(1), int(wm.group(1) or wm.group(2), 0)
    if sdn == "string":
        return m.group(1), None
    raise ValueError(f"type {t.name}: unsupported translation type {sdn}")


class TypeSpecs:
    """P4DataTypeSpec conversion, filling ``type_info`` with the named types it meets."""

    def __init__(self, info: p4info_pb2.P4Info, errors: Iterable[str] = ()) -> None:
        self.info = info
        self.errors = list(errors)

    def listed(self, t: Type | None) -> None:
        """A key's or a parameter's type: p4c lists the serializable enum (and the error type)
        it names in type_info, though the field itself carries only a width."""
        t = t.base if isinstance(t, NewT) and _translation(t) is None and isinstance(t.base, EnumT) else t
        if isinstance(t, EnumT) and t.underlying is not None:
            self._named(t)
        elif isinstance(t, ErrorT):
            self.convert(t, p4types_pb2.P4DataTypeSpec())

    def convert(self, t: Type, spec: p4types_pb2.P4DataTypeSpec) -> None:
        ti = self.info.type_info
        if isinstance(t, NewT):
            spec.new_type.name = t.name
            if t.name not in ti.new_types:
                nt = ti.new_types[t.name]
                tr = _translation(t)
                if tr is not None:
                    nt.translated_type.uri = tr[0]
                    if tr[1] is None:
                        nt.translated_type.sdn_string.SetInParent()
                    else:
                        nt.translated_type.sdn_bitwidth = tr[1]
                else:
                    # p4c writes the type it stands for at the bottom of a chain of types
                    # (type Inner_t Outer_t: Outer_t's original type is Inner_t's bit<8>)
                    self.convert(strip_newtype(t.base), nt.original_type)
                add_annotations(nt, [a for a in t.annotations if a.name != "p4runtime_translation"])
            return
        if isinstance(t, BitT):
            if t.signed:
                spec.bitstring.int.bitwidth = t.width
            else:
                spec.bitstring.bit.bitwidth = t.width
        elif isinstance(t, VarbitT):
            spec.bitstring.varbit.max_bitwidth = t.max_width
        elif isinstance(t, BoolT):
            spec.bool.SetInParent()
        elif isinstance(t, ErrorT):
            spec.error.SetInParent()
            if not ti.HasField("error"):
                ti.error.SetInParent()
                ti.error.members.extend(self.errors)
        elif isinstance(t, TupleT):
            spec.tuple.SetInParent()
            for e in t.elems:
                self.convert(e, spec.tuple.members.add())
        elif isinstance(t, StackT):
            elem = t.elem
            if isinstance(elem, UnionT):
                spec.header_union_stack.header_union.name = elem.name
                spec.header_union_stack.size = t.size
            else:
                assert isinstance(elem, HeaderT)
                spec.header_stack.header.name = elem.name
                spec.header_stack.size = t.size
            self._named(elem)
        elif isinstance(t, EnumT):
            if t.underlying is not None:
                spec.serializable_enum.name = t.name
            else:
                spec.enum.name = t.name
            self._named(t)
        elif isinstance(t, HeaderT):
            spec.header.name = t.name
            self._named(t)
        elif isinstance(t, UnionT):
            spec.header_union.name = t.name
            self._named(t)
        elif isinstance(t, StructLikeT):
            spec.struct.name = t.name
            self._named(t)
        else:
            raise ValueError(f"type {t} has no P4Runtime representation")

    def _named(self, t: Type) -> None:
        ti = self.info.type_info
        if isinstance(t, EnumT):
            if t.underlying is not None:
                if t.name in ti.serializable_enums:
                    return
                se = ti.serializable_enums[t.name]
                se.underlying_type.bitwidth = t.underlying.width
                for m in t.members:
                    mem = se.members.add()
                    mem.name = m
                    mem.value = _bytes(t.values[m], t.underlying.width)
            else:
                if t.name in ti.enums:
                    return
                en = ti.enums[t.name]
                for m in t.members:
                    en.members.add().name = m
            return
        assert isinstance(t, StructLikeT)
        if isinstance(t, HeaderT):
            if t.name in ti.headers:
                return
            h = ti.headers[t.name]
            for fname, ft in t.fields:
                m = h.members.add()
                m.name = fname
                if isinstance(ft, BitT) and ft.signed:
                    m.type_spec.int.bitwidth = ft.width
                elif isinstance(ft, VarbitT):
                    m.type_spec.varbit.max_bitwidth = ft.max_width
                else:
                    m.type_spec.bit.bitwidth = width_of(ft)
            add_annotations(h, t.annotations)
        elif isinstance(t, UnionT):
            if t.name in ti.header_unions:
                return
            u = ti.header_unions[t.name]
            for fname, ft in t.fields:
                m = u.members.add()
                m.name = fname
                m.header.name = str(ft)
                self._named(ft)
            add_annotations(u, t.annotations)
        else:
            if t.name in ti.structs:
                return
            s = ti.structs[t.name]
            for fname, ft in t.fields:
                m = s.members.add()
                m.name = fname
                self.convert(ft, m.type_spec)
            add_annotations(s, t.annotations)


def _bytes(value: int, width: int) -> bytes:
    """A value as p4c writes it in P4Info: big-endian on ceil(width / 8) bytes."""
    n = max(1, (width + 7) // 8)
    return (value & ((1 << (n * 8)) - 1)).to_bytes(n, "big")


# -- what p4c's frontend leaves in the program ------------------------------------------------------


@dataclass
class _Usage:
    blocks: list[BlockUse] = field(default_factory=list)
    used_actions: set[str] = field(default_factory=set)
    applied_tables: set[str] = field(default_factory=set)
    used_value_sets: set[str] = field(default_factory=set)


def _usage(model: ProgramModel) -> _Usage:
    """What p4c keeps: applied tables, used actions and value sets (the elaborator marks them)."""
    u = _Usage()
    u.blocks = model.blocks
    u.applied_tables = {t.name for t in model.tables if t.applied}
    u.used_actions = {a.name for a in model.actions if a.used}
    u.used_value_sets = {vs.name for vs in model.value_sets if vs.used}
    return u


def _action_order(model: ProgramModel, u: _Usage) -> list[ActionInfo]:
    by_name = {a.name: a for a in model.actions}
    local = {n for b in u.blocks for n in b.actions}
    order: list[str] = []
    for b in u.blocks:
        if b.kind != "control":
            continue
        order.extend(n for n in b.references if n not in local and n in u.used_actions)
        order.extend(n for n in b.actions if n in u.used_actions)
    # anything the block structure missed keeps the model's order, at the end
    order.extend(a.name for a in model.actions if a.name in u.used_actions)
    return [by_name[n] for n in dict.fromkeys(order) if n in by_name]


def _table_refs(t: TableInfo, noaction: ActionInfo | None) -> list[ActionRefInfo]:
    """The table's action list as p4c's frontend leaves it (implicit ``@defaultonly NoAction``)."""
    refs = list(t.actions)
    d = t.default_action
    if d is not None and d.name == NOACTION and all(r.action.name != NOACTION for r in refs):
        refs.append(ActionRefInfo(d, "DEFAULT_ONLY", [ast.Annotation("defaultonly")]))
    elif d is None and noaction is not None and all(r.action.name != NOACTION for r in refs):
        refs.append(ActionRefInfo(noaction, "DEFAULT_ONLY", [ast.Annotation("defaultonly")]))
    return refs


# -- the builder -------------------------------------------------------------------------------------


def build_p4info(model: ProgramModel) -> p4info_pb2.P4Info:
    """The P4Info of an elaborated v1model program, equal to what p4c-bm2-ss writes."""
    u = _usage(model)
    noaction = model.action(NOACTION)
    tables = [t for t in model.tables if t.name in u.applied_tables]
    table_refs = {t.name: _table_refs(t, noaction) for t in tables}
    for refs in table_refs.values():
        u.used_actions.update(r.action.name for r in refs)
    actions = _action_order(model, u)
    value_sets = [vs for vs in model.value_sets if vs.name in u.used_value_sets]
    externs = [x for x in model.externs if x.kind in ("counter", "direct_counter", "meter", "direct_meter", "register")]
    extern_prefix = {"counter": COUNTER, "direct_counter": DIRECT_COUNTER, "meter": METER,
                     "direct_meter": DIRECT_METER, "register": REGISTER}
    profiles = _action_profiles(model, tables)

    # two different objects of one kind under one name (@name(".NoAction") on two actions):
    # p4c refuses the program
    decls: dict[str, set[int]] = {}
    for a in [*(r.action for refs in table_refs.values() for r in refs), *(a for a in model.actions if a.used)]:
        decls.setdefault(a.name, set()).add(a.decl_key)
        if len(decls[a.name]) > 1:
            raise CompileError(f"{a.name}: conflicting control plane name (two actions have it)")
    for kind, objs in (("table", tables), ("extern", externs + profiles)):
        seen: dict[str, object] = {}
        for o in objs:
            if seen.setdefault(o.name, o) is not o:
                raise CompileError(f"{o.name}: conflicting control plane name (two {kind}s have it)")

    # 1. symbols (hidden ones included: they still shape ids and aliases)
    syms = SymbolTable()
    for a in actions:
        syms.add(ACTION, a.name, _id_annotation(a.annotations))
    for x in externs:
        syms.add(extern_prefix[x.kind], x.name, _id_annotation(x.annotations))
    for t in tables:
        syms.add(TABLE, t.name, _id_annotation(t.annotations))
    for x in profiles:
        syms.add(ACTION_PROFILE, x.name, _id_annotation(x.annotations))
    for vs in value_sets:
        syms.add(VALUE_SET, vs.name, _id_annotation(vs.annotations))
    for d in model.digests:
        syms.add(DIGEST, d.name)
    for ch in model.controller_headers:
        syms.add(CONTROLLER_HEADER, ch.header.name, _id_annotation(ch.header.annotations))
    syms.assign_ids()

    info = p4info_pb2.P4Info()
    specs = TypeSpecs(info, model.errors)
    # p4c asks for type_info whenever it serializes a table, a parameter or an extern, so the
    # (possibly empty) message is present in practically every P4Info.
    # (@hidden tables and actions are not serialized: they do not count)
    shown_tables = [t for t in tables if not (t.hidden or _hidden(t.annotations))]
    shown_params = any(a.params for a in actions if not (a.hidden or _hidden(a.annotations)))
    if (shown_tables or externs or profiles or model.digests or shown_params or model.controller_headers
            or model.calls_extern_function):
        info.type_info.SetInParent()

    # 2. tables (direct resources are written as their table is)
    by_extern = {x.name: x for x in externs}
    for t in tables:
        if t.hidden or _hidden(t.annotations):
            continue
        tm = info.tables.add()
        set_preamble(tm.preamble, syms.id(TABLE, t.name), t.name, syms.alias(t.name), t.annotations)
        for k, kid in zip(t.keys, inner_ids([k.annotations for k in t.keys]), strict=True):
            mf = tm.match_fields.add()
            mf.id = kid
            mf.name = k.name
            add_annotations(mf, k.annotations)
            add_documentation(mf, k.annotations)
            mf.bitwidth = _field_width(model, k.width, k.type_name, specs)
            if k.match_kind in _MATCH_TYPES:
                mf.match_type = _MATCH_TYPES[k.match_kind]
            else:
                mf.other_match_type = k.match_kind
            if k.type_name:
                mf.type_name.name = k.type_name
            specs.listed(k.p4type)
        for r in table_refs[t.name]:
            ar = tm.action_refs.add()
            ar.id = syms.id(ACTION, r.action.name)
            add_annotations(ar, r.annotations)
            ar.scope = p4info_pb2.ActionRef.Scope.Value(r.scope)
        if t.default_action is not None:
            if t.default_const:
                tm.const_default_action_id = syms.id(ACTION, t.default_action.name)
            # p4c writes the initial default action (with its arguments) for a const default too
            tm.initial_default_action.action_id = syms.id(ACTION, t.default_action.name)
            for pid, (p, v) in enumerate(zip(t.default_action.params, t.default_args, strict=False), 1):
                arg = tm.initial_default_action.arguments.add()
                arg.param_id = pid
                arg.value = _bytes(v, p.width)
        elif noaction is not None:
            tm.initial_default_action.action_id = syms.id(ACTION, NOACTION)
        if t.implementation is not None:
            tm.implementation_id = syms.id(ACTION_PROFILE, t.implementation)
        tm.size = t.size if t.size else 1024
        if t.const_entries or not t.entries_const:
            # an ``entries`` property (const or not) gives the table initial entries
            if t.const_entries:
                tm.has_initial_entries = True
            if t.entries_const and t.const_entries:
                tm.is_const_table = True
        for rname, prefix, kind in ((t.direct_counter, DIRECT_COUNTER, "counter"), (t.direct_meter, DIRECT_METER, "meter")):
            if rname is None:
                continue
            tm.direct_resource_ids.append(syms.id(prefix, rname))
            x = by_extern.get(rname)
            annos = x.annotations if x is not None else []
            unit = str((x.args if x is not None else {}).get("type", ""))
            if kind == "counter":
                dc = info.direct_counters.add()
                set_preamble(dc.preamble, syms.id(prefix, rname), rname, syms.alias(rname), annos)
                dc.spec.unit = _COUNTER_UNITS.get(unit, p4info_pb2.CounterSpec.UNSPECIFIED)
                dc.direct_table_id = tm.preamble.id
            else:
                dm = info.direct_meters.add()
                set_preamble(dm.preamble, syms.id(prefix, rname), rname, syms.alias(rname), annos)
                dm.spec.unit = _METER_UNITS.get(unit, p4info_pb2.MeterSpec.UNSPECIFIED)
                dm.direct_table_id = tm.preamble.id
        if t.support_timeout:
            tm.idle_timeout_behavior = p4info_pb2.Table.NOTIFY_CONTROL

    # 3. actions
    for a in actions:
        if a.hidden or _hidden(a.annotations):
            continue
        am = info.actions.add()
        set_preamble(am.preamble, syms.id(ACTION, a.name), a.name, syms.alias(a.name), a.annotations)
        for p, pid in zip(a.params, inner_ids([p.annotations for p in a.params]), strict=True):
            pm = am.params.add()
            pm.id = pid
            pm.name = _string_arg(_find(p.annotations, "name") or ast.Annotation("name")) or p.name
            add_annotations(pm, p.annotations)
            add_documentation(pm, p.annotations)
            pm.bitwidth = _field_width(model, p.width, p.type_name, specs)
            if p.type_name:
                pm.type_name.name = p.type_name
            specs.listed(p.p4type)

    # 4. indexed counters, meters, registers (declaration order)
    for x in externs:
        if x.kind == "counter":
            cm = info.counters.add()
            set_preamble(cm.preamble, syms.id(COUNTER, x.name), x.name, syms.alias(x.name), x.annotations)
            cm.spec.unit = _COUNTER_UNITS.get(str(x.args.get("type", "")), p4info_pb2.CounterSpec.UNSPECIFIED)
            cm.size = int(x.args.get("size", 0))
            _index_type(x.type_args, 0, cm)
        elif x.kind == "meter":
            mm = info.meters.add()
            set_preamble(mm.preamble, syms.id(METER, x.name), x.name, syms.alias(x.name), x.annotations)
            mm.spec.unit = _METER_UNITS.get(str(x.args.get("type", "")), p4info_pb2.MeterSpec.UNSPECIFIED)
            mm.size = int(x.args.get("size", 0))
            _index_type(x.type_args, 0, mm)
        elif x.kind == "register":
            rm = info.registers.add()
            set_preamble(rm.preamble, syms.id(REGISTER, x.name), x.name, syms.alias(x.name), x.annotations)
            rm.size = int(x.args.get("size", 0))
            if x.type_args:
                specs.convert(x.type_args[0], rm.type_spec)
            else:
                rm.type_spec.bitstring.bit.bitwidth = int(x.args.get("width", 0))
            _index_type(x.type_args, 1, rm)

    # 4b. action profiles and selectors (declared ones where declared, in-place ones at their table)
    for x in profiles:
        _action_profile(info, syms, x, [t for t in tables if t.implementation == x.name])

    # 5. value sets
    for vs in value_sets:
        _value_set(info, syms, vs)

    # 6. digests (one per data type; p4c attaches no annotations to v1model digests)
    for d in model.digests:
        dm = info.digests.add()
        set_preamble(dm.preamble, syms.id(DIGEST, d.name), d.name, syms.alias(d.name), [])
        specs.convert(d.type, dm.type_spec)

    # 7. controller packet metadata: named after the annotation, fields in order
    for ch in model.controller_headers:
        if _hidden(ch.header.annotations):
            continue
        cm = info.controller_packet_metadata.add()
        hid = syms.id(CONTROLLER_HEADER, ch.header.name)
        set_preamble(cm.preamble, hid, ch.name, ch.name, ch.header.annotations)
        fields = ch.header.fields
        fannos = [ch.field_annotations.get(n, []) for n, _ in fields]
        for (fname, ft), fa, fid in zip(fields, fannos, inner_ids(fannos), strict=True):
            if _hidden(fa):
                continue
            md = cm.metadata.add()
            md.id = fid
            md.name = fname
            add_annotations(md, fa)
            tname = ft.name if isinstance(ft, NewT) else None
            md.bitwidth = _field_width(model, width_of(ft), tname, specs)
            if isinstance(ft, NewT):
                specs.convert(ft, p4types_pb2.P4DataTypeSpec())
                md.type_name.name = ft.name
            elif isinstance(ft, EnumT) and ft.underlying is not None:
                # p4c lists a serializable enum field's type in type_info, but names no
                # type for the metadata: it is its underlying bit<W>
                specs.convert(ft, p4types_pb2.P4DataTypeSpec())

    # 8. pkg_info
    _pkg_info(info, model)
    return info


def _field_width(model: ProgramModel, width: int, type_name: str | None, specs: TypeSpecs) -> int:
    """Bit width of a key/param/metadata field; a translated new type shows its SDN width."""
    if type_name is None:
        return width
    t = model.new_types.get(type_name)
    if not isinstance(t, NewT):
        return width
    specs.convert(t, p4types_pb2.P4DataTypeSpec())  # registers it in type_info.new_types
    tr = _translation(t)
    if tr is None:
        return width
    return tr[1] or 0


def _index_type(type_args: list[Type], idx: int, msg: object) -> None:
    """v1model 2020 counters, meters and registers take the index type as a type argument;
    p4c-bm2-ss 1.2.5 writes no ``index_type_name`` for it, even for a ``type`` (translated or not)."""
    del type_args, idx, msg


# Annotations p4c turns into ActionProfile fields instead of copying them.
_PROFILE_ANNOTATIONS = ("max_group_size", "selector_size_semantics", "max_member_weight")


def _action_profiles(model: ProgramModel, tables: list[TableInfo]) -> list[ExternInstance]:
    """The profiles P4Info lists: every declared one (p4c keeps an unused instance), and the
    in-place ones of applied tables only (an unapplied table takes its property with it)."""
    used = {t.implementation for t in tables}
    return [x for x in model.externs if x.kind in ("action_profile", "action_selector")
            and (not x.inline or x.name in used)]


def p4runtime_refusals(model: ProgramModel) -> list[str]:
    """What p4c-bm2-ss refuses only when asked for a P4Info (--p4runtime-files): a table whose
    action profile or selector is constructed in place without an @name (p4sim names it
    ``implementation`` for its own use), and a value set of a struct with a field that is not a
    bit<W>. A P4Info for P4Runtime clients is refused then, as p4c refuses it."""
    by_name = {x.name: x for x in model.externs}
    out = []
    for t in model.tables:
        x = by_name.get(t.implementation or "")
        if t.applied and x is not None and x.inline and _find(x.annotations, "name") is None:
            out.append(f"Table '{t.name}' has an anonymous table property 'implementation' with no name "
                       "annotation, which is not supported by P4Runtime")
    for vs in model.value_sets:
        st = strip_newtype(vs.elem_type) if vs.elem_type is not None else None
        if vs.used and isinstance(st, StructLikeT):
            for fname, ft in st.fields:
                if not isinstance(strip_newtype(ft), BitT):
                    out.append(f"Unsupported type argument for Value Set; this version of P4Runtime requires that "
                               f"when the type parameter of a Value Set is a struct, all the fields of the struct "
                               f"must be of type bit<W>, but {fname} is not")
    return out


def _annotation_int(a: ast.Annotation) -> int:
    v = _const_value(a.args[0]) if a.args else None
    if isinstance(v, int) and not isinstance(v, bool):
        return v
    if a.raw is not None:
        return int(a.raw.strip(), 0)
    raise ValueError(f"@{a.name} needs an integer argument")


def _action_profile(info: p4info_pb2.P4Info, syms: SymbolTable, x: ExternInstance, tables: list[TableInfo]) -> None:
    ap = info.action_profiles.add()
    set_preamble(ap.preamble, syms.id(ACTION_PROFILE, x.name), x.name, syms.alias(x.name),
                 [a for a in x.annotations if a.name not in _PROFILE_ANNOTATIONS])
    # p4c collects the tables in a std::set of names: sorted
    for t in sorted(tables, key=lambda t: t.name.encode()):
        ap.table_ids.append(syms.id(TABLE, t.name))
    selector = x.kind == "action_selector"
    ap.with_selector = selector
    ap.size = int(x.args.get("size", 0))
    mgs = _find(x.annotations, "max_group_size")
    if mgs is not None:
        if selector:
            ap.max_group_size = _annotation_int(mgs)
        else:
            log.warning("ignoring @max_group_size on action profile %s, which has no selector", x.name)
    sem = _find(x.annotations, "selector_size_semantics")
    if sem is not None and selector:
        kind = (_string_arg(sem) or "").lower()
        if kind == "sum_of_weights":
            ap.sum_of_weights.SetInParent()
        elif kind == "sum_of_members":
            ap.sum_of_members.SetInParent()
            mmw = _find(x.annotations, "max_member_weight")
            if mmw is not None:
                ap.sum_of_members.max_member_weight = _annotation_int(mmw)
        else:
            raise ValueError(f"{x.name}: @selector_size_semantics must be \"sum_of_weights\" or \"sum_of_members\"")


def _value_set(info: p4info_pb2.P4Info, syms: SymbolTable, vs: ValueSetInfo) -> None:
    vm = info.value_sets.add()
    set_preamble(vm.preamble, syms.id(VALUE_SET, vs.name), vs.name, syms.alias(vs.name), vs.annotations)
    vm.size = vs.size
    if len(vs.fields) == 1 and vs.fields[0][0] == "":
        m = vm.match.add()
        m.id = 1
        m.bitwidth = vs.fields[0][1]
        m.match_type = p4info_pb2.MatchField.EXACT
        return
    fannos = [vs.field_annotations.get(n, []) for n, _ in vs.fields]
    for (fname, width), fa, fid in zip(vs.fields, fannos, inner_ids(fannos), strict=True):
        m = vm.match.add()
        m.id = fid
        m.name = fname
        m.bitwidth = width
        ma = _find(fa, "match")
        kind = "exact"
        if ma is not None:
            kind = (ma.args[0].name if ma.args and isinstance(ma.args[0], ast.PathExpr) else (ma.raw or "").strip())
        if kind in _MATCH_TYPES:
            m.match_type = _MATCH_TYPES[kind]
        else:
            m.other_match_type = kind
        add_annotations(m, fa, skip=("match",))
        add_documentation(m, fa)


def _pkg_info(info: p4info_pb2.P4Info, model: ProgramModel) -> None:
    pkg = info.pkg_info
    pkg.arch = ARCH
    props = pkg.platform_properties
    for a in model.main_annotations:
        if a.name == "platform_property":
            # @platform_property(key = value, ...): integer properties of the target
            for k, e in a.kv.items():
                v = _const_value(e)
                if k in props.DESCRIPTOR.fields_by_name and isinstance(v, int):
                    setattr(props, k, v)
                else:
                    log.warning("@platform_property: ignoring key %s", k)
        if a.name != "pkginfo":
            continue
        for k, e in a.kv.items():
            v = _const_value(e)
            if k in ("name", "version", "organization", "contact", "url", "arch") and isinstance(v, str):
                setattr(pkg, k, v)
            else:
                log.warning("@pkginfo: ignoring key %s", k)
    add_annotations(pkg, model.main_annotations, skip=("pkginfo", "platform_property"))
    add_documentation(pkg, model.main_annotations)


# -- output ---------------------------------------------------------------------------------------------


def p4info_format(path: str | Path) -> str:
    """Output format p4c's ``--p4runtime-files`` picks from the file suffix."""
    suffix = Path(path).suffix
    if suffix in (".txt", ".txtpb"):
        return "text"
    if suffix == ".json":
        return "json"
    if suffix == ".bin":
        return "binary"
    raise ValueError(f"{path}: could not detect the P4Runtime file format from suffix {suffix!r} "
                     "(known: .bin, .txt, .txtpb, .json)")


def p4info_text(p4info: p4info_pb2.P4Info) -> str:
    return text_format.MessageToString(p4info)


def write_p4info_text(p4info: p4info_pb2.P4Info, path: str | Path) -> None:
    """Write P4Info in protobuf text format, as ``--p4runtime-files x.txtpb`` does."""
    Path(path).write_text(p4info_text(p4info))


def write_p4info(p4info: p4info_pb2.P4Info, path: str | Path, fmt: str | None = None) -> None:
    """Write P4Info in the format the suffix names (.txt/.txtpb text, .json JSON, .bin binary),
    or in ``fmt`` ("text", "json", "binary") when given, as p4c's --p4runtime-format."""
    fmt = p4info_format(path) if fmt is None else fmt
    if fmt == "text":
        write_p4info_text(p4info, path)
    elif fmt == "json":
        Path(path).write_text(json_format.MessageToJson(p4info, indent=1))
    else:
        Path(path).write_bytes(p4info.SerializeToString())
    log.info("wrote P4Info (%s) to %s", fmt, path)


def read_p4info(path: str | Path) -> p4info_pb2.P4Info:
    """Read a P4Info file written in any of the three formats."""
    info = p4info_pb2.P4Info()
    fmt = p4info_format(path)
    if fmt == "text":
        text_format.Parse(Path(path).read_text(), info)
    elif fmt == "json":
        json_format.Parse(Path(path).read_text(), info)
    else:
        info.ParseFromString(Path(path).read_bytes())
    return info


__all__ = [
    "build_p4info",
    "p4runtime_refusals",
    "write_p4info_text",
    "write_p4info",
    "read_p4info",
    "p4info_text",
    "p4info_format",
    "jenkins_hash",
    "SymbolTable",
    "inner_ids",
]
