"""Starting and stopping switch processes from scripts and tests: free ports, what a switch binary
accepts, readiness, shutdown."""

from __future__ import annotations

import functools
import logging
import socket
import subprocess
import time

log = logging.getLogger(__name__)


class LaunchError(RuntimeError):
    """A process did not come up (it exited, or did not listen in time)."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the caller binds it soon after)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@functools.cache
def bmv2_has_thrift(exe: str) -> bool:
    """Whether this simple_switch_grpc accepts --thrift-port (built with Thrift): without Thrift
    the option is unknown and BMv2 exits at once; with it, BMv2 takes 9090 unless told, and a
    second BMv2 on the machine would then fail to start."""
    try:
        proc = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=30,
                              stdin=subprocess.DEVNULL, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.warning("%s --help failed (%s): not passing --thrift-port", exe, exc)
        return False
    return "--thrift-port" in proc.stdout + proc.stderr


def thrift_args(target: str, exe: str, port: int) -> list[str]:
    """``--thrift-port PORT`` where the switch has that option (p4sim accepts and ignores it)."""
    if target == "p4sim" or bmv2_has_thrift(exe):
        return ["--thrift-port", str(port)]
    return []


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
