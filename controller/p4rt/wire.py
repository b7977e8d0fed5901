"""Write requests encoded by hand: the bytes protobuf would produce, without building messages.

With the pure-Python protobuf runtime (the one p4runtime-shell's pin leaves us on Python 3.11),
filling and serializing one flows-table Update costs about half a millisecond -- more than the
switch's work on it, and most of the controller's time per handshake (docs/benchmarks.md,
"Controller"). Table entries are by far the most frequent entity, and their wire format is small
and fixed, so :func:`update_bytes` writes them directly. Checks are the entities module's own
(``_match_parts``, ``Action.encoded``): an entry the protobuf path refuses is refused here too.
Anything else (other entities, meter configs) goes through protobuf as before.

The output is byte-for-byte what ``Update.to_proto(index).SerializeToString()`` gives (fields in
field-number order, defaults omitted); tests/controller/test_p4rt_wire.py checks that.
"""

from __future__ import annotations

from collections.abc import Iterable

from p4.v1 import p4runtime_pb2 as pb

from .entities import TableEntry, Update, _match_parts, _table_id
from .p4info import P4Index

__all__ = ["update_bytes", "write_request_bytes"]

_U64 = (1 << 64) - 1
# FieldMatch oneof member -> field number (p4runtime.proto).
_MATCH_FIELD = {"exact": 2, "ternary": 3, "lpm": 4, "range": 6, "optional": 7}


def _varint(n: int) -> bytes:
    n &= _U64  # negative int32/int64 go out as ten-byte two's complement, as protobuf does
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _len(field_no: int, payload: bytes) -> bytes:
    return _varint(field_no << 3 | 2) + _varint(len(payload)) + payload


def _int(field_no: int, value: int) -> bytes:
    return _varint(field_no << 3) + _varint(value) if value else b""


def _match_bytes(kind: str, values: tuple[bytes | int, ...]) -> bytes:
    out = b""
    for i, v in enumerate(values, start=1):
        out += _int(i, v) if isinstance(v, int) else _len(i, v) if v else b""
    return out


def table_entry_bytes(index: P4Index, e: TableEntry) -> bytes | None:
    """The TableEntry message's bytes, or None when the entry needs protobuf (a meter config)."""
    if e.meter_config is not None:
        return None
    parts: list[bytes] = []
    info = _table_id(index, e.table)
    if info is None:
        if e.match or e.action:
            raise ValueError("a wildcard table read filter takes no match or action")
    else:
        parts.append(_int(1, info.id))
    if e.is_default and e.match:
        raise ValueError(f"table {e.table!r}: a default entry has no match")
    if e.match:
        assert info is not None
        fields = info.match_fields
        keyed = sorted(((fields.get(name), m) for name, m in e.match.items()), key=lambda fm: fm[0].id)
        for mf, m in keyed:
            got = _match_parts(mf, m, info.name)
            if got is not None:
                kind, values = got
                parts.append(_len(2, _int(1, mf.id) + _len(_MATCH_FIELD[kind], _match_bytes(kind, values))))
    if e.action is not None:
        action_id, params = e.action.encoded(index)
        body = _int(1, action_id) + b"".join(_len(4, _int(2, pid) + (_len(3, v) if v else b""))
                                             for pid, v in params)
        parts.append(_len(3, _len(1, body)))
    parts.append(_int(4, e.priority))
    if e.counter_data is not None:
        parts.append(_len(7, _int(1, e.counter_data.byte_count) + _int(2, e.counter_data.packet_count)))
    if e.is_default:
        parts.append(b"\x40\x01")  # field 8, varint true
    parts.append(_int(9, e.idle_timeout_ns))
    if e.metadata:
        parts.append(_len(11, e.metadata))
    return b"".join(parts)


def update_bytes(index: P4Index, u: Update | pb.Update) -> bytes:
    """One Update message's bytes: table entries by hand, anything else through protobuf."""
    if isinstance(u, pb.Update):
        return u.SerializeToString()
    if isinstance(u.entity, TableEntry):
        body = table_entry_bytes(index, u.entity)
        if body is not None:
            return _int(1, int(u.type)) + _len(2, _len(2, body))  # Update.entity, Entity.table_entry
    return u.to_proto(index).SerializeToString()


def write_request_bytes(index: P4Index, head: pb.WriteRequest, updates: Iterable[Update | pb.Update]) -> bytes:
    """``head`` (device id, election id, role, atomicity; no updates) with ``updates`` added, as
    protobuf would serialize it: fields 1-3, then the updates (4), then atomicity (5) and role (6)."""
    front = pb.WriteRequest(device_id=head.device_id, role_id=head.role_id)
    if head.HasField("election_id"):
        front.election_id.CopyFrom(head.election_id)
    back = pb.WriteRequest(atomicity=head.atomicity, role=head.role)
    return (front.SerializeToString() + b"".join(_len(4, update_bytes(index, u)) for u in updates)
            + back.SerializeToString())
