"""The controller's side of the proxy API: ``SpliceService`` on top of the orchestrator.

The proxy API server (controller/proxyapi/) does transport, authentication and liveness; this
module decides. A proxy registers its switch port and MAC (used for packet-outs toward it),
asks for splices, reads its flows, and leaves or dies. On death, a flow is spliced rather than
reset only when the controller can vouch that nothing is buffered in the proxy for it:

* the proxy's heartbeat said so (``quiescent``: per flow its counts a_c, b_s, a_s, b_c, sent only
  for flows whose sockets have no unread and no unacknowledged bytes), twice in a row with the
  same counts, and
* the packet counters of the flow's C->P and S->P entries have not moved since the first of those
  heartbeats. The proxy relays only what it received, so no new packet toward it means nothing new
  buffered in it. (Two reports, because a packet may cross the switch between the proxy's look at
  its sockets and the controller's counter read; the second report would have seen it.)
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .frames import mac_bytes
from .orchestrator import Orchestrator
from .portwatch import PortWatch
from .proxyapi.protocol import ApiError, Flow
from .proxyapi.service import Deltas, FlowInfo
from .splice import Direction, NotifyProxy, SpliceCounts
from .splice.model import EntryMatch, FlowKey
from .splice.splice import FIN_NOT_PASSED_ON, FlowState

__all__ = ["ControllerService", "ProxyRecord"]

log = logging.getLogger(__name__)

# How long a report waits for the copy of a FIN the proxy passed on: the proxy reports once its FIN
# is acknowledged, but the switch's copy of it comes by the P4Runtime stream, which may lag the
# proxy's socket under load.
RELAYED_FIN_WAIT = 0.5


@dataclass(slots=True)
class _Quiet:
    counts: SpliceCounts
    baseline: dict[EntryMatch, tuple[int, int]]
    confirmed: bool = False


@dataclass(slots=True)
class ProxyRecord:
    name: str
    port: int
    mac: str
    quiet: dict[FlowKey, _Quiet] = field(default_factory=dict)
    dark: bool = False  # its switch port stopped answering: registered, out of service
    ports_failed: bool = False  # ... for long enough that its flows were failed


def flow_key(flow: Flow | FlowKey | Mapping[str, Any]) -> FlowKey:
    if isinstance(flow, FlowKey):
        return flow
    if isinstance(flow, Mapping):
        flow = Flow.from_json(flow)
    return FlowKey(**dataclasses.asdict(flow))


class ControllerService:
    """Implements ``proxyapi.service.SpliceService``."""

    def __init__(self, orch: Orchestrator, portwatch: PortWatch | None = None) -> None:
        self.orch = orch
        self.proxies: dict[str, ProxyRecord] = {}
        self.portwatch = portwatch  # probes the ports of proxies that give their address

    # --- registration and liveness ----------------------------------------------------------------

    async def register(self, proxy: str, port: int, mac: str, heartbeat_ms: int, ip: str | None = None) -> int:
        for other in self.proxies.values():
            if other.port == port and other.name != proxy:
                raise ApiError("conflict", f"port {port} is registered to proxy {other.name}")
        old = self.proxies.get(proxy)
        if old is not None and old.port != port:
            raise ApiError("conflict", f"proxy {proxy} is registered on port {old.port}; say bye first")
        rec = old or ProxyRecord(proxy, port, mac)
        rec.mac = mac
        self.proxies[proxy] = rec
        if not rec.dark:
            fresh = self.orch.proxy_macs.get(port) != mac_bytes(mac)
            self.orch.proxy_macs[port] = mac_bytes(mac)
            if fresh:
                await self.orch.proxy_changed(port)
        if self.portwatch is not None and ip is not None and old is None:
            self.portwatch.watch(proxy, port, mac, ip)
        log.info("proxy %s on port %d (%s%s) registered", proxy, port, mac, f", {ip}" if ip else "")
        return heartbeat_ms

    async def heartbeat(self, proxy: str, quiescent: Sequence[Mapping[str, Any]] | None = None) -> None:
        rec = self._rec(proxy)
        if quiescent is None:
            return
        reported: dict[FlowKey, SpliceCounts] = {}
        for item in quiescent:
            try:
                key = flow_key(item["flow"])
                reported[key] = SpliceCounts(item["a_c"], item["b_s"], item["a_s"], item["b_c"])
            except (KeyError, TypeError, ValueError) as e:
                raise ApiError("bad_request", f"quiescent: {e}") from None
        fresh: list[FlowKey] = []
        for key, counts in reported.items():
            q = rec.quiet.get(key)
            if q is not None and q.counts == counts:
                q.confirmed = True
            else:
                fresh.append(key)
        # A flow left out is not quiescent any more.
        for key in list(rec.quiet):
            if key not in reported:
                del rec.quiet[key]
        if fresh:
            baselines = await self._toward_proxy_counters(fresh)
            for key in fresh:
                if key in baselines:
                    rec.quiet[key] = _Quiet(reported[key], baselines[key])

    async def _toward_proxy_counters(self, flows: Sequence[FlowKey]) -> dict[FlowKey, dict[EntryMatch, tuple[int, int]]]:
        wanted: dict[FlowKey, list[EntryMatch]] = {}
        for key in flows:
            fl = self.orch.core.flows.get(key)
            if fl is None or fl.state not in (FlowState.PROXIED, FlowState.HOLDING):
                continue
            wanted[key] = [fl.legs[d].match for d in (Direction.C_TO_P, Direction.S_TO_P) if d in fl.legs]
        if not wanted:
            return {}
        read = await self.orch.counters([m for ms in wanted.values() for m in ms])
        return {k: {m: read[m] for m in ms if m in read} for k, ms in wanted.items() if all(m in read for m in ms)}

    async def bye(self, proxy: str) -> None:
        await self._down(proxy, "said bye")

    async def proxy_dead(self, proxy: str) -> None:
        await self._down(proxy, "missed its heartbeats")

    async def port_silent(self, proxy: str) -> None:
        """The proxy's switch port has not answered the controller's probes for a while
        (portwatch.py): it stays registered but out of service (no new connection is steered to
        it) until :meth:`port_up`; its flows are left alone, as a switch slowed by a flood delays
        the answers as much as a dead link loses them."""
        rec = self.proxies.get(proxy)
        if rec is None or rec.dark:
            return
        rec.dark = True
        if self._out_of_service(rec):
            await self.orch.proxy_changed(rec.port)

    async def port_down(self, proxy: str) -> None:
        """The port stayed silent: the proxy's flows are handled as on its death; it stays out
        of service until :meth:`port_up`."""
        rec = self.proxies.get(proxy)
        if rec is None or rec.ports_failed:
            return
        await self.port_silent(proxy)
        rec.ports_failed = True
        await self._fail_flows(rec, "stopped answering on its switch port", "proxy_port_down")

    async def port_up(self, proxy: str) -> None:
        """The dark port answers again: the proxy is back in service for new connections."""
        rec = self.proxies.get(proxy)
        if rec is None or not rec.dark:
            return
        rec.dark = rec.ports_failed = False
        self.orch.proxy_macs[rec.port] = mac_bytes(rec.mac)
        await self.orch.proxy_changed(rec.port)
        log.info("proxy %s on port %d back in service", proxy, rec.port)

    async def _down(self, proxy: str, why: str, failure: str = "proxy_down") -> None:
        if self.portwatch is not None:
            self.portwatch.unwatch(proxy)
        rec = self.proxies.pop(proxy, None)
        if rec is None:
            return
        if self._out_of_service(rec):
            await self.orch.proxy_changed(rec.port)
        if rec.ports_failed and not self.orch.flows_of_port(rec.port):
            log.info("proxy %s on port %d %s (its port was dark: its flows were handled then)", proxy, rec.port, why)
            return
        await self._fail_flows(rec, why, failure)

    def _out_of_service(self, rec: ProxyRecord) -> bool:
        """No proxy serves ``rec``'s port any more: True when that changed now."""
        if self.orch.proxy_macs.get(rec.port) is not None and not any(
                p.port == rec.port and not p.dark for p in self.proxies.values() if p is not rec):
            del self.orch.proxy_macs[rec.port]
            return True
        return False

    async def _fail_flows(self, rec: ProxyRecord, why: str, failure: str) -> None:
        """The proxy's flows on its failure: the ones it vouched for spliced, the rest reset."""
        vouched: dict[FlowKey, SpliceCounts] = {}
        confirmed = [k for k, q in rec.quiet.items() if q.confirmed]
        if confirmed:
            try:
                now = await self._toward_proxy_counters(confirmed)
            except Exception as e:  # the switch away: vouch for nothing
                log.warning("proxy %s down: cannot read counters (%s): resetting its flows", rec.name, e)
                now = {}
            for key in confirmed:
                q = rec.quiet[key]
                if now.get(key) is not None and all(now[key].get(m, (-1,))[0] == v[0] for m, v in q.baseline.items()):
                    vouched[key] = q.counts
        rec.quiet.clear()
        log.warning("proxy %s on port %d %s: %d of its flows quiescent", rec.name, rec.port, why, len(vouched))
        self.orch.metrics.failures.labels(failure).inc()
        before = self.orch.core.flows.stats["fail_open_spliced"]
        await self.orch.run(self.orch.core.on_proxy_down(rec.port, vouched))
        n = self.orch.core.flows.stats["fail_open_spliced"] - before
        if n:
            self.orch.metrics.splices.labels("fail_open").inc(n)

    def _rec(self, proxy: str) -> ProxyRecord:
        rec = self.proxies.get(proxy)
        if rec is None:
            raise ApiError("not_registered", f"proxy {proxy} is not registered")
        return rec

    def _owned(self, proxy: str, flow: Flow | FlowKey) -> tuple[ProxyRecord, FlowKey]:
        rec = self._rec(proxy)
        key = flow_key(flow)
        if self.orch._flow_proxy_port(key) != rec.port or not self.orch._core_knows(key):
            raise ApiError("not_found", f"proxy {proxy} has no flow {key}")
        return rec, key

    # --- splices ----------------------------------------------------------------------------------

    async def splice_prepare(self, proxy: str, flow: Flow) -> None:
        rec, key = self._rec(proxy), flow_key(flow)
        if not self.orch._core_knows(key) and self.orch.from_switch(key, rec.port):
            # The switch made the proxy's legs; its digest of the last step may still be on its way.
            await self.orch.handshake_settled(key, max(self.orch.config.hold_timeout, 1.0), expected=True)
        _, key = self._owned(proxy, flow)
        # The proxy's upstream leg is up for it as soon as its ACK leaves, but the flow exists here
        # only once that ACK's entries are written: a policy that decides at once (after a few
        # bytes) asks in between. Wait for the handshake to finish rather than refuse.
        await self.orch.handshake_settled(key, max(self.orch.config.hold_timeout, 1.0))
        await self.request_splice(key)

    async def request_splice(self, key: FlowKey) -> None:
        """Hold the flow (payload toward the proxy dropped); raises ApiError if the core refuses."""
        cmds = self.orch.core.request_splice(key)
        await self.orch.run(cmds)
        _raise_unless(cmds, "holding")

    async def splice(self, proxy: str, flow: Flow, a_c: int, b_s: int, a_s: int, b_c: int) -> Deltas:
        _, key = self._owned(proxy, flow)
        counts = SpliceCounts(a_c, b_s, a_s, b_c)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + RELAYED_FIN_WAIT
        while True:
            cmds = self.orch.core.proxy_report(key, counts)
            waiting = any(isinstance(c, NotifyProxy) and c.detail == FIN_NOT_PASSED_ON for c in cmds)
            if not waiting or loop.time() >= deadline:
                break
            await asyncio.sleep(0.005)  # the pace of the re-checks while that copy is on its way
        await self.orch.run(cmds)
        _raise_unless(cmds, "spliced", lambda: self._state(key))
        return Deltas.from_counts(a_c, b_s, a_s, b_c)

    async def splice_cancel(self, proxy: str, flow: Flow) -> None:
        """The proxy gives up the splice it prepared: the hold entries become translations again."""
        _, key = self._owned(proxy, flow)
        cmds = self.orch.core.cancel_splice(key)
        await self.orch.run(cmds)
        _raise_unless(cmds, "proxied", lambda: self._state(key))

    def _state(self, key: FlowKey) -> str | None:
        """The flow's state for a refusal's ``state`` field, which spares the proxy asking."""
        fl = self.orch.core.flows.get(key)
        return fl.state.value if fl is not None else None

    # --- queries ----------------------------------------------------------------------------------

    async def flow(self, proxy: str, flow: Flow) -> FlowInfo:
        _, key = self._owned(proxy, flow)
        return self.orch.flow_info(key, await self.orch.flow_counters(key))

    async def flows(self, proxy: str) -> Sequence[FlowInfo]:
        rec = self._rec(proxy)
        return [self.orch.flow_info(k) for k in self.orch.flows_of_port(rec.port)]


def _raise_unless(cmds: Sequence[Any], wanted: str, state_of: Callable[[], str | None] | None = None) -> None:
    """An ApiError unless the core answered ``wanted``; a conflict names the flow's state
    (``state_of`` is asked only then)."""
    notes = [c for c in cmds if isinstance(c, NotifyProxy)]
    if any(n.status == wanted for n in notes):
        return
    detail = next((n.detail for n in notes if n.detail), "refused")
    code = "not_found" if detail == "unknown flow" else "conflict"
    state = state_of() if state_of is not None and code == "conflict" else None
    raise ApiError(code, detail, **({"state": state} if state is not None else {}))
