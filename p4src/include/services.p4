/*
 * p4splice: proxied services and ISN capture.
 *
 * A SYN toward, or a SYN-ACK from, a (server address, port) in the services table is a
 * handshake the controller must learn (design note section 1). The SYN goes to the controller
 * only (reason SYN), which sends it on to the server itself once its C->S punt entry is in:
 * with a nearby server, C's ACK and first data would otherwise cross the switch before the
 * entry and reach S without the proxy. The SYN-ACK is copied to the controller (I2E clone of
 * the original bytes, reason SYN_ACK) and routed on to the client. The same handshake packets
 * arriving from the proxy's port are the proxy's own legs: they go to the controller only
 * (PROXY_SYN, PROXY_SYN_ACK).
 *
 * Why a packet-in and not a digest: the controller needs every option (MSS, window scale,
 * SACK-permitted, timestamps, and any it does not know yet) to replay the handshake toward
 * the proxy, which a packet carries whole; packet-ins on one stream keep the SYN, SYN-ACK,
 * proxy handshakes and FIN/RST in arrival order, which separate digest lists would not; and a
 * retransmitted SYN is seen again rather than suppressed by digest de-duplication.
 */
#ifndef __SPLICE_SERVICES_P4__
#define __SPLICE_SERVICES_P4__

control Services(inout headers_t hdr, inout local_metadata_t meta,
                 inout standard_metadata_t standard_metadata) {
    action proxied(port_t proxy_port) {
        meta.svc_proxy_port = proxy_port;
    }

    table services {
        key = {
            meta.svc_addr: exact @name("server_addr");
            meta.svc_port: exact @name("server_port");
        }
        actions = {
            proxied;
            @defaultonly NoAction;
        }
        const default_action = NoAction();
        size = SERVICES_SIZE;
    }

    apply {
        bit<8> syn_ack = hdr.tcp.flags & (TCP_SYN | TCP_ACK | TCP_RST);
        bit<8> copy_reason = 0;
        bit<8> proxy_reason = 0;
        if (syn_ack == TCP_SYN) {
            meta.svc_addr = hdr.ipv4.dst_addr;
            meta.svc_port = hdr.tcp.dst_port;
            copy_reason = PIN_SYN;
            proxy_reason = PIN_PROXY_SYN;
        } else if (syn_ack == (TCP_SYN | TCP_ACK)) {
            meta.svc_addr = hdr.ipv4.src_addr;
            meta.svc_port = hdr.tcp.src_port;
            copy_reason = PIN_SYN_ACK;
            proxy_reason = PIN_PROXY_SYN_ACK;
        }
        if (copy_reason != 0) {
            if (services.apply().hit) {
                meta.pin_ingress_port = standard_metadata.ingress_port;
                if (standard_metadata.ingress_port == meta.svc_proxy_port) {
                    meta.pin_reason = proxy_reason;
                    standard_metadata.egress_spec = CPU_PORT_ID;
                    meta.forwarded = 1;
                } else if (copy_reason == PIN_SYN) {
                    meta.pin_reason = copy_reason;
                    standard_metadata.egress_spec = CPU_PORT_ID;
                    meta.forwarded = 1;
                } else {
                    meta.pin_reason = copy_reason;
                    clone_preserving_field_list(CloneType.I2E, CPU_CLONE_SESSION, 1);
                }
            }
        }
    }
}

#endif
