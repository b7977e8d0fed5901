// @hidden tables and actions: left out of P4Info (no control plane reaches them), run by
// BMv2 all the same with their const entries and default action. Frame: h (k, v), out on
// port 1 with v set by whichever action ran.
#include <core.p4>
#include <v1model.p4>

header h_t { bit<8> k; bit<8> v; }
struct headers_t { h_t h; }
struct meta_t { }

parser P(packet_in pkt, out headers_t hdr, inout meta_t m, inout standard_metadata_t sm) {
    state start { pkt.extract(hdr.h); transition accept; }
}

control VC(inout headers_t hdr, inout meta_t m) { apply { } }

control I(inout headers_t hdr, inout meta_t m, inout standard_metadata_t sm) {
    @hidden action set_v(bit<8> x) { hdr.h.v = x; }
    @hidden action keep() { }
    @hidden table by_k {
        key = { hdr.h.k: exact; }
        actions = { set_v; keep; }
        const entries = { 1: set_v(0x11); 2: set_v(0x22); 9: keep(); }
        const default_action = keep();
    }
    @hidden table fallback {
        key = { hdr.h.k: ternary; }
        actions = { set_v; }
        default_action = set_v(0xEE);
    }
    apply {
        if (!by_k.apply().hit) {
            fallback.apply();
        }
        sm.egress_spec = 1;
    }
}

control E(inout headers_t hdr, inout meta_t m, inout standard_metadata_t sm) { apply { } }
control CC(inout headers_t hdr, inout meta_t m) { apply { } }
control D(packet_out pkt, in headers_t hdr) { apply { pkt.emit(hdr); } }

V1Switch(P(), VC(), I(), E(), CC(), D()) main;
