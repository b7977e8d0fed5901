"""Digest buffering per the spec's DigestEntry rules: lists by size or timeout, dedup, ack cache.

A digest is only generated once the controller has written a DigestEntry for it (INSERT enables
it, DELETE disables it): until then the data plane's digests are dropped, as BMv2 does.

Within one list and against the cache of sent-but-unacknowledged lists, duplicates are dropped.
The cache forgets a list when its DigestListAck arrives or `ack_timeout_ns` after it was sent;
with ack_timeout_ns == 0 nothing is cached. max_list_size == 0 means no size limit (the list goes
out on timeout); max_timeout_ns == 0 or max_list_size == 1 sends every new digest at once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from p4.config.v1 import p4info_pb2, p4types_pb2
from p4.v1 import p4data_pb2, p4runtime_pb2

from p4sim.runtime import codec

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DigestConfig:
    max_timeout_ns: int
    max_list_size: int
    ack_timeout_ns: int


@dataclass(slots=True)
class _Buffer:
    items: list[tuple[int, ...]] = field(default_factory=list)
    members: set[tuple[int, ...]] = field(default_factory=set)
    first_ns: int = 0


class DigestType:
    """Turns a tuple of ints into the P4Data the P4Info type_spec describes (flat members only)."""

    def __init__(self, spec: p4types_pb2.P4DataTypeSpec, type_info: p4types_pb2.P4TypeInfo) -> None:
        self.kind = spec.WhichOneof("type_spec")
        if self.kind == "struct":
            members = type_info.structs[spec.struct.name].members
            self.members = [self._leaf(m.type_spec) for m in members]
        elif self.kind == "tuple":
            self.members = [self._leaf(m) for m in spec.tuple.members]
        else:
            self.members = [self._leaf(spec)]

    @staticmethod
    def _leaf(spec: p4types_pb2.P4DataTypeSpec) -> str:
        kind = spec.WhichOneof("type_spec")
        return "bool" if kind == "bool" else "bitstring"

    def to_p4data(self, values: tuple[int, ...]) -> p4data_pb2.P4Data:
        leaves = []
        for kind, v in zip(self.members, values, strict=False):
            leaf = p4data_pb2.P4Data()
            if kind == "bool":
                leaf.bool = bool(v)
            else:
                leaf.bitstring = codec.encode(v)
            leaves.append(leaf)
        if self.kind == "struct":
            out = p4data_pb2.P4Data()
            out.struct.members.extend(leaves)
            return out
        if self.kind == "tuple":
            out = p4data_pb2.P4Data()
            out.tuple.members.extend(leaves)
            return out
        return leaves[0] if leaves else p4data_pb2.P4Data(bitstring=b"\x00")


class DigestEngine:
    """Buffers digests from the data plane and hands finished DigestList messages to `send`."""

    def __init__(self, infos: list[p4info_pb2.Digest], type_info: p4types_pb2.P4TypeInfo,
                 send: Callable[[p4runtime_pb2.StreamMessageResponse], None], now_ns: Callable[[], int],
                 wall_ns: Callable[[], int]) -> None:
        self.types = {d.preamble.id: DigestType(d.type_spec, type_info) for d in infos}
        self.names = {d.preamble.id: d.preamble.name for d in infos}
        self.configs: dict[int, DigestConfig] = {}
        self._send = send
        self._now = now_ns
        self._wall = wall_ns
        self._mutex = threading.Lock()
        self._buffers: dict[int, _Buffer] = {}
        self._next_list_id: dict[int, int] = {}
        # (digest_id, list_id) -> (sent_ns, items); per digest, value -> number of cached lists.
        self._cache: dict[tuple[int, int], tuple[int, tuple[tuple[int, ...], ...]]] = {}
        self._cached: dict[int, dict[tuple[int, ...], int]] = {}

    # control plane -------------------------------------------------------------------------
    def set_config(self, digest_id: int, config: DigestConfig | None) -> None:
        with self._mutex:
            if config is None:
                self.configs.pop(digest_id, None)
                self._buffers.pop(digest_id, None)
                for key in [k for k in self._cache if k[0] == digest_id]:
                    self._uncache(key)
            else:
                self.configs[digest_id] = config

    def ack(self, digest_id: int, list_id: int) -> None:
        with self._mutex:
            self._uncache((digest_id, list_id))

    def clear_cache(self) -> None:
        """Forget unacknowledged lists (allowed by the spec on a change of primary client)."""
        with self._mutex:
            self._cache.clear()
            self._cached.clear()

    # data plane ----------------------------------------------------------------------------
    def emit(self, digest_id: int, values: tuple[int, ...]) -> None:
        outgoing = None
        with self._mutex:
            config = self.configs.get(digest_id)
            if config is None:
                return  # not enabled by the controller
            buf = self._buffers.get(digest_id)
            if buf is None:
                buf = self._buffers[digest_id] = _Buffer()
            if values in buf.members or values in self._cached.get(digest_id, ()):
                return
            if not buf.items:
                buf.first_ns = self._now()
            buf.items.append(values)
            buf.members.add(values)
            if (config.max_timeout_ns == 0
                    or (config.max_list_size and len(buf.items) >= config.max_list_size)):
                outgoing = self._take(digest_id, buf, config)
        if outgoing is not None:
            self._send(outgoing)

    def tick(self) -> None:
        """Send lists whose first digest waited max_timeout_ns; expire old cache entries."""
        now = self._now()
        outgoing = []
        with self._mutex:
            for digest_id, buf in self._buffers.items():
                config = self.configs.get(digest_id)
                if config and buf.items and now - buf.first_ns >= config.max_timeout_ns:
                    outgoing.append(self._take(digest_id, buf, config))
            for key, (sent_ns, _) in list(self._cache.items()):
                config = self.configs.get(key[0])
                if config is None or now - sent_ns >= config.ack_timeout_ns:
                    self._uncache(key)
        for msg in outgoing:
            self._send(msg)

    # internals (mutex held) ----------------------------------------------------------------
    def _take(self, digest_id: int, buf: _Buffer, config: DigestConfig
              ) -> p4runtime_pb2.StreamMessageResponse:
        list_id = self._next_list_id.get(digest_id, 0) + 1
        self._next_list_id[digest_id] = list_id
        items = tuple(buf.items)
        buf.items = []
        buf.members = set()
        if config.ack_timeout_ns > 0:
            self._cache[(digest_id, list_id)] = (self._now(), items)
            counts = self._cached.setdefault(digest_id, {})
            for v in items:
                counts[v] = counts.get(v, 0) + 1
        msg = p4runtime_pb2.StreamMessageResponse()
        dl = msg.digest
        dl.digest_id = digest_id
        dl.list_id = list_id
        dl.timestamp = self._wall()
        dtype = self.types[digest_id]
        for v in items:
            dl.data.append(dtype.to_p4data(v))
        log.debug("digest %s: list %d with %d entries", self.names.get(digest_id), list_id, len(items))
        return msg

    def _uncache(self, key: tuple[int, int]) -> None:
        entry = self._cache.pop(key, None)
        if entry is None:
            return
        counts = self._cached.get(key[0], {})
        for v in entry[1]:
            n = counts.get(v, 0) - 1
            if n <= 0:
                counts.pop(v, None)
            else:
                counts[v] = n
