"""Tests of the P4_16 preprocessor + parser: the shape of the syntax tree they build."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from p4sim.compiler import ast
from p4sim.compiler.errors import CompileError
from p4sim.compiler.parser import parse_file, parse_program
from p4sim.compiler.preprocess import P4INCLUDE_DIR, preprocess

PROGRAMS = Path(__file__).parent / "programs"

PRELUDE = """
header h_t { bit<8> a; bit<8> b; }
struct hs { h_t h; h_t[4] stack; }
extern ext<T> { ext(bit<32> size); T get<U>(in U x); void put(in T v); }
extern packet_in { void extract<T>(out T h); T lookahead<T>(); void advance(in bit<32> n); }
"""


def parse(text: str) -> ast.Program:
    return parse_program(text, "t.p4")


def decl(prog: ast.Program, name: str) -> ast.Node:
    found = [d for d in prog.decls if getattr(d, "name", None) == name]
    assert found, name
    return found[0]


def expr(text: str, prelude: str = PRELUDE) -> ast.Expr:
    """Parse ``text`` as the right-hand side of an assignment inside a control (named ``ctl``:
    a type name, such as the control's own, is no expression alone)."""
    prog = parse(f"{prelude}\ncontrol ctl(inout hs x) {{ apply {{ y = {text}; }} }}")
    c = decl(prog, "ctl")
    assert isinstance(c, ast.ControlDecl)
    stmt = c.body.stmts[0]
    assert isinstance(stmt, ast.AssignStmt)
    return stmt.rhs


def stmts(text: str, prelude: str = PRELUDE) -> list[ast.Stmt]:
    prog = parse(f"{prelude}\ncontrol ctl(inout hs x) {{ apply {{ {text} }} }}")
    c = decl(prog, "ctl")
    assert isinstance(c, ast.ControlDecl)
    return c.body.stmts


def show(e: ast.Expr) -> str:
    """A compact fully-parenthesised rendering, to assert precedence."""
    if isinstance(e, ast.BinaryExpr):
        return f"({show(e.left)} {e.op} {show(e.right)})"
    if isinstance(e, ast.UnaryExpr):
        return f"({e.op}{show(e.operand)})"
    if isinstance(e, ast.TernaryExpr):
        return f"({show(e.cond)} ? {show(e.then)} : {show(e.other)})"
    if isinstance(e, ast.PathExpr):
        return ("." if e.is_global else "") + e.name
    if isinstance(e, ast.IntLiteral):
        return e.text
    if isinstance(e, ast.MemberExpr):
        return f"{show(e.expr)}.{e.member}"
    if isinstance(e, ast.SliceExpr):
        return f"{show(e.expr)}[{show(e.hi)}:{show(e.lo)}]"
    if isinstance(e, ast.IndexExpr):
        return f"{show(e.expr)}[{show(e.index)}]"
    if isinstance(e, ast.CastExpr):
        return f"(cast {show(e.expr)})"
    if isinstance(e, ast.CallExpr):
        return f"{show(e.func)}({', '.join(show(a.value) for a in e.args)})"
    if isinstance(e, ast.BoolLiteral):
        return str(e.value).lower()
    return type(e).__name__


# --- expressions ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "shape"),
    [
        ("a + b * c", "(a + (b * c))"),
        ("a * b + c", "((a * b) + c)"),
        ("a - b - c", "((a - b) - c)"),
        ("a & b == c", "((a & b) == c)"),
        ("a == b & c", "(a == (b & c))"),
        ("a | b ^ c & d", "(a | (b ^ (c & d)))"),
        ("a < b | c", "(a < (b | c))"),
        ("a << 2 + 1", "(a << (2 + 1))"),
        ("a >> 2 & 3", "((a >> 2) & 3)"),
        ("a >> b >> c", "((a >> b) >> c)"),
        ("x[7:0] ++ y", "(x[7:0] ++ y)"),
        ("a ++ b + c", "((a ++ b) + c)"),
        ("a |+| b * c |-| d", "((a |+| (b * c)) |-| d)"),
        ("a && b || c && d", "((a && b) || (c && d))"),
        ("!a && b", "((!a) && b)"),
        ("-a.b * c", "((-a.b) * c)"),
        ("~a[3]", "(~a[3])"),
        ("a ? b : c ? d : e", "(a ? b : (c ? d : e))"),
        ("a || b ? c + 1 : d", "((a || b) ? (c + 1) : d)"),
        ("a < b && c > d", "((a < b) && (c > d))"),
        ("a <= b != c >= d", "((a <= b) != (c >= d))"),
        ("(a + b) * c", "((a + b) * c)"),
        ("a % b / c", "((a % b) / c)"),
    ],
)
def test_precedence(text: str, shape: str) -> None:
    assert show(expr(text)) == shape


def test_literals() -> None:
    e = expr("8w255 + 0x1F_f")
    assert isinstance(e, ast.BinaryExpr)
    assert isinstance(e.left, ast.IntLiteral) and (e.left.value, e.left.width, e.left.signed) == (255, 8, False)
    assert isinstance(e.right, ast.IntLiteral) and (e.right.value, e.right.width) == (0x1FF, None)
    neg = expr("-4s3")
    assert isinstance(neg, ast.UnaryExpr) and neg.op == "-"
    assert isinstance(neg.operand, ast.IntLiteral) and (neg.operand.value, neg.operand.width, neg.operand.signed) == (3, 4, True)
    s = expr('"hi\\n"')
    assert isinstance(s, ast.StringLiteral) and s.value == "hi\n"
    assert isinstance(expr("true"), ast.BoolLiteral) and expr("false").value is False  # type: ignore[attr-defined]


def test_casts_and_slices() -> None:
    e = expr("(bit<8>)x.h.a + 1")
    assert isinstance(e, ast.BinaryExpr) and e.op == "+"
    assert isinstance(e.left, ast.CastExpr)
    assert isinstance(e.left.type, ast.BitTypeRef) and e.left.type.width.value == 8  # type: ignore[attr-defined]
    c = expr("(h_t){a = 1, b = 2}")
    assert isinstance(c, ast.CastExpr) and isinstance(c.type, ast.NamedTypeRef) and c.type.name == "h_t"
    assert isinstance(c.expr, ast.StructInitExpr) and [f for f, _ in c.expr.fields] == ["a", "b"]
    signed = expr("(int<16>)(a)")
    assert isinstance(signed, ast.CastExpr) and signed.type.signed is True  # type: ignore[attr-defined]
    paren = expr("(a)")
    assert isinstance(paren, ast.PathExpr)
    sl = expr("x.h.a[7:4]")
    assert isinstance(sl, ast.SliceExpr) and sl.hi.value == 7 and sl.lo.value == 4  # type: ignore[attr-defined]
    idx = expr("x.stack[2].a")
    assert isinstance(idx, ast.MemberExpr) and isinstance(idx.expr, ast.IndexExpr)


def test_braces_invalid_lists_struct_init() -> None:
    assert isinstance(expr("{#}"), ast.InvalidExpr)
    lst = expr("{a, b, 3}")
    assert isinstance(lst, ast.ListExpr) and len(lst.elems) == 3
    si = expr("{a = 1, b = c + 1}")
    assert isinstance(si, ast.StructInitExpr) and si.fields[1][0] == "b"
    empty = expr("{}")
    assert isinstance(empty, ast.ListExpr) and empty.elems == []


def test_calls_type_args_and_named_arguments() -> None:
    e = expr("e.get<bit<16>>(a)")
    assert isinstance(e, ast.CallExpr) and isinstance(e.func, ast.MemberExpr)
    assert len(e.type_args) == 1 and isinstance(e.type_args[0], ast.BitTypeRef)
    # A comparison with a value name is not a type-argument list.
    lt = expr("a < b")
    assert isinstance(lt, ast.BinaryExpr) and lt.op == "<"
    s = stmts("f(x = 1, y = _); g(_);")
    call = s[0]
    assert isinstance(call, ast.CallStmt)
    assert [a.name for a in call.call.args] == ["x", "y"]
    assert isinstance(call.call.args[1].value, ast.DontCareExpr)
    assert isinstance(s[1].call.args[0].value, ast.DontCareExpr)  # type: ignore[attr-defined]


def test_global_names_this_error_and_enum_members() -> None:
    prelude = PRELUDE + "enum E { A, B }\nenum bit<8> SE { X = 1, Y = 2 }\n"
    e = expr(".g + E.A", prelude)
    assert isinstance(e, ast.BinaryExpr)
    assert isinstance(e.left, ast.PathExpr) and e.left.is_global and e.left.name == "g"
    assert isinstance(e.right, ast.MemberExpr) and e.right.member == "A"
    assert isinstance(e.right.expr, ast.PathExpr) and e.right.expr.name == "E"
    err = expr("error.NoMatch", prelude)
    assert isinstance(err, ast.MemberExpr) and err.expr.name == "error"  # type: ignore[attr-defined]
    assert isinstance(expr("this", prelude), ast.ThisExpr)
    ctor = expr("ext<bit<8>>(32w4)", prelude)
    assert isinstance(ctor, ast.CallExpr) and ctor.func.name == "ext" and len(ctor.type_args) == 1  # type: ignore[attr-defined]


def test_lookahead_shift_split() -> None:
    # The '>>' that closes two type-argument lists must not become a shift...
    e = expr("p.lookahead<bit<8>>()")
    assert isinstance(e, ast.CallExpr) and isinstance(e.type_args[0], ast.BitTypeRef)
    # ...but a real shift after a call still is one.
    e2 = expr("p.lookahead<bit<8>>() >> 1")
    assert isinstance(e2, ast.BinaryExpr) and e2.op == ">>" and isinstance(e2.left, ast.CallExpr)


# --- types and declarations ----------------------------------------------------------------


def test_nested_type_arguments_register() -> None:
    prog = parse(
        "extern register<T> { register(bit<32> size); }\n"
        "extern Pair<A, B> { Pair(); }\n"
        "control c() {\n"
        "  register<bit<32>>(16) r1;\n"
        "  Pair<bit<8>, register<bit<16>>>() p;\n"
        "  register<_>(1) r2;\n"
        "  apply { }\n"
        "}\n"
    )
    c = decl(prog, "c")
    assert isinstance(c, ast.ControlDecl)
    r1, p, r2 = c.locals
    assert isinstance(r1, ast.Instantiation) and r1.name == "r1"
    assert isinstance(r1.type, ast.NamedTypeRef) and r1.type.name == "register"
    assert isinstance(r1.type.type_args[0], ast.BitTypeRef)
    assert r1.args[0].value.value == 16  # type: ignore[attr-defined]
    assert isinstance(p, ast.Instantiation)
    inner = p.type.type_args[1]  # type: ignore[attr-defined]
    assert isinstance(inner, ast.NamedTypeRef) and inner.name == "register"
    assert inner.type_args[0].width.value == 16  # type: ignore[attr-defined]
    assert isinstance(r2.type.type_args[0], ast.DontCareTypeRef)  # type: ignore[attr-defined]


def test_type_declarations() -> None:
    prog = parse(
        "typedef bit<48> mac_t;\n"
        "type bit<32> id_t;\n"
        "header eth_t { mac_t dst; @name(\"s\") mac_t src; bit<16> type; }\n"
        "header_union u_t { eth_t a; eth_t b; }\n"
        "struct S<T> { T f; varbit<64> v; bool b; int<8> i; int u; string s; error e; }\n"
        "struct hs { eth_t[4] stack; tuple<bit<8>, bool> t; }\n"
        "enum Color { Red, Green, Blue, }\n"
        "enum bit<8> Ser { A = 1, B = 0x10 }\n"
        "error { MyError, Other }\n"
        "match_kind { fancy }\n"
        "const bit<8> K = 3;\n"
    )
    td = decl(prog, "mac_t")
    assert isinstance(td, ast.TypedefDecl) and not td.is_newtype
    nt = decl(prog, "id_t")
    assert isinstance(nt, ast.TypedefDecl) and nt.is_newtype
    eth = decl(prog, "eth_t")
    assert isinstance(eth, ast.HeaderDecl) and [f.name for f in eth.fields] == ["dst", "src", "type"]
    assert eth.fields[1].annotations[0].name == "name"
    assert isinstance(decl(prog, "u_t"), ast.HeaderUnionDecl)
    s = decl(prog, "S")
    assert isinstance(s, ast.StructDecl) and s.type_params == ["T"]
    assert isinstance(s.fields[0].type, ast.NamedTypeRef) and s.fields[0].type.name == "T"
    assert isinstance(s.fields[1].type, ast.VarbitTypeRef)
    assert [type(f.type).__name__ for f in s.fields[2:]] == [
        "BoolTypeRef", "BitTypeRef", "IntTypeRef", "StringTypeRef", "ErrorTypeRef",
    ]
    hs = decl(prog, "hs")
    st = hs.fields[0].type  # type: ignore[attr-defined]
    assert isinstance(st, ast.StackTypeRef) and st.size.value == 4 and st.elem.name == "eth_t"
    assert isinstance(hs.fields[1].type, ast.TupleTypeRef)  # type: ignore[attr-defined]
    color = decl(prog, "Color")
    assert isinstance(color, ast.EnumDecl) and [m.name for m in color.members] == ["Red", "Green", "Blue"]
    assert color.underlying is None
    ser = decl(prog, "Ser")
    assert isinstance(ser, ast.EnumDecl) and ser.underlying is not None
    assert [m.value.value for m in ser.members] == [1, 16]  # type: ignore[union-attr]
    errs = [d for d in prog.decls if isinstance(d, ast.ErrorDecl)]
    assert errs[0].members == ["MyError", "Other"]
    mks = [d for d in prog.decls if isinstance(d, ast.MatchKindDecl)]
    assert mks[0].members == ["fancy"]
    k = decl(prog, "K")
    assert isinstance(k, ast.TopConstDecl) and k.value.value == 3  # type: ignore[attr-defined]


def test_externs_and_block_types() -> None:
    prog = parse(
        "extern Fwd;\nextern packet_in { }\n"
        "@pure extern bit<32> f<T>(in T x, out bit<8> y);\n"
        "extern void g();\n"
        "extern T pick<T>(T a, T b);\n"
        "extern Obj<T> {\n"
        "  Obj(bit<32> size);\n"
        "  Obj();\n"
        "  @noSideEffects T read<I>(in I index);\n"
        "  void write(in bit<32> i, in T v = 0);\n"
        "  abstract bit<16> hook(inout T data);\n"
        "}\n"
        "parser P<H>(packet_in b, out H h);\n"
        "control C<H>(inout H h);\n"
        "package Pkg<H>(P<H> p, C<H> c);\n"
    )
    f = decl(prog, "f")
    assert isinstance(f, ast.ExternFunctionDecl) and f.type_params == ["T"]
    assert [p.direction for p in f.params] == ["in", "out"] and f.annotations[0].name == "pure"
    pick = decl(prog, "pick")
    assert isinstance(pick, ast.ExternFunctionDecl) and pick.return_type.name == "T"  # type: ignore[attr-defined]
    assert isinstance(decl(prog, "g").return_type, ast.VoidTypeRef)  # type: ignore[attr-defined]
    obj = decl(prog, "Obj")
    assert isinstance(obj, ast.ExternDecl) and obj.type_params == ["T"]
    ctors = [m for m in obj.methods if m.return_type is None]
    assert [len(c.params) for c in ctors] == [1, 0]
    read = obj.methods[2]
    assert read.name == "read" and read.type_params == ["I"] and read.annotations[0].name == "noSideEffects"
    assert obj.methods[3].params[1].default is not None
    assert obj.methods[4].is_abstract
    assert isinstance(decl(prog, "P"), ast.ParserTypeDecl)
    assert isinstance(decl(prog, "C"), ast.ControlTypeDecl)
    pkg = decl(prog, "Pkg")
    assert isinstance(pkg, ast.PackageTypeDecl) and pkg.params[0].type.type_args[0].name == "H"  # type: ignore[attr-defined]


def test_parser_states_and_select() -> None:
    prog = parse(
        PRELUDE
        + "parser p(packet_in pk, out hs x) {\n"
        "  value_set<bit<16>>(4) pvs;\n"
        "  bit<8> n = 0;\n"
        "  state start {\n"
        "    pk.extract(x.h);\n"
        "    transition select(x.h.a, x.h.b) {\n"
        "      (1, 2): next;\n"
        "      (0x10 &&& 0xF0, _): next;\n"
        "      (3 .. 7, default): accept;\n"
        "      pvs: next;\n"
        "      default: reject;\n"
        "    }\n"
        "  }\n"
        "  @name(\"nx\") state next {\n"
        "    pk.advance(32);\n"
        "    verify(n == 0, error.NoMatch);\n"
        "    transition select(pk.lookahead<bit<8>>()) { 0: accept; _: next; }\n"
        "  }\n"
        "  state last { }\n"
        "}\n"
    )
    p = decl(prog, "p")
    assert isinstance(p, ast.ParserDecl)
    assert isinstance(p.locals[0], ast.ValueSetDecl) and p.locals[0].name == "pvs"
    assert isinstance(p.locals[1], ast.VarDecl)
    start, nxt, last = p.states
    sel = start.transition
    assert isinstance(sel, ast.SelectExpr) and len(sel.exprs) == 2
    ks = [c.keyset for c in sel.cases]
    assert isinstance(ks[0], ast.ListExpr) and [e.value for e in ks[0].elems] == [1, 2]  # type: ignore[attr-defined]
    assert isinstance(ks[1], ast.ListExpr) and isinstance(ks[1].elems[0], ast.MaskExpr)
    assert isinstance(ks[1].elems[1], ast.DontCareExpr)
    assert isinstance(ks[2].elems[0], ast.RangeExpr) and isinstance(ks[2].elems[1], ast.DefaultExpr)  # type: ignore[attr-defined]
    assert isinstance(ks[3], ast.PathExpr) and ks[3].name == "pvs"
    assert isinstance(ks[4], ast.DefaultExpr)
    assert [c.next_state for c in sel.cases] == ["next", "next", "accept", "next", "reject"]
    assert nxt.annotations[0].name == "name"
    nsel = nxt.transition
    assert isinstance(nsel, ast.SelectExpr) and isinstance(nsel.exprs[0], ast.CallExpr)
    assert isinstance(nsel.cases[1].keyset, ast.DontCareExpr)
    assert last.transition is None and last.stmts == []


def test_transition_to_state_name() -> None:
    prog = parse("extern packet_in {}\nparser p(packet_in b) { state start { transition accept; } }")
    assert decl(prog, "p").states[0].transition == "accept"  # type: ignore[attr-defined]


def test_tables() -> None:
    prog = parse(
        PRELUDE
        + "control c(inout hs x) {\n"
        "  action a(bit<8> v) { x.h.a = v; }\n"
        "  action b() { }\n"
        "  table t {\n"
        "    key = { x.h.a : exact @name(\"ka\"); x.h.b : ternary; }\n"
        "    actions = { a; @defaultonly b; .NoAction; }\n"
        "    const default_action = a(5);\n"
        "    size = 64;\n"
        "    @name(\"impl\") implementation = ext<bit<8>>(32w10);\n"
        "    support_timeout = true;\n"
        "    const entries = {\n"
        "      (1, 0x0 &&& 0xF) : a(1);\n"
        "      priority = 3: (2, _) : b() @hidden;\n"
        "      const priority = (5): (3, 4) : a(v = 2);\n"
        "    }\n"
        "  }\n"
        "  table single { key = { x.h.a : lpm; } actions = { b; } entries = { 5 : b(); (6) : b(); } }\n"
        "  apply { t.apply(); }\n"
        "}\n"
    )
    c = decl(prog, "c")
    t = c.locals[2]  # type: ignore[attr-defined]
    assert isinstance(t, ast.TableDecl) and t.name == "t"
    assert t.key is not None and [k.match_kind for k in t.key] == ["exact", "ternary"]
    assert t.key[0].annotations[0].name == "name"
    assert [a.name for a in t.actions] == ["a", "b", "NoAction"]
    assert t.actions[1].annotations[0].name == "defaultonly" and t.actions[2].is_global
    assert t.default_action is not None and t.default_action.name == "a" and t.default_action_const
    assert t.default_action.args[0].value.value == 5  # type: ignore[attr-defined]
    props = {p.name: p for p in t.properties}
    assert props["size"].value.value == 64  # type: ignore[attr-defined]
    assert isinstance(props["implementation"].value, ast.CallExpr)
    assert props["implementation"].annotations[0].name == "name"
    assert isinstance(props["support_timeout"].value, ast.BoolLiteral)
    assert t.entries is not None and t.entries_const
    e0, e1, e2 = t.entries
    assert len(e0.keysets) == 2 and isinstance(e0.keysets[1], ast.MaskExpr) and e0.priority is None
    assert e1.priority.value == 3 and isinstance(e1.keysets[1], ast.DontCareExpr)  # type: ignore[union-attr]
    assert e1.action.name == "b" and e1.annotations[0].name == "hidden"
    assert e2.is_const and e2.priority.value == 5 and e2.action.args[0].name == "v"  # type: ignore[union-attr]
    single = c.locals[3]  # type: ignore[attr-defined]
    assert single.entries_const is False
    assert [len(e.keysets) for e in single.entries] == [1, 1]
    assert [e.keysets[0].value for e in single.entries] == [5, 6]


def test_statements_switch_fallthrough_and_if() -> None:
    s = stmts(
        "bit<8> v = 1; const bit<8> K = 2; h_t tmp;\n"
        "if (v == 1) v = 2; else if (v == 3) { v = 4; } else exit;\n"
        "switch (t.apply().action_run) { a: b: { v = 5; } c: { } default: { return; } }\n"
        "switch (v) { 1: 2: { v = 0; } default: }\n"
        "x.stack.push_front(1); x.h.setInvalid(); ; { } @atomic { v = v |+| 1; }\n"
        "ext<bit<8>>(4) local_ext;\n"
        "c2.apply(x);\n"
    , PRELUDE + "control c2(inout hs x) { apply { } }\n")
    assert isinstance(s[0], ast.VarDecl) and s[0].init.value == 1  # type: ignore[union-attr]
    assert isinstance(s[1], ast.ConstDecl) and s[1].name == "K"
    assert isinstance(s[2], ast.VarDecl) and s[2].init is None
    iff = s[3]
    assert isinstance(iff, ast.IfStmt) and isinstance(iff.then, ast.AssignStmt)
    assert isinstance(iff.other, ast.IfStmt) and isinstance(iff.other.other, ast.ExitStmt)
    sw = s[4]
    assert isinstance(sw, ast.SwitchStmt) and isinstance(sw.expr, ast.MemberExpr) and sw.expr.member == "action_run"
    labels = [(show(c.label), c.body is None) for c in sw.cases]
    assert labels == [("a", True), ("b", False), ("c", False), ("DefaultExpr", False)]
    assert isinstance(sw.cases[3].body.stmts[0], ast.ReturnStmt)  # type: ignore[union-attr]
    sw2 = s[5]
    assert [(show(c.label), c.body is None) for c in sw2.cases] == [("1", True), ("2", False), ("DefaultExpr", True)]
    assert isinstance(s[6], ast.CallStmt) and isinstance(s[7], ast.CallStmt)
    assert isinstance(s[8], ast.EmptyStmt) and isinstance(s[9], ast.BlockStmt)
    atomic = s[10]
    assert isinstance(atomic, ast.BlockStmt) and atomic.annotations[0].name == "atomic"
    assert isinstance(s[11], ast.Instantiation) and s[11].name == "local_ext"
    direct = s[12]
    assert isinstance(direct, ast.CallStmt) and show(direct.call.func) == "c2.apply"


def test_annotations_forms() -> None:
    prog = parse(
        '@name("x.y") @id(5) @hidden @pragma stage 1 2\n'
        "@structured[k = 1, s = \"v\"] @list[1, 2] @weird(a b $ (c d))\n"
        "action a() { }\n"
    )
    a = decl(prog, "a")
    annos = {an.name: an for an in a.annotations}  # type: ignore[attr-defined]
    assert annos["name"].args[0].value == "x.y" and annos["name"].raw == '"x.y"'  # type: ignore[attr-defined]
    assert annos["id"].args[0].value == 5  # type: ignore[attr-defined]
    assert annos["hidden"].args == [] and annos["hidden"].raw is None
    assert annos["stage"].raw == "1 2"
    assert annos["structured"].structured and set(annos["structured"].kv) == {"k", "s"}
    assert annos["list"].structured and len(annos["list"].args) == 2
    assert annos["weird"].args == [] and annos["weird"].raw == "a b $ (c d)"


def test_functions_and_instantiation_with_initializer() -> None:
    prog = parse(
        "extern Virt { Virt(); abstract bit<16> f(in bit<16> x); }\n"
        "bit<8> max(in bit<8> a, in bit<8> b) { return a > b ? a : b; }\n"
        "T ident<T>(in T v) { return v; }\n"
        "control c() {\n"
        "  Virt() v = { bit<16> f(in bit<16> x) { return x + 1; } };\n"
        "  apply { }\n"
        "}\n"
    )
    m = decl(prog, "max")
    assert isinstance(m, ast.FunctionDecl) and isinstance(m.body.stmts[0], ast.ReturnStmt)
    ident = decl(prog, "ident")
    assert isinstance(ident, ast.FunctionDecl) and ident.type_params == ["T"]
    v = decl(prog, "c").locals[0]  # type: ignore[attr-defined]
    assert isinstance(v, ast.Instantiation) and v.initializer is not None
    assert isinstance(v.initializer[0], ast.FunctionDecl) and v.initializer[0].name == "f"


def test_locations_point_at_tokens() -> None:
    prog = parse("header h_t {\n  bit<8> a;\n}\ncontrol c(inout h_t h) {\n  apply {\n    h.a = 1;\n  }\n}\n")
    h = decl(prog, "h_t")
    assert (h.loc.line, h.loc.col) == (1, 1)
    assert (h.fields[0].loc.line, h.fields[0].loc.col) == (2, 3)  # type: ignore[attr-defined]
    stmt = decl(prog, "c").body.stmts[0]  # type: ignore[attr-defined]
    assert (stmt.loc.file, stmt.loc.line, stmt.loc.col) == ("t.p4", 6, 5)


# --- syntax errors -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "col", "fragment"),
    [
        ("header h { bit<8> a }", 1, 21, "unexpected '}', expecting ';'"),
        ("control c() {\n  apply {\n    x = ;\n  }\n}", 3, 9, "unexpected ';'"),
        ("struct s { bit<8> a; }\nstruct", 2, 7, "unexpected end of file"),
        ("const bit<8> x = 1\nconst bit<8> y = 2;", 2, 1, "unexpected keyword 'const'"),
        ("action a() { b = 1 $ 2; }", 1, 20, "character '$'"),
        ("parser p() { state s { transition select(x) { 1 accept; } } }", 1, 49, "expecting ':'"),
        ("control c(inout foo_t x) { apply { } }", 1, 17, "no type named 'foo_t'"),
        ("control c() { table t { size = 3 } apply { } }", 1, 34, "unexpected '}', expecting ';'"),
    ],
)
def test_syntax_errors(text: str, line: int, col: int, fragment: str) -> None:
    with pytest.raises(CompileError) as ei:
        parse(text)
    err = ei.value
    assert err.loc is not None and (err.loc.line, err.loc.col) == (line, col), str(err)
    assert fragment in err.message
    assert str(err).startswith(f"t.p4:{line}:{col}: error: syntax error")


def test_fuzz_never_raises_anything_but_compile_error() -> None:
    source = (PROGRAMS / "parse_l3_full.p4").read_text()
    base = preprocess(PROGRAMS / "parse_l3_full.p4")
    rng = random.Random(1234)
    words = ["{", "}", "(", ")", "<", ">", ">>", ";", ",", "@", "@name(", "bit<", "state", "table",
             "apply", "select(", "&&&", "..", "_", "{#}", "8w", "0x", '"', "/*", "switch", ":"]
    for i in range(45):
        if i % 3 == 0:
            text = base[: rng.randrange(len(base))]
        else:
            pos = rng.randrange(len(base))
            text = base[:pos] + " " + rng.choice(words) + " " + base[pos:]
        try:
            parse_program(text, "fuzz.p4")
        except CompileError:
            pass
    for n in range(25):
        toks = " ".join(rng.choice(words + ["x", "1", "header", "control", "V1Switch"]) for _ in range(n))
        try:
            parse_program(toks, "fuzz.p4")
        except CompileError:
            pass
    deep = "const bit<8> x = " + "(" * 5000 + "1" + ")" * 5000 + ";"
    try:
        parse_program(deep, "deep.p4")
    except CompileError:
        pass
    assert source  # the input was real


# --- preprocessing and whole files ---------------------------------------------------------


def test_preprocess_defines_and_include_dirs(tmp_path: Path) -> None:
    inc = tmp_path / "inc"
    inc.mkdir()
    (inc / "mine.p4").write_text("const bit<8> FROM_INC = WIDTH;\n")
    main = tmp_path / "main.p4"
    main.write_text(
        "#include <mine.p4>\n"
        "#ifdef FLAG\n"
        "const bit<8> FLAGGED = 1;\n"
        "#endif\n"
        "#ifdef __TARGET_BMV2__\n"
        "const bit<8> BMV2 = 1;\n"
        "#endif\n"
    )
    prog = parse_file(main, include_dirs=[inc], defines=["WIDTH=7", "FLAG"])
    names = [d.name for d in prog.decls]  # type: ignore[attr-defined]
    assert names == ["FROM_INC", "FLAGGED", "BMV2"]
    assert prog.decls[0].value.value == 7  # type: ignore[attr-defined]
    assert prog.decls[0].loc.file.endswith("mine.p4")
    assert parse_file(main, include_dirs=[inc], defines={"WIDTH": "9"}).decls[0].value.value == 9  # type: ignore[attr-defined]


def test_preprocess_errors_are_compile_errors(tmp_path: Path) -> None:
    with pytest.raises(CompileError, match="no such file"):
        preprocess(tmp_path / "absent.p4")
    bad = tmp_path / "bad.p4"
    bad.write_text("\n#include <nowhere.p4>\n")
    with pytest.raises(CompileError, match="nowhere.p4") as ei:
        parse_file(bad)
    assert ei.value.loc is not None and ei.value.loc.line == 2
    err = tmp_path / "err.p4"
    err.write_text("#error stop here\n")
    with pytest.raises(CompileError, match="stop here"):
        parse_file(err)
    with pytest.raises(CompileError, match="invalid macro name"):
        preprocess(err, defines=["1BAD"])


def test_missing_cpp_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "a.p4"
    f.write_text("")
    monkeypatch.setenv("P4SIM_CPP", str(tmp_path / "no-such-cpp"))
    with pytest.raises(CompileError, match="install Debian's 'cpp'"):
        preprocess(f)


def test_error_location_after_include(tmp_path: Path) -> None:
    main = tmp_path / "prog.p4"
    main.write_text("#include <core.p4>\n#include <v1model.p4>\n\nheader h_t {\n    bit<8> a\n}\n")
    with pytest.raises(CompileError) as ei:
        parse_file(main)
    assert ei.value.loc is not None
    assert ei.value.loc.file == str(main)
    assert (ei.value.loc.line, ei.value.loc.col) == (6, 1)


def test_core_and_v1model_parse() -> None:
    prog = parse_file(P4INCLUDE_DIR / "v1model.p4")
    errors = [d for d in prog.decls if isinstance(d, ast.ErrorDecl)]
    assert errors[0].members == [
        "NoError", "PacketTooShort", "NoMatch", "StackOutOfBounds", "HeaderTooShort",
        "ParserTimeout", "ParserInvalidArgument",
    ]
    kinds = [m for d in prog.decls if isinstance(d, ast.MatchKindDecl) for m in d.members]
    assert kinds == ["exact", "ternary", "lpm", "range", "optional", "selector"]
    sm = decl(prog, "standard_metadata_t")
    assert isinstance(sm, ast.StructDecl)
    widths = {f.name: (f.type.width.value if isinstance(f.type, ast.BitTypeRef) else type(f.type).__name__) for f in sm.fields}  # type: ignore[attr-defined]
    assert list(widths) == [
        "ingress_port", "egress_spec", "egress_port", "instance_type", "packet_length",
        "enq_timestamp", "enq_qdepth", "deq_timedelta", "deq_qdepth", "ingress_global_timestamp",
        "egress_global_timestamp", "mcast_grp", "egress_rid", "checksum_error", "parser_error",
        "priority",
    ]
    assert widths["ingress_port"] == 9 and widths["enq_qdepth"] == 19 and widths["priority"] == 3
    assert widths["ingress_global_timestamp"] == 48 and widths["parser_error"] == "ErrorTypeRef"
    alias = {f.name: f.annotations[0].args[0].value for f in sm.fields if f.annotations}  # type: ignore[attr-defined]
    assert alias["enq_timestamp"] == "queueing_metadata.enq_timestamp"
    assert alias["priority"] == "intrinsic_metadata.priority"
    ha = decl(prog, "HashAlgorithm")
    assert [m.name for m in ha.members] == [  # type: ignore[attr-defined]
        "crc32", "crc32_custom", "crc16", "crc16_custom", "random", "identity", "csum16", "xor16",
    ]
    drops = [d for d in prog.decls if getattr(d, "name", "") == "mark_to_drop"]
    assert [len(d.params) for d in drops] == [0, 1]  # type: ignore[attr-defined]
    reg = decl(prog, "register")
    assert isinstance(reg, ast.ExternDecl) and reg.type_params == ["T"]
    v1 = decl(prog, "V1Switch")
    assert isinstance(v1, ast.PackageTypeDecl) and [p.name for p in v1.params] == ["p", "vr", "ig", "eg", "ck", "dep"]
    new = parse_file(P4INCLUDE_DIR / "v1model.p4", defines=["V1MODEL_VERSION=20200408"])
    assert decl(new, "register").type_params == ["T", "I"]  # type: ignore[attr-defined]
    assert decl(new, "counter").type_params == ["I"]  # type: ignore[attr-defined]
    assert isinstance(decl(new, "PortId_t"), ast.TypedefDecl)
    assert decl(new, "__v1model_version").value.value == 20200408  # type: ignore[attr-defined]


def test_full_v1model_program() -> None:
    prog = parse_file(PROGRAMS / "parse_l3_full.p4")
    main = prog.decls[-1]
    assert isinstance(main, ast.Instantiation) and main.name == "main"
    assert isinstance(main.type, ast.NamedTypeRef) and main.type.name == "V1Switch"
    assert [a.value.func.name for a in main.args] == [  # type: ignore[attr-defined]
        "MyParser", "MyVerifyChecksum", "MyIngress", "MyEgress", "MyComputeChecksum", "MyDeparser",
    ]
    parser = decl(prog, "MyParser")
    assert isinstance(parser, ast.ParserDecl)
    assert [s.name for s in parser.states] == ["start", "parse_packet_out", "parse_ethernet", "parse_vlan", "parse_ipv4"]
    ing = decl(prog, "MyIngress")
    assert isinstance(ing, ast.ControlDecl)
    kinds = [type(d).__name__ for d in ing.locals]
    assert kinds == ["Instantiation"] * 3 + ["VarDecl"] + ["ActionDecl"] * 4 + ["TableDecl"] * 2
    reg = ing.locals[2]
    assert isinstance(reg, ast.Instantiation) and reg.type.type_args[0].width.value == 32  # type: ignore[attr-defined]
    acl = ing.locals[9]
    assert isinstance(acl, ast.TableDecl) and [e.priority.value if e.priority else None for e in acl.entries] == [10, 20, None]  # type: ignore[union-attr]
    pin = decl(prog, "packet_in_t")
    assert pin.annotations[0].name == "controller_header" and pin.annotations[0].args[0].value == "packet_in"  # type: ignore[attr-defined]
    last = ing.body.stmts[-1]
    assert isinstance(last, ast.AssignStmt) and show(last.rhs) == "((tmp >> 2) & 0xff)"
    concat = ing.body.stmts[-2]
    assert show(concat.rhs) == "(meta.seen[7:0] ++ meta.flow_hash[23:0])"  # type: ignore[attr-defined]
    # CPU_PORT came through the preprocessor.
    start = parser.states[0].transition
    assert isinstance(start, ast.SelectExpr) and start.cases[0].keyset.value == 255  # type: ignore[attr-defined]
    assert prog.decls[0].loc.file.endswith("core.p4")
    assert parser.loc.file.endswith("parse_l3_full.p4")
