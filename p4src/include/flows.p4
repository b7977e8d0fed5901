/*
 * p4splice: per-flow translation (design note sections 2 and 3).
 *
 * The flows table matches one direction of one leg exactly (ingress port, addresses, ports).
 * Its actions only record what to do in metadata; the Translate control does the rewrite
 * afterwards, so the table's action data stays small and the arithmetic is the same code for
 * every action. All arithmetic is mod 2^32 (bit<32> wraps), so deltas are given as unsigned
 * 32-bit values: subtracting D is adding 2^32 - D.
 *
 * What Translate changes, and only where the segment has the field:
 *   seq                 += seq_delta
 *   ack                 += ack_delta        (ACK flag set)
 *   every SACK edge     += ack_delta
 *   TSval               += tsval_delta      (timestamp option present)
 *   TSecr               += tsecr_delta      (timestamp option present and ACK flag set)
 *   window               = min(0xFFFF, (window << win_shift_from) >> win_shift_to)  (not on SYN)
 *   addresses, ports     = the translate_nat parameters
 * and it accumulates the RFC 1624 deltas for IngressChecksums.
 */
#ifndef __SPLICE_FLOWS_P4__
#define __SPLICE_FLOWS_P4__

/* Shared bodies of the flow actions. Macros rather than helper actions called from actions,
 * so the P4Info lists only the actions a flow entry can name. */
/* Where a forwarding entry sends the segment; Flows.apply carries it out unless the segment is
 * a SYN without ACK (a new connection's, see there). */
#define FORWARD_TO(port, smac, dmac) \
    meta.xlate.forward = 1; \
    meta.xlate.port = port; \
    meta.xlate.smac = smac; \
    meta.xlate.dmac = dmac;
#define SET_DELTAS() \
    meta.xlate.active = 1; \
    meta.xlate.seq_delta = seq_delta; \
    meta.xlate.ack_delta = ack_delta; \
    meta.xlate.tsval_delta = tsval_delta; \
    meta.xlate.tsecr_delta = tsecr_delta; \
    meta.xlate.win_shift_from = win_shift_from; \
    meta.xlate.win_shift_to = win_shift_to;

control Flows(inout headers_t hdr, inout local_metadata_t meta,
              inout standard_metadata_t standard_metadata) {
    direct_counter(CounterType.packets_and_bytes) flow_counter;

    /* Forward with MAC rewrite and translate. */
    action translate(port_t port, mac_addr_t smac, mac_addr_t dmac,
                     bit<32> seq_delta, bit<32> ack_delta, bit<32> tsval_delta,
                     bit<32> tsecr_delta, bit<8> win_shift_from, bit<8> win_shift_to) {
        flow_counter.count();
        FORWARD_TO(port, smac, dmac)
        SET_DELTAS()
    }

    /* As translate, and rewrite addresses and ports as well (a later load-balancing mode). */
    action translate_nat(port_t port, mac_addr_t smac, mac_addr_t dmac,
                         bit<32> seq_delta, bit<32> ack_delta, bit<32> tsval_delta,
                         bit<32> tsecr_delta, bit<8> win_shift_from, bit<8> win_shift_to,
                         ipv4_addr_t new_src_addr, ipv4_addr_t new_dst_addr,
                         bit<16> new_src_port, bit<16> new_dst_port) {
        flow_counter.count();
        FORWARD_TO(port, smac, dmac)
        SET_DELTAS()
        meta.xlate.nat = 1;
        meta.xlate.new_src_addr = new_src_addr;
        meta.xlate.new_dst_addr = new_dst_addr;
        meta.xlate.new_src_port = new_src_port;
        meta.xlate.new_dst_port = new_dst_port;
    }

    /* As translate, but a segment carrying payload, SYN or FIN never reaches its destination
     * (its sender will retransmit): used while a splice switches over. Pure ACKs and RSTs pass;
     * a data segment goes to the controller instead (reason HELD), which passes its ACK on and
     * keeps the payload to send on once the splice is in place. */
    action hold(port_t port, mac_addr_t smac, mac_addr_t dmac,
                bit<32> seq_delta, bit<32> ack_delta, bit<32> tsval_delta,
                bit<32> tsecr_delta, bit<8> win_shift_from, bit<8> win_shift_to) {
        flow_counter.count();
        FORWARD_TO(port, smac, dmac)
        SET_DELTAS()
        meta.xlate.hold = 1;
    }

    /* As hold, but the switch itself sends P a data segment's pure ACK (translated; timestamps
     * kept, SACK blocks not), and the controller gets a copy of the segment (reason HELD_COPY)
     * only to keep its payload and send it on once the splice is in place: without that the
     * sender, whose every segment (tail-loss probe included) the hold dropped, would wait for
     * its retransmission timeout. */
    action hold_acking(port_t port, mac_addr_t smac, mac_addr_t dmac,
                       bit<32> seq_delta, bit<32> ack_delta, bit<32> tsval_delta,
                       bit<32> tsecr_delta, bit<8> win_shift_from, bit<8> win_shift_to) {
        flow_counter.count();
        FORWARD_TO(port, smac, dmac)
        SET_DELTAS()
        meta.xlate.hold = 1;
        meta.xlate.hold_acks = 1;
    }

    /* To the controller only (packet-in reason PUNT), untouched. */
    action punt() {
        flow_counter.count();
        standard_metadata.egress_spec = CPU_PORT_ID;
        meta.forwarded = 1;
        meta.pin_ingress_port = standard_metadata.ingress_port;
        meta.pin_reason = PIN_PUNT;
    }

    action drop() {
        flow_counter.count();
        mark_to_drop(standard_metadata);
        meta.forwarded = 1;
    }

    table flows {
        key = {
            standard_metadata.ingress_port: exact @name("ingress_port");
            hdr.ipv4.src_addr: exact @name("src_addr");
            hdr.ipv4.dst_addr: exact @name("dst_addr");
            hdr.tcp.src_port: exact @name("src_port");
            hdr.tcp.dst_port: exact @name("dst_port");
        }
        actions = {
            translate;
            translate_nat;
            hold;
            hold_acking;
            punt;
            drop;
            @defaultonly NoAction;
        }
        const default_action = NoAction();
        counters = flow_counter;
#if FLOWS_IDLE_TIMEOUT
        support_timeout = true;
#endif
        size = FLOWS_SIZE;
    }

    apply {
        if (flows.apply().hit) {
            if (meta.xlate.forward == 1 && (hdr.tcp.flags & (TCP_SYN | TCP_ACK | TCP_RST)) == TCP_SYN) {
                /* A SYN without ACK meeting a forwarding entry opens a new connection on the
                 * 4-tuple of one whose entries still linger (a client's kernel may use a port
                 * again within seconds). The old entries must not translate it, nor its peer's
                 * answer: it goes the services way with syn_on_entry set, which hands it to the
                 * controller (services.p4), and the controller removes the old flow's entries
                 * before it sends the SYN on. */
                meta.xlate.active = 0;
                meta.syn_on_entry = 1;
            } else {
                if (meta.xlate.forward == 1) {
                    standard_metadata.egress_spec = meta.xlate.port;
                    hdr.ethernet.src_addr = meta.xlate.smac;
                    hdr.ethernet.dst_addr = meta.xlate.dmac;
                    meta.forwarded = 1;
                    meta.decrement_ttl = 1;
                }
                /* Teardown: the controller learns of a FIN from a digest, and gets a copy of
                 * the original RST, or of a FIN the hold drops (it never reached P). A punted
                 * segment already goes to the controller whole. */
                if (meta.pin_reason != PIN_PUNT && (hdr.tcp.flags & (TCP_FIN | TCP_RST)) != 0) {
                    if ((hdr.tcp.flags & TCP_RST) == 0 && meta.xlate.hold == 0) {
                        REPORT_FIN()
                    } else {
                        meta.pin_ingress_port = standard_metadata.ingress_port;
                        meta.pin_reason = (hdr.tcp.flags & TCP_RST) != 0 ? PIN_RST : PIN_FIN_HELD;
                        clone_preserving_field_list(CloneType.I2E, CPU_CLONE_SESSION, 1);
                    }
                }
            }
        }
    }
}

/* One TCP option slot: pick up the timestamp option, if this slot holds it. */
#define TS_GATHER(i) \
    if (hdr.tcp_options[i].ts.isValid()) { \
        tsval = hdr.tcp_options[i].ts.tsval; \
        tsecr = hdr.tcp_options[i].ts.tsecr; \
    }
/* ... and write the translated values back into the same slot. */
#define TS_SCATTER(i) \
    if (hdr.tcp_options[i].ts.isValid()) { \
        hdr.tcp_options[i].ts.tsval = new_tsval; \
        hdr.tcp_options[i].ts.tsecr = new_tsecr; \
    }
/* One SACK block: both edges move by the ack delta. */
#define SACK_BLOCK(i) \
    if (hdr.tcp_options[i].sack_block.isValid()) { \
        bit<32> left_##i = hdr.tcp_options[i].sack_block.left + meta.xlate.ack_delta; \
        bit<32> right_##i = hdr.tcp_options[i].sack_block.right + meta.xlate.ack_delta; \
        sack_sum = sack_sum + csum_word32(hdr.tcp_options[i].sack_block.left, left_##i) \
                            + csum_word32(hdr.tcp_options[i].sack_block.right, right_##i); \
        hdr.tcp_options[i].sack_block.left = left_##i; \
        hdr.tcp_options[i].sack_block.right = right_##i; \
    }
#define FOR_EACH_SLOT(M) \
    M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7) \
    M(8) M(9) M(10) M(11) M(12) M(13) M(14) M(15)

control Translate(inout headers_t hdr, inout local_metadata_t meta,
                  inout standard_metadata_t standard_metadata) {
    apply {
        if (meta.xlate.active == 1) {
            bool has_ack = (hdr.tcp.flags & TCP_ACK) != 0;
            bool has_syn = (hdr.tcp.flags & TCP_SYN) != 0;
            bool has_fin = (hdr.tcp.flags & TCP_FIN) != 0;
            bool held = meta.xlate.hold == 1 && (meta.l4_payload_len != 0 || has_syn || has_fin);
            /* hold_acking passes a FIN's ACK on too: a client that reads the answer and closes
             * acknowledges it on its FIN, and without it P's drain waits for a retransmission. */
            if (held && (has_syn || (has_fin && meta.xlate.hold_acks == 0) || (meta.xlate.hold_acks == 1 && !has_ack))) {
                mark_to_drop(standard_metadata);
            } else if (held && meta.xlate.hold_acks == 0) {
                /* Its payload must not reach P, but its ACK may be what P's drain waits for (a
                 * busy sender's ACKs all ride on data): the controller passes the ACK on,
                 * untranslated here as with a punt (hold_acking: the switch does, below). */
                standard_metadata.egress_spec = CPU_PORT_ID;
                meta.pin_ingress_port = standard_metadata.ingress_port;
                meta.pin_reason = PIN_HELD;
            } else {
                bit<32> tcp_sum = 0;

                /* sequence and acknowledgment numbers (offsets 4 and 8: even) */
                bit<32> new_seq = hdr.tcp.seq_no + meta.xlate.seq_delta;
                tcp_sum = tcp_sum + csum_word32(hdr.tcp.seq_no, new_seq);
                hdr.tcp.seq_no = new_seq;
                if (has_ack) {
                    bit<32> new_ack = hdr.tcp.ack_no + meta.xlate.ack_delta;
                    tcp_sum = tcp_sum + csum_word32(hdr.tcp.ack_no, new_ack);
                    hdr.tcp.ack_no = new_ack;
                }

                /* window: a SYN's window is never scaled */
                if (!has_syn) {
                    bit<32> wide = ((bit<32>)hdr.tcp.window) << meta.xlate.win_shift_from;
                    wide = wide >> meta.xlate.win_shift_to;
                    bit<16> new_window = 0xFFFF;
                    if (wide <= 0xFFFF) {
                        new_window = wide[15:0];
                    }
                    tcp_sum = tcp_sum + csum_word(hdr.tcp.window, new_window);
                    hdr.tcp.window = new_window;
                }

                /* timestamps: the option may sit at an odd offset */
                if (meta.opt.ts_seen == 1) {
                    bit<32> tsval = 0;
                    bit<32> tsecr = 0;
                    FOR_EACH_SLOT(TS_GATHER)
                    bit<32> new_tsval = tsval + meta.xlate.tsval_delta;
                    bit<32> new_tsecr = tsecr;
                    if (has_ack) {
                        new_tsecr = tsecr + meta.xlate.tsecr_delta;
                    }
                    bit<16> ts_delta = csum_fold(csum_word32(tsval, new_tsval)
                                                 + csum_word32(tsecr, new_tsecr));
                    tcp_sum = tcp_sum + (bit<32>)csum_swap(ts_delta, meta.opt.ts_odd);
                    FOR_EACH_SLOT(TS_SCATTER)
                    meta.craft_tsval = new_tsval;
                    meta.craft_tsecr = new_tsecr;
                }

                /* SACK edges: all blocks share the option's parity */
                if (meta.opt.sack_seen == 1) {
                    bit<32> sack_sum = 0;
                    FOR_EACH_SLOT(SACK_BLOCK)
                    tcp_sum = tcp_sum + (bit<32>)csum_swap(csum_fold(sack_sum), meta.opt.sack_odd);
                }

                /* addresses (in the IPv4 header and the TCP pseudo-header) and ports */
                if (meta.xlate.nat == 1) {
                    bit<32> addr_sum = csum_word32(hdr.ipv4.src_addr, meta.xlate.new_src_addr)
                                     + csum_word32(hdr.ipv4.dst_addr, meta.xlate.new_dst_addr);
                    meta.ipv4_csum_delta = meta.ipv4_csum_delta + addr_sum;
                    meta.ipv4_csum_update = 1;
                    tcp_sum = tcp_sum + addr_sum
                            + csum_word(hdr.tcp.src_port, meta.xlate.new_src_port)
                            + csum_word(hdr.tcp.dst_port, meta.xlate.new_dst_port);
                    hdr.ipv4.src_addr = meta.xlate.new_src_addr;
                    hdr.ipv4.dst_addr = meta.xlate.new_dst_addr;
                    hdr.tcp.src_port = meta.xlate.new_src_port;
                    hdr.tcp.dst_port = meta.xlate.new_dst_port;
                }

                meta.tcp_csum_delta = meta.tcp_csum_delta + tcp_sum;
                meta.tcp_csum_update = 1;

                if (held) {
                    /* hold_acking: egress rebuilds the segment as its pure ACK (craft.p4, which
                     * writes both checksums whole), and the payload is cut off behind it. */
                    meta.craft_kind = CRAFT_HELD_ACK;
                    meta.craft_on_clone = 0;
                    meta.craft_smac = hdr.ethernet.src_addr;
                    meta.craft_dmac = hdr.ethernet.dst_addr;
                    meta.craft_src_addr = hdr.ipv4.src_addr;
                    meta.craft_dst_addr = hdr.ipv4.dst_addr;
                    meta.craft_src_port = hdr.tcp.src_port;
                    meta.craft_dst_port = hdr.tcp.dst_port;
                    meta.craft_seq = hdr.tcp.seq_no;
                    meta.craft_ack = hdr.tcp.ack_no;
                    meta.craft_flags = TCP_ACK;
                    meta.craft_window = hdr.tcp.window;
                    meta.craft_mss = 0;
                    meta.craft_ws = 0;
                    bit<32> frame_len = 14 + 20 + 20;
                    meta.craft_opts = 0;
                    if (meta.opt.ts_seen == 1) {
                        meta.craft_opts = SYNOPT_TS;
                        frame_len = frame_len + 12;  /* NOP NOP TS */
                    } else {
                        meta.craft_tsval = 0;
                        meta.craft_tsecr = 0;
                    }
                    truncate(frame_len);
                    if (!has_fin) {  /* a FIN has its copy already (FIN_HELD): one clone a packet */
                        meta.pin_ingress_port = standard_metadata.ingress_port;
                        meta.pin_reason = PIN_HELD_COPY;
                        clone_preserving_field_list(CloneType.I2E, CPU_CLONE_SESSION, 1);
                    }
                }
            }
        }
    }
}

#endif
