"""TCP options: parse and serialize option bytes, and negotiate the options of a spliced handshake.

The controller replays a client's and a server's SYN options toward the application proxy (the
claim's "options negotiated between the first end device and the second end device"), so it must
read them exactly and write them back in a form every stack accepts. Validation follows what the
data-plane parser counts as malformed (p4src/include/headers.p4): an option running past the header,
a length byte below 2, a wrong length for MSS/WS/SACK-permitted/SACK/timestamps, and a second
timestamp or SACK option. Unknown options are carried by their length, never interpreted.
"""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass
from typing import TypeAlias

from .seqmath import check_u32, clamp_shift

log = logging.getLogger(__name__)

KIND_EOL = 0
KIND_NOP = 1
KIND_MSS = 2
KIND_WS = 3
KIND_SACK_PERM = 4
KIND_SACK = 5
KIND_TS = 8

MAX_OPTION_BYTES = 40
MAX_SACK_BLOCKS = 4
# RFC 9293 section 3.7.1: with no MSS option an IPv4 sender assumes 536.
DEFAULT_MSS = 536


class OptionError(ValueError):
    """Option bytes that no conforming stack would send (or that the data plane rejects)."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(f"TCP options at byte {offset}: {message}")
        self.offset = offset


@dataclass(frozen=True)
class Eol:
    kind = KIND_EOL


@dataclass(frozen=True)
class Nop:
    kind = KIND_NOP


@dataclass(frozen=True)
class Mss:
    value: int
    kind = KIND_MSS


@dataclass(frozen=True)
class WindowScale:
    shift: int
    kind = KIND_WS


@dataclass(frozen=True)
class SackPermitted:
    kind = KIND_SACK_PERM


@dataclass(frozen=True)
class Sack:
    """SACK blocks as (left, right) edges: right is one past the last byte of the block."""

    blocks: tuple[tuple[int, int], ...]
    kind = KIND_SACK


@dataclass(frozen=True)
class Timestamps:
    tsval: int
    tsecr: int
    kind = KIND_TS


@dataclass(frozen=True)
class UnknownOption:
    """An option we do not interpret: carried with its kind and data (without kind/length bytes)."""

    kind: int
    data: bytes


TcpOption: TypeAlias = Eol | Nop | Mss | WindowScale | SackPermitted | Sack | Timestamps | UnknownOption

# Known kinds whose length is fixed, as the data plane checks it.
_FIXED_LENGTH = {KIND_MSS: 4, KIND_WS: 3, KIND_SACK_PERM: 2, KIND_TS: 10}
# A second one of these is malformed in the data plane (MAL_TCP_OPT_DUPLICATE); for the SYN-only
# options a duplicate would make "the" MSS or shift ambiguous, so they are refused too.
_SINGLE_INSTANCE = {KIND_MSS, KIND_WS, KIND_SACK_PERM, KIND_SACK, KIND_TS}


def parse_options(raw: bytes) -> tuple[TcpOption, ...]:
    """Parse the option bytes of a TCP header (everything after the 20 fixed bytes).

    Bytes after an EOL are padding and are not returned. Raises ``OptionError`` on malformed input.
    """
    if len(raw) > MAX_OPTION_BYTES:
        raise OptionError(f"{len(raw)} option bytes exceed the TCP maximum of {MAX_OPTION_BYTES}", 0)
    out: list[TcpOption] = []
    seen: set[int] = set()
    i = 0
    while i < len(raw):
        kind = raw[i]
        if kind == KIND_EOL:
            out.append(Eol())
            break
        if kind == KIND_NOP:
            out.append(Nop())
            i += 1
            continue
        if i + 1 >= len(raw):
            raise OptionError(f"option kind {kind} has no length byte", i)
        length = raw[i + 1]
        if length < 2:
            raise OptionError(f"option kind {kind} has length {length} (< 2)", i)
        if i + length > len(raw):
            raise OptionError(f"option kind {kind} of length {length} runs past the header", i)
        body = raw[i + 2 : i + length]
        if kind in _FIXED_LENGTH and length != _FIXED_LENGTH[kind]:
            raise OptionError(f"option kind {kind} must have length {_FIXED_LENGTH[kind]}, not {length}", i)
        if kind in _SINGLE_INSTANCE:
            if kind in seen:
                raise OptionError(f"duplicate option kind {kind}", i)
            seen.add(kind)
        opt: TcpOption
        if kind == KIND_MSS:
            opt = Mss(struct.unpack("!H", body)[0])
        elif kind == KIND_WS:
            opt = WindowScale(body[0])
        elif kind == KIND_SACK_PERM:
            opt = SackPermitted()
        elif kind == KIND_TS:
            tsval, tsecr = struct.unpack("!II", body)
            opt = Timestamps(tsval, tsecr)
        elif kind == KIND_SACK:
            if len(body) % 8 or not 1 <= len(body) // 8 <= MAX_SACK_BLOCKS:
                raise OptionError(f"SACK option length {length} is not 2 + 8n with n in 1..4", i)
            edges = struct.unpack(f"!{len(body) // 4}I", body)
            opt = Sack(tuple((edges[k], edges[k + 1]) for k in range(0, len(edges), 2)))
        else:
            opt = UnknownOption(kind, bytes(body))
        out.append(opt)
        i += length
    return tuple(out)


def _encode_one(opt: TcpOption) -> bytes:
    if isinstance(opt, Eol):
        return b"\x00"
    if isinstance(opt, Nop):
        return b"\x01"
    if isinstance(opt, Mss):
        if not 0 <= opt.value <= 0xFFFF:
            raise ValueError(f"MSS out of range: {opt.value}")
        return struct.pack("!BBH", KIND_MSS, 4, opt.value)
    if isinstance(opt, WindowScale):
        if not 0 <= opt.shift <= 0xFF:
            raise ValueError(f"window shift out of range: {opt.shift}")
        return struct.pack("!BBB", KIND_WS, 3, opt.shift)
    if isinstance(opt, SackPermitted):
        return bytes((KIND_SACK_PERM, 2))
    if isinstance(opt, Timestamps):
        return struct.pack("!BBII", KIND_TS, 10, check_u32(opt.tsval, "TSval"), check_u32(opt.tsecr, "TSecr"))
    if isinstance(opt, Sack):
        if not 1 <= len(opt.blocks) <= MAX_SACK_BLOCKS:
            raise ValueError(f"a SACK option holds 1..4 blocks, not {len(opt.blocks)}")
        edges = [check_u32(e, "SACK edge") for block in opt.blocks for e in block]
        return struct.pack(f"!BB{len(edges)}I", KIND_SACK, 2 + 8 * len(opt.blocks), *edges)
    if isinstance(opt, UnknownOption):
        if opt.kind in (KIND_EOL, KIND_NOP) or not 0 <= opt.kind <= 0xFF or len(opt.data) > 38:
            raise ValueError(f"cannot encode unknown option kind {opt.kind} with {len(opt.data)} bytes")
        return bytes((opt.kind, 2 + len(opt.data))) + opt.data
    raise TypeError(f"not a TCP option: {opt!r}")


def serialize_options(options: tuple[TcpOption, ...] | list[TcpOption]) -> bytes:
    """Encode options in the given order, padded with EOL/zero bytes to a multiple of 4.

    Raises ``ValueError`` if the result does not fit the 40 option bytes of a TCP header.
    """
    raw = b"".join(_encode_one(o) for o in options)
    raw += b"\x00" * (-len(raw) % 4)
    if len(raw) > MAX_OPTION_BYTES:
        raise ValueError(f"{len(raw)} option bytes exceed the TCP maximum of {MAX_OPTION_BYTES}")
    return raw


def find(options: tuple[TcpOption, ...], cls: type) -> TcpOption | None:
    """The first option of a given class, or None."""
    for opt in options:
        if isinstance(opt, cls):
            return opt
    return None


# ---- SYN options and negotiation (design note section 1) --------------------------------------


@dataclass(frozen=True)
class SynOptions:
    """What one end announced in its SYN or SYN-ACK, in the terms negotiation cares about."""

    mss: int | None = None
    wscale: int | None = None  # the raw shift as sent (may exceed 14; receivers clamp)
    sack_permitted: bool = False
    tsval: int | None = None  # None: no timestamp option
    tsecr: int = 0
    unknown: tuple[UnknownOption, ...] = ()

    @property
    def timestamps(self) -> bool:
        return self.tsval is not None

    @classmethod
    def from_options(cls, options: tuple[TcpOption, ...]) -> SynOptions:
        mss = find(options, Mss)
        ws = find(options, WindowScale)
        ts = find(options, Timestamps)
        return cls(
            mss=mss.value if isinstance(mss, Mss) else None,
            wscale=ws.shift if isinstance(ws, WindowScale) else None,
            sack_permitted=find(options, SackPermitted) is not None,
            tsval=ts.tsval if isinstance(ts, Timestamps) else None,
            tsecr=ts.tsecr if isinstance(ts, Timestamps) else 0,
            unknown=tuple(o for o in options if isinstance(o, UnknownOption)),
        )

    @classmethod
    def parse(cls, raw: bytes) -> SynOptions:
        return cls.from_options(parse_options(raw))

    def to_options(self) -> tuple[TcpOption, ...]:
        """Options in the layout Linux uses on a SYN (MSS, SACK-permitted + TS, NOP + WS), so the
        proxy's kernel sees an ordinary SYN; NOPs keep the 32-bit fields aligned as RFC 7323 asks.
        Unknown options are not replayed: their meaning was between the two real ends."""
        out: list[TcpOption] = []
        if self.mss is not None:
            out.append(Mss(self.mss))
        if self.timestamps:
            assert self.tsval is not None
            out += [SackPermitted()] if self.sack_permitted else [Nop(), Nop()]
            out.append(Timestamps(self.tsval, self.tsecr))
        elif self.sack_permitted:
            out += [Nop(), Nop(), SackPermitted()]
        if self.wscale is not None:
            out += [Nop(), WindowScale(self.wscale)]
        return tuple(out)


@dataclass(frozen=True)
class Negotiated:
    """N of the design note: what C and S agreed on, with each side's own values.

    ``shift_c``/``shift_s`` are the effective shifts (0 when window scaling is off, clamped to 14):
    what each end multiplies its own window field by, and what the peer assumes.
    """

    mss_c: int | None
    mss_s: int | None
    wscale: bool
    shift_c: int
    shift_s: int
    sack: bool
    timestamps: bool
    tsval_c: int | None  # C's first TSval (from its SYN) when timestamps were negotiated
    tsval_s: int | None  # S's first TSval (from its SYN-ACK)

    def client_side(self) -> SynOptions:
        """C's side of N, for the claim's second request (the SYN sent to the proxy)."""
        return SynOptions(
            mss=self.mss_c,
            wscale=self.shift_c if self.wscale else None,
            sack_permitted=self.sack,
            tsval=self.tsval_c if self.timestamps else None,
            tsecr=0,
        )

    def server_side(self, peer: SynOptions, tsecr: int = 0) -> SynOptions:
        """S's side of N, as a SYN-ACK answering a SYN whose options are ``peer``.

        A SYN-ACK may only carry WS, SACK-permitted and timestamps when the SYN did (RFC 7323,
        RFC 2018), so each is the conjunction of N and what the proxy's own SYN offered.
        """
        return SynOptions(
            mss=self.mss_s,
            wscale=self.shift_s if self.wscale and peer.wscale is not None else None,
            sack_permitted=self.sack and peer.sack_permitted,
            tsval=self.tsval_s if self.timestamps and peer.timestamps else None,
            tsecr=tsecr if self.timestamps and peer.timestamps else 0,
        )

    @property
    def effective_mss_c(self) -> int:
        return self.mss_c if self.mss_c is not None else DEFAULT_MSS

    @property
    def effective_mss_s(self) -> int:
        return self.mss_s if self.mss_s is not None else DEFAULT_MSS


def negotiate(client: SynOptions, server: SynOptions) -> Negotiated:
    """Combine C's SYN options and S's SYN-ACK options (design note section 1).

    MSS is per side (each announces what it can receive); window scaling, SACK and timestamps are
    on only when both ends sent them. A server that echoes an option the client never offered is a
    protocol violation; negotiation still treats the option as off, because the client will.
    """
    wscale = client.wscale is not None and server.wscale is not None
    if server.wscale is not None and client.wscale is None:
        log.debug("server sent window scale without the client's offer: scaling off")
    timestamps = client.timestamps and server.timestamps
    return Negotiated(
        mss_c=client.mss,
        mss_s=server.mss,
        wscale=wscale,
        shift_c=clamp_shift(client.wscale) if wscale and client.wscale is not None else 0,
        shift_s=clamp_shift(server.wscale) if wscale and server.wscale is not None else 0,
        sack=client.sack_permitted and server.sack_permitted,
        timestamps=timestamps,
        tsval_c=client.tsval if timestamps else None,
        tsval_s=server.tsval if timestamps else None,
    )
