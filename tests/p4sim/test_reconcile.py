"""RECONCILE_AND_COMMIT's carry-over (p4sim.runtime.reconcile.migrate_state) against the replay
it stands for: every entity a wildcard Read of the old state returns, written into the new state
one Update at a time (what p4sim did before counters, meters and registers were copied array to
array). Same new state, same errors in the same order, whatever the new P4Info drops or shrinks.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from google.protobuf import text_format
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from p4.config.v1 import p4info_pb2
from p4.v1 import p4runtime_pb2

from p4sim.runtime import entities
from p4sim.runtime.errors import P4RTError
from p4sim.runtime.reconcile import migrate_state
from p4sim.runtime.state import SwitchState
from p4sim.runtime.tables import MeterConfig

P4INFO = Path(__file__).parent / "p4info" / "runtime_test.p4info.txtpb"
COUNTER, METER, REG = 302000001, 335544321, 369098753
REG8, REG_BOOL, METER2 = 369098754, 369098755, 335544322
U = p4runtime_pb2.Update
MeterType = p4info_pb2.MeterSpec.Type


def base_p4info() -> p4info_pb2.P4Info:
    """The server tests' P4Info with two more registers (bit<8>, bool) and a second meter."""
    p4info = text_format.Parse(P4INFO.read_text(), p4info_pb2.P4Info())
    r8 = p4info.registers.add()
    r8.preamble.id, r8.preamble.name, r8.size = REG8, "MyIngress.reg8", 32
    r8.type_spec.bitstring.bit.bitwidth = 8
    rb = p4info.registers.add()
    rb.preamble.id, rb.preamble.name, rb.size = REG_BOOL, "MyIngress.flags", 8
    rb.type_spec.bool.SetInParent()
    m2 = p4info.meters.add()
    m2.preamble.id, m2.preamble.name, m2.size = METER2, "MyIngress.m2", 6
    m2.spec.unit = p4info_pb2.MeterSpec.PACKETS
    m2.spec.type = MeterType.SINGLE_RATE_THREE_COLOR
    return p4info


def _bool_to_bit8(reg: p4info_pb2.Register) -> None:
    reg.type_spec.bitstring.bit.bitwidth = 8


# What the new pipeline changes: (P4Info group, object id, what to do to the object; None drops it).
CHANGES = {
    "same": ("registers", REG, lambda o: None),
    "register gone": ("registers", REG, None),
    "register smaller": ("registers", REG, lambda o: setattr(o, "size", 5)),
    "register larger": ("registers", REG8, lambda o: setattr(o, "size", 100)),
    "register narrower": ("registers", REG, lambda o: setattr(o.type_spec.bitstring.bit, "bitwidth", 12)),
    "register of nibbles": ("registers", REG8, lambda o: setattr(o.type_spec.bitstring.bit, "bitwidth", 4)),
    "register wider": ("registers", REG8, lambda o: setattr(o.type_spec.bitstring.bit, "bitwidth", 16)),
    "register of structs": ("registers", REG8, lambda o: o.type_spec.struct.SetInParent()),
    "bool register as bit<8>": ("registers", REG_BOOL, _bool_to_bit8),
    "counter gone": ("counters", COUNTER, None),
    "counter smaller": ("counters", COUNTER, lambda o: setattr(o, "size", 3)),
    "meter gone": ("meters", METER, None),
    "meter smaller": ("meters", METER, lambda o: setattr(o, "size", 2)),
    "meter larger": ("meters", METER2, lambda o: setattr(o, "size", 9)),
    "meter single-rate": ("meters", METER, lambda o: setattr(o.spec, "type", MeterType.SINGLE_RATE_TWO_COLOR)),
    "meter two-rate": ("meters", METER2, lambda o: setattr(o.spec, "type", MeterType.TWO_RATE_THREE_COLOR)),
}


def changed_p4info(*names: str) -> p4info_pb2.P4Info:
    """The base P4Info with these CHANGES (one to an object already dropped does nothing)."""
    p4info = base_p4info()
    for name in names:
        group_name, object_id, change = CHANGES[name]
        group = getattr(p4info, group_name)
        for i, obj in enumerate(group):
            if obj.preamble.id == object_id:
                if change is None:
                    del group[i]
                else:
                    change(obj)
                break
    return p4info


def replay_cell_by_cell(old: SwitchState, new: SwitchState) -> list[P4RTError]:
    """The reference: p4sim's RECONCILE_AND_COMMIT replay as it was, one Update per entity read."""
    errors: list[P4RTError] = []
    updates: list[p4runtime_pb2.Update] = []
    for request in entities.wildcard_read_all():
        kind = request.WhichOneof("entity")
        if kind in ("direct_counter_entry", "direct_meter_entry"):
            continue
        if kind == "table_entry":
            request.table_entry.counter_data.SetInParent()
            request.table_entry.meter_config.SetInParent()
        for ent in list(entities.read_entity(old, request)):
            if kind == "register_entry" and not ent.register_entry.data.bitstring.strip(b"\x00"):
                continue
            if kind == "counter_entry" and not (ent.counter_entry.data.byte_count or ent.counter_entry.data.packet_count):
                continue
            utype = U.MODIFY
            if kind == "table_entry":
                if ent.table_entry.is_const:
                    continue
                utype = U.INSERT
            elif kind in ("packet_replication_engine_entry", "digest_entry"):
                utype = U.INSERT
            updates.append(U(type=utype, entity=ent))
    for table in old.tables.values():
        if table.default.action != table.initial_default and not table.default_is_const:
            ent = p4runtime_pb2.Entity()
            ent.table_entry.CopyFrom(entities.table_entry_to_proto(old, table, table.default, counter=True))
            updates.append(U(type=U.MODIFY, entity=ent))
    for update in updates:
        try:
            entities.apply_update(new, update)
        except P4RTError as e:
            errors.append(e)
    return errors


def running_state(p4info: p4info_pb2.P4Info) -> SwitchState:
    """A new pipeline's state as the commit finds it: the device runs it already, so the data
    plane may have written cells and started meters before the carry-over reaches them."""
    state = SwitchState(p4info)
    for reg in state.registers.values():
        reg.values[1::3] = [1] * len(reg.values[1::3])
    for ctr in state.counters.values():
        ctr.packets[::2] = [1] * len(ctr.packets[::2])
    for meter in state.meters.values():
        meter.states[:] = ["running"] * meter.size
    return state


def extern_cells(state: SwitchState) -> dict:
    """Everything the copy touches, comparable with ==."""
    return {
        "registers": {r.id: list(r.values) for r in state.registers.values()},
        "counters": {c.id: (list(c.packets), list(c.bytes)) for c in state.counters.values()},
        "meters": {m.id: (list(m.configs), list(m.states)) for m in state.meters.values()},
    }


def table_entries(state: SwitchState) -> list[bytes]:
    request = p4runtime_pb2.Entity()
    request.table_entry.counter_data.SetInParent()
    return sorted(e.SerializeToString(deterministic=True) for e in entities.read_entity(state, request))


def meter_configs(kind: int) -> st.SearchStrategy[MeterConfig | None]:
    rate = st.integers(0, 5)
    if kind == MeterType.TWO_RATE_THREE_COLOR:
        cfg = st.builds(MeterConfig, rate, rate, rate, rate, st.just(0))
    else:
        cfg = st.builds(lambda c, b, e: MeterConfig(c, b, c, b, e), rate, rate, rate)
    return st.none() | st.none() | cfg


@st.composite
def old_states(draw: st.DrawFn) -> SwitchState:
    """The base pipeline's state with some cells written (zeros among them) and a table entry."""
    state = SwitchState(base_p4info())
    for reg in state.registers.values():
        for i in draw(st.lists(st.integers(0, reg.size - 1), max_size=6)):
            reg.values[i] = draw(st.sampled_from([0, 1, reg.mask, reg.mask >> 1, 0x1FF & reg.mask])
                                 | st.integers(0, reg.mask))
    for ctr in state.counters.values():
        for i in draw(st.lists(st.integers(0, ctr.size - 1), max_size=4)):
            ctr.packets[i], ctr.bytes[i] = draw(st.integers(0, 3)), draw(st.integers(0, 3000))
    for meter in state.meters.values():
        for i in draw(st.lists(st.integers(0, meter.size - 1), max_size=4)):
            meter.set_config(i, draw(meter_configs(meter.type)))
            meter.states[i] = "buckets"  # what the data plane keeps; never carried over
    if draw(st.booleans()):
        ent = p4runtime_pb2.Entity()
        te = ent.table_entry
        te.table_id = 33554433  # exact_tbl: its direct counter is carried in the entry
        te.match.add(field_id=1).exact.value = b"\x0a"
        te.match.add(field_id=2).exact.value = b"\x01"
        te.action.action.action_id = 16777218  # drop
        te.counter_data.packet_count = 7
        entities.apply_update(state, U(type=U.INSERT, entity=ent))
    return state


def _errors(errs: list[P4RTError]) -> list[tuple[int, str]]:
    return [(e.code, e.message) for e in errs]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(old=old_states(), changes=st.lists(st.sampled_from(sorted(CHANGES)), min_size=1, max_size=3, unique=True))
def test_carry_over_is_the_cell_by_cell_replay(old: SwitchState, changes: list[str]) -> None:
    p4info = changed_p4info(*changes)
    fast, reference = running_state(p4info), running_state(p4info)
    got = migrate_state(old, fast)
    want = replay_cell_by_cell(old, reference)
    assert _errors(got) == _errors(want)
    assert extern_cells(fast) == extern_cells(reference)
    assert table_entries(fast) == table_entries(reference)


def assert_same_carry_over(old: SwitchState, p4info: p4info_pb2.P4Info) -> list[tuple[int, str]]:
    fast, reference = running_state(p4info), running_state(p4info)
    got = _errors(migrate_state(old, fast))
    assert got == _errors(replay_cell_by_cell(old, reference))
    assert extern_cells(fast) == extern_cells(reference)
    assert table_entries(fast) == table_entries(reference)
    return got


def _resized(group_name: str, object_id: int, size: int) -> p4info_pb2.P4Info:
    p4info = base_p4info()
    next(o for o in getattr(p4info, group_name) if o.preamble.id == object_id).size = size
    return p4info


@pytest.mark.parametrize("cells", [(4,), (5,), (3, 5), (0, 4)])
def test_register_cells_at_the_new_end(cells: tuple[int, ...]) -> None:
    old = SwitchState(base_p4info())
    for i in cells:
        old.registers[REG].values[i] = i + 1
    errors = assert_same_carry_over(old, _resized("registers", REG, 5))
    assert bool(errors) == (max(cells) >= 5)


@pytest.mark.parametrize("value", [15, 16, 30, 31])
def test_register_values_at_the_new_width(value: int) -> None:
    old = SwitchState(base_p4info())
    old.registers[REG8].values[2] = 1
    old.registers[REG8].values[7] = value
    errors = assert_same_carry_over(old, changed_p4info("register of nibbles"))
    assert bool(errors) == (value > 15)


@pytest.mark.parametrize("cell", [2, 3])
def test_counter_cells_at_the_new_end(cell: int) -> None:
    old = SwitchState(base_p4info())
    old.counters[COUNTER].bytes[cell] = 100
    errors = assert_same_carry_over(old, _resized("counters", COUNTER, 3))
    assert bool(errors) == (cell >= 3)


@pytest.mark.parametrize("size", [3, 4])
def test_meter_cells_at_the_new_end(size: int) -> None:
    """Every cell of a meter is replayed: one cell fewer refuses even with nothing configured."""
    errors = assert_same_carry_over(SwitchState(base_p4info()), _resized("meters", METER, size))
    assert bool(errors) == (size < 4)


def test_what_a_reconcile_refuses_and_says() -> None:
    """A few refusals spelled out, so a change in them shows here and not only as a mismatch."""
    old = SwitchState(base_p4info())
    old.registers[REG].values[9] = 0xABCDE
    old.registers[REG].values[3] = 0x10
    old.counters[COUNTER].packets[6] = 1
    new = SwitchState(changed_p4info("register narrower", "register smaller", "counter gone"))
    assert _errors(migrate_state(old, new)) == [
        (3, f"unknown counter id {COUNTER}"),
        (11, "register MyIngress.flow_reg: index 9 >= size 5"),
    ]
    assert new.registers[REG].values == [0, 0, 0, 0x10, 0]  # what fits is copied all the same


def test_a_million_register_cells_carry_over_in_well_under_a_second() -> None:
    """splice.p4's fifteen registers of 65,536 cells, every cell written: the cell-by-cell replay
    took about 9 s of CPU per pass for these (twice per RECONCILE_AND_COMMIT: dry run, commit)."""
    p4info = p4info_pb2.P4Info()
    for n in range(15):
        reg = p4info.registers.add()
        reg.preamble.id, reg.preamble.name, reg.size = REG + n, f"I.hs{n}", 65536
        reg.type_spec.bitstring.bit.bitwidth = 48
    old = SwitchState(p4info)
    for reg in old.registers.values():
        reg.values[:] = range(1, reg.size + 1)
    new = SwitchState(p4info)
    start = time.process_time()  # CPU time: other processes' turns on a shared machine do not count
    errors = migrate_state(old, new)
    spent = time.process_time() - start
    assert errors == []
    assert all(r.values == list(range(1, 65537)) for r in new.registers.values())
    assert spent < 1.0, f"carrying over 983,040 register cells took {spent:.2f} s of CPU"
