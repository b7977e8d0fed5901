"""Loss, reordering and delay on the client's and the server's cables, both ways, while the proxy
is in the path, through the switch-over and after it -- with the lab's userspace impairment relay
(lab/impair.py), so the scenario runs on kernels without tc netem (test_network.py's
netem test is the same idea where sch_netem exists) and on either target.

A lab of its own for this module (one client, one server, inspect and rewrite services, both
cables through the relay), healed before each test: nothing here changes the session's lab.
Each test asserts from the relay's counters that it really dropped, reordered or delayed frames,
and when: before the first splice, and after it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from p4splice.lab.impair import TO_HOST, TO_SWITCH, ImpairSpec
from p4splice.lab.topology import DEFAULT_SERVICES, Lab
from p4splice.lab.traffic import ClientResult, TrafficServer, transfer

from tests.e2e.conftest import HEAVY, ROOT, healed, lab_spec
from tests.e2e.support import assert_exact, no_entries_left, poll, run, server_side, spliced

SIZE = 20_000_000 if HEAVY else 3_000_000
TIMEOUT = 600 if HEAVY else 60

LOSS = ImpairSpec(loss=0.01, seed=1)
REORDER = ImpairSpec(reorder=0.03, reorder_gap=3, seed=2)
DELAY = ImpairSpec(delay=0.020, jitter=0.005, seed=3)  # per cable and direction: 80 ms RTT c1<->s1
ALL = ImpairSpec(loss=0.01, reorder=0.03, reorder_gap=3, delay=0.003, jitter=0.002, seed=4)

CASES = [("inspect", "download"), ("inspect", "upload"), ("rewrite", "download"), ("rewrite", "upload")]
Counters = dict[str, dict[str, dict[str, Any]]]  # host name -> direction -> counter -> value


@pytest.fixture(scope="module")
def impaired_lab() -> Iterator[Lab]:
    services = tuple(s for s in DEFAULT_SERVICES if s.name in ("inspect", "rewrite"))
    spec = lab_spec(clients=1, servers=1, services=services, log_dir=ROOT / "logs" / "e2e-impaired",
                    impair={"c1": None, "s1": None})
    with Lab(spec) as lab:
        yield lab


@pytest.fixture
def lab(impaired_lab: Lab) -> Iterator[Lab]:
    """The module's lab, healed: the proxy and the controller up, both relays passing everything."""
    yield from healed(impaired_lab)


def impair(lab: Lab, spec: ImpairSpec) -> None:
    for host in (lab.clients[0], lab.servers[0]):
        lab.impair(host, spec)


def counters(lab: Lab) -> Counters:
    return {host.name: lab.impair_stats(host) for host in (lab.clients[0], lab.servers[0])}


def total(c: Counters, name: str, direction: str | None = None) -> int:
    return sum(d[name] for per_host in c.values() for k, d in per_host.items() if direction in (None, k))


async def at_each_splice(lab: Lab, base: int, count: int) -> list[Counters]:
    """The relay's counters as each of ``count`` splices after the first ``base`` is seen."""
    snaps: list[Counters] = []
    while len(snaps) < count:
        seen = base + len(snaps)
        await poll(lambda n=seen: len(lab.events("spliced")) > n, TIMEOUT, "a splice", interval=0.005)
        snap = await asyncio.to_thread(counters, lab)
        snaps += [snap] * (len(lab.events("spliced")) - base - len(snaps))
    return snaps[:count]


async def through_the_splice(lab: Lab, cases: list[tuple[str, str]],
                             size: int = SIZE) -> tuple[list[Counters], Counters]:
    """The ``cases`` (policy, direction) at once from c1 to s1: each byte-exact both ways and
    spliced (rewrite with its non-zero C->S delta, inspect with none), no flows entries left at the
    end. Returns the relay's counters as each splice was seen (in order), and at the end."""
    base = len(lab.events("spliced"))
    async with TrafficServer(lab.servers, lab.spec.services) as server:
        watch = asyncio.create_task(at_each_splice(lab, base, len(cases)))
        tasks = [asyncio.create_task(transfer(lab.clients[0], lab.servers[0], lab.service(policy),
                                              upload=size if direction == "upload" else 1000,
                                              download=size if direction == "download" else 1000, timeout=TIMEOUT))
                 for policy, direction in cases]
        results: list[ClientResult] = await asyncio.gather(*tasks)
        end = await asyncio.to_thread(counters, lab)
        for result, (policy, _direction) in zip(results, cases, strict=True):
            rec = await server_side(server, result)
            assert_exact(result, rec)
            record = spliced(lab, result)
            assert record is not None, f"{policy}: the proxy did not splice {result.local}"
            if policy == "rewrite":
                assert b"X-Proxied-By: p4splice-lab" in rec.head
                assert record["c2s"] != 0
            else:
                assert (record["c2s"], record["s2c"]) == (0, 0)
        at_splice = await asyncio.wait_for(watch, 10)
        await no_entries_left(lab, timeout=30)
    for per_host in end.values():
        for d in per_host.values():
            assert d["overflow"] == d["kernel_drops"] == 0, f"the relay lost frames it should not have: {d}"
    return at_splice, end


@pytest.mark.parametrize(("policy", "direction"), CASES)
def test_one_percent_loss(lab: Lab, policy: str, direction: str) -> None:
    impair(lab, LOSS)

    async def main() -> None:
        (at_splice,), end = await through_the_splice(lab, [(policy, direction)])
        # The bulk direction of the transfer crossed both cables: both lost some of it, and most
        # of that after the splice (the switch alone carried the connection then).
        bulk_c, bulk_s = (TO_HOST, TO_SWITCH) if direction == "download" else (TO_SWITCH, TO_HOST)
        assert end["c1"][bulk_c]["dropped"] > 0 and end["s1"][bulk_s]["dropped"] > 0, end
        assert total(end, "dropped") > total(at_splice, "dropped"), "no loss after the splice"

    run(main(), timeout=TIMEOUT * 2)


def test_reordering(lab: Lab) -> None:
    impair(lab, REORDER)

    async def main() -> None:
        (at_splice, *_), end = await through_the_splice(lab, CASES)
        assert total(end, "reordered", TO_HOST) > 0 and total(end, "reordered", TO_SWITCH) > 0, end
        assert total(end, "reordered") > total(at_splice, "reordered"), "no reordering after the splice"
        assert total(end, "dropped") == 0

    run(main(), timeout=TIMEOUT * 2)


def test_delay_and_jitter(lab: Lab) -> None:
    """20 ms +- 5 ms each way on both cables (an 80 ms RTT): the splice happens while segments of
    the transfers are queued in the relay, i.e. in flight."""
    impair(lab, DELAY)

    async def main() -> None:
        at_splice, end = await through_the_splice(lab, CASES)
        queued = [total(snap, "queued") for snap in at_splice]
        assert max(queued) > 0, f"nothing in flight at any splice: {queued}"
        assert total(end, "delayed") == total(end, "passed") + total(end, "queued") > 1000
        assert total(end, "dropped") == total(end, "reordered") == 0

    run(main(), timeout=TIMEOUT * 2)


def test_loss_reordering_and_delay_together(lab: Lab) -> None:
    """test_network.py's netem scenario (1% loss, reordering, a few ms of delay and jitter) on the
    relay."""
    impair(lab, ALL)

    async def main() -> None:
        _, end = await through_the_splice(lab, CASES)
        for name in ("dropped", "reordered", "delayed"):
            assert total(end, name, TO_HOST) > 0 and total(end, name, TO_SWITCH) > 0, (name, end)

    run(main(), timeout=TIMEOUT * 2)


@pytest.mark.parametrize("policy", ["inspect", "rewrite"])
def test_syn_ack_lost_toward_the_client(lab: Lab, policy: str) -> None:
    """S's first SYN-ACK is lost between the switch and C (the controller has already built leg 1 on
    it); C retransmits its SYN, takes S's second SYN-ACK, and ACKs with a flight of data. The ACK
    completing leg 1 used to echo that second SYN-ACK's TSval (+T1), which P had never sent: Linux
    refuses it in SYN-RECV, P dropped C's flight, and C, its SYN retransmitted, waited a 3 s RTO
    (6.6 s for 1 MB; ~1.2 s now: the 1 s SYN timeout and the transfer)."""
    client = lab.clients[0]
    lab.impair(client, ImpairSpec(loss=1.0), direction=TO_HOST)

    async def main() -> None:
        async with TrafficServer(lab.servers, lab.spec.services) as server:
            task = asyncio.create_task(transfer(client, lab.servers[0], lab.service(policy), upload=1_000_000,
                                                download=1000, timeout=TIMEOUT))
            await poll(lambda: lab.impair_stats(client)[TO_HOST]["dropped"] > 0, 10, "the SYN-ACK dropped")
            lab.impair(client, None)  # before C's SYN goes again (1 s)
            result = await task
            assert_exact(result, await server_side(server, result))
            assert spliced(lab, result) is not None
            took = result.finished - result.started
            assert took < 4.0, f"{took:.1f} s: C's first flight was lost at the proxy (3 s RTO after a SYN retry)"
            await no_entries_left(lab, timeout=30)

    run(main(), timeout=TIMEOUT * 2)
