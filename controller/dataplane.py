"""The splice program's control-plane schema (p4src/splice.p4) in one place: names, constants, builders.

Everything the controller and ``splicectl`` say to the switch goes through here: the P4Info names
of the tables, actions, parameters, counters and controller headers; the packet-in and malformed
reasons; and builders that return the p4rt library's typed entities (``TableEntry``,
``CloneSessionEntry``, ``PacketOut``...), ready for ``SwitchSession.insert`` or ``to_proto``.
Parsers go the other way: a table entry read back from the switch becomes a ``Route``, ``Service``
or ``FlowRule``, and a ``PacketIn`` becomes a ``SplicePacketIn``.

docs/dataplane.md is the prose reference; :data:`SCHEMA` is its machine-checkable part, and
:func:`check_p4info` compares it with a P4Info so that a program that drifted from this module is
caught when the pipeline is pushed or adopted rather than at the first failed write.

Values are ints on the wire; the builders also take text where people type it (``"10.0.0.0/8"``,
``"02:00:00:00:00:01"``, ``"192.0.2.10"``) and raise ``ValueError`` with a readable message for
anything that does not fit its field.
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from .p4rt import codec
from .p4rt.entities import (
    LPM,
    Action,
    CloneSessionEntry,
    CounterData,
    CounterEntry,
    DigestEntry,
    Exact,
    PacketIn,
    PacketOut,
    Replica,
    TableEntry,
)
from .p4rt.p4info import P4Index, P4InfoLookupError

__all__ = [
    "CPU_CLONE_INSTANCE",
    "CPU_CLONE_SESSION_ID",
    "DEFAULT_CPU_PORT",
    "FLOW_ACTIONS",
    "MALFORMED_COUNTER_SIZE",
    "MAX_PORT",
    "SCHEMA",
    "U32",
    "FlowMatch",
    "FlowsEntry",
    "FlowRule",
    "MalformedReason",
    "PacketInReason",
    "Route",
    "Service",
    "SplicePacketIn",
    "Translation",
    "check_p4info",
    "cpu_clone_session",
    "flow_drop",
    "flow_hold",
    "flow_key",
    "flow_punt",
    "flow_translate",
    "flow_translate_nat",
    "flows_read",
    "malformed_counter",
    "packet_out",
    "parse_flow",
    "parse_prefix",
    "parse_route",
    "parse_service",
    "route",
    "route_key",
    "route_to_cpu",
    "service",
    "service_inline",
    "proxy_clone_session",
    "handshake_digest",
    "fin_digest",
    "service_key",
    "signed_delta",
]

# --- P4Info names (full names: aliases such as "drop" are ambiguous in this program) ----------------

ROUTES = "SpliceIngress.routing.routes"
SERVICES = "SpliceIngress.services.services"
FLOWS = "SpliceIngress.flows.flows"

ROUTE = "SpliceIngress.routing.route"
ROUTE_DROP = "SpliceIngress.routing.drop"
ROUTE_TO_CPU = "SpliceIngress.routing.to_cpu"
PROXIED = "SpliceIngress.services.proxied"
PROXIED_INLINE = "SpliceIngress.services.proxied_inline"
DRAINING = "SpliceIngress.services.draining"  # as proxied_inline, and new connections go unproxied
PROXIED_DRAINING = "SpliceIngress.services.proxied_draining"  # as proxied, and new connections go unproxied
TRANSLATE = "SpliceIngress.flows.translate"
TRANSLATE_NAT = "SpliceIngress.flows.translate_nat"
HOLD = "SpliceIngress.flows.hold"
HOLD_ACKING = "SpliceIngress.flows.hold_acking"  # as hold, and the switch passes held segments' ACKs on
PUNT = "SpliceIngress.flows.punt"
FLOW_DROP = "SpliceIngress.flows.drop"
NO_ACTION = "NoAction"

FLOW_COUNTER = "SpliceIngress.flows.flow_counter"  # direct, on FLOWS
MALFORMED_COUNTER = "SpliceIngress.sanity.malformed"  # indexed by MalformedReason

PACKET_IN = "packet_in"
PACKET_OUT = "packet_out"
HANDSHAKE_DIGEST = "handshake_t"  # a step of a handshake the switch runs (services with proxied_inline)
FIN_DIGEST = "fin_t"  # a FIN a flows entry forwarded (its leg and direction only)

#: Short names of the flows table's actions, as FlowRule.action and splicectl show them.
FLOW_ACTIONS: Mapping[str, str] = {
    TRANSLATE: "translate",
    TRANSLATE_NAT: "translate_nat",
    HOLD: "hold",
    HOLD_ACKING: "hold_acking",
    PUNT: "punt",
    FLOW_DROP: "drop",
}

# --- constants of p4src/include/headers.p4 (their defaults: -D may change them per build) ----------

DEFAULT_CPU_PORT = 255  # CPU_PORT: simple_switch_grpc / p4sim --cpu-port
CPU_CLONE_SESSION_ID = 99  # CPU_CLONE_SESSION_ID: copies to the controller use this session
CPU_CLONE_INSTANCE = 1  # replica instance of the clone session (any value works; docs use 1)
HS_CLONE_SESSION_BASE = 512  # HS_CLONE_SESSION_BASE: session base + p copies out of port p
HS_TIMEOUT = 5.0  # HS_TIMEOUT_US: a handshake slot nobody writes lapses after this many seconds
MALFORMED_COUNTER_SIZE = 16  # MAL_REASONS
MAX_PORT = (1 << 9) - 1  # bit<9> ports
U32 = 1 << 32


class PacketInReason(enum.IntEnum):
    """``packet_in.reason``: why the switch sent a frame to the controller (PIN_* in headers.p4)."""

    SYN = 1  # controller only: SYN toward a service (the controller sends it on after its punt entry)
    SYN_ACK = 2  # copy: SYN-ACK from a service (also forwarded)
    PROXY_SYN = 3  # controller only: the proxy's upstream SYN (leg 2)
    PROXY_SYN_ACK = 4  # controller only: the proxy's SYN-ACK (leg 1)
    FIN = 5  # copy: FIN of a tracked flow, original bytes, from programs built before the fin_t digest
    RST = 6  # copy: RST of a tracked flow, original bytes
    PUNT = 7  # controller only: a flows entry with action punt
    ROUTED = 8  # controller only: a routes entry with action to_cpu (the port probes' replies)
    HELD = 9  # controller only: a data segment toward the proxy under a hold entry (its ACK goes on)
    DECLINED = 10  # controller only: the switch hands over a handshake it was running (and all later segments)
    FIN_HELD = 11  # copy: FIN of a flow under a hold entry; the original was dropped (its sender sends it again)
    HELD_COPY = 12  # copy: a data segment a hold_acking entry kept from the proxy, the switch passed its ACK on

    @property
    def is_copy(self) -> bool:
        """True when the switch also forwarded the frame: the controller must not send it again."""
        return self in (PacketInReason.SYN_ACK, PacketInReason.FIN, PacketInReason.RST, PacketInReason.FIN_HELD,
                        PacketInReason.HELD_COPY)


class MalformedReason(enum.IntEnum):
    """Index of the ``malformed`` counter (MAL_* in headers.p4)."""

    TRUNCATED = 1
    IPV4_HEADER = 2
    IPV4_LENGTH = 3
    TCP_DATA_OFFSET = 4
    TCP_OPT_OVERRUN = 5
    TCP_OPT_LENGTH = 6
    TCP_OPT_DUPLICATE = 7
    TCP_OPT_TOO_MANY = 8
    OTHER = 9


# --- the schema, checkable against a P4Info --------------------------------------------------------

_LEG_PARAMS = (("port", 9), ("smac", 48), ("dmac", 48), ("seq_delta", 32), ("ack_delta", 32),
               ("tsval_delta", 32), ("tsecr_delta", 32), ("win_shift_from", 8), ("win_shift_to", 8))
_NAT_PARAMS = (("new_src_addr", 32), ("new_dst_addr", 32), ("new_src_port", 16), ("new_dst_port", 16))
_FLOW_KEYS = (("ingress_port", 9, "exact"), ("src_addr", 32, "exact"), ("dst_addr", 32, "exact"),
              ("src_port", 16, "exact"), ("dst_port", 16, "exact"))


@dataclass(frozen=True)
class _Schema:
    tables: Mapping[str, tuple[tuple[str, int, str], ...]]  # table -> (field, width, kind)
    table_actions: Mapping[str, tuple[str, ...]]
    actions: Mapping[str, tuple[tuple[str, int], ...]]  # action -> (param, width)
    counters: Mapping[str, int]  # indirect counter -> minimum size
    direct_counters: Mapping[str, str]  # direct counter -> its table
    packet_metadata: Mapping[str, tuple[tuple[str, int], ...]]


#: What this module relies on in the P4Info (names, widths, match kinds). ``check_p4info`` checks it.
SCHEMA = _Schema(
    tables={
        ROUTES: (("ipv4_dst", 32, "lpm"),),
        SERVICES: (("server_addr", 32, "exact"), ("server_port", 16, "exact")),
        FLOWS: _FLOW_KEYS,
    },
    table_actions={
        ROUTES: (ROUTE, ROUTE_DROP, ROUTE_TO_CPU),
        SERVICES: (PROXIED, PROXIED_INLINE, DRAINING, PROXIED_DRAINING),
        FLOWS: (TRANSLATE, TRANSLATE_NAT, HOLD, HOLD_ACKING, PUNT, FLOW_DROP),
    },
    actions={
        ROUTE: (("port", 9), ("smac", 48), ("dmac", 48)),
        ROUTE_DROP: (),
        ROUTE_TO_CPU: (),
        PROXIED: (("proxy_port", 9),),
        PROXIED_INLINE: (("proxy_port", 9), ("smac", 48), ("dmac", 48)),
        DRAINING: (("proxy_port", 9), ("smac", 48), ("dmac", 48)),
        PROXIED_DRAINING: (("proxy_port", 9),),
        TRANSLATE: _LEG_PARAMS,
        TRANSLATE_NAT: _LEG_PARAMS + _NAT_PARAMS,
        HOLD: _LEG_PARAMS,
        HOLD_ACKING: _LEG_PARAMS,
        PUNT: (),
        FLOW_DROP: (),
    },
    counters={MALFORMED_COUNTER: max(MalformedReason) + 1},
    direct_counters={FLOW_COUNTER: FLOWS},
    packet_metadata={
        PACKET_IN: (("ingress_port", 9), ("reason", 8), ("_pad", 7)),
        PACKET_OUT: (("egress_port", 9), ("_pad", 7)),
    },
)


def check_p4info(index: P4Index) -> list[str]:
    """What in ``index`` differs from :data:`SCHEMA` (empty when it is the splice program)."""
    problems: list[str] = []

    def lookup(catalog, name: str):  # noqa: ANN001, ANN202 - any P4Index catalog
        try:
            return catalog.get(name)
        except P4InfoLookupError:
            problems.append(f"missing {catalog.kind} {name}")
            return None

    for tname, keys in SCHEMA.tables.items():
        table = lookup(index.tables, tname)
        if table is None:
            continue
        got = tuple((f.name, f.bitwidth, f.match_type) for f in table.match_fields)
        if got != keys:
            problems.append(f"table {tname}: key {got} != {keys}")
        for aname in SCHEMA.table_actions[tname]:
            action = lookup(index.actions, aname)
            if action is not None and action.id not in table.action_ids:
                problems.append(f"table {tname}: action {aname} not allowed")
    for aname, params in SCHEMA.actions.items():
        action = lookup(index.actions, aname)
        if action is not None:
            got_params = tuple((p.name, p.bitwidth) for p in action.params)
            if got_params != params:
                problems.append(f"action {aname}: params {got_params} != {params}")
    for cname, size in SCHEMA.counters.items():
        counter = lookup(index.counters, cname)
        if counter is not None and counter.size < size:
            problems.append(f"counter {cname}: size {counter.size} < {size}")
    for cname, tname in SCHEMA.direct_counters.items():
        dc = lookup(index.direct_counters, cname)
        if dc is not None and tname in index.tables and dc.table_id != index.tables.get(tname).id:
            problems.append(f"direct counter {cname} is not on {tname}")
    for hname, fields in SCHEMA.packet_metadata.items():
        header = lookup(index.packet_metadata, hname)
        if header is not None:
            got_fields = tuple((f.name, f.bitwidth) for f in header.fields)
            if got_fields != fields:
                problems.append(f"{hname}: fields {got_fields} != {fields}")
    return problems


# --- value helpers ------------------------------------------------------------------------------

Address = str | int | ipaddress.IPv4Address
MacLike = str | int


def _addr(value: Address, what: str) -> int:
    if isinstance(value, ipaddress.IPv4Address):
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        if not 0 <= value < U32:
            raise ValueError(f"{what}: {value} is not an IPv4 address")
        return value
    if isinstance(value, str):
        try:
            return codec.ipv4(value)
        except ValueError:
            raise ValueError(f"{what}: not an IPv4 address: {value!r}") from None
    raise TypeError(f"{what}: expected an IPv4 address, got {type(value).__name__}")


def _mac(value: MacLike, what: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        if not 0 <= value < 1 << 48:
            raise ValueError(f"{what}: {value} is not a MAC address")
        return value
    if isinstance(value, str):
        try:
            return codec.mac(value)
        except ValueError:
            raise ValueError(f"{what}: not a MAC address: {value!r}") from None
    raise TypeError(f"{what}: expected a MAC address, got {type(value).__name__}")


def _port(value: int, what: str = "port") -> int:
    """A switch port (bit<9>)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_PORT:
        raise ValueError(f"{what}: {value!r} is not a switch port (0..{MAX_PORT})")
    return value


def _l4port(value: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 0xFFFF:
        raise ValueError(f"{what}: {value!r} is not a TCP port (0..65535)")
    return value


def _delta(value: int, what: str) -> int:
    """A mod-2^32 delta. Negative values are accepted and wrapped, so callers may write ``-d``
    where the data plane wants ``2**32 - d``."""
    if isinstance(value, bool) or not isinstance(value, int) or not -U32 < value < U32:
        raise ValueError(f"{what}: {value!r} is not a 32-bit delta")
    return value % U32


def _shift(value: int, what: str) -> int:
    # RFC 7323 caps the window scale at 14; the field is bit<8> but larger shifts are nonsense.
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 14:
        raise ValueError(f"{what}: {value!r} is not a window scale shift (0..14)")
    return value


def signed_delta(value: int) -> int:
    """A mod-2^32 delta as the signed number people read (2**32 - 5 -> -5)."""
    return value - U32 if value >= 1 << 31 else value


def parse_prefix(prefix: str | ipaddress.IPv4Network) -> ipaddress.IPv4Network:
    """``"10.0.0.0/8"`` (or a bare address: /32). Host bits beyond the prefix are an error, as a
    P4Runtime server would refuse the LPM value anyway."""
    if isinstance(prefix, ipaddress.IPv4Network):
        return prefix
    try:
        return ipaddress.IPv4Network(prefix, strict=True)
    except ValueError as e:
        if "host bits set" in str(e):
            raise ValueError(f"prefix {prefix!r} has host bits set beyond its length") from None
        raise ValueError(f"not an IPv4 prefix: {prefix!r}") from None


# --- routes ---------------------------------------------------------------------------------------

def route_key(prefix: str | ipaddress.IPv4Network) -> TableEntry:
    """The routes entry of ``prefix`` with no action: for DELETE and read filters."""
    net = parse_prefix(prefix)
    return TableEntry(ROUTES, {"ipv4_dst": LPM(int(net.network_address), net.prefixlen)})


def route(prefix: str | ipaddress.IPv4Network, port: int, smac: MacLike, dmac: MacLike) -> TableEntry:
    """Packets to ``prefix`` leave by ``port`` with these MACs (TTL - 1)."""
    params = {"port": _port(port), "smac": _mac(smac, "smac"), "dmac": _mac(dmac, "dmac")}
    return TableEntry(ROUTES, route_key(prefix).match, Action(ROUTE, params))


def route_to_cpu(prefix: str | ipaddress.IPv4Network) -> TableEntry:
    """Packets to ``prefix`` go to the controller untouched (packet-in reason ROUTED)."""
    return TableEntry(ROUTES, route_key(prefix).match, Action(ROUTE_TO_CPU))


@dataclass(frozen=True)
class Route:
    prefix: ipaddress.IPv4Network
    port: int | None  # None: the entry drops, or sends to the controller (to_cpu)
    smac: int = 0
    dmac: int = 0
    to_cpu: bool = False

    @property
    def action(self) -> str:
        return "to_cpu" if self.to_cpu else "route" if self.port is not None else "drop"

    def to_dict(self) -> dict[str, object]:
        return {"prefix": str(self.prefix), "action": self.action,
                "port": self.port, "smac": codec.format_mac(self.smac), "dmac": codec.format_mac(self.dmac)}


def parse_route(index: P4Index, entry: TableEntry) -> Route:
    """A routes entry read back from the switch (an absent key is the /0 don't-care)."""
    m = entry.match.get("ipv4_dst")
    net = ipaddress.IPv4Network((m.value, m.prefix_len)) if isinstance(m, LPM) else ipaddress.IPv4Network("0.0.0.0/0")
    action = entry.action
    name = None if action is None else index.actions.get(action.name).name
    if name == ROUTE_TO_CPU:
        return Route(net, None, to_cpu=True)
    if action is None or name != ROUTE:
        return Route(net, None)
    return Route(net, action.params["port"], action.params["smac"], action.params["dmac"])


# --- services -------------------------------------------------------------------------------------

def service_key(server_addr: Address, server_port: int) -> TableEntry:
    """The services entry of (server, port) with no action: for DELETE and read filters."""
    return TableEntry(SERVICES, {"server_addr": Exact(_addr(server_addr, "server address")),
                                 "server_port": Exact(_l4port(server_port, "server port"))})


def service(server_addr: Address, server_port: int, proxy_port: int, draining: bool = False) -> TableEntry:
    """Connections to (server, port) are proxied by the host on switch port ``proxy_port``.
    ``draining``: the handshakes under way go on, new connections run end to end unproxied."""
    return TableEntry(SERVICES, service_key(server_addr, server_port).match,
                      Action(PROXIED_DRAINING if draining else PROXIED, {"proxy_port": _port(proxy_port, "proxy port")}))


def service_inline(server_addr: Address, server_port: int, proxy_port: int, smac: MacLike,
                   dmac: MacLike, draining: bool = False) -> TableEntry:
    """As :func:`service`, and the switch runs the handshakes itself, reaching the proxy's host
    with these MACs (it needs :func:`proxy_clone_session` of the port and the digest enabled).
    ``draining``: the handshakes under way go on, new connections run end to end unproxied."""
    params = {"proxy_port": _port(proxy_port, "proxy port"), "smac": _mac(smac, "smac"), "dmac": _mac(dmac, "dmac")}
    return TableEntry(SERVICES, service_key(server_addr, server_port).match,
                      Action(DRAINING if draining else PROXIED_INLINE, params))


def proxy_clone_session(proxy_port: int) -> CloneSessionEntry:
    """The clone session by which the switch's handshake sends packets it builds out of ``proxy_port``."""
    port = _port(proxy_port, "proxy port")
    return CloneSessionEntry(HS_CLONE_SESSION_BASE + port, (Replica(port, CPU_CLONE_INSTANCE),))


def handshake_digest(max_list_size: int = 64, max_timeout_ns: int = 1_000_000) -> DigestEntry:
    """Turns on the digest of the switch's handshakes: lists of up to ``max_list_size``, sent at
    the latest ``max_timeout_ns`` after their first."""
    return DigestEntry(HANDSHAKE_DIGEST, max_timeout_ns=max_timeout_ns, max_list_size=max_list_size)


def fin_digest(max_list_size: int = 64, max_timeout_ns: int = 1_000_000) -> DigestEntry:
    """Turns on the digest of FINs that flows entries forward, in lists as ``handshake_digest``'s."""
    return DigestEntry(FIN_DIGEST, max_timeout_ns=max_timeout_ns, max_list_size=max_list_size)


@dataclass(frozen=True)
class Service:
    server_addr: int
    server_port: int
    proxy_port: int
    inline: bool = False  # the switch runs its handshakes (proxied_inline)
    draining: bool = False  # takes no new connection (draining, proxied_draining)

    def to_dict(self) -> dict[str, object]:
        return {"server": f"{codec.format_ipv4(self.server_addr)}:{self.server_port}",
                "server_addr": codec.format_ipv4(self.server_addr), "server_port": self.server_port,
                "proxy_port": self.proxy_port, "handshakes": "switch" if self.inline else "controller",
                "draining": self.draining}


def parse_service(index: P4Index, entry: TableEntry) -> Service:
    addr, port = entry.match.get("server_addr"), entry.match.get("server_port")
    proxy = entry.action.params.get("proxy_port", 0) if entry.action is not None else 0
    action = index.actions.get(entry.action.name).name if entry.action is not None else None
    return Service(addr.value if isinstance(addr, Exact) else 0, port.value if isinstance(port, Exact) else 0,
                   proxy, action in (PROXIED_INLINE, DRAINING), action in (DRAINING, PROXIED_DRAINING))


# --- flows ----------------------------------------------------------------------------------------

class _EntryMatchLike(Protocol):
    """The splice core's ``EntryMatch`` (controller/splice/model.py), without importing it."""

    ingress_port: int
    src_ip: str
    src_port: int
    dst_ip: str
    dst_port: int


@dataclass(frozen=True, order=True)
class FlowMatch:
    """The key of one flows entry: the ingress port and the segment's addresses and ports."""

    ingress_port: int
    src_addr: int
    dst_addr: int
    src_port: int
    dst_port: int

    @classmethod
    def of(cls, ingress_port: int, src: Address, src_port: int, dst: Address, dst_port: int) -> FlowMatch:
        """From text or ints, checked: ``FlowMatch.of(1, "10.0.0.1", 40000, "10.0.1.1", 80)``."""
        return cls(_port(ingress_port, "ingress port"), _addr(src, "source address"),
                   _addr(dst, "destination address"), _l4port(src_port, "source port"),
                   _l4port(dst_port, "destination port"))

    @classmethod
    def coerce(cls, key: FlowMatch | _EntryMatchLike) -> FlowMatch:
        """A FlowMatch, or the splice core's EntryMatch (same fields, text addresses)."""
        if isinstance(key, FlowMatch):
            return key
        return cls.of(key.ingress_port, key.src_ip, key.src_port, key.dst_ip, key.dst_port)

    def match(self) -> dict[str, Exact]:
        return {"ingress_port": Exact(self.ingress_port), "src_addr": Exact(self.src_addr),
                "dst_addr": Exact(self.dst_addr), "src_port": Exact(self.src_port),
                "dst_port": Exact(self.dst_port)}

    @property
    def src(self) -> str:
        return f"{codec.format_ipv4(self.src_addr)}:{self.src_port}"

    @property
    def dst(self) -> str:
        return f"{codec.format_ipv4(self.dst_addr)}:{self.dst_port}"

    def __str__(self) -> str:
        return f"[{self.ingress_port}] {self.src} > {self.dst}"


FlowKeyLike = FlowMatch | _EntryMatchLike


@dataclass(frozen=True)
class Translation:
    """The parameters shared by translate, translate_nat and hold (deltas mod 2^32)."""

    port: int
    smac: int
    dmac: int
    seq_delta: int = 0
    ack_delta: int = 0
    tsval_delta: int = 0
    tsecr_delta: int = 0
    win_shift_from: int = 0
    win_shift_to: int = 0

    @classmethod
    def of(cls, port: int, smac: MacLike, dmac: MacLike, seq_delta: int = 0, ack_delta: int = 0,
           tsval_delta: int = 0, tsecr_delta: int = 0, win_shift_from: int = 0,
           win_shift_to: int = 0) -> Translation:
        return cls(_port(port), _mac(smac, "smac"), _mac(dmac, "dmac"), _delta(seq_delta, "seq_delta"),
                   _delta(ack_delta, "ack_delta"), _delta(tsval_delta, "tsval_delta"),
                   _delta(tsecr_delta, "tsecr_delta"), _shift(win_shift_from, "win_shift_from"),
                   _shift(win_shift_to, "win_shift_to"))

    def params(self) -> dict[str, int]:
        return {"port": self.port, "smac": self.smac, "dmac": self.dmac, "seq_delta": self.seq_delta,
                "ack_delta": self.ack_delta, "tsval_delta": self.tsval_delta,
                "tsecr_delta": self.tsecr_delta, "win_shift_from": self.win_shift_from,
                "win_shift_to": self.win_shift_to}


def flow_key(key: FlowKeyLike) -> TableEntry:
    """The flows entry of ``key`` with no action: for DELETE and read filters."""
    return TableEntry(FLOWS, FlowMatch.coerce(key).match())


def _flow(key: FlowKeyLike, action: Action, idle_timeout_ns: int) -> TableEntry:
    if idle_timeout_ns < 0:
        raise ValueError(f"idle timeout {idle_timeout_ns} is negative")
    return TableEntry(FLOWS, FlowMatch.coerce(key).match(), action, idle_timeout_ns=idle_timeout_ns)


def flow_translate(key: FlowKeyLike, port: int, smac: MacLike, dmac: MacLike, seq_delta: int = 0,
                   ack_delta: int = 0, tsval_delta: int = 0, tsecr_delta: int = 0, win_shift_from: int = 0,
                   win_shift_to: int = 0, *, idle_timeout_ns: int = 0) -> TableEntry:
    """Segments matching ``key`` leave by ``port`` with these MACs, translated (deltas mod 2^32;
    a negative delta is taken as 2^32 + delta)."""
    t = Translation.of(port, smac, dmac, seq_delta, ack_delta, tsval_delta, tsecr_delta, win_shift_from,
                       win_shift_to)
    return _flow(key, Action(TRANSLATE, t.params()), idle_timeout_ns)


def flow_translate_nat(key: FlowKeyLike, port: int, smac: MacLike, dmac: MacLike, new_src: Address,
                       new_dst: Address, new_src_port: int, new_dst_port: int, seq_delta: int = 0,
                       ack_delta: int = 0, tsval_delta: int = 0, tsecr_delta: int = 0, win_shift_from: int = 0,
                       win_shift_to: int = 0, *, idle_timeout_ns: int = 0) -> TableEntry:
    """As :func:`flow_translate`, and the addresses and ports replaced."""
    t = Translation.of(port, smac, dmac, seq_delta, ack_delta, tsval_delta, tsecr_delta, win_shift_from,
                       win_shift_to)
    params = t.params() | {
        "new_src_addr": _addr(new_src, "new source address"),
        "new_dst_addr": _addr(new_dst, "new destination address"),
        "new_src_port": _l4port(new_src_port, "new source port"),
        "new_dst_port": _l4port(new_dst_port, "new destination port"),
    }
    return _flow(key, Action(TRANSLATE_NAT, params), idle_timeout_ns)


def flow_hold(key: FlowKeyLike, port: int, smac: MacLike, dmac: MacLike, seq_delta: int = 0,
              ack_delta: int = 0, tsval_delta: int = 0, tsecr_delta: int = 0, win_shift_from: int = 0,
              win_shift_to: int = 0, *, idle_timeout_ns: int = 0, acking: bool = False) -> TableEntry:
    """As :func:`flow_translate`, but segments with payload, SYN or FIN never reach their
    destination (the splice's drain phase); pure ACKs and RSTs pass translated. A data segment
    goes to the controller (reason HELD); with ``acking`` (action hold_acking) the switch sends
    its pure ACK on itself and drops the payload."""
    t = Translation.of(port, smac, dmac, seq_delta, ack_delta, tsval_delta, tsecr_delta, win_shift_from,
                       win_shift_to)
    return _flow(key, Action(HOLD_ACKING if acking else HOLD, t.params()), idle_timeout_ns)


def flow_hold_acking(key: FlowKeyLike, port: int, smac: MacLike, dmac: MacLike, seq_delta: int = 0,
                     ack_delta: int = 0, tsval_delta: int = 0, tsecr_delta: int = 0, win_shift_from: int = 0,
                     win_shift_to: int = 0, *, idle_timeout_ns: int = 0) -> TableEntry:
    """:func:`flow_hold` with ``acking``."""
    return flow_hold(key, port, smac, dmac, seq_delta, ack_delta, tsval_delta, tsecr_delta, win_shift_from,
                     win_shift_to, idle_timeout_ns=idle_timeout_ns, acking=True)


def flow_punt(key: FlowKeyLike, *, idle_timeout_ns: int = 0) -> TableEntry:
    """Segments matching ``key`` go to the controller only, untouched (reason PUNT)."""
    return _flow(key, Action(PUNT), idle_timeout_ns)


def flow_drop(key: FlowKeyLike, *, idle_timeout_ns: int = 0) -> TableEntry:
    """Segments matching ``key`` are dropped."""
    return _flow(key, Action(FLOW_DROP), idle_timeout_ns)


# the arguments of each kind's function above after the key, as FlowsEntry takes them
_FLOWS_BUILD = {"translate": flow_translate, "hold": flow_hold, "hold_acking": flow_hold_acking,
                "punt": flow_punt, "drop": flow_drop}
_FLOWS_ACTION = {"translate": TRANSLATE, "hold": HOLD, "hold_acking": HOLD_ACKING, "punt": PUNT, "drop": FLOW_DROP}
#: The kinds of flows entries that carry a leg's translation, and those of them that hold.
HOLD_KINDS = frozenset({"hold", "hold_acking"})
LEG_KINDS = frozenset({"translate"}) | HOLD_KINDS
_TRANSLATION_PARAMS = ("port", "smac", "dmac", "seq_delta", "ack_delta", "tsval_delta", "tsecr_delta",
                       "win_shift_from", "win_shift_to")  # Translation.params()'s order


@dataclass(frozen=True, slots=True)
class FlowsEntry:
    """A flows entry the controller writes, kept as the arguments of its kind's function
    (:func:`flow_translate`, :func:`flow_hold`: the key, port, MACs, deltas and shifts;
    :func:`flow_punt`, :func:`flow_drop`: the key), the idle timeout last.

    It goes into a Write as it is (an entity: ``Update(UpdateType.INSERT, FlowsEntry(...))``):
    :meth:`fill` writes the TableEntry message straight from these numbers, the very message
    ``table_entry().fill`` makes (the tests compare them) without the TableEntry, its Action and
    a Exact per key being built and checked on the way: four entries per proxied connection.
    Numbers that do not fit their fields take the long way, whose checks say what is wrong.
    """

    kind: str  # translate, hold, hold_acking, punt, drop
    args: tuple[Any, ...]

    entity_kind: ClassVar[str] = "table_entry"

    def table_entry(self) -> TableEntry:
        *args, idle = self.args
        return _FLOWS_BUILD[self.kind](*args, idle_timeout_ns=idle)

    @property
    def idle_timeout_ns(self) -> int:
        return int(self.args[-1])

    def __str__(self) -> str:
        return str(self.table_entry())

    def fill(self, index: P4Index, out: Any) -> None:
        layout = index.encode_cache.get(("flows entry", self.kind))
        if layout is None:
            layout = index.encode_cache[("flows entry", self.kind)] = _flows_layout(index, self.kind)
        table_id, keys, action_id, params = layout
        key, *values, idle = self.args
        try:
            kv = {"ingress_port": key.ingress_port, "src_addr": codec.ipv4(key.src_ip),
                  "dst_addr": codec.ipv4(key.dst_ip), "src_port": key.src_port, "dst_port": key.dst_port}
        except (AttributeError, TypeError, ValueError):
            kv = None
        fits = (kv is not None and len(values) == len(params) and type(idle) is int and idle >= 0
                and _fits([kv[name] for name, _, _ in keys], [w for _, _, w in keys])
                and _fits(values, [w for _, w in params]))
        if not fits:
            self.table_entry().fill(index, out)  # raises, or encodes what it accepts
            return
        assert kv is not None
        out.table_id = table_id
        match = out.match
        for name, fid, _ in keys:
            v = kv[name]
            match.add(field_id=fid).exact.value = v.to_bytes((v.bit_length() + 7) // 8 or 1, "big")
        action = out.action.action
        action.action_id = action_id
        add = action.params.add
        for (pid, _), v in zip(params, values, strict=True):
            add(param_id=pid, value=v.to_bytes((v.bit_length() + 7) // 8 or 1, "big"))
        if idle:
            out.idle_timeout_ns = idle


def _fits(values: Sequence[Any], widths: Sequence[int]) -> bool:
    """Every value a plain int that fits its width."""
    return all(type(v) is int and v >= 0 and not v >> w for v, w in zip(values, widths, strict=True))


def _flows_layout(index: P4Index, kind: str) -> tuple[int, list[tuple[str, int, int]], int, list[tuple[int, int]]]:
    """(table id, [(key name, field id, width)] in P4Info order, action id, [(param id, width)] in
    the order FlowsEntry takes them) for entries of ``kind``."""
    table = index.tables.get(FLOWS)
    keys = sorted(((f.name, f.id, f.bitwidth) for f in table.match_fields), key=lambda k: k[1])
    if sorted(k[0] for k in keys) != sorted(("ingress_port", "src_addr", "dst_addr", "src_port", "dst_port")):
        raise ValueError(f"{FLOWS}: unexpected keys {[k[0] for k in keys]}")
    action = index.actions.get(_FLOWS_ACTION[kind])
    names = _TRANSLATION_PARAMS if kind in LEG_KINDS else ()
    params = [(action.params.get(n).id, action.params.get(n).bitwidth) for n in names]
    if len(params) != len(action.params):
        raise ValueError(f"{action.name}: unexpected parameters")
    return table.id, keys, action.id, params


def flows_read(with_counters: bool = True) -> TableEntry:
    """Read filter: every flows entry, with its direct counter when ``with_counters``."""
    return TableEntry(FLOWS, counter_data=CounterData() if with_counters else None)


@dataclass(frozen=True)
class FlowRule:
    """A flows entry as read back: its key, what it does and its counters."""

    match: FlowMatch
    action: str  # translate, translate_nat, hold, hold_acking, punt, drop (or the P4Info alias of anything else)
    translation: Translation | None = None  # translate, translate_nat, hold and hold_acking
    nat: tuple[int, int, int, int] | None = None  # new src addr, dst addr, src port, dst port
    idle_timeout_ns: int = 0
    packets: int | None = None
    bytes: int | None = None
    since_last_hit_ns: int | None = None

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "ingress_port": self.match.ingress_port, "src": self.match.src, "dst": self.match.dst,
            "action": self.action, "idle_timeout_ns": self.idle_timeout_ns,
            "packets": self.packets, "bytes": self.bytes, "since_last_hit_ns": self.since_last_hit_ns,
        }
        t = self.translation
        if t is not None:
            out |= {"port": t.port, "smac": codec.format_mac(t.smac), "dmac": codec.format_mac(t.dmac),
                    "seq_delta": t.seq_delta, "ack_delta": t.ack_delta, "tsval_delta": t.tsval_delta,
                    "tsecr_delta": t.tsecr_delta, "win_shift_from": t.win_shift_from,
                    "win_shift_to": t.win_shift_to}
        if self.nat is not None:
            out |= {"new_src": f"{codec.format_ipv4(self.nat[0])}:{self.nat[2]}",
                    "new_dst": f"{codec.format_ipv4(self.nat[1])}:{self.nat[3]}"}
        return out


def parse_flow(index: P4Index, entry: TableEntry) -> FlowRule:
    """A flows entry read back from the switch, in this module's terms."""
    values = {}
    for name in ("ingress_port", "src_addr", "dst_addr", "src_port", "dst_port"):
        m = entry.match.get(name)
        values[name] = m.value if isinstance(m, Exact) else 0
    key = FlowMatch(**values)
    action = entry.action
    full = index.actions.get(action.name).name if action is not None else NO_ACTION
    kind = FLOW_ACTIONS.get(full, action.name if action is not None else "none")
    translation = nat = None
    if full in (TRANSLATE, TRANSLATE_NAT, HOLD, HOLD_ACKING) and action is not None:
        p = action.params
        translation = Translation(p["port"], p["smac"], p["dmac"], p["seq_delta"], p["ack_delta"],
                                  p["tsval_delta"], p["tsecr_delta"], p["win_shift_from"], p["win_shift_to"])
        if full == TRANSLATE_NAT:
            nat = (p["new_src_addr"], p["new_dst_addr"], p["new_src_port"], p["new_dst_port"])
    counters = entry.counter_data
    return FlowRule(key, kind, translation, nat, entry.idle_timeout_ns,
                    counters.packet_count if counters is not None else None,
                    counters.byte_count if counters is not None else None,
                    entry.time_since_last_hit_ns)


# --- counters, clone session, packet I/O ------------------------------------------------------------

def malformed_counter(reason: MalformedReason | int | None = None) -> CounterEntry:
    """Read filter: one malformed reason's cell, or every cell when ``reason`` is None."""
    return CounterEntry(MALFORMED_COUNTER, None if reason is None else int(reason))


def cpu_clone_session(cpu_port: int = DEFAULT_CPU_PORT,
                      session_id: int = CPU_CLONE_SESSION_ID) -> CloneSessionEntry:
    """The clone session the program's copies to the controller use (SYN, SYN_ACK, FIN, RST).
    Insert it once after every pipeline push: without it those copies are silently not made."""
    return CloneSessionEntry(session_id, (Replica(_port(cpu_port, "CPU port"), CPU_CLONE_INSTANCE),))


@dataclass(frozen=True)
class SplicePacketIn:
    """A packet-in of the splice program: why, where the frame came in, and the frame as it arrived."""

    reason: PacketInReason | int  # an int only for a reason this module does not know
    ingress_port: int
    frame: bytes

    @classmethod
    def decode(cls, packet: PacketIn) -> SplicePacketIn:
        md = packet.metadata
        try:
            raw_reason, port = md["reason"], md["ingress_port"]
        except KeyError as e:
            raise ValueError(f"packet-in without the {e.args[0]!r} metadata field") from None
        try:
            reason: PacketInReason | int = PacketInReason(raw_reason)
        except ValueError:
            reason = raw_reason  # a newer program's reason: keep it, let the caller decide
        return cls(reason, port, packet.payload)

    @property
    def is_copy(self) -> bool:
        return isinstance(self.reason, PacketInReason) and self.reason.is_copy


def packet_out(egress_port: int, frame: bytes) -> PacketOut:
    """A frame to send out of ``egress_port`` byte for byte (the program applies nothing else)."""
    return PacketOut(bytes(frame), {"egress_port": _port(egress_port, "egress port"), "_pad": 0})
