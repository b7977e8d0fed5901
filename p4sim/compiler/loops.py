"""P4_16 1.2.5 statements: compound assignment and ``for`` loops (with ``break``/``continue``).

A compound assignment ``lhs op= rhs`` is ``lhs = lhs op rhs`` with ``lhs`` evaluated once: an
index with a call in it (``a[f()] += 1``) is evaluated first into a temporary, then ``rhs``.

``for (init; cond; updates) body`` runs as p4c-bm2-ss compiles it for BMv2, inside actions
(jumps between primitives). Elsewhere p4c-bm2-ss 1.2.5 accepts a loop but BMv2 runs its body
once, unconditionally: p4sim refuses those (p4c's grammar has no loops in parser states). ``for (x in collection)`` is refused as
p4c-bm2-ss refuses it ("BMV2 does not support for-in loops"). The generated Python is::

    <init>
    first = True
    while True:
        if not first:          # so that `continue` still runs the updates
            <updates>
        first = False
        if not <cond>: break
        <body>
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from . import ast
from .symbols import FnCtx, Scope, Sym, semantic_error
from .types import BoolT

if TYPE_CHECKING:
    from .elaborate import Compiler


def _has_call(e: ast.Node) -> bool:
    if isinstance(e, ast.CallExpr):
        return True
    for f in dataclasses.fields(e):
        v = getattr(e, f.name)
        for x in v if isinstance(v, list) else [v]:
            if isinstance(x, ast.Node) and _has_call(x):
                return True
    return False


class LoopMixin:
    """Compound assignment and loops, mixed into :class:`Compiler`."""

    def compound_assign(self: Compiler, s: ast.CompoundAssignStmt, sc: Scope, fc: FnCtx) -> None:
        inner = Scope(sc)
        lhs = self._once(s.lhs, inner, fc)
        self.stmt(ast.AssignStmt(lhs, ast.BinaryExpr(s.op, lhs, s.rhs, loc=s.loc), loc=s.loc), inner, fc)

    def _once(self: Compiler, e: ast.Expr, sc: Scope, fc: FnCtx) -> ast.Expr:
        """``e`` with each index that calls something replaced by a temporary holding its value
        (evaluated here, outermost base first)."""
        if isinstance(e, ast.MemberExpr):
            return dataclasses.replace(e, expr=self._once(e.expr, sc, fc))
        if isinstance(e, ast.SliceExpr):
            return dataclasses.replace(e, expr=self._once(e.expr, sc, fc))
        if isinstance(e, ast.IndexExpr):
            base = self._once(e.expr, sc, fc)
            index = e.index
            if _has_call(index):
                te = self.expr(index, sc, fc)
                name = f"__index{fc.local_counter + 1}"
                code = fc.fresh_local("index")
                fc.em.line(f"{code} = {te.code}")
                sc.declare(Sym("var", name, te.type, code=code, readonly=True), e.loc)
                index = ast.PathExpr(name, loc=index.loc)
            return dataclasses.replace(e, expr=base, index=index)
        return e

    def for_loop(self: Compiler, s: ast.ForStmt, sc: Scope, fc: FnCtx) -> None:
        if fc.where == "parser":
            raise semantic_error(s.loc, "for loops are not allowed in a parser")
        if fc.where != "action":
            # p4c-bm2-ss 1.2.5 compiles a loop in an apply block or a function into its body run
            # once, unconditionally (no test, no repeat): refused rather than run otherwise
            raise semantic_error(s.loc, "BMv2 runs for loops only inside actions (p4c-bm2-ss compiles one "
                                 "elsewhere to its body run once): move the loop into an action")
        em = fc.em
        loop_sc = Scope(sc)
        for st in s.init:
            self.stmt(st, loop_sc, fc)
        first = em.temp("first") if s.updates else None
        if first:
            em.line(f"{first} = True")
        em.line("while True:")
        depth = getattr(fc, "loop_depth", 0)
        with em.indent():
            if first:
                em.line(f"if not {first}:")
                with em.indent():
                    for u in s.updates:
                        self.stmt(u, loop_sc, fc)
                em.line(f"{first} = False")
            if s.cond is not None:
                c = self.expr(s.cond, loop_sc, fc, BoolT())
                em.line(f"if not ({c.code}):")
                with em.indent():
                    em.line("break")
            fc.loop_depth = depth + 1  # type: ignore[attr-defined]
            try:
                self.block([s.body], loop_sc, fc)
            finally:
                fc.loop_depth = depth  # type: ignore[attr-defined]

    def loop_jump(self: Compiler, s: ast.BreakStmt | ast.ContinueStmt, fc: FnCtx) -> None:
        word = "break" if isinstance(s, ast.BreakStmt) else "continue"
        if not getattr(fc, "loop_depth", 0):
            raise semantic_error(s.loc, f"{word} outside a loop")
        fc.em.line(word)

    def for_in_loop(self: Compiler, s: ast.ForInStmt) -> None:
        raise semantic_error(s.loc, "BMV2 does not support for-in loops (p4c-bm2-ss refuses them too)")
