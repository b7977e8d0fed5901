// p4sim test program: a const table with a range key.
//
// Written for p4sim's P4Info tests. It declares the same control-plane objects as p4c's
// sample of the same name (a const, range-matched table with a non-const default action),
// so that the P4Info p4c generated for that sample (table-entries-range-bmv2.p4.p4info.txtpb,
// next to this file) is what p4sim must produce for this program. The entries are our own:
// P4Info records only that the table has some.

#include <core.p4>
#include <v1model.p4>

// One fixed-size record; `r` is the byte the table classifies.
header rec_h {
    bit<16> kind;
    bit<8>  r;
    bit<8>  pad;
}

struct hdrs_t {
    rec_h h;
}

struct no_meta_t { }

parser RecParser(packet_in pkt, out hdrs_t h, inout no_meta_t m, inout standard_metadata_t smeta) {
    state start {
        pkt.extract(h.h);
        transition accept;
    }
}

control ingress(inout hdrs_t h, inout no_meta_t m, inout standard_metadata_t smeta) {
    // everything outside the listed ranges goes to port 0
    action a() {
        smeta.egress_spec = 9w0;
    }

    action a_with_control_params(bit<9> x) {
        smeta.egress_spec = x;
    }

    table t_range {
        key = { h.h.r: range; }
        actions = { a; a_with_control_params; }
        const entries = {
            0x00 .. 0x0f : a_with_control_params(1);
            0x10 .. 0x7f : a_with_control_params(2);
            0x80         : a_with_control_params(3);
            0xf0 .. 0xfe : a_with_control_params(4);
        }
        default_action = a();
    }

    apply {
        t_range.apply();
    }
}

control RecEgress(inout hdrs_t h, inout no_meta_t m, inout standard_metadata_t smeta) {
    apply { }
}

control RecNoChecksum(inout hdrs_t h, inout no_meta_t m) {
    apply { }
}

control RecDeparser(packet_out pkt, in hdrs_t h) {
    apply {
        pkt.emit(h.h);
    }
}

V1Switch(RecParser(), RecNoChecksum(), ingress(), RecEgress(), RecNoChecksum(), RecDeparser()) main;
