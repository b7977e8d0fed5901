"""Statement translation: blocks, assignments, conditionals, switch, exit and return."""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import ast
from .classes import copy_code, default_value_code
from .exprs import LValue, TExpr
from .symbols import FnCtx, Scope, Sym, semantic_error
from .types import (
    ActionEnumT,
    BoolT,
    EnumT,
    ErrorT,
    HeaderT,
    StackT,
    StructLikeT,
    VoidT,
    strip_newtype,
)

if TYPE_CHECKING:
    from .elaborate import Compiler


class StmtMixin:
    """Statement translation, mixed into :class:`Compiler`."""

    def block(self: Compiler, stmts: list[ast.Stmt], sc: Scope, fc: FnCtx) -> None:
        inner = Scope(sc)
        start = len(fc.em.lines)
        for s in stmts:
            self.stmt(s, inner, fc)
        if len(fc.em.lines) == start:
            fc.em.line("pass")

    def stmt(self: Compiler, s: ast.Stmt, sc: Scope, fc: FnCtx) -> None:
        em = fc.em
        if isinstance(s, ast.AssignStmt):
            lv = self.lvalue(s.lhs, sc, fc)
            if isinstance(strip_newtype(lv.type), (StructLikeT, StackT)):
                self.check_whole_element_write(s.lhs, sc)
            te = self.expr(s.rhs, sc, fc, lv.type)
            if isinstance(strip_newtype(lv.type), (StructLikeT, StackT)) and not isinstance(s.rhs, (ast.ListExpr, ast.StructInitExpr, ast.InvalidExpr)):
                # aggregate assignment copies: evaluate first so ``a = a`` style aliasing is safe
                pass
            self.assign_to(lv, te, fc, s.loc)
            if isinstance(strip_newtype(lv.type), HeaderT) and lv.slice is None:
                union = self.union_of(s.lhs, sc, fc)
                if union is not None:
                    em.line(f"if {lv.target}._valid: {union}._valid_only({lv.target})")
        elif isinstance(s, ast.CallStmt):
            te = self.call(s.call, sc, fc, None)
            if te.code and te.code != "None":
                em.line(te.code)
        elif isinstance(s, ast.BlockStmt):
            self.block(s.stmts, sc, fc)
        elif isinstance(s, ast.IfStmt):
            c = self.expr(s.cond, sc, fc, BoolT())
            if c.is_const:
                chosen = s.then if c.const else s.other
                if chosen is not None:
                    em.line("if True:")
                    with em.indent():
                        self.block([chosen], sc, fc)
                return
            em.line(f"if {c.code}:")
            with em.indent():
                self.block([s.then], sc, fc)
            if s.other is not None:
                em.line("else:")
                with em.indent():
                    self.block([s.other], sc, fc)
        elif isinstance(s, ast.SwitchStmt):
            self.switch(s, sc, fc)
        elif isinstance(s, ast.ExitStmt):
            if fc.where in ("parser",):
                raise semantic_error(s.loc, "exit is not allowed in a parser")
            em.line("raise ExitSignal()")
        elif isinstance(s, ast.ReturnStmt):
            self.return_stmt(s, sc, fc)
        elif isinstance(s, ast.EmptyStmt):
            pass
        elif isinstance(s, ast.CompoundAssignStmt):
            self.compound_assign(s, sc, fc)
        elif isinstance(s, ast.ForStmt):
            self.for_loop(s, sc, fc)
        elif isinstance(s, (ast.BreakStmt, ast.ContinueStmt)):
            self.loop_jump(s, fc)
        elif isinstance(s, ast.ForInStmt):
            self.for_in_loop(s)
        elif isinstance(s, ast.VarDecl):
            self.local_var(s, sc, fc)
        elif isinstance(s, ast.ConstDecl):
            t = self.resolve_type(s.type, sc)
            te = self.expr(s.value, sc, None, t)
            sc.declare(Sym("const", s.name, t, value=te.const), s.loc)
        else:
            raise semantic_error(s.loc, f"unsupported statement {type(s).__name__}")

    def local_var(self: Compiler, s: ast.VarDecl, sc: Scope, fc: FnCtx) -> None:
        t = self.resolve_type(s.type, sc)
        name = fc.fresh_local(s.name)
        sym = sc.declare(Sym("var", s.name, t, code=name), s.loc)
        if s.init is not None:
            te = self.expr(s.init, sc, fc, t)
            if isinstance(strip_newtype(t), (StructLikeT, StackT)):
                fc.em.line(f"{name} = {default_value_code(t)}")
                self.assign_to(LValue(name, t), te, fc, s.loc)
            else:
                fc.em.line(f"{name} = {te.code}")
        else:
            fc.em.line(f"{name} = {default_value_code(t)}")
        del sym

    def return_stmt(self: Compiler, s: ast.ReturnStmt, sc: Scope, fc: FnCtx) -> None:
        em = fc.em
        if s.value is not None:
            if fc.return_type is None or isinstance(fc.return_type, VoidT):
                raise semantic_error(s.loc, "return with a value in a block that returns nothing")
            te = self.expr(s.value, sc, fc, fc.return_type)
            val = copy_code(fc.return_type, te.code)
            if fc.out_params:
                em.line(f"return ({val}, {', '.join(fc.out_params)})")
            else:
                em.line(f"return {val}")
            return
        if fc.return_type is not None and not isinstance(fc.return_type, VoidT):
            raise semantic_error(s.loc, "return needs a value here")
        if fc.out_params:
            em.line(f"return ({', '.join(fc.out_params)},)" if len(fc.out_params) == 1 else f"return ({', '.join(fc.out_params)})")
        else:
            em.line("return")

    def switch(self: Compiler, s: ast.SwitchStmt, sc: Scope, fc: FnCtx) -> None:
        em = fc.em
        te = self.expr(s.expr, sc, fc)
        st = strip_newtype(te.type)
        tmp = em.temp("sw")
        em.line(f"{tmp} = {te.code}")
        pending: list[str] = []
        first = True
        seen_default = False
        for case in s.cases:
            if seen_default:
                # p4c rejects any label after default, even one that shares default's body
                raise semantic_error(case.label.loc, "the default label of a switch must be the last one")
            if isinstance(case.label, ast.DefaultExpr):
                cond = "True"
                seen_default = True
            elif isinstance(st, ActionEnumT):
                if not isinstance(case.label, ast.PathExpr):
                    raise semantic_error(case.label.loc, "an action_run label must be an action name")
                action = self.table_action_by_name(st.table, case.label.name, case.label.loc)
                cond = f"{tmp} == {action.pyname!r}"
            else:
                if not isinstance(st, (EnumT, ErrorT)) and not self.is_bits_like(st):
                    raise semantic_error(s.expr.loc, f"cannot switch on a value of type {te.type}")
                lab = self.expr(case.label, sc, None, te.type)
                cond = f"{tmp} == {lab.code}"
            pending.append(cond)
            if case.body is None:
                continue  # falls through to the next labelled body
            conds = " or ".join(f"({c})" for c in pending) if len(pending) > 1 else pending[0]
            if "True" in pending:
                conds = "True"
            em.line(f"{'if' if first else 'elif'} {conds}:")
            first = False
            with em.indent():
                self.block(case.body.stmts, sc, fc)
            pending = []
        if pending and not first:
            pass
        del seen_default

    def call_result(self: Compiler, te: TExpr) -> TExpr:
        return te
