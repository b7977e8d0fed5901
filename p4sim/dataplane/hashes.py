"""The hash algorithms behind v1model's hash(), checksums and action selectors, computed as BMv2 does.

Everything here works on bytes: the interpreter flattens a field list into a buffer with
:func:`pack_fields` and hands it to :func:`compute` (or :func:`hash_v1model` for the full
``hash()`` extern). What each algorithm is, in BMv2's terms (facts from
``src/bm_sim/calculations.cpp`` of p4lang/behavioral-model):

``crc32``
    The standard CRC-32 (poly 0x04C11DB7, init 0xFFFFFFFF, reflected in and out, xorout
    0xFFFFFFFF) -- CRC-32/ISO-HDLC, what zlib computes. Check value 0xCBF43926.
``crc16``
    Poly 0x8005, init 0, reflected in and out, xorout 0: CRC-16/ARC. Check value 0xBB3D.
``crc16_custom`` / ``crc32_custom`` (and ``crc8_custom``, ``crc64_custom``)
    A Rocksoft-model CRC whose parameters the control plane may change (BMv2 only through
    its Thrift CLI; P4Runtime cannot). Defaults: crc16_custom = CRC-16/ARC, crc32_custom =
    CRC-32, crc8_custom = poly 0x07 init 0 unreflected (CRC-8/SMBUS), crc64_custom = poly
    0x1B reflected init 0 (CRC-64/GO-ISO without its init/xorout).
``csum16`` (also ``cksum16``)
    RFC 1071 Internet checksum: ones'-complement sum of big-endian 16-bit words, an odd
    trailing byte padded with a zero byte after it, result complemented.
``xor16`` (also ``xor32``)
    XOR of big-endian 16-bit words; a short final word is padded with zero bytes after it.
``identity``
    The first min(8, len) bytes of the buffer read as a big-endian integer (no padding when
    shorter); the caller truncates to the destination width.
``crcCCITT``
    Poly 0x1021, init 0xFFFF, unreflected, xorout 0 (CRC-16/CCITT-FALSE). Not in v1model's
    enum but present in BMv2; kept because it costs nothing.
``random``
    BMv2 registers no hash called "random" (p4c emits the name, simple_switch has no
    implementation of it); we return 64 uniformly random bits, which is what a program
    asking for it expects.

The buffer (BMv2's ``BufBuilder``): field values are concatenated bit-wise, most significant
bit first, starting at bit 0 of byte 0; the buffer is ``ceil(total_bits / 8)`` bytes and the
unused low-order bits of the last byte are zero, i.e. padding goes at the *end*.
"""

from __future__ import annotations

import logging
import random as _random
import sys
import zlib
from array import array
from binascii import crc_hqx
from collections.abc import Callable, Iterable
from dataclasses import dataclass

log = logging.getLogger(__name__)

__all__ = [
    "ALGORITHMS",
    "CrcParams",
    "CustomCrc",
    "compute",
    "csum16",
    "hash_v1model",
    "identity",
    "output_width",
    "pack_fields",
    "xor16",
    "xor32",
]


# --- buffer building ----------------------------------------------------------------------------

def pack_fields(values_and_widths: Iterable[tuple[int, int]]) -> bytes:
    """Concatenate ``(value, width_in_bits)`` pairs MSB-first into bytes, BMv2 style.

    Each value is reduced modulo 2**width (a field never holds more bits than its width).
    When the total is not a multiple of 8 the buffer is zero-padded at the end (the low-order
    bits of the last byte), as BMv2's BufBuilder does. Zero-width entries contribute nothing.
    """
    acc = 0
    nbits = 0
    for value, width in values_and_widths:
        if width < 0:
            raise ValueError(f"negative field width {width}")
        if width == 0:
            continue
        acc = (acc << width) | (value & ((1 << width) - 1))
        nbits += width
    pad = (-nbits) % 8
    return (acc << pad).to_bytes((nbits + pad) // 8, "big")


# --- CRCs -----------------------------------------------------------------------------------------

_REFLECT8 = bytes(int(f"{i:08b}"[::-1], 2) for i in range(256))


def _reflect(value: int, width: int) -> int:
    return int(f"{value:0{width}b}"[::-1], 2)


@dataclass(frozen=True)
class CrcParams:
    """Rocksoft-model CRC parameters, the same five BMv2's crc_config_t carries."""

    polynomial: int
    initial_remainder: int
    final_xor_value: int
    data_reflected: bool
    remainder_reflected: bool


class CustomCrc:
    """A table-driven CRC of width 8, 16, 32 or 64 with BMv2's configurable parameters.

    ``configure()`` swaps parameters atomically (a new immutable table is built first and
    the pair replaced in one assignment), so concurrent ``compute()`` calls see either the
    old or the new configuration, never a mix.
    """

    def __init__(self, width: int, params: CrcParams) -> None:
        if width not in (8, 16, 32, 64):
            raise ValueError(f"unsupported CRC width {width}")
        self.width = width
        self._mask = (1 << width) - 1
        self._state = self._build(params)

    @property
    def params(self) -> CrcParams:
        return self._state[0]

    def configure(self, params: CrcParams) -> None:
        self._state = self._build(params)

    def _build(self, p: CrcParams) -> tuple[CrcParams, tuple[int, ...], bool]:
        w, mask = self.width, self._mask
        for name in ("polynomial", "initial_remainder", "final_xor_value"):
            v = getattr(p, name)
            if not 0 <= v <= mask:
                raise ValueError(f"{name}={v:#x} does not fit a {w}-bit CRC")
        # Fully reflected CRCs (the common case) run the bit-reversed table algorithm,
        # which needs no per-byte reflection; the others run the MSB-first algorithm.
        fast_reflected = p.data_reflected and p.remainder_reflected
        table = []
        if fast_reflected:
            rpoly = _reflect(p.polynomial, w)
            for i in range(256):
                r = i
                for _ in range(8):
                    r = (r >> 1) ^ rpoly if r & 1 else r >> 1
                table.append(r)
        else:
            top = 1 << (w - 1)
            for i in range(256):
                r = i << (w - 8)
                for _ in range(8):
                    r = ((r << 1) ^ p.polynomial) if r & top else (r << 1)
                table.append(r & mask)
        return p, tuple(table), fast_reflected

    def compute(self, data: bytes) -> int:
        p, table, fast_reflected = self._state
        if fast_reflected:
            reg = _reflect(p.initial_remainder, self.width)
            for b in data:
                reg = table[(reg ^ b) & 0xFF] ^ (reg >> 8)
            return reg ^ p.final_xor_value
        shift = self.width - 8
        mask = self._mask
        reg = p.initial_remainder
        if p.data_reflected:
            data = bytes(data).translate(_REFLECT8)
        for b in data:
            reg = table[((reg >> shift) ^ b) & 0xFF] ^ ((reg << 8) & mask)
        if p.remainder_reflected:
            reg = _reflect(reg, self.width)
        return reg ^ p.final_xor_value

    __call__ = compute


#: BMv2's default parameters of its custom CRCs, by width.
DEFAULT_CUSTOM_PARAMS: dict[int, CrcParams] = {
    8: CrcParams(0x07, 0x00, 0x00, False, False),
    16: CrcParams(0x8005, 0x0000, 0x0000, True, True),
    32: CrcParams(0x04C11DB7, 0xFFFFFFFF, 0xFFFFFFFF, True, True),
    64: CrcParams(0x1B, 0, 0, True, True),
}

_CRC16_ARC = CustomCrc(16, DEFAULT_CUSTOM_PARAMS[16])


def crc32(data: bytes) -> int:
    return zlib.crc32(data)


def crc16(data: bytes) -> int:
    return _CRC16_ARC.compute(data)


def crc_ccitt(data: bytes) -> int:
    # binascii's CRC-CCITT is exactly BMv2's crcCCITT once seeded with 0xFFFF.
    return crc_hqx(data, 0xFFFF)


# --- checksums and folds ------------------------------------------------------------------------

def csum16(data: bytes) -> int:
    """RFC 1071 ones'-complement checksum (what verify/update_checksum with csum16 use)."""
    if len(data) & 1:
        data = bytes(data) + b"\x00"
    words = array("H", data)
    if sys.byteorder == "little":
        words.byteswap()
    s = sum(words)
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def _xor_words(data: bytes, nbytes: int) -> int:
    pad = (-len(data)) % nbytes
    if pad:
        data = bytes(data) + b"\x00" * pad
    result = 0
    for i in range(0, len(data), nbytes):
        result ^= int.from_bytes(data[i:i + nbytes], "big")
    return result


def xor16(data: bytes) -> int:
    return _xor_words(data, 2)


def xor32(data: bytes) -> int:
    return _xor_words(data, 4)


def identity(data: bytes) -> int:
    return int.from_bytes(data[:8], "big")


_rng = _random.SystemRandom()


def _random_hash(data: bytes) -> int:
    return _rng.getrandbits(64)


# --- registry -----------------------------------------------------------------------------------

#: Custom CRC instances, one per algorithm name (a program's per-calculation instances are
#: the interpreter's business; these defaults serve compute()).
CUSTOM_CRCS: dict[str, CustomCrc] = {
    "crc8_custom": CustomCrc(8, DEFAULT_CUSTOM_PARAMS[8]),
    "crc16_custom": CustomCrc(16, DEFAULT_CUSTOM_PARAMS[16]),
    "crc32_custom": CustomCrc(32, DEFAULT_CUSTOM_PARAMS[32]),
    "crc64_custom": CustomCrc(64, DEFAULT_CUSTOM_PARAMS[64]),
}

ALGORITHMS: dict[str, Callable[[bytes], int]] = {
    "crc32": crc32,
    "crc16": crc16,
    "crcCCITT": crc_ccitt,
    "csum16": csum16,
    "cksum16": csum16,
    "xor16": xor16,
    "xor32": xor32,
    "identity": identity,
    "random": _random_hash,
    **{name: crc.compute for name, crc in CUSTOM_CRCS.items()},
}

_WIDTHS = {
    "crc32": 32, "crc16": 16, "crcCCITT": 16, "csum16": 16, "cksum16": 16, "xor16": 16,
    "xor32": 32, "identity": 64, "random": 64, "crc8_custom": 8, "crc16_custom": 16,
    "crc32_custom": 32, "crc64_custom": 64,
}


def output_width(algorithm: str) -> int:
    """Natural width in bits of an algorithm's raw output."""
    try:
        return _WIDTHS[algorithm]
    except KeyError:
        raise ValueError(f"unknown hash algorithm {algorithm!r}") from None


def compute(algorithm: str, data: bytes) -> int:
    """Raw output of ``algorithm`` (a BMv2 calculation name, e.g. "crc16") over ``data``."""
    try:
        fn = ALGORITHMS[algorithm]
    except KeyError:
        raise ValueError(f"unknown hash algorithm {algorithm!r}; known: {sorted(ALGORITHMS)}") from None
    return fn(data)


def hash_v1model(algo: str, base: int, data_fields: Iterable[tuple[int, int]], max: int) -> int:  # noqa: A002
    """v1model ``hash(out result, algo, base, data, max)`` as simple_switch computes it.

    ``data_fields`` are ``(value, width)`` pairs in field-list order. The result is
    ``base + (h % max)``; BMv2 treats ``max == 0`` as 1 (logging a warning), so the result
    is then just ``base``. The caller truncates the result to the width of ``result``.
    """
    h = compute(algo, pack_fields(data_fields))
    if max == 0:
        log.warning("hash max given as 0, treating it as 1 (as BMv2 does)")
        max = 1  # noqa: A001
    return base + (h % max)
