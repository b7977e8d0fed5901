"""Tables keyed on a P4 `error` (``key = { standard_metadata.parser_error : exact; }``) over
P4Runtime, as simple_switch_grpc 1.15.5 answers them.

p4c-bm2-ss writes the key into P4Info with no bit width and no type name (type_info lists the
error members): P4Runtime has no encoding for an error value in a FieldMatch (P4Data has one, a
member name, but match values are bytestrings). simple_switch_grpc then refuses every entry: a
value other than zero does not fit in 0 bits (INVALID_ARGUMENT), and one that passes (zero, or the
field omitted as don't care) reaches BMv2 as a key with no bytes for a 32-bit field, which BMv2
refuses (UNKNOWN); MODIFY and DELETE find nothing (NOT_FOUND). The default entry can be written,
and every packet takes it. p4sim answers the same, the table below being what BMv2 answered.

The parity test sends the same writes and frames to simple_switch_grpc and p4sim (skipped, saying
why, when BMv2 or veths are not available).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from google.rpc import code_pb2
from p4.config.v1 import p4info_pb2
from p4.v1 import p4runtime_pb2, p4runtime_pb2_grpc

from p4sim.compiler.driver import CompiledProgram, compile_file
from p4sim.dataplane.device import P4SimDevice
from p4sim.runtime.server import P4RuntimeServer
from tests.p4sim import bmv2run
from tests.p4sim.test_p4runtime_server import Client, batch_errors

PROGRAM = Path(__file__).parent / "programs" / "runtime_error_key.p4"
DEVICE_ID, ELECTION_ID = 1, 1
U = p4runtime_pb2.Update
OK, INVALID, NOT_FOUND, UNKNOWN, OUT_OF_RANGE = (code_pb2.OK, code_pb2.INVALID_ARGUMENT, code_pb2.NOT_FOUND,
                                                 code_pb2.UNKNOWN, code_pb2.OUT_OF_RANGE)
ERRORS = ["NoError", "PacketTooShort", "NoMatch", "StackOutOfBounds", "HeaderTooShort", "ParserTimeout",
          "ParserInvalidArgument", "MyError"]

# (update, table, the error field's match (kind, value) or None to leave it out, priority,
#  the update's canonical code as simple_switch_grpc answered it)
WRITES: list[tuple[int, str, tuple[str, object] | None, int, int]] = [
    (U.INSERT, "I.by_error", ("exact", b"\x00"), 0, UNKNOWN),  # NoError's number: BMv2 cannot add it
    (U.INSERT, "I.by_error", ("exact", b"\x01"), 0, INVALID),  # PacketTooShort's: does not fit in 0 bits
    (U.INSERT, "I.by_error", ("exact", b"\x00\x00\x00\x07"), 0, INVALID),  # MyError's, 32 bits as BMv2 keeps it
    (U.INSERT, "I.by_error", ("exact", b"MyError"), 0, INVALID),  # the member's name (P4Data's encoding)
    (U.INSERT, "I.by_error", None, 0, INVALID),  # an exact field left out
    (U.INSERT, "I.tern_error", None, 10, UNKNOWN),  # don't care: still no entry BMv2 can add
    (U.INSERT, "I.tern_error", ("ternary", (b"\x00", b"\x00")), 10, INVALID),  # a zero mask
    (U.INSERT, "I.tern_error", ("ternary", (b"\x00", b"\x01")), 10, INVALID),
    (U.INSERT, "I.tern_error", ("ternary", (b"\x01", b"\x01")), 10, INVALID),
    (U.INSERT, "I.opt_error", None, 10, UNKNOWN),
    (U.INSERT, "I.opt_error", ("optional", b"\x00"), 10, UNKNOWN),
    (U.INSERT, "I.opt_error", ("optional", b"\x01"), 10, INVALID),
    (U.MODIFY, "I.by_error", ("exact", b"\x00"), 0, NOT_FOUND),
    (U.MODIFY, "I.by_error", ("exact", b"\x01"), 0, INVALID),
    (U.DELETE, "I.by_error", ("exact", b"\x00"), 0, NOT_FOUND),
    (U.DELETE, "I.by_error", ("exact", b"\x07"), 0, INVALID),
    (U.DELETE, "I.tern_error", None, 10, NOT_FOUND),
    (U.DELETE, "I.opt_error", ("optional", b"\x00"), 10, NOT_FOUND),
]
DST = b"\x02\x00\x00\x00\x00\x01"


def _ids(p4info: p4info_pb2.P4Info) -> tuple[dict[str, int], dict[str, int]]:
    return ({t.preamble.name: t.preamble.id for t in p4info.tables},
            {a.preamble.name: a.preamble.id for a in p4info.actions})


def entry(p4info: p4info_pb2.P4Info, table: str, match: tuple[str, object] | None, priority: int,
          port: int = 2) -> p4runtime_pb2.Entity:
    tables, actions = _ids(p4info)
    ent = p4runtime_pb2.Entity()
    te = ent.table_entry
    te.table_id, te.priority = tables[table], priority
    if match is not None:
        kind, value = match
        fm = te.match.add(field_id=1)
        if kind == "exact":
            fm.exact.value = value  # type: ignore[assignment]
        elif kind == "ternary":
            fm.ternary.value, fm.ternary.mask = value  # type: ignore[misc]
        else:
            fm.optional.value = value  # type: ignore[assignment]
    if table != "I.by_error":
        te.match.add(field_id=2).exact.value = DST
    te.action.action.action_id = actions["I.fwd"]
    te.action.action.params.add(param_id=1, value=bytes([port]))
    return ent


def default_entry(p4info: p4info_pb2.P4Info, port: int) -> p4runtime_pb2.Entity:
    ent = entry(p4info, "I.by_error", None, 0, port)
    ent.table_entry.is_default_action = True
    return ent


def write_code(stub: p4runtime_pb2_grpc.P4RuntimeStub, utype: int, ent: p4runtime_pb2.Entity) -> int:
    req = p4runtime_pb2.WriteRequest(device_id=DEVICE_ID)
    req.election_id.low = ELECTION_ID
    req.updates.add(type=utype, entity=ent)
    try:
        stub.Write(req, timeout=30)
    except grpc.RpcError as err:
        ((code, _),) = batch_errors(err)  # the call is UNKNOWN, the update's code in its details
        return code
    return OK


def frame(etype: int) -> bytes:
    return DST + b"\x02\x00\x00\x00\x00\x02" + etype.to_bytes(2, "big") + bytes(range(46))


# parser_error MyError (the parser's verify), then NoError. (No PacketTooShort: a veth takes no
# frame shorter than an Ethernet header, the one header this parser extracts.)
FRAMES = [frame(0x0BAD), frame(0x0800)]


def run_writes_and_frames(stub: p4runtime_pb2_grpc.P4RuntimeStub, p4info: p4info_pb2.P4Info,
                          send: Callable[[list[bytes]], list[list[tuple[int, bytes]]]]
                          ) -> tuple[list[int], list[list[tuple[int, bytes]]]]:
    """Each of WRITES alone, frames through the default entry (NoAction: port 3), the default
    entry set to fwd(2), the frames again; the codes, and what came out for each frame."""
    codes = [write_code(stub, utype, entry(p4info, table, match, prio)) for utype, table, match, prio, _ in WRITES]
    out = send(FRAMES)
    codes.append(write_code(stub, U.MODIFY, default_entry(p4info, 2)))
    out += send(FRAMES)
    read = p4runtime_pb2.ReadRequest(device_id=DEVICE_ID)
    read.entities.add().table_entry.SetInParent()
    codes.append(sum(len(r.entities) for r in stub.Read(read, timeout=30)))  # entries there are: none
    return codes, out


EXPECTED_CODES = [code for *_, code in WRITES] + [OK, 0]
EXPECTED_OUT = [[(3, bmv2run.pad(f))] for f in FRAMES] + [[(2, bmv2run.pad(f))] for f in FRAMES]


@pytest.fixture(scope="module")
def program() -> CompiledProgram:
    return compile_file(PROGRAM)


class P4SimSwitch:
    """p4sim behind its gRPC server, frames sent into the device directly."""

    def __init__(self, program: CompiledProgram) -> None:
        self.sent: list[tuple[int, bytes]] = []
        self.device = P4SimDevice(lambda port, data: self.sent.append((port, data)), 255)
        self.server = P4RuntimeServer(self.device, address="127.0.0.1:0", device_id=DEVICE_ID).start()
        self.client = Client(f"127.0.0.1:{self.server.port}", (0, ELECTION_ID))
        assert self.client.status() == OK
        self.client.set_pipeline(p4info=program.p4info, device_config=program.device_config)

    def send(self, frames: list[bytes]) -> list[list[tuple[int, bytes]]]:
        outs = []
        for data in frames:
            start = len(self.sent)
            self.device.receive(0, data)
            outs.append([(port, bmv2run.pad(d)) for port, d in self.sent[start:]])
        return outs

    def close(self) -> None:
        self.client.close()
        self.server.stop(grace=0.2)


@pytest.fixture
def p4sim_switch(program: CompiledProgram) -> Iterator[P4SimSwitch]:
    switch = P4SimSwitch(program)
    yield switch
    switch.close()


def test_p4info_of_an_error_key_is_p4cs(program: CompiledProgram) -> None:
    """No bit width, no type name: the P4Info p4c-bm2-ss 1.2.5 writes for the program."""
    for table in program.p4info.tables:
        key = table.match_fields[0]
        assert (key.name, key.bitwidth, key.type_name.name) == ("sm.parser_error", 0, "")
    assert list(program.p4info.type_info.error.members) == ERRORS


def test_no_entry_can_be_written_and_packets_take_the_default(program: CompiledProgram,
                                                              p4sim_switch: P4SimSwitch) -> None:
    codes, out = run_writes_and_frames(p4sim_switch.client.stub, program.p4info, p4sim_switch.send)
    assert codes == EXPECTED_CODES
    assert out == EXPECTED_OUT


def test_an_empty_value_is_out_of_range_as_everywhere(program: CompiledProgram, p4sim_switch: P4SimSwitch) -> None:
    """p4sim's Bytestrings rule for every field (docs/p4sim.md); BMv2 takes b"" for zero, so it
    answers as for zero there: UNKNOWN on INSERT, NOT_FOUND on MODIFY and DELETE."""
    stub = p4sim_switch.client.stub
    for utype in (U.INSERT, U.MODIFY, U.DELETE):
        assert write_code(stub, utype, entry(program.p4info, "I.by_error", ("exact", b""), 0)) == OUT_OF_RANGE


def test_an_indirect_table_keyed_on_an_error_is_refused_before_a_one_shot_group_is_made(tmp_path: Path) -> None:
    src = PROGRAM.read_text().replace("""        actions = { fwd; NoAction; }
        default_action = NoAction();
    }
    table tern_error""", """        actions = { fwd; NoAction; }
        @name("ap") implementation = action_profile(32w4);
    }
    table tern_error""")
    assert "implementation" in src
    (tmp_path / "prog.p4").write_text(src)
    compiled = compile_file(tmp_path / "prog.p4")
    switch = P4SimSwitch(compiled)
    try:
        ent = entry(compiled.p4info, "I.by_error", ("exact", b"\x00"), 0)
        apa = ent.table_entry.action.action_profile_action_set.action_profile_actions.add(weight=1)
        apa.action.CopyFrom(ent.table_entry.action.action)
        assert write_code(switch.client.stub, U.INSERT, ent) == UNKNOWN
        groups = p4runtime_pb2.Entity()
        groups.action_profile_group.SetInParent()
        members = p4runtime_pb2.Entity()
        members.action_profile_member.SetInParent()
        assert switch.client.read(groups) == [] and switch.client.read(members) == []
    finally:
        switch.close()


_WHY_NOT = bmv2run.unavailable()


@pytest.mark.skipif(_WHY_NOT is not None, reason=str(_WHY_NOT))
def test_bmv2_answers_and_forwards_the_same(program: CompiledProgram, tmp_path: Path) -> None:
    with bmv2run.Bmv2Program(PROGRAM, tmp_path) as bmv2:
        assert bmv2.client is not None
        p4info = bmv2.client.info.proto
        assert p4info == program.p4info, "p4c-bm2-ss and p4sim-compile wrote different P4Infos"

        def send(frames: list[bytes]) -> list[list[tuple[int, bytes]]]:
            return bmv2.run([(0, f) for f in frames], [1] * len(frames))

        codes, out = run_writes_and_frames(bmv2.client.stub, p4info, send)
    assert codes == EXPECTED_CODES
    assert out == EXPECTED_OUT
