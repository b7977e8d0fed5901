"""ProxyApiClient against a real ProxyApiServer on a Unix socket: every op, error replies as
ApiError, automatic heartbeats, events, controller going away, many proxies at once."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from p4splice.controller.proxyapi import (
    MAX_LINE,
    ApiError,
    ConnectionLost,
    Deltas,
    Event,
    Flow,
    ProxyApiClient,
    ProxyApiServer,
)

from tests.controller.test_proxyapi_support import FLOW, FLOW_JSON, MAC, FakeService, poll, run, serving


@pytest.fixture
def sock(tmp_path: Path) -> Path:
    return tmp_path / "run" / "proxy.sock"


def test_every_op_through_the_client(sock: Path) -> None:
    service = FakeService()
    service.add_flow("p1")

    async def main() -> None:
        async with serving(sock, service) as server, ProxyApiClient(sock, "p1") as client:
            assert client.controller == "p4splice 0.1.0"
            assert await client.register(3, MAC, heartbeat_ms=400) == 400 and client.registered
            assert server.registered == {"p1"}
            now = await client.heartbeat()
            assert abs(now - asyncio.get_running_loop().time() * 1000) < 1000
            # A flow in any of its three spellings.
            assert await client.splice_prepare(FLOW) == "holding"
            assert await client.splice_cancel(FLOW) == "proxied"
            with pytest.raises(ApiError) as err:
                await client.splice_cancel(FLOW)
            assert err.value.code == "conflict"
            assert await client.splice_prepare(FLOW) == "holding"
            assert (await client.flow(("10.0.1.1:40000", "10.0.2.1:80")))["state"] == "holding"
            deltas = await client.splice(FLOW_JSON, a_c=10, b_s=10, a_s=7, b_c=9)
            assert deltas == Deltas(0, 2)
            assert [f["state"] for f in await client.flows()] == ["spliced"]
            await client.bye()
            assert not client.registered and server.registered == frozenset()
            assert service.called("bye") == [("p1",)]

    run(main())


def test_error_replies_raise_api_error(sock: Path) -> None:
    service = FakeService()

    async def main() -> None:
        async with serving(sock, service), ProxyApiClient(sock, "p1") as client:
            with pytest.raises(ApiError) as err:
                await client.flows()
            assert err.value.code == "not_registered"
            await client.register(3, MAC)
            with pytest.raises(ApiError) as err:
                await client.flow(FLOW)
            assert err.value.code == "not_found" and "10.0.1.1:40000" in err.value.message
            with pytest.raises(ApiError) as err:
                await client.request("splice", flow=FLOW_JSON, a_c=1)
            assert err.value.code == "bad_request" and "'b_s'" in err.value.message
            with pytest.raises(ValueError):  # caught before it is sent
                await client.splice_prepare(("10.0.1.1:40000", "10.0.2.1:0"))
            with pytest.raises(ValueError, match="line limit"):
                await client.request("flows", pad="x" * MAX_LINE)
            assert (await client.flows()) == []  # the connection is fine

    run(main())


def test_connect_refusals(sock: Path) -> None:
    async def main() -> None:
        with pytest.raises(FileNotFoundError):
            await ProxyApiClient(sock, "p1").connect()
        async with serving(sock, allowed_uids={4242}):
            with pytest.raises(ApiError) as err:
                await ProxyApiClient(sock, "p1").connect()
            assert err.value.code == "unauthorized"
        async with serving(sock):
            with pytest.raises(ApiError) as err:
                await ProxyApiClient(sock, "p1", version=7).connect()
            assert err.value.code == "unsupported_version" and err.value.details == {"supported": [1]}
            async with ProxyApiClient(sock, "p1"):
                with pytest.raises(ApiError) as err:
                    await ProxyApiClient(sock, "p1").connect()
                assert err.value.code == "conflict"

    run(main())


def test_automatic_heartbeats_keep_the_proxy_alive(sock: Path) -> None:
    service = FakeService()

    async def main() -> None:
        async with serving(sock, service) as server, ProxyApiClient(sock, "p1") as client:
            await client.register(3, MAC, heartbeat_ms=150)
            # Four intervals: past the warning and the deadline of a silent proxy.
            await poll(lambda: len(service.called("heartbeat")) >= 4, what="four heartbeats")
            assert service.dead == [] and server.registered == {"p1"}

    run(main())


def test_a_failing_quiescent_callback_does_not_stop_the_heartbeats(sock: Path) -> None:
    service = FakeService()

    def broken() -> list[dict[str, object]]:
        raise RuntimeError("the proxy's bug")

    async def main() -> None:
        async with serving(sock, service) as server, ProxyApiClient(sock, "p1") as client:
            client.quiescent = broken
            await client.register(3, MAC, heartbeat_ms=150)
            await poll(lambda: len(service.called("heartbeat")) >= 4, what="four heartbeats")
            assert service.dead == [] and server.registered == {"p1"} and client.registered

    run(main())


def test_events_by_iterator_and_by_callback(sock: Path) -> None:
    async def main() -> None:
        got: list[Event] = []
        async with (
            serving(sock) as server,
            ProxyApiClient(sock, "p1") as it_client,
            ProxyApiClient(sock, "p2", on_event=got.append) as cb_client,
        ):
            assert it_client.connected and cb_client.connected
            other = Flow("10.0.1.9", 5000, "10.0.2.1", 443)
            assert server.send_event("p1", "flow_reset", flow=FLOW, reason="server refused")
            assert server.send_event("p1", "flow_closed", flow=other)
            assert server.send_event("p2", "flow_closed", flow=other)
            events = it_client.events()
            first = await anext(events)
            assert (first.name, first.flow, first.fields["reason"]) == ("flow_reset", FLOW, "server refused")
            second = await anext(events)
            assert (second.name, second.flow) == ("flow_closed", other)
            await poll(lambda: got, what="callback event")
            assert got[0].name == "flow_closed" and got[0].flow == other
            await it_client.close()
            with pytest.raises(StopAsyncIteration):
                await anext(events)

    run(main())


def test_heartbeat_missed_reaches_the_client(sock: Path) -> None:
    service = FakeService()

    async def main() -> None:
        async with serving(sock, service), ProxyApiClient(sock, "p1") as client:
            service.grant = 100
            await client.register(3, MAC, heartbeat_ms=1000)
            # A stalled proxy: its heartbeats stop (private hook), its connection stays.
            client._stop_heartbeat()
            event = await asyncio.wait_for(anext(client.events()), 3)
            assert event.name == "heartbeat_missed" and isinstance(event.fields["deadline_ms"], int)
            await poll(lambda: service.dead == ["p1"], what="proxy_dead")
            with pytest.raises(ApiError) as err:
                await client.heartbeat()
            assert err.value.code == "not_registered"

    run(main())


def test_controller_going_away(sock: Path) -> None:
    service = FakeService()
    service.add_flow("p1", state="holding")
    service.gate = asyncio.Event()  # the splice will still be pending when the controller goes

    async def main() -> None:
        server = ProxyApiServer(sock, service)
        await server.start()
        client = ProxyApiClient(sock, "p1")
        await client.connect()
        await client.register(3, MAC)
        splice = asyncio.ensure_future(client.splice(FLOW, 0, 0, 0, 0))
        await poll(lambda: service.called("splice"), what="splice in the service")
        events = client.events()
        await server.close()
        with pytest.raises(ConnectionLost):
            await splice
        with pytest.raises(ConnectionLost):
            await anext(events)
        with pytest.raises(ConnectionLost):
            await client.flows()
        assert not client.connected and not client.registered
        await client.close()
        # Reconnecting is the caller's move: a new client, once a controller is back.
        async with serving(sock, service), ProxyApiClient(sock, "p1") as again:
            assert await again.register(3, MAC) == 1000

    run(main())


def test_request_timeout(sock: Path) -> None:
    service = FakeService()
    service.add_flow("p1", state="holding")
    service.gate = asyncio.Event()

    async def main() -> None:
        async with serving(sock, service), ProxyApiClient(sock, "p1", timeout=0.1) as client:
            await client.register(3, MAC)
            with pytest.raises(TimeoutError):
                await client.splice(FLOW, 0, 0, 0, 0)
            service.gate.set()
            assert await client.flows()  # the late reply was dropped, nothing is confused

    run(main())


def test_many_proxies_at_once(sock: Path) -> None:
    service = FakeService()
    names = [f"proxy-{i}" for i in range(20)]
    for i, name in enumerate(names):
        for j in range(3):
            service.add_flow(name, Flow(f"10.0.{i}.1", 40000 + j, "10.0.200.1", 80))

    async def one(name: str, port: int) -> None:
        async with ProxyApiClient(sock, name) as client:
            await client.register(port, MAC, heartbeat_ms=1000)
            flows = await client.flows()
            assert len(flows) == 3
            results = await asyncio.gather(*(client.splice_prepare(f["flow"]) for f in flows))
            assert results == ["holding"] * 3
            deltas = await asyncio.gather(*(client.splice(f["flow"], 5, 5, 9, 9) for f in flows))
            assert deltas == [Deltas(0, 0)] * 3
            await client.bye()

    async def main() -> None:
        async with serving(sock, service) as server:
            await asyncio.gather(*(one(name, i) for i, name in enumerate(names)))
            assert server.registered == frozenset()
        assert all(state == "spliced" for flows in service.table.values() for state in flows.values())
        assert sorted(args[0] for args in service.called("bye")) == sorted(names)
        assert service.dead == []

    run(main())
