"""Fuzzing splice.p4 on p4sim: sequences of hostile TCP segments against the switch's own handshake.

Each example sends a sequence of segments (a client, the server and the proxy port; flags, numbers,
options and payload drawn at random, valid options and malformed ones, right and wrong checksums)
through p4sim running p4src/splice.p4 with a ``proxied_inline`` service, so that the handshake
slots move through their states in orders no real stack sends. Whatever comes:

* the switch processes every frame (no pipeline error, nothing raised);
* a frame the switch sends is whole: IPv4 and TCP lengths agree with its size;
* a segment that came in with both checksums right leaves with both right, whatever was rewritten
  or built from it; one that came in wrong never leaves right (the switch launders nothing).

``make test`` runs a bounded number of examples; ``make fuzz`` (FUZZ_EXAMPLES) runs more.
"""

from __future__ import annotations

import logging
import os
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from p4splice.controller.frames import checksum_error
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from p4sim.compiler.driver import compile_file
from p4sim.runtime.pre import CloneSession
from tests.p4sim.harness import Sim

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "40"))
CLIENT, SERVER, PROXY = 1, 2, 3
C_IP, S_IP = "10.0.1.1", "10.0.2.1"
MAC = {1: "02:00:00:00:01:01", 2: "02:00:00:00:02:02", 3: "02:00:00:00:03:03"}
SW_MAC = "02:00:00:00:00:01"
HS_CLONE_SESSION_BASE, CPU_SESSION, CPU_PORT = 512, 99, 255


@pytest.fixture(scope="module")
def sim() -> Sim:
    s = Sim(compile_file(ROOT / "p4src" / "splice.p4"), CPU_PORT)
    mac = {p: int(m.replace(":", ""), 16) for p, m in MAC.items()}
    sw = int(SW_MAC.replace(":", ""), 16)
    for port, net in ((CLIENT, 0x0A000100), (SERVER, 0x0A000200), (PROXY, 0x0A000300)):
        s.insert("SpliceIngress.routing.routes", [(net, 24)], "SpliceIngress.routing.route", (port, sw, mac[port]))
    s.insert("SpliceIngress.services.services", [0x0A000201, 80], "SpliceIngress.services.proxied_inline",
             (PROXY, sw, mac[PROXY]))
    for sid, port in ((CPU_SESSION, CPU_PORT), (HS_CLONE_SESSION_BASE + PROXY, PROXY)):
        s.state.pre.sessions[sid] = CloneSession(sid, (), pairs=((port, 1),))
    return s


# --- what the segments are made of ------------------------------------------------------------

ISNS = st.sampled_from([0, 1, 0x7FFFFFFF, 0xFFFFFFFF, 1000, 1001, 5000, 5001, 9000, 9001])
NUMBERS = st.one_of(ISNS, st.integers(0, 0xFFFFFFFF))
OPTION = st.one_of(
    st.tuples(st.just("MSS"), st.integers(0, 0xFFFF)),
    st.tuples(st.just("WScale"), st.integers(0, 255)),
    st.tuples(st.just("SAckOK"), st.just(b"")),
    st.tuples(st.just("Timestamp"), st.tuples(st.integers(0, 0xFFFFFFFF), st.integers(0, 0xFFFFFFFF))),
    st.tuples(st.just("SAck"), st.lists(st.integers(0, 0xFFFFFFFF), min_size=2, max_size=8)
              .filter(lambda v: len(v) % 2 == 0).map(tuple)),
    st.tuples(st.just("NOP"), st.none()),
)
# raw option bytes, malformed more often than not: lengths that lie, kinds the parser does not know
RAW_OPTIONS = st.binary(max_size=40).map(lambda b: b + b"\x00" * (-len(b) % 4))


@st.composite
def segments(draw: st.DrawFn) -> tuple[int, bytes]:
    port = draw(st.sampled_from([CLIENT, SERVER, PROXY]))
    client_port = draw(st.sampled_from([40000, 40001]))
    c2s = draw(st.booleans()) if port == PROXY else port == CLIENT
    src, dst, sport, dport = (C_IP, S_IP, client_port, 80) if c2s else (S_IP, C_IP, 80, client_port)
    flags = draw(st.one_of(st.sampled_from([0x02, 0x12, 0x10, 0x18, 0x11, 0x04, 0x14]), st.integers(0, 0xFF)))
    tcp = TCP(sport=sport, dport=dport, seq=draw(NUMBERS), ack=draw(NUMBERS), flags=flags,
              window=draw(st.integers(0, 0xFFFF)))
    if draw(st.booleans()):
        tcp.options = draw(st.lists(OPTION, max_size=6))
    else:
        raw = draw(RAW_OPTIONS)
        tcp.dataofs = 5 + len(raw) // 4
        tcp = tcp / Raw(raw)  # the option bytes ride as the first bytes after the header
    payload = draw(st.binary(max_size=64))
    pkt = Ether(src=MAC[port], dst=SW_MAC) / IP(src=src, dst=dst, ttl=draw(st.integers(1, 255))) / tcp
    frame = bytearray(bytes(pkt / Raw(payload)) if payload else bytes(pkt))
    if draw(st.integers(0, 9)) == 0:  # now and then a wrong checksum, IPv4's or TCP's
        frame[draw(st.sampled_from([24, 50]))] ^= 0x01
    return port, bytes(frame)


def _tcp_frame(frame: bytes) -> bool:
    return len(frame) >= 54 and frame[12:14] == b"\x08\x00" and frame[23] == 6 and not frame[20] & 0x1F


def _whole(frame: bytes) -> bool:
    ihl = (frame[14] & 0x0F) * 4
    total = struct.unpack_from("!H", frame, 16)[0]
    doff = (frame[14 + ihl + 12] >> 4) * 4
    return 14 + total <= len(frame) and ihl + doff <= total


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                       HealthCheck.too_slow])
@given(st.lists(segments(), min_size=1, max_size=16))
def test_hostile_segments_never_break_the_switch_nor_launder_a_checksum(
        sim: Sim, caplog: pytest.LogCaptureFixture, sequence: list[tuple[int, bytes]]) -> None:
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="p4sim"):
        for port, frame in sequence:
            came_right = _tcp_frame(frame) and checksum_error(frame) is None
            came_wrong = _tcp_frame(frame) and checksum_error(frame) is not None
            for out_port, out in sim.send(port, frame):
                if out_port == CPU_PORT or not _tcp_frame(out):
                    continue
                assert _whole(out), f"a frame out of port {out_port} is cut short: {out.hex()}"
                if came_right:
                    assert checksum_error(out) is None, f"{checksum_error(out)} checksum wrong out of {out_port}"
                elif came_wrong and Ether(out)[TCP].sport == Ether(frame)[TCP].sport:
                    # forwarded (rewritten or not): still wrong. A packet the switch builds from it
                    # (the second request, an ACK) goes to the proxy with its own right checksums.
                    built = out_port == PROXY and bytes(Ether(out)[TCP].payload) == b""
                    assert built or checksum_error(out) is not None, "a corrupt segment left with right checksums"
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, errors[:3]
