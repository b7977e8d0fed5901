"""Fuzzing p4sim's P4Runtime server over real gRPC: valid-shaped, near-valid and hostile requests.

Requests are drawn from the real P4Info of p4src/splice.p4 (compiled by p4sim, served by the p4sim
device that runs it) and, for what splice.p4 has none of (ternary, range and optional matches,
priorities, meters, value sets, a const table, a table that fills up, @tableonly actions), from
the P4Info of the server tests behind a NullDevice. Table entries with right and wrong ids,
values of right and wrong widths and with leading zeros, missing and repeated match fields, bad
prefix lengths, masks and ranges, priorities, idle timeouts, direct counter and meter data;
INSERT, MODIFY, DELETE and unspecified updates in batches that mix them with default entries,
multicast groups, clone sessions, digest configs, counter, meter and register cells and value
sets; reads with wildcards and odd filters; pipeline pushes with mangled P4Info and device
configs; arbitration with odd election ids, devices and roles; bytes that are no request at all.
Whatever comes:

* every RPC answers a status the P4Runtime spec (v1.4) names for the case. A Write with a
  failing update answers UNKNOWN with one p4.v1.Error per update in grpc-status-details-bin, and
  each update's code is the one the spec gives for what was wrong with it (where the spec, or
  BMv2 where the spec leaves a choice, allows several: any of them). A well-formed request never
  answers INTERNAL; bytes that are not the RPC's request message always do, as gRPC (and so
  BMv2) answers a request it cannot deserialize;
* nothing is corrupted: a model of what succeeded (table entries with canonical values, default
  entries, multicast groups, clone sessions, digest configs, counter, meter and register cells,
  value sets) is what the server reads back after every batch. The same batches also go out as
  other encodings of the same protobuf (padded varints, split sub-messages, fields reordered,
  repeated or widened, unknown fields), and are taken exactly as protobuf decodes them;
* only the primary writes: a backup's, a forged election id's or no election id's Write answers
  PERMISSION_DENIED and changes nothing;
* the server never dies: a Capabilities call and a valid Read succeed after every example.

``make test`` runs a bounded number of examples; ``make fuzz`` (FUZZ_EXAMPLES) runs more.
"""

from __future__ import annotations

import os
import queue
import random
import re
import time
from collections import Counter as Multiset
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from google.protobuf import text_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from google.rpc import code_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from p4.config.v1 import p4info_pb2
from p4.v1 import p4runtime_pb2, p4runtime_pb2_grpc

from p4sim.compiler.driver import compile_file
from p4sim.runtime.device import NullDevice
from p4sim.runtime.server import P4RuntimeServer
from p4sim.switch import SwitchProcess
from tests.p4sim.test_p4runtime_server import Client, batch_errors, load_p4info, wait_for

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "40"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large, HealthCheck.filter_too_much])
DEVICE_ID = 1
PRIMARY, BACKUP = (0, 1000), (0, 10)  # election ids of the rigs' two controllers
CPU_PORT = 255

U = p4runtime_pb2.Update
INSERT, MODIFY, DELETE = U.INSERT, U.MODIFY, U.DELETE
OK, UNKNOWN, INVALID, NOT_FOUND, EXISTS = (code_pb2.OK, code_pb2.UNKNOWN, code_pb2.INVALID_ARGUMENT,
                                           code_pb2.NOT_FOUND, code_pb2.ALREADY_EXISTS)
DENIED, EXHAUSTED, PRECONDITION = code_pb2.PERMISSION_DENIED, code_pb2.RESOURCE_EXHAUSTED, code_pb2.FAILED_PRECONDITION
OUT_OF_RANGE, UNIMPLEMENTED, INTERNAL = code_pb2.OUT_OF_RANGE, code_pb2.UNIMPLEMENTED, code_pb2.INTERNAL
# A value that breaks the Bytestrings rules: that section says OUT_OF_RANGE, the Match Format and
# Action Specification sections say INVALID_ARGUMENT (BMv2's answer for a value too wide).
BYTES_BAD = frozenset({OUT_OF_RANGE, INVALID})

MatchType = p4info_pb2.MatchField.MatchType
EXACT, LPM, TERNARY, RANGE, OPTIONAL = (MatchType.EXACT, MatchType.LPM, MatchType.TERNARY,
                                        MatchType.RANGE, MatchType.OPTIONAL)
KIND_NAME = {EXACT: "exact", LPM: "lpm", TERNARY: "ternary", RANGE: "range", OPTIONAL: "optional"}
Scope = p4info_pb2.ActionRef.Scope
MeterType = p4info_pb2.MeterSpec.Type


# =================================================================================================
# what the P4Info offers
@dataclass(frozen=True)
class FieldSpec:
    id: int
    bitwidth: int
    kind: int

    @property
    def top(self) -> int:
        return (1 << self.bitwidth) - 1


@dataclass(frozen=True)
class ActionSpec:
    id: int
    params: tuple[tuple[int, int], ...]  # (param id, bitwidth)


@dataclass(frozen=True)
class TableSpec:
    id: int
    fields: tuple[FieldSpec, ...]
    scopes: dict[int, int]  # action id -> ActionRef scope
    needs_priority: bool
    idle: bool
    counter: bool
    meter: int | None  # direct meter type
    const_table: bool
    const_default: bool
    size: int

    def actions(self, *scopes: int) -> list[int]:
        return sorted(a for a, s in self.scopes.items() if s in scopes)


@dataclass
class Schema:
    """The ids and widths of one P4Info, as the generators and the model need them."""

    tables: dict[int, TableSpec]
    actions: dict[int, ActionSpec]
    counters: dict[int, int]  # id -> size
    meters: dict[int, tuple[int, int]]  # id -> (size, type)
    registers: dict[int, tuple[int, int]]  # id -> (size, bitwidth)
    digests: list[int]
    value_sets: dict[int, tuple[tuple[FieldSpec, ...], int]]  # id -> (fields, size)
    all_ids: set[int]

    @classmethod
    def of(cls, p4info: p4info_pb2.P4Info) -> Schema:
        counters = {c.direct_table_id for c in p4info.direct_counters}
        meters = {m.direct_table_id: m.spec.type for m in p4info.direct_meters}
        tables = {}
        for t in p4info.tables:
            fields = tuple(FieldSpec(f.id, f.bitwidth, f.match_type) for f in t.match_fields)
            tables[t.preamble.id] = TableSpec(
                t.preamble.id, fields, {r.id: r.scope for r in t.action_refs},
                any(f.kind in (TERNARY, RANGE, OPTIONAL) for f in fields),
                t.idle_timeout_behavior == p4info_pb2.Table.NOTIFY_CONTROL, t.preamble.id in counters,
                meters.get(t.preamble.id), t.is_const_table, t.const_default_action_id != 0, t.size)
        actions = {a.preamble.id: ActionSpec(a.preamble.id, tuple((p.id, p.bitwidth) for p in a.params))
                   for a in p4info.actions}
        registers = {r.preamble.id: (r.size, r.type_spec.bitstring.bit.bitwidth) for r in p4info.registers}
        value_sets = {v.preamble.id: (tuple(FieldSpec(f.id, f.bitwidth, f.match_type) for f in v.match), v.size)
                      for v in p4info.value_sets}
        all_ids = {o.preamble.id for group in (p4info.tables, p4info.actions, p4info.counters, p4info.meters,
                                               p4info.direct_counters, p4info.direct_meters, p4info.registers,
                                               p4info.digests, p4info.value_sets, p4info.action_profiles,
                                               p4info.controller_packet_metadata) for o in group}
        return cls(tables, actions, {c.preamble.id: c.size for c in p4info.counters},
                   {m.preamble.id: (m.size, m.spec.type) for m in p4info.meters}, registers,
                   [d.preamble.id for d in p4info.digests], value_sets, all_ids)


# =================================================================================================
# bytestrings
def canon(n: int) -> bytes:
    """The canonical bytestring of n (spec: Bytestrings): the shortest, zero being one byte."""
    return n.to_bytes(max(1, (n.bit_length() + 7) // 8), "big")


def decode(value: bytes, bitwidth: int) -> int | None:
    """What a receiver makes of a bytestring for bit<bitwidth>: None if it must refuse it."""
    n = int.from_bytes(value, "big")
    return None if not value or n >> bitwidth else n


@st.composite
def spelled(draw: st.DrawFn, n: int, bitwidth: int) -> bytes:
    """n as a client may send it: canonical, padded to the field's width, or with extra leading
    zero bytes (non-canonical, and to be taken)."""
    b = canon(n)
    pad = draw(st.sampled_from([0, 0, 0, (bitwidth + 7) // 8 - len(b), 1, 4]))
    return bytes(max(0, pad)) + b


@st.composite
def misfit(draw: st.DrawFn, bitwidth: int) -> bytes:
    """A bytestring no bit<bitwidth> takes: empty, or a value wider than the field."""
    if draw(st.integers(0, 3)) == 0:
        return b""
    extra = draw(st.integers(bitwidth, bitwidth + 12))
    return canon((1 << extra) | draw(st.integers(0, (1 << bitwidth) - 1)))


@st.composite
def value_of(draw: st.DrawFn, bitwidth: int) -> int:
    """A value for bit<bitwidth>, mostly from a few that make entries collide."""
    top = (1 << bitwidth) - 1
    pick = draw(st.sampled_from([0, 1, 1, 2, 2, top, -1]))
    return draw(st.integers(0, top)) if pick < 0 else pick


# =================================================================================================
# planned updates and what the model expects of them
#
# Each generated update carries the names of the faults it was built with. FAULTS gives the codes
# the spec allows for each; the model adds what its state says (ALREADY_EXISTS, NOT_FOUND,
# RESOURCE_EXHAUSTED) and, for an update without a fault, expects exactly that.
FAULTS: dict[str, frozenset[int]] = {
    "type": frozenset({INVALID}),  # UNSPECIFIED or a number that is no Update.Type
    "entity": frozenset({INVALID}),  # no entity, or a PRE entry with neither kind
    "unsupported": frozenset({UNIMPLEMENTED}),  # an ExternEntry: no externs in these P4Infos
    "table": frozenset({INVALID, NOT_FOUND}),  # no such table (BMv2: INVALID_ARGUMENT)
    "match": frozenset({INVALID}),  # unknown, repeated, missing, kind-less or wrong-kind field; bad prefix, mask, range
    "match_bytes": BYTES_BAD,
    "priority": frozenset({INVALID}),
    "const_table": frozenset({DENIED}),
    "is_const": frozenset({INVALID}),
    "since_hit": frozenset({INVALID}),  # time_since_last_hit set in a write
    "default_key": frozenset({INVALID}),  # INSERT/DELETE of a default entry, or one with match, priority, idle timeout
    "default_const": frozenset({DENIED}),
    "action": frozenset({INVALID}),  # not one of the table's, missing on INSERT, another TableAction kind, bad params
    "scope": frozenset({DENIED}),  # @defaultonly in an entry, @tableonly as the default
    "param_bytes": BYTES_BAD,
    "meter_counters": frozenset({UNIMPLEMENTED, INVALID}),  # per-color meter counters
    "idle": frozenset({INVALID}),  # idle timeout on a table without, or negative
    "direct": frozenset({INVALID}),  # counter data / meter config on a table without, bad meter config
    "negative": frozenset({INVALID}),  # negative counts (BMv2 takes them)
    "id": frozenset({INVALID, NOT_FOUND}),  # no such counter, meter, register, digest, value set, profile
    "zero_id": frozenset({INVALID}),  # multicast group or clone session 0
    "replica": frozenset({INVALID}),  # a (port, instance) twice
    "replica_bytes": BYTES_BAD | {UNIMPLEMENTED},  # BMv2: UNIMPLEMENTED for ports past 4 bytes
    "only_modify": frozenset({INVALID}),  # INSERT/DELETE of counter, meter, register, value set cells
    "index": frozenset({INVALID}),  # negative index
    "index_range": frozenset({OUT_OF_RANGE}),
    "data": frozenset({INVALID}),  # register data of the wrong kind or unset; digest entry without a usable config
    "data_bytes": BYTES_BAD,
    "meter": frozenset({INVALID}),  # a meter config its meter type refuses, or negative
}
NONKEY = frozenset({"action", "scope", "param_bytes", "meter_counters"})  # a DELETE ignores them (spec)
DELETE_EITHER = frozenset({"idle", "direct", "negative"})  # a DELETE may ignore them or refuse them
LENIENT = frozenset({"negative"})  # refused by p4sim, taken by BMv2: either is fine
PRE_NONKEY = frozenset({"replica", "replica_bytes"})  # a PRE DELETE needs no replicas (spec)
KEY_FAULTS = frozenset({"type", "entity", "table", "match", "match_bytes", "priority", "const_table",
                        "default_key", "default_const", "id", "zero_id", "index", "index_range", "only_modify",
                        "unsupported"})


@dataclass
class Planned:
    update: p4runtime_pb2.Update
    faults: frozenset[str] = frozenset()


@dataclass
class Expect:
    allowed: frozenset[int]
    apply: Callable[[], None] | None = None  # what an OK answer does to the model


def allowed_codes(faults: set[str], loose: set[str], code: int | None) -> frozenset[int]:
    """Codes an update may get: `code` (what the model's state says) when nothing is wrong with
    it, else the faults' codes, plus `code` when it is an error of its own or every fault is one
    that may also be taken."""
    if not faults and not loose:
        assert code is not None
        return frozenset({code})
    out: set[int] = set()
    for f in faults | loose:
        out |= FAULTS[f]
    if code is not None and (code != OK or not (faults - LENIENT)):
        out.add(code)
    return frozenset(out)


# =================================================================================================
# canonical forms: what a Read must give back for what was written
def match_key(fields: tuple[FieldSpec, ...], matches) -> tuple[tuple, list[p4runtime_pb2.FieldMatch]] | None:
    """The key a list of FieldMatch names (one spec per field, None for don't care) and the
    canonical FieldMatch list a read returns for it; None if the spec's Match Format refuses it."""
    by_id = {f.id: f for f in fields}
    specs: dict[int, object] = {}
    out: list[p4runtime_pb2.FieldMatch] = []
    for fm in matches:
        f = by_id.get(fm.field_id)
        kind = fm.WhichOneof("field_match_type")
        if f is None or fm.field_id in specs or kind != KIND_NAME.get(f.kind):
            return None
        w = f.bitwidth
        canonical = p4runtime_pb2.FieldMatch(field_id=f.id)
        if kind in ("exact", "optional"):
            v = decode(getattr(fm, kind).value, w)
            if v is None:
                return None
            getattr(canonical, kind).value = canon(v)
            specs[f.id] = v
        elif kind == "lpm":
            v, plen = decode(fm.lpm.value, w), fm.lpm.prefix_len
            if v is None or not 0 < plen <= w or v & ((1 << (w - plen)) - 1):
                return None
            canonical.lpm.value, canonical.lpm.prefix_len = canon(v), plen
            specs[f.id] = (v, plen)
        elif kind == "ternary":
            v, m = decode(fm.ternary.value, w), decode(fm.ternary.mask, w)
            if v is None or m is None or m == 0 or v & ~m:
                return None
            canonical.ternary.value, canonical.ternary.mask = canon(v), canon(m)
            specs[f.id] = (v, m)
        else:
            lo, hi = decode(fm.range.low, w), decode(fm.range.high, w)
            if lo is None or hi is None or lo > hi or (lo == 0 and hi == f.top):
                return None
            canonical.range.low, canonical.range.high = canon(lo), canon(hi)
            specs[f.id] = (lo, hi)
        out.append(canonical)
    if any(f.kind == EXACT and f.id not in specs for f in fields):
        return None
    out.sort(key=lambda m: m.field_id)
    return tuple(specs.get(f.id) for f in fields), out


def table_key(spec: TableSpec, te: p4runtime_pb2.TableEntry) -> tuple[tuple, list[p4runtime_pb2.FieldMatch]] | None:
    """(table id, key, priority) and the canonical match of a write's entry; None if refused."""
    got = match_key(spec.fields, te.match)
    if got is None or (te.priority <= 0 if spec.needs_priority else te.priority != 0):
        return None
    return (spec.id, got[0], te.priority), got[1]


def canonical_action(schema: Schema, action: p4runtime_pb2.Action) -> p4runtime_pb2.Action:
    out = p4runtime_pb2.Action(action_id=action.action_id)
    for p in sorted(action.params, key=lambda p: p.param_id):
        out.params.add(param_id=p.param_id, value=canon(int.from_bytes(p.value, "big")))
    return out


def normalized(msg: Message) -> bytes:
    """A message with its repeated fields in a fixed order (the spec does not fix the order a
    server returns match fields, params or replicas in) and time_since_last_hit's value (data
    plane volatile) cleared: what two reads of the same state agree on."""
    msg = type(msg).FromString(msg.SerializeToString())
    ent = msg if isinstance(msg, p4runtime_pb2.Entity) else None
    te = ent.table_entry if ent is not None and ent.HasField("table_entry") else (
        msg if isinstance(msg, p4runtime_pb2.TableEntry) else None)
    if te is not None:
        ms = sorted(te.match, key=lambda m: m.field_id)
        del te.match[:]
        te.match.extend(ms)
        if te.action.HasField("action"):
            ps = sorted(te.action.action.params, key=lambda p: p.param_id)
            del te.action.action.params[:]
            te.action.action.params.extend(ps)
        if te.HasField("time_since_last_hit"):
            te.time_since_last_hit.elapsed_ns = 0
    return msg.SerializeToString(deterministic=True)


def show(msg: Message) -> str:
    return text_format.MessageToString(msg, as_one_line=True)


# =================================================================================================
# the model
class Model:
    """What the server holds after the updates that succeeded, in the form a Read returns it."""

    def __init__(self, rig: Rig) -> None:
        s = rig.schema
        self.schema = s
        self.initial_defaults = rig.defaults
        self.entries: dict[tuple, p4runtime_pb2.TableEntry] = {}
        self.defaults = {tid: _copy(e) for tid, e in rig.defaults.items()}
        self.groups: dict[int, p4runtime_pb2.MulticastGroupEntry] = {}
        self.sessions: dict[int, p4runtime_pb2.CloneSessionEntry] = {}
        self.digests: dict[int, p4runtime_pb2.DigestEntry.Config] = {}
        self.counters = {cid: [(0, 0)] * size for cid, size in s.counters.items()}
        self.meters: dict[int, list[p4runtime_pb2.MeterConfig | None]] = {
            mid: [None] * size for mid, (size, _) in s.meters.items()}
        self.registers: dict[int, tuple[int, dict[int, int]]] = {rid: (0, {}) for rid in s.registers}
        self.value_sets: dict[int, list[bytes]] = {vid: [] for vid in s.value_sets}
        self.touched: set[tuple[str, int]] = set()  # counters, meters, registers, value sets written

    def count(self, table_id: int) -> int:
        return sum(1 for k in self.entries if k[0] == table_id)

    # -- one update --------------------------------------------------------------------------------
    def expect(self, planned: Planned) -> Expect:
        update = planned.update
        faults = set(planned.faults)
        if update.type not in (INSERT, MODIFY, DELETE):
            faults.add("type")
        kind = update.entity.WhichOneof("entity")
        handler = {
            "table_entry": self._table, "direct_counter_entry": self._direct_counter,
            "direct_meter_entry": self._direct_meter, "counter_entry": self._counter,
            "meter_entry": self._meter, "register_entry": self._register,
            "packet_replication_engine_entry": self._pre, "digest_entry": self._digest,
            "value_set_entry": self._value_set,
        }.get(kind or "")
        if handler is None:  # no entity, an extern entry, an action profile object: all faults
            assert faults, f"an update of {kind} should carry its fault"
            return Expect(allowed_codes(faults, set(), None))
        return handler(update, faults)

    def _table(self, update: p4runtime_pb2.Update, faults: set[str]) -> Expect:
        te = update.entity.table_entry
        spec = self.schema.tables.get(te.table_id)
        if te.is_default_action or spec is None:
            return self._default(update, spec, faults)
        loose: set[str] = set()
        if update.type == DELETE:
            faults -= NONKEY
            loose = faults & DELETE_EITHER
            faults -= loose
        got = table_key(spec, te)
        if got is None:
            assert faults & KEY_FAULTS, f"a key refused without a key fault: {show(te)}"
            return Expect(allowed_codes(faults, loose, None))
        k, match = got
        present = k in self.entries
        code: int | None = None
        apply = None
        if update.type == INSERT:
            if present:
                code = EXISTS
            elif spec.size and self.count(spec.id) >= spec.size:
                code = EXHAUSTED
            else:
                code = OK

                def apply() -> None:
                    self.entries[k] = self._new_entry(spec, te, match)
        elif update.type == MODIFY:
            code = OK if present else NOT_FOUND

            def apply() -> None:
                self.entries[k] = self._modified(spec, self.entries[k], te)
        elif update.type == DELETE:
            code = OK if present else NOT_FOUND

            def apply() -> None:
                del self.entries[k]
        return Expect(allowed_codes(faults, loose, code), apply)

    def _new_entry(self, spec: TableSpec, te: p4runtime_pb2.TableEntry,
                   match: list[p4runtime_pb2.FieldMatch]) -> p4runtime_pb2.TableEntry:
        e = p4runtime_pb2.TableEntry(table_id=spec.id, priority=te.priority,
                                     controller_metadata=te.controller_metadata, metadata=te.metadata,
                                     idle_timeout_ns=te.idle_timeout_ns)
        e.match.extend(match)
        e.action.action.CopyFrom(canonical_action(self.schema, te.action.action))
        if spec.counter:
            e.counter_data.CopyFrom(te.counter_data)
            e.counter_data.SetInParent()
        if spec.meter is not None and te.HasField("meter_config"):
            e.meter_config.CopyFrom(te.meter_config)
        return e

    def _modified(self, spec: TableSpec, old: p4runtime_pb2.TableEntry,
                  te: p4runtime_pb2.TableEntry) -> p4runtime_pb2.TableEntry:
        """Spec: a MODIFY with an action replaces the entry's action and the rest of what it says
        (full-snapshot semantics); one without leaves the entry's action as it is and is a no-op
        but for the direct resources. An unset counter_data leaves the counter, an unset
        meter_config resets the meter to its default."""
        e = _copy(old)
        if te.HasField("action"):
            e.action.action.CopyFrom(canonical_action(self.schema, te.action.action))
            e.controller_metadata, e.metadata, e.idle_timeout_ns = (te.controller_metadata, te.metadata,
                                                                     te.idle_timeout_ns)
        if spec.counter and te.HasField("counter_data"):
            e.counter_data.CopyFrom(te.counter_data)
        if spec.meter is not None:
            if te.HasField("meter_config"):
                e.meter_config.CopyFrom(te.meter_config)
            else:
                e.ClearField("meter_config")
        return e

    def _default(self, update: p4runtime_pb2.Update, spec: TableSpec | None, faults: set[str]) -> Expect:
        te = update.entity.table_entry
        if spec is None:
            assert faults & KEY_FAULTS, f"unknown table without its fault: {show(te)}"
            return Expect(allowed_codes(faults, set(), None))

        def apply() -> None:
            if te.HasField("action"):
                d = p4runtime_pb2.TableEntry(table_id=spec.id, is_default_action=True,
                                             controller_metadata=te.controller_metadata, metadata=te.metadata)
                d.action.action.CopyFrom(canonical_action(self.schema, te.action.action))
                self.defaults[spec.id] = d
            else:  # spec: no action = back to the program's default, metadata and resources reset
                self.defaults[spec.id] = _copy(self.initial_defaults[spec.id])
        return Expect(allowed_codes(faults, set(), OK), apply)

    def _direct_counter(self, update: p4runtime_pb2.Update, faults: set[str]) -> Expect:
        dce = update.entity.direct_counter_entry
        spec = self.schema.tables.get(dce.table_entry.table_id)
        got = table_key(spec, dce.table_entry) if spec is not None else None
        if got is None:
            assert faults & KEY_FAULTS, f"a key refused without a key fault: {show(dce)}"
            return Expect(allowed_codes(faults, set(), None))
        k = got[0]

        def apply() -> None:
            if dce.HasField("data"):
                self.entries[k].counter_data.CopyFrom(dce.data)
        return Expect(allowed_codes(faults, set(), OK if k in self.entries else NOT_FOUND), apply)

    def _direct_meter(self, update: p4runtime_pb2.Update, faults: set[str]) -> Expect:
        dme = update.entity.direct_meter_entry
        spec = self.schema.tables.get(dme.table_entry.table_id)
        got = table_key(spec, dme.table_entry) if spec is not None else None
        if got is None:
            assert faults & KEY_FAULTS, f"a key refused without a key fault: {show(dme)}"
            return Expect(allowed_codes(faults, set(), None))
        k = got[0]

        def apply() -> None:
            if dme.HasField("config"):
                self.entries[k].meter_config.CopyFrom(dme.config)
            else:
                self.entries[k].ClearField("meter_config")
        return Expect(allowed_codes(faults, set(), OK if k in self.entries else NOT_FOUND), apply)

    @staticmethod
    def _cells(msg: Message, size: int) -> range:
        return range(msg.index.index, msg.index.index + 1) if msg.HasField("index") else range(size)

    def _counter(self, update: p4runtime_pb2.Update, faults: set[str]) -> Expect:
        ce = update.entity.counter_entry

        def apply() -> None:
            self.touched.add(("counter", ce.counter_id))
            if ce.HasField("data"):
                for i in self._cells(ce, len(self.counters[ce.counter_id])):
                    self.counters[ce.counter_id][i] = (ce.data.packet_count, ce.data.byte_count)
        return Expect(allowed_codes(faults, set(), OK), apply)

    def _meter(self, update: p4runtime_pb2.Update, faults: set[str]) -> Expect:
        me = update.entity.meter_entry

        def apply() -> None:
            self.touched.add(("meter", me.meter_id))
            for i in self._cells(me, len(self.meters[me.meter_id])):
                self.meters[me.meter_id][i] = _copy(me.config) if me.HasField("config") else None
        return Expect(allowed_codes(faults, set(), OK), apply)

    def _register(self, update: p4runtime_pb2.Update, faults: set[str]) -> Expect:
        re = update.entity.register_entry

        def apply() -> None:
            self.touched.add(("register", re.register_id))
            value = int.from_bytes(re.data.bitstring, "big")
            fill, cells = self.registers[re.register_id]
            if re.HasField("index"):
                cells[re.index.index] = value
            else:
                self.registers[re.register_id] = (value, {})
        return Expect(allowed_codes(faults, set(), OK), apply)

    def _pre(self, update: p4runtime_pb2.Update, faults: set[str]) -> Expect:
        pre = update.entity.packet_replication_engine_entry
        which = pre.WhichOneof("type")
        if which is None:
            return Expect(allowed_codes(faults, set(), None))
        if update.type == DELETE:
            faults -= PRE_NONKEY
        store: dict = self.groups if which == "multicast_group_entry" else self.sessions
        msg = getattr(pre, which)
        key = msg.multicast_group_id if which == "multicast_group_entry" else msg.session_id
        present = key in store
        code = {INSERT: EXISTS if present else OK, MODIFY: OK if present else NOT_FOUND,
                DELETE: OK if present else NOT_FOUND}.get(update.type)

        def apply() -> None:
            if update.type == DELETE:
                del store[key]
                return
            out = type(msg)()
            out.CopyFrom(msg)
            for r in out.replicas:  # a port given as bytes comes back canonical; neither given is port 0
                if r.WhichOneof("port_kind") == "port":
                    r.port = canon(int.from_bytes(r.port, "big"))
                elif r.WhichOneof("port_kind") is None:
                    r.egress_port = 0
            store[key] = out
        return Expect(allowed_codes(faults, set(), code), apply)

    def _digest(self, update: p4runtime_pb2.Update, faults: set[str]) -> Expect:
        de = update.entity.digest_entry
        if update.type == DELETE:
            faults.discard("data")
        present = de.digest_id in self.digests
        code = {INSERT: EXISTS if present else OK, MODIFY: OK if present else NOT_FOUND,
                DELETE: OK if present else NOT_FOUND}.get(update.type)

        def apply() -> None:
            if update.type == DELETE:
                del self.digests[de.digest_id]
            else:
                self.digests[de.digest_id] = _copy(de.config)
        return Expect(allowed_codes(faults, set(), code), apply)

    def _value_set(self, update: p4runtime_pb2.Update, faults: set[str]) -> Expect:
        vse = update.entity.value_set_entry
        if vse.value_set_id not in self.schema.value_sets:
            return Expect(allowed_codes(faults, set(), None))
        fields, size = self.schema.value_sets[vse.value_set_id]
        members = []
        for m in vse.members:
            got = match_key(fields, m.match)
            if got is None:  # members are checked in some order: a duplicate before it may count first
                assert faults & {"match", "match_bytes"}, f"a member refused without its fault: {show(vse)}"
                early = {EXISTS} if len(set(members)) < len(members) else set()
                early |= {EXHAUSTED} if size and len(vse.members) > size else set()
                return Expect(allowed_codes(faults, set(), None) | early)
            members.append(_member_bytes(got[1]))
        code = OK
        if len(set(members)) < len(members):
            code = EXISTS  # spec: duplicate members are ALREADY_EXISTS
        elif size and len(members) > size:
            code = EXHAUSTED

        def apply() -> None:
            self.touched.add(("value_set", vse.value_set_id))
            self.value_sets[vse.value_set_id] = members
        return Expect(allowed_codes(faults, set(), code), apply)


def _copy(msg):  # noqa: ANN001, ANN202 - any message type, the same type back
    out = type(msg)()
    out.CopyFrom(msg)
    return out


def _member_bytes(match: list[p4runtime_pb2.FieldMatch]) -> bytes:
    m = p4runtime_pb2.ValueSetMember()
    m.match.extend(sorted(match, key=lambda f: f.field_id))
    return m.SerializeToString(deterministic=True)


# =================================================================================================
# generators: updates of every entity, valid-shaped, near-valid or wrong on purpose
@st.composite
def update_type(draw: st.DrawFn, faults: set[str], weights: tuple[int, ...] = (3, 2, 2)) -> int:
    if draw(st.integers(0, 24)) == 0:
        faults.add("type")
        return draw(st.sampled_from([U.UNSPECIFIED, 4, 7, 255, -1]))
    return draw(st.sampled_from([INSERT] * weights[0] + [MODIFY] * weights[1] + [DELETE] * weights[2]))


@st.composite
def modify_only_type(draw: st.DrawFn, faults: set[str]) -> int:
    """The update type of an entity only MODIFY may write (counters, meters, registers...): mostly
    MODIFY; an INSERT or DELETE is a fault the spec names."""
    utype = draw(update_type(faults, weights=(1, 8, 1)))
    if utype in (INSERT, DELETE):
        faults.add("only_modify")
    return utype


def some_faults(draw: st.DrawFn, names: list[str]) -> list[str]:
    """Now and then one or two of `names`, mostly none."""
    if draw(st.integers(0, 2)):
        return []
    return draw(st.lists(st.sampled_from(names), min_size=1, max_size=2, unique=True))


@st.composite
def field_match(draw: st.DrawFn, f: FieldSpec, slot: int | None = None) -> p4runtime_pb2.FieldMatch:
    """A valid FieldMatch for the field (never a don't care: those are omitted). Given a slot
    (0..3), the same value every time for that slot: entries that collide, on purpose."""
    fm = p4runtime_pb2.FieldMatch(field_id=f.id)
    w = f.bitwidth
    if f.kind in (EXACT, OPTIONAL):
        v = min(slot, f.top) if slot is not None else draw(value_of(w))
        getattr(fm, KIND_NAME[f.kind]).value = draw(spelled(v, w))
    elif f.kind == LPM:
        plens = [w, max(1, w // 2), min(w, 8), 1]
        plen = plens[slot] if slot is not None else draw(st.sampled_from(plens))
        v = (0x0A0B0C0D0E0F & f.top if slot is not None else draw(value_of(w))) & (f.top ^ ((1 << (w - plen)) - 1))
        fm.lpm.value, fm.lpm.prefix_len = draw(spelled(v, w)), plen
    elif f.kind == TERNARY:
        m = f.top if slot is not None else draw(st.sampled_from([f.top, f.top ^ 0xFF, 1, -1]))
        m = draw(st.integers(1, f.top)) if m < 0 else m
        v = slot if slot is not None else draw(value_of(w))
        fm.ternary.value, fm.ternary.mask = draw(spelled(v & m, w)), draw(spelled(m, w))
    else:
        lo = slot if slot is not None else draw(st.sampled_from([0, 1, 80, f.top]))
        hi = lo + 10 if slot is not None else draw(st.sampled_from([lo, lo + 10, f.top]))
        lo, hi = min(lo, f.top), min(hi, f.top)
        if (lo, hi) == (0, f.top):
            hi = f.top - 1
        fm.range.low, fm.range.high = draw(spelled(lo, w)), draw(spelled(hi, w))
    return fm


@st.composite
def key_matches(draw: st.DrawFn, fields: tuple[FieldSpec, ...]) -> list[p4runtime_pb2.FieldMatch]:
    """The FieldMatch list of a valid key: mostly one of four keys per table (updates of the same
    entry), else values drawn field by field; don't-care fields omitted."""
    slot = draw(st.sampled_from([0, 1, 2, 3, None]))
    return [draw(field_match(f, slot)) for f in fields if f.kind == EXACT or draw(st.integers(0, 3))]


@st.composite
def params_for(draw: st.DrawFn, action: ActionSpec, out: p4runtime_pb2.Action) -> None:
    for pid, w in action.params:
        out.params.add(param_id=pid, value=draw(spelled(draw(value_of(w)), w)))
    if draw(st.booleans()):
        shuffled = list(out.params)
        draw(st.randoms(use_true_random=False)).shuffle(shuffled)
        del out.params[:]
        out.params.extend(shuffled)


@st.composite
def meter_config(draw: st.DrawFn, meter_type: int) -> p4runtime_pb2.MeterConfig:
    rate = st.sampled_from([0, 1, 1000, 10**9, 2**62])
    cir, cburst = draw(rate), draw(rate)
    if meter_type == MeterType.TWO_RATE_THREE_COLOR:
        return p4runtime_pb2.MeterConfig(cir=cir, cburst=cburst, pir=draw(rate), pburst=draw(rate))
    eburst = draw(rate) if meter_type == MeterType.SINGLE_RATE_THREE_COLOR else 0
    return p4runtime_pb2.MeterConfig(cir=cir, cburst=cburst, pir=cir, pburst=cburst, eburst=eburst)


@st.composite
def bad_meter_config(draw: st.DrawFn, meter_type: int) -> p4runtime_pb2.MeterConfig:
    mc = draw(meter_config(meter_type))
    how = draw(st.sampled_from(["negative", "eburst" if meter_type == MeterType.TWO_RATE_THREE_COLOR else "pir"]))
    if how == "negative":
        setattr(mc, draw(st.sampled_from(["cir", "cburst", "pir", "pburst"])), -draw(st.integers(1, 2**63)))
        if meter_type != MeterType.TWO_RATE_THREE_COLOR:
            mc.pir, mc.pburst = mc.cir, mc.cburst
    elif how == "eburst":
        mc.eburst = draw(st.integers(1, 2**40))
    else:
        mc.pir = mc.cir + draw(st.integers(1, 100))
    return mc


def _other_table_id(draw: st.DrawFn, schema: Schema) -> int:
    strangers = sorted(schema.all_ids - set(schema.tables))
    return draw(st.sampled_from([0, 12345, 0x02FFFFFF, 2**32 - 1] + strangers))


def _faulty_match(draw: st.DrawFn, spec: TableSpec | tuple[FieldSpec, ...], matches: list, faults: set[str],
                  wanted: list[str]) -> None:
    """Apply the match faults of `wanted` to `matches` (FieldMatch list) where the fields allow."""
    fields = spec.fields if isinstance(spec, TableSpec) else spec
    by_id = {f.id: f for f in fields}
    for w in wanted:
        if w == "unknown_field":
            matches.append(p4runtime_pb2.FieldMatch(field_id=max(by_id, default=0) + draw(st.integers(1, 5))))
            matches[-1].exact.value = b"\x01"
            faults.add("match")
        elif w == "repeated_field" and matches:
            matches.append(_copy(draw(st.sampled_from(matches))))
            faults.add("match")
        elif w == "missing_field" and any(by_id[m.field_id].kind == EXACT for m in matches if m.field_id in by_id):
            victims = [m for m in matches if m.field_id in by_id and by_id[m.field_id].kind == EXACT]
            matches.remove(draw(st.sampled_from(victims)))
            faults.add("match")
        elif w in ("wrong_kind", "kindless") and matches:
            i = draw(st.integers(0, len(matches) - 1))
            old = matches[i]
            f = by_id.get(old.field_id)
            if f is None:
                continue
            fm = p4runtime_pb2.FieldMatch(field_id=old.field_id)
            if w == "wrong_kind":
                kind = draw(st.sampled_from(sorted(set(KIND_NAME.values()) - {KIND_NAME[f.kind]})))
                other = draw(field_match(FieldSpec(f.id, f.bitwidth, {v: k for k, v in KIND_NAME.items()}[kind])))
                fm.CopyFrom(other)
            matches[i] = fm
            faults.add("match")
        elif w == "match_bytes" and matches:
            m = draw(st.sampled_from(matches))
            f = by_id.get(m.field_id)
            if f is None or m.WhichOneof("field_match_type") is None:
                continue
            kind = m.WhichOneof("field_match_type")
            sub = getattr(m, kind)
            name = draw(st.sampled_from({"exact": ["value"], "optional": ["value"], "lpm": ["value"],
                                         "ternary": ["value", "mask"], "range": ["low", "high"]}[kind]))
            setattr(sub, name, draw(misfit(f.bitwidth)))
            faults.add("match_bytes")
        elif w in ("lpm", "ternary", "range"):
            mine = [m for m in matches if m.WhichOneof("field_match_type") == w and m.field_id in by_id]
            if not mine:
                continue
            m = draw(st.sampled_from(mine))
            f = by_id[m.field_id]
            if w == "lpm":
                if draw(st.booleans()):
                    m.lpm.prefix_len = draw(st.sampled_from([0, -1, f.bitwidth + 1, 2**31 - 1, -(2**31)]))
                elif m.lpm.prefix_len < f.bitwidth:
                    m.lpm.value = canon(int.from_bytes(m.lpm.value, "big") | 1)  # a bit past the prefix
                else:
                    m.lpm.prefix_len = 0
            elif w == "ternary":
                mask = int.from_bytes(m.ternary.mask, "big")
                if draw(st.booleans()) or mask == f.top:
                    m.ternary.mask = draw(st.sampled_from([b"\x00", bytes(4)]))
                else:
                    m.ternary.value = canon(int.from_bytes(m.ternary.value, "big") | (f.top & ~mask))
            else:
                if draw(st.booleans()):
                    m.range.low, m.range.high = canon(5), canon(4)
                else:
                    m.range.low, m.range.high = canon(0), draw(spelled(f.top, f.bitwidth))
            faults.add("match")


TABLE_FAULTS = ["table", "unknown_field", "repeated_field", "missing_field", "wrong_kind", "kindless",
                "match_bytes", "lpm", "ternary", "range", "priority", "is_const", "since_hit",
                "action_unknown", "action_missing", "action_other", "action_empty", "scope", "param",
                "param_bytes", "idle", "counter_where_none", "meter_where_none", "meter_bad", "negative",
                "meter_counters"]


@st.composite
def table_write(draw: st.DrawFn, schema: Schema, clean: bool = False) -> Planned:
    """A table entry update; `clean`: a valid INSERT (that may still collide with an entry)."""
    faults: set[str] = set()
    utype = INSERT if clean else draw(update_type(faults))
    specs = sorted((t for t in schema.tables.values() if not (clean and t.const_table)), key=lambda t: t.id)
    spec = draw(st.sampled_from(specs))
    wanted = [] if clean else some_faults(draw, TABLE_FAULTS)
    ent = p4runtime_pb2.Entity()
    te = ent.table_entry
    te.table_id = spec.id
    if spec.const_table:
        faults.add("const_table")
    matches = draw(key_matches(spec.fields))
    _faulty_match(draw, spec, matches, faults, wanted)
    te.match.extend(matches)
    if spec.needs_priority:
        te.priority = draw(st.sampled_from([1, 2, 3, 2**31 - 1]))
    if "priority" in wanted:
        te.priority = draw(st.sampled_from([0, -1, -(2**31)]) if spec.needs_priority
                           else st.sampled_from([1, -1, 7, 2**31 - 1]))
        faults.add("priority")
    if "table" in wanted:
        te.table_id = _other_table_id(draw, schema)
        faults.add("table")
    if "is_const" in wanted:
        te.is_const = True
        faults.add("is_const")
    if "since_hit" in wanted:
        te.time_since_last_hit.elapsed_ns = draw(st.sampled_from([0, 1, 2**62]))
        faults.add("since_hit")
    _entry_body(draw, schema, spec, te, utype, faults, wanted, default=False)
    return Planned(U(type=utype, entity=ent), frozenset(faults))


def _entry_body(draw: st.DrawFn, schema: Schema, spec: TableSpec, te: p4runtime_pb2.TableEntry, utype: int,
                faults: set[str], wanted: list[str], default: bool) -> None:
    """Action, metadata, idle timeout and direct resources of an entry (or a default entry)."""
    usable = spec.actions(Scope.TABLE_AND_DEFAULT, Scope.DEFAULT_ONLY if default else Scope.TABLE_ONLY)
    refused = spec.actions(Scope.TABLE_ONLY if default else Scope.DEFAULT_ONLY)
    give_action = utype == INSERT or draw(st.integers(0, 4)) > 0 if not default else draw(st.integers(0, 3)) > 0
    if "action_missing" in wanted and utype == INSERT and not default:
        give_action = False
        faults.add("action")
    if give_action and usable:
        action = schema.actions[draw(st.sampled_from(usable))]
        if "scope" in wanted and refused:
            action = schema.actions[draw(st.sampled_from(refused))]
            faults.add("scope")
        a = te.action.action
        a.action_id = action.id
        draw(params_for(action, a))
        if "action_unknown" in wanted:
            a.action_id = draw(st.sampled_from(sorted({0, 12345} | (set(schema.actions) - set(spec.scopes)))))
            faults.add("action")
        if "param" in wanted:
            how = draw(st.sampled_from(["unknown", "repeated", "missing"]))
            if how == "unknown" or not a.params:
                a.params.add(param_id=100 + draw(st.integers(0, 9)), value=b"\x01")
            elif how == "repeated":
                a.params.append(_copy(draw(st.sampled_from(list(a.params)))))
            else:
                del a.params[draw(st.integers(0, len(a.params) - 1))]
            faults.add("action")
        if "param_bytes" in wanted and a.params:
            i = draw(st.integers(0, len(a.params) - 1))
            width = dict(schema.actions[a.action_id].params).get(a.params[i].param_id, 32) \
                if a.action_id in schema.actions else 32
            a.params[i].value = draw(misfit(width))
            faults.add("param_bytes")
    elif give_action and not usable:
        te.action.action.action_id = draw(st.sampled_from(refused)) if refused else 0
        faults.add("scope" if refused else "action")
    if "action_other" in wanted:
        kind = draw(st.sampled_from(["member", "group", "set"]))
        if kind == "member":
            te.action.action_profile_member_id = draw(st.integers(0, 10))
        elif kind == "group":
            te.action.action_profile_group_id = draw(st.integers(0, 10))
        else:
            te.action.action_profile_action_set.action_profile_actions.add(weight=1)
        faults.add("action")
    elif "action_empty" in wanted:
        te.action.Clear()
        te.action.SetInParent()
        faults.add("action")
    te.controller_metadata = draw(st.sampled_from([0, 0, 1, 2**64 - 1, 77]))
    te.metadata = draw(st.sampled_from([b"", b"", b"cookie", bytes(range(256))]))
    if spec.idle and not default and draw(st.booleans()):
        te.idle_timeout_ns = draw(st.sampled_from([1_000_000, 10**9, 10**15, 2**63 - 1]))
    if "idle" in wanted:
        if spec.idle and not default:
            te.idle_timeout_ns = draw(st.sampled_from([-1, -(2**63)]))
        else:
            te.idle_timeout_ns = draw(st.sampled_from([1, 10**9, -1]))
        faults.add("default_key" if default else "idle")
    if spec.counter and draw(st.booleans()):
        te.counter_data.packet_count = draw(st.sampled_from([0, 1, 2**63 - 1]))
        te.counter_data.byte_count = draw(st.sampled_from([0, 64, 2**63 - 1]))
        if draw(st.integers(0, 3)) == 0:
            te.counter_data.Clear()
            te.counter_data.SetInParent()
    if "negative" in wanted and spec.counter:
        te.counter_data.packet_count = -draw(st.integers(1, 2**63))
        faults.add("negative")
    if "counter_where_none" in wanted and not spec.counter:
        te.counter_data.packet_count = 1
        faults.add("direct")
    if spec.meter is not None and draw(st.booleans()):
        te.meter_config.CopyFrom(draw(meter_config(spec.meter)))
    if "meter_bad" in wanted and spec.meter is not None:
        te.meter_config.CopyFrom(draw(bad_meter_config(spec.meter)))
        faults.add("direct")
    if "meter_where_none" in wanted and spec.meter is None:
        te.meter_config.CopyFrom(draw(meter_config(MeterType.TWO_RATE_THREE_COLOR)))
        faults.add("direct")
    if "meter_counters" in wanted:
        te.meter_counter_data.SetInParent()
        faults.add("meter_counters")


@st.composite
def default_write(draw: st.DrawFn, schema: Schema) -> Planned:
    faults: set[str] = set()
    utype = draw(update_type(faults, weights=(1, 6, 1)))
    if utype in (INSERT, DELETE):
        faults.add("default_key")  # spec: the default entry is only ever modified
    spec = draw(st.sampled_from(sorted(schema.tables.values(), key=lambda t: t.id)))
    if spec.const_default:
        faults.add("default_const")
    wanted = some_faults(draw, ["match", "priority", "idle", "since_hit", "is_const", "action_unknown",
                                "action_other", "action_empty", "scope", "param", "param_bytes",
                                "counter_where_none", "meter_where_none", "meter_bad", "table"])
    ent = p4runtime_pb2.Entity()
    te = ent.table_entry
    te.table_id = spec.id
    te.is_default_action = True
    if "match" in wanted and spec.fields:
        te.match.append(draw(field_match(spec.fields[0])))
        faults.add("default_key")
    if "priority" in wanted:
        te.priority = draw(st.sampled_from([1, -1]))
        faults.add("default_key")
    if "since_hit" in wanted:
        te.time_since_last_hit.SetInParent()
        faults.add("since_hit")
    if "is_const" in wanted:
        te.is_const = True
        faults.add("is_const")
    _entry_body(draw, schema, spec, te, utype, faults, wanted, default=True)
    if "table" in wanted:
        te.table_id = _other_table_id(draw, schema)
        faults.add("table")
    return Planned(U(type=utype, entity=ent), frozenset(faults))


@st.composite
def direct_write(draw: st.DrawFn, schema: Schema) -> Planned:
    """A DirectCounterEntry or DirectMeterEntry (MODIFY only) naming an entry by its key."""
    faults: set[str] = set()
    utype = draw(update_type(faults, weights=(1, 6, 1)))
    if utype in (INSERT, DELETE):
        faults.add("only_modify")
    specs = sorted(schema.tables.values(), key=lambda t: t.id)
    meter = draw(st.booleans()) and any(t.meter is not None for t in specs)
    owners = [t for t in specs if (t.meter is not None if meter else t.counter)] or specs
    spec = draw(st.sampled_from(owners if draw(st.integers(0, 5)) else specs))
    if not (spec.meter is not None if meter else spec.counter):
        faults.add("direct")
    wanted = some_faults(draw, ["unknown_field", "missing_field", "match_bytes", "lpm", "priority", "table",
                                "negative", "meter_bad", "meter_counters"])
    ent = p4runtime_pb2.Entity()
    te = ent.direct_meter_entry.table_entry if meter else ent.direct_counter_entry.table_entry
    te.table_id = spec.id
    matches = draw(key_matches(spec.fields))
    _faulty_match(draw, spec, matches, faults, wanted)
    te.match.extend(matches)
    if spec.needs_priority:
        te.priority = draw(st.sampled_from([1, 2, 3]))
    if "priority" in wanted:
        te.priority = 0 if spec.needs_priority else 5
        faults.add("priority")
    if "table" in wanted:
        te.table_id = _other_table_id(draw, schema)
        faults.add("table")
    if meter:
        dme = ent.direct_meter_entry
        if draw(st.booleans()):
            dme.config.CopyFrom(draw(meter_config(spec.meter if spec.meter is not None else 0)))
        if "meter_bad" in wanted:
            dme.config.CopyFrom(draw(bad_meter_config(spec.meter if spec.meter is not None else 0)))
            faults.add("meter")
        if "meter_counters" in wanted:
            dme.counter_data.SetInParent()
            faults.add("meter_counters")
    else:
        dce = ent.direct_counter_entry
        if draw(st.integers(0, 3)):
            dce.data.packet_count, dce.data.byte_count = draw(st.integers(0, 2**63 - 1)), draw(st.integers(0, 99))
        if "negative" in wanted:
            dce.data.byte_count = -1
            faults.add("negative")
    return Planned(U(type=utype, entity=ent), frozenset(faults))


@st.composite
def index_for(draw: st.DrawFn, msg: Message, size: int, faults: set[str]) -> None:
    """Set (or leave unset: every cell) the index of a counter, meter or register entity."""
    pick = draw(st.sampled_from(["one", "one", "one", "all", "negative", "past"]))
    if pick == "one":
        msg.index.index = draw(st.sampled_from(sorted({0, 1, size - 1, size // 2})))
    elif pick == "negative":
        msg.index.index = draw(st.sampled_from([-1, -(2**63)]))
        faults.add("index")
    elif pick == "past":
        msg.index.index = draw(st.sampled_from([size, size + 1, 2**63 - 1]))
        faults.add("index_range")


def _extern_id(draw: st.DrawFn, ids: list[int], schema: Schema, faults: set[str]) -> int:
    if ids and draw(st.integers(0, 7)):
        return draw(st.sampled_from(ids))
    faults.add("id")
    return draw(st.sampled_from(sorted({0, 12345} | (schema.all_ids - set(ids)))))


@st.composite
def counter_write(draw: st.DrawFn, schema: Schema) -> Planned:
    faults: set[str] = set()
    utype = draw(modify_only_type(faults))
    ent = p4runtime_pb2.Entity()
    ce = ent.counter_entry
    ce.counter_id = _extern_id(draw, sorted(schema.counters), schema, faults)
    draw(index_for(ce, schema.counters.get(ce.counter_id, 8), faults))
    if draw(st.integers(0, 4)):
        ce.data.packet_count, ce.data.byte_count = draw(st.sampled_from([0, 3, 2**63 - 1])), draw(st.integers(0, 999))
        if draw(st.integers(0, 9)) == 0:
            ce.data.packet_count = -5
            faults.add("negative")
    return Planned(U(type=utype, entity=ent), frozenset(faults))


@st.composite
def meter_write(draw: st.DrawFn, schema: Schema) -> Planned:
    faults: set[str] = set()
    utype = draw(modify_only_type(faults))
    ent = p4runtime_pb2.Entity()
    me = ent.meter_entry
    me.meter_id = _extern_id(draw, sorted(schema.meters), schema, faults)
    size, mtype = schema.meters.get(me.meter_id, (4, 0))
    draw(index_for(me, size, faults))
    if draw(st.integers(0, 3)):
        me.config.CopyFrom(draw(meter_config(mtype)))
    if draw(st.integers(0, 7)) == 0:
        me.config.CopyFrom(draw(bad_meter_config(mtype)))
        faults.add("meter")
    if draw(st.integers(0, 11)) == 0:
        me.counter_data.SetInParent()
        faults.add("meter_counters")
    return Planned(U(type=utype, entity=ent), frozenset(faults))


@st.composite
def register_write(draw: st.DrawFn, schema: Schema) -> Planned:
    faults: set[str] = set()
    utype = draw(modify_only_type(faults))
    ent = p4runtime_pb2.Entity()
    re = ent.register_entry
    re.register_id = _extern_id(draw, sorted(schema.registers), schema, faults)
    size, width = schema.registers.get(re.register_id, (16, 32))
    draw(index_for(re, size, faults))
    how = draw(st.sampled_from(["bits"] * 6 + ["misfit", "unset", "bool", "struct", "enum"]))
    if how == "bits":
        re.data.bitstring = draw(spelled(draw(value_of(width)), width))
    elif how == "misfit":
        re.data.bitstring = draw(misfit(width))
        faults.add("data_bytes")
    elif how != "unset" or draw(st.booleans()):
        if how == "bool" or how == "unset":
            re.data.bool = draw(st.booleans())
        elif how == "struct":
            re.data.struct.members.add().bitstring = b"\x01"
        else:
            re.data.enum = "RED"
        faults.add("data")
    else:
        faults.add("data")
    return Planned(U(type=utype, entity=ent), frozenset(faults))


@st.composite
def replicas(draw: st.DrawFn, out, faults: set[str]) -> None:  # noqa: ANN001 - a repeated Replica field
    for _ in range(draw(st.integers(0, 4))):
        r = out.add(instance=draw(st.sampled_from([0, 1, 2, 2**16, 2**32 - 1])))
        port = draw(st.sampled_from([1, 2, 3, CPU_PORT, 511, 2**31]))
        how = draw(st.sampled_from(["egress_port"] * 3 + ["port"] * 3 + ["neither", "misfit"]))
        if how == "egress_port":
            r.egress_port = port
        elif how == "port":
            r.port = draw(spelled(port, 32))
        elif how == "misfit":
            r.port = draw(misfit(32))
            faults.add("replica_bytes")
    if len(out) and draw(st.integers(0, 5)) == 0:
        out.append(_copy(out[0]))
    seen = set()
    for r in out:
        kind = r.WhichOneof("port_kind")
        port = decode(r.port, 32) if kind == "port" else r.egress_port
        if port is not None and (port, r.instance) in seen:
            faults.add("replica")
        seen.add((port, r.instance))


@st.composite
def pre_write(draw: st.DrawFn, schema: Schema) -> Planned:
    faults: set[str] = set()
    utype = draw(update_type(faults))
    ent = p4runtime_pb2.Entity()
    pre = ent.packet_replication_engine_entry
    which = draw(st.sampled_from(["multicast_group_entry", "clone_session_entry", "neither"]))
    if which == "neither":
        pre.SetInParent()
        faults.add("entity")
        return Planned(U(type=utype, entity=ent), frozenset(faults))
    ids = st.sampled_from([0, 1, 2, 3, 512, 2**32 - 1])
    if which == "multicast_group_entry":
        mg = pre.multicast_group_entry
        mg.multicast_group_id = draw(ids)
        draw(replicas(mg.replicas, faults))
        mg.metadata = draw(st.sampled_from([b"", b"", b"\x00", b"group"]))
        key = mg.multicast_group_id
    else:
        cs = pre.clone_session_entry
        cs.session_id = draw(ids)
        draw(replicas(cs.replicas, faults))
        cs.class_of_service = draw(st.sampled_from([0, 0, 1, 7]))
        cs.packet_length_bytes = draw(st.sampled_from([0, 0, 64, 2**31 - 1]))
        key = cs.session_id
    if key == 0:
        faults.add("zero_id")
    return Planned(U(type=utype, entity=ent), frozenset(faults))


@st.composite
def digest_write(draw: st.DrawFn, schema: Schema) -> Planned:
    faults: set[str] = set()
    utype = draw(update_type(faults))
    ent = p4runtime_pb2.Entity()
    de = ent.digest_entry
    de.digest_id = _extern_id(draw, schema.digests, schema, faults)
    how = draw(st.sampled_from(["config"] * 5 + ["none", "negative"]))
    if how != "none":
        c = de.config
        c.max_timeout_ns = draw(st.sampled_from([0, 10**6, 2**63 - 1]))
        c.max_list_size = draw(st.sampled_from([0, 1, 64, 2**31 - 1]))
        c.ack_timeout_ns = draw(st.sampled_from([0, 10**9]))
        if how == "negative":
            setattr(c, draw(st.sampled_from(["max_timeout_ns", "max_list_size", "ack_timeout_ns"])), -1)
    if how != "config":
        faults.add("data")
    return Planned(U(type=utype, entity=ent), frozenset(faults))


@st.composite
def value_set_write(draw: st.DrawFn, schema: Schema) -> Planned:
    faults: set[str] = set()
    utype = draw(modify_only_type(faults))
    ent = p4runtime_pb2.Entity()
    vse = ent.value_set_entry
    vse.value_set_id = _extern_id(draw, sorted(schema.value_sets), schema, faults)
    fields, size = schema.value_sets.get(vse.value_set_id, ((FieldSpec(1, 16, EXACT),), 4))
    for _ in range(draw(st.integers(0, size + 1))):
        matches = draw(key_matches(fields))
        if draw(st.integers(0, 5)) == 0:
            _faulty_match(draw, fields, matches, faults,
                          [draw(st.sampled_from(["unknown_field", "repeated_field", "missing_field", "wrong_kind",
                                                 "kindless", "match_bytes", "ternary"]))])
        vse.members.add().match.extend(matches)
    if len(vse.members) and draw(st.integers(0, 4)) == 0:
        vse.members.append(_copy(vse.members[0]))
    return Planned(U(type=utype, entity=ent), frozenset(faults))


@st.composite
def stray_write(draw: st.DrawFn, schema: Schema) -> Planned:
    """What no P4Info here has: externs, action profiles; and entities with nothing set."""
    faults: set[str] = set()
    utype = draw(update_type(faults))
    ent = p4runtime_pb2.Entity()
    what = draw(st.sampled_from(["nothing", "extern", "member", "group"]))
    if what == "nothing":
        faults.add("entity")
    elif what == "extern":
        ent.extern_entry.extern_type_id = draw(st.integers(0, 0xFF))
        faults.add("unsupported")
    elif what == "member":
        ent.action_profile_member.action_profile_id = draw(st.sampled_from([0, 12345, 0x11000001]))
        ent.action_profile_member.member_id = 1
        faults.add("id")
    else:
        ent.action_profile_group.action_profile_id = draw(st.sampled_from([0, 12345, 0x11000001]))
        ent.action_profile_group.group_id = 1
        faults.add("id")
    return Planned(U(type=utype, entity=ent), frozenset(faults))


def any_write(schema: Schema) -> st.SearchStrategy[Planned]:
    """One update of any kind the P4Info has, table entries most often."""
    if not schema.tables:
        kinds = [counter_write, register_write, pre_write, digest_write, stray_write]
        return st.one_of([k(schema) for k in kinds])
    kinds = [table_write] * 6 + [default_write, direct_write, counter_write, register_write, pre_write,
                                 pre_write, digest_write, stray_write]
    if schema.meters:
        kinds.append(meter_write)
    if schema.value_sets:
        kinds.append(value_set_write)
    clean = [table_write(schema, clean=True)] * 4 if any(not t.const_table for t in schema.tables.values()) else []
    return st.one_of(clean + [k(schema) for k in kinds])


# =================================================================================================
# other encodings of the same protobuf message
VARINT, I64, LEN, I32 = 0, 1, 2, 5


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return value, pos


def _enc_varint(n: int, size: int = 0) -> bytes:
    """n as a varint of at least `size` bytes (padding with continuation bytes is allowed)."""
    out = bytearray()
    while True:
        out.append(n & 0x7F)
        n >>= 7
        if not n and len(out) >= size:
            break
    for i in range(len(out) - 1):
        out[i] |= 0x80
    return bytes(out)


def _wire_fields(buf: bytes) -> list[tuple[int, int, int | bytes]]:
    out: list[tuple[int, int, int | bytes]] = []
    pos = 0
    while pos < len(buf):
        tag, pos = _varint(buf, pos)
        wt = tag & 7
        if wt == VARINT:
            value, pos = _varint(buf, pos)
            out.append((tag >> 3, wt, value))
        elif wt == LEN:
            n, pos = _varint(buf, pos)
            out.append((tag >> 3, wt, buf[pos:pos + n]))
            pos += n
        else:
            n = 8 if wt == I64 else 4
            out.append((tag >> 3, wt, buf[pos:pos + n]))
            pos += n
    return out


_WIDE32 = {FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_ENUM}
_WIDE64 = {FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_BOOL}


def reencode(buf: bytes, desc: Descriptor, rnd: random.Random, split_part: bool = False, wild: bool = True) -> bytes:
    """Another encoding of the message `buf` that protobuf decodes to the same message: varints
    padded or widened past their type (protobuf keeps the low 32 or 64 bits: a bool of 2**64 is
    false), singular sub-messages split in two occurrences (protobuf merges them), fields in
    another order, a singular field given before with another value (the last one counts),
    absent fields given with their default value, unknown fields. Not `wild`: only what p4sim's
    own Write decoder reads (padding, order, defaults), so that it is the one that decodes it."""
    def tag(num: int, wt: int) -> bytes:
        return _enc_varint(num << 3 | wt, rnd.choice([0, 0, 0, 2, 5]))

    def length(n: int) -> bytes:
        return _enc_varint(n, rnd.choice([0, 0, 0, 2, 5]))

    def varint_field(fd: FieldDescriptor | None, num: int, value: int) -> bytes:
        if fd is not None and wild and rnd.random() < 0.2:
            if fd.type in _WIDE32:
                value += rnd.randrange(1, 1 << 37) << 32
            elif fd.type in _WIDE64:
                value += rnd.randrange(1, 1 << 5) << 64
        return tag(num, VARINT) + _enc_varint(value, rnd.choice([0, 0, 0, 10]))

    out: list[tuple[int, bytes]] = []
    present = set()
    for num, wt, value in _wire_fields(buf):
        fd = desc.fields_by_number.get(num)
        present.add(num)
        singular = fd is not None and not fd.is_repeated
        if singular and fd.message_type is None and wild and rnd.random() < 0.1:  # an earlier value, overridden
            if wt == VARINT:
                out.append((num, varint_field(fd, num, rnd.randrange(0, 1 << 20))))
            elif wt == LEN:
                junk = b"x" if fd.type == FieldDescriptor.TYPE_STRING else bytes([rnd.randrange(256)])
                out.append((num, tag(num, LEN) + length(len(junk)) + junk))
        if wt == VARINT:
            out.append((num, varint_field(fd, num, value)))  # type: ignore[arg-type]
        elif wt == LEN and fd is not None and fd.message_type is not None and not fd.message_type.GetOptions().map_entry:
            parts = [value]
            cuts = []  # where each field of the sub-message ends
            pos = 0
            while pos < len(value):  # type: ignore[arg-type]
                pos = _next_field_end(value, pos)  # type: ignore[arg-type]
                cuts.append(pos)
            if singular and len(cuts) > 1 and wild and rnd.random() < 0.3:
                cut = rnd.choice(cuts[:-1])
                parts = [value[:cut], value[cut:]]  # type: ignore[index]
            for part in parts:
                inner = reencode(part, fd.message_type, rnd, split_part or len(parts) > 1, wild)  # type: ignore[arg-type]
                out.append((num, tag(num, LEN) + length(len(inner)) + inner))
        elif wt == LEN:
            out.append((num, tag(num, LEN) + length(len(value)) + value))  # type: ignore[arg-type]
        else:
            out.append((num, tag(num, wt) + value))  # type: ignore[operator]
    if not split_part:  # absent scalars given their default (a bool's may be 2**64: still false)
        for fd in desc.fields:
            if (fd.number in present or fd.is_repeated or fd.message_type is not None
                    or fd.containing_oneof is not None or rnd.random() < 0.7):
                continue
            if fd.type == FieldDescriptor.TYPE_BOOL:
                out.append((fd.number, tag(fd.number, VARINT) + _enc_varint(rnd.randrange(0, 64) << 64, 10)))
            elif fd.type in (FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_BYTES):
                out.append((fd.number, tag(fd.number, LEN) + length(0)))
            elif fd.cpp_type not in (FieldDescriptor.CPPTYPE_FLOAT, FieldDescriptor.CPPTYPE_DOUBLE):
                out.append((fd.number, varint_field(fd, fd.number, 0)))
    for _ in range(rnd.choice([0, 0, 1, 2]) if wild else 0):
        num = max([f.number for f in desc.fields] + [0]) + rnd.randrange(1, 50)
        wt = rnd.choice([VARINT, I64, LEN, I32])
        body = {VARINT: _enc_varint(rnd.randrange(1 << 64)), I64: bytes(8), I32: bytes(4),
                LEN: length(3) + b"abc"}[wt]
        out.append((num, tag(num, wt) + body))
    order = {num: rnd.random() for num, _ in out}
    out.sort(key=lambda f: order[f[0]])  # stable: a field's occurrences keep their order
    return b"".join(chunk for _, chunk in out)


def overlong_tag(buf: bytes, desc: Descriptor, which: list[int]) -> bytes:
    """The message as it is but for one tag (the which[0]-th met, depth first) spelled in more
    than five bytes: protobuf calls that corrupt, so these bytes are no message at all."""
    out = []
    for num, wt, value in _wire_fields(buf):
        which[0] -= 1
        tag = _enc_varint(num << 3 | wt, 6 if which[0] == -1 else 0)
        fd = desc.fields_by_number.get(num)
        if wt == VARINT:
            out.append(tag + _enc_varint(value))  # type: ignore[arg-type]
        elif wt == LEN:
            inner = value
            if fd is not None and fd.message_type is not None and not fd.message_type.GetOptions().map_entry:
                inner = overlong_tag(value, fd.message_type, which)  # type: ignore[arg-type]
            out.append(tag + _enc_varint(len(inner)) + inner)  # type: ignore[arg-type]
        else:
            out.append(tag + value)  # type: ignore[operator]
    return b"".join(out)


def _next_field_end(buf: bytes, pos: int) -> int:
    tag, pos = _varint(buf, pos)
    wt = tag & 7
    if wt == VARINT:
        return _varint(buf, pos)[1]
    if wt == LEN:
        n, pos = _varint(buf, pos)
        return pos + n
    return pos + (8 if wt == I64 else 4)


def other_encoding(req: Message, seed: int) -> bytes:
    rnd = random.Random(seed)
    raw = reencode(req.SerializeToString(), req.DESCRIPTOR, rnd, wild=rnd.random() < 0.5)
    again = type(req).FromString(raw)
    again.DiscardUnknownFields()
    assert again == req, "the test's re-encoding changed the message"
    return raw


# =================================================================================================
# the servers
class Rig:
    """A running P4Runtime server with its pipeline, a primary and a backup controller."""

    def __init__(self, name: str, addr: str, config: p4runtime_pb2.ForwardingPipelineConfig, primary: Client,
                 backup: Client, defaults: dict[int, p4runtime_pb2.TableEntry]) -> None:
        self.name = name
        self.addr = addr
        self.schema = Schema.of(config.p4info)
        self.config = config
        self.primary = primary
        self.backup = backup
        self.defaults = defaults  # default entries as the pipeline starts them
        self.channel = grpc.insecure_channel(addr)

    def __repr__(self) -> str:
        return f"<{self.name} rig at {self.addr}>"

    def raw(self, method: str, streaming: bool = False) -> grpc.UnaryUnaryMultiCallable:
        """The RPC with bytes in and bytes out: no client-side protobuf at all."""
        make = self.channel.unary_stream if streaming else self.channel.unary_unary
        return make(f"/p4.v1.P4Runtime/{method}", request_serializer=None, response_deserializer=None)


@pytest.fixture(scope="module")
def splice_program():  # noqa: ANN201 - a CompiledProgram
    return compile_file(ROOT / "p4src" / "splice.p4")


def _start(name: str, request: pytest.FixtureRequest) -> tuple[str, Callable[[], None],
                                                                 p4runtime_pb2.ForwardingPipelineConfig]:
    config = p4runtime_pb2.ForwardingPipelineConfig()
    config.cookie.cookie = 1
    if name == "splice":  # splice.p4 on the p4sim device, as `p4sim` runs it
        program = request.getfixturevalue("splice_program")
        sw = SwitchProcess(device_id=DEVICE_ID, grpc_addr="127.0.0.1:0", cpu_port=CPU_PORT)
        sw.start()
        config.p4info.CopyFrom(program.p4info)
        config.p4_device_config = program.device_config
        return sw.grpc_addr, sw.stop, config
    server = P4RuntimeServer(NullDevice(), address="127.0.0.1:0", device_id=DEVICE_ID).start()
    config.p4info.CopyFrom(load_p4info())
    config.p4_device_config = b"null device"
    return f"127.0.0.1:{server.port}", lambda: server.stop(grace=0.2), config


@pytest.fixture(scope="module", params=["splice", "generic"])
def rig(request: pytest.FixtureRequest) -> Iterator[Rig]:
    addr, stop, config = _start(request.param, request)
    primary = Client(addr, PRIMARY)
    assert primary.status() == OK
    backup = Client(addr, BACKUP)
    try:
        assert backup.status() == EXISTS
        primary.set_pipeline(p4info=config.p4info, device_config=config.p4_device_config, cookie=1)
        defaults = {}
        for t in config.p4info.tables:
            (d,) = primary.read(p4runtime_pb2.Entity(table_entry=p4runtime_pb2.TableEntry(
                table_id=t.preamble.id, is_default_action=True)))
            defaults[t.preamble.id] = d.table_entry
        yield Rig(request.param, addr, config, primary, backup, defaults)
    finally:
        primary.close()
        backup.close()
        stop()


def assert_alive(rig: Rig) -> None:
    """The server still answers: Capabilities, and a valid Read."""
    stub = p4runtime_pb2_grpc.P4RuntimeStub(rig.channel)
    assert stub.Capabilities(p4runtime_pb2.CapabilitiesRequest(), timeout=10).p4runtime_api_version
    table_id = min(rig.schema.tables)
    req = p4runtime_pb2.ReadRequest(device_id=DEVICE_ID)
    req.entities.add().table_entry.table_id = table_id
    for resp in stub.Read(req, timeout=10):
        assert all(e.table_entry.table_id == table_id for e in resp.entities)


def drain(client: Client) -> None:
    """Forget what the stream brought (idle timeout notifications of the entries written)."""
    with suppress(queue.Empty):
        while True:
            msg = client.inbox.get_nowait()
            if msg is None:
                raise AssertionError(f"the stream of {client.election_id} ended: {client.stream_error}")


# =================================================================================================
# reading the state back
def state_reads(model: Model) -> tuple[list[p4runtime_pb2.Entity], list[p4runtime_pb2.Entity]]:
    """One Read's entities that cover all the model holds, and what it must return."""
    s = model.schema
    reqs: list[p4runtime_pb2.Entity] = []
    want: list[p4runtime_pb2.Entity] = []
    for spec in sorted(s.tables.values(), key=lambda t: t.id):
        e = reqs.append(p4runtime_pb2.Entity()) or reqs[-1]
        e.table_entry.table_id = spec.id
        if spec.counter:
            e.table_entry.counter_data.SetInParent()
        if spec.meter is not None:
            e.table_entry.meter_config.SetInParent()
        d = reqs.append(p4runtime_pb2.Entity()) or reqs[-1]
        d.table_entry.table_id, d.table_entry.is_default_action = spec.id, True
    want += [p4runtime_pb2.Entity(table_entry=e) for e in model.entries.values()]
    want += [p4runtime_pb2.Entity(table_entry=d) for d in model.defaults.values()]
    for which, store in (("multicast_group_entry", model.groups), ("clone_session_entry", model.sessions)):
        r = reqs.append(p4runtime_pb2.Entity()) or reqs[-1]
        getattr(r.packet_replication_engine_entry, which).SetInParent()
        for msg in store.values():
            w = want.append(p4runtime_pb2.Entity()) or want[-1]
            getattr(w.packet_replication_engine_entry, which).CopyFrom(msg)
    if s.digests:
        reqs.append(p4runtime_pb2.Entity(digest_entry=p4runtime_pb2.DigestEntry()))
        for did, config in model.digests.items():
            want.append(p4runtime_pb2.Entity(digest_entry=p4runtime_pb2.DigestEntry(digest_id=did, config=config)))
    for cid, cells in model.counters.items():
        reqs.append(p4runtime_pb2.Entity(counter_entry=p4runtime_pb2.CounterEntry(counter_id=cid)))
        for i, (packets, nbytes) in enumerate(cells):
            w = want.append(p4runtime_pb2.Entity()) or want[-1]
            w.counter_entry.counter_id = cid
            w.counter_entry.index.index = i
            w.counter_entry.data.packet_count, w.counter_entry.data.byte_count = packets, nbytes
            w.counter_entry.data.SetInParent()
    for mid, configs in model.meters.items():
        reqs.append(p4runtime_pb2.Entity(meter_entry=p4runtime_pb2.MeterEntry(meter_id=mid)))
        for i, config in enumerate(configs):
            w = want.append(p4runtime_pb2.Entity()) or want[-1]
            w.meter_entry.meter_id = mid
            w.meter_entry.index.index = i
            if config is not None:
                w.meter_entry.config.CopyFrom(config)
    for rid, (fill, cells) in model.registers.items():
        size = s.registers[rid][0]
        for i in sorted(set(cells) | {0, size - 1}):
            r = reqs.append(p4runtime_pb2.Entity()) or reqs[-1]
            r.register_entry.register_id = rid
            r.register_entry.index.index = i
            w = want.append(_copy(r)) or want[-1]
            w.register_entry.data.bitstring = canon(cells.get(i, fill))
    for vid, members in model.value_sets.items():
        reqs.append(p4runtime_pb2.Entity(value_set_entry=p4runtime_pb2.ValueSetEntry(value_set_id=vid)))
        w = want.append(p4runtime_pb2.Entity()) or want[-1]
        w.value_set_entry.value_set_id = vid
        for m in members:
            w.value_set_entry.members.append(p4runtime_pb2.ValueSetMember.FromString(m))
    return reqs, want


def same_entities(got: list[p4runtime_pb2.Entity], want: list[p4runtime_pb2.Entity], what: str) -> None:
    have, expect = Multiset(normalized(e) for e in got), Multiset(normalized(e) for e in want)
    if have != expect:
        extra = [show(p4runtime_pb2.Entity.FromString(b)) for b in (have - expect)]
        missing = [show(p4runtime_pb2.Entity.FromString(b)) for b in (expect - have)]
        raise AssertionError(f"{what}: the server holds {len(extra)} entities the model does not: {extra[:4]}; "
                             f"the model holds {len(missing)} the server does not: {missing[:4]}")


def check_state(rig: Rig, model: Model) -> None:
    reqs, want = state_reads(model)
    same_entities(rig.primary.read(*reqs), want, f"{rig.name}: state read back")


def reset(rig: Rig, model: Model, everything: bool = False) -> Model:
    """Delete what the server holds (what the model says it holds, and what a wildcard read
    finds besides), put counters, meters, registers and value sets back; a fresh model."""
    p = rig.primary
    ups: list[p4runtime_pb2.Update] = []
    for ent in p.read(p4runtime_pb2.Entity(table_entry=p4runtime_pb2.TableEntry())):
        if not ent.table_entry.is_const:
            key = p4runtime_pb2.TableEntry(table_id=ent.table_entry.table_id, priority=ent.table_entry.priority)
            key.match.extend(ent.table_entry.match)
            ups.append(U(type=DELETE, entity=p4runtime_pb2.Entity(table_entry=key)))
    for spec in rig.schema.tables.values():
        if not spec.const_default:
            ups.append(U(type=MODIFY, entity=p4runtime_pb2.Entity(table_entry=p4runtime_pb2.TableEntry(
                table_id=spec.id, is_default_action=True))))
    wildcards = [p4runtime_pb2.Entity(), p4runtime_pb2.Entity()]
    wildcards[0].packet_replication_engine_entry.multicast_group_entry.SetInParent()
    wildcards[1].packet_replication_engine_entry.clone_session_entry.SetInParent()
    if rig.schema.digests:
        wildcards.append(p4runtime_pb2.Entity(digest_entry=p4runtime_pb2.DigestEntry()))
    ups += [U(type=DELETE, entity=e) for e in p.read(*wildcards)]
    touched = model.touched
    if everything:
        touched = ({("counter", i) for i in rig.schema.counters} | {("meter", i) for i in rig.schema.meters}
                   | {("register", i) for i in rig.schema.registers} | {("value_set", i) for i in rig.schema.value_sets})
    for kind, oid in sorted(touched):
        e = p4runtime_pb2.Entity()
        if kind == "counter":
            e.counter_entry.counter_id = oid
            e.counter_entry.data.SetInParent()
        elif kind == "meter":
            e.meter_entry.meter_id = oid
        elif kind == "register":
            e.register_entry.register_id = oid
            e.register_entry.data.bitstring = b"\x00"
        else:
            e.value_set_entry.value_set_id = oid
        ups.append(U(type=MODIFY, entity=e))
    with suppress(grpc.RpcError):
        p.write(*ups)
    drain(p)
    fresh = Model(rig)
    check_state(rig, fresh)
    return fresh


# =================================================================================================
# writes
SENDERS = st.sampled_from(["primary"] * 14 + ["backup", "forged", "anonymous", "device", "role", "atomicity"])


def write_request(sender: str, updates: list[p4runtime_pb2.Update], draw: st.DrawFn
                  ) -> tuple[p4runtime_pb2.WriteRequest, frozenset[int] | None]:
    """The WriteRequest from `sender` and the RPC-wide codes it must get (None: the primary's,
    answered update by update)."""
    req = p4runtime_pb2.WriteRequest(device_id=DEVICE_ID)
    req.updates.extend(updates)
    eid: tuple[int, int] | None = PRIMARY
    codes: frozenset[int] | None = None
    if sender == "backup":
        eid, codes = BACKUP, frozenset({DENIED})
    elif sender == "forged":
        eid, codes = draw(st.sampled_from([(0, 999), (1, 1000), (0, 1001), (2**64 - 1, 2**64 - 1)])), frozenset({DENIED})
    elif sender == "anonymous":
        eid, codes = None, frozenset({DENIED})
    elif sender == "device":
        req.device_id, codes = draw(st.sampled_from([0, 2, 2**64 - 1])), frozenset({NOT_FOUND})
    elif sender == "role":
        req.role, codes = draw(st.sampled_from(["nobody", "\u00e9", " "])), frozenset({NOT_FOUND, DENIED})
    elif sender == "atomicity":
        req.atomicity = draw(st.sampled_from([1, 2, 7]))
        codes = frozenset({UNIMPLEMENTED} | ({INVALID} if req.atomicity > 2 else set()))
    if eid is not None:
        req.election_id.high, req.election_id.low = eid
    return req, codes


def send(rig: Rig, method: str, req: Message, seed: int | None) -> grpc.RpcError | None:
    """Send a unary request as a message (seed None) or as another encoding of it."""
    try:
        if seed is None:
            getattr(rig.primary.stub, method)(req, timeout=60)
        else:
            rig.raw(method)(other_encoding(req, seed), timeout=60)
    except grpc.RpcError as e:
        return e
    return None


def code_of(err: grpc.RpcError | None) -> int:
    return OK if err is None else err.code().value[0]


def check_write(rig: Rig, model: Model, batch: list[Planned], sender: str, seed: int | None,
                draw: st.DrawFn) -> None:
    req, rpc_codes = write_request(sender, [p.update for p in batch], draw)
    err = send(rig, "Write", req, seed)
    if rpc_codes is not None:
        assert code_of(err) in rpc_codes, (f"a Write from {sender} answered {code_of(err)} "
                                           f"({err.details() if err else ''}), not one of {sorted(rpc_codes)}")
        return
    if err is None:
        results = [(OK, "")] * len(batch)
    else:
        assert err.code() == grpc.StatusCode.UNKNOWN, f"the primary's Write answered {err.code()}: {err.details()}"
        results = batch_errors(err)
        assert len(results) == len(batch), f"{len(results)} p4.v1.Error for {len(batch)} updates"
        assert any(code != OK for code, _ in results), "UNKNOWN with every update OK"
    for planned, (code, message) in zip(batch, results, strict=True):
        expect = model.expect(planned)
        assert code in expect.allowed, (
            f"{rig.name}: {code_pb2.Code.Name(code)} ({message!r}) for {show(planned.update)} "
            f"with faults {sorted(planned.faults)}; allowed: {[code_pb2.Code.Name(c) for c in sorted(expect.allowed)]}")
        if code == OK and expect.apply is not None:
            expect.apply()


@FUZZ
@given(data=st.data())
def test_write_batches_answer_per_update_and_keep_the_state(rig: Rig, data: st.DataObject) -> None:
    model = Model(rig)
    check_state(rig, model)
    try:
        for _ in range(data.draw(st.integers(1, 3), label="batches")):
            batch = data.draw(st.lists(any_write(rig.schema), max_size=10), label="batch")
            sender = data.draw(SENDERS, label="sender")
            seed = data.draw(st.none() | st.integers(0, 2**32 - 1), label="encoding")
            check_write(rig, model, batch, sender, seed, data.draw)
            check_state(rig, model)
    except BaseException:
        with suppress(Exception):
            reset(rig, model, everything=True)
        raise
    reset(rig, model)
    assert_alive(rig)


# =================================================================================================
# reads
def _respelled(draw: st.DrawFn, fields: tuple[FieldSpec, ...], matches) -> list[p4runtime_pb2.FieldMatch]:  # noqa: ANN001
    """The same key with its values spelled another (valid) way."""
    widths = {f.id: f.bitwidth for f in fields}
    out = []
    for m in matches:
        m = _copy(m)
        kind = m.WhichOneof("field_match_type")
        sub = getattr(m, kind)
        for name in {"exact": ["value"], "optional": ["value"], "lpm": ["value"], "ternary": ["value", "mask"],
                     "range": ["low", "high"]}[kind]:
            setattr(sub, name, draw(spelled(int.from_bytes(getattr(sub, name), "big"), widths[m.field_id])))
        out.append(m)
    return out


@st.composite
def table_filter(draw: st.DrawFn, schema: Schema, model: Model, te: p4runtime_pb2.TableEntry,
                 direct: bool = False) -> None:
    """A TableEntry read filter: a table (or all, or none), maybe a key, priority, action,
    metadata filters, the default entry."""
    entries = list(model.entries.values())
    pick = draw(st.sampled_from(["entry"] * 3 + ["table"] * 3 + ["all", "unknown"]))
    if pick == "entry" and entries:
        e = draw(st.sampled_from(entries))
        te.table_id = e.table_id
        spec = schema.tables[e.table_id]
        if draw(st.integers(0, 3)):
            te.match.extend(_respelled(draw, spec.fields, e.match))
            te.priority = e.priority
        if not direct and draw(st.integers(0, 3)) == 0:
            te.action.action.action_id = e.action.action.action_id
        if not direct and draw(st.integers(0, 4)) == 0:
            te.controller_metadata, te.metadata = e.controller_metadata, e.metadata
    elif pick == "all":
        te.table_id = 0
    elif pick == "unknown":
        te.table_id = draw(st.sampled_from(sorted({12345} | (schema.all_ids - set(schema.tables)))))
    else:
        spec = draw(st.sampled_from(sorted(schema.tables.values(), key=lambda t: t.id)))
        te.table_id = spec.id
        if draw(st.integers(0, 2)) == 0:
            matches = draw(key_matches(spec.fields))
            if draw(st.integers(0, 3)) == 0:
                _faulty_match(draw, spec, matches, set(), [draw(st.sampled_from(
                    ["unknown_field", "repeated_field", "missing_field", "wrong_kind", "match_bytes", "lpm"]))])
            te.match.extend(matches)
            if spec.needs_priority:
                te.priority = draw(st.sampled_from([1, 2, 3]))
    if draw(st.integers(0, 7)) == 0:
        te.priority = draw(st.sampled_from([1, 2, -1, 2**31 - 1]))
    if not direct:
        if draw(st.integers(0, 7)) == 0:
            te.action.action.action_id = draw(st.sampled_from(sorted(schema.actions) + [12345]))
        if draw(st.integers(0, 11)) == 0:
            te.action.action_profile_member_id = 1
        if draw(st.integers(0, 7)) == 0:
            te.controller_metadata = draw(st.sampled_from([1, 77, 2**64 - 1]))
        if draw(st.integers(0, 7)) == 0:
            te.metadata = draw(st.sampled_from([b"cookie", b"x"]))
        if draw(st.integers(0, 5)) == 0:
            te.is_default_action = True
        for flag in ("counter_data", "meter_config", "time_since_last_hit"):
            if draw(st.integers(0, 2)) == 0:
                getattr(te, flag).SetInParent()


@st.composite
def read_entity(draw: st.DrawFn, schema: Schema, model: Model) -> p4runtime_pb2.Entity:
    kinds = ["table"] * 6 + ["counter_table", "counter", "register", "pre", "digest", "stray"]
    kinds += ["meter_table", "meter"] if schema.meters else []
    kinds += ["value_set"] if schema.value_sets else []
    kind = draw(st.sampled_from(kinds))
    ent = p4runtime_pb2.Entity()
    faults: set[str] = set()
    if kind == "table":
        draw(table_filter(schema, model, ent.table_entry))
    elif kind == "counter_table":
        draw(table_filter(schema, model, ent.direct_counter_entry.table_entry, direct=True))
    elif kind == "meter_table":
        draw(table_filter(schema, model, ent.direct_meter_entry.table_entry, direct=True))
        if draw(st.integers(0, 7)) == 0:
            ent.direct_meter_entry.counter_data.SetInParent()
    elif kind in ("counter", "meter", "register"):
        ids = {"counter": schema.counters, "meter": schema.meters, "register": schema.registers}[kind]
        msg = getattr(ent, f"{kind}_entry")
        oid = draw(st.sampled_from(sorted(ids) + [0, 12345]))
        size = schema.counters.get(oid) if kind == "counter" else ids.get(oid, (8,))[0]  # type: ignore[index]
        huge = kind == "register" and max((n for n, _ in schema.registers.values()), default=0) > 1024
        if huge and oid == 0:  # all cells of every register: a million of them on splice.p4
            oid = draw(st.sampled_from(sorted(ids)))
        setattr(msg, f"{kind}_id", oid)
        if huge or draw(st.integers(0, 2)):
            draw(index_for(msg, size or 8, faults))
            if huge and not msg.HasField("index"):
                msg.index.index = 0
        if kind == "meter" and draw(st.integers(0, 7)) == 0:
            msg.counter_data.SetInParent()
    elif kind == "pre":
        which = draw(st.sampled_from(["multicast_group_entry", "clone_session_entry", "neither"]))
        pre = ent.packet_replication_engine_entry
        pre.SetInParent()
        if which != "neither":
            store = model.groups if which == "multicast_group_entry" else model.sessions
            key = draw(st.sampled_from([0, 0] + sorted(set(store) | {1, 2**32 - 1})))
            setattr(getattr(pre, which), "multicast_group_id" if which == "multicast_group_entry" else "session_id",
                    key)
    elif kind == "digest":
        ent.digest_entry.digest_id = draw(st.sampled_from(schema.digests + [0, 0, 12345]))
    elif kind == "value_set":
        ent.value_set_entry.value_set_id = draw(st.sampled_from(sorted(schema.value_sets) + [0, 12345]))
    else:
        what = draw(st.sampled_from(["nothing", "extern", "member", "group"]))
        if what == "extern":
            ent.extern_entry.SetInParent()
        elif what == "member":
            ent.action_profile_member.action_profile_id = draw(st.sampled_from([0, 12345]))
        elif what == "group":
            ent.action_profile_group.action_profile_id = draw(st.sampled_from([0, 12345]))
    return ent


def _no_default_resources(ents: list[p4runtime_pb2.Entity]) -> list[p4runtime_pb2.Entity]:
    """Default entries without their direct resources (the model does not follow those)."""
    out = []
    for e in ents:
        if e.HasField("table_entry") and e.table_entry.is_default_action:
            e = _copy(e)
            e.table_entry.ClearField("counter_data")
            e.table_entry.ClearField("meter_config")
        out.append(e)
    return out


class ReadModel:
    """What a read request must answer, from the model."""

    def __init__(self, model: Model) -> None:
        self.m = model
        self.s = model.schema

    def expect(self, ent: p4runtime_pb2.Entity) -> tuple[frozenset[int], list[p4runtime_pb2.Entity]]:
        kind = ent.WhichOneof("entity")
        if kind is None:  # spec: the entity oneof must be set
            return frozenset({INVALID}), []
        handler = getattr(self, f"_{kind}", None)
        if handler is None:  # externs: none here
            return frozenset({UNIMPLEMENTED, INVALID, NOT_FOUND}), []
        return handler(getattr(ent, kind))

    def _entries(self, table_id: int) -> list[p4runtime_pb2.TableEntry]:
        return [e for k, e in self.m.entries.items() if k[0] == table_id]

    def _table_entry(self, te: p4runtime_pb2.TableEntry) -> tuple[frozenset[int], list[p4runtime_pb2.Entity]]:
        counter, meter = te.HasField("counter_data"), te.HasField("meter_config")
        since = te.HasField("time_since_last_hit")

        def render(e: p4runtime_pb2.TableEntry) -> p4runtime_pb2.Entity:
            out = _copy(e)
            spec = self.s.tables[e.table_id]
            if not (counter and spec.counter):
                out.ClearField("counter_data")
            if not meter:
                out.ClearField("meter_config")
            if since and spec.idle and not e.is_default_action:
                out.time_since_last_hit.SetInParent()
            return p4runtime_pb2.Entity(table_entry=out)

        filtered = bool(len(te.match) or te.priority or te.HasField("action") or te.controller_metadata
                        or te.metadata)
        if te.table_id == 0:  # spec: every table, and no other filter can be used (ignored, or refused)
            if te.is_default_action:
                want = [render(d) for d in self.m.defaults.values()]
            else:
                want = [render(e) for e in self.m.entries.values()]
            return frozenset({OK, INVALID} if filtered or since else {OK}), want
        spec = self.s.tables.get(te.table_id)
        if spec is None:
            return frozenset({INVALID, NOT_FOUND}), []
        if since and not spec.idle:  # spec: Idle-timeout
            return frozenset({INVALID}), []
        if te.is_default_action:
            return frozenset({OK, INVALID} if filtered else {OK}), [render(self.m.defaults[spec.id])]
        allowed = {OK}
        cands = self._entries(spec.id)
        if len(te.match):
            got = match_key(spec.fields, te.match)
            if got is None:
                return frozenset({INVALID} | BYTES_BAD), []
            cands = [e for e in cands if match_key(spec.fields, e.match)[0] == got[0]]  # type: ignore[index]
        if te.priority:
            cands = [e for e in cands if e.priority == te.priority]
            if te.priority < 0 or not spec.needs_priority:
                allowed.add(INVALID)
        which = te.action.WhichOneof("type")
        if which == "action" and te.action.action.action_id:
            cands = [e for e in cands if e.action.action.action_id == te.action.action.action_id]
            if te.action.action.action_id not in spec.scopes:
                allowed.add(INVALID)
        elif te.HasField("action"):  # spec: only an action id filters; a member id is no filter here
            allowed.add(INVALID)
        if te.controller_metadata:
            cands = [e for e in cands if e.controller_metadata == te.controller_metadata]
        if te.metadata:
            cands = [e for e in cands if e.metadata == te.metadata]
        return frozenset(allowed), [render(e) for e in cands]

    def _direct(self, te: p4runtime_pb2.TableEntry, has: Callable[[TableSpec], bool],
                render: Callable[[p4runtime_pb2.TableEntry], p4runtime_pb2.Entity]
                ) -> tuple[frozenset[int], list[p4runtime_pb2.Entity]]:
        allowed = {OK, INVALID} if (te.priority or te.HasField("action") or te.controller_metadata
                                    or te.metadata) else {OK}
        if te.table_id == 0:
            return frozenset(allowed), [render(e) for e in self.m.entries.values() if has(self.s.tables[e.table_id])]
        spec = self.s.tables.get(te.table_id)
        if spec is None:
            return frozenset({INVALID, NOT_FOUND}), []
        if not has(spec):
            return frozenset({INVALID}), []
        if not len(te.match):
            return frozenset(allowed), [render(e) for e in self._entries(spec.id)]
        got = table_key(spec, te)
        if got is None:
            return frozenset({INVALID} | BYTES_BAD), []
        e = self.m.entries.get(got[0])
        return (frozenset({OK}), [render(e)]) if e is not None else (frozenset({NOT_FOUND}), [])

    def _direct_counter_entry(self, dce: p4runtime_pb2.DirectCounterEntry
                              ) -> tuple[frozenset[int], list[p4runtime_pb2.Entity]]:
        def render(e: p4runtime_pb2.TableEntry) -> p4runtime_pb2.Entity:
            out = p4runtime_pb2.Entity()
            out.direct_counter_entry.table_entry.CopyFrom(e)
            out.direct_counter_entry.table_entry.ClearField("counter_data")
            out.direct_counter_entry.table_entry.ClearField("meter_config")
            out.direct_counter_entry.data.CopyFrom(e.counter_data)
            out.direct_counter_entry.data.SetInParent()
            return out
        return self._direct(dce.table_entry, lambda t: t.counter, render)

    def _direct_meter_entry(self, dme: p4runtime_pb2.DirectMeterEntry
                            ) -> tuple[frozenset[int], list[p4runtime_pb2.Entity]]:
        if dme.HasField("counter_data"):
            return frozenset({UNIMPLEMENTED, INVALID}), []

        def render(e: p4runtime_pb2.TableEntry) -> p4runtime_pb2.Entity:
            out = p4runtime_pb2.Entity()
            out.direct_meter_entry.table_entry.CopyFrom(e)
            out.direct_meter_entry.table_entry.ClearField("counter_data")
            out.direct_meter_entry.table_entry.ClearField("meter_config")
            if e.HasField("meter_config"):
                out.direct_meter_entry.config.CopyFrom(e.meter_config)
            return out
        return self._direct(dme.table_entry, lambda t: t.meter is not None, render)

    def _cells(self, msg: Message, oid: int, sizes: dict[int, int], kind: str,
               cell: Callable[[int, int], p4runtime_pb2.Entity]) -> tuple[frozenset[int], list[p4runtime_pb2.Entity]]:
        if oid == 0:  # spec: every cell of every one
            return frozenset({OK}), [cell(i, n) for i, size in sorted(sizes.items()) for n in range(size)]
        if oid not in sizes:
            return frozenset({INVALID, NOT_FOUND}), []
        if msg.HasField("index"):
            n = msg.index.index
            if n < 0:
                return frozenset({INVALID}), []
            if n >= sizes[oid]:
                return frozenset({OUT_OF_RANGE}), []
            return frozenset({OK}), [cell(oid, n)]
        return frozenset({OK}), [cell(oid, n) for n in range(sizes[oid])]

    def _counter_entry(self, ce: p4runtime_pb2.CounterEntry) -> tuple[frozenset[int], list[p4runtime_pb2.Entity]]:
        def cell(cid: int, i: int) -> p4runtime_pb2.Entity:
            out = p4runtime_pb2.Entity()
            out.counter_entry.counter_id = cid
            out.counter_entry.index.index = i
            out.counter_entry.data.packet_count, out.counter_entry.data.byte_count = self.m.counters[cid][i]
            out.counter_entry.data.SetInParent()
            return out
        return self._cells(ce, ce.counter_id, self.s.counters, "counter", cell)

    def _meter_entry(self, me: p4runtime_pb2.MeterEntry) -> tuple[frozenset[int], list[p4runtime_pb2.Entity]]:
        if me.HasField("counter_data"):
            return frozenset({UNIMPLEMENTED, INVALID}), []

        def cell(mid: int, i: int) -> p4runtime_pb2.Entity:
            out = p4runtime_pb2.Entity()
            out.meter_entry.meter_id = mid
            out.meter_entry.index.index = i
            config = self.m.meters[mid][i]
            if config is not None:
                out.meter_entry.config.CopyFrom(config)
            return out
        return self._cells(me, me.meter_id, {i: n for i, (n, _) in self.s.meters.items()}, "meter", cell)

    def _register_entry(self, re: p4runtime_pb2.RegisterEntry) -> tuple[frozenset[int], list[p4runtime_pb2.Entity]]:
        def cell(rid: int, i: int) -> p4runtime_pb2.Entity:
            out = p4runtime_pb2.Entity()
            out.register_entry.register_id = rid
            out.register_entry.index.index = i
            fill, cells = self.m.registers[rid]
            out.register_entry.data.bitstring = canon(cells.get(i, fill))
            return out
        return self._cells(re, re.register_id, {i: n for i, (n, _) in self.s.registers.items()}, "register", cell)

    def _packet_replication_engine_entry(self, pre: p4runtime_pb2.PacketReplicationEngineEntry
                                         ) -> tuple[frozenset[int], list[p4runtime_pb2.Entity]]:
        which = pre.WhichOneof("type")
        if which is None:
            return frozenset({INVALID}), []
        store = self.m.groups if which == "multicast_group_entry" else self.m.sessions
        msg = getattr(pre, which)
        key = msg.multicast_group_id if which == "multicast_group_entry" else msg.session_id
        want = []
        for k, v in sorted(store.items()):
            if key in (0, k):
                out = p4runtime_pb2.Entity()
                getattr(out.packet_replication_engine_entry, which).CopyFrom(v)
                want.append(out)
        return frozenset({OK}), want

    def _digest_entry(self, de: p4runtime_pb2.DigestEntry) -> tuple[frozenset[int], list[p4runtime_pb2.Entity]]:
        if de.digest_id and de.digest_id not in self.s.digests:
            return frozenset({INVALID, NOT_FOUND}), []
        return frozenset({OK}), [p4runtime_pb2.Entity(digest_entry=p4runtime_pb2.DigestEntry(digest_id=i, config=c))
                                 for i, c in sorted(self.m.digests.items()) if de.digest_id in (0, i)]

    def _value_set_entry(self, vse: p4runtime_pb2.ValueSetEntry) -> tuple[frozenset[int], list[p4runtime_pb2.Entity]]:
        if vse.value_set_id and vse.value_set_id not in self.s.value_sets:
            return frozenset({INVALID, NOT_FOUND}), []
        want = []
        for vid, members in sorted(self.m.value_sets.items()):
            if vse.value_set_id in (0, vid):
                out = p4runtime_pb2.Entity()
                out.value_set_entry.value_set_id = vid
                for m in members:
                    out.value_set_entry.members.append(p4runtime_pb2.ValueSetMember.FromString(m))
                want.append(out)
        return frozenset({OK}), want

    def _action_profile_member(self, apm: p4runtime_pb2.ActionProfileMember
                               ) -> tuple[frozenset[int], list[p4runtime_pb2.Entity]]:
        return (frozenset({OK}) if apm.action_profile_id == 0 else frozenset({INVALID, NOT_FOUND})), []

    def _action_profile_group(self, apg: p4runtime_pb2.ActionProfileGroup
                              ) -> tuple[frozenset[int], list[p4runtime_pb2.Entity]]:
        return (frozenset({OK}) if apg.action_profile_id == 0 else frozenset({INVALID, NOT_FOUND})), []


def check_read(rig: Rig, model: Model, entities: list[p4runtime_pb2.Entity], device_id: int) -> None:
    req = p4runtime_pb2.ReadRequest(device_id=device_id)
    req.entities.extend(entities)
    got: list[p4runtime_pb2.Entity] = []
    err = None
    try:
        for resp in rig.primary.stub.Read(req, timeout=60):
            got.extend(resp.entities)
    except grpc.RpcError as e:
        err = e
    if device_id != DEVICE_ID:
        assert code_of(err) == NOT_FOUND, f"a Read of device {device_id} answered {code_of(err)}"
        return
    if err is None:
        codes = [OK] * len(entities)
    else:
        assert err.code() == grpc.StatusCode.UNKNOWN, f"a Read answered {err.code()}: {err.details()}"
        codes = [c for c, _ in batch_errors(err)]
        assert len(codes) == len(entities), f"{len(codes)} p4.v1.Error for {len(entities)} entities"
        assert any(c != OK for c in codes), "UNKNOWN with every entity OK"
    reads = ReadModel(model)
    want: list[p4runtime_pb2.Entity] = []
    for ent, code in zip(entities, codes, strict=True):
        allowed, entities_wanted = reads.expect(ent)
        assert code in allowed, (f"{rig.name}: {code_pb2.Code.Name(code)} for the read of {show(ent)}; allowed: "
                                 f"{[code_pb2.Code.Name(c) for c in sorted(allowed)]}")
        if code == OK:
            want += entities_wanted
    same_entities(_no_default_resources(got), _no_default_resources(want),
                  f"{rig.name}: read of {[show(e) for e in entities]}")


@FUZZ
@given(data=st.data())
def test_reads_with_wildcards_and_odd_filters_answer_what_is_there(rig: Rig, data: st.DataObject) -> None:
    model = Model(rig)
    try:
        fill = data.draw(st.lists(table_write(rig.schema, clean=True), min_size=1, max_size=10)
                         | st.lists(any_write(rig.schema), max_size=12), label="fill")
        check_write(rig, model, fill, "primary", None, data.draw)
        for _ in range(data.draw(st.integers(1, 4), label="reads")):
            entities = data.draw(st.lists(read_entity(rig.schema, model), max_size=5), label="read")
            device = data.draw(st.sampled_from([DEVICE_ID] * 9 + [0, 2]), label="device")
            check_read(rig, model, entities, device)
    except BaseException:
        with suppress(Exception):
            reset(rig, model, everything=True)
        raise
    reset(rig, model)
    assert_alive(rig)


# =================================================================================================
# pipeline configs
_INT_EDGES = {
    FieldDescriptor.TYPE_UINT32: [0, 1, 7, 2**31, 2**32 - 1], FieldDescriptor.TYPE_UINT64: [0, 1, 2**64 - 1],
    FieldDescriptor.TYPE_INT32: [0, 1, -1, 7, 2**31 - 1, -(2**31)], FieldDescriptor.TYPE_INT64: [0, 1, -1, 2**63 - 1],
    FieldDescriptor.TYPE_ENUM: [0, 1, 2, 3, 99, -1], FieldDescriptor.TYPE_BOOL: [False, True],
}


def _paths(msg: Message, out: list[tuple[Message, FieldDescriptor]]) -> None:
    for fd in msg.DESCRIPTOR.fields:
        if fd.message_type is not None:
            if fd.is_repeated:
                out.append((msg, fd))
                if fd.message_type.GetOptions().map_entry:
                    continue
                for sub in getattr(msg, fd.name):
                    _paths(sub, out)
            elif msg.HasField(fd.name):
                out.append((msg, fd))
                _paths(getattr(msg, fd.name), out)
        elif not fd.is_repeated:
            out.append((msg, fd))


@st.composite
def mangled_p4info(draw: st.DrawFn, p4info: p4info_pb2.P4Info, ids: list[int]) -> p4info_pb2.P4Info:
    """The P4Info with one to three things changed anywhere in it: a number set to an edge or
    to another object's id, a name emptied or duplicated, an element dropped or repeated, a
    sub-message cleared."""
    out = _copy(p4info)
    for _ in range(draw(st.integers(1, 3))):
        paths: list[tuple[Message, FieldDescriptor]] = []
        _paths(out, paths)
        msg, fd = draw(st.sampled_from(paths))
        if fd.message_type is not None and fd.is_repeated:
            items = getattr(msg, fd.name)
            if fd.message_type.GetOptions().map_entry or not len(items):
                msg.ClearField(fd.name)
            elif draw(st.booleans()):
                del items[draw(st.integers(0, len(items) - 1))]
            else:
                items.add().CopyFrom(items[draw(st.integers(0, len(items) - 1))])
        elif fd.message_type is not None:
            msg.ClearField(fd.name)
        elif fd.type in (FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_BYTES):
            value = draw(st.sampled_from(["", "NoAction", "packet_in", "packet_out", "x.y", "\u00e9"]))
            setattr(msg, fd.name, value.encode() if fd.type == FieldDescriptor.TYPE_BYTES else value)
        elif fd.type in _INT_EDGES:
            edges = _INT_EDGES[fd.type]
            if fd.type == FieldDescriptor.TYPE_UINT32 and fd.name.endswith("id") and draw(st.booleans()):
                edges = ids
            setattr(msg, fd.name, draw(st.sampled_from(edges)))
    return out


# JSON values of a device config: a node's type ("_":"Name"), numbers, strings, literals
_JSON_VALUE = re.compile(rb'"_":"[A-Za-z]*"|-?[0-9]+|"(?:[^"\\]|\\.)*"|true|false|null|\[\]|\{\}')
_JSON_SPANS: dict[bytes, list[tuple[int, int]]] = {}


@st.composite
def mangled_device_config(draw: st.DrawFn, config: bytes) -> bytes:
    """The device config as is, empty, cut, garbage, or (a JSON one) with one value replaced: a
    node of another type, a number where a name was, a name where a list was..."""
    how = draw(st.sampled_from(["same", "same", "same", "empty", "cut", "garbage", "json", "json"]))
    if how == "same":
        return config
    if how == "empty":
        return b""
    if how == "cut":
        return config[:draw(st.integers(0, len(config) - 1))]
    if how == "garbage" or not config.startswith(b"{"):
        return draw(st.binary(max_size=64))
    if config not in _JSON_SPANS:  # the values worth changing: not the source paths, few line numbers
        found = [m.span() for m in _JSON_VALUE.finditer(config)]
        _JSON_SPANS[config] = [(a, b) for i, (a, b) in enumerate(found)
                               if b"/" not in config[a:b] and (not config[a:a + 1].isdigit() or i % 16 == 0)]
    spans = _JSON_SPANS[config]
    start, end = spans[draw(st.integers(0, len(spans) - 1))]
    if config[start:end].startswith(b'"_":'):
        new = b'"_":"' + draw(st.sampled_from([b"Program", b"Table", b"Action", b"Nope", b"", b"Loc"])) + b'"'
    else:
        new = draw(st.sampled_from([b"null", b"0", b"-1", b"1" + b"0" * 30, b'""', b'"x"', b"[]", b"{}", b"true",
                                    b"1.5", b'{"_":"Program"}', b'{"_":"Nope"}', b"[1,[2]]"]))
    return config[:start] + new + config[end:]


Action = p4runtime_pb2.SetForwardingPipelineConfigRequest
ACTIONS = st.sampled_from([Action.VERIFY] * 6 + [Action.VERIFY_AND_COMMIT] * 2 + [
    Action.VERIFY_AND_SAVE, Action.COMMIT, Action.RECONCILE_AND_COMMIT, Action.UNSPECIFIED, 9, -1])


def _probe_entry(rig: Rig) -> p4runtime_pb2.Entity:
    """A valid entry of the rig's pipeline, to see whether a pipeline push kept the state."""
    spec = next(t for t in sorted(rig.schema.tables.values(), key=lambda t: t.id)
                if not t.const_table and t.actions(Scope.TABLE_AND_DEFAULT, Scope.TABLE_ONLY))
    ent = p4runtime_pb2.Entity()
    te = ent.table_entry
    te.table_id = spec.id
    for f in spec.fields:
        fm = te.match.add(field_id=f.id)
        if f.kind in (EXACT, OPTIONAL):
            getattr(fm, KIND_NAME[f.kind]).value = b"\x01"
        elif f.kind == LPM:
            fm.lpm.value, fm.lpm.prefix_len = canon(f.top), f.bitwidth
        elif f.kind == TERNARY:
            fm.ternary.value, fm.ternary.mask = b"\x01", canon(f.top)
        else:
            fm.range.low, fm.range.high = b"\x01", b"\x02"
    te.priority = 1 if spec.needs_priority else 0
    action = rig.schema.actions[spec.actions(Scope.TABLE_AND_DEFAULT, Scope.TABLE_ONLY)[0]]
    te.action.action.action_id = action.id
    for pid, _ in action.params:
        te.action.action.params.add(param_id=pid, value=b"\x01")
    te.controller_metadata = 4242
    return ent


def _pipeline(rig: Rig, response_type: int = 0) -> p4runtime_pb2.ForwardingPipelineConfig:
    stub = p4runtime_pb2_grpc.P4RuntimeStub(rig.channel)
    req = p4runtime_pb2.GetForwardingPipelineConfigRequest(device_id=DEVICE_ID, response_type=response_type)
    return stub.GetForwardingPipelineConfig(req, timeout=30).config


def restore_pipeline(rig: Rig) -> None:
    rig.primary.set_pipeline(p4info=rig.config.p4info, device_config=rig.config.p4_device_config, cookie=1)
    for tid, d in rig.defaults.items():  # the same program again: the same default entries
        (got,) = rig.primary.read(p4runtime_pb2.Entity(table_entry=p4runtime_pb2.TableEntry(
            table_id=tid, is_default_action=True)))
        assert normalized(got.table_entry) == normalized(d)


@FUZZ
@given(data=st.data())
def test_pipeline_pushes_with_mangled_p4info_or_device_config(rig: Rig, data: st.DataObject) -> None:
    probe = _probe_entry(rig)
    rig.primary.write(U(type=INSERT, entity=probe))
    changed = saved = False  # saved: a VERIFY_AND_SAVE of this example waits for its COMMIT
    try:
        for _ in range(data.draw(st.integers(1, 3), label="pushes")):
            action = data.draw(ACTIONS, label="action")
            sender = data.draw(SENDERS, label="sender")
            req, rpc_codes = write_request(sender, [], data.draw)
            push = Action(device_id=req.device_id, role=req.role, action=action)
            if req.HasField("election_id"):
                push.election_id.CopyFrom(req.election_id)
            odds = data.draw(st.integers(0, 9), label="with config")
            with_config = odds < 3 if action == Action.COMMIT else odds > 0
            if with_config:
                push.config.p4info.CopyFrom(data.draw(st.just(rig.config.p4info) | mangled_p4info(
                    rig.config.p4info, sorted(rig.schema.all_ids)), label="p4info"))
                push.config.p4_device_config = data.draw(mangled_device_config(rig.config.p4_device_config),
                                                         label="device config")
                push.config.cookie.cookie = 2
            err = send(rig, "SetForwardingPipelineConfig", push, data.draw(st.none() | st.integers(0, 2**32 - 1)))
            code = code_of(err)
            if sender == "atomicity":
                rpc_codes = None  # no atomicity in a pipeline push: from the primary
            if rpc_codes is not None:
                allowed = rpc_codes
            elif action == Action.COMMIT:
                allowed = frozenset({INVALID}) if with_config else frozenset({OK} if saved else {NOT_FOUND})
            elif action in (Action.VERIFY, Action.VERIFY_AND_SAVE, Action.VERIFY_AND_COMMIT):
                allowed = frozenset({OK, INVALID}) if with_config else frozenset({INVALID})
            elif action == Action.RECONCILE_AND_COMMIT:
                allowed = frozenset({OK, INVALID, UNIMPLEMENTED}) if with_config else frozenset({INVALID, UNIMPLEMENTED})
            else:
                allowed = frozenset({INVALID})
            assert code in allowed, (f"{rig.name}: {action=} from {sender} answered {code_pb2.Code.Name(code)} "
                                     f"({err.details() if err else ''}); allowed: {sorted(allowed)}")
            if code == OK and action != Action.VERIFY:
                changed = True
                saved = action == Action.VERIFY_AND_SAVE  # a commit of any kind takes what was saved
            if not changed:  # refused, or only verified: nothing changed
                assert _pipeline(rig, 1).cookie.cookie == 1
                assert len(rig.primary.read(probe)) == 1, "a pipeline push that changed nothing lost an entry"
            elif code == OK:  # whatever it took, the server reads and writes it without failing
                check_wildcard_reads(rig)
                if with_config:
                    check_writes_answered(rig, push.config.p4info, data)
    except BaseException:
        with suppress(Exception):
            restore_pipeline(rig)
        raise
    if changed:
        restore_pipeline(rig)
    else:
        rig.primary.write(U(type=DELETE, entity=probe))
    assert rig.primary.read(p4runtime_pb2.Entity(table_entry=p4runtime_pb2.TableEntry())) == []
    assert _pipeline(rig, 1).cookie.cookie == 1
    assert_alive(rig)


def check_writes_answered(rig: Rig, p4info: p4info_pb2.P4Info, data: st.DataObject) -> None:
    """A batch drawn from a P4Info the server took, whatever it holds: every update answered
    with a code of its own, none INTERNAL."""
    schema = Schema.of(p4info)
    widths = [f.bitwidth for t in schema.tables.values() for f in t.fields]
    widths += [w for a in schema.actions.values() for _, w in a.params] + [w for _, w in schema.registers.values()]
    widths += [f.bitwidth for fields, _ in schema.value_sets.values() for f in fields]
    if any(not 0 < w <= 256 for w in widths):
        return  # beyond what the generators draw values for
    batch = data.draw(st.lists(any_write(schema), max_size=6), label="writes on it")
    req, _ = write_request("primary", [p.update for p in batch], data.draw)
    err = send(rig, "Write", req, None)
    if err is not None:
        assert err.code() == grpc.StatusCode.UNKNOWN, f"a Write answered {err.code()}: {err.details()}"
        codes = [c for c, _ in batch_errors(err)]
        assert len(codes) == len(batch) and INTERNAL not in codes, codes


def check_wildcard_reads(rig: Rig) -> None:
    """Every kind of wildcard read, on whatever pipeline the server runs: answered, never INTERNAL."""
    ents = []
    for fd in p4runtime_pb2.Entity.DESCRIPTOR.fields:
        e = p4runtime_pb2.Entity()
        getattr(e, fd.name).SetInParent()
        ents.append(e)
    pre = p4runtime_pb2.Entity()
    pre.packet_replication_engine_entry.clone_session_entry.SetInParent()
    ents[[f.name for f in p4runtime_pb2.Entity.DESCRIPTOR.fields].index("packet_replication_engine_entry")] = pre
    ents = [e for e in ents if e.WhichOneof("entity") != "register_entry"]  # a million cells on splice.p4
    req = p4runtime_pb2.ReadRequest(device_id=DEVICE_ID)
    req.entities.extend(ents)
    try:
        for _ in rig.primary.stub.Read(req, timeout=60):
            pass
    except grpc.RpcError as err:
        assert err.code() == grpc.StatusCode.UNKNOWN, f"a wildcard read answered {err.code()}: {err.details()}"
        codes = [c for c, _ in batch_errors(err)]
        assert INTERNAL not in codes and len(codes) == len(ents), codes


# =================================================================================================
# arbitration
class Peer:
    """A controller's stream, as the test sees it: the last arbitration status it was told, the
    stream errors it got, how the stream ended."""

    def __init__(self, client: Client, device_id: int, role: str, election_id: int | None) -> None:
        self.client = client
        self.device_id, self.role, self.election_id = device_id, role, election_id
        self.status: int | None = None
        self.errors: list[p4runtime_pb2.StreamError] = []
        self.ended = False
        self.closed = False

    def pump(self) -> None:
        with suppress(queue.Empty):
            while True:
                msg = self.client.inbox.get_nowait()
                if msg is None:
                    self.ended = True
                elif msg.WhichOneof("update") == "arbitration":
                    self.status = msg.arbitration.status.code
                elif msg.WhichOneof("update") == "error":
                    self.errors.append(msg.error)

    def answered(self) -> bool:
        self.pump()
        return self.status is not None or self.ended

    def refused(self) -> bool:
        return self.end_code() is not None

    def told_more_than(self, errors: int) -> bool:
        self.pump()
        return len(self.errors) > errors

    def end_code(self) -> int | None:
        self.pump()
        if not self.ended:
            return None
        return OK if self.client.stream_error is None else self.client.stream_error.code().value[0]


def _eid_tuple(eid: int | None) -> tuple[int, int] | None:
    return None if eid is None else (eid >> 64, eid & (2**64 - 1))


@pytest.fixture(scope="module")
def arb_server() -> Iterator[tuple[P4RuntimeServer, str]]:
    """A server of its own: arbitration that goes wrong here leaves the rigs' controllers alone."""
    server = P4RuntimeServer(NullDevice(), address="127.0.0.1:0", device_id=DEVICE_ID).start()
    addr = f"127.0.0.1:{server.port}"
    setter = Client(addr, (2**64 - 1, 2**64 - 1))
    assert setter.status() == OK
    setter.set_pipeline()
    setter.close()
    yield server, addr
    server.stop(grace=0.2)


class Arbitration:
    """The model of BMv2's (and p4sim's default) arbitration: per (device, role), the live
    controller with the highest election id is the primary; a controller without one never is."""

    def __init__(self, server: P4RuntimeServer, addr: str, base: int) -> None:
        self.server, self.addr, self.base = server, addr, base
        self.peers: list[Peer] = []
        self.next_id = base

    def live(self, role: str | None = None) -> list[Peer]:
        return [p for p in self.peers if not p.closed and not p.ended and p.status is not None
                and (role is None or p.role == role)]

    def primary(self, role: str) -> Peer | None:
        ranked = [p for p in self.live(role) if p.election_id is not None]
        return max(ranked, key=lambda p: p.election_id) if ranked else None  # type: ignore[arg-type,return-value]

    def expected_status(self, peer: Peer) -> int:
        primary = self.primary(peer.role)
        return OK if primary is peer else EXISTS if primary is not None else NOT_FOUND

    def settle(self, what: str) -> None:
        """Wait until every live controller was told its status, then check it is the model's."""
        deadline = time.monotonic() + 10
        while True:
            for p in self.peers:
                p.pump()
            wrong = [(p.role, p.election_id, p.status, self.expected_status(p)) for p in self.live()
                     if p.status != self.expected_status(p)]
            if not wrong:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"after {what}: (role, election id, told, expected) {wrong}")
            time.sleep(0.005)

    def fresh_id(self) -> int:
        self.next_id += 1
        return self.next_id


ARBITRATION_STEPS = st.lists(st.sampled_from(["open", "open", "open", "rearbitrate", "close", "write", "write",
                                              "forged", "packet_out"]), min_size=1, max_size=8)


def _election(draw: st.DrawFn, model: Arbitration, role: str) -> int | None:
    pick = draw(st.sampled_from(["fresh"] * 5 + ["none", "zero", "max", "duplicate"]))
    if pick == "none":
        return None
    if pick == "zero":
        return 0
    if pick == "max":
        return 2**128 - 1
    if pick == "duplicate" and [p for p in model.live(role) if p.election_id is not None]:
        return draw(st.sampled_from([p.election_id for p in model.live(role) if p.election_id is not None]))
    return model.fresh_id()


def _harmless_write(peer: Peer) -> int:
    ent = p4runtime_pb2.Entity()
    ent.counter_entry.counter_id = 302000001
    ent.counter_entry.index.index = 0
    try:
        peer.client.write(U(type=MODIFY, entity=ent))
    except grpc.RpcError as e:
        return e.code().value[0]
    return OK


ARB_EXAMPLES = [0]  # examples so far: each one's election ids start past the last one's


@FUZZ
@given(data=st.data())
def test_arbitration_with_odd_ids_devices_and_roles_keeps_one_primary(
        arb_server: tuple[P4RuntimeServer, str], data: st.DataObject) -> None:
    server, addr = arb_server
    ARB_EXAMPLES[0] += 1
    model = Arbitration(server, addr, ARB_EXAMPLES[0] * 1000)
    try:
        for op in data.draw(ARBITRATION_STEPS, label="steps"):
            live = model.live()
            if op == "open" or not live:
                device = data.draw(st.sampled_from([DEVICE_ID] * 8 + [0, 2]), label="device")
                role = data.draw(st.sampled_from(["", "", "a", "b"]), label="role")
                eid = _election(data.draw, model, role)
                duplicate = eid is not None and any(p.election_id == eid for p in model.live(role))
                client = Client(addr, _eid_tuple(eid), role=role, device_id=device)
                peer = Peer(client, device, role, eid)
                model.peers.append(peer)
                if device != DEVICE_ID or duplicate:
                    wait_for(peer.refused, what="the stream refused")
                    want = NOT_FOUND if device != DEVICE_ID else INVALID
                    assert peer.end_code() == want, f"arbitration {device=} {role=} {eid=}: {peer.end_code()}"
                    continue
                wait_for(peer.answered, what="an answer")
                assert not peer.ended, f"arbitration {device=} {role=} {eid=} ended the stream: {peer.end_code()}"
                model.settle(f"{role=} {eid=} arrived")
            elif op == "rearbitrate":
                peer = data.draw(st.sampled_from(live), label="who")
                change = data.draw(st.sampled_from(["id", "id", "device", "role"]), label="change")
                if change == "id":
                    eid = _election(data.draw, model, peer.role)
                    duplicate = eid is not None and any(p.election_id == eid for p in model.live(peer.role)
                                                        if p is not peer)
                    peer.client.arbitrate(_eid_tuple(eid))
                    if duplicate:
                        wait_for(peer.refused, what="the stream refused")
                        assert peer.end_code() == INVALID
                        # the server kept the id it had; so does the client's own record (its
                        # Writes carry it)
                        peer.client.election_id = _eid_tuple(peer.election_id)
                    else:
                        peer.election_id = eid
                        peer.status = None  # the server answers the sender, whatever changed
                        wait_for(peer.answered, what="an answer")
                else:
                    if change == "device":
                        peer.client.device_id = DEVICE_ID + 1
                    else:
                        peer.client.role = peer.role + "x"
                    peer.client.arbitrate(_eid_tuple(peer.election_id))
                    wait_for(peer.refused, what="the stream refused")
                    assert peer.end_code() == PRECONDITION, f"a stream changing its {change}: {peer.end_code()}"
                    peer.client.device_id, peer.client.role = peer.device_id, peer.role
                model.settle(f"{change} of {peer.election_id} changed")
            elif op == "close":
                peer = data.draw(st.sampled_from(live), label="who")
                peer.client.close()
                peer.closed = True
                model.settle(f"{peer.role=} {peer.election_id} left")
            elif op == "write":
                peer = data.draw(st.sampled_from([p for p in model.peers if not p.closed]), label="who")
                code = _harmless_write(peer)
                primary = model.primary(peer.role)  # spec: a Write is the primary's if it says the primary's ids
                is_primary = primary is not None and primary.election_id == peer.election_id
                if peer.device_id != DEVICE_ID:
                    allowed = {NOT_FOUND}
                else:
                    allowed = {OK} if is_primary else ({DENIED} if peer.role == "" else {DENIED, NOT_FOUND})
                assert code in allowed, (f"a Write from {peer.role=} {peer.election_id=} (primary: {is_primary}) "
                                         f"answered {code}")
            elif op == "forged":
                role = data.draw(st.sampled_from(["", "a", "never seen"]), label="role")
                client = Client(addr, _eid_tuple(model.fresh_id()), role=role, arbitrate=False)
                try:
                    code = _harmless_write(Peer(client, DEVICE_ID, role, None))
                finally:
                    client.close()
                assert code in ({DENIED} if role == "" else {DENIED, NOT_FOUND}), f"a forged Write answered {code}"
            else:  # a packet-out: only the primary's goes anywhere
                peer = data.draw(st.sampled_from(live), label="who")
                req = p4runtime_pb2.StreamMessageRequest()
                req.packet.payload = b"\x00" * 14
                req.packet.metadata.add(metadata_id=1, value=b"\x01")
                req.packet.metadata.add(metadata_id=2, value=b"\x00")
                before = len(peer.errors)
                peer.client.send(req)
                if model.primary(peer.role) is not peer:
                    wait_for(lambda: peer.told_more_than(before), what="the packet-out refused")  # noqa: B023
                    assert peer.errors[-1].canonical_code == DENIED
    finally:
        for p in model.peers:
            if not p.closed:
                p.client.close()
        wait_for(lambda: not server._sessions, what="every stream of the example gone")
    with grpc.insecure_channel(addr) as channel:
        stub = p4runtime_pb2_grpc.P4RuntimeStub(channel)
        assert stub.Capabilities(p4runtime_pb2.CapabilitiesRequest(), timeout=10).p4runtime_api_version
        read = p4runtime_pb2.ReadRequest(device_id=DEVICE_ID)
        read.entities.add().counter_entry.counter_id = 302000001
        assert sum(len(r.entities) for r in stub.Read(read, timeout=10)) == 8


# =================================================================================================
# bytes that may be no request at all
REQUEST_TYPES: dict[str, type] = {
    "Capabilities": p4runtime_pb2.CapabilitiesRequest,
    "GetForwardingPipelineConfig": p4runtime_pb2.GetForwardingPipelineConfigRequest,
    "SetForwardingPipelineConfig": p4runtime_pb2.SetForwardingPipelineConfigRequest,
    "Write": p4runtime_pb2.WriteRequest,
    "Read": p4runtime_pb2.ReadRequest,
    "StreamChannel": p4runtime_pb2.StreamMessageRequest,
}
# what a request that is one (whatever it says) may answer, per RPC
DECODED_CODES = {
    "Capabilities": {OK},
    "GetForwardingPipelineConfig": {OK, NOT_FOUND, INVALID},
    "SetForwardingPipelineConfig": {OK, INVALID, NOT_FOUND, DENIED, UNIMPLEMENTED, PRECONDITION},
    "Write": {OK, UNKNOWN, INVALID, NOT_FOUND, DENIED, PRECONDITION, UNIMPLEMENTED},
    "Read": {OK, UNKNOWN, INVALID, NOT_FOUND, PRECONDITION},
    "StreamChannel": {OK, INVALID, NOT_FOUND, PRECONDITION},
}


def _valid_request(rig: Rig, method: str) -> Message:
    """A request of the RPC that is right but for its election id: the backup's."""
    if method == "Capabilities":
        return p4runtime_pb2.CapabilitiesRequest()
    if method == "GetForwardingPipelineConfig":
        return p4runtime_pb2.GetForwardingPipelineConfigRequest(device_id=DEVICE_ID, response_type=1)
    if method == "SetForwardingPipelineConfig":
        req = p4runtime_pb2.SetForwardingPipelineConfigRequest(device_id=DEVICE_ID, action=Action.VERIFY)
        req.election_id.low = BACKUP[1]
        req.config.p4info.CopyFrom(rig.config.p4info)
        return req
    if method == "Write":
        req = p4runtime_pb2.WriteRequest(device_id=DEVICE_ID)
        req.election_id.low = BACKUP[1]
        req.updates.append(U(type=INSERT, entity=_probe_entry(rig)))
        return req
    if method == "Read":
        req = p4runtime_pb2.ReadRequest(device_id=DEVICE_ID)
        req.entities.add().table_entry.table_id = min(rig.schema.tables)
        return req
    req = p4runtime_pb2.StreamMessageRequest()
    req.arbitration.device_id = DEVICE_ID
    req.arbitration.election_id.low = 3
    return req


@st.composite
def hostile_bytes(draw: st.DrawFn, valid: bytes, desc: Descriptor) -> bytes:
    """Bytes: random, a valid request with a few bytes changed, cut, or added to, or encoded
    with a tag too long somewhere."""
    how = draw(st.integers(0, 7))
    if not valid or how < 2:
        return draw(st.binary(max_size=300))
    if how == 2:
        return overlong_tag(valid, desc, [draw(st.integers(0, 40))])
    out = bytearray(valid)
    for _ in range(draw(st.integers(0, 4))):
        out[draw(st.integers(0, len(out) - 1))] = draw(st.integers(0, 255))
    cut = draw(st.integers(0, len(out)))
    tail = draw(st.binary(max_size=16)) if draw(st.booleans()) else bytes(out[cut:])
    return bytes(out[:cut]) + tail


def _decodes(method: str, raw: bytes) -> Message | None:
    try:
        return REQUEST_TYPES[method].FromString(raw)
    except Exception:  # noqa: BLE001 - whatever protobuf refuses
        return None


def _stream_garbage(rig: Rig, messages: list[bytes]) -> tuple[int, list[bytes]]:
    call = rig.channel.stream_stream("/p4.v1.P4Runtime/StreamChannel", request_serializer=None,
                                     response_deserializer=None)
    responses: list[bytes] = []
    try:
        for resp in call(iter(messages), timeout=10):
            responses.append(resp)
    except grpc.RpcError as e:
        return e.code().value[0], responses
    return OK, responses


def _still_primary(rig: Rig) -> None:
    """Wait until the rig's primary writes again (a stream that arbitrated above it is gone)."""
    def primary() -> bool:
        try:
            rig.primary.write()  # an empty batch: OK from the primary, PERMISSION_DENIED otherwise
        except grpc.RpcError:
            return False
        return True
    wait_for(primary, timeout=10, what="the rig's primary back")


@FUZZ
@given(data=st.data())
def test_bytes_that_are_no_request_answer_internal_and_others_do_not(rig: Rig, data: st.DataObject) -> None:
    method = data.draw(st.sampled_from(sorted(REQUEST_TYPES)), label="method")
    valid = _valid_request(rig, method).SerializeToString()
    try:
        if method == "StreamChannel":
            messages = data.draw(st.lists(hostile_bytes(valid, REQUEST_TYPES[method].DESCRIPTOR), min_size=1,
                                          max_size=3), label="messages")
            code, responses = _stream_garbage(rig, messages)
            decoded = [_decodes(method, m) for m in messages]
            first_bad = next((i for i, d in enumerate(decoded) if d is None), None)
            if first_bad is None:
                allowed = DECODED_CODES[method]
            elif any(d.WhichOneof("update") == "arbitration" for d in decoded[:first_bad]):  # type: ignore[union-attr]
                allowed = {INTERNAL} | DECODED_CODES[method] - {OK}  # an arbitration may end it first
            else:
                allowed = {INTERNAL}
            assert code in allowed, f"a stream of {[m.hex() for m in messages]} ended with {code}"
            for r in responses:
                p4runtime_pb2.StreamMessageResponse.FromString(r)
            return
        raw = data.draw(hostile_bytes(valid, REQUEST_TYPES[method].DESCRIPTOR), label="request")
        err = None
        try:
            if method == "Read":
                for r in rig.raw(method, streaming=True)(raw, timeout=60):
                    p4runtime_pb2.ReadResponse.FromString(r)
            else:
                rig.raw(method)(raw, timeout=60)
        except grpc.RpcError as e:
            err = e
        decoded = _decodes(method, raw)
        code = code_of(err)
        if decoded is None:
            assert code == INTERNAL, f"{method} of undecodable {raw.hex()} answered {code}"
            return
        assert code in DECODED_CODES[method], (f"{method} of {show(decoded)} answered {code} "
                                               f"({err.details() if err else ''})")
        if code == UNKNOWN:  # a batch: one error per item, none INTERNAL
            items = decoded.updates if method == "Write" else decoded.entities  # type: ignore[attr-defined]
            codes = [c for c, _ in batch_errors(err)]  # type: ignore[arg-type]
            assert len(codes) == len(items) and INTERNAL not in codes, codes
    finally:
        _still_primary(rig)
        if _pipeline(rig, 1).cookie.cookie != 1:
            restore_pipeline(rig)
        with suppress(Exception):
            reset(rig, Model(rig), everything=method == "Write")
        assert_alive(rig)
