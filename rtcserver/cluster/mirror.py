"""The node's view of its rooms: a `Registry` that also holds members on other nodes.

Redis holds the cluster's rooms; each node mirrors the rooms its own actors are in,
with every member, local or remote. The relay's hot path reads only this mirror
(`peers_of`, synchronous, no Redis round trip), exactly as on one node. Changes
reach the mirror from this node's own scripts (their replies say who is in a room)
and from other nodes over the bus (J: someone joined, L: someone left).

A remote member is a `RemoteMember`; `peers_of(actor)` hands out `Link`s, a remote
member bound to the local sender, so a message that cannot be delivered comes back
to its sender as an ERROR however late that is known.

Every room of a cluster node is in `shared`, the private rooms of calls too (the
leader makes those in Redis, `leader.py`, and tells the parties' nodes). A room not in
`shared` would be node-local and behave exactly as on one node.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import attrs

from ..actors.actor import Actor
from ..rooms.peers import Peer
from ..rooms.registry import Departure, Registry, draw_member_id


class Bus(Protocol):
    """How a frame for a remote member leaves this node (`bus.Bus`)."""

    def relay(self, member: RemoteMember, sender: Actor | None, room: int, text: str) -> bool: ...


def member_id(node: str, actor: int) -> str:
    return f"{node}/{actor}"


def parse_member(member: str) -> tuple[str, int]:
    node, _, actor = member.rpartition("/")
    return node, int(actor)


@attrs.define(eq=False, repr=False)
class RemoteMember:
    """A room member that lives on another node. Hashable by identity: the mirror
    keeps exactly one per member id."""

    node: str
    actor: int
    bus: Bus

    def __repr__(self) -> str:
        return f"<RemoteMember {self.node}/{self.actor}>"

    def tell(self, text: str) -> bool:
        """Relay without a sender to report failures to (nothing uses this path for
        client messages: `peers_of` gives out `Link`s)."""
        return self.bus.relay(self, None, 0, text)


@attrs.define(eq=False, slots=True)
class Link:
    """A remote member as one local sender sees it: failures go back to `sender`."""

    member: RemoteMember
    sender: Actor
    room: int

    def tell(self, text: str) -> bool:
        return self.member.bus.relay(self.member, self.sender, self.room, text)


class Mirror(Registry[Peer]):
    """`Registry` plus remote members, and the hook that takes departures to Redis."""

    def __init__(
        self,
        capacity: int,
        on_local_departure: Callable[[Actor, int], None],
        new_id: Callable[[int, Peer], str] = draw_member_id,
    ) -> None:
        super().__init__(capacity=capacity, new_id=new_id)
        self.shared: set[int] = set()
        self.remote_names: dict[RemoteMember, str] = {}  # LOGIN names of remote members
        self.local: dict[int, Actor] = {}  # actor id -> local actor in a shared room
        self.remote: dict[str, RemoteMember] = {}  # member id -> proxy
        self._on_local_departure = on_local_departure

    # ----------------------------------------------------------- relay path

    def peers_of(self, actor: Peer) -> tuple[Peer, ...]:
        room = self._room_of.get(actor)
        if room is None:
            return ()
        if room not in self.shared:
            return tuple(m for m in self._rooms[room] if m != actor)
        assert isinstance(actor, Actor)
        return tuple(
            Link(m, actor, room) if type(m) is RemoteMember else m
            for m in self._rooms[room]
            if m != actor
        )

    def peer_with_id(self, actor: Peer, member_id: object) -> Peer | None:
        peer = super().peer_with_id(actor, member_id)
        if type(peer) is RemoteMember and isinstance(actor, Actor):
            room = self._room_of[actor]
            return Link(peer, actor, room)
        return peer

    def name_of(self, actor: Peer) -> str | None:
        name = self._name_of.get(actor)
        if name is None and type(actor) is RemoteMember:
            return self.remote_names.get(actor)
        return name

    # ----------------------------------------------------------- departures

    def depart(self, actor: Peer) -> Departure[Peer] | None:
        """Leave the room. For a shared room the cluster is told (Redis cleanup and the
        other nodes' PEERLEFT happen in the background, in order) and only the local
        remaining members are returned, for the caller to tell PEERLEFT."""
        shared = self._room_of.get(actor) in self.shared  # before `drop` may forget the room
        departure = self.drop(actor)
        if departure is not None and isinstance(actor, Actor) and shared:
            self._on_local_departure(actor, departure.room)
        return departure

    def drop(self, member: Peer) -> Departure[Peer] | None:
        """Take `member` out of the mirror only (Redis is already up to date)."""
        departure = super().depart(member)
        if departure is None:
            return None
        room = departure.room
        if isinstance(member, Actor):
            self.local.pop(member.id, None)
        elif isinstance(member, RemoteMember):
            self.remote.pop(member_id(member.node, member.actor), None)
            self.remote_names.pop(member, None)
        if room not in self.shared:
            return departure
        local = tuple(m for m in departure.remaining if isinstance(m, Actor))
        if not local:
            # No news of this room reaches a node with nobody in it: forget it whole, or
            # a later newcomer here would find members who have left since.
            for member in departure.remaining:
                super().depart(member)
                if isinstance(member, RemoteMember):
                    self.remote.pop(member_id(member.node, member.actor), None)
                    self.remote_names.pop(member, None)
            self.shared.discard(room)
        return Departure(room=room, remaining=local, left_id=departure.left_id)

    # ----------------------------------------------------------- arrivals

    def add(self, room: int, member: Peer, capacity: int | None = None) -> None:
        """Put `member` in shared `room` (leaving any room it is in, without a word).
        `capacity`: the room's, as Redis has it (a room it does not give is a call's)."""
        if self._room_of.get(member) == room:
            return
        self.drop(member)
        self.shared.add(room)
        if capacity is not None:
            self._capacity[room] = capacity
        elif room not in self._rooms:
            self._capacity[room] = 2
        self._put(room, member)
        if isinstance(member, Actor):
            self.local[member.id] = member
        elif isinstance(member, RemoteMember):
            self.remote[member_id(member.node, member.actor)] = member

    def remote_member(self, node: str, actor: int, bus: Bus) -> RemoteMember:
        existing = self.remote.get(member_id(node, actor))
        return existing if existing is not None else RemoteMember(node, actor, bus)

    def cross_node_rooms(self) -> dict[int, tuple[Peer, ...]]:
        """Shared rooms that hold a remote member, with all their members."""
        return {
            room: tuple(members)
            for room, members in self._rooms.items()
            if room in self.shared and any(type(m) is RemoteMember for m in members)
        }

    def local_memberships(self) -> list[tuple[int, Actor]]:
        return [
            (room, actor) for actor in self.local.values() if (room := self._room_of.get(actor))
        ]
