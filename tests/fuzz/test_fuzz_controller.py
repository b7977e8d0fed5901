"""Fuzzing the controller's inputs from the switch: packet-in frames and the switch handshake's digests.

A switch (or whoever sits on its ports) decides what these carry. Whatever they carry, the
controller refuses it with its own error or takes it: the frame parser raises only ``FrameError``
or ``OptionError``, and the splice core takes any ``handshake_t`` digest, in any order, without an
exception and without growing past its bounds.
"""

from __future__ import annotations

import os

from hypothesis import given, settings
from hypothesis import strategies as st
from p4splice.controller.frames import FrameError, build_frame, parse_frame
from p4splice.controller.splice import HandshakeConfig, SpliceCore, SwitchStep
from p4splice.controller.splice.options import OptionError
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "40"))
BASE = bytes(Ether(src="02:00:00:00:01:01", dst="02:00:00:00:00:01") / IP(src="10.0.1.1", dst="10.0.2.1")
             / TCP(sport=40000, dport=80, flags="S", seq=1000, options=[("MSS", 1460), ("SAckOK", b""),
                                                                       ("Timestamp", (1, 0)), ("NOP", None),
                                                                       ("WScale", 7)]))


@st.composite
def mutated_frames(draw: st.DrawFn) -> bytes:
    """A real SYN with some bytes overwritten, cut short or extended: mostly almost valid."""
    frame = bytearray(BASE)
    for _ in range(draw(st.integers(0, 6))):
        frame[draw(st.integers(0, len(frame) - 1))] = draw(st.integers(0, 255))
    cut = draw(st.integers(0, len(frame)))
    return bytes(frame[:cut]) + draw(st.binary(max_size=40))


@settings(max_examples=EXAMPLES * 5, deadline=None)
@given(st.one_of(st.binary(max_size=120), mutated_frames()))
def test_the_frame_parser_refuses_with_its_own_errors(frame: bytes) -> None:
    try:
        parsed = parse_frame(frame)
    except (FrameError, OptionError):
        return
    # taken: it is a segment the controller can build again
    again = parse_frame(build_frame(parsed.segment, parsed.src_mac, parsed.dst_mac))
    assert again.segment == parsed.segment


U32 = st.integers(0, 0xFFFFFFFF)
U16 = st.integers(0, 0xFFFF)
U8 = st.integers(0, 0xFF)
PORT = st.integers(0, 511)
DIGEST = st.fixed_dictionaries({
    "state": st.integers(0, 10),
    "client_addr": st.sampled_from([0x0A000101, 0x0A000102]), "client_port": st.sampled_from([40000, 40001]),
    "server_addr": st.just(0x0A000201), "server_port": st.just(80),
    "client_ingress": PORT, "server_ingress": PORT, "proxy_port": PORT,
    "isn_c": st.one_of(st.just(1000), U32), "window_c": U16, "mss_c": U16, "ws_c": U8, "opts_c": U8,
    "tsval_c": U32,
    "isn_s": U32, "window_s": U16, "mss_s": U16, "ws_s": U8, "opts_s": U8, "tsval_s": U32,
    "isn_p1": U32, "tsval_p1": U32, "ws_p1": U8, "opts_p1": U8,
    "isn_p2": U32, "tsval_p2": U32, "ws_p2": U8, "opts_p2": U8,
    "c_acked": st.integers(0, 1), "window_c_ack": U16, "tsval_c_ack": U32,
})


@settings(max_examples=EXAMPLES * 5, deadline=None)
@given(st.lists(DIGEST, max_size=12))
def test_the_core_takes_any_digests_of_the_switch(digests: list[dict[str, int]]) -> None:
    core = SpliceCore(HandshakeConfig(max_pending=4))
    for data in digests:
        step = SwitchStep.from_digest(data)
        if step is None:
            assert not 1 <= data["state"] <= 8
            continue
        core.on_switch_step(step)
        assert len(core.handshakes) <= 4
