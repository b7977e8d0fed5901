"""Shared pytest fixtures and helpers for tests that need network namespaces and veth pairs.

Import what you use explicitly; fixtures are registered under their ``name=``, so import the
``*_fixture`` function and request the short name::

    from tests.p4sim.netns_fixtures import topology_fixture, wait_for  # noqa: F401

    def test_x(topology): ...

There is deliberately no conftest.py. Tests using :func:`topology` skip, with the kernel's
reason, where namespaces cannot be created (not root, no CAP_NET_ADMIN, ...).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

import pytest
from p4splice.lab import netdev

T = TypeVar("T")

#: Each suite's resources carry this prefix (and the PID), see p4splice.lab.netdev.
TEST_PREFIX = "p4t"


def wait_for(cond: Callable[[], T], timeout: float = 3.0, interval: float = 0.005,
             what: str = "condition") -> T:
    """Poll ``cond`` until it returns something truthy; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


@pytest.fixture(scope="session", name="netns_ok")
def netns_ok_fixture() -> None:
    """Skip (with the reason) unless this process may create namespaces and veths."""
    try:
        netdev.require_netns()
    except netdev.NetdevUnavailable as exc:
        pytest.skip(str(exc))
    netdev.cleanup_stale(TEST_PREFIX)


@pytest.fixture(name="topology")
def topology_fixture(netns_ok: None) -> Iterator[netdev.Topology]:
    """A fresh Topology, torn down after the test whatever happened."""
    with netdev.Topology(prefix=TEST_PREFIX) as topo:
        yield topo


def raw_socket_in(netns: str | None, ifname: str) -> socket.socket:
    """An AF_PACKET socket bound to ``ifname`` inside ``netns`` (for the far end of a link)."""
    if netns is None:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
    else:
        with netdev.netns_socket(netns):
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
    sock.bind((ifname, 0x0003))
    return sock


def recv_matching(sock: socket.socket, match: Callable[[bytes], bool], timeout: float = 2.0) -> bytes:
    """Receive on ``sock`` until a frame (not one it sent) satisfies ``match``."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            pytest.fail("expected frame not received")
        sock.settimeout(left)
        try:
            data, addr = sock.recvfrom(65535)
        except TimeoutError:
            pytest.fail("expected frame not received")
        if addr[2] != 4 and match(data):  # 4 = PACKET_OUTGOING
            return data
