// p4sim test program: a small IPv4 router for v1model.
//
// Written for p4sim's P4Info tests. It declares the same control-plane objects (controls,
// tables, keys, actions, parameters, sizes) as p4c's sample of the same name, so that the
// P4Info p4c generated for that sample (basic_routing-bmv2.p4.p4info.txtpb, next to this
// file) is what p4sim must produce for this program. The data plane is our own.
//
// Lookup chain in ingress: port -> bridge domain -> VRF -> host route, falling back to a
// longest-prefix route -> next hop -> egress port. Egress rewrites the MAC addresses.

#include <core.p4>
#include <v1model.p4>

const bit<16> ETHERTYPE_IPV4 = 0x0800;

header eth_h {
    bit<48> dst;
    bit<48> src;
    bit<16> ethertype;
}

header ip4_h {
    bit<8>  ver_ihl;        // version (high nibble) and header length in words
    bit<8>  tos;
    bit<16> total_len;
    bit<16> ident;
    bit<16> flags_frag;     // 3 flag bits, 13 bits of fragment offset
    bit<8>  ttl;
    bit<8>  proto;
    bit<16> csum;
    bit<32> srcAddr;
    bit<32> dstAddr;
}

struct route_state_t {
    bit<16> bd;             // bridge domain of the ingress port
    bit<12> vrf;            // routing instance of the bridge domain
    bit<16> nexthop_index;  // chosen by the FIB
}

struct packet_headers_t {
    eth_h ethernet;
    ip4_h ipv4;
}

struct local_meta_t {
    route_state_t ingress_metadata;
}

parser RouterParser(packet_in pkt,
                    out packet_headers_t hdr,
                    inout local_meta_t meta,
                    inout standard_metadata_t standard_metadata) {
    state start {
        pkt.extract(hdr.ethernet);
        transition select(hdr.ethernet.ethertype) {
            ETHERTYPE_IPV4: ip;
            default: accept;
        }
    }

    state ip {
        pkt.extract(hdr.ipv4);
        transition accept;
    }
}

control RouterVerify(inout packet_headers_t hdr, inout local_meta_t meta) {
    apply { }
}

control ingress(inout packet_headers_t hdr,
                inout local_meta_t meta,
                inout standard_metadata_t standard_metadata) {

    // bridge domain -> VRF
    action set_vrf(bit<12> vrf) {
        meta.ingress_metadata.vrf = vrf;
    }

    table bd {
        key = { meta.ingress_metadata.bd: exact; }
        actions = { set_vrf; }
        size = 65536;
    }

    // FIB: exact host routes first, then prefixes
    action on_miss() { }

    action fib_hit_nexthop(bit<16> nexthop_index) {
        meta.ingress_metadata.nexthop_index = nexthop_index;
        hdr.ipv4.ttl = hdr.ipv4.ttl |-| 1;
    }

    table ipv4_fib {
        key = {
            meta.ingress_metadata.vrf: exact;
            hdr.ipv4.dstAddr: exact;
        }
        actions = { on_miss; fib_hit_nexthop; }
        size = 131072;
    }

    table ipv4_fib_lpm {
        key = {
            meta.ingress_metadata.vrf: exact;
            hdr.ipv4.dstAddr: lpm;
        }
        actions = { on_miss; fib_hit_nexthop; }
        size = 16384;
    }

    // next hop -> output port
    action set_egress_details(bit<9> egress_spec) {
        standard_metadata.egress_spec = egress_spec;
    }

    table nexthop {
        key = { meta.ingress_metadata.nexthop_index: exact; }
        actions = { on_miss; set_egress_details; }
        size = 32768;
    }

    // input port -> bridge domain
    action set_bd(bit<16> bd) {
        meta.ingress_metadata.bd = bd;
    }

    table port_mapping {
        key = { standard_metadata.ingress_port: exact; }
        actions = { set_bd; }
        size = 32768;
    }

    apply {
        if (!hdr.ipv4.isValid()) {
            return;
        }
        port_mapping.apply();
        bd.apply();
        if (!ipv4_fib.apply().hit) {
            ipv4_fib_lpm.apply();
        }
        nexthop.apply();
    }
}

control egress(inout packet_headers_t hdr,
               inout local_meta_t meta,
               inout standard_metadata_t standard_metadata) {

    action on_miss() { }

    action rewrite_src_dst_mac(bit<48> smac, bit<48> dmac) {
        hdr.ethernet.src = smac;
        hdr.ethernet.dst = dmac;
    }

    table rewrite_mac {
        key = { meta.ingress_metadata.nexthop_index: exact; }
        actions = { on_miss; rewrite_src_dst_mac; }
        size = 32768;
    }

    apply {
        rewrite_mac.apply();
    }
}

control RouterChecksum(inout packet_headers_t hdr, inout local_meta_t meta) {
    apply {
        update_checksum(hdr.ipv4.isValid(),
                        { hdr.ipv4.ver_ihl, hdr.ipv4.tos, hdr.ipv4.total_len,
                          hdr.ipv4.ident, hdr.ipv4.flags_frag, hdr.ipv4.ttl,
                          hdr.ipv4.proto, hdr.ipv4.srcAddr, hdr.ipv4.dstAddr },
                        hdr.ipv4.csum,
                        HashAlgorithm.csum16);
    }
}

control RouterDeparser(packet_out pkt, in packet_headers_t hdr) {
    apply {
        pkt.emit(hdr.ethernet);
        pkt.emit(hdr.ipv4);
    }
}

V1Switch(RouterParser(), RouterVerify(), ingress(), egress(), RouterChecksum(), RouterDeparser()) main;
