"""An impairment relay for the lab: a WAN emulator on a cable, in userspace, for kernels without
``tc netem`` (no ``sch_netem``, no tc classifiers or actions).

A lab cable with a relay is two veth pairs instead of one::

    host eth0 ══veth══ A ──[relay: to_switch ▶ / ◀ to_host]── B ══veth══ switch port

A and B stay in the root namespace (like the switch's own ends); the relay binds an AF_PACKET raw
socket to each and copies every frame across, per direction through an :class:`Impairer`:

1. **loss**: dropped with probability ``loss``;
2. **reordering**: with probability ``reorder`` a frame is held back and sent after the next
   ``reorder_gap`` frames of the same direction (or after ``reorder_hold`` seconds when the
   direction goes quiet);
3. **delay**: ``delay`` ± ``jitter`` (uniform) on a timer heap. The order of a direction is kept
   (a frame never leaves before the one in front of it), so jitter alone does not reorder;
   reordering is the separate knob above. Resolution ~1 ms (epoll's timeout).

A bounded queue (``limit`` frames held or delayed per direction) drops the excess (``overflow``).
Each direction has its own seeded ``random.Random`` (seed, cable, direction), so the same frame
sequence meets the same decisions; a TCP transfer is timing-dependent, so two runs see similar,
not identical, sequences. Counters per direction: received, passed, dropped, reordered, delayed,
overflow, send_errors, plus kernel_drops (the receive socket overran: PACKET_STATISTICS).
``received == passed + dropped + overflow + queued`` at any time.

Why a process, not a thread of the test: the test process hashes and generates every byte it
sends (sha256, seeded random streams) and runs asyncio; a relay thread would share its GIL and
add latency spikes of tens of milliseconds to every frame. As its own process the relay has a
core of its own when one is free. ``python -m p4splice.lab.impair --cable NAME:A:B
--control SOCK`` runs it; :class:`RelayControl` talks to it (JSON lines on a Unix socket:
``set`` an impairment, read ``stats``). :class:`RelayProcess` starts one and stops it; the lab
spawns it with its other processes (``LabSpec.impair``, ``Lab.impair()``). It exits when its
parent dies (``--parent``), so a killed test leaves no relay behind.

Speed (the 2-vCPU VM of docs/benchmarks.md, Python 3.11, 1514-byte frames one way, a Python
sender outrunning the relay on the other core): 60,000-115,000 frames/s pass-through and
45,000-65,000 frames/s through loss + reordering + delay, over runs on a shared machine
(``tests/lab/test_impair.py::test_relay_speed -s`` prints them). p4sim forwards the splice
program at ~24,000 packets/s, so the relay is not the lab's bottleneck.

Limits: untagged Ethernet only (the kernel strips 802.1Q tags on receive and the relay does not
put them back; the lab uses none); no rate limiting; frames the relay sends are counted in
``passed`` even when the veth then drops them under overload (that shows in ``ip -s link``).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import errno
import heapq
import json
import logging
import os
import random
import select
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "DIRECTIONS",
    "TO_HOST",
    "TO_SWITCH",
    "Counters",
    "ImpairSpec",
    "Impairer",
    "Relay",
    "RelayControl",
    "RelayError",
    "RelayProcess",
]

log = logging.getLogger("p4splice.lab.impair")

TO_SWITCH = "to_switch"  # frames the host sends (received on A, sent on B)
TO_HOST = "to_host"  # frames toward the host (received on B, sent on A)
DIRECTIONS = (TO_SWITCH, TO_HOST)

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_STATISTICS = 6
PACKET_IGNORE_OUTGOING = 23
PACKET_OUTGOING = 4
SO_RCVBUFFORCE = 33
SO_SNDBUFFORCE = 32
MAX_FRAME = 65535 + 14 + 8
RECV_BUDGET = 256  # frames read from one socket per wake-up, so one busy direction cannot starve the other


class RelayError(RuntimeError):
    """The relay refused a request, or could not be reached or started."""


@dataclass(frozen=True)
class ImpairSpec:
    """The impairment of one direction of a cable (times in seconds). The default passes all."""

    loss: float = 0.0  # probability that a frame is dropped
    reorder: float = 0.0  # probability that a frame (not dropped) is held back ...
    reorder_gap: int = 3  # ... until this many later frames have passed it,
    reorder_hold: float = 0.05  # ... or at most this long (a quiet direction)
    delay: float = 0.0  # fixed one-way delay
    jitter: float = 0.0  # uniform in [-jitter, +jitter] around delay (order kept)
    limit: int = 10_000  # frames held back or delayed at once; more are dropped (overflow)
    seed: int = 1

    def __post_init__(self) -> None:
        for name in ("loss", "reorder"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {getattr(self, name)}")
        for name in ("reorder_hold", "delay", "jitter"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative, got {getattr(self, name)}")
        if self.reorder_gap < 1 or self.limit < 1:
            raise ValueError("reorder_gap and limit must be at least 1")

    @property
    def passthrough(self) -> bool:
        return not (self.loss or self.reorder or self.delay or self.jitter)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ImpairSpec:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown impairment keys: {', '.join(sorted(unknown))}")
        return cls(**data)


@dataclass
class Counters:
    """Frames of one direction since its impairment was last set."""

    received: int = 0
    passed: int = 0  # handed to the other side (in order of leaving)
    dropped: int = 0  # lost on purpose (loss)
    reordered: int = 0  # left after at least one frame that arrived later
    delayed: int = 0  # went through the delay line
    overflow: int = 0  # dropped because ``limit`` frames were queued
    send_errors: int = 0  # the kernel refused to send (counted in passed too)


@dataclass
class _Held:
    frame: bytes
    gap: int  # later frames still to pass it
    deadline: float
    overtaken: int = 0


class Impairer:
    """One direction of a cable, without I/O: frames in (``push``), frames out in the order they
    leave; ``deadline()`` says when ``due()`` has frames to release."""

    def __init__(self, spec: ImpairSpec | None = None, salt: str = "") -> None:
        self.salt = salt
        self.spec = ImpairSpec()
        self.counters = Counters()
        self.rng = random.Random()
        self._held: list[_Held] = []
        self._heap: list[tuple[float, int, bytes]] = []
        self._seq = 0
        self._last_release = 0.0
        self.set(spec or ImpairSpec(), 0.0)

    def set(self, spec: ImpairSpec, now: float) -> list[bytes]:
        """A new impairment from now on: what was held or delayed leaves at once (returned, counted
        in the old counters), then the counters start from zero and the RNG from the seed."""
        out = [h.frame for h in self._held] + [f for _, _, f in sorted(self._heap)]
        self.counters.passed += len(out)
        self._held.clear()
        self._heap.clear()
        self.spec = spec
        self.counters = Counters()
        self.rng = random.Random(f"{spec.seed}/{self.salt}")
        self._last_release = now
        return out

    @property
    def queued(self) -> int:
        return len(self._held) + len(self._heap)

    def push(self, frame: bytes, now: float) -> list[bytes]:
        """One frame in; the frames that leave now, in order."""
        c, spec, rng = self.counters, self.spec, self.rng
        c.received += 1
        if spec.loss and rng.random() < spec.loss:
            c.dropped += 1
            return self.due(now)
        if self.queued >= spec.limit:
            c.overflow += 1
            return self.due(now)
        out: list[bytes] = []
        if spec.reorder and rng.random() < spec.reorder:
            # Held frames do not count against each other's gaps: only frames that leave do.
            self._held.append(_Held(frame, spec.reorder_gap, now + spec.reorder_hold))
        else:
            self._delay(frame, now, out)
            for h in self._overtake():
                self._delay(h.frame, now, out)
        self._release_expired(now, out)
        out += self._pop_due(now)
        c.passed += len(out)
        return out

    def deadline(self) -> float | None:
        """When the next held or delayed frame is due (``time.monotonic()`` scale), or None."""
        times = [h.deadline for h in self._held]
        if self._heap:
            times.append(self._heap[0][0])
        return min(times) if times else None

    def due(self, now: float) -> list[bytes]:
        """The frames whose time has come."""
        out: list[bytes] = []
        self._release_expired(now, out)
        out += self._pop_due(now)
        self.counters.passed += len(out)
        return out

    def _overtake(self) -> list[_Held]:
        """A frame passed the held ones: count it against their gaps; those whose gap is used up
        are released (returned, oldest first)."""
        released = []
        for h in self._held:
            h.gap -= 1
            h.overtaken += 1
            if h.gap <= 0:
                released.append(h)
        if released:
            self._held = [h for h in self._held if h.gap > 0]
            self.counters.reordered += len(released)
        return released

    def _release_expired(self, now: float, out: list[bytes]) -> None:
        if not self._held or min(h.deadline for h in self._held) > now:
            return
        keep = []
        for h in self._held:
            if h.deadline <= now:
                self.counters.reordered += h.overtaken > 0
                self._delay(h.frame, now, out)
            else:
                keep.append(h)
        self._held = keep

    def _delay(self, frame: bytes, now: float, out: list[bytes]) -> None:
        spec = self.spec
        if not (spec.delay or spec.jitter):
            out.append(frame)
            return
        wait = spec.delay + (self.rng.uniform(-spec.jitter, spec.jitter) if spec.jitter else 0.0)
        # Never before the frame in front: jitter must not reorder (that is the other knob).
        release = max(now + max(wait, 0.0), self._last_release)
        self._last_release = release
        self._seq += 1
        heapq.heappush(self._heap, (release, self._seq, frame))
        self.counters.delayed += 1

    def _pop_due(self, now: float) -> list[bytes]:
        out = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            out.append(heapq.heappop(heap)[2])
        return out


# --- the relay (I/O) ------------------------------------------------------------------------------

def _raw_socket(ifname: str) -> tuple[socket.socket, bool]:
    """A raw socket on ``ifname`` and whether the kernel filters our own outgoing frames out
    (then ``recv_into`` will do: no address tuple to build per frame)."""
    # Protocol 0 at creation: nothing arrives before the bind to this one interface.
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    ignore_outgoing = False
    try:
        for force, opt, size in ((SO_RCVBUFFORCE, socket.SO_RCVBUF, 8 << 20), (SO_SNDBUFFORCE, socket.SO_SNDBUF, 4 << 20)):
            try:
                sock.setsockopt(socket.SOL_SOCKET, force, size)  # root may exceed net.core.*mem_max
            except OSError:
                sock.setsockopt(socket.SOL_SOCKET, opt, size)
        with contextlib.suppress(OSError):  # kernel < 4.20: the pkttype check does the job
            sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
            ignore_outgoing = True
        sock.bind((ifname, ETH_P_ALL))
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock, ignore_outgoing


def _kernel_drops(sock: socket.socket) -> int:
    """Frames the kernel dropped for want of room in the socket's receive buffer (since the last
    call: PACKET_STATISTICS resets on read)."""
    with contextlib.suppress(OSError):
        _packets, drops = struct.unpack("II", sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8))
        return drops
    return 0


@dataclass
class _Direction:
    name: str
    rx: socket.socket
    tx: socket.socket
    impairer: Impairer
    ignore_outgoing: bool = False
    kernel_drops: int = 0

    def send(self, frames: Sequence[bytes]) -> None:
        for frame in frames:
            _send(self.tx, frame, self.impairer.counters)


def _send(sock: socket.socket, frame: bytes | memoryview, counters: Counters) -> None:
    try:
        sock.send(frame)
    except BlockingIOError:
        # Send buffer full: wait briefly rather than drop at the first burst.
        select.select([], [sock], [], 0.05)
        try:
            sock.send(frame)
        except OSError:
            counters.send_errors += 1
    except OSError as exc:
        # ENOBUFS: the veth peer's backlog was full. A loss we did not choose; counted.
        counters.send_errors += 1
        if exc.errno not in (errno.ENOBUFS, errno.EAGAIN):
            log.warning("send: %s", exc)


@dataclass
class _Cable:
    name: str
    host_if: str
    switch_if: str
    directions: dict[str, _Direction] = field(default_factory=dict)


class Relay:
    """The relay's event loop over any number of cables (``(name, host_if, switch_if)``), with an
    optional control socket. ``run()`` until ``stop()`` (from another thread or a signal)."""

    def __init__(self, cables: Sequence[tuple[str, str, str]], control: Path | str | None = None,
                 parent: int | None = None) -> None:
        self.cables: dict[str, _Cable] = {}
        self.parent = parent
        self._socks: list[socket.socket] = []
        self._by_fd: dict[int, _Direction] = {}
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._stopping = False
        self._control: socket.socket | None = None
        try:
            for name, host_if, switch_if in cables:
                if name in self.cables:
                    raise ValueError(f"cable {name!r} twice")
                (a, a_ign), (b, b_ign) = _raw_socket(host_if), _raw_socket(switch_if)
                self._socks += [a, b]
                cable = _Cable(name, host_if, switch_if)
                cable.directions[TO_SWITCH] = _Direction(TO_SWITCH, a, b, Impairer(salt=f"{name}/{TO_SWITCH}"), a_ign)
                cable.directions[TO_HOST] = _Direction(TO_HOST, b, a, Impairer(salt=f"{name}/{TO_HOST}"), b_ign)
                self._by_fd[a.fileno()] = cable.directions[TO_SWITCH]
                self._by_fd[b.fileno()] = cable.directions[TO_HOST]
                self.cables[name] = cable
            if control is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(control)
                self._control = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self._control.bind(str(control))
                self._control.listen(16)
                self._control.setblocking(False)
        except BaseException:
            self.close()
            raise

    # --- control (what the control socket's requests call) -------------------------------------

    def set(self, cable: str, spec: ImpairSpec | None, direction: str = "both") -> None:
        if cable not in self.cables:
            raise RelayError(f"no cable {cable!r} (have {', '.join(self.cables)})")
        if direction not in (*DIRECTIONS, "both"):
            raise RelayError(f"direction must be {TO_SWITCH}, {TO_HOST} or both, not {direction!r}")
        now = time.monotonic()
        for name, d in self.cables[cable].directions.items():
            if direction in (name, "both"):
                d.send(d.impairer.set(spec or ImpairSpec(), now))
                d.kernel_drops = 0
                _kernel_drops(d.rx)  # reads (and so resets) the kernel's count

    def stats(self) -> dict[str, dict[str, dict[str, Any]]]:
        out: dict[str, dict[str, dict[str, Any]]] = {}
        for cable in self.cables.values():
            out[cable.name] = {}
            for name, d in cable.directions.items():
                d.kernel_drops += _kernel_drops(d.rx)
                out[cable.name][name] = {**dataclasses.asdict(d.impairer.counters), "queued": d.impairer.queued,
                                         "kernel_drops": d.kernel_drops, "spec": d.impairer.spec.to_dict()}
        return out

    def handle(self, request: Any) -> Any:
        if not isinstance(request, dict):
            raise RelayError("a request is a JSON object")
        op = request.get("op")
        if op == "ping":
            return {"cables": {c.name: [c.host_if, c.switch_if] for c in self.cables.values()}, "pid": os.getpid()}
        if op == "set":
            spec = request.get("spec")
            try:
                parsed = ImpairSpec.from_dict(spec) if spec is not None else None
            except (TypeError, ValueError) as exc:
                raise RelayError(str(exc)) from exc
            self.set(str(request.get("cable")), parsed, str(request.get("direction", "both")))
            return None
        if op == "stats":
            return self.stats()
        raise RelayError(f"unknown op {op!r}")

    # --- the loop --------------------------------------------------------------------------------

    def stop(self) -> None:
        self._stopping = True
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")

    def run(self) -> None:
        ep = select.epoll()
        try:
            for fd in self._by_fd:
                ep.register(fd, select.EPOLLIN)
            ep.register(self._wake_r, select.EPOLLIN)
            if self._control is not None:
                ep.register(self._control.fileno(), select.EPOLLIN)
            control_fd = self._control.fileno() if self._control is not None else -1
            directions = [d for c in self.cables.values() for d in c.directions.values()]
            buf = bytearray(MAX_FRAME)
            view = memoryview(buf)
            next_parent_check = 0.0
            while not self._stopping:
                now = time.monotonic()
                deadlines = [t for d in directions if (t := d.impairer.deadline()) is not None]
                # At most 1 s asleep: the parent check below.
                timeout = min([1.0, *(max(t - now, 0.0) for t in deadlines)])
                for fd, _ev in ep.poll(timeout):
                    if fd == control_fd:
                        self._accept()
                    elif fd == self._wake_r:
                        with contextlib.suppress(BlockingIOError):
                            os.read(self._wake_r, 64)
                    else:
                        self._pump(self._by_fd[fd], view)
                now = time.monotonic()
                for d in directions:
                    t = d.impairer.deadline()
                    if t is not None and t <= now:
                        d.send(d.impairer.due(now))
                if self.parent is not None and now >= next_parent_check:
                    next_parent_check = now + 1.0
                    if os.getppid() != self.parent:
                        log.info("parent %d is gone: exiting", self.parent)
                        break
        finally:
            ep.close()

    def _pump(self, d: _Direction, view: memoryview) -> None:
        imp, rx, tx = d.impairer, d.rx, d.tx
        fast = d.ignore_outgoing
        for _ in range(RECV_BUDGET):
            try:
                if fast:
                    n = rx.recv_into(view)
                else:
                    n, addr = rx.recvfrom_into(view)
                    if addr[2] == PACKET_OUTGOING:
                        continue
            except BlockingIOError:
                return
            except OSError as exc:
                log.warning("%s: recv: %s", d.name, exc)
                return
            if imp.spec.passthrough and not imp.queued:
                # Fast path: no copy, no RNG.
                counters = imp.counters
                counters.received += 1
                counters.passed += 1
                try:
                    tx.send(view[:n])
                except OSError:
                    _send(tx, view[:n], counters)  # the slow path retries and counts
            else:
                for frame in imp.push(bytes(view[:n]), time.monotonic()):
                    _send(tx, frame, imp.counters)

    def _accept(self) -> None:
        assert self._control is not None
        while True:
            try:
                conn, _ = self._control.accept()
            except BlockingIOError:
                return
            with conn:
                conn.settimeout(2.0)  # requests are one short line, sent at once
                try:
                    line = _read_line(conn)
                    try:
                        reply = {"ok": True, "result": self.handle(json.loads(line))}
                    except (RelayError, ValueError) as exc:
                        reply = {"ok": False, "error": str(exc)}
                    conn.sendall(json.dumps(reply).encode() + b"\n")
                except OSError as exc:
                    log.warning("control connection: %s", exc)

    def close(self) -> None:
        for sock in self._socks:
            sock.close()
        self._socks.clear()
        if self._control is not None:
            path = self._control.getsockname()
            self._control.close()
            self._control = None
            with contextlib.suppress(OSError):
                os.unlink(path)
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._wake_r = self._wake_w = -1

    def __enter__(self) -> Relay:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _read_line(conn: socket.socket) -> bytes:
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = conn.recv(65536)
        if not chunk:
            raise OSError(errno.ECONNRESET, "closed before the end of the line")
        buf += chunk
    return buf


# --- talking to a relay process -------------------------------------------------------------------

class RelayControl:
    """Requests to a relay process over its control socket (blocking, one connection each)."""

    def __init__(self, path: Path | str, timeout: float = 5.0) -> None:
        self.path = str(path)
        self.timeout = timeout

    def request(self, op: str, **args: Any) -> Any:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(self.timeout)
            try:
                sock.connect(self.path)
                sock.sendall(json.dumps({"op": op, **args}).encode() + b"\n")
                reply = json.loads(_read_line(sock))
            except (OSError, ValueError) as exc:
                raise RelayError(f"relay at {self.path}: {op}: {exc}") from exc
        if not reply.get("ok"):
            raise RelayError(f"relay: {op}: {reply.get('error')}")
        return reply.get("result")

    def ping(self) -> dict[str, Any]:
        return self.request("ping")

    def set(self, cable: str, spec: ImpairSpec | None, direction: str = "both") -> None:
        self.request("set", cable=cable, direction=direction, spec=spec.to_dict() if spec is not None else None)

    def stats(self) -> dict[str, dict[str, dict[str, Any]]]:
        return self.request("stats")


def relay_argv(cables: Sequence[tuple[str, str, str]], control: Path | str, parent: int | None = None) -> list[str]:
    """The command line of a relay process (``sys.executable -m ...``)."""
    argv = [sys.executable, "-m", "p4splice.lab.impair", "--control", str(control)]
    for name, host_if, switch_if in cables:
        argv += ["--cable", f"{name}:{host_if}:{switch_if}"]
    if parent is not None:
        argv += ["--parent", str(parent)]
    return argv


class RelayProcess(contextlib.AbstractContextManager["RelayProcess"]):
    """A relay process of its own (for tests and tools; the lab spawns its relay like its other
    processes): started ready (its control socket answers), stopped on exit."""

    def __init__(self, cables: Sequence[tuple[str, str, str]], control: Path | str, timeout: float = 10.0,
                 log_path: Path | None = None) -> None:
        self.control = RelayControl(control)
        logf = open(log_path, "ab") if log_path is not None else subprocess.DEVNULL  # noqa: SIM115
        try:
            self.popen = subprocess.Popen(relay_argv(cables, control, os.getpid()), stdin=subprocess.DEVNULL,
                                          stdout=logf, stderr=logf, start_new_session=True)
        finally:
            if log_path is not None:
                logf.close()  # type: ignore[union-attr]
        try:
            wait_ready(self.control, self.popen, timeout)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(5)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()

    def __exit__(self, *exc: object) -> None:
        self.close()


def wait_ready(control: RelayControl, popen: subprocess.Popen[bytes], timeout: float) -> dict[str, Any]:
    """Until the relay answers a ping; RelayError if it exits first or after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        if popen.poll() is not None:
            raise RelayError(f"the relay exited with status {popen.returncode} before it was ready")
        with contextlib.suppress(RelayError):
            return control.ping()
        if time.monotonic() > deadline:
            raise RelayError(f"the relay did not answer within {timeout}s")
        time.sleep(0.02)  # polling interval of a readiness check with a deadline


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m p4splice.lab.impair", description=__doc__.split("\n")[0])
    ap.add_argument("--cable", action="append", required=True, metavar="NAME:HOST_IF:SWITCH_IF",
                    help="a cable to relay: frames from HOST_IF go to SWITCH_IF (to_switch) and back (to_host)")
    ap.add_argument("--control", required=True, help="Unix socket for set/stats requests (JSON lines)")
    ap.add_argument("--parent", type=int, help="exit when this process is no longer our parent")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s impair %(levelname)s %(message)s")
    cables = []
    for item in args.cable:
        parts = item.split(":")
        if len(parts) != 3 or not all(parts):
            ap.error(f"--cable {item!r}: want NAME:HOST_IF:SWITCH_IF")
        cables.append((parts[0], parts[1], parts[2]))
    if args.parent is not None and os.getppid() != args.parent:
        return 1  # the parent died before we started
    relay = Relay(cables, control=args.control, parent=args.parent)
    signal.signal(signal.SIGTERM, lambda *_: relay.stop())
    signal.signal(signal.SIGINT, lambda *_: relay.stop())
    log.info("relaying %s; control on %s", ", ".join(f"{n}: {h}<->{s}" for n, h, s in cables), args.control)
    try:
        relay.run()
    finally:
        stats = relay.stats()
        relay.close()
        log.info("stopped; counters %s", json.dumps(stats))
    return 0


if __name__ == "__main__":
    sys.exit(main())
