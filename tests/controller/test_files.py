"""read_bounded: what the controller's tools read from their users' files stops at a bound."""

from __future__ import annotations

from pathlib import Path

import pytest
from p4splice.controller.files import TooLarge, read_bounded
from p4splice.controller.p4rt.p4info import load_p4info


def test_a_file_within_the_bound_is_read_whole(tmp_path: Path) -> None:
    f = tmp_path / "x"
    f.write_bytes(b"a" * 1000)
    assert read_bounded(f, 1000) == b"a" * 1000


def test_past_the_bound_it_stops(tmp_path: Path) -> None:
    f = tmp_path / "x"
    f.write_bytes(b"a" * 1001)
    with pytest.raises(TooLarge, match="larger than"):
        read_bounded(f, 1000)
    with pytest.raises(OSError, match="larger than 64 MiB"):
        load_p4info("/dev/zero")  # endless: refused after 64 MiB, not read until memory runs out
    with pytest.raises(FileNotFoundError):
        read_bounded(tmp_path / "missing", 10)
