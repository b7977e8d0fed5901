// p4sim test program: a parser value set whose element type is a struct.
//
// Written for p4sim's P4Info tests. It declares the same control-plane objects as p4c's
// sample of the same name (a four-entry value set over a one-field struct, and a table keyed
// on a header-stack element in the metadata), so that the P4Info p4c generated for that
// sample (pvs-struct-1-bmv2.p4.p4info.txtpb, next to this file) is what p4sim must produce
// for this program.

#include <core.p4>
#include <v1model.p4>

header tag_h {
    bit<32> da;
    bit<32> db;
}

struct pkt_t {
    tag_h tag;
}

// the value set's element: its one field is the match field P4Info names
struct tag_key_t {
    bit<32> field;
}

struct meta_t {
    tag_h[2] data;
}

parser MyParser(packet_in pkt, out pkt_t p, inout meta_t meta, inout standard_metadata_t std) {
    value_set<tag_key_t>(4) pvs;

    state start {
        pkt.extract(p.tag);
        transition select(p.tag.da) {
            pvs: known;
            default: accept;
        }
    }

    state known {
        meta.data[0] = p.tag;
        transition accept;
    }
}

control MyIngress(inout pkt_t p, inout meta_t meta, inout standard_metadata_t std) {
    action set_data() {
        std.egress_spec = 9w1;
    }

    table t {
        key = { meta.data[0].da: exact; }
        actions = { set_data; }
    }

    apply {
        if (meta.data[0].isValid()) {
            t.apply();
        }
    }
}

control TagPass(inout pkt_t p, inout meta_t meta, inout standard_metadata_t std) {
    apply { }
}

control TagChecksum(inout pkt_t p, inout meta_t meta) {
    apply { }
}

control TagDeparser(packet_out pkt, in pkt_t p) {
    apply {
        pkt.emit(p.tag);
    }
}

V1Switch(MyParser(), TagChecksum(), MyIngress(), TagPass(), TagChecksum(), TagDeparser()) main;
