// Errors declared before core.p4 is included come first: p4c numbers every error in
// declaration order (Rejected is 0 and NoError 1 here) and BMv2 looks up NoError,
// PacketTooShort... by name. Frame: h (kind, mark), out on port 1 with mark telling
// the parser error ingress saw.
error { Rejected }
#include <core.p4>
#include <v1model.p4>

header h_t { bit<8> kind; bit<8> mark; }
header big_t { bit<800> blob; }
struct headers_t { h_t h; big_t big; }
struct meta_t { }

parser P(packet_in pkt, out headers_t hdr, inout meta_t m, inout standard_metadata_t sm) {
    state start {
        pkt.extract(hdr.h);
        transition select(hdr.h.kind) {
            1: refuse;
            2: too_short;
            default: accept;
        }
    }
    state refuse { verify(false, error.Rejected); transition accept; }
    state too_short { pkt.extract(hdr.big); transition accept; }
}

control VC(inout headers_t hdr, inout meta_t m) { apply { } }

control I(inout headers_t hdr, inout meta_t m, inout standard_metadata_t sm) {
    apply {
        if (sm.parser_error == error.NoError) {
            hdr.h.mark = 0xA0;
        } else if (sm.parser_error == error.Rejected) {
            hdr.h.mark = 0xB0;
        } else if (sm.parser_error == error.PacketTooShort) {
            hdr.h.mark = 0xC0;
        } else {
            hdr.h.mark = 0xD0;
        }
        sm.egress_spec = 1;
    }
}

control E(inout headers_t hdr, inout meta_t m, inout standard_metadata_t sm) { apply { } }
control CC(inout headers_t hdr, inout meta_t m) { apply { } }
control D(packet_out pkt, in headers_t hdr) { apply { pkt.emit(hdr.h); } }

V1Switch(P(), VC(), I(), E(), CC(), D()) main;
