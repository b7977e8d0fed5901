"""digest_batch = "auto": the size of the switch's digest lists follows the rate digests come at."""

import pytest
from p4splice.controller.digestbatch import DigestBatcher

MS = 1_000_000  # ns


def feed(b: DigestBatcher, rate: float, seconds: float, start: float = 0.0, per_list: int = 1,
         late: float = 0.0) -> list[int]:
    """Lists of ``per_list`` digests at ``rate`` digests a second from ``start`` for ``seconds``,
    each ``late`` seconds behind the switch; the sizes the batcher asked for on the way."""
    asked = []
    gap = per_list / rate
    t = start
    while t < start + seconds:
        sent = int(t * 1e9)
        got = b.on_digests(per_list, t, sent, sent + 5 * MS + int(late * 1e9))
        if got is not None:
            asked.append(got)
        t += gap
    return asked


def test_one_by_one_while_one_by_one_keeps_up():
    b = DigestBatcher()
    assert feed(b, 1000, 1.0) == [] and b.size == 1  # on time, below min_rate: nothing to gain
    assert feed(b, 2000, 1.0, start=1.0) == [16]  # 20 digests in 10 ms: lists of 16
    assert b.size == 16


def test_the_size_follows_the_rate_up_at_once_and_down_only_when_far_off():
    b = DigestBatcher(max_size=64)
    assert feed(b, 3300, 0.5) == [32]
    assert feed(b, 7000, 0.5, start=0.5) == [64]
    # slower: 64 still fills within four times the target, so no rewrite every period
    assert feed(b, 2000, 1.0, start=1.0) == []
    # slower still, above min_rate: more than 4 times the target to fill 64, down to what it fills
    assert feed(b, 1500, 1.0, start=2.0) == [8]
    # below min_rate and on time: one by one keeps up
    assert feed(b, 1000, 0.5, start=3.0) == [1]


def test_never_more_than_max_size():
    b = DigestBatcher(max_size=16)
    assert feed(b, 50_000, 0.5) == [16]


def test_a_quiet_period_ends_the_batching():
    """The burst is over: the next lone connection's digests must not wait for a list to fill."""
    b = DigestBatcher()
    feed(b, 5000, 0.5)
    assert b.size == 32
    assert b.check(0.55) is None  # within the period: too early to tell
    assert b.check(0.7) == 1 and b.size == 1
    assert b.check(0.9) is None  # already one by one


def test_behind_the_switch_asks_for_what_the_rate_fills_in_four_times_the_target():
    """The rate a controller that cannot keep up sees is its own pace: being late says more."""
    b = DigestBatcher(max_size=64)
    assert feed(b, 1000, 0.35) == []  # on time below min_rate: one by one
    # late: at once what the rate fills in 40 ms
    assert feed(b, 1000, 0.45, start=0.35, late=0.03) == [32]
    # caught up, below min_rate: one by one again
    assert feed(b, 1000, 0.3, start=0.8)[-1:] == [1]
    assert b.size == 1


def test_far_behind_the_switch_asks_for_the_longest_lists():
    """0.1 s behind, the rate seen is the controller's own pace: the longest lists, whatever it."""
    b = DigestBatcher(max_size=64)
    assert feed(b, 600, 0.3) == []
    assert feed(b, 600, 0.3, start=0.3, late=0.1) == [64]


def test_late_lists_at_a_low_rate_are_a_hiccup_not_a_reason_for_lists():
    """A list late at a few hundred digests a second (a collection, a slow write) must not make
    the next lone connections' digests wait for lists to fill (BMv2 holds partial lists)."""
    b = DigestBatcher()
    assert feed(b, 300, 0.3) == []  # on time
    assert feed(b, 300, 1.0, start=0.3, late=0.2) == [] and b.size == 1
    assert b.lag == pytest.approx(0.2)  # late indeed


def test_a_constant_delay_is_not_being_behind():
    """Clocks that differ, or a fixed delivery delay: the smallest delay seen counts as none."""
    b = DigestBatcher()
    assert feed(b, 450, 1.0, late=3.0) == [] and b.lag == pytest.approx(0.0)


def test_lists_the_switch_does_not_stamp_count_by_rate_alone():
    b = DigestBatcher()
    t, asked = 0.0, []
    while t < 0.5:
        got = b.on_digests(1, t, 0, 10**12)
        asked += [got] if got is not None else []
        t += 1 / 2000
    assert asked == [16] and b.lag == 0.0


def test_reset_starts_over():
    b = DigestBatcher()
    feed(b, 5000, 0.5)
    b.reset()
    assert b.size == 1 and b.rate == 0.0
    assert feed(b, 300, 1.0, start=10.0) == []


def test_bad_settings_are_refused():
    with pytest.raises(ValueError):
        DigestBatcher(max_size=0)
    with pytest.raises(ValueError):
        DigestBatcher(fill=0)


def test_a_burst_is_answered_within_a_fifth_of_a_period():
    """Digests sent one by one while the batcher waits for its period queue up, and a queue of
    lists of one costs one by one to drain: a burst raises the size before the period ends."""
    b = DigestBatcher(period=0.1)
    assert feed(b, 5000, 0.03) == [32]
    assert b.rate == 0.0  # no period closed yet
