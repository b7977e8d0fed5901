"""A table applied twice on one path through a control: p4c-bm2-ss refuses the program.

BMv2 runs a control as a graph of tables and conditions in which each table is one node, so
p4c-bm2-ss cannot compile a control where, along some path, a table is applied and then
applied again ("contains a path from table t back to itself"); a table applied in both branches
of an ``if`` (or in several ``switch`` cases) is fine. This check walks each control's apply
block the same way: the tables applied so far on a path, branches merged after a conditional.
"""

from __future__ import annotations

import dataclasses

from . import ast
from .errors import CompileError


def _applies(node: object, tables: set[str], out: list[tuple[str, ast.Loc | None]]) -> None:
    """Tables applied in ``node``, in source order (operands before the call that uses them)."""
    if isinstance(node, list):
        for x in node:
            _applies(x, tables, out)
        return
    if not dataclasses.is_dataclass(node) or isinstance(node, type):
        return
    for f in dataclasses.fields(node):
        if f.name not in ("loc", "annotations"):
            _applies(getattr(node, f.name), tables, out)
    if isinstance(node, ast.CallExpr) and isinstance(node.func, ast.MemberExpr) and node.func.member == "apply" \
            and isinstance(node.func.expr, ast.PathExpr) and node.func.expr.name in tables:
        out.append((node.func.expr.name, node.loc))


def _expr(node: object, path: frozenset[str], tables: set[str], control: str) -> frozenset[str]:
    found: list[tuple[str, ast.Loc | None]] = []
    _applies(node, tables, found)
    for name, loc in found:
        if name in path:
            raise CompileError(f"Program can not be implemented on this target since it contains a path from "
                               f"table {control}.{name} back to itself (BMv2 applies a table once per path)", loc)
        path = path | {name}
    return path


def _stmts(stmts: list[ast.Stmt], path: frozenset[str], tables: set[str], control: str) -> frozenset[str]:
    for s in stmts:
        if isinstance(s, ast.BlockStmt):
            path = _stmts(s.stmts, path, tables, control)
        elif isinstance(s, ast.IfStmt):
            path = _expr(s.cond, path, tables, control)
            then = _stmts([s.then], path, tables, control)
            other = _stmts([s.other], path, tables, control) if s.other is not None else path
            path = then | other
        elif isinstance(s, ast.SwitchStmt):
            path = _expr(s.expr, path, tables, control)
            merged = path
            for case in s.cases:
                if case.body is not None:
                    merged = merged | _stmts(case.body.stmts, path, tables, control)
            path = merged
        else:
            path = _expr(s, path, tables, control)
    return path


def check_table_paths(program: ast.Program) -> None:
    for d in program.decls:
        if isinstance(d, ast.ControlDecl):
            tables = {x.name for x in d.locals if isinstance(x, ast.TableDecl)}
            if tables:
                _stmts(d.body.stmts, frozenset(), tables, d.name)
