"""Control-flow semantics: actions and their arguments (copy-in/copy-out), functions, nested
controls with constructor arguments, exit, return, switch, casts and enums."""

from __future__ import annotations

from tests.p4sim.harness import sim_from_source, v1_program

DECLS = """
enum bit<8> Color { RED = 1, GREEN = 2, BLUE = 7 }
enum Plain { A, B, C }
header h_t { bit<8> a; bit<8> b; bit<8> c; bit<8> d; bit<8> e; bit<8> f; bit<8> g; bit<8> k; }
struct headers_t { h_t h; }
struct meta_t { bit<8> x; }

bit<8> add_and_count(in bit<8> x, inout bit<8> cnt_io, out bit<8> doubled) {
    cnt_io = cnt_io + 1;
    doubled = x + x;
    if (x > 100) { return 0xFF; }
    return x + 1;
}

control Adder(inout bit<8> v)(bit<8> amount) {
    action bump() { v = v + amount; }
    apply { bump(); }
}
"""


def test_actions_functions_and_nested_controls(tmp_path):
    locals_ = """
        Adder(8w10) add10;
        Adder(8w3) add3;
        action swap(inout bit<8> p, inout bit<8> q) { bit<8> t = p; p = q; q = t; }
        action setb(bit<8> v) { hdr.h.b = v; }
        action aliased(inout bit<8> p) { p = p + 1; hdr.h.c = p; p = p + 1; }
    """
    sim = sim_from_source(tmp_path, v1_program(DECLS, """
        swap(hdr.h.a, hdr.h.b);                      // a=2, b=1
        setb(hdr.h.b + 5);                           // b=6
        bit<8> cnt = 0;
        bit<8> dbl;
        hdr.h.d = add_and_count(hdr.h.d, cnt, dbl);  // d=5 (4+1), cnt=1, dbl=8
        hdr.h.e = add_and_count(200, cnt, dbl) ^ cnt; // 0xFF ^ 2
        hdr.h.f = dbl;                               // 400 & 0xFF = 0x90
        add10.apply(hdr.h.g);                        // g=10+g
        add3.apply(hdr.h.g);
        hdr.h.c = 0;
        aliased(hdr.h.k);                            // copy-in/out: c sees k+1, k ends k+2
        sm.egress_spec = 1;
    """, ingress_locals=locals_))
    port, out = sim.send_one(0, bytes([1, 2, 0, 4, 0, 0, 5, 40]))
    assert out == bytes([2, 6, 41, 5, 0xFF ^ 2, 0x90, 18, 42])


def test_exit_skips_rest_of_ingress_but_forwards(tmp_path):
    sim = sim_from_source(tmp_path, v1_program(DECLS, """
        sm.egress_spec = 2;
        hdr.h.a = 1;
        if (hdr.h.b == 1) { exit; }
        hdr.h.a = 2;
        sm.egress_spec = 3;
    """, egress="hdr.h.c = 9;", ingress_locals=""))
    assert sim.send_one(0, bytes([0, 1, 0, 0, 0, 0, 0, 0])) == (2, bytes([1, 1, 9, 0, 0, 0, 0, 0]))
    assert sim.send_one(0, bytes([0, 0, 0, 0, 0, 0, 0, 0])) == (3, bytes([2, 0, 9, 0, 0, 0, 0, 0]))


def test_exit_inside_action_and_nested_control(tmp_path):
    decls = DECLS + """
control Stopper(inout bit<8> v) {
    action stop() { v = 0x55; exit; }
    apply { stop(); v = 0x66; }
}
"""
    sim = sim_from_source(tmp_path, v1_program(decls, """
        sm.egress_spec = 1;
        stopper.apply(hdr.h.a);
        hdr.h.b = 0x77;
    """, ingress_locals="Stopper() stopper;"))
    port, out = sim.send_one(0, bytes(8))
    # exit ends the nested control and the caller: neither 0x66 nor 0x77 is written
    assert out[0] != 0x66 and out[1] == 0


def test_return_in_control_apply(tmp_path):
    sim = sim_from_source(tmp_path, v1_program(DECLS, """
        sm.egress_spec = 1;
        if (hdr.h.a == 0) { return; }
        hdr.h.b = 0xEE;
    """))
    assert sim.send_one(0, bytes(8))[1][1] == 0
    assert sim.send_one(0, bytes([1] + [0] * 7))[1][1] == 0xEE


def test_switch_on_values_and_enums(tmp_path):
    sim = sim_from_source(tmp_path, v1_program(DECLS, """
        switch (hdr.h.a) {
            1: { hdr.h.b = 10; }
            2:
            3: { hdr.h.b = 20; }
            default: { hdr.h.b = 30; }
        }
        Color c = (Color)hdr.h.c;
        switch (c) {
            Color.RED: { hdr.h.d = 1; }
            Color.BLUE: { hdr.h.d = 7; }
        }
        Plain p = Plain.B;
        if (hdr.h.e == 3) { p = Plain.C; }
        switch (p) {
            Plain.B: { hdr.h.f = 0xB; }
            Plain.C: { hdr.h.f = 0xC; }
        }
        hdr.h.g = (bit<8>)Color.GREEN;
        sm.egress_spec = 1;
    """))
    run = lambda *v: sim.send_one(0, bytes(v) + bytes(8 - len(v)))[1]  # noqa: E731
    assert run(1, 0, 7)[:7] == bytes([1, 10, 7, 7, 0, 0xB, 2])
    assert run(3, 0, 1, 0, 3)[:6] == bytes([3, 20, 1, 1, 3, 0xC])
    assert run(9, 0, 2)[:4] == bytes([9, 30, 2, 0])


def test_casts(tmp_path):
    decls = """
header h_t { bit<8> u; int<8> s; bit<16> r1; bit<4> r2; bit<4> pad; int<8> r3; bit<8> r4; int<16> r5; bit<8> r6; bit<8> r7; bit<16> r8; }
struct headers_t { h_t h; }
struct meta_t { }
"""
    sim = sim_from_source(tmp_path, v1_program(decls, """
        hdr.h.r1 = (bit<16>)hdr.h.u;            // zero-extends
        hdr.h.r2 = (bit<4>)hdr.h.u;             // truncates
        hdr.h.r3 = (int<8>)hdr.h.u;             // reinterprets
        hdr.h.r4 = (bit<8>)hdr.h.s;
        hdr.h.r5 = (int<16>)hdr.h.s;            // sign-extends
        bool flag = (bool)hdr.h.u[0:0];
        hdr.h.r6 = (bit<1>)flag ++ 4w0 ++ (bit<3>)(bit<1>)(!flag);
        hdr.h.r7 = (bit<8>)((int<8>)hdr.h.u >> 1);  // arithmetic shift on the signed view
        hdr.h.r8 = ((bit<16>)(bit<8>)(hdr.h.s * 2) << 8) >> 8;
        sm.egress_spec = 1;
    """))
    out = sim.send_one(0, bytes([0xF1, 0x83]) + bytes(11))[1]
    assert out[2:4] == b"\x00\xf1"
    assert out[4] >> 4 == 0x1                    # r2
    assert out[5] == 0xF1                        # r3: the same bits, now int<8>
    assert out[6] == 0x83                        # r4
    assert out[7:9] == b"\xff\x83"               # r5: -125 sign-extended
    assert out[9] == 0b1000_0000                 # r6
    assert out[10] == 0xF8                       # r7: -15 >> 1 = -8
    assert out[11:13] == b"\x00\x06"             # r8: (0x83 * 2) & 0xFF


def test_generic_function_is_specialized_per_type(tmp_path):
    decls = """
    header h_t { bit<8> a; bit<8> b; bit<16> c; bit<16> d; }
    struct headers_t { h_t h; }
    struct meta_t { }
    T pick<T>(in bool first, in T x, in T y) { T r = y; if (first) { r = x; } return r; }
    """
    # (only copies of a T inside: p4c refuses `x > y` on values of a type parameter)
    sim = sim_from_source(tmp_path, v1_program(decls, """
        hdr.h.a = pick(hdr.h.a > hdr.h.b, hdr.h.a, hdr.h.b);
        hdr.h.c = pick<bit<16>>(hdr.h.c > hdr.h.d, hdr.h.c, hdr.h.d);
        sm.egress_spec = 2;
    """))
    port, out = sim.send_one(1, bytes([3, 9, 0x00, 0x01, 0x02, 0x00]) + b"rest")
    assert port == 2
    assert out[:6] == bytes([9, 9, 0x02, 0x00, 0x02, 0x00])


def test_return_in_control_apply_hands_back_out_parameters(tmp_path):
    """A `return` in a nested control's apply copies its out/inout scalars back, as reaching the
    end of apply does (it returned nothing and the caller failed on every packet)."""
    decls = DECLS + """
control Classify(in bit<8> v, out bit<8> kind, inout bit<8> seen) {
    apply {
        seen = seen + 1;
        kind = 1;
        if (v == 0) { return; }
        kind = 2;
        if (v < 10) { return; }
        kind = 3;
    }
}
"""
    sim = sim_from_source(tmp_path, v1_program(decls, """
        bit<8> seen = 0;
        classify.apply(hdr.h.a, hdr.h.b, seen);
        classify2.apply(hdr.h.c, hdr.h.d, seen);
        classify3.apply(hdr.h.e, hdr.h.f, seen);
        hdr.h.g = seen;
        sm.egress_spec = 1;
    """, ingress_locals="Classify() classify; Classify() classify2; Classify() classify3;"))
    _, out = sim.send_one(0, bytes([0, 0, 5, 0, 50, 0, 0, 0]))
    assert out == bytes([0, 1, 5, 2, 50, 3, 3, 0])
