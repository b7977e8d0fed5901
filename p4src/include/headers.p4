/*
 * p4splice: headers, metadata and constants of the splice data plane (v1model).
 *
 * Every constant that a deployment may want to change is guarded by #ifndef so that
 * `p4c-bm2-ss -DCPU_PORT=64 ...` (or p4sim-compile with the same flag) overrides it.
 */
#ifndef __SPLICE_HEADERS_P4__
#define __SPLICE_HEADERS_P4__

/* ---- compile-time constants (override with -D) ------------------------------------------ */

#ifndef CPU_PORT
#define CPU_PORT 255            /* simple_switch_grpc --cpu-port */
#endif
#ifndef CPU_CLONE_SESSION_ID
#define CPU_CLONE_SESSION_ID 99 /* the controller maps this clone session to CPU_PORT */
#endif
#ifndef ROUTES_SIZE
#define ROUTES_SIZE 1024
#endif
#ifndef SERVICES_SIZE
#define SERVICES_SIZE 256
#endif
#ifndef FLOWS_SIZE
#define FLOWS_SIZE 4096         /* four per-leg entries per proxied connection */
#endif
#ifndef FLOWS_IDLE_TIMEOUT
#define FLOWS_IDLE_TIMEOUT 1    /* 0: flows entries do not age on the switch; the controller
                                 * polls their counters instead (BMv2 1.15.5 can abort in the
                                 * ageing sweep under load: docs/bmv2.md) */
#endif
#ifndef HS_SLOTS
#define HS_SLOTS 65536          /* handshake slots (a power of two: the CRC of one end's 16-bit port then maps onto them one to one) */
#endif
#ifndef HS_TIMEOUT_US
#define HS_TIMEOUT_US 5000000   /* a slot untouched this long is free again (microseconds) */
#endif
#ifndef HS_ACK_WAIT_US
#define HS_ACK_WAIT_US 1000000  /* a handshake C has not ACKed this long after its last step may lose its slot to a new SYN */
#endif
#ifndef HS_CLONE_SESSION_BASE
#define HS_CLONE_SESSION_BASE 512  /* clone session HS_CLONE_SESSION_BASE + p sends a copy out of port p */
#endif
/* Slots for TCP options. Fixed, not -D: parser.p4 and flows.p4 name each slot. Every
 * option takes one slot and a SACK block one more; a segment needing more slots is counted as
 * malformed (TOO_MANY_OPTIONS). 40 option bytes hold at most 9 slots of any real stack
 * (NOP NOP TS NOP NOP SACK with 3 blocks) but a sender may pad with NOPs. */
#define TCP_OPT_SLOTS 16

const bit<9>  CPU_PORT_ID = CPU_PORT;
const bit<32> CPU_CLONE_SESSION = CPU_CLONE_SESSION_ID;

const bit<16> ETHERTYPE_IPV4 = 0x0800;
const bit<8>  IP_PROTO_TCP = 6;

const bit<8> TCP_OPT_EOL = 0;
const bit<8> TCP_OPT_NOP = 1;
const bit<8> TCP_OPT_MSS = 2;
const bit<8> TCP_OPT_WS = 3;
const bit<8> TCP_OPT_SACK_PERM = 4;
const bit<8> TCP_OPT_SACK = 5;
const bit<8> TCP_OPT_TS = 8;

/* packet-in reasons (packet_in.reason) */
const bit<8> PIN_SYN = 1;            /* SYN of a service flow, to the controller only (it sends it on) */
const bit<8> PIN_SYN_ACK = 2;        /* copy: SYN-ACK of a service flow, forwarded as well */
const bit<8> PIN_PROXY_SYN = 3;      /* SYN from the proxy port: controller only */
const bit<8> PIN_PROXY_SYN_ACK = 4;  /* SYN-ACK from the proxy port: controller only */
const bit<8> PIN_FIN = 5;            /* no longer sent: FINs of tracked flows come in fin_t digests */
const bit<8> PIN_RST = 6;            /* copy: RST of a tracked flow (original bytes) */
const bit<8> PIN_PUNT = 7;           /* flow entry says: controller only */
const bit<8> PIN_ROUTED = 8;         /* a routes entry says: controller only (e.g. its probe address) */
const bit<8> PIN_HELD = 9;           /* a hold entry kept this data segment from the proxy: controller only (hold_acking: never) */
const bit<8> PIN_DECLINED = 10;      /* the switch hands this connection's handshake to the controller: controller only */
const bit<8> PIN_FIN_HELD = 11;      /* copy: FIN of a flow under a hold entry, which drops the original */
const bit<8> PIN_HELD_COPY = 12;     /* copy: a data segment a hold_acking entry kept from the proxy (its ACK went on) */

/* handshake slot states (handshake.p4); a digest's `state` says which one the slot reached */
const bit<8> HS_FREE = 0;
const bit<8> HS_SYN_SEEN = 1;        /* C's SYN recorded and forwarded to S */
const bit<8> HS_SYN_ACKED = 2;       /* S's SYN-ACK forwarded to C; second request sent to P */
const bit<8> HS_C_ACKED = 3;         /* C's ACK forwarded to S; P's SYN-ACK not in yet */
const bit<8> HS_P1_KNOWN = 4;        /* P's SYN-ACK absorbed (ISN_p1); C's ACK not in yet */
const bit<8> HS_LEG1_UP = 5;         /* leg 1 ACKed to P; C<->P translated */
const bit<8> HS_UPSTREAM = 6;        /* P's upstream SYN answered as S (ISN_p2) */
const bit<8> HS_LEG2_UP = 7;         /* P's ACK absorbed: all four directions translated */
const bit<8> HS_DECLINED = 8;        /* the controller's: every segment to it until the slot expires */

/* what egress builds from a packet (meta.craft_kind): handshake.p4 decides, craft.p4 writes */
const bit<8> CRAFT_NONE = 0;
const bit<8> CRAFT_PROXY_SYN = 1;        /* the second request: SYN C->S to P */
const bit<8> CRAFT_LEG1_ACK = 2;         /* the ACK completing leg 1 (C->S to P) */
const bit<8> CRAFT_UPSTREAM_SYN_ACK = 3; /* S's answer to P's upstream SYN (S->C to P) */
const bit<8> CRAFT_HELD_ACK = 4;         /* the ACK of a data segment a hold_acking entry keeps from P */

/* SYN option flags in the handshake state and digest */
const bit<8> SYNOPT_MSS = 0x01;
const bit<8> SYNOPT_WS = 0x02;
const bit<8> SYNOPT_SACK = 0x04;
const bit<8> SYNOPT_TS = 0x08;

const bit<32> HS_DIGEST_RECEIVER = 1;
const bit<32> FIN_DIGEST_RECEIVER = 2;
const bit<32> PKT_INSTANCE_TYPE_INGRESS_CLONE = 1;

/* malformed-packet reasons: the index of the `malformed` counter */
const bit<32> MAL_TRUNCATED = 1;          /* frame shorter than a header or than IPv4 total length */
const bit<32> MAL_IPV4_HEADER = 2;        /* version != 4 or IHL < 5 */
const bit<32> MAL_IPV4_LENGTH = 3;        /* total length shorter than the IPv4 + TCP headers */
const bit<32> MAL_TCP_DATA_OFFSET = 4;    /* data offset < 5 */
const bit<32> MAL_TCP_OPT_OVERRUN = 5;    /* an option runs past the TCP header */
const bit<32> MAL_TCP_OPT_LENGTH = 6;     /* length byte < 2, or wrong for MSS/WS/SACK-perm/SACK/TS */
const bit<32> MAL_TCP_OPT_DUPLICATE = 7;  /* a second timestamp or SACK option */
const bit<32> MAL_TCP_OPT_TOO_MANY = 8;   /* more options (and SACK blocks) than TCP_OPT_SLOTS */
const bit<32> MAL_OTHER = 9;              /* any other parser error */
const bit<32> MAL_REASONS = 16;           /* counter size */

error {
    Ipv4HeaderBad,
    TcpDataOffsetTooSmall,
    TcpOptionOverrun,
    TcpOptionLength,
    TcpOptionDuplicate,
    TcpTooManyOptions
}

typedef bit<48> mac_addr_t;
typedef bit<32> ipv4_addr_t;
typedef bit<9>  port_t;

/* ---- controller headers -------------------------------------------------------------------- */

@controller_header("packet_in")
header packet_in_t {
    port_t  ingress_port;
    bit<8>  reason;
    bit<7>  _pad;
}

@controller_header("packet_out")
header packet_out_t {
    port_t  egress_port;
    bit<7>  _pad;
}

/* ---- L2 / L3 ------------------------------------------------------------------------------- */

header ethernet_t {
    mac_addr_t dst_addr;
    mac_addr_t src_addr;
    bit<16>    ether_type;
}

header ipv4_t {
    bit<4>      version;
    bit<4>      ihl;
    bit<8>      diffserv;
    bit<16>     total_len;
    bit<16>     identification;
    bit<3>      flags;
    bit<13>     frag_offset;
    bit<8>      ttl;
    bit<8>      protocol;
    bit<16>     hdr_checksum;
    ipv4_addr_t src_addr;
    ipv4_addr_t dst_addr;
}

/* IPv4 options are carried, never interpreted: 0 to 40 bytes. */
header ipv4_options_t {
    varbit<320> bytes;
}

/* ---- TCP ----------------------------------------------------------------------------------- */

header tcp_t {
    bit<16> src_port;
    bit<16> dst_port;
    bit<32> seq_no;
    bit<32> ack_no;
    bit<4>  data_offset;
    bit<4>  res;
    bit<8>  flags;      /* CWR ECE URG ACK PSH RST SYN FIN */
    bit<16> window;
    bit<16> checksum;
    bit<16> urgent_ptr;
}

const bit<8> TCP_FIN = 0x01;
const bit<8> TCP_SYN = 0x02;
const bit<8> TCP_RST = 0x04;
const bit<8> TCP_PSH = 0x08;
const bit<8> TCP_ACK = 0x10;

header tcp_opt_1b_t {        /* EOL, NOP */
    bit<8> kind;
}
header tcp_opt_mss_t {
    bit<8>  kind;
    bit<8>  len;
    bit<16> mss;
}
header tcp_opt_ws_t {
    bit<8> kind;
    bit<8> len;
    bit<8> shift;
}
header tcp_opt_sack_perm_t {
    bit<8> kind;
    bit<8> len;
}
/* The SACK option is its kind/length head followed by 1-4 blocks, each in its own slot, so
 * that every block is rewritten by the same code whatever the count. */
header tcp_opt_sack_t {
    bit<8> kind;
    bit<8> len;
}
header tcp_sack_block_t {
    bit<32> left;
    bit<32> right;
}
header tcp_opt_ts_t {
    bit<8>  kind;
    bit<8>  len;
    bit<32> tsval;
    bit<32> tsecr;
}
/* Any other option: kind, length, and length-2 bytes we carry without looking. */
header tcp_opt_other_t {
    bit<8>      kind;
    bit<8>      len;
    varbit<304> data;
}

header_union tcp_option_t {
    tcp_opt_1b_t        eol;
    tcp_opt_1b_t        nop;
    tcp_opt_mss_t       mss;
    tcp_opt_ws_t        ws;
    tcp_opt_sack_perm_t sack_perm;
    tcp_opt_sack_t      sack;
    tcp_sack_block_t    sack_block;
    tcp_opt_ts_t        ts;
    tcp_opt_other_t     other;
}

/* Bytes after an EOL option, up to the end of the TCP header. */
header tcp_opt_padding_t {
    varbit<312> bytes;
}

struct headers_t {
    packet_out_t                  packet_out;
    packet_in_t                   packet_in;
    ethernet_t                    ethernet;
    ipv4_t                        ipv4;
    ipv4_options_t                ipv4_options;
    tcp_t                         tcp;
    tcp_option_t[TCP_OPT_SLOTS]   tcp_options;
    tcp_opt_padding_t             tcp_padding;
}

/* ---- metadata ------------------------------------------------------------------------------ */

/* What the parser learnt about the TCP options. */
struct tcp_opt_meta_t {
    bit<8> bytes_left;      /* option bytes not parsed yet */
    bit<8> sack_left;       /* SACK blocks still to extract */
    bit<1> odd;             /* the next option starts at an odd offset from the TCP header */
    bit<1> ts_seen;
    bit<1> ts_odd;          /* the timestamp option starts at an odd offset */
    bit<1> sack_seen;
    bit<1> sack_odd;        /* the SACK option starts at an odd offset (its blocks too) */
    /* a SYN's options, for the handshake the switch runs (handshake.p4) */
    bit<8>  syn_flags;      /* SYNOPT_* seen */
    bit<8>  syn_dups;       /* SYNOPT_* seen twice (the controller's parser refuses those) */
    bit<16> mss;
    bit<8>  ws;
    bit<32> tsval;
    bit<32> tsecr;
}

/* One handshake, as the switch learnt it (handshake.p4): a slot, and the digest the controller
 * gets at each step. */
struct handshake_t {
    bit<8>  state;          /* HS_* the slot reached */
    bit<32> client_addr;
    bit<16> client_port;
    bit<32> server_addr;
    bit<16> server_port;
    port_t  client_ingress; /* switch port C's SYN came in on */
    port_t  server_ingress; /* switch port S's SYN-ACK came in on (0: not yet) */
    port_t  proxy_port;
    bit<32> isn_c;
    bit<16> window_c;
    bit<16> mss_c;
    bit<8>  ws_c;
    bit<8>  opts_c;         /* SYNOPT_* */
    bit<32> tsval_c;
    bit<32> isn_s;
    bit<16> window_s;
    bit<16> mss_s;
    bit<8>  ws_s;
    bit<8>  opts_s;
    bit<32> tsval_s;
    bit<32> isn_p1;
    bit<32> tsval_p1;
    bit<8>  ws_p1;
    bit<8>  opts_p1;
    bit<32> isn_p2;
    bit<32> tsval_p2;
    bit<8>  ws_p2;
    bit<8>  opts_p2;
    bit<1>  c_acked;        /* C's handshake ACK went to S; its window and TSval follow */
    bit<16> window_c_ack;
    bit<32> tsval_c_ack;
}

/* A FIN that a flows entry forwarded (flows.p4): the segment's leg and direction, which is all the
 * controller takes from it. A digest rather than a copy of the segment, so that closes reach the
 * controller in lists as handshakes do, not one stream message each; identical ones (a
 * retransmitted FIN) are sent once while their list is unacknowledged. */
struct fin_t {
    port_t      ingress_port;
    ipv4_addr_t src_addr;
    ipv4_addr_t dst_addr;
    bit<16>     src_port;
    bit<16>     dst_port;
}
/* Asks for the fin_t digest of the segment (flows.p4, and handshake.p4 before the entries exist);
 * SpliceIngress sends it, from one place: BMv2 makes a learn list of each digest call, and its
 * P4Runtime server configures only one list per digest. */
#define REPORT_FIN() meta.report_fin = 1;

/* What a flow entry asked for (set by the flows table, applied by the Translate control). */
struct xlate_meta_t {
    bit<1>      forward;    /* a forwarding entry matched: out of port with smac and dmac */
    port_t      port;
    mac_addr_t  smac;
    mac_addr_t  dmac;
    bit<1>      active;
    bit<1>      hold;
    bit<1>      hold_acks;  /* hold_acking: the switch itself passes a held segment's ACK on */
    bit<1>      nat;
    bit<32>     seq_delta;
    bit<32>     ack_delta;
    bit<32>     tsval_delta;
    bit<32>     tsecr_delta;
    bit<8>      win_shift_from;
    bit<8>      win_shift_to;
    ipv4_addr_t new_src_addr;
    ipv4_addr_t new_dst_addr;
    bit<16>     new_src_port;
    bit<16>     new_dst_port;
}

struct local_metadata_t {
    tcp_opt_meta_t opt;
    xlate_meta_t   xlate;
    /* services lookup key: the server side of a SYN (destination) or SYN-ACK (source) */
    ipv4_addr_t    svc_addr;
    bit<16>        svc_port;
    port_t         svc_proxy_port;  /* set when the services table matched */
    bit<1>         svc_inline;      /* the service's handshakes run in the switch (proxied_inline) */
    bit<1>         svc_draining;    /* ... but it takes no new connection (draining) */
    mac_addr_t     svc_smac;        /* MACs toward the proxy (proxied_inline) */
    mac_addr_t     svc_dmac;
    /* forwarding decision */
    bit<1>         forwarded;       /* an earlier stage chose the egress port */
    bit<1>         report_fin;      /* a FIN to report in a fin_t digest (REPORT_FIN) */
    bit<1>         syn_on_entry;    /* a SYN without ACK met a forwarding flows entry (flows.p4) */
    bit<1>         decrement_ttl;
    bit<16>        l4_payload_len;
    bit<32>        malformed_reason;
    /* ones'-complement sums of (new - old) over every rewritten 16-bit word (RFC 1624) */
    bit<32>        ipv4_csum_delta;
    bit<32>        tcp_csum_delta;
    bit<1>         ipv4_csum_update;
    bit<1>         tcp_csum_update;
    /* the residuals fed to the checksum extern: ~(residual) is the new checksum */
    bit<16>        ipv4_csum_residual;
    bit<16>        tcp_csum_residual;
    /* packet-in: carried into the clone by clone_preserving_field_list(..., 1) */
    @field_list(1)
    port_t         pin_ingress_port;
    @field_list(1)
    bit<8>         pin_reason;
    /* a packet egress builds (craft.p4): set by ingress, carried into the clone by field list 2.
     * craft_on_clone: the copy made by the clone is built, the original goes on as it is. */
    @field_list(2)
    bit<8>         craft_kind;
    @field_list(2)
    bit<1>         craft_on_clone;
    @field_list(2)
    mac_addr_t     craft_smac;
    @field_list(2)
    mac_addr_t     craft_dmac;
    @field_list(2)
    ipv4_addr_t    craft_src_addr;
    @field_list(2)
    ipv4_addr_t    craft_dst_addr;
    @field_list(2)
    bit<16>        craft_src_port;
    @field_list(2)
    bit<16>        craft_dst_port;
    @field_list(2)
    bit<32>        craft_seq;
    @field_list(2)
    bit<32>        craft_ack;
    @field_list(2)
    bit<8>         craft_flags;
    @field_list(2)
    bit<16>        craft_window;
    @field_list(2)
    bit<8>         craft_opts;      /* SYNOPT_* to write */
    @field_list(2)
    bit<16>        craft_mss;
    @field_list(2)
    bit<8>         craft_ws;
    @field_list(2)
    bit<32>        craft_tsval;
    @field_list(2)
    bit<32>        craft_tsecr;
}

#endif
