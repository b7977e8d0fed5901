/*
 * p4splice: parser and deparser.
 *
 * TCP options are parsed by a bounded loop of states (one option per trip, chosen by a
 * lookahead at its kind byte) into a stack of header-union slots, so the deparser emits them
 * back in the order and at the offsets they arrived in. Every length is checked before
 * anything is extracted; a bad one raises a parser error that the Sanity control counts.
 */
#ifndef __SPLICE_PARSER_P4__
#define __SPLICE_PARSER_P4__

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
        transition next_option;
    }

    state next_option {
        transition select(meta.opt.bytes_left) {
            0: accept;
            default: parse_option;
        }
    }

    state parse_option {
        transition select(packet.lookahead<bit<8>>()) {
            TCP_OPT_EOL: parse_eol;
            TCP_OPT_NOP: parse_nop;
            TCP_OPT_MSS: parse_mss;
            TCP_OPT_WS: parse_ws;
            TCP_OPT_SACK_PERM: parse_sack_perm;
            TCP_OPT_SACK: parse_sack;
            TCP_OPT_TS: parse_ts;
            default: parse_other;
        }
    }

    /* EOL ends the list; what follows up to the data offset is padding, carried as is. */
    state parse_eol {
        packet.extract(hdr.tcp_options.next.eol);
        meta.opt.bytes_left = meta.opt.bytes_left - 1;
        transition select(meta.opt.bytes_left) {
            0: accept;
            default: parse_padding;
        }
    }

    state parse_padding {
        packet.extract(hdr.tcp_padding, ((bit<32>)meta.opt.bytes_left) << 3);
        transition accept;
    }

    state parse_nop {
        packet.extract(hdr.tcp_options.next.nop);
        meta.opt.bytes_left = meta.opt.bytes_left - 1;
        meta.opt.odd = meta.opt.odd ^ 1;
        transition next_option;
    }

    /* Options with a length byte: first make sure the length byte itself is inside the
     * header, then that the length is right for the kind, then that it fits. */
    state parse_mss {
        verify(meta.opt.bytes_left >= 2, error.TcpOptionOverrun);
        bit<16> kind_len = packet.lookahead<bit<16>>();
        verify(kind_len[7:0] == 4, error.TcpOptionLength);
        verify(meta.opt.bytes_left >= 4, error.TcpOptionOverrun);
        packet.extract(hdr.tcp_options.next.mss);
        meta.opt.bytes_left = meta.opt.bytes_left - 4;
        transition next_option;
    }

    state parse_ws {
        verify(meta.opt.bytes_left >= 2, error.TcpOptionOverrun);
        bit<16> kind_len = packet.lookahead<bit<16>>();
        verify(kind_len[7:0] == 3, error.TcpOptionLength);
        verify(meta.opt.bytes_left >= 3, error.TcpOptionOverrun);
        packet.extract(hdr.tcp_options.next.ws);
        meta.opt.bytes_left = meta.opt.bytes_left - 3;
        meta.opt.odd = meta.opt.odd ^ 1;
        transition next_option;
    }

    state parse_sack_perm {
        verify(meta.opt.bytes_left >= 2, error.TcpOptionOverrun);
        bit<16> kind_len = packet.lookahead<bit<16>>();
        verify(kind_len[7:0] == 2, error.TcpOptionLength);
        packet.extract(hdr.tcp_options.next.sack_perm);
        meta.opt.bytes_left = meta.opt.bytes_left - 2;
        transition next_option;
    }

    state parse_ts {
        verify(meta.opt.ts_seen == 0, error.TcpOptionDuplicate);
        verify(meta.opt.bytes_left >= 2, error.TcpOptionOverrun);
        bit<16> kind_len = packet.lookahead<bit<16>>();
        verify(kind_len[7:0] == 10, error.TcpOptionLength);
        verify(meta.opt.bytes_left >= 10, error.TcpOptionOverrun);
        packet.extract(hdr.tcp_options.next.ts);
        meta.opt.ts_seen = 1;
        meta.opt.ts_odd = meta.opt.odd;
        meta.opt.bytes_left = meta.opt.bytes_left - 10;
        transition next_option;
    }

    /* SACK: the kind/length head, then one slot per 8-byte block (1 to 4 blocks). */
    state parse_sack {
        verify(meta.opt.sack_seen == 0, error.TcpOptionDuplicate);
        verify(meta.opt.bytes_left >= 2, error.TcpOptionOverrun);
        bit<16> kind_len = packet.lookahead<bit<16>>();
        bit<8> len = kind_len[7:0];
        verify(len == 10 || len == 18 || len == 26 || len == 34, error.TcpOptionLength);
        verify(meta.opt.bytes_left >= len, error.TcpOptionOverrun);
        packet.extract(hdr.tcp_options.next.sack);
        meta.opt.sack_seen = 1;
        meta.opt.sack_odd = meta.opt.odd;
        meta.opt.bytes_left = meta.opt.bytes_left - len;
        meta.opt.sack_left = (len - 2) >> 3;
        transition parse_sack_block;
    }

    state parse_sack_block {
        packet.extract(hdr.tcp_options.next.sack_block);
        meta.opt.sack_left = meta.opt.sack_left - 1;
        transition select(meta.opt.sack_left) {
            0: next_option;
            default: parse_sack_block;
        }
    }

    /* Unknown kinds are skipped by their length and carried untouched. */
    state parse_other {
        verify(meta.opt.bytes_left >= 2, error.TcpOptionOverrun);
        bit<16> kind_len = packet.lookahead<bit<16>>();
        bit<8> len = kind_len[7:0];
        verify(len >= 2, error.TcpOptionLength);
        verify(meta.opt.bytes_left >= len, error.TcpOptionOverrun);
        packet.extract(hdr.tcp_options.next.other, ((bit<32>)len - 2) << 3);
        meta.opt.bytes_left = meta.opt.bytes_left - len;
        meta.opt.odd = meta.opt.odd ^ len[0:0];
        transition next_option;
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
