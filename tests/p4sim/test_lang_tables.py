"""Tables: each match kind with priorities, const entries and defaults, isValid() keys,
hit/miss and switch on action_run."""

from __future__ import annotations

import pytest

from tests.p4sim.harness import sim_from_source, v1_program

DECLS = """
header h_t { bit<8> k1; bit<16> k2; bit<8> res; bit<8> how; }
header x_t { bit<8> v; }
struct headers_t { h_t h; x_t x; }
struct meta_t { }
"""

LOCALS = """
    action set_res(bit<8> v) { hdr.h.res = v; }
    action other() { hdr.h.res = 0xEE; }
    table t_exact { key = { hdr.h.k1: exact; } actions = { set_res; other; NoAction; } default_action = other(); }
    table t_lpm { key = { hdr.h.k2: lpm; } actions = { set_res; NoAction; } }
    table t_tern { key = { hdr.h.k1: ternary; hdr.h.k2: range; } actions = { set_res; NoAction; } }
    table t_opt { key = { hdr.h.k1: optional; hdr.x.isValid(): exact; } actions = { set_res; NoAction; } }
    table t_const {
        key = { hdr.h.k1: ternary; }
        actions = { set_res; other; }
        const entries = {
            0x10 &&& 0xF0: set_res(1);
            0x11: set_res(2);        // listed later: lower priority than the mask above
            _: other();
        }
        const default_action = other();
    }
"""

APPLY = """
    sm.egress_spec = 1;
    if (hdr.h.how == 0) {
        switch (t_exact.apply().action_run) {
            set_res: { hdr.h.how = 0x51; }
            other: { hdr.h.how = 0x52; }
        }
    } else if (hdr.h.how == 1) {
        if (t_lpm.apply().hit) { hdr.h.how = 0x61; } else { hdr.h.how = 0x60; }
    } else if (hdr.h.how == 2) {
        t_tern.apply();
    } else if (hdr.h.how == 3) {
        t_opt.apply();
    } else {
        if (!t_const.apply().miss) { hdr.h.how = 0x71; }
    }
"""

PARSER = """
state start { pkt.extract(hdr.h); transition select(hdr.h.k1) { 0xAA: px; default: accept; } }
state px { pkt.extract(hdr.x); transition accept; }
"""


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    return sim_from_source(tmp_path_factory.mktemp("tables"),
                           v1_program(DECLS, APPLY, parser=PARSER, ingress_locals=LOCALS))


def run(sim, k1: int, k2: int, how: int, extra: bytes = b"") -> tuple[int, int]:
    out = sim.send_one(0, bytes([k1]) + k2.to_bytes(2, "big") + bytes([0, how]) + extra)[1]
    return out[3], out[4]


def test_exact_action_run_and_default(sim):
    sim.insert("I.t_exact", [5], "I.set_res", (9,))
    assert run(sim, 5, 0, 0) == (9, 0x51)
    assert run(sim, 6, 0, 0) == (0xEE, 0x52)


def test_lpm_longest_prefix_and_hit(sim):
    sim.insert("I.t_lpm", [(0x1200, 8)], "I.set_res", (1,))
    sim.insert("I.t_lpm", [(0x1230, 12)], "I.set_res", (2,))
    assert run(sim, 0, 0x1234, 1) == (2, 0x61)
    assert run(sim, 0, 0x12FF, 1) == (1, 0x61)
    assert run(sim, 0, 0x1300, 1) == (0, 0x60)


def test_ternary_and_range_with_priorities(sim):
    sim.insert("I.t_tern", [(0x00, 0x00), (0, 0xFFFF)], "I.set_res", (1,), priority=1)
    sim.insert("I.t_tern", [(0x40, 0xF0), (100, 200)], "I.set_res", (2,), priority=10)
    assert run(sim, 0x42, 150, 2)[0] == 2
    assert run(sim, 0x42, 201, 2)[0] == 1
    assert run(sim, 0x52, 150, 2)[0] == 1


def test_optional_and_isvalid_key(sim):
    sim.insert("I.t_opt", [None, 1], "I.set_res", (7,), priority=1)
    sim.insert("I.t_opt", [0x33, 0], "I.set_res", (8,), priority=2)
    assert run(sim, 0xAA, 0, 3, b"\x01")[0] == 7
    assert run(sim, 0x33, 0, 3)[0] == 8
    assert run(sim, 0x34, 0, 3)[0] == 0


def test_const_entries_in_order(sim):
    assert run(sim, 0x11, 0, 4) == (1, 0x71)
    assert run(sim, 0x21, 0, 4) == (0xEE, 0x71)
