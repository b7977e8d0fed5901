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
    draining: bool = False
    episodes: int = 0  # drains so far
    lag: float = 0.0  # of the last digest list, seconds
    _offset_ns: int | None = field(default=None, repr=False)
    _since: float = 0.0
    _last_list: float = 0.0

    def __post_init__(self) -> None:
        if not 0 < self.lag_low < self.lag_high or self.min_drain < 0:
            raise ValueError("need 0 < lag_low < lag_high and min_drain >= 0")

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
            self.draining, self._since = True, now
            self.episodes += 1
            return Verdict.DRAIN
        return self.check(now)

    def check(self, now: float) -> Verdict | None:
        """While draining, whether it may end now (call it now and then: no list may come)."""
        if not self.draining or now - self._since < self.min_drain:
            return None
        if self.lag <= self.lag_low or now - self._last_list >= self.lag_low:
            self.draining = False
            return Verdict.RESUME
        return None
