// Structs (nested too) as header fields: extracted, read, written, emitted and compared in
// wire order. Frame: h (tag, addr { hi, lo { a, b } }, x); out on port 1.
#include <core.p4>
#include <v1model.p4>

struct lo_t { bit<4> a; bit<4> b; }
struct addr_t { bit<8> hi; lo_t lo; }
header h_t { bit<8> tag; addr_t addr; bit<16> x; }
struct headers_t { h_t h; h_t copy; }
struct meta_t { addr_t saved; }

parser P(packet_in pkt, out headers_t hdr, inout meta_t m, inout standard_metadata_t sm) {
    state start { pkt.extract(hdr.h); transition accept; }
}

control VC(inout headers_t hdr, inout meta_t m) { apply { } }

control I(inout headers_t hdr, inout meta_t m, inout standard_metadata_t sm) {
    action swap(bit<8> t) {
        m.saved = hdr.h.addr;
        hdr.h.addr.lo.a = m.saved.lo.b;
        hdr.h.addr.lo.b = m.saved.lo.a;
        hdr.h.tag = t;
    }
    table by_addr {
        key = { hdr.h.addr.hi: exact; hdr.h.addr.lo.a: exact; }
        actions = { swap; NoAction; }
        const entries = { (0x11, 0x2): swap(0xAA); }
        default_action = NoAction();
    }
    apply {
        by_addr.apply();
        hdr.h.x = hdr.h.x + (bit<16>)hdr.h.addr.hi;
        // a second, valid header made from the first, whole structs assigned
        hdr.copy.setValid();
        hdr.copy.addr = hdr.h.addr;
        hdr.copy.addr.hi = hdr.copy.addr.hi + 1;
        hdr.copy.tag = hdr.copy.addr == hdr.h.addr ? 8w1 : 8w2;
        hdr.copy.x = 0;
        sm.egress_spec = 1;
    }
}

control E(inout headers_t hdr, inout meta_t m, inout standard_metadata_t sm) { apply { } }
control CC(inout headers_t hdr, inout meta_t m) { apply { } }
control D(packet_out pkt, in headers_t hdr) { apply { pkt.emit(hdr); } }

V1Switch(P(), VC(), I(), E(), CC(), D()) main;
