"""P4Runtime entities <-> SwitchState: validation of Write updates and the answers to Read requests.

Every check here follows the P4Runtime spec's "P4 Entity Messages" section; each failure raises
P4RTError with the code the spec names for it, so the server can report it per update. Values
are decoded per the spec's Bytestrings rules (codec.py) and written back in canonical form.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from google.protobuf.message import Message
from google.rpc import code_pb2
from p4.config.v1 import p4info_pb2
from p4.v1 import p4runtime_pb2

from p4sim.runtime import codec
from p4sim.runtime.digests import DigestConfig
from p4sim.runtime.errors import (
    P4RTError,
    already_exists,
    failed_precondition,
    invalid,
    not_found,
    out_of_range,
    permission_denied,
    resource_exhausted,
    unimplemented,
)
from p4sim.runtime.externs import ValueSet
from p4sim.runtime.pre import PacketReplicationEngine, ReplicaSpec
from p4sim.runtime.profiles import GROUP, MANUAL, MEMBER, ONESHOT, ActionProfile, APGroup, Membership
from p4sim.runtime.tables import (
    EXACT,
    LPM,
    OPTIONAL,
    RANGE,
    TERNARY,
    DefaultEntry,
    Entry,
    MeterConfig,
    Table,
    dont_care,
)

if TYPE_CHECKING:
    from p4sim.runtime.state import SwitchState

Update = p4runtime_pb2.Update
INSERT, MODIFY, DELETE = Update.INSERT, Update.MODIFY, Update.DELETE
Scope = p4info_pb2.ActionRef.Scope
MeterType = p4info_pb2.MeterSpec.Type

_ONEOF_FOR_KIND = {EXACT: "exact", LPM: "lpm", TERNARY: "ternary", RANGE: "range", OPTIONAL: "optional"}


# ---------------------------------------------------------------------------------------------
# match keys
#
# Writes reach us either as protobuf messages or straight from the wire (wire.py), so the checks
# below run on a plain form both can produce cheaply: a match item is
# (field_id, set oneof name or None, a, b) with exact/optional (value, None), lpm (value,
# prefix_len), ternary (value, mask), range (low, high); values are the raw bytestrings.
MatchItem = tuple[int, "str | None", object, object]


def match_items(matches) -> list[MatchItem]:
    """Protobuf FieldMatch messages -> match items."""
    out: list[MatchItem] = []
    for fm in matches:
        which = fm.WhichOneof("field_match_type")
        if which == "exact":
            out.append((fm.field_id, which, fm.exact.value, None))
        elif which == "lpm":
            out.append((fm.field_id, which, fm.lpm.value, fm.lpm.prefix_len))
        elif which == "ternary":
            out.append((fm.field_id, which, fm.ternary.value, fm.ternary.mask))
        elif which == "range":
            out.append((fm.field_id, which, fm.range.low, fm.range.high))
        elif which == "optional":
            out.append((fm.field_id, which, fm.optional.value, None))
        else:
            out.append((fm.field_id, which, None, None))
    return out


def parse_match(container: Table | ValueSet, matches, what: str) -> tuple:
    """FieldMatch list -> key tuple (one spec per field, P4Info order); omitted = don't care."""
    return parse_match_items(container, match_items(matches), what)


def _field_value(value: bytes, width: int, what: str, name: str, suffix: str = "") -> int:
    """codec.decode for a match field, formatting the error label only when there is an error."""
    n = int.from_bytes(value, "big")
    if not value or (width > 0 and n >> width):
        codec.decode(value, width, f"{what}: field {name}{suffix}")  # raises the canonical error
    if n and not width:
        # A field of no width (a P4 error key: p4c writes no bitwidth for it) holds only zero.
        # INVALID_ARGUMENT, not the Bytestrings rule's OUT_OF_RANGE: P4Runtime has no encoding
        # for the field at all, and simple_switch_grpc answers so whatever the value.
        raise invalid(f"{what}: field {name}{suffix}: value {value.hex()} does not fit in 0 bits "
                      "(P4Info gives the field no bit width: a P4 error has no P4Runtime encoding)")
    return n


def parse_match_items(container: Table | ValueSet, items: list[MatchItem], what: str) -> tuple:
    """Match items -> key tuple; the checks and messages of the spec's FieldMatch rules."""
    fields = container.fields
    specs: list[object] = [_MISSING] * len(fields)
    by_id = container.field_by_id
    for fid, which, a, b in items:
        found = by_id.get(fid)
        if found is None:
            raise invalid(f"{what}: unknown match field id {fid}")
        pos, f = found
        if specs[pos] is not _MISSING:
            raise invalid(f"{what}: match field {f.name} given twice")
        expected = _ONEOF_FOR_KIND.get(f.kind)
        if which != expected:
            raise invalid(f"{what}: match field {f.name} is {expected}, got {which}")
        width = f.bitwidth
        if which == "exact":
            specs[pos] = _field_value(a, width, what, f.name)  # type: ignore[arg-type]
        elif which == "lpm":
            plen: int = b  # type: ignore[assignment]
            if plen <= 0 or plen > width:
                raise invalid(f"{what}: field {f.name}: prefix length {plen} not in 1..{width} "
                              "(omit the field for /0)")
            value = _field_value(a, width, what, f.name)  # type: ignore[arg-type]
            if value & ((1 << (width - plen)) - 1):
                raise invalid(f"{what}: field {f.name}: bits set beyond the /{plen} prefix")
            specs[pos] = (value, plen)
        elif which == "ternary":
            value = _field_value(a, width, what, f.name)  # type: ignore[arg-type]
            m = _field_value(b, width, what, f.name, " mask")  # type: ignore[arg-type]
            if m == 0:
                raise invalid(f"{what}: field {f.name}: all-zero mask (omit the field for don't care)")
            if value & ~m:
                raise invalid(f"{what}: field {f.name}: value has bits set outside the mask")
            specs[pos] = (value, m)
        elif which == "range":
            low = _field_value(a, width, what, f.name, " low")  # type: ignore[arg-type]
            high = _field_value(b, width, what, f.name, " high")  # type: ignore[arg-type]
            if low > high:
                raise invalid(f"{what}: field {f.name}: range low > high")
            if low == 0 and high == f.max_value:
                raise invalid(f"{what}: field {f.name}: full range (omit the field for don't care)")
            specs[pos] = (low, high)
        else:
            specs[pos] = _field_value(a, width, what, f.name)  # type: ignore[arg-type]
    if len(items) < len(fields):  # duplicates raised above, so only then can a field be missing
        for pos, f in enumerate(fields):
            if specs[pos] is _MISSING:
                if f.kind == EXACT:
                    raise invalid(f"{what}: exact match field {f.name} missing")
                specs[pos] = dont_care(f)
    return tuple(specs)


class _Missing:
    pass


_MISSING = _Missing()


def match_to_proto(container: Table | ValueSet, key: tuple, out) -> None:
    """Append FieldMatch messages (canonical, don't-care fields omitted) for a key to `out`."""
    for f, spec in zip(container.fields, key, strict=True):
        if f.kind != EXACT and spec == dont_care(f):
            continue
        fm = out.add()
        fm.field_id = f.id
        if f.kind == EXACT:
            fm.exact.value = codec.encode(spec)
        elif f.kind == LPM:
            fm.lpm.value = codec.encode(spec[0])
            fm.lpm.prefix_len = spec[1]
        elif f.kind == TERNARY:
            fm.ternary.value = codec.encode(spec[0])
            fm.ternary.mask = codec.encode(spec[1])
        elif f.kind == RANGE:
            fm.range.low = codec.encode(spec[0])
            fm.range.high = codec.encode(spec[1])
        else:
            fm.optional.value = codec.encode(spec)


# ---------------------------------------------------------------------------------------------
# actions, meters, counters
# An action in plain form: ("action", action_id, [(param_id, value bytes), ...]) for a direct
# action, or (name of the other TableAction oneof set, or None,) otherwise.
ActionItem = tuple


def action_item(action: p4runtime_pb2.TableAction) -> ActionItem:
    """Protobuf TableAction -> action item."""
    which = action.WhichOneof("type")
    if which != "action":
        return (which,)
    a = action.action
    return ("action", a.action_id, [(p.param_id, p.value) for p in a.params])


def parse_action(state: SwitchState, table: Table, action: p4runtime_pb2.TableAction,
                 is_default: bool) -> tuple[int, tuple[int, ...]]:
    return parse_action_item(state, table, action_item(action), is_default)


def parse_action_item(state: SwitchState, table: Table, item: ActionItem,
                      is_default: bool) -> tuple[int, tuple[int, ...]]:
    which = item[0]
    if which != "action":
        raise invalid(f"table {table.name}: direct table needs an action, got {which}")
    _, action_id, params = item
    scope = table.action_scopes.get(action_id)
    if scope is None:
        raise invalid(f"table {table.name}: action id {action_id} is not one of its actions")
    if is_default and scope == Scope.TABLE_ONLY:
        raise permission_denied(f"table {table.name}: action {action_id} is @tableonly")
    if not is_default and scope == Scope.DEFAULT_ONLY:
        raise permission_denied(f"table {table.name}: action {action_id} is @defaultonly")
    return action_id, action_params(state, action_id, params)


def action_params(state: SwitchState, action_id: int, params) -> tuple[int, ...]:
    """The parameter values of a known action from (param_id, value bytes) pairs, checked."""
    info = state.actions[action_id]
    index = info.param_index
    values: list[int | None] = [None] * len(info.params)
    for param_id, raw in params:
        found = index.get(param_id)
        if found is None:
            raise invalid(f"action {info.name}: unknown param id {param_id}")
        pos, pinfo = found
        if values[pos] is not None:
            raise invalid(f"action {info.name}: param {pinfo.name} given twice")
        n = int.from_bytes(raw, "big")
        if not raw or (pinfo.bitwidth > 0 and n >> pinfo.bitwidth):
            codec.decode(raw, pinfo.bitwidth, f"action {info.name} param {pinfo.name}")  # raises
        values[pos] = n
    if len(params) < len(values):
        for pos, v in enumerate(values):
            if v is None:
                raise invalid(f"action {info.name}: param {info.params[pos].name} missing")
    return tuple(values)  # type: ignore[arg-type]


def action_to_proto(state: SwitchState, action: tuple[int, tuple[int, ...]], out) -> None:
    action_id, params = action
    out.action_id = action_id
    info = state.actions.get(action_id)
    if info is None:
        return
    for pinfo, value in zip(info.params, params, strict=False):
        p = out.params.add()
        p.param_id = pinfo.id
        p.value = codec.encode(value)


def parse_meter_config(mc: p4runtime_pb2.MeterConfig, meter_type: int, what: str) -> MeterConfig:
    if min(mc.cir, mc.cburst, mc.pir, mc.pburst, mc.eburst) < 0:
        raise invalid(f"{what}: negative meter rate or burst")
    if meter_type == MeterType.TWO_RATE_THREE_COLOR and mc.eburst:
        raise invalid(f"{what}: eburst is only for single-rate meters")
    if meter_type in (MeterType.SINGLE_RATE_THREE_COLOR, MeterType.SINGLE_RATE_TWO_COLOR):
        if mc.pir != mc.cir or mc.pburst != mc.cburst:
            raise invalid(f"{what}: single-rate meter needs pir == cir and pburst == cburst")
        if meter_type == MeterType.SINGLE_RATE_TWO_COLOR and mc.eburst:
            raise invalid(f"{what}: two-color meter takes no eburst")
    return MeterConfig(mc.cir, mc.cburst, mc.pir, mc.pburst, mc.eburst)


def meter_config_to_proto(cfg: MeterConfig, out: p4runtime_pb2.MeterConfig) -> None:
    out.cir, out.cburst, out.pir, out.pburst = cfg.cir, cfg.cburst, cfg.pir, cfg.pburst
    if cfg.eburst:
        out.eburst = cfg.eburst


def _counter_values(data: p4runtime_pb2.CounterData, what: str) -> tuple[int, int]:
    if data.packet_count < 0 or data.byte_count < 0:
        raise invalid(f"{what}: negative counter value")
    return data.packet_count, data.byte_count


def _index(msg, size: int, what: str) -> range:
    """The cells an entity addresses: one if `index` is set, all of them otherwise."""
    if not msg.HasField("index"):
        return range(size)
    i = msg.index.index
    if i < 0:
        raise invalid(f"{what}: negative index {i}")
    if i >= size:
        raise out_of_range(f"{what}: index {i} >= size {size}")
    return range(i, i + 1)


# ---------------------------------------------------------------------------------------------
# writes
def apply_update(state: SwitchState, update: p4runtime_pb2.Update) -> None:
    """Apply one Update to `state`, or raise P4RTError leaving `state` unchanged."""
    if update.type not in (INSERT, MODIFY, DELETE):
        raise invalid("update type must be INSERT, MODIFY or DELETE")
    kind = update.entity.WhichOneof("entity")
    if kind is None:
        raise invalid("update has no entity")
    writer = _WRITERS.get(kind)
    if writer is None:
        raise unimplemented(f"{kind} is not supported by this target")
    with state.lock:
        writer(state, update.type, getattr(update.entity, kind))


class TableWrite:
    """A table-entry Update in plain form: what `apply_table_write` checks and applies.

    Built from protobuf (`from_proto`) or straight from the wire bytes (wire.py), so a batch of
    a thousand inserts does not pay for a thousand protobuf message trees. Fields mirror
    p4.v1.TableEntry; `matches` and `action` are match / action items (see above), `action` is
    None when unset. The rarely written message fields (meter_config, counter_data) stay protobuf
    messages, None when unset. `action_raw` is the TableAction's wire bytes when known: equal
    bytes decode to the same action, which lets a batch validate each distinct action once.
    """

    __slots__ = ("type", "table_id", "matches", "action", "action_raw", "priority",
                 "controller_metadata", "is_default_action", "idle_timeout_ns",
                 "has_time_since_last_hit", "metadata", "is_const", "meter_config", "counter_data",
                 "has_meter_counter_data", "_proto")

    def __init__(self, utype: int) -> None:
        self.type = utype
        self.table_id = 0
        self.matches: list[MatchItem] = []
        self.action: ActionItem | None = None
        self.action_raw: bytes | None = None
        self.priority = 0
        self.controller_metadata = 0
        self.is_default_action = False
        self.idle_timeout_ns = 0
        self.has_time_since_last_hit = False
        self.metadata = b""
        self.is_const = False
        self.meter_config: p4runtime_pb2.MeterConfig | None = None
        self.counter_data: p4runtime_pb2.CounterData | None = None
        self.has_meter_counter_data = False
        self._proto: p4runtime_pb2.TableEntry | None = None

    @classmethod
    def from_proto(cls, utype: int, te: p4runtime_pb2.TableEntry) -> TableWrite:
        tw = cls(utype)
        tw.table_id = te.table_id
        tw.matches = match_items(te.match)
        tw.action = action_item(te.action) if te.HasField("action") else None
        tw.priority = te.priority
        tw.controller_metadata = te.controller_metadata
        tw.is_default_action = te.is_default_action
        tw.idle_timeout_ns = te.idle_timeout_ns
        tw.has_time_since_last_hit = te.HasField("time_since_last_hit")
        tw.metadata = te.metadata
        tw.is_const = te.is_const
        tw.meter_config = te.meter_config if te.HasField("meter_config") else None
        tw.counter_data = te.counter_data if te.HasField("counter_data") else None
        tw.has_meter_counter_data = te.HasField("meter_counter_data")
        tw._proto = te
        return tw

    def proto(self) -> p4runtime_pb2.TableEntry:
        """The TableEntry message (parsed on demand by wire-built writes)."""
        assert self._proto is not None
        return self._proto


def apply_write(state: SwitchState, update: TableWrite | p4runtime_pb2.Update,
                cache: ActionCache | None = None) -> None:
    """Apply one update of a Write batch, decoded either way (caller holds state.lock)."""
    if isinstance(update, TableWrite):
        if update.type not in (INSERT, MODIFY, DELETE):
            raise invalid("update type must be INSERT, MODIFY or DELETE")
        apply_table_write(state, update, cache)
    else:
        apply_update(state, update)


def _table_for(state: SwitchState, table_id: int) -> Table:
    table = state.tables.get(table_id)
    if table is None:
        raise invalid(f"unknown table id {table_id}")
    return table


def _check_priority(table: Table, prio: int) -> int:
    if table.needs_priority:
        if prio <= 0:
            raise invalid(f"table {table.name}: ternary/range/optional match needs priority > 0")
    elif prio != 0:
        raise invalid(f"table {table.name}: priority must be 0 for exact/lpm-only tables")
    return prio


def _key_and_priority(table: Table, te: p4runtime_pb2.TableEntry) -> tuple[tuple, int]:
    key = parse_match(table, te.match, table.label)
    return key, _check_priority(table, te.priority)


def _check_direct(table: Table, meter_config: bool, counter_data: bool, meter_counter_data: bool) -> None:
    if meter_config and not table.direct_meter_id:
        raise invalid(f"table {table.name} has no direct meter")
    if counter_data and not table.has_direct_counter:
        raise invalid(f"table {table.name} has no direct counter")
    if meter_counter_data:
        raise unimplemented("per-color meter counters are not supported")


def _check_direct_fields(table: Table, te: p4runtime_pb2.TableEntry) -> None:
    _check_direct(table, te.HasField("meter_config"), te.HasField("counter_data"),
                  te.HasField("meter_counter_data"))


def _direct_counts(table: Table, counter_data: p4runtime_pb2.CounterData | None) -> tuple[int, int] | None:
    """The counter values a write gives its entry, checked before anything is changed."""
    return None if counter_data is None else _counter_values(counter_data, f"table {table.name}")


def _apply_direct_fields(table: Table, entry: Entry, counts: tuple[int, int] | None,
                         meter_cfg: MeterConfig | None, utype: int) -> None:
    """Set an entry's direct resources from values already checked: this cannot fail."""
    if table.direct_meter_id and (utype == INSERT or utype == MODIFY):
        # Spec: an unset meter_config on INSERT *and* MODIFY means the default (all GREEN).
        if entry.meter_config != meter_cfg:
            entry.meter_config = meter_cfg
            entry.meter_state = None
    if counts is not None:
        entry.packets, entry.bytes = counts


def _write_table_entry(state: SwitchState, utype: int, te: p4runtime_pb2.TableEntry) -> None:
    apply_table_write(state, TableWrite.from_proto(utype, te))


ActionCache = dict[tuple[int, bytes], "tuple[int, tuple[int, ...]] | P4RTError"]


def _entry_action(state: SwitchState, table: Table, tw: TableWrite,
                  cache: ActionCache | None) -> tuple[int, tuple[int, ...]]:
    """parse_action_item for a non-default entry, once per distinct (table, action bytes) in a batch.

    The outcome depends only on the table and the bytes, so a cached error is re-raised as a
    fresh exception with the same code and message.
    """
    raw = tw.action_raw
    if cache is None or raw is None:
        return parse_action_item(state, table, tw.action, False)  # type: ignore[arg-type]
    ck = (table.id, raw)
    got = cache.get(ck)
    if got is None:
        try:
            got = parse_action_item(state, table, tw.action, False)  # type: ignore[arg-type]
        except P4RTError as e:
            got = e
        cache[ck] = got
    if isinstance(got, P4RTError):
        raise P4RTError(got.code, got.message)
    return got


def apply_table_write(state: SwitchState, tw: TableWrite, cache: ActionCache | None = None) -> None:
    """Apply one table-entry write (caller holds state.lock), or raise P4RTError leaving state as is.

    `cache` (one dict per Write batch) memoizes action validation; see _entry_action.
    """
    utype = tw.type
    table = _table_for(state, tw.table_id)
    if tw.is_const:
        raise invalid("is_const must be false in writes")
    if tw.has_time_since_last_hit:
        raise invalid("time_since_last_hit must be unset in writes")
    if tw.is_default_action:
        _write_default_entry(state, utype, table, tw.proto())
        return
    if not table.fields:
        raise invalid(f"table {table.name} is keyless: only its default entry can be written")
    key = parse_match_items(table, tw.matches, table.label)
    prio = _check_priority(table, tw.priority)
    if table.is_const_table and utype != MODIFY:
        raise permission_denied(f"table {table.name} is const")
    if utype == DELETE:
        entry = table.get(key, prio)
        if entry is None:
            raise not_found(f"table {table.name}: no such entry")
        if table.is_const_table or entry.is_const:
            raise permission_denied(f"table {table.name}: entry is const")
        table.delete(key, prio)
        if table.implementation_id:
            _unref_indirect(state, entry.action)
        return
    idle_ns = tw.idle_timeout_ns
    if idle_ns < 0 or (idle_ns and not table.idle_supported):
        raise invalid(f"table {table.name} does not support idle timeout")
    mc = tw.meter_config
    if mc is not None or tw.counter_data is not None or tw.has_meter_counter_data:
        _check_direct(table, mc is not None, tw.counter_data is not None, tw.has_meter_counter_data)
    meter_cfg = None
    if mc is not None:
        meter_cfg = parse_meter_config(mc, state.direct_meter_types[table.direct_meter_id],
                                       f"table {table.name}")
    counts = _direct_counts(table, tw.counter_data)  # refused here, not once the entry has changed
    now = time.monotonic_ns()
    if utype == INSERT:
        if table.is_const_table:
            raise permission_denied(f"table {table.name} is const")
        if tw.action is None:
            raise invalid(f"table {table.name}: INSERT needs an action")
        if table.implementation_id:
            # Indirect: the wire reader keeps no member/group ids, so read the protobuf message.
            # Existence and room are checked before a one-shot group is built for the entry.
            if table.get(key, prio) is not None:
                raise already_exists(f"table {table.name}: entry already exists")
            if table.size and len(table) >= table.size:
                raise resource_exhausted(f"table {table.name} is full ({table.size} entries)")
            _refuse_widthless(table)  # before a one-shot group is made for the entry
            action_id, params = _indirect_action(state, table, tw.proto().action)
        else:
            action_id, params = _entry_action(state, table, tw, cache)
            _refuse_widthless(table)
        entry = table.insert(key, prio, action_id, params, now)
    else:
        entry = table.get(key, prio)
        if entry is None:
            raise not_found(f"table {table.name}: no such entry")
        const = table.is_const_table or entry.is_const
        if const and tw.action is not None:
            raise permission_denied(f"table {table.name}: const entry; only direct resources may change")
        if tw.action is not None:
            if table.implementation_id:
                old_action = entry.action
                entry.action = _indirect_action(state, table, tw.proto().action)
                _unref_indirect(state, old_action)
            else:
                entry.action = _entry_action(state, table, tw, cache)
    if utype == INSERT or tw.action is not None:
        # Spec: a MODIFY without an action leaves the action specification as it is and is a
        # no-op but for the direct resources; so the metadata and idle timeout stay too. (A
        # const entry never gets here with an action: refused above.)
        entry.controller_metadata = tw.controller_metadata
        entry.metadata = tw.metadata
        if table.idle_supported:
            table.set_idle_timeout(entry, idle_ns, now)
    if table.direct_meter_id or counts is not None:
        _apply_direct_fields(table, entry, counts, meter_cfg, utype)


def _refuse_widthless(table: Table) -> None:
    """An INSERT that passed every check, into a table keyed on a field of no width (a P4 error).

    simple_switch_grpc's PI takes such an entry (its zero value, or the field omitted for don't
    care) and hands BMv2 a key with no bytes for that field, which BMv2 refuses: the update fails
    with UNKNOWN, so no entry can ever be added and every packet takes the default entry. p4sim
    refuses the same way; MODIFY and DELETE then find no entry (NOT_FOUND), as on BMv2.
    """
    if table.widthless_field is not None:
        raise P4RTError(code_pb2.UNKNOWN,
                        f"table {table.name}: cannot add an entry: match field {table.widthless_field} has no "
                        "bit width in P4Info (a P4 error), so no entry can hold it (simple_switch_grpc "
                        "refuses it too: 'Error when adding match entry to target')")


def _write_default_entry(state: SwitchState, utype: int, table: Table, te: p4runtime_pb2.TableEntry) -> None:
    if utype != MODIFY:
        raise invalid(f"table {table.name}: the default entry can only be modified")
    if len(te.match) or te.priority:
        raise invalid("default entry takes no match and no priority")
    if te.idle_timeout_ns:
        raise invalid("default entries have no idle timeout")
    if table.default_is_const:
        raise permission_denied(f"table {table.name}: default action is const")
    _check_direct_fields(table, te)
    meter_cfg = None
    if te.HasField("meter_config"):
        meter_cfg = parse_meter_config(te.meter_config, state.direct_meter_types[table.direct_meter_id],
                                       f"table {table.name}")
    counts = _direct_counts(table, te.counter_data if te.HasField("counter_data") else None)
    if te.HasField("action") and table.implementation_id:
        # BMv2 runs no default action on an indirect table (p4c drops it from the JSON); PI
        # has no way to give it one
        raise unimplemented(f"table {table.name}: the default entry of an indirect table cannot be set")
    if te.HasField("action"):
        action = parse_action(state, table, te.action, True)
        table.default.action = action
        entry: Entry = table.default
        entry.controller_metadata = te.controller_metadata
        entry.metadata = te.metadata
    else:
        table.reset_default()  # spec: no action = back to the program's default, resources reset
        entry = table.default
    _apply_direct_fields(table, entry, counts, meter_cfg, MODIFY)


def _resolve_entry(state: SwitchState, table: Table, te: p4runtime_pb2.TableEntry) -> Entry:
    if te.is_default_action:
        return table.default
    key, prio = _key_and_priority(table, te)
    entry = table.get(key, prio)
    if entry is None:
        raise not_found(f"table {table.name}: no such entry")
    return entry


def _write_direct_counter(state: SwitchState, utype: int, dce: p4runtime_pb2.DirectCounterEntry) -> None:
    if utype != MODIFY:
        raise invalid("DirectCounterEntry only supports MODIFY")
    table = _table_for(state, dce.table_entry.table_id)
    if not table.has_direct_counter:
        raise invalid(f"table {table.name} has no direct counter")
    entry = _resolve_entry(state, table, dce.table_entry)
    if dce.HasField("data"):
        entry.packets, entry.bytes = _counter_values(dce.data, f"table {table.name}")


def _write_direct_meter(state: SwitchState, utype: int, dme: p4runtime_pb2.DirectMeterEntry) -> None:
    if utype != MODIFY:
        raise invalid("DirectMeterEntry only supports MODIFY")
    table = _table_for(state, dme.table_entry.table_id)
    if not table.direct_meter_id:
        raise invalid(f"table {table.name} has no direct meter")
    if dme.HasField("counter_data"):
        raise unimplemented("per-color meter counters are not supported")
    entry = _resolve_entry(state, table, dme.table_entry)
    cfg = None
    if dme.HasField("config"):
        cfg = parse_meter_config(dme.config, state.direct_meter_types[table.direct_meter_id],
                                 f"table {table.name}")
    entry.meter_config = cfg
    entry.meter_state = None


def _write_counter(state: SwitchState, utype: int, ce: p4runtime_pb2.CounterEntry) -> None:
    if utype != MODIFY:
        raise invalid("CounterEntry only supports MODIFY")
    ctr = state.counters.get(ce.counter_id)
    if ctr is None:
        raise invalid(f"unknown counter id {ce.counter_id}")
    cells = _index(ce, ctr.size, f"counter {ctr.name}")
    if ce.HasField("data"):
        packets, nbytes = _counter_values(ce.data, f"counter {ctr.name}")
        for i in cells:
            ctr.packets[i] = packets
            ctr.bytes[i] = nbytes


def _write_meter(state: SwitchState, utype: int, me: p4runtime_pb2.MeterEntry) -> None:
    if utype != MODIFY:
        raise invalid("MeterEntry only supports MODIFY")
    meter = state.meters.get(me.meter_id)
    if meter is None:
        raise invalid(f"unknown meter id {me.meter_id}")
    if me.HasField("counter_data"):
        raise unimplemented("per-color meter counters are not supported")
    cells = _index(me, meter.size, f"meter {meter.name}")
    cfg = parse_meter_config(me.config, meter.type, f"meter {meter.name}") if me.HasField("config") else None
    for i in cells:
        meter.set_config(i, cfg)


def _write_register(state: SwitchState, utype: int, re: p4runtime_pb2.RegisterEntry) -> None:
    if utype != MODIFY:
        raise invalid("RegisterEntry only supports MODIFY")
    reg = state.registers.get(re.register_id)
    if reg is None:
        raise invalid(f"unknown register id {re.register_id}")
    if reg.bitwidth == 0:
        raise unimplemented(f"register {reg.name}: only bit<W>/int<W>/bool cells are supported")
    cells = _index(re, reg.size, f"register {reg.name}")
    which = re.data.WhichOneof("data")
    if which == "bitstring":
        value = codec.decode(re.data.bitstring, reg.bitwidth, f"register {reg.name}")
    elif which == "bool" and reg.bitwidth == 1:
        value = int(re.data.bool)
    else:
        raise invalid(f"register {reg.name}: data must be a bitstring of {reg.bitwidth} bits")
    for i in cells:
        reg.values[i] = value


def _write_value_set(state: SwitchState, utype: int, vse: p4runtime_pb2.ValueSetEntry) -> None:
    if utype != MODIFY:
        raise invalid("ValueSetEntry only supports MODIFY")
    vs = state.value_sets.get(vse.value_set_id)
    if vs is None:
        raise invalid(f"unknown value set id {vse.value_set_id}")
    if vs.has_range:
        raise unimplemented(f"value set {vs.name}: range members are not supported")
    members = []
    seen = set()
    for m in vse.members:
        key = parse_match(vs, m.match, f"value set {vs.name}")
        if key in seen:
            raise already_exists(f"value set {vs.name}: duplicate member")
        seen.add(key)
        members.append(key)
    if vs.size and len(members) > vs.size:
        raise resource_exhausted(f"value set {vs.name}: {len(members)} members > size {vs.size}")
    vs.set_members(members)


def _replicas(replicas, what: str) -> tuple[ReplicaSpec, ...]:
    out = []
    seen = set()
    for r in replicas:
        if r.WhichOneof("port_kind") == "port":
            spec = ReplicaSpec(codec.decode(r.port, 32, f"{what} port"), r.instance, True)
        else:
            spec = ReplicaSpec(r.egress_port, r.instance, False)
        if (spec.port, spec.instance) in seen:
            raise invalid(f"{what}: duplicate replica (port {spec.port}, instance {spec.instance})")
        seen.add((spec.port, spec.instance))
        out.append(spec)
    return tuple(out)


def _write_pre_item(store: dict, utype: int, key: int, key_name: str, label: str, make) -> None:
    """One multicast group or clone session: the same id rules and errors for both kinds.
    ``make`` builds the new value (and validates the replicas) only for INSERT/MODIFY."""
    if key == 0:
        raise invalid(f"{key_name} must not be 0")
    if utype == DELETE:
        if store.pop(key, None) is None:
            raise not_found(f"{label} does not exist")
        return
    value = make()
    if utype == INSERT and key in store:
        raise already_exists(f"{label} already exists")
    if utype == MODIFY and key not in store:
        raise not_found(f"{label} does not exist")
    store[key] = value


def _write_pre(state: SwitchState, utype: int, pre: p4runtime_pb2.PacketReplicationEngineEntry) -> None:
    which = pre.WhichOneof("type")
    if which == "multicast_group_entry":
        mg = pre.multicast_group_entry
        gid = mg.multicast_group_id
        _write_pre_item(state.pre.groups, utype, gid, "multicast_group_id", f"multicast group {gid}",
                        lambda: PacketReplicationEngine.make_group(
                            gid, _replicas(mg.replicas, f"multicast group {gid}"), mg.metadata))
    elif which == "clone_session_entry":
        cs = pre.clone_session_entry
        sid = cs.session_id
        _write_pre_item(state.pre.sessions, utype, sid, "session_id", f"clone session {sid}",
                        lambda: PacketReplicationEngine.make_session(
                            sid, _replicas(cs.replicas, f"clone session {sid}"), cs.class_of_service,
                            cs.packet_length_bytes))
    else:
        raise invalid("PacketReplicationEngineEntry has no entry")


def _write_digest(state: SwitchState, utype: int, de: p4runtime_pb2.DigestEntry) -> None:
    if de.digest_id not in state.digests.types:
        raise invalid(f"unknown digest id {de.digest_id}")
    configured = de.digest_id in state.digests.configs
    if utype == DELETE:
        if not configured:
            raise not_found(f"digest {de.digest_id} is not configured")
        state.digests.set_config(de.digest_id, None)
        return
    if utype == INSERT and configured:
        raise already_exists(f"digest {de.digest_id} is already configured")
    if utype == MODIFY and not configured:
        raise not_found(f"digest {de.digest_id} is not configured")
    if not de.HasField("config"):
        raise invalid("DigestEntry needs a config")
    c = de.config
    if c.max_timeout_ns < 0 or c.max_list_size < 0 or c.ack_timeout_ns < 0:
        raise invalid("digest config values must not be negative")
    state.digests.set_config(de.digest_id, DigestConfig(c.max_timeout_ns, c.max_list_size, c.ack_timeout_ns))


# ---------------------------------------------------------------------------------------------
# action profiles: members, groups, and indirect table actions (PI's rules, see profiles.py)
def _profile_for(state: SwitchState, profile_id: int) -> ActionProfile:
    ap = state.action_profiles.get(profile_id)
    if ap is None:
        raise invalid(f"unknown action profile id {profile_id}")
    return ap


def _profile_action(state: SwitchState, ap: ActionProfile, action: p4runtime_pb2.Action,
                    what: str) -> tuple[int, tuple[int, ...]]:
    """An action given to a member: one of the profile's tables' actions, with valid params."""
    aid = action.action_id
    if aid not in state.actions:
        raise invalid(f"{what}: unknown action id {aid}")
    if aid not in ap.action_ids:
        raise invalid(f"{what}: action {state.actions[aid].name} is not an action of action profile {ap.name}")
    return aid, action_params(state, aid, [(p.param_id, p.value) for p in action.params])


def _check_mode(ap: ActionProfile, mode: str) -> None:
    """PI programs a profile either with members and groups or one-shot, never both."""
    if ap.mode is not None and ap.mode != mode:
        raise invalid(f"action profile {ap.name} is programmed {ap.mode}; it cannot also be programmed {mode}")


def _settle_mode(ap: ActionProfile) -> None:
    if not ap.members and not ap.groups:
        ap.mode = None


def _write_ap_member(state: SwitchState, utype: int, apm: p4runtime_pb2.ActionProfileMember) -> None:
    ap = _profile_for(state, apm.action_profile_id)
    mid = apm.member_id
    what = f"action profile {ap.name} member {mid}"
    existing = ap.members.get(mid)
    if existing is not None and existing.hidden:
        existing = None
    if utype == DELETE:
        if existing is None:
            raise not_found(f"{what} does not exist")
        if existing.refs:
            raise failed_precondition(f"{what} is still used by {existing.refs} group(s) or table entries")
        ap.drop_member(existing)
        _settle_mode(ap)
        return
    _check_mode(ap, MANUAL)
    if not apm.HasField("action"):
        raise invalid(f"{what}: a member needs an action")
    action = _profile_action(state, ap, apm.action, what)
    if utype == INSERT:
        if existing is not None:
            raise already_exists(f"{what} already exists")
        if ap.size and ap.visible_members() >= ap.size:
            raise resource_exhausted(f"action profile {ap.name} is full ({ap.size} members)")
        ap.new_member(mid, action)
        ap.mode = MANUAL
    else:
        if existing is None:
            raise not_found(f"{what} does not exist")
        existing.action = action


def _membership(weight: int, msg, what: str) -> Membership:
    """Weight and watch port of an ActionProfileGroup.Member / ActionProfileAction."""
    if weight <= 0:
        raise invalid(f"{what}: weight must be a positive integer (got {weight})")
    kind = msg.WhichOneof("watch_kind")
    if kind == "watch":
        return Membership(weight, kind, msg.watch)
    if kind == "watch_port":
        return Membership(weight, kind, msg.watch_port)
    return Membership(weight, None, 0)


def _membership_to_proto(mid: int, ms: Membership, out) -> None:
    out.member_id = mid
    out.weight = ms.weight
    if ms.watch_kind == "watch":
        out.watch = ms.watch
    elif ms.watch_kind == "watch_port":
        out.watch_port = ms.watch


def _group_room(ap: ActionProfile, max_size: int, total_weight: int, what: str) -> None:
    limit = max_size or ap.max_group_size
    if limit and total_weight > limit:
        raise resource_exhausted(f"{what}: sum of member weights {total_weight} exceeds the maximum group size {limit}")


def _write_ap_group(state: SwitchState, utype: int, apg: p4runtime_pb2.ActionProfileGroup) -> None:
    ap = _profile_for(state, apg.action_profile_id)
    gid = apg.group_id
    what = f"action profile {ap.name} group {gid}"
    if not ap.with_selector:
        raise invalid(f"action profile {ap.name} has no selector: it has no groups")
    existing = ap.groups.get(gid)
    if existing is not None and existing.hidden:
        existing = None
    if utype == DELETE:
        if existing is None:
            raise not_found(f"{what} does not exist")
        if existing.refs:
            raise failed_precondition(f"{what} is still used by {existing.refs} table entries")
        ap.drop_group(existing)
        _settle_mode(ap)
        return
    _check_mode(ap, MANUAL)
    if apg.max_size < 0:
        raise invalid(f"{what}: max_size must not be negative")
    if ap.max_group_size and apg.max_size > ap.max_group_size:
        raise invalid(f"{what}: max_size {apg.max_size} exceeds the profile's max_group_size {ap.max_group_size}")
    members: dict[int, Membership] = {}
    for m in apg.members:
        members_what = f"{what} member {m.member_id}"
        ms = _membership(m.weight, m, members_what)
        mem = ap.members.get(m.member_id)
        if mem is None or mem.hidden:
            raise not_found(f"{members_what} does not exist")
        if m.member_id in members:
            raise invalid(f"{members_what} is listed twice (use weights instead)")
        members[m.member_id] = ms
    total = sum(ms.weight for ms in members.values())
    if utype == INSERT:
        if existing is not None:
            raise already_exists(f"{what} already exists")
        _group_room(ap, apg.max_size, total, what)
        g = APGroup(gid, apg.max_size)
        ap.groups[gid] = g
        ap.mode = MANUAL
    else:
        if existing is None:
            raise not_found(f"{what} does not exist")
        if apg.max_size and apg.max_size != existing.max_size:
            raise invalid(f"{what}: max_size cannot change after the group is created")
        _group_room(ap, existing.max_size, total, what)
        g = existing
    ap.set_membership(g, members)


def _indirect_action(state: SwitchState, table: Table, action: p4runtime_pb2.TableAction) -> tuple:
    """A TableAction for an indirect table -> (MEMBER, member) or (GROUP, group), the
    reference taken. One-shot action sets become a hidden group (PI does the same)."""
    ap = state.action_profiles[table.implementation_id]
    which = action.WhichOneof("type")
    if which == "action_profile_member_id":
        m = ap.members.get(action.action_profile_member_id)
        if m is None or m.hidden:
            raise not_found(f"table {table.name}: member {action.action_profile_member_id} of "
                            f"action profile {ap.name} does not exist")
        m.refs += 1
        return (MEMBER, m)
    if which == "action_profile_group_id":
        if not ap.with_selector:
            raise invalid(f"table {table.name}: action profile {ap.name} has no selector, so no groups")
        g = ap.groups.get(action.action_profile_group_id)
        if g is None or g.hidden:
            raise not_found(f"table {table.name}: group {action.action_profile_group_id} of "
                            f"action profile {ap.name} does not exist")
        g.refs += 1
        return (GROUP, g)
    if which == "action_profile_action_set":
        return (GROUP, _oneshot_group(state, table, ap, action.action_profile_action_set))
    if which == "action":
        raise invalid(f"table {table.name} is indirect (action profile {ap.name}): give a member, "
                      "a group or an action set, not an action")
    raise invalid(f"table {table.name}: the entry has no action")


def _oneshot_group(state: SwitchState, table: Table, ap: ActionProfile,
                   aset: p4runtime_pb2.ActionProfileActionSet) -> APGroup:
    if not ap.with_selector:
        raise invalid(f"table {table.name}: one-shot action sets need an action selector")
    _check_mode(ap, ONESHOT)
    if not len(aset.action_profile_actions):
        raise invalid(f"table {table.name}: the action set is empty")
    parts = []
    for i, apa in enumerate(aset.action_profile_actions):
        what = f"table {table.name}: action set item {i}"
        ms = _membership(apa.weight, apa, what)
        parts.append((_profile_action(state, ap, apa.action, what), ms))
    _group_room(ap, 0, sum(ms.weight for _, ms in parts), f"table {table.name}: action set")
    g = APGroup(ap.hidden_id(), 0, hidden=True)
    ap.groups[g.id] = g
    members: dict[int, Membership] = {}
    for action, ms in parts:
        m = ap.new_member(ap.hidden_id(), action, hidden=True)
        members[m.id] = ms
    ap.set_membership(g, members)
    g.refs = 1
    ap.mode = ONESHOT
    return g


def _unref_indirect(state: SwitchState, action: tuple) -> None:
    """Drop a table entry's reference; a one-shot group goes away with its entry."""
    kind, obj = action
    if kind == MEMBER:
        obj.refs -= 1
    elif kind == GROUP:
        obj.refs -= 1
        if obj.hidden and obj.refs == 0:
            ap = _profile_of_group(state, obj)
            mids = list(obj.members)
            ap.drop_group(obj)
            for mid in mids:
                ap.drop_member(ap.members[mid])
            _settle_mode(ap)


def _profile_of_group(state: SwitchState, g: APGroup) -> ActionProfile:
    for ap in state.action_profiles.values():
        if ap.groups.get(g.id) is g:
            return ap
    raise AssertionError(f"group {g.id} belongs to no action profile")


def _indirect_to_proto(state: SwitchState, action: tuple, out: p4runtime_pb2.TableAction) -> None:
    kind, obj = action
    if kind == MEMBER:
        out.action_profile_member_id = obj.id
    elif not obj.hidden:
        out.action_profile_group_id = obj.id
    else:
        ap = _profile_of_group(state, obj)
        aset = out.action_profile_action_set
        for mid, ms in sorted(obj.members.items()):
            apa = aset.action_profile_actions.add()
            action_to_proto(state, ap.members[mid].action, apa.action)
            apa.weight = ms.weight
            if ms.watch_kind == "watch":
                apa.watch = ms.watch
            elif ms.watch_kind == "watch_port":
                apa.watch_port = ms.watch


_WRITERS: dict[str, Callable[[SwitchState, int, Message], None]] = {
    "table_entry": _write_table_entry,  # type: ignore[dict-item]
    "direct_counter_entry": _write_direct_counter,  # type: ignore[dict-item]
    "direct_meter_entry": _write_direct_meter,  # type: ignore[dict-item]
    "counter_entry": _write_counter,  # type: ignore[dict-item]
    "meter_entry": _write_meter,  # type: ignore[dict-item]
    "register_entry": _write_register,  # type: ignore[dict-item]
    "value_set_entry": _write_value_set,  # type: ignore[dict-item]
    "packet_replication_engine_entry": _write_pre,  # type: ignore[dict-item]
    "digest_entry": _write_digest,  # type: ignore[dict-item]
    "action_profile_member": _write_ap_member,  # type: ignore[dict-item]
    "action_profile_group": _write_ap_group,  # type: ignore[dict-item]
}


# ---------------------------------------------------------------------------------------------
# reads
def table_entry_to_proto(state: SwitchState, table: Table, entry: Entry, *, counter: bool = False,
                         meter: bool = False, since_hit: bool = False,
                         now_ns: int | None = None) -> p4runtime_pb2.TableEntry:
    te = p4runtime_pb2.TableEntry()
    te.table_id = table.id
    if isinstance(entry, DefaultEntry):
        te.is_default_action = True
    else:
        match_to_proto(table, entry.key, te.match)
        te.priority = entry.priority
        te.idle_timeout_ns = entry.idle_timeout_ns
        te.is_const = entry.is_const
    if entry.action[0] < 0:
        _indirect_to_proto(state, entry.action, te.action)
    elif entry.action[0]:
        action_to_proto(state, entry.action, te.action.action)
    te.controller_metadata = entry.controller_metadata
    te.metadata = entry.metadata
    if counter and table.has_direct_counter:
        te.counter_data.packet_count = entry.packets
        te.counter_data.byte_count = entry.bytes
    if meter and table.direct_meter_id and entry.meter_config is not None:
        meter_config_to_proto(entry.meter_config, te.meter_config)
    if since_hit and table.idle_supported and not isinstance(entry, DefaultEntry):
        now = time.monotonic_ns() if now_ns is None else now_ns
        te.time_since_last_hit.elapsed_ns = max(0, now - entry.last_hit_ns)
    return te


def _select_entries(state: SwitchState, table: Table, te: p4runtime_pb2.TableEntry) -> list[Entry]:
    """The entries of one table a TableEntry read filter selects (spec "Wildcard Reads")."""
    if te.is_default_action:
        return [table.default]
    if len(te.match):
        key = parse_match(table, te.match, f"table {table.name}")
        if te.priority:
            entry = table.get(key, te.priority)
            candidates = [entry] if entry is not None else []
        elif not table.needs_priority:
            entry = table.get(key, 0)
            candidates = [entry] if entry is not None else []
        else:
            candidates = [e for e in table if e.key == key]
    else:
        candidates = list(table)
    action_id = te.action.action.action_id if te.action.WhichOneof("type") == "action" else 0
    out = []
    for e in candidates:
        if te.priority and e.priority != te.priority:
            continue
        if action_id and (table.implementation_id or e.action[0] != action_id):
            continue
        if te.controller_metadata and e.controller_metadata != te.controller_metadata:
            continue
        if te.metadata and e.metadata != te.metadata:
            continue
        out.append(e)
    return out


def select_table_read(state: SwitchState, te: p4runtime_pb2.TableEntry
                      ) -> tuple[list[tuple[Table, list[Entry]]], dict[str, bool]]:
    """A TableEntry read request -> the (table, entries) it selects and the flags for
    table_entry_to_proto (counter, meter, since_hit). Caller holds state.lock."""
    if te.table_id == 0:  # every table: its default entry if that is what is asked for (as BMv2)
        picked = [(t, [t.default] if te.is_default_action else list(t)) for t in state.tables.values()]
    else:
        table = _table_for(state, te.table_id)
        if te.HasField("time_since_last_hit") and not table.idle_supported:
            raise invalid(f"table {table.name} does not support idle timeout")
        picked = [(table, _select_entries(state, table, te))]
    flags = {"counter": te.HasField("counter_data"), "meter": te.HasField("meter_config"),
             "since_hit": te.HasField("time_since_last_hit")}
    return picked, flags


def _read_table_entries(state: SwitchState, te: p4runtime_pb2.TableEntry) -> Iterator[p4runtime_pb2.Entity]:
    picked, flags = select_table_read(state, te)

    def gen() -> Iterator[p4runtime_pb2.Entity]:
        now = time.monotonic_ns()
        for table, entries in picked:
            for entry in entries:
                ent = p4runtime_pb2.Entity()
                ent.table_entry.CopyFrom(table_entry_to_proto(state, table, entry, now_ns=now, **flags))
                yield ent
    return gen()


def _direct_targets(state: SwitchState, te: p4runtime_pb2.TableEntry, attr: str,
                    what: str) -> list[tuple[Table, list[Entry]]]:
    if te.table_id == 0:
        return [(t, [t.default] if te.is_default_action else list(t)) for t in state.tables.values()
                if getattr(t, attr)]
    table = _table_for(state, te.table_id)
    if not getattr(table, attr):
        raise invalid(f"table {table.name} has no {what}")
    if te.is_default_action or len(te.match):
        return [(table, [_resolve_entry(state, table, te)])]
    return [(table, list(table))]


def _read_direct_counters(state: SwitchState, dce: p4runtime_pb2.DirectCounterEntry):
    targets = _direct_targets(state, dce.table_entry, "has_direct_counter", "direct counter")

    def gen():
        for table, entries in targets:
            for entry in entries:
                ent = p4runtime_pb2.Entity()
                out = ent.direct_counter_entry
                out.table_entry.CopyFrom(table_entry_to_proto(state, table, entry))
                out.data.packet_count = entry.packets
                out.data.byte_count = entry.bytes
                yield ent
    return gen()


def _read_direct_meters(state: SwitchState, dme: p4runtime_pb2.DirectMeterEntry):
    if dme.HasField("counter_data"):
        raise unimplemented("per-color meter counters are not supported")
    targets = _direct_targets(state, dme.table_entry, "direct_meter_id", "direct meter")

    def gen():
        for table, entries in targets:
            for entry in entries:
                ent = p4runtime_pb2.Entity()
                out = ent.direct_meter_entry
                out.table_entry.CopyFrom(table_entry_to_proto(state, table, entry))
                if entry.meter_config is not None:
                    meter_config_to_proto(entry.meter_config, out.config)
                yield ent
    return gen()


def _indexed_targets(objects: dict, object_id: int, msg, kind: str) -> list:
    """(object, indexes) pairs a read of an indexed extern asks for: every cell of every object
    for id 0 (the spec's wildcard), else the one object, at one index or all of them."""
    if object_id == 0:
        return [(o, range(o.size)) for o in objects.values()]
    obj = objects.get(object_id)
    if obj is None:
        raise invalid(f"unknown {kind} id {object_id}")
    return [(obj, _index(msg, obj.size, f"{kind} {obj.name}"))]


def _read_counters(state: SwitchState, ce: p4runtime_pb2.CounterEntry):
    targets = _indexed_targets(state.counters, ce.counter_id, ce, "counter")

    def gen():
        for ctr, cells in targets:
            for i in cells:
                ent = p4runtime_pb2.Entity()
                out = ent.counter_entry
                out.counter_id = ctr.id
                out.index.index = i
                out.data.packet_count = ctr.packets[i]
                out.data.byte_count = ctr.bytes[i]
                yield ent
    return gen()


def _read_meters(state: SwitchState, me: p4runtime_pb2.MeterEntry):
    if me.HasField("counter_data"):
        raise unimplemented("per-color meter counters are not supported")
    targets = _indexed_targets(state.meters, me.meter_id, me, "meter")

    def gen():
        for meter, cells in targets:
            for i in cells:
                ent = p4runtime_pb2.Entity()
                out = ent.meter_entry
                out.meter_id = meter.id
                out.index.index = i
                cfg = meter.configs[i]
                if cfg is not None:
                    meter_config_to_proto(cfg, out.config)
                yield ent
    return gen()


def _read_registers(state: SwitchState, re: p4runtime_pb2.RegisterEntry):
    targets = _indexed_targets(state.registers, re.register_id, re, "register")

    def gen():
        for reg, cells in targets:
            for i in cells:
                ent = p4runtime_pb2.Entity()
                out = ent.register_entry
                out.register_id = reg.id
                out.index.index = i
                out.data.bitstring = codec.encode(reg.values[i])
                yield ent
    return gen()


def _read_value_sets(state: SwitchState, vse: p4runtime_pb2.ValueSetEntry):
    if vse.value_set_id == 0:
        targets = list(state.value_sets.values())
    else:
        vs = state.value_sets.get(vse.value_set_id)
        if vs is None:
            raise invalid(f"unknown value set id {vse.value_set_id}")
        targets = [vs]

    def gen():
        for vs in targets:
            ent = p4runtime_pb2.Entity()
            out = ent.value_set_entry
            out.value_set_id = vs.id
            for key in vs.members:
                match_to_proto(vs, key, out.members.add().match)
            yield ent
    return gen()


def _replicas_to_proto(replicas: tuple[ReplicaSpec, ...], out) -> None:
    for r in replicas:
        rep = out.add()
        if r.port_as_bytes:
            rep.port = codec.encode(r.port)
        else:
            rep.egress_port = r.port
        rep.instance = r.instance


def _read_pre(state: SwitchState, pre: p4runtime_pb2.PacketReplicationEngineEntry):
    which = pre.WhichOneof("type")
    if which == "multicast_group_entry":
        gid = pre.multicast_group_entry.multicast_group_id
        groups = sorted(state.pre.groups.values(), key=lambda g: g.group_id)
        picked_g = [g for g in groups if gid in (0, g.group_id)]

        def gen_groups():
            for g in picked_g:
                ent = p4runtime_pb2.Entity()
                out = ent.packet_replication_engine_entry.multicast_group_entry
                out.multicast_group_id = g.group_id
                _replicas_to_proto(g.replicas, out.replicas)
                out.metadata = g.metadata
                yield ent
        return gen_groups()
    if which == "clone_session_entry":
        sid = pre.clone_session_entry.session_id
        sessions = sorted(state.pre.sessions.values(), key=lambda s: s.session_id)
        picked_s = [s for s in sessions if sid in (0, s.session_id)]

        def gen_sessions():
            for s in picked_s:
                ent = p4runtime_pb2.Entity()
                out = ent.packet_replication_engine_entry.clone_session_entry
                out.session_id = s.session_id
                _replicas_to_proto(s.replicas, out.replicas)
                out.class_of_service = s.class_of_service
                out.packet_length_bytes = s.packet_length_bytes
                yield ent
        return gen_sessions()
    raise invalid("PacketReplicationEngineEntry read needs multicast_group_entry or clone_session_entry")


def _read_digests(state: SwitchState, de: p4runtime_pb2.DigestEntry):
    if de.digest_id and de.digest_id not in state.digests.types:
        raise invalid(f"unknown digest id {de.digest_id}")
    picked = [(i, c) for i, c in sorted(state.digests.configs.items()) if de.digest_id in (0, i)]

    def gen():
        for digest_id, c in picked:
            ent = p4runtime_pb2.Entity()
            out = ent.digest_entry
            out.digest_id = digest_id
            out.config.max_timeout_ns = c.max_timeout_ns
            out.config.max_list_size = c.max_list_size
            out.config.ack_timeout_ns = c.ack_timeout_ns
            yield ent
    return gen()


def _profiles_for(state: SwitchState, profile_id: int) -> list[ActionProfile]:
    if profile_id == 0:
        return list(state.action_profiles.values())
    ap = state.action_profiles.get(profile_id)
    if ap is None:
        raise invalid(f"unknown action profile id {profile_id}")
    return [ap]


def _read_ap_members(state: SwitchState, apm: p4runtime_pb2.ActionProfileMember):
    picked = [(ap, m) for ap in _profiles_for(state, apm.action_profile_id)
              for m in sorted(ap.members.values(), key=lambda m: m.id)
              if not m.hidden and apm.member_id in (0, m.id)]

    def gen():
        for ap, m in picked:
            ent = p4runtime_pb2.Entity()
            out = ent.action_profile_member
            out.action_profile_id = ap.id
            out.member_id = m.id
            action_to_proto(state, m.action, out.action)
            yield ent
    return gen()


def _read_ap_groups(state: SwitchState, apg: p4runtime_pb2.ActionProfileGroup):
    picked = [(ap, g, dict(g.members)) for ap in _profiles_for(state, apg.action_profile_id)
              for g in sorted(ap.groups.values(), key=lambda g: g.id)
              if not g.hidden and apg.group_id in (0, g.id)]

    def gen():
        for ap, g, members in picked:
            ent = p4runtime_pb2.Entity()
            out = ent.action_profile_group
            out.action_profile_id = ap.id
            out.group_id = g.id
            out.max_size = g.max_size
            for mid, ms in sorted(members.items()):
                _membership_to_proto(mid, ms, out.members.add())
            yield ent
    return gen()


_READERS = {
    "table_entry": _read_table_entries,
    "direct_counter_entry": _read_direct_counters,
    "direct_meter_entry": _read_direct_meters,
    "counter_entry": _read_counters,
    "meter_entry": _read_meters,
    "register_entry": _read_registers,
    "value_set_entry": _read_value_sets,
    "packet_replication_engine_entry": _read_pre,
    "digest_entry": _read_digests,
    "action_profile_member": _read_ap_members,
    "action_profile_group": _read_ap_groups,
}


def read_entity(state: SwitchState, entity: p4runtime_pb2.Entity) -> Iterator[p4runtime_pb2.Entity]:
    """Validate one read request now (raising P4RTError) and return an iterator over its results.

    The set of entries is snapshotted under the state lock; protos are built lazily after.
    """
    kind = entity.WhichOneof("entity")
    if kind is None:
        raise invalid("read request entity has no type set")
    reader = _READERS.get(kind)
    if reader is None:
        raise unimplemented(f"{kind} is not supported by this target")
    with state.lock:
        return reader(state, getattr(entity, kind))


def wildcard_read_all() -> list[p4runtime_pb2.Entity]:
    """One wildcard read request per supported entity kind (the whole forwarding state)."""
    out = []
    for kind in _READERS:
        ent = p4runtime_pb2.Entity()
        sub = getattr(ent, kind)
        if kind == "packet_replication_engine_entry":
            ent2 = p4runtime_pb2.Entity()
            ent2.packet_replication_engine_entry.clone_session_entry.SetInParent()
            out.append(ent2)
            sub.multicast_group_entry.SetInParent()
        else:
            sub.SetInParent()
        out.append(ent)
    return out
