"""The integration harness's switch layer itself: choosing the switch, the one-line refusal when a
target's tools are missing, and the veth ports' view of frames (padding, chatter, own sends)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from p4splice.lab import netdev
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether

from tests.controller import switches
from tests.controller.switches import VethFramePort, trim_padding

ROOT = Path(__file__).resolve().parents[2]
RUNT = bytes(Ether(src="02:00:00:00:01:01", dst="02:00:00:00:00:fe") / IP(src="10.0.1.1", dst="10.0.2.1")
             / TCP(sport=1, dport=80, flags="A"))


def test_padding_is_cut_at_the_ip_total_length() -> None:
    assert len(RUNT) == 54
    assert trim_padding(RUNT + b"\0" * 6) == RUNT  # BMv2's 60-byte minimum
    assert trim_padding(RUNT) == RUNT
    arp_like = b"\xff" * 12 + b"\x08\x06" + b"\0" * 46
    assert trim_padding(arp_like) == arp_like  # only IPv4 says where it ends


def test_switch_kind_comes_from_the_environment() -> None:
    assert switches.selected_kind({}) == "inprocess"
    assert switches.selected_kind({"P4SPLICE_SWITCH": "bmv2"}) == "bmv2"
    with pytest.raises(ValueError, match="inprocess, p4sim, bmv2"):
        switches.selected_kind({"P4SPLICE_SWITCH": "tofino"})


def test_missing_bmv2_tools_are_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(RuntimeError) as err:
        switches.check_environment("bmv2")
    assert str(err.value) == "P4SPLICE_SWITCH=bmv2 needs p4c-bm2-ss and simple_switch_grpc on PATH (not found)"
    switches.check_environment("inprocess")  # needs nothing


def test_a_run_on_bmv2_without_its_tools_fails_in_one_line(tmp_path: Path) -> None:
    """Not a skip: the run stops before collecting, with pytest's usage error and one line."""
    env = {**os.environ, "P4SPLICE_SWITCH": "bmv2", "PATH": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "tests/controller/test_frames_route.py"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR, lines
    assert lines == ["ERROR: P4SPLICE_SWITCH=bmv2 needs p4c-bm2-ss and simple_switch_grpc on PATH (not found)"]


def test_veth_ports_see_the_far_end_only(tmp_path: Path) -> None:
    try:
        netdev.require_netns()
    except netdev.NetdevUnavailable as exc:
        pytest.skip(str(exc))
    with netdev.Topology(prefix=switches.PREFIX) as topo:
        pair = topo.add_veth()
        near, far = VethFramePort(1, pair.a), VethFramePort(2, pair.b)
        try:
            # Runts padded as BMv2 sends them arrive trimmed; IPv6 (kernel chatter) is skipped.
            far.inject(bytes(Ether(dst="33:33:00:00:00:01") / IPv6()))
            far.inject(RUNT + b"\0" * 6)
            assert near.expect(2.0) == RUNT
            # match skips what it does not want; drain takes what is left, without waiting.
            other = RUNT[:-20] + bytes(TCP(sport=2, dport=80, flags="A"))
            far.inject(other)
            far.inject(RUNT)
            assert near.expect(2.0, match=lambda f: f == RUNT) == RUNT
            far.inject(other)
            assert near.expect(2.0) == other
            with pytest.raises(TimeoutError):
                near.expect(0.05)
            # A port never reads back its own sends.
            assert far.drain() == []
        finally:
            near.close()
            far.close()
