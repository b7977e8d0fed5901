"""``make demo``: the whole mission on one machine, narrated.

Brings the lab up (clients, a server and the proxy host in network namespaces around the switch,
the controller and the proxy as processes), runs real kernel TCP through it -- an asyncio HTTP
server, clients downloading and uploading -- and reports per connection when the proxy saw the
request, when it was spliced out, how many bytes crossed the proxy and how many the switch carried
alone, and whether the sha256 matched; then claim 1 as the hosts saw it (capture.py): the client's
and the server's ISNs and options on the proxy's legs, the proxy's own ISNs and the deltas. Then
it kills the proxy with SIGKILL in the middle of transfers and shows both fates: the spliced
connections finish intact, the one it relayed is reset, never cut short as if complete. Everything is torn down at the end,
on Ctrl-C and on failure.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .capture import HandshakeCapture, View
from .timeline import Timeline, write_svg
from .topology import Lab, LabError, LabSpec
from .traffic import ClientResult, TrafficServer, expected_download_sha, transfer

MB = 1_000_000
SPINNER = "|/-\\"


def say(msg: str) -> None:
    print(msg, flush=True)


@dataclass
class Job:
    label: str
    policy: str
    client: int
    upload: int
    download: int
    task: asyncio.Task[ClientResult] | None = None
    started: float = 0.0


class Progress:
    """One line rewritten in place on a terminal, plain lines every few seconds otherwise."""

    def __init__(self) -> None:
        self.tty = sys.stdout.isatty()
        self.last = 0.0
        self.spin = 0

    def show(self, text: str) -> None:
        if self.tty:
            self.spin += 1
            spinner = SPINNER[self.spin % len(SPINNER)]
            print(f"\r  {spinner} {text}\033[K", end="", flush=True)
        elif time.monotonic() - self.last >= 2.0:
            self.last = time.monotonic()
            say(f"  ... {text}")

    def done(self) -> None:
        if self.tty:
            print("\r\033[K", end="", flush=True)


def _flow(result: ClientResult) -> str:
    return f"{result.local[0]}:{result.local[1]}->{result.server[0]}:{result.server[1]}"


def _conn(result: ClientResult) -> str:
    return f"{result.local[0]}:{result.local[1]} > {result.server[0]}:{result.server[1]}"


async def _watch(lab: Lab, server: TrafficServer, jobs: list[Job], progress: Progress,
                 counters: dict[str, dict[str, int]]) -> None:
    """Progress until every job is done; keeps the switch's direct-entry counters per connection
    (read while they exist: entries go shortly after the close)."""
    while not all(j.task is not None and j.task.done() for j in jobs):
        moved = sum(r.received + r.sent for r in server.records.values())
        spliced = len(lab.events("spliced"))
        progress.show(f"{moved / MB:7.1f} MB moved by the server, {spliced} splice(s) so far")
        try:
            flows = await asyncio.to_thread(lab.flows)
        except LabError:
            flows = {"connections": []}
        for conn in flows.get("connections", []):
            direct = [leg for leg in conn.get("legs", []) if leg.get("leg") in ("C>S", "S>C")]
            if direct:
                counters[conn["connection"]] = {
                    "packets": sum(int(leg.get("packets", 0) or 0) for leg in direct),
                    "bytes": sum(int(leg.get("bytes", 0) or 0) for leg in direct),
                }
        await asyncio.sleep(0.5)  # the display's refresh period, not a readiness check
    progress.done()


def _event_for(lab: Lab, name: str, flow: str) -> Any:
    for ev in lab.events(name):
        if ev.record.get("flow") == flow:
            return ev
    return None


async def _scenario(lab: Lab, size: int) -> bool:
    say("")
    say(f"== 1. four connections of {size // MB} MB, one per policy: three downloads, one upload ==")
    jobs = [
        Job("download", "inspect", 0, 1000, size),
        Job("download", "rewrite", 1, 1000, size),
        Job("upload", "after-bytes", 0, size, 1000),
        Job("download", "never", 1, 1000, size),
    ]
    ok = True
    counters: dict[str, dict[str, int]] = {}
    capture = HandshakeCapture([*lab.clients, lab.servers[0], lab.proxy])
    async with TrafficServer(lab.servers, lab.spec.services) as server:
        with capture:
            for job in jobs:
                job.started = time.monotonic()
                job.task = asyncio.create_task(transfer(lab.clients[job.client], lab.servers[0],
                                                        lab.service(job.policy), upload=job.upload,
                                                        download=job.download, timeout=900))
            await _watch(lab, server, jobs, Progress(), counters)
        say(f"  {'connection':<32} {'policy':<11} {'dir':<8} {'request':>8} {'spliced':>8} {'via proxy':>11} "
            f"{'switch alone':>13} {'direct entries':>16}  sha256")
        for job in jobs:
            assert job.task is not None
            r = job.task.result()
            rec = server.record(r)
            flow = _flow(r)
            req = _event_for(lab, "request", flow)
            spl = _event_for(lab, "spliced", flow)
            total = r.upload + r.download
            via = (spl.record["a_c"] + spl.record["a_s"]) if spl is not None else (r.sent + r.received)
            alone = max(0, total - via)
            exact = (not r.error and rec is not None and rec.received_sha == r.sent_sha
                     and r.received_sha == expected_download_sha(r) and r.received == r.download)
            ok &= exact
            direct = counters.get(_conn(r))
            packets = f"{direct['packets']} pkts" if direct else "-"
            say(f"  {_conn(r):<32} {job.policy:<11} {job.label:<8} "
                f"{_ms(req.t - job.started) if req else '-':>8} {_ms(spl.t - job.started) if spl else 'never':>8} "
                f"{via / MB:9.3f}MB {alone / MB:11.3f}MB "
                f"{packets:>16}  "
                f"{'match' if exact else 'MISMATCH ' + (r.error or '')}")
            if job.policy == "rewrite" and rec is not None and b"X-Proxied-By" in rec.head and spl is not None:
                say(f"    rewrite: the server got the header the proxy added; the switch shifts C->S by "
                    f"{spl.record['c2s']} bytes")
    say("  request/spliced: milliseconds after the client connected (the proxy's log, stamped on arrival);")
    say("  request '-': the policy decides without reading a request (after-bytes counts bytes, never")
    say("  never splices); spliced 'never': the proxy stayed in the path to the end")
    say("  via proxy: payload the proxy relayed before stepping out; switch alone: the rest of the bytes;")
    say("  direct entries: packets the switch's C>S/S>C entries counted (splicectl flows)")
    ok = _claim1(lab, jobs, capture) and ok
    return ok


def _picture(lab: Lab, r: ClientResult, v: View) -> None:
    """The inspect connection as a timeline picture, next to the logs."""
    assert v.client_syn and v.client_syn_ack and v.leg1_syn_ack and v.leg2_syn_ack
    t0 = v.client_syn.t
    req, spl = _event_for(lab, "request", _flow(r)), _event_for(lab, "spliced", _flow(r))
    via = (spl.record["a_c"] + spl.record["a_s"]) if spl is not None else r.sent + r.received
    tl = Timeline(f"{_conn(r)} (inspect): claim 1, the proxy, then the switch alone",
                  max(v.client_syn_ack.t, v.leg1_syn_ack.t, v.leg2_syn_ack.t) - t0,
                  req.t - t0 if req is not None else None, spl.t - t0 if spl is not None else None,
                  r.finished - t0, via, max(0, r.upload + r.download - via))
    path = write_svg(tl, lab.log_dir.parent / "demo-timeline.svg")
    say(f"    its timeline, as a picture: {path}")


def _signed(delta: int) -> str:
    d = delta & 0xFFFFFFFF
    return f"{d - (1 << 32) if d >= 1 << 31 else d:+d}"


def _claim1(lab: Lab, jobs: list[Job], capture: HandshakeCapture) -> bool:
    """Each connection's handshake as the client, the server and the proxy's two legs saw it."""
    say("")
    say("  claim 1: each handshake as the hosts saw it on their interfaces (ISN, options of the SYN)")
    ok = True
    for job in jobs:
        assert job.task is not None
        r = job.task.result()
        v = capture.view(r.local, r.server, lab.clients[job.client].name, lab.servers[0].name, lab.proxy.name)
        say(f"  {_conn(r)}  ({job.policy})")
        if not v.claim1():
            ok = False
            say("    not every party's SYN or SYN-ACK was seen, or they differ: " + repr(v))
            continue
        assert v.client_syn and v.server_syn_ack and v.leg1_syn_ack and v.leg2_syn
        c, s_ = v.client_syn, v.server_syn_ack
        say(f"    C's SYN      ISN_c  {c.seq:>10}  {c.options:<28} server: same   proxy leg 1: same")
        say(f"    S's SYN-ACK  ISN_s  {s_.seq:>10}  {s_.options:<28} client: same   proxy leg 2: same")
        say(f"    proxy's own  ISN_p1 {v.leg1_syn_ack.seq:>10} (D1 {_signed(v.leg1_syn_ack.seq - s_.seq)}), "
            f"ISN_p2 {v.leg2_syn.seq} (D2 {_signed(v.leg2_syn.seq - c.seq)})")
        if job.policy == "inspect":
            _picture(lab, r, v)
    say("  same: that host saw the very ISN and options (timestamps' values aside: each sender has its")
    say("  own clock); D1 = ISN_p1 - ISN_s, D2 = ISN_p2 - ISN_c: what the switch translates by while the")
    say("  proxy is in the path; after the splice, by the bytes the proxy rewrote (0 unless it did)")
    return ok


async def _kill_scenario(lab: Lab, size: int) -> bool:
    say("")
    say(f"== 2. the proxy killed (SIGKILL) in the middle of four {size // MB} MB downloads: three spliced, "
        "one it relays ==")
    base = len(lab.events("spliced"))
    async with TrafficServer(lab.servers, lab.spec.services) as server:
        tasks = [asyncio.create_task(transfer(lab.clients[i % 2], lab.servers[0], lab.service(p), download=size,
                                              timeout=900))
                 for i, p in enumerate(("inspect", "after-bytes", "rewrite"))]
        relayed = asyncio.create_task(transfer(lab.clients[1], lab.servers[0], lab.service("never"),
                                               download=size, timeout=60))
        deadline = time.monotonic() + 30
        while len(lab.events("spliced")) < base + 3 or not any(
                rec.sent > 0 for rec in server.records.values() if rec.server_port == lab.service("never").port):
            if time.monotonic() > deadline:
                say("  the three connections were not spliced, or the relayed one not moving, within 30 s")
                return False
            await asyncio.sleep(0.05)  # polling with a deadline
        moved = sum(s.sent for s in server.records.values())
        pid = lab.procs["proxy"].popen.pid
        lab.kill_proxy(signal.SIGKILL)
        say(f"  killed splice-proxy (pid {pid}) after {moved / MB:.1f} MB; the switch keeps forwarding")
        progress = Progress()
        while not all(t.done() for t in (*tasks, relayed)):
            progress.show(f"{sum(s.sent for s in server.records.values()) / MB:7.1f} MB sent by the server")
            await asyncio.sleep(0.5)  # display refresh
        progress.done()
        ok = True
        for t in tasks:
            r = t.result()
            exact = not r.error and r.received == r.download and r.received_sha == expected_download_sha(r)
            ok &= exact
            say(f"  {_conn(r):<32} spliced  {r.received / MB:8.1f} MB in {r.finished - r.started:5.1f} s  "
                f"sha256 {'match: survived the proxy' if exact else 'MISMATCH ' + r.error}")
        r = relayed.result()
        rec = server.record(r)
        if r.error:
            # The proxy's kernel resets its legs (SO_LINGER 0); the controller resets what is left.
            fate = (f"reset: the client got {r.received / MB:.1f} of {r.download / MB:.0f} MB and then "
                    f"{r.error.split(':')[0]}; the server's side: {(rec.error or 'closed').split(':')[0] if rec else '?'}")
            ok &= r.received < r.download
        else:
            exact = r.received == r.download and r.received_sha == expected_download_sha(r)
            fate = "finished before the kill: sha256 " + ("match" if exact else "MISMATCH")
            ok &= exact
        say(f"  {_conn(r):<32} relayed  {fate}")
    say("  spliced: the switch alone carries them, the proxy's death changes nothing; relayed: its bytes")
    say("  were in the dead proxy, so the connection is reset, never ended early as if complete")
    return ok


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f}ms"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="p4splice.lab.demo", description=__doc__.splitlines()[0])
    ap.add_argument("--build-dir", default="build")
    ap.add_argument("--log-dir", default="logs")
    ap.add_argument("--target", default=os.environ.get("TARGET", "p4sim"), choices=("p4sim", "bmv2"))
    ap.add_argument("--size-mb", type=int, default=20, help="bytes per connection, in MB (default 20)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    def on_term(signum: int, frame: object) -> None:
        # As Ctrl-C: asyncio.run cancels the scenario cleanly on SIGINT, then the lab comes down.
        signal.raise_signal(signal.SIGINT)

    signal.signal(signal.SIGTERM, on_term)
    started = time.monotonic()
    step = [0]

    def progress(msg: str) -> None:
        step[0] += 1
        say(f"[{time.monotonic() - started:5.1f}s] {msg}")

    say("== p4splice demo: a transparent proxy that inspects each connection, then steps out of the path ==")
    spec = LabSpec(clients=2, servers=1, target=args.target, build_dir=Path(args.build_dir),
                   log_dir=Path(args.log_dir))
    size = args.size_mb * MB
    try:
        with Lab(spec, progress=progress) as lab:
            progress(f"up: switch P4Runtime on {lab.grpc_addr}; logs in {lab.log_dir}")
            ok = asyncio.run(_scenario(lab, size))
            ok = asyncio.run(_kill_scenario(lab, size)) and ok
            say("")
            progress("tearing down")
    except LabError as exc:
        say(f"demo failed: {exc}")
        return 1
    except KeyboardInterrupt:
        say("\ninterrupted: torn down")
        return 130
    say(f"demo {'passed' if ok else 'FAILED'} in {time.monotonic() - started:.0f} s: "
        + ("every byte arrived, the legs carried the ends' own ISNs, spliced connections outlived the proxy "
           "and the one it relayed was reset, not cut short" if ok else "see above and logs/lab/"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
