"""Requests that are not what their RPC takes: INTERNAL for each, as a gRPC server answers a
request it cannot deserialize (BMv2's does; for a stream message, the stream ended with it), and
nothing kept. grpcio keeps every request it fails to
deserialize itself (about 20 KB each), so p4sim takes them as bytes and decodes them."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from p4.v1 import p4runtime_pb2

from p4sim.launch import free_port, stop, wait_listening

BIN = Path(sys.executable).parent
GARBAGE = b"\xff" * 64  # not a protobuf message of any kind: field 31, wire type 7


@pytest.fixture
def switch() -> Iterator[tuple[str, int]]:
    port = free_port()
    proc = subprocess.Popen([str(BIN / "p4sim"), "--no-p4", "--", "--grpc-server-addr", f"127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_listening(port, proc, timeout=30, what="p4sim")
        yield f"127.0.0.1:{port}", proc.pid
    finally:
        stop(proc)


def _raw(channel: grpc.Channel, method: str, streaming: bool = False):  # noqa: ANN202
    path = f"/p4.v1.P4Runtime/{method}"
    make = channel.unary_stream if streaming else channel.unary_unary
    return make(path, request_serializer=None, response_deserializer=None)


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_each_rpc_answers_internal(switch: tuple[str, int]) -> None:
    addr, _ = switch
    with grpc.insecure_channel(addr) as channel:
        for method in ("Capabilities", "GetForwardingPipelineConfig", "SetForwardingPipelineConfig", "Write"):
            with pytest.raises(grpc.RpcError) as err:
                _raw(channel, method)(GARBAGE, timeout=5)
            assert err.value.code() == grpc.StatusCode.INTERNAL, method
        with pytest.raises(grpc.RpcError) as err:
            list(_raw(channel, "Read", streaming=True)(GARBAGE, timeout=5))
        assert err.value.code() == grpc.StatusCode.INTERNAL
        stream = channel.stream_stream("/p4.v1.P4Runtime/StreamChannel", request_serializer=None,
                                       response_deserializer=None)
        with pytest.raises(grpc.RpcError) as err:
            list(stream(iter([GARBAGE]), timeout=5))
        assert err.value.code() == grpc.StatusCode.INTERNAL
        assert "StreamMessageRequest" in err.value.details()
        # and the server still answers a good request
        caps = p4runtime_pb2.CapabilitiesResponse.FromString(
            _raw(channel, "Capabilities")(p4runtime_pb2.CapabilitiesRequest().SerializeToString(), timeout=5))
        assert caps.p4runtime_api_version


def test_undecodable_requests_are_not_kept(switch: tuple[str, int]) -> None:
    """4,000 of them: grpcio's own deserializer failure kept ~20 KB each (+70 MB); now the
    process grows by no more than noise."""
    addr, pid = switch
    with grpc.insecure_channel(addr) as channel:
        caps = _raw(channel, "Capabilities")
        for _ in range(500):  # warm up: threads, channels, caches
            with pytest.raises(grpc.RpcError):
                caps(GARBAGE, timeout=5)
        before = _rss_kib(pid)
        for _ in range(4000):
            with pytest.raises(grpc.RpcError):
                caps(GARBAGE, timeout=5)
        grown_mib = (_rss_kib(pid) - before) / 1024
    assert grown_mib < 20, f"p4sim grew by {grown_mib:.1f} MiB over 4,000 undecodable requests"
