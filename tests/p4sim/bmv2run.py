"""Run a program on real BMv2 (p4c-bm2-ss + simple_switch_grpc) and say what came out: the other
half of the parity tests (test_bmv2_parity.py), which put p4sim's output beside it.

One switch process per program, on veth pairs (tests/controller/switches.py's ExternalSwitch, the
PTF runner's command line); the pipeline and any table entries go in over P4Runtime. Frames go in
one at a time. After a frame, the runner waits (with a deadline) until as many frames came out as
p4sim sent for it; after the last frame it listens for a short quiet period more, so a frame BMv2
sends and p4sim does not is still seen.
"""

from __future__ import annotations

import selectors
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

from ptf_tests import targets
from ptf_tests.p4runtime_client import P4RuntimeClient
from tests.controller.switches import ExternalSwitch, VethFramePort, build_pipeline

#: how long a frame may take to come out of BMv2 (a loaded machine is slow, a missing frame rare)
DEADLINE = 10.0
#: how long to listen, after the last frame, for frames p4sim did not send
QUIET = 0.3
#: BMv2 pads what it sends to the Ethernet minimum; p4sim sends the bytes as they are
MIN_FRAME = 60


def unavailable() -> str | None:
    """Why BMv2 cannot run here (missing tools, no veths), or None."""
    missing = [t for t in ("p4c-bm2-ss", "simple_switch_grpc") if shutil.which(t) is None]
    if missing:
        return f"BMv2 parity needs {' and '.join(missing)} on PATH (see docs/bmv2.md)"
    from p4splice.lab import netdev

    try:
        netdev.require_netns()
    except netdev.NetdevUnavailable as exc:
        return f"BMv2 parity needs veth pairs: {exc}"
    return None


def pad(frame: bytes) -> bytes:
    return frame + bytes(MIN_FRAME - len(frame)) if len(frame) < MIN_FRAME else frame


Outputs = list[tuple[int, bytes]]


class Bmv2Program:
    """``program`` compiled by p4c-bm2-ss and loaded into a simple_switch_grpc of its own."""

    def __init__(self, program: Path, workdir: Path, ports: Sequence[int] = (0, 1, 2, 3)) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        pipeline = build_pipeline("bmv2", workdir, program)
        files = targets.build_command("bmv2", "p4c-bm2-ss", program, workdir)
        self.switch = ExternalSwitch("bmv2", pipeline, ports, workdir,
                                     log_args=("--log-file", str(workdir / "bmv2"), "--log-level", "warn"))
        self.client: P4RuntimeClient | None = None
        try:
            self.switch.start()
            self.client = P4RuntimeClient(self.switch.grpc_addr)
            self.client.connect()
            self.client.set_pipeline(files.p4info, files.config)
        except BaseException:
            self.close()
            raise
        self._sel = selectors.DefaultSelector()
        for port in self.switch.ports.values():
            assert isinstance(port, VethFramePort)
            port.sock.setblocking(False)
            self._sel.register(port.sock, selectors.EVENT_READ, port)

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None
        self.switch.close()

    def __enter__(self) -> Bmv2Program:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _collect(self, until: float, want: int | None, got: Outputs) -> None:
        """Frames out of any port into ``got`` until ``want`` of them (None: until ``until``)."""
        while want is None or len(got) < want:
            left = until - time.monotonic()
            if left <= 0:
                return
            for key, _ in self._sel.select(left):
                port: VethFramePort = key.data
                while True:
                    try:
                        data, addr = port.sock.recvfrom(65535)
                    except BlockingIOError:
                        break
                    frame = port._accept(data, addr)
                    if frame is not None:
                        got.append((port.port_num, frame))

    def run(self, frames: Sequence[tuple[int, bytes]], counts: Sequence[int]) -> list[Outputs]:
        """What came out for each of ``frames`` (in port, bytes), ``counts[i]`` being how many
        frames to wait for after frame i; anything later than that counts for the last frame."""
        outs: list[Outputs] = []
        for (port, frame), want in zip(frames, counts, strict=True):
            self.switch.ports[port].inject(frame)
            got: Outputs = []
            self._collect(time.monotonic() + DEADLINE, want, got)
            outs.append(got)
        if outs:
            self._collect(time.monotonic() + QUIET, None, outs[-1])
        return outs
