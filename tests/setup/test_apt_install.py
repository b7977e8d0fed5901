"""setup/apt-install.sh (make deps, make bench-deps): apt-get run with a bounded wait while another
apt or dpkg process holds apt's lock, said once; any other failure at once. A fake apt-get on PATH
plays the lock holder: no root, no network."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "setup" / "apt-install.sh"
LOCKED = "E: Could not get lock /var/lib/apt/lists/lock. It is held by process 1750 (apt-get)"


def _fake_apt(bin_dir: Path, locked_calls: int, fail: str = "") -> Path:
    """An apt-get that answers "locked" to its first ``locked_calls`` calls (or fails with
    ``fail``), then succeeds; it logs its arguments, one call a line."""
    calls = bin_dir / "calls"
    exe = bin_dir / "apt-get"
    exe.write_text(f"""#!/bin/sh
echo "$*" >> {calls}
n=$(wc -l < {calls})
if [ -n "{fail}" ]; then echo "{fail}" >&2; exit 100; fi
if [ "$n" -le {locked_calls} ]; then echo "{LOCKED}" >&2; exit 100; fi
echo "fine"
""")
    exe.chmod(0o755)
    return calls


def _run(bin_dir: Path, wait: int) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "APT_LOCK_WAIT": str(wait), "APT_LOCK_POLL": "0.05"}
    return subprocess.run(["bash", str(SCRIPT), "haproxy"], capture_output=True, text=True, env=env, timeout=60,
                          check=False)


def test_waits_while_the_lock_is_held_and_says_so_once(tmp_path: Path) -> None:
    calls = _fake_apt(tmp_path, locked_calls=3)
    res = _run(tmp_path, wait=30)
    assert res.returncode == 0, res.stderr
    assert res.stderr.count("waiting for another apt or dpkg process") == 1
    assert calls.read_text().splitlines() == ["update -qq"] * 4 + ["install -y -qq --no-install-recommends haproxy"]


def test_gives_up_after_its_bound(tmp_path: Path) -> None:
    _fake_apt(tmp_path, locked_calls=10**6)
    res = _run(tmp_path, wait=1)
    assert res.returncode == 1
    assert "apt's lock is still held after 1 s" in res.stderr and "held by process 1750" in res.stderr


def test_another_failure_is_not_waited_on(tmp_path: Path) -> None:
    calls = _fake_apt(tmp_path, locked_calls=0, fail="E: Unable to locate package haproxy")
    res = _run(tmp_path, wait=30)
    assert res.returncode == 1
    assert "Unable to locate package haproxy" in res.stderr and "waiting" not in res.stderr
    assert len(calls.read_text().splitlines()) == 1


def test_names_are_required(tmp_path: Path) -> None:
    res = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=10, check=False)
    assert res.returncode == 2 and "usage:" in res.stderr
