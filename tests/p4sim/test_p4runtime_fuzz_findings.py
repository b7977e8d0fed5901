"""What fuzzing the P4Runtime server (tests/fuzz/test_fuzz_p4runtime.py) found, one case each.

* a write refused for a negative counter value had already changed its entry: an INSERT left the
  entry in the table, a MODIFY its new action, a default-entry MODIFY the new default action;
* a MODIFY without an action (spec: the action stays, and the update is a no-op but for the
  direct resources) reset the entry's controller_metadata, metadata and idle timeout;
* a read of every table's default entry (table_id 0, is_default_action) returned every table's
  other entries instead (BMv2 returns the default entries);
* p4sim's own Write decoder (wire.py) read a bool varint of 2**64 as true where protobuf keeps its
  low 64 bits (false), and took tags and lengths longer than five bytes, which protobuf (and so
  BMv2) refuses as corrupt: such a request was applied instead of answering INTERNAL;
* a damaged p4sim device config (well-formed JSON with a number, list or other node where the
  elaborator expects another) failed SetForwardingPipelineConfig with UNKNOWN (an exception out
  of the handler), not INVALID_ARGUMENT;
* a P4Info with a negative bit width did the same (``1 << width`` in the middle of building the
  state), and one with a counter, meter or register array of 2**31 cells took all the memory of
  the machine (a list of that many cells, made on VERIFY already).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf.internal import encoder
from google.rpc import code_pb2
from p4.v1 import p4runtime_pb2

from p4sim.compiler.driver import CompiledProgram, compile_file
from p4sim.dataplane.device import P4SimDevice
from p4sim.runtime import entities, wire
from p4sim.runtime.device import NullDevice, PipelineConfigError
from p4sim.runtime.errors import P4RTError
from p4sim.runtime.server import P4RuntimeServer
from p4sim.runtime.state import SwitchState
from tests.p4sim.test_p4runtime_server import (
    DEVICE_ID,
    DROP,
    EXACT_T,
    LPM_T,
    NOACTION,
    SET_PORT,
    Client,
    load_p4info,
    lpm,
    mac_entry,
    table_entry,
    upd,
)

U = p4runtime_pb2.Update
PROGRAM = Path(__file__).parent / "programs" / "grpc_cpu_learn.p4"


def _state() -> SwitchState:
    return SwitchState(load_p4info())


def _read(state: SwitchState, ent: p4runtime_pb2.Entity) -> list[p4runtime_pb2.Entity]:
    return list(entities.read_entity(state, ent))


def _refused(state: SwitchState, update: p4runtime_pb2.Update) -> int:
    with pytest.raises(P4RTError) as err:
        entities.apply_update(state, update)
    return err.value.code


# -- a refused write changes nothing --------------------------------------------------------------
def test_an_insert_refused_for_a_negative_count_leaves_no_entry() -> None:
    state = _state()
    bad = mac_entry(1, 1, counter_data=p4runtime_pb2.CounterData(packet_count=-1))
    assert _refused(state, upd(U.INSERT, bad)) == code_pb2.INVALID_ARGUMENT
    assert _read(state, table_entry(EXACT_T)) == []
    entities.apply_update(state, upd(U.INSERT, mac_entry(1, 1)))  # so not ALREADY_EXISTS


def test_a_modify_refused_for_a_negative_count_keeps_the_action() -> None:
    state = _state()
    entities.apply_update(state, upd(U.INSERT, mac_entry(1, 1, out_port=b"\x01")))
    bad = mac_entry(1, 1, out_port=b"\x07", counter_data=p4runtime_pb2.CounterData(byte_count=-5))
    assert _refused(state, upd(U.MODIFY, bad)) == code_pb2.INVALID_ARGUMENT
    (got,) = _read(state, table_entry(EXACT_T))
    assert got.table_entry.action.action.params[0].value == b"\x01"


def test_a_default_entry_modify_refused_for_a_negative_count_keeps_the_default() -> None:
    state = _state()
    bad = table_entry(EXACT_T, is_default_action=True, action_id=DROP, controller_metadata=9,
                      counter_data=p4runtime_pb2.CounterData(packet_count=-1))
    assert _refused(state, upd(U.MODIFY, bad)) == code_pb2.INVALID_ARGUMENT
    (got,) = _read(state, table_entry(EXACT_T, is_default_action=True))
    assert got.table_entry.action.action.action_id == NOACTION
    assert got.table_entry.controller_metadata == 0


# -- a MODIFY without an action ---------------------------------------------------------------------
def test_a_modify_without_an_action_changes_only_direct_resources() -> None:
    state = _state()
    entities.apply_update(state, upd(U.INSERT, mac_entry(1, 1, controller_metadata=5, metadata=b"cookie",
                                                         idle_timeout_ns=10**12)))
    counter_only = mac_entry(1, 1, counter_data=p4runtime_pb2.CounterData(packet_count=3, byte_count=300))
    counter_only.table_entry.ClearField("action")
    entities.apply_update(state, upd(U.MODIFY, counter_only))
    req = table_entry(EXACT_T)
    req.table_entry.counter_data.SetInParent()
    (got,) = _read(state, req)
    te = got.table_entry
    assert (te.controller_metadata, te.metadata, te.idle_timeout_ns) == (5, b"cookie", 10**12)
    assert (te.counter_data.packet_count, te.counter_data.byte_count) == (3, 300)
    entities.apply_update(state, upd(U.MODIFY, mac_entry(1, 1, out_port=b"\x02")))  # with one: all of it
    (got,) = _read(state, req)
    te = got.table_entry
    assert (te.controller_metadata, te.metadata, te.idle_timeout_ns) == (0, b"", 0)
    assert te.counter_data.packet_count == 3  # unset counter_data: the counter stays


# -- every table's default entry ------------------------------------------------------------------------
def test_a_read_of_every_default_entry_returns_the_default_entries() -> None:
    state = _state()
    entities.apply_update(state, upd(U.INSERT, mac_entry(1, 1)))
    entities.apply_update(state, upd(U.INSERT, table_entry(LPM_T, [lpm(1, b"\x0a\x00\x00\x00", 8)], DROP)))
    entities.apply_update(state, upd(U.MODIFY, table_entry(LPM_T, is_default_action=True, action_id=DROP)))
    req = table_entry(0, is_default_action=True)
    for got in (_read(state, req),  # and as the server reads it, from the wire
                [p4runtime_pb2.Entity.FromString(b) for b in wire.read_entity_encoded(state, req)]):
        assert len(got) == len(state.tables)
        assert all(e.table_entry.is_default_action and not len(e.table_entry.match) for e in got)
        assert {e.table_entry.table_id: e.table_entry.action.action.action_id for e in got}[LPM_T] == DROP
    dce = p4runtime_pb2.Entity()
    dce.direct_counter_entry.table_entry.is_default_action = True
    (got,) = _read(state, dce)  # exact_tbl is the one table with a direct counter
    assert got.direct_counter_entry.table_entry.is_default_action
    assert got.direct_counter_entry.table_entry.table_id == EXACT_T


# -- p4sim's Write decoder reads what protobuf reads --------------------------------------------------
def _field(number: int, wire_type: int, payload: bytes) -> bytes:
    tag = encoder._VarintBytes(number << 3 | wire_type)
    return tag + (encoder._VarintBytes(len(payload)) + payload if wire_type == 2 else payload)


def _write_request(te: bytes, tag_of_updates: bytes | None = None) -> bytes:
    update = _field(1, 0, b"\x01") + _field(2, 2, _field(2, 2, te))  # INSERT, entity { table_entry }
    updates = (tag_of_updates or encoder._VarintBytes(4 << 3 | 2)) + encoder._VarintBytes(len(update)) + update
    return _field(1, 0, encoder._VarintBytes(DEVICE_ID)) + updates


def test_a_bool_varint_of_2_to_the_64_is_false_as_protobuf_reads_it() -> None:
    te = mac_entry(1, 1).table_entry.SerializeToString()
    two_to_the_64 = b"\x80" * 9 + b"\x02"
    raw = _write_request(te + _field(8, 0, two_to_the_64) + _field(13, 0, two_to_the_64))  # is_default_action, is_const
    pb = p4runtime_pb2.WriteRequest.FromString(raw).updates[0].entity.table_entry
    assert not pb.is_default_action and not pb.is_const
    (tw,) = wire.decode_write_request(raw).updates
    assert isinstance(tw, entities.TableWrite)
    assert not tw.is_default_action and not tw.is_const
    entities.apply_write(_state(), tw)  # a plain entry, taken


def _padded(n: int, size: int) -> bytes:
    """n as a varint of `size` bytes (continuation bytes with nothing in them)."""
    out = bytearray(encoder._VarintBytes(n))
    out[-1] |= 0x80
    out += b"\x80" * (size - len(out) - 1) + b"\x00"
    return bytes(out)


@pytest.mark.parametrize("where", ["request tag", "table entry tag", "entity length"])
def test_a_tag_or_length_longer_than_five_bytes_is_left_to_protobuf(where: str) -> None:
    te = mac_entry(1, 1).table_entry.SerializeToString()
    if where == "request tag":
        raw = _write_request(te, tag_of_updates=_padded(4 << 3 | 2, 6))
    elif where == "table entry tag":
        raw = _write_request(_padded(1 << 3, 6) + te[1:])  # table_id's tag
    else:
        entity = _field(2, 2, te)
        update = _field(1, 0, b"\x01") + b"\x12" + _padded(len(entity), 6) + entity
        raw = _field(1, 0, b"\x01") + _field(4, 2, update)
    assert p4runtime_pb2.WriteRequest.FromString(_write_request(te))  # the same, well spelled
    with pytest.raises(Exception, match="parsing"):  # protobuf: "Error parsing message"
        p4runtime_pb2.WriteRequest.FromString(raw)
    with pytest.raises(wire.Fallback):
        wire.decode_write_request(raw)


@pytest.fixture
def server() -> Iterator[str]:
    srv = P4RuntimeServer(NullDevice(), address="127.0.0.1:0", device_id=DEVICE_ID).start()
    yield f"127.0.0.1:{srv.port}"
    srv.stop(grace=0.2)


def test_the_server_answers_internal_to_a_write_with_a_six_byte_tag(server: str) -> None:
    client = Client(server, (0, 1))
    try:
        assert client.status() == code_pb2.OK
        client.set_pipeline()
        te = mac_entry(1, 1).table_entry.SerializeToString()
        raw = _write_request(_padded(1 << 3, 6) + te[1:]) + _field(3, 2, _field(2, 0, b"\x01"))  # election_id.low 1
        call = client.channel.unary_unary("/p4.v1.P4Runtime/Write", request_serializer=None,
                                          response_deserializer=None)
        with pytest.raises(grpc.RpcError) as err:
            call(raw, timeout=10)
        assert err.value.code() == grpc.StatusCode.INTERNAL
        assert client.read(table_entry(EXACT_T)) == []
    finally:
        client.close()


# -- pipeline configs that cannot be realized ---------------------------------------------------------
@pytest.fixture(scope="module")
def program() -> CompiledProgram:
    return compile_file(PROGRAM)


def _damaged(config: bytes, decl: int, key: str, value: object) -> bytes:
    doc = json.loads(config)
    doc["program"]["decls"][decl][key] = value
    return json.dumps(doc).encode()


@pytest.mark.parametrize("decl, key, value", [
    (0, "members", 7),  # error { ... } with a number for its members
    (1, "name", []),  # an extern named by a list
    (4, "annotations", "x"),  # an action's annotations a string
])
def test_a_damaged_device_config_is_refused_as_one_that_cannot_be_realized(
        program: CompiledProgram, decl: int, key: str, value: object) -> None:
    device = P4SimDevice(lambda port, frame: None, 255)
    with pytest.raises(PipelineConfigError, match="damaged"):
        device.verify_pipeline(program.p4info, _damaged(program.device_config, decl, key, value))
    device.verify_pipeline(program.p4info, program.device_config)  # the device is none the worse


@pytest.mark.parametrize("where, match", [
    ("match field", "negative bit width"), ("action param", "negative bit width"),
    ("register", "negative bit width"), ("packet metadata", "negative bit width"),
    ("wide register", "p4sim takes up to"), ("wide match field", "p4sim takes up to"),
    ("counter cells", "p4sim holds up to"), ("register cells", "negative size"), ("table size", "negative size"),
])
def test_bit_widths_and_sizes_a_state_cannot_hold_are_refused(where: str, match: str) -> None:
    p4info = load_p4info()
    if where == "match field":
        p4info.tables[0].match_fields[0].bitwidth = -1
    elif where == "action param":
        next(a for a in p4info.actions if a.preamble.id == SET_PORT).params[0].bitwidth = -9
    elif where == "register":
        p4info.registers[0].type_spec.bitstring.bit.bitwidth = -32
    elif where == "packet metadata":
        p4info.controller_packet_metadata[0].metadata[0].bitwidth = -(2**31)
    elif where == "wide register":  # a mask of 2**31 bits is a 256 MB number
        p4info.registers[0].type_spec.bitstring.bit.bitwidth = 2**31 - 1
    elif where == "wide match field":
        p4info.tables[0].match_fields[0].bitwidth = 2**20
    elif where == "counter cells":  # a list of 2**40 counts: no memory for that
        p4info.counters[0].size = 2**40
    elif where == "register cells":
        p4info.registers[0].size = -1
    else:
        p4info.tables[0].size = -5
    with pytest.raises(PipelineConfigError, match=match):
        SwitchState(p4info)
