"""Scopes, symbols and the line emitter the translator writes generated Python into."""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass, field
from typing import Any

from . import ast
from .errors import CompileError
from .types import Type


@dataclass
class Sym:
    """A name in scope.

    kind: "const" (``value``), "var" (``code`` reads/writes it), "type" (``type``, or ``decl``
    for a generic declaration still to be specialized), "action", "table", "instance",
    "function", "extfunc", "valueset", "block" (parser/control declaration), "package".
    """

    kind: str
    name: str
    type: Type | None = None
    code: str = ""
    value: Any = None
    decl: Any = None
    info: Any = None
    readonly: bool = False


class Scope:
    def __init__(self, parent: Scope | None = None, kind: str = "block") -> None:
        self.parent = parent
        self.kind = kind
        self.names: dict[str, Sym] = {}

    def declare(self, sym: Sym, loc: ast.Loc | None = None) -> Sym:
        old = self.names.get(sym.name)
        # functions and extern functions may be overloaded; anything else declared twice in
        # one scope is an error, as in p4c
        if old is not None and not (old.kind == sym.kind and sym.kind in ("extfunc", "function")):
            if loc is None:
                loc = getattr(sym.decl, "loc", None)
            raise semantic_error(loc, f"{sym.name}: duplicate declaration (the first one is of a {old.kind})")
        self.names[sym.name] = sym
        return sym

    def lookup(self, name: str) -> Sym | None:
        scope: Scope | None = self
        while scope is not None:
            sym = scope.names.get(name)
            if sym is not None:
                return sym
            scope = scope.parent
        return None

    def root(self) -> Scope:
        scope = self
        while scope.parent is not None:
            scope = scope.parent
        return scope


_IDENT_BAD = re.compile(r"[^0-9A-Za-z_]")


def py_ident(name: str) -> str:
    """A Python identifier for a P4 name (P4 identifiers are Python-safe but for keywords)."""
    name = _IDENT_BAD.sub("_", name)
    if keyword.iskeyword(name) or keyword.issoftkeyword(name) or name[:1].isdigit():
        return name + "_"
    if name.startswith(("_", "w_")) or name == "set_valid":
        # the generated value classes' own names (_valid, _copy, _emit, w_<member>, set_valid...)
        return name + "_f"
    return name


class NameMaker:
    """Hands out unique Python names for generated globals."""

    def __init__(self) -> None:
        self.used: set[str] = set()

    def make(self, prefix: str, hint: str) -> str:
        base = f"{prefix}_{_IDENT_BAD.sub('_', hint)}"
        name = base
        n = 1
        while name in self.used:
            n += 1
            name = f"{base}_{n}"
        self.used.add(name)
        return name


@dataclass
class Emitter:
    """Accumulates indented lines of one generated Python function."""

    lines: list[str] = field(default_factory=list)
    depth: int = 1
    temps: int = 0

    def line(self, text: str) -> None:
        self.lines.append("    " * self.depth + text)

    def temp(self, hint: str = "t") -> str:
        self.temps += 1
        return f"_{hint}{self.temps}"

    def indent(self) -> _Indent:
        return _Indent(self)


class _Indent:
    def __init__(self, em: Emitter) -> None:
        self.em = em

    def __enter__(self) -> None:
        self.em.depth += 1

    def __exit__(self, *exc: object) -> None:
        self.em.depth -= 1


@dataclass
class FnCtx:
    """What the translator knows about the function body it is generating."""

    em: Emitter
    where: str  # "control" | "action" | "parser" | "function" | "deparser"
    return_type: Type | None = None
    out_params: list[str] = field(default_factory=list)  # python names of scalar out/inout params
    block_name: str = ""
    local_counter: int = 0

    def fresh_local(self, name: str) -> str:
        self.local_counter += 1
        return f"v_{py_ident(name)}_{self.local_counter}"


def annotation(annos: list[ast.Annotation], name: str) -> ast.Annotation | None:
    for a in annos:
        if a.name == name:
            return a
    return None


def semantic_error(loc: ast.Loc | None, message: str) -> CompileError:
    """A CompileError for a problem found after parsing (argument order: where, then what)."""
    return CompileError(message, loc)
