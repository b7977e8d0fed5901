"""Syntax tree of a P4_16 program, as the parser builds it and the checker reads it.

Nodes are plain dataclasses. Every node carries ``loc`` (where it starts in the user's file,
after preprocessing line markers are applied) so that later passes can report
``file:line:col: error: ...``. Nothing here is resolved: names are strings, types are
syntactic references, and widths are unevaluated expressions.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Loc:
    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


NOLOC = Loc("<builtin>", 0, 0)


@dataclass
class Node:
    loc: Loc = field(default=NOLOC, kw_only=True, repr=False, compare=False)


# --- annotations ---------------------------------------------------------------------------


@dataclass
class Annotation(Node):
    """``@name`` / ``@name(expr, ...)`` / ``@name[k=v, ...]`` / unstructured ``@name(tokens)``.

    ``args`` holds the parsed expressions when the body parses as an expression list; ``kv``
    holds key=value pairs of a structured ``@name[...]`` annotation; ``raw`` is the body's text
    exactly as written (without the enclosing parentheses), kept for unstructured annotations
    such as ``@pragma`` and for P4Info's annotation strings.
    """

    name: str
    args: list[Expr] = field(default_factory=list)
    kv: dict[str, Expr] = field(default_factory=dict)
    raw: str | None = None
    structured: bool = False


# --- type references -------------------------------------------------------------------------


@dataclass
class TypeRef(Node):
    pass


@dataclass
class BitTypeRef(TypeRef):
    """``bit<W>``, ``int<W>`` (signed), or bare ``bit`` (width 1)."""

    width: Expr
    signed: bool = False


@dataclass
class VarbitTypeRef(TypeRef):
    max_width: Expr


@dataclass
class BoolTypeRef(TypeRef):
    pass


@dataclass
class IntTypeRef(TypeRef):
    """Arbitrary-precision ``int``."""


@dataclass
class StringTypeRef(TypeRef):
    pass


@dataclass
class ErrorTypeRef(TypeRef):
    pass


@dataclass
class MatchKindTypeRef(TypeRef):
    pass


@dataclass
class VoidTypeRef(TypeRef):
    pass


@dataclass
class DontCareTypeRef(TypeRef):
    """``_`` used as a type argument."""


@dataclass
class NamedTypeRef(TypeRef):
    """A type by name, optionally specialized: ``H``, ``register<bit<32>>``, ``.H`` (global)."""

    name: str
    type_args: list[TypeRef] = field(default_factory=list)
    is_global: bool = False


@dataclass
class StackTypeRef(TypeRef):
    """``T[size]``."""

    elem: TypeRef
    size: Expr


@dataclass
class TupleTypeRef(TypeRef):
    elems: list[TypeRef]


@dataclass
class ListTypeRef(TypeRef):
    """``list<T>`` (used by newer v1model-style externs; rarely in programs)."""

    elem: TypeRef


# --- expressions ------------------------------------------------------------------------------


@dataclass
class Expr(Node):
    pass


@dataclass
class IntLiteral(Expr):
    """``5``, ``0x1F``, ``8w5``, ``4s-3`` ... ``width`` is None for an unsized (int) literal."""

    value: int
    width: int | None = None
    signed: bool = False
    text: str = ""


@dataclass
class BoolLiteral(Expr):
    value: bool


@dataclass
class StringLiteral(Expr):
    value: str


@dataclass
class PathExpr(Expr):
    """A name: ``x``, ``.x`` (global scope), or a type name used as a value (``HashAlgorithm``)."""

    name: str
    is_global: bool = False


@dataclass
class ThisExpr(Expr):
    pass


@dataclass
class MemberExpr(Expr):
    """``expr.member``; also ``hdr.stack.next``, ``error.NoError``, ``E.A``, ``t.apply``."""

    expr: Expr
    member: str


@dataclass
class TypeMemberExpr(Expr):
    """``T.member`` where T is written as a type (e.g. ``bit<8>.minSizeInBits`` is not P4; but
    ``error.X`` and ``E.X`` may come out as MemberExpr on a PathExpr; this node is for the
    unambiguous cases the parser can see, such as a specialized type before the dot)."""

    type: TypeRef
    member: str


@dataclass
class IndexExpr(Expr):
    """``expr[index]``."""

    expr: Expr
    index: Expr


@dataclass
class SliceExpr(Expr):
    """``expr[hi:lo]``."""

    expr: Expr
    hi: Expr
    lo: Expr


@dataclass
class Argument(Node):
    """A call argument; ``name`` is set for named arguments (``f(x = 1)``); ``value`` is a
    DontCareExpr for ``_``."""

    value: Expr
    name: str | None = None


@dataclass
class CallExpr(Expr):
    """``func<type_args>(args)``: functions, actions, extern methods, ``t.apply()``,
    ``hdr.setValid()``, ``pkt.extract(...)``, constructor calls in expressions."""

    func: Expr
    args: list[Argument] = field(default_factory=list)
    type_args: list[TypeRef] = field(default_factory=list)


@dataclass
class UnaryExpr(Expr):
    """op is one of ``!``, ``~``, ``-``, ``+``."""

    op: str
    operand: Expr


@dataclass
class BinaryExpr(Expr):
    """op is one of ``* / % + - |+| |-| << >> <= >= < > != == & ^ | ++ && ||``."""

    op: str
    left: Expr
    right: Expr


@dataclass
class TernaryExpr(Expr):
    cond: Expr
    then: Expr
    other: Expr


@dataclass
class CastExpr(Expr):
    type: TypeRef
    expr: Expr


@dataclass
class ListExpr(Expr):
    """``{a, b, c}``: tuple / list / struct-by-position / header-by-position initializer."""

    elems: list[Expr]


@dataclass
class StructInitExpr(Expr):
    """``{f1 = a, f2 = b}`` (optionally with a type prefix: ``(T){...}`` comes as a CastExpr)."""

    fields: list[tuple[str, Expr]]


@dataclass
class InvalidExpr(Expr):
    """``{#}``: the invalid header / header union value."""


@dataclass
class DontCareExpr(Expr):
    """``_`` as an expression: an ``out`` argument to discard, or a keyset that matches anything."""


@dataclass
class DefaultExpr(Expr):
    """``default`` as a keyset or switch label."""


@dataclass
class MaskExpr(Expr):
    """``value &&& mask`` in a keyset."""

    value: Expr
    mask: Expr


@dataclass
class RangeExpr(Expr):
    """``lo .. hi`` in a keyset."""

    lo: Expr
    hi: Expr


@dataclass
class TypeArgExpr(Expr):
    """A type written where a value is expected (argument of ``sizeInBits`` style calls)."""

    type: TypeRef


# --- statements -------------------------------------------------------------------------------


@dataclass
class Stmt(Node):
    pass


@dataclass
class AssignStmt(Stmt):
    lhs: Expr
    rhs: Expr


@dataclass
class CompoundAssignStmt(Stmt):
    """``lhs op= rhs`` (P4_16 1.2.5): ``lhs = lhs op rhs`` with ``lhs`` evaluated once; ``op`` is
    the binary operator (``+``, ``|+|``, ``<<`` ...)."""

    lhs: Expr
    op: str
    rhs: Expr


@dataclass
class ForStmt(Stmt):
    """``for (init; cond; updates) body``; ``init`` holds declarations and assignments or
    calls, ``updates`` assignments or calls; ``cond`` None when omitted (always true)."""

    init: list[Stmt]
    cond: Expr | None
    updates: list[Stmt]
    body: Stmt
    annotations: list[Annotation] = field(default_factory=list)


@dataclass
class ForInStmt(Stmt):
    """``for (T x in collection) body`` (kept to be refused with p4c's message)."""

    type: TypeRef | None
    name: str
    collection: Expr
    body: Stmt


@dataclass
class BreakStmt(Stmt):
    pass


@dataclass
class ContinueStmt(Stmt):
    pass


@dataclass
class CallStmt(Stmt):
    call: CallExpr


@dataclass
class BlockStmt(Stmt):
    stmts: list[Stmt] = field(default_factory=list)
    annotations: list[Annotation] = field(default_factory=list)


@dataclass
class IfStmt(Stmt):
    cond: Expr
    then: Stmt
    other: Stmt | None = None


@dataclass
class SwitchCase(Node):
    """``label: body`` or ``label:`` (falls through to the next case). ``label`` is a
    DefaultExpr, an action name (PathExpr) for action_run switches, or an expression."""

    label: Expr
    body: BlockStmt | None


@dataclass
class SwitchStmt(Stmt):
    expr: Expr
    cases: list[SwitchCase]


@dataclass
class ExitStmt(Stmt):
    pass


@dataclass
class ReturnStmt(Stmt):
    value: Expr | None = None


@dataclass
class EmptyStmt(Stmt):
    pass


@dataclass
class VarDecl(Stmt):
    """``T name [= init];`` as a statement or a local declaration."""

    type: TypeRef
    name: str
    init: Expr | None = None
    annotations: list[Annotation] = field(default_factory=list)


@dataclass
class ConstDecl(Stmt):
    """``const T name = value;`` (top level, local, or in a block)."""

    type: TypeRef
    name: str
    value: Expr
    annotations: list[Annotation] = field(default_factory=list)


# --- declarations -----------------------------------------------------------------------------


@dataclass
class Decl(Node):
    name: str
    annotations: list[Annotation] = field(default_factory=list, kw_only=True)


@dataclass
class Param(Node):
    """``direction`` is ``"in"``, ``"out"``, ``"inout"`` or ``""`` (directionless)."""

    direction: str
    type: TypeRef
    name: str
    default: Expr | None = None
    annotations: list[Annotation] = field(default_factory=list)


@dataclass
class StructField(Node):
    type: TypeRef
    name: str
    annotations: list[Annotation] = field(default_factory=list)


@dataclass
class HeaderDecl(Decl):
    fields: list[StructField]
    type_params: list[str] = field(default_factory=list)


@dataclass
class HeaderUnionDecl(Decl):
    fields: list[StructField]
    type_params: list[str] = field(default_factory=list)


@dataclass
class StructDecl(Decl):
    fields: list[StructField]
    type_params: list[str] = field(default_factory=list)


@dataclass
class EnumMember(Node):
    name: str
    value: Expr | None = None
    annotations: list[Annotation] = field(default_factory=list)


@dataclass
class EnumDecl(Decl):
    """``enum E {A, B}`` or, with ``underlying`` set, ``enum bit<8> E {A = 1, B = 2}``."""

    members: list[EnumMember]
    underlying: TypeRef | None = None


@dataclass
class ErrorDecl(Node):
    """``error { A, B }``; several may appear and they add up."""

    members: list[str]


@dataclass
class MatchKindDecl(Node):
    members: list[str]


@dataclass
class TypedefDecl(Decl):
    """``typedef T name;`` (``is_newtype`` False) or ``type T name;`` (True)."""

    type: TypeRef
    is_newtype: bool = False


@dataclass
class TopConstDecl(Decl):
    type: TypeRef
    value: Expr


@dataclass
class MethodProto(Node):
    """A method prototype inside an extern; a constructor has ``return_type`` None and
    ``name`` equal to the extern's name. ``is_abstract`` marks ``abstract`` methods."""

    name: str
    return_type: TypeRef | None
    params: list[Param]
    type_params: list[str] = field(default_factory=list)
    is_abstract: bool = False
    annotations: list[Annotation] = field(default_factory=list)


@dataclass
class ExternDecl(Decl):
    """``extern Name<T...> { methods }``."""

    type_params: list[str]
    methods: list[MethodProto]


@dataclass
class ExternFunctionDecl(Decl):
    """``extern R f<T...>(params);``"""

    return_type: TypeRef
    params: list[Param]
    type_params: list[str] = field(default_factory=list)


@dataclass
class FunctionDecl(Decl):
    """``R f<T...>(params) { body }``."""

    return_type: TypeRef
    params: list[Param]
    body: BlockStmt
    type_params: list[str] = field(default_factory=list)


@dataclass
class ActionDecl(Decl):
    params: list[Param]
    body: BlockStmt


@dataclass
class ParserTypeDecl(Decl):
    """``parser P<T...>(params);`` (a prototype, e.g. v1model's ``Parser``)."""

    type_params: list[str]
    params: list[Param]


@dataclass
class ControlTypeDecl(Decl):
    type_params: list[str]
    params: list[Param]


@dataclass
class PackageTypeDecl(Decl):
    """``package V1Switch<H, M>(Parser<H, M> p, ...);``"""

    type_params: list[str]
    params: list[Param]


@dataclass
class Instantiation(Decl):
    """``Type<args>(ctor args) name;`` at top level or as a local of a parser/control.
    The top-level ``V1Switch(...) main;`` is one of these. ``initializer`` holds the block of
    an abstract-method implementation (``{ ... }`` after the arguments), rare in v1model."""

    type: TypeRef
    args: list[Argument]
    initializer: list[Decl] | None = None


@dataclass
class ValueSetDecl(Decl):
    """``value_set<T>(size) name;``"""

    elem_type: TypeRef
    size: Expr


@dataclass
class SelectCase(Node):
    """``keyset: next_state;`` where keyset is an expression (MaskExpr, RangeExpr, DefaultExpr,
    DontCareExpr, a ListExpr for tuples, or a value-set name)."""

    keyset: Expr
    next_state: str


@dataclass
class SelectExpr(Expr):
    """``select(e1, e2) { cases }``; ``exprs`` has one element per tuple component."""

    exprs: list[Expr]
    cases: list[SelectCase]


@dataclass
class ParserState(Node):
    """``state name { stmts transition ...; }``. ``transition`` is either a state name (str;
    ``accept``/``reject`` included) or a SelectExpr; None means no transition statement
    (which P4 treats as ``transition reject``)."""

    name: str
    stmts: list[Stmt]
    transition: str | SelectExpr | None
    annotations: list[Annotation] = field(default_factory=list)


@dataclass
class ParserDecl(Decl):
    type_params: list[str]
    params: list[Param]
    ctor_params: list[Param]
    locals: list[Node]  # VarDecl, ConstDecl, Instantiation, ValueSetDecl
    states: list[ParserState]


@dataclass
class KeyElement(Node):
    expr: Expr
    match_kind: str
    annotations: list[Annotation] = field(default_factory=list)


@dataclass
class ActionRef(Node):
    """An action as named in a table's ``actions``/``default_action``/entries, with its
    (possibly partial) arguments: ``a``, ``a(1, 2)``."""

    name: str
    args: list[Argument] = field(default_factory=list)
    is_global: bool = False
    annotations: list[Annotation] = field(default_factory=list)


@dataclass
class TableEntry(Node):
    """One of ``entries = { keyset : action(args); }``. ``keysets`` has one per key element
    (a single-element key may be written without parentheses)."""

    keysets: list[Expr]
    action: ActionRef
    priority: Expr | None = None
    is_const: bool = False
    annotations: list[Annotation] = field(default_factory=list)


@dataclass
class TableProperty(Node):
    """Any table property other than key/actions/default_action/entries, e.g. ``size``,
    ``implementation``, ``counters``, ``meters``, ``support_timeout``, ``idle_timeout``,
    ``psa_...``; ``value`` is the expression after ``=``."""

    name: str
    value: Expr
    is_const: bool = False
    annotations: list[Annotation] = field(default_factory=list)


@dataclass
class TableDecl(Decl):
    key: list[KeyElement] | None = None
    actions: list[ActionRef] = field(default_factory=list)
    default_action: ActionRef | None = None
    default_action_const: bool = False
    entries: list[TableEntry] | None = None
    entries_const: bool = True
    properties: list[TableProperty] = field(default_factory=list)


@dataclass
class ControlDecl(Decl):
    type_params: list[str]
    params: list[Param]
    ctor_params: list[Param]
    locals: list[Node]  # VarDecl, ConstDecl, Instantiation, ActionDecl, TableDecl, FunctionDecl
    body: BlockStmt


TopDecl = (
    HeaderDecl
    | HeaderUnionDecl
    | StructDecl
    | EnumDecl
    | ErrorDecl
    | MatchKindDecl
    | TypedefDecl
    | TopConstDecl
    | ExternDecl
    | ExternFunctionDecl
    | FunctionDecl
    | ActionDecl
    | ParserTypeDecl
    | ControlTypeDecl
    | PackageTypeDecl
    | ParserDecl
    | ControlDecl
    | Instantiation
)


@dataclass
class Program(Node):
    decls: list[Node]
