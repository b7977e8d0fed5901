"""The controller's side of the proxy API: an asyncio Unix-socket server (docs/proxy-api.md).

It owns the transport (socket file, permissions, peer credentials, JSON-lines framing), checks
every request against the API, keeps time for heartbeats, and hands the rest to a
:class:`~.service.SpliceService`.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import grp
import logging
import os
import socket
import stat
import struct
import termios
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import __version__
from .protocol import (
    EVENTS,
    MAX_LINE,
    MISSED_INTERVALS,
    SUPPORTED_VERSIONS,
    ApiError,
    BadRequest,
    Flow,
    check_count,
    check_flow,
    check_heartbeat_ms,
    check_ipv4,
    check_mac,
    check_port,
    check_proxy_name,
    check_quiescent,
    decode_line,
    encode,
)
from .service import Deltas, SpliceService

__all__ = ["DEFAULT_SOCKET", "ProxyApiServer", "SocketInUseError"]

log = logging.getLogger(__name__)

DEFAULT_SOCKET = "/run/p4splice/proxy.sock"

# Arguments of each op besides "id" and "op"; anything else is refused, so that a misspelt
# argument is an error and not a silently applied default.
_ARGS: dict[str, frozenset[str]] = {
    "hello": frozenset({"version", "proxy"}),
    "register": frozenset({"port", "mac", "heartbeat_ms", "ip"}),  # ip: optional
    "heartbeat": frozenset({"quiescent"}),
    "splice_prepare": frozenset({"flow"}),
    "splice": frozenset({"flow", "a_c", "b_s", "a_s", "b_c"}),
    "splice_cancel": frozenset({"flow"}),
    "flow": frozenset({"flow"}),
    "flows": frozenset(),
    "bye": frozenset(),
}
_COUNTS = ("a_c", "b_s", "a_s", "b_c")


class SocketInUseError(RuntimeError):
    """Another live process listens on the socket path (or the path is not a socket)."""


@dataclass(eq=False)
class _Connection:
    writer: asyncio.StreamWriter
    pid: int
    uid: int
    out: asyncio.Queue[bytes | None]
    name: str | None = None
    closing: bool = False
    in_flight: set[asyncio.Task[None]] = field(default_factory=set)

    def __str__(self) -> str:
        return f"proxy {self.name or '?'} (pid {self.pid}, uid {self.uid})"


@dataclass(eq=False)
class _Registration:
    name: str
    interval: float  # seconds
    last_beat: float  # loop time (CLOCK_MONOTONIC) of the last register or heartbeat received
    conn: _Connection | None
    warned: bool = False
    supervisor: asyncio.Task[None] | None = None

    @property
    def deadline(self) -> float:
        return self.last_beat + MISSED_INTERVALS * self.interval


def _unread_bytes(conn: _Connection | None) -> int:
    """Bytes the proxy sent that the kernel holds and we have not read (SIOCINQ)."""
    sock = conn.writer.get_extra_info("socket") if conn is not None and not conn.closing else None
    if sock is None:
        return 0
    try:
        buf = fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0")
    except OSError:
        return 0
    return struct.unpack("i", buf)[0]


def _ms(t: float) -> int:
    return int(t * 1000)


class ProxyApiServer:
    """Serves the proxy API on a Unix socket at ``path`` for ``service``.

    ``allowed_uids``: peers (by ``SO_PEERCRED``) that may talk to it; default the controller's
    own uid and root. ``group`` (name or gid): group of the socket file, and of its directory
    when the server creates it. Use as ``async with ProxyApiServer(...) as server:`` or call
    :meth:`start` and :meth:`close`.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        service: SpliceService,
        allowed_uids: Collection[int] | None = None,
        group: str | int | None = None,
        *,
        controller_name: str = f"p4splice {__version__}",
        max_in_flight: int = 64,
        max_queued: int = 1024,
        backlog: int = 64,
    ) -> None:
        self.path = Path(path)
        self.service = service
        self.allowed_uids = frozenset(allowed_uids) if allowed_uids is not None else frozenset({os.getuid(), 0})
        self.group = group
        self.controller_name = controller_name
        self.max_in_flight = max_in_flight
        self.max_queued = max_queued
        self.backlog = backlog
        self._server: asyncio.Server | None = None
        self._inode: tuple[int, int] | None = None
        self._conns: dict[str, _Connection] = {}  # proxy name -> its one live connection
        self._regs: dict[str, _Registration] = {}
        self._handlers: set[asyncio.Task[Any]] = set()
        self._tasks: set[asyncio.Task[Any]] = set()  # in-flight requests, supervisors, proxy_dead calls

    # --- lifecycle -------------------------------------------------------------------------------

    async def __aenter__(self) -> ProxyApiServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        gid = self._gid()
        self._make_directory(gid)
        self._clear_stale_socket()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            try:
                # bind() fails when the path exists, so a socket a peer created since the check
                # above is never replaced.
                sock.bind(os.fspath(self.path))
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise SocketInUseError(f"{self.path}: created by another process meanwhile") from None
                raise
            # Nobody can connect before listen(), so setting the mode after bind() leaves no window.
            os.chmod(self.path, 0o660)
            if gid is not None:
                os.chown(self.path, -1, gid)
            st = os.stat(self.path)
            self._inode = (st.st_dev, st.st_ino)
            sock.listen(self.backlog)
            # limit: readuntil() refuses a line whose '\n' is not within MAX_LINE bytes.
            self._server = await asyncio.start_unix_server(self._on_connect, sock=sock, limit=MAX_LINE - 1)
        except BaseException:
            sock.close()
            self._unlink_own_socket()
            raise
        log.info("proxy API listening on %s (uids %s)", self.path, sorted(self.allowed_uids))

    async def close(self) -> None:
        """Stop listening, drop every connection, stop supervision (without declaring anyone
        dead: a restarted controller rebuilds from the switch), and remove the socket file."""
        if self._server is not None:
            self._server.close()
        for task in list(self._handlers) + list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._handlers, *self._tasks, return_exceptions=True)
        self._handlers.clear()
        self._tasks.clear()
        self._conns.clear()
        self._regs.clear()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        self._unlink_own_socket()
        log.info("proxy API on %s closed", self.path)

    def _gid(self) -> int | None:
        if self.group is None:
            return None
        if isinstance(self.group, int):
            return self.group
        return grp.getgrnam(self.group).gr_gid

    def _make_directory(self, gid: int | None) -> None:
        directory = self.path.parent
        if directory.is_dir():
            # Not ours to change: it may be /run or /tmp. The socket's own mode still applies.
            return
        directory.mkdir(parents=True)
        os.chmod(directory, 0o750)  # mkdir's mode is subject to the umask
        if gid is not None:
            os.chown(directory, -1, gid)

    def _clear_stale_socket(self) -> None:
        """Remove a socket file left by a controller that died; refuse one that is live."""
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(st.st_mode):
            raise SocketInUseError(f"{self.path} exists and is not a socket")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.settimeout(1.0)
        try:
            probe.connect(os.fspath(self.path))
        except ConnectionRefusedError:
            log.warning("removing stale proxy API socket %s (nobody listens on it)", self.path)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
            return
        except FileNotFoundError:
            return
        except (BlockingIOError, TimeoutError):
            # A full backlog or a slow accept: someone is there.
            pass
        finally:
            probe.close()
        raise SocketInUseError(f"{self.path}: another process is listening on it")

    def _unlink_own_socket(self) -> None:
        # Only the file this server made: a successor may already have replaced it.
        if self._inode is None:
            return
        try:
            st = os.lstat(self.path)
            if (st.st_dev, st.st_ino) == self._inode:
                os.unlink(self.path)
        except FileNotFoundError:
            pass
        self._inode = None

    # --- what the controller calls ----------------------------------------------------------------

    @property
    def connected(self) -> frozenset[str]:
        """Names of the proxies with a live connection (hello done)."""
        return frozenset(self._conns)

    @property
    def registered(self) -> frozenset[str]:
        """Names of the proxies registered and not (yet) dead, connected or within their deadline."""
        return frozenset(self._regs)

    def send_event(self, proxy: str, event: str, **fields: Any) -> bool:
        """Push an event to ``proxy``'s connection. A :class:`Flow` field is sent in its wire form.
        Returns False when the proxy has no live connection (the event is dropped: events are
        notices, the state of record is what ``flow``/``flows`` answer)."""
        required = EVENTS.get(event)
        if required is None:
            raise ValueError(f"unknown proxy API event {event!r}")
        if set(fields) != required:
            raise ValueError(f"event {event} takes fields {sorted(required)}, got {sorted(fields)}")
        conn = self._conns.get(proxy)
        if conn is None:
            log.debug("event %s for %s dropped: not connected", event, proxy)
            return False
        body = {k: v.to_json() if isinstance(v, Flow) else v for k, v in fields.items()}
        return self._send(conn, {"event": event, **body})

    def unregister(self, proxy: str) -> bool:
        """End ``proxy``'s registration without calling ``proxy_dead`` -- for when the controller
        already handled its end itself (e.g. its switch port went down). Its requests then get
        ``not_registered`` until it registers again."""
        reg = self._regs.pop(proxy, None)
        if reg is None:
            return False
        if reg.supervisor is not None:
            reg.supervisor.cancel()
        log.info("proxy %s unregistered by the controller", proxy)
        return True

    # --- connections ------------------------------------------------------------------------------

    def _spawn(self, coro: Any, owner: _Connection | None = None) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        if owner is not None:
            owner.in_flight.add(task)
            task.add_done_callback(owner.in_flight.discard)
        return task

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            await self._serve(reader, writer)
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("proxy API connection failed")
        finally:
            self._handlers.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock: socket.socket = writer.get_extra_info("socket")
        pid, uid, _gid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
        if uid not in self.allowed_uids:
            log.warning("proxy API: refused pid %d uid %d (not an allowed uid)", pid, uid)
            error = ApiError("unauthorized", f"uid {uid} may not use this API")
            writer.write(encode({"id": None, "ok": False, "error": error.to_json()}))
            with contextlib.suppress(ConnectionError):
                await asyncio.wait_for(writer.drain(), 1.0)
            return
        conn = _Connection(writer, pid, uid, asyncio.Queue(self.max_queued))
        log.debug("proxy API: connection from pid %d uid %d", pid, uid)
        writing = asyncio.get_running_loop().create_task(self._write_loop(conn))
        limit = asyncio.Semaphore(self.max_in_flight)
        try:
            while not conn.closing:
                try:
                    line = await reader.readuntil(b"\n")
                except asyncio.IncompleteReadError:
                    break  # EOF; a partial last line is not a request
                except asyncio.LimitOverrunError:
                    # The rest of the line cannot be found without reading it all: framing is lost.
                    self._reply_error(conn, None, BadRequest(f"line longer than {MAX_LINE} bytes"))
                    self._finish(conn)
                    break
                except ConnectionError:
                    break
                await self._on_line(conn, line[:-1], limit)
        finally:
            self._disconnected(conn)
            if not conn.closing:
                self._finish(conn)
            try:
                await asyncio.wait_for(writing, 2.0)
            except (TimeoutError, asyncio.CancelledError):
                writing.cancel()

    async def _write_loop(self, conn: _Connection) -> None:
        try:
            while (data := await conn.out.get()) is not None:
                conn.writer.write(data)
                await conn.writer.drain()
        except ConnectionError:
            conn.closing = True

    def _send(self, conn: _Connection, message: Mapping[str, Any]) -> bool:
        if conn.closing:
            return False
        try:
            conn.out.put_nowait(encode(message))
        except asyncio.QueueFull:
            # A proxy that does not read its socket must not grow the controller's memory.
            log.warning("%s does not read its replies and events: dropping the connection", conn)
            conn.closing = True
            conn.writer.transport.abort()
            return False
        return True

    def _finish(self, conn: _Connection) -> None:
        """Send what is queued, then close."""
        conn.closing = True
        with contextlib.suppress(asyncio.QueueFull):
            conn.out.put_nowait(None)

    def _reply(self, conn: _Connection, req_id: Any, result: Mapping[str, Any]) -> None:
        self._send(conn, {"id": req_id, "ok": True, "result": result})

    def _reply_error(self, conn: _Connection, req_id: Any, error: ApiError) -> None:
        self._send(conn, {"id": req_id, "ok": False, "error": error.to_json()})

    def _disconnected(self, conn: _Connection) -> None:
        if conn.name is None or self._conns.get(conn.name) is not conn:
            return
        del self._conns[conn.name]
        reg = self._regs.get(conn.name)
        if reg is not None and reg.conn is conn:
            # The registration outlives the connection until its heartbeat deadline, so that a
            # proxy that reconnects and registers again in time keeps its flows.
            reg.conn = None
            left = reg.deadline - asyncio.get_running_loop().time()
            log.warning("%s disconnected without bye; it has %.1f s to register again", conn, max(left, 0))
        else:
            log.info("%s disconnected", conn)

    # --- requests ---------------------------------------------------------------------------------

    async def _on_line(self, conn: _Connection, line: bytes, limit: asyncio.Semaphore) -> None:
        try:
            request = decode_line(line)
        except ValueError as exc:
            self._reply_error(conn, None, BadRequest(f"malformed JSON: {exc}"))
            return
        if not isinstance(request, dict):
            self._reply_error(conn, None, BadRequest("a request must be a JSON object"))
            return
        req_id = request.get("id")
        if "id" not in request or isinstance(req_id, (dict, list)):
            self._reply_error(conn, None, BadRequest("argument 'id' must be present and a JSON scalar"))
            return
        try:
            op = request.get("op")
            if not isinstance(op, str) or op not in _ARGS:
                raise BadRequest(f"argument 'op' must be one of {', '.join(_ARGS)}")
            unknown = set(request) - _ARGS[op] - {"id", "op"}
            if unknown:
                raise BadRequest(f"unknown argument(s) for {op}: {', '.join(sorted(unknown))}")
            if op == "hello":
                self._hello(conn, request)
                return
            if conn.name is None:
                raise BadRequest("hello must come first")
            if op in ("register", "bye"):
                # Awaited here, not in a task: what follows on this connection must see their effect.
                if op == "register":
                    result = await self._register(conn, request)
                else:
                    result = await self._bye(conn)
                self._reply(conn, req_id, result)
                return
            reg = self._regs.get(conn.name)
            if reg is None or reg.conn is not conn:
                raise ApiError("not_registered", f"proxy {conn.name} must register first")
            args = self._check_args(op, request)
            if op == "heartbeat":
                # Proof of life is the request's arrival, not the end of the service's call.
                reg.last_beat = asyncio.get_running_loop().time()
                reg.warned = False
        except ApiError as exc:
            self._reply_error(conn, req_id, exc)
            return
        # A slow op (a splice waiting on the switch) must not hold up the heartbeats behind it,
        # so ops run concurrently, at most max_in_flight per connection (then reading pauses).
        await limit.acquire()
        task = self._spawn(self._run(conn, conn.name, op, req_id, args), owner=conn)
        task.add_done_callback(lambda _t: limit.release())

    def _check_args(self, op: str, request: dict[str, Any]) -> dict[str, Any]:
        args: dict[str, Any] = {}
        if "flow" in _ARGS[op]:
            args["flow"] = check_flow(request.get("flow"))
        if op == "splice":
            for name in _COUNTS:
                args[name] = check_count(name, request.get(name))
        if op == "heartbeat" and "quiescent" in request:
            args["quiescent"] = check_quiescent(request["quiescent"])
        return args

    async def _run(self, conn: _Connection, proxy: str, op: str, req_id: Any, args: dict[str, Any]) -> None:
        svc = self.service
        try:
            result: dict[str, Any]
            if op == "heartbeat":
                if "quiescent" in args:
                    # Optional (docs/proxy-api.md): only services that vouch for quiescence take it.
                    await svc.heartbeat(proxy, quiescent=args["quiescent"])  # type: ignore[call-arg]
                else:
                    await svc.heartbeat(proxy)
                result = {"now_ms": _ms(asyncio.get_running_loop().time())}
            elif op == "splice_prepare":
                await svc.splice_prepare(proxy, args["flow"])
                result = {"state": "holding"}
            elif op == "splice":
                deltas = await svc.splice(proxy, **args)
                if not isinstance(deltas, Deltas):
                    raise TypeError(f"SpliceService.splice returned {type(deltas).__name__}, not Deltas")
                result = {"state": "spliced", "deltas": deltas.to_json()}
            elif op == "splice_cancel":
                await svc.splice_cancel(proxy, args["flow"])
                result = {"state": "proxied"}
            elif op == "flow":
                result = dict(await svc.flow(proxy, args["flow"]))
            elif op == "flows":
                result = {"flows": [dict(info) for info in await svc.flows(proxy)]}
            else:  # pragma: no cover - _on_line only spawns the ops above
                raise AssertionError(op)
            encode(result)  # a result that is not JSON is the service's bug: report it as such
        except ApiError as exc:
            self._reply_error(conn, req_id, exc)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("proxy API %s of %s failed", op, proxy)
            self._reply_error(conn, req_id, ApiError("internal", f"{op} failed in the controller: {exc}"))
        else:
            self._reply(conn, req_id, result)

    def _hello(self, conn: _Connection, request: dict[str, Any]) -> None:
        # Once per connection, whatever it asks: a second one with an unknown version must not
        # close a connection that carries a registration.
        if conn.name is not None:
            raise BadRequest(f"hello was already done on this connection (as {conn.name})")
        version = request.get("version")
        if not isinstance(version, int) or isinstance(version, bool):
            raise BadRequest("argument 'version' must be an integer")
        if version not in SUPPORTED_VERSIONS:
            self._reply_error(conn, request["id"], ApiError(
                "unsupported_version", f"version {version} is not spoken here",
                supported=list(SUPPORTED_VERSIONS),
            ))
            self._finish(conn)
            return
        name = check_proxy_name(request.get("proxy"))
        if name in self._conns:
            raise ApiError("conflict", f"proxy {name} is already connected on another connection")
        conn.name = name
        self._conns[name] = conn
        log.info("%s says hello (version %d)", conn, version)
        self._reply(conn, request["id"], {"version": version, "controller": self.controller_name})

    async def _register(self, conn: _Connection, request: dict[str, Any]) -> dict[str, Any]:
        port = check_port(request.get("port"))
        mac = check_mac(request.get("mac"))
        wanted = check_heartbeat_ms(request.get("heartbeat_ms"))
        ip = check_ipv4(request["ip"]) if "ip" in request else None
        name = conn.name
        assert name is not None
        loop = asyncio.get_running_loop()
        reg = self._regs.get(name)
        if reg is not None:
            # A re-registration (e.g. after a reconnect) counts as proof of life at once, so the
            # old deadline cannot pass while the service is busy with it.
            reg.last_beat = loop.time()
            reg.warned = False
        try:
            granted = await self.service.register(name, port, mac, wanted, ip)
        except ApiError:
            raise
        except Exception as exc:
            log.exception("proxy API register of %s failed", name)
            raise ApiError("internal", f"register failed in the controller: {exc}") from None
        try:
            granted = check_heartbeat_ms(granted)
        except BadRequest as exc:
            log.error("SpliceService.register granted %r to %s", granted, name)
            raise ApiError("internal", f"the controller granted a bad interval: {exc.message}") from None
        if conn.closing or self._conns.get(name) is not conn:
            raise ApiError("conflict", "the connection closed while registering")
        reg = self._regs.get(name)
        if reg is None:
            reg = _Registration(name, granted / 1000, loop.time(), conn)
            self._regs[name] = reg
            reg.supervisor = self._spawn(self._supervise(reg))
        else:
            reg.interval = granted / 1000
            reg.last_beat = loop.time()
            reg.warned = False
            reg.conn = conn
            if reg.supervisor is not None:
                reg.supervisor.cancel()
            reg.supervisor = self._spawn(self._supervise(reg))  # the new interval may be shorter
        log.info("%s registered: port %d mac %s heartbeat %d ms", conn, port, mac, granted)
        return {"heartbeat_ms": granted}

    async def _bye(self, conn: _Connection) -> dict[str, Any]:
        name = conn.name
        assert name is not None
        reg = self._regs.get(name)
        if reg is None or reg.conn is not conn:
            raise ApiError("not_registered", f"proxy {name} is not registered")
        # Gone before the service hears of it, so the supervisor cannot declare it dead meanwhile.
        self.unregister(name)
        try:
            await self.service.bye(name)
        except ApiError:
            raise
        except Exception as exc:
            log.exception("proxy API bye of %s failed", name)
            raise ApiError("internal", f"bye failed in the controller: {exc}") from None
        log.info("%s said bye", conn)
        return {}

    # --- liveness ---------------------------------------------------------------------------------

    @staticmethod
    def _spoke_unheard(reg: _Registration, lateness: float) -> bool:
        """Whether a passed deadline may be the controller's fault: its loop woke this supervisor
        late by more than half an interval (so the proxy's heartbeats may be queued behind other
        work), or the proxy's connection holds bytes not read yet. Under a burst of handshakes on
        a busy machine both happen, and a proxy declared dead then takes its flows with it."""
        return lateness > reg.interval / 2 or _unread_bytes(reg.conn) > 0

    async def _supervise(self, reg: _Registration) -> None:
        loop = asyncio.get_running_loop()
        planned = loop.time()  # when this supervisor meant to wake up last
        while True:
            now = loop.time()
            dead_at = reg.deadline
            warn_at = dead_at - reg.interval
            if now >= dead_at:
                if not self._spoke_unheard(reg, now - planned):
                    break
                # Our loop, not the proxy, was late: what it sent has not been read yet.
                log.info("proxy %s: deadline passed while the controller lagged %.1f s behind; "
                         "one more interval", reg.name, now - planned)
                reg.last_beat = now - (MISSED_INTERVALS - 1) * reg.interval
                continue
            if now >= warn_at and not reg.warned:
                reg.warned = True
                if reg.conn is not None:
                    self.send_event(reg.name, "heartbeat_missed", deadline_ms=_ms(dead_at))
            planned = warn_at if now < warn_at else dead_at
            await asyncio.sleep(planned - now)
        if self._regs.get(reg.name) is not reg:
            return
        del self._regs[reg.name]
        log.warning("proxy %s missed its heartbeats for %d intervals: declared dead", reg.name, MISSED_INTERVALS)
        try:
            await self.service.proxy_dead(reg.name)
        except Exception:
            log.exception("SpliceService.proxy_dead(%s) failed", reg.name)

