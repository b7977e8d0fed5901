// A table keyed on a P4 error (exact, ternary, optional): what P4Runtime can write to it.
// tests/p4sim/test_error_keys.py
#include <core.p4>
#include <v1model.p4>
error { MyError }
header eth_t { bit<48> dst; bit<48> src; bit<16> type; }
struct headers_t { eth_t eth; }
struct meta_t { bit<8> unused; }
parser P(packet_in pkt, out headers_t hdr, inout meta_t m, inout standard_metadata_t sm) {
    state start {
        pkt.extract(hdr.eth);
        verify(hdr.eth.type != 0x0bad, error.MyError);
        transition accept;
    }
}
control VC(inout headers_t hdr, inout meta_t m) { apply { } }
control I(inout headers_t hdr, inout meta_t m, inout standard_metadata_t sm) {
    action fwd(bit<9> port) { sm.egress_spec = port; }
    table by_error {
        key = { sm.parser_error : exact; }
        actions = { fwd; NoAction; }
        default_action = NoAction();
    }
    table tern_error {
        key = { sm.parser_error : ternary; hdr.eth.dst : exact; }
        actions = { fwd; NoAction; }
        default_action = NoAction();
    }
    table opt_error {
        key = { sm.parser_error : optional; hdr.eth.dst : exact; }
        actions = { fwd; NoAction; }
        default_action = NoAction();
    }
    apply { sm.egress_spec = 3; by_error.apply(); tern_error.apply(); opt_error.apply(); }
}
control E(inout headers_t hdr, inout meta_t m, inout standard_metadata_t sm) { apply { } }
control CC(inout headers_t hdr, inout meta_t m) { apply { } }
control D(packet_out pkt, in headers_t hdr) { apply { pkt.emit(hdr); } }
V1Switch(P(), VC(), I(), E(), CC(), D()) main;
