"""Exceptions of the P4Runtime client, and decoding of the spec's per-update error details.

A failed Write (or Read) carries, in the ``grpc-status-details-bin`` trailer, a google.rpc.Status
whose details are one Any-packed p4.v1.Error per update, in request order, OK ones included
(spec "Error Reporting Messages"). :class:`WriteError` lays them out next to the updates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from google.rpc import code_pb2, status_pb2
from p4.v1 import p4runtime_pb2

__all__ = [
    "ClientError",
    "NotConnectedError",
    "NotPrimaryError",
    "P4RuntimeRpcError",
    "PipelineError",
    "ReadError",
    "UpdateError",
    "WriteError",
    "status_details",
]

STATUS_DETAILS_KEY = "grpc-status-details-bin"


class ClientError(Exception):
    """Base of everything this package raises on purpose."""


class NotConnectedError(ClientError):
    """No live stream to the switch (not started, reconnecting, or closed)."""


class NotPrimaryError(ClientError):
    """The operation needs the primary role and this session is a backup."""


class PipelineError(ClientError):
    """No usable forwarding pipeline (adopt_pipeline on an empty switch, no P4Info yet...)."""


class P4RuntimeRpcError(ClientError):
    """A P4Runtime RPC failed as a whole: its gRPC code and message."""

    def __init__(self, rpc: str, code: grpc.StatusCode, message: str) -> None:
        super().__init__(f"{rpc} failed: {code.name}: {message}")
        self.rpc = rpc
        self.code = code
        self.message = message

    @classmethod
    def from_grpc(cls, rpc: str, exc: grpc.RpcError) -> P4RuntimeRpcError:
        return cls(rpc, exc.code(), exc.details() or "")


@dataclass(frozen=True)
class UpdateError:
    """What the switch said about one item of a batch."""

    position: int  # index of the update in the batch
    code: int  # google.rpc.Code (canonical_code)
    message: str
    update: Any = None  # what we sent: an Update, or a p4.v1.Update for raw writes
    space: str = ""
    space_code: int = 0

    @property
    def code_name(self) -> str:
        return code_pb2.Code.Name(self.code) if self.code in code_pb2.Code.values() else str(self.code)

    @property
    def ok(self) -> bool:
        return self.code == code_pb2.OK

    def __str__(self) -> str:
        return f"#{self.position} {self.update}: {self.code_name}: {self.message}"


def status_details(exc: grpc.RpcError) -> list[p4runtime_pb2.Error]:
    """The p4.v1.Error details of a failed RPC ([] when the server sent none)."""
    trailers = exc.trailing_metadata() if hasattr(exc, "trailing_metadata") else None
    for key, value in trailers or ():
        if key == STATUS_DETAILS_KEY:
            status = status_pb2.Status.FromString(value)
            errors = []
            for any_msg in status.details:
                err = p4runtime_pb2.Error()
                if any_msg.Unpack(err):
                    errors.append(err)
            return errors
    return []


class _BatchError(P4RuntimeRpcError):
    _what = "update"

    def __init__(self, rpc: str, code: grpc.StatusCode, message: str, details: list[UpdateError]) -> None:
        super().__init__(rpc, code, message)
        self.details = details

    @property
    def failures(self) -> list[UpdateError]:
        """The items that failed, in batch order."""
        return [d for d in self.details if not d.ok]

    def __str__(self) -> str:
        fails = self.failures
        if not fails:
            return super().__str__()
        lines = [f"{self.rpc} failed: {len(fails)} of {len(self.details)} {self._what}s"]
        lines += [f"  {f}" for f in fails[:10]]
        if len(fails) > 10:
            lines.append(f"  ... and {len(fails) - 10} more")
        return "\n".join(lines)

    @classmethod
    def build(cls, rpc: str, exc: grpc.RpcError, items: Sequence[Any]) -> _BatchError:
        details = [UpdateError(i, e.canonical_code, e.message, items[i] if i < len(items) else None,
                               e.space, e.code)
                   for i, e in enumerate(status_details(exc))]
        return cls(rpc, exc.code(), exc.details() or "", details)


class WriteError(_BatchError):
    """A Write that failed; ``failures`` lists each bad update with the switch's reason."""


class ReadError(_BatchError):
    """A Read that failed, with one detail per entity filter when the switch gave them."""

    _what = "entity filter"
