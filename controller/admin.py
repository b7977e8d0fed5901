"""The daemon's admin API: a Unix socket for ``splicectl`` (status, flows, splice FLOW).

Separate from the proxy API socket so that the proxy's user cannot reach operator commands and the
proxy API's wire contract stays the proxy's. Same framing (one JSON object per line, ``id`` echoed,
``ok`` with ``result`` or ``error``); peers are checked with SO_PEERCRED against ``allowed_uids``
(default: root and the daemon's own uid).

| op | arguments | result |
|---|---|---|
| ``status`` | -- | switch, role, proxies, flows by state, pending handshakes |
| ``flows`` | -- | every flow the controller tracks, with entries |
| ``flow`` | ``flow`` | one flow, with its entries' counters read from the switch |
| ``splice`` | ``flow``, ``wait`` (s, default 10) | holds the flow, tells its proxy (event ``splice_requested``), waits until the proxy reported and the flow is spliced |
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import struct
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

from .orchestrator import Orchestrator
from .proxy_service import ControllerService, flow_key
from .proxyapi.protocol import ApiError, Flow, decode_line
from .splice.splice import FlowState

__all__ = ["AdminServer", "admin_request"]

log = logging.getLogger(__name__)

MAX_LINE = 64 * 1024


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
            self._server = await asyncio.start_unix_server(self._serve, path=os.fspath(self.path), limit=MAX_LINE)
        finally:
            os.umask(old)
        log.info("admin API on %s (uids %s)", self.path, sorted(self.allowed_uids))

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock: socket.socket = writer.get_extra_info("socket")
        _pid, uid, _gid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
        try:
            if uid not in self.allowed_uids:
                writer.write(_line({"id": None, "ok": False,
                                    "error": {"code": "unauthorized", "message": f"uid {uid} may not use this API"}}))
                await writer.drain()
                return
            while line := await reader.readline():
                reply = await self._handle(line)
                writer.write(_line(reply))
                await writer.drain()
        except (ConnectionError, asyncio.LimitOverrunError, ValueError):
            pass
        finally:
            writer.close()

    async def _handle(self, line: bytes) -> dict[str, Any]:
        req_id = None
        try:
            req = decode_line(line)
            if not isinstance(req, dict):
                raise ApiError("bad_request", "a request must be a JSON object")
            req_id = req.get("id")
            op = req.get("op")
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
            elif op == "splice":
                result = await self._splice(_flow(req), float(req.get("wait", 10.0)))
            else:
                raise ApiError("bad_request", "op must be one of status, flows, flow, splice")
        except ApiError as e:
            return {"id": req_id, "ok": False, "error": e.to_json()}
        except (ValueError, TypeError, KeyError) as e:
            return {"id": req_id, "ok": False, "error": {"code": "bad_request", "message": str(e)}}
        except Exception as e:
            log.exception("admin request failed")
            return {"id": req_id, "ok": False, "error": {"code": "internal", "message": str(e)}}
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
        raise ApiError("bad_request", f"flow: {e}") from None


def _line(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"


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
