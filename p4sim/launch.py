"""Starting and stopping switch processes from scripts and tests: free ports, readiness, shutdown."""

from __future__ import annotations

import socket
import subprocess
import time


class LaunchError(RuntimeError):
    """A process did not come up (it exited, or did not listen in time)."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the caller binds it soon after)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_listening(port: int, proc: subprocess.Popen, timeout: float = 30.0, host: str = "127.0.0.1",
                   what: str = "the switch") -> None:
    """Poll until something accepts on host:port; fail early if ``proc`` died meanwhile."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise LaunchError(f"{what} exited with status {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise LaunchError(f"{what} is not listening on {host}:{port} after {timeout}s")
        time.sleep(0.02)  # polling interval of a readiness check that has a deadline


def stop(proc: subprocess.Popen, grace: float = 10.0) -> int:
    """SIGTERM, then SIGKILL after ``grace`` seconds; returns the exit status."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode
