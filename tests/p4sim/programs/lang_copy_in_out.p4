// Copy-in/copy-out: an out or inout argument is a copy while the callee runs and is written back
// when it returns, in parameter order, even when two arguments name the same place or the
// action also reaches that place through the control's own parameters. An out argument starts
// uninitialized: the headers in it invalid.
#include <core.p4>
#include <v1model.p4>

header sel_t { bit<8> i; bit<8> j; }
header a_t { bit<8> x; bit<8> y; }
struct inner_t { bit<8> v; a_t h; }
struct headers_t { sel_t sel; a_t h; a_t h2; a_t[2] st; }
struct meta_t { inner_t s; }

bit<8> read_then_write(in a_t a, inout a_t b) {
    b.x = 9;
    return a.x;
}

parser P(packet_in pkt, out headers_t hdr, inout meta_t m, inout standard_metadata_t sm) {
    state start { pkt.extract(hdr.sel); transition accept; }
}

control VC(inout headers_t hdr, inout meta_t m) { apply { } }

control I(inout headers_t hdr, inout meta_t m, inout standard_metadata_t sm) {
    action two(inout a_t a, inout a_t b) {
        a.x = 10;
        b.y = a.x + 1;
        hdr.h2.x = a.y;
        hdr.h2.y = b.x;
    }
    action global(inout a_t a) {
        a.x = 20;
        hdr.h.y = 21;
        hdr.h2.x = hdr.h.x;
        hdr.h2.y = a.y;
    }
    action out_header(out a_t a) {
        hdr.h2.x = (bit<8>)(bit<1>)hdr.h.isValid();
        hdr.h2.y = hdr.h.x;
    }
    action scalars(inout bit<8> a, inout bit<8> b) { a = 30; b = 31; }
    action scalar_global(inout bit<8> a) {
        a = 40;
        hdr.h.x = 41;
        hdr.h2.x = a;
        hdr.h2.y = hdr.h.x;
    }
    action in_struct(inout inner_t s) {
        s.h.x = 50;
        m.s.h.y = 51;
        hdr.h.x = s.h.y;
        hdr.h.y = m.s.h.x;
    }
    action nested(inout a_t a) { global(a); }
    action halves(inout bit<4> a, inout bit<4> b) { a = b; b = 0xF; }
    action slice_global(inout bit<4> a) { a = 5; hdr.h.x = 0xA0; }
    action out_struct(out inner_t s) { s.v = 2; }
    action out_stack(out a_t[2] st) { st[1].setValid(); st[1].x = 7; }
    apply {
        hdr.h.setValid();
        hdr.h.x = 1;
        hdr.h.y = 2;
        hdr.h2.setValid();
        if (hdr.sel.i == 0) {
            two(hdr.h, hdr.h);
        } else if (hdr.sel.i == 1) {
            global(hdr.h);
        } else if (hdr.sel.i == 2) {
            out_header(hdr.h);
        } else if (hdr.sel.i == 3) {
            scalars(hdr.h.x, hdr.h.x);
        } else if (hdr.sel.i == 4) {
            scalar_global(hdr.h.x);
        } else if (hdr.sel.i == 5) {
            m.s.h.setValid();
            m.s.h.x = 7;
            in_struct(m.s);
            hdr.h2 = m.s.h;
        } else if (hdr.sel.i == 6) {
            hdr.h2.x = read_then_write(hdr.h, hdr.h);
        } else if (hdr.sel.i == 7) {
            nested(hdr.h);
        } else if (hdr.sel.i == 8) {
            halves(hdr.h.x[7:4], hdr.h.x[3:0]);
        } else if (hdr.sel.i == 9) {
            slice_global(hdr.h.x[3:0]);
        } else if (hdr.sel.i == 10) {
            m.s.h.setValid();
            m.s.h.x = 5;
            out_struct(m.s);
            hdr.h2.x = (bit<8>)(bit<1>)m.s.h.isValid();
            hdr.h2.y = m.s.v;
        } else if (hdr.sel.i == 11) {
            hdr.st[0].setValid();
            hdr.st[0].x = 6;
            out_stack(hdr.st);
        }
        sm.egress_spec = 1;
    }
}

control E(inout headers_t hdr, inout meta_t m, inout standard_metadata_t sm) { apply { } }
control CC(inout headers_t hdr, inout meta_t m) { apply { } }
control D(packet_out pkt, in headers_t hdr) { apply { pkt.emit(hdr); } }
V1Switch(P(), VC(), I(), E(), CC(), D()) main;
