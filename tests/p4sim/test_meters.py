"""Tests of p4sim.dataplane.meters: BMv2's two-rate three-colour marker, with explicit time."""

from __future__ import annotations

import pytest

from p4sim.dataplane.meters import GREEN, RED, YELLOW, MeterConfig, MeterState

MS = 1_000_000  # ns
S = 1_000_000_000


def test_unconfigured_meter_is_green() -> None:
    m = MeterState("packets")
    assert all(m.execute(t, 1500) == GREEN for t in range(0, 10 * S, S // 100))
    assert m.config is None


def test_packets_burst_then_colours() -> None:
    # 10 pkt/s committed with burst 2, 20 pkt/s peak with burst 4; all at t = 0.
    m = MeterState("packets")
    m.configure(MeterConfig(cir=10, cburst=2, pir=20, pburst=4))
    colours = [m.execute(0) for _ in range(6)]
    # 2 fit both buckets, 2 more fit only the peak bucket, then the peak bucket is empty.
    assert colours == [GREEN, GREEN, YELLOW, YELLOW, RED, RED]


def test_steady_rate() -> None:
    m = MeterState("packets")
    m.configure((100, 1, 200, 1))
    # At 50 pkt/s (below CIR) every packet is green.
    assert {m.execute(i * 20 * MS) for i in range(1, 100)} == {GREEN}
    # At 150 pkt/s (between CIR and PIR) about a third of packets turn yellow, none red.
    m.configure((100, 1, 200, 1))
    base = 10 * S
    colours = [m.execute(base + i * S // 150) for i in range(1, 1501)]
    assert RED not in colours
    assert 400 <= colours.count(YELLOW) <= 600
    # At 400 pkt/s (above PIR) about half are red.
    m.configure((100, 1, 200, 1))
    base = 30 * S
    colours = [m.execute(base + i * S // 400) for i in range(1, 4001)]
    assert 1800 <= colours.count(RED) <= 2200


def test_red_packets_take_no_tokens_and_recovery() -> None:
    m = MeterState("packets")
    m.configure((1, 1, 2, 2))
    assert [m.execute(0) for _ in range(4)] == [GREEN, YELLOW, RED, RED]
    # Red packets did not debit anything: after 0.5 s the peak bucket has exactly 1 token,
    # the committed one none -> one yellow, then red.
    assert m.execute(S // 2) == YELLOW
    assert m.execute(S // 2) == RED
    # After a long pause both buckets are full again (capped at their bursts).
    assert [m.execute(100 * S) for _ in range(3)] == [GREEN, YELLOW, RED]


def test_bytes_meter_and_microsecond_truncation() -> None:
    # 1 MB/s committed, 2 MB/s peak: BMv2 rates are 1 and 2 bytes per microsecond.
    m = MeterState("bytes")
    m.configure((1_000_000, 1500, 2_000_000, 3000))
    assert m.execute(0, 1500) == GREEN
    assert m.execute(0, 1500) == YELLOW
    assert m.execute(0, 100) == RED
    # 999 ns is still 0 whole microseconds: no tokens yet.
    assert m.execute(999, 1) == RED
    # 1500 us later the committed bucket has 1500 bytes back, the peak one its 3000.
    assert m.execute(1500 * 1000, 1500) == GREEN
    # A bytes meter charges the amount; a packets meter ignores it.
    p = MeterState("packets")
    p.configure((1, 1, 1, 1))
    assert p.execute(0, 9000) == GREEN


def test_reconfigure_refills_and_reset() -> None:
    m = MeterState("packets")
    m.configure((1, 1, 1, 1))
    assert [m.execute(0), m.execute(0)] == [GREEN, RED]
    m.configure((1, 1, 1, 1))
    assert m.execute(0) == GREEN
    m.reset()
    assert [m.execute(0) for _ in range(5)] == [GREEN] * 5


def test_invalid_configs() -> None:
    with pytest.raises(ValueError, match="above PIR"):
        MeterConfig(cir=10, cburst=1, pir=5, pburst=1)
    with pytest.raises(ValueError):
        MeterConfig(cir=-1, cburst=1, pir=5, pburst=1)
    m = MeterState("packets", origin_ns=10 * S)
    m.configure((1, 1, 1, 1))
    with pytest.raises(ValueError):
        m.execute(0)
