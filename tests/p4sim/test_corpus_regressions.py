"""Regressions found by sweeping p4c's v1model test corpus: each test is a small program of our
own that shows one case where p4sim disagreed with p4c (rejected what it accepts, or wrote a
different P4Info)."""

from __future__ import annotations

from pathlib import Path

import pytest
from p4.config.v1 import p4info_pb2

from p4sim.compiler.driver import compile_file
from p4sim.compiler.errors import CompileError
from p4sim.dataplane.hashes import csum16
from tests.p4sim.harness import V1_PRELUDE, sim_from_source, v1_program

HDR = "header h_t { bit<16> k; bit<32> x; }\nstruct headers_t { h_t h; }\nstruct meta_t { bit<16> sel; }\n"


def _p4info(tmp_path: Path, ingress: str, ingress_locals: str, decls: str = HDR, **kw: str) -> p4info_pb2.P4Info:
    src = tmp_path / "prog.p4"
    src.write_text(V1_PRELUDE + v1_program(decls, ingress, ingress_locals=ingress_locals, **kw))
    return compile_file(src).p4info


def _table(info: p4info_pb2.P4Info, name: str) -> p4info_pb2.Table:
    return next(t for t in info.tables if t.preamble.name == name)


def _action_id(info: p4info_pb2.P4Info, name: str) -> int:
    return next(a.preamble.id for a in info.actions if a.preamble.name == name)


def test_const_default_action_is_also_the_initial_default(tmp_path: Path) -> None:
    # p4c fills initial_default_action (arguments included) whether or not the default is const
    info = _p4info(tmp_path, "fixed.apply();", """
        action bump(bit<32> by, bit<32> extra) { hdr.h.x = hdr.h.x + by + extra; }
        table fixed { key = { hdr.h.k: exact; } actions = { bump; } const default_action = bump(7, 0); }
    """)
    t = _table(info, "I.fixed")
    bump = _action_id(info, "I.bump")
    assert t.const_default_action_id == bump
    assert t.initial_default_action.action_id == bump
    assert [(a.param_id, a.value) for a in t.initial_default_action.arguments] == [(1, b"\0\0\0\7"), (2, b"\0\0\0\0")]


def test_varbit_field_named_in_a_checksum_list(tmp_path: Path) -> None:
    # a varbit field listed on its own (not through its header) counts with its current length
    decls = """
    header opt_t { bit<8> len; bit<16> csum; varbit<64> data; }
    struct headers_t { opt_t h; }
    struct meta_t { }
    """
    sim = sim_from_source(tmp_path, v1_program(
        decls, "sm.egress_spec = 1;",
        parser="state start { pkt.extract(hdr.h, (bit<32>)(pkt.lookahead<bit<8>>() * 8)); transition accept; }",
        compute="update_checksum(true, { hdr.h.len, hdr.h.data }, hdr.h.csum, HashAlgorithm.csum16);"))
    out = sim.send_one(0, bytes([2, 0, 0, 0xAB, 0xCD]) + b"tail")[1]
    assert out[1:3] == csum16(bytes([2, 0xAB, 0xCD])).to_bytes(2, "big")
    assert out[3:] == bytes([0xAB, 0xCD]) + b"tail"


def test_selector_key_without_an_action_selector_is_ignored(tmp_path: Path) -> None:
    # p4c accepts it and leaves the key out of P4Info (and BMv2's table key): it has no effect
    info = _p4info(tmp_path, "t.apply();", """
        action set(bit<32> v) { hdr.h.x = v; }
        table t { key = { hdr.h.k: exact; m.sel: selector; } actions = { set; } size = 16; }
    """)
    t = _table(info, "I.t")
    assert [(f.id, f.name) for f in t.match_fields] == [(1, "hdr.h.k")]
    assert t.implementation_id == 0 and not info.action_profiles
    sim = sim_from_source(tmp_path, v1_program(HDR, "m.sel = 9; t.apply(); sm.egress_spec = 1;", ingress_locals="""
        action set(bit<32> v) { hdr.h.x = v; }
        table t { key = { hdr.h.k: exact; m.sel: selector; } actions = { set; } size = 16; }
    """))
    sim.insert("I.t", [5], "I.set", (0x01020304,))
    assert sim.send_one(0, bytes([0, 5, 0, 0, 0, 0]))[1] == bytes([0, 5, 1, 2, 3, 4])


def test_switch_label_after_default_is_rejected(tmp_path: Path) -> None:
    # p4c: default must be the last label, even when it falls through to a later label's body
    src = tmp_path / "prog.p4"
    src.write_text(V1_PRELUDE + v1_program(HDR, """
        switch (t.apply().action_run) {
            default:
            two: { hdr.h.x = 2; }
        }
    """, ingress_locals="action one() { } action two() { } table t { actions = { one; two; } }"))
    with pytest.raises(CompileError, match=r"default label of a switch must be the last"):
        compile_file(src)
