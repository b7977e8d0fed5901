// Compound assignment and for loops (P4_16 1.2.5), as p4c-bm2-ss compiles them for BMv2:
// loops in actions (p4c-bm2-ss runs the body of a loop elsewhere once, unconditionally).
// Frame: h (n, idx, acc, w, sat) then four e bytes; everything leaves on port 1.
#include <core.p4>
#include <v1model.p4>

header h_t { bit<8> n; bit<8> idx; bit<16> acc; bit<32> w; bit<8> sat; }
header e_t { bit<8> v; }
struct headers_t { h_t h; e_t[4] e; }
struct meta_t { }

parser P(packet_in pkt, out headers_t hdr, inout meta_t m, inout standard_metadata_t sm) {
    state start {
        pkt.extract(hdr.h);
        pkt.extract(hdr.e.next);
        pkt.extract(hdr.e.next);
        pkt.extract(hdr.e.next);
        pkt.extract(hdr.e.next);
        transition accept;
    }
}

control VC(inout headers_t hdr, inout meta_t m) { apply { } }

bit<8> take(inout bit<8> x) {
    bit<8> old = x;
    x += 1;
    return old;
}

control I(inout headers_t hdr, inout meta_t m, inout standard_metadata_t sm) {
    // the odd numbers below min(n + 1, 7), added up
    action odd_sum() {
        hdr.h.acc = 0;
        for (bit<8> i = 1; i <= hdr.h.n; i += 1) {
            if (i == 7) {
                break;
            }
            if ((i & 1) == 0) {
                continue;
            }
            hdr.h.acc += (bit<16>)i;
        }
    }
    // pairs (a, b) of 0..2 with a != b: 6 of them
    action pairs() {
        for (bit<8> a = 0; a < 3; a = a + 1) {
            for (bit<8> b = 0; b < 3; b = b + 1) {
                if (b == a) {
                    continue;
                }
                hdr.h.acc = hdr.h.acc + 0x100;
            }
        }
    }
    // a loop with two variables in its init and its updates: 4 rounds
    action count_down() {
        bit<8> k;
        bit<8> steps = 0;
        for (k = 0, steps = 10; k != 4; k = k + 1, steps = steps - 1) { }
        hdr.e[3].v = hdr.e[3].v + steps;
    }
    apply {
        odd_sum();
        pairs();
        // the index is evaluated once: idx goes up by one
        hdr.e[take(hdr.h.idx) & 3].v |= 0x80;
        hdr.e[0].v &= 0x0f;
        hdr.h.w <<= 4;
        hdr.h.w >>= 1;
        hdr.h.w ^= 0xff;
        hdr.h.w -= 1;
        hdr.h.w *= 3;
        hdr.h.sat |+|= 200;
        hdr.h.idx /= 2;
        hdr.h.n %= 4;
        count_down();
        sm.egress_spec = 1;
    }
}

control E(inout headers_t hdr, inout meta_t m, inout standard_metadata_t sm) { apply { } }
control CC(inout headers_t hdr, inout meta_t m) { apply { } }
control D(packet_out pkt, in headers_t hdr) { apply { pkt.emit(hdr); } }

V1Switch(P(), VC(), I(), E(), CC(), D()) main;
