"""The controller daemon (``splicectl run``): switch session, pipeline, proxy and admin APIs, metrics.

``Daemon`` wires the pieces together: it connects (a backup waits for the primary role and takes
over when the primary goes away), pushes or adopts the pipeline, installs the CPU clone session,
services and routes, rebuilds its flows from the switch's table, and then serves. On a switch
restart (the session's reconnect hook) it does the same again and writes back every live flows
entry. ``main(args)`` is what splicectl's ``run`` calls, with splicectl's namespace, or with a list
of command-line strings when run on its own (``python -m p4splice.controller.daemon``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import hashlib
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from typing import Any

from . import dataplane as dp
from .admin import AdminServer
from .config import ConfigError, ControllerConfig, load_config, validated
from .files import MAX_DEVICE_CONFIG, MAX_P4INFO, read_bounded
from .metrics import Metrics
from .orchestrator import Orchestrator
from .p4rt import Backoff, P4Index, PipelineError, SwitchSession, load_p4info
from .p4rt.entities import Update, UpdateType
from .portwatch import PortWatch
from .proxy_service import ControllerService
from .proxyapi.server import ProxyApiServer
from .restore import restore_from_switch

__all__ = ["Daemon", "main"]

log = logging.getLogger(__name__)


def freeze_heap() -> None:
    """Take what the daemon has built to start (imports, the P4Info index, its configuration) out
    of the garbage collector's sight: it lives as long as the process, and every full collection
    under load would walk it again. Garbage is collected first, so none is kept for good."""
    gc.collect()
    gc.freeze()


class Daemon:
    """One controller for one switch. ``pipeline`` (P4Info message, device config bytes) overrides
    the files named in the config (tests pass a freshly compiled program)."""

    def __init__(self, config: ControllerConfig, pipeline: tuple[Any, bytes] | None = None,
                 backoff: Backoff | None = None) -> None:
        self.config = config
        self._pipeline = pipeline
        self.metrics = Metrics()
        self.session = SwitchSession(
            config.grpc_addr, config.device_id, config.election_id, config.role,
            root_certificates=config.tls_ca, private_key=config.tls_key, certificate_chain=config.tls_cert,
            tls_server_name=config.tls_server_name, on_reconnect=self._on_reconnect,
            on_write_latency=self.metrics.write_latency.observe, backoff=backoff, name="splice",
        )
        self.orch = Orchestrator(self.session, config, self.metrics)
        self.portwatch = self._make_portwatch()
        self.service = ControllerService(self.orch, self.portwatch)
        self.proxy_api: ProxyApiServer | None = None
        self.admin: AdminServer | None = None
        self.metrics_port: int | None = None
        self.ready = asyncio.Event()
        self.restored: dict[str, int] = {}
        self.ports_down: dict[str, int] = {}  # proxy -> times its port was found down
        self._setup_lock = asyncio.Lock()

    # --- lifecycle ----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect, wait to be primary (a backup waits here), set the switch up, then serve."""
        await self.session.start()
        if self.config.metrics_port is not None:
            self.metrics_port = self.metrics.start(self.config.metrics_addr, self.config.metrics_port)
        await self.session.wait_primary()
        log.info("primary for device %d on %s (election id %d)", self.config.device_id, self.config.grpc_addr,
                 self.session.election_id)
        await self.setup_switch(first=True)
        self.orch.attach()
        self.proxy_api = ProxyApiServer(self.config.proxy_socket, self.service,
                                        allowed_uids=self.config.proxy_uids or None, group=self.config.proxy_group)
        self.orch.on_proxy_event = self._proxy_event
        await self.proxy_api.start()
        self.admin = AdminServer(self.config.admin_socket, self.orch, self.service,
                                 allowed_uids=self.config.admin_uids or None, status=self.status,
                                 ask_proxy=self._ask_proxy)
        await self.admin.start()
        if self.portwatch is not None:
            self.orch.on_routed = self.portwatch.on_packet_in
            self.orch.on_port_alive = self.portwatch.port_alive
            self.portwatch.start()
        self.ready.set()
        log.info("controller ready")

    async def close(self) -> None:
        if self.portwatch is not None:
            await self.portwatch.close()
        if self.admin is not None:
            await self.admin.close()
        if self.proxy_api is not None:
            await self.proxy_api.close()
        await self.orch.close()
        await self.session.close()
        self.metrics.stop()

    async def run_forever(self) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        try:
            starting = asyncio.create_task(self.start())
            stopping = asyncio.create_task(stop.wait())
            await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if starting.done():
                starting.result()
                freeze_heap()
                await stopping
            else:
                starting.cancel()
        finally:
            log.info("stopping: spliced flows keep forwarding on the switch")
            await self.close()

    # --- the switch -------------------------------------------------------------------------------------

    def _pipeline_files(self) -> tuple[Any, bytes]:
        if self._pipeline is None:
            try:
                p4info = load_p4info(read_bounded(self.config.p4info, MAX_P4INFO))
                device_config = read_bounded(self.config.device_config, MAX_DEVICE_CONFIG)
            except OSError as e:
                raise ConfigError(f"cannot read the pipeline: {e} (run 'make build')") from None
            self._pipeline = (p4info, device_config)
        return self._pipeline

    def _cookie(self, p4info: Any, device_config: bytes) -> int:
        if self.config.cookie is not None:
            return self.config.cookie
        return int.from_bytes(hashlib.sha256(p4info.SerializeToString() + b"\0" + device_config).digest()[:8], "big")

    async def _ensure_pipeline(self) -> bool:
        """Adopt or push per ``config.pipeline``; True when pushed (the switch's entries are gone)."""
        mode = self.config.pipeline
        if mode != "push":
            try:
                await self.session.adopt_pipeline()
                problems = dp.check_p4info(self.session.index)
                if not problems:
                    return False
                if mode == "adopt":
                    raise PipelineError(f"the switch does not run the splice program: {'; '.join(problems[:3])}")
                log.warning("the switch runs another program (%s): pushing the splice program", problems[0])
            except PipelineError:
                if mode == "adopt":
                    raise
        p4info, device_config = self._pipeline_files()
        problems = dp.check_p4info(P4Index(p4info))
        if problems:
            raise ConfigError(f"{self.config.p4info} is not the splice program: {'; '.join(problems[:3])}")
        await self.session.set_pipeline(p4info, device_config, cookie=self._cookie(p4info, device_config))
        return True

    async def setup_switch(self, first: bool) -> None:
        async with self._setup_lock:
            pushed = await self._ensure_pipeline()
            static = [dp.cpu_clone_session(self.config.cpu_port)]
            static += self.orch.service_setup()
            static += [dp.route(r.prefix, r.port, r.smac, r.dmac) for r in self.config.routes]
            if self.portwatch is not None:
                static.append(dp.route_to_cpu(f"{self.portwatch.source_ip}/32"))
            await self.orch._flush([Update(UpdateType.INSERT, e) for e in static])
            if first and not pushed:
                self.restored = dict(await restore_from_switch(self.orch))
            elif not first:
                await self.orch.reinstall_entries()
            log.info("switch set up (%s pipeline, %d services, %d routes)", "pushed" if pushed else "adopted",
                     len(self.config.services), len(self.config.routes))

    async def _on_reconnect(self, session: SwitchSession) -> None:
        await session.wait_primary()
        if not self.ready.is_set():
            return  # start() is still setting up and will finish the job
        log.warning("switch connection re-established: re-installing state")
        await self.setup_switch(first=False)

    # --- glue -------------------------------------------------------------------------------------------

    def _make_portwatch(self) -> PortWatch | None:
        cfg = self.config
        if cfg.port_probe_addr is None:
            return None
        mac = cfg.switch_mac or next((r.smac for r in cfg.routes), None)
        if mac is None:
            raise ConfigError("controller.port_probe_addr needs controller.switch_mac (or a route's smac) "
                              "as the probes' source MAC")
        return PortWatch(self._probe_out, self.port_down, cfg.port_probe_addr, mac,
                         interval=cfg.port_probe_interval, misses=cfg.port_probe_misses, on_up=self.port_up,
                         on_silent=self.port_silent)

    async def _probe_out(self, port: int, frame: bytes) -> None:
        await self.session.packet_out(dp.packet_out(port, frame))

    async def port_silent(self, proxy: str) -> None:
        """Its port watch has had no answer from ``proxy``'s switch port for a while: out of
        service for new connections, its flows untouched (proxy_service.py)."""
        await self.service.port_silent(proxy)

    async def port_down(self, proxy: str) -> None:
        """Its port watch found ``proxy``'s switch port dark."""
        # The proxy keeps its registration (its process is alive): it is out of service until
        # its port answers again, and told so.
        self.ports_down[proxy] = self.ports_down.get(proxy, 0) + 1
        await self.service.port_down(proxy)
        self._tell_proxy(proxy, "port_down")

    async def port_up(self, proxy: str) -> None:
        """The dark (or only silent) port of ``proxy`` answers again."""
        rec = self.service.proxies.get(proxy)
        told = rec is not None and rec.ports_failed  # the proxy heard port_down: it hears port_up
        await self.service.port_up(proxy)
        if told:
            self._tell_proxy(proxy, "port_up")

    def _tell_proxy(self, proxy: str, event: str) -> None:
        rec = self.service.proxies.get(proxy)
        if self.proxy_api is not None and rec is not None:
            self.proxy_api.send_event(proxy, event, port=rec.port)

    def _proxy_event(self, port: int, event: str, fields: dict[str, Any]) -> None:
        if self.proxy_api is None:
            return
        from .proxyapi.protocol import Flow

        key = fields.get("flow")
        if key is not None:
            fields = fields | {"flow": Flow(key.client_ip, key.client_port, key.server_ip, key.server_port)}
        for rec in list(self.service.proxies.values()):
            if rec.port == port:
                with contextlib.suppress(ValueError):
                    self.proxy_api.send_event(rec.name, event, **fields)

    def _ask_proxy(self, port: int, flow: Any) -> bool:
        """Tell the flow's proxy to drain and report (event ``splice_requested``); False when it is
        not connected, and then the operator's splice waits for the proxy's own report or the
        hold timeout."""
        if self.proxy_api is None:
            return False
        for rec in self.service.proxies.values():
            if rec.port == port:
                try:
                    return self.proxy_api.send_event(rec.name, "splice_requested", flow=flow)
                except ValueError:
                    log.warning("the proxy API has no splice_requested event: proxy %s not told", rec.name)
        return False

    def status(self) -> dict[str, Any]:
        return {
            "switch": {"address": self.config.grpc_addr, "device_id": self.config.device_id,
                       "primary": self.session.is_primary, "election_id": self.session.election_id},
            "proxies": [{"name": r.name, "port": r.port, "mac": r.mac, "in_service": not r.dark,
                         "port_probe": self.portwatch.state(r.name) if self.portwatch else None}
                        for r in self.service.proxies.values()],
            "ports_down": dict(self.ports_down),
            "handshakes_pending": len(self.orch.core.handshakes),
            "metrics_port": self.metrics_port,
            "restored": self.restored,
        }


# --- logging ------------------------------------------------------------------------------------------

class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message (and the exception, if any)."""

    def format(self, record: logging.LogRecord) -> str:
        out = {"ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
               "level": record.levelname.lower(), "logger": record.name, "msg": record.getMessage()}
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, separators=(",", ":"))


def setup_logging(fmt: str, level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else
                         logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


# --- entry point ------------------------------------------------------------------------------------

def _run_parser() -> argparse.ArgumentParser:
    from .cli import OneLineParser  # a bad option is one line, as everywhere in splicectl

    p = OneLineParser(prog="splicectl run", description=(
        "Run the splice controller daemon: it sets the switch up (pipeline, clone session, routes, "
        "services), learns claim-1 handshakes, serves the proxy API and the admin socket. Every "
        "option below is also a key of the config file ([controller] section, docs/controller.md); "
        "the command line wins."))
    p.add_argument("--config", dest="config_file", metavar="FILE",
                   help="TOML file: switch options at the top, the daemon's in [controller] (docs/controller.md)")
    sw = p.add_argument_group("switch")
    sw.add_argument("--grpc-addr", metavar="HOST:PORT", help="P4Runtime server (default 127.0.0.1:9559)")
    sw.add_argument("--device-id", type=int, metavar="N", help="P4Runtime device id (default 1)")
    sw.add_argument("--election-id", type=int, metavar="N",
                    help="election id (default 1); a daemon with a lower one is the backup")
    sw.add_argument("--role", metavar="NAME", help="P4Runtime role (default: the default role)")
    sw.add_argument("--cpu-port", type=int, metavar="N", help="the switch's --cpu-port (default 255)")
    pl = p.add_argument_group("pipeline")
    pl.add_argument("--pipeline", choices=("auto", "push", "adopt"),
                    help="auto: adopt a splice pipeline already on the switch, else push (default)")
    pl.add_argument("--p4info", metavar="FILE", help="P4Info to push (default build/splice.p4info.txtpb)")
    pl.add_argument("--device-config", metavar="FILE",
                    help="device config to push (default build/splice.p4sim.json; build/splice.json for BMv2)")
    p.add_argument("--handshakes", choices=("switch", "controller"),
                   help="who runs claim 1's handshake of a proxied service: the switch (default; the "
                        "controller learns it from digests) or the controller (packet-ins)")
    api = p.add_argument_group("proxy API and admin socket")
    api.add_argument("--proxy-socket", metavar="PATH", help="the proxy API's Unix socket (default /run/p4splice/proxy.sock)")
    api.add_argument("--proxy-user", type=int, action="append", dest="proxy_uids", metavar="UID",
                     help="a uid allowed on the proxy socket (repeat; default: this process's and root)")
    api.add_argument("--proxy-group", metavar="GROUP", help="group that owns the proxy socket")
    api.add_argument("--admin-socket", metavar="PATH",
                     help="the admin socket of splicectl splice (default /run/p4splice/admin.sock)")
    ops = p.add_argument_group("operation")
    ops.add_argument("--metrics-port", type=int, metavar="PORT",
                     help="Prometheus endpoint on 127.0.0.1 (default 9560; 0: any free port; -1: none)")
    ops.add_argument("--log-format", choices=("json", "text"), help="log lines as JSON objects (default) or text")
    ops.add_argument("--log-level", metavar="LEVEL", help="debug, info (default), warning, error")
    return p


def build_config(args: argparse.Namespace | Sequence[str] | None) -> ControllerConfig:
    """Config file, then splicectl's switch options, then ``run``'s own options."""
    if args is None or not isinstance(args, argparse.Namespace):
        ns = _run_parser().parse_args(list(args or []))
        extra = ns
    else:
        ns = args
        extra = _run_parser().parse_args(list(getattr(args, "run_args", []) or []))
    config_file = getattr(extra, "config_file", None) or getattr(ns, "config_file", None)
    cfg = load_config(config_file)
    changes: dict[str, Any] = {}
    for src in (ns, extra):
        for key in ("grpc_addr", "device_id", "election_id", "role", "p4info", "device_config", "pipeline",
                    "cpu_port", "proxy_socket", "proxy_group", "admin_socket", "log_format", "log_level", "handshakes",
                    "tls_ca", "tls_cert", "tls_key", "tls_server_name"):
            value = getattr(src, key, None)
            if value is not None:
                changes[key] = value
        if getattr(src, "proxy_uids", None):
            changes["proxy_uids"] = tuple(src.proxy_uids)
        if getattr(src, "metrics_port", None) is not None:
            if src.metrics_port < -1:
                raise ConfigError(f"--metrics-port: {src.metrics_port} is not a port (-1: none)")
            changes["metrics_port"] = None if src.metrics_port == -1 else src.metrics_port
    return validated(cfg.with_(**changes))


def main(args: argparse.Namespace | Sequence[str] | None = None) -> int:
    """Run until SIGINT/SIGTERM; returns the exit status."""
    try:
        config = build_config(args if args is not None else sys.argv[1:])
    except (ConfigError, SystemExit) as e:
        if isinstance(e, SystemExit):  # --help (0) or a bad option (2, said in one line)
            return e.code if isinstance(e.code, int) else 2
        sys.stderr.write(f"splicectl: error: {e}\n")
        return 2
    setup_logging(config.log_format, config.log_level)
    log.info("starting (pid %d, uid %d)", os.getpid(), os.getuid())
    try:
        asyncio.run(Daemon(config).run_forever())
    except (ConfigError, PipelineError) as e:
        log.error("%s", e)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    # the same parsing and one-line errors as `splicectl run`
    from .cli import main as splicectl_main

    sys.exit(splicectl_main(["run", *sys.argv[1:]]))
