"""bit<N>/int<N> arithmetic as BMv2 computes it: wrap-around, signed ops, saturation, shifts,
slices, concatenation and comparisons, checked field by field against Python arithmetic."""

from __future__ import annotations

import random

import pytest

from tests.p4sim.harness import sim_from_source, v1_program

FIELDS = [  # name, width, signed
    ("a", 8, False), ("b", 8, False), ("sa", 8, True), ("sb", 8, True), ("w", 32, False), ("n", 8, False),
    ("r_add", 8, False), ("r_sub", 8, False), ("r_mul", 8, False), ("r_sadd", 8, False), ("r_ssub", 8, False),
    ("r_isadd", 8, True), ("r_issub", 8, True), ("r_neg", 8, True), ("r_not", 8, False), ("r_snot", 8, True),
    ("r_shl", 8, False), ("r_shr", 8, False), ("r_shl9", 8, False), ("r_shr9", 8, False),
    ("r_sshr", 8, True), ("r_sshl", 8, True), ("r_sshr_var", 8, True), ("r_wshl", 32, False),
    ("r_cat", 16, False), ("r_slice", 8, False), ("r_cmp", 8, False), ("r_div", 8, False), ("r_mod", 8, False),
    ("r_uneg", 8, False), ("r_band", 8, False), ("r_bor", 8, False), ("r_bxor", 8, False), ("r_tern", 8, False),
    ("r_smul", 8, True), ("r_ssub_w", 8, True), ("r_wslice", 8, False), ("r_scmp", 8, False),
]

DECLS = "header h_t {\n" + "".join(f"    {'int' if s else 'bit'}<{w}> {n};\n" for n, w, s in FIELDS) + """}
struct headers_t { h_t h; }
struct meta_t { }
"""

INGRESS = """
    hdr.h.r_add = hdr.h.a + hdr.h.b;
    hdr.h.r_sub = hdr.h.a - hdr.h.b;
    hdr.h.r_mul = hdr.h.a * hdr.h.b;
    hdr.h.r_sadd = hdr.h.a |+| hdr.h.b;
    hdr.h.r_ssub = hdr.h.a |-| hdr.h.b;
    hdr.h.r_isadd = hdr.h.sa |+| hdr.h.sb;
    hdr.h.r_issub = hdr.h.sa |-| hdr.h.sb;
    hdr.h.r_neg = -hdr.h.sa;
    hdr.h.r_not = ~hdr.h.a;
    hdr.h.r_snot = ~hdr.h.sa;
    hdr.h.r_shl = hdr.h.a << hdr.h.n;
    hdr.h.r_shr = hdr.h.a >> hdr.h.n;
    hdr.h.r_shl9 = hdr.h.a << 9;
    hdr.h.r_shr9 = hdr.h.a >> 9;
    hdr.h.r_sshr = hdr.h.sa >> 2;
    hdr.h.r_sshl = hdr.h.sa << 3;
    hdr.h.r_sshr_var = hdr.h.sa >> hdr.h.n;
    hdr.h.r_wshl = hdr.h.w << hdr.h.w;
    hdr.h.r_cat = hdr.h.a ++ hdr.h.b;
    hdr.h.r_slice = 0;
    hdr.h.r_slice[7:4] = hdr.h.a[3:0];
    hdr.h.r_slice[3:0] = hdr.h.b[7:4];
    hdr.h.r_cmp = 2w0 ++ (bit<1>)(hdr.h.a == hdr.h.b) ++ (bit<1>)(hdr.h.a != hdr.h.b)
        ++ (bit<1>)(hdr.h.a <= hdr.h.b) ++ (bit<1>)(hdr.h.a >= hdr.h.b)
        ++ (bit<1>)(hdr.h.a < hdr.h.b) ++ (bit<1>)(hdr.h.a > hdr.h.b);
    hdr.h.r_scmp = 4w0 ++ (bit<1>)(hdr.h.sa < hdr.h.sb) ++ (bit<1>)(hdr.h.sa > hdr.h.sb)
        ++ (bit<1>)(hdr.h.sa <= hdr.h.sb) ++ (bit<1>)(hdr.h.sa >= hdr.h.sb);
    hdr.h.r_div = hdr.h.a / 3;
    hdr.h.r_mod = hdr.h.a % 7;
    hdr.h.r_uneg = -hdr.h.a;
    hdr.h.r_band = hdr.h.a & hdr.h.b;
    hdr.h.r_bor = hdr.h.a | hdr.h.b;
    hdr.h.r_bxor = hdr.h.a ^ hdr.h.b;
    hdr.h.r_tern = hdr.h.a > hdr.h.b ? hdr.h.a : hdr.h.b;
    hdr.h.r_smul = hdr.h.sa * hdr.h.sb;
    hdr.h.r_ssub_w = hdr.h.sa - hdr.h.sb;
    hdr.h.r_wslice = hdr.h.w[19:12];
    sm.egress_spec = 1;
"""


def pack(values: dict[str, int]) -> bytes:
    acc = 0
    total = 0
    for n, w, _ in FIELDS:
        acc = (acc << w) | (values.get(n, 0) & ((1 << w) - 1))
        total += w
    return acc.to_bytes(total // 8, "big")


def unpack(data: bytes) -> dict[str, int]:
    total = sum(w for _, w, _ in FIELDS)
    acc = int.from_bytes(data[: total // 8], "big")
    out = {}
    for n, w, s in reversed(FIELDS):
        v = acc & ((1 << w) - 1)
        acc >>= w
        if s and v >= 1 << (w - 1):
            v -= 1 << w
        out[n] = v
    return out


def u8(v: int) -> int:
    return v & 0xFF


def s8(v: int) -> int:
    v &= 0xFF
    return v - 256 if v >= 128 else v


def expected(a: int, b: int, sa: int, sb: int, w: int, n: int) -> dict[str, int]:
    lt, gt = a < b, a > b
    return {
        "r_add": u8(a + b), "r_sub": u8(a - b), "r_mul": u8(a * b),
        "r_sadd": min(a + b, 255), "r_ssub": max(a - b, 0),
        "r_isadd": max(min(sa + sb, 127), -128), "r_issub": max(min(sa - sb, 127), -128),
        "r_neg": s8(-sa), "r_not": u8(~a), "r_snot": s8(~sa),
        "r_shl": u8(a << n), "r_shr": a >> n, "r_shl9": 0, "r_shr9": 0,
        "r_sshr": sa >> 2, "r_sshl": s8(sa << 3), "r_sshr_var": sa >> n,
        "r_wshl": (w << w) & 0xFFFFFFFF if w < 64 else 0,
        "r_cat": a << 8 | b, "r_slice": (a & 0xF) << 4 | b >> 4,
        "r_cmp": (a == b) << 5 | (a != b) << 4 | (a <= b) << 3 | (a >= b) << 2 | lt << 1 | gt,
        "r_scmp": (sa < sb) << 3 | (sa > sb) << 2 | (sa <= sb) << 1 | (sa >= sb),
        "r_div": a // 3, "r_mod": a % 7, "r_uneg": u8(-a),
        "r_band": a & b, "r_bor": a | b, "r_bxor": a ^ b, "r_tern": max(a, b),
        "r_smul": s8(sa * sb), "r_ssub_w": s8(sa - sb), "r_wslice": (w >> 12) & 0xFF,
    }


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    return sim_from_source(tmp_path_factory.mktemp("arith"), v1_program(DECLS, INGRESS))


CASES = [
    (200, 16, -16, 5, 3, 1), (0, 0, 0, 0, 0, 0), (255, 255, -128, -128, 0xFFFFFFFF, 7),
    (1, 2, 127, 1, 31, 8), (128, 127, -128, 1, 0x80000000, 200), (7, 7, -1, -1, 1, 255),
    (3, 250, 100, 100, 40, 9), (99, 1, -100, 100, 0xFFFF_FFFF, 32),
]


@pytest.mark.parametrize("case", CASES + [tuple(random.Random(i).randrange(0, 256) if j in (0, 1, 5)
                                                 else random.Random(i).randrange(-128, 128) if j in (2, 3)
                                                 else random.Random(i).randrange(0, 1 << 32) for j in range(6))
                                           for i in range(6)])
def test_arithmetic(sim, case):
    a, b, sa, sb, w, n = case
    port, out = sim.send_one(0, pack({"a": a, "b": b, "sa": sa, "sb": sb, "w": w, "n": n}))
    assert port == 1
    got = unpack(out)
    want = expected(a, b, sa, sb, w, n)
    assert {k: got[k] for k in want} == want


def test_huge_shift_amount_is_cheap(sim):
    # a 32-bit shift amount near 2**32 must not build a gigantic integer
    port, out = sim.send_one(0, pack({"w": 0xFFFFFFF0}))
    assert unpack(out)["r_wshl"] == 0


CONST_DECLS = """
header h_t { bit<8> x; bit<8> c1; bit<8> c2; int<8> c3; bit<8> c4; bit<16> c5; bit<8> c6; bit<8> c7; }
struct headers_t { h_t h; }
struct meta_t { }
const bit<8> K1 = 8w250 + 8w10;
const int<8> K2 = -8s128 - 1;
"""


def test_constant_folding_wraps_like_runtime(tmp_path):
    sim = sim_from_source(tmp_path, v1_program(CONST_DECLS, """
        hdr.h.c1 = K1;
        hdr.h.c2 = 8w3 - 8w5;
        hdr.h.c3 = K2;
        hdr.h.c4 = 8w255 |+| 8w1;
        hdr.h.c5 = 8w0xAB ++ 8w0xCD;
        hdr.h.c6 = (8w1 << 7) >> 7;
        hdr.h.c7 = 1 + 2 * 3;
        sm.egress_spec = 2;
    """))
    port, out = sim.send_one(0, bytes(9))
    assert port == 2
    assert out == bytes([0, 4, 254, 127, 255, 0xAB, 0xCD, 1, 7])
