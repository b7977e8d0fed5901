"""Parser translation: one generated function per state, select as an if-chain."""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import ast
from .exprs import TExpr
from .hoist import param_attr
from .symbols import Emitter, FnCtx, Scope, py_ident, semantic_error
from .types import BoolT, ExternT, StackT, StructLikeT, TupleT, Type, strip_newtype

if TYPE_CHECKING:
    from .elaborate import BlockInstance, Compiler


class ParserMixin:
    """Parser translation, mixed into :class:`Compiler`."""

    def generate_parser(self: Compiler, decl: ast.ParserDecl, inst: BlockInstance, bsc: Scope, loc_cls: str,
                        slots: list[str], prologue: Emitter) -> None:
        names = {s.name for s in decl.states}
        if "start" not in names:
            raise semantic_error(decl.loc, f"parser {decl.name} has no start state")
        for reserved in ("accept", "reject"):
            if reserved in names:
                raise semantic_error(decl.loc, f"a parser may not declare a state named {reserved}")
        state_fn = {s.name: f"ps_{inst.pyname}_{py_ident(s.name)}" for s in decl.states}
        chunks: list[str] = []
        for st in decl.states:
            em = Emitter()
            fc = FnCtx(em, "parser", block_name=inst.name)
            ssc = Scope(bsc)
            for s in st.stmts:
                self.stmt(s, ssc, fc)
            self.transition(st, ssc, fc, state_fn)
            chunks.append(f"def {state_fn[st.name]}(K, L):\n" + "\n".join(em.lines) + "\n")
        params = []
        for p, pt in zip(inst.apply_params, inst.apply_types, strict=True):
            params.append(("_" if isinstance(strip_newtype(pt), ExternT) else "a_") + py_ident(p.name))
        lines = [f"class {loc_cls}:", f"    __slots__ = {tuple(slots)!r}", ""]
        lines.append(f"def {inst.pyname}(K{''.join(', ' + p for p in params)}):")
        lines.append(f"    L = {loc_cls}()")
        for p, pt in zip(inst.apply_params, inst.apply_types, strict=True):
            if not isinstance(strip_newtype(pt), ExternT):
                lines.append(f"    L.{param_attr(py_ident(p.name), pt)} = a_{py_ident(p.name)}")
        lines.extend(prologue.lines)
        lines.append(f"    s = {state_fn['start']}")
        lines.append("    while s is not None:")
        lines.append("        s = s(K, L)")
        # scalar out/inout parameters go back to the caller (a sub-parser's apply)
        outs = [f"L.p_{py_ident(p.name)}" for p, pt in zip(inst.apply_params, inst.apply_types, strict=True)
                if p.direction in ("out", "inout") and not isinstance(strip_newtype(pt), (ExternT, StructLikeT, StackT))]
        if outs:
            lines.append(f"    return ({', '.join(outs)},)")
        chunks.append("\n".join(lines) + "\n")
        self.chunks.extend(chunks)

    def target_code(self: Compiler, name: str, state_fn: dict[str, str], loc: ast.Loc) -> str:
        if name == "accept":
            return "return None"
        if name == "reject":
            return "raise ParserReject()"
        fn = state_fn.get(name)
        if fn is None:
            raise semantic_error(loc, f"{name}: no such parser state")
        return f"return {fn}"

    def transition(self: Compiler, st: ast.ParserState, sc: Scope, fc: FnCtx, state_fn: dict[str, str]) -> None:
        em = fc.em
        tr = st.transition
        if tr is None:
            em.line("raise ParserReject()")
            return
        if isinstance(tr, str):
            em.line(self.target_code(tr, state_fn, st.loc))
            return
        keys = [self.expr(x, sc, fc) for x in tr.exprs]
        knames = []
        for i, k in enumerate(keys):
            n = f"_k{i}"
            em.line(f"{n} = {k.code}")
            knames.append(n)
        for case in tr.cases:
            cond = self.keyset_condition(case.keyset, keys, knames, sc)
            target = self.target_code(case.next_state, state_fn, case.loc)
            if cond == "True":
                em.line(target)
                return
            em.line(f"if {cond}:")
            with em.indent():
                em.line(target)
        # No case matched. The spec says error.NoMatch, but p4c's BMv2 back end adds no implicit
        # default (its simple_switch mid end lacks HandleNoMatch), so BMv2 ends parsing as if
        # accepted, with parser_error still NoError.
        em.line("return None")

    def keyset_condition(self: Compiler, ks: ast.Expr, keys: list[TExpr], knames: list[str], sc: Scope) -> str:
        if isinstance(ks, (ast.DefaultExpr, ast.DontCareExpr)):
            return "True"
        if isinstance(ks, ast.PathExpr):
            sym = sc.lookup(ks.name)
            if sym is not None and sym.kind == "valueset":
                sym.info.used = True
                tup = knames[0] if len(knames) == 1 else "(" + ", ".join(knames) + ")"
                return f"{sym.code}.match({tup})"
        if len(keys) > 1:
            if not isinstance(ks, ast.ListExpr) or len(ks.elems) != len(keys):
                raise semantic_error(ks.loc, f"keyset needs {len(keys)} components")
            parts = [self.keyset_condition(e, [k], [n], sc) for e, k, n in zip(ks.elems, keys, knames, strict=True)]
            parts = [p for p in parts if p != "True"]
            return " and ".join(parts) if parts else "True"
        if isinstance(ks, ast.ListExpr) and len(ks.elems) == 1:
            return self.keyset_condition(ks.elems[0], keys, knames, sc)
        k, n = keys[0], knames[0]
        kt: Type = k.type
        if isinstance(strip_newtype(kt), (TupleT, StructLikeT)):
            raise semantic_error(ks.loc, "select on an aggregate value is not supported by p4sim")
        if isinstance(ks, ast.MaskExpr):
            v = self.expr(ks.value, sc, None, kt)
            m = self.expr(ks.mask, sc, None, kt)
            if v.const is None or m.const is None:
                raise semantic_error(ks.loc, "masks in select must be compile-time constants")
            return f"({n} & {m.code}) == {v.const & m.const}"
        if isinstance(ks, ast.RangeExpr):
            lo = self.expr(ks.lo, sc, None, kt)
            hi = self.expr(ks.hi, sc, None, kt)
            return f"{lo.code} <= {n} <= {hi.code}"
        v = self.expr(ks, sc, None, kt if not isinstance(strip_newtype(kt), BoolT) else BoolT())
        if v.const is None:
            raise semantic_error(ks.loc, "select keysets must be compile-time constants")
        return f"{n} == {v.code}"
