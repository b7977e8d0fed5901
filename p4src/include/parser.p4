/*
 * p4splice: parser and deparser.
 *
 * TCP options are parsed one per slot (the state chosen by a lookahead at the kind byte) into a
 * stack of header-union slots, so the deparser emits them back in the order and at the offsets
 * they arrived in. Every length is checked before
 * anything is extracted; a bad one raises a parser error that the Sanity control counts.
 */
#ifndef __SPLICE_PARSER_P4__
#define __SPLICE_PARSER_P4__

/*
 * The states of option slot i (n = i + 1), one option per slot. The option loop is unrolled
 * with constant slot indices rather than written as a loop over `tcp_options.next`: a
 * Tofino parser needs it unrolled anyway, and p4sim cannot yet extract into a member of
 * `stack.next` for a header-union stack (see docs/dataplane.md).
 *
 * Options with a length byte first check that the length byte is inside the header, then
 * that the length is right for the kind, then that the option fits.
 */
#define TCP_OPTION_STATES(i, n) \
    state opt_##i { \
        transition select(meta.opt.bytes_left) { \
            0: accept; \
            default: opt_kind_##i; \
        } \
    } \
    state opt_kind_##i { \
        transition select(packet.lookahead<bit<8>>()) { \
            TCP_OPT_EOL: opt_eol_##i; \
            TCP_OPT_NOP: opt_nop_##i; \
            TCP_OPT_MSS: opt_mss_##i; \
            TCP_OPT_WS: opt_ws_##i; \
            TCP_OPT_SACK_PERM: opt_sack_perm_##i; \
            TCP_OPT_SACK: opt_sack_##i; \
            TCP_OPT_TS: opt_ts_##i; \
            default: opt_other_##i; \
        } \
    } \
    state opt_eol_##i { \
        packet.extract(hdr.tcp_options[i].eol); \
        meta.opt.bytes_left = meta.opt.bytes_left - 1; \
        transition select(meta.opt.bytes_left) { \
            0: accept; \
            default: parse_padding; \
        } \
    } \
    state opt_nop_##i { \
        packet.extract(hdr.tcp_options[i].nop); \
        meta.opt.bytes_left = meta.opt.bytes_left - 1; \
        meta.opt.odd = meta.opt.odd ^ 1; \
        transition opt_##n; \
    } \
    state opt_mss_##i { \
        verify(meta.opt.bytes_left >= 2, error.TcpOptionOverrun); \
        bit<16> kind_len = packet.lookahead<bit<16>>(); \
        verify(kind_len[7:0] == 4, error.TcpOptionLength); \
        verify(meta.opt.bytes_left >= 4, error.TcpOptionOverrun); \
        packet.extract(hdr.tcp_options[i].mss); \
        meta.opt.syn_dups = meta.opt.syn_dups | (meta.opt.syn_flags & SYNOPT_MSS); \
        meta.opt.syn_flags = meta.opt.syn_flags | SYNOPT_MSS; \
        meta.opt.mss = hdr.tcp_options[i].mss.mss; \
        meta.opt.bytes_left = meta.opt.bytes_left - 4; \
        transition opt_##n; \
    } \
    state opt_ws_##i { \
        verify(meta.opt.bytes_left >= 2, error.TcpOptionOverrun); \
        bit<16> kind_len = packet.lookahead<bit<16>>(); \
        verify(kind_len[7:0] == 3, error.TcpOptionLength); \
        verify(meta.opt.bytes_left >= 3, error.TcpOptionOverrun); \
        packet.extract(hdr.tcp_options[i].ws); \
        meta.opt.syn_dups = meta.opt.syn_dups | (meta.opt.syn_flags & SYNOPT_WS); \
        meta.opt.syn_flags = meta.opt.syn_flags | SYNOPT_WS; \
        meta.opt.ws = hdr.tcp_options[i].ws.shift; \
        meta.opt.bytes_left = meta.opt.bytes_left - 3; \
        meta.opt.odd = meta.opt.odd ^ 1; \
        transition opt_##n; \
    } \
    state opt_sack_perm_##i { \
        verify(meta.opt.bytes_left >= 2, error.TcpOptionOverrun); \
        bit<16> kind_len = packet.lookahead<bit<16>>(); \
        verify(kind_len[7:0] == 2, error.TcpOptionLength); \
        packet.extract(hdr.tcp_options[i].sack_perm); \
        meta.opt.syn_dups = meta.opt.syn_dups | (meta.opt.syn_flags & SYNOPT_SACK); \
        meta.opt.syn_flags = meta.opt.syn_flags | SYNOPT_SACK; \
        meta.opt.bytes_left = meta.opt.bytes_left - 2; \
        transition opt_##n; \
    } \
    state opt_ts_##i { \
        verify(meta.opt.ts_seen == 0, error.TcpOptionDuplicate); \
        verify(meta.opt.bytes_left >= 2, error.TcpOptionOverrun); \
        bit<16> kind_len = packet.lookahead<bit<16>>(); \
        verify(kind_len[7:0] == 10, error.TcpOptionLength); \
        verify(meta.opt.bytes_left >= 10, error.TcpOptionOverrun); \
        packet.extract(hdr.tcp_options[i].ts); \
        meta.opt.ts_seen = 1; \
        meta.opt.ts_odd = meta.opt.odd; \
        meta.opt.syn_flags = meta.opt.syn_flags | SYNOPT_TS; \
        meta.opt.tsval = hdr.tcp_options[i].ts.tsval; \
        meta.opt.tsecr = hdr.tcp_options[i].ts.tsecr; \
        meta.opt.bytes_left = meta.opt.bytes_left - 10; \
        transition opt_##n; \
    } \
    state opt_sack_##i { \
        verify(meta.opt.sack_seen == 0, error.TcpOptionDuplicate); \
        verify(meta.opt.bytes_left >= 2, error.TcpOptionOverrun); \
        bit<16> kind_len = packet.lookahead<bit<16>>(); \
        bit<8> len = kind_len[7:0]; \
        verify(len == 10 || len == 18 || len == 26 || len == 34, error.TcpOptionLength); \
        verify(meta.opt.bytes_left >= len, error.TcpOptionOverrun); \
        packet.extract(hdr.tcp_options[i].sack); \
        meta.opt.sack_seen = 1; \
        meta.opt.sack_odd = meta.opt.odd; \
        meta.opt.bytes_left = meta.opt.bytes_left - len; \
        meta.opt.sack_left = (len - 2) >> 3; \
        transition sack_block_##n; \
    } \
    state opt_other_##i { \
        verify(meta.opt.bytes_left >= 2, error.TcpOptionOverrun); \
        bit<16> kind_len = packet.lookahead<bit<16>>(); \
        bit<8> len = kind_len[7:0]; \
        verify(len >= 2, error.TcpOptionLength); \
        verify(meta.opt.bytes_left >= len, error.TcpOptionOverrun); \
        packet.extract(hdr.tcp_options[i].other, ((bit<32>)len - 2) << 3); \
        meta.opt.bytes_left = meta.opt.bytes_left - len; \
        meta.opt.odd = meta.opt.odd ^ len[0:0]; \
        transition opt_##n; \
    }

/* A SACK block in slot i: the option's head sits in an earlier slot. */
#define SACK_BLOCK_STATE(i, n) \
    state sack_block_##i { \
        packet.extract(hdr.tcp_options[i].sack_block); \
        meta.opt.sack_left = meta.opt.sack_left - 1; \
        transition select(meta.opt.sack_left) { \
            0: opt_##n; \
            default: sack_block_##n; \
        } \
    }

parser SpliceParser(packet_in packet, out headers_t hdr, inout local_metadata_t meta,
                    inout standard_metadata_t standard_metadata) {
    state start {
        meta.opt.bytes_left = 0;
        meta.opt.sack_left = 0;
        meta.opt.odd = 0;
        meta.opt.ts_seen = 0;
        meta.opt.ts_odd = 0;
        meta.opt.sack_seen = 0;
        meta.opt.sack_odd = 0;
        meta.opt.syn_flags = 0;
        meta.opt.syn_dups = 0;
        meta.opt.mss = 0;
        meta.opt.ws = 0;
        meta.opt.tsval = 0;
        meta.opt.tsecr = 0;
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
        transition select(hdr.ethernet.ether_type) {
            ETHERTYPE_IPV4: parse_ipv4;
            default: accept;
        }
    }

    state parse_ipv4 {
        packet.extract(hdr.ipv4);
        verify(hdr.ipv4.version == 4 && hdr.ipv4.ihl >= 5, error.Ipv4HeaderBad);
        transition select(hdr.ipv4.ihl) {
            5: parse_l4;
            default: parse_ipv4_options;
        }
    }

    state parse_ipv4_options {
        packet.extract(hdr.ipv4_options, ((bit<32>)hdr.ipv4.ihl - 5) * 32);
        transition parse_l4;
    }

    /* Only the first fragment carries the TCP header. */
    state parse_l4 {
        transition select(hdr.ipv4.frag_offset, hdr.ipv4.protocol) {
            (0, IP_PROTO_TCP): parse_tcp;
            default: accept;
        }
    }

    state parse_tcp {
        packet.extract(hdr.tcp);
        verify(hdr.tcp.data_offset >= 5, error.TcpDataOffsetTooSmall);
        meta.opt.bytes_left = ((bit<8>)hdr.tcp.data_offset << 2) - 20;
        transition opt_0;
    }

    /* The options, unrolled: TCP_OPTION_STATES(i, i + 1) parses the option in slot i. */
    TCP_OPTION_STATES(0, 1)
    TCP_OPTION_STATES(1, 2)
    TCP_OPTION_STATES(2, 3)
    TCP_OPTION_STATES(3, 4)
    TCP_OPTION_STATES(4, 5)
    TCP_OPTION_STATES(5, 6)
    TCP_OPTION_STATES(6, 7)
    TCP_OPTION_STATES(7, 8)
    TCP_OPTION_STATES(8, 9)
    TCP_OPTION_STATES(9, 10)
    TCP_OPTION_STATES(10, 11)
    TCP_OPTION_STATES(11, 12)
    TCP_OPTION_STATES(12, 13)
    TCP_OPTION_STATES(13, 14)
    TCP_OPTION_STATES(14, 15)
    TCP_OPTION_STATES(15, 16)
    SACK_BLOCK_STATE(1, 2)
    SACK_BLOCK_STATE(2, 3)
    SACK_BLOCK_STATE(3, 4)
    SACK_BLOCK_STATE(4, 5)
    SACK_BLOCK_STATE(5, 6)
    SACK_BLOCK_STATE(6, 7)
    SACK_BLOCK_STATE(7, 8)
    SACK_BLOCK_STATE(8, 9)
    SACK_BLOCK_STATE(9, 10)
    SACK_BLOCK_STATE(10, 11)
    SACK_BLOCK_STATE(11, 12)
    SACK_BLOCK_STATE(12, 13)
    SACK_BLOCK_STATE(13, 14)
    SACK_BLOCK_STATE(14, 15)
    SACK_BLOCK_STATE(15, 16)

    /* All slots used: fine if the header ends here, malformed otherwise. */
    state opt_16 {
        transition select(meta.opt.bytes_left) {
            0: accept;
            default: too_many_options;
        }
    }

    state sack_block_16 {
        transition too_many_options;
    }

    state too_many_options {
        verify(false, error.TcpTooManyOptions);
        transition accept;
    }

    /* EOL ends the list; what follows up to the data offset is padding, carried as is. */
    state parse_padding {
        packet.extract(hdr.tcp_padding, ((bit<32>)meta.opt.bytes_left) << 3);
        transition accept;
    }
}

control SpliceDeparser(packet_out packet, in headers_t hdr) {
    apply {
        packet.emit(hdr.packet_in);
        packet.emit(hdr.ethernet);
        packet.emit(hdr.ipv4);
        packet.emit(hdr.ipv4_options);
        packet.emit(hdr.tcp);
        packet.emit(hdr.tcp_options);
        packet.emit(hdr.tcp_padding);
    }
}

#endif
