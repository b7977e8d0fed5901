"""Handshakes the switch runs (proxied_inline): the core's mirror of them, driven by digests."""

import dataclasses

from p4splice.controller.splice import (
    FlowEstablished,
    HandshakeConfig,
    InstallLeg,
    InstallPunt,
    Ports,
    ReleaseHeld,
    RemoveFlow,
    ResetFlow,
    SegmentIn,
    Side,
    SpliceCore,
    StartTimer,
    SwitchState,
    SwitchStep,
    TimerKind,
    apply_translation,
)
from p4splice.controller.splice.legs import Direction
from p4splice.controller.splice.model import ACK, SYN, EntryMatch
from p4splice.controller.splice.options import SynOptions
from p4splice.controller.splice.seqmath import seq_add

from tests.controller.test_splice_handshake import (
    CPORT,
    FLOW,
    ISN_C,
    ISN_P1,
    ISN_P2,
    ISN_S,
    OPTS_C,
    OPTS_P1,
    OPTS_P2,
    OPTS_S,
    PPORT,
    SPORT,
    World,
    c2s,
    of,
    s2c,
    sends,
    ts,
)

# what the switch's digest keeps of each side's options (no TSecr)
SW_S = dataclasses.replace(OPTS_S, tsecr=0)
SW_P1 = dataclasses.replace(OPTS_P1, tsecr=0)


def step(state: SwitchState, **kw) -> SwitchStep:
    fields = dict(state=state, flow=FLOW, ports=Ports(CPORT, SPORT, PPORT), isn_c=ISN_C, window_c=64240,
                  opts_c=OPTS_C, isn_s=ISN_S, window_s=65160, opts_s=SW_S, isn_p1=ISN_P1, opts_p1=SW_P1,
                  isn_p2=ISN_P2, opts_p2=OPTS_P2, c_acked=state >= SwitchState.C_ACKED and state != SwitchState.P1_KNOWN,
                  window_c_ack=1000, tsval_c_ack=150)
    fields.update(kw)
    return SwitchStep(**fields)


def controller_legs():
    """The four legs the controller's own handshake installs for the same connection."""
    w = World()
    return {leg.direction: leg for leg in of(w.full(), FlowEstablished)[0].legs}


def run(core: SpliceCore, *states: SwitchState) -> list:
    out = []
    for s in states:
        out += core.on_switch_step(step(s))
    return out


def test_digests_install_the_controllers_legs_and_nothing_is_sent():
    core = SpliceCore()
    first = core.on_switch_step(step(SwitchState.SYN_ACKED))
    assert not sends(first), "the switch sent the second request itself"
    # a deadline, but no re-send of the second request: P's answer is the switch's to absorb
    assert {c.timer.kind for c in of(first, StartTimer)} == {TimerKind.HANDSHAKE}
    leg1 = run(core, SwitchState.P1_KNOWN, SwitchState.LEG1_UP)
    assert not sends(leg1), "the switch sent the leg-1 ACK itself"
    (install1,) = of(leg1, InstallLeg)
    leg2 = core.on_switch_step(step(SwitchState.LEG2_UP))
    (install2,) = of(leg2, InstallLeg)
    (est,) = of(leg2, FlowEstablished)
    want = controller_legs()
    assert {leg.direction: leg for leg in (*install1.legs, *install2.legs)} == want
    assert {leg.direction: leg for leg in est.legs} == want
    assert FLOW in core.flows and FLOW not in core.handshakes


def test_one_late_digest_is_enough():
    """A controller that missed the first steps (restarted) installs all four legs from the last."""
    core = SpliceCore()
    out = core.on_switch_step(step(SwitchState.LEG2_UP))
    assert {leg.direction for c in of(out, InstallLeg) for leg in c.legs} == set(controller_legs())
    assert of(out, FlowEstablished)
    assert core.on_switch_step(step(SwitchState.LEG2_UP)) == [], "reported again once established"


def test_early_segments_are_held_and_released_translated_when_the_leg_is_up():
    core = SpliceCore()
    run(core, SwitchState.SYN_ACKED, SwitchState.C_ACKED)
    data = c2s(seq_add(ISN_C, 1), ISN_S + 1, ACK, b"GET /", ts(160, 200))
    assert core.on_segment(SegmentIn(data, CPORT)) == [], "held, nothing sent before leg 1 exists"
    banner = s2c(ISN_S + 1, seq_add(ISN_C, 1), ACK, b"220 hi", ts(210, 150))
    assert core.on_segment(SegmentIn(banner, SPORT)) == []
    out = run(core, SwitchState.LEG1_UP)
    (rel,) = of(out, ReleaseHeld)
    c2p = controller_legs()[Direction.C_TO_P]
    assert [s.segment for s in rel.segments] == [apply_translation(c2p, data)]
    assert all(s.to is Side.PROXY for s in rel.segments)
    out = run(core, SwitchState.LEG2_UP)
    (rel,) = of(out, ReleaseHeld)
    assert [s.segment for s in rel.segments] == [apply_translation(controller_legs()[Direction.S_TO_P], banner)]


def test_stage_deadlines_end_before_the_slot_lapses():
    core = SpliceCore(HandshakeConfig(slot_lifetime=5.0, ack_timeout=10.0, upstream_timeout=30.0))
    out = run(core, SwitchState.SYN_ACKED, SwitchState.LEG1_UP)
    deadlines = [c.delay for c in of(out, StartTimer) if c.timer.kind is TimerKind.HANDSHAKE]
    assert deadlines and max(deadlines) <= 4.0


def test_declined_handshake_becomes_the_controllers():
    """P's SYN-ACK disagrees, so the switch hands the handshake over: the controller punts the
    flow's directions as its own handshakes do, finds the disagreement and fails it open, with
    pass-through entries that outlive the switch's slot."""
    core = SpliceCore()
    run(core, SwitchState.SYN_ACKED)
    bad = SynOptions(1460, 8, True, None)  # no timestamps though C and S agreed on them
    seg = s2c(ISN_P1, seq_add(ISN_C, 1), SYN | ACK, opts=bad.to_options())
    out = core.on_segment(SegmentIn(seg, PPORT, from_proxy=True, declined=True))
    (punt,) = of(out, InstallPunt)
    assert set(punt.matches) == {EntryMatch.c2s(FLOW, CPORT), EntryMatch.s2c(FLOW, SPORT), EntryMatch.c2s(FLOW, PPORT)}
    assert any(s.to is Side.PROXY and s.segment.flags & 0x04 for s in sends(out)), "P's leg 1 is reset"
    (passing,) = of(out, InstallLeg)
    assert {leg.direction for leg in passing.legs} == {Direction.C_TO_S, Direction.S_TO_C}
    assert all(leg.is_identity for leg in passing.legs)
    (linger,) = [c for c in of(out, StartTimer) if c.timer.kind is TimerKind.LINGER]
    assert linger.delay == core.handshakes.config.slot_lifetime
    gone = core.on_timer(linger.timer)
    assert of(gone, RemoveFlow) and set(of(gone, RemoveFlow)[0].matches) == {leg.match for leg in passing.legs}


def test_declined_client_ack_is_completed_by_the_controller():
    """Data on C's handshake ACK: the switch declines, the controller sends C's ACK to S, holds the
    data and, with P's SYN-ACK known from a digest, completes leg 1 itself."""
    core = SpliceCore()
    run(core, SwitchState.SYN_ACKED, SwitchState.P1_KNOWN)
    seg = c2s(seq_add(ISN_C, 1), ISN_S + 1, ACK, b"GET /", ts(150, 200))
    out = core.on_segment(SegmentIn(seg, CPORT, declined=True))
    to_s = sends(out, Side.SERVER)
    assert len(to_s) == 1 and not to_s[0].segment.payload
    assert of(out, InstallLeg)
    to_p = sends(out, Side.PROXY)
    assert to_p and to_p[0].segment.ack == seq_add(ISN_P1, 1), "the leg-1 ACK, from the controller"


def test_steps_of_the_controllers_own_handshake_are_ignored():
    w = World()
    w.syn()
    w.syn_ack()
    assert w.core.on_switch_step(step(SwitchState.LEG1_UP)) == []
    assert w.core.handshakes.stats["switch_step_ignored"] == 1


def test_fins_before_the_last_digest_are_the_flows_once_adopted():
    """The switch's slot carries the flow before the controller's entries exist: S's FIN and P's
    relay of it (copies) may come before the digest of leg 2. Nothing is sent for them (the switch
    forwarded both), and the adopted flow knows them: a splice is still possible."""
    from p4splice.controller.splice.model import FIN

    core = SpliceCore()
    run(core, SwitchState.SYN_ACKED, SwitchState.LEG1_UP)
    s_fin = s2c(ISN_S + 501, seq_add(ISN_C, 1), ACK | FIN)
    p_fin = s2c(ISN_P1 + 481, seq_add(ISN_C, 1), ACK | FIN)
    assert core.on_segment(SegmentIn(s_fin, SPORT, copy=True)) == []
    assert core.on_segment(SegmentIn(p_fin, PPORT, from_proxy=True, copy=True)) == []
    run(core, SwitchState.LEG2_UP)
    assert core.flows.get(FLOW).fins == {Side.SERVER, "p1"}
    assert [c.status for c in core.request_splice(FLOW) if hasattr(c, "status")] == ["holding"]


def test_a_digest_without_what_its_state_has_learnt_is_ignored():
    """Found by the fuzz suite: LEG1_UP without C's ACK, or a step with no server or proxy port,
    failed an assertion in the core (a digest from another program, or a hostile switch)."""
    core = SpliceCore()
    assert core.on_switch_step(step(SwitchState.LEG1_UP, c_acked=False)) == []
    assert core.on_switch_step(step(SwitchState.LEG2_UP, ports=Ports(CPORT, None, PPORT))) == []
    assert core.on_switch_step(step(SwitchState.SYN_ACKED, ports=Ports(CPORT, SPORT, 0))) == []
    assert core.handshakes.stats["switch_step_inconsistent"] == 3 and FLOW not in core.handshakes


def test_a_flood_of_the_switchs_handshakes_is_evicted_without_a_packet_out():
    """Spoofed SYNs the switch runs reach the controller as SYN_ACKED digests. At the bound the
    mirror of the oldest is dropped quietly: RSTs would be two packet-outs per spoofed SYN, and
    the switch's slot lapses on its own. A real client among them, evicted too, comes back whole
    with its next digest."""
    from p4splice.controller.splice.model import FlowKey

    core = SpliceCore(handshake=HandshakeConfig(max_pending=50))
    core.on_switch_step(step(SwitchState.SYN_ACKED))
    out = []
    for i in range(2_000):
        spoofed = FlowKey(f"198.51.{i >> 8 & 255}.{i & 255}", 1024 + i, FLOW.server_ip, FLOW.server_port)
        out += core.on_switch_step(step(SwitchState.SYN_ACKED, flow=spoofed, isn_c=i * 7919))
    assert not sends(out) and not of(out, ResetFlow) and len(core.handshakes) == 50
    assert core.handshakes.stats["evicted"] == 2_000 + 1 - 50
    assert FLOW not in core.handshakes
    later = run(core, SwitchState.LEG1_UP, SwitchState.LEG2_UP)
    assert not sends(later)
    assert {leg.direction: leg for c in of(later, InstallLeg) for leg in c.legs} == controller_legs()
    assert FLOW in core.flows


def test_a_handshake_taken_over_before_p_answered_resends_the_second_request():
    """While the switch runs it, no re-send timer (P's answer is the switch's to absorb); handed
    over with P's SYN-ACK still unknown, the controller's own re-send timer runs, and re-sends."""
    core = SpliceCore()
    run(core, SwitchState.SYN_ACKED)
    seg = c2s(seq_add(ISN_C, 1), ISN_S + 1, ACK, b"GET /", ts(150, 200))
    out = core.on_segment(SegmentIn(seg, CPORT, declined=True))
    (retry,) = [c for c in of(out, StartTimer) if c.timer.kind is TimerKind.PROXY_RETRY]
    again = core.on_timer(retry.timer)
    (syn,) = sends(again, Side.PROXY)
    assert syn.segment.flags == SYN and syn.segment.seq == ISN_C


def test_a_client_that_never_acks_costs_an_rst_to_p_only():
    """The deadline of a switch-run handshake whose client never ACKed: P's leg is reset; S is
    not, since the switch routes a late ACK of that client on to S (end to end, unproxied)."""
    core = SpliceCore()
    first = core.on_switch_step(step(SwitchState.SYN_ACKED))
    (deadline,) = [c for c in of(first, StartTimer) if c.timer.kind is TimerKind.HANDSHAKE]
    out = core.on_timer(deadline.timer)
    (rf,) = of(out, ResetFlow)
    assert {r.to for r in rf.resets} == {Side.PROXY}
    assert FLOW not in core.handshakes
