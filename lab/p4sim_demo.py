"""``make demo-p4sim``: a p4sim router between two Linux hosts, programmed over P4Runtime.

Compiles p4sim/examples/l3_forward.p4, starts ``p4sim`` on two veth ports, installs routes with
p4runtime-shell (unchanged, from its own venv: p4sim/shellbridge.py), and pings from one network
namespace to the other through the switch. Everything it creates is removed on exit, on Ctrl-C and
on failure.
"""

from __future__ import annotations

import argparse
import logging
import re
import signal
import subprocess
import sys
from pathlib import Path

from google.protobuf import text_format
from p4.v1 import p4runtime_pb2

from p4sim.launch import LaunchError, free_port, stop, wait_listening
from p4sim.shellbridge import ShellBridge, ShellBridgeError, shell_python

from . import netdev

EXAMPLE = Path(__file__).resolve().parents[1] / "p4sim" / "examples" / "l3_forward.p4"
SWITCH_MAC = "02:00:00:00:00:fe"
HOSTS = {  # port: (host address, gateway address, host MAC)
    1: ("10.0.1.1", "10.0.1.254", "02:00:00:00:01:01"),
    2: ("10.0.2.1", "10.0.2.254", "02:00:00:00:02:01"),
}


def say(msg: str) -> None:
    print(msg, flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="p4splice.lab.p4sim_demo", description=__doc__.splitlines()[0])
    ap.add_argument("--build-dir", default="build")
    ap.add_argument("--log-dir", default="logs")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    shell = shell_python()
    if shell is None:
        print("error: p4runtime-shell's venv is missing: run `make p4sh-venv` (or set P4SH_PYTHON)",
              file=sys.stderr)
        return 2
    build, logs = Path(args.build_dir), Path(args.log_dir)
    build.mkdir(parents=True, exist_ok=True)
    logs.mkdir(parents=True, exist_ok=True)
    bindir = Path(sys.executable).parent

    say("== p4sim demo: an IPv4 router in P4, two Linux hosts, P4Runtime in between ==")
    json_out, p4info_out = build / "l3_forward.p4sim.json", build / "l3_forward.p4info.txtpb"
    say(f"[1/5] compiling {EXAMPLE.name} with p4sim-compile")
    rc = subprocess.run([str(bindir / "p4sim-compile"), str(EXAMPLE), "-o", str(json_out),
                         "--p4runtime-files", str(p4info_out)]).returncode
    if rc != 0:
        return rc
    netdev.cleanup_stale("p4d")
    try:
        netdev.require_netns()
    except netdev.NetdevUnavailable as exc:
        say(f"cannot build the demo topology: {exc}")
        return 1
    proc: subprocess.Popen | None = None

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    with netdev.Topology("p4d") as topo:
        try:
            say("[2/5] building hosts h1, h2 in network namespaces, veth pairs to switch ports 1 and 2")
            ifaces = {}
            names = {}
            for port, (addr, gw, mac) in HOSTS.items():
                ns = topo.add_netns()
                names[port] = ns
                pair = topo.add_veth(ns_a=ns, mac_a=mac)
                ifaces[port] = pair.b
                topo.exec(ns, ["ip", "link", "set", pair.a, "name", "eth0"])
                topo.add_address("eth0", f"{addr}/24", netns=ns)
                topo.add_route("default", via=gw, netns=ns)
                topo.add_neighbor(gw, SWITCH_MAC, "eth0", netns=ns)
            grpc_port = free_port()
            say(f"[3/5] starting p4sim (ports 1@{ifaces[1]} 2@{ifaces[2]}, P4Runtime on 127.0.0.1:{grpc_port})")
            log_file = logs / "p4sim-demo.log"
            proc = subprocess.Popen(
                [str(bindir / "p4sim"), "--device-id", "1", "-i", f"1@{ifaces[1]}", "-i", f"2@{ifaces[2]}",
                 "--no-p4", "--grpc-server-addr", f"127.0.0.1:{grpc_port}", "--log-file", str(log_file)],
                stdout=subprocess.DEVNULL, stderr=open(log_file.with_suffix(".err"), "w"))  # noqa: SIM115
            wait_listening(grpc_port, proc)
            say("[4/5] pushing the pipeline and two routes with p4runtime-shell")
            with ShellBridge(shell) as sh:
                sh.call("setup", device_id=1, grpc_addr=f"127.0.0.1:{grpc_port}", election_id=[0, 1],
                        p4info=str(p4info_out), config=str(json_out))
                for port, (addr, _gw, mac) in HOSTS.items():
                    prefix = re.sub(r"\.\d+$", ".0", addr) + "/24"
                    sh.call("table", verb="insert", table="RouterIngress.ipv4_lpm", action="RouterIngress.forward",
                            match={"hdr.ipv4.dst_addr": prefix}, params={"dst_addr": mac, "port": str(port)})
                    say(f"      route {prefix} -> port {port} (dst MAC {mac})")
                say("[5/5] h1$ ping -c 3 10.0.2.1")
                ping = topo.exec(names[1], ["ping", "-c", "3", "-W", "2", "10.0.2.1"], check=False)
                for line in ping.stdout.splitlines():
                    if "bytes from" in line or "packets transmitted" in line:
                        say("      " + line)
                counts = _port_counts(sh.call("read_counter", counter="RouterIngress.port_packets")["entities"])
                for port, (pk, by) in sorted(counts.items()):
                    say(f"      switch counter port_packets[{port}]: {pk} packets, {by} bytes")
                ok = ping.returncode == 0
                sh.call("teardown")
            say("demo " + ("passed: packets crossed the P4 switch both ways" if ok else "FAILED: no reply"))
            return 0 if ok else 1
        except (LaunchError, ShellBridgeError) as exc:
            say(f"demo failed: {exc}")
            return 1
        except KeyboardInterrupt:
            say("interrupted: tearing down")
            return 130
        finally:
            if proc is not None:
                stop(proc, grace=5)
    return 1


def _port_counts(entities: list[str]) -> dict[int, tuple[int, int]]:
    """{index: (packets, bytes)} of the non-zero cells, from CounterEntry text protos."""
    counts = {}
    for text in entities:
        entry = text_format.Parse(text, p4runtime_pb2.CounterEntry())
        if entry.data.packet_count:
            counts[entry.index.index] = (entry.data.packet_count, entry.data.byte_count)
    return counts


if __name__ == "__main__":
    sys.exit(main())



