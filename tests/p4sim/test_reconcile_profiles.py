"""RECONCILE_AND_COMMIT with action-profile members and groups, as simple_switch_grpc 1.15.5 does it.

BMv2 keeps members, groups and the table entries that use them across the push, and every group
goes on picking the same member for the same packet: its reconcile re-adds the members in the
order its target lists them, which is member-handle order, so the handles keep their order
(compacted) and with them each group's selection. The frames below are what BMv2 sent, before and
after the push, for members inserted out of id order with a deleted one's handle reused (p4sim
replaying by member id would pick other members for the same packets).

Where simple_switch_grpc strays from the spec p4sim keeps the state (docs/p4sim.md): BMv2 refuses
the push when a group gives a member a weight above 1 (UNKNOWN "Error when reconciling config",
and then refuses every later push) or a table is programmed one-shot (INVALID_ARGUMENT "Invalid
attempt to mix action selector programming modes").

The parity test sends the same writes, push and frames to simple_switch_grpc and p4sim (skipped,
saying why, when BMv2 or veths are not available).
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
from ptf_tests import targets
from tests.p4sim import bmv2run
from tests.p4sim.harness import V1_PRELUDE
from tests.p4sim.test_action_profiles import ECMP_DST, PLAIN_DST, PROGRAM, Ids, _frame, entry, group, member
from tests.p4sim.test_error_keys import DEVICE_ID, ELECTION_ID, P4SimSwitch, write_code

U = p4runtime_pb2.Update
SetReq = p4runtime_pb2.SetForwardingPipelineConfigRequest
Frames = list[list[tuple[int, bytes]]]
Send = Callable[[list[bytes]], Frames]

# Selector members out of id order, 1 deleted and its handle (1) taken by 4: handles 2->0, 4->1,
# 3->2, 9->3, so group 10 = {2, 3, 4} selects [2, 4, 3] by position (ports 2, 1, 3); by member id it
# would be [2, 3, 4]. Member 5 of the plain profile forwards to port 2.
WRITES: list[tuple[int, Callable[[Ids], p4runtime_pb2.Entity]]] = [
    (U.INSERT, lambda ids: member(ids, "sel", 2, value=2)),
    (U.INSERT, lambda ids: member(ids, "sel", 1, value=1)),
    (U.INSERT, lambda ids: member(ids, "sel", 3, value=3)),
    (U.INSERT, lambda ids: member(ids, "sel", 9, value=3)),
    (U.DELETE, lambda ids: member(ids, "sel", 1, value=1)),
    (U.INSERT, lambda ids: member(ids, "sel", 4, value=1)),
    (U.INSERT, lambda ids: group(ids, 11, [(3, 1), (4, 1)])),
    (U.INSERT, lambda ids: group(ids, 10, [(4, 1), (2, 1), (3, 1)])),
    (U.INSERT, lambda ids: entry(ids, "ecmp", ECMP_DST, group_id=10)),
    (U.INSERT, lambda ids: member(ids, "ap", 5, "fwd", 2)),
    (U.INSERT, lambda ids: entry(ids, "plain", PLAIN_DST, member_id=5)),
]
# (60 bytes: BMv2 sends them as they are, with no padding to compare)
FRAMES = [bmv2run.pad(_frame(ECMP_DST, src)) for src in range(8)] + [bmv2run.pad(_frame(PLAIN_DST, 1))]
# What simple_switch_grpc sent for FRAMES, before the push and after it (port of each frame).
PORTS = [3, 3, 3, 2, 2, 3, 1, 3, 2]


def _hit(frame: bytes) -> bytes:
    """The frame as the program sends it after a selector hit (EtherType 0x0101)."""
    return frame[:12] + b"\x01\x01" + frame[14:] if frame[:6] == ECMP_DST.to_bytes(6, "big") else frame


EXPECTED_OUT = [[(port, _hit(f))] for port, f in zip(PORTS, FRAMES, strict=True)]


def _read_all(stub: p4runtime_pb2_grpc.P4RuntimeStub) -> list[p4runtime_pb2.Entity]:
    """Members, groups and table entries, each kind sorted by id (BMv2 lists them by handle)."""
    req = p4runtime_pb2.ReadRequest(device_id=DEVICE_ID)
    for kind in ("action_profile_member", "action_profile_group", "table_entry"):
        getattr(req.entities.add(), kind).SetInParent()
    got = [e for resp in stub.Read(req, timeout=30) for e in resp.entities]
    return sorted(got, key=lambda e: e.SerializeToString(deterministic=True))


def reconcile(stub: p4runtime_pb2_grpc.P4RuntimeStub, p4info: p4info_pb2.P4Info, device_config: bytes) -> int:
    req = SetReq(device_id=DEVICE_ID, action=SetReq.RECONCILE_AND_COMMIT)
    req.election_id.low = ELECTION_ID
    req.config.p4info.CopyFrom(p4info)
    req.config.p4_device_config = device_config
    try:
        stub.SetForwardingPipelineConfig(req, timeout=60)
    except grpc.RpcError as err:
        return err.code().value[0]
    return code_pb2.OK


def run_scenario(stub: p4runtime_pb2_grpc.P4RuntimeStub, p4info: p4info_pb2.P4Info, device_config: bytes,
                 send: Send) -> tuple[list[int], Frames, Frames, bool]:
    """WRITES, FRAMES, the push, FRAMES again: the write codes and the push's, the frames before
    and after, and whether a read after the push returned what one before it did."""
    ids = Ids(p4info)
    codes = [write_code(stub, utype, make(ids)) for utype, make in WRITES]
    before = send(FRAMES)
    state = _read_all(stub)
    codes.append(reconcile(stub, p4info, device_config))
    return codes, before, send(FRAMES), _read_all(stub) == state


@pytest.fixture(scope="module")
def program(tmp_path_factory: pytest.TempPathFactory) -> CompiledProgram:
    src = tmp_path_factory.mktemp("reconcile_profiles") / "prog.p4"
    src.write_text(V1_PRELUDE + PROGRAM)
    return compile_file(src)


@pytest.fixture
def p4sim_switch(program: CompiledProgram) -> Iterator[P4SimSwitch]:
    switch = P4SimSwitch(program)
    yield switch
    switch.close()


def test_members_groups_and_their_entries_carry_over_picking_the_same_members(
        program: CompiledProgram, p4sim_switch: P4SimSwitch) -> None:
    codes, before, after, same = run_scenario(p4sim_switch.client.stub, program.p4info, program.device_config,
                                              p4sim_switch.send)
    assert codes == [code_pb2.OK] * (len(WRITES) + 1)
    assert before == EXPECTED_OUT
    assert after == EXPECTED_OUT
    assert same, "a read after RECONCILE_AND_COMMIT differs from one before it"


def test_weights_and_one_shot_groups_carry_over_where_bmv2_refuses(program: CompiledProgram,
                                                                   p4sim_switch: P4SimSwitch) -> None:
    """A one-shot selector entry, then (the profile emptied: it is programmed one way or the
    other) a group giving a member weight 2: each kept by the push, picking as before."""
    stub, ids = p4sim_switch.client.stub, Ids(program.p4info)

    def keeps(frames: list[bytes], ports: set[int]) -> None:
        before, state = p4sim_switch.send(frames), _read_all(stub)
        assert {out[0][0] for out in before} == ports
        assert reconcile(stub, program.p4info, program.device_config) == code_pb2.OK
        assert p4sim_switch.send(frames) == before
        assert _read_all(stub) == state

    frames = [_frame(ECMP_DST, src) for src in range(64)] + [_frame(PLAIN_DST, 1)]
    oneshot = entry(ids, "ecmp", ECMP_DST, action_set=[(3, 1), (1, 2)])
    writes = [oneshot, member(ids, "ap", 5, "fwd", 2), entry(ids, "plain", PLAIN_DST, member_id=5)]
    assert [write_code(stub, U.INSERT, e) for e in writes] == [code_pb2.OK] * len(writes)
    keeps(frames, {1, 2, 3})

    assert write_code(stub, U.DELETE, oneshot) == code_pb2.OK
    writes = [member(ids, "sel", 1, value=1), member(ids, "sel", 2, value=2), member(ids, "sel", 3, value=3),
              group(ids, 10, [(1, 2), (2, 1)]), entry(ids, "ecmp", ECMP_DST, group_id=10)]
    assert [write_code(stub, U.INSERT, e) for e in writes] == [code_pb2.OK] * len(writes)
    keeps(frames[:-1], {1, 2})


_WHY_NOT = bmv2run.unavailable()


@pytest.mark.skipif(_WHY_NOT is not None, reason=str(_WHY_NOT))
def test_bmv2_carries_the_same_state_over(program: CompiledProgram, tmp_path: Path) -> None:
    source = tmp_path / "prog.p4"
    source.write_text(V1_PRELUDE + PROGRAM)
    with bmv2run.Bmv2Program(source, tmp_path / "bmv2") as bmv2:
        assert bmv2.client is not None
        p4info = bmv2.client.info.proto
        assert p4info == program.p4info, "p4c-bm2-ss and p4sim-compile wrote different P4Infos"
        config = targets.build_command("bmv2", "p4c-bm2-ss", source, tmp_path / "bmv2").config.read_bytes()

        def send(frames: list[bytes]) -> Frames:
            return bmv2.run([(0, f) for f in frames], [1] * len(frames))

        codes, before, after, same = run_scenario(bmv2.client.stub, p4info, config, send)
    assert codes == [code_pb2.OK] * (len(WRITES) + 1)
    assert before == EXPECTED_OUT
    assert after == EXPECTED_OUT
    assert same, "BMv2 read back other state after RECONCILE_AND_COMMIT"
