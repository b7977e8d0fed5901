// Priorities of the entries a program declares (P4_16 spec, "Entry priorities"): without any,
// the first entry in program order wins; given ones win by size, an entry without one taking
// the previous entry's minus priority_delta; largest_priority_wins = false turns the order
// around (smaller wins, entries without one get the previous plus the delta); equal
// priorities keep program order.
#include <core.p4>
#include <v1model.p4>

header sel_t { bit<8> i; bit<8> j; }
header res_t { bit<8> a; bit<8> b; bit<8> c; bit<8> d; }
struct headers_t { sel_t sel; res_t res; }
struct meta_t { }

parser P(packet_in pkt, out headers_t hdr, inout meta_t m, inout standard_metadata_t sm) {
    state start { pkt.extract(hdr.sel); transition accept; }
}

control VC(inout headers_t hdr, inout meta_t m) { apply { } }

control I(inout headers_t hdr, inout meta_t m, inout standard_metadata_t sm) {
    action set_a(bit<8> v) { hdr.res.a = v; }
    action set_b(bit<8> v) { hdr.res.b = v; }
    action set_c(bit<8> v) { hdr.res.c = v; }
    action set_d(bit<8> v) { hdr.res.d = v; }
    table in_order {
        key = { hdr.sel.i : ternary; }
        actions = { set_a; NoAction; }
        const entries = {
            0x03 &&& 0x03 : set_a(3);
            0x01 &&& 0x01 : set_a(2);
            0x00 &&& 0x00 : set_a(1);
        }
        default_action = NoAction();
    }
    table mixed {
        key = { hdr.sel.i : ternary; }
        actions = { set_b; NoAction; }
        @noWarn("entries_out_of_priority_order")
        entries = {
            priority=5: 0xff &&& 0xff : set_b(1);
                        0x01 &&& 0x01 : set_b(2);   // 4
            priority=3: 0x03 &&& 0x03 : set_b(3);
            priority=7: 0x07 &&& 0x07 : set_b(4);
                        0x02 &&& 0x02 : set_b(5);   // 6
        }
        default_action = NoAction();
    }
    table smallest {
        key = { hdr.sel.i : ternary; }
        actions = { set_c; NoAction; }
        largest_priority_wins = false;
        priority_delta = 10;
        @noWarn("entries_out_of_priority_order")
        entries = {
            priority=10: 0x02 &&& 0x02 : set_c(1);
                         0x01 &&& 0x01 : set_c(2);  // 20
            priority=5:  0x03 &&& 0x03 : set_c(3);
                         0x07 &&& 0x07 : set_c(4);  // 15
        }
        default_action = NoAction();
    }
    table ties {
        key = { hdr.sel.i : ternary; }
        actions = { set_d; NoAction; }
        @noWarn("duplicate_priorities")
        entries = {
            priority=5: 0x01 &&& 0x01 : set_d(1);
            priority=5: 0x00 &&& 0x00 : set_d(2);
        }
        default_action = NoAction();
    }
    apply {
        hdr.res.setValid();
        in_order.apply();
        mixed.apply();
        smallest.apply();
        ties.apply();
        sm.egress_spec = 1;
    }
}

control E(inout headers_t hdr, inout meta_t m, inout standard_metadata_t sm) { apply { } }
control CC(inout headers_t hdr, inout meta_t m) { apply { } }
control D(packet_out pkt, in headers_t hdr) { apply { pkt.emit(hdr); } }
V1Switch(P(), VC(), I(), E(), CC(), D()) main;
