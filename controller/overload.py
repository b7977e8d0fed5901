"""When the controller falls behind the switch's digests, new connections go unproxied for a while.

The switch runs each handshake alone, but the slot it keeps lasts HS_TIMEOUT_US (5 s): the
controller must install a connection's entries before that, or the connection loses its
translation. A SYN flood makes one digest per spoofed SYN the server answers; past what the
controller can take, the digests queue, and a real client's digest would wait behind them
longer than its slot lives. So the controller watches how far behind it is (each DigestList
carries the time the switch sent it) and, past ``lag_high``, sets its services ``draining``:
the handshakes under way go on, new connections run end to end without the proxy (fail open,
never a wait on the controller) and make no digest, so the backlog drains. Once it has caught up
(a list no later than ``lag_low``, or no list for ``lag_low``) and at least ``min_drain`` has
passed, the services take new connections again. Nothing here does I/O: the orchestrator asks.

The lag is measured against the smallest (arrival - sent) seen, so that a switch whose clock is
not the controller's, or a constant delivery delay, reads as no lag. A switch that sends no
timestamp (0) is never judged behind.

The switch itself can be the bottleneck before the controller is: each spoofed SYN costs it
several pipeline passes (the SYN, the server's SYN-ACK, the second request, the proxy's answer),
and its queues grow without the digests showing it. So a second sign counts as well: pending
handshakes evicted faster than ``evictions_high`` a second, i.e. more SYNs that nobody
acknowledges than the bound on pending handshakes can hold. Drained, the services make no
digests and no evictions, so a flood that goes on is not seen to: each drain that follows the
last one within a minute lasts twice as long (up to ``max_drain``), so that proxying is retried
now and then, not every other second; and more evictions than a second's worth drain at once,
without waiting out the second, so that the flood gets through each retry only briefly.

A drain that has lasted its least time goes on while the flood does: the switch counts what
each service's entry takes (its SYNs and their SYN-ACKs, two per SYN), and while that rate, less
the connections established a second before the drain (real clients', which run end to end
meanwhile), stays above ``evictions_high`` SYNs a second, the services stay drained. So a flood
that outlasts the drain does not get a retry window every few seconds, and one that stops ends it
at once. Without those counts (an older program) the doubling above is all there is.

The controller's own handshakes (``handshakes = "controller"``) have only this second sign
(their SYNs come as packet-ins, with no time on them), and a third of its kind that comes before
the bound is full: SYNs taken that no ACK has answered (a real client's answers within a round
trip; a spoofed one's never does) growing faster than ``evictions_high`` a second.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class Verdict(Enum):
    DRAIN = "drain"
    RESUME = "resume"


@dataclass
class OverloadGuard:
    lag_high: float = 1.0  # seconds behind the switch: stop taking new connections
    lag_low: float = 0.2  # seconds behind (or without a digest): caught up
    min_drain: float = 2.0  # a drain lasts at least this long, so that a flood does not flap it
    max_drain: float = 30.0  # ... and, drained again and again, at most this long
    evictions_high: float = 0.0  # pending handshakes evicted per second that mean a flood (0: no sign)
    draining: bool = False
    episodes: int = 0  # drains so far
    lag: float = 0.0  # of the last digest list, seconds
    eviction_rate: float = 0.0  # per second, over the last second or so
    _offset_ns: int | None = field(default=None, repr=False)
    _since: float = 0.0
    _last_list: float = 0.0
    _hold: float = 0.0  # how long this drain lasts at least
    _ended: float = float("-inf")  # when the last drain ended
    # per counter ("evicted", "unanswered"): (when, total) last sampled
    _samples: dict[str, tuple[float, int]] = field(default_factory=dict, repr=False)
    established_rate: float = 0.0  # connections established a second, the second before the drain
    syn_rate: float = 0.0  # SYNs a second the services' entries took, last measured while draining
    _syn_sample: tuple[float, int] | None = field(default=None, repr=False)
    _syn_measured: float = float("-inf")  # when syn_rate was last measured
    _est: tuple[int, int, int] = (0, 0, 0)  # (second, count in it, count in the second before)

    def __post_init__(self) -> None:
        if not 0 < self.lag_low < self.lag_high or not 0 <= self.min_drain <= self.max_drain \
                or self.evictions_high < 0:
            raise ValueError("need 0 < lag_low < lag_high, 0 <= min_drain <= max_drain, evictions_high >= 0")

    def reset(self) -> None:
        """A new switch (or the same one restarted): its clock and delay are learnt afresh."""
        self._offset_ns = None
        self.lag = 0.0

    def on_digest_list(self, sent_ns: int, arrived_ns: int, now: float) -> Verdict | None:
        """A DigestList the switch stamped ``sent_ns`` arrived at ``arrived_ns`` (wall clock);
        ``now`` is the monotonic time. Returns DRAIN when the services must stop taking
        connections, RESUME when they may take them again, else None."""
        self._last_list = now
        if sent_ns <= 0:
            return None
        delay = arrived_ns - sent_ns
        if self._offset_ns is None or delay < self._offset_ns:
            self._offset_ns = delay
        self.lag = (delay - self._offset_ns) / 1e9
        if not self.draining and self.lag > self.lag_high:
            return self._drain(now)
        return self.check(now)

    def on_evictions(self, total: int, now: float, counter: str = "evicted") -> Verdict | None:
        """The number of pending handshakes evicted so far (a counter) at ``now``: DRAIN when
        they go faster than ``evictions_high`` a second. ``counter`` names another count judged
        the same way, apart (the controller's handshakes: SYNs that no ACK has answered)."""
        last = self._samples.get(counter)
        if last is None or total < last[1]:
            self._samples[counter] = (now, total)
            return None
        since, before = last
        count, elapsed = total - before, now - since
        if elapsed < 1.0:
            # Judged over a second, unless more than a second's worth came already: right after
            # a drain, a flood that went on shows that way within a fraction of a second.
            if not (self.evictions_high and not self.draining and count > self.evictions_high):
                return None
        self.eviction_rate = count / max(elapsed, 1e-3)
        self._samples[counter] = (now, total)
        if self.evictions_high and not self.draining and self.eviction_rate > self.evictions_high:
            return self._drain(now)
        return None

    def on_established(self, count: int, now: float) -> None:
        """``count`` connections were established at ``now``."""
        sec, cur, prev = self._est
        second = int(now)
        if second != sec:
            cur, prev = 0, cur if second == sec + 1 else 0
        self._est = (second, cur + count, prev)

    def _established_last_second(self, now: float) -> int:
        sec, cur, prev = self._est
        second = int(now)
        return cur if second == sec + 1 else prev if second == sec else 0

    def on_service_packets(self, total: int, now: float) -> None:
        """The packets the services' entries have taken so far (their direct counters, summed),
        read while draining."""
        last = self._syn_sample
        if last is None or total < last[1] or not self.draining:
            self._syn_sample = (now, total)
            return
        if now - last[0] < 0.4:
            return
        self.syn_rate = (total - last[1]) / 2 / (now - last[0])
        self._syn_sample, self._syn_measured = (now, total), now

    def flood_goes_on(self, now: float) -> bool:
        """Whether the services' entries, lately, took more SYNs than real clients account for."""
        return (self.evictions_high > 0 and now - self._syn_measured < 2.0
                and self.syn_rate - self.established_rate > self.evictions_high)

    def _drain(self, now: float) -> Verdict:
        self.established_rate = float(self._established_last_second(now))
        self._syn_sample, self._syn_measured = None, float("-inf")
        again = now - self._ended < 60.0
        self._hold = min(self._hold * 2, self.max_drain) if again and self._hold else self.min_drain
        self.draining, self._since = True, now
        self.episodes += 1
        return Verdict.DRAIN

    @property
    def hold(self) -> float:
        """How long the current (or last) drain lasts at least, seconds."""
        return self._hold

    def check(self, now: float) -> Verdict | None:
        """While draining, whether it may end now (call it now and then: no list may come)."""
        if not self.draining or now - self._since < self._hold or self.flood_goes_on(now):
            return None
        if self.lag <= self.lag_low or now - self._last_list >= self.lag_low:
            self.draining, self._ended = False, now
            self._samples.clear()  # evictions count again from the end of the drain
            return Verdict.RESUME
        return None
