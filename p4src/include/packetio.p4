/*
 * p4splice: packet I/O with the controller.
 *
 * packet-out: a frame from the CPU port carries packet_out.egress_port and leaves by that
 * port exactly as the controller crafted it (no table, no rewrite, no checksum update).
 * packet-in: whatever egress sends to the CPU port (a punt, or an I2E clone through
 * CPU_CLONE_SESSION) gets the packet_in header with the ingress port and the reason that
 * ingress recorded (preserved into clones by field list 1).
 */
#ifndef __SPLICE_PACKETIO_P4__
#define __SPLICE_PACKETIO_P4__

control PacketIoIngress(inout headers_t hdr, inout local_metadata_t meta,
                        inout standard_metadata_t standard_metadata) {
    apply {
        standard_metadata.egress_spec = hdr.packet_out.egress_port;
        hdr.packet_out.setInvalid();
    }
}

control PacketIoEgress(inout headers_t hdr, inout local_metadata_t meta,
                       inout standard_metadata_t standard_metadata) {
    apply {
        if (standard_metadata.egress_port == CPU_PORT_ID) {
            hdr.packet_in.setValid();
            hdr.packet_in.ingress_port = meta.pin_ingress_port;
            hdr.packet_in.reason = meta.pin_reason;
            hdr.packet_in._pad = 0;
        }
    }
}

#endif
