"""SwitchState's data-plane API on its own: lookup per match kind, priorities, defaults, counters."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest
from google.protobuf import text_format
from p4.config.v1 import p4info_pb2

from p4sim.runtime.device import PipelineConfigError
from p4sim.runtime.state import SwitchState
from p4sim.runtime.tables import ConstEntry

P4INFO = Path(__file__).parent / "p4info" / "runtime_test.p4info.txtpb"
EXACT_T, LPM_T, ACL_T, SMALL_T, CONST_T, VRF_T, BIG_T = range(33554433, 33554440)
SET_PORT, DROP, NOACTION, SET_NHOP = 16777217, 16777218, 16777219, 16777220


def load_p4info() -> p4info_pb2.P4Info:
    return text_format.Parse(P4INFO.read_text(), p4info_pb2.P4Info())


@pytest.fixture
def state() -> SwitchState:
    return SwitchState(load_p4info())


def test_exact_hit_miss_and_direct_counter(state: SwitchState) -> None:
    t = state.table(EXACT_T)
    t.insert((0xAABBCCDDEEFF, 3), 0, SET_PORT, (7,))
    hit = state.lookup(EXACT_T, (0xAABBCCDDEEFF, 3), 100, 64)
    assert hit.hit and hit.action == (SET_PORT, (7,)) and hit.params == (7,)
    assert (hit.packets, hit.bytes) == (1, 64)
    state.lookup(EXACT_T, (0xAABBCCDDEEFF, 3), 200, 100)
    assert (hit.packets, hit.bytes) == (2, 164)
    assert hit.last_hit_ns == 200  # idle-timeout table: a hit refreshes the entry
    miss = state.lookup(EXACT_T, (1, 3), 300, 10)
    assert not miss.hit and miss.action_id == NOACTION  # P4Info has NoAction: the default


def test_lpm_longest_prefix_wins(state: SwitchState) -> None:
    t = state.table(LPM_T)
    t.insert(((0x0A000000, 8),), 0, SET_NHOP, (1, 1))
    t.insert(((0x0A010000, 16),), 0, SET_NHOP, (2, 2))
    t.insert(((0x0A010100, 24),), 0, SET_NHOP, (3, 3))
    t.insert(((0, 0),), 0, SET_NHOP, (9, 9))  # /0: matches everything
    assert state.lookup(LPM_T, (0x0A010105,), 0, 0).params == (3, 3)
    assert state.lookup(LPM_T, (0x0A01FF05,), 0, 0).params == (2, 2)
    assert state.lookup(LPM_T, (0x0AFFFFFF,), 0, 0).params == (1, 1)
    assert state.lookup(LPM_T, (0x0B000000,), 0, 0).params == (9, 9)
    t.delete(((0x0A010100, 24),), 0)
    assert state.lookup(LPM_T, (0x0A010105,), 0, 0).params == (2, 2)


def test_lpm_with_exact_field(state: SwitchState) -> None:
    t = state.table(VRF_T)
    t.insert((1, (0x0A000000, 8)), 0, SET_PORT, (1,))
    t.insert((2, (0x0A000000, 8)), 0, SET_PORT, (2,))
    t.insert((2, (0x0A000000, 24)), 0, SET_PORT, (3,))
    assert state.lookup(VRF_T, (1, 0x0A000001), 0, 0).params == (1,)
    assert state.lookup(VRF_T, (2, 0x0A000001), 0, 0).params == (3,)
    assert state.lookup(VRF_T, (2, 0x0A0A0001), 0, 0).params == (2,)
    assert not state.lookup(VRF_T, (3, 0x0A000001), 0, 0).hit


def test_ternary_range_optional_priorities(state: SwitchState) -> None:
    t = state.table(ACL_T)
    any_port = (0, 0xFFFF)
    t.insert(((0x0A000000, 0xFF000000), any_port, None), 10, SET_PORT, (1,))
    t.insert(((0x0A000000, 0xFF000000), (80, 90), None), 20, SET_PORT, (2,))
    t.insert(((0, 0), any_port, 17), 30, DROP, ())
    assert state.lookup(ACL_T, (0x0A000001, 22, 6), 0, 0).params == (1,)
    assert state.lookup(ACL_T, (0x0A000001, 85, 6), 0, 0).params == (2,)  # higher priority wins
    assert state.lookup(ACL_T, (0x0A000001, 85, 17), 0, 0).action_id == DROP  # optional exact
    assert not state.lookup(ACL_T, (0x0B000001, 85, 6), 0, 0).hit
    t.delete(((0, 0), any_port, 17), 30)
    assert state.lookup(ACL_T, (0x0A000001, 85, 17), 0, 0).params == (2,)


def test_default_entry_and_const_entries(state: SwitchState) -> None:
    # P4Info says const_tbl's default is drop (const).
    assert state.lookup(CONST_T, (5,), 0, 0).action_id == DROP
    state.add_const_entries(CONST_T, [ConstEntry((5,), SET_PORT, (4,))])
    assert state.lookup(CONST_T, (5,), 0, 0).params == (4,)
    assert state.table(CONST_T).get((5,), 0).is_const
    state.set_initial_default(LPM_T, SET_NHOP, (1, 2), const=False)
    miss = state.lookup(LPM_T, (1,), 0, 0)
    assert not miss.hit and miss.action == (SET_NHOP, (1, 2))


def test_table_size_limit(state: SwitchState) -> None:
    t = state.table(SMALL_T)
    for k in range(4):
        t.insert((k,), 0, SET_PORT, (k,))
    with pytest.raises(Exception) as err:
        t.insert((9,), 0, SET_PORT, (0,))
    assert "full" in str(err.value)


def test_externs_pre_and_packet_in(state: SwitchState) -> None:
    state.count(302000001, 3, 100)
    assert (state.counters[302000001].packets[3], state.counters[302000001].bytes[3]) == (1, 100)
    state.register_write(369098753, 2, (1 << 40) + 5)  # masked to bit<32>
    assert state.register_read(369098753, 2) == 5
    assert state.meter_config(335544321, 0) is None
    assert state.mcast_group(1) is None and state.clone_session(1) is None
    sent = []
    state.set_notify(sent.append)
    # ingress_port=5 (9 bits), reason=3 (3 bits), 4 pad bits -> 0b000000101_011_0000
    state.packet_in(bytes([0b00000010, 0b10110000]) + b"payload")
    pkt = sent[0].packet
    assert pkt.payload == b"payload"
    assert [(m.metadata_id, m.value) for m in pkt.metadata] == [(1, b"\x05"), (2, b"\x03")]


def test_bad_p4info_rejected() -> None:
    p4info = load_p4info()
    p4info.tables[0].action_refs.add().id = 12345
    with pytest.raises(PipelineConfigError):
        SwitchState(p4info)


def test_exact_entries_are_compact(state: SwitchState) -> None:
    """Bytes per exact entry, measured on 100k entries: 1M must fit well under 1 GiB."""
    t = state.table(BIG_T)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for k in range(100_000):
        t.insert((k,), 0, SET_PORT, (k & 0x1FF,))
    per_entry = (tracemalloc.get_traced_memory()[0] - before) / 100_000
    tracemalloc.stop()
    assert per_entry < 600, per_entry
    assert state.lookup(BIG_T, (99_999,), 0, 0).params == (99_999 & 0x1FF,)


def test_idle_expiry_is_scheduled_per_entry(state: SwitchState) -> None:
    """Expiry follows the last hit, notifies once per TTL, forgets deleted entries and restarts on
    a new timeout; entries not yet due are not returned (the heap only yields what is due)."""
    t = state.table(EXACT_T)
    quiet = t.insert((1, 1), 0, SET_PORT, (1,), 0)
    busy = t.insert((2, 1), 0, SET_PORT, (2,), 0)
    gone = t.insert((3, 1), 0, SET_PORT, (3,), 0)
    for e in (quiet, busy, gone):
        t.set_idle_timeout(e, 100, 0)
    assert t.expired_entries(99) == []
    state.lookup(EXACT_T, (2, 1), 50, 64)  # busy is hit: due at 150 now
    t.delete((3, 1), 0)
    assert t.expired_entries(100) == [quiet]
    assert t.expired_entries(149) == []  # quiet was notified at 100: next at 200
    assert t.expired_entries(150) == [busy]
    t.set_idle_timeout(quiet, 1000, 180)  # a MODIFY with a new TTL restarts its clock
    assert t.expired_entries(250) == [busy]
    assert t.expired_entries(1179) == [busy]  # once, however many TTLs went by unseen
    assert t.expired_entries(1180) == [quiet]
    t.set_idle_timeout(busy, 0, 1200)  # no TTL any more: never notified
    assert busy not in t.expired_entries(10**9)
