"""Recursive-descent parser of P4_16 (spec 1.2.x) producing the syntax tree of ``ast``.

Public API: ``parse_program(text, filename)`` parses preprocessed text; ``parse_file(path,
include_dirs, defines)`` runs cpp first. Every problem is reported as a ``CompileError`` at the
offending token (``file:line:col: error: syntax error, unexpected ...``).

Like p4c, the parser needs to know which identifiers name types (the spec grammar's
TYPE_IDENTIFIER) to tell ``a < b`` from ``T<b>`` and a declaration ``T x;`` from a statement.
It keeps a stack of scopes holding the type names declared so far: headers, structs, unions,
enums, typedefs, ``type``s, externs, parser/control/package types, and type parameters while
inside the declaration that introduces them.

Operator precedence follows p4c's grammar, loosest first: ``?:``, ``||``, ``&&``, ``== !=``,
``< > <= >=``, ``|``, ``^``, ``&``, ``<< >>``, ``++ + - |+| |-|``, ``* / %``, prefix operators
and casts, then postfix ``. [] ()``. Note that unlike C, the bitwise operators bind tighter
than the comparisons: ``a & b == c`` is ``(a & b) == c``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping
from typing import TypeVar

from p4sim.compiler import ast
from p4sim.compiler.errors import CompileError
from p4sim.compiler.lexer import (
    DONTCARE,
    EOF,
    IDENT,
    INTEGER,
    KEYWORDS,
    STRING,
    UNEXPECTED,
    IntValue,
    Token,
    tokenize,
)
from p4sim.compiler.preprocess import preprocess

log = logging.getLogger(__name__)

_T = TypeVar("_T")

# Binary operators: token -> (precedence, AST operator). Higher binds tighter.
_BINARY: dict[str, tuple[int, str]] = {
    "||": (2, "||"),
    "&&": (3, "&&"),
    "==": (4, "=="),
    "!=": (4, "!="),
    "<": (5, "<"),
    ">": (5, ">"),
    "<=": (5, "<="),
    ">=": (5, ">="),
    "|": (6, "|"),
    "^": (7, "^"),
    "&": (8, "&"),
    "<<": (9, "<<"),
    "++": (10, "++"),
    "+": (10, "+"),
    "-": (10, "-"),
    "|+|": (10, "|+|"),
    "|-|": (10, "|-|"),
    "*": (11, "*"),
    "/": (11, "/"),
    "%": (11, "%"),
}
_SHIFT_PREC = 9
#: Marks, in a scope's set, a type name hidden there by a variable, constant or instance
#: (no identifier can start with it).
_SHADOW = "!"
_TERNARY_PREC = 1

# Keywords that may still be used as ordinary names (p4c's nonTypeName / nonTableKwName).
_SOFT_KEYWORDS = frozenset({"apply", "key", "actions", "state", "entries", "type"})
_BASE_TYPE_KEYWORDS = frozenset({"bit", "int", "varbit", "bool", "string", "error", "match_kind"})
_DIRECTIONS = frozenset({"in", "out", "inout"})


_OP_ASSIGN = ("+=", "-=", "*=", "/=", "%=", "<<=", "&=", "|=", "^=", "|+|=", "|-|=")


class _Backtrack(Exception):
    """Internal: a speculative parse did not work out."""


class Parser:
    def __init__(self, tokens: list[Token], text: str) -> None:
        self.toks = tokens
        self.text = text
        self.i = 0
        # Scopes of type names; the first one is the global scope.
        self.scopes: list[set[str]] = [set()]

    # --- token helpers --------------------------------------------------------------------

    @property
    def tok(self) -> Token:
        return self.toks[self.i]

    def peek(self, k: int = 1) -> Token:
        j = min(self.i + k, len(self.toks) - 1)
        return self.toks[j]

    def at(self, *kinds: str) -> bool:
        return self.tok.kind in kinds

    def advance(self) -> Token:
        t = self.toks[self.i]
        if t.kind != EOF:
            self.i += 1
        return t

    def accept(self, kind: str) -> Token | None:
        if self.tok.kind == kind:
            return self.advance()
        return None

    def expect(self, kind: str, what: str | None = None) -> Token:
        if self.tok.kind == kind:
            return self.advance()
        raise self.error_unexpected(what or f"'{kind}'")

    def error_unexpected(self, expecting: str | None = None, tok: Token | None = None) -> CompileError:
        t = tok or self.tok
        msg = f"syntax error, unexpected {t.describe()}"
        if expecting:
            msg += f", expecting {expecting}"
        return CompileError(msg, t.loc)

    # --- type-name scopes -----------------------------------------------------------------

    def is_type_name(self, name: str) -> bool:
        # Innermost scope first: a variable, constant or instance declared in an inner scope
        # hides an outer type of the same name (p4c: ``control ttl`` and, inside another
        # control, ``bit<8> ttl = 0; ... ttl = x;``), recorded as ``_SHADOW + name``.
        for s in reversed(self.scopes):
            if _SHADOW + name in s:
                return False
            if name in s:
                return True
        return False

    def declare_type(self, name: str) -> None:
        self.scopes[-1].discard(_SHADOW + name)
        self.scopes[-1].add(name)

    def declare_object(self, name: str) -> None:
        """A variable, constant or instance named ``name`` is in scope from here on: p4c's
        parser then reads the name as an identifier, not as an outer type of that name.
        Parameters, actions and tables do not hide types in p4c (``action a(bit<8> T)``
        with a type ``T`` is a syntax error there), so they are not declared here."""
        if self.is_type_name(name):
            self.scopes[-1].add(_SHADOW + name)

    def declare_global_type(self, name: str) -> None:
        self.scopes[0].add(name)

    def push_scope(self, names: Iterable[str] = ()) -> None:
        self.scopes.append(set(names))

    def pop_scope(self) -> None:
        if len(self.scopes) > 1:
            self.scopes.pop()

    def at_type_name(self, k: int = 0) -> bool:
        t = self.peek(k)
        return t.kind == IDENT and self.is_type_name(t.text)

    def speculate(self, fn: Callable[[], _T]) -> _T | None:
        """Run ``fn``; if it fails, rewind and return None (scopes are restored too)."""
        save_i = self.i
        save_scopes = [set(s) for s in self.scopes]
        try:
            return fn()
        except (CompileError, _Backtrack):
            self.i = save_i
            self.scopes = save_scopes
            return None

    # --- names ----------------------------------------------------------------------------

    def at_name(self) -> bool:
        return self.tok.kind == IDENT or self.tok.kind in _SOFT_KEYWORDS

    def name(self, what: str = "a name") -> str:
        """Any name (p4c's ``name``): identifiers, type names, soft keywords."""
        if self.at_name():
            return self.advance().text
        raise self.error_unexpected(what)

    def at_nontype_name(self, k: int = 0) -> bool:
        t = self.peek(k)
        if t.kind in _SOFT_KEYWORDS:
            return True
        return t.kind == IDENT and not self.is_type_name(t.text)

    # --- annotations ----------------------------------------------------------------------

    def annotations(self) -> list[ast.Annotation]:
        out: list[ast.Annotation] = []
        while self.at("@"):
            out.append(self.annotation())
        return out

    def annotation(self) -> ast.Annotation:
        at = self.expect("@")
        nt = self.tok
        if not (nt.kind == IDENT or nt.kind in KEYWORDS):
            raise self.error_unexpected("an annotation name")
        self.advance()
        name = nt.text
        if name == "pragma":
            return self.pragma(at)
        if self.at("("):
            open_tok = self.advance()
            depth = 1
            start = self.i
            while depth:
                t = self.tok
                if t.kind == EOF:
                    raise self.error_unexpected("')' closing the annotation body")
                if t.kind == "(":
                    depth += 1
                elif t.kind == ")":
                    depth -= 1
                self.advance()
            close = self.toks[self.i - 1]
            raw = self.text[open_tok.end : close.pos]
            args = self.sub_parse_expr_list(start, self.i - 1)
            kv = self.sub_parse_kv_list(start, self.i - 1) if args is None else None
            return ast.Annotation(name, args or [], kv=kv or {}, raw=raw, loc=at.loc)
        if self.at("["):
            self.advance()
            ann = ast.Annotation(name, structured=True, loc=at.loc)
            if self.at_name() and self.peek().kind == "=":
                while True:
                    key = self.name("a key")
                    self.expect("=")
                    ann.kv[key] = self.expression()
                    if not self.accept(","):
                        break
            elif not self.at("]"):
                ann.args.append(self.expression())
                while self.accept(","):
                    ann.args.append(self.expression())
            self.expect("]", "']' or ','")
            return ann
        return ast.Annotation(name, loc=at.loc)

    def pragma(self, at: Token) -> ast.Annotation:
        """``@pragma name tokens...`` up to the end of the line (P4_14 style)."""
        line = at.loc.line
        file = at.loc.file
        pname = self.name("a pragma name")
        start_tok = self.tok
        end = start_tok.pos
        first = self.i
        while self.tok.kind != EOF and self.tok.loc.line == line and self.tok.loc.file == file:
            end = self.tok.end
            self.advance()
        raw = self.text[start_tok.pos : end] if self.i > first else ""
        args = self.sub_parse_expr_list(first, self.i)
        return ast.Annotation(pname, args or [], raw=raw, loc=at.loc)

    def sub_parse_kv_list(self, start: int, stop: int) -> dict[str, ast.Expr] | None:
        """Try to read tokens[start:stop] as ``key = expr, ...`` (``@pkginfo(name="x", ...)``)."""
        if start >= stop:
            return None
        eof = self.toks[-1]
        sub = Parser([*self.toks[start:stop], Token(EOF, "", self.toks[stop].loc, eof.pos, eof.end)], self.text)
        sub.scopes = self.scopes
        out: dict[str, ast.Expr] = {}
        try:
            while True:
                if not (sub.tok.kind == IDENT or sub.tok.kind in KEYWORDS) or sub.peek().kind != "=":
                    return None
                key = sub.advance().text
                sub.advance()
                out[key] = sub.expression()
                if not sub.accept(","):
                    break
            return out if sub.at(EOF) else None
        except (CompileError, RecursionError):
            return None

    def sub_parse_expr_list(self, start: int, stop: int) -> list[ast.Expr] | None:
        """Try to read tokens[start:stop] as a comma-separated expression list."""
        if start >= stop:
            return []
        eof = self.toks[-1]
        sub = Parser([*self.toks[start:stop], Token(EOF, "", self.toks[stop].loc, eof.pos, eof.end)], self.text)
        sub.scopes = self.scopes
        try:
            out = [sub.expression()]
            while sub.accept(","):
                out.append(sub.expression())
            if not sub.at(EOF):
                return None
            return out
        except (CompileError, RecursionError):
            return None

    # --- types ----------------------------------------------------------------------------

    def at_type_start(self, k: int = 0) -> bool:
        """Can a type reference start at token k ahead (for declarations and casts)?"""
        t = self.peek(k)
        if t.kind in _BASE_TYPE_KEYWORDS or t.kind == "tuple":
            return True
        if t.kind == IDENT and t.text == "list" and self.peek(k + 1).kind == "<":
            return True
        if t.kind == IDENT:
            return self.is_type_name(t.text)
        if t.kind == "." and self.peek(k + 1).kind == IDENT:
            return self.is_type_name(self.peek(k + 1).text)
        return False

    def type_ref(self) -> ast.TypeRef:
        t = self.tok
        base = self.base_type()
        if base is None:
            if self.at("."):
                self.advance()
                nt = self.tok
                if not (nt.kind == IDENT and self.is_type_name(nt.text)):
                    raise self.error_unexpected("a type name")
                self.advance()
                base = ast.NamedTypeRef(nt.text, is_global=True, loc=t.loc)
            elif self.at(IDENT) and self.is_type_name(self.tok.text):
                self.advance()
                base = ast.NamedTypeRef(t.text, loc=t.loc)
            elif self.at(IDENT):
                err = self.error_unexpected("a type")
                err.message += f" (no type named '{self.tok.text}' is declared before this point)"
                raise err
            else:
                raise self.error_unexpected("a type")
            if self.at("<"):
                base.type_args = self.type_arg_list()
        # Header stacks: T[N] (only of named types, as in the grammar).
        if isinstance(base, ast.NamedTypeRef) and self.at("["):
            self.advance()
            size = self.expression()
            self.expect("]")
            return ast.StackTypeRef(base, size, loc=t.loc)
        return base

    def base_type(self) -> ast.TypeRef | None:
        t = self.tok
        k = t.kind
        if k == "bool":
            self.advance()
            return ast.BoolTypeRef(loc=t.loc)
        if k == "string":
            self.advance()
            return ast.StringTypeRef(loc=t.loc)
        if k == "error":
            self.advance()
            return ast.ErrorTypeRef(loc=t.loc)
        if k == "match_kind":
            self.advance()
            return ast.MatchKindTypeRef(loc=t.loc)
        if k in ("bit", "int", "varbit"):
            self.advance()
            if not self.at("<"):
                if k == "bit":
                    return ast.BitTypeRef(ast.IntLiteral(1, text="1", loc=t.loc), loc=t.loc)
                if k == "int":
                    return ast.IntTypeRef(loc=t.loc)
                raise self.error_unexpected("'<' after varbit")
            self.advance()
            if self.at("("):
                self.advance()
                width: ast.Expr = self.expression()
                self.expect(")")
            elif self.at(INTEGER):
                width = self.int_literal()
            elif self.at(IDENT):
                # Not in the grammar, but p4c's lexer-level macros often expand to names
                # (e.g. bit<W> inside generic code); accept a plain name as the width.
                nt = self.advance()
                width = ast.PathExpr(nt.text, loc=nt.loc)
            else:
                raise self.error_unexpected("an integer width")
            self.close_angle()
            if k == "varbit":
                return ast.VarbitTypeRef(width, loc=t.loc)
            return ast.BitTypeRef(width, signed=(k == "int"), loc=t.loc)
        if k == "tuple":
            self.advance()
            return ast.TupleTypeRef(self.type_arg_list(), loc=t.loc)
        if k == IDENT and t.text == "list" and self.peek().kind == "<":
            self.advance()
            args = self.type_arg_list()
            if len(args) != 1:
                raise CompileError("list<T> takes exactly one type argument", t.loc)
            return ast.ListTypeRef(args[0], loc=t.loc)
        return None

    def close_angle(self) -> None:
        # '>' is always a single token (see the lexer), so 'bit<32>>' closes two lists.
        self.expect(">", "'>'")

    def type_arg_list(self) -> list[ast.TypeRef]:
        self.expect("<")
        args: list[ast.TypeRef] = []
        if self.at(">"):
            self.advance()
            return args
        while True:
            args.append(self.type_arg())
            if not self.accept(","):
                break
        self.close_angle()
        return args

    def type_arg(self) -> ast.TypeRef:
        t = self.tok
        if self.accept(DONTCARE):
            return ast.DontCareTypeRef(loc=t.loc)
        if self.accept("void"):
            return ast.VoidTypeRef(loc=t.loc)
        if t.kind == IDENT and not self.is_type_name(t.text) and t.text != "list":
            # A name not (yet) known as a type: the grammar allows it here because type
            # arguments may introduce names (p4c's typeArg: nonTypeName).
            self.advance()
            return ast.NamedTypeRef(t.text, loc=t.loc)
        return self.type_ref()

    def type_or_void(self) -> ast.TypeRef:
        """Return type of a function or method; a plain identifier is allowed because the
        type parameters that declare it come later (``T lookahead<T>()``)."""
        t = self.tok
        if self.accept("void"):
            return ast.VoidTypeRef(loc=t.loc)
        if t.kind == IDENT and not self.is_type_name(t.text):
            self.advance()
            return ast.NamedTypeRef(t.text, loc=t.loc)
        return self.type_ref()

    def opt_type_params(self) -> list[str]:
        if not self.at("<"):
            return []
        self.advance()
        names = [self.name("a type parameter name")]
        while self.accept(","):
            names.append(self.name("a type parameter name"))
        self.close_angle()
        return names

    # --- parameters and arguments ---------------------------------------------------------

    def parameter_list(self) -> list[ast.Param]:
        self.expect("(")
        params: list[ast.Param] = []
        if self.accept(")"):
            return params
        while True:
            params.append(self.parameter())
            if not self.accept(","):
                break
        self.expect(")", "')' or ','")
        return params

    def parameter(self) -> ast.Param:
        annos = self.annotations()
        t = self.tok
        direction = ""
        if t.kind in _DIRECTIONS:
            direction = self.advance().kind
        typ = self.type_ref()
        name = self.name("a parameter name")
        default = None
        if self.accept("="):
            default = self.expression()
        return ast.Param(direction, typ, name, default, annos, loc=t.loc)

    def argument_list(self) -> list[ast.Argument]:
        self.expect("(")
        args: list[ast.Argument] = []
        if self.accept(")"):
            return args
        while True:
            args.append(self.argument())
            if not self.accept(","):
                break
        self.expect(")", "')' or ','")
        return args

    def argument(self) -> ast.Argument:
        t = self.tok
        if self.at_name() and self.peek().kind == "=":
            name = self.advance().text
            self.advance()
            if self.at(DONTCARE) and self.peek().kind in (",", ")"):
                d = self.advance()
                return ast.Argument(ast.DontCareExpr(loc=d.loc), name, loc=t.loc)
            return ast.Argument(self.expression(), name, loc=t.loc)
        if self.at(DONTCARE) and self.peek().kind in (",", ")"):
            self.advance()
            return ast.Argument(ast.DontCareExpr(loc=t.loc), loc=t.loc)
        return ast.Argument(self.expression(), loc=t.loc)

    # --- expressions ----------------------------------------------------------------------

    def int_literal(self) -> ast.IntLiteral:
        t = self.expect(INTEGER)
        v = t.value
        assert isinstance(v, IntValue)
        return ast.IntLiteral(v.value, v.width, v.signed, t.text, loc=t.loc)

    def expression(self, min_prec: int = 0) -> ast.Expr:
        left = self.unary()
        while True:
            t = self.tok
            k = t.kind
            if k == "?" and _TERNARY_PREC >= min_prec:
                self.advance()
                then = self.expression()
                self.expect(":", "':' of the conditional expression")
                other = self.expression(_TERNARY_PREC)
                left = ast.TernaryExpr(left, then, other, loc=left.loc)
                continue
            if k == ">" and self.peek().kind == ">" and self.peek().pos == t.end:
                # Two touching '>' are a right shift.
                if _SHIFT_PREC <= min_prec:
                    break
                self.advance()
                self.advance()
                right = self.expression(_SHIFT_PREC)
                left = ast.BinaryExpr(">>", left, right, loc=left.loc)
                continue
            info = _BINARY.get(k)
            if info is None:
                break
            prec, op = info
            if prec <= min_prec:
                break
            self.advance()
            right = self.expression(prec)
            left = ast.BinaryExpr(op, left, right, loc=left.loc)
        return left

    def unary(self) -> ast.Expr:
        t = self.tok
        if t.kind in ("!", "~", "-", "+"):
            self.advance()
            return ast.UnaryExpr(t.kind, self.unary(), loc=t.loc)
        if t.kind == "(" and self.at_type_start(1) and not self.is_type_member_paren():
            # A cast: "(" typeRef ")" expression (prefix precedence).
            save = self.i
            self.advance()
            typ = self.speculate(self.type_ref)
            if typ is not None and self.accept(")"):
                return ast.CastExpr(typ, self.unary(), loc=t.loc)
            self.i = save
        return self.postfix(self.primary())

    def is_type_member_paren(self) -> bool:
        """``(E.A)`` or ``(T.apply(...))``: a type name followed by '.' is an expression."""
        return self.peek(1).kind == IDENT and self.peek(2).kind == "."

    def primary(self) -> ast.Expr:
        t = self.tok
        k = t.kind
        if k == INTEGER:
            return self.int_literal()
        if k == STRING:
            self.advance()
            assert isinstance(t.value, str)
            return ast.StringLiteral(t.value, loc=t.loc)
        if k in ("true", "false"):
            self.advance()
            return ast.BoolLiteral(k == "true", loc=t.loc)
        if k == "this":
            self.advance()
            return ast.ThisExpr(loc=t.loc)
        if k == DONTCARE:
            self.advance()
            return ast.DontCareExpr(loc=t.loc)
        if k == "(":
            self.advance()
            e = self.expression()
            self.expect(")", "')'")
            return e
        if k == "{":
            return self.brace_expression()
        if k == "error" and self.peek().kind == ".":
            self.advance()
            return ast.PathExpr("error", loc=t.loc)
        if k == ".":
            # .name: a name looked up in the global scope.
            self.advance()
            nt = self.tok
            if not self.at_name():
                raise self.error_unexpected("a name after '.'")
            self.advance()
            if nt.kind == IDENT and self.is_type_name(nt.text):
                return self.type_name_expression(nt, is_global=True, loc=t.loc)
            return ast.PathExpr(nt.text, is_global=True, loc=t.loc)
        if k == IDENT and self.is_type_name(t.text):
            self.advance()
            return self.type_name_expression(t, is_global=False, loc=t.loc)
        if k == IDENT or k in _SOFT_KEYWORDS:
            self.advance()
            return ast.PathExpr(t.text, loc=t.loc)
        if k in _BASE_TYPE_KEYWORDS or k == "tuple":
            typ = self.type_ref()
            if self.at(".") and self.peek().kind != EOF:
                self.advance()
                return ast.TypeMemberExpr(typ, self.name("a member name"), loc=t.loc)
            return ast.TypeArgExpr(typ, loc=t.loc)
        raise self.error_unexpected("an expression")

    def type_name_expression(self, t: Token, is_global: bool, loc: ast.Loc) -> ast.Expr:
        """A type name in expression position: ``E.A``, ``T(args)``, ``T<args>(args)``,
        ``T<args>.member``; the name is returned for the caller's ``.`` or ``(``."""
        if self.at("<"):
            save = self.i
            targs = self.speculate(self.type_arg_list)
            if targs is not None and self.at("("):
                func = ast.PathExpr(t.text, is_global=is_global, loc=loc)
                return ast.CallExpr(func, self.argument_list(), targs, loc=loc)
            if targs is not None and self.at("."):
                self.advance()
                typ = ast.NamedTypeRef(t.text, targs, is_global, loc=loc)
                return ast.TypeMemberExpr(typ, self.name("a member name"), loc=loc)
            self.i = save
        if not self.at(".", "("):
            # p4c's grammar has a type name in an expression only before '.', '(' or type
            # arguments: alone it is a syntax error there (``sizeInBits(h_t)``, or a parameter
            # named like a type, which does not hide it)
            raise self.error_unexpected("'('")
        return ast.PathExpr(t.text, is_global=is_global, loc=loc)

    def brace_expression(self) -> ast.Expr:
        t = self.expect("{")
        if self.at(UNEXPECTED) and self.tok.text == "#" and self.peek().kind == "}":
            self.advance()
            self.advance()
            return ast.InvalidExpr(loc=t.loc)
        if self.accept("}"):
            return ast.ListExpr([], loc=t.loc)
        if self.at_name() and self.peek().kind == "=":
            fields: list[tuple[str, ast.Expr]] = []
            while True:
                fname = self.name("a field name")
                self.expect("=")
                fields.append((fname, self.expression()))
                if not self.accept(","):
                    break
                if self.at("}"):
                    break
            self.expect("}", "'}' or ','")
            return ast.StructInitExpr(fields, loc=t.loc)
        elems = [self.expression()]
        while self.accept(","):
            if self.at("}"):
                break
            elems.append(self.expression())
        self.expect("}", "'}' or ','")
        return ast.ListExpr(elems, loc=t.loc)

    def postfix(self, e: ast.Expr) -> ast.Expr:
        while True:
            t = self.tok
            if t.kind == ".":
                self.advance()
                e = ast.MemberExpr(e, self.name("a member name"), loc=e.loc)
            elif t.kind == "[":
                self.advance()
                idx = self.expression()
                if self.accept(":"):
                    lo = self.expression()
                    self.expect("]")
                    e = ast.SliceExpr(e, idx, lo, loc=e.loc)
                else:
                    self.expect("]", "']' or ':'")
                    e = ast.IndexExpr(e, idx, loc=e.loc)
            elif t.kind == "(":
                e = ast.CallExpr(e, self.argument_list(), loc=e.loc)
            elif t.kind == "<" and self.at_type_arg_start(1):
                # f<T>(...): type arguments of a call; otherwise a less-than.
                save = self.i
                targs = self.speculate(self.type_arg_list)
                if targs is not None and self.at("("):
                    e = ast.CallExpr(e, self.argument_list(), targs, loc=e.loc)
                else:
                    self.i = save
                    return e
            else:
                return e

    def at_type_arg_start(self, k: int) -> bool:
        t = self.peek(k)
        return t.kind in ("void", DONTCARE) or self.at_type_start(k)

    # --- keysets --------------------------------------------------------------------------

    def simple_keyset(self) -> ast.Expr:
        t = self.tok
        if t.kind == "default":
            self.advance()
            return ast.DefaultExpr(loc=t.loc)
        if t.kind == DONTCARE and self.peek().kind in (",", ")", ":"):
            self.advance()
            return ast.DontCareExpr(loc=t.loc)
        e = self.expression()
        if self.accept("&&&"):
            return ast.MaskExpr(e, self.expression(), loc=e.loc)
        if self.accept(".."):
            return ast.RangeExpr(e, self.expression(), loc=e.loc)
        return e

    def keyset(self) -> ast.Expr:
        """A select-case / entry keyset: a simple keyset or a parenthesised tuple of them."""
        if self.at("("):
            t = self.tok

            def tuple_keyset() -> ast.Expr:
                self.advance()
                first = self.simple_keyset()
                if self.accept(","):
                    elems = [first, self.simple_keyset()]
                    while self.accept(","):
                        elems.append(self.simple_keyset())
                    self.expect(")")
                    return ast.ListExpr(elems, loc=t.loc)
                if isinstance(first, ast.MaskExpr | ast.RangeExpr | ast.DefaultExpr | ast.DontCareExpr):
                    self.expect(")")
                    if self.at(":"):
                        return ast.ListExpr([first], loc=t.loc)
                raise _Backtrack()

            got = self.speculate(tuple_keyset)
            if got is not None:
                return got
        return self.simple_keyset()

    # --- statements -----------------------------------------------------------------------

    def block(self, annos: list[ast.Annotation] | None = None) -> ast.BlockStmt:
        t = self.expect("{", "'{'")
        self.push_scope()
        stmts: list[ast.Stmt] = []
        while not self.at("}"):
            if self.at(EOF):
                raise self.error_unexpected("'}'")
            stmts.append(self.statement())
        self.advance()
        self.pop_scope()
        return ast.BlockStmt(stmts, annos or [], loc=t.loc)

    def statement(self) -> ast.Stmt:
        # Note: p4c allows instantiations among a block's statements; those come back as
        # ast.Instantiation nodes inside BlockStmt.stmts.
        annos = self.annotations()
        t = self.tok
        k = t.kind
        if k == "{":
            return self.block(annos)
        if annos and k not in ("const",) and not self.at_type_start():
            # Only blocks and declarations carry annotations.
            raise self.error_unexpected("a declaration or '{' after annotations")
        if k == "if":
            self.advance()
            self.expect("(", "'('")
            cond = self.expression()
            self.expect(")", "')'")
            then = self.statement()
            other = None
            if self.accept("else"):
                other = self.statement()
            return ast.IfStmt(cond, then, other, loc=t.loc)
        if k == "switch":
            return self.switch_statement()
        if k == "return":
            self.advance()
            if self.accept(";"):
                return ast.ReturnStmt(loc=t.loc)
            value = self.expression()
            self.expect(";", "';'")
            return ast.ReturnStmt(value, loc=t.loc)
        if k == "exit":
            self.advance()
            self.expect(";", "';'")
            return ast.ExitStmt(loc=t.loc)
        if k == ";":
            self.advance()
            return ast.EmptyStmt(loc=t.loc)
        if k == "const":
            return self.const_decl(annos)
        if k == "for":
            return self.for_statement(annos)
        if k in ("break", "continue"):
            self.advance()
            self.expect(";", "';'")
            return ast.BreakStmt(loc=t.loc) if k == "break" else ast.ContinueStmt(loc=t.loc)
        if self.at_type_start() and not self.is_direct_application():
            return self.var_or_instance(annos)  # type: ignore[return-value]
        return self.simple_statement()

    def is_direct_application(self) -> bool:
        """``MyCtrl.apply(...)`` / ``.MyCtrl.apply(...)``: a type name used as a value."""
        k = 1 if self.at(".") else 0
        return self.peek(k + 1).kind == "."

    def simple_statement(self) -> ast.Stmt:
        st = self.simple_statement_body()
        self.expect(";", "';'")
        return st

    def compound_assign_op(self) -> str | None:
        """The operator of ``op=`` at the current token (consumed), or None."""
        k = self.tok.kind
        if k in _OP_ASSIGN:
            self.advance()
            return k[:-1]
        nxt = self.peek()
        if k == ">" and nxt.kind == ">=" and nxt.pos == self.tok.end:  # '>>=' (lexed apart for generics)
            self.advance()
            self.advance()
            return ">>"
        return None

    def simple_statement_body(self) -> ast.Stmt:
        """An assignment, compound assignment or call, without its ';'."""
        t = self.tok
        lhs = self.postfix(self.primary())
        if self.accept("="):
            return ast.AssignStmt(lhs, self.expression(), loc=t.loc)
        op = self.compound_assign_op()
        if op is not None:
            return ast.CompoundAssignStmt(lhs, op, self.expression(), loc=t.loc)
        if isinstance(lhs, ast.CallExpr):
            return ast.CallStmt(lhs, loc=t.loc)
        raise self.error_unexpected("'=' or '(' in a statement")

    def for_statement(self, annos: list[ast.Annotation]) -> ast.Stmt:
        """``for (init; cond; update) body`` or ``for ([T] x in collection) body`` (1.2.5)."""
        t = self.expect("for")
        self.expect("(", "'('")
        self.push_scope()
        try:
            is_in = self.speculate(self.for_in_head)
            if is_in is not None:
                typ, name = is_in
                collection = self.expression()
                if self.at(".."):
                    rt = self.advance()
                    collection = ast.RangeExpr(collection, self.expression(), loc=rt.loc)
                self.expect(")", "')'")
                return ast.ForInStmt(typ, name, collection, self.statement(), loc=t.loc)
            init: list[ast.Stmt] = []
            if not self.at(";"):
                while True:
                    init.append(self.for_init())
                    if not self.accept(","):
                        break
            self.expect(";", "';'")
            cond = None if self.at(";") else self.expression()
            self.expect(";", "';'")
            updates: list[ast.Stmt] = []
            if not self.at(")"):
                while True:
                    updates.append(self.simple_statement_body())
                    if not self.accept(","):
                        break
            self.expect(")", "')'")
            return ast.ForStmt(init, cond, updates, self.statement(), annos, loc=t.loc)
        finally:
            self.pop_scope()

    def for_in_head(self) -> tuple[ast.TypeRef | None, str]:
        typ = None
        if not (self.at_name() and self.peek().kind == "in"):
            typ = self.type_ref()
        name = self.name("a loop variable")
        self.expect("in")
        return typ, name

    def for_init(self) -> ast.Stmt:
        t = self.tok
        annos = self.annotations()
        if self.at_type_start() and not self.is_direct_application() and self.peek().kind not in ("=", "(", "[", "."):
            typ = self.type_ref()
            name = self.name("a variable name")
            init = self.expression() if self.accept("=") else None
            self.declare_object(name)
            return ast.VarDecl(typ, name, init, annos, loc=t.loc)
        return self.simple_statement_body()

    def switch_statement(self) -> ast.SwitchStmt:
        t = self.expect("switch")
        self.expect("(", "'('")
        expr = self.expression()
        self.expect(")", "')'")
        self.expect("{", "'{'")
        cases: list[ast.SwitchCase] = []
        while not self.accept("}"):
            lt = self.tok
            if self.accept("default"):
                label: ast.Expr = ast.DefaultExpr(loc=lt.loc)
            elif self.at(EOF):
                raise self.error_unexpected("'}'")
            else:
                label = self.expression()
            self.expect(":", "':' after the switch label")
            body = self.block() if self.at("{") else None
            cases.append(ast.SwitchCase(label, body, loc=lt.loc))
        return ast.SwitchStmt(expr, cases, loc=t.loc)

    def const_decl(self, annos: list[ast.Annotation]) -> ast.ConstDecl:
        t = self.expect("const")
        typ = self.type_ref()
        name = self.name("a constant name")
        self.expect("=", "'='")
        value = self.expression()
        self.expect(";", "';'")
        self.declare_object(name)
        return ast.ConstDecl(typ, name, value, annos, loc=t.loc)

    def var_or_instance(self, annos: list[ast.Annotation]) -> ast.Stmt | ast.Instantiation:
        """``T x [= e];`` (a VarDecl) or ``T(args) x;`` (an Instantiation, returned as-is; the
        checker sees it among the statements / locals)."""
        t = self.tok
        typ = self.type_ref()
        if self.at("("):
            return self.instantiation_rest(typ, annos, t)
        name = self.name("a variable name")
        init = None
        if self.accept("="):
            init = self.expression()
        self.expect(";", "';' or '='")
        self.declare_object(name)
        return ast.VarDecl(typ, name, init, annos, loc=t.loc)

    def instantiation_rest(self, typ: ast.TypeRef, annos: list[ast.Annotation], t: Token) -> ast.Instantiation:
        args = self.argument_list()
        name = self.name("an instance name")
        initializer = None
        if self.accept("="):
            initializer = self.obj_initializer()
        self.expect(";", "';'")
        self.declare_object(name)
        return ast.Instantiation(name, typ, args, initializer, annotations=annos, loc=t.loc)

    def obj_initializer(self) -> list[ast.Decl]:
        self.expect("{", "'{'")
        self.push_scope()
        decls: list[ast.Decl] = []
        while not self.accept("}"):
            if self.at(EOF):
                raise self.error_unexpected("'}'")
            annos = self.annotations()
            t = self.tok
            if self.at("void") or (self.at(IDENT) and not self.is_type_name(t.text)):
                decls.append(self.function_decl(annos))
                continue
            typ = self.type_ref()
            if self.at("("):
                decls.append(self.instantiation_rest(typ, annos, t))
            else:
                decls.append(self.function_rest(typ, annos, t))
        self.pop_scope()
        return decls

    # --- declarations ---------------------------------------------------------------------

    def program(self) -> ast.Program:
        decls: list[ast.Node] = []
        first = self.tok
        while not self.at(EOF):
            if self.accept(";"):
                continue
            d = self.declaration()
            if d is not None:
                decls.append(d)
        return ast.Program(decls, loc=first.loc)

    def declaration(self) -> ast.Node | None:
        annos = self.annotations()
        t = self.tok
        k = t.kind
        if k == "const":
            c = self.const_decl(annos)
            return ast.TopConstDecl(c.name, c.type, c.value, annotations=annos, loc=c.loc)
        if k in ("header", "header_union", "struct"):
            return self.struct_like(annos)
        if k == "enum":
            return self.enum_decl(annos)
        if k in ("typedef", "type"):
            return self.typedef_decl(annos)
        if k == "error":
            self.advance()
            return ast.ErrorDecl(self.identifier_list(), loc=t.loc)
        if k == "match_kind":
            self.advance()
            return ast.MatchKindDecl(self.identifier_list(), loc=t.loc)
        if k == "extern":
            return self.extern_decl(annos)
        if k == "action":
            return self.action_decl(annos)
        if k == "parser":
            return self.parser_decl(annos)
        if k == "control":
            return self.control_decl(annos)
        if k == "package":
            self.advance()
            name = self.name("a package name")
            self.declare_type(name)
            self.push_scope()
            tparams = self.opt_type_params()
            for p in tparams:
                self.declare_type(p)
            params = self.parameter_list()
            self.pop_scope()
            self.expect(";", "';'")
            return ast.PackageTypeDecl(name, tparams, params, annotations=annos, loc=t.loc)
        if k == "void" or (k == IDENT and not self.is_type_name(t.text)):
            if k == IDENT and self.peek().kind not in (IDENT, *_SOFT_KEYWORDS):
                raise self.error_unexpected("a declaration")
            return self.function_decl(annos)
        if self.at_type_start():
            typ = self.type_ref()
            if self.at("("):
                return self.instantiation_rest(typ, annos, t)
            return self.function_rest(typ, annos, t)
        raise self.error_unexpected("a declaration")

    def identifier_list(self) -> list[str]:
        self.expect("{", "'{'")
        names = [self.name()]
        while self.accept(","):
            if self.at("}"):
                break
            names.append(self.name())
        self.expect("}", "'}' or ','")
        return names

    def struct_like(self, annos: list[ast.Annotation]) -> ast.Decl:
        t = self.advance()
        name = self.name(f"a {t.kind} name")
        self.declare_type(name)
        self.push_scope()
        tparams = self.opt_type_params()
        for p in tparams:
            self.declare_type(p)
        fields = self.struct_fields()
        self.pop_scope()
        cls = {"header": ast.HeaderDecl, "header_union": ast.HeaderUnionDecl, "struct": ast.StructDecl}[t.kind]
        return cls(name, fields, tparams, annotations=annos, loc=t.loc)

    def struct_fields(self) -> list[ast.StructField]:
        self.expect("{", "'{'")
        fields: list[ast.StructField] = []
        while not self.accept("}"):
            fannos = self.annotations()
            ft = self.tok
            if ft.kind == EOF:
                raise self.error_unexpected("'}'")
            typ = self.type_ref()
            fname = self.name("a field name")
            self.expect(";", "';'")
            fields.append(ast.StructField(typ, fname, fannos, loc=ft.loc))
        return fields

    def enum_decl(self, annos: list[ast.Annotation]) -> ast.EnumDecl:
        t = self.expect("enum")
        underlying = None
        if not (self.at_name() and self.peek().kind == "{"):
            underlying = self.type_ref()
        name = self.name("an enum name")
        self.declare_type(name)
        self.expect("{", "'{'")
        members: list[ast.EnumMember] = []
        while True:
            mannos = self.annotations()
            mt = self.tok
            mname = self.name("an enum member name")
            value = None
            if underlying is not None:
                self.expect("=", "'=' (members of a serializable enum need a value)")
                value = self.expression()
            members.append(ast.EnumMember(mname, value, mannos, loc=mt.loc))
            if not self.accept(","):
                break
            if self.at("}"):
                break
        self.expect("}", "'}' or ','")
        return ast.EnumDecl(name, members, underlying, annotations=annos, loc=t.loc)

    def typedef_decl(self, annos: list[ast.Annotation]) -> ast.Decl:
        t = self.advance()
        if self.at("header", "header_union", "struct", "enum"):
            inner = self.struct_like([]) if not self.at("enum") else self.enum_decl([])
            # typedef struct S { ... } N;  -- rare; keep the inner declaration's type by name.
            typ: ast.TypeRef = ast.NamedTypeRef(inner.name, loc=inner.loc)
            log.debug("%s: typedef of an inline declaration %s", t.loc, inner.name)
        else:
            typ = self.type_ref()
        name = self.name("a type name")
        self.expect(";", "';'")
        self.declare_type(name)
        return ast.TypedefDecl(name, typ, t.kind == "type", annotations=annos, loc=t.loc)

    def extern_decl(self, annos: list[ast.Annotation]) -> ast.Decl | None:
        t = self.expect("extern")
        if self.at_name():

            def object_head() -> tuple[str, list[str]]:
                name = self.name()
                self.push_scope()
                tparams = self.opt_type_params()
                if not self.at("{"):
                    raise _Backtrack()
                return name, tparams

            if self.peek().kind == ";":
                name = self.name()
                self.advance()
                self.declare_type(name)  # forward declaration
                return None
            head = self.speculate(object_head)
            if head is not None:
                name, tparams = head
                # The extern's own name is a type (also inside, for its constructor).
                self.scopes[-2].add(name)
                for p in tparams:
                    self.declare_type(p)
                self.expect("{")
                methods: list[ast.MethodProto] = []
                while not self.accept("}"):
                    if self.at(EOF):
                        raise self.error_unexpected("'}'")
                    methods.append(self.method_proto(name))
                self.pop_scope()
                return ast.ExternDecl(name, tparams, methods, annotations=annos, loc=t.loc)
        ret, name, tparams, params = self.function_prototype()
        self.expect(";", "';'")
        return ast.ExternFunctionDecl(name, ret, params, tparams, annotations=annos, loc=t.loc)

    def function_prototype(self) -> tuple[ast.TypeRef, str, list[str], list[ast.Param]]:
        ret = self.type_or_void()
        name = self.name("a function name")
        self.push_scope()
        tparams = self.opt_type_params()
        for p in tparams:
            self.declare_type(p)
        params = self.parameter_list()
        self.pop_scope()
        return ret, name, tparams, params

    def method_proto(self, extern_name: str) -> ast.MethodProto:
        annos = self.annotations()
        t = self.tok
        if t.kind == IDENT and t.text == extern_name and self.peek().kind == "(":
            self.advance()
            params = self.parameter_list()
            self.expect(";", "';'")
            return ast.MethodProto(extern_name, None, params, annotations=annos, loc=t.loc)
        abstract = bool(self.accept("abstract"))
        ret, name, tparams, params = self.function_prototype()
        self.expect(";", "';'")
        return ast.MethodProto(name, ret, params, tparams, abstract, annos, loc=t.loc)

    def function_decl(self, annos: list[ast.Annotation]) -> ast.FunctionDecl:
        t = self.tok
        ret = self.type_or_void()
        return self.function_rest(ret, annos, t)

    def function_rest(self, ret: ast.TypeRef, annos: list[ast.Annotation], t: Token) -> ast.FunctionDecl:
        name = self.name("a function name")
        self.push_scope()
        tparams = self.opt_type_params()
        for p in tparams:
            self.declare_type(p)
        params = self.parameter_list()
        body = self.block()
        self.pop_scope()
        return ast.FunctionDecl(name, ret, params, body, tparams, annotations=annos, loc=t.loc)

    def action_decl(self, annos: list[ast.Annotation]) -> ast.ActionDecl:
        t = self.expect("action")
        name = self.name("an action name")
        params = self.parameter_list()
        body = self.block()
        return ast.ActionDecl(name, params, body, annotations=annos, loc=t.loc)

    def block_type_head(self) -> tuple[str, list[str], list[ast.Param]]:
        """``parser|control Name<T...>(params)``; leaves a scope with the type params open."""
        self.advance()
        name = self.name("a name")
        self.declare_type(name)
        self.push_scope()
        tparams = self.opt_type_params()
        for p in tparams:
            self.declare_type(p)
        params = self.parameter_list()
        return name, tparams, params

    def parser_decl(self, annos: list[ast.Annotation]) -> ast.Decl:
        t = self.tok
        name, tparams, params = self.block_type_head()
        if self.accept(";"):
            self.pop_scope()
            return ast.ParserTypeDecl(name, tparams, params, annotations=annos, loc=t.loc)
        ctor_params = self.parameter_list() if self.at("(") else []
        self.expect("{", "'{' or ';'")
        locals_: list[ast.Node] = []
        states: list[ast.ParserState] = []
        while not self.accept("}"):
            if self.at(EOF):
                raise self.error_unexpected("'}'")
            lannos = self.annotations()
            lt = self.tok
            if lt.kind == "state":
                states.append(self.parser_state(lannos))
            elif states:
                raise self.error_unexpected("'state' or '}'")
            elif lt.kind == "const":
                locals_.append(self.const_decl(lannos))
            elif lt.kind == "value_set":
                locals_.append(self.value_set_decl(lannos))
            elif self.at_type_start():
                locals_.append(self.var_or_instance(lannos))
            else:
                raise self.error_unexpected("a parser local declaration or 'state'")
        self.pop_scope()
        return ast.ParserDecl(name, tparams, params, ctor_params, locals_, states, annotations=annos, loc=t.loc)

    def value_set_decl(self, annos: list[ast.Annotation]) -> ast.ValueSetDecl:
        t = self.expect("value_set")
        self.expect("<", "'<'")
        elem = self.type_arg()
        self.close_angle()
        self.expect("(", "'('")
        size = self.expression()
        self.expect(")", "')'")
        name = self.name("a value set name")
        self.expect(";", "';'")
        return ast.ValueSetDecl(name, elem, size, annotations=annos, loc=t.loc)

    def parser_state(self, annos: list[ast.Annotation]) -> ast.ParserState:
        t = self.expect("state")
        name = self.name("a state name")
        self.expect("{", "'{'")
        self.push_scope()
        stmts: list[ast.Stmt] = []
        transition: str | ast.SelectExpr | None = None
        while True:
            if self.at("}"):
                break
            if self.at(EOF):
                raise self.error_unexpected("'}'")
            if self.at("transition"):
                self.advance()
                transition = self.state_expression()
                if not self.at("}"):
                    raise self.error_unexpected("'}' after the transition statement")
                break
            stmts.append(self.statement())
        self.expect("}")
        self.pop_scope()
        return ast.ParserState(name, stmts, transition, annos, loc=t.loc)

    def state_expression(self) -> str | ast.SelectExpr:
        if self.at("select"):
            return self.select_expression()
        name = self.name("a state name or 'select'")
        self.expect(";", "';'")
        return name

    def select_expression(self) -> ast.SelectExpr:
        t = self.expect("select")
        self.expect("(", "'('")
        exprs: list[ast.Expr] = []
        if not self.at(")"):
            exprs.append(self.expression())
            while self.accept(","):
                exprs.append(self.expression())
        self.expect(")", "')' or ','")
        self.expect("{", "'{'")
        cases: list[ast.SelectCase] = []
        while not self.accept("}"):
            if self.at(EOF):
                raise self.error_unexpected("'}'")
            ct = self.tok
            ks = self.keyset()
            self.expect(":", "':' after the keyset")
            nxt = self.name("a state name")
            self.expect(";", "';'")
            cases.append(ast.SelectCase(ks, nxt, loc=ct.loc))
        # A select is the last thing in a state; an optional ';' after '}' is harmless.
        self.accept(";")
        return ast.SelectExpr(exprs, cases, loc=t.loc)

    def control_decl(self, annos: list[ast.Annotation]) -> ast.Decl:
        t = self.tok
        name, tparams, params = self.block_type_head()
        if self.accept(";"):
            self.pop_scope()
            return ast.ControlTypeDecl(name, tparams, params, annotations=annos, loc=t.loc)
        ctor_params = self.parameter_list() if self.at("(") else []
        self.expect("{", "'{' or ';'")
        locals_: list[ast.Node] = []
        while True:
            lannos = self.annotations()
            lt = self.tok
            if lt.kind == "apply" and self.peek().kind == "{":
                break
            if lt.kind == EOF or lt.kind == "}":
                raise self.error_unexpected("'apply'")
            if lt.kind == "const":
                locals_.append(self.const_decl(lannos))
            elif lt.kind == "action":
                locals_.append(self.action_decl(lannos))
            elif lt.kind == "table":
                locals_.append(self.table_decl(lannos))
            elif lt.kind == "void" or (
                lt.kind == IDENT and not self.is_type_name(lt.text) and self.peek().kind == IDENT
            ):
                locals_.append(self.function_decl(lannos))
            elif self.at_type_start():
                typ_start = self.tok
                typ = self.type_ref()
                if self.at("("):
                    locals_.append(self.instantiation_rest(typ, lannos, typ_start))
                elif self.at_name() and self.peek().kind in ("(", "<"):
                    locals_.append(self.function_rest(typ, lannos, typ_start))
                else:
                    vname = self.name("a variable name")
                    init = self.expression() if self.accept("=") else None
                    self.expect(";", "';' or '='")
                    self.declare_object(vname)
                    locals_.append(ast.VarDecl(typ, vname, init, lannos, loc=typ_start.loc))
            else:
                raise self.error_unexpected("a control local declaration or 'apply'")
        self.expect("apply")
        body = self.block()
        self.expect("}", "'}' closing the control")
        self.pop_scope()
        return ast.ControlDecl(name, tparams, params, ctor_params, locals_, body, annotations=annos, loc=t.loc)

    # --- tables ---------------------------------------------------------------------------

    def table_decl(self, annos: list[ast.Annotation]) -> ast.TableDecl:
        t = self.expect("table")
        name = self.name("a table name")
        table = ast.TableDecl(name, annotations=annos, loc=t.loc)
        self.expect("{", "'{'")
        while not self.accept("}"):
            if self.at(EOF):
                raise self.error_unexpected("'}'")
            self.table_property(table)
        return table

    def table_property(self, table: ast.TableDecl) -> None:
        pannos = self.annotations()
        is_const = bool(self.accept("const"))
        t = self.tok
        if not (self.at_name() or self.at("key", "actions", "entries")):
            raise self.error_unexpected("a table property")
        pname = self.advance().text
        self.expect("=", "'='")
        if pname == "key" and not is_const:
            self.expect("{", "'{'")
            keys: list[ast.KeyElement] = []
            while not self.accept("}"):
                if self.at(EOF):
                    raise self.error_unexpected("'}'")
                kannos = self.annotations()
                kt = self.tok
                expr = self.expression()
                self.expect(":", "':' and a match kind")
                mk = self.name("a match kind")
                kannos += self.annotations()
                self.expect(";", "';'")
                keys.append(ast.KeyElement(expr, mk, kannos, loc=kt.loc))
            table.key = keys
            return
        if pname == "actions" and not is_const:
            self.expect("{", "'{'")
            while not self.accept("}"):
                if self.at(EOF):
                    raise self.error_unexpected("'}'")
                aannos = self.annotations()
                ref = self.action_ref()
                ref.annotations = aannos + ref.annotations
                self.expect(";", "';'")
                table.actions.append(ref)
            return
        if pname == "entries":
            self.expect("{", "'{'")
            entries: list[ast.TableEntry] = []
            while not self.accept("}"):
                if self.at(EOF):
                    raise self.error_unexpected("'}'")
                entries.append(self.table_entry())
            table.entries = entries
            table.entries_const = is_const
            self.accept(";")
            return
        if pname == "default_action":
            table.default_action = self.action_ref()
            table.default_action.annotations = pannos + table.default_action.annotations
            table.default_action_const = is_const
            self.expect(";", "';'")
            return
        value = self.expression()
        self.expect(";", "';'")
        table.properties.append(ast.TableProperty(pname, value, is_const, pannos, loc=t.loc))

    def action_ref(self) -> ast.ActionRef:
        t = self.tok
        is_global = bool(self.accept("."))
        name = self.name("an action name")
        args = self.argument_list() if self.at("(") else []
        return ast.ActionRef(name, args, is_global, self.annotations(), loc=t.loc)

    def table_entry(self) -> ast.TableEntry:
        eannos = self.annotations()
        t = self.tok
        is_const = bool(self.accept("const"))
        priority = None
        if self.at(IDENT) and self.tok.text == "priority" and self.peek().kind == "=":
            self.advance()
            self.advance()
            priority = self.expression()
            self.expect(":", "':' after the priority")
        ks = self.keyset()
        # A tuple keyset gives one keyset per key element; anything else is a single key.
        keysets = ks.elems if isinstance(ks, ast.ListExpr) else [ks]
        self.expect(":", "':' after the keyset")
        action = self.action_ref()
        self.expect(";", "';'")
        return ast.TableEntry(keysets, action, priority, is_const, eannos + action.annotations, loc=t.loc)



def parse_program(text: str, filename: str = "<input>") -> ast.Program:
    """Parse preprocessed P4_16 text into a Program; raises CompileError on any problem."""
    tokens = tokenize(text, filename)
    parser = Parser(tokens, text)
    try:
        return parser.program()
    except CompileError:
        raise
    except RecursionError as exc:
        raise CompileError("program nested too deeply to parse", parser.tok.loc) from exc
    except Exception as exc:  # a parser bug must still read as a compile error, not a traceback
        log.debug("internal parser error", exc_info=True)
        raise CompileError(f"internal parser error ({type(exc).__name__}: {exc})", parser.tok.loc) from exc


def parse_file(
    path: str | os.PathLike[str],
    include_dirs: Iterable[str | os.PathLike[str]] = (),
    defines: Iterable[str] | Mapping[str, str | None] = (),
) -> ast.Program:
    """Preprocess ``path`` with cpp (our p4include first, then ``include_dirs``; ``defines``
    as NAME or NAME=VALUE) and parse the result."""
    text = preprocess(path, include_dirs, defines)
    return parse_program(text, str(path))
