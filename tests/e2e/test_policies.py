"""Byte-exact downloads and uploads through each policy of the proxy, with real kernels at both
ends: inspect, after-bytes and rewrite splice the proxy out (rewrite with non-zero deltas), never
keeps it in the path; and a server-first protocol."""

from __future__ import annotations

import pytest
from p4splice.lab import netdev
from p4splice.lab.topology import Host, Lab
from p4splice.lab.traffic import ClientResult, TrafficServer, transfer

from tests.e2e.conftest import HEAVY
from tests.e2e.support import (
    assert_exact,
    figure,
    flow_of,
    no_entries_left,
    poll,
    rate_mbit,
    run,
    server_side,
    spliced,
)

SIZE = 100_000_000 if HEAVY else 2_000_000


@pytest.mark.parametrize("direction", ["download", "upload"])
@pytest.mark.parametrize("policy", ["inspect", "after-bytes", "never", "rewrite"])
def test_policy_byte_exact(lab: Lab, policy: str, direction: str) -> None:
    service = lab.service(policy)
    up, down = (SIZE, 1000) if direction == "upload" else (1000, SIZE)

    async def main() -> None:
        async with TrafficServer(lab.servers, lab.spec.services) as server:
            result = await transfer(lab.clients[0], lab.servers[0], service, upload=up, download=down,
                                    timeout=600 if HEAVY else 60)
            rec = await server_side(server, result)
            assert_exact(result, rec)
            record = spliced(lab, result)
            if policy == "never":
                assert record is None
            else:
                assert record is not None, f"{policy}: the proxy did not splice {result.local}"
            if policy == "rewrite":
                assert b"X-Proxied-By: p4splice-lab" in rec.head
                assert record is not None and record["c2s"] != 0
            elif record is not None:
                assert (record["c2s"], record["s2c"]) == (0, 0)
            figure(f"{policy} {direction}", f"{max(up, down) / 1e6:g} MB, byte-exact, "
                   + ("spliced" if record is not None else "proxied throughout") + ", Mbit/s", rate_mbit(result))
            await no_entries_left(lab)

    run(main(), timeout=900 if HEAVY else 120)


def test_server_first_protocol(lab: Lab) -> None:
    """The server greets before the client says anything: the controller holds the banner until the
    proxy's upstream leg exists, then the proxy relays it and splices after the client's 8 bytes."""
    service = lab.service("banner")

    async def main() -> None:
        async with TrafficServer(lab.servers, lab.spec.services) as server:
            result = await transfer(lab.clients[1], lab.servers[1], service, upload=20_000, download=SIZE // 2,
                                    timeout=600 if HEAVY else 60)
            rec = await server_side(server, result)
            assert_exact(result, rec)
            assert spliced(lab, result) is not None

    run(main(), timeout=900 if HEAVY else 120)


def test_spliced_upload_outlives_the_proxy_sockets_reset(lab: Lab) -> None:
    """After the splice the proxy resets its two sockets; the switch drops those RSTs but copies them
    to the controller, which must not take them for the connection's end (it did: the entries went
    after the linger and a long upload died half-way)."""
    service = lab.service("rewrite")  # non-zero deltas: a removed entry shows

    async def main() -> None:
        async with TrafficServer(lab.servers, lab.spec.services) as server:
            result = await transfer(lab.clients[0], lab.servers[0], service, upload=12_000_000, download=1000,
                                    timeout=120)
            assert_exact(result, await server_side(server, result))
            assert spliced(lab, result) is not None

    run(main(), timeout=180)


@pytest.mark.parametrize("policy", ["never", "rewrite"])
def test_a_client_port_used_again_at_once(lab: Lab, policy: str) -> None:
    """A client connects again from the port of a connection that has just closed, while that
    connection's entries still linger in the switch (a kernel may pick the port again within
    seconds): the new connection is proxied afresh, not translated by the old one's entries."""
    service = lab.service(policy)
    client = lab.clients[0]

    async def main() -> None:
        async with TrafficServer(lab.servers, lab.spec.services) as server:
            port = 40000 + (7 if policy == "never" else 9)
            for n in range(2):
                # the kernel lets a port go again once its connection is gone (the client closes
                # last, so no TIME_WAIT): wait for that, as a client's kernel would
                await poll(lambda: not sockets_on(client, port), what=f"port {port} free")
                result = await transfer(client, lab.servers[0], service, upload=1000, download=300_000,
                                        timeout=30, local_port=port)
                assert result.local[1] == port, f"connection {n + 1}: {result.error}"
                assert_exact(result, await server_side(server, result))
                if policy == "rewrite":
                    # each connection spliced on its own: the second one too, which the old entries
                    # (the controller refusing a splice of a closed flow) would have kept from it
                    await splices_reach(lab, result, n + 1)
            await no_entries_left(lab)

    run(main(), timeout=120)


async def splices_reach(lab: Lab, result: ClientResult, count: int) -> None:
    await poll(lambda: len(splices_of(lab, result)) == count, what=f"connection {count} on the port spliced")


def splices_of(lab: Lab, result: ClientResult) -> list[object]:
    """The proxy's ``spliced`` records of ``result``'s 4-tuple, every connection on it."""
    return [ev for ev in lab.events("spliced") if ev.record.get("flow") == flow_of(result)]


def sockets_on(host: Host, port: int) -> list[str]:
    """The TCP sockets of ``host`` on local ``port``, in any state (ss's lines)."""
    out = netdev.run(["ss", "-Htan", f"sport = :{port}"], netns=host.netns).stdout
    return [line for line in out.splitlines() if line.strip()]
