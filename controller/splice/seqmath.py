"""Modulo-2^32 arithmetic for TCP sequence numbers, timestamps and window rescaling.

Every number the splice rewrites (sequence, acknowledgement, SACK edges, TSval, TSecr) lives in a
32-bit space that wraps. The helpers here keep that explicit: a *delta* is always the value to ADD
modulo 2^32 (a subtraction is the addition of the negated delta), which is exactly what a data plane
with 32-bit adders does. Ordering uses serial-number comparison (RFC 1982): ``a`` precedes ``b`` when
``b`` is less than 2^31 ahead of ``a``.
"""

from __future__ import annotations

from typing import TypeAlias

SeqNo: TypeAlias = int
"""A 32-bit sequence-space value (sequence, ack, SACK edge, TSval, TSecr): 0 <= v < 2^32."""

Delta32: TypeAlias = int
"""A 32-bit quantity to add modulo 2^32: 0 <= d < 2^32 (``-5`` is stored as ``2^32 - 5``)."""

MOD32 = 1 << 32
MASK32 = MOD32 - 1
HALF32 = 1 << 31

WINDOW_MAX = 0xFFFF
# RFC 7323 section 2.3: a shift above 14 is treated as 14.
MAX_WINDOW_SHIFT = 14


def check_u32(value: int, what: str = "value") -> int:
    """Return ``value`` if it is a 32-bit unsigned integer; raise ``ValueError`` otherwise."""
    if type(value) is int and 0 <= value <= MASK32:
        return value  # the usual case first: some forty checks per switch-run handshake
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    if not 0 <= value <= MASK32:
        raise ValueError(f"{what} out of 32-bit range: {value}")
    return value


def u32(value: int) -> int:
    """Reduce any integer (negative, or a 64-bit byte count) into the 32-bit space."""
    return value & MASK32


def seq_add(a: SeqNo, delta: int) -> SeqNo:
    """``a + delta`` modulo 2^32; ``delta`` may be negative or larger than 2^32."""
    return (check_u32(a, "sequence number") + delta) & MASK32


def seq_sub(a: SeqNo, b: SeqNo) -> Delta32:
    """The delta that takes ``b`` to ``a``: ``(a - b) mod 2^32``, so ``seq_add(b, seq_sub(a, b)) == a``."""
    return (check_u32(a, "sequence number") - check_u32(b, "sequence number")) & MASK32


def delta(to: SeqNo, frm: SeqNo) -> Delta32:
    """Translation delta from one sequence space to another: ``frm + delta(to, frm) == to``."""
    return seq_sub(to, frm)


def neg(d: Delta32) -> Delta32:
    """The delta that undoes ``d``."""
    return (-check_u32(d, "delta")) & MASK32


def seq_diff(a: SeqNo, b: SeqNo) -> int:
    """Signed distance ``a - b`` in [-2^31, 2^31): how far ``a`` is ahead of ``b`` (negative: behind)."""
    d = seq_sub(a, b)
    return d - MOD32 if d >= HALF32 else d


def seq_lt(a: SeqNo, b: SeqNo) -> bool:
    """RFC 1982 ``a < b``. Values exactly 2^31 apart are not ordered (both ``lt`` are False)."""
    d = seq_sub(b, a)
    return 0 < d < HALF32


def seq_le(a: SeqNo, b: SeqNo) -> bool:
    return a == b or seq_lt(a, b)


def seq_gt(a: SeqNo, b: SeqNo) -> bool:
    return seq_lt(b, a)


def seq_ge(a: SeqNo, b: SeqNo) -> bool:
    return a == b or seq_lt(b, a)


def seq_max(a: SeqNo, b: SeqNo) -> SeqNo:
    """The later of two sequence numbers (``a`` when they are unordered)."""
    return b if seq_lt(a, b) else a


def seq_in_window(x: SeqNo, left: SeqNo, size: int) -> bool:
    """True when ``left <= x < left + size`` in sequence space (``size`` up to 2^31)."""
    if not 0 <= size <= HALF32:
        raise ValueError(f"window size out of range: {size}")
    return seq_sub(x, left) < size


def check_shift(shift: int, what: str = "window shift") -> int:
    if not isinstance(shift, int) or not 0 <= shift <= MAX_WINDOW_SHIFT:
        raise ValueError(f"{what} must be 0..{MAX_WINDOW_SHIFT}, got {shift!r}")
    return shift


def clamp_shift(shift: int) -> int:
    """Window-scale option value as a receiver applies it (RFC 7323: above 14 means 14)."""
    if shift < 0:
        raise ValueError(f"negative window shift: {shift}")
    return min(shift, MAX_WINDOW_SHIFT)


def rescale_window(win: int, shift_from: int, shift_to: int) -> int:
    """Re-express a 16-bit window field sent with ``shift_from`` for a receiver using ``shift_to``.

    ``win' = min(0xFFFF, (win << shift_from) >> shift_to)`` (design note section 2). Rounding down can
    only shrink the advertised window, never promise bytes the sender did not offer; saturation does
    the same when the receiver's scale cannot express the window.
    """
    if not 0 <= win <= WINDOW_MAX:
        raise ValueError(f"window field out of 16-bit range: {win}")
    check_shift(shift_from, "shift_from")
    check_shift(shift_to, "shift_to")
    if shift_from == shift_to:
        return win
    return min(WINDOW_MAX, (win << shift_from) >> shift_to)
