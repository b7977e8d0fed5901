"""The claim-1 handshake state machine: every path of issue 4, driven through SpliceCore."""

import gc

import pytest
from p4splice.controller.splice import (
    CancelTimer,
    FlowEstablished,
    HandshakeConfig,
    HsState,
    InstallLeg,
    InstallPunt,
    ReleaseHeld,
    RemoveFlow,
    ResetFlow,
    SegmentIn,
    SendSegment,
    Side,
    SpliceCore,
    StartTimer,
    TimerKey,
    TimerKind,
    apply_translation,
    leg_params,
)
from p4splice.controller.splice.handshake import Handshake
from p4splice.controller.splice.model import ACK, FIN, PSH, RST, SYN, EntryMatch, FlowKey, TcpSegment
from p4splice.controller.splice.options import SynOptions, Timestamps, find, negotiate
from p4splice.controller.splice.seqmath import MASK32, seq_add

C = ("10.0.0.1", 40000)
S = ("10.0.1.1", 80)
FLOW = FlowKey(*C, *S)
CPORT, SPORT, PPORT = 1, 2, 3
OPTS_C = SynOptions(1460, 7, True, 100)
OPTS_S = SynOptions(1400, 9, True, 200, tsecr=100)
OPTS_P1 = SynOptions(1460, 8, True, 300, tsecr=100)
OPTS_P2 = SynOptions(1460, 6, True, 400)
ISN_C, ISN_S, ISN_P1, ISN_P2 = MASK32, 2000, 3000, 4000  # C's ISN wraps at its first byte


def c2s(seq, ack=0, flags=ACK, payload=b"", opts=(), src=C, dst=S, window=1000):
    return TcpSegment(*src, *dst, seq=seq, ack=ack, flags=flags, window=window, options=opts, payload=payload)


def s2c(seq, ack=0, flags=ACK, payload=b"", opts=(), window=1000):
    return c2s(seq, ack, flags, payload, opts, src=S, dst=C, window=window)


def ts(val, ecr):
    return (Timestamps(val, ecr),)


class World:
    """Plays C, S and P around a SpliceCore and keeps every command it returned."""

    def __init__(self, **config):
        self.core = SpliceCore(HandshakeConfig(**config))
        self.log = []

    def feed(self, seg, port, *, proxy=False, copy=False):
        out = self.core.on_segment(SegmentIn(seg, port, from_proxy=proxy, copy=copy, proxy_port=PPORT))
        self.log += out
        return out

    def timer(self, kind, flow=FLOW):
        timers = [c.timer for c in self.log if isinstance(c, StartTimer) and c.timer.kind is kind and c.timer.flow == flow]
        out = self.core.on_timer(timers[-1])
        self.log += out
        return out

    # the steps of section 1
    def syn(self, isn=ISN_C, opts=OPTS_C, copy=True):
        return self.feed(c2s(isn, flags=SYN, opts=opts.to_options(), window=64240), CPORT, copy=copy)

    def syn_ack(self, isn=ISN_S, opts=OPTS_S, ack=None, copy=True):
        ack = seq_add(ISN_C, 1) if ack is None else ack
        return self.feed(s2c(isn, ack, SYN | ACK, opts=opts.to_options(), window=65160), SPORT, copy=copy)

    def proxy_syn_ack(self, isn=ISN_P1, opts=OPTS_P1):
        return self.feed(s2c(isn, seq_add(ISN_C, 1), SYN | ACK, opts=opts.to_options()), PPORT, proxy=True)

    def client_ack(self, payload=b"", flags=ACK):
        return self.feed(c2s(seq_add(ISN_C, 1), ISN_S + 1, flags, payload, ts(150, 200)), CPORT)

    def upstream_syn(self, isn=ISN_P2, opts=OPTS_P2):
        return self.feed(c2s(isn, 0, SYN, opts=opts.to_options()), PPORT, proxy=True)

    def proxy_ack(self, payload=b""):
        return self.feed(c2s(ISN_P2 + 1, ISN_S + 1, ACK, payload, ts(410, 200)), PPORT, proxy=True)

    def full(self):
        self.syn()
        self.syn_ack()
        self.proxy_syn_ack()
        self.client_ack()
        self.upstream_syn()
        return self.proxy_ack()


def sends(cmds, to=None):
    return [c for c in cmds if isinstance(c, SendSegment) and (to is None or c.to is to)]


def of(cmds, cls):
    return [c for c in cmds if isinstance(c, cls)]


def expected_facts():
    from p4splice.controller.splice import HandshakeFacts, Ports

    return HandshakeFacts(FLOW, Ports(CPORT, SPORT, PPORT), ISN_C, ISN_S, ISN_P1, ISN_P2,
                          negotiate(OPTS_C, OPTS_S), OPTS_P1, OPTS_P2, tsval_c_ack=150)


# ---- the whole handshake ---------------------------------------------------------------------


def test_full_handshake_emits_the_claims_packets_and_entries():
    w = World()
    out = w.syn()
    assert of(out, InstallPunt) == [InstallPunt(FLOW, (EntryMatch.c2s(FLOW, CPORT),))]
    assert not sends(out)  # the switch forwarded the SYN itself

    out = w.syn_ack()
    assert of(out, InstallPunt)[0].matches == tuple(sorted((EntryMatch.s2c(FLOW, SPORT), EntryMatch.c2s(FLOW, PPORT))))
    (req,) = sends(out, Side.PROXY)
    seg = req.segment
    # The second request: a SYN from C to S with ISN_c and C's side of N.
    assert (seg.src_ip, seg.src_port, seg.dst_ip, seg.dst_port) == (*C, *S)
    assert (seg.seq, seg.flags, req.egress_port) == (ISN_C, SYN, PPORT)
    assert SynOptions.from_options(seg.options) == negotiate(OPTS_C, OPTS_S).client_side()
    assert SynOptions.from_options(seg.options).tsval == 100

    out = w.proxy_syn_ack()
    assert not sends(out) and not of(out, InstallLeg)  # waits for C's ACK

    out = w.client_ack()
    (to_s,) = sends(out, Side.SERVER)
    assert (to_s.segment.seq, to_s.segment.ack, to_s.segment.flags) == (0, ISN_S + 1, ACK)
    (legs,) = of(out, InstallLeg)
    assert legs.legs == leg_params(expected_facts())[:2]
    (ack,) = sends(out, Side.PROXY)
    # The ACK completing leg 1: ISN_p1 + 1, with P's own TSval echoed (TSecr + T1).
    assert (ack.segment.seq, ack.segment.ack, ack.segment.flags) == (0, ISN_P1 + 1, ACK)
    assert find(ack.segment.options, Timestamps) == Timestamps(150, 300)
    assert out.index(legs) < out.index(ack)  # entries before the packet that relies on them

    out = w.upstream_syn()
    (sa,) = sends(out, Side.PROXY)
    seg = sa.segment
    # Answered as S would: ISN_s, S's side of N, P's TSval echoed.
    assert (seg.src_ip, seg.src_port, seg.dst_ip, seg.dst_port) == (*S, *C)
    assert (seg.seq, seg.ack, seg.flags, seg.window) == (ISN_S, ISN_P2 + 1, SYN | ACK, 65160)
    got = SynOptions.from_options(seg.options)
    assert got == SynOptions(1400, 9, True, 200, tsecr=400)

    out = w.proxy_ack()
    assert not sends(out)  # P's ACK stops at the switch
    (legs,) = of(out, InstallLeg)
    assert legs.legs == leg_params(expected_facts())[2:]
    (est,) = of(out, FlowEstablished)
    assert est.facts == expected_facts() and est.legs == leg_params(expected_facts())
    assert len(w.core.handshakes) == 0 and FLOW in w.core.flows
    assert any(isinstance(c, StartTimer) and c.timer.kind is TimerKind.IDLE for c in out)


def test_a_syn_with_its_servers_port_punts_the_syn_ack_too_which_the_controller_sends_on():
    """Given the port toward S (routes), C's SYN installs S's punt entry beside C's: the SYN-ACK
    then reaches the controller whatever the services entry does (proxied_draining), and the
    controller, holding its only copy, sends it on to C."""
    w = World()
    syn = c2s(ISN_C, flags=SYN, opts=OPTS_C.to_options(), window=64240)
    out = w.core.on_segment(SegmentIn(syn, CPORT, copy=False, proxy_port=PPORT, server_port=SPORT))
    (punt,) = of(out, InstallPunt)
    assert set(punt.matches) == {EntryMatch.c2s(FLOW, CPORT), EntryMatch.s2c(FLOW, SPORT)}
    assert [(c.to, c.egress_port) for c in sends(out)] == [(Side.SERVER, None)]
    out = w.syn_ack(copy=False)
    assert of(out, InstallPunt)[0].matches == (EntryMatch.c2s(FLOW, PPORT),)  # S's is there already
    assert [(c.to, c.egress_port, c.segment.flags) for c in sends(out, Side.CLIENT)] == [(Side.CLIENT, CPORT, SYN | ACK)]
    assert len(sends(out, Side.PROXY)) == 1  # the second request


def test_leg2_timestamps_read_as_c_from_its_handshake_ack_on():
    """S takes the TSval of C's handshake ACK as TS.Recent and drops (PAWS) anything older, so P's
    clock on leg 2 must read as C's from that ACK on, not from C's SYN. Anchored at the SYN, P's
    first bytes to S lagged by the handshake's duration -- over a second after a retransmitted
    SYN -- and S dropped them until P's clock caught up: the impaired lab's splice drains took
    0.2-5 s (tests/e2e/test_impaired.py, docs/e2e.md)."""
    w = World()
    w.syn()  # TSval 100
    w.syn(opts=SynOptions(1460, 7, True, 1100))  # C retransmits its SYN a second later
    w.syn_ack()
    w.proxy_syn_ack()
    w.feed(c2s(seq_add(ISN_C, 1), ISN_S + 1, ACK, opts=ts(1150, 200)), CPORT)  # S's TS.Recent: 1150
    w.upstream_syn()  # P's clock: 400
    (legs,) = of(w.proxy_ack(), InstallLeg)
    p2s, s2p = legs.legs
    # P's request, 5 ms after its SYN, reaches S 5 ms after C's ACK: not older than TS.Recent.
    seg = apply_translation(p2s, c2s(ISN_P2 + 1, ISN_S + 1, ACK | PSH, b"GET", ts(405, 200)))
    assert seg is not None and find(seg.options, Timestamps).tsval == 1155
    # S's echo of it reads as P's own clock again.
    back = apply_translation(s2p, s2c(ISN_S + 1, seq_add(ISN_C, 4), ACK, opts=ts(210, 1155)))
    assert back is not None and find(back.options, Timestamps).tsecr == 405


def test_leg1_ack_echoes_the_proxys_syn_ack_after_a_retransmitted_syn_ack():
    """C took S's second SYN-ACK (the first was lost on C's side of the switch): its TSecr + T1 is
    later than P's SYN-ACK, and Linux refuses such an ACK in SYN-RECV (RFC 7323 5.2), dropping C's
    first flight with it. The ACK completing leg 1 echoes P's SYN-ACK TSval instead."""
    w = World()
    w.syn()
    w.syn_ack()  # S's TSval 200
    w.proxy_syn_ack()  # P's TSval 300
    w.syn_ack(opts=SynOptions(1400, 9, True, 1200, tsecr=100))  # S again, a second later
    out = w.feed(c2s(seq_add(ISN_C, 1), ISN_S + 1, ACK, opts=ts(1150, 1200)), CPORT)  # C took that one
    (ack,) = sends(out, Side.PROXY)
    assert (ack.segment.ack, find(ack.segment.options, Timestamps)) == (ISN_P1 + 1, Timestamps(1150, 300))
    # P re-sends its SYN-ACK (our ACK was lost): the same ACK again.
    out = w.proxy_syn_ack()
    (again,) = sends(out, Side.PROXY)
    assert again.segment == ack.segment


def test_proxy_syn_ack_after_clients_ack():
    w = World()
    w.syn()
    w.syn_ack()
    out = w.client_ack()
    assert sends(out, Side.SERVER) and not of(out, InstallLeg)
    out = w.proxy_syn_ack()
    assert of(out, InstallLeg) and sends(out, Side.PROXY)[0].segment.ack == ISN_P1 + 1


def test_early_data_is_held_and_released_in_order():
    w = World()
    w.syn()
    w.syn_ack()
    # C's ACK carries its request; more follows before P has answered.
    out = w.client_ack(payload=b"GET / HTTP/1.1\r\n", flags=ACK | PSH)
    (to_s,) = sends(out, Side.SERVER)
    assert to_s.segment.payload == b"" and to_s.segment.flags == ACK  # S gets the bare ACK
    w.feed(c2s(seq_add(ISN_C, 17), ISN_S + 1, ACK | PSH, b"Host: x\r\n\r\n"), CPORT)
    w.feed(c2s(seq_add(ISN_C, 28), ISN_S + 1, ACK | FIN), CPORT)
    # S speaks first too (a banner), before leg 2 exists.
    w.feed(s2c(ISN_S + 1, seq_add(ISN_C, 1), ACK | PSH, b"220 hello\r\n"), SPORT)
    out = w.proxy_syn_ack()
    (rel,) = of(out, ReleaseHeld)
    assert [s.segment.payload for s in rel.segments] == [b"GET / HTTP/1.1\r\n", b"Host: x\r\n\r\n", b""]
    assert [s.segment.seq for s in rel.segments] == [0, 16, 27]  # C's space (wrapped), aligned for P
    assert all(s.segment.ack == ISN_P1 + 1 and s.egress_port == PPORT for s in rel.segments)
    assert rel.segments[-1].segment.flags & FIN
    assert out.index(of(out, InstallLeg)[0]) < out.index(rel)
    w.upstream_syn()
    out = w.proxy_ack()
    (rel,) = of(out, ReleaseHeld)
    (banner,) = rel.segments
    assert banner.segment.payload == b"220 hello\r\n"
    assert (banner.segment.seq, banner.segment.ack) == (ISN_S + 1, ISN_P2 + 1)  # S's space, P's ack
    assert w.core.handshakes.held_bytes_total == 0


def test_held_segments_are_bounded():
    w = World(max_held_segments=3)
    w.syn()
    w.syn_ack()
    w.client_ack()
    for i in range(10):
        w.feed(c2s(seq_add(ISN_C, 1 + i), ISN_S + 1, ACK, b"x"), CPORT)
    assert w.core.handshakes.stats["held_dropped"] == 7
    (rel,) = of(w.proxy_syn_ack(), ReleaseHeld)
    assert len(rel.segments) == 3


def test_proxy_data_on_its_ack_goes_to_s():
    w = World()
    w.syn()
    w.syn_ack()
    w.proxy_syn_ack()
    w.client_ack()
    w.upstream_syn()
    out = w.proxy_ack(payload=b"req")
    (seg,) = sends(out, Side.SERVER)
    assert (seg.segment.seq, seg.segment.payload) == (seq_add(ISN_C, 1), b"req")
    assert find(seg.segment.options, Timestamps).tsval == 410 - (400 - 150)  # C's clock as of its ACK (150)


# ---- retransmissions and restarts --------------------------------------------------------------


def test_retransmitted_syn_is_idempotent_and_forwarded_when_punted():
    w = World()
    w.syn()
    assert w.syn() == []
    out = w.syn(copy=False)
    assert [c.segment.seq for c in sends(out, Side.SERVER)] == [ISN_C]
    assert len(w.core.handshakes) == 1 and w.core.handshakes.stats["syn_retransmit"] == 2


def test_syn_with_new_isn_restarts_and_resets_the_proxy():
    w = World()
    w.syn()
    w.syn_ack()
    w.proxy_syn_ack()
    out = w.syn(isn=777)
    rst = [c for c in sends(out, Side.PROXY) if c.segment.flags & RST]
    assert rst and rst[0].segment.seq == seq_add(ISN_C, 1)
    assert of(out, RemoveFlow)
    hs = w.core.handshakes.get(FLOW)
    assert hs.isn_c == 777 and hs.state is HsState.SYN_SEEN
    # The old incarnation's timers are stale now.
    old = [c.timer for c in w.log if isinstance(c, StartTimer)][0]
    assert w.core.on_timer(old) == []


def test_retransmitted_syn_ack_is_idempotent():
    w = World()
    w.syn()
    w.syn_ack()
    assert w.syn_ack() == []
    out = w.syn_ack(copy=False)
    assert [c.to for c in sends(out)] == [Side.CLIENT]
    assert w.core.handshakes.get(FLOW).proxy_syn_sends == 1


def test_syn_ack_with_new_isn_before_the_clients_ack_rebuilds_leg1():
    w = World()
    w.syn()
    w.syn_ack()
    w.proxy_syn_ack()
    out = w.syn_ack(isn=9999)
    kinds = [(c.segment.flags, c.segment.seq) for c in sends(out, Side.PROXY)]
    assert kinds == [(RST, seq_add(ISN_C, 1)), (SYN, ISN_C)]
    hs = w.core.handshakes.get(FLOW)
    assert hs.isn_s == 9999 and hs.isn_p1 is None


def test_syn_ack_with_new_isn_after_the_clients_ack_is_ignored():
    # A syncookie answer to a retransmitted SYN: C keeps the ISN it acknowledged, and so do we.
    w = World()
    w.syn()
    w.syn_ack()
    w.client_ack()
    assert w.syn_ack(isn=9999) == []
    hs = w.core.handshakes.get(FLOW)
    assert hs is not None and hs.isn_s == ISN_S
    assert w.core.handshakes.stats["syn_ack_new_isn_ignored"] == 1


def test_stale_syn_ack_is_ignored():
    w = World()
    w.syn()
    assert w.syn_ack(ack=12345) == []
    assert w.core.handshakes.get(FLOW).state is HsState.SYN_SEEN


def test_proxy_retransmits_are_answered():
    w = World()
    w.syn()
    w.syn_ack()
    w.proxy_syn_ack()
    w.client_ack()
    # P did not get our ACK and re-sends its SYN-ACK: it is ACKed again.
    (again,) = sends(w.proxy_syn_ack(), Side.PROXY)
    assert again.segment.ack == ISN_P1 + 1
    w.upstream_syn()
    (sa,) = sends(w.upstream_syn(), Side.PROXY)
    assert sa.segment.flags == SYN | ACK


# ---- failures --------------------------------------------------------------------------------


def test_no_answer_from_server_times_out_quietly():
    w = World()
    w.syn()
    out = w.timer(TimerKind.HANDSHAKE)
    assert of(out, RemoveFlow)[0].matches == (EntryMatch.c2s(FLOW, CPORT),)
    assert not sends(out) and FLOW not in w.core.handshakes


def test_client_that_never_acks():
    w = World()
    w.syn()
    w.syn_ack()
    w.proxy_syn_ack()
    out = w.timer(TimerKind.HANDSHAKE)
    (rf,) = of(out, ResetFlow)
    assert sorted((r.to.value, r.segment.seq) for r in rf.resets) == [
        ("proxy", seq_add(ISN_C, 1)), ("server", seq_add(ISN_C, 1))]  # no backscatter to C
    assert of(out, RemoveFlow) and FLOW not in w.core.handshakes


def test_silent_proxy_is_retried_then_bypassed():
    w = World(proxy_syn_tries=3)
    w.syn()
    w.syn_ack()
    w.client_ack(payload=b"hello", flags=ACK | PSH)
    delays = []
    for _ in range(2):
        out = w.timer(TimerKind.PROXY_RETRY)
        assert [c.segment.flags for c in sends(out, Side.PROXY)] == [SYN]
        delays.append(of(out, StartTimer)[0].delay)
    assert delays == [2.0, 4.0]
    out = w.timer(TimerKind.PROXY_RETRY)
    assert of(out, RemoveFlow)[0].reason.startswith("bypass")
    (rel,) = of(out, ReleaseHeld)
    # The held request goes to S unchanged: no proxy leg, one sequence space.
    assert [(s.to, s.segment.payload, s.segment.seq) for s in rel.segments] == [(Side.SERVER, b"hello", 0)]
    assert w.core.handshakes.stats["bypassed"] == 1


def test_fail_closed_config_resets_instead():
    w = World(fail_open=False, proxy_syn_tries=1)
    w.syn()
    w.syn_ack()
    w.client_ack()
    out = w.timer(TimerKind.PROXY_RETRY)
    assert of(out, ResetFlow) and not of(out, ReleaseHeld)


def test_server_refuses_with_rst():
    w = World()
    w.syn()
    out = w.feed(s2c(0, seq_add(ISN_C, 1), RST | ACK), SPORT)
    assert [c.to for c in sends(out)] == [Side.CLIENT]  # punted: the controller passes it on
    assert of(out, RemoveFlow) and FLOW not in w.core.handshakes
    assert w.core.handshakes.stats["server_reset"] == 1


def test_server_rst_after_second_request_resets_the_proxy_leg():
    w = World()
    w.syn()
    w.syn_ack()
    w.proxy_syn_ack()
    out = w.feed(s2c(ISN_S + 1, 0, RST), SPORT, copy=True)
    (rf,) = of(out, ResetFlow)
    assert [(r.to, r.segment.flags) for r in rf.resets] == [(Side.PROXY, RST)]
    assert not sends(out, Side.CLIENT)  # the switch already forwarded S's RST


def test_client_rst_aborts():
    w = World()
    w.syn()
    w.syn_ack()
    out = w.feed(c2s(seq_add(ISN_C, 1), 0, RST), CPORT)
    assert sends(out, Side.SERVER)[0].segment.flags == RST
    assert FLOW not in w.core.handshakes


def test_proxy_rst_before_leg1_bypasses():
    w = World()
    w.syn()
    w.syn_ack()
    out = w.feed(s2c(0, seq_add(ISN_C, 1), RST | ACK), PPORT, proxy=True)
    assert of(out, RemoveFlow)[0].reason.startswith("bypass")


def test_proxy_without_timestamps_on_leg1_is_bypassed():
    w = World()
    w.syn()
    w.syn_ack()
    out = w.proxy_syn_ack(opts=SynOptions(1460, 8, True, None))
    assert of(out, RemoveFlow)[0].reason.startswith("bypass")


def test_proxy_without_timestamps_upstream_is_reset_with_linger():
    w = World()
    w.syn()
    w.syn_ack()
    w.proxy_syn_ack()
    w.client_ack()
    out = w.upstream_syn(opts=SynOptions(1460, 6, True, None))
    (rf,) = of(out, ResetFlow)
    assert {r.to for r in rf.resets} == {Side.PROXY, Side.SERVER, Side.CLIENT}
    punts = of(out, InstallPunt)[-1].matches
    assert EntryMatch.c2s(FLOW, CPORT) in punts and EntryMatch.s2c(FLOW, PPORT) in punts
    assert w.core.handshakes.get(FLOW).state is HsState.RESETTING
    # A straggler from C gets an RST built from its own ACK: exact whatever P had sent it.
    out = w.feed(c2s(seq_add(ISN_C, 50), ISN_S + 777, ACK, b"x"), CPORT)
    (r,) = sends(out)
    assert (r.to, r.segment.seq, r.segment.flags, r.segment.dst_port) == (Side.CLIENT, ISN_S + 777, RST, C[1])
    out = w.timer(TimerKind.LINGER)
    assert of(out, RemoveFlow) and FLOW not in w.core.handshakes


def test_upstream_never_opened():
    w = World()
    w.syn()
    w.syn_ack()
    w.proxy_syn_ack()
    w.client_ack()
    out = w.timer(TimerKind.HANDSHAKE)
    assert of(out, ResetFlow) and w.core.handshakes.get(FLOW).state is HsState.RESETTING


def test_proxy_down_during_handshake():
    w = World()
    w.syn()
    w.syn_ack()
    out = w.core.on_proxy_down(PPORT)
    assert of(out, RemoveFlow)[0].reason.startswith("bypass")
    w2 = World()
    w2.syn()
    w2.syn_ack()
    w2.proxy_syn_ack()
    w2.client_ack()
    assert of(w2.core.on_proxy_down(PPORT), ResetFlow)


def test_simultaneous_open_runs_end_to_end():
    w = World()
    w.syn()
    w.syn_ack()
    # C answers S's SYN with a SYN-ACK of its own: both sides opened.
    out = w.feed(c2s(ISN_C, ISN_S + 1, SYN | ACK), CPORT)
    assert sends(out, Side.SERVER)[0].segment.flags == SYN | ACK
    assert of(out, RemoveFlow)[0].reason == "bypass: simultaneous open"
    assert sends(out, Side.PROXY)[0].segment.flags == RST  # the second request is withdrawn
    w2 = World()
    w2.syn()
    out = w2.feed(s2c(5555, 0, SYN), SPORT)  # S's own SYN toward C
    assert of(out, RemoveFlow) and w2.core.handshakes.stats["simultaneous_open"] == 1


def test_segments_on_the_wrong_port_are_ignored():
    w = World()
    w.syn()
    w.syn_ack()
    assert w.feed(c2s(seq_add(ISN_C, 1), ISN_S + 1, ACK), 9) == []
    assert w.core.handshakes.get(FLOW).c_ack is None


def test_syn_with_data_is_not_proxied():
    w = World()
    assert w.feed(c2s(ISN_C, 0, SYN, b"tfo"), CPORT, copy=True) == []
    assert len(w.core.handshakes) == 0


def test_unrelated_segments_are_ignored():
    w = World()
    assert w.feed(c2s(1, 2, ACK, b"x"), CPORT) == []
    assert w.core.handshakes.stats["unmatched"] == 1


# ---- SYN flood ----------------------------------------------------------------------------------


FLOOD_OPTS = OPTS_C.to_options()
FLOOD_SYN_ACK_OPTS = OPTS_S.to_options()


def flood_syn(i):
    return TcpSegment(f"198.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}", 1024 + i % 50000, *S,
                      seq=i * 7919 & MASK32, flags=SYN, options=FLOOD_OPTS)


def live_handshakes():
    gc.collect()
    return sum(1 for o in gc.get_objects() if type(o) is Handshake)  # type(): safe on dead weak proxies


def test_syn_flood_is_bounded_and_a_real_handshake_completes():
    w = World(max_pending=1000)
    core = w.core
    for i in range(20_000):
        core.on_segment(SegmentIn(flood_syn(i), CPORT, copy=True, proxy_port=PPORT))
    # A real client arrives mid-flood, gets its SYN-ACK and ACKs (which proves its address) ...
    w.syn()
    w.syn_ack()
    w.client_ack()
    for i in range(20_000, 100_000):
        core.on_segment(SegmentIn(flood_syn(i), CPORT, copy=True, proxy_port=PPORT))
        if i % 10 == 0:  # S answers some spoofed SYNs: the proxy gets second requests for them too
            s = flood_syn(i)
            answer = TcpSegment(*S, s.src_ip, s.src_port, seq=5, ack=seq_add(s.seq, 1), flags=SYN | ACK,
                                options=FLOOD_SYN_ACK_OPTS)
            core.on_segment(SegmentIn(answer, SPORT, copy=True))
        if i % 10_000 == 0:
            assert len(core.handshakes) <= 1000
    # Memory is bounded: no more live handshake records than the bound, and no held bytes.
    assert len(core.handshakes) == 1000
    assert live_handshakes() <= 1000
    assert core.handshakes.held_bytes_total == 0
    assert core.handshakes.stats["evicted"] == 100_001 - 1000
    # ... and the real client is never evicted: its handshake completes after the flood.
    assert FLOW in core.handshakes
    w.proxy_syn_ack()
    w.upstream_syn()
    assert of(w.proxy_ack(), FlowEstablished)


def test_a_flood_from_one_address_evicts_its_own_not_a_slow_client():
    """A client slow to ACK (a long RTT) is still unverified when one host's flood reaches the
    bound: the flood's own oldest handshakes go, the client's stays. Sources spoofed at random
    still evict the oldest of all (the test above)."""
    w = World(max_pending=100)
    core = w.core
    w.syn()
    w.syn_ack()  # the real client has its SYN-ACK, its ACK is on the way

    def from_one_host(i):
        return TcpSegment("203.0.113.9", 1024 + i, *S, seq=i * 7919 & MASK32, flags=SYN, options=FLOOD_OPTS)

    for i in range(5_000):
        core.on_segment(SegmentIn(from_one_host(i), CPORT, copy=True, proxy_port=PPORT))
    assert len(core.handshakes) == 100 and core.handshakes.stats["evicted"] == 5_000 + 1 - 100
    assert FLOW in core.handshakes
    # the flood's newest are kept, its oldest gone
    assert FlowKey.from_client_segment(from_one_host(4_999)) in core.handshakes
    assert FlowKey.from_client_segment(from_one_host(0)) not in core.handshakes
    w.client_ack()
    w.proxy_syn_ack()
    w.upstream_syn()
    assert of(w.proxy_ack(), FlowEstablished)


def test_the_heaviest_source_gives_its_oldest_up():
    from p4splice.controller.splice.pending import BySource

    pending: BySource[tuple[str, int], str] = BySource(lambda key: key[0])
    for key in [("a", 1), ("b", 1), ("b", 2), ("c", 1), ("c", 2), ("a", 2), ("c", 3)]:
        pending[key] = f"{key[0]}{key[1]}"
    assert pending.victim() == "c1" and pending.held_by("c") == 3
    assert pending.victim(heavy=3) == "a1"  # nobody holds more than 3: the oldest of all
    del pending[("c", 1)]
    # a, b and c hold 2 each: b has held 2 longest (c came down to 2 last)
    assert pending.victim() == "b1"
    for key in [("a", 1), ("b", 2), ("c", 2)]:
        pending.pop(key)
    assert pending.victim() == "b1" and len(pending) == 3  # one each: the oldest of all
    for key in [("b", 1), ("c", 3), ("a", 2)]:
        pending.pop(key)
    assert not pending and pending.held_by("c") == 0
    with pytest.raises(KeyError):
        pending.victim()


def test_a_client_with_a_few_connections_is_not_singled_out_by_a_spoofed_flood():
    """Sources spoofed at random hold one handshake each; a real client opening several at once
    holds more, yet is not evicted before older spoofed ones (only a flooding host is)."""
    w = World(max_pending=100)
    core = w.core
    for i in range(95):
        core.on_segment(SegmentIn(flood_syn(i), CPORT, copy=True, proxy_port=PPORT))
    mine = [TcpSegment(FLOW.client_ip, 41000 + k, *S, seq=k * 1000, flags=SYN, options=FLOOD_OPTS)
            for k in range(5)]
    for seg in mine:
        core.on_segment(SegmentIn(seg, CPORT, copy=True, proxy_port=PPORT))
    for i in range(95, 150):  # 55 more spoofed: the 55 oldest go, all spoofed
        core.on_segment(SegmentIn(flood_syn(i), CPORT, copy=True, proxy_port=PPORT))
    assert core.handshakes.stats["evicted"] == 55
    assert all(FlowKey.from_client_segment(seg) in core.handshakes for seg in mine)


def test_full_table_of_real_clients_refuses_newcomers():
    w = World(max_pending=1)
    w.syn()
    w.syn_ack()
    w.client_ack()
    out = w.feed(flood_syn(1), CPORT, copy=True)
    (rst,) = sends(out, Side.SERVER)
    assert rst.segment.flags == RST and rst.segment.seq == seq_add(flood_syn(1).seq, 1)
    assert w.core.handshakes.stats["refused"] == 1 and len(w.core.handshakes) == 1


@pytest.mark.parametrize("fail_open", [True, False])
def test_eviction_resets_the_proxys_leg_and_fails_open(fail_open):
    """An evicted handshake S has answered: P's leg is reset; S is too only when not failing
    open, so that a real client slow to ACK still completes its connection with S, unproxied."""
    w = World(max_pending=1, fail_open=fail_open)
    w.syn()
    w.syn_ack()
    out = w.feed(flood_syn(1), CPORT, copy=True)
    (rf,) = of(out, ResetFlow)
    assert {r.to for r in rf.resets} == ({Side.PROXY} if fail_open else {Side.SERVER, Side.PROXY})
    assert FLOW not in w.core.handshakes and len(w.core.handshakes) == 1


def test_stale_and_foreign_timers_are_ignored():
    w = World()
    w.syn()
    assert w.core.on_timer(TimerKey(FLOW, TimerKind.HANDSHAKE, 10**9)) == []
    assert w.core.on_timer(TimerKey(FlowKey("1.1.1.1", 1, "2.2.2.2", 2), TimerKind.LINGER, 1)) == []
    assert not [c for c in w.log if isinstance(c, CancelTimer)]


@pytest.mark.parametrize("explicit", [True, False])
def test_punt_entries_follow_the_config(explicit):
    w = World(explicit_punt=explicit)
    w.full()
    assert bool(of(w.log, InstallPunt)) is explicit


def test_translate_helper_agrees_with_the_installed_entries():
    w = World()
    w.full()
    legs = {p.direction: p for p in of(w.log, FlowEstablished)[0].legs}
    from p4splice.controller.splice import Direction

    seg = c2s(seq_add(ISN_C, 1), ISN_S + 1, ACK, b"abc", ts(151, 201))
    out = apply_translation(legs[Direction.C_TO_P], seg)
    assert out.ack == ISN_P1 + 1 and find(out.options, Timestamps) == Timestamps(151, 301)


def test_a_fin_copy_before_leg_2_is_not_sent_again_and_the_flow_keeps_it():
    """C's FIN crosses the C->P entry while P has not opened leg 2: the switch forwarded it, so the
    controller sends nothing, and the established flow knows C has closed."""
    from p4splice.controller.splice import FlowState, Side

    w = World()
    w.syn()
    w.syn_ack()
    w.proxy_syn_ack()
    w.client_ack()
    out = w.feed(c2s(seq_add(ISN_C, 1), ISN_S + 1, ACK | FIN, opts=ts(160, 200)), CPORT, copy=True)
    assert not sends(out)
    w.upstream_syn()
    w.proxy_ack()
    fl = w.core.flows.get(FLOW)
    assert fl.state is FlowState.PROXIED and fl.fins == {Side.CLIENT}
