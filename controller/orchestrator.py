"""The controller's engine: packet-ins, idle notifications and timers in, the splice core's commands out.

One ``Orchestrator`` drives one switch. It turns what the switch reports into the core's events
(controller/splice/), and carries out the commands the core returns -- flows-table writes,
packet-outs, timers, proxy notices -- in order. It also keeps the two things the core does not:

* the **entry mirror**: every flows entry the controller has installed, by match. It decides
  INSERT or MODIFY, is what a restarted switch gets back, and is rebuilt from the switch's table
  when the controller itself restarts (restore.py);
* **L2 facts** per flow: each party's port and MAC and the switch MAC it talks to, learnt from
  the handshake frames it captured, for packet-outs and for the translate/hold actions' MACs.

Ordering: commands of one event are carried out in order, with consecutive table writes batched
into one Write RPC that completes before the next packet-out (so a released segment meets its new
entry). Events of the same flow are carried out in the order the core saw them; different flows
run concurrently, so one slow write does not hold up every other connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import ipaddress
import logging
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from google.rpc import code_pb2

from . import dataplane as dp
from .config import AUTO_DIGEST_BATCH, ControllerConfig
from .digestbatch import DigestBatcher
from .frames import FrameError, ParsedFrame, build_frame, checksum_error, mac_bytes, parse_frame, route_frame
from .lograte import RateLimitedLog
from .metrics import Metrics
from .overload import OverloadGuard, Verdict
from .p4rt import codec
from .p4rt.coalesce import WriteCoalescer
from .p4rt.entities import (
    CounterData,
    DigestEntry,
    DigestList,
    DirectCounterEntry,
    Entity,
    IdleTimeoutNotification,
    PacketIn,
    TableEntry,
    Update,
    UpdateType,
)
from .p4rt.errors import ClientError, P4RuntimeRpcError, ReadError, WriteError
from .p4rt.p4info import P4InfoLookupError
from .p4rt.session import SwitchSession
from .splice import (
    CancelTimer,
    Command,
    Direction,
    FlowEstablished,
    HandshakeConfig,
    InstallDrop,
    InstallLeg,
    InstallPunt,
    LegParams,
    NotifyProxy,
    ReleaseHeld,
    RemoveEntries,
    RemoveFlow,
    ResetFlow,
    SendSegment,
    SpliceConfig,
    SpliceCore,
    StartTimer,
    SwitchState,
    SwitchStep,
    TimerKey,
    fin_reported,
)
from .splice.model import EntryMatch, FlowKey, SegmentIn, Side
from .splice.options import OptionError

__all__ = ["Orchestrator", "FlowL2", "PartyL2", "entry_match_of"]

log = logging.getLogger(__name__)

R = dp.PacketInReason
# entries whose counters one idle poll reads (FLOWS_IDLE_TIMEOUT=0): a few RPCs' worth
IDLE_POLL_BATCH = 1000
# flows entries of one pending handshake at most (its punts, before the client's ACK)
ENTRIES_PER_PENDING = 3
# at most one "write refused" error line per this many seconds (a flood would write thousands)
ERROR_LOG_INTERVAL = 5.0
_NS = 1_000_000_000
# destinations whose route _route remembers at most
_ROUTE_CACHE = 4096
# Commands that submit() carries out itself (timers, metrics): a list of only these needs no task.
_DONE_AT_SUBMIT = (StartTimer, CancelTimer, FlowEstablished)
# Which party a leg's entry sends to.
_TARGET = {
    Direction.C_TO_P: Side.PROXY, Direction.S_TO_P: Side.PROXY,
    Direction.P_TO_C: Side.CLIENT, Direction.S_TO_C: Side.CLIENT,
    Direction.P_TO_S: Side.SERVER, Direction.C_TO_S: Side.SERVER,
}


@dataclass(slots=True)
class PartyL2:
    """What the controller learnt about one party's link: where it is and which MACs it uses."""

    port: int | None = None
    mac: bytes | None = None  # the party's own MAC
    switch_mac: bytes | None = None  # the switch MAC the party sends to


@dataclass(slots=True)
class FlowL2:
    client: PartyL2 = field(default_factory=PartyL2)
    server: PartyL2 = field(default_factory=PartyL2)
    proxy: PartyL2 = field(default_factory=PartyL2)

    def party(self, side: Side) -> PartyL2:
        return {Side.CLIENT: self.client, Side.SERVER: self.server, Side.PROXY: self.proxy}[side]


class _Installed:
    """One flows entry the controller put on the switch (the entry mirror).

    The entry is kept as the arguments that build it (``args``: those of its kind's function in
    dataplane.py, the idle timeout last), not as a TableEntry: that is some eight objects the
    garbage collector tracks, four entries a flow, walked over again by every collection for as
    long as the flow lives (a proxied flow's state went from 60 tracked objects to 31).
    ``entry`` builds it again."""

    __slots__ = ("flow", "kind", "_entry", "_args")

    def __init__(self, flow: FlowKey, entry: TableEntry | None, kind: str, args: tuple[Any, ...] = ()) -> None:
        if entry is None and not args:
            raise ValueError(f"a mirrored {kind} entry needs the entry or the arguments that build it")
        self.flow, self.kind, self._entry, self._args = flow, kind, entry, args

    @property
    def entry(self) -> TableEntry:
        if self._entry is not None:
            return self._entry
        return dp.FlowsEntry(self.kind, self._args).table_entry()

    @property
    def idle_timeout_ns(self) -> int:
        return self._entry.idle_timeout_ns if self._entry is not None else self._args[-1]


SERVICE_COUNT_PERIOD = 0.5  # seconds between reads of the services' counters while draining


def entry_match_of(entry: TableEntry) -> EntryMatch:
    """The core's ``EntryMatch`` of a flows entry (as read back or notified)."""
    m = {k: v.value if hasattr(v, "value") else v for k, v in entry.match.items()}
    return EntryMatch(int(m.get("ingress_port", 0)), codec.format_ipv4(int(m.get("src_addr", 0))),
                      int(m.get("src_port", 0)), codec.format_ipv4(int(m.get("dst_addr", 0))),
                      int(m.get("dst_port", 0)))


ProxyEvent = Callable[[int, str, dict[str, Any]], None]  # (proxy port, event, fields)


class Orchestrator:
    """Runs the splice core against one switch session. Start with :meth:`attach` once the session
    has a pipeline; :meth:`close` cancels timers and waits for work in progress."""

    def __init__(self, session: SwitchSession, config: ControllerConfig, metrics: Metrics | None = None,
                 core: SpliceCore | None = None) -> None:
        self.sw = session
        # Writes of unrelated flows that meet while an RPC is out share the next one: fewer RPCs
        # under load, no added latency for a lone write (controller/p4rt/coalesce.py).
        self.writer = WriteCoalescer(lambda updates: self.sw.write(updates), max_in_flight=2)
        self.config = config
        self.metrics = metrics or Metrics()
        self.core = core or SpliceCore(
            HandshakeConfig(max_pending=config.max_pending, syn_timeout=config.syn_timeout,
                            ack_timeout=config.ack_timeout, upstream_timeout=config.upstream_timeout,
                            proxy_ack_timeout=config.proxy_ack_timeout, proxy_rto=config.proxy_rto,
                            reset_linger=config.reset_linger, fail_open=config.fail_open,
                            slot_lifetime=dp.HS_TIMEOUT),
            SpliceConfig(hold_timeout=config.hold_timeout, linger=config.linger,
                         reset_linger=config.reset_linger, held_per_flow=config.held_per_flow,
                         held_total=config.held_total,
                         # The switch's idle notification is the primary signal; this is the backstop.
                         idle_timeout=max(config.idle_timeout * 4, 3600.0) if config.idle_timeout else 7200.0),
        )
        self.services: dict[tuple[str, int], int] = config.service_map()
        self.routes = sorted(config.routes, key=lambda r: -r.prefix.prefixlen)
        self._routes_of: dict[str, tuple[int, bytes, bytes] | None] = {}  # _route's answers
        self._switch_mac = mac_bytes(config.switch_mac) if config.switch_mac else bytes(6)
        self.proxy_macs: dict[int, bytes] = {}  # registered proxies: port -> MAC
        self.on_proxy_event: ProxyEvent | None = None
        # ROUTED packet-ins (the to_cpu route: replies to the port probes) go to on_routed, and
        # every packet-in's ingress port to on_port_alive: a port that delivers frames is up
        # (portwatch.py).
        self.on_routed: Callable[[int, bytes], object] | None = None
        self.on_port_alive: Callable[[int], object] | None = None
        self.l2: dict[FlowKey, FlowL2] = {}
        self.entries: dict[EntryMatch, _Installed] = {}
        self.flow_entries: dict[FlowKey, set[EntryMatch]] = {}
        self._idle_seen: dict[FlowKey, set[EntryMatch]] = {}
        self._confirming: set[FlowKey] = set()  # flows whose idle reports are being checked
        # Whether the switch ages flows entries (the program's flows table has support_timeout);
        # where it does not (FLOWS_IDLE_TIMEOUT=0), idle flows are found by polling counters.
        self.entries_age = True
        self._idle_poller: asyncio.Task[None] | None = None
        self._last_hit: dict[EntryMatch, tuple[int, float]] = {}  # packets, when they last moved
        self._last_read: dict[EntryMatch, float] = {}  # when the poll last read the entry
        # per-packet and per-flow lines: a few per kind and 5 s, the rest counted (lograte.py)
        self._lines = RateLimitedLog(log, ERROR_LOG_INTERVAL)
        self._errors = RateLimitedLog(log, ERROR_LOG_INTERVAL, burst=1)
        # falling behind the switch's digests sets the services draining (overload.py)
        self.overload = OverloadGuard(lag_high=config.overload_lag, lag_low=config.overload_lag / 5,
                                      evictions_high=config.overload_evictions) \
            if config.overload_lag > 0 else None
        self._drain_watch: asyncio.Task[None] | None = None
        # digest_batch "auto": lists of the switch's handshake digests as long as their rate
        # fills at once (digestbatch.py); a number: always that many
        self.digest_batcher = DigestBatcher(max_size=AUTO_DIGEST_BATCH) if config.digest_batch == "auto" else None
        self._batch_watch: asyncio.TimerHandle | None = None
        self._digest_sync: asyncio.Task[None] | None = None
        self._timers: dict[TimerKey, asyncio.TimerHandle] = {}
        self._timer_context = contextvars.Context()
        self._digest_counters: dict[SwitchState, Any] = {}  # the digests metric's child per state
        self._tails: dict[FlowKey, asyncio.Future[None]] = {}
        # handshake_settled() callers: woken by the command list that ends the handshake
        self._settling: dict[FlowKey, list[asyncio.Future[None]]] = {}
        self._expected: set[FlowKey] = set()  # awaited flows the switch is making (handshake_settled)
        self._tasks: set[asyncio.Task[Any]] = set()
        self.stats: Counter[str] = Counter()
        self._attached = False
        self.metrics.watch_flows(self.flow_states)
        self.metrics.watch_held(lambda: self.core.flows.stats)

    # --- wiring -----------------------------------------------------------------------------------

    def attach(self) -> None:
        """Start taking packet-ins and idle notifications from the session (or, where the
        switch's flows entries do not age, polling their counters)."""
        if not self._attached:
            self.sw.add_handler("packet_in", self.on_packet_in)
            self.sw.add_handler("idle_timeout", self.on_idle_notification)
            self.sw.add_handler("digest", self.on_digest_list)
            self._attached = True
            self.entries_age = not self.sw.has_index or self.sw.index.table(dp.FLOWS).supports_idle_timeout
            self._bound_pending()
            if not self.entries_age and self.config.idle_timeout > 0:
                log.info("the flows table does not age entries: idle flows are found by their counters, "
                         "read every %.1f s", self.idle_poll_interval)
                self._idle_poller = asyncio.get_running_loop().create_task(self._poll_idle())

    async def close(self) -> None:
        if self._idle_poller is not None:
            self._idle_poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._idle_poller
            self._idle_poller = None
        if self._attached:
            self.sw.remove_handler("packet_in", self.on_packet_in)
            self.sw.remove_handler("idle_timeout", self.on_idle_notification)
            self.sw.remove_handler("digest", self.on_digest_list)
            self._attached = False
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        if self._batch_watch is not None:
            self._batch_watch.cancel()
            self._batch_watch = None
        await self.drain(timeout=2.0)
        for task in list(self._tasks):
            task.cancel()

    def _handshake_settled(self, flow: FlowKey) -> bool:
        return flow in self.core.flows or (self.core.handshakes.get(flow) is None and flow not in self._expected)

    async def handshake_settled(self, flow: FlowKey, timeout: float, *, expected: bool = False) -> None:
        """Wait (at most ``timeout``) until ``flow`` is no longer a pending handshake: established,
        or given up. ``expected``: a flow not known yet is one whose digests are on their way (the
        switch ran its handshake, and its proxy already speaks of it)."""
        if expected and flow not in self.core.flows and self.core.handshakes.get(flow) is None:
            self._expected.add(flow)
        if self._handshake_settled(flow):
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._settling.setdefault(flow, []).append(fut)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(fut, timeout)
        finally:
            self._expected.discard(flow)
            waiters = self._settling.get(flow)
            if waiters is not None:
                if fut in waiters:
                    waiters.remove(fut)
                if not waiters:
                    del self._settling[flow]

    def _wake_settled(self) -> None:
        for flow, waiters in list(self._settling.items()):
            if self._handshake_settled(flow):
                for fut in waiters:
                    if not fut.done():
                        fut.set_result(None)

    async def drain(self, timeout: float | None = None) -> None:
        """Wait until every submitted command list has been carried out."""
        while self._tasks:
            done, _ = await asyncio.wait(list(self._tasks), timeout=timeout)
            if not done:
                return

    # --- who runs the handshakes -------------------------------------------------------------------

    @property
    def switch_handshakes(self) -> bool:
        """Whether the switch runs the handshakes of services whose proxy is in service: so
        configured, and the program has the means (docs/dataplane.md)."""
        if self.config.handshakes != "switch" or not self.sw.has_index:
            return False
        try:
            self.sw.index.actions.get(dp.PROXIED_INLINE)
            self.sw.index.digests.get(dp.HANDSHAKE_DIGEST)
        except P4InfoLookupError:
            return False
        return True

    @property
    def _hold_kind(self) -> str:
        """The action of a splice's hold entries: hold_acking where the switch is to pass held
        segments' ACKs itself (held_segments = "switch") and the program has it, else hold."""
        if self.config.held_segments == "switch" and self.sw.has_index and dp.HOLD_ACKING in self.sw.index.actions:
            return "hold_acking"
        return "hold"

    def service_setup(self) -> list[Entity]:
        """The services entries, each as its proxy's presence says, with what the switch's
        handshakes need: their digest turned on and a clone session per proxy port."""
        out: list[Entity] = []
        if self.overload is not None:
            self.overload.reset()
        if self.digest_batcher is not None:
            self.digest_batcher.reset()
        out += self._digest_entries()
        if self.switch_handshakes:
            out += [dp.proxy_clone_session(p) for p in sorted(set(self.services.values()))]
        out += [self._service_entry(addr, port, proxy) for (addr, port), proxy in self.services.items()]
        return out

    @property
    def fin_reports(self) -> bool:
        """Whether the program reports the FINs its flows entries forward in fin_t digests (older
        builds copy each FIN to the controller as a packet-in)."""
        return self.sw.has_index and dp.FIN_DIGEST in self.sw.index.digests

    def _digest_entries(self) -> list[DigestEntry]:
        """The digests the controller takes, both in lists of the size the batcher asks for: one
        by one while they come slowly, so that each arrives at once (BMv2 holds a partial list
        some 180 ms; a splice waits at most 0.5 s for the FIN its proxy passed on), many while
        they come fast."""
        size = self.digest_batcher.size if self.digest_batcher is not None else int(self.config.digest_batch)
        delay = int(self.config.digest_delay * _NS)
        out = [dp.handshake_digest(size, delay)] if self.switch_handshakes else []
        if self.fin_reports:
            out.append(dp.fin_digest(size, delay))
        return out

    def _batch_changed(self, size: int | None) -> None:
        """The batcher asks for lists of ``size`` (None: no change): tell the switch, and while
        lists are longer than one, look now and then whether digests stopped coming."""
        batcher = self.digest_batcher
        if batcher is None:
            return
        if size is not None:
            self.stats["digest_batch_changes"] += 1
            log.debug("handshake digests: lists of up to %d (%.0f digests/s)", size, batcher.rate)
            if self._digest_sync is None or self._digest_sync.done():
                self._digest_sync = self._spawn(self._sync_digest_entry())
        if batcher.size > 1 and self._batch_watch is None:
            self._batch_watch = asyncio.get_running_loop().call_later(batcher.period, self._batch_check)

    async def _sync_digest_entry(self) -> None:
        """Write the digest entry until the switch has the size the batcher last asked for (one
        writer at a time: two MODIFYs in flight could land in either order)."""
        assert self.digest_batcher is not None
        while True:
            size = self.digest_batcher.size
            await self._flush([Update(UpdateType.MODIFY, e) for e in self._digest_entries()])
            if self.digest_batcher.size == size:
                return

    def _batch_check(self) -> None:
        self._batch_watch = None
        if self.digest_batcher is not None and self._attached:
            self._batch_changed(self.digest_batcher.check(time.monotonic()))

    def _service_entry(self, server_ip: str, server_port: int, proxy_port: int) -> TableEntry:
        mac = self.proxy_macs.get(proxy_port)
        if mac is not None and self.switch_handshakes:
            smac = mac_bytes(self.config.switch_mac) if self.config.switch_mac else bytes(6)
            return dp.service_inline(server_ip, server_port, proxy_port, int.from_bytes(smac, "big"),
                                     int.from_bytes(mac, "big"), draining=self.draining)
        draining = self.draining and self.sw.has_index and dp.PROXIED_DRAINING in self.sw.index.actions
        return dp.service(server_ip, server_port, proxy_port, draining=draining)

    def from_switch(self, flow: FlowKey, proxy_port: int) -> bool:
        """Whether ``flow`` is one the switch makes for the proxy on ``proxy_port`` (the controller
        hears of it from digests, possibly after the proxy does)."""
        return (self.switch_handshakes and proxy_port in self.proxy_macs
                and self.services.get((flow.server_ip, flow.server_port)) == proxy_port)

    async def proxy_changed(self, proxy_port: int) -> None:
        """A proxy came into or went out of service on ``proxy_port``: its services' entries say
        again who runs their handshakes (the switch needs the proxy's MAC; without a proxy the
        controller's path lets connections run end to end)."""
        if not self.switch_handshakes:
            return
        await self._flush([Update(UpdateType.MODIFY, self._service_entry(addr, port, proxy))
                           for (addr, port), proxy in self.services.items() if proxy == proxy_port])

    @property
    def draining(self) -> bool:
        """Whether the services take no new connection: the controller is too far behind the
        switch's digests (overload.py)."""
        return self.overload is not None and self.overload.draining

    def _overload(self, verdict: Verdict | None) -> None:
        if verdict is None or self.overload is None:
            return
        if verdict is Verdict.DRAIN:
            self.metrics.failures.labels("overload").inc()
            log.warning("%.1f s behind the switch's digests, %.0f pending handshakes evicted a second: new "
                        "connections run unproxied for %.0f s at least (drain %d)", self.overload.lag,
                        self.overload.eviction_rate, self.overload.hold, self.overload.episodes)
            if self._drain_watch is None or self._drain_watch.done():
                self._drain_watch = self._spawn(self._watch_drain())
        else:
            log.warning("services take new connections again")
        self._spawn(self._flush([Update(UpdateType.MODIFY, self._service_entry(addr, port, proxy))
                                 for (addr, port), proxy in self.services.items() if proxy in self.proxy_macs]))

    async def _watch_drain(self) -> None:
        """While draining: no digest list may come to end it, so look now and then; and read what
        the services' entries take, which tells whether a flood goes on (overload.py)."""
        guard = self.overload
        read_at = 0.0
        while guard is not None and guard.draining:
            now = time.monotonic()
            if now >= read_at:
                read_at = now + SERVICE_COUNT_PERIOD
                total = await self.service_packets()
                if total is not None:
                    guard.on_service_packets(total, time.monotonic())
            self._overload(guard.check(time.monotonic()))
            await asyncio.sleep(guard.lag_low / 2)  # a polling period, not a readiness wait

    async def service_packets(self) -> int | None:
        """The packets the services' entries have taken so far, summed over their direct counters;
        None where the program counts none (or the switch cannot be read)."""
        if not self.sw.has_index or self.sw.index.direct_counter_of(dp.SERVICES) is None or not self.services:
            return None
        total = 0

        def collect(ent: Entity) -> None:
            nonlocal total
            if isinstance(ent, DirectCounterEntry) and ent.data is not None:
                total += ent.data.packet_count

        try:
            await self._read_each([DirectCounterEntry(dp.service_key(a, p)) for a, p in self.services], collect)
        except ClientError as e:
            log.debug("services' counters: %s", e)
            return None
        return total

    def on_digest_list(self, digests: DigestList) -> None:
        if digests.digest not in (dp.HANDSHAKE_DIGEST, dp.FIN_DIGEST):
            return
        if self.digest_batcher is not None:  # both kinds come in lists of the size it picks
            self._batch_changed(self.digest_batcher.on_digests(len(digests.data), time.monotonic(),
                                                               digests.timestamp_ns, time.time_ns()))
        if digests.digest == dp.FIN_DIGEST:
            self._on_fins(digests)
            return
        if self.overload is not None:
            self._overload(self.overload.on_digest_list(digests.timestamp_ns, time.time_ns(), time.monotonic()))
        lists: list[list[Command]] = []
        counters = self._digest_counters
        for data in digests.data:
            step = SwitchStep.from_digest(data) if isinstance(data, dict) else None
            if step is None:
                self.stats["digest_not_taken"] += 1
                continue
            counter = counters.get(step.state)
            if counter is None:
                counter = counters[step.state] = self.metrics.digests.labels(step.state.name)
            counter.inc()
            try:
                lists.append(self.core.on_switch_step(step))
            except Exception:  # one digest the core cannot take must not cost the rest of its list
                self.metrics.failures.labels("internal").inc()
                log.exception("%s: digest %s not taken", step.flow, step.state.name)
        self.submit_all(lists)
        if self.overload is not None:
            self._overload(self.overload.on_evictions(self.core.handshakes.stats["evicted"], time.monotonic()))

    def _on_fins(self, digests: DigestList) -> None:
        """FINs the flows entries forwarded: to the core as the copies older programs sent."""
        proxies = self.proxy_ports()
        lists: list[list[Command]] = []
        for data in digests.data:
            ev = fin_reported(data, proxies) if isinstance(data, dict) else None
            if ev is None:
                self.stats["digest_not_taken"] += 1
                continue
            self.metrics.fins_reported.inc()
            try:
                lists.append(self.core.on_segment(ev))
            except Exception:  # as for the handshake's digests: not at the cost of the rest of the list
                self.metrics.failures.labels("internal").inc()
                log.exception("%s: FIN report not taken", ev.segment)
        self.submit_all(lists)

    def proxy_ports(self) -> set[int]:
        return set(self.services.values()) | set(self.proxy_macs)

    def flow_states(self) -> dict[str, int]:
        """Flows by state, for metrics and status: handshakes pending plus established flows."""
        out: Counter[str] = Counter()
        out["handshake"] = len(self.core.handshakes)
        out.update(self.core.flows.by_state())
        return dict(out)

    # --- events from the switch -------------------------------------------------------------------

    def on_packet_in(self, packet: PacketIn) -> None:
        try:
            pin = dp.SplicePacketIn.decode(packet)
        except ValueError as e:
            self._lines(logging.WARNING, "no metadata", "packet-in without the splice program's metadata: %s", e)
            return
        reason = pin.reason
        if self.on_port_alive is not None:
            self.on_port_alive(pin.ingress_port)
        name = reason.name if isinstance(reason, R) else str(reason)
        self.metrics.packet_ins.labels(name).inc()
        if not isinstance(reason, R):
            self._lines(logging.WARNING, "unknown reason", "packet-in with unknown reason %s ignored", reason)
            return
        if reason is R.ROUTED:
            if self.on_routed is not None:
                self.on_routed(pin.ingress_port, pin.frame)
            return
        try:
            parsed = parse_frame(pin.frame)
        except (OptionError, FrameError) as e:
            # Not taken on: options the core is stricter about than the data plane, which drops
            # malformed ones before any table (a duplicate MSS, say), or not a segment the
            # controller takes (the first fragment of an IPv4 packet). Not proxied; a SYN the switch
            # handed over as its only instance must still reach the server, as a router sends it.
            self.metrics.failures.labels("bad_options" if isinstance(e, OptionError) else "bad_frame").inc()
            self._lines(logging.INFO, "unparsed", "packet-in %s on port %d: %s: not proxied", name, pin.ingress_port, e)
            if reason is R.SYN and not pin.is_copy:
                self._spawn(self._route_as_is(pin.frame))
            return
        bad = checksum_error(pin.frame)
        if bad is not None:
            # Dropped, counted, nothing learnt from it; never rebuilt (fresh checksums would make
            # it valid) nor sent on: its receiver would drop it anyway, and its sender retransmits.
            self.stats["bad_checksum"] += 1
            self.metrics.failures.labels("bad_checksum").inc()
            self._lines(logging.INFO, "bad checksum", "packet-in %s on port %d: %s checksum wrong: dropped", name,
                        pin.ingress_port, bad)
            return
        seg = parsed.segment
        if (reason is R.SYN and self.draining and not pin.is_copy and seg.is_syn and not seg.has_ack
                and not self._core_knows(FlowKey.from_client_segment(seg))):
            # A new connection's SYN the switch handed over before the services drained, taken
            # from the backlog while they are: it runs end to end as the switch now routes such
            # SYNs itself (its retransmissions too), rather than start a handshake behind the
            # flood's. A flood's own queued SYNs then cost a packet-out each, no entries.
            self.stats["syn_drained"] += 1
            self.metrics.handshakes.labels("drained").inc()
            self._spawn(self._route_as_is(pin.frame))
            return
        self.handle_segment(reason, pin.ingress_port, parsed)

    def handle_segment(self, reason: dp.PacketInReason, port: int, parsed: ParsedFrame) -> None:
        seg = parsed.segment
        if reason in (R.PROXY_SYN, R.PROXY_SYN_ACK):
            from_proxy = True
        elif reason in (R.SYN, R.SYN_ACK):
            from_proxy = False
        else:
            from_proxy = port in self.proxy_ports()
        proxy_port = server_port = None
        if seg.is_syn and not from_proxy:
            proxy_port = self._proxy_port_for(seg.dst_ip, seg.dst_port)
            route = self._route(seg.dst_ip) if proxy_port is not None and not seg.has_ack else None
            server_port = route[0] if route is not None else None
        learnt = self._learn(reason, port, parsed, from_proxy)
        ev = SegmentIn(seg, port, from_proxy=from_proxy, copy=reason.is_copy, proxy_port=proxy_port,
                       server_port=server_port,
                       declined=reason is R.DECLINED, held=reason in (R.FIN_HELD, R.HELD_COPY))
        cmds = self.core.on_segment(ev)
        if learnt is not None and not self._core_knows(learnt):
            self.l2.pop(learnt, None)  # not proxied: nothing to remember
        self.submit(cmds)
        if reason is R.SYN and self.overload is not None:
            # The controller's own handshakes: a SYN flood drains the services as it does for the
            # switch's (proxied_draining), on the evictions past the bound on pending handshakes
            # and, before the bound is full, on the SYNs that no ACK answers.
            stats, now = self.core.handshakes.stats, time.monotonic()
            self._overload(self.overload.on_evictions(stats["evicted"], now)
                           or self.overload.on_evictions(stats["syn"] - stats["verified"], now, "unanswered"))

    def _proxy_port_for(self, server_ip: str, server_port: int) -> int | None:
        port = self.services.get((server_ip, server_port))
        if port is None:
            return None
        if self.config.require_proxy and port not in self.proxy_macs:
            # Nobody would answer the second request: let the connection run end to end.
            self.stats["not_proxied_no_proxy"] += 1
            return None
        return port

    def _learn(self, reason: dp.PacketInReason, port: int, parsed: ParsedFrame, from_proxy: bool) -> FlowKey | None:
        seg = parsed.segment
        if reason is R.SYN or reason is R.PROXY_SYN:
            flow = FlowKey.from_client_segment(seg)
        elif reason is R.SYN_ACK or reason is R.PROXY_SYN_ACK:
            flow = FlowKey.from_server_segment(seg)
        else:
            return None
        rec = self.l2.get(flow)
        if rec is None:
            if reason is not R.SYN:
                return None
            rec = self.l2[flow] = FlowL2()
        party = rec.proxy if from_proxy else (rec.client if reason is R.SYN else rec.server)
        party.port, party.mac, party.switch_mac = port, parsed.src_mac, parsed.dst_mac
        return flow

    def _core_knows(self, flow: FlowKey) -> bool:
        return flow in self.core.flows or self.core.handshakes.get(flow) is not None

    def on_idle_notification(self, note: IdleTimeoutNotification) -> None:
        touched: set[FlowKey] = set()
        for entry in note.entries:
            match = entry_match_of(entry)
            inst = self.entries.get(match)
            if inst is None:
                continue
            self._idle_seen.setdefault(inst.flow, set()).add(match)
            touched.add(inst.flow)
        for flow in touched:
            # The flow is idle when all of its forwarding entries are (a one-way bulk transfer
            # keeps the ACK direction's entry hit).
            forwarding = {m for m in self.flow_entries.get(flow, ()) if self.entries[m].kind in dp.LEG_KINDS}
            if forwarding and forwarding <= self._idle_seen.get(flow, set()) and flow not in self._confirming:
                self._confirming.add(flow)
                self._spawn(self._confirm_idle(flow, forwarding))

    async def _confirm_idle(self, flow: FlowKey, forwarding: set[EntryMatch]) -> None:
        """Every forwarding entry of ``flow`` has been reported idle, but a switch reports an entry
        once per idle period: one reported a while ago may have carried traffic since (it will be
        reported again when idle again). Ask the switch how long each has been idle first."""
        try:
            active = await self._recently_hit(forwarding)
        finally:
            self._confirming.discard(flow)
        seen = self._idle_seen.get(flow)
        if seen is None or not forwarding <= seen:
            return  # rewritten or gone meanwhile
        if active:
            seen -= active
            self.stats["idle_reports_outdated"] += 1
            log.debug("%s: %d of its entries carried traffic since their idle report", flow, len(active))
            return
        log.info("%s: idle on the switch", flow)
        self.submit(self.core.on_idle(flow))

    async def _recently_hit(self, matches: set[EntryMatch]) -> set[EntryMatch]:
        """Those of ``matches`` whose entry the switch says was hit within its idle timeout. An
        entry whose idle time the switch does not report, or cannot be read, counts as idle."""
        filters = [dataclasses.replace(dp.flow_key(m), time_since_last_hit_ns=0) for m in matches]
        active: set[EntryMatch] = set()

        def collect(ent: Entity) -> None:
            if not isinstance(ent, TableEntry) or ent.time_since_last_hit_ns is None:
                return
            m = entry_match_of(ent)
            inst = self.entries.get(m)
            if inst is not None and ent.time_since_last_hit_ns < inst.idle_timeout_ns:
                active.add(m)

        try:
            await self._read_each(filters, collect)
        except ClientError as e:
            log.warning("idle times of %d entries unreadable (%s): taking the idle reports as they are",
                        len(filters), e)
        return active

    def _bound_pending(self) -> None:
        """No more handshakes pending than half the flows table can hold: a pending handshake
        has up to ENTRIES_PER_PENDING entries there, and a SYN flood (spoofed sources, never
        completing) must not fill the table that real clients' flows need. At the bound the
        core evicts the oldest handshake no client has acknowledged (docs/controller.md)."""
        if not self.sw.has_index:
            return
        size = self.sw.index.table(dp.FLOWS).size
        if size <= 0:
            return
        cap = max(1, size // 2 // ENTRIES_PER_PENDING)
        hs = self.core.handshakes
        if cap < hs.config.max_pending:
            hs.config = dataclasses.replace(hs.config, max_pending=cap)
            log.info("at most %d handshakes pending: the flows table holds %d entries", cap, size)

    # --- idle flows by counters (flows entries that do not age on the switch) ---------------------

    @property
    def idle_poll_interval(self) -> float:
        """How often the counters are read: a quarter of the idle timeout, at most 10 s."""
        return min(max(self.config.idle_timeout / 4, 0.05), 10.0)

    async def _poll_idle(self) -> None:
        while True:
            await asyncio.sleep(self.idle_poll_interval)  # the polling period, not a readiness wait
            try:
                await self.poll_idle()
            except ClientError as e:  # the switch away: the next round reads again
                log.debug("idle poll: %s", e)

    async def poll_idle(self, now: float | None = None) -> list[FlowKey]:
        """One round: read the packet counters of up to ``IDLE_POLL_BATCH`` forwarding entries,
        those read longest ago first (one Read of many thousand counters stalls BMv2's pipeline
        while it lasts). An entry whose count had not moved for ``idle_timeout`` when it was last
        read is idle, and a flow whose forwarding entries all are is ended as on the switch's idle
        notifications. Returns the flows found idle."""
        forwarding = {m for m, inst in self.entries.items() if inst.kind in dp.LEG_KINDS}
        for gone in self._last_hit.keys() - forwarding:
            del self._last_hit[gone]
        for gone in self._last_read.keys() - forwarding:
            del self._last_read[gone]
        if not forwarding:
            return []
        batch = sorted(forwarding, key=lambda m: self._last_read.get(m, float("-inf")))[:IDLE_POLL_BATCH]
        counts = await self.counters(batch)
        now = time.monotonic() if now is None else now
        for m, (packets, _) in counts.items():
            self._last_read[m] = now
            last = self._last_hit.get(m)
            if last is None or last[0] != packets:
                self._last_hit[m] = (packets, now)

        def quiet(m: EntryMatch) -> bool:
            return m in self._last_hit and self._last_read[m] - self._last_hit[m][1] >= self.config.idle_timeout

        idle: list[FlowKey] = []
        for flow, matches in list(self.flow_entries.items()):
            fwd = [m for m in matches if m in forwarding]
            if fwd and all(quiet(m) for m in fwd):
                idle.append(flow)
                for m in fwd:
                    self._last_hit.pop(m, None)
                log.info("%s: idle on the switch (its counters did not move for %.0f s)", flow,
                         self.config.idle_timeout)
                self.submit(self.core.on_idle(flow))
        return idle

    def _on_timer(self, key: TimerKey) -> None:
        self._timers.pop(key, None)
        self.submit(self.core.on_timer(key))

    # --- carrying out commands ---------------------------------------------------------------------

    def submit(self, cmds: Sequence[Command]) -> asyncio.Task[None] | None:
        """Carry out ``cmds`` in order, after earlier command lists of the same flows."""
        return self.submit_all((cmds,))

    def submit_all(self, lists: Iterable[Sequence[Command]]) -> asyncio.Task[None] | None:
        """Carry out these command lists one after the other, as ``submit`` would each, but in one
        task whose table writes share a Write: a digest list brings many flows' steps at once, and
        a task, a future and an RPC share per step cost more than the step itself."""
        merged: list[Command] = []
        flows: set[FlowKey] = set()
        l2: dict[FlowKey, FlowL2 | None] = {}
        for cmds in lists:
            if not cmds:
                continue
            self._account(cmds)
            if self._settling:
                self._wake_settled()  # every way a handshake ends comes with commands
            mine: set[FlowKey] = set()
            for c in cmds:
                if isinstance(c, (StartTimer, CancelTimer)):
                    mine.add(c.timer.flow)
                elif isinstance(c, FlowEstablished):
                    mine.add(c.facts.flow)
                else:
                    mine.add(c.flow)
            # Timers are armed and cancelled right away, in order: a timer the core cancels must
            # not fire while earlier writes are still in flight.
            for c in cmds:
                if isinstance(c, StartTimer):
                    self._start_timer(c.timer, c.delay)
                elif isinstance(c, CancelTimer):
                    handle = self._timers.pop(c.timer, None)
                    if handle is not None:
                        handle.cancel()
            for f in mine:
                if f not in l2:
                    l2[f] = self.l2.get(f)
            for c in cmds:
                if isinstance(c, RemoveFlow) and not self._core_knows(c.flow):
                    self.l2.pop(c.flow, None)
                    self._idle_seen.pop(c.flow, None)
            flows |= mine
            merged += cmds
        if not merged:
            return None
        tails = self._tails
        if all(isinstance(c, _DONE_AT_SUBMIT) for c in merged) and not any(f in tails for f in flows):
            # Nothing left to carry out and nothing to wait for (a stage's timer, say): no task.
            return None
        prev = [tails[f] for f in flows if f in tails]
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        for f in flows:
            tails[f] = done
        return self._spawn(self._run(merged, prev, done, flows, l2))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """A task the orchestrator keeps (``drain`` waits for it, ``close`` cancels it)."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def run(self, cmds: Sequence[Command]) -> None:
        """Submit and wait until carried out."""
        task = self.submit(cmds)
        if task is not None:
            await asyncio.shield(task)

    async def _run(self, cmds: Sequence[Command], prev: list[asyncio.Future[None]], done: asyncio.Future[None],
                   flows: set[Any], l2: dict[FlowKey, FlowL2 | None]) -> None:
        try:
            for p in prev:
                await asyncio.shield(p)
            await self._execute(cmds, l2)
        except asyncio.CancelledError:
            raise
        except Exception:
            self.metrics.failures.labels("internal").inc()
            log.exception("carrying out %d commands failed", len(cmds))
        finally:
            done.set_result(None)
            for f in flows:
                if self._tails.get(f) is done:
                    del self._tails[f]

    def _start_timer(self, key: TimerKey, delay: float) -> None:
        old = self._timers.pop(key, None)
        if old is not None:
            old.cancel()
        # One context for every timer, not a copy each: a flow's idle timer lives as long as the
        # flow, and the orchestrator keeps nothing in context variables.
        self._timers[key] = asyncio.get_running_loop().call_later(delay, self._on_timer, key,
                                                                  context=self._timer_context)

    def _account(self, cmds: Sequence[Command]) -> None:
        for c in cmds:
            if isinstance(c, FlowEstablished):
                self.metrics.handshakes.labels("established").inc()
                if self.overload is not None:
                    self.overload.on_established(1, time.monotonic())
            elif isinstance(c, ResetFlow):
                self.metrics.resets.inc()
                self.metrics.failures.labels("reset").inc()
            elif isinstance(c, NotifyProxy) and c.status == "spliced":
                fl = self.core.flows.get(c.flow)
                verbatim = fl is not None and all(p.seq_delta == 0 and p.ack_delta == 0 for p in fl.legs.values())
                self.metrics.splices.labels("verbatim" if verbatim else "rewritten").inc()
            elif isinstance(c, RemoveFlow) and c.reason.startswith("bypass"):
                self.metrics.handshakes.labels("bypassed").inc()

    async def _execute(self, cmds: Sequence[Command], l2: dict[FlowKey, FlowL2 | None]) -> None:
        updates: list[Update] = []
        closed: list[RemoveFlow] = []
        deleted: set[EntryMatch] = set()  # deletes among ``updates``

        async def flush() -> None:
            await self._flush(updates)
            deleted.clear()

        async def before_put(matches: Iterable[EntryMatch]) -> None:
            # An entry put where one is being deleted in the same batch (a 4-tuple used again by a
            # new connection): the P4Runtime spec lets a switch apply a batch's updates in any
            # order, so the delete goes out in a Write of its own first.
            if not deleted.isdisjoint(matches):
                await flush()

        for c in cmds:
            if isinstance(c, InstallPunt):
                await before_put(c.matches)
                updates += [self._put(c.flow, "punt", (m, 0)) for m in c.matches]
            elif isinstance(c, InstallDrop):
                await before_put(c.matches)
                updates += [self._put(c.flow, "drop", (m, 0)) for m in c.matches]
            elif isinstance(c, InstallLeg):
                await before_put(p.match for p in c.legs)
                for p in c.legs:
                    updates.append(self._put(c.flow, self._hold_kind if p.hold else "translate",
                                             self._leg_args(c.flow, p, l2.get(c.flow))))
                self._idle_seen.pop(c.flow, None)
            elif isinstance(c, (RemoveEntries, RemoveFlow)):
                if isinstance(c, RemoveFlow) and any(
                        self.entries[m].kind != "punt" for m in c.matches if m in self.entries):
                    closed.append(c)  # the proxy had a leg of it (not a SYN it never saw)
                deleted.update(m for m in c.matches if m in self.entries)
                updates += self._deletes(c.matches)
            elif isinstance(c, SendSegment):
                await flush()
                await self._send(c, l2.get(c.flow))
            elif isinstance(c, (ReleaseHeld, ResetFlow)):
                await flush()
                for s in c.segments if isinstance(c, ReleaseHeld) else c.resets:
                    await self._send(s, l2.get(s.flow))
                if isinstance(c, ResetFlow):
                    self._notify(c.flow, "flow_reset", reason=c.reason)
            elif isinstance(c, NotifyProxy):
                if c.status == "reset":
                    self._notify(c.flow, "flow_reset", reason=c.detail or "reset")
        await self._flush(updates)
        for c in closed:
            self._notify(c.flow, "flow_closed")
            self._lines(logging.INFO, f"removed {c.reason}", "%s: entries removed (%s)", c.flow, c.reason)

    def _notify(self, flow: FlowKey, event: str, **fields: Any) -> None:
        if self.on_proxy_event is None:
            return
        port = self._flow_proxy_port(flow)
        if port is not None:
            self.on_proxy_event(port, event, {"flow": flow, **fields})

    def _flow_proxy_port(self, flow: FlowKey) -> int | None:
        fl = self.core.flows.get(flow)
        if fl is not None:
            return fl.facts.ports.proxy
        hs = self.core.handshakes.get(flow)
        if hs is not None:
            return hs.ports.proxy
        return self.services.get((flow.server_ip, flow.server_port))

    # --- entries ----------------------------------------------------------------------------------

    def _put(self, flow: FlowKey, kind: str, args: tuple[Any, ...]) -> Update:
        """The update that puts the ``kind`` entry built from ``args`` (the match first) on the
        switch, mirrored."""
        match = args[0]
        kind_of_update = UpdateType.MODIFY if match in self.entries else UpdateType.INSERT
        self.entries[match] = _Installed(flow, None, kind, args)
        self.flow_entries.setdefault(flow, set()).add(match)
        # Written as it is: FlowsEntry fills its message straight from the numbers (dataplane.py).
        return Update(kind_of_update, dp.FlowsEntry(kind, args))  # type: ignore[arg-type]

    def _deletes(self, matches: Iterable[EntryMatch]) -> list[Update]:
        out = []
        for m in matches:
            inst = self.entries.pop(m, None)
            if inst is None:
                continue
            owned = self.flow_entries.get(inst.flow)
            if owned is not None:
                owned.discard(m)
                if not owned:
                    del self.flow_entries[inst.flow]
            out.append(Update(UpdateType.DELETE, dp.flow_key(m)))
        return out

    def _leg_args(self, flow: FlowKey, p: LegParams, l2: FlowL2 | None) -> tuple[Any, ...]:
        """The arguments of flow_translate (or flow_hold) for a leg, the idle timeout last."""
        smac, dmac = self._macs(flow, _TARGET[p.direction], p.egress_port, l2)
        idle = int(self.config.idle_timeout * _NS) if self.entries_age else 0
        return (p.match, p.egress_port, int.from_bytes(smac, "big"), int.from_bytes(dmac, "big"),
                p.seq_delta, p.ack_delta, p.tsval_delta, p.tsecr_delta,
                min(p.win_shift_from, 14), min(p.win_shift_to, 14), idle)

    def _write_refused(self, what: object) -> None:
        """An error line per refused write, at most one per ERROR_LOG_INTERVAL, counting the rest."""
        self._errors(logging.ERROR, "write refused", "write refused: %s", what)

    async def _flush(self, updates: list[Update]) -> None:
        if not updates:
            return
        batch = list(updates)
        updates.clear()
        for attempt in range(2):
            try:
                await self.writer.write(batch)
                return
            except WriteError as e:
                retry: list[Update] = []
                for f in e.failures:
                    u = f.update
                    if not isinstance(u, Update):
                        continue
                    if u.type is UpdateType.DELETE and f.code == code_pb2.NOT_FOUND:
                        continue  # already gone (a switch restart, or a delete that raced)
                    if u.type is UpdateType.INSERT and f.code == code_pb2.ALREADY_EXISTS:
                        retry.append(Update(UpdateType.MODIFY, u.entity))
                    elif u.type is UpdateType.MODIFY and f.code == code_pb2.NOT_FOUND:
                        retry.append(Update(UpdateType.INSERT, u.entity))
                    else:
                        self.metrics.failures.labels("write").inc()
                        self._write_refused(f)
                if not e.failures and e.details == []:
                    self.metrics.failures.labels("write").inc()
                    self._write_refused(e)
                if not retry or attempt:
                    return
                batch = retry
            except (ClientError, P4RuntimeRpcError) as e:
                # The switch is away: the mirror keeps what should be there, and the reconnect hook
                # writes it all back.
                self.metrics.failures.labels("write").inc()
                log.warning("write of %d updates failed: %s", len(batch), e)
                return

    # --- packet-outs ------------------------------------------------------------------------------

    def _route(self, dst_ip: str) -> tuple[int, bytes, bytes] | None:
        """(port, smac, dmac) of the configured route to ``dst_ip``. Remembered: the routes are
        fixed for the orchestrator's life, and every leg entry toward C or S asks."""
        cache = self._routes_of
        if dst_ip in cache:
            return cache[dst_ip]
        addr = ipaddress.IPv4Address(dst_ip)
        found = next(((r.port, mac_bytes(r.smac), mac_bytes(r.dmac)) for r in self.routes if addr in r.prefix), None)
        if len(cache) >= _ROUTE_CACHE:
            cache.clear()  # a SYN flood from random sources must not grow it without bound
        cache[dst_ip] = found
        return found

    def _macs(self, flow: FlowKey, to: Side, port: int | None, l2: FlowL2 | None) -> tuple[bytes, bytes]:
        """(source, destination) MACs of a frame for ``to``: learnt ones first, then the proxy's
        registered MAC, the route's MACs, the configured switch MAC."""
        party = l2.party(to) if l2 is not None else None
        dmac = party.mac if party is not None else None
        smac = party.switch_mac if party is not None else None
        if to is Side.PROXY and dmac is None and port is not None:
            dmac = self.proxy_macs.get(port)
        if to is Side.PROXY and smac is None and l2 is not None:
            smac = l2.client.switch_mac  # what C addresses: a MAC of this switch
        if dmac is None or smac is None:
            dst_ip = flow.client_ip if to is Side.CLIENT else flow.server_ip
            route = self._route(dst_ip) if to is not Side.PROXY else None
            if route is not None:
                smac, dmac = smac or route[1], dmac or route[2]
        return smac or self._switch_mac, dmac or b"\xff" * 6

    async def _send(self, cmd: SendSegment, l2: FlowL2 | None) -> None:
        port = cmd.egress_port
        if port is None and l2 is not None:
            port = l2.party(cmd.to).port
        if port is None:
            route = self._route(cmd.segment.dst_ip)
            port = route[0] if route is not None else None
        if port is None:
            self.metrics.failures.labels("no_port").inc()
            self._lines(logging.WARNING, "no port", "%s: no port for %s to %s: not sent", cmd.flow, cmd.why,
                        cmd.to.value)
            return
        smac, dmac = self._macs(cmd.flow, cmd.to, port, l2)
        frame = build_frame(cmd.segment, smac, dmac)
        try:
            await self.sw.packet_out(dp.packet_out(port, frame))
        except ClientError as e:
            self.metrics.failures.labels("packet_out").inc()
            self._lines(logging.WARNING, "packet-out failed", "%s: packet-out (%s) failed: %s", cmd.flow, cmd.why, e)
            return
        self.metrics.packet_outs.inc()
        log.debug("%s: sent %s to %s on port %d", cmd.flow, cmd.why, cmd.to.value, port)

    async def _route_as_is(self, frame: bytes) -> None:
        """Send a SYN the core does not take on by the configured route of its destination, as a
        router would (the SYN of a connection left unproxied)."""
        dst = ".".join(str(b) for b in frame[30:34]) if len(frame) >= 34 else ""
        route = self._route(dst) if dst else None
        out = route_frame(frame, route[1], route[2]) if route is not None else None
        if route is None or out is None:
            self.metrics.failures.labels("no_port").inc()
            self._lines(logging.WARNING, "no port", "no route for a SYN to %s: not sent", dst or "?")
            return
        try:
            await self.sw.packet_out(dp.packet_out(route[0], out))
        except ClientError as e:
            self.metrics.failures.labels("packet_out").inc()
            self._lines(logging.WARNING, "packet-out failed", "packet-out of a SYN failed: %s", e)
            return
        self.metrics.packet_outs.inc()

    # --- reading the switch -------------------------------------------------------------------------

    async def counters(self, matches: Sequence[EntryMatch]) -> dict[EntryMatch, tuple[int, int]]:
        """(packets, bytes) of these flows entries' direct counters; missing entries are left out."""
        present = [m for m in matches if m in self.entries]
        if not present:
            return {}
        out: dict[EntryMatch, tuple[int, int]] = {}

        def collect(ent: Entity) -> None:
            if isinstance(ent, DirectCounterEntry) and ent.data is not None:
                out[entry_match_of(ent.table_entry)] = (ent.data.packet_count, ent.data.byte_count)

        with contextlib.suppress(ReadError):
            await self._read_each([DirectCounterEntry(dp.flow_key(m)) for m in present], collect)
        return out

    async def _read_each(self, filters: Sequence[Entity], collect: Callable[[Entity], None]) -> None:
        """One Read of ``filters``, each entity to ``collect``. One entry gone from the switch
        (removed, or aged out) fails the whole Read on some servers (BMv2's PI, p4sim): then each
        filter is read on its own and the missing ones are left out. A ReadError only when a
        lone filter fails."""
        try:
            got = [ent async for ent in self.sw.read(filters)]
        except ReadError:
            if len(filters) == 1:
                raise
            for f in filters:
                with contextlib.suppress(ReadError):
                    async for ent in self.sw.read([f]):
                        collect(ent)
            return
        for ent in got:
            collect(ent)

    async def reinstall_entries(self) -> None:
        """Write every mirrored flows entry (a switch that restarted lost them)."""
        batch = [Update(UpdateType.INSERT, inst.entry) for inst in self.entries.values()]
        for i in range(0, len(batch), 1000):
            await self._flush(batch[i : i + 1000])
        log.info("re-installed %d flows entries", len(batch))

    def flow_info(self, flow: FlowKey, counters: dict[EntryMatch, tuple[int, int]] | None = None) -> dict[str, Any]:
        """A flow's state, legs, deltas and counters, JSON-ready."""
        info: dict[str, Any] = {"flow": {"client": f"{flow.client_ip}:{flow.client_port}",
                                         "server": f"{flow.server_ip}:{flow.server_port}"}}
        fl = self.core.flows.get(flow)
        hs = self.core.handshakes.get(flow)
        if fl is not None:
            info["state"] = fl.state.value
            info["ports"] = {"client": fl.facts.ports.client, "server": fl.facts.ports.server,
                             "proxy": fl.facts.ports.proxy}
            if fl.counts is not None:
                c = fl.counts
                info["deltas"] = {"c2s": c.b_s - c.a_c, "s2c": c.b_c - c.a_s}
        elif hs is not None:
            info["state"] = f"handshake:{hs.state.value}"
            info["ports"] = {"client": hs.ports.client, "server": hs.ports.server, "proxy": hs.ports.proxy}
        else:
            info["state"] = "unknown"
        legs = []
        for m in sorted(self.flow_entries.get(flow, ())):
            inst = self.entries[m]
            rule = {"ingress_port": m.ingress_port, "src": f"{m.src_ip}:{m.src_port}",
                    "dst": f"{m.dst_ip}:{m.dst_port}", "action": inst.kind}
            if inst.entry.action is not None and inst.kind in dp.LEG_KINDS:
                p = inst.entry.action.params
                rule |= {"port": p["port"], "seq_delta": dp.signed_delta(p["seq_delta"]),
                         "ack_delta": dp.signed_delta(p["ack_delta"]),
                         "tsval_delta": dp.signed_delta(p["tsval_delta"]),
                         "tsecr_delta": dp.signed_delta(p["tsecr_delta"]),
                         "win_shift_from": p["win_shift_from"], "win_shift_to": p["win_shift_to"]}
            if counters is not None and m in counters:
                rule["packets"], rule["bytes"] = counters[m]
            legs.append(rule)
        info["entries"] = legs
        return info

    def flows_of_port(self, proxy_port: int) -> list[FlowKey]:
        out = [f.flow for f in self.core.flows if f.facts.ports.proxy == proxy_port]
        out += [k for k in self.core.handshakes.flows()
                if (h := self.core.handshakes.get(k)) is not None and h.ports.proxy == proxy_port]
        return out

    async def flow_counters(self, flow: FlowKey) -> dict[EntryMatch, tuple[int, int]]:
        with contextlib.suppress(ClientError, P4RuntimeRpcError):
            return await self.counters(sorted(self.flow_entries.get(flow, ())))
        return {}


def read_filter_flows() -> TableEntry:
    return TableEntry(dp.FLOWS, counter_data=CounterData())
