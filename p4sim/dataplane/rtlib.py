"""Run-time support for the Python that p4sim-compile generates: value classes, parser
primitives and v1model extern functions. Generated modules do ``from rtlib import *``.
"""

from __future__ import annotations

import logging
import random as _random
from struct import Struct as PyStruct

from . import hashes

log = logging.getLogger("p4sim.program")

# The runtime's own codes for core.p4's errors, in core.p4's order. A program's codes are its
# errors in declaration order (as p4c numbers them for BMv2); core.p4's come first unless the
# program declares errors of its own before including it (ONF's fabric.p4 does): the switch
# turns these into the program's codes (LoadedProgram.core_errors).
CORE_ERRORS = ("NoError", "PacketTooShort", "NoMatch", "StackOutOfBounds", "HeaderTooShort", "ParserTimeout",
               "ParserInvalidArgument")
ERR_NO_ERROR = 0
ERR_PACKET_TOO_SHORT = 1
ERR_NO_MATCH = 2
ERR_STACK_OUT_OF_BOUNDS = 3
ERR_HEADER_TOO_SHORT = 4
ERR_PARSER_TIMEOUT = 5
ERR_PARSER_INVALID_ARGUMENT = 6

DROP_PORT = 511  # v1model: egress_spec value that drops


class ExitSignal(Exception):
    """``exit``: ends the running top-level control."""


class ParserError(Exception):
    """A parser error: the packet goes on to ingress with standard_metadata.parser_error set."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class CoreParserError(ParserError):
    """A parser error the runtime itself raises, coded by its place in CORE_ERRORS."""


class ParserReject(Exception):
    """``transition reject`` with no error of its own."""


class AssertionFailure(Exception):
    """A failed v1model assert()/assume(): BMv2 aborts the switch; p4sim drops the packet."""


class Header:
    __slots__ = ("_valid",)

    def set_valid(self) -> None:
        self._valid = True


class Struct:
    __slots__ = ()


class Union(Struct):
    """A header union: setting a member valid makes the others invalid."""

    __slots__ = ()


_BLANKS: dict = {}
_warned_out_of_range = False


def _out_of_range(i: int, size: int) -> None:
    """A run-time stack index past the end. p4sim does what the P4 spec says (a read sees an
    invalid header with unspecified fields, here zeros; a write has no effect); simple_switch
    aborts the whole switch. Said once per process, in the log."""
    global _warned_out_of_range
    if not _warned_out_of_range:
        _warned_out_of_range = True
        log.warning("header stack index %d out of range (size %d): p4sim reads an invalid header and drops "
                    "writes, as the P4 spec says; BMv2's simple_switch aborts on this", i, size)


def _refuse_write(self, name, value) -> None:
    raise RuntimeError(f"p4sim bug: a write of {name} to the shared blank {type(self).__mro__[1].__name__} "
                       "(generated code must write through el/at/w_)")


_FROZEN: dict = {}


def frozen_blank(cls):
    """A fresh value of ``cls`` that refuses every later write: the blank that stack elements
    and union members never made read as, shared by all of them. A write reaching it is a
    code-generation bug; it raises rather than change every such element at once."""
    obj = cls()
    frozen = _FROZEN.get(cls)
    if frozen is None:
        frozen = _FROZEN[cls] = type(f"Blank{cls.__name__}", (cls,), {"__slots__": (), "__setattr__": _refuse_write})
    obj.__class__ = frozen
    return obj


def _blank_of(factory):
    blank = _BLANKS.get(factory)
    if blank is None:
        blank = _BLANKS[factory] = frozen_blank(factory) if isinstance(factory, type) else factory()
    return blank


class Stack:
    """A header stack: ``elems`` plus the parser's next index.

    Elements are made on first write: until then an element is the shared blank of its type
    (invalid, frozen), so reads need no test, and a program with a 16-slot stack of header
    unions does not build well over a hundred objects per packet that it mostly never touches.
    Generated code writes only through ``el``/``at``.
    """

    __slots__ = ("elems", "nxt", "size", "_factory", "_blank")

    def __init__(self, size: int, factory) -> None:
        self.size = size
        self._factory = factory
        self._blank = blank = _blank_of(factory)
        self.elems: list = [blank] * size
        self.nxt = 0

    def rd(self, i: int):
        """An element to read (the shared blank where none was made)."""
        return self.elems[i]

    def at_rd(self, i: int):
        if 0 <= i < self.size:
            return self.elems[i]
        _out_of_range(i, self.size)
        return self._factory()

    def advance_next(self) -> None:
        self.nxt += 1

    def el(self, i: int):
        e = self.elems[i]
        if e is self._blank:
            e = self.elems[i] = self._factory()
        return e

    def _copy(self) -> Stack:
        o = Stack.__new__(Stack)
        o.size = self.size
        o._factory = self._factory
        o._blank = blank = self._blank
        o.elems = [e if e is blank else e._copy() for e in self.elems]
        o.nxt = self.nxt
        return o

    def _set(self, o: Stack) -> None:
        """Stack assignment, element by element as header assignment (an element never made is
        an invalid one)."""
        self.nxt = o.nxt
        elems, blank = self.elems, self._blank
        for i, src in enumerate(o.elems):
            dst = elems[i]
            if src is o._blank:
                if dst is not blank:
                    dst._set(blank)
            elif dst is blank:
                elems[i] = src._copy()
            else:
                dst._set(src)

    def _eq(self, o: Stack) -> bool:
        return all(a._eq(b) for a, b in zip(self.elems, o.elems, strict=True))

    def _emit(self, out: bytearray) -> None:
        blank = self._blank
        for e in self.elems:
            if e is not blank:
                e._emit(out)

    def next_elem(self):
        if self.nxt >= self.size:
            raise CoreParserError(ERR_STACK_OUT_OF_BOUNDS)
        return self.el(self.nxt)

    def extract_next(self, K) -> None:
        if self.nxt >= self.size:
            raise CoreParserError(ERR_STACK_OUT_OF_BOUNDS)
        self.el(self.nxt)._extract(K)
        self.nxt += 1

    def last_elem(self):
        if self.nxt == 0:
            raise CoreParserError(ERR_STACK_OUT_OF_BOUNDS)
        return self.el(self.nxt - 1)

    def at(self, i: int):
        if 0 <= i < self.size:
            return self.el(i)
        # out of range: writes go nowhere (the P4 spec: no effect)
        _out_of_range(i, self.size)
        return self._factory()

    def push_front(self, n: int) -> None:
        if n <= 0:
            return
        keep = self.elems[: max(self.size - n, 0)]
        self.elems = [self._blank] * min(n, self.size) + keep
        self.nxt = min(self.nxt + n, self.size)

    def pop_front(self, n: int) -> None:
        if n <= 0:
            return
        keep = self.elems[n:]
        self.elems = keep + [self._blank] * (self.size - len(keep))
        self.nxt = max(self.nxt - n, 0)


# --- parser primitives ----------------------------------------------------------------------------


peek16 = PyStruct(">H").unpack_from
peek32 = PyStruct(">I").unpack_from


def lookahead_bits(K, nbits: int) -> int:
    nbytes = (nbits + 7) // 8
    end = K.off + nbytes
    if end > K.n:
        raise CoreParserError(ERR_PACKET_TOO_SHORT)
    v = int.from_bytes(K.data[K.off:end], "big")
    return v >> (nbytes * 8 - nbits)


def lookahead_header(K, cls):
    h = cls()
    end = K.off + cls._nbytes
    if end > K.n:
        raise CoreParserError(ERR_PACKET_TOO_SHORT)
    h._unpack(int.from_bytes(K.data[K.off:end], "big"))
    return h


def advance(K, nbits: int) -> None:
    if nbits % 8:
        raise CoreParserError(ERR_PARSER_INVALID_ARGUMENT)
    end = K.off + nbits // 8
    if end > K.n:
        raise CoreParserError(ERR_PACKET_TOO_SHORT)
    K.off = end


def _varbit_of(h) -> tuple[str, int]:
    """The varbit field of header ``h`` (its attribute) and its maximum width."""
    names = h.__slots__
    for path, w in zip(h._leaf_paths, h._leaf_widths, strict=True):
        if len(path) == 1 and "_w_" + path[0] in names:
            return path[0], w
    raise TypeError(f"{type(h).__name__} has no varbit field")


def _owner(h, path: tuple[str, ...]):
    """The object holding the last attribute of ``path`` (a struct inside the header, or itself)."""
    for part in path[:-1]:
        h = getattr(h, part)
    return h


def extract_varbit(K, h, nbits: int) -> None:
    """Two-argument extract: the fixed fields plus ``nbits`` of the (single) varbit field."""
    varbit, varbit_max = _varbit_of(h)
    # BMv2's order of checks (bm_sim/parser.cpp extract_VL): alignment, data left, maximum
    if nbits % 8:
        raise CoreParserError(ERR_PARSER_INVALID_ARGUMENT)
    total = h._fixed_bits + nbits
    nbytes = total // 8
    end = K.off + nbytes
    if end > K.n:
        raise CoreParserError(ERR_PACKET_TOO_SHORT)
    if nbits > varbit_max:
        raise CoreParserError(ERR_HEADER_TOO_SHORT)
    v = int.from_bytes(K.data[K.off:end], "big")
    shift = total
    for path, w in zip(h._leaf_paths, h._leaf_widths, strict=True):
        if path == (varbit,):
            w = nbits
            setattr(h, "_w_" + varbit, nbits)
        shift -= w
        setattr(_owner(h, path), path[-1], (v >> shift) & ((1 << w) - 1))
    h._valid = True
    K.off = end


def emit_varbit_header(h, out: bytearray) -> None:
    varbit, _ = _varbit_of(h)
    v = 0
    total = 0
    for path, w in zip(h._leaf_paths, h._leaf_widths, strict=True):
        if path == (varbit,):
            w = getattr(h, "_w_" + varbit)
        v = (v << w) | (getattr(_owner(h, path), path[-1]) & ((1 << w) - 1))
        total += w
    out += v.to_bytes(total // 8, "big")


def parser_verify(cond: bool, err: int) -> None:
    if not cond:
        raise ParserError(err)


# --- v1model extern functions ---------------------------------------------------------------------


def shl(a: int, n: int, width: int) -> int:
    """``a << n`` for an amount that may be far beyond the width (the result is then 0)."""
    return a << n if n < width else 0


def div(a: int, b: int) -> int:
    """``a / b`` on bit<W> (BMv2 gives 0 for a zero divisor)."""
    return a // b if b else 0


def mod(a: int, b: int) -> int:
    return a % b if b else 0


def mark_to_drop(sm) -> None:
    sm.egress_spec = DROP_PORT
    sm.mcast_grp = 0


def v1_hash(algo: str, base: int, data: tuple, maximum: int) -> int:
    return hashes.hash_v1model(algo, base, data, maximum)


def v1_random(lo: int, hi: int) -> int:
    if hi < lo:
        return lo
    return _random.randint(lo, hi)


def v1_assert(cond: bool, where: str) -> None:
    if not cond:
        raise AssertionFailure(where)


def v1_log_msg(msg: str, data: tuple) -> None:
    if data:
        parts = iter(v for v, _ in data)
        out = []
        i = 0
        while i < len(msg):
            if msg.startswith("{}", i):
                out.append(str(next(parts, "{}")))
                i += 2
            else:
                out.append(msg[i])
                i += 1
        msg = "".join(out)
    log.info("%s", msg)


def _checksum_input(K, data: tuple, with_payload: bool) -> bytes:
    buf = hashes.pack_fields(data)
    if with_payload:
        buf += K.payload()
    return buf


def v1_checksum(K, data: tuple, algo: str, with_payload: bool, width: int) -> int:
    return hashes.compute(algo, _checksum_input(K, data, with_payload)) & ((1 << width) - 1)


def _packed_bytes(value: int, nbits: int) -> bytes:
    pad = -nbits % 8  # BMv2 pads a field list at its end to a whole byte
    return (value << pad).to_bytes((nbits + pad) // 8, "big")


def csum16_packed(value: int, nbits: int) -> int:
    """RFC 1071 checksum of a packed field list, without building bytes (the common case).

    Since 2**16 = 1 (mod 0xFFFF), the end-around-carry sum of the 16-bit words is congruent to
    the whole number mod 0xFFFF; it is 0 only for all-zero words and 0xFFFF for other multiples.
    """
    value <<= -nbits % 16
    s = value % 0xFFFF
    if s == 0 and value:
        s = 0xFFFF
    return ~s & 0xFFFF


def v1_checksum_packed(K, value: int, nbits: int, algo: str, with_payload: bool, width: int) -> int:
    if algo == "csum16" and not with_payload:
        return csum16_packed(value, nbits) & ((1 << width) - 1)
    buf = _packed_bytes(value, nbits)
    if with_payload:
        buf += K.payload()
    return hashes.compute(algo, buf) & ((1 << width) - 1)


def v1_verify_checksum_packed(K, value: int, nbits: int, expected: int, algo: str, with_payload: bool) -> None:
    width = hashes.output_width(algo) or 64
    if v1_checksum_packed(K, value, nbits, algo, with_payload, width) != expected:
        K.sm.checksum_error = 1


def v1_verify_checksum(K, data: tuple, expected: int, algo: str, with_payload: bool) -> None:
    got = hashes.compute(algo, _checksum_input(K, data, with_payload))
    width = hashes.output_width(algo)
    if width:
        got &= (1 << width) - 1
    if got != expected:
        K.sm.checksum_error = 1


__all__ = [
    "PyStruct", "ExitSignal", "ParserError", "CoreParserError", "ParserReject", "AssertionFailure", "Header", "Struct", "Union",
    "Stack", "frozen_blank", "lookahead_bits", "peek16", "peek32", "lookahead_header", "advance", "extract_varbit", "emit_varbit_header",
    "parser_verify", "shl", "div", "mod", "mark_to_drop", "v1_hash", "v1_random", "v1_assert", "v1_log_msg",
    "v1_checksum", "v1_verify_checksum", "v1_checksum_packed", "v1_verify_checksum_packed",
]
