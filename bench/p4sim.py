"""``make bench`` for p4sim: forwarding rate, P4Runtime write/read rates and table memory.

Figures are printed as Markdown tables together with the command; record them in
docs/benchmarks.md. Nothing here is a test: it measures, it does not assert.

How the P4Runtime figures are taken: the server runs in its own process (so client and server
each get a CPU, as with a real controller), on loopback gRPC. Requests are encoded before the
clock starts and sent as bytes, so the write/read rates are the *server's*: with the installed
pure-Python protobuf, encoding a batch of 1000 updates in a Python client costs more than the
server's work (the "client encodes with protobuf" row shows what a Python controller sees).
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing as mp
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from p4.config.v1 import p4info_pb2
from p4.v1 import p4runtime_pb2, p4runtime_pb2_grpc

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "p4sim" / "examples" / "l3_forward.p4"
SPLICE = ROOT / "p4src" / "splice.p4"
BATCH = 1000

# The benchmark P4Info: three table shapes, exact, LPM and ternary (ids are arbitrary but fixed).
FLOWS, ROUTES, ACL, SET_PORT = 0x02000001, 0x02000002, 0x02000003, 0x01000001


def _rss_mib(pid: int | str = "self") -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _ids(p4info: p4info_pb2.P4Info, kind: str, suffix: str) -> int:
    return next(e.preamble.id for e in getattr(p4info, kind) if e.preamble.name.endswith(suffix))


def _bench_p4info(size: int) -> p4info_pb2.P4Info:
    p4info = p4info_pb2.P4Info()
    a = p4info.actions.add()
    a.preamble.id, a.preamble.name = SET_PORT, "set_port"
    prm = a.params.add()
    prm.id, prm.name, prm.bitwidth = 1, "port", 9
    MT = p4info_pb2.MatchField
    shapes = ((FLOWS, "flows", [("key", 96, MT.EXACT)]),
              (ROUTES, "routes", [("dst", 32, MT.LPM)]),
              (ACL, "acl", [("src", 32, MT.TERNARY), ("dport", 16, MT.EXACT)]))
    for tid, name, fields in shapes:
        t = p4info.tables.add()
        t.preamble.id, t.preamble.name = tid, name
        for i, (fname, width, kind) in enumerate(fields, start=1):
            mf = t.match_fields.add()
            mf.id, mf.name, mf.bitwidth, mf.match_type = i, fname, width, kind
        t.action_refs.add().id = SET_PORT
        t.size = size
    return p4info


# ------------------------------------------------------------------------------------------------
# request encoding (done before timing)
def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _key(table: int, i: int) -> bytes:
    """Entry i's key bytes: fixed width and canonical (top bit set), distinct per i."""
    if table == FLOWS:
        return ((1 << 95) | ((i * 2654435761) % (1 << 95))).to_bytes(12, "big")
    return (0x80000000 | (i << 8)).to_bytes(4, "big")  # routes: a /24; acl: value under /24 mask


def _template(table: int) -> tuple[bytes, bytes]:
    """An INSERT Update for `table` serialized by protobuf, split around its key bytes."""
    u = p4runtime_pb2.Update(type=p4runtime_pb2.Update.INSERT)
    te = u.entity.table_entry
    te.table_id = table
    marker = b"\xa5\x5a\xc3\x3c" * (3 if table == FLOWS else 1)
    m = te.match.add(field_id=1)
    if table == FLOWS:
        m.exact.value = marker
    elif table == ROUTES:
        m.lpm.value, m.lpm.prefix_len = marker, 24
    else:
        m.ternary.value, m.ternary.mask = marker, b"\xff\xff\xff\x00"
        te.match.add(field_id=2).exact.value = b"\x01\xbb"
        te.priority = 10
    te.action.action.action_id = SET_PORT
    te.action.action.params.add(param_id=1, value=b"\x01")
    raw = u.SerializeToString()
    head, tail = raw.split(marker)
    return head, tail


class Encoder:
    """Batches of INSERTs as WriteRequest bytes, built by splicing keys into protobuf's encoding."""

    def __init__(self, election_low: int = 1) -> None:
        req = p4runtime_pb2.WriteRequest(device_id=1)
        req.election_id.low = election_low
        self.header = req.SerializeToString()
        self.templates = {t: _template(t) for t in (FLOWS, ROUTES, ACL)}
        # Cross-check the splice against protobuf itself for a few entries.
        for t in self.templates:
            for i in (0, 1, 77777):
                assert self.request(t, i, 1) == self._protobuf_request(t, i)

    def request(self, table: int, start: int, n: int) -> bytes:
        head, tail = self.templates[table]
        parts = [self.header]
        for i in range(start, start + n):
            u = head + _key(table, i) + tail
            parts.append(b"\x22" + _varint(len(u)) + u)  # WriteRequest.updates = field 4, LEN
        return b"".join(parts)

    def _protobuf_request(self, table: int, i: int) -> bytes:
        head, tail = self.templates[table]
        req = p4runtime_pb2.WriteRequest.FromString(self.header)
        req.updates.add().ParseFromString(head + _key(table, i) + tail)
        return req.SerializeToString()


# ------------------------------------------------------------------------------------------------
# the server process and a client
def _serve(conn) -> None:
    """Child process: a P4Runtime server on a NullDevice; answers "rss" and "stop" on `conn`."""
    from p4sim.runtime.device import NullDevice
    from p4sim.runtime.server import P4RuntimeServer

    server = P4RuntimeServer(NullDevice(), "127.0.0.1:0", 1).start()
    conn.send(server.port)
    while True:
        cmd = conn.recv()
        if cmd == "rss":
            gc.collect()
            conn.send(_rss_mib())
        else:
            server.stop(0)
            conn.send("stopped")
            return


class ServerProcess:
    def __init__(self) -> None:
        ctx = mp.get_context("spawn")  # no fork: grpc threads do not survive it
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_serve, args=(child,), daemon=True)
        self.proc.start()
        self.port: int = self.conn.recv()

    def rss_mib(self) -> float:
        self.conn.send("rss")
        return self.conn.recv()

    def stop(self) -> None:
        self.conn.send("stop")
        self.conn.recv()
        self.proc.join(10)


class Client:
    """A primary controller: raw-bytes Write/Read callables plus the generated stub."""

    def __init__(self, port: int, p4info: p4info_pb2.P4Info) -> None:
        import grpc

        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self.stub = p4runtime_pb2_grpc.P4RuntimeStub(self.channel)
        self.write_raw = self.channel.unary_unary("/p4.v1.P4Runtime/Write")
        self.read_raw = self.channel.unary_stream(
            "/p4.v1.P4Runtime/Read", request_serializer=p4runtime_pb2.ReadRequest.SerializeToString)
        self._done = threading.Event()

        def stream_iter() -> Iterator[p4runtime_pb2.StreamMessageRequest]:
            req = p4runtime_pb2.StreamMessageRequest()
            req.arbitration.device_id = 1
            req.arbitration.election_id.low = 1
            yield req
            self._done.wait()

        self.stream = self.stub.StreamChannel(stream_iter())
        assert next(self.stream).arbitration.status.code == 0
        cfg = p4runtime_pb2.SetForwardingPipelineConfigRequest(
            device_id=1, action=p4runtime_pb2.SetForwardingPipelineConfigRequest.VERIFY_AND_COMMIT)
        cfg.election_id.low = 1
        cfg.config.p4info.CopyFrom(p4info)
        self.stub.SetForwardingPipelineConfig(cfg)

    def read_count(self, table_id: int) -> int:
        """Wildcard-read a table; count entities in the raw responses (no client-side parsing)."""
        req = p4runtime_pb2.ReadRequest(device_id=1)
        req.entities.add().table_entry.table_id = table_id
        n = 0
        for chunk in self.read_raw(req):
            pos = 0
            while pos < len(chunk):  # ReadResponse: a run of field-1 length-delimited entities
                pos += 1
                size = shift = 0
                while True:
                    b = chunk[pos]
                    pos += 1
                    size |= (b & 0x7F) << shift
                    shift += 7
                    if b < 0x80:
                        break
                pos += size
                n += 1
        return n

    def close(self) -> None:
        self._done.set()
        self.channel.close()


def _rate(n: int, fn: Callable[[], None]) -> float:
    t0 = time.perf_counter()
    fn()
    return n / (time.perf_counter() - t0)


# ------------------------------------------------------------------------------------------------
# benchmarks
def bench_pipeline(seconds: float) -> dict[str, float]:
    """Packets per second through l3_forward in-process (no sockets): the interpreter's cost."""
    from scapy.all import IP, UDP, Ether, raw

    from p4sim.compiler.driver import compile_file
    from p4sim.dataplane.device import P4SimDevice
    from p4sim.runtime.state import SwitchState

    compiled = compile_file(EXAMPLE, defines=["ROUTES_SIZE=1048576"])
    sent: list[int] = [0]
    dev = P4SimDevice(lambda port, frame: sent.__setitem__(0, sent[0] + 1), 255)
    state = SwitchState(compiled.p4info)
    dev.commit_pipeline(compiled.p4info, compiled.device_config, state)
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
    return {"pipeline, in-process (packets/s)": n / dt}


def _splice_frames() -> dict[str, bytes]:
    """The three packets of the splice figure, as a host puts them on the wire."""
    from scapy.all import IP, TCP, UDP, Ether, raw

    client = Ether(src="02:00:00:00:01:01", dst="02:00:00:00:00:01")
    # A full-sized data segment of a spliced connection (MSS 1460 less the 12 timestamp bytes).
    data = raw(client / IP(src="10.0.1.1", dst="10.0.2.1", ttl=64, id=7)
               / TCP(sport=43210, dport=80, seq=1000, ack=2000, flags="PA", window=1024,
                     options=[("NOP", None), ("NOP", None), ("Timestamp", (12345, 67890))])
               / (b"d" * 1448))
    # A client's SYN toward a proxied service: no flow entry yet, so it goes to the controller.
    syn = raw(client / IP(src="10.0.1.1", dst="10.0.2.1", ttl=64, id=8)
              / TCP(sport=43211, dport=80, seq=5000, flags="S", window=64240,
                    options=[("MSS", 1460), ("SAckOK", b""), ("Timestamp", (1, 0)), ("NOP", None),
                             ("WScale", 7)]))
    udp = raw(client / IP(src="10.0.1.1", dst="10.0.2.1", ttl=64) / UDP(sport=5000, dport=53) / (b"q" * 32))
    return {"data": data, "syn": syn, "udp": udp}


def bench_pipeline_splice(seconds: float) -> dict[str, float]:
    """Packets per second through p4src/splice.p4 in-process, per packet kind and mixed.

    Rates are per CPU second of the bench process. The kinds: a data segment with timestamps hitting a `flows` translate entry (sequence,
    ack, window and TSval/TSecr rewritten, both checksums updated incrementally), a SYN to a
    service (services table, to the CPU port), and a UDP datagram routed by LPM. Every output
    is counted, so a packet that went nowhere would fail the bench.
    """
    from p4sim.compiler.driver import compile_file
    from p4sim.dataplane.device import P4SimDevice
    from p4sim.runtime.state import SwitchState

    compiled = compile_file(SPLICE, defines=["FLOWS_SIZE=65536"])
    out: list[int] = [0, 0]  # frames to ports, packet-ins
    dev = P4SimDevice(lambda port, frame: out.__setitem__(0, out[0] + 1), 255)
    dev.set_cpu_packet_handler(lambda frame: out.__setitem__(1, out[1] + 1))
    state = SwitchState(compiled.p4info)
    dev.commit_pipeline(compiled.p4info, compiled.device_config, state)
    p4i = compiled.p4info
    mac = 0x020000000000
    with state.lock:
        state.table(_ids(p4i, "tables", "routes")).insert(
            ((0x0A000200, 24),), 0, _ids(p4i, "actions", "route"), (2, mac | 2, mac | 0x0202))
        state.table(_ids(p4i, "tables", "services")).insert(
            (0x0A000201, 80), 0, _ids(p4i, "actions", "proxied"), (3,))
        # the flow C->S: seq -0x100, ack +0x7fffffff, TSval +0x20, TSecr -5, window scale 7 -> 8
        state.table(_ids(p4i, "tables", "flows")).insert(
            (1, 0x0A000101, 0x0A000201, 43210, 80), 0, _ids(p4i, "actions", "translate"),
            (3, mac | 3, mac | 0x0303, (1 << 32) - 0x100, 0x7FFFFFFF, 0x20, (1 << 32) - 5, 7, 8))
    frames = _splice_frames()
    results: dict[str, float] = {}

    # CPU time of this process, not wall time: the pipeline is single-threaded and never
    # waits, and on a shared machine wall time also counts the other processes' turns.
    def run(pattern: list[bytes]) -> float:
        n = 0
        before = out[0] + out[1]
        t0 = time.process_time()
        deadline = t0 + seconds
        receive = dev.receive
        while time.process_time() < deadline:
            for _ in range(200):
                for frame in pattern:
                    receive(1, frame)
            n += 200 * len(pattern)
        dt = time.process_time() - t0
        assert out[0] + out[1] - before == n, "a bench packet was dropped"
        return n / dt

    results["pipeline_pps_splice: mix of the three (packets/s)"] = run(list(frames.values()))
    results["splice: translated data segment with timestamps (packets/s)"] = run([frames["data"]])
    results["splice: SYN to a service, to the CPU port (packets/s)"] = run([frames["syn"]])
    results["splice: routed UDP (packets/s)"] = run([frames["udp"]])
    return results


def bench_p4runtime(n_single: int, n_batched: int, n_read: int) -> dict[str, float]:
    """Write rates per table shape (batches of 1 and of 1000) and the wildcard-read rate."""
    enc = Encoder()
    server = ServerProcess()
    client = Client(server.port, _bench_p4info(max(n_read, n_single + n_batched) * 2 + 2 * BATCH))
    out: dict[str, float] = {}
    next_i = {FLOWS: 0, ROUTES: 0, ACL: 0}
    names = {FLOWS: "exact 96-bit", ROUTES: "LPM /24", ACL: "ternary+exact"}
    try:
        for table in (FLOWS, ROUTES, ACL):
            i = next_i[table]
            singles = [enc.request(table, i + k, 1) for k in range(n_single)]
            i += n_single
            batches = [enc.request(table, i + k * BATCH, BATCH) for k in range(n_batched // BATCH)]
            i += len(batches) * BATCH
            next_i[table] = i
            if table != ACL:  # one update per RPC is per-RPC overhead: the same for every table
                out[f"write {names[table]}, batch 1 (writes/s)"] = _rate(
                    n_single, lambda s=singles: [client.write_raw(r) for r in s] and None)
            out[f"write {names[table]}, batch {BATCH} (writes/s)"] = _rate(
                len(batches) * BATCH, lambda b=batches: [client.write_raw(r) for r in b] and None)

        # What a Python controller sees: it builds and encodes the messages with protobuf itself.
        def with_protobuf() -> None:
            base = next_i[ROUTES]
            for k in range(n_batched // BATCH):
                req = p4runtime_pb2.WriteRequest(device_id=1)
                req.election_id.low = 1
                head, tail = enc.templates[ROUTES]
                for j in range(BATCH):
                    u = req.updates.add(type=p4runtime_pb2.Update.INSERT)
                    te = u.entity.table_entry
                    te.table_id = ROUTES
                    m = te.match.add(field_id=1)
                    m.lpm.value, m.lpm.prefix_len = _key(ROUTES, base + k * BATCH + j), 24
                    te.action.action.action_id = SET_PORT
                    te.action.action.params.add(param_id=1, value=b"\x01")
                client.stub.Write(req)
            next_i[ROUTES] = base + (n_batched // BATCH) * BATCH

        out[f"write LPM /24, batch {BATCH}, client encodes with protobuf (writes/s)"] = _rate(
            (n_batched // BATCH) * BATCH, with_protobuf)

        # Reads: top the exact table up to n_read entries, then one wildcard read of it.
        have = next_i[FLOWS]
        while have < n_read:
            n = min(BATCH, n_read - have)
            client.write_raw(enc.request(FLOWS, have, n))
            have += n
        t0 = time.perf_counter()
        got = client.read_count(FLOWS)
        dt = time.perf_counter() - t0
        out["read: entries in the wildcard read"] = got
        out["read: wildcard read of that table (entries/s)"] = got / dt
    finally:
        client.close()
        server.stop()
    return out


def bench_memory_p4runtime(n_entries: int) -> dict[str, float]:
    """Server RSS with n exact-match (96-bit key) entries written over P4Runtime in batches of 1000."""
    enc = Encoder()
    server = ServerProcess()
    client = Client(server.port, _bench_p4info(n_entries))
    try:
        before = server.rss_mib()
        t0 = time.perf_counter()
        for start in range(0, n_entries, BATCH):
            client.write_raw(enc.request(FLOWS, start, min(BATCH, n_entries - start)))
        dt = time.perf_counter() - t0
        after = server.rss_mib()
    finally:
        client.close()
        server.stop()
    return {"entries written over P4Runtime": n_entries,
            "server RSS with them (MiB)": after,
            "of which the entries (MiB)": after - before,
            f"write rate while filling, batch {BATCH} (writes/s)": n_entries / dt}


def bench_memory_direct(n_entries: int) -> dict[str, float]:
    """Resident memory with n exact-match entries inserted straight into the table (no P4Runtime)."""
    from p4sim.runtime.state import SwitchState

    gc.collect()
    before = _rss_mib()
    state = SwitchState(_bench_p4info(n_entries))
    table = state.table(FLOWS)
    with state.lock:
        for i in range(n_entries):
            table.insert((int.from_bytes(_key(FLOWS, i), "big"),), 0, SET_PORT, (i & 511,), 0)
    gc.collect()
    after = _rss_mib()
    return {"entries inserted directly": n_entries, "entries' RSS, direct (MiB)": after - before}


# ------------------------------------------------------------------------------------------------
# veth-to-veth forwarding through a p4sim process
# A sender that blasts one frame out of an interface for N seconds, and a receiver that counts the
# frames to 10.0.2.1 arriving on one: run as their own processes (shared with the controller's
# forwarding bench, bench/forwarding.py).
SENDER = r"""
import socket, sys, time
ifname, seconds = sys.argv[1], float(sys.argv[2])
frame = bytes.fromhex(sys.argv[3])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((ifname, 0))
n = 0
send = s.send
t_end = time.perf_counter() + seconds
while time.perf_counter() < t_end:
    for _ in range(100):
        try:
            send(frame)
            n += 1
        except OSError:   # ENOBUFS: the veth queue is full; that is the point of blasting
            pass
print(n, flush=True)
"""

RECEIVER = r"""
import socket, sys, time
ifname, seconds = sys.argv[1], float(sys.argv[2])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
s.bind((ifname, 0x0800))
s.settimeout(0.2)
print("ready", flush=True)
n = 0
t_end = time.perf_counter() + seconds
while time.perf_counter() < t_end:
    try:
        data, addr = s.recvfrom(2048)
    except TimeoutError:
        continue
    if addr[2] != 4 and data[30:34] == bytes([10, 0, 2, 1]):   # not our own; to the far host
        n += 1
print(n, flush=True)
"""


def rx_packets(ifname: str, netns: str | None = None) -> int:
    """The kernel's count of frames ``ifname`` received (in ``netns``, else this namespace)."""
    where = ["-n", netns] if netns else []
    out = subprocess.run(["ip", *where, "-s", "-j", "link", "show", "dev", ifname],
                         capture_output=True, text=True, check=True).stdout
    import json

    return int(json.loads(out)[0]["stats64"]["rx"]["packets"])


def bench_veth(seconds: float) -> dict[str, float] | str:
    """Forwarded packets/s: p4sim (l3_forward) between two namespaces on veth pairs.

    Returns a message instead of figures when namespaces cannot be created here.
    """
    from p4splice.lab import netdev
    from scapy.all import IP, UDP, Ether, raw

    from p4sim.compiler.driver import compile_file

    try:
        netdev.require_netns()
    except netdev.NetdevUnavailable as e:
        return f"skipped: network namespaces refused ({e})"
    p4sim_bin = shutil.which("p4sim", path=str(Path(sys.executable).parent)) or shutil.which("p4sim")
    if p4sim_bin is None:
        return "skipped: the p4sim command is not installed (pip install -e .)"
    compiled = compile_file(EXAMPLE)
    tid = _ids(compiled.p4info, "tables", "ipv4_lpm")
    aid = _ids(compiled.p4info, "actions", "forward")
    frame = raw(Ether(src="02:00:00:00:01:01", dst="02:00:00:00:00:fe")
                / IP(src="10.0.1.1", dst="10.0.2.1", ttl=64) / UDP(sport=7, dport=9) / (b"x" * 18))
    with tempfile.TemporaryDirectory() as tmp, netdev.Topology(prefix="p4b") as topo:
        cfg = Path(tmp) / "l3_forward.p4sim.json"
        cfg.write_bytes(compiled.device_config)
        h1, h2 = topo.add_netns(), topo.add_netns()
        p1 = topo.add_veth(ns_a=h1)
        p2 = topo.add_veth(ns_a=h2)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        switch = subprocess.Popen([p4sim_bin, str(cfg), "--device-id", "1", "-i", f"1@{p1.b}", "-i", f"2@{p2.b}",
                                   "--", "--grpc-server-addr", f"127.0.0.1:{port}"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            import grpc

            channel = grpc.insecure_channel(f"127.0.0.1:{port}")
            grpc.channel_ready_future(channel).result(timeout=30)
            done = threading.Event()

            def arbitration() -> Iterator[p4runtime_pb2.StreamMessageRequest]:
                req = p4runtime_pb2.StreamMessageRequest()
                req.arbitration.device_id = 1
                req.arbitration.election_id.low = 1
                yield req
                done.wait()

            stub = p4runtime_pb2_grpc.P4RuntimeStub(channel)
            stream = stub.StreamChannel(arbitration())
            next(stream)
            req = p4runtime_pb2.WriteRequest(device_id=1)
            req.election_id.low = 1
            te = req.updates.add(type=p4runtime_pb2.Update.INSERT).entity.table_entry
            te.table_id = tid
            m = te.match.add(field_id=1)
            m.lpm.value, m.lpm.prefix_len = bytes([10, 0, 2, 0]), 24
            te.action.action.action_id = aid
            te.action.action.params.add(param_id=1, value=bytes.fromhex("020000000201"))
            te.action.action.params.add(param_id=2, value=b"\x02")
            stub.Write(req)
            rx_before = rx_packets(p2.a, h2)
            receiver = subprocess.Popen(["ip", "netns", "exec", h2, sys.executable, "-c", RECEIVER, p2.a,
                                         str(seconds + 1.0)], stdout=subprocess.PIPE, text=True)
            assert receiver.stdout is not None
            receiver.stdout.readline()  # "ready"
            sender = subprocess.run(["ip", "netns", "exec", h1, sys.executable, "-c", SENDER, p1.a, str(seconds),
                                     frame.hex()], capture_output=True, text=True, check=True)
            received = int(receiver.communicate(timeout=seconds + 10)[0].strip())
            rx_after = rx_packets(p2.a, h2)
            done.set()
            channel.close()
        finally:
            switch.terminate()
            try:
                switch.wait(10)
            except subprocess.TimeoutExpired:
                switch.kill()
                switch.wait()
    sent = int(sender.stdout.strip())
    return {"veth: frames offered by the sender (frames/s)": sent / seconds,
            "veth: forwarded, counted by the receiver (packets/s)": received / seconds,
            "veth: forwarded, kernel rx counter at the receiver (packets/s)": (rx_after - rx_before) / seconds}


# ------------------------------------------------------------------------------------------------
def _table(title: str, results: dict[str, float] | str) -> None:
    print(f"\n### {title}\n")
    if isinstance(results, str):
        print(results)
        return
    print("| figure | value |\n|---|---:|")
    for k, v in results.items():
        print(f"| {k} | {v:,.0f} |")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="p4splice.bench.p4sim", description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0, help="duration of each packet benchmark")
    ap.add_argument("--entries", type=int, default=1_000_000, help="entries for the memory figures")
    ap.add_argument("--writes", type=int, default=2000, help="single-update Write RPCs per table")
    ap.add_argument("--batched", type=int, default=50_000, help="updates sent in batches of 1000 per table")
    ap.add_argument("--read-entries", type=int, default=100_000, help="table size for the read figure")
    ap.add_argument("--skip", action="append", default=[], choices=["pipeline", "p4runtime", "memory", "veth"],
                    help="leave out an area (repeatable)")
    args = ap.parse_args(argv)
    print(f"command: python -m p4splice.bench.p4sim {' '.join(argv if argv is not None else sys.argv[1:])}".rstrip())
    print(f"host: {socket.gethostname()}, {os.cpu_count()} CPUs, python {sys.version.split()[0]}, "
          f"{time.strftime('%Y-%m-%d')}")
    if "pipeline" not in args.skip:
        _table("Data plane", bench_pipeline(args.seconds))
        _table("Data plane: p4src/splice.p4", bench_pipeline_splice(args.seconds))
    if "veth" not in args.skip:
        _table("Forwarding veth to veth (l3_forward, p4sim process)", bench_veth(args.seconds))
    if "p4runtime" not in args.skip:
        _table("P4Runtime writes and reads (server process, loopback gRPC)",
               bench_p4runtime(args.writes, args.batched, args.read_entries))
    if "memory" not in args.skip:
        mem = bench_memory_p4runtime(args.entries)
        mem.update(bench_memory_direct(args.entries))
        _table("Table memory", mem)
    return 0


if __name__ == "__main__":
    sys.exit(main())
