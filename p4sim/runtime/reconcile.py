"""RECONCILE_AND_COMMIT: carry a pipeline's control-plane state over into the next pipeline's.

What is carried over is defined by a replay: every entity a wildcard Read of the old state
returns is written into the new state (table entries, action-profile members and groups, PRE
and digest entries as INSERT, the rest as MODIFY, direct counters and meters inside their table
entries, const entries skipped), then the default entries the controller changed. What fails to
write is reported, in replay order, and the server refuses the push when the replay into a
scratch state reports anything.

Action-profile members come first, then groups, then everything else: a group names its
members and a table entry its member or group, so either would be NOT_FOUND before them.
Members are replayed in the order of their BMv2 member handles, not by id: a group's members
are its handles in increasing order and a packet picks one by position, so replaying in handle
order (as simple_switch_grpc does: its reconcile re-adds them as its target lists them) keeps
every group picking the same member for the same packet. One-shot groups are not replayed
themselves: the table entry that made one makes it again.

Indexed externs (counters, meters, registers) are not replayed as one Update per cell: splice.p4
has fifteen 65,536-cell registers, and building, reading back and writing a protobuf message for
each of their ~a million cells took 9.5 s. They are copied array to array instead, with the
same outcome and the same errors, in the same order, as the replay would give; an array whose
cells would not all fit the new pipeline (an id gone, fewer cells, narrower cells, another meter
type) is replayed cell by cell through the Write path as before, so its errors are the Write
path's own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from itertools import compress
from typing import TYPE_CHECKING

from p4.v1 import p4runtime_pb2

from p4sim.runtime import codec, entities
from p4sim.runtime.errors import P4RTError
from p4sim.runtime.tables import MeterConfig

if TYPE_CHECKING:
    from p4sim.runtime.state import SwitchState

log = logging.getLogger(__name__)

Update = p4runtime_pb2.Update
# One step of the replay: an Update, or a bulk copy into the new state returning its errors.
Step = p4runtime_pb2.Update | Callable[["SwitchState"], list[P4RTError]]


def migrate_state(old: SwitchState, new: SwitchState) -> list[P4RTError]:
    """Replay `old`'s control-plane state into `new`; returns what failed, in replay order.

    Program-declared (const) entries are skipped: the new pipeline's loader installs its own.
    """
    steps: list[Step] = []
    requests = entities.wildcard_read_all()
    # Members, then groups, then the table entries that may point at either (see above).
    first = ("action_profile_member", "action_profile_group")
    requests.sort(key=lambda r: first.index(k) if (k := r.WhichOneof("entity")) in first else len(first))
    for request in requests:
        kind = request.WhichOneof("entity")
        if kind in ("direct_counter_entry", "direct_meter_entry"):
            continue  # carried inside the table entries
        snapshot = _SNAPSHOTS.get(kind or "")
        if snapshot is not None:
            with old.lock:
                steps.extend(snapshot(old))
            continue
        if kind == "table_entry":
            request.table_entry.counter_data.SetInParent()
            request.table_entry.meter_config.SetInParent()
        with old.lock:
            found = list(entities.read_entity(old, request))
            if kind == "action_profile_member":
                found.sort(key=lambda e: _first_handle(old, e.action_profile_member))
        for ent in found:
            utype = Update.MODIFY
            if kind == "table_entry":
                if ent.table_entry.is_const:
                    continue
                ent.table_entry.is_const = False
                utype = Update.INSERT
            elif kind in ("packet_replication_engine_entry", "digest_entry", *first):
                utype = Update.INSERT
            steps.append(Update(type=utype, entity=ent))
    for table in old.tables.values():
        if table.default.action != table.initial_default and not table.default_is_const:
            ent = p4runtime_pb2.Entity()
            ent.table_entry.CopyFrom(entities.table_entry_to_proto(old, table, table.default, counter=True))
            steps.append(Update(type=Update.MODIFY, entity=ent))
    errors: list[P4RTError] = []
    with new.lock:
        for step in steps:
            if isinstance(step, Update):
                _replay(new, step, errors)
            else:
                errors.extend(step(new))
    return errors


def _first_handle(state: SwitchState, apm: p4runtime_pb2.ActionProfileMember) -> tuple[int, int]:
    """Where a member stands among its profile's: its profile, then its lowest BMv2 handle."""
    member = state.action_profiles[apm.action_profile_id].members[apm.member_id]
    return apm.action_profile_id, min(member.handles)


def _replay(state: SwitchState, update: p4runtime_pb2.Update, errors: list[P4RTError]) -> None:
    try:
        entities.apply_update(state, update)
    except P4RTError as e:
        errors.append(e)


# ---------------------------------------------------------------------------------------------
# indexed externs: a snapshot of the old arrays now, a copy into the new state later
def _snapshot_counters(old: SwitchState) -> list[Step]:
    steps: list[Step] = []
    for ctr in old.counters.values():
        if not (any(ctr.packets) or any(ctr.bytes)):
            continue  # a cell that counted nothing is what a new pipeline's cell starts as
        packets, nbytes = list(ctr.packets), list(ctr.bytes)
        cells = [i for i in range(len(packets)) if packets[i] or nbytes[i]]
        steps.append(lambda new, cid=ctr.id, p=packets, b=nbytes, c=cells: _copy_counter(new, cid, p, b, c))
    return steps


def _copy_counter(new: SwitchState, counter_id: int, packets: list[int], nbytes: list[int],
                  cells: list[int]) -> list[P4RTError]:
    target = new.counters.get(counter_id)
    if target is None or cells[-1] >= target.size or min(packets) < 0 or min(nbytes) < 0:
        errors: list[P4RTError] = []
        for i in cells:
            ent = p4runtime_pb2.Entity()
            ce = ent.counter_entry
            ce.counter_id, ce.index.index = counter_id, i
            ce.data.packet_count, ce.data.byte_count = packets[i], nbytes[i]
            _replay(new, Update(type=Update.MODIFY, entity=ent), errors)
        return errors
    dst_packets, dst_bytes = target.packets, target.bytes
    for i in cells:
        dst_packets[i] = packets[i]
        dst_bytes[i] = nbytes[i]
    return []


def _snapshot_registers(old: SwitchState) -> list[Step]:
    steps: list[Step] = []
    for reg in old.registers.values():
        if not any(reg.values):
            continue  # zero cells are what a new pipeline's cells start as
        values = list(reg.values)
        cells = list(compress(range(len(values)), values))
        steps.append(lambda new, rid=reg.id, v=values, c=cells: _copy_register(new, rid, v, c))
    return steps


def _copy_register(new: SwitchState, register_id: int, values: list[int], cells: list[int]) -> list[P4RTError]:
    target = new.registers.get(register_id)
    if (target is None or target.bitwidth == 0 or cells[-1] >= target.size
            or min(values) < 0 or max(values) > target.mask):
        # Some cell would not fit: the Write path says which, and how.
        errors: list[P4RTError] = []
        for i in cells:
            ent = p4runtime_pb2.Entity()
            re = ent.register_entry
            re.register_id, re.index.index = register_id, i
            re.data.bitstring = codec.encode(values[i])
            _replay(new, Update(type=Update.MODIFY, entity=ent), errors)
        return errors
    dst = target.values
    for i in cells:
        dst[i] = values[i]
    return []


def _snapshot_meters(old: SwitchState) -> list[Step]:
    # Every cell is replayed, configured or not (a MODIFY without a config resets a cell to
    # "every packet GREEN" and its state), so a meter the new pipeline lacks or makes smaller
    # fails the replay even where nothing was configured.
    return [lambda new, mid=m.id, size=m.size, cfgs=list(m.configs): _copy_meter(new, mid, size, cfgs)
            for m in old.meters.values()]


def _meter_update(meter_id: int, index: int, cfg: MeterConfig | None) -> p4runtime_pb2.Update:
    ent = p4runtime_pb2.Entity()
    me = ent.meter_entry
    me.meter_id, me.index.index = meter_id, index
    if cfg is not None:
        entities.meter_config_to_proto(cfg, me.config)
    return Update(type=Update.MODIFY, entity=ent)


def _copy_meter(new: SwitchState, meter_id: int, size: int, configs: list[MeterConfig | None]) -> list[P4RTError]:
    errors: list[P4RTError] = []
    target = new.meters.get(meter_id)
    if target is None or size > target.size:
        for i, cfg in enumerate(configs):
            _replay(new, _meter_update(meter_id, i, cfg), errors)
        return errors
    # Cells without a config cannot fail: reset here; the configured ones (set one by one by a
    # controller, so few) go through the Write path, which checks them against the new meter's
    # type and leaves a cell it refuses as it was.
    configured = [i for i, cfg in enumerate(configs) if cfg is not None]
    if not configured:
        target.configs[:size] = [None] * size
        target.states[:size] = [None] * size
        return errors
    dst_configs, dst_states = target.configs, target.states
    for i, cfg in enumerate(configs):
        if cfg is None:
            dst_configs[i] = dst_states[i] = None
    for i in configured:
        _replay(new, _meter_update(meter_id, i, configs[i]), errors)
    return errors


_SNAPSHOTS: dict[str, Callable[[SwitchState], list[Step]]] = {
    "counter_entry": _snapshot_counters,
    "meter_entry": _snapshot_meters,
    "register_entry": _snapshot_registers,
}
