"""The checker and code generator: resolves a parsed program, instantiates ``main`` and writes
the Python module that executes it, together with the ProgramModel of its control-plane objects.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

from . import ast
from .calls import CallMixin
from .classes import default_value_code, header_blank, header_class, struct_class
from .direct import instantiate_direct_calls
from .exprs import ExprMixin, TExpr
from .generics import check_generic_function
from .hoist import hoist_stable_params, param_attr
from .loops import LoopMixin
from .model import (
    ActionInfo,
    BlockUse,
    ControllerHeaderInfo,
    DigestInfo,
    ExternInstance,
    ParamInfo,
    ProgramModel,
)
from .parsers import ParserMixin
from .paths import check_table_paths
from .stmts import StmtMixin
from .symbols import Emitter, FnCtx, NameMaker, Scope, Sym, annotation, py_ident, semantic_error
from .tables import TableMixin
from .types import (
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
    TupleT,
    Type,
    UnionT,
    VarbitT,
    VoidT,
    strip_newtype,
    width_of,
)

# Extern objects p4sim instantiates (the rest of v1model's externs are functions).
SUPPORTED_EXTERN_OBJECTS = {"register", "counter", "direct_counter", "meter", "direct_meter", "action_profile",
                            "action_selector"}
V1SWITCH_STAGES = ("parser", "verify_checksum", "ingress", "egress", "compute_checksum", "deparser")
_L_PLACE = re.compile(r"\bL\.(\w+(?:\.\w+)*)")
_ACTION_CALL = re.compile(r"\b(act_\w+)\(K, L\b")
# generated attributes and methods of header, struct and stack objects: a place ends before them
_NOT_A_FIELD = {"at", "at_rd", "el", "rd", "elems", "set_valid", "next_elem", "last_elem", "push_front",
                "pop_front", "extract_next", "advance_next", "nxt", "size"}


def _reach_path(chain: str) -> tuple:
    """``g_hdr.h.y`` (after ``L.`` in generated code) as a place: ("L.g_hdr", "h", "y"), cut
    where a method or generated attribute starts (the place is then the object before it)."""
    parts = chain.split(".")
    path = ["L." + parts[0]]
    for p in parts[1:]:
        if p.startswith("_") or p in _NOT_A_FIELD:
            break
        path.append(p)
    return tuple(path)


@dataclass
class BlockInstance:
    """A parser or control instantiated with its constructor arguments."""

    kind: str  # "parser" | "control"
    name: str  # control-plane prefix, e.g. "MyIngress" or "MyIngress.inner"
    pyname: str
    apply_params: list[ast.Param]
    apply_types: list[Type]
    decl: Any = None


@dataclass
class _Pending:
    actions: dict[tuple[int, str], ActionInfo] = field(default_factory=dict)


class Compiler(ExprMixin, StmtMixin, CallMixin, ParserMixin, TableMixin, LoopMixin):
    """Translates one program. Use :func:`elaborate`."""

    def __init__(self) -> None:
        self.root = Scope(kind="global")
        self.names = NameMaker()
        self.model = ProgramModel()
        self.chunks: list[str] = []  # generated module text, in dependency order
        self.errors: list[str] = []
        self.match_kinds: list[str] = []
        self.extern_decls: dict[str, ast.ExternDecl] = {}
        self.extern_funcs: dict[str, list[ast.ExternFunctionDecl]] = {}
        self.struct_types: dict[str, StructLikeT] = {}
        self.generic_types: dict[tuple[str, tuple[str, ...]], Type] = {}
        self.function_cache: dict[tuple[int, tuple[str, ...]], tuple[str, list[Type], Type]] = {}
        # functions whose body is one pure return expression: called, they are that expression
        self.function_inline: dict[str, tuple[list[str], str]] = {}
        self.digest_by_type: dict[str, DigestInfo] = {}
        self.main: ast.Instantiation | None = None
        self.table_by_name: dict[str, Any] = {}
        self.profile_by_name: dict[str, ExternInstance] = {}  # action profiles / selectors by name
        self.global_actions: dict[str, Sym] = {}
        self.field_lists: dict[int, list[str]] = {}
        self.instantiated: set[int] = set()  # ids of parser/control declarations instantiated
        self.block_stack: list[BlockUse] = []  # the V1Switch block being elaborated (P4Info order)
        self.field_annos: dict[str, dict[str, list[ast.Annotation]]] = {}  # type -> field -> annotations
        self.action_reach: dict[str, frozenset[tuple]] = {}  # action pyname -> places of L it uses
        self.action_exits: set[str] = set()  # actions that may exit (themselves or through a callee)
        # header types whose width is no multiple of 8: an error only once the program makes
        # an instance of one (p4c-bm2-ss checks the headers that reach BMv2's JSON)
        self.unaligned_headers: dict[str, tuple[ast.Loc, int]] = {}

    # -- top level ------------------------------------------------------------------------------

    def run(self, program: ast.Program) -> ProgramModel:
        self.errors = []
        for d in program.decls:
            self.top_decl(d)
        if self.main is None:
            raise semantic_error(None, "the program has no 'main' package instantiation")
        self.elaborate_main(self.main)
        self.check_unused_blocks(program)
        self.model.errors = list(self.errors)
        self.model.struct_types = dict(self.struct_types)
        header = ["# generated by p4sim-compile: do not edit", "from p4sim.dataplane.rtlib import *", ""]
        header += [f"ERR_{n} = {i}" for i, n in enumerate(self.errors)]
        self.model.source = hoist_stable_params("\n".join(header) + "\n\n" + "\n\n".join(self.chunks) + "\n")
        return self.model

    def top_decl(self, d: ast.Node) -> None:
        sc = self.root
        if isinstance(d, (ast.HeaderDecl, ast.StructDecl, ast.HeaderUnionDecl)):
            self.declare_structlike(d, sc)
        elif isinstance(d, ast.EnumDecl):
            self.declare_enum(d, sc)
        elif isinstance(d, ast.ErrorDecl):
            for m in d.members:
                if m not in self.errors:
                    self.errors.append(m)
        elif isinstance(d, ast.MatchKindDecl):
            for m in d.members:
                if m not in self.match_kinds:
                    self.match_kinds.append(m)
                    sc.declare(Sym("const", m, MatchKindT(), value=m))
        elif isinstance(d, ast.TypedefDecl):
            t = self.resolve_type(d.type, sc)
            if d.is_newtype:
                t = NewT(d.name, t, d.annotations)
                self.model.new_types[d.name] = t
            sc.declare(Sym("type", d.name, t, decl=d))
        elif isinstance(d, (ast.TopConstDecl, ast.ConstDecl)):
            self.declare_const(d, sc)
        elif isinstance(d, ast.ExternDecl):
            self.extern_decls[d.name] = d
            sc.declare(Sym("type", d.name, None, decl=d))
        elif isinstance(d, ast.ExternFunctionDecl):
            self.extern_funcs.setdefault(d.name, []).append(d)
            sc.declare(Sym("extfunc", d.name, decl=d))
        elif isinstance(d, ast.FunctionDecl):
            check_generic_function(d)  # p4c checks a generic body once, generically, called or not
            sc.declare(Sym("function", d.name, decl=d))
        elif isinstance(d, ast.ActionDecl):
            sym = sc.declare(Sym("action", d.name, decl=d))
            self.define_action(d, sym, sc, prefix="", locals_class=None)
        elif isinstance(d, (ast.ParserTypeDecl, ast.ControlTypeDecl, ast.PackageTypeDecl)):
            kind = {ast.ParserTypeDecl: "parser", ast.ControlTypeDecl: "control", ast.PackageTypeDecl: "package"}[type(d)]
            sc.declare(Sym("type", d.name, BlockT(kind, d), decl=d))
        elif isinstance(d, (ast.ParserDecl, ast.ControlDecl)):
            kind = "parser" if isinstance(d, ast.ParserDecl) else "control"
            sc.declare(Sym("block", d.name, BlockT(kind, d), decl=d))
        elif isinstance(d, ast.Instantiation):
            if isinstance(d.type, ast.NamedTypeRef) and isinstance(self.root.lookup(d.type.name), Sym) and \
                    self.root.lookup(d.type.name).kind == "type" and isinstance(self.root.lookup(d.type.name).type, BlockT) and \
                    self.root.lookup(d.type.name).type.kind == "package":
                if d.name != "main":
                    raise semantic_error(d.loc, "p4sim runs the package instance named 'main' only")
                self.main = d
            else:
                self.instantiate(d, sc, prefix="", fc=None)
        elif isinstance(d, ast.ValueSetDecl):
            raise semantic_error(d.loc, "value_set must be declared in a parser")
        else:
            raise semantic_error(d.loc, f"unsupported top-level declaration {type(d).__name__}")

    def declare_const(self, d: ast.TopConstDecl | ast.ConstDecl, sc: Scope) -> None:
        """``const T name = value;``: a scalar is folded where it is used; a struct, header or
        tuple of constants (``const pair_t P = { a = 1, b = 2 };``) is made once, as a module
        global that is read (copied) and never written."""
        t = self.resolve_type(d.type, sc)
        if isinstance(strip_newtype(t), (StructLikeT, TupleT, StackT)):
            fc = FnCtx(Emitter(), "function", block_name=d.name)
            te = self.expr(d.value, sc, fc, t)
            body = "\n".join([*fc.em.lines, te.code])
            if re.search(r"\b(K|L|a_\w+)\b", body):
                raise semantic_error(d.value.loc, f"{d.name}: initializer is not a compile-time constant")
            g = self.names.make("C", d.name)
            self.chunks.append(f"def {g}_make():\n" + "".join(ln + "\n" for ln in fc.em.lines)
                               + f"    return {te.code}\n\n\n{g} = {g}_make()\n")
            sc.declare(Sym("var", d.name, t, code=g, readonly=True), d.loc)
            return
        te = self.expr(d.value, sc, None, t)
        if te.const is None:
            raise semantic_error(d.value.loc, f"{d.name}: initializer is not a compile-time constant")
        sc.declare(Sym("const", d.name, t, value=te.const), d.loc)

    def specialize_structlike(self, d: ast.HeaderDecl | ast.StructDecl | ast.HeaderUnionDecl, ref: ast.NamedTypeRef,
                              sc: Scope) -> Type:
        """``S<bit<16>>`` of a generic ``struct S<T>``: a type of its own per list of type
        arguments, named as p4c names it (``S_bit16``)."""
        if len(ref.type_args) != len(d.type_params):
            raise semantic_error(ref.loc, f"{d.name} has {len(d.type_params)} type parameter(s), "
                                 f"{len(ref.type_args)} type argument(s) given")
        args = tuple(self.resolve_type(a, sc) for a in ref.type_args)
        key = (d.name, tuple(str(a) for a in args))
        done = self.generic_types.get(key)
        if done is not None:
            return done
        inner = Scope(self.root)
        for tp, a in zip(d.type_params, args, strict=True):
            inner.declare(Sym("type", tp, a), ref.loc)
        # p4c's name for it: the arguments spelled out, with what is not a name character dropped
        name = "_".join([d.name, *(re.sub(r"\W", "", str(a)) for a in args)])
        self.declare_structlike(dataclasses.replace(d, name=name, type_params=[]), inner)
        t = self.struct_types[name]
        self.generic_types[key] = t
        return t

    def declare_structlike(self, d: ast.HeaderDecl | ast.StructDecl | ast.HeaderUnionDecl, sc: Scope) -> None:
        if d.type_params:
            # generic: each specialization becomes a type when it is first named
            sc.declare(Sym("type", d.name, None, decl=d), d.loc)
            return
        cls = {ast.HeaderDecl: HeaderT, ast.StructDecl: StructT, ast.HeaderUnionDecl: UnionT}[type(d)]
        prefix = {ast.HeaderDecl: "H", ast.StructDecl: "S", ast.HeaderUnionDecl: "U"}[type(d)]
        t = cls(d.name, [], list(d.annotations), self.names.make(prefix, d.name))
        sc.declare(Sym("type", d.name, t, decl=d))
        seen: set[str] = set()
        for f in d.fields:
            if f.name in seen:
                raise semantic_error(f.loc, f"duplicate field {f.name} in {d.name}")
            seen.add(f.name)
            ft = self.resolve_type(f.type, sc)
            fs = strip_newtype(ft)
            if isinstance(t, HeaderT) and not _header_field_ok(fs):
                raise semantic_error(f.loc, f"header field {f.name} must be bit<>, int<>, bool, varbit, a serializable enum "
                                     f"or a struct of those (no varbit), not {ft}")
            if isinstance(t, UnionT) and not isinstance(fs, HeaderT):
                raise semantic_error(f.loc, f"header_union members must be headers, not {ft}")
            t.fields.append((f.name, ft))
            self.field_annos.setdefault(d.name, {})[f.name] = list(f.annotations)
            for an in f.annotations:
                if an.name == "field_list":
                    for a in an.args:
                        idx = self.const_int(a, sc, "field list index")
                        self.field_lists.setdefault(idx, []).append(f"{d.name}.{f.name}")
        if isinstance(t, HeaderT):
            if t.bit_width % 8 != 0:
                self.unaligned_headers[d.name] = (d.loc, t.bit_width)
            self.chunks.append(header_class(t))
            self.chunks.append(header_blank(t))
        else:
            self.chunks.append(struct_class(t))
        self.struct_types[d.name] = t
        ch = annotation(d.annotations, "controller_header")
        if ch is not None and isinstance(t, HeaderT):
            arg = ch.args[0] if ch.args else None
            name = arg.value if isinstance(arg, ast.StringLiteral) else (ch.raw or "").strip().strip('"')
            self.model.controller_headers.append(
                ControllerHeaderInfo(name, t, list(d.annotations), dict(self.field_annos.get(d.name, {}))))

    def declare_enum(self, d: ast.EnumDecl, sc: Scope) -> None:
        members = [m.name for m in d.members]
        if d.underlying is None:
            t = EnumT(d.name, members)
        else:
            ut = strip_newtype(self.resolve_type(d.underlying, sc))
            if not isinstance(ut, BitT):
                raise semantic_error(d.loc, f"enum {d.name}: underlying type must be bit<> or int<>")
            values: dict[str, int] = {}
            for m in d.members:
                if m.value is None:
                    raise semantic_error(m.loc, f"{d.name}.{m.name} needs a value")
                values[m.name] = self.expr(m.value, sc, None, ut).const
            t = EnumT(d.name, members, ut, values)
        sc.declare(Sym("type", d.name, t, decl=d))

    def error_code(self, member: str, loc: ast.Loc) -> int:
        if member not in self.errors:
            raise semantic_error(loc, f"error.{member} is not declared")
        return self.errors.index(member)

    def is_bits_like(self, t: Type) -> bool:
        return isinstance(strip_newtype(t), (BitT, IntT, BoolT))

    # -- types --------------------------------------------------------------------------------------

    def resolve_type(self, ref: ast.TypeRef, sc: Scope) -> Type:
        if isinstance(ref, ast.BitTypeRef):
            w = self.const_int(ref.width, sc, "width")
            if w <= 0 and not (w == 0 and not ref.signed):
                raise semantic_error(ref.loc, f"invalid width {w}")
            return BitT(w, ref.signed)
        if isinstance(ref, ast.VarbitTypeRef):
            return VarbitT(self.const_int(ref.max_width, sc, "width"))
        if isinstance(ref, ast.BoolTypeRef):
            return BoolT()
        if isinstance(ref, ast.IntTypeRef):
            return IntT()
        if isinstance(ref, ast.StringTypeRef):
            return StringT()
        if isinstance(ref, ast.ErrorTypeRef):
            return ErrorT()
        if isinstance(ref, ast.MatchKindTypeRef):
            return MatchKindT()
        if isinstance(ref, ast.VoidTypeRef):
            return VoidT()
        if isinstance(ref, ast.DontCareTypeRef):
            return DontCareT()
        if isinstance(ref, ast.StackTypeRef):
            elem = self.resolve_type(ref.elem, sc)
            if not isinstance(strip_newtype(elem), (HeaderT, UnionT)):
                raise semantic_error(ref.loc, f"stack elements must be headers or header unions, not {elem}")
            return StackT(elem, self.const_int(ref.size, sc, "stack size"))
        if isinstance(ref, ast.TupleTypeRef):
            return TupleT(tuple(self.resolve_type(t, sc) for t in ref.elems))
        if isinstance(ref, ast.NamedTypeRef):
            if ref.name == "error":
                return ErrorT()
            sym = (sc.root() if ref.is_global else sc).lookup(ref.name)
            if sym is None or sym.kind not in ("type", "block"):
                raise semantic_error(ref.loc, f"{ref.name}: type not found")
            if isinstance(sym.decl, ast.ExternDecl):
                if ref.type_args and len(ref.type_args) != len(sym.decl.type_params):
                    # e.g. register<T, I> where V1MODEL_VERSION (20180101 unless defined) has register<T>
                    raise semantic_error(ref.loc, f"Type {ref.name} has {len(sym.decl.type_params)} type parameter(s), "
                                         f"but it is specialized with {len(ref.type_args)}")
                return ExternT(sym.decl, tuple(self.resolve_type(a, sc) for a in ref.type_args))
            if isinstance(sym.decl, (ast.StructDecl, ast.HeaderDecl, ast.HeaderUnionDecl)) and sym.decl.type_params:
                return self.specialize_structlike(sym.decl, ref, sc)
            assert sym.type is not None
            if ref.type_args and isinstance(sym.type, BlockT):
                return BlockT(sym.type.kind, sym.type.decl, tuple(self.resolve_type(a, sc) for a in ref.type_args))
            return sym.type
        raise semantic_error(ref.loc, f"unsupported type {type(ref).__name__}")

    # -- instantiation ------------------------------------------------------------------------------

    def cp_name(self, prefix: str, name: str, annos: list[ast.Annotation]) -> str:
        """Control-plane name: ``@name`` wins (a leading dot makes it absolute)."""
        a = annotation(annos, "name")
        if a is not None and a.args and isinstance(a.args[0], ast.StringLiteral):
            name = a.args[0].value
            if name.startswith("."):
                return name[1:]
        return f"{prefix}.{name}" if prefix else name

    def instantiate(self, d: ast.Instantiation, sc: Scope, prefix: str, fc: FnCtx | None) -> Sym:
        t = self.resolve_type(d.type, sc)
        if isinstance(t, ExternT):
            return self.instantiate_extern(d, t, sc, prefix)
        if isinstance(t, BlockT) and t.kind in ("parser", "control"):
            sym = sc.lookup(t.name)
            decl = sym.decl if sym is not None else None
            if not isinstance(decl, (ast.ParserDecl, ast.ControlDecl)):
                raise semantic_error(d.loc, f"{t.name} is a prototype, not a {t.kind} that can be instantiated")
            inst = self.instantiate_block(decl, self.cp_name(prefix, d.name, d.annotations), d.args, sc, d.loc)
            return sc.declare(Sym("instance", d.name, t, code=inst.pyname, info=inst))
        raise semantic_error(d.loc, f"cannot instantiate {t}")

    def instantiate_extern(self, d: ast.Instantiation, t: ExternT, sc: Scope, prefix: str) -> Sym:
        inst = self.extern_instance(d, t, sc, prefix)
        return sc.declare(Sym("instance", d.name, t, code=inst.pyname, info=inst))

    def extern_instance(self, d: ast.Instantiation, t: ExternT, sc: Scope, prefix: str) -> ExternInstance:
        """Check an extern object's constructor call and record the instance in the model.

        Table properties construct action profiles in place (``implementation =
        action_profile(128)``): those come here too, but are not declared in any scope."""
        kind = t.decl.name
        if kind not in SUPPORTED_EXTERN_OBJECTS:
            raise semantic_error(d.loc, f"extern {kind} is not supported by p4sim yet")
        ctors = [m for m in t.decl.methods if m.return_type is None and m.name == kind]
        ctor = next((c for c in ctors if len(c.params) == len(d.args)), None)
        if ctor is None:
            raise semantic_error(d.loc, f"{kind}: no constructor takes {len(d.args)} arguments")
        call = ast.CallExpr(ast.PathExpr(kind), d.args, loc=d.loc)
        args: dict[str, Any] = {}
        for p, a in self.bind_args(call, ctor.params, kind):
            assert a is not None
            te = self.expr(a, sc, None)
            pt = strip_newtype(te.type)
            if isinstance(pt, EnumT):
                args[p.name] = pt.members[te.const] if pt.underlying is None else te.const
            else:
                args[p.name] = te.const
        name = self.cp_name(prefix, d.name, d.annotations)
        pyname = self.names.make("X", name)
        inst = ExternInstance(kind, name, pyname, args, list(t.args), list(d.annotations))
        if kind in ("action_profile", "action_selector"):
            self.profile_by_name[name] = inst
        if kind == "register":
            if not t.args:
                raise semantic_error(d.loc, "register needs its element type: register<T>(size)")
            inst.args.setdefault("width", width_of(t.args[0]))
        self.model.externs.append(inst)
        return inst

    def eval_ctor_arg(self, a: ast.Expr, pt: Type, sc: Scope, prefix: str, name: str) -> Sym:
        """A constructor argument of a parser/control: a constant, or an instance."""
        if isinstance(a, ast.CallExpr) and isinstance(a.func, ast.PathExpr):
            inst = ast.Instantiation(name, ast.NamedTypeRef(a.func.name, a.type_args, loc=a.loc), a.args, loc=a.loc)
            return self.instantiate(inst, sc, prefix, None)
        te = self.expr(a, sc, None, pt if not isinstance(pt, (ExternT, BlockT)) else None)
        if te.const is not None:
            return Sym("const", name, te.type, value=te.const)
        if isinstance(te.sym, Sym) and te.sym.kind == "instance":
            return te.sym
        raise semantic_error(a.loc, "constructor arguments must be constants or instances")

    def instantiate_block(self, decl: ast.ParserDecl | ast.ControlDecl, name: str, args: list[ast.Argument], sc: Scope, loc: ast.Loc) -> BlockInstance:
        kind = "parser" if isinstance(decl, ast.ParserDecl) else "control"
        self.instantiated.add(id(decl))
        bsc = Scope(self.root, kind=kind)
        if decl.type_params:
            raise semantic_error(decl.loc, f"generic {kind} {decl.name} is not supported by p4sim")
        call = ast.CallExpr(ast.PathExpr(decl.name), args, loc=loc)
        for p, a in self.bind_args(call, decl.ctor_params, f"{decl.name} constructor"):
            pt = self.resolve_type(p.type, bsc)
            assert a is not None
            sym = self.eval_ctor_arg(a, pt, sc, name, p.name)
            bsc.declare(Sym(sym.kind, p.name, sym.type, code=sym.code, value=sym.value, decl=sym.decl, info=sym.info))
        pyname = self.names.make("P" if kind == "parser" else "C", name)
        loc_cls = self.names.make("L", name)
        apply_types = [self.resolve_type(p.type, bsc) for p in decl.params]
        for pt in apply_types:
            self.require_whole_bytes(pt)
        inst = BlockInstance(kind, name, pyname, list(decl.params), apply_types, decl)
        slots: list[str] = []
        for p, pt in zip(decl.params, apply_types, strict=True):
            spt = strip_newtype(pt)
            if isinstance(spt, ExternT) and spt.name in ("packet_in", "packet_out"):
                bsc.declare(Sym("var", p.name, pt, code="K", readonly=True))
                continue
            attr = param_attr(py_ident(p.name), pt)
            slots.append(attr)
            bsc.declare(Sym("var", p.name, pt, code=f"L.{attr}", readonly=p.direction == "in"))
        em = Emitter()
        fc = FnCtx(em, "control" if kind == "control" else "parser", block_name=name)
        for local in decl.locals:
            self.block_local(local, bsc, name, fc, slots, loc_cls)
        if kind == "control":
            assert isinstance(decl, ast.ControlDecl)
            body = Emitter(depth=2)
            bfc = FnCtx(body, "control", block_name=name)
            # a `return` in apply hands the caller the scalar out/inout parameters, as the end does
            bfc.out_params = [f"L.p_{py_ident(p.name)}" for p, pt in zip(decl.params, apply_types, strict=True)
                              if p.direction in ("out", "inout")
                              and not isinstance(strip_newtype(pt), (ExternT, StructLikeT, StackT))]
            self.block(decl.body.stmts, Scope(bsc), bfc)
            self.emit_block_function(inst, loc_cls, slots, em, body)
        else:
            assert isinstance(decl, ast.ParserDecl)
            self.generate_parser(decl, inst, bsc, loc_cls, slots, em)
        return inst

    def require_whole_bytes(self, t: Type) -> None:
        """Refuse an instance of a header type (here or inside ``t``) that BMv2 cannot hold: its
        width must be a multiple of 8. As with p4c-bm2-ss, a header type the program only
        declares (a controller header it never uses, say) is no error, nor is a local variable
        never referred to: the parameters of parsers and controls are checked when they are
        instantiated, local variables where an expression names them."""
        if not self.unaligned_headers:
            return
        t = strip_newtype(t)
        if isinstance(t, StackT):
            self.require_whole_bytes(t.elem)
        elif isinstance(t, HeaderT) and t.name in self.unaligned_headers:
            loc, width = self.unaligned_headers[t.name]
            raise semantic_error(loc, f"header {t.name} is {width} bits wide: BMv2 needs a multiple of 8")
        elif isinstance(t, StructLikeT):
            for _, ft in t.fields:
                self.require_whole_bytes(ft)

    def block_local(self, local: ast.Node, bsc: Scope, prefix: str, fc: FnCtx, slots: list[str], loc_cls: str) -> None:
        if isinstance(local, ast.VarDecl):
            t = self.resolve_type(local.type, bsc)
            attr = "v_" + py_ident(local.name)
            while attr in slots:
                attr += "_"
            slots.append(attr)
            bsc.declare(Sym("var", local.name, t, code=f"L.{attr}"))
            if local.init is not None:
                te = self.expr(local.init, bsc, fc, t)
                if isinstance(strip_newtype(t), (StructLikeT, StackT)):
                    fc.em.line(f"L.{attr} = {default_value_code(t)}")
                    from .exprs import LValue
                    self.assign_to(LValue(f"L.{attr}", t), te, fc, local.loc)
                else:
                    fc.em.line(f"L.{attr} = {te.code}")
            else:
                fc.em.line(f"L.{attr} = {default_value_code(t)}")
        elif isinstance(local, ast.ConstDecl):
            self.declare_const(local, bsc)
        elif isinstance(local, ast.Instantiation):
            self.instantiate(local, bsc, prefix, fc)
        elif isinstance(local, ast.ActionDecl):
            sym = bsc.declare(Sym("action", local.name, decl=local))
            self.define_action(local, sym, bsc, prefix, loc_cls)
        elif isinstance(local, ast.TableDecl):
            self.define_table(local, bsc, prefix)
        elif isinstance(local, ast.ValueSetDecl):
            self.define_value_set(local, bsc, prefix)
        else:
            raise semantic_error(local.loc, f"unsupported local declaration {type(local).__name__}")

    def emit_block_function(self, inst: BlockInstance, loc_cls: str, slots: list[str], prologue: Emitter, body: Emitter) -> None:
        params = []
        outs = []
        for p, pt in zip(inst.apply_params, inst.apply_types, strict=True):
            spt = strip_newtype(pt)
            if isinstance(spt, ExternT):
                params.append("_" + py_ident(p.name))
                continue
            pn = "a_" + py_ident(p.name)
            params.append(pn)
            if p.direction in ("out", "inout") and not isinstance(spt, (StructLikeT, StackT)):
                outs.append(f"L.p_{py_ident(p.name)}")
        lines = [f"class {loc_cls}:", f"    __slots__ = {tuple(slots)!r}", ""]
        lines.append(f"def {inst.pyname}(K{''.join(', ' + p for p in params)}):")
        lines.append(f"    L = {loc_cls}()")
        for p, pt in zip(inst.apply_params, inst.apply_types, strict=True):
            if isinstance(strip_newtype(pt), ExternT):
                continue
            lines.append(f"    L.{param_attr(py_ident(p.name), pt)} = a_{py_ident(p.name)}")
        lines.extend(prologue.lines)
        if outs:
            lines.append("    try:")
            lines.extend("    " + ln for ln in body.lines)
            lines.append("    finally:")
            lines.append(f"        K.outs = ({', '.join(outs)},)")
            lines.append(f"    return ({', '.join(outs)},)")
        else:
            lines.extend(ln[4:] for ln in body.lines)
        self.chunks.append("\n".join(lines) + "\n")

    # -- actions and functions ------------------------------------------------------------------------

    def define_action(self, d: ast.ActionDecl, sym: Sym, sc: Scope, prefix: str, locals_class: str | None) -> ActionInfo:
        name = self.cp_name(prefix, d.name, d.annotations)
        pyname = self.names.make("act", name)
        asc = Scope(sc, kind="action")
        em = Emitter()
        fc = FnCtx(em, "action", block_name=name)
        params: list[ParamInfo] = []
        pnames: list[str] = []
        ptypes: list[Type] = []
        for p in d.params:
            pt = self.resolve_type(p.type, sc)
            ptypes.append(pt)
            pn = "a_" + py_ident(p.name)
            pnames.append(pn)
            spt = strip_newtype(pt)
            if p.direction == "":
                try:
                    w = width_of(pt)
                except TypeError as exc:
                    raise semantic_error(p.loc, f"action parameter {p.name} of type {pt} cannot come from the control plane") from exc
                params.append(ParamInfo(p.name, w, list(p.annotations), pt.name if isinstance(pt, NewT) else None, pt))
            if p.direction in ("out", "inout") and not isinstance(spt, (StructLikeT, StackT)):
                local = fc.fresh_local(p.name)
                em.line(f"{local} = {pn}")
                fc.out_params.append(local)
                asc.declare(Sym("var", p.name, pt, code=local))
            else:
                asc.declare(Sym("var", p.name, pt, code=pn, readonly=p.direction in ("", "in")))
        body_start = len(em.lines)
        self.block(d.body.stmts, asc, fc)
        body = "\n".join(em.lines[body_start:])
        callees = _ACTION_CALL.findall(body)
        exits = "raise ExitSignal()" in body or any(c in self.action_exits for c in callees)
        if exits and fc.out_params:
            # an exit hands the scalar out/inout values to the caller in K.outs (CallMixin.invoke)
            em.lines[body_start:] = ["    try:", *("    " + ln for ln in em.lines[body_start:]),
                                     "    except ExitSignal:", f"        K.outs = ({', '.join(fc.out_params)},)",
                                     "        raise"]
        if fc.out_params:
            em.line(f"return ({', '.join(fc.out_params)},)")
        src = f"def {pyname}(K, L{''.join(', ' + p for p in pnames)}):\n" + "\n".join(em.lines) + "\n"
        self.chunks.append(src)
        # the control state the action reaches by itself (directly or through actions it calls):
        # arguments that name a part of it are copied in and out (CallMixin.invoke)
        reach = {_reach_path(m) for m in _L_PLACE.findall(body)}
        for callee in callees:
            reach |= self.action_reach.get(callee, frozenset())
        self.action_reach[pyname] = frozenset(reach)
        if exits:
            self.action_exits.add(pyname)
        info = ActionInfo(name, pyname, params, list(d.annotations), hidden=annotation(d.annotations, "hidden") is not None,
                          used=False, decl_key=id(d))
        if prefix and self.block_stack:
            self.block_stack[-1].actions.append(name)
        if self.model.action(name) is None:
            self.model.actions.append(info)
        sym.info = info
        sym.code = pyname
        sym.value = ptypes
        return info

    def function_instance(self, sym: Sym, args: list[ast.Expr | None], sc: Scope, fc: FnCtx, e: ast.CallExpr) -> tuple[str, list[Type], Type]:
        d: ast.FunctionDecl = sym.decl
        bindings = self.bind_type_params(d, args, sc, fc, e)
        key = (id(d), tuple(str(bindings[n]) for n in d.type_params))
        if key in self.function_cache:
            return self.function_cache[key]
        fsc = Scope(self.root, kind="function")
        for n, t in bindings.items():
            fsc.declare(Sym("type", n, t))
        rtype = self.resolve_type(d.return_type, fsc)
        pyname = self.names.make("fn", d.name)
        em = Emitter()
        ffc = FnCtx(em, "function", return_type=rtype, block_name=d.name)
        ptypes: list[Type] = []
        pnames: list[str] = []
        for p in d.params:
            pt = self.resolve_type(p.type, fsc)
            ptypes.append(pt)
            pn = "a_" + py_ident(p.name)
            pnames.append(pn)
            spt = strip_newtype(pt)
            if p.direction in ("out", "inout") and not isinstance(spt, (StructLikeT, StackT)):
                local = ffc.fresh_local(p.name)
                em.line(f"{local} = {pn}")
                ffc.out_params.append(local)
                fsc.declare(Sym("var", p.name, pt, code=local))
            else:
                fsc.declare(Sym("var", p.name, pt, code=pn, readonly=p.direction == "in"))
        self.function_cache[key] = (pyname, ptypes, rtype)
        self.block(d.body.stmts, fsc, ffc)
        if ffc.out_params and isinstance(rtype, VoidT):
            em.line(f"return ({', '.join(ffc.out_params)},)")
        src = f"def {pyname}(K{''.join(', ' + p for p in pnames)}):\n    L = None\n" + "\n".join(em.lines) + "\n"
        if len(em.lines) == 1 and em.lines[0].startswith("    return ") and not ffc.out_params \
                and all(p.direction in ("", "in", None) for p in d.params) \
                and not any(isinstance(strip_newtype(t), (StructLikeT, StackT)) for t in ptypes):
            body = em.lines[0][len("    return "):]
            if not re.search(r"\b[KL]\b", body):
                self.function_inline[pyname] = (pnames, body)
        self.chunks.append(src)
        return pyname, ptypes, rtype

    def bind_type_params(self, d: ast.FunctionDecl, args: list[ast.Expr | None], sc: Scope, fc: FnCtx,
                         e: ast.CallExpr) -> dict[str, Type]:
        """Type arguments of a generic function: given explicitly, or inferred from the
        arguments whose parameter type is a bare type variable."""
        if not d.type_params:
            return {}
        if e.type_args:
            if len(e.type_args) != len(d.type_params):
                raise semantic_error(e.loc, f"{d.name} takes {len(d.type_params)} type arguments")
            return {n: self.resolve_type(t, sc) for n, t in zip(d.type_params, e.type_args, strict=True)}
        bindings: dict[str, Type] = {}
        scratch = FnCtx(Emitter(), fc.where, block_name=fc.block_name)  # inference only: discard code
        for p, a in zip(d.params, args, strict=True):
            if isinstance(p.type, ast.NamedTypeRef) and p.type.name in d.type_params and a is not None \
                    and p.type.name not in bindings:
                t = self.expr(a, sc, scratch).type
                if isinstance(t, IntT):
                    raise semantic_error(a.loc, f"cannot infer {p.type.name} from an int literal: give it a width")
                bindings[p.type.name] = t
        for n in d.type_params:
            if n not in bindings:
                raise semantic_error(e.loc, f"cannot infer type argument {n} of {d.name}: give it explicitly")
        return bindings

    # -- digests ------------------------------------------------------------------------------------

    def digest_info_tuple(self, t: TupleT) -> DigestInfo:
        """A digest of a tuple type (``digest<tuple<bit<16>, bit<8>>>(...)``): p4c names it
        ``digest_0``, ``digest_1``... in the order the types are first met."""
        key = "tuple:" + str(t)
        info = self.digest_by_type.get(key)
        if info is None:
            n = sum(1 for k in self.digest_by_type if k.startswith("tuple:"))
            info = DigestInfo(f"digest_{n}", t, [(f"f{i}", width_of(et)) for i, et in enumerate(t.elems)])
            self.digest_by_type[key] = info
            self.model.digests.append(info)
        return info

    def digest_info(self, t: StructLikeT) -> DigestInfo:
        info = self.digest_by_type.get(t.name)
        if info is None:
            def data_width(ft: Type) -> int:
                fs = strip_newtype(ft)
                # BMv2 keeps enum values in 32-bit fields, as it does errors
                return 32 if isinstance(fs, EnumT) and fs.underlying is None else width_of(ft)

            fields = []
            for fname, ft in t.fields:
                fs = strip_newtype(ft)
                if isinstance(fs, StructLikeT):
                    for sub, st in fs.fields:
                        fields.append((f"{fname}.{sub}", data_width(st)))
                else:
                    fields.append((fname, data_width(ft)))
            info = DigestInfo(t.name, t, fields)
            self.digest_by_type[t.name] = info
            self.model.digests.append(info)
        return info

    # -- main ---------------------------------------------------------------------------------------

    def check_unused_blocks(self, program: ast.Program) -> None:
        """p4c type-checks every parser and control, used or not: check the ones ``main`` never
        instantiated by translating each on a scratch compiler and throwing the result away.
        (One with constructor parameters can only be checked where it is given arguments.)"""
        for d in program.decls:
            if isinstance(d, (ast.ParserDecl, ast.ControlDecl)) and id(d) not in self.instantiated \
                    and not d.ctor_params and not d.type_params:
                scratch = Compiler()
                for top in program.decls:
                    if isinstance(top, ast.Instantiation) and top is self.main:
                        continue
                    scratch.top_decl(top)
                scratch.instantiate_block(d, d.name, [], scratch.root, d.loc)

    def check_package_signatures(self, main: ast.Instantiation, ptype: BlockT) -> None:
        """Each argument of the package must fit its parameter's prototype (as p4c unifies them):
        as many apply parameters, the same directions, and one type for each type variable."""
        pkg = ptype.decl
        if not isinstance(pkg, ast.PackageTypeDecl):
            return
        bound: dict[str, tuple[Type, str]] = {}
        for param, arg in zip(pkg.params, main.args, strict=False):
            a = arg.value
            if isinstance(a, ast.CallExpr) and isinstance(a.func, ast.PathExpr):
                sym = self.root.lookup(a.func.name)
                decl = sym.decl if sym is not None else None
            elif isinstance(a, ast.PathExpr):
                sym = self.root.lookup(a.name)
                inst = sym.decl if sym is not None else None
                tsym = self.root.lookup(inst.type.name) if isinstance(inst, ast.Instantiation) and isinstance(
                    inst.type, ast.NamedTypeRef) else None
                decl = tsym.decl if tsym is not None else None
            else:
                continue
            proto_sym = self.root.lookup(param.type.name) if isinstance(param.type, ast.NamedTypeRef) else None
            proto = proto_sym.decl if proto_sym is not None else None
            if not isinstance(decl, (ast.ParserDecl, ast.ControlDecl)) or not isinstance(
                    proto, (ast.ParserTypeDecl, ast.ControlTypeDecl)):
                continue
            what = f"argument {param.name} of {pkg.name} ({decl.name})"
            if len(decl.params) != len(proto.params):
                raise semantic_error(a.loc, f"{what}: {decl.name} has {len(decl.params)} parameters, "
                                     f"the {proto.name} prototype {len(proto.params)}")
            tvars = dict(zip(proto.type_params, [t.name if isinstance(t, ast.NamedTypeRef) else "" for t in
                                                 param.type.type_args], strict=False))
            for mine, theirs in zip(decl.params, proto.params, strict=True):
                if mine.direction != theirs.direction:
                    raise semantic_error(mine.loc, f"{what}: parameter {mine.name} is "
                                         f"'{mine.direction or 'directionless'}' where {proto.name} has "
                                         f"'{theirs.direction or 'directionless'}'")
                var = tvars.get(theirs.type.name) if isinstance(theirs.type, ast.NamedTypeRef) else None
                if var:
                    t = self.resolve_type(mine.type, self.root)
                    if var in bound and bound[var][0] is not t and str(bound[var][0]) != str(t):
                        raise semantic_error(mine.loc, f"{what}: parameter {mine.name} has type {t}, but "
                                             f"{bound[var][1]} gives {pkg.name}'s {var} the type {bound[var][0]}")
                    bound.setdefault(var, (t, decl.name))

    def elaborate_main(self, main: ast.Instantiation) -> None:
        ptype = self.resolve_type(main.type, self.root)
        assert isinstance(ptype, BlockT)
        if ptype.name != "V1Switch":
            raise semantic_error(main.loc, f"p4sim runs v1model's V1Switch package, not {ptype.name}")
        if len(main.args) != len(V1SWITCH_STAGES):
            raise semantic_error(main.loc, f"V1Switch takes {len(V1SWITCH_STAGES)} arguments")
        self.check_package_signatures(main, ptype)
        for stage, arg in zip(V1SWITCH_STAGES, main.args, strict=True):
            a = arg.value
            if isinstance(a, ast.CallExpr) and isinstance(a.func, ast.PathExpr):
                sym = self.root.lookup(a.func.name)
                if sym is None or sym.kind != "block":
                    raise semantic_error(a.loc, f"{a.func.name}: parser or control not found")
                # an instance made here is named after its type: p4c ignores an @name on the
                # parser or control type itself
                bname = sym.decl.name
                use = BlockUse(bname, "parser" if isinstance(sym.decl, ast.ParserDecl) else "control")
                self.model.blocks.append(use)
                self.block_stack.append(use)
                try:
                    inst = self.instantiate_block(sym.decl, bname, a.args, self.root, a.loc)
                finally:
                    self.block_stack.pop()
            elif isinstance(a, ast.PathExpr):
                sym = self.root.lookup(a.name)
                if sym is None or sym.kind != "instance":
                    raise semantic_error(a.loc, f"{a.name}: instance not found")
                inst = sym.info
            else:
                raise semantic_error(a.loc, "V1Switch arguments must be parser/control instantiations")
            self.model.entry_points[stage] = inst.pyname
            if stage == "ingress":
                self.model.type_aliases["headers"] = inst.apply_types[0]
                self.model.type_aliases["metadata"] = inst.apply_types[1]
        self.model.main_annotations = list(main.annotations)
        for t in self.model.tables:
            if t.applied:
                for ar in t.actions:
                    ar.action.used = True
                if t.default_action is not None:
                    t.default_action.used = True
        meta_t = strip_newtype(self.model.type_aliases["metadata"])
        hdr_t = strip_newtype(self.model.type_aliases["headers"])
        assert isinstance(meta_t, StructLikeT) and isinstance(hdr_t, StructLikeT)
        lines = [
            f"HEADERS_CLASS = {hdr_t.pyclass}",
            f"METADATA_CLASS = {meta_t.pyclass}",
            f"STAGES = {{{', '.join(f'{k!r}: {v}' for k, v in self.model.entry_points.items())}}}",
        ]
        # field lists: copy the user-metadata fields annotated @field_list(i)
        lines.append("def _preserve_noop(src, dst):\n    pass")
        fl_entries = []
        for idx, names in sorted(self.field_lists.items()):
            fn = f"_preserve_{idx}"
            body = []
            for qual in names:
                tname, fname = qual.split(".", 1)
                if tname == meta_t.name:
                    body.append(f"    dst.{py_ident(fname)} = src.{py_ident(fname)}")
            lines.append(f"def {fn}(src, dst):\n" + ("\n".join(body) if body else "    pass"))
            fl_entries.append(f"{idx}: {fn}")
        lines.append(f"FIELD_LISTS = {{{', '.join(fl_entries)}}}")
        self.chunks.append("\n".join(lines) + "\n")


def _header_field_ok(t: Type, nested: bool = False) -> bool:
    """A type a header field may have: a bit string, bool, a serializable enum, varbit (not
    inside a struct), or a struct of those (P4_16: structs nest in headers)."""
    t = strip_newtype(t)
    if isinstance(t, (BitT, BoolT)) or (isinstance(t, EnumT) and t.underlying is not None):
        return True
    if isinstance(t, VarbitT):
        return not nested
    if isinstance(t, StructT):
        return all(_header_field_ok(ft, True) for _, ft in t.fields)
    return False


def elaborate(program: ast.Program) -> ProgramModel:
    """Check and translate a parsed program; raises CompileError on the first problem."""
    instantiate_direct_calls(program)
    check_table_paths(program)
    model = Compiler().run(program)
    if model.action_errors:
        # the actions p4c keeps: the used ones and, through them, those their bodies call
        kept = {a.name for a in model.actions if a.used}
        todo = list(kept)
        while todo:
            for callee in model.action_callees.get(todo.pop(), ()):
                if callee not in kept:
                    kept.add(callee)
                    todo.append(callee)
        for name, err in model.action_errors.items():
            if name in kept:
                raise err
    return model


__all__ = ["elaborate", "Compiler", "BlockInstance", "TExpr"]
