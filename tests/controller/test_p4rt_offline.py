"""P4Runtime client pieces that need no switch: codec, P4Info index lookups, entity round trips."""

from __future__ import annotations

import pytest
from p4.v1 import p4runtime_pb2 as pb
from p4splice.controller.p4rt import (
    LPM,
    Action,
    CloneSessionEntry,
    CounterData,
    CounterEntry,
    DigestEntry,
    DigestList,
    DirectCounterEntry,
    Exact,
    IdleTimeoutNotification,
    MeterConfig,
    MulticastGroupEntry,
    Optional,
    P4Index,
    P4InfoLookupError,
    PacketIn,
    PacketOut,
    Range,
    RegisterEntry,
    Replica,
    TableEntry,
    Ternary,
    Update,
    UpdateType,
    codec,
)
from p4splice.controller.p4rt.entities import entity_from_proto, entity_to_proto
from p4splice.controller.p4rt.p4info import load_p4info

from p4sim.compiler.driver import CompiledProgram
from tests.controller.test_p4rt_support import compile_program

compiled = pytest.fixture(scope="module")(compile_program)


@pytest.fixture(scope="module")
def index(compiled: CompiledProgram) -> P4Index:
    return P4Index(compiled.p4info)


# --- codec -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("value,width,expected", [
    (0, 9, b"\x00"), (1, 9, b"\x01"), (0x1FF, 9, b"\x01\xff"), (0x100, 16, b"\x01\x00"),
    (0xFF, 8, b"\xff"), (2**48 - 1, 48, b"\xff" * 6), (1, 1, b"\x01"), (2**128 - 1, 128, b"\xff" * 16),
])
def test_encode_is_canonical(value: int, width: int, expected: bytes) -> None:
    assert codec.encode(value, width) == expected
    assert codec.decode(expected, width) == value


def test_encode_range_checks() -> None:
    with pytest.raises(ValueError, match="does not fit in 9 bits"):
        codec.encode(512, 9, "port")
    with pytest.raises(ValueError, match="negative"):
        codec.encode(-1, 8)
    with pytest.raises(TypeError):
        codec.encode(True, 8)
    with pytest.raises(TypeError):
        codec.encode("1", 8)  # type: ignore[arg-type]
    assert codec.encode(2**70, 0) == (2**70).to_bytes(9, "big")  # width 0: unknown, unbounded


def test_decode_accepts_padding_and_rejects_overflow() -> None:
    assert codec.decode(b"\x00\x00\x01", 9) == 1
    assert codec.decode(b"\x00\x00", 9) == 0
    with pytest.raises(ValueError, match="does not fit"):
        codec.decode(b"\x02\x00", 9)
    with pytest.raises(ValueError, match="empty"):
        codec.decode(b"", 8)


def test_address_helpers() -> None:
    assert codec.mac("02:00:00:00:00:0a") == 0x02000000000A
    assert codec.mac("02-00-00-00-00-0A") == 0x02000000000A
    assert codec.mac("02000000000a") == 0x02000000000A
    assert codec.format_mac(0x02000000000A) == "02:00:00:00:00:0a"
    assert codec.ipv4("10.0.0.1") == 0x0A000001
    assert codec.format_ipv4(0x0A000001) == "10.0.0.1"
    assert codec.format_ipv6(codec.ipv6("2001:db8::1")) == "2001:db8::1"
    for bad in ("02:00:00:00:00", "02:00:00:00:00:0g", "0200:0000:000a", ""):
        with pytest.raises(ValueError, match="MAC"):
            codec.mac(bad)
    with pytest.raises(ValueError, match="IPv4"):
        codec.ipv4("10.0.0.256")
    with pytest.raises(ValueError):
        codec.format_mac(2**48)


# --- P4Info index --------------------------------------------------------------------------------

def test_lookup_by_name_alias_and_id(index: P4Index) -> None:
    t = index.table("smac")
    assert index.table("TestIngress.smac") is t
    assert index.table(t.id) is t
    assert t.supports_idle_timeout and not index.table("dmac").supports_idle_timeout
    mf = t.match_fields["hdr.ethernet.src"]
    assert (mf.id, mf.bitwidth, mf.match_type) == (1, 48, "exact")
    assert index.action("forward").params["port"].bitwidth == 9
    assert index.table("acl").requires_priority and not index.table("dst_prefix").requires_priority
    assert index.table("classify").match_fields["sm.ingress_port"].match_type == "optional"
    assert index.counter("port_counter").unit == "both" and index.counter("port_counter").size == 64
    assert index.direct_counter_of("acl").name == "TestIngress.acl_hits"
    assert index.direct_counter_of("dmac") is None
    assert index.register("scratch").bitwidth == 32
    assert index.digest("learn_t").id in index.digests
    assert [f.name for f in index.controller_metadata("packet_out").fields] == ["egress_port", "_pad"]


def test_unknown_names_say_what_exists(index: P4Index) -> None:
    with pytest.raises(P4InfoLookupError) as e:
        index.table("smak")
    assert isinstance(e.value, KeyError)
    msg = str(e.value)
    assert "no table 'smak'" in msg and "smac" in msg and "dmac" in msg
    with pytest.raises(KeyError, match="no param 'prot' of action 'TestIngress.forward'.*port"):
        index.action("forward").params["prot"]
    with pytest.raises(KeyError, match="no match field 'dst'"):
        index.table("dmac").match_fields.get("dst")
    with pytest.raises(KeyError, match="no counter 12345"):
        index.counter(12345)
    with pytest.raises(KeyError, match="no register"):
        index.register("nope")
    with pytest.raises(KeyError, match="no table 'x'"):
        TableEntry("x", {"a": 1}).to_proto(index)


def test_load_p4info_text_and_binary(tmp_path, compiled: CompiledProgram) -> None:
    txt, binf = tmp_path / "p.txt", tmp_path / "p.bin"
    txt.write_text(str(compiled.p4info))
    binf.write_bytes(compiled.p4info.SerializeToString())
    assert load_p4info(txt) == compiled.p4info
    assert load_p4info(binf) == compiled.p4info
    assert P4Index.from_file(txt).table("smac").id == P4Index(compiled.p4info).table("smac").id


# --- entities ------------------------------------------------------------------------------------

def _round_trip(index: P4Index, entity):
    msg = entity_to_proto(index, entity)
    back = entity_from_proto(index, pb.Entity.FromString(msg.SerializeToString()))
    assert back == entity, (back, entity)
    return msg


def test_table_entry_round_trips(index: P4Index) -> None:
    mac = codec.mac("02:00:00:00:00:01")
    msg = _round_trip(index, TableEntry("dmac", {"hdr.ethernet.dst": Exact(mac)}, Action("forward", {"port": 3})))
    te = msg.table_entry
    assert te.table_id == index.table("dmac").id
    assert te.match[0].exact.value == bytes.fromhex("020000000001")
    assert te.action.action.params[0].value == b"\x03"
    _round_trip(index, TableEntry("dst_prefix", {"hdr.ethernet.dst": LPM(0x020000000000, 8)},
                                  Action("flood", {"group": 7})))
    _round_trip(index, TableEntry("acl", {"hdr.ethernet.ether_type": Ternary(0x0800, 0xFFFF),
                                          "hdr.ethernet.src": Ternary(0x020000000000, 0xFF0000000000)},
                                  Action("drop"), priority=10, counter_data=CounterData(3, 300)))
    _round_trip(index, TableEntry("classify", {"hdr.ethernet.ether_type": Range(0x0600, 0x0800),
                                               "sm.ingress_port": Optional(2)}, Action("NoAction"), priority=1))
    _round_trip(index, TableEntry("smac", {"hdr.ethernet.src": Exact(5)}, Action("known"),
                                  idle_timeout_ns=10**9, metadata=b"cookie"))
    _round_trip(index, TableEntry("dmac", action=Action("forward", {"port": 1}), is_default=True))
    # A bare int is an exact match.
    assert TableEntry("dmac", {"hdr.ethernet.dst": 5}).match == {"hdr.ethernet.dst": Exact(5)}
    # Meter config goes along (the program has none: just the encoding).
    te = TableEntry("dmac", {"hdr.ethernet.dst": 1}, meter_config=MeterConfig(1, 2, 3, 4)).to_proto(index)
    assert te.meter_config.pir == 3


def test_dont_care_matches_are_omitted(index: P4Index) -> None:
    te = TableEntry("acl", {"hdr.ethernet.ether_type": Ternary(0, 0),
                            "hdr.ethernet.src": Ternary(1, 0xFF)}, priority=1).to_proto(index)
    assert [m.field_id for m in te.match] == [2]
    assert not TableEntry("dst_prefix", {"hdr.ethernet.dst": LPM(0, 0)}).to_proto(index).match
    assert [m.field_id for m in TableEntry("classify", {"hdr.ethernet.ether_type": Range(0, 0xFFFF),
                                                        "sm.ingress_port": Optional(1)}).to_proto(index).match] == [2]


def test_bad_table_entries_are_refused_before_the_wire(index: P4Index) -> None:
    with pytest.raises(ValueError, match="is an exact match; got LPM"):
        TableEntry("dmac", {"hdr.ethernet.dst": LPM(0, 8)}).to_proto(index)
    with pytest.raises(ValueError, match="beyond the prefix"):
        TableEntry("dst_prefix", {"hdr.ethernet.dst": LPM(0x020000000001, 8)}).to_proto(index)
    with pytest.raises(ValueError, match="prefix length 49"):
        TableEntry("dst_prefix", {"hdr.ethernet.dst": LPM(0, 49)}).to_proto(index)
    with pytest.raises(ValueError, match="outside mask"):
        TableEntry("acl", {"hdr.ethernet.ether_type": Ternary(0x0801, 0xFF00)}).to_proto(index)
    with pytest.raises(ValueError, match="empty range"):
        TableEntry("classify", {"hdr.ethernet.ether_type": Range(5, 4)}).to_proto(index)
    with pytest.raises(ValueError, match="does not fit in 9 bits"):
        TableEntry("dmac", {"hdr.ethernet.dst": 1}, Action("forward", {"port": 512})).to_proto(index)
    with pytest.raises(ValueError, match="missing parameters port"):
        Action("forward").to_proto(index)
    with pytest.raises(KeyError, match="no param 'prt'"):
        Action("forward", {"prt": 1}).to_proto(index)
    with pytest.raises(ValueError, match="default entry has no match"):
        TableEntry("dmac", {"hdr.ethernet.dst": 1}, is_default=True).to_proto(index)


def test_other_entities_round_trip(index: P4Index) -> None:
    _round_trip(index, CounterEntry("port_counter", 3, CounterData(1, 64)))
    assert entity_to_proto(index, CounterEntry("")).counter_entry.counter_id == 0  # all counters
    assert not entity_to_proto(index, CounterEntry("port_counter")).counter_entry.HasField("index")
    _round_trip(index, DirectCounterEntry(TableEntry("acl", {"hdr.ethernet.ether_type": Ternary(1, 1)},
                                                     priority=5), CounterData(7, 8)))
    _round_trip(index, RegisterEntry("scratch", 2, 0xDEADBEEF))
    with pytest.raises(ValueError, match="does not fit in 32 bits"):
        RegisterEntry("scratch", 2, 2**32).to_proto(index)
    _round_trip(index, MulticastGroupEntry(5, (Replica(1), Replica(2, 1))))
    assert MulticastGroupEntry(5, [1, (2, 1)]) == MulticastGroupEntry(5, (Replica(1), Replica(2, 1)))
    _round_trip(index, CloneSessionEntry(100, [3], class_of_service=1, packet_length_bytes=128))
    _round_trip(index, DigestEntry("learn_t", max_timeout_ns=0, max_list_size=1, ack_timeout_ns=5))
    u = Update(UpdateType.MODIFY, CounterEntry("port_counter", 1, CounterData()))
    assert u.to_proto(index).type == pb.Update.MODIFY


def test_stream_messages_round_trip(index: P4Index) -> None:
    po = PacketOut(b"frame", {"egress_port": 2, "_pad": 0})
    msg = po.to_proto(index)
    assert [(m.metadata_id, m.value) for m in msg.metadata] == [(1, b"\x02"), (2, b"\x00")]
    assert PacketOut.from_proto(index, msg) == po
    with pytest.raises(ValueError, match="missing metadata _pad"):
        PacketOut(b"x", {"egress_port": 2}).to_proto(index)
    with pytest.raises(ValueError, match="does not fit"):
        PacketOut(b"x", {"egress_port": 512, "_pad": 0}).to_proto(index)
    pi = PacketIn(b"frame", {"ingress_port": 1, "_pad": 0})
    assert PacketIn.from_proto(index, pi.to_proto(index)) == pi
    dl = DigestList("learn_t", 4, ({"src": 0x0A0B0C0D0E0F, "port": 1},), 99)
    assert DigestList.from_proto(index, dl.to_proto(index)) == dl
    note = IdleTimeoutNotification((TableEntry("smac", {"hdr.ethernet.src": Exact(1)}, Action("known"),
                                                idle_timeout_ns=5),), 12)
    assert IdleTimeoutNotification.from_proto(index, note.to_proto(index)) == note


def test_table_entry_key_is_hashable(index: P4Index) -> None:
    a = TableEntry("dmac", {"hdr.ethernet.dst": 1}, Action("forward", {"port": 1}))
    b = TableEntry("dmac", {"hdr.ethernet.dst": Exact(1)}, Action("forward", {"port": 2}))
    assert a.key == b.key and len({a.key, b.key}) == 1


def test_compact_str_for_logs(index: P4Index) -> None:
    e = TableEntry("acl", {"hdr.ethernet.ether_type": Ternary(0x800, 0xFFFF)}, Action("drop"), priority=3)
    assert str(e) == "acl[hdr.ethernet.ether_type=0x800&&&0xffff] prio 3 -> drop()"
    assert str(TableEntry("dmac", action=Action("forward", {"port": 2}), is_default=True)) == \
        "dmac[default] -> forward(port=0x2)"
    assert str(Update(UpdateType.DELETE, TableEntry("dst_prefix", {"hdr.ethernet.dst": LPM(0, 0)}))) == \
        "DELETE dst_prefix[hdr.ethernet.dst=0x0/0]"
    wildcard = entity_to_proto(index, TableEntry(""))
    assert wildcard.WhichOneof("entity") == "table_entry" and wildcard.table_entry.table_id == 0
