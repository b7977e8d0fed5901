"""splicectl: operate a splice switch over P4Runtime (status, pipeline, routes, services, flows, counters).

Commands work against any P4Runtime server (p4sim, BMv2's simple_switch_grpc). Read-only
commands never arbitrate (see cli_switch.py), so running them beside the controller is safe.
``run`` and ``splice`` belong to the controller daemon and its admin API.

Output is an aligned table for people, or one JSON document with ``--json``. Every failure is
one line on stderr, ``splicectl: error: ...``, with exit status 2 for bad input (usage, a bad
prefix or MAC, a bad config file) and 1 for everything else (switch unreachable, write refused).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import importlib
import ipaddress
import json
import logging
import os
import re
import sys
import tomllib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from .argtypes import flow_text, positive_float
from .config import DEVICE_CONFIG_FILES, P4INFO_FILE
from .files import MAX_CONFIG, MAX_DEVICE_CONFIG, MAX_P4INFO, read_bounded

PROG = "splicectl"

DEFAULTS: dict[str, Any] = {
    "grpc_addr": "127.0.0.1:9559",
    "device_id": 1,
    "election_id": 1,
    "role": "",
    "p4info": None,
    "timeout": 5.0,
    "json": False,
    "tls_ca": None,
    "tls_cert": None,
    "tls_key": None,
    "tls_server_name": None,
    "cpu_port": 255,
    "target": "p4sim",
}
_CONFIG_TYPES: dict[str, tuple[type, ...]] = {
    "grpc_addr": (str,), "device_id": (int,), "election_id": (int,), "role": (str,), "p4info": (str,),
    "timeout": (int, float), "json": (bool,), "tls_ca": (str,), "tls_cert": (str,), "tls_key": (str,),
    "tls_server_name": (str,), "cpu_port": (int,), "target": (str,),
}
T = TypeVar("T")
BUILD = Path("build")
TARGET_CONFIGS = {target: BUILD / name for target, name in DEVICE_CONFIG_FILES.items()}
DEFAULT_P4INFO = BUILD / P4INFO_FILE


class CliError(Exception):
    """Reported as ``splicectl: error: <message>``; exit status ``code``."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def usage_error(message: str) -> CliError:
    return CliError(message, 2)


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (raised, printed by main) instead of usage + exit."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise usage_error(f"{message} (see '{self.prog} --help')")


# --- parsing ----------------------------------------------------------------------------------------

def _int(text: str) -> int:
    """An int in decimal or 0x hex (cookies, election ids)."""
    try:
        return int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None


def _port(text: str) -> int:
    value = _int(text)
    if not 0 <= value <= 511:
        raise argparse.ArgumentTypeError(f"{value} is not a switch port (0..511)")
    return value


def _common_options(skip: Sequence[str] = ()) -> argparse.ArgumentParser:
    """Global options, accepted before or after the command. Defaults are SUPPRESS so an option
    given before the command is not overwritten by the subcommand's unset copy."""
    p = OneLineParser(add_help=False, argument_default=argparse.SUPPRESS)
    g = p.add_argument_group("switch options")
    g.add_argument("--grpc-addr", metavar="HOST:PORT", help=f"P4Runtime server (default {DEFAULTS['grpc_addr']})")
    g.add_argument("--device-id", type=_int, metavar="N", help="P4Runtime device id (default 1)")
    g.add_argument("--election-id", type=_int, metavar="N",
                   help="election id for writes (default 1); reads never arbitrate")
    g.add_argument("--role", metavar="NAME", help="P4Runtime role (default: the default role)")
    if "p4info" not in skip:
        g.add_argument("--p4info", metavar="FILE", help="P4Info to use instead of the switch's own")
    if "config" not in skip:
        g.add_argument("--config", metavar="FILE", dest="config_file",
                       help="TOML or JSON file with defaults for these options (same names, _ or -)")
    g.add_argument("--timeout", type=positive_float, metavar="SECONDS", help="per RPC and connect (default 5)")
    g.add_argument("--json", action="store_true", help="machine-readable output")
    g.add_argument("--tls-ca", metavar="FILE", help="root certificates: use TLS")
    g.add_argument("--tls-cert", metavar="FILE", help="client certificate chain (mutual TLS)")
    g.add_argument("--tls-key", metavar="FILE", help="client private key (mutual TLS)")
    g.add_argument("--tls-server-name", metavar="NAME", help="name to check the server certificate against")
    g.add_argument("-v", "--verbose", action="count", help="log the client library (-vv: debug)")
    return p


def build_parser() -> argparse.ArgumentParser:
    common = _common_options()
    parser = OneLineParser(prog=PROG, parents=[common],
                     description="Operate a splice switch over P4Runtime. See docs/splicectl.md.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=OneLineParser)

    def leaf(container: Any, name: str, help_text: str, parents: Sequence[argparse.ArgumentParser] = (common,),
             **kw: Any) -> argparse.ArgumentParser:
        return container.add_parser(name, help=help_text, description=help_text, parents=list(parents), **kw)

    def actions(name: str, help_text: str) -> Any:
        """A command made of actions (``routes add|del|list``): where its actions are added."""
        return sub.add_parser(name, help=help_text).add_subparsers(
            dest="action", metavar="ACTION", required=True, parser_class=OneLineParser)

    leaf(sub, "status", "connection, arbitration, pipeline and table occupancy")

    psub = actions("pipeline", "push or show the forwarding pipeline")
    push = leaf(psub, "push", "push P4Info + device config (SetForwardingPipelineConfig) and the CPU clone session",
                parents=(_common_options(skip=("p4info", "config")),))
    push.add_argument("--p4info", dest="push_p4info", metavar="FILE", help=f"P4Info (default {DEFAULT_P4INFO})")
    push.add_argument("--config", dest="device_config", metavar="FILE",
                      help="device config (default build/splice.p4sim.json, or build/splice.json with --target bmv2)")
    push.add_argument("--target", choices=sorted(TARGET_CONFIGS), help="which default device config (default p4sim)")
    push.add_argument("--cookie", type=_int, help="pipeline cookie (default: derived from the two files)")
    push.add_argument("--cpu-port", type=_port, help="CPU port of the clone session (default 255)")
    push.add_argument("--no-clone-session", action="store_true", help="do not install the CPU clone session")
    show = leaf(psub, "show", "the pipeline the switch runs: program, cookie, tables, counters")
    show.add_argument("--save-p4info", metavar="FILE", help="also write the switch's P4Info (text format)")

    rsub = actions("routes", "the routes table (LPM)")
    radd = leaf(rsub, "add", "route PREFIX out of PORT with these MACs")
    radd.add_argument("prefix", metavar="PREFIX", help="IPv4 prefix, e.g. 10.0.1.0/24 (a bare address is /32)")
    radd.add_argument("port", metavar="PORT", type=_port, help="egress port")
    radd.add_argument("--smac", required=True, help="source MAC to write")
    radd.add_argument("--dmac", required=True, help="destination MAC to write")
    radd.add_argument("--replace", action="store_true", help="modify the route if it exists")
    rdel = leaf(rsub, "del", "remove the route of PREFIX")
    rdel.add_argument("prefix", metavar="PREFIX")
    leaf(rsub, "list", "every route")

    ssub = actions("services", "the services table (proxied servers)")
    sadd = leaf(ssub, "add", "proxy connections to ADDR:PORT through the host on --proxy-port")
    sadd.add_argument("server", metavar="ADDR:PORT")
    sadd.add_argument("--proxy-port", type=_port, required=True, metavar="N", help="switch port of the proxy host")
    sadd.add_argument("--replace", action="store_true", help="modify the service if it exists")
    sdel = leaf(ssub, "del", "stop proxying ADDR:PORT (connections already set up keep their entries)")
    sdel.add_argument("server", metavar="ADDR:PORT")
    leaf(ssub, "list", "every proxied service")

    leaf(sub, "flows", "the flows table: legs, actions, deltas, counters, grouped per connection")
    counters = leaf(sub, "counters", "malformed packets by reason, flow totals and any other counters")
    counters.add_argument("--all", action="store_true", help="show zero cells too")

    splice = leaf(sub, "splice", "splice the proxy out of FLOW (needs the running controller)")
    splice.add_argument("flow", metavar="FLOW", type=flow_text, help="CLIENT:PORT-SERVER:PORT")
    splice.add_argument("--admin-socket", metavar="PATH",
                        help="the daemon's admin socket (default: [controller.admin] socket of --config, "
                             "else /run/p4splice/admin.sock)")
    splice.add_argument("--wait", type=positive_float, default=10.0, metavar="SECONDS",
                        help="how long the proxy may take to drain and report (default 10)")
    # run's options (and its --help) are the daemon's own: everything after 'run' goes to it
    leaf(sub, "run", "run the controller daemon (arguments after 'run' go to it)", add_help=False)
    return parser


# --- configuration ------------------------------------------------------------------------------

def load_config_file(path: str) -> dict[str, Any]:
    """Defaults from a TOML or JSON file. Sections (tables) are left to other tools (the daemon);
    a ``[splicectl]`` section, if any, is read like the top level."""
    try:
        raw = read_bounded(path, MAX_CONFIG)
    except OSError as e:
        raise usage_error(f"cannot read config file {path}: {e.strerror or e}") from None
    try:
        if path.endswith(".json"):
            data = json.loads(raw)
        else:
            data = tomllib.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise usage_error(f"config file {path}: {' '.join(str(e).split())}") from None
    if not isinstance(data, dict):
        raise usage_error(f"config file {path}: expected a table of options")
    section = data.get("splicectl")
    merged = {k: v for k, v in data.items() if not isinstance(v, dict)}
    if isinstance(section, dict):
        merged |= section
    out: dict[str, Any] = {}
    for key, value in merged.items():
        name = key.replace("-", "_")
        if name not in _CONFIG_TYPES:
            raise usage_error(f"config file {path}: unknown option {key!r} (known: {', '.join(sorted(_CONFIG_TYPES))})")
        types = _CONFIG_TYPES[name]
        if isinstance(value, bool) and bool not in types or not isinstance(value, types):
            raise usage_error(f"config file {path}: {key} must be {' or '.join(t.__name__ for t in types)}")
        out[name] = value
    return out


def resolve_options(args: argparse.Namespace) -> argparse.Namespace:
    """Command line over config file over built-in defaults, into ``args``."""
    config_path = getattr(args, "config_file", None)
    config = load_config_file(config_path) if config_path else {}
    for key, default in DEFAULTS.items():
        if key in ("cpu_port", "target"):
            continue  # pipeline push's own options, resolved there
        if getattr(args, key, None) is None:
            setattr(args, key, config.get(key, default))
    args.config_data = config
    args.config_file = config_path
    if getattr(args, "verbose", None) is None:
        args.verbose = 0
    if args.command == "pipeline":
        for key in ("cpu_port", "target"):
            if getattr(args, key, None) is None:
                setattr(args, key, config.get(key, DEFAULTS[key]))
    if not 1 <= args.election_id < 1 << 128:
        raise usage_error(f"--election-id {args.election_id} must be in 1..2**128-1")
    if args.device_id < 0 or args.device_id >= 1 << 64:
        raise usage_error(f"--device-id {args.device_id} is out of range")
    return args


# --- output -------------------------------------------------------------------------------------

@dataclass
class Output:
    """What a command prints: ``data`` with --json, else ``text``."""

    data: dict[str, Any]
    text: str = ""
    lines: list[str] = field(default_factory=list)


_NUMBER = re.compile(r"[+-]?\d+(\.\d+)?s?")


def render_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], indent: str = "") -> str:
    """Aligned columns; a column whose cells are all numbers (or blank) is right-aligned."""
    cells = [[("" if c is None else str(c)) for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, c in enumerate(row):
            widths[i] = max(widths[i], len(c))
    def number(c: Any) -> bool:
        return isinstance(c, int | float) or (isinstance(c, str) and _NUMBER.fullmatch(c) is not None)

    numeric = [all(number(r[i]) or r[i] in (None, "", "-") for r in rows) and any(number(r[i]) for r in rows)
               for i in range(len(headers))]

    def line(items: Sequence[str]) -> str:
        parts = [c.rjust(widths[i]) if numeric[i] else c.ljust(widths[i]) for i, c in enumerate(items)]
        return (indent + "  ".join(parts)).rstrip()

    out = [line([h.upper() for h in headers])]
    out += [line(r) for r in cells]
    return "\n".join(out)


def _kv(pairs: Sequence[tuple[str, Any]]) -> str:
    width = max(len(k) for k, _ in pairs)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in pairs)


# --- helpers on inputs --------------------------------------------------------------------------

def parse_endpoint(text: str) -> tuple[str, int]:
    """``ADDR:PORT`` (IPv4) as (address, port)."""
    addr, sep, port = text.rpartition(":")
    if not sep or not addr:
        raise usage_error(f"expected ADDR:PORT, got {text!r}")
    try:
        ipaddress.IPv4Address(addr)
    except ValueError:
        raise usage_error(f"not an IPv4 address: {addr!r} (in {text!r})") from None
    if not port.isdigit() or not 1 <= int(port) <= 0xFFFF:
        raise usage_error(f"not a TCP port 1-65535: {port!r} (in {text!r})")
    return addr, int(port)


def _target(args: argparse.Namespace):  # noqa: ANN202 - cli_switch.Target, imported late
    from .cli_switch import Target

    return Target(args.grpc_addr, args.device_id, args.election_id, args.role or "", args.timeout,
                  args.tls_ca, args.tls_cert, args.tls_key, args.tls_server_name)


def _client(args: argparse.Namespace):  # noqa: ANN202
    from .cli_switch import SwitchClient

    return SwitchClient(_target(args), args.p4info)


async def _splice_index(client: Any) -> Any:
    """The P4Index, checked to be the splice program's (every splice-specific command needs it)."""
    from .dataplane import check_p4info

    index = await client.index()
    problems = check_p4info(index)
    if problems:
        more = f" (and {len(problems) - 2} more)" if len(problems) > 2 else ""
        raise CliError(f"the pipeline is not the splice program: {'; '.join(problems[:2])}{more}")
    return index


@asynccontextmanager
async def _splice_switch(args: argparse.Namespace) -> AsyncIterator[tuple[Any, Any]]:
    """``(client, index)``: the switch, found reachable, and the P4Index of its splice program."""
    async with _client(args) as client:
        await client.capabilities()
        yield client, await _splice_index(client)


async def _read_entries(args: argparse.Namespace, table: str, parse: Callable[[Any, Any], T]) -> list[T]:
    """Every entry of ``table``, each through ``parse(index, entry)``."""
    from .p4rt import TableEntry

    async with _splice_switch(args) as (client, index):
        return [parse(index, e) for e in await client.read(TableEntry(table))]


def _fmt_cookie(cookie: int | None) -> str:
    return "none" if cookie is None else f"{cookie:#x}"


def _describe_device_config(data: bytes) -> dict[str, Any]:
    """What kind of device config this is (p4sim's program or BMv2 JSON), from its first bytes."""
    info: dict[str, Any] = {"bytes": len(data), "kind": "unknown", "program": None}
    if not data:
        info["kind"] = "none"
        return info
    try:
        doc = json.loads(data)
    except ValueError:
        return info
    if isinstance(doc, dict) and doc.get("format") == "p4sim-program":
        info |= {"kind": f"p4sim-program v{doc.get('version')}", "program": doc.get("source")}
    elif isinstance(doc, dict) and "__meta__" in doc:
        meta = doc.get("__meta__") or {}
        info |= {"kind": "bmv2 JSON", "program": doc.get("program"), "compiler": meta.get("compiler")}
    return info


# --- commands -----------------------------------------------------------------------------------

async def cmd_status(args: argparse.Namespace) -> Output:
    from p4.v1 import p4runtime_pb2 as pb

    from .dataplane import CPU_CLONE_SESSION_ID, check_p4info
    from .p4rt import CloneSessionEntry, P4Index, TableEntry

    async with _client(args) as client:
        version = await client.capabilities()
        arb = await client.probe_arbitration()
        config = await client.pipeline(pb.GetForwardingPipelineConfigRequest.ALL)
        has_pipeline = config.HasField("p4info") and bool(config.p4info.tables or config.p4info.actions)
        data: dict[str, Any] = {
            "switch": {"address": args.grpc_addr, "device_id": args.device_id, "p4runtime": version,
                       "reachable": True},
            "arbitration": {"role": args.role or "", "known": arb is not None,
                            "primary": arb.primary if arb else None,
                            "highest_election_id": arb.election_id if arb else None,
                            "status": arb.code if arb else None},
            "pipeline": None, "tables": [], "clone_session": None,
        }
        if has_pipeline:
            index = await client.index() if args.p4info else client.use_index(P4Index(config.p4info))
            cookie = config.cookie.cookie if config.HasField("cookie") else None
            dev = _describe_device_config(config.p4_device_config)
            problems = check_p4info(index)
            data["pipeline"] = {"cookie": cookie, "arch": config.p4info.pkg_info.arch or None,
                                "name": config.p4info.pkg_info.name or dev["program"],
                                "device_config": dev["kind"], "splice_program": not problems,
                                "schema_problems": problems}
            for t in index.tables:
                entries = await client.read(TableEntry(t.name))
                data["tables"].append({"table": t.name, "alias": t.alias, "entries": len(entries), "size": t.size})
            if not problems:
                try:
                    sessions = await client.read(CloneSessionEntry(CPU_CLONE_SESSION_ID))
                    data["clone_session"] = {"session_id": CPU_CLONE_SESSION_ID, "present": bool(sessions),
                                             "ports": [r.port for s in sessions for r in s.replicas]}
                except Exception as e:  # noqa: BLE001 - servers that cannot read PRE entries
                    data["clone_session"] = {"session_id": CPU_CLONE_SESSION_ID, "present": None,
                                             "error": str(e)}
    lines = [("switch", f"{args.grpc_addr} device {args.device_id}, P4Runtime {version}")]
    role = f"role {args.role!r}" if args.role else "default role"
    if arb is None:
        lines.append(("arbitration", f"{role}: unknown (the switch did not answer an observer)"))
    elif arb.primary:
        lines.append(("arbitration", f"{role}: a controller is primary"
                      + (f" (highest election id seen {arb.election_id})" if arb.election_id is not None else "")))
    else:
        lines.append(("arbitration", f"{role}: no primary controller"
                      + (f" (highest election id seen {arb.election_id})" if arb.election_id is not None else "")))
    p = data["pipeline"]
    if p is None:
        lines.append(("pipeline", "none (push one with 'splicectl pipeline push')"))
    else:
        kind = "splice program" if p["splice_program"] else "NOT the splice program"
        lines.append(("pipeline", f"{p['name'] or '?'} ({p['device_config']}, arch {p['arch'] or '?'}),"
                                  f" cookie {_fmt_cookie(p['cookie'])}, {kind}"))
        cs = data["clone_session"]
        if cs is not None:
            if cs["present"] is None:
                state = "unknown (cannot read it)"
            elif cs["present"]:
                state = "to port " + ", ".join(map(str, cs["ports"]))
            else:
                state = "MISSING: no SYN/FIN/RST copies reach the controller"
            lines.append(("clone session", f"{cs['session_id']} {state}"))
    text = _kv(lines)
    if data["tables"]:
        rows = [(t["alias"], t["entries"], t["size"]) for t in data["tables"]]
        text += "\n\n" + render_table(["table", "entries", "size"], rows)
    return Output(data, text)


async def cmd_pipeline_push(args: argparse.Namespace) -> Output:
    from .dataplane import CPU_CLONE_SESSION_ID, check_p4info, cpu_clone_session
    from .p4rt import P4Index, WriteError, load_p4info
    from .p4rt.errors import P4RuntimeRpcError

    p4info_path = getattr(args, "push_p4info", None) or args.p4info or str(DEFAULT_P4INFO)
    target = getattr(args, "target", None) or DEFAULTS["target"]
    config_path = getattr(args, "device_config", None) or str(TARGET_CONFIGS[target])
    try:
        p4info_bytes = read_bounded(p4info_path, MAX_P4INFO)
    except OSError as e:
        raise CliError(f"cannot read P4Info {p4info_path}: {e.strerror or e} (run 'make build')") from None
    try:
        device_config = read_bounded(config_path, MAX_DEVICE_CONFIG)
    except OSError as e:
        raise CliError(f"cannot read device config {config_path}: {e.strerror or e} (run 'make build')") from None
    try:
        p4info = load_p4info(p4info_bytes)
    except Exception as e:  # noqa: BLE001 - protobuf's parse errors are of several kinds
        raise CliError(f"{p4info_path} is not a P4Info file (text or binary): {' '.join(str(e).split())}") from None
    if not (p4info.tables or p4info.actions):
        raise CliError(f"{p4info_path} is not a P4Info file: it names no table and no action")
    cookie = args.cookie if getattr(args, "cookie", None) is not None else \
        int.from_bytes(hashlib.sha256(p4info_bytes + b"\0" + device_config).digest()[:8], "big")
    is_splice = not check_p4info(P4Index(p4info))
    clone = is_splice and not getattr(args, "no_clone_session", False)
    cpu_port = args.cpu_port if getattr(args, "cpu_port", None) is not None else DEFAULTS["cpu_port"]
    from .cli_switch import SwitchError

    async with _client(args) as client:
        await client.capabilities()
        session = await client.writer(need_index=False)
        try:
            await session.set_pipeline(p4info, device_config, cookie=cookie)
        except P4RuntimeRpcError as e:
            raise CliError(f"the switch refused the pipeline: {' '.join(str(e).split())}") from None
        if clone:
            entry = cpu_clone_session(cpu_port)
            try:
                await session.insert(entry)
            except WriteError:
                # A switch that kept the PRE across the push already has it: make it ours.
                try:
                    await session.modify(entry)
                except WriteError as e:
                    from .cli_switch import describe_write_error

                    raise SwitchError(f"pipeline pushed, but the clone session failed: {describe_write_error(e)}") \
                        from None
    data = {"pushed": True, "p4info": p4info_path, "device_config": config_path, "cookie": cookie,
            "splice_program": is_splice,
            "clone_session": {"session_id": CPU_CLONE_SESSION_ID, "port": cpu_port} if clone else None}
    text = f"pushed {p4info_path} + {config_path} (cookie {cookie:#x})"
    if clone:
        text += f"; clone session {CPU_CLONE_SESSION_ID} -> port {cpu_port}"
    elif not is_splice:
        text += "; not the splice program: no clone session installed"
    return Output(data, text)


async def cmd_pipeline_show(args: argparse.Namespace) -> Output:
    from google.protobuf import text_format
    from p4.v1 import p4runtime_pb2 as pb

    from .dataplane import check_p4info
    from .p4rt import P4Index

    async with _client(args) as client:
        await client.capabilities()
        config = await client.pipeline(pb.GetForwardingPipelineConfigRequest.ALL)
    if not config.HasField("p4info") or not (config.p4info.tables or config.p4info.actions):
        raise CliError("the switch has no pipeline (push one with 'splicectl pipeline push')")
    index = P4Index(config.p4info)
    if args.save_p4info:
        try:
            Path(args.save_p4info).write_text(text_format.MessageToString(config.p4info))
        except OSError as e:
            raise CliError(f"cannot write {args.save_p4info}: {e.strerror or e}") from None
    dev = _describe_device_config(config.p4_device_config)
    cookie = config.cookie.cookie if config.HasField("cookie") else None
    problems = check_p4info(index)
    tables = []
    for t in index.tables:
        actions = [index.actions.get(a).alias for a in t.action_ids if a in index.actions]
        tables.append({"name": t.name, "alias": t.alias, "size": t.size,
                       "keys": [f"{m.name}:{m.match_type}/{m.bitwidth}" for m in t.match_fields],
                       "actions": actions, "idle_timeout": t.supports_idle_timeout,
                       "direct_counter": (dc.name if (dc := index.direct_counter_of(t.id)) else None)})
    counters = [{"name": c.name, "size": c.size, "unit": c.unit} for c in index.counters]
    metadata = [{"header": h.name, "fields": [f"{f.name}/{f.bitwidth}" for f in h.fields]}
                for h in index.packet_metadata]
    data = {"cookie": cookie, "arch": config.p4info.pkg_info.arch or None,
            "name": config.p4info.pkg_info.name or dev["program"], "device_config": dev,
            "splice_program": not problems, "schema_problems": problems, "tables": tables,
            "counters": counters, "packet_metadata": metadata, "saved_p4info": args.save_p4info}
    lines = [("program", data["name"] or "?"), ("arch", data["arch"] or "?"), ("cookie", _fmt_cookie(cookie)),
             ("device config", f"{dev['kind']}, {dev['bytes']} bytes"),
             ("splice schema", "ok" if not problems else "; ".join(problems))]
    if args.save_p4info:
        lines.append(("P4Info saved", args.save_p4info))
    text = _kv(lines) + "\n\n" + render_table(
        ["table", "size", "key", "actions"],
        [(t["alias"], t["size"], " ".join(t["keys"]), " ".join(t["actions"])) for t in tables])
    if counters:
        text += "\n\n" + render_table(["counter", "size", "unit"], [(c["name"], c["size"], c["unit"]) for c in counters])
    if metadata:
        text += "\n\n" + render_table(["controller header", "fields"],
                                      [(m["header"], " ".join(m["fields"])) for m in metadata])
    return Output(data, text)


def _value_error(e: ValueError) -> CliError:
    return usage_error(" ".join(str(e).split()))


async def _write_one(args: argparse.Namespace, op: str, entity: Any, replace: bool = False) -> None:
    """Insert/modify/delete one entity; with ``replace`` an insert that finds it present modifies."""
    from .cli_switch import SwitchError

    async with _splice_switch(args) as (client, _):
        try:
            await client.write(op, entity)
        except SwitchError as e:
            if not (replace and op == "insert" and "ALREADY_EXISTS" in str(e)):
                raise
            await client.write("modify", entity)


async def _add_or_delete(args: argparse.Namespace, entity: Any, *, exists: str, absent: str) -> None:
    """``routes``/``services`` ``add`` (with ``--replace``, modify if present) or ``del`` of one entry.
    The switch's refusal is one line: ``<exists> exists already (...)``, or ``absent`` on a ``del``."""
    from .cli_switch import SwitchError

    try:
        if args.action == "add":
            await _write_one(args, "insert", entity, args.replace)
        else:
            await _write_one(args, "delete", entity)
    except SwitchError as e:
        if "ALREADY_EXISTS" in str(e):
            raise CliError(f"{exists} exists already (use --replace to change it)") from None
        if "NOT_FOUND" in str(e) and args.action == "del":
            raise CliError(absent) from None
        raise


async def cmd_routes(args: argparse.Namespace) -> Output:
    from .dataplane import ROUTES, parse_prefix, parse_route, route, route_key
    from .p4rt import codec

    if args.action == "list":
        routes = sorted(await _read_entries(args, ROUTES, parse_route),
                        key=lambda r: (-r.prefix.prefixlen, int(r.prefix.network_address)))
        data = {"routes": [r.to_dict() for r in routes]}
        rows = [(str(r.prefix), r.port if r.port is not None else r.action,
                 codec.format_mac(r.smac) if r.port is not None else "-",
                 codec.format_mac(r.dmac) if r.port is not None else "-") for r in routes]
        return Output(data, render_table(["prefix", "port", "smac", "dmac"], rows) if rows else "no routes")
    try:
        net = parse_prefix(args.prefix)
        entity = route(net, args.port, args.smac, args.dmac) if args.action == "add" else route_key(net)
    except ValueError as e:
        raise _value_error(e) from None
    await _add_or_delete(args, entity, exists=f"a route for {net}", absent=f"no route for {net}")
    if args.action == "add":
        data = {"added": {"prefix": str(net), "port": args.port, "smac": codec.format_mac(codec.mac(args.smac)),
                          "dmac": codec.format_mac(codec.mac(args.dmac))}}
        return Output(data, f"route {net} -> port {args.port}")
    return Output({"deleted": {"prefix": str(net)}}, f"route {net} removed")


async def cmd_services(args: argparse.Namespace) -> Output:
    from .dataplane import SERVICES, parse_service, service, service_key

    if args.action == "list":
        services = sorted(await _read_entries(args, SERVICES, parse_service),
                          key=lambda s: (s.server_addr, s.server_port))
        data = {"services": [s.to_dict() for s in services]}
        rows = [(s.to_dict()["server"], s.proxy_port) for s in services]
        return Output(data, render_table(["server", "proxy port"], rows) if rows else "no services")
    addr, port = parse_endpoint(args.server)
    try:
        entity = service(addr, port, args.proxy_port) if args.action == "add" else service_key(addr, port)
    except ValueError as e:
        raise _value_error(e) from None
    await _add_or_delete(args, entity, exists=f"service {addr}:{port}", absent=f"no service {addr}:{port}")
    if args.action == "add":
        return Output({"added": {"server": f"{addr}:{port}", "proxy_port": args.proxy_port}},
                      f"service {addr}:{port} proxied on port {args.proxy_port}")
    return Output({"deleted": {"server": f"{addr}:{port}"}}, f"service {addr}:{port} removed")


async def cmd_flows(args: argparse.Namespace) -> Output:
    from .cli_flows import group_flows, render_flows
    from .dataplane import SERVICES, flows_read, parse_flow, parse_service
    from .p4rt import TableEntry

    async with _splice_switch(args) as (client, index):
        services = [parse_service(index, e) for e in await client.read(TableEntry(SERVICES))]
        rules = [parse_flow(index, e) for e in await client.read(flows_read(with_counters=True))]
    groups = group_flows(rules, services)
    data = {"connections": [g.to_dict() for g in groups], "entries": len(rules)}
    return Output(data, render_flows(groups) if rules else "no flow entries")


async def cmd_counters(args: argparse.Namespace) -> Output:
    from .dataplane import FLOW_COUNTER, MALFORMED_COUNTER, MalformedReason, check_p4info, flows_read
    from .p4rt import CounterEntry

    async with _client(args) as client:
        await client.capabilities()
        index = await client.index()
        is_splice = not check_p4info(index)
        cells: dict[str, list[Any]] = {}
        for c in index.counters:
            cells[c.name] = await client.read(CounterEntry(c.name))
        flow_totals = None
        if is_splice:
            rules = await client.read(flows_read(with_counters=True))
            flow_totals = {"entries": len(rules),
                           "packets": sum(e.counter_data.packet_count for e in rules if e.counter_data),
                           "bytes": sum(e.counter_data.byte_count for e in rules if e.counter_data)}
    data: dict[str, Any] = {"malformed": None, "flows": flow_totals, "counters": {}}
    text_parts = []
    if is_splice:
        by_index = {e.index: e.data for e in cells.pop(MALFORMED_COUNTER, []) if e.data is not None}
        malformed = {r.name: by_index[r].packet_count if r in by_index else 0 for r in MalformedReason}
        unknown = {str(i): d.packet_count for i, d in by_index.items()
                   if i not in set(MalformedReason) and d.packet_count}
        data["malformed"] = malformed | ({"unknown": unknown} if unknown else {})
        data["malformed_total"] = sum(malformed.values()) + sum(unknown.values())
        rows: list[tuple[Any, ...]] = [(r.name, int(r), malformed[r.name]) for r in MalformedReason
                                       if args.all or malformed[r.name]]
        rows += [(f"index {i}", int(i), n) for i, n in unknown.items()]
        rows.append(("total", "", data["malformed_total"]))
        text_parts.append("malformed packets (dropped before any table)\n" + render_table(
            ["reason", "index", "packets"], rows, indent="  "))
        assert flow_totals is not None
        text_parts.append(f"flows ({FLOW_COUNTER}, direct)\n" + render_table(
            ["entries", "packets", "bytes"],
            [(flow_totals["entries"], flow_totals["packets"], flow_totals["bytes"])], indent="  "))
    for name, entries in cells.items():
        shown = [e for e in entries if e.data is not None and (args.all or e.data.packet_count or e.data.byte_count)]
        data["counters"][name] = [{"index": e.index, "packets": e.data.packet_count, "bytes": e.data.byte_count}
                                  for e in shown]
        if shown:
            text_parts.append(f"{name}\n" + render_table(
                ["index", "packets", "bytes"], [(e.index, e.data.packet_count, e.data.byte_count) for e in shown],
                indent="  "))
        else:
            text_parts.append(f"{name}: all zero")
    return Output(data, "\n\n".join(text_parts) if text_parts else "no counters in this pipeline")


def cmd_splice(args: argparse.Namespace) -> int:
    """Ask the running daemon, over its admin socket, to splice the proxy out of FLOW (it holds
    the flow, tells the proxy, and answers once the proxy reported and the direct entries are in)."""
    from .admin import admin_request
    from .config import ConfigError, load_config
    from .proxyapi.protocol import ApiError

    try:
        path = args.admin_socket or load_config(args.config_file).admin_socket
    except ConfigError as e:
        raise usage_error(str(e)) from None
    try:
        result = asyncio.run(admin_request(path, "splice", timeout=args.wait + 5, flow=args.flow, wait=args.wait))
    except (FileNotFoundError, ConnectionRefusedError):
        raise CliError(f"splice: no controller listening on {path} (start it with 'splicectl run')") from None
    except PermissionError:
        raise CliError(f"splice: {path}: permission denied (run as root or as the daemon's user)") from None
    except ApiError as e:
        raise CliError(f"splice: {e.message}", 2 if e.code == "bad_request" else 1) from None
    deltas = result.get("deltas") or {"c2s": 0, "s2c": 0}
    _emit(args, Output(result, f"spliced {args.flow}: deltas c2s {deltas['c2s']:+d}, s2c {deltas['s2c']:+d}"))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """Hand over to the controller daemon: ``p4splice.controller.daemon.main(args)``."""
    try:
        daemon = importlib.import_module("p4splice.controller.daemon")
    except ModuleNotFoundError as e:
        if e.name not in ("p4splice.controller.daemon",):
            raise
        raise CliError("the controller daemon is not available in this build") from None
    result = daemon.main(args)
    return int(result or 0)


Command = Callable[[argparse.Namespace], Awaitable[Output]]
ASYNC_COMMANDS: dict[tuple[str, str | None], Command] = {
    ("status", None): cmd_status,
    ("pipeline", "push"): cmd_pipeline_push,
    ("pipeline", "show"): cmd_pipeline_show,
    ("routes", None): cmd_routes,
    ("services", None): cmd_services,
    ("flows", None): cmd_flows,
    ("counters", None): cmd_counters,
}


def _emit(args: argparse.Namespace, out: Output) -> None:
    if args.json:
        sys.stdout.write(json.dumps(out.data, indent=2, sort_keys=False) + "\n")
    else:
        sys.stdout.write(out.text.rstrip("\n") + "\n")
    sys.stdout.flush()


def _setup_logging(verbose: int) -> None:
    """Quiet by default: the CLI reports failures itself, in one line; -v shows the library's logs."""
    if verbose <= 0:
        # gRPC's core logs on its own to stderr (TLS set-up failures, several lines each): quiet
        # unless -v, read when the first channel is made
        os.environ.setdefault("GRPC_VERBOSITY", "NONE")
        # A handler that drops everything keeps Python's last-resort stderr handler from printing
        # the library's warnings, without touching the root logger (main() also runs in tests).
        lib = logging.getLogger("p4splice")
        if not any(isinstance(h, logging.NullHandler) for h in lib.handlers):
            lib.addHandler(logging.NullHandler())
        return
    logging.basicConfig(level=logging.INFO if verbose == 1 else logging.DEBUG, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")


def main(argv: Sequence[str] | None = None) -> int:
    """Console-script entry point; returns the exit status."""
    args: argparse.Namespace | None = None
    try:
        parser = build_parser()
        args, extra = parser.parse_known_args(argv)
        if extra and args.command != "run":
            raise usage_error(f"unrecognized arguments: {' '.join(extra)} (see '{PROG} --help')")
        args.run_args = list(extra)
        resolve_options(args)
        _setup_logging(args.verbose)
        if args.command == "splice":
            return cmd_splice(args)
        if args.command == "run":
            return cmd_run(args)
        command = ASYNC_COMMANDS.get((args.command, getattr(args, "action", None))) or \
            ASYNC_COMMANDS[(args.command, None)]
        _emit(args, asyncio.run(command(args)))
        return 0
    except CliError as e:
        return _fail(str(e), e.code)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (| head): nothing more to say to it, and no traceback at exit.
        try:
            sys.stdout = open("/dev/null", "w")  # noqa: SIM115 - stays open until exit
        except OSError:
            pass
        return 1
    except Exception as e:  # noqa: BLE001 - the contract is one line, never a traceback
        from .cli_switch import SwitchError

        if isinstance(e, SwitchError):
            return _fail(str(e), 1)
        if isinstance(e, ValueError):
            return _fail(" ".join(str(e).split()), 2)
        if args is not None and getattr(args, "verbose", 0):
            logging.getLogger(__name__).exception("internal error")
        return _fail(f"internal error: {type(e).__name__}: {' '.join(str(e).split())}", 1)


def _fail(message: str, code: int) -> int:
    sys.stderr.write(f"{PROG}: error: {message}\n")
    sys.stderr.flush()
    return code


if __name__ == "__main__":
    sys.exit(main())
