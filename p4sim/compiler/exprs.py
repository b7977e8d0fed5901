"""Expression translation: type-checks a P4 expression and returns the Python code computing it.

Compile-time constants are folded as they are met, so the same code serves widths, sizes and
constants (where a value is required) and packet-time expressions (where code is emitted).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import ast
from .classes import copy_code
from .errors import CompileError
from .symbols import Emitter, FnCtx, Scope, py_ident, semantic_error
from .types import (
    ActionEnumT,
    ApplyResultT,
    BitT,
    BlockT,
    BoolT,
    DontCareT,
    EnumT,
    ErrorT,
    ExternT,
    HeaderT,
    IntT,
    MatchKindT,
    NewT,
    StackT,
    StringT,
    StructLikeT,
    StructT,
    TableT,
    TupleT,
    Type,
    UnionT,
    VarbitT,
    VoidT,
    strip_newtype,
    width_of,
)

if TYPE_CHECKING:
    from .elaborate import Compiler


@dataclass
class TExpr:
    """A translated expression: Python code, its P4 type, and its value when constant."""

    code: str
    type: Type
    const: Any = None
    sym: Any = None  # for names that denote non-values (tables, instances, types)

    @property
    def is_const(self) -> bool:
        return self.const is not None


@dataclass
class LValue:
    """An assignable place: ``target`` is a Python assignment target; ``slice`` (hi, lo) makes
    the place a bit range of that target."""

    target: str
    type: Type
    slice: tuple[int, int] | None = None
    base_type: Type | None = None
    check: str | None = None  # code that must hold before writing (stack bounds)


def wrap_code(code: str, t: Type) -> str:
    """Reduce an unbounded Python integer to the representation of bit<W>/int<W>."""
    t = strip_newtype(t)
    if isinstance(t, BitT):
        if t.signed:
            half = 1 << (t.width - 1)
            return f"((({code}) + {half} & {t.mask}) - {half})"
        return f"(({code}) & {t.mask})"
    return code


def wrap_value(v: int, t: Type) -> int:
    t = strip_newtype(t)
    if isinstance(t, BitT):
        v &= t.mask
        if t.signed and v >= 1 << (t.width - 1):
            v -= 1 << t.width
    return v


def const_code(v: Any) -> str:
    if isinstance(v, bool):
        return "True" if v else "False"
    if isinstance(v, int):
        return str(v) if v >= 0 else f"({v})"
    if isinstance(v, str):
        return repr(v)
    if isinstance(v, tuple):
        return "(" + "".join(const_code(x) + ", " for x in v) + ")"
    raise TypeError(f"no code for constant {v!r}")


# code that names a value (so evaluating it twice is cheap and has no side effects)
_SIMPLE_CODE = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")

_ARITH = {"+", "-", "*", "/", "%", "|+|", "|-|", "&", "|", "^"}
_CMP = {"==", "!=", "<", ">", "<=", ">="}


class ExprMixin:
    """Expression translation, mixed into :class:`Compiler`."""

    # -- entry points ---------------------------------------------------------------------------

    def const_int(self: Compiler, e: ast.Expr, sc: Scope, what: str = "value") -> int:
        te = self.expr(e, sc, None)
        v = te.const
        if isinstance(v, bool) or not isinstance(v, int):
            raise semantic_error(e.loc, f"{what} must be a compile-time integer constant")
        return v

    def expr(self: Compiler, e: ast.Expr, sc: Scope, fc: FnCtx | None, want: Type | None = None) -> TExpr:
        te = self._expr(e, sc, fc, want)
        if want is not None:
            te = self.coerce(te, want, e.loc)
        return te

    def need_runtime(self, e: ast.Expr, fc: FnCtx | None) -> FnCtx:
        if fc is None:
            raise semantic_error(e.loc, "expression is not a compile-time constant")
        return fc

    # -- coercion ---------------------------------------------------------------------------------

    def coerce(self: Compiler, te: TExpr, target: Type, loc: ast.Loc) -> TExpr:
        src = te.type
        if src is target or src == target or isinstance(target, DontCareT):
            return te
        s, t = strip_newtype(src), strip_newtype(target)
        if isinstance(target, NewT) or isinstance(src, NewT):
            # p4c wants explicit casts between a ``type`` and its base; we accept the
            # implicit form only where the representation is the same.
            if s == t or (isinstance(s, IntT) and isinstance(t, BitT)):
                return self.coerce(TExpr(te.code, s, te.const), t, loc) if not s == t else TExpr(te.code, target, te.const)
        if isinstance(s, IntT) and isinstance(t, BitT):
            if te.is_const:
                v = wrap_value(te.const, t)
                return TExpr(const_code(v), target, v)
            return TExpr(wrap_code(te.code, t), target)
        if isinstance(s, IntT) and isinstance(t, IntT):
            return te
        if isinstance(s, IntT) and isinstance(t, EnumT) and t.underlying is not None:
            raise semantic_error(loc, f"cannot convert int to {t} without a cast")
        if isinstance(s, BitT) and isinstance(t, BitT) and s == t:
            return TExpr(te.code, target, te.const)
        if isinstance(s, EnumT) and s.underlying is not None and isinstance(t, BitT) and s.underlying == t:
            # a serializable enum converts implicitly to its underlying type (P4_16 spec,
            # "Implicit casts"); its values already are the underlying numbers
            return TExpr(te.code, target, te.const)
        if isinstance(s, TupleT) and isinstance(t, StructLikeT):
            return te  # handled by the assignment of list expressions
        if isinstance(s, StructLikeT) and isinstance(t, StructLikeT) and s.name == t.name:
            return te
        if isinstance(s, ErrorT) and isinstance(t, ErrorT):
            return te
        if isinstance(s, ExternT) and isinstance(t, ExternT) and s.decl is t.decl:
            return te
        if isinstance(s, StackT) and isinstance(t, StackT) and s.size == t.size:
            return te
        if isinstance(s, EnumT) and isinstance(t, EnumT) and s is t:
            return te
        if isinstance(s, TupleT) and isinstance(t, TupleT):
            return te
        if isinstance(s, BlockT) and isinstance(t, BlockT):
            return te
        raise semantic_error(loc, f"cannot use a value of type {src} where {target} is expected")

    # -- the translator -----------------------------------------------------------------------

    def _expr(self: Compiler, e: ast.Expr, sc: Scope, fc: FnCtx | None, want: Type | None) -> TExpr:
        if isinstance(e, ast.IntLiteral):
            if e.width is None:
                return TExpr(const_code(e.value), IntT(), e.value)
            t = BitT(e.width, e.signed)
            v = wrap_value(e.value, t)
            return TExpr(const_code(v), t, v)
        if isinstance(e, ast.BoolLiteral):
            return TExpr(const_code(e.value), BoolT(), e.value)
        if isinstance(e, ast.StringLiteral):
            return TExpr(repr(e.value), StringT(), e.value)
        if isinstance(e, ast.PathExpr):
            return self._path(e, sc, fc)
        if isinstance(e, ast.MemberExpr):
            return self._member(e, sc, fc)
        if isinstance(e, ast.IndexExpr):
            return self._index(e, sc, fc)
        if isinstance(e, ast.SliceExpr):
            base = self._enum_number(self._enum_member_refused(self.expr(e.expr, sc, fc), "a slice", e.loc))
            bt = strip_newtype(base.type)
            if isinstance(bt, IntT) and base.is_const:
                bt = BitT(max(base.const.bit_length(), 1))
            if not isinstance(bt, BitT):
                raise semantic_error(e.loc, f"cannot slice a value of type {base.type}")
            hi = self.const_int(e.hi, sc, "slice bound")
            lo = self.const_int(e.lo, sc, "slice bound")
            if not (0 <= lo <= hi < bt.width):
                raise semantic_error(e.loc, f"slice [{hi}:{lo}] out of range for {bt}")
            t = BitT(hi - lo + 1)
            if base.is_const:
                v = (base.const >> lo) & t.mask
                return TExpr(const_code(v), t, v)
            src = base.code if not bt.signed else f"({base.code} & {bt.mask})"
            code = f"(({src} >> {lo}) & {t.mask})" if lo else f"({src} & {t.mask})"
            return TExpr(code, t)
        if isinstance(e, ast.CallExpr):
            return self.call(e, sc, fc, want)
        if isinstance(e, ast.UnaryExpr):
            return self._unary(e, sc, fc, want)
        if isinstance(e, ast.BinaryExpr):
            return self._binary(e, sc, fc, want)
        if isinstance(e, ast.TernaryExpr):
            return self._ternary(e, sc, fc, want)
        if isinstance(e, ast.CastExpr):
            return self._cast(e, sc, fc)
        if isinstance(e, ast.ListExpr):
            return self._list(e, sc, fc, want)
        if isinstance(e, ast.StructInitExpr):
            return self._struct_init(e, sc, fc, want)
        if isinstance(e, ast.InvalidExpr):
            if want is None or not isinstance(strip_newtype(want), (HeaderT, UnionT)):
                raise semantic_error(e.loc, "{#} needs a header or header union type from context")
            return TExpr(f"{strip_newtype(want).pyclass}()", want)
        if isinstance(e, ast.DontCareExpr):
            return TExpr("None", DontCareT())
        if isinstance(e, ast.TypeArgExpr):
            t = self.resolve_type(e.type, sc)
            return TExpr("None", t, sym=("type", t))
        if isinstance(e, ast.ThisExpr):
            raise semantic_error(e.loc, "'this' is not supported by p4sim (abstract extern methods)")
        raise semantic_error(e.loc, f"unsupported expression {type(e).__name__}")

    # -- names and members ----------------------------------------------------------------------

    def _path(self: Compiler, e: ast.PathExpr, sc: Scope, fc: FnCtx | None) -> TExpr:
        scope = sc.root() if e.is_global else sc
        sym = scope.lookup(e.name)
        if sym is None:
            raise semantic_error(e.loc, f"{e.name}: declaration not found")
        if sym.kind == "const":
            return TExpr(const_code(sym.value), sym.type, sym.value)
        if sym.kind == "var":
            self.need_runtime(e, fc)
            self.require_whole_bytes(sym.type)
            return TExpr(sym.code, sym.type, sym=sym)
        return TExpr(sym.code or "None", sym.type or VoidT(), sym=sym)

    def _member(self: Compiler, e: ast.MemberExpr, sc: Scope, fc: FnCtx | None) -> TExpr:
        # error.X, Enum.X, and type-qualified names first: the base is a type, not a value.
        if isinstance(e.expr, ast.PathExpr):
            name = e.expr.name
            sym = (sc.root() if e.expr.is_global else sc).lookup(name)
            if name == "error" and sym is None:
                code = self.error_code(e.member, e.loc)
                return TExpr(str(code), ErrorT(), code)
            if sym is not None and sym.kind == "type":
                t = sym.type
                st = strip_newtype(t) if t is not None else None
                if isinstance(st, EnumT):
                    if e.member not in st.members:
                        raise semantic_error(e.loc, f"{st.name} has no member {e.member}")
                    v = st.value_of(e.member)
                    return TExpr(const_code(v), t, v)
                if isinstance(st, ErrorT):
                    code = self.error_code(e.member, e.loc)
                    return TExpr(str(code), ErrorT(), code)
                raise semantic_error(e.loc, f"type {name} has no member {e.member}")
        base = self.expr(e.expr, sc, fc)
        bt = strip_newtype(base.type)
        if isinstance(bt, ApplyResultT):
            if e.member == "hit":
                return TExpr(f"{base.code}[0]", BoolT())
            if e.member == "miss":
                return TExpr(f"(not {base.code}[0])", BoolT())
            if e.member == "action_run":
                return TExpr(f"{base.code}[1]", ActionEnumT(bt.table))
            raise semantic_error(e.loc, f"table apply result has no member {e.member}")
        if isinstance(bt, StructLikeT):
            ft = bt.field_type(e.member)
            if ft is None:
                raise semantic_error(e.loc, f"{bt.name} has no field {e.member}")
            self.need_runtime(e, fc)
            return TExpr(f"{base.code}.{py_ident(e.member)}", ft)
        if isinstance(bt, StackT):
            self.need_runtime(e, fc)
            if e.member == "size":
                return TExpr(str(bt.size), BitT(32), bt.size)
            if e.member in ("lastIndex", "next", "last") and (fc is None or fc.where != "parser"):
                # p4c refuses them outside parsers; BMv2 has no stack index there
                raise semantic_error(e.loc, f"'{e.member}' of a header stack can only be used in a parser")
            if e.member == "lastIndex":
                return TExpr(f"(({base.code}.nxt - 1) & 0xFFFFFFFF)", BitT(32))
            if e.member == "next":
                return TExpr(f"{base.code}.next_elem()", bt.elem)
            if e.member == "last":
                return TExpr(f"{base.code}.last_elem()", bt.elem)
            raise semantic_error(e.loc, f"header stack has no member {e.member}")
        if base.sym is not None:
            return TExpr(base.code, VoidT(), sym=("member", base, e.member))
        raise semantic_error(e.loc, f"a value of type {base.type} has no member {e.member}")

    def _index(self: Compiler, e: ast.IndexExpr, sc: Scope, fc: FnCtx | None, write: bool = False) -> TExpr:
        """A tuple or stack element. Stack reads use ``rd``/``at_rd``, which do not make an element
        that was never written (they see a shared blank); places to write use ``el``/``at``."""
        base = self.expr(e.expr, sc, fc) if not write else None
        if write:
            assert fc is not None
            blv = self.lvalue_or_expr(e.expr, sc, fc)
            base = TExpr(blv.target, blv.type)
        bt = strip_newtype(base.type)
        if isinstance(bt, TupleT):
            i = self.const_int(e.index, sc, "tuple index")
            if not 0 <= i < len(bt.elems):
                raise semantic_error(e.loc, f"tuple index {i} out of range")
            if base.is_const:
                return TExpr(const_code(base.const[i]), bt.elems[i], base.const[i])
            return TExpr(f"{base.code}[{i}]", bt.elems[i])
        if not isinstance(bt, StackT):
            raise semantic_error(e.loc, f"cannot index a value of type {base.type}")
        idx = self.expr(e.index, sc, fc)
        if idx.is_const:
            if not 0 <= idx.const < bt.size:
                raise semantic_error(e.loc, f"index {idx.const} out of bounds for a stack of size {bt.size}")
            if write:
                return TExpr(f"{base.code}.el({idx.const})", bt.elem)
            # inline form of Stack.rd: an element never made is the shared blank
            return TExpr(f"{base.code}.elems[{idx.const}]", bt.elem)
        return TExpr(f"{base.code}.{'at' if write else 'at_rd'}({idx.code})", bt.elem)

    # -- evaluation order -------------------------------------------------------------------------
    #
    # Most operands become Python expressions that run where the result is used, in the order
    # they appear, as P4 evaluates them. Some leave statements behind instead (a call with out
    # arguments is a statement, then its results are read). Such statements run before the code
    # of every operand to their left, so those operands are saved first; and where an operand
    # need not be evaluated (the right side of && and ||, the branch ?: does not take), its
    # statements are put under the condition that chooses it.

    def _mark(self, fc: FnCtx | None) -> int:
        return len(fc.em.lines) if fc is not None else 0

    def _before(self: Compiler, fc: FnCtx | None, te: TExpr, mark: int) -> TExpr:
        """``te``, evaluated before line ``mark``: saved in a temporary there when statements
        emitted since would otherwise run before it."""
        return self.in_order(fc, [(te, mark)])[0]

    def in_order(self: Compiler, fc: FnCtx | None, items: list[tuple[TExpr, int]]) -> list[TExpr]:
        """Values evaluated left to right, each with the line count right after its evaluation:
        a value with statements emitted after it is saved in a temporary at its own place."""
        if fc is None:
            return [te for te, _ in items]
        end = len(fc.em.lines)
        out = [te for te, _ in items]
        for i in range(len(items) - 1, -1, -1):
            te, mark = items[i]
            if mark >= end or te.is_const or (te.sym is not None and getattr(te.sym, "kind", None) != "var"):
                continue
            tmp = fc.em.temp("v")
            fc.em.lines.insert(mark, "    " * fc.em.depth + f"{tmp} = {copy_code(te.type, te.code)}")
            out[i] = TExpr(tmp, te.type)
        return out

    def _capture(self: Compiler, fc: FnCtx | None, fn: Any) -> tuple[TExpr, list[str]]:
        """Translate with ``fn`` and take back the statements it emitted (indented one level
        deeper, to go under a condition)."""
        if fc is None:
            return fn(), []
        em = fc.em
        start = len(em.lines)
        em.depth += 1
        try:
            te = fn()
        finally:
            em.depth -= 1
        lines = em.lines[start:]
        del em.lines[start:]
        return te, lines

    def _emit_captured(self, fc: FnCtx, cond: str, lines: list[str], result: tuple[str, str] | None = None) -> None:
        fc.em.line(f"if {cond}:")
        fc.em.lines.extend(lines)
        if result is not None:
            fc.em.lines.append("    " * (fc.em.depth + 1) + f"{result[0]} = {result[1]}")
        elif not lines:
            fc.em.lines.append("    " * (fc.em.depth + 1) + "pass")

    def _ternary(self: Compiler, e: ast.TernaryExpr, sc: Scope, fc: FnCtx | None, want: Type | None) -> TExpr:
        c = self.expr(e.cond, sc, fc, BoolT())
        a, alines = self._capture(fc, lambda: self._expr(e.then, sc, fc, want))
        b, blines = self._capture(fc, lambda: self._expr(e.other, sc, fc, want))
        if a.type is not b.type and any(isinstance(x.type, EnumT) and x.type.underlying is not None for x in (a, b)):
            # p4c-bm2-ss does not convert a serializable enum branch to the other's type
            raise semantic_error(e.loc, f"the branches of '?:' have different types: {a.type} and {b.type}")
        if want is not None:
            a, b = self.coerce(a, want, e.then.loc), self.coerce(b, want, e.other.loc)
        t = self._unify(a, b, e.loc)
        a, b = self.coerce(a, t, e.loc), self.coerce(b, t, e.loc)
        if c.is_const:
            chosen, lines = (a, alines) if c.const else (b, blines)
            if lines:
                assert fc is not None
                self._emit_captured(fc, "True", lines)
            return chosen
        if not alines and not blines:
            return TExpr(f"({a.code} if {c.code} else {b.code})", t)
        # a branch with statements: only the branch the condition takes runs them
        assert fc is not None
        tmp = fc.em.temp("tv")
        self._emit_captured(fc, c.code, alines, (tmp, a.code))
        fc.em.line("else:")
        fc.em.lines.extend(blines)
        fc.em.lines.append("    " * (fc.em.depth + 1) + f"{tmp} = {b.code}")
        return TExpr(tmp, t)

    # -- operators ------------------------------------------------------------------------------

    def _unify(self: Compiler, a: TExpr, b: TExpr, loc: ast.Loc) -> Type:
        ta, tb = a.type, b.type
        if ta == tb or ta is tb:
            return ta
        sa, sb = strip_newtype(ta), strip_newtype(tb)
        if isinstance(sa, IntT):
            return tb
        if isinstance(sb, IntT):
            return ta
        if sa == sb:
            return ta if not isinstance(ta, NewT) else tb
        if isinstance(sa, (StructLikeT, EnumT)) and sa is sb:
            return ta
        raise semantic_error(loc, f"operands have different types: {ta} and {tb}")

    def _unary(self: Compiler, e: ast.UnaryExpr, sc: Scope, fc: FnCtx | None, want: Type | None) -> TExpr:
        a = self._expr(e.operand, sc, fc, want if e.op != "!" else None)
        if e.op != "!":
            a = self._enum_number(self._enum_member_refused(a, f"'{e.op}'", e.loc))
            if want is not None:
                a = self.coerce(a, want, e.operand.loc)
        t = strip_newtype(a.type)
        if e.op == "!":
            if not isinstance(t, BoolT):
                raise semantic_error(e.loc, f"'!' needs a bool, not {a.type}")
            if a.is_const:
                return TExpr(const_code(not a.const), BoolT(), not a.const)
            return TExpr(f"(not {a.code})", BoolT())
        if not isinstance(t, (BitT, IntT)):
            raise semantic_error(e.loc, f"'{e.op}' needs an integer, not {a.type}")
        if e.op == "+":
            return a
        if e.op == "-":
            if a.is_const:
                v = -a.const
                v = wrap_value(v, t)
                return TExpr(const_code(v), a.type, v)
            return TExpr(wrap_code(f"-{a.code}", t), a.type)
        if e.op == "~":
            if isinstance(t, IntT):
                if a.is_const:
                    return TExpr(const_code(~a.const), a.type, ~a.const)
                raise semantic_error(e.loc, "'~' needs a value with a width")
            if a.is_const:
                v = wrap_value(~a.const, t)
                return TExpr(const_code(v), a.type, v)
            if t.signed:
                return TExpr(f"(~{a.code})", a.type)
            return TExpr(f"({a.code} ^ {t.mask})", a.type)
        raise semantic_error(e.loc, f"unknown unary operator {e.op}")

    def _binary(self: Compiler, e: ast.BinaryExpr, sc: Scope, fc: FnCtx | None, want: Type | None) -> TExpr:
        op = e.op
        if op in ("&&", "||"):
            a = self.expr(e.left, sc, fc, BoolT())
            b, blines = self._capture(fc, lambda: self.expr(e.right, sc, fc, BoolT()))
            if blines:
                # the right operand has side effects emitted as statements (a call with out
                # arguments, say): they run only when the left operand does not decide
                assert fc is not None
                if a.is_const:
                    if a.const == (op == "||"):
                        return TExpr(const_code(a.const), BoolT(), a.const)
                    self._emit_captured(fc, "True", blines)
                    return b
                tmp = fc.em.temp("sc")
                fc.em.line(f"{tmp} = {a.code}")
                self._emit_captured(fc, tmp if op == "&&" else f"not {tmp}", blines, (tmp, b.code))
                return TExpr(tmp, BoolT())
            if a.is_const and b.is_const:
                v = (a.const and b.const) if op == "&&" else (a.const or b.const)
                return TExpr(const_code(v), BoolT(), v)
            if a.is_const:
                if op == "&&":
                    return b if a.const else TExpr("False", BoolT(), False)
                return TExpr("True", BoolT(), True) if a.const else b
            pyop = "and" if op == "&&" else "or"
            return TExpr(f"({a.code} {pyop} {b.code})", BoolT())
        if op == "++":
            a = self.expr(e.left, sc, fc)
            mark = self._mark(fc)
            b = self.expr(e.right, sc, fc)
            a = self._before(fc, a, mark)
            a, b = self._enum_number(a), self._enum_number(b)
            ta, tb = strip_newtype(a.type), strip_newtype(b.type)
            if not isinstance(ta, BitT) or not isinstance(tb, BitT):
                raise semantic_error(e.loc, f"'++' needs two values with widths, not {a.type} and {b.type}")
            if ta.signed != tb.signed:
                # p4c-bm2-ss 1.2.5 casts the right operand to the result's type, the left's sign
                # at the sum of the widths, and cannot cast between signs and widths at once
                raise semantic_error(e.loc, f"'++' of {a.type} and {b.type}: p4c-bm2-ss cannot concatenate a signed "
                                            "and an unsigned value (cast one of them first)")
            t = BitT(ta.width + tb.width, ta.signed)
            bcode = b.code if not tb.signed else f"({b.code} & {tb.mask})"
            acode = a.code if not ta.signed else f"({a.code} & {ta.mask})"
            if a.is_const and b.is_const:
                v = wrap_value(((a.const & ta.mask) << tb.width) | (b.const & tb.mask), t)
                return TExpr(const_code(v), t, v)
            code = f"(({acode} << {tb.width}) | {bcode})"
            return TExpr(wrap_code(code, t) if t.signed else code, t)
        if op in ("<<", ">>"):
            wa = want if want is not None and is_num(want) else None
            a = self._enum_member_refused(self._expr(e.left, sc, fc, wa), f"'{op}'", e.loc)
            if wa is not None:
                a = self.coerce(self._enum_number(a), wa, e.left.loc)
            mark = self._mark(fc)
            b = self.expr(e.right, sc, fc)
            a = self._before(fc, a, mark)
            a, b = self._enum_number(a), self._enum_number(b)
            ta, tb = strip_newtype(a.type), strip_newtype(b.type)
            if not isinstance(ta, (BitT, IntT)) or not isinstance(tb, (BitT, IntT)):
                raise semantic_error(e.loc, f"'{op}' needs integer operands")
            if isinstance(tb, BitT) and tb.signed:
                raise semantic_error(e.loc, "shift amount must be unsigned")
            if a.is_const and b.is_const:
                if b.const < 0:
                    raise semantic_error(e.loc, "negative shift amount")
                v = a.const << b.const if op == "<<" else a.const >> b.const
                v = wrap_value(v, ta)
                return TExpr(const_code(v), a.type, v)
            if isinstance(ta, IntT):
                raise semantic_error(e.loc, "shifting an int needs a constant amount; give the value a width")
            if op == "<<":
                if b.is_const and b.const >= ta.width:
                    return TExpr("0", a.type, 0)
                shifted = wrap_code(f"({a.code} << {b.code})", ta)
                if b.is_const or (isinstance(tb, BitT) and tb.width <= 8):
                    return TExpr(shifted, a.type)
                # a wide run-time amount (up to 2**32-1) would build a huge Python int first
                if _SIMPLE_CODE.fullmatch(b.code):
                    return TExpr(f"({shifted} if {b.code} < {ta.width} else 0)", a.type)
                return TExpr(wrap_code(f"shl({a.code}, {b.code}, {ta.width})", ta), a.type)
            return TExpr(f"({a.code} >> {b.code})", a.type)
        literal = (ast.ListExpr, ast.StructInitExpr, ast.InvalidExpr)
        if op in ("==", "!=") and isinstance(e.left, literal) and not isinstance(e.right, literal):
            # {1, 2} == hdr.h: the literal takes its type from the other side (a scratch look)
            other = self.expr(e.right, sc, FnCtx(Emitter(), fc.where) if fc is not None else None)
            a = self.expr(e.left, sc, fc, self._literal_want(other.type))
        else:
            a = self.expr(e.left, sc, fc)
        mark = self._mark(fc)
        b = self.expr(e.right, sc, fc, self._literal_want(a.type) if op in ("==", "!=") and isinstance(e.right, literal) else None)
        a = self._before(fc, a, mark)
        if not (op in ("==", "!=") and a.type is b.type):
            # two values of one enum compare as they are; elsewhere a serializable enum
            # stands for its number (Kind.B + 1, Kind.B == 7, h.kind < Kind.B)
            a, b = self._enum_number(a), self._enum_number(b)
        t = self._unify(a, b, e.loc)
        a, b = self.coerce(a, t, e.loc), self.coerce(b, t, e.loc)
        st = strip_newtype(t)
        if op in _CMP:
            return self._compare(op, a, b, st, e.loc)
        if op not in _ARITH:
            raise semantic_error(e.loc, f"unknown operator {op}")
        if isinstance(st, BoolT) or not isinstance(st, (BitT, IntT)):
            raise semantic_error(e.loc, f"'{op}' needs integer operands, not {t}")
        if a.is_const and b.is_const:
            v = _fold(op, a.const, b.const, st, e.loc)
            return TExpr(const_code(v), t, v)
        if isinstance(st, IntT):
            raise semantic_error(e.loc, "operands of type int must be compile-time constants")
        if op in ("&", "|", "^"):
            return TExpr(f"({a.code} {op} {b.code})", t)
        if op == "+" or op == "-" or op == "*":
            return TExpr(wrap_code(f"{a.code} {op} {b.code}", st), t)
        if op in ("/", "%"):
            if st.signed:
                raise semantic_error(e.loc, f"'{op}' is defined on unsigned values only")
            if not b.is_const and not _SIMPLE_CODE.fullmatch(b.code):
                # b appears twice below: once evaluated, a table apply in it would run twice
                return TExpr(f"{'div' if op == '/' else 'mod'}({a.code}, {b.code})", t)
            return TExpr(f"(({a.code} {'//' if op == '/' else '%'} {b.code}) if {b.code} else 0)", t)
        if op == "|+|":
            if st.signed:
                lo, hi = -(1 << (st.width - 1)), (1 << (st.width - 1)) - 1
                return TExpr(f"min(max({a.code} + {b.code}, {lo}), {hi})", t)
            return TExpr(f"min({a.code} + {b.code}, {st.mask})", t)
        if op == "|-|":
            if st.signed:
                lo, hi = -(1 << (st.width - 1)), (1 << (st.width - 1)) - 1
                return TExpr(f"min(max({a.code} - {b.code}, {lo}), {hi})", t)
            return TExpr(f"max({a.code} - {b.code}, 0)", t)
        raise semantic_error(e.loc, f"unknown operator {op}")

    @staticmethod
    def _enum_member_refused(te: TExpr, what: str, loc: ast.Loc) -> TExpr:
        """p4c-bm2-ss 1.2.5 folds ``~``, unary ``-``, a slice and the left side of a shift only
        on numbers: given a serializable enum's member (``~Op.A``, ``Op.A << 1``) it stops with
        "expected an integer value", though it takes a run-time value of the enum there."""
        t = te.type
        if isinstance(t, EnumT) and t.underlying is not None and te.is_const:
            member = next((m for m in t.members if t.values[m] == te.const), str(te.const))
            raise semantic_error(loc, f"{what} of the enum member {t}.{member}: p4c-bm2-ss cannot fold it "
                                      f"(cast it to {t.underlying} first)")
        return te

    @staticmethod
    def _enum_number(te: TExpr) -> TExpr:
        """A serializable enum's value as its underlying type (other values unchanged)."""
        t = te.type
        if isinstance(t, EnumT) and t.underlying is not None:
            return TExpr(te.code, t.underlying, te.const)
        return te

    @staticmethod
    def _literal_want(t: Type) -> Type | None:
        """The type a list or structure literal compared with a value of type ``t`` takes."""
        return t if isinstance(strip_newtype(t), (StructLikeT, TupleT)) else None

    def _compare(self: Compiler, op: str, a: TExpr, b: TExpr, t: Type, loc: ast.Loc) -> TExpr:
        if op in ("==", "!="):
            if isinstance(t, (StructLikeT, StackT)):
                code = f"{a.code}._eq({b.code})"
                return TExpr(code if op == "==" else f"(not {code})", BoolT())
            if a.is_const and b.is_const:
                v = (a.const == b.const) == (op == "==")
                return TExpr(const_code(v), BoolT(), v)
            return TExpr(f"({a.code} {op} {b.code})", BoolT())
        if not isinstance(t, (BitT, IntT)):
            raise semantic_error(loc, f"'{op}' needs integer operands, not {t}")
        if a.is_const and b.is_const:
            v = {"<": a.const < b.const, ">": a.const > b.const, "<=": a.const <= b.const, ">=": a.const >= b.const}[op]
            return TExpr(const_code(v), BoolT(), v)
        return TExpr(f"({a.code} {op} {b.code})", BoolT())

    # -- casts and aggregates -------------------------------------------------------------------

    def _cast(self: Compiler, e: ast.CastExpr, sc: Scope, fc: FnCtx | None) -> TExpr:
        target = self.resolve_type(e.type, sc)
        tt = strip_newtype(target)
        if isinstance(e.expr, (ast.ListExpr, ast.StructInitExpr, ast.InvalidExpr)):
            te = self.expr(e.expr, sc, fc, target)
            return TExpr(te.code, target, te.const)
        a = self.expr(e.expr, sc, fc)
        sa = strip_newtype(a.type)
        if isinstance(tt, BitT):
            if isinstance(sa, BoolT):
                if a.is_const:
                    return TExpr(const_code(int(a.const)), target, int(a.const))
                return TExpr(f"int({a.code})", target)
            if isinstance(sa, EnumT) and sa.underlying is not None:
                if sa.underlying != tt:
                    # p4c casts a serializable enum to its own underlying type only
                    raise semantic_error(e.loc, f"cannot cast {a.type} to {target}: only to its underlying type "
                                                f"{sa.underlying}")
                sa = sa.underlying
            if isinstance(sa, (BitT, IntT)):
                if a.is_const:
                    v = wrap_value(a.const, tt)
                    return TExpr(const_code(v), target, v)
                if isinstance(sa, BitT) and sa.width <= tt.width and sa.signed == tt.signed:
                    return TExpr(a.code, target)
                if isinstance(sa, BitT) and not sa.signed and not tt.signed and sa.width > tt.width:
                    return TExpr(f"({a.code} & {tt.mask})", target)
                return TExpr(wrap_code(a.code, tt), target)
        if isinstance(tt, BoolT):
            if isinstance(sa, BoolT):
                return TExpr(a.code, target, a.const)
            if isinstance(sa, (BitT, IntT)):
                if a.is_const:
                    return TExpr(const_code(bool(a.const)), target, bool(a.const))
                return TExpr(f"bool({a.code})", target)
        if isinstance(tt, IntT) and isinstance(sa, (BitT, IntT)) and a.is_const:
            return TExpr(const_code(a.const), target, a.const)
        if isinstance(tt, EnumT) and tt.underlying is not None and isinstance(sa, (BitT, IntT, EnumT)):
            if a.is_const:
                v = wrap_value(a.const, tt.underlying)
                return TExpr(const_code(v), target, v)
            return TExpr(wrap_code(a.code, tt.underlying), target)
        if isinstance(target, NewT) or isinstance(a.type, NewT):
            if strip_newtype(target) == sa or isinstance(sa, IntT):
                inner = self.coerce(TExpr(a.code, sa, a.const), tt, e.loc)
                return TExpr(inner.code, target, inner.const)
        if sa == tt or sa is tt:
            return TExpr(a.code, target, a.const)
        raise semantic_error(e.loc, f"cannot cast {a.type} to {target}")

    def _list(self: Compiler, e: ast.ListExpr, sc: Scope, fc: FnCtx | None, want: Type | None) -> TExpr:
        wt = strip_newtype(want) if want is not None else None
        if isinstance(wt, StructLikeT):
            if len(e.elems) != len(wt.fields):
                raise semantic_error(e.loc, f"{wt.name} has {len(wt.fields)} fields, the list has {len(e.elems)}")
            pairs = [(fname, el) for (fname, _), el in zip(wt.fields, e.elems, strict=True)]
            return self._build_struct(wt, pairs, sc, fc, e.loc, want)
        elem_wants: list[Type | None] = list(wt.elems) if isinstance(wt, TupleT) and len(wt.elems) == len(e.elems) else [None] * len(e.elems)
        marked = []
        for x, w in zip(e.elems, elem_wants, strict=True):
            item = self.expr(x, sc, fc, w)
            marked.append((item, self._mark(fc)))
        items = self.in_order(fc, marked)
        t = TupleT(tuple(i.type for i in items))
        if all(i.is_const for i in items):
            v = tuple(i.const for i in items)
            return TExpr(const_code(v), t, v)
        return TExpr("(" + "".join(i.code + ", " for i in items) + ")", t)

    def _struct_init(self: Compiler, e: ast.StructInitExpr, sc: Scope, fc: FnCtx | None, want: Type | None) -> TExpr:
        wt = strip_newtype(want) if want is not None else None
        if not isinstance(wt, StructLikeT):
            raise semantic_error(e.loc, "a structure initializer needs a struct or header type from context")
        names = {n for n, _ in wt.fields}
        given = {n for n, _ in e.fields}
        for n in given - names:
            raise semantic_error(e.loc, f"{wt.name} has no field {n}")
        if isinstance(wt, (StructT, HeaderT)) and given != names:
            missing = ", ".join(sorted(names - given))
            raise semantic_error(e.loc, f"initializer for {wt.name} misses fields: {missing}")
        return self._build_struct(wt, list(e.fields), sc, fc, e.loc, want)

    def _build_struct(self: Compiler, wt: StructLikeT, pairs: list[tuple[str, ast.Expr]], sc: Scope,
                      fc: FnCtx | None, loc: ast.Loc, want: Type | None) -> TExpr:
        fc = self.need_runtime(pairs[0][1] if pairs else ast.Expr(loc=loc), fc)
        tmp = fc.em.temp("s")
        fc.em.line(f"{tmp} = {wt.pyclass}()")
        for fname, fe in pairs:
            ft = wt.field_type(fname)
            assert ft is not None
            v = self.expr(fe, sc, fc, ft)
            self.assign_to(LValue(f"{tmp}.{py_ident(fname)}", ft), v, fc, loc)
        if isinstance(wt, HeaderT):
            fc.em.line(f"{tmp}._valid = True")
        return TExpr(tmp, want if want is not None else wt)

    # -- run-time stack indices -----------------------------------------------------------------
    #
    # BMv2 runs a header stack element with a run-time index (hs[i]) in a field read or write,
    # setValid()/setInvalid() and a read of the whole element. p4c-bm2-ss compiles two more
    # uses that BMv2 cannot run: isValid() of such an element (the switch cannot load the
    # program) and writing the whole element (an assignment, an out/inout argument, extract:
    # it crashes or cannot load). p4sim refuses those two.

    def runtime_index(self: Compiler, e: ast.Expr, sc: Scope) -> bool:
        """Whether the place ``e`` goes through a stack element with a run-time index."""
        while isinstance(e, (ast.MemberExpr, ast.IndexExpr, ast.SliceExpr)):
            if isinstance(e, ast.IndexExpr):
                try:
                    idx = self.expr(e.index, sc, None).const
                except CompileError:
                    idx = None
                if not isinstance(idx, int):
                    return True
            e = e.expr
        return False

    def check_whole_element_write(self: Compiler, e: ast.Expr, sc: Scope, what: str = "assigning") -> None:
        if self.runtime_index(e, sc):
            raise semantic_error(e.loc, f"{what} a whole header stack element with a run-time index: BMv2 cannot "
                                        "run it (p4c-bm2-ss compiles it, simple_switch crashes or refuses the "
                                        "program); write its fields, or index with a constant")

    # -- places ---------------------------------------------------------------------------------

    def lvalue(self: Compiler, e: ast.Expr, sc: Scope, fc: FnCtx) -> LValue:
        root = e
        while isinstance(root, (ast.MemberExpr, ast.IndexExpr, ast.SliceExpr)):
            root = root.expr
        if root is not e and isinstance(root, ast.PathExpr):
            rsym = (sc.root() if root.is_global else sc).lookup(root.name)
            if rsym is not None and rsym.kind == "var" and rsym.readonly:
                raise semantic_error(e.loc, f"{root.name} is a read-only (in) parameter: its parts cannot be assigned")
        if isinstance(e, ast.PathExpr):
            sym = (sc.root() if e.is_global else sc).lookup(e.name)
            if sym is None:
                raise semantic_error(e.loc, f"{e.name}: declaration not found")
            if sym.kind != "var" or sym.readonly:
                raise semantic_error(e.loc, f"{e.name} cannot be assigned")
            self.require_whole_bytes(sym.type)
            return LValue(sym.code, sym.type)
        if isinstance(e, ast.MemberExpr):
            base = self.lvalue_or_expr(e.expr, sc, fc)
            bt = strip_newtype(base.type)
            if isinstance(bt, StructLikeT):
                ft = bt.field_type(e.member)
                if ft is None:
                    raise semantic_error(e.loc, f"{bt.name} has no field {e.member}")
                if isinstance(bt, UnionT):
                    # a union member is made on its first write (classes.union_class)
                    return LValue(f"{base.target}.w_{py_ident(e.member)}()", ft)
                return LValue(f"{base.target}.{py_ident(e.member)}", ft)
            if isinstance(bt, StackT) and e.member in ("next", "last"):
                te = self._member(e, sc, fc)
                return LValue(te.code, te.type)
            raise semantic_error(e.loc, f"cannot assign to member {e.member} of {base.type}")
        if isinstance(e, ast.IndexExpr):
            te = self._index(e, sc, fc, write=True)
            if not te.code.endswith("]") and ".at(" not in te.code and ".el(" not in te.code:
                raise semantic_error(e.loc, "cannot assign to this element")
            return LValue(te.code, te.type)
        if isinstance(e, ast.SliceExpr):
            base = self.lvalue(e.expr, sc, fc)
            bt = strip_newtype(base.type)
            if not isinstance(bt, BitT):
                raise semantic_error(e.loc, f"cannot slice a value of type {base.type}")
            hi = self.const_int(e.hi, sc, "slice bound")
            lo = self.const_int(e.lo, sc, "slice bound")
            if not (0 <= lo <= hi < bt.width):
                raise semantic_error(e.loc, f"slice [{hi}:{lo}] out of range for {bt}")
            if isinstance(base.base_type or bt, BitT) and (base.base_type or bt).signed:
                # p4c-bm2-ss cannot type the assignment it makes of this (a cast of bit<N> to int<W>)
                raise semantic_error(e.loc, f"assigning a slice of a signed value ({base.base_type or bt}) is refused "
                                            "by p4c-bm2-ss: assign the whole value")
            if base.slice is not None:
                blo = base.slice[1]
                return LValue(base.target, BitT(hi - lo + 1), (hi + blo, lo + blo), base.base_type)
            return LValue(base.target, BitT(hi - lo + 1), (hi, lo), bt)
        raise semantic_error(e.loc, "expression cannot be assigned")

    def lvalue_or_expr(self: Compiler, e: ast.Expr, sc: Scope, fc: FnCtx) -> LValue:
        """Aggregates are references, so any aggregate-valued expression is a usable base."""
        try:
            return self.lvalue(e, sc, fc)
        except CompileError:
            te = self.expr(e, sc, fc)
            if isinstance(strip_newtype(te.type), (StructLikeT, StackT)):
                return LValue(te.code, te.type)
            raise

    def assign_to(self: Compiler, lv: LValue, te: TExpr, fc: FnCtx, loc: ast.Loc) -> None:
        em = fc.em
        lt = strip_newtype(lv.type)
        te = self.coerce(te, lv.type, loc)
        if lv.slice is not None:
            hi, lo = lv.slice
            bt = lv.base_type
            assert isinstance(bt, BitT)
            m = ((1 << (hi - lo + 1)) - 1) << lo
            cur = lv.target if not bt.signed else f"({lv.target} & {bt.mask})"
            val = f"((({cur}) & {bt.mask ^ m}) | (({te.code}) << {lo} & {m}))"
            em.line(f"{lv.target} = {wrap_code(val, bt) if bt.signed else val}")
            return
        if isinstance(lt, (StructLikeT, StackT)):
            st = strip_newtype(te.type)
            if isinstance(st, TupleT) and isinstance(lt, StructLikeT):
                # positional initialization of a struct or header from a tuple value
                tmp = em.temp("tu")
                em.line(f"{tmp} = {te.code}")
                for i, (fname, ft) in enumerate(lt.fields):
                    self.assign_to(LValue(f"{lv.target}.{py_ident(fname)}", ft), TExpr(f"{tmp}[{i}]", st.elems[i]), fc, loc)
                if isinstance(lt, HeaderT):
                    em.line(f"{lv.target}._valid = True")
                return
            em.line(f"{lv.target}._set({te.code})")
            if isinstance(lt, UnionT):
                return
            return
        if isinstance(lt, VarbitT):
            raise semantic_error(loc, "assigning varbit fields is not supported by p4sim")
        em.line(f"{lv.target} = {te.code}")


def is_num(t: Type) -> bool:
    return isinstance(strip_newtype(t), (BitT, IntT))


def _fold(op: str, a: int, b: int, t: Type, loc: ast.Loc) -> int:
    if op == "+":
        v = a + b
    elif op == "-":
        v = a - b
    elif op == "*":
        v = a * b
    elif op in ("/", "%"):
        if b == 0:
            raise semantic_error(loc, "division by zero")
        if a < 0 or b < 0:
            raise semantic_error(loc, f"'{op}' is defined on non-negative values only")
        v = a // b if op == "/" else a % b
    elif op == "&":
        v = a & b
    elif op == "|":
        v = a | b
    elif op == "^":
        v = a ^ b
    elif op == "|+|" or op == "|-|":
        v = a + b if op == "|+|" else a - b
        if isinstance(t, BitT):
            lo = -(1 << (t.width - 1)) if t.signed else 0
            hi = (1 << (t.width - 1)) - 1 if t.signed else t.mask
            return min(max(v, lo), hi)
        return v
    else:
        raise semantic_error(loc, f"unknown operator {op}")
    return wrap_value(v, t)


__all__ = ["ExprMixin", "TExpr", "LValue", "wrap_code", "wrap_value", "const_code", "width_of",
           "MatchKindT", "TableT", "ExternT"]
