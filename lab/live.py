"""``make run`` / ``make stop``: the lab of docs/e2e.md brought up and left running to poke at.

``python -m p4splice.lab.live`` (``make run``) brings the lab up -- client, server and
proxy namespaces named after their hosts (``c1``, ``s1``, ``proxy``, ...), the switch of
``--target`` with its log and, if asked, per-port pcaps, the controller, the proxy, and a traffic
server on every server -- prints how to use it and stays up until Ctrl-C or ``make stop`` from
another terminal. With ``--detach`` it starts the lab in a process of its own, waits until it is
up, prints the guide and returns. ``--stop`` (``make stop``) ends that lab: it signals the process recorded in
``<build>/lab/live.json`` if its command line is still this module's (never anyone else's), waits
for it to take everything down, and removes what a killed one left behind.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from .topology import LOG_LEVELS, Lab, LabError, LabSpec, cleanup_stale, cmdline_of
from .traffic import TrafficServer

__all__ = ["how_to", "main"]

MODULE = "p4splice.lab.live"
STATE = "live.json"
STOP_TIMEOUT = 60.0


def how_to(lab: Lab, state_file: Path, detached: bool = False) -> str:
    """The short guide printed once the lab is up."""
    c1, s1 = lab.clients[0], lab.servers[0]
    inspect, never = lab.service("inspect"), lab.service("never")
    hosts = "\n".join(f"  {h.name:<6} netns {h.netns:<6} {h.ip:<12} switch port {h.switch_port}"
                      for h in lab.hosts)
    services = "\n".join(f"  {s.name:<12} {s1.ip}:{s.port:<5} policy {s.policy}"
                         + ("  (the server speaks first: 'XFER <up> <down>' after its greeting)" if s.banner else "")
                         for s in lab.spec.services)
    pcap = (f"per-port pcaps:     {lab.spec.pcap_dir}/<iface>_in.pcap and _out.pcap\n" if lab.spec.pcap_dir
            else "per-port pcaps:     off (make run PCAP=1, or --pcap-dir DIR)\n")
    return f"""\
The lab is up: {lab.spec.target} switch, P4Runtime on {lab.grpc_addr} (device 1, CPU port 255).

Hosts (each a network namespace, cabled to a switch port):
{hosts}

Services on every server (a traffic server answers; X-Download: bytes it sends back):
{services}

Try:
  ip netns exec {c1.name} curl -s -o /dev/null -w '%{{size_download}} bytes\\n' -H 'X-Download: 10000000' http://{s1.ip}:{inspect.port}/
  ip netns exec {c1.name} curl -s -o /dev/null -w '%{{size_download}} bytes\\n' -H 'X-Download: 1000000' http://{s1.ip}:{never.port}/
  .venv/bin/splicectl --grpc-addr {lab.grpc_addr} --device-id 1 flows     # legs, deltas, counters
  .venv/bin/splicectl --grpc-addr {lab.grpc_addr} --device-id 1 status

Logs:
  switch:             {lab.switch_log} (level {lab.spec.switch_log_level}; make run SWITCH_LOG_LEVEL=debug)
  {pcap}  controller, proxy:  {lab.log_dir}/controller.log, proxy.log
  the lab:            {lab.log_dir.parent}/live.log

Stop it with: {"make stop" if detached else "Ctrl-C here, or make stop from another terminal"}   (state in {state_file})
"""


# --- the lab's own process ---------------------------------------------------------------------------

def _serve(args: argparse.Namespace) -> int:
    state_file = args.build_dir / "lab" / STATE
    spec = LabSpec(clients=args.clients, servers=args.servers, target=args.target, build_dir=args.build_dir,
                   log_dir=args.log_dir, pcap_dir=args.pcap_dir, switch_log_level=args.switch_log_level,
                   named_netns=True)
    stop = asyncio.Event()

    async def run(lab: Lab) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        async with TrafficServer(lab.servers, lab.spec.services):
            state_file.write_text(json.dumps({"pid": os.getpid(), "target": args.target,
                                              "netns": [h.netns for h in lab.hosts], "grpc": lab.grpc_addr}))
            guide = how_to(lab, state_file, detached=args.detached)
            (args.build_dir / "lab" / "live.txt").write_text(guide)
            print(guide, flush=True)
            await stop.wait()
        print("stopping the lab", flush=True)

    if args.pcap_dir is not None:
        args.pcap_dir.mkdir(parents=True, exist_ok=True)
    try:
        with Lab(spec, progress=lambda msg: print(msg, flush=True)) as lab:
            asyncio.run(run(lab))
    except LabError as e:
        print(f"make run: {e}", file=sys.stderr, flush=True)
        return 1
    finally:
        with contextlib.suppress(OSError):
            state_file.unlink()
    return 0


# --- make run: start it in the background -----------------------------------------------------------

def _running(build_dir: Path) -> dict | None:
    """The live lab recorded in ``build_dir``, if its process is alive and still this module."""
    try:
        state = json.loads((build_dir / "lab" / STATE).read_text())
        pid = int(state["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return state if MODULE in cmdline_of(pid) else None


def _detach(args: argparse.Namespace, argv: list[str]) -> int:
    if (state := _running(args.build_dir)) is not None:
        print(f"make run: a lab is running already (pid {state['pid']}): make stop first", file=sys.stderr)
        return 1
    lab_dir = args.build_dir / "lab"
    lab_dir.mkdir(parents=True, exist_ok=True)
    args.log_dir.mkdir(parents=True, exist_ok=True)
    guide = lab_dir / "live.txt"
    guide.unlink(missing_ok=True)
    log_path = args.log_dir / "live.log"
    with open(log_path, "w") as log:
        child = subprocess.Popen([sys.executable, "-m", MODULE, "--detached", *[a for a in argv if a != "--detach"]],
                                 stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                 start_new_session=True)  # lives on after make returns
    deadline = time.monotonic() + args.timeout
    while not guide.exists():
        if child.poll() is not None:
            print(f"make run: the lab did not come up (exit {child.returncode}); {log_path} ends:\n"
                  + "\n".join(log_path.read_text(errors="replace").splitlines()[-15:]), file=sys.stderr)
            return 1
        if time.monotonic() > deadline:
            child.send_signal(signal.SIGTERM)
            print(f"make run: the lab was not up after {args.timeout:.0f} s (see {log_path}); stopped it",
                  file=sys.stderr)
            return 1
        time.sleep(0.1)  # polling interval of a readiness check with a deadline
    print(guide.read_text(), end="")
    return 0


# --- make stop -----------------------------------------------------------------------------------------

def _stop(args: argparse.Namespace) -> int:
    from . import netdev

    state_file = args.build_dir / "lab" / STATE
    state = _running(args.build_dir)
    if state is not None:  # nothing running: make stop says nothing
        pid = int(state["pid"])
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while MODULE in cmdline_of(pid):
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                break
            time.sleep(0.1)  # polling interval for the process to end, with a deadline
        print(f"make stop: stopped the {state.get('target', '')} lab (pid {pid})")
    # A lab of make run that was killed leaves its named namespaces; its state file names them.
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        left = json.loads(state_file.read_text())
        for ns in set(left["netns"]) & set(netdev.list_netns()):
            netdev.run(["ip", "netns", "del", ns], check=False)
            print(f"make stop: removed the namespace {ns} of a killed lab")
        state_file.unlink()
    # What a killed lab (make run's, a test's, the demo's) left in this checkout's build/
    removed = cleanup_stale(args.build_dir)
    if removed:
        print("make stop: removed what a killed lab left behind: " + ", ".join(removed))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(prog=f"python -m {MODULE}", description=__doc__.splitlines()[0])
    ap.add_argument("--target", choices=["p4sim", "bmv2"], default="p4sim")
    ap.add_argument("--clients", type=int, default=2, choices=range(1, 10), metavar="N", help="client hosts (1-9)")
    ap.add_argument("--servers", type=int, default=2, choices=range(1, 10), metavar="N", help="server hosts (1-9)")
    ap.add_argument("--switch-log-level", choices=LOG_LEVELS, default="info",
                    help="the switch's --log-level (debug names each table hit; trace logs every field)")
    ap.add_argument("--pcap-dir", type=Path, help="the switch writes per-port pcaps here (--pcap)")
    ap.add_argument("--build-dir", type=Path, default=Path("build"))
    ap.add_argument("--log-dir", type=Path, default=Path("logs"))
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds --detach waits for the lab")
    ap.add_argument("--detach", action="store_true", help="start the lab in the background and return once it is up")
    ap.add_argument("--detached", action="store_true", help=argparse.SUPPRESS)  # the background process itself
    ap.add_argument("--stop", action="store_true", help="stop the lab of make run (make stop)")
    args = ap.parse_args(argv)
    args.build_dir = args.build_dir.resolve()
    args.log_dir = args.log_dir.resolve()
    if args.pcap_dir is not None:
        args.pcap_dir = args.pcap_dir.resolve()
    if args.stop:
        return _stop(args)
    if args.detach:
        return _detach(args, argv)
    return _serve(args)


if __name__ == "__main__":
    sys.exit(main())
