"""Drives p4runtime-shell from JSON lines, inside the virtualenv that holds it.

p4runtime-shell pins protobuf < 3.21, which cannot share a process (or a venv) with the compiled
protobuf runtime the rest of the project uses, so it runs in a venv of its own (``.venv-p4sh``,
``make p4sh-venv``). This file is run *by path* with that venv's interpreter and imports nothing
of ours: one JSON request per line on stdin, one JSON reply per line on stdout. Entities read back
are returned as P4Runtime text-format protos, so the caller checks them with its own protobuf.

Requests (``op`` plus arguments)::

    setup        grpc_addr device_id election_id=[high, low] p4info config
    table        verb=insert|modify|delete table action match={} params={} priority is_default
    read_table   table                     -> entities: [TableEntry text proto, ...]
    read_counter counter                   -> entities: [CounterEntry text proto, ...]
    multicast    group replicas=[[port, instance], ...]
    clone        session replicas=[[port, instance], ...]
    digest       name max_timeout_ns max_list_size ack_timeout_ns
    read_digest  name                      -> entities: [DigestEntry text proto, ...]
    packet_out   payload (hex) metadata={}
    teardown

Replies: ``{"ok": true, ...}`` or ``{"ok": false, "error": "<exception text>"}``.

The caller's side is :class:`ShellBridge` (run from the project's own venv); it too imports only
the standard library, so this one file serves both ends.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ENV_PYTHON = "P4SH_PYTHON"


class ShellBridgeError(RuntimeError):
    """p4runtime-shell refused a request (the text is its exception's) or the bridge died."""


def shell_python() -> Path | None:
    """The interpreter of the venv holding p4runtime-shell: ``$P4SH_PYTHON``, else ``.venv-p4sh``
    beside the running venv (where ``make p4sh-venv`` puts it); None if neither exists."""
    configured = os.environ.get(ENV_PYTHON)
    candidate = Path(configured) if configured else Path(sys.prefix).parent / ".venv-p4sh" / "bin" / "python"
    return candidate if candidate.exists() else None


class ShellBridge:
    """p4runtime-shell in a child process of its own venv, one request at a time."""

    def __init__(self, python: Path) -> None:
        # -P: the script's folder (p4sim/) must not shadow modules in the other venv.
        self._proc = subprocess.Popen([str(python), "-P", __file__], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      text=True, bufsize=1)

    def __enter__(self) -> ShellBridge:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(self, op: str, **args: Any) -> dict[str, Any]:
        assert self._proc.stdin is not None and self._proc.stdout is not None
        try:
            self._proc.stdin.write(json.dumps({"op": op, **args}) + "\n")
            self._proc.stdin.flush()
        except BrokenPipeError:
            raise ShellBridgeError(f"p4runtime-shell bridge exited ({self._proc.poll()})") from None
        line = self._proc.stdout.readline()
        if not line:
            raise ShellBridgeError(f"p4runtime-shell bridge exited ({self._proc.wait()})")
        reply = json.loads(line)
        if not reply.pop("ok"):
            raise ShellBridgeError(reply["error"])
        return reply

    def close(self) -> None:
        if self._proc.poll() is None:
            assert self._proc.stdin is not None
            self._proc.stdin.close()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()


# --- the bridge's side (p4runtime-shell's venv) ---------------------------------------------------

class _Bridge:
    """One method per request op; p4runtime-shell is imported here, in its own venv only."""

    def __init__(self) -> None:
        import p4runtime_sh.shell as shell
        from google.protobuf import text_format

        self.sh = shell
        self.text_format = text_format

    def handle(self, req: dict[str, Any]) -> dict[str, Any]:
        op = str(req.pop("op", ""))
        method = getattr(self, f"op_{op}", None)
        if method is None:
            raise ValueError(f"unknown op {op!r}")
        return method(**req) or {}

    def _texts(self, entries: Any) -> dict[str, Any]:
        return {"entities": [self.text_format.MessageToString(e.msg(), as_one_line=True) for e in entries]}

    def op_setup(self, grpc_addr: str, device_id: int, p4info: str, config: str,
                 election_id: tuple[int, int] = (0, 1)) -> None:
        self.sh.setup(device_id=int(device_id), grpc_addr=grpc_addr, election_id=tuple(election_id),
                      config=self.sh.FwdPipeConfig(p4info, config), verbose=False)

    def op_table(self, verb: str, table: str, action: str, match: dict[str, str] | None = None,
                 params: dict[str, str] | None = None, priority: int | None = None,
                 is_default: bool = False) -> None:
        entry = self.sh.TableEntry(table)(action=action, is_default=is_default)
        for field, value in (match or {}).items():
            entry.match[field] = value
        for param, value in (params or {}).items():
            entry.action[param] = value
        if priority is not None:
            entry.priority = int(priority)
        getattr(entry, verb)()

    def op_read_table(self, table: str) -> dict[str, Any]:
        return self._texts(self.sh.TableEntry(table).read())

    def op_read_counter(self, counter: str) -> dict[str, Any]:
        return self._texts(self.sh.CounterEntry(counter).read())

    def op_multicast(self, group: int, replicas: list[list[int]]) -> None:
        entry = self.sh.MulticastGroupEntry(int(group))
        for port, instance in replicas:
            entry.add(int(port), int(instance))
        entry.insert()

    def op_clone(self, session: int, replicas: list[list[int]]) -> None:
        entry = self.sh.CloneSessionEntry(int(session))
        for port, instance in replicas:
            entry.add(int(port), int(instance))
        entry.insert()

    def op_digest(self, name: str, max_timeout_ns: int = 0, max_list_size: int = 1,
                  ack_timeout_ns: int = 0) -> None:
        entry = self.sh.DigestEntry(name)
        entry.max_timeout_ns = int(max_timeout_ns)
        entry.max_list_size = int(max_list_size)
        entry.ack_timeout_ns = int(ack_timeout_ns)
        entry.insert()

    def op_read_digest(self, name: str) -> dict[str, Any]:
        return self._texts(self.sh.DigestEntry(name).read())

    def op_packet_out(self, payload: str, metadata: dict[str, str] | None = None) -> None:
        self.sh.PacketOut(bytes.fromhex(payload), **(metadata or {})).send()

    def op_teardown(self) -> None:
        self.sh.teardown()


def main() -> int:
    bridge = _Bridge()
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            reply = {"ok": True, **bridge.handle(json.loads(line))}
        except Exception as exc:  # every failure goes back to the caller as text; the loop goes on
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
