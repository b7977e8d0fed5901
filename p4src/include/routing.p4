/*
 * p4splice: IPv4 routing for everything that is not translated: LPM on the destination,
 * egress port and both MAC addresses from the entry. TTL is handled by the ingress top level
 * (SpliceIngress) for every forwarded packet. A prefix may also go to the controller (to_cpu):
 * the controller's own address, which the proxy host's echo replies are sent to when the
 * controller probes the proxy's port.
 */
#ifndef __SPLICE_ROUTING_P4__
#define __SPLICE_ROUTING_P4__

control Routing(inout headers_t hdr, inout local_metadata_t meta,
                inout standard_metadata_t standard_metadata) {
    action route(port_t port, mac_addr_t smac, mac_addr_t dmac) {
        standard_metadata.egress_spec = port;
        hdr.ethernet.src_addr = smac;
        hdr.ethernet.dst_addr = dmac;
        meta.forwarded = 1;
        meta.decrement_ttl = 1;
    }

    action drop() {
        mark_to_drop(standard_metadata);
    }

    /* Untouched (no MAC rewrite, no TTL decrement), with the ingress port in packet_in. */
    action to_cpu() {
        standard_metadata.egress_spec = CPU_PORT_ID;
        meta.pin_ingress_port = standard_metadata.ingress_port;
        meta.pin_reason = PIN_ROUTED;
        meta.forwarded = 1;
    }

    table routes {
        key = {
            hdr.ipv4.dst_addr: lpm @name("ipv4_dst");
        }
        actions = {
            route;
            to_cpu;
            drop;
        }
        default_action = drop();
        size = ROUTES_SIZE;
    }

    apply {
        if (hdr.ipv4.isValid()) {
            routes.apply();
        } else {
            drop();
        }
    }
}

#endif
