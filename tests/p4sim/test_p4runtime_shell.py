"""p4runtime-shell, unchanged, as the client of p4sim's P4Runtime server.

p4runtime-shell pins protobuf < 3.21, so it runs in its own venv (``make p4sh-venv``) behind
p4sim/shellbridge.py; what it reads back comes here as text protos and is parsed with ours.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from google.protobuf import text_format
from p4.v1 import p4runtime_pb2

from p4sim.runtime.device import NullDevice
from p4sim.runtime.server import P4RuntimeServer
from p4sim.shellbridge import ShellBridge, ShellBridgeError, shell_python

P4INFO = Path(__file__).parent / "p4info" / "runtime_test.p4info.txtpb"


def _entities(reply: dict, kind: type) -> list:
    return [text_format.Parse(text, kind()) for text in reply["entities"]]


@pytest.fixture
def shell(tmp_path: Path) -> Iterator[tuple[ShellBridge, P4RuntimeServer, NullDevice]]:
    python = shell_python()
    if python is None:
        pytest.skip("p4runtime-shell's venv is missing: `make p4sh-venv` makes .venv-p4sh (or set P4SH_PYTHON)")
    device = NullDevice()
    server = P4RuntimeServer(device, address="127.0.0.1:0", device_id=1).start()
    bin_path = tmp_path / "device_config.bin"
    bin_path.write_bytes(b"opaque device config")
    try:
        with ShellBridge(python) as bridge:
            bridge.call("setup", device_id=1, grpc_addr=f"127.0.0.1:{server.port}", election_id=[0, 1],
                        p4info=str(P4INFO), config=str(bin_path))
            yield bridge, server, device
            bridge.call("teardown")
    finally:
        server.stop(grace=0.2)


def test_shell_table_entries(shell) -> None:
    bridge, server, _ = shell
    exact = {"table": "MyIngress.exact_tbl", "action": "MyIngress.set_port",
             "match": {"hdr.eth.dst": "aa:bb:cc:dd:ee:ff", "meta.in_port": "3"}}
    bridge.call("table", verb="insert", **exact, params={"port": "5"})
    bridge.call("table", verb="insert", table="MyIngress.lpm_tbl", action="MyIngress.set_nhop",
                match={"hdr.ipv4.dst": "10.1.0.0/16"}, params={"nhop": "10.0.0.1", "port": "2"})
    bridge.call("table", verb="insert", table="MyIngress.acl_tbl", action="MyIngress.drop",
                match={"hdr.ipv4.src": "10.0.0.0&&&255.0.0.0"}, priority=5)

    got = _entities(bridge.call("read_table", table="MyIngress.exact_tbl"), p4runtime_pb2.TableEntry)
    assert len(got) == 1
    assert got[0].action.action.params[0].value == b"\x05"
    got_lpm = _entities(bridge.call("read_table", table="MyIngress.lpm_tbl"), p4runtime_pb2.TableEntry)
    assert got_lpm[0].match[0].lpm.prefix_len == 16
    state = server.state
    assert state.lookup(0x02000001, (0xAABBCCDDEEFF, 3), 0, 0).params == (5,)
    assert state.lookup(0x02000002, (0x0A010203,), 0, 0).params == (0x0A000001, 2)
    assert state.lookup(0x02000003, (0x0A000009, 80, 6), 0, 0).action_id == 16777218

    bridge.call("table", verb="modify", **exact, params={"port": "6"})
    got = _entities(bridge.call("read_table", table="MyIngress.exact_tbl"), p4runtime_pb2.TableEntry)
    assert got[0].action.action.params[0].value == b"\x06"
    with pytest.raises(ShellBridgeError, match="ALREADY_EXISTS"):
        bridge.call("table", verb="insert", **exact, params={"port": "6"})
    bridge.call("table", verb="delete", **exact, params={"port": "6"})
    assert bridge.call("read_table", table="MyIngress.exact_tbl")["entities"] == []

    bridge.call("table", verb="modify", table="MyIngress.lpm_tbl", action="MyIngress.drop", is_default=True)
    assert state.lookup(0x02000002, (0x0B000000,), 0, 0).action_id == 16777218


def test_shell_counters_pre_and_packet_out(shell) -> None:
    bridge, server, device = shell
    sent: list[bytes] = []
    device.on_packet_out = sent.append
    server.state.count(302000001, 1, 64)
    entries = _entities(bridge.call("read_counter", counter="MyIngress.pkt_counter"), p4runtime_pb2.CounterEntry)
    assert len(entries) == 8
    assert entries[1].data.packet_count == 1 and entries[1].data.byte_count == 64

    bridge.call("multicast", group=4, replicas=[[1, 1], [2, 1]])
    assert server.state.mcast_group(4) == [(1, 1), (2, 1)]
    bridge.call("clone", session=9, replicas=[[255, 0]])
    assert server.state.clone_session(9) == ([(255, 0)], 0, 0)

    bridge.call("digest", name="learn_t", max_timeout_ns=0, max_list_size=1, ack_timeout_ns=0)
    assert len(bridge.call("read_digest", name="learn_t")["entities"]) == 1

    bridge.call("packet_out", payload="0102", metadata={"egress_port": "3", "flags": "0"})
    assert _wait(lambda: bool(sent))
    assert sent[0] == bytes([3 >> 1, (3 & 1) << 7]) + b"\x01\x02"


def test_shell_errors_come_back_as_text(shell) -> None:
    bridge, _, _ = shell
    with pytest.raises(ShellBridgeError, match="exact_tbl|no_such"):
        bridge.call("read_table", table="MyIngress.no_such_tbl")
    with pytest.raises(ShellBridgeError, match="unknown op"):
        bridge.call("frobnicate")


def _wait(pred: Callable[[], bool], timeout: float = 5.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.005)
    return False
