"""controller/dataplane.py against the real splice program: its P4Info (compiled here from p4src/)
and the constants of p4src/include/headers.p4. Every builder's entity must convert with the real
P4Index, and read back into the same values; drift between the P4 source and the schema fails here."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from p4.config.v1 import p4info_pb2
from p4.v1 import p4runtime_pb2
from p4splice.controller import dataplane as dp
from p4splice.controller.p4rt import (
    CloneSessionEntry,
    CounterEntry,
    P4Index,
    PacketIn,
    PacketOut,
    TableEntry,
    codec,
)
from p4splice.controller.p4rt.entities import entity_from_proto, entity_to_proto
from p4splice.controller.splice.model import EntryMatch, FlowKey

from p4sim.compiler.driver import compile_file

ROOT = Path(__file__).resolve().parents[2]
SPLICE = ROOT / "p4src" / "splice.p4"
HEADERS = ROOT / "p4src" / "include" / "headers.p4"
MAC1, MAC2 = "02:00:00:00:00:01", "02:00:00:00:00:02"
KEY = dp.FlowMatch.of(1, "10.0.0.5", 40000, "10.0.1.10", 80)


@pytest.fixture(scope="module")
def p4info() -> p4info_pb2.P4Info:
    return compile_file(SPLICE).p4info


@pytest.fixture(scope="module")
def index(p4info: p4info_pb2.P4Info) -> P4Index:
    return P4Index(p4info)


def _roundtrip(index: P4Index, entity):  # noqa: ANN001, ANN202 - any entity
    """Through the wire form and back (the switch would see exactly this)."""
    return entity_from_proto(index, entity_to_proto(index, entity))


def test_the_real_p4info_matches_the_schema(index: P4Index) -> None:
    assert dp.check_p4info(index) == []


def test_constants_match_headers_p4() -> None:
    text = HEADERS.read_text()

    def consts(prefix: str) -> dict[str, int]:
        return {m[1]: int(m[2]) for m in re.finditer(rf"const bit<\d+>\s+{prefix}(\w+)\s*=\s*(\d+);", text)}

    assert {r.name: int(r) for r in dp.PacketInReason} == consts("PIN_")
    mal = consts("MAL_")
    assert mal.pop("REASONS") == dp.MALFORMED_COUNTER_SIZE
    assert {r.name: int(r) for r in dp.MalformedReason} == mal
    defines = {m[1]: int(m[2]) for m in re.finditer(r"#define (\w+) (\d+)", text)}
    assert defines["CPU_PORT"] == dp.DEFAULT_CPU_PORT
    assert defines["CPU_CLONE_SESSION_ID"] == dp.CPU_CLONE_SESSION_ID


def test_every_builder_converts_with_the_real_p4info(index: P4Index) -> None:
    leg = dict(port=3, smac=MAC1, dmac=MAC2, seq_delta=5, ack_delta=-5, tsval_delta=7, tsecr_delta=-7,
               win_shift_from=7, win_shift_to=6)
    entities = [
        dp.route("10.0.1.0/24", 2, MAC1, MAC2), dp.route_key("10.0.1.0/24"), dp.route("0.0.0.0/0", 1, MAC1, MAC2),
        dp.service("10.0.1.10", 80, 3), dp.service_key("10.0.1.10", 80),
        dp.flow_translate(KEY, **leg), dp.flow_hold(KEY, **leg),
        dp.flow_translate_nat(KEY, new_src="192.0.2.1", new_dst="192.0.2.2", new_src_port=1, new_dst_port=2, **leg),
        dp.flow_punt(KEY), dp.flow_drop(KEY, idle_timeout_ns=10**9), dp.flow_key(KEY), dp.flows_read(),
        dp.malformed_counter(), dp.malformed_counter(dp.MalformedReason.TRUNCATED), dp.cpu_clone_session(),
    ]
    for e in entities:
        back = _roundtrip(index, e)
        if isinstance(e, TableEntry):
            assert isinstance(back, TableEntry)
            # Reads come back with aliases: compare by the full name the alias stands for.
            assert index.tables.get(back.table).name == e.table
            assert back.match == e.match or (not back.match and e.match["ipv4_dst"].prefix_len == 0)
            if e.action is not None:
                assert index.actions.get(back.action.name).name == e.action.name
                assert back.action.params == e.action.params
        elif isinstance(e, CounterEntry):
            assert index.counters.get(back.counter).name == e.counter and back.index == e.index
        else:
            assert back == e
    for msg in (dp.packet_out(2, b"frame").to_proto(index),):
        assert PacketOut.from_proto(index, msg) == PacketOut(b"frame", {"egress_port": 2, "_pad": 0})


def test_clone_session_goes_to_the_cpu_port() -> None:
    assert dp.cpu_clone_session() == CloneSessionEntry(99, ((255, 1),))
    assert dp.cpu_clone_session(64).replicas[0].port == 64


def test_parsers_give_back_what_the_builders_took(index: P4Index) -> None:
    r = dp.parse_route(index, _roundtrip(index, dp.route("10.0.1.0/24", 2, MAC1, MAC2)))
    assert (str(r.prefix), r.port, r.smac, r.dmac) == ("10.0.1.0/24", 2, codec.mac(MAC1), codec.mac(MAC2))
    assert str(dp.parse_route(index, _roundtrip(index, dp.route("0.0.0.0/0", 1, MAC1, MAC2))).prefix) == "0.0.0.0/0"
    s = dp.parse_service(index, _roundtrip(index, dp.service("10.0.1.10", 80, 3)))
    assert s == dp.Service(codec.ipv4("10.0.1.10"), 80, 3)
    assert s.to_dict()["server"] == "10.0.1.10:80"

    f = dp.parse_flow(index, _roundtrip(index, dp.flow_translate(KEY, 3, MAC1, MAC2, seq_delta=-1000, ack_delta=7,
                                                                   win_shift_from=7, win_shift_to=2,
                                                                   idle_timeout_ns=5)))
    assert f.match == KEY and f.action == "translate" and f.idle_timeout_ns == 5
    assert f.translation == dp.Translation(3, codec.mac(MAC1), codec.mac(MAC2), 2**32 - 1000, 7, 0, 0, 7, 2)
    assert dp.signed_delta(f.translation.seq_delta) == -1000
    nat = dp.parse_flow(index, _roundtrip(index, dp.flow_translate_nat(KEY, 2, MAC1, MAC2, "192.0.2.1", "192.0.2.2",
                                                                       1, 2)))
    assert nat.action == "translate_nat" and nat.nat == (codec.ipv4("192.0.2.1"), codec.ipv4("192.0.2.2"), 1, 2)
    assert nat.to_dict()["new_src"] == "192.0.2.1:1"
    for build, name in ((dp.flow_hold, "hold"),):
        assert dp.parse_flow(index, _roundtrip(index, build(KEY, 3, MAC1, MAC2))).action == name
    assert dp.parse_flow(index, _roundtrip(index, dp.flow_punt(KEY))).action == "punt"
    drop = dp.parse_flow(index, _roundtrip(index, dp.flow_drop(KEY)))
    assert drop.action == "drop" and drop.translation is None


def test_flow_keys_take_the_splice_cores_entry_match(index: P4Index) -> None:
    flow = FlowKey("10.0.0.5", 40000, "10.0.1.10", 80)
    assert dp.FlowMatch.coerce(EntryMatch.c2s(flow, 1)) == KEY
    assert dp.flow_key(EntryMatch.c2s(flow, 1)) == dp.flow_key(KEY)
    s2c = dp.FlowMatch.coerce(EntryMatch.s2c(flow, 2))
    assert (s2c.ingress_port, s2c.src, s2c.dst) == (2, "10.0.1.10:80", "10.0.0.5:40000")
    assert str(KEY) == "[1] 10.0.0.5:40000 > 10.0.1.10:80"


def test_packet_in_decoding(index: P4Index) -> None:
    msg = PacketIn(b"\x01\x02", {"ingress_port": 3, "reason": 2, "_pad": 0}).to_proto(index)
    pin = dp.SplicePacketIn.decode(PacketIn.from_proto(index, msg))
    assert pin == dp.SplicePacketIn(dp.PacketInReason.SYN_ACK, 3, b"\x01\x02")
    assert pin.is_copy
    punt = dp.SplicePacketIn.decode(PacketIn(b"", {"ingress_port": 1, "reason": 7, "_pad": 0}))
    assert punt.reason is dp.PacketInReason.PUNT and not punt.is_copy
    future = dp.SplicePacketIn.decode(PacketIn(b"", {"ingress_port": 1, "reason": 42, "_pad": 0}))
    assert future.reason == 42 and not future.is_copy
    with pytest.raises(ValueError, match="reason"):
        dp.SplicePacketIn.decode(PacketIn(b"", {"ingress_port": 1}))


@pytest.mark.parametrize("call, message", [
    (lambda: dp.route("10.0.0.1/8", 1, MAC1, MAC2), "host bits"),
    (lambda: dp.route("10.0.0.0/33", 1, MAC1, MAC2), "not an IPv4 prefix"),
    (lambda: dp.route("10.0.0.0/8", 512, MAC1, MAC2), "not a switch port"),
    (lambda: dp.route("10.0.0.0/8", 1, "02:00:00:00:00", MAC2), "smac: not a MAC"),
    (lambda: dp.service("10.0.0.300", 80, 3), "not an IPv4 address"),
    (lambda: dp.service("10.0.0.3", 70000, 3), "not a TCP port"),
    (lambda: dp.flow_translate(KEY, 1, MAC1, MAC2, seq_delta=2**32), "not a 32-bit delta"),
    (lambda: dp.flow_translate(KEY, 1, MAC1, MAC2, win_shift_to=15), "window scale"),
    (lambda: dp.flow_punt(KEY, idle_timeout_ns=-1), "negative"),
    (lambda: dp.FlowMatch.of(600, "10.0.0.1", 1, "10.0.0.2", 2), "ingress port"),
    (lambda: dp.packet_out(1024, b""), "egress port"),
])
def test_bad_values_are_refused_with_a_readable_message(call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()


def test_negative_deltas_wrap_mod_2_32() -> None:
    entry = dp.flow_translate(KEY, 1, MAC1, MAC2, seq_delta=-1, ack_delta=-(2**32 - 1))
    assert entry.action.params["seq_delta"] == 2**32 - 1
    assert entry.action.params["ack_delta"] == 1


def test_check_p4info_names_what_drifted(p4info: p4info_pb2.P4Info) -> None:
    changed = p4info_pb2.P4Info()
    changed.CopyFrom(p4info)
    for a in changed.actions:
        if a.preamble.name == dp.TRANSLATE:
            a.params[3].bitwidth = 16  # seq_delta
    for t in changed.tables:
        if t.preamble.name == dp.ROUTES:
            t.match_fields[0].name = "dst"
    del changed.counters[:]
    problems = dp.check_p4info(P4Index(changed))
    assert any("SpliceIngress.flows.translate" in p and "seq_delta" in p for p in problems)
    assert any(p.startswith(f"table {dp.ROUTES}: key") for p in problems)
    assert f"missing counter {dp.MALFORMED_COUNTER}" in problems
    assert isinstance(dp.malformed_counter(), CounterEntry)


def test_read_filter_asks_for_idle_time_and_writes_never_send_it(index: P4Index) -> None:
    from p4splice.controller.p4rt import TableEntry, Update, UpdateType
    from p4splice.controller.p4rt.entities import entity_to_proto

    asked = entity_to_proto(index, TableEntry(dp.FLOWS, time_since_last_hit_ns=0))
    assert asked.table_entry.HasField("time_since_last_hit")
    assert not entity_to_proto(index, TableEntry(dp.FLOWS)).table_entry.HasField("time_since_last_hit")
    read_back = dataclasses.replace(dp.flow_punt(dp.FlowMatch(1, 0x0A000001, 0x0A000002, 1000, 80)),
                                    time_since_last_hit_ns=5_000)
    out = p4runtime_pb2.Update()
    Update(UpdateType.MODIFY, read_back).fill(index, out)
    assert out.entity.table_entry.table_id and not out.entity.table_entry.HasField("time_since_last_hit")
