"""The rate-limited log: a few lines per kind and interval, the rest counted into the next."""

from __future__ import annotations

import logging

import pytest
from p4splice.controller.lograte import RateLimitedLog


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_per_kind_and_interval_then_a_count(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    lines = RateLimitedLog(logging.getLogger("t.lograte"), interval=5.0, burst=3, clock=clock)
    with caplog.at_level(logging.INFO, logger="t.lograte"):
        written = [lines(logging.INFO, "a", "a %d", i) for i in range(1000)]
        assert written.count(True) == 3 and lines.held_back("a") == 997
        assert lines(logging.INFO, "b", "b") is True  # another kind has its own burst
        clock.now += 4.9
        assert lines(logging.INFO, "a", "a late") is False
        clock.now += 0.1
        assert lines(logging.WARNING, "a", "a again %s", "x") is True
    msgs = [r.getMessage() for r in caplog.records]
    assert msgs == ["a 0", "a 1", "a 2", "b", "a again x (and 998 more like it held back)"]
    assert lines.held_back("a") == 0


def test_lines_below_the_level_cost_no_count(caplog: pytest.LogCaptureFixture) -> None:
    lines = RateLimitedLog(logging.getLogger("t.lograte.quiet"), burst=1)
    with caplog.at_level(logging.WARNING, logger="t.lograte.quiet"):
        assert not any(lines(logging.INFO, "a", "a") for _ in range(10))
        assert lines.held_back("a") == 0
        assert lines(logging.WARNING, "a", "w") is True
    assert [r.getMessage() for r in caplog.records] == ["w"]


def test_bad_bounds_are_refused() -> None:
    with pytest.raises(ValueError):
        RateLimitedLog(logging.getLogger("t"), interval=0)
    with pytest.raises(ValueError):
        RateLimitedLog(logging.getLogger("t"), burst=0)
