"""FlowsEntry (controller/dataplane.py): the flows entries the orchestrator writes, filled straight
from their numbers -- the very message the checked TableEntry makes, and the same refusals."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from p4.v1 import p4runtime_pb2 as pb
from p4splice.controller import dataplane as dp
from p4splice.controller.p4rt import P4Index, Update, UpdateType
from p4splice.controller.splice.model import EntryMatch

from p4sim.compiler.driver import compile_file

SPLICE = Path(__file__).resolve().parents[2] / "p4src" / "splice.p4"


@pytest.fixture(scope="module")
def index() -> P4Index:
    return P4Index(compile_file(SPLICE).p4info)


def both(index: P4Index, e: dp.FlowsEntry, t: UpdateType = UpdateType.INSERT) -> tuple[pb.Update, pb.Update]:
    fast, slow = pb.Update(), pb.Update()
    Update(t, e).fill(index, fast)  # type: ignore[arg-type]
    Update(t, e.table_entry()).fill(index, slow)
    return fast, slow


def random_entries(rng: random.Random, n: int) -> list[dp.FlowsEntry]:
    out = []
    for _ in range(n):
        m = EntryMatch(rng.choice([0, 1, 3, 511]), f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(256)}",
                       rng.choice([0, 1, 65535, rng.randrange(65536)]), rng.choice(["0.0.0.0", "255.255.255.255", "10.0.2.1"]),
                       rng.choice([0, 80, 65535]))
        idle = rng.choice([0, 1, 300 * 10**9])
        kind = rng.choice(["translate", "hold", "punt", "drop"])
        if kind in ("punt", "drop"):
            out.append(dp.FlowsEntry(kind, (m, idle)))
            continue
        deltas = [rng.choice([0, 1, 255, 256, 2**31, 2**32 - 1, rng.randrange(2**32)]) for _ in range(4)]
        out.append(dp.FlowsEntry(kind, (m, rng.choice([0, 3, 511]), rng.choice([0, 1, rng.randrange(2**48), 2**48 - 1]),
                                        rng.randrange(2**48), *deltas, rng.randrange(15), rng.randrange(15), idle)))
    return out


def test_the_message_is_the_checked_entrys(index: P4Index) -> None:
    for e in random_entries(random.Random(3), 500):
        for t in UpdateType:
            fast, slow = both(index, e, t)
            assert fast == slow, e
            assert fast.SerializeToString() == slow.SerializeToString()


def test_the_mirror_gives_the_entry_back(index: P4Index) -> None:
    m = EntryMatch(1, "10.0.1.1", 40000, "10.0.2.1", 80)
    e = dp.FlowsEntry("translate", (m, 3, 0x0200000000FE, 0x020000000301, 1, 2, 3, 4, 7, 9, 5))
    assert e.table_entry() == dp.flow_translate(m, 3, 0x0200000000FE, 0x020000000301, 1, 2, 3, 4, 7, 9,
                                                idle_timeout_ns=5)
    assert e.idle_timeout_ns == 5 and str(e) == str(e.table_entry())


def test_a_negative_delta_is_wrapped_as_the_checked_entry_wraps_it(index: P4Index) -> None:
    m = EntryMatch(1, "10.0.1.1", 40000, "10.0.2.1", 80)
    fast, slow = both(index, dp.FlowsEntry("hold", (m, 3, 1, 2, -1, -(2**31), 0, 5, 0, 0, 0)))
    assert fast == slow
    assert fast.entity.table_entry.action.action.params[3].value == b"\xff" * 4


@pytest.mark.parametrize("args,error", [
    ((EntryMatch(512, "10.0.1.1", 1, "10.0.2.1", 80), 3, 1, 2, 0, 0, 0, 0, 0, 0, 0), "switch port"),
    ((EntryMatch(1, "10.0.1.300", 1, "10.0.2.1", 80), 3, 1, 2, 0, 0, 0, 0, 0, 0, 0), "IPv4"),
    ((EntryMatch(1, "10.0.1.1", 65536, "10.0.2.1", 80), 3, 1, 2, 0, 0, 0, 0, 0, 0, 0), "TCP port"),
    ((EntryMatch(1, "10.0.1.1", 1, "10.0.2.1", 80), 3, 2**48, 2, 0, 0, 0, 0, 0, 0, 0), "smac"),
    ((EntryMatch(1, "10.0.1.1", 1, "10.0.2.1", 80), 3, 1, 2, 2**32, 0, 0, 0, 0, 0, 0), "32-bit delta"),
    ((EntryMatch(1, "10.0.1.1", 1, "10.0.2.1", 80), 3, 1, 2, 0, 0, 0, 0, 0, 0, -1), "negative"),
    ((EntryMatch(1, "10.0.1.1", 1, "10.0.2.1", 80), 3, 1, 2, 0, 0, 0, 0, True, 0, 0), "shift"),
])
def test_what_the_checked_entry_refuses_is_refused(index: P4Index, args: tuple, error: str) -> None:
    e = dp.FlowsEntry("translate", args)
    with pytest.raises((ValueError, TypeError), match=error):
        Update(UpdateType.INSERT, e).fill(index, pb.Update())  # type: ignore[arg-type]
