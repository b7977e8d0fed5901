"""How many of the switch's handshake digests go in one list: as few as keep up, for latency.

Every DigestList costs the controller a stream message in, its DigestListAck out and a task, and
the switch as much again: about two thirds of what a switch-run handshake costs the controller
when each list holds one digest (1.9 ms against 0.7 ms with lists of 64, docs/benchmarks.md).
Lists of many digests are not the default for everyone, though: a switch that holds a partial
list longer than ``max_timeout_ns`` says (BMv2 1.15.5 holds it some 180 ms) would keep a lone
connection's flow from the controller that long, long enough for a short transfer to end first.

So the controller asks for lists only when one by one would not keep up. ``DigestBatcher``
watches how many digests arrive a second (over ``period``, 100 ms) and how far behind the switch
the lists come (each carries the time the switch sent it; the smallest difference seen is taken
as no delay, as overload.py does), and picks ``max_list_size``:

* at ``min_rate`` (1,500 digests a second, about what the controller takes one by one) or more:
  the largest power of two the rate fills within ``fill`` (10 ms), at most ``max_size``;
* more than ``behind`` (10 ms) late with ``behind_rate`` (500 a second) or more: what the rate
  fills within four times ``fill``, and more than five times ``behind`` late, ``max_size``. The
  rate a controller that cannot keep up sees is its own pace, below the switch's; a list costs
  per list, and filling one costs little next to the queue in front of it. (At a lower rate a
  late list is a hiccup, a collection or a slow write: lists there would only wait.)
* otherwise 1.

It raises the size as soon as a fifth of a period calls for more (the lists of one sent while it
waits queue up, and drain one by one); it lowers it to 1 when a period is on time below
``min_rate`` or brings no digest at all, and otherwise only once the current size would take
more than four times ``fill`` to fill, so that a rate wavering around a boundary does not
rewrite the entry every period. A partial list of a burst's last moments may still wait on a
switch that ignores ``max_timeout_ns`` (BMv2: the first connection after a burst, up to some
200 ms): that once, not for every connection after it. (Measured on the way here: doubling the
size period by period took 0.4 s to reach lists of 64, a good part of a burst spent behind;
the rate alone, without the lag, kept a controller 0.4 s behind on lists of 16; lists from 500
digests a second on held a lone connection after a quick series 226 ms on BMv2.) Nothing here
does I/O: the orchestrator asks, and writes the DigestEntry (MODIFY) when the answer changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field


def _pow2_floor(x: float) -> int:
    """The largest power of two not above ``x`` (1 for anything below 2)."""
    n = int(x)
    return 1 << (n.bit_length() - 1) if n >= 2 else 1


@dataclass
class DigestBatcher:
    max_size: int = 64  # never more per list
    fill: float = 0.010  # seconds: a list should fill within this long at the rate digests come
    min_rate: float = 1500.0  # digests a second from which lists are asked for on the rate alone
    behind_rate: float = 500.0  # ... and from which being behind the switch asks for them
    period: float = 0.1  # seconds over which the rate is measured
    behind: float = 0.010  # seconds late past which the controller is not keeping up
    size: int = 1  # max_list_size asked for now
    rate: float = 0.0  # digests a second over the last period
    lag: float = 0.0  # the latest list of the last period, seconds behind the switch
    _start: float | None = field(default=None, repr=False)  # when the current period began
    _count: int = field(default=0, repr=False)  # digests in it
    _late: float = field(default=0.0, repr=False)  # the latest list in it, seconds
    _offset_ns: int | None = field(default=None, repr=False)  # smallest (arrival - sent) seen

    def __post_init__(self) -> None:
        if self.max_size < 1 or self.fill <= 0 or self.min_rate < 0 or self.behind_rate < 0 or self.period <= 0:
            raise ValueError("need max_size >= 1, fill > 0, min_rate >= 0, behind_rate >= 0, period > 0")

    def reset(self) -> None:
        """The switch was set up afresh (its digest entry says lists of 1): start over."""
        self.size, self.rate, self.lag, self._start, self._count, self._late = 1, 0.0, 0.0, None, 0, 0.0
        self._offset_ns = None

    def target(self, rate: float) -> int:
        """The list size for ``rate`` digests a second."""
        if rate < self.min_rate:
            return 1
        return max(1, min(self.max_size, _pow2_floor(rate * self.fill)))

    def on_digests(self, n: int, now: float, sent_ns: int = 0, arrived_ns: int = 0) -> int | None:
        """``n`` digests arrived (one list) at ``now`` (monotonic seconds), sent by the switch at
        ``sent_ns`` by its clock (0: not said) and received at ``arrived_ns`` by ours. The new
        size to ask the switch for, or None to keep the current one."""
        if sent_ns > 0:
            delay = arrived_ns - sent_ns
            if self._offset_ns is None or delay < self._offset_ns:
                self._offset_ns = delay
            self._late = max(self._late, (delay - self._offset_ns) / 1e9)
        if self._start is None:
            self._start, self._count = now, 0  # what comes after it makes the rate
            return None
        self._count += n
        elapsed = now - self._start
        if elapsed >= self.period:
            return self._close_period(now)
        if elapsed >= self.period / 5:
            # A burst is seen within a fifth of a period, and raised for at once: digests the
            # switch sends one by one meanwhile queue, and the queue costs one by one to drain.
            want = self._want(self._count / elapsed, self._late, quiet=False)
            if want > self.size:
                self.size = want
                return want
        return None

    def check(self, now: float) -> int | None:
        """Between lists (the orchestrator looks every ``period`` while the size is above 1): a
        period without a digest ends the batching at once."""
        if self._start is None:
            self._start, self._count = now, 0
            return None
        if now - self._start < self.period:
            return None
        return self._close_period(now)

    def _want(self, rate: float, lag: float, quiet: bool) -> int:
        if quiet:
            return 1
        want = self.target(rate)
        if lag > self.behind and rate >= self.behind_rate:
            far = lag > 5 * self.behind
            want = max(want, self.max_size if far else min(self.max_size, _pow2_floor(rate * self.fill * 4)))
        return want

    def _close_period(self, now: float) -> int | None:
        assert self._start is not None
        self.rate = self._count / (now - self._start)
        self.lag = self._late
        quiet = self._count == 0
        self._start, self._count, self._late = now, 0, 0.0
        want = self._want(self.rate, self.lag, quiet)
        # Up at once; to 1 as soon as one by one keeps up; else down only when the current size
        # takes more than four times as long to fill as it should, so that a rate wavering around
        # a boundary does not rewrite the entry every period.
        if want > self.size or (want < self.size and (want == 1 or self.size > self.rate * self.fill * 4)):
            self.size = want
            return want
        return None
