"""Base test of the PTF suite: owns the P4Runtime session and the splice domain helpers.

Test parameters (ptf ``--test-params``, ``;``-separated Python assignments):
``grpc_addr`` (``'127.0.0.1:9559'``), ``device_id`` (1), ``p4info`` and ``config`` (paths of the
build outputs), ``cpu_port`` (255), ``clone_session`` (99, as CPU_CLONE_SESSION_ID in p4src).

The session (connection, arbitration, pipeline push) is made once per ptf run and shared by all
tests; each test removes, in tearDown, every entity it inserted, so tests do not see each
other's state. Switch ports are the ptf port numbers: 1 faces the client, 2 the server, 3 the
proxy.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Any

import ptf
from p4.v1 import p4runtime_pb2
from p4runtime_client import P4RuntimeClient, PacketIn
from packets import (
    HOST_MAC,
    SERVICE_PORT,
    SWITCH_MAC,
    Translation,
    checksums_ok,
)
from ptf import testutils
from ptf.base_tests import BaseTest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

log = logging.getLogger(__name__)

CLIENT, SERVER, PROXY = 1, 2, 3

# packet-in reasons and malformed-counter indexes, as p4src/include/headers.p4 defines them
(PIN_SYN, PIN_SYN_ACK, PIN_PROXY_SYN, PIN_PROXY_SYN_ACK, PIN_FIN, PIN_RST, PIN_PUNT, PIN_ROUTED, PIN_HELD,
 PIN_DECLINED, PIN_FIN_HELD, PIN_HELD_COPY) = range(1, 13)
FIN_DIGEST = "fin_t"  # a FIN a flows entry (or a handshake slot) forwarded, reported


def fin_report(frame: bytes, in_port: int) -> dict[str, int]:
    """The fin_t digest the switch sends for the FIN ``frame`` arriving on ``in_port``."""
    ip, tcp = Ether(frame)[IP], Ether(frame)[TCP]
    return {"ingress_port": in_port, "src_addr": int(ipaddress.IPv4Address(ip.src)),
            "dst_addr": int(ipaddress.IPv4Address(ip.dst)), "src_port": tcp.sport, "dst_port": tcp.dport}


(MAL_TRUNCATED, MAL_IPV4_HEADER, MAL_IPV4_LENGTH, MAL_TCP_DATA_OFFSET, MAL_TCP_OPT_OVERRUN,
 MAL_TCP_OPT_LENGTH, MAL_TCP_OPT_DUPLICATE, MAL_TCP_OPT_TOO_MANY, MAL_OTHER) = range(1, 10)

_session: P4RuntimeClient | None = None
_session_error: str | None = None


def _params() -> dict[str, Any]:
    defaults = {"grpc_addr": "127.0.0.1:9559", "device_id": 1, "p4info": "build/splice.p4info.txtpb",
                "config": "build/splice.p4sim.json", "cpu_port": 255, "clone_session": 99}
    defaults.update(testutils.test_params_get())
    return defaults


def session() -> P4RuntimeClient:
    """The run's P4Runtime session, created (and the pipeline pushed) on first use."""
    global _session, _session_error
    if _session_error is not None:
        # fail every later test at once rather than waiting for the switch again
        raise RuntimeError(f"no P4Runtime session: {_session_error}")
    if _session is None:
        p = _params()
        client = P4RuntimeClient(p["grpc_addr"], int(p["device_id"]))
        try:
            client.connect()
            client.set_pipeline(p["p4info"], p["config"])
        except Exception as exc:
            _session_error = str(exc)
            client.close()
            raise
        log.info("pipeline pushed to %s", p["grpc_addr"])
        _session = client
    return _session


class SpliceTest(BaseTest):
    """Scenario tests derive from this and implement runTest()."""

    client: P4RuntimeClient

    def setUp(self) -> None:
        super().setUp()
        self.dataplane = ptf.dataplane_instance
        self.params = _params()
        self.cpu_port = int(self.params["cpu_port"])
        self.client = session()
        self.client.drain()
        self.dataplane.flush()

    def tearDown(self) -> None:
        try:
            self.client.cleanup()
        finally:
            super().tearDown()

    # --- control-plane helpers -------------------------------------------------------------
    def add_route(self, prefix: str, port: int) -> p4runtime_pb2.TableEntry:
        return self.client.insert(self.client.table_entry(
            "routes", {"ipv4_dst": prefix}, "route",
            {"port": port, "smac": SWITCH_MAC[port], "dmac": HOST_MAC[port]}))

    def add_cpu_route(self, prefix: str) -> p4runtime_pb2.TableEntry:
        return self.client.insert(self.client.table_entry("routes", {"ipv4_dst": prefix}, "to_cpu", {}))

    def add_default_routes(self) -> None:
        self.add_route("10.0.1.0/24", CLIENT)
        self.add_route("10.0.2.0/24", SERVER)
        self.add_route("10.0.3.0/24", PROXY)

    def add_service(self, addr: str, port: int = SERVICE_PORT, proxy_port: int = PROXY) -> None:
        self.client.insert(self.client.table_entry(
            "services", {"server_addr": addr, "server_port": port}, "proxied", {"proxy_port": proxy_port}))

    def add_cpu_clone_session(self) -> None:
        self.client.insert_clone_session(int(self.params["clone_session"]), [self.cpu_port])

    def add_flow(self, in_port: int, src: str, dst: str, sport: int, dport: int, action: str,
                 t: Translation | None = None, out_port: int | None = None,
                 idle_timeout_ns: int = 0) -> p4runtime_pb2.TableEntry:
        params: dict[str, int | str] = {}
        if t is not None and out_port is not None:
            params = t.params(out_port)
        te = self.client.table_entry(
            "flows", {"ingress_port": in_port, "src_addr": src, "dst_addr": dst,
                      "src_port": sport, "dst_port": dport},
            action, params, idle_timeout_ns=idle_timeout_ns)
        return self.client.insert(te)

    # --- data-plane helpers ----------------------------------------------------------------
    def send(self, port: int, frame: bytes) -> None:
        testutils.send_packet(self, port, frame)

    def expect(self, frame: bytes, port: int) -> None:
        """The switch emits exactly ``frame`` on ``port``; its checksums equal a full
        recomputation (checked on the expected bytes, so on the received ones too)."""
        ok, why = checksums_ok(frame)
        self.assertTrue(ok, f"expected packet has bad checksums ({why}): the model is wrong")
        testutils.verify_packet(self, Ether(frame), port)

    def expect_bytes(self, frame: bytes, port: int) -> None:
        """The switch emits exactly ``frame`` on ``port`` (checksums whatever they are)."""
        testutils.verify_packet(self, Ether(frame), port)

    def expect_nothing_else(self) -> None:
        testutils.verify_no_other_packets(self)

    def expect_packet_in(self, reason: int, ingress_port: int, frame: bytes | None = None,
                         timeout: float = 2.0) -> PacketIn:
        pin = self.client.get_packet_in(timeout)
        self.assertIsNotNone(pin, f"no packet-in (wanted reason {reason})")
        assert pin is not None
        self.assertEqual(pin.metadata.get("reason"), reason, f"packet-in metadata {pin.metadata}")
        self.assertEqual(pin.metadata.get("ingress_port"), ingress_port)
        if frame is not None:
            self.assertEqual(pin.payload.hex(), frame.hex(), "packet-in payload is not the original frame")
        return pin

    def expect_no_packet_in(self, timeout: float = 0.2) -> None:
        pin = self.client.get_packet_in(timeout)
        self.assertIsNone(pin, f"unexpected packet-in {pin}")

    def malformed_count(self, reason: int) -> int:
        return self.client.read_counter("malformed", reason)[0]
