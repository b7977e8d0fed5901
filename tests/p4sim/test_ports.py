"""Tests of p4sim.dataplane.ports: raw-socket ports on real veth/TUN devices, MemoryPort, pcap."""

from __future__ import annotations

import fcntl
import os
import queue
import struct
import subprocess

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Dot1Q, Ether
from scapy.utils import rdpcap

from p4sim.dataplane.ports import (
    MemoryPort,
    PcapDir,
    PcapWriter,
    PortGone,
    PortSet,
    RawSocketPort,
    read_pcap,
)
from tests.p4sim.netns_fixtures import (  # noqa: F401 - fixtures are used by name
    netns_ok_fixture,
    raw_socket_in,
    recv_matching,
    topology_fixture,
    wait_for,
)


class Collector:
    """on_frame / on_port_down sink with blocking reads."""

    def __init__(self) -> None:
        self.frames: queue.Queue[tuple[int, bytes]] = queue.Queue()
        self.down: list[tuple[int, str]] = []

    def on_frame(self, port: int, frame: bytes) -> None:
        self.frames.put((port, frame))

    def on_port_down(self, port: int, reason: str) -> None:
        self.down.append((port, reason))

    def get(self, timeout: float = 2.0) -> tuple[int, bytes]:
        try:
            return self.frames.get(timeout=timeout)
        except queue.Empty:
            pytest.fail("no frame received by the PortSet")

    def get_matching(self, marker: bytes, timeout: float = 2.0) -> tuple[int, bytes]:
        while True:
            port, frame = self.get(timeout)
            if marker in frame:
                return port, frame


def udp_frame(marker: bytes, dst: str = "02:00:00:00:00:02", src: str = "02:00:00:00:00:01") -> bytes:
    return bytes(Ether(dst=dst, src=src) / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1, dport=2)
                 / marker)


# --- MemoryPort ---------------------------------------------------------------------------------

def test_memory_port_inject_and_expect() -> None:
    col = Collector()
    with PortSet(col.on_frame, col.on_port_down) as ps:
        p1 = ps.add(MemoryPort(1))
        p2 = ps.add(MemoryPort(2))
        p1.inject(b"hello")
        assert col.get() == (1, b"hello")
        assert ps.send(2, b"world")
        assert p2.expect(1.0) == b"world"
        p2.expect_nothing(0.01)
        with pytest.raises(TimeoutError):
            p1.expect(0.01)
        # Frames are delivered in order, also in a batch bigger than the drain limit.
        for i in range(200):
            p2.inject(bytes([i]))
        got = [col.get()[1] for _ in range(200)]
        assert got == [bytes([i]) for i in range(200)]
        assert ps.stats[2].rx_frames == 200
        assert ps.stats[2].tx_frames == 1


def test_forwarding_callback_may_send() -> None:
    ps: PortSet

    def forward(port: int, frame: bytes) -> None:
        ps.send(3 - port, frame)

    with PortSet(forward) as ps:
        a, b = ps.add(MemoryPort(1)), ps.add(MemoryPort(2))
        a.inject(b"x" * 60)
        assert b.expect() == b"x" * 60
        b.inject(b"y")
        assert a.expect() == b"y"


def test_send_to_missing_port_is_dropped_and_counted() -> None:
    with PortSet(lambda p, f: None) as ps:
        assert ps.send(7, b"abc") is False
        assert ps.send(7, b"abc") is False
        assert ps.dropped_no_port == 2


def test_memory_port_vanish_reports_port_down_others_continue() -> None:
    col = Collector()
    with PortSet(col.on_frame, col.on_port_down) as ps:
        p1, p2 = ps.add(MemoryPort(1)), ps.add(MemoryPort(2))
        p1.vanish("unplugged")
        wait_for(lambda: col.down, what="port-down report")
        assert col.down == [(1, "[Errno 19] unplugged")]
        assert 1 not in ps and 2 in ps
        p2.inject(b"still here")
        assert col.get() == (2, b"still here")
        assert ps.send(1, b"late") is False


def test_callback_exception_is_not_fatal(caplog: pytest.LogCaptureFixture) -> None:
    seen = []

    def on_frame(port: int, frame: bytes) -> None:
        seen.append(frame)
        if frame == b"bad":
            raise RuntimeError("boom")

    with PortSet(on_frame) as ps:
        p = ps.add(MemoryPort(1))
        p.inject(b"bad")
        p.inject(b"good")
        wait_for(lambda: b"good" in seen, what="second frame")
    assert "on_frame failed" in caplog.text


def test_duplicate_port_number_refused() -> None:
    with PortSet(lambda p, f: None) as ps:
        ps.add(MemoryPort(1))
        with pytest.raises(ValueError):
            ps.add(MemoryPort(1))
        ps.remove(1)
        with pytest.raises(KeyError):
            ps.remove(1)


# --- pcap -----------------------------------------------------------------------------------------

def test_pcap_dir_names_and_contents(tmp_path) -> None:
    col = Collector()
    pcap = PcapDir(tmp_path / "pcaps")
    with PortSet(col.on_frame, pcap=pcap) as ps:
        p = ps.add(MemoryPort(1, name="veth1"))
        ps.add(MemoryPort(2, name="veth3"))
        frame_in = udp_frame(b"in")
        frame_out = udp_frame(b"out")
        p.inject(frame_in)
        col.get()
        ps.send(1, frame_out)
        # Files are flushed per record: readable while the switch runs.
        _, recs = read_pcap(tmp_path / "pcaps" / "veth1_in.pcap")
        assert [r[1] for r in recs] == [frame_in]
        assert [bytes(pk) for pk in rdpcap(str(tmp_path / "pcaps" / "veth1_out.pcap"))] == [frame_out]
    # BMv2 creates both files per port at start-up, even when nothing passes.
    assert sorted(os.listdir(tmp_path / "pcaps")) == [
        "veth1_in.pcap", "veth1_out.pcap", "veth3_in.pcap", "veth3_out.pcap"]


@pytest.mark.parametrize("nanosecond", [False, True])
def test_pcap_writer_timestamps(tmp_path, nanosecond: bool) -> None:
    path = tmp_path / "x.pcap"
    with PcapWriter(path, nanosecond=nanosecond) as w:
        w.write(b"\x01" * 10, ts_ns=1_700_000_000_123_456_789)
        w.write(b"", ts_ns=5)
    linktype, recs = read_pcap(path)
    assert linktype == 1
    ts = 1_700_000_000_123_456_789 if nanosecond else 1_700_000_000_123_456_000
    assert recs == [(ts, b"\x01" * 10), (5 if nanosecond else 0, b"")]
    pk = rdpcap(str(path))
    assert bytes(pk[0]) == b"\x01" * 10


# --- raw sockets on veth ----------------------------------------------------------------------------

def test_veth_receive_and_send_as_is(topology) -> None:
    ns = topology.add_netns()
    v = topology.add_veth(ns_b=ns)
    col = Collector()
    far = raw_socket_in(ns, v.b)
    with far, PortSet(col.on_frame, col.on_port_down) as ps:
        ps.add_interface(1, v.a)
        # In: a frame sent from the far end arrives unchanged, once.
        frame = udp_frame(b"inbound-1")
        far.send(frame)
        assert col.get_matching(b"inbound-1") == (1, frame)
        # Out: what the switch sends arrives unchanged at the far end...
        out = udp_frame(b"outbound-1", dst="02:00:00:00:00:01", src="02:00:00:00:00:02")
        assert ps.send(1, out)
        assert recv_matching(far, lambda f: b"outbound-1" in f) == out
        # ...and is not seen by the switch as received (frames it sent are outgoing). The
        # marker sent afterwards proves the queue has been drained past that point.
        far.send(udp_frame(b"marker-2"))
        col.get_matching(b"marker-2")
        assert all(b"outbound-1" not in f for _, f in list(col.frames.queue))
        assert ps.stats[1].tx_frames == 1


def test_veth_short_frames_and_vlan_tags(topology) -> None:
    ns = topology.add_netns()
    v = topology.add_veth(ns_b=ns)
    col = Collector()
    far = raw_socket_in(ns, v.b)
    with far, PortSet(col.on_frame, col.on_port_down) as ps:
        ps.add_interface(1, v.a)
        short = b"\x02" * 6 + b"\x02\x00\x00\x00\x00\x09" + b"\x88\xb5" + b"sh"  # 16 bytes, no padding
        far.send(short)
        assert col.get_matching(b"\x88\xb5sh") == (1, short)
        # 802.1Q: the kernel strips the tag on receive; the port puts it back.
        tagged = bytes(Ether(dst="02:00:00:00:00:02", src="02:00:00:00:00:01") / Dot1Q(vlan=100, prio=5)
                       / IP(src="10.0.0.1", dst="10.0.0.2") / UDP() / b"vlan-frame")
        far.send(tagged)
        assert col.get_matching(b"vlan-frame") == (1, tagged)
        # Linux refuses to transmit a frame shorter than an Ethernet header: dropped, counted,
        # and the port keeps working.
        assert ps.send(1, b"\x01" * 10) is False
        assert ps.stats[1].tx_errors == 1
        assert 1 in ps and not col.down
        assert ps.send(1, udp_frame(b"after-runt"))
        recv_matching(far, lambda f: b"after-runt" in f)


def test_interface_deleted_while_running(topology) -> None:
    ns = topology.add_netns()
    v1 = topology.add_veth(ns_b=ns)
    v2 = topology.add_veth(ns_b=ns)
    col = Collector()
    far2 = raw_socket_in(ns, v2.b)
    with far2, PortSet(col.on_frame, col.on_port_down) as ps:
        ps.add_interface(1, v1.a)
        ps.add_interface(2, v2.a)
        topology.delete_link(v1.a)
        wait_for(lambda: col.down, what="port-down report")
        (port, reason), = col.down
        assert port == 1 and "vanished" in reason
        assert 1 not in ps
        # The other port is unaffected, both ways.
        far2.send(udp_frame(b"port2-alive"))
        assert col.get_matching(b"port2-alive")[0] == 2
        assert ps.send(2, udp_frame(b"port2-out"))
        recv_matching(far2, lambda f: b"port2-out" in f)
        assert ps.send(1, udp_frame(b"x")) is False
        assert ps.dropped_no_port == 1


def test_send_detects_vanished_interface(topology) -> None:
    v = topology.add_veth()
    col = Collector()
    # No receive thread: the send path alone must notice.
    ps = PortSet(col.on_frame, col.on_port_down)
    try:
        ps.add_interface(1, v.a)
        topology.delete_link(v.a)
        assert ps.send(1, udp_frame(b"x")) is False
        assert col.down and col.down[0][0] == 1 and "vanished" in col.down[0][1]
    finally:
        ps.close()


def test_link_down_reported_and_recovers(topology) -> None:
    ns = topology.add_netns()
    v = topology.add_veth(ns_b=ns)
    col = Collector()
    far = raw_socket_in(ns, v.b)
    with far, PortSet(col.on_frame, col.on_port_down) as ps:
        ps.add_interface(1, v.a)
        topology.link_down(v.a)
        wait_for(lambda: col.down, what="link-down report")
        assert col.down[0][0] == 1 and "down" in col.down[0][1]
        assert 1 in ps  # kept: the link may come back
        topology.link_up(v.a)
        # veth carrier comes back asynchronously: resend until one gets through.
        def through() -> bool:
            far.send(udp_frame(b"back-up"))
            try:
                col.get_matching(b"back-up", timeout=0.05)
                return True
            except pytest.fail.Exception:
                return False
        wait_for(through, what="frames after link up")
        assert ps.stats[1].up


def test_missing_interface_raises_port_gone(netns_ok) -> None:
    with pytest.raises(PortGone):
        RawSocketPort(1, "p4tnosuchif0")


# --- TUN: no Ethernet header, any length ------------------------------------------------------------

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000


def test_tun_runts_pass_both_ways(topology) -> None:
    name = topology.add_tap(mode="tun", up=False)
    fd = os.open("/dev/net/tun", os.O_RDWR)
    try:
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
        topology.link_up(name)
        col = Collector()
        with PortSet(col.on_frame, col.on_port_down) as ps:
            ps.add_interface(5, name)
            runt = b"\x45" + b"runt-10b!"  # 10 bytes; first nibble 4 so the TUN accepts it
            assert len(runt) == 10
            os.write(fd, runt)
            assert col.get_matching(b"runt-10b!") == (5, runt)
            assert ps.send(5, b"\x45" + b"back-10b!")
            # The kernel may also emit its own packets on the TUN; read until ours.
            got = wait_for(lambda: _read_until(fd, b"back-10b!"), what="runt out of the TUN")
            assert got == b"\x45" + b"back-10b!"
    finally:
        os.close(fd)


def _read_until(fd: int, marker: bytes) -> bytes | None:
    os.set_blocking(fd, False)
    try:
        while True:
            data = os.read(fd, 65535)
            if marker in data:
                return data
    except BlockingIOError:
        return None


def test_close_stops_thread_promptly() -> None:
    ps = PortSet(lambda p, f: None).start()
    ps.add(MemoryPort(1))
    thread = ps._thread
    assert thread is not None and thread.is_alive()
    ps.close()
    # this PortSet's own thread: other suites' switches may still run theirs
    assert not thread.is_alive()


@pytest.mark.parametrize("ring", [True, False], ids=["ring", "socket"])
def test_frames_of_every_size_arrive_whole_and_in_order(topology, ring: bool) -> None:
    # Through the receive ring a frame bigger than a slot comes from the socket instead: it
    # must still arrive whole and in its place among the others (and the same without a ring).
    ns = topology.add_netns()
    v = topology.add_veth(ns_b=ns)
    subprocess.run(["ip", "link", "set", "dev", v.a, "mtu", "9000"], check=True)
    subprocess.run(["ip", "-n", ns, "link", "set", "dev", v.b, "mtu", "9000"], check=True)
    col = Collector()
    far = raw_socket_in(ns, v.b)
    with far, PortSet(col.on_frame, col.on_port_down) as ps:
        port = ps.add(RawSocketPort(1, v.a, ring=ring))
        assert (port._ring is not None) == ring  # type: ignore[attr-defined]
        tagged = bytes(Ether(dst="02:00:00:00:00:02", src="02:00:00:00:00:01") / Dot1Q(vlan=7)
                       / IP(src="10.0.0.1", dst="10.0.0.2") / UDP() / b"seq-tagged")
        sent = [udp_frame(b"seq-0"), udp_frame(b"seq-1" + b"x" * 4000), udp_frame(b"seq-2"),
                udp_frame(b"seq-3" + b"y" * 8000), tagged, udp_frame(b"seq-5" + b"z" * 1400)]
        for frame in sent * 3:
            far.send(frame)
        got = [col.get_matching(b"seq-")[1] for _ in range(len(sent) * 3)]
        assert [len(f) for f in got] == [len(f) for f in sent * 3]
        assert got == sent * 3
