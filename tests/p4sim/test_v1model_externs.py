"""v1model externs and the traffic manager as simple_switch runs them: registers, counters,
hashes, checksums (with payload), digests, clone/resubmit/recirculate with field lists,
multicast, drop, truncate and the CPU port."""

from __future__ import annotations

import struct
import zlib

from p4sim.runtime.digests import DigestConfig
from p4sim.runtime.pre import PacketReplicationEngine, ReplicaSpec
from tests.p4sim.harness import sim_from_source, v1_program

DECLS = """
header h_t { bit<8> op; bit<8> a; bit<16> b; bit<32> r1; bit<16> r2; bit<16> r3; bit<16> r4; bit<16> r5; bit<8> it; bit<8> port; }
struct headers_t { h_t h; }
struct learn_t { bit<8> a; bit<16> b; }
struct meta_t { @field_list(1) bit<8> kept; bit<8> lost; }
"""


def frame(op: int, a: int = 0, b: int = 0) -> bytes:
    return struct.pack("!BBH", op, a, b) + bytes(16)


def csum16(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def crc16_arc(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def test_hashes_match_independent_computations(tmp_path):
    sim = sim_from_source(tmp_path, v1_program(DECLS, """
        hash(hdr.h.r1, HashAlgorithm.crc32, 32w0, { hdr.h.a, hdr.h.b }, 32w0xFFFFFFFF);
        hash(hdr.h.r2, HashAlgorithm.crc16, 16w0, { hdr.h.a, hdr.h.b }, 32w65536);
        hash(hdr.h.r3, HashAlgorithm.csum16, 16w0, { hdr.h.a, hdr.h.b }, 32w65536);
        hash(hdr.h.r4, HashAlgorithm.identity, 16w100, { hdr.h.b }, 32w1000);
        hash(hdr.h.r5, HashAlgorithm.xor16, 16w0, { hdr.h.a, hdr.h.b, hdr.h.a }, 32w65536);
        sm.egress_spec = 1;
    """))
    out = sim.send_one(0, frame(0, 0x12, 0x3456))[1]
    r1, r2, r3, r4, r5 = struct.unpack("!IHHHH", out[4:16])
    data = bytes([0x12, 0x34, 0x56])
    assert r1 == zlib.crc32(data) % 0xFFFFFFFF
    assert r2 == crc16_arc(data)
    assert r3 == csum16(data)
    assert r4 == 100 + 0x3456 % 1000
    assert r5 == 0x1234 ^ 0x5612


def test_registers_counters_random_and_log(tmp_path, caplog):
    sim = sim_from_source(tmp_path, v1_program(DECLS, """
        bit<16> cur;
        regs.read(cur, (bit<32>)hdr.h.a);
        regs.write((bit<32>)hdr.h.a, cur + hdr.h.b);
        regs.read(hdr.h.r2, (bit<32>)hdr.h.a);
        pkts.count((bit<32>)hdr.h.a);
        bit<8> rnd;
        random(rnd, 8w5, 8w9);
        hdr.h.it = rnd;
        log_msg("a={} b={}", { hdr.h.a, hdr.h.b });
        sm.egress_spec = 1;
    """, ingress_locals="register<bit<16>>(8) regs; counter(8, CounterType.packets_and_bytes) pkts;"))
    caplog.set_level("INFO", logger="p4sim.program")
    for _ in range(3):
        out = sim.send_one(0, frame(0, 3, 0x0101))[1]
        assert 5 <= out[16] <= 9
    assert struct.unpack("!H", out[8:10])[0] == 0x0303
    assert sim.register("I.regs", 3) == 0x0303
    assert sim.counter("I.pkts", 3) == (3, 3 * 20)
    assert "a=3 b=257" in caplog.text


def test_checksums_verify_and_update_with_payload(tmp_path):
    sim = sim_from_source(tmp_path, v1_program(DECLS, """
        hdr.h.r5 = (bit<16>)sm.checksum_error;
        sm.egress_spec = 1;
    """, verify="verify_checksum(true, { hdr.h.a, hdr.h.b }, hdr.h.r2, HashAlgorithm.csum16);",
        compute="update_checksum_with_payload(hdr.h.op == 1, { hdr.h.a, hdr.h.b }, hdr.h.r3, HashAlgorithm.csum16);"))
    good = csum16(bytes([0x12, 0x34, 0x56]))
    pkt = bytearray(frame(1, 0x12, 0x3456))
    pkt[8:10] = good.to_bytes(2, "big")
    out = sim.send_one(0, bytes(pkt) + b"PAYLOAD!")[1]
    assert struct.unpack("!H", out[14:16])[0] == 0  # checksum_error = 0
    # the _with_payload variant covers the fields and then the payload after the headers
    assert struct.unpack("!H", out[10:12])[0] == csum16(bytes([0x12, 0x34, 0x56]) + b"PAYLOAD!")
    pkt[8:10] = (good ^ 1).to_bytes(2, "big")
    out = sim.send_one(0, bytes(pkt))[1]
    assert struct.unpack("!H", out[14:16])[0] == 1


def test_digest_message_contents(tmp_path):
    sim = sim_from_source(tmp_path, v1_program(DECLS, """
        digest<learn_t>(1, { hdr.h.a, hdr.h.b });
        hdr.h.a = 0x77;   // a list argument is copied at the call (p4c makes a temporary)
        sm.egress_spec = 1;
    """))
    did = sim.p4info.digests[0].preamble.id
    sim.state.digests.set_config(did, DigestConfig(0, 1, 0))
    sim.send_one(0, frame(0, 5, 0x0607))
    lists = [m.digest for m in sim.messages if m.HasField("digest")]
    assert len(lists) == 1 and lists[0].digest_id == did
    members = lists[0].data[0].struct.members
    assert [m.bitstring for m in members] == [b"\x05", b"\x06\x07"]


def _session(sim, sid: int, replicas: list[tuple[int, int]], trunc: int = 0) -> None:
    sim.state.pre.sessions[sid] = PacketReplicationEngine.make_session(
        sid, tuple(ReplicaSpec(p, i) for p, i in replicas), 0, trunc)


def _group(sim, gid: int, replicas: list[tuple[int, int]]) -> None:
    sim.state.pre.groups[gid] = PacketReplicationEngine.make_group(
        gid, tuple(ReplicaSpec(p, i) for p, i in replicas), b"")


ARCH_INGRESS = """
    hdr.h.it = hdr.h.it + 1;
    if (sm.instance_type == 0 && hdr.h.op == 1) {
        m.kept = 0x4B; m.lost = 0x4C;
        clone_preserving_field_list(CloneType.I2E, 5, 1);
        sm.egress_spec = 2;
        hdr.h.a = 0xAA;
    } else if (hdr.h.op == 2 && sm.instance_type == 0) {
        m.kept = 0x11; m.lost = 0x22;
        resubmit_preserving_field_list(1);
    } else if (hdr.h.op == 2) {
        hdr.h.b = m.kept ++ m.lost;
        hdr.h.r2 = (bit<16>)sm.instance_type;
        sm.egress_spec = 3;
    } else if (hdr.h.op == 3) {
        sm.mcast_grp = 7;
    } else if (hdr.h.op == 4) {
        sm.egress_spec = 4;
        mark_to_drop(sm);
    } else if (hdr.h.op == 5) {
        sm.egress_spec = 1;
        truncate(6);
    } else if (hdr.h.op == 6) {
        sm.egress_spec = 9;
        if (sm.instance_type == 4) { hdr.h.b = m.kept ++ m.lost; sm.egress_spec = 6; }
    } else {
        sm.egress_spec = 1;
    }
"""

ARCH_EGRESS = """
    hdr.h.r1 = (bit<16>)sm.instance_type ++ sm.egress_rid;
    hdr.h.port = (bit<8>)sm.egress_port;
    if (sm.instance_type == 1) { hdr.h.r3 = m.kept ++ m.lost; }
    if (hdr.h.op == 7) { mark_to_drop(sm); }
    if (hdr.h.op == 8) { clone_preserving_field_list(CloneType.E2E, 6, 1); m.kept = 0x99; hdr.h.a = 0xE2; }
    if (hdr.h.op == 6 && sm.instance_type == 0 && sm.egress_port == 9) {
        m.kept = 0x33; m.lost = 0x44;
        recirculate_preserving_field_list(1);
    }
"""


def arch_sim(tmp_path):
    return sim_from_source(tmp_path, v1_program(DECLS, ARCH_INGRESS, egress=ARCH_EGRESS))


def fields(out: bytes) -> dict[str, int]:
    op, a, b, r1, r2, r3, r4, r5, it, port = struct.unpack("!BBHIHHHHBB", out[:18])
    return {"op": op, "a": a, "b": b, "itype": r1 >> 16, "rid": r1 & 0xFFFF, "r2": r2, "r3": r3, "it": it, "port": port}


def test_i2e_clone_reparses_original_and_preserves_field_list(tmp_path):
    sim = arch_sim(tmp_path)
    _session(sim, 5, [(8, 3)])
    outs = sim.send(0, frame(1, 0x01))
    assert sorted(p for p, _ in outs) == [2, 8]
    by_port = {p: fields(o) for p, o in outs}
    orig, clone = by_port[2], by_port[8]
    assert (orig["a"], orig["itype"], orig["it"]) == (0xAA, 0, 1)
    # the clone carries the packet as it arrived (parsed again), ingress changes are gone
    assert (clone["a"], clone["itype"], clone["rid"], clone["it"]) == (0x01, 1, 3, 0)
    assert clone["r3"] == 0x4B00  # kept is preserved, lost is reset


def test_i2e_copies_leave_before_the_original(tmp_path):
    """BMv2 queues an I2E clone's copies before the original packet: on a port both go to (a
    copy to the controller of a packet sent there too), the copy leaves first."""
    sim = arch_sim(tmp_path)
    _session(sim, 5, [(2, 1)])
    outs = sim.send(0, frame(1, 0x01))
    assert [(p, fields(o)["itype"]) for p, o in outs] == [(2, 1), (2, 0)]
    # an E2E copy is a new pass through egress (which here clones again): the original leaves first
    _session(sim, 6, [(1, 0)])
    outs = sim.send(0, frame(8, 0x01))
    assert [(p, fields(o)["itype"]) for p, o in outs][:2] == [(1, 0), (1, 2)]


def test_clone_to_unconfigured_session_does_nothing(tmp_path):
    sim = arch_sim(tmp_path)
    assert [p for p, _ in sim.send(0, frame(1))] == [2]


def test_resubmit_preserves_field_list_and_resets_the_rest(tmp_path):
    sim = arch_sim(tmp_path)
    port, out = sim.send_one(0, frame(2))
    f = fields(out)
    assert port == 3
    # ingress ran twice on the original packet; in egress instance_type is NORMAL again
    assert (f["b"], f["r2"], f["it"], f["itype"]) == (0x1100, 6, 1, 0)


def test_multicast_replicas_with_rid(tmp_path):
    sim = arch_sim(tmp_path)
    assert sim.send(0, frame(3)) == []  # group not programmed: dropped
    _group(sim, 7, [(1, 10), (2, 20), (5, 30)])
    outs = sim.send(0, frame(3))
    got = [(p, fields(o)["itype"], fields(o)["rid"], fields(o)["port"]) for p, o in outs]
    assert got == [(1, 5, 10, 1), (2, 5, 20, 2), (5, 5, 30, 5)]


def test_mark_to_drop_in_ingress_and_egress(tmp_path):
    sim = arch_sim(tmp_path)
    assert sim.send(0, frame(4)) == []
    assert sim.send(0, frame(7)) == []


def test_truncate(tmp_path):
    sim = arch_sim(tmp_path)
    port, out = sim.send_one(0, frame(5) + b"payload")
    assert out == frame(5)[:6]


def test_e2e_clone_takes_egress_headers(tmp_path):
    sim = arch_sim(tmp_path)
    _session(sim, 6, [(11, 0)])
    outs = dict(sim.send(0, frame(8, 0x01)))
    assert fields(outs[1])["a"] == 0xE2
    clone = fields(outs[11])
    # headers as egress left them; the clone's egress ran again on them (instance_type 2)
    assert (clone["a"], clone["itype"], clone["port"]) == (0xE2, 2, 11)


def test_recirculate_preserves_field_list(tmp_path):
    sim = arch_sim(tmp_path)
    port, out = sim.send_one(0, frame(6))
    f = fields(out)
    assert port == 6
    assert (f["b"], f["it"]) == (0x3300, 2)


def test_frames_to_the_cpu_port_become_packet_ins(tmp_path):
    decls = """
@controller_header("packet_in") header packet_in_t { bit<9> ingress_port; bit<7> pad; }
@controller_header("packet_out") header packet_out_t { bit<9> egress_port; bit<7> pad; }
""" + DECLS.replace("struct headers_t { h_t h; }", "struct headers_t { packet_in_t pin; packet_out_t pout; h_t h; }")
    body = v1_program(decls, """
        if (hdr.pout.isValid()) {
            sm.egress_spec = hdr.pout.egress_port;
            hdr.pout.setInvalid();
        } else {
            sm.egress_spec = 255;
            hdr.pin.setValid();
            hdr.pin.ingress_port = sm.ingress_port;
        }
    """, parser="""
        state start { transition select(sm.ingress_port) { 255: po; default: ph; } }
        state po { pkt.extract(hdr.pout); transition ph; }
        state ph { pkt.extract(hdr.h); transition accept; }
    """, deparser="pkt.emit(hdr.pin); pkt.emit(hdr.h);")
    sim = sim_from_source(tmp_path, body)
    assert sim.send(3, frame(0)) == []
    assert sim.to_cpu == [b"\x01\x80" + frame(0)]
    # a packet-out: its header says where to send it
    assert sim.send(255, b"\x02\x00" + frame(0)) == [(4, frame(0))]
