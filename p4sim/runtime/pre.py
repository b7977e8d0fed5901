"""Packet replication engine state: multicast groups and clone sessions, as the control plane set them."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class ReplicaSpec:
    """One replica. `port_as_bytes` remembers which Replica.port_kind the client used (read symmetry)."""

    port: int
    instance: int
    port_as_bytes: bool = False


@dataclass(frozen=True, slots=True)
class MulticastGroup:
    group_id: int
    replicas: tuple[ReplicaSpec, ...]
    metadata: bytes = b""
    # What the data plane reads: (egress_port, instance) pairs.
    pairs: tuple[tuple[int, int], ...] = field(default=())


@dataclass(frozen=True, slots=True)
class CloneSession:
    session_id: int
    replicas: tuple[ReplicaSpec, ...]
    class_of_service: int = 0
    packet_length_bytes: int = 0
    pairs: tuple[tuple[int, int], ...] = field(default=())


class PacketReplicationEngine:
    """Groups and sessions by id; values are immutable and replaced whole, so reads need no lock."""

    def __init__(self) -> None:
        self.groups: dict[int, MulticastGroup] = {}
        self.sessions: dict[int, CloneSession] = {}

    @staticmethod
    def make_group(group_id: int, replicas: tuple[ReplicaSpec, ...], metadata: bytes) -> MulticastGroup:
        return MulticastGroup(group_id, replicas, metadata, tuple((r.port, r.instance) for r in replicas))

    @staticmethod
    def make_session(session_id: int, replicas: tuple[ReplicaSpec, ...], cos: int,
                     length: int) -> CloneSession:
        return CloneSession(session_id, replicas, cos, length, tuple((r.port, r.instance) for r in replicas))
