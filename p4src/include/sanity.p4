/*
 * p4splice: malformed-input policy. A packet the parser rejected, or whose lengths do not
 * add up, is counted by reason and dropped before any table sees it: it is never rewritten
 * (a half-parsed segment cannot be translated correctly) and never reaches the controller.
 */
#ifndef __SPLICE_SANITY_P4__
#define __SPLICE_SANITY_P4__

control Sanity(inout headers_t hdr, inout local_metadata_t meta,
               inout standard_metadata_t standard_metadata) {
    counter(MAL_REASONS, CounterType.packets) malformed;

    apply {
        bit<32> reason = 0;
        /* parser_error is compared in place: no local of type error, one construct less for
         * p4c-bm2-ss to lower into BMv2 JSON */
        if (standard_metadata.parser_error == error.PacketTooShort) {
            reason = MAL_TRUNCATED;
        } else if (standard_metadata.parser_error == error.Ipv4HeaderBad) {
            reason = MAL_IPV4_HEADER;
        } else if (standard_metadata.parser_error == error.TcpDataOffsetTooSmall) {
            reason = MAL_TCP_DATA_OFFSET;
        } else if (standard_metadata.parser_error == error.TcpOptionOverrun) {
            reason = MAL_TCP_OPT_OVERRUN;
        } else if (standard_metadata.parser_error == error.TcpOptionLength) {
            reason = MAL_TCP_OPT_LENGTH;
        } else if (standard_metadata.parser_error == error.TcpOptionDuplicate) {
            reason = MAL_TCP_OPT_DUPLICATE;
        } else if (standard_metadata.parser_error == error.TcpTooManyOptions
                   || standard_metadata.parser_error == error.StackOutOfBounds) {
            reason = MAL_TCP_OPT_TOO_MANY;
        } else if (standard_metadata.parser_error != error.NoError) {
            reason = MAL_OTHER;
        } else if (hdr.ipv4.isValid()) {
            bit<16> ip_hdr_len = (bit<16>)hdr.ipv4.ihl << 2;
            bit<16> l4_hdr_len = 0;
            if (hdr.tcp.isValid()) {
                l4_hdr_len = (bit<16>)hdr.tcp.data_offset << 2;
            }
            /* Ethernet padding may make the frame longer than total_len; never shorter. */
            if ((bit<32>)hdr.ipv4.total_len + 14 > standard_metadata.packet_length) {
                reason = MAL_TRUNCATED;
            } else if (hdr.ipv4.total_len < ip_hdr_len + l4_hdr_len) {
                reason = MAL_IPV4_LENGTH;
            } else {
                meta.l4_payload_len = hdr.ipv4.total_len - ip_hdr_len - l4_hdr_len;
            }
        }
        meta.malformed_reason = reason;
        if (reason != 0) {
            malformed.count(reason);
            mark_to_drop(standard_metadata);
        }
    }
}

#endif
