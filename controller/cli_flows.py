"""splicectl flows: flows-table entries grouped into connections, with legs named, and their table.

The switch only knows entries; the connection they belong to and the leg each one is are
inferred here from the services table: of an entry's two endpoints the one that is a service
is the server, so the other is the client, and the service's proxy port tells a leg through the
proxy (ingress or egress on it) from a spliced one. Legs are written ``C>P``, ``P>S``, ``S>P``,
``P>C`` for a proxied connection and ``C>S``, ``S>C`` once spliced; ``*`` is a destination the
entry does not name (punt, drop). Entries whose endpoints match no service are grouped by their
unordered address pair and shown with their raw match.

The state column is what the entries say, not the controller's state machine: ``proxied`` (legs
through P), ``splicing`` (any hold), ``spliced`` (C and S talk directly), ``punt`` or ``drop``
(only such entries).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .dataplane import FlowRule, Service, signed_delta
from .p4rt import codec

Endpoint = tuple[int, int]  # (IPv4 as int, TCP port)


def _ep(e: Endpoint) -> str:
    return f"{codec.format_ipv4(e[0])}:{e[1]}"


@dataclass
class Leg:
    rule: FlowRule
    label: str  # "C>P" ..., or the raw match when the connection is unknown

    def to_dict(self) -> dict[str, Any]:
        return {"leg": self.label} | self.rule.to_dict()


@dataclass
class Connection:
    client: Endpoint | None  # None: no service matched; ``a``/``b`` are the raw pair
    server: Endpoint | None
    a: Endpoint
    b: Endpoint
    proxy_port: int | None = None
    legs: list[Leg] = field(default_factory=list)

    @property
    def name(self) -> str:
        if self.client is not None and self.server is not None:
            return f"{_ep(self.client)} > {_ep(self.server)}"
        return f"{_ep(self.a)} <> {_ep(self.b)}"

    @property
    def state(self) -> str:
        actions = {leg.rule.action for leg in self.legs}
        labels = {leg.label for leg in self.legs}
        if actions & {"hold", "hold_acking"}:
            return "splicing"
        translating = [leg for leg in self.legs if leg.rule.action in ("translate", "translate_nat")]
        if translating and self.client is not None:
            if any("P" not in leg.label for leg in translating):
                return "spliced"
            return "proxied"
        if translating:
            return "forwarding"
        if actions == {"punt"}:
            return "punt"
        if actions == {"drop"}:
            return "drop"
        return "mixed" if labels else "-"

    def to_dict(self) -> dict[str, Any]:
        return {"connection": self.name,
                "client": _ep(self.client) if self.client else None,
                "server": _ep(self.server) if self.server else None,
                "proxy_port": self.proxy_port, "state": self.state,
                "legs": [leg.to_dict() for leg in self.legs]}


_LEG_ORDER = {"C>P": 0, "P>S": 1, "S>P": 2, "P>C": 3, "C>S": 4, "S>C": 5}


def _leg_label(rule: FlowRule, c2s: bool, proxy_port: int | None) -> str:
    ingress = rule.match.ingress_port
    out = rule.translation.port if rule.translation is not None else None
    src = "P" if ingress == proxy_port else ("C" if c2s else "S")
    if out is None:
        dst = "*"
    else:
        dst = "P" if out == proxy_port else ("S" if c2s else "C")
    return f"{src}>{dst}"


def group_flows(rules: Iterable[FlowRule], services: Iterable[Service]) -> list[Connection]:
    """Entries by connection (see the module docstring), connections and legs in a stable order."""
    by_server = {(s.server_addr, s.server_port): s for s in services}
    groups: dict[tuple[Endpoint, Endpoint], Connection] = {}
    for rule in rules:
        m = rule.match
        src, dst = (m.src_addr, m.src_port), (m.dst_addr, m.dst_port)
        if dst in by_server:
            client, server, c2s = src, dst, True
        elif src in by_server:
            client, server, c2s = dst, src, False
        else:
            a, b = sorted((src, dst))
            conn = groups.setdefault((a, b), Connection(None, None, a, b))
            conn.legs.append(Leg(rule, f"{_ep(src)}>{_ep(dst)}"))
            continue
        proxy = by_server[server].proxy_port
        conn = groups.setdefault((client, server), Connection(client, server, client, server, proxy))
        conn.legs.append(Leg(rule, _leg_label(rule, c2s, proxy)))
    out = sorted(groups.values(), key=lambda c: (c.client is None, c.a, c.b))
    for conn in out:
        conn.legs.sort(key=lambda leg: (_LEG_ORDER.get(leg.label, 9), leg.rule.match))
    return out


def _delta(value: int | None) -> str:
    if value is None:
        return "-"
    d = signed_delta(value)
    return "0" if d == 0 else f"{d:+d}"


def _seconds(ns: int | None) -> str:
    if ns is None:
        return "-"
    return f"{ns / 1e9:.1f}s" if ns else "0"


def render_flows(groups: Sequence[Connection]) -> str:
    from .cli import render_table

    rows: list[list[Any]] = []
    for conn in groups:
        first = True
        for leg in conn.legs:
            r, t = leg.rule, leg.rule.translation
            win = f"{t.win_shift_from}>{t.win_shift_to}" if t is not None else "-"
            rows.append([conn.name if first else "", conn.state if first else "", leg.label,
                         r.match.ingress_port, r.action, t.port if t is not None else "-",
                         _delta(t.seq_delta if t else None), _delta(t.ack_delta if t else None),
                         _delta(t.tsval_delta if t else None), _delta(t.tsecr_delta if t else None), win,
                         r.packets if r.packets is not None else "-", r.bytes if r.bytes is not None else "-",
                         _seconds(r.idle_timeout_ns) if r.idle_timeout_ns else "-",
                         _seconds(r.since_last_hit_ns)])
            first = False
    headers = ["connection", "state", "leg", "in", "action", "out", "seq", "ack", "tsval", "tsecr", "win",
               "pkts", "bytes", "timeout", "idle"]
    return render_table(headers, rows)
