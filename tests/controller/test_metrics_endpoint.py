"""The metrics endpoint under a flood of connections: a bounded number of threads whatever comes
in (connections past the bound are closed at once) and scrapes served again once it is over."""

from __future__ import annotations

import select
import socket
import threading
import time
import urllib.request

from p4splice.controller.metrics import MAX_SCRAPES, SCRAPE_TIMEOUT, Metrics


def _scrape(port: int) -> bytes:
    return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()


def test_a_flood_of_idle_connections_costs_bounded_threads() -> None:
    m = Metrics()
    m.failures.labels("x").inc()
    port = m.start("127.0.0.1", 0)
    try:
        assert b'p4splice_failures_total{kind="x"} 1.0' in _scrape(port)
        before = threading.active_count()
        flood = [socket.create_connection(("127.0.0.1", port)) for _ in range(5 * MAX_SCRAPES)]
        try:
            # the connections past the bound are closed by the server at once; the others stay
            # open, idle, each holding one of the bounded threads
            closed: set[socket.socket] = set()
            deadline = time.monotonic() + SCRAPE_TIMEOUT / 2  # well before an idle one times out
            while len(closed) < 4 * MAX_SCRAPES:
                assert time.monotonic() < deadline, f"only {len(closed)} closed by the server"
                ready, _, _ = select.select([s for s in flood if s not in closed], [], [], 0.1)
                closed.update(s for s in ready if s.recv(1) == b"")
            assert threading.active_count() <= before + MAX_SCRAPES
        finally:
            for s in flood:
                s.close()
        # the flood over, a scrape is served again
        end = time.monotonic() + 10
        while True:
            try:
                assert b"p4splice_failures_total" in _scrape(port)
                break
            except OSError:
                assert time.monotonic() < end, "the endpoint never served again"
                time.sleep(0.05)  # retry interval of the scrape, bounded by the deadline above
    finally:
        m.stop()
