"""The orchestrator tests' set-up on a ``Lab``: a daemon, with or without a registered proxy, that
closes when the test's ``async with`` ends (also when the test fails), and a flow of claim 1 made
and waited for in the daemon. Plain helpers, imported by the test modules; the ``lab`` fixture
stays in conftest.py."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from p4splice.controller.daemon import Daemon
from p4splice.controller.proxyapi import Event, ProxyApiClient
from p4splice.controller.splice.splice import FlowState

from tests.controller.test_orchestrator_support import P_MAC, P_PORT, Isns, Lab, flow_key, handshake, poll

U32 = 0xFFFFFFFF


@asynccontextmanager
async def running(lab: Lab, **changes: Any) -> AsyncIterator[Daemon]:
    """A started daemon (``changes`` to its config, as ``Lab.daemon``), closed at the end."""
    d = lab.daemon(**changes)
    await d.start()
    try:
        yield d
    finally:
        await d.close()


@asynccontextmanager
async def proxied(lab: Lab, heartbeat_ms: int = 200, *,
                  on_event: Callable[[Event], Awaitable[None] | None] | None = None,
                  **changes: Any) -> AsyncIterator[tuple[Daemon, ProxyApiClient]]:
    """A started daemon and the proxy "proxy-1" registered with it on port 3; at the end the proxy
    disconnects (no bye), then the daemon closes."""
    async with running(lab, **changes) as d:
        proxy = ProxyApiClient(d.config.proxy_socket, "proxy-1", on_event=on_event)
        await proxy.connect()
        await proxy.register(P_PORT, P_MAC, heartbeat_ms=heartbeat_ms)
        try:
            yield d, proxy
        finally:
            await proxy.close()


async def flow_in(d: Daemon, sport: int) -> None:
    """Wait until the daemon holds the flow from client port ``sport`` and its entries are written."""
    await poll(lambda: d.orch.core.flows.get(flow_key(sport)) is not None, what="flow established")
    await d.orch.drain()


async def flow_out(d: Daemon, sport: int, what: str = "flow removed") -> None:
    """Wait until the daemon has dropped the flow from client port ``sport`` and written its deletes."""
    await poll(lambda: flow_key(sport) not in d.orch.core.flows, what=what)
    await d.orch.drain()


async def established(lab: Lab, d: Daemon, sport: int, i: Isns | None = None) -> Isns:
    """Claim 1's handshake from client port ``sport`` (the test plays C, S and P), through to the
    flow's entries; returns the ISNs and timestamps it used."""
    i = i or Isns()
    await handshake(lab, sport, i)
    await flow_in(d, sport)
    return i


def state(d: Daemon, sport: int) -> FlowState | None:
    """The state of the flow from client port ``sport``, None when the daemon has no such flow."""
    fl = d.orch.core.flows.get(flow_key(sport))
    return fl.state if fl is not None else None
