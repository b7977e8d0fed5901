"""The proxy host's cable pulled out of the switch while the proxy process lives on: the controller
finds the port silent from the data path (its ICMP probes go unanswered; the proxy's heartbeats
over the Unix socket carry on regardless), splices what it can and resets the rest, keeps the
proxy registered but out of service while the port stays dark (no registration churn), and puts
it back in service once the cable is in again."""

from __future__ import annotations

import asyncio

from p4splice.lab.topology import Lab
from p4splice.lab.traffic import TrafficServer, transfer

from tests.e2e.conftest import HEAVY
from tests.e2e.support import assert_exact, never_corrupt, no_entries_left, poll, run, server_side

SIZE = 100_000_000 if HEAVY else 4_000_000


def _status(lab: Lab) -> dict:
    return lab.admin("status", timeout=5.0)


def _probe(lab: Lab) -> dict:
    """The controller's view of the lab proxy: its port probe counts and whether it is in service."""
    for p in _status(lab).get("proxies", []):
        if p["name"] == lab.spec.proxy_name:
            return {**(p.get("port_probe") or {}), "in_service": p.get("in_service")}
    return {}


def _probe_replies(lab: Lab) -> int:
    return int(_probe(lab).get("replies", 0))


def _registrations(lab: Lab) -> int:
    return sum(1 for e in lab.events() if str(e.record.get("message", "")).startswith("registered with"))


def test_proxy_port_down_is_found_from_the_data_path(lab: Lab) -> None:
    async def main() -> None:
        name = lab.spec.proxy_name
        # The probes are answered while the cable is in.
        await poll(lambda: asyncio.to_thread(_probe_replies, lab), 10, "port probes answered")
        downs = _status(lab).get("ports_down", {}).get(name, 0)
        registrations = _registrations(lab)
        base = len(lab.events("spliced"))
        async with TrafficServer(lab.servers, lab.spec.services) as server:
            spliced = asyncio.create_task(transfer(lab.clients[0], lab.servers[0], lab.service("inspect"),
                                                   download=SIZE, timeout=300))
            proxied = asyncio.create_task(transfer(lab.clients[1], lab.servers[1], lab.service("never"),
                                                   download=SIZE, timeout=60))
            await poll(lambda: len(lab.events("spliced")) > base, 30, "the inspect flow spliced")
            await poll(lambda: any(s.sent > 0 for s in server.records.values() if s.server_port == 8003),
                       30, "bytes through the proxy")
            lab.cut(lab.proxy)
            assert lab.proxy_alive()  # the process lives: only the data path can tell
            await poll(lambda: asyncio.to_thread(lambda: _status(lab).get("ports_down", {}).get(name, 0) > downs),
                       15, "the controller to find the port down")
            result = await spliced
            assert_exact(result, await server_side(server, result))  # never touched the proxy's port
            # The proxied connection cannot finish through a proxy that is cut off: reset, not corrupt.
            assert never_corrupt(await proxied) == "failed"
            # Dark, and it stays so quietly: the proxy keeps its registration, out of service, and
            # the port is found down once, however many probes go unanswered meanwhile.
            dark = await asyncio.to_thread(_probe, lab)
            assert dark["dark"] and dark["in_service"] is False
            await poll(lambda: asyncio.to_thread(lambda: _probe(lab)["probes"] >= dark["probes"] + 3), 15,
                       "more probes of the dark port")
            assert _status(lab)["ports_down"][name] == downs + 1
            assert _registrations(lab) == registrations
            # A connection to the service meanwhile runs end to end, unproxied, byte-exact.
            direct = await transfer(lab.clients[1], lab.servers[1], lab.service("never"), download=SIZE // 4,
                                    timeout=60)
            assert_exact(direct, await server_side(server, direct))
            lab.cut(lab.proxy, cut=False)
            await poll(lambda: asyncio.to_thread(lambda: _probe(lab).get("in_service")), 15, "the proxy back in service")
            assert _registrations(lab) == registrations
            told = [str(e.record.get("message", "")) for e in lab.events()]
            assert any(m.startswith("controller: switch port") and "dark" in m for m in told)
            assert any(m.startswith("controller: switch port") and "answers again" in m for m in told)
            again = await transfer(lab.clients[0], lab.servers[0], lab.service("inspect"), download=SIZE // 4,
                                   timeout=120)
            assert_exact(again, await server_side(server, again))
        await no_entries_left(lab, timeout=30)

    run(main(), timeout=900 if HEAVY else 150)
