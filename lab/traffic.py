"""Traffic for the lab: an asyncio server in the server namespaces and clients in the client
namespaces, plain kernel TCP sockets on both sides, with the sha256 and length of every byte each
side sent and received, so that a test or the demo can say "byte-exact" or "not".

Protocols (one exchange per connection; the server closes after its answer, then the client):

* HTTP: the client sends ``POST /xfer HTTP/1.1`` with ``Content-Length: U`` and ``X-Download: D``
  and U body bytes; the server reads the body, answers ``200`` with ``Content-Length: D`` and D
  bytes.
* banner (server-first): the server greets with one line; the client sends ``XFER U D\\r\\n`` and
  U bytes; the server answers ``200 U D\\r\\n`` and D bytes.

Payloads are a seeded pseudo-random stream, generated in chunks on the fly so that 100 MB cost no
memory: the sender hashes what it writes, the receiver what it reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
import socket
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field

from . import netdev
from .topology import Host, Service

__all__ = ["ClientResult", "ServerRecord", "TrafficServer", "chunks", "close_writer", "transfer"]

log = logging.getLogger("p4splice.lab.traffic")

CHUNK = 64 * 1024
BANNER = b"220 p4splice lab server ready\r\n"
CLOSE_TIMEOUT = 5.0  # seconds a closing socket may take to flush before it is aborted


def chunks(size: int, seed: int) -> Iterator[bytes]:
    """``size`` bytes of the stream of ``seed``, in CHUNK pieces."""
    rng = random.Random(seed)
    left = size
    while left > 0:
        n = min(CHUNK, left)
        yield rng.randbytes(n)
        left -= n


def _seed(upload: int, download: int, port: int, direction: str) -> int:
    # Different connections send different bytes: a stream mixed up with another's would not match.
    return zlib.crc32(f"{upload}/{download}/{port}/{direction}".encode())


@dataclass
class ServerRecord:
    """What the server saw on one connection (keyed by the client's address and port)."""

    peer: tuple[str, int]
    server_port: int
    head: bytes = b""
    received: int = 0
    received_sha: str = ""
    sent: int = 0
    sent_sha: str = ""
    error: str = ""
    done: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class ClientResult:
    local: tuple[str, int]
    server: tuple[str, int]
    upload: int
    download: int
    sent: int = 0
    sent_sha: str = ""
    received: int = 0
    received_sha: str = ""
    response_head: bytes = b""
    error: str = ""
    started: float = 0.0  # time.monotonic()
    first_byte: float = 0.0
    finished: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.error and self.received == self.download and self.sent == self.upload


def socket_in(netns: str) -> socket.socket:
    """A TCP socket of ``netns`` (a socket keeps the namespace it was created in)."""
    with netdev.netns_socket(netns):
        return socket.socket(socket.AF_INET, socket.SOCK_STREAM)


class TrafficServer:
    """Listens on every service port of every server host; ``records`` by (client ip, port), the
    latest connection of each, and ``history``: every connection, in order (a client's kernel may
    use a port again within a batch, once its earlier connection is closed)."""

    def __init__(self, hosts: list[Host], services: tuple[Service, ...] | list[Service], backlog: int = 4096) -> None:
        self.hosts = hosts
        self.services = list(services)
        self.backlog = backlog
        self.records: dict[tuple[str, int], ServerRecord] = {}
        self.history: list[ServerRecord] = []
        self._servers: list[asyncio.Server] = []

    async def __aenter__(self) -> TrafficServer:
        for host in self.hosts:
            for svc in self.services:
                sock = socket_in(host.netns)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((host.ip, svc.port))
                sock.listen(self.backlog)
                sock.setblocking(False)
                handler = self._banner if svc.banner else self._http
                self._servers.append(await asyncio.start_server(
                    lambda r, w, h=handler, p=svc.port: self._serve(h, p, r, w), sock=sock, limit=1 << 16,
                    backlog=self.backlog))  # start_server listen()s again, with 100 unless told
        return self

    async def __aexit__(self, *exc: object) -> None:
        for server in self._servers:
            server.close()
        for server in self._servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 5)

    def record(self, result: ClientResult) -> ServerRecord | None:
        return self.records.get(result.local)

    def clear(self) -> None:
        self.records.clear()
        self.history.clear()

    async def _serve(self, handler, port: int, reader: asyncio.StreamReader,  # type: ignore[no-untyped-def]
                     writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        rec = self.records[(peer[0], peer[1])] = ServerRecord((peer[0], peer[1]), port)
        self.history.append(rec)
        try:
            await handler(rec, reader, writer)
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            rec.error = f"{type(exc).__name__}: {exc}"
        finally:
            await close_writer(writer)
            rec.done.set()

    async def _receive(self, rec: ServerRecord, reader: asyncio.StreamReader, size: int) -> None:
        digest = hashlib.sha256()
        while rec.received < size:
            data = await reader.read(min(CHUNK, size - rec.received))
            if not data:
                raise ConnectionError(f"the client closed after {rec.received} of {size} bytes")
            digest.update(data)
            rec.received += len(data)
        rec.received_sha = digest.hexdigest()

    async def _send(self, rec: ServerRecord, writer: asyncio.StreamWriter, size: int, seed: int) -> None:
        digest = hashlib.sha256()
        for chunk in chunks(size, seed):
            writer.write(chunk)
            digest.update(chunk)
            rec.sent += len(chunk)
            await writer.drain()
        rec.sent_sha = digest.hexdigest()

    async def _finish(self, writer: asyncio.StreamWriter, reader: asyncio.StreamReader) -> None:
        writer.write_eof()
        await writer.drain()
        while await reader.read(CHUNK):  # until the client closes too
            pass

    async def _http(self, rec: ServerRecord, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        rec.head = await reader.readuntil(b"\r\n\r\n")
        fields = _fields(rec.head)
        upload, download = int(fields.get("content-length", "0")), int(fields.get("x-download", "0"))
        await self._receive(rec, reader, upload)
        writer.write(f"HTTP/1.1 200 OK\r\nContent-Length: {download}\r\nConnection: close\r\n\r\n".encode())
        await self._send(rec, writer, download, _seed(upload, download, rec.peer[1], "down"))
        await self._finish(writer, reader)

    async def _banner(self, rec: ServerRecord, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(BANNER)
        await writer.drain()
        rec.head = await reader.readuntil(b"\r\n")
        _, upload, download = rec.head.split()
        await self._receive(rec, reader, int(upload))
        writer.write(b"200 %d %d\r\n" % (int(upload), int(download)))
        await self._send(rec, writer, int(download), _seed(int(upload), int(download), rec.peer[1], "down"))
        await self._finish(writer, reader)


def _fields(head: bytes) -> dict[str, str]:
    out = {}
    for line in head.decode("latin-1").split("\r\n")[1:]:
        name, sep, value = line.partition(":")
        if sep:
            out[name.strip().lower()] = value.strip()
    return out


async def transfer(client: Host, server: Host, service: Service, upload: int = 0, download: int = 0,
                   timeout: float = 120.0, on_connect: asyncio.Event | None = None,
                   local_port: int | None = None) -> ClientResult:
    """One connection from ``client`` to ``server``'s ``service``: send ``upload`` bytes, receive
    ``download``; from ``local_port`` if given (else the kernel's choice). Never raises for the
    network: failures are in ``result.error``."""
    loop = asyncio.get_running_loop()
    result = ClientResult(("", 0), (server.ip, service.port), upload, download, started=time.monotonic())
    sock = socket_in(client.netns)
    sock.setblocking(False)
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(timeout):
            if local_port is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((client.ip, local_port))
            await loop.sock_connect(sock, (server.ip, service.port))
            result.local = sock.getsockname()
            reader, writer = await asyncio.open_connection(sock=sock, limit=1 << 16)
            if on_connect is not None:
                on_connect.set()
            if service.banner:
                greeting = await reader.readuntil(b"\r\n")
                result.first_byte = time.monotonic()
                if greeting != BANNER:
                    raise ValueError(f"unexpected banner {greeting!r}")
                writer.write(b"XFER %d %d\r\n" % (upload, download))
            else:
                writer.write(f"POST /xfer HTTP/1.1\r\nHost: {server.ip}\r\nUser-Agent: p4splice-lab\r\n"
                             f"Content-Length: {upload}\r\nX-Download: {download}\r\n\r\n".encode())
            sender = loop.create_task(_upload(writer, result, upload, _seed(upload, download, result.local[1], "up")))
            try:
                result.response_head = await reader.readuntil(b"\r\n" if service.banner else b"\r\n\r\n")
                if not result.first_byte:
                    result.first_byte = time.monotonic()
                digest = hashlib.sha256()
                while True:
                    data = await reader.read(CHUNK)
                    if not data:
                        break
                    digest.update(data)
                    result.received += len(data)
                result.received_sha = digest.hexdigest()
                await sender
            finally:
                sender.cancel()
    except (OSError, asyncio.IncompleteReadError, ValueError, TimeoutError) as exc:
        result.error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    finally:
        result.finished = time.monotonic()
        if writer is not None:
            await close_writer(writer)
        else:
            sock.close()
    return result


async def close_writer(writer: asyncio.StreamWriter, timeout: float = CLOSE_TIMEOUT) -> None:
    """Close ``writer``, waiting at most ``timeout`` for its unsent bytes to leave; then abort
    (RST). A connection whose path is cut (the cable pulled, the proxy gone) never drains, and an
    unbounded wait would hang the test or the demo that closes it, cancelled or not."""
    writer.close()
    try:
        async with asyncio.timeout(timeout):
            await writer.wait_closed()
    except (OSError, TimeoutError):
        writer.transport.abort()
    except asyncio.CancelledError:
        writer.transport.abort()
        raise


async def _upload(writer: asyncio.StreamWriter, result: ClientResult, size: int, seed: int) -> None:
    digest = hashlib.sha256()
    for chunk in chunks(size, seed):
        writer.write(chunk)
        digest.update(chunk)
        result.sent += len(chunk)
        await writer.drain()
    await writer.drain()
    result.sent_sha = digest.hexdigest()


def expected_download_sha(result: ClientResult) -> str:
    """The sha256 the server's stream for this connection has (also for a server that failed)."""
    digest = hashlib.sha256()
    for chunk in chunks(result.download, _seed(result.upload, result.download, result.local[1], "down")):
        digest.update(chunk)
    return digest.hexdigest()
