"""The controller benchmark against a switch in a process of its own (``--target p4sim``, the path
``make bench TARGET=bmv2`` takes with simple_switch_grpc): veths to ports 1-3, the driver on their
host ends. A short run, checked for its tables; the figures themselves are `make bench`'s."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
from p4splice.bench.controller import bench_grpc_floor
from p4splice.lab import netdev

ROOT = Path(__file__).resolve().parents[2]


def _bench(*argv: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "p4splice.bench.controller", *argv], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout, check=False)


def _row(out: str, first_cell: str) -> list[str]:
    line = next(ln for ln in out.splitlines() if ln.startswith(f"| {first_cell} |"))
    return [c.strip() for c in line.strip("|").split("|")]


def test_bench_runs_against_a_p4sim_process_on_veths(tmp_path: Path) -> None:
    try:
        netdev.require_netns()
    except netdev.NetdevUnavailable as exc:
        pytest.skip(f"veth pairs refused here: {exc}")
    before = set(netdev.list_links())
    res = _bench("--target", "p4sim", "--handshakes", "40", "--windows", "8", "--skip", "writes", "--skip", "floor",
                 "--splices", "5", "--profile", "0", "--log-dir", str(tmp_path))
    assert res.returncode == 0, res.stderr[-3000:]
    assert "switch: p4sim" in res.stdout
    header = _row(res.stdout, "handshakes by")
    assert "switch CPU per handshake (ms)" in header and "driver CPU per handshake (ms)" in header
    for by in ("controller", "switch"):  # both paths, side by side
        row = dict(zip(header, _row(res.stdout, by), strict=True))
        assert row["handshakes"] == "40"
        assert float(row["handshakes/s"].replace(",", "")) > 0
        assert float(row["switch CPU per handshake (ms)"]) > 0  # read from the switch process's /proc
    assert float(dict(zip(header, _row(res.stdout, "switch"), strict=True))["run by the switch (%)"]) == 100
    assert float(dict(zip(header, _row(res.stdout, "controller"), strict=True))["packet-ins per handshake"]) > 0
    assert _row(res.stdout, "splices")[1] == "5"
    active = _row(res.stdout, "request -> entries active (probe seen at S), p50 (ms)")[1]
    assert float(active.replace(",", "")) > 0
    assert (tmp_path / "bench-p4sim.log").exists()
    # The bench's veths are gone with the run.
    assert set(netdev.list_links()) <= before


def test_bench_for_bmv2_without_its_build_says_what_to_run(tmp_path: Path) -> None:
    res = _bench("--target", "bmv2", "--build-dir", str(tmp_path / "nothing"), timeout=60)
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    (line,) = res.stderr.strip().splitlines()
    assert 'splice.p4info.txtpb is missing: make build TARGET=bmv2 P4DEFINES="FLOWS_SIZE=65536 FLOWS_IDLE_TIMEOUT=0"' in line


def test_grpc_floor_is_measured_against_an_echo_server_in_another_process() -> None:
    out = asyncio.run(bench_grpc_floor(200))
    assert set(out) == {"unary call, round trip p50 (ms)", "unary call, caller's CPU per call (µs)",
                        "unary call, server's CPU per call (µs)",
                        "stream, caller's CPU per message sent and per message received (µs)",
                        "stream, server's CPU per message received and per message sent (µs)"}
    # A round trip to another process cannot take no time, nor can either end's work be free.
    assert all(v > 0 for v in out.values()), out


def _forwarding(*argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "p4splice.bench.forwarding", *argv], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout, check=False)


def test_forwarding_bench_carries_both_kinds_through_a_p4sim_process(tmp_path: Path) -> None:
    """splice.p4's forwarding bench (make bench, both targets): a short run on p4sim forwards
    routed and translated frames, each counted at the receiver and by the kernel alike."""
    try:
        netdev.require_netns()
    except netdev.NetdevUnavailable as exc:
        pytest.skip(f"veth pairs refused here: {exc}")
    if not (ROOT / "build" / "splice.p4sim.json").exists():
        pytest.skip("build/splice.p4sim.json is missing: run 'make build'")
    before = set(netdev.list_links())
    res = _forwarding("--target", "p4sim", "--seconds", "0.5", "--log-dir", str(tmp_path))
    assert res.returncode == 0, res.stderr[-3000:]
    header = _row(res.stdout, "kind")
    for kind in ("routed", "translated"):
        row = dict(zip(header, _row(res.stdout, kind), strict=True))
        forwarded = float(row["forwarded, receiver (frames/s)"].replace(",", ""))
        assert forwarded > 0
        assert float(row["forwarded, kernel rx counter (frames/s)"].replace(",", "")) >= forwarded
        assert float(row["offered (frames/s)"].replace(",", "")) >= forwarded
    # the bench's veths (netdev's default prefix) are gone with the run
    mine = {n for n in netdev.list_links() if n.startswith(netdev.DEFAULT_PREFIX)}
    assert mine <= before


def test_forwarding_bench_arguments_are_checked(tmp_path: Path) -> None:
    res = _forwarding("--seconds", "0")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "--seconds must be positive" in res.stderr.strip().splitlines()[-1]
    res = _forwarding("--target", "bmv2", "--build-dir", str(tmp_path / "nothing"))
    assert "Traceback" not in res.stderr
    assert res.returncode == 2 or "simple_switch_grpc" in res.stderr
