"""Run p4c's STF packet tests on p4sim, and optionally on BMv2 (a developer's tool).

    .venv/bin/python -m tests.p4sim.stf_check DIR [-j N] [--list] [--only SUBSTR] [--bmv2]

Every ``X.stf`` under DIR with an ``X.p4`` beside it is one test (p4c keeps them so in
``testdata/p4_16_samples``). The program is compiled by p4sim in a child process (a hang or crash
costs only that test); the STF's table entries, default actions, clone sessions and multicast
groups are turned into P4Runtime updates against the program's P4Info and applied to p4sim's
control-plane state; its packets are sent through the switch in-process, in file order, and what
came out is compared with the ``expect`` lines as p4c's STF runner compares them:

* per port, the frames that came out must be the expected ones in the same order (no order is
  implied between ports); ``*`` in an expectation matches any nibble; a frame may be longer than
  its expectation unless the expectation ends with ``$``;
* ``expect PORT`` with no data accepts whatever comes out on PORT;
* a frame on a port with no expectation left is a failure, if a ``packet`` or ``expect`` line
  names that port (p4c's runner gives the switch those interfaces only: frames sent to any
  other port are lost, unseen).

STF names (tables, actions, key fields) are BMv2 JSON names: a table or action may be given
without its control's prefix (``ipv4_da_lpm`` for ``ingress.ipv4_da_lpm``), a key field without
the parameter it hangs off (``ipv4.dstAddr`` for ``hdr.ipv4.dstAddr``), and a stack element as
``extra$0``. A name is looked up exactly, then as a suffix after a dot. STF priorities: a larger
number wins (p4c's runner hands BMv2 ``10000 - priority``, and BMv2's smallest value wins), which
is P4Runtime's order too.

Outcomes: ``pass``; ``refused`` (p4sim's compile error, classified as corpus_check classifies it);
``crash`` (p4sim raised something else, compiling or running); ``entry refused`` (p4sim's control
plane refused an STF command that the program's P4Info should take: not silent, but a failure);
``MISMATCH`` (p4sim compiled the program and sent other bytes: the worst outcome, listed one by
one); ``stf unsupported`` (this tool cannot express a command); ``no packets`` (nothing to check).

With ``--bmv2`` the same test also runs on p4c-bm2-ss + simple_switch_grpc (entries over P4Runtime
with p4c's own P4Info, frames over veth pairs; tests/p4sim/bmv2run.py), and the summary is over
the tests BMv2 passes. BMv2 pads frames to 60 bytes on the wire: zero bytes past an expectation
ending in ``$`` are taken for that padding there. A veth cannot carry a frame shorter than an
Ethernet header (14 bytes) either way: such input frames are padded with zeros for BMv2, and a
test that then fails on BMv2 is 'inconclusive' there (p4c's runner feeds pcap files instead).
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import json
import os
import re
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from p4.config.v1 import p4info_pb2
from p4.v1 import p4runtime_pb2

from tests.p4sim.corpus_check import error_kind

TIMEOUT = 180
#: how long a frame may take to come out of BMv2 (shorter than bmv2run's: a frame a veth drops,
#: shorter than 14 bytes, would cost that much every time)
BMV2_DEADLINE = 3.0
INSERT, MODIFY = p4runtime_pb2.Update.INSERT, p4runtime_pb2.Update.MODIFY
MT = p4info_pb2.MatchField


class StfError(Exception):
    """A command this tool cannot express (the test is 'stf unsupported')."""


class EntryRefused(Exception):
    """The switch's control plane refused an update."""


# --- the STF file ---------------------------------------------------------------------------------


@dataclass
class Command:
    line: int
    verb: str
    args: str


def parse_stf(text: str) -> list[Command]:
    """One Command per non-blank line, comments (from '#') dropped."""
    out = []
    for no, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        verb, _, rest = line.partition(" ")
        out.append(Command(no, verb.lower(), rest.strip()))
    return out


def _hex(data: str) -> str:
    return "".join(data.split()).lower()


def _bytes(data: str, where: str) -> bytes:
    h = _hex(data)
    if len(h) % 2 or not re.fullmatch(r"[0-9a-f]*", h):
        raise StfError(f"{where}: not whole bytes of hex: {data!r}")
    return bytes.fromhex(h)


def _int(text: str) -> int:
    t = text.strip().lower()
    if t in ("true", "false"):
        return int(t == "true")
    neg = t.startswith("-")
    t = t.lstrip("-")
    v = int(t, 0) if t.startswith(("0x", "0b", "0o")) else int(t, 10)
    return -v if neg else v


@dataclass
class Pattern:
    """A value with don't-care bits: value and mask over `bits` bits (mask 1 = must match)."""

    value: int
    mask: int | None  # None: every bit matters


def _pattern(text: str) -> Pattern:
    """``0x**01``/``0b1*0`` (wildcard digits), ``v&&&m``, or a plain number."""
    t = text.strip().lower()
    if "&&&" in t:
        v, m = t.split("&&&", 1)
        return Pattern(_int(v), _int(m))
    if "*" in t:
        if t.startswith("0x"):
            digits, bits, base = t[2:], 4, 16
        elif t.startswith("0b"):
            digits, bits, base = t[2:], 1, 2
        else:
            raise StfError(f"wildcard in a decimal number: {text!r}")
        value = mask = 0
        full = (1 << bits) - 1
        for d in digits:
            value <<= bits
            mask <<= bits
            if d != "*":
                value |= int(d, base)
                mask |= full
        return Pattern(value, mask)
    return Pattern(_int(t), None)


@dataclass
class KeySpec:
    name: str
    text: str


@dataclass
class Add:
    table: str
    priority: int | None
    keys: list[KeySpec]
    action: str
    args: list[tuple[str, str]]


def _split_action(text: str, where: str) -> tuple[str, list[tuple[str, str]]]:
    m = re.fullmatch(r"\s*([^\s(]+)\s*\((.*)\)\s*", text)
    if not m:
        raise StfError(f"{where}: cannot read the action call {text!r}")
    args = []
    for part in m.group(2).split(","):
        if not part.strip():
            continue
        name, sep, value = part.partition(":")
        if not sep:
            raise StfError(f"{where}: action argument without a name: {part!r}")
        args.append((name.strip(), value.strip()))
    return m.group(1), args


def parse_add(args: str, where: str) -> Add:
    table, _, rest = args.partition(" ")
    rest = rest.strip()
    paren = rest.find("(")
    if paren < 0:
        raise StfError(f"{where}: add without an action call")
    head, call = rest[:paren], rest[paren:]
    words = head.split()
    if not words:
        raise StfError(f"{where}: add without an action")
    action_name = words.pop()
    action, params = _split_action(action_name + call, where)
    priority = None
    if words and re.fullmatch(r"\d+", words[0]):
        priority = int(words.pop(0))
    keys = []
    for w in words:
        name, sep, value = w.rpartition(":")
        if not sep:
            raise StfError(f"{where}: key without a field name: {w!r}")
        keys.append(KeySpec(name, value))
    return Add(table, priority, keys, action, params)


# --- names ------------------------------------------------------------------------------------------


def _norm(name: str) -> str:
    """An STF name as P4Info spells it: stack elements ``x$0`` are ``x[0]``."""
    return re.sub(r"\$(\d+)", r"[\1]", name)


def _by_name(objs: Iterable, name: str, what: str, get: Callable = lambda o: o.preamble.name) -> object:
    """The object named ``name``: exactly, else the one whose name ends in ``.name``."""
    objs = list(objs)
    name = _norm(name).lstrip(".")
    for o in objs:
        if get(o).lstrip(".") == name:
            return o
    hits = [o for o in objs if get(o).endswith("." + name)]
    if len(hits) == 1:
        return hits[0]
    if len(hits) > 1:
        raise StfError(f"{what} {name!r} is ambiguous: {sorted(get(o) for o in hits)}")
    raise StfError(f"no {what} named {name!r}")


def _canon(value: int, bitwidth: int) -> bytes:
    """P4Runtime's canonical bytestring: the fewest bytes, at least one."""
    value &= (1 << bitwidth) - 1 if bitwidth else -1
    return value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")


class Translator:
    """STF commands as P4Runtime updates for one P4Info."""

    def __init__(self, p4info: p4info_pb2.P4Info) -> None:
        self.p4info = p4info
        self.actions = {a.preamble.id: a for a in p4info.actions}
        self.mc_nodes: list[tuple[int, list[int]]] = []  # handle -> (rid, ports)
        self.mc_groups: dict[int, list[int]] = {}  # group -> node handles
        self.mc_written: set[int] = set()
        self.sessions: set[int] = set()

    def table(self, name: str) -> p4info_pb2.Table:
        return _by_name(self.p4info.tables, name, "table")  # type: ignore[return-value]

    def action(self, table: p4info_pb2.Table, name: str) -> p4info_pb2.Action:
        refs = [self.actions[r.id] for r in table.action_refs]
        return _by_name(refs, name, f"action of table {table.preamble.name}")  # type: ignore[return-value]

    def table_action(self, table: p4info_pb2.Table, name: str, args: list[tuple[str, str]],
                     out: p4runtime_pb2.TableAction) -> None:
        action = self.action(table, name)
        out.action.action_id = action.preamble.id
        given = {_norm(k): v for k, v in args}
        for p in action.params:
            if p.name not in given:
                raise StfError(f"action {action.preamble.name}: no value for parameter {p.name}")
            out.action.params.add(param_id=p.id, value=_canon(_int(given.pop(p.name)), p.bitwidth))
        if given:
            raise StfError(f"action {action.preamble.name} has no parameter {sorted(given)}")

    def add(self, spec: Add) -> p4runtime_pb2.Update:
        table = self.table(spec.table)
        te = p4runtime_pb2.TableEntry(table_id=table.preamble.id)
        needs_priority = any(f.match_type in (MT.TERNARY, MT.RANGE, MT.OPTIONAL) for f in table.match_fields)
        for k in spec.keys:
            f: p4info_pb2.MatchField = _by_name(table.match_fields, k.name, f"key field of {table.preamble.name}",
                                                lambda o: o.name)  # type: ignore[assignment]
            self._match(f, k.text, te)
        if needs_priority:
            # P4Runtime needs a priority > 0 and STF's may be 0; shifting keeps the order
            te.priority = (spec.priority if spec.priority is not None else 0) + 1
        self.table_action(table, spec.action, spec.args, te.action)
        return p4runtime_pb2.Update(type=INSERT, entity=p4runtime_pb2.Entity(table_entry=te))

    @staticmethod
    def _match(f: p4info_pb2.MatchField, text: str, te: p4runtime_pb2.TableEntry) -> None:
        w = f.bitwidth
        full = (1 << w) - 1
        kind = f.match_type
        if kind == MT.RANGE:
            if "->" in text:
                lo, hi = (_int(x) for x in text.split("->", 1))
            else:
                lo = hi = _int(text)
            if (lo, hi) == (0, full):
                return
            fm = te.match.add(field_id=f.id)
            fm.range.low, fm.range.high = _canon(lo, w), _canon(hi, w)
            return
        if kind == MT.LPM and "/" in text:
            v, plen = text.split("/", 1)
            value, length = _int(v), int(plen)
            mask = full ^ ((1 << (w - length)) - 1)
        else:
            p = _pattern(text)
            value, mask = p.value, full if p.mask is None else p.mask & full
            length = -1
        value &= full
        if kind == MT.EXACT:
            if mask != full:
                raise StfError(f"key {f.name}: a wildcard on an exact field")
            te.match.add(field_id=f.id).exact.value = _canon(value, w)
        elif kind == MT.LPM:
            if length < 0:
                inv = full ^ mask
                if inv & (inv + 1):
                    raise StfError(f"key {f.name}: mask {mask:#x} is not a prefix")
                length = w - inv.bit_length()
            if length == 0:
                return
            fm = te.match.add(field_id=f.id)
            fm.lpm.value, fm.lpm.prefix_len = _canon(value & mask, w), length
        elif kind == MT.TERNARY:
            if mask == 0:
                return
            fm = te.match.add(field_id=f.id)
            fm.ternary.value, fm.ternary.mask = _canon(value & mask, w), _canon(mask, w)
        elif kind == MT.OPTIONAL:
            if mask == 0:
                return
            if mask != full:
                raise StfError(f"key {f.name}: a partial wildcard on an optional field")
            te.match.add(field_id=f.id).optional.value = _canon(value, w)
        else:
            raise StfError(f"key {f.name}: match kind {kind} is not supported")

    def setdefault(self, args: str, where: str) -> p4runtime_pb2.Update:
        table_name, _, call = args.partition(" ")
        table = self.table(table_name)
        name, params = _split_action(call, where)
        te = p4runtime_pb2.TableEntry(table_id=table.preamble.id, is_default_action=True)
        self.table_action(table, name, params, te.action)
        return p4runtime_pb2.Update(type=MODIFY, entity=p4runtime_pb2.Entity(table_entry=te))

    def mirroring_add(self, args: str) -> p4runtime_pb2.Update:
        words = args.split()
        if len(words) != 2:
            raise StfError(f"mirroring_add {args!r}: expected a session and a port")
        sid, port = int(words[0]), int(words[1])
        entity = p4runtime_pb2.Entity()
        cs = entity.packet_replication_engine_entry.clone_session_entry
        cs.session_id = sid
        cs.replicas.add(egress_port=port, instance=0)
        utype = MODIFY if sid in self.sessions else INSERT
        self.sessions.add(sid)
        return p4runtime_pb2.Update(type=utype, entity=entity)

    def multicast(self, verb: str, args: str) -> p4runtime_pb2.Update | None:
        """BMv2's PRE commands: groups of nodes, each node a rid and ports; the group as
        P4Runtime sees it is its nodes' (port, rid) pairs, written after each association."""
        words = [int(w) for w in args.split()]
        if verb == "mc_mgrp_create":
            self.mc_groups[words[0]] = []
            return None
        if verb == "mc_node_create":
            self.mc_nodes.append((words[0], words[1:]))
            return None
        group, handle = words[0], words[1]
        if group not in self.mc_groups or handle >= len(self.mc_nodes):
            raise StfError(f"mc_node_associate {args}: unknown group or node")
        self.mc_groups[group].append(handle)
        entity = p4runtime_pb2.Entity()
        mg = entity.packet_replication_engine_entry.multicast_group_entry
        mg.multicast_group_id = group
        for h in self.mc_groups[group]:
            rid, ports = self.mc_nodes[h]
            for port in ports:
                mg.replicas.add(egress_port=port, instance=rid)
        utype = MODIFY if group in self.mc_written else INSERT
        self.mc_written.add(group)
        return p4runtime_pb2.Update(type=utype, entity=entity)


# --- running a test ---------------------------------------------------------------------------------

Frames = list[tuple[int, bytes]]


@dataclass
class Script:
    """An STF file as steps: ('update', Update) or ('packet', (port, bytes)) in file order, and
    the expectations per port."""

    steps: list[tuple[str, object]] = field(default_factory=list)
    expected: dict[int, list[str]] = field(default_factory=dict)
    any_ports: set[int] = field(default_factory=set)
    ports: set[int] = field(default_factory=set)  # the switch's interfaces: every port named


def build_script(commands: list[Command], p4info: p4info_pb2.P4Info) -> Script:
    tr = Translator(p4info)
    s = Script()
    for c in commands:
        where = f"line {c.line}"
        if c.verb == "add":
            s.steps.append(("update", tr.add(parse_add(c.args, where))))
        elif c.verb == "setdefault":
            s.steps.append(("update", tr.setdefault(c.args, where)))
        elif c.verb == "packet":
            port, _, data = c.args.partition(" ")
            s.steps.append(("packet", (int(port), _bytes(data, where))))
            s.ports.add(int(port))
        elif c.verb == "expect":
            port, _, data = c.args.partition(" ")
            h = _hex(data)
            s.ports.add(int(port))
            if h:
                if not re.fullmatch(r"[0-9a-f*]*\$?", h):
                    raise StfError(f"{where}: bad expectation {data!r}")
                s.expected.setdefault(int(port), []).append(h)
            else:
                s.any_ports.add(int(port))
        elif c.verb == "wait":
            continue  # frames are processed one at a time here: nothing is ever in flight
        elif c.verb == "mirroring_add":
            s.steps.append(("update", tr.mirroring_add(c.args)))
        elif c.verb in ("mc_mgrp_create", "mc_node_create", "mc_node_associate"):
            u = tr.multicast(c.verb, c.args)
            if u is not None:
                s.steps.append(("update", u))
        else:
            raise StfError(f"{where}: command {c.verb!r} is not supported by this tool")
    return s


def frame_matches(expected: str, frame: bytes, pad_ok: bool = False) -> bool:
    """p4c's comparison: nibble by nibble, '*' anything, longer frames fine unless '$'."""
    got = frame.hex()
    exact = expected.endswith("$")
    want = expected.rstrip("$")
    if len(got) < len(want):
        return False
    if any(w != "*" and w != g for w, g in zip(want, got, strict=False)):
        return False
    if exact and len(got) > len(want):
        extra = got[len(want):]
        return pad_ok and len(frame) <= 60 and set(extra) <= {"0"}
    return True


def compare(script: Script, out: Frames, pad_ok: bool = False) -> str | None:
    """None if ``out`` meets the expectations, else what differs first."""
    got: dict[int, list[bytes]] = collections.defaultdict(list)
    for port, frame in out:
        got[port].append(frame)
    for port in sorted(set(got) | set(script.expected)):
        if port in script.any_ports or port not in script.ports:
            # p4c's runner gives the switch an interface for each port a packet or expect line
            # names; a frame sent anywhere else has nowhere to go and is not looked at
            continue
        want, have = script.expected.get(port, []), got.get(port, [])
        for i, (w, f) in enumerate(zip(want, have, strict=False)):
            if not frame_matches(w, f, pad_ok):
                return f"port {port} frame {i}: expected {w} got {f.hex()}"
        if len(have) != len(want):
            return f"port {port}: expected {len(want)} frames, got {len(have)}"
    return None


def run_p4sim(prog: Path, stf: Path) -> dict:
    """One test on p4sim, in this process: {'outcome', 'detail', 'out', 'counts'}."""
    from p4sim.compiler.driver import compile_file
    from p4sim.compiler.errors import CompileError
    from p4sim.runtime.entities import apply_update
    from p4sim.runtime.errors import P4RTError
    from tests.p4sim.harness import Sim

    commands = parse_stf(stf.read_text())
    try:
        compiled = compile_file(prog)
    except CompileError as e:
        return {"outcome": "refused", "detail": str(e).splitlines()[0] if str(e) else ""}
    except RecursionError:
        return {"outcome": "crash", "detail": "compile: RecursionError"}
    except Exception as e:  # noqa: BLE001 - a crash is an outcome here
        tb = traceback.extract_tb(e.__traceback__)[-1]
        return {"outcome": "crash",
                "detail": f"compile: {type(e).__name__} at {Path(tb.filename).name}:{tb.lineno}: {e}"[:300]}
    try:
        script = build_script(commands, compiled.p4info)
    except StfError as e:
        return {"outcome": "stf unsupported", "detail": str(e)}
    sim = Sim(compiled, cpu_port=None)
    out: Frames = []
    counts: list[int] = []
    for kind, step in script.steps:
        if kind == "update":
            try:
                apply_update(sim.state, step)  # type: ignore[arg-type]
            except P4RTError as e:
                return {"outcome": "entry refused", "detail": str(e)[:300]}
            continue
        port, frame = step  # type: ignore[misc]
        try:
            sent = sim.send(port, frame)
        except Exception as e:  # noqa: BLE001
            tb = traceback.extract_tb(e.__traceback__)[-1]
            return {"outcome": "crash",
                    "detail": f"run: {type(e).__name__} at {Path(tb.filename).name}:{tb.lineno}: {e}"[:300]}
        counts.append(len(sent))
        out.extend(sent)
    result = {"out": [(p, f.hex()) for p, f in out], "counts": counts}
    if not any(k == "packet" for k, _ in script.steps):
        return {"outcome": "no packets", "detail": "", **result}
    diff = compare(script, out)
    return {"outcome": "pass" if diff is None else "MISMATCH", "detail": diff or "", **result}


def _local_macs() -> set[bytes]:
    """The MAC address of every interface here: a frame from one of them is the kernel's own
    chatter (IPv6 router solicitations, MLD reports on the veths), not the switch's."""
    macs = set()
    for f in Path("/sys/class/net").glob("*/address"):
        try:
            macs.add(bytes.fromhex(f.read_text().strip().replace(":", "")))
        except (OSError, ValueError):
            continue
    # lo's is all zeros, which test frames use often; no kernel chatter comes from it
    macs.discard(bytes(6))
    return macs


def _collect(bm: object, until: float, want: int | None, got: Frames) -> None:
    """Frames out of BMv2's ports into ``got``, as they are (bmv2run's ports drop every IPv6
    frame as chatter and cut IPv4 frames at the IP length, and STF tests send both), until
    ``want`` of them came (None: until ``until``)."""
    import selectors
    import socket
    import time

    from tests.controller.switches import PACKET_OUTGOING

    sel = selectors.DefaultSelector()
    for port in bm.switch.ports.values():  # type: ignore[attr-defined]
        sel.register(port.sock, selectors.EVENT_READ, port)
    local = _local_macs()
    try:
        while want is None or len(got) < want:
            left = until - time.monotonic()
            if left <= 0:
                return
            for key, _ in sel.select(left):
                port = key.data
                while True:
                    try:
                        data, addr = port.sock.recvfrom(65535, socket.MSG_DONTWAIT)
                    except BlockingIOError:
                        break
                    if addr[2] == PACKET_OUTGOING or data[6:12] in local:
                        continue
                    got.append((port.port_num, data))
    finally:
        sel.close()


def run_bmv2(prog: Path, stf: Path, workdir: Path, counts: list[int] | None) -> dict:
    """One test on BMv2 (p4c-bm2-ss, simple_switch_grpc over veths): {'outcome', 'detail', 'out'}."""
    import time

    from tests.p4sim import bmv2run

    commands = parse_stf(stf.read_text())
    ports = sorted({int(c.args.split()[0]) for c in commands if c.verb in ("packet", "expect")} | {0})
    try:
        bm = bmv2run.Bmv2Program(prog, workdir, ports)
    except Exception as e:  # noqa: BLE001 - p4c refusing the program is an outcome
        lines = [x.strip() for x in str(e).strip().splitlines()] or [type(e).__name__]
        # p4c puts the cause on the line after '---- Actual error:' when it has one
        actual = [lines[i + 1] for i, x in enumerate(lines[:-1]) if x.startswith("---- Actual error")]
        errors = actual or [x for x in lines if "error:" in x]
        return {"outcome": "bmv2 cannot run", "detail": (errors[0] if errors else lines[-1])[:200]}
    try:
        assert bm.client is not None
        try:
            script = build_script(commands, bm.client.info.proto)
        except StfError as e:
            return {"outcome": "stf unsupported", "detail": str(e)}
        out: Frames = []
        n = 0
        padded = False
        for kind, step in script.steps:
            if kind == "update":
                try:
                    bm.client.write(step.type, step.entity)  # type: ignore[attr-defined]
                except Exception as e:  # noqa: BLE001
                    return {"outcome": "entry refused", "detail": str(e)[:300]}
                continue
            port, frame = step  # type: ignore[misc]
            want = counts[n] if counts is not None and n < len(counts) else None
            n += 1
            if len(frame) < 14:
                # an AF_PACKET socket will not send less than an Ethernet header (EINVAL); p4c's
                # runner feeds pcap files and has no such limit. Zeros after the frame are
                # payload to most programs, and expectations are prefixes unless they end in $
                frame += bytes(14 - len(frame))
                padded = True
            bm.switch.ports[port].inject(frame)
            got: Frames = []
            # with p4sim's count: until that many came out; without: a quiet spell
            _collect(bm, time.monotonic() + (BMV2_DEADLINE if want is not None else 1.0), want, got)
            out.extend(got)
        _collect(bm, time.monotonic() + bmv2run.QUIET, None, out)
        diff = compare(script, out, pad_ok=True)
        if diff is None:
            outcome = "pass"
        elif padded or any(len(w.rstrip("$")) < 28 for ws in script.expected.values() for w in ws):
            # the padding may be why (a parser that now finds enough bytes), or a frame the
            # switch sent was shorter than 14 bytes, which a veth drops: BMv2 cannot judge this
            outcome = "inconclusive"
        else:
            outcome = "fail"
        note = " (runts padded to 14 bytes)" if padded else ""
        return {"outcome": outcome, "detail": (diff or "") + note,
                "out": [(p, f.hex()) for p, f in out]}
    finally:
        bm.close()


# --- the corpus -------------------------------------------------------------------------------------


@dataclass
class Result:
    name: str
    outcome: str
    detail: str = ""
    bmv2: str = ""
    bmv2_detail: str = ""


def _child(stf: Path, bmv2: bool) -> Result:
    args = [sys.executable, "-m", "tests.p4sim.stf_check", "--run-one", str(stf)] + (["--bmv2"] if bmv2 else [])
    try:
        r = subprocess.run(args, capture_output=True, text=True, timeout=TIMEOUT * (2 if bmv2 else 1),
                           cwd=Path(__file__).resolve().parents[2])
    except subprocess.TimeoutExpired:
        return Result(stf.stem, "crash", "timeout")
    try:
        d = json.loads(r.stdout.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        return Result(stf.stem, "crash", (r.stderr.strip().splitlines() or ["no output"])[-1][:300])
    return Result(stf.stem, d["outcome"], d.get("detail", ""), d.get("bmv2", ""), d.get("bmv2_detail", ""))


def _same_frames(ours: list, theirs: list) -> bool:
    """p4sim's and BMv2's frames (port, hex) alike, BMv2's padding to 60 bytes aside."""
    def padded(f: str) -> str:
        return f + "00" * (60 - len(f) // 2) if len(f) < 120 else f

    return len(ours) == len(theirs) and all(
        p == q and padded(f) == padded(g) for (p, f), (q, g) in zip(ours, theirs, strict=True))


def run_one(stf: Path, bmv2: bool) -> dict:
    prog = stf.with_suffix(".p4")
    # the program's own folder is where its #includes are found
    os.chdir(prog.parent)
    res = run_p4sim(prog, stf)
    d = {"outcome": res["outcome"], "detail": res["detail"]}
    if bmv2:
        with tempfile.TemporaryDirectory(prefix="stf-bmv2-") as tmp:
            b = run_bmv2(prog, stf, Path(tmp), res.get("counts"))
        d["bmv2"], d["bmv2_detail"] = b["outcome"], b["detail"]
        if res["outcome"] == "MISMATCH" and b["outcome"] == "pass":
            d["detail"] += f" | BMv2 sent {b['out']}"
        elif res["outcome"] == "MISMATCH" and b.get("out") is not None:
            # the file's expectation is off (an older p4c's, say): what matters is BMv2's bytes
            same = _same_frames(res["out"], b["out"])
            d["detail"] += " | BMv2 fails it too, " + ("sending the same" if same else f"sending {b['out']}")
    return d


P4SIM_FAILS = ("refused", "crash", "entry refused", "MISMATCH", "stf unsupported")


def is_v1model(prog: Path) -> bool:
    text = prog.read_text(errors="replace")
    return "v1model.p4" in text or "V1Switch" in text


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="stf_check", description=__doc__.split("\n\n")[0])
    ap.add_argument("corpus", type=Path, nargs="?")
    ap.add_argument("-j", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--list", action="store_true", help="one line per test")
    ap.add_argument("--only", help="tests whose file name contains this")
    ap.add_argument("--bmv2", action="store_true", help="run each test on BMv2 too")
    ap.add_argument("--run-one", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.run_one is not None:
        print(json.dumps(run_one(args.run_one.resolve(), args.bmv2)))
        return 0
    if args.corpus is None:
        ap.error("give the corpus folder")
    stfs = sorted(s.resolve() for s in args.corpus.rglob("*.stf")
                  if s.with_suffix(".p4").exists() and is_v1model(s.with_suffix(".p4"))
                  and (not args.only or args.only in s.name))
    # veth pairs and BMv2's ports are per test; two BMv2 runs at once would share nothing, but
    # the machine has two cores and BMv2 is timing-sensitive: one at a time when it is on
    jobs = 1 if args.bmv2 else args.j
    with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
        results = list(pool.map(lambda s: _child(s, args.bmv2), stfs))
    if args.list:
        for r in results:
            extra = f"  [BMv2 {r.bmv2}{': ' + r.bmv2_detail if r.bmv2_detail else ''}]" if args.bmv2 else ""
            print(f"{r.outcome:16} {r.name}  {r.detail}{extra}")
        print()
    by = collections.Counter(r.outcome for r in results)
    print(f"{len(results)} STF tests")
    if args.bmv2:
        ok = [r for r in results if r.bmv2 == "pass"]
        print(f"BMv2 passes {len(ok)}; of those, p4sim:")
        by_ok = collections.Counter(r.outcome for r in ok)
        for k in ("pass", *P4SIM_FAILS, "no packets"):
            print(f"  {k:16} {by_ok[k]:4}  {100 * by_ok[k] / max(len(ok), 1):5.1f}%")
        bm = collections.Counter(r.bmv2 for r in results if r.bmv2 != "pass")
        print("BMv2 does not pass: " + ", ".join(f"{k} {n}" for k, n in bm.most_common()))
        unsure = [r for r in results if r.bmv2 == "inconclusive"]
        if unsure:
            by_unsure = collections.Counter(r.outcome for r in unsure)
            print("  inconclusive on BMv2 (runt frames over veth), p4sim: "
                  + ", ".join(f"{k} {n}" for k, n in by_unsure.most_common()))
        p4sim_only = [r.name for r in results if r.outcome == "pass" and r.bmv2 != "pass"]
        if p4sim_only:
            print(f"  p4sim passes, BMv2 does not: {' '.join(p4sim_only)}")
    print("p4sim over all tests:")
    for k in ("pass", *P4SIM_FAILS, "no packets"):
        print(f"  {k:16} {by[k]:4}  {100 * by[k] / max(len(results), 1):5.1f}%")
    mism = [r for r in results if r.outcome == "MISMATCH"]
    if mism:
        print("\nSILENT MISMATCHES:")
        for r in mism:
            bm_note = f" (BMv2: {r.bmv2})" if args.bmv2 else ""
            print(f"  {r.name}{bm_note}: {r.detail}")
    for outcome, classify in (("refused", error_kind), ("crash", lambda d: d), ("entry refused", lambda d: d),
                              ("stf unsupported", lambda d: re.sub(r"^line \d+: ", "", d))):
        kinds = collections.Counter(classify(r.detail) for r in results if r.outcome == outcome)
        if kinds:
            print(f"\n{outcome}, by kind:")
            for k, n in kinds.most_common():
                print(f"  {n:4}  {k}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
