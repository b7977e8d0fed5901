"""P4 types as the checker resolves them: widths evaluated, typedefs followed, generics bound."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from . import ast


class Type:
    """Base of every resolved type."""

    def __str__(self) -> str:  # pragma: no cover - overridden
        return type(self).__name__


@dataclass(frozen=True)
class BitT(Type):
    width: int
    signed: bool = False

    @property
    def mask(self) -> int:
        return (1 << self.width) - 1

    def __str__(self) -> str:
        return f"{'int' if self.signed else 'bit'}<{self.width}>"


@dataclass(frozen=True)
class IntT(Type):
    """Arbitrary-precision integer: the type of unsized literals and compile-time constants."""

    def __str__(self) -> str:
        return "int"


@dataclass(frozen=True)
class VarbitT(Type):
    max_width: int

    def __str__(self) -> str:
        return f"varbit<{self.max_width}>"


@dataclass(frozen=True)
class BoolT(Type):
    def __str__(self) -> str:
        return "bool"


@dataclass(frozen=True)
class StringT(Type):
    def __str__(self) -> str:
        return "string"


@dataclass(frozen=True)
class VoidT(Type):
    def __str__(self) -> str:
        return "void"


@dataclass(frozen=True)
class DontCareT(Type):
    def __str__(self) -> str:
        return "_"


@dataclass(frozen=True)
class ErrorT(Type):
    def __str__(self) -> str:
        return "error"


@dataclass(frozen=True)
class MatchKindT(Type):
    def __str__(self) -> str:
        return "match_kind"


@dataclass(eq=False)
class StructLikeT(Type):
    """Shared shape of header, header_union and struct: named, ordered fields."""

    name: str
    fields: list[tuple[str, Type]] = field(default_factory=list)
    annotations: list[ast.Annotation] = field(default_factory=list)
    pyclass: str = ""

    def field_type(self, name: str) -> Type | None:
        for fname, ftype in self.fields:
            if fname == name:
                return ftype
        return None

    def __str__(self) -> str:
        return self.name


@dataclass(eq=False)
class HeaderT(StructLikeT):
    @property
    def bit_width(self) -> int:
        """Width of the fixed part (varbit counted at its maximum)."""
        return sum(width_of(t) for _, t in self.fields)

    @property
    def has_varbit(self) -> bool:
        return any(isinstance(t, VarbitT) for _, t in self.fields)


@dataclass(eq=False)
class UnionT(StructLikeT):
    pass


@dataclass(eq=False)
class StructT(StructLikeT):
    pass


@dataclass(frozen=True)
class StackT(Type):
    elem: Type
    size: int

    def __str__(self) -> str:
        return f"{self.elem}[{self.size}]"


@dataclass(eq=False)
class EnumT(Type):
    """Plain enum (values are member indexes) or serializable enum (``underlying`` set)."""

    name: str
    members: list[str]
    underlying: BitT | None = None
    values: dict[str, int] = field(default_factory=dict)

    def value_of(self, member: str) -> int:
        if self.underlying is not None:
            return self.values[member]
        return self.members.index(member)

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class TupleT(Type):
    elems: tuple[Type, ...]

    def __str__(self) -> str:
        return "tuple<" + ", ".join(map(str, self.elems)) + ">"


@dataclass(eq=False)
class NewT(Type):
    """``type bit<32> IPv4Addr_t;``: a distinct type over a base type."""

    name: str
    base: Type
    annotations: list[ast.Annotation] = field(default_factory=list)

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class TypeVarT(Type):
    name: str

    def __str__(self) -> str:
        return self.name


@dataclass(eq=False)
class ExternT(Type):
    decl: ast.ExternDecl
    args: tuple[Type, ...] = ()

    @property
    def name(self) -> str:
        return self.decl.name

    def __str__(self) -> str:
        if self.args:
            return f"{self.decl.name}<{', '.join(map(str, self.args))}>"
        return self.decl.name


@dataclass(eq=False)
class BlockT(Type):
    """Type of a parser, control or package declaration (or prototype)."""

    kind: str  # "parser" | "control" | "package"
    decl: ast.Node
    args: tuple[Type, ...] = ()

    @property
    def name(self) -> str:
        return self.decl.name  # type: ignore[attr-defined]

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class TableT(Type):
    name: str

    def __str__(self) -> str:
        return f"table {self.name}"


@dataclass(frozen=True)
class ApplyResultT(Type):
    """What ``t.apply()`` returns: has ``hit``, ``miss`` and ``action_run``."""

    table: str

    def __str__(self) -> str:
        return f"apply_result<{self.table}>"


@dataclass(frozen=True)
class ActionEnumT(Type):
    """Type of ``t.apply().action_run``."""

    table: str


def strip_newtype(t: Type) -> Type:
    while isinstance(t, NewT):
        t = t.base
    return t


def width_of(t: Type) -> int:
    """Width in bits of a type that has one (bit/int/bool/varbit max/serializable enum/headers)."""
    t = strip_newtype(t)
    if isinstance(t, BitT):
        return t.width
    if isinstance(t, BoolT):
        return 1
    if isinstance(t, VarbitT):
        return t.max_width
    if isinstance(t, EnumT) and t.underlying is not None:
        return t.underlying.width
    if isinstance(t, ErrorT):
        # BMv2 represents error values on 32 bits when they are used as data.
        return 32
    if isinstance(t, StructLikeT):
        if isinstance(t, UnionT):
            return max((width_of(ft) for _, ft in t.fields), default=0)
        return sum(width_of(ft) for _, ft in t.fields)
    if isinstance(t, StackT):
        return width_of(t.elem) * t.size
    raise TypeError(f"type {t} has no width")


def is_bits(t: Type) -> bool:
    return isinstance(strip_newtype(t), BitT)


def is_integral(t: Type) -> bool:
    t = strip_newtype(t)
    return isinstance(t, (BitT, IntT)) or (isinstance(t, EnumT) and t.underlying is not None)


def same_type(a: Type, b: Type) -> bool:
    if a is b:
        return True
    if isinstance(a, NewT) or isinstance(b, NewT):
        return a is b
    return a == b if not isinstance(a, StructLikeT | EnumT | ExternT | BlockT) else a is b
