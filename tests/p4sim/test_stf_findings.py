"""What running p4c's STF packet tests on p4sim found (tests/p4sim/stf_check.py), each as a small
program of ours: the frames that go in, and what BMv2 (p4c-bm2-ss 1.2.5 and simple_switch) sends
for each. Every case runs on p4sim; where BMv2 is installed, on BMv2 too (same bytes out).
Also the STF reading and comparing of stf_check itself."""

from __future__ import annotations

import subprocess
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from p4sim.compiler.driver import compile_file
from p4sim.compiler.errors import CompileError
from tests.p4sim import bmv2run
from tests.p4sim.harness import V1_PRELUDE, Sim
from tests.p4sim.stf_check import Script, StfError, compare, frame_matches, parse_add, parse_stf

PAYLOAD = bytes(range(0x40, 0x80))  # no frame is a runt BMv2 would pad


@dataclass(frozen=True)
class Case:
    name: str
    source: str
    frames: tuple[tuple[str, tuple[tuple[int, str], ...]], ...]  # (header hex in, [(port, hex out)])

    def write(self, where: Path) -> Path:
        src = where / f"{self.name}.p4"
        src.write_text(V1_PRELUDE + textwrap.dedent(self.source))
        return src


def _ternary_program(entries: str) -> str:
    return f"""
    header h_t {{ bit<16> t; }}
    struct H {{ h_t h; }}
    struct M {{}}
    parser P(packet_in b, out H h, inout M m, inout standard_metadata_t sm) {{
        state start {{ b.extract(h.h); transition accept; }}
    }}
    control VC(inout H h, inout M m) {{ apply {{}} }}
    control CC(inout H h, inout M m) {{ apply {{}} }}
    control E(inout H h, inout M m, inout standard_metadata_t sm) {{ apply {{}} }}
    control D(packet_out b, in H h) {{ apply {{ b.emit(h.h); }} }}
    control I(inout H h, inout M m, inout standard_metadata_t sm) {{
        action fwd(bit<9> port) {{ sm.egress_spec = port; }}
        table t {{
            key = {{ h.h.t : ternary; }}
            actions = {{ fwd; }}
            default_action = fwd(0);
            {entries}
        }}
        apply {{ t.apply(); }}
    }}
    V1Switch(P(), VC(), I(), E(), CC(), D()) main;
    """


_OLD_DROP = """
    header h_t { bit<16> t; }
    struct H { h_t h; }
    struct M {}
    parser P(packet_in b, out H h, inout M m, inout standard_metadata_t sm) {
        state start { b.extract(h.h); transition accept; }
    }
    control VC(inout H h, inout M m) { apply {} }
    control CC(inout H h, inout M m) { apply {} }
    control E(inout H h, inout M m, inout standard_metadata_t sm) { apply {} }
    control D(packet_out b, in H h) { apply { b.emit(h.h); } }
    action old_drop() { mark_to_drop(); }
    control I(inout H h, inout M m, inout standard_metadata_t sm) {
        action calls_it() { old_drop(); }
        action local_old_drop() { mark_to_drop(); }
        table never_applied { key = { h.h.t : exact; } actions = { local_old_drop; } }
        apply { USE }
    }
    V1Switch(P(), VC(), I(), E(), CC(), D()) main;
    """


CASES = [
    # ``@priority(N)`` on an entry (the form before ``priority=N``): p4c-bm2-ss puts N in BMv2's
    # JSON unchanged and BMv2 tries the smallest first, so @priority(1) beats @priority(3); an
    # entry without one stands at its place in the list (the 2nd entry is 2). p4sim took the
    # first entry that matched (p4c's table-entries-priority-bmv2).
    Case("annotated_priorities", _ternary_program("""
        const entries = {
            0x1111 &&& 0x000F : fwd(1) @priority(3);
            0x1181            : fwd(2);
            0x1181 &&& 0xF00F : fwd(3) @priority(1);
        }"""), (
        ("0001", ((1, "0001"),)),   # only the first entry matches
        ("1001", ((3, "1001"),)),   # first and third: 1 < 3
        ("1181", ((3, "1181"),)),   # all three: 1 < 2 < 3
        ("2222", ((0, "2222"),)),   # none: the default
    )),
    Case("annotated_priority_ties", _ternary_program("""
        const entries = {
            0x0001 &&& 0x000F : fwd(1) @priority(5);
            0x0011 &&& 0x00FF : fwd(2) @priority(5);
            0x0111 &&& 0x0FFF : fwd(3);
        }"""), (
        ("0111", ((3, "0111"),)),   # the unannotated third entry stands at 3, below 5
        ("0011", ((1, "0011"),)),   # equal priorities: program order
    )),
    # The two-argument extract into ``stack.next`` moves the stack on, as the one-argument
    # form does: p4sim extracted both headers into element 0, so the first was lost and the
    # second never valid (p4c's equality-bmv2 sent one header of three).
    Case("varbit_stack_next", """
    header m_t { bit<8> last_len; bit<8> count; }
    header v_t { bit<8> len; varbit<16> v; }
    struct H { m_t m; v_t[3] s; }
    struct M {}
    parser P(packet_in b, out H h, inout M m, inout standard_metadata_t sm) {
        state start {
            b.extract(h.m);
            b.extract(h.s.next, 16);
            b.extract(h.s.next, 8);
            h.m.last_len = h.s.last.len;
            transition accept;
        }
    }
    control VC(inout H h, inout M m) { apply {} }
    control CC(inout H h, inout M m) { apply {} }
    control E(inout H h, inout M m, inout standard_metadata_t sm) { apply {} }
    control D(packet_out b, in H h) { apply { b.emit(h); } }
    control I(inout H h, inout M m, inout standard_metadata_t sm) {
        apply {
            h.m.count = (h.s[0].isValid() ? 8w1 : 0) + (h.s[1].isValid() ? 8w2 : 0) + (h.s[2].isValid() ? 8w4 : 0);
            sm.egress_spec = 1;
        }
    }
    V1Switch(P(), VC(), I(), E(), CC(), D()) main;
    """, (
        ("0000 11aaaa 22bb", ((1, "2203 11aaaa 22bb"),)),
    )),
    # v1model.p4 still declares mark_to_drop() without an argument; p4c-bm2-ss refuses a call
    # of it only in an action it keeps, and it drops the actions nothing uses (nor calls from a
    # kept action): p4sim refused the whole program (p4c's
    # test-parserinvalidargument-error-bmv2).
    # extract<H>(_): the header's bytes are checked and skipped, as p4c compiles it (into a
    # temporary); p4sim refused '_' there (p4c's issue774-4-bmv2).
    Case("extract_into_dont_care", """
    header h_t { bit<16> t; }
    struct H { h_t h; }
    struct M {}
    parser P(packet_in b, out H h, inout M m, inout standard_metadata_t sm) {
        state start { b.extract<h_t>(_); b.extract(h.h); transition accept; }
    }
    control VC(inout H h, inout M m) { apply {} }
    control CC(inout H h, inout M m) { apply {} }
    control E(inout H h, inout M m, inout standard_metadata_t sm) { apply {} }
    control D(packet_out b, in H h) { apply { b.emit(h.h); } }
    control I(inout H h, inout M m, inout standard_metadata_t sm) { apply { sm.egress_spec = 1; } }
    V1Switch(P(), VC(), I(), E(), CC(), D()) main;
    """, (
        ("aaaa bbbb", ((1, "bbbb"),)),
    )),
    Case("old_mark_to_drop_unused", _OLD_DROP.replace("USE", "sm.egress_spec = 2;"), (
        ("0001", ((2, "0001"),)),
    )),
]



@pytest.mark.parametrize("use", ["old_drop();", "calls_it();", "never_applied.apply();"])
def test_old_mark_to_drop_in_a_kept_action_is_refused(use: str, tmp_path: Path) -> None:
    src = tmp_path / "prog.p4"
    src.write_text(V1_PRELUDE + textwrap.dedent(_OLD_DROP.replace("USE", use)))
    with pytest.raises(CompileError, match="mark_to_drop"):
        compile_file(src)
    if _WHY_NOT is None:  # p4c-bm2-ss refuses it as well
        proc = subprocess.run(["p4c-bm2-ss", "-o", str(tmp_path / "p.json"), str(src)],
                              capture_output=True, text=True, check=False)
        assert proc.returncode != 0


def _expect(case: Case) -> list[list[tuple[int, bytes]]]:
    return [[(p, bytes.fromhex(h) + PAYLOAD) for p, h in outs] for _, outs in case.frames]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_p4sim_sends_what_bmv2_sends(case: Case, tmp_path: Path) -> None:
    sim = Sim(compile_file(case.write(tmp_path)))
    got = [sim.send(0, bytes.fromhex(h) + PAYLOAD) for h, _ in case.frames]
    assert got == _expect(case)


_WHY_NOT = bmv2run.unavailable()


@pytest.mark.skipif(_WHY_NOT is not None, reason=str(_WHY_NOT))
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_bmv2_sends_it(case: Case, tmp_path: Path) -> None:
    want = _expect(case)
    with bmv2run.Bmv2Program(case.write(tmp_path), tmp_path / "bmv2") as bmv2:
        theirs = bmv2.run([(0, bytes.fromhex(h) + PAYLOAD) for h, _ in case.frames], [len(w) for w in want])
    assert theirs == [[(p, bmv2run.pad(d)) for p, d in w] for w in want]


# --- the STF tool -----------------------------------------------------------------------------------


def test_add_with_priority_masks_and_spaced_arguments() -> None:
    a = parse_add("test1 503 data.f1:0x****0202 ingress.setb1(val:7, port:3)", "line 1")
    assert (a.table, a.priority, a.action) == ("test1", 503, "ingress.setb1")
    assert [(k.name, k.text) for k in a.keys] == [("data.f1", "0x****0202")]
    assert a.args == [("val", "7"), ("port", "3")]


def test_add_without_priority_or_arguments() -> None:
    a = parse_add("c.t e:4 c.a()", "line 1")
    assert (a.priority, a.action, a.args) == (None, "c.a", [])
    with pytest.raises(StfError):
        parse_add("t k:1", "line 1")


def test_comments_and_verbs() -> None:
    cmds = parse_stf("# header\nexpect 1 01 ** $\n\npacket 0 01 02 # trailing\nwait\n")
    assert [(c.verb, c.args) for c in cmds] == [("expect", "1 01 ** $"), ("packet", "0 01 02"), ("wait", "")]


def test_frames_compare_as_p4cs_runner_does() -> None:
    assert frame_matches("01**03", bytes.fromhex("01ff0304"))         # a prefix, nibble wildcards
    assert not frame_matches("01**03$", bytes.fromhex("01ff0304"))    # $: no more bytes
    assert not frame_matches("0102", bytes.fromhex("01"))              # too short
    assert frame_matches("01$", bytes(1) + bytes(13), pad_ok=False) is False
    s = Script(expected={1: ["01", "02"]}, any_ports={5}, ports={1, 2, 5})
    assert compare(s, [(1, b"\x01"), (5, b"\xff"), (1, b"\x02")]) is None
    assert compare(s, [(1, b"\x02"), (1, b"\x01")]) is not None        # order per port counts
    assert compare(s, [(1, b"\x01"), (1, b"\x02"), (2, b"\x00")]) is not None  # nothing expected on 2
    assert compare(s, [(1, b"\x01"), (1, b"\x02"), (3, b"\x00")]) is None  # port 3: no interface


def test_two_argument_extract_into_dont_care_is_refused(tmp_path: Path) -> None:
    # p4c-bm2-ss: "argument should contain a varbit field" (it cannot see one in '_')
    src = tmp_path / "prog.p4"
    src.write_text(V1_PRELUDE + textwrap.dedent("""
    header v_t { varbit<16> v; }
    struct H { v_t v; }
    struct M {}
    parser P(packet_in b, out H h, inout M m, inout standard_metadata_t sm) {
        state start { b.extract<v_t>(_, 8); transition accept; }
    }
    control VC(inout H h, inout M m) { apply {} }
    control CC(inout H h, inout M m) { apply {} }
    control E(inout H h, inout M m, inout standard_metadata_t sm) { apply {} }
    control D(packet_out b, in H h) { apply { b.emit(h.v); } }
    control I(inout H h, inout M m, inout standard_metadata_t sm) { apply { } }
    V1Switch(P(), VC(), I(), E(), CC(), D()) main;
    """))
    with pytest.raises(CompileError, match="into _"):
        compile_file(src)
    if _WHY_NOT is None:
        proc = subprocess.run(["p4c-bm2-ss", "-o", str(tmp_path / "p.json"), str(src)],
                              capture_output=True, text=True, check=False)
        assert proc.returncode != 0


def test_stf_commands_become_p4runtime_updates(tmp_path: Path) -> None:
    """Names as BMv2's JSON spells them (no control prefix, no 'hdr.', stacks as x$0), keys of
    every kind, STF priorities (0 allowed: shifted by one), defaults, mirroring and multicast."""
    src = tmp_path / "prog.p4"
    src.write_text(V1_PRELUDE + textwrap.dedent("""
    header h_t { bit<16> t; bit<8> u; }
    struct H { h_t h; h_t[2] s; }
    struct M {}
    parser P(packet_in b, out H h, inout M m, inout standard_metadata_t sm) {
        state start { b.extract(h.h); transition accept; }
    }
    control VC(inout H h, inout M m) { apply {} }
    control CC(inout H h, inout M m) { apply {} }
    control E(inout H h, inout M m, inout standard_metadata_t sm) { apply {} }
    control D(packet_out b, in H h) { apply { b.emit(h.h); } }
    control I(inout H h, inout M m, inout standard_metadata_t sm) {
        action fwd(bit<9> port) { sm.egress_spec = port; }
        table tern { key = { h.h.t : ternary; h.s[0].u : exact; } actions = { fwd; NoAction; } }
        table pfx { key = { h.h.t : lpm; } actions = { fwd; } }
        apply { tern.apply(); pfx.apply(); }
    }
    V1Switch(P(), VC(), I(), E(), CC(), D()) main;
    """))
    from tests.p4sim.stf_check import build_script

    p4info = compile_file(src).p4info
    script = build_script(parse_stf("""
        add tern 0 h.t:0x12** s$0.u:7 I.fwd(port:3)
        add pfx h.t:0x1200/8 fwd(port:4)
        setdefault tern fwd(port:5)
        mirroring_add 5 4
        mc_mgrp_create 1
        mc_node_create 400 6 7
        mc_node_associate 1 0
        packet 0 1234
        expect 3 1234 $
    """), p4info)
    updates = [u for kind, u in script.steps if kind == "update"]
    tern, pfx, default, mirror, group = (u.entity for u in updates)  # type: ignore[attr-defined]
    te = tern.table_entry
    assert te.priority == 1
    assert [(m.ternary.value, m.ternary.mask) for m in te.match if m.HasField("ternary")] == [(b"\x12\x00", b"\xff\x00")]
    assert [m.exact.value for m in te.match if m.HasField("exact")] == [b"\x07"]
    assert (pfx.table_entry.match[0].lpm.value, pfx.table_entry.match[0].lpm.prefix_len) == (b"\x12\x00", 8)
    assert default.table_entry.is_default_action
    assert [(r.egress_port, r.instance) for r in mirror.packet_replication_engine_entry.clone_session_entry.replicas] == [(4, 0)]
    assert [(r.egress_port, r.instance) for r in group.packet_replication_engine_entry.multicast_group_entry.replicas] == [
        (6, 400), (7, 400)]
    assert script.expected == {3: ["1234$"]} and script.ports == {0, 3}
    with pytest.raises(StfError, match="no table"):
        build_script(parse_stf("add nosuch k:1 fwd(port:1)"), p4info)


@pytest.mark.parametrize("expr", ["(bit<16>)(h.h.s ++ h.h.u)", "h.h.u ++ h.h.s"])
def test_concat_of_mixed_signs_is_refused(expr: str, tmp_path: Path) -> None:
    # p4c-bm2-ss 1.2.5 casts the right operand to the left's sign at the result's width and
    # fails ("Cannot unify type 'bit<8>' with type 'int<16>'"); p4c's newer
    # concat-mixed-sign-bmv2 expects what later compilers do, which BMv2 1.15.5's p4c cannot
    src = tmp_path / "prog.p4"
    src.write_text(V1_PRELUDE + textwrap.dedent(f"""
    header h_t {{ int<8> s; bit<8> u; bit<16> r; }}
    struct H {{ h_t h; }}
    struct M {{}}
    parser P(packet_in b, out H h, inout M m, inout standard_metadata_t sm) {{
        state start {{ b.extract(h.h); transition accept; }}
    }}
    control VC(inout H h, inout M m) {{ apply {{}} }}
    control CC(inout H h, inout M m) {{ apply {{}} }}
    control E(inout H h, inout M m, inout standard_metadata_t sm) {{ apply {{}} }}
    control D(packet_out b, in H h) {{ apply {{ b.emit(h.h); }} }}
    control I(inout H h, inout M m, inout standard_metadata_t sm) {{ apply {{ h.h.r = {expr}; }} }}
    V1Switch(P(), VC(), I(), E(), CC(), D()) main;
    """))
    with pytest.raises(CompileError, match="signed"):
        compile_file(src)
    if _WHY_NOT is None:
        proc = subprocess.run(["p4c-bm2-ss", "-o", str(tmp_path / "p.json"), str(src)],
                              capture_output=True, text=True, check=False)
        assert proc.returncode != 0
