"""``splice-proxy`` as a user runs it: one-line errors for bad configurations, and a real process
in the proxy namespace that applies its own policy routing, registers with the (fake)
controller, relays, and on SIGTERM closes its listeners, says bye, resets what is left, removes
its policy routing and exits 0."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

import pytest
from p4splice.proxy.cli import main
from p4splice.proxy.netsetup import rules_for_table

from tests.proxy.support import (
    MAC,
    SERVER_IP,
    TABLE,
    HttpishServer,
    connect_from_client,
    fake_controller,
    http_exchange,
    poll,
    request_head,
    router_topology,
    run,
    socket_in,
)

SPLICE_PROXY = str(Path(sys.executable).with_name("splice-proxy"))

GOOD = """
[proxy]
name = "p1"

[[service]]
listen = "0.0.0.0:80"
policy = "never"
"""

BAD = {
    "not toml": ("[proxy\nname=1", "not valid TOML"),
    "no name": ("[[service]]\nlisten = \"0.0.0.0:80\"\npolicy = \"never\"\n", "[proxy]: missing 'name'"),
    "no service": ("[proxy]\nname = \"p1\"\n", "at least one [[service]]"),
    "policy": (GOOD.replace('"never"', '"sometimes"'), "unknown policy 'sometimes'"),
    "listen": (GOOD.replace("0.0.0.0:80", "0.0.0.0:99999"), "'listen' must be"),
    "after-bytes": (GOOD.replace('"never"', '"after-bytes"'), "needs 'after_bytes'"),
    "rewrite": (GOOD.replace('"never"', '"rewrite"'), "needs 'set_headers' or 'remove_headers'"),
    "unknown key": (GOOD.replace('name = "p1"', 'name = "p1"\ncontroler = "/x"'), "unknown key(s) 'controler'"),
    "mac": (GOOD.replace('name = "p1"', 'name = "p1"\nmac = "zz"'), "'mac' must be"),
    "port": (GOOD.replace('name = "p1"', 'name = "p1"\ncontroller = "/x"'), "needs the proxy host's 'switch_port'"),
    "twice": (GOOD + '\n[[service]]\nname = "b"\nlisten = "0.0.0.0:80"\npolicy = "never"\n', "listens where"),
    "limits": (GOOD + "\n[limits]\nbuffer_bytes = 10\n", "'buffer_bytes' must be in"),
    "table": (GOOD + '\n[namespace]\ninterfaces = ["eth0"]\ntable = 254\n', "kernel's own tables"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_config_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str) -> None:
    text, expected = BAD[case]
    path = tmp_path / "proxy.toml"
    path.write_text(text)
    assert main(["--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"splice-proxy: error: {path}: ")
    assert expected in err


def test_missing_file_and_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", str(tmp_path / "nope.toml")]) == 2
    assert capsys.readouterr().err.startswith("splice-proxy: error: ")
    path = tmp_path / "proxy.toml"
    path.write_text(GOOD)
    assert main(["--config", str(path), "--check"]) == 0
    assert "ok (1 service(s))" in capsys.readouterr().out


def test_process_runs_relays_and_shuts_down_cleanly(tmp_path: Path) -> None:
    sock = tmp_path / "proxy.sock"
    with router_topology(policy_routing=False) as router:
        cfg = tmp_path / "proxy.toml"
        cfg.write_text(f"""
[proxy]
name = "cli-proxy"
controller = "{sock}"
switch_port = 4
mac = "{MAC}"
heartbeat_ms = 200
log_format = "json"
metrics_interval_s = 0

[namespace]
interfaces = ["{router.proxy_ifs[0]}", "{router.proxy_ifs[1]}"]
table = {TABLE}

[limits]
shutdown_grace_s = 0.3

[[service]]
name = "plain"
listen = "0.0.0.0:8203"
policy = "never"
""")

        async def main_() -> None:
            async with fake_controller(sock) as (api, ctl), HttpishServer(router.server, [8203]) as server:
                proc = await asyncio.create_subprocess_exec(
                    "ip", "netns", "exec", router.proxy, SPLICE_PROXY, "--config", str(cfg),
                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
                try:
                    assert proc.stdout is not None and proc.stderr is not None
                    line = await asyncio.wait_for(proc.stdout.readline(), 10)
                    assert line.startswith(b"splice-proxy ") and b"plain=0.0.0.0:8203/never" in line
                    await poll(lambda: "cli-proxy" in api.registered, what="registration")
                    assert ctl.called("register") == [("cli-proxy", 4, MAC, 200)]
                    assert len(rules_for_table(TABLE, router.proxy)) == 2  # its own policy routing
                    ex = await http_exchange(router, 8203, 5000, 70000)
                    seen = server.seen[ex.local[1]]
                    await poll(seen.done.is_set, what="the server")
                    assert seen.body_sha == ex.upload_sha and ex.download_sha == seen.sent_sha
                    # A connection in the middle of its request when the signal comes.
                    reader, writer = await connect_from_client(router, 8203)
                    writer.write(request_head(1_000_000, 10) + b"x" * 1000)
                    await writer.drain()
                    await poll(lambda: len(server.seen) == 2, what="the second connection")
                    proc.send_signal(signal.SIGTERM)
                    assert await asyncio.wait_for(proc.wait(), 10) == 0
                    assert ctl.called("bye") == [("cli-proxy",)]
                    # Past the grace period the open connection was reset, not left hanging.
                    with pytest.raises(ConnectionResetError):
                        await asyncio.wait_for(reader.read(), 5)
                    writer.close()
                    assert rules_for_table(TABLE, router.proxy) == []  # routing removed on exit
                    # No listener, no policy routing: the SYN is routed on to the server,
                    # which has no listener on 8204.
                    late = socket_in(router.client)
                    late.setblocking(False)
                    with pytest.raises(ConnectionRefusedError):
                        await asyncio.get_running_loop().sock_connect(late, (SERVER_IP, 8204))
                    late.close()
                    logs = [json.loads(x) for x in (await proc.stderr.read()).decode().splitlines() if x.startswith("{")]
                    final = [entry for entry in logs if entry.get("event") == "metrics"]
                    assert final and final[-1]["metrics"]["connections_accepted"] == 2
                    assert final[-1]["metrics"]["connections_aborted"] == 1
                    assert any("said bye" in entry["message"] for entry in logs)
                finally:
                    if proc.returncode is None:
                        proc.kill()
                        await proc.wait()

        run(main_())
