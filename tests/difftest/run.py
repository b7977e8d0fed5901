"""The differential run: p4sim against BMv2 on generated cases, every difference reported.

``python -m tests.difftest.run --seed 7 --cases 200`` (``make difftest``) compiles every P4
program under tests/p4sim with both compilers (same P4Info, or both refuse it), then runs seeded
cases of p4src/splice.p4 (tests/difftest/splice_cases.py) and of the programs in tests/p4sim/programs
(tests/difftest/program_cases.py) on both switches and prints each difference with the frame,
the table state and both outcomes; exit status 1 when there is any. The short run of
``make test`` is tests/difftest/test_difftest.py.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from tests.difftest import program_cases, splice_cases
from tests.difftest.pair import Difference, MarkerPlan, SwitchPair, unavailable
from tests.difftest.splice_cases import Frame

ROOT = Path(__file__).resolve().parents[2]
SPLICE = ROOT / "p4src" / "splice.p4"

log = logging.getLogger("p4splice.difftest")


@dataclass
class Report:
    """What a run compared and where the switches disagreed."""

    frames: int = 0
    compiled: int = 0  # programs through both compilers
    entries: int = 0
    counters: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)  # what the frames became, by kind
    differences: list[Difference] = field(default_factory=list)

    def run_frames(self, pair: SwitchPair, frames: Iterable[Frame], markers: MarkerPlan, label: str) -> None:
        """``frames`` through both switches (a packet-out from the controller where it is one)."""
        for fr in frames:
            out, diff = pair.run(fr.in_port, fr.data, markers, f"{label}{fr.what}", packet_out=fr.packet_out)
            self.frames += 1
            self.outcomes[_kind(out["p4sim"])] += 1
            if diff is not None:
                self.differences.append(diff)

    def read_counters(self, pair: SwitchPair, cells: Iterable[tuple[str, int]]) -> None:
        """Indexed counter cells, both switches."""
        for name, index in cells:
            self.counters += 1
            diff = pair.counter(name, index)
            if diff is not None:
                self.differences.append(diff)

    def merge(self, other: Report) -> None:
        self.frames += other.frames
        self.compiled += other.compiled
        self.entries += other.entries
        self.counters += other.counters
        self.outcomes.update(other.outcomes)
        self.differences += other.differences

    def summary(self) -> str:
        kinds = ", ".join(f"{n} {k}" for k, n in self.outcomes.most_common())
        return (f"{self.compiled} programs compiled by both, {self.frames} frames ({kinds}), {self.entries} entries, "
                f"{self.counters} counter reads: "
                f"{len(self.differences)} difference(s)")


def _kind(outcome: object) -> str:
    ports = getattr(outcome, "ports", {})
    ins = getattr(outcome, "packet_ins", ())
    if not ports and not ins:
        return "dropped"
    if ports and ins:
        return "forwarded+copied"
    return "forwarded" if ports else "to the controller"


def run_splice(seed: int, count: int, frames: int, build_dir: Path, log_dir: Path) -> Report:
    """``count`` seeded cases of splice.p4 on one switch pair."""
    report = Report()
    markers = splice_cases.marker_plan()
    with SwitchPair(SPLICE, splice_cases.PORTS, build_dir / "splice", log_dir) as pair:
        pair.clone_session(splice_cases.CLONE_SESSION, [splice_cases.CPU_PORT])
        fixed = [*splice_cases.base_entries(), *markers.entries]
        report.differences += pair.insert(fixed)
        report.entries += len(fixed)
        for case in splice_cases.cases(seed, count, frames):
            report.differences += pair.insert(case.entries)
            report.entries += len(case.entries)
            state = "; ".join(e.describe() for e in case.entries) or "no flows entries"
            report.run_frames(pair, case.frames, markers, f"case {case.seed} [{state}]: ")
            report.differences += pair.direct_counters(case.entries)
            report.counters += len(case.entries)
            report.read_counters(pair, ((splice_cases.MALFORMED, r) for r in range(splice_cases.MAL_REASONS)))
            pair.delete(case.entries)
    return report


P4SIM_TESTS = ROOT / "tests" / "p4sim"


def _p4info_text(path: Path) -> str:
    """The P4Info text without comment lines (p4c heads its file with two)."""
    return "\n".join(ln for ln in path.read_text().splitlines() if not ln.startswith("#")).strip()


def run_compiles(build_dir: Path) -> Report:
    """Every P4 program under tests/p4sim through both compilers: both take it (or both refuse
    it), and the P4Info they write is the same."""
    from tests.difftest.pair import KINDS, compile_for

    report = Report()
    for source in sorted(P4SIM_TESTS.rglob("*.p4")):
        outcome: dict[str, Path | str] = {}
        for kind in KINDS:
            try:
                outcome[kind] = compile_for(kind, source, build_dir / "compile" / source.stem / kind)[1][0]
            except RuntimeError as exc:
                outcome[kind] = f"refused: {str(exc).splitlines()[-1]}"
        report.compiled += 1
        what = f"compile {source.relative_to(ROOT)}"
        p4sim, bmv2 = outcome["p4sim"], outcome["bmv2"]
        if isinstance(p4sim, str) or isinstance(bmv2, str):
            if isinstance(p4sim, str) != isinstance(bmv2, str):
                report.differences.append(Difference(what, str(p4sim) if isinstance(p4sim, str) else "compiled",
                                                     str(bmv2) if isinstance(bmv2, str) else "compiled"))
            continue
        if _p4info_text(p4sim) != _p4info_text(bmv2):
            report.differences.append(Difference(f"{what}: P4Info", str(p4sim), str(bmv2)))
    return report


def run_programs(seed: int, count: int, build_dir: Path, log_dir: Path) -> Report:
    """Seeded frames through each program of tests/p4sim/programs."""
    report = Report()
    for prog in program_cases.PROGRAMS:
        with SwitchPair(prog.source, prog.ports, build_dir / prog.source.stem, log_dir) as pair:
            prog.setup(pair)
            report.entries += len(prog.entries) + len(prog.markers.entries)
            report.differences += pair.insert([*prog.entries, *prog.markers.entries])
            report.run_frames(pair, prog.frames(seed, count), prog.markers, f"{prog.source.name}: ")
            report.read_counters(pair, prog.counters)
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.difftest.run", description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=1, help="the run's seed (default 1)")
    ap.add_argument("--cases", type=int, default=100, help="splice.p4 cases (default 100)")
    ap.add_argument("--frames", type=int, default=40, help="frames per splice.p4 case (default 40)")
    ap.add_argument("--program-frames", type=int, default=300,
                    help="frames through each program of tests/p4sim/programs (default 300)")
    ap.add_argument("--build-dir", type=Path, default=ROOT / "build" / "difftest")
    ap.add_argument("--log-dir", type=Path, default=ROOT / "logs" / "difftest")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    why = unavailable()
    if why is not None:
        print(f"difftest: {why}", file=sys.stderr)
        return 2
    start = time.monotonic()
    report = run_compiles(args.build_dir)
    report.merge(run_splice(args.seed, args.cases, args.frames, args.build_dir, args.log_dir))
    report.merge(run_programs(args.seed, args.program_frames, args.build_dir, args.log_dir))
    for d in report.differences:
        print(d, end="\n\n")
    print(f"difftest seed {args.seed}: {report.summary()} in {time.monotonic() - start:.0f} s")
    return 1 if report.differences else 0


if __name__ == "__main__":
    sys.exit(main())
