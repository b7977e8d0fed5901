/* Test program for the controller's P4Runtime client (tests/controller/test_p4rt_*.py): every
 * match kind, a default entry, direct and indirect counters, a register, multicast, packet-in/out
 * through the CPU port, a learning digest and an idle-timeout table. */
#include <core.p4>
#include <v1model.p4>

const bit<9> CPU_PORT = 255;

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
    bit<48> dst;
    bit<48> src;
    bit<16> ether_type;
}

struct headers_t {
    packet_in_t  packet_in;
    packet_out_t packet_out;
    ethernet_t   ethernet;
}

struct learn_t {
    bit<48> src;
    bit<9>  port;
}

struct meta_t { }

parser TestParser(packet_in pkt, out headers_t hdr, inout meta_t meta,
                  inout standard_metadata_t sm) {
    state start {
        transition select(sm.ingress_port) {
            CPU_PORT: parse_packet_out;
            default: parse_ethernet;
        }
    }
    state parse_packet_out {
        pkt.extract(hdr.packet_out);
        transition parse_ethernet;
    }
    state parse_ethernet {
        pkt.extract(hdr.ethernet);
        transition accept;
    }
}

control NoVerify(inout headers_t hdr, inout meta_t meta) { apply { } }

control TestIngress(inout headers_t hdr, inout meta_t meta, inout standard_metadata_t sm) {
    counter(64, CounterType.packets_and_bytes) port_counter;
    direct_counter(CounterType.packets_and_bytes) acl_hits;
    register<bit<32>>(16) scratch;

    action learn() {
        digest<learn_t>(1, { hdr.ethernet.src, sm.ingress_port });
    }
    action known() { }
    table smac {
        key = { hdr.ethernet.src: exact; }
        actions = { learn; known; }
        default_action = learn();
        support_timeout = true;
    }

    action forward(bit<9> port) { sm.egress_spec = port; }
    action to_cpu() { sm.egress_spec = CPU_PORT; }
    action flood(bit<16> group) { sm.mcast_grp = group; }
    action drop() { mark_to_drop(sm); }
    table dmac {
        key = { hdr.ethernet.dst: exact; }
        actions = { forward; to_cpu; flood; drop; }
        default_action = to_cpu();
    }
    table dst_prefix {
        key = { hdr.ethernet.dst: lpm; }
        actions = { forward; flood; NoAction; }
        default_action = NoAction();
    }
    table acl {
        key = { hdr.ethernet.ether_type: ternary; hdr.ethernet.src: ternary; }
        actions = { drop; NoAction; }
        default_action = NoAction();
        counters = acl_hits;
    }
    table classify {
        key = { hdr.ethernet.ether_type: range; sm.ingress_port: optional; }
        actions = { NoAction; drop; }
        default_action = NoAction();
    }

    apply {
        port_counter.count((bit<32>)sm.ingress_port);
        if (hdr.packet_out.isValid()) {
            sm.egress_spec = hdr.packet_out.egress_port;
            hdr.packet_out.setInvalid();
            exit;
        }
        smac.apply();
        if (!dst_prefix.apply().hit) {
            dmac.apply();
        }
        acl.apply();
        classify.apply();
        scratch.write(0, (bit<32>)sm.ingress_port);
        if (sm.egress_spec == CPU_PORT) {
            hdr.packet_in.setValid();
            hdr.packet_in.ingress_port = sm.ingress_port;
        }
    }
}

control NoEgress(inout headers_t hdr, inout meta_t meta, inout standard_metadata_t sm) { apply { } }
control NoCompute(inout headers_t hdr, inout meta_t meta) { apply { } }

control TestDeparser(packet_out pkt, in headers_t hdr) {
    apply {
        pkt.emit(hdr.packet_in);
        pkt.emit(hdr.ethernet);
    }
}

V1Switch(TestParser(), NoVerify(), TestIngress(), NoEgress(), NoCompute(), TestDeparser()) main;
