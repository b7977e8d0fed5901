"""Write requests decoded from the wire (p4sim.runtime.wire) behave exactly like protobuf-decoded ones.

Each case is a batch of Updates applied twice to fresh states: once as protobuf messages through
entities.apply_update (the reference), once as bytes through wire.decode_write_request and
entities.apply_write (what the server does). Per-update outcomes (code and message) and the
resulting state (a wildcard read) must be identical.
"""

from __future__ import annotations

import pytest
from google.protobuf.internal import encoder
from google.rpc import code_pb2
from p4.v1 import p4data_pb2, p4runtime_pb2

from p4sim.runtime import entities, wire
from p4sim.runtime.errors import P4RTError
from p4sim.runtime.state import SwitchState
from p4sim.runtime.tables import ConstEntry
from tests.p4sim.test_p4runtime_server import (
    ACL_T,
    BIG_T,
    CONST_T,
    DROP,
    EXACT_T,
    LPM_T,
    NOACTION,
    SET_NHOP,
    SET_PORT,
    SMALL_T,
    VRF_T,
    exact,
    load_p4info,
    lpm,
    mac_entry,
    table_entry,
    ternary,
    upd,
)

U = p4runtime_pb2.Update
METER_CFG = p4runtime_pb2.MeterConfig(cir=10, cburst=5, pir=20, pburst=10)


def _state() -> SwitchState:
    st = SwitchState(load_p4info())
    st.add_const_entries(CONST_T, [ConstEntry((1,), DROP)])
    return st


def _outcome(fn) -> tuple[int, str]:
    try:
        fn()
    except P4RTError as e:
        return e.code, e.message
    return code_pb2.OK, ""


def _dump(state: SwitchState) -> list[bytes]:
    out = []
    for req in entities.wildcard_read_all():
        if req.HasField("table_entry"):
            req.table_entry.counter_data.SetInParent()
            req.table_entry.meter_config.SetInParent()
        out.extend(sorted(e.SerializeToString() for e in entities.read_entity(state, req)))
    return out


def _request(updates: list[p4runtime_pb2.Update]) -> bytes:
    req = p4runtime_pb2.WriteRequest(device_id=1)
    req.election_id.low = 1
    req.updates.extend(updates)
    return req.SerializeToString()


def _check_same(updates: list[p4runtime_pb2.Update], raw: bytes | None = None) -> list[tuple[int, str]]:
    ref, fast = _state(), _state()
    expected = []
    with ref.lock:
        for u in updates:
            expected.append(_outcome(lambda u=u: entities.apply_update(ref, u)))
    batch = wire.decode_write_request(raw if raw is not None else _request(updates))
    cache: entities.ActionCache = {}
    got = []
    with fast.lock:
        for u in batch.updates:
            got.append(_outcome(lambda u=u: entities.apply_write(fast, u, cache)))
    assert got == expected
    assert _dump(fast) == _dump(ref)
    return got


def _acl(prio: int, **kw) -> p4runtime_pb2.Entity:
    return table_entry(ACL_T, [ternary(1, b"\x0a\x00\x00\x00", b"\xff\x00\x00\x00")], SET_PORT, [b"\x01"],
                       priority=prio, **kw)


CASES = {
    "exact inserts, dup, delete, modify": [
        upd(U.INSERT, mac_entry(1, 1)), upd(U.INSERT, mac_entry(1, 1)), upd(U.INSERT, mac_entry(2, 2, b"\x00\x05")),
        upd(U.MODIFY, mac_entry(2, 2, b"\x07")), upd(U.DELETE, mac_entry(1, 1)), upd(U.DELETE, mac_entry(1, 1)),
        upd(U.MODIFY, mac_entry(9, 9))],
    "lpm and vrf": [
        upd(U.INSERT, table_entry(LPM_T, [lpm(1, b"\x0a\x00\x00\x00", 8)], SET_NHOP, [b"\x01", b"\x02"])),
        upd(U.INSERT, table_entry(LPM_T, [lpm(1, b"\x0a\x01\x00\x00", 8)], SET_NHOP, [b"\x01", b"\x02"])),
        upd(U.INSERT, table_entry(LPM_T, [lpm(1, b"\x0a\x00\x00\x00", 0)], SET_NHOP, [b"\x01", b"\x02"])),
        upd(U.INSERT, table_entry(LPM_T, [lpm(1, b"\x0a\x00\x00\x00", 33)], SET_NHOP, [b"\x01", b"\x02"])),
        upd(U.INSERT, table_entry(LPM_T, [lpm(1, b"\x0b\x00\x00\x00", 8)], SET_NHOP, [b"\x01"])),
        upd(U.INSERT, table_entry(LPM_T, [lpm(1, b"\x0c\x00\x00\x00", 8)], SET_NHOP, [b"\x01", b"\x02\x00"])),
        upd(U.INSERT, table_entry(LPM_T, [lpm(1, b"\x0d\x00\x00\x00", 8)], SET_NHOP, [b"\x01", b"\x02"],
                                  meter_config=METER_CFG)),
        upd(U.INSERT, table_entry(VRF_T, [exact(1, b"\x01"), lpm(2, b"\x0a\x00\x00\x00", 8)], SET_PORT, [b"\x01"])),
        upd(U.INSERT, table_entry(VRF_T, [lpm(2, b"\x0a\x00\x00\x00", 8)], SET_PORT, [b"\x01"]))],
    "ternary, range, optional, priorities": [
        upd(U.INSERT, _acl(10)), upd(U.INSERT, _acl(10)), upd(U.INSERT, _acl(20)), upd(U.INSERT, _acl(0)),
        upd(U.INSERT, table_entry(ACL_T, [ternary(1, b"\x0a", b"\x00")], SET_PORT, [b"\x01"], priority=1)),
        upd(U.INSERT, table_entry(ACL_T, [ternary(1, b"\x0b", b"\x0a")], SET_PORT, [b"\x01"], priority=1)),
        upd(U.DELETE, _acl(20)), upd(U.MODIFY, _acl(10, controller_metadata=7, metadata=b"m"))],
    "match errors": [
        upd(U.INSERT, table_entry(EXACT_T, [exact(1, b"\x01")], SET_PORT, [b"\x01"])),
        upd(U.INSERT, table_entry(EXACT_T, [exact(1, b"\x01"), exact(1, b"\x02"), exact(2, b"\x01")], SET_PORT,
                                  [b"\x01"])),
        upd(U.INSERT, table_entry(EXACT_T, [exact(3, b"\x01"), exact(2, b"\x01")], SET_PORT, [b"\x01"])),
        upd(U.INSERT, table_entry(EXACT_T, [exact(1, b""), exact(2, b"\x01")], SET_PORT, [b"\x01"])),
        upd(U.INSERT, table_entry(EXACT_T, [exact(1, b"\x01" * 7), exact(2, b"\x01")], SET_PORT, [b"\x01"])),
        upd(U.INSERT, table_entry(EXACT_T, [lpm(1, b"\x01", 8), exact(2, b"\x01")], SET_PORT, [b"\x01"])),
        upd(U.INSERT, table_entry(EXACT_T, [p4runtime_pb2.FieldMatch(field_id=1), exact(2, b"\x01")], SET_PORT,
                                  [b"\x01"])),
        upd(U.INSERT, table_entry(LPM_T, [lpm(1, b"\x0a\x00\x00\x01", 8)], SET_NHOP, [b"\x01", b"\x02"])),
        upd(U.INSERT, table_entry(999, [exact(1, b"\x01")], SET_PORT, [b"\x01"])),
        upd(U.INSERT, mac_entry(3, 3, priority=5))],
    "action errors and scopes": [
        upd(U.INSERT, mac_entry(1, 1, b"")), upd(U.INSERT, mac_entry(2, 2, b"\x02\x00")),
        upd(U.INSERT, table_entry(EXACT_T, [exact(1, b"\x01"), exact(2, b"\x01")], SET_NHOP, [b"\x01"])),
        upd(U.INSERT, table_entry(EXACT_T, [exact(1, b"\x01"), exact(2, b"\x01")])),
        upd(U.INSERT, table_entry(EXACT_T, [exact(1, b"\x01"), exact(2, b"\x01")], SET_PORT)),
        upd(U.INSERT, table_entry(SMALL_T, [exact(1, b"\x01")], DROP)),
        upd(U.INSERT, table_entry(SMALL_T, [exact(1, b"\x01")], SET_PORT, [b"\x01"])),
        upd(U.INSERT, mac_entry(4, 4)), upd(U.INSERT, mac_entry(5, 5)), upd(U.INSERT, mac_entry(6, 6, b""))],
    "const table, default entry, direct fields, idle": [
        upd(U.INSERT, table_entry(CONST_T, [exact(1, b"\x02")], DROP)),
        upd(U.DELETE, table_entry(CONST_T, [exact(1, b"\x01")])),
        upd(U.MODIFY, table_entry(CONST_T, [exact(1, b"\x01")], NOACTION)),
        upd(U.MODIFY, table_entry(EXACT_T, is_default_action=True, action_id=DROP)),
        upd(U.INSERT, table_entry(EXACT_T, is_default_action=True, action_id=DROP)),
        upd(U.INSERT, mac_entry(7, 7, is_const=True)),
        upd(U.INSERT, mac_entry(8, 8, time_since_last_hit=p4runtime_pb2.TableEntry.IdleTimeout())),
        upd(U.INSERT, mac_entry(9, 9, idle_timeout_ns=1000, counter_data=p4runtime_pb2.CounterData(
            packet_count=3, byte_count=4))),
        upd(U.INSERT, mac_entry(10, 10, meter_config=METER_CFG)),
        upd(U.INSERT, table_entry(BIG_T, [exact(1, b"\x01")], SET_PORT, [b"\x01"], idle_timeout_ns=5)),
        upd(U.INSERT, mac_entry(11, 11, idle_timeout_ns=-1)),
        upd(U.MODIFY, mac_entry(9, 9, b"\x02", idle_timeout_ns=0))],
    "update types and other entities": [
        upd(0, mac_entry(1, 1)), upd(7, mac_entry(1, 1)), p4runtime_pb2.Update(type=U.INSERT),
        upd(U.MODIFY, p4runtime_pb2.Entity(register_entry=p4runtime_pb2.RegisterEntry(
            register_id=369098753, index=p4runtime_pb2.Index(index=2),
            data=p4data_pb2.P4Data(bitstring=b"\x05")))),
        upd(U.INSERT, p4runtime_pb2.Entity(extern_entry=p4runtime_pb2.ExternEntry(extern_type_id=1))),
        upd(U.INSERT, mac_entry(1, 1))],
}


@pytest.mark.parametrize("name", list(CASES))
def test_wire_and_protobuf_paths_agree(name: str) -> None:
    _check_same(CASES[name])


def test_table_writes_take_the_fast_path_and_others_do_not() -> None:
    ups = CASES["update types and other entities"]
    batch = wire.decode_write_request(_request(ups))
    kinds = [type(u).__name__ for u in batch.updates]
    assert kinds == ["WireTableWrite", "WireTableWrite", "Update", "Update", "Update", "WireTableWrite"]
    assert batch.device_id == 1 and batch.election_id == 1 and batch.role == "" and batch.atomicity == 0


def test_same_action_bytes_are_decoded_once_per_batch() -> None:
    batch = wire.decode_write_request(_request([upd(U.INSERT, mac_entry(i, 1)) for i in range(5)]))
    assert len({id(u.action) for u in batch.updates}) == 1


def _field(number: int, wire_type: int, payload: bytes) -> bytes:
    tag = encoder._VarintBytes((number << 3) | wire_type)
    if wire_type == 2:
        return tag + encoder._VarintBytes(len(payload)) + payload
    return tag + payload


def _wrap_te(te_bytes: bytes, utype: int = U.INSERT) -> bytes:
    """An Update carrying hand-made TableEntry bytes."""
    entity = _field(2, 2, te_bytes)
    return _field(1, 0, encoder._VarintBytes(utype)) + _field(2, 2, entity)


def test_unusual_encodings_fall_back_to_protobuf_and_agree() -> None:
    base = mac_entry(1, 1).table_entry.SerializeToString()
    odd = [
        base + _field(1, 0, encoder._VarintBytes(EXACT_T)),  # table_id repeated: last one wins
        base + _field(99, 0, b"\x01"),  # unknown field: ignored by protobuf
        base + _field(4, 0, encoder._VarintBytes((1 << 64) - 1)),  # priority -1 as a varint
        base + _field(3, 2, p4runtime_pb2.TableAction(action=p4runtime_pb2.Action(action_id=DROP))
                      .SerializeToString()),  # action given twice: merged
    ]
    raw_updates = [_wrap_te(b) for b in odd]
    raw = _field(1, 0, b"\x01") + _field(3, 2, _field(2, 0, b"\x01")) + b"".join(
        _field(4, 2, u) for u in raw_updates)
    ups = [p4runtime_pb2.Update.FromString(u) for u in raw_updates]
    batch = wire.decode_write_request(raw)
    assert all(type(u) is p4runtime_pb2.Update for u in batch.updates)
    _check_same(ups, raw)


def test_bad_request_raises_fallback() -> None:
    with pytest.raises(wire.Fallback):
        wire.decode_write_request(b"\x22\x05\x01")  # truncated update
    with pytest.raises(wire.Fallback):
        wire.decode_write_request(_field(7, 0, b"\x01"))  # unknown request field


def _full_state() -> SwitchState:
    st = _state()
    ups = [u for case in CASES.values() for u in case]
    ups += [upd(U.INSERT, table_entry(ACL_T, [ternary(1, b"\x0a\x00\x00\x00", b"\xff\x00\x00\x00"),
                                              _range(2, b"\x00\x10", b"\x00\x20"), _optional(3, b"\x06")],
                                      SET_PORT, [b"\x01"], priority=i + 1, controller_metadata=1 << 63,
                                      metadata=b"\x00meta"))
            for i in range(3)]
    ups += [upd(U.INSERT, table_entry(BIG_T, [exact(1, (k * 7919).to_bytes(4, "big"))], SET_PORT,
                                      [(k % 512).to_bytes(2, "big")])) for k in range(50)]
    ups += [upd(U.INSERT, mac_entry(0, 0, b"\x00")), upd(U.INSERT, mac_entry((1 << 48) - 1, 511, b"\x01\xff",
                                                                             idle_timeout_ns=(1 << 62)))]
    with st.lock:
        for u in ups:
            try:
                entities.apply_update(st, u)
            except P4RTError:
                pass
        for i, entry in enumerate(st.table(EXACT_T)):
            entry.packets, entry.bytes = i * 3, i * 1000  # some zero, some not
    return st


def _range(fid: int, low: bytes, high: bytes) -> p4runtime_pb2.FieldMatch:
    fm = p4runtime_pb2.FieldMatch(field_id=fid)
    fm.range.low, fm.range.high = low, high
    return fm


def _optional(fid: int, value: bytes) -> p4runtime_pb2.FieldMatch:
    fm = p4runtime_pb2.FieldMatch(field_id=fid)
    fm.optional.value = value
    return fm


def test_encoded_table_entries_are_byte_identical_to_protobuf() -> None:
    st = _full_state()
    n = 0
    for table in st.tables.values():
        for entry in table:
            for counter in (False, True):
                ref = entities.table_entry_to_proto(st, table, entry, counter=counter).SerializeToString()
                assert wire.encode_table_entry(st, table, entry, counter, {}) == ref, entry
                n += 1
    assert n > 100


@pytest.mark.parametrize("flags", [(), ("counter_data",), ("meter_config",), ("time_since_last_hit",)])
@pytest.mark.parametrize("table_id", [0, EXACT_T, LPM_T, ACL_T, CONST_T])
def test_encoded_reads_equal_protobuf_reads(table_id: int, flags: tuple[str, ...]) -> None:
    st = _full_state()
    req = p4runtime_pb2.Entity()
    req.table_entry.table_id = table_id
    for f in flags:
        getattr(req.table_entry, f).SetInParent()
    try:
        ref = [e.SerializeToString() for e in entities.read_entity(st, req)]
    except P4RTError as e:
        with pytest.raises(P4RTError) as got:
            list(wire.read_entity_encoded(st, req))
        assert (got.value.code, got.value.message) == (e.code, e.message)
        return
    got_list = list(wire.read_entity_encoded(st, req))
    if "time_since_last_hit" in flags:  # elapsed time differs between two reads: compare the rest
        got_list, ref = _without_elapsed(got_list), _without_elapsed(ref)
    assert got_list == ref
    assert b"".join(wire.read_response_chunks([iter(got_list)], 7)) == b"".join(
        p4runtime_pb2.ReadResponse(entities=[p4runtime_pb2.Entity.FromString(e) for e in ref[i:i + 7]])
        .SerializeToString() for i in range(0, len(ref), 7))


def _without_elapsed(encoded: list[bytes]) -> list[bytes]:
    out = []
    for raw in encoded:
        e = p4runtime_pb2.Entity.FromString(raw)
        if e.table_entry.HasField("time_since_last_hit"):
            e.table_entry.time_since_last_hit.elapsed_ns = 1
        out.append(e.SerializeToString())
    return out


def test_default_entry_and_other_entities_read_through_protobuf() -> None:
    st = _full_state()
    reqs = entities.wildcard_read_all()
    d = p4runtime_pb2.Entity()
    d.table_entry.table_id = EXACT_T
    d.table_entry.is_default_action = True
    for req in [*reqs, d]:
        assert list(wire.read_entity_encoded(st, req)) == [
            e.SerializeToString() for e in entities.read_entity(st, req)]
