"""Failures under load: the proxy killed with SIGKILL mid-transfer (spliced flows finish intact;
the rest fail open or are reset, never corrupt), the controller killed and restarted mid-transfer
(spliced flows finish intact), and every connection closed leaving no flows entries."""

from __future__ import annotations

import asyncio

from p4splice.lab.topology import Lab
from p4splice.lab.traffic import TrafficServer, transfer

from tests.e2e.conftest import HEAVY
from tests.e2e.support import assert_exact, figure, never_corrupt, no_entries_left, poll, run, server_side

SIZE = 100_000_000 if HEAVY else 4_000_000


async def _kill_proxy_mid_transfer(lab: Lab, never: int) -> tuple[list[str], list[str]]:
    """Three spliced downloads and ``never`` proxied ones; SIGKILL the proxy while all are busy.
    Returns the verdicts (never_corrupt) of the spliced and of the proxied connections."""
    base = len(lab.events("spliced"))
    async with TrafficServer(lab.servers, lab.spec.services) as server:
        spliced_jobs = [asyncio.create_task(transfer(lab.clients[0], lab.servers[0], lab.service(p),
                                                     download=SIZE, timeout=600))
                        for p in ("inspect", "after-bytes", "rewrite")]
        proxied_jobs = [asyncio.create_task(transfer(lab.clients[1], lab.servers[1], lab.service("never"),
                                                     download=SIZE, timeout=20)) for _ in range(never)]
        # Mid-transfer: the three are spliced and bytes are flowing through the never ones.
        await poll(lambda: len(lab.events("spliced")) >= base + 3, 30, "three splices")
        await poll(lambda: never == 0 or any(s.sent > 0 for s in server.records.values() if s.server_port == 8003),
                   30, "bytes through the proxy")
        lab.kill_proxy()
        spliced_results = await asyncio.gather(*spliced_jobs)
        for result in spliced_results:
            assert_exact(result, await server_side(server, result))
        proxied = [never_corrupt(r) for r in await asyncio.gather(*proxied_jobs)]
    return [never_corrupt(r) for r in spliced_results], proxied


def test_proxy_killed_mid_transfer_spliced_flows_finish(lab: Lab) -> None:
    async def main() -> None:
        spliced_verdicts, _ = await _kill_proxy_mid_transfer(lab, never=0)
        figure("proxy SIGKILL", "spliced downloads byte-exact after it", f"{spliced_verdicts.count('ok')} of 3")
        assert spliced_verdicts == ["ok"] * 3
        await no_entries_left(lab, timeout=30)

    run(main(), timeout=900 if HEAVY else 120)


def test_proxy_killed_mid_transfer_proxied_flows_fail_cleanly(lab: Lab) -> None:
    # The proxy arms SO_LINGER 0 on its relay sockets, so its dying kernel resets the legs
    # instead of ending them with a FIN the switch would carry on as a clean, truncated end.
    async def main() -> None:
        _, proxied = await _kill_proxy_mid_transfer(lab, never=2)
        figure("proxy SIGKILL", "proxied downloads: complete / reset / corrupt",
               f"{proxied.count('ok')} / {proxied.count('failed')} / 0")
        assert set(proxied) <= {"ok", "failed"}

    run(main(), timeout=900 if HEAVY else 45)


def test_controller_restarted_mid_transfer(lab: Lab) -> None:
    async def main() -> None:
        base = len(lab.events("spliced"))
        async with TrafficServer(lab.servers, lab.spec.services) as server:
            jobs = [asyncio.create_task(transfer(lab.clients[i % 2], lab.servers[i % 2], lab.service(p),
                                                 upload=SIZE // 4, download=SIZE, timeout=600))
                    for i, p in enumerate(("inspect", "after-bytes", "rewrite", "inspect"))]
            await poll(lambda: len(lab.events("spliced")) >= base + 4, 30, "four splices")
            lab.kill_controller()
            # Spliced flows forward on the switch alone while the controller is away.
            await poll(lambda: any(s.sent > SIZE // 8 for s in server.records.values()), 30, "progress without it")
            await asyncio.to_thread(lab.start_controller)
            await poll(lambda: asyncio.to_thread(lab.proxy_registered), 30, "the proxy back")
            for result in await asyncio.gather(*jobs):
                assert_exact(result, await server_side(server, result))
            # The restarted controller rebuilt the flows from the switch and tears them down.
            await no_entries_left(lab, timeout=30)

    run(main(), timeout=900 if HEAVY else 120)
