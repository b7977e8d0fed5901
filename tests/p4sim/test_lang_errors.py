"""Programs p4c rejects must be rejected with a located ``file:line:col: error:`` message."""

from __future__ import annotations

import re

import pytest

from p4sim.compiler.errors import CompileError
from tests.p4sim.harness import sim_from_source, v1_program

DECLS = """
header h_t { bit<8> a; bit<16> b; }
struct headers_t { h_t h; }
struct meta_t { bit<8> x; }
"""

CASES = {
    "width_mismatch": (DECLS, "hdr.h.a = hdr.h.a + hdr.h.b;", {}),
    "undeclared": (DECLS, "hdr.h.a = nosuch;", {}),
    "assign_in_param": (DECLS, "sm.egress_spec = 1;", {"deparser": "hdr.h.a = 1; pkt.emit(hdr);"}),
    "wrong_arg_count": (DECLS, "f(1, 2);", {"ingress_locals": "action f(bit<8> v) { hdr.h.a = v; }"}),
    "unknown_match_kind": (DECLS, "t.apply();", {"ingress_locals": "table t { key = { hdr.h.a: fuzzy; } actions = { NoAction; } }"}),
    "duplicate_field": ("header d_t { bit<8> a; bit<8> a; }\n" + DECLS, "", {}),
    # an instance of it (a header type only declared is no error, as with p4c-bm2-ss)
    "header_width": ("header odd_t { bit<7> a; }\n" + DECLS.replace("h_t h;", "h_t h; odd_t o;"), "", {}),
    "bool_arith": (DECLS, "bool t = true; hdr.h.a = t + 1;", {}),
    "slice_out_of_range": (DECLS, "hdr.h.a = hdr.h.b[16:9];", {}),
    "cast_error_type": (DECLS, "hdr.h.a = (bit<8>)sm.parser_error;", {}),
    "exit_in_parser": (DECLS, "", {"parser": "state start { exit; }"}),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_rejected_with_location(tmp_path, name):
    decls, ingress, kw = CASES[name]
    with pytest.raises(CompileError) as info:
        sim_from_source(tmp_path, v1_program(decls, ingress, **kw))
    text = str(info.value)
    assert re.match(r"^.+prog\.p4:\d+:\d+: error: ", text), text


def test_duplicate_declarations_rejected(tmp_path):
    with pytest.raises(CompileError) as info:
        sim_from_source(tmp_path, v1_program(DECLS + "const bit<8> K = 1;\nconst bit<8> K = 2;\n", ""))
    assert ": error: " in str(info.value)


def test_duplicate_locals_rejected(tmp_path):
    with pytest.raises(CompileError):
        sim_from_source(tmp_path, v1_program(DECLS, "bit<8> v = 1; bit<8> v = 2;"))


def test_errors_in_a_control_main_never_uses_are_reported(tmp_path):
    # p4c type-checks every declaration, instantiated or not
    unused = "control Spare(inout meta_t m) { apply { m.x = undeclared_value; } }\n"
    with pytest.raises(CompileError) as info:
        sim_from_source(tmp_path, v1_program(DECLS + unused, ""))
    assert "undeclared_value" in str(info.value)
    assert re.match(r"^.+prog\.p4:\d+:\d+: error: ", str(info.value))
