// A variable, constant or instance named like a type hides that type in its scope, as in p4c
// (which warns "'x' shadows ..."): statements there read the name as the object, and the
// type comes back once the scope closes. Frame: h (k, v, w), out on port 1.
#include <core.p4>
#include <v1model.p4>

header h_t { bit<8> k; bit<8> v; bit<8> w; }
struct headers_t { h_t h; }
struct meta_t { }

typedef bit<8> level;
control bump(inout headers_t hdr) { apply { hdr.h.w = hdr.h.w + 1; } }

parser P(packet_in pkt, out headers_t hdr, inout meta_t m, inout standard_metadata_t sm) {
    bit<8> level = 0;  // a parser local hides the typedef: w = k
    state start {
        pkt.extract(hdr.h);
        level = hdr.h.k;
        hdr.h.w = level;
        transition accept;
    }
}

control VC(inout headers_t hdr, inout meta_t m) { apply { } }

control I(inout headers_t hdr, inout meta_t m, inout standard_metadata_t sm) {
    bit<8> bump = 3;                        // hides control type bump
    counter(4, CounterType.packets) level;  // hides the typedef
    apply {
        bump = bump + hdr.h.k;
        level.count(0);
        hdr.h.v = bump;                     // v = k + 3
        sm.egress_spec = 1;
    }
}

control E(inout headers_t hdr, inout meta_t m, inout standard_metadata_t sm) {
    apply {
        {
            const bit<8> bump = 0x40;       // hides control type bump in this block only
            hdr.h.v = hdr.h.v | bump;
        }
        bump.apply(hdr);                    // the control again: w + 1
        level l = hdr.h.k;                  // the typedef again
        hdr.h.k = l + 0x10;
    }
}

control CC(inout headers_t hdr, inout meta_t m) { apply { } }
control D(packet_out pkt, in headers_t hdr) { apply { pkt.emit(hdr); } }

V1Switch(P(), VC(), I(), E(), CC(), D()) main;
