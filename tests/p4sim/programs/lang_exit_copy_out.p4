// exit and copy-out, as p4c compiles them for BMv2: an action called from a control writes its
// out/inout arguments back before it exits; one called from another action does not (the outer
// action still does); a sub-control's arguments that no other argument overlaps are the places
// themselves, so what it wrote stays, while overlapping ones are copies and are dropped.
#include <core.p4>
#include <v1model.p4>

header sel_t { bit<8> i; bit<8> j; }
header a_t { bit<8> x; bit<8> y; }
struct headers_t { sel_t sel; a_t h; a_t h2; }
struct meta_t { bit<8> n; }

control Sub(inout bit<8> v, inout a_t q) {
    apply {
        v = 0x71;
        q.x = 0x72;
        if (q.y == 2) { exit; }
        q.y = 0x73;
    }
}

control SubExit(inout bit<8> v, inout a_t q) {
    apply {
        v = 0x71;
        q.x = 0x72;
        exit;
    }
}

parser P(packet_in pkt, out headers_t hdr, inout meta_t m, inout standard_metadata_t sm) {
    state start { pkt.extract(hdr.sel); transition accept; }
}

control VC(inout headers_t hdr, inout meta_t m) { apply { } }

control I(inout headers_t hdr, inout meta_t m, inout standard_metadata_t sm) {
    Sub() sub;
    SubExit() sub_exit;
    action scalar_exit(inout bit<8> a) { a = 0x55; exit; }
    action nested_exit(inout bit<8> a) { a = 0x56; scalar_exit(a); }
    action header_exit(inout a_t a) { a.x = 0x46; hdr.h.y = a.x; exit; }
    action aliased_exit(inout a_t a) { a.x = 0x47; hdr.h2.y = 0x48; exit; }
    apply {
        hdr.h.setValid();
        hdr.h.x = 1;
        hdr.h.y = 2;
        hdr.h2.setValid();
        m.n = 5;
        if (hdr.sel.i == 0) {
            scalar_exit(hdr.h.y);
        } else if (hdr.sel.i == 1) {
            nested_exit(hdr.h.y);
        } else if (hdr.sel.i == 2) {
            header_exit(hdr.h2);
        } else if (hdr.sel.i == 3) {
            aliased_exit(hdr.h2);
        } else if (hdr.sel.i == 4) {
            sub.apply(m.n, hdr.h);
        } else if (hdr.sel.i == 5) {
            sub_exit.apply(hdr.h.y, hdr.h);
        }
        hdr.h.x = 0x99;
        sm.egress_spec = 1;
    }
}

control E(inout headers_t hdr, inout meta_t m, inout standard_metadata_t sm) {
    apply { hdr.h2.x = m.n; }
}
control CC(inout headers_t hdr, inout meta_t m) { apply { } }
control D(packet_out pkt, in headers_t hdr) { apply { pkt.emit(hdr); } }
V1Switch(P(), VC(), I(), E(), CC(), D()) main;
