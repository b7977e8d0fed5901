"""``splice-proxy --config proxy.toml``: run the application proxy until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from collections.abc import Sequence

from . import __version__
from .config import ConfigError, ProxyConfig, load
from .netsetup import NetSetupError, setup_namespace, teardown_namespace
from .server import ProxyServer

__all__ = ["main"]

log = logging.getLogger("p4splice.proxy")

# Attributes every LogRecord has; anything else came in through ``extra=`` and is structured data.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and the record's ``extra`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        out.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def _setup_logging(config: ProxyConfig) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if config.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(config.log_level.upper())


async def _run(config: ProxyConfig) -> None:
    server = ProxyServer(config)
    await server.start()
    loop = asyncio.get_running_loop()
    stopping: list[asyncio.Task[None]] = []

    def stop(signame: str) -> None:
        if not stopping:
            log.info("%s: shutting down", signame)
            stopping.append(loop.create_task(server.close()))

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop, sig.name)
    services = ", ".join(f"{s.name}={s.host}:{s.port}/{s.policy}" for s in config.services)
    controller = config.controller or "none (never splices)"
    print(f"splice-proxy {__version__}: {config.name} serving {services}; controller {controller}", flush=True)
    await server.wait_closed()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="splice-proxy", description="p4splice's host application proxy")
    parser.add_argument("--config", required=True, help="the proxy's TOML configuration")
    parser.add_argument("--check", action="store_true", help="check the configuration and exit")
    args = parser.parse_args(argv)
    try:
        config = load(args.config)
    except ConfigError as exc:
        print(f"splice-proxy: error: {exc}", file=sys.stderr)
        return 2
    if args.check:
        print(f"splice-proxy: {args.config}: ok ({len(config.services)} service(s))")
        return 0
    _setup_logging(config)
    applied: list[str] = []
    try:
        if config.namespace is not None:
            for ifname in config.namespace.interfaces:
                setup_namespace(ifname, config.namespace.table)
                applied.append(ifname)
        asyncio.run(_run(config))
    except (NetSetupError, OSError) as exc:
        print(f"splice-proxy: error: {exc}", file=sys.stderr)
        return 1
    finally:
        if config.namespace is not None:
            for ifname in applied:
                try:
                    teardown_namespace(ifname, config.namespace.table)
                except NetSetupError as exc:
                    log.warning("%s", exc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
