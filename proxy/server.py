"""The proxy server: a transparent listener per service, the connection limit, each connection's
life (upstream leg from the client's address, relay, splice when the policy asks) and shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import time
from typing import Any

from p4splice.controller.proxyapi import MAX_LINE, Event, Flow

from .config import ProxyConfig, ServiceConfig
from .controller import ControllerLink
from .metrics import Metrics, start_prometheus
from .policy import make_stage
from .relay import Connection
from .sockets import abort, reset_if_we_die, transparent_listener, transparent_upstream
from .splice import Outcome, Splicer

__all__ = ["ProxyServer"]

log = logging.getLogger("p4splice.proxy.server")

# The encoded size of one quiescent item is this plus its two endpoint strings and four numbers
# (and a comma): computed, not json-encoded, to keep a heartbeat of 1,000 flows cheap.
_QUIET_ITEM_BYTES = len(json.dumps({"flow": {"client": "", "server": ""}, "a_c": 0, "b_s": 0, "a_s": 0, "b_c": 0},
                                   separators=(",", ":"))) - 4 + 1
# What the heartbeat request around the list takes, generously.
_HEARTBEAT_ENVELOPE = 256


class ProxyServer:
    """``await start()``, then ``await close()`` (or ``async with``)."""

    def __init__(self, config: ProxyConfig, metrics: Metrics | None = None) -> None:
        self.config = config
        self.metrics = metrics or Metrics()
        self.link = ControllerLink(config, self.metrics, on_event=self._on_event,
                                   quiescent=self.quiescent_report) if config.controller else None
        self.splicer = Splicer(self.link, config.limits, self.metrics)
        self.connections: dict[Flow, Connection] = {}
        self.listeners: dict[str, socket.socket] = {}
        self._slots = asyncio.Semaphore(config.limits.max_connections)
        self._accepting: list[asyncio.Task[None]] = []
        self._running: set[asyncio.Task[None]] = set()
        self._metrics_task: asyncio.Task[None] | None = None
        self._closed = asyncio.Event()
        self._closing = False
        self._background: set[asyncio.Task[Any]] = set()
        self._quiet_truncated = False

    async def __aenter__(self) -> ProxyServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- start ------------------------------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            for service in self.config.services:
                self.listeners[service.name] = transparent_listener(service.host, service.port)
        except OSError:
            for sock in self.listeners.values():
                sock.close()
            raise
        for service in self.config.services:
            self._accepting.append(loop.create_task(self._accept_loop(service, self.listeners[service.name]),
                                                    name=f"accept {service.name}"))
            log.info("service %s on %s:%d, policy %s", service.name, service.host, service.port, service.policy)
        if self.link is not None:
            self.link.start()
        if self.config.metrics_port is not None:
            start_prometheus(self.metrics, self.config.metrics_port)
        if self.config.metrics_interval_s > 0:
            self._metrics_task = loop.create_task(self._log_metrics(self.config.metrics_interval_s))

    async def wait_closed(self) -> None:
        await self._closed.wait()

    # --- connections ------------------------------------------------------------------------

    async def _accept_loop(self, service: ServiceConfig, listener: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if self._slots.locked():
                # The kernel's backlog keeps the next legs waiting; nothing is refused.
                log.warning("connection limit (%d) reached; accepting again when one ends",
                            self.config.limits.max_connections)
            await self._slots.acquire()
            try:
                sock, _ = await loop.sock_accept(listener)
            except BaseException:
                self._slots.release()
                raise
            reset_if_we_die(sock)
            task = loop.create_task(self._serve(service, sock))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _serve(self, service: ServiceConfig, sock: socket.socket) -> None:
        self.metrics.add("connections_accepted")
        self.metrics.add("connections_active")
        conn: Connection | None = None
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            client = sock.getpeername()
            server = sock.getsockname()  # the real server: the leg was addressed to it
            flow = Flow(client[0], client[1], server[0], server[1])
            conn = Connection(sock, flow, service.name, self.config.limits.buffer_bytes, self.metrics)
            conn.task = asyncio.current_task()
            self.connections[flow] = conn
            await self._relay(service, conn)
        except Exception:
            log.exception("connection on %s failed", service.name)
        finally:
            # Also on cancellation (shutdown): reset what is still open.
            if conn is None:
                abort(sock)
            elif conn.state not in ("closed", "spliced", "aborted"):
                await conn.abort()
            if conn is not None:
                if conn.state == "aborted":
                    self.metrics.add("connections_aborted")
                self.connections.pop(conn.flow, None)
            self.metrics.add("connections_closed")
            self.metrics.add("connections_active", -1)
            self._slots.release()

    async def _relay(self, service: ServiceConfig, conn: Connection) -> None:
        limits = self.config.limits
        flow = conn.flow
        loop = asyncio.get_running_loop()
        try:
            upstream = transparent_upstream((flow.client_ip, flow.client_port))
        except OSError as exc:
            self.metrics.add("upstream_failures")
            log.warning("%s: cannot bind the upstream socket to the client's address: %s", flow, exc)
            await conn.abort()
            return
        try:
            await asyncio.wait_for(loop.sock_connect(upstream, (flow.server_ip, flow.server_port)),
                                   limits.connect_timeout_s)
            upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (OSError, TimeoutError) as exc:
            self.metrics.add("upstream_failures")
            log.warning("%s: upstream connection failed: %s", flow, exc or "timeout")
            abort(upstream)
            await conn.abort()  # the client sees the server's refusal as a reset
            return
        except BaseException:
            abort(upstream)
            raise
        stage = make_stage(service, str(flow), limits.max_header_bytes, limits.head_timeout_s)
        conn.attach(upstream, stage)
        conn.start()
        log.debug("%s: relaying (%s)", flow, service.policy)
        tried = False  # the policy's splice is tried once; each splice_requested gets a try of its own
        while True:
            waiting: set[asyncio.Future[object]] = {t for t in conn.tasks if not t.done()}  # type: ignore[misc]
            if not waiting:
                break
            triggers: list[asyncio.Task[object]] = []
            if self.link is not None and not self._closing:
                triggers.append(loop.create_task(conn.splice_ordered.wait()))  # type: ignore[arg-type]
                if not tried:
                    triggers.append(loop.create_task(conn.splice_wanted.wait()))  # type: ignore[arg-type]
            try:
                await asyncio.wait(waiting | set(triggers), return_when=asyncio.FIRST_COMPLETED)
            finally:
                for trigger in triggers:
                    trigger.cancel()
            if (error := conn.failed()) is not None:
                log.info("%s: %s; resetting both ends", flow, error)
                await conn.abort()
                return
            ordered = conn.splice_ordered.is_set()
            if triggers and (ordered or (not tried and conn.splice_wanted.is_set())):
                # One attempt answers both the policy and an order that came meanwhile.
                tried = True
                conn.splice_ordered.clear()
                if ordered:
                    log.info("%s: the controller asks for the splice (policy %s)", flow, service.policy)
                try:
                    outcome = await self.splicer.splice(conn)
                except OSError as exc:  # a pump failed while the sockets drained
                    log.info("%s: %s during the splice; resetting both ends", flow, exc)
                    await conn.abort()
                    return
                if outcome is Outcome.SPLICED:
                    return
        conn.close()
        log.debug("%s: closed (c2s %d/%d, s2c %d/%d)", flow, *_pairs(conn))

    # --- controller events ------------------------------------------------------------------

    async def _on_event(self, event: Event) -> None:
        flow = event.flow
        conn = self.connections.get(flow) if flow is not None else None
        if event.name == "flow_reset" and conn is not None and conn.state != "spliced":
            log.info("%s: reset by the controller (%s)", flow, event.fields.get("reason"))
            self._cancel(conn)
        elif event.name == "flow_closed":
            log.debug("%s: closed at the switch", flow)
        elif event.name == "splice_requested" and flow is not None:
            self._splice_requested(flow, conn)

    def _splice_requested(self, flow: Flow, conn: Connection | None) -> None:
        """The controller (an operator's ``splicectl splice``) holds the flow and wants it spliced,
        whatever the service's policy: the connection's task runs the usual sequence."""
        self.metrics.add("splices_ordered")
        if conn is not None and conn.state in ("connecting", "relaying", "splicing"):
            # A splice already under way answers it (splice_prepare is idempotent); otherwise the
            # relay loop starts one as soon as it sees the event.
            conn.splice_ordered.set()
            return
        # Nothing here to drain: give the hold back at once rather than leave the flow stalled
        # until the controller's hold timeout. Not awaited: this runs in the client's reader,
        # which must stay free to read the reply.
        log.warning("%s: splice requested for a connection the proxy does not have (%s); cancelling",
                    flow, conn.state if conn is not None else "unknown")
        task = asyncio.get_running_loop().create_task(self._cancel_unknown(flow))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _cancel_unknown(self, flow: Flow) -> None:
        api = self.link.api if self.link is not None else None
        if api is None:
            return
        try:
            await api.splice_cancel(flow)
        except Exception as exc:  # conflict (not holding), not_found, the controller gone: all moot
            log.info("%s: splice_cancel: %s", flow, exc)

    def quiescent_report(self) -> list[dict[str, Any]]:
        """For the heartbeat: each connection the proxy holds nothing of right now, with its
        counts (docs/proxy-api.md, quiescent). Should this process die, the controller splices
        these instead of resetting them. Oldest connections first, and as many as fit in one
        request line: the same ones each time, since the controller needs two equal reports."""
        report: list[dict[str, Any]] = []
        budget = MAX_LINE - _HEARTBEAT_ENVELOPE
        for conn in self.connections.values():
            counts = conn.quiescent_counts()
            if counts is None:
                continue
            flow = conn.flow
            size = (_QUIET_ITEM_BYTES + len(flow.client) + len(flow.server) + len(str(counts.a_c))
                    + len(str(counts.b_s)) + len(str(counts.a_s)) + len(str(counts.b_c)))
            budget -= size
            if budget < 0:
                if not self._quiet_truncated:
                    self._quiet_truncated = True
                    log.warning("quiescent report cut at %d flows (request line limit); the others "
                                "would be reset if this proxy died", len(report))
                break
            report.append({"flow": flow, "a_c": counts.a_c, "b_s": counts.b_s, "a_s": counts.a_s,
                           "b_c": counts.b_c})
        return report

    def abort_flow(self, flow: Flow) -> bool:
        """Reset one connection (both ends); False when there is no such connection."""
        conn = self.connections.get(flow)
        if conn is None:
            return False
        self._cancel(conn)
        return True

    def _cancel(self, conn: Connection) -> None:
        # The connection's own task does the reset, in _serve's finally, so that its ending is
        # handled (and counted) in one place.
        if conn.task is not None:
            conn.task.cancel()

    # --- shutdown ---------------------------------------------------------------------------

    async def close(self, grace: float | None = None) -> None:
        """Stop accepting; give splices in progress and open connections ``grace`` seconds
        (limits.shutdown_grace_s) to finish; say bye (the controller takes the rest over);
        then reset whatever is left."""
        if self._closing:
            await self._closed.wait()
            return
        self._closing = True
        grace = self.config.limits.shutdown_grace_s if grace is None else grace
        for task in self._accepting:
            task.cancel()
        await asyncio.gather(*self._accepting, return_exceptions=True)
        for sock in self.listeners.values():
            sock.close()
        log.info("listeners closed; %d connection(s) open", len(self._running))
        deadline = time.monotonic() + grace
        if self._running:
            await asyncio.wait(set(self._running), timeout=max(0.0, deadline - time.monotonic()))
        if self.link is not None:
            await self.link.close(bye=True)
        left = list(self._running)
        if left:
            log.info("resetting %d connection(s) still open", len(left))
            for task in left:
                task.cancel()
            await asyncio.gather(*left, return_exceptions=True)
        if self._metrics_task is not None:
            self._metrics_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._metrics_task
        self.metrics.log()
        self._closed.set()

    async def _log_metrics(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            self.metrics.log()


def _pairs(conn: Connection) -> tuple[int, int, int, int]:
    c = conn.counts()
    return c.a_c, c.b_s, c.a_s, c.b_c
