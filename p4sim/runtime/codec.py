"""P4Runtime bytestring codec: canonical encoding and range-checked decoding of bit<W> values.

Spec section "Bytestrings": a receiver accepts any length as long as the value fits the P4Info
bitwidth (leading zero bytes are allowed, so a client built for bit<8> can talk to a bit<9>
server); an empty string, or a value wider than W bits, is rejected with OUT_OF_RANGE. Senders
(our reads and stream messages) use the canonical form: the shortest string, zero being b"\\x00".
"""

from __future__ import annotations

from p4sim.runtime.errors import out_of_range


def decode(value: bytes, bitwidth: int, what: str = "value") -> int:
    """Bytestring -> int, rejecting empty strings and values that do not fit in `bitwidth` bits."""
    if not value:
        raise out_of_range(f"{what}: empty bytestring")
    n = int.from_bytes(value, "big")
    if bitwidth > 0 and n >> bitwidth:
        raise out_of_range(f"{what}: value {value.hex()} does not fit in {bitwidth} bits")
    return n


def encode(n: int) -> bytes:
    """int -> canonical bytestring (shortest big-endian form; 0 is one zero byte)."""
    return n.to_bytes(max(1, (n.bit_length() + 7) // 8), "big")


def is_canonical(value: bytes) -> bool:
    return len(value) == 1 or (len(value) > 1 and value[0] != 0)


def mask(bitwidth: int) -> int:
    return (1 << bitwidth) - 1
