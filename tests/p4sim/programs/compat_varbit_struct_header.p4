// A header with a struct field beside its varbit field (p4c-bm2-ss compiles it): extracted with
// a run-time length, its struct's fields read and written, emitted in wire order; a length
// past the varbit's maximum is the parser error HeaderTooShort. Frame: h (s { a, b, c }, len,
// opt: len bytes), t; out on port 1, or port 2 after a parser error.
#include <core.p4>
#include <v1model.p4>

struct inner_t { bit<4> a; bit<4> b; bit<8> c; }
header h_t { inner_t s; bit<8> len; varbit<32> opt; }
header t_t { bit<8> tail; }
struct headers_t { h_t h; t_t t; }
struct meta_t { }

parser P(packet_in pkt, out headers_t hdr, inout meta_t m, inout standard_metadata_t sm) {
    state start {
        pkt.extract(hdr.h, ((bit<32>)pkt.lookahead<bit<24>>()[7:0]) << 3);
        pkt.extract(hdr.t);
        transition accept;
    }
}

control VC(inout headers_t hdr, inout meta_t m) { apply { } }

control I(inout headers_t hdr, inout meta_t m, inout standard_metadata_t sm) {
    apply {
        hdr.h.s.a = hdr.h.s.b;
        hdr.h.s.c = hdr.h.s.c + hdr.h.len;
        sm.egress_spec = sm.parser_error == error.NoError ? 9w1 : 9w2;
    }
}

control E(inout headers_t hdr, inout meta_t m, inout standard_metadata_t sm) { apply { } }
control CC(inout headers_t hdr, inout meta_t m) { apply { } }
control D(packet_out pkt, in headers_t hdr) { apply { pkt.emit(hdr.h); pkt.emit(hdr.t); } }

V1Switch(P(), VC(), I(), E(), CC(), D()) main;
