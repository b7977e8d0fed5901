"""p4sim against BMv2, frame for frame (tests/difftest/run.py): a short seeded run of splice.p4's
generated cases and of the programs in tests/p4sim/programs. ``make difftest`` runs a longer one.
Skips, saying why, where BMv2 or veths are missing."""

from __future__ import annotations

from pathlib import Path

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from tests.difftest import splice_cases
from tests.difftest.pair import Entry, SwitchPair, unavailable
from tests.difftest.run import ROOT, SPLICE, run_compiles, run_programs, run_splice

WHY = unavailable()
pytestmark = pytest.mark.skipif(WHY is not None, reason=f"p4sim against BMv2: {WHY}")

SEED = 20261207
LOGS = ROOT / "logs" / "difftest"


def _report(differences: list) -> str:
    return "\n\n".join(str(d) for d in differences[:10])


def test_splice_p4_agrees_on_generated_cases(tmp_path: Path) -> None:
    report = run_splice(SEED, 6, 40, tmp_path, LOGS)
    assert report.frames == 6 * 40
    assert not report.differences, _report(report.differences)
    # the cases reached every kind of outcome, not only drops
    assert {"dropped", "forwarded", "to the controller", "forwarded+copied"} <= set(report.outcomes)


def test_the_test_programs_agree(tmp_path: Path) -> None:
    report = run_programs(SEED, 150, tmp_path, LOGS)
    assert report.frames == 2 * 150
    assert not report.differences, _report(report.differences)
    assert {"dropped", "forwarded", "to the controller"} <= set(report.outcomes)


def test_a_difference_is_seen(tmp_path: Path) -> None:
    """The harness itself: a route only BMv2 has sends a frame out there and nowhere on p4sim."""
    markers = splice_cases.marker_plan()
    with SwitchPair(SPLICE, splice_cases.PORTS, tmp_path, LOGS) as pair:
        assert pair.insert([*splice_cases.base_entries(), *markers.entries]) == []
        extra = Entry(splice_cases.ROUTES, {"ipv4_dst": ("10.7.0.0", 16)}, "route",
                      {"port": 2, "smac": "02:00:00:00:00:02", "dmac": "02:00:00:00:02:02"})
        bmv2 = pair.sides["bmv2"].p4rt
        bmv2.insert(extra.build(bmv2))
        frame = Ether(dst="02:00:00:00:00:01") / IP(dst="10.7.1.1") / UDP()
        out, diff = pair.run(1, bytes(frame), markers, "to 10.7.1.1")
        assert diff is not None
        assert not out["p4sim"].ports and len(out["bmv2"].ports[2]) == 1
        # and the same frame to a route both have agrees
        same = Ether(dst="02:00:00:00:00:01") / IP(dst="10.0.2.9") / UDP()
        assert pair.run(1, bytes(same), markers, "to 10.0.2.9")[1] is None


def test_every_program_under_tests_p4sim_compiles_alike(tmp_path: Path) -> None:
    """p4sim-compile and p4c-bm2-ss take the same programs and write the same P4Info."""
    report = run_compiles(tmp_path)
    assert report.compiled >= 5
    assert not report.differences, _report(report.differences)
