// Slices on the left of an assignment write only their bits: header fields, metadata, a slice
// of a slice, a field of a stack element with a run-time index, a slice as an out argument.
// (p4c-bm2-ss refuses a slice of a signed value on the left; so does p4sim.)
#include <core.p4>
#include <v1model.p4>

header sel_t { bit<8> i; bit<8> j; }
header a_t { bit<8> x; bit<8> y; }
header w_t { int<8> s; bit<4> n; bit<4> p; bit<16> q; }
struct headers_t { sel_t sel; a_t h; w_t w; a_t[2] st; }
struct meta_t { bit<16> q; }

parser P(packet_in pkt, out headers_t hdr, inout meta_t m, inout standard_metadata_t sm) {
    state start { pkt.extract(hdr.sel); transition accept; }
}

control VC(inout headers_t hdr, inout meta_t m) { apply { } }

control I(inout headers_t hdr, inout meta_t m, inout standard_metadata_t sm) {
    action low_bits(out bit<3> v) { v = 5; }
    apply {
        hdr.h.setValid();
        hdr.h.x = hdr.sel.i;
        hdr.h.y = hdr.sel.j;
        hdr.h.x[3:0] = hdr.sel.j[7:4];
        hdr.h.y[7:1] = 7w0x7f;
        hdr.w.setValid();
        hdr.w.s = (int<8>)hdr.sel.i;
        hdr.w.n[2:1] = hdr.sel.i[1:0];
        hdr.w.q = 0xFFFF;
        hdr.w.q[11:4][3:0] = 0;
        m.q[15:8] = hdr.sel.j;
        m.q[7:0] = hdr.sel.i;
        low_bits(hdr.w.p[2:0]);
        hdr.w.q[15:12] = (bit<4>)m.q[3:0];
        hdr.st[0].setValid();
        hdr.st[1].setValid();
        hdr.st[hdr.sel.i[0:0]].x[7:4] = 0xA;
        sm.egress_spec = 1;
    }
}

control E(inout headers_t hdr, inout meta_t m, inout standard_metadata_t sm) { apply { } }
control CC(inout headers_t hdr, inout meta_t m) { apply { } }
control D(packet_out pkt, in headers_t hdr) { apply { pkt.emit(hdr); } }
V1Switch(P(), VC(), I(), E(), CC(), D()) main;
