"""Per-service policies: what the proxy does with a connection's client->server bytes before it
asks for the splice. A policy makes one :class:`Stage` per connection; the relay feeds the stage
every chunk it reads from the client and forwards what the stage returns.

* ``never``       -- forward everything, never ask for a splice (a plain proxy, the baseline).
* ``after-bytes`` -- forward exactly N bytes, then ask (reads are capped so that N is exact).
* ``inspect``     -- forward as it arrives, keep a bounded copy of the request head, log the
  request line and headers, then ask.
* ``rewrite``     -- hold the request head (bounded), forward it with headers set or removed,
  then ask; the byte counts then differ, so the splice needs non-zero deltas.

A stage that cannot do its job (not HTTP, a head over the bound, a head that does not complete
in time) forwards the bytes unchanged and asks for the splice anyway: the proxy then has nothing
more to do on that connection.
"""

from __future__ import annotations

import logging
import time

from .config import ServiceConfig
from .http import HttpHead, NotHttp, find_head_end, looks_like_request, parse_head, rewrite_head

__all__ = ["Stage", "make_stage"]

log = logging.getLogger("p4splice.proxy.policy")


class Stage:
    """The ``never`` policy, and the interface of every stage."""

    def __init__(self, flow: str) -> None:
        self.flow = flow
        self.wants_splice = False
        self.request: HttpHead | None = None  # what inspect/rewrite parsed
        self.outcome = ""  # why the stage asked for the splice (for logs and tests)

    @property
    def held(self) -> int:
        """Bytes read from the client that the stage has not returned yet."""
        return 0

    @property
    def hold_deadline(self) -> float | None:
        """``time.monotonic()`` by which held bytes must go out (``flush``), if any are held."""
        return None

    def read_limit(self) -> int | None:
        """At most this many bytes may be read next (None: as many as fit)."""
        return None

    def feed(self, data: bytes) -> bytes:
        """Take bytes read from the client; return what to forward to the server now."""
        return data

    def flush(self, why: str) -> bytes:
        """Give up holding (client EOF, timeout): the held bytes, unchanged."""
        return b""

    def _done(self, outcome: str) -> None:
        self.wants_splice = True
        self.outcome = outcome


class AfterBytes(Stage):
    def __init__(self, flow: str, count: int) -> None:
        super().__init__(flow)
        self.left = count
        if count == 0:
            self._done("after-bytes")

    def read_limit(self) -> int | None:
        return self.left if self.left > 0 else None

    def feed(self, data: bytes) -> bytes:
        if self.left > 0:
            self.left = max(0, self.left - len(data))
            if self.left == 0:
                self._done("after-bytes")
        return data


def _log_request(flow: str, head: HttpHead, policy: str) -> None:
    log.info(
        "request %s %s %s %s headers=%s",
        flow, head.method, head.target, head.version, dict(head.headers),
        extra={
            "event": "request", "flow": flow, "policy": policy, "method": head.method,
            "target": head.target, "version": head.version, "headers": [list(h) for h in head.headers],
        },
    )


class Inspect(Stage):
    def __init__(self, flow: str, limit: int) -> None:
        super().__init__(flow)
        self.limit = limit
        self.copy = bytearray()

    def feed(self, data: bytes) -> bytes:
        if not self.wants_splice:
            self.copy += data[: self.limit - len(self.copy)]
            self._look()
        return data

    def _look(self) -> None:
        end = find_head_end(self.copy)
        if end >= 0:
            try:
                self.request = parse_head(self.copy[:end])
            except NotHttp as exc:
                log.info("%s: not an HTTP request (%s)", self.flow, exc)
                self._finish("not-http")
                return
            _log_request(self.flow, self.request, "inspect")
            self._finish("request")
        elif not looks_like_request(self.copy):
            log.info("%s: not an HTTP request: %.60r", self.flow, bytes(self.copy))
            self._finish("not-http")
        elif len(self.copy) >= self.limit:
            log.info("%s: no end of the request head within %d bytes", self.flow, self.limit)
            self._finish("head-too-long")

    def _finish(self, outcome: str) -> None:
        self.copy = bytearray()  # nothing more to look at: free it
        self._done(outcome)


class Rewrite(Stage):
    def __init__(self, flow: str, limit: int, timeout: float, service: ServiceConfig) -> None:
        super().__init__(flow)
        self.limit = limit
        self.timeout = timeout
        self.set_headers = dict(service.set_headers)
        self.remove_headers = service.remove_headers
        self.buf = bytearray()
        self.since: float | None = None

    @property
    def held(self) -> int:
        return len(self.buf)

    @property
    def hold_deadline(self) -> float | None:
        return self.since + self.timeout if self.since is not None and self.buf else None

    def read_limit(self) -> int | None:
        # Never hold more than the bound: read only what still fits.
        return None if self.wants_splice else max(1, self.limit - len(self.buf))

    def feed(self, data: bytes) -> bytes:
        if self.wants_splice:
            return data
        if self.since is None:
            self.since = time.monotonic()
        self.buf += data
        end = find_head_end(self.buf)
        if end >= 0:
            head, rest = bytes(self.buf[:end]), bytes(self.buf[end:])
            try:
                self.request = parse_head(head)
            except NotHttp as exc:
                log.info("%s: not an HTTP request (%s); forwarded unchanged", self.flow, exc)
                return self._release("not-http")
            _log_request(self.flow, self.request, "rewrite")
            new = rewrite_head(head, self.set_headers, self.remove_headers)
            log.info("%s: request head rewritten, %d -> %d bytes", self.flow, len(head), len(new),
                     extra={"event": "rewrite", "flow": self.flow, "before": len(head), "after": len(new)})
            self.buf = bytearray()
            self._done("rewritten")
            return new + rest
        if not looks_like_request(self.buf):
            log.info("%s: not an HTTP request: %.60r; forwarded unchanged", self.flow, bytes(self.buf))
            return self._release("not-http")
        if len(self.buf) >= self.limit:
            log.info("%s: no end of the request head within %d bytes; forwarded unchanged", self.flow, self.limit)
            return self._release("head-too-long")
        return b""

    def flush(self, why: str) -> bytes:
        if self.wants_splice or not self.buf:
            return b""
        log.info("%s: request head incomplete (%s); forwarded unchanged", self.flow, why)
        return self._release(why)

    def _release(self, outcome: str) -> bytes:
        out, self.buf = bytes(self.buf), bytearray()
        self._done(outcome)
        return out


def make_stage(service: ServiceConfig, flow: str, max_header_bytes: int, head_timeout_s: float) -> Stage:
    if service.policy == "after-bytes":
        return AfterBytes(flow, service.after_bytes)
    if service.policy == "inspect":
        return Inspect(flow, max_header_bytes)
    if service.policy == "rewrite":
        return Rewrite(flow, max_header_bytes, head_timeout_s, service)
    return Stage(flow)
