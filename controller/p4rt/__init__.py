"""An asyncio P4Runtime client: sessions, arbitration, pipelines, typed entities by name.

Modules, one concern each (no global state anywhere):

* ``codec``    -- canonical bytestrings of bit<W> values; MAC / IPv4 / IPv6 helpers.
* ``p4info``   -- :class:`P4Index`: P4Info objects by name, alias or id, with bit widths.
* ``entities`` -- typed dataclasses (TableEntry, Action, CounterEntry, PacketOut, ...) with
  ``to_proto(index)`` / ``from_proto(index, msg)``.
* ``errors``   -- exceptions, including :class:`WriteError` with per-update details.
* ``reader``   -- :class:`ReadSession`: the RPCs any client may call without arbitration
  (Capabilities, GetForwardingPipelineConfig, Read), and the channel every session opens.
* ``session``  -- :class:`SwitchSession`: one device, arbitration, stream dispatch, reconnect.

See docs/controller-p4rt.md for a tour.
"""

from .codec import format_ipv4, format_mac, ipv4, ipv6, mac
from .entities import (
    LPM,
    Action,
    CloneSessionEntry,
    CounterData,
    CounterEntry,
    DigestEntry,
    DigestList,
    DirectCounterEntry,
    DirectMeterEntry,
    Entity,
    Exact,
    IdleTimeoutNotification,
    Match,
    MeterConfig,
    MeterEntry,
    MulticastGroupEntry,
    Optional,
    PacketIn,
    PacketOut,
    Range,
    RegisterEntry,
    Replica,
    TableEntry,
    Ternary,
    Update,
    UpdateType,
)
from .errors import (
    ClientError,
    NotConnectedError,
    NotPrimaryError,
    P4RuntimeRpcError,
    PipelineError,
    ReadError,
    UpdateError,
    WriteError,
)
from .p4info import P4Index, P4InfoLookupError, load_p4info
from .reader import ReadSession, Tls, open_channel
from .session import ArbitrationChange, Backoff, StreamError, SwitchSession

__all__ = [
    "LPM",
    "Action",
    "ArbitrationChange",
    "Backoff",
    "ClientError",
    "CloneSessionEntry",
    "CounterData",
    "CounterEntry",
    "DigestEntry",
    "DigestList",
    "DirectCounterEntry",
    "DirectMeterEntry",
    "Entity",
    "Exact",
    "IdleTimeoutNotification",
    "Match",
    "MeterConfig",
    "MeterEntry",
    "MulticastGroupEntry",
    "NotConnectedError",
    "NotPrimaryError",
    "Optional",
    "P4Index",
    "P4InfoLookupError",
    "P4RuntimeRpcError",
    "PacketIn",
    "PacketOut",
    "PipelineError",
    "Range",
    "ReadError",
    "ReadSession",
    "RegisterEntry",
    "Replica",
    "StreamError",
    "SwitchSession",
    "TableEntry",
    "Ternary",
    "Tls",
    "Update",
    "UpdateError",
    "UpdateType",
    "WriteError",
    "format_ipv4",
    "format_mac",
    "ipv4",
    "ipv6",
    "load_p4info",
    "mac",
    "open_channel",
]
