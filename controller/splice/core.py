"""The splice core as one object: routes events to the handshake table or the flow table.

The orchestrator (P4Runtime client, proxy API, timer wheel) owns one ``SpliceCore`` per switch and
calls it with every event; each call returns the commands to carry out, in order. A flow moves from
the handshake table to the flow table when its four entries are installed (``FlowEstablished``).
"""

from __future__ import annotations

import logging
from collections import Counter

from .commands import Command, FlowEstablished, RemoveFlow, SendSegment, TimerKey
from .handshake import HandshakeConfig, HandshakeTable
from .legs import SpliceCounts
from .model import SYN, FlowKey, SegmentIn, Side
from .splice import FlowState, FlowTable, SpliceConfig
from .switchrun import SwitchStep

log = logging.getLogger(__name__)


class SpliceCore:
    def __init__(self, handshake: HandshakeConfig | None = None, splice: SpliceConfig | None = None) -> None:
        self.handshakes = HandshakeTable(handshake)
        self.flows = FlowTable(splice)

    def on_segment(self, ev: SegmentIn) -> list[Command]:
        seg = ev.segment
        found = self.flows.find(seg) if len(self.flows) else None
        if found is not None:
            fl, orient = found
            if seg.is_syn and not ev.from_proxy and orient is Side.CLIENT:
                if fl.state in (FlowState.LINGER, FlowState.RESETTING) and seg.seq != fl.facts.isn_c:
                    # The 4-tuple is reused by a new connection: the old one is over.
                    out: list[Command] = [RemoveFlow(fl.flow, fl.matches(), "4-tuple reused")]
                    self.flows.forget(fl.flow)
                    return out + self._route(self.handshakes.on_segment(ev))
                # A SYN inside a live connection is S's business (it answers with a challenge ACK).
                return [] if ev.copy else [SendSegment(fl.flow, Side.SERVER, fl.facts.ports.server, seg, "SYN")]
            if seg.flags & SYN and not ev.from_proxy:
                return []  # SYN-ACK copies of an established flow: retransmissions, already forwarded
            return self.flows.on_segment(ev)
        return self._route(self.handshakes.on_segment(ev))

    def on_switch_step(self, step: SwitchStep) -> list[Command]:
        """A digest of a handshake the switch runs (switchrun.py)."""
        if step.flow in self.flows:
            return []  # a step reported again after the flow was established
        return self._route(self.handshakes.on_switch_step(step))

    def on_timer(self, timer: TimerKey) -> list[Command]:
        if timer.flow in self.handshakes or self.handshakes.is_passing(timer.flow):
            return self._route(self.handshakes.on_timer(timer))
        return self.flows.on_timer(timer)

    def request_splice(self, flow: FlowKey) -> list[Command]:
        return self.flows.request_splice(flow)

    def proxy_report(self, flow: FlowKey, counts: SpliceCounts) -> list[Command]:
        return self.flows.proxy_report(flow, counts)

    def cancel_splice(self, flow: FlowKey) -> list[Command]:
        return self.flows.cancel_splice(flow)

    def on_idle(self, flow: FlowKey) -> list[Command]:
        return self.flows.on_idle(flow)

    def on_proxy_down(self, proxy_port: int, quiescent: dict[FlowKey, SpliceCounts] | None = None) -> list[Command]:
        out = self._route(self.handshakes.on_proxy_down(proxy_port))
        return out + self.flows.on_proxy_down(proxy_port, quiescent or {})

    def stats(self) -> Counter[str]:
        total: Counter[str] = Counter()
        total.update({f"handshake_{k}": v for k, v in self.handshakes.stats.items()})
        total.update({f"flow_{k}": v for k, v in self.flows.stats.items()})
        total["handshakes_pending"] = len(self.handshakes)
        total["flows_tracked"] = len(self.flows)
        return total

    def _route(self, cmds: list[Command]) -> list[Command]:
        out = list(cmds)
        for cmd in cmds:
            if isinstance(cmd, FlowEstablished):
                out += self.flows.adopt(cmd.facts, cmd.legs, cmd.fins)
        return out
