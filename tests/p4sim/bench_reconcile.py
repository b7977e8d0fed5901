"""Time SetForwardingPipelineConfig RECONCILE_AND_COMMIT of p4src/splice.p4 (FLOWS_SIZE=65536)
on p4sim over gRPC: ``.venv/bin/python -m tests.p4sim.bench_reconcile [--fill] [--runs N]``.

splice.p4 has fifteen 65,536-cell registers; ``--fill`` writes every register cell and every
counter cell first (the worst case for the carry-over), else they are all zero (a switch that
has not seen a handshake yet). Prints the wall time of each push, as the client sees it.
"""

from __future__ import annotations

import argparse
import logging
import queue
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
from p4.v1 import p4runtime_pb2, p4runtime_pb2_grpc

from p4sim.compiler.driver import compile_file
from p4sim.dataplane.device import P4SimDevice
from p4sim.runtime.server import P4RuntimeServer

log = logging.getLogger("bench_reconcile")
SPLICE = Path(__file__).resolve().parents[2] / "p4src" / "splice.p4"
SetReq = p4runtime_pb2.SetForwardingPipelineConfigRequest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fill", action="store_true", help="write every register and counter cell first")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    log.setLevel(logging.INFO)  # the figures, without the server's own lines
    compiled = compile_file(SPLICE, defines=["FLOWS_SIZE=65536"])
    server = P4RuntimeServer(P4SimDevice(lambda port, frame: None, 255), address="127.0.0.1:0", device_id=1).start()
    outgoing: queue.Queue[p4runtime_pb2.StreamMessageRequest | None] = queue.Queue()
    arbitration = p4runtime_pb2.StreamMessageRequest()
    arbitration.arbitration.device_id = 1
    arbitration.arbitration.election_id.low = 1
    outgoing.put(arbitration)

    def requests() -> Iterator[p4runtime_pb2.StreamMessageRequest]:
        while (item := outgoing.get()) is not None:
            yield item

    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = p4runtime_pb2_grpc.P4RuntimeStub(channel)
            stream = stub.StreamChannel(requests())
            if next(stream).arbitration.status.code != 0:
                raise SystemExit("not primary")

            def push(action: int) -> float:
                req = SetReq(device_id=1, action=action)
                req.election_id.low = 1
                req.config.p4info.CopyFrom(compiled.p4info)
                req.config.p4_device_config = compiled.device_config
                start = time.perf_counter()
                stub.SetForwardingPipelineConfig(req)
                return time.perf_counter() - start

            push(SetReq.VERIFY_AND_COMMIT)
            state = server.state
            assert state is not None
            log.info("splice.p4: %d registers (%d cells), %d counter cells, %d meter cells",
                     len(state.registers), sum(r.size for r in state.registers.values()),
                     sum(c.size for c in state.counters.values()), sum(m.size for m in state.meters.values()))
            if args.fill:
                with state.lock:
                    for reg in state.registers.values():
                        reg.values[:] = [(i & reg.mask) or 1 for i in range(1, reg.size + 1)]
                    for ctr in state.counters.values():
                        ctr.packets[:] = [1] * ctr.size
                        ctr.bytes[:] = [64] * ctr.size
            times = [push(SetReq.RECONCILE_AND_COMMIT) for _ in range(args.runs)]
            if args.fill:  # the cells went through every push
                state = server.state
                assert state is not None
                assert all(reg.values[4] == (5 & reg.mask or 1) for reg in state.registers.values())
            log.info("RECONCILE_AND_COMMIT%s: %s s (median %.3f s)", " (every cell written)" if args.fill else "",
                     ", ".join(f"{t:.3f}" for t in times), statistics.median(times))
            outgoing.put(None)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
