"""Indexed externs the control plane reads and writes: counters, meters, registers, value sets.

Each is a flat Python list per array so the data plane touches one list slot per packet. The
metering algorithm itself lives in the data plane (p4sim/dataplane/meters.py); here we only keep
each cell's MeterConfig and an opaque per-cell state object for it.
"""

from __future__ import annotations

from p4.config.v1 import p4info_pb2

from p4sim.runtime.tables import EXACT, RANGE, MatchFieldInfo, MeterConfig, field_mask_value


class CounterArray:
    """An indexed counter: packets and bytes per cell (the CounterSpec unit says which matter)."""

    def __init__(self, info: p4info_pb2.Counter) -> None:
        self.id = info.preamble.id
        self.name = info.preamble.name
        self.unit = info.spec.unit
        self.size = info.size
        self.packets = [0] * self.size
        self.bytes = [0] * self.size

    def count(self, index: int, packet_bytes: int) -> None:
        if 0 <= index < self.size:
            self.packets[index] += 1
            self.bytes[index] += packet_bytes


class MeterArray:
    """An indexed meter: a config (None = default, every packet GREEN) and opaque state per cell."""

    def __init__(self, info: p4info_pb2.Meter) -> None:
        self.id = info.preamble.id
        self.name = info.preamble.name
        self.unit = info.spec.unit
        self.type = info.spec.type
        self.size = info.size
        self.configs: list[MeterConfig | None] = [None] * self.size
        self.states: list[object] = [None] * self.size

    def set_config(self, index: int, config: MeterConfig | None) -> None:
        self.configs[index] = config
        self.states[index] = None  # new rates: the data plane starts its buckets afresh


class RegisterArray:
    """A register array of bit<W> cells."""

    def __init__(self, info: p4info_pb2.Register, bitwidth: int) -> None:
        self.id = info.preamble.id
        self.name = info.preamble.name
        self.size = info.size
        self.bitwidth = bitwidth
        self.mask = (1 << bitwidth) - 1
        self.values = [0] * self.size


class ValueSet:
    """A parser value set: members as given (for reads) and compiled to one (value, mask) each."""

    def __init__(self, info: p4info_pb2.ValueSet) -> None:
        self.id = info.preamble.id
        self.name = info.preamble.name
        self.size = info.size
        self.fields = tuple(MatchFieldInfo(f.id, f.name, f.bitwidth, f.match_type or EXACT)
                            for f in info.match)
        self.field_by_id = {f.id: (i, f) for i, f in enumerate(self.fields)}
        self.members: list[tuple] = []  # key specs, same format as table keys
        self.compiled: list[tuple[int, int]] = []

    def set_members(self, members: list[tuple]) -> None:
        compiled = []
        for key in members:
            value = m = 0
            for f, spec in zip(self.fields, key, strict=True):
                fm, fv = field_mask_value(f, spec)
                m = (m << f.bitwidth) | fm
                value = (value << f.bitwidth) | fv
            compiled.append((value, m))
        # Replace both lists wholesale: the parser reads `compiled` without a lock.
        self.members = list(members)
        self.compiled = compiled

    @property
    def has_range(self) -> bool:
        return any(f.kind == RANGE for f in self.fields)
