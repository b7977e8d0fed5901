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
    # a second episode, then the lists stop: the drain ends after its least, by check()
    assert g.on_digest_list(30 * S, 32 * S, now=10.0) is Verdict.DRAIN
    assert g.check(11.0) is None  # before min_drain
    assert g.check(12.0) is Verdict.RESUME  # no list for 2 s: nothing was queued behind the last
    assert g.episodes == 2 and not g.draining


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


def test_bad_bounds_are_refused() -> None:
    with pytest.raises(ValueError):
        OverloadGuard(lag_high=0.2, lag_low=0.2)
    with pytest.raises(ValueError):
        OverloadGuard(lag_low=0)
