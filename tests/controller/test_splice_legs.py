"""The per-leg and direct translations (design note sections 2 and 3), checked end to end.

The simulation plays C, P and S as byte streams: C's bytes go through C->P, P rewrites them (so what
P sends S differs in content and length from what it got), P->S carries the result; the reverse
direction likewise. Then the flow is held, P reports its counts, the direct entries replace the legs
and the ends keep talking. At every step the test checks what each receiver sees against what its
peer actually sent, with stream offsets far past 2^32 and ISNs next to the wrap.
"""

import random

import pytest
from p4splice.controller.splice.legs import (
    Direction,
    HandshakeFacts,
    LegParams,
    ProxyDisagrees,
    SpliceCounts,
    apply_translation,
    direct_params,
    leg_params,
    with_hold,
)
from p4splice.controller.splice.model import ACK, FIN, PSH, EntryMatch, FlowKey, Ports, TcpSegment
from p4splice.controller.splice.options import Mss, Nop, Sack, SynOptions, Timestamps, negotiate
from p4splice.controller.splice.seqmath import MASK32, MOD32, rescale_window, seq_add, seq_sub

FLOW = FlowKey("10.0.0.1", 40000, "10.0.1.1", 80)
PORTS = Ports(client=1, server=2, proxy=3)


def facts_for(isn_c=1000, isn_s=2000, isn_p1=3000, isn_p2=4000, client=None, server=None, p1=None, p2=None):
    client = client or SynOptions(1460, 7, True, 100)
    server = server or SynOptions(1400, 9, True, 200, tsecr=100)
    n = negotiate(client, server)
    p1 = p1 or SynOptions(1460, 8, n.sack, 300 if n.timestamps else None)
    p2 = p2 or SynOptions(1460, 6, True, 400)
    return HandshakeFacts(FLOW, PORTS, isn_c, isn_s, isn_p1, isn_p2, n, p1, p2)


def test_table_of_the_design_note():
    f = facts_for()
    c2p, p2c, p2s, s2p = leg_params(f)
    d1, d2, t1, t2 = 3000 - 2000, 4000 - 1000, 300 - 200, 400 - 100
    assert (c2p.direction, c2p.match, c2p.egress_port) == (Direction.C_TO_P, EntryMatch(1, *_c2s()), 3)
    assert (c2p.seq_delta, c2p.ack_delta, c2p.tsval_delta, c2p.tsecr_delta) == (0, d1, 0, t1)
    assert (c2p.win_shift_from, c2p.win_shift_to) == (7, 7)
    assert (p2c.match, p2c.egress_port) == (EntryMatch(3, *_s2c()), 1)
    assert (p2c.seq_delta, p2c.ack_delta, p2c.tsval_delta, p2c.tsecr_delta) == (MOD32 - d1, 0, MOD32 - t1, 0)
    assert (p2c.win_shift_from, p2c.win_shift_to) == (8, 9)  # P's shift to S's
    assert (p2s.match, p2s.egress_port) == (EntryMatch(3, *_c2s()), 2)
    assert (p2s.seq_delta, p2s.ack_delta, p2s.tsval_delta, p2s.tsecr_delta) == (MOD32 - d2, 0, MOD32 - t2, 0)
    assert (p2s.win_shift_from, p2s.win_shift_to) == (6, 7)  # P's shift to C's
    assert (s2p.match, s2p.egress_port) == (EntryMatch(2, *_s2c()), 3)
    assert (s2p.seq_delta, s2p.ack_delta, s2p.tsval_delta, s2p.tsecr_delta) == (0, d2, 0, t2)
    assert (s2p.win_shift_from, s2p.win_shift_to) == (9, 9)


def _c2s():
    return (FLOW.client_ip, FLOW.client_port, FLOW.server_ip, FLOW.server_port)


def _s2c():
    return (FLOW.server_ip, FLOW.server_port, FLOW.client_ip, FLOW.client_port)


def test_deltas_wrap():
    f = facts_for(isn_c=MASK32, isn_s=5, isn_p1=MASK32 - 1, isn_p2=3)
    c2p, p2c, p2s, s2p = leg_params(f)
    assert c2p.ack_delta == (MASK32 - 1 - 5) % MOD32
    assert p2s.seq_delta == MOD32 - 4  # D2 = 3 - (2^32 - 1) = 4 across the wrap
    assert seq_add(f.isn_p2, p2s.seq_delta) == f.isn_c
    assert seq_add(f.isn_s, c2p.ack_delta) == f.isn_p1


def test_no_timestamps_or_scaling_means_zero_ts_deltas_and_no_rescale():
    f = facts_for(client=SynOptions(1460, None, False, None), server=SynOptions(1400, 9, True, 200),
                  p1=SynOptions(1460), p2=SynOptions(1460, 7, True, 55))
    for p in leg_params(f):
        assert p.tsval_delta == p.tsecr_delta == 0
        assert p.win_shift_from == p.win_shift_to == 0


def test_unscaled_proxy_leg_is_rescaled_both_ways():
    # N has window scaling, but P answered leg 1 without WS and offered none on leg 2: P's windows
    # are unscaled and P reads C's and S's windows unscaled too.
    f = facts_for(p1=SynOptions(1460, None, True, 300), p2=SynOptions(1460, None, True, 400))
    c2p, p2c, p2s, s2p = leg_params(f)
    assert (c2p.win_shift_from, c2p.win_shift_to) == (7, 0)
    assert (p2c.win_shift_from, p2c.win_shift_to) == (0, 9)
    assert (p2s.win_shift_from, p2s.win_shift_to) == (0, 7)
    assert (s2p.win_shift_from, s2p.win_shift_to) == (9, 0)


def test_proxy_without_timestamps_is_refused():
    with pytest.raises(ProxyDisagrees, match="leg 1"):
        leg_params(facts_for(p1=SynOptions(1460, 8, True, None)))
    with pytest.raises(ProxyDisagrees, match="upstream"):
        leg_params(facts_for(p2=SynOptions(1460, 8, True, None)))


def test_direct_entries_and_verbatim_splice():
    c2s, s2c = direct_params(FLOW, PORTS, SpliceCounts(a_c=100, b_s=130, a_s=500, b_c=480))
    assert (c2s.match, c2s.egress_port, c2s.seq_delta, c2s.ack_delta) == (EntryMatch(1, *_c2s()), 2, 30, 20)
    assert (s2c.match, s2c.egress_port, s2c.seq_delta, s2c.ack_delta) == (EntryMatch(2, *_s2c()), 1, MOD32 - 20, MOD32 - 30)
    assert c2s.tsval_delta == c2s.tsecr_delta == s2c.tsval_delta == s2c.tsecr_delta == 0
    v1, v2 = direct_params(FLOW, PORTS, SpliceCounts(7 << 32 | 5, 5, 9, 3 << 32 | 9))
    assert v1.is_identity and v2.is_identity
    with pytest.raises(ValueError):
        SpliceCounts(-1, 0, 0, 0)


def test_rewrite_only_where_the_field_exists():
    p = LegParams(Direction.C_TO_P, EntryMatch(1, *_c2s()), 3, seq_delta=1, ack_delta=2, tsval_delta=3, tsecr_delta=4)
    bare = TcpSegment(*_c2s(), seq=10, ack=20, flags=0x02, options=(Mss(1460),))
    out = apply_translation(p, bare)
    assert (out.seq, out.ack, out.options) == (11, 20, (Mss(1460),))  # no ACK flag: ack untouched
    seg = TcpSegment(*_c2s(), seq=MASK32, ack=MASK32 - 1, flags=ACK,
                     options=(Nop(), Nop(), Timestamps(MASK32, MASK32 - 2), Nop(), Nop(), Sack(((MASK32, 0),))))
    out = apply_translation(p, seg)
    assert (out.seq, out.ack) == (0, 0)
    assert out.options == (Nop(), Nop(), Timestamps(2, 1), Nop(), Nop(), Sack(((1, 2),)))


def test_hold_drops_what_occupies_sequence_space_only():
    p = with_hold(LegParams(Direction.C_TO_P, EntryMatch(1, *_c2s()), 3, ack_delta=5))
    assert apply_translation(p, TcpSegment(*_c2s(), seq=1, ack=1, payload=b"x")) is None
    assert apply_translation(p, TcpSegment(*_c2s(), seq=1, ack=1, flags=ACK | FIN)) is None
    ack = apply_translation(p, TcpSegment(*_c2s(), seq=1, ack=1, flags=ACK | PSH))
    assert ack is not None and ack.ack == 6


# ---- the end-to-end algebra -------------------------------------------------------------------


class Receiver:
    """One end's receive side: bytes by absolute stream offset (offsets run past 2^32)."""

    def __init__(self, isn: int, base: int) -> None:
        self.isn, self.base, self.data = isn, base, {}
        self.nxt = base  # next in-order offset

    def offset_of(self, seq: int) -> int:
        # Unwrap a 32-bit sequence number to the absolute offset nearest to what we expect.
        rel = seq_sub(seq, seq_add(self.isn, 1))
        guess = self.nxt - (self.nxt % MOD32) + rel
        return min((guess - MOD32, guess, guess + MOD32), key=lambda g: abs(g - self.nxt))

    def take(self, seg: TcpSegment) -> None:
        off = self.offset_of(seg.seq)
        for i, b in enumerate(seg.payload):
            if off + i >= self.nxt:
                self.data.setdefault(off + i, b)
        while self.nxt in self.data:
            self.nxt += 1

    def stream(self, start: int, end: int) -> bytes:
        return bytes(self.data[i] for i in range(start, end))

    def ack(self) -> int:
        return seq_add(self.isn, 1 + self.nxt)

    def sack(self) -> tuple[tuple[int, int], ...]:
        """Up to 4 blocks of data held beyond a hole, as absolute offsets."""
        blocks, cur = [], None
        for off in sorted(k for k in self.data if k > self.nxt):
            if cur and off == cur[1]:
                cur[1] += 1
            else:
                cur = [off, off + 1]
                blocks.append(cur)
        return tuple((a, b) for a, b in blocks[:4])


def send_stream(rng, params, src_isn, sender_base, data, rcv, *, ack, tsval=None, tsecr=None, window=1000,
                reorder=True, dup=True, make=None):
    """Cut ``data`` (stream offsets sender_base..) into segments, mix them up, pass each through
    ``params`` into ``rcv``. Returns the translated segments in delivery order."""
    segs, off = [], 0
    while off < len(data):
        n = rng.randint(1, 40)
        opts = (Nop(), Nop(), Timestamps(tsval, tsecr)) if tsval is not None else ()
        segs.append(make(seq_add(src_isn, 1 + sender_base + off), data[off:off + n], opts, ack, window))
        off += n
    if reorder and len(segs) > 2:
        i = rng.randrange(len(segs) - 1)
        segs[i], segs[i + 1] = segs[i + 1], segs[i]
    if dup and segs:
        segs.append(rng.choice(segs))
    out = []
    for s in segs:
        t = apply_translation(params, s)
        assert t is not None
        rcv.take(t)
        out.append(t)
    return out


def c2s_seg(seq, payload, opts, ack, window):
    return TcpSegment(*_c2s(), seq=seq, ack=ack, flags=ACK | PSH, window=window, options=opts, payload=payload)


def s2c_seg(seq, payload, opts, ack, window):
    return TcpSegment(*_s2c(), seq=seq, ack=ack, flags=ACK | PSH, window=window, options=opts, payload=payload)


def rewrite(rng):
    """P's application: a random rewrite that changes both content and length."""
    a, b = rng.randrange(256), rng.randrange(256)
    extra = bytes(rng.randrange(256) for _ in range(rng.randint(0, 5)))
    return lambda data: data.replace(bytes([a]), extra).replace(bytes([b]), bytes([b, b]))


def some_isn(rng):
    return rng.choice([rng.getrandbits(32), MASK32 - rng.randrange(2000), rng.randrange(2000)])


def pure_ack(params, seg_fields, ack, opts=()):
    seg = TcpSegment(*seg_fields[0], seq=seg_fields[1], ack=ack, flags=ACK, options=opts)
    out = apply_translation(params, seg)
    assert out is not None
    return out


@pytest.mark.parametrize("seed", range(150))
def test_streams_stay_consistent_through_legs_and_splice(seed):
    rng = random.Random(seed)
    isn_c, isn_s, isn_p1, isn_p2 = (some_isn(rng) for _ in range(4))
    ts, ws, sack = rng.random() < 0.7, rng.random() < 0.7, rng.random() < 0.7
    sh = [rng.randrange(15) for _ in range(4)]
    clk = [some_isn(rng) for _ in range(4)]  # first TSvals of C, S, P on leg 1, P on leg 2
    client = SynOptions(1460, sh[0] if ws else None, sack, clk[0] if ts else None)
    server = SynOptions(1400, sh[1] if ws else None, sack, clk[1] if ts else None, tsecr=clk[0])
    n = negotiate(client, server)
    p1 = SynOptions(1460, rng.choice([None, sh[2]]) if n.wscale else None, n.sack, clk[2] if n.timestamps else None)
    p2 = SynOptions(1460, rng.choice([None, sh[3]]), True, clk[3] if n.timestamps else None)
    facts = HandshakeFacts(FLOW, PORTS, isn_c, isn_s, isn_p1, isn_p2, n, p1, p2)
    c2p, p2c, p2s, s2p = leg_params(facts)

    # Bytes already exchanged before the simulated window (the stream offsets run past 2^32).
    oc, os_, osp, opc = (rng.choice([0, rng.randrange(1 << 34)]) for _ in range(4))
    c_data = bytes(rng.randrange(256) for _ in range(rng.randint(50, 400)))
    s_data = bytes(rng.randrange(256) for _ in range(rng.randint(50, 400)))
    up, down = rewrite(rng), rewrite(rng)

    # Receivers: P's leg-1 receive side is in C's space (aligned), S's in C's space; P's leg-2 receive
    # side and C's are in S's space.
    p_from_c = Receiver(isn_c, oc)
    s_from_p = Receiver(isn_c, os_)
    p_from_s = Receiver(isn_s, osp)
    c_from_p = Receiver(isn_s, opc)
    t_c, t_s, t_p = seq_add(clk[0], rng.randrange(1000)), seq_add(clk[1], rng.randrange(1000)), rng.randrange(1000)

    # -- phase 1: P in the path --------------------------------------------------------------------
    # C -> P: C acks what it got from "S" (C's receiver); TSecr echoes the last "S" clock C saw.
    c_seen_tsval = clk[1]
    got = send_stream(rng, c2p, isn_c, oc, c_data, p_from_c, ack=c_from_p.ack(),
                      tsval=t_c if n.timestamps else None, tsecr=c_seen_tsval, make=c2s_seg)
    assert p_from_c.stream(oc, oc + len(c_data)) == c_data
    for t in got:
        # The ack C sent is in S's space; P must read it in its own leg-1 space at the same offset.
        assert seq_sub(t.ack, seq_add(isn_p1, 1)) == opc % MOD32
        if n.timestamps:
            # C echoed S's clock; P must get back its own leg-1 clock.
            assert t.options[-1] == Timestamps(t_c, seq_add(c_seen_tsval, seq_sub(clk[2], clk[1])))
    a_c = oc + len(c_data)

    # P -> S: P's rewrite of C's bytes, in P's leg-2 space; S must read it in C's space.
    to_s = up(c_data)
    p2_clock = seq_add(clk[3], t_p)
    got = send_stream(rng, p2s, isn_p2, os_, to_s, s_from_p, ack=seq_add(isn_s, 1 + osp),
                      tsval=p2_clock if n.timestamps else None, tsecr=clk[1], make=c2s_seg)
    assert s_from_p.stream(os_, os_ + len(to_s)) == to_s
    for t in got:
        if n.timestamps:
            ts_opt = t.options[-1]
            assert ts_opt.tsval == seq_add(clk[0], t_p)  # P's clock as C's clock would read
        b = rescale_window(1000, p2s.win_shift_from, p2s.win_shift_to) << (n.shift_c if n.wscale else 0)
        assert t.window << (n.shift_c if n.wscale else 0) == b <= 1000 << p2s.win_shift_from
    b_s = os_ + len(to_s)

    # S acks P (with SACK when it sees a hole); P must read both in its leg-2 space.
    sack_blocks = tuple((seq_add(isn_c, 1 + lo), seq_add(isn_c, 1 + hi)) for lo, hi in ((os_ + 3, os_ + 5),))
    t = pure_ack(s2p, (_s2c(), seq_add(isn_s, 1 + osp)), s_from_p.ack(), (Nop(), Nop(), Sack(sack_blocks)))
    assert seq_sub(t.ack, seq_add(isn_p2, 1)) == b_s % MOD32
    assert t.options[-1] == Sack(((seq_add(isn_p2, 1 + os_ + 3), seq_add(isn_p2, 1 + os_ + 5)),))

    # S -> P -> C, the same way down.
    got = send_stream(rng, s2p, isn_s, osp, s_data, p_from_s, ack=s_from_p.ack(),
                      tsval=t_s if n.timestamps else None, tsecr=seq_add(clk[0], t_p), make=s2c_seg)
    assert p_from_s.stream(osp, osp + len(s_data)) == s_data
    for t in got:
        assert seq_sub(t.ack, seq_add(isn_p2, 1)) == b_s % MOD32
        if n.timestamps:
            assert t.options[-1] == Timestamps(t_s, p2_clock)  # P gets its own leg-2 clock back
    a_s = osp + len(s_data)
    to_c = down(s_data)
    p1_clock = seq_add(clk[2], t_p)
    got = send_stream(rng, p2c, isn_p1, opc, to_c, c_from_p, ack=p_from_c.ack(),
                      tsval=p1_clock if n.timestamps else None, tsecr=t_c, make=s2c_seg)
    assert c_from_p.stream(opc, opc + len(to_c)) == to_c
    for t in got:
        assert seq_sub(t.ack, seq_add(isn_c, 1)) == a_c % MOD32  # C's own space: P acks all it got
        if n.timestamps:
            assert t.options[-1].tsval == seq_add(clk[1], t_p)  # looks like S's clock
    b_c = opc + len(to_c)

    # -- the splice: hold, P reports, direct entries ----------------------------------------------------
    held = with_hold(c2p)
    assert apply_translation(held, c2s_seg(seq_add(isn_c, 1 + a_c), b"late", (), 0, 9)) is None
    assert apply_translation(held, TcpSegment(*_c2s(), seq=seq_add(isn_c, 1 + a_c), ack=c_from_p.ack())) is not None
    c2s, s2c = direct_params(FLOW, PORTS, SpliceCounts(a_c=a_c, b_s=b_s, a_s=a_s, b_c=b_c))
    if to_s == c_data and to_c == s_data and oc == os_ and osp == opc:
        assert c2s.is_identity and s2c.is_identity

    # -- phase 2: C and S directly --------------------------------------------------------------------
    c_more = bytes(rng.randrange(256) for _ in range(rng.randint(1, 300)))
    s_more = bytes(rng.randrange(256) for _ in range(rng.randint(1, 300)))
    # C's segments carry C's offsets and C's ack (what C got from P, in S's space as C sees it).
    send_stream(rng, c2s, isn_c, a_c, c_more, s_from_p, ack=c_from_p.ack(), make=c2s_seg)
    # S's stream is P's output followed by C's new bytes, seamlessly.
    assert s_from_p.stream(os_, s_from_p.nxt) == to_s + c_more
    t = pure_ack(c2s, (_c2s(), seq_add(isn_c, 1 + a_c + len(c_more))), c_from_p.ack())
    assert seq_sub(t.ack, seq_add(isn_s, 1)) == a_s % MOD32  # S sees C acking exactly what S sent P

    send_stream(rng, s2c, isn_s, a_s, s_more, c_from_p, ack=s_from_p.ack(), make=s2c_seg)
    assert c_from_p.stream(opc, c_from_p.nxt) == to_c + s_more

    # Every ack C now gets covers exactly the bytes S acknowledged, SACK edges included.
    for k in sorted({0, len(c_more), rng.randrange(len(c_more) + 1)}):
        s_ack = seq_add(isn_c, 1 + b_s + k)
        lo, hi = b_s + k + 2, b_s + k + 5
        sack_opt = Sack(((seq_add(isn_c, 1 + lo), seq_add(isn_c, 1 + hi)),))
        t = pure_ack(s2c, (_s2c(), seq_add(isn_s, 1 + a_s + len(s_more))), s_ack, (Nop(), Nop(), sack_opt))
        c_off = seq_sub(t.ack, seq_add(isn_c, 1))
        assert c_off == (a_c + k) % MOD32
        # ... and those are the same bytes: what S holds up to its ack is what C sent up to C's.
        if k:
            assert s_from_p.stream(b_s, b_s + k) == c_more[:k]
        left, right = t.options[-1].blocks[0]
        assert seq_sub(left, seq_add(isn_c, 1)) == (a_c + k + 2) % MOD32
        assert seq_sub(right, left) == 3


def test_the_worked_example_of_the_docs():
    """docs/controller-splice.md, "Arithmetic, with a worked example"."""
    n = negotiate(SynOptions(1460, 7, True, 100000), SynOptions(1400, 9, True, 500000, tsecr=100000))
    facts = HandshakeFacts(FLOW, PORTS, 4294967000, 1000, 5000, 70, n,
                           SynOptions(1460, 8, True, 7000, 100000), SynOptions(1460, 6, True, 9000))
    rows = [(p.seq_delta, p.ack_delta, p.tsval_delta, p.tsecr_delta, p.win_shift_from, p.win_shift_to)
            for p in leg_params(facts)]
    assert rows == [(0, 4000, 0, 4294474296, 7, 7), (4294963296, 0, 493000, 0, 8, 9),
                    (4294966930, 0, 91000, 0, 6, 7), (0, 366, 0, 4294876296, 9, 9)]
    c2p, p2c, p2s, s2p = leg_params(facts)
    assert apply_translation(c2p, c2s_seg(4294967001, b"x", (), 1001, 1)).ack == 5001
    assert apply_translation(p2s, c2s_seg(71, b"x", (), 1001, 1)).seq == 4294967001
    assert apply_translation(p2c, s2c_seg(5001, b"x", (), 1, 1000)).window == 500
    c2s, s2c = direct_params(FLOW, PORTS, SpliceCounts(500, 520, 3000, 2990))
    assert (c2s.seq_delta, c2s.ack_delta, s2c.seq_delta, s2c.ack_delta) == (20, 10, MOD32 - 10, MOD32 - 20)
    seg = apply_translation(c2s, c2s_seg(205, b"x", (), 3991, 1))
    assert (seg.seq, seg.ack) == (225, 4001)
    assert apply_translation(s2c, s2c_seg(4001, b"", (), seq_add(4294967000, 531), 1)).ack == seq_add(4294967000, 511)
