"""SwitchSession against a real p4sim P4Runtime server in-process: arbitration, pipelines,
writes and reads of every entity kind, per-update errors, stream messages, reconnect."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import threading
from typing import Any

import grpc
import pytest
from google.rpc import code_pb2
from p4.v1 import p4runtime_pb2_grpc
from p4splice.controller.p4rt import (
    LPM,
    Action,
    ArbitrationChange,
    Backoff,
    CloneSessionEntry,
    CounterData,
    CounterEntry,
    DigestEntry,
    DirectCounterEntry,
    Exact,
    MulticastGroupEntry,
    NotConnectedError,
    P4RuntimeRpcError,
    PacketOut,
    PipelineError,
    ReadError,
    ReadSession,
    RegisterEntry,
    Replica,
    SwitchSession,
    TableEntry,
    Ternary,
    Update,
    UpdateType,
    WriteError,
    codec,
    open_channel,
)

from p4sim.compiler.driver import CompiledProgram
from p4sim.switch import SwitchProcess
from tests.controller.test_p4rt_support import (
    DEVICE,
    Switch,
    compile_program,
    eth,
    expect_frame,
    poll,
    run,
    running_switch,
    start_switch,
)

compiled = pytest.fixture(scope="module")(compile_program)
switch = pytest.fixture(running_switch)

log = logging.getLogger(__name__)

MAC_A = codec.mac("02:00:00:00:00:0a")
MAC_B = codec.mac("02:00:00:00:00:0b")
DST = "hdr.ethernet.dst"
SRC = "hdr.ethernet.src"
FAST = Backoff(initial=0.02, maximum=0.2)


def session(sw: Switch, election_id: int = 10, **kw) -> SwitchSession:
    return SwitchSession(sw.addr, DEVICE, election_id, backoff=FAST, **kw)


async def primary(sw: Switch, election_id: int = 10, **kw) -> SwitchSession:
    """A connected primary session with the test program pushed."""
    s = session(sw, election_id, **kw)
    await s.connect()
    await s.wait_primary(5)
    await s.set_pipeline(sw.compiled.p4info, sw.compiled.device_config, cookie=42)
    return s


# --- arbitration and pipeline --------------------------------------------------------------------

def test_primary_arbitration_pipeline_and_capabilities(switch: Switch) -> None:
    async def main() -> None:
        s = session(switch)
        assert not s.has_index
        with pytest.raises(PipelineError, match="no P4Info yet"):
            s.index  # noqa: B018
        async with s:
            await s.wait_primary(5)
            assert s.is_primary and s.is_connected
            change = await asyncio.wait_for(s.arbitration_changes.get(), 5)
            assert change == ArbitrationChange(True, 10, code_pb2.OK, change.message)
            assert await s.capabilities() == "1.4.1"
            with pytest.raises(PipelineError, match="no pipeline"):
                await s.adopt_pipeline()
            await s.set_pipeline(switch.compiled.p4info, switch.compiled.device_config, cookie=7)
            assert s.index.table("smac").id == switch.compiled.p4info.tables[0].preamble.id
            assert (await s.get_pipeline()).cookie.cookie == 7
        assert not s.is_primary and not s.is_connected
    run(main())


def test_backup_waits_and_takes_over_when_the_primary_leaves(switch: Switch) -> None:
    async def main() -> None:
        s1 = await primary(switch, 20)
        s2 = session(switch, 10)
        await s2.connect()
        assert s2.is_connected and not s2.is_primary
        assert (await asyncio.wait_for(s2.arbitration_changes.get(), 5)).code == code_pb2.ALREADY_EXISTS
        await s2.adopt_pipeline()  # reads are open to backups
        with pytest.raises(WriteError) as e:
            await s2.insert(TableEntry("dmac", {DST: MAC_A}, Action("to_cpu")))
        assert e.value.code == grpc.StatusCode.PERMISSION_DENIED
        await s1.close()
        await s2.wait_primary(5)  # the server promotes the live backup (BMv2's behaviour)
        assert s2.election_id == 10
        await s2.insert(TableEntry("dmac", {DST: MAC_A}, Action("to_cpu")))
        await s2.close()
    run(main())


def test_backup_re_arbitrates_when_the_server_does_not_promote(switch: Switch) -> None:
    switch.proc.server.promote_backup_on_disconnect = False  # the spec's rule: no automatic promotion

    async def main() -> None:
        s1 = await primary(switch, 20)
        s2 = session(switch, 10)
        s3 = session(switch, 5, takeover=False)
        await s2.connect()
        await s3.connect()
        assert not s2.is_primary and not s3.is_primary
        await s1.close()
        await s2.wait_primary(5)
        assert s2.election_id == 21  # above the departed primary's, as the spec requires
        await s2.adopt_pipeline()
        await s2.insert(TableEntry("dmac", {DST: MAC_A}, Action("to_cpu")))
        assert not s3.is_primary
        await s2.close()
        await s3.close()
    run(main())


def test_adopt_pipeline_uses_what_the_switch_runs(switch: Switch) -> None:
    async def main() -> None:
        s1 = await primary(switch)
        await s1.insert(TableEntry("dmac", {DST: MAC_A}, Action("forward", {"port": 2})))
        await s1.close()
        async with session(switch, 11) as s2:
            assert await s2.adopt_pipeline() == 42
            assert [t.name for t in s2.index.tables] == [t.preamble.name for t in switch.compiled.p4info.tables]
            assert await s2.read_all(TableEntry("dmac")) == [
                TableEntry("dmac", {DST: Exact(MAC_A)}, Action("forward", {"port": 2}))]
    run(main())


class ServerLog:
    """What the p4sim server under ``switch`` is asked, in the order its workers take it up:
    ("push", "start"/"end"), ("read", "start"/"end"), ("write", "start"). ``hold`` holds the
    given RPC (a thread waiting for the event to be set) while it is taken up."""

    def __init__(self, switch: Switch, hold: str) -> None:
        self.events: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        self.release = threading.Event()
        server = switch.proc.server
        for name, attr in (("push", "_set_pipeline"), ("read", "read"), ("write", "write")):
            setattr(server, attr, self._wrap(name, getattr(server, attr), name == hold))

    def _wrap(self, name: str, fn: Any, held: bool) -> Any:
        def wrapped(*args: Any) -> Any:
            self.note(name, "start")
            if held:
                self.release.wait(10)
            try:
                return fn(*args)
            finally:
                self.note(name, "end")
        return wrapped

    def note(self, name: str, what: str) -> None:
        with self.lock:
            self.events.append((name, what))

    def seen(self, name: str) -> bool:
        with self.lock:
            return (name, "start") in self.events


async def seen_within(log: ServerLog, name: str, timeout: float) -> bool:
    """Whether the server takes up ``name`` within ``timeout`` s (a deadline, for what must not come)."""
    try:
        await poll(lambda: log.seen(name), timeout=timeout, what=name)
    except AssertionError:
        return False
    return True


def test_no_read_or_write_goes_out_while_a_pipeline_push_is_in_flight(switch: Switch) -> None:
    """BMv2 dies (SIGSEGV) on a Read or Write that reaches it during the first push after it
    started (docs/bmv2.md): a session sends them once its push has returned, in order."""
    async def main() -> None:
        s = await primary(switch)
        log = ServerLog(switch, hold="push")
        push = asyncio.create_task(s.set_pipeline(switch.compiled.p4info, switch.compiled.device_config))
        await poll(lambda: log.seen("push"), what="the push taken up")
        assert s.push_gate.pushing
        read = asyncio.create_task(s.read_all(TableEntry("dmac")))
        write = asyncio.create_task(s.insert(TableEntry("dmac", {DST: MAC_A}, Action("to_cpu"))))
        assert not await seen_within(log, "read", 0.5) and not log.seen("write")
        log.release.set()
        await push
        assert await read == []
        await write
        assert log.events[:2] == [("push", "start"), ("push", "end")]
        assert {e for e in log.events[2:] if e[1] == "start"} == {("read", "start"), ("write", "start")}
        assert not s.push_gate.pushing
        assert len(await s.read_all(TableEntry("dmac"))) == 1
        await s.close()
    run(main())


def test_a_pipeline_push_waits_for_the_reads_in_flight(switch: Switch) -> None:
    async def main() -> None:
        s = await primary(switch)
        log = ServerLog(switch, hold="read")
        read = asyncio.create_task(s.read_all(TableEntry("dmac")))
        await poll(lambda: log.seen("read"), what="the read taken up")
        push = asyncio.create_task(s.set_pipeline(switch.compiled.p4info, switch.compiled.device_config))
        assert not await seen_within(log, "push", 0.5)
        log.release.set()
        assert await read == []
        await push
        assert log.events == [("read", "start"), ("read", "end"), ("push", "start"), ("push", "end")]
        await s.close()
    run(main())


# --- writes and reads ----------------------------------------------------------------------------

def test_table_entries_insert_read_modify_delete(switch: Switch) -> None:
    async def main() -> None:
        latencies: list[float] = []
        s = await primary(switch, on_write_latency=latencies.append)
        exact = TableEntry("dmac", {DST: MAC_A}, Action("forward", {"port": 2}))
        lpm = TableEntry("dst_prefix", {DST: LPM(0x0A0000000000, 16)}, Action("flood", {"group": 3}))
        tern = TableEntry("acl", {"hdr.ethernet.ether_type": Ternary(0x0800, 0xFFFF),
                                  SRC: Ternary(MAC_B, 0xFFFFFFFFFFFF)}, Action("drop"), priority=100)
        tern_low = TableEntry("acl", {"hdr.ethernet.ether_type": Ternary(0x0800, 0xFF00)},
                              Action("NoAction"), priority=5)
        await s.insert([exact, lpm, tern, tern_low])
        assert len(latencies) == 1 and 0 < latencies[0] < 5

        assert await s.read_all(TableEntry("dmac")) == [exact]
        assert await s.read_all(TableEntry("dst_prefix")) == [lpm]
        assert sorted(await s.read_all(TableEntry("acl")), key=lambda e: e.priority) == [tern_low, tern]
        everything = await s.read_all(TableEntry(""))
        assert {e.table for e in everything} == {"dmac", "dst_prefix", "acl"} and len(everything) == 4
        # A filter with a match reads that one entry.
        assert await s.read_all(TableEntry("acl", tern.match, priority=100)) == [tern]

        moved = TableEntry("dmac", {DST: MAC_A}, Action("forward", {"port": 3}))
        await s.modify(moved)
        assert await s.read_all(TableEntry("dmac")) == [moved]
        # The data plane follows: MAC_A now leaves by port 3.
        switch.ports[1].inject(eth(MAC_A, MAC_B))
        assert await expect_frame(switch.ports[3]) == eth(MAC_A, MAC_B)

        await s.delete([moved, lpm, tern, tern_low])
        assert await s.read_all(TableEntry("")) == []
        await s.close()
    run(main())


def test_read_session_reads_without_arbitration_and_leaves_the_primary_alone(switch: Switch) -> None:
    async def main() -> None:
        s = await primary(switch)
        entry = TableEntry("dmac", {DST: MAC_A}, Action("forward", {"port": 2}))
        await s.insert(entry)
        channel = open_channel(switch.addr)
        try:
            stub = p4runtime_pb2_grpc.P4RuntimeStub(channel)
            reader = ReadSession(stub, DEVICE, rpc_timeout=5)
            assert await reader.capabilities() == "1.4.1"
            config = await reader.get_pipeline()
            assert config.cookie.cookie == 42 and config.p4info == switch.compiled.p4info
            assert [e async for e in reader.read(s.index, TableEntry("dmac"))] == [entry]
            assert [e async for e in reader.read(s.index, TableEntry("dmac", {DST: MAC_B}))] == []
            with pytest.raises(ReadError) as err:  # the counter of an entry that does not exist
                missing = TableEntry("acl", {"hdr.ethernet.ether_type": Ternary(0x86DD, 0xFFFF)}, priority=9)
                [e async for e in reader.read(s.index, DirectCounterEntry(missing))]
            # The spec's batch error: UNKNOWN overall, the filter's own status in the details.
            assert err.value.code == grpc.StatusCode.UNKNOWN
            assert [f.code for f in err.value.failures] == [code_pb2.NOT_FOUND]
            with pytest.raises(P4RuntimeRpcError) as err2:
                await ReadSession(stub, DEVICE + 7, rpc_timeout=5).get_pipeline()
            assert err2.value.code == grpc.StatusCode.NOT_FOUND
        finally:
            await channel.close()
        # Nothing the reader did touched the arbitration: the session is still primary and writes.
        assert s.is_primary
        await s.delete(entry)
        await s.close()
    run(main())


def test_default_entry_modify_and_read(switch: Switch) -> None:
    async def main() -> None:
        s = await primary(switch)
        default = await s.read_all(TableEntry("dmac", is_default=True))
        assert default == [TableEntry("dmac", action=Action("to_cpu"), is_default=True)]
        new = TableEntry("dmac", action=Action("forward", {"port": 1}), is_default=True)
        await s.modify(new)
        assert await s.read_all(TableEntry("dmac", is_default=True)) == [new]
        switch.ports[2].inject(eth(MAC_B, MAC_A))
        assert await expect_frame(switch.ports[1]) == eth(MAC_B, MAC_A)
        await s.close()
    run(main())


def test_write_error_lists_each_failed_update(switch: Switch) -> None:
    async def main() -> None:
        s = await primary(switch)
        first = TableEntry("dmac", {DST: MAC_A}, Action("to_cpu"))
        await s.insert(first)
        batch = [TableEntry("dmac", {DST: MAC_B}, Action("to_cpu")), first,
                 TableEntry("dmac", {DST: 7}, Action("to_cpu"))]
        with pytest.raises(WriteError) as e:
            await s.insert(batch)
        err = e.value
        assert err.code == grpc.StatusCode.UNKNOWN
        assert [d.code for d in err.details] == [code_pb2.OK, code_pb2.ALREADY_EXISTS, code_pb2.OK]
        [bad] = err.failures
        assert bad.position == 1 and bad.code_name == "ALREADY_EXISTS"
        assert bad.update == Update(UpdateType.INSERT, first)
        assert "1 of 3 updates" in str(err) and "#1 INSERT" in str(err)
        # The others went in (CONTINUE_ON_ERROR).
        assert len(await s.read_all(TableEntry("dmac"))) == 3

        # 1000 updates, one bad: every detail must still come back (large status trailer).
        many = [TableEntry("smac", {SRC: i + 1}, Action("known")) for i in range(1000)]
        many[500] = TableEntry("smac", {SRC: 1}, Action("known"))  # duplicate of #0
        with pytest.raises(WriteError) as e:
            await s.insert(many)
        assert len(e.value.details) == 1000
        assert [f.position for f in e.value.failures] == [500]
        await s.close()
    run(main())


def test_counters_direct_counters_and_registers(switch: Switch) -> None:
    async def main() -> None:
        s = await primary(switch)
        acl = TableEntry("acl", {"hdr.ethernet.ether_type": Ternary(0x88B5, 0xFFFF)}, Action("NoAction"),
                         priority=1)
        await s.insert(acl)
        frame = eth(MAC_A, MAC_B)
        for _ in range(3):
            switch.ports[2].inject(frame)

        async def port2() -> CounterEntry | None:
            [c] = await s.read_all(CounterEntry("port_counter", 2))
            return c if c.data and c.data.packet_count == 3 else None
        c = await poll(port2, what="port_counter[2] == 3")
        assert c.data == CounterData(3, 3 * len(frame))
        cells = await s.read_all(CounterEntry("port_counter"))
        assert len(cells) == 64

        [d] = await s.read_all(DirectCounterEntry(acl))
        assert d.data == CounterData(3, 3 * len(frame))
        [te] = await s.read_all(TableEntry("acl", counter_data=CounterData()))
        assert te.counter_data == CounterData(3, 3 * len(frame))
        await s.modify(DirectCounterEntry(acl, CounterData(0, 0)))
        [d] = await s.read_all(DirectCounterEntry(acl))
        assert d.data == CounterData(0, 0)
        await s.modify(CounterEntry("port_counter", 2, CounterData(0, 0)))
        assert (await s.read_all(CounterEntry("port_counter", 2)))[0].data == CounterData(0, 0)

        assert (await s.read_all(RegisterEntry("scratch", 0)))[0].value == 2  # the program wrote it
        await s.modify(RegisterEntry("scratch", 5, 0xDEADBEEF))
        assert await s.read_all(RegisterEntry("scratch", 5)) == [RegisterEntry("scratch", 5, 0xDEADBEEF)]
        await s.close()
    run(main())


def test_multicast_group_and_clone_session(switch: Switch) -> None:
    async def main() -> None:
        s = await primary(switch)
        group = MulticastGroupEntry(7, [2, 3])
        await s.insert(group)
        assert await s.read_all(MulticastGroupEntry(7)) == [group]
        await s.insert(TableEntry("dst_prefix", {DST: LPM(0xFF0000000000, 8)}, Action("flood", {"group": 7})))
        frame = eth(0xFF0000000001, MAC_A)
        switch.ports[1].inject(frame)
        assert await expect_frame(switch.ports[2]) == frame
        assert await expect_frame(switch.ports[3]) == frame
        await s.modify(MulticastGroupEntry(7, [Replica(1), Replica(3)]))
        assert (await s.read_all(MulticastGroupEntry(7)))[0].replicas == (Replica(1), Replica(3))
        await s.delete(MulticastGroupEntry(7))
        assert await s.read_all(MulticastGroupEntry(0)) == []

        clone = CloneSessionEntry(100, [Replica(3)], packet_length_bytes=64)
        await s.insert(clone)
        assert await s.read_all(CloneSessionEntry(100)) == [clone]
        await s.close()
    run(main())


# --- stream messages -----------------------------------------------------------------------------

def test_packet_out_reaches_the_port(switch: Switch) -> None:
    async def main() -> None:
        s = await primary(switch)
        frame = eth(MAC_B, MAC_A, payload=b"from the controller")
        await s.packet_out(frame, {"egress_port": 2, "_pad": 0})
        assert await expect_frame(switch.ports[2]) == frame
        await s.packet_out(PacketOut(frame, {"egress_port": 3, "_pad": 0}))
        assert await expect_frame(switch.ports[3]) == frame
        await s.close()
    run(main())


def test_stream_error_for_a_refused_packet_out(switch: Switch) -> None:
    async def main() -> None:
        from p4.v1 import p4runtime_pb2 as pb
        s = await primary(switch)
        req = pb.StreamMessageRequest()
        req.packet.payload = b"x" * 20
        req.packet.metadata.add(metadata_id=1, value=b"\x02")  # _pad missing: the switch refuses
        s.send(req)
        err = await asyncio.wait_for(s.stream_errors.get(), 5)
        assert err.code_name == "INVALID_ARGUMENT" and err.kind == "packet_out" and "_pad" in err.message
        await s.close()
    run(main())


def test_packet_in_from_an_injected_frame(switch: Switch) -> None:
    async def main() -> None:
        s = await primary(switch)
        frame = eth(MAC_B, MAC_A)  # unknown destination: dmac's default sends it to the CPU
        switch.ports[3].inject(frame)
        pin = await asyncio.wait_for(s.packet_ins.get(), 5)
        assert pin.payload == frame and pin.metadata == {"ingress_port": 3, "_pad": 0}

        seen: list = []
        got = asyncio.Event()

        async def on_packet(p) -> None:
            seen.append(p)
            got.set()
        s.add_handler("packet_in", on_packet)
        switch.ports[1].inject(frame)
        await asyncio.wait_for(got.wait(), 5)
        assert seen[0].metadata["ingress_port"] == 1 and s.packet_ins.empty()
        await s.close()
    run(main())


def test_digest_lists_are_decoded_and_acked(switch: Switch) -> None:
    async def main() -> None:
        s = await primary(switch)
        # A long ack timeout: the same data comes again only because the first list was acked.
        await s.insert(DigestEntry("learn_t", max_timeout_ns=0, max_list_size=1, ack_timeout_ns=60 * 10**9))
        assert await s.read_all(DigestEntry("learn_t")) == [DigestEntry("learn_t", 0, 1, 60 * 10**9)]
        switch.ports[2].inject(eth(MAC_B, MAC_A))
        dl = await asyncio.wait_for(s.digest_lists.get(), 5)
        assert dl.digest == "learn_t" and dl.data == ({"src": MAC_A, "port": 2},)

        # The ack travels on the stream while we go on: send the same source again until the
        # switch, having processed the ack, reports it again (within the deadline, not 60 s).
        async def again() -> bool:
            switch.ports[2].inject(eth(MAC_B, MAC_A))
            try:
                dl2 = await asyncio.wait_for(s.digest_lists.get(), 0.2)
            except TimeoutError:
                return False
            return dl2.data == dl.data and dl2.list_id != dl.list_id
        await poll(again, what="the acked digest to be reported again")
        await s.close()
    run(main())


def test_unacked_digest_is_not_repeated(switch: Switch) -> None:
    async def main() -> None:
        s = await primary(switch, auto_ack_digests=False)
        await s.insert(DigestEntry("learn_t", max_timeout_ns=0, max_list_size=1, ack_timeout_ns=60 * 10**9))
        switch.ports[2].inject(eth(MAC_B, MAC_A))
        await asyncio.wait_for(s.digest_lists.get(), 5)
        switch.ports[2].inject(eth(MAC_B, MAC_A))
        switch.ports[2].inject(eth(MAC_B, MAC_B))  # new data: delivered, and proves the first was processed
        dl = await asyncio.wait_for(s.digest_lists.get(), 5)
        assert dl.data == ({"src": MAC_B, "port": 2},)
        assert s.digest_lists.empty()
        await s.close()
    run(main())


def test_idle_timeout_notification(switch: Switch) -> None:
    async def main() -> None:
        s = await primary(switch)
        entry = TableEntry("smac", {SRC: MAC_A}, Action("known"), idle_timeout_ns=100_000_000)
        await s.insert(entry)
        note = await asyncio.wait_for(s.idle_notifications.get(), 5)
        assert [(e.table, e.match) for e in note.entries] == [("smac", entry.match)]
        assert note.entries[0].idle_timeout_ns == 100_000_000
        await s.close()
    run(main())


# --- reconnect -----------------------------------------------------------------------------------

def test_reconnects_after_the_switch_restarts(switch: Switch) -> None:
    port = switch.proc.server.port
    entry = TableEntry("dmac", {DST: MAC_A}, Action("forward", {"port": 2}))
    reinstalled = asyncio.Event

    async def main() -> None:
        done = reinstalled()
        changes: list[ArbitrationChange] = []

        async def reinstall(sess: SwitchSession) -> None:
            await sess.wait_primary(5)
            # no packet-out to a switch being set up again (BMv2 was seen to crash on one)
            with pytest.raises(NotConnectedError, match="being set up again"):
                await sess.packet_out(b"\x00" * 60, {"egress_port": 2, "_pad": 0})
            try:
                await sess.adopt_pipeline()
            except PipelineError:
                await sess.set_pipeline(switch.compiled.p4info, switch.compiled.device_config, cookie=42)
                await sess.insert(entry)
            done.set()

        s = await primary(switch, on_reconnect=reinstall)
        s.add_handler("arbitration", changes.append)
        await s.insert(entry)
        switch.proc.stop()
        await poll(lambda: not s.is_connected, what="the session to notice the switch is gone")
        await poll(lambda: any(not c.connected for c in changes), what="a lost-stream arbitration change")
        # Same port, empty switch (as a restarted simple_switch_grpc would be).
        new_proc, new_ports = start_switch(port)
        switch.proc, switch.ports = new_proc, new_ports  # the fixture stops this one
        await asyncio.wait_for(done.wait(), 10)
        assert s.is_primary
        assert await s.read_all(TableEntry("dmac")) == [entry]
        new_ports[1].inject(eth(MAC_A, MAC_B))
        assert await expect_frame(new_ports[2]) == eth(MAC_A, MAC_B)
        await s.packet_out(eth(MAC_B, MAC_A), {"egress_port": 3, "_pad": 0})  # set up: sent again
        assert await expect_frame(new_ports[3]) == eth(MAC_B, MAC_A)
        await s.close()
    run(main())


# --- TLS and roles -------------------------------------------------------------------------------

def test_tls_session(tmp_path, compiled: CompiledProgram) -> None:
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                        "-keyout", str(key), "-out", str(cert)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    proc = SwitchProcess(device_id=DEVICE, grpc_addr="127.0.0.1:0", cpu_port=255, cert=str(cert), key=str(key))
    proc.start()
    try:
        async def main() -> None:
            async with SwitchSession(proc.grpc_addr, DEVICE, 1, root_certificates=cert, backoff=FAST) as s:
                await s.wait_primary(5)
                await s.set_pipeline(compiled.p4info, compiled.device_config)
                await s.insert(TableEntry("dmac", {DST: MAC_A}, Action("to_cpu")))
                assert len(await s.read_all(TableEntry("dmac"))) == 1
        run(main())
    finally:
        proc.stop()


def test_named_roles_arbitrate_separately(switch: Switch) -> None:
    async def main() -> None:
        s = await primary(switch, 10)
        async with session(switch, 10, role="observer") as other:
            await other.wait_primary(5)  # the same election id is fine in another role
            await other.adopt_pipeline()
            await other.insert(TableEntry("dmac", {DST: MAC_B}, Action("to_cpu")))
            assert len(await s.read_all(TableEntry("dmac"))) == 1
        await s.close()
    run(main())


def test_connect_reports_why_it_cannot(switch: Switch) -> None:
    async def main() -> None:
        s = SwitchSession(switch.addr, DEVICE + 1, 1, backoff=FAST)  # no such device
        with pytest.raises(NotConnectedError, match="NOT_FOUND: unknown device id 2"):
            await s.connect(timeout=0.5)
        with pytest.raises(NotConnectedError):
            await s.packet_out(b"x")
        await s.close()
        s2 = SwitchSession(switch.addr, DEVICE + 1, 1, backoff=FAST, connect_timeout=0.3)
        with pytest.raises(NotConnectedError, match="unknown device id"):
            async with s2:
                pass
        assert s2._runner is None and s2._channel is None  # nothing left running
    run(main())


def test_connect_fails_at_once_when_the_switch_refuses_the_arbitration(switch: Switch) -> None:
    async def main() -> None:
        s = await primary(switch, 10)
        dup = SwitchSession(switch.addr, DEVICE, 10, backoff=FAST)  # the same election id
        # the refusal, not the 30 s timeout, ends connect (the message says which it was)
        with pytest.raises(NotConnectedError, match="refused our arbitration: INVALID_ARGUMENT"):
            await dup.connect(timeout=30)
        await dup.close()
        assert s.is_primary
        await s.close()
    run(main())
