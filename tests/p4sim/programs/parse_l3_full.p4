/* A realistic v1model program for the front-end tests: L3 routing with an LPM table,
 * counters, registers, digests, cloning, checksums, and packet_in/packet_out headers. */
#include <core.p4>
#include <v1model.p4>

#define CPU_PORT 255
const bit<16> TYPE_IPV4 = 0x0800;
const bit<16> TYPE_ARP = 16w0x0806;

typedef bit<9>  egressSpec_t;
typedef bit<48> macAddr_t;
typedef bit<32> ip4Addr_t;

enum bit<8> FieldLists {
    none = 0,
    clone_fl = 1
}

@controller_header("packet_in")
header packet_in_t {
    bit<9> ingress_port;
    bit<7> _pad;
}

@controller_header("packet_out")
header packet_out_t {
    bit<9> egress_port;
    bit<7> _pad;
}

header ethernet_t {
    macAddr_t dstAddr;
    macAddr_t srcAddr;
    bit<16>   etherType;
}

header ipv4_t {
    bit<4>    version;
    bit<4>    ihl;
    bit<8>    diffserv;
    bit<16>   totalLen;
    bit<16>   identification;
    bit<3>    flags;
    bit<13>   fragOffset;
    bit<8>    ttl;
    bit<8>    protocol;
    bit<16>   hdrChecksum;
    ip4Addr_t srcAddr;
    ip4Addr_t dstAddr;
}

header vlan_t {
    bit<3>  pcp;
    bit<1>  cfi;
    bit<12> vid;
    bit<16> etherType;
}

struct learn_t {
    macAddr_t srcAddr;
    bit<9>    ingress_port;
}

struct metadata {
    @field_list(FieldLists.clone_fl)
    bit<9>  ingress_port;
    bit<32> flow_hash;
    bit<32> seen;
}

struct headers {
    packet_out_t packet_out;
    packet_in_t  packet_in;
    ethernet_t   ethernet;
    vlan_t[2]    vlans;
    ipv4_t       ipv4;
}

parser MyParser(packet_in packet,
                out headers hdr,
                inout metadata meta,
                inout standard_metadata_t standard_metadata) {
    state start {
        transition select(standard_metadata.ingress_port) {
            CPU_PORT: parse_packet_out;
            default: parse_ethernet;
        }
    }
    state parse_packet_out {
        packet.extract(hdr.packet_out);
        transition parse_ethernet;
    }
    state parse_ethernet {
        packet.extract(hdr.ethernet);
        transition select(hdr.ethernet.etherType) {
            0x8100 &&& 0xEFFF: parse_vlan;
            TYPE_IPV4: parse_ipv4;
            default: accept;
        }
    }
    state parse_vlan {
        packet.extract(hdr.vlans.next);
        transition select(hdr.vlans.last.etherType, packet.lookahead<bit<4>>()) {
            (0x8100, _): parse_vlan;
            (TYPE_IPV4, 4): parse_ipv4;
            (0x0000 .. 0x05DC, _): reject;
            default: accept;
        }
    }
    state parse_ipv4 {
        packet.extract(hdr.ipv4);
        verify(hdr.ipv4.ihl >= 5, error.HeaderTooShort);
        transition accept;
    }
}

control MyVerifyChecksum(inout headers hdr, inout metadata meta) {
    apply {
        verify_checksum(hdr.ipv4.isValid(),
            { hdr.ipv4.version, hdr.ipv4.ihl, hdr.ipv4.diffserv, hdr.ipv4.totalLen,
              hdr.ipv4.identification, hdr.ipv4.flags, hdr.ipv4.fragOffset, hdr.ipv4.ttl,
              hdr.ipv4.protocol, hdr.ipv4.srcAddr, hdr.ipv4.dstAddr },
            hdr.ipv4.hdrChecksum, HashAlgorithm.csum16);
    }
}

control MyIngress(inout headers hdr,
                  inout metadata meta,
                  inout standard_metadata_t standard_metadata) {
    counter(512, CounterType.packets_and_bytes) port_counter;
    direct_counter(CounterType.packets) lpm_counter;
    register<bit<32>>(1024) flow_seen;
    bit<32> tmp = 0;

    action drop() {
        mark_to_drop(standard_metadata);
    }

    action ipv4_forward(macAddr_t dstAddr, egressSpec_t port) {
        standard_metadata.egress_spec = port;
        hdr.ethernet.srcAddr = hdr.ethernet.dstAddr;
        hdr.ethernet.dstAddr = dstAddr;
        hdr.ipv4.ttl = hdr.ipv4.ttl - 1;
        lpm_counter.count();
    }

    action send_to_cpu() {
        standard_metadata.egress_spec = CPU_PORT;
        hdr.packet_in.setValid();
        hdr.packet_in.ingress_port = standard_metadata.ingress_port;
    }

    action learn() {
        digest<learn_t>(1, {hdr.ethernet.srcAddr, standard_metadata.ingress_port});
    }

    @name("ipv4_lpm") table ipv4_lpm {
        key = {
            hdr.ipv4.dstAddr: lpm @name("dst");
        }
        actions = {
            ipv4_forward;
            @defaultonly drop;
            send_to_cpu;
            NoAction;
        }
        size = 1024;
        counters = lpm_counter;
        default_action = drop();
    }

    table acl {
        key = {
            hdr.ethernet.etherType: ternary;
            hdr.ipv4.protocol: range;
        }
        actions = { drop; NoAction; }
        const default_action = NoAction();
        entries = {
            priority = 10: (0x0806, 1 .. 6): drop();
            priority = 20: (0x0800 &&& 0xFFFF, _): NoAction();
            (_, 17): drop();
        }
    }

    apply {
        if (hdr.packet_out.isValid()) {
            standard_metadata.egress_spec = hdr.packet_out.egress_port;
            hdr.packet_out.setInvalid();
            exit;
        }
        port_counter.count((bit<32>)standard_metadata.ingress_port);
        hash(meta.flow_hash, HashAlgorithm.crc32, 32w0,
             { hdr.ipv4.srcAddr, hdr.ipv4.dstAddr, hdr.ipv4.protocol }, 32w1024);
        flow_seen.read(meta.seen, meta.flow_hash);
        flow_seen.write(meta.flow_hash, meta.seen + 1);
        if (meta.seen == 0) {
            learn();
        }
        if (hdr.ipv4.isValid() && hdr.ipv4.ttl > 1) {
            switch (ipv4_lpm.apply().action_run) {
                ipv4_forward: {
                    acl.apply();
                }
                drop:
                send_to_cpu: {
                    meta.ingress_port = standard_metadata.ingress_port;
                    clone_preserving_field_list(CloneType.I2E, 100, FieldLists.clone_fl);
                }
                default: { }
            }
        } else if (hdr.ipv4.isValid()) {
            drop();
        }
        tmp = meta.seen[7:0] ++ meta.flow_hash[23:0];
        tmp = tmp >> 2 & 0xff;
    }
}

control MyEgress(inout headers hdr,
                 inout metadata meta,
                 inout standard_metadata_t standard_metadata) {
    apply {
        if (standard_metadata.instance_type == 1) {
            hdr.ipv4.diffserv = 8w0;
        }
    }
}

control MyComputeChecksum(inout headers hdr, inout metadata meta) {
    apply {
        update_checksum(
            hdr.ipv4.isValid(),
            { hdr.ipv4.version, hdr.ipv4.ihl, hdr.ipv4.diffserv, hdr.ipv4.totalLen,
              hdr.ipv4.identification, hdr.ipv4.flags, hdr.ipv4.fragOffset, hdr.ipv4.ttl,
              hdr.ipv4.protocol, hdr.ipv4.srcAddr, hdr.ipv4.dstAddr },
            hdr.ipv4.hdrChecksum,
            HashAlgorithm.csum16);
    }
}

control MyDeparser(packet_out packet, in headers hdr) {
    apply {
        packet.emit(hdr.packet_in);
        packet.emit(hdr.ethernet);
        packet.emit(hdr.vlans);
        packet.emit(hdr.ipv4);
    }
}

V1Switch(
    MyParser(),
    MyVerifyChecksum(),
    MyIngress(),
    MyEgress(),
    MyComputeChecksum(),
    MyDeparser()
) main;
