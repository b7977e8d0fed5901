"""Action profiles and action selectors: members, groups, and how a group picks a member.

The model is simple_switch_grpc's (PI's action-profile manager over BMv2's ActionProfile),
because p4sim answers to the same clients:

* every member owns BMv2 *member handles*, handed out lowest-free-first per profile. A member
  starts with one handle; a group that gives it weight ``w`` needs ``w`` copies of it, so the
  member grows handles up to the largest weight any group gives it (and shrinks back when no
  group needs them any more).
* a group holds handles, not member ids; its members are its handles in increasing order.
  A packet hashes the table's ``selector`` fields with the selector's algorithm (the full
  output: BMv2 ignores ``outputWidth``) and takes handle number ``hash % len(handles)``.
* a hit on an empty group runs no action (BMv2 logs "yielded empty group" and returns its
  empty action; the table still reports a hit).
* one-shot programming (``action_profile_action_set`` in a table entry) makes a hidden group
  with hidden members, one per action, in the order given. A profile is programmed either one
  way or the other, never both (PI's rule).

Watch ports are stored and read back; p4sim's ports never go down, so they never deactivate a
member. Data-plane readers take no lock: a member's ``action`` and a group's ``selection``
are replaced whole, never edited in place (see tables.py for why that is enough).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

from p4.config.v1 import p4info_pb2

# Indirect table entries store (MEMBER, APMember) or (GROUP, APGroup) as Entry.action; the
# negative "action ids" keep them apart from the direct (action_id, params) pairs.
MEMBER = -1
GROUP = -2

MANUAL = "manual"
ONESHOT = "oneshot"


class APMember:
    """One member: an action with its parameters, and the BMv2 handles that stand for it."""

    __slots__ = ("id", "action", "handles", "refs", "hidden")

    def __init__(self, member_id: int, action: tuple[int, tuple[int, ...]], hidden: bool = False) -> None:
        self.id = member_id
        self.action = action
        self.handles: list[int] = []
        self.refs = 0  # table entries and groups that use it
        self.hidden = hidden  # one-shot members are not readable as ActionProfileMember

    def __repr__(self) -> str:
        return f"<member {self.id} action={self.action} handles={self.handles}>"


@dataclass(frozen=True, slots=True)
class Membership:
    """A member's place in a group as the client wrote it (echoed on reads)."""

    weight: int
    watch_kind: str | None  # "watch", "watch_port" or None
    watch: int | bytes


class APGroup:
    """A group: its members as written, and `selection` (member per handle, handle order)."""

    __slots__ = ("id", "max_size", "members", "selection", "refs", "hidden")

    def __init__(self, group_id: int, max_size: int, hidden: bool = False) -> None:
        self.id = group_id
        self.max_size = max_size
        self.members: dict[int, Membership] = {}  # member id -> membership
        self.selection: tuple[APMember, ...] = ()
        self.refs = 0  # table entries that point at it
        self.hidden = hidden


class ActionProfile:
    """One action profile or selector from P4Info, with its members and groups."""

    def __init__(self, info: p4info_pb2.ActionProfile, action_ids: set[int]) -> None:
        self.info = info
        self.id = info.preamble.id
        self.name = info.preamble.name
        self.table_ids = tuple(info.table_ids)
        self.with_selector = info.with_selector
        self.size = info.size
        self.max_group_size = info.max_group_size
        self.action_ids = frozenset(action_ids)  # the actions of the tables that use it
        self.members: dict[int, APMember] = {}
        self.groups: dict[int, APGroup] = {}
        self.mode: str | None = None  # MANUAL or ONESHOT once programmed (PI forbids mixing)
        # hashing, filled in by the data plane binding: (algorithm, field widths)
        self.algorithm = "identity"
        self._free: list[int] = []  # released handles (a heap): the lowest one is reused first
        self._next_handle = 0
        self._hidden_ids = 0

    # ---------------------------------------------------------------------------------------
    # handles
    def _take_handle(self) -> int:
        if self._free:
            return heapq.heappop(self._free)
        h = self._next_handle
        self._next_handle += 1
        return h

    def _release_handle(self, h: int) -> None:
        heapq.heappush(self._free, h)

    def visible_members(self) -> int:
        return sum(1 for m in self.members.values() if not m.hidden)

    def new_member(self, member_id: int, action: tuple[int, tuple[int, ...]], hidden: bool = False) -> APMember:
        m = APMember(member_id, action, hidden)
        m.handles.append(self._take_handle())
        self.members[member_id] = m
        return m

    def drop_member(self, m: APMember) -> None:
        for h in m.handles:
            self._release_handle(h)
        m.handles = []
        del self.members[m.id]

    def hidden_id(self) -> int:
        """An id for a one-shot member or group, outside the 32-bit range clients can use."""
        self._hidden_ids += 1
        return (1 << 32) + self._hidden_ids

    # ---------------------------------------------------------------------------------------
    # groups
    def set_membership(self, g: APGroup, members: dict[int, Membership]) -> None:
        """Give `g` exactly `members` (ids known to exist), growing members' handle copies
        first and trimming the ones no group needs any more after, as PI does."""
        old = g.members
        for mid, ms in sorted(members.items()):  # PI walks the membership by member id
            m = self.members[mid]
            while len(m.handles) < ms.weight:
                m.handles.append(self._take_handle())
            if mid not in old:
                m.refs += 1
        for mid in old:
            if mid not in members:
                self.members[mid].refs -= 1
        g.members = dict(members)
        self._reselect(g)
        for mid in set(old) | set(members):
            self._trim(self.members[mid])

    def drop_group(self, g: APGroup) -> None:
        old = g.members
        g.members = {}
        g.selection = ()
        for mid in old:
            m = self.members[mid]
            m.refs -= 1
            self._trim(m)
        del self.groups[g.id]

    def _reselect(self, g: APGroup) -> None:
        by_handle: list[tuple[int, APMember]] = []
        for mid, ms in g.members.items():
            m = self.members[mid]
            by_handle.extend((h, m) for h in m.handles[:ms.weight])
        by_handle.sort(key=lambda hm: hm[0])
        g.selection = tuple(m for _, m in by_handle)

    def _trim(self, m: APMember) -> None:
        need = 1
        for g in self.groups.values():
            ms = g.members.get(m.id)
            if ms is not None and ms.weight > need:
                need = ms.weight
        if len(m.handles) > need:
            for h in m.handles[need:]:
                self._release_handle(h)
            m.handles = m.handles[:need]
            # groups keep their handles in order: none of them used the trimmed copies
