"""The hand-written Update encoder (p4rt/wire.py) gives protobuf's exact bytes and refuses what
the protobuf path refuses."""

from __future__ import annotations

import pytest
from p4.v1 import p4runtime_pb2 as pb
from p4splice.controller.p4rt import (
    LPM,
    Action,
    CloneSessionEntry,
    CounterData,
    CounterEntry,
    Exact,
    MeterConfig,
    Optional,
    P4Index,
    Range,
    TableEntry,
    Ternary,
    Update,
    UpdateType,
)
from p4splice.controller.p4rt.wire import update_bytes, write_request_bytes

from p4sim.compiler.driver import CompiledProgram
from tests.controller.test_p4rt_support import compile_program

compiled = pytest.fixture(scope="module")(compile_program)
ETH_DST, ETH_SRC, ETH_TYPE = "hdr.ethernet.dst", "hdr.ethernet.src", "hdr.ethernet.ether_type"


@pytest.fixture(scope="module")
def index(compiled: CompiledProgram) -> P4Index:
    return P4Index(compiled.p4info)


ENTRIES = [
    TableEntry("dmac", {ETH_DST: Exact(0x020000000001)}, Action("forward", {"port": 3})),
    TableEntry("dmac", {ETH_DST: Exact(0)}, Action("forward", {"port": 0})),  # zero values: b"\x00"
    TableEntry("dmac", {ETH_DST: 2**48 - 1}, Action("forward", {"port": 511}), idle_timeout_ns=300 * 10**9),
    TableEntry("dst_prefix", {ETH_DST: LPM(0x020000000000, 8)}, Action("flood", {"group": 7})),
    TableEntry("dst_prefix", {ETH_DST: LPM(0, 0)}, Action("flood", {"group": 0})),  # don't-care omitted
    TableEntry("acl", {ETH_TYPE: Ternary(0x0800, 0xFFFF), ETH_SRC: Ternary(0x020000000000, 0xFF0000000000)},
               Action("drop"), priority=10, counter_data=CounterData(3, 300)),
    TableEntry("acl", {ETH_TYPE: Ternary(0, 0), ETH_SRC: Ternary(1, 0xFF)}, priority=2**31 - 1),
    TableEntry("acl", {ETH_TYPE: Ternary(1, 1)}, priority=-5),  # int32: ten-byte varint
    TableEntry("classify", {ETH_TYPE: Range(0x0600, 0x0800), "sm.ingress_port": Optional(2)},
               Action("NoAction"), priority=1),
    TableEntry("classify", {ETH_TYPE: Range(0, 0xFFFF), "sm.ingress_port": Optional(0)}, priority=1),
    TableEntry("smac", {ETH_SRC: Exact(5)}, Action("known"), idle_timeout_ns=10**9, metadata=b"cookie"),
    TableEntry("dmac", action=Action("forward", {"port": 1}), is_default=True),
    TableEntry("dmac", {ETH_DST: 1}, counter_data=CounterData()),
    TableEntry("dmac"),
    TableEntry(""),
]


@pytest.mark.parametrize("kind", list(UpdateType))
@pytest.mark.parametrize("n", range(len(ENTRIES)))
def test_table_entries_encode_as_protobuf_does(index: P4Index, kind: UpdateType, n: int) -> None:
    u = Update(kind, ENTRIES[n])
    assert update_bytes(index, u) == u.to_proto(index).SerializeToString()


def test_other_entities_and_raw_updates_go_through_protobuf(index: P4Index) -> None:
    for u in (Update(UpdateType.INSERT, CloneSessionEntry(99, [255])),
              Update(UpdateType.MODIFY, CounterEntry("port_counter", 3, CounterData(1, 64))),
              Update(UpdateType.INSERT, TableEntry("dmac", {ETH_DST: 1}, meter_config=MeterConfig(1, 2, 3, 4)))):
        assert update_bytes(index, u) == u.to_proto(index).SerializeToString()
    raw = Update(UpdateType.DELETE, ENTRIES[0]).to_proto(index)
    assert update_bytes(index, raw) == raw.SerializeToString()


def test_write_request_matches_protobuf(index: P4Index) -> None:
    updates = [Update(UpdateType.INSERT, e) for e in ENTRIES[:4]]
    for role, atomicity, election in (("", 0, 10), ("ctl", pb.WriteRequest.ROLLBACK_ON_ERROR, 2**64 + 3)):
        head = pb.WriteRequest(device_id=1, role=role, atomicity=atomicity)
        head.election_id.high, head.election_id.low = election >> 64, election & (2**64 - 1)
        full = pb.WriteRequest()
        full.CopyFrom(head)
        for u in updates:
            u.fill(index, full.updates.add())
        assert write_request_bytes(index, head, updates) == full.SerializeToString()
    assert write_request_bytes(index, pb.WriteRequest(device_id=7), []) == pb.WriteRequest(device_id=7).SerializeToString()


def test_refuses_what_protobuf_refuses(index: P4Index) -> None:
    bad = [
        (TableEntry("dmac", {ETH_DST: LPM(0, 8)}), "is an exact match; got LPM"),
        (TableEntry("dst_prefix", {ETH_DST: LPM(0x020000000001, 8)}), "beyond the prefix"),
        (TableEntry("acl", {ETH_TYPE: Ternary(0x0801, 0xFF00)}), "outside mask"),
        (TableEntry("classify", {ETH_TYPE: Range(5, 4)}), "empty range"),
        (TableEntry("dmac", {ETH_DST: 1}, Action("forward", {"port": 512})), "does not fit in 9 bits"),
        (TableEntry("dmac", {ETH_DST: 1}, Action("forward")), "missing parameters port"),
        (TableEntry("dmac", {ETH_DST: 1}, is_default=True), "default entry has no match"),
        (TableEntry("", {ETH_DST: 1}), "wildcard table read filter"),
    ]
    for entry, msg in bad:
        for encode in (lambda u: update_bytes(index, u), lambda u: u.to_proto(index)):
            with pytest.raises(ValueError, match=msg):
                encode(Update(UpdateType.INSERT, entry))
