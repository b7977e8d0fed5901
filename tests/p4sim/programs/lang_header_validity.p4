// Header validity as BMv2 runs it: setValid() on an invalid header zeroes its fields (a valid
// one keeps them); a field written while the header is invalid is kept and reads see it;
// assigning an invalid header makes the target invalid and leaves its fields as they were;
// whole-struct and stack-element assignment do the same for each header in them.
#include <core.p4>
#include <v1model.p4>

header sel_t { bit<8> i; bit<8> j; }
header a_t { bit<8> x; bit<8> y; }
struct inner_t { bit<8> v; a_t h; }
struct headers_t { sel_t sel; a_t h; a_t h2; a_t h3; a_t[2] st; }
struct meta_t { inner_t s1; inner_t s2; }

parser P(packet_in pkt, out headers_t hdr, inout meta_t m, inout standard_metadata_t sm) {
    state start {
        pkt.extract(hdr.sel);
        pkt.extract(hdr.h);
        pkt.extract(hdr.h2);
        transition accept;
    }
}

control VC(inout headers_t hdr, inout meta_t m) { apply { } }

control I(inout headers_t hdr, inout meta_t m, inout standard_metadata_t sm) {
    apply {
        if (hdr.sel.i == 0) {
            // invalid, then valid again: the fields start from zero
            hdr.h.setInvalid();
            hdr.h.setValid();
            hdr.h.y = 7;
        } else if (hdr.sel.i == 1) {
            // valid already: nothing changes
            hdr.h.setValid();
        } else if (hdr.sel.i == 2) {
            // written while invalid: kept and read back, zeroed by setValid
            hdr.h.setInvalid();
            hdr.h.x = 0x33;
            hdr.h2.y = hdr.h.x;
            hdr.h.setValid();
            hdr.h.y = 0x44;
        } else if (hdr.sel.i == 3) {
            // assigned an invalid header: invalid, fields as they were (h2's from the packet)
            hdr.h.setInvalid();
            hdr.h2 = hdr.h;
            hdr.h3.setValid();
            hdr.h3.x = hdr.h2.x;
            hdr.h3.y = (bit<8>)(bit<1>)hdr.h2.isValid();
        } else if (hdr.sel.i == 4) {
            // through a struct: m.s2.h becomes invalid, so setValid zeroes it
            m.s1.h.x = 9;
            m.s2.h.setValid();
            m.s2.h.x = hdr.h.x;
            m.s2 = m.s1;
            hdr.h3.setValid();
            hdr.h3.y = (bit<8>)(bit<1>)m.s2.h.isValid();
            m.s2.h.setValid();
            hdr.h3.x = m.s2.h.x;
        } else if (hdr.sel.i == 5) {
            // a stack element assigned an invalid header
            hdr.st[0].setValid();
            hdr.st[0].x = 3;
            hdr.st[1].setValid();
            hdr.st[1].x = 4;
            hdr.h.setInvalid();
            hdr.st[0] = hdr.h;
            hdr.st[0].setValid();
            hdr.st[1].y = 5;
        } else if (hdr.sel.i == 6) {
            // a valid header assigned: fields and validity copied, later writes not shared
            hdr.h3 = hdr.h;
            hdr.h.x = 0x11;
        }
        sm.egress_spec = 1;
    }
}

control E(inout headers_t hdr, inout meta_t m, inout standard_metadata_t sm) { apply { } }
control CC(inout headers_t hdr, inout meta_t m) { apply { } }
control D(packet_out pkt, in headers_t hdr) { apply { pkt.emit(hdr); } }
V1Switch(P(), VC(), I(), E(), CC(), D()) main;
