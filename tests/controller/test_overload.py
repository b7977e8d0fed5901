"""The overload guard: how far behind the switch's digests the controller is, and when to drain."""

from __future__ import annotations

import pytest
from p4splice.controller.overload import OverloadGuard, Verdict

S = 1_000_000_000  # ns


def test_lag_is_measured_from_the_fastest_delivery_whatever_the_clocks() -> None:
    g = OverloadGuard(lag_high=1.0, lag_low=0.2, min_drain=2.0)
    skew = 7_200 * S  # the switch's clock two hours off the controller's
    assert g.on_digest_list(100 * S, 100 * S + skew + 2_000_000, now=0.0) is None
    assert g.lag == 0.0
    assert g.on_digest_list(101 * S, 101 * S + skew + 502_000_000, now=1.0) is None  # 0.5 s late
    assert g.lag == pytest.approx(0.5)
    assert g.on_digest_list(102 * S, 102 * S + skew + 1_302_000_000, now=2.0) is Verdict.DRAIN
    assert g.draining and g.episodes == 1


def test_a_drain_lasts_its_least_and_ends_once_caught_up() -> None:
    g = OverloadGuard(lag_high=1.0, lag_low=0.2, min_drain=2.0)
    g.on_digest_list(10 * S, 10 * S, now=0.0)
    assert g.on_digest_list(10 * S, 13 * S, now=3.0) is Verdict.DRAIN
    # still 3 s behind, lists keep coming: no end, however long
    for k in range(1, 50):
        assert g.on_digest_list(10 * S + k, 13 * S + k, now=3.0 + k * 0.1) is None
    # caught up, and the least drain (2 s) is over: resume
    assert g.on_digest_list(20 * S, 20 * S + 100_000_000, now=8.0) is Verdict.RESUME
    assert not g.draining
    # a second episode soon after: twice as long at least; the lists stop, check() ends it
    assert g.on_digest_list(30 * S, 32 * S, now=10.0) is Verdict.DRAIN
    assert g.hold == 4.0
    assert g.check(12.0) is None  # before its hold
    assert g.check(14.0) is Verdict.RESUME  # no list for 4 s: nothing was queued behind the last
    assert g.episodes == 2 and not g.draining
    # a third, long after: back to the least
    assert g.on_digest_list(40 * S, 42 * S, now=100.0) is Verdict.DRAIN and g.hold == 2.0


def test_no_list_for_lag_low_is_caught_up() -> None:
    g = OverloadGuard(lag_high=1.0, lag_low=0.2, min_drain=0.5)
    g.on_digest_list(10 * S, 10 * S, now=0.0)
    assert g.on_digest_list(10 * S, 12 * S, now=1.0) is Verdict.DRAIN
    assert g.check(1.4) is None  # within min_drain
    assert g.check(1.6) is Verdict.RESUME  # 0.6 s without a list: nothing queued behind


def test_a_switch_without_timestamps_is_never_behind() -> None:
    g = OverloadGuard()
    for k in range(100):
        assert g.on_digest_list(0, k * S, now=float(k)) is None
    assert not g.draining


def test_reset_learns_a_new_switch_afresh() -> None:
    g = OverloadGuard()
    g.on_digest_list(10 * S, 10 * S, now=0.0)
    g.reset()
    # a new switch whose clock is 3 s behind: not lag, its first list sets the offset
    assert g.on_digest_list(10 * S, 13 * S, now=1.0) is None and g.lag == 0.0


def test_evictions_faster_than_the_bound_drain_and_repeated_drains_back_off() -> None:
    """A flood the switch carries before the controller falls behind: pending handshakes evicted
    faster than evictions_high a second. Drains that follow each other last 2, 4, 8 ... s."""
    g = OverloadGuard(evictions_high=500, min_drain=2.0, max_drain=8.0)
    assert g.on_evictions(0, now=0.0) is None
    assert g.on_evictions(300, now=0.5) is None  # under a second: not judged yet
    assert g.on_evictions(400, now=1.0) is None and g.eviction_rate == 400  # 400/s: no flood
    assert g.on_evictions(1000, now=2.0) is Verdict.DRAIN and g.eviction_rate == 600
    holds = [g.hold]
    t = 2.0
    for _ in range(4):
        t += g.hold
        assert g.check(t) is Verdict.RESUME
        assert g.on_evictions(5000, now=t) is None  # counted afresh from the end of the drain
        t += 1.0
        assert g.on_evictions(5700, now=t) is Verdict.DRAIN
        holds.append(g.hold)
    assert holds == [2.0, 4.0, 8.0, 8.0, 8.0]
    # a counter that went back (a new core): a new baseline, no verdict
    assert g.on_evictions(3, now=t + 5) is None


def test_more_evictions_than_a_seconds_worth_drain_at_once() -> None:
    """A flood that went on through a drain shows within a fraction of a second of its end: more
    evictions than ``evictions_high`` in under a second is a rate past it already."""
    g = OverloadGuard(evictions_high=200)
    assert g.on_evictions(0, now=0.0) is None
    assert g.on_evictions(200, now=0.1) is None  # not more than a second's worth yet
    assert g.on_evictions(201, now=0.2) is Verdict.DRAIN and g.eviction_rate == pytest.approx(1005)
    assert g.on_evictions(900, now=0.3) is None  # draining: nothing more to say


def test_another_counter_is_judged_apart() -> None:
    """The controller's handshakes also count SYNs no ACK answered: each counter has its own
    samples, and either one past the bound drains."""
    g = OverloadGuard(evictions_high=100)
    assert g.on_evictions(0, now=0.0) is None and g.on_evictions(5000, now=0.0, counter="unanswered") is None
    assert g.on_evictions(50, now=1.0) is None  # evictions: 50/s
    assert g.on_evictions(5000 + 150, now=1.0, counter="unanswered") is Verdict.DRAIN  # 150/s
    # a count that went down (a burst of real clients answering at once) is a new baseline
    g2 = OverloadGuard(evictions_high=100)
    g2.on_evictions(300, now=0.0, counter="unanswered")
    assert g2.on_evictions(10, now=0.5, counter="unanswered") is None
    assert g2.on_evictions(90, now=1.6, counter="unanswered") is None and not g2.draining


def test_without_evictions_high_evictions_are_no_sign() -> None:
    g = OverloadGuard()
    g.on_evictions(0, now=0.0)
    assert g.on_evictions(1_000_000, now=1.0) is None and not g.draining


def test_bad_bounds_are_refused() -> None:
    with pytest.raises(ValueError):
        OverloadGuard(lag_high=0.2, lag_low=0.2)
    with pytest.raises(ValueError):
        OverloadGuard(lag_low=0)


def test_a_drain_goes_on_while_the_services_take_a_flood() -> None:
    """After its least time a drain ends only once the SYNs the services' entries take (two
    packets each, with the SYN-ACK) fall to what real clients account for: the connections
    established the second before the drain, plus evictions_high."""
    g = OverloadGuard(evictions_high=200, min_drain=2.0)
    g.on_established(30, now=9.5)  # real clients: 30 a second ...
    g.on_established(0, now=10.2)
    assert g.on_evictions(0, now=9.0) is None
    assert g.on_evictions(900, now=10.5) is Verdict.DRAIN
    assert g.established_rate == 30
    packets, t = 0, 10.5
    g.on_service_packets(packets, t)  # the first read: a baseline
    for _ in range(20):  # 10 s of 2,000 SYN/s (4,000 packets a second)
        t += 0.5
        packets += 2000
        g.on_service_packets(packets, t)
        assert g.check(t) is None, f"resumed at {t} s while the flood went on"
    assert g.syn_rate == 2000 and g.flood_goes_on(t)
    for _ in range(2):  # the flood stops: 100 real SYNs a second (200 packets)
        t += 0.5
        packets += 100
        g.on_service_packets(packets, t)
    assert g.syn_rate == 100 and not g.flood_goes_on(t)
    assert g.check(t) is Verdict.RESUME


def test_without_a_fresh_count_a_drain_ends_after_its_hold() -> None:
    """A program that counts nothing, or a switch that cannot be read: the hold alone decides;
    and a count taken before the drain is no measurement of it."""
    g = OverloadGuard(evictions_high=100, min_drain=2.0)
    g.on_service_packets(0, now=0.0)
    g.on_service_packets(100_000, now=1.0)  # not draining: nothing measured
    assert g.syn_rate == 0
    assert g.on_evictions(0, now=0.0) is None and g.on_evictions(500, now=1.0) is Verdict.DRAIN
    g.on_service_packets(100_000, now=1.1)
    g.on_service_packets(200_000, now=1.6)  # 100,000 SYN/s ...
    assert g.flood_goes_on(1.6)
    assert g.check(3.1) is None
    assert g.check(3.7) is Verdict.RESUME  # ... but not read for 2 s: the hold decides


def test_established_counts_the_second_before_the_drain() -> None:
    for drain_at, want in ((6.5, 50), (7.2, 3), (9.0, 0)):
        g = OverloadGuard(evictions_high=100)
        for k in range(50):
            g.on_established(1, now=5.0 + k * 0.02)  # 50 in the second 5
        g.on_established(3, now=6.1)
        g.on_evictions(0, now=drain_at - 1.0)
        assert g.on_evictions(1000, now=drain_at) is Verdict.DRAIN
        assert g.established_rate == want, drain_at
