"""Unit tests of TCP option parsing/serialization and of the negotiation of design note section 1."""

import itertools
import struct

import pytest
from p4splice.controller.splice.options import (
    DEFAULT_MSS,
    Eol,
    Mss,
    Nop,
    OptionError,
    Sack,
    SackPermitted,
    SynOptions,
    Timestamps,
    UnknownOption,
    WindowScale,
    negotiate,
    parse_options,
    serialize_options,
)
from scapy.layers.inet import TCP

LINUX_SYN = bytes.fromhex("020405b40402080a0001e2400000000001030307")


def test_parse_a_linux_syn():
    opts = parse_options(LINUX_SYN)
    assert opts == (Mss(1460), SackPermitted(), Timestamps(0x1E240, 0), Nop(), WindowScale(7))
    assert serialize_options(opts) == LINUX_SYN


def test_parse_every_kind_and_roundtrip():
    opts = (
        Nop(), Nop(), Timestamps(0xFFFFFFFF, 1),
        Nop(), Nop(), Sack(((1, 2), (0xFFFFFFF0, 0x10))),
        UnknownOption(30, b"\x01\x02"),
    )
    raw = serialize_options(opts)
    assert len(raw) % 4 == 0
    assert parse_options(raw)[: len(opts)] == opts


def test_serialized_bytes_match_scapy():
    opts = (Mss(1400), Nop(), WindowScale(9), SackPermitted(), Timestamps(5, 6), Nop(), Nop())
    ours = serialize_options(opts)
    theirs = bytes(TCP(options=[("MSS", 1400), ("NOP", None), ("WScale", 9), ("SAckOK", b""),
                                ("Timestamp", (5, 6)), ("NOP", None), ("NOP", None)]))[20:]
    assert ours == theirs


def test_sack_with_four_blocks_and_wrapping_edges():
    blocks = ((0xFFFFFF00, 0x100), (1, 2), (3, 4), (5, 6))
    raw = serialize_options((Nop(), Nop(), Sack(blocks)))
    assert len(raw) == 36
    assert parse_options(raw) == (Nop(), Nop(), Sack(blocks))


def test_eol_ends_parsing_and_padding_is_ignored():
    assert parse_options(b"\x01\x00\x05\x07") == (Nop(), Eol())
    assert parse_options(b"") == ()
    assert parse_options(b"\x01\x01\x01\x01") == (Nop(),) * 4


def test_unknown_options_carried_by_length():
    raw = bytes([254, 6, 0xF9, 0x89, 0xAA, 0xBB, 1, 1])
    assert parse_options(raw) == (UnknownOption(254, bytes([0xF9, 0x89, 0xAA, 0xBB])), Nop(), Nop())
    assert parse_options(bytes([99, 2, 1, 1])) == (UnknownOption(99, b""), Nop(), Nop())


@pytest.mark.parametrize(
    "raw, what",
    [
        (bytes([2]), "no length byte"),
        (bytes([2, 4, 5]), "runs past"),
        (bytes([99, 1, 0, 0]), "< 2"),
        (bytes([99, 0]), "< 2"),
        (bytes([2, 3, 5]), "must have length 4"),
        (bytes([3, 4, 1, 1]), "must have length 3"),
        (bytes([4, 3, 0, 1]), "must have length 2"),
        (bytes([8, 8]) + bytes(6), "must have length 10"),
        (bytes([5, 2, 1, 1]), r"2 \+ 8n"),
        (bytes([5, 6]) + bytes(4), r"2 \+ 8n"),
        (bytes([5, 2 + 8 * 5]) + bytes(38), "runs past"),
        (bytes([1, 1, 8, 10]) + bytes(8) + bytes([1, 1, 8, 10]) + bytes(8), "duplicate"),
        (bytes([5, 10]) + bytes(8) + bytes([5, 10]) + bytes(8), "duplicate"),
        (bytes([2, 4, 5, 0xB4, 2, 4, 5, 0xB4]), "duplicate"),
        (bytes(44), "exceed"),
    ],
)
def test_malformed_options_raise_clearly(raw, what):
    with pytest.raises(OptionError, match=what) as info:
        parse_options(raw)
    assert isinstance(info.value, ValueError)
    assert "TCP options at byte" in str(info.value)


def test_serialize_refuses_what_does_not_fit():
    with pytest.raises(ValueError):
        serialize_options([UnknownOption(99, bytes(30)), Mss(1), Mss(2), Mss(3)])
    with pytest.raises(ValueError):
        serialize_options([Sack(())])
    with pytest.raises(ValueError):
        serialize_options([Mss(70000)])
    with pytest.raises(ValueError):
        serialize_options([Timestamps(1 << 32, 0)])
    with pytest.raises(ValueError):
        serialize_options([UnknownOption(1, b"")])


# ---- negotiation: every combination of what each side sent ---------------------------------------

SIDE_CHOICES = list(itertools.product((None, 1400), (None, 7, 14, 15), (False, True), (None, 1000)))


def side(mss, ws, sack, tsval, tsecr=0):
    return SynOptions(mss=mss, wscale=ws, sack_permitted=sack, tsval=tsval, tsecr=tsecr)


@pytest.mark.parametrize("client", SIDE_CHOICES, ids=str)
def test_every_combination(client):
    c = side(*client)
    for server in SIDE_CHOICES:
        s = side(server[0], server[1], server[2], None if server[3] is None else server[3] + 7, 99)
        n = negotiate(c, s)
        assert n.mss_c == c.mss and n.mss_s == s.mss
        assert n.effective_mss_c == (c.mss or DEFAULT_MSS)
        assert n.wscale == (c.wscale is not None and s.wscale is not None)
        assert n.shift_c == (min(c.wscale, 14) if n.wscale else 0)
        assert n.shift_s == (min(s.wscale, 14) if n.wscale else 0)
        assert n.sack == (c.sack_permitted and s.sack_permitted)
        assert n.timestamps == (c.timestamps and s.timestamps)
        assert n.tsval_c == (c.tsval if n.timestamps else None)
        assert n.tsval_s == (s.tsval if n.timestamps else None)

        # C's side of N, as replayed to the proxy, survives the wire and says exactly N.
        replay = n.client_side()
        raw = serialize_options(replay.to_options())
        assert len(raw) <= 40 and len(raw) % 4 == 0
        back = SynOptions.parse(raw)
        assert back == replay
        assert back.mss == c.mss
        assert (back.wscale is not None) == n.wscale
        assert back.sack_permitted == n.sack
        assert back.timestamps == n.timestamps and (not n.timestamps or back.tsval == c.tsval)
        assert back.tsecr == 0

        # S's side answers whatever the proxy's own SYN offered, never more than that SYN allowed.
        for peer in (SynOptions(), side(1460, 7, True, 555)):
            ans = n.server_side(peer, tsecr=peer.tsval or 0)
            back = SynOptions.parse(serialize_options(ans.to_options()))
            assert back.mss == s.mss
            assert (back.wscale is not None) == (n.wscale and peer.wscale is not None)
            assert back.wscale in (None, n.shift_s)
            assert back.sack_permitted == (n.sack and peer.sack_permitted)
            assert back.timestamps == (n.timestamps and peer.timestamps)
            if back.timestamps:
                assert back.tsval == s.tsval and back.tsecr == 555


def test_named_combinations():
    full_c = side(1460, 7, True, 100)
    full_s = side(1400, 9, True, 200)
    n = negotiate(full_c, full_s)
    assert (n.wscale, n.shift_c, n.shift_s, n.sack, n.timestamps) == (True, 7, 9, True, True)
    assert (n.tsval_c, n.tsval_s) == (100, 200)
    # only the client offers window scaling: off, both shifts 0
    n = negotiate(full_c, side(1400, None, True, 200))
    assert (n.wscale, n.shift_c, n.shift_s) == (False, 0, 0)
    # the server alone echoes SACK-permitted (a violation): off
    assert not negotiate(side(1460, 7, False, 100), full_s).sack
    # no timestamps from the server: neither TSval kept
    n = negotiate(full_c, side(1400, 9, True, None))
    assert not n.timestamps and n.tsval_c is None and n.tsval_s is None
    # a shift above 14 is used as 14 (RFC 7323)
    assert negotiate(side(None, 15, False, None), side(None, 200, False, None)).shift_s == 14


def test_syn_layouts_are_linux_like():
    assert serialize_options(side(1460, 7, True, 0x1E240).to_options()) == LINUX_SYN
    assert side(1460, None, True, None).to_options() == (Mss(1460), Nop(), Nop(), SackPermitted())
    assert side(None, 3, False, 5).to_options() == (Nop(), Nop(), Timestamps(5, 0), Nop(), WindowScale(3))
    assert side(None, None, False, None).to_options() == ()


def test_from_options_reads_unknown_and_tsecr():
    raw = bytes([2, 4, 5, 0xB4, 30, 3, 7, 1]) + bytes([8, 10]) + struct.pack("!II", 9, 8) + bytes([0, 0])
    o = SynOptions.parse(raw)
    assert o.mss == 1460 and o.tsval == 9 and o.tsecr == 8
    assert o.unknown == (UnknownOption(30, b"\x07"),)
