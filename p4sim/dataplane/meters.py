"""v1model meters: BMv2's two-rate three-colour marker, deterministic in an explicit clock.

Semantics carried over from BMv2 (``src/bm_sim/meters.cpp`` and the P4Runtime glue in
``PI/src/direct_res_spec.cpp`` of p4lang/behavioral-model):

* Colours: GREEN=0, YELLOW=1, RED=2. An unconfigured meter (never configured, or reset by a
  P4Runtime MeterConfig left unset) marks every packet GREEN and keeps no state.
* The meter is colour-blind, RFC 2698 in spirit but BMv2 in the details: the peak bucket is
  tested first; if it holds fewer tokens than the packet needs the packet is RED and *no*
  bucket is debited. Otherwise the peak bucket is debited and the committed bucket is
  tested: too few tokens -> YELLOW (the peak debit stands), else it is debited -> GREEN.
* A packet needs 1 token (packets meter) or its ingress length in bytes (bytes meter).
* Buckets start full (tokens = burst) when configured. Refill is computed against a fixed
  time origin, not incrementally: ``tokens_since_origin = floor(whole_microseconds_elapsed *
  rate_per_microsecond)``, and a bucket gains the difference since its previous update,
  capped at its burst size. Time is truncated to whole microseconds, as BMv2 does.
* P4Runtime rates are units per second; simple_switch_grpc divides them by 1e6 to get
  BMv2's units per microsecond, bursts are taken as they are (units). CIR > PIR is refused
  (BMv2: INVALID_INFO_RATE_VALUE).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from enum import IntEnum

__all__ = ["GREEN", "RED", "YELLOW", "Color", "MeterConfig", "MeterState", "MeterUnit"]


class Color(IntEnum):
    GREEN = 0
    YELLOW = 1
    RED = 2


GREEN, YELLOW, RED = Color.GREEN, Color.YELLOW, Color.RED


class MeterUnit(IntEnum):
    PACKETS = 0
    BYTES = 1


@dataclass(frozen=True)
class MeterConfig:
    """A P4Runtime MeterConfig: rates in units per second, bursts in units."""

    cir: int
    cburst: int
    pir: int
    pburst: int

    def __post_init__(self) -> None:
        for name in ("cir", "cburst", "pir", "pburst"):
            if getattr(self, name) < 0:
                raise ValueError(f"meter {name} must not be negative")
        if self.cir > self.pir:
            raise ValueError(f"meter CIR {self.cir} is above PIR {self.pir}")


class _Bucket:
    __slots__ = ("rate_per_us", "burst", "tokens", "tokens_last", "color")

    def __init__(self, rate_per_s: int, burst: int, color: Color) -> None:
        self.rate_per_us = rate_per_s / 1_000_000
        self.burst = burst
        self.tokens = burst
        self.tokens_last = 0
        self.color = color


class MeterState:
    """One meter cell (one index of an indirect meter array, or one direct-meter entry).

    ``execute(now_ns, amount)`` returns the colour. ``now_ns`` must be non-decreasing and is
    measured on the same clock as ``origin_ns`` (e.g. ``time.monotonic_ns()``; BMv2 takes its
    origin when the meter is created). ``amount`` is ignored by a packets meter; pass the
    packet's ingress length in bytes for a bytes meter. Thread-safe.
    """

    def __init__(self, unit: MeterUnit | str = MeterUnit.PACKETS, origin_ns: int = 0) -> None:
        if isinstance(unit, str):
            unit = MeterUnit[unit.upper()]
        self.unit = unit
        self.origin_ns = origin_ns
        self._config: MeterConfig | None = None
        # Peak first: BMv2 stores its rates highest-colour first and stops at the first
        # bucket that cannot pay.
        self._buckets: tuple[_Bucket, ...] = ()
        self._lock = threading.Lock()

    @property
    def config(self) -> MeterConfig | None:
        return self._config

    def configure(self, config: MeterConfig | tuple[int, int, int, int] | None) -> None:
        """Set (cir, cburst, pir, pburst), or reset to unconfigured with ``None``."""
        if config is not None and not isinstance(config, MeterConfig):
            config = MeterConfig(*config)
        with self._lock:
            self._config = config
            if config is None:
                self._buckets = ()
            else:
                self._buckets = (
                    _Bucket(config.pir, config.pburst, RED),
                    _Bucket(config.cir, config.cburst, YELLOW),
                )

    def reset(self) -> None:
        self.configure(None)

    def execute(self, now_ns: int, amount: int = 1) -> int:
        buckets = self._buckets
        if not buckets:
            return GREEN
        need = 1 if self.unit is MeterUnit.PACKETS else amount
        micros = (now_ns - self.origin_ns) // 1000
        if micros < 0:
            raise ValueError("meter executed before its time origin")
        with self._lock:
            # Re-read under the lock: configure() may have swapped the buckets meanwhile.
            buckets = self._buckets
            color = GREEN
            for b in buckets:
                since_origin = int(micros * b.rate_per_us)
                if since_origin < b.tokens_last:
                    raise ValueError("meter clock went backwards")
                b.tokens = min(b.tokens + since_origin - b.tokens_last, b.burst)
                b.tokens_last = since_origin
                if b.tokens < need:
                    color = b.color
                    break
                b.tokens -= need
            return int(color)
