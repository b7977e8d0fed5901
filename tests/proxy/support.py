"""Helpers for the proxy tests (no tests here): the router topology, the proxy run in a thread
inside its namespace, an HTTP-ish server and client with digests of everything, and a fake
controller (ProxyApiServer with an in-memory SpliceService)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hashlib
import random
import socket
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from p4splice.controller.proxyapi import ApiError, Deltas, Flow, FlowInfo, ProxyApiServer
from p4splice.lab import netdev
from p4splice.proxy.config import ProxyConfig
from p4splice.proxy.netsetup import setup_namespace
from p4splice.proxy.server import ProxyServer

from tests.asyncsupport import poll_until, run_bounded

T = TypeVar("T")

PREFIX = "p4q"  # this suite's namespaces and links (p4splice.lab.netdev naming)
CLIENT_IP = "10.0.1.1"
SERVER_IP = "10.0.2.1"
TABLE = 100
MAC = "02:00:00:00:00:0a"


# --- waiting -------------------------------------------------------------------------------------

def run(coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
    """One test coroutine on a fresh loop, with a hard deadline so that a hang fails."""
    return run_bounded(coro, timeout)


async def poll(check: Callable[[], Any], timeout: float = 5.0, what: str = "condition",
               interval: float = 0.005) -> Any:
    """Until ``check()`` (plain or async) is truthy; fails after ``timeout`` seconds."""
    return await poll_until(check, timeout, what, interval)


# --- topology ------------------------------------------------------------------------------------

@dataclass
class Router:
    """client ns -- proxy ns (a router that intercepts) -- server ns."""

    client: str
    proxy: str
    server: str
    proxy_ifs: tuple[str, str]  # towards the client, towards the server
    client_if: str
    server_if: str


def build_router(topo: netdev.Topology, policy_routing: bool = True) -> Router:
    cns, pns, sns = topo.add_netns(), topo.add_netns(), topo.add_netns()
    left = topo.add_veth(ns_a=cns, ns_b=pns)
    right = topo.add_veth(ns_a=pns, ns_b=sns)
    topo.add_address(left.a, f"{CLIENT_IP}/24", netns=cns)
    topo.add_address(left.b, "10.0.1.254/24", netns=pns)
    topo.add_address(right.a, "10.0.2.254/24", netns=pns)
    topo.add_address(right.b, f"{SERVER_IP}/24", netns=sns)
    topo.add_route("default", via="10.0.1.254", netns=cns)
    topo.add_route("default", via="10.0.2.254", netns=sns)
    topo.exec(pns, ["sysctl", "-qw", "net.ipv4.ip_forward=1"])
    # The classic transparent interception: what arrives on either side is delivered locally.
    if policy_routing:
        for ifname in (left.b, right.a):
            setup_namespace(ifname, TABLE, netns=pns)
    return Router(cns, pns, sns, (left.b, right.a), left.a, right.b)


@contextlib.contextmanager
def router_topology(policy_routing: bool = True) -> Iterator[Router]:
    try:
        netdev.require_netns()
    except netdev.NetdevUnavailable as exc:
        pytest.skip(str(exc))
    netdev.cleanup_stale(PREFIX)
    with netdev.Topology(prefix=PREFIX) as topo:
        yield build_router(topo, policy_routing)


def socket_in(netns: str, family: int = socket.AF_INET) -> socket.socket:
    with netdev.netns_socket(netns):
        return socket.socket(family, socket.SOCK_STREAM)


# --- the proxy in its namespace --------------------------------------------------------------------

class ProxyThread:
    """A ProxyServer on its own event loop in a thread that lives in the proxy's namespace."""

    def __init__(self, netns: str, config: ProxyConfig) -> None:
        self.netns = netns
        self.config = config
        self.server: ProxyServer | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="proxy", daemon=True)

    def start(self) -> ProxyThread:
        self._thread.start()
        if not self._ready.wait(10):
            raise AssertionError("the proxy did not start")
        if self._error is not None:
            raise self._error
        return self

    def _main(self) -> None:
        try:
            with netdev.netns_socket(self.netns):
                self.loop = asyncio.new_event_loop()
                try:
                    self.server = ProxyServer(self.config)
                    self.loop.run_until_complete(self.server.start())
                    self._ready.set()
                    self.loop.run_until_complete(self.server.wait_closed())
                finally:
                    self.loop.close()
        except BaseException as exc:  # reported by start()
            self._error = exc
            self._ready.set()

    async def call(self, fn: Callable[[ProxyServer], T]) -> T:
        """``fn(server)`` on the proxy's loop (where its state may be read safely)."""
        assert self.loop is not None and self.server is not None
        server = self.server

        async def on_loop() -> T:
            return fn(server)

        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(on_loop(), self.loop))

    async def metrics(self) -> dict[str, int]:
        return await self.call(lambda s: s.metrics.as_dict())

    async def aclose(self, grace: float = 1.0) -> None:
        if self.loop is None or self.server is None or not self._thread.is_alive():
            return
        future: concurrent.futures.Future[None] = asyncio.run_coroutine_threadsafe(self.server.close(grace), self.loop)
        await asyncio.wrap_future(future)
        await asyncio.to_thread(self._thread.join, 10)


@contextlib.asynccontextmanager
async def running_proxy(router: Router, config: ProxyConfig) -> AsyncIterator[ProxyThread]:
    proxy = await asyncio.to_thread(ProxyThread(router.proxy, config).start)
    try:
        yield proxy
    finally:
        await proxy.aclose()


# --- an HTTP-ish server and client -------------------------------------------------------------------

def payload(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Seen:
    """What the server saw on one connection."""

    peer: tuple[str, int]
    head: bytes = b""
    body_sha: str = ""
    body_len: int = 0
    sent_sha: str = ""
    sent_len: int = 0
    requests: int = 0
    heads: list[bytes] = field(default_factory=list)
    response_heads: list[bytes] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)


class HttpishServer:
    """In the server namespace, on several ports. ``http``: read a request head and
    Content-Length bytes of body, answer with X-Download bytes, close. ``banner`` (server-first):
    greet, read one line, answer it, close. ``read_gate``, when set, holds the body reads."""

    def __init__(self, netns: str, ports: list[int], mode: str = "http", rcvbuf: int | None = None) -> None:
        self.netns = netns
        self.rcvbuf = rcvbuf  # set: a small fixed receive window (no autotuning), for slow readers
        self.ports = ports
        self.mode = mode
        self.seen: dict[int, Seen] = {}  # by client port
        self.read_gate: asyncio.Event | None = None
        self._servers: list[asyncio.Server] = []

    async def __aenter__(self) -> HttpishServer:
        for port in self.ports:
            sock = socket_in(self.netns)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if self.rcvbuf is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
            sock.bind((SERVER_IP, port))
            sock.listen(128)
            sock.setblocking(False)
            self._servers.append(await asyncio.start_server(self._handle, sock=sock, limit=1 << 20))
        return self

    async def __aexit__(self, *exc: object) -> None:
        for server in self._servers:
            server.close()
            await server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        seen = self.seen[peer[1]] = Seen(peer)
        try:
            if self.mode == "banner":
                await self._banner(reader, writer, seen)
            else:
                await self._http(reader, writer, seen)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            seen.done.set()

    async def _http(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, seen: Seen) -> None:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                return  # the client closed between requests
            seen.heads.append(head)
            seen.head = head
            fields = parse_fields(head)
            length = int(fields.get("Content-Length", "0"))
            download = int(fields.get("X-Download", "0"))
            keep_open = fields.get("X-Keep-Open") == "1"
            if self.read_gate is not None:
                await self.read_gate.wait()
            digest = hashlib.sha256()
            left = length
            while left:
                chunk = await reader.read(min(left, 1 << 16))
                if not chunk:
                    raise ConnectionError("short body")
                digest.update(chunk)
                left -= len(chunk)
            seen.body_sha, seen.body_len = digest.hexdigest(), length
            body = payload(download, seed=download)
            head_out = response_head(download, keep_open)
            seen.response_heads.append(head_out)
            writer.write(head_out + body)
            await writer.drain()
            seen.sent_sha, seen.sent_len = sha(body), download
            seen.requests += 1
            if not keep_open:
                writer.write_eof()
                await reader.read()  # until the client closes too
                return

    async def _banner(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, seen: Seen) -> None:
        writer.write(b"220 server speaks first\r\n")
        await writer.drain()
        line = await reader.readline()
        seen.head = line
        writer.write(b"250 got " + line)
        await writer.drain()
        writer.write_eof()
        await reader.read()


@dataclass
class Exchange:
    local: tuple[str, int]
    sent_head: bytes
    upload_sha: str
    response_head: bytes
    download_sha: str
    download_len: int


async def connect_from_client(router: Router, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    sock = socket_in(router.client)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (SERVER_IP, port))
    return await asyncio.open_connection(sock=sock, limit=1 << 20)


def request_head(upload: int, download: int, extra: dict[str, str] | None = None) -> bytes:
    headers = {"Host": "server.test", "User-Agent": "p4splice-test", "Content-Length": str(upload),
               "X-Download": str(download), **(extra or {})}
    return ("POST /upload HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n").encode()


def response_head(download: int, keep_open: bool) -> bytes:
    connection = "keep-alive" if keep_open else "close"
    return f"HTTP/1.1 200 OK\r\nContent-Length: {download}\r\nConnection: {connection}\r\n\r\n".encode()


def parse_fields(head: bytes) -> dict[str, str]:
    lines = head.decode("latin-1").split("\r\n")[1:]
    return dict(line.split(": ", 1) for line in lines if ": " in line)


async def request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, upload: int, download: int,
                  extra: dict[str, str] | None = None, until_eof: bool = False) -> Exchange:
    """One request with ``upload`` body bytes on an open connection; reads the response and its
    body (by Content-Length, or until EOF with ``until_eof``)."""
    local = writer.get_extra_info("sockname")
    head = request_head(upload, download, extra)
    body = payload(upload, seed=upload + 1)

    async def send() -> None:
        writer.write(head + body)
        await writer.drain()

    sender = asyncio.get_running_loop().create_task(send())
    try:
        got_head = await reader.readuntil(b"\r\n\r\n")
        digest = hashlib.sha256()
        got = 0
        left = None if until_eof else int(parse_fields(got_head)["Content-Length"])
        while left is None or got < left:
            chunk = await reader.read(1 << 16 if left is None else min(1 << 16, left - got))
            if not chunk:
                break
            digest.update(chunk)
            got += len(chunk)
        await sender
    finally:
        sender.cancel()
    return Exchange(local, head, sha(body), got_head, digest.hexdigest(), got)


async def http_exchange(router: Router, port: int, upload: int, download: int,
                        extra: dict[str, str] | None = None) -> Exchange:
    """A connection with one request; the server closes after its response, then the client."""
    reader, writer = await connect_from_client(router, port)
    exchange = await request(reader, writer, upload, download, extra, until_eof=True)
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()
    return exchange


# --- a fake controller -----------------------------------------------------------------------------

class FakeController:
    """A SpliceService that accepts any flow. ``prepare_gate`` and ``splice_gate`` hold the
    replies to splice_prepare and splice; ``refuse`` maps an op ("splice_prepare", "splice",
    "splice_cancel") to the error code it answers with; ``lose_splice`` splices but answers
    ``unavailable``, as a reply lost on the way would look. ``quiescent`` keeps each heartbeat's
    list (None when the heartbeat had none). ``says_state``: a ``conflict`` names the flow's state,
    as the controller's does; otherwise the proxy has to ask (``flow``), as of an older one."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.state: dict[Flow, str] = {}
        self.prepare_gate: asyncio.Event | None = None
        self.splice_gate: asyncio.Event | None = None
        self.refuse: dict[str, str] = {}
        self.lose_splice = False
        self.quiescent: list[list[dict[str, Any]] | None] = []
        self.says_state = False

    def called(self, op: str) -> list[tuple[Any, ...]]:
        return [args for name, args in self.calls if name == op]

    def _refuse(self, op: str) -> None:
        code = self.refuse.get(op)
        if code is not None:
            raise ApiError(code, f"the fake controller refuses {op}")

    async def register(self, proxy: str, port: int, mac: str, heartbeat_ms: int, ip: str | None = None) -> int:
        self.calls.append(("register", (proxy, port, mac, heartbeat_ms)))
        return heartbeat_ms

    async def heartbeat(self, proxy: str, quiescent: list[dict[str, Any]] | None = None) -> None:
        self.calls.append(("heartbeat", (proxy,)))
        self.quiescent.append(quiescent)

    async def splice_prepare(self, proxy: str, flow: Flow) -> None:
        self.calls.append(("splice_prepare", (proxy, flow)))
        if self.prepare_gate is not None:
            await self.prepare_gate.wait()
        self._refuse("splice_prepare")
        self.state[flow] = "holding"

    async def splice(self, proxy: str, flow: Flow, a_c: int, b_s: int, a_s: int, b_c: int) -> Deltas:
        self.calls.append(("splice", (proxy, flow, a_c, b_s, a_s, b_c)))
        if self.splice_gate is not None:
            await self.splice_gate.wait()
        self._refuse("splice")
        if self.state.get(flow) != "holding":
            raise self._conflict(flow)
        self.state[flow] = "spliced"
        if self.lose_splice:
            raise ApiError("unavailable", "the reply was lost")
        return Deltas.from_counts(a_c, b_s, a_s, b_c)

    async def splice_cancel(self, proxy: str, flow: Flow) -> None:
        self.calls.append(("splice_cancel", (proxy, flow)))
        self._refuse("splice_cancel")
        if self.state.get(flow) != "holding":
            raise self._conflict(flow)
        self.state[flow] = "proxied"

    def _conflict(self, flow: Flow) -> ApiError:
        state = self.state.get(flow, "unknown")
        return ApiError("conflict", f"{flow} is {state}, not holding",
                        **({"state": state} if self.says_state and flow in self.state else {}))

    async def flow(self, proxy: str, flow: Flow) -> FlowInfo:
        self.calls.append(("flow", (proxy, flow)))
        if flow not in self.state:
            raise ApiError("not_found", str(flow))
        return {"flow": flow.to_json(), "state": self.state[flow]}

    async def flows(self, proxy: str) -> list[FlowInfo]:
        return [{"flow": f.to_json(), "state": s} for f, s in self.state.items()]

    async def bye(self, proxy: str) -> None:
        self.calls.append(("bye", (proxy,)))

    async def proxy_dead(self, proxy: str) -> None:
        self.calls.append(("proxy_dead", (proxy,)))


@contextlib.asynccontextmanager
async def fake_controller(path: Path) -> AsyncIterator[tuple[ProxyApiServer, FakeController]]:
    service = FakeController()
    async with ProxyApiServer(path, service) as server:
        yield server, service
