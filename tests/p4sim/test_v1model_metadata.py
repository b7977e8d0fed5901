"""standard_metadata fields, direct counters, meters and assert as simple_switch has them."""

from __future__ import annotations

import struct

from p4sim.runtime.tables import MeterConfig
from tests.p4sim.harness import sim_from_source, v1_program

DECLS = """
header h_t { bit<8> op; bit<8> color; bit<16> len; bit<48> ts; bit<16> port; }
struct headers_t { h_t h; }
struct meta_t { }
"""


def test_metadata_meter_direct_counter_and_assert(tmp_path):
    sim = sim_from_source(tmp_path, v1_program(DECLS, """
        hdr.h.len = (bit<16>)sm.packet_length;
        hdr.h.ts = sm.ingress_global_timestamp;
        hdr.h.port = (bit<16>)sm.ingress_port;
        bit<2> c;
        mtr.execute_meter(32w0, c);
        hdr.h.color = (bit<8>)c;
        t.apply();
        assert(hdr.h.op != 9);
        sm.egress_spec = 1;
    """, ingress_locals="""
        meter(4, MeterType.packets) mtr;
        direct_counter(CounterType.packets) dc;
        action hitme() { }
        table t { key = { hdr.h.op: exact; } actions = { hitme; NoAction; } counters = dc; }
    """))
    outs = [sim.send_one(7, bytes([0]) + bytes(11) + b"xy")[1] for _ in range(3)]
    lens = [struct.unpack("!H", o[2:4])[0] for o in outs]
    stamps = [int.from_bytes(o[4:10], "big") for o in outs]
    assert lens == [14, 14, 14]
    assert stamps == sorted(stamps)
    assert {struct.unpack("!H", o[10:12])[0] for o in outs} == {7}
    assert {o[1] for o in outs} == {0}  # unconfigured meter: GREEN
    mid = sim._find("meters", "I.mtr").preamble.id
    sim.state.meters[mid].set_config(0, MeterConfig(1, 1, 1, 1))
    colors = [sim.send_one(7, bytes(12))[1][1] for _ in range(4)]
    assert colors[0] == 0 and colors[-1] == 2  # GREEN, then RED once both buckets are empty
    # direct counter: only hits count
    sim.insert("I.t", [5], "I.hitme")
    sim.send_one(0, bytes([5]) + bytes(11))
    sim.send_one(0, bytes([6]) + bytes(11))
    entry = sim.state.table(sim.table_id("I.t")).get((5,), 0)
    assert entry.packets == 1
    # a failed assert drops the packet (BMv2 would abort the switch process)
    assert sim.send(0, bytes([9]) + bytes(11)) == []
