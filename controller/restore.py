"""Controller restart: rebuild the splice core's view of established flows from the switch's table.

The state of record is the flows table itself (BMv2 answers register reads with UNIMPLEMENTED, and
entries survive a controller that dies). Each entry's match names its ingress port and 4-tuple; the
services config says which end is the server; action parameters carry the deltas, ports and MACs.
From those the flows come back as the core knew them:

* two translating entries from the client's and the server's ports to each other: **spliced**
  (any entries on the proxy port are the dropping ones of a spliced-out proxy);
* four translating (or holding) entries: **proxied** (or holding): the proxy may still splice;
* translating entries of leg 1 only -- a handshake caught between its legs: **reset** (both ends
  get RSTs, and the core's resetting state answers whatever still arrives with exact RSTs);
* punt entries only -- a handshake caught before leg 1: **removed**. Nothing went through the proxy
  yet and C-S is end to end already, so the connection simply runs without it (fail-open).

The ISNs and options of a restored flow are not in the table; they are only needed for best-effort
RSTs, and the core's probes make the ends reveal their exact sequence numbers anyway.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict

from . import dataplane as dp
from .orchestrator import _TARGET, FlowL2, Orchestrator, PartyL2, _Installed
from .p4rt import codec
from .p4rt.entities import TableEntry, Update, UpdateType
from .splice import Direction, HandshakeFacts, LegParams, TimerKind
from .splice.model import EntryMatch, FlowKey, Ports
from .splice.options import SynOptions, negotiate
from .splice.splice import FlowState

__all__ = ["restore_from_switch"]

log = logging.getLogger(__name__)


def _entry_of(m: EntryMatch, rule: dp.FlowRule, idle_ns: int) -> TableEntry:
    t = rule.translation
    if rule.action in dp.LEG_KINDS and t is not None:
        build = {"hold": dp.flow_hold, "hold_acking": dp.flow_hold_acking}.get(rule.action, dp.flow_translate)
        return build(m, t.port, t.smac, t.dmac, t.seq_delta, t.ack_delta, t.tsval_delta, t.tsecr_delta,
                     t.win_shift_from, t.win_shift_to, idle_timeout_ns=rule.idle_timeout_ns or idle_ns)
    if rule.action == "punt":
        return dp.flow_punt(m)
    return dp.flow_drop(m)


async def restore_from_switch(orch: Orchestrator) -> Counter[str]:
    """Read the flows table back and adopt what it describes; returns what was found."""
    index = orch.sw.index
    found: Counter[str] = Counter()
    groups: dict[FlowKey, list[tuple[EntryMatch, dp.FlowRule, bool]]] = defaultdict(list)
    for entry in await orch.sw.read_all(dp.flows_read(with_counters=False)):
        rule = dp.parse_flow(index, entry)
        fm = rule.match
        m = EntryMatch(fm.ingress_port, codec.format_ipv4(fm.src_addr), fm.src_port,
                       codec.format_ipv4(fm.dst_addr), fm.dst_port)
        if (m.dst_ip, m.dst_port) in orch.services:
            groups[FlowKey(m.src_ip, m.src_port, m.dst_ip, m.dst_port)].append((m, rule, True))
        elif (m.src_ip, m.src_port) in orch.services:
            groups[FlowKey(m.dst_ip, m.dst_port, m.src_ip, m.src_port)].append((m, rule, False))
        else:
            found["orphan"] += 1
            log.warning("flows entry %s belongs to no configured service: left alone", fm)
    idle_ns = int(orch.config.idle_timeout * 1e9)
    deletes: list[Update] = []
    for flow, items in groups.items():
        proxy_port = orch.services[(flow.server_ip, flow.server_port)]
        legs: dict[Direction, LegParams] = {}
        ports: dict[str, int] = {"proxy": proxy_port}
        for m, rule, c2s in items:
            on_proxy = m.ingress_port == proxy_port
            t = rule.translation
            if not on_proxy:
                ports["client" if c2s else "server"] = m.ingress_port
            if rule.action not in dp.LEG_KINDS or t is None:
                continue
            if on_proxy:
                d = Direction.P_TO_S if c2s else Direction.P_TO_C
            elif t.port == proxy_port:
                d = Direction.C_TO_P if c2s else Direction.S_TO_P
            else:
                d = Direction.C_TO_S if c2s else Direction.S_TO_C
            legs[d] = LegParams(d, m, t.port, t.seq_delta, t.ack_delta, t.tsval_delta, t.tsecr_delta,
                                t.win_shift_from, t.win_shift_to, hold=rule.action in dp.HOLD_KINDS)
        if "client" not in ports or not legs:
            # A handshake before leg 1 (punts only): C-S is end to end already; let it run so.
            deletes += [Update(UpdateType.DELETE, dp.flow_key(m)) for m, _, _ in items]
            found["removed_handshake"] += 1
            continue
        if "server" not in ports:
            ports["server"] = next((p.egress_port for d, p in legs.items() if _TARGET[d].value == "server"),
                                   None)  # type: ignore[assignment]
        facts = HandshakeFacts(flow, Ports(ports["client"], ports.get("server"), proxy_port), 0, 0, 0, 0,
                               negotiate(SynOptions(), SynOptions()), SynOptions(), SynOptions())
        l2 = FlowL2()
        for d, p in legs.items():
            rule = next(r for m, r, _ in items if m == p.match)
            assert rule.translation is not None
            party: PartyL2 = l2.party(_TARGET[d])
            party.port, party.switch_mac = p.egress_port, rule.translation.smac.to_bytes(6, "big")
            party.mac = rule.translation.dmac.to_bytes(6, "big")
        orch.l2[flow] = l2
        for m, rule, _ in items:
            orch.entries[m] = _Installed(flow, _entry_of(m, rule, idle_ns), rule.action)
            orch.flow_entries.setdefault(flow, set()).add(m)
        cmds = orch.core.flows.adopt(facts, tuple(legs.values()))
        fl = orch.core.flows.get(flow)
        assert fl is not None
        other = tuple(sorted(m for m, _, _ in items if m not in {p.match for p in legs.values()}))
        if set(legs) == {Direction.C_TO_S, Direction.S_TO_C}:
            fl.state = FlowState.SPLICED
            fl.drops = other
            found["spliced"] += 1
        elif set(legs) == {Direction.C_TO_P, Direction.P_TO_C, Direction.P_TO_S, Direction.S_TO_P}:
            fl.punts = other
            if legs[Direction.C_TO_P].hold:
                fl.state = FlowState.HOLDING
                cmds.append(_hold_timer(fl, orch))
                found["holding"] += 1
            else:
                found["proxied"] += 1
        else:
            fl.drops = other
            cmds += orch.core.flows.reset(flow, "controller restarted during the handshake")
            found["reset_handshake"] += 1
        orch.submit(cmds)
    if deletes:
        await orch._flush(deletes)
    log.info("restored from the switch: %s", dict(found) or "no flows")
    return found


def _hold_timer(fl, orch: Orchestrator):  # noqa: ANN001, ANN202 - core Flow -> StartTimer
    from .splice import StartTimer

    return StartTimer(fl.timer(TimerKind.HOLD), orch.config.hold_timeout)
