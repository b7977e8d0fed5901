"""The language p4c-bm2-ss accepts and the P4Info it writes: small programs of our own, each for
one construct p4sim once refused or wrote differently (found by tests/p4sim/corpus_check.py).
Expected P4Info values are p4c-bm2-ss's for the same program."""

from __future__ import annotations

from pathlib import Path

import pytest
from p4.config.v1 import p4info_pb2

from p4sim.compiler.driver import compile_file
from p4sim.compiler.errors import CompileError
from tests.p4sim.harness import V1_PRELUDE, sim_from_source, v1_program  # noqa: F401

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


# -- what p4c refuses --------------------------------------------------------------------------------


def test_package_argument_with_another_direction_is_refused(tmp_path: Path) -> None:
    src = v1_program(HDR, "").replace("control VC(inout headers_t hdr", "control VC(in headers_t hdr")
    with pytest.raises(CompileError, match="parameter hdr is 'in' where VerifyChecksum has 'inout'"):
        _compile(tmp_path, src)


def test_package_arguments_disagreeing_on_the_headers_type_are_refused(tmp_path: Path) -> None:
    src = v1_program(HDR + "struct other_t { h_t h; }\n", "").replace(
        "control CC(inout headers_t hdr", "control CC(inout other_t hdr")
    with pytest.raises(CompileError, match="has type other_t, but P gives V1Switch's H the type headers_t"):
        _compile(tmp_path, src)
