"""splice.p4's forwarding rate over veths, on p4sim or on BMv2: what the switch itself carries.

``python -m p4splice.bench.forwarding --target p4sim|bmv2`` (part of ``make bench``, and
of ``make bench TARGET=bmv2``): the switch in a process of its own, ports 1-3 on veth pairs
(``bench.controller.ExternalSwitch``, the lab's command line), splice.p4 pushed over P4Runtime
with a route 10.0.2.0/24 -> port 2 and one ``flows`` translate entry (seq -0x100, ack
+0x7fffffff, TSval +0x20, TSecr -5, window shift 7 -> 8). For each kind of frame, a sender
process blasts it into port 1 from a raw socket for ``--seconds`` and a receiver process counts
what leaves port 2:

* routed: a 60-byte UDP datagram that only the ``routes`` table handles;
* translated: a full-sized TCP data segment with timestamps that hits the ``flows`` entry (seq,
  ack, window and both timestamps rewritten, both checksums updated).

Reported: frames/s offered and forwarded (by the receiver, and by the kernel's rx counter as a
cross-check), and the switch's CPU over the run in cores (user + system time / wall time). The
sender offers far more than either switch takes, so the forwarded rate is the switch's saturation
rate on this machine, with the sender and the receiver on the same cores.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import socket
import subprocess
import sys
import time
from pathlib import Path

from p4splice.controller.config import DEVICE_CONFIG_FILES, P4INFO_FILE

from .controller import C_PORT, CPU, DEVICE, P_PORT, S_PORT, BenchError, ExternalSwitch, _table
from .p4sim import RECEIVER, SENDER, rx_packets

__all__ = ["bench_forwarding", "main"]

SW_MAC = "02:00:00:00:00:fe"
C_MAC, S_MAC = "02:00:00:00:01:01", "02:00:00:00:02:01"

def frames() -> dict[str, bytes]:
    """The two frames, as host C puts them on the wire."""
    from scapy.all import IP, TCP, UDP, Ether, raw

    client = Ether(src=C_MAC, dst=SW_MAC)
    routed = raw(client / IP(src="10.0.1.1", dst="10.0.2.1", ttl=64) / UDP(sport=5000, dport=53) / (b"q" * 18))
    translated = raw(client / IP(src="10.0.1.1", dst="10.0.2.1", ttl=64, id=7)
                     / TCP(sport=43210, dport=80, seq=1000, ack=2000, flags="PA", window=1024,
                           options=[("NOP", None), ("NOP", None), ("Timestamp", (12345, 67890))])
                     / (b"d" * 1448))
    return {"routed": routed, "translated": translated}


async def _program(addr: str, build_dir: Path, target: str) -> None:
    from p4splice.controller import dataplane as dp
    from p4splice.controller.p4rt.session import SwitchSession

    p4info, config = build_dir / P4INFO_FILE, build_dir / DEVICE_CONFIG_FILES[target]
    for f in (p4info, config):
        if not f.exists():
            raise BenchError(f"{f} is missing: make build TARGET={target}")
    async with SwitchSession(addr, device_id=DEVICE, election_id=10) as s:
        await s.wait_primary(30)
        await s.set_pipeline(p4info, config.read_bytes())
        key = dp.FlowMatch.of(C_PORT, "10.0.1.1", 43210, "10.0.2.1", 80)
        await s.insert([
            dp.route("10.0.2.0/24", S_PORT, SW_MAC, S_MAC),
            dp.flow_translate(key, S_PORT, SW_MAC, S_MAC, seq_delta=-0x100, ack_delta=0x7FFFFFFF,
                              tsval_delta=0x20, tsecr_delta=-5, win_shift_from=7, win_shift_to=8),
        ])


def _blast(sw: ExternalSwitch, frame: bytes, seconds: float) -> dict[str, float]:
    tx_if, rx_if = sw.ifaces[C_PORT], sw.ifaces[S_PORT]
    rx_before = rx_packets(rx_if)
    receiver = subprocess.Popen([sys.executable, "-c", RECEIVER, rx_if, str(seconds + 1.0)],
                                stdout=subprocess.PIPE, text=True)
    try:
        assert receiver.stdout is not None
        if receiver.stdout.readline().strip() != "ready":
            raise BenchError("the receiver did not start")
        cpu0, t0 = sw.cpu_seconds(), time.monotonic()
        sender = subprocess.run([sys.executable, "-c", SENDER, tx_if, str(seconds), frame.hex()],
                                capture_output=True, text=True, check=True, timeout=seconds + 30)
        cpu1, t1 = sw.cpu_seconds(), time.monotonic()
        received = int(receiver.communicate(timeout=seconds + 30)[0].strip())
    finally:
        if receiver.poll() is None:
            receiver.kill()
            receiver.wait()
    rx = rx_packets(rx_if) - rx_before
    return {"offered (frames/s)": int(sender.stdout.strip()) / seconds,
            "forwarded, receiver (frames/s)": received / seconds,
            "forwarded, kernel rx counter (frames/s)": rx / seconds,
            "switch CPU (cores)": (cpu1 - cpu0) / (t1 - t0)}


def bench_forwarding(target: str, build_dir: Path, log_dir: Path, seconds: float) -> list[dict[str, float]]:
    """One row per kind of frame (see the module's docstring)."""
    rows = []
    with ExternalSwitch(target, log_dir) as sw:
        asyncio.run(_program(sw.addr, build_dir, target))
        for kind, frame in frames().items():
            rows.append({"kind": kind, **_blast(sw, frame, seconds)})  # type: ignore[dict-item]
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m p4splice.bench.forwarding",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--target", choices=["p4sim", "bmv2"], default="p4sim")
    ap.add_argument("--seconds", type=float, default=5.0, help="how long each kind of frame is sent")
    ap.add_argument("--build-dir", type=Path, default=Path("build"), help="where make build put splice.p4's files")
    ap.add_argument("--log-dir", type=Path, default=Path("logs"))
    args = ap.parse_args(argv)
    if args.seconds <= 0:
        ap.error("--seconds must be positive")
    print("## splice.p4 forwarding over veths (p4splice.bench.forwarding)\n")
    print(f"command: python -m p4splice.bench.forwarding {' '.join(argv if argv is not None else sys.argv[1:])}"
          .rstrip())
    print(f"host: {socket.gethostname()}, {os.cpu_count()} CPUs, {platform.system()}, load {os.getloadavg()[0]:.2f}, "
          f"date {time.strftime('%Y-%m-%d %H:%M')}")
    print(f"switch: {args.target} ({P_PORT - C_PORT + 1} ports on veths, CPU port {CPU})")
    try:
        rows = bench_forwarding(args.target, args.build_dir, args.log_dir, args.seconds)
    except BenchError as e:
        print(f"forwarding: {e}", file=sys.stderr)
        return 2
    _table(f"Forwarded by {args.target}", rows)  # type: ignore[arg-type]
    return 0


if __name__ == "__main__":
    sys.exit(main())
