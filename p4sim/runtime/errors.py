"""Error type for P4Runtime semantics: one exception carrying a canonical google.rpc code.

Everything below the gRPC layer raises `P4RTError`; the server turns it into an RPC status or
into one `p4.v1.Error` of a batch, so the code chosen where the fault is found is the code the
client sees.
"""

from __future__ import annotations

import grpc
from google.rpc import code_pb2

# google.rpc.Code number -> grpc.StatusCode, for RPC-wide errors.
_GRPC_BY_NUMBER = {sc.value[0]: sc for sc in grpc.StatusCode}


class P4RTError(Exception):
    """A P4Runtime failure with its canonical code (a `google.rpc.Code` number)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def grpc_code(self) -> grpc.StatusCode:
        return _GRPC_BY_NUMBER.get(self.code, grpc.StatusCode.UNKNOWN)

    def __repr__(self) -> str:
        return f"P4RTError({code_pb2.Code.Name(self.code)}, {self.message!r})"


def invalid(message: str) -> P4RTError:
    return P4RTError(code_pb2.INVALID_ARGUMENT, message)


def not_found(message: str) -> P4RTError:
    return P4RTError(code_pb2.NOT_FOUND, message)


def already_exists(message: str) -> P4RTError:
    return P4RTError(code_pb2.ALREADY_EXISTS, message)


def out_of_range(message: str) -> P4RTError:
    return P4RTError(code_pb2.OUT_OF_RANGE, message)


def permission_denied(message: str) -> P4RTError:
    return P4RTError(code_pb2.PERMISSION_DENIED, message)


def unimplemented(message: str) -> P4RTError:
    return P4RTError(code_pb2.UNIMPLEMENTED, message)


def resource_exhausted(message: str) -> P4RTError:
    return P4RTError(code_pb2.RESOURCE_EXHAUSTED, message)


def failed_precondition(message: str) -> P4RTError:
    return P4RTError(code_pb2.FAILED_PRECONDITION, message)
