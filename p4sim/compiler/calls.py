"""Call translation: methods of headers, stacks, packets, tables, externs; actions; functions;
and v1model's extern functions."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from . import ast
from .classes import copy_code, default_value_code
from .errors import CompileError
from .exprs import LValue, TExpr, const_code, wrap_code
from .symbols import FnCtx, Scope, py_ident, semantic_error
from .types import (
    ApplyResultT,
    BitT,
    BoolT,
    DontCareT,
    EnumT,
    ErrorT,
    ExternT,
    HeaderT,
    IntT,
    StackT,
    StringT,
    StructLikeT,
    StructT,
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

# v1model extern functions p4sim implements, by name.
V1_FUNCTIONS = {
    "verify", "mark_to_drop", "hash", "random", "digest", "clone", "clone3",
    "clone_preserving_field_list", "resubmit", "resubmit_preserving_field_list", "recirculate",
    "recirculate_preserving_field_list", "truncate", "assert", "assume", "log_msg",
    "verify_checksum", "update_checksum", "verify_checksum_with_payload",
    "update_checksum_with_payload", "static_assert",
}



_CALL = re.compile(r"[A-Za-z_]\w*\s*\(")  # a call (or a keyword before a parenthesis: then not inlined)
_PARAM = re.compile(r"\ba_\w+\b")

class CallMixin:
    """Call translation, mixed into :class:`Compiler`."""

    def call(self: Compiler, e: ast.CallExpr, sc: Scope, fc: FnCtx | None, want: Type | None) -> TExpr:
        f = e.func
        if isinstance(f, ast.MemberExpr):
            return self.method_call(e, f, sc, fc, want)
        if isinstance(f, ast.PathExpr):
            sym = (sc.root() if f.is_global else sc).lookup(f.name)
            if sym is None:
                raise semantic_error(f.loc, f"{f.name}: declaration not found")
            if sym.kind == "action":
                return self.action_call(e, sym, sc, self.need_runtime(e, fc))
            if sym.kind == "function":
                return self.function_call(e, sym, sc, self.need_runtime(e, fc))
            if sym.kind == "extfunc":
                if f.name == "static_assert":
                    return self.static_assert(e, sc)
                if f.name != "verify":  # P4Info: a v1model function (not core.p4's verify) makes p4c write type_info
                    self.model.calls_extern_function = True
                return self.extern_function_call(e, f.name, sc, self.need_runtime(e, fc), want)
            raise semantic_error(f.loc, f"{f.name} is not callable")
        raise semantic_error(e.loc, "this expression is not callable")

    # -- argument binding -----------------------------------------------------------------------

    def bind_args(self: Compiler, e: ast.CallExpr, params: list[ast.Param], what: str) -> list[tuple[ast.Param, ast.Expr | None]]:
        by_name = {a.name: a for a in e.args if a.name is not None}
        positional = [a for a in e.args if a.name is None]
        if by_name and positional:
            raise semantic_error(e.loc, f"{what}: mixing named and positional arguments")
        if len(positional) > len(params):
            raise semantic_error(e.loc, f"{what}: too many arguments ({len(positional)} for {len(params)})")
        out: list[tuple[ast.Param, ast.Expr | None]] = []
        for i, p in enumerate(params):
            arg = positional[i] if i < len(positional) else by_name.pop(p.name, None)
            if arg is None:
                if p.default is not None:
                    out.append((p, p.default))
                    continue
                if p.direction == "" and any(an.name == "optional" for an in p.annotations):
                    out.append((p, None))
                    continue
                raise semantic_error(e.loc, f"{what}: no argument for parameter {p.name}")
            out.append((p, arg.value))
        for n in by_name:
            raise semantic_error(e.loc, f"{what}: no parameter named {n}")
        return out

    # -- methods ----------------------------------------------------------------------------------

    def method_call(self: Compiler, e: ast.CallExpr, f: ast.MemberExpr, sc: Scope, fc: FnCtx | None, want: Type | None) -> TExpr:
        m = f.member
        # names that are not values: tables, instances, packets
        if isinstance(f.expr, ast.PathExpr):
            sym = (sc.root() if f.expr.is_global else sc).lookup(f.expr.name)
            if sym is not None and sym.kind == "table":
                if m != "apply":
                    raise semantic_error(f.loc, f"table {f.expr.name} has no method {m}")
                if e.args:
                    raise semantic_error(e.loc, "table apply takes no arguments")
                fc = self.need_runtime(e, fc)
                if fc.where not in ("control", "function"):
                    raise semantic_error(e.loc, "tables may only be applied in a control's apply block")
                sym.info.applied = True
                return TExpr(f"{sym.code}(K, L)", ApplyResultT(sym.info.name))
            if sym is not None and sym.kind == "instance":
                return self.instance_call(e, sym, m, sc, self.need_runtime(e, fc), want)
        base = self.expr(f.expr, sc, fc)
        bt = strip_newtype(base.type)
        if isinstance(bt, ExternT):
            return self.packet_call(e, base, bt, m, sc, self.need_runtime(e, fc), want)
        if m in ("minSizeInBits", "minSizeInBytes", "maxSizeInBits", "maxSizeInBytes"):
            try:
                bits = width_of(bt)
            except TypeError as exc:
                raise semantic_error(e.loc, f"{m}: type {base.type} has no size") from exc
            if isinstance(bt, HeaderT) and m.startswith("min"):
                bits = sum(width_of(t) for _, t in bt.fields if not isinstance(t, VarbitT))
            v = bits if m.endswith("Bits") else (bits + 7) // 8
            return TExpr(str(v), IntT(), v)
        fc = self.need_runtime(e, fc)
        if m == "isValid" and isinstance(bt, (HeaderT, UnionT)) and self.runtime_index(f.expr, sc):
            raise semantic_error(f.loc, "isValid() of a header stack element with a run-time index: BMv2 cannot "
                                        "load the program (p4c-bm2-ss compiles it); index with a constant")
        if isinstance(bt, HeaderT):
            if m == "isValid":
                return TExpr(f"{base.code}._valid", BoolT())
            if m in ("setValid", "setInvalid"):
                base = TExpr(self.lvalue_or_expr(f.expr, sc, fc).target, base.type)  # a place, not a read
            if m == "setValid":
                union = self.union_of(f.expr, sc, fc)
                if union is not None:
                    fc.em.line(f"{base.code}.set_valid()")
                    return TExpr(f"{union}._valid_only({base.code})", VoidT())
                return TExpr(f"{base.code}.set_valid()", VoidT())
            if m == "setInvalid":
                return TExpr(f"{base.code}._valid = False", VoidT())
        if isinstance(bt, UnionT) and m == "isValid":
            return TExpr(f"{base.code}._isvalid()", BoolT())
        if isinstance(bt, StackT) and m in ("push_front", "pop_front"):
            if fc.where == "parser":
                raise semantic_error(f.loc, f"'{m}' of a header stack cannot be used in a parser (p4c refuses it)")
            if len(e.args) != 1:
                raise semantic_error(e.loc, f"{m} takes one argument")
            n = self.const_int(e.args[0].value, sc, f"{m} count")
            return TExpr(f"{self.lvalue_or_expr(f.expr, sc, fc).target}.{m}({n})", VoidT())
        raise semantic_error(f.loc, f"a value of type {base.type} has no method {m}")

    def union_of(self: Compiler, e: ast.Expr, sc: Scope, fc: FnCtx) -> str | None:
        """Code of the header union whose member ``e`` is, or None."""
        if not isinstance(e, ast.MemberExpr):
            return None
        try:
            parent = self.expr(e.expr, sc, fc)
        except CompileError:  # not a value (a type name, say): not a union member
            return None
        return parent.code if isinstance(strip_newtype(parent.type), UnionT) else None

    def packet_call(self: Compiler, e: ast.CallExpr, base: TExpr, bt: ExternT, m: str, sc: Scope, fc: FnCtx, want: Type | None) -> TExpr:
        if bt.name == "packet_in":
            if fc.where != "parser":
                raise semantic_error(e.loc, f"packet_in.{m} may only be called in a parser")
            if m == "extract":
                if len(e.args) not in (1, 2):
                    raise semantic_error(e.loc, "extract takes one or two arguments")
                if isinstance(e.args[0].value, ast.DontCareExpr):
                    # extract<H>(_): a header of type H read and thrown away (p4c gives it a
                    # temporary), so the bytes are checked and skipped as for any extract
                    if len(e.type_args) != 1:
                        raise semantic_error(e.loc, "extracting into _ needs the header type: extract<H>(_)")
                    if len(e.args) == 2:
                        # p4c-bm2-ss: "argument should contain a varbit field"
                        raise semantic_error(e.loc, "the two-argument extract cannot extract into _")
                    dt = self.resolve_type(e.type_args[0], sc)
                    tmp = fc.em.temp("dc")
                    fc.em.line(f"{tmp} = {default_value_code(dt)}")
                    lv = LValue(tmp, dt)
                else:
                    self.check_whole_element_write(e.args[0].value, sc, "extracting into")
                    lv = self.lvalue_or_expr(e.args[0].value, sc, fc)
                ht = strip_newtype(lv.type)
                if not isinstance(ht, HeaderT):
                    raise semantic_error(e.args[0].loc, f"extract needs a header, not {lv.type}")
                if len(e.args) == 2:
                    if not ht.has_varbit:
                        raise semantic_error(e.loc, "the two-argument extract needs a header with a varbit field")
                    n = self.expr(e.args[1].value, sc, fc)

                    def extract(target: str) -> str:
                        return f"extract_varbit(K, {target}, {n.code})"
                else:
                    if ht.has_varbit:
                        raise semantic_error(e.loc, "a header with a varbit field needs the two-argument extract")

                    def extract(target: str) -> str:
                        return f"{target}._extract(K)"
                if lv.target.endswith(".next_elem()"):
                    # into the next element of a stack: the stack moves on after it (it stays
                    # put if the extract fails)
                    stack = lv.target[: -len(".next_elem()")]
                    if len(e.args) == 1:
                        return TExpr(f"{stack}.extract_next(K)", VoidT())
                    fc.em.line(extract(lv.target))
                    return TExpr(f"{stack}.advance_next()", VoidT())
                if ".next_elem()." in lv.target:
                    # a member of the next union of a stack: extract into it, make it the
                    # union's only valid member, then advance the stack
                    stack, member = lv.target.rsplit(".next_elem().", 1)
                    tmp = fc.em.temp("u")
                    fc.em.line(f"{tmp} = {stack}.next_elem()")
                    fc.em.line(extract(f"{tmp}.{member}"))
                    fc.em.line(f"{tmp}._valid_only({tmp}.{member})")
                    return TExpr(f"{stack}.advance_next()", VoidT())
                union = self.union_of(e.args[0].value, sc, fc)
                if union is not None:
                    # the member's place once (it may make the stack element and the member)
                    tmp = fc.em.temp("h")
                    fc.em.line(f"{tmp} = {lv.target}")
                    fc.em.line(extract(tmp))
                    return TExpr(f"{union}._valid_only({tmp})", VoidT())
                return TExpr(extract(lv.target), VoidT())
            if m == "lookahead":
                if len(e.type_args) != 1 or e.args:
                    raise semantic_error(e.loc, "lookahead takes one type argument and no arguments")
                t = self.resolve_type(e.type_args[0], sc)
                st = strip_newtype(t)
                if isinstance(st, HeaderT):
                    return TExpr(f"lookahead_header(K, {st.pyclass})", t)
                w = width_of(st)
                code = f"lookahead_bits(K, {w})"
                if w in (8, 16, 32):
                    # the common peeks (an option kind, kind and length) without a call
                    n = w // 8
                    peek = "K.data[K.off]" if n == 1 else f"peek{w}(K.data, K.off)[0]"
                    code = f"({peek} if K.off + {n} <= K.n else {code})"
                if isinstance(st, BitT) and st.signed:
                    code = wrap_code(code, st)
                if isinstance(st, BoolT):
                    code = f"bool({code})"
                return TExpr(code, t)
            if m == "advance":
                n = self.expr(e.args[0].value, sc, fc)
                return TExpr(f"advance(K, {n.code})", VoidT())
            if m == "length":
                return TExpr("(K.n * 8)", BitT(32))
        if bt.name == "packet_out":
            if m == "emit":
                if len(e.args) != 1:
                    raise semantic_error(e.loc, "emit takes one argument")
                # a read: emitting a union member or stack element never written must not make it
                v = self.expr(e.args[0].value, sc, fc)
                vt = strip_newtype(v.type)
                if not isinstance(vt, (StructLikeT, StackT)):
                    raise semantic_error(e.args[0].loc, f"emit needs a header, stack, union or struct, not {v.type}")
                if isinstance(vt, HeaderT):
                    # most of a deparser's headers are absent from any one packet: no call for them
                    return TExpr(f"if {v.code}._valid: {v.code}._emit(K.out)", VoidT())
                return TExpr(f"{v.code}._emit(K.out)", VoidT())
        raise semantic_error(e.loc, f"{bt.name} has no method {m} that p4sim supports")

    def instance_call(self: Compiler, e: ast.CallExpr, sym, m: str, sc: Scope, fc: FnCtx, want: Type | None) -> TExpr:
        inst = sym.info
        kind = inst.kind
        if kind in ("control", "parser"):
            if m != "apply":
                raise semantic_error(e.loc, f"{sym.name} has no method {m}")
            return self.block_apply(e, sym, sc, fc)
        if fc.where == "parser":
            # p4c-bm2-ss: "not supported in parser on this target" (registers, counters, meters...)
            raise semantic_error(e.loc, f"{sym.name}.{m}(...): {kind} methods are not supported in a parser on this target")
        x = sym.code
        args = {p.name: a for p, a in self.bind_args(e, self.extern_method_params(inst, m, e.loc), f"{kind}.{m}")}

        def val(name: str, t: Type | None = None) -> TExpr:
            a = args[name]
            assert a is not None
            return self.expr(a, sc, fc, t)

        if kind == "register":
            elem_t = inst.type_args[0]
            if m == "read":
                lv = self.lvalue(args["result"], sc, fc)
                idx = val("index")
                self.assign_to(lv, TExpr(f"{x}.read({idx.code})", elem_t), fc, e.loc)
                return TExpr("None", VoidT())
            if m == "write":
                idx = val("index")
                v = val("value", elem_t)
                return TExpr(f"{x}.write({idx.code}, {v.code})", VoidT())
        if kind == "counter" and m == "count":
            return TExpr(f"{x}.count({val('index').code}, K)", VoidT())
        if kind == "direct_counter" and m == "count":
            return TExpr("None", VoidT())  # BMv2 counts direct counters on every hit
        if kind == "meter" and m == "execute_meter":
            lv = self.lvalue(args["result"], sc, fc)
            self.assign_to(lv, TExpr(f"{x}.execute({val('index').code}, K)", lv.type), fc, e.loc)
            return TExpr("None", VoidT())
        if kind == "direct_meter" and m == "read":
            lv = self.lvalue(args["result"], sc, fc)
            self.assign_to(lv, TExpr(f"{x}.read(K)", lv.type), fc, e.loc)
            return TExpr("None", VoidT())
        raise semantic_error(e.loc, f"{kind}.{m} is not supported by p4sim")

    def extern_method_params(self: Compiler, inst, m: str, loc: ast.Loc) -> list[ast.Param]:
        decl = self.extern_decls.get(inst.kind)
        if decl is None:
            raise semantic_error(loc, f"extern {inst.kind} is not declared")
        for meth in decl.methods:
            if meth.name == m and meth.return_type is not None:
                return meth.params
        raise semantic_error(loc, f"{inst.kind} has no method {m}")

    def static_assert(self: Compiler, e: ast.CallExpr, sc: Scope) -> TExpr:
        c = self.expr(e.args[0].value, sc, None, BoolT())
        if not c.const:
            msg = e.args[1].value.value if len(e.args) > 1 and isinstance(e.args[1].value, ast.StringLiteral) else "static assertion failed"
            raise semantic_error(e.loc, msg)
        return TExpr("True", BoolT(), True)

    # -- v1model extern functions -----------------------------------------------------------------

    def flatten_data(self: Compiler, te: TExpr, loc: ast.Loc) -> list[tuple[str, str]]:
        """(value code, width code) pairs of a field list in order (for hashes and checksums)."""
        t = strip_newtype(te.type)
        out: list[tuple[str, str]] = []
        if isinstance(t, TupleT):
            tmp_items = _split_tuple_code(te.code, len(t.elems))
            for code, et in zip(tmp_items, t.elems, strict=True):
                out.extend(self.flatten_data(TExpr(code, et), loc))
            return out
        if isinstance(t, StructLikeT):
            for fname, ft in t.fields:
                fcode = f"{te.code}.{py_ident(fname)}"
                fts = strip_newtype(ft)
                if isinstance(fts, VarbitT):
                    out.append((fcode, f"{te.code}._w_{py_ident(fname)}"))
                else:
                    out.extend(self.flatten_data(TExpr(fcode, ft), loc))
            return out
        if isinstance(t, BitT):
            return [(te.code if not t.signed else f"({te.code} & {t.mask})", str(t.width))]
        if isinstance(t, BoolT):
            return [(f"int({te.code})", "1")]
        if isinstance(t, VarbitT):
            # a varbit header field named on its own (p4c accepts it in checksum field lists):
            # its current width lives beside it in the header object
            base, dot, fname = te.code.rpartition(".")
            if dot and fname.isidentifier():
                return [(te.code, f"{base}._w_{fname}")]
        if isinstance(t, EnumT) and t.underlying is not None:
            return [(te.code, str(t.underlying.width))]
        if isinstance(t, (EnumT, ErrorT)):
            # BMv2 keeps enum and error values in 32-bit fields (a digest carries them so)
            return [(te.code, "32")]
        if isinstance(t, IntT):
            raise semantic_error(loc, "an int value in a field list needs a width (cast it)")
        raise semantic_error(loc, f"a value of type {te.type} cannot be part of a field list")

    def data_fields(self: Compiler, e: ast.Expr, sc: Scope, fc: FnCtx) -> list[tuple[str, str]]:
        if isinstance(e, ast.ListExpr):
            pairs = []
            for el in e.elems:
                pairs.extend(self.flatten_data(self.expr(el, sc, fc), el.loc))
            return pairs
        return self.flatten_data(self.expr(e, sc, fc), e.loc)

    def data_tuple(self: Compiler, e: ast.Expr, sc: Scope, fc: FnCtx) -> str:
        return "(" + "".join(f"({v}, {w}), " for v, w in self.data_fields(e, sc, fc)) + ")"

    def packed_data(self: Compiler, e: ast.Expr, sc: Scope, fc: FnCtx) -> tuple[str, int] | None:
        """The field list as one integer (first field most significant) and its width, when
        every width is known at compile time; None when a varbit makes it dynamic."""
        pairs = self.data_fields(e, sc, fc)
        if not all(w.isdigit() for _, w in pairs):
            return None
        total = sum(int(w) for _, w in pairs)
        parts = []
        shift = total
        for v, w in pairs:
            shift -= int(w)
            parts.append(f"({v} << {shift})" if shift else v)
        return ("(" + " | ".join(parts) + ")" if parts else "0"), total

    def extern_function_call(self: Compiler, e: ast.CallExpr, name: str, sc: Scope, fc: FnCtx, want: Type | None) -> TExpr:
        em = fc.em
        decl = self.extern_funcs[name]
        overloads = decl if isinstance(decl, list) else [decl]
        chosen = None
        for d in overloads:
            if len(d.params) == len(e.args) or (len(e.args) <= len(d.params) and all(p.default is not None for p in d.params[len(e.args):])):
                chosen = d
                break
        if chosen is None:
            raise semantic_error(e.loc, f"{name}: no overload takes {len(e.args)} arguments")
        bound = self.bind_args(e, chosen.params, name)
        args = {p.name: a for p, a in bound}
        pnames = [p.name for p, _ in bound]

        def arg(i: int) -> ast.Expr:
            a = args[pnames[i]]
            assert a is not None
            return a

        if name == "verify":
            if fc.where != "parser":
                raise semantic_error(e.loc, "verify may only be called in a parser")
            c = self.expr(arg(0), sc, fc, BoolT())
            err = self.expr(arg(1), sc, fc, ErrorT())
            if err.is_const:
                # the common form, without a call per check
                fc.em.line(f"if not ({c.code}):")
                fc.em.line(f"    raise ParserError({err.code})")
                return TExpr("None", VoidT())
            return TExpr(f"parser_verify({c.code}, {err.code})", VoidT())
        if name == "mark_to_drop":
            if e.args:
                sm = self.lvalue_or_expr(arg(0), sc, fc)
                return TExpr(f"mark_to_drop({sm.target})", VoidT())
            # v1model.p4 still declares the old form, but p4c-bm2-ss refuses it, in an action
            # only if it keeps the action (an action nothing uses is dropped before the back end)
            err = semantic_error(e.loc, "Expected 1 argument for mark_to_drop(): use mark_to_drop(standard_metadata)")
            if fc.where != "action":
                raise err
            self.model.action_errors.setdefault(fc.block_name, err)
            return TExpr("None", VoidT())
        if name == "hash":
            lv = self.lvalue(arg(0), sc, fc)
            algo = self.hash_algorithm(arg(1), sc)
            base = self.expr(arg(2), sc, fc)
            if not isinstance(arg(3), (ast.ListExpr, ast.StructInitExpr)) and not isinstance(
                    strip_newtype(self.expr(arg(3), sc, fc).type), (StructLikeT, TupleT)):
                # p4c-bm2-ss: "expected a struct" (a single field goes in braces: { x })
                raise semantic_error(arg(3).loc, "the data of hash() must be a list or a struct: write { ... }")
            data = self.data_tuple(arg(3), sc, fc)
            mx = self.expr(arg(4), sc, fc)
            code = f"v1_hash({algo!r}, {base.code}, {data}, {mx.code})"
            self.assign_to(lv, TExpr(code, IntT()), fc, e.loc)
            return TExpr("None", VoidT())
        if name == "random":
            lv = self.lvalue(arg(0), sc, fc)
            lo = self.expr(arg(1), sc, fc)
            hi = self.expr(arg(2), sc, fc)
            self.assign_to(lv, TExpr(f"v1_random({lo.code}, {hi.code})", IntT()), fc, e.loc)
            return TExpr("None", VoidT())
        if name == "digest":
            return self.digest_call(e, arg(0), arg(1), sc, fc)
        if name in ("clone", "clone3", "clone_preserving_field_list"):
            ctype = self.expr(arg(0), sc, fc)
            sess = self.expr(arg(1), sc, fc)
            fl = "None"
            if name == "clone_preserving_field_list":
                fl = str(self.const_int(arg(2), sc, "field list index"))
            elif name == "clone3":
                raise semantic_error(e.loc, "clone3 is not supported by p4sim: use clone_preserving_field_list")
            return TExpr(f"K.request_clone({ctype.code}, {sess.code}, {fl})", VoidT())
        if name in ("resubmit", "resubmit_preserving_field_list", "recirculate", "recirculate_preserving_field_list"):
            fl = "None"
            if name.endswith("_preserving_field_list"):
                fl = str(self.const_int(arg(0), sc, "field list index"))
            elif e.args:
                raise semantic_error(e.loc, f"{name} with a data argument is not supported by p4sim: use {name}_preserving_field_list")
            kind = "resubmit" if name.startswith("resubmit") else "recirculate"
            return TExpr(f"K.request_{kind}({fl})", VoidT())
        if name == "truncate":
            n = self.expr(arg(0), sc, fc)
            return TExpr(f"K.truncate_to({n.code})", VoidT())
        if name in ("assert", "assume"):
            c = self.expr(arg(0), sc, fc, BoolT())
            return TExpr(f"v1_assert({c.code}, {str(e.loc)!r})", VoidT())
        if name == "log_msg":
            msg = self.expr(arg(0), sc, fc, StringT())
            if len(pnames) > 1:
                data = self.data_tuple(arg(1), sc, fc)
                return TExpr(f"v1_log_msg({msg.code}, {data})", VoidT())
            return TExpr(f"v1_log_msg({msg.code}, ())", VoidT())
        if name in ("verify_checksum", "verify_checksum_with_payload", "update_checksum", "update_checksum_with_payload"):
            cond = self.expr(arg(0), sc, fc, BoolT())
            algo = self.hash_algorithm(arg(3), sc)
            payload = "True" if name.endswith("_with_payload") else "False"
            packed = self.packed_data(arg(1), sc, fc)
            if packed is not None:
                # widths known: pack in generated code, no per-field loop at run time
                data = f"{packed[0]}, {packed[1]}"
                check, compute = "v1_verify_checksum_packed", "v1_checksum_packed"
            else:
                data = self.data_tuple(arg(1), sc, fc)
                check, compute = "v1_verify_checksum", "v1_checksum"
            em.line(f"if {cond.code}:")
            with em.indent():
                if name.startswith("verify"):
                    ck = self.expr(arg(2), sc, fc)
                    em.line(f"{check}(K, {data}, {ck.code}, {algo!r}, {payload})")
                else:
                    lv = self.lvalue(arg(2), sc, fc)
                    w = width_of(lv.type)
                    self.assign_to(lv, TExpr(f"{compute}(K, {data}, {algo!r}, {payload}, {w})", IntT()), fc, e.loc)
            return TExpr("None", VoidT())
        raise semantic_error(e.loc, f"{name} is not supported by p4sim")

    def hash_algorithm(self: Compiler, e: ast.Expr, sc: Scope) -> str:
        te = self.expr(e, sc, None)
        t = strip_newtype(te.type)
        if not isinstance(t, EnumT) or t.name != "HashAlgorithm" or te.const is None:
            raise semantic_error(e.loc, "the algorithm must be a HashAlgorithm constant")
        return t.members[te.const]

    def digest_call(self: Compiler, e: ast.CallExpr, receiver: ast.Expr, data: ast.Expr, sc: Scope, fc: FnCtx) -> TExpr:
        self.expr(receiver, sc, fc)
        want = self.resolve_type(e.type_args[0], sc) if e.type_args else None
        te = self.expr(data, sc, fc, want)
        t = strip_newtype(te.type)
        if isinstance(t, TupleT):
            info = self.digest_info_tuple(t)
            pairs = self.flatten_data(te, data.loc)
            values = "(" + "".join(v + ", " for v, _ in pairs) + ")"
            return TExpr(f"K.digest({info.name!r}, lambda: {values})", VoidT())
        if not isinstance(t, StructLikeT):
            raise semantic_error(data.loc, "digest data must be a struct (give the type: digest<T>(...))")
        if not isinstance(t, StructT):
            # p4c-bm2-ss: "expected a struct type" (a header or header union is refused)
            raise semantic_error(data.loc, f"digest data must be a struct, not the {t.name} {'header' if isinstance(t, HeaderT) else 'header union'}")
        info = self.digest_info(t)
        pairs = self.flatten_data(te, data.loc)
        values = "(" + "".join(v + ", " for v, _ in pairs) + ")"
        # a thunk: BMv2 reads the digest's fields when ingress ends
        return TExpr(f"K.digest({info.name!r}, lambda: {values})", VoidT())

    # -- actions and functions --------------------------------------------------------------------

    def action_call(self: Compiler, e: ast.CallExpr, sym, sc: Scope, fc: FnCtx) -> TExpr:
        info = sym.info
        # p4c's front end inlines an action called from another action, so such a call alone
        # does not put the callee in P4Info; calls from apply blocks and functions do
        if fc.where != "action":
            info.used = True
            if self.block_stack:
                self.block_stack[-1].references.append(info.name)
        else:
            self.model.action_callees.setdefault(fc.block_name, set()).add(info.name)
        decl: ast.ActionDecl = sym.decl
        bound = self.bind_args(e, decl.params, f"action {decl.name}")
        # exit in an action: p4c copies the out/inout arguments of an action called from a
        # control back before it exits (RemoveActionParameters), but not those of one it
        # inlined into another action (the copy-out there follows the exit)
        exits = info.pyname in self.action_exits
        return self.invoke(f"{info.pyname}(K, L", bound, sym.value, sc, fc, e.loc, VoidT(),
                           self.action_reach.get(info.pyname, frozenset()),
                           on_exit=("all" if fc.where != "action" else "none") if exits else None)

    def function_call(self: Compiler, e: ast.CallExpr, sym, sc: Scope, fc: FnCtx) -> TExpr:
        decl: ast.FunctionDecl = sym.decl
        bound = self.bind_args(e, decl.params, f"function {decl.name}")
        pyname, ptypes, rtype = self.function_instance(sym, [a for _, a in bound], sc, fc, e)
        return self.invoke(f"{pyname}(K", bound, ptypes, sc, fc, e.loc, rtype,
                           inline=self.function_inline.get(pyname))

    def invoke(self: Compiler, head: str, bound: list[tuple[ast.Param, ast.Expr | None]], ptypes: list[Type],
               sc: Scope, fc: FnCtx, loc: ast.Loc, rtype: Type, reaches: frozenset[tuple] = frozenset(),
               on_exit: str | None = None, inline: tuple[list[str], str] | None = None) -> TExpr:
        """Emit a call with copy-in/copy-out. Scalars go in by value and out/inout ones come back
        in the returned tuple. Aggregates go by reference, which is copy-in/copy-out exactly
        unless the place is reachable another way during the call: through another argument
        (``a(hdr.h, hdr.h)``), through control state the callee touches itself (``reaches``:
        the places of ``L`` an action uses), or through side effects of a later argument.
        Those are copied in and written back after the call. Copy-out is in parameter order.

        ``on_exit``, for a callee that may ``exit``: what is written back when it does ("all",
        "unaliased": the scalars no other argument or callee state overlaps, which p4c passes
        as the place itself; None or "none": nothing). The callee leaves its scalar outs in
        ``K.outs`` then.

        ``inline``, for a function whose body is one pure expression: its parameter names and
        that expression, used instead of the call where every argument is pure too (no call in
        it, so evaluating it where, and as often as, the body reads it changes nothing)."""
        aliased = self._aliased_arguments(bound, ptypes, sc, reaches)
        args: list[TExpr] = []
        marks: list[int | None] = []  # where an argument's value must be taken (None: a place)
        outs: list[tuple[str, LValue | None, Type, str, bool]] = []  # (kind, place, type, temp, aliased)
        for i, ((p, a), pt) in enumerate(zip(bound, ptypes, strict=True)):
            st = strip_newtype(pt)
            aggregate = isinstance(st, (StructLikeT, StackT))
            if p.direction in ("out", "inout"):
                if a is None or isinstance(a, ast.DontCareExpr):
                    tmp = fc.em.temp("dc")
                    fc.em.line(f"{tmp} = {default_value_code(pt)}")
                    args.append(TExpr(tmp, pt))
                    marks.append(None)
                    if not aggregate:
                        outs.append(("scalar", None, pt, "", True))
                    continue
                if aggregate:
                    self.check_whole_element_write(a, sc, f"passing as {p.direction} argument")
                    lv = self.lvalue_or_expr(a, sc, fc)
                    if i in aliased:
                        tmp = fc.em.temp("cp")
                        init = copy_code(pt, lv.target) if p.direction == "inout" else default_value_code(pt)
                        fc.em.line(f"{tmp} = {init}")
                        args.append(TExpr(tmp, pt))
                        outs.append(("aggregate", lv, pt, tmp, True))
                    else:
                        # an out parameter starts uninitialized: its headers invalid (as the
                        # fresh copy p4c passes, written back over the argument)
                        if p.direction == "out" and isinstance(st, HeaderT):
                            fc.em.line(f"{lv.target}._valid = False")
                        elif p.direction == "out":
                            fc.em.line(f"{lv.target}._set({default_value_code(pt)})")
                        args.append(TExpr(lv.target, pt))
                    marks.append(None)
                else:
                    lv = self.lvalue(a, sc, fc)
                    cur = self.expr(a, sc, fc, pt) if p.direction == "inout" else TExpr("0", pt, 0)
                    args.append(cur)
                    marks.append(self._mark(fc))
                    outs.append(("scalar", lv, pt, "", i in aliased))
            else:
                te = self.expr(a, sc, fc, pt) if a is not None else TExpr("None", pt)
                if aggregate and i in aliased:
                    te = TExpr(copy_code(pt, te.code), pt)
                args.append(te)
                marks.append(self._mark(fc))
        # values taken before statements that later arguments emitted are saved first
        ordered = self.in_order(fc, [(te, m) for te, m in zip(args, marks, strict=True) if m is not None])
        it = iter(ordered)
        codes = [next(it).code if m is not None else te.code for te, m in zip(args, marks, strict=True)]
        if inline is not None and not outs and not any(_CALL.search(c) for c in codes):
            pnames, body = inline
            value = dict(zip(pnames, codes, strict=True))
            return TExpr("(" + _PARAM.sub(lambda m: f"({value[m.group(0)]})" if m.group(0) in value else m.group(0),
                                          body) + ")", rtype)
        call = head + "".join(", " + x for x in codes) + ")"
        has_ret = not isinstance(rtype, VoidT)
        scalars = sum(1 for kind, *_ in outs if kind == "scalar")
        if not outs:
            return TExpr(call, rtype)
        tmp = fc.em.temp("r")
        if on_exit in ("all", "unaliased"):
            fc.em.line("try:")
            with fc.em.indent():
                fc.em.line(f"{tmp} = {call}")
            fc.em.line("except ExitSignal:")
            with fc.em.indent():
                if scalars:
                    fc.em.line(f"{tmp} = K.outs")
                self._copy_out(outs, tmp, 0, fc, loc, on_exit == "unaliased")
                fc.em.line("raise")
        else:
            fc.em.line(f"{tmp} = {call}")
        self._copy_out(outs, tmp, 1 if has_ret else 0, fc, loc, False)
        if not has_ret:
            return TExpr("None", rtype)
        return TExpr(f"{tmp}[0]" if scalars else tmp, rtype)

    def _copy_out(self: Compiler, outs: list, result: str, first: int, fc: FnCtx, loc: ast.Loc, unaliased_only: bool) -> None:
        k = first
        wrote = False
        for kind, lv, pt, ctmp, aliased in outs:
            if kind == "aggregate":
                assert lv is not None
                if not unaliased_only:
                    fc.em.line(f"{lv.target}._set({ctmp})")
                    wrote = True
                continue
            if lv is not None and not (unaliased_only and aliased):
                self.assign_to(lv, TExpr(f"{result}[{k}]", pt), fc, loc)
                wrote = True
            k += 1
        if not wrote and unaliased_only:
            fc.em.line("pass")

    def _aliased_arguments(self: Compiler, bound: list[tuple[ast.Param, ast.Expr | None]], ptypes: list[Type],
                           sc: Scope, reaches: frozenset[tuple]) -> set[int]:
        """Indices of the arguments whose places are reachable another way during the call (see
        :meth:`invoke`): the aggregates among them are copied in and out."""
        paths = [self.access_path(a, sc) if a is not None else None for _, a in bound]
        written = [p.direction in ("out", "inout") for p, _ in bound]
        aliased: set[int] = set()
        for i, pi in enumerate(paths):
            if pi is None:
                continue
            if any(paths_overlap(pi, r) for r in reaches):
                aliased.add(i)
                continue
            for j, pj in enumerate(paths):
                if j != i and pj is not None and (written[i] or written[j]) and paths_overlap(pi, pj):
                    aliased.add(i)
                    break
            else:
                if isinstance(strip_newtype(ptypes[i]), (StructLikeT, StackT)) and \
                        any(a is not None and has_side_effects(a) for _, a in bound[i + 1:]):
                    aliased.add(i)
        return aliased

    def access_path(self: Compiler, e: ast.Expr, sc: Scope) -> tuple | None:
        """The place ``e`` names as (root, member or index, ...), a run-time index as None; None
        when ``e`` is not a place of a variable."""
        if isinstance(e, ast.PathExpr):
            sym = (sc.root() if e.is_global else sc).lookup(e.name)
            if sym is None or sym.kind != "var":
                return None
            return (sym.code,)
        if isinstance(e, ast.MemberExpr):
            base = self.access_path(e.expr, sc)
            if base is None:
                return None
            return base + ((None,) if e.member in ("next", "last") else (py_ident(e.member),))
        if isinstance(e, ast.IndexExpr):
            base = self.access_path(e.expr, sc)
            if base is None:
                return None
            try:
                idx = self.expr(e.index, sc, None).const
            except CompileError:
                idx = None
            return base + (idx if isinstance(idx, int) else None,)
        if isinstance(e, ast.SliceExpr):
            return self.access_path(e.expr, sc)
        return None

    def block_apply(self: Compiler, e: ast.CallExpr, sym, sc: Scope, fc: FnCtx) -> TExpr:
        inst = sym.info
        params: list[ast.Param] = inst.apply_params
        bound = self.bind_args(e, params, f"{sym.name}.apply")
        # p4c inlines the control, passing each argument no other one overlaps as the place
        # itself: what the control wrote there before an exit stays; copies are dropped
        return self.invoke(f"{inst.pyname}(K", bound, inst.apply_types, sc, fc, e.loc, VoidT(),
                           on_exit="unaliased" if inst.kind == "control" else None)


def _split_tuple_code(code: str, n: int) -> list[str]:
    return [f"{code}[{i}]" for i in range(n)]


__all__ = ["CallMixin", "V1_FUNCTIONS", "const_code", "DontCareT"]


def paths_overlap(a: tuple, b: tuple) -> bool:
    """Whether two places (see ``CallMixin.access_path``) may share storage: one contains the
    other, a run-time index matching any index."""
    if a[0] != b[0]:
        return False
    for x, y in zip(a[1:], b[1:], strict=False):
        if x is not None and y is not None and x != y:
            return False
    return True


_PURE_METHODS = {"isValid", "minSizeInBits", "minSizeInBytes", "maxSizeInBits", "maxSizeInBytes"}


def has_side_effects(e: object) -> bool:
    """Whether an expression contains a call that may change state (anything but the pure
    header methods)."""
    if isinstance(e, ast.CallExpr):
        if not (isinstance(e.func, ast.MemberExpr) and e.func.member in _PURE_METHODS):
            return True
    if isinstance(e, ast.Node):
        return any(has_side_effects(v) for k, v in vars(e).items() if k != "loc")
    if isinstance(e, (list, tuple)):
        return any(has_side_effects(v) for v in e)
    return False
