"""The language p4c-bm2-ss accepts and the P4Info it writes: small programs of our own, each for
one construct p4sim once refused or wrote differently (found by tests/p4sim/corpus_check.py).
Expected P4Info values are p4c-bm2-ss's for the same program."""

from __future__ import annotations

from pathlib import Path

import pytest
from p4.config.v1 import p4info_pb2

from p4sim.compiler.driver import compile_file
from p4sim.compiler.errors import CompileError
from tests.p4sim import bmv2run
from tests.p4sim.harness import V1_PRELUDE, Sim, v1_program

HDR = "header h_t { bit<16> k; bit<32> x; }\nstruct headers_t { h_t h; }\nstruct meta_t { bit<16> sel; }\n"


def _compile(tmp_path: Path, source: str) -> p4info_pb2.P4Info:
    src = tmp_path / "prog.p4"
    src.write_text(V1_PRELUDE + source)
    return compile_file(src).p4info


def _p4info(tmp_path: Path, ingress: str, ingress_locals: str, decls: str = HDR, **kw: str) -> p4info_pb2.P4Info:
    return _compile(tmp_path, v1_program(decls, ingress, ingress_locals=ingress_locals, **kw))


def _table(info: p4info_pb2.P4Info, name: str) -> p4info_pb2.Table:
    return next(t for t in info.tables if t.preamble.name == name)


def _action(info: p4info_pb2.P4Info, name: str) -> p4info_pb2.Action:
    return next(a for a in info.actions if a.preamble.name == name)


# -- lexical -------------------------------------------------------------------------------------


def test_string_literal_spanning_lines_and_annotation_tokens(tmp_path: Path) -> None:
    # a string may hold newlines (long annotation bodies are written so); P4Info prints an
    # unstructured annotation's body as its tokens, one space apart, strings as written
    info = _p4info(tmp_path, "t.apply();", '''
        action set(bit<32> v) { hdr.h.x = v; }
        @entry_restriction("
          hdr.h.k != 0;
        ")
        @note("a\\tb", 3, x+1) @empty()
        table t { key = { hdr.h.k: exact; } actions = { set; } }
    ''')
    assert list(_table(info, "I.t").preamble.annotations) == [
        '@entry_restriction("\n          hdr.h.k != 0;\n        ")',
        '@note("a\\tb" , 3 , x + 1)',
        "@empty",
    ]


def test_line_numbers_after_a_string_spanning_lines(tmp_path: Path) -> None:
    with pytest.raises(CompileError, match=r"prog\.p4:10:18: error: nowhere"):
        _compile(tmp_path, '@a("one\ntwo\nthree")\nconst bit<8> X = 1;\n\n\n\nconst bit<8> Y = nowhere;\n')


# -- P4Info names ----------------------------------------------------------------------------------


def test_key_names_as_p4c_prints_them(tmp_path: Path) -> None:
    decls = """
    header h_t { bit<16> k; bit<32> x; bit<8> b; }
    struct inner_t { bit<8> q; @name("renamed") bit<8> r; @name(".alone") bit<8> s; }
    struct headers_t { h_t h; h_t[2] st; }
    struct meta_t { inner_t in1; }
    """
    info = _p4info(tmp_path, "t.apply();", """
        action set(bit<32> v) { hdr.h.x = v; }
        table t {
            key = {
                hdr.h.x & 0xFF00: ternary; hdr.h.b & 8w0x0f: ternary; hdr.h.b & 3: ternary;
                hdr.h.x[15:8]: exact; hdr.st[1].b: exact; hdr.st[0].isValid(): exact;
                m.in1.q: exact; m.in1.r: exact; m.in1.s: exact;
            }
            actions = { set; }
        }
    """, decls=decls)
    assert [f.name for f in _table(info, "I.t").match_fields] == [
        "hdr.h.x & 0xff00", "hdr.h.b & 0xf", "hdr.h.b & 3",
        "hdr.h.x[15:8]", "hdr.st[1].b", "hdr.st[0].$valid$",
        "m.in1.q", "m.in1.renamed", "alone",
    ]


@pytest.mark.parametrize("key", ["(bit<8>)hdr.h.k", "hdr.h.k + 1", "hdr.h.k == 2"])
def test_complex_key_expression_needs_a_name(tmp_path: Path, key: str) -> None:
    locals_ = f"table t {{ key = {{ {key}: exact; }} actions = {{ NoAction; }} }}"
    with pytest.raises(CompileError, match="complex key expression requires a @name annotation"):
        _p4info(tmp_path, "t.apply();", locals_)
    info = _p4info(tmp_path, "t.apply();", locals_.replace(": exact;", ': exact @name("named");'))
    assert _table(info, "I.t").match_fields[0].name == "named"


def test_name_on_a_control_type_and_on_action_parameters(tmp_path: Path) -> None:
    # main's anonymous instances are named after the type, whatever its @name; a parameter's
    # @name is its P4Info name
    src = v1_program(HDR, "t.apply();", ingress_locals="""
        action set(@name("value") bit<32> v) { hdr.h.x = v; }
        table t { key = { hdr.h.k: exact; } actions = { set; } }
    """).replace("control I(", '@name("Renamed") control I(')
    info = _compile(tmp_path, src)
    assert [t.preamble.name for t in info.tables] == ["I.t"]
    assert [p.name for p in _action(info, "I.set").params] == ["value"]


def test_pkginfo_and_platform_properties(tmp_path: Path) -> None:
    src = v1_program(HDR, "").replace(
        "V1Switch(", '@pkginfo(name="prog", version="1.2", organization="org", contact="c", url="u") '
        "@platform_property(multicast_group_table_size = 10, multicast_group_table_max_replicas_per_entry = 30) "
        "@other(1) V1Switch(")
    pkg = _compile(tmp_path, src).pkg_info
    assert (pkg.name, pkg.version, pkg.organization, pkg.contact, pkg.url, pkg.arch) == (
        "prog", "1.2", "org", "c", "u", "v1model")
    assert pkg.platform_properties.multicast_group_table_size == 10
    assert pkg.platform_properties.multicast_group_table_max_replicas_per_entry == 30
    assert list(pkg.annotations) == ["@other(1)"]


def test_bound_action_needs_all_its_directional_arguments(tmp_path: Path) -> None:
    with pytest.raises(CompileError, match=r"its 1 directional parameter\(s\) must be given here, 0 argument\(s\) are"):
        _p4info(tmp_path, "t.apply();", """
            action add(in bit<32> v, bit<32> extra) { hdr.h.x = v + extra; }
            table t { key = { hdr.h.k: exact; } actions = { add; } }
        """)


def test_error_and_serializable_enum_keys(tmp_path: Path) -> None:
    # an error key has no width; the error type (every member, in declaration order) and the
    # serializable enum a key names are listed in type_info
    decls = HDR + "enum bit<8> Color { RED = 1, BLUE = 5 }\n"
    info = _p4info(tmp_path, "t.apply();", """
        Color c = Color.RED;
        action a() { }
        table t { key = { sm.parser_error: exact; c: exact; } actions = { a; } }
    """, decls=decls)
    assert [(f.name, f.bitwidth) for f in _table(info, "I.t").match_fields] == [("sm.parser_error", 0), ("c", 8)]
    assert list(info.type_info.error.members) == [
        "NoError", "PacketTooShort", "NoMatch", "StackOutOfBounds", "HeaderTooShort", "ParserTimeout",
        "ParserInvalidArgument"]
    color = info.type_info.serializable_enums["Color"]
    assert color.underlying_type.bitwidth == 8
    assert [(m.name, m.value) for m in color.members] == [("RED", b"\x01"), ("BLUE", b"\x05")]


def test_serializable_enum_parameter_listed_in_type_info(tmp_path: Path) -> None:
    decls = HDR + "enum bit<8> Color { RED = 1, BLUE = 5 }\n"
    info = _p4info(tmp_path, "t.apply();", """
        action paint(Color c) { hdr.h.x = (bit<32>)(bit<8>)c; }
        table t { key = { hdr.h.k: exact; } actions = { paint; } }
    """, decls=decls)
    assert _action(info, "I.paint").params[0].bitwidth == 8
    assert list(info.type_info.serializable_enums) == ["Color"]


@pytest.mark.parametrize(("stmt", "message"), [
    # p4c-bm2-ss 1.2.5 takes a run-time value of the enum in these places, not a member of it
    ("hdr.h.k = (bit<16>)(~Kind.B);", r"'~' of the enum member Kind\.B: p4c-bm2-ss cannot fold it"),
    ("hdr.h.k = (bit<16>)(Kind.B << 1);", r"'<<' of the enum member Kind\.B"),
    ("hdr.h.k = (bit<16>)Kind.B[3:0];", r"a slice of the enum member Kind\.B"),
    # a cast goes to the underlying type only; ?: does not mix an enum with a bit<8>
    ("hdr.h.k = (bit<16>)Kind.B;", r"cannot cast Kind to bit<16>: only to its underlying type bit<8>"),
    ("hdr.h.k = (bit<16>)(hdr.h.k == 1 ? Kind.A : 8w3);", r"the branches of '\?:' have different types: Kind and bit<8>"),
    ("hdr.h.k = Kind.B;", "cannot use a value of type Kind where bit<16> is expected"),
])
def test_serializable_enum_as_a_number_where_p4c_refuses(tmp_path: Path, stmt: str, message: str) -> None:
    with pytest.raises(CompileError, match=message):
        _p4info(tmp_path, stmt, "", decls=HDR + "enum bit<8> Kind { A = 1, B = 7 }\n")


def test_serializable_enum_field_of_a_controller_header(tmp_path: Path) -> None:
    # p4c lists the enum in type_info but writes no type_name on the metadata: its bit<8>
    decls = HDR + """enum bit<8> Why { MISS = 1, TTL = 2 }
    @controller_header("packet_in") header to_cpu_t { Why why; bit<8> port; }
    """
    info = _p4info(tmp_path, "sm.egress_spec = 1;", "", decls=decls)
    (meta,) = info.controller_packet_metadata
    assert [(m.name, m.bitwidth, m.HasField("type_name")) for m in meta.metadata] == [("why", 8, False), ("port", 8, False)]
    why = info.type_info.serializable_enums["Why"]
    assert [(m.name, m.value) for m in why.members] == [("MISS", b"\x01"), ("TTL", b"\x02")]


def test_header_of_odd_width_only_declared(tmp_path: Path) -> None:
    # p4c-bm2-ss checks the widths of the headers the program makes instances of: a controller
    # header of 18 bits it never uses is listed in P4Info all the same
    decls = HDR + '@controller_header("packet_in") header to_cpu_t { bit<9> port; bit<9> target; }\n'
    info = _p4info(tmp_path, "sm.egress_spec = 1;", "", decls=decls)
    (meta,) = info.controller_packet_metadata
    assert [(m.name, m.bitwidth) for m in meta.metadata] == [("port", 9), ("target", 9)]
    odd = "header odd_t { bit<9> a; bit<9> b; }\n"
    # a control's local that nothing names is no instance either
    _p4info(tmp_path, "sm.egress_spec = 1;", "odd_t spare;", decls=odd + HDR)
    for decls, body in (
        (odd + HDR.replace("h_t h;", "h_t h; odd_t o;"), "sm.egress_spec = 1;"),  # in the headers, unused
        (odd + HDR, "odd_t x; x.setValid(); x.a = 1; hdr.h.k = (bit<16>)x.a;"),  # a local in use
    ):
        with pytest.raises(CompileError, match="header odd_t is 18 bits wide: BMv2 needs a multiple of 8"):
            _p4info(tmp_path, body, "", decls=decls)


def test_hidden_tables_and_actions_stay_out_of_p4info() -> None:
    # nothing else in the program asks for type_info: p4c writes none
    info = compile_file(PROGRAMS / "compat_hidden_table.p4").p4info
    assert (list(info.tables), list(info.actions), info.HasField("type_info")) == ([], [], False)


@pytest.mark.parametrize(("call", "present"), [
    ("mark_to_drop(sm);", True), ("hash(hdr.h.x, HashAlgorithm.crc16, 16w0, { hdr.h.k }, 32w100);", True),
    ("hdr.h.x = 1;", False), ("if (hdr.h.isValid()) { hdr.h.x = 1; }", False),
])
def test_type_info_present_where_an_extern_function_is_called(tmp_path: Path, call: str, present: bool) -> None:
    # no table, parameter or extern instance: p4c still writes an empty type_info once the
    # program calls an extern function
    info = _p4info(tmp_path, call, "")
    assert info.HasField("type_info") is present
    assert info.type_info.ByteSize() == 0


def test_serializable_enum_key_entries_take_enum_values(tmp_path: Path) -> None:
    decls = "enum bit<16> Kind { A = 10, B = 0xab00 }\nheader h_t { Kind k; bit<32> x; }\nstruct headers_t { h_t h; }\nstruct meta_t { }\n"
    table = "action a(bit<32> v) { hdr.h.x = v; } table t { key = { hdr.h.k: ternary; } actions = { a; } const entries = { %s: a(1); } }"
    info = _p4info(tmp_path, "t.apply();", table % "Kind.B &&& 0xff00", decls=decls)
    assert _table(info, "I.t").is_const_table
    # p4c: "Cannot cast implicitly type 'bit<16>' to type 'Kind'"
    for bad, t in (("((bit<16>)Kind.B) &&& 0xff00", "bit<16>"), ("10", "int")):
        with pytest.raises(CompileError, match=f"cannot use a value of type {t} where Kind is expected"):
            _p4info(tmp_path, "t.apply();", table % bad, decls=decls)


def test_digest_with_enum_and_error_fields(tmp_path: Path) -> None:
    # BMv2 carries enum and error values in 32-bit fields; P4Info names their types
    decls = HDR + "enum Mode { ON, OFF }\nstruct report_t { bit<16> k; error e; Mode m; }\n"
    src = tmp_path / "prog.p4"
    src.write_text(V1_PRELUDE + v1_program(decls, """
        report_t r = { hdr.h.k, error.PacketTooShort, Mode.OFF };
        digest(1, r);
        sm.egress_spec = 1;
    """))
    compiled = compile_file(src)
    members = compiled.p4info.type_info.structs["report_t"].members
    assert [m.type_spec.WhichOneof("type_spec") for m in members] == ["bitstring", "error", "enum"]
    assert Sim(compiled).send(0, bytes(6) + TAIL) == [(1, bytes(6) + TAIL)]


def test_no_type_info_for_verify_and_no_index_type_name(tmp_path: Path) -> None:
    # core.p4's verify is no v1model function: no type_info for it
    info = _compile(tmp_path, v1_program(HDR, "", parser="state start { pkt.extract(hdr.h); verify(hdr.h.k != 0, error.NoMatch); transition accept; }"))
    assert not info.HasField("type_info")
    # a counter indexed by a `type` (V1MODEL_VERSION 20200408): p4c writes no index_type_name
    src = tmp_path / "v2020.p4"
    src.write_text("#define V1MODEL_VERSION 20200408\n" + V1_PRELUDE + v1_program(
        HDR + "type bit<8> idx_t;\n", "c.count((idx_t)hdr.h.x[7:0]);",
        ingress_locals="counter<idx_t>(256, CounterType.packets) c;"))
    c = compile_file(src).p4info.counters[0]
    assert not c.HasField("index_type_name") and c.size == 256


def test_digest_of_a_tuple(tmp_path: Path) -> None:
    src = tmp_path / "prog.p4"
    src.write_text(V1_PRELUDE + v1_program(HDR, """
        digest<tuple<bit<16>, bit<32>>>(1, { hdr.h.k, hdr.h.x });
        sm.egress_spec = 1;
    """))
    compiled = compile_file(src)
    d = compiled.p4info.digests[0]
    assert d.preamble.name == "digest_0"
    assert [m.bitstring.bit.bitwidth for m in d.type_spec.tuple.members] == [16, 32]
    assert Sim(compiled).send(0, bytes(6) + TAIL) == [(1, bytes(6) + TAIL)]


def test_extern_methods_refused_in_a_parser(tmp_path: Path) -> None:
    with pytest.raises(CompileError, match=r"r.write\(...\): register methods are not supported in a parser"):
        _compile(tmp_path, v1_program(HDR, "", parser_locals="register<bit<16>>(4) r;",
                                      parser="state start { pkt.extract(hdr.h); r.write(0, hdr.h.k); transition accept; }"))


def test_translation_with_an_integer_width(tmp_path: Path) -> None:
    decls = HDR + '@p4runtime_translation("example.org/port", 32) type bit<9> port_t;\n'
    info = _p4info(tmp_path, "t.apply();", """
        action fwd(port_t p) { sm.egress_spec = (bit<9>)p; }
        table t { key = { hdr.h.k: exact; } actions = { fwd; } }
    """, decls=decls)
    p = _action(info, "I.fwd").params[0]
    assert (p.bitwidth, p.type_name.name) == (32, "port_t")
    tt = info.type_info.new_types["port_t"].translated_type
    assert (tt.uri, tt.sdn_bitwidth) == ("example.org/port", 32)


def test_direct_application_names_and_refusals(tmp_path: Path) -> None:
    info = compile_file(PROGRAMS / "compat_direct_apply.p4").p4info
    assert [t.preamble.name for t in info.tables] == ["I.Sub.t", "E.Sub.t"]
    sub = "control Sub(inout h_t h) { table t { key = { h.k: exact; } actions = { NoAction; } } apply { t.apply(); } }\n"
    with pytest.raises(CompileError, match="Sub is applied directly twice in I"):
        _p4info(tmp_path, "Sub.apply(hdr.h); Sub.apply(hdr.h);", "", decls=HDR + sub)
    # without control-plane objects, applying it twice is fine
    _p4info(tmp_path, "Sub.apply(hdr.h); Sub.apply(hdr.h);", "",
            decls=HDR + "control Sub(inout h_t h) { apply { h.x = h.x + 1; } }\n")


def test_struct_valued_constants(tmp_path: Path) -> None:
    decls = HDR + """
    struct pair_t { bit<8> a; bit<16> b; }
    struct outer_t { pair_t p; bit<8> c; }
    const pair_t PAIR = { a = 3, b = 0x100 };
    const outer_t OUTER = { p = { 1, 2 }, c = 4 };
    """
    src = tmp_path / "prog.p4"
    src.write_text(V1_PRELUDE + v1_program(decls, """
        pair_t copy = PAIR;
        copy.a = copy.a + LOCAL.a;
        hdr.h.x = (bit<32>)copy.a + (bit<32>)PAIR.b + (bit<32>)OUTER.p.b + (bit<32>)OUTER.c + (bit<32>)PAIR.a;
        sm.egress_spec = 1;
    """, ingress_locals="const pair_t LOCAL = { 10, 20 };"))
    sim = Sim(compile_file(src))
    # copy.a = 3 + 10 (PAIR itself unchanged: + 3 below), + 0x100 + 2 + 4 + 3
    assert sim.send(0, bytes(6) + TAIL) == [(1, bytes([0, 0, 0, 0, 0x01, 13 + 2 + 4 + 3]) + TAIL)]


def test_struct_constant_must_be_constant(tmp_path: Path) -> None:
    decls = HDR + "struct pair_t { bit<8> a; bit<16> b; }\n"
    with pytest.raises(CompileError, match="P: initializer is not a compile-time constant"):
        _p4info(tmp_path, "", "const pair_t P = { a = 1, b = hdr.h.k };", decls=decls)


def test_generic_structs_and_headers(tmp_path: Path) -> None:
    # each specialization is a type of its own, named as p4c names it (gen_t<bit<16>>: gen_t_bit16)
    decls = HDR + """
    struct gen_t<T> { T a; bit<8> b; }
    header gh_t<T> { T v; bit<8> w; }
    """
    src = tmp_path / "prog.p4"
    src.write_text(V1_PRELUDE + v1_program(decls, """
        gen_t<bit<16>> g = { hdr.h.k, 8w1 };
        gen_t<bit<32>> g2 = { hdr.h.x, 8w2 };
        gh_t<bit<8>> hx = { 7, 8 };
        digest(1, g);
        hdr.h.x = g2.a + (bit<32>)g.a + (bit<32>)hx.v + (bit<32>)g2.b;
        sm.egress_spec = 1;
    """))
    compiled = compile_file(src)
    assert [d.preamble.name for d in compiled.p4info.digests] == ["gen_t_bit16"]
    assert list(compiled.p4info.type_info.structs) == ["gen_t_bit16"]
    # x = x + k + 7 + 2
    assert Sim(compiled).send(0, bytes([0, 3, 0, 0, 0, 1]) + TAIL) == [(1, bytes([0, 3, 0, 0, 0, 13]) + TAIL)]


def test_digest_of_a_header_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CompileError, match="digest data must be a struct, not the h_t header"):
        _p4info(tmp_path, "digest(1, hdr.h);", "")


# -- what p4c refuses --------------------------------------------------------------------------------


def test_bool_control_plane_parameter_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CompileError, match="f: action parameters must be bit<> or int<> on this target"):
        _p4info(tmp_path, "t.apply();", """
            action a(bool f) { if (f) { hdr.h.x = 1; } }
            table t { key = { hdr.h.k: exact; } actions = { a; } }
        """)


def test_anonymous_in_place_profile_refused_only_for_a_p4info(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from p4sim.cli import compile_main

    src = tmp_path / "prog.p4"
    src.write_text(V1_PRELUDE + v1_program(HDR, "t.apply();", ingress_locals="""
        action a() { }
        table t { key = { hdr.h.k: exact; } actions = { a; } implementation = action_profile(32w8); }
    """))
    assert compile_main([str(src), "-o", str(tmp_path / "out.json")]) == 0
    assert compile_main([str(src), "-o", str(tmp_path / "out.json"), "--p4runtime-files", str(tmp_path / "p.txtpb")]) == 1
    assert ("Table 'I.t' has an anonymous table property 'implementation' with no name annotation, which is not "
            "supported by P4Runtime") in capsys.readouterr().err
    assert not (tmp_path / "p.txtpb").exists()


def test_value_set_of_a_nested_struct_refused_for_a_p4info(tmp_path: Path) -> None:
    from p4sim.compiler.p4info import p4runtime_refusals

    decls = HDR + "struct inner_t { bit<16> f; }\nstruct vs_t { bit<16> k; inner_t inner; }\n"
    src = tmp_path / "prog.p4"
    src.write_text(V1_PRELUDE + v1_program(decls, "", parser_locals="value_set<vs_t>(4) pvs;", parser="""
        state start { pkt.extract(hdr.h); transition select(hdr.h.k, hdr.h.k) { pvs: accept; default: accept; } }"""))
    assert p4runtime_refusals(compile_file(src).model) == [
        "Unsupported type argument for Value Set; this version of P4Runtime requires that when the type parameter "
        "of a Value Set is a struct, all the fields of the struct must be of type bit<W>, but inner is not"]


def test_extern_specialized_with_too_many_type_arguments(tmp_path: Path) -> None:
    # register<T, I> is V1MODEL_VERSION 20200408's; the default (20180101) has register<T>
    with pytest.raises(CompileError, match=r"Type register has 1 type parameter\(s\), but it is specialized with 2"):
        _p4info(tmp_path, "r.write(32w1, hdr.h.x);", "register<bit<32>, bit<32>>(256) r;")
    src = tmp_path / "v2020.p4"
    src.write_text("#define V1MODEL_VERSION 20200408\n" + V1_PRELUDE + v1_program(
        HDR, "r.write(8w1, hdr.h.x);", ingress_locals="register<bit<32>, bit<8>>(256) r;"))
    assert [r.preamble.name for r in compile_file(src).p4info.registers] == ["I.r"]


def test_two_actions_under_one_control_plane_name(tmp_path: Path) -> None:
    two = """
        @name(".NoAction") action n1() { }
        @name(".NoAction") action n2() { }
        table t1 { key = { hdr.h.k: exact; } actions = { n1; } default_action = n1(); }
        table t2 { key = { hdr.h.k: exact; } actions = { n2; } default_action = n2(); }
    """
    with pytest.raises(CompileError, match="NoAction: conflicting control plane name"):
        _p4info(tmp_path, "t1.apply(); t2.apply();", two)
    # one of them, with core.p4's NoAction unused: the program's action is P4Info's NoAction
    info = _p4info(tmp_path, "t1.apply();", two)
    assert [a.preamble.name for a in info.actions] == ["NoAction"]


def test_mark_to_drop_without_arguments_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CompileError, match=r"Expected 1 argument for mark_to_drop\(\)"):
        _p4info(tmp_path, "mark_to_drop();", "")


def test_struct_in_header_key_names_and_varbit(tmp_path: Path) -> None:
    info = compile_file(PROGRAMS / "compat_struct_in_header.p4").p4info
    assert [(f.name, f.bitwidth) for f in info.tables[0].match_fields] == [("hdr.h.addr.hi", 8), ("hdr.h.addr.lo.a", 4)]
    # a varbit field beside a struct field compiles, as p4c-bm2-ss compiles it (its packets:
    # lang_cases.py, compat_varbit_struct_header.p4)
    compiled = compile_file(PROGRAMS / "compat_varbit_struct_header.p4")
    assert "_leaf_paths = (('s', 'a'), ('s', 'b'), ('s', 'c'), ('len',), ('opt',))" in compiled.model.source


def test_new_type_on_a_new_type_names_the_bit_string(tmp_path: Path) -> None:
    # type Inner_t Outer_t: P4Info's original type of Outer_t is Inner_t's bit<8>
    decls = HDR + "type bit<8> Inner_t;\ntype Inner_t Outer_t;\n"
    info = _p4info(tmp_path, "t.apply();", """
        action a(Outer_t o) { hdr.h.x = (bit<32>)(bit<8>)(Inner_t)o; }
        table t { key = { hdr.h.k: exact; } actions = { a; } }
    """, decls=decls)
    assert info.type_info.new_types["Outer_t"].original_type.bitstring.bit.bitwidth == 8


def test_hash_data_must_be_a_list_or_struct(tmp_path: Path) -> None:
    with pytest.raises(CompileError, match=r"the data of hash\(\) must be a list or a struct"):
        _p4info(tmp_path, "hash(hdr.h.k, HashAlgorithm.identity, 16w0, hdr.h.x, 32w0);", "")
    _p4info(tmp_path, "hash(hdr.h.k, HashAlgorithm.identity, 16w0, { hdr.h.x }, 32w0);", "")


@pytest.mark.parametrize(("apply", "ok"), [
    ("if (t.apply().hit) { hdr.h.x = 1; } else if (t.apply().miss) { hdr.h.x = 2; }", False),
    ("t.apply(); u.apply(); t.apply();", False),
    ("switch (t.apply().action_run) { a: { t.apply(); } default: { } }", False),
    ("if (hdr.h.k == 1) { t.apply(); } else { t.apply(); } u.apply();", True),
    ("switch (u.apply().action_run) { a: { t.apply(); } default: { t.apply(); } }", True),
])
def test_a_table_applied_twice_on_one_path_is_refused(tmp_path: Path, apply: str, ok: bool) -> None:
    locals_ = """
        action a() { }
        table t { key = { hdr.h.k: exact; } actions = { a; } }
        table u { key = { hdr.h.k: exact; } actions = { a; } }
    """
    if ok:
        _p4info(tmp_path, apply, locals_)
    else:
        with pytest.raises(CompileError, match="contains a path from table I.t back to itself"):
            _p4info(tmp_path, apply, locals_)


def test_package_argument_with_another_direction_is_refused(tmp_path: Path) -> None:
    src = v1_program(HDR, "").replace("control VC(inout headers_t hdr", "control VC(in headers_t hdr")
    with pytest.raises(CompileError, match="parameter hdr is 'in' where VerifyChecksum has 'inout'"):
        _compile(tmp_path, src)


def test_package_arguments_disagreeing_on_the_headers_type_are_refused(tmp_path: Path) -> None:
    src = v1_program(HDR + "struct other_t { h_t h; }\n", "").replace(
        "control CC(inout headers_t hdr", "control CC(inout other_t hdr")
    with pytest.raises(CompileError, match="has type other_t, but P gives V1Switch's H the type headers_t"):
        _compile(tmp_path, src)


def test_parameter_does_not_hide_a_type(tmp_path: Path) -> None:
    # variables, constants and instances hide a type of the same name (compat_shadowed_type.p4),
    # parameters do not: p4c-bm2-ss refuses this with the same syntax error
    with pytest.raises(CompileError, match=r"syntax error, unexpected ';'"):
        _p4info(tmp_path, "t.apply();", """
            action a(bit<32> headers_t) { hdr.h.x = headers_t; }
            table t { key = { hdr.h.k: exact; } actions = { a; } }
        """)


# -- compound assignment and loops (P4_16 1.2.5) -----------------------------------------------------

PROGRAMS = Path(__file__).parent / "programs"

FILL = bytes(range(0x30, 0x3C))

#: program -> [(frame in, frame expected on port 1)], the expectations worked out from the spec
COMPAT_FRAMES: dict[str, list[tuple[bytes, bytes]]] = {
    "compat_loops.p4": [(
        # n=10 idx=5 acc=0 w=0x01020304 sat=100 | e = ff 01 02 03
        bytes([10, 5, 0, 0, 1, 2, 3, 4, 100, 0xFF, 0x01, 0x02, 0x03]),
        # n=10%4 idx=6/2 acc=(1+3+5)+6*0x100 w=((((w<<4)>>1)^0xff)-1)*3 sat=255 | e0&=0x0f e1|=0x80 e3+=6
        bytes([2, 3, 0x06, 0x09]) + (0x18304A9A).to_bytes(4, "big") + bytes([255, 0x0F, 0x81, 0x02, 0x09]),
    ), (
        bytes([3, 0, 0, 0, 0, 0, 0, 1, 250, 0, 0, 0, 0]),
        # odd numbers up to 3: 4; e[0] |= 0x80 then &= 0x0f
        bytes([3, 0, 0x06, 0x04]) + (((((1 << 4) >> 1) ^ 0xFF) - 1) * 3).to_bytes(4, "big") + bytes([255, 0, 0, 0, 6]),
    )],
    "compat_bound_actions.p4": [
        # k=1: add(x + 1, 0x100); k=2: bump(e, 0x10); k=9 misses: the default bump(e, 7)
        (bytes([0, 1, 0, 0, 0, 0x10, 3]), bytes([0, 1, 0, 0, 0x01, 0x11, 3])),
        (bytes([0, 2, 0, 0, 0, 0x10, 3]), bytes([0, 2, 0, 0, 0, 0x10, 0x13])),
        (bytes([0, 9, 0, 0, 0, 0x10, 3]), bytes([0, 9, 0, 0, 0, 0x10, 10])),
    ],
    "compat_struct_in_header.p4": [
        # hit (hi 0x11, a 2): a and b swapped, tag 0xAA; x += hi; the copy: hi + 1, tag 2 (not equal)
        (bytes([0x01, 0x11, 0x27, 0x00, 0x05]), bytes([0xAA, 0x11, 0x72, 0x00, 0x16, 0x02, 0x12, 0x72, 0, 0])),
        (bytes([0x01, 0x10, 0x34, 0x01, 0x00]), bytes([0x01, 0x10, 0x34, 0x01, 0x10, 0x02, 0x11, 0x34, 0, 0])),
    ],
    "compat_enum_numbers.p4": [
        # op=1: the entry's put(Op.XOR), a + 2; op=2: default put(Op.DEC), a ^ 3; op=9: a |+| 3 << 6
        # saturates; op=0: no branch, n = Op.ADD. wide = Op.ADD ++ op every time
        (bytes([1, 0x10, 0, 0, 0, 0]), bytes([1, 0x12, 2, 3, 1, 1])),
        (bytes([2, 0x0F, 0, 0, 0, 0]), bytes([2, 0x0C, 3, 3, 1, 2])),
        (bytes([9, 0x50, 0, 0, 0, 0]), bytes([9, 0xFF, 3, 3, 1, 9])),
        (bytes([0, 0x07, 0, 0, 0, 0]), bytes([0, 0x07, 3, 1, 1, 0])),
    ],
    "compat_error_order.p4": [
        # Rejected is declared before core.p4: ingress must still tell NoError (kind 0), the
        # program's own error (kind 1, verify) and PacketTooShort (kind 2, a 100-byte extract);
        # FILL makes each frame longer than an Ethernet header (a veth takes nothing shorter)
        (bytes([0, 0]) + FILL, bytes([0, 0xA0]) + FILL),
        (bytes([1, 0]) + FILL, bytes([1, 0xB0]) + FILL),
        (bytes([2, 0]) + FILL, bytes([2, 0xC0]) + FILL),
    ],
    "compat_hidden_table.p4": [
        # by_k's const entries (k 1, 2, 9: keep hits); k 3 misses both and takes fallback's default
        (bytes([1, 5]) + FILL, bytes([1, 0x11]) + FILL),
        (bytes([2, 5]) + FILL, bytes([2, 0x22]) + FILL),
        (bytes([9, 5]) + FILL, bytes([9, 5]) + FILL),
        (bytes([3, 5]) + FILL, bytes([3, 0xEE]) + FILL),
    ],
    "compat_shadowed_type.p4": [
        # parser local: w = k; I's variable bump: v = k + 3; E's block constant: v | 0x40; then
        # control bump again: w + 1; typedef level again: k + 0x10
        (bytes([0x05, 0, 0]) + FILL, bytes([0x15, 0x48, 0x06]) + FILL),
        (bytes([0xF0, 0, 0]) + FILL, bytes([0x00, 0xF3, 0xF1]) + FILL),
    ],
    "compat_direct_apply.p4": [
        # k=5 hits I.Sub.t and E.Sub.t (x = 0x100, then + 1, each time); k=1 misses both: x + 2
        (bytes([0, 5, 0, 0, 0, 7]), bytes([0, 5, 0, 0, 0x01, 0x01])),
        (bytes([0, 1, 0, 0, 0, 7]), bytes([0, 1, 0, 0, 0, 9])),
    ],
}


#: the rest of each frame, unparsed, goes out as it came (and makes it an Ethernet-sized frame)
TAIL = b"-payload-"


@pytest.mark.parametrize("program", sorted(COMPAT_FRAMES))
def test_compat_program_frames(program: str) -> None:
    sim = Sim(compile_file(PROGRAMS / program))
    for frame, expected in COMPAT_FRAMES[program]:
        assert sim.send(0, frame + TAIL) == [(1, expected + TAIL)]


@pytest.mark.parametrize("program", sorted(COMPAT_FRAMES))
def test_compat_program_same_bytes_as_bmv2(program: str, tmp_path: Path) -> None:
    why_not = bmv2run.unavailable()
    if why_not:
        pytest.skip(why_not)
    frames = [f + TAIL for f, _ in COMPAT_FRAMES[program]]
    with bmv2run.Bmv2Program(PROGRAMS / program, tmp_path) as bmv2:
        theirs = bmv2.run([(0, f) for f in frames], [1] * len(frames))
    padded = [[(p, bmv2run.pad(d)) for p, d in out] for out in theirs]
    assert padded == [[(1, bmv2run.pad(e + TAIL))] for _, e in COMPAT_FRAMES[program]]


@pytest.mark.parametrize(("body", "message"), [
    ("for (bit<8> i in 1 .. 3) { hdr.h.x = hdr.h.x + 1; }", "BMV2 does not support for-in loops"),
    ("break;", "break outside a loop"),
    ("for (bit<8> i = 0; i < 2; i = i + 1) { hdr.h.x = hdr.h.x + 1; }", "BMv2 runs for loops only inside actions"),
    ("if (hdr.h.k == 1) { continue; }", "continue outside a loop"),
])
def test_loops_refused(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(CompileError, match=message):
        _p4info(tmp_path, body, "")


def test_no_loops_in_a_parser_state(tmp_path: Path) -> None:
    with pytest.raises(CompileError, match="for loops are not allowed in a parser"):
        _compile(tmp_path, v1_program(HDR, "", parser="""state start {
            pkt.extract(hdr.h);
            for (bit<8> i = 0; i < 2; i = i + 1) { hdr.h.x = hdr.h.x + 1; }
            transition accept; }"""))
