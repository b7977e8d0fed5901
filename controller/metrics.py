"""The controller's Prometheus metrics, in a registry of their own, and the loopback HTTP endpoint.

A registry per ``Metrics`` object (not prometheus_client's global one): two controllers in one
process -- a primary and a backup in a test -- must not share or collide on counters.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

__all__ = ["Metrics"]

log = logging.getLogger(__name__)

# P4Runtime writes take ~0.1-2 ms on p4sim and BMv2, more under load or over a network.
WRITE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 2.5)


class _FlowStates:
    """Collects the active flows by state from the orchestrator at scrape time."""

    def __init__(self, source: Callable[[], Mapping[str, int]]) -> None:
        self._source = source

    def collect(self) -> Iterable[GaugeMetricFamily]:
        g = GaugeMetricFamily("p4splice_flows", "Flows the controller tracks, by state", labels=["state"])
        try:
            for state, n in sorted(self._source().items()):
                g.add_metric([state], n)
        except Exception:  # a scrape must never take the daemon down
            log.exception("metrics: cannot collect flow states")
        yield g


class _HeldSegments:
    """What the hold's data segments became (the splice core's own counts), at scrape time."""

    # the core's stats key -> the label value
    KINDS = {"held_ack_passed": "ack_passed", "held_ack_repeated": "ack_repeated",
             "held_released": "released", "held_not_kept": "not_kept"}

    def __init__(self, source: Callable[[], Mapping[str, int]]) -> None:
        self._source = source

    def collect(self) -> Iterable[CounterMetricFamily]:
        c = CounterMetricFamily("p4splice_held_segments", "Data segments a hold sent to the controller, by "
                                "what became of them", labels=["what"])
        try:
            stats = self._source()
            for key, label in self.KINDS.items():
                c.add_metric([label], stats.get(key, 0))
        except Exception:  # a scrape must never take the daemon down
            log.exception("metrics: cannot collect held segments")
        yield c


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.handshakes = Counter("p4splice_handshakes", "Claim-1 handshakes by outcome", ["result"], registry=r)
        self.splices = Counter("p4splice_splices", "Proxies spliced out of a flow", ["kind"], registry=r)
        self.failures = Counter("p4splice_failures", "Things that went wrong, by kind", ["kind"], registry=r)
        self.packet_ins = Counter("p4splice_packet_ins", "Packet-ins by reason", ["reason"], registry=r)
        self.packet_outs = Counter("p4splice_packet_outs", "Packet-outs sent", registry=r)
        self.resets = Counter("p4splice_flow_resets", "Flows reset toward their ends", registry=r)
        self.write_latency = Histogram("p4splice_p4runtime_write_seconds", "P4Runtime Write RPC latency",
                                       buckets=WRITE_BUCKETS, registry=r)
        self._server: Any = None

    def watch_flows(self, source: Callable[[], Mapping[str, int]]) -> None:
        self.registry.register(_FlowStates(source))

    def watch_held(self, source: Callable[[], Mapping[str, int]]) -> None:
        """``source``: the splice core's stats (held_ack_passed, held_released, ...)."""
        self.registry.register(_HeldSegments(source))

    def start(self, addr: str, port: int) -> int:
        """Serve /metrics on ``addr:port`` (port 0: any free one); returns the port."""
        server, _thread = start_http_server(port, addr, registry=self.registry)
        self._server = server
        bound = server.server_address[1]
        log.info("metrics on http://%s:%d/metrics", addr, bound)
        return int(bound)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def value(self, name: str, **labels: str) -> float:
        """A sample's current value (for tests and status): e.g. value("p4splice_splices_total", kind="verbatim")."""
        v = self.registry.get_sample_value(name, labels)
        return 0.0 if v is None else v
