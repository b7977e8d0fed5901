// Two-argument extract into a member of the next union of a header stack: the member becomes
// the union's only valid one and the stack moves on, as with the one-argument extract.
#include <core.p4>
#include <v1model.p4>
header v_t { bit<8> len; varbit<16> d; }
header w_t { bit<8> x; }
header_union u_t { v_t v; w_t w; }
struct headers_t { u_t[2] s; w_t t; }
struct meta_t { }
parser P(packet_in pkt, out headers_t hdr, inout meta_t m, inout standard_metadata_t sm) {
    state start { pkt.extract(hdr.s.next.v, 8); pkt.extract(hdr.s.next.w); pkt.extract(hdr.t); transition accept; } }
control VC(inout headers_t hdr, inout meta_t m) { apply { } }
control I(inout headers_t hdr, inout meta_t m, inout standard_metadata_t sm) { apply { sm.egress_spec = 1; } }
control E(inout headers_t hdr, inout meta_t m, inout standard_metadata_t sm) { apply { } }
control CC(inout headers_t hdr, inout meta_t m) { apply { } }
control D(packet_out pkt, in headers_t hdr) { apply { pkt.emit(hdr); } }
V1Switch(P(), VC(), I(), E(), CC(), D()) main;
