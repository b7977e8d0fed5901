"""Fuzzing the controller's two local JSON-lines APIs over real Unix sockets: the proxy API
(ProxyApiServer, docs/proxy-api.md) and the admin socket (AdminServer, docs/splicectl.md).

Each example writes a sequence of lines on one or two connections: bytes that are not UTF-8 or
not JSON, JSON that is not an object, NaN, Infinity and numbers out of range, requests with an
unknown op, missing, unknown or ill-typed arguments (strings for integers, huge, negative and
fractional numbers, nested objects, long strings), duplicate keys, deep nesting, ids of every JSON
type or none, lines at and over the size limit, requests before ``hello`` or ``register`` -- and,
among them, valid requests. Whatever comes:

* every line gets exactly the reply the protocol documents, and it is JSON: one object with the
  request's ``id`` (``null`` when the line has none usable), ``ok`` and a ``result`` object, or an
  ``error`` with the documented code and a message naming the argument at fault; a line over the
  limit gets ``bad_request`` and the connection is closed;
* the connection's handler lives on: a valid request after the garbage gets its right answer;
* nothing is logged at ERROR (no traceback);
* the state the server reports afterwards (registrations, connected proxies, the service's flows
  and the calls it got) is what the valid requests alone made;
* once the connections close, the server's tasks are back to what they were.

The proxy API runs against the in-memory ``FakeService`` of the proxy API tests, a new server per
example (cheap, and the state expected is then exact), and again as a real daemon serves it, with
its ControllerService, orchestrator and switch. That daemon (in-process switch, a proxy of its own
registered, one flow proxied through it) is shared by the module's daemon tests, on a loop in a
thread; it also serves the admin socket. Its own proxy and flow must come out of every example
untouched.

``make test`` runs a bounded number of examples; ``make fuzz`` (FUZZ_EXAMPLES) runs more.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
import math
import os
import re
import threading
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from p4splice.controller import admin as admin_api
from p4splice.controller.daemon import Daemon
from p4splice.controller.proxyapi import ERROR_CODES, EVENTS, MAX_LINE, ApiError, Flow

from tests.controller import switches
from tests.controller.orchestrator_fixtures import established, proxied
from tests.controller.test_orchestrator_support import C_PORT, CPU, DEVICE, P_PORT, S_PORT, Lab, flow_key
from tests.controller.test_proxyapi_support import FakeService, Raw, poll, run, serving

T = TypeVar("T")
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "40"))
FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES, deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.large_base_example],
)


# --- JSON text, written out as hostile peers write it -----------------------------------------------

@dataclass(frozen=True)
class Token:
    """A JSON text put in as it is (NaN, 1e400, deep nesting)."""

    text: str


@dataclass(frozen=True)
class Pairs:
    """An object written pair by pair, so that keys may repeat (the last one wins)."""

    items: tuple[tuple[str, Any], ...]


def render(value: Any) -> str:
    if isinstance(value, Token):
        return value.text
    if isinstance(value, Pairs):
        return "{" + ",".join(f"{render(k)}:{render(v)}" for k, v in value.items) + "}"
    if isinstance(value, dict):
        return render(Pairs(tuple(value.items())))
    if isinstance(value, list):
        return "[" + ",".join(render(v) for v in value) + "]"
    if isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError:  # a lone surrogate: only its escape is JSON
            return json.dumps(value)
        return json.dumps(value, ensure_ascii=False)
    return json.dumps(value)


def line_of(value: Any) -> bytes:
    return render(value).encode() + b"\n"


def strict_json(data: bytes) -> Any:
    """``data`` as JSON, RFC 8259 and nothing more: no NaN, no Infinity, no number beyond a double;
    raises ValueError."""
    def no_constant(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    def finite(text: str) -> float:
        number = float(text)
        if math.isinf(number):
            raise ValueError(f"{text} is out of range")
        return number

    try:
        return json.loads(data.decode("utf-8"), parse_constant=no_constant, parse_float=finite)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def same_json(got: Any, want: Any) -> bool:
    """Equal as JSON values: 1, 1.0 and true are three different ids."""
    return type(got) is type(want) and got == want


# --- what the documents say is valid, in our own words -------------------------------------------------

OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
IPV4 = re.compile(rf"{OCTET}(\.{OCTET}){{3}}")
ENDPOINT = re.compile(rf"{OCTET}(\.{OCTET}){{3}}:([1-9][0-9]{{0,4}})")
PROXY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
MAC_TEXT = re.compile(r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}")


def good_endpoint(text: object) -> bool:
    m = isinstance(text, str) and ENDPOINT.fullmatch(text)
    return bool(m) and int(text.rsplit(":", 1)[1]) <= 65535  # type: ignore[union-attr]


# --- values: any, and wrong ones for each argument -------------------------------------------------------

FINITE = st.floats(allow_nan=False, allow_infinity=False)
# 2^31, 2^63, -2^63, 2^64, 2^64 - 1, 10^100, -10^300, 10^4299 (4,300 digits: as many as Python reads)
BIG_INTS = st.sampled_from([(2, 31, 0), (2, 63, 0), (-2, 63, 0), (2, 64, 0), (2, 64, -1), (10, 100, 0), (-10, 300, 0),
                            (10, 4299, 0)]).map(lambda b: (1 if b[0] > 0 else -1) * abs(b[0]) ** b[1] + b[2])
LONG_TEXT = st.integers(1, 80_000).map(lambda n: "a" * n)  # three fit in a line of the proxy API
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), BIG_INTS, FINITE, st.text(max_size=16))
JSON_VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                           st.dictionaries(st.text(max_size=6), inner, max_size=3)),
                           max_leaves=8)
# Nesting the parser takes (well under Python's recursion limit) or refuses (well over it); never
# the band in between, where the answer would depend on the server's stack.
SHALLOW = st.integers(1, 150)
DEEP = st.integers(5_000, 40_000)


def nested(depth: int, kind: str) -> Token:
    if kind == "list":
        return Token("[" * depth + "]" * depth)
    return Token('{"a":' * depth + "1" + "}" * depth)


NESTING_KIND = st.sampled_from(["list", "dict"])
SHALLOW_NESTED = st.builds(nested, SHALLOW, NESTING_KIND)
DEEP_NESTED = st.builds(nested, DEEP, NESTING_KIND)
ANY_VALUE = st.one_of(JSON_VALUES, LONG_TEXT, SHALLOW_NESTED)

# ids a request may carry (any scalar; "\ud800" is a lone surrogate, legal as an escape)
IDS = st.one_of(st.none(), st.booleans(), st.integers(), BIG_INTS, FINITE, st.text(max_size=16), st.just("\ud800"))
# numbers that are not integers, and other things that are not numbers
NOT_INT = st.one_of(st.none(), st.booleans(), FINITE, st.text(max_size=8),
                    st.integers(0, 600).map(str), st.just(Token("1.0")), st.just(Token("1e2")), st.just(Token("-0.0")),
                    st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
                    SHALLOW_NESTED)


def int_outside(low: int, high: int) -> st.SearchStrategy[int]:
    return st.one_of(st.integers(max_value=low - 1), st.integers(min_value=high + 1),
                     BIG_INTS.filter(lambda n: not low <= n <= high))


NOT_TEXT = st.one_of(st.none(), st.booleans(), st.integers(), FINITE, st.lists(st.text(max_size=3), max_size=2),
                     st.dictionaries(st.text(max_size=3), st.text(max_size=3), max_size=2), SHALLOW_NESTED)
BAD_PORT = st.one_of(NOT_INT, int_outside(0, 511))
BAD_HEARTBEAT = st.one_of(NOT_INT, int_outside(100, 60_000))
BAD_COUNT = st.one_of(NOT_INT, int_outside(0, 2**64 - 1))
BAD_NAME = st.one_of(NOT_TEXT, st.text(max_size=70).filter(lambda s: not PROXY_NAME.fullmatch(s)),
                     st.integers(65, 100_000).map(lambda n: "p" * n),
                     st.sampled_from(["", "-p", ".p", "p 1", "p/1", "p\u00e9", "\u0661", "p\x00"]))
BAD_MAC = st.one_of(NOT_TEXT, st.text(max_size=20).filter(lambda s: not MAC_TEXT.fullmatch(s)),
                    st.sampled_from(["02:00:00:00:00", "02:00:00:00:00:0g", "02-00-00-00-00-0a", "0200.0000.000a",
                                     "02:00:00:00:00:0a:", " 02:00:00:00:00:0a", "02:00:00:00:00:\u0661\u0661"]))
BAD_IP = st.one_of(NOT_TEXT, st.text(max_size=16).filter(lambda s: not IPV4.fullmatch(s)),
                   st.sampled_from(["10.0.0.256", "010.0.0.1", "10.0.0", "10.0.0.1.", "::1", "10.0.0.1/24",
                                    "\u0661.0.0.1", " 10.0.0.1"]))
BAD_ENDPOINT_TEXT = st.one_of(
    st.text(max_size=24).filter(lambda s: not good_endpoint(s)), LONG_TEXT,
    st.sampled_from(["10.0.1.1", "10.0.1.1:", ":80", "10.0.1.1:0", "10.0.1.1:65536", "10.0.1.1:080", "10.0.1.1:+80",
                     "10.0.1.1: 80", "10.0.1.1:8 0", "010.0.1.1:80", "10.0.1.256:80", "[::1]:80", "10.0.1.1:\u0668\u0660",
                     "10.0.1.1:80:80", "10.0.1.1:" + "9" * 5000]))
BAD_ENDPOINT = st.one_of(NOT_TEXT, BAD_ENDPOINT_TEXT)


def good_flow_json(value: object) -> bool:
    return (isinstance(value, dict) and set(value) == {"client", "server"}
            and good_endpoint(value["client"]) and good_endpoint(value["server"]))


ENDS = st.sampled_from(["10.0.1.1:40000", "10.0.2.1:80"])
BAD_FLOW = st.one_of(
    st.none(), st.booleans(), st.integers(), FINITE, st.lists(ENDS, max_size=2), SHALLOW_NESTED, LONG_TEXT,
    st.just("10.0.1.1:40000-10.0.2.1:80"),  # the admin socket's text form: not the proxy API's
    st.fixed_dictionaries({"client": BAD_ENDPOINT, "server": ENDS}),
    st.fixed_dictionaries({"client": ENDS, "server": BAD_ENDPOINT}),
    st.fixed_dictionaries({"client": ENDS}), st.fixed_dictionaries({"server": ENDS}), st.just({}),
    st.fixed_dictionaries({"client": ENDS, "server": ENDS, "port": ANY_VALUE}),
    st.dictionaries(st.text(max_size=6), ANY_VALUE, max_size=3),
).filter(lambda v: not good_flow_json(v))


# --- steps ------------------------------------------------------------------------------------------------

GARBAGE, VALID, BAD_ARG, UNKNOWN_ARG, UNKNOWN_OP, VERSION, OVERSIZE = (
    "garbage", "valid", "bad_arg", "unknown_arg", "unknown_op", "version", "oversize")


@dataclass(frozen=True)
class Step:
    """One line on connection ``conn``. ``args``: a valid request's arguments as the server must
    read them; ``fault``: words one of which the error message must hold (the argument at fault)."""

    conn: int
    line: bytes
    kind: str
    req_id: Any = None
    op: str = ""
    args: dict[str, Any] = field(default_factory=dict)
    fault: tuple[str, ...] = ()

    def __repr__(self) -> str:  # what a failing example prints: short lines whole, long ones cut
        text = self.line if len(self.line) <= 300 else self.line[:200] + b"...(%d bytes)" % len(self.line)
        return f"Step(conn={self.conn}, {self.kind}, op={self.op!r}, id={self.req_id!r}, line={text!r})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # hypothesis prints examples with this
        printer.text(repr(self))


def not_an_id_request(data: bytes) -> bool:
    """Whether the line, read strictly, is not an object with a usable id (so its reply's id is null)."""
    try:
        value = strict_json(data)
    except ValueError:
        return True
    return not (isinstance(value, dict) and "id" in value and not isinstance(value["id"], (dict, list)))


GARBAGE_LINES = st.one_of(
    st.binary(max_size=60),
    st.text(max_size=40).map(lambda t: t.encode()),
    st.sampled_from([
        b"", b" ", b"{", b"}", b"{}", b"[]", b"null", b"true", b"0", b"-0", b'""', b"NaN", b"-Infinity", b"1e400",
        b'{"id": 1e400, "op": "flows"}', b'{"id": -1E+999, "op": "flows"}', b'{"id": NaN, "op": "flows"}',
        b'{"id": Infinity, "op": "flows"}', b'{"id": [1], "op": "flows"}', b'{"id": {"a": 1}, "op": "flows"}',
        b'{"op": "flows"}', b'{"op": "hello", "version": 1, "proxy": "p1"}', b'[{"id": 1, "op": "flows"}]',
        b'\xef\xbb\xbf{"id": 1, "op": "flows"}', b'{"id": 1, "op": "flows"} {"id": 2}', b'{"id": 1, "op": "flows",}',
        b"{'id': 1, 'op': 'flows'}", b'{"id": 01, "op": "flows"}', b'{"id": 1, "op": "flo', b'{"id": "\xff"}',
        b'{"id": 1, "op": "flows", "x": 1e999}', b'{"id": 1, "op": "register", "port": NaN}', b"\x00",
        b'{"id": ' + b"1" * 4301 + b', "op": "flows"}',
    ]),
    JSON_VALUES.filter(lambda v: not isinstance(v, dict)).map(lambda v: render(v).encode()),
    DEEP_NESTED.map(lambda t: t.text.encode()),
    st.builds(lambda d: b'{"id": 1, "op": "flows", "x": ' + d.text.encode() + b"}", DEEP_NESTED),
).map(lambda b: b.replace(b"\n", b"")).filter(not_an_id_request)


def fit(step: Step, limit: int) -> Step:
    """A line longer than ``limit`` (long values add up) is a line over the limit, whatever it holds."""
    return Step(step.conn, step.line, OVERSIZE) if len(step.line) > limit else step


def garbage_steps(conn: st.SearchStrategy[int]) -> st.SearchStrategy[Step]:
    return st.builds(lambda c, b: Step(c, b + b"\n", GARBAGE), conn, GARBAGE_LINES)


def oversize_steps(conn: st.SearchStrategy[int], limit: int) -> st.SearchStrategy[Step]:
    """A line longer than ``limit`` (its newline included), up to 4 KiB longer: JSON or not."""
    def build(c: int, extra: int, json_like: bool) -> Step:
        size = limit + extra
        if json_like:
            head = b'{"id": 1, "op": "flows", "pad": "'
            line = head + b"x" * (size - len(head) - 3) + b'"}\n'
        else:
            line = b"\xff" * (size - 1) + b"\n"
        return Step(c, line, OVERSIZE)
    return st.builds(build, conn, st.integers(1, 4096), st.booleans())


def request(req_id: Any, op: Any, args: dict[str, Any], *, drop: str | None = None, extra: dict[str, Any] | None = None,
            dup_before: dict[str, Any] | None = None, with_id: bool = True) -> Pairs:
    """A request object: ``dup_before`` writes keys once more, first, with other values (the later
    ones win); ``drop`` leaves an argument out; ``extra`` adds some."""
    items: list[tuple[str, Any]] = list((dup_before or {}).items())
    if with_id:
        items.append(("id", req_id))
    if op is not None:
        items.append(("op", op))
    items += [(k, v) for k, v in args.items() if k != drop]
    items += list((extra or {}).items())
    return Pairs(tuple(items))


def pad_to(line: bytes, size: int) -> bytes:
    """A request line made exactly ``size`` bytes long with blanks before its closing brace."""
    body = line[:-2]
    assert line.endswith(b"}\n") and len(line) <= size
    return body + b" " * (size - len(line)) + b"}\n"


# --- the proxy API ------------------------------------------------------------------------------------------

FLOW_A = Flow("10.0.1.1", 40000, "10.0.2.1", 80)
FLOW_B = Flow("10.0.1.2", 40001, "10.0.2.1", 80)
FLOW_C = Flow("10.0.1.3", 40002, "10.0.2.1", 443)  # nobody's
DAEMON_SPORT = 41200
DAEMON_FLOW = Flow("10.0.1.1", DAEMON_SPORT, "10.0.2.1", 80)  # the daemon's one flow, proxy-1's: nobody else's
NAMES = ("p1", "p2")
OP_ARGS: dict[str, tuple[str, ...]] = {
    "hello": ("version", "proxy"), "register": ("port", "mac", "heartbeat_ms", "ip"), "heartbeat": ("quiescent",),
    "splice_prepare": ("flow",), "splice": ("flow", "a_c", "b_s", "a_s", "b_c"), "splice_cancel": ("flow",),
    "flow": ("flow",), "flows": (), "bye": (),
}
OPTIONAL = {"ip", "quiescent"}
COUNT = st.one_of(st.integers(0, 2**64 - 1), st.sampled_from([0, 2**32 - 1, 2**32, 2**64 - 1]))
FLOWS = st.sampled_from([FLOW_A, FLOW_B, FLOW_C, DAEMON_FLOW])


@st.composite
def quiescent_items(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the wire form, what the server reads) of one item of heartbeat's quiescent list."""
    flow = draw(FLOWS)
    counts = {name: draw(COUNT) for name in ("a_c", "b_s", "a_s", "b_c")}
    return {"flow": flow.to_json(), **counts}, {"flow": flow, **counts}


@st.composite
def valid_args(draw: st.DrawFn, op: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the wire arguments, what the server reads from them) of a valid ``op``."""
    if op == "hello":
        name = draw(st.sampled_from(NAMES))
        return {"version": 1, "proxy": name}, {"proxy": name}
    if op == "register":
        # heartbeat intervals of 10 s and more: no heartbeat_missed event in the middle of an example
        wire = {"port": draw(st.integers(0, 511)), "mac": draw(st.sampled_from(["02:00:00:00:00:0a", "02:AB:cd:00:00:0F"])),
                "heartbeat_ms": draw(st.integers(10_000, 60_000))}
        if draw(st.booleans()):
            wire["ip"] = draw(st.sampled_from(["10.0.200.1", "0.0.0.0", "255.255.255.255"]))
        return wire, dict(wire, mac=wire["mac"].lower())
    if op == "heartbeat":
        if draw(st.booleans()):
            return {}, {}
        items = draw(st.lists(quiescent_items(), max_size=3))
        return {"quiescent": [w for w, _ in items]}, {"quiescent": [r for _, r in items]}
    if op in ("flows", "bye"):
        return {}, {}
    flow = draw(FLOWS)
    wire: dict[str, Any] = {"flow": flow.to_json()}
    read: dict[str, Any] = {"flow": flow}
    if op == "splice":
        for name in ("a_c", "b_s", "a_s", "b_c"):
            wire[name] = read[name] = draw(COUNT)
    return wire, read


@st.composite
def bad_quiescent(draw: st.DrawFn) -> Any:
    good = [w for w, _ in draw(st.lists(quiescent_items(), max_size=2))]
    wrong = draw(st.one_of(
        st.builds(lambda v: {"flow": FLOW_A.to_json(), "a_c": v, "b_s": 0, "a_s": 0, "b_c": 0}, BAD_COUNT),
        st.builds(lambda v: {"flow": v, "a_c": 0, "b_s": 0, "a_s": 0, "b_c": 0}, BAD_FLOW),
        st.just({"flow": FLOW_A.to_json(), "a_c": 0, "b_s": 0, "a_s": 0}),
        st.builds(lambda v: {"flow": FLOW_A.to_json(), "a_c": 0, "b_s": 0, "a_s": 0, "b_c": 0, "x": v}, ANY_VALUE),
        NOT_TEXT.filter(lambda v: not isinstance(v, dict)),
    ))
    where = draw(st.integers(0, len(good)))
    return draw(st.one_of(st.just(good[:where] + [wrong] + good[where:]),
                          NOT_INT.filter(lambda v: not isinstance(v, list)), st.text(max_size=5)))


BAD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "version": NOT_INT, "proxy": BAD_NAME, "port": BAD_PORT, "mac": BAD_MAC, "heartbeat_ms": BAD_HEARTBEAT,
    "ip": BAD_IP, "quiescent": bad_quiescent(), "flow": BAD_FLOW,
    "a_c": BAD_COUNT, "b_s": BAD_COUNT, "a_s": BAD_COUNT, "b_c": BAD_COUNT,
}
# words that name the argument at fault (a quiescent item names its own field)
FAULT_WORDS = {"quiescent": ("quiescent", "'flow'", "'a_c'", "'b_s'", "'a_s'", "'b_c'")}


@st.composite
def valid_steps(draw: st.DrawFn, conn: st.SearchStrategy[int], op: str | None = None) -> Step:
    c = draw(conn)
    op = op or draw(st.sampled_from(list(OP_ARGS)))
    wire, read = draw(valid_args(op))
    req_id = draw(IDS)
    # now and then the keys come twice, garbage first: the later value is the one that counts
    dup = draw(st.one_of(st.none(), st.dictionaries(st.sampled_from(["id", "op", *wire]), ANY_VALUE, max_size=2)))
    line = line_of(request(req_id, op, wire, dup_before=dup))
    if draw(st.integers(0, 19)) == 0 and len(line) <= MAX_LINE:
        line = pad_to(line, MAX_LINE)  # exactly at the limit, newline included: still a request
    return Step(c, line, VALID, req_id, op, read)


@st.composite
def mutated_steps(draw: st.DrawFn, conn: st.SearchStrategy[int]) -> Step:
    """A request of the right shape with one thing wrong (``op``, an argument missing, wrong or extra)."""
    c = draw(conn)
    op = draw(st.sampled_from(list(OP_ARGS)))
    wire, _ = draw(valid_args(op))
    req_id = draw(IDS)
    what = draw(st.sampled_from(["op", "extra", "value", "missing"]))
    if what in ("value", "missing") and not OP_ARGS[op]:
        what = "extra"
    if what == "op":
        bad_op = draw(st.one_of(NOT_TEXT, st.text(max_size=12).filter(lambda s: s not in OP_ARGS),
                                st.sampled_from(["HELLO", "hello ", "splice-prepare", "heartbeats", "__init__"])))
        missing = draw(st.booleans())
        line = line_of(request(req_id, None if missing else bad_op, wire))
        return Step(c, line, UNKNOWN_OP, req_id, op, fault=("'op'",))
    if what == "extra":
        key = draw(st.text(max_size=12).filter(lambda k: k not in OP_ARGS[op] and k not in ("id", "op")))
        line = line_of(request(req_id, op, wire, extra={key: draw(ANY_VALUE)}))
        return Step(c, line, UNKNOWN_ARG, req_id, op, fault=(key,))
    if what == "missing":
        arg = draw(st.sampled_from([a for a in OP_ARGS[op] if a not in OPTIONAL] or [""]))
        if not arg:  # heartbeat: nothing it needs
            return draw(valid_steps(st.just(c), op))
        line = line_of(request(req_id, op, wire, drop=arg))
        return Step(c, line, BAD_ARG, req_id, op, fault=(f"'{arg}'",))
    arg = draw(st.sampled_from(OP_ARGS[op]))
    bad = draw(BAD_VALUES[arg])
    # the bad value alone, or after a good one under the same key (the bad one, last, counts)
    dup = {arg: wire[arg]} if arg in wire and draw(st.booleans()) else None
    line = line_of(request(req_id, op, {**wire, arg: bad}, dup_before=dup))
    return Step(c, line, BAD_ARG, req_id, op, fault=FAULT_WORDS.get(arg, (f"'{arg}'",)))


@st.composite
def version_steps(draw: st.DrawFn, conn: st.SearchStrategy[int]) -> Step:
    """hello asking for a version the controller does not speak."""
    c = draw(conn)
    version = draw(st.one_of(st.integers(), BIG_INTS).filter(lambda v: v != 1))
    req_id = draw(IDS)
    line = line_of(request(req_id, "hello", {"version": version, "proxy": draw(st.sampled_from(NAMES))}))
    return Step(c, line, VERSION, req_id, "hello")


CONNS = st.integers(0, 1)


@st.composite
def proxy_api_sequences(draw: st.DrawFn) -> list[Step]:
    steps: list[Step] = []
    # Each connection starts somewhere: nothing said, hello done, or registered too.
    for c in (0, 1):
        start = draw(st.sampled_from(["nothing", "hello", "registered"]))
        if start != "nothing":
            steps.append(draw(valid_steps(st.just(c), "hello")))
        if start == "registered":
            steps.append(draw(valid_steps(st.just(c), "register")))
    steps += draw(st.lists(st.one_of(garbage_steps(CONNS), valid_steps(CONNS), valid_steps(CONNS), valid_steps(CONNS),
                                     mutated_steps(CONNS), mutated_steps(CONNS), version_steps(CONNS)),
                           max_size=30))
    if draw(st.integers(0, 9)) == 0:
        steps.insert(draw(st.integers(0, len(steps))), draw(oversize_steps(CONNS, MAX_LINE)))
    return [fit(s, MAX_LINE) for s in steps]


@dataclass(frozen=True)
class Expected:
    req_id: Any
    code: str | None = None  # None: ok
    result: Any = None  # the result, or a check of it
    fault: tuple[str, ...] = ()  # words one of which the message holds
    closes: bool = False


class ProxyApiModel:
    """What the server must answer, from the documents: hello and registration per connection here;
    what the service answers from ``oracle``, a SpliceService fed only what the valid requests ask
    (a second FakeService, or NoFlowsService for the daemon)."""

    def __init__(self, oracle: Any) -> None:
        self.oracle = oracle
        self.names: dict[int, str] = {}  # connection -> its proxy name (hello done)
        self.closed: set[int] = set()
        self.regs: dict[str, int | None] = {}  # proxy -> the connection it registered on (None: gone)

    def registered_here(self, conn: int) -> bool:
        name = self.names.get(conn)
        return name is not None and name in self.regs and self.regs[name] == conn

    def close(self, conn: int) -> None:
        self.closed.add(conn)
        name = self.names.pop(conn, None)
        if name is not None and self.regs.get(name) == conn:
            self.regs[name] = None  # a registration outlives its connection

    async def expect(self, s: Step) -> Expected:
        if s.kind == GARBAGE:
            return Expected(None, "bad_request")
        if s.kind == OVERSIZE:
            return Expected(None, "bad_request", fault=(f"longer than {MAX_LINE}",), closes=True)
        if s.kind in (UNKNOWN_OP, UNKNOWN_ARG):
            return Expected(s.req_id, "bad_request", fault=s.fault)
        name = self.names.get(s.conn)
        if s.op == "hello":
            if name is not None:
                return Expected(s.req_id, "bad_request")  # once per connection, whatever it asks
            if s.kind == VERSION:
                return Expected(s.req_id, "unsupported_version", result=[1], closes=True)
            if s.kind == BAD_ARG:
                return Expected(s.req_id, "bad_request", fault=s.fault)
            if s.args["proxy"] in self.names.values():
                return Expected(s.req_id, "conflict")
            self.names[s.conn] = s.args["proxy"]
            return Expected(s.req_id, result={"version": 1, "controller": "p4splice 0.1.0"})
        if name is None:
            return Expected(s.req_id, "bad_request", fault=("hello",))
        if s.op == "register":
            if s.kind == BAD_ARG:
                return Expected(s.req_id, "bad_request", fault=s.fault)
            return await self._call(s, "register", name, s.args["port"], s.args["mac"], s.args["heartbeat_ms"],
                                    s.args.get("ip"))
        if not self.registered_here(s.conn):
            return Expected(s.req_id, "not_registered")
        if s.kind == BAD_ARG:
            return Expected(s.req_id, "bad_request", fault=s.fault)
        if s.op == "bye":
            del self.regs[name]
            return await self._call(s, "bye", name)
        if s.op == "heartbeat":
            return await self._call(s, "heartbeat", name, *([s.args["quiescent"]] if "quiescent" in s.args else []))
        if s.op == "flows":
            return await self._call(s, "flows", name)
        if s.op == "splice":
            a = s.args
            return await self._call(s, "splice", name, a["flow"], a["a_c"], a["b_s"], a["a_s"], a["b_c"])
        return await self._call(s, s.op, name, s.args["flow"])

    async def _call(self, s: Step, method: str, *args: Any) -> Expected:
        try:
            answer = await getattr(self.oracle, method)(*args)
        except ApiError as exc:
            return Expected(s.req_id, exc.code)
        if method == "register":
            self.regs[args[0]] = s.conn
            return Expected(s.req_id, result={"heartbeat_ms": answer})
        if method == "heartbeat":
            return Expected(s.req_id, result=lambda r: set(r) == {"now_ms"} and same_json(r["now_ms"], int(r["now_ms"])))
        if method == "splice":
            return Expected(s.req_id, result={"state": "spliced", "deltas": answer.to_json()})
        results = {"splice_prepare": {"state": "holding"}, "splice_cancel": {"state": "proxied"}, "bye": {},
                   "flows": {"flows": answer}}
        return Expected(s.req_id, result=results.get(method, answer))


async def read_reply(raw: Raw, timeout: float = 5.0) -> dict[str, Any]:
    """The next reply, which must be one JSON object on a line (strictly JSON: no NaN, no
    Infinity). Events may come in between at any time (docs/proxy-api.md): they are checked and
    passed over."""
    while True:
        line = await asyncio.wait_for(raw.reader.readline(), timeout)
        assert line.endswith(b"\n"), f"no reply: the connection closed (got {line[:200]!r})"
        reply = strict_json(line)
        assert isinstance(reply, dict), reply
        if "event" not in reply:
            return reply
        assert "id" not in reply and set(reply) - {"event"} == EVENTS[reply["event"]], reply


def check_reply(reply: dict[str, Any], want: Expected) -> None:
    assert "id" in reply and same_json(reply["id"], want.req_id), f"id {reply.get('id')!r}, not {want.req_id!r}"
    if want.code is None:
        assert set(reply) == {"id", "ok", "result"} and reply["ok"] is True, reply
        assert isinstance(reply["result"], dict), reply
        if callable(want.result):
            assert want.result(reply["result"]), reply
        else:
            assert reply["result"] == json.loads(json.dumps(want.result)), reply
        return
    assert set(reply) == {"id", "ok", "error"} and reply["ok"] is False, reply
    error = reply["error"]
    assert isinstance(error, dict) and error.get("code") == want.code, f"{reply}: wanted {want.code}"
    assert error["code"] in ERROR_CODES and isinstance(error.get("message"), str) and error["message"], reply
    if want.code == "unsupported_version":
        assert error.get("supported") == want.result, reply
    else:
        assert set(error) == {"code", "message"}, reply
    if want.fault:
        assert any(word in error["message"] for word in want.fault), f"{error['message']!r} names none of {want.fault}"


async def send_line(raw: Raw, line: bytes) -> None:
    raw.writer.write(line)
    with contextlib.suppress(ConnectionError):  # a line over the limit: the server may hang up first
        await raw.writer.drain()


async def abandon(path: Path, lines: list[bytes]) -> None:
    """Write ``lines`` on a new connection and drop it at once, replies unread."""
    raw = await Raw.open(path)
    await send_line(raw, b"".join(lines))
    raw.writer.transport.abort()


def errors_logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [f"{r.name}: {r.getMessage()}" for r in caplog.records if r.levelno >= logging.ERROR]


async def play(path: Path, steps: list[Step], model: ProxyApiModel, notes: list[str]) -> list[Raw]:
    """The steps on two connections, each line answered before the next goes; then a valid request
    on each connection still open. Returns the connections (open or closed); ``notes`` gets what
    each step was, for ``hypothesis.event`` (which only the test's own thread may call)."""
    conns = [await Raw.open(path) for _ in (0, 1)]
    for step in steps:
        if step.conn in model.closed:
            continue
        raw = conns[step.conn]
        want = await model.expect(step)
        notes.append(f"{step.kind} {step.op}: {want.code or 'ok'}")
        await send_line(raw, step.line)
        check_reply(await read_reply(raw), want)
        if want.closes:
            assert await raw.closed(), "the connection stays open"
            model.close(step.conn)
    # The handlers live on: a valid request still gets its right answer.
    for c in (0, 1):
        if c not in model.closed:
            probe = Step(c, line_of({"id": "probe", "op": "flows"}), VALID, "probe", "flows")
            want = await model.expect(probe)
            await send_line(conns[c], probe.line)
            check_reply(await read_reply(conns[c]), want)
    return conns


def initial_flows(service: FakeService) -> None:
    service.add_flow("p1", FLOW_A, "established")
    service.add_flow("p1", FLOW_B, "holding")
    service.add_flow("p2", FLOW_A, "established")


@pytest.fixture
def proxy_sock(tmp_path: Path) -> Path:
    return tmp_path / "proxy.sock"


@FUZZ_SETTINGS
@given(proxy_api_sequences())
def test_the_proxy_api_answers_every_line_as_documented(
        proxy_sock: Path, caplog: pytest.LogCaptureFixture, steps: list[Step]) -> None:
    caplog.clear()
    service, shadow = FakeService(), FakeService()
    for s in (service, shadow):
        initial_flows(s)
    model = ProxyApiModel(shadow)
    notes: list[str] = []

    async def main() -> None:
        async with serving(proxy_sock, service) as server:
            conns = await play(proxy_sock, steps, model, notes)
            # The state is what the valid requests made.
            assert server.connected == frozenset(model.names.values())
            assert server.registered == frozenset(model.regs)
            assert service.table == shadow.table and service.calls == shadow.calls
            for raw in conns:
                await raw.close()
            await poll(lambda: not server._handlers and not server.connected, what="the handlers to end")
            # left: one supervisor per registration, nothing in flight
            await poll(lambda: len(server._tasks) == len(server.registered), what="the request tasks to end")

    run(main(), timeout=60.0)
    for note in notes:  # --hypothesis-show-statistics
        event(note)
    assert not errors_logged(caplog), errors_logged(caplog)[:3]


@FUZZ_SETTINGS
@given(st.lists(st.one_of(garbage_steps(st.just(0)), mutated_steps(st.just(0)), valid_steps(st.just(0), "heartbeat"),
                          valid_steps(st.just(0), "flow"), valid_steps(st.just(0), "flows"))
                .filter(lambda s: len(s.line) <= MAX_LINE), min_size=1, max_size=150),
       st.sampled_from(["nothing", "hello", "registered"]), st.booleans())
def test_the_proxy_api_answers_a_burst_of_lines_written_at_once(
        proxy_sock: Path, caplog: pytest.LogCaptureFixture, burst: list[Step], start: str, read: bool) -> None:
    """The lines in one write, more than may run at once: each gets its reply (matched by id:
    replies may come out of order), none is lost, and the tasks end with the connection -- also
    when the peer drops it without reading (``read`` false)."""
    caplog.clear()
    service, shadow = FakeService(), FakeService()
    for s in (service, shadow):
        initial_flows(s)
    model = ProxyApiModel(shadow)
    # unique ids, so that the replies can be told apart
    relabelled = []
    for i, s in enumerate(burst):
        if s.kind == GARBAGE:
            relabelled.append(s)
            continue
        wire = strict_json(s.line)
        assert isinstance(wire, dict)
        wire["id"] = f"b{i}"
        relabelled.append(Step(0, line_of(wire), s.kind, f"b{i}", s.op, s.args, s.fault))
    opening = []
    if start != "nothing":
        opening.append(Step(0, line_of({"id": 0, "op": "hello", "version": 1, "proxy": "p1"}), VALID, 0, "hello",
                            {"proxy": "p1"}))
    if start == "registered":
        args = {"port": 3, "mac": "02:00:00:00:00:0a", "heartbeat_ms": 30_000}
        opening.append(Step(0, line_of({"id": 0, "op": "register", **args}), VALID, 0, "register", args))

    async def main() -> None:
        async with serving(proxy_sock, service) as server:
            if not read:
                await abandon(proxy_sock, [s.line for s in opening + relabelled])
            else:
                raw = await Raw.open(proxy_sock)
                for step in opening:
                    await send_line(raw, step.line)
                    check_reply(await read_reply(raw), await model.expect(step))
                wanted = [await model.expect(s) for s in relabelled]
                await send_line(raw, b"".join(s.line for s in relabelled))
                replies = [await read_reply(raw) for _ in relabelled]
                by_id = {w.req_id: w for w in wanted if w.req_id is not None}
                nulls = [w for w in wanted if w.req_id is None]
                for reply in replies:
                    if reply.get("id") is None:
                        check_reply(reply, nulls.pop())
                    else:
                        check_reply(reply, by_id.pop(reply["id"]))
                assert not nulls and not by_id
                # the calls may have run in any order: compare them as multisets
                assert sorted(map(repr, service.calls)) == sorted(map(repr, shadow.calls))
                await raw.close()
            await poll(lambda: not server._handlers, what="the handler to end")
            await poll(lambda: len(server._tasks) == len(server.registered), what="the request tasks to end")
            # and the server still serves
            raw = await Raw.open(proxy_sock)
            check_reply(await raw.hello("p2"), Expected(0, result={"version": 1, "controller": "p4splice 0.1.0"}))
            await raw.close()

    run(main(), timeout=60.0)
    assert not errors_logged(caplog), errors_logged(caplog)[:3]


# --- the daemon: its admin socket, and its proxy API with the real service ---------------------------------

class LoopThread:
    """An event loop running in a thread of its own: one daemon serves every example of a test."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="fuzz-loop", daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise AssertionError(f"the scenario did not finish within {timeout}s") from None

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


@dataclass
class DaemonSide:
    daemon: Daemon
    thread: LoopThread

    def check_untouched(self) -> None:
        """The daemon's own proxy and flow are as they were (on its loop)."""
        d = self.daemon
        flow = d.orch.core.flows.get(flow_key(DAEMON_SPORT))
        assert flow is not None and flow.state.value == "proxied", flow
        assert d.orch.flow_states() == {"handshake": 0, "proxied": 1}
        assert d.proxy_api is not None and "proxy-1" in d.proxy_api.registered
        assert d.service.proxies["proxy-1"].port == P_PORT and not d.service.proxies["proxy-1"].dark


@pytest.fixture(scope="module")
def daemon_side(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonSide]:
    """A daemon on the in-process switch, with the proxy "proxy-1" registered on port 3 and one
    flow proxied through it, kept running on a loop in a thread while the module's tests last."""
    tmp = tmp_path_factory.mktemp("daemon")
    pipeline = switches.build_pipeline("inprocess", tmp / "build")
    sw = switches.open_switch(pipeline, (C_PORT, S_PORT, P_PORT), tmp, DEVICE, CPU)
    lab = Lab(sw, tmp)
    thread = LoopThread()
    ready: concurrent.futures.Future[Daemon] = concurrent.futures.Future()
    stop = asyncio.Event()

    async def keep() -> None:
        try:
            async with proxied(lab, heartbeat_ms=1000) as (d, _proxy):
                await established(lab, d, DAEMON_SPORT)
                ready.set_result(d)
                await stop.wait()
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc)
            raise

    keeping = asyncio.run_coroutine_threadsafe(keep(), thread.loop)
    try:
        yield DaemonSide(ready.result(60), thread)
    finally:
        thread.loop.call_soon_threadsafe(stop.set)
        with contextlib.suppress(Exception):
            keeping.result(30)
        thread.close()
        sw.close()


class NoFlowsService:
    """The daemon's service as the fuzzing proxies see it: they share the daemon's ports (proxy-1
    holds the proxy host's port 3), and none of them has a flow, because the daemon's one flow is
    on port 3."""

    def __init__(self) -> None:
        self.ports = {"proxy-1": P_PORT}

    async def register(self, proxy: str, port: int, mac: str, heartbeat_ms: int, ip: str | None = None) -> int:
        if any(p == port and other != proxy for other, p in self.ports.items()):
            raise ApiError("conflict", f"port {port} is taken")
        if self.ports.get(proxy, port) != port:
            raise ApiError("conflict", f"{proxy} is registered on another port")
        self.ports[proxy] = port
        return heartbeat_ms

    async def heartbeat(self, proxy: str, quiescent: Any = None) -> None:
        pass

    async def _no_flow(self, *args: Any) -> None:
        raise ApiError("not_found", "no such flow")

    splice_prepare = splice = splice_cancel = flow = _no_flow

    async def flows(self, proxy: str) -> list[Any]:
        return []

    async def bye(self, proxy: str) -> None:
        self.ports.pop(proxy, None)


@FUZZ_SETTINGS
@given(proxy_api_sequences())
def test_the_daemons_proxy_api_answers_every_line_as_documented(
        daemon_side: DaemonSide, caplog: pytest.LogCaptureFixture, steps: list[Step]) -> None:
    """The same sequences against the daemon's proxy API and its real service (ControllerService,
    the orchestrator, the switch): the same answers, and the daemon's own proxy and flow untouched."""
    caplog.clear()
    d = daemon_side.daemon
    model = ProxyApiModel(NoFlowsService())
    notes: list[str] = []

    async def main() -> None:
        server = d.proxy_api
        assert server is not None
        path = Path(d.config.proxy_socket)
        baseline = len(server._handlers)  # proxy-1's
        try:
            conns = await play(path, steps, model, notes)
            assert server.connected == frozenset(model.names.values()) | {"proxy-1"}
            assert server.registered == frozenset(model.regs) | {"proxy-1"}
            assert set(d.service.proxies) == set(model.oracle.ports)
            for raw in conns:
                await raw.close()
            await poll(lambda: len(server._handlers) == baseline, what="the handlers to end")
        finally:
            for name in NAMES:  # the next example starts without them
                server.unregister(name)
                if name in d.service.proxies:
                    await d.service.bye(name)
        daemon_side.check_untouched()

    daemon_side.thread.run(main(), timeout=60.0)
    for note in notes:
        event(note)
    assert not errors_logged(caplog), errors_logged(caplog)[:3]


ADMIN_OPS: dict[str, tuple[str, ...]] = {"status": (), "flows": (), "flow": ("flow",), "splice": ("flow", "wait")}
KNOWN_TEXT = f"{DAEMON_FLOW.client}-{DAEMON_FLOW.server}"
UNKNOWN = Flow("10.0.1.9", 9, "10.0.2.1", 80)
ADMIN_FLOWS = st.sampled_from([DAEMON_FLOW, UNKNOWN])
WAIT = st.one_of(st.floats(min_value=0.001, max_value=1e9), st.integers(1, 10**9))
# (never a number above 0, in any spelling: a wait that is right would hold the daemon's flow)
BAD_WAIT = st.one_of(NOT_TEXT.filter(lambda v: not isinstance(v, (int, float)) or isinstance(v, bool)),
                     st.text(max_size=8), st.integers(0, 600).map(str),
                     st.floats(max_value=0.0, allow_nan=False, allow_infinity=False), st.integers(max_value=0),
                     st.sampled_from(["10", "nan", "inf", "1e400", "-1"]),
                     st.sampled_from([Token("-0.0"), Token("0e5"), Token("1" * 400), Token("-" + "1" * 400)]))


def good_flow_text(value: object) -> bool:
    if not isinstance(value, str) or "-" not in value:
        return False
    client, _, server = value.partition("-")
    return good_endpoint(client) and good_endpoint(server)


ADMIN_BAD_FLOW = st.one_of(
    BAD_FLOW.filter(lambda v: not isinstance(v, str)),
    st.text(max_size=30).filter(lambda s: not good_flow_text(s)),
    st.builds(lambda e: f"{e}-10.0.2.1:80", BAD_ENDPOINT_TEXT.filter(lambda e: "-" not in e)),
    st.sampled_from([f"{KNOWN_TEXT}-x", KNOWN_TEXT.replace("-", " "), f" {KNOWN_TEXT}", "-", ""]),
)


@st.composite
def admin_valid_args(draw: st.DrawFn, op: str) -> tuple[dict[str, Any], Flow | None]:
    if op in ("status", "flows"):
        return {}, None
    flow = draw(ADMIN_FLOWS) if op == "flow" else UNKNOWN  # a splice of the real flow would hold it
    wire: dict[str, Any] = {"flow": draw(st.sampled_from([flow.to_json(), f"{flow.client}-{flow.server}"]))}
    if op == "splice" and draw(st.booleans()):
        wire["wait"] = draw(WAIT)
    return wire, flow


def not_an_admin_request(step: Step) -> bool:
    """Garbage for the proxy API may be a request for the admin socket, whose id is optional."""
    try:
        value = strict_json(step.line)
    except ValueError:
        return True
    return not (isinstance(value, dict) and value.get("op") in ADMIN_OPS)


@st.composite
def admin_steps(draw: st.DrawFn) -> Step:
    what = draw(st.sampled_from(["garbage", "valid", "valid", "op", "extra", "value", "value", "missing"]))
    if what == "garbage":
        return draw(garbage_steps(st.just(0)).filter(not_an_admin_request))
    op = draw(st.sampled_from(list(ADMIN_OPS)))
    wire, flow = draw(admin_valid_args(op))
    req_id = draw(IDS)
    with_id = draw(st.integers(0, 9)) > 0  # the admin socket's id is optional
    if what == "valid" or (what in ("value", "missing") and not ADMIN_OPS[op]):
        keys = ["id", "op", *wire] if with_id else ["op", *wire]
        dup = draw(st.one_of(st.none(), st.dictionaries(st.sampled_from(keys), ANY_VALUE, max_size=2)))
        line = line_of(request(req_id, op, wire, dup_before=dup, with_id=with_id))
        return Step(0, line, VALID, req_id if with_id else None, op, {"flow": flow})
    if what == "op":
        bad_op = draw(st.one_of(NOT_TEXT, st.text(max_size=12).filter(lambda s: s not in ADMIN_OPS),
                                st.sampled_from([op for op in OP_ARGS if op not in ADMIN_OPS])))
        return Step(0, line_of(request(req_id, bad_op, wire)), UNKNOWN_OP, req_id, op, fault=("op",))
    if what == "extra":
        key = draw(st.text(max_size=12).filter(lambda k: k not in ADMIN_OPS[op] and k not in ("id", "op")))
        line = line_of(request(req_id, op, wire, extra={key: draw(ANY_VALUE)}))
        return Step(0, line, UNKNOWN_ARG, req_id, op, fault=(key,))
    if what == "missing":
        return Step(0, line_of(request(req_id, op, wire, drop="flow")), BAD_ARG, req_id, op, fault=("flow",))
    arg = draw(st.sampled_from(ADMIN_OPS[op]))
    if arg == "wait":  # any flow, the real one too: a wrong wait is refused before anything is held
        wire["flow"] = draw(st.sampled_from([DAEMON_FLOW.to_json(), KNOWN_TEXT, UNKNOWN.to_json()]))
    bad = draw(ADMIN_BAD_FLOW if arg == "flow" else BAD_WAIT)
    return Step(0, line_of(request(req_id, op, {**wire, arg: bad})), BAD_ARG, req_id, op, fault=(arg,))


def admin_expected(s: Step) -> Expected:
    if s.kind == GARBAGE:
        return Expected(None, "bad_request")
    if s.kind == OVERSIZE:
        return Expected(None, "bad_request", fault=(f"longer than {admin_api.MAX_LINE}",), closes=True)
    if s.kind != VALID:
        return Expected(s.req_id, "bad_request", fault=s.fault)
    wire = DAEMON_FLOW.to_json()
    if s.op == "status":
        return Expected(s.req_id, result=lambda r: r["flows"] == {"handshake": 0, "proxied": 1}
                        and [p["name"] for p in r["proxies"]] == ["proxy-1"])
    if s.op == "flows":
        return Expected(s.req_id, result=lambda r: [(f["flow"], f["state"]) for f in r["flows"]] == [(wire, "proxied")])
    if s.args["flow"] == DAEMON_FLOW:
        return Expected(s.req_id, result=lambda r: r["flow"] == wire and r["state"] == "proxied")
    return Expected(s.req_id, "not_found")


@st.composite
def admin_sequences(draw: st.DrawFn) -> list[Step]:
    steps = draw(st.lists(admin_steps(), max_size=25))
    if draw(st.integers(0, 9)) == 0:
        steps.insert(draw(st.integers(0, len(steps))), draw(oversize_steps(st.just(0), admin_api.MAX_LINE)))
    return [fit(s, admin_api.MAX_LINE) for s in steps]


@FUZZ_SETTINGS
@given(admin_sequences(), st.integers(0, 4))
def test_the_admin_socket_answers_every_line_as_documented(
        daemon_side: DaemonSide, caplog: pytest.LogCaptureFixture, steps: list[Step], abandoned: int) -> None:
    """The admin socket of the daemon; at the end, now and then, ``abandoned`` lines on a
    connection dropped without reading a reply."""
    caplog.clear()
    d = daemon_side.daemon
    for step in steps:  # --hypothesis-show-statistics (events are recorded in the test's own thread)
        event(f"{step.kind} {step.op}: {admin_expected(step).code or 'ok'}")

    async def main() -> None:
        path = Path(d.config.admin_socket)
        raw = await Raw.open(path)
        try:
            for step in steps:
                want = admin_expected(step)
                await send_line(raw, step.line)
                check_reply(await read_reply(raw), want)
                if want.closes:
                    assert await raw.closed(), "the connection stays open"
                    raw = await Raw.open(path)  # and the next lines go on a new connection
            # The handler lives on: a valid request still gets its right answer.
            probe = Step(0, line_of({"id": "probe", "op": "status"}), VALID, "probe", "status")
            await send_line(raw, probe.line)
            check_reply(await read_reply(raw), admin_expected(probe))
        finally:
            await raw.close()
        if abandoned:
            await abandon(path, [s.line for s in steps[:abandoned]] + [probe.line])
        daemon_side.check_untouched()
        assert d.admin is not None
        await poll(lambda: not d.admin._handlers, what="the admin handlers to end")  # type: ignore[union-attr]

    daemon_side.thread.run(main(), timeout=60.0)
    assert not errors_logged(caplog), errors_logged(caplog)[:3]
