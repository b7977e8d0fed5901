"""Parser semantics as BMv2 runs them: select forms, errors and what ingress then sees, stacks,
varbit, lookahead/advance, verify, value sets and sub-parsers."""

from __future__ import annotations

import pytest

from tests.p4sim.harness import sim_from_source, v1_program

DECLS = """
error { MyCustomError }
header t_t { bit<8> tag; bit<8> len; }
header d_t { bit<16> v; }
header opt_t { bit<8> kind; varbit<32> data; }
header out_t { bit<8> err; bit<8> path; bit<8> n; bit<8> extra; }
struct headers_t { out_t o; t_t t; d_t d; d_t[2] st; opt_t opt; }
struct meta_t { bit<8> path; }
"""

# ingress reports parser_error, the path the parser took, and the stack's last index
REPORT = """
    hdr.o.setValid();
    // p4c rejects casts of error values, so compare them
    if (sm.parser_error == error.NoError) { hdr.o.err = 0; }
    else if (sm.parser_error == error.PacketTooShort) { hdr.o.err = 1; }
    else if (sm.parser_error == error.NoMatch) { hdr.o.err = 2; }
    else if (sm.parser_error == error.StackOutOfBounds) { hdr.o.err = 3; }
    else if (sm.parser_error == error.HeaderTooShort) { hdr.o.err = 4; }
    else if (sm.parser_error == error.MyCustomError) { hdr.o.err = 9; }
    else { hdr.o.err = 0xEE; }
    hdr.o.path = m.path;
    // the stack's lastIndex (p4c allows it in parsers only): elements valid only by extraction
    hdr.o.n = hdr.st[1].isValid() ? 8w1 : (hdr.st[0].isValid() ? 8w0 : 8w0xFF);
    sm.egress_spec = 1;
"""

PARSER = """
    value_set<bit<8>>(4) special;
    state start {
        pkt.extract(hdr.t);
        transition select(hdr.t.tag, hdr.t.len) {
            (1, _): one;
            (2, 0x10 &&& 0xF0): masked;
            (3, 5 .. 9): ranged;
            (4, _): stack;
            (5, _): opts;
            (6, _): look;
            (7, _): verify_it;
            (8, _): rej;
            (9, _): sub;
            (special, _): vs;
            (10, _): nomatch;
            default: other;
        }
    }
    state one { m.path = 1; pkt.extract(hdr.d); transition accept; }
    state masked { m.path = 2; transition accept; }
    state ranged { m.path = 3; transition accept; }
    state other { m.path = 99; transition accept; }
    state stack { m.path = 4; pkt.extract(hdr.st.next); transition select(hdr.st.last.v) { 0: accept; default: stack; } }
    state opts { m.path = 5; pkt.extract(hdr.opt, (bit<32>)hdr.t.len * 8); transition accept; }
    state look {
        m.path = 6;
        transition select(pkt.lookahead<bit<16>>()) { 0xBEEF: skip; default: accept; }
    }
    state skip { m.path = 7; pkt.advance(16); pkt.extract(hdr.d); transition accept; }
    state verify_it { m.path = 8; verify(hdr.t.len == 0, error.MyCustomError); transition accept; }
    state rej { m.path = 9; transition reject; }
    state sub { m.path = 10; Sub.apply(pkt, hdr.d, m.path); transition accept; }
    state vs { m.path = 11; transition accept; }
    state nomatch { m.path = 12; transition select(hdr.t.len) { 1: accept; } }
"""

SUB = """
parser SubP(packet_in p, out d_t d, inout bit<8> path) {
    state start { p.extract(d); path = path + d.v[7:0]; transition accept; }
}
"""


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    body = v1_program(DECLS + SUB, REPORT, parser=PARSER, parser_locals="SubP() Sub;")
    return sim_from_source(tmp_path_factory.mktemp("parser"), body)


ERRS = {"PacketTooShort": 1, "NoMatch": 2, "StackOutOfBounds": 3, "HeaderTooShort": 4, "MyCustomError": 9}


def errcode(sim, name: str) -> int:
    return ERRS[name]


def run(sim, data: bytes) -> tuple[int, int, int, bytes]:
    port, out = sim.send_one(0, data)
    assert port == 1
    return out[0], out[1], out[2], out[4:]


def test_select_tuple_exact_and_dontcare(sim):
    assert run(sim, b"\x01\x33\xaa\xbbPAY") == (0, 1, 0xFF, b"\x01\x33\xaa\xbbPAY")


def test_select_mask_range_default(sim):
    assert run(sim, b"\x02\x1f")[:2] == (0, 2)
    assert run(sim, b"\x02\x2f")[:2] == (0, 99)
    assert run(sim, b"\x03\x05")[:2] == (0, 3)
    assert run(sim, b"\x03\x09")[:2] == (0, 3)
    assert run(sim, b"\x03\x0a")[:2] == (0, 99)


def test_packet_too_short_still_runs_ingress(sim):
    # the header that did not fit stays invalid; the bytes left are the payload
    err, path, _, rest = run(sim, b"\x01\x00\xaa")
    assert (err, path) == (errcode(sim, "PacketTooShort"), 1)
    assert rest == b"\x01\x00\xaa"


def test_stack_extract_next_last_and_overflow(sim):
    err, path, n, rest = run(sim, b"\x04\x00\x00\x05\x00\x00PAY")
    assert (err, path, n) == (0, 4, 1)
    assert rest == b"\x04\x00\x00\x05\x00\x00PAY"
    err, path, n, rest = run(sim, b"\x04\x00\x00\x05\x00\x06\x00\x07")
    assert (err, n) == (errcode(sim, "StackOutOfBounds"), 1)
    assert rest == b"\x04\x00\x00\x05\x00\x06\x00\x07"


def test_varbit_extract_and_emit(sim):
    err, path, _, rest = run(sim, b"\x05\x02\x07\xaa\xbbPAY")
    assert (err, path) == (0, 5)
    assert rest == b"\x05\x02\x07\xaa\xbbPAY"
    # longer than the varbit's maximum (4 bytes): HeaderTooShort, nothing extracted
    err, _, _, rest = run(sim, b"\x05\x05\x07\x01\x02\x03\x04\x05")
    assert err == errcode(sim, "HeaderTooShort")
    assert rest == b"\x05\x05\x07\x01\x02\x03\x04\x05"
    # BMv2 checks the packet length before the maximum
    assert run(sim, b"\x05\x05\x07\x01")[0] == errcode(sim, "PacketTooShort")


def test_lookahead_and_advance(sim):
    assert run(sim, b"\x06\x00\xbe\xef\x12\x34Z") == (0, 7, 0xFF, b"\x06\x00\x12\x34Z")
    assert run(sim, b"\x06\x00\xbe\xee\x12\x34")[:2] == (0, 6)
    assert run(sim, b"\x06\x00\xbe")[:2] == (errcode(sim, "PacketTooShort"), 6)


def test_verify_with_custom_error(sim):
    assert run(sim, b"\x07\x00")[:2] == (0, 8)
    assert run(sim, b"\x07\x01")[:2] == (errcode(sim, "MyCustomError"), 8)


def test_explicit_reject_and_no_match_end_parsing_without_error(sim):
    # p4c's BMv2 back end treats an explicit transition to reject as accept (with a warning)
    # and adds no NoMatch default: the packet goes on with parser_error NoError
    assert run(sim, b"\x08\x00XY") == (0, 9, 0xFF, b"\x08\x00XY")
    assert run(sim, b"\x0a\x02XY") == (0, 12, 0xFF, b"\x0a\x02XY")


def test_sub_parser(sim):
    assert run(sim, b"\x09\x00\x00\x05")[:2] == (0, 15)


def test_value_set(sim):
    assert run(sim, b"\x30\x00")[:2] == (0, 99)
    vs = sim.state.value_sets[sim._find("value_sets", "P.special").preamble.id]
    vs.set_members([(0x30,)])
    assert run(sim, b"\x30\x00")[:2] == (0, 11)
    vs.set_members([])
