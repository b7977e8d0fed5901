// && and || evaluate their right operand only when the left one does not decide; ?: evaluates
// only the operand it chooses. Each operand here has a side effect (a function with an inout
// argument, a table apply) that shows whether it ran.
#include <core.p4>
#include <v1model.p4>

header sel_t { bit<8> i; bit<8> j; }
header res_t { bit<8> a; bit<8> b; bit<8> c; bit<8> d; }
struct headers_t { sel_t sel; res_t res; }
struct meta_t { bit<8> n; }

// counts its calls in n
bool tick(inout bit<8> n, in bool v) {
    n = n + 1;
    return v;
}

parser P(packet_in pkt, out headers_t hdr, inout meta_t m, inout standard_metadata_t sm) {
    state start { pkt.extract(hdr.sel); transition accept; }
}

control VC(inout headers_t hdr, inout meta_t m) { apply { } }

control I(inout headers_t hdr, inout meta_t m, inout standard_metadata_t sm) {
    action hit_count() { m.n = m.n + 0x10; }
    table t {
        key = { hdr.sel.j : exact; }
        actions = { hit_count; NoAction; }
        const entries = { 1 : hit_count(); }
        default_action = NoAction();
    }
    apply {
        hdr.res.setValid();
        m.n = 0;
        if (hdr.sel.i == 1 && tick(m.n, true)) { hdr.res.a = 0x01; }
        if (hdr.sel.i == 1 || tick(m.n, true)) { hdr.res.a = hdr.res.a | 0x02; }
        hdr.res.b = m.n;
        m.n = 0;
        hdr.res.c = (hdr.sel.i == 2) ? (tick(m.n, true) ? 8w0x10 : 8w0x11) : (tick(m.n, false) ? 8w0x20 : 8w0x21);
        hdr.res.c = hdr.res.c + m.n;
        m.n = 0;
        if (hdr.sel.i == 3 && t.apply().hit) { m.n = m.n | 1; }
        hdr.res.d = m.n;
        sm.egress_spec = 1;
    }
}

control E(inout headers_t hdr, inout meta_t m, inout standard_metadata_t sm) { apply { } }
control CC(inout headers_t hdr, inout meta_t m) { apply { } }
control D(packet_out pkt, in headers_t hdr) { apply { pkt.emit(hdr); } }
V1Switch(P(), VC(), I(), E(), CC(), D()) main;
