// Parser and control types applied directly (no instance declared): each application is an
// instance named after the type in the block that applies it (I.Sub.t and E.Sub.t).
// Frame: h (k, x); out on port 1.
#include <core.p4>
#include <v1model.p4>

header h_t { bit<16> k; bit<32> x; }
struct headers_t { h_t h; }
struct meta_t { }

parser SubParser(packet_in pkt, out h_t h) {
    state start { pkt.extract(h); transition accept; }
}

parser P(packet_in pkt, out headers_t hdr, inout meta_t m, inout standard_metadata_t sm) {
    state start {
        SubParser.apply(pkt, hdr.h);
        transition accept;
    }
}

control VC(inout headers_t hdr, inout meta_t m) { apply { } }

control Sub(inout h_t h) {
    action set(bit<32> v) { h.x = v; }
    table t {
        key = { h.k: exact; }
        actions = { set; NoAction; }
        const entries = { 5: set(0x100); }
        default_action = NoAction();
    }
    apply {
        t.apply();
        h.x = h.x + 1;
    }
}

control I(inout headers_t hdr, inout meta_t m, inout standard_metadata_t sm) {
    apply {
        Sub.apply(hdr.h);
        sm.egress_spec = 1;
    }
}

control E(inout headers_t hdr, inout meta_t m, inout standard_metadata_t sm) {
    apply { Sub.apply(hdr.h); }
}

control CC(inout headers_t hdr, inout meta_t m) { apply { } }
control D(packet_out pkt, in headers_t hdr) { apply { pkt.emit(hdr); } }

V1Switch(P(), VC(), I(), E(), CC(), D()) main;
