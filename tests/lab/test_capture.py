"""The demo's view of claim 1 (lab/capture.py): which captured SYN or SYN-ACK is whose,
at the proxy host the leg by its direction, and claim 1 holding only when every party saw the
ends' own ISNs and options."""

from __future__ import annotations

from p4splice.lab.capture import HandshakeCapture, Seen

C, S = ("10.0.1.1", 40000), ("10.0.101.1", 8001)
OPTS = "MSS 1460, SACK, TS, WS 7"


def _capture(**changes: int) -> HandshakeCapture:
    isn_c, isn_s = changes.get("isn_c", 100), changes.get("isn_s", 900)
    cap = HandshakeCapture([])
    cap.seen = [
        Seen("c1", True, C, S, False, 100, OPTS),            # C's SYN out
        Seen("s1", False, C, S, False, isn_c, OPTS),         # ... at the server
        Seen("proxy", False, C, S, False, isn_c, OPTS),      # ... at the proxy: leg 1
        Seen("proxy", True, S, C, True, 5000, OPTS),         # the proxy's answer on leg 1: ISN_p1
        Seen("proxy", True, C, S, False, 7000, OPTS),        # the proxy's upstream SYN: ISN_p2
        Seen("s1", True, S, C, True, 900, OPTS),             # S's SYN-ACK out
        Seen("c1", False, S, C, True, isn_s, OPTS),          # ... at the client
        Seen("proxy", False, S, C, True, isn_s, OPTS),       # ... at the proxy: leg 2
        Seen("c1", True, ("10.0.1.1", 40001), S, False, 1, OPTS),  # another connection
    ]
    return cap


def test_each_frame_finds_its_party() -> None:
    v = _capture().view(C, S, "c1", "s1", "proxy")
    assert v.claim1()
    assert v.leg1_syn is not None and v.leg1_syn.seq == 100 and not v.leg1_syn.outgoing
    assert v.leg1_syn_ack is not None and v.leg1_syn_ack.seq == 5000
    assert v.leg2_syn is not None and v.leg2_syn.seq == 7000 and v.leg2_syn.outgoing
    assert v.leg2_syn_ack is not None and v.leg2_syn_ack.seq == 900


def test_claim1_fails_when_a_party_saw_another_isn_or_nothing() -> None:
    assert not _capture(isn_c=101).view(C, S, "c1", "s1", "proxy").claim1()
    assert not _capture(isn_s=901).view(C, S, "c1", "s1", "proxy").claim1()
    missing = _capture()
    missing.seen = [s for s in missing.seen if s.host != "proxy"]
    assert not missing.view(C, S, "c1", "s1", "proxy").claim1()


def test_the_timeline_picture_names_each_phase(tmp_path) -> None:  # noqa: ANN001
    import xml.etree.ElementTree as ET

    from p4splice.lab.timeline import Timeline, write_svg

    path = write_svg(Timeline("10.0.1.1:40000 > 10.0.101.1:8001 (inspect)", 0.04, 0.05, 0.11, 2.5, 1200,
                              20_000_000), tmp_path / "t.svg")
    root = ET.parse(path).getroot()  # well-formed SVG
    texts = " ".join(t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}text"))
    for words in ("claim-1 handshake: 40 ms", "through the proxy: 1,200 bytes",
                  "the switch alone: 20,000,000 bytes (from 110 ms)", "splice", "request", "2.50 s"):
        assert words in texts, words
    never = write_svg(Timeline("never", 0.04, None, None, 1.0, 5000, 0), tmp_path / "n.svg").read_text()
    assert "switch alone" not in never and "splice" not in never
