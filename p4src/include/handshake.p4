/*
 * p4splice: claim 1's handshake run by the switch itself (services with action proxied_inline).
 *
 * One slot per connection, found by a hash of its addresses and ports in either direction,
 * holds what the handshake taught the switch (handshake_t). Services (services.p4) reads the
 * slot, hands it here with whether the segment belongs to it (c2s: client to server, s2c: back),
 * and writes it back when `write` is set. This control only decides; packets the switch makes
 * (the second request, the ACK completing leg 1, S's answer to P's upstream SYN) are written by
 * egress (craft.p4) from meta.craft_*. The arithmetic is that of the design note: D1, D2, T1, T2
 * and the window rescale, exactly as the controller's entries will apply them later.
 *
 *   C's SYN            forwarded to S; a free (or expired) slot takes the flow
 *   S's SYN-ACK        forwarded to C; a clone becomes the second request to P; digest
 *   P's SYN-ACK        absorbed (ISN_p1); if C's ACK is in, answered with the leg-1 ACK; digest
 *   C's ACK            forwarded to S; if ISN_p1 is known a clone becomes the leg-1 ACK; digest
 *   P's upstream SYN   answered as S would (ISN_s, S's side of the options)
 *   P's ACK            absorbed; data riding on it goes on to S translated; digest
 *   anything later     translated per leg from the slot until the controller's entries exist
 *
 * The switch declines rather than guess: a busy slot, data on a SYN or an option given twice leave
 * the connection to the controller from the start (services.p4); segments that arrive before their leg exists go to
 * the controller (reason PUNT), which holds them; anything outside the common case (a new ISN, a
 * FIN or RST before both legs are up, options the proxy answered differently, data on C's
 * handshake ACK, a SYN that met flows entries of its 4-tuple) hands the whole connection to the
 * controller (HS_DECLINED: every segment to it, until its own entries take over). The controller
 * learns each step from a digest (handshake_t).
 */
#ifndef __SPLICE_HANDSHAKE_P4__
#define __SPLICE_HANDSHAKE_P4__

const bit<8> MAX_WINDOW_SHIFT = 14;  /* RFC 7323: a larger shift is taken as 14 */

/* A window-scale option's shift as its receiver applies it (seqmath.clamp_shift). */
bit<8> clamp_shift(in bit<8> shift) {
    bit<8> r = shift;
    if (r > MAX_WINDOW_SHIFT) {
        r = MAX_WINDOW_SHIFT;
    }
    return r;
}

/* The control's steps, as macros rather than actions so that the P4Info lists only what a
 * controller can name (as flows.p4 does). */

/* To the controller only, untouched. */
#define HS_TO_CPU(reason) \
    standard_metadata.egress_spec = CPU_PORT_ID; \
    meta.pin_ingress_port = standard_metadata.ingress_port; \
    meta.pin_reason = reason; \
    meta.forwarded = 1;

#define HS_DROP() \
    mark_to_drop(standard_metadata); \
    meta.forwarded = 1;

/* Out of the proxy's port with the service's MACs (routed, TTL - 1). */
#define HS_TO_PROXY() \
    standard_metadata.egress_spec = meta.svc_proxy_port; \
    hdr.ethernet.src_addr = meta.svc_smac; \
    hdr.ethernet.dst_addr = meta.svc_dmac; \
    meta.forwarded = 1; \
    meta.decrement_ttl = 1;

/* A copy of the original frame to the controller (an RST), as flows.p4 makes it. */
#define HS_COPY_TO_CPU(reason) \
    meta.pin_ingress_port = standard_metadata.ingress_port; \
    meta.pin_reason = reason; \
    clone_preserving_field_list(CloneType.I2E, CPU_CLONE_SESSION, 1);

/* Translate as a flows entry would (flows.p4's Translate does the rewrite). */
#define HS_XLATE(seq_d, ack_d, tsval_d, tsecr_d, shift_from, shift_to) \
    meta.xlate.active = 1; \
    meta.xlate.seq_delta = seq_d; \
    meta.xlate.ack_delta = ack_d; \
    meta.xlate.tsval_delta = tsval_d; \
    meta.xlate.tsecr_delta = tsecr_d; \
    meta.xlate.win_shift_from = shift_from; \
    meta.xlate.win_shift_to = shift_to;

/* A packet egress builds (craft.p4); the options are added by the caller. */
#define HS_CRAFT(kind, on_clone, src_a, src_p, dst_a, dst_p, seq, ack, flags_, window) \
    meta.craft_kind = kind; \
    meta.craft_on_clone = on_clone; \
    meta.craft_smac = meta.svc_smac; \
    meta.craft_dmac = meta.svc_dmac; \
    meta.craft_src_addr = src_a; \
    meta.craft_src_port = src_p; \
    meta.craft_dst_addr = dst_a; \
    meta.craft_dst_port = dst_p; \
    meta.craft_seq = seq; \
    meta.craft_ack = ack; \
    meta.craft_flags = flags_; \
    meta.craft_window = window; \
    meta.craft_opts = 0; \
    meta.craft_mss = 0; \
    meta.craft_ws = 0; \
    meta.craft_tsval = 0; \
    meta.craft_tsecr = 0;

/* Hand the whole connection to the controller: this segment, and every later one until the
 * controller's entries take over (reason DECLINED; the slot is not refreshed any more). */
#define HS_DECLINE() \
    hs.state = HS_DECLINED; \
    write = 1; \
    HS_TO_CPU(PIN_DECLINED)

/* The original goes where the caller sent it; its copy out of the proxy's port is built. */
#define HS_CLONE_TO_PROXY() \
    clone_preserving_field_list(CloneType.I2E, HS_CLONE_SESSION_BASE + (bit<32>)meta.svc_proxy_port, 2);

/* The segment itself is rebuilt and sent back out of the port it came in on (the proxy's). */
#define HS_REFLECT() \
    standard_metadata.egress_spec = standard_metadata.ingress_port; \
    meta.forwarded = 1;

control Handshake(inout headers_t hdr, inout local_metadata_t meta,
                  inout standard_metadata_t standard_metadata, inout handshake_t hs,
                  in bit<1> held, in bit<1> c2s, in bit<1> s2c,
                  out bit<1> handled, out bit<1> write, out bit<1> report) {

    apply {
        handled = 0;
        write = 0;
        report = 0;
        bit<8> flags = hdr.tcp.flags;
        bit<8> handshake_flags = flags & (TCP_SYN | TCP_ACK | TCP_RST);
        bool is_syn = handshake_flags == TCP_SYN;
        bool is_syn_ack = handshake_flags == (TCP_SYN | TCP_ACK);
        bool has_syn = (flags & TCP_SYN) != 0;
        bool has_rst = (flags & TCP_RST) != 0;
        bool has_fin = (flags & TCP_FIN) != 0;
        bool has_ack = (flags & TCP_ACK) != 0;
        bool from_proxy = standard_metadata.ingress_port == meta.svc_proxy_port;
        bit<16> payload = meta.l4_payload_len;

        /* ---- a segment of no slot: only C's SYN can take one -------------------------------- */
        if (c2s == 0 && s2c == 0) {
            /* (not a SYN that met an old connection's entries: the controller removes them first) */
            if (is_syn && !from_proxy && payload == 0 && meta.opt.syn_dups == 0 && held == 0
                    && meta.syn_on_entry == 0) {
                hs.state = HS_SYN_SEEN;
                hs.client_addr = hdr.ipv4.src_addr;
                hs.client_port = hdr.tcp.src_port;
                hs.server_addr = hdr.ipv4.dst_addr;
                hs.server_port = hdr.tcp.dst_port;
                hs.client_ingress = standard_metadata.ingress_port;
                hs.server_ingress = 0;
                hs.proxy_port = meta.svc_proxy_port;
                hs.isn_c = hdr.tcp.seq_no;
                hs.window_c = hdr.tcp.window;
                hs.mss_c = meta.opt.mss;
                hs.ws_c = meta.opt.ws;
                hs.opts_c = meta.opt.syn_flags;
                hs.tsval_c = meta.opt.tsval;
                hs.isn_s = 0;
                hs.window_s = 0;
                hs.mss_s = 0;
                hs.ws_s = 0;
                hs.opts_s = 0;
                hs.tsval_s = 0;
                hs.isn_p1 = 0;
                hs.tsval_p1 = 0;
                hs.ws_p1 = 0;
                hs.opts_p1 = 0;
                hs.isn_p2 = 0;
                hs.tsval_p2 = 0;
                hs.ws_p2 = 0;
                hs.opts_p2 = 0;
                hs.c_acked = 0;
                hs.window_c_ack = 0;
                hs.tsval_c_ack = 0;
                write = 1;
                handled = 1;  /* routed on to S at once */
            }
            return;
        }
        handled = 1;

        /* ---- what C and S negotiated, and the legs' deltas (design note sections 1, 2) ----- */
        bool n_ws = (hs.opts_c & SYNOPT_WS) != 0 && (hs.opts_s & SYNOPT_WS) != 0;
        bool n_sack = (hs.opts_c & SYNOPT_SACK) != 0 && (hs.opts_s & SYNOPT_SACK) != 0;
        bool n_ts = (hs.opts_c & SYNOPT_TS) != 0 && (hs.opts_s & SYNOPT_TS) != 0;
        bit<8> shift_c = 0;
        bit<8> shift_s = 0;
        if (n_ws) {
            shift_c = clamp_shift(hs.ws_c);
            shift_s = clamp_shift(hs.ws_s);
        }
        bit<8> shift_p1 = 0;
        bit<8> c_at_p = 0;
        if (n_ws && (hs.opts_p1 & SYNOPT_WS) != 0) {
            shift_p1 = clamp_shift(hs.ws_p1);
            c_at_p = shift_c;
        }
        bit<8> shift_p2 = 0;
        bit<8> s_at_p = 0;
        if (n_ws && (hs.opts_p2 & SYNOPT_WS) != 0) {
            shift_p2 = clamp_shift(hs.ws_p2);
            s_at_p = shift_s;
        }
        bit<32> d1 = hs.isn_p1 - hs.isn_s;
        bit<32> d2 = hs.isn_p2 - hs.isn_c;
        bit<32> t1 = 0;
        if (n_ts && (hs.opts_p1 & SYNOPT_TS) != 0) {
            t1 = hs.tsval_p1 - hs.tsval_s;
        }
        bit<32> t2 = 0;
        if (n_ts && (hs.opts_p2 & SYNOPT_TS) != 0) {
            /* from C's handshake ACK on, S reads P's clock as C's (legs.py, leg_deltas) */
            if (hs.c_acked == 1) {
                t2 = hs.tsval_p2 - hs.tsval_c_ack;
            } else {
                t2 = hs.tsval_p2 - hs.tsval_c;
            }
        }

        bool from_c = c2s == 1 && !from_proxy;
        bool from_s = s2c == 1 && !from_proxy;
        bool p_leg1 = s2c == 1 && from_proxy;  /* P speaking as S toward C */
        bool p_leg2 = c2s == 1 && from_proxy;  /* P speaking as C toward S */
        if ((from_c && standard_metadata.ingress_port != hs.client_ingress)
                || (from_s && hs.server_ingress != 0 && standard_metadata.ingress_port != hs.server_ingress)) {
            HS_DROP()  /* this connection's segment from the wrong port */
            return;
        }
        bit<8> state = hs.state;

        if (from_c && is_syn && meta.syn_on_entry == 1) {
            /* A SYN that met flows entries of this 4-tuple: whether it is C's new connection
             * (the old one's entries must go first) or a retransmission inside the live one is
             * the controller's to tell; the slot's job for this 4-tuple is over either way. */
            HS_DECLINE()
            return;
        }
        if (state == HS_DECLINED) {
            HS_TO_CPU(PIN_DECLINED)
            return;
        }

        /* ---- both legs up: the four directions, until the controller's entries exist --- */
        if (state == HS_LEG2_UP) {
            write = 1;  /* the slot lives as long as the connection uses it */
            if (has_syn) {
                if (from_s && is_syn_ack && hdr.tcp.seq_no == hs.isn_s) {
                    /* S's SYN-ACK again: C answers it with an ACK, S's duplicate */
                } else if (from_c && is_syn && hdr.tcp.seq_no != hs.isn_c) {
                    /* C's SYN with another ISN: a new connection on this 4-tuple, the slot's
                     * one over (its entries gone already). The controller knows which. */
                    HS_DECLINE()
                    return;
                } else {
                    HS_DROP()
                    return;
                }
            } else if (from_c) {
                HS_XLATE(0, d1, 0, t1, shift_c, c_at_p)
                HS_TO_PROXY()
            } else if (p_leg1) {
                HS_XLATE(-d1, 0, -t1, 0, shift_p1, shift_s)
            } else if (p_leg2) {
                HS_XLATE(-d2, 0, -t2, 0, shift_p2, shift_c)
            } else {
                HS_XLATE(0, d2, 0, t2, shift_s, s_at_p)
                HS_TO_PROXY()
            }
            if (has_rst) {
                HS_COPY_TO_CPU(PIN_RST)
            } else if (has_fin) {
                REPORT_FIN()
            }
            return;
        }

        /* ---- C's SYN, before both legs are up -------------------------------------------- */
        if (from_c && has_syn) {
            if (is_syn && hdr.tcp.seq_no == hs.isn_c) {
                return;  /* a retransmission: on to S */
            }
            if (state == HS_SYN_SEEN && is_syn && payload == 0) {
                /* another ISN before S answered: P knows nothing yet, start over */
                hs.isn_c = hdr.tcp.seq_no;
                hs.window_c = hdr.tcp.window;
                hs.mss_c = meta.opt.mss;
                hs.ws_c = meta.opt.ws;
                hs.opts_c = meta.opt.syn_flags;
                hs.tsval_c = meta.opt.tsval;
                write = 1;
                return;
            }
            HS_DECLINE()
            return;
        }

        /* ---- RST and FIN before both legs are up ----------------------------------------- */
        if (has_rst || has_fin) {
            if (state == HS_SYN_SEEN && !from_proxy) {
                if (has_rst) {
                    hs.state = HS_FREE;  /* P knows nothing of it */
                    write = 1;
                }
                return;  /* routed */
            }
            if (has_rst && !from_proxy) {
                hs.state = HS_DECLINED;
                write = 1;
                HS_COPY_TO_CPU(PIN_RST)  /* on to its peer; the controller resets P's legs */
            } else {
                HS_DECLINE()
            }
            return;
        }

        if (state == HS_SYN_SEEN) {
            if (from_s && is_syn_ack && hdr.tcp.ack_no == hs.isn_c + 1) {
                if (payload != 0) {
                    hs.state = HS_FREE;  /* data on a SYN-ACK: P could not be given it; end to end */
                    write = 1;
                    return;
                }
                hs.state = HS_SYN_ACKED;
                hs.server_ingress = standard_metadata.ingress_port;
                hs.isn_s = hdr.tcp.seq_no;
                hs.window_s = hdr.tcp.window;
                hs.mss_s = meta.opt.mss;
                hs.ws_s = meta.opt.ws;
                hs.opts_s = meta.opt.syn_flags;
                hs.tsval_s = meta.opt.tsval;
                write = 1;
                report = 1;
                /* The second request: C's SYN as C sent it, with C's side of N (options.py,
                 * Negotiated.client_side) */
                HS_CRAFT(CRAFT_PROXY_SYN, 1, hs.client_addr, hs.client_port, hs.server_addr,
                      hs.server_port, hs.isn_c, 0, TCP_SYN, hs.window_c)
                bool syn_ack_ws = (meta.opt.syn_flags & SYNOPT_WS) != 0;
                bool syn_ack_sack = (meta.opt.syn_flags & SYNOPT_SACK) != 0;
                bool syn_ack_ts = (meta.opt.syn_flags & SYNOPT_TS) != 0;
                meta.craft_opts = hs.opts_c & SYNOPT_MSS;
                meta.craft_mss = hs.mss_c;
                if ((hs.opts_c & SYNOPT_WS) != 0 && syn_ack_ws) {
                    meta.craft_opts = meta.craft_opts | SYNOPT_WS;
                    meta.craft_ws = clamp_shift(hs.ws_c);
                }
                if ((hs.opts_c & SYNOPT_SACK) != 0 && syn_ack_sack) {
                    meta.craft_opts = meta.craft_opts | SYNOPT_SACK;
                }
                if ((hs.opts_c & SYNOPT_TS) != 0 && syn_ack_ts) {
                    meta.craft_opts = meta.craft_opts | SYNOPT_TS;
                    meta.craft_tsval = hs.tsval_c;
                }
                HS_CLONE_TO_PROXY()
            } else if (from_c || from_proxy) {
                HS_DROP()  /* nothing of C's but its SYN is due before S answers */
            }
            return;  /* S's other segments: routed */
        }

        /* ---- S's side while the legs are being made ---------------------------------------- */
        if (from_s) {
            if (is_syn_ack && hdr.tcp.seq_no == hs.isn_s) {
                return;  /* a retransmitted SYN-ACK: on to C */
            }
            if (has_syn) {
                HS_DECLINE()  /* S restarted its answer: the controller's case */
            } else {
                HS_TO_CPU(PIN_PUNT)  /* S's first bytes before leg 2 exists: the controller holds them */
            }
            return;
        }

        /* ---- C's side ------------------------------------------------------------------------ */
        if (from_c) {
            if (state == HS_LEG1_UP || state == HS_UPSTREAM) {
                HS_XLATE(0, d1, 0, t1, shift_c, c_at_p)
                HS_TO_PROXY()
                return;
            }
            bool handshake_ack = hdr.tcp.ack_no == hs.isn_s + 1 && hdr.tcp.seq_no == hs.isn_c + 1;
            if (hs.c_acked == 1) {
                if (payload == 0 && handshake_ack) {
                    return;  /* C's ACK again: on to S */
                }
                HS_TO_CPU(PIN_PUNT)  /* C's first bytes before leg 1 exists: the controller holds them */
                return;
            }
            if (!handshake_ack) {
                HS_DROP()  /* not an ACK of S's SYN-ACK */
                return;
            }
            /* C's handshake ACK. The leg-1 ACK is built from it in the one layout Linux sends
             * (NOP NOP TS, or no option), so that the controller's copy would be the same bytes. */
            bool canonical = (flags & ~TCP_PSH) == TCP_ACK && payload == 0;
            if (n_ts) {
                canonical = canonical && hdr.tcp.data_offset == 8 && hdr.tcp_options[0].nop.isValid()
                            && hdr.tcp_options[1].nop.isValid() && hdr.tcp_options[2].ts.isValid();
            } else {
                canonical = canonical && hdr.tcp.data_offset == 5;
            }
            if (!canonical) {
                HS_DECLINE()
                return;
            }
            hs.c_acked = 1;
            hs.window_c_ack = hdr.tcp.window;
            hs.tsval_c_ack = meta.opt.tsval;
            write = 1;
            if (state == HS_P1_KNOWN) {
                hs.state = HS_LEG1_UP;
                report = 1;
                HS_CRAFT(CRAFT_LEG1_ACK, 1, hs.client_addr, hs.client_port, hs.server_addr,
                      hs.server_port, hs.isn_c + 1, hs.isn_p1 + 1, TCP_ACK, 0)
                HS_CLONE_TO_PROXY()
            } else {
                hs.state = HS_C_ACKED;
            }
            /* on to S, which completes C-S */
        }

        /* ---- P, leg 1 (as S toward C) --------------------------------------------------------- */
        if (p_leg1) {
            if (is_syn_ack) {
                bool fresh = (state == HS_SYN_ACKED || state == HS_C_ACKED) && hdr.tcp.ack_no == hs.isn_c + 1;
                if (fresh && (payload != 0 || (n_ts && (meta.opt.syn_flags & SYNOPT_TS) == 0))) {
                    /* P answered otherwise than C and S agreed: the controller fails it open */
                    HS_DECLINE()
                    return;
                }
                if (fresh) {
                    hs.isn_p1 = hdr.tcp.seq_no;
                    hs.tsval_p1 = meta.opt.tsval;
                    hs.ws_p1 = meta.opt.ws;
                    hs.opts_p1 = meta.opt.syn_flags;
                    write = 1;
                    if (state == HS_SYN_ACKED) {
                        hs.state = HS_P1_KNOWN;
                        HS_DROP()
                        return;
                    }
                    hs.state = HS_LEG1_UP;
                    report = 1;
                } else if (hs.c_acked == 0 || hdr.tcp.seq_no != hs.isn_p1) {
                    HS_DROP()  /* stale, or a retransmission before C's ACK */
                    return;
                }
                /* the leg-1 ACK (again, if P re-sent its SYN-ACK) */
                HS_CRAFT(CRAFT_LEG1_ACK, 0, hs.client_addr, hs.client_port, hs.server_addr,
                      hs.server_port, hs.isn_c + 1, hdr.tcp.seq_no + 1, TCP_ACK, 0)
                HS_REFLECT()
            } else if (state == HS_LEG1_UP || state == HS_UPSTREAM) {
                HS_XLATE(-d1, 0, -t1, 0, shift_p1, shift_s)
                return;  /* routed on to C */
            } else {
                HS_DROP()
                return;
            }
        }

        /* The leg-1 ACK, wherever it is built: C's window as C->P rescales it, C's TSval and, as
         * TSecr, P's SYN-ACK TSval (handshake.py, _leg1_ack) */
        if (meta.craft_kind == CRAFT_LEG1_ACK) {
            bit<8> leg1_c_at_p = 0;  /* P's WS may have been learnt just now */
            if (n_ws && (hs.opts_p1 & SYNOPT_WS) != 0) {
                leg1_c_at_p = shift_c;
            }
            bit<32> wide = ((bit<32>)hs.window_c_ack) << shift_c;
            wide = wide >> leg1_c_at_p;
            meta.craft_window = 0xFFFF;
            if (wide <= 0xFFFF) {
                meta.craft_window = wide[15:0];
            }
            if (n_ts) {
                meta.craft_opts = SYNOPT_TS;  /* NOP NOP TS, as C's own ACK */
                meta.craft_tsval = hs.tsval_c_ack;
                meta.craft_tsecr = hs.tsval_p1;
            }
            return;
        }

        /* ---- P, leg 2 (as C toward S) --------------------------------------------------------- */
        if (p_leg2) {
            if (is_syn) {
                bool again = state == HS_UPSTREAM && hdr.tcp.seq_no == hs.isn_p2;
                if (state != HS_LEG1_UP && !again) {
                    HS_DROP()  /* before leg 1 is up, P has no reason to open leg 2 */
                    return;
                }
                if (!again && (payload != 0 || (n_ts && (meta.opt.syn_flags & SYNOPT_TS) == 0))) {
                    HS_DECLINE()
                    return;
                }
                if (!again) {
                    hs.state = HS_UPSTREAM;
                    hs.isn_p2 = hdr.tcp.seq_no;
                    hs.tsval_p2 = meta.opt.tsval;
                    hs.ws_p2 = meta.opt.ws;
                    hs.opts_p2 = meta.opt.syn_flags;
                    write = 1;
                }
                /* S's side of N toward P's SYN (options.py, Negotiated.server_side) */
                HS_CRAFT(CRAFT_UPSTREAM_SYN_ACK, 0, hs.server_addr, hs.server_port, hs.client_addr,
                      hs.client_port, hs.isn_s, hdr.tcp.seq_no + 1, TCP_SYN | TCP_ACK, hs.window_s)
                meta.craft_opts = hs.opts_s & SYNOPT_MSS;
                meta.craft_mss = hs.mss_s;
                if (n_ws && (meta.opt.syn_flags & SYNOPT_WS) != 0) {
                    meta.craft_opts = meta.craft_opts | SYNOPT_WS;
                    meta.craft_ws = shift_s;
                }
                if (n_sack && (meta.opt.syn_flags & SYNOPT_SACK) != 0) {
                    meta.craft_opts = meta.craft_opts | SYNOPT_SACK;
                }
                if (n_ts && (meta.opt.syn_flags & SYNOPT_TS) != 0) {
                    meta.craft_opts = meta.craft_opts | SYNOPT_TS;
                    meta.craft_tsval = hs.tsval_s;
                    meta.craft_tsecr = meta.opt.tsval;
                }
                HS_REFLECT()
                return;
            }
            if (state == HS_UPSTREAM && has_ack && hdr.tcp.ack_no == hs.isn_s + 1) {
                /* P's ACK: leg 2 is up. S has C's ACK already; data riding on it is P's first
                 * bytes for S. */
                hs.state = HS_LEG2_UP;
                write = 1;
                report = 1;
                if (payload == 0) {
                    HS_DROP()
                    return;
                }
                HS_XLATE(-d2, 0, -t2, 0, shift_p2, shift_c)
                return;  /* routed on to S */
            }
            HS_DROP()
            return;
        }
    }
}

#endif
