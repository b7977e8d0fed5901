"""The P4Runtime server over real gRPC on loopback: arbitration, pipeline config, writes, reads, streams."""

from __future__ import annotations

import queue
import threading
import time
from pathlib import Path

import grpc
import pytest
from google.protobuf import text_format
from google.rpc import code_pb2, status_pb2
from p4.config.v1 import p4info_pb2
from p4.v1 import p4runtime_pb2, p4runtime_pb2_grpc

from p4sim.runtime.device import NullDevice
from p4sim.runtime.server import P4RuntimeServer

P4INFO = Path(__file__).parent / "p4info" / "runtime_test.p4info.txtpb"
EXACT_T, LPM_T, ACL_T, SMALL_T, CONST_T, VRF_T, BIG_T = range(33554433, 33554440)
SET_PORT, DROP, NOACTION, SET_NHOP = 16777217, 16777218, 16777219, 16777220
COUNTER, DCOUNTER, METER, DMETER, REG, DIGEST = (302000001, 318767105, 335544321, 352321537,
                                                  369098753, 385875969)
PVS, PVS2 = 50331649, 50331650
DEVICE_ID = 1
U = p4runtime_pb2.Update
SetReq = p4runtime_pb2.SetForwardingPipelineConfigRequest


def load_p4info() -> p4info_pb2.P4Info:
    return text_format.Parse(P4INFO.read_text(), p4info_pb2.P4Info())


def wait_for(pred, timeout: float = 5.0, what: str = "condition"):
    """Poll `pred` until it returns something truthy, or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.005)
    raise AssertionError(f"timed out waiting for {what}")


class Client:
    """A raw P4Runtime client: a stub plus one StreamChannel whose messages land in a queue."""

    def __init__(self, addr: str, election_id: tuple[int, int] | None = (0, 1), role: str = "",
                 device_id: int = DEVICE_ID, arbitrate: bool = True) -> None:
        self.channel = grpc.insecure_channel(addr)
        self.stub = p4runtime_pb2_grpc.P4RuntimeStub(self.channel)
        self.election_id = election_id
        self.role = role
        self.device_id = device_id
        self._out: queue.Queue = queue.Queue()
        self.inbox: queue.Queue = queue.Queue()
        self.stream_error: grpc.RpcError | None = None
        self.stream = self.stub.StreamChannel(iter(self._out.get, None))
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()
        if arbitrate:
            self.arbitrate(election_id)

    def _pump(self) -> None:
        try:
            for msg in self.stream:
                self.inbox.put(msg)
        except grpc.RpcError as e:
            self.stream_error = e
        self.inbox.put(None)

    def arbitrate(self, election_id: tuple[int, int] | None) -> None:
        self.election_id = election_id
        req = p4runtime_pb2.StreamMessageRequest()
        req.arbitration.device_id = self.device_id
        if self.role:
            req.arbitration.role.name = self.role
        if election_id is not None:
            req.arbitration.election_id.high, req.arbitration.election_id.low = election_id
        self._out.put(req)

    def send(self, req: p4runtime_pb2.StreamMessageRequest) -> None:
        self._out.put(req)

    def recv(self, kind: str, timeout: float = 5.0):
        """Next stream message of this kind (others are dropped); None if the stream ended."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {kind} message within {timeout}s")
            try:
                msg = self.inbox.get(timeout=left)
            except queue.Empty:
                continue
            if msg is None:
                self.inbox.put(None)
                return None
            if msg.WhichOneof("update") == kind:
                return getattr(msg, kind)

    def status(self, timeout: float = 5.0) -> int:
        return self.recv("arbitration", timeout).status.code

    def _fill(self, req) -> None:
        req.device_id = self.device_id
        if self.role:
            req.role = self.role
        if self.election_id is not None:
            req.election_id.high, req.election_id.low = self.election_id

    def set_pipeline(self, action=SetReq.VERIFY_AND_COMMIT, p4info=None, device_config=b"cfg",
                     cookie: int | None = None, with_config: bool = True):
        req = SetReq(action=action)
        self._fill(req)
        if with_config:
            req.config.p4info.CopyFrom(p4info if p4info is not None else load_p4info())
            req.config.p4_device_config = device_config
            if cookie is not None:
                req.config.cookie.cookie = cookie
        return self.stub.SetForwardingPipelineConfig(req)

    def write(self, *updates: p4runtime_pb2.Update, atomicity=0):
        req = p4runtime_pb2.WriteRequest(atomicity=atomicity)
        self._fill(req)
        req.updates.extend(updates)
        return self.stub.Write(req)

    def read(self, *entities: p4runtime_pb2.Entity) -> list[p4runtime_pb2.Entity]:
        req = p4runtime_pb2.ReadRequest(device_id=self.device_id)
        req.entities.extend(entities)
        return [e for resp in self.stub.Read(req) for e in resp.entities]

    def close(self) -> None:
        self._out.put(None)
        self._thread.join(timeout=5)
        self.channel.close()


def batch_errors(err: grpc.RpcError) -> list[tuple[int, str]]:
    """(canonical_code, message) per update, from the grpc-status-details-bin trailer."""
    assert err.code() == grpc.StatusCode.UNKNOWN
    for key, value in err.trailing_metadata():
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
            out = []
            for detail in status.details:
                e = p4runtime_pb2.Error()
                assert detail.Unpack(e)
                out.append((e.canonical_code, e.message))
            return out
    raise AssertionError("no grpc-status-details-bin trailer")


def write_code(client: Client, *updates) -> int:
    """The canonical code of a single-update write (OK if it succeeded)."""
    try:
        client.write(*updates)
    except grpc.RpcError as err:
        if err.code() != grpc.StatusCode.UNKNOWN:
            return err.code().value[0]
        return batch_errors(err)[0][0]
    return code_pb2.OK


# -- entity builders ----------------------------------------------------------------------------
def exact(fid: int, value: bytes) -> p4runtime_pb2.FieldMatch:
    fm = p4runtime_pb2.FieldMatch(field_id=fid)
    fm.exact.value = value
    return fm


def lpm(fid: int, value: bytes, plen: int) -> p4runtime_pb2.FieldMatch:
    fm = p4runtime_pb2.FieldMatch(field_id=fid)
    fm.lpm.value, fm.lpm.prefix_len = value, plen
    return fm


def ternary(fid: int, value: bytes, mask: bytes) -> p4runtime_pb2.FieldMatch:
    fm = p4runtime_pb2.FieldMatch(field_id=fid)
    fm.ternary.value, fm.ternary.mask = value, mask
    return fm


def table_entry(table_id: int, matches=(), action_id: int = 0, params=(), priority: int = 0,
                **kw) -> p4runtime_pb2.Entity:
    ent = p4runtime_pb2.Entity()
    te = ent.table_entry
    te.table_id = table_id
    te.match.extend(matches)
    if action_id:
        te.action.action.action_id = action_id
        for i, v in enumerate(params, start=1):
            te.action.action.params.add(param_id=i, value=v)
    te.priority = priority
    for k, v in kw.items():
        if k in ("counter_data", "meter_config", "time_since_last_hit"):
            getattr(te, k).CopyFrom(v)
        else:
            setattr(te, k, v)
    return ent


def upd(utype: int, ent: p4runtime_pb2.Entity) -> p4runtime_pb2.Update:
    return p4runtime_pb2.Update(type=utype, entity=ent)


def mac_entry(mac: int, port: int, out_port: bytes = b"\x01", **kw) -> p4runtime_pb2.Entity:
    return table_entry(EXACT_T, [exact(1, mac.to_bytes(6, "big")), exact(2, port.to_bytes(2, "big"))],
                       SET_PORT, [out_port], **kw)


# -- fixtures -----------------------------------------------------------------------------------
@pytest.fixture
def device() -> NullDevice:
    return NullDevice()


@pytest.fixture
def server(device: NullDevice):
    srv = P4RuntimeServer(device, address="127.0.0.1:0", device_id=DEVICE_ID).start()
    yield srv
    srv.stop(grace=0.2)


@pytest.fixture
def addr(server: P4RuntimeServer) -> str:
    return f"127.0.0.1:{server.port}"


@pytest.fixture
def clients(addr: str):
    made: list[Client] = []

    def make(*args, **kw) -> Client:
        c = Client(addr, *args, **kw)
        made.append(c)
        return c
    yield make
    for c in made:
        c.close()


@pytest.fixture
def primary(clients) -> Client:
    c = clients((0, 10))
    assert c.status() == code_pb2.OK
    c.set_pipeline(cookie=42)
    return c


# -- capabilities, arbitration ------------------------------------------------------------------
def test_capabilities(addr: str) -> None:
    stub = p4runtime_pb2_grpc.P4RuntimeStub(grpc.insecure_channel(addr))
    assert stub.Capabilities(p4runtime_pb2.CapabilitiesRequest()).p4runtime_api_version == "1.4.1"


def test_before_pipeline_write_and_read_fail(clients) -> None:
    c = clients((0, 1))
    assert c.status() == code_pb2.OK
    assert write_code(c, upd(U.INSERT, mac_entry(1, 1))) == code_pb2.FAILED_PRECONDITION
    with pytest.raises(grpc.RpcError) as err:
        c.read(table_entry(0))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    resp = c.stub.GetForwardingPipelineConfig(p4runtime_pb2.GetForwardingPipelineConfigRequest(
        device_id=DEVICE_ID))
    assert not resp.HasField("config")


def test_arbitration_primary_backup_and_takeover(clients) -> None:
    a = clients((0, 5))
    assert a.status() == code_pb2.OK
    b = clients((0, 3))
    mau = b.recv("arbitration")
    assert mau.status.code == code_pb2.ALREADY_EXISTS
    assert (mau.election_id.high, mau.election_id.low) == (0, 5)
    a.set_pipeline()
    assert write_code(b, upd(U.INSERT, mac_entry(1, 1))) == code_pb2.PERMISSION_DENIED
    with pytest.raises(grpc.RpcError) as err:
        b.set_pipeline()
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert write_code(a, upd(U.INSERT, mac_entry(1, 1))) == code_pb2.OK
    assert len(b.read(table_entry(EXACT_T))) == 1  # backups may read
    # b raises its election id above a's: it takes over and both are told.
    b.arbitrate((0, 9))
    assert b.status() == code_pb2.OK
    assert a.status() == code_pb2.ALREADY_EXISTS
    assert write_code(a, upd(U.INSERT, mac_entry(2, 1))) == code_pb2.PERMISSION_DENIED
    assert write_code(b, upd(U.INSERT, mac_entry(2, 1))) == code_pb2.OK


def test_failover_when_primary_stream_closes(clients) -> None:
    a = clients((0, 5))
    assert a.status() == code_pb2.OK
    b = clients((0, 3))
    assert b.status() == code_pb2.ALREADY_EXISTS
    a.close()
    assert b.status() == code_pb2.OK  # BMv2 behaviour: the next highest becomes primary
    b.set_pipeline()
    assert write_code(b, upd(U.INSERT, mac_entry(1, 1))) == code_pb2.OK


def test_failover_spec_mode_needs_new_arbitration(device: NullDevice) -> None:
    srv = P4RuntimeServer(device, address="127.0.0.1:0", promote_backup_on_disconnect=False).start()
    try:
        addr = f"127.0.0.1:{srv.port}"
        a = Client(addr, (0, 5))
        assert a.status() == code_pb2.OK
        b = Client(addr, (0, 3))  # only now: arriving first, b would be primary for a moment
        assert b.status() == code_pb2.ALREADY_EXISTS
        a.close()
        assert b.status() == code_pb2.NOT_FOUND  # no primary until someone re-arbitrates
        b.arbitrate((0, 3))
        assert b.status() == code_pb2.NOT_FOUND  # 3 < 5, the highest ever seen
        b.arbitrate((0, 6))
        assert b.status() == code_pb2.OK
        b.close()
    finally:
        srv.stop(grace=0.2)


def test_arbitration_errors_terminate_stream(clients) -> None:
    a = clients((0, 5))
    assert a.status() == code_pb2.OK
    dup = clients((0, 5))
    assert dup.recv("arbitration") is None
    assert dup.stream_error.code() == grpc.StatusCode.INVALID_ARGUMENT
    wrong = clients((0, 6), device_id=99)
    assert wrong.recv("arbitration") is None
    assert wrong.stream_error.code() == grpc.StatusCode.NOT_FOUND
    a.set_pipeline()  # a is still primary


def test_named_roles_are_separate(clients) -> None:
    a = clients((0, 5))
    assert a.status() == code_pb2.OK
    r = clients((0, 1), role="sdn")
    assert r.status() == code_pb2.OK  # primary of its own role
    a.set_pipeline()
    assert write_code(r, upd(U.INSERT, mac_entry(1, 1))) == code_pb2.OK
    unknown = clients(None, role="nobody", arbitrate=False)
    assert write_code(unknown, upd(U.INSERT, mac_entry(2, 1))) == code_pb2.NOT_FOUND


# -- pipeline config ----------------------------------------------------------------------------
def test_pipeline_config_actions_and_get(clients) -> None:
    c = clients((0, 1))
    assert c.status() == code_pb2.OK
    c.set_pipeline(SetReq.VERIFY)
    with pytest.raises(grpc.RpcError) as err:
        c.read(table_entry(0))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION  # VERIFY changes nothing
    with pytest.raises(grpc.RpcError) as err:
        c.set_pipeline(SetReq.COMMIT, with_config=False)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as err:
        c.set_pipeline(SetReq.VERIFY, with_config=False)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    c.set_pipeline(SetReq.VERIFY_AND_SAVE, cookie=7, device_config=b"\x01\x02")
    c.set_pipeline(SetReq.COMMIT, with_config=False)
    G = p4runtime_pb2.GetForwardingPipelineConfigRequest
    get = c.stub.GetForwardingPipelineConfig
    full = get(G(device_id=DEVICE_ID, response_type=G.ALL)).config
    assert full.cookie.cookie == 7 and full.p4_device_config == b"\x01\x02" and len(full.p4info.tables) == 7
    only = get(G(device_id=DEVICE_ID, response_type=G.COOKIE_ONLY)).config
    assert only.cookie.cookie == 7 and not only.HasField("p4info") and not only.p4_device_config
    p4i = get(G(device_id=DEVICE_ID, response_type=G.P4INFO_AND_COOKIE)).config
    assert p4i.HasField("p4info") and not p4i.p4_device_config
    dev = get(G(device_id=DEVICE_ID, response_type=G.DEVICE_CONFIG_AND_COOKIE)).config
    assert dev.p4_device_config == b"\x01\x02" and not dev.HasField("p4info")
    with pytest.raises(grpc.RpcError) as err:
        get(G(device_id=5))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_reconcile_keeps_state_and_commit_clears_it(primary: Client) -> None:
    primary.write(upd(U.INSERT, mac_entry(1, 1)), upd(U.INSERT, mac_entry(2, 2)))
    mg = p4runtime_pb2.Entity()
    mg.packet_replication_engine_entry.multicast_group_entry.multicast_group_id = 3
    primary.write(upd(U.INSERT, mg))
    reg = p4runtime_pb2.Entity()
    reg.register_entry.register_id = REG
    reg.register_entry.index.index = 3
    reg.register_entry.data.bitstring = b"\x01\x00"
    primary.write(upd(U.MODIFY, reg))
    primary.set_pipeline(SetReq.RECONCILE_AND_COMMIT)
    assert len(primary.read(table_entry(EXACT_T))) == 2
    assert len(primary.read(mg)) == 1
    # register cells carried over, the written one and the zero ones (not written, zero anyway)
    all_regs = p4runtime_pb2.Entity()
    all_regs.register_entry.register_id = REG
    cells = {e.register_entry.index.index: e.register_entry.data.bitstring for e in primary.read(all_regs)}
    assert cells[3] == b"\x01\x00" and all(v.strip(b"\x00") == b"" for i, v in cells.items() if i != 3)
    # A P4Info without exact_tbl cannot keep those entries.
    p4info = load_p4info()
    del p4info.tables[0]
    del p4info.direct_counters[0]
    with pytest.raises(grpc.RpcError) as err:
        primary.set_pipeline(SetReq.RECONCILE_AND_COMMIT, p4info=p4info)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    primary.set_pipeline(SetReq.VERIFY_AND_COMMIT)
    assert primary.read(table_entry(EXACT_T)) == []


# -- table entries ------------------------------------------------------------------------------
def test_table_insert_read_modify_delete_canonical(primary: Client) -> None:
    ent = mac_entry(0xAABB, 3, out_port=b"\x00\x00\x05")  # padded, non-canonical, still accepted
    primary.write(upd(U.INSERT, ent))
    (got,) = primary.read(table_entry(EXACT_T))
    te = got.table_entry
    assert [m.exact.value for m in te.match] == [b"\xaa\xbb", b"\x03"]  # canonical on read
    assert te.action.action.params[0].value == b"\x05"
    assert write_code(primary, upd(U.INSERT, ent)) == code_pb2.ALREADY_EXISTS
    primary.write(upd(U.MODIFY, mac_entry(0xAABB, 3, out_port=b"\x07")))
    (got,) = primary.read(table_entry(EXACT_T))
    assert got.table_entry.action.action.params[0].value == b"\x07"
    primary.write(upd(U.DELETE, mac_entry(0xAABB, 3)))
    assert primary.read(table_entry(EXACT_T)) == []
    assert write_code(primary, upd(U.DELETE, mac_entry(0xAABB, 3))) == code_pb2.NOT_FOUND
    assert write_code(primary, upd(U.MODIFY, mac_entry(0xAABB, 3))) == code_pb2.NOT_FOUND
    zero = mac_entry(0, 0, out_port=b"\x00")
    primary.write(upd(U.INSERT, zero))
    (got,) = primary.read(table_entry(EXACT_T))
    assert [m.exact.value for m in got.table_entry.match] == [b"\x00", b"\x00"]


@pytest.mark.parametrize("ent, code", [
    # value wider than the field (bit<9> port) and empty bytestrings: OUT_OF_RANGE (spec: Bytestrings)
    (mac_entry(1, 1, out_port=b"\x02\x00"), code_pb2.OUT_OF_RANGE),
    (table_entry(EXACT_T, [exact(1, b""), exact(2, b"\x01")], SET_PORT, [b"\x01"]), code_pb2.OUT_OF_RANGE),
    (table_entry(EXACT_T, [exact(1, b"\x01")], SET_PORT, [b"\x01"]), code_pb2.INVALID_ARGUMENT),
    (table_entry(EXACT_T, [exact(1, b"\x01"), exact(9, b"\x01")], SET_PORT, [b"\x01"]), code_pb2.INVALID_ARGUMENT),
    (table_entry(99, [exact(1, b"\x01")], SET_PORT, [b"\x01"]), code_pb2.INVALID_ARGUMENT),
    (table_entry(EXACT_T, [exact(1, b"\x01"), exact(2, b"\x01")], SET_NHOP, [b"\x01", b"\x01"]),
     code_pb2.INVALID_ARGUMENT),  # action not in the table's action set
    (table_entry(EXACT_T, [exact(1, b"\x01"), exact(2, b"\x01")], SET_PORT, []), code_pb2.INVALID_ARGUMENT),
    (table_entry(EXACT_T, [exact(1, b"\x01"), exact(2, b"\x01")]), code_pb2.INVALID_ARGUMENT),  # no action
    (mac_entry(1, 1, priority=5), code_pb2.INVALID_ARGUMENT),  # priority on an exact table
    (table_entry(LPM_T, [lpm(1, b"\x0a\x00\x00\x01", 8)], DROP), code_pb2.INVALID_ARGUMENT),
    (table_entry(LPM_T, [lpm(1, b"\x0a", 0)], DROP), code_pb2.INVALID_ARGUMENT),
    (table_entry(LPM_T, [lpm(1, b"\x0a\x00\x00\x00", 8)], DROP, priority=1), code_pb2.INVALID_ARGUMENT),
    (table_entry(ACL_T, [ternary(1, b"\x0a\x00\x00\x00", b"\xff\x00\x00\x00")], DROP),
     code_pb2.INVALID_ARGUMENT),  # ternary without priority
    (table_entry(ACL_T, [ternary(1, b"\x0a\x00\x00\x01", b"\xff\x00\x00\x00")], DROP, priority=1),
     code_pb2.INVALID_ARGUMENT),  # value bits outside the mask
    (table_entry(ACL_T, [lpm(1, b"\x0a", 8)], DROP, priority=1), code_pb2.INVALID_ARGUMENT),
    (table_entry(SMALL_T, [exact(1, b"\x01")], DROP), code_pb2.PERMISSION_DENIED),  # @defaultonly
    (table_entry(CONST_T, [exact(1, b"\x01")], DROP), code_pb2.PERMISSION_DENIED),  # const table
    (table_entry(EXACT_T, is_default_action=True, action_id=DROP), code_pb2.INVALID_ARGUMENT),  # INSERT default
    (mac_entry(1, 1, is_const=True), code_pb2.INVALID_ARGUMENT),
    (table_entry(LPM_T, [lpm(1, b"\x0a\x00\x00\x00", 8)], DROP, idle_timeout_ns=1000), code_pb2.INVALID_ARGUMENT),
])
def test_table_insert_errors(primary: Client, ent, code) -> None:
    assert write_code(primary, upd(U.INSERT, ent)) == code


def test_default_entry_modify_read_reset(primary: Client) -> None:
    (d,) = primary.read(table_entry(LPM_T, is_default_action=True))
    assert d.table_entry.is_default_action and d.table_entry.action.action.action_id == NOACTION
    primary.write(upd(U.MODIFY, table_entry(LPM_T, is_default_action=True, action_id=DROP)))
    (d,) = primary.read(table_entry(LPM_T, is_default_action=True))
    assert d.table_entry.action.action.action_id == DROP
    assert primary.read(table_entry(LPM_T)) == []  # wildcard reads skip the default entry
    primary.write(upd(U.MODIFY, table_entry(LPM_T, is_default_action=True)))  # no action: reset
    (d,) = primary.read(table_entry(LPM_T, is_default_action=True))
    assert d.table_entry.action.action.action_id == NOACTION
    assert write_code(primary, upd(U.MODIFY, table_entry(CONST_T, is_default_action=True, action_id=SET_PORT,
                                                         params=[b"\x01"]))) == code_pb2.PERMISSION_DENIED
    assert write_code(primary, upd(U.MODIFY, table_entry(SMALL_T, is_default_action=True, action_id=SET_PORT,
                                                         params=[b"\x01"]))) == code_pb2.PERMISSION_DENIED
    assert write_code(primary, upd(U.DELETE, table_entry(LPM_T, is_default_action=True))) == code_pb2.INVALID_ARGUMENT


def test_ternary_range_optional_round_trip_and_priority_filter(primary: Client) -> None:
    rng = p4runtime_pb2.FieldMatch(field_id=2)
    rng.range.low, rng.range.high = b"\x00\x50", b"\x00\x5a"
    opt = p4runtime_pb2.FieldMatch(field_id=3)
    opt.optional.value = b"\x06"
    e1 = table_entry(ACL_T, [ternary(1, b"\x0a\x00\x00\x00", b"\xff\x00\x00\x00"), rng, opt], DROP, priority=10)
    e2 = table_entry(ACL_T, [ternary(1, b"\x0a\x00\x00\x00", b"\xff\x00\x00\x00")], DROP, priority=20)
    primary.write(upd(U.INSERT, e1), upd(U.INSERT, e2))
    got = primary.read(table_entry(ACL_T))
    assert len(got) == 2
    (only,) = primary.read(table_entry(ACL_T, priority=10))
    te = only.table_entry
    assert {m.field_id: m.WhichOneof("field_match_type") for m in te.match} == {1: "ternary", 2: "range", 3: "optional"}
    assert te.match[1].range.low == b"\x50"  # canonical
    (only,) = primary.read(table_entry(ACL_T, priority=20))
    assert len(only.table_entry.match) == 1  # don't-care fields stay omitted


def test_table_full_is_resource_exhausted(primary: Client) -> None:
    ups = [upd(U.INSERT, table_entry(SMALL_T, [exact(1, bytes([k]))], SET_PORT, [b"\x01"])) for k in range(5)]
    with pytest.raises(grpc.RpcError) as err:
        primary.write(*ups)
    codes = [c for c, _ in batch_errors(err.value)]
    assert codes == [code_pb2.OK] * 4 + [code_pb2.RESOURCE_EXHAUSTED]


def test_batch_error_details_one_per_update(primary: Client) -> None:
    with pytest.raises(grpc.RpcError) as err:
        primary.write(upd(U.INSERT, mac_entry(1, 1)), upd(U.INSERT, mac_entry(1, 1)),
                      upd(U.DELETE, mac_entry(2, 2)), upd(U.INSERT, mac_entry(3, 3)))
    details = batch_errors(err.value)
    assert [c for c, _ in details] == [code_pb2.OK, code_pb2.ALREADY_EXISTS, code_pb2.NOT_FOUND, code_pb2.OK]
    assert details[1][1] and not details[0][1]
    assert len(primary.read(table_entry(EXACT_T))) == 2  # CONTINUE_ON_ERROR: good ones applied
    assert write_code(primary, upd(U.INSERT, mac_entry(5, 5))) == code_pb2.OK
    with pytest.raises(grpc.RpcError) as err:
        primary.write(upd(U.INSERT, mac_entry(6, 6)), atomicity=p4runtime_pb2.WriteRequest.ROLLBACK_ON_ERROR)
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_thousand_entries_in_one_batch_and_wildcard_reads(primary: Client) -> None:
    ups = [upd(U.INSERT, table_entry(BIG_T, [exact(1, k.to_bytes(4, "big"))], SET_PORT,
                                     [(k % 512).to_bytes(2, "big")])) for k in range(1000)]
    primary.write(*ups)
    assert len(primary.read(table_entry(BIG_T))) == 1000
    primary.write(upd(U.INSERT, mac_entry(1, 1)))
    assert len(primary.read(table_entry(0))) == 1001  # table_id 0: every table
    state = primary_state(primary)
    assert state.lookup(BIG_T, (999,), 0, 0).params == (999 % 512,)
    one = primary.read(table_entry(BIG_T, [exact(1, (7).to_bytes(4, "big"))]))
    assert len(one) == 1 and one[0].table_entry.action.action.params[0].value == b"\x07"
    filtered = primary.read(table_entry(EXACT_T, action_id=DROP))
    assert filtered == []


_SERVERS: dict[int, P4RuntimeServer] = {}


def primary_state(client: Client):
    return _SERVERS[id(client)].state


@pytest.fixture(autouse=True)
def _remember_server(request, server: P4RuntimeServer):
    """Let tests reach the server's SwitchState from their primary client."""
    if "primary" in request.fixturenames:
        _SERVERS[id(request.getfixturevalue("primary"))] = server
    yield
    _SERVERS.clear()


# -- direct resources, counters, meters, registers -----------------------------------------------
def test_direct_counter_counts_hits_and_reads(primary: Client) -> None:
    cd = p4runtime_pb2.CounterData(packet_count=5, byte_count=500)
    primary.write(upd(U.INSERT, mac_entry(0xA, 1, counter_data=cd)))
    state = primary_state(primary)
    state.lookup(EXACT_T, (0xA, 1), time.monotonic_ns(), 100)
    req = mac_entry(0xA, 1)
    req.table_entry.counter_data.SetInParent()
    (got,) = primary.read(req)
    assert (got.table_entry.counter_data.packet_count, got.table_entry.counter_data.byte_count) == (6, 600)
    dce = p4runtime_pb2.Entity()
    dce.direct_counter_entry.table_entry.CopyFrom(mac_entry(0xA, 1).table_entry)
    dce.direct_counter_entry.data.packet_count = 1
    primary.write(upd(U.MODIFY, dce))
    read_req = p4runtime_pb2.Entity()
    read_req.direct_counter_entry.table_entry.table_id = EXACT_T
    (got,) = primary.read(read_req)
    assert got.direct_counter_entry.data.packet_count == 1
    assert write_code(primary, upd(U.INSERT, dce)) == code_pb2.INVALID_ARGUMENT
    missing = p4runtime_pb2.Entity()
    missing.direct_counter_entry.table_entry.CopyFrom(mac_entry(0xB, 1).table_entry)
    assert write_code(primary, upd(U.MODIFY, missing)) == code_pb2.NOT_FOUND
    bad = table_entry(LPM_T, [lpm(1, b"\x0a\x00\x00\x00", 8)], DROP, counter_data=cd)
    assert write_code(primary, upd(U.INSERT, bad)) == code_pb2.INVALID_ARGUMENT  # no direct counter


def test_direct_meter_config_in_entry_and_entity(primary: Client) -> None:
    mc = p4runtime_pb2.MeterConfig(cir=100, cburst=10, pir=200, pburst=20)
    primary.write(upd(U.INSERT, table_entry(LPM_T, [lpm(1, b"\x0a\x00\x00\x00", 8)], DROP, meter_config=mc)))
    req = table_entry(LPM_T)
    req.table_entry.meter_config.SetInParent()
    (got,) = primary.read(req)
    assert got.table_entry.meter_config == mc
    entry = primary_state(primary).table(LPM_T).get(((0x0A000000, 8),), 0)
    assert (entry.meter_config.cir, entry.meter_config.pburst) == (100, 20)
    dme = p4runtime_pb2.Entity()
    dme.direct_meter_entry.table_entry.CopyFrom(table_entry(LPM_T, [lpm(1, b"\x0a\x00\x00\x00", 8)]).table_entry)
    primary.write(upd(U.MODIFY, dme))  # config unset: back to the default (all GREEN)
    (got,) = primary.read(dme)
    assert not got.direct_meter_entry.HasField("config")
    bad = p4runtime_pb2.MeterConfig(cir=1, cburst=1, pir=1, pburst=1, eburst=5)  # eburst on trTCM
    dme.direct_meter_entry.config.CopyFrom(bad)
    assert write_code(primary, upd(U.MODIFY, dme)) == code_pb2.INVALID_ARGUMENT


def test_indexed_counter_meter_register(primary: Client) -> None:
    ce = p4runtime_pb2.Entity()
    ce.counter_entry.counter_id = COUNTER
    ce.counter_entry.index.index = 2
    ce.counter_entry.data.packet_count = 9
    primary.write(upd(U.MODIFY, ce))
    primary_state(primary).count(COUNTER, 2, 60)
    all_cells = p4runtime_pb2.Entity()
    all_cells.counter_entry.counter_id = COUNTER
    got = primary.read(all_cells)
    assert len(got) == 8 and got[2].counter_entry.data.packet_count == 10
    assert got[2].counter_entry.data.byte_count == 60
    every = p4runtime_pb2.Entity()
    every.counter_entry.SetInParent()
    assert len(primary.read(every)) == 8
    assert write_code(primary, upd(U.INSERT, ce)) == code_pb2.INVALID_ARGUMENT
    ce.counter_entry.index.index = 8
    assert write_code(primary, upd(U.MODIFY, ce)) == code_pb2.OUT_OF_RANGE
    ce.counter_entry.index.index = -1
    assert write_code(primary, upd(U.MODIFY, ce)) == code_pb2.INVALID_ARGUMENT

    me = p4runtime_pb2.Entity()
    me.meter_entry.meter_id = METER
    me.meter_entry.index.index = 1
    me.meter_entry.config.CopyFrom(p4runtime_pb2.MeterConfig(cir=1000, cburst=100, pir=2000, pburst=200))
    primary.write(upd(U.MODIFY, me))
    assert primary_state(primary).meter_config(METER, 1).pir == 2000
    (got,) = primary.read(me)
    assert got.meter_entry.config.cir == 1000

    re = p4runtime_pb2.Entity()
    re.register_entry.register_id = REG
    re.register_entry.index.index = 3
    re.register_entry.data.bitstring = b"\x00\x00\x01\x00"
    primary.write(upd(U.MODIFY, re))
    assert primary_state(primary).register_read(REG, 3) == 256
    (got,) = primary.read(re)
    assert got.register_entry.data.bitstring == b"\x01\x00"
    all_regs = p4runtime_pb2.Entity()
    all_regs.register_entry.register_id = REG
    assert len(primary.read(all_regs)) == 16
    re.register_entry.data.bitstring = b"\x01\x00\x00\x00\x00"
    assert write_code(primary, upd(U.MODIFY, re)) == code_pb2.OUT_OF_RANGE


def test_read_batch_errors_and_unsupported(primary: Client) -> None:
    good = table_entry(EXACT_T)
    bad = table_entry(12345)
    with pytest.raises(grpc.RpcError) as err:
        primary.read(good, bad)
    assert [c for c, _ in batch_errors(err.value)] == [code_pb2.OK, code_pb2.INVALID_ARGUMENT]
    ext = p4runtime_pb2.Entity()  # ExternEntry: still unsupported (action profiles are now)
    ext.extern_entry.SetInParent()
    with pytest.raises(grpc.RpcError) as err:
        primary.read(ext)
    assert [c for c, _ in batch_errors(err.value)] == [code_pb2.UNIMPLEMENTED]


# -- value sets, PRE, digests ---------------------------------------------------------------------
def test_value_sets(primary: Client) -> None:
    vse = p4runtime_pb2.Entity()
    vse.value_set_entry.value_set_id = PVS
    for v in (b"\x81\x00", b"\x88\xa8"):
        vse.value_set_entry.members.add().match.append(exact(1, v))
    primary.write(upd(U.MODIFY, vse))
    assert primary_state(primary).value_set_members(PVS) == [(0x8100, 0xFFFF), (0x88A8, 0xFFFF)]
    (got,) = primary.read(vse)
    assert len(got.value_set_entry.members) == 2
    vse.value_set_entry.members.add().match.append(exact(1, b"\x81\x00"))
    assert write_code(primary, upd(U.MODIFY, vse)) == code_pb2.ALREADY_EXISTS
    assert write_code(primary, upd(U.INSERT, vse)) == code_pb2.INVALID_ARGUMENT
    big = p4runtime_pb2.Entity()
    big.value_set_entry.value_set_id = PVS
    for k in range(5):
        big.value_set_entry.members.add().match.append(exact(1, bytes([k + 1])))
    assert write_code(primary, upd(U.MODIFY, big)) == code_pb2.RESOURCE_EXHAUSTED
    two = p4runtime_pb2.Entity()
    two.value_set_entry.value_set_id = PVS2
    two.value_set_entry.members.add().match.extend([exact(1, b"\x11"), ternary(2, b"\x22\x00", b"\xff\x00")])
    primary.write(upd(U.MODIFY, two))
    assert primary_state(primary).value_set_members(PVS2) == [(0x112200, 0xFFFF00)]


def test_pre_multicast_and_clone(primary: Client) -> None:
    mg = p4runtime_pb2.Entity()
    g = mg.packet_replication_engine_entry.multicast_group_entry
    g.multicast_group_id = 7
    g.replicas.add(egress_port=1, instance=1)
    g.replicas.add(port=b"\x00\x02", instance=2)
    primary.write(upd(U.INSERT, mg))
    assert primary_state(primary).mcast_group(7) == [(1, 1), (2, 2)]
    assert write_code(primary, upd(U.INSERT, mg)) == code_pb2.ALREADY_EXISTS
    (got,) = primary.read(mg)
    reps = got.packet_replication_engine_entry.multicast_group_entry.replicas
    assert reps[0].egress_port == 1 and reps[1].port == b"\x02"
    g.replicas.add(egress_port=1, instance=1)
    assert write_code(primary, upd(U.MODIFY, mg)) == code_pb2.INVALID_ARGUMENT  # duplicate replica
    primary.write(upd(U.DELETE, mg))
    assert primary_state(primary).mcast_group(7) is None
    assert write_code(primary, upd(U.DELETE, mg)) == code_pb2.NOT_FOUND
    g.multicast_group_id = 0
    assert write_code(primary, upd(U.INSERT, mg)) == code_pb2.INVALID_ARGUMENT

    cs = p4runtime_pb2.Entity()
    s = cs.packet_replication_engine_entry.clone_session_entry
    s.session_id = 5
    s.replicas.add(egress_port=255, instance=0)
    s.class_of_service = 2
    s.packet_length_bytes = 128
    primary.write(upd(U.INSERT, cs))
    assert primary_state(primary).clone_session(5) == ([(255, 0)], 2, 128)
    wildcard = p4runtime_pb2.Entity()
    wildcard.packet_replication_engine_entry.clone_session_entry.SetInParent()
    (got,) = primary.read(wildcard)
    assert got.packet_replication_engine_entry.clone_session_entry.packet_length_bytes == 128


def _digest_config(primary: Client, utype: int, max_timeout_ns: int, max_list_size: int, ack_timeout_ns: int):
    de = p4runtime_pb2.Entity()
    de.digest_entry.digest_id = DIGEST
    de.digest_entry.config.max_timeout_ns = max_timeout_ns
    de.digest_entry.config.max_list_size = max_list_size
    de.digest_entry.config.ack_timeout_ns = ack_timeout_ns
    primary.write(upd(utype, de))
    return de


def test_digest_list_size_dedup_and_ack(primary: Client) -> None:
    state = primary_state(primary)
    state.emit_digest(DIGEST, (1, 1))  # not configured yet: dropped
    _digest_config(primary, U.INSERT, 10**12, 2, 10**12)
    state.emit_digest(DIGEST, (0xAABBCCDDEEFF, 3))
    state.emit_digest(DIGEST, (0xAABBCCDDEEFF, 3))  # duplicate in the buffer
    state.emit_digest(DIGEST, (2, 4))
    dl = primary.recv("digest")
    assert dl.digest_id == DIGEST and len(dl.data) == 2
    first = dl.data[0].struct.members
    assert (first[0].bitstring, first[1].bitstring) == (b"\xaa\xbb\xcc\xdd\xee\xff", b"\x03")
    # Still cached (not acked): the same digests are not sent again.
    state.emit_digest(DIGEST, (0xAABBCCDDEEFF, 3))
    state.emit_digest(DIGEST, (2, 4))
    state.emit_digest(DIGEST, (5, 5))
    state.emit_digest(DIGEST, (6, 6))
    dl2 = primary.recv("digest")
    assert [d.struct.members[0].bitstring for d in dl2.data] == [b"\x05", b"\x06"]
    ack = p4runtime_pb2.StreamMessageRequest()
    ack.digest_ack.digest_id, ack.digest_ack.list_id = DIGEST, dl.list_id
    primary.send(ack)
    wait_for(lambda: (DIGEST, dl.list_id) not in state.digests._cache, what="ack processed")
    state.emit_digest(DIGEST, (0xAABBCCDDEEFF, 3))
    state.emit_digest(DIGEST, (2, 4))
    assert len(primary.recv("digest").data) == 2
    (got,) = primary.read(p4runtime_pb2.Entity(digest_entry=p4runtime_pb2.DigestEntry()))
    assert got.digest_entry.config.max_list_size == 2


def test_digest_timeout_and_config_errors(primary: Client) -> None:
    state = primary_state(primary)
    de = p4runtime_pb2.Entity()
    de.digest_entry.digest_id = DIGEST
    assert write_code(primary, upd(U.MODIFY, de)) == code_pb2.NOT_FOUND
    _digest_config(primary, U.INSERT, 20_000_000, 100, 0)  # 20 ms, big lists, no ack cache
    assert write_code(primary, upd(U.INSERT, de)) == code_pb2.ALREADY_EXISTS
    t0 = time.monotonic()
    state.emit_digest(DIGEST, (9, 9))
    dl = primary.recv("digest")
    assert len(dl.data) == 1 and time.monotonic() - t0 >= 0.015
    primary.write(upd(U.DELETE, de))
    state.emit_digest(DIGEST, (10, 10))
    assert state.digests._buffers.get(DIGEST) is None
    bad = p4runtime_pb2.Entity()
    bad.digest_entry.digest_id = 123
    assert write_code(primary, upd(U.INSERT, bad)) == code_pb2.INVALID_ARGUMENT


# -- packet I/O, idle timeout ---------------------------------------------------------------------
def test_packet_out_in_loopback(clients, device: NullDevice, server: P4RuntimeServer) -> None:
    seen: list[bytes] = []

    def loop(frame: bytes) -> None:
        # Reflect: packet_out egress_port becomes packet_in ingress_port, reason 1.
        seen.append(frame)
        egress = int.from_bytes(frame[:2], "big") >> 7
        hdr = ((egress << 3 | 1) << 4).to_bytes(2, "big")
        device.send_to_cpu(hdr + frame[2:])
    device.on_packet_out = loop
    c = clients((0, 1))
    assert c.status() == code_pb2.OK
    c.set_pipeline()
    po = p4runtime_pb2.StreamMessageRequest()
    po.packet.payload = b"\xde\xad\xbe\xef"
    po.packet.metadata.add(metadata_id=1, value=b"\x01\x05")  # egress_port 261
    po.packet.metadata.add(metadata_id=2, value=b"\x03")
    c.send(po)
    pin = c.recv("packet")
    assert seen == [bytes([261 >> 1, ((261 & 1) << 7) | 3]) + b"\xde\xad\xbe\xef"]
    assert pin.payload == b"\xde\xad\xbe\xef"
    assert [(m.metadata_id, m.value) for m in pin.metadata] == [(1, b"\x01\x05"), (2, b"\x01")]
    # Malformed metadata and backup senders get a StreamError; nothing reaches the device.
    bad = p4runtime_pb2.StreamMessageRequest()
    bad.packet.payload = b"x"
    bad.packet.metadata.add(metadata_id=7, value=b"\x01")
    c.send(bad)
    err = c.recv("error")
    assert err.canonical_code == code_pb2.INVALID_ARGUMENT and err.HasField("packet_out")
    b = clients((0, 0))
    assert b.status() == code_pb2.ALREADY_EXISTS
    b.send(po)
    assert b.recv("error").canonical_code == code_pb2.PERMISSION_DENIED
    assert len(seen) == 1


def test_idle_timeout_notification_and_time_since_last_hit(primary: Client) -> None:
    primary.write(upd(U.INSERT, mac_entry(0x1, 1, idle_timeout_ns=30_000_000)))
    note = primary.recv("idle_timeout_notification", timeout=5)
    (te,) = note.table_entry
    assert te.table_id == EXACT_T and te.idle_timeout_ns == 30_000_000 and note.timestamp > 0
    req = mac_entry(0x1, 1)
    req.table_entry.time_since_last_hit.SetInParent()
    (got,) = primary.read(req)
    assert got.table_entry.time_since_last_hit.elapsed_ns >= 30_000_000
    # A hit refreshes the entry.
    primary_state(primary).lookup(EXACT_T, (0x1, 1), time.monotonic_ns(), 60)
    (got,) = primary.read(req)
    assert got.table_entry.time_since_last_hit.elapsed_ns < 30_000_000
    # After notifying, the timer is reset: the next one comes one TTL later, not at once.
    note2 = primary.recv("idle_timeout_notification", timeout=5)
    assert note2.timestamp - note.timestamp >= 25_000_000
    # Tables without idle support reject time_since_last_hit in reads.
    bad = table_entry(LPM_T)
    bad.table_entry.time_since_last_hit.SetInParent()
    with pytest.raises(grpc.RpcError) as err:
        primary.read(bad)
    assert [c for c, _ in batch_errors(err.value)] == [code_pb2.INVALID_ARGUMENT]


def _server_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("p4rt")]


def test_idle_streams_take_no_thread_and_past_the_cap_are_refused(server: P4RuntimeServer, clients) -> None:
    """Any local user can open StreamChannels without arbitrating. An open stream is no thread
    of the server's: with max_streams of them open, the server runs the threads it ran before,
    refuses the next stream with RESOURCE_EXHAUSTED and answers unary calls meanwhile; a stream
    closed frees its place."""
    probe = clients(arbitrate=False)
    probe.stub.Capabilities(p4runtime_pb2.CapabilitiesRequest(), timeout=5)
    before = _server_threads()
    idle = [clients(arbitrate=False) for _ in range(server.max_streams - 1)]
    extra = clients(arbitrate=False)
    wait_for(lambda: extra.stream_error is not None, what="the stream past the cap refused")
    assert extra.stream_error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert f"{server.max_streams} StreamChannels" in extra.stream_error.details()
    caps = probe.stub.Capabilities(p4runtime_pb2.CapabilitiesRequest(), timeout=5)
    assert caps.p4runtime_api_version
    with pytest.raises(grpc.RpcError) as err:  # a unary call that needs a worker thread
        probe.stub.Read(p4runtime_pb2.ReadRequest(device_id=DEVICE_ID + 1), timeout=5).next()
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert len(_server_threads()) <= len(before) + server._unary_workers
    idle[0].close()

    def accepted() -> Client | None:
        c = clients((0, 5))
        wait_for(lambda: c.inbox.qsize() > 0 or c.stream_error is not None, what="an answer on the stream")
        return c if c.stream_error is None else None

    late = wait_for(accepted, what="a stream taken once one closed")
    assert late.status() == code_pb2.OK


def test_a_stream_not_read_loses_notifications_past_its_backlog(
        server: P4RuntimeServer, device: NullDevice, addr: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A primary that stops reading its stream must not grow the server without bound: past
    STREAM_BACKLOG waiting notifications the newest are dropped and counted; the stream itself
    stays up and a reader that comes back gets what was kept."""
    from p4sim.runtime import server as server_module

    monkeypatch.setattr(server_module, "STREAM_BACKLOG", 100)
    setter = Client(addr, None)  # pushes the pipeline as a backup may not: arbitrates below
    out: queue.Queue = queue.Queue()
    stream = p4runtime_pb2_grpc.P4RuntimeStub(grpc.insecure_channel(addr)).StreamChannel(iter(out.get, None))
    try:
        req = p4runtime_pb2.StreamMessageRequest()
        req.arbitration.device_id = DEVICE_ID
        req.arbitration.election_id.low = 7
        out.put(req)
        assert next(stream).arbitration.status.code == code_pb2.OK
        setter.election_id = (0, 7)
        setter.set_pipeline()
        (session,) = [s for s in server._sessions if s.election_id == 7]
        sent = 5_000
        payload = bytes(1000)  # 5 MB in all: more than gRPC buffers for a reader that waits
        for i in range(sent):
            device.send_to_cpu(bytes([0, 0x10]) + i.to_bytes(4, "big") + payload)
        wait_for(lambda: session.dropped > 0, what="notifications dropped past the backlog")
        assert session.queue.qsize() <= server_module.STREAM_BACKLOG
        got: list[int] = []
        while len(got) + session.dropped < sent:
            msg = next(stream)
            if msg.WhichOneof("update") == "packet":
                got.append(int.from_bytes(msg.packet.payload[:4], "big"))
        assert got == sorted(got) and len(set(got)) == len(got)  # kept in order, none twice
        assert got[0] == 0  # the oldest are kept, the newest dropped
    finally:
        out.put(None)
        stream.cancel()
        setter.close()
