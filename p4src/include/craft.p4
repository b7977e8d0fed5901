/*
 * p4splice: packets the switch builds for its handshake (handshake.p4 decides, this writes).
 *
 * Egress turns a clone (meta.craft_on_clone = 1), or the packet itself, into the segment
 * meta.craft_* describes, byte for byte what the controller's frames.build_frame makes of the
 * same segment: IPv4 without options, DF, identification 0, TTL 64; TCP options in the layout
 * Linux gives a SYN (options.py, SynOptions.to_options): MSS, then SACK-permitted + TS or
 * NOP NOP TS or NOP NOP SACK-permitted, then NOP WS. Every option field starts on an even offset
 * in that layout, so both checksums are sums of known 16-bit words: no pass over the packet.
 * These segments never carry payload (handshake.p4 declines the ones that would).
 */
#ifndef __SPLICE_CRAFT_P4__
#define __SPLICE_CRAFT_P4__

#define SLOT_CLEAR(i) \
    hdr.tcp_options[i].eol.setInvalid(); \
    hdr.tcp_options[i].nop.setInvalid(); \
    hdr.tcp_options[i].mss.setInvalid(); \
    hdr.tcp_options[i].ws.setInvalid(); \
    hdr.tcp_options[i].sack_perm.setInvalid(); \
    hdr.tcp_options[i].sack.setInvalid(); \
    hdr.tcp_options[i].sack_block.setInvalid(); \
    hdr.tcp_options[i].ts.setInvalid(); \
    hdr.tcp_options[i].other.setInvalid();
#define SLOT_NOP(i) \
    hdr.tcp_options[i].nop.setValid(); \
    hdr.tcp_options[i].nop.kind = TCP_OPT_NOP;

control Craft(inout headers_t hdr, inout local_metadata_t meta) {
    apply {
        FOR_EACH_SLOT(SLOT_CLEAR)
        hdr.tcp_padding.setInvalid();
        hdr.ipv4_options.setInvalid();

        bool mss = (meta.craft_opts & SYNOPT_MSS) != 0;
        bool ws = (meta.craft_opts & SYNOPT_WS) != 0;
        bool sack = (meta.craft_opts & SYNOPT_SACK) != 0;
        bool ts = (meta.craft_opts & SYNOPT_TS) != 0;
        bit<16> opt_len = 0;
        bit<32> opt_sum = 0;
        if (mss) {
            hdr.tcp_options[0].mss.setValid();
            hdr.tcp_options[0].mss.kind = TCP_OPT_MSS;
            hdr.tcp_options[0].mss.len = 4;
            hdr.tcp_options[0].mss.mss = meta.craft_mss;
            opt_len = opt_len + 4;
            opt_sum = opt_sum + 0x0204 + (bit<32>)meta.craft_mss;
        }
        if (ts || sack) {
            if (!(ts && sack)) {
                SLOT_NOP(1)
                SLOT_NOP(2)
                opt_sum = opt_sum + 0x0101;
            }
            if (sack) {
                hdr.tcp_options[3].sack_perm.setValid();
                hdr.tcp_options[3].sack_perm.kind = TCP_OPT_SACK_PERM;
                hdr.tcp_options[3].sack_perm.len = 2;
                opt_sum = opt_sum + 0x0402;
            }
            opt_len = opt_len + 4;
        }
        if (ts) {
            hdr.tcp_options[4].ts.setValid();
            hdr.tcp_options[4].ts.kind = TCP_OPT_TS;
            hdr.tcp_options[4].ts.len = 10;
            hdr.tcp_options[4].ts.tsval = meta.craft_tsval;
            hdr.tcp_options[4].ts.tsecr = meta.craft_tsecr;
            opt_len = opt_len + 8;
            opt_sum = opt_sum + 0x080a
                    + (bit<32>)meta.craft_tsval[31:16] + (bit<32>)meta.craft_tsval[15:0]
                    + (bit<32>)meta.craft_tsecr[31:16] + (bit<32>)meta.craft_tsecr[15:0];
        }
        if (ws) {
            SLOT_NOP(5)
            hdr.tcp_options[6].ws.setValid();
            hdr.tcp_options[6].ws.kind = TCP_OPT_WS;
            hdr.tcp_options[6].ws.len = 3;
            hdr.tcp_options[6].ws.shift = meta.craft_ws;
            opt_len = opt_len + 4;
            opt_sum = opt_sum + 0x0103 + (0x0300 | (bit<32>)meta.craft_ws);
        }

        hdr.ethernet.src_addr = meta.craft_smac;
        hdr.ethernet.dst_addr = meta.craft_dmac;

        bit<16> tcp_len = 20 + opt_len;
        hdr.ipv4.version = 4;
        hdr.ipv4.ihl = 5;
        hdr.ipv4.diffserv = 0;
        hdr.ipv4.total_len = 20 + tcp_len;
        hdr.ipv4.identification = 0;
        hdr.ipv4.flags = 2;      /* DF */
        hdr.ipv4.frag_offset = 0;
        hdr.ipv4.ttl = 64;
        hdr.ipv4.protocol = IP_PROTO_TCP;
        hdr.ipv4.src_addr = meta.craft_src_addr;
        hdr.ipv4.dst_addr = meta.craft_dst_addr;

        hdr.tcp.src_port = meta.craft_src_port;
        hdr.tcp.dst_port = meta.craft_dst_port;
        hdr.tcp.seq_no = meta.craft_seq;
        hdr.tcp.ack_no = meta.craft_ack;
        hdr.tcp.data_offset = (bit<4>)(tcp_len >> 2);
        hdr.tcp.res = 0;
        hdr.tcp.flags = meta.craft_flags;
        hdr.tcp.window = meta.craft_window;
        hdr.tcp.urgent_ptr = 0;

        bit<32> addr_sum = (bit<32>)hdr.ipv4.src_addr[31:16] + (bit<32>)hdr.ipv4.src_addr[15:0]
                         + (bit<32>)hdr.ipv4.dst_addr[31:16] + (bit<32>)hdr.ipv4.dst_addr[15:0];
        bit<32> ip_sum = 0x4500 + (bit<32>)hdr.ipv4.total_len + 0x4000 + (64 << 8 | 6) + addr_sum;
        bit<32> tcp_sum = addr_sum + 6 + (bit<32>)tcp_len
                        + (bit<32>)hdr.tcp.src_port + (bit<32>)hdr.tcp.dst_port
                        + (bit<32>)hdr.tcp.seq_no[31:16] + (bit<32>)hdr.tcp.seq_no[15:0]
                        + (bit<32>)hdr.tcp.ack_no[31:16] + (bit<32>)hdr.tcp.ack_no[15:0]
                        + ((bit<32>)hdr.tcp.data_offset << 12) + (bit<32>)hdr.tcp.flags
                        + (bit<32>)hdr.tcp.window + opt_sum;
        meta.ipv4_csum_residual = csum_fold(ip_sum);
        meta.tcp_csum_residual = csum_fold(tcp_sum);
        meta.ipv4_csum_update = 1;
        meta.tcp_csum_update = 1;
    }
}

#endif
