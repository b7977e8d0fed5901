"""``make bench`` for p4sim: forwarding rate, P4Runtime write rate and table memory.

Figures are printed as a Markdown table together with the command; record them in
docs/benchmarks.md. Nothing here is a test: it measures, it does not assert.
"""

from __future__ import annotations

import argparse
import gc
import ipaddress
import resource
import socket
import sys
import threading
import time
from pathlib import Path

from p4.config.v1 import p4info_pb2
from p4.v1 import p4runtime_pb2, p4runtime_pb2_grpc

EXAMPLE = Path(__file__).parent / "examples" / "l3_forward.p4"


def _rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _router(cpu_port: int = 255):
    from p4sim.compiler.driver import compile_file
    from p4sim.dataplane.device import P4SimDevice
    from p4sim.runtime.state import SwitchState

    compiled = compile_file(EXAMPLE, defines=["ROUTES_SIZE=1048576"])
    sent: list[int] = [0]
    dev = P4SimDevice(lambda port, frame: sent.__setitem__(0, sent[0] + 1), cpu_port)
    state = SwitchState(compiled.p4info)
    dev.commit_pipeline(compiled.p4info, compiled.device_config, state)
    return compiled, dev, state, sent


def _ids(p4info: p4info_pb2.P4Info, kind: str, suffix: str) -> int:
    return next(e.preamble.id for e in getattr(p4info, kind) if e.preamble.name.endswith(suffix))


def bench_pipeline(seconds: float) -> dict[str, float]:
    """Packets per second through l3_forward in-process (no sockets): the interpreter's cost."""
    from scapy.all import IP, UDP, Ether, raw

    compiled, dev, state, sent = _router()
    tid = _ids(compiled.p4info, "tables", "ipv4_lpm")
    aid = _ids(compiled.p4info, "actions", "forward")
    with state.lock:
        state.table(tid).insert(((0x0A000000, 8),), 0, aid, (0x020000000002, 2))
    frame = raw(Ether(dst="02:00:00:00:00:fe") / IP(dst="10.0.0.5", ttl=64) / UDP(dport=9) / (b"x" * 18))
    n = 0
    t0 = time.perf_counter()
    deadline = t0 + seconds
    while time.perf_counter() < deadline:
        for _ in range(1000):
            dev.receive(1, frame)
        n += 1000
    dt = time.perf_counter() - t0
    assert sent[0] == n
    return {"pipeline_pps": n / dt}


def _p4rt_server():
    from p4sim.compiler.driver import compile_file
    from p4sim.dataplane.device import P4SimDevice
    from p4sim.runtime.server import P4RuntimeServer

    compiled = compile_file(EXAMPLE, defines=["ROUTES_SIZE=1048576"])
    dev = P4SimDevice(lambda port, frame: None, 255)
    server = P4RuntimeServer(dev, "127.0.0.1:0", 1, 255).start()
    return compiled, server


def bench_writes(n_single: int, n_batched: int) -> dict[str, float]:
    """P4Runtime table inserts per second over gRPC, batches of 1 and of 1000."""
    import grpc

    compiled, server = _p4rt_server()
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    stub = p4runtime_pb2_grpc.P4RuntimeStub(channel)
    requests: list[p4runtime_pb2.StreamMessageRequest] = []
    cond = threading.Condition()

    def stream_iter():
        req = p4runtime_pb2.StreamMessageRequest()
        req.arbitration.device_id = 1
        req.arbitration.election_id.low = 1
        yield req
        with cond:
            cond.wait_for(lambda: bool(requests))

    stream = stub.StreamChannel(stream_iter())
    next(stream)
    cfg = p4runtime_pb2.SetForwardingPipelineConfigRequest(device_id=1, action=p4runtime_pb2.SetForwardingPipelineConfigRequest.VERIFY_AND_COMMIT)
    cfg.election_id.low = 1
    cfg.config.p4info.CopyFrom(compiled.p4info)
    cfg.config.p4_device_config = compiled.device_config
    stub.SetForwardingPipelineConfig(cfg)
    tid = _ids(compiled.p4info, "tables", "ipv4_lpm")
    aid = _ids(compiled.p4info, "actions", "forward")

    def update(i: int) -> p4runtime_pb2.Update:
        u = p4runtime_pb2.Update(type=p4runtime_pb2.Update.INSERT)
        te = u.entity.table_entry
        te.table_id = tid
        m = te.match.add()
        m.field_id = 1
        m.lpm.value = int(ipaddress.IPv4Address(0x0B000000 + (i << 8))).to_bytes(4, "big")
        m.lpm.prefix_len = 24
        te.action.action.action_id = aid
        p = te.action.action.params.add()
        p.param_id = 1
        p.value = b"\x02\x00\x00\x00\x00\x02"
        p = te.action.action.params.add()
        p.param_id = 2
        p.value = b"\x02"
        return u

    def write(updates: list[p4runtime_pb2.Update]) -> None:
        req = p4runtime_pb2.WriteRequest(device_id=1)
        req.election_id.low = 1
        req.updates.extend(updates)
        stub.Write(req)

    t0 = time.perf_counter()
    for i in range(n_single):
        write([update(i)])
    single = n_single / (time.perf_counter() - t0)
    base = n_single
    batches = [[update(base + b * 1000 + j) for j in range(1000)] for b in range(n_batched // 1000)]
    t0 = time.perf_counter()
    for batch in batches:
        write(batch)
    batched = n_batched / (time.perf_counter() - t0)
    with cond:
        requests.append(p4runtime_pb2.StreamMessageRequest())
        cond.notify_all()
    channel.close()
    server.stop(0)
    return {"writes_per_s_batch1": single, "writes_per_s_batch1000": batched}


def bench_memory(n_entries: int) -> dict[str, float]:
    """Resident memory with n exact-match entries (a one-field exact table of the size asked)."""
    from p4sim.runtime.state import SwitchState

    p4info = p4info_pb2.P4Info()
    a = p4info.actions.add()
    a.preamble.id, a.preamble.name = 0x01000001, "set_port"
    prm = a.params.add()
    prm.id, prm.name, prm.bitwidth = 1, "port", 9
    t = p4info.tables.add()
    t.preamble.id, t.preamble.name = 0x02000001, "flows"
    mf = t.match_fields.add()
    mf.id, mf.name, mf.bitwidth, mf.match_type = 1, "key", 96, p4info_pb2.MatchField.EXACT
    t.action_refs.add().id = a.preamble.id
    t.size = n_entries
    gc.collect()
    before = _rss_mib()
    state = SwitchState(p4info)
    table = state.table(t.preamble.id)
    with state.lock:
        for i in range(n_entries):
            table.insert(((i * 2654435761) & ((1 << 96) - 1),), 0, a.preamble.id, (i & 511,), 0)
    gc.collect()
    after = _rss_mib()
    return {"entries": n_entries, "rss_mib_total": after, "rss_mib_added": after - before}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="p4sim.bench", description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--entries", type=int, default=1_000_000)
    ap.add_argument("--writes", type=int, default=2000)
    ap.add_argument("--batched", type=int, default=50_000)
    args = ap.parse_args(argv)
    results: dict[str, float] = {}
    results.update(bench_pipeline(args.seconds))
    results.update(bench_writes(args.writes, args.batched))
    results.update(bench_memory(args.entries))
    print(f"command: python -m p4sim.bench {' '.join(argv or sys.argv[1:])}".rstrip())
    print(f"host: {socket.gethostname()}, python {sys.version.split()[0]}")
    print("| figure | value |\n|---|---|")
    for k, v in results.items():
        print(f"| {k} | {v:,.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
