"""WriteRequest decoding straight from the protobuf wire format, for the Write hot path.

Write batches are overwhelmingly table-entry INSERT/MODIFY/DELETE, and the table code wants them
as `entities.TableWrite` objects. Parsing into protobuf messages and then walking those in Python
costs more than reading the bytes straight into TableWrites: even with protobuf's compiled (upb)
runtime the straight path applies batches of 1000 1.5-2x faster (docs/benchmarks.md, p4sim), and
with the pure-Python runtime ~10x. So this module reads table updates directly from the bytes and
leaves everything else to protobuf:

* an Update whose entity is not a table entry is parsed with protobuf (`Update.FromString` on its
  own bytes) and goes through `entities.apply_update` as before;
* anything this reader does not expect inside a table entry (an unknown field, a wire type that
  does not fit, a singular field given twice, a FieldMatch/TableAction with two oneof members, an
  out-of-range integer) raises `Fallback`, and that Update is parsed by protobuf instead;
* a malformed request as a whole raises `Fallback` too; the caller then parses the request with
  protobuf, which reports the error exactly as the generated stub would.

So the fast path only ever handles what protobuf would decode identically, and the semantic
checks are shared (entities.apply_table_write) whichever way an update was decoded.

Field numbers come from the generated descriptors, not from literals, so they cannot drift.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from p4.v1 import p4runtime_pb2

from p4sim.runtime.entities import ActionItem, MatchItem, TableWrite


class Fallback(Exception):
    """This input is outside the fast path: decode it with protobuf instead."""


def _num(msg: type, name: str) -> int:
    return msg.DESCRIPTOR.fields_by_name[name].number  # type: ignore[attr-defined]


def _tag(msg: type, name: str, wire_type: int) -> int:
    return (_num(msg, name) << 3) | wire_type


VARINT, LEN = 0, 2
_WR = p4runtime_pb2.WriteRequest
_UP = p4runtime_pb2.Update
_EN = p4runtime_pb2.Entity
_TE = p4runtime_pb2.TableEntry
_FM = p4runtime_pb2.FieldMatch
_TA = p4runtime_pb2.TableAction
_AC = p4runtime_pb2.Action

WR_DEVICE_ID = _tag(_WR, "device_id", VARINT)
WR_ROLE_ID = _tag(_WR, "role_id", VARINT)
WR_ROLE = _tag(_WR, "role", LEN)
WR_ELECTION_ID = _tag(_WR, "election_id", LEN)
WR_UPDATES = _tag(_WR, "updates", LEN)
WR_ATOMICITY = _tag(_WR, "atomicity", VARINT)
U128_HIGH = _tag(p4runtime_pb2.Uint128, "high", VARINT)
U128_LOW = _tag(p4runtime_pb2.Uint128, "low", VARINT)
UP_TYPE = _tag(_UP, "type", VARINT)
UP_ENTITY = _tag(_UP, "entity", LEN)
EN_TABLE_ENTRY = _tag(_EN, "table_entry", LEN)
TE_TABLE_ID = _tag(_TE, "table_id", VARINT)
TE_MATCH = _tag(_TE, "match", LEN)
TE_ACTION = _tag(_TE, "action", LEN)
TE_PRIORITY = _tag(_TE, "priority", VARINT)
TE_CONTROLLER_METADATA = _tag(_TE, "controller_metadata", VARINT)
TE_METER_CONFIG = _tag(_TE, "meter_config", LEN)
TE_COUNTER_DATA = _tag(_TE, "counter_data", LEN)
TE_METER_COUNTER_DATA = _tag(_TE, "meter_counter_data", LEN)
TE_IS_DEFAULT_ACTION = _tag(_TE, "is_default_action", VARINT)
TE_IDLE_TIMEOUT_NS = _tag(_TE, "idle_timeout_ns", VARINT)
TE_TIME_SINCE_LAST_HIT = _tag(_TE, "time_since_last_hit", LEN)
TE_METADATA = _tag(_TE, "metadata", LEN)
TE_IS_CONST = _tag(_TE, "is_const", VARINT)
FM_FIELD_ID = _tag(_FM, "field_id", VARINT)
# FieldMatch oneof member tag -> (oneof name, tag of its first bytes field, tag of its second field
# and whether that second field is a varint).
_FM_KINDS: dict[int, tuple[str, int, int, bool]] = {
    _tag(_FM, "exact", LEN): ("exact", _tag(_FM.Exact, "value", LEN), -1, False),
    _tag(_FM, "lpm", LEN): ("lpm", _tag(_FM.LPM, "value", LEN), _tag(_FM.LPM, "prefix_len", VARINT), True),
    _tag(_FM, "ternary", LEN): ("ternary", _tag(_FM.Ternary, "value", LEN), _tag(_FM.Ternary, "mask", LEN), False),
    _tag(_FM, "range", LEN): ("range", _tag(_FM.Range, "low", LEN), _tag(_FM.Range, "high", LEN), False),
    _tag(_FM, "optional", LEN): ("optional", _tag(_FM.Optional, "value", LEN), -1, False),
}
TA_ACTION = _tag(_TA, "action", LEN)
# The other TableAction oneof members: tag -> name (they are rejected by the checks, by name).
_TA_OTHERS = {
    _tag(_TA, "action_profile_member_id", VARINT): "action_profile_member_id",
    _tag(_TA, "action_profile_group_id", VARINT): "action_profile_group_id",
    _tag(_TA, "action_profile_action_set", LEN): "action_profile_action_set",
}
AC_ACTION_ID = _tag(_AC, "action_id", VARINT)
AC_PARAMS = _tag(_AC, "params", LEN)
PA_PARAM_ID = _tag(_AC.Param, "param_id", VARINT)
PA_VALUE = _tag(_AC.Param, "value", LEN)

U32 = (1 << 32) - 1
I32 = (1 << 31) - 1
I64 = (1 << 63) - 1
U64 = (1 << 64) - 1


def _varint(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    """(value, next position). Raises Fallback on truncation or more than ten bytes."""
    if pos >= end:
        raise Fallback
    b = buf[pos]
    if b < 0x80:
        return b, pos + 1
    value = b & 0x7F
    shift = 7
    pos += 1
    while pos < end and shift < 70:
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, pos
        shift += 7
    raise Fallback


def _varint32(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    """A tag or a length. Protobuf reads these as at most five bytes and calls a message with a
    longer one corrupt: such a message is left to protobuf (Fallback) to refuse."""
    value, stop = _varint(buf, pos, end)
    if stop - pos > 5:
        raise Fallback
    return value, stop


def _span(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    """A length-delimited field's (start, stop)."""
    n, pos = _varint32(buf, pos, end)
    stop = pos + n
    if stop > end:
        raise Fallback
    return pos, stop


class WireTableWrite(TableWrite):
    """A TableWrite decoded from the wire; keeps its bytes for the rare paths that need protobuf."""

    __slots__ = ("_raw",)

    def proto(self) -> p4runtime_pb2.TableEntry:
        if self._proto is None:
            self._proto = p4runtime_pb2.TableEntry.FromString(self._raw)
        return self._proto


class WriteBatch:
    """A decoded WriteRequest: the header fields Write checks, and the updates in order.

    Each update is a TableWrite or, for other entities, a protobuf Update.
    """

    __slots__ = ("device_id", "role", "election_id", "atomicity", "updates")

    def __init__(self) -> None:
        self.device_id = 0
        self.role = ""
        self.election_id: int | None = None  # None when the field is unset
        self.atomicity = 0
        self.updates: list[TableWrite | p4runtime_pb2.Update] = []

    @classmethod
    def from_proto(cls, req: p4runtime_pb2.WriteRequest) -> WriteBatch:
        batch = cls()
        batch.device_id = req.device_id
        batch.role = req.role
        if req.HasField("election_id"):
            batch.election_id = (req.election_id.high << 64) | req.election_id.low
        batch.atomicity = req.atomicity
        batch.updates = list(req.updates)
        return batch


def decode_write_request(buf: bytes) -> WriteBatch:
    """WriteRequest bytes -> WriteBatch. Raises Fallback when protobuf should parse the request."""
    batch = WriteBatch()
    actions: dict[bytes, ActionItem] = {}  # TableAction bytes -> action item, for this batch
    pos, end = 0, len(buf)
    updates = batch.updates
    seen: set[int] = set()
    while pos < end:
        tag, pos = _varint32(buf, pos, end)
        if tag == WR_UPDATES:
            start, pos = _span(buf, pos, end)
            updates.append(_update(buf, start, pos, actions))
            continue
        if tag in seen:
            raise Fallback  # a repeated singular field: protobuf's merge rules, not ours
        seen.add(tag)
        if tag == WR_DEVICE_ID:
            batch.device_id, pos = _varint(buf, pos, end)
            if batch.device_id > U64:
                raise Fallback
        elif tag == WR_ROLE_ID:
            _, pos = _varint(buf, pos, end)  # deprecated, ignored (as before)
        elif tag == WR_ROLE:
            start, pos = _span(buf, pos, end)
            try:
                batch.role = buf[start:pos].decode("utf-8")
            except UnicodeDecodeError:
                raise Fallback from None
        elif tag == WR_ELECTION_ID:
            start, pos = _span(buf, pos, end)
            batch.election_id = _uint128(buf, start, pos)
        elif tag == WR_ATOMICITY:
            batch.atomicity, pos = _varint(buf, pos, end)
            if batch.atomicity > I32:
                raise Fallback
        else:
            raise Fallback
    return batch


def _uint128(buf: bytes, pos: int, end: int) -> int:
    high = low = 0
    seen: set[int] = set()
    while pos < end:
        tag, pos = _varint32(buf, pos, end)
        if tag in seen:
            raise Fallback
        seen.add(tag)
        if tag == U128_HIGH:
            high, pos = _varint(buf, pos, end)
        elif tag == U128_LOW:
            low, pos = _varint(buf, pos, end)
        else:
            raise Fallback
        if high > U64 or low > U64:
            raise Fallback
    return (high << 64) | low


def _update(buf: bytes, start: int, end: int, actions: dict[bytes, ActionItem]) -> TableWrite | p4runtime_pb2.Update:
    """One Update: a TableWrite when it is a plain table entry, else a protobuf Update."""
    try:
        return _table_update(buf, start, end, actions)
    except Fallback:
        try:
            return p4runtime_pb2.Update.FromString(buf[start:end])
        except Exception:
            raise Fallback from None  # malformed: let protobuf judge the whole request


def _table_update(buf: bytes, pos: int, end: int, actions: dict[bytes, ActionItem]) -> TableWrite:
    utype = -1
    te_span: tuple[int, int] | None = None
    while pos < end:
        tag = buf[pos]  # one-byte tags and lengths inline: the common case, at a fraction of a call
        pos += 1
        if tag >= 0x80:
            tag, pos = _varint32(buf, pos - 1, end)
        if tag == UP_TYPE and utype < 0:
            utype, pos = _varint(buf, pos, end)
            if utype > I32:
                raise Fallback
        elif tag == UP_ENTITY and te_span is None:
            epos, eend = _span(buf, pos, end)
            pos = eend
            etag, epos = _varint32(buf, epos, eend)
            if etag != EN_TABLE_ENTRY:
                raise Fallback
            te_span = _span(buf, epos, eend)
            if te_span[1] != eend:
                raise Fallback  # more than one entity member: protobuf's oneof rules
        else:
            raise Fallback
    if te_span is None:
        raise Fallback
    return _table_entry(buf, te_span[0], te_span[1], max(utype, 0), actions)


def _table_entry(buf: bytes, pos: int, end: int, utype: int, actions: dict[bytes, ActionItem]) -> TableWrite:
    tw = WireTableWrite(utype)
    tw._raw = buf[pos:end]
    matches: list[MatchItem] = tw.matches
    seen = 0  # bit per singular field number already read
    while pos < end:
        tag = buf[pos]
        pos += 1
        if tag >= 0x80:
            tag, pos = _varint32(buf, pos - 1, end)
        if tag == TE_MATCH:
            n = buf[pos] if pos < end else 0x80
            if n < 0x80:
                start = pos + 1
                pos = start + n
                if pos > end:
                    raise Fallback
            else:
                start, pos = _span(buf, pos, end)
            matches.append(_field_match(buf, start, pos))
            continue
        if tag >= 128:  # field numbers past 15: none of ours, and keeps the shift below small
            raise Fallback
        bit = 1 << (tag >> 3)
        if seen & bit:
            raise Fallback
        seen |= bit
        if tag == TE_TABLE_ID:
            tw.table_id, pos = _varint(buf, pos, end)
            if tw.table_id > U32:
                raise Fallback
        elif tag == TE_ACTION:
            n = buf[pos] if pos < end else 0x80
            if n < 0x80:
                start = pos + 1
                pos = start + n
                if pos > end:
                    raise Fallback
            else:
                start, pos = _span(buf, pos, end)
            raw = buf[start:pos]
            item = actions.get(raw)
            if item is None:
                item = actions[raw] = _table_action(buf, start, pos)
            tw.action = item
            tw.action_raw = raw
        elif tag == TE_PRIORITY:
            tw.priority, pos = _varint(buf, pos, end)
            if tw.priority > I32:
                raise Fallback  # negative or truncated: protobuf's conversion rules
        elif tag == TE_CONTROLLER_METADATA:
            tw.controller_metadata, pos = _varint(buf, pos, end)
            if tw.controller_metadata > U64:
                raise Fallback
        elif tag == TE_IS_DEFAULT_ACTION:
            value, pos = _varint(buf, pos, end)
            tw.is_default_action = value & U64 != 0  # protobuf keeps a varint's low 64 bits
        elif tag == TE_IDLE_TIMEOUT_NS:
            tw.idle_timeout_ns, pos = _varint(buf, pos, end)
            if tw.idle_timeout_ns > I64:
                raise Fallback
        elif tag == TE_METADATA:
            start, pos = _span(buf, pos, end)
            tw.metadata = buf[start:pos]
        elif tag == TE_IS_CONST:
            value, pos = _varint(buf, pos, end)
            tw.is_const = value & U64 != 0
        elif tag == TE_TIME_SINCE_LAST_HIT:
            _, pos = _span(buf, pos, end)
            tw.has_time_since_last_hit = True
        elif tag == TE_METER_COUNTER_DATA:
            _, pos = _span(buf, pos, end)
            tw.has_meter_counter_data = True
        elif tag == TE_METER_CONFIG:
            start, pos = _span(buf, pos, end)
            tw.meter_config = _parse(p4runtime_pb2.MeterConfig, buf[start:pos])
        elif tag == TE_COUNTER_DATA:
            start, pos = _span(buf, pos, end)
            tw.counter_data = _parse(p4runtime_pb2.CounterData, buf[start:pos])
        else:
            raise Fallback
    return tw


def _parse(cls: type, data: bytes):
    try:
        return cls.FromString(data)  # type: ignore[attr-defined]
    except Exception:
        raise Fallback from None


def _field_match(buf: bytes, pos: int, end: int) -> MatchItem:
    fid = 0
    kind: tuple[str, int, int, bool] | None = None
    a: bytes | None = None
    b: object = None
    seen_id = False
    while pos < end:
        tag = buf[pos]
        pos += 1
        if tag >= 0x80:
            tag, pos = _varint32(buf, pos - 1, end)
        if tag == FM_FIELD_ID and not seen_id:
            seen_id = True
            fid, pos = _varint(buf, pos, end)
            if fid > U32:
                raise Fallback
            continue
        kind = _FM_KINDS.get(tag) if kind is None else None
        if kind is None:
            raise Fallback  # unknown member, `other`, or two oneof members
        start, pos = _span(buf, pos, end)
        _, first, second, second_varint = kind
        # Proto3 defaults: an omitted bytes field is b"", an omitted prefix_len is 0.
        a, b = b"", (0 if second_varint else (b"" if second >= 0 else None))
        got = 0
        while start < pos:
            t = buf[start]
            start += 1
            if t >= 0x80:
                t, start = _varint32(buf, start - 1, pos)
            if t == first and not got & 1:
                got |= 1
                n = buf[start] if start < pos else 0x80
                if n < 0x80:
                    s0 = start + 1
                    start = s0 + n
                    if start > pos:
                        raise Fallback
                else:
                    s0, start = _span(buf, start, pos)
                a = buf[s0:start]
            elif t == second and not got & 2:
                got |= 2
                if second_varint:
                    b, start = _varint(buf, start, pos)
                    if b > I32:  # type: ignore[operator]
                        raise Fallback
                else:
                    s0, start = _span(buf, start, pos)
                    b = buf[s0:start]
            else:
                raise Fallback
    if kind is None:
        raise Fallback  # no oneof member set: rare, protobuf reports it as None
    return (fid, kind[0], a, b)


def _table_action(buf: bytes, pos: int, end: int) -> ActionItem:
    item: ActionItem | None = None
    while pos < end:
        if item is not None:
            raise Fallback  # a second oneof member
        tag, pos = _varint32(buf, pos, end)
        if tag == TA_ACTION:
            start, pos = _span(buf, pos, end)
            item = _action(buf, start, pos)
        elif tag in _TA_OTHERS:
            if tag & 7 == VARINT:
                _, pos = _varint(buf, pos, end)
            else:
                _, pos = _span(buf, pos, end)
            item = (_TA_OTHERS[tag],)
        else:
            raise Fallback
    return item if item is not None else (None,)


def _action(buf: bytes, pos: int, end: int) -> ActionItem:
    action_id = 0
    params: list[tuple[int, bytes]] = []
    seen_id = False
    while pos < end:
        tag, pos = _varint32(buf, pos, end)
        if tag == AC_PARAMS:
            start, pos = _span(buf, pos, end)
            pid, value, got = 0, b"", 0
            while start < pos:
                t, start = _varint32(buf, start, pos)
                if t == PA_PARAM_ID and not got & 1:
                    got |= 1
                    pid, start = _varint(buf, start, pos)
                    if pid > U32:
                        raise Fallback
                elif t == PA_VALUE and not got & 2:
                    got |= 2
                    s0, start = _span(buf, start, pos)
                    value = buf[s0:start]
                else:
                    raise Fallback
            params.append((pid, value))
        elif tag == AC_ACTION_ID and not seen_id:
            seen_id = True
            action_id, pos = _varint(buf, pos, end)
            if action_id > U32:
                raise Fallback
        else:
            raise Fallback
    return ("action", action_id, params)


# ------------------------------------------------------------------------------------------------
# Read responses
#
# A wildcard read of a large table is the other hot path: building a TableEntry message per
# entry in pure-Python protobuf and serializing it costs far more than finding the entries. Table
# entries are therefore encoded here directly, in the byte order protobuf itself produces (fields
# by number, proto3 defaults omitted, so the output is byte-identical: see the tests). Entries
# that need what is rarer in reads (the default entry, meter configs, time since last hit) are
# built with entities.table_entry_to_proto and serialized by protobuf.

def _ld(tag: int, payload: bytes) -> bytes:
    """A length-delimited field: tag byte(s), length, payload."""
    return _VARINTS[tag] + _enc_varint(len(payload)) + payload


def _enc_varint(n: int) -> bytes:
    if n < 0x80:
        return _VARINTS[n]
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_VARINTS = [bytes([i]) for i in range(0x80)]


def _signed(n: int) -> int:
    """int32/int64 varints carry negative numbers as their 64-bit two's complement."""
    return n + (1 << 64) if n < 0 else n


def _enc_bytes(n: int) -> bytes:
    return n.to_bytes(max(1, (n.bit_length() + 7) // 8), "big")  # codec.encode, inlined


FM_EXACT_VALUE = _tag(_FM.Exact, "value", LEN)


def _enc_match(table, key: tuple) -> bytes:
    from p4sim.runtime.tables import EXACT, LPM, OPTIONAL, RANGE, TERNARY, dont_care

    out = []
    for f, spec in zip(table.fields, key, strict=True):
        kind = f.kind
        if kind != EXACT and spec == dont_care(f):
            continue
        body = _VARINTS[FM_FIELD_ID] + _enc_varint(f.id) if f.id else b""
        if kind == EXACT:
            body += _ld(_FM_TAG["exact"], _ld(FM_EXACT_VALUE, _enc_bytes(spec)))
        elif kind == LPM:
            inner = _ld(_FM_SUB["lpm"][0], _enc_bytes(spec[0]))
            if spec[1]:
                inner += _VARINTS[_FM_SUB["lpm"][1]] + _enc_varint(spec[1])
            body += _ld(_FM_TAG["lpm"], inner)
        elif kind == TERNARY or kind == RANGE:
            name = "ternary" if kind == TERNARY else "range"
            first, second = _FM_SUB[name]
            body += _ld(_FM_TAG[name], _ld(first, _enc_bytes(spec[0])) + _ld(second, _enc_bytes(spec[1])))
        elif kind == OPTIONAL:
            body += _ld(_FM_TAG["optional"], _ld(_FM_SUB["optional"][0], _enc_bytes(spec)))
        out.append(_ld(TE_MATCH, body))
    return b"".join(out)


_FM_TAG = {name: tag for tag, (name, _, _, _) in _FM_KINDS.items()}
_FM_SUB = {name: (first, second) for _, (name, first, second, _) in _FM_KINDS.items()}


def _enc_action(state, action: tuple[int, tuple[int, ...]]) -> bytes:
    """TableEntry.action (field 3 included) for a direct action, as table_entry_to_proto builds it."""
    action_id, params = action
    body = _VARINTS[AC_ACTION_ID] + _enc_varint(action_id)
    info = state.actions.get(action_id)
    if info is not None:
        for pinfo, value in zip(info.params, params, strict=False):
            p = (_VARINTS[PA_PARAM_ID] + _enc_varint(pinfo.id) if pinfo.id else b"") + _ld(PA_VALUE, _enc_bytes(value))
            body += _ld(AC_PARAMS, p)
    return _ld(TE_ACTION, _ld(TA_ACTION, body))


CD_BYTE_COUNT = _tag(p4runtime_pb2.CounterData, "byte_count", VARINT)
CD_PACKET_COUNT = _tag(p4runtime_pb2.CounterData, "packet_count", VARINT)
EN_TABLE_ENTRY_TAG = EN_TABLE_ENTRY
RR_ENTITIES = _tag(p4runtime_pb2.ReadResponse, "entities", LEN)


def encode_table_entry(state, table, entry, counter: bool, actions: dict) -> bytes:
    """TableEntry bytes for a (non-default) entry, equal to table_entry_to_proto(...).SerializeToString()
    with meter=False and since_hit=False. `actions` memoizes encoded actions for one read."""
    parts = [_VARINTS[TE_TABLE_ID] + _enc_varint(table.id)] if table.id else []
    if table.fields:
        parts.append(_enc_match(table, entry.key))
    action = entry.action
    if action[0]:
        enc = actions.get(action)
        if enc is None:
            enc = actions[action] = _enc_action(state, action)
        parts.append(enc)
    if entry.priority:
        parts.append(_VARINTS[TE_PRIORITY] + _enc_varint(_signed(entry.priority)))
    if entry.controller_metadata:
        parts.append(_VARINTS[TE_CONTROLLER_METADATA] + _enc_varint(entry.controller_metadata))
    if counter and table.has_direct_counter:
        cd = b""
        if entry.bytes:
            cd += _VARINTS[CD_BYTE_COUNT] + _enc_varint(_signed(entry.bytes))
        if entry.packets:
            cd += _VARINTS[CD_PACKET_COUNT] + _enc_varint(_signed(entry.packets))
        parts.append(_ld(TE_COUNTER_DATA, cd))
    if entry.idle_timeout_ns:
        parts.append(_VARINTS[TE_IDLE_TIMEOUT_NS] + _enc_varint(_signed(entry.idle_timeout_ns)))
    if entry.metadata:
        parts.append(_ld(TE_METADATA, entry.metadata))
    if entry.is_const:
        parts.append(_VARINTS[TE_IS_CONST] + b"\x01")
    return b"".join(parts)


def read_entity_encoded(state, entity: p4runtime_pb2.Entity) -> Iterator[bytes]:
    """entities.read_entity, yielding each result as Entity wire bytes (same validation, same
    lock discipline: the selection is made now, under state.lock; encoding happens lazily)."""
    from p4sim.runtime import entities
    from p4sim.runtime.tables import DefaultEntry

    if entity.WhichOneof("entity") != "table_entry":
        return (e.SerializeToString() for e in entities.read_entity(state, entity))
    with state.lock:
        picked, flags = entities.select_table_read(state, entity.table_entry)
    fast = not flags["meter"] and not flags["since_hit"]

    def gen() -> Iterator[bytes]:
        now = time.monotonic_ns()
        actions: dict = {}
        for table, entries in picked:
            for entry in entries:
                # indirect entries (members, groups, action sets) take the protobuf path
                if fast and not isinstance(entry, DefaultEntry) and not table.implementation_id:
                    te = encode_table_entry(state, table, entry, flags["counter"], actions)
                else:
                    te = entities.table_entry_to_proto(state, table, entry, now_ns=now,
                                                       **flags).SerializeToString()
                yield _ld(EN_TABLE_ENTRY_TAG, te)
    return gen()


def read_response_chunks(streams: list[Iterator[bytes]], chunk: int) -> Iterator[bytes]:
    """ReadResponse bytes with up to `chunk` entities each, from encoded Entity streams."""
    parts: list[bytes] = []
    for stream in streams:
        for ent in stream:
            parts.append(_ld(RR_ENTITIES, ent))
            if len(parts) >= chunk:
                yield b"".join(parts)
                parts = []
    if parts:
        yield b"".join(parts)
