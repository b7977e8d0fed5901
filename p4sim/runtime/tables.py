"""Match-action tables: entry storage and the data-plane lookup (exact, lpm, ternary, range, optional).

Entries are kept compactly (a `__slots__` object per entry, tuple keys of ints) because a table
may hold a million of them. Each table picks a lookup strategy once, from its P4Info match kinds:

* exact only  -> one dict probe keyed by the lookup key itself;
* one lpm field plus exact fields -> one dict per prefix length, probed longest first;
* anything with ternary/range/optional -> a priority-ordered scan over precompiled
  (mask, value) big ints, so each candidate costs one AND and one compare.

Key format per match field (used by `Table.insert`, const entries and `Entry.key`):
exact -> int; lpm -> (value, prefix_len); ternary -> (value, mask); range -> (low, high);
optional -> int, or None for a wildcard. A "don't care" field (omitted in P4Runtime) is
(0, 0) for lpm and ternary, (0, max) for range and None for optional.

Concurrency: mutations happen with the owning SwitchState's lock held. Lookups take no lock:
they read dicts (single probes are atomic under the GIL) and tuples/lists that writers replace
wholesale rather than edit in place, so a lookup sees either the old or the new version. The
priority scan list is the exception: it is rebuilt lazily, and a lookup that finds it stale takes
the lock to rebuild it, so it never iterates a dict that a writer is changing.
"""

from __future__ import annotations

import heapq
import itertools
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from p4.config.v1 import p4info_pb2

from p4sim.runtime.errors import already_exists, not_found, resource_exhausted

MatchType = p4info_pb2.MatchField.MatchType
EXACT = MatchType.EXACT
LPM = MatchType.LPM
TERNARY = MatchType.TERNARY
RANGE = MatchType.RANGE
OPTIONAL = MatchType.OPTIONAL
PRIORITY_KINDS = frozenset({TERNARY, RANGE, OPTIONAL})


@dataclass(frozen=True, slots=True)
class MatchFieldInfo:
    id: int
    name: str
    bitwidth: int
    kind: int  # a p4info MatchField.MatchType value

    @property
    def max_value(self) -> int:
        return (1 << self.bitwidth) - 1


@dataclass(frozen=True, slots=True)
class MeterConfig:
    """A meter's rates (units per second, per the MeterSpec unit) and burst sizes."""

    cir: int
    cburst: int
    pir: int
    pburst: int
    eburst: int = 0


@dataclass(frozen=True, slots=True)
class ConstEntry:
    """An entry the P4 program declares (`entries` / `const entries`), given by the pipeline loader."""

    key: tuple
    action_id: int
    params: tuple[int, ...] = ()
    priority: int = 0
    is_const: bool = True


class Entry:
    """One table entry; also the result of a lookup hit (`hit` is True).

    `action` is the pair (action_id, params) so a MODIFY swaps it in one assignment and a
    concurrent lookup never sees a new action id with old parameters.
    """

    __slots__ = ("key", "priority", "action", "controller_metadata", "metadata", "idle_timeout_ns",
                 "last_hit_ns", "idle_mark_ns", "packets", "bytes", "meter_config", "meter_state",
                 "is_const")
    hit = True

    def __init__(self, key: tuple, priority: int, action_id: int, params: tuple[int, ...],
                 now_ns: int = 0) -> None:
        self.key = key
        self.priority = priority
        self.action = (action_id, params)
        self.controller_metadata = 0
        self.metadata = b""
        self.idle_timeout_ns = 0
        self.last_hit_ns = now_ns
        self.idle_mark_ns = now_ns
        self.packets = 0
        self.bytes = 0
        self.meter_config: MeterConfig | None = None
        self.meter_state: object = None  # opaque to us: owned by the data plane's meter code
        self.is_const = False

    @property
    def action_id(self) -> int:
        return self.action[0]

    @property
    def params(self) -> tuple[int, ...]:
        return self.action[1]

    def __repr__(self) -> str:
        kind = "hit" if self.hit else "default"
        return f"<{kind} key={self.key} prio={self.priority} action={self.action}>"


class DefaultEntry(Entry):
    """A table's default entry: what a miss returns (`hit` is False)."""

    __slots__ = ()
    hit = False


class Table:
    """One match-action table from P4Info, with its entries and default entry."""

    def __init__(self, info: p4info_pb2.Table, lock: threading.RLock) -> None:
        self.info = info
        self.id = info.preamble.id
        self.name = info.preamble.name
        self._lock = lock
        self.fields = tuple(MatchFieldInfo(f.id, f.name, f.bitwidth, f.match_type)
                            for f in info.match_fields)
        self.field_by_id = {f.id: (i, f) for i, f in enumerate(self.fields)}
        self.label = f"table {self.name}"  # error-message prefix, formatted once per table
        self.implementation_id = info.implementation_id  # read per write: avoid the protobuf getter
        self.size = info.size
        self.is_const_table = info.is_const_table
        self.needs_priority = any(f.kind in PRIORITY_KINDS for f in self.fields)
        # A key field P4Info gives no bit width: what p4c writes for a P4 `error` (it has no
        # P4Runtime encoding). simple_switch_grpc cannot add an entry to such a table; see
        # entities.apply_table_write.
        self.widthless_field = next((f.name for f in self.fields if f.bitwidth == 0), None)
        self.idle_supported = (info.idle_timeout_behavior
                               == p4info_pb2.Table.IdleTimeoutBehavior.NOTIFY_CONTROL)
        self.direct_counter_id = 0
        self.direct_meter_id = 0
        self.action_scopes = {ref.id: ref.scope for ref in info.action_refs}
        kinds = [f.kind for f in self.fields]
        if not kinds:
            self.strategy = "keyless"
        elif all(k == EXACT for k in kinds):
            self.strategy = "exact"
        elif kinds.count(LPM) == 1 and all(k in (EXACT, LPM) for k in kinds):
            self.strategy = "lpm"
        else:
            self.strategy = "scan"
        # ident -> Entry; ident is the key tuple, plus the priority for priority tables.
        self.entries: dict = {}
        self._idle: dict = {}  # ident -> Entry, only entries with idle_timeout_ns > 0
        # When to look at each of those next: a heap of (deadline ns, seq, ident) with lazy
        # deletion (an item whose deadline is not _idle_due[ident] is stale), so a timer tick costs
        # the entries due, not a scan of every entry (14,000 flows entries took ~4 ms per 5 ms tick).
        self._idle_due: dict = {}
        self._idle_heap: list[tuple[int, int, tuple]] = []
        self._idle_seq = itertools.count()
        if self.strategy == "lpm":
            self._lpm_pos = kinds.index(LPM)
            self._lpm_width = self.fields[self._lpm_pos].bitwidth
            self._lpm_index: dict[int, dict] = {}
            self._lpm_plens: tuple[tuple[int, int], ...] = ()  # (prefix_len, mask), longest first
        self._scan: list = []
        self._scan_dirty = False
        self.default = DefaultEntry((), 0, 0, ())
        self.initial_default: tuple[int, tuple[int, ...]] = (0, ())
        self.default_is_const = False
        self.has_direct_counter = False

    # ----------------------------------------------------------------------------------------
    # data plane
    def lookup(self, key: tuple, now_ns: int, packet_bytes: int) -> Entry:
        """Find the entry matching `key` (one int per match field, P4Info order).

        Returns the matching Entry (`.hit` True) or the default entry (`.hit` False); either way
        `.action` is (action_id, params). Refreshes the idle timer and counts the direct counter.
        """
        strategy = self.strategy
        entry: Entry | None
        if strategy == "exact":
            entry = self.entries.get(key)
        elif strategy == "lpm":
            entry = self._lookup_lpm(key)
        elif strategy == "scan":
            entry = self._lookup_scan(key)
        else:
            entry = None
        if entry is None:
            entry = self.default
        elif self.idle_supported:
            entry.last_hit_ns = now_ns
        if self.has_direct_counter:
            entry.packets += 1
            entry.bytes += packet_bytes
        return entry

    def _lookup_lpm(self, key: tuple) -> Entry | None:
        pos = self._lpm_pos
        index = self._lpm_index
        if len(key) == 1:
            value = key[0]
            for plen, m in self._lpm_plens:
                bucket = index.get(plen)
                if bucket is not None:
                    entry = bucket.get((value & m,))
                    if entry is not None:
                        return entry
            return None
        probe = list(key)
        value = key[pos]
        for plen, m in self._lpm_plens:
            bucket = index.get(plen)
            if bucket is not None:
                probe[pos] = value & m
                entry = bucket.get(tuple(probe))
                if entry is not None:
                    return entry
        return None

    def _lookup_scan(self, key: tuple) -> Entry | None:
        if self._scan_dirty:
            with self._lock:
                self._rebuild_scan()
        wide = 0
        for f, k in zip(self.fields, key, strict=True):
            wide = (wide << f.bitwidth) | k
        for masks, values, ranges, entry in self._scan:
            if wide & masks != values:
                continue
            if ranges and not all(lo <= key[i] <= hi for i, lo, hi in ranges):
                continue
            return entry
        return None

    # ----------------------------------------------------------------------------------------
    # control plane (caller holds the state lock)
    def ident(self, key: tuple, priority: int) -> tuple:
        return (key, priority) if self.needs_priority else key

    def get(self, key: tuple, priority: int) -> Entry | None:
        return self.entries.get(self.ident(key, priority))

    def insert(self, key: tuple, priority: int, action_id: int, params: tuple[int, ...],
               now_ns: int = 0) -> Entry:
        ident = self.ident(key, priority)
        if ident in self.entries:
            raise already_exists(f"table {self.name}: entry already exists")
        if self.size and len(self.entries) >= self.size:
            raise resource_exhausted(f"table {self.name} is full ({self.size} entries)")
        entry = Entry(key, priority, action_id, params, now_ns)
        self.entries[ident] = entry
        self._index_add(entry)
        return entry

    def delete(self, key: tuple, priority: int) -> Entry:
        ident = self.ident(key, priority)
        entry = self.entries.pop(ident, None)
        if entry is None:
            raise not_found(f"table {self.name}: no such entry")
        self._idle.pop(ident, None)
        self._idle_due.pop(ident, None)
        self._index_remove(entry)
        return entry

    def clear(self) -> None:
        for entry in list(self.entries.values()):
            self.delete(entry.key, entry.priority)

    def set_idle_timeout(self, entry: Entry, timeout_ns: int, now_ns: int) -> None:
        entry.idle_timeout_ns = timeout_ns
        entry.idle_mark_ns = now_ns
        ident = self.ident(entry.key, entry.priority)
        if timeout_ns > 0:
            self._idle[ident] = entry
            self._idle_schedule(ident, now_ns + timeout_ns)
        else:
            self._idle.pop(ident, None)
            self._idle_due.pop(ident, None)

    def _idle_schedule(self, ident: tuple, deadline_ns: int) -> None:
        self._idle_due[ident] = deadline_ns
        heapq.heappush(self._idle_heap, (deadline_ns, next(self._idle_seq), ident))

    def expired_entries(self, now_ns: int) -> list[Entry]:
        """Entries idle for at least their TTL; their idle timer is reset (spec: notify once per TTL).

        Only entries whose deadline has come are looked at: one that was hit since is put back
        with the deadline its last hit gives."""
        out = []
        heap, due = self._idle_heap, self._idle_due
        while heap and heap[0][0] <= now_ns:
            deadline, _, ident = heapq.heappop(heap)
            if due.get(ident) != deadline:
                continue  # deleted, or rescheduled since this item was pushed
            entry = self._idle[ident]
            ref = max(entry.last_hit_ns, entry.idle_mark_ns)
            if now_ns - ref >= entry.idle_timeout_ns:
                entry.idle_mark_ns = now_ns
                out.append(entry)
                self._idle_schedule(ident, now_ns + entry.idle_timeout_ns)
            else:
                self._idle_schedule(ident, ref + entry.idle_timeout_ns)
        return out

    def reset_default(self) -> None:
        action_id, params = self.initial_default
        self.default = DefaultEntry((), 0, action_id, params)

    def __iter__(self) -> Iterator[Entry]:
        return iter(list(self.entries.values()))

    def __len__(self) -> int:
        return len(self.entries)

    # ----------------------------------------------------------------------------------------
    # lookup indexes
    def _index_add(self, entry: Entry) -> None:
        if self.strategy == "lpm":
            value, plen = entry.key[self._lpm_pos]
            bucket = self._lpm_index.get(plen)
            if bucket is None:
                bucket = self._lpm_index[plen] = {}
                self._rebuild_plens()
            bucket[self._lpm_probe_key(entry.key)] = entry
        elif self.strategy == "scan":
            self._scan_dirty = True

    def _index_remove(self, entry: Entry) -> None:
        if self.strategy == "lpm":
            value, plen = entry.key[self._lpm_pos]
            bucket = self._lpm_index[plen]
            bucket.pop(self._lpm_probe_key(entry.key), None)
            if not bucket:
                del self._lpm_index[plen]
                self._rebuild_plens()
        elif self.strategy == "scan":
            self._scan_dirty = True

    def _lpm_probe_key(self, key: tuple) -> tuple:
        if len(key) == 1:  # the common single-field route table: no generator per insert
            return (key[0][0],)
        pos = self._lpm_pos
        return tuple(k[0] if i == pos else k for i, k in enumerate(key))

    def _rebuild_plens(self) -> None:
        width = self._lpm_width
        full = (1 << width) - 1
        self._lpm_plens = tuple(
            (plen, full ^ ((1 << (width - plen)) - 1))
            for plen in sorted(self._lpm_index, reverse=True))

    def _rebuild_scan(self) -> None:
        if not self._scan_dirty:
            return
        compiled = []
        for seq, entry in enumerate(self.entries.values()):
            masks = values = 0
            ranges = []
            for i, (f, spec) in enumerate(zip(self.fields, entry.key, strict=True)):
                m, v = field_mask_value(f, spec)
                if f.kind == RANGE:
                    lo, hi = spec
                    if lo != 0 or hi != f.max_value:
                        ranges.append((i, lo, hi))
                masks = (masks << f.bitwidth) | m
                values = (values << f.bitwidth) | v
            compiled.append((-entry.priority, seq, masks, values, tuple(ranges), entry))
        compiled.sort(key=lambda c: (c[0], c[1]))
        self._scan = [(m, v, r, e) for _, _, m, v, r, e in compiled]
        self._scan_dirty = False


def field_mask_value(f: MatchFieldInfo, spec: object) -> tuple[int, int]:
    """(mask, value) for one field's key spec; range fields give (0, 0) and are checked apart."""
    kind = f.kind
    if kind == EXACT:
        return f.max_value, spec  # type: ignore[return-value]
    if kind == LPM:
        value, plen = spec  # type: ignore[misc]
        m = f.max_value ^ ((1 << (f.bitwidth - plen)) - 1)
        return m, value
    if kind == TERNARY:
        value, m = spec  # type: ignore[misc]
        return m, value
    if kind == OPTIONAL:
        return (0, 0) if spec is None else (f.max_value, spec)  # type: ignore[return-value]
    return 0, 0  # RANGE


def dont_care(f: MatchFieldInfo) -> object:
    """The key spec meaning "matches anything" for a field (what an omitted FieldMatch means)."""
    if f.kind in (LPM, TERNARY):
        return (0, 0)
    if f.kind == RANGE:
        return (0, f.max_value)
    return None  # OPTIONAL
