"""The switches the controller's integration tests run against, behind one small interface.

* :class:`InProcessSwitch` -- p4sim's ``SwitchProcess`` in this process with ``MemoryPort`` s: no
  privileges, no veths, fast; what ``make test`` uses.
* :class:`ExternalSwitch` -- a real switch process, ``p4sim`` (this venv) or BMv2's
  ``simple_switch_grpc`` (PATH), started with the PTF runner's flags on veth pairs; the tests hold
  the other end of each pair through a raw AF_PACKET socket, so frames cross real kernels.

Both give the P4Runtime address, device id and CPU port, the pipeline to push (built for that
target), and ports numbered as the switch numbers them, each with ``inject(frame)``,
``expect(timeout, match)`` and ``drain()``. ``start()``/``stop()`` restart the switch empty on the
same gRPC port; ``close()`` tears everything down.

Which one the tests get is the ``P4SPLICE_SWITCH`` environment variable: ``inprocess`` (default),
``p4sim`` or ``bmv2`` (see :func:`selected_kind`).
"""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from p4splice.lab import netdev

from p4sim.launch import LaunchError, free_port, stop, wait_listening
from ptf_tests import targets

ROOT = Path(__file__).resolve().parents[2]
PROGRAM = ROOT / "p4src" / "splice.p4"
BIN = Path(sys.executable).parent

SWITCH_ENV = "P4SPLICE_SWITCH"
KINDS = ("inprocess", "p4sim", "bmv2")
#: netdev naming prefix of these tests' veths (p4splice.lab.netdev: one prefix per suite)
PREFIX = "p4c"

Match = Callable[[bytes], bool]

# --- frames ---------------------------------------------------------------------------------------

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_IGNORE_OUTGOING = 23
PACKET_OUTGOING = 4
SO_RCVBUFFORCE = 33
#: Ethertypes a Linux interface may emit on its own (IPv6 ND/MLD, LLDP); never the switch's.
CHATTER = (0x86DD, 0x88CC)


def trim_padding(frame: bytes) -> bytes:
    """The frame cut at the end of its IPv4 packet. BMv2 pads runts to 60 bytes, p4sim does not:
    comparing up to the IP total length makes both look the same (scapy would otherwise read the
    pad as TCP payload)."""
    if len(frame) >= 34 and frame[12:14] == b"\x08\x00":
        end = 14 + int.from_bytes(frame[16:18], "big")
        if 34 <= end < len(frame):
            return frame[:end]
    return frame


class FramePort(Protocol):
    """One switch port as the test sees it: what it injects, what the switch sent out of it."""

    port_num: int

    def inject(self, frame: bytes) -> None: ...

    def expect(self, timeout: float = 1.0, match: Match | None = None) -> bytes:
        """The next frame out of the port for which ``match`` holds (others are skipped);
        TimeoutError when none within ``timeout`` seconds."""
        ...

    def drain(self) -> list[bytes]:
        """Every frame already out of the port, without waiting."""
        ...

    def close(self) -> None: ...


class MemoryFramePort:
    """A p4sim ``MemoryPort`` seen through :class:`FramePort`."""

    def __init__(self, port: Any) -> None:
        self.port = port
        self.port_num: int = port.port_num

    def inject(self, frame: bytes) -> None:
        self.port.inject(bytes(frame))

    def expect(self, timeout: float = 1.0, match: Match | None = None) -> bytes:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                frame = trim_padding(self.port.sent.get(timeout=max(0.0, left)))
            except queue.Empty:
                raise TimeoutError(f"no frame out of port {self.port_num} within {timeout}s") from None
            if match is None or match(frame):
                return frame

    def drain(self) -> list[bytes]:
        out = []
        with contextlib.suppress(queue.Empty):
            while True:
                out.append(trim_padding(self.port.sent.get_nowait()))
        return out

    def close(self) -> None:
        self.port.close()


class VethFramePort:
    """The test's end of a veth pair whose other end is a switch port, via AF_PACKET."""

    def __init__(self, port_num: int, ifname: str, rcvbuf: int = 8 << 20) -> None:
        self.port_num = port_num
        self.ifname = ifname
        # Protocol 0 until bound to this one interface: no frame of another interface slips in.
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        try:
            # A flood test sends hundreds of frames the switch copies out; keep them all.
            try:
                sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, rcvbuf)
            except OSError:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            # Our own sends would come back as PACKET_OUTGOING; the kernel can drop them for us
            # (and the pkttype check in _accept covers kernels without the option).
            with contextlib.suppress(OSError):
                sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
            sock.bind((ifname, ETH_P_ALL))
        except BaseException:
            sock.close()
            raise
        self.sock = sock

    def inject(self, frame: bytes) -> None:
        self.sock.send(bytes(frame))

    @staticmethod
    def _accept(data: bytes, addr: Any) -> bytes | None:
        if addr[2] == PACKET_OUTGOING or len(data) < 14 or int.from_bytes(data[12:14], "big") in CHATTER:
            return None
        return trim_padding(data)

    def expect(self, timeout: float = 1.0, match: Match | None = None) -> bytes:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no frame out of port {self.port_num} ({self.ifname}) within {timeout}s")
            self.sock.settimeout(left)
            try:
                data, addr = self.sock.recvfrom(65535)
            except TimeoutError:
                continue  # the deadline check above reports it
            frame = self._accept(data, addr)
            if frame is not None and (match is None or match(frame)):
                return frame

    def drain(self) -> list[bytes]:
        out = []
        self.sock.setblocking(False)
        try:
            while True:
                try:
                    data, addr = self.sock.recvfrom(65535)
                except BlockingIOError:
                    return out
                frame = self._accept(data, addr)
                if frame is not None:
                    out.append(frame)
        finally:
            self.sock.setblocking(True)

    def close(self) -> None:
        self.sock.close()


# --- pipelines ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Pipeline:
    """What the controller pushes: a P4Info message and the target's device config bytes."""

    kind: str
    p4info: Any
    device_config: bytes


def selected_kind(environ: dict[str, str] | None = None) -> str:
    """``P4SPLICE_SWITCH`` (default inprocess); ValueError naming the choices otherwise."""
    kind = (environ if environ is not None else os.environ).get(SWITCH_ENV, "").strip() or "inprocess"
    if kind not in KINDS:
        raise ValueError(f"{SWITCH_ENV}={kind!r}: choose one of {', '.join(KINDS)}")
    return kind


def _tools(kind: str) -> tuple[str, ...]:
    return {"inprocess": (), "p4sim": ("p4sim-compile", "p4sim"), "bmv2": ("p4c-bm2-ss", "simple_switch_grpc")}[kind]


def tool_path(name: str, kind: str) -> str | None:
    """p4sim's tools from this venv (then PATH), BMv2's from PATH, as the PTF runner finds them."""
    local = BIN / name
    if kind == "p4sim" and local.exists():
        return str(local)
    return shutil.which(name)


def missing_tools(kind: str) -> list[str]:
    return [t for t in _tools(kind) if tool_path(t, kind) is None]


def check_environment(kind: str) -> None:
    """Raise RuntimeError, one line naming what is missing, when ``kind`` cannot run here."""
    missing = missing_tools(kind)
    if missing:
        raise RuntimeError(f"{SWITCH_ENV}={kind} needs {' and '.join(missing)} on PATH (not found)")
    if kind != "inprocess":
        try:
            netdev.require_netns()
        except netdev.NetdevUnavailable as exc:
            raise RuntimeError(f"{SWITCH_ENV}={kind} needs veth pairs: {exc}") from None


def build_pipeline(kind: str, build_dir: Path, program: Path = PROGRAM, defines: Iterable[str] = ()) -> Pipeline:
    """Compile ``program`` for ``kind``: in this process for inprocess, else with the target's
    compiler as the PTF runner does (p4sim-compile, or p4c-bm2-ss for v1model). ``defines`` are
    NAME=VALUE, as -D for either compiler."""
    defines = list(defines)
    if kind == "inprocess":
        from p4sim.compiler.driver import compile_file

        compiled = compile_file(program, defines=defines)
        return Pipeline(kind, compiled.p4info, compiled.device_config)
    from p4splice.controller.p4rt.p4info import load_p4info

    build_dir.mkdir(parents=True, exist_ok=True)
    compiler = tool_path(_tools(kind)[0], kind)
    if compiler is None:
        raise RuntimeError(f"{_tools(kind)[0]} not found on PATH (needed for {SWITCH_ENV}={kind})")
    # the PTF runner's command lines (ptf_tests/targets.py: p4c writes its P4Info as .txt)
    b = targets.build_command(kind, compiler, program, build_dir, defines)
    proc = subprocess.run(b.argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(b.argv)} failed (exit {proc.returncode}):\n{proc.stderr}")
    targets.finish_build(b)
    return Pipeline(kind, load_p4info(b.p4info), b.config.read_bytes())


# --- switches -------------------------------------------------------------------------------------

class Switch(Protocol):
    kind: str
    device_id: int
    cpu_port: int
    pipeline: Pipeline
    ports: dict[int, FramePort]
    #: frames a port takes back to back without the switch dropping some (None: no limit to mind)
    max_burst: int | None

    @property
    def grpc_addr(self) -> str: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def close(self) -> None: ...


class InProcessSwitch:
    """p4sim's SwitchProcess in this process, one MemoryPort per port number."""

    kind = "inprocess"
    max_burst = None

    def __init__(self, pipeline: Pipeline, port_nums: Iterable[int], device_id: int = 1, cpu_port: int = 255) -> None:
        self.pipeline = pipeline
        self.port_nums = tuple(port_nums)
        self.device_id = device_id
        self.cpu_port = cpu_port
        self.ports: dict[int, FramePort] = {}
        self._grpc_port = 0
        self._proc: Any = None

    @property
    def grpc_addr(self) -> str:
        return f"127.0.0.1:{self._grpc_port}"

    def start(self) -> None:
        """Start empty (no pipeline, no entries); the gRPC port of the first start is kept."""
        from p4sim.dataplane.ports import MemoryPort
        from p4sim.switch import SwitchProcess

        proc = SwitchProcess(device_id=self.device_id, grpc_addr=self.grpc_addr, cpu_port=self.cpu_port)
        # New ports on every start: what was sent while the switch was down is lost, as on a wire.
        memory = [MemoryPort(n) for n in self.port_nums]
        for port in memory:
            proc.ports.add(port)
        self.ports = {port.port_num: MemoryFramePort(port) for port in memory}
        proc.start()
        self._proc = proc
        self._grpc_port = int(proc.grpc_addr.rsplit(":", 1)[1])

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.stop()  # closes its ports too
            self._proc = None

    def close(self) -> None:
        self.stop()


class ExternalSwitch:
    """``p4sim`` or ``simple_switch_grpc`` as its own process on veth pairs.

    Port N of the switch is ``-i N@<veth b end>``; the test's :class:`VethFramePort` is bound to
    the a end. The flags are the PTF runner's, so BMv2 and p4sim are started the same way.
    """

    def __init__(self, target: str, pipeline: Pipeline, port_nums: Iterable[int], log_dir: Path,
                 device_id: int = 1, cpu_port: int = 255, log_args: Sequence[str] = ("--log-console",)) -> None:
        if target not in ("p4sim", "bmv2"):
            raise ValueError(f"no external switch for {target!r}")
        self.kind = target
        # simple_switch's port queues hold 64 packets; p4sim's sockets buffer megabytes
        self.max_burst: int | None = 32 if target == "bmv2" else None
        self.pipeline = pipeline
        self.device_id = device_id
        self.cpu_port = cpu_port
        # --log-console (trace: every field of every packet) into log_path, unless told otherwise
        self.log_args = list(log_args)
        self.log_path = log_dir / f"switch-{target}.log"
        binary = "p4sim" if target == "p4sim" else "simple_switch_grpc"
        path = tool_path(binary, target)
        if path is None:
            raise RuntimeError(f"{binary} not found on PATH (needed for {SWITCH_ENV}={target})")
        self._binary = path
        self._grpc_port = free_port()
        # A BMv2 built with Thrift serves it on 9090 unless told: a BMv2 of someone else's (PTF, a
        # lab) must not make ours exit on a busy port. One built without Thrift has no such option
        # and exits on it, so the flag goes only where --help lists it (ptf_tests/targets.py).
        # p4sim accepts and ignores the flag.
        self._thrift = targets.thrift_args(target, path, free_port())
        self._proc: subprocess.Popen[bytes] | None = None
        self._topo = netdev.Topology(prefix=PREFIX)
        self.ports: dict[int, FramePort] = {}
        self._ifnames: dict[int, str] = {}
        try:
            for n in port_nums:
                # offloads off (real checksums, no super-frames) and IPv6 off (no ND/MLD chatter)
                pair = self._topo.add_veth()
                self._ifnames[n] = pair.b
                self.ports[n] = VethFramePort(n, pair.a)
        except BaseException:
            self._close_ports()
            raise

    @property
    def grpc_addr(self) -> str:
        return f"127.0.0.1:{self._grpc_port}"

    def command(self) -> list[str]:
        cmd = [self._binary, "--device-id", str(self.device_id)]
        for n, ifname in self._ifnames.items():
            cmd += ["-i", f"{n}@{ifname}"]
        return cmd + [*self._thrift, *self.log_args, "--no-p4", "--",
                      "--grpc-server-addr", self.grpc_addr, "--cpu-port", str(self.cpu_port)]

    def start(self) -> None:
        """Start the process empty on the same gRPC port; return once it accepts connections."""
        with open(self.log_path, "ab") as log:
            log.write(f"--- {' '.join(self.command())}\n".encode())
            log.flush()
            self._proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL)
        try:
            wait_listening(self._grpc_port, self._proc, timeout=30.0, what=self.kind)
        except LaunchError as exc:
            stop(self._proc)
            self._proc = None
            raise RuntimeError(f"{exc}; its log ends:\n{self.log_tail()}") from None

    def stop(self) -> None:
        if self._proc is not None:
            stop(self._proc)
            self._proc = None

    def kill(self) -> None:
        """SIGKILL, as a crash: no graceful end of the gRPC streams, nothing flushed."""
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            self._proc = None

    def died(self) -> int | None:
        """The exit status if the process ended without being stopped."""
        return self._proc.poll() if self._proc is not None else None

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def _close_ports(self) -> None:
        for p in self.ports.values():
            p.close()
        self.ports = {}
        self._topo.close()

    def close(self) -> None:
        """Stop the process and remove the veths; RuntimeError if the switch had died on its own
        (a crash mid-test must not pass unnoticed)."""
        status = self.died()
        try:
            self.stop()
        finally:
            self._close_ports()
        if status is not None:
            raise RuntimeError(f"the {self.kind} switch exited with status {status} during the test; "
                               f"its log ends:\n{self.log_tail()}")


def open_switch(pipeline: Pipeline, port_nums: Iterable[int], workdir: Path, device_id: int = 1,
                cpu_port: int = 255) -> Switch:
    """The switch of ``pipeline.kind``, started."""
    sw: Switch
    if pipeline.kind == "inprocess":
        sw = InProcessSwitch(pipeline, port_nums, device_id, cpu_port)
    else:
        sw = ExternalSwitch(pipeline.kind, pipeline, port_nums, workdir, device_id, cpu_port)
    try:
        sw.start()
    except BaseException:
        sw.close()
        raise
    return sw
