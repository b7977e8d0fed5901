"""The offload benchmark (``make bench-offload``): proxy-host CPU seconds per connection and
per GB when the proxy splices itself out, against the same proxy never splicing and against HAProxy
(Debian's package) as a transparent proxy on the same host, with and without kernel splice(); the
end-to-end throughput of each and new connections per second through the whole path.

Everything runs in the lab (``topology.Lab``): real kernel TCP between client and server namespaces
through the switch. For each configuration and size, ``count`` downloads (``--direction up``:
uploads) run with ``--parallel`` in flight; the CPU time (utime + stime, plus waited-for children)
of the proxy process, the switch and the controller is read from ``/proc/<pid>/stat`` before and
after, together with the whole machine's busy and softirq time from ``/proc/stat``. Every connection
is checked byte for byte (sha256 against what the server sent or received): a run that corrupts is
an error, not a figure. The switch (p4sim, Python) stands in for hardware, so its CPU is reported
apart and never added to the proxy host's.

    python -m p4splice.bench.offload --sizes 1 10 100 --counts 10 4 2 \\
        --out-json build/offload.json --plot-dir docs
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import signal
import statistics
import sys
import time
import tomllib
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from p4splice.controller.argtypes import int_at_least, positive_float
from p4splice.lab import haproxy as hap
from p4splice.lab import netdev
from p4splice.lab.topology import PROXY_PORT, SWITCH_MAC, Lab, LabError, LabSpec, Service
from p4splice.lab.traffic import TrafficServer, expected_download_sha, transfer

from p4sim.launch import stop

log = logging.getLogger("p4splice.bench.offload")

MB = 1_000_000
GB = 1_000_000_000
HZ = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
BASELINE_PORT = 9001  # HAProxy's port on the VIPs and the servers: deliberately not a splice service


@dataclass(frozen=True)
class Config:
    """One way of putting a proxy in the path."""

    name: str
    proxy: str  # "splice-proxy" or "haproxy"
    service: str = ""  # splice-proxy: the lab service (policy) the clients use
    splice: bool = False  # haproxy: kernel splice()
    what: str = ""


CONFIGS: dict[str, Config] = {c.name: c for c in (
    Config("spliced", "splice-proxy", service="inspect",
           what="splice-proxy, inspect policy: reads the request head, then splices itself out"),
    Config("spliced-early", "splice-proxy", service="after-bytes",
           what="splice-proxy, after-bytes policy (64): splices inside the request head, before the server answers"),
    Config("never", "splice-proxy", service="never", what="splice-proxy, never policy: a plain transparent proxy"),
    Config("haproxy", "haproxy", splice=False, what="HAProxy, transparent on a VIP, no splicing (nosplice)"),
    Config("haproxy-splice", "haproxy", splice=True,
           what="HAProxy, transparent on a VIP, kernel splice() (splice-request/splice-response)"),
)}


# --- CPU accounting (pure) ------------------------------------------------------------------------

@dataclass(frozen=True)
class CpuTimes:
    """CPU seconds of one process: its own (all threads) and its waited-for children's."""

    user: float = 0.0
    system: float = 0.0
    children_user: float = 0.0
    children_system: float = 0.0

    @property
    def total(self) -> float:
        return self.user + self.system + self.children_user + self.children_system

    def __sub__(self, other: CpuTimes) -> CpuTimes:
        return CpuTimes(self.user - other.user, self.system - other.system,
                        self.children_user - other.children_user, self.children_system - other.children_system)

    def __add__(self, other: CpuTimes) -> CpuTimes:
        return CpuTimes(self.user + other.user, self.system + other.system,
                        self.children_user + other.children_user, self.children_system + other.children_system)


def parse_stat(text: str, hz: int = HZ) -> CpuTimes:
    """``/proc/<pid>/stat``: fields 14-17 (utime, stime, cutime, cstime) in clock ticks. The command
    name (field 2) is in parentheses and may itself contain spaces and parentheses, so the fields
    are counted from the *last* ``)``."""
    end = text.rfind(")")
    if end < 0:
        raise ValueError("not a /proc/<pid>/stat line (no ')')")
    rest = text[end + 1:].split()
    # rest[0] is field 3 (state): utime is field 14, so rest[11]
    if len(rest) < 15:
        raise ValueError(f"not a /proc/<pid>/stat line ({len(rest) + 2} fields)")
    utime, stime, cutime, cstime = (int(v) for v in rest[11:15])
    return CpuTimes(utime / hz, stime / hz, cutime / hz, cstime / hz)


def read_cpu(pid: int, proc_root: str = "/proc", hz: int = HZ) -> CpuTimes:
    """The CPU times of a live process; raises OSError when it is gone."""
    return parse_stat(Path(f"{proc_root}/{pid}/stat").read_text(), hz)


def read_runtime(pid: int, proc_root: str = "/proc") -> float:
    """On-CPU seconds of a live process to the nanosecond: the first field of
    ``/proc/<pid>/task/<tid>/schedstat``, summed over its threads. /proc/<pid>/stat counts in
    clock ticks (10 ms): too coarse for a spliced connection's few milliseconds. Threads that
    exited are not counted here (they are in /proc/<pid>/stat); raises OSError when it is gone."""
    total = 0
    tasks = Path(f"{proc_root}/{pid}/task")
    for task in tasks.iterdir():
        with contextlib.suppress(OSError, ValueError, IndexError):
            total += int((task / "schedstat").read_text().split()[0])
    return total / 1e9


@dataclass(frozen=True)
class MachineCpu:
    """Whole-machine CPU seconds (all CPUs) from ``/proc/stat``."""

    busy: float = 0.0  # user + nice + system + irq + softirq + steal
    softirq: float = 0.0

    def __sub__(self, other: MachineCpu) -> MachineCpu:
        return MachineCpu(self.busy - other.busy, self.softirq - other.softirq)


def parse_proc_stat(text: str, hz: int = HZ) -> MachineCpu:
    for line in text.splitlines():
        if line.startswith("cpu "):
            v = [int(x) for x in line.split()[1:]] + [0] * 10
            user, nice, system, _idle, _iowait, irq, softirq, steal = v[:8]
            return MachineCpu((user + nice + system + irq + softirq + steal) / hz, softirq / hz)
    raise ValueError("no 'cpu ' line in /proc/stat")


def read_machine(proc_root: str = "/proc", hz: int = HZ) -> MachineCpu:
    return parse_proc_stat(Path(f"{proc_root}/stat").read_text(), hz)


def kernel_threads(prefix: str, proc_root: str = "/proc") -> tuple[int, ...]:
    """The pids whose command name starts with ``prefix`` (e.g. the per-CPU ``ksoftirqd/N``)."""
    found = []
    for comm in Path(proc_root).glob("[0-9]*/comm"):
        with contextlib.suppress(OSError):
            if comm.read_text().startswith(prefix):
                found.append(int(comm.parent.name))
    return tuple(sorted(found))


class Meter:
    """Samples the CPU of named processes (and the machine) so that a run is ``after - before``.
    A name may stand for several pids (summed), e.g. every CPU's ksoftirqd."""

    def __init__(self, pids: Mapping[str, int | Sequence[int]], proc_root: str = "/proc") -> None:
        self.pids = {k: (v,) if isinstance(v, int) else tuple(v) for k, v in pids.items()}
        self.proc_root = proc_root

    def sample(self) -> Sample:
        procs, runtime = {}, {}
        for name, pids in self.pids.items():
            procs[name], runtime[name] = CpuTimes(), 0.0
            for pid in pids:
                try:
                    procs[name] = procs[name] + read_cpu(pid, self.proc_root)
                    runtime[name] += read_runtime(pid, self.proc_root)
                except OSError as exc:
                    raise BenchError(f"{name} (pid {pid}) is gone: {exc}") from exc
        return Sample(procs, runtime, read_machine(self.proc_root))

    @staticmethod
    def delta(before: Sample, after: Sample) -> tuple[dict[str, float], dict[str, float], MachineCpu]:
        """(stat CPU seconds, schedstat seconds, machine) between two samples, per process."""
        return ({k: (after.stat[k] - before.stat[k]).total for k in before.stat},
                {k: after.runtime[k] - before.runtime[k] for k in before.runtime}, after.machine - before.machine)


@dataclass(frozen=True)
class Sample:
    stat: dict[str, CpuTimes]
    runtime: dict[str, float]
    machine: MachineCpu


class BenchError(RuntimeError):
    """The benchmark cannot go on (a process died, a transfer was not byte-exact, ...)."""


# --- results and figures (pure) -------------------------------------------------------------------

@dataclass
class Run:
    """One batch: ``connections`` transfers of ``size`` bytes each through one configuration."""

    config: str
    kind: str  # "bulk" or "cps"
    direction: str  # "down" or "up"
    size: int
    connections: int
    parallel: int
    wall_s: float
    cpu_s: dict[str, float]  # /proc/<pid>/stat: proxy, switch, controller, bench (clients and servers)
    machine_busy_s: float
    softirq_s: float
    conn_seconds: list[float] = field(default_factory=list)  # per connection: connect -> last byte
    spliced: int | None = None  # splice-proxy: connections it spliced out (its "spliced" log records)
    runtime_s: dict[str, float] = field(default_factory=dict)  # the same from schedstat (ns resolution)
    idle_s: dict[str, float] = field(default_factory=dict)  # what each would have used idle for wall_s
    note: str = ""

    def cpu(self, name: str) -> float:
        """The figure's CPU seconds of ``name``: schedstat's (ns) where measured, else /proc/<pid>/stat's."""
        if name in self.runtime_s:
            return self.runtime_s[name]
        return self.cpu_s.get(name, 0.0)


def figures(run: Run) -> dict[str, float]:
    """The derived figures of one run."""
    moved = run.size * run.connections
    gb = moved / GB
    n = max(run.connections, 1)
    per_conn = [run.size * 8 / s / 1e6 for s in run.conn_seconds if s > 0]
    out = {
        "bytes": float(moved),
        "proxy_cpu_ms_per_conn": run.cpu("proxy") * 1000 / n,
        "switch_cpu_ms_per_conn": run.cpu("switch") * 1000 / n,
        "controller_cpu_ms_per_conn": run.cpu("controller") * 1000 / n,
        # of the proxy's figure, what it spends idle (its heartbeat) over the run's wall time
        "proxy_idle_ms_per_conn": run.idle_s.get("proxy", 0.0) * 1000 / n,
        "aggregate_mbps": moved * 8 / run.wall_s / 1e6 if run.wall_s > 0 else 0.0,
        "per_conn_mbps": statistics.fmean(per_conn) if per_conn else 0.0,
        "conns_per_s": run.connections / run.wall_s if run.wall_s > 0 else 0.0,
    }
    for name in ("proxy", "switch", "controller", "bench", "ksoftirqd"):
        out[f"{name}_cpu_s_per_gb"] = run.cpu(name) / gb if gb > 0 else 0.0
    out["machine_cpu_s_per_gb"] = run.machine_busy_s / gb if gb > 0 else 0.0
    out["softirq_s_per_gb"] = run.softirq_s / gb if gb > 0 else 0.0
    return out


def verify(results: Sequence[Any], records: Iterable[Any], direction: str, transparent: bool = False) -> list[str]:
    """Byte-exact check of a batch: every client result must have moved all its bytes, and each
    must match (sha256) a distinct server record. Matched by digest, not by address: through
    HAProxy the server sees the proxy's address and port, not the client's. Where the server sees
    the client's own port (``transparent``: splice-proxy), a download that matches no record is
    also checked against the stream the server derives from that port, which tells bytes that
    are wrong from a server record that is missing."""
    problems = []
    pool: Counter[str] = Counter()
    by_peer = {}
    for rec in records:
        pool[rec.sent_sha if direction == "down" else rec.received_sha] += 1
        by_peer[tuple(rec.peer)] = rec
    for r in results:
        name = f"{r.local[0]}:{r.local[1]}->{r.server[0]}:{r.server[1]}"
        if r.error:
            problems.append(f"{name}: {r.error}")
            continue
        want, got, sha = ((r.download, r.received, r.received_sha) if direction == "down"
                          else (r.upload, r.sent, r.sent_sha))
        if got != want:
            problems.append(f"{name}: {got} of {want} bytes")
        elif pool[sha] <= 0:
            what = f"{name}: sha256 {sha[:16]}... matches nothing the server {'sent' if direction == 'down' else 'received'}"
            if transparent and direction == "down":
                if sha == expected_download_sha(r):
                    rec = by_peer.get(tuple(r.local))
                    seen = (f"sent {rec.sent} bytes, error {rec.error or 'none'}, its handler "
                            f"{'done' if rec.done.is_set() else 'still running'}" if rec is not None
                            else "no record of the connection")
                    what += f": the bytes are right, the server's record is not ({seen})"
                else:
                    what += ": the bytes differ from the server's stream"
            problems.append(what)
        else:
            pool[sha] -= 1
    return problems


def _fmt(v: float, digits: int = 2) -> str:
    if v >= 100:
        return f"{v:,.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.{digits}f}"


def bulk_table(runs: Sequence[Run]) -> str:
    head = ("| configuration | MB/conn | dir | conns | proxy CPU ms/conn | of which idle | proxy CPU s/GB | "
            "switch CPU s/GB | controller CPU ms/conn | ksoftirqd s/GB | machine busy s/GB | softirq s/GB | Mbit/s per conn | "
            "Mbit/s aggregate | spliced |")
    lines = [head, "|---|" + "---:|" * 13 + "---|"]
    for r in runs:
        if r.kind != "bulk":
            continue
        f = figures(r)
        lines.append(
            f"| {r.config} | {_fmt(r.size / MB)} | {r.direction} | {r.connections} | {_fmt(f['proxy_cpu_ms_per_conn'])} | "
            f"{_fmt(f['proxy_idle_ms_per_conn'])} | {_fmt(f['proxy_cpu_s_per_gb'])} | {_fmt(f['switch_cpu_s_per_gb'])} | "
            f"{_fmt(f['controller_cpu_ms_per_conn'])} | {_fmt(f['ksoftirqd_cpu_s_per_gb'])} | {_fmt(f['machine_cpu_s_per_gb'])} | "
            f"{_fmt(f['softirq_s_per_gb'])} | {_fmt(f['per_conn_mbps'], 1)} | {_fmt(f['aggregate_mbps'], 1)} | "
            f"{'-' if r.spliced is None else f'{r.spliced}/{r.connections}'} |")
    return "\n".join(lines)


def cps_table(runs: Sequence[Run]) -> str:
    lines = ["| configuration | conns | in flight | bytes each | conn/s | proxy CPU ms/conn | switch CPU ms/conn | "
             "controller CPU ms/conn | spliced |", "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in runs:
        if r.kind != "cps":
            continue
        f = figures(r)
        lines.append(f"| {r.config} | {r.connections} | {r.parallel} | {r.size} | {_fmt(f['conns_per_s'], 1)} | "
                     f"{_fmt(f['proxy_cpu_ms_per_conn'])} | {_fmt(f['switch_cpu_ms_per_conn'])} | "
                     f"{_fmt(f['controller_cpu_ms_per_conn'])} | "
                     f"{'-' if r.spliced is None else f'{r.spliced}/{r.connections}'} |")
    return "\n".join(lines)


def idle_table(idle: Mapping[str, Mapping[str, float]]) -> str:
    lines = ["| configuration | proxy CPU % | switch CPU % | controller CPU % |", "|---|---:|---:|---:|"]
    for name, pct in idle.items():
        lines.append(f"| {name} | {pct.get('proxy', 0):.2f} | {pct.get('switch', 0):.2f} | {pct.get('controller', 0):.2f} |")
    return "\n".join(lines)


def series(runs: Sequence[Run], key: str, direction: str = "down") -> dict[str, list[tuple[float, float]]]:
    """Per configuration, (MB per connection, figure ``key``) of the bulk runs, by size."""
    out: dict[str, list[tuple[float, float]]] = {}
    for r in runs:
        if r.kind == "bulk" and r.direction == direction:
            out.setdefault(r.config, []).append((r.size / MB, figures(r)[key]))
    return {k: sorted(v) for k, v in out.items()}


def to_json(runs: Sequence[Run], meta: Mapping[str, Any]) -> dict[str, Any]:
    return {"meta": dict(meta),
            "runs": [dataclasses.asdict(r) | {"figures": figures(r)} for r in runs]}


def from_json(doc: Mapping[str, Any]) -> tuple[list[Run], dict[str, Any]]:
    """What ``to_json`` wrote, back (the figures are derived again, not read)."""
    names = {f.name for f in dataclasses.fields(Run)}
    try:
        runs = [Run(**{k: v for k, v in r.items() if k in names}) for r in doc["runs"]]
    except (KeyError, TypeError) as exc:
        raise ValueError(f"not an offload benchmark result: {exc}") from None
    meta = dict(doc.get("meta", {}))
    for run in runs:  # results saved before runs carried idle_s: from the configuration's idle rate
        if not run.idle_s and run.config in meta.get("idle_cpu_percent", {}):
            run.idle_s = {k: pct / 100 * run.wall_s for k, pct in meta["idle_cpu_percent"][run.config].items()}
    return runs, meta


# --- plots ----------------------------------------------------------------------------------------

STYLE = {"spliced": ("tab:green", "o"), "spliced-early": ("tab:olive", "D"), "never": ("tab:red", "s"), "haproxy": ("tab:blue", "^"),
         "haproxy-splice": ("tab:purple", "v")}


def plot(runs: Sequence[Run], out_dir: Path, subtitle: str = "") -> list[Path]:
    """PNGs of the figures in ``out_dir``; [] (and a note) without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("note: matplotlib is not installed (pip install -e '.[bench]'): no plots")
        return []
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    # downloads, or uploads where a run had none
    direction = "down" if any(r.direction == "down" for r in runs if r.kind == "bulk") else "up"

    def lines(ax: Any, key: str, ylabel: str, title: str, logy: bool = False) -> None:
        for name, pts in series(runs, key, direction).items():
            color, marker = STYLE.get(name, ("tab:gray", "x"))
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=marker, color=color, label=name)
        ax.set_xscale("log")
        sizes = sorted({r.size / MB for r in runs if r.kind == "bulk"})
        ax.set_xticks(sizes, [f"{s:g}" for s in sizes])
        ax.minorticks_off()
        if logy:
            ax.set_yscale("log")
        ax.set_xlabel(f"MB per connection ({'download' if direction == 'down' else 'upload'})")
        ax.set_ylabel(ylabel)
        ax.set_title(title, fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        ax.set_ylim(bottom=None if logy else 0)

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.2))
    lines(a1, "proxy_cpu_s_per_gb", "CPU seconds per GB (log)", "proxy host: proxy process CPU per GB", logy=True)
    lines(a2, "switch_cpu_s_per_gb", "CPU seconds per GB", "switch (p4sim, stands in for hardware), apart")
    fig.suptitle("Offload: CPU per GB moved" + (f" -- {subtitle}" if subtitle else ""), fontsize=11)
    fig.tight_layout()
    written.append(out_dir / "offload-cpu-per-gb.png")
    fig.savefig(written[-1], dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    # Where the proxy's idle cost (its heartbeat over the run's wall time) is a visible share of a
    # figure, the same figure without it, dashed: what the connections themselves cost.
    for name, pts in series(runs, "proxy_cpu_ms_per_conn", direction).items():
        idle = dict(series(runs, "proxy_idle_ms_per_conn", direction).get(name, []))
        if any(idle.get(x, 0.0) > 0.05 * y for x, y in pts):
            color, marker = STYLE.get(name, ("tab:gray", "x"))
            ax.plot([x for x, _ in pts], [y - idle.get(x, 0.0) for x, y in pts], linestyle="--", marker=marker,
                    markerfacecolor="none", color=color, label=f"{name}, less its idle heartbeat")
    lines(ax, "proxy_cpu_ms_per_conn", "CPU milliseconds per connection (log)",
          "proxy host: proxy process CPU per connection", logy=True)
    fig.suptitle("Offload: CPU per connection" + (f" -- {subtitle}" if subtitle else ""), fontsize=11)
    fig.tight_layout()
    written.append(out_dir / "offload-cpu-per-conn.png")
    fig.savefig(written[-1], dpi=110)
    plt.close(fig)

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.2))
    lines(a1, "aggregate_mbps", "Mbit/s (all connections together)", "end-to-end throughput")
    cps = [r for r in runs if r.kind == "cps"]
    names = [r.config for r in cps]
    rates = [figures(r)["conns_per_s"] for r in cps]
    bars = a2.bar(names, rates, color=[STYLE.get(n, ("tab:gray", ""))[0] for n in names])
    a2.bar_label(bars, labels=[f"{v:.0f}" if v >= 10 else f"{v:.1f}" for v in rates], fontsize=9)
    if any(v > 0 for v in rates):
        a2.set_yscale("log")  # the controller-bound and the switch-only rates differ ~30x
    else:
        a2.text(0.5, 0.5, "no connections/s test in this run", ha="center", transform=a2.transAxes)
        a2.set_xticks([])
        a2.set_yticks([])
    if cps:
        a2.set_title(f"new connections per second ({cps[0].connections} x {cps[0].size} B, "
                     f"{cps[0].parallel} in flight)", fontsize=10)
    a2.set_ylabel("connections/s")
    a2.grid(True, axis="y", alpha=0.3)
    fig.suptitle("Offload: throughput through the whole path" + (f" -- {subtitle}" if subtitle else ""), fontsize=11)
    fig.tight_layout()
    written.append(out_dir / "offload-throughput.png")
    fig.savefig(written[-1], dpi=110)
    plt.close(fig)
    return written


# --- arguments ------------------------------------------------------------------------------------

class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, not usage + error
        self.exit(2, f"{self.prog}: error: {message}\n")


DEFAULT_COUNTS = {1.0: 10, 10.0: 4, 100.0: 2}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = _Parser(prog="p4splice.bench.offload", description=__doc__.splitlines()[0])
    ap.add_argument("--configs", nargs="+", default=list(CONFIGS), metavar="NAME",
                    help=f"configurations, of {', '.join(CONFIGS)} (default: all)")
    ap.add_argument("--sizes", nargs="+", type=positive_float, default=[1.0, 10.0, 100.0], metavar="MB",
                    help="MB per connection (default 1 10 100)")
    ap.add_argument("--counts", nargs="+", type=int_at_least(1), metavar="N",
                    help="connections per size, one per --sizes entry, or one for all (default 10 4 2 "
                         "for 1 10 100 MB; otherwise 100 MB / size, between 1 and 10)")
    ap.add_argument("--parallel", type=int_at_least(1), default=2, help="transfers in flight (default 2)")
    ap.add_argument("--direction", choices=("down", "up", "both"), default="down",
                    help="downloads (server to client, default), uploads, or both")
    ap.add_argument("--cps", type=int_at_least(0), default=200,
                    help="connections of the connections/s test (default 200; 0 skips it)")
    ap.add_argument("--cps-parallel", type=int_at_least(1), default=4, help="in flight there (default 4)")
    ap.add_argument("--cps-bytes", type=int_at_least(1), default=1000, help="response bytes there (default 1000)")
    ap.add_argument("--idle-s", type=float, default=5.0, help="idle CPU measured this long per configuration (0: no)")
    ap.add_argument("--haproxy", default=None, help="the haproxy binary (default: PATH, then /usr/sbin)")
    ap.add_argument("--haproxy-mode", choices=("http", "tcp"), default="http",
                    help="HAProxy as an L7 (http, default) or L4 (tcp) proxy")
    ap.add_argument("--out-json", type=Path, default=Path("build/offload.json"), help="raw results (default build/offload.json)")
    ap.add_argument("--plot-dir", type=Path, default=Path("docs"),
                    help="where the PNGs go (default docs); --no-plot for none")
    ap.add_argument("--no-plot", action="store_true")
    ap.add_argument("--replot", type=Path, metavar="JSON",
                    help="no lab: print the tables and redraw the plots of a saved --out-json")
    ap.add_argument("--controller", action="append", default=[], metavar="KEY=VALUE", type=_controller_option,
                    help="a [controller] setting of the lab's controller, as TOML (e.g. held_segments=\"controller\"); "
                         "repeatable")
    ap.add_argument("--build-dir", type=Path, default=Path("build"))
    ap.add_argument("--log-dir", type=Path, default=Path("logs"))
    ap.add_argument("--target", default=os.environ.get("TARGET", "p4sim"), choices=("p4sim", "bmv2"))
    args = ap.parse_args(argv)
    unknown = [c for c in args.configs if c not in CONFIGS]
    if unknown:
        ap.error(f"unknown configuration {unknown[0]!r} (choose from {', '.join(CONFIGS)})")
    args.configs = list(dict.fromkeys(args.configs))
    if args.counts is None:
        args.counts = [DEFAULT_COUNTS.get(s, max(1, min(10, round(100 / s)))) for s in args.sizes]
    elif len(args.counts) == 1:
        args.counts = args.counts * len(args.sizes)
    elif len(args.counts) != len(args.sizes):
        ap.error(f"--counts has {len(args.counts)} values for {len(args.sizes)} --sizes (give one, or one per size)")
    if args.idle_s < 0:
        ap.error("--idle-s must be >= 0")
    args.directions = ["down", "up"] if args.direction == "both" else [args.direction]
    return args


# --- running it in the lab ------------------------------------------------------------------------

def say(msg: str) -> None:
    print(msg, flush=True)


class OffloadLab(Lab):
    """The lab plus one route: the VIP range to the proxy port, written with ``splicectl routes add``
    before the controller starts (afterwards a write would need the controller's primary role). It
    is a plain route, not a service: the controller never sees its packets."""

    def _program_switch(self) -> None:
        super()._program_switch()
        self.splicectl("routes", "add", hap.VIP_NET, str(PROXY_PORT), "--smac", SWITCH_MAC, "--dmac", self.proxy.mac)


class Bench:
    """Runs the configurations in one lab; ``runs`` collects the results."""

    def __init__(self, lab: Lab, args: argparse.Namespace, haproxy_bin: str | None) -> None:
        self.lab = lab
        self.args = args
        self.haproxy_bin = haproxy_bin
        self.runs: list[Run] = []
        self.idle: dict[str, dict[str, float]] = {}
        self.notes: dict[str, str] = {}
        self._idle_rate: dict[str, float] = {}

    # the processes whose CPU is measured
    def pids(self, proxy_name: str) -> dict[str, int | tuple[int, ...]]:
        procs = self.lab.procs
        # ksoftirqd: packet processing the kernel defers (under load) runs there, charged to no
        # process of ours; otherwise it is charged to whichever process was on the CPU
        return {"proxy": procs[proxy_name].popen.pid, "switch": procs["switch"].popen.pid,
                "controller": procs["controller"].popen.pid, "bench": os.getpid(),
                "ksoftirqd": kernel_threads("ksoftirqd/")}

    async def run(self) -> None:
        baseline = Service("baseline", BASELINE_PORT, "never")
        if any(CONFIGS[c].proxy == "haproxy" for c in self.args.configs) and self.haproxy_bin:
            # The proxy namespace delivers what arrives for the VIP range locally (OffloadLab
            # routed the range to the proxy port).
            for cmd in hap.policy_routing_commands(self.lab.proxy.ifname):
                netdev.run(["ip", *cmd], netns=self.lab.proxy.netns, check=cmd[1] != "del")
        for name in self.args.configs:
            cfg = CONFIGS[name]
            if cfg.proxy == "haproxy" and not self.haproxy_bin:
                continue
            say(f"\n== {name}: {cfg.what} ==")
            await self._config(cfg, baseline)

    async def _config(self, cfg: Config, baseline: Any) -> None:
        self._idle_rate = {}
        server = self.lab.servers[0]
        if cfg.proxy == "haproxy":
            proc_name = self._start_haproxy(cfg)
            service = baseline
            target = dataclasses.replace(server, ip=hap.vip_for(1))
        else:
            proc_name = "proxy"
            service = self.lab.service(cfg.service)
            target = server
        try:
            meter = Meter(self.pids(proc_name))
            if self.args.idle_s > 0:
                before = meter.sample()
                t0 = time.monotonic()
                await asyncio.sleep(self.args.idle_s)  # the measured idle interval itself, not a wait
                _, cpu, _ = Meter.delta(before, meter.sample())
                span = time.monotonic() - t0
                self.idle[cfg.name] = {k: 100 * v / span for k, v in cpu.items()}
                self._idle_rate = {k: v / span for k, v in cpu.items()}
            async with TrafficServer([server], [service]) as ts:
                for size_mb, count in zip(self.args.sizes, self.args.counts, strict=True):
                    for direction in self.args.directions:
                        await self._batch(cfg, meter, ts, service, target, "bulk", direction, int(size_mb * MB),
                                          count, self.args.parallel)
                if self.args.cps:
                    await self._batch(cfg, meter, ts, service, target, "cps", "down", self.args.cps_bytes,
                                      self.args.cps, self.args.cps_parallel)
            if cfg.proxy == "haproxy" and cfg.splice:
                self._check_haproxy_spliced(cfg)
        finally:
            if cfg.proxy == "haproxy":
                self._stop(proc_name)

    async def _batch(self, cfg: Config, meter: Meter, ts: Any, service: Any, target: Any, kind: str,
                     direction: str, size: int, count: int, parallel: int) -> None:
        ts.clear()
        spliced_before = len(self.lab.events("spliced"))
        sem = asyncio.Semaphore(parallel)
        timeout = 60 + size / 200_000  # generous: p4sim moves ~10 MB/s at best
        done = [0]

        async def one(i: int) -> Any:
            async with sem:
                client = self.lab.clients[i % len(self.lab.clients)]
                up, down = (size, 0) if direction == "up" else (0, size)
                r = await transfer(client, target, service, upload=up, download=down, timeout=timeout)
                done[0] += 1
                return r

        label = f"{cfg.name}: {count} x {size / MB:g} MB {direction}" if kind == "bulk" else \
            f"{cfg.name}: {count} connections of {size} B, {parallel} in flight"
        say(f"  {label} ...")
        before = meter.sample()
        t0 = time.monotonic()
        results = await asyncio.gather(*(one(i) for i in range(count)))
        wall = time.monotonic() - t0
        # The server side of each exchange ends when the client closes; give it a moment to record.
        await _until(lambda: len(ts.history) >= count and all(r.done.is_set() for r in ts.history), 10.0)
        await self._quiesce(cfg)
        stat, cpu, machine = Meter.delta(before, meter.sample())
        problems = verify(results, ts.history, direction, transparent=cfg.proxy == "splice-proxy")
        if problems:
            raise BenchError(f"{label}: not byte-exact, no figure: {problems[0]}"
                             + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""))
        spliced = len(self.lab.events("spliced")) - spliced_before if cfg.proxy == "splice-proxy" else None
        run = Run(cfg.name, kind, direction, size, count, parallel, wall, stat, machine.busy, machine.softirq,
                  [r.finished - r.started for r in results], spliced, runtime_s=cpu,
                  idle_s={k: v * wall for k, v in self._idle_rate.items()})
        self.runs.append(run)
        f = figures(run)
        if kind == "bulk":
            say(f"    {wall:6.1f} s  proxy {cpu['proxy']:.3f} s CPU (stat {stat['proxy']:.2f}; "
                f"{f['proxy_cpu_ms_per_conn']:.1f} ms/conn, "
                f"{f['proxy_cpu_s_per_gb']:.2f} s/GB)  switch {cpu['switch']:.1f} s  "
                f"{f['aggregate_mbps']:.0f} Mbit/s"
                + (f"  spliced {spliced}/{count}" if spliced is not None else "") + "  sha256 ok")
        else:
            say(f"    {wall:6.1f} s  {f['conns_per_s']:.1f} conn/s  proxy {f['proxy_cpu_ms_per_conn']:.2f} ms/conn  "
                f"controller {f['controller_cpu_ms_per_conn']:.1f} ms/conn"
                + (f"  spliced {spliced}/{count}" if spliced is not None else "") + "  sha256 ok")

    async def _quiesce(self, cfg: Config, timeout: float = 30.0) -> None:
        """After a splice-proxy batch, until the controller holds no flow (its teardown work is part
        of the run's cost); HAProxy's connections never reach the controller."""
        if cfg.proxy != "splice-proxy":
            return

        def empty() -> bool:
            try:
                return sum(self.lab.admin("status").get("flows", {}).values()) == 0
            except Exception:  # noqa: BLE001 - a busy controller: ask again
                return False

        if not await _until(empty, timeout, blocking=True):
            log.warning("the controller still holds flows %.0f s after the batch", timeout)

    # --- haproxy --------------------------------------------------------------------------------

    def _start_haproxy(self, cfg: Config) -> str:
        assert self.haproxy_bin is not None
        name = cfg.name
        path = self.lab.run_dir / f"{name}.cfg"
        self._stats = str(self.lab.run_dir / f"{name}.sock")
        vip = (hap.vip_for(1), BASELINE_PORT)
        path.write_text(hap.haproxy_config(vip, (self.lab.servers[0].ip, BASELINE_PORT), splice=cfg.splice,
                                           mode=self.args.haproxy_mode, stats_socket=self._stats))
        check = netdev.run([self.haproxy_bin, "-c", "-q", "-f", str(path)], check=False)
        if check.returncode != 0:
            raise BenchError(f"haproxy -c refused {path}: {(check.stderr or check.stdout).strip()}")
        argv = hap.command(self.haproxy_bin, path, [netdev._tool("ip"), "netns", "exec", self.lab.proxy.netns])
        # Through the lab's spawn: recorded in pids.json (a killed run's HAProxy is killed by the
        # next run) and stopped by Lab.down() whatever happens here.
        proc = self.lab._spawn(name, argv, marker=str(path))
        deadline = time.monotonic() + 20
        while not hap.listening(proc.popen.pid, vip):
            if proc.popen.poll() is not None:
                raise BenchError(f"haproxy exited with status {proc.popen.returncode} (see {proc.log_path})")
            if time.monotonic() > deadline:
                raise BenchError(f"haproxy did not listen on {vip[0]}:{vip[1]} within 20 s (see {proc.log_path})")
            time.sleep(0.05)  # polling interval of a readiness check with a deadline
        say(f"  haproxy pid {proc.popen.pid}: {self.args.haproxy_mode} mode, bind {vip[0]}:{vip[1]} transparent "
            f"-> {self.lab.servers[0].ip}:{BASELINE_PORT}" + (", splice-request/response" if cfg.splice else ", nosplice"))
        return name

    def _check_haproxy_spliced(self, cfg: Config) -> None:
        """Kernel splice() needs pipes: HAProxy counts the ones it made (``show info``)."""
        try:
            info = hap.show_info(self._stats)
        except OSError as exc:
            self.notes[cfg.name] = f"show info failed: {exc}"
            return
        pipes = int(info.get("PipesUsed", "0") or 0) + int(info.get("PipesFree", "0") or 0)
        self.notes[cfg.name] = f"HAProxy made {pipes} pipe(s) for splice()"
        say(f"  {self.notes[cfg.name]}")
        if pipes == 0:
            say("  warning: HAProxy made no pipe: it did not use splice()")

    def _stop(self, name: str) -> None:
        proc = self.lab.procs.pop(name, None)
        if proc is not None:
            stop(proc.popen, grace=5)
            self.lab._write_pids()


async def _until(check: Callable[[], bool], timeout: float, blocking: bool = False) -> bool:
    """Poll ``check`` until true or ``timeout``; ``blocking`` checks run in a thread."""
    deadline = time.monotonic() + timeout
    while True:
        ok = await asyncio.to_thread(check) if blocking else check()
        if ok:
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)  # polling interval with a deadline


def _machine() -> str:
    cpus = os.cpu_count() or 0
    mem = ""
    with contextlib.suppress(OSError, ValueError, IndexError):
        kb = int(Path("/proc/meminfo").read_text().split("\n")[0].split()[1])
        mem = f", {kb / 1024 / 1024:.0f} GiB RAM"
    return f"{cpus} CPUs{mem}, Linux {os.uname().release}, Python {sys.version.split()[0]}"


def report(runs: Sequence[Run], meta: Mapping[str, Any]) -> None:
    """The Markdown tables of a result (printed), as docs/benchmarks.md shows them."""
    say(f"\n## Offload results ({meta.get('date')}, {meta.get('machine')}, load average "
        f"{meta.get('load_before')} -> {meta.get('load_after')})\n")
    say(bulk_table(runs))
    if any(r.kind == "cps" for r in runs):
        say("")
        say(cps_table(runs))
    if meta.get("idle_cpu_percent"):
        say("\nIdle CPU (% of one CPU):\n")
        say(idle_table(meta["idle_cpu_percent"]))
    for name, note in (meta.get("notes") or {}).items():
        say(f"\n{name}: {note}")


def replot(path: Path, args: argparse.Namespace) -> int:
    """``--replot``: tables and plots again from a saved result, without a lab."""
    try:
        runs, meta = from_json(json.loads(path.read_text()))
    except (OSError, ValueError) as exc:
        say(f"{path}: {exc}")
        return 2
    report(runs, meta)
    if not args.no_plot:
        for png in plot(runs, args.plot_dir, subtitle=f"p4sim lab, {str(meta.get('date', ''))[:10]}"):
            say(f"plot: {png}")
    return 0


def _controller_option(text: str) -> tuple[str, Any]:
    """KEY=VALUE, VALUE in TOML (a bare word is taken as a string)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"not KEY=VALUE: {text!r}")
    try:
        parsed = tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value
    return key.strip(), parsed


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.replot is not None:
        return replot(args.replot, args)

    haproxy_bin = None
    if any(CONFIGS[c].proxy == "haproxy" for c in args.configs):
        haproxy_bin = args.haproxy or hap.find_haproxy()
        if haproxy_bin is None or not Path(haproxy_bin).is_file():
            say("note: haproxy is not installed (make bench-deps installs Debian's): skipping the haproxy configurations")
            haproxy_bin = None
    runnable = [c for c in args.configs if CONFIGS[c].proxy != "haproxy" or haproxy_bin]
    if not runnable:
        say("nothing to run: every configuration asked for needs haproxy")
        return 0

    def on_term(signum: int, frame: object) -> None:
        signal.raise_signal(signal.SIGINT)  # as Ctrl-C: the lab (and HAProxy with it) comes down

    signal.signal(signal.SIGTERM, on_term)
    started = time.monotonic()
    load = os.getloadavg()
    meta: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": _machine(),
        "load_before": [round(x, 2) for x in load], "argv": list(sys.argv[1:] if argv is None else argv),
        "haproxy": haproxy_bin, "haproxy_mode": args.haproxy_mode}
    say(f"== offload benchmark: {', '.join(args.configs)}; sizes "
        + ", ".join(f"{c} x {s:g} MB" for s, c in zip(args.sizes, args.counts, strict=True))
        + f"; {args.parallel} in flight; load average {load[0]:.2f} ==")
    # The daemon's default heartbeat (1 s), not the lab's 300 ms: the proxy's idle cost as deployed.
    spec = LabSpec(clients=2, servers=1, target=args.target, build_dir=args.build_dir, log_dir=args.log_dir,
                   heartbeat_ms=1000, controller=dict(args.controller))
    bench: Bench | None = None
    status = 0
    try:
        with OffloadLab(spec, progress=lambda m: log.info("%s", m)) as lab:
            say(f"lab up in {time.monotonic() - started:.0f} s (switch P4Runtime {lab.grpc_addr}, logs {lab.log_dir})")
            bench = Bench(lab, args, haproxy_bin)
            asyncio.run(bench.run())
    except (LabError, BenchError) as exc:
        say(f"offload benchmark failed: {exc}")
        status = 1
    except KeyboardInterrupt:
        say("\ninterrupted: torn down")
        return 130
    if bench is None or not bench.runs:
        return status or 1
    meta["load_after"] = [round(x, 2) for x in os.getloadavg()]
    meta["seconds"] = round(time.monotonic() - started)
    meta["notes"] = bench.notes
    meta["idle_cpu_percent"] = bench.idle
    report(bench.runs, meta)
    args.out_json.parent.mkdir(parents=True, exist_ok=True)
    args.out_json.write_text(json.dumps(to_json(bench.runs, meta), indent=1) + "\n")
    say(f"\nraw results: {args.out_json}")
    if not args.no_plot:
        for path in plot(bench.runs, args.plot_dir, subtitle=f"p4sim lab, {meta['date'][:10]}"):
            say(f"plot: {path}")
    say(f"done in {meta['seconds']} s" + ("" if status == 0 else " (with a failure: see above)"))
    return status


if __name__ == "__main__":
    sys.exit(main())
