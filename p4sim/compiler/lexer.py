"""Lexer for P4_16 source text as it comes out of the C preprocessor.

Turns the text into a list of ``Token``s, each with the ``Loc`` of its first character in the
user's *original* file: cpp's line markers (``# 12 "file.p4" 1``) are followed, so a token that
came from an included file points into that file.

Decisions worth knowing:

* ``>>`` is never one token. Two ``>`` tokens are produced, and the parser joins them into a
  shift when they touch (``a >> 2``), so that ``register<bit<32>>`` closes two argument lists.
  ``Token.end`` / ``Token.pos`` make the "touching" test possible.
* Identifiers are not classified as type names here: that needs scope information, which the
  parser keeps (the spec's TYPE_IDENTIFIER).
* A character that starts no P4 token becomes an ``UNEXPECTED`` token instead of an error, so
  that free-form annotation bodies (``@pragma``) can hold anything; the parser reports it if it
  turns up anywhere else.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

from p4sim.compiler.ast import Loc
from p4sim.compiler.errors import CompileError

log = logging.getLogger(__name__)

#: Reserved words of P4_16 (spec 1.2.x). ``priority`` and ``list`` are handled as ordinary
#: identifiers (they are field / extern names in real programs) and recognised by context.
KEYWORDS: frozenset[str] = frozenset(
    """abstract action actions apply bool bit break const continue control default else entries
    enum error exit extern false for header header_union if in inout int key match_kind type out
    package parser return select state string struct switch table this transition true tuple
    typedef varbit value_set void""".split()
)

#: Punctuation, longest first so that the first match is the right one.
PUNCTUATION: tuple[str, ...] = (
    "|+|=",
    "|-|=",
    "&&&",
    "|+|",
    "|-|",
    "<<=",
    "+=",
    "-=",
    "*=",
    "/=",
    "%=",
    "&=",
    "|=",
    "^=",
    "<<",
    "<=",
    ">=",
    "==",
    "!=",
    "&&",
    "||",
    "++",
    "..",
    "+",
    "-",
    "*",
    "/",
    "%",
    "|",
    "&",
    "^",
    "~",
    "!",
    "<",
    ">",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    ",",
    ";",
    ":",
    "?",
    ".",
    "=",
    "@",
)

IDENT = "IDENT"
INTEGER = "INTEGER"
STRING = "STRING"
EOF = "EOF"
UNEXPECTED = "UNEXPECTED"
DONTCARE = "_"


@dataclass(frozen=True)
class IntValue:
    """The meaning of an integer literal: ``8w5`` is IntValue(5, 8, False)."""

    value: int
    width: int | None
    signed: bool


@dataclass
class Token:
    kind: str  # IDENT, INTEGER, STRING, EOF, UNEXPECTED, a keyword, or the punctuation itself
    text: str  # exactly as written
    loc: Loc
    pos: int  # offset of the first character in the preprocessed text
    end: int  # offset just past the last character
    value: IntValue | str | None = field(default=None, repr=False)

    def describe(self) -> str:
        """How the token is named in a syntax error."""
        if self.kind == EOF:
            return "end of file"
        if self.kind == IDENT:
            return f"identifier '{self.text}'"
        if self.kind == INTEGER:
            return f"integer {self.text}"
        if self.kind == STRING:
            return f"string literal {self.text}"
        if self.kind in KEYWORDS:
            return f"keyword '{self.text}'"
        if self.kind == UNEXPECTED:
            return f"character '{self.text}'"
        return f"'{self.text}'"


# Alternatives are tried in order, and PUNCTUATION lists longer operators first.
_PUNCT_RE = re.compile("|".join(re.escape(p) for p in PUNCTUATION))
_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Width-prefixed (8w5, 4s0x3) or plain, in every base; underscores separate digits.
_INT_RE = re.compile(
    r"(?:(?P<width>[0-9]+)(?P<sign>[ws]))?"
    r"(?:0[xX](?P<hex>[0-9a-fA-F_]+)|0[oO](?P<oct>[0-7_]+)|0[dD](?P<dec>[0-9_]+)"
    r"|0[bB](?P<bin>[01_]+)|(?P<plain>[0-9][0-9_]*))"
)
_LINE_MARKER_RE = re.compile(r"#\s*(?:line\s+)?(?P<line>\d+)(?:\s+\"(?P<file>(?:[^\"\\]|\\.)*)\")?[^\n]*")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "0": "\0"}


def parse_int_literal(text: str) -> IntValue | None:
    """Value, width and signedness of an integer literal, or None if ``text`` is not one."""
    m = _INT_RE.fullmatch(text)
    if not m:
        return None
    base, digits = next(
        (b, m.group(g))
        for g, b in (("hex", 16), ("oct", 8), ("dec", 10), ("bin", 2), ("plain", 10))
        if m.group(g) is not None
    )
    digits = digits.replace("_", "")
    if not digits:
        return None
    value = int(digits, base)
    width = int(m.group("width")) if m.group("width") is not None else None
    return IntValue(value, width, m.group("sign") == "s")


def _unescape(body: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(body):
        c = body[i]
        if c == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            out.append(_ESCAPES.get(nxt, nxt))
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


class Lexer:
    """One pass over a preprocessed text; use ``tokenize()``."""

    def __init__(self, text: str, filename: str) -> None:
        self.text = text
        self.file = filename
        self.pos = 0
        self.line = 1
        self.line_start = 0  # offset where the current physical line starts
        self.at_line_start = True  # only whitespace so far on this line

    def _loc(self, pos: int) -> Loc:
        return Loc(self.file, self.line, pos - self.line_start + 1)

    def _newline(self, pos_after: int) -> None:
        self.line += 1
        self.line_start = pos_after
        self.at_line_start = True

    def _error(self, message: str, pos: int) -> CompileError:
        return CompileError(message, self._loc(pos))

    def _directive(self) -> None:
        """Handle a ``#`` at the start of a line: a cpp line marker or a stray directive."""
        text = self.text
        eol = text.find("\n", self.pos)
        if eol < 0:
            eol = len(text)
        line_text = text[self.pos : eol]
        m = _LINE_MARKER_RE.fullmatch(line_text)
        if m:
            if m.group("file") is not None:
                self.file = _unescape(m.group("file"))
            # The marker names the number of the *next* line.
            self.line = int(m.group("line")) - 1
        else:
            # cpp passes unknown directives (#pragma ...) through; p4c ignores them too.
            log.debug("%s: ignoring preprocessor line %r", self._loc(self.pos), line_text)
        self.pos = eol
        if eol < len(text):
            self.pos = eol + 1
            self._newline(self.pos)

    def tokenize(self) -> list[Token]:
        text = self.text
        n = len(text)
        tokens: list[Token] = []
        while True:
            # Skip whitespace, comments and line markers.
            while self.pos < n:
                c = text[self.pos]
                if c == "\n":
                    self.pos += 1
                    self._newline(self.pos)
                elif c in " \t\r\f\v":
                    self.pos += 1
                elif c == "#" and self.at_line_start:
                    self._directive()
                elif text.startswith("//", self.pos):
                    eol = text.find("\n", self.pos)
                    self.pos = n if eol < 0 else eol
                elif text.startswith("/*", self.pos):
                    close = text.find("*/", self.pos + 2)
                    if close < 0:
                        raise self._error("unterminated comment", self.pos)
                    start = self.pos
                    self.pos = close + 2
                    # Keep line numbers right across multi-line comments.
                    nl = text.rfind("\n", start, close)
                    if nl >= 0:
                        self.line += text.count("\n", start, close)
                        self.line_start = nl + 1
                else:
                    break
            if self.pos >= n:
                tokens.append(Token(EOF, "", self._loc(self.pos), self.pos, self.pos))
                return tokens
            self.at_line_start = False
            tokens.append(self._next_token())

    def _next_token(self) -> Token:
        text = self.text
        start = self.pos
        loc = self._loc(start)
        c = text[start]
        if c.isdigit():
            m = _INT_RE.match(text, start)
            assert m is not None  # a digit always starts a plain literal
            end = m.end()
            # "8w" without digits, "12abc", "0x" ...: one bad literal, not several tokens.
            if end < len(text) and (text[end].isalnum() or text[end] == "_"):
                bad = re.compile(r"[0-9A-Za-z_]+").match(text, start)
                assert bad is not None
                raise self._error(f"invalid integer literal '{bad.group(0)}'", start)
            lit = text[start:end]
            value = parse_int_literal(lit)
            if value is None:
                raise self._error(f"invalid integer literal '{lit}'", start)
            self.pos = end
            return Token(INTEGER, lit, loc, start, end, value)
        if c.isalpha() or c == "_":
            m = _IDENT_RE.match(text, start)
            assert m is not None
            word = m.group(0)
            self.pos = m.end()
            if word == "_":
                kind = DONTCARE
            elif word in KEYWORDS:
                kind = word
            else:
                kind = IDENT
            return Token(kind, word, loc, start, self.pos)
        if c == '"':
            # A string may span lines (p4c's lexer allows it: long annotation bodies such as
            # @entry_restriction("...") are written so); its newlines are part of the text.
            i = start + 1
            while i < len(text) and text[i] != '"':
                if text[i] == "\\":
                    i += 1
                i += 1
            if i >= len(text):
                raise self._error("unterminated string literal", start)
            self.pos = i + 1
            raw = text[start : self.pos]
            newlines = raw.count("\n")
            if newlines:
                self.line += newlines
                self.line_start = start + raw.rfind("\n") + 1
            return Token(STRING, raw, loc, start, self.pos, _unescape(raw[1:-1]))
        m = _PUNCT_RE.match(text, start)
        if m:
            p = m.group(0)
            self.pos = m.end()
            return Token(p, p, loc, start, self.pos)
        self.pos = start + 1
        return Token(UNEXPECTED, c, loc, start, self.pos)


def tokenize(text: str, filename: str = "<input>") -> list[Token]:
    """Split preprocessed P4 text into tokens (ending with one EOF token)."""
    return Lexer(text, filename).tokenize()
