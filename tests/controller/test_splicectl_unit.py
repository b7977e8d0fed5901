"""splicectl's pieces in-process, no switch: option precedence, the hand-over to the daemon, table
rendering and the grouping of flow entries into connections."""

from __future__ import annotations

import asyncio
import sys
import types
from pathlib import Path

import grpc
import pytest
from p4splice.controller import cli
from p4splice.controller import dataplane as dp
from p4splice.controller.cli_flows import group_flows, render_flows
from p4splice.controller.cli_switch import SwitchClient, Target
from p4splice.controller.p4rt import P4Index, P4RuntimeRpcError, codec

MAC = "02:00:00:00:00:01"


def _parse(*argv: str):  # noqa: ANN202 - argparse.Namespace
    args, extra = cli.build_parser().parse_known_args(list(argv))
    args.run_args = extra
    return cli.resolve_options(args)


def test_defaults_config_file_and_command_line_in_that_order(tmp_path: Path) -> None:
    args = _parse("status")
    assert (args.grpc_addr, args.device_id, args.election_id, args.timeout, args.json) == \
        ("127.0.0.1:9559", 1, 1, 5.0, False)
    conf = tmp_path / "c.toml"
    conf.write_text('grpc-addr = "10.1.1.1:9559"\nelection_id = 7\n[splicectl]\ntimeout = 2\n[daemon]\nx = 1\n')
    args = _parse("--config", str(conf), "status")
    assert (args.grpc_addr, args.election_id, args.timeout) == ("10.1.1.1:9559", 7, 2)
    # Global options are taken after the command too, and win over the file.
    args = _parse("--config", str(conf), "routes", "list", "--election-id", "0x10", "--json")
    assert (args.grpc_addr, args.election_id, args.json) == ("10.1.1.1:9559", 16, True)
    conf.write_text("cpu_port = 64\ntarget = 'bmv2'\n")
    args = _parse("--config", str(conf), "pipeline", "push")
    assert (args.cpu_port, args.target, args.device_config, args.push_p4info) == (64, "bmv2", None, None)
    args = _parse("pipeline", "push", "--config", "x.json", "--p4info", "y.txtpb", "--cpu-port", "3")
    assert (args.device_config, args.push_p4info, args.cpu_port, args.config_file) == ("x.json", "y.txtpb", 3, None)


@pytest.mark.parametrize("argv, fragment", [
    (("--election-id", "0", "status"), "--election-id 0"),
    (("status", "--device-id", "x"), "not an integer"),
    (("routes", "add", "10.0.0.0/8", "1", "--smac", MAC), "--dmac"),
])
def test_usage_errors_exit_2_with_one_line(argv: tuple[str, ...], fragment: str, capsys) -> None:
    assert cli.main(list(argv)) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and err.startswith("splicectl: error: ") and fragment in err


def test_run_hands_the_options_to_the_daemon(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    seen = []
    fake = types.ModuleType("p4splice.controller.daemon")
    fake.main = lambda args: seen.append(args) or 3  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "p4splice.controller.daemon", fake)
    conf = tmp_path / "c.toml"
    conf.write_text('election_id = 20\n[daemon]\nproxy_socket = "/run/splice.sock"\n')
    assert cli.main(["--config", str(conf), "--grpc-addr", "127.0.0.1:50001", "run", "--metrics-port", "9100"]) == 3
    (args,) = seen
    assert (args.grpc_addr, args.device_id, args.election_id) == ("127.0.0.1:50001", 1, 20)
    assert args.run_args == ["--metrics-port", "9100"]
    assert args.config_data["election_id"] == 20 and args.config_file == str(conf)


def test_splice_without_a_daemon_is_one_line(capsys, tmp_path) -> None:
    sock = tmp_path / "admin.sock"
    assert cli.main(["splice", "10.0.0.5:40000-10.0.1.10:80", "--admin-socket", str(sock)]) == 1
    assert capsys.readouterr().err == (f"splicectl: error: splice: no controller listening on {sock} "
                                       "(start it with 'splicectl run')\n")


def test_render_table_aligns_numbers_right() -> None:
    text = cli.render_table(["name", "count", "delta"], [("a", 5, "+1000"), ("long-name", 12345, "-7")])
    assert text.splitlines() == [
        "NAME       COUNT  DELTA",
        "a              5  +1000",
        "long-name  12345     -7",
    ]


def _rule(port: int, src: tuple[str, int], dst: tuple[str, int], action: str = "translate",
          out: int | None = None, **deltas: int) -> dp.FlowRule:
    t = dp.Translation.of(out, MAC, MAC, **deltas) if out is not None else None
    return dp.FlowRule(dp.FlowMatch.of(port, src[0], src[1], dst[0], dst[1]), action, t, packets=0, bytes=0)


def test_flows_are_grouped_and_their_legs_named() -> None:
    c, s, other = ("10.0.0.5", 40000), ("10.0.1.10", 80), ("10.0.0.9", 5555)
    service = dp.Service(codec.ipv4(s[0]), s[1], 3)
    rules = [
        _rule(2, s, c, out=3, ack_delta=9), _rule(1, c, s, out=3), _rule(3, c, s, out=2), _rule(3, s, c, out=1),
        _rule(1, other, s, out=2), _rule(2, s, other, out=1),  # a spliced connection: C and S direct
        _rule(3, other, s, action="drop"),  # and the proxy's leftover socket dropped
        _rule(1, ("10.0.0.1", 1), ("10.0.0.2", 2), action="punt"),
    ]
    groups = group_flows(rules, [service])
    assert [g.name for g in groups] == ["10.0.0.5:40000 > 10.0.1.10:80", "10.0.0.9:5555 > 10.0.1.10:80",
                                        "10.0.0.1:1 <> 10.0.0.2:2"]
    proxied, spliced, stray = groups
    assert [leg.label for leg in proxied.legs] == ["C>P", "P>S", "S>P", "P>C"] and proxied.state == "proxied"
    assert [leg.label for leg in spliced.legs] == ["C>S", "S>C", "P>*"] and spliced.state == "spliced"
    assert stray.state == "punt" and stray.legs[0].label == "10.0.0.1:1>10.0.0.2:2"
    text = render_flows(groups)
    assert "S>P" in text and "+9" in text and "spliced" in text
    assert proxied.to_dict()["legs"][2]["ack_delta"] == 9


class _IdleRefusingReader:
    """Stands in for a ReadSession on a server that cannot report idle time (BMv2's PI answers
    UNKNOWN): a Read whose filters ask for it fails; the same Read without succeeds."""

    def __init__(self) -> None:
        self.reads: list[list[object]] = []

    async def read(self, index: object, filters: list[object]):  # noqa: ANN201 - async iterator
        self.reads.append(list(filters))
        if any(getattr(f, "time_since_last_hit_ns", None) is not None for f in filters):
            raise P4RuntimeRpcError("Read", grpc.StatusCode.UNKNOWN, "cannot read ageing state")
        for f in filters:
            yield f


def test_a_read_the_switch_refuses_for_its_idle_times_is_asked_again_without(splice_pipeline) -> None:  # noqa: ANN001
    client = SwitchClient(Target("127.0.0.1:1"))
    client._index = P4Index(splice_pipeline.p4info)
    reader = _IdleRefusingReader()
    client._reader = reader  # type: ignore[assignment]
    got = asyncio.run(client.read(dp.flows_read()))
    first, second = reader.reads
    # The flows table has idle timeouts: the first Read asks for each entry's idle time ...
    assert [f.time_since_last_hit_ns for f in first] == [0]
    # ... and the answer comes from the second, which does not.
    assert [f.time_since_last_hit_ns for f in second] == [None] and got == second


def test_run_help_is_the_daemons_own(capsys: pytest.CaptureFixture[str]) -> None:
    """``splicectl run --help`` lists the daemon's options (docs/controller.md), not splicectl's."""
    for flag in ("--help", "-h"):
        assert cli.main(["run", flag]) == 0
        out = capsys.readouterr().out
        assert out.startswith("usage: splicectl run")
        for option in ("--config FILE", "--pipeline", "--device-config FILE", "--proxy-socket PATH",
                       "--proxy-user UID", "--admin-socket PATH", "--metrics-port PORT", "--log-format",
                       "--cpu-port N", "--election-id N"):
            assert option in out, option
    # a bad option of the daemon's is still one line and status 2
    assert cli.main(["run", "--pipeline", "sideways"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "sideways" in err[0]
