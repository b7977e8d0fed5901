// Header stacks: the parser's next, last and lastIndex, up to and past the end of the stack
// (lastIndex before any extract, StackOutOfBounds on one element too many), and elements with a
// run-time index in a control: field reads and writes, setValid(), the whole element read.
#include <core.p4>
#include <v1model.p4>

header sel_t { bit<8> i; bit<8> j; }   // i: an index; j: how many elements the packet has
header a_t { bit<8> x; bit<8> y; }
header r_t { bit<8> n; bit<8> li; bit<8> lx; bit<8> e; }
struct headers_t { sel_t sel; r_t r; a_t[3] st; a_t h; a_t h2; }
struct meta_t { bit<8> n; bit<8> li; bit<8> lx; }

parser P(packet_in pkt, out headers_t hdr, inout meta_t m, inout standard_metadata_t sm) {
    state start {
        pkt.extract(hdr.sel);
        m.n = hdr.sel.j;
        transition select(hdr.sel.j) {
            0: none;
            default: more;
        }
    }
    state none {
        m.li = hdr.st.lastIndex[7:0];
        transition accept;
    }
    state more {
        pkt.extract(hdr.st.next);
        m.li = hdr.st.lastIndex[7:0];
        m.lx = hdr.st.last.x;
        m.n = m.n - 1;
        transition select(m.n) {
            0: accept;
            default: more;
        }
    }
}

control VC(inout headers_t hdr, inout meta_t m) { apply { } }

control I(inout headers_t hdr, inout meta_t m, inout standard_metadata_t sm) {
    apply {
        hdr.r.setValid();
        hdr.r.n = m.n;
        hdr.r.li = m.li;
        hdr.r.lx = m.lx;
        if (sm.parser_error == error.StackOutOfBounds) {
            hdr.r.e = 1;
        } else if (sm.parser_error != error.NoError) {
            hdr.r.e = 2;
        }
        hdr.h.setValid();
        hdr.h.x = hdr.st[hdr.sel.i].x;
        hdr.st[hdr.sel.i].y = 0x55;
        hdr.st[hdr.sel.i].setValid();
        hdr.h.y = hdr.st[hdr.sel.i].y;
        hdr.h2 = hdr.st[hdr.sel.i];
        sm.egress_spec = 1;
    }
}

control E(inout headers_t hdr, inout meta_t m, inout standard_metadata_t sm) { apply { } }
control CC(inout headers_t hdr, inout meta_t m) { apply { } }
control D(packet_out pkt, in headers_t hdr) { apply { pkt.emit(hdr); } }
V1Switch(P(), VC(), I(), E(), CC(), D()) main;
