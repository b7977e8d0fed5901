"""Proxy ports watched from the data path: ICMP echoes out of each proxy's switch port.

P4Runtime has no port status for v1model targets, and the proxy API's heartbeats prove only that
the proxy *process* is alive -- they travel over a Unix socket, not over the proxy's switch port.
A proxy whose link went down (or whose host lost its route to the switch) keeps heartbeating
while every segment toward it is lost. So the controller probes each registered proxy that told
it its address (``register``'s ``ip``): every ``interval`` an echo request goes out of the
proxy's port as a packet-out, from ``source_ip`` (``port_probe_addr``), which the proxy host
routes back through the switch; a ``to_cpu`` routes entry for that address brings the reply
back as a packet-in (reason ROUTED). ``misses`` probes in a row without a reply and the port is
*silent*: ``on_silent(proxy)`` takes the proxy out of service for new connections and nothing
more, since a switch queueing seconds of a flood delays the replies as a pulled cable loses
them. ``misses`` more and the port is dark: ``on_down(proxy)`` runs once, which handles it as
the proxy's failure (quiescent flows spliced, the others reset). The proxy keeps its registration
(its process is alive and says so) and its port keeps being probed: the first reply, or any frame
from the port, brings it back (``on_up(proxy)``). A port that stays dark therefore costs one probe
per interval and nothing else -- no registration ended and taken again every few seconds.

A late reply still counts (any of the last ``2 * misses`` probes), and so does any other frame the
switch hands the controller from that port (the proxy's SYNs and SYN-ACKs, FIN and RST copies:
``port_alive``): a port that delivers frames is up, however long a busy switch takes to bring a
probe's reply. Only a silence of ``misses`` intervals is a failure, never one slow answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from .frames import build_echo_request, mac_bytes, parse_echo_reply

__all__ = ["PortWatch"]

log = logging.getLogger("p4splice.portwatch")

PAYLOAD = b"p4splice port probe"


@dataclass
class _Watched:
    proxy: str
    port: int
    mac: bytes
    ip: str
    ident: int
    seq: int = 0
    outstanding: bool = False  # the last probe is not answered yet
    misses: int = 0
    replies: int = 0
    silent: bool = False  # out of service, its flows untouched, not answered since
    dark: bool = False  # found down, not answered since


class PortWatch:
    """Probes the ports of the proxies it watches; calls ``on_down(proxy)`` for a silent one."""

    def __init__(self, send: Callable[[int, bytes], Awaitable[None]], on_down: Callable[[str], Awaitable[None]],
                 source_ip: str, source_mac: bytes | str, interval: float = 1.0, misses: int = 3,
                 on_up: Callable[[str], Awaitable[None]] | None = None,
                 on_silent: Callable[[str], Awaitable[None]] | None = None) -> None:
        if interval <= 0 or misses < 1:
            raise ValueError("interval must be above 0 and misses at least 1")
        self._send = send
        self._on_down = on_down
        self._on_up = on_up
        self._on_silent = on_silent
        self.source_ip = source_ip
        self.source_mac = mac_bytes(source_mac)
        self.interval = interval
        self.misses = misses
        self.watched: dict[str, _Watched] = {}
        self._idents = itertools.count(0x5000)
        self._task: asyncio.Task[None] | None = None
        self._changes: set[asyncio.Task[None]] = set()
        # One port's down and up handlers run in the order they were found, never side by side.
        self._serial: dict[str, asyncio.Lock] = {}

    # --- what is watched ----------------------------------------------------------------------------

    def watch(self, proxy: str, port: int, mac: bytes | str, ip: str) -> None:
        """Start (or restart, with a clean slate) probing ``proxy``'s host at ``ip`` on ``port``."""
        self.watched[proxy] = _Watched(proxy, port, mac_bytes(mac), ip, next(self._idents) & 0xFFFF)
        log.info("probing proxy %s at %s on port %d every %.1f s", proxy, ip, port, self.interval)

    def unwatch(self, proxy: str) -> None:
        self.watched.pop(proxy, None)
        self._serial.pop(proxy, None)

    def state(self, proxy: str) -> dict[str, int | bool] | None:
        w = self.watched.get(proxy)
        if w is None:
            return None
        return {"port": w.port, "probes": w.seq, "replies": w.replies, "misses": w.misses, "silent": w.silent,
                "dark": w.dark}

    # --- replies ------------------------------------------------------------------------------------

    def port_alive(self, port: int) -> None:
        """A frame came in on ``port`` (any packet-in): as good as a probe's reply."""
        for w in self.watched.values():
            if w.port == port:
                self._answered(w)

    def on_packet_in(self, port: int, frame: bytes) -> bool:
        """A ROUTED packet-in: True when it was the reply to one of our recent probes."""
        reply = parse_echo_reply(frame)
        if reply is None or reply.dst_ip != self.source_ip or reply.payload != PAYLOAD:
            return False
        for w in self.watched.values():
            recent = 0 <= (w.seq - reply.seq) & 0xFFFF < 2 * self.misses
            if w.ip == reply.src_ip and w.ident == reply.ident and w.port == port and recent:
                w.replies += 1
                self._answered(w)
                return True
        return False

    def _answered(self, w: _Watched) -> None:
        w.outstanding = False
        w.misses = 0
        if w.dark or w.silent:
            w.dark = w.silent = False
            log.warning("proxy %s: port %d (%s) answers again", w.proxy, w.port, w.ip)
            if self._on_up is not None:
                self._change(w.proxy, self._on_up, "up")

    # --- the clock ----------------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        task, self._task = self._task, None
        tasks = [*self._changes, *([task] if task else [])]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)  # the probe period itself, not a wait for readiness
            await self.tick()

    async def tick(self) -> None:
        """One period: count the unanswered probes, take the silent ports out of service, probe
        every watched port (the dark ones too: their first reply brings them back)."""
        for w in list(self.watched.values()):
            if w.outstanding:
                w.misses = min(w.misses + 1, 2 * self.misses)
            if w.misses >= self.misses and not w.silent:
                log.warning("proxy %s: %d probes of port %d (%s) unanswered: out of service until it answers",
                            w.proxy, w.misses, w.port, w.ip)
                w.silent = True
                if self._on_silent is not None:
                    self._change(w.proxy, self._on_silent, "silent")
            if w.misses >= 2 * self.misses and not w.dark:
                log.warning("proxy %s: %d probes of port %d (%s) unanswered: the port is down",
                            w.proxy, w.misses, w.port, w.ip)
                w.dark = True
                self._change(w.proxy, self._on_down, "down")
            w.seq = (w.seq + 1) & 0xFFFF
            w.outstanding = True
            frame = build_echo_request(self.source_ip, w.ip, w.ident, w.seq, self.source_mac, w.mac, PAYLOAD)
            try:
                await self._send(w.port, frame)
            except Exception as e:  # the switch away: the probe is simply unanswered
                log.debug("probe of %s not sent: %s", w.proxy, e)

    def _change(self, proxy: str, handler: Callable[[str], Awaitable[None]], what: str) -> None:
        lock = self._serial.setdefault(proxy, asyncio.Lock())

        async def run() -> None:
            async with lock:
                try:
                    await handler(proxy)
                except Exception:
                    log.exception("handling proxy %s's port %s failed", proxy, what)

        task = asyncio.get_running_loop().create_task(run())
        self._changes.add(task)
        task.add_done_callback(self._changes.discard)
