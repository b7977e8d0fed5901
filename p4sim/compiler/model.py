"""The elaborated program: every control-plane object with its name, shape and generated code.

This is what P4Info generation reads and what the switch binds its state to. Names are the
control-plane names p4c uses (fully qualified, ``@name`` honoured).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import ast
from .errors import CompileError
from .types import StructLikeT, Type


@dataclass
class ParamInfo:
    name: str
    width: int
    annotations: list[ast.Annotation] = field(default_factory=list)
    type_name: str | None = None  # for ``type``-declared (new) types
    p4type: Type | None = None  # the parameter's type (P4Info lists the serializable enums it meets)


@dataclass
class ActionInfo:
    name: str  # control-plane name
    pyname: str  # generated function
    params: list[ParamInfo]
    annotations: list[ast.Annotation] = field(default_factory=list)
    hidden: bool = False
    used: bool = False  # referenced by an applied table, a call or another action (p4c drops the rest)
    decl_key: int = 0  # which declaration it comes from (a top-level action used in two controls is one)


@dataclass
class KeyInfo:
    name: str
    match_kind: str
    width: int
    annotations: list[ast.Annotation] = field(default_factory=list)
    type_name: str | None = None
    p4type: Type | None = None  # the key's type (P4Info lists the serializable enums and errors it meets)


@dataclass
class ActionRefInfo:
    action: ActionInfo
    scope: str = "TABLE_AND_DEFAULT"  # or TABLE_ONLY (@tableonly) / DEFAULT_ONLY (@defaultonly)
    annotations: list[ast.Annotation] = field(default_factory=list)


@dataclass
class ConstEntryInfo:
    """A program-declared entry: per key a tuple (kind, a, b): ("exact", v, None),
    ("ternary", v, mask), ("lpm", v, prefix_len), ("range", lo, hi), ("optional", v, None|mask),
    or ("dontcare", None, None)."""

    matches: list[tuple[str, int | None, int | None]]
    action: ActionInfo
    args: list[int]
    priority: int | None = None


@dataclass
class TableInfo:
    name: str
    pyname: str
    keys: list[KeyInfo]
    actions: list[ActionRefInfo]
    size: int
    default_action: ActionInfo | None = None
    default_args: list[int] = field(default_factory=list)
    default_const: bool = False
    const_entries: list[ConstEntryInfo] = field(default_factory=list)
    entries_const: bool = True
    direct_counter: str | None = None  # control-plane name of the direct_counter
    direct_meter: str | None = None
    implementation: str | None = None  # control-plane name of its action_profile / action_selector
    # ``selector`` key elements: not part of the match key, they feed the selector's hash
    selector_keys: list[KeyInfo] = field(default_factory=list)
    support_timeout: bool = False
    annotations: list[ast.Annotation] = field(default_factory=list)
    hidden: bool = False
    applied: bool = False  # p4c leaves tables that are never applied out of P4Info


@dataclass
class ExternInstance:
    """An extern object: counter, direct_counter, meter, direct_meter, register,
    action_profile, action_selector (kind = the extern type name)."""

    kind: str
    name: str
    pyname: str
    args: dict[str, Any] = field(default_factory=dict)
    type_args: list[Type] = field(default_factory=list)
    annotations: list[ast.Annotation] = field(default_factory=list)
    table: str | None = None  # for direct resources: the table that owns it
    inline: bool = False  # constructed in a table property (``implementation = action_profile(N)``)


@dataclass
class DigestInfo:
    name: str  # the struct type's name (the digest's control-plane name)
    type: Type
    fields: list[tuple[str, int]]


@dataclass
class ValueSetInfo:
    name: str
    pyname: str
    width: int
    size: int
    fields: list[tuple[str, int]]
    annotations: list[ast.Annotation] = field(default_factory=list)
    used: bool = False  # p4c leaves value sets no select() uses out of P4Info
    # per struct field: its annotations (@id, @match(kind), others are copied to P4Info)
    field_annotations: dict[str, list[ast.Annotation]] = field(default_factory=dict)
    elem_type: Type | None = None  # the value_set's type argument


@dataclass
class ControllerHeaderInfo:
    name: str  # "packet_in" / "packet_out"
    header: StructLikeT
    annotations: list[ast.Annotation] = field(default_factory=list)
    # per header field: its annotations (@id gives the metadata id; others are copied to P4Info)
    field_annotations: dict[str, list[ast.Annotation]] = field(default_factory=dict)


@dataclass
class BlockUse:
    """A parser or control instance as p4c's evaluator walks it, for P4Info ordering and pruning.

    p4c emits actions control by control (in V1Switch parameter order): first the top-level
    actions the control references (in first-reference order), then the control's own actions
    in declaration order; tables and externs follow the same control order.
    """

    name: str  # control-plane name of the instance
    kind: str  # "parser" | "control"
    actions: list[str] = field(default_factory=list)  # actions declared in it, declaration order
    references: list[str] = field(default_factory=list)  # actions it references, first-reference order
    tables: list[str] = field(default_factory=list)  # tables declared in it, declaration order


@dataclass
class ProgramModel:
    actions: list[ActionInfo] = field(default_factory=list)
    tables: list[TableInfo] = field(default_factory=list)
    externs: list[ExternInstance] = field(default_factory=list)
    digests: list[DigestInfo] = field(default_factory=list)
    value_sets: list[ValueSetInfo] = field(default_factory=list)
    controller_headers: list[ControllerHeaderInfo] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # error members in declaration order
    source: str = ""  # the generated Python module
    entry_points: dict[str, str] = field(default_factory=dict)  # stage -> generated function
    struct_types: dict[str, StructLikeT] = field(default_factory=dict)
    type_aliases: dict[str, Type] = field(default_factory=dict)
    # P4Info: the V1Switch blocks in evaluation order
    blocks: list[BlockUse] = field(default_factory=list)
    # P4Info: ``type``-declared types by name, for type_info.new_types and @p4runtime_translation
    new_types: dict[str, Type] = field(default_factory=dict)
    # P4Info: annotations on the ``main`` instantiation (@pkginfo and others go to pkg_info)
    main_annotations: list[ast.Annotation] = field(default_factory=list)
    # P4Info: a call of an extern function (mark_to_drop, hash, ...) anywhere: p4c then writes
    # a type_info, empty or not
    calls_extern_function: bool = False
    # Errors p4c-bm2-ss reports only for an action it keeps (one used by a table, a control or
    # another action): by action name, raised once the program's use of actions is known
    action_errors: dict[str, CompileError] = field(default_factory=dict)
    # the actions each action's body calls (p4c inlines them: they are kept only if the caller is)
    action_callees: dict[str, set[str]] = field(default_factory=dict)

    def action(self, name: str) -> ActionInfo | None:
        for a in self.actions:
            if a.name == name:
                return a
        return None
