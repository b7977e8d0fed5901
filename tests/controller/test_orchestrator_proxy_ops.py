"""The proxy's side of the daemon against p4sim: a cancelled splice (the hold is lifted and payload
reaches the proxy again), a proxy that dies without a word after quiescent heartbeats (its idle
flow is spliced with its counts, its busy one reset), and ``splice_requested`` from the admin
socket answered by the proxy with its own splice sequence, or with a cancel."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from p4splice.controller.admin import admin_request
from p4splice.controller.daemon import Daemon
from p4splice.controller.proxyapi import ApiError, Event
from p4splice.controller.splice.splice import FlowState
from scapy.layers.inet import TCP

from tests.controller.orchestrator_fixtures import U32, established, proxied, running, state
from tests.controller.test_orchestrator_support import (
    C_PORT,
    P_PORT,
    S_PORT,
    Isns,
    Lab,
    flow_key,
    from_c,
    from_s,
    handshake,
    p_as_c,
    p_as_s,
    poll,
    run,
    send_proxy_ack,
    valid_checksums,
    wire_flow,
)

pytestmark = pytest.mark.integration


def entry_kinds(d: Daemon, sport: int) -> list[str]:
    return sorted(d.orch.entries[m].kind for m in d.orch.flow_entries.get(flow_key(sport), ()))


def payload_of(pkt: Any) -> bytes:
    return bytes(pkt[TCP].payload)


# --- splice_prepare -----------------------------------------------------------------------------------------

def test_prepare_during_the_last_step_of_the_handshake_waits_for_it(lab: Lab) -> None:
    """A policy that decides at once may ask before P's last ACK has made the flow: the request
    waits for the handshake rather than being refused."""
    async def main() -> None:
        async with proxied(lab) as (d, proxy):
            sport = 41090
            i = Isns()
            await handshake(lab, sport, i, proxy_ack=False)
            await poll(lambda: d.orch.core.handshakes.get(flow_key(sport)) is not None, what="handshake known")
            prepare = asyncio.create_task(proxy.splice_prepare(wire_flow(sport)))
            with pytest.raises(TimeoutError):  # still waiting: the flow does not exist yet
                await asyncio.wait_for(asyncio.shield(prepare), 0.3)
            send_proxy_ack(lab, sport, i)
            assert await asyncio.wait_for(prepare, 5.0) == "holding"
            assert state(d, sport) is FlowState.HOLDING
    run(main())


# --- splice_cancel -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("held_segments", ["switch", "controller"])
def test_cancel_lifts_the_hold_and_payload_reaches_the_proxy_again(lab: Lab, held_segments: str) -> None:
    by_switch = held_segments == "switch"  # hold_acking: the switch passes the ACKs on, every time

    async def main() -> None:
        async with proxied(lab, held_segments=held_segments) as (d, proxy):
            sport = 41100 if by_switch else 41101
            i = await established(lab, d, sport)
            assert await proxy.splice_prepare(wire_flow(sport)) == "holding"
            await d.orch.drain()
            hold = "hold_acking" if by_switch else "hold"
            assert entry_kinds(d, sport) == [hold, hold, "translate", "translate"]
            request = from_c(sport, "PA", (i.c + 1) & U32, i.s + 1, payload=b"request")
            banner = from_s(sport, "PA", i.s + 1, (i.c + 1) & U32, payload=b"banner")
            # While holding, C's and S's payload never reaches the proxy: only the ACK each
            # carries does, as a pure ACK translated for its leg ...
            lab.send(C_PORT, request)
            got = await lab.recv_tcp(P_PORT)
            assert (str(got[TCP].flags), got[TCP].seq, got[TCP].ack, payload_of(got)) == (
                "A", (i.c + 1) & U32, i.p1 + 1, b"")
            assert valid_checksums(got)
            lab.send(S_PORT, banner)
            got = await lab.recv_tcp(P_PORT)
            assert (str(got[TCP].flags), got[TCP].seq, got[TCP].ack, payload_of(got)) == ("A", i.s + 1, i.p2 + 1, b"")
            # ... once, where the controller passes them: their retransmissions bring the proxy
            # nothing new. The switch has no memory of what it passed: it sends them again.
            lab.send(C_PORT, request)
            lab.send(S_PORT, banner)
            if by_switch:
                for ack in ((i.c + 1) & U32, i.s + 1):
                    got = await lab.recv_tcp(P_PORT)
                    assert (str(got[TCP].flags), got[TCP].seq, payload_of(got)) == ("A", ack, b"")
            await lab.quiet(P_PORT, 0.2)
            # The proxy cannot drain (say), and gives the splice up.
            assert await proxy.splice_cancel(wire_flow(sport)) == "proxied"
            assert state(d, sport) is FlowState.PROXIED
            # What the hold kept now reaches the proxy, byte for byte, translated exactly as before
            # the hold, without waiting for the senders to retransmit it.
            got = await lab.recv_tcp(P_PORT)
            assert (got[TCP].seq, got[TCP].ack, payload_of(got)) == ((i.c + 1) & U32, i.p1 + 1, b"request")
            assert valid_checksums(got)
            got = await lab.recv_tcp(P_PORT)
            assert (got[TCP].seq, got[TCP].ack, payload_of(got)) == (i.s + 1, i.p2 + 1, b"banner")
            await d.orch.drain()
            assert entry_kinds(d, sport) == ["translate"] * 4
            assert (await proxy.flow(wire_flow(sport)))["state"] == "proxied"
            # The legs pass payload again: a retransmission goes through the switch alone.
            lab.send(C_PORT, request)
            got = await lab.recv_tcp(P_PORT)
            assert (got[TCP].seq, got[TCP].ack, payload_of(got)) == ((i.c + 1) & U32, i.p1 + 1, b"request")
            assert d.orch.core.flows.stats["held_released"] == 2
            held = {w: d.metrics.value("p4splice_held_segments_total", what=w)
                    for w in ("ack_passed", "ack_repeated", "released", "not_kept")}
            passed = {"ack_passed": 0, "ack_repeated": 0} if by_switch else {"ack_passed": 2, "ack_repeated": 2}
            assert held == passed | {"released": 2, "not_kept": 0}
            # The proxy relays both ways through its legs, as any proxied flow.
            lab.send(P_PORT, p_as_c(sport, "PA", i.p2 + 1, i.s + 1 + 6, payload=b"request"))
            got = await lab.recv_tcp(S_PORT)
            assert (got[TCP].seq, got[TCP].ack, payload_of(got)) == ((i.c + 1) & U32, i.s + 1 + 6, b"request")
            lab.send(P_PORT, p_as_s(sport, "PA", i.p1 + 1, (i.c + 1 + 7) & U32, payload=b"banner"))
            got = await lab.recv_tcp(C_PORT)
            assert (got[TCP].seq, got[TCP].ack, payload_of(got)) == (i.s + 1, (i.c + 1 + 7) & U32, b"banner")
            # Nothing to cancel now; a second splice goes all the way, with the counts of the relay.
            with pytest.raises(ApiError) as err:
                await proxy.splice_cancel(wire_flow(sport))
            assert (err.value.code, err.value.details) == ("conflict", {"state": "proxied"})  # no need to ask
            assert await proxy.splice_prepare(wire_flow(sport)) == "holding"
            deltas = await proxy.splice(wire_flow(sport), 7, 7, 6, 6)
            assert (deltas.c2s, deltas.s2c) == (0, 0) and state(d, sport) is FlowState.SPLICED
            lab.send(C_PORT, from_c(sport, "PA", (i.c + 8) & U32, i.s + 7, payload=b"direct"))
            got = await lab.expect_tcp(S_PORT, lambda p: payload_of(p) == b"direct")
            assert (got[TCP].seq, got[TCP].ack) == ((i.c + 8) & U32, i.s + 7)
            assert d.orch.core.flows.stats["splice_cancelled"] == 1
    run(main())


def test_cancel_of_an_unknown_or_foreign_flow(lab: Lab) -> None:
    async def main() -> None:
        async with proxied(lab) as (d, proxy):
            with pytest.raises(ApiError) as err:
                await proxy.splice_cancel(wire_flow(49998))
            assert err.value.code == "not_found"
    run(main())


# --- a proxy that dies after quiescent heartbeats -------------------------------------------------------

def test_silent_proxy_death_splices_its_idle_flow_with_its_counts(lab: Lab) -> None:
    """The proxy relayed (and rewrote) a little on one flow, then reported it quiescent on its
    automatic heartbeats; it also holds bytes of a second flow. It dies like a SIGKILL: no bye, no
    more heartbeats, its socket closes. Three intervals later the controller splices the idle flow
    with the reported counts (C's and S's next bytes meet exactly) and resets the busy one."""
    async def main() -> None:
        async with proxied(lab, heartbeat_ms=150) as (d, proxy):
            idle, busy = 41110, 41111
            i = await established(lab, d, idle)
            await established(lab, d, busy, i)
            # Through the proxy on the idle flow: C's 5 bytes became 7 toward S, S's 2 went back as 2.
            lab.send(C_PORT, from_c(idle, "PA", (i.c + 1) & U32, i.s + 1, payload=b"hello"))
            assert payload_of(await lab.recv_tcp(P_PORT)) == b"hello"
            lab.send(P_PORT, p_as_c(idle, "PA", i.p2 + 1, i.s + 1, payload=b"hello!!"))
            assert payload_of(await lab.recv_tcp(S_PORT)) == b"hello!!"
            lab.send(S_PORT, from_s(idle, "PA", i.s + 1, (i.c + 1 + 7) & U32, payload=b"ok"))
            got = await lab.recv_tcp(P_PORT)
            assert (got[TCP].ack, payload_of(got)) == (i.p2 + 1 + 7, b"ok")
            lab.send(P_PORT, p_as_s(idle, "PA", i.p1 + 1, (i.c + 1 + 5) & U32, payload=b"ok"))
            assert payload_of(await lab.recv_tcp(C_PORT)) == b"ok"
            lab.send(C_PORT, from_c(idle, "A", (i.c + 1 + 5) & U32, i.s + 1 + 2))
            await lab.recv_tcp(P_PORT)
            lab.send(P_PORT, p_as_c(idle, "A", i.p2 + 1 + 7, i.s + 1 + 2))
            await lab.recv_tcp(S_PORT)
            # The busy flow: C's bytes reached the proxy, which never forwarded them.
            lab.send(C_PORT, from_c(busy, "PA", (i.c + 1) & U32, i.s + 1, payload=b"stuck"))
            await lab.recv_tcp(P_PORT)
            reports: list[int] = []

            def quiescent() -> list[dict[str, Any]]:
                reports.append(1)
                return [{"flow": wire_flow(idle), "a_c": 5, "b_s": 7, "a_s": 2, "b_c": 2}]

            proxy.quiescent = quiescent
            await poll(lambda: len(reports) >= 3, what="three quiescent heartbeats")
            # SIGKILL: the heartbeats stop and the kernel closes the socket, without a bye.
            proxy._stop_heartbeat()
            await proxy.close()
            await poll(lambda: state(d, idle) is FlowState.SPLICED, timeout=3.0, what="idle flow spliced")
            await poll(lambda: state(d, busy) is not FlowState.PROXIED, what="busy flow reset")
            assert state(d, busy) in (FlowState.RESETTING, None)
            await d.orch.drain()
            await lab.expect_tcp(C_PORT, lambda p: p[TCP].dport == busy and p[TCP].flags == "R")
            await lab.expect_tcp(S_PORT, lambda p: p[TCP].sport == busy and p[TCP].flags == "R")
            lab.drain(C_PORT)
            lab.drain(S_PORT)
            # C's next byte lands right after the proxy's 7 at S, with S's 2 acknowledged ...
            lab.send(C_PORT, from_c(idle, "PA", (i.c + 1 + 5) & U32, i.s + 1 + 2, payload=b" world"))
            got = await lab.expect_tcp(S_PORT, lambda p: p[TCP].sport == idle)
            assert (got[TCP].seq, got[TCP].ack, payload_of(got)) == ((i.c + 1 + 7) & U32, i.s + 1 + 2, b" world")
            assert valid_checksums(got)
            # ... and S's acknowledgement of them reaches C in C's own numbering.
            lab.send(S_PORT, from_s(idle, "PA", i.s + 1 + 2, (i.c + 1 + 13) & U32, payload=b"bye"))
            got = await lab.expect_tcp(C_PORT, lambda p: p[TCP].dport == idle)
            assert (got[TCP].seq, got[TCP].ack, payload_of(got)) == (i.s + 1 + 2, (i.c + 1 + 11) & U32, b"bye")
            assert d.metrics.value("p4splice_splices_total", kind="fail_open") == 1
    run(main())


# --- splice_requested -------------------------------------------------------------------------------------

def test_admin_splice_is_carried_out_by_the_proxy_on_the_event(lab: Lab) -> None:
    """``splicectl splice``: the daemon holds the flow and sends ``splice_requested``; the proxy
    runs its sequence on the event (prepare, which is idempotent, then its counts) -- or cancels,
    and the operator hears at once that the flow stays proxied."""
    async def main() -> None:
        i = Isns()
        decisions: dict[int, str] = {41120: "splice", 41121: "cancel"}
        seen: list[Event] = []

        tasks: set[asyncio.Task[None]] = set()

        def on_event(event: Event) -> None:
            # The handler runs in the client's reader: a request awaited here would wait for a
            # reply that nobody reads, so the sequence runs in a task of its own.
            if event.name == "splice_requested":
                seen.append(event)
                task = asyncio.get_running_loop().create_task(react(event.fields["flow"]))
                tasks.add(task)
                task.add_done_callback(tasks.discard)

        async def react(flow: dict[str, str]) -> None:
            assert await proxy.splice_prepare(flow) == "holding"
            sport = int(flow["client"].rsplit(":", 1)[1])
            if decisions[sport] == "splice":
                await proxy.splice(flow, 0, 0, 0, 0)
            else:
                await proxy.splice_cancel(flow)

        async with proxied(lab, on_event=on_event) as (d, proxy):
            for sport in decisions:
                await established(lab, d, sport, i)
            result = await admin_request(d.config.admin_socket, "splice", flow=f"10.0.1.1:{41120}-10.0.2.1:80", wait=3)
            assert result["state"] == "spliced" and state(d, 41120) is FlowState.SPLICED
            lab.send(C_PORT, from_c(41120, "PA", (i.c + 1) & U32, i.s + 1, payload=b"end to end"))
            got = await lab.expect_tcp(S_PORT, lambda p: p[TCP].sport == 41120)
            assert (got[TCP].seq, payload_of(got)) == ((i.c + 1) & U32, b"end to end")
            loop = asyncio.get_running_loop()
            started = loop.time()
            with pytest.raises(ApiError) as err:
                await admin_request(d.config.admin_socket, "splice", flow=f"10.0.1.1:{41121}-10.0.2.1:80", wait=3)
            assert err.value.code == "conflict" and "proxied" in err.value.message
            assert loop.time() - started < 1.5  # answered on the cancel, not after the wait
            assert state(d, 41121) is FlowState.PROXIED
            assert [e.flow.client_port for e in seen if e.flow is not None] == [41120, 41121]
    run(main())


# --- a dark proxy port ------------------------------------------------------------------------------------

def test_a_dark_proxy_port_keeps_the_registration_and_takes_no_new_connections(lab: Lab) -> None:
    """The port watch finds the proxy's switch port dark: its flow is reset, the proxy is told and
    stays registered (its heartbeats are accepted), and a new connection to the service runs end to
    end without it; once the port answers, the next connection is proxied again."""
    async def main() -> None:
        events: list[Event] = []
        async with proxied(lab, on_event=events.append) as (d, proxy):
            i = await established(lab, d, 41120)
            await d.port_down("proxy-1")
            await d.orch.drain()
            await lab.expect_tcp(C_PORT, lambda p: p[TCP].dport == 41120 and p[TCP].flags == "R")
            await poll(lambda: any(e.name == "port_down" for e in events), what="the port_down event")
            assert [e.fields for e in events if e.name == "port_down"] == [{"port": P_PORT}]
            await proxy.heartbeat()  # still registered: no not_registered, nothing to register again
            status = d.status()
            assert [(p["name"], p["in_service"]) for p in status["proxies"]] == [("proxy-1", False)]
            assert status["ports_down"] == {"proxy-1": 1}
            lab.drain(P_PORT)
            # Dark: C's SYN reaches S and S's SYN-ACK reaches C, and nothing goes to the proxy.
            lab.send(C_PORT, from_c(41121, "S", i.c))
            await lab.expect_tcp(S_PORT, lambda p: p[TCP].sport == 41121 and p[TCP].flags == "S")
            lab.send(S_PORT, from_s(41121, "SA", i.s, (i.c + 1) & U32))
            await lab.expect_tcp(C_PORT, lambda p: p[TCP].dport == 41121 and p[TCP].flags == "SA")
            assert d.orch.stats["not_proxied_no_proxy"] == 1
            await d.port_up("proxy-1")
            await poll(lambda: any(e.name == "port_up" for e in events), what="the port_up event")
            assert d.status()["proxies"][0]["in_service"] is True
            # In service again: the next connection's second request goes to the proxy.
            await established(lab, d, 41122, i)
            assert state(d, 41122) is FlowState.PROXIED
    run(main())


def test_a_silent_proxy_port_takes_no_new_connections_and_keeps_its_flows(lab: Lab) -> None:
    """Probes unanswered for a while (a switch slowed by a flood looks the same as a dead link):
    the proxy is out of service for new connections, its flows go on untouched, and it is back at
    the port's first answer; only a longer silence (port_down) fails its flows."""
    async def main() -> None:
        events: list[Event] = []
        async with proxied(lab, on_event=events.append) as (d, proxy):
            i = await established(lab, d, 41130)
            await d.service.port_silent("proxy-1")
            await d.orch.drain()
            assert [(p["name"], p["in_service"]) for p in d.status()["proxies"]] == [("proxy-1", False)]
            assert state(d, 41130) is FlowState.PROXIED
            await lab.quiet(C_PORT, 0.2)  # no RST
            assert not [e for e in events if e.name in ("port_down", "flow_reset")]
            lab.drain(P_PORT)
            lab.send(C_PORT, from_c(41131, "S", i.c))  # a new connection runs end to end
            await lab.expect_tcp(S_PORT, lambda p: p[TCP].sport == 41131 and p[TCP].flags == "S")
            await d.port_up("proxy-1")
            assert d.status()["proxies"][0]["in_service"] is True and state(d, 41130) is FlowState.PROXIED
            await proxy.heartbeat()  # a round trip: any event sent before it has arrived
            assert not [e for e in events if e.name in ("port_down", "port_up")]  # never told down, nor up
    run(main())


def test_the_admin_socket_answers_a_bad_line_and_goes_on(lab: Lab) -> None:
    """A line nested deeper than the JSON parser goes (under the size limit) and one that is not
    JSON get a bad_request each, on a connection that still answers."""
    async def main() -> None:
        async with running(lab) as d:
            reader, writer = await asyncio.open_unix_connection(d.config.admin_socket, limit=1 << 20)
            try:
                for line in (b"[" * 30_000 + b"]" * 30_000, b"{not json"):  # under its 64 KiB line limit
                    writer.write(line + b"\n")
                    reply = json.loads(await asyncio.wait_for(reader.readline(), 5))
                    assert reply["ok"] is False and reply["error"]["code"] == "bad_request", reply
                writer.write(b'{"id": 3, "op": "status"}\n')
                reply = json.loads(await asyncio.wait_for(reader.readline(), 5))
                assert reply["ok"] is True and reply["id"] == 3
            finally:
                writer.close()
    run(main())


def test_a_report_waits_for_the_copy_of_the_fin_the_proxy_passed_on(lab: Lab) -> None:
    """S closed before the hold and the proxy passes S's FIN on to C while it drains; its report
    may reach the controller before the switch's copy of that FIN does. The report waits for it
    (spliced then, each leg's FIN took one number) instead of being refused."""
    async def main() -> None:
        async with proxied(lab) as (d, proxy):
            sport = 41120
            i = await established(lab, d, sport)
            lab.send(S_PORT, from_s(sport, "FA", i.s + 1, (i.c + 1) & U32))
            await lab.recv_tcp(P_PORT)
            await poll(lambda: d.orch.core.flows.get(flow_key(sport)).fins, what="S's FIN seen")
            assert await proxy.splice_prepare(wire_flow(sport)) == "holding"
            report = asyncio.create_task(proxy.splice(wire_flow(sport), 0, 0, 1, 1))
            lab.send(P_PORT, p_as_s(sport, "FA", i.p1 + 1, (i.c + 1) & U32))  # P passes it on
            await lab.recv_tcp(C_PORT)
            await asyncio.wait_for(report, 5.0)
            assert state(d, sport) is FlowState.SPLICED
    run(main())
