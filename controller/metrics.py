"""The controller's Prometheus metrics, in a registry of their own, and the loopback HTTP endpoint.

A registry per ``Metrics`` object (not prometheus_client's global one): two controllers in one
process -- a primary and a backup in a test -- must not share or collide on counters.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Iterable, Mapping
from http.server import ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import MetricsHandler

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


# The endpoint serves at most this many connections at once, each for at most SCRAPE_TIMEOUT
# seconds idle: connections past that are closed at once (a scraper retries), so a flood of
# connections costs a bounded number of threads, never one each.
MAX_SCRAPES = 8
SCRAPE_TIMEOUT = 5.0


class _BoundedServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64  # accepted and closed at once past the bound, rather than left in SYN retries

    def __init__(self, addr: tuple[str, int], handler: Any, limit: int) -> None:
        if ":" in addr[0]:
            self.address_family = socket.AF_INET6
        self._slots = threading.BoundedSemaphore(limit)
        super().__init__(addr, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.handshakes = Counter("p4splice_handshakes", "Claim-1 handshakes by outcome", ["result"], registry=r)
        self.splices = Counter("p4splice_splices", "Proxies spliced out of a flow", ["kind"], registry=r)
        self.failures = Counter("p4splice_failures", "Things that went wrong, by kind", ["kind"], registry=r)
        self.packet_ins = Counter("p4splice_packet_ins", "Packet-ins by reason", ["reason"], registry=r)
        self.packet_outs = Counter("p4splice_packet_outs", "Packet-outs sent", registry=r)
        self.fins_reported = Counter("p4splice_fins_reported", "FINs the flows entries forwarded, as the switch's "
                                     "fin_t digests report them", registry=r)
        self.digests = Counter("p4splice_handshake_digests", "Steps of handshakes the switch runs, as its digests "
                               "report them, by the state reached", ["state"], registry=r)
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
        """Serve /metrics on ``addr:port`` (port 0: any free one), at most MAX_SCRAPES
        connections at a time; returns the port."""
        handler = type("ScrapeHandler", (MetricsHandler.factory(self.registry),), {"timeout": SCRAPE_TIMEOUT})
        server = _BoundedServer((addr, port), handler, MAX_SCRAPES)
        threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
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
