"""TCP options switched off per endpoint (sysctl in the namespace), client and server disagreeing,
and a lossy, reordering, delaying network (tc netem on the veths) during and after the splice;
many connections at once."""

from __future__ import annotations

import asyncio
import time

import pytest
from p4splice.lab.topology import Lab, NetemUnavailable
from p4splice.lab.traffic import TrafficServer, transfer

from tests.e2e.conftest import HEAVY
from tests.e2e.support import assert_exact, figure, no_entries_left, run, server_side, splice_outcome, spliced

SACK, TS, WSCALE = "net.ipv4.tcp_sack", "net.ipv4.tcp_timestamps", "net.ipv4.tcp_window_scaling"
SIZE = 20_000_000 if HEAVY else 300_000

# (what is off on the client, what is off on the server)
OPTION_CASES = {
    "client-no-sack": ([SACK], []),
    "client-no-timestamps": ([TS], []),
    "client-no-wscale": ([WSCALE], []),
    "server-no-sack-no-ts": ([], [SACK, TS]),
    "server-no-wscale": ([], [WSCALE]),
    "both-none": ([SACK, TS, WSCALE], [SACK, TS, WSCALE]),
}


@pytest.mark.parametrize("case", list(OPTION_CASES))
def test_tcp_options_off(lab: Lab, case: str) -> None:
    client_off, server_off = OPTION_CASES[case]
    for key in client_off:
        lab.sysctl(lab.clients[0], key, 0)
    for key in server_off:
        lab.sysctl(lab.servers[0], key, 0)

    async def main() -> None:
        async with TrafficServer(lab.servers, lab.spec.services) as server:
            for policy in ("inspect", "rewrite"):
                result = await transfer(lab.clients[0], lab.servers[0], lab.service(policy), upload=SIZE // 3,
                                        download=SIZE, timeout=300)
                assert_exact(result, await server_side(server, result))
                assert splice_outcome(lab, result) is not None, f"{policy}: the proxy never asked to splice"

    run(main(), timeout=600 if HEAVY else 120)


def test_loss_reordering_and_delay(lab: Lab) -> None:
    """1% loss, reordering and delay on the client's and the server's cables, both ways, while the
    proxy is in the path, through the switch-over and after it."""
    netem = "delay 3ms 2ms loss 1% reorder 10% 50%"
    try:
        lab.netem(lab.clients[0], netem)
        lab.netem(lab.servers[0], netem)
    except NetemUnavailable as exc:
        pytest.skip(str(exc))

    async def main() -> None:
        async with TrafficServer(lab.servers, lab.spec.services) as server:
            results = await asyncio.gather(*(
                transfer(lab.clients[0], lab.servers[0], lab.service(p), upload=SIZE // 4, download=SIZE,
                         timeout=600 if HEAVY else 90)
                for p in ("inspect", "after-bytes", "rewrite", "never")))
            for result in results:
                assert_exact(result, await server_side(server, result))
            assert sum(spliced(lab, r) is not None for r in results) == 3

    run(main(), timeout=900 if HEAVY else 150)


def test_many_concurrent_connections(lab: Lab) -> None:
    count = 1000 if HEAVY else 100
    policies = ("inspect", "after-bytes", "rewrite", "never")

    async def main() -> None:
        async with TrafficServer(lab.servers, lab.spec.services) as server:
            jobs = [transfer(lab.clients[i % 2], lab.servers[(i // 2) % 2], lab.service(policies[i % 4]),
                             upload=2000, download=60_000, timeout=240 if HEAVY else 60) for i in range(count)]
            started = time.monotonic()
            results = await asyncio.gather(*jobs)
            elapsed = time.monotonic() - started
            for result in results:
                assert_exact(result, await server_side(server, result))
            outcomes = [splice_outcome(lab, r) for i, r in enumerate(results) if policies[i % 4] != "never"]
            assert None not in outcomes, "the proxy never asked to splice some connections"
            # A 60 kB answer can end (the server's FIN) while the proxy drains, and at 1,000 on
            # two vCPUs a drain can pass its limit: such connections stay in the path by design
            # (docs/e2e.md, known issues). The hold passes on the ACKs that ride on held data, so
            # most must splice even at 1,000 (before it did, about 2 % did there).
            figure("concurrent connections", f"{count} at once, byte-exact, in s", elapsed)
            figure("concurrent connections", "connections/s", count / elapsed)
            figure("concurrent connections", "of the splicing policies' connections: spliced / kept",
                   f"{outcomes.count('spliced')} / {outcomes.count('kept')} of {len(outcomes)}")
            share = 0.5 if HEAVY else 0.8
            assert outcomes.count("spliced") >= share * len(outcomes), \
                f"{outcomes.count('spliced')} spliced, {outcomes.count('kept')} kept of {len(outcomes)}"
            await no_entries_left(lab, timeout=60)

    run(main(), timeout=600 if HEAVY else 240)
