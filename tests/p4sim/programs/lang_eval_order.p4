// Operands are evaluated left to right: a value read before a call that changes it is the
// value from before the call, in arithmetic, comparisons, concatenation and arguments.
#include <core.p4>
#include <v1model.p4>

header sel_t { bit<8> i; bit<8> j; }
header res_t { bit<8> a; bit<8> b; bit<8> c; bit<8> d; bit<8> e; bit<8> f; }
struct headers_t { sel_t sel; res_t res; }
struct meta_t { bit<8> n; }

bit<8> inc(inout bit<8> v) {
    v = v + 1;
    return v;
}

bit<8> minus(in bit<8> a, in bit<8> b) {
    return a - b;
}

parser P(packet_in pkt, out headers_t hdr, inout meta_t m, inout standard_metadata_t sm) {
    state start { pkt.extract(hdr.sel); transition accept; }
}

control VC(inout headers_t hdr, inout meta_t m) { apply { } }

control I(inout headers_t hdr, inout meta_t m, inout standard_metadata_t sm) {
    apply {
        hdr.res.setValid();
        m.n = hdr.sel.i;
        hdr.res.a = m.n + inc(m.n);
        hdr.res.b = minus(m.n, inc(m.n));
        hdr.res.c = (m.n ++ inc(m.n))[15:8];
        hdr.res.d = m.n;
        hdr.res.e = (m.n == inc(m.n)) ? 8w1 : 8w0;
        hdr.res.f = m.n;
        sm.egress_spec = 1;
    }
}

control E(inout headers_t hdr, inout meta_t m, inout standard_metadata_t sm) { apply { } }
control CC(inout headers_t hdr, inout meta_t m) { apply { } }
control D(packet_out pkt, in headers_t hdr) { apply { pkt.emit(hdr); } }
V1Switch(P(), VC(), I(), E(), CC(), D()) main;
