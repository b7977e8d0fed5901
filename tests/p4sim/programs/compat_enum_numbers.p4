// A serializable enum's value stands for its number wherever its underlying type is wanted
// (P4_16 "Implicit casts"): as an action argument, beside a bit<8> in ==, >, +, ^, |+|,
// shifted, concatenated, and as both branches of ?:. Frame: h (op, a, b, n, wide); out on port 1.
#include <core.p4>
#include <v1model.p4>

enum bit<8> Op { ADD = 1, XOR = 2, DEC = 3 }
header h_t { bit<8> op; bit<8> a; bit<8> b; bit<8> n; bit<16> wide; }
struct headers_t { h_t h; }
struct meta_t { }

parser P(packet_in pkt, out headers_t hdr, inout meta_t m, inout standard_metadata_t sm) {
    state start { pkt.extract(hdr.h); transition accept; }
}

control VC(inout headers_t hdr, inout meta_t m) { apply { } }

control I(inout headers_t hdr, inout meta_t m, inout standard_metadata_t sm) {
    action put(bit<8> v) { hdr.h.b = v; }
    table pick {
        key = { hdr.h.op: exact; }
        actions = { put; }
        const entries = { 1: put(Op.XOR); }
        default_action = put(Op.DEC);
    }
    apply {
        pick.apply();
        if (hdr.h.op == Op.ADD) {
            hdr.h.a = hdr.h.a + Op.XOR;
        } else if (Op.XOR == hdr.h.op) {
            hdr.h.a = hdr.h.a ^ Op.DEC;
        } else if (hdr.h.op > Op.DEC) {
            Op big = Op.DEC;
            hdr.h.a = hdr.h.a |+| (big << 6);
        }
        hdr.h.wide = Op.ADD ++ hdr.h.op;
        bit<8> n = hdr.h.op == 0 ? Op.ADD : Op.DEC;
        hdr.h.n = n;
        sm.egress_spec = 1;
    }
}

control E(inout headers_t hdr, inout meta_t m, inout standard_metadata_t sm) { apply { } }
control CC(inout headers_t hdr, inout meta_t m) { apply { } }
control D(packet_out pkt, in headers_t hdr) { apply { pkt.emit(hdr); } }

V1Switch(P(), VC(), I(), E(), CC(), D()) main;
