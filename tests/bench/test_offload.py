"""The offload benchmark's pure parts (bench/offload.py, lab/haproxy.py): argument
errors, the /proc CPU readers, the figures and tables, the byte-exact check, the HAProxy
configuration text. The benchmark itself (a lab, minutes of traffic) is `make bench-offload`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from p4splice.bench import offload as ob
from p4splice.lab import haproxy as hap
from p4splice.lab.traffic import expected_download_sha

# --- arguments ------------------------------------------------------------------------------------


def test_defaults_give_the_issue_sizes_with_counts_that_fit_the_switch() -> None:
    args = ob.parse_args([])
    assert args.sizes == [1.0, 10.0, 100.0]
    assert args.counts == [10, 4, 2]
    assert args.configs == ["spliced", "spliced-early", "never", "haproxy", "haproxy-splice"]
    assert args.directions == ["down"]
    assert ob.parse_args(["--sizes", "5", "50", "--counts", "3"]).counts == [3, 3]
    assert ob.parse_args(["--sizes", "0.5"]).counts == [10]  # 100 MB / size, capped at 10
    assert ob.parse_args(["--direction", "both"]).directions == ["down", "up"]
    assert ob.parse_args(["--configs", "never", "never", "spliced"]).configs == ["never", "spliced"]


@pytest.mark.parametrize(("argv", "message"), [
    (["--sizes", "-1"], "must be positive"),
    (["--sizes", "ten"], "not a number"),
    (["--sizes", "1", "10", "--counts", "1", "2", "3"], "--counts has 3 values for 2 --sizes"),
    (["--counts", "0"], "must be >= 1"),
    (["--configs", "nginx"], "unknown configuration 'nginx'"),
    (["--parallel", "x"], "not an integer"),
    (["--idle-s", "-2"], "--idle-s must be >= 0"),
])
def test_bad_arguments_are_one_line_errors(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        ob.parse_args(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1 and err.startswith("p4splice.bench.offload: error: ")


# --- CPU readers ----------------------------------------------------------------------------------


def _stat_line(comm: str, utime: int, stime: int, cutime: int, cstime: int) -> str:
    # fields 3..13, then 14-17, then the rest
    return (f"4242 ({comm}) S 1 4242 4242 0 -1 4194560 100 0 0 0 {utime} {stime} {cutime} {cstime} "
            "20 0 3 0 12345 1000000 500 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n")


def test_parse_stat_counts_from_the_last_parenthesis() -> None:
    cpu = ob.parse_stat(_stat_line("a (weird) name) S", 250, 50, 10, 5), hz=100)
    assert (cpu.user, cpu.system, cpu.children_user, cpu.children_system) == (2.5, 0.5, 0.1, 0.05)
    assert cpu.total == pytest.approx(3.15)
    diff = cpu - ob.parse_stat(_stat_line("x", 50, 50, 0, 0), hz=100)
    assert diff.total == pytest.approx(2.15)
    with pytest.raises(ValueError, match="no '\\)'"):
        ob.parse_stat("garbage")
    with pytest.raises(ValueError, match="fields"):
        ob.parse_stat("1 (x) S 1 2 3")


def test_read_cpu_from_a_proc_tree_and_from_this_process(tmp_path: Path) -> None:
    (tmp_path / "77" / "task" / "77").mkdir(parents=True)
    (tmp_path / "77" / "task" / "80").mkdir(parents=True)
    (tmp_path / "77" / "stat").write_text(_stat_line("splice-proxy", 300, 100, 0, 0))
    (tmp_path / "77" / "task" / "77" / "schedstat").write_text("4000000000 10 20\n")
    (tmp_path / "77" / "task" / "80" / "schedstat").write_text("1000000000 10 20\n")
    (tmp_path / "stat").write_text("cpu  1000 0 200 5000 10 0 50 0 0 0\ncpu0 500 0 100 2500 5 0 25 0 0 0\n")
    meter = ob.Meter({"proxy": 77}, proc_root=str(tmp_path))
    before = meter.sample()
    (tmp_path / "77" / "stat").write_text(_stat_line("splice-proxy", 400, 150, 0, 0))
    (tmp_path / "77" / "task" / "77" / "schedstat").write_text("5000000123 10 20\n")
    (tmp_path / "stat").write_text("cpu  1100 0 300 5000 10 0 80 0 0 0\n")
    stat, runtime, machine = ob.Meter.delta(before, meter.sample())
    assert stat["proxy"] == pytest.approx(1.5 * 100 / ob.HZ)
    assert runtime["proxy"] == pytest.approx(1.000000123)  # ns, summed over the threads
    assert machine.busy == pytest.approx(230 / ob.HZ) and machine.softirq == pytest.approx(30 / ob.HZ)
    with pytest.raises(ob.BenchError, match="proxy \\(pid 78\\) is gone"):
        ob.Meter({"proxy": 78}, proc_root=str(tmp_path)).sample()
    # one name for several pids (every CPU's ksoftirqd): summed
    for pid, comm, ticks in ((14, "ksoftirqd/0", 20), (22, "ksoftirqd/1", 30), (23, "kworker/1:0", 99)):
        (tmp_path / str(pid) / "task" / str(pid)).mkdir(parents=True)
        (tmp_path / str(pid) / "comm").write_text(comm + "\n")
        (tmp_path / str(pid) / "stat").write_text(_stat_line(comm, 0, ticks, 0, 0))
        (tmp_path / str(pid) / "task" / str(pid) / "schedstat").write_text(f"{ticks * 10_000_000} 0 0\n")
    assert ob.kernel_threads("ksoftirqd/", proc_root=str(tmp_path)) == (14, 22)
    both = ob.Meter({"ksoftirqd": (14, 22)}, proc_root=str(tmp_path)).sample()
    assert both.stat["ksoftirqd"].system == pytest.approx(50 / ob.HZ) and both.runtime["ksoftirqd"] == pytest.approx(0.5)
    # the real thing: this process has used some CPU, and /proc/stat parses
    assert ob.read_cpu(os.getpid()).total > 0
    assert ob.read_runtime(os.getpid()) > 0
    assert ob.read_machine().busy > 0
    with pytest.raises(ValueError):
        ob.parse_proc_stat("intr 1 2 3\n")


# --- figures, tables, verification ----------------------------------------------------------------


def _run(config: str = "spliced", size_mb: float = 10, n: int = 4, proxy: float = 0.2, kind: str = "bulk") -> ob.Run:
    return ob.Run(config, kind, "down", int(size_mb * ob.MB), n, 2, wall_s=8.0,
                  cpu_s={"proxy": proxy, "switch": 12.0, "controller": 0.4, "bench": 3.0},
                  machine_busy_s=16.0, softirq_s=0.8, conn_seconds=[4.0] * n, spliced=n if config == "spliced" else None,
                  runtime_s={"proxy": proxy})


def test_figures_per_connection_per_gb_and_throughput() -> None:
    f = ob.figures(_run())
    assert f["bytes"] == 40e6
    assert f["proxy_cpu_ms_per_conn"] == pytest.approx(50.0)
    assert f["proxy_cpu_s_per_gb"] == pytest.approx(5.0)
    assert f["switch_cpu_s_per_gb"] == pytest.approx(300.0)
    assert f["controller_cpu_ms_per_conn"] == pytest.approx(100.0)
    assert f["machine_cpu_s_per_gb"] == pytest.approx(400.0)
    assert f["aggregate_mbps"] == pytest.approx(40.0)  # 40 MB in 8 s
    assert f["per_conn_mbps"] == pytest.approx(20.0)  # 10 MB in 4 s each
    assert f["conns_per_s"] == pytest.approx(0.5)
    # schedstat's figure where measured, /proc/<pid>/stat's otherwise
    run = _run()
    run.runtime_s = {"proxy": 0.1}
    assert ob.figures(run)["proxy_cpu_ms_per_conn"] == pytest.approx(25.0)
    assert ob.figures(run)["switch_cpu_s_per_gb"] == pytest.approx(300.0)


def test_tables_and_series() -> None:
    runs = [_run(), _run(size_mb=1, n=10, proxy=0.1), _run("never", proxy=2.0),
            _run("haproxy", size_mb=0.001, n=200, proxy=0.05, kind="cps")]
    bulk = ob.bulk_table(runs)
    assert bulk.count("\n") == 4  # head, rule, three bulk rows
    assert "| spliced | 10.0 | down | 4 | 50.0 | 0.00 | 5.00 | 300 |" in bulk
    assert "| never |" in bulk and "haproxy" not in bulk
    cps = ob.cps_table(runs)
    assert "| haproxy | 200 | 2 | 1000 | 25.0 |" in cps
    assert ob.series(runs, "proxy_cpu_s_per_gb") == {"spliced": [(1.0, 10.0), (10.0, 5.0)], "never": [(10.0, 50.0)]}
    assert "| spliced | 1.50 |" in ob.idle_table({"spliced": {"proxy": 1.5}})
    doc = ob.to_json(runs, {"date": "x"})
    assert doc["meta"] == {"date": "x"} and doc["runs"][0]["figures"]["proxy_cpu_ms_per_conn"] == pytest.approx(50.0)


def test_json_round_trip_and_replot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs = [_run(), _run("never", proxy=2.0), _run("haproxy", size_mb=0.001, n=200, proxy=0.05, kind="cps")]
    meta = {"date": "2026-11-24 05:00 UTC", "idle_cpu_percent": {"spliced": {"proxy": 0.5}}}
    runs[0].idle_s = {"proxy": 0.04}
    doc = json.loads(json.dumps(ob.to_json(runs, meta)))
    back, meta_back = ob.from_json(doc)
    assert [ob.figures(r) for r in back] == [ob.figures(r) for r in runs] and meta_back == meta
    # a result saved without idle_s gets it from the configuration's idle rate
    for r in doc["runs"]:
        r.pop("idle_s")
    back, _ = ob.from_json(doc)
    assert back[0].idle_s == {"proxy": pytest.approx(0.04)}  # 0.5 % of 8 s
    assert ob.figures(back[0])["proxy_idle_ms_per_conn"] == pytest.approx(10.0)
    with pytest.raises(ValueError, match="not an offload benchmark result"):
        ob.from_json({"runs": [{"config": "x"}]})
    saved = tmp_path / "r.json"
    saved.write_text(json.dumps(doc))
    assert ob.main(["--replot", str(saved), "--no-plot"]) == 0
    out = capsys.readouterr().out
    assert "| spliced | 10.0 | down | 4 |" in out and "| haproxy | 200 |" in out
    assert ob.main(["--replot", str(tmp_path / "missing.json"), "--no-plot"]) == 2


@dataclass
class _Client:
    local: tuple[str, int]
    received_sha: str = ""
    received: int = 100
    download: int = 100
    sent_sha: str = ""
    sent: int = 0
    upload: int = 0
    error: str = ""
    server: tuple[str, int] = ("10.0.250.1", 9001)


@dataclass
class _Record:
    sent_sha: str = ""
    received_sha: str = ""
    peer: tuple[str, int] = ("", 0)
    sent: int = 0
    error: str = ""
    done: threading.Event = field(default_factory=threading.Event)


def test_verify_matches_by_digest_one_to_one() -> None:
    clients = [_Client(("10.0.1.1", 1), "aa"), _Client(("10.0.2.1", 2), "bb")]
    assert ob.verify(clients, [_Record("bb"), _Record("aa")], "down") == []
    # the same digest cannot be claimed twice
    twice = ob.verify([_Client(("c", 1), "aa"), _Client(("c", 2), "aa")], [_Record("aa"), _Record("bb")], "down")
    assert len(twice) == 1 and "matches nothing the server sent" in twice[0]
    short = ob.verify([_Client(("c", 1), "aa", received=99)], [_Record("aa")], "down")
    assert short == ["c:1->10.0.250.1:9001: 99 of 100 bytes"]
    failed = ob.verify([_Client(("c", 1), error="TimeoutError")], [], "down")
    assert failed == ["c:1->10.0.250.1:9001: TimeoutError"]
    # Where the server sees the client's port, a mismatch says whether the bytes were wrong.
    right = _Client(("c", 7), received=100, download=100)
    right.received_sha = expected_download_sha(right)  # type: ignore[arg-type]
    (missing,) = ob.verify([right], [], "down", transparent=True)
    assert missing.endswith("the bytes are right, the server's record is not (no record of the connection)")
    # a port the client's kernel used twice in the batch: two records of one peer, each claimed once
    again = [_Client(("c", 7), "aa"), _Client(("c", 7), "aa")]
    assert ob.verify(again, [_Record("aa", peer=("c", 7)), _Record("aa", peer=("c", 7))], "down") == []
    (late,) = ob.verify([right], [_Record(peer=("c", 7), sent=100)], "down", transparent=True)
    assert late.endswith("the server's record is not (sent 100 bytes, error none, its handler still running)")
    (wrong,) = ob.verify([_Client(("c", 7), "ee")], [_Record("ff")], "down", transparent=True)
    assert wrong.endswith("the bytes differ from the server's stream")
    up = _Client(("c", 1), received=0, download=0, sent_sha="cc", sent=5, upload=5)
    assert ob.verify([up], [_Record(received_sha="cc")], "up") == []
    assert ob.verify([up], [_Record(received_sha="dd")], "up") != []


# --- HAProxy --------------------------------------------------------------------------------------


def test_haproxy_config_with_and_without_splice() -> None:
    plain = hap.haproxy_config(("10.0.250.1", 9001), ("10.0.101.1", 9001), splice=False)
    assert "    nosplice\n" in plain and "no option splice-auto" in plain and "option splice-response" not in \
        plain.replace("no option splice-response", "")
    assert "bind 10.0.250.1:9001 transparent" in plain and "server s1 10.0.101.1:9001" in plain
    assert "mode http" in plain and "option httpclose" in plain and "nbthread 1" in plain
    assert "usesrc" not in plain  # connects from its own address: see haproxy.py's docstring
    spliced = hap.haproxy_config(("10.0.250.1", 9001), ("10.0.101.1", 9001), splice=True, mode="tcp",
                                 stats_socket="/tmp/x.sock")
    assert "nosplice" not in spliced and "option splice-request" in spliced and "option splice-response" in spliced
    assert "mode tcp" in spliced and "httpclose" not in spliced and "stats socket /tmp/x.sock" in spliced
    with pytest.raises(ValueError, match="mode"):
        hap.haproxy_config(("a", 1), ("b", 2), splice=False, mode="udp")


@pytest.mark.skipif(hap.find_haproxy() is None, reason="haproxy is not installed (make bench-deps)")
@pytest.mark.parametrize("splice", [False, True])
@pytest.mark.parametrize("mode", ["http", "tcp"])
def test_haproxy_accepts_the_config(tmp_path: Path, splice: bool, mode: str) -> None:
    cfg = tmp_path / "h.cfg"
    cfg.write_text(hap.haproxy_config(("10.0.250.1", 9001), ("10.0.101.1", 9001), splice=splice, mode=mode,
                                      stats_socket=str(tmp_path / "s.sock")))
    binary = hap.find_haproxy()
    assert binary is not None
    proc = subprocess.run([binary, "-c", "-f", str(cfg)], capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "warning" not in (proc.stdout + proc.stderr).lower()


def test_vip_routing_and_listening_sockets(tmp_path: Path) -> None:
    assert hap.vip_for(1) == "10.0.250.1" and hap.vip_for(3, "192.168.7.0/24") == "192.168.7.3"
    with pytest.raises(ValueError):
        hap.vip_for(0)
    cmds = hap.policy_routing_commands("eth0")
    assert cmds[1] == ["rule", "add", "iif", "eth0", "to", "10.0.250.0/24", "lookup", "201"]
    assert cmds[2] == ["route", "replace", "local", "0.0.0.0/0", "dev", "lo", "table", "201"]
    # 10.0.250.1:9001 listening, 10.0.200.1:40000 established (little-endian hex, as on x86)
    text = ("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
            "   0: 01FA000A:2329 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1\n"
            "   1: 01C8000A:9C40 0165000A:2329 01 00000000:00000000 00:00000000 00000000     0        0 2 1\n")
    if int.from_bytes(b"\x01\x00", "little") == 1 and os.uname().machine in ("x86_64", "aarch64"):
        assert hap.parse_proc_net_tcp(text) == [("10.0.250.1", 9001, 0x0A), ("10.0.200.1", 40000, 1)]
    (tmp_path / "5" / "net").mkdir(parents=True)
    (tmp_path / "5" / "net" / "tcp").write_text(text)
    assert hap.listening(5, ("10.0.250.1", 9001), proc_root=str(tmp_path))
    assert not hap.listening(5, ("10.0.200.1", 40000), proc_root=str(tmp_path))  # established, not listening
    assert not hap.listening(6, ("10.0.250.1", 9001), proc_root=str(tmp_path))
    assert hap.parse_show_info("Name: HAProxy\nPipesUsed: 0\nPipesFree: 2\n")["PipesFree"] == "2"
    assert hap.command("/usr/sbin/haproxy", Path("/x.cfg"), ["ip", "netns", "exec", "p"]) == \
        ["ip", "netns", "exec", "p", "/usr/sbin/haproxy", "-db", "-f", "/x.cfg"]


def test_find_haproxy_prefers_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    exe = tmp_path / "haproxy"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert hap.find_haproxy() == str(exe)
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(hap, "HAPROXY_CANDIDATES", ())
    assert hap.find_haproxy() is None
    assert shutil.which("haproxy") is None


def test_plot_writes_the_three_pngs(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    runs = [_run(size_mb=1, n=10, proxy=0.05), _run(proxy=0.05), _run("never", size_mb=1, n=10, proxy=0.3),
            _run("never", proxy=2.0), _run("haproxy", size_mb=0.001, n=200, proxy=0.05, kind="cps")]
    runs[1].idle_s = {"proxy": 0.02}  # a visible idle share: the dashed "less its idle" line
    written = ob.plot(runs, tmp_path, subtitle="test")
    assert [p.name for p in written] == ["offload-cpu-per-gb.png", "offload-cpu-per-conn.png", "offload-throughput.png"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in written)


def test_without_haproxy_its_configurations_are_skipped_with_a_note(capsys: pytest.CaptureFixture[str]) -> None:
    assert ob.main(["--configs", "haproxy", "haproxy-splice", "--haproxy", "/nonexistent/haproxy"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == ["note: haproxy is not installed (make bench-deps installs Debian's): skipping the haproxy "
                   "configurations", "nothing to run: every configuration asked for needs haproxy"]


def test_plot_of_uploads_without_a_connections_test(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    runs = [_run(), _run("never", proxy=2.0)]
    for r in runs:
        r.direction = "up"
    assert len(ob.plot(runs, tmp_path)) == 3
