"""Runs the PTF suite end to end: build, veth pairs, switch process, ptf, teardown.

    python -m ptf_tests.run [--target p4sim|bmv2] [--build-dir build] [--log-dir logs]
                            [-D NAME=VALUE ...] [-- extra ptf arguments, e.g. a test name or --verbose]

TARGET p4sim compiles with p4sim-compile and runs p4sim (this venv); TARGET bmv2 compiles with
p4c-bm2-ss and runs simple_switch_grpc, both from PATH, with the same flags (ptf_tests/targets.py
has what differs: p4c's P4Info suffix, simple_switch_grpc's optional Thrift port). The switch gets
one end of each veth pair, ptf the other. Everything is torn down on exit, failure or signal.
The exit status is ptf's.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from p4splice.lab import netdev

from p4sim.launch import LaunchError, free_port, stop, wait_listening
from ptf_tests import targets

log = logging.getLogger("ptf_tests.run")

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
N_PORTS = 3
CPU_PORT = 255
DEVICE_ID = 1
PREFIX = "ptfs"  # netdev resource names of this runner (see p4sim.netdev naming)


def _tool(name: str, target: str) -> str:
    """p4sim tools come from this venv; BMv2 tools from PATH."""
    local = BIN / name
    if target == "p4sim" and local.exists():
        return str(local)
    found = shutil.which(name)
    if found is None:
        raise SystemExit(f"error: {name} not found on PATH (needed for TARGET={target})")
    return found


def build(target: str, build_dir: Path, defines: list[str] | None = None) -> tuple[Path, Path]:
    """Compile p4src/splice.p4; return (p4info, device config)."""
    build_dir.mkdir(parents=True, exist_ok=True)
    src = ROOT / "p4src" / "splice.p4"
    b = targets.build_command(target, _tool(targets.COMPILER[target], target), src, build_dir, defines or ())
    log.info("build: %s", " ".join(b.argv))
    proc = subprocess.run(b.argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0 or proc.stderr.strip():
        sys.stderr.write(proc.stderr)
    if proc.returncode != 0:
        raise SystemExit(f"error: compile failed (exit {proc.returncode})")
    targets.finish_build(b)
    return b.p4info, b.config


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ptf_tests.run", description=__doc__.split("\n")[0])
    ap.add_argument("--target", choices=("p4sim", "bmv2"), default=os.environ.get("TARGET", "p4sim"))
    ap.add_argument("--build-dir", type=Path, default=ROOT / "build")
    ap.add_argument("--log-dir", type=Path, default=ROOT / "logs")
    ap.add_argument("--build-only", action="store_true", help="compile and stop")
    ap.add_argument("-D", dest="defines", action="append", default=[], metavar="NAME=VALUE",
                    help="compile-time constant for p4src (repeatable), e.g. -D FLOWS_SIZE=65536")
    ap.add_argument("ptf_args", nargs="*", help="passed to ptf (test names, --verbose, ...)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")

    p4info, config = build(args.target, args.build_dir, args.defines)
    if args.build_only:
        return 0
    args.log_dir.mkdir(parents=True, exist_ok=True)
    netdev.require_netns()
    netdev.cleanup_stale(PREFIX)

    # SIGTERM (make interrupted, CI timeout) unwinds like Ctrl-C so the finally blocks run
    signal.signal(signal.SIGTERM, _interrupt)
    with netdev.Topology(prefix=PREFIX) as topo:
        pairs = [topo.add_veth() for _ in range(N_PORTS)]
        grpc_port = free_port()
        exe = _tool(targets.SWITCH[args.target], args.target)
        cmd = [exe, "--device-id", str(DEVICE_ID)]
        for i, pair in enumerate(pairs, start=1):
            cmd += ["-i", f"{i}@{pair.b}"]
        # a Thrift port of its own: another BMv2 on this machine (a lab, the integration tests)
        # may hold 9090, and a BMv2 that cannot bind it exits
        cmd += targets.thrift_args(args.target, exe, free_port())
        cmd += ["--log-console", "--no-p4", "--", "--grpc-server-addr", f"127.0.0.1:{grpc_port}",
                "--cpu-port", str(CPU_PORT)]
        switch_log = args.log_dir / f"ptf-{args.target}.log"
        log.info("switch: %s (log %s)", " ".join(cmd), switch_log)
        with open(switch_log, "wb") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_listening(grpc_port, proc)
            params = ";".join([f"grpc_addr='127.0.0.1:{grpc_port}'", f"device_id={DEVICE_ID}",
                               f"p4info='{p4info}'", f"config='{config}'", f"cpu_port={CPU_PORT}"])
            ptf_cmd = [str(BIN / "ptf") if (BIN / "ptf").exists() else "ptf",
                       "--test-dir", str(ROOT / "ptf_tests"), "--pypath", str(ROOT),
                       "--log-file", str(args.log_dir / "ptf.log"),
                       "--default-negative-timeout", "0.2", "--test-params", params]
            for i, pair in enumerate(pairs, start=1):
                ptf_cmd += ["-i", f"{i}@{pair.a}"]
            ptf_cmd += args.ptf_args
            log.info("ptf: %s", " ".join(ptf_cmd))
            rc = subprocess.run(ptf_cmd, cwd=ROOT, check=False).returncode
            if proc.poll() is not None:
                log.error("the switch died during the run (status %s); see %s", proc.returncode, switch_log)
                rc = rc or 1
            return rc
        except LaunchError as exc:
            log.error("%s; see %s", exc, switch_log)
            return 1
        except KeyboardInterrupt:
            log.error("interrupted")
            return 130
        finally:
            stop(proc)


if __name__ == "__main__":
    sys.exit(main())
