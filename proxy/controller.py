"""The proxy's link to the controller: connect, hello, register, let the client keep the
heartbeats, and come back after the controller restarts or the connection drops -- quickly
enough (within the three-interval deadline) that the controller keeps this proxy's flows.

While the link is down, ``api`` is None and the proxy simply keeps proxying: a splice is an
optimisation, never a requirement.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from p4splice.controller.proxyapi import ApiError, Event, ProxyApiClient

from .config import ProxyConfig
from .metrics import Metrics

__all__ = ["ControllerLink"]

log = logging.getLogger("p4splice.proxy.controller")

# Refusals that another attempt will not cure; the link keeps trying, slowly, and says so.
_PERMANENT = ("unauthorized", "unsupported_version", "bad_request", "conflict")


class ControllerLink:
    def __init__(self, config: ProxyConfig, metrics: Metrics,
                 on_event: Callable[[Event], Awaitable[None] | None] | None = None,
                 request_timeout: float = 5.0,
                 quiescent: Callable[[], list[dict[str, Any]] | None] | None = None) -> None:
        assert config.controller is not None
        self.path = config.controller
        self.config = config
        self.metrics = metrics
        self.on_event = on_event
        self.request_timeout = request_timeout
        # Called before each heartbeat: the flows the proxy holds nothing of, with their counts,
        # so that the controller can splice them rather than reset them if this process dies.
        self.quiescent = quiescent
        self.api: ProxyApiClient | None = None  # set while connected and registered
        self.registered = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="controller link")

    @property
    def _retry_max(self) -> float:
        # Well inside the three intervals after which the controller gives the flows up.
        return max(0.1, self.config.heartbeat_ms / 1000 / 2)

    async def _run(self) -> None:
        delay = 0.1
        warned = False
        while not self._closing:
            client = ProxyApiClient(self.path, self.config.name, on_event=self._event, timeout=self.request_timeout)
            client.quiescent = self.quiescent
            try:
                await client.connect()
                granted = await self._register(client)
                log.info("registered with %s as %s (port %d, heartbeat %d ms)", client.controller,
                         self.config.name, self.config.switch_port, granted)
                self.api = client
                self.registered.set()
                self.metrics.add("controller_connects")
                self.metrics.set("controller_connected", 1)
                delay, warned = 0.1, False
                await self._supervise(client)
            except ApiError as exc:
                level = logging.ERROR if exc.code in _PERMANENT else logging.WARNING
                log.log(level, "controller at %s refused %s: %s", self.path, self.config.name, exc)
            except (OSError, ConnectionError, TimeoutError) as exc:
                if not warned:
                    log.warning("controller at %s unreachable (%s); proxying without splices meanwhile",
                                self.path, exc)
                    warned = True
            finally:
                self.api = None
                self.registered.clear()
                self.metrics.set("controller_connected", 0)
                await client.close()
            if self._closing:
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._retry_max)

    async def _register(self, client: ProxyApiClient) -> int:
        cfg = self.config
        return await client.register(cfg.switch_port, cfg.mac, cfg.heartbeat_ms, ip=cfg.address)

    async def _supervise(self, client: ProxyApiClient) -> None:
        # The client sends the heartbeats; this only notices when they stop (connection lost,
        # or the controller declared us dead and heartbeats are refused) and registers again.
        tick = self.config.heartbeat_ms / 1000 / 2
        while True:
            await asyncio.sleep(tick)
            if self._closing:
                continue  # close() is saying bye on this client; it cancels us afterwards
            if not client.connected:
                log.warning("lost the controller connection; reconnecting")
                return
            if not client.registered:
                log.warning("the controller no longer has %s registered; registering again", self.config.name)
                await self._register(client)

    async def _event(self, event: Event) -> None:
        if event.name == "heartbeat_missed":
            log.warning("controller: heartbeat missed; declared dead at %s ms", event.fields.get("deadline_ms"))
        elif event.name == "port_down":
            log.warning("controller: switch port %s is dark; no new connections until it answers again",
                        event.fields.get("port"))
        elif event.name == "port_up":
            log.info("controller: switch port %s answers again; back in service", event.fields.get("port"))
        if self.on_event is not None:
            outcome = self.on_event(event)
            if outcome is not None:
                await outcome

    async def close(self, bye: bool = True) -> None:
        """Stop the link; with ``bye`` the controller takes this proxy's remaining flows over."""
        self._closing = True
        api = self.api
        if api is not None and bye:
            try:
                await api.bye()
                log.info("said bye to the controller")
            except (ApiError, ConnectionError, TimeoutError, OSError) as exc:
                log.warning("bye to the controller failed: %s", exc)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
