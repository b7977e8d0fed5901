"""How each target builds p4src/ and starts its switch: the knowledge the PTF runner, the
controller's integration tests (tests/controller/switches.py) and docs/bmv2.md share.

* p4sim: ``p4sim-compile`` and ``p4sim`` from this venv.
* bmv2: ``p4c-bm2-ss`` and ``simple_switch_grpc`` from PATH. p4c picks the P4Info format from the
  file suffix and, in every release that has ``--p4runtime-files``, knows ``.txt`` (text) but not
  always ``.txtpb`` (added late), so p4c writes ``<name>.txt`` and :func:`finish_build` moves it to
  the ``.txtpb`` path the rest of the project reads (the same text format). ``--thrift-port`` exists
  only in a simple_switch_grpc built with Thrift (an unknown option makes it exit at once), so it is
  passed only when ``--help`` lists it: two BMv2s with Thrift would otherwise both take 9090
  (``p4sim.launch.thrift_args``, which the controller's lab uses too).

Compile-time constants (``FLOWS_SIZE=65536``, see p4src/include/headers.p4) are ``-DNAME=VALUE``
for both compilers.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from p4sim.launch import bmv2_has_thrift, thrift_args

__all__ = ["COMPILER", "CONFIG_NAME", "P4INFO_NAME", "SWITCH", "TARGETS", "Build", "bmv2_has_thrift",
           "build_command", "finish_build", "thrift_args"]

TARGETS = ("p4sim", "bmv2")
COMPILER = {"p4sim": "p4sim-compile", "bmv2": "p4c-bm2-ss"}
SWITCH = {"p4sim": "p4sim", "bmv2": "simple_switch_grpc"}
CONFIG_NAME = {"p4sim": "splice.p4sim.json", "bmv2": "splice.json"}
P4INFO_NAME = "splice.p4info.txtpb"


@dataclass(frozen=True)
class Build:
    """One compile: the command, what the compiler writes, and where the outputs end up."""

    argv: list[str]
    p4info: Path  # where the rest of the project reads the P4Info (text format)
    config: Path  # the device config (p4sim JSON or BMv2 JSON)
    p4info_written: Path  # what the compiler writes (p4c: .txt; moved to p4info by finish_build)


def build_command(target: str, compiler: str, source: Path, build_dir: Path,
                  defines: Sequence[str] = ()) -> Build:
    """The compile of ``source`` for ``target`` into ``build_dir``; ``defines`` are NAME[=VALUE]."""
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}: choose one of {', '.join(TARGETS)}")
    p4info = build_dir / P4INFO_NAME
    config = build_dir / CONFIG_NAME[target]
    dflags = [f"-D{d}" for d in defines]
    if target == "p4sim":
        argv = [compiler, *dflags, str(source), "-o", str(config), "--p4runtime-files", str(p4info)]
        return Build(argv, p4info, config, p4info)
    written = p4info.with_suffix(".txt")  # splice.p4info.txt: p4c's text suffix in every release
    argv = [compiler, "--arch", "v1model", *dflags, "--p4runtime-files", str(written), "-o", str(config),
            str(source)]
    return Build(argv, p4info, config, written)


def finish_build(build: Build) -> None:
    """Move the P4Info the compiler wrote to the path the project reads (no-op for p4sim)."""
    if build.p4info_written != build.p4info:
        os.replace(build.p4info_written, build.p4info)
