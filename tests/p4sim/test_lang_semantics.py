"""p4sim against the expected frames of tests/p4sim/lang_cases.py (evaluation order, header
validity, header stacks, equality, copy-in/copy-out, entry priorities), and the constructs p4sim
refuses because it cannot run them as BMv2 does."""

from __future__ import annotations

import pytest

from p4sim.compiler.driver import compile_file
from p4sim.compiler.errors import CompileError
from tests.p4sim.harness import Sim, sim_from_source, v1_program
from tests.p4sim.lang_cases import CASES, REFUSALS, Case, Refusal


@pytest.fixture(scope="module", params=CASES, ids=lambda c: c.name)
def case_sim(request) -> tuple[Case, Sim]:
    case: Case = request.param
    return case, Sim(compile_file(case.path))


def test_expected_frames(case_sim):
    case, sim = case_sim
    wrong = []
    for f in case.frames:
        got = sim.send(0, f.data)
        if got != list(f.out):
            wrong.append(f"{f.what}:\n  expected {[(p, d.hex()) for p, d in f.out]}\n  got      {[(p, d.hex()) for p, d in got]}")
    assert not wrong, f"{case.program}:\n" + "\n".join(wrong)


# --- what BMv2 cannot show: out-of-range stack indices ---------------------------------------------

STACK_DECLS = """
header a_t { bit<8> x; bit<8> y; }
header sel_t { bit<8> i; bit<8> j; }
struct headers_t { sel_t sel; a_t[2] st; a_t h; }
struct meta_t { bit<8> n; }
"""


def test_stack_index_out_of_range_follows_the_spec(tmp_path):
    """Past the end, a read sees an invalid header (its fields unspecified: zeros here) and a write
    has no effect (P4_16 spec, header stacks). simple_switch aborts instead: no frame to compare."""
    sim = sim_from_source(tmp_path, v1_program(STACK_DECLS, """
        hdr.st[0].setValid(); hdr.st[0].x = 1;
        hdr.st[1].setValid(); hdr.st[1].x = 2;
        hdr.st[hdr.sel.j].x = 0x77;
        hdr.st[hdr.sel.j].setValid();
        hdr.h.setValid();
        hdr.h.x = hdr.st[hdr.sel.i].x;
        hdr.h.y = hdr.st[hdr.sel.i].y;
        sm.egress_spec = 1;
    """, parser="state start { pkt.extract(hdr.sel); transition accept; }"))
    assert sim.send_one(0, b"\x05\x09") == (1, b"\x05\x09" + b"\x01\x00\x02\x00" + b"\x00\x00")
    assert sim.send_one(0, b"\x01\x01") == (1, b"\x01\x01" + b"\x01\x00\x77\x00" + b"\x77\x00")


@pytest.mark.parametrize("refusal", REFUSALS, ids=lambda r: r.what)
def test_refused_with_the_construct_named(tmp_path, refusal: Refusal):
    with pytest.raises(CompileError) as exc:
        sim_from_source(tmp_path, refusal.source, prelude=False)
    assert refusal.message in str(exc.value)


INLINE_DECLS = """
header h_t { bit<8> a; bit<8> b; bit<8> c; }
struct headers_t { h_t h; }
struct meta_t { bit<8> n; }
bit<8> twice(in bit<8> x) { return x + x; }
bit<8> bump(inout bit<8> n) { n = n + 1; return n; }
"""


def test_a_function_of_one_expression_evaluates_each_argument_once(tmp_path):
    # p4sim puts the body of such a function in place of the call (p4sim/compiler/calls.py)
    # where the arguments are pure; an argument with a side effect must still run once.
    sim = sim_from_source(tmp_path, v1_program(INLINE_DECLS, """
        m.n = 5;
        hdr.h.a = twice(hdr.h.a);            // inlined: a plain field
        hdr.h.b = twice(bump(m.n));          // not inlined: bump runs once, n = 6
        hdr.h.c = twice(m.n + hdr.h.c);      // inlined: an expression read twice
        sm.egress_spec = 1;
    """))
    assert sim.send_one(0, bytes([3, 0, 1])) == (1, bytes([6, 12, 14]))
