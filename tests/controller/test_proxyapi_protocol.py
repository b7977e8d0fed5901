"""Proxy API wire format without sockets: endpoints, flows, argument checks, line codec."""

from __future__ import annotations

import pytest
from p4splice.controller.proxyapi import ApiError, Deltas, Flow
from p4splice.controller.proxyapi.protocol import (
    BadRequest,
    check_count,
    check_flow,
    check_heartbeat_ms,
    check_ipv4,
    check_mac,
    check_port,
    check_proxy_name,
    decode_line,
    encode,
    parse_endpoint,
)


def test_endpoint_parsing() -> None:
    assert parse_endpoint("10.0.1.1:40000") == ("10.0.1.1", 40000)
    assert parse_endpoint("255.255.255.255:65535") == ("255.255.255.255", 65535)
    for bad in ("10.0.1.1", "10.0.1.1:", ":80", "10.0.1:80", "10.0.1.256:80", "010.0.1.1:80",
                "10.0.1.1:0", "10.0.1.1:65536", "10.0.1.1:-1", "10.0.1.1:+80", "10.0.1.1:8 0",
                "[::1]:80", "::1:80", "host:80", "10.0.1.1:٨٠", "10.0.1.1:080"):
        with pytest.raises(ValueError):
            parse_endpoint(bad)


def test_flow_round_trip_and_errors() -> None:
    flow = Flow.from_json({"client": "10.0.1.1:40000", "server": "10.0.2.1:80"})
    assert flow == Flow("10.0.1.1", 40000, "10.0.2.1", 80)
    assert flow.to_json() == {"client": "10.0.1.1:40000", "server": "10.0.2.1:80"}
    assert str(flow) == "10.0.1.1:40000->10.0.2.1:80"
    cases = {
        "missing 'server'": {"client": "10.0.1.1:1"},
        "'client' must be a string": {"client": 5, "server": "10.0.2.1:80"},
        "'server': port": {"client": "10.0.1.1:1", "server": "10.0.2.1:99999"},
        "unknown field(s) proto": {"client": "10.0.1.1:1", "server": "10.0.2.1:80", "proto": "tcp"},
        "must be an object": "10.0.1.1:1->10.0.2.1:80",
    }
    for message, value in cases.items():
        with pytest.raises(BadRequest) as err:
            check_flow(value)
        assert "argument 'flow'" in err.value.message and message in err.value.message, err.value.message


def test_argument_checks_name_the_argument() -> None:
    assert check_port(0) == 0 and check_port(511) == 511
    assert check_mac("02:AA:00:00:00:0B") == "02:aa:00:00:00:0b"
    assert check_ipv4("10.0.200.1") == "10.0.200.1"
    assert check_heartbeat_ms(100) == 100 and check_heartbeat_ms(60000) == 60000
    assert check_count("a_c", 2**64 - 1) == 2**64 - 1
    assert check_proxy_name("inspector-1.a_b") == "inspector-1.a_b"
    bad = [
        (check_port, -1, "'port'"), (check_port, 512, "'port'"), (check_port, True, "'port'"),
        (check_port, 3.0, "'port'"), (check_port, "3", "'port'"),
        (check_mac, "02:00:00:00:00", "'mac'"), (check_mac, "02-00-00-00-00-0a", "'mac'"), (check_mac, None, "'mac'"),
        (check_ipv4, "10.0.0", "'ip'"), (check_ipv4, "::1", "'ip'"), (check_ipv4, None, "'ip'"),
        (check_heartbeat_ms, 99, "'heartbeat_ms'"), (check_heartbeat_ms, 60001, "'heartbeat_ms'"),
        (check_heartbeat_ms, 1000.5, "'heartbeat_ms'"),
        (check_proxy_name, "", "'proxy'"), (check_proxy_name, "-x", "'proxy'"), (check_proxy_name, "a b", "'proxy'"),
        (check_proxy_name, "x" * 65, "'proxy'"), (check_proxy_name, 7, "'proxy'"),
    ]
    for check, value, name in bad:
        with pytest.raises(BadRequest) as err:
            check(value)  # type: ignore[operator]
        assert name in err.value.message
    for value in (-1, 2**64, False, 1.0, "1", None):
        with pytest.raises(BadRequest, match="'b_c'"):
            check_count("b_c", value)


def test_line_codec() -> None:
    assert encode({"id": 1, "ok": True}) == b'{"id":1,"ok":true}\n'
    assert decode_line(b'{"a": [1, "\xc3\xa9"]}') == {"a": [1, "é"]}
    for bad in (b"{", b"NaN", b'{"a": Infinity}', b"\xff\xfe", b""):
        with pytest.raises(ValueError):
            decode_line(bad)


def test_a_number_beyond_a_double_is_not_json() -> None:
    """Python reads 1e400 as Infinity, which no reply can carry back (found by fuzzing: an id of
    1e400 ended the connection's handler with a traceback)."""
    assert decode_line(b'{"id": 1e308, "n": -0.0}') == {"id": 1e308, "n": -0.0}
    assert decode_line(b'{"id": ' + b"9" * 400 + b"}") == {"id": int("9" * 400)}  # integers are exact
    for bad in (b"1e400", b'{"id": -1E+999}', b'{"id": 1, "x": [2e308]}'):
        with pytest.raises(ValueError, match="out of range"):
            decode_line(bad)


def test_api_error_and_deltas() -> None:
    err = ApiError("unsupported_version", "no", supported=[1])
    assert err.to_json() == {"code": "unsupported_version", "message": "no", "supported": [1]}
    with pytest.raises(ValueError):
        ApiError("nope", "unknown code")
    # Verbatim relay: zero; a proxy that grew the request by 10 bytes and the reply by 3.
    assert Deltas.from_counts(100, 100, 5000, 5000) == Deltas(0, 0)
    assert Deltas.from_counts(100, 110, 5000, 4997).to_json() == {"c2s": 10, "s2c": -3}
