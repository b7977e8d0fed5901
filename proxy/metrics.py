"""The proxy's own metrics: plain counters and gauges kept in one object, read as a dict, logged
now and then, and served to Prometheus when prometheus-client is installed and a port is set."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

__all__ = ["COUNTERS", "GAUGES", "Metrics", "start_prometheus"]

log = logging.getLogger("p4splice.proxy.metrics")

COUNTERS = {
    "connections_accepted": "connections accepted from the switch",
    "connections_closed": "connections that ended (any way)",
    "connections_aborted": "connections ended with a reset (error, peer reset, shutdown)",
    "upstream_failures": "upstream connections to the server that failed",
    "bytes_c2s": "payload bytes relayed client -> server",
    "bytes_s2c": "payload bytes relayed server -> client",
    "splices_requested": "splices tried (a policy or the controller asked for them)",
    "splices_ordered": "splices the controller asked for (event splice_requested)",
    "splices_done": "connections spliced out (the controller accepted the counts)",
    "splices_refused": "splices the controller refused (the connection stays proxied)",
    "splices_unreachable": "splices not done because the controller was unreachable",
    "splices_drain_timeout": "splices given up because the sockets did not become quiet in time",
    "splices_cancelled": "prepared splices given back to the controller (splice_cancel accepted)",
    "requests_inspected": "HTTP request heads parsed",
    "controller_connects": "successful registrations with the controller",
}
GAUGES = {
    "connections_active": "connections open now",
    "buffered_bytes_max": "most bytes one connection ever held in user space",
    "controller_connected": "1 while registered with the controller",
}


class Metrics:
    """Counters and gauges by name (see COUNTERS and GAUGES). Not thread-safe: one event loop."""

    def __init__(self) -> None:
        self.values: dict[str, int] = dict.fromkeys((*COUNTERS, *GAUGES), 0)

    def add(self, name: str, n: int = 1) -> None:
        self.values[name] += n

    def set(self, name: str, value: int) -> None:
        self.values[name] = value

    def high_water(self, name: str, value: int) -> None:
        if value > self.values[name]:
            self.values[name] = value

    def as_dict(self) -> dict[str, int]:
        return dict(self.values)

    def log(self) -> None:
        snapshot = self.as_dict()
        log.info("metrics %s", " ".join(f"{k}={v}" for k, v in snapshot.items()),
                 extra={"event": "metrics", "metrics": snapshot})


def start_prometheus(metrics: Metrics, port: int, addr: str = "127.0.0.1") -> bool:
    """Serve the metrics at http://addr:port/metrics; False when prometheus-client is missing."""
    try:
        from prometheus_client import start_http_server
        from prometheus_client.core import REGISTRY, CounterMetricFamily, GaugeMetricFamily
    except ImportError:
        log.warning("metrics_port is set but prometheus-client is not installed; no endpoint")
        return False

    class _Collector:
        # Reads the live values at scrape time, so there is one set of numbers, not two.
        def collect(self) -> Iterator[Any]:
            values = metrics.as_dict()
            for name, doc in COUNTERS.items():
                yield CounterMetricFamily(f"splice_proxy_{name}", doc, value=values[name])
            for name, doc in GAUGES.items():
                yield GaugeMetricFamily(f"splice_proxy_{name}", doc, value=values[name])

    REGISTRY.register(_Collector())  # type: ignore[arg-type]
    start_http_server(port, addr=addr)
    log.info("Prometheus metrics on http://%s:%d/metrics", addr, port)
    return True
