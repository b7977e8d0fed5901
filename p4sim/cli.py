"""Command-line entry points: ``p4sim-compile`` (as p4c-bm2-ss) and ``p4sim`` (as simple_switch_grpc)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger("p4sim")


class _ArgumentParser(argparse.ArgumentParser):
    """argparse that reports a bad argument as one line and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


# --- p4sim-compile ------------------------------------------------------------------------------


def _compile_parser() -> argparse.ArgumentParser:
    p = _ArgumentParser(prog="p4sim-compile", description="Compile a P4_16 v1model program for p4sim "
                        "(flags as p4c-bm2-ss).")
    p.add_argument("source", help="the P4 program")
    p.add_argument("-o", "--output", help="device config to write (default: <source>.p4sim.json beside it)")
    p.add_argument("-I", dest="include", action="append", default=[], metavar="DIR", help="include directory")
    p.add_argument("-D", dest="define", action="append", default=[], metavar="NAME[=VAL]", help="preprocessor define")
    p.add_argument("--p4runtime-files", metavar="FILES",
                   help="comma-separated P4Info outputs; the format follows the extension (.txt/.txtpb, .json, .bin)")
    p.add_argument("--p4runtime-format", choices=["text", "json", "binary"], help="(p4c's older flag) format of --p4runtime-file")
    p.add_argument("--p4runtime-file", help="(p4c's older flag) one P4Info output")
    p.add_argument("--std", default="p4-16", help="language version (only p4-16)")
    p.add_argument("--arch", default="v1model", help="architecture (only v1model)")
    p.add_argument("--target", default="bmv2", help="accepted for compatibility")
    p.add_argument("--emit-python", metavar="FILE", help="also write the generated Python (debugging)")
    return p


def compile_main(argv: Sequence[str] | None = None) -> int:
    args = _compile_parser().parse_args(argv)
    from p4sim.compiler.errors import CompileError

    if args.std not in ("p4-16", "p4_16"):
        print(f"p4sim-compile: error: --std {args.std} is not supported (p4sim compiles P4_16)", file=sys.stderr)
        return 1
    if args.arch != "v1model":
        print(f"p4sim-compile: error: --arch {args.arch} is not supported (p4sim runs v1model)", file=sys.stderr)
        return 1
    try:
        from p4sim.compiler.driver import compile_file
        from p4sim.compiler.p4info import p4runtime_refusals, write_p4info

        compiled = compile_file(args.source, args.include, args.define)
        out = Path(args.output) if args.output else Path(args.source).with_suffix(".p4sim.json")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(compiled.device_config)
        targets: list[tuple[str, str | None]] = []
        if args.p4runtime_files:
            targets += [(f, None) for f in args.p4runtime_files.split(",") if f]
        if args.p4runtime_file:
            targets.append((args.p4runtime_file, args.p4runtime_format))
        refusals = p4runtime_refusals(compiled.model) if targets else []
        if refusals:
            for r in refusals:
                print(f"{args.source}: error: {r}", file=sys.stderr)
            return 1
        for path, fmt in targets:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            write_p4info(compiled.p4info, path, fmt)
        if args.emit_python:
            Path(args.emit_python).write_text(compiled.model.source)
    except CompileError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"p4sim-compile: error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), file=sys.stderr)
        return 1
    except ValueError as exc:  # e.g. a P4Info file name whose suffix names no format
        print(f"p4sim-compile: error: {exc}", file=sys.stderr)
        return 1
    except RecursionError:
        print(f"{args.source}: error: program nests too deeply for p4sim", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - a compiler bug must still be one readable line
        print(f"{args.source}: internal error: {type(exc).__name__}: {exc} (please report this p4sim bug)", file=sys.stderr)
        return 2
    return 0


# --- p4sim (the switch) --------------------------------------------------------------------------

LOG_LEVELS = {"trace": logging.DEBUG, "debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING,
              "error": logging.ERROR, "off": logging.CRITICAL + 10}


def _switch_parser() -> argparse.ArgumentParser:
    p = _ArgumentParser(prog="p4sim", description="Run a p4sim switch with a P4Runtime server (flags as "
                        "simple_switch_grpc; target options may follow '--').")
    p.add_argument("config", nargs="?", help="device config from p4sim-compile (or use --no-p4)")
    p.add_argument("--no-p4", action="store_true", help="start with no program; wait for SetForwardingPipelineConfig")
    p.add_argument("--device-id", type=int, default=0, help="P4Runtime device id (default 0, as BMv2)")
    p.add_argument("-i", "--interface", action="append", default=[], metavar="PORT@IFACE",
                   help="attach a Linux interface as a switch port (repeatable)")
    p.add_argument("--cpu-port", type=int, help="port number of the CPU port (packet-in/packet-out)")
    p.add_argument("--drop-port", type=int, default=511, help="egress_spec value that drops (default 511)")
    p.add_argument("--grpc-server-addr", default="127.0.0.1:9559", help="P4Runtime address (default 127.0.0.1:9559)")
    p.add_argument("--grpc-server-ssl", action="store_true", help="serve TLS (needs --grpc-server-cert/--grpc-server-key)")
    p.add_argument("--grpc-server-cert", help="server certificate (PEM)")
    p.add_argument("--grpc-server-key", help="server private key (PEM)")
    p.add_argument("--log-console", action="store_true", help="log to the console")
    p.add_argument("--log-file", help="log to this file")
    p.add_argument("--log-level", "-L", default="info", choices=sorted(LOG_LEVELS), help="log level")
    p.add_argument("--pcap", nargs="?", const=".", metavar="DIR", help="write <iface>_in.pcap/<iface>_out.pcap per port")
    p.add_argument("--thrift-port", type=int, help="accepted for compatibility; p4sim has no Thrift server")
    return p


def _parse_interface(spec: str) -> tuple[int, str]:
    port, sep, iface = spec.partition("@")
    if not sep or not port.isdigit() or not iface:
        raise ValueError(f"bad interface {spec!r}: expected PORT@IFACE, e.g. 1@veth1")
    return int(port), iface


def _setup_logging(args: argparse.Namespace) -> None:
    level = LOG_LEVELS[args.log_level]
    handlers: list[logging.Handler] = []
    if args.log_console:
        handlers.append(logging.StreamHandler(sys.stderr))
    if args.log_file:
        handlers.append(logging.FileHandler(args.log_file))
    if not handlers:
        h = logging.StreamHandler(sys.stderr)
        h.setLevel(logging.WARNING)
        handlers.append(h)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    root = logging.getLogger()
    for h in handlers:
        h.setFormatter(fmt)
        root.addHandler(h)
    root.setLevel(level)


def _start_error(exc: Exception, config: str | None) -> str:
    """One line for what stopped the switch from starting, without a second "error:" or Python's
    errno wording."""
    from p4sim.compiler.errors import CompileError

    if isinstance(exc, CompileError):
        return f"{config}: {exc.message}" if config and exc.loc is None else str(exc).removeprefix("error: ")
    if isinstance(exc, OSError) and exc.strerror:
        where = exc.filename if exc.filename is not None else ""
        return f"{where}: {exc.strerror.lower()}" if where else exc.strerror.lower()
    return str(exc)


def switch_main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # simple_switch_grpc puts target options after "--": accept both places
    argv = [a for a in argv if a != "--"]
    args = _switch_parser().parse_args(argv)
    try:
        interfaces = [_parse_interface(s) for s in args.interface]
    except ValueError as exc:
        print(f"p4sim: error: {exc}", file=sys.stderr)
        return 2
    if bool(args.config) == bool(args.no_p4):
        print("p4sim: error: give a device config or --no-p4 (not both)", file=sys.stderr)
        return 2
    if args.grpc_server_ssl and not (args.grpc_server_cert and args.grpc_server_key):
        print("p4sim: error: --grpc-server-ssl needs --grpc-server-cert and --grpc-server-key", file=sys.stderr)
        return 2
    _setup_logging(args)
    from p4sim.switch import SwitchProcess

    try:
        sw = SwitchProcess(device_id=args.device_id, grpc_addr=args.grpc_server_addr, cpu_port=args.cpu_port,
                           drop_port=args.drop_port, pcap_dir=args.pcap,
                           cert=args.grpc_server_cert if args.grpc_server_ssl else None,
                           key=args.grpc_server_key if args.grpc_server_ssl else None)
        for port, iface in interfaces:
            sw.add_interface(port, iface)
        if args.config:
            sw.load_config_file(args.config)
        sw.start()
    except Exception as exc:  # noqa: BLE001 - start-up failures are one line for the user
        print(f"p4sim: error: {_start_error(exc, args.config)}", file=sys.stderr)
        return 1
    stop = threading.Event()

    def _on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    print(f"p4sim: device {args.device_id} serving P4Runtime on {sw.grpc_addr}", file=sys.stderr, flush=True)
    stop.wait()
    sw.stop()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(switch_main())
