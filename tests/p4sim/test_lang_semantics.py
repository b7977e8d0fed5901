"""p4sim against the expected frames of tests/p4sim/lang_cases.py (evaluation order, header
validity, header stacks, equality, copy-in/copy-out, entry priorities), and the constructs p4sim
refuses because it cannot run them as BMv2 does."""

from __future__ import annotations

import pytest

from p4sim.compiler.driver import compile_file
from p4sim.compiler.errors import CompileError
from tests.p4sim.harness import Sim, sim_from_source, v1_program
from tests.p4sim.lang_cases import CASES, Case


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


REFUSED = [
    ("lastIndex in a control", "hdr.h.setValid(); hdr.h.x = hdr.st.lastIndex[7:0];",
     "'lastIndex' of a header stack can only be used in a parser"),
    ("last in a control", "hdr.h.setValid(); hdr.h.x = hdr.st.last.x;",
     "'last' of a header stack can only be used in a parser"),
    ("next in a control", "hdr.st.next.x = 1;", "'next' of a header stack can only be used in a parser"),
    ("isValid() with a run-time index", "if (hdr.st[hdr.sel.i].isValid()) { hdr.h.setValid(); }",
     "isValid() of a header stack element with a run-time index"),
    ("whole element assigned with a run-time index", "hdr.st[hdr.sel.i] = hdr.h;",
     "assigning a whole header stack element with a run-time index"),
    ("whole element as inout argument", "bump(hdr.st[hdr.sel.i]);",
     "passing as inout argument a whole header stack element with a run-time index"),
]


@pytest.mark.parametrize(("what", "body", "message"), REFUSED, ids=[r[0] for r in REFUSED])
def test_refused_stack_uses(tmp_path, what, body, message):
    with pytest.raises(CompileError) as exc:
        sim_from_source(tmp_path, v1_program(STACK_DECLS, body, ingress_locals="action bump(inout a_t a) { a.x = 1; }",
                                             parser="state start { pkt.extract(hdr.sel); transition accept; }"))
    assert message in str(exc.value), what


def test_refused_extract_with_a_run_time_index(tmp_path):
    with pytest.raises(CompileError, match="extracting into a whole header stack element with a run-time index"):
        sim_from_source(tmp_path, v1_program(STACK_DECLS, "sm.egress_spec = 1;", parser="""
            state start { pkt.extract(hdr.sel); pkt.extract(hdr.st[hdr.sel.i]); transition accept; }"""))
