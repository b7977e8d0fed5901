/*
 * p4splice: checksums by incremental update (RFC 1624, eqn. 3: HC' = ~(~HC + ~m + m')).
 *
 * No checksum is ever computed over the payload. Every stage that rewrites a 16-bit word of
 * the IPv4 header or of the TCP segment (pseudo-header included) adds ~old + new to a delta in
 * metadata; IngressChecksums folds ~HC + delta into a 16-bit residual, and the checksum
 * extern of SpliceComputeChecksum writes ~residual into the header.
 *
 * This is the shape a Tofino needs: the parser's Checksum.subtract() of the old words and of
 * the old checksum produces the residual, and the deparser's Checksum.update() over the new
 * words and the residual writes the field. An incoming checksum that was wrong stays wrong by
 * the same amount: the switch never launders a corrupted segment into a valid one.
 */
#ifndef __SPLICE_CHECKSUMS_P4__
#define __SPLICE_CHECKSUMS_P4__

/* ~old + new for one 16-bit word, unfolded. */
bit<32> csum_word(in bit<16> old_w, in bit<16> new_w) {
    return (bit<32>)(~old_w) + (bit<32>)new_w;
}

/* ~old + new for a 32-bit field that starts at an even offset (two words), unfolded. */
bit<32> csum_word32(in bit<32> old_v, in bit<32> new_v) {
    return (bit<32>)(~old_v[31:16]) + (bit<32>)(~old_v[15:0])
         + (bit<32>)new_v[31:16] + (bit<32>)new_v[15:0];
}

/* End-around-carry fold of a ones'-complement sum (two rounds cover any 32-bit input). */
bit<16> csum_fold(in bit<32> sum) {
    bit<32> s = (sum & 0xffff) + (sum >> 16);
    s = (s & 0xffff) + (s >> 16);
    return s[15:0];
}

/* A field at an odd offset contributes its bytes swapped within the 16-bit words; the
 * ones'-complement sum commutes with that swap, so swapping the folded delta is enough. */
bit<16> csum_swap(in bit<16> v, in bit<1> odd) {
    bit<16> r = v;
    if (odd == 1) {
        r = v[7:0] ++ v[15:8];
    }
    return r;
}

control IngressChecksums(inout headers_t hdr, inout local_metadata_t meta) {
    apply {
        if (meta.ipv4_csum_update == 1) {
            meta.ipv4_csum_residual =
                csum_fold((bit<32>)(~hdr.ipv4.hdr_checksum) + meta.ipv4_csum_delta);
        }
        if (meta.tcp_csum_update == 1) {
            meta.tcp_csum_residual =
                csum_fold((bit<32>)(~hdr.tcp.checksum) + meta.tcp_csum_delta);
        }
    }
}

/* Nothing is verified on the way in: a wrong checksum is carried, not repaired or dropped. */
control SpliceVerifyChecksum(inout headers_t hdr, inout local_metadata_t meta) {
    apply { }
}

control SpliceComputeChecksum(inout headers_t hdr, inout local_metadata_t meta) {
    apply {
        update_checksum(meta.ipv4_csum_update == 1, { meta.ipv4_csum_residual },
                        hdr.ipv4.hdr_checksum, HashAlgorithm.csum16);
        update_checksum(meta.tcp_csum_update == 1, { meta.tcp_csum_residual },
                        hdr.tcp.checksum, HashAlgorithm.csum16);
    }
}

#endif
