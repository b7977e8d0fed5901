"""Tests of the P4_16 lexer: literals, operators, comments and cpp line markers."""

from __future__ import annotations

import pytest

from p4sim.compiler.errors import CompileError
from p4sim.compiler.lexer import EOF, IDENT, INTEGER, STRING, UNEXPECTED, IntValue, tokenize


def kinds(text: str) -> list[str]:
    return [t.kind for t in tokenize(text, "t.p4")][:-1]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0", IntValue(0, None, False)),
        ("1_000", IntValue(1000, None, False)),
        ("0x1F", IntValue(31, None, False)),
        ("0XfF_ff", IntValue(0xFFFF, None, False)),
        ("0o17", IntValue(15, None, False)),
        ("0O7", IntValue(7, None, False)),
        ("0b1010_1010", IntValue(0xAA, None, False)),
        ("0B1", IntValue(1, None, False)),
        ("0d99", IntValue(99, None, False)),
        ("0D1_0", IntValue(10, None, False)),
        ("8w255", IntValue(255, 8, False)),
        ("16w0x0800", IntValue(0x800, 16, False)),
        ("4s3", IntValue(3, 4, True)),
        ("8s0b1", IntValue(1, 8, True)),
        ("32w0o777", IntValue(0o777, 32, False)),
    ],
)
def test_integer_literals(text: str, value: IntValue) -> None:
    toks = tokenize(text, "t.p4")
    assert toks[0].kind == INTEGER
    assert toks[0].text == text
    assert toks[0].value == value
    assert toks[1].kind == EOF


def test_signed_literal_sign_is_a_unary_minus() -> None:
    toks = tokenize("-4s3", "t.p4")
    assert [t.kind for t in toks] == ["-", INTEGER, EOF]


@pytest.mark.parametrize("bad", ["0x", "8w", "12abc", "0b102", "4s-3"])
def test_bad_integer_literals(bad: str) -> None:
    with pytest.raises(CompileError) as ei:
        tokenize(f"x = {bad};", "t.p4")
    assert ei.value.loc is not None and (ei.value.loc.line, ei.value.loc.col) == (1, 5)
    assert "invalid integer literal" in ei.value.message


def test_operators_longest_match() -> None:
    assert kinds("a &&& b .. c |+| d |-| e ++ f << g && h || i") == [
        IDENT, "&&&", IDENT, "..", IDENT, "|+|", IDENT, "|-|", IDENT, "++", IDENT, "<<", IDENT,
        "&&", IDENT, "||", IDENT,
    ]
    assert kinds("<= >= == != ! ~ ^ % ? : @ _") == [
        "<=", ">=", "==", "!=", "!", "~", "^", "%", "?", ":", "@", "_",
    ]


def test_right_shift_is_two_adjacent_greater_thans() -> None:
    toks = tokenize("register<bit<32>> r; x >> 2; y > > 3", "t.p4")
    gts = [t for t in toks if t.kind == ">"]
    assert len(gts) == 6
    # register<bit<32>>: adjacent; x >> 2: adjacent; y > > 3: not adjacent.
    assert gts[0].end == gts[1].pos
    assert gts[2].end == gts[3].pos
    assert gts[4].end != gts[5].pos


def test_keywords_identifiers_dontcare() -> None:
    assert kinds("header headers _ _x priority apply state") == [
        "header", IDENT, "_", IDENT, IDENT, "apply", "state",
    ]


def test_string_literal_escapes() -> None:
    toks = tokenize(r'"a\n\"b\\"', "t.p4")
    assert toks[0].kind == STRING
    assert toks[0].value == 'a\n"b\\'


def test_unterminated_string_and_comment() -> None:
    with pytest.raises(CompileError, match="unterminated string"):
        tokenize('x = "abc\n', "t.p4")
    with pytest.raises(CompileError, match="unterminated comment") as ei:
        tokenize("x;\n  /* never closed", "t.p4")
    assert (ei.value.loc.line, ei.value.loc.col) == (2, 3)


def test_comments_are_skipped_and_lines_counted() -> None:
    toks = tokenize("a // one\n/* two\nthree */ b\n  c", "t.p4")
    assert [(t.text, t.loc.line, t.loc.col) for t in toks[:-1]] == [
        ("a", 1, 1), ("b", 3, 10), ("c", 4, 3),
    ]


def test_line_markers_set_file_and_line() -> None:
    text = (
        '# 0 "main.p4"\n'
        '# 1 "main.p4"\n'
        "a\n"
        '# 1 "/inc/core.p4" 1\n'
        "b\n"
        "\n"
        "  c\n"
        '# 3 "main.p4" 2\n'
        "d\n"
        "#line 40 \"other.p4\"\n"
        "e\n"
        "#pragma once\n"
        "f\n"
    )
    toks = tokenize(text, "cpp-output")
    got = [(t.text, str(t.loc)) for t in toks[:-1]]
    assert got == [
        ("a", "main.p4:1:1"),
        ("b", "/inc/core.p4:1:1"),
        ("c", "/inc/core.p4:3:3"),
        ("d", "main.p4:3:1"),
        ("e", "other.p4:40:1"),
        ("f", "other.p4:42:1"),
    ]


def test_unknown_characters_become_tokens() -> None:
    toks = tokenize("a $ b", "t.p4")
    assert toks[1].kind == UNEXPECTED and toks[1].text == "$"
