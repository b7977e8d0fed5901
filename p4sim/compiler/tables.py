"""Table and value-set translation: keys, action lists, defaults, const entries, properties."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from . import ast
from .errors import CompileError
from .exprs import TExpr
from .model import ActionInfo, ActionRefInfo, ConstEntryInfo, KeyInfo, TableInfo, ValueSetInfo
from .symbols import Emitter, FnCtx, Scope, Sym, annotation, semantic_error
from .types import BitT, BoolT, EnumT, ErrorT, ExternT, NewT, StructLikeT, Type, strip_newtype, width_of

if TYPE_CHECKING:
    from .elaborate import Compiler

DEFAULT_TABLE_SIZE = 1024  # what p4c assumes for a table without a size property


def _const_text(e: ast.IntLiteral) -> str:
    """A constant as p4c prints it: its value in the base it was written in, width dropped."""
    digits = e.text.split("w", 1)[-1].split("s", 1)[-1].lower() if e.text else ""
    for prefix, fmt in (("0x", "x"), ("0b", "b"), ("0o", "o")):
        if digits.startswith(prefix) and e.value >= 0:
            return prefix + format(e.value, fmt)
    return str(e.value)


def expr_text(e: ast.Expr, field_name: Callable[[ast.MemberExpr], str | None] = lambda m: None) -> str | None:
    """The name p4c gives a key expression in P4Info, or None where p4c wants an @name.

    p4c names a path, a field (by the field's own ``@name`` when it has one: a name starting
    with a dot stands alone), a stack element, a slice, ``isValid()`` (``.$valid$``) and a
    mask with a constant (``x & 0xff``); anything else is a "complex key expression"."""

    def text(e: ast.Expr) -> str | None:
        if isinstance(e, ast.PathExpr):
            return ("." if e.is_global else "") + e.name
        if isinstance(e, ast.MemberExpr):
            member = field_name(e) or e.member
            if member.startswith("."):
                return member[1:]
            inner = text(e.expr)
            return None if inner is None else f"{inner}.{member}"
        if isinstance(e, ast.IndexExpr):
            inner, index = text(e.expr), text(e.index)
            return None if inner is None or index is None else f"{inner}[{index}]"
        if isinstance(e, ast.SliceExpr):
            inner, hi, lo = text(e.expr), text(e.hi), text(e.lo)
            return None if inner is None or hi is None or lo is None else f"{inner}[{hi}:{lo}]"
        if isinstance(e, ast.IntLiteral):
            return _const_text(e)
        if isinstance(e, ast.CallExpr) and isinstance(e.func, ast.MemberExpr) and e.func.member == "isValid" and not e.args:
            inner = text(e.func.expr)
            return None if inner is None else f"{inner}.$valid$"
        if isinstance(e, ast.BinaryExpr) and e.op == "&" and isinstance(e.right, ast.IntLiteral):
            inner = text(e.left)
            return None if inner is None else f"{inner} & {_const_text(e.right)}"
        return None

    return text(e)


# The keyset forms (besides a constant) that p4c-bm2-ss puts in an entry of each match kind
# (backends/bmv2 convertTableEntries); any other is "unsupported <kind> key expression".
_FORM_TYPES: dict[str, type[ast.Expr] | tuple[type[ast.Expr], ...]] = {
    "mask": ast.MaskExpr, "range": ast.RangeExpr, "dontcare": (ast.DontCareExpr, ast.DefaultExpr)}
_FORM_TEXT = {"mask": "a mask (&&&)", "range": "a range (..)", "dontcare": "'_'"}
_KEY_FORMS: dict[str, tuple[str, ...]] = {
    "exact": (), "ternary": ("mask", "dontcare"), "lpm": ("mask", "dontcare"), "range": ("range", "dontcare"),
    "optional": ("dontcare",)}
_KEY_FORMS_TEXT = {
    "exact": "only a value", "ternary": "a value, a mask or '_'", "lpm": "a value, a mask or '_'",
    "range": "a value, a range or '_'", "optional": "a value or '_'"}


def key_code(te: TExpr) -> str:
    t = strip_newtype(te.type)
    if isinstance(t, BoolT):
        return f"int({te.code})"
    if isinstance(t, BitT) and t.signed:
        return f"({te.code} & {t.mask})"
    return te.code


class TableMixin:
    """Table translation, mixed into :class:`Compiler`."""

    def field_external_name(self: Compiler, m: ast.MemberExpr, sc: Scope, fc: FnCtx) -> str | None:
        """The ``@name`` of the struct or header field ``m`` selects, if it has one."""
        try:
            t = strip_newtype(self.expr(m.expr, sc, fc).type)
        except CompileError:
            return None
        if not isinstance(t, StructLikeT):
            return None
        a = annotation(self.field_annos.get(t.name, {}).get(m.member, []), "name")
        if a is not None and a.args and isinstance(a.args[0], ast.StringLiteral):
            return a.args[0].value
        return None

    def define_table(self: Compiler, d: ast.TableDecl, sc: Scope, prefix: str) -> TableInfo:
        name = self.cp_name(prefix, d.name, d.annotations)
        pyname = self.names.make("tbl", name)
        em = Emitter()
        fc = FnCtx(em, "control", block_name=name)
        keys: list[KeyInfo] = []
        key_codes: list[str] = []
        selector_keys: list[KeyInfo] = []
        selector_codes: list[str] = []
        for k in d.key or []:
            if k.match_kind not in self.match_kinds:
                raise semantic_error(k.loc, f"{k.match_kind}: unknown match kind")
            te = self.expr(k.expr, sc, fc)
            t = te.type
            st = strip_newtype(t)
            if not isinstance(st, (BitT, BoolT, ErrorT)) and not (isinstance(st, EnumT) and st.underlying is not None):
                raise semantic_error(k.expr.loc, f"a table key must be bit<>, int<>, bool, error or a serializable enum, not {t}")
            an = annotation(k.annotations, "name")
            if an is not None and an.args and isinstance(an.args[0], ast.StringLiteral):
                kname = an.args[0].value
            else:
                named = expr_text(k.expr, lambda m: self.field_external_name(m, sc, fc))
                if named is None:
                    raise semantic_error(k.expr.loc, "complex key expression requires a @name annotation")
                kname = named
            # an error key has no width in P4Info (p4c writes none)
            kwidth = 0 if isinstance(st, ErrorT) else width_of(t)
            kinfo = KeyInfo(kname, k.match_kind, kwidth, list(k.annotations), t.name if isinstance(t, NewT) else None, t)
            if k.match_kind == "selector":
                # selector fields are no match field: they are hashed to pick a group member
                selector_keys.append(kinfo)
                selector_codes.append(key_code(te))
                continue
            keys.append(kinfo)
            key_codes.append(key_code(te))
        actions: list[ActionRefInfo] = []
        action_syms: dict[str, Sym] = {}
        bound: dict[str, tuple[ast.ActionRef, Sym]] = {}
        for ref in d.actions:
            sym = (sc.root() if ref.is_global else sc).lookup(ref.name)
            if sym is None or sym.kind != "action":
                raise semantic_error(ref.loc, f"{ref.name}: action not found")
            # arguments given here bind the action's directional parameters (all of them, in
            # order); the directionless ones come from the control plane
            directional = [p for p in sym.decl.params if p.direction != ""]
            if len(ref.args) != len(directional):
                raise semantic_error(ref.loc, f"action {ref.name} in the actions of table {name}: its "
                                     f"{len(directional)} directional parameter(s) must be given here, "
                                     f"{len(ref.args)} argument(s) are")
            if ref.args:
                bound[ref.name] = (ref, sym)
            for p, pt in zip(sym.decl.params, sym.value, strict=True):
                if p.direction == "" and isinstance(strip_newtype(pt), BoolT):
                    # p4c-bm2-ss: control-plane parameters are bit strings on BMv2
                    raise semantic_error(p.loc, f"{p.name}: action parameters must be bit<> or int<> on this target")
            scope = "TABLE_AND_DEFAULT"
            if annotation(ref.annotations, "defaultonly") is not None:
                scope = "DEFAULT_ONLY"
            elif annotation(ref.annotations, "tableonly") is not None:
                scope = "TABLE_ONLY"
            actions.append(ActionRefInfo(sym.info, scope, list(ref.annotations)))
            action_syms[ref.name] = sym
        info = TableInfo(name, pyname, keys, actions, DEFAULT_TABLE_SIZE, annotations=list(d.annotations), applied=False)
        info.hidden = annotation(d.annotations, "hidden") is not None
        info.selector_keys = selector_keys
        # default action
        if d.default_action is not None:
            ref = d.default_action
            sym = action_syms.get(ref.name) or (sc.root() if ref.is_global else sc).lookup(ref.name)
            if sym is None or sym.kind != "action":
                raise semantic_error(ref.loc, f"{ref.name}: action not found")
            if ref.name not in action_syms:
                raise semantic_error(ref.loc, f"default action {ref.name} is not in the table's actions")
            info.default_action = sym.info
            info.default_args = self.action_args(ref, sym, sc)
            info.default_const = d.default_action_const
        else:
            noaction = self.root.lookup("NoAction")
            if noaction is not None and noaction.kind == "action":
                info.default_action = noaction.info
        # entries
        if d.entries is not None:
            info.entries_const = d.entries_const
            priorities = self.entry_priorities(d, keys, sc, name)
            for ent, p in zip(d.entries, priorities, strict=True):
                if len(ent.keysets) != len(keys):
                    raise semantic_error(ent.loc, f"entry has {len(ent.keysets)} keys, the table has {len(keys)}")
                matches = [self.entry_match(ks, k, sc) for ks, k in zip(ent.keysets, keys, strict=True)]
                sym = action_syms.get(ent.action.name)
                if sym is None:
                    raise semantic_error(ent.action.loc, f"{ent.action.name} is not one of the table's actions")
                info.const_entries.append(ConstEntryInfo(matches, sym.info, self.action_args(ent.action, sym, sc), p))
        # other properties
        for prop in d.properties:
            if prop.name == "size":
                info.size = self.const_int(prop.value, sc, "table size")
            elif prop.name == "implementation":
                self.table_implementation(info, prop, sc, prefix)
            elif prop.name in ("counters", "meters"):
                if not isinstance(prop.value, ast.PathExpr):
                    raise semantic_error(prop.value.loc, f"{prop.name} must name an instance declared in the control")
                isym = sc.lookup(prop.value.name)
                if isym is None or isym.kind != "instance":
                    raise semantic_error(prop.value.loc, f"{prop.value.name}: instance not found")
                inst = isym.info
                if prop.name == "counters":
                    if inst.kind != "direct_counter":
                        raise semantic_error(prop.loc, "counters must be a direct_counter")
                    inst.table = name
                    info.direct_counter = inst.name
                else:
                    if inst.kind != "direct_meter":
                        raise semantic_error(prop.loc, "meters must be a direct_meter")
                    inst.table = name
                    info.direct_meter = inst.name
            elif prop.name == "support_timeout":
                v = self.expr(prop.value, sc, None, BoolT())
                info.support_timeout = bool(v.const)
            # any other property (e.g. target-specific ones) is kept out of the program, as BMv2 does
        profile = self.profile_by_name.get(info.implementation or "")
        if selector_keys and (profile is None or profile.kind != "action_selector"):
            # p4c accepts selector keys with no action_selector to feed: they are no match field
            # (not in P4Info, not in BMv2's table key), so they have no effect
            selector_keys, selector_codes = [], []
            info.selector_keys = []
        if profile is not None and profile.kind == "action_selector" and not selector_keys:
            raise semantic_error(d.loc, f"table {name}: an action_selector needs at least one selector key")
        if profile is not None and d.entries is not None:
            raise semantic_error(d.loc, f"table {name}: entries are not supported on tables with an action profile")
        binding = "T_" + pyname[4:]
        lines = [f"def {pyname}(K, L):"]
        lines.extend(em.lines)
        key = "(" + "".join(c + ", " for c in key_codes) + ")"
        if profile is not None:
            # indirect table: the binding resolves member/group; selector values feed the hash
            sel = "(" + "".join(c + ", " for c in selector_codes) + ")"
            lines.append(f"    _hit, _fn, _args = {binding}.lookup({key}, K, {sel})")
        else:
            lines.append(f"    _hit, _fn, _args = {binding}.lookup({key}, K)")
        lines.extend(self.bound_action_calls(bound, sc, name))
        lines.append("    return (_hit, _fn.__name__)")
        self.chunks.append("\n".join(lines) + "\n")
        sc.declare(Sym("table", d.name, None, code=pyname, info=info))
        if self.block_stack:
            use = self.block_stack[-1]
            use.tables.append(name)
            use.references.extend(ar.action.name for ar in actions)
            if info.default_action is not None:
                use.references.append(info.default_action.name)
        self.table_by_name[name] = (info, action_syms)
        self.model.tables.append(info)
        return info

    def entry_priorities(self: Compiler, d: ast.TableDecl, keys: list[KeyInfo], sc: Scope, name: str) -> list[int | None]:
        """The priority of each of ``d``'s entries, as P4Runtime orders them (the larger wins).

        P4_16 spec, "Entry priorities": with no priority given, entries are matched in program
        order (the first wins); ``largest_priority_wins = false`` makes smaller values win and
        ``priority_delta`` spaces the values the compiler picks. Given ones start at the first
        entry; an entry without one takes the previous one's minus the delta (plus, when the
        smallest wins). p4c-bm2-ss's rules on top: no priorities in ``const entries``, none where
        every key is exact or lpm, and every value at least 1. Equal priorities keep program
        order (p4c sorts stably). Tables that need none (exact and lpm keys) get None."""
        entries = d.entries or []
        needs = any(k.match_kind in ("ternary", "range", "optional") for k in keys)
        given = [ent.priority is not None for ent in entries]
        if any(given):
            first = next(ent for ent in entries if ent.priority is not None)
            if d.entries_const:
                raise semantic_error(first.loc, f"table {name}: entries of 'const entries' cannot have priorities "
                                                "(p4c-bm2-ss refuses them); declare them with 'entries'")
            if not needs:
                raise semantic_error(first.loc, f"table {name}: its keys (exact or lpm) need no priorities, "
                                                "but entries give some")
            if not given[0]:
                raise semantic_error(entries[0].loc, f"table {name}: the first entry needs a priority when any "
                                                     "entry has one")
        if not needs:
            return [None] * len(entries)
        annotated = [annotation(ent.annotations, "priority") for ent in entries]
        if any(a is not None for a in annotated) and not any(given):
            # The older form, ``key : action @priority(N)``: p4c-bm2-ss writes N into BMv2's
            # JSON as it is, and an entry without one its place in the list (1, 2, ...). BMv2
            # takes the smallest value first, ties in program order, whatever
            # largest_priority_wins says (checked against p4c-bm2-ss 1.2.5 and simple_switch).
            bmv2 = []
            for j, (ent, a) in enumerate(zip(entries, annotated, strict=True)):
                if a is None:
                    bmv2.append(j + 1)
                    continue
                if len(a.args) != 1:
                    raise semantic_error(ent.loc, "@priority takes one integer")
                bmv2.append(self.const_int(a.args[0], sc, "priority"))
            top = max(bmv2)
            return [top + 1 - p for p in bmv2]
        largest, delta = True, 1
        for prop in d.properties:
            if prop.name == "largest_priority_wins":
                v = self.expr(prop.value, sc, None, BoolT())
                if v.const is None:
                    raise semantic_error(prop.value.loc, "largest_priority_wins must be a compile-time constant")
                largest = bool(v.const)
            elif prop.name == "priority_delta":
                delta = self.const_int(prop.value, sc, "priority_delta")
                if delta <= 0:
                    raise semantic_error(prop.value.loc, "priority_delta must be a positive integer")
        prios: list[int] = []
        if not any(given):
            n = len(entries)
            prios = [1 + (n - 1 - j if largest else j) * delta for j in range(n)]
        else:
            p = 0
            for ent in entries:
                if ent.priority is not None:
                    p = self.const_int(ent.priority, sc, "priority")
                else:
                    p = p - delta if largest else p + delta
                if p < 1:
                    raise semantic_error(ent.loc, f"table {name}: entry priority {p} is below 1 "
                                                  "(p4c-bm2-ss: overflow in priority computation)")
                prios.append(p)
        if largest:
            return list(prios)
        # the smallest wins: turned around so that the larger wins, order and ties kept
        top = max(prios, default=0)
        return [top + 1 - p for p in prios]

    def table_implementation(self: Compiler, info: TableInfo, prop: ast.TableProperty, sc: Scope, prefix: str) -> None:
        """``implementation = <action_profile | action_selector>``: a declared instance, or one
        constructed in place. p4c names an in-place one after the property: its @name verbatim
        (not prefixed with the control's name), else ``implementation``."""
        v = prop.value
        if isinstance(v, ast.PathExpr):
            isym = sc.lookup(v.name)
            if isym is None or isym.kind != "instance":
                raise semantic_error(v.loc, f"{v.name}: instance not found")
            inst = isym.info
        elif isinstance(v, ast.CallExpr) and isinstance(v.func, ast.PathExpr):
            t = self.resolve_type(ast.NamedTypeRef(v.func.name, v.type_args, loc=v.loc), sc)
            if not isinstance(t, ExternT):
                raise semantic_error(v.loc, f"{v.func.name} is not an extern")
            decl = ast.Instantiation(prop.name, ast.NamedTypeRef(v.func.name, v.type_args, loc=v.loc), v.args,
                                     annotations=list(prop.annotations), loc=prop.loc)
            if t.decl.name in ("action_profile", "action_selector"):
                existing = self.profile_by_name.get(self.cp_name("", prop.name, prop.annotations))
                if existing is not None and existing.inline:
                    # the same in-place name twice: p4c's symbol table merges them into one profile
                    inst = existing
                else:
                    inst = self.extern_instance(decl, t, sc, "")
                    inst.inline = True
            else:
                inst = None
        else:
            raise semantic_error(v.loc, "implementation must name or construct an action_profile or action_selector")
        if inst is None or inst.kind not in ("action_profile", "action_selector"):
            raise semantic_error(prop.loc, "implementation must be an action_profile or action_selector")
        self.profile_by_name[inst.name] = inst
        info.implementation = inst.name

    def bound_action_calls(self: Compiler, bound: dict[str, tuple[ast.ActionRef, Sym]], sc: Scope,
                           table: str) -> list[str]:
        """The table function's call of the action it found: ``_fn(K, L, *_args)``, except for
        actions with arguments bound in the actions list, called as ``a(bound..., _args...)``
        (those arguments evaluated when the action runs, copied in and out as for any call)."""
        lines: list[str] = []
        for i, (ref, sym) in enumerate(bound.values()):
            em = Emitter(depth=2)
            fc = FnCtx(em, "control", block_name=table)
            inner = Scope(sc)
            ptypes: list[Type] = sym.value
            args = list(ref.args)
            cp = [t for p, t in zip(sym.decl.params, ptypes, strict=True) if p.direction == ""]
            for j, t in enumerate(cp):
                inner.declare(Sym("var", f"__cp{j}", t, code=f"_args[{j}]", readonly=True), ref.loc)
                args.append(ast.Argument(ast.PathExpr(f"__cp{j}", loc=ref.loc), loc=ref.loc))
            call = ast.CallExpr(ast.PathExpr(ref.name, ref.is_global, loc=ref.loc), args, loc=ref.loc)
            self.stmt(ast.CallStmt(call, loc=ref.loc), inner, fc)
            lines.append(f"    {'elif' if i else 'if'} _fn is {sym.info.pyname}:")
            lines.extend(em.lines or ["        pass"])
        if bound:
            lines.append("    else:")
            lines.append("        _fn(K, L, *_args)")
        else:
            lines.append("    _fn(K, L, *_args)")
        return lines

    def action_args(self: Compiler, ref: ast.ActionRef, sym: Sym, sc: Scope) -> list[int]:
        decl: ast.ActionDecl = sym.decl
        cp_params = [p for p in decl.params if p.direction == ""]
        args = ref.args
        if len(args) == len(decl.params) and len(cp_params) < len(decl.params):
            # a default action or entry of an action with bound (directional) arguments names
            # them too: those are the table's, the rest are the control plane's
            args = args[len(decl.params) - len(cp_params):]
        call = ast.CallExpr(ast.PathExpr(ref.name), args, loc=ref.loc)
        if len(args) != len(cp_params):
            raise semantic_error(ref.loc, f"{ref.name} needs {len(cp_params)} arguments, got {len(args)}")
        out = []
        ptypes: list[Type] = sym.value
        by_name = {p.name: t for p, t in zip(decl.params, ptypes, strict=True)}
        for p, a in self.bind_args(call, cp_params, f"action {ref.name}"):
            assert a is not None
            te = self.expr(a, sc, None, by_name[p.name])
            if te.const is None:
                raise semantic_error(a.loc, "action arguments here must be compile-time constants")
            out.append(int(te.const) & ((1 << width_of(by_name[p.name])) - 1))
        return out

    def entry_match(self: Compiler, ks: ast.Expr, k: KeyInfo, sc: Scope) -> tuple[str, int | None, int | None]:
        full = (1 << k.width) - 1
        self.check_entry_key_form(ks, k, sc)
        if isinstance(ks, (ast.DefaultExpr, ast.DontCareExpr)):
            return ("dontcare", None, None)
        kt = strip_newtype(k.p4type) if k.p4type is not None else None
        if isinstance(kt, EnumT) and kt.underlying is not None:
            # the key's values must be of its enum type (p4c: a bit<W> is no implicit enum)
            # (a mask may be a plain number)
            parts = {ast.MaskExpr: ("value",), ast.RangeExpr: ("lo", "hi")}.get(type(ks), ())
            for e in [getattr(ks, f) for f in parts] or [ks]:
                vt = self.expr(e, sc, None).type
                if strip_newtype(vt) is not kt:
                    raise semantic_error(e.loc, f"cannot use a value of type {vt} where {k.p4type} is expected "
                                         "(p4c-bm2-ss: no implicit cast to an enum)")
        if isinstance(ks, ast.MaskExpr):
            v = self.const_int(ks.value, sc, "key value") & full
            m = self.const_int(ks.mask, sc, "key mask") & full
            if k.match_kind == "lpm":
                plen = bin(m).count("1")
                if m != (full >> (k.width - plen) << (k.width - plen)) & full:
                    raise semantic_error(ks.loc, "an lpm mask must be a prefix")
                return ("lpm", v & m, plen)
            return ("ternary", v & m, m)
        if isinstance(ks, ast.RangeExpr):
            lo = self.const_int(ks.lo, sc, "range bound")
            hi = self.const_int(ks.hi, sc, "range bound")
            return ("range", lo & full, hi & full)
        te = self.expr(ks, sc, None)
        if te.const is None:
            raise semantic_error(ks.loc, "entry keys must be compile-time constants")
        v = int(te.const) & full
        if k.match_kind == "exact":
            return ("exact", v, None)
        if k.match_kind == "ternary":
            return ("ternary", v, full)
        if k.match_kind == "lpm":
            return ("lpm", v, k.width)
        if k.match_kind == "range":
            return ("range", v, v)
        return ("optional", v, None)

    def check_entry_key_form(self: Compiler, ks: ast.Expr, k: KeyInfo, sc: Scope) -> None:
        """Refuse what p4c-bm2-ss cannot write into BMv2's JSON as an entry's key: each match kind
        takes a constant and only its own forms (``&&&`` for ternary and lpm, ``..`` for range,
        ``_``/``default`` for all but exact), and an ``error`` value is no constant to it (p4c
        keeps error members symbolic; BMv2 entries hold numbers)."""
        kind = "LPM" if k.match_kind == "lpm" else k.match_kind
        forms = _KEY_FORMS.get(k.match_kind)
        if forms is None:
            return  # selector keys take no entries (refused with the table's profile)
        form = next((f for f in _FORM_TYPES if isinstance(ks, _FORM_TYPES[f])), None)
        if form is not None and form not in forms:
            text = "'default'" if isinstance(ks, ast.DefaultExpr) else _FORM_TEXT[form]
            raise semantic_error(ks.loc, f"{text}: unsupported {kind} key expression "
                                 f"(an entry's {kind} key takes {_KEY_FORMS_TEXT[k.match_kind]})")
        if isinstance(ks, ast.MaskExpr | ast.RangeExpr):
            op = "&&&" if isinstance(ks, ast.MaskExpr) else ".."
            for part in (ks.value, ks.mask) if isinstance(ks, ast.MaskExpr) else (ks.lo, ks.hi):
                if isinstance(strip_newtype(self.expr(part, sc, None).type), ErrorT):
                    raise semantic_error(part.loc, f"{op}: cannot be applied to a value of type error")
        elif form is None and isinstance(strip_newtype(self.expr(ks, sc, None).type), ErrorT):
            text = expr_text(ks) or "an error value"
            raise semantic_error(ks.loc, f"{text}: unsupported {kind} key expression (an error value cannot "
                                 "be an entry's key on BMv2: p4c-bm2-ss writes only numbers there)")

    def table_action_by_name(self: Compiler, table: str, action: str, loc: ast.Loc) -> ActionInfo:
        info, syms = self.table_by_name[table]
        sym = syms.get(action)
        if sym is None:
            raise semantic_error(loc, f"{action} is not an action of table {table}")
        return sym.info

    def define_value_set(self: Compiler, d: ast.ValueSetDecl, sc: Scope, prefix: str) -> ValueSetInfo:
        t = self.resolve_type(d.elem_type, sc)
        st = strip_newtype(t)
        if isinstance(st, StructLikeT):
            fields = [(n, width_of(ft)) for n, ft in st.fields]
        else:
            fields = [("", width_of(t))]
        name = self.cp_name(prefix, d.name, d.annotations)
        pyname = self.names.make("VS", name)
        info = ValueSetInfo(name, pyname, sum(w for _, w in fields), self.const_int(d.size, sc, "value_set size"), fields,
                            list(d.annotations), used=False)
        if isinstance(st, StructLikeT):
            info.field_annotations = dict(self.field_annos.get(st.name, {}))
        info.elem_type = t
        self.model.value_sets.append(info)
        sc.declare(Sym("valueset", d.name, t, code=pyname, info=info))
        return info
