"""Direct application of a parser or control type: ``MyControl.apply(...)`` with no instance.

The P4_16 spec (direct type invocation) makes it the same as instantiating the type with no
constructor arguments where it is applied. p4c names that instance after the type, in the block
that applies it (tables of ``Sub`` applied from ingress ``I`` are ``I.Sub.t``), and refuses a
second direct application of a type with control-plane objects in the same block (the two
instances would share their names). This pass rewrites the syntax tree before it is checked:
each block gets one local instance ``@name("Sub") Sub() __direct_Sub;`` per type it applies
directly, and the calls name that instance. It is idempotent, so the device config (the tree
after the rewrite) elaborates again to the same program.
"""

from __future__ import annotations

import dataclasses

from . import ast
from .errors import CompileError

_PREFIX = "__direct_"


def _walk(node: object, found: list[ast.CallExpr]) -> None:
    if isinstance(node, ast.CallExpr) and isinstance(node.func, ast.MemberExpr) and node.func.member == "apply" \
            and isinstance(node.func.expr, ast.PathExpr):
        found.append(node)
    if isinstance(node, list):
        for x in node:
            _walk(x, found)
    elif dataclasses.is_dataclass(node) and not isinstance(node, type):
        for f in dataclasses.fields(node):
            if f.name not in ("loc", "annotations"):
                _walk(getattr(node, f.name), found)


def _has_control_plane_objects(decl: ast.ParserDecl | ast.ControlDecl) -> bool:
    return any(isinstance(x, (ast.TableDecl, ast.Instantiation, ast.ValueSetDecl)) for x in decl.locals)


def instantiate_direct_calls(program: ast.Program) -> None:
    blocks = {d.name: d for d in program.decls if isinstance(d, (ast.ParserDecl, ast.ControlDecl))}
    for block in blocks.values():
        local_names = {getattr(x, "name", None) for x in block.locals} | {p.name for p in block.params}
        body: object = block.body if isinstance(block, ast.ControlDecl) else block.states
        calls: list[ast.CallExpr] = []
        _walk(body, calls)
        made: dict[str, int] = {}
        for call in calls:
            assert isinstance(call.func, ast.MemberExpr) and isinstance(call.func.expr, ast.PathExpr)
            path = call.func.expr
            target = blocks.get(path.name)
            if target is None or path.name in local_names:
                continue  # an instance, a parameter, or not a parser/control type
            if target.ctor_params:
                raise CompileError(f"{path.name} has constructor parameters: it cannot be applied directly "
                                   f"(instantiate it with its arguments)", call.loc)
            made[path.name] = made.get(path.name, 0) + 1
            if made[path.name] == 2 and _has_control_plane_objects(target):
                raise CompileError(f"{path.name} is applied directly twice in {block.name}: both instances "
                                   f"would be named {block.name}.{path.name} (conflicting control plane name); "
                                   f"instantiate it under two names", call.loc)
            call.func = dataclasses.replace(call.func, expr=ast.PathExpr(_PREFIX + path.name, loc=path.loc))
        for name in made:
            anno = ast.Annotation("name", [ast.StringLiteral(name)], raw=f'"{name}"', loc=block.loc)
            block.locals.append(ast.Instantiation(_PREFIX + name, ast.NamedTypeRef(name, loc=block.loc), [],
                                                  annotations=[anno], loc=block.loc))
