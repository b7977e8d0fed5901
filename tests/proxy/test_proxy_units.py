"""The proxy's pure parts, without sockets: request heads, header rewriting, the policies'
stages (what they forward, hold and when they ask for the splice) and configuration defaults."""

from __future__ import annotations

import socket
import struct

import pytest
from p4splice.proxy.config import Limits, ServiceConfig, parse
from p4splice.proxy.http import NotHttp, find_head_end, looks_like_request, parse_head, rewrite_head
from p4splice.proxy.policy import make_stage
from p4splice.proxy.sockets import close_gracefully, disarm_reset, reset_if_we_die

HEAD = b"GET /a?b=1 HTTP/1.1\r\nHost: x.test\r\nUser-Agent: curl/8\r\nAccept: */*\r\n\r\n"


def test_parse_head() -> None:
    head = parse_head(HEAD)
    assert (head.method, head.target, head.version) == ("GET", "/a?b=1", "HTTP/1.1")
    assert head.headers == (("Host", "x.test"), ("User-Agent", "curl/8"), ("Accept", "*/*"))
    assert head.header("user-agent") == "curl/8" and head.size == len(HEAD)
    assert find_head_end(HEAD + b"body") == len(HEAD) and find_head_end(HEAD[:-2]) == -1
    for bad in (b"GET /\r\n\r\n", b"GET / HTTP/1.1\r\nno colon\r\n\r\n", b"\x16\x03\x01 / HTTP/1.1\r\n\r\n"):
        with pytest.raises(NotHttp):
            parse_head(bad)


@pytest.mark.parametrize("data,ok", [
    (b"", True), (b"GE", True), (b"GET ", True), (b"GET /x HTTP/1.1\r\n", True),
    (b"220 hello\r\n", False), (b"\x16\x03\x01\x02", False), (b"HELO x\r\n", False), (b" GET", False),
])
def test_looks_like_request(data: bytes, ok: bool) -> None:
    assert looks_like_request(data) is ok


def test_rewrite_head_sets_replaces_and_removes() -> None:
    out = rewrite_head(HEAD, {"User-Agent": "p4splice", "Via": "1.1 p"}, ["accept"])
    assert out == b"GET /a?b=1 HTTP/1.1\r\nHost: x.test\r\nUser-Agent: p4splice\r\nVia: 1.1 p\r\n\r\n"


def _service(policy: str, **kw: object) -> ServiceConfig:
    return ServiceConfig("s", "0.0.0.0", 80, policy, **kw)  # type: ignore[arg-type]


def test_after_bytes_reads_exactly_n_then_asks() -> None:
    stage = make_stage(_service("after-bytes", after_bytes=10), "f", 1024, 1.0)
    assert stage.read_limit() == 10 and not stage.wants_splice
    assert stage.feed(b"1234567") == b"1234567" and stage.read_limit() == 3
    stage.feed(b"890")
    assert stage.wants_splice and stage.read_limit() is None
    assert make_stage(_service("after-bytes", after_bytes=0), "f", 1024, 1.0).wants_splice


def test_inspect_forwards_at_once_and_asks_after_the_head() -> None:
    stage = make_stage(_service("inspect"), "f", 1024, 1.0)
    assert stage.feed(HEAD[:20]) == HEAD[:20] and not stage.wants_splice
    assert stage.feed(HEAD[20:] + b"body") == HEAD[20:] + b"body"
    assert stage.wants_splice and stage.outcome == "request" and stage.request is not None
    assert stage.held == 0
    other = make_stage(_service("inspect"), "f", 1024, 1.0)
    other.feed(b"SSH-2.0-OpenSSH\r\n")
    assert other.wants_splice and other.outcome == "not-http"
    long = make_stage(_service("inspect"), "f", 256, 1.0)
    long.feed(b"GET /" + b"a" * 300)
    assert long.wants_splice and long.outcome == "head-too-long"


def test_rewrite_holds_the_head_within_the_bound() -> None:
    stage = make_stage(_service("rewrite", set_headers=(("Via", "p"),)), "f", 256, 1.0)
    assert stage.read_limit() == 256
    assert stage.feed(HEAD[:30]) == b"" and stage.held == 30 and stage.read_limit() == 226
    assert stage.hold_deadline is not None
    out = stage.feed(HEAD[30:] + b"rest")
    assert out == HEAD[:-2] + b"Via: p\r\n\r\nrest" and stage.wants_splice and stage.held == 0
    # Not HTTP: forwarded unchanged at the first line.
    other = make_stage(_service("rewrite", set_headers=(("Via", "p"),)), "f", 256, 1.0)
    assert other.feed(b"HELO x\r\n") == b"HELO x\r\n" and other.outcome == "not-http"
    # Client gone (or the head timed out) before the head ended: the held bytes go unchanged.
    cut = make_stage(_service("rewrite", set_headers=(("Via", "p"),)), "f", 256, 1.0)
    cut.feed(b"GET / HTTP/1.1\r\nHost")
    assert cut.flush("timeout") == b"GET / HTTP/1.1\r\nHost" and cut.outcome == "timeout"


def test_never_never_asks() -> None:
    stage = make_stage(_service("never"), "f", 1024, 1.0)
    assert stage.feed(HEAD) == HEAD and not stage.wants_splice and stage.read_limit() is None


def test_config_defaults() -> None:
    config = parse({"proxy": {"name": "p"}, "service": [{"listen": "10.0.2.1:80", "policy": "inspect"}]})
    assert config.controller is None and config.limits == Limits() and config.namespace is None
    assert config.services[0].name == "service-1" and config.services[0].host == "10.0.2.1"


def test_prometheus_endpoint_serves_the_live_values() -> None:
    pytest.importorskip("prometheus_client")
    import socket
    import urllib.request

    from p4splice.proxy.metrics import Metrics, start_prometheus

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    metrics = Metrics()
    assert start_prometheus(metrics, port)
    metrics.add("bytes_c2s", 1234)
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    assert "splice_proxy_bytes_c2s_total 1234.0" in body
    assert "splice_proxy_connections_active 0.0" in body


def test_quiescent_report_of_1000_connections_is_cheap_and_fits_a_heartbeat(monkeypatch: pytest.MonkeyPatch) -> None:
    """1,000 live TCP connections (two socket pairs each): the report takes only ioctls, leaves
    out a connection with unread bytes and a half-closed one, and always fits one request line."""
    import json
    import socket
    import time

    import p4splice.proxy.server as proxy_server
    from p4splice.controller.proxyapi import MAX_LINE, Flow
    from p4splice.proxy.metrics import Metrics
    from p4splice.proxy.relay import Connection
    from p4splice.proxy.server import ProxyServer

    config = parse({"proxy": {"name": "p"}, "service": [{"listen": "10.0.2.1:80", "policy": "never"}]})
    server = ProxyServer(config)
    listener = socket.create_server(("127.0.0.1", 0), backlog=4096)
    opened: list[socket.socket] = [listener]

    def pair() -> tuple[socket.socket, socket.socket]:
        near = socket.create_connection(listener.getsockname())
        far, _ = listener.accept()
        opened.extend((near, far))
        return near, far

    try:
        peers = {}
        for n in range(1000):
            flow = Flow("10.0.1.1", 10000 + n, "10.0.2.1", 80)
            client_peer, client = pair()
            upstream, _server_end = pair()
            conn = Connection(client, flow, "s", 4096, Metrics())
            conn.attach(upstream, make_stage(config.services[0], str(flow), 16384, 5.0))
            assert conn.c2s is not None and conn.s2c is not None
            conn.c2s.received = conn.c2s.sent = 2**40 + n  # long counts: the size bound must hold
            conn.s2c.received = conn.s2c.sent = n
            server.connections[flow] = conn
            peers[flow] = client_peer
        flows = list(server.connections)
        peers[flows[3]].send(b"unread")  # bytes in the kernel, not yet read by the proxy
        half = server.connections[flows[7]]
        assert half.c2s is not None
        half.c2s.eof = True  # the client sent its FIN
        time.sleep(0.05)
        started = time.perf_counter()
        report = server.quiescent_report()
        took = time.perf_counter() - started
        assert took < 0.25, f"{took:.3f} s for 1,000 connections"
        assert len(report) == 998 and {flows[3], flows[7]}.isdisjoint(q["flow"] for q in report)
        assert report[0] == {"flow": flows[0], "a_c": 2**40, "b_s": 2**40, "a_s": 0, "b_c": 0}

        def line(items: list[dict[str, object]]) -> int:
            wire = [q | {"flow": q["flow"].to_json()} for q in items]  # type: ignore[union-attr]
            return len(json.dumps({"id": 99999, "op": "heartbeat", "quiescent": wire}, separators=(",", ":"))) + 1

        assert line(report) <= MAX_LINE
        # With a smaller line limit the report is cut, the oldest connections kept, and still fits.
        monkeypatch.setattr(proxy_server, "MAX_LINE", 16 * 1024)
        cut = server.quiescent_report()
        assert 100 < len(cut) < 998 and cut == report[:len(cut)] and line(cut) <= 16 * 1024
    finally:
        for sock in opened:
            sock.close()


def _linger(sock: socket.socket) -> tuple[int, int]:
    return struct.unpack("ii", sock.getsockopt(socket.SOL_SOCKET, socket.SO_LINGER, 8))


def test_relay_sockets_reset_if_the_proxy_dies_and_close_gracefully_otherwise() -> None:
    # armed: a dying process's kernel resets the leg rather than FIN it (a truncated stream)
    t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        assert _linger(t) == (0, 0)
        reset_if_we_die(t)
        assert _linger(t) == (1, 0)
        disarm_reset(t)  # what an orderly close does first
        assert _linger(t) == (0, 0)
        close_gracefully(t)
        assert t.fileno() == -1
    finally:
        t.close()


def test_config_address_is_checked_and_kept() -> None:
    from p4splice.proxy.config import ConfigError

    base = {"name": "p", "controller": "/run/x.sock", "switch_port": 3}
    svc = [{"listen": "10.0.2.1:80", "policy": "inspect"}]
    assert parse({"proxy": base | {"address": "10.0.3.1"}, "service": svc}).address == "10.0.3.1"
    assert parse({"proxy": base, "service": svc}).address is None
    with pytest.raises(ConfigError, match="'address' must be an IPv4 address"):
        parse({"proxy": base | {"address": "10.0.3"}, "service": svc})
