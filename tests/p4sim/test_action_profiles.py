"""Action profiles and action selectors: P4Info, P4Runtime members/groups/one-shot, and which
member a packet gets (expected members computed independently with p4sim.dataplane.hashes)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.rpc import code_pb2
from p4.v1 import p4runtime_pb2

from p4sim.compiler.driver import CompiledProgram, compile_file
from p4sim.compiler.errors import CompileError
from p4sim.dataplane import hashes
from p4sim.dataplane.ports import MemoryPort
from p4sim.runtime import entities
from p4sim.runtime.errors import P4RTError
from p4sim.switch import SwitchProcess
from tests.p4sim.harness import V1_PRELUDE, Sim, sim_from_source
from tests.p4sim.test_p4runtime_server import Client, batch_errors, write_code

U = p4runtime_pb2.Update
MISS_PORT = 7  # egress_spec before the tables: where a miss or an empty group sends the frame
HIT_TYPE = 0x0101  # EtherType the program writes after a hit (after the selector hashed the old one)

PROGRAM = """
header eth_t { bit<48> dst; bit<48> src; bit<16> type; }
struct headers_t { eth_t eth; }
struct meta_t { bit<8> unused; }
parser P(packet_in pkt, out headers_t hdr, inout meta_t m, inout standard_metadata_t sm) {
    state start { pkt.extract(hdr.eth); transition accept; }
}
control VC(inout headers_t hdr, inout meta_t m) { apply { } }
control I(inout headers_t hdr, inout meta_t m, inout standard_metadata_t sm) {
    action fwd(bit<9> port) { sm.egress_spec = port; }
    action tag(bit<16> t) { hdr.eth.type = t; }
    action other() { }
    @max_group_size(4) action_selector(HashAlgorithm.crc16, 32w64, 32w14) sel;
    table ecmp {
        key = { hdr.eth.dst : exact; hdr.eth.src : selector; hdr.eth.type : selector; }
        actions = { fwd; NoAction; }
        implementation = sel;
    }
    table plain {
        key = { hdr.eth.dst : exact; }
        actions = { fwd; tag; }
        @name("ap") implementation = action_profile(32w2);
    }
    table unrelated {
        key = { hdr.eth.type : exact; }
        actions = { other; }
    }
    apply {
        sm.egress_spec = 7;
        if (hdr.eth.dst[47:40] == 0xEC) {
            if (ecmp.apply().hit) { hdr.eth.type = 0x0101; }
        } else {
            plain.apply();
        }
        unrelated.apply();
    }
}
control E(inout headers_t hdr, inout meta_t m, inout standard_metadata_t sm) { apply { } }
control CC(inout headers_t hdr, inout meta_t m) { apply { } }
control D(packet_out pkt, in headers_t hdr) { apply { pkt.emit(hdr); } }
V1Switch(P(), VC(), I(), E(), CC(), D()) main;
"""

ECMP_DST = 0xEC0000000001
PLAIN_DST = 0x020000000001


def _frame(dst: int, src: int, etype: int = 0x88B5) -> bytes:
    return dst.to_bytes(6, "big") + src.to_bytes(6, "big") + etype.to_bytes(2, "big") + b"payload"


def _crc16_pick(src: int, etype: int, n: int) -> int:
    """Index into the group's handle-ordered members that BMv2 would pick."""
    h = hashes.compute("crc16", hashes.pack_fields([(src, 48), (etype, 16)]))
    return h % n


def _compile(directory: Path, text: str) -> CompiledProgram:
    src = directory / "prog.p4"
    src.write_text(V1_PRELUDE + text)
    return compile_file(src)


# -- entity builders --------------------------------------------------------------------------------
class Ids:
    def __init__(self, p4info) -> None:
        self.tables = {t.preamble.alias: t.preamble.id for t in p4info.tables}
        self.actions = {a.preamble.alias: a.preamble.id for a in p4info.actions}
        self.profiles = {p.preamble.alias: p.preamble.id for p in p4info.action_profiles}


def member(ids: Ids, profile: str, mid: int, action: str = "fwd", value: int = 1) -> p4runtime_pb2.Entity:
    ent = p4runtime_pb2.Entity()
    m = ent.action_profile_member
    m.action_profile_id = ids.profiles[profile]
    m.member_id = mid
    m.action.action_id = ids.actions[action]
    if action in ("fwd", "tag"):
        m.action.params.add(param_id=1, value=value.to_bytes(2, "big"))
    return ent


def group(ids: Ids, gid: int, members: list[tuple[int, int]], max_size: int = 0,
          profile: str = "sel") -> p4runtime_pb2.Entity:
    ent = p4runtime_pb2.Entity()
    g = ent.action_profile_group
    g.action_profile_id = ids.profiles[profile]
    g.group_id = gid
    g.max_size = max_size
    for mid, weight in members:
        g.members.add(member_id=mid, weight=weight)
    return ent


def entry(ids: Ids, table: str, dst: int, *, member_id: int | None = None, group_id: int | None = None,
          action_set: list[tuple[int, int]] | None = None, direct_port: int | None = None) -> p4runtime_pb2.Entity:
    ent = p4runtime_pb2.Entity()
    te = ent.table_entry
    te.table_id = ids.tables[table]
    te.match.add(field_id=1, exact=p4runtime_pb2.FieldMatch.Exact(value=dst.to_bytes(6, "big")))
    if member_id is not None:
        te.action.action_profile_member_id = member_id
    if group_id is not None:
        te.action.action_profile_group_id = group_id
    if action_set is not None:
        for port, weight in action_set:
            apa = te.action.action_profile_action_set.action_profile_actions.add(weight=weight)
            apa.action.action_id = ids.actions["fwd"]
            apa.action.params.add(param_id=1, value=port.to_bytes(2, "big"))
    if direct_port is not None:
        te.action.action.action_id = ids.actions["fwd"]
        te.action.action.params.add(param_id=1, value=direct_port.to_bytes(2, "big"))
    return ent


# -- in-process switch ---------------------------------------------------------------------------
@pytest.fixture
def sim(tmp_path: Path) -> Sim:
    return sim_from_source(tmp_path, PROGRAM)


def write(sim: Sim, utype: int, ent: p4runtime_pb2.Entity) -> None:
    entities.apply_update(sim.state, U(type=utype, entity=ent))


def code_of(sim: Sim, utype: int, ent: p4runtime_pb2.Entity) -> int:
    try:
        write(sim, utype, ent)
    except P4RTError as e:
        return e.code
    return code_pb2.OK


def read(sim: Sim, ent: p4runtime_pb2.Entity) -> list[p4runtime_pb2.Entity]:
    return list(entities.read_entity(sim.state, ent))


# -- compiler and P4Info -----------------------------------------------------------------------------
def test_p4info_action_profiles_as_p4c_emits_them(sim: Sim) -> None:
    info = sim.p4info
    profiles = {p.preamble.name: p for p in info.action_profiles}
    assert list(profiles) == ["I.sel", "ap"]  # declared where declared; in-place named by its @name verbatim
    tables = {t.preamble.name: t for t in info.tables}
    sel, ap = profiles["I.sel"], profiles["ap"]
    assert sel.preamble.id >> 24 == 0x11 and ap.preamble.id >> 24 == 0x11
    assert ap.preamble.id == 294074782  # what p4c assigns the name "ap" (its action_profile-bmv2 test)
    assert sel.with_selector and sel.size == 64 and sel.max_group_size == 4
    assert not sel.preamble.annotations  # @max_group_size becomes the field, not an annotation
    assert not ap.with_selector and ap.size == 2 and ap.max_group_size == 0
    assert list(sel.table_ids) == [tables["I.ecmp"].preamble.id]
    assert list(ap.table_ids) == [tables["I.plain"].preamble.id]
    ecmp = tables["I.ecmp"]
    assert ecmp.implementation_id == sel.preamble.id
    assert tables["I.plain"].implementation_id == ap.preamble.id
    assert tables["I.unrelated"].implementation_id == 0
    # selector keys feed the hash; they are no match fields
    assert [(f.id, f.name) for f in ecmp.match_fields] == [(1, "hdr.eth.dst")]


def test_shared_selector_lists_its_tables_sorted_and_in_place_default_name(tmp_path: Path) -> None:
    src = """
    header h_t { bit<8> a; bit<8> b; }
    struct H { h_t h; }
    struct M { }
    parser P(packet_in pk, out H hdr, inout M m, inout standard_metadata_t sm) {
        state start { pk.extract(hdr.h); transition accept; } }
    control I(inout H hdr, inout M m, inout standard_metadata_t sm) {
        action a() { }
        @selector_size_semantics("sum_of_members") @max_member_weight(9)
        action_selector(HashAlgorithm.identity, 32w16, 32w8) s;
        table zt { key = { hdr.h.a : exact; hdr.h.b : selector; } actions = { a; } implementation = s; }
        table at { key = { hdr.h.b : selector; } actions = { a; } implementation = s; }
        table in_place { key = { hdr.h.a : exact; } actions = { a; } implementation = action_profile(32w8); }
        apply { zt.apply(); at.apply(); in_place.apply(); } }
    control E(inout H hdr, inout M m, inout standard_metadata_t sm) { apply { } }
    control V(inout H hdr, inout M m) { apply { } }
    control C(inout H hdr, inout M m) { apply { } }
    control D(packet_out pk, in H hdr) { apply { } }
    V1Switch(P(), V(), I(), E(), C(), D()) main;
    """
    info = _compile(tmp_path, src).p4info
    t = {x.preamble.name: x.preamble.id for x in info.tables}
    s = next(p for p in info.action_profiles if p.preamble.name == "I.s")
    assert list(s.table_ids) == [t["I.at"], t["I.zt"]]
    assert s.HasField("sum_of_members") and s.sum_of_members.max_member_weight == 9
    assert [p.preamble.name for p in info.action_profiles] == ["I.s", "implementation"]


@pytest.mark.parametrize(("table", "message"), [
    ("table t { key = { hdr.h.a : exact; } actions = { a; } implementation = action_selector(HashAlgorithm.crc16, 32w4, 32w8); }",
     "needs at least one selector key"),
    ("table t { key = { hdr.h.a : exact; } actions = { a; } implementation = action_profile(32w4);"
     " const entries = { 1 : a(); } }", "entries are not supported"),
    ("direct_counter(CounterType.packets) c; table t { key = { hdr.h.a : exact; } actions = { a; } implementation = c; }",
     "must be an action_profile or action_selector"),
])
def test_compile_errors(tmp_path: Path, table: str, message: str) -> None:
    src = """
    header h_t { bit<8> a; }
    struct H { h_t h; }
    struct M { }
    parser P(packet_in pk, out H hdr, inout M m, inout standard_metadata_t sm) {
        state start { pk.extract(hdr.h); transition accept; } }
    control I(inout H hdr, inout M m, inout standard_metadata_t sm) {
        action a() { }
        TABLE
        apply { t.apply(); } }
    control E(inout H hdr, inout M m, inout standard_metadata_t sm) { apply { } }
    control V(inout H hdr, inout M m) { apply { } }
    control C(inout H hdr, inout M m) { apply { } }
    control D(packet_out pk, in H hdr) { apply { } }
    V1Switch(P(), V(), I(), E(), C(), D()) main;
    """.replace("TABLE", table)
    with pytest.raises(CompileError, match=message):
        _compile(tmp_path, src)


# -- data plane ---------------------------------------------------------------------------------------
def test_member_hit_runs_the_members_action_and_modify_changes_it(sim: Sim) -> None:
    ids = Ids(sim.p4info)
    write(sim, U.INSERT, member(ids, "ap", 10, "fwd", 3))
    write(sim, U.INSERT, entry(ids, "plain", PLAIN_DST, member_id=10))
    assert sim.send_one(1, _frame(PLAIN_DST, 5))[0] == 3
    write(sim, U.MODIFY, member(ids, "ap", 10, "fwd", 4))
    assert sim.send_one(1, _frame(PLAIN_DST, 5))[0] == 4
    write(sim, U.MODIFY, member(ids, "ap", 10, "tag", 0x1234))
    port, out = sim.send_one(1, _frame(PLAIN_DST, 5))
    assert port == MISS_PORT and out[12:14] == b"\x12\x34"
    # a miss runs nothing: BMv2 has no default action on indirect tables
    assert sim.send_one(1, _frame(PLAIN_DST + 1, 5))[0] == MISS_PORT


def test_group_picks_member_by_crc16_of_selector_fields(sim: Sim) -> None:
    ids = Ids(sim.p4info)
    for mid, port in ((1, 11), (2, 12), (3, 13)):
        write(sim, U.INSERT, member(ids, "sel", mid, "fwd", port))
    write(sim, U.INSERT, group(ids, 100, [(3, 1), (1, 1), (2, 1)]))  # order written does not matter
    write(sim, U.INSERT, entry(ids, "ecmp", ECMP_DST, group_id=100))
    ports = [11, 12, 13]  # members in handle order = creation order
    seen = set()
    for src in range(40):
        etype = 0x0800 + src * 7
        port, out = sim.send_one(1, _frame(ECMP_DST, 0x0A0000000000 + src * 977, etype))
        assert port == ports[_crc16_pick(0x0A0000000000 + src * 977, etype, 3)]
        assert out[12:14] == HIT_TYPE.to_bytes(2, "big")
        seen.add(port)
    assert seen == set(ports)  # the hash spreads: every member gets traffic


def test_weights_replicate_members_with_bmv2_handles(sim: Sim) -> None:
    ids = Ids(sim.p4info)
    write(sim, U.INSERT, member(ids, "sel", 1, "fwd", 21))  # handle 0
    write(sim, U.INSERT, member(ids, "sel", 2, "fwd", 22))  # handle 1
    write(sim, U.INSERT, group(ids, 7, [(1, 2), (2, 1)]))  # member 1's copy gets handle 2
    write(sim, U.INSERT, entry(ids, "ecmp", ECMP_DST, group_id=7))
    order = [21, 22, 21]
    for src in range(30):
        assert sim.send_one(1, _frame(ECMP_DST, src))[0] == order[_crc16_pick(src, 0x88B5, 3)]
    # weight back to 1: the copy is released and the next member reuses the lowest free handle
    write(sim, U.MODIFY, group(ids, 7, [(1, 1), (2, 1)]))
    write(sim, U.INSERT, member(ids, "sel", 3, "fwd", 23))  # handle 2 again
    write(sim, U.MODIFY, group(ids, 7, [(1, 1), (2, 1), (3, 1)]))
    order = [21, 22, 23]
    for src in range(30):
        assert sim.send_one(1, _frame(ECMP_DST, src))[0] == order[_crc16_pick(src, 0x88B5, 3)]
    # a freed low handle is reused first: member 4 takes member 1's handle 0 and goes first
    write(sim, U.MODIFY, group(ids, 7, [(2, 1), (3, 1)]))
    write(sim, U.DELETE, member(ids, "sel", 1))
    write(sim, U.INSERT, member(ids, "sel", 4, "fwd", 24))
    write(sim, U.MODIFY, group(ids, 7, [(2, 1), (3, 1), (4, 1)]))
    order = [24, 22, 23]
    for src in range(30):
        assert sim.send_one(1, _frame(ECMP_DST, src))[0] == order[_crc16_pick(src, 0x88B5, 3)]
    # copies are made walking the members by id (as PI does), whatever order they are written in
    # (handles now: member 4 -> 0, 2 -> 1, 3 -> 2; the copies: 2 -> 3, then 3 -> 4)
    write(sim, U.MODIFY, group(ids, 7, [(3, 2), (2, 2)]))
    order = [22, 23, 22, 23]
    for src in range(30):
        assert sim.send_one(1, _frame(ECMP_DST, src))[0] == order[_crc16_pick(src, 0x88B5, 4)]


def test_empty_group_is_a_hit_that_runs_nothing(sim: Sim) -> None:
    ids = Ids(sim.p4info)
    write(sim, U.INSERT, group(ids, 5, []))
    write(sim, U.INSERT, entry(ids, "ecmp", ECMP_DST, group_id=5))
    port, out = sim.send_one(1, _frame(ECMP_DST, 1))
    assert port == MISS_PORT and out[12:14] == HIT_TYPE.to_bytes(2, "big")


def test_one_shot_action_set_is_a_hidden_group(sim: Sim) -> None:
    ids = Ids(sim.p4info)
    write(sim, U.INSERT, entry(ids, "ecmp", ECMP_DST, action_set=[(31, 1), (32, 2)]))
    order = [31, 32, 32]  # one handle per action, then the weight copy of the second one
    for src in range(30):
        assert sim.send_one(1, _frame(ECMP_DST, src))[0] == order[_crc16_pick(src, 0x88B5, 3)]
    (got,) = read(sim, entry(ids, "ecmp", ECMP_DST))
    aset = got.table_entry.action.action_profile_action_set.action_profile_actions
    assert [(a.action.params[0].value, a.weight) for a in aset] == [(b"\x1f", 1), (b"\x20", 2)]
    # hidden: no members or groups to read, and manual programming is refused meanwhile
    assert read(sim, member(ids, "sel", 0)) == [] and read(sim, group(ids, 0, [])) == []
    assert code_of(sim, U.INSERT, member(ids, "sel", 1)) == code_pb2.INVALID_ARGUMENT
    write(sim, U.MODIFY, entry(ids, "ecmp", ECMP_DST, action_set=[(33, 1)]))
    assert sim.send_one(1, _frame(ECMP_DST, 9))[0] == 33
    write(sim, U.DELETE, entry(ids, "ecmp", ECMP_DST))
    assert sim.state.action_profiles[ids.profiles["sel"]].members == {}
    write(sim, U.INSERT, member(ids, "sel", 1))  # the profile is free again


# -- P4Runtime errors and reads --------------------------------------------------------------------------
def test_write_errors(sim: Sim) -> None:
    ids = Ids(sim.p4info)
    write(sim, U.INSERT, member(ids, "sel", 1, "fwd", 1))
    write(sim, U.INSERT, member(ids, "sel", 2, "fwd", 2))
    assert code_of(sim, U.INSERT, member(ids, "sel", 1)) == code_pb2.ALREADY_EXISTS
    assert code_of(sim, U.MODIFY, member(ids, "sel", 9)) == code_pb2.NOT_FOUND
    assert code_of(sim, U.DELETE, member(ids, "sel", 9)) == code_pb2.NOT_FOUND
    assert code_of(sim, U.INSERT, member(ids, "sel", 3, "tag")) == code_pb2.INVALID_ARGUMENT  # not ecmp's
    bad = member(ids, "sel", 3)
    bad.action_profile_member.action_profile_id = 0x11000001
    assert code_of(sim, U.INSERT, bad) == code_pb2.INVALID_ARGUMENT
    # groups
    assert code_of(sim, U.INSERT, group(ids, 1, [(9, 1)])) == code_pb2.NOT_FOUND
    assert code_of(sim, U.INSERT, group(ids, 1, [(1, 0)])) == code_pb2.INVALID_ARGUMENT  # weight 0
    assert code_of(sim, U.INSERT, group(ids, 1, [(1, 1), (1, 1)])) == code_pb2.INVALID_ARGUMENT
    assert code_of(sim, U.INSERT, group(ids, 1, [(1, 3), (2, 2)])) == code_pb2.RESOURCE_EXHAUSTED  # > 4
    assert code_of(sim, U.INSERT, group(ids, 1, [], max_size=5)) == code_pb2.INVALID_ARGUMENT  # > 4
    write(sim, U.INSERT, group(ids, 1, [(1, 1)], max_size=2))
    assert code_of(sim, U.MODIFY, group(ids, 1, [(1, 2), (2, 1)])) == code_pb2.RESOURCE_EXHAUSTED  # > 2
    assert code_of(sim, U.MODIFY, group(ids, 1, [(1, 1)], max_size=3)) == code_pb2.INVALID_ARGUMENT
    assert code_of(sim, U.INSERT, group(ids, 1, [])) == code_pb2.ALREADY_EXISTS
    assert code_of(sim, U.MODIFY, group(ids, 2, [])) == code_pb2.NOT_FOUND
    assert code_of(sim, U.INSERT, group(ids, 1, [], profile="ap")) == code_pb2.INVALID_ARGUMENT  # no selector
    # still referenced
    assert code_of(sim, U.DELETE, member(ids, "sel", 1)) == code_pb2.FAILED_PRECONDITION  # by group 1
    write(sim, U.INSERT, entry(ids, "ecmp", ECMP_DST, group_id=1))
    assert code_of(sim, U.DELETE, group(ids, 1, [])) == code_pb2.FAILED_PRECONDITION
    write(sim, U.INSERT, entry(ids, "ecmp", ECMP_DST + 1, member_id=2))
    assert code_of(sim, U.DELETE, member(ids, "sel", 2)) == code_pb2.FAILED_PRECONDITION
    # table entries
    assert code_of(sim, U.INSERT, entry(ids, "ecmp", ECMP_DST + 2, direct_port=1)) == code_pb2.INVALID_ARGUMENT
    assert code_of(sim, U.INSERT, entry(ids, "ecmp", ECMP_DST + 2, member_id=77)) == code_pb2.NOT_FOUND
    assert code_of(sim, U.INSERT, entry(ids, "ecmp", ECMP_DST + 2, group_id=77)) == code_pb2.NOT_FOUND
    assert code_of(sim, U.INSERT, entry(ids, "ecmp", ECMP_DST, member_id=2)) == code_pb2.ALREADY_EXISTS
    assert code_of(sim, U.INSERT, entry(ids, "ecmp", ECMP_DST + 2, action_set=[(1, 1)])) == code_pb2.INVALID_ARGUMENT
    assert code_of(sim, U.INSERT, entry(ids, "plain", PLAIN_DST, group_id=1)) == code_pb2.INVALID_ARGUMENT
    default = p4runtime_pb2.Entity()
    default.table_entry.table_id = ids.tables["ecmp"]
    default.table_entry.is_default_action = True
    default.table_entry.action.action_profile_member_id = 2
    assert code_of(sim, U.MODIFY, default) == code_pb2.UNIMPLEMENTED
    # deleting the entries frees what they used
    write(sim, U.DELETE, entry(ids, "ecmp", ECMP_DST))
    write(sim, U.DELETE, entry(ids, "ecmp", ECMP_DST + 1))
    write(sim, U.DELETE, group(ids, 1, []))
    write(sim, U.DELETE, member(ids, "sel", 1))
    write(sim, U.DELETE, member(ids, "sel", 2))
    # the profile's size bounds its members
    write(sim, U.INSERT, member(ids, "ap", 1))
    write(sim, U.INSERT, member(ids, "ap", 2))
    assert code_of(sim, U.INSERT, member(ids, "ap", 3)) == code_pb2.RESOURCE_EXHAUSTED


def test_reads(sim: Sim) -> None:
    ids = Ids(sim.p4info)
    write(sim, U.INSERT, member(ids, "sel", 2, "fwd", 2))
    write(sim, U.INSERT, member(ids, "sel", 1, "fwd", 1))
    write(sim, U.INSERT, member(ids, "ap", 5, "tag", 0xABCD))
    g = group(ids, 9, [(2, 1), (1, 2)], max_size=4)
    g.action_profile_group.members[0].watch_port = b"\x03"
    write(sim, U.INSERT, g)
    write(sim, U.INSERT, entry(ids, "ecmp", ECMP_DST, group_id=9))
    write(sim, U.INSERT, entry(ids, "plain", PLAIN_DST, member_id=5))

    all_members = read(sim, p4runtime_pb2.Entity(action_profile_member=p4runtime_pb2.ActionProfileMember()))
    assert [(e.action_profile_member.action_profile_id, e.action_profile_member.member_id) for e in all_members] == [
        (ids.profiles["sel"], 1), (ids.profiles["sel"], 2), (ids.profiles["ap"], 5)]
    (m5,) = read(sim, member(ids, "ap", 5))
    assert m5.action_profile_member.action.params[0].value == b"\xab\xcd"
    assert read(sim, member(ids, "ap", 6)) == []
    (g9,) = read(sim, group(ids, 0, []))
    assert g9.action_profile_group.max_size == 4
    assert [(m.member_id, m.weight, m.watch_port) for m in g9.action_profile_group.members] == [
        (1, 2, b""), (2, 1, b"\x03")]
    te = p4runtime_pb2.Entity()
    te.table_entry.SetInParent()
    got = {e.table_entry.table_id: e.table_entry.action for e in read(sim, te)}
    assert got[ids.tables["ecmp"]].action_profile_group_id == 9
    assert got[ids.tables["plain"]].action_profile_member_id == 5


# -- over gRPC ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> CompiledProgram:
    return _compile(tmp_path_factory.mktemp("ap"), PROGRAM)


@pytest.fixture
def switch(compiled: CompiledProgram) -> Iterator[tuple[dict[int, MemoryPort], Client]]:
    sw = SwitchProcess(device_id=1, grpc_addr="127.0.0.1:0", cpu_port=255)
    ports = {n: MemoryPort(n) for n in (1, 2, 3, 7)}
    for p in ports.values():
        sw.ports.add(p)
    sw.start()
    client = Client(sw.grpc_addr, (0, 1), device_id=1)
    assert client.status() == 0
    client.set_pipeline(p4info=compiled.p4info, device_config=compiled.device_config)
    try:
        yield ports, client
    finally:
        client.close()
        sw.stop()


def test_grpc_program_group_and_forward(switch, compiled: CompiledProgram) -> None:
    ports, client = switch
    ids = Ids(compiled.p4info)
    client.write(U(type=U.INSERT, entity=member(ids, "sel", 1, "fwd", 2)),
                 U(type=U.INSERT, entity=member(ids, "sel", 2, "fwd", 3)))
    client.write(U(type=U.INSERT, entity=group(ids, 1, [(1, 1), (2, 1)])))
    # one batch: the indirect entry goes through the fast decoder's protobuf fallback
    with pytest.raises(grpc.RpcError) as err:
        client.write(U(type=U.INSERT, entity=entry(ids, "ecmp", ECMP_DST, group_id=1)),
                     U(type=U.INSERT, entity=entry(ids, "plain", PLAIN_DST, direct_port=1)))
    assert [c for c, _ in batch_errors(err.value)] == [code_pb2.OK, code_pb2.INVALID_ARGUMENT]
    for src in (1, 2, 3, 4, 5, 6):
        frame = _frame(ECMP_DST, src)
        ports[1].inject(frame)
        want = (2, 3)[_crc16_pick(src, 0x88B5, 2)]
        out = ports[want].expect(timeout=5)
        assert out[:12] == frame[:12] and out[12:14] == HIT_TYPE.to_bytes(2, "big")
    (got,) = client.read(entry(ids, "ecmp", ECMP_DST))
    assert got.table_entry.action.action_profile_group_id == 1
    assert write_code(client, U(type=U.DELETE, entity=member(ids, "sel", 1))) == code_pb2.FAILED_PRECONDITION
    groups = client.read(group(ids, 0, []))
    assert [(m.member_id, m.weight) for m in groups[0].action_profile_group.members] == [(1, 1), (2, 1)]


def test_grpc_one_shot_and_member_entries(switch, compiled: CompiledProgram) -> None:
    ports, client = switch
    ids = Ids(compiled.p4info)
    client.write(U(type=U.INSERT, entity=entry(ids, "ecmp", ECMP_DST, action_set=[(2, 1), (3, 1)])))
    frame = _frame(ECMP_DST, 42)
    ports[1].inject(frame)
    assert ports[(2, 3)[_crc16_pick(42, 0x88B5, 2)]].expect(timeout=5)[:12] == frame[:12]
    client.write(U(type=U.INSERT, entity=member(ids, "ap", 1, "fwd", 3)),
                 U(type=U.INSERT, entity=entry(ids, "plain", PLAIN_DST, member_id=1)))
    frame = _frame(PLAIN_DST, 42)
    ports[1].inject(frame)
    assert ports[3].expect(timeout=5) == frame
    got = client.read(p4runtime_pb2.Entity(table_entry=p4runtime_pb2.TableEntry()))
    actions = {e.table_entry.table_id: e.table_entry.action for e in got}
    assert actions[ids.tables["plain"]].action_profile_member_id == 1
    assert len(actions[ids.tables["ecmp"]].action_profile_action_set.action_profile_actions) == 2
