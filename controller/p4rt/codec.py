"""P4Runtime canonical bytestrings: ints of a bit width to bytes and back, MAC/IPv4 helpers.

The P4Runtime spec ("Bytestrings") makes the canonical form of a ``bit<W>`` value the shortest
big-endian string that holds it, with zero as a single ``b"\\x00"``. Servers must accept padded
strings too and may answer in either form, so :func:`decode` takes both. Every encode checks the
value against its width: a value that does not fit is the caller's bug, and a server would only
reject it later with a less helpful message.
"""

from __future__ import annotations

import functools
import ipaddress

__all__ = [
    "decode",
    "encode",
    "format_ipv4",
    "format_ipv6",
    "format_mac",
    "ipv4",
    "ipv6",
    "mac",
]


def _check(value: int, bitwidth: int, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what}: expected an int, got {type(value).__name__} {value!r}")
    if value < 0:
        raise ValueError(f"{what}: {value} is negative")
    # A width of 0 is P4Info's "unknown" (translated or string types): no upper bound to check.
    if bitwidth > 0 and value >> bitwidth:
        raise ValueError(f"{what}: {value} does not fit in {bitwidth} bits")


def encode(value: int, bitwidth: int, what: str = "value") -> bytes:
    """Canonical bytestring of an unsigned ``value`` of ``bitwidth`` bits (b"\\x00" for zero)."""
    # The plain-int case first, checked inline: the controller encodes a dozen values per entry.
    if type(value) is not int or value < 0 or (bitwidth > 0 and value >> bitwidth):
        _check(value, bitwidth, what)  # raises, but lets an int subclass (an IntEnum) through
    return value.to_bytes((value.bit_length() + 7) // 8 or 1, "big")


def decode(data: bytes, bitwidth: int, what: str = "value") -> int:
    """Int of a bytestring, canonical or zero-padded; raises if it has bits beyond ``bitwidth``."""
    if not data:
        raise ValueError(f"{what}: empty bytestring")
    value = int.from_bytes(data, "big")
    if bitwidth > 0 and value >> bitwidth:
        raise ValueError(f"{what}: {data.hex()} does not fit in {bitwidth} bits")
    return value


def mac(text: str) -> int:
    """``"02:00:00:00:00:01"`` (``:`` or ``-`` separated, or 12 hex digits) as a 48-bit int."""
    digits = text.replace(":", "").replace("-", "")
    parts = text.replace("-", ":").split(":")
    if len(digits) != 12 or (len(parts) != 1 and (len(parts) != 6 or any(len(p) != 2 for p in parts))):
        raise ValueError(f"not a MAC address: {text!r}")
    try:
        return int(digits, 16)
    except ValueError:
        raise ValueError(f"not a MAC address: {text!r}") from None


def format_mac(value: int) -> str:
    _check(value, 48, "MAC address")
    return ":".join(f"{b:02x}" for b in value.to_bytes(6, "big"))


@functools.lru_cache(maxsize=4096)
def ipv4(text: str) -> int:
    """Dotted-quad IPv4 address as a 32-bit int (cached: the controller converts the same few
    addresses for every entry it writes)."""
    try:
        return int(ipaddress.IPv4Address(text))
    except ValueError:
        raise ValueError(f"not an IPv4 address: {text!r}") from None


def format_ipv4(value: int) -> str:
    _check(value, 32, "IPv4 address")
    return str(ipaddress.IPv4Address(value))


def ipv6(text: str) -> int:
    try:
        return int(ipaddress.IPv6Address(text))
    except ValueError:
        raise ValueError(f"not an IPv6 address: {text!r}") from None


def format_ipv6(value: int) -> str:
    _check(value, 128, "IPv6 address")
    return str(ipaddress.IPv6Address(value))
