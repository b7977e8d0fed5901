"""The drain before a splice (relay.Connection.quiesce) over real loopback TCP: it returns only once
the sockets have stayed quiet for the settle time, and its counts are every byte relayed."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import pytest
from p4splice.controller.proxyapi import Flow
from p4splice.proxy.metrics import Metrics
from p4splice.proxy.relay import Connection, Counts, Pump

from tests.proxy.support import poll, run


def _pair() -> tuple[socket.socket, socket.socket]:
    """Both ends of one loopback TCP connection, non-blocking: (accepted, connecting)."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        peer = socket.create_connection(listener.getsockname())
        accepted, _ = listener.accept()
    for s in (accepted, peer):
        s.setblocking(False)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return accepted, peer


@pytest.fixture
def relay() -> Iterator[tuple[Connection, socket.socket, socket.socket]]:
    """A Connection between a client and a server peer, pumps not started yet (no policy stage:
    the never policy's)."""
    client, client_peer = _pair()
    upstream, server_peer = _pair()
    conn = Connection(client, Flow("10.0.0.1", 1000, "10.0.0.2", 80), "s", 4096, Metrics())
    conn.upstream = upstream
    conn.c2s = Pump("c2s", client, upstream, 4096, conn.metrics)
    conn.s2c = Pump("s2c", upstream, client, 4096, conn.metrics)
    conn.state = "relaying"
    yield conn, client_peer, server_peer
    for s in (client, client_peer, upstream, server_peer):
        s.close()


def _received(sock: socket.socket, into: bytearray) -> int:
    try:
        into += sock.recv(65536)
    except BlockingIOError:
        pass
    return len(into)


def test_a_byte_during_the_settle_time_restarts_it_and_is_counted(
        relay: tuple[Connection, socket.socket, socket.socket]) -> None:
    conn, client_peer, server_peer = relay

    async def scenario() -> Counts:
        conn.start()
        got = bytearray()
        client_peer.send(b"first")
        drain = asyncio.get_running_loop().create_task(conn.quiesce(timeout=10.0, settle=1.0))
        await poll(lambda: _received(server_peer, got) == 5, what="the first bytes at the server")
        # The sockets are quiet now, and the settle time (1 s) has begun: more bytes must be
        # relayed and counted before the drain may end.
        client_peer.send(b"second")
        server_peer.send(b"answer")
        await poll(lambda: _received(server_peer, got) == 11, what="the second bytes at the server")
        return await drain

    counts = run(scenario())
    assert counts == Counts(a_c=11, b_s=11, a_s=6, b_c=6)
    back = bytearray()
    run(poll(lambda: _received(client_peer, back) == 6, what="the answer at the client"))
    assert bytes(back) == b"answer" and conn.tasks and all(t.done() for t in conn.tasks)
