"""Tests of p4splice.lab.netdev: namespaces, veth pairs, offloads, cleanup (also of leftovers)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from p4splice.lab import netdev

from tests.p4sim.netns_fixtures import TEST_PREFIX, netns_ok_fixture, topology_fixture  # noqa: F401


def test_create_and_cleanup(netns_ok) -> None:
    with netdev.Topology(prefix=TEST_PREFIX) as topo:
        ns1, ns2 = topo.add_netns(), topo.add_netns()
        v = topo.add_veth(ns_a=ns1, ns_b=ns2, mtu=1400, mac_a="02:00:00:00:01:01")
        root = topo.add_veth()
        assert {ns1, ns2} <= set(netdev.list_netns())
        assert netdev.link_exists(v.a, ns1) and netdev.link_exists(v.b, ns2)
        assert netdev.link_exists(root.a) and netdev.link_exists(root.b)
        assert all(len(n) <= 15 for n in (v.a, v.b, root.a, root.b))
        out = topo.exec(ns1, ["ip", "link", "show", "dev", v.a]).stdout
        assert "mtu 1400" in out and "02:00:00:00:01:01" in out and "UP" in out
    assert not {ns1, ns2} & set(netdev.list_netns())
    assert not netdev.link_exists(root.a) and not netdev.link_exists(root.b)


def test_cleanup_on_exception(netns_ok) -> None:
    with pytest.raises(RuntimeError), netdev.Topology(prefix=TEST_PREFIX) as topo:
        ns = topo.add_netns()
        v = topo.add_veth(ns_b=ns)
        raise RuntimeError("test body failed")
    assert ns not in netdev.list_netns()
    assert not netdev.link_exists(v.a)


def test_offloads_are_off(topology) -> None:
    ns = topology.add_netns()
    v = topology.add_veth(ns_b=ns)
    for ifname, where in ((v.a, None), (v.b, ns)):
        feats = netdev.offload_features(ifname, where)
        for name in netdev.OFFLOADS_VERIFY:
            on, fixed = feats[name]
            assert not on or fixed, f"{ifname}: {name} still on"
        # The ones that matter for "frames are the bytes on the wire" are not fixed on veth.
        for name in ("tx-checksumming", "generic-segmentation-offload", "tcp-segmentation-offload",
                     "generic-receive-offload", "rx-vlan-offload"):
            assert feats[name][0] is False


def test_addresses_routes_and_traffic(topology) -> None:
    h1, h2 = topology.add_netns(), topology.add_netns()
    v = topology.add_veth(ns_a=h1, ns_b=h2)
    topology.add_address(v.a, "10.77.0.1/24", netns=h1)
    topology.add_address(v.b, "10.77.0.2/24", netns=h2)
    topology.add_route("10.78.0.0/16", via="10.77.0.2", netns=h1)
    assert "10.78.0.0/16 via 10.77.0.2" in topology.exec(h1, ["ip", "route"]).stdout
    # Real traffic between the namespaces (a UDP datagram through Python in each netns).
    rx = topology.popen(h2, [sys.executable, "-c",
                             "import socket;s=socket.socket(2,2);s.bind(('10.77.0.2',9999));"
                             "s.settimeout(5);print(s.recv(100).decode())"],
                        stdout=subprocess.PIPE, text=True)
    try:
        # Resend until received: the receiver may not be bound yet (no sleeps as readiness).
        sender = ("import socket,time;s=socket.socket(2,2)\n"
                  "for _ in range(100):\n s.sendto(b'over-veth',('10.77.0.2',9999));time.sleep(0.02)")
        snd = topology.popen(h1, [sys.executable, "-c", sender])
        out, _ = rx.communicate(timeout=10)
        snd.kill()
        snd.wait()
        assert out.strip() == "over-veth"
    finally:
        if rx.poll() is None:
            rx.kill()
            rx.wait()


def test_unique_names_do_not_collide(topology) -> None:
    names = {topology.add_netns() for _ in range(5)}
    assert len(names) == 5
    pairs = [topology.add_veth(offloads_off=False) for _ in range(3)]
    assert len({p.a for p in pairs} | {p.b for p in pairs}) == 6


def test_cleanup_stale_removes_dead_owners_only(netns_ok) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    dead_stem = f"{TEST_PREFIX}{netdev._b36(dead.pid, 5)}zz"
    netdev.run(["ip", "netns", "add", dead_stem + "n"])
    netdev.run(["ip", "link", "add", dead_stem + "a", "type", "veth", "peer", "name", dead_stem + "b"])
    with netdev.Topology(prefix=TEST_PREFIX) as topo:
        live_ns = topo.add_netns()
        removed = netdev.cleanup_stale(TEST_PREFIX)
        assert dead_stem + "n" in removed
        assert dead_stem + "a" in removed or dead_stem + "b" in removed
        assert dead_stem + "n" not in netdev.list_netns()
        assert not netdev.link_exists(dead_stem + "a") and not netdev.link_exists(dead_stem + "b")
        assert live_ns in netdev.list_netns()  # ours: our PID is alive


def test_delete_link_and_tap(topology) -> None:
    tap = topology.add_tap()
    assert netdev.link_exists(tap)
    topology.delete_link(tap)
    assert not netdev.link_exists(tap)


def test_refusal_is_reported_as_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(netdev.os, "geteuid", lambda: 1000)
    with pytest.raises(netdev.NetdevUnavailable):
        netdev.run(["ip", "link", "add", "p4tnope0", "type", "dummy", "nonsense-arg"])
    assert "need root" in (netdev._probe() or "")


def test_bad_names_rejected(topology) -> None:
    with pytest.raises(ValueError):
        topology.add_veth("x" * 16, "y")
    with pytest.raises(ValueError):
        netdev.Topology(prefix="Bad-Prefix")
    with pytest.raises(netdev.NetdevError):
        topology.add_address("p4tdoesnotexist", "10.0.0.1/24")
