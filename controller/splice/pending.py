"""Handshakes no client has acknowledged yet, kept so that a flood from one source evicts its own.

A SYN flood fills the controller's bound on pending handshakes with SYNs no client will ever
acknowledge. At the bound a new SYN evicts one of these. Evicting the oldest is fair only when
every source sends as many: a single host (or a few) flooding would also evict the handshakes of
real clients that are slow to acknowledge. So when one source holds more than ``heavy`` of them,
the victim is the oldest of the source holding the most; otherwise (sources spoofed at random,
and a real client opening a few connections at once among them) it is the oldest of all. A real
client is thus never singled out for holding a handful. Finding it is O(1): sources are bucketed
by how many handshakes they hold.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class BySource(Generic[K, V]):
    """An insertion-ordered map of pending handshakes that knows each key's source."""

    def __init__(self, source_of: Callable[[K], object]) -> None:
        self._source_of = source_of
        self._all: OrderedDict[K, V] = OrderedDict()
        self._by_source: dict[object, OrderedDict[K, None]] = {}
        # sources by the number of keys they hold; a count's sources in the order they reached it
        self._by_count: dict[int, dict[object, None]] = {}
        self._most = 0

    def __len__(self) -> int:
        return len(self._all)

    def __bool__(self) -> bool:
        return bool(self._all)

    def __contains__(self, key: object) -> bool:
        return key in self._all

    def __iter__(self) -> Iterator[K]:
        return iter(self._all)

    def values(self) -> Iterator[V]:
        return iter(self._all.values())

    def get(self, key: K) -> V | None:
        return self._all.get(key)

    def __setitem__(self, key: K, value: V) -> None:
        if key in self._all:
            self._all[key] = value
            return
        self._all[key] = value
        src = self._source_of(key)
        keys = self._by_source.setdefault(src, OrderedDict())
        keys[key] = None
        self._move(src, len(keys) - 1, len(keys))

    def pop(self, key: K, default: V | None = None) -> V | None:
        if key not in self._all:
            return default
        value = self._all.pop(key)
        src = self._source_of(key)
        keys = self._by_source[src]
        del keys[key]
        self._move(src, len(keys) + 1, len(keys))
        if not keys:
            del self._by_source[src]
        return value

    def __delitem__(self, key: K) -> None:
        if key not in self._all:
            raise KeyError(key)
        self.pop(key)

    def held_by(self, source: object) -> int:
        """How many pending handshakes ``source`` holds."""
        keys = self._by_source.get(source)
        return len(keys) if keys else 0

    def victim(self, heavy: int = 1) -> V:
        """What to evict: the oldest of the source holding the most (of several, the one that has
        held that many longest) when that is more than ``heavy``, else the oldest of all. Raises
        KeyError when empty."""
        if not self._all:
            raise KeyError("no pending handshake")
        if self._most <= heavy:
            return next(iter(self._all.values()))
        src = next(iter(self._by_count[self._most]))
        return self._all[next(iter(self._by_source[src]))]

    def _move(self, src: object, old: int, new: int) -> None:
        if old:
            bucket = self._by_count[old]
            del bucket[src]
            if not bucket:
                del self._by_count[old]
        if new:
            self._by_count.setdefault(new, {})[src] = None
        if new > self._most:
            self._most = new
        while self._most and self._most not in self._by_count:
            self._most -= 1
