"""SYN flood and idle streams (``make bench-flood``): what a flood of spoofed SYNs toward a proxied
service, a thousand idle P4Runtime StreamChannels and undecodable P4Runtime requests do to the
switch, the controller and a real client.

Everything runs in the lab (``topology.Lab``, as ``make run`` sets it up: the switch, the controller
``splicectl run``, ``splice-proxy`` registered, real kernel TCP in network namespaces), on p4sim or
BMv2 (``--target``, or ``TARGET``). Three parts:

* ``flood``, once per handshake design (``--handshakes switch controller``: the controller's
  ``handshakes`` option, a lab each). Client ``c2``'s namespace sends SYNs from random spoofed
  sources (outside 10.0.0.0/8, random ports, sequence numbers and timestamps, a Linux SYN's
  options) to the ``inspect`` service of server ``s1``: the frames are built from a scapy
  template before the clock starts and sent from an AF_PACKET socket at a paced rate, in steps of
  rising rate (``--rates``, then doubling) until the switch forwards no more than the step before.
  Meanwhile client ``c1``, a real Linux TCP client, opens a connection every ``--client-interval``
  seconds, downloads ``--object-bytes`` and closes. Per step: SYN/s sent, SYN/s reaching the server
  and second requests/s reaching the proxy host (counted by the kernel: a packet socket with a
  classic BPF filter per host, read through PACKET_STATISTICS), the real client's attempts, failures
  and connect times during the flood and in the ``--after-s`` after it, the controller's RSS
  (``/proc/<pid>/status`` VmRSS, sampled), its log lines (and ERROR/WARNING lines), the ``flows``
  table's entries (a P4Runtime Read) and the controller's pending handshakes (admin socket).
* ``streams``: ``--streams`` StreamChannels opened against the switch's P4Runtime server on
  ``--stream-channels`` gRPC connections, idle: sending nothing (``--stream-mode backup``: one
  arbitration update without an election id first, a backup that never takes the primary role).
  Held open against refused (and with what code); whether the controller keeps working while
  they are open (a real connection through the service; Read, Write and Capabilities round trips
  of another client, its Write as the primary of a role of its own where the switch allows one);
  the server's RSS and threads before, with and after.
* ``garbage``: ``--garbage`` undecodable requests to each P4Runtime method; the server's RSS
  before and after, what it answered, and Capabilities' latency before and after.

It measures and does not assert. Prints Markdown tables with the command, commit and load; raw
results go to ``--out-json``. Needs root (namespaces, veths, packet sockets).

    python -m p4splice.bench.flood --target p4sim
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import json
import os
import random
import re
import signal
import socket
import struct
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SWITCH_MAC = "02:00:00:00:00:fe"  # lab.topology.SWITCH_MAC (not imported: the sender imports this module)
DEFAULT_RATES = (250, 500, 1000, 2000, 5000, 10000, 20000)
SERVICE = "inspect"
ROUTE_PROBE = "10.254.254.0/24"  # the routes entry the streams part writes and deletes

# --- frames (stdlib only: the sender process imports this module) ------------------------------------


def syn_template(src_mac: str, dst_ip: str, dport: int) -> bytes:
    """A SYN as Linux sends one (MSS, SACK permitted, timestamps, window scale), built by scapy;
    ``make_frames`` fills in the source address, port, sequence number and timestamp."""
    from scapy.all import IP, TCP, Ether, raw

    return raw(Ether(src=src_mac, dst=SWITCH_MAC)
               / IP(src="192.0.2.1", dst=dst_ip, ttl=64, id=0, flags="DF")
               / TCP(sport=1024, dport=dport, seq=0, flags="S", window=64240,
                     options=[("MSS", 1460), ("SAckOK", b""), ("Timestamp", (0, 0)), ("NOP", None),
                              ("WScale", 7)]))


def _sum16(data: bytes | bytearray) -> int:
    if len(data) % 2:
        data = bytes(data) + b"\0"
    return sum(struct.unpack(f"!{len(data) // 2}H", data))


def _fold(s: int) -> int:
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def _tsval_offset(frame: bytes | bytearray, tcp: int, thl: int) -> int:
    """Where the timestamp option's TSval is in ``frame`` (the TCP header at ``tcp``)."""
    i, end = tcp + 20, tcp + thl
    while i < end:
        kind = frame[i]
        if kind == 0:
            break
        if kind == 1:
            i += 1
            continue
        if kind == 8:
            return i + 2
        i += frame[i + 1]
    raise ValueError("the template has no timestamp option")


def spoofed_source(rng: random.Random) -> int:
    """A random unicast IPv4 address outside 10.0.0.0/8 (the lab's), 0/8 and 127/8."""
    while True:
        a = rng.getrandbits(32)
        if 1 <= a >> 24 <= 223 and a >> 24 not in (10, 127):
            return a


def make_frames(template: bytes, n: int, seed: int) -> list[bytes]:
    """``n`` SYNs from ``template``, each from its own random spoofed source address, port,
    IP id, sequence number and TSval, with both checksums computed (from the template's sums
    plus the fields that change: about 3 µs a frame)."""
    t = bytearray(template)
    ihl = (t[14] & 0x0F) * 4
    tcp = 14 + ihl
    thl = (t[tcp + 12] >> 4) * 4
    total = struct.unpack_from("!H", t, 16)[0]
    ts = _tsval_offset(t, tcp, thl)
    if (ts - tcp) % 2:
        raise ValueError("the template's TSval is not 16-bit aligned")
    for off, size in ((18, 2), (24, 2), (26, 4), (tcp, 2), (tcp + 4, 4), (tcp + 16, 2), (ts, 4)):
        t[off:off + size] = bytes(size)
    ip_base = _sum16(t[14:14 + ihl])
    tcp_len = total - ihl
    tcp_base = _sum16(t[30:34]) + 6 + tcp_len + _sum16(t[tcp:14 + total])
    rng = random.Random(seed)
    pack = struct.pack_into
    frames = []
    for _ in range(n):
        src = spoofed_source(rng)
        ipid, sport = rng.getrandbits(16), rng.randrange(1024, 65536)
        seq, tsval = rng.getrandbits(32), rng.getrandbits(32)
        src_words = (src >> 16) + (src & 0xFFFF)
        pack("!H", t, 18, ipid)
        pack("!H", t, 24, ~_fold(ip_base + src_words + ipid) & 0xFFFF)
        pack("!I", t, 26, src)
        pack("!H", t, tcp, sport)
        pack("!I", t, tcp + 4, seq)
        pack("!I", t, ts, tsval)
        tsum = tcp_base + src_words + sport + (seq >> 16) + (seq & 0xFFFF) + (tsval >> 16) + (tsval & 0xFFFF)
        pack("!H", t, tcp + 16, ~_fold(tsum) & 0xFFFF)
        frames.append(bytes(t))
    return frames


SOL_PACKET = 263
PACKET_STATISTICS = 6
PACKET_QDISC_BYPASS = 20
SO_ATTACH_FILTER = 26
ETH_P_IP = 0x0800


def sender_main(argv: Sequence[str]) -> int:
    """The flood's sender, run in the attacking host's namespace: ``IFNAME RATE SECONDS TEMPLATE_HEX
    SEED MAX_FRAMES``. Builds the frames, prints ``start``, sends them paced at RATE per second
    for SECONDS, then prints ``done SENT ERRORS ELAPSED``. A frame the kernel refuses (ENOBUFS:
    the veth's peer has a full backlog) counts as an error, not as sent, and is not retried."""
    ifname, rate_s, seconds_s, template_hex, seed_s, max_frames_s = argv
    rate, seconds = float(rate_s), float(seconds_s)
    frames = make_frames(bytes.fromhex(template_hex), max(1, min(int(rate * seconds) + 1, int(max_frames_s))),
                         int(seed_s))
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    with contextlib.suppress(OSError):
        s.setsockopt(SOL_PACKET, PACKET_QDISC_BYPASS, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    s.bind((ifname, 0))
    send, n_frames = s.send, len(frames)
    sent = errors = i = 0
    print("start", flush=True)
    t0 = time.perf_counter()
    end = t0 + seconds
    while True:
        now = time.perf_counter()
        if now >= end:
            break
        due = int((now - t0) * rate) - sent - errors
        if due <= 0:
            time.sleep(min(0.002, max(0.0002, (sent + errors + 1) / rate - (now - t0))))  # pacing
            continue
        for _ in range(min(due, 2000)):
            try:
                send(frames[i])
                sent += 1
            except OSError:
                errors += 1
            i += 1
            if i == n_frames:
                i = 0
    print(f"done {sent} {errors} {time.perf_counter() - t0:.6f}", flush=True)
    return 0


SENDER = "import sys; from p4splice.bench.flood import sender_main; sys.exit(sender_main(sys.argv[1:]))"

# A classic BPF program: IPv4 TCP segments with SYN set and ACK clear, from outside 10.0.0.0/8
# (the spoofed sources: every lab host is in 10/8), arriving (not sent by the host itself).
SPOOFED_SYN_FILTER = (
    (0x20, 0, 0, 0xFFFFF004),    # ld #pkttype         (SKF_AD_OFF + SKF_AD_PKTTYPE)
    (0x15, 12, 0, 4),            # jeq #PACKET_OUTGOING drop
    (0x28, 0, 0, 12),            # ldh [12]            ethertype
    (0x15, 0, 10, ETH_P_IP),     # jeq #0x800 else drop
    (0x30, 0, 0, 23),            # ldb [23]            IP protocol
    (0x15, 0, 8, 6),             # jeq #6 else drop
    (0x20, 0, 0, 26),            # ld [26]             source address
    (0x54, 0, 0, 0xFF000000),    # and #0xff000000
    (0x15, 5, 0, 0x0A000000),    # jeq #10.0.0.0 drop
    (0xB1, 0, 0, 14),            # ldxb 4*([14]&0xf)   IP header length
    (0x50, 0, 0, 27),            # ldb [x+27]          TCP flags
    (0x54, 0, 0, 0x12),          # and #(SYN|ACK)
    (0x15, 0, 1, 0x02),          # jeq #SYN else drop
    (0x06, 0, 0, 0x40000),       # ret: accept
    (0x06, 0, 0, 0),             # ret: drop
)


class SynCounter:
    """Counts the spoofed SYNs arriving at (or leaving) an interface of a namespace, in the kernel:
    a packet socket with SPOOFED_SYN_FILTER and a tiny receive buffer that is never read, so
    nearly every match is a drop; PACKET_STATISTICS counts both (and resets on each read)."""

    def __init__(self, netns: str, ifname: str) -> None:
        from p4splice.lab import netdev

        with netdev.netns_socket(netns):
            self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_IP))
        try:
            prog = b"".join(struct.pack("HBBI", *ins) for ins in SPOOFED_SYN_FILTER)
            buf = ctypes.create_string_buffer(prog, len(prog))
            self.sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER,
                                 struct.pack("HL", len(SPOOFED_SYN_FILTER), ctypes.addressof(buf)))
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 0)
            self.sock.bind((ifname, ETH_P_IP))
        except OSError:
            self.sock.close()
            raise
        self.take()

    def take(self) -> int:
        """Matches since the last call."""
        packets, _drops = struct.unpack("II", self.sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8))
        return packets

    def close(self) -> None:
        self.sock.close()


# --- garbage ------------------------------------------------------------------------------------------


def garbage_payloads(n: int, seed: int) -> list[bytes]:
    """``n`` byte strings no protobuf message decodes: an invalid wire type (6 or 7) in the first
    tag, a length-delimited field longer than what follows, or a varint of more than ten bytes;
    each followed (or preceded, for the truncated field) by random bytes, 1-512 in all."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        kind = i % 3
        tail = rng.randbytes(rng.randrange(0, 500))
        if kind == 0:
            field_no = rng.randrange(1, 16)
            out.append(bytes([(field_no << 3) | rng.choice((6, 7))]) + tail)
        elif kind == 1:
            body = tail[:rng.randrange(0, 64)]
            claim = len(body) + 1 + rng.randrange(0, 1 << 20)
            length = bytearray()
            while True:
                b, claim = claim & 0x7F, claim >> 7
                length.append(b | (0x80 if claim else 0))
                if not claim:
                    break
            out.append(bytes([(rng.randrange(1, 16) << 3) | 2]) + bytes(length) + body)
        else:
            out.append(b"\x08" + b"\xff" * rng.randrange(10, 20) + tail)
    return out


# --- small helpers ------------------------------------------------------------------------------------


def pct(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (KiB) and Threads of a live process (empty when it is gone)."""
    out = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "Threads"):
                out[key] = int(value.split()[0])
    return out


def rss_mib(pid: int) -> float | None:
    kib = proc_status(pid).get("VmRSS")
    return None if kib is None else kib / 1024


def cpu_s(pid: int) -> float | None:
    from .offload import read_cpu

    try:
        c = read_cpu(pid)
    except (OSError, ValueError):
        return None
    return c.user + c.system


def commit() -> str:
    """The checkout's commit, with the tracked files that differ from it (others may be editing);
    ``$P4SPLICE_COMMIT`` where the tree is no checkout (a ``git archive`` snapshot of one)."""
    if os.environ.get("P4SPLICE_COMMIT"):
        return os.environ["P4SPLICE_COMMIT"]
    try:
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.split("\n")
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    changed = [line[3:] for line in dirty if line.strip()]
    if not head:
        return "unknown (not a git checkout; set P4SPLICE_COMMIT)"
    return head + (f" + uncommitted changes to {', '.join(changed)}" if changed else "")


def say(msg: str) -> None:
    print(msg, flush=True)


class BenchError(RuntimeError):
    """A part cannot go on (a process died, a tool is missing)."""


def table_id(build_dir: Path, name: str) -> int:
    from p4splice.controller.config import P4INFO_FILE
    from p4splice.controller.p4rt.p4info import load_p4info

    for t in load_p4info(build_dir / P4INFO_FILE).tables:
        if t.preamble.name == name:
            return t.preamble.id
    raise BenchError(f"no table {name} in {build_dir / P4INFO_FILE}")


def count_entries(addr: str, device_id: int, tid: int, timeout: float = 30.0) -> int | None:
    """The entries of table ``tid``: one wildcard Read (None when the Read fails)."""
    import grpc
    from p4.v1 import p4runtime_pb2 as pb
    from p4.v1 import p4runtime_pb2_grpc

    req = pb.ReadRequest(device_id=device_id)
    req.entities.add().table_entry.table_id = tid
    try:
        with grpc.insecure_channel(addr) as ch:
            return sum(len(r.entities) for r in p4runtime_pb2_grpc.P4RuntimeStub(ch).Read(req, timeout=timeout))
    except grpc.RpcError:
        return None


class LogTail:
    """Lines a log file gained since the last ``take``: all, ERROR/CRITICAL and WARNING (JSON
    lines by ``level``, others by the word), and the commonest messages with their numbers and
    addresses blanked (so that one message per flood handshake shows as one)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = path.stat().st_size if path.exists() else 0

    def take(self) -> dict[str, Any]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except OSError:
            data = b""
        self.offset += len(data)
        lines = data.decode(errors="replace").splitlines()
        errors = warnings = 0
        top: Counter[str] = Counter()
        for line in lines:
            level, msg = "", line
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    rec = json.loads(line)
                    level, msg = str(rec.get("level", "")), str(rec.get("msg", rec.get("message", "")))
            elif " ERROR " in line or line.startswith("Traceback"):
                level = "error"
            elif " WARNING " in line:
                level = "warning"
            if level in ("error", "critical"):
                errors += 1
            elif level == "warning":
                warnings += 1
            top[f"{level.upper() or '-'} {_NUMBERS.sub('N', msg)[:100]}"] += 1
        return {"lines": len(lines), "errors": errors, "warnings": warnings, "top": top.most_common(3)}


_NUMBERS = re.compile(r"\d+")


# --- the real client ----------------------------------------------------------------------------------


@dataclass
class Attempt:
    t: float  # when it started (time.monotonic())
    ok: bool = False
    connect_s: float | None = None
    total_s: float = 0.0
    error: str = ""
    port: int = 0  # the client's port: a failure can be looked up in the controller's and proxy's logs
    received: int = 0  # bytes read before it ended


async def one_connection(netns: str, server: tuple[str, int], size: int, timeout: float) -> Attempt:
    """One real connection from ``netns``: connect, ask for ``size`` bytes (lab.traffic's HTTP),
    read them to the server's FIN, close."""
    from p4splice.lab.traffic import socket_in

    loop = asyncio.get_running_loop()
    a = Attempt(time.monotonic())
    sock = socket_in(netns)
    sock.setblocking(False)
    try:
        async with asyncio.timeout(timeout):
            await loop.sock_connect(sock, server)
            a.connect_s = time.monotonic() - a.t
            a.port = sock.getsockname()[1]
            await loop.sock_sendall(sock, f"POST /xfer HTTP/1.1\r\nHost: {server[0]}\r\nContent-Length: 0\r\n"
                                          f"X-Download: {size}\r\n\r\n".encode())
            got = bytearray()
            while data := await loop.sock_recv(sock, 65536):
                got += data
                a.received = len(got)
        head, sep, body = bytes(got).partition(b"\r\n\r\n")
        if not sep or not head.startswith(b"HTTP/1.1 200"):
            a.error = f"bad response ({len(got)} bytes)"
        elif len(body) != size:
            a.error = f"{len(body)} of {size} bytes"
        else:
            a.ok = True
    except TimeoutError:
        a.error = "timeout" + (" (connected)" if a.connect_s is not None else " (connect)")
    except OSError as exc:
        a.error = f"{type(exc).__name__}: {exc.strerror or exc}"
    finally:
        a.total_s = time.monotonic() - a.t
        sock.close()
    return a


def _quiet_cancelled(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """The loop's exception handler: the traffic server's exchanges that a flood left waiting
    for a client's FIN are cancelled when it closes, and say nothing about it."""
    if isinstance(context.get("exception"), asyncio.CancelledError):
        return
    loop.default_exception_handler(context)


async def _served(ts: Any, timeout: float = 10.0) -> None:
    """Until the traffic server has finished every exchange (each ends when its client closes),
    at most ``timeout``: leaving its ``async with`` cancels those still going."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not all(r.done.is_set() for r in ts.records.values()):
        await asyncio.sleep(0.05)  # polling interval with a deadline


class Client:
    """Opens a connection every ``interval`` seconds (whether the last one finished or not), so the
    attempts per second stay the same whatever the flood does to them."""

    def __init__(self, netns: str, server: tuple[str, int], size: int, interval: float, timeout: float) -> None:
        self.netns, self.server, self.size, self.interval, self.timeout = netns, server, size, interval, timeout
        self.attempts: list[Attempt] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._runner: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._runner = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        t_next = time.monotonic()
        while True:
            task = asyncio.get_running_loop().create_task(self._one())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            t_next += self.interval
            await asyncio.sleep(max(0.0, t_next - time.monotonic()))  # pacing

    async def _one(self) -> None:
        self.attempts.append(await one_connection(self.netns, self.server, self.size, self.timeout))

    async def stop(self) -> None:
        """No new attempts; wait for those under way (each ends within ``timeout``)."""
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=self.timeout + 5)

    def window(self, t0: float, t1: float) -> dict[str, Any]:
        got = [a for a in self.attempts if t0 <= a.t < t1]
        failed = [a for a in got if not a.ok]
        connects = [a.connect_s * 1000 for a in got if a.connect_s is not None]
        errors = Counter(a.error for a in failed)
        return {"attempted": len(got), "ok": len(got) - len(failed), "failed": len(failed),
                "connect_p50_ms": pct(connects, 0.5), "connect_p99_ms": pct(connects, 0.99),
                "connect_max_ms": max(connects) if connects else None, "errors": errors.most_common(3),
                # which ones, to look up in the logs: (client port, seconds into the window, error, bytes read)
                "failures": [(a.port, round(a.t - t0, 3), a.error, a.received) for a in failed[:20]]}


# --- part 1: the SYN flood ----------------------------------------------------------------------------


@dataclass
class Step:
    rate: int  # SYN/s asked for (0: the baseline window, no flood)
    flood_t: tuple[float, float] = (0.0, 0.0)
    after_t: tuple[float, float] = (0.0, 0.0)
    sent: int = 0
    send_errors: int = 0
    send_s: float = 0.0
    at_server: int = 0  # spoofed SYNs that reached the server during the flood
    at_server_late: int = 0  # ... after it (the switch's backlog)
    at_proxy: int = 0  # second requests (SYNs from spoofed sources) that reached the proxy host
    switch_cpu: float | None = None  # cores, over the flood
    controller_cpu: float | None = None
    rss_before: float | None = None  # controller, MiB
    rss_peak: float | None = None
    rss_after: float | None = None
    switch_rss_before: float | None = None
    switch_rss_after: float | None = None
    log: dict[str, Any] = field(default_factory=dict)
    flows_end: int | None = None  # flows entries at the end of the flood
    flows_after: int | None = None  # ... at the end of the window after it
    pending_end: int | None = None  # the controller's handshakes in progress
    pending_after: int | None = None
    during: dict[str, Any] = field(default_factory=dict)  # the real client
    after: dict[str, Any] = field(default_factory=dict)
    note: str = ""

    @property
    def sent_per_s(self) -> float:
        return self.sent / self.send_s if self.send_s else 0.0

    @property
    def at_server_per_s(self) -> float:
        return self.at_server / self.send_s if self.send_s else 0.0


class Sampler:
    """The controller's and the switch's RSS every 0.25 s (the peak is what a step reports)."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.peak: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    def reset(self) -> None:
        self.peak = {}
        self._sample()

    def _sample(self) -> None:
        for name, pid in self.pids.items():
            rss = rss_mib(pid)
            if rss is not None:
                self.peak[name] = max(self.peak.get(name, 0.0), rss)

    async def _run(self) -> None:
        while True:
            self._sample()
            await asyncio.sleep(0.25)  # sampling interval

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


class Flood:
    """One handshake design's ladder of flood steps in one lab."""

    def __init__(self, lab: Any, args: argparse.Namespace, design: str) -> None:
        self.lab, self.args, self.design = lab, args, design
        self.server, self.attacker, self.client_host = lab.servers[0], lab.clients[1], lab.clients[0]
        self.service = lab.service(SERVICE)
        self.flows_id = table_id(args.build_dir, "SpliceIngress.flows.flows")
        self.steps: list[Step] = []
        self.stopped_because = ""
        self.ctl_pid = lab.procs["controller"].popen.pid
        self.sw_pid = lab.procs["switch"].popen.pid

    def _alive(self) -> str:
        for name in ("switch", "controller", "proxy"):
            proc = self.lab.procs.get(name)
            if proc is None or proc.popen.poll() is not None:
                return f"the {name} exited" + (f" (status {proc.popen.returncode}, see {proc.log_path})" if proc else "")
        return ""

    async def _pending(self) -> int | None:
        try:
            st = await asyncio.to_thread(self.lab.admin, "status", 10.0)
        except Exception:  # noqa: BLE001 - a controller too busy to answer: no figure
            return None
        return st.get("handshakes_pending")

    async def _flows(self) -> int | None:
        return await asyncio.to_thread(count_entries, self.lab.grpc_addr, 1, self.flows_id)

    async def run(self) -> list[Step]:
        from p4splice.lab.traffic import TrafficServer

        args = self.args
        asyncio.get_running_loop().set_exception_handler(_quiet_cancelled)
        template = syn_template(self.attacker.mac, self.server.ip, self.service.port)
        log_tail = LogTail(self.lab.procs["controller"].log_path)
        at_server = SynCounter(self.server.netns, self.server.ifname)
        at_proxy = SynCounter(self.lab.proxy.netns, self.lab.proxy.ifname)
        sampler = Sampler({"controller": self.ctl_pid, "switch": self.sw_pid})
        client = Client(self.client_host.netns, (self.server.ip, self.service.port), args.object_bytes,
                        args.client_interval, args.conn_timeout)
        try:
            async with TrafficServer([self.server], [self.service], backlog=4096) as ts:
                sampler.start()
                client.start()
                # the baseline: the real client alone
                base = Step(0)
                sampler.reset()
                base.rss_before = rss_mib(self.ctl_pid)
                base.switch_rss_before = rss_mib(self.sw_pid)
                t0 = time.monotonic()
                await asyncio.sleep(args.baseline_s)  # the measured window itself
                base.flood_t = (t0, time.monotonic())
                base.after_t = (base.flood_t[1], base.flood_t[1])
                base.rss_peak, base.rss_after = sampler.peak.get("controller"), rss_mib(self.ctl_pid)
                base.switch_rss_after = rss_mib(self.sw_pid)
                base.log = log_tail.take()
                base.flows_end = base.flows_after = await self._flows()
                base.pending_end = base.pending_after = await self._pending()
                self.steps.append(base)
                say(f"  baseline {args.baseline_s:g} s: flows entries {base.flows_end}, controller RSS "
                    f"{_f(base.rss_after)} MiB")
                rates = list(args.rates)
                best = 0.0
                i = 0
                while i < len(rates):
                    rate = rates[i]
                    last = False
                    step = await self._step(rate, template, i, sampler, log_tail, at_server, at_proxy)
                    self.steps.append(step)
                    dead = self._alive()
                    if dead:
                        self.stopped_because = dead
                        step.note = dead
                        break
                    fwd = step.at_server_per_s
                    if step.sent_per_s < 0.7 * rate:
                        self.stopped_because = (f"the sender reached {step.sent_per_s:,.0f} of {rate:,} SYN/s "
                                                "(sender-limited on this machine)")
                        last = True
                    elif i > 0 and fwd < 1.1 * best:
                        self.stopped_because = (f"the switch forwarded {fwd:,.0f} SYN/s at {rate:,}/s, no more "
                                                f"than {best:,.0f}/s before")
                        last = True
                    best = max(best, fwd)
                    if last:
                        break
                    if i == len(rates) - 1:
                        if rate * 2 > args.max_rate:
                            self.stopped_because = f"--max-rate {args.max_rate:,} reached"
                            break
                        rates.append(rate * 2)
                    i += 1
                # the last step's window after the flood is --last-after-s long
                if self.steps[-1].rate and self.steps[-1].after_t[1] < self.steps[-1].flood_t[1] + args.last_after_s:
                    step = self.steps[-1]
                    await asyncio.sleep(max(0.0, step.flood_t[1] + args.last_after_s - time.monotonic()))  # measured
                    step.after_t = (step.after_t[0], time.monotonic())
                    step.rss_peak = max(step.rss_peak or 0.0, sampler.peak.get("controller", 0.0))
                    step.rss_after = rss_mib(self.ctl_pid)
                    more = log_tail.take()
                    for k in ("lines", "errors", "warnings"):
                        step.log[k] = step.log.get(k, 0) + more[k]
                    step.flows_after = await self._flows()
                    step.pending_after = await self._pending()
                await client.stop()
                await _served(ts)
        finally:
            await client.stop()
            await sampler.stop()
            at_server.close()
            at_proxy.close()
        for step in self.steps:
            step.during = client.window(*step.flood_t)
            step.after = client.window(*step.after_t)
        return self.steps

    async def _step(self, rate: int, template: bytes, index: int, sampler: Sampler, log_tail: LogTail,
                    at_server: SynCounter, at_proxy: SynCounter) -> Step:
        args = self.args
        from p4splice.lab import netdev

        step = Step(rate)
        step.rss_before = rss_mib(self.ctl_pid)
        step.switch_rss_before = rss_mib(self.sw_pid)
        log_tail.take()
        argv = [netdev._tool("ip"), "netns", "exec", self.attacker.netns, sys.executable, "-c", SENDER,
                self.attacker.ifname, str(rate), str(args.step_s), template.hex(), str(args.seed + index),
                str(args.max_frames)]
        proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL)
        try:
            assert proc.stdout is not None
            try:
                line = await asyncio.wait_for(proc.stdout.readline(), 120)  # building the frames
            except TimeoutError:
                raise BenchError(f"the sender did not start within 120 s at {rate} SYN/s") from None
            if line.strip() != b"start":
                err = (await proc.stderr.read()).decode(errors="replace") if proc.stderr else ""
                raise BenchError(f"the sender failed: {line!r} {err.strip()[-500:]}")
            sampler.reset()
            at_server.take()
            at_proxy.take()
            cpu0 = (cpu_s(self.sw_pid), cpu_s(self.ctl_pid))
            t0 = time.monotonic()
            try:
                line = await asyncio.wait_for(proc.stdout.readline(), args.step_s + 60)
            except TimeoutError:
                raise BenchError(f"the sender did not finish within {args.step_s + 60:g} s") from None
            t1 = time.monotonic()
            cpu1 = (cpu_s(self.sw_pid), cpu_s(self.ctl_pid))
            step.at_server = at_server.take()
            step.at_proxy = at_proxy.take()
            words = line.split()
            if len(words) != 4 or words[0] != b"done":
                raise BenchError(f"the sender said {line!r}")
            step.sent, step.send_errors, step.send_s = int(words[1]), int(words[2]), float(words[3])
            await asyncio.wait_for(proc.wait(), 30)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        step.flood_t = (t0, t1)
        if cpu0[0] is not None and cpu1[0] is not None:
            step.switch_cpu = (cpu1[0] - cpu0[0]) / (t1 - t0)
        if cpu0[1] is not None and cpu1[1] is not None:
            step.controller_cpu = (cpu1[1] - cpu0[1]) / (t1 - t0)
        step.flows_end = await self._flows()
        step.pending_end = await self._pending()
        await asyncio.sleep(max(0.0, t1 + args.after_s - time.monotonic()))  # the measured window itself
        step.at_server_late = at_server.take()
        # A switch may still be working through what it queued during the flood (p4sim's ports
        # queue megabytes): the window after the flood goes on while flood SYNs still reach the
        # server (10 a second or more), up to --last-after-s.
        while time.monotonic() < t1 + args.last_after_s:
            t = time.monotonic()
            await asyncio.sleep(1.0)  # the measured window itself
            n = at_server.take()
            step.at_server_late += n
            if n < 10 * (time.monotonic() - t):
                break
        at_proxy.take()
        step.after_t = (t1, time.monotonic())
        step.rss_peak = sampler.peak.get("controller")
        step.rss_after = rss_mib(self.ctl_pid)
        step.switch_rss_after = rss_mib(self.sw_pid)
        step.log = log_tail.take()
        step.flows_after = await self._flows()
        step.pending_after = await self._pending()
        say(f"  {rate:>7,} SYN/s: sent {step.sent_per_s:9,.0f}/s, at the server {step.at_server_per_s:9,.0f}/s, "
            f"at the proxy {step.at_proxy / step.send_s if step.send_s else 0:9,.0f}/s; flows {step.flows_end}"
            f"/{step.flows_after}, pending {step.pending_end}/{step.pending_after}, controller RSS "
            f"{_f(step.rss_before)}/{_f(step.rss_peak)}/{_f(step.rss_after)} MiB, log "
            f"{step.log.get('lines')} lines ({step.log.get('errors')} ERROR)")
        return step


# --- part 2: idle streams ------------------------------------------------------------------------------


async def _timed(fn: Callable[[], Any], n: int) -> tuple[float | None, str]:
    """p50 of ``n`` awaited calls of ``fn`` in ms, and the first failure's text."""
    times, failure = [], ""
    for _ in range(n):
        t0 = time.perf_counter()
        try:
            await fn()
        except Exception as exc:  # noqa: BLE001 - a figure of its own
            failure = failure or _rpc_error(exc)
            continue
        times.append((time.perf_counter() - t0) * 1000)
    return pct(times, 0.5), failure


def _rpc_error(exc: BaseException) -> str:
    import grpc

    if isinstance(exc, grpc.RpcError) and hasattr(exc, "code"):
        return f"{exc.code().name}: {exc.details()}"
    return f"{type(exc).__name__}: {exc}"


class Probe:
    """Round trips of another client (Read of the routes table, Write of one routes entry and its
    delete, Capabilities) and one real connection through the service."""

    def __init__(self, lab: Any, args: argparse.Namespace) -> None:
        self.lab, self.args = lab, args
        self.routes_id = table_id(args.build_dir, "SpliceIngress.routing.routes")
        self.session: Any = None
        self.write_how = ""
        self.channel: Any = None
        self.stub: Any = None

    async def open(self) -> None:
        import grpc
        from p4.v1 import p4runtime_pb2_grpc
        from p4splice.controller.p4rt.session import SwitchSession

        self.channel = grpc.aio.insecure_channel(self.lab.grpc_addr)
        self.stub = p4runtime_pb2_grpc.P4RuntimeStub(self.channel)
        # A primary of a role of its own: it can write without taking the controller's role.
        s = SwitchSession(self.lab.grpc_addr, device_id=1, election_id=1, role="p4splice-bench-flood",
                          auto_ack_digests=False, connect_timeout=10.0, rpc_timeout=30.0, name="flood-probe")
        try:
            await s.start()
            await s.connect(10.0)
            await s.wait_primary(10.0)
            await s.adopt_pipeline()
            self.session = s
            self.write_how = "as the primary of a role of its own (insert, then delete, one routes entry)"
        except Exception as exc:  # noqa: BLE001 - the switch refused the role: write as a non-primary
            with contextlib.suppress(Exception):
                await s.close()
            self.write_how = (f"as a non-primary (the switch refused a role of its own: {_rpc_error(exc)[:120]}), "
                              "answered PERMISSION_DENIED")

    async def close(self) -> None:
        if self.session is not None:
            with contextlib.suppress(Exception):
                await self.session.close()
        if self.channel is not None:
            await self.channel.close()

    async def _read(self) -> None:
        from p4.v1 import p4runtime_pb2 as pb

        req = pb.ReadRequest(device_id=1)
        req.entities.add().table_entry.table_id = self.routes_id
        async for _ in self.stub.Read(req, timeout=30):
            pass

    async def _caps(self) -> None:
        from p4.v1 import p4runtime_pb2 as pb

        await self.stub.Capabilities(pb.CapabilitiesRequest(), timeout=30)

    async def _write(self) -> None:
        from p4splice.controller import dataplane as dp

        if self.session is not None:
            await self.session.insert(dp.route(ROUTE_PROBE, 1, SWITCH_MAC, "02:00:00:00:01:01"))
            await self.session.delete(dp.route_key(ROUTE_PROBE))
            return
        import grpc
        from p4.v1 import p4runtime_pb2 as pb

        req = pb.WriteRequest(device_id=1)
        req.election_id.low = 1
        te = req.updates.add(type=pb.Update.INSERT).entity.table_entry
        te.table_id = self.routes_id
        try:
            await self.stub.Write(req, timeout=30)
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.PERMISSION_DENIED:
                raise

    async def measure(self, n: int = 10) -> dict[str, Any]:
        out: dict[str, Any] = {}
        out["read_ms"], out["read_error"] = await _timed(self._read, n)
        out["write_ms"], out["write_error"] = await _timed(self._write, n)
        out["capabilities_ms"], out["capabilities_error"] = await _timed(self._caps, n)
        server, svc = self.lab.servers[0], self.lab.service(SERVICE)
        conns = [await one_connection(self.lab.clients[0].netns, (server.ip, svc.port), self.args.object_bytes,
                                      self.args.conn_timeout) for _ in range(3)]
        out["connections_ok"] = sum(a.ok for a in conns)
        out["connections"] = len(conns)
        out["connect_ms"] = pct([a.connect_s * 1000 for a in conns if a.connect_s is not None], 0.5)
        out["connection_errors"] = [a.error for a in conns if a.error]
        try:
            st = await asyncio.to_thread(self.lab.admin, "status", 10.0)
            out["controller_primary"] = bool(st.get("switch", {}).get("primary"))
        except Exception as exc:  # noqa: BLE001
            out["controller_primary"] = f"no answer: {exc}"
        return out


async def _idle_stream(stub: Any, stop: asyncio.Event, wait_s: float, mode: str) -> tuple[str, Any, str]:
    """Open a StreamChannel and keep it open (idle) until ``stop``: ``silent``, sending nothing,
    or ``backup``, sending one arbitration update without an election id first. Returns (outcome,
    call, the server's words): a stream neither answered nor ended within ``wait_s`` is held open."""
    import grpc
    from p4.v1 import p4runtime_pb2 as pb

    async def requests() -> Any:
        if mode == "backup":
            yield pb.StreamMessageRequest(arbitration=pb.MasterArbitrationUpdate(device_id=1))
        await stop.wait()
        return
        yield  # an async generator even when it sends nothing

    call = stub.StreamChannel(requests())
    # not wait_for: cancelling the read would cancel the call, and the stream must stay open
    first = asyncio.ensure_future(call.read())
    done, _ = await asyncio.wait({first}, timeout=wait_s)
    if not done:
        first.add_done_callback(lambda t: t.cancelled() or t.exception())  # retrieved, whatever it is
        return "held open, no answer", call, ""
    try:
        msg = first.result()
    except grpc.aio.AioRpcError as exc:
        return f"refused: {exc.code().name}", call, str(exc.details())
    if msg is grpc.aio.EOF:
        code = await call.code()
        return f"ended: {code.name}", call, str(await call.details())
    if msg.HasField("arbitration"):
        return "accepted (arbitration answered)", call, msg.arbitration.status.message
    if msg.HasField("error"):
        return f"stream error {msg.error.canonical_code}", call, msg.error.message
    return f"answered {msg.WhichOneof('update')}", call, ""


async def streams_part(lab: Any, args: argparse.Namespace) -> dict[str, Any]:
    import grpc
    from p4.v1 import p4runtime_pb2_grpc
    from p4splice.lab.traffic import TrafficServer

    asyncio.get_running_loop().set_exception_handler(_quiet_cancelled)
    sw_pid = lab.procs["switch"].popen.pid
    res: dict[str, Any] = {"streams": args.streams, "channels": args.stream_channels, "mode": args.stream_mode}
    probe = Probe(lab, args)
    channels: list[Any] = []
    stop = asyncio.Event()
    calls: list[Any] = []
    async with TrafficServer([lab.servers[0]], [lab.service(SERVICE)], backlog=4096) as ts:
        try:
            await probe.open()
            res["write_how"] = probe.write_how
            res["before"] = await probe.measure()
            st = proc_status(sw_pid)
            res["rss_before"], res["threads_before"] = st.get("VmRSS", 0) / 1024, st.get("Threads")
            say(f"  before: {res['before']}")
            channels = [grpc.aio.insecure_channel(lab.grpc_addr) for _ in range(args.stream_channels)]
            stubs = [p4runtime_pb2_grpc.P4RuntimeStub(ch) for ch in channels]
            t0 = time.monotonic()
            outcomes = await asyncio.gather(*(_idle_stream(stubs[i % len(stubs)], stop, args.stream_wait_s,
                                                           args.stream_mode)
                                              for i in range(args.streams)))
            res["open_s"] = time.monotonic() - t0
            calls = [c for _, c, _ in outcomes]
            res["outcomes"] = dict(Counter(o for o, _, _ in outcomes).most_common())
            res["words"] = {}
            for o, _, words in outcomes:
                res["words"].setdefault(o, words[:160])
            say(f"  {args.streams} streams: {res['outcomes']} ({res['open_s']:.1f} s)")
            st = proc_status(sw_pid)
            res["rss_with"], res["threads_with"] = st.get("VmRSS", 0) / 1024, st.get("Threads")
            res["with"] = await probe.measure()
            say(f"  with them open: {res['with']}")
            # still open after the measurements?
            res["still_open"] = sum(not c.done() for c in calls)
        finally:
            stop.set()
            for c in calls:
                c.cancel()
            for ch in channels:
                await ch.close()
        # until the server's threads are back (BMv2 holds one per stream), at most 20 s
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            th = proc_status(sw_pid).get("Threads")
            if th is None or res.get("threads_before") is None or th <= res["threads_before"] + 2:
                break
            await asyncio.sleep(0.1)  # polling interval with a deadline
        res["settle_s"] = 20 - max(0.0, deadline - time.monotonic())
        try:
            res["after"] = await probe.measure()
        finally:
            await probe.close()
        st = proc_status(sw_pid)
        res["rss_after"], res["threads_after"] = st.get("VmRSS", 0) / 1024, st.get("Threads")
        say(f"  after: {res['after']}")
        await _served(ts)
    return res


# --- part 3: garbage ------------------------------------------------------------------------------------

METHODS = ("Write", "Read", "SetForwardingPipelineConfig", "GetForwardingPipelineConfig", "Capabilities",
           "StreamChannel")


async def garbage_part(lab: Any, args: argparse.Namespace) -> dict[str, Any]:
    import grpc
    from p4.v1 import p4runtime_pb2 as pb
    from p4.v1 import p4runtime_pb2_grpc

    asyncio.get_running_loop().set_exception_handler(_quiet_cancelled)
    sw_pid = lab.procs["switch"].popen.pid
    payloads = garbage_payloads(args.garbage, args.seed)
    res: dict[str, Any] = {"requests": args.garbage, "methods": {}}
    async with grpc.aio.insecure_channel(lab.grpc_addr) as ch:
        stub = p4runtime_pb2_grpc.P4RuntimeStub(ch)

        async def caps() -> None:
            await stub.Capabilities(pb.CapabilitiesRequest(), timeout=30)

        res["capabilities_before_ms"], _ = await _timed(caps, 20)
        res["rss_before"] = rss_mib(sw_pid)
        for method in METHODS:
            path = f"/p4.v1.P4Runtime/{method}"
            codes: Counter[str] = Counter()
            in_flight = 8 if method == "StreamChannel" else args.garbage_parallel
            sem = asyncio.Semaphore(in_flight)

            async def one(data: bytes, method: str = method, path: str = path, codes: Counter[str] = codes,
                          sem: asyncio.Semaphore = sem) -> None:
                async with sem:
                    try:
                        if method == "Read":
                            async for _ in ch.unary_stream(path)(data, timeout=30):
                                pass
                            codes["OK"] += 1
                        elif method == "StreamChannel":
                            call = ch.stream_stream(path)(timeout=30)
                            await call.write(data)
                            await call.done_writing()
                            while await call.read() is not grpc.aio.EOF:
                                pass
                            codes[(await call.code()).name] += 1
                        else:
                            await ch.unary_unary(path)(data, timeout=30)
                            codes["OK"] += 1
                    except grpc.aio.AioRpcError as exc:
                        codes[exc.code().name] += 1
                    except Exception as exc:  # noqa: BLE001 - counted
                        codes[type(exc).__name__] += 1

            t0 = time.monotonic()
            await asyncio.gather(*(one(p) for p in payloads))
            wall = time.monotonic() - t0
            res["methods"][method] = {"answers": dict(codes.most_common()), "seconds": wall,
                                      "per_s": len(payloads) / wall if wall else 0.0, "rss_after": rss_mib(sw_pid)}
            say(f"  {method}: {dict(codes.most_common())} in {wall:.1f} s; server RSS {_f(rss_mib(sw_pid))} MiB")
        res["rss_after"] = rss_mib(sw_pid)
        res["capabilities_after_ms"], res["capabilities_after_error"] = await _timed(caps, 20)
        await asyncio.sleep(5.0)  # then again, 5 s later
        res["capabilities_later_ms"], _ = await _timed(caps, 20)
        res["rss_later"] = rss_mib(sw_pid)
    server, svc = lab.servers[0], lab.service(SERVICE)
    from p4splice.lab.traffic import TrafficServer

    async with TrafficServer([server], [svc], backlog=4096) as ts:
        a = await one_connection(lab.clients[0].netns, (server.ip, svc.port), args.object_bytes, args.conn_timeout)
        await _served(ts)
    res["connection_after"] = "ok" if a.ok else a.error
    return res


# --- report ---------------------------------------------------------------------------------------------


def _f(v: float | int | None, digits: int = 1) -> str:
    if v is None:
        return "-"
    if isinstance(v, int) or abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:.{digits}f}"


def flood_tables(design: str, steps: Sequence[Step]) -> str:
    lines = [f"#### handshakes = \"{design}\"", "",
             "| SYN/s asked | sent/s | at the server/s (and SYNs after) | 2nd requests at the proxy/s | "
             "switch CPU (cores) | controller CPU (cores) | real conns during: tried / ok / failed | failed after (window) | "
             "connect p50 / p99 (ms) |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for s in steps:
        d, a = s.during, s.after
        proxy_per_s = s.at_proxy / s.send_s if s.send_s else 0.0
        after = (f"{a.get('failed', 0)} of {a.get('attempted', 0)} ({s.after_t[1] - s.after_t[0]:.0f} s)"
                 if s.rate else "-")
        lines.append(f"| {'baseline' if not s.rate else f'{s.rate:,}'} | {_f(s.sent_per_s)} | {_f(s.at_server_per_s)}"
                     f"{f' (+{s.at_server_late:,})' if s.at_server_late else ''} | "
                     f"{_f(proxy_per_s)} | {_f(s.switch_cpu, 2)} | {_f(s.controller_cpu, 2)} | "
                     f"{d.get('attempted', 0)} / {d.get('ok', 0)} / {d.get('failed', 0)} | {after} | "
                     f"{_f(d.get('connect_p50_ms'), 2)} / {_f(d.get('connect_p99_ms'), 2)} |")
    lines += ["", "| SYN/s asked | controller RSS MiB before / peak / after | controller log lines (ERROR, WARNING) | "
              "flows entries end of flood / after | handshakes pending end of flood / after | switch RSS MiB before / after |",
              "|---:|---:|---:|---:|---:|---:|"]
    for s in steps:
        lines.append(f"| {'baseline' if not s.rate else f'{s.rate:,}'} | {_f(s.rss_before)} / {_f(s.rss_peak)} / "
                     f"{_f(s.rss_after)} | {s.log.get('lines', '-')} ({s.log.get('errors', '-')}, "
                     f"{s.log.get('warnings', '-')}) | {_f(s.flows_end)} / {_f(s.flows_after)} | "
                     f"{_f(s.pending_end)} / {_f(s.pending_after)} | {_f(s.switch_rss_before)} / {_f(s.switch_rss_after)} |")
    return "\n".join(lines)


def flood_summary(steps: Sequence[Step]) -> list[str]:
    flooded = [s for s in steps if s.rate]
    out = []
    first_during = next((s for s in flooded if s.during.get("failed")), None)
    first_after = next((s for s in flooded if s.after.get("failed")), None)
    best = max(flooded, key=lambda s: s.at_server_per_s, default=None)
    if best is not None:
        out.append(f"the switch forwarded at most {best.at_server_per_s:,.0f} SYN/s to the server "
                   f"(at {best.rate:,} asked)")
    out.append("real connections first failed during a flood at "
               + (f"{first_during.rate:,} SYN/s asked ({first_during.during['failed']} of "
                  f"{first_during.during['attempted']}: {first_during.during['errors']})" if first_during else "no rate")
               + "; after a flood at "
               + (f"{first_after.rate:,} SYN/s ({first_after.after['failed']} of {first_after.after['attempted']}: "
                  f"{first_after.after['errors']})" if first_after else "no rate"))
    tops: Counter[str] = Counter()
    for s in steps:
        for msg, n in s.log.get("top", []):
            tops[msg] += n
    if tops:
        out.append("commonest controller log lines (numbers as N): "
                   + "; ".join(f"{n:,} x {m}" for m, n in tops.most_common(4)))
    return out


def streams_table(res: dict[str, Any], target: str) -> str:
    if "error" in res:
        return f"failed: {res['error']}"
    b, w, a = res.get("before", {}), res.get("with", {}), res.get("after", {})
    sends = ("nothing" if res.get("mode") == "silent"
             else "one arbitration update without an election id (a backup)")
    lines = [f"{res['streams']} StreamChannels on {res['channels']} gRPC channels, each sending {sends}, then "
             f"idle; outcomes: {res.get('outcomes')} ({_f(res.get('open_s'))} s; "
             f"the server's words: {res.get('words')}); "
             f"still open after the measurements: {res.get('still_open')}. Write {res.get('write_how')}.", "",
             f"| {target} | before | with the streams open | after closing them |", "|---|---:|---:|---:|",
             f"| server RSS (MiB) | {_f(res.get('rss_before'))} | {_f(res.get('rss_with'))} | {_f(res.get('rss_after'))} |",
             f"| server threads | {res.get('threads_before')} | {res.get('threads_with')} | {res.get('threads_after')} |"]
    for key, name in (("read_ms", "Read of the routes table, p50 (ms)"), ("write_ms", "Write, p50 (ms)"),
                      ("capabilities_ms", "Capabilities, p50 (ms)"), ("connect_ms", "real connection: connect p50 (ms)")):
        cells = []
        for m in (b, w, a):
            err = m.get(key.replace("_ms", "_error"), "")
            cells.append(_f(m.get(key), 2) + (f" ({err[:60]})" if err and m.get(key) is None else ""))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("| real connections ok | " + " | ".join(f"{m.get('connections_ok')} of {m.get('connections')}"
                                                      for m in (b, w, a)) + " |")
    lines.append("| controller still primary | " + " | ".join(str(m.get("controller_primary")) for m in (b, w, a)) + " |")
    return "\n".join(lines)


def garbage_table(res: dict[str, Any], target: str) -> str:
    if "error" in res:
        return f"failed: {res['error']}"
    lines = [f"| method ({target}) | requests | answers | seconds | requests/s | server RSS after (MiB) |",
             "|---|---:|---|---:|---:|---:|"]
    for method, m in res["methods"].items():
        answers = ", ".join(f"{k} {v:,}" for k, v in m["answers"].items())
        lines.append(f"| {method} | {res['requests']:,} | {answers} | {_f(m['seconds'])} | {_f(m['per_s'])} | "
                     f"{_f(m['rss_after'])} |")
    lines += ["", f"Server RSS {_f(res.get('rss_before'))} MiB before, {_f(res.get('rss_after'))} MiB after; "
              f"Capabilities p50 {_f(res.get('capabilities_before_ms'), 2)} ms before, "
              f"{_f(res.get('capabilities_after_ms'), 2)} ms right after"
              + (f" ({res['capabilities_after_error']})" if res.get("capabilities_after_error") else "")
              + f" and {_f(res.get('capabilities_later_ms'), 2)} ms 5 s later (RSS then {_f(res.get('rss_later'))} MiB)"
              + f"; a real connection afterwards: {res.get('connection_after')}."]
    return "\n".join(lines)


# --- arguments and main -----------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    from p4splice.controller.argtypes import int_at_least, positive_float

    ap = argparse.ArgumentParser(prog="python -m p4splice.bench.flood", description=__doc__.splitlines()[0])
    ap.add_argument("--target", choices=("p4sim", "bmv2"), default=os.environ.get("TARGET", "p4sim"))
    ap.add_argument("--parts", nargs="+", choices=("flood", "streams", "garbage"),
                    default=["streams", "garbage", "flood"], help="what to run (default: all; streams and "
                    "garbage in the first design's lab, before its flood)")
    ap.add_argument("--handshakes", nargs="+", choices=("switch", "controller"), default=["switch", "controller"],
                    help="the flood's handshake designs, a lab each (default: switch controller)")
    ap.add_argument("--rates", nargs="+", type=int_at_least(1), default=list(DEFAULT_RATES), metavar="SYN_PER_S",
                    help="flood steps; then doubling until the switch forwards no more (default "
                         + " ".join(map(str, DEFAULT_RATES)) + ")")
    ap.add_argument("--max-rate", type=int_at_least(1), default=320_000, help="no step above this (SYN/s)")
    ap.add_argument("--step-s", type=positive_float, default=10.0, help="flood seconds per step (default 10)")
    ap.add_argument("--after-s", type=positive_float, default=15.0,
                    help="seconds the real client goes on after each step before the next (default 15)")
    ap.add_argument("--last-after-s", type=positive_float, default=40.0,
                    help="... after the last step (default 40)")
    ap.add_argument("--baseline-s", type=positive_float, default=5.0, help="real client alone first (default 5)")
    ap.add_argument("--max-frames", type=int_at_least(1), default=400_000,
                    help="distinct SYNs built per step, sent round and round (default 400,000)")
    ap.add_argument("--client-interval", type=positive_float, default=0.1,
                    help="the real client starts a connection this often (s, default 0.1)")
    ap.add_argument("--object-bytes", type=int_at_least(1), default=1000, help="what it downloads (default 1000)")
    ap.add_argument("--conn-timeout", type=positive_float, default=10.0,
                    help="a real connection not done in this many seconds failed (default 10)")
    ap.add_argument("--streams", type=int_at_least(1), default=1000, help="idle StreamChannels (default 1000)")
    ap.add_argument("--stream-channels", type=int_at_least(1), default=20,
                    help="gRPC channels (TCP connections) they are spread over (default 20)")
    ap.add_argument("--stream-mode", choices=("silent", "backup"), default="silent",
                    help="what each idle stream sends: nothing (default), or one arbitration update without "
                         "an election id (a backup controller; BMv2 1.15 refuses all but the first of those)")
    ap.add_argument("--stream-wait-s", type=positive_float, default=8.0,
                    help="a stream neither answered nor ended this long after it opened is held open (default 8)")
    ap.add_argument("--garbage", type=int_at_least(1), default=10_000,
                    help="undecodable requests per P4Runtime method (default 10,000)")
    ap.add_argument("--garbage-parallel", type=int_at_least(1), default=32, help="in flight (default 32)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--build-dir", type=Path, default=Path("build"))
    ap.add_argument("--log-dir", type=Path, default=Path("logs"))
    ap.add_argument("--out-json", type=Path, default=Path("build/flood.json"))
    args = ap.parse_args(argv)
    args.handshakes = list(dict.fromkeys(args.handshakes))
    args.rates = sorted(set(args.rates))
    return args


def _part(name: str, fn: Callable[[], Any]) -> Any:
    """Run one part; its failure is a line of the report, not the end of the benchmark."""
    from p4splice.lab.topology import LabError

    try:
        return fn()
    except (BenchError, LabError, OSError) as exc:
        say(f"  {name} failed: {exc}")
        return {"error": str(exc)}


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    from p4splice.lab.topology import Lab, LabError, LabSpec

    def on_term(signum: int, frame: object) -> None:
        signal.raise_signal(signal.SIGINT)  # as Ctrl-C: the lab comes down

    signal.signal(signal.SIGTERM, on_term)
    started = time.monotonic()
    load = os.getloadavg()
    meta = {"command": "python -m p4splice.bench.flood " + " ".join(sys.argv[1:] if argv is None else argv),
            "commit": commit(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "machine": f"{os.cpu_count()} CPUs, Linux {os.uname().release}, Python {sys.version.split()[0]}",
            "load_before": [round(x, 2) for x in load], "target": args.target}
    say("## SYN flood and idle streams (p4splice.bench.flood)\n")
    say(f"command: {meta['command'].rstrip()}")
    say(f"commit: {meta['commit']}")
    say(f"host: {socket.gethostname()}, {meta['machine']}, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, "
        f"date {meta['date']}")
    say(f"switch: {args.target}")
    results: dict[str, Any] = {"meta": meta, "flood": {}, "stopped": {}}
    status = 0
    designs = args.handshakes if "flood" in args.parts else args.handshakes[:1]
    try:
        for i, design in enumerate(designs):
            spec = LabSpec(clients=2, servers=1, target=args.target, build_dir=args.build_dir,
                           log_dir=args.log_dir / "flood", prefix="p4f", controller={"handshakes": design})
            say(f"\n== lab: {args.target}, handshakes = \"{design}\" ==")
            t_lab = time.monotonic()
            with Lab(spec, progress=lambda m: None) as lab:
                say(f"lab up in {time.monotonic() - t_lab:.0f} s (P4Runtime {lab.grpc_addr}, logs {lab.log_dir})")
                if i == 0 and "streams" in args.parts:
                    say(f"-- {args.streams} idle StreamChannels --")
                    results["streams"] = _part("streams", lambda lab=lab: asyncio.run(streams_part(lab, args)))
                if i == 0 and "garbage" in args.parts:
                    say(f"-- {args.garbage:,} undecodable requests per method --")
                    results["garbage"] = _part("garbage", lambda lab=lab: asyncio.run(garbage_part(lab, args)))
                if "flood" in args.parts:
                    say(f"-- SYN flood, handshakes = \"{design}\" --")
                    flood = Flood(lab, args, design)
                    got = _part(f"flood ({design})", lambda flood=flood: asyncio.run(flood.run()))
                    results["flood"][design] = flood.steps
                    results["stopped"][design] = flood.stopped_because or (got.get("error", "") if isinstance(got, dict)
                                                                           else "")
                    say(f"  stopped: {results['stopped'][design]}")
    except LabError as exc:
        say(f"flood benchmark failed: {exc}")
        status = 1
    except KeyboardInterrupt:
        say("\ninterrupted: torn down")
        return 130
    meta["load_after"] = [round(x, 2) for x in os.getloadavg()]
    meta["seconds"] = round(time.monotonic() - started)
    say(f"\n### Results ({meta['date']}, commit {meta['commit']}, {args.target}, load average "
        f"{meta['load_before']} -> {meta['load_after']}, {meta['seconds']} s)\n")
    for design, steps in results["flood"].items():
        if steps:
            say(flood_tables(design, steps))
            say("")
            for line in flood_summary(steps):
                say(f"- {line}")
            say(f"- stopped: {results['stopped'].get(design)}\n")
    if "streams" in results:
        say("#### Idle StreamChannels\n")
        say(streams_table(results["streams"], args.target))
        say("")
    if "garbage" in results:
        say("#### Undecodable requests\n")
        say(garbage_table(results["garbage"], args.target))
    doc = {**results, "flood": {d: [asdict(s) for s in steps] for d, steps in results["flood"].items()}}
    with contextlib.suppress(OSError):
        args.out_json.parent.mkdir(parents=True, exist_ok=True)
        args.out_json.write_text(json.dumps(doc, indent=1, default=str) + "\n")
        say(f"\nraw results: {args.out_json}")
    return status


if __name__ == "__main__":
    sys.exit(main())
