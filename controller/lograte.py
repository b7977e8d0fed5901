"""Log lines that a flood cannot multiply: a few per kind and interval, the rest counted.

Lines written per packet or per flow (a packet-in the controller refuses, a flow's entries
removed) are worth reading one by one at an ordinary rate, and worthless by the hundred thousand
under a SYN flood, when they also cost the disk and the controller's CPU. Each kind of line may
be written ``burst`` times per ``interval``; the lines held back after that are counted, and the
next line of that kind says how many there were.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Kind:
    window_start: float
    written: int = 0
    held_back: int = 0


class RateLimitedLog:
    """``log(level, kind, msg, *args)`` for one logger, limited per kind."""

    def __init__(self, logger: logging.Logger, interval: float = 5.0, burst: int = 10,
                 clock: Callable[[], float] = time.monotonic, max_kinds: int = 64) -> None:
        if interval <= 0 or burst < 1:
            raise ValueError("interval must be positive and burst at least 1")
        self.logger = logger
        self.interval = interval
        self.burst = burst
        self.max_kinds = max_kinds  # kinds are the program's own names: this only guards a mistake
        self._clock = clock
        self._kinds: dict[str, _Kind] = {}

    def __call__(self, level: int, kind: str, msg: str, *args: object) -> bool:
        """Write the line unless this kind is over its burst; returns whether it was written."""
        if not self.logger.isEnabledFor(level):
            return False
        now = self._clock()
        k = self._kinds.get(kind)
        if k is None:
            if len(self._kinds) >= self.max_kinds:
                self._kinds.clear()
            k = self._kinds[kind] = _Kind(now)
        elif now - k.window_start >= self.interval:
            k.window_start, k.written = now, 0
        if k.written >= self.burst:
            k.held_back += 1
            return False
        k.written += 1
        if k.held_back:
            msg += " (and %d more like it held back)"
            args = (*args, k.held_back)
            k.held_back = 0
        self.logger.log(level, msg, *args)
        return True

    def held_back(self, kind: str) -> int:
        """Lines of ``kind`` held back since its last line."""
        k = self._kinds.get(kind)
        return k.held_back if k is not None else 0
