// == and != on headers, header unions, header stacks and structs: two headers are equal when
// both are invalid, or both valid with equal fields (the fields of an invalid header do not
// count); unions, stacks and structs member by member. Also against list and structure
// expressions, which take the type of the other side.
#include <core.p4>
#include <v1model.p4>

header sel_t { bit<8> i; bit<8> j; }
header a_t { bit<8> x; bit<8> y; }
header b_t { bit<16> z; }
header_union u_t { a_t a; b_t b; }
struct inner_t { bit<8> v; a_t h; a_t[2] s; }
struct headers_t { sel_t sel; a_t[2] s1; a_t[2] s2; u_t u1; u_t u2; a_t h1; a_t h2; a_t res; }
struct meta_t { inner_t m1; inner_t m2; }

parser P(packet_in pkt, out headers_t hdr, inout meta_t m, inout standard_metadata_t sm) {
    state start { pkt.extract(hdr.sel); transition accept; }
}

control VC(inout headers_t hdr, inout meta_t m) { apply { } }

control I(inout headers_t hdr, inout meta_t m, inout standard_metadata_t sm) {
    apply {
        // sel.i and sel.j bits say what to change before comparing
        if (hdr.sel.i[0:0] == 1) { hdr.s1[0].setValid(); hdr.s1[0].x = 3; }
        if (hdr.sel.i[1:1] == 1) { hdr.s2[0].setValid(); hdr.s2[0].x = 3; }
        if (hdr.sel.i[2:2] == 1) { hdr.s2[0].x = 4; }
        if (hdr.sel.i[3:3] == 1) { hdr.s1[1].x = 9; }
        if (hdr.sel.i[4:4] == 1) { hdr.u1.a.setValid(); hdr.u1.a.x = 1; }
        if (hdr.sel.i[5:5] == 1) { hdr.u2.a.setValid(); hdr.u2.a.x = 1; }
        if (hdr.sel.i[6:6] == 1) { hdr.u2.b.setValid(); }
        if (hdr.sel.i[7:7] == 1) { hdr.h1.setValid(); }
        if (hdr.sel.j[0:0] == 1) { m.m1.s[0].setValid(); }
        if (hdr.sel.j[1:1] == 1) { m.m1.v = 1; }
        if (hdr.sel.j[2:2] == 1) { m.m2.h.x = 1; }
        if (hdr.sel.j[3:3] == 1) { hdr.h2.setValid(); }
        if (hdr.sel.j[4:4] == 1) { hdr.h1.y = 5; }
        if (hdr.sel.j[5:5] == 1) { hdr.h2.x = 2; }
        bit<8> r = 0;
        if (hdr.s1 == hdr.s2) { r = r | 0x01; }
        if (hdr.s1 != hdr.s2) { r = r | 0x02; }
        if (hdr.u1 == hdr.u2) { r = r | 0x04; }
        if (hdr.u1 != hdr.u2) { r = r | 0x08; }
        if (m.m1 == m.m2) { r = r | 0x10; }
        if (m.m1 != m.m2) { r = r | 0x20; }
        if (hdr.h1 == hdr.h2) { r = r | 0x40; }
        if (hdr.h1 != hdr.h2) { r = r | 0x80; }
        bit<8> l = 0;
        if (hdr.h2 == { 8w2, 8w0 }) { l = l | 0x01; }
        if ({ 8w0, 8w0 } == hdr.h1) { l = l | 0x02; }
        if (hdr.h1 == (a_t){#}) { l = l | 0x04; }
        if ({ 8w0, 8w0 } != hdr.h2) { l = l | 0x08; }
        if ({ hdr.sel.i, hdr.sel.j } == { 8w0, 8w0x28 }) { l = l | 0x10; }
        hdr.res.setValid();
        hdr.res.x = r;
        hdr.res.y = l;
        sm.egress_spec = 1;
    }
}

control E(inout headers_t hdr, inout meta_t m, inout standard_metadata_t sm) { apply { } }
control CC(inout headers_t hdr, inout meta_t m) { apply { } }
control D(packet_out pkt, in headers_t hdr) { apply { pkt.emit(hdr.sel); pkt.emit(hdr.res); } }
V1Switch(P(), VC(), I(), E(), CC(), D()) main;
