"""A whole p4sim switch in one object: ports, the v1model device and its P4Runtime server."""

from __future__ import annotations

import logging
from pathlib import Path

from p4.v1 import p4runtime_pb2

from p4sim.dataplane.device import P4SimDevice, model_from_config
from p4sim.dataplane.ports import PcapDir, PortSet
from p4sim.runtime.server import P4RuntimeServer

log = logging.getLogger(__name__)


class SwitchProcess:
    """What ``p4sim`` runs; also usable in-process by tests and the demo."""

    def __init__(self, device_id: int = 0, grpc_addr: str = "127.0.0.1:9559", cpu_port: int | None = None,
                 drop_port: int = 511, pcap_dir: str | None = None, cert: str | None = None,
                 key: str | None = None) -> None:
        self.ports = PortSet(self._on_frame, self._on_port_down, pcap=PcapDir(pcap_dir) if pcap_dir else None)
        self.device = P4SimDevice(self.ports.send, cpu_port)
        self.device.switch.drop_port = drop_port
        self.server = P4RuntimeServer(self.device, grpc_addr, device_id, cpu_port, cert_file=cert, key_file=key)
        self._grpc_addr = grpc_addr

    @property
    def grpc_addr(self) -> str:
        host = self._grpc_addr.rsplit(":", 1)[0]
        return f"{host}:{self.server.port}" if self.server.port else self._grpc_addr

    def add_interface(self, port: int, ifname: str) -> None:
        self.ports.add_interface(port, ifname)

    def load_config_file(self, path: str) -> None:
        """Start with a program, as simple_switch_grpc does with a JSON file: p4sim derives its
        P4Info itself, so P4Runtime clients can use it without pushing a pipeline."""
        from p4sim.compiler.p4info import build_p4info

        data = Path(path).read_bytes()
        model = model_from_config(data)
        config = p4runtime_pb2.ForwardingPipelineConfig()
        config.p4info.CopyFrom(build_p4info(model))
        config.p4_device_config = data
        self.server.install_pipeline(config)

    def start(self) -> None:
        self.server.start()
        self.ports.start()

    def stop(self) -> None:
        self.ports.close()
        self.server.stop()

    def _on_frame(self, port: int, frame: bytes) -> None:
        self.device.receive(port, frame)

    def _on_port_down(self, port: int, reason: str) -> None:
        log.warning("port %d is down: %s", port, reason)
