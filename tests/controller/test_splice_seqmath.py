"""Unit tests of the splice core's modulo-2^32 arithmetic and window rescaling."""

import random

import pytest
from p4splice.controller.splice.seqmath import (
    HALF32,
    MASK32,
    check_u32,
    clamp_shift,
    delta,
    neg,
    rescale_window,
    seq_add,
    seq_diff,
    seq_ge,
    seq_gt,
    seq_in_window,
    seq_le,
    seq_lt,
    seq_max,
    seq_sub,
    u32,
)


def test_add_wraps_both_ways():
    assert seq_add(MASK32, 1) == 0
    assert seq_add(0, -1) == MASK32
    assert seq_add(5, 1 << 32) == 5
    assert seq_add(MASK32 - 9, 20) == 10
    assert seq_add(10, -(1 << 40)) == 10


def test_sub_and_delta_are_mod_2_32():
    assert seq_sub(0, MASK32) == 1
    assert seq_sub(MASK32, 0) == MASK32
    assert delta(3, MASK32 - 2) == 6
    assert seq_add(MASK32 - 2, delta(3, MASK32 - 2)) == 3
    assert neg(0) == 0
    assert neg(1) == MASK32
    assert u32(-5) == MASK32 - 4
    assert u32((1 << 64) + 7) == 7


def test_delta_roundtrip_random():
    rng = random.Random(1)
    for _ in range(2000):
        a, b = rng.getrandbits(32), rng.getrandbits(32)
        d = delta(a, b)
        assert 0 <= d <= MASK32
        assert seq_add(b, d) == a
        assert seq_add(a, neg(d)) == b
        assert seq_diff(a, b) == -seq_diff(b, a) or seq_sub(a, b) == HALF32


def test_serial_comparisons_across_the_wrap():
    assert seq_lt(MASK32, 0)
    assert seq_lt(MASK32 - 100, 100)
    assert not seq_lt(100, MASK32 - 100)
    assert seq_gt(5, MASK32)
    assert seq_le(7, 7) and seq_ge(7, 7)
    assert seq_le(MASK32, 3) and seq_ge(3, MASK32)
    assert seq_max(MASK32, 2) == 2
    assert seq_diff(2, MASK32) == 3
    assert seq_diff(MASK32, 2) == -3


def test_half_space_apart_is_unordered():
    # RFC 1982: values exactly 2^31 apart are undefined; we answer "neither is less".
    assert not seq_lt(0, HALF32) and not seq_lt(HALF32, 0)
    assert seq_diff(HALF32, 0) == -HALF32
    assert seq_lt(0, HALF32 - 1)
    assert seq_gt(0, HALF32 + 1)


def test_in_window_across_the_wrap():
    left = MASK32 - 10
    assert seq_in_window(left, left, 100)
    assert seq_in_window(MASK32, left, 100)
    assert seq_in_window(0, left, 100)
    assert seq_in_window(88, left, 100)
    assert not seq_in_window(89, left, 100)
    assert not seq_in_window(left - 1, left, 100)
    assert not seq_in_window(left, left, 0)
    with pytest.raises(ValueError):
        seq_in_window(0, 0, HALF32 + 1)


def test_range_checks():
    with pytest.raises(ValueError):
        check_u32(1 << 32)
    with pytest.raises(ValueError):
        check_u32(-1)
    with pytest.raises(TypeError):
        check_u32(True)
    with pytest.raises(ValueError):
        seq_add(-1, 0)
    with pytest.raises(ValueError):
        seq_sub(0, 1 << 32)


@pytest.mark.parametrize(
    "win, frm, to, expected",
    [
        (1000, 0, 0, 1000),
        (1000, 7, 7, 1000),
        (1000, 7, 9, 250),  # 1000 << 7 >> 9
        (1001, 0, 2, 250),  # rounds down: never promises more than offered
        (3, 0, 2, 0),
        (0xFFFF, 0, 14, 3),
        (1000, 9, 7, 4000),
        (0x4000, 2, 0, 0xFFFF),  # saturates
        (0xFFFF, 14, 0, 0xFFFF),
        (0, 14, 0, 0),
        (0xFFFF, 14, 14, 0xFFFF),
        (0x7FFF, 1, 0, 0xFFFE),
        (0x8000, 1, 0, 0xFFFF),  # 0x10000 saturates to 0xFFFF
    ],
)
def test_rescale_window(win, frm, to, expected):
    assert rescale_window(win, frm, to) == expected


def test_rescale_never_overstates():
    rng = random.Random(7)
    for _ in range(2000):
        win, frm, to = rng.randrange(0x10000), rng.randrange(15), rng.randrange(15)
        out = rescale_window(win, frm, to)
        assert 0 <= out <= 0xFFFF
        assert out << to <= win << frm  # bytes offered after rescale <= bytes offered before
        if (win << frm) >> to <= 0xFFFF:
            assert (win << frm) - (out << to) < (1 << to)  # only rounding lost


def test_rescale_rejects_bad_input():
    for args in ((0x10000, 0, 0), (-1, 0, 0), (1, 15, 0), (1, 0, 15), (1, -1, 0)):
        with pytest.raises(ValueError):
            rescale_window(*args)


def test_clamp_shift():
    assert clamp_shift(0) == 0
    assert clamp_shift(14) == 14
    assert clamp_shift(15) == 14
    assert clamp_shift(255) == 14
    with pytest.raises(ValueError):
        clamp_shift(-1)
