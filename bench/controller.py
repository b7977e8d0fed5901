"""``make bench`` for the controller: splice install latency, handshakes per second, P4Runtime writes.

Figures are printed as Markdown tables with the command and the machine; record them in
docs/benchmarks.md ("Controller"). Nothing here is a test: it measures, it does not assert.

Set-up: p4sim runs ``p4src/splice.p4`` in a child process (its own interpreter, so the switch and
the controller each get a CPU, as on a real deployment) with MemoryPorts 1 = client, 2 = server,
3 = proxy host. A driver thread in that child plays C, S and P with frames crafted by scapy
*before* the clock starts, answering what comes out of the ports. The controller is a ``Daemon``
in this process, reached by the proxy over its real Unix socket (``ProxyApiClient``). Both
processes read CLOCK_MONOTONIC, so a time taken in the child can be set against one taken here.

* Splice install latency: the flow is held (``splice_prepare``, untimed); the child starts
  injecting C->S probes (pure ACKs with a marked window) every ``--probe-us``; the clock starts
  when the proxy sends ``splice`` and stops when the first probe leaves the *server's* port, i.e.
  went through the direct C->S entry (before that the hold entry sends it to the proxy's port).
  So the figure is request -> entries active in the data plane, to within one probe interval.
  The proxy's round trip (request -> reply) and the Write RPC alone (the session's latency hook)
  are reported alongside.
* Handshakes per second: claim-1 handshakes (C's SYN, S's SYN-ACK, P's SYN-ACK, C's ACK, P's
  upstream SYN, P's ACK) with ``window`` of them in flight; a new one starts when the last frame
  of an earlier one is sent. The rate is handshakes / (first SYN -> controller has every flow
  established with its four translate entries written). Run by the controller (packet-ins and
  packet-outs) and by the switch (digests; ``--handshakes-by``), side by side, with the share the
  switch ran and the packet-ins, packet-outs and digests per handshake.
* P4Runtime writes per second: the daemon's own session writing flows entries (batch 1 in turn,
  batch 1 with 16 in flight, batches of 4 -- a handshake's step -- and of 1000), entries encoded
  inside the timed loop, as the controller does.
* The floor under all of these: Python gRPC alone, an echo server in another process (unary round
  trip, CPU per call and per stream message on each end).

``--target p4sim|bmv2`` puts the switch in a process of its own with ports on veths instead
(``ExternalSwitch``); the driver then uses the veths' host ends.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import multiprocessing as mp
import os
import platform
import pstats
import queue
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from p4splice.controller.config import DEVICE_CONFIG_FILES, P4INFO_FILE

ROOT = Path(__file__).resolve().parents[1]
PROGRAM = ROOT / "p4src" / "splice.p4"
DEVICE, CPU = 1, 255
C_PORT, S_PORT, P_PORT = 1, 2, 3
SW_MAC = "02:00:00:00:00:fe"
C_MAC, S_MAC, P_MAC = "02:00:00:00:01:01", "02:00:00:00:02:01", "02:00:00:00:03:01"
C_IP, S_IP, S_TCP = "10.0.1.1", "10.0.2.1", 80
U32 = 0xFFFFFFFF
# Fixed ISNs and timestamps: flows differ by the client port only.
ISN_C, ISN_S, ISN_P1, ISN_P2 = 4294967000, 1000, 5000, 70
TS_C, TS_S, TS_P1, TS_P2 = 100000, 500000, 7000, 9000
SYN, ACK, SYN_ACK = 0x02, 0x10, 0x12
ETH_P_ALL = 0x0003
PROBE_WINDOW = 0x0B5E  # the splice probe's TCP window: no handshake frame uses it
PROBE_MARK = PROBE_WINDOW.to_bytes(2, "big")


# ------------------------------------------------------------------------------------------------
# the child: p4sim, its ports, and C, S and P
def _frames(sport: int) -> dict[str, bytes]:
    """One claim-1 handshake's frames from C, S and P (and a C->S probe), as bytes."""
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether

    def tcp(src: str, sp: int, dst: str, dp: int, smac: str, flags: str, seq: int, ack: int = 0,
            options: list[Any] | None = None, window: int = 1000, payload: bytes = b"") -> bytes:
        pkt = Ether(src=smac, dst=SW_MAC) / IP(src=src, dst=dst, ttl=64) / TCP(
            sport=sp, dport=dp, flags=flags, seq=seq, ack=ack, window=window, options=options or [])
        return bytes(pkt / payload if payload else pkt)

    def ts(v: int, e: int = 0) -> tuple[str, tuple[int, int]]:
        return ("Timestamp", (v, e))

    c1 = (ISN_C + 1) & U32
    return {
        "c_syn": tcp(C_IP, sport, S_IP, S_TCP, C_MAC, "S", ISN_C, window=64240,
                     options=[("MSS", 1460), ("SAckOK", b""), ts(TS_C), ("NOP", None), ("WScale", 7)]),
        "s_syn_ack": tcp(S_IP, S_TCP, C_IP, sport, S_MAC, "SA", ISN_S, c1, window=65160,
                         options=[("MSS", 1400), ("SAckOK", b""), ts(TS_S, TS_C), ("NOP", None), ("WScale", 9)]),
        "p_syn_ack": tcp(S_IP, S_TCP, C_IP, sport, P_MAC, "SA", ISN_P1, c1, window=65000,
                         options=[("MSS", 1460), ("SAckOK", b""), ts(TS_P1, TS_C), ("NOP", None), ("WScale", 8)]),
        "c_ack": tcp(C_IP, sport, S_IP, S_TCP, C_MAC, "A", c1, ISN_S + 1,
                     options=[("NOP", None), ("NOP", None), ts(TS_C + 1, TS_S)]),
        "p_syn": tcp(C_IP, sport, S_IP, S_TCP, P_MAC, "S", ISN_P2, window=64000,
                     options=[("MSS", 1460), ("SAckOK", b""), ts(TS_P2), ("NOP", None), ("WScale", 6)]),
        "p_ack": tcp(C_IP, sport, S_IP, S_TCP, P_MAC, "A", ISN_P2 + 1, ISN_S + 1,
                     options=[("NOP", None), ("NOP", None), ts(TS_P2 + 1, TS_S)]),
        # A pure ACK, marked by its window: a data probe every 100 µs would meet the hold and go
        # to the controller (no real sender sends into a hold at that rate).
        "probe": tcp(C_IP, sport, S_IP, S_TCP, C_MAC, "A", c1, ISN_S + 1, window=PROBE_WINDOW,
                     options=[("NOP", None), ("NOP", None), ts(TS_C + 2, TS_S)]),
    }


class _Tagged:
    """Stands in for a MemoryPort's ``sent`` queue: every port's frames land in one queue with
    the port number, so one driver thread can block on all three ports at once."""

    def __init__(self, out: queue.SimpleQueue[tuple[int, bytes]], port: int) -> None:
        self.out, self.port = out, port

    def put(self, frame: bytes) -> None:
        self.out.put((self.port, frame))


def _client_port(raw: bytes) -> tuple[int, int]:
    """(client port, TCP flags) of an untagged IPv4/TCP frame without IP options."""
    sport, dport = struct.unpack_from("!HH", raw, 34)
    return (dport if sport == S_TCP else sport), raw[47]


class _RawPort:
    """The host end of a veth whose other end is a port of an external switch: frames go out with
    ``inject``; a reader thread puts what the switch sends into the shared queue, tagged."""

    def __init__(self, ifname: str, port: int, out: queue.SimpleQueue[tuple[int, bytes]]) -> None:
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self.sock.bind((ifname, 0))
        self.port, self.out = port, out
        threading.Thread(target=self._read, name=f"bench-rx-{ifname}", daemon=True).start()

    def inject(self, frame: bytes) -> None:
        self.sock.send(frame)

    def _read(self) -> None:
        while True:
            try:
                frame, addr = self.sock.recvfrom(65535)
            except OSError:
                return  # closed
            if addr[2] != socket.PACKET_OUTGOING:  # our own injections show up too
                self.out.put((self.port, frame))


class _Child:
    """C, S and P around the switch: p4sim's SwitchProcess with MemoryPorts in this process
    (``ifaces`` None), or the host ends of veths to an external switch (port -> interface)."""

    def __init__(self, ifaces: dict[int, str] | None = None) -> None:
        self.out: queue.SimpleQueue[tuple[int, bytes]] = queue.SimpleQueue()
        self.proc: Any = None
        self.ports: dict[int, Any]
        if ifaces is None:
            from p4sim.dataplane.ports import MemoryPort
            from p4sim.switch import SwitchProcess

            self.proc = SwitchProcess(device_id=DEVICE, grpc_addr="127.0.0.1:0", cpu_port=CPU)
            self.ports = {n: MemoryPort(n) for n in (C_PORT, S_PORT, P_PORT)}
            for n, p in self.ports.items():
                p.sent = _Tagged(self.out, n)  # type: ignore[assignment]
                self.proc.ports.add(p)
            self.proc.start()
            self.addr = self.proc.grpc_addr
        else:
            self.ports = {n: _RawPort(ifname, n, self.out) for n, ifname in ifaces.items()}
            self.addr = ""
        self.frames: dict[int, dict[str, bytes]] = {}

    def prepare(self, sports: Sequence[int]) -> int:
        for sp in sports:
            if sp not in self.frames:
                self.frames[sp] = _frames(sp)
        return len(self.frames)

    def _drain(self) -> int:
        n = 0
        while True:
            try:
                self.out.get_nowait()
                n += 1
            except queue.Empty:
                return n

    def handshakes(self, sports: Sequence[int], window: int, stall: float = 10.0) -> dict[str, Any]:
        """Drive these handshakes, ``window`` at a time. Returns per-flow (first SYN, last ACK) times."""
        self._drain()
        inject = {n: p.inject for n, p in self.ports.items()}
        todo = iter(sports)
        state: dict[int, int] = {}
        start: dict[int, float] = {}
        done: dict[int, float] = {}
        dups = 0
        got_c_sa, got_p_syn, answered, finished = 1, 2, 4, 8
        cpu0 = time.process_time()

        def begin() -> None:
            sp = next(todo, None)
            if sp is not None:
                state[sp] = 0
                start[sp] = time.monotonic()
                inject[C_PORT](self.frames[sp]["c_syn"])

        for _ in range(window):
            begin()
        remaining = len(sports)
        while remaining:
            try:
                port, raw = self.out.get(timeout=stall)
            except queue.Empty:
                return {"error": f"stalled: {remaining} handshakes unfinished after {stall}s without a frame"}
            sp, flags = _client_port(raw)
            st = state.get(sp)
            if st is None or st & finished:
                dups += 1
                continue
            f = self.frames[sp]
            if port == S_PORT:
                if flags == SYN:  # C's SYN, forwarded untouched: S answers
                    inject[S_PORT](f["s_syn_ack"])
                continue  # C's ACK reaching S needs no answer
            if port == C_PORT and flags == SYN_ACK:
                st |= got_c_sa
            elif port == P_PORT and flags == SYN:  # the second request
                if st & got_p_syn:
                    dups += 1
                st |= got_p_syn
            elif port == P_PORT and flags == ACK:  # leg 1 complete: P opens its upstream leg
                inject[P_PORT](f["p_syn"])
            elif port == P_PORT and flags == SYN_ACK:  # S's side, from the controller
                inject[P_PORT](f["p_ack"])
                st |= finished
                done[sp] = time.monotonic()
                remaining -= 1
                begin()
            if st & got_c_sa and st & got_p_syn and not st & answered:
                st |= answered
                inject[P_PORT](f["p_syn_ack"])
                inject[C_PORT](f["c_ack"])
            state[sp] = st
        return {"start": min(start.values()), "end": max(done.values()),
                "latency": [done[s] - start[s] for s in sports], "dups": dups,
                "cpu": time.process_time() - cpu0}

    def probe_start(self, sport: int) -> None:
        self._drain()
        self._probe_sport = sport

    def probe_run(self, interval: float, timeout: float) -> dict[str, Any]:
        """Inject the probe every ``interval`` until a copy leaves the server's port."""
        sport = self._probe_sport
        frame = self.frames[sport]["probe"]
        inject = self.ports[C_PORT].inject
        deadline = time.monotonic() + timeout
        sent = 0
        while time.monotonic() < deadline:
            inject(frame)
            sent += 1
            until = time.monotonic() + interval
            while (left := until - time.monotonic()) > 0:
                try:
                    port, raw = self.out.get(timeout=left)
                except queue.Empty:
                    break
                if port == S_PORT and raw[0:6] == bytes.fromhex(S_MAC.replace(":", "")) \
                        and _client_port(raw)[0] == sport and raw[48:50] == PROBE_MARK:
                    return {"seen": time.monotonic(), "probes": sent}
        return {"error": f"probe for port {sport} never reached the server", "probes": sent}


def _child_main(conn: Any, ifaces: dict[int, str] | None) -> None:
    child = _Child(ifaces)
    conn.send(child.addr)
    while True:
        cmd, *args = conn.recv()
        if cmd == "stop":
            if child.proc is not None:
                child.proc.stop()
            conn.send("stopped")
            return
        if cmd == "probe":
            # Acknowledge first, then probe: the parent starts its clock after the acknowledgement,
            # so no probe interval is lost to the pipe.
            child.probe_start(args[0])
            conn.send("probing")
            conn.send(child.probe_run(*args[1:]))
            continue
        conn.send(getattr(child, cmd)(*args))


class SwitchChild:
    """The C/S/P driver (and the embedded p4sim switch, unless ``ifaces`` name the veths of an
    external one), in a child process behind a pipe."""

    def __init__(self, ifaces: dict[int, str] | None = None) -> None:
        ctx = mp.get_context("spawn")  # gRPC threads do not survive fork
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_child_main, args=(child, ifaces), daemon=True)
        self.proc.start()
        self.addr: str = self.conn.recv()
        self._lock = threading.Lock()

    def call(self, cmd: str, *args: Any) -> Any:
        with self._lock:
            self.conn.send((cmd, *args))
            return self.conn.recv()

    async def acall(self, cmd: str, *args: Any) -> Any:
        # In a thread: the controller's event loop must keep running while the child works.
        return await asyncio.to_thread(self.call, cmd, *args)

    def stop(self) -> None:
        try:
            self.call("stop")
        finally:
            self.proc.join(10)


# ------------------------------------------------------------------------------------------------
# the controller side
def _pct(values: Sequence[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def _wire(sport: int) -> dict[str, str]:
    return {"client": f"{C_IP}:{sport}", "server": f"{S_IP}:{S_TCP}"}


class ExternalSwitch(contextlib.AbstractContextManager["ExternalSwitch"]):
    """The switch of ``target`` (p4sim's own process, or BMv2's simple_switch_grpc from PATH) in
    a process of its own, its ports 1-3 on veth pairs whose host ends the driver uses."""

    def __init__(self, target: str, log_dir: Path) -> None:
        self.target, self.log_dir = target, log_dir
        self.ifaces: dict[int, str] = {}
        self.addr = ""
        self._topo: Any = None
        self._popen: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ExternalSwitch:
        from p4splice.lab import netdev
        from p4splice.lab.topology import switch_argv

        from p4sim.launch import LaunchError, free_port, wait_listening

        try:
            self._topo = netdev.Topology()
            far: list[tuple[int, str]] = []
            for port in (C_PORT, S_PORT, P_PORT):
                pair = self._topo.add_veth()  # offloads off: the switch sees real segments
                self.ifaces[port] = pair.a
                far.append((port, pair.b))
            grpc_port = free_port()
            self.addr = f"127.0.0.1:{grpc_port}"
            self.log_dir.mkdir(parents=True, exist_ok=True)
            argv = switch_argv(self.target, far, self.addr, self.log_dir / f"bench-{self.target}.log",
                               cpu_port=CPU, device_id=DEVICE)
            with open(self.log_dir / f"bench-{self.target}.out", "ab") as out:
                self._popen = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                               stdin=subprocess.DEVNULL)
            wait_listening(grpc_port, self._popen, timeout=60, what=Path(argv[0]).name)
        except (LaunchError, OSError, RuntimeError) as e:  # NetdevError and LabError are RuntimeErrors
            self.__exit__(None, None, None)
            raise BenchError(f"cannot start the {self.target} switch on veths: {e}") from e
        return self

    def cpu_seconds(self) -> float:
        """User + system CPU time of the switch process so far."""
        from .offload import read_cpu

        assert self._popen is not None
        cpu = read_cpu(self._popen.pid)
        return cpu.user + cpu.system

    def __exit__(self, *exc: object) -> None:
        if self._popen is not None:
            from p4sim.launch import stop

            stop(self._popen)
            self._popen = None
        if self._topo is not None:
            self._topo.close()
            self._topo = None


@dataclass
class Lab:
    child: SwitchChild
    grpc_addr: str
    pipeline: tuple[Any, bytes]  # P4Info message, device config
    tmp: Path
    switch_cpu: Callable[[], float] | None = None  # an external switch's CPU seconds so far
    next_port: int = 20000  # the next client port no handshake has used
    digest_batch: int | str = "auto"  # the daemon's digest_batch

    def config(self, handshakes: str = "switch") -> Any:
        import ipaddress

        from p4splice.controller.config import ControllerConfig, RouteConfig, ServiceConfig

        return ControllerConfig(
            grpc_addr=self.grpc_addr, device_id=DEVICE, election_id=10, pipeline="push", cpu_port=CPU,
            services=(ServiceConfig(S_IP, S_TCP, P_PORT),),
            routes=(RouteConfig(ipaddress.IPv4Network("10.0.1.0/24"), C_PORT, SW_MAC, C_MAC),
                    RouteConfig(ipaddress.IPv4Network("10.0.2.0/24"), S_PORT, SW_MAC, S_MAC)),
            proxy_socket=str(self.tmp / "proxy.sock"), admin_socket=str(self.tmp / "admin.sock"),
            metrics_port=None, switch_mac=SW_MAC, handshakes=handshakes, digest_batch=self.digest_batch,
            # The bench drives handshakes as fast as the switch takes them, to find how many the
            # controller keeps up with; a drain (overload.py) would send the rest unproxied and
            # the driver, waiting for the second request, would stall.
            overload_lag=0.0,
        )


async def _up(lab: Lab, handshakes: str = "switch") -> tuple[Any, Any]:
    from p4splice.controller.daemon import Daemon, freeze_heap
    from p4splice.controller.proxyapi.client import ProxyApiClient

    d = Daemon(lab.config(handshakes), pipeline=lab.pipeline)
    await d.start()
    freeze_heap()  # as the daemon's own main does once started
    proxy = ProxyApiClient(d.config.proxy_socket, "bench-proxy")
    await proxy.connect()
    await proxy.register(P_PORT, P_MAC, heartbeat_ms=1000)
    return d, proxy


def _echo_server(port_out: Any) -> None:
    """Child process: a gRPC server (the synchronous one, as p4sim's) that echoes a unary call
    and every message of a bidirectional stream. No P4Runtime, no work: the runtime's own cost."""
    from concurrent import futures

    import grpc

    def unary(req: bytes, ctx: Any) -> bytes:
        return req

    def stream(reqs: Any, ctx: Any) -> Any:
        yield from reqs

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("floor.Echo", {
        "Unary": grpc.unary_unary_rpc_method_handler(unary),
        "Stream": grpc.stream_stream_rpc_method_handler(stream)}),))
    port_out.send(server.add_insecure_port("127.0.0.1:0"))
    server.start()
    server.wait_for_termination()


async def bench_grpc_floor(n: int) -> dict[str, float]:
    """What Python gRPC itself costs per message here, between two processes on loopback: the
    floor under every controller figure (a handshake is ~10 stream messages and ~2 Write RPCs)."""
    import grpc

    from .offload import read_runtime

    ctx = mp.get_context("spawn")
    ours, theirs = ctx.Pipe()
    proc = ctx.Process(target=_echo_server, args=(theirs,), daemon=True)
    proc.start()
    out: dict[str, float] = {}

    def server_cpu() -> float:
        assert proc.pid is not None
        return read_runtime(proc.pid)

    try:
        if not ours.poll(30):
            raise BenchError("the gRPC echo server did not start")
        async with grpc.aio.insecure_channel(f"127.0.0.1:{ours.recv()}") as ch:
            unary = ch.unary_unary("/floor.Echo/Unary")
            msg = bytes(100)
            for _ in range(50):
                await unary(msg)
            rtts = []
            cpu0, server0 = time.process_time(), server_cpu()
            for _ in range(n):
                t0 = time.perf_counter()
                await unary(msg)
                rtts.append(time.perf_counter() - t0)
            out["unary call, round trip p50 (ms)"] = _pct(rtts, 0.5) * 1e3
            out["unary call, caller's CPU per call (µs)"] = (time.process_time() - cpu0) / n * 1e6
            out["unary call, server's CPU per call (µs)"] = (server_cpu() - server0) / n * 1e6
            # Stream messages with 16 in flight, as packet-ins and packet-outs flow under load.
            call = ch.stream_stream("/floor.Echo/Stream")()
            window = 16
            for _ in range(window):
                await call.write(msg)
            cpu0, server0 = time.process_time(), server_cpu()
            for i in range(n):
                await call.read()
                if i + window < n:
                    await call.write(msg)
            out["stream, caller's CPU per message sent and per message received (µs)"] = \
                (time.process_time() - cpu0) / n / 2 * 1e6
            out["stream, server's CPU per message received and per message sent (µs)"] = \
                (server_cpu() - server0) / n / 2 * 1e6
            await call.done_writing()
    finally:
        proc.terminate()
        proc.join(5)
    return out


async def bench_writes(d: Any, n_single: int, n_batched: int) -> dict[str, float]:
    from p4splice.controller import dataplane as dp
    from p4splice.controller.p4rt.entities import Update, UpdateType
    from p4splice.controller.splice.model import EntryMatch

    sw = d.session
    smac, dmac = int(SW_MAC.replace(":", ""), 16), int(S_MAC.replace(":", ""), 16)
    out: dict[str, float] = {}
    base = [0]

    def entries(n: int) -> list[Any]:
        # Distinct flows keys (another client network than the handshakes'), built inside the
        # timed loop's caller as the orchestrator builds them per command.
        b = base[0]
        base[0] += n
        return [dp.flow_translate(EntryMatch(1, f"10.9.{(b + i) >> 16 & 255}.{(b + i) >> 8 & 255}",
                                             1024 + (b + i) % 60000, S_IP, S_TCP),
                                  S_PORT, smac, dmac, 1, 2, 3, 4, 7, 9, idle_timeout_ns=300 * 10**9)
                for i in range(n)]

    async def cleanup(es: list[Any]) -> None:
        for i in range(0, len(es), 1000):
            # The action may stay: a DELETE is matched on the key alone.
            await sw.write([Update(UpdateType.DELETE, e) for e in es[i:i + 1000]])

    es = entries(n_single)
    t0 = time.perf_counter()
    for e in es:
        await sw.write([Update(UpdateType.INSERT, e)])
    out["insert, batch 1, one at a time (writes/s)"] = n_single / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    for e in es:
        await sw.write([Update(UpdateType.MODIFY, e)])
    out["modify, batch 1, one at a time (writes/s)"] = n_single / (time.perf_counter() - t0)
    await cleanup(es)

    es = entries(n_single)
    sem = asyncio.Semaphore(16)

    async def one(e: Any) -> None:
        async with sem:
            await sw.write([Update(UpdateType.INSERT, e)])

    t0 = time.perf_counter()
    await asyncio.gather(*(one(e) for e in es))
    out["insert, batch 1, 16 in flight (writes/s)"] = n_single / (time.perf_counter() - t0)
    await cleanup(es)

    for batch in (4, 1000):
        n = max(batch, n_batched // batch * batch) if batch > 4 else max(4, n_single // 4 * 4)
        es = entries(n)
        t0 = time.perf_counter()
        for i in range(0, n, batch):
            await sw.write([Update(UpdateType.INSERT, e) for e in es[i:i + batch]])
        out[f"insert, batches of {batch} (writes/s)"] = n / (time.perf_counter() - t0)
        await cleanup(es)

    # The client's own share, no RPC: filling and serializing one flows update with protobuf.
    from p4.v1 import p4runtime_pb2 as pb

    ups = [Update(UpdateType.INSERT, e) for e in entries(1000)]
    index = sw.index
    t0 = time.perf_counter()
    req = pb.WriteRequest(device_id=DEVICE)
    for u in ups:
        u.fill(index, req.updates.add())
    req.SerializeToString()
    out["client: fill + serialize one flows update (µs)"] = (time.perf_counter() - t0) / len(ups) * 1e6
    return out


async def run_handshakes(lab: Lab, d: Any, sports: list[int], window: int,
                         profile: cProfile.Profile | None = None) -> dict[str, float]:
    await lab.child.acall("prepare", sports)
    before = d.metrics.value("p4splice_handshakes_total", result="established")
    stats0 = d.orch.core.stats()
    messages0 = _messages(d)
    writes: list[float] = []
    hook = d.session.on_write_latency
    d.session.on_write_latency = lambda s: (writes.append(s), hook(s) if hook else None)
    cpu0 = time.process_time()
    switch0 = lab.switch_cpu() if lab.switch_cpu else 0.0
    if profile is not None:
        profile.enable()
    try:
        res = await lab.child.acall("handshakes", sports, window)
        if "error" in res:
            raise RuntimeError(res["error"])
        deadline = time.monotonic() + 30
        while d.metrics.value("p4splice_handshakes_total", result="established") - before < len(sports):
            if time.monotonic() > deadline:
                raise RuntimeError("the controller did not establish every handshake")
            await asyncio.sleep(0.001)
        await d.orch.drain()
        t_end = time.monotonic()
    finally:
        if profile is not None:
            profile.disable()
        d.session.on_write_latency = hook
    cpu = time.process_time() - cpu0
    n = len(sports)
    stats = d.orch.core.stats()
    messages = {k: v - messages0[k] for k, v in _messages(d).items()}
    switch_run = stats["handshake_switch_leg2_up"] - stats0["handshake_switch_leg2_up"]
    wall = t_end - res["start"]
    lat = res["latency"]
    if lab.switch_cpu is None:
        switch = {"switch+driver CPU per handshake (ms)": res["cpu"] / n * 1e3}
    else:
        switch = {"switch CPU per handshake (ms)": (lab.switch_cpu() - switch0) / n * 1e3,
                  "driver CPU per handshake (ms)": res["cpu"] / n * 1e3}
    return {
        "handshakes by": d.config.handshakes, "handshakes": n, "window": window,
        "handshakes/s": n / wall,
        "run by the switch (%)": switch_run / n * 100,
        "packet-ins per handshake": messages["packet_ins"] / n,
        "packet-outs per handshake": messages["packet_outs"] / n,
        "digests per handshake": messages["digests"] / n,
        "driver's handshake time p50 (ms)": _pct(lat, 0.5) * 1e3,
        "driver's handshake time p99 (ms)": _pct(lat, 0.99) * 1e3,
        "controller CPU per handshake (ms)": cpu / n * 1e3,
        **switch,
        "controller CPU busy (%)": cpu / wall * 100,
        "Write RPCs per handshake": len(writes) / n,
        "Write RPC p50 (ms)": _pct(writes, 0.5) * 1e3 if writes else 0.0,
        "duplicate frames (re-sent second requests etc.)": res["dups"],
    }


def _messages(d: Any) -> dict[str, float]:
    """Packet-ins, packet-outs and handshake digests the daemon has handled so far."""
    def total(name: str) -> float:
        return sum(s.value for m in d.metrics.registry.collect() if m.name == name
                   for s in m.samples if s.name == name + "_total")

    return {"packet_ins": total("p4splice_packet_ins"), "packet_outs": total("p4splice_packet_outs"),
            "digests": total("p4splice_handshake_digests")}


async def run_splices(lab: Lab, d: Any, proxy: Any, sports: list[int], probe_us: float) -> dict[str, float]:
    api, active, rpc, rpcs, probes = [], [], [], [], []
    hook = d.session.on_write_latency
    cur: list[float] = []
    d.session.on_write_latency = lambda s: (cur.append(s), hook(s) if hook else None)
    try:
        for sp in sports:
            assert await proxy.splice_prepare(_wire(sp)) == "holding"
            got = await asyncio.to_thread(_probe_begin, lab.child, sp, probe_us / 1e6)
            cur.clear()
            t0 = time.monotonic()
            deltas = await proxy.splice(_wire(sp), 0, 0, 0, 0)
            t_reply = time.monotonic()
            assert (deltas.c2s, deltas.s2c) == (0, 0)
            rpc_now = list(cur)
            res = await asyncio.to_thread(got)
            if "error" in res:
                raise RuntimeError(res["error"])
            api.append(t_reply - t0)
            active.append(res["seen"] - t0)
            rpc.append(sum(rpc_now))
            rpcs.append(len(rpc_now))
            probes.append(res["probes"])
    finally:
        d.session.on_write_latency = hook
    out: dict[str, float] = {"splices": len(sports)}
    for name, xs in (("request -> entries active (probe seen at S)", active),
                     ("request -> reply at the proxy", api),
                     ("Write RPC(s) alone", rpc)):
        out[f"{name}, p50 (ms)"] = _pct(xs, 0.5) * 1e3
        out[f"{name}, p99 (ms)"] = _pct(xs, 0.99) * 1e3
    out["Write RPCs per splice"] = sum(rpcs) / len(rpcs)
    out["probe interval (µs)"] = probe_us
    return out


def _probe_begin(child: SwitchChild, sport: int, interval: float) -> Callable[[], dict[str, Any]]:
    """Start the child probing (returns once it is); the callable waits for the result."""
    child._lock.acquire()
    child.conn.send(("probe", sport, interval, 5.0))
    assert child.conn.recv() == "probing"

    def result() -> dict[str, Any]:
        try:
            return child.conn.recv()
        finally:
            child._lock.release()
    return result


def _take_ports(lab: Lab, n: int) -> list[int]:
    """``n`` client ports no earlier handshake of the run used (the switch's slots outlive them)."""
    first = lab.next_port
    lab.next_port += n
    return list(range(first, first + n))


def _profile_report(prof: cProfile.Profile, n: int, top: int = 25) -> str:
    st = pstats.Stats(prof)
    groups: dict[str, float] = defaultdict(float)
    total = 0.0
    for (fname, _line, func), (_cc, _nc, tt, _ct, _callers) in st.stats.items():  # type: ignore[attr-defined]
        total += tt
        f = fname.replace("\\", "/")
        if "google/protobuf" in f or "_pb2" in f:
            g = "protobuf (pure Python): encode/decode"
        elif "/grpc/" in f or "cygrpc" in f or func.startswith("<method") and "grpc" in func:
            g = "grpc.aio"
        elif "/asyncio/" in f or "selectors" in f:
            g = "asyncio event loop"
        elif "/controller/p4rt/" in f:
            g = "controller p4rt: entities, session"
        elif "/controller/splice/" in f:
            g = "splice core"
        elif "/controller/proxyapi/" in f:
            g = "proxy API"
        elif "/controller/" in f:
            g = "orchestrator, frames, dataplane"
        elif "prometheus_client" in f:
            g = "prometheus metrics"
        elif "logging" in f:
            g = "logging"
        elif fname == "~":
            g = f"builtins: {func}" if tt / max(total, 1e-9) > 0.02 else "builtins, other"
        else:
            g = "other"
        groups[g] += tt
    lines = [f"cProfile of the controller process over {n} handshakes (own time by area; "
             f"total {total:.2f} s = {total / n * 1e3:.2f} ms per handshake, profiler overhead included)", ""]
    for g, tt in sorted(groups.items(), key=lambda kv: -kv[1]):
        lines.append(f"  {tt / total * 100:5.1f} %  {tt / n * 1e3:6.3f} ms/handshake  {g}")
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(top)
    body = buf.getvalue()
    cut = body.find("   ncalls")
    lines += ["", f"top {top} functions by own time:", body[cut:] if cut >= 0 else body]
    return "\n".join(lines)


def _table(title: str, rows: dict[str, float] | list[dict[str, float]]) -> None:
    print(f"\n### {title}\n")
    if isinstance(rows, list):
        keys = list(rows[0])
        print("| " + " | ".join(keys) + " |")
        print("|" + "---:|" * len(keys))
        for r in rows:
            print("| " + " | ".join(_fmt(r[k]) for k in keys) + " |")
        return
    print("| figure | value |\n|---|---:|")
    for k, v in rows.items():
        print(f"| {k} | {_fmt(v)} |")


def _fmt(v: float | str) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, int) or float(v).is_integer() and abs(v) >= 10:
        return f"{int(v):,}"
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.2f}"


def _pipeline(args: argparse.Namespace) -> tuple[Any, bytes]:
    """P4Info and device config: p4sim compiles p4src/ here; BMv2's come from p4c-bm2-ss's build."""
    if args.target == "bmv2":
        from p4splice.controller.p4rt.p4info import load_p4info

        p4info, config = args.build_dir / P4INFO_FILE, args.build_dir / DEVICE_CONFIG_FILES["bmv2"]
        for f in (p4info, config):
            if not f.exists():
                raise BenchError(f"{f} is missing: make build TARGET=bmv2 P4DEFINES=\"FLOWS_SIZE={args.flows_size}"
                                 f" FLOWS_IDLE_TIMEOUT=0\" BUILD={args.build_dir}")
        return load_p4info(str(p4info)), config.read_bytes()
    from p4sim.compiler.driver import compile_file

    # A bigger flows table than the default 4096 entries so that every run fits in one pipeline;
    # the table is a hash map, its size does not change the cost of an operation.
    compiled = compile_file(PROGRAM, defines=[f"FLOWS_SIZE={args.flows_size}"])
    return compiled.p4info, compiled.device_config


class BenchError(RuntimeError):
    """The bench cannot run as asked (a missing build, no switch binary, namespaces refused)."""


async def amain(args: argparse.Namespace) -> None:
    pipeline = _pipeline(args)
    tmp = Path(tempfile.mkdtemp(prefix="p4splice-bench-"))
    with contextlib.ExitStack() as stack:
        if args.target == "embedded":
            child = SwitchChild()
            lab = Lab(child, child.addr, pipeline, tmp)
        else:
            ext = stack.enter_context(ExternalSwitch(args.target, args.log_dir))
            child = SwitchChild(ext.ifaces)
            lab = Lab(child, ext.addr, pipeline, tmp, switch_cpu=ext.cpu_seconds)
        stack.callback(child.stop)
        lab.digest_batch = args.digest_batch
        await _measure(args, lab)


async def _measure(args: argparse.Namespace, lab: Lab) -> None:
    modes = ["controller", "switch"] if args.handshakes_by == "both" else [args.handshakes_by]
    for mode in modes[:-1]:  # the last mode's daemon goes on to the splices
        d, proxy = await _up(lab, mode)
        try:
            rows = []
            await run_handshakes(lab, d, _take_ports(lab, 50), 8)
            for window in args.windows:
                rows.append(await run_handshakes(lab, d, _take_ports(lab, args.handshakes), window))
            _table(f"Claim-1 handshakes run by the {mode}", rows)
        finally:
            await proxy.close()
            await d.close()
    d, proxy = await _up(lab, modes[-1])
    try:
        if "floor" not in args.skip:
            _table("Python gRPC alone (echo server, no P4Runtime)", await bench_grpc_floor(args.writes))
        if "writes" not in args.skip:
            _table("P4Runtime writes from the controller's session", await bench_writes(d, args.writes, args.batched))
        def ports(n: int) -> list[int]:
            return _take_ports(lab, n)

        spliceable: list[int] = []
        if "handshakes" not in args.skip:
            rows = []
            await run_handshakes(lab, d, ports(50), 8)  # warm-up: imports, caches, first writes
            for window in args.windows:
                sp = ports(args.handshakes)
                rows.append(await run_handshakes(lab, d, sp, window))
                spliceable += sp
            _table(f"Claim-1 handshakes run by the {modes[-1]}", rows)
            if args.profile:
                prof = cProfile.Profile()
                sp = ports(args.profile)
                await run_handshakes(lab, d, sp, max(args.windows), profile=prof)
                spliceable += sp
                print("\n```\n" + _profile_report(prof, len(sp)) + "\n```")
                if args.profile_out:
                    prof.dump_stats(args.profile_out)
        if "splices" not in args.skip:
            need = args.splices - len(spliceable)
            if need > 0:
                sp = ports(need)
                await run_handshakes(lab, d, sp, 16)
                spliceable += sp
            _table("Splice install latency", await run_splices(lab, d, proxy, spliceable[:args.splices],
                                                               args.probe_us))
    finally:
        await proxy.close()
        await d.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="p4splice.bench.controller", description=__doc__.splitlines()[0])
    ap.add_argument("--handshakes", type=int, default=1000, help="handshakes per window size")
    ap.add_argument("--windows", type=int, nargs="+", default=[1, 16, 64], help="handshakes in flight")
    ap.add_argument("--digest-batch", type=lambda v: v if v == "auto" else int(v), default="auto",
                    help="the daemon's digest_batch: digests of the switch's handshakes per list, or auto "
                         "(the daemon's default: lists only while digests come fast enough to fill them)")
    ap.add_argument("--handshakes-by", choices=["switch", "controller", "both"], default="both",
                    help="who runs the handshakes (daemon option handshakes); both: the controller's, then the switch's")
    ap.add_argument("--splices", type=int, default=300, help="splices timed one after another")
    ap.add_argument("--probe-us", type=float, default=100.0, help="data-plane probe interval (µs)")
    ap.add_argument("--writes", type=int, default=1000, help="single-update Write RPCs per figure")
    ap.add_argument("--batched", type=int, default=20000, help="updates sent in batches of 1000")
    ap.add_argument("--profile", type=int, default=500, help="handshakes profiled with cProfile (0: none)")
    ap.add_argument("--profile-out", help="also write the cProfile stats to this file (for pstats/snakeviz)")
    ap.add_argument("--flows-size", type=int, default=65536, help="FLOWS_SIZE the program is compiled with")
    ap.add_argument("--skip", action="append", default=[], choices=["floor", "writes", "handshakes", "splices"])
    ap.add_argument("--target", choices=["embedded", "p4sim", "bmv2"], default="embedded",
                    help="embedded: p4sim with in-memory ports in the driver's process (the default); "
                         "p4sim or bmv2: that switch in a process of its own, ports on veths (root)")
    ap.add_argument("--build-dir", type=Path, default=Path("build"),
                    help="bmv2: where p4c-bm2-ss's splice.json and splice.p4info.txtpb are")
    ap.add_argument("--log-dir", type=Path, default=Path("logs"), help="an external switch's log goes here")
    args = ap.parse_args(argv)
    import grpc
    from google.protobuf.internal import api_implementation

    print("## Controller (p4splice.bench.controller)\n")
    print(f"command: python -m p4splice.bench.controller {' '.join(argv if argv is not None else sys.argv[1:])}"
          .rstrip())
    print(f"host: {socket.gethostname()}, {os.cpu_count()} CPUs, {platform.system()}, python "
          f"{sys.version.split()[0]}, grpcio {grpc.__version__}, protobuf {api_implementation.Type()} "
          f"implementation, date {time.strftime('%Y-%m-%d')}")
    print(f"switch: {args.target}")
    try:
        asyncio.run(amain(args))
    except BenchError as e:
        print(f"p4splice.bench.controller: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
