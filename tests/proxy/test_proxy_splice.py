"""The proxy's side of the splice against a fake controller (a real ProxyApiServer with an
in-memory SpliceService), through real kernels in the router topology: registration and
heartbeats, splice_prepare then splice with exactly the right counts, sockets closed after the
reply; a refused, failed or unreachable splice leaves the connection proxied and byte-exact."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from p4splice.controller.proxyapi import Flow, ProxyApiServer
from p4splice.proxy.config import ProxyConfig, parse
from p4splice.proxy.http import rewrite_head

from tests.proxy.support import (
    CLIENT_IP,
    MAC,
    SERVER_IP,
    FakeController,
    HttpishServer,
    ProxyThread,
    Router,
    connect_from_client,
    fake_controller,
    payload,
    poll,
    request,
    request_head,
    response_head,
    router_topology,
    run,
    running_proxy,
    socket_in,
)

PORTS = {"inspect": 8101, "after-bytes": 8102, "rewrite": 8104, "never": 8103}
SET_HEADERS = {"Via": "1.1 p4splice"}
UPLOAD, DOWNLOAD = 3000, 5000
KEEP = {"X-Keep-Open": "1"}
# after-bytes: the whole first request (head and body) goes through the proxy, then the splice.
AFTER = len(request_head(UPLOAD, DOWNLOAD, KEEP)) + UPLOAD


@pytest.fixture(scope="module")
def router() -> Iterator[Router]:
    with router_topology() as r:
        yield r


def config(sock: Path, **limits: float) -> ProxyConfig:
    services: list[dict[str, object]] = [
        {"name": "inspect", "listen": f"0.0.0.0:{PORTS['inspect']}", "policy": "inspect"},
        {"name": "after", "listen": f"0.0.0.0:{PORTS['after-bytes']}", "policy": "after-bytes", "after_bytes": AFTER},
        {"name": "rewrite", "listen": f"0.0.0.0:{PORTS['rewrite']}", "policy": "rewrite", "set_headers": SET_HEADERS},
        {"name": "never", "listen": f"0.0.0.0:{PORTS['never']}", "policy": "never"},
    ]
    return parse({
        "proxy": {"name": "splice-test", "controller": str(sock), "switch_port": 7, "mac": MAC,
                  "heartbeat_ms": 200, "metrics_interval_s": 0},
        "limits": {"shutdown_grace_s": 0.5, **limits},
        "service": services,
    })


@contextlib.asynccontextmanager
async def splice_setup(router: Router, sock: Path, port: int, **limits: float) \
        -> AsyncIterator[tuple[ProxyApiServer, FakeController, HttpishServer, ProxyThread]]:
    """The fake controller on ``sock``, the server on ``port`` and the proxy, its registration in."""
    async with fake_controller(sock) as (api, ctl), HttpishServer(router.server, [port]) as server, \
            running_proxy(router, config(sock, **limits)) as proxy:
        await poll(lambda: "splice-test" in api.registered, what="registration")
        yield api, ctl, server, proxy


@pytest.mark.parametrize("policy", ["inspect", "after-bytes", "rewrite"])
def test_splice_reports_exact_counts_then_closes(router: Router, tmp_path: Path, policy: str) -> None:
    sock = tmp_path / "proxy.sock"

    async def main() -> None:
        async with splice_setup(router, sock, PORTS[policy]) as (api, ctl, server, proxy):
            assert ctl.called("register") == [("splice-test", 7, MAC, 200)]
            ctl.prepare_gate = asyncio.Event()
            reader, writer = await connect_from_client(router, PORTS[policy])
            # The whole exchange goes through the proxy while splice_prepare is held, so the
            # counts at the splice are known exactly.
            ex = await request(reader, writer, UPLOAD, DOWNLOAD, KEEP)
            assert ex.download_len == DOWNLOAD and ex.download_sha == server.seen[ex.local[1]].sent_sha
            flow = Flow(CLIENT_IP, ex.local[1], SERVER_IP, PORTS[policy])
            prepared = await poll(lambda: ctl.called("splice_prepare"), what="splice_prepare")
            assert prepared == [("splice-test", flow)]
            assert ctl.called("splice") == []  # nothing before splice_prepare is answered
            ctl.prepare_gate.set()
            calls = await poll(lambda: ctl.called("splice"), what="the splice request")
            seen = server.seen[ex.local[1]]
            a_c = len(ex.sent_head) + UPLOAD
            b_s = len(seen.head) + UPLOAD
            a_s = b_c = len(ex.response_head) + DOWNLOAD
            assert calls == [("splice-test", flow, a_c, b_s, a_s, b_c)]
            if policy == "rewrite":
                assert seen.head == rewrite_head(ex.sent_head, SET_HEADERS, ())
                assert b_s - a_c == len(b"Via: 1.1 p4splice\r\n")  # a non-zero delta c2s
            else:
                assert b_s == a_c
            # After the reply the proxy drops both sockets (abortive close): with no switch to
            # discard it, the client sees the reset.
            with pytest.raises(ConnectionResetError):
                await asyncio.wait_for(reader.read(), 5)
            metrics = await poll(lambda: _metric(proxy, "connections_closed", 1), what="the connection to close")
            assert metrics["splices_done"] == 1 and metrics["connections_active"] == 0
            assert metrics["connections_aborted"] == 0  # spliced, not failed
            assert ctl.state[flow] == "spliced"
            await poll(lambda: len(ctl.called("heartbeat")) >= 1, what="a heartbeat")
            writer.close()

    run(main())


async def _metric(proxy, name: str, at_least: int):  # type: ignore[no-untyped-def]
    metrics = await proxy.metrics()
    return metrics if metrics[name] >= at_least else None


@pytest.mark.parametrize("says_state", [True, False], ids=["refusal-names-state", "proxy-asks"])
def test_a_connection_that_ended_during_the_drain_is_no_warning(router: Router, tmp_path: Path,
                                                                 caplog: pytest.LogCaptureFixture,
                                                                 says_state: bool) -> None:
    """Both ends' FINs passed before the hold was in place: the controller ends the flow
    (linger) and refuses the counts. Nothing went wrong: one INFO line, no WARNING. A refusal
    that names the state spares the cancel and the question; otherwise the proxy asks."""
    sock = tmp_path / "proxy.sock"
    caplog.set_level(logging.INFO, logger="p4splice.proxy")

    async def main() -> None:
        async with splice_setup(router, sock, PORTS["inspect"]) as (api, ctl, server, proxy):
            ctl.says_state = says_state
            ctl.splice_gate = asyncio.Event()
            reader, writer = await connect_from_client(router, PORTS["inspect"])
            first = await request(reader, writer, UPLOAD, DOWNLOAD, KEEP)
            await poll(lambda: ctl.called("splice"), what="the counts")
            flow = Flow(CLIENT_IP, first.local[1], SERVER_IP, PORTS["inspect"])
            ctl.state[flow] = "linger"
            ctl.splice_gate.set()
            await poll(lambda: _metric(proxy, "splices_refused", 1), what="the refusal")
            asked = [("splice-test", flow)]
            assert (ctl.called("splice_cancel"), ctl.called("flow")) == (([], []) if says_state else (asked, asked))
            assert server.seen[first.local[1]].requests == 1
            writer.close()

    run(main())
    mine = [r for r in caplog.records if r.name.startswith("p4splice.proxy.splice")]
    assert any("nothing left to splice" in r.getMessage() for r in mine)
    assert not [r for r in mine if r.levelno >= logging.WARNING]


@pytest.mark.parametrize("op,code", [("splice_prepare", "conflict"), ("splice", "conflict"),
                                     ("splice", "unavailable"), ("controller-gone", "")])
def test_refused_or_failed_splice_keeps_proxying(router: Router, tmp_path: Path, op: str, code: str) -> None:
    sock = tmp_path / "proxy.sock"

    async def main() -> None:
        async with splice_setup(router, sock, PORTS["inspect"]) as (api, ctl, server, proxy):
            if op == "controller-gone":
                ctl.prepare_gate = asyncio.Event()  # never opened: the controller dies meanwhile
            else:
                ctl.refuse[op] = code
            reader, writer = await connect_from_client(router, PORTS["inspect"])
            first = await request(reader, writer, UPLOAD, DOWNLOAD, KEEP)
            await poll(lambda: ctl.called("splice_prepare"), what="splice_prepare")
            if op == "controller-gone":
                await api.close()
            name = "splices_unreachable" if op == "controller-gone" else "splices_refused"
            metrics = await poll(lambda: _metric(proxy, name, 1), what=name)
            assert metrics["splices_done"] == 0
            # The same connection carries on, through the proxy, byte-exact both ways.
            second = await request(reader, writer, 10_000_000, 10_000_000, KEEP)
            seen = server.seen[first.local[1]]
            await poll(lambda: seen.requests == 2, what="the second request")
            assert (seen.body_len, seen.body_sha) == (10_000_000, second.upload_sha)
            assert (second.download_len, second.download_sha) == (10_000_000, seen.sent_sha)
            assert seen.peer == (CLIENT_IP, first.local[1])
            writer.close()
            flow = Flow(CLIENT_IP, first.local[1], SERVER_IP, PORTS["inspect"])
            if op == "controller-gone":
                assert ctl.called("splice") == []
            if op == "splice":
                # The splice was refused after the hold began: the proxy gave the hold back.
                assert ctl.called("splice_cancel") == [("splice-test", flow)]
                assert ctl.state[flow] == "proxied" and metrics["splices_cancelled"] == 1
            else:
                assert ctl.called("splice_cancel") == []  # nothing was held

    run(main())


def test_splice_waits_for_the_sockets_to_drain(router: Router, tmp_path: Path) -> None:
    """splice_prepare answered in the middle of a download: the proxy forwards what it holds and
    counts only once the client has acknowledged it all, so the client holds exactly b_c bytes,
    a byte-exact prefix of the server's stream, when the proxy steps out."""
    sock = tmp_path / "proxy.sock"
    big = 8_000_000

    async def main() -> None:
        async with splice_setup(router, sock, PORTS["inspect"]) as (api, ctl, server, proxy):
            ctl.prepare_gate, ctl.splice_gate = asyncio.Event(), asyncio.Event()
            reader, writer = await connect_from_client(router, PORTS["inspect"])
            head = request_head(0, big, KEEP)
            writer.write(head)
            got = bytearray()

            async def read_all() -> None:
                while chunk := await reader.read(1 << 16):
                    got.extend(chunk)

            reading = asyncio.get_running_loop().create_task(read_all())
            await poll(lambda: _metric(proxy, "bytes_s2c", 1), what="the download to start")
            ctl.prepare_gate.set()
            calls = await poll(lambda: ctl.called("splice"), what="the splice request")
            _, _, a_c, b_s, a_s, b_c = calls[0]
            assert a_c == b_s == len(head) and a_s == b_c  # nothing held back in the proxy
            # Everything counted was acknowledged by the client's kernel: the client can read it
            # all, and not a byte more comes through the proxy.
            await poll(lambda: len(got) >= b_c, what="the client to read b_c bytes")
            stream = response_head(big, True) + payload(big, seed=big)
            assert len(got) == b_c and bytes(got) == stream[:b_c]
            ctl.splice_gate.set()
            await poll(lambda: _metric(proxy, "splices_done", 1), what="the splice")
            await asyncio.wait_for(asyncio.gather(reading, return_exceptions=True), 5)  # reset
            writer.close()

    run(main())


def test_drain_timeout_keeps_proxying(router: Router, tmp_path: Path) -> None:
    """A client that stops reading keeps the proxy's bytes unacknowledged: past the deadline
    the proxy does not report counts, and stays in the path."""
    sock = tmp_path / "proxy.sock"

    async def main() -> None:
        async with splice_setup(router, sock, PORTS["inspect"], drain_timeout_s=0.3) as (api, ctl, server, proxy):
            # A client that stops reading, with a small fixed window: the proxy's bytes toward
            # it stay unacknowledged.
            sock_c = socket_in(router.client)
            sock_c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
            sock_c.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock_c, (SERVER_IP, PORTS["inspect"]))
            ctl.prepare_gate = asyncio.Event()  # answered once the download is under way
            sock_c.send(request_head(0, 20_000_000, KEEP))
            await poll(lambda: _metric(proxy, "bytes_s2c", 1), what="the download to start")
            ctl.prepare_gate.set()
            await poll(lambda: _metric(proxy, "splices_drain_timeout", 1), what="the drain timeout")
            assert ctl.called("splice") == []
            # The hold is given back at once, so that the flow does not stall at the switch.
            flow = Flow(CLIENT_IP, sock_c.getsockname()[1], SERVER_IP, PORTS["inspect"])
            assert ctl.called("splice_cancel") == [("splice-test", flow)] and ctl.state[flow] == "proxied"
            assert (await proxy.metrics())["splices_cancelled"] == 1
            # Still proxied: the client reads it all, byte-exact.
            reader, writer = await asyncio.open_connection(sock=sock_c, limit=1 << 20)
            ex_port = sock_c.getsockname()[1]
            head = await reader.readuntil(b"\r\n\r\n")
            assert b"Content-Length: 20000000" in head
            digest = hashlib.sha256()
            got = 0
            while got < 20_000_000:
                chunk = await reader.read(1 << 16)
                assert chunk
                digest.update(chunk)
                got += len(chunk)
            assert digest.hexdigest() == server.seen[ex_port].sent_sha
            writer.close()

    run(main())


def test_reconnects_and_registers_again_after_a_controller_restart(router: Router, tmp_path: Path) -> None:
    sock = tmp_path / "proxy.sock"

    async def main() -> None:
        async with fake_controller(sock) as (api, ctl), running_proxy(router, config(sock)) as proxy:
            await poll(lambda: "splice-test" in api.registered, what="registration")
            await api.close()
            await poll(lambda: _metric_is(proxy, "controller_connected", 0), what="the link to notice")
            async with fake_controller(sock) as (api2, ctl2):
                await poll(lambda: "splice-test" in api2.registered, what="registration again")
                assert ctl2.called("register") == [("splice-test", 7, MAC, 200)]
                # the controller has it registered before the proxy has read the answer
                await poll(lambda: _metric_is(proxy, "controller_connected", 1), what="the proxy to count it")
                metrics = await proxy.metrics()
                assert metrics["controller_connects"] == 2 and metrics["controller_connected"] == 1
                await proxy.aclose()
                assert ctl2.called("bye") == [("splice-test",)]  # a clean shutdown says bye

    run(main())


async def _metric_is(proxy, name: str, value: int):  # type: ignore[no-untyped-def]
    return (await proxy.metrics())[name] == value


def test_flow_reset_event_resets_the_connection(router: Router, tmp_path: Path) -> None:
    sock = tmp_path / "proxy.sock"

    async def main() -> None:
        async with splice_setup(router, sock, PORTS["never"]) as (api, ctl, server, proxy):
            reader, writer = await connect_from_client(router, PORTS["never"])
            ex = await request(reader, writer, 10, 10, KEEP)
            flow = Flow(CLIENT_IP, ex.local[1], SERVER_IP, PORTS["never"])
            assert api.send_event("splice-test", "flow_reset", flow=flow, reason="server refused")
            with pytest.raises(ConnectionResetError):
                await asyncio.wait_for(reader.read(), 5)
            metrics = await poll(lambda: _metric(proxy, "connections_aborted", 1), what="the reset")
            assert metrics["connections_active"] == 0
            writer.close()

    run(main())


def test_lost_splice_reply_steps_out_when_the_controller_spliced(router: Router, tmp_path: Path) -> None:
    """The controller spliced the flow but its reply never came: the cancel is refused (the flow is
    not holding), the proxy asks for the flow's state, finds it spliced, and steps out rather
    than relay into a switch that now drops its packets."""
    sock = tmp_path / "proxy.sock"

    async def main() -> None:
        async with splice_setup(router, sock, PORTS["inspect"]) as (api, ctl, server, proxy):
            ctl.lose_splice = True
            reader, writer = await connect_from_client(router, PORTS["inspect"])
            ex = await request(reader, writer, UPLOAD, DOWNLOAD, KEEP)
            flow = Flow(CLIENT_IP, ex.local[1], SERVER_IP, PORTS["inspect"])
            metrics = await poll(lambda: _metric(proxy, "splices_done", 1), what="the step out")
            assert ctl.called("splice_cancel") == [("splice-test", flow)] and ctl.state[flow] == "spliced"
            assert metrics["splices_refused"] == 0 and metrics["splices_cancelled"] == 0
            with pytest.raises(ConnectionResetError):
                await asyncio.wait_for(reader.read(), 5)
            writer.close()

    run(main())


def test_heartbeats_report_idle_connections_with_their_counts(router: Router, tmp_path: Path) -> None:
    """Each heartbeat lists the connections whose sockets hold nothing unread or unacknowledged,
    with exactly the counts a splice would report; a connection with bytes in flight (a client
    that stopped reading) is left out."""
    sock = tmp_path / "proxy.sock"

    async def main() -> None:
        async with splice_setup(router, sock, PORTS["never"]) as (api, ctl, server, proxy):
            reader, writer = await connect_from_client(router, PORTS["never"])
            ex = await request(reader, writer, UPLOAD, DOWNLOAD, KEEP)
            idle = Flow(CLIENT_IP, ex.local[1], SERVER_IP, PORTS["never"])
            seen = server.seen[ex.local[1]]
            a_c = b_s = len(ex.sent_head) + UPLOAD
            a_s = b_c = len(ex.response_head) + DOWNLOAD
            assert len(seen.head) + UPLOAD == b_s
            # A busy one: a client with a small window that stops reading a long download.
            sock_c = socket_in(router.client)
            sock_c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
            sock_c.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock_c, (SERVER_IP, PORTS["never"]))
            sock_c.send(request_head(0, 20_000_000, KEEP))
            busy = Flow(CLIENT_IP, sock_c.getsockname()[1], SERVER_IP, PORTS["never"])
            await poll(lambda: server.seen.get(busy.client_port) is not None, what="the busy request")
            # Once it settled (the client's last ACK may be delayed), two heartbeats in a row say
            # the same (the controller needs two equal ones), and never name the busy one.
            expected = [{"flow": idle, "a_c": a_c, "b_s": b_s, "a_s": a_s, "b_c": b_c}]
            await poll(lambda: ctl.quiescent and ctl.quiescent[-1] == expected, what="the idle connection reported")
            n = len(ctl.quiescent)
            await poll(lambda: len(ctl.quiescent) >= n + 2, what="two more heartbeats")
            assert ctl.quiescent[n:n + 2] == [expected, expected]
            # The idle one stops being quiescent while it works, and is reported again after.
            ex2 = await request(reader, writer, 10, 20, KEEP)
            a_c2 = a_c + len(ex2.sent_head) + 10
            a_s2 = a_s + len(ex2.response_head) + 20
            again = [{"flow": idle, "a_c": a_c2, "b_s": a_c2, "a_s": a_s2, "b_c": a_s2}]
            await poll(lambda: ctl.quiescent and ctl.quiescent[-1] == again, what="the new counts reported")
            assert busy not in [q["flow"] for r in ctl.quiescent if r for q in r]
            sock_c.close()
            writer.close()

    run(main())


def test_splice_requested_runs_the_splice_whatever_the_policy(router: Router, tmp_path: Path) -> None:
    """``splice_requested`` (an operator's ``splicectl splice``) on a ``never`` connection: the
    proxy runs its sequence with exact counts and steps out. For a connection it does not have,
    it gives the hold back at once."""
    sock = tmp_path / "proxy.sock"

    async def main() -> None:
        async with splice_setup(router, sock, PORTS["never"]) as (api, ctl, server, proxy):
            reader, writer = await connect_from_client(router, PORTS["never"])
            ex = await request(reader, writer, UPLOAD, DOWNLOAD, KEEP)
            flow = Flow(CLIENT_IP, ex.local[1], SERVER_IP, PORTS["never"])
            await asyncio.sleep(0.3)
            assert ctl.called("splice_prepare") == []  # the policy never asks by itself
            ctl.state[flow] = "holding"  # the controller holds it before it asks
            assert api.send_event("splice-test", "splice_requested", flow=flow)
            calls = await poll(lambda: ctl.called("splice"), what="the splice")
            a_c = len(ex.sent_head) + UPLOAD
            a_s = len(ex.response_head) + DOWNLOAD
            assert ctl.called("splice_prepare") == [("splice-test", flow)]
            assert calls == [("splice-test", flow, a_c, a_c, a_s, a_s)]
            with pytest.raises(ConnectionResetError):
                await asyncio.wait_for(reader.read(), 5)
            metrics = await poll(lambda: _metric(proxy, "splices_done", 1), what="the splice to finish")
            assert metrics["splices_ordered"] == 1 and ctl.state[flow] == "spliced"
            writer.close()
            # A flow the proxy has no connection for: cancelled, not left held.
            ghost = Flow(CLIENT_IP, 1, SERVER_IP, PORTS["never"])
            ctl.state[ghost] = "holding"
            assert api.send_event("splice-test", "splice_requested", flow=ghost)
            await poll(lambda: ctl.called("splice_cancel"), what="the cancel")
            assert ctl.state[ghost] == "proxied" and ctl.called("splice_prepare") == [("splice-test", flow)]

    run(main())
