"""Fixtures of the end-to-end suite: one lab (real kernels in namespaces, the switch, the controller
and the proxy as processes) for the whole session, put back in shape before every test.

Sizes: small in ``make test``; ``P4SPLICE_E2E=heavy`` (``make e2e``) makes them the full
100 MB each way and 1,000 connections.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from p4splice.lab import netdev
from p4splice.lab.topology import Lab, LabSpec

HEAVY = os.environ.get("P4SPLICE_E2E", "") == "heavy"
ROOT = Path(__file__).resolve().parents[2]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "heavy: sizes of make e2e (P4SPLICE_E2E=heavy)")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The figures the suite took (tests/e2e/support.figure), one table at the end of the run:
    what docs/e2e.md quotes can be checked against the run's own output."""
    from tests.e2e.support import FIGURES

    if not FIGURES:
        return
    width = max(len(t) for t, _, _ in FIGURES)
    terminalreporter.section(f"end-to-end figures ({'make e2e sizes' if HEAVY else 'make test sizes'}, "
                             f"{os.environ.get('TARGET', 'p4sim')})")
    for test, name, value in FIGURES:
        terminalreporter.write_line(f"{test:<{width}}  {name}: {value}")


def lab_spec(**overrides: Any) -> LabSpec:
    """The suite's LabSpec (2 clients, 2 servers, build/, logs/e2e/, $TARGET) with ``overrides``;
    skips the test where the lab cannot run. ``P4SPLICE_E2E_PCAP=<dir>`` has the switch write
    per-port pcaps there (for a failure's evidence)."""
    try:
        netdev.require_netns()
    except netdev.NetdevUnavailable as exc:
        pytest.skip(str(exc))
    build = ROOT / "build"
    if not (build / "splice.p4info.txtpb").exists():
        pytest.skip("build/splice.p4info.txtpb is missing: run 'make build'")
    pcap = os.environ.get("P4SPLICE_E2E_PCAP")
    kwargs: dict[str, Any] = {"clients": 2, "servers": 2, "build_dir": build, "log_dir": ROOT / "logs" / "e2e",
                              "target": os.environ.get("TARGET", "p4sim"), "pcap_dir": Path(pcap) if pcap else None}
    if HEAVY:
        # 1,000 connections at once saturate two vCPUs (Python switch, controller and proxy):
        # the proxy's heartbeats then come seconds apart, and 3 x 1 s would declare it dead.
        kwargs["heartbeat_ms"] = 3000
    kwargs.update(overrides)
    return LabSpec(**kwargs)


def healed(lab: Lab) -> Iterator[Lab]:
    """A long-lived lab for one test: healed before and after it (the body of a ``lab`` fixture)."""
    lab.heal()
    yield lab
    lab.heal()


@pytest.fixture(scope="session")
def lab_session() -> Iterator[Lab]:
    with Lab(lab_spec()) as lab:
        yield lab


@pytest.fixture
def lab(lab_session: Lab) -> Iterator[Lab]:
    """The session's lab with the proxy and the controller running and nothing left from the last
    test (netem, sysctls)."""
    yield from healed(lab_session)
