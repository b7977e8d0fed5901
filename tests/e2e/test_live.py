"""make run / make stop (lab/live.py): the lab comes up in the background with its
namespaces named after the hosts, says how to use it, serves a real download through the switch
to a client in ``c1``, and make stop takes all of it down -- and cleans up after a killed one."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from p4splice.lab import netdev
from p4splice.lab.topology import cmdline_of

from tests.e2e.conftest import ROOT, lab_spec

LIVE = [sys.executable, "-m", "p4splice.lab.live"]


def _live(tmp: Path, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*LIVE, "--build-dir", str(tmp / "build"), "--log-dir", str(tmp / "logs"), *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture
def build(tmp_path: Path) -> Path:
    """A build directory of its own holding make build's files (a make run lab of the developer's
    own, in build/, is left alone)."""
    spec = lab_spec()  # skips where the lab cannot run
    (tmp_path / "build").mkdir()
    for f in spec.build_dir.glob("splice.*"):
        shutil.copy(f, tmp_path / "build")
    return tmp_path


def _download(netns: str, url: str, size: int) -> int:
    code = ("import sys, urllib.request\n"
            f"req = urllib.request.Request({url!r}, headers={{'X-Download': '{size}'}})\n"
            "print(len(urllib.request.urlopen(req, timeout=30).read()))")
    out = subprocess.run(["ip", "netns", "exec", netns, sys.executable, "-c", code], capture_output=True,
                         text=True, timeout=60, check=True)
    return int(out.stdout)


def test_run_serves_then_stop_takes_it_all_down(build: Path) -> None:
    target = os.environ.get("TARGET", "p4sim")
    if any(n in netdev.list_netns() for n in ("c1", "s1", "proxy")):
        pytest.skip("namespaces c1/s1/proxy exist already (a make run lab?)")
    up = _live(build, "--detach", "--target", target, "--clients", "1", "--servers", "1",
               "--switch-log-level", "debug", "--pcap-dir", str(build / "pcap"))
    try:
        assert up.returncode == 0, up.stderr
        assert "The lab is up" in up.stdout and "ip netns exec c1 curl" in up.stdout
        assert "Stop it with: make stop" in up.stdout
        assert {"c1", "s1", "proxy"} <= set(netdev.list_netns())
        state = json.loads((build / "build" / "lab" / "live.json").read_text())
        # a download through the inspect service: proxied, then spliced, every byte there
        assert _download("c1", "http://10.0.101.1:8001/", 2_000_000) == 2_000_000
        # the switch's own log at debug level, and per-port pcaps, where the guide says
        log_line = next(ln for ln in up.stdout.splitlines() if ln.strip().startswith("switch:"))
        log_path = Path(log_line.split()[1])
        assert log_path.exists() and log_path.stat().st_size > 0
        assert list((build / "pcap").glob("*_in.pcap"))
        again = _live(build, "--detach", "--target", target)
        assert again.returncode == 1 and "running already" in again.stderr
    finally:
        down = _live(build, "--stop")
    assert down.returncode == 0, down.stderr
    assert f"stopped the {target} lab (pid {state['pid']})" in down.stdout
    assert not {"c1", "s1", "proxy"} & set(netdev.list_netns())
    # gone (or a zombie its new parent has not reaped yet: no command line any more)
    assert "lab.live" not in cmdline_of(state["pid"])
    quiet = _live(build, "--stop")  # nothing runs: make stop says nothing
    assert (quiet.returncode, quiet.stdout, quiet.stderr) == (0, "", "")


def test_stop_cleans_up_after_a_killed_lab(build: Path) -> None:
    if any(n in netdev.list_netns() for n in ("c1", "s1", "proxy")):
        pytest.skip("namespaces c1/s1/proxy exist already (a make run lab?)")
    up = _live(build, "--detach", "--clients", "1", "--servers", "1")
    assert up.returncode == 0, up.stderr
    state = json.loads((build / "build" / "lab" / "live.json").read_text())
    os.kill(state["pid"], signal.SIGKILL)  # its switch, controller and proxy live on
    down = _live(build, "--stop")
    assert down.returncode == 0, down.stderr
    assert "removed the namespace c1 of a killed lab" in down.stdout
    assert not {"c1", "s1", "proxy"} & set(netdev.list_netns())
    assert "removed what a killed lab left behind" in down.stdout
    assert "stopped the" not in down.stdout
    # and none of its processes lives on (their command lines name its build directory)
    left = [pid for pid in os.listdir("/proc") if pid.isdigit() and str(build) in cmdline_of(int(pid))]
    assert left == []


def test_run_in_the_foreground_ends_on_ctrl_c(build: Path) -> None:
    """make run's default: the guide, then up until Ctrl-C (SIGINT), which takes it all down."""
    if any(n in netdev.list_netns() for n in ("c1", "s1", "proxy")):
        pytest.skip("namespaces c1/s1/proxy exist already (a make run lab?)")
    proc = subprocess.Popen([*LIVE, "--build-dir", str(build / "build"), "--log-dir", str(build / "logs"),
                             "--clients", "1", "--servers", "1"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:  # ends if the process exits early
            lines.append(line)
            if line.startswith("Stop it with:"):
                break
        assert lines and "Ctrl-C here, or make stop from another terminal" in lines[-1], "".join(lines)
        assert {"c1", "s1", "proxy"} <= set(netdev.list_netns())
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not {"c1", "s1", "proxy"} & set(netdev.list_netns())
    assert not (build / "build" / "lab" / "live.json").exists()
