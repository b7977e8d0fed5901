"""What the proxy API server needs from the controller: the ``SpliceService`` protocol.

The server does transport, authentication, validation and liveness; every decision about flows
and switches is the service's. Arguments arrive validated (see protocol.py); the service refuses
a request by raising :class:`ApiError` with ``not_found``, ``conflict``, ``unavailable`` or
``not_registered`` -- or ``bad_request`` for a value only it can judge (a port that is the CPU
port) -- while any other exception is reported to the proxy as ``internal`` and logged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from .protocol import ApiError, Flow

__all__ = ["ApiError", "Deltas", "FlowInfo", "SpliceService"]

# The flow's state, legs, deltas and counters as JSON-ready values; the shape is the service's
# (docs/proxy-api.md suggests one), with at least "flow" and "state".
FlowInfo = Mapping[str, Any]


@dataclass(frozen=True)
class Deltas:
    """What the two direct entries of a splice add, as signed differences of the counts:
    ``c2s = b_s - a_c`` is added to the seq of C->S segments and taken from the ack of S->C ones;
    ``s2c = b_c - a_s`` the other way round (design note section 3). The switch applies them
    modulo 2^32. Both are zero when the proxy relayed verbatim."""

    c2s: int
    s2c: int

    @classmethod
    def from_counts(cls, a_c: int, b_s: int, a_s: int, b_c: int) -> Deltas:
        return cls(b_s - a_c, b_c - a_s)

    def to_json(self) -> dict[str, int]:
        return {"c2s": self.c2s, "s2c": self.s2c}


@runtime_checkable
class SpliceService(Protocol):
    """The controller, as the proxy API sees it. One instance serves every proxy; ``proxy`` is
    the name the proxy gave in ``hello``. Calls for one proxy may overlap (each request runs on
    its own)."""

    async def register(self, proxy: str, port: int, mac: str, heartbeat_ms: int, ip: str | None = None) -> int:
        """A proxy (re)registers: its host is on switch ``port`` with ``mac`` (and ``ip``, when it
        said: the address the controller's port probes are sent to). Also called again
        for a known proxy -- after it reconnected within its deadline, or to change its
        interval -- and must then keep its flows. Returns the heartbeat interval (ms, within
        100-60000) the controller will enforce."""
        ...

    async def heartbeat(self, proxy: str, quiescent: Sequence[Mapping[str, Any]] | None = None) -> None:
        """The proxy is alive (the server does the timekeeping; this is for the service's view).
        ``quiescent`` (only passed when the proxy sent it): ``[{"flow": Flow, "a_c", "b_s", "a_s",
        "b_c"}]``, the flows whose sockets hold no unread and no unacknowledged bytes, with their counts."""
        ...

    async def splice_prepare(self, proxy: str, flow: Flow) -> None:
        """Stop new payload toward the proxy on ``flow`` (the flow is then ``holding``)."""
        ...

    async def splice(self, proxy: str, flow: Flow, a_c: int, b_s: int, a_s: int, b_c: int) -> Deltas:
        """Replace the flow's four per-leg entries with the two direct ones, using the proxy's
        counts; ``conflict`` when the switch's view contradicts them or the flow is not holding."""
        ...

    async def splice_cancel(self, proxy: str, flow: Flow) -> None:
        """Give up a prepared splice: payload reaches the proxy again and the flow is proxied as
        before ``splice_prepare``; ``conflict`` when the flow is not holding."""
        ...

    async def flow(self, proxy: str, flow: Flow) -> FlowInfo:
        """One flow of this proxy; ``not_found`` when it has no such flow."""
        ...

    async def flows(self, proxy: str) -> Sequence[FlowInfo]:
        """Every flow of this proxy."""
        ...

    async def bye(self, proxy: str) -> None:
        """The proxy leaves; its flows are handled as on proxy failure."""
        ...

    async def proxy_dead(self, proxy: str) -> None:
        """The proxy missed its heartbeats for three intervals (connected or not): splice what can
        be spliced, reset the rest. Its registration is gone; it may register again later."""
        ...
