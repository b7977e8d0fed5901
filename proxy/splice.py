"""The proxy's side of the switch-over (design note section 3, docs/proxy.md):

1. ``splice_prepare``: the switch stops payload toward the proxy; pure ACKs still pass.
2. The pumps forward what the proxy holds, and the proxy waits (with a deadline) until neither
   socket has unread or unacknowledged bytes.
3. ``splice`` with the four payload counts since the handshake.
4. The sockets are dropped with an abortive close: the switch discards whatever they send now.

Whatever goes wrong before the controller has accepted the counts leaves the connection
proxied, as it was: a refused or failed splice must never corrupt a byte stream. Once
``splice_prepare`` succeeded, every such way out first gives the hold back (``splice_cancel``),
so that payload reaches the proxy again.
"""

from __future__ import annotations

import asyncio
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
        # From here on the switch drops payload toward us on this flow: every way out other than
        # a splice must give the hold back (splice_cancel), or the connection would stall.
        prepared = time.monotonic()
        try:
            counts = await conn.quiesce(self.limits.drain_timeout_s, self.limits.settle_s)
        except DrainTimeout as exc:
            # The pumps are still running: once the hold is lifted they simply carry on.
            log.warning("%s: the sockets did not drain: %s; giving the splice up", flow, exc)
            state = await self._give_back(conn)
            if state == "spliced":
                return await self._stepped_out(conn, "the controller spliced it meanwhile")
            return self._kept(conn, Outcome.DRAIN_TIMEOUT, "drain timeout", log_it=False)
        except BaseException:
            # A pump failed (the caller resets the connection) or we are cancelled: the flow must
            # not stay held. Done in a task of its own, which a cancellation cannot interrupt.
            self._give_back_later(conn)
            raise
        drained = time.monotonic()
        conn.splice_counts = counts
        try:
            deltas = await api.splice(flow, counts.a_c, counts.b_s, counts.a_s, counts.b_c)
        except (ApiError, *_LOST) as exc:
            # Refused (the counts contradict the switch, or the hold timed out), or no answer --
            # in which case the splice may have happened all the same. The controller's state
            # after the cancel tells which; a refusal that says the flow no longer holds needs
            # no cancel.
            state = _state_of(exc)
            if state in (None, "holding"):
                state = await self._give_back(conn)
            if state == "spliced":
                return await self._stepped_out(conn, f"splice reply lost ({exc}), but the flow is spliced")
            conn.resume()
            outcome = Outcome.REFUSED if isinstance(exc, ApiError) else Outcome.UNREACHABLE
            if state == "linger":
                # Both ends closed while the proxy drained (their FINs passed before the hold was
                # in place): nothing is left to splice, and the proxy's sockets see the end out.
                log.info("%s: the connection ended while it drained; nothing left to splice", flow)
                return self._kept(conn, outcome, "", log_it=False)
            return self._kept(conn, outcome, f"splice {'refused' if isinstance(exc, ApiError) else 'failed'}: {exc}")
        conn.state = "spliced"
        await conn.abort()
        self.metrics.add("splices_done")
        done = time.monotonic()
        log.info(
            "%s: spliced a_c=%d b_s=%d a_s=%d b_c=%d deltas c2s=%d s2c=%d (prepare %.1f ms, drain %.1f ms, "
            "splice %.1f ms)",
            flow, counts.a_c, counts.b_s, counts.a_s, counts.b_c, deltas.c2s, deltas.s2c,
            (prepared - started) * 1000, (drained - prepared) * 1000, (done - drained) * 1000,
            extra={"event": "spliced", "flow": str(flow), "a_c": counts.a_c, "b_s": counts.b_s,
                   "a_s": counts.a_s, "b_c": counts.b_c, "c2s": deltas.c2s, "s2c": deltas.s2c},
        )
        return Outcome.SPLICED

    async def _give_back(self, conn: Connection) -> str | None:
        """``splice_cancel`` for a flow we prepared. Returns "proxied" when the hold is lifted;
        when the controller refuses (the flow is not holding: its hold timeout came first, or a
        splice whose reply we lost went through), the flow's state as the controller has it;
        None when the controller cannot be asked (then its hold timeout lifts the hold)."""
        api = self.link.api if self.link is not None else None  # the link may have reconnected
        if api is None:
            log.warning("%s: no controller to cancel the splice with; its hold timeout will", conn.flow)
            return None
        try:
            await api.splice_cancel(conn.flow)
        except ApiError as exc:
            if exc.code != "conflict":
                log.warning("%s: splice_cancel refused: %s", conn.flow, exc)
                return None
            state = _state_of(exc)
            try:
                if state is None:  # a controller that does not say: ask
                    state = (await api.flow(conn.flow)).get("state")
            except (ApiError, *_LOST) as exc2:
                log.warning("%s: flow state unknown after a refused cancel: %s", conn.flow, exc2)
                return None
            log.info("%s: nothing to cancel, the flow is %s", conn.flow, state)
            return str(state)
        except _LOST as exc:
            log.warning("%s: splice_cancel failed: %s; the controller's hold timeout will lift the hold",
                        conn.flow, exc)
            return None
        self.metrics.add("splices_cancelled")
        log.info("%s: splice cancelled; the flow is proxied again", conn.flow)
        return "proxied"

    def _give_back_later(self, conn: Connection) -> None:
        task = asyncio.get_running_loop().create_task(self._give_back(conn), name=f"{conn.flow} cancel")
        _background.add(task)
        task.add_done_callback(_background.discard)

    async def _stepped_out(self, conn: Connection, why: str) -> Outcome:
        # The switch forwards the flow directly: whatever our sockets send is dropped there.
        conn.state = "spliced"
        await conn.abort()
        self.metrics.add("splices_done")
        log.warning("%s: %s; stepping out", conn.flow, why)
        return Outcome.SPLICED

    def _kept(self, conn: Connection, outcome: Outcome, why: str, log_it: bool = True) -> Outcome:
        conn.state = "relaying"
        name = {Outcome.REFUSED: "splices_refused", Outcome.UNREACHABLE: "splices_unreachable",
                Outcome.DRAIN_TIMEOUT: "splices_drain_timeout"}[outcome]
        self.metrics.add(name)
        if log_it:
            log.warning("%s: %s; staying in the path", conn.flow, why)
        return outcome


def _state_of(exc: BaseException) -> str | None:
    """The flow's state a ``conflict`` names (``state``, docs/proxy-api.md), if it does."""
    if isinstance(exc, ApiError) and exc.code == "conflict":
        state = exc.details.get("state")
        return state if isinstance(state, str) else None
    return None


# Cancels still on their way when their connection's task ended (kept referenced until done).
_background: set[asyncio.Task[str | None]] = set()
