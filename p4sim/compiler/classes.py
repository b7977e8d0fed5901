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


_CODES = ((8, "Q"), (4, "I"), (2, "H"), (1, "B"))


def _struct_plan(fields: list[tuple[str, int, Type]]):
    """How to move a fixed-width header with ``struct``: (format, unpack code maker, pack args).

    Fields are grouped into runs that end on a byte boundary (``4+4`` bits, or one 16-bit
    field); each run of at most 64 bits is one or more big-endian struct codes. A run wider
    than 64 bits (an IPv6 address) makes the header use the wide-integer code instead.
    """
    groups: list[list[tuple[str, int, Type]]] = []
    cur: list[tuple[str, int, Type]] = []
    bits = 0
    for f in fields:
        cur.append(f)
        bits += f[1]
        if bits % 8 == 0:
            groups.append(cur)
            cur, bits = [], 0
    if cur or not groups:
        return None
    fmt = ">"
    targets: list[str] = []
    after: list[str] = []
    pack_args: list[str] = []
    tmp = 0
    for g in groups:
        gbits = sum(w for _, w, _ in g)
        if gbits > 64:
            return None
        pieces: list[tuple[str, int]] = []  # (code, bytes)
        left = gbits // 8
        for nb, code in _CODES:
            while left >= nb:
                pieces.append((code, nb))
                left -= nb
        fmt += "".join(code for code, _ in pieces)
        single = len(g) == 1 and len(pieces) == 1
        plain = single and _field_unpack_code(g[0][2], "x") == "x"
        if plain:
            targets.append(f"self.{g[0][0]}")
            pack_args.append(f"self.{g[0][0]}")
            continue
        # the group's value, assembled from its pieces (MSB first)
        names = [f"_u{tmp + i}" for i in range(len(pieces))]
        tmp += len(pieces)
        targets.extend(names)
        shift = gbits
        parts = []
        for (_, nb), nm in zip(pieces, names, strict=True):
            shift -= nb * 8
            parts.append(f"({nm} << {shift})" if shift else nm)
        gv = " | ".join(parts)
        if len(g) > 1:
            after.append(f"_g = {gv}")
            gv = "_g"
        shift = gbits
        for n, w, ft in g:
            shift -= w
            src = f"({gv} >> {shift}) & {(1 << w) - 1}" if shift else f"{gv} & {(1 << w) - 1}"
            if len(g) == 1:
                src = gv
            after.append(f"self.{n} = {_field_unpack_code(ft, src)}")
        # pack: the group's value, then split into the pieces
        shift = gbits
        vparts = []
        for n, w, ft in g:
            shift -= w
            v = _field_pack_code(ft, f"self.{n}")
            vparts.append(f"({v} << {shift})" if shift else v)
        pv = " | ".join(vparts)
        if len(pieces) == 1:
            pack_args.append(pv)
        else:
            shift = gbits
            for _, nb in pieces:
                shift -= nb * 8
                piece = f"(({pv}) >> {shift})" if shift else f"({pv})"
                pack_args.append(f"{piece} & {(1 << (nb * 8)) - 1}")

    def unpack_lines(call: str) -> list[str]:
        lhs = targets[0] + "," if len(targets) == 1 else ", ".join(targets)
        return [f"{lhs} = {call}", *after]

    return fmt, unpack_lines, pack_args


def _leaves(fields: list[tuple[str, Type]], prefix: str = "") -> list[tuple[str, Type]]:
    """A header's scalar fields in wire order, as attribute paths: a struct-typed field (the
    P4_16 spec allows structs of bit strings in headers) stands for its own fields, nested
    structs included (``inner.x``)."""
    out: list[tuple[str, Type]] = []
    for n, ft in fields:
        path = prefix + py_ident(n)
        st = strip_newtype(ft)
        if isinstance(st, StructT):
            out.extend(_leaves(st.fields, path + "."))
        else:
            out.append((path, ft))
    return out


def header_class(t: HeaderT) -> str:
    names = [py_ident(n) for n, _ in t.fields]
    leaves = _leaves(t.fields)
    ftype = {py_ident(n): ft for n, ft in t.fields}
    cls = t.pyclass
    lines = [f"class {cls}(Header):"]
    slots = names + [f"_w_{n}" for n, ft in zip(names, (f for _, f in t.fields), strict=True) if isinstance(strip_newtype(ft), VarbitT)]
    lines.append(f"    __slots__ = {tuple(slots)!r}")
    lines.append(f"    _p4name = {t.name!r}")
    lines.append(f"    _field_names = {tuple(n for n, _ in t.fields)!r}")
    if t.has_varbit:
        # what extract_varbit / emit_varbit_header walk: the scalar fields in wire order, a struct
        # field standing for its own fields (attribute paths), each with its width
        lines.append(f"    _leaf_paths = {tuple(tuple(p.split('.')) for p, _ in leaves)!r}")
        lines.append(f"    _leaf_widths = {tuple(width_of(ft) for _, ft in leaves)!r}")
    lines.append(f"    _field_widths = {tuple(width_of(ft) for _, ft in t.fields)!r}")
    fixed_bits = sum(width_of(ft) for _, ft in t.fields if not isinstance(strip_newtype(ft), VarbitT))
    lines.append(f"    _fixed_bits = {fixed_bits}")
    lines.append(f"    _has_varbit = {t.has_varbit}")
    # __init__
    lines.append("    def __init__(self):")
    lines.append("        self._valid = False")
    for n, (_, ft) in zip(names, t.fields, strict=True):
        lines.append(f"        self.{n} = {default_value_code(ft)}")
        if isinstance(strip_newtype(ft), VarbitT):
            lines.append(f"        self._w_{n} = 0")
    # copy / set
    lines.append("    def _copy(self):")
    lines.append(f"        o = {cls}.__new__({cls})")
    lines.append("        o._valid = self._valid")
    for sl in slots:
        ft = ftype.get(sl)
        lines.append(f"        o.{sl} = {copy_code(ft, 'self.' + sl) if ft is not None else 'self.' + sl}")
    lines.append("        return o")
    # BMv2's add_header: making an invalid header valid zeroes its fields (a valid one keeps them)
    lines.append("    def set_valid(self):")
    lines.append("        if not self._valid:")
    lines.append("            self._valid = True")
    for path, ft in leaves:
        lines.append(f"            self.{path} = {'False' if isinstance(strip_newtype(ft), BoolT) else '0'}")
    # BMv2's assign_header: from an invalid header, the target becomes invalid and keeps its fields
    lines.append("    def _set(self, o):")
    lines.append("        if not o._valid:")
    lines.append("            self._valid = False")
    lines.append("            return")
    lines.append("        self._valid = True")
    for sl in slots:
        ft = ftype.get(sl)
        if ft is not None and _is_aggregate(ft):
            lines.append(f"        self.{sl}._set(o.{sl})")
        else:
            lines.append(f"        self.{sl} = o.{sl}")
    lines.append("    def _eq(self, o):")
    lines.append("        if self._valid != o._valid: return False")
    lines.append("        if not self._valid: return True")
    cmp = " and ".join([f"self.{p} == o.{p}" for p, _ in leaves]
                       + [f"self.{sl} == o.{sl}" for sl in slots if sl not in names]) or "True"
    lines.append(f"        return {cmp}")
    if not t.has_varbit:
        nbits = fixed_bits
        # pack into one integer, MSB first (first field is most significant)
        lines.append("    def _pack(self):")
        parts = []
        shift = nbits
        for n, ft in leaves:
            w = _scalar_width(ft)
            shift -= w
            v = _field_pack_code(ft, f"self.{n}")
            parts.append(f"({v} << {shift})" if shift else v)
        lines.append(f"        return {' | '.join(parts) if parts else '0'}")
        lines.append("    def _unpack(self, v):")
        shift = nbits
        for n, ft in leaves:
            w = _scalar_width(ft)
            shift -= w
            src = f"(v >> {shift}) & {(1 << w) - 1}" if shift else f"v & {(1 << w) - 1}"
            lines.append(f"        self.{n} = {_field_unpack_code(ft, src)}")
        lines.append("        self._valid = True")
        nbytes = (nbits + 7) // 8
        lines.append(f"    _nbytes = {nbytes}")
        plan = _struct_plan([(n, _scalar_width(ft), ft) for n, ft in leaves])
        if plan is None:
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
            # struct does the byte-aligned fields in C; shifting one wide int field by field
            # (the fallback above) makes a new big int per field
            fmt, unpack_lines, pack_args = plan
            prelude = f"_unpack_{cls} = PyStruct({fmt!r}).unpack_from\n_pack_{cls} = PyStruct({fmt!r}).pack\n\n\n"
            lines.append("    def _extract(self, K):")
            lines.append("        off = K.off")
            lines.append(f"        end = off + {nbytes}")
            lines.append("        if end > K.n:")
            lines.append("            raise ParserError(ERR_PacketTooShort)")
            lines.extend("        " + ln for ln in unpack_lines(f"_unpack_{cls}(K.data, off)"))
            lines.append("        self._valid = True")
            lines.append("        K.off = end")
            lines.append("    def _emit(self, out):")
            lines.append("        if self._valid:")
            lines.append(f"            out += _pack_{cls}({', '.join(pack_args)})")
            return prelude + "\n".join(lines) + "\n"
    else:
        lines.append("    def _emit(self, out):")
        lines.append("        if self._valid:")
        lines.append("            emit_varbit_header(self, out)")
    return "\n".join(lines) + "\n"


def blank_name(t: HeaderT) -> str:
    """The module-level name of the shared, never-written invalid header of type ``t``."""
    return f"_blank_{t.pyclass}"


def header_blank(t: HeaderT) -> str:
    """The shared blank of a header type: what a header-union member never written reads as."""
    return f"{blank_name(t)} = frozen_blank({t.pyclass})\n"


def struct_class(t: StructT | UnionT) -> str:
    if isinstance(t, UnionT):
        return union_class(t)
    names = [py_ident(n) for n, _ in t.fields]
    cls = t.pyclass
    base = "Struct"
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
    return "\n".join(lines) + "\n"


def union_class(t: UnionT) -> str:
    """A header union whose members are made on first write.

    At most one member of a union is valid, yet a program like splice.p4 (a 16-slot stack of
    9-member option unions) would otherwise build nine headers for every option a packet
    carries. A member never written is its type's shared blank (invalid, fields zero, frozen);
    generated code reads members as attributes and writes them through ``w_<member>()``, which
    makes the member's own header first. The blank refuses writes, so a write that missed
    ``w_`` fails loudly instead of changing every union at once.
    """
    members: list[tuple[str, HeaderT]] = []
    for n, ft in t.fields:
        ht = strip_newtype(ft)
        assert isinstance(ht, HeaderT), "the front end admits only headers in unions"
        members.append((py_ident(n), ht))
    cls = t.pyclass
    lines = [f"class {cls}(Union):"]
    lines.append(f"    __slots__ = {tuple(n for n, _ in members)!r}")
    lines.append(f"    _p4name = {t.name!r}")
    lines.append(f"    _field_names = {tuple(n for n, _ in t.fields)!r}")
    lines.append("    def __init__(self):")
    if not members:
        lines.append("        pass")
    for n, ht in members:
        lines.append(f"        self.{n} = {blank_name(ht)}")
    for n, ht in members:
        lines.append(f"    def w_{n}(self):")
        lines.append(f"        h = self.{n}")
        lines.append(f"        if h is {blank_name(ht)}:")
        lines.append(f"            h = self.{n} = {ht.pyclass}()")
        lines.append("        return h")
    lines.append("    def _copy(self):")
    lines.append(f"        o = {cls}.__new__({cls})")
    for n, ht in members:
        b = blank_name(ht)
        lines.append(f"        h = self.{n}")
        lines.append(f"        o.{n} = h if h is {b} else h._copy()")
    lines.append("        return o")
    # member by member as header assignment; a blank stays blank where nothing changes
    lines.append("    def _set(self, o):")
    if not members:
        lines.append("        pass")
    for n, _ht in members:
        lines.append(f"        if o.{n}._valid: self.w_{n}()._set(o.{n})")
        lines.append(f"        elif self.{n}._valid: self.{n}._valid = False")
    lines.append("    def _eq(self, o):")
    lines.append(f"        return {' and '.join(f'self.{n}._eq(o.{n})' for n, _ in members) or 'True'}")
    lines.append("    def _members(self):")
    lines.append(f"        return ({''.join('self.' + n + ', ' for n, _ in members)})")
    lines.append("    def _emit(self, out):")
    if not members:
        lines.append("        pass")
    for n, _ in members:
        lines.append(f"        if self.{n}._valid: self.{n}._emit(out)")
    # BMv2: a member made valid (setValid, extract, assignment) invalidates the others
    lines.append("    def _valid_only(self, keep):")
    if not members:
        lines.append("        pass")
    for n, _ in members:
        lines.append(f"        if self.{n}._valid and self.{n} is not keep: self.{n}._valid = False")
    lines.append("    def _isvalid(self):")
    lines.append(f"        return {' or '.join('self.' + n + '._valid' for n, _ in members) or 'False'}")
    return "\n".join(lines) + "\n"


def is_typed_newtype(t: Type) -> bool:
    return isinstance(t, NewT)
