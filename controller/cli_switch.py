"""splicectl's access to one P4Runtime switch: reads without arbitration, writes as a short-lived primary.

Read, GetForwardingPipelineConfig and Capabilities need no arbitration in P4Runtime, so every
read-only command talks over a plain channel and never opens a StreamChannel: it cannot take
the primary role from a running controller, whatever election id it was given. Only commands that
write (pipeline push, routes/services add/del) open a stream, through the p4rt library's
``SwitchSession``, with the configured election id; if that does not make them primary they stop
with a message naming the primary's election id instead of forcing anything.

``status`` also wants to know whether a controller is primary. It asks with an arbitration update
whose election id is left unset, which the spec treats as lower than any id: the switch answers
with its current primary's id and never makes this client the primary over anyone.

Every failure becomes a :class:`SwitchError` with one line of text for the CLI to print.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import grpc
from google.rpc import code_pb2
from p4.v1 import p4runtime_pb2 as pb
from p4.v1 import p4runtime_pb2_grpc

from .files import MAX_CONFIG, read_bounded
from .p4rt import (
    Backoff,
    Entity,
    P4Index,
    P4RuntimeRpcError,
    SwitchSession,
    TableEntry,
    WriteError,
    load_p4info,
)
from .p4rt.reader import ReadSession, Tls, open_channel

log = logging.getLogger(__name__)


class SwitchError(Exception):
    """A failure to report as one line (``splicectl: error: <str>``), exit status 1."""


@dataclass(frozen=True)
class Target:
    """Where and how to reach the switch (splicectl's global options)."""

    address: str
    device_id: int = 1
    election_id: int = 1
    role: str = ""
    timeout: float = 5.0
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_server_name: str | None = None

    def tls(self) -> dict[str, Any]:
        """SwitchSession's TLS keywords (all None: plaintext)."""
        return {"root_certificates": self.tls_ca, "certificate_chain": self.tls_cert,
                "private_key": self.tls_key, "tls_server_name": self.tls_server_name}


@dataclass(frozen=True)
class Arbitration:
    """What the switch says about the role's primary, seen by an observer that cannot win."""

    primary: bool  # a controller is primary
    election_id: int | None  # the highest election id the switch reports
    code: str  # the arbitration status code name
    message: str


def _one_line(text: str) -> str:
    return " ".join(text.split())


def describe_rpc_error(target: Target, rpc: str, e: grpc.RpcError | P4RuntimeRpcError) -> str:
    """One line that says what went wrong in words an operator acts on."""
    if isinstance(e, P4RuntimeRpcError):
        code, details = e.code, _one_line(e.message)
    else:
        code, details = e.code(), _one_line(e.details() or "")
    if code == grpc.StatusCode.UNAVAILABLE:
        return f"cannot reach the switch at {target.address}: {details or 'unavailable'}"
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return f"the switch at {target.address} did not answer {rpc} within {target.timeout:g}s"
    if code == grpc.StatusCode.NOT_FOUND and "device" in details.lower():
        return f"{target.address} has no device id {target.device_id}: {details}"
    if code == grpc.StatusCode.FAILED_PRECONDITION and "pipeline" in details.lower():
        return f"the switch has no pipeline (push one with 'splicectl pipeline push'): {details}"
    return f"{rpc} failed: {code.name}: {details}"


def describe_write_error(e: WriteError) -> str:
    """The first failed update of a Write, one line (a CLI writes one update at a time)."""
    fails = e.failures
    if not fails:
        return _one_line(f"{e.rpc} failed: {e.code.name}: {e.message}")
    f = fails[0]
    more = f" (and {len(fails) - 1} more)" if len(fails) > 1 else ""
    return _one_line(f"{f.code_name}: {f.message}{more}")


class SwitchClient:
    """One switch, for the duration of one splicectl command (``async with``)."""

    def __init__(self, target: Target, p4info_path: str | None = None) -> None:
        self.target = target
        self.p4info_path = p4info_path
        self._channel: grpc.aio.Channel | None = None
        self._stub: p4runtime_pb2_grpc.P4RuntimeStub | None = None
        self._reader: ReadSession | None = None
        self._index: P4Index | None = None
        self._session: SwitchSession | None = None

    async def __aenter__(self) -> SwitchClient:
        t = self.target
        tls = Tls(_read(t.tls_ca, "TLS CA"), _read(t.tls_key, "TLS key"), _read(t.tls_cert, "TLS certificate"),
                  t.tls_server_name)
        self._channel = open_channel(t.address, tls)
        self._stub = p4runtime_pb2_grpc.P4RuntimeStub(self._channel)
        self._reader = ReadSession(self._stub, t.device_id, t.role, t.timeout)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()
        if self._channel is not None:
            channel, self._channel = self._channel, None
            await channel.close(grace=None)

    @property
    def stub(self) -> p4runtime_pb2_grpc.P4RuntimeStub:
        assert self._stub is not None, "use SwitchClient in 'async with'"
        return self._stub

    @property
    def reader(self) -> ReadSession:
        assert self._reader is not None, "use SwitchClient in 'async with'"
        return self._reader

    # --- unary RPCs, no arbitration -------------------------------------------------------------
    async def capabilities(self) -> str:
        """The switch's P4Runtime version; the first call of every command, so that an unreachable
        switch is reported at once rather than after a read's whole timeout."""
        try:
            return await self.reader.capabilities()
        except P4RuntimeRpcError as e:
            raise SwitchError(describe_rpc_error(self.target, "Capabilities", e)) from None

    async def pipeline(self, response_type: int = pb.GetForwardingPipelineConfigRequest.P4INFO_AND_COOKIE
                       ) -> pb.ForwardingPipelineConfig:
        try:
            return await self.reader.get_pipeline(response_type)
        except P4RuntimeRpcError as e:
            if e.code in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.NOT_FOUND) \
                    and "device" not in e.message.lower():
                return pb.ForwardingPipelineConfig()  # some servers say "no pipeline" this way
            raise SwitchError(describe_rpc_error(self.target, "GetForwardingPipelineConfig", e)) from None

    async def index(self) -> P4Index:
        """The P4Info to name things with: --p4info when given, else the switch's own."""
        if self._index is None:
            if self.p4info_path:
                try:
                    self._index = P4Index(load_p4info(self.p4info_path))
                except OSError as e:
                    raise SwitchError(f"cannot read P4Info {self.p4info_path}: {e.strerror or e}") from None
                except Exception as e:  # noqa: BLE001 - protobuf raises several kinds on garbage
                    raise SwitchError(f"{self.p4info_path} is not a P4Info file (text or binary):"
                                      f" {_one_line(str(e))}") from None
            else:
                config = await self.pipeline()
                if not config.HasField("p4info") or not (config.p4info.tables or config.p4info.actions):
                    raise SwitchError("the switch has no pipeline (push one with 'splicectl pipeline push')")
                self._index = P4Index(config.p4info)
        return self._index

    def use_index(self, index: P4Index) -> P4Index:
        """Name things with ``index`` (a P4Info the caller fetched already)."""
        self._index = index
        return index

    async def read(self, filters: Entity | Iterable[Entity]) -> list[Entity]:
        """Entities matching the filters (a Read needs no arbitration: any client may read)."""
        items = [filters] if hasattr(filters, "entity_kind") else list(filters)  # type: ignore[arg-type]
        index = await self.index()
        # The spec returns an entry's idle time only when the filter asks for it.
        items = [dataclasses.replace(f, time_since_last_hit_ns=0)
                 if isinstance(f, TableEntry) and f.table and f.time_since_last_hit_ns is None
                 and index.tables.get(f.table).supports_idle_timeout else f for f in items]
        asked_idle = any(isinstance(f, TableEntry) and f.time_since_last_hit_ns is not None for f in items)
        try:
            return [e async for e in self.reader.read(index, items)]
        except P4RuntimeRpcError as e:
            if asked_idle and e.code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.UNIMPLEMENTED,
                                         grpc.StatusCode.UNKNOWN):
                # A server that cannot report idle time (BMv2's PI answers UNKNOWN when it cannot
                # read an entry's ageing state): the entries matter more than that column.
                plain = [dataclasses.replace(f, time_since_last_hit_ns=None) if isinstance(f, TableEntry) else f
                         for f in items]
                try:
                    return [e async for e in self.reader.read(index, plain)]
                except P4RuntimeRpcError as e2:
                    e = e2
            raise SwitchError(describe_rpc_error(self.target, "Read", e)) from None

    async def probe_arbitration(self) -> Arbitration | None:
        """Ask who is primary without competing (election id unset); None if the switch will not say."""
        req = pb.StreamMessageRequest()
        req.arbitration.device_id = self.target.device_id
        if self.target.role:
            req.arbitration.role.name = self.target.role
        done = asyncio.Event()

        async def requests():  # noqa: ANN202 - an async generator of one message, then hold open
            yield req
            await done.wait()  # keep our side open until the answer is in: closing early ends the RPC

        call = self.stub.StreamChannel(requests())
        try:
            async with asyncio.timeout(self.target.timeout):
                async for resp in call:
                    if resp.WhichOneof("update") == "arbitration":
                        arb = resp.arbitration
                        eid = (arb.election_id.high << 64) | arb.election_id.low \
                            if arb.HasField("election_id") else None
                        code = arb.status.code
                        name = code_pb2.Code.Name(code) if code in code_pb2.Code.values() else str(code)
                        # ALREADY_EXISTS: someone else is primary. OK would mean the switch made us
                        # primary (a server that treats "unset" as 0): then there was nobody else.
                        return Arbitration(code == code_pb2.ALREADY_EXISTS, eid, name, arb.status.message)
        except (TimeoutError, grpc.RpcError) as e:
            log.info("arbitration probe failed: %s", e)
            return None
        finally:
            done.set()
            call.cancel()
        return None

    # --- writes, as a primary -------------------------------------------------------------------
    async def writer(self, need_index: bool = True) -> SwitchSession:
        """A stream session that is primary (with the P4Info set unless ``need_index`` is False, for
        a pipeline push onto an empty switch); SwitchError when it is not primary."""
        if self._session is not None:
            return self._session
        index = await self.index() if need_index else None
        t = self.target
        session = SwitchSession(
            t.address, t.device_id, t.election_id, t.role, index=index, takeover=False,
            backoff=Backoff(initial=0.05, maximum=0.5), rpc_timeout=t.timeout, connect_timeout=t.timeout,
            name=f"splicectl@{t.address}", **t.tls())
        self._session = session  # closed by __aexit__ whatever happens next
        await session.start()
        try:
            # The switch answered Capabilities already, so a failed stream is a refusal (election id
            # in use, unknown device or role), not a network blip: report it now instead of letting
            # the session retry until the timeout (and perhaps win the role later by chance).
            async with asyncio.timeout(t.timeout):
                while not session.is_connected:
                    if session.last_error is not None:
                        raise SwitchError(f"the switch refused our arbitration (election id {t.election_id}):"
                                          f" {_one_line(session.last_error)}")
                    await asyncio.sleep(0.01)
        except TimeoutError:
            raise SwitchError(f"no arbitration answer from {t.address} within {t.timeout:g}s") from None
        if not session.is_primary:
            highest = session.highest_election_id
            raise SwitchError(
                f"not primary with election id {t.election_id}: another controller holds the"
                f" {'role ' + repr(t.role) if t.role else 'default role'}"
                + (f" (the highest election id the switch has seen is {highest})" if highest is not None else "")
                + "; a write needs a higher --election-id, which takes the role from it")
        return session

    async def write(self, op: str, entity: Entity) -> None:
        """INSERT / MODIFY / DELETE one entity as primary; SwitchError with the switch's reason."""
        session = await self.writer()
        try:
            await getattr(session, op)(entity)
        except WriteError as e:
            raise SwitchError(describe_write_error(e)) from e
        except P4RuntimeRpcError as e:
            raise SwitchError(_one_line(str(e))) from None


_PEM = {"TLS CA": b"CERTIFICATE-----", "TLS certificate": b"CERTIFICATE-----", "TLS key": b"PRIVATE KEY-----"}


def _read(path: str | None, what: str) -> bytes | None:
    """A PEM file of ``what``, checked to be one: gRPC given anything else logs several lines of
    its own and then fails to connect, which says nothing of the file."""
    if path is None:
        return None
    try:
        data = read_bounded(path, MAX_CONFIG)  # PEM files are a few KiB
    except OSError as e:
        raise SwitchError(f"cannot read {what} {path}: {e.strerror or e}") from None
    marker = _PEM.get(what)
    if marker is not None and (b"-----BEGIN " not in data or marker not in data):
        raise SwitchError(f"{what} {path} is not a PEM {'private key' if b'KEY' in marker else 'certificate'}")
    return data
