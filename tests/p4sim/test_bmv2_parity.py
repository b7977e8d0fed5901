"""The programs of tests/p4sim/lang_cases.py on real BMv2 (p4c-bm2-ss and simple_switch_grpc from
PATH, see docs/bmv2.md) and on p4sim: the same frames in, the same bytes out. Skips, saying why,
where BMv2 is not installed or veths cannot be made."""

from __future__ import annotations

import subprocess

import pytest

from p4sim.compiler.driver import compile_file
from tests.p4sim import bmv2run
from tests.p4sim.harness import Sim
from tests.p4sim.lang_cases import CASES, REFUSALS, Case, Refusal

_WHY_NOT = bmv2run.unavailable()
pytestmark = pytest.mark.skipif(_WHY_NOT is not None, reason=str(_WHY_NOT))


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_same_bytes_as_bmv2(case: Case, tmp_path):
    sim = Sim(compile_file(case.path))
    ours = [[(p, bmv2run.pad(d)) for p, d in sim.send(0, f.data)] for f in case.frames]
    with bmv2run.Bmv2Program(case.path, tmp_path) as bmv2:
        theirs = bmv2.run([(0, f.data) for f in case.frames], [len(o) for o in ours])
    wrong = [f"{f.what} ({f.data[:16].hex()}...):\n  p4sim {[(p, d.hex()) for p, d in o]}\n  bmv2  {[(p, d.hex()) for p, d in t]}"
             for f, o, t in zip(case.frames, ours, theirs, strict=True) if o != t]
    assert not wrong, f"{case.program}: p4sim and BMv2 differ\n" + "\n".join(wrong)


@pytest.mark.parametrize("refusal", [r for r in REFUSALS if r.p4c_refuses], ids=lambda r: r.what)
def test_p4c_refuses_it_too(refusal: Refusal, tmp_path):
    src = tmp_path / "prog.p4"
    src.write_text(refusal.source)
    proc = subprocess.run(["p4c-bm2-ss", "--arch", "v1model", "-o", str(tmp_path / "prog.json"), str(src)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode != 0, f"p4c-bm2-ss compiled what p4sim refuses ({refusal.what})"
