"""A real program behind the real P4Runtime server: packet-in/out, digests and idle timeouts
produced by the data plane and seen by a gRPC client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from p4.v1 import p4runtime_pb2

from p4sim.compiler.driver import CompiledProgram, compile_file
from p4sim.dataplane.ports import MemoryPort
from p4sim.switch import SwitchProcess
from tests.p4sim.test_p4runtime_server import Client

PROGRAM = Path(__file__).parent / "programs" / "grpc_cpu_learn.p4"
DEVICE = 1
CPU = 255
U = p4runtime_pb2.Update


def _eth(dst: bytes, src: bytes, payload: bytes = b"hello, world") -> bytes:
    return dst + src + b"\x88\xb5" + payload


@pytest.fixture(scope="module")
def compiled() -> CompiledProgram:
    return compile_file(PROGRAM)


@pytest.fixture
def switch(compiled: CompiledProgram) -> Iterator[tuple[SwitchProcess, dict[int, MemoryPort], Client]]:
    sw = SwitchProcess(device_id=DEVICE, grpc_addr="127.0.0.1:0", cpu_port=CPU)
    ports = {n: MemoryPort(n) for n in (1, 2)}
    for p in ports.values():
        sw.ports.add(p)
    sw.start()
    client = Client(sw.grpc_addr, (0, 1), device_id=DEVICE)
    assert client.status() == 0
    client.set_pipeline(p4info=compiled.p4info, device_config=compiled.device_config)
    try:
        yield sw, ports, client
    finally:
        client.close()
        sw.stop()


def _ids(compiled: CompiledProgram, kind: str) -> dict[str, int]:
    return {e.preamble.alias: e.preamble.id for e in getattr(compiled.p4info, kind)}


def test_packet_in_carries_ingress_port_and_frame(switch, compiled) -> None:
    sw, ports, client = switch
    frame = _eth(b"\x02" * 6, b"\x04" * 6)
    ports[1].inject(frame)
    pin = client.recv("packet")
    md = {m.metadata_id: m.value for m in pin.metadata}
    assert md == {1: b"\x01", 2: b"\x00"}  # ingress_port 1 and the pad field, canonical bytes
    assert pin.payload == frame


def test_packet_out_leaves_by_the_named_port_without_its_header(switch, compiled) -> None:
    sw, ports, client = switch
    frame = _eth(b"\x06" * 6, b"\x08" * 6, b"from the controller")
    req = p4runtime_pb2.StreamMessageRequest()
    req.packet.payload = frame
    req.packet.metadata.add(metadata_id=1, value=b"\x02")
    req.packet.metadata.add(metadata_id=2, value=b"\x00")  # the pad: every field is required
    client.send(req)
    assert ports[2].expect(timeout=5) == frame
    ports[1].expect_nothing(within=0.05)


def test_digest_reports_learned_source(switch, compiled) -> None:
    sw, ports, client = switch
    digest_id = next(d.preamble.id for d in compiled.p4info.digests)
    u = U(type=U.INSERT)
    u.entity.digest_entry.digest_id = digest_id
    u.entity.digest_entry.config.max_list_size = 1
    u.entity.digest_entry.config.max_timeout_ns = 0
    u.entity.digest_entry.config.ack_timeout_ns = 10**9
    client.write(u)
    ports[1].inject(_eth(b"\x02" * 6, bytes.fromhex("0a0b0c0d0e0f")))
    dl = client.recv("digest")
    assert dl.digest_id == digest_id
    assert len(dl.data) == 1
    members = [m.bitstring for m in dl.data[0].struct.members]
    assert members == [bytes.fromhex("0a0b0c0d0e0f"), b"\x01"]


def test_idle_entry_is_reported(switch, compiled) -> None:
    sw, ports, client = switch
    tables, actions = _ids(compiled, "tables"), _ids(compiled, "actions")
    u = U(type=U.INSERT)
    te = u.entity.table_entry
    te.table_id = tables["smac"]
    te.match.add(field_id=1).exact.value = bytes.fromhex("0a0b0c0d0e0f")
    te.action.action.action_id = actions["known"]
    te.idle_timeout_ns = 100_000_000
    client.write(u)
    note = client.recv("idle_timeout_notification", timeout=5)
    assert [e.match[0].exact.value for e in note.table_entry] == [bytes.fromhex("0a0b0c0d0e0f")]
    assert note.table_entry[0].table_id == tables["smac"]


def test_known_destination_is_forwarded(switch, compiled) -> None:
    sw, ports, client = switch
    tables, actions = _ids(compiled, "tables"), _ids(compiled, "actions")
    u = U(type=U.INSERT)
    te = u.entity.table_entry
    te.table_id = tables["dmac"]
    te.match.add(field_id=1).exact.value = b"\x02" * 6
    te.action.action.action_id = actions["forward"]
    te.action.action.params.add(param_id=1, value=b"\x02")
    client.write(u)
    frame = _eth(b"\x02" * 6, b"\x04" * 6)
    ports[1].inject(frame)
    assert ports[2].expect(timeout=5) == frame


def test_a_device_config_that_is_not_p4sim_json_is_invalid_argument(switch, compiled) -> None:
    """Not JSON, or JSON nested deeper than the parser goes: INVALID_ARGUMENT naming it (the
    P4Runtime spec's code for a config the target cannot take), and the program in place stays."""
    import grpc

    _, ports, client = switch
    for config, words in [(b"{not json", "not p4sim JSON"), (b"[" * 50_000 + b"]" * 50_000, "nested too deeply")]:
        with pytest.raises(grpc.RpcError) as err:
            client.set_pipeline(p4info=compiled.p4info, device_config=config)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and words in err.value.details()
    # still the program that was there: an unknown destination goes to the CPU port as before
    frame = _eth(b"\x02" * 6, b"\x04" * 6)
    ports[1].inject(frame)
    assert client.recv("packet").payload == frame
