"""The lab topology: clients, servers and the proxy host in network namespaces, each joined by a
veth pair to a port of one switch (``p4sim``, or BMv2's ``simple_switch_grpc`` with
``target="bmv2"``), the controller daemon (``splicectl run``) on the switch's CPU port and the
application proxy (``splice-proxy``) in the proxy host's namespace.

Everything a user would type is typed: the pipeline, routes and services go in through
``splicectl``; the controller and the proxy run from TOML files as their own processes. ``Lab.up()``
brings it all up, ``Lab.down()`` (or leaving the ``with`` block) removes it, also after a failure
half-way. A run directory under ``build/lab/`` records the processes started, so that the next run
kills what a killed run left behind (``cleanup_stale``) before it removes the stale namespaces.

Addressing (one /24 per switch port; hosts route everything through the switch)::

    client i   port i        10.0.i.1/24      gateway 10.0.i.254     MAC 02:00:00:00:01:ii
    server j   port 100+j    10.0.(100+j).1   gateway 10.0.(100+j).254   MAC 02:00:00:00:02:jj
    proxy      port 200      10.0.200.1       gateway 10.0.200.254   MAC 02:00:00:00:03:01
    switch     MAC 02:00:00:00:00:fe on every port, CPU port 255

The switch answers no ARP, so each host has a permanent neighbour entry for its gateway.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from p4splice.controller.config import DEVICE_CONFIG_FILES, P4INFO_FILE

from p4sim.launch import LaunchError, free_port, stop, thrift_args, wait_listening

from . import netdev
from .impair import ImpairSpec, RelayControl, RelayError, relay_argv

__all__ = [
    "CPU_PORT",
    "DEFAULT_SERVICES",
    "PROXY_PORT",
    "SWITCH_MAC",
    "Host",
    "ImpairSpec",
    "Lab",
    "LabError",
    "LabSpec",
    "NetemUnavailable",
    "ProxyEvent",
    "Service",
    "cleanup_stale",
    "cmdline_of",
    "switch_argv",
    "switch_log_path",
]

log = logging.getLogger("p4splice.lab")

SWITCH_MAC = "02:00:00:00:00:fe"
CPU_PORT = 255
PROXY_PORT = 200
PREFIX = "p4l"  # netdev naming prefix of the lab's namespaces and links
BIN = Path(sys.executable).parent


class LabError(RuntimeError):
    """The lab could not be brought up (or a component did not come back)."""


class NetemUnavailable(LabError):
    """The kernel has no netem qdisc (sch_netem not built or not loadable)."""


@dataclass(frozen=True)
class Service:
    """A service every server offers: a TCP port, the proxy's policy for it, and the protocol."""

    name: str
    port: int
    policy: str  # inspect, after-bytes, never, rewrite
    after_bytes: int | None = None
    set_headers: tuple[tuple[str, str], ...] = ()
    banner: bool = False  # server-first: the server speaks before the client


# after-bytes splices after 64 client bytes: inside the request head, so a download needs no upload.
DEFAULT_SERVICES = (
    Service("inspect", 8001, "inspect"),
    Service("after-bytes", 8002, "after-bytes", after_bytes=64),
    Service("never", 8003, "never"),
    Service("rewrite", 8004, "rewrite", set_headers=(("X-Proxied-By", "p4splice-lab"),)),
    Service("banner", 8005, "after-bytes", after_bytes=8, banner=True),
)


@dataclass
class Host:
    """One Linux host of the lab: a namespace with ``eth0`` cabled to ``switch_port``."""

    name: str
    role: str  # client, server, proxy
    switch_port: int
    ip: str
    gateway: str
    mac: str
    netns: str = ""
    ifname: str = "eth0"
    switch_if: str = ""  # the switch's end of the cable (root namespace)

    @property
    def subnet(self) -> str:
        return self.ip.rsplit(".", 1)[0] + ".0/24"


LOG_LEVELS = ("trace", "debug", "info", "warn", "error", "off")


def switch_log_path(target: str, log_file: Path) -> Path:
    """Where the switch's own log ends up for ``--log-file log_file``: BMv2 (its spdlog file
    sink) adds ``.txt`` to the name it is given; p4sim writes the name as given."""
    return log_file.with_name(log_file.name + ".txt") if target == "bmv2" else log_file


def switch_argv(target: str, ports: Sequence[tuple[int, str]], grpc_addr: str, log_file: Path,
                cpu_port: int = CPU_PORT, device_id: int = 1, pcap_dir: Path | None = None,
                log_level: str = "info") -> list[str]:
    """The command line of the switch of ``target`` (p4sim from this venv, or BMv2's
    simple_switch_grpc from PATH) with these (port, interface) pairs, no program yet, P4Runtime
    on ``grpc_addr``, its log in ``switch_log_path(target, log_file)`` at ``log_level``. Info
    by default: trace (BMv2's own default) logs every field of every packet and slows a
    1,000-connection run several times over; debug names each table hit and action. Raises
    LabError when the binary is missing."""
    if log_level not in LOG_LEVELS:
        raise LabError(f"unknown switch log level {log_level!r}: one of {', '.join(LOG_LEVELS)}")
    extra: list[str] = []
    if target == "bmv2":
        exe = shutil.which("simple_switch_grpc")
        if exe is None:
            raise LabError("TARGET=bmv2 needs simple_switch_grpc on PATH")
        # a Thrift port of its own where it was built with Thrift (p4sim.launch.thrift_args)
        extra = thrift_args("bmv2", exe, free_port())
    elif target == "p4sim":
        exe = str(BIN / "p4sim")
    else:
        raise LabError(f"unknown target {target!r}: p4sim or bmv2")
    # "--pcap=DIR" in one word: BMv2's --pcap takes an optional value, which boost reads only
    # when attached (a separate DIR would be taken for the JSON file); p4sim reads both forms
    pcap = [f"--pcap={pcap_dir}"] if pcap_dir is not None else []
    iface_args = [arg for port, ifname in ports for arg in ("-i", f"{port}@{ifname}")]
    return [exe, "--device-id", str(device_id), *iface_args, "--no-p4", "--log-file", str(log_file),
            "--log-level", log_level, *pcap, *extra, "--", "--grpc-server-addr", grpc_addr, "--cpu-port", str(cpu_port)]


def _host(role: str, index: int) -> Host:
    if role == "client":
        port, third, mac = index, index, f"02:00:00:00:01:{index:02x}"
    elif role == "server":
        port, third, mac = 100 + index, 100 + index, f"02:00:00:00:02:{index:02x}"
    else:
        port, third, mac = PROXY_PORT, PROXY_PORT, "02:00:00:00:03:01"
    name = {"client": f"c{index}", "server": f"s{index}", "proxy": "proxy"}[role]
    return Host(name, role, port, f"10.0.{third}.1", f"10.0.{third}.254", mac)


@dataclass(frozen=True)
class LabSpec:
    clients: int = 1
    servers: int = 1
    services: tuple[Service, ...] = DEFAULT_SERVICES
    target: str = "p4sim"  # or bmv2: simple_switch_grpc from PATH, build/splice.json
    build_dir: Path = Path("build")
    log_dir: Path = Path("logs")
    prefix: str = PREFIX
    proxy_name: str = "lab-proxy"
    heartbeat_ms: int = 1000  # 300 ms was starved under 1,000 connections on 2 vCPUs (false deaths)
    controller: Mapping[str, Any] = field(default_factory=dict)  # [controller] keys over the lab's
    proxy_limits: Mapping[str, Any] = field(default_factory=dict)  # [limits] keys of the proxy
    proxy_log_level: str = "info"
    pcap_dir: Path | None = None  # the switch writes <iface>_in.pcap / _out.pcap per port here
    switch_log_level: str = "info"  # trace, debug, info, warn, error, off (BMv2's --log-level)
    named_netns: bool = False  # namespaces named after their hosts (c1, s1, proxy): make run's lab
    # Host names whose cables get an impairment relay (lab/impair.py), with the
    # impairment of both directions at start (None: none yet; Lab.impair() changes it).
    impair: Mapping[str, ImpairSpec | None] = field(default_factory=dict)


@dataclass
class ProxyEvent:
    """One JSON log line of the proxy, stamped on arrival (the proxy's own times are to the second)."""

    t: float  # time.monotonic() when read
    record: dict[str, Any]

    @property
    def event(self) -> str | None:
        return self.record.get("event")


# --- processes ------------------------------------------------------------------------------------

@dataclass
class _Proc:
    name: str
    popen: subprocess.Popen[bytes]
    argv: list[str]
    marker: str  # a string of its command line that names this run (checked before a stale kill)
    log_path: Path


def cmdline_of(pid: int) -> str:
    """The command line of process ``pid``, words joined by spaces ("" if there is none)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def cleanup_stale(build_dir: Path, prefix: str = PREFIX) -> list[str]:
    """Kill the processes of lab runs whose owner died, drop their run directories, then remove
    their namespaces and links. Returns what was removed (for the log)."""
    removed: list[str] = []
    root = build_dir / "lab"
    for run_dir in sorted(root.glob("run-*")) if root.is_dir() else []:
        try:
            owner = int(run_dir.name.split("-")[1])
        except (IndexError, ValueError):
            continue
        if owner == os.getpid() or netdev.pid_alive(owner):
            continue
        with contextlib.suppress(OSError, ValueError):
            for entry in json.loads((run_dir / "pids.json").read_text()):
                pid, marker = int(entry["pid"]), str(entry["marker"])
                # Only a process whose command line still names this run: pids get reused.
                if netdev.pid_alive(pid) and marker in cmdline_of(pid):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                    removed.append(f"{entry['name']}[{pid}]")
        shutil.rmtree(run_dir, ignore_errors=True)
        removed.append(str(run_dir))
    removed += netdev.cleanup_stale(prefix)
    if removed:
        log.info("removed what a killed lab left behind: %s", ", ".join(removed))
    return removed


# --- the lab --------------------------------------------------------------------------------------

class Lab(contextlib.AbstractContextManager["Lab"]):
    """``with Lab(spec) as lab:`` -- everything up; everything gone afterwards."""

    _serial = 0

    def __init__(self, spec: LabSpec | None = None, progress: Callable[[str], None] | None = None) -> None:
        self.spec = spec or LabSpec()
        self.progress = progress or (lambda msg: log.info("%s", msg))
        self.clients = [_host("client", i) for i in range(1, self.spec.clients + 1)]
        self.servers = [_host("server", j) for j in range(1, self.spec.servers + 1)]
        self.proxy = _host("proxy", 1)
        self.topo: netdev.Topology | None = None
        self.procs: dict[str, _Proc] = {}
        self.grpc_port = 0
        Lab._serial += 1
        self.run_dir = (self.spec.build_dir / "lab" / f"run-{os.getpid()}-{Lab._serial}").resolve()
        self.log_dir = (self.spec.log_dir / "lab").resolve()
        self.proxy_events: list[ProxyEvent] = []
        self._events_lock = threading.Lock()
        self._readers: list[threading.Thread] = []
        self._netem: list[tuple[Host, str]] = []
        self._sysctls: dict[tuple[str, str], str] = {}
        self._cut: dict[str, Host] = {}  # hosts whose cables cut() pulled, by name
        self._relay_cables: dict[str, tuple[str, str]] = {}  # host name -> (host side, switch side)
        self.relay: RelayControl | None = None

    # --- names ----------------------------------------------------------------------------------

    @property
    def hosts(self) -> list[Host]:
        return [*self.clients, *self.servers, self.proxy]

    @property
    def grpc_addr(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def switch_log(self) -> Path:
        """The switch's own log (``--log-file``, at ``spec.switch_log_level``)."""
        return switch_log_path(self.spec.target, self.log_dir / "switch.log")

    @property
    def proxy_socket(self) -> Path:
        return self.run_dir / "proxy.sock"

    @property
    def admin_socket(self) -> Path:
        return self.run_dir / "admin.sock"

    def service(self, name: str) -> Service:
        for s in self.spec.services:
            if s.name == name or s.policy == name and not s.banner:
                return s
        raise KeyError(name)

    # --- bring-up -------------------------------------------------------------------------------

    def __enter__(self) -> Lab:
        self.up()
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()

    def up(self) -> Lab:
        try:
            netdev.require_netns()
        except netdev.NetdevUnavailable as exc:
            raise LabError(f"network namespaces unavailable: {exc}") from exc
        cleanup_stale(self.spec.build_dir, self.spec.prefix)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._write_pids()
        try:
            self._build_hosts()
            self._start_relay()
            self._start_switch()
            self._program_switch()
            self.start_controller()
            self.start_proxy()
        except BaseException:
            self.down()
            raise
        return self

    def _build_hosts(self) -> None:
        self.progress(f"hosts: {len(self.clients)} client(s), {len(self.servers)} server(s) and the proxy host "
                      "in network namespaces, veth pairs to the switch (offloads off)")
        unknown = set(self.spec.impair) - {h.name for h in self.hosts}
        if unknown:
            raise LabError(f"impair: no host {', '.join(sorted(unknown))} in this lab")
        self.topo = netdev.Topology(prefix=self.spec.prefix)
        topo = self.topo
        for host in self.hosts:
            if self.spec.named_netns and host.name in netdev.list_netns():
                raise LabError(f"a network namespace named {host.name} exists already (another lab? make stop)")
            host.netns = topo.add_netns(host.name if self.spec.named_netns else None)
            # Down while renaming: older kernels refuse to rename an interface that is up.
            pair = topo.add_veth(ns_a=host.netns, mac_a=host.mac, up=False)
            topo.exec(host.netns, ["ip", "link", "set", pair.a, "name", host.ifname])
            topo.link_up(host.ifname, netns=host.netns)
            topo.link_up(pair.b)
            host.switch_if = pair.b
            topo.add_address(host.ifname, f"{host.ip}/24", netns=host.netns)
            topo.add_route("default", via=host.gateway, netns=host.netns)
            topo.add_neighbor(host.gateway, SWITCH_MAC, host.ifname, netns=host.netns)
            if host.name in self.spec.impair:
                # A second pair behind the relay: eth0 ══ pair.b ─relay─ cable.a ══ cable.b = the port.
                cable = topo.add_veth()
                self._relay_cables[host.name] = (pair.b, cable.a)
                host.switch_if = cable.b

    def _start_switch(self) -> None:
        self.grpc_port = free_port()
        argv = switch_argv(self.spec.target, [(h.switch_port, h.switch_if) for h in self.hosts], self.grpc_addr,
                           self.log_dir / "switch.log", pcap_dir=self.spec.pcap_dir,
                           log_level=self.spec.switch_log_level)
        exe = argv[0]
        self.progress(f"switch: {Path(exe).name} with ports "
                      + ", ".join(f"{h.switch_port}={h.name}" for h in self.hosts) + f", P4Runtime on {self.grpc_addr}")
        proc = self._spawn("switch", argv, marker=self.grpc_addr)
        try:
            wait_listening(self.grpc_port, proc.popen, timeout=60, what=Path(exe).name)
        except LaunchError as exc:
            raise LabError(f"{exc} (see {proc.log_path})") from exc

    def _pipeline_files(self) -> tuple[Path, Path]:
        build = self.spec.build_dir
        config = build / DEVICE_CONFIG_FILES[self.spec.target]
        p4info = build / P4INFO_FILE
        for f in (p4info, config):
            if not f.exists():
                raise LabError(f"{f} is missing: run 'make build' (TARGET={self.spec.target})")
        return p4info.resolve(), config.resolve()

    def _program_switch(self) -> None:
        p4info, config = self._pipeline_files()
        self.progress(f"splicectl pipeline push ({config.name}), routes and services")
        self.splicectl("pipeline", "push", "--p4info", str(p4info), "--config", str(config),
                       "--cpu-port", str(CPU_PORT))
        for host in self.hosts:
            self.splicectl("routes", "add", host.subnet, str(host.switch_port), "--smac", SWITCH_MAC,
                           "--dmac", host.mac)
        for server in self.servers:
            for svc in self.spec.services:
                self.splicectl("services", "add", f"{server.ip}:{svc.port}", "--proxy-port", str(PROXY_PORT))

    # --- the impairment relay ---------------------------------------------------------------------

    def _start_relay(self, timeout: float = 30.0) -> None:
        if not self._relay_cables:
            return
        self.progress("impairment relay on the cables of " + ", ".join(self._relay_cables))
        control = RelayControl(self.run_dir / "impair.sock")
        argv = relay_argv([(name, a, b) for name, (a, b) in self._relay_cables.items()], control.path, os.getpid())
        proc = self._spawn("impair", argv, marker=control.path)
        self._poll(lambda: self._relay_ok(control), timeout, "the impairment relay's control socket", proc)
        self.relay = control
        for name, spec in self.spec.impair.items():
            control.set(name, spec)

    @staticmethod
    def _relay_ok(control: RelayControl) -> bool:
        try:
            control.ping()
        except RelayError:
            return False
        return True

    def _relay_for(self, host: Host) -> RelayControl:
        if self.relay is None or host.name not in self._relay_cables:
            raise LabError(f"{host.name}'s cable has no impairment relay (LabSpec.impair)")
        return self.relay

    def impair(self, host: Host, spec: ImpairSpec | None, direction: str = "both") -> None:
        """The impairment of ``host``'s cable from now on (None: none), in ``direction``
        ("to_switch": what the host sends, "to_host", or "both"). Counters start again from zero;
        ``heal`` puts back LabSpec.impair's."""
        self._relay_for(host).set(host.name, spec, direction)

    def impair_stats(self, host: Host) -> dict[str, dict[str, Any]]:
        """The relay's counters of ``host``'s cable per direction (to_switch, to_host): received,
        passed, dropped, reordered, delayed, overflow, send_errors, queued, kernel_drops, spec."""
        return self._relay_for(host).stats()[host.name]

    # --- the controller -------------------------------------------------------------------------

    def controller_config(self) -> str:
        p4info, config = self._pipeline_files()
        section: dict[str, Any] = {
            "pipeline": "adopt",
            "p4info": str(p4info),
            "device_config": str(config),
            "cpu_port": CPU_PORT,
            "switch_mac": SWITCH_MAC,
            # the proxy host's port probed from the data path: replies to its gateway's address
            "port_probe_addr": self.proxy.gateway,
            # A burst of 1,000 handshakes (make e2e) queues for seconds on a Python switch and
            # controller sharing two vCPUs: the proxy's ACK of leg 2 may take longer than 5 s.
            "proxy_ack_timeout": 30.0,
            "idle_timeout": 10.0,  # the backstop for flows that closed while the controller was away
            "linger": 1.0,
            "reset_linger": 1.0,
            "log_format": "json",
            "log_level": "INFO",
        }
        section.update(self.spec.controller)
        lines = [f'grpc_addr = "{self.grpc_addr}"', "device_id = 1", "election_id = 10", "", "[controller]"]
        lines += [f"{k} = {_toml(v)}" for k, v in section.items()]
        lines += ["", "[controller.proxy_api]", f'socket = "{self.proxy_socket}"',
                  "", "[controller.admin]", f'socket = "{self.admin_socket}"']
        # The daemon keeps its own view of services and routes (it tells client from server and
        # sends packet-outs by them); splicectl installed the same entries on the switch already.
        for server in self.servers:
            for svc in self.spec.services:
                lines += ["", "[[controller.services]]", f'server = "{server.ip}:{svc.port}"', f"proxy_port = {PROXY_PORT}"]
        for host in self.hosts:
            lines += ["", "[[controller.routes]]", f'prefix = "{host.subnet}"', f"port = {host.switch_port}",
                      f'smac = "{SWITCH_MAC}"', f'dmac = "{host.mac}"']
        return "\n".join(lines) + "\n"

    def start_controller(self, timeout: float = 60.0) -> None:
        path = self.run_dir / "controller.toml"
        path.write_text(self.controller_config())
        self.progress("controller: splicectl run (P4Runtime primary, CPU port 255)")
        argv = [str(BIN / "splicectl"), "--config", str(path), "run", "--metrics-port", "-1"]
        proc = self._spawn("controller", argv, marker=str(path))
        self._poll(lambda: self._admin_ok(), timeout, "the controller's admin socket", proc)

    def _admin_ok(self) -> bool:
        try:
            self.admin("status", timeout=2.0)
        except (OSError, LabError, ValueError):
            return False
        return True

    def kill_controller(self, sig: int = signal.SIGKILL) -> None:
        proc = self.procs.pop("controller")
        proc.popen.send_signal(sig)
        proc.popen.wait(30)

    # --- the proxy ------------------------------------------------------------------------------

    def proxy_config(self) -> str:
        lines = ["[proxy]", f'name = "{self.spec.proxy_name}"', f'controller = "{self.proxy_socket}"',
                 f"switch_port = {PROXY_PORT}", f'mac = "{self.proxy.mac}"', f'address = "{self.proxy.ip}"',
                 f"heartbeat_ms = {self.spec.heartbeat_ms}",
                 'log_format = "json"', f'log_level = "{self.spec.proxy_log_level}"', "metrics_interval_s = 0",
                 "", "[namespace]", f'interfaces = ["{self.proxy.ifname}"]', "table = 100", "", "[limits]",
                 "shutdown_grace_s = 1.0", "max_connections = 4096"]
        # The upstream leg's SYN-ACK comes from the controller: in a burst of 1,000 handshakes on
        # two vCPUs (Python switch and controller) the last ones wait longer than the default 5 s.
        limits = {"connect_timeout_s": 30.0, **self.spec.proxy_limits}
        lines += [f"{k} = {_toml(v)}" for k, v in limits.items()]
        for svc in self.spec.services:
            lines += ["", "[[service]]", f'name = "{svc.name}"', f'listen = "0.0.0.0:{svc.port}"',
                      f'policy = "{svc.policy}"']
            if svc.after_bytes is not None:
                lines.append(f"after_bytes = {svc.after_bytes}")
            if svc.set_headers:
                lines.append("set_headers = { " + ", ".join(f'"{k}" = {_toml(v)}' for k, v in svc.set_headers) + " }")
        return "\n".join(lines) + "\n"

    def start_proxy(self, timeout: float = 30.0) -> None:
        path = self.run_dir / "proxy.toml"
        path.write_text(self.proxy_config())
        self.progress(f"proxy: splice-proxy in the proxy host's namespace on switch port {PROXY_PORT}, "
                      + ", ".join(f"{s.name}:{s.port}" for s in self.spec.services))
        argv = [netdev._tool("ip"), "netns", "exec", self.proxy.netns, str(BIN / "splice-proxy"), "--config", str(path)]
        started = time.monotonic()
        proc = self._spawn("proxy", argv, marker=str(path), capture_stderr=True)
        # This process's own "registered" line: the controller may still list a killed
        # predecessor under the same name until its heartbeat deadline.
        self._poll(lambda: self._registered_since(started), timeout, "the proxy to register with the controller", proc)

    def _registered_since(self, t: float) -> bool:
        with self._events_lock:
            return any(e.t >= t and str(e.record.get("message", "")).startswith("registered with")
                       for e in self.proxy_events)

    def proxy_registered(self) -> bool:
        try:
            status = self.admin("status", timeout=2.0)
        except (OSError, LabError, ValueError):
            return False
        return any(p.get("name") == self.spec.proxy_name for p in status.get("proxies", []))

    def kill_proxy(self, sig: int = signal.SIGKILL) -> None:
        proc = self.procs.pop("proxy")
        proc.popen.send_signal(sig)
        proc.popen.wait(30)

    def proxy_alive(self) -> bool:
        proc = self.procs.get("proxy")
        return proc is not None and proc.popen.poll() is None

    def controller_alive(self) -> bool:
        proc = self.procs.get("controller")
        return proc is not None and proc.popen.poll() is None

    def events(self, name: str | None = None) -> list[ProxyEvent]:
        """The proxy's log records so far (of every proxy process of this lab), by ``event``."""
        with self._events_lock:
            return [e for e in self.proxy_events if name is None or e.event == name]

    # --- tools ----------------------------------------------------------------------------------

    def splicectl(self, *args: str, json_out: bool = False, check: bool = True,
                  timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        argv = [str(BIN / "splicectl"), "--grpc-addr", self.grpc_addr, *args, *(["--json"] if json_out else [])]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        if check and proc.returncode != 0:
            raise LabError(f"splicectl {' '.join(args)}: {proc.stderr.strip() or proc.returncode}")
        return proc

    def flows(self) -> dict[str, Any]:
        """``splicectl flows --json``: the switch's flows table, grouped per connection."""
        return json.loads(self.splicectl("flows", json_out=True).stdout)

    def admin(self, op: str, timeout: float = 10.0, **args: Any) -> dict[str, Any]:
        """One request on the controller's admin socket (blocking; JSON lines)."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(self.admin_socket))
            sock.sendall(json.dumps({"id": 1, "op": op, **args}).encode() + b"\n")
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    raise LabError(f"admin {op}: the controller closed the connection")
                buf += chunk
        reply = json.loads(buf)
        if not reply.get("ok"):
            raise LabError(f"admin {op}: {reply.get('error')}")
        return reply["result"]

    def sysctl(self, host: Host, key: str, value: str | int) -> str:
        """Set a sysctl in ``host``'s namespace (``heal`` puts it back); returns the value it had."""
        old = netdev.run(["sysctl", "-n", key], netns=host.netns).stdout.strip()
        self._sysctls.setdefault((host.netns, key), old)
        netdev.run(["sysctl", "-qw", f"{key}={value}"], netns=host.netns)
        return old

    def cut(self, host: Host, cut: bool = True) -> None:
        """Pull ``host``'s cable out of the switch, or plug it back in (``cut=False``).

        The host's own end goes down, inside its namespace: the switch's port stays
        administratively up and loses carrier, as a switch port does when its cable is pulled,
        and frames the switch sends there are lost. (The switch's end is left alone: while any of
        its interfaces is down, simple_switch_grpc forwards nothing on any port; docs/bmv2.md.)
        Plugging in again brings the host's end up and puts back what the kernel dropped with
        it: its default route and its permanent neighbour entry for the gateway."""
        if cut:
            self._cut[host.name] = host
            assert self.topo is not None
            self.topo.link_down(host.ifname, netns=host.netns)
        else:
            self._cut.pop(host.name, None)
            self._plug(host)

    def _plug(self, host: Host) -> None:
        assert self.topo is not None
        self.topo.link_up(host.ifname, netns=host.netns)
        self.topo.add_route("default", via=host.gateway, netns=host.netns)
        self.topo.add_neighbor(host.gateway, SWITCH_MAC, host.ifname, netns=host.netns)

    def heal(self) -> None:
        """Back to the state ``up`` left: cables plugged back in, sysctls and netem undone,
        impairments back to LabSpec.impair's, a dead controller or proxy started again (and the
        proxy registered)."""
        for host in list(self._cut.values()):
            self.cut(host, cut=False)
        for (ns, key), value in self._sysctls.items():
            netdev.run(["sysctl", "-qw", f"{key}={value}"], netns=ns)
        self._sysctls.clear()
        for host in {h.name: h for h, _ in self._netem}.values():
            self.netem(host, None)
        self._netem.clear()
        if self.relay is not None:
            for name, spec in self.spec.impair.items():
                self.relay.set(name, spec)
        if not self.controller_alive():
            self.procs.pop("controller", None)
            self.start_controller()
        if not self.proxy_alive():
            dead = self.procs.pop("proxy", None)
            if dead is not None:
                # Let the controller finish with the dead one first (its heartbeat deadline):
                # a new process under the same name would otherwise inherit its registration,
                # and the connections of the next test would meet its declared death half-way.
                self._poll(lambda: not self.proxy_registered(), 3 * self.spec.heartbeat_ms / 1000 + 10,
                           "the controller to declare the killed proxy dead", self.procs["controller"])
            self.start_proxy()
        else:
            self._poll(self.proxy_registered, 30, "the proxy to register with the controller", self.procs["proxy"])

    def netem(self, host: Host, spec: str | None) -> None:
        """tc netem ``spec`` (e.g. "delay 2ms 1ms loss 1%") on both ends of ``host``'s cable, or
        none (None)."""
        if spec:
            self._netem.append((host, spec))
        for ifname, ns in ((host.ifname, host.netns), (host.switch_if, None)):
            netdev.run(["tc", "qdisc", "del", "dev", ifname, "root"], netns=ns, check=False)
            if spec:
                try:
                    netdev.run(["tc", "qdisc", "add", "dev", ifname, "root", "netem", *spec.split()], netns=ns)
                except netdev.NetdevError as exc:
                    raise NetemUnavailable(f"tc netem refused by this kernel: {exc.stderr or exc}") from exc

    # --- teardown -------------------------------------------------------------------------------

    def down(self) -> None:
        """Stop the proxy, the controller and the switch (in that order), remove the namespaces
        and links and the run directory. Safe to call twice and after a partial ``up``."""
        for name in ("proxy", "controller", "switch"):
            proc = self.procs.pop(name, None)
            if proc is not None:
                stop(proc.popen, grace=5)
        for proc in list(self.procs.values()):
            stop(proc.popen, grace=5)
        self.procs.clear()
        for t in self._readers:
            t.join(5)
        self._readers.clear()
        self.relay = None
        self._relay_cables.clear()
        if self.topo is not None:
            self.topo.close()
            self.topo = None
        shutil.rmtree(self.run_dir, ignore_errors=True)

    # --- helpers --------------------------------------------------------------------------------

    def _spawn(self, name: str, argv: list[str], marker: str, capture_stderr: bool = False) -> _Proc:
        log_path = self.log_dir / f"{name}.log"
        logf: TextIO = open(log_path, "a")  # noqa: SIM115 - handed to the child, closed below
        logf.write(f"--- {time.strftime('%H:%M:%S')} {' '.join(argv)}\n")
        logf.flush()
        try:
            popen = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf,
                                     stderr=subprocess.PIPE if capture_stderr else logf,
                                     start_new_session=True)  # Ctrl-C reaches us; we stop them in order
        finally:
            if not capture_stderr:
                logf.close()
        proc = _Proc(name, popen, argv, marker, log_path)
        self.procs[name] = proc
        self._write_pids()
        if capture_stderr:
            t = threading.Thread(target=self._read_events, args=(popen, logf), name=f"{name} log", daemon=True)
            t.start()
            self._readers.append(t)
        return proc

    def _read_events(self, popen: subprocess.Popen[bytes], logf: TextIO) -> None:
        assert popen.stderr is not None
        try:
            for raw in popen.stderr:
                line = raw.decode(errors="replace")
                logf.write(line)
                logf.flush()
                if line.startswith("{"):
                    with contextlib.suppress(ValueError):
                        ev = ProxyEvent(time.monotonic(), json.loads(line))
                        with self._events_lock:
                            self.proxy_events.append(ev)
        finally:
            logf.close()

    def _write_pids(self) -> None:
        entries = [{"name": p.name, "pid": p.popen.pid, "marker": p.marker} for p in self.procs.values()]
        with contextlib.suppress(OSError):
            (self.run_dir / "pids.json").write_text(json.dumps(entries))

    def _poll(self, check: Callable[[], bool], timeout: float, what: str, proc: _Proc) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if proc.popen.poll() is not None:
                raise LabError(f"{proc.name} exited with status {proc.popen.returncode} while waiting for {what} "
                               f"(see {proc.log_path}):\n{_tail(proc.log_path)}")
            if time.monotonic() > deadline:
                raise LabError(f"timed out after {timeout}s waiting for {what} (see {proc.log_path})")
            time.sleep(0.05)  # polling interval of a readiness check with a deadline


def _tail(path: Path, lines: int = 15) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, Sequence):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")


def check_toml(text: str) -> dict[str, Any]:
    """Parse what the lab wrote (used by tests of the config writers)."""
    return tomllib.loads(text)


@contextlib.contextmanager
def lab(spec: LabSpec | None = None, progress: Callable[[str], None] | None = None) -> Iterator[Lab]:
    with Lab(spec, progress) as the_lab:
        yield the_lab
