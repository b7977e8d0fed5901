"""Shared harness for the P4Runtime client tests: a real p4sim switch in-process, MemoryPorts,
asyncio helpers (pytest-asyncio is not a dependency: each test runs its coroutine itself)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from p4sim.compiler.driver import CompiledProgram, compile_file
from p4sim.dataplane.ports import MemoryPort
from p4sim.switch import SwitchProcess
from tests.asyncsupport import poll_until, run_bounded

PROGRAM = Path(__file__).parent / "programs" / "p4rt_client.p4"
DEVICE = 1
CPU = 255
PORTS = (1, 2, 3)

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T], timeout: float = 20.0) -> T:
    """One test coroutine on a fresh loop, with a hard deadline so that a hang fails."""
    return run_bounded(coro, timeout)


async def poll(check: Callable[[], Any], timeout: float = 5.0, what: str = "condition",
               interval: float = 0.01) -> Any:
    """Until ``check()`` (plain or async) is truthy; fails after ``timeout`` seconds."""
    return await poll_until(check, timeout, what, interval)


async def expect_frame(port: MemoryPort, timeout: float = 5.0) -> bytes:
    """The next frame the switch sends out of ``port`` (MemoryPort.expect blocks: use a thread)."""
    return await asyncio.to_thread(port.expect, timeout)


def eth(dst: int, src: int, ether_type: int = 0x88B5, payload: bytes = b"p4rt client test") -> bytes:
    return dst.to_bytes(6, "big") + src.to_bytes(6, "big") + ether_type.to_bytes(2, "big") + payload


@dataclass
class Switch:
    proc: SwitchProcess
    ports: dict[int, MemoryPort]
    compiled: CompiledProgram

    @property
    def addr(self) -> str:
        return self.proc.grpc_addr


def start_switch(port: int = 0) -> tuple[SwitchProcess, dict[int, MemoryPort]]:
    sw = SwitchProcess(device_id=DEVICE, grpc_addr=f"127.0.0.1:{port}", cpu_port=CPU)
    ports = {n: MemoryPort(n) for n in PORTS}
    for p in ports.values():
        sw.ports.add(p)
    sw.start()
    return sw, ports


# Plain functions, made fixtures by each test module (``compiled = pytest.fixture(...)(...)``) so
# that no module imports a fixture by name.
_compiled: dict[Path, CompiledProgram] = {}


def compile_program() -> CompiledProgram:
    """The test program, compiled once per test run."""
    if PROGRAM not in _compiled:
        _compiled[PROGRAM] = compile_file(PROGRAM)
    return _compiled[PROGRAM]


def running_switch(compiled: CompiledProgram) -> Iterator[Switch]:
    sw, ports = start_switch()
    try:
        yield Switch(sw, ports, compiled)
    finally:
        sw.stop()
