"""ProxyApiServer over real Unix sockets with raw JSON lines: socket file and permissions, peer
credentials, framing, hello and versions, every op and every error code, events, liveness."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import socket
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from p4splice.controller.proxyapi import MAX_LINE, Flow, ProxyApiServer, SocketInUseError

from tests.controller.test_proxyapi_support import (
    FLOW,
    FLOW_JSON,
    MAC,
    FakeService,
    Raw,
    error_of,
    poll,
    result_of,
    run,
    serving,
)

NOBODY = 65534  # uid nobody, gid nogroup


@pytest.fixture
def sock(tmp_path: Path) -> Path:
    return tmp_path / "run" / "proxy.sock"


# --- socket file -----------------------------------------------------------------------------------

def test_socket_and_directory_modes_and_group(sock: Path) -> None:
    async def main() -> None:
        async with serving(sock, group=NOBODY):
            d, s = os.stat(sock.parent), os.lstat(sock)
            assert stat.S_ISDIR(d.st_mode) and stat.S_IMODE(d.st_mode) == 0o750 and d.st_gid == NOBODY
            assert stat.S_ISSOCK(s.st_mode) and stat.S_IMODE(s.st_mode) == 0o660 and s.st_gid == NOBODY
        assert not sock.exists()  # close() removes it
        assert sock.parent.is_dir()

    run(main())


def test_existing_directory_is_left_alone(tmp_path: Path) -> None:
    os.chmod(tmp_path, 0o755)

    async def main() -> None:
        async with serving(tmp_path / "p.sock"):
            assert stat.S_IMODE(os.stat(tmp_path).st_mode) == 0o755
            assert stat.S_IMODE(os.lstat(tmp_path / "p.sock").st_mode) == 0o660

    run(main())


def test_stale_socket_is_replaced(sock: Path, caplog: pytest.LogCaptureFixture) -> None:
    sock.parent.mkdir()
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(sock))  # a controller that died: the file stays, nobody listens
    dead.close()

    async def main() -> None:
        async with serving(sock):
            assert "removing stale proxy API socket" in caplog.text
            raw = await Raw.open(sock)
            assert result_of(await raw.hello())["version"] == 1
            await raw.close()

    run(main())


def test_live_socket_is_not_stolen_and_non_socket_refused(sock: Path) -> None:
    async def main() -> None:
        async with serving(sock) as first:
            with pytest.raises(SocketInUseError, match="another process is listening"):
                await ProxyApiServer(sock, FakeService()).start()
            raw = await Raw.open(sock)  # the first one still serves, on its own file
            assert result_of(await raw.hello())["version"] == 1
            await raw.close()
            await poll(lambda: first.connected == frozenset(), what="disconnect")
        assert not sock.exists()
        sock.write_text("not a socket")
        with pytest.raises(SocketInUseError, match="not a socket"):
            await ProxyApiServer(sock, FakeService()).start()
        assert sock.read_text() == "not a socket"

    run(main())


def test_close_leaves_a_successors_socket(sock: Path) -> None:
    async def main() -> None:
        first = ProxyApiServer(sock, FakeService())
        await first.start()
        os.unlink(sock)  # e.g. an operator cleared it, and a second controller took the path
        async with serving(sock):
            await first.close()
            assert sock.exists()
            raw = await Raw.open(sock)
            assert result_of(await raw.hello())["version"] == 1
            await raw.close()

    run(main())


# --- peer credentials --------------------------------------------------------------------------------

@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory other users can traverse (pytest's tmp_path is 0700 and root's)."""
    d = Path(tempfile.mkdtemp(prefix="p4s-api-"))
    os.chmod(d, 0o711)
    try:
        yield d
    finally:
        shutil.rmtree(d)


def _connect_as(path: Path, uid: int, gid: int) -> int:
    """Fork a child that drops to uid/gid, connects, says hello and writes what happened to a
    pipe; returns the pipe's read end."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: plain syscalls only, then _exit
        out: dict[str, Any]
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(30)  # generous: under load the server may answer late
            try:
                s.connect(str(path))
                try:
                    s.sendall(b'{"id": 1, "op": "hello", "version": 1, "proxy": "intruder"}\n')
                except (BrokenPipeError, ConnectionResetError):
                    pass  # refused at accept: the server may have answered and closed before we spoke
                data = b""
                while not data.endswith(b"\n") and (chunk := s.recv(4096)):
                    data += chunk
                try:
                    closed = s.recv(4096) == b""
                except ConnectionResetError:  # closed with our bytes unread: also closed
                    closed = True
                out = {"reply": json.loads(data), "closed": closed}
            except OSError as exc:
                out = {"errno": exc.errno}
            os.write(w, json.dumps(out).encode())
        finally:
            os._exit(0)
    os.close(w)
    return r | (pid << 16)


async def _child_result(handle: int) -> dict[str, Any]:
    r, pid = handle & 0xFFFF, handle >> 16

    def wait() -> dict[str, Any]:
        with os.fdopen(r, "rb") as f:
            data = f.read()
        os.waitpid(pid, 0)
        return json.loads(data)

    return await asyncio.get_running_loop().run_in_executor(None, wait)


def test_other_uid_is_refused_with_one_unauthorized_line(shared_dir: Path) -> None:
    assert os.getuid() == 0, "needs root to run a peer as another uid"
    path = shared_dir / "run" / "proxy.sock"
    service = FakeService()

    async def main() -> None:
        async with serving(path, service, group=NOBODY) as server:
            # In the socket's group: gets through the file modes, then SO_PEERCRED refuses it.
            got = await _child_result(_connect_as(path, NOBODY, NOBODY))
            assert got["reply"]["id"] is None and got["reply"]["error"]["code"] == "unauthorized"
            assert got["closed"] is True
            # Not in the group: the directory's and socket's modes keep it out.
            got = await _child_result(_connect_as(path, NOBODY, NOBODY - 1))
            assert got == {"errno": 13}
            assert server.connected == frozenset() and service.calls == []

    run(main())


def test_only_listed_uids(sock: Path) -> None:
    async def main() -> None:
        async with serving(sock, allowed_uids={12345}):
            raw = await Raw.open(sock)
            reply = await raw.recv()  # sent on connect, before any request
            assert reply["id"] is None and error_of(reply) == "unauthorized"
            assert await raw.closed()

    run(main())


# --- framing and hello ---------------------------------------------------------------------------------

def test_malformed_lines_keep_the_connection(sock: Path) -> None:
    async def main() -> None:
        async with serving(sock):
            raw = await Raw.open(sock)
            for line, words in [
                (b"{not json\n", "malformed JSON"), (b'{"id": 1, "op": NaN}\n', "malformed JSON"),
                (b"\xff\xfe\n", "malformed JSON"), (b"[1, 2]\n", "JSON object"),
                (b'{"op": "hello"}\n', "'id'"), (b'{"id": [1], "op": "hello"}\n', "'id'"),
                # under the line limit, deeper than Python's parser goes
                (b"[" * 50_000 + b"]" * 50_000 + b"\n", "nested too deeply"),
            ]:
                await raw.send(line)
                reply = await raw.recv()
                assert reply["id"] is None and error_of(reply) == "bad_request", line
                assert words in reply["error"]["message"]
            for req_id in ("a", 2.5, None, True):
                reply = await raw.call({"id": req_id, "op": "nope"})
                assert reply["id"] == req_id and error_of(reply) == "bad_request"
                assert "'op'" in reply["error"]["message"]
            assert result_of(await raw.hello())["version"] == 1  # still usable
            await raw.close()

    run(main())


def test_an_id_beyond_a_double_is_refused_and_the_connection_lives(
        sock: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Found by fuzzing: Python reads 1e400 as Infinity, and the reply echoing it could not be
    encoded: the handler died with a traceback and the connection closed without a reply."""
    async def main() -> None:
        async with serving(sock):
            raw = await Raw.open(sock)
            for line in (b'{"id": 1e400, "op": "hello", "version": 1, "proxy": "p1"}\n',
                         b'{"id": 1, "op": "hello", "version": 1, "proxy": -1e999}\n'):
                await raw.send(line)
                reply = await raw.recv()
                assert reply["id"] is None and error_of(reply) == "bad_request"
                assert "out of range" in reply["error"]["message"]
            assert result_of(await raw.hello())["version"] == 1
            await raw.close()

    run(main())
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_line_limit(sock: Path) -> None:
    def padded(total: int) -> bytes:
        head = b'{"id": 1, "op": "hello", "version": 1, "proxy": "p1"'
        return head + b" " * (total - len(head) - 2) + b"}\n"

    async def main() -> None:
        async with serving(sock):
            raw = await Raw.open(sock)
            await raw.send(padded(MAX_LINE))  # exactly MAX_LINE with its newline: fine
            assert result_of(await raw.recv())["version"] == 1
            await raw.send(padded(MAX_LINE + 1))
            reply = await raw.recv()
            assert reply["id"] is None and error_of(reply) == "bad_request"
            assert f"longer than {MAX_LINE}" in reply["error"]["message"]
            assert await raw.closed()  # framing is lost: the controller hangs up

    run(main())


def test_hello_first_and_once_and_versions(sock: Path) -> None:
    async def main() -> None:
        async with serving(sock) as server:
            raw = await Raw.open(sock)
            reply = await raw.call({"id": 1, "op": "heartbeat"})
            assert error_of(reply) == "bad_request" and "hello must come first" in reply["error"]["message"]
            for bad, arg in [({"version": "1", "proxy": "p1"}, "'version'"), ({"version": 1}, "'proxy'"),
                             ({"version": 1, "proxy": "bad name"}, "'proxy'"),
                             ({"version": 1, "proxy": "p1", "extra": 1}, "extra")]:
                reply = await raw.call({"id": 2, "op": "hello", **bad})
                assert error_of(reply) == "bad_request" and arg in reply["error"]["message"]
            reply = await raw.hello("p1")
            assert result_of(reply) == {"version": 1, "controller": "p4splice 0.1.0"}
            assert server.connected == {"p1"}
            reply = await raw.hello("p2")
            assert error_of(reply) == "bad_request" and "already" in reply["error"]["message"]
            # A second connection may not take a connected proxy's name.
            other = await Raw.open(sock)
            assert error_of(await other.hello("p1")) == "conflict"
            assert result_of(await other.hello("p2"))["version"] == 1
            # An unknown version: the list of known ones, then the connection is closed.
            third = await Raw.open(sock)
            reply = await third.call({"id": 9, "op": "hello", "version": 2, "proxy": "p3"})
            assert reply["id"] == 9 and error_of(reply) == "unsupported_version"
            assert reply["error"]["supported"] == [1]
            assert await third.closed()
            for r in (raw, other):
                await r.close()
            await poll(lambda: server.connected == frozenset(), what="disconnects")

    run(main())


def test_a_second_hello_never_closes_the_connection(sock: Path) -> None:
    """Found by fuzzing: a second hello asking an unknown version got unsupported_version and the
    connection was closed, registration and all. Once hello is done, any hello is bad_request."""
    async def main() -> None:
        async with serving(sock) as server:
            raw = await Raw.open(sock)
            await raw.hello("p1")
            await raw.register()
            for version in (2, 0, 1):
                reply = await raw.call({"id": 7, "op": "hello", "version": version, "proxy": "p1"})
                assert reply["id"] == 7 and error_of(reply) == "bad_request", reply
                assert "already" in reply["error"]["message"]
            assert "now_ms" in result_of(await raw.call({"id": 8, "op": "heartbeat"}))
            assert server.connected == {"p1"} and server.registered == {"p1"}
            await raw.close()

    run(main())


# --- operations -----------------------------------------------------------------------------------------

def test_every_op_happy_path(sock: Path) -> None:
    service = FakeService()
    service.add_flow("p1")
    other = Flow("10.0.1.2", 40001, "10.0.2.1", 80)
    service.add_flow("p1", other)

    async def main() -> None:
        async with serving(sock, service) as server:
            raw = await Raw.open(sock)
            await raw.hello("p1")
            assert result_of(await raw.register(heartbeat_ms=500, port=7)) == {"heartbeat_ms": 500}
            assert service.called("register") == [("p1", 7, MAC, 500)]
            assert server.registered == {"p1"}
            now = result_of(await raw.call({"id": 1, "op": "heartbeat"}))["now_ms"]
            assert isinstance(now, int) and abs(now - asyncio.get_running_loop().time() * 1000) < 1000
            reply = await raw.call({"id": 2, "op": "splice_prepare", "flow": FLOW_JSON})
            assert reply == {"id": 2, "ok": True, "result": {"state": "holding"}}
            assert service.called("splice_prepare") == [("p1", FLOW)]
            # Cancelled, then prepared again.
            reply = await raw.call({"id": 2, "op": "splice_cancel", "flow": FLOW_JSON})
            assert reply == {"id": 2, "ok": True, "result": {"state": "proxied"}}
            assert service.called("splice_cancel") == [("p1", FLOW)]
            assert result_of(await raw.call({"id": 2, "op": "splice_prepare", "flow": FLOW_JSON}))["state"] == "holding"
            info = result_of(await raw.call({"id": 3, "op": "flow", "flow": FLOW_JSON}))
            assert info["state"] == "holding" and info["flow"] == FLOW_JSON
            reply = await raw.call({"id": 4, "op": "splice", "flow": FLOW_JSON,
                                    "a_c": 100, "b_s": 120, "a_s": 2**40, "b_c": 2**40})
            assert result_of(reply) == {"state": "spliced", "deltas": {"c2s": 20, "s2c": 0}}
            assert service.called("splice") == [("p1", FLOW, 100, 120, 2**40, 2**40)]
            flows = result_of(await raw.call({"id": 5, "op": "flows"}))["flows"]
            assert [(f["flow"]["client"], f["state"]) for f in flows] == [
                ("10.0.1.1:40000", "spliced"), ("10.0.1.2:40001", "established")]
            assert result_of(await raw.call({"id": 6, "op": "bye"})) == {}
            assert service.called("bye") == [("p1",)] and server.registered == frozenset()
            # After bye the connection stays, unregistered; registering again works.
            assert error_of(await raw.call({"id": 7, "op": "flows"})) == "not_registered"
            assert result_of(await raw.register())["heartbeat_ms"] == 1000
            await raw.close()
        assert service.dead == []

    run(main())


def test_bad_arguments_are_named(sock: Path) -> None:
    async def main() -> None:
        async with serving(sock, FakeService()):
            raw = await Raw.open(sock)
            await raw.hello()
            cases = [
                ({"op": "register", "port": 512, "mac": MAC, "heartbeat_ms": 1000}, "'port'"),
                ({"op": "register", "port": 1, "mac": "02:00", "heartbeat_ms": 1000}, "'mac'"),
                ({"op": "register", "port": 1, "mac": MAC, "heartbeat_ms": 50}, "'heartbeat_ms'"),
                ({"op": "register", "port": 1, "mac": MAC}, "'heartbeat_ms'"),
                ({"op": "register", "port": 1, "mac": MAC, "heartbeat_ms": 100, "hb": 1}, "hb"),
                ({"op": "register", "port": 1, "mac": MAC, "heartbeat_ms": 100, "ip": "10.0.0.256"}, "'ip'"),
                ({"op": "register", "port": 1, "mac": MAC, "heartbeat_ms": 100, "ip": 167772161}, "'ip'"),
            ]
            for request, arg in cases:
                reply = await raw.call({"id": 1, **request})
                assert error_of(reply) == "bad_request" and arg in reply["error"]["message"], reply
            await raw.register()
            cases = [
                ({"op": "splice_prepare"}, "'flow'"),
                ({"op": "splice_cancel"}, "'flow'"),
                ({"op": "splice_cancel", "flow": FLOW_JSON, "a_c": 1}, "a_c"),
                ({"op": "splice_prepare", "flow": {"client": "10.0.1.1:40000", "server": "10.0.2.1"}}, "'flow'"),
                ({"op": "flow", "flow": {"client": "10.0.1.1:40000", "server": "x:80"}}, "'flow'"),
                ({"op": "splice", "flow": FLOW_JSON, "a_c": 1, "b_s": 1, "a_s": 1}, "'b_c'"),
                ({"op": "splice", "flow": FLOW_JSON, "a_c": -1, "b_s": 1, "a_s": 1, "b_c": 1}, "'a_c'"),
                ({"op": "splice", "flow": FLOW_JSON, "a_c": 1, "b_s": "1", "a_s": 1, "b_c": 1}, "'b_s'"),
                ({"op": "splice", "flow": FLOW_JSON, "a_c": 1, "b_s": 1, "a_s": 1.5, "b_c": 1}, "'a_s'"),
                ({"op": "heartbeat", "now": 1}, "now"),
            ]
            for request, arg in cases:
                reply = await raw.call({"id": 2, **request})
                assert error_of(reply) == "bad_request" and arg in reply["error"]["message"], reply
            await raw.close()

    run(main())


def test_service_error_codes(sock: Path) -> None:
    service = FakeService()
    service.add_flow("p1")

    async def main() -> None:
        async with serving(sock, service):
            raw = await Raw.open(sock)
            await raw.hello("p1")
            for op in ("heartbeat", "flows", "bye"):
                assert error_of(await raw.call({"id": 1, "op": op})) == "not_registered"
            assert error_of(await raw.call({"id": 1, "op": "flow", "flow": FLOW_JSON})) == "not_registered"
            await raw.register()
            missing = {"client": "10.9.9.9:1", "server": "10.0.2.1:80"}
            assert error_of(await raw.call({"id": 2, "op": "flow", "flow": missing})) == "not_found"
            assert error_of(await raw.call({"id": 2, "op": "splice_prepare", "flow": missing})) == "not_found"
            counts = {"a_c": 1, "b_s": 1, "a_s": 1, "b_c": 1}
            # Splice or cancel before prepare: the flow is not holding.
            assert error_of(await raw.call({"id": 3, "op": "splice", "flow": FLOW_JSON, **counts})) == "conflict"
            assert error_of(await raw.call({"id": 3, "op": "splice_cancel", "flow": FLOW_JSON})) == "conflict"
            assert error_of(await raw.call({"id": 3, "op": "splice_cancel", "flow": missing})) == "not_found"
            service.unavailable = True
            reply = await raw.call({"id": 4, "op": "splice_prepare", "flow": FLOW_JSON})
            assert error_of(reply) == "unavailable" and "retry" in reply["error"]["message"]
            service.unavailable = False
            service.crash = True  # a bug in the controller: internal, and the connection lives on
            reply = await raw.call({"id": 5, "op": "flows"})
            assert error_of(reply) == "internal" and "crashed" in reply["error"]["message"]
            assert result_of(await raw.call({"id": 6, "op": "flows"}))["flows"]
            await raw.close()

    run(main())


def test_register_refused_by_service_and_bad_grant(sock: Path) -> None:
    service = FakeService()

    async def main() -> None:
        async with serving(sock, service) as server:
            raw = await Raw.open(sock)
            await raw.hello("p1")
            reply = await raw.register(port=255)  # the service's own checks pass through
            assert error_of(reply) == "bad_request" and "CPU port" in reply["error"]["message"]
            service.unavailable = True
            assert error_of(await raw.register()) == "unavailable"
            service.unavailable = False
            service.grant = 10  # outside 100-60000: the controller's bug, not the proxy's
            assert error_of(await raw.register()) == "internal"
            assert server.registered == frozenset()
            service.grant = 2000
            assert result_of(await raw.register(heartbeat_ms=100)) == {"heartbeat_ms": 2000}
            await raw.close()

    run(main())


def test_slow_splice_does_not_hold_up_heartbeats(sock: Path) -> None:
    service = FakeService()
    service.add_flow("p1", state="holding")
    service.gate = asyncio.Event()

    async def main() -> None:
        async with serving(sock, service):
            raw = await Raw.open(sock)
            await raw.hello("p1")
            await raw.register()
            await raw.send({"id": "s", "op": "splice", "flow": FLOW_JSON, "a_c": 0, "b_s": 0, "a_s": 0, "b_c": 0})
            reply = await raw.call({"id": "h", "op": "heartbeat"})
            assert reply["id"] == "h"  # answered while the splice waits on the "switch"
            service.gate.set()
            reply = await raw.recv()
            assert reply["id"] == "s" and result_of(reply)["state"] == "spliced"
            await raw.close()

    run(main())


# --- events and liveness ----------------------------------------------------------------------------------

def test_send_event(sock: Path) -> None:
    async def main() -> None:
        async with serving(sock) as server:
            raw = await Raw.open(sock)
            await raw.hello("p1")
            assert server.send_event("p1", "flow_reset", flow=FLOW, reason="server refused")
            assert await raw.recv() == {"event": "flow_reset", "flow": FLOW_JSON, "reason": "server refused"}
            assert server.send_event("p1", "flow_closed", flow=FLOW)
            assert await raw.recv() == {"event": "flow_closed", "flow": FLOW_JSON}
            assert not server.send_event("p2", "flow_closed", flow=FLOW)  # not connected
            with pytest.raises(ValueError, match="unknown"):
                server.send_event("p1", "flow_spliced", flow=FLOW)
            with pytest.raises(ValueError, match="fields"):
                server.send_event("p1", "flow_reset", flow=FLOW)
            await raw.close()

    run(main())


def test_missed_heartbeats_warn_once_then_dead(sock: Path) -> None:
    service = FakeService()

    async def main() -> None:
        async with serving(sock, service) as server:
            raw = await Raw.open(sock)
            await raw.hello("p1")
            await raw.register(heartbeat_ms=100)
            start = asyncio.get_running_loop().time()
            event = await raw.recv()  # no heartbeats are sent
            assert event["event"] == "heartbeat_missed" and set(event) == {"event", "deadline_ms"}
            assert service.dead == []  # warned first
            assert 200 <= event["deadline_ms"] - start * 1000 <= 300
            await poll(lambda: service.dead == ["p1"], what="proxy_dead")
            assert asyncio.get_running_loop().time() * 1000 >= event["deadline_ms"] - 5
            assert server.registered == frozenset() and server.connected == {"p1"}
            assert error_of(await raw.call({"id": 1, "op": "heartbeat"})) == "not_registered"
            # It may come back.
            assert result_of(await raw.register(heartbeat_ms=1000))["heartbeat_ms"] == 1000
            await raw.close()
        assert [c[0] for c in service.calls].count("proxy_dead") == 1

    run(main())


def test_heartbeats_keep_a_proxy_alive_and_reset_the_warning(sock: Path) -> None:
    service = FakeService()

    async def main() -> None:
        async with serving(sock, service):
            raw = await Raw.open(sock)
            await raw.hello("p1")
            await raw.register(heartbeat_ms=100)
            assert (await raw.recv())["event"] == "heartbeat_missed"
            assert result_of(await raw.call({"id": 1, "op": "heartbeat"}))
            # The warning was answered: it comes again only after another two silent intervals,
            # and the proxy is not dead.
            assert (await raw.recv())["event"] == "heartbeat_missed"
            assert service.dead == []
            assert result_of(await raw.call({"id": 2, "op": "heartbeat"}))
            await raw.close()

    run(main())


def test_disconnect_keeps_registration_until_deadline(sock: Path) -> None:
    service = FakeService()
    service.add_flow("p1")

    async def main() -> None:
        async with serving(sock, service) as server:
            raw = await Raw.open(sock)
            await raw.hello("p1")
            await raw.register(heartbeat_ms=200)
            await raw.close()
            await poll(lambda: server.connected == frozenset(), what="disconnect")
            assert server.registered == {"p1"}
            # Back within the deadline (600 ms): the new connection must register again, and then
            # the proxy and its flows live on.
            raw = await Raw.open(sock)
            await raw.hello("p1")
            assert error_of(await raw.call({"id": 1, "op": "flows"})) == "not_registered"
            await raw.register(heartbeat_ms=200)
            assert len(result_of(await raw.call({"id": 2, "op": "flows"}))["flows"]) == 1
            assert len(service.called("register")) == 2 and service.dead == []
            # Gone for good: dead at the deadline, with nobody to warn.
            await raw.close()
            await poll(lambda: service.dead == ["p1"], what="proxy_dead")
            assert server.registered == frozenset()

    run(main())


def test_unregister_by_the_controller(sock: Path) -> None:
    service = FakeService()

    async def main() -> None:
        async with serving(sock, service) as server:
            raw = await Raw.open(sock)
            await raw.hello("p1")
            await raw.register(heartbeat_ms=100)
            assert server.unregister("p1") and not server.unregister("p1")
            assert error_of(await raw.call({"id": 1, "op": "heartbeat"})) == "not_registered"
            await raw.close()
        assert service.dead == []  # its port went down: the controller already handled it

    run(main())


def test_close_drops_connections(sock: Path) -> None:
    async def main() -> None:
        server = ProxyApiServer(sock, FakeService())
        await server.start()
        raw = await Raw.open(sock)
        await raw.hello("p1")
        await raw.register()
        await server.close()
        assert await raw.closed()
        assert not sock.exists()

    run(main())


def test_a_deadline_missed_by_our_own_lag_is_not_a_death() -> None:
    """The supervisor blames the proxy only when the controller was on time and has nothing from
    it unread: a late wake-up, or heartbeat bytes still in the socket, earn one more interval."""
    import socket as socketlib

    from p4splice.controller.proxyapi.server import ProxyApiServer, _Connection, _Registration

    class Writer:
        def __init__(self, sock: socketlib.socket) -> None:
            self.sock = sock

        def get_extra_info(self, name: str) -> object:
            return self.sock if name == "socket" else None

    ours, proxy = socketlib.socketpair()
    with ours, proxy:
        conn = _Connection(Writer(ours), pid=1, uid=0, out=None)  # type: ignore[arg-type]
        reg = _Registration("p", interval=1.0, last_beat=0.0, conn=conn)
        assert not ProxyApiServer._spoke_unheard(reg, lateness=0.1)  # on time, nothing unread: dead
        assert ProxyApiServer._spoke_unheard(reg, lateness=0.6)  # we woke 0.6 s late
        proxy.sendall(b'{"id": 9, "op": "heartbeat"}\n')
        assert ProxyApiServer._spoke_unheard(reg, lateness=0.0)  # it spoke; we have not read it
        conn.closing = True
        assert not ProxyApiServer._spoke_unheard(reg, lateness=0.0)
