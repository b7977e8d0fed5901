"""The wire format of the proxy API (docs/proxy-api.md): constants, flows, argument validation.

Shared by the controller's server and the proxy's client, so that both sides agree on what a
valid message is. Nothing here does I/O.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "API_VERSION",
    "ERROR_CODES",
    "EVENTS",
    "HEARTBEAT_MS_MAX",
    "HEARTBEAT_MS_MIN",
    "MAX_LINE",
    "OPS",
    "SUPPORTED_VERSIONS",
    "ApiError",
    "BadRequest",
    "Flow",
    "check_count",
    "check_flow",
    "check_heartbeat_ms",
    "check_ipv4",
    "check_mac",
    "check_quiescent",
    "check_port",
    "check_proxy_name",
    "decode_line",
    "encode",
    "parse_endpoint",
]

API_VERSION = 1
SUPPORTED_VERSIONS: tuple[int, ...] = (1,)

# A line is at most this many bytes, its '\n' included. A heartbeat listing every connection of
# a busy proxy as quiescent takes about 100 bytes per flow: 256 KiB leaves room for 2,000 and more.
MAX_LINE = 256 * 1024

HEARTBEAT_MS_MIN = 100
HEARTBEAT_MS_MAX = 60_000
# The controller declares a proxy dead after this many heartbeat intervals without one; it warns
# (event heartbeat_missed) one interval before.
MISSED_INTERVALS = 3

# The data plane's ports are bit<9> (v1model and Tofino alike).
PORT_MAX = 511
# Byte counts are totals since the handshake; a proxy may keep them as 64-bit counters.
COUNT_MAX = 2**64 - 1

ERROR_CODES = frozenset({
    "bad_request", "unsupported_version", "unauthorized", "not_registered",
    "not_found", "conflict", "unavailable", "internal",
})

OPS = ("hello", "register", "heartbeat", "splice_prepare", "splice", "splice_cancel", "flow", "flows", "bye")

# Event name -> the fields it must carry.
EVENTS: dict[str, frozenset[str]] = {
    "splice_requested": frozenset({"flow"}),
    "flow_reset": frozenset({"flow", "reason"}),
    "flow_closed": frozenset({"flow"}),
    "heartbeat_missed": frozenset({"deadline_ms"}),
    "port_down": frozenset({"port"}),
    "port_up": frozenset({"port"}),
}

_PROXY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_MAC = re.compile(r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}")


class ApiError(Exception):
    """An error reply of the API: ``code`` is one of :data:`ERROR_CODES`.

    The service raises it to refuse a request; the client raises it when the controller refuses
    one. ``details`` carries any extra fields of the error object (``supported`` for
    ``unsupported_version``).
    """

    def __init__(self, code: str, message: str, **details: Any) -> None:
        if code not in ERROR_CODES:
            raise ValueError(f"unknown proxy API error code {code!r}")
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.details = details

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, **self.details}


class BadRequest(ApiError):
    def __init__(self, message: str) -> None:
        super().__init__("bad_request", message)


@dataclass(frozen=True, order=True)
class Flow:
    """A client-server connection as the proxy sees it on its transparent sockets.

    Field names match the splice core's ``FlowKey``, so ``FlowKey(**dataclasses.asdict(flow))``
    converts one into the other.
    """

    client_ip: str
    client_port: int
    server_ip: str
    server_port: int

    @property
    def client(self) -> str:
        return f"{self.client_ip}:{self.client_port}"

    @property
    def server(self) -> str:
        return f"{self.server_ip}:{self.server_port}"

    def __str__(self) -> str:
        return f"{self.client}->{self.server}"

    def to_json(self) -> dict[str, str]:
        return {"client": self.client, "server": self.server}

    @classmethod
    def parse(cls, client: str, server: str) -> Flow:
        """From the two "a.b.c.d:port" strings; raises ValueError."""
        cip, cport = parse_endpoint(client)
        sip, sport = parse_endpoint(server)
        return cls(cip, cport, sip, sport)

    @classmethod
    def from_text(cls, text: str) -> Flow:
        """From "CLIENT:PORT-SERVER:PORT", as splicectl takes it; raises ValueError."""
        client, sep, server = text.partition("-")
        if not sep:
            raise ValueError(f"{text!r} is not CLIENT:PORT-SERVER:PORT")
        return cls.parse(client, server)

    @classmethod
    def from_json(cls, value: object) -> Flow:
        """From the wire form ``{"client": ..., "server": ...}``; raises ValueError."""
        if not isinstance(value, Mapping):
            raise ValueError("must be an object with 'client' and 'server'")
        extra = set(value) - {"client", "server"}
        if extra:
            raise ValueError(f"unknown field(s) {', '.join(sorted(map(str, extra)))}")
        ends: list[tuple[str, int]] = []
        for end in ("client", "server"):
            text = value.get(end)
            if text is None:
                raise ValueError(f"missing '{end}'")
            if not isinstance(text, str):
                raise ValueError(f"'{end}' must be a string \"a.b.c.d:port\"")
            try:
                ends.append(parse_endpoint(text))
            except ValueError as exc:
                raise ValueError(f"'{end}': {exc}") from None
        (cip, cport), (sip, sport) = ends
        return cls(cip, cport, sip, sport)


def parse_endpoint(text: str) -> tuple[str, int]:
    """ "10.0.1.1:40000" -> ("10.0.1.1", 40000). Dotted-quad IPv4 only (the data plane's flow
    key is IPv4); port 1-65535 (0 is never a connection's port)."""
    addr, sep, port = text.rpartition(":")
    if not sep or not addr:
        raise ValueError(f"{text!r} is not \"a.b.c.d:port\"")
    try:
        # Python >= 3.9.5 rejects octets with leading zeros, which some parsers read as octal.
        ip = ipaddress.IPv4Address(addr)
    except ValueError:
        raise ValueError(f"{addr!r} is not a dotted-quad IPv4 address") from None
    # Plain decimal only: no sign, no spaces, no leading zeros, no non-ASCII digits.
    if not (port.isascii() and port.isdigit()) or port != str(int(port)) or not 1 <= int(port) <= 65535:
        raise ValueError(f"port {port!r} is not in 1-65535")
    return str(ip), int(port)


def _is_int(value: object) -> bool:
    # bool is an int in Python but not in the API.
    return isinstance(value, int) and not isinstance(value, bool)


def check_proxy_name(value: object) -> str:
    if not isinstance(value, str) or not _PROXY_NAME.fullmatch(value):
        raise BadRequest(
            "argument 'proxy' must be a name of 1-64 characters from [A-Za-z0-9._-], "
            "starting with a letter or digit"
        )
    return value


def check_port(value: object) -> int:
    if not _is_int(value) or not 0 <= value <= PORT_MAX:  # type: ignore[operator]
        raise BadRequest(f"argument 'port' must be an integer switch port 0-{PORT_MAX}")
    return value  # type: ignore[return-value]


def check_mac(value: object) -> str:
    if not isinstance(value, str) or not _MAC.fullmatch(value):
        raise BadRequest("argument 'mac' must be a MAC address \"aa:bb:cc:dd:ee:ff\"")
    return value.lower()


def check_ipv4(value: object, name: str = "ip") -> str:
    """A dotted-quad IPv4 address (the proxy host's own address on its switch port)."""
    try:
        if not isinstance(value, str):
            raise ValueError
        return str(ipaddress.IPv4Address(value))
    except ValueError:
        raise BadRequest(f"argument '{name}' must be an IPv4 address \"10.0.0.1\"") from None


def check_heartbeat_ms(value: object) -> int:
    if not _is_int(value) or not HEARTBEAT_MS_MIN <= value <= HEARTBEAT_MS_MAX:  # type: ignore[operator]
        raise BadRequest(
            f"argument 'heartbeat_ms' must be an integer {HEARTBEAT_MS_MIN}-{HEARTBEAT_MS_MAX}"
        )
    return value  # type: ignore[return-value]


def check_count(name: str, value: object) -> int:
    if not _is_int(value) or not 0 <= value <= COUNT_MAX:  # type: ignore[operator]
        raise BadRequest(f"argument '{name}' must be a byte count, an integer 0-2^64-1")
    return value  # type: ignore[return-value]


def check_quiescent(value: object) -> list[dict[str, Any]]:
    """heartbeat's optional ``quiescent``: ``[{"flow": ..., "a_c": n, "b_s": n, "a_s": n, "b_c": n}]``,
    the flows whose sockets hold no unread and no unacknowledged bytes, with the proxy's counts."""
    if not isinstance(value, list):
        raise BadRequest("argument 'quiescent' must be a list of {flow, a_c, b_s, a_s, b_c}")
    out = []
    for item in value:
        if not isinstance(item, dict) or set(item) != {"flow", "a_c", "b_s", "a_s", "b_c"}:
            raise BadRequest("each item of 'quiescent' must have exactly flow, a_c, b_s, a_s, b_c")
        entry: dict[str, Any] = {"flow": check_flow(item["flow"])}
        for name in ("a_c", "b_s", "a_s", "b_c"):
            entry[name] = check_count(name, item[name])
        out.append(entry)
    return out


def check_flow(value: object) -> Flow:
    try:
        return Flow.from_json(value)
    except ValueError as exc:
        raise BadRequest(f"argument 'flow': {exc}") from None


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    number = float(text)
    if math.isinf(number):
        # 1e400 is JSON, but as a double it is Infinity, which no reply could carry back
        raise ValueError(f"number {text[:40]} is out of range")
    return number


def decode_line(line: bytes) -> Any:
    """One received line (without its '\\n') as a JSON value; raises ValueError. NaN and Infinity,
    which Python's json accepts, are refused: they are not JSON and other parsers reject them; so
    is a number beyond the range of a double (Python reads 1e400 as Infinity, and an id echoed so
    could not be encoded), and nesting deeper than Python's parser goes (its RecursionError would
    end the handler)."""
    try:
        return json.loads(line.decode("utf-8"), parse_constant=_no_constants, parse_float=_finite)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def encode(message: Mapping[str, Any]) -> bytes:
    """One message as a line, compact, ASCII-safe, ending in '\\n'."""
    return json.dumps(message, separators=(",", ":"), allow_nan=False).encode() + b"\n"
