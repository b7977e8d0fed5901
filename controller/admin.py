"""The daemon's admin API: a Unix socket for ``splicectl`` (status, flows, splice FLOW).

Separate from the proxy API socket so that the proxy's user cannot reach operator commands and the
proxy API's wire contract stays the proxy's. Same framing (one JSON object per line of at most
:data:`MAX_LINE` bytes, ``id`` echoed, ``ok`` with ``result`` or ``error``; docs/splicectl.md, "The
admin socket"); peers are checked with SO_PEERCRED against ``allowed_uids`` (default: root and the
daemon's own uid).

| op | arguments | result |
|---|---|---|
| ``status`` | -- | switch, role, proxies, flows by state, pending handshakes |
| ``flows`` | -- | every flow the controller tracks, with entries |
| ``flow`` | ``flow`` | one flow, with its entries' counters read from the switch |
| ``splice`` | ``flow``, ``wait`` (s, default 10) | holds the flow, tells its proxy (event ``splice_requested``), waits until the proxy reported and the flow is spliced |

Requests are answered one at a time, in order, on each connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import socket
import struct
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

from .orchestrator import Orchestrator
from .proxy_service import ControllerService, flow_key
from .proxyapi.protocol import ApiError, BadRequest, Flow, decode_line, encode
from .splice.splice import FlowState

__all__ = ["AdminServer", "admin_request"]

log = logging.getLogger(__name__)

# A request line is at most this many bytes, its '\n' included.
MAX_LINE = 64 * 1024
DEFAULT_WAIT = 10.0

# The arguments of each op besides "id" and "op"; others are refused (a misspelt "wait" would
# otherwise be the default without a word).
_ARGS: dict[str, frozenset[str]] = {
    "status": frozenset(), "flows": frozenset(), "flow": frozenset({"flow"}), "splice": frozenset({"flow", "wait"}),
}


class AdminServer:
    def __init__(self, path: str | os.PathLike[str], orch: Orchestrator, service: ControllerService,
                 allowed_uids: Collection[int] | None = None,
                 status: Callable[[], dict[str, Any]] | None = None,
                 ask_proxy: Callable[[str, Flow], bool] | None = None) -> None:
        self.path = Path(path)
        self.orch = orch
        self.service = service
        self.allowed_uids = frozenset(allowed_uids) if allowed_uids else frozenset({0, os.getuid()})
        self.status = status or (lambda: {})
        self.ask_proxy = ask_proxy
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[Any]] = set()  # one per connection

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                probe.connect(os.fspath(self.path))
            except ConnectionRefusedError:
                os.unlink(self.path)  # left by a daemon that died
            else:
                raise RuntimeError(f"{self.path}: another daemon is listening on it")
            finally:
                probe.close()
        old = os.umask(0o117)  # 0660: the mode is right from the first instant
        try:
            # limit: readuntil() refuses a line whose '\n' is not within MAX_LINE bytes.
            self._server = await asyncio.start_unix_server(self._serve, path=os.fspath(self.path), limit=MAX_LINE - 1)
        finally:
            os.umask(old)
        log.info("admin API on %s (uids %s)", self.path, sorted(self.allowed_uids))

    async def close(self) -> None:
        """Stop listening and drop every connection (a request in progress ends with it)."""
        if self._server is not None:
            self._server.close()
            for task in list(self._handlers):
                task.cancel()
            await asyncio.gather(*self._handlers, return_exceptions=True)
            await self._server.wait_closed()
            self._server = None
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        sock: socket.socket = writer.get_extra_info("socket")
        _pid, uid, _gid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
        try:
            if uid not in self.allowed_uids:
                writer.write(_line({"id": None, "ok": False,
                                    "error": {"code": "unauthorized", "message": f"uid {uid} may not use this API"}}))
                await writer.drain()
                return
            while True:
                last = False
                try:
                    line = await reader.readuntil(b"\n")
                except asyncio.IncompleteReadError as exc:
                    # EOF: a last line without its '\n' is answered all the same
                    line, last = exc.partial, True
                    if not line:
                        break
                except asyncio.LimitOverrunError:
                    # Where the next request starts cannot be found without reading this one whole.
                    writer.write(_line(_error(None, BadRequest(f"line longer than {MAX_LINE} bytes"))))
                    await writer.drain()
                    break
                writer.write(_line(await self._handle(line)))
                await writer.drain()
                if last:
                    break
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._handlers.discard(task)
            writer.close()

    async def _handle(self, line: bytes) -> dict[str, Any]:
        req_id = None
        try:
            try:
                req = decode_line(line)
            except ValueError as e:
                raise BadRequest(f"malformed JSON: {e}") from None
            if not isinstance(req, dict):
                raise BadRequest("a request must be a JSON object")
            if isinstance(req.get("id"), (dict, list)):
                raise BadRequest("argument 'id' must be a JSON scalar")
            req_id = req.get("id")
            op = req.get("op")
            if not isinstance(op, str) or op not in _ARGS:
                raise BadRequest(f"op must be one of {', '.join(_ARGS)}")
            unknown = set(req) - _ARGS[op] - {"id", "op"}
            if unknown:
                raise BadRequest(f"unknown argument(s) for {op}: {', '.join(sorted(unknown))}")
            if op == "status":
                result = self.status() | {"flows": self.orch.flow_states()}
            elif op == "flows":
                keys = sorted(set(self.orch.core.flows.keys()) | set(self.orch.core.handshakes.flows()))
                result = {"flows": [self.orch.flow_info(k) for k in keys]}
            elif op == "flow":
                key = flow_key(_flow(req))
                if not self.orch._core_knows(key):
                    raise ApiError("not_found", f"no flow {key}")
                result = self.orch.flow_info(key, await self.orch.flow_counters(key))
            else:
                flow, wait = _flow(req), _wait(req)
                result = await self._splice(flow, wait)
        except ApiError as e:
            return _error(req_id, e)
        except Exception as e:
            # Every argument is checked above: anything else is the controller's fault.
            log.exception("admin request failed")
            return _error(req_id, ApiError("internal", str(e)))
        return {"id": req_id, "ok": True, "result": result}

    async def _splice(self, flow: Flow, timeout: float) -> dict[str, Any]:
        key = flow_key(flow)
        if key not in self.orch.core.flows:
            raise ApiError("not_found", f"no established flow {key}")
        await self.service.request_splice(key)
        told = self.ask_proxy(self.orch._flow_proxy_port(key), flow) if self.ask_proxy else False  # type: ignore[arg-type]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            fl = self.orch.core.flows.get(key)
            if fl is None or fl.state is not FlowState.HOLDING:
                break
            if loop.time() > deadline:
                raise ApiError("unavailable", f"the proxy did not report within {timeout:g} s "
                                              f"({'told' if told else 'could not be told'}); the hold "
                                              f"ends by itself")
            await asyncio.sleep(0.01)
        await self.orch.drain(timeout=timeout)
        if fl is None or fl.state is not FlowState.SPLICED:
            raise ApiError("conflict", f"not spliced: flow is {fl.state.value if fl else 'gone'}")
        return self.orch.flow_info(key)


def _flow(req: dict[str, Any]) -> Flow:
    value = req.get("flow")
    try:
        return Flow.from_text(value) if isinstance(value, str) else Flow.from_json(value)
    except ValueError as e:
        raise BadRequest(f"flow: {e}") from None


def _wait(req: dict[str, Any]) -> float:
    """splice's ``wait``: seconds, a JSON number above 0 (a string, a bool or 0 is refused)."""
    value = req.get("wait", DEFAULT_WAIT)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            seconds = float(value)
        except OverflowError:  # an integer beyond any float
            seconds = math.inf
        if 0 < seconds < math.inf:
            return seconds
    raise BadRequest("wait: must be a number of seconds above 0")


def _error(req_id: Any, error: ApiError) -> dict[str, Any]:
    return {"id": req_id, "ok": False, "error": error.to_json()}


def _line(obj: dict[str, Any]) -> bytes:
    """One reply as a line of strict JSON (never NaN or Infinity, which other parsers refuse)."""
    try:
        return encode(obj)
    except (ValueError, TypeError) as e:
        log.exception("admin reply is not JSON")
        return encode(_error(obj.get("id"), ApiError("internal", f"the reply is not JSON: {e}")))


async def admin_request(path: str | os.PathLike[str], op: str, timeout: float = 15.0, **args: Any) -> dict[str, Any]:
    """One admin request (what ``splicectl splice`` calls); returns ``result`` or raises ApiError."""
    reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(os.fspath(path), limit=MAX_LINE), timeout)
    try:
        writer.write(_line({"id": 1, "op": op, **args}))
        await writer.drain()
        reply = json.loads(await asyncio.wait_for(reader.readline(), timeout))
    finally:
        writer.close()
    if not reply.get("ok"):
        err = reply.get("error") or {}
        code = err.get("code", "internal")
        raise ApiError(code if code in ("bad_request", "unauthorized", "not_found", "conflict", "unavailable",
                                        "internal") else "internal", err.get("message", "failed"))
    return reply["result"]
