"""The splice core, free of I/O: sequence arithmetic, option negotiation, the handshake machine.

Events go in (``SpliceCore.on_segment``, ``on_switch_step``, ``on_timer``, ``request_splice``, ``proxy_report``,
``on_idle``, ``on_proxy_down``); typed commands come out (commands.py). See docs/controller-splice.md.
"""

from .commands import (
    CancelTimer,
    Command,
    FlowEstablished,
    InstallDrop,
    InstallLeg,
    InstallPunt,
    NotifyProxy,
    ReleaseHeld,
    RemoveEntries,
    RemoveFlow,
    ResetFlow,
    SendSegment,
    StartTimer,
    TimerKey,
    TimerKind,
)
from .core import SpliceCore
from .handshake import HandshakeConfig, HandshakeTable, HsState
from .legs import (
    Direction,
    HandshakeFacts,
    LegParams,
    SpliceCounts,
    apply_translation,
    direct_params,
    leg_params,
)
from .model import EntryMatch, FlowKey, Ports, SegmentIn, Side, TcpSegment
from .options import Negotiated, OptionError, SynOptions, negotiate, parse_options, serialize_options
from .splice import FlowState, FlowTable, SpliceConfig
from .switchrun import SwitchState, SwitchStep, fin_reported

__all__ = [
    "CancelTimer", "Command", "FlowEstablished", "InstallDrop", "InstallLeg", "InstallPunt", "NotifyProxy",
    "ReleaseHeld", "RemoveEntries", "RemoveFlow", "ResetFlow", "SendSegment", "StartTimer", "TimerKey",
    "TimerKind", "SpliceCore", "HandshakeConfig", "HandshakeTable", "HsState", "Direction",
    "HandshakeFacts", "LegParams", "SpliceCounts", "apply_translation", "direct_params", "leg_params",
    "EntryMatch", "FlowKey", "Ports", "SegmentIn", "Side", "TcpSegment", "Negotiated", "OptionError",
    "SynOptions", "negotiate", "parse_options", "serialize_options", "FlowState", "FlowTable",
    "SpliceConfig", "SwitchState", "SwitchStep", "fin_reported",
]
