"""Files the controller's tools read from their users, read with a bound: a P4Info, a device
config or a config file named by mistake (``--p4info /dev/zero``, a disk image) is refused at the
bound instead of being read until memory runs out."""

from __future__ import annotations

import errno
from pathlib import Path

__all__ = ["MAX_CONFIG", "MAX_DEVICE_CONFIG", "MAX_P4INFO", "TooLarge", "read_bounded"]

MAX_P4INFO = 64 << 20  # bytes; a P4Info of thousands of tables is a few MiB
MAX_DEVICE_CONFIG = 256 << 20  # a BMv2 JSON of a large program is tens of MiB
MAX_CONFIG = 16 << 20  # a TOML or JSON config file


class TooLarge(OSError):
    """The file holds more than its kind can (an OSError: callers report it as they report an
    unreadable file)."""


def read_bounded(path: str | Path, limit: int) -> bytes:
    """The bytes of ``path``, at most ``limit`` of them; TooLarge past that, OSError as open()."""
    with open(path, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise TooLarge(errno.EFBIG, f"larger than {limit >> 20} MiB, not what it should be", str(path))
    return data
