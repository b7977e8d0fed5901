"""The p4sim process on real veth ports: programmed over P4Runtime, real kernels on both sides."""

from __future__ import annotations

import queue
import socket
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from p4.v1 import p4runtime_pb2, p4runtime_pb2_grpc
from p4splice.lab import p4sim_demo
from scapy.all import IP, UDP, Ether, raw

from p4sim.compiler.driver import compile_file
from p4sim.shellbridge import shell_python
from tests.p4sim.netns_fixtures import (  # noqa: F401
    netns_ok_fixture,
    raw_socket_in,
    recv_matching,
    topology_fixture,
    wait_for,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "p4sim" / "examples" / "l3_forward.p4"
BIN = Path(sys.executable).parent


def test_demo_pings_across_the_switch(netns_ok: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if shell_python() is None:
        pytest.skip("the demo drives p4runtime-shell from its own venv: `make p4sh-venv` (or set P4SH_PYTHON)")
    rc = p4sim_demo.main(["--build-dir", str(tmp_path / "build"), "--log-dir", str(tmp_path / "logs")])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "3 packets transmitted, 3 received" in out
    assert "port_packets[1]" in out and "port_packets[2]" in out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_switch_started_with_a_program_forwards_raw_frames(topology, tmp_path: Path) -> None:
    compiled = compile_file(EXAMPLE)
    cfg = tmp_path / "prog.p4sim.json"
    cfg.write_bytes(compiled.device_config)
    h1, h2 = topology.add_netns(), topology.add_netns()
    p1 = topology.add_veth(ns_a=h1)
    p2 = topology.add_veth(ns_a=h2)
    port = _free_port()
    proc = subprocess.Popen([str(BIN / "p4sim"), str(cfg), "--device-id", "3", "-i", f"1@{p1.b}", "-i", f"2@{p2.b}",
                             "--", "--grpc-server-addr", f"127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        grpc.channel_ready_future(channel).result(timeout=20)
        stub = p4runtime_pb2_grpc.P4RuntimeStub(channel)
        # started with a program: the pipeline and its P4Info are there without a push
        got = stub.GetForwardingPipelineConfig(p4runtime_pb2.GetForwardingPipelineConfigRequest(device_id=3))
        assert got.config.p4info == compiled.p4info
        outbox: queue.Queue = queue.Queue()
        outbox.put(_arbitration(3))
        stream = stub.StreamChannel(iter(outbox.get, None))
        assert next(stream).arbitration.status.code == 0
        p4info = compiled.p4info
        tid = next(t.preamble.id for t in p4info.tables if t.preamble.name == "RouterIngress.ipv4_lpm")
        aid = next(a.preamble.id for a in p4info.actions if a.preamble.name == "RouterIngress.forward")
        req = p4runtime_pb2.WriteRequest(device_id=3)
        req.election_id.low = 1
        u = req.updates.add(type=p4runtime_pb2.Update.INSERT)
        te = u.entity.table_entry
        te.table_id = tid
        m = te.match.add(field_id=1)
        m.lpm.value, m.lpm.prefix_len = bytes([10, 0, 2, 0]), 24
        te.action.action.action_id = aid
        te.action.action.params.add(param_id=1, value=bytes.fromhex("020000000201"))
        te.action.action.params.add(param_id=2, value=b"\x02")
        stub.Write(req)
        frame = raw(Ether(src="02:00:00:00:01:01", dst="02:00:00:00:00:fe") / IP(src="10.0.1.1", dst="10.0.2.1", ttl=9)
                    / UDP(sport=7, dport=9) / b"payload")
        with raw_socket_in(h2, p2.a) as rx, raw_socket_in(h1, p1.a) as tx:
            tx.send(frame)
            got_frame = recv_matching(rx, lambda f: len(f) > 34 and f[12:14] == b"\x08\x00" and f[30:34] == bytes([10, 0, 2, 1]))
        out = Ether(got_frame)
        assert out.dst == "02:00:00:00:02:01"
        assert out.src == "02:00:00:00:00:fe"
        assert out[IP].ttl == 8
        assert bytes(out[UDP].payload)[:7] == b"payload"
        chk = out[IP].chksum
        del out[IP].chksum
        assert Ether(raw(out))[IP].chksum == chk
        wait_for(lambda: proc.poll() is None, what="switch still running")
        outbox.put(None)
        channel.close()
    finally:
        proc.terminate()
        try:
            rc = proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait()
        err = proc.stderr.read().decode() if proc.stderr else ""
    assert rc == 0, err
    assert "Traceback" not in err


def _arbitration(device_id: int) -> p4runtime_pb2.StreamMessageRequest:
    req = p4runtime_pb2.StreamMessageRequest()
    req.arbitration.device_id = device_id
    req.arbitration.election_id.low = 1
    return req
