/*
 * p4splice: the splice data plane for v1model (BMv2 simple_switch_grpc, p4sim).
 *
 * Ingress order: packet-out bypass; malformed-input check; per-flow translation table (a hit
 * decides the packet's fate); services (the switch's own handshakes from their slots, or ISN
 * capture and proxy handshakes for the controller); routing for the rest; TTL; checksum
 * residuals. Egress builds the handshake's packets and adds the packet-in header on the CPU
 * port. See docs/dataplane.md for the control-plane reference.
 */
#include <core.p4>
#include <v1model.p4>

#include "include/headers.p4"
#include "include/parser.p4"
#include "include/checksums.p4"
#include "include/sanity.p4"
#include "include/routing.p4"
#include "include/services.p4"
#include "include/flows.p4"
#include "include/craft.p4"
#include "include/packetio.p4"

control SpliceIngress(inout headers_t hdr, inout local_metadata_t meta,
                      inout standard_metadata_t standard_metadata) {
    PacketIoIngress() packet_io;
    Sanity() sanity;
    Flows() flows;
    Services() services;
    Routing() routing;
    Translate() translate;
    IngressChecksums() checksums;

    apply {
        if (hdr.packet_out.isValid()) {
            packet_io.apply(hdr, meta, standard_metadata);
        } else {
            sanity.apply(hdr, meta, standard_metadata);
            if (meta.malformed_reason == 0) {
                if (hdr.tcp.isValid()) {
                    flows.apply(hdr, meta, standard_metadata);
                    if (meta.forwarded == 0) {
                        services.apply(hdr, meta, standard_metadata);
                    }
                    if (meta.report_fin == 1) {  /* addresses as they came, before any NAT */
                        fin_t fin;
                        fin.ingress_port = standard_metadata.ingress_port;
                        fin.src_addr = hdr.ipv4.src_addr;
                        fin.dst_addr = hdr.ipv4.dst_addr;
                        fin.src_port = hdr.tcp.src_port;
                        fin.dst_port = hdr.tcp.dst_port;
                        digest<fin_t>(FIN_DIGEST_RECEIVER, fin);
                    }
                }
                if (meta.forwarded == 0) {
                    routing.apply(hdr, meta, standard_metadata);
                }
                if (meta.decrement_ttl == 1) {
                    if (hdr.ipv4.ttl <= 1) {
                        mark_to_drop(standard_metadata);
                    } else {
                        bit<8> new_ttl = hdr.ipv4.ttl - 1;
                        meta.ipv4_csum_delta = meta.ipv4_csum_delta
                            + csum_word(hdr.ipv4.ttl ++ hdr.ipv4.protocol, new_ttl ++ hdr.ipv4.protocol);
                        meta.ipv4_csum_update = 1;
                        hdr.ipv4.ttl = new_ttl;
                        translate.apply(hdr, meta, standard_metadata);
                    }
                }
                checksums.apply(hdr, meta);
            }
        }
    }
}

control SpliceEgress(inout headers_t hdr, inout local_metadata_t meta,
                     inout standard_metadata_t standard_metadata) {
    PacketIoEgress() packet_io;
    Craft() craft;

    apply {
        if (meta.craft_kind != CRAFT_NONE) {
            /* the clone of a packet becomes the one the handshake sends, or the packet itself */
            bool is_clone = standard_metadata.instance_type == PKT_INSTANCE_TYPE_INGRESS_CLONE;
            if ((meta.craft_on_clone == 1 && is_clone) || (meta.craft_on_clone == 0 && !is_clone)) {
                craft.apply(hdr, meta);
            }
        }
        packet_io.apply(hdr, meta, standard_metadata);
    }
}

V1Switch(SpliceParser(), SpliceVerifyChecksum(), SpliceIngress(), SpliceEgress(),
         SpliceComputeChecksum(), SpliceDeparser()) main;
