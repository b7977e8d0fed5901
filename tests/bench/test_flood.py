"""The flood benchmark's pure parts (bench/flood.py): the spoofed SYNs it builds (checksums as
scapy computes them), the undecodable requests, the kernel SYN counter on a veth pair, the log
tail and the tables. The benchmark itself (two labs, minutes of flooding) is `make bench-flood`."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from p4.v1 import p4runtime_pb2 as pb
from p4splice.bench import flood as fb
from p4splice.lab import netdev

ROOT = Path(__file__).resolve().parents[2]


def test_frames_are_distinct_spoofed_syns_with_the_checksums_scapy_computes() -> None:
    from scapy.all import IP, TCP, Ether, raw

    template = fb.syn_template("02:00:00:00:01:02", "10.0.101.1", 8001)
    frames = fb.make_frames(template, 300, seed=7)
    assert len({(Ether(f)[IP].src, Ether(f)[TCP].sport) for f in frames}) == 300
    assert fb.make_frames(template, 5, seed=7) == frames[:5]  # seeded
    for f in frames:
        p = Ether(f)
        assert len(f) == len(template)
        assert p[TCP].flags == "S" and p[TCP].dport == 8001 and p[IP].dst == "10.0.101.1"
        first = int(p[IP].src.split(".")[0])
        assert 1 <= first <= 223 and first not in (10, 127)
        assert [o[0] for o in p[TCP].options] == ["MSS", "SAckOK", "Timestamp", "NOP", "WScale"]
        ip_sum, tcp_sum = p[IP].chksum, p[TCP].chksum
        del p[IP].chksum, p[TCP].chksum
        again = Ether(raw(p))
        assert (again[IP].chksum, again[TCP].chksum) == (ip_sum, tcp_sum)


def test_garbage_decodes_as_no_p4runtime_request() -> None:
    payloads = fb.garbage_payloads(600, seed=3)
    assert len(payloads) == 600 and all(1 <= len(p) <= 520 for p in payloads)
    kinds = (pb.WriteRequest, pb.ReadRequest, pb.SetForwardingPipelineConfigRequest,
             pb.GetForwardingPipelineConfigRequest, pb.CapabilitiesRequest, pb.StreamMessageRequest)
    for p in payloads:
        for kind in kinds:
            with pytest.raises(Exception):  # noqa: B017 - protobuf's DecodeError, whatever it is called
                kind.FromString(p)


def test_filter_jumps_stay_in_the_program_and_end_in_returns() -> None:
    prog = fb.SPOOFED_SYN_FILTER
    for i, (code, jt, jf, _k) in enumerate(prog):
        if code & 0x07 == 0x05:  # BPF_JMP
            assert i + 1 + max(jt, jf) < len(prog)
    assert prog[-1][0] == 0x06 and prog[-1][3] == 0 and prog[-2][0] == 0x06


def test_syn_counter_counts_only_spoofed_syns_arriving() -> None:
    try:
        netdev.require_netns()
    except netdev.NetdevUnavailable as exc:
        pytest.skip(f"namespaces refused here: {exc}")
    from scapy.all import IP, TCP, Ether, raw

    with netdev.Topology(prefix="p4fc") as topo:
        ns = topo.add_netns()
        pair = topo.add_veth(ns_a=ns)
        counter = fb.SynCounter(ns, pair.a)
        try:
            spoofed = fb.make_frames(fb.syn_template("02:00:00:00:01:02", "10.0.101.1", 8001), 50, seed=1)
            lab_syn = raw(Ether() / IP(src="10.0.1.1", dst="10.0.101.1") / TCP(flags="S"))
            syn_ack = raw(Ether() / IP(src="192.0.2.1", dst="10.0.101.1") / TCP(flags="SA"))
            with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0) as s:
                s.bind((pair.b, 0))
                for f in [*spoofed, lab_syn, syn_ack]:
                    s.send(f)
            deadline = time.monotonic() + 5
            seen = 0
            while seen < 50 and time.monotonic() < deadline:
                seen += counter.take()
                time.sleep(0.02)  # polling interval with a deadline
            assert seen == 50
            assert counter.take() == 0  # and the rest were not counted
        finally:
            counter.close()


def test_log_tail_counts_new_lines_by_level_and_groups_messages(tmp_path: Path) -> None:
    log = tmp_path / "controller.log"
    log.write_text("--- old line\n")
    tail = fb.LogTail(log)
    with open(log, "a") as f:
        for i in range(5):
            f.write(json.dumps({"level": "info", "msg": f"1.2.3.{i}:5->6.7.8.9:80: handshake aborted"}) + "\n")
        f.write(json.dumps({"level": "error", "msg": "write failed"}) + "\n")
        f.write(json.dumps({"level": "warning", "msg": "slow"}) + "\n")
        f.write("Traceback (most recent call last):\n")
    got = tail.take()
    assert (got["lines"], got["errors"], got["warnings"]) == (8, 2, 1)
    assert got["top"][0] == ("INFO N.N.N.N:N->N.N.N.N:N: handshake aborted", 5)
    assert tail.take()["lines"] == 0


def test_tables_render_a_ladder() -> None:
    base = fb.Step(0, during={"attempted": 20, "ok": 20, "failed": 0, "connect_p50_ms": 1.5, "connect_p99_ms": 3.0},
                   log={"lines": 3, "errors": 0, "warnings": 0, "top": []}, flows_end=4, flows_after=4)
    hot = fb.Step(2000, flood_t=(100.0, 110.0), after_t=(110.0, 125.0), sent=20000, send_s=10.0, at_server=11000, at_server_late=500, at_proxy=7000,
                  during={"attempted": 100, "ok": 90, "failed": 10, "connect_p50_ms": 700.0, "connect_p99_ms": 2000.0,
                          "errors": [("timeout (connect)", 10)]},
                  after={"attempted": 150, "ok": 150, "failed": 0, "errors": []},
                  log={"lines": 3000, "errors": 1, "warnings": 2, "top": [("INFO evicted", 2990)]})
    text = fb.flood_tables("switch", [base, hot])
    assert "| 2,000 | 2,000 | 1,100 (+500) | 700 |" in text
    assert "| 100 / 90 / 10 | 0 of 150 (15 s) | 700 / 2,000 |" in text
    summary = fb.flood_summary([base, hot])
    assert "at most 1,100 SYN/s" in summary[0]
    assert "first failed during a flood at 2,000 SYN/s" in summary[1] and "after a flood at no rate" in summary[1]
    assert "2,990 x INFO evicted" in summary[2]


def test_sender_sends_at_the_rate_it_is_given() -> None:
    try:
        netdev.require_netns()
    except netdev.NetdevUnavailable as exc:
        pytest.skip(f"veth pairs refused here: {exc}")
    template = fb.syn_template("02:00:00:00:01:02", "10.0.101.1", 8001)
    with netdev.Topology(prefix="p4fs") as topo:
        pair = topo.add_veth()
        proc = subprocess.run([sys.executable, "-c", fb.SENDER, pair.a, "2000", "0.5", template.hex(), "1", "1000"],
                              capture_output=True, text=True, timeout=60, cwd=ROOT, check=False)
    assert proc.returncode == 0, proc.stderr
    start, done = proc.stdout.split("\n")[:2]
    words = done.split()
    assert start == "start" and words[0] == "done"
    sent, errors, elapsed = int(words[1]), int(words[2]), float(words[3])
    assert 0.5 <= elapsed < 1.0
    assert 900 <= sent + errors <= 1001
