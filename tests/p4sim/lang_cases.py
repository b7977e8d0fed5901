"""Language corners where a simulator can quietly differ from BMv2: the programs
(tests/p4sim/programs/lang_*.p4), the frames that go in, and what v1model sends out for each,
worked out from the P4_16 spec and, where the spec leaves a choice, from what BMv2 does.

test_lang_semantics.py runs every case on p4sim and checks the expected frames;
test_bmv2_parity.py runs the same programs on BMv2 (p4c-bm2-ss, simple_switch_grpc) and checks
that p4sim sends the same bytes. ``REFUSALS`` are what p4sim refuses to compile, naming the
construct: what p4c-bm2-ss refuses too, and what it compiles but BMv2 cannot run.

Every frame goes in on port 0; every program starts with a ``sel_t { bit<8> i; bit<8> j; }``
header that picks what the program does, and leaves ``PAYLOAD`` (64 bytes: no frame is a runt
BMv2 would pad) after the headers it parses.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tests.p4sim.harness import V1_PRELUDE, v1_program

PROGRAMS = Path(__file__).resolve().parent / "programs"
PAYLOAD = bytes(range(0x40, 0x80))


@dataclass(frozen=True)
class Frame:
    data: bytes
    out: tuple[tuple[int, bytes], ...]
    what: str


def frame(head: str, *out: tuple[int, str], what: str = "") -> Frame:
    """A frame of header bytes ``head`` (hex, spaces allowed) and the frames expected out as
    (port, header hex); the payload follows each."""
    def raw(h: str) -> bytes:
        return bytes.fromhex(h.replace(" ", "")) + PAYLOAD

    return Frame(raw(head), tuple((port, raw(h)) for port, h in out), what or head)


@dataclass(frozen=True)
class Case:
    program: str  # file name in PROGRAMS
    frames: tuple[Frame, ...]

    @property
    def path(self) -> Path:
        return PROGRAMS / self.program

    @property
    def name(self) -> str:
        return self.program.removesuffix(".p4")


CASES = [
    Case("lang_short_circuit.p4", (
        # res = a b c d: a/b from && and || (b counts the calls), c from ?: (plus its calls),
        # d: 0x11 when the table ran (and hit), 0 when && did not apply it
        frame("00 00", (1, "00 00  02 01 22 00"), what="&& right side skipped, || right side runs"),
        frame("01 00", (1, "01 00  03 01 22 00"), what="&& right side runs, || right side skipped"),
        frame("02 00", (1, "02 00  02 01 11 00"), what="?: takes the first branch only"),
        frame("03 01", (1, "03 01  02 01 22 11"), what="&& applies the table"),
        frame("00 01", (1, "00 01  02 01 22 00"), what="&& does not apply the table"),
        frame("03 00", (1, "03 00  02 01 22 00"), what="table applied, miss"),
    )),
    Case("lang_eval_order.p4", (
        # a = n + inc(n); b = minus(n, inc(n)); c = (n ++ inc(n))[15:8]; d = n;
        # e = n == inc(n); f = n
        frame("05 00", (1, "05 00  0b ff 07 08 00 09")),
        frame("ff 00", (1, "ff 00  ff ff 01 02 00 03")),
    )),
    Case("lang_copy_in_out.p4", (
        # h starts valid (1, 2), h2 valid (0, 0); emitted: sel, h, h2
        frame("00 00", (1, "00 00  01 0b  02 01"), what="two inout arguments naming one header"),
        frame("01 00", (1, "01 00  14 02  01 02"), what="inout argument and the control's own hdr"),
        frame("02 00", (1, "02 00  01 01"), what="out header: invalid after the call, valid during it"),
        frame("03 00", (1, "03 00  1f 02  00 00"), what="two inout scalars naming one field: the last wins"),
        frame("04 00", (1, "04 00  28 02  28 29"), what="inout scalar and the control's own field"),
        frame("05 00", (1, "05 00  00 07  32 00"), what="inout struct and the control's own struct"),
        frame("06 00", (1, "06 00  09 02  01 00"), what="function: in and inout naming one header"),
        frame("07 00", (1, "07 00  14 02  01 02"), what="an action passing its parameter on"),
        frame("08 00", (1, "08 00  1f 02  00 00"), what="two slices of one field as inout arguments"),
        frame("09 00", (1, "09 00  a5 02  00 00"), what="inout slice written back over the action's own write"),
        frame("0a 00", (1, "0a 00  01 02  00 02"), what="out struct: the header in it invalid"),
        frame("0b 00", (1, "0b 00  01 02  00 00  07 00"), what="out stack: every element invalid first"),
    )),
    Case("lang_exit_copy_out.p4", (
        # h starts (1, 2), h2 valid (0, 0); after exit ingress ends (egress_spec stays 0);
        # egress writes m.n into h2.x; out: sel, h, h2
        frame("00 00", (0, "00 00  01 55  05 00"), what="action called from the control: written back"),
        frame("01 00", (0, "01 00  01 56  05 00"), what="the inner action's copy-out is lost, the outer's is not"),
        frame("02 00", (0, "02 00  01 46  05 00"), what="inout header: written back"),
        frame("03 00", (0, "03 00  01 02  05 00"), what="inout header overlapping the action's own write: written back over it"),
        frame("04 00", (0, "04 00  72 02  71 00"), what="sub-control: its writes stay"),
        frame("05 00", (0, "05 00  01 02  05 00"), what="sub-control with overlapping arguments: dropped"),
    )),
    Case("lang_slices.p4", (
        # out: sel, h (x, y), w (s, n:p, q), st[0], st[1]
        frame("00 00", (1, "00 00  00 fe  00 05 0f 0f  a0 00  00 00")),
        frame("12 34", (1, "12 34  13 fe  12 45 2f 0f  a0 00  00 00")),
        frame("ff 81", (1, "ff 81  f8 ff  ff 65 ff 0f  00 00  a0 00")),
        frame("01 80", (1, "01 80  08 fe  01 25 1f 0f  00 00  a0 00")),
    )),
    Case("lang_header_validity.p4", (
        # in: sel, h = (a1, a2), h2 = (b1, b2); out: sel, h, h2, h3, st (the valid ones)
        frame("00 00  a1 a2  b1 b2", (1, "00 00  00 07  b1 b2"), what="invalid then valid: zeroed"),
        frame("01 00  a1 a2  b1 b2", (1, "01 00  a1 a2  b1 b2"), what="setValid on a valid header"),
        frame("02 00  a1 a2  b1 b2", (1, "02 00  00 44  b1 33"), what="written while invalid: kept, then zeroed"),
        frame("03 00  a1 a2  b1 b2", (1, "03 00  b1 00"), what="assigned an invalid header: fields stay"),
        frame("04 00  a1 a2  b1 b2", (1, "04 00  a1 a2  b1 b2  00 00"), what="through a struct"),
        frame("05 00  a1 a2  b1 b2", (1, "05 00  b1 b2  00 00  04 05"), what="through a stack element"),
        frame("06 00  a1 a2  b1 b2", (1, "06 00  11 a2  b1 b2  a1 a2"), what="valid header assigned"),
    )),
    Case("lang_stack_index.p4", (
        # in: sel (i = index, j = elements), j elements (1k, 2k); out: sel, r = (n, lastIndex,
        # last.x, error), the valid elements, h = (st[i].x before, st[i].y after), h2 = st[i];
        # indices stay within the stack (BMv2 aborts on one past the end, see test_lang_semantics)
        frame("00 00", (1, "00 00  00 ff 00 00  00 00  00 00  00 00"), what="no element: lastIndex is 2**32-1"),
        frame("01 02  10 20  11 21", (1, "01 02  00 01 11 00  10 20  11 55  11 55  11 55"),
              what="two elements, index 1: valid element written"),
        frame("02 02  10 20  11 21", (1, "02 02  00 01 11 00  10 20  11 21  00 00  00 00  00 00"),
              what="two elements, index 2: the invalid element made valid, zeroed"),
        frame("00 03  10 20  11 21  12 22", (1, "00 03  00 02 12 00  10 55  11 21  12 22  10 55  10 55"),
              what="stack full"),
        frame("02 04  10 20  11 21  12 22  13 23", (1, "02 04  01 02 12 01  10 20  11 21  12 55  12 55  12 55  13 23"),
              what="one element too many: StackOutOfBounds, the rest is payload"),
    )),
    Case("lang_equality.p4", (
        # out: sel, res = (r, l). r: 01 s1 == s2, 02 s1 != s2, 04 u1 == u2, 08 u1 != u2,
        # 10 m1 == m2, 20 m1 != m2, 40 h1 == h2, 80 h1 != h2. l: 01 h2 == {2, 0}, 02 {0, 0} == h1,
        # 04 h1 == {#}, 08 {0, 0} != h2, 10 {sel.i, sel.j} == {0, 0x28}
        frame("00 00", (1, "00 00  55 0c"), what="everything invalid: all equal"),
        frame("01 00", (1, "01 00  56 0c"), what="stacks: a valid element against an invalid one"),
        frame("03 00", (1, "03 00  55 0c"), what="stacks: equal valid elements"),
        frame("07 00", (1, "07 00  56 0c"), what="stacks: a field differs"),
        frame("08 00", (1, "08 00  55 0c"), what="stacks: a field of an invalid element differs"),
        frame("10 00", (1, "10 00  59 0c"), what="unions: one member valid against none"),
        frame("30 00", (1, "30 00  55 0c"), what="unions: the same member, equal"),
        frame("70 00", (1, "70 00  59 0c"), what="unions: different members valid"),
        frame("80 08", (1, "80 08  55 02"), what="headers: both valid, equal"),
        frame("80 18", (1, "80 18  95 00"), what="headers: both valid, a field differs"),
        frame("80 00", (1, "80 00  95 0a"), what="headers: valid against invalid"),
        frame("00 10", (1, "00 10  55 0c"), what="headers: both invalid, fields differ"),
        frame("00 01", (1, "00 01  65 0c"), what="structs: a header member differs in validity"),
        frame("00 02", (1, "00 02  65 0c"), what="structs: a scalar member differs"),
        frame("00 04", (1, "00 04  55 0c"), what="structs: a field of an invalid member differs"),
        frame("00 28", (1, "00 28  95 1d"), what="list expressions"),
        frame("00 20", (1, "00 20  55 0c"), what="an invalid header against a list expression"),
    )),
    Case("lang_entry_priorities.p4", (
        # key sel.i; res = (in_order, mixed, smallest, ties), 0 on a miss
        frame("00 00", (1, "00 00  01 00 00 02")),
        frame("01 00", (1, "01 00  02 02 02 01")),
        frame("02 00", (1, "02 00  01 05 01 02")),
        frame("03 00", (1, "03 00  03 05 03 01")),
        frame("05 00", (1, "05 00  02 02 02 01")),
        frame("07 00", (1, "07 00  03 04 03 01")),
        frame("ff 00", (1, "ff 00  03 04 03 01")),
    )),
    Case("compat_varbit_union_next.p4", (
        # s[0].v (len, one byte of varbit), then s[1].w, then t: all emitted back in place
        frame("01 aa 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e", (1, "01 aa 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e"),
              what="the stack moves on after the varbit member"),
    )),
    Case("compat_varbit_struct_header.p4", (
        # h = s { a, b, c } len opt[len bytes], then t; out: a = b, c += len
        frame("12 34 02 aa bb 77  00 00 00 00 00 00 00 00 00", (1, "22 36 02 aa bb 77  00 00 00 00 00 00 00 00 00"),
              what="two bytes of varbit"),
        frame("12 34 00 77 01 02 03 04 05 06 07 08 09 0a 0b", (1, "22 34 00 77 01 02 03 04 05 06 07 08 09 0a 0b"),
              what="an empty varbit"),
        frame("12 34 05 11 22 33 44 55 66 77 88 99 aa bb cc", (2, "12 34 05 11 22 33 44 55 66 77 88 99 aa bb cc"),
              what="five bytes past a 32-bit varbit: HeaderTooShort, nothing extracted"),
    )),
]


# --- refused -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Refusal:
    what: str
    source: str  # a whole program
    message: str  # in p4sim's error
    p4c_refuses: bool  # False: p4c-bm2-ss compiles it, but simple_switch cannot load or run it


_DECLS = """
header sel_t { bit<8> i; bit<8> j; }
header a_t { bit<8> x; bit<8> y; }
struct headers_t { sel_t sel; a_t[2] st; a_t h; }
struct meta_t { bit<8> n; }
"""
_PARSER = "state start { pkt.extract(hdr.sel); transition accept; }"


def _program(ingress: str, *, parser: str = _PARSER, ingress_locals: str = "") -> str:
    return V1_PRELUDE + v1_program(_DECLS, ingress + "\n    sm.egress_spec = 1;", parser=parser,
                                   ingress_locals=ingress_locals)


def _with_decls(decls: str, ingress: str) -> str:
    return V1_PRELUDE + v1_program(_DECLS + decls, ingress + "\n    sm.egress_spec = 1;", parser=_PARSER)


def _table(entries: str, key: str = "ternary", props: str = "", field: str = "hdr.sel.i") -> str:
    return _program("t.apply();", ingress_locals=f"""
    action set(bit<8> v) {{ hdr.h.setValid(); hdr.h.x = v; }}
    table t {{
        key = {{ {field} : {key}; }}
        actions = {{ set; NoAction; }}
        {props}
        {entries}
    }}""")


REFUSALS = [
    Refusal("lastIndex in a control", _program("hdr.h.setValid(); hdr.h.x = hdr.st.lastIndex[7:0];"),
            "'lastIndex' of a header stack can only be used in a parser", True),
    Refusal("last in a control", _program("hdr.h.setValid(); hdr.h.x = hdr.st.last.x;"),
            "'last' of a header stack can only be used in a parser", True),
    Refusal("next in a control", _program("hdr.st.next.x = 1;"),
            "'next' of a header stack can only be used in a parser", True),
    Refusal("push_front in a parser", _program("", parser="""
        state start { pkt.extract(hdr.sel); hdr.st.push_front(1); transition accept; }"""),
            "'push_front' of a header stack cannot be used in a parser", True),
    Refusal("a slice of a signed value on the left", _program(
        "int<8> v = (int<8>)hdr.sel.i; v[3:0] = hdr.sel.j[3:0]; hdr.h.setValid(); hdr.h.x = (bit<8>)v;"),
            "assigning a slice of a signed value", True),
    Refusal("isValid() with a run-time index", _program("if (hdr.st[hdr.sel.i].isValid()) { hdr.h.setValid(); }"),
            "isValid() of a header stack element with a run-time index", False),
    Refusal("a whole element assigned with a run-time index", _program("hdr.st[hdr.sel.i] = hdr.h;"),
            "assigning a whole header stack element with a run-time index", False),
    Refusal("a whole element as inout argument with a run-time index", _program(
        "bump(hdr.st[hdr.sel.i]);", ingress_locals="action bump(inout a_t a) { a.x = 1; }"),
            "passing as inout argument a whole header stack element with a run-time index", False),
    Refusal("extract into an element with a run-time index", _program("", parser="""
        state start { pkt.extract(hdr.sel); pkt.extract(hdr.st[hdr.sel.i]); transition accept; }"""),
            "extracting into a whole header stack element with a run-time index", False),
    Refusal("priorities in const entries", _table("const entries = { priority=3: 0x01 &&& 0x01 : set(1); }"),
            "entries of 'const entries' cannot have priorities", True),
    Refusal("priorities where every key is exact", _table("entries = { priority=3: 0x01 : set(1); }", key="exact"),
            "need no priorities, but entries give some", True),
    Refusal("a priority missing on the first entry", _table(
        "entries = { 0x00 &&& 0x00 : set(1); priority=2: 0x01 &&& 0x01 : set(2); }"),
            "the first entry needs a priority when any entry has one", True),
    Refusal("a priority below 1", _table("entries = { priority=1: 0x00 &&& 0x00 : set(1); 0x01 &&& 0x01 : set(2); }"),
            "entry priority 0 is below 1", True),
    # Entry keys p4c-bm2-ss cannot write into BMv2's JSON (it keeps error members symbolic).
    Refusal("an error value as an exact entry key", _table(
        "const entries = { error.PacketTooShort : set(1); }", key="exact", field="sm.parser_error"),
            "error.PacketTooShort: unsupported exact key expression", True),
    Refusal("an error value as a ternary entry key", _table(
        "const entries = { error.NoError : set(1); }", field="sm.parser_error"),
            "error.NoError: unsupported ternary key expression", True),
    Refusal("an error value as an optional entry key", _table(
        "const entries = { error.NoMatch : set(1); }", key="optional", field="sm.parser_error"),
            "error.NoMatch: unsupported optional key expression", True),
    Refusal("a mask of error values", _table(
        "const entries = { error.NoMatch &&& error.NoMatch : set(1); }", field="sm.parser_error"),
            "&&&: cannot be applied to a value of type error", True),
    Refusal("'_' as an exact entry key", _table("const entries = { _ : set(1); }", key="exact"),
            "'_': unsupported exact key expression", True),
    Refusal("a mask as an exact entry key", _table("const entries = { 1 &&& 3 : set(1); }", key="exact"),
            "a mask (&&&): unsupported exact key expression", True),
    Refusal("a range as a ternary entry key", _table("const entries = { 1 .. 3 : set(1); }"),
            "a range (..): unsupported ternary key expression", True),
    Refusal("a mask as an optional entry key", _table("entries = { 1 &&& 3 : set(1); }", key="optional"),
            "a mask (&&&): unsupported optional key expression", True),
    # Direction keywords are no names (p4c's grammar: syntax errors).
    Refusal("a header field named out", _with_decls("header o_t { bit<8> out; }", ""),
            "unexpected keyword 'out', expecting a field name", True),
    Refusal("a struct field named in", _with_decls("struct i_t { bit<8> in; }", ""),
            "unexpected keyword 'in', expecting a field name", True),
    Refusal("a member named inout", _with_decls("", "hdr.h.inout = 1;"),
            "unexpected keyword 'inout', expecting a member name", True),
    # A generic function's body is checked once, with its type parameters unknown: their values
    # can only be copied. (Called or not: p4c checks the declaration.)
    Refusal("arithmetic on a type parameter's value", _with_decls(
        "T inc<T>(in T x) { return x + 1; }", "hdr.h.setValid(); hdr.h.x = inc(hdr.sel.i);"),
            "+: cannot be applied to expression 'x' with type 'T'", True),
    Refusal("arithmetic on a type parameter's value, uncalled", _with_decls(
        "T dbl<T>(in T x) { T y = x; return y |+| y; }", ""),
            "|+|: cannot be applied to expression 'y' with type 'T'", True),
    Refusal("comparing type parameter values", _with_decls(
        "bool same<T>(in T a, in T b) { return a == b; }", "if (same(hdr.sel.i, hdr.sel.j)) { hdr.h.setValid(); }"),
            "==: values of a type variable (T) cannot be compared", True),
    Refusal("a compound assignment to a type parameter's value", _with_decls(
        "void bump<T>(inout T x) { x += 1; }", "bump(hdr.sel.i);"),
            "+=: cannot be applied to 'x' with type 'T'", True),
    Refusal("a cast of a type parameter's value", _with_decls(
        "bit<8> to8<T>(in T x) { return (bit<8>)x; }", ""),
            "cast of 'x' with type 'T' not supported", True),
    Refusal("a slice of a type parameter's value", _with_decls(
        "bit<4> low<T>(in T x) { return x[3:0]; }", ""),
            "x: bit extraction is not defined on type variable T", True),
]
