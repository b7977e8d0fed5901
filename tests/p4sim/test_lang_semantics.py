"""p4sim against the expected frames of tests/p4sim/lang_cases.py (evaluation order, header
validity, header stacks, equality, copy-in/copy-out, entry priorities), and the constructs p4sim
refuses because it cannot run them as BMv2 does."""

from __future__ import annotations

import pytest

from p4sim.compiler.driver import compile_file
from tests.p4sim.harness import Sim
from tests.p4sim.lang_cases import CASES, Case


@pytest.fixture(scope="module", params=CASES, ids=lambda c: c.name)
def case_sim(request) -> tuple[Case, Sim]:
    case: Case = request.param
    return case, Sim(compile_file(case.path))


def test_expected_frames(case_sim):
    case, sim = case_sim
    wrong = []
    for f in case.frames:
        got = sim.send(0, f.data)
        if got != list(f.out):
            wrong.append(f"{f.what}:\n  expected {[(p, d.hex()) for p, d in f.out]}\n  got      {[(p, d.hex()) for p, d in got]}")
    assert not wrong, f"{case.program}:\n" + "\n".join(wrong)
