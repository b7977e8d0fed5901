"""What a generic function may do with a value of one of its type parameters.

p4sim compiles a generic function once per set of type arguments (elaborate.function_instance),
so its body is only ever checked with concrete types: ``T f<T>(in T x) { return x + 1; }`` would
compile for ``f(8w1)``, and a function nobody calls would not be checked at all. p4c type-checks
the body once, generically, where a value of type ``T`` can only be copied (assigned, passed,
returned, chosen by ``?:``): any operator, cast, slice, member or condition on it is a type error,
called or not. This module refuses the same, with p4c's words.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

from . import ast
from .symbols import semantic_error

_COMPARISONS = ("<", ">", "<=", ">=")


def check_generic_function(d: ast.FunctionDecl) -> None:
    """Raise a CompileError where ``d``'s body uses a value of a type parameter other than by copying it."""
    if not d.type_params:
        return
    tvars = set(d.type_params)
    typed: dict[str, str] = {}  # variable -> its type parameter
    untyped: set[str] = set()  # declared at least once with another type: not judged (shadowing)
    decls: list[tuple[str, ast.TypeRef]] = [(p.name, p.type) for p in d.params]
    decls += [(v.name, v.type) for v in _nodes(d.body) if isinstance(v, ast.VarDecl)]
    for name, tref in decls:
        if isinstance(tref, ast.NamedTypeRef) and not tref.is_global and tref.name in tvars:
            typed.setdefault(name, tref.name)
        else:
            untyped.add(name)
    for name in untyped:
        typed.pop(name, None)

    def tvar_of(e: ast.Expr) -> str | None:
        """The type parameter that is ``e``'s type, if it is one."""
        if isinstance(e, ast.PathExpr) and not e.is_global:
            return typed.get(e.name)
        if isinstance(e, ast.TernaryExpr):
            return tvar_of(e.then) or tvar_of(e.other)
        return None

    def text(e: ast.Expr) -> str:
        return e.name if isinstance(e, ast.PathExpr) else "?:"

    for n in _nodes(d.body):
        if isinstance(n, ast.BinaryExpr):
            for operand in (n.left, n.right):
                t = tvar_of(operand)
                if t is None:
                    continue
                if n.op in ("==", "!="):
                    raise semantic_error(n.loc, f"{n.op}: values of a type variable ({t}) cannot be compared")
                if n.op in _COMPARISONS:
                    raise semantic_error(n.loc, f"{n.op}: not defined on values of type variable {t}")
                raise semantic_error(n.loc, f"{n.op}: cannot be applied to expression '{text(operand)}' with type "
                                     f"'{t}' (a type parameter of {d.name}: its values can only be copied)")
        elif isinstance(n, ast.UnaryExpr) and (t := tvar_of(n.operand)) is not None:
            raise semantic_error(n.loc, f"Cannot apply operation '{n.op}' to expression '{text(n.operand)}' "
                                 f"with type '{t}'")
        elif isinstance(n, ast.CompoundAssignStmt) and (t := tvar_of(n.lhs)) is not None:
            raise semantic_error(n.loc, f"{n.op}=: cannot be applied to '{text(n.lhs)}' with type '{t}'")
        elif isinstance(n, ast.CastExpr):
            target = n.type.name if isinstance(n.type, ast.NamedTypeRef) and n.type.name in tvars else None
            if target is not None:
                raise semantic_error(n.loc, f"{target}: cast not supported (a type parameter of {d.name})")
            if (t := tvar_of(n.expr)) is not None:
                raise semantic_error(n.loc, f"cast of '{text(n.expr)}' with type '{t}' not supported "
                                     f"(a type parameter of {d.name})")
        elif isinstance(n, ast.SliceExpr | ast.IndexExpr) and (t := tvar_of(n.expr)) is not None:
            what = "bit extraction" if isinstance(n, ast.SliceExpr) else "indexing"
            raise semantic_error(n.loc, f"{text(n.expr)}: {what} is not defined on type variable {t}")
        elif isinstance(n, ast.MemberExpr) and (t := tvar_of(n.expr)) is not None:
            raise semantic_error(n.loc, f"{text(n.expr)}.{n.member}: type variable {t} has no members")
        elif isinstance(n, ast.IfStmt) and (t := tvar_of(n.cond)) is not None:
            raise semantic_error(n.cond.loc, f"if: the condition '{text(n.cond)}' has type '{t}', not bool")


def _nodes(node: ast.Node) -> Iterator[ast.Node]:
    """``node`` and every node under it, parents first."""
    stack: list[ast.Node] = [node]
    while stack:
        n = stack.pop()
        yield n
        for f in dataclasses.fields(n):
            value = getattr(n, f.name)
            for v in value if isinstance(value, list | tuple) else (value,):
                if isinstance(v, tuple):  # StructInitExpr's (name, value) pairs
                    stack.extend(x for x in v if isinstance(x, ast.Node))
                elif isinstance(v, ast.Node):
                    stack.append(v)
