"""Known-answer tests of p4sim.dataplane.hashes against standard check values and BMv2's semantics."""

from __future__ import annotations

import random

import pytest
from scapy.layers.inet import IP

from p4sim.dataplane import hashes
from p4sim.dataplane.hashes import CrcParams, CustomCrc, compute, hash_v1model, pack_fields
from p4sim.dataplane.rtlib import csum16_packed

CHECK = b"123456789"


@pytest.mark.parametrize(("algo", "expected"), [
    ("crc32", 0xCBF43926),         # CRC-32/ISO-HDLC
    ("crc32_custom", 0xCBF43926),  # BMv2's default custom params = CRC-32
    ("crc16", 0xBB3D),             # CRC-16/ARC
    ("crc16_custom", 0xBB3D),
    ("crc8_custom", 0xF4),         # CRC-8/SMBUS
    ("crcCCITT", 0x29B1),          # CRC-16/CCITT-FALSE
])
def test_crc_check_values(algo: str, expected: int) -> None:
    assert compute(algo, CHECK) == expected


def _crc_bitwise(data: bytes, width: int, p: CrcParams) -> int:
    """Straight bit-at-a-time Rocksoft-model CRC, as a reference for the table code."""
    def refl(v: int, n: int) -> int:
        return int(f"{v:0{n}b}"[::-1], 2)
    top, mask = 1 << (width - 1), (1 << width) - 1
    reg = p.initial_remainder
    for byte in data:
        if p.data_reflected:
            byte = refl(byte, 8)
        reg ^= byte << (width - 8)
        for _ in range(8):
            reg = ((reg << 1) ^ p.polynomial) & mask if reg & top else (reg << 1) & mask
    if p.remainder_reflected:
        reg = refl(reg, width)
    return reg ^ p.final_xor_value


@pytest.mark.parametrize(("width", "params", "check"), [
    (16, CrcParams(0x1021, 0x0000, 0x0000, True, True), 0x2189),           # CRC-16/KERMIT
    (16, CrcParams(0x1021, 0xFFFF, 0x0000, False, False), 0x29B1),         # CRC-16/CCITT-FALSE
    (16, CrcParams(0x8005, 0xFFFF, 0x0000, True, True), 0x4B37),           # CRC-16/MODBUS
    (32, CrcParams(0x04C11DB7, 0xFFFFFFFF, 0xFFFFFFFF, False, False), 0xFC891918),  # BZIP2
    (32, CrcParams(0x1EDC6F41, 0xFFFFFFFF, 0xFFFFFFFF, True, True), 0xE3069283),    # CRC-32C
    (8, CrcParams(0x31, 0x00, 0x00, True, True), 0xA1),                    # CRC-8/MAXIM-DOW
    (64, CrcParams(0x42F0E1EBA9EA3693, 0, 0, False, False), 0x6C40DF5F0B497347),  # CRC-64/ECMA-182
    (16, CrcParams(0x8005, 0x0000, 0x0000, True, False), None),            # mixed reflection
    (32, CrcParams(0x04C11DB7, 0x12345678, 0x0F0F0F0F, False, True), None),
])
def test_custom_crc_matches_reference(width: int, params: CrcParams, check: int | None) -> None:
    crc = CustomCrc(width, params)
    if check is not None:
        assert crc(CHECK) == check
    rng = random.Random(width)
    for n in (0, 1, 2, 13, 100):
        data = bytes(rng.randrange(256) for _ in range(n))
        assert crc(data) == _crc_bitwise(data, width, params)


def test_custom_crc_reconfigure() -> None:
    crc = CustomCrc(16, hashes.DEFAULT_CUSTOM_PARAMS[16])
    assert crc(CHECK) == 0xBB3D
    crc.configure(CrcParams(0x1021, 0xFFFF, 0, False, False))
    assert crc(CHECK) == 0x29B1
    with pytest.raises(ValueError):
        crc.configure(CrcParams(0x10000, 0, 0, False, False))


def test_csum16_equals_real_ipv4_header_checksum() -> None:
    pkt = IP(src="192.0.2.1", dst="198.51.100.7", ttl=61, id=0x1C46, flags="DF", proto=6)
    raw = bytes(IP(bytes(pkt)))  # scapy fills in ihl, len and chksum
    wire_chksum = int.from_bytes(raw[10:12], "big")
    zeroed = raw[:10] + b"\x00\x00" + raw[12:20]
    assert compute("csum16", zeroed) == wire_chksum
    # verify_checksum's view: summing the header including its checksum gives 0.
    assert compute("csum16", raw[:20]) == 0


def test_csum16_details() -> None:
    assert compute("csum16", b"") == 0xFFFF
    # Odd length: the last byte is the high byte of a zero-padded word (RFC 1071).
    assert compute("csum16", b"\x01") == (~0x0100) & 0xFFFF
    # End-around carry.
    assert compute("csum16", b"\xff\xff\x00\x01") == (~0x0001) & 0xFFFF
    # RFC 1071's example words 0001 f203 f4f5 f6f7 sum to ddf2 after folding.
    assert compute("csum16", bytes.fromhex("0001f203f4f5f6f7")) == (~0xDDF2) & 0xFFFF


def test_xor16_identity() -> None:
    assert compute("xor16", bytes.fromhex("1234abcd")) == 0x1234 ^ 0xABCD
    assert compute("xor16", bytes.fromhex("1234ab")) == 0x1234 ^ 0xAB00  # tail padded after
    assert compute("xor16", b"") == 0
    assert compute("xor32", bytes.fromhex("0102030405")) == 0x01020304 ^ 0x05000000
    assert compute("identity", bytes.fromhex("0a0b")) == 0x0A0B  # no padding when short
    assert compute("identity", bytes(range(1, 13))) == 0x0102030405060708  # first 8 bytes


def test_pack_fields_is_msb_first_and_pads_at_the_end() -> None:
    assert pack_fields([(0xABCD, 16), (0x12, 8)]) == bytes.fromhex("abcd12")
    # 4 + 4 bits share one byte, MSB first.
    assert pack_fields([(0xA, 4), (0x5, 4)]) == b"\xa5"
    # 9 bits: padding in the low-order bits of the last byte.
    assert pack_fields([(1, 1), (0xFF, 8)]) == bytes([0xFF, 0x80])
    assert pack_fields([(0b101, 3)]) == bytes([0b1010_0000])
    # A value wider than its field keeps only its low bits; zero widths vanish.
    assert pack_fields([(0x1FF, 8), (5, 0)]) == b"\xff"
    assert pack_fields([]) == b""
    # IPv4 5-tuple shape: 32+32+8+16+16 = 104 bits = 13 bytes.
    assert len(pack_fields([(1, 32), (2, 32), (6, 8), (80, 16), (443, 16)])) == 13


def test_hash_v1model_semantics(caplog: pytest.LogCaptureFixture) -> None:
    fields = [(0x0A000001, 32), (0x0A000002, 32), (6, 8), (1234, 16), (80, 16)]
    h = compute("crc16", pack_fields(fields))
    assert hash_v1model("crc16", 0, fields, 1 << 16) == h
    assert hash_v1model("crc16", 100, fields, 7) == 100 + h % 7
    # BMv2 treats max == 0 as max == 1 (with a warning): the result is base.
    assert hash_v1model("crc32", 5, fields, 0) == 5
    assert "max given as 0" in caplog.text
    assert 0 <= hash_v1model("random", 0, fields, 10) < 10


def test_unknown_algorithm() -> None:
    with pytest.raises(ValueError, match="unknown hash algorithm"):
        compute("md5", b"")
    with pytest.raises(ValueError):
        hashes.output_width("md5")
    assert hashes.output_width("crc16") == 16


def test_packed_csum16_equals_the_byte_checksum() -> None:
    # the generated code checksums a packed field list as one integer; it must agree with the
    # byte-wise RFC 1071 sum for every width, including zero words and all-ones words
    rng = random.Random(7)
    for i in range(5000):
        n = rng.choice([7, 8, 9, 16, 24, 160, 168, 320])
        v = rng.getrandbits(n) if i % 5 else rng.choice([0, (1 << n) - 1, 0xFFFF & ((1 << n) - 1)])
        pad = -n % 8
        assert csum16_packed(v, n) == hashes.csum16((v << pad).to_bytes((n + pad) // 8, "big")), (v, n)
