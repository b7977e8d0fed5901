/*
 * p4splice: proxied services, and where each of their handshakes is run.
 *
 * A service (server address, port) is proxied by the host on a switch port, in one of two ways:
 *
 * proxied_inline: the switch runs claim 1's handshake itself (handshake.p4) from a slot of
 * per-connection registers, and the controller learns each step from a digest (handshake_t).
 * The slots are transient: the state of record is the flows entries the controller installs
 * from the digests, which take over as soon as they exist (flows is applied first). The
 * controller never reads or writes a register. A connection the switch declines (its slot is
 * busy with another live connection, or its SYN carries data) takes the controller's path
 * below from its SYN on.
 *
 * draining: as proxied_inline for the handshakes under way, while new connections are not
 * proxied (the controller's answer to falling behind, docs/dataplane.md).
 *
 * proxied, and the declined: the controller runs the handshake (design note section 1). The SYN
 * goes to the controller only (reason SYN), which sends it on to the server itself once its C->S
 * punt entry is in: with a nearby server, C's ACK and first data would otherwise cross the
 * switch before the entry and reach S without the proxy. The SYN-ACK is copied to the controller
 * (I2E clone of the original bytes, reason SYN_ACK) and routed on to the client. The same
 * handshake packets arriving from the proxy's port are the proxy's own legs: they go to the
 * controller only (PROXY_SYN, PROXY_SYN_ACK). Packet-ins carry every option, keep the order the
 * switch saw, and show a retransmitted SYN again (docs/dataplane.md).
 */
#ifndef __SPLICE_SERVICES_P4__
#define __SPLICE_SERVICES_P4__

#include "handshake.p4"

control Services(inout headers_t hdr, inout local_metadata_t meta,
                 inout standard_metadata_t standard_metadata) {
    /* The handshake slots, one register per field group (none wider than 64 bits). */
    register<bit<48>>(HS_SLOTS) hs_client;   /* client address ++ port: the slot's key ... */
    register<bit<48>>(HS_SLOTS) hs_server;   /* ... with the server's */
    register<bit<48>>(HS_SLOTS) hs_stamp;    /* last write (ingress_global_timestamp, us) */
    register<bit<8>>(HS_SLOTS) hs_state;
    register<bit<32>>(HS_SLOTS) hs_ports;    /* client ingress ++ server ingress ++ proxy port */
    register<bit<32>>(HS_SLOTS) hs_isn_c;
    register<bit<64>>(HS_SLOTS) hs_syn_c;    /* window ++ MSS ++ WS ++ SYNOPT_* of C's SYN */
    register<bit<32>>(HS_SLOTS) hs_tsval_c;
    register<bit<32>>(HS_SLOTS) hs_isn_s;
    register<bit<64>>(HS_SLOTS) hs_syn_s;
    register<bit<32>>(HS_SLOTS) hs_tsval_s;
    register<bit<64>>(HS_SLOTS) hs_p1;       /* ISN_p1 ++ TSval of P's SYN-ACK */
    register<bit<64>>(HS_SLOTS) hs_p2;       /* ISN_p2 ++ TSval of P's upstream SYN */
    register<bit<32>>(HS_SLOTS) hs_p_opts;   /* WS ++ SYNOPT_* of P's SYN-ACK, then of its SYN */
    register<bit<64>>(HS_SLOTS) hs_c_ack;    /* acked ++ window ++ TSval of C's handshake ACK */

    Handshake() handshake;

    /* What each service's entry took (its SYNs and SYN-ACKs, and its slots' segments): while the
     * services drain, the controller reads them to tell whether a flood goes on. */
    direct_counter(CounterType.packets) service_counter;

    action proxied(port_t proxy_port) {
        service_counter.count();
        meta.svc_proxy_port = proxy_port;
        meta.svc_inline = 0;
    }

    /* As proxied, and the switch runs the handshakes; smac/dmac address the proxy's host. */
    action proxied_inline(port_t proxy_port, mac_addr_t smac, mac_addr_t dmac) {
        service_counter.count();
        meta.svc_proxy_port = proxy_port;
        meta.svc_inline = 1;
        meta.svc_smac = smac;
        meta.svc_dmac = dmac;
    }

    /* As proxied_inline for the connections under way (their slots go on to the end); a new
     * one runs end to end without the proxy, unseen by the controller: what the controller sets
     * while it is too far behind the switch's digests to take more (a SYN flood), so that no
     * connection waits on it. */
    action draining(port_t proxy_port, mac_addr_t smac, mac_addr_t dmac) {
        proxied_inline(proxy_port, smac, dmac);
        meta.svc_draining = 1;
    }

    /* As proxied for the connections under way (their SYN-ACKs reach the controller by the
     * flows entry it installs with the SYN's punt), and a new connection runs end to end
     * without the proxy, unseen by the controller: draining for the controller's handshakes. */
    action proxied_draining(port_t proxy_port) {
        proxied(proxy_port);
        meta.svc_draining = 1;
    }

    table services {
        key = {
            meta.svc_addr: exact @name("server_addr");
            meta.svc_port: exact @name("server_port");
        }
        actions = {
            proxied;
            proxied_inline;
            draining;
            proxied_draining;
            @defaultonly NoAction;
        }
        const default_action = NoAction();
        counters = service_counter;
        size = SERVICES_SIZE;
    }

    apply {
        bit<8> syn_ack = hdr.tcp.flags & (TCP_SYN | TCP_ACK | TCP_RST);

        /* ---- the slot: the same for both directions of a connection ------------------------ */
        ipv4_addr_t lo_addr = hdr.ipv4.src_addr;
        bit<16> lo_port = hdr.tcp.src_port;
        ipv4_addr_t hi_addr = hdr.ipv4.dst_addr;
        bit<16> hi_port = hdr.tcp.dst_port;
        if (hdr.ipv4.src_addr > hdr.ipv4.dst_addr
                || (hdr.ipv4.src_addr == hdr.ipv4.dst_addr && hdr.tcp.src_port > hdr.tcp.dst_port)) {
            lo_addr = hdr.ipv4.dst_addr;
            lo_port = hdr.tcp.dst_port;
            hi_addr = hdr.ipv4.src_addr;
            hi_port = hdr.tcp.src_port;
        }
        bit<32> index;
        hash(index, HashAlgorithm.crc32, (bit<32>)0, { lo_addr, lo_port, hi_addr, hi_port },
             (bit<32>)HS_SLOTS);

        bit<48> client;
        bit<48> server;
        bit<48> stamp;
        bit<8> state;
        hs_client.read(client, index);
        hs_server.read(server, index);
        hs_stamp.read(stamp, index);
        hs_state.read(state, index);
        bit<48> now = standard_metadata.ingress_global_timestamp;
        bit<1> live = 0;
        bit<1> held = 0;  /* live, and not to be taken by another connection's SYN */
        if (state != HS_FREE && now - stamp < HS_TIMEOUT_US) {
            live = 1;
            held = 1;
            /* C has not ACKed S's SYN-ACK a second after the handshake's last step: most likely
             * a spoofed SYN, which would keep the slot for HS_TIMEOUT_US. A new SYN may take it;
             * the old connection, if its client answers after all, runs end to end. */
            if ((state == HS_SYN_SEEN || state == HS_SYN_ACKED || state == HS_P1_KNOWN)
                    && now - stamp >= HS_ACK_WAIT_US) {
                held = 0;
            }
        }
        bit<48> src = hdr.ipv4.src_addr ++ hdr.tcp.src_port;
        bit<48> dst = hdr.ipv4.dst_addr ++ hdr.tcp.dst_port;
        bit<1> c2s = 0;
        bit<1> s2c = 0;
        if (live == 1 && client == src && server == dst) {
            c2s = 1;
        } else if (live == 1 && client == dst && server == src) {
            s2c = 1;
        }

        /* ---- the service: the slot's server, or that of a SYN or SYN-ACK ------------------- */
        bool lookup = true;
        if (c2s == 1) {
            meta.svc_addr = hdr.ipv4.dst_addr;
            meta.svc_port = hdr.tcp.dst_port;
        } else if (s2c == 1) {
            meta.svc_addr = hdr.ipv4.src_addr;
            meta.svc_port = hdr.tcp.src_port;
        } else if (syn_ack == TCP_SYN) {
            meta.svc_addr = hdr.ipv4.dst_addr;
            meta.svc_port = hdr.tcp.dst_port;
        } else if (syn_ack == (TCP_SYN | TCP_ACK)) {
            meta.svc_addr = hdr.ipv4.src_addr;
            meta.svc_port = hdr.tcp.src_port;
        } else {
            lookup = false;
        }
        if (!lookup) {
            return;
        }
        if (!services.apply().hit) {
            return;
        }
        if (meta.svc_draining == 1 && c2s == 0 && s2c == 0 && meta.syn_on_entry == 0
                && standard_metadata.ingress_port != meta.svc_proxy_port) {
            return;  /* a SYN or SYN-ACK of no slot: routed as to an unproxied port */
        }

        /* ---- the switch's handshake -------------------------------------------------------- */
        bit<1> handled = 0;
        if (meta.svc_inline == 1) {
            handshake_t hs;
            bit<32> ports;
            bit<64> syn_c;
            bit<64> syn_s;
            bit<64> p1;
            bit<64> p2;
            bit<32> p_opts;
            bit<64> c_ack;
            hs_ports.read(ports, index);
            hs_isn_c.read(hs.isn_c, index);
            hs_syn_c.read(syn_c, index);
            hs_tsval_c.read(hs.tsval_c, index);
            hs_isn_s.read(hs.isn_s, index);
            hs_syn_s.read(syn_s, index);
            hs_tsval_s.read(hs.tsval_s, index);
            hs_p1.read(p1, index);
            hs_p2.read(p2, index);
            hs_p_opts.read(p_opts, index);
            hs_c_ack.read(c_ack, index);
            hs.state = state;
            hs.client_addr = client[47:16];
            hs.client_port = client[15:0];
            hs.server_addr = server[47:16];
            hs.server_port = server[15:0];
            hs.client_ingress = ports[31:23];
            hs.server_ingress = ports[22:14];
            hs.proxy_port = ports[13:5];
            hs.window_c = syn_c[63:48];
            hs.mss_c = syn_c[47:32];
            hs.ws_c = syn_c[31:24];
            hs.opts_c = syn_c[23:16];
            hs.window_s = syn_s[63:48];
            hs.mss_s = syn_s[47:32];
            hs.ws_s = syn_s[31:24];
            hs.opts_s = syn_s[23:16];
            hs.isn_p1 = p1[63:32];
            hs.tsval_p1 = p1[31:0];
            hs.isn_p2 = p2[63:32];
            hs.tsval_p2 = p2[31:0];
            hs.ws_p1 = p_opts[31:24];
            hs.opts_p1 = p_opts[23:16];
            hs.ws_p2 = p_opts[15:8];
            hs.opts_p2 = p_opts[7:0];
            hs.c_acked = c_ack[48:48];
            hs.window_c_ack = c_ack[47:32];
            hs.tsval_c_ack = c_ack[31:0];

            bit<1> write;
            bit<1> report;
            handshake.apply(hdr, meta, standard_metadata, hs, held, c2s, s2c, handled, write, report);

            if (write == 1) {
                hs_client.write(index, hs.client_addr ++ hs.client_port);
                hs_server.write(index, hs.server_addr ++ hs.server_port);
                hs_stamp.write(index, now);
                hs_state.write(index, hs.state);
                hs_ports.write(index, hs.client_ingress ++ hs.server_ingress ++ hs.proxy_port ++ 5w0);
                hs_isn_c.write(index, hs.isn_c);
                hs_syn_c.write(index, hs.window_c ++ hs.mss_c ++ hs.ws_c ++ hs.opts_c ++ 16w0);
                hs_tsval_c.write(index, hs.tsval_c);
                hs_isn_s.write(index, hs.isn_s);
                hs_syn_s.write(index, hs.window_s ++ hs.mss_s ++ hs.ws_s ++ hs.opts_s ++ 16w0);
                hs_tsval_s.write(index, hs.tsval_s);
                hs_p1.write(index, hs.isn_p1 ++ hs.tsval_p1);
                hs_p2.write(index, hs.isn_p2 ++ hs.tsval_p2);
                hs_p_opts.write(index, hs.ws_p1 ++ hs.opts_p1 ++ hs.ws_p2 ++ hs.opts_p2);
                hs_c_ack.write(index, 15w0 ++ hs.c_acked ++ hs.window_c_ack ++ hs.tsval_c_ack);
            }
            if (report == 1) {
                digest<handshake_t>(HS_DIGEST_RECEIVER, hs);
            }
        }
        if (handled == 1) {
            return;
        }

        /* ---- the controller's handshake ---------------------------------------------------- */
        bit<8> copy_reason = 0;
        bit<8> proxy_reason = 0;
        if (syn_ack == TCP_SYN) {
            copy_reason = PIN_SYN;
            proxy_reason = PIN_PROXY_SYN;
        } else if (syn_ack == (TCP_SYN | TCP_ACK)) {
            copy_reason = PIN_SYN_ACK;
            proxy_reason = PIN_PROXY_SYN_ACK;
        }
        if (copy_reason != 0) {
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

#endif
