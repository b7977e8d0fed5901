"""The splice (switch-over), proxy death, teardown and idle handling of established flows."""

import random
from dataclasses import replace

import pytest
from p4splice.controller.splice import (
    CancelTimer,
    Direction,
    FlowState,
    InstallDrop,
    InstallLeg,
    InstallPunt,
    NotifyProxy,
    ReleaseHeld,
    RemoveEntries,
    RemoveFlow,
    ResetFlow,
    SegmentIn,
    Side,
    SpliceConfig,
    SpliceCounts,
    TimerKind,
    apply_translation,
    fin_reported,
)
from p4splice.controller.splice.model import ACK, FIN, PSH, RST, SYN, EntryMatch, FlowKey
from p4splice.controller.splice.seqmath import MASK32, seq_add, seq_sub

from .test_splice_handshake import (
    CPORT,
    FLOW,
    ISN_C,
    ISN_P1,
    ISN_P2,
    ISN_S,
    PPORT,
    SPORT,
    C,
    S,
    World,
    c2s,
    of,
    s2c,
    sends,
    ts,
)


class Switch:
    """The flow table as the commands leave it: match -> what the entry does."""

    def __init__(self):
        self.entries = {}

    def apply(self, cmds):
        for c in cmds:
            if isinstance(c, InstallPunt):
                self.entries.update({m: "punt" for m in c.matches})
            elif isinstance(c, InstallDrop):
                self.entries.update({m: "drop" for m in c.matches})
            elif isinstance(c, InstallLeg):
                self.entries.update({p.match: p for p in c.legs})
            elif isinstance(c, (RemoveFlow, RemoveEntries)):
                for m in c.matches:
                    self.entries.pop(m, None)


def established(**config):
    w = World(**config)
    w.full()
    sw = Switch()
    sw.apply(w.log)
    return w, sw


def run(w, sw, cmds):
    w.log += cmds
    sw.apply(cmds)
    return cmds


def timer(w, sw, kind):
    return run(w, sw, w.timer(kind))


def splice(w, sw, counts):
    run(w, sw, w.core.request_splice(FLOW))
    return run(w, sw, w.core.proxy_report(FLOW, counts))


def test_established_flow_has_four_entries():
    w, sw = established()
    assert sorted(p.direction.value for p in sw.entries.values()) == ["c2p", "p2c", "p2s", "s2p"]
    assert w.core.flows.get(FLOW).state is FlowState.PROXIED


def test_splice_holds_then_installs_direct_entries_in_place():
    w, sw = established()
    out = run(w, sw, w.core.request_splice(FLOW))
    (hold,) = of(out, InstallLeg)
    assert {p.direction: p.hold for p in hold.legs} == {Direction.C_TO_P: True, Direction.S_TO_P: True}
    assert of(out, NotifyProxy) == [NotifyProxy(FLOW, "holding")]
    assert w.core.flows.get(FLOW).state is FlowState.HOLDING
    # While held, C's data toward P is dropped but its ACKs reach P.
    c2p = sw.entries[EntryMatch.c2s(FLOW, CPORT)]
    assert apply_translation(c2p, c2s(seq_add(ISN_C, 1), ISN_S + 1, ACK, b"x")) is None
    assert apply_translation(c2p, c2s(seq_add(ISN_C, 1), ISN_S + 1, ACK)).ack == ISN_P1 + 1

    out = run(w, sw, w.core.proxy_report(FLOW, SpliceCounts(a_c=100, b_s=130, a_s=500, b_c=480)))
    (direct,) = of(out, InstallLeg)
    c2s_p, s2c_p = direct.legs
    assert (c2s_p.match, c2s_p.egress_port, c2s_p.seq_delta, c2s_p.ack_delta) == (
        EntryMatch.c2s(FLOW, CPORT), SPORT, 30, 20)
    assert (s2c_p.match, s2c_p.egress_port) == (EntryMatch.s2c(FLOW, SPORT), CPORT)
    assert not c2s_p.hold and not s2c_p.hold
    (drop,) = of(out, InstallDrop)
    assert set(drop.matches) == {EntryMatch.s2c(FLOW, PPORT), EntryMatch.c2s(FLOW, PPORT)}
    assert of(out, NotifyProxy) == [NotifyProxy(FLOW, "spliced")]
    assert sorted(v if isinstance(v, str) else v.direction.value for v in sw.entries.values()) == [
        "c2s", "drop", "drop", "s2c"]
    # C's next byte lands where S expects P's next byte.
    seg = apply_translation(c2s_p, c2s(seq_add(ISN_C, 101), seq_add(ISN_S, 481), ACK, b"y"))
    assert (seg.seq, seg.ack) == (seq_add(ISN_C, 131), seq_add(ISN_S, 501))


def test_verbatim_proxy_splices_to_plain_forwarding():
    w, sw = established()
    out = splice(w, sw, SpliceCounts(a_c=(5 << 32) + 7, b_s=7, a_s=1234, b_c=1234))
    assert all(p.is_identity for p in of(out, InstallLeg)[0].legs)
    assert w.core.flows.stats["spliced_verbatim"] == 1


def test_report_needs_the_hold_first():
    w, sw = established()
    out = w.core.proxy_report(FLOW, SpliceCounts(0, 0, 0, 0))
    assert out[0].status == "refused" and "request a splice first" in out[0].detail
    assert w.core.request_splice(FlowKey("9.9.9.9", 1, "8.8.8.8", 2))[0].detail == "unknown flow"


def test_splice_request_is_idempotent_and_times_out():
    w, sw = established()
    run(w, sw, w.core.request_splice(FLOW))
    assert w.core.request_splice(FLOW) == [NotifyProxy(FLOW, "holding")]
    out = timer(w, sw, TimerKind.HOLD)
    assert {p.direction: p.hold for p in of(out, InstallLeg)[0].legs} == {Direction.C_TO_P: False, Direction.S_TO_P: False}
    assert of(out, NotifyProxy)[0].status == "proxied"  # the timeout ends as a cancel does
    assert w.core.flows.get(FLOW).state is FlowState.PROXIED
    assert not any(p.hold for p in sw.entries.values() if not isinstance(p, str))


def test_cancel_lifts_the_hold_and_the_flow_is_proxied_again():
    w, sw = established()
    before = dict(sw.entries)
    run(w, sw, w.core.request_splice(FLOW))
    out = run(w, sw, w.core.cancel_splice(FLOW))
    (released,) = of(out, InstallLeg)
    # The same two matches, modified in place, back to exactly the translations of the legs.
    assert {p.match: p for p in released.legs} == {
        m: before[m] for m in (EntryMatch.c2s(FLOW, CPORT), EntryMatch.s2c(FLOW, SPORT))}
    assert sw.entries == before
    assert of(out, NotifyProxy) == [NotifyProxy(FLOW, "proxied", "cancelled by the proxy")]
    assert any(isinstance(c, CancelTimer) and c.timer.kind is TimerKind.HOLD for c in out)
    assert w.core.flows.get(FLOW).state is FlowState.PROXIED
    assert w.core.flows.stats["splice_cancelled"] == 1
    # Payload toward P passes again, translated as before the hold.
    c2p = sw.entries[EntryMatch.c2s(FLOW, CPORT)]
    seg = apply_translation(c2p, c2s(seq_add(ISN_C, 1), ISN_S + 1, ACK, b"again"))
    assert seg is not None and (seg.seq, seg.ack, seg.payload) == (seq_add(ISN_C, 1), ISN_P1 + 1, b"again")
    # The stale hold timer does nothing; a new splice can be asked for and completed.
    assert w.timer(TimerKind.HOLD) == []
    out = splice(w, sw, SpliceCounts(4, 4, 9, 9))
    assert of(out, NotifyProxy)[-1] == NotifyProxy(FLOW, "spliced")


def test_hold_passes_a_held_data_segments_ack_to_the_proxy_once():
    """While held, a data segment the switch sent to the controller (reason HELD) leaves its
    payload behind, but P gets its ACK (translated for the leg), without repeats."""
    w, sw = established()
    run(w, sw, w.core.request_splice(FLOW))
    ack_of_request = seq_add(ISN_C, 4)  # S acknowledges the 3 bytes P sent it
    data = s2c(ISN_S + 1, ack_of_request, ACK | PSH, b"response", ts(230, 410), window=900)
    out = run(w, sw, w.core.on_segment(SegmentIn(data, SPORT)))
    (sent,) = sends(out, Side.PROXY)
    s2p = sw.entries[EntryMatch.s2c(FLOW, SPORT)]
    assert sent.egress_port == PPORT
    seg = sent.segment
    assert (seg.flags, seg.payload, seg.seq, seg.window) == (ACK, b"", ISN_S + 1, 900)
    assert seg.ack == seq_add(ack_of_request, s2p.ack_delta) == ISN_P2 + 4
    assert seg.options == apply_translation(s2p, replace(data, payload=b"", flags=ACK)).options
    # The rest of the burst carries the same ACK: nothing new for P.
    more = s2c(ISN_S + 9, ack_of_request, ACK | PSH, b"more", ts(231, 410), window=900)
    assert sends(run(w, sw, w.core.on_segment(SegmentIn(more, SPORT)))) == []
    # A later ACK does go on, and so does one from C toward P (the other held direction).
    later = s2c(ISN_S + 13, seq_add(ISN_C, 9), ACK, b"x", ts(232, 411), window=900)
    assert [c.segment.ack for c in sends(run(w, sw, w.core.on_segment(SegmentIn(later, SPORT))))] == [ISN_P2 + 9]
    upload = c2s(seq_add(ISN_C, 1), ISN_S + 1, ACK, b"up", ts(160, 230))
    (to_p,) = sends(run(w, sw, w.core.on_segment(SegmentIn(upload, CPORT))))
    assert (to_p.egress_port, to_p.segment.payload, to_p.segment.ack) == (PPORT, b"", ISN_P1 + 1)
    # Nothing to pass on from a segment without ACK.
    assert sends(run(w, sw, w.core.on_segment(SegmentIn(s2c(ISN_S + 20, 0, PSH, b"z"), SPORT)))) == []
    assert w.core.flows.stats["held_ack_passed"] == 3
    assert w.core.flows.stats["held_ack_repeated"] == 1


def test_held_data_goes_on_through_the_direct_entries_right_after_the_splice():
    """What the hold kept from P is not lost to its sender's retransmission timeout: once the
    direct entries are written, each kept segment goes on as they would translate it."""
    w, sw = established()
    run(w, sw, w.core.request_splice(FLOW))
    first = s2c(ISN_S + 1, seq_add(ISN_C, 4), ACK | PSH, b"resp")
    second = s2c(ISN_S + 5, seq_add(ISN_C, 4), ACK | PSH, b"onse")
    upload = c2s(seq_add(ISN_C, 4), ISN_S + 1, ACK | PSH, b"more")
    for seg, port in ((first, SPORT), (second, SPORT), (first, SPORT), (upload, CPORT)):  # S resends one
        run(w, sw, w.core.on_segment(SegmentIn(seg, port)))
    out = run(w, sw, w.core.proxy_report(FLOW, SpliceCounts(a_c=3, b_s=5, a_s=0, b_c=0)))
    kinds = [type(c).__name__ for c in out]
    assert kinds.index("ReleaseHeld") > kinds.index("InstallLeg")  # after the entries are in place
    (release,) = of(out, ReleaseHeld)
    c2s_p, s2c_p = (sw.entries[EntryMatch.c2s(FLOW, CPORT)], sw.entries[EntryMatch.s2c(FLOW, SPORT)])
    assert [(r.to, r.egress_port, r.segment) for r in release.segments] == [
        (Side.CLIENT, CPORT, apply_translation(s2c_p, first)),
        (Side.CLIENT, CPORT, apply_translation(s2c_p, second)),
        (Side.SERVER, SPORT, apply_translation(c2s_p, upload)),
    ]
    assert release.segments[2].segment.seq == seq_add(ISN_C, 6)  # P had sent S two bytes more than C's
    assert w.core.flows.stats["held_released"] == 3


def test_a_held_copy_keeps_its_payload_and_passes_no_ack():
    """Under hold_acking the switch passed the ACK on itself and sends a copy (HELD_COPY): the
    core sends nothing now, and the payload goes on right after the splice as a punted one would;
    a copy that comes after the splice goes on at once."""
    w, sw = established()
    run(w, sw, w.core.request_splice(FLOW))
    first = s2c(ISN_S + 1, seq_add(ISN_C, 4), ACK | PSH, b"resp")
    out = run(w, sw, w.core.on_segment(SegmentIn(first, SPORT, copy=True, held=True)))
    assert sends(out) == [] and w.core.flows.stats["held_ack_passed"] == 0
    out = run(w, sw, w.core.proxy_report(FLOW, SpliceCounts(a_c=3, b_s=3, a_s=0, b_c=0)))
    (release,) = of(out, ReleaseHeld)
    s2c_p = sw.entries[EntryMatch.s2c(FLOW, SPORT)]
    assert [(r.to, r.egress_port, r.segment) for r in release.segments] == [
        (Side.CLIENT, CPORT, apply_translation(s2c_p, first))]
    late = s2c(ISN_S + 5, seq_add(ISN_C, 4), ACK | PSH, b"onse")
    (sent,) = sends(run(w, sw, w.core.on_segment(SegmentIn(late, SPORT, copy=True, held=True))))
    assert (sent.to, sent.egress_port, sent.segment) == (Side.CLIENT, CPORT, apply_translation(s2c_p, late))


def test_held_data_reaches_the_proxy_when_the_hold_is_lifted():
    w, sw = established()
    run(w, sw, w.core.request_splice(FLOW))
    data = c2s(seq_add(ISN_C, 1), ISN_S + 1, ACK | PSH, b"late request")
    run(w, sw, w.core.on_segment(SegmentIn(data, CPORT)))
    out = run(w, sw, w.core.cancel_splice(FLOW))
    (release,) = of(out, ReleaseHeld)
    (sent,) = release.segments
    c2p = sw.entries[EntryMatch.c2s(FLOW, CPORT)]
    assert not c2p.hold
    assert (sent.to, sent.egress_port, sent.segment) == (Side.PROXY, PPORT, apply_translation(c2p, data))


def test_held_data_is_bounded_and_forgotten_when_the_flow_ends():
    w, sw = established()
    w.core.flows.config = SpliceConfig(held_per_flow=2, held_total=3)
    run(w, sw, w.core.request_splice(FLOW))
    for i in range(4):
        run(w, sw, w.core.on_segment(SegmentIn(s2c(ISN_S + 1 + i, seq_add(ISN_C, 1), ACK, b"x"), SPORT)))
    assert w.core.flows.stats["held_not_kept"] == 2  # the flow's bound
    w.core.flows.config = SpliceConfig(held_per_flow=10, held_total=3)
    for i in range(4, 6):
        run(w, sw, w.core.on_segment(SegmentIn(s2c(ISN_S + 1 + i, seq_add(ISN_C, 1), ACK, b"x"), SPORT)))
    assert w.core.flows.stats["held_not_kept"] == 3  # the table's bound
    run(w, sw, w.core.flows.reset(FLOW))
    assert w.core.flows._held_count == 0
    assert of(w.log, ReleaseHeld) == []


def test_a_held_segment_that_reaches_the_controller_after_the_splice_goes_on_directly():
    w, sw = established()
    splice(w, sw, SpliceCounts(a_c=3, b_s=3, a_s=0, b_c=0))
    late = s2c(ISN_S + 1, seq_add(ISN_C, 4), ACK | PSH, b"response")
    (sent,) = sends(run(w, sw, w.core.on_segment(SegmentIn(late, SPORT))))
    # The direct S->C entry's translation: the payload reaches C, nobody had acknowledged it.
    assert (sent.to, sent.egress_port, sent.segment.payload) == (Side.CLIENT, CPORT, b"response")
    assert sent.segment.ack == seq_add(ISN_C, 4)


def test_cancel_needs_a_holding_flow():
    w, sw = established()
    assert w.core.cancel_splice(FLOW) == [NotifyProxy(FLOW, "refused", "flow is proxied, not holding")]
    assert w.core.cancel_splice(FlowKey("9.9.9.9", 1, "8.8.8.8", 2)) == [
        NotifyProxy(FlowKey("9.9.9.9", 1, "8.8.8.8", 2), "refused", "unknown flow")]
    splice(w, sw, SpliceCounts(1, 1, 1, 1))
    assert w.core.cancel_splice(FLOW)[0].detail == "flow is spliced, not holding"
    # A hold that timed out is already proxied: a late cancel is a conflict, not a second release.
    w, sw = established()
    run(w, sw, w.core.request_splice(FLOW))
    timer(w, sw, TimerKind.HOLD)
    assert w.core.cancel_splice(FLOW)[0].status == "refused"


def test_no_splice_once_the_proxy_closed_on_its_own():
    """P's FIN toward S with none from C: P closed, and no count describes that."""
    w, sw = established()
    run(w, sw, w.core.on_segment(SegmentIn(c2s(ISN_P2 + 1, ISN_S + 1, ACK | FIN), PPORT, from_proxy=True, copy=True)))
    assert w.core.request_splice(FLOW)[0].detail == "flow is closing"


def test_fin_toward_p_during_hold_is_ignored_but_ps_fin_abandons_the_splice():
    w, sw = established()
    run(w, sw, w.core.request_splice(FLOW))
    run(w, sw, w.core.on_segment(SegmentIn(c2s(seq_add(ISN_C, 1), ISN_S + 1, ACK | FIN), CPORT, copy=True,
                                           held=True)))
    assert w.core.flows.get(FLOW).fins == set(), "the hold dropped it: C sends it again after the splice"
    out = run(w, sw, w.core.on_segment(SegmentIn(s2c(ISN_P1 + 1, 0, ACK | FIN), PPORT, from_proxy=True, copy=True)))
    assert of(out, NotifyProxy)[0].status == "proxied"
    assert w.core.flows.get(FLOW).state is FlowState.PROXIED


def test_a_fin_the_proxy_relayed_is_spliced_over():
    """S closed and P passed its FIN on to C before the hold (a short answer outran the splice
    request): each leg consumed one sequence number, so the counts still describe the flow. The
    splice goes through, and through the direct entries S's FIN, as S sends it again, lands where
    C took P's, and C's ACK of it acknowledges S's."""
    w, sw = established()
    a_s, b_c = 500, 480
    run(w, sw, w.core.on_segment(SegmentIn(s2c(seq_add(ISN_S, 1 + a_s), 0, ACK | FIN), SPORT, copy=True)))
    run(w, sw, w.core.request_splice(FLOW))
    assert w.core.flows.get(FLOW).state is FlowState.HOLDING, "P will pass S's FIN on while it drains"
    counts = SpliceCounts(a_c=100, b_s=100, a_s=a_s, b_c=b_c)
    refused = w.core.proxy_report(FLOW, counts)
    assert [c.detail for c in refused if isinstance(c, NotifyProxy)] == [
        "flow is closing: a FIN the proxy has not passed on"], "S's FIN on one leg only: C would never see it"
    run(w, sw, w.core.on_segment(SegmentIn(s2c(ISN_P1 + 1 + b_c, 0, ACK | FIN), PPORT, from_proxy=True, copy=True)))
    assert w.core.flows.get(FLOW).state is FlowState.HOLDING
    out = run(w, sw, w.core.proxy_report(FLOW, counts))
    assert of(out, NotifyProxy) == [NotifyProxy(FLOW, "spliced")]
    s2c_p = sw.entries[EntryMatch.s2c(FLOW, SPORT)]
    c2s_p = sw.entries[EntryMatch.c2s(FLOW, CPORT)]
    # C took P's FIN at ISN_p1 + 1 + b_c, which P->C made ISN_s + 1 + b_c
    assert apply_translation(s2c_p, s2c(seq_add(ISN_S, 1 + a_s), 0, ACK | FIN)).seq == seq_add(ISN_S, 1 + b_c)
    assert apply_translation(c2s_p, c2s(seq_add(ISN_C, 101), seq_add(ISN_S, 2 + b_c))).ack == seq_add(ISN_S, 2 + a_s)


def test_a_fin_that_passed_before_the_hold_counts_when_its_copy_comes_after():
    """The hold was asked for while S's FIN was on its way to P: its copy (reason FIN, not
    FIN_HELD) comes during the hold. P got it and passes it on, and the splice goes on."""
    w, sw = established()
    run(w, sw, w.core.request_splice(FLOW))
    run(w, sw, w.core.on_segment(SegmentIn(s2c(seq_add(ISN_S, 501), 0, ACK | FIN), SPORT, copy=True)))
    run(w, sw, w.core.on_segment(SegmentIn(s2c(ISN_P1 + 481, 0, ACK | FIN), PPORT, from_proxy=True, copy=True)))
    assert w.core.flows.get(FLOW).state is FlowState.HOLDING
    out = run(w, sw, w.core.proxy_report(FLOW, SpliceCounts(a_c=0, b_s=0, a_s=500, b_c=480)))
    assert of(out, NotifyProxy) == [NotifyProxy(FLOW, "spliced")]


def test_a_fin_relayed_during_the_hold_keeps_it_but_the_proxys_own_does_not():
    w, sw = established()
    run(w, sw, w.core.on_segment(SegmentIn(c2s(seq_add(ISN_C, 1), ISN_S + 1, ACK | FIN), CPORT, copy=True)))
    run(w, sw, w.core.on_segment(SegmentIn(c2s(ISN_P2 + 1, ISN_S + 1, ACK | FIN), PPORT, from_proxy=True, copy=True)))
    run(w, sw, w.core.request_splice(FLOW))
    assert w.core.flows.get(FLOW).state is FlowState.HOLDING, "C's FIN and P's relay of it: balanced"
    # P's FIN toward C while S has not closed: P's own close, which no count describes
    out = run(w, sw, w.core.on_segment(SegmentIn(s2c(ISN_P1 + 1, 0, ACK | FIN), PPORT, from_proxy=True, copy=True)))
    assert of(out, NotifyProxy)[0].status == "proxied"


def close(w, sw, parties):
    seg = {
        "c": (c2s(seq_add(ISN_C, 1), ISN_S + 1, ACK | FIN), CPORT, False),
        "p1": (s2c(ISN_P1 + 1, 0, ACK | FIN), PPORT, True),
        "p2": (c2s(ISN_P2 + 1, ISN_S + 1, ACK | FIN), PPORT, True),
        "s": (s2c(ISN_S + 1, 0, ACK | FIN), SPORT, False),
    }
    for p in parties:
        s, port, proxy = seg[p]
        run(w, sw, w.core.on_segment(SegmentIn(s, port, from_proxy=proxy, copy=True)))


def test_proxied_flow_teardown_after_all_four_fins_and_linger():
    w, sw = established()
    close(w, sw, ["c", "p1", "p2"])
    assert w.core.flows.get(FLOW).state is FlowState.PROXIED
    close(w, sw, ["s"])
    assert w.core.flows.get(FLOW).state is FlowState.LINGER
    out = timer(w, sw, TimerKind.LINGER)
    assert of(out, RemoveFlow) and FLOW not in w.core.flows
    assert sw.entries == {}


def test_rst_on_one_leg_waits_for_the_other():
    w, sw = established()
    run(w, sw, w.core.on_segment(SegmentIn(c2s(seq_add(ISN_C, 1), 0, RST), CPORT, copy=True)))
    assert w.core.flows.get(FLOW).state is FlowState.PROXIED  # P still talks to S
    run(w, sw, w.core.on_segment(SegmentIn(c2s(ISN_P2 + 1, 0, RST), PPORT, from_proxy=True, copy=True)))
    assert w.core.flows.get(FLOW).state is FlowState.LINGER


def report(sender: str) -> SegmentIn:
    """A fin_t digest's event for the FIN of ``sender`` (c, p1, p2, s), as the orchestrator makes it."""
    port, src, dst = {"c": (CPORT, C, S), "p1": (PPORT, S, C), "p2": (PPORT, C, S), "s": (SPORT, S, C)}[sender]
    ev = fin_reported({"ingress_port": port, "src_addr": _int(src[0]), "src_port": src[1], "dst_addr": _int(dst[0]),
                       "dst_port": dst[1]}, {PPORT})
    assert ev is not None
    return ev


def _int(addr: str) -> int:
    return int.from_bytes(bytes(int(b) for b in addr.split(".")), "big")


def test_fin_reports_end_a_proxied_flow_as_fin_copies_do():
    w, sw = established()
    for sender in ("c", "p2", "p1"):
        run(w, sw, w.core.on_segment(report(sender)))
    assert w.core.flows.get(FLOW).state is FlowState.PROXIED
    assert run(w, sw, w.core.on_segment(report("s"))) and w.core.flows.get(FLOW).state is FlowState.LINGER
    timer(w, sw, TimerKind.LINGER)
    assert sw.entries == {} and len(w.core.flows) == 0


def test_fin_report_of_the_proxy_abandons_a_hold_and_one_it_relayed_does_not():
    w, sw = established()
    run(w, sw, w.core.request_splice(FLOW))
    run(w, sw, w.core.on_segment(report("s")))
    assert w.core.flows.get(FLOW).state is FlowState.HOLDING
    run(w, sw, w.core.on_segment(report("p1")))  # P relays S's FIN: the splice can describe it
    assert w.core.flows.get(FLOW).state is FlowState.HOLDING
    out = run(w, sw, w.core.on_segment(report("p2")))  # P closes toward S on its own
    assert w.core.flows.get(FLOW).state is FlowState.PROXIED and of(out, NotifyProxy)


def test_a_fin_report_draws_no_rst_from_a_resetting_flow():
    """A reported FIN has no sequence numbers: the straggler's RST would land anywhere. (A FIN
    sent again is punted whole there and answered exactly.)"""
    w, sw = established()
    run(w, sw, w.core.on_idle(FLOW))
    assert w.core.flows.get(FLOW).state is FlowState.RESETTING
    assert run(w, sw, w.core.on_segment(report("c"))) == []
    out = run(w, sw, w.core.on_segment(SegmentIn(c2s(seq_add(ISN_C, 1), ISN_S + 1, ACK | FIN), CPORT)))
    (r,) = sends(out)
    assert (r.to, r.segment.flags, r.segment.seq) == (Side.CLIENT, RST, ISN_S + 1)


def test_a_fin_digest_missing_a_member_is_not_taken():
    assert fin_reported({"ingress_port": 1, "src_addr": 1}, {PPORT}) is None


@pytest.mark.parametrize("ending", ["fins", "rst"])
def test_spliced_flow_teardown(ending):
    w, sw = established()
    splice(w, sw, SpliceCounts(10, 10, 20, 20))
    if ending == "fins":
        close(w, sw, ["c", "s"])
    else:
        run(w, sw, w.core.on_segment(SegmentIn(s2c(ISN_S + 21, 0, RST), SPORT, copy=True)))
    assert w.core.flows.get(FLOW).state is FlowState.LINGER
    timer(w, sw, TimerKind.LINGER)
    assert sw.entries == {} and len(w.core.flows) == 0


def test_idle_verbatim_splice_is_removed_and_translating_flows_are_reset():
    w, sw = established()
    splice(w, sw, SpliceCounts(10, 10, 20, 20))
    out = run(w, sw, w.core.on_idle(FLOW))
    assert of(out, RemoveFlow) and sw.entries == {}

    w, sw = established()
    out = run(w, sw, w.core.on_idle(FLOW))
    (rf,) = of(out, ResetFlow)
    assert {(r.to, r.segment.flags) for r in rf.resets} == {
        (Side.CLIENT, RST), (Side.CLIENT, ACK), (Side.SERVER, RST), (Side.SERVER, ACK)}
    assert w.core.flows.get(FLOW).state is FlowState.RESETTING
    # C's and S's entries punt, P's drop.
    assert sw.entries[EntryMatch.c2s(FLOW, CPORT)] == "punt" and sw.entries[EntryMatch.s2c(FLOW, SPORT)] == "punt"
    assert sw.entries[EntryMatch.s2c(FLOW, PPORT)] == "drop"
    # The probe's answer from S carries S's real RCV.NXT: the RST uses it.
    out = run(w, sw, w.core.on_segment(SegmentIn(s2c(ISN_S + 900, seq_add(ISN_C, 4242), ACK), SPORT)))
    (r,) = sends(out)
    assert (r.to, r.egress_port, r.segment.seq, r.segment.flags) == (Side.SERVER, SPORT, seq_add(ISN_C, 4242), RST)
    assert run(w, sw, w.core.on_segment(SegmentIn(s2c(ISN_S + 900, 0, RST), SPORT))) == []
    timer(w, sw, TimerKind.LINGER)
    assert sw.entries == {} and len(w.core.flows) == 0


def test_idle_backstop_timer():
    w, sw = established()
    splice(w, sw, SpliceCounts(1, 1, 1, 1))
    out = timer(w, sw, TimerKind.IDLE)
    assert of(out, RemoveFlow)


def test_proxy_death_splices_quiescent_flows_and_resets_the_rest():
    w, sw = established()
    other = FlowKey("10.0.0.2", 50000, *FLOW[2:])  # a second flow of the same proxy, still pending
    run(w, sw, w.core.on_segment(SegmentIn(c2s(100, 0, SYN, src=other[:2]), CPORT, copy=True, proxy_port=PPORT)))
    run(w, sw, w.core.on_segment(SegmentIn(
        s2c(200, 101, SYN | ACK).with_(dst_ip=other[0], dst_port=other[1]), SPORT, copy=True)))
    out = run(w, sw, w.core.on_proxy_down(PPORT, {FLOW: SpliceCounts(5, 5, 7, 7)}))
    assert w.core.flows.get(FLOW).state is FlowState.SPLICED
    assert all(p.is_identity for p in of(out, InstallLeg)[0].legs)
    assert other not in w.core.handshakes  # the pending one fails open: no byte went through P
    assert any(isinstance(c, RemoveFlow) and c.flow == other and c.reason.startswith("bypass") for c in out)

    w, sw = established()
    out = run(w, sw, w.core.on_proxy_down(PPORT, {}))
    assert of(out, ResetFlow) and w.core.flows.get(FLOW).state is FlowState.RESETTING
    # A flow already spliced does not care about the proxy.
    w, sw = established()
    splice(w, sw, SpliceCounts(1, 2, 3, 4))
    assert w.core.on_proxy_down(PPORT, {}) == []


def test_proxy_death_resets_a_quiescent_flow_that_saw_a_fin():
    w, sw = established()
    run(w, sw, w.core.on_segment(SegmentIn(c2s(seq_add(ISN_C, 1), ISN_S + 1, ACK | FIN), CPORT, copy=True)))
    out = run(w, sw, w.core.on_proxy_down(PPORT, {FLOW: SpliceCounts(0, 0, 0, 0)}))
    assert of(out, ResetFlow) and w.core.flows.get(FLOW).state is FlowState.RESETTING


def test_proxy_death_while_holding_uses_the_report_or_resets():
    w, sw = established()
    run(w, sw, w.core.request_splice(FLOW))
    out = run(w, sw, w.core.on_proxy_down(PPORT, {}))
    assert of(out, ResetFlow) and NotifyProxy(FLOW, "reset", "the proxy went down with bytes in flight") in out


def test_four_tuple_reuse_after_close():
    w, sw = established()
    close(w, sw, ["c", "p1", "p2", "s"])
    out = run(w, sw, w.core.on_segment(SegmentIn(c2s(12345, 0, SYN), CPORT, copy=True, proxy_port=PPORT)))
    assert of(out, RemoveFlow)[0].reason == "4-tuple reused"
    assert FLOW in w.core.handshakes and FLOW not in w.core.flows
    # A SYN inside a live connection is left to S.
    w, sw = established()
    assert w.core.on_segment(SegmentIn(c2s(ISN_C, 0, SYN), CPORT, copy=True, proxy_port=PPORT)) == []
    assert w.core.flows.get(FLOW).state is FlowState.PROXIED


def test_nothing_leaks_over_many_random_lifetimes():
    rng = random.Random(42)
    for seed in range(60):
        rng.seed(seed)
        w = World()
        sw = Switch()
        w.syn()
        w.syn_ack()
        w.proxy_syn_ack()
        w.client_ack()
        w.upstream_syn()
        w.proxy_ack()
        sw.apply(w.log)
        path = rng.choice(["close", "splice-close", "idle", "proxy-down", "splice-idle", "rst"])
        if path.startswith("splice"):
            a, b = rng.getrandbits(40), rng.getrandbits(40)
            splice(w, sw, SpliceCounts(a, b, a, b))
        if path.endswith("close"):
            close(w, sw, rng.sample(["c", "p1", "p2", "s"], 4) if path == "close" else ["s", "c"])
        elif path.endswith("idle"):
            run(w, sw, w.core.on_idle(FLOW))
        elif path == "proxy-down":
            run(w, sw, w.core.on_proxy_down(PPORT, rng.choice([{}, {FLOW: SpliceCounts(1, 1, 1, 1)}])))
            if w.core.flows.get(FLOW).state is FlowState.SPLICED:
                close(w, sw, ["c", "s"])
        else:
            run(w, sw, w.core.on_segment(SegmentIn(s2c(ISN_S + 1, 0, RST), SPORT, copy=True)))
            run(w, sw, w.core.on_segment(SegmentIn(s2c(ISN_P1 + 1, 0, RST), PPORT, from_proxy=True, copy=True)))
        fl = w.core.flows.get(FLOW)
        if fl is not None:
            kind = TimerKind.LINGER if fl.state in (FlowState.LINGER, FlowState.RESETTING) else TimerKind.IDLE
            timer(w, sw, kind)
            if FLOW in w.core.flows:
                timer(w, sw, TimerKind.LINGER)
        assert len(w.core.flows) == 0 and len(w.core.handshakes) == 0, path
        assert sw.entries == {}, path


def test_algebra_through_the_installed_entries_across_the_wrap():
    """Bytes and acks through the entries the core installed, before and after a splice."""
    w, sw = established()
    c2p = sw.entries[EntryMatch.c2s(FLOW, CPORT)]
    p2s = sw.entries[EntryMatch.c2s(FLOW, PPORT)]
    s2p = sw.entries[EntryMatch.s2c(FLOW, SPORT)]
    p2c = sw.entries[EntryMatch.s2c(FLOW, PPORT)]
    # P relayed 10 bytes of C's as 13 to S, and 4 of S's as 2 to C.
    assert apply_translation(c2p, c2s(seq_add(ISN_C, 1), ISN_S + 1, ACK, b"0123456789")).seq == 0
    assert apply_translation(p2s, c2s(ISN_P2 + 1, ISN_S + 1, ACK, b"x" * 13)).seq == seq_add(ISN_C, 1)
    assert apply_translation(s2p, s2c(ISN_S + 1, seq_add(ISN_C, 14), ACK, b"abcd")).ack == ISN_P2 + 14
    assert apply_translation(p2c, s2c(ISN_P1 + 1, seq_add(ISN_C, 11), ACK, b"ab")).seq == ISN_S + 1
    splice(w, sw, SpliceCounts(a_c=10, b_s=13, a_s=4, b_c=2))
    c2s_p = sw.entries[EntryMatch.c2s(FLOW, CPORT)]
    s2c_p = sw.entries[EntryMatch.s2c(FLOW, SPORT)]
    # C's byte 10 (seq ISN_C + 11, past the wrap) is S's byte 13; C's ack of 2 bytes is S's 4.
    seg = apply_translation(c2s_p, c2s(seq_add(ISN_C, 11), ISN_S + 3, ACK, b"z"))
    assert (seg.seq, seg.ack) == (seq_add(ISN_C, 14), ISN_S + 5)
    seg = apply_translation(s2c_p, s2c(ISN_S + 5, seq_add(ISN_C, 15), ACK, b"q"))
    assert (seg.seq, seg.ack) == (ISN_S + 3, seq_add(ISN_C, 12))
    assert seq_sub(seg.ack, ISN_C) == 12 and ISN_C == MASK32


def test_segment_punted_just_before_the_install_is_translated_and_sent():
    w, sw = established()
    out = w.core.on_segment(SegmentIn(c2s(seq_add(ISN_C, 1), ISN_S + 1, ACK, b"late"), CPORT))
    (sent,) = sends(out)
    assert (sent.to, sent.egress_port, sent.segment.ack, sent.segment.payload) == (Side.PROXY, PPORT, ISN_P1 + 1, b"late")
    out = w.core.on_segment(SegmentIn(s2c(ISN_P1 + 1, seq_add(ISN_C, 5), ACK, b"hi"), PPORT, from_proxy=True))
    (sent,) = sends(out)
    assert (sent.to, sent.egress_port, sent.segment.seq) == (Side.CLIENT, CPORT, ISN_S + 1)
    # A punted FIN is both forwarded and counted.
    out = w.core.on_segment(SegmentIn(c2s(seq_add(ISN_C, 5), ISN_S + 3, ACK | FIN), CPORT))
    assert sends(out)[0].segment.flags & FIN and w.core.flows.get(FLOW).fins == {Side.CLIENT}
