"""Generates the Python classes that hold header, header-union, struct and stack values."""

from __future__ import annotations

from .symbols import py_ident
from .types import (
    BitT,
    BoolT,
    EnumT,
    ErrorT,
    HeaderT,
    NewT,
    StackT,
    StructLikeT,
    StructT,
    Type,
    UnionT,
    VarbitT,
    strip_newtype,
    width_of,
)


def default_value_code(t: Type) -> str:
    """Python expression for a fresh value of type t (headers invalid, numbers zero)."""
    t = strip_newtype(t)
    if isinstance(t, StructLikeT):
        return f"{t.pyclass}()"
    if isinstance(t, StackT):
        return f"Stack({t.size}, {default_factory_code(t.elem)})"
    if isinstance(t, BoolT):
        return "False"
    return "0"


def default_factory_code(t: Type) -> str:
    t = strip_newtype(t)
    if isinstance(t, StructLikeT):
        return t.pyclass
    return f"(lambda: {default_value_code(t)})"


def copy_code(t: Type, expr: str) -> str:
    """Python expression copying a value of type t (deep for aggregates)."""
    t = strip_newtype(t)
    if isinstance(t, (StructLikeT, StackT)):
        return f"{expr}._copy()"
    return expr


def _is_aggregate(t: Type) -> bool:
    return isinstance(strip_newtype(t), (StructLikeT, StackT))


def _field_unpack_code(ft: Type, src: str) -> str:
    """Convert an unsigned bit pattern ``src`` into the field's stored representation."""
    ft = strip_newtype(ft)
    if isinstance(ft, BitT) and ft.signed:
        half = 1 << (ft.width - 1)
        return f"((({src}) ^ {half}) - {half})"
    if isinstance(ft, BoolT):
        return f"bool({src})"
    return src


def _field_pack_code(ft: Type, src: str) -> str:
    ft = strip_newtype(ft)
    if isinstance(ft, BitT) and ft.signed:
        return f"(({src}) & {ft.mask})"
    if isinstance(ft, BoolT):
        return f"int({src})"
    return src


def _scalar_width(ft: Type) -> int:
    ft = strip_newtype(ft)
    if isinstance(ft, (BitT, BoolT)) or (isinstance(ft, EnumT) and ft.underlying is not None):
        return width_of(ft)
    if isinstance(ft, ErrorT):
        return 32
    raise TypeError(f"field of type {ft} cannot be serialized")


def header_class(t: HeaderT) -> str:
    names = [py_ident(n) for n, _ in t.fields]
    cls = t.pyclass
    lines = [f"class {cls}(Header):"]
    slots = names + [f"_w_{n}" for n, ft in zip(names, (f for _, f in t.fields), strict=True) if isinstance(strip_newtype(ft), VarbitT)]
    lines.append(f"    __slots__ = {tuple(slots)!r}")
    lines.append(f"    _p4name = {t.name!r}")
    lines.append(f"    _field_names = {tuple(n for n, _ in t.fields)!r}")
    lines.append(f"    _field_widths = {tuple(width_of(ft) for _, ft in t.fields)!r}")
    fixed_bits = sum(width_of(ft) for _, ft in t.fields if not isinstance(strip_newtype(ft), VarbitT))
    lines.append(f"    _fixed_bits = {fixed_bits}")
    lines.append(f"    _has_varbit = {t.has_varbit}")
    # __init__
    lines.append("    def __init__(self):")
    lines.append("        self._valid = False")
    for n, (_, ft) in zip(names, t.fields, strict=True):
        lines.append(f"        self.{n} = {'False' if isinstance(strip_newtype(ft), BoolT) else '0'}")
        if isinstance(strip_newtype(ft), VarbitT):
            lines.append(f"        self._w_{n} = 0")
    # copy / set
    lines.append("    def _copy(self):")
    lines.append(f"        o = {cls}.__new__({cls})")
    lines.append("        o._valid = self._valid")
    for s in slots:
        lines.append(f"        o.{s} = self.{s}")
    lines.append("        return o")
    lines.append("    def _set(self, o):")
    lines.append("        self._valid = o._valid")
    for s in slots:
        lines.append(f"        self.{s} = o.{s}")
    lines.append("    def _eq(self, o):")
    lines.append("        if self._valid != o._valid: return False")
    lines.append("        if not self._valid: return True")
    cmp = " and ".join(f"self.{s} == o.{s}" for s in slots) or "True"
    lines.append(f"        return {cmp}")
    if not t.has_varbit:
        nbits = fixed_bits
        # pack into one integer, MSB first (first field is most significant)
        lines.append("    def _pack(self):")
        parts = []
        shift = nbits
        for n, (_, ft) in zip(names, t.fields, strict=True):
            w = _scalar_width(ft)
            shift -= w
            v = _field_pack_code(ft, f"self.{n}")
            parts.append(f"({v} << {shift})" if shift else v)
        lines.append(f"        return {' | '.join(parts) if parts else '0'}")
        lines.append("    def _unpack(self, v):")
        shift = nbits
        for n, (_, ft) in zip(names, t.fields, strict=True):
            w = _scalar_width(ft)
            shift -= w
            src = f"(v >> {shift}) & {(1 << w) - 1}" if shift else f"v & {(1 << w) - 1}"
            lines.append(f"        self.{n} = {_field_unpack_code(ft, src)}")
        lines.append("        self._valid = True")
        nbytes = (nbits + 7) // 8
        lines.append(f"    _nbytes = {nbytes}")
        lines.append("    def _extract(self, K):")
        lines.append(f"        end = K.off + {nbytes}")
        lines.append("        if end > K.n:")
        lines.append("            raise ParserError(ERR_PacketTooShort)")
        lines.append("        self._unpack(int.from_bytes(K.data[K.off:end], 'big'))")
        lines.append("        K.off = end")
        lines.append("    def _emit(self, out):")
        lines.append("        if self._valid:")
        lines.append(f"            out += self._pack().to_bytes({nbytes}, 'big')")
    else:
        lines.append("    def _emit(self, out):")
        lines.append("        if self._valid:")
        lines.append("            emit_varbit_header(self, out)")
    return "\n".join(lines) + "\n"


def struct_class(t: StructT | UnionT) -> str:
    names = [py_ident(n) for n, _ in t.fields]
    cls = t.pyclass
    base = "Union" if isinstance(t, UnionT) else "Struct"
    lines = [f"class {cls}({base}):"]
    lines.append(f"    __slots__ = {tuple(names)!r}")
    lines.append(f"    _p4name = {t.name!r}")
    lines.append(f"    _field_names = {tuple(n for n, _ in t.fields)!r}")
    lines.append("    def __init__(self):")
    if not names:
        lines.append("        pass")
    for n, (_, ft) in zip(names, t.fields, strict=True):
        lines.append(f"        self.{n} = {default_value_code(ft)}")
    lines.append("    def _copy(self):")
    lines.append(f"        o = {cls}.__new__({cls})")
    for n, (_, ft) in zip(names, t.fields, strict=True):
        lines.append(f"        o.{n} = {copy_code(ft, 'self.' + n)}")
    lines.append("        return o")
    lines.append("    def _set(self, o):")
    if not names:
        lines.append("        pass")
    for n, (_, ft) in zip(names, t.fields, strict=True):
        if _is_aggregate(ft):
            lines.append(f"        self.{n}._set(o.{n})")
        else:
            lines.append(f"        self.{n} = o.{n}")
    lines.append("    def _eq(self, o):")
    cmps = []
    for n, (_, ft) in zip(names, t.fields, strict=True):
        cmps.append(f"self.{n}._eq(o.{n})" if _is_aggregate(ft) else f"self.{n} == o.{n}")
    lines.append(f"        return {' and '.join(cmps) if cmps else 'True'}")
    lines.append("    def _members(self):")
    lines.append(f"        return ({''.join('self.' + n + ', ' for n in names)})")
    lines.append("    def _emit(self, out):")
    emitted = False
    for n, (_, ft) in zip(names, t.fields, strict=True):
        if isinstance(strip_newtype(ft), HeaderT):
            # test validity here: most headers of a packet are absent, and a call costs more
            lines.append(f"        if self.{n}._valid: self.{n}._emit(out)")
            emitted = True
        elif _is_aggregate(ft):
            lines.append(f"        self.{n}._emit(out)")
            emitted = True
    if not emitted:
        lines.append("        pass")
    if isinstance(t, UnionT):
        # BMv2: a member made valid (setValid, extract, assignment) invalidates the others
        lines.append("    def _valid_only(self, keep):")
        for n in names:
            lines.append(f"        if self.{n} is not keep: self.{n}._valid = False")
        lines.append("    def _isvalid(self):")
        lines.append(f"        return {' or '.join('self.' + n + '._valid' for n in names) or 'False'}")
    return "\n".join(lines) + "\n"


def is_typed_newtype(t: Type) -> bool:
    return isinstance(t, NewT)
