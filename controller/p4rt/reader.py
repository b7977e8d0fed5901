"""Read-only P4Runtime access: the channel every client here opens, and the RPCs that need no
arbitration (Capabilities, GetForwardingPipelineConfig, Read).

Any client may call those three, primary or not, so a :class:`ReadSession` never opens a
StreamChannel and can never take the primary role from a running controller. ``SwitchSession``
reads through one on its own channel; splicectl's read-only commands use one alone.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass

import grpc
from p4.v1 import p4runtime_pb2 as pb
from p4.v1 import p4runtime_pb2_grpc

from .entities import Entity, entity_from_proto, entity_to_proto
from .errors import P4RuntimeRpcError, ReadError
from .p4info import P4Index

MAX_METADATA = 64 << 20  # error details of a big batch travel in the trailers
MAX_MESSAGE = 256 << 20  # a full pipeline config (p4sim's is ~1.5 MB) and big reads


@dataclass(frozen=True)
class Tls:
    """TLS material (PEM bytes; all None: plaintext) and the name to check the server's
    certificate against when it differs from the address."""

    root_certificates: bytes | None = None
    private_key: bytes | None = None
    certificate_chain: bytes | None = None
    server_name: str | None = None

    @property
    def enabled(self) -> bool:
        return any(x is not None for x in (self.root_certificates, self.private_key, self.certificate_chain))


def open_channel(address: str, tls: Tls | None = None,
                 options: Sequence[tuple[str, int | str]] = ()) -> grpc.aio.Channel:
    """An asyncio gRPC channel to a P4Runtime server with this package's limits (``options``
    add to them, e.g. reconnect backoff)."""
    opts: list[tuple[str, int | str]] = [
        ("grpc.max_metadata_size", MAX_METADATA),
        ("grpc.absolute_max_metadata_size", MAX_METADATA),
        ("grpc.max_receive_message_length", MAX_MESSAGE),
        ("grpc.max_send_message_length", MAX_MESSAGE),
        *options,
    ]
    if tls is None or not tls.enabled:
        return grpc.aio.insecure_channel(address, options=opts)
    if tls.server_name:
        opts.append(("grpc.ssl_target_name_override", tls.server_name))
    creds = grpc.ssl_channel_credentials(root_certificates=tls.root_certificates, private_key=tls.private_key,
                                         certificate_chain=tls.certificate_chain)
    return grpc.aio.secure_channel(address, creds, options=opts)


class ReadSession:
    """The arbitration-free RPCs on ``stub`` for one device (and role). Failures raise
    P4RuntimeRpcError, ReadError for a Read (with a detail per filter when the switch gives them)."""

    def __init__(self, stub: p4runtime_pb2_grpc.P4RuntimeStub, device_id: int, role: str = "",
                 rpc_timeout: float | None = 30.0) -> None:
        self.stub = stub
        self.device_id = device_id
        self.role = role
        self.rpc_timeout = rpc_timeout

    async def capabilities(self) -> str:
        """The P4Runtime API version the switch implements."""
        try:
            resp = await self.stub.Capabilities(pb.CapabilitiesRequest(), timeout=self.rpc_timeout)
        except grpc.aio.AioRpcError as e:
            raise P4RuntimeRpcError.from_grpc("Capabilities", e) from None
        return resp.p4runtime_api_version

    async def get_pipeline(self, response_type: int = pb.GetForwardingPipelineConfigRequest.ALL
                           ) -> pb.ForwardingPipelineConfig:
        req = pb.GetForwardingPipelineConfigRequest(device_id=self.device_id, response_type=response_type)
        try:
            resp = await self.stub.GetForwardingPipelineConfig(req, timeout=self.rpc_timeout)
        except grpc.aio.AioRpcError as e:
            raise P4RuntimeRpcError.from_grpc("GetForwardingPipelineConfig", e) from None
        return resp.config

    async def read(self, index: P4Index, filters: Entity | Iterable[Entity]) -> AsyncIterator[Entity]:
        """Entities matching the filters, as they stream in."""
        items = [filters] if hasattr(filters, "entity_kind") else list(filters)  # type: ignore[arg-type]
        req = pb.ReadRequest(device_id=self.device_id, role=self.role,
                             entities=[entity_to_proto(index, f) for f in items])
        call = self.stub.Read(req, timeout=self.rpc_timeout)
        try:
            async for resp in call:
                for ent in resp.entities:
                    yield entity_from_proto(index, ent)
        except grpc.aio.AioRpcError as e:
            raise ReadError.build("Read", e, items) from None
        finally:
            call.cancel()
