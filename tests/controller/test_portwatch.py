"""PortWatch: ICMP probes of proxy ports, replies matched, a silent port out of service, then
declared down once, and back up at its first answer."""

from __future__ import annotations

import asyncio
import struct

import pytest
from p4splice.controller.frames import build_echo_request, parse_echo_reply
from p4splice.controller.portwatch import PAYLOAD, PortWatch
from scapy.layers.inet import ICMP, IP
from scapy.layers.l2 import Ether

SWITCH_MAC, PROXY_MAC = "02:00:00:00:00:fe", "02:00:00:00:03:01"
SOURCE, PROXY_IP, PORT = "10.0.200.254", "10.0.200.1", 200


def echo_reply(request: bytes) -> bytes:
    """What the proxy host's kernel answers to ``request`` (scapy builds it, checksums included)."""
    req = Ether(request)
    return bytes(Ether(src=req.dst, dst=req.src) / IP(src=req[IP].dst, dst=req[IP].src)
                 / ICMP(type=0, id=req[ICMP].id, seq=req[ICMP].seq) / bytes(req[ICMP].payload))


def test_echo_request_is_what_scapy_reads_and_its_reply_parses() -> None:
    frame = build_echo_request(SOURCE, PROXY_IP, 0x5001, 7, bytes.fromhex("0200000000fe"),
                               bytes.fromhex("020000000301"), PAYLOAD)
    pkt = Ether(frame)
    assert (pkt[IP].src, pkt[IP].dst, pkt[ICMP].type, pkt[ICMP].id, pkt[ICMP].seq) == (SOURCE, PROXY_IP, 8, 0x5001, 7)
    resum = Ether(frame)
    del resum[IP].chksum, resum[ICMP].chksum
    assert bytes(resum) == frame  # both checksums as scapy computes them
    reply = parse_echo_reply(echo_reply(frame))
    assert reply is not None and (reply.src_ip, reply.dst_ip, reply.ident, reply.seq, reply.payload) == \
        (PROXY_IP, SOURCE, 0x5001, 7, PAYLOAD)
    assert parse_echo_reply(frame) is None  # a request is not a reply
    bad = bytearray(echo_reply(frame))
    bad[-1] ^= 1
    assert parse_echo_reply(bytes(bad)) is None  # ICMP checksum wrong
    assert parse_echo_reply(b"\x00" * 20) is None
    assert parse_echo_reply(bytes(Ether() / IP(proto=6) / (b"x" * 8))) is None


class Harness:
    def __init__(self, misses: int = 3) -> None:
        self.sent: list[tuple[int, bytes]] = []
        self.down: list[str] = []
        self.up: list[str] = []
        self.silent: list[str] = []
        self.watch = PortWatch(self.send, self.on_down, SOURCE, SWITCH_MAC, interval=0.5, misses=misses,
                               on_up=self.on_up, on_silent=self.on_silent)

    async def send(self, port: int, frame: bytes) -> None:
        self.sent.append((port, frame))

    async def on_down(self, proxy: str) -> None:
        self.down.append(proxy)

    async def on_up(self, proxy: str) -> None:
        self.up.append(proxy)

    async def on_silent(self, proxy: str) -> None:
        self.silent.append(proxy)

    def answer_last(self, port: int = PORT) -> bool:
        return self.watch.on_packet_in(port, echo_reply(self.sent[-1][1]))


def test_answered_probes_keep_the_port_up_and_silence_takes_it_down_once() -> None:
    async def main() -> None:
        h = Harness(misses=3)
        h.watch.watch("p1", PORT, PROXY_MAC, PROXY_IP)
        for _ in range(5):
            await h.watch.tick()
            assert h.sent[-1][0] == PORT and h.answer_last()
        assert h.watch.state("p1") == {"port": PORT, "probes": 5, "replies": 5, "misses": 0, "silent": False,
                                       "dark": False}
        for _ in range(3):  # three probes go out unanswered ...
            await h.watch.tick()
        assert h.down == h.silent == [] and h.watch.state("p1")["misses"] == 2
        await h.watch.tick()  # ... and the tick after the third finds it silent: out of service
        await asyncio.sleep(0)  # the on_silent task runs
        assert h.silent == ["p1"] and h.down == [] and not h.watch.state("p1")["dark"]
        for _ in range(2):  # three more unanswered: the port is down, its flows are failed
            await h.watch.tick()
            await asyncio.sleep(0)
            assert h.down == []
        await h.watch.tick()
        await asyncio.sleep(0)  # the on_down task runs
        assert h.down == ["p1"] and h.silent == ["p1"] and h.watch.state("p1")["dark"]
        sent = len(h.sent)
        for _ in range(10):  # dark: still probed, never declared down again
            await h.watch.tick()
        await asyncio.sleep(0)
        assert len(h.sent) == sent + 10 and h.down == ["p1"] and h.up == []
        assert h.answer_last()  # the first answer brings it back, once
        await asyncio.sleep(0)
        assert h.up == ["p1"] and not h.watch.state("p1")["dark"] and h.watch.state("p1")["misses"] == 0
        h.watch.port_alive(PORT)
        await asyncio.sleep(0)
        assert h.up == ["p1"]
        h.watch.unwatch("p1")
        await h.watch.tick()
        assert len(h.sent) == sent + 10 and h.watch.state("p1") is None  # unwatched: no probes
    asyncio.run(main())


def test_down_and_up_handlers_of_a_port_run_in_order() -> None:
    """A port that answers while its down handler is still at work: the up handler waits for it
    (the proxy must not be put back in service and then taken out by the late down)."""
    async def main() -> None:
        order: list[str] = []
        release = asyncio.Event()

        async def send(port: int, frame: bytes) -> None:
            sent.append(frame)

        async def on_down(proxy: str) -> None:
            order.append("down start")
            await release.wait()
            order.append("down end")

        async def on_up(proxy: str) -> None:
            order.append("up")

        sent: list[bytes] = []
        w = PortWatch(send, on_down, SOURCE, SWITCH_MAC, interval=0.5, misses=1, on_up=on_up)
        w.watch("p1", PORT, PROXY_MAC, PROXY_IP)
        await w.tick()
        await w.tick()  # one unanswered probe: silent
        await w.tick()  # two: down
        await asyncio.sleep(0)
        assert w.on_packet_in(PORT, echo_reply(sent[-1]))
        for _ in range(3):
            await asyncio.sleep(0)
        assert order == ["down start"]
        release.set()
        for _ in range(5):
            await asyncio.sleep(0)
        assert order == ["down start", "down end", "up"]
        await w.close()
    asyncio.run(main())


def test_a_late_reply_counts_but_a_stranger_does_not() -> None:
    async def main() -> None:
        h = Harness(misses=3)
        h.watch.watch("p1", PORT, PROXY_MAC, PROXY_IP)
        await h.watch.tick()
        late = echo_reply(h.sent[-1][1])
        await h.watch.tick()  # the first is still unanswered: one miss
        assert h.watch.state("p1")["misses"] == 1
        assert h.watch.on_packet_in(PORT, late)  # seq 1 of 2: recent enough
        assert h.watch.state("p1")["misses"] == 0
        frame = h.sent[-1][1]
        assert not h.watch.on_packet_in(PORT + 1, echo_reply(frame))  # the right reply on another port
        other = bytearray(echo_reply(frame))
        ident_at = 14 + 20 + 4
        other[ident_at:ident_at + 2] = struct.pack("!H", 0x1234)
        assert not h.watch.on_packet_in(PORT, bytes(other))  # someone else's ping (bad checksum too)
        stranger = bytes(Ether() / IP(src=PROXY_IP, dst=SOURCE) / ICMP(type=0, id=1, seq=2) / b"hello")
        assert not h.watch.on_packet_in(PORT, stranger)
    asyncio.run(main())


def test_send_failures_are_unanswered_probes_and_limits_are_checked() -> None:
    async def main() -> None:
        down: list[str] = []

        async def fail(port: int, frame: bytes) -> None:
            raise ConnectionError("switch away")

        async def on_down(proxy: str) -> None:
            down.append(proxy)

        w = PortWatch(fail, on_down, SOURCE, SWITCH_MAC, interval=0.1, misses=1)
        w.watch("p1", PORT, PROXY_MAC, PROXY_IP)
        for _ in range(3):  # a probe out, then one miss (silent), two (down)
            await w.tick()
        await asyncio.sleep(0)
        assert down == ["p1"]
        await w.close()
    asyncio.run(main())
    with pytest.raises(ValueError):
        PortWatch(lambda p, f: None, lambda p: None, SOURCE, SWITCH_MAC, interval=0)  # type: ignore[arg-type,return-value]


def test_config_port_probe_keys() -> None:
    from p4splice.controller.config import ConfigError, parse_config

    cfg = parse_config({"port_probe_addr": "10.0.200.254", "port_probe_interval": 0.5, "port_probe_misses": 2})
    assert (cfg.port_probe_addr, cfg.port_probe_interval, cfg.port_probe_misses) == ("10.0.200.254", 0.5, 2)
    assert parse_config({}).port_probe_addr is None  # off unless configured
    with pytest.raises(ConfigError, match="port_probe_addr"):
        parse_config({"port_probe_addr": "10.0.200"})
    with pytest.raises(ConfigError, match="port_probe_misses"):
        parse_config({"port_probe_addr": "10.0.200.254", "port_probe_misses": 0})


def test_any_frame_from_the_port_counts_as_alive() -> None:
    async def main() -> None:
        h = Harness(misses=2)
        h.watch.watch("p1", PORT, PROXY_MAC, PROXY_IP)
        for _ in range(10):  # probes never answered, but the proxy's own frames keep arriving
            await h.watch.tick()
            h.watch.port_alive(PORT)
        assert h.down == [] and h.watch.state("p1")["misses"] == 0
        for _ in range(5):  # a probe out, then four unanswered: down, whatever other ports say
            await h.watch.tick()
            h.watch.port_alive(PORT + 1)
        await asyncio.sleep(0)
        assert h.silent == h.down == ["p1"]
    asyncio.run(main())


def test_a_switch_slow_to_answer_costs_new_connections_never_the_flows() -> None:
    """Replies that come seconds late (a switch queueing a flood) take the proxy out of service
    for new connections, then bring it back: its flows are never failed."""
    async def main() -> None:
        h = Harness(misses=3)
        h.watch.watch("p1", PORT, PROXY_MAC, PROXY_IP)
        await h.watch.tick()
        first = h.sent[-1][1]
        for _ in range(4):  # 4 intervals without an answer: silent
            await h.watch.tick()
        await asyncio.sleep(0)
        assert h.silent == ["p1"] and h.down == []
        assert h.watch.on_packet_in(PORT, echo_reply(first))  # the first probe's answer, 4 probes late
        await asyncio.sleep(0)
        assert h.up == ["p1"] and h.down == [] and not h.watch.state("p1")["silent"]
    asyncio.run(main())


def test_the_daemons_port_watch_takes_a_silent_proxy_out_of_service(tmp_path) -> None:  # noqa: ANN001
    """Wired in the daemon (never started: no switch needed): silence reaches the proxy service."""
    from p4splice.controller.daemon import Daemon

    from tests.controller.test_orchestrator_support import base_config

    async def main() -> None:
        d = Daemon(base_config("127.0.0.1:1", tmp_path, port_probe_addr="10.0.200.254"))
        assert d.portwatch is not None
        called: list[str] = []

        async def port_silent(proxy: str) -> None:
            called.append(proxy)
        d.service.port_silent = port_silent  # type: ignore[method-assign]
        d.portwatch.watch("p1", PORT, PROXY_MAC, PROXY_IP)
        for _ in range(d.config.port_probe_misses + 1):
            await d.portwatch.tick()
        await asyncio.sleep(0)
        assert called == ["p1"]
        await d.portwatch.close()
    asyncio.run(main())
