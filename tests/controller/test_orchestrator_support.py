"""Harness for the controller daemon's tests: a switch running p4src/splice.p4 with ports for the
client (1), the server (2) and the proxy host (3), scapy frames playing C, S and P, and a ``Daemon``
per controller. The switch is p4sim in-process by default, or a p4sim or BMv2 process on veth pairs
(``P4SPLICE_SWITCH``, see switches.py and conftest.py); the tests cannot tell which. Every wait
polls with a deadline; nothing sleeps to wait for readiness."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from p4splice.controller.config import ControllerConfig, RouteConfig, ServiceConfig
from p4splice.controller.daemon import Daemon
from p4splice.controller.p4rt import Backoff
from p4splice.controller.splice.model import FlowKey
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from tests.asyncsupport import poll_until, run_bounded
from tests.controller.switches import FramePort, Switch

DEVICE = 1
CPU = 255
C_PORT, S_PORT, P_PORT = 1, 2, 3

SW_MAC = "02:00:00:00:00:fe"
C_MAC = "02:00:00:00:01:01"
S_MAC = "02:00:00:00:02:01"
P_MAC = "02:00:00:00:03:01"
C_IP, S_IP = "10.0.1.1", "10.0.2.1"
S_TCP = 80
FAST = Backoff(initial=0.02, maximum=0.2)


def run(coro: Any, timeout: float = 30.0) -> Any:
    """One test coroutine on a fresh loop, with a hard deadline so that a hang fails."""
    return run_bounded(coro, timeout)


async def poll(check: Any, timeout: float = 5.0, what: str = "condition",
               interval: float = 0.005) -> Any:
    """Until ``check()`` (plain or async) is truthy; fails after ``timeout`` seconds."""
    return await poll_until(check, timeout, what, interval)


def base_config(addr: str, tmp: Path, **changes: Any) -> ControllerConfig:
    cfg = ControllerConfig(
        grpc_addr=addr, device_id=DEVICE, election_id=10, pipeline="auto", cpu_port=CPU,
        services=(ServiceConfig(S_IP, S_TCP, P_PORT),),
        routes=(RouteConfig(__import__("ipaddress").IPv4Network("10.0.1.0/24"), C_PORT, SW_MAC, C_MAC),
                RouteConfig(__import__("ipaddress").IPv4Network("10.0.2.0/24"), S_PORT, SW_MAC, S_MAC)),
        proxy_socket=str(tmp / "proxy.sock"), admin_socket=str(tmp / "admin.sock"),
        metrics_port=None, log_format="text", idle_timeout=0, linger=0.3, reset_linger=0.3,
        hold_timeout=2.0, switch_mac=SW_MAC,
    )
    return cfg.with_(**changes)


@dataclass
class Lab:
    """One started switch (any kind) and the test's directory for the daemons' sockets."""

    switch: Switch
    tmp: Path

    @property
    def addr(self) -> str:
        return self.switch.grpc_addr

    @property
    def ports(self) -> dict[int, FramePort]:
        return self.switch.ports

    async def start_switch(self) -> None:
        """Start the switch again, empty (no pipeline, no entries), on the same gRPC port. In a
        thread: a switch process takes a good half second to listen, and the daemon and the proxy
        sharing this loop must keep their heartbeats meanwhile."""
        await asyncio.to_thread(self.switch.start)

    async def stop_switch(self) -> None:
        await asyncio.to_thread(self.switch.stop)

    def daemon(self, **changes: Any) -> Daemon:
        sub = changes.pop("subdir", "")
        tmp = self.tmp / sub if sub else self.tmp
        tmp.mkdir(exist_ok=True)
        # program: another build of splice.p4 than the switch's own (switches.build_pipeline)
        pipeline = changes.pop("program", None) or self.switch.pipeline
        changes = {"device_id": self.switch.device_id, "cpu_port": self.switch.cpu_port, **changes}
        cfg = base_config(self.addr, tmp, **changes)
        return Daemon(cfg, pipeline=(pipeline.p4info, pipeline.device_config), backoff=FAST)

    # --- frames ---------------------------------------------------------------------------------------

    def send(self, port: int, pkt: Any) -> None:
        self.ports[port].inject(bytes(pkt))

    async def recv(self, port: int, timeout: float = 3.0) -> Ether:
        raw = await asyncio.to_thread(self.ports[port].expect, timeout)
        return Ether(raw)

    async def recv_tcp(self, port: int, timeout: float = 3.0, *, skip_pure_acks: bool = False) -> Ether:
        """The next TCP frame out of ``port``."""
        deadline = time.monotonic() + timeout
        while True:
            pkt = await self.recv(port, max(0.01, deadline - time.monotonic()))
            if TCP in pkt and not (skip_pure_acks and pkt[TCP].flags == "A" and not bytes(pkt[TCP].payload)):
                return pkt

    async def expect_tcp(self, port: int, pred: Any, timeout: float = 3.0) -> Ether:
        """The first TCP frame out of ``port`` for which ``pred`` holds (others are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            pkt = await self.recv_tcp(port, max(0.01, deadline - time.monotonic()))
            if pred(pkt):
                return pkt

    def drain(self, port: int) -> list[Ether]:
        return [Ether(raw) for raw in self.ports[port].drain()]

    async def quiet(self, port: int, within: float = 0.2) -> None:
        """Nothing comes out of ``port`` within ``within`` seconds."""
        try:
            pkt = await self.recv(port, within)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected frame on port {port}: {pkt.summary()}")


# --- the parties ------------------------------------------------------------------------------------

def ts_opt(tsval: int, tsecr: int = 0) -> tuple[str, tuple[int, int]]:
    return ("Timestamp", (tsval, tsecr))


def tcp(src: str, sport: int, dst: str, dport: int, flags: str, seq: int, ack: int = 0, *,
        options: list[Any] | None = None, payload: bytes = b"", window: int = 1000,
        smac: str, dmac: str = SW_MAC) -> Ether:
    pkt = Ether(src=smac, dst=dmac) / IP(src=src, dst=dst, ttl=64) / TCP(
        sport=sport, dport=dport, flags=flags, seq=seq, ack=ack, window=window, options=options or [])
    if payload:
        pkt = pkt / payload
    return pkt


def from_c(sport: int, flags: str, seq: int, ack: int = 0, **kw: Any) -> Ether:
    return tcp(C_IP, sport, S_IP, S_TCP, flags, seq, ack, smac=C_MAC, **kw)


def from_s(dport: int, flags: str, seq: int, ack: int = 0, **kw: Any) -> Ether:
    return tcp(S_IP, S_TCP, C_IP, dport, flags, seq, ack, smac=S_MAC, **kw)


def p_as_s(dport: int, flags: str, seq: int, ack: int = 0, **kw: Any) -> Ether:
    """The proxy on leg 1, speaking as S toward C."""
    return tcp(S_IP, S_TCP, C_IP, dport, flags, seq, ack, smac=P_MAC, **kw)


def p_as_c(sport: int, flags: str, seq: int, ack: int = 0, **kw: Any) -> Ether:
    """The proxy on leg 2, speaking as C toward S."""
    return tcp(C_IP, sport, S_IP, S_TCP, flags, seq, ack, smac=P_MAC, **kw)


def flow_key(sport: int) -> FlowKey:
    return FlowKey(C_IP, sport, S_IP, S_TCP)


def wire_flow(sport: int) -> dict[str, str]:
    return {"client": f"{C_IP}:{sport}", "server": f"{S_IP}:{S_TCP}"}


def opts(pkt: Ether) -> list[Any]:
    return list(pkt[TCP].options)


def valid_checksums(pkt: Ether) -> bool:
    """IPv4 and TCP checksums as scapy recomputes them."""
    raw = Ether(bytes(pkt))
    ip_sum, tcp_sum = raw[IP].chksum, raw[TCP].chksum
    del raw[IP].chksum
    del raw[TCP].chksum
    again = Ether(bytes(raw))
    return again[IP].chksum == ip_sum and again[TCP].chksum == tcp_sum


@dataclass(frozen=True)
class Isns:
    c: int = 4294967000  # 296 before the wrap
    s: int = 1000
    p1: int = 5000
    p2: int = 70
    ts_c: int = 100000
    ts_s: int = 500000
    ts_p1: int = 7000
    ts_p2: int = 9000


C_SYN_OPTS = lambda i: [("MSS", 1460), ("SAckOK", b""), ts_opt(i.ts_c), ("NOP", None), ("WScale", 7)]  # noqa: E731
S_SYN_OPTS = lambda i: [("MSS", 1400), ("SAckOK", b""), ts_opt(i.ts_s, i.ts_c), ("NOP", None), ("WScale", 9)]  # noqa: E731


async def handshake(lab: Lab, sport: int, i: Isns = Isns(), *, check: bool = True,
                    proxy_ack: bool = True) -> dict[str, Ether]:
    """Claim 1's handshake with C, S and P played by the test; returns what P and the ends saw.
    ``proxy_ack=False`` stops before P's last ACK (the controller's SYN-ACK of leg 2 received)."""
    seen: dict[str, Ether] = {}
    u32 = 0xFFFFFFFF
    lab.send(C_PORT, from_c(sport, "S", i.c, options=C_SYN_OPTS(i), window=64240))
    seen["s_syn"] = await lab.recv_tcp(S_PORT)
    lab.send(S_PORT, from_s(sport, "SA", i.s, (i.c + 1) & u32, options=S_SYN_OPTS(i), window=65160))
    seen["c_syn_ack"] = await lab.recv_tcp(C_PORT)
    seen["p_syn"] = await lab.recv_tcp(P_PORT)
    lab.send(P_PORT, p_as_s(sport, "SA", i.p1, (i.c + 1) & u32,
                            options=[("MSS", 1460), ("SAckOK", b""), ts_opt(i.ts_p1, i.ts_c), ("NOP", None),
                                     ("WScale", 8)], window=65000))
    lab.send(C_PORT, from_c(sport, "A", (i.c + 1) & u32, i.s + 1, options=[("NOP", None), ("NOP", None),
                                                                           ts_opt(i.ts_c + 1, i.ts_s)]))
    seen["s_ack"] = await lab.recv_tcp(S_PORT)
    seen["p_ack"] = await lab.recv_tcp(P_PORT)
    lab.send(P_PORT, p_as_c(sport, "S", i.p2, options=[("MSS", 1460), ("SAckOK", b""), ts_opt(i.ts_p2),
                                                      ("NOP", None), ("WScale", 6)], window=64000))
    seen["p_syn_ack"] = await lab.recv_tcp(P_PORT)
    if proxy_ack:
        send_proxy_ack(lab, sport, i)
    return seen


def send_proxy_ack(lab: Lab, sport: int, i: Isns) -> None:
    """P's ACK completing leg 2 (the last frame of claim 1's handshake)."""
    lab.send(P_PORT, p_as_c(sport, "A", i.p2 + 1, i.s + 1, options=[("NOP", None), ("NOP", None),
                                                                   ts_opt(i.ts_p2 + 1, i.ts_s)]))
