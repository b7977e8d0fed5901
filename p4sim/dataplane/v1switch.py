"""The v1model architecture as BMv2's simple_switch runs it: parser, checksum verification,
ingress, the traffic manager (clone, digest, resubmit, multicast, drop, unicast), egress,
checksum update, deparser, recirculation, and the CPU port.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from .program import LoadedProgram
from .rtlib import (
    DROP_PORT,
    ERR_NO_ERROR,
    AssertionFailure,
    CoreParserError,
    ExitSignal,
    ParserError,
    ParserReject,
)

log = logging.getLogger(__name__)

# standard_metadata.instance_type values, as BMv2's simple_switch defines them
PKT_NORMAL = 0
PKT_INGRESS_CLONE = 1
PKT_EGRESS_CLONE = 2
PKT_COALESCED = 3
PKT_RECIRC = 4
PKT_REPLICATION = 5
PKT_RESUBMIT = 6

CLONE_I2E = 0  # v1model's CloneType members, in order
CLONE_E2E = 1

MAX_PASSES = 32  # resubmit/recirculate loops a program might make; BMv2 has no bound

Output = Callable[[int, bytes], None]


class PacketContext:
    """``K`` in generated code: one packet's bytes, cursor and per-pass requests."""

    __slots__ = ("data", "n", "off", "out", "sm", "now_ns", "length", "entries", "clone",
                 "resubmit", "recirculate", "digest_req", "trunc", "hdr", "meta", "outs")

    def __init__(self, data: bytes, now_ns: int) -> None:
        self.data = data
        self.n = len(data)
        self.off = 0
        self.out = bytearray()
        self.now_ns = now_ns
        self.length = len(data)
        self.entries: dict[int, Any] = {}
        self.clone: tuple[int, int, int | None] | None = None
        self.resubmit: int | None | bool = False
        self.recirculate: int | None | bool = False
        self.digest_req: tuple[str, Callable[[], tuple]] | None = None
        self.trunc = 0
        self.outs: tuple = ()

    # v1model's extern functions that only record a request for the traffic manager
    def request_clone(self, clone_type: int, session: int, field_list: int | None) -> None:
        self.clone = (clone_type, session, field_list)

    def request_resubmit(self, field_list: int | None) -> None:
        self.resubmit = field_list

    def request_recirculate(self, field_list: int | None) -> None:
        self.recirculate = field_list

    def truncate_to(self, nbytes: int) -> None:
        # BMv2 keeps the smallest length asked for (bm_sim Packet::truncate)
        self.trunc = nbytes if not self.trunc else min(self.trunc, nbytes)

    def digest(self, name: str, values: Callable[[], tuple]) -> None:
        # BMv2 reads the digest's fields when ingress ends, not at the call: keep the thunk
        self.digest_req = (name, values)

    def payload(self) -> bytes:
        return self.data[self.off:]


class V1Switch:
    """Runs packets through a LoadedProgram. ``output(port, frame)`` receives every frame the
    switch sends (including to the CPU port, which the owner turns into a packet-in)."""

    def __init__(self, output: Output, cpu_port: int | None = None, drop_port: int = DROP_PORT) -> None:
        self.output = output
        self.cpu_port = cpu_port
        self.drop_port = drop_port
        self.program: LoadedProgram | None = None
        self.lock = threading.RLock()
        self.start_ns = time.monotonic_ns()
        self.packets_in = 0
        self.packets_out = 0
        self.packets_dropped = 0

    def load(self, program: LoadedProgram | None) -> None:
        with self.lock:
            self.program = program

    # -- entry points -------------------------------------------------------------------------

    def receive(self, port: int, frame: bytes) -> None:
        """A frame arrived on ``port`` (the CPU port for packet-outs)."""
        with self.lock:
            prog = self.program
            if prog is None:
                self.packets_dropped += 1
                return
            self.packets_in += 1
            work: deque[tuple[str, Any]] = deque()
            # the common case (one pass, unicast) runs without touching the work queue
            try:
                self._ingress(prog, work, port, frame, PKT_NORMAL, None, None)
            except AssertionFailure as exc:
                log.error("assert failed at %s: packet dropped", exc)
                self.packets_dropped += 1
            except Exception:  # a program fault must not take the switch down
                log.exception("packet processing failed: packet dropped")
                self.packets_dropped += 1
            passes = 1
            while work:
                kind, item = work.popleft()
                passes += 1
                if passes > MAX_PASSES * 8:
                    log.warning("packet exceeded %d pipeline passes; dropped", passes)
                    break
                try:
                    if kind == "ingress":
                        self._ingress(prog, work, *item)
                    else:
                        self._egress(prog, work, *item)
                except AssertionFailure as exc:
                    log.error("assert failed at %s: packet dropped", exc)
                    self.packets_dropped += 1
                except Exception:  # a program fault must not take the switch down
                    log.exception("packet processing failed: packet dropped")
                    self.packets_dropped += 1

    # -- pipeline stages ------------------------------------------------------------------------

    def _new_sm(self, prog: LoadedProgram, port: int, length: int, instance_type: int, now_ns: int) -> Any:
        sm = prog.std_class()
        sm.ingress_port = port
        sm.packet_length = length
        sm.instance_type = instance_type
        sm.ingress_global_timestamp = ((now_ns - self.start_ns) // 1000) & 0xFFFFFFFFFFFF
        return sm

    def _parse(self, prog: LoadedProgram, K: PacketContext) -> None:
        stages = prog.stages
        try:
            stages["parser"](K, K, K.hdr, K.meta, K.sm)
        except CoreParserError as exc:
            K.sm.parser_error = prog.core_errors[exc.code]
        except ParserError as exc:
            K.sm.parser_error = exc.code
        except ParserReject:
            pass
        try:
            stages["verify_checksum"](K, K.hdr, K.meta)
        except ExitSignal:
            pass

    def _ingress(self, prog: LoadedProgram, work: deque, port: int, frame: bytes, instance_type: int,
                 preserved: Any, preserve_fn: Any) -> None:
        now = time.monotonic_ns()
        K = PacketContext(frame, now)
        K.hdr = prog.headers_class()
        K.meta = prog.metadata_class()
        K.sm = self._new_sm(prog, port, len(frame), instance_type, now)
        K.sm.parser_error = prog.core_errors[ERR_NO_ERROR]
        if preserved is not None and preserve_fn is not None:
            preserve_fn(preserved, K.meta)
        self._parse(prog, K)
        try:
            prog.stages["ingress"](K, K.hdr, K.meta, K.sm)
        except ExitSignal:
            pass
        sm = K.sm
        # I2E clone: the original packet, parsed again, with the preserved fields. BMv2 queues
        # the copies before the original (simple_switch's ingress thread enqueues the clone
        # first): on a port both go to, the copy leaves first.
        cloned = 0
        if K.clone is not None and K.clone[0] == CLONE_I2E:
            cloned = self._clone(prog, work, K, frame, reparse=True)
        if K.digest_req is not None:
            name, thunk = K.digest_req
            did = prog.digest_ids.get(name)
            if did is not None:
                prog.state.emit_digest(did, tuple(thunk()))
        if K.resubmit is not False:
            # BMv2 resets all metadata (standard_metadata too, so ingress_port reads 0) and
            # copies the field list back (simple_switch.cpp, copy_field_list_and_set_type)
            fl = K.resubmit
            work.append(("ingress", (0, frame, PKT_RESUBMIT, K.meta, prog.field_lists.get(fl) if fl is not None else None)))
            return
        mgid = sm.mcast_grp
        if mgid:
            replicas = prog.state.mcast_group(mgid)
            if not replicas:
                self.packets_dropped += 1
                return
            for i, (eport, rid) in enumerate(replicas):
                hdr, meta, smc = (K.hdr, K.meta, sm) if i == len(replicas) - 1 else (K.hdr._copy(), K.meta._copy(), sm._copy())
                smc.egress_rid = rid
                smc.instance_type = PKT_REPLICATION
                work.append(("egress", (eport, K, hdr, meta, smc)))
            return
        if sm.egress_spec == self.drop_port:
            self.packets_dropped += 1
            return
        sm.instance_type = PKT_NORMAL  # even for a resubmitted or recirculated packet, as BMv2
        if cloned:
            work.append(("egress", (sm.egress_spec, K, K.hdr, K.meta, sm)))  # behind its copies
            return
        # unicast: nothing else holds K, so egress runs on it directly (no copy, no queueing)
        self._egress(prog, work, sm.egress_spec, K, K.hdr, K.meta, sm, owned=True)

    def _clone(self, prog: LoadedProgram, work: deque, K: PacketContext, frame: bytes, reparse: bool) -> int:
        """Queue the copies of ``K``'s clone session; how many."""
        _, session, fl = K.clone  # type: ignore[misc]
        cfg = prog.state.clone_session(session)
        if cfg is None:
            return 0
        replicas, _cos, trunc = cfg
        preserve = prog.field_lists.get(fl) if fl is not None else None
        for eport, rid in replicas:
            C = PacketContext(frame, K.now_ns)
            # BMv2 resets every metadata field of the copy (standard_metadata included) and then
            # copies the field list (simple_switch.cpp: copy_field_list_and_set_type,
            # clone_with_phv_reset_metadata)
            if reparse:
                C.hdr = prog.headers_class()
                C.meta = prog.metadata_class()
                C.sm = self._new_sm(prog, K.sm.ingress_port, len(frame), PKT_INGRESS_CLONE, K.now_ns)
                C.sm.parser_error = prog.core_errors[ERR_NO_ERROR]
                self._parse(prog, C)
                C.meta = prog.metadata_class()
                C.sm = prog.std_class()
                C.sm.instance_type = PKT_INGRESS_CLONE
                C.sm.packet_length = len(frame)
            else:
                C.data, C.n, C.off = K.data, K.n, K.off
                C.hdr = K.hdr._copy()
                C.meta = prog.metadata_class()
                C.sm = prog.std_class()
                C.sm.packet_length = K.sm.packet_length
                C.sm.instance_type = PKT_EGRESS_CLONE
            if preserve is not None:
                preserve(K.meta, C.meta)
            C.sm.egress_rid = rid
            C.trunc = trunc
            work.append(("egress", (eport, C, C.hdr, C.meta, C.sm)))
        return len(replicas)

    def _egress(self, prog: LoadedProgram, work: deque, port: int, K: PacketContext, hdr: Any, meta: Any, sm: Any,
                owned: bool = False) -> None:
        # each copy needs its own per-pass requests; a context no one else holds is reused
        if owned:
            E = K
            E.now_ns = time.monotonic_ns()
            if E.entries:
                E.entries = {}
            E.clone = None
            E.resubmit = E.recirculate = False
            E.digest_req = None
        else:
            E = PacketContext.__new__(PacketContext)
            E.data, E.n, E.off = K.data, K.n, K.off
            E.out = bytearray()
            E.now_ns = time.monotonic_ns()
            E.entries = {}
            E.clone = None
            E.resubmit = False
            E.recirculate = False
            E.digest_req = None
            E.trunc = K.trunc
            E.outs = ()
        E.length = sm.packet_length
        E.hdr, E.meta, E.sm = hdr, meta, sm
        sm.egress_port = port
        # BMv2 sets egress_spec to drop_port + 1 so that egress does not drop by default; on
        # the 9-bit field that reads as 0
        sm.egress_spec = 0
        sm.egress_global_timestamp = ((E.now_ns - self.start_ns) // 1000) & 0xFFFFFFFFFFFF
        try:
            prog.stages["egress"](E, hdr, meta, sm)
        except ExitSignal:
            pass
        if E.clone is not None and E.clone[0] == CLONE_E2E:
            self._clone(prog, work, E, E.data, reparse=False)
        if sm.egress_spec == self.drop_port:
            self.packets_dropped += 1
            return
        try:
            prog.stages["compute_checksum"](E, hdr, meta)
        except ExitSignal:
            pass
        try:
            prog.stages["deparser"](E, E, hdr)
        except ExitSignal:
            pass
        E.out += E.data[E.off:]
        frame = bytes(E.out)
        if E.trunc and len(frame) > E.trunc:
            frame = frame[: E.trunc]
        if E.recirculate is not False:
            # metadata reset as for resubmit: ingress_port reads 0 in the next pass
            fl = E.recirculate
            work.append(("ingress", (0, frame, PKT_RECIRC, meta, prog.field_lists.get(fl) if fl is not None else None)))
            return
        self.packets_out += 1
        self.output(port, frame)
