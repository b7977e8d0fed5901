"""Fixtures of the end-to-end suite: one lab (real kernels in namespaces, the switch, the controller
and the proxy as processes) for the whole session, put back in shape before every test.

Sizes: small in ``make test``; ``P4SPLICE_E2E=heavy`` (``make e2e``) makes them the issue's
100 MB each way and 1,000 connections.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from p4splice.controller.lab.topology import Lab, LabSpec

from p4sim import netdev

HEAVY = os.environ.get("P4SPLICE_E2E", "") == "heavy"
ROOT = Path(__file__).resolve().parents[2]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "heavy: sizes of make e2e (P4SPLICE_E2E=heavy)")


@pytest.fixture(scope="session")
def lab_session() -> Iterator[Lab]:
    try:
        netdev.require_netns()
    except netdev.NetdevUnavailable as exc:
        pytest.skip(str(exc))
    build = ROOT / "build"
    if not (build / "splice.p4info.txtpb").exists():
        pytest.skip("build/splice.p4info.txtpb is missing: run 'make build'")
    spec = LabSpec(clients=2, servers=2, build_dir=build, log_dir=ROOT / "logs" / "e2e",
                   target=os.environ.get("TARGET", "p4sim"))
    with Lab(spec) as lab:
        yield lab


@pytest.fixture
def lab(lab_session: Lab) -> Iterator[Lab]:
    """The session's lab with the proxy and the controller running and nothing left from the last
    test (netem, sysctls)."""
    lab_session.heal()
    yield lab_session
    lab_session.heal()
