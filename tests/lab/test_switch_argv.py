"""The lab's switch command lines (lab/topology.py): BMv2's optional Thrift port goes
only to a simple_switch_grpc whose --help lists it (p4sim.launch), as the PTF runner does."""

from __future__ import annotations

from pathlib import Path

import pytest
from p4splice.lab.topology import LabError, switch_argv, switch_log_path

from p4sim import launch


def _fake_bmv2(bin_dir: Path, help_text: str) -> None:
    exe = bin_dir / "simple_switch_grpc"
    exe.write_text(f"#!/bin/sh\necho '{help_text}'\n")
    exe.chmod(0o755)


@pytest.mark.parametrize(("help_text", "thrift"), [
    ("Usage: SWITCH_NAME [options] <path to JSON config file>\n  --thrift-port arg", True),
    ("Usage: SWITCH_NAME [options] <path to JSON config file>\n  --device-id arg", False),
])
def test_bmv2_gets_a_thrift_port_only_where_it_has_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       help_text: str, thrift: bool) -> None:
    _fake_bmv2(tmp_path, help_text)
    monkeypatch.setenv("PATH", str(tmp_path))
    launch.bmv2_has_thrift.cache_clear()  # the answer is cached per binary path
    try:
        argv = switch_argv("bmv2", [(1, "veth1")], "127.0.0.1:9559", tmp_path / "sw.log")
    finally:
        launch.bmv2_has_thrift.cache_clear()
    assert argv[0] == str(tmp_path / "simple_switch_grpc")
    assert ("--thrift-port" in argv) is thrift
    assert argv[argv.index("--log-level") + 1] == "info"
    assert argv[argv.index("--") + 1:] == ["--grpc-server-addr", "127.0.0.1:9559", "--cpu-port", "255"]


def test_log_level_and_where_the_log_goes(tmp_path: Path) -> None:
    argv = switch_argv("p4sim", [(1, "veth1")], "127.0.0.1:9559", tmp_path / "sw.log", log_level="debug",
                       pcap_dir=tmp_path / "pcap")
    assert argv[argv.index("--log-level") + 1] == "debug"
    assert argv[argv.index("--log-file") + 1] == str(tmp_path / "sw.log")
    assert f"--pcap={tmp_path / 'pcap'}" in argv  # one word: BMv2 reads the optional value only attached
    # BMv2's file sink adds .txt to the name it is given
    assert switch_log_path("bmv2", tmp_path / "sw.log") == tmp_path / "sw.log.txt"
    assert switch_log_path("p4sim", tmp_path / "sw.log") == tmp_path / "sw.log"
    with pytest.raises(LabError, match="unknown switch log level 'loud'"):
        switch_argv("p4sim", [(1, "veth1")], "127.0.0.1:9559", tmp_path / "sw.log", log_level="loud")


def test_bmv2_missing_from_path_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(LabError, match="simple_switch_grpc on PATH"):
        switch_argv("bmv2", [(1, "veth1")], "127.0.0.1:9559", tmp_path / "sw.log")
