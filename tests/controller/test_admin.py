"""The daemon's admin socket (controller/admin.py, docs/splicectl.md "The admin socket") over a
real Unix socket, with hostile lines: the daemon's orchestrator and service are real but never
started, as none of these requests needs the switch (no flow exists). The admin splice with a
switch and a proxy: test_orchestrator_proxy_ops.py and test_orchestrator_failures.py."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from p4splice.controller.admin import MAX_LINE, AdminServer
from p4splice.controller.daemon import Daemon

from tests.controller.test_orchestrator_support import base_config
from tests.controller.test_proxyapi_support import Raw, error_of, result_of, run

UNKNOWN_FLOW = "10.0.1.9:9-10.0.2.1:80"


@asynccontextmanager
async def admin_socket(tmp: Path) -> AsyncIterator[AdminServer]:
    """The admin socket of a daemon that is not started (no switch behind it), closed at the end."""
    d = Daemon(base_config("127.0.0.1:1", tmp))
    admin = AdminServer(tmp / "admin.sock", d.orch, d.service, status=d.status)
    await admin.start()
    try:
        yield admin
    finally:
        await admin.close()


def strict(line: bytes) -> Any:
    """A reply as JSON, RFC 8259 only (Python's json would take Infinity)."""
    def no_constant(name: str) -> Any:
        raise AssertionError(f"{name} in a reply: {line[:200]!r}")
    return json.loads(line, parse_constant=no_constant)


async def call(raw: Raw, request: dict[str, Any] | bytes) -> dict[str, Any]:
    await raw.send(request)
    line = await raw.reader.readline()
    assert line.endswith(b"\n"), f"no reply (got {line[:200]!r})"
    return strict(line)


def errors_logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_line_over_the_limit_gets_bad_request_then_the_connection_closes(tmp_path: Path) -> None:
    """Found by fuzzing: a line over 64 KiB closed the connection without a word, and one of
    65537 bytes (its newline past the limit) was still read as a request."""
    def padded(total: int) -> bytes:
        head = b'{"id": 1, "op": "status"'
        return head + b" " * (total - len(head) - 2) + b"}\n"

    async def main() -> None:
        async with admin_socket(tmp_path):
            raw = await Raw.open(tmp_path / "admin.sock")
            assert result_of(await call(raw, padded(MAX_LINE)))["flows"] == {"handshake": 0}  # at the limit: fine
            for line in (padded(MAX_LINE + 1), b"\xff" * (MAX_LINE + 4096) + b"\n"):
                reply = await call(raw, line)
                assert reply["id"] is None and error_of(reply) == "bad_request"
                assert f"longer than {MAX_LINE}" in reply["error"]["message"]
                assert await raw.closed()
                raw = await Raw.open(tmp_path / "admin.sock")
            await raw.close()

    run(main())


def test_every_reply_is_json_and_ids_are_scalars(tmp_path: Path) -> None:
    """Found by fuzzing: an id of 1e400 (Infinity to Python) was echoed as ``Infinity``, which is
    not JSON. Such a line is refused now, as is an id that is an array or an object."""
    async def main() -> None:
        async with admin_socket(tmp_path):
            raw = await Raw.open(tmp_path / "admin.sock")
            for line in (b'{"id": 1e400, "op": "status"}\n', b'{"id": -1E999, "op": "status"}\n',
                         b'{"id": [1], "op": "status"}\n', b'{"id": {"a": 1}, "op": "status"}\n'):
                reply = await call(raw, line)
                assert reply["id"] is None and error_of(reply) == "bad_request", line
            for req_id in (None, True, 0, -(2**70), 2.5, "x", "\ud800"):
                reply = await call(raw, {"id": req_id, "op": "flows"})
                assert reply["id"] == req_id and result_of(reply) == {"flows": []}
            assert result_of(await call(raw, {"op": "flows"})) == {"flows": []}  # the id is optional
            await raw.close()

    run(main())


def test_wait_must_be_a_number_of_seconds_above_zero(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Found by fuzzing: a wait of 10^400 failed as ``internal`` with a traceback in the log;
    "5", true or 0 were taken (0 or less ends the wait at once, after the flow was put on hold)."""
    async def main() -> None:
        async with admin_socket(tmp_path):
            raw = await Raw.open(tmp_path / "admin.sock")
            for wait in (10**400, -(10**400), "5", "nan", True, 0, -1, -0.5, None, [1], {"s": 1}):
                reply = await call(raw, {"id": 1, "op": "splice", "flow": UNKNOWN_FLOW, "wait": wait})
                assert error_of(reply) == "bad_request" and "wait" in reply["error"]["message"], (wait, reply)
            for wait in (0.5, 3, 1e300):  # right: then the flow is looked for
                reply = await call(raw, {"id": 2, "op": "splice", "flow": UNKNOWN_FLOW, "wait": wait})
                assert error_of(reply) == "not_found", reply
            await raw.close()

    run(main())
    assert not errors_logged(caplog)


def test_arguments_an_op_does_not_take_are_refused(tmp_path: Path) -> None:
    """A misspelt ``wait`` used to be ignored (and the default taken without a word)."""
    async def main() -> None:
        async with admin_socket(tmp_path):
            raw = await Raw.open(tmp_path / "admin.sock")
            for request, word in (({"op": "splice", "flow": UNKNOWN_FLOW, "wiat": 30}, "wiat"),
                                  ({"op": "status", "verbose": True}, "verbose"),
                                  ({"op": "flow", "flow": UNKNOWN_FLOW, "wait": 1}, "wait")):
                reply = await call(raw, {"id": 3, **request})
                assert error_of(reply) == "bad_request" and word in reply["error"]["message"], reply
            for request in ({"op": "nope"}, {"op": None}, {"op": ["status"]}, {}):
                reply = await call(raw, {"id": 4, **request})
                assert error_of(reply) == "bad_request" and "op" in reply["error"]["message"], reply
            await raw.close()

    run(main())


def test_a_last_line_without_its_newline_is_answered(tmp_path: Path) -> None:
    async def main() -> None:
        async with admin_socket(tmp_path):
            raw = await Raw.open(tmp_path / "admin.sock")
            await raw.send(b'{"id": 5, "op": "flows"}')
            raw.writer.write_eof()
            reply = strict(await raw.reader.readline())
            assert reply == {"id": 5, "ok": True, "result": {"flows": []}}
            assert await raw.closed()

    run(main())


def test_close_drops_the_connections(tmp_path: Path) -> None:
    """A connection used to outlive the daemon's close, its handler running on after the
    orchestrator had stopped."""
    async def main() -> None:
        async with admin_socket(tmp_path) as admin:
            raw = await Raw.open(tmp_path / "admin.sock")
            assert result_of(await call(raw, {"id": 1, "op": "flows"})) == {"flows": []}
            await admin.close()
            assert await raw.closed()
            assert not admin._handlers
            assert not (tmp_path / "admin.sock").exists()

    run(main())
