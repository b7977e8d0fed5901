// Actions in a table's action list with their directional parameters bound there; the
// control plane gives only the directionless ones. Frame: h (k, x, e); out on port 1.
#include <core.p4>
#include <v1model.p4>

header h_t { bit<16> k; bit<32> x; bit<8> e; }
struct headers_t { h_t h; }
struct meta_t { }

parser P(packet_in pkt, out headers_t hdr, inout meta_t m, inout standard_metadata_t sm) {
    state start { pkt.extract(hdr.h); transition accept; }
}

control VC(inout headers_t hdr, inout meta_t m) { apply { } }

control I(inout headers_t hdr, inout meta_t m, inout standard_metadata_t sm) {
    // x = (x + 1) + extra: the bound argument is read when the action runs
    action add(in bit<32> v, bit<32> extra) { hdr.h.x = v + extra; }
    // e += by, through an inout argument copied in and out
    action bump(inout bit<8> c, bit<8> by) { c = c + by; }
    table t {
        key = { hdr.h.k: exact; }
        actions = { add(hdr.h.x + 1); bump(hdr.h.e); }
        default_action = bump(hdr.h.e, 7);
        const entries = {
            1: add(hdr.h.x + 1, 0x100);
            2: bump(hdr.h.e, 0x10);
        }
    }
    apply {
        t.apply();
        sm.egress_spec = 1;
    }
}

control E(inout headers_t hdr, inout meta_t m, inout standard_metadata_t sm) { apply { } }
control CC(inout headers_t hdr, inout meta_t m) { apply { } }
control D(packet_out pkt, in headers_t hdr) { apply { pkt.emit(hdr); } }

V1Switch(P(), VC(), I(), E(), CC(), D()) main;
