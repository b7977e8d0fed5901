"""p4runtime-shell, unchanged, as the client of p4sim's P4Runtime server."""

from __future__ import annotations

from pathlib import Path

import pytest

p4sh = pytest.importorskip("p4runtime_sh.shell")

from p4runtime_sh.p4runtime import P4RuntimeWriteException  # noqa: E402

from p4sim.runtime.device import NullDevice  # noqa: E402
from p4sim.runtime.server import P4RuntimeServer  # noqa: E402

P4INFO = Path(__file__).parent / "p4info" / "runtime_test.p4info.txtpb"


@pytest.fixture
def shell(tmp_path: Path):
    device = NullDevice()
    server = P4RuntimeServer(device, address="127.0.0.1:0", device_id=1).start()
    bin_path = tmp_path / "device_config.bin"
    bin_path.write_bytes(b"opaque device config")
    p4sh.setup(device_id=1, grpc_addr=f"127.0.0.1:{server.port}", election_id=(0, 1),
               config=p4sh.FwdPipeConfig(str(P4INFO), str(bin_path)), verbose=False)
    try:
        yield server, device
    finally:
        p4sh.teardown()
        server.stop(grace=0.2)


def test_shell_table_entries(shell) -> None:
    server, _ = shell
    te = p4sh.TableEntry("MyIngress.exact_tbl")(action="MyIngress.set_port")
    te.match["hdr.eth.dst"] = "aa:bb:cc:dd:ee:ff"
    te.match["meta.in_port"] = "3"
    te.action["port"] = "5"
    te.insert()
    lpm = p4sh.TableEntry("MyIngress.lpm_tbl")(action="MyIngress.set_nhop")
    lpm.match["hdr.ipv4.dst"] = "10.1.0.0/16"
    lpm.action["nhop"] = "10.0.0.1"
    lpm.action["port"] = "2"
    lpm.insert()
    acl = p4sh.TableEntry("MyIngress.acl_tbl")(action="MyIngress.drop")
    acl.match["hdr.ipv4.src"] = "10.0.0.0&&&255.0.0.0"
    acl.priority = 5
    acl.insert()

    got = list(p4sh.TableEntry("MyIngress.exact_tbl").read())
    assert len(got) == 1
    assert got[0].action["port"].value == b"\x05"
    got_lpm = list(p4sh.TableEntry("MyIngress.lpm_tbl").read())
    assert got_lpm[0].match["hdr.ipv4.dst"].lpm.prefix_len == 16
    state = server.state
    assert state.lookup(0x02000001, (0xAABBCCDDEEFF, 3), 0, 0).params == (5,)
    assert state.lookup(0x02000002, (0x0A010203,), 0, 0).params == (0x0A000001, 2)
    assert state.lookup(0x02000003, (0x0A000009, 80, 6), 0, 0).action_id == 16777218

    te.action["port"] = "6"
    te.modify()
    assert list(p4sh.TableEntry("MyIngress.exact_tbl").read())[0].action["port"].value == b"\x06"
    with pytest.raises(P4RuntimeWriteException) as err:
        te.insert()
    assert "ALREADY_EXISTS" in str(err.value)
    te.delete()
    assert list(p4sh.TableEntry("MyIngress.exact_tbl").read()) == []

    default = p4sh.TableEntry("MyIngress.lpm_tbl")(action="MyIngress.drop", is_default=True)
    default.modify()
    assert state.lookup(0x02000002, (0x0B000000,), 0, 0).action_id == 16777218


def test_shell_counters_pre_and_packet_out(shell) -> None:
    server, device = shell
    sent: list[bytes] = []
    device.on_packet_out = sent.append
    server.state.count(302000001, 1, 64)
    entries = list(p4sh.CounterEntry("MyIngress.pkt_counter").read())
    assert len(entries) == 8
    assert entries[1].data.packet_count == 1 and entries[1].data.byte_count == 64

    p4sh.MulticastGroupEntry(4).add(1, 1).add(2, 1).insert()
    assert server.state.mcast_group(4) == [(1, 1), (2, 1)]
    p4sh.CloneSessionEntry(9).add(255, 0).insert()
    assert server.state.clone_session(9) == ([(255, 0)], 0, 0)

    de = p4sh.DigestEntry("learn_t")
    de.max_timeout_ns = 0
    de.max_list_size = 1
    de.ack_timeout_ns = 0
    de.insert()
    assert len(list(p4sh.DigestEntry("learn_t").read())) == 1

    p4sh.PacketOut(b"\x01\x02", egress_port="3", flags="0").send()
    deadline_ok = _wait(lambda: sent)
    assert deadline_ok and sent[0] == bytes([3 >> 1, (3 & 1) << 7]) + b"\x01\x02"


def _wait(pred, timeout: float = 5.0):
    import time

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.005)
    return False
