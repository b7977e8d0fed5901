"""The proxy's side of the switch-over (design note section 3, docs/proxy.md):

1. ``splice_prepare``: the switch stops payload toward the proxy; pure ACKs still pass.
2. The pumps forward what the proxy holds, and the proxy waits (with a deadline) until neither
   socket has unread or unacknowledged bytes.
3. ``splice`` with the four payload counts since the handshake.
4. The sockets are dropped with an abortive close: the switch discards whatever they send now.

Whatever goes wrong before the controller has accepted the counts leaves the connection
proxied, as it was: a refused or failed splice must never corrupt a byte stream.
"""

from __future__ import annotations

import enum
import logging
import time

from p4splice.controller.proxyapi import ApiError

from .config import Limits
from .controller import ControllerLink
from .metrics import Metrics
from .relay import Connection, DrainTimeout

__all__ = ["Outcome", "Splicer"]

log = logging.getLogger("p4splice.proxy.splice")

_LOST = (ConnectionError, TimeoutError, OSError)


class Outcome(enum.Enum):
    SPLICED = "spliced"
    REFUSED = "refused"  # the controller said no (conflict, not_found, unavailable, ...)
    UNREACHABLE = "unreachable"  # no controller, or it went away during the exchange
    DRAIN_TIMEOUT = "drain-timeout"  # the sockets did not become quiet in time


class Splicer:
    def __init__(self, link: ControllerLink | None, limits: Limits, metrics: Metrics) -> None:
        self.link = link
        self.limits = limits
        self.metrics = metrics

    async def splice(self, conn: Connection) -> Outcome:
        """Run the switch-over for ``conn``, whose pumps are running. On SPLICED the sockets are
        gone; on anything else the pumps are running again and the connection stays proxied."""
        self.metrics.add("splices_requested")
        api = self.link.api if self.link is not None else None
        if api is None:
            self.metrics.add("splices_unreachable")
            log.info("%s: no controller; staying in the path", conn.flow)
            return Outcome.UNREACHABLE
        flow = conn.flow
        started = time.monotonic()
        conn.state = "splicing"
        try:
            await api.splice_prepare(flow)
        except ApiError as exc:
            return self._kept(conn, Outcome.REFUSED, f"splice_prepare refused: {exc}")
        except _LOST as exc:
            return self._kept(conn, Outcome.UNREACHABLE, f"splice_prepare failed: {exc}")
        try:
            counts = await conn.quiesce(self.limits.drain_timeout_s, self.limits.settle_s)
        except DrainTimeout as exc:
            # The switch is holding the flow and API v1 has no way to release it: the proxy
            # stays in the path and the controller's view decides what happens next.
            log.error("%s: flow is holding but the proxy did not drain: %s", flow, exc)
            return self._kept(conn, Outcome.DRAIN_TIMEOUT, "drain timeout", log_it=False)
        drained = time.monotonic()
        conn.splice_counts = counts
        try:
            deltas = await api.splice(flow, counts.a_c, counts.b_s, counts.a_s, counts.b_c)
        except ApiError as exc:
            conn.resume()
            return self._kept(conn, Outcome.REFUSED, f"splice refused: {exc}")
        except _LOST as exc:
            conn.resume()
            return self._kept(conn, Outcome.UNREACHABLE, f"splice failed: {exc}")
        conn.state = "spliced"
        await conn.abort()
        self.metrics.add("splices_done")
        done = time.monotonic()
        log.info(
            "%s: spliced a_c=%d b_s=%d a_s=%d b_c=%d deltas c2s=%d s2c=%d (drain %.1f ms, splice %.1f ms)",
            flow, counts.a_c, counts.b_s, counts.a_s, counts.b_c, deltas.c2s, deltas.s2c,
            (drained - started) * 1000, (done - drained) * 1000,
            extra={"event": "spliced", "flow": str(flow), "a_c": counts.a_c, "b_s": counts.b_s,
                   "a_s": counts.a_s, "b_c": counts.b_c, "c2s": deltas.c2s, "s2c": deltas.s2c},
        )
        return Outcome.SPLICED

    def _kept(self, conn: Connection, outcome: Outcome, why: str, log_it: bool = True) -> Outcome:
        conn.state = "relaying"
        name = {Outcome.REFUSED: "splices_refused", Outcome.UNREACHABLE: "splices_unreachable",
                Outcome.DRAIN_TIMEOUT: "splices_drain_timeout"}[outcome]
        self.metrics.add(name)
        if log_it:
            log.warning("%s: %s; staying in the path", conn.flow, why)
        return outcome
