"""A compiled program bound to a switch's state: generated code plus table, extern and
value-set bindings keyed by the P4Info ids the control plane uses."""

from __future__ import annotations

import logging
import time
from typing import Any

from p4.config.v1 import p4info_pb2

from p4sim.compiler.model import ProgramModel
from p4sim.runtime.profiles import MEMBER
from p4sim.runtime.state import SwitchState
from p4sim.runtime.tables import ConstEntry, Table

from . import hashes
from .meters import MeterState, MeterUnit
from .rtlib import CORE_ERRORS

log = logging.getLogger(__name__)


class TableBinding:
    """What generated table code calls: lookup -> (hit, action function, params)."""

    __slots__ = ("table", "fns", "tid", "keep_entry", "name")

    def __init__(self, name: str, table: Any, fns: dict[int, Any], tid: int, keep_entry: bool) -> None:
        self.name = name
        self.table = table
        self.fns = fns
        self.tid = tid
        self.keep_entry = keep_entry

    def lookup(self, key: tuple, K: Any):
        entry = self.table.lookup(key, K.now_ns, K.length)
        if self.keep_entry:
            K.entries[self.tid] = entry
        aid, params = entry.action
        fn = self.fns.get(aid)
        if fn is None:
            # no default set (action id 0): behave as NoAction
            return entry.hit, _no_action, ()
        return entry.hit, fn, params


def _no_action(K: Any, L: Any) -> None:
    return None


class IndirectTableBinding:
    """Generated code's view of a table with an action profile or selector.

    A hit gives a member (run its action) or a group: hash the selector fields with the
    selector's algorithm over BMv2's packed buffer and run the action of member number
    ``hash % size`` in handle order (p4sim.runtime.profiles explains the order). A hit on an
    empty group runs nothing but still counts as a hit, and a miss runs nothing: BMv2 has no
    default action on indirect tables (p4c leaves it out of the JSON).
    """

    __slots__ = ("table", "fns", "tid", "keep_entry", "name", "algorithm", "widths", "miss_fn")

    def __init__(self, name: str, table: Any, fns: dict[int, Any], tid: int, keep_entry: bool,
                 algorithm: str, widths: tuple[int, ...], miss_fn: Any) -> None:
        self.name = name
        self.table = table
        self.fns = fns
        self.tid = tid
        self.keep_entry = keep_entry
        self.algorithm = algorithm
        self.widths = widths
        self.miss_fn = miss_fn

    def lookup(self, key: tuple, K: Any, selector: tuple):
        entry = self.table.lookup(key, K.now_ns, K.length)
        if self.keep_entry:
            K.entries[self.tid] = entry
        if not entry.hit:
            return False, self.miss_fn, ()
        kind, ref = entry.action
        if kind == MEMBER:
            aid, params = ref.action
        else:
            selection = ref.selection
            if not selection:
                log.debug("lookup in table %s yielded empty group %d", self.name, ref.id)
                return True, _no_action, ()
            h = hashes.compute(self.algorithm, hashes.pack_fields(zip(selector, self.widths, strict=True)))
            aid, params = selection[h % len(selection)].action
        fn = self.fns.get(aid)
        if fn is None:
            return True, _no_action, ()
        return True, fn, params


class RegisterBinding:
    __slots__ = ("values", "size", "mask")

    def __init__(self, state: SwitchState, rid: int) -> None:
        reg = state.registers[rid]
        self.values = reg.values
        self.size = reg.size
        self.mask = reg.mask

    def read(self, index: int) -> int:
        # BMv2 rejects an out-of-range index at run time; P4 leaves it undefined: read 0
        return self.values[index] if 0 <= index < self.size else 0

    def write(self, index: int, value: int) -> None:
        if 0 <= index < self.size:
            self.values[index] = value & self.mask


class CounterBinding:
    __slots__ = ("state", "cid")

    def __init__(self, state: SwitchState, cid: int) -> None:
        self.state = state
        self.cid = cid

    def count(self, index: int, K: Any) -> None:
        counter = self.state.counters[self.cid]
        if 0 <= index < counter.size:
            counter.count(index, K.length)


class MeterBinding:
    __slots__ = ("state", "mid", "unit")

    def __init__(self, state: SwitchState, mid: int, unit: MeterUnit) -> None:
        self.state = state
        self.mid = mid
        self.unit = unit

    def execute(self, index: int, K: Any) -> int:
        cfg = self.state.meter_config(self.mid, index)
        if cfg is None:
            return 0
        ms = self.state.meter_state(self.mid, index)
        if ms is None or getattr(ms, "_cfg", None) is not cfg:
            ms = MeterState(self.unit)
            ms.configure((cfg.cir, cfg.cburst, cfg.pir, cfg.pburst))
            ms._cfg = cfg  # type: ignore[attr-defined]
            self.state.set_meter_state(self.mid, index, ms)
        return ms.execute(K.now_ns, K.length if self.unit == MeterUnit.BYTES else 1)


class DirectMeterBinding:
    __slots__ = ("tid", "unit")

    def __init__(self, tid: int, unit: MeterUnit) -> None:
        self.tid = tid
        self.unit = unit

    def read(self, K: Any) -> int:
        entry = K.entries.get(self.tid)
        if entry is None or not entry.hit or entry.meter_config is None:
            return 0
        cfg = entry.meter_config
        ms = entry.meter_state
        if ms is None or getattr(ms, "_cfg", None) is not cfg:
            ms = MeterState(self.unit)
            ms.configure((cfg.cir, cfg.cburst, cfg.pir, cfg.pburst))
            ms._cfg = cfg  # type: ignore[attr-defined]
            entry.meter_state = ms
        return ms.execute(K.now_ns, K.length if self.unit == MeterUnit.BYTES else 1)


class ValueSetBinding:
    __slots__ = ("state", "vid", "widths")

    def __init__(self, state: SwitchState, vid: int, widths: list[int]) -> None:
        self.state = state
        self.vid = vid
        self.widths = widths

    def match(self, key: Any) -> bool:
        if isinstance(key, tuple):
            v = 0
            for k, w in zip(key, self.widths, strict=True):
                v = (v << w) | (k & ((1 << w) - 1))
            key = v
        for value, mask in self.state.value_set_members(self.vid):
            if key & mask == value & mask:
                return True
        return False


class _NullDirect:
    """Placeholder for an unused direct counter (BMv2 counts them on table hits)."""

    def count(self, *args: Any) -> None:
        return None


def _ids(p4info: p4info_pb2.P4Info) -> dict[tuple[str, str], int]:
    out: dict[tuple[str, str], int] = {}
    for kind in ("tables", "actions", "counters", "direct_counters", "meters", "direct_meters",
                 "registers", "digests", "value_sets", "action_profiles"):
        for ent in getattr(p4info, kind):
            out[(kind, ent.preamble.name)] = ent.preamble.id
    return out


# Ids for what the data plane runs but P4Info does not list (@hidden tables and actions),
# above any P4Info id: the control plane never sees them.
_PRIVATE_TABLE_ID = 0x7E000000
_PRIVATE_ACTION_ID = 0x7F000000

_MATCH_KINDS = {
    "exact": p4info_pb2.MatchField.EXACT,
    "lpm": p4info_pb2.MatchField.LPM,
    "ternary": p4info_pb2.MatchField.TERNARY,
    "range": p4info_pb2.MatchField.RANGE,
    "optional": p4info_pb2.MatchField.OPTIONAL,
}


def _private_tables(model: ProgramModel, ids: dict[tuple[str, str], int]) -> dict[str, p4info_pb2.Table]:
    """P4Info-shaped descriptions of the tables the program applies that P4Info leaves out
    (``@hidden``: p4c writes them to BMv2's JSON, which runs them, but not to P4Info); their
    actions missing from P4Info get private ids in ``ids``. Only their default action and
    const entries ever fill them."""
    out: dict[str, p4info_pb2.Table] = {}
    for t in model.tables:
        if not t.applied or ("tables", t.name) in ids:
            continue
        info = p4info_pb2.Table()
        info.preamble.id = _PRIVATE_TABLE_ID + len(out)
        info.preamble.name = t.name
        for i, k in enumerate(t.keys, 1):
            info.match_fields.add(id=i, name=k.name, bitwidth=k.width,
                                  match_type=_MATCH_KINDS.get(k.match_kind, p4info_pb2.MatchField.EXACT))
        acts = [ar.action for ar in t.actions] + ([t.default_action] if t.default_action is not None else [])
        for a in acts:
            if ("actions", a.name) not in ids:
                ids[("actions", a.name)] = _PRIVATE_ACTION_ID + sum(k == "actions" for k, _ in ids)
        for aid in dict.fromkeys(ids[("actions", a.name)] for a in acts):
            info.action_refs.add(id=aid)
        info.size = t.size or 1024
        info.is_const_table = bool(t.const_entries) and t.entries_const
        ids[("tables", t.name)] = info.preamble.id
        out[t.name] = info
    return out


class LoadedProgram:
    """Executes the generated module of a ProgramModel against one SwitchState."""

    def __init__(self, model: ProgramModel, p4info: p4info_pb2.P4Info, state: SwitchState) -> None:
        self.model = model
        self.state = state
        ids = _ids(p4info)
        private = _private_tables(model, ids)
        self.ns: dict[str, Any] = {"__name__": "p4sim_program"}
        code = compile(model.source, "<p4sim program>", "exec")
        exec(code, self.ns)  # noqa: S102 - our own generated code
        action_fn = {}
        for a in model.actions:
            aid = ids.get(("actions", a.name))
            if aid is not None:
                action_fn[aid] = self.ns[a.pyname]
        self.action_fn = action_fn
        for t in model.tables:
            tid = ids.get(("tables", t.name))
            if tid is None:
                continue  # never applied: p4c leaves it out of P4Info and no code calls it
            hidden = private.get(t.name)
            table = state.table(tid) if hidden is None else Table(hidden, state.lock)
            fns = {ids[("actions", ar.action.name)]: self.ns[ar.action.pyname] for ar in t.actions}
            if t.implementation is not None:
                profile = next(x for x in model.externs if x.name == t.implementation
                               and x.kind in ("action_profile", "action_selector"))
                noaction = model.action("NoAction")
                miss = _no_action
                if t.default_action is not None and t.default_action is noaction:
                    miss = self.ns[noaction.pyname]  # same no-op, but `switch` sees NoAction
                self.ns["T_" + t.pyname[4:]] = IndirectTableBinding(
                    t.name, table, fns, tid, t.direct_meter is not None,
                    str(profile.args.get("algorithm", "identity")), tuple(k.width for k in t.selector_keys), miss)
            else:
                self.ns["T_" + t.pyname[4:]] = TableBinding(t.name, table, fns, tid, t.direct_meter is not None)
            if t.default_action is not None:
                daid = ids.get(("actions", t.default_action.name))
                if daid is not None:
                    fns.setdefault(daid, self.ns[t.default_action.pyname])
                    if hidden is None:
                        state.set_initial_default(tid, daid, tuple(t.default_args), t.default_const)
                    else:
                        table.initial_default = (daid, tuple(t.default_args))
                        table.default_is_const = t.default_const
                        table.reset_default()
            if t.const_entries:
                entries = [self._const_entry(t, ce, ids) for ce in t.const_entries]
                if hidden is None:
                    state.add_const_entries(tid, entries)
                else:
                    for ce in entries:
                        table.insert(tuple(ce.key), ce.priority, ce.action_id, tuple(ce.params),
                                     time.monotonic_ns()).is_const = ce.is_const
        for x in model.externs:
            if x.kind == "register":
                self.ns[x.pyname] = RegisterBinding(state, ids[("registers", x.name)])
            elif x.kind == "counter":
                self.ns[x.pyname] = CounterBinding(state, ids[("counters", x.name)])
            elif x.kind == "meter":
                unit = MeterUnit.BYTES if x.args.get("type") == "bytes" else MeterUnit.PACKETS
                self.ns[x.pyname] = MeterBinding(state, ids[("meters", x.name)], unit)
            elif x.kind in ("action_profile", "action_selector"):
                continue  # reached through their tables' bindings
            elif x.kind == "direct_meter":
                unit = MeterUnit.BYTES if x.args.get("type") == "bytes" else MeterUnit.PACKETS
                tid = ids.get(("tables", x.table or ""), 0)
                self.ns[x.pyname] = DirectMeterBinding(tid, unit)
            else:
                self.ns[x.pyname] = _NullDirect()
        for vs in model.value_sets:
            vid = ids[("value_sets", vs.name)]
            self.ns[vs.pyname] = ValueSetBinding(state, vid, [w for _, w in vs.fields])
        self.digest_ids = {d.name: ids[("digests", d.name)] for d in model.digests if ("digests", d.name) in ids}
        self.stages = self.ns["STAGES"]
        self.headers_class = self.ns["HEADERS_CLASS"]
        self.metadata_class = self.ns["METADATA_CLASS"]
        std = model.struct_types.get("standard_metadata_t")
        if std is None:
            raise ValueError("the program does not declare standard_metadata_t (include v1model.p4)")
        self.std_class = self.ns[std.pyclass]
        self.field_lists = self.ns["FIELD_LISTS"]
        # the program's codes for core.p4's errors, by the runtime's (rtlib.CORE_ERRORS order)
        self.core_errors = tuple(self.ns.get(f"ERR_{name}", i) for i, name in enumerate(CORE_ERRORS))
        log.info("program loaded: %d tables, %d actions", len(model.tables), len(model.actions))

    def _const_entry(self, t: Any, ce: Any, ids: dict[tuple[str, str], int]) -> ConstEntry:
        key: list[Any] = []
        for (kind, a, b), k in zip(ce.matches, t.keys, strict=True):
            full = (1 << k.width) - 1
            if kind == "dontcare":
                key.append({"lpm": (0, 0), "ternary": (0, 0), "range": (0, full)}.get(k.match_kind))
            elif kind == "exact":
                key.append(a)
            elif kind == "lpm":
                key.append((a, b))
            elif kind == "ternary":
                key.append((a, b) if k.match_kind == "ternary" else a)
            elif kind == "range":
                key.append((a, b))
            else:
                key.append(a)
        return ConstEntry(tuple(key), ids[("actions", ce.action.name)], tuple(ce.args), ce.priority or 0, t.entries_const)


def now_ns() -> int:
    return time.monotonic_ns()
