"""One proxied connection: the client's socket, the upstream socket, and a pump per direction.

Each pump owns one fixed buffer and reads again only when everything it read has been written,
so a slow receiver stops the reads (backpressure) and a connection never holds more than two
buffers plus what its policy may hold of a request head. The pumps count payload bytes: what
they received and what they sent, per direction -- the four numbers of the splice.

A pump waits with :func:`~.sockets.wait_readable` / :func:`~.sockets.wait_writable` and then
does one non-blocking call, so cancelling it never loses a byte it took from the kernel. That is
what lets :meth:`Connection.quiesce` stop both pumps at a quiet moment and take exact counts,
and :meth:`Connection.resume` start them again when the controller refuses.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from p4splice.controller.proxyapi import Flow

from .metrics import Metrics
from .policy import Stage
from .sockets import abort, close_gracefully, unacked, unread, wait_readable, wait_writable

__all__ = ["Connection", "Counts", "DrainTimeout", "Pump"]

log = logging.getLogger("p4splice.proxy.relay")

# How often quiesce() looks at the socket queues; the splice waits on ACKs that take about an
# RTT, so a few milliseconds keeps it prompt without spinning.
QUIESCE_POLL_S = 0.002
QUIESCE_POLL_MAX_S = 0.02


@dataclass(frozen=True)
class Counts:
    """Payload bytes since the handshake: a_c from the client, b_s to the server, a_s from the
    server, b_c to the client."""

    a_c: int
    b_s: int
    a_s: int
    b_c: int


class DrainTimeout(TimeoutError):
    """The sockets did not become quiet before the deadline."""


class Pump:
    """One direction: reads ``src`` into a fixed buffer, passes it through ``stage`` (client to
    server only) and writes it to ``dst``."""

    def __init__(self, name: str, src: socket.socket, dst: socket.socket, buffer_bytes: int,
                 metrics: Metrics, stage: Stage | None = None,
                 on_read: Callable[[], None] | None = None) -> None:
        self.name = name
        self.src = src
        self.dst = dst
        self.buf = bytearray(buffer_bytes)
        self.view = memoryview(self.buf)
        self.pending = memoryview(b"")  # read but not yet written (in buf or from the stage)
        self.received = 0
        self.sent = 0
        self.eof = False  # src said FIN
        self.shut = False  # and dst was told
        self.stage = stage
        self.metrics = metrics
        self.on_read = on_read
        self.most_held = 0

    @property
    def held(self) -> int:
        """Bytes read from ``src`` that have not been written to ``dst``."""
        return len(self.pending) + (self.stage.held if self.stage else 0)

    def _read(self) -> bool:
        """One non-blocking read; False when there was nothing to read."""
        size = len(self.buf)
        if self.stage is not None and (limit := self.stage.read_limit()) is not None:
            size = min(size, limit)
        try:
            n = self.src.recv_into(self.buf, size)
        except (BlockingIOError, InterruptedError):
            return False
        if n == 0:
            self.eof = True
            self.pending = memoryview(self.stage.flush("client closed") if self.stage else b"")
            return True
        self.received += n
        data = self.view[:n]
        out = self.stage.feed(data) if self.stage is not None else data
        self.pending = out if isinstance(out, memoryview) else memoryview(out)
        self.most_held = max(self.most_held, self.held)
        if self.on_read is not None:
            self.on_read()
        return True

    def _write(self) -> bool:
        """Non-blocking writes of what is pending; False when the socket would block."""
        while self.pending:
            try:
                n = self.dst.send(self.pending)
            except (BlockingIOError, InterruptedError):
                return False
            self.sent += n
            self.metrics.add(f"bytes_{self.name}", n)
            self.pending = self.pending[n:]
        return True

    async def run(self) -> None:
        """Relay until ``src`` ends (then pass the FIN on). Resumable: all state is in self."""
        while True:
            while not self._write():
                await wait_writable(self.dst)
            if self.eof:
                if not self.shut:
                    self.shut = True
                    with contextlib.suppress(OSError):  # the peer may be gone already
                        self.dst.shutdown(socket.SHUT_WR)
                return
            if self._read():
                continue
            deadline = self.stage.hold_deadline if self.stage is not None else None
            if deadline is None:
                await wait_readable(self.src)
                continue
            try:
                await asyncio.wait_for(wait_readable(self.src), max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                assert self.stage is not None
                self.pending = memoryview(self.stage.flush("timeout"))
                if self.on_read is not None:
                    self.on_read()

    def quiet(self) -> bool:
        """Nothing held here, nothing unread in ``src``, nothing unacknowledged in ``dst``."""
        if self.held:
            return False
        if not self.eof and unread(self.src):
            return False
        return unacked(self.dst) == 0


class Connection:
    """A client's connection through the proxy; ``run()`` relays it until it ends or is spliced."""

    def __init__(self, client: socket.socket, flow: Flow, service: str, buffer_bytes: int,
                 metrics: Metrics) -> None:
        self.client = client
        self.upstream: socket.socket | None = None
        self.flow = flow
        self.service = service
        self.buffer_bytes = buffer_bytes
        self.metrics = metrics
        self.state = "connecting"  # relaying, splicing, spliced, closed, aborted
        self.c2s: Pump | None = None
        self.s2c: Pump | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.splice_wanted = asyncio.Event()  # the policy wants the splice (tried once)
        self.splice_ordered = asyncio.Event()  # the controller asked for it (splice_requested)
        self.splice_counts: Counts | None = None
        self.task: asyncio.Task[None] | None = None  # the task that runs this connection

    # --- set-up -----------------------------------------------------------------------------

    def attach(self, upstream: socket.socket, stage: Stage) -> None:
        """Wire the pumps once the upstream leg is connected."""
        self.upstream = upstream
        self.c2s = Pump("c2s", self.client, upstream, self.buffer_bytes, self.metrics, stage, self._check_stage)
        self.s2c = Pump("s2c", upstream, self.client, self.buffer_bytes, self.metrics)
        self.state = "relaying"
        self._check_stage()

    def _check_stage(self) -> None:
        assert self.c2s is not None and self.c2s.stage is not None
        if self.c2s.stage.wants_splice and not self.splice_wanted.is_set():
            self.splice_wanted.set()
            if self.c2s.stage.request is not None:
                self.metrics.add("requests_inspected")
        self.metrics.high_water("buffered_bytes_max", self.held)

    @property
    def held(self) -> int:
        return sum(p.held for p in (self.c2s, self.s2c) if p is not None)

    @property
    def most_held(self) -> int:
        return sum(p.most_held for p in (self.c2s, self.s2c) if p is not None)

    def counts(self) -> Counts:
        assert self.c2s is not None and self.s2c is not None
        return Counts(self.c2s.received, self.c2s.sent, self.s2c.received, self.s2c.sent)

    def quiescent_counts(self) -> Counts | None:
        """The counts, if the proxy holds nothing of this connection at this instant: both pumps
        empty, and on both sockets nothing unread and nothing unacknowledged. Four ioctls, no
        waiting: cheap enough to ask of every connection on every heartbeat. None otherwise, and
        for a half-closed connection, whose FIN took sequence space the counts cannot describe."""
        if self.state not in ("relaying", "splicing") or self.c2s is None or self.s2c is None:
            return None
        if self.upstream is None or self.c2s.eof or self.s2c.eof or self.c2s.held or self.s2c.held:
            return None
        try:
            for sock in (self.client, self.upstream):
                if unread(sock) or unacked(sock):
                    return None
        except OSError:  # closed under us: not a connection to vouch for
            return None
        return self.counts()

    # --- pumps ------------------------------------------------------------------------------

    def start(self) -> None:
        assert self.c2s is not None and self.s2c is not None
        self._tasks = [asyncio.get_running_loop().create_task(p.run(), name=f"{self.flow} {p.name}")
                       for p in (self.c2s, self.s2c)]

    resume = start  # after a refused splice the pumps carry on where they stopped

    @property
    def tasks(self) -> list[asyncio.Task[None]]:
        return self._tasks

    async def stop(self) -> None:
        """Cancel the pumps (safe at any time: they only ever wait for readiness)."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def failed(self) -> BaseException | None:
        for task in self._tasks:
            if task.done() and not task.cancelled() and task.exception() is not None:
                return task.exception()
        return None

    async def quiesce(self, timeout: float, settle: float) -> Counts:
        """Let the pumps forward what they hold and wait until, for ``settle`` seconds, neither
        socket has unread or unacknowledged bytes; then stop the pumps and return the counts.
        Raises DrainTimeout (the pumps keep running) or the error that ended a pump."""
        assert self.c2s is not None and self.s2c is not None
        deadline = time.monotonic() + timeout
        # the counts (and whether each side had said FIN) when the sockets were last found quiet
        quiet_at: tuple[Counts, bool, bool] | None = None
        poll = QUIESCE_POLL_S
        while True:
            error = self.failed()
            if error is not None:
                raise error
            now = time.monotonic()
            if self.c2s.quiet() and self.s2c.quiet():
                counts = self.counts()
                seen = (counts, self.c2s.eof, self.s2c.eof)
                if seen == quiet_at:
                    # Quiet at both ends of the settle time, and the pumps moved no byte and no
                    # FIN in between (they would have counted it): quiet throughout. No await
                    # between the last look and the snapshot; cancelling the pumps reads nothing.
                    await self.stop()
                    return counts
                quiet_at = seen
                await asyncio.sleep(settle)
                continue
            quiet_at = None
            if now >= deadline:
                raise DrainTimeout(
                    f"not quiet after {timeout:g}s: held c2s={self.c2s.held} s2c={self.s2c.held}, "
                    f"unacked to server={_safe(unacked, self.c2s.dst)} to client={_safe(unacked, self.s2c.dst)}, "
                    f"unread from client={_safe(unread, self.c2s.src)} from server={_safe(unread, self.s2c.src)}"
                )
            await asyncio.sleep(poll)
            # An ACK the drain waits for can take a delayed-ACK timer (tens of ms) or a
            # retransmission: look less often the longer it takes, up to QUIESCE_POLL_MAX_S.
            poll = min(poll * 1.5, QUIESCE_POLL_MAX_S)

    # --- endings ----------------------------------------------------------------------------

    def close(self) -> None:
        """Both directions ended: an orderly close."""
        for sock in (self.client, self.upstream):
            if sock is not None:
                close_gracefully(sock)
        self.state = "closed"

    async def abort(self) -> None:
        """Reset both sockets (errors, shutdown) -- or, after a splice, drop them: the switch
        discards whatever they send from now on."""
        # The pumps must be gone before the sockets close: a waiting pump still has its file
        # descriptor registered with the loop, and the number may be reused at once.
        await self.stop()
        for sock in (self.client, self.upstream):
            if sock is not None:
                abort(sock)
        if self.state != "spliced":
            self.state = "aborted"


def _safe(fn: Callable[[socket.socket], int], sock: socket.socket) -> str:
    try:
        return str(fn(sock))
    except OSError:
        return "?"
