"""Header validity, header/struct copy semantics, header unions and header stacks in controls."""

from __future__ import annotations

import pytest

from tests.p4sim.harness import sim_from_source, v1_program

DECLS = """
header a_t { bit<8> x; bit<8> y; }
header b_t { bit<16> z; }
header_union u_t { a_t a; b_t b; }
struct inner_t { bit<8> v; a_t h; }
struct headers_t { a_t h; a_t h2; a_t h3; u_t u; a_t[3] st; }
struct meta_t { inner_t s1; inner_t s2; }
"""


def test_validity_copy_and_invalid_header_fields(tmp_path):
    sim = sim_from_source(tmp_path, v1_program(DECLS, """
        // h2 = h copies fields and validity; later writes to h do not reach h2
        hdr.h2 = hdr.h;
        hdr.h.x = 0x11;
        // writes to an invalid header land (BMv2 keeps the values) but it is not emitted;
        // setValid() then zeroes them (BMv2's add_header resets an invalid header)
        hdr.h3.x = 0x77;
        hdr.h2.y = hdr.h3.x;
        hdr.h3.setValid();
        hdr.h3.y = hdr.h3.x;
        // struct assignment is a deep copy
        m.s1.v = 5;
        m.s1.h.setValid();
        m.s1.h.x = 9;
        m.s2 = m.s1;
        m.s1.h.x = 10;
        hdr.h3.x = m.s2.h.x + m.s2.v;
        sm.egress_spec = 3;
    """, deparser="pkt.emit(hdr.h); pkt.emit(hdr.h2); pkt.emit(hdr.h3);"))
    port, out = sim.send_one(0, b"\xab\xcd" + b"PAY")
    assert port == 3
    assert out == b"\x11\xcd" + b"\xab\x77" + b"\x0e\x00" + b"PAY"


def test_set_invalid_drops_header_from_output(tmp_path):
    sim = sim_from_source(tmp_path, v1_program(DECLS, """
        hdr.h.setInvalid();
        if (!hdr.h.isValid()) { sm.egress_spec = 4; }
    """))
    assert sim.send_one(0, b"\x01\x02rest") == (4, b"rest")


def test_header_union_keeps_one_member_valid(tmp_path):
    sim = sim_from_source(tmp_path, v1_program(DECLS, """
        hdr.u.a.setValid();
        hdr.u.a.x = 1; hdr.u.a.y = 2;
        hdr.u.b.setValid();          // makes u.a invalid
        hdr.u.b.z = 0x0304;
        bit<8> flags = 0;
        if (hdr.u.a.isValid()) { flags = flags | 1; }
        if (hdr.u.b.isValid()) { flags = flags | 2; }
        if (hdr.u.isValid()) { flags = flags | 4; }
        hdr.h.x = flags;
        hdr.h2 = {0xAA, 0xBB};
        hdr.u.a = hdr.h2;            // a valid header assigned into the union: u.b invalid
        hdr.h.y = (bit<8>)(bit<1>)hdr.u.b.isValid();
        sm.egress_spec = 1;
    """, deparser="pkt.emit(hdr.h); pkt.emit(hdr.u);"))
    port, out = sim.send_one(0, b"\x00\x00")
    assert out == b"\x06\x00" + b"\xaa\xbb"


def test_union_extract_in_parser(tmp_path):
    sim = sim_from_source(tmp_path, v1_program(DECLS, "sm.egress_spec = 1;", parser="""
        state start { pkt.extract(hdr.u.b); pkt.extract(hdr.u.a); transition accept; }
    """, deparser="pkt.emit(hdr.u);"))
    # both extracted, only the last one stays valid
    assert sim.send_one(0, b"\x01\x02\x03\x04tail") == (1, b"\x03\x04tail")


def test_stack_ops_in_control(tmp_path):
    sim = sim_from_source(tmp_path, v1_program(DECLS, """
        hdr.st[0].setValid(); hdr.st[0].x = 1;
        hdr.st[1].setValid(); hdr.st[1].x = 2;
        hdr.st.push_front(1);        // [invalid, 1, 2]
        hdr.st[0].setValid(); hdr.st[0].x = 9;
        hdr.h.x = (bit<8>)hdr.st.size;
        hdr.st.pop_front(2);         // [2, invalid, invalid]
        hdr.h.y = hdr.st[0].x;
        sm.egress_spec = 1;
    """, deparser="pkt.emit(hdr.h); pkt.emit(hdr.st);"))
    assert sim.send_one(0, b"\x00\x00") == (1, b"\x03\x02" + b"\x02\x00")


def test_invalid_expression_and_struct_initializers(tmp_path):
    sim = sim_from_source(tmp_path, v1_program(DECLS, """
        hdr.h2 = (a_t){ x = 7, y = 8 };
        hdr.h = (a_t){#};
        m.s1 = { 3, { 4, 5 } };
        hdr.h3 = m.s1.h;
        hdr.h3.x = hdr.h3.x + m.s1.v;
        sm.egress_spec = 1;
    """))
    assert sim.send_one(0, b"\x01\x02") == (1, b"\x07\x08\x07\x05")


UNION_STACK = """
header kind_t { bit<8> k; }
header a_t { bit<8> x; }
header b_t { bit<16> y; }
header_union u_t { a_t a; b_t b; }
struct headers_t { kind_t h; u_t[3] s; }
struct meta_t { bit<8> n; }
"""


def test_extract_into_a_member_of_the_next_union(tmp_path):
    parser = """
    state start { pkt.extract(hdr.h); transition select(hdr.h.k) { 1: one_a; default: one_b; } }
    state one_a { pkt.extract(hdr.s.next.a); transition two; }
    state one_b { pkt.extract(hdr.s.next.b); transition two; }
    state two { pkt.extract(hdr.s.next.b); m.n = (bit<8>)hdr.s.lastIndex; transition accept; }
    """
    sim = sim_from_source(tmp_path, v1_program(UNION_STACK, """
        sm.egress_spec = 2;
        if (hdr.s[0].a.isValid() && hdr.s[1].b.isValid() && !hdr.s[1].a.isValid() && !hdr.s[2].a.isValid()
            && !hdr.s[2].b.isValid()) {
            hdr.h.k = hdr.h.k + m.n;
        }
    """, parser=parser))
    port, out = sim.send_one(1, bytes([1, 0xAA, 0xBB, 0xCC]) + b"tail")
    assert port == 2
    assert out == bytes([2, 0xAA, 0xBB, 0xCC]) + b"tail"  # k = 1 + lastIndex 1; s[0].a, s[1].b re-emitted
    port, out = sim.send_one(1, bytes([7, 0x01, 0x02, 0x03, 0x04]) + b"tail")
    assert out == bytes([7, 0x01, 0x02, 0x03, 0x04]) + b"tail"  # s[0] is b: the condition is false


def test_reading_an_untouched_stack_element_does_not_leak_into_writes(tmp_path):
    sim = sim_from_source(tmp_path, v1_program(UNION_STACK, """
        sm.egress_spec = 2;
        if (!hdr.s[2].a.isValid()) {           // a read of an element never written
            hdr.s[1].a.setValid();             // a write to another one
            hdr.s[1].a.x = 0x5A;
        }
        if (hdr.s[2].a.isValid() || hdr.s[0].a.isValid()) {
            hdr.h.k = 0xEE;                    // would mean the write reached a shared blank
        }
    """))
    for _ in range(2):  # the second packet sees whatever the first left behind
        port, out = sim.send_one(1, bytes([3]) + b"payload")
        assert out == bytes([3, 0x5A]) + b"payload"


UNION_PASSING = """
header a_t { bit<8> x; bit<8> y; }
header b_t { bit<16> z; }
header_union u_t { a_t a; b_t b; }
struct headers_t { a_t h; u_t u; u_t u2; u_t[2] st; }
struct meta_t { u_t mu; }
bit<8> peek(in a_t a) { return a.x; }
"""


def test_union_members_written_through_arguments_copies_and_stacks(tmp_path):
    # Union members are made on their first write (p4sim/compiler/classes.py): every way of
    # writing one must make it, and every read of one never written must see an invalid member.
    sim = sim_from_source(tmp_path, v1_program(UNION_PASSING, """
        sm.egress_spec = 1;
        if (hdr.u.isValid() || hdr.u2.b.isValid() || m.mu.a.isValid()) { hdr.h.x = 0xEE; return; }
        fill(hdr.u.a, 0x21);                 // out argument of an action
        bump(hdr.u.a);                       // inout argument
        hdr.u2 = hdr.u;                      // union assignment
        hdr.u.a.x = 0x33;                    // does not reach u2
        m.mu = hdr.u2;                       // into metadata
        hdr.st[1].b.setValid();
        hdr.st[1].b.z = peek(hdr.u2.a) ++ m.mu.a.y;  // in argument, read of a copy
        hdr.h.y = (bit<8>)(bit<1>)hdr.st[0].a.isValid();
    """, deparser="pkt.emit(hdr.h); pkt.emit(hdr.u); pkt.emit(hdr.u2); pkt.emit(hdr.st);", ingress_locals="""
        action fill(out a_t a, bit<8> v) { a.setValid(); a.x = v; a.y = v + 1; }
        action bump(inout a_t a) { a.x = a.x + 1; }
    """))
    for _ in range(2):  # the second packet must not see the first one's members
        port, out = sim.send_one(0, b"\x00\x00" + b"PAY")
        assert port == 1
        # h (as parsed), u.a (0x33, 0x22), u2.a (0x22, 0x22), st[1].b (0x22 ++ 0x22)
        assert out == b"\x00\x00" + b"\x33\x22" + b"\x22\x22" + b"\x22\x22" + b"PAY"


def test_a_write_that_reaches_a_shared_blank_fails_loudly():
    from p4sim.dataplane.rtlib import Header, frozen_blank

    class H(Header):
        __slots__ = ("x",)

        def __init__(self) -> None:
            self._valid = False
            self.x = 0

    blank = frozen_blank(H)
    assert isinstance(blank, H) and not blank._valid and blank.x == 0
    with pytest.raises(RuntimeError, match="shared blank"):
        blank.x = 1
    assert blank.x == 0
    assert H().x == 0  # the class itself still takes writes


def test_field_names_that_python_classes_use_themselves(tmp_path):
    # P4 names may start with an underscore: a field called _valid or _copy, a union member
    # called w_a, must not take the place of what p4sim's generated classes call so.
    sim = sim_from_source(tmp_path, v1_program("""
        header a_t { bit<8> _valid; bit<8> _copy; bit<8> set_valid; }
        header v_t { bit<8> len; varbit<16> _emit; }
        header_union u_t { a_t a; a_t w_a; }
        struct headers_t { a_t h; u_t u; v_t v; }
        struct meta_t { bit<8> _set; }
    """, """
        m._set = hdr.h._valid + hdr.h._copy;
        hdr.u.w_a.setValid();
        hdr.u.w_a._valid = m._set;
        hdr.u.w_a.set_valid = hdr.h.set_valid;
        sm.egress_spec = 1;
    """, parser="""
        state start { pkt.extract(hdr.h); pkt.extract(hdr.v, 16); transition accept; }
    """,
        deparser="pkt.emit(hdr.h); pkt.emit(hdr.u); pkt.emit(hdr.v);"))
    port, out = sim.send_one(0, bytes([1, 2, 3, 9, 0xAB, 0xCD]) + b"tail")
    assert port == 1
    assert out == bytes([1, 2, 3]) + bytes([3, 0, 3]) + bytes([9, 0xAB, 0xCD]) + b"tail"
