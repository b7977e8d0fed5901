"""argparse value types shared by the controller's command lines (splicectl) and the benchmarks' (bench/):
each turns a bad value into argparse's one-line error, never a traceback."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

__all__ = ["flow_text", "int_at_least", "positive_float"]


def positive_float(text: str) -> float:
    """A number greater than zero (seconds, sizes)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < value < math.inf:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be positive and finite: {text!r}")
    return value


def int_at_least(low: int) -> Callable[[str], int]:
    """A decimal integer no smaller than ``low``."""
    def convert(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}: {text!r}")
        return value
    return convert


def flow_text(text: str) -> str:
    """A connection as "CLIENT:PORT-SERVER:PORT" (checked here, before anything is asked of the
    controller)."""
    from .proxyapi.protocol import Flow

    try:
        Flow.from_text(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text
