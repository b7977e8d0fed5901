"""The controller daemon's configuration: the ``[controller]`` section of the TOML file, typed.

``splicectl --config FILE`` reads the file's top-level switch options (grpc_addr, device_id, ...)
and leaves sections to other tools; the daemon reads ``[controller]`` (with its sub-tables
``proxy_api``, ``admin``, ``metrics`` and the arrays ``services`` and ``routes``). Keys are
documented in docs/controller.md. Unknown keys are errors: a misspelt timeout must not silently
fall back to its default.
"""

from __future__ import annotations

import ipaddress
import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

__all__ = ["ConfigError", "ControllerConfig", "RouteConfig", "ServiceConfig", "load_config", "parse_config"]


class ConfigError(ValueError):
    """The configuration cannot be used; the message names the key."""


@dataclass(frozen=True)
class ServiceConfig:
    server_ip: str
    server_port: int
    proxy_port: int


@dataclass(frozen=True)
class RouteConfig:
    prefix: ipaddress.IPv4Network
    port: int
    smac: str
    dmac: str


# What `make build` writes into build/: the P4Info and each target's device config.
P4INFO_FILE = "splice.p4info.txtpb"
DEVICE_CONFIG_FILES = {"p4sim": "splice.p4sim.json", "bmv2": "splice.json"}
# digest_batch = "auto": the longest lists of handshake digests asked for (digestbatch.py)
AUTO_DIGEST_BATCH = 64


@dataclass(frozen=True)
class ControllerConfig:
    # switch
    grpc_addr: str = "127.0.0.1:9559"
    device_id: int = 1
    election_id: int = 1
    role: str = ""
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_server_name: str | None = None
    # pipeline: "auto" adopts a splice pipeline already on the switch and pushes otherwise
    pipeline: str = "auto"
    p4info: str = f"build/{P4INFO_FILE}"
    device_config: str = f"build/{DEVICE_CONFIG_FILES['p4sim']}"
    cookie: int | None = None
    cpu_port: int = 255
    switch_mac: str | None = None  # source MAC of packet-outs when none was learnt
    # proxy ports probed from the data path (portwatch.py): ICMP echoes from this address, which
    # proxy hosts must route through the switch (their gateway's address does); None: off
    port_probe_addr: str | None = None
    port_probe_interval: float = 1.0
    port_probe_misses: int = 3  # unanswered probes in a row: the port is down
    # what the switch does
    services: tuple[ServiceConfig, ...] = ()
    routes: tuple[RouteConfig, ...] = ()
    # splice core
    max_pending: int = 10_000
    syn_timeout: float = 30.0
    ack_timeout: float = 10.0
    upstream_timeout: float = 30.0
    proxy_ack_timeout: float = 5.0
    proxy_rto: float = 1.0
    hold_timeout: float = 5.0
    # who passes the ACK of a data segment a hold keeps from the proxy: "switch" (hold_acking: the
    # switch builds it, and sends the controller a copy of the segment) or "controller" (hold: the
    # segment goes to the controller alone, which sends the ACK). Either way the controller keeps
    # the payload and sends it on as soon as the splice is in place.
    held_segments: str = "switch"
    held_per_flow: int = 64  # data segments a hold keeps to send on after the splice, per flow
    held_total: int = 8192  # ... and in all
    linger: float = 5.0
    reset_linger: float = 3.0
    idle_timeout: float = 300.0  # the flows entries' idle timeout on the switch (0: none)
    fail_open: bool = True
    require_proxy: bool = True  # proxy a service only while a proxy is registered on its port
    # who runs claim 1's handshake while a service's proxy is in service: "switch" (the data plane,
    # with digests to the controller; a program without it falls back) or "controller" (packet-ins)
    handshakes: str = "switch"
    # the switch's digests (handshake steps, FINs): at most this many per list, or "auto": one by one, and lists
    # of up to AUTO_DIGEST_BATCH only while digests come fast enough to fill them at once
    # (digestbatch.py) ...
    digest_batch: int | str = "auto"
    digest_delay: float = 0.001  # ... sent at most this many seconds after the first
    # seconds behind the switch's digests at which the services stop taking new connections, which
    # then run unproxied until the controller has caught up (overload.py); 0: never
    overload_lag: float = 1.0
    # ... and the pending handshakes evicted per second at which they do too (a SYN flood larger
    # than the bound on pending handshakes; 0: not a sign)
    overload_evictions: float = 200.0
    # proxy API
    proxy_socket: str = "/run/p4splice/proxy.sock"
    proxy_uids: tuple[int, ...] = ()  # empty: the daemon's uid and root
    proxy_group: str | None = None
    # admin API (splicectl splice)
    admin_socket: str = "/run/p4splice/admin.sock"
    admin_uids: tuple[int, ...] = ()  # empty: the daemon's uid and root
    # observability
    metrics_addr: str = "127.0.0.1"
    metrics_port: int | None = 9560  # None: no endpoint; 0: any free port
    log_format: str = "json"  # or "text"
    log_level: str = "INFO"
    extra: Mapping[str, Any] = field(default_factory=dict)

    def service_map(self) -> dict[tuple[str, int], int]:
        return {(s.server_ip, s.server_port): s.proxy_port for s in self.services}

    def with_(self, **changes: Any) -> ControllerConfig:
        return replace(self, **changes)


_SCALARS = {f.name for f in fields(ControllerConfig)} - {"services", "routes", "extra", "proxy_uids", "admin_uids"}
_SUBTABLES = {
    "proxy_api": {"socket": "proxy_socket", "uids": "proxy_uids", "group": "proxy_group"},
    "admin": {"socket": "admin_socket", "uids": "admin_uids"},
    "metrics": {"address": "metrics_addr", "port": "metrics_port"},
}


def _endpoint(text: object, where: str) -> tuple[str, int]:
    if not isinstance(text, str) or ":" not in text:
        raise ConfigError(f"{where}: expected \"a.b.c.d:port\", got {text!r}")
    addr, _, port = text.rpartition(":")
    try:
        ip = str(ipaddress.IPv4Address(addr))
        num = int(port)
    except ValueError:
        raise ConfigError(f"{where}: expected \"a.b.c.d:port\", got {text!r}") from None
    if not 1 <= num <= 65535:
        raise ConfigError(f"{where}: port {num} is not 1-65535")
    return ip, num


def _switch_port(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 511:
        raise ConfigError(f"{where}: {value!r} is not a switch port 0-511")
    return value


def _check_type(name: str, value: Any) -> Any:
    default = ControllerConfig.__dataclass_fields__[name].default
    if name == "port_probe_addr":
        try:
            return str(ipaddress.IPv4Address(value))
        except (ValueError, TypeError):
            raise ConfigError(f"controller.port_probe_addr: {value!r} is not an IPv4 address") from None
    if name in ("cookie", "metrics_port", "switch_mac", "proxy_group", "tls_ca", "tls_cert", "tls_key",
                "tls_server_name", "digest_batch"):  # checked by validated()
        return value
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"controller.{name} must be true or false")
    elif isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
            raise ConfigError(f"controller.{name} must be a non-negative, finite number of seconds")
        return float(value)
    elif isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"controller.{name} must be an integer")
    elif isinstance(default, str) and not isinstance(value, str):
        raise ConfigError(f"controller.{name} must be a string")
    return value


def parse_config(section: Mapping[str, Any], base: ControllerConfig | None = None) -> ControllerConfig:
    """The ``[controller]`` table as a config (over ``base``)."""
    cfg = base or ControllerConfig()
    changes: dict[str, Any] = {}
    for key, value in section.items():
        name = key.replace("-", "_")
        if name in _SUBTABLES:
            if not isinstance(value, Mapping):
                raise ConfigError(f"controller.{key} must be a table")
            for sub, subval in value.items():
                target = _SUBTABLES[name].get(sub)
                if target is None:
                    raise ConfigError(f"controller.{key}.{sub}: unknown key (known: {', '.join(_SUBTABLES[name])})")
                if target.endswith("_uids"):
                    if not isinstance(subval, list) or not all(isinstance(u, int) for u in subval):
                        raise ConfigError(f"controller.{key}.{sub} must be a list of uids")
                    subval = tuple(subval)
                changes[target] = subval
        elif name == "services":
            changes["services"] = tuple(_service(v, i) for i, v in enumerate(_list(value, "services")))
        elif name == "routes":
            changes["routes"] = tuple(_route(v, i) for i, v in enumerate(_list(value, "routes")))
        elif name in _SCALARS:
            changes[name] = _check_type(name, value)
        else:
            raise ConfigError(f"controller.{key}: unknown key")
    return validated(replace(cfg, **changes))


def validated(cfg: ControllerConfig) -> ControllerConfig:
    """``cfg`` when its values hold together (the config file's and the command line's alike);
    ConfigError naming the first that does not. Checked before the daemon touches the switch."""
    if cfg.pipeline not in ("auto", "push", "adopt"):
        raise ConfigError(f"controller.pipeline must be auto, push or adopt, not {cfg.pipeline!r}")
    if cfg.held_segments not in ("switch", "controller"):
        raise ConfigError(f"controller.held_segments must be switch or controller, not {cfg.held_segments!r}")
    if cfg.handshakes not in ("switch", "controller"):
        raise ConfigError(f"controller.handshakes must be switch or controller, not {cfg.handshakes!r}")
    if cfg.digest_batch != "auto" and (isinstance(cfg.digest_batch, bool) or not isinstance(cfg.digest_batch, int)
                                       or not 1 <= cfg.digest_batch <= 4096) or not 0 <= cfg.digest_delay <= 1:
        raise ConfigError("controller.digest_batch must be \"auto\" or 1-4096 and digest_delay 0-1 seconds")
    if isinstance(cfg.overload_lag, bool) or not isinstance(cfg.overload_lag, (int, float)) \
            or not 0 <= cfg.overload_lag <= 4:
        raise ConfigError("controller.overload_lag must be 0 (never) to 4 seconds: the switch's slots last 5 s")
    if isinstance(cfg.overload_evictions, bool) or not isinstance(cfg.overload_evictions, (int, float)) \
            or not 0 <= cfg.overload_evictions < float("inf"):
        raise ConfigError("controller.overload_evictions must be a finite number of evictions a second, 0: off")
    if cfg.log_format not in ("json", "text"):
        raise ConfigError(f"controller.log_format must be json or text, not {cfg.log_format!r}")
    if cfg.max_pending < 1:
        raise ConfigError("controller.max_pending must be at least 1")
    if cfg.port_probe_misses < 1 or cfg.port_probe_interval <= 0:
        raise ConfigError("controller.port_probe_misses must be at least 1 and port_probe_interval above 0")
    if isinstance(cfg.cpu_port, bool) or not isinstance(cfg.cpu_port, int) or not 1 <= cfg.cpu_port <= 511:
        raise ConfigError(f"controller.cpu_port: {cfg.cpu_port!r} is not a switch port 1-511 (the switch's --cpu-port)")
    if cfg.metrics_port is not None and (isinstance(cfg.metrics_port, bool) or not isinstance(cfg.metrics_port, int)
                                         or not 0 <= cfg.metrics_port <= 65535):
        raise ConfigError(f"controller.metrics.port: {cfg.metrics_port!r} is not a TCP port 0-65535 "
                          "(0: any free one; leave it out, or -1 on the command line, for none)")
    if not isinstance(cfg.device_id, int) or cfg.device_id < 0 or not isinstance(cfg.election_id, int) \
            or cfg.election_id < 0:
        raise ConfigError("device_id and election_id must be integers >= 0")
    return cfg


def _list(value: object, name: str) -> list[Any]:
    if not isinstance(value, list):
        raise ConfigError(f"controller.{name} must be an array of tables ([[controller.{name}]])")
    return value


def _service(value: object, i: int) -> ServiceConfig:
    where = f"controller.services[{i}]"
    if not isinstance(value, Mapping) or set(value) != {"server", "proxy_port"}:
        raise ConfigError(f"{where}: needs exactly server = \"a.b.c.d:port\" and proxy_port")
    ip, port = _endpoint(value["server"], f"{where}.server")
    return ServiceConfig(ip, port, _switch_port(value["proxy_port"], f"{where}.proxy_port"))


def _route(value: object, i: int) -> RouteConfig:
    where = f"controller.routes[{i}]"
    if not isinstance(value, Mapping) or set(value) != {"prefix", "port", "smac", "dmac"}:
        raise ConfigError(f"{where}: needs exactly prefix, port, smac and dmac")
    try:
        prefix = ipaddress.IPv4Network(value["prefix"], strict=True)
    except (ValueError, TypeError):
        raise ConfigError(f"{where}.prefix: not an IPv4 prefix: {value['prefix']!r}") from None
    for mac in ("smac", "dmac"):
        text = value[mac]
        if not isinstance(text, str) or len(text.split(":")) != 6:
            raise ConfigError(f"{where}.{mac}: not a MAC address: {text!r}")
    return RouteConfig(prefix, _switch_port(value["port"], f"{where}.port"), value["smac"], value["dmac"])


def load_config(path: str | os.PathLike[str] | None, base: ControllerConfig | None = None) -> ControllerConfig:
    """Read ``[controller]`` from a TOML file (no file: ``base`` or the defaults)."""
    cfg = base or ControllerConfig()
    if path is None:
        return cfg
    try:
        data = tomllib.loads(Path(path).read_text())
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e.strerror or e}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: {e}") from None
    section = data.get("controller", {})
    if not isinstance(section, Mapping):
        raise ConfigError(f"{path}: [controller] must be a table")
    return parse_config(section, cfg)
