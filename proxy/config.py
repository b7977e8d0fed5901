"""The proxy's configuration: a TOML file read into frozen dataclasses, checked field by field so
that a mistake is reported in one line naming the key (``ConfigError``)."""

from __future__ import annotations

import ipaddress
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["POLICIES", "ConfigError", "Limits", "NamespaceSetup", "ProxyConfig", "ServiceConfig", "load", "parse"]

POLICIES = ("inspect", "after-bytes", "never", "rewrite")

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")  # the proxy API's rule for proxy names
_MAC = re.compile(r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_LOG_LEVELS = ("debug", "info", "warning", "error")


class ConfigError(ValueError):
    """A configuration the proxy cannot run with; the message is one line."""


@dataclass(frozen=True)
class ServiceConfig:
    name: str
    host: str  # the listener's address ("0.0.0.0": every server address on this port)
    port: int
    policy: str
    after_bytes: int = 0  # after-bytes: client->server bytes relayed before the splice
    set_headers: tuple[tuple[str, str], ...] = ()  # rewrite: headers added or replaced
    remove_headers: tuple[str, ...] = ()  # rewrite: headers removed


@dataclass(frozen=True)
class Limits:
    max_connections: int = 1024
    buffer_bytes: int = 64 * 1024  # per direction per connection
    max_header_bytes: int = 16 * 1024  # how much of a request head a policy looks at or holds
    head_timeout_s: float = 5.0  # rewrite: how long to hold an incomplete head
    connect_timeout_s: float = 5.0
    drain_timeout_s: float = 5.0  # splice: deadline for the sockets to become quiet
    settle_s: float = 0.01  # splice: how long the sockets must stay quiet before counting
    shutdown_grace_s: float = 5.0


@dataclass(frozen=True)
class NamespaceSetup:
    """Policy routing the proxy applies at start and removes at exit (netsetup.py)."""

    interfaces: tuple[str, ...]
    table: int = 100


@dataclass(frozen=True)
class ProxyConfig:
    name: str
    services: tuple[ServiceConfig, ...]
    controller: str | None = None  # the proxy API's Unix socket; None: never splice
    switch_port: int = 0
    mac: str = "00:00:00:00:00:00"
    address: str | None = None  # this host's IPv4 address on its switch port: the controller probes it
    heartbeat_ms: int = 1000
    limits: Limits = field(default_factory=Limits)
    namespace: NamespaceSetup | None = None
    metrics_port: int | None = None  # Prometheus endpoint (needs prometheus-client)
    metrics_interval_s: float = 60.0  # how often the metrics are logged (0: never)
    log_level: str = "info"
    log_format: str = "text"  # or "json": one object per line


def load(path: str | Path) -> ProxyConfig:
    """Read and check a TOML file; raises ConfigError with a one-line reason."""
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    try:
        return parse(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


class _Table:
    """One TOML table being read: remembers which keys were used so leftovers are refused."""

    def __init__(self, data: object, where: str) -> None:
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where} must be a table")
        self.data = data
        self.where = where
        self.used: set[str] = set()

    def _get(self, key: str, kinds: tuple[type, ...], what: str, default: Any) -> Any:
        self.used.add(key)
        if key not in self.data:
            if default is _REQUIRED:
                raise ConfigError(f"{self.where}: missing '{key}'")
            return default
        value = self.data[key]
        if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
            raise ConfigError(f"{self.where}: '{key}' must be {what}")
        return value

    def text(self, key: str, default: Any = None) -> Any:
        return self._get(key, (str,), "a string", default)

    def integer(self, key: str, lo: int, hi: int, default: Any = None) -> Any:
        value = self._get(key, (int,), "an integer", default)
        if key in self.data and not lo <= value <= hi:
            raise ConfigError(f"{self.where}: '{key}' must be in {lo}-{hi}, got {value}")
        return value

    def number(self, key: str, lo: float, hi: float, default: Any = None) -> Any:
        value = self._get(key, (int, float), "a number", default)
        if key in self.data and not lo <= value <= hi:
            raise ConfigError(f"{self.where}: '{key}' must be in {lo}-{hi}, got {value}")
        return float(value) if value is not None else None

    def raw(self, key: str) -> Any:
        self.used.add(key)
        return self.data.get(key)

    def done(self) -> None:
        extra = sorted(set(self.data) - self.used)
        if extra:
            raise ConfigError(f"{self.where}: unknown key(s) {', '.join(map(repr, extra))}")


_REQUIRED = object()


def _endpoint(text: str, where: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    try:
        if not sep:
            raise ValueError
        ip = str(ipaddress.IPv4Address(host))
        number = int(port)
        if not 1 <= number <= 65535 or not port.isdigit():
            raise ValueError
    except ValueError:
        raise ConfigError(f"{where}: 'listen' must be \"a.b.c.d:port\" (IPv4, port 1-65535), got {text!r}") from None
    return ip, number


def _service(data: object, index: int, limits: Limits) -> ServiceConfig:
    t = _Table(data, f"[[service]] #{index + 1}")
    name = t.text("name", f"service-{index + 1}")
    t.where = f"[[service]] {name!r}"
    host, port = _endpoint(t.text("listen", _REQUIRED), t.where)
    policy = t.text("policy", _REQUIRED)
    if policy not in POLICIES:
        raise ConfigError(f"{t.where}: unknown policy {policy!r} (one of {', '.join(POLICIES)})")
    after = t.integer("after_bytes", 0, 2**63 - 1, None)
    if policy == "after-bytes" and after is None:
        raise ConfigError(f"{t.where}: policy 'after-bytes' needs 'after_bytes'")
    if policy != "after-bytes" and after is not None:
        raise ConfigError(f"{t.where}: 'after_bytes' is only for policy 'after-bytes'")
    set_headers = t.raw("set_headers")
    remove_headers = t.raw("remove_headers")
    if policy != "rewrite" and (set_headers is not None or remove_headers is not None):
        raise ConfigError(f"{t.where}: 'set_headers'/'remove_headers' are only for policy 'rewrite'")
    sets: list[tuple[str, str]] = []
    removes: list[str] = []
    if policy == "rewrite":
        if set_headers is not None:
            if not isinstance(set_headers, Mapping):
                raise ConfigError(f"{t.where}: 'set_headers' must be a table of header = \"value\"")
            for hname, value in set_headers.items():
                if not _HEADER_NAME.fullmatch(hname) or not isinstance(value, str) or not _latin1_line(value):
                    raise ConfigError(f"{t.where}: set_headers: bad header {hname!r} = {value!r}")
                sets.append((hname, value))
        if remove_headers is not None:
            if not isinstance(remove_headers, list) or not all(
                isinstance(h, str) and _HEADER_NAME.fullmatch(h) for h in remove_headers
            ):
                raise ConfigError(f"{t.where}: 'remove_headers' must be a list of header names")
            removes = list(remove_headers)
        if not sets and not removes:
            raise ConfigError(f"{t.where}: policy 'rewrite' needs 'set_headers' or 'remove_headers'")
        extra = sum(len(n) + len(v) + 4 for n, v in sets)
        if extra > limits.buffer_bytes:
            raise ConfigError(f"{t.where}: set_headers add {extra} bytes, more than limits.buffer_bytes")
    t.done()
    return ServiceConfig(name, host, port, policy, after or 0, tuple(sets), tuple(removes))


def _latin1_line(value: str) -> bool:
    try:
        raw = value.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return b"\r" not in raw and b"\n" not in raw


def _limits(data: object) -> Limits:
    t = _Table(data if data is not None else {}, "[limits]")
    d = Limits()
    limits = Limits(
        max_connections=t.integer("max_connections", 1, 1_000_000, d.max_connections),
        buffer_bytes=t.integer("buffer_bytes", 1024, 64 * 1024 * 1024, d.buffer_bytes),
        max_header_bytes=t.integer("max_header_bytes", 256, 1024 * 1024, d.max_header_bytes),
        head_timeout_s=t.number("head_timeout_s", 0.01, 3600, d.head_timeout_s),
        connect_timeout_s=t.number("connect_timeout_s", 0.01, 3600, d.connect_timeout_s),
        drain_timeout_s=t.number("drain_timeout_s", 0.01, 3600, d.drain_timeout_s),
        settle_s=t.number("settle_s", 0, 10, d.settle_s),
        shutdown_grace_s=t.number("shutdown_grace_s", 0, 3600, d.shutdown_grace_s),
    )
    t.done()
    return limits


def _namespace(data: object) -> NamespaceSetup | None:
    if data is None:
        return None
    t = _Table(data, "[namespace]")
    interfaces = t.raw("interfaces")
    if (
        not isinstance(interfaces, list)
        or not interfaces
        or not all(isinstance(i, str) and 0 < len(i) <= 15 and "/" not in i and " " not in i for i in interfaces)
    ):
        raise ConfigError("[namespace]: 'interfaces' must be a non-empty list of interface names")
    table = t.integer("table", 1, 2**32 - 1, 100)
    if table in (253, 254, 255):  # default, main, local: never take those over
        raise ConfigError(f"[namespace]: 'table' {table} is one of the kernel's own tables")
    t.done()
    return NamespaceSetup(tuple(interfaces), table)


def parse(data: Mapping[str, Any]) -> ProxyConfig:
    """Check a TOML document already read into a dict; raises ConfigError."""
    top = _Table(data, "the file")
    p = _Table(top.raw("proxy") if "proxy" in data else {}, "[proxy]")
    name = p.text("name", _REQUIRED)
    if not _NAME.fullmatch(name):
        raise ConfigError("[proxy]: 'name' must be 1-64 characters from [A-Za-z0-9._-], starting with a letter or digit")
    controller = p.text("controller", None)
    switch_port = p.integer("switch_port", 0, 511, 0)
    mac = p.text("mac", "00:00:00:00:00:00")
    if not _MAC.fullmatch(mac):
        raise ConfigError(f"[proxy]: 'mac' must be \"aa:bb:cc:dd:ee:ff\", got {mac!r}")
    if controller is not None and "switch_port" not in p.data:
        raise ConfigError("[proxy]: a 'controller' needs the proxy host's 'switch_port'")
    address = p.text("address", None)
    if address is not None:
        try:
            address = str(ipaddress.IPv4Address(address))
        except ValueError:
            raise ConfigError(f"[proxy]: 'address' must be an IPv4 address, got {address!r}") from None
    heartbeat_ms = p.integer("heartbeat_ms", 100, 60000, 1000)
    metrics_port = p.integer("metrics_port", 1, 65535, None)
    metrics_interval = p.number("metrics_interval_s", 0, 86400, 60.0)
    log_level = p.text("log_level", "info")
    if log_level not in _LOG_LEVELS:
        raise ConfigError(f"[proxy]: 'log_level' must be one of {', '.join(_LOG_LEVELS)}")
    log_format = p.text("log_format", "text")
    if log_format not in ("text", "json"):
        raise ConfigError("[proxy]: 'log_format' must be 'text' or 'json'")
    p.done()
    limits = _limits(top.raw("limits"))
    namespace = _namespace(top.raw("namespace"))
    raw_services = top.raw("service")
    if not isinstance(raw_services, list) or not raw_services:
        raise ConfigError("at least one [[service]] is needed")
    services = tuple(_service(s, i, limits) for i, s in enumerate(raw_services))
    seen: dict[tuple[str, int], str] = {}
    names: set[str] = set()
    for s in services:
        if s.name in names:
            raise ConfigError(f"[[service]] {s.name!r}: the name is used twice")
        names.add(s.name)
        for (host, port), other in seen.items():
            if port == s.port and "0.0.0.0" in (host, s.host) or (host, port) == (s.host, s.port):
                raise ConfigError(f"[[service]] {s.name!r}: listens where {other!r} does ({s.host}:{s.port})")
        seen[(s.host, s.port)] = s.name
    top.done()
    return ProxyConfig(
        name=name,
        services=services,
        controller=controller,
        switch_port=switch_port,
        mac=mac.lower(),
        address=address,
        heartbeat_ms=heartbeat_ms,
        limits=limits,
        namespace=namespace,
        metrics_port=metrics_port,
        metrics_interval_s=metrics_interval or 0.0,
        log_level=log_level,
        log_format=log_format,
    )
