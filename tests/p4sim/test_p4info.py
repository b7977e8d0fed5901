"""Tests of P4Info generation: the id hash, aliases, inner ids, and goldens made by p4c."""

from __future__ import annotations

from pathlib import Path

import pytest
from google.protobuf import text_format
from p4.config.v1 import p4info_pb2

from p4sim.compiler import ast
from p4sim.compiler.driver import compile_file
from p4sim.compiler.elaborate import elaborate
from p4sim.compiler.p4info import (
    SymbolTable,
    build_p4info,
    inner_ids,
    jenkins_hash,
    p4info_format,
    read_p4info,
    write_p4info,
)
from p4sim.compiler.parser import parse_file
from tests.p4sim.harness import V1_PRELUDE, v1_program

GOLDEN = Path(__file__).parent / "p4info_golden"


def test_jenkins_hash_known_ids() -> None:
    # ids p4c gave these names (NoAction appears in every v1model P4Info)
    assert (1 << 24) | (jenkins_hash("NoAction") & 0xFFFFFF) == 21257015
    assert (2 << 24) | (jenkins_hash("ingress.t_range") & 0xFFFFFF) == 34184941
    assert (3 << 24) | (jenkins_hash("MyParser.pvs") & 0xFFFFFF) == 56033750
    assert jenkins_hash("") == 0
    assert jenkins_hash("a") == 0xCA2E9442  # the one-at-a-time reference value


def test_ids_user_ids_first_and_collision_probing() -> None:
    st = SymbolTable()
    h = jenkins_hash("b.x") & 0xFFFFFF
    st.add(1, "a.y", user_id=h)  # takes the slot "b.x" hashes to (prefix added to a bare @id)
    st.add(1, "b.x")
    st.add(2, "t", user_id=(2 << 24) | 5)
    st.assign_ids()
    assert st.id(1, "a.y") == (1 << 24) | h
    assert st.id(1, "b.x") == (1 << 24) | ((h + 1) & 0xFFFFFF)
    assert st.id(2, "t") == (2 << 24) | 5
    with pytest.raises(ValueError):
        SymbolTable().add(1, "z", user_id=(2 << 24) | 1)


def test_aliases_shortest_unique_suffix() -> None:
    st = SymbolTable()
    for n in ("ingress.on_miss", "egress.on_miss", "ingress.bd", "d.a.c", "e.b.c", "b.c", "NoAction"):
        st.add(1, n)
    st.add(2, "ingress.bd")  # the same name as another kind is one symbol
    assert st.alias("ingress.on_miss") == "ingress.on_miss"
    assert st.alias("egress.on_miss") == "egress.on_miss"
    assert st.alias("ingress.bd") == "bd"
    assert st.alias("d.a.c") == "a.c"
    assert st.alias("e.b.c") == "e.b.c"  # "b.c" is itself a symbol
    assert st.alias("b.c") == "b.c"
    assert st.alias("NoAction") == "NoAction"


def test_inner_ids() -> None:
    def idanno(v: int) -> list[ast.Annotation]:
        return [ast.Annotation("id", [ast.IntLiteral(v)])]

    assert inner_ids([[], [], []]) == [1, 2, 3]
    assert inner_ids([[], idanno(1), []]) == [2, 1, 3]
    assert inner_ids([idanno(3), [], []]) == [3, 2, 4]


def _normalized(ours: p4info_pb2.P4Info, clear_initial_default: bool) -> p4info_pb2.P4Info:
    out = p4info_pb2.P4Info()
    out.CopyFrom(ours)
    if clear_initial_default:
        for t in out.tables:
            t.ClearField("initial_default_action")
    return out


# (program, clear our initial_default_action because that p4c predates the current field)
GOLDENS = [
    ("basic_routing-bmv2", True),
    ("table-entries-range-bmv2", False),
    ("pvs-struct-1-bmv2", True),
]


@pytest.mark.parametrize(("name", "clear_initial_default"), GOLDENS)
def test_golden(name: str, clear_initial_default: bool) -> None:
    expected = p4info_pb2.P4Info()
    text_format.Parse((GOLDEN / f"{name}.p4.p4info.txtpb").read_text(), expected, allow_unknown_field=True)
    ours = build_p4info(elaborate(parse_file(str(GOLDEN / f"{name}.p4"))))
    ours = _normalized(ours, clear_initial_default)
    assert text_format.MessageToString(ours) == text_format.MessageToString(expected)
    assert ours == expected


def test_write_formats(tmp_path: Path) -> None:
    info = build_p4info(elaborate(parse_file(str(GOLDEN / "table-entries-range-bmv2.p4"))))
    for suffix in (".txt", ".txtpb", ".json", ".bin"):
        path = tmp_path / f"out{suffix}"
        write_p4info(info, path)
        assert read_p4info(path) == info
    with pytest.raises(ValueError):
        p4info_format("x.p4info")


def test_action_called_only_from_another_action_is_not_in_p4info(tmp_path: Path) -> None:
    # p4c inlines action calls inside actions before it generates P4Info
    src = tmp_path / "prog.p4"
    src.write_text(V1_PRELUDE + v1_program(
        "header h_t { bit<8> a; }\nstruct headers_t { h_t h; }\nstruct meta_t { }\n", "t.apply(); direct();",
        ingress_locals="""
        action helper() { hdr.h.a = 1; }
        action outer() { helper(); }
        action direct() { hdr.h.a = 2; }
        table t { key = { hdr.h.a: exact; } actions = { outer; } }
        """))
    names = {a.preamble.name for a in compile_file(src).p4info.actions}
    assert "I.outer" in names and "I.direct" in names
    assert "I.helper" not in names
