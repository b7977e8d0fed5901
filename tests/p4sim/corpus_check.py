"""Measure p4sim against p4c-bm2-ss over a directory of v1model programs (a developer's tool).

    .venv/bin/python -m tests.p4sim.corpus_check CORPUS_DIR [-j N] [--list] [--only SUBSTR]

Every ``*.p4`` file under CORPUS_DIR is one program (a file that another one includes is a
program too: p4c usually refuses it for having no ``main``, and p4sim must then refuse it as
well). Each is compiled by p4c-bm2-ss (``$P4C``, else ``p4c-bm2-ss`` on PATH, else
/opt/p4tools/bin) with ``--p4runtime-files``, the reference, cached in CORPUS_DIR/.ref/ until
the program changes, and by p4sim in a child process (a program that hangs or crashes the
compiler costs only itself). Both P4Infos are parsed and compared as protobuf messages.

Outcomes, among the programs p4c accepts: ``same`` (the P4Info messages are equal),
``refused`` (p4sim reports a compile error: classified by its message with names and numbers
taken out), ``crash`` (p4sim raised something other than a CompileError) and ``differs``
(classified by the first field path that differs, e.g. ``tables.match_fields.name``). Among the
programs p4c refuses: ``both refuse`` or ``p4sim accepts``. The summary goes to stdout;
``--list`` adds one line per program.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from google.protobuf import text_format
from google.protobuf.message import Message
from p4.config.v1 import p4info_pb2

TIMEOUT = 120


@dataclass
class Result:
    name: str
    outcome: str  # same | refused | crash | differs | both refuse | p4sim accepts | p4c timeout
    detail: str = ""


def _p4c() -> str:
    found = os.environ.get("P4C") or shutil.which("p4c-bm2-ss")
    return found or "/opt/p4tools/bin/p4c-bm2-ss"


def _reference(prog: Path, refdir: Path) -> tuple[bool, str]:
    """(accepted, P4Info text or error text) from p4c-bm2-ss, cached by modification time."""
    stem = refdir / prog.name
    info, err = stem.with_suffix(".p4info.txtpb"), stem.with_suffix(".err")
    for f in (err, info):
        if f.exists() and f.stat().st_mtime >= prog.stat().st_mtime:
            return f is info, f.read_text()
    info.unlink(missing_ok=True)
    err.unlink(missing_ok=True)
    try:
        r = subprocess.run([_p4c(), str(prog), "-o", str(stem.with_suffix(".json")), "--p4runtime-files", str(info)],
                           capture_output=True, text=True, timeout=TIMEOUT, cwd=prog.parent)
    except subprocess.TimeoutExpired:
        err.write_text("timeout")
        return False, "timeout"
    if r.returncode == 0 and info.exists():
        return True, info.read_text()
    info.unlink(missing_ok=True)  # p4c may write a P4Info and still fail (a back-end error)
    err.write_text(r.stderr + r.stdout)
    return False, err.read_text()


_CHILD = r"""
import sys, traceback
from p4sim.compiler.driver import compile_file
from p4sim.compiler.errors import CompileError
from p4sim.compiler.p4info import p4info_text
try:
    from p4sim.compiler.p4info import p4runtime_refusals
except ImportError:  # an older p4sim (measured for comparison)
    p4runtime_refusals = lambda model: []
try:
    c = compile_file(sys.argv[1])
    for r in p4runtime_refusals(c.model):
        raise CompileError(r)
except CompileError as e:
    print("REFUSED", str(e).splitlines()[0] if str(e) else "", sep="\n"); sys.exit(0)
except RecursionError:
    print("CRASH", "RecursionError", sep="\n"); sys.exit(0)
except Exception as e:
    tb = traceback.extract_tb(e.__traceback__)[-1]
    print("CRASH", f"{type(e).__name__} at {tb.filename.rsplit('/', 1)[-1]}:{tb.lineno}: {e}"[:300], sep="\n")
    sys.exit(0)
print("OK"); print(p4info_text(c.p4info))
"""


def _p4sim(prog: Path) -> tuple[str, str]:
    try:
        r = subprocess.run([sys.executable, "-c", _CHILD, str(prog)], capture_output=True, text=True,
                           timeout=TIMEOUT, cwd=prog.parent)
    except subprocess.TimeoutExpired:
        return "CRASH", "timeout"
    head, _, rest = r.stdout.partition("\n")
    if head not in ("OK", "REFUSED", "CRASH"):
        return "CRASH", (r.stderr.strip().splitlines() or ["no output"])[-1][:300]
    return head, rest


def error_kind(message: str) -> str:
    """An error message with its location, names and numbers taken out: a failure class."""
    m = re.sub(r"^\S+:\d+:\d+: (error: )?", "", message.strip())
    m = re.sub(r"'[^']*'|\"[^\"]*\"|`[^`]*`", "X", m)
    m = re.sub(r"\b\d+\b", "N", m)
    return m[:110]


def first_difference(a: Message, b: Message, path: str = "") -> str | None:
    """The first field path (repeated fields and submessages joined by dots) where a and b differ."""
    if a == b:
        return None
    for fd in a.DESCRIPTOR.fields:
        here = f"{path}.{fd.name}" if path else fd.name
        va, vb = getattr(a, fd.name), getattr(b, fd.name)
        repeated = fd.is_repeated if hasattr(fd, "is_repeated") else fd.label == fd.LABEL_REPEATED
        if repeated and fd.message_type is not None and fd.message_type.GetOptions().map_entry:
            if set(va) != set(vb):
                return f"{here} (keys {sorted(set(va) ^ set(vb))[:3]})"
            for k in va:
                if va[k] != vb[k]:
                    d = first_difference(va[k], vb[k], f"{here}") if isinstance(va[k], Message) else None
                    return d or here
        elif repeated:
            if len(va) != len(vb):
                return f"{here} (count {len(vb)} != {len(va)})"
            if fd.message_type is None:
                if list(va) != list(vb):
                    return here
                continue
            for x, y in zip(va, vb, strict=True):
                d = first_difference(x, y, here)
                if d:
                    return d
        elif fd.message_type is not None:
            if a.HasField(fd.name) != b.HasField(fd.name):
                return f"{here} (presence)"
            if a.HasField(fd.name):
                d = first_difference(va, vb, here)
                if d:
                    return d
        elif va != vb:
            return here
    return path or "(unknown)"


def check(prog: Path, refdir: Path) -> Result:
    name = str(prog)
    ok, ref = _reference(prog, refdir)
    status, out = _p4sim(prog)
    if not ok:
        if ref == "timeout":
            return Result(name, "p4c timeout")
        if status == "OK":
            errs = [line for line in ref.splitlines() if "error" in line]
            return Result(name, "p4sim accepts", error_kind(errs[0]) if errs else "")
        return Result(name, "both refuse")
    if status == "REFUSED":
        return Result(name, "refused", out.strip())
    if status == "CRASH":
        return Result(name, "crash", out.strip())
    theirs, ours = p4info_pb2.P4Info(), p4info_pb2.P4Info()
    text_format.Parse(ref, theirs)
    text_format.Parse(out, ours)
    diff = first_difference(theirs, ours)
    return Result(name, "same") if diff is None else Result(name, "differs", diff)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="corpus_check", description=__doc__.split("\n\n")[0])
    ap.add_argument("corpus", type=Path)
    ap.add_argument("-j", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--list", action="store_true", help="one line per program")
    ap.add_argument("--only", help="programs whose file name contains this")
    args = ap.parse_args(argv)
    progs = sorted(p for p in args.corpus.rglob("*.p4") if ".ref" not in p.parts and (not args.only or args.only in p.name))
    refdir = args.corpus / ".ref"
    refdir.mkdir(exist_ok=True)
    with concurrent.futures.ThreadPoolExecutor(args.j) as pool:
        results = list(pool.map(lambda p: check(p, refdir), progs))
    if args.list:
        for r in results:
            print(f"{r.outcome:14} {Path(r.name).relative_to(args.corpus)}  {r.detail}")
        print()
    by = collections.Counter(r.outcome for r in results)
    accepted = sum(by[k] for k in ("same", "refused", "crash", "differs"))
    print(f"{len(results)} programs; p4c-bm2-ss accepts {accepted}, refuses {by['both refuse'] + by['p4sim accepts']}"
          + (f", times out on {by['p4c timeout']}" if by["p4c timeout"] else ""))
    for k in ("same", "refused", "crash", "differs"):
        print(f"  {k:8} {by[k]:4}  {100 * by[k] / max(accepted, 1):5.1f}%")
    print(f"  of those p4c refuses, p4sim accepts {by['p4sim accepts']}")
    for outcome, classify in (("refused", error_kind), ("crash", lambda d: d), ("differs", lambda d: d),
                              ("p4sim accepts", lambda d: d)):
        kinds = collections.Counter(classify(r.detail) for r in results if r.outcome == outcome)
        if kinds:
            print(f"\n{outcome}, by kind:")
            for k, n in kinds.most_common():
                print(f"  {n:4}  {k}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
