"""Entry keys p4c-bm2-ss does compile, next to the ones it refuses (lang_cases.REFUSALS): '_' on a
key of any match kind but exact, an error key included, and default on an optional key. p4sim
compiles them and matches anything with them; the parity test has p4c-bm2-ss compile them too
(skipped, saying why, without it)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.p4sim.harness import sim_from_source
from tests.p4sim.lang_cases import _table

ACCEPTED = {
    "'_' on a ternary error key": _table("const entries = { _ : set(7); }", field="sm.parser_error"),
    "'_' on an optional error key": _table("const entries = { _ : set(7); }", key="optional",
                                           field="sm.parser_error"),
    "'_' on an lpm key": _table("const entries = { _ : set(7); }", key="lpm"),
    "'_' on a range key": _table("const entries = { _ : set(7); }", key="range"),
    "default on an optional key": _table("const entries = { default : set(7); }", key="optional"),
}


@pytest.mark.parametrize("source", ACCEPTED.values(), ids=ACCEPTED.keys())
def test_compiled_and_matching_anything(tmp_path: Path, source: str) -> None:
    sim = sim_from_source(tmp_path, source, prelude=False)
    # sel.i = 0x05, sel.j = 0: the entry sets h (after sel) to x = 7, y = 0
    assert sim.send_one(0, b"\x05\x00") == (1, b"\x05\x00\x07\x00")


_P4C = shutil.which("p4c-bm2-ss")


@pytest.mark.skipif(_P4C is None, reason="needs p4c-bm2-ss on PATH (see docs/bmv2.md)")
@pytest.mark.parametrize("source", ACCEPTED.values(), ids=ACCEPTED.keys())
def test_p4c_compiles_them_too(tmp_path: Path, source: str) -> None:
    src = tmp_path / "prog.p4"
    src.write_text(source)
    proc = subprocess.run([str(_P4C), "--arch", "v1model", "-o", str(tmp_path / "prog.json"), str(src)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
