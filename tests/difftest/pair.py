"""p4sim and BMv2 side by side: one program, the same table state, the same frames, and what each
switch sent out of every port and to the controller, frame by frame.

Each switch is its own process on veth pairs (tests/controller/switches.py's ExternalSwitch, the
integration tests' launcher) and is driven over P4Runtime (ptf_tests/p4runtime_client.py). A frame
under test goes into the same port of both; what came out of it is known without waiting out a
quiet period, by *markers*: right after the frame, on the same ingress port, one marker frame per
egress port (and one for the controller), each of which the program sends to that port alone. A
switch takes frames from one port in order and keeps each egress port's queue in order (BMv2: one
ingress thread, a FIFO per egress port; p4sim: one pipeline), so everything the frame caused on a
port has left before that port's marker. The program's marker entries are the case's business
(:class:`MarkerPlan`); they must not touch what is compared.
"""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from p4.v1 import p4runtime_pb2

from ptf_tests import targets
from ptf_tests.p4runtime_client import P4RuntimeClient, P4RuntimeError
from tests.controller.switches import ExternalSwitch, Pipeline, VethFramePort, build_pipeline, missing_tools

KINDS = ("p4sim", "bmv2")
CPU = "cpu"
MAGIC = b"p4splice-difftest-marker"


def marker_payload(n: int) -> bytes:
    """What a marker frame carries, whatever its headers: the magic and its number."""
    return MAGIC + struct.pack("!I", n)


def marker_number(frame: bytes) -> int | None:
    """The number of the marker ``frame`` carries, or None for a frame under test."""
    at = frame.find(MAGIC)
    if at < 0 or len(frame) < at + len(MAGIC) + 4:
        return None
    return int(struct.unpack_from("!I", frame, at + len(MAGIC))[0])


def unavailable() -> str | None:
    """Why the pair cannot run here (a missing tool, no veths), or None."""
    from p4splice.lab import netdev

    missing = [t for k in KINDS for t in missing_tools(k)]
    if missing:
        return f"needs {' and '.join(missing)} on PATH (BMv2: ../shared/p4tools, docs/bmv2.md)"
    try:
        netdev.require_netns()
    except netdev.NetdevUnavailable as exc:
        return f"needs veth pairs: {exc}"
    return None


# --- what is written ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Entry:
    """A table entry by P4Info names (ptf_tests.p4runtime_client.P4RuntimeClient.table_entry)."""

    table: str
    match: Mapping[str, Any] | None
    action: str
    params: Mapping[str, Any] = field(default_factory=dict)
    priority: int = 0

    def build(self, client: P4RuntimeClient) -> p4runtime_pb2.TableEntry:
        return client.table_entry(self.table, dict(self.match) if self.match is not None else None,
                                  self.action, dict(self.params), priority=self.priority)

    def describe(self) -> str:
        params = ", ".join(f"{k}={_show(v)}" for k, v in self.params.items())
        match = ", ".join(f"{k}={_show(v)}" for k, v in (self.match or {}).items()) or "default"
        return f"{self.table} [{match}] -> {self.action}({params})"


def _show(v: Any) -> str:
    return hex(v) if isinstance(v, int) and v > 9 else str(v)


@dataclass(frozen=True)
class MarkerPlan:
    """How the program under test is made to mark the end of a frame's effects: entries that
    send each marker frame to one egress port (or to the controller), and the marker frames.
    ``frame(port, n)`` is marker ``n`` for ``port`` (``CPU`` for the controller), carrying
    ``marker_payload(n)``, by which ``marker_number`` recognises it coming out."""

    entries: Sequence[Entry]
    ports: Sequence[int | str]
    frame: Callable[[int | str, int], bytes]
    # after a frame sent as a packet-out, the markers are packet-outs too, with this metadata
    # toward a port (None: the program cannot send packet-outs to a port)
    out_metadata: Callable[[int], Mapping[str, int]] | None = None


# --- what comes out ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Outcome:
    """What one switch did with one frame: frames by egress port, in order, and packet-ins as
    (payload, metadata by name)."""

    ports: Mapping[int, tuple[bytes, ...]]
    packet_ins: tuple[tuple[bytes, tuple[tuple[str, int], ...]], ...]

    def describe(self) -> str:
        if not any(self.ports.values()) and not self.packet_ins:
            return "nothing (dropped)"
        lines = [f"port {p}: {f.hex()}" for p, frames in sorted(self.ports.items()) for f in frames]
        lines += [f"packet-in {dict(meta)}: {payload.hex()}" for payload, meta in self.packet_ins]
        return "\n".join(lines)


@dataclass
class Difference:
    """One frame (or one counter read) on which the two switches disagree."""

    what: str
    p4sim: str
    bmv2: str

    def __str__(self) -> str:
        return f"{self.what}\n  p4sim: {_indent(self.p4sim)}\n  bmv2:  {_indent(self.bmv2)}"


def _indent(text: str) -> str:
    return text.replace("\n", "\n         ")


# --- one switch ---------------------------------------------------------------------------------------

class Driven:
    """One switch process with its veth ports and a primary P4Runtime session."""

    def __init__(self, kind: str, pipeline: Pipeline, files: tuple[Path, Path], ports: Sequence[int],
                 log_dir: Path, cpu_port: int) -> None:
        self.kind = kind
        self.switch = ExternalSwitch(kind, pipeline, ports, log_dir, cpu_port=cpu_port,
                                     log_args=("--log-file", str(log_dir / f"difftest-{kind}"), "--log-level", "warn"))
        self.client: P4RuntimeClient | None = None
        try:
            self.switch.start()
            self.client = P4RuntimeClient(self.switch.grpc_addr)
            self.client.connect()
            self.client.set_pipeline(*files)
        except BaseException:
            self.close()
            raise
        self._marker_seq = 0

    @property
    def p4rt(self) -> P4RuntimeClient:
        assert self.client is not None
        return self.client

    def port(self, n: int) -> VethFramePort:
        port = self.switch.ports[n]
        assert isinstance(port, VethFramePort)
        return port

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None
        self.switch.close()

    def run(self, in_port: int, frame: bytes | None, markers: MarkerPlan, packet_out: Mapping[str, int] | None,
            timeout: float) -> Outcome:
        """Send ``frame`` in on ``in_port`` (or, with ``packet_out``, from the controller), then
        one marker per egress port; collect until every marker is back."""
        self._marker_seq += 1
        seq = self._marker_seq
        ports_marked = list(markers.ports)
        if packet_out is not None:
            if frame is None or markers.out_metadata is None:
                raise ValueError("a packet-out needs a frame and a marker plan with out_metadata")
            self.p4rt.packet_out(frame, **packet_out)
            # Packet-outs and port frames are two ways in: the markers follow the packet-out on
            # the same stream, so that they enter behind it. None can go to the controller.
            ports_marked = [p for p in ports_marked if p != CPU]
            for p in ports_marked:
                self.p4rt.packet_out(markers.frame(p, seq), **markers.out_metadata(int(p)))
        else:
            if frame is not None:
                self.port(in_port).inject(frame)
            for p in markers.ports:
                self.port(in_port).inject(markers.frame(p, seq))
        ports: dict[int, list[bytes]] = {}
        for p in ports_marked:
            if p == CPU:
                continue
            got = ports.setdefault(int(p), [])
            while True:
                out = self.port(int(p)).expect(timeout)
                n = marker_number(out)
                if n == seq:
                    break
                if n is None:
                    got.append(out)
                # an older marker (a frame of an earlier run that came out late): not this frame's
        ins: list[tuple[bytes, tuple[tuple[str, int], ...]]] = []
        if CPU in ports_marked:
            while True:
                pin = self.p4rt.get_packet_in(timeout)
                if pin is None:
                    raise TimeoutError(f"{self.kind}: the controller marker did not come back within {timeout}s")
                n = marker_number(pin.payload)
                if n == seq:
                    break
                if n is None:
                    ins.append((pin.payload, tuple(sorted(pin.metadata.items()))))
        # Frames out of ports no marker covers are still caught, if late: they are drained here.
        for n, port in self.switch.ports.items():
            if n not in ports:
                extra = port.drain()
                if extra:
                    ports[n] = extra
        return Outcome({p: tuple(f) for p, f in ports.items() if f}, tuple(ins))


# --- both -----------------------------------------------------------------------------------------------

class SwitchPair:
    """p4sim and BMv2 with the same program; writes go to both, frames into both, outcomes
    compared."""

    def __init__(self, program: Path, ports: Sequence[int], build_dir: Path, log_dir: Path,
                 defines: Sequence[str] = (), cpu_port: int = 255) -> None:
        self.program = program
        self.ports = list(ports)
        self.sides: dict[str, Driven] = {}
        self._pool = ThreadPoolExecutor(max_workers=len(KINDS), thread_name_prefix="difftest")
        log_dir.mkdir(parents=True, exist_ok=True)
        try:
            for kind in KINDS:
                pipeline, files = compile_for(kind, program, build_dir / kind, defines)
                self.sides[kind] = Driven(kind, pipeline, files, self.ports, log_dir, cpu_port)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        errors = []
        for side in self.sides.values():
            try:
                side.close()
            except RuntimeError as exc:  # a switch died during the run
                errors.append(str(exc))
        self.sides = {}
        self._pool.shutdown()
        if errors:
            raise RuntimeError("; ".join(errors))

    def __enter__(self) -> SwitchPair:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _both(self, fn: Callable[[Driven], Any]) -> dict[str, Any]:
        futures = {k: self._pool.submit(fn, s) for k, s in self.sides.items()}
        return {k: f.result() for k, f in futures.items()}

    # --- table state -----------------------------------------------------------------------------
    def insert(self, entries: Sequence[Entry]) -> list[Difference]:
        """Insert ``entries`` in both; a write one switch accepts and the other refuses is a
        difference (the entry is then left out of both)."""
        diffs: list[Difference] = []
        for e in entries:
            outcome = self._both(lambda s, e=e: _try(lambda: s.p4rt.insert(e.build(s.p4rt))))
            if outcome["p4sim"] != outcome["bmv2"]:
                diffs.append(Difference(f"insert {e.describe()}", outcome["p4sim"] or "accepted",
                                        outcome["bmv2"] or "accepted"))
                for kind, err in outcome.items():
                    if err is None:
                        with contextlib.suppress(P4RuntimeError, Exception):
                            self.sides[kind].p4rt.delete(e.build(self.sides[kind].p4rt))
        return diffs

    def delete(self, entries: Sequence[Entry]) -> None:
        """Delete ``entries`` from both (those a switch does not hold are skipped)."""
        for e in entries:
            self._both(lambda s, e=e: _try(lambda: s.p4rt.delete(e.build(s.p4rt))))

    # --- frames ----------------------------------------------------------------------------------
    def run(self, in_port: int, frame: bytes, markers: MarkerPlan, what: str, timeout: float = 5.0,
            packet_out: Mapping[str, int] | None = None) -> tuple[dict[str, Outcome], Difference | None]:
        out = self._both(lambda s: s.run(in_port, frame, markers, packet_out, timeout))
        if out["p4sim"] != out["bmv2"]:
            return out, Difference(f"{what}: frame in on port {in_port}: {frame.hex()}",
                                   out["p4sim"].describe(), out["bmv2"].describe())
        return out, None

    # --- counters --------------------------------------------------------------------------------
    def direct_counters(self, entries: Sequence[Entry]) -> list[Difference]:
        diffs = []
        for e in entries:
            got = self._both(lambda s, e=e: _try(lambda: s.p4rt.read_direct_counter(e.build(s.p4rt)), value=True))
            if got["p4sim"] != got["bmv2"]:
                diffs.append(Difference(f"direct counter of {e.describe()}", str(got["p4sim"]), str(got["bmv2"])))
        return diffs

    def counter(self, name: str, index: int) -> Difference | None:
        got = self._both(lambda s: s.p4rt.read_counter(name, index))
        if got["p4sim"] != got["bmv2"]:
            return Difference(f"counter {name}[{index}] (packets, bytes)", str(got["p4sim"]), str(got["bmv2"]))
        return None

    def clone_session(self, session: int, ports: list[int]) -> None:
        self._both(lambda s: s.p4rt.insert_clone_session(session, ports))


def _try(fn: Callable[[], Any], value: bool = False) -> Any:
    """``fn()``'s error as a short string (None when it worked), or with ``value`` its result."""
    try:
        result = fn()
    except Exception as exc:  # a switch's refusal is data here, not a failure of the harness
        code = getattr(exc, "code", None)
        status = code().name if callable(code) else type(exc).__name__
        return f"refused: {status}"
    return result if value else None


def compile_for(kind: str, program: Path, build_dir: Path, defines: Sequence[str] = ()) -> tuple[Pipeline, tuple[Path, Path]]:
    """``program`` compiled by ``kind``'s compiler (p4sim-compile or p4c-bm2-ss), as the PTF
    runner compiles it, and where its P4Info and device config are."""
    pipeline = build_pipeline(kind, build_dir, program, defines)
    files = targets.build_command(kind, targets.COMPILER[kind], program, build_dir)
    return pipeline, (files.p4info, files.config)
