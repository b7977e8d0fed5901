"""The lab's impairment relay (lab/impair.py): the per-direction impairer without I/O
(loss, reordering, delay and jitter, the bounded queue, exact counters), then the relay process
between two namespaces with raw frames (exact counters and order) and a TCP stream (byte-exact
through loss, reordering and delay), and its speed."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import random
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from p4splice.lab import netdev
from p4splice.lab.impair import (
    TO_HOST,
    TO_SWITCH,
    Impairer,
    ImpairSpec,
    RelayError,
    RelayProcess,
    relay_argv,
)

log = logging.getLogger(__name__)


def frames(n: int) -> list[bytes]:
    return [b"frame %d" % i for i in range(n)]


def index(frame: bytes) -> int:
    return int(frame.split()[1])


def conserved(imp: Impairer) -> None:
    c = imp.counters
    assert c.received == c.passed + c.dropped + c.overflow + imp.queued


# --- the impairer, without I/O --------------------------------------------------------------------

def test_passthrough_keeps_everything_in_order() -> None:
    imp = Impairer(salt="x")
    out = [f for fr in frames(100) for f in imp.push(fr, 0.0)]
    assert out == frames(100)
    assert (imp.counters.received, imp.counters.passed, imp.deadline()) == (100, 100, None)


@pytest.mark.parametrize("loss", [0.0, 1.0])
def test_loss_none_or_all(loss: float) -> None:
    imp = Impairer(ImpairSpec(loss=loss), salt="x")
    out = [f for fr in frames(500) for f in imp.push(fr, 0.0)]
    assert len(out) == (500 if loss == 0 else 0)
    assert (imp.counters.dropped, imp.counters.passed) == ((0, 500) if loss == 0 else (500, 0))
    conserved(imp)


def test_loss_is_seeded_and_near_its_rate() -> None:
    def run(seed: int, salt: str) -> list[bytes]:
        imp = Impairer(ImpairSpec(loss=0.1, seed=seed), salt=salt)
        out = [f for fr in frames(10_000) for f in imp.push(fr, 0.0)]
        assert imp.counters.dropped == 10_000 - len(out)
        conserved(imp)
        return out
    first = run(7, "c1/to_switch")
    assert first == run(7, "c1/to_switch")  # reproducible
    assert first != run(7, "c1/to_host")  # each direction has its own stream
    assert first != run(8, "c1/to_switch")
    assert 800 < 10_000 - len(first) < 1200
    assert first == sorted(first, key=index)  # loss alone never reorders


def test_reorder_sends_a_held_frame_after_the_next_gap_frames() -> None:
    imp = Impairer(ImpairSpec(reorder=0.2, reorder_gap=3, reorder_hold=10.0), salt="x")
    out = [f for fr in frames(2000) for f in imp.push(fr, 0.0)]
    out += imp.due(100.0)  # the hold of the last held frames runs out
    assert sorted(out, key=index) == frames(2000)  # nothing lost, nothing doubled
    later = 0  # frames that left after a frame that arrived after them
    for pos, frame in enumerate(out):
        overtakers = [f for f in out[:pos] if index(f) > index(frame)]
        if overtakers:
            later += 1
            # Held back behind exactly gap frames, unless the end of the stream came first.
            assert len(overtakers) == 3 or pos >= len(out) - 3
    assert later == imp.counters.reordered
    assert 300 < later < 500
    assert imp.counters.passed == 2000
    conserved(imp)


def test_a_held_frame_leaves_when_its_hold_runs_out() -> None:
    imp = Impairer(ImpairSpec(reorder=1.0, reorder_hold=0.05), salt="x")
    assert imp.push(b"frame 0", 0.0) == []
    assert imp.deadline() == pytest.approx(0.05)
    assert imp.due(0.04) == []
    assert imp.due(0.05) == [b"frame 0"]
    assert imp.counters.reordered == 0  # nothing overtook it: late, not reordered
    conserved(imp)


def test_delay_holds_every_frame_and_jitter_keeps_the_order() -> None:
    imp = Impairer(ImpairSpec(delay=0.020, jitter=0.005), salt="x")
    sent = {}
    out: list[tuple[float, bytes]] = []
    todo = frames(200)
    for step in range(3000):  # 0.1 ms steps, a frame every millisecond
        now = step * 0.0001
        if step % 10 == 0 and todo:
            sent[todo[0]] = now
            out += [(now, f) for f in imp.push(todo.pop(0), now)]
        if (t := imp.deadline()) is not None:
            assert t > now - 0.0001  # deadline() said when: nothing was left overdue
        out += [(now, f) for f in imp.due(now)]
    assert imp.deadline() is None
    assert [f for _, f in out] == frames(200)
    waits = [t - sent[f] for t, f in out]
    assert min(waits) >= 0.015 - 1e-9
    assert max(waits) <= 0.025 + 0.0002  # in order: a frame may wait for the one in front
    assert max(waits) - min(waits) > 0.007  # jitter, not a fixed delay
    assert (imp.counters.delayed, imp.counters.passed) == (200, 200)


def test_the_queue_is_bounded() -> None:
    imp = Impairer(ImpairSpec(delay=1.0, limit=10), salt="x")
    for fr in frames(25):
        assert imp.push(fr, 0.0) == []
    assert (imp.queued, imp.counters.overflow, imp.counters.delayed) == (10, 15, 10)
    conserved(imp)
    assert imp.due(1.0) == frames(10)


def test_set_flushes_what_was_queued_and_starts_counting_again() -> None:
    imp = Impairer(ImpairSpec(delay=1.0), salt="x")
    for fr in frames(5):
        imp.push(fr, 0.0)
    assert imp.set(ImpairSpec(), 0.1) == frames(5)
    assert (imp.counters.received, imp.queued) == (0, 0)
    assert imp.push(b"frame 9", 0.2) == [b"frame 9"]


def test_spec_checks_its_values() -> None:
    for bad in ({"loss": 1.5}, {"reorder": -0.1}, {"delay": -1}, {"reorder_gap": 0}, {"limit": 0}):
        with pytest.raises(ValueError):
            ImpairSpec(**bad)
    with pytest.raises(ValueError, match="unknown"):
        ImpairSpec.from_dict({"los": 0.1})
    spec = ImpairSpec(loss=0.01, delay=0.02, jitter=0.005, seed=3)
    assert ImpairSpec.from_dict(spec.to_dict()) == spec


# --- the relay process between two namespaces -----------------------------------------------------

ETHERTYPE = 0x88B5  # IEEE local experimental: no kernel protocol takes these frames
DST, SRC = bytes.fromhex("020000000002"), bytes.fromhex("020000000001")


@dataclass
class Bench:
    """ns1 x1 ══ A ─relay─ B ══ x2 ns2 (cable "c"; x1's frames go to_switch)."""

    ns1: str
    ns2: str
    relay: RelayProcess
    tx: socket.socket  # raw, on x1 in ns1
    rx: socket.socket  # raw, on x2 in ns2


def _raw(netns: str, ifname: str) -> socket.socket:
    with netdev.netns_socket(netns):
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETHERTYPE))
    sock.bind((ifname, ETHERTYPE))
    sock.setsockopt(socket.SOL_SOCKET, 33, 8 << 20)  # SO_RCVBUFFORCE
    return sock


@pytest.fixture(scope="module")
def bench() -> Iterator[Bench]:
    try:
        netdev.require_netns()
    except netdev.NetdevUnavailable as exc:
        pytest.skip(str(exc))
    with netdev.Topology(prefix="p4imp") as topo, tempfile.TemporaryDirectory(prefix="imp") as tmp:
        ns1, ns2 = topo.add_netns(), topo.add_netns()
        left = topo.add_veth(ns_a=ns1)
        right = topo.add_veth(ns_b=ns2)
        for ns, ifname, ip in ((ns1, left.a, "10.9.0.1/24"), (ns2, right.b, "10.9.0.2/24")):
            topo.add_address(ifname, ip, netns=ns)
        with RelayProcess([("c", left.b, right.a)], Path(tmp) / "ctl.sock",
                          log_path=Path(tmp) / "relay.log") as relay:
            tx, rx = _raw(ns1, left.a), _raw(ns2, right.b)
            with tx, rx:
                yield Bench(ns1, ns2, relay, tx, rx)
            assert relay.popen.poll() is None, "the relay died during the tests"
    assert not any(n in netdev.list_netns() for n in (ns1, ns2))


def _send(sock: socket.socket, n: int, size: int = 60) -> None:
    for i in range(n):
        sock.send(DST + SRC + struct.pack("!HI", ETHERTYPE, i) + bytes(size - 20))


def _receive(sock: socket.socket, idle: float = 0.3) -> list[int]:
    """Sequence numbers of the test frames that arrive until nothing came for ``idle`` s."""
    got = []
    sock.settimeout(idle)
    with contextlib.suppress(TimeoutError):
        while True:
            frame = sock.recv(65536)
            if frame[12:14] == struct.pack("!H", ETHERTYPE):
                got.append(struct.unpack_from("!I", frame, 14)[0])
    return got


def _drain(sock: socket.socket) -> None:
    _receive(sock, idle=0.05)


def _counters(bench: Bench, direction: str = TO_SWITCH) -> dict[str, int]:
    return bench.relay.control.stats()["c"][direction]


def test_relay_passes_every_frame_in_order(bench: Bench) -> None:
    bench.relay.control.set("c", None)
    _drain(bench.rx)
    _send(bench.tx, 300)
    assert _receive(bench.rx) == list(range(300))
    c = _counters(bench)
    # Only our frames cross the cable (IPv6 is off on the lab's veths, nothing else speaks).
    assert (c["received"], c["passed"], c["dropped"], c["kernel_drops"]) == (300, 300, 0, 0)


def test_relay_drops_every_frame_at_loss_one(bench: Bench) -> None:
    bench.relay.control.set("c", ImpairSpec(loss=1.0), direction=TO_SWITCH)
    try:
        _drain(bench.rx)
        _send(bench.tx, 200)
        assert _receive(bench.rx) == []
        c = _counters(bench)
        assert (c["received"], c["passed"], c["dropped"]) == (200, 0, 200)
        assert _counters(bench, TO_HOST)["spec"]["loss"] == 0.0  # only the direction asked for
    finally:
        bench.relay.control.set("c", None)


def test_relay_reorders_exactly_as_its_seed_says(bench: Bench) -> None:
    """The relay's decisions are the impairer's: the same spec and salt here predict the order."""
    spec = ImpairSpec(reorder=0.1, reorder_gap=2, reorder_hold=2.0, loss=0.05, seed=11)
    bench.relay.control.set("c", spec, direction=TO_SWITCH)
    try:
        _drain(bench.rx)
        _send(bench.tx, 400)
        got = _receive(bench.rx, idle=2.5)  # the last held frames wait out their hold
        model = Impairer(spec, salt=f"c/{TO_SWITCH}")
        want = [f for i in range(400) for f in model.push(i, 0.0)] + model.due(10.0)  # type: ignore[arg-type]
        assert got == want
        c = _counters(bench)
        m = model.counters
        assert (c["received"], c["passed"], c["dropped"], c["reordered"]) == (400, m.passed, m.dropped, m.reordered)
        assert m.reordered > 10 and m.dropped > 5
    finally:
        bench.relay.control.set("c", None)


def test_relay_rejects_bad_requests(bench: Bench) -> None:
    with pytest.raises(RelayError, match="no cable"):
        bench.relay.control.set("nope", None)
    with pytest.raises(RelayError, match="probability"):
        bench.relay.control.request("set", cable="c", spec={"loss": 2})
    with pytest.raises(RelayError, match="unknown op"):
        bench.relay.control.request("frobnicate")
    for line in (b"[1]\n", b"not json\n"):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(bench.relay.control.path)
            sock.sendall(line)
            assert b'"ok": false' in sock.recv(65536)
    assert bench.relay.popen.poll() is None and "c" in bench.relay.control.ping()["cables"]  # still serving


def test_tcp_stream_byte_exact_through_loss_reordering_and_delay(bench: Bench) -> None:
    spec = ImpairSpec(loss=0.02, reorder=0.05, delay=0.005, jitter=0.002, seed=5)
    bench.relay.control.set("c", spec)
    size = 2_000_000
    payload = random.Random(1).randbytes(size)
    try:
        with netdev.netns_socket(bench.ns2):
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        with listener:
            listener.bind(("10.9.0.2", 0))
            listener.listen(1)
            listener.settimeout(30)
            digest: list[str] = []

            def serve() -> None:
                conn, _ = listener.accept()
                with conn:
                    conn.settimeout(30)
                    h, n = hashlib.sha256(), 0
                    while n < size:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        h.update(chunk)
                        n += len(chunk)
                    digest.append(h.hexdigest())
            t = threading.Thread(target=serve)
            t.start()
            with netdev.netns_socket(bench.ns1):
                client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            with client:
                client.settimeout(30)
                client.connect(listener.getsockname())
                client.sendall(payload)
            t.join(60)
        assert digest == [hashlib.sha256(payload).hexdigest()]
        stats = bench.relay.control.stats()["c"]
        data, acks = stats[TO_SWITCH], stats[TO_HOST]
        assert data["dropped"] > 0 and data["reordered"] > 0 and data["delayed"] > 1000
        assert acks["delayed"] > 0
    finally:
        bench.relay.control.set("c", None)


def test_relay_speed(bench: Bench) -> None:
    """Frames per second the relay forwards when the sender outruns it (1514-byte frames, one way),
    pass-through and impaired: the frames it passed over the time from the first frame sent to the
    last one it passed. Printed (``-s``) for the module's docstring; the bound asserted is far below
    the figure so that a loaded machine does not fail it."""
    rates = {}
    for name, spec in (("pass-through", None), ("impaired", ImpairSpec(loss=0.01, reorder=0.01, delay=0.001))):
        bench.relay.control.set("c", spec, direction=TO_SWITCH)
        _drain(bench.rx)
        t0 = time.monotonic()
        _send(bench.tx, 60_000, size=1514)
        passed, last_change = -1, t0
        while True:  # until the relay has drained its socket: passed stops growing
            c = _counters(bench)
            now = time.monotonic()
            if c["passed"] != passed:
                passed, last_change = c["passed"], now
            elif now - last_change > 0.2:
                break
            time.sleep(0.01)
        rates[name] = passed / (last_change - t0)
        print(f"relay {name}: {rates[name]:,.0f} frames/s ({c['received']} in, {passed} passed, "
              f"{c['kernel_drops']} dropped by the kernel: the sender outran it)")
        _drain(bench.rx)
    bench.relay.control.set("c", None)
    assert rates["pass-through"] > 20_000 and rates["impaired"] > 10_000, rates


def test_relay_exits_with_its_parent() -> None:
    """--parent: a relay whose parent is gone exits (a killed test leaves none behind)."""
    try:
        netdev.require_netns()
    except netdev.NetdevUnavailable as exc:
        pytest.skip(str(exc))
    with netdev.Topology(prefix="p4imp") as topo, tempfile.TemporaryDirectory(prefix="imp") as tmp:
        pair = topo.add_veth()
        # A parent that dies at once: the relay is its child, then an orphan.
        argv = relay_argv([("c", pair.a, pair.b)], Path(tmp) / "ctl.sock")
        script = ("import os, subprocess, sys; argv = sys.argv[1:] + ['--parent', str(os.getpid())]; "
                  "p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); "
                  "print(p.pid, flush=True)")
        out = subprocess.run([sys.executable, "-c", script, *argv], capture_output=True, text=True, check=True,
                             timeout=30)
        pid = int(out.stdout.split()[0])
        deadline = time.monotonic() + 10
        while netdev.pid_alive(pid):
            assert time.monotonic() < deadline, f"relay {pid} outlived its parent"
            time.sleep(0.05)
