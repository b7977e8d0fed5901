"""The seam between the P4Runtime server and a data plane: the `Device` protocol and `NullDevice`.

The server never interprets packets. On SetForwardingPipelineConfig it asks the device to verify
the opaque device config and, on commit, to start running it against a fresh SwitchState (the
device's loader sets initial default actions and const entries on that state). Packet-outs go to
`inject_packet_out`, as frames arriving on the CPU port; frames the pipeline sends to the CPU
port come back through the handler the server registers with `set_cpu_packet_handler`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from p4.config.v1 import p4info_pb2

if TYPE_CHECKING:
    from p4sim.runtime.state import SwitchState

log = logging.getLogger(__name__)

CpuPacketHandler = Callable[[bytes], None]


class PipelineConfigError(Exception):
    """The device (or the P4Info) cannot realize this pipeline; reported as INVALID_ARGUMENT."""


@runtime_checkable
class Device(Protocol):
    """What the P4Runtime server needs from a data plane."""

    def verify_pipeline(self, p4info: p4info_pb2.P4Info, device_config: bytes) -> None:
        """Raise PipelineConfigError if this pipeline cannot run here. Must not change anything."""

    def commit_pipeline(self, p4info: p4info_pb2.P4Info, device_config: bytes, state: SwitchState) -> None:
        """Start forwarding with this pipeline, reading and updating `state` from now on.

        Called with a new SwitchState for VERIFY_AND_COMMIT / COMMIT, or a state carrying the
        old entries for RECONCILE_AND_COMMIT. The loader should call `state.set_initial_default`
        and `state.add_const_entries` for what the program declares.
        """

    def inject_packet_out(self, frame: bytes) -> None:
        """Run `frame` (packet_out header + payload) through the pipeline as if from the CPU port."""

    def set_cpu_packet_handler(self, handler: CpuPacketHandler | None) -> None:
        """Register where frames egressing on the CPU port go (the server's packet-in path)."""


class NullDevice:
    """A device with no data plane: accepts any config; packet-outs go to an optional hook.

    `on_packet_out` lets tests (or a loopback) observe or reflect injected frames; `send_to_cpu`
    plays a frame as if the pipeline had sent it to the CPU port.
    """

    def __init__(self, on_packet_out: Callable[[bytes], None] | None = None) -> None:
        self.on_packet_out = on_packet_out
        self.state: SwitchState | None = None
        self.committed: list[tuple[p4info_pb2.P4Info, bytes]] = []
        self._cpu_handler: CpuPacketHandler | None = None

    def verify_pipeline(self, p4info: p4info_pb2.P4Info, device_config: bytes) -> None:
        return None

    def commit_pipeline(self, p4info: p4info_pb2.P4Info, device_config: bytes, state: SwitchState) -> None:
        self.state = state
        self.committed.append((p4info, device_config))

    def inject_packet_out(self, frame: bytes) -> None:
        log.debug("NullDevice: packet-out of %d bytes", len(frame))
        if self.on_packet_out is not None:
            self.on_packet_out(frame)

    def set_cpu_packet_handler(self, handler: CpuPacketHandler | None) -> None:
        self._cpu_handler = handler

    def send_to_cpu(self, frame: bytes) -> None:
        if self._cpu_handler is not None:
            self._cpu_handler(frame)
