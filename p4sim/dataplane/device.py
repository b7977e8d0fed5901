"""The p4sim device: what the P4Runtime server drives — programs loaded from p4sim device
configs, a v1model switch running them, and its ports (the CPU port becomes packet-in)."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable

from p4.config.v1 import p4info_pb2

from p4sim.compiler import devconfig
from p4sim.compiler.elaborate import elaborate
from p4sim.compiler.errors import CompileError
from p4sim.compiler.model import ProgramModel
from p4sim.runtime.device import PipelineConfigError
from p4sim.runtime.state import SwitchState

from .program import LoadedProgram
from .v1switch import V1Switch

log = logging.getLogger(__name__)

Sender = Callable[[int, bytes], object]


def model_from_config(device_config: bytes) -> ProgramModel:
    return elaborate(devconfig.load(device_config))


class P4SimDevice:
    """Implements p4sim.runtime.device.Device on top of V1Switch.

    ``send(port, frame)`` puts frames on the wire (a PortSet's send, or a test's collector).
    """

    def __init__(self, send: Sender, cpu_port: int | None = None) -> None:
        self.send = send
        self.cpu_port = cpu_port
        self.switch = V1Switch(self._output, cpu_port)
        self._cpu_handler: Callable[[bytes], None] | None = None
        self._cache: tuple[str, ProgramModel] | None = None

    # -- Device protocol ------------------------------------------------------------------------

    def _model(self, device_config: bytes) -> ProgramModel:
        digest = hashlib.sha256(device_config).hexdigest()
        if self._cache is not None and self._cache[0] == digest:
            return self._cache[1]
        try:
            model = model_from_config(device_config)
        except CompileError as exc:
            raise PipelineConfigError(str(exc)) from None
        except Exception as exc:  # noqa: BLE001 - a damaged config, not a bug of ours to raise
            # The config comes from the client: any well-formed JSON decodes, with nodes where
            # the elaborator expects others (a number for a declaration, a list for a name), and
            # the elaborator trusts the syntax tree the compiler built. Whatever that breaks,
            # the config is one this device cannot realize (INVALID_ARGUMENT), not a server fault.
            raise PipelineConfigError(f"device config is damaged: {type(exc).__name__}: {exc}") from None
        self._cache = (digest, model)
        return model

    def verify_pipeline(self, p4info: p4info_pb2.P4Info, device_config: bytes) -> None:
        model = self._model(device_config)
        # p4c leaves never-applied tables and unused actions out of P4Info, so check the other
        # way round: everything the P4Info names must exist in the program.
        have = {("tables", t.name) for t in model.tables} | {("actions", a.name) for a in model.actions}
        for kind in ("tables", "actions"):
            for ent in getattr(p4info, kind):
                if (kind, ent.preamble.name) not in have:
                    raise PipelineConfigError(
                        f"the P4Info does not describe this program: no {kind[:-1]} {ent.preamble.name}")

    def commit_pipeline(self, p4info: p4info_pb2.P4Info, device_config: bytes, state: SwitchState) -> None:
        model = self._model(device_config)
        try:
            program = LoadedProgram(model, p4info, state)
        except (KeyError, ValueError) as exc:
            raise PipelineConfigError(f"cannot bind the program to the P4Info: {exc}") from None
        self.switch.load(program)
        log.info("pipeline committed")

    def inject_packet_out(self, frame: bytes) -> None:
        if self.cpu_port is None:
            log.warning("packet-out dropped: no --cpu-port configured")
            return
        self.switch.receive(self.cpu_port, frame)

    def set_cpu_packet_handler(self, handler: Callable[[bytes], None] | None) -> None:
        self._cpu_handler = handler

    # -- packets ----------------------------------------------------------------------------------

    def receive(self, port: int, frame: bytes) -> None:
        self.switch.receive(port, frame)

    def _output(self, port: int, frame: bytes) -> None:
        if self.cpu_port is not None and port == self.cpu_port:
            handler = self._cpu_handler
            if handler is not None:
                handler(frame)
            return
        self.send(port, frame)
