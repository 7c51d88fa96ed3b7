"""The room registry: gproc's job, as a pure synchronous object.

Maps room numbers to their members and members to their room. Nothing here awaits,
so no two operations can interleave: check-and-join is atomic by construction
(invariant 2). Nothing here does I/O either; callers get back *who* must be told
what (the peers that remain after a departure, the members that see a newcomer)
and do the telling themselves.

It also holds names (gproc's unique `n` keys, beside the rooms' `p` keys): a logged-in
user's name maps to its actor, and no two live actors share one, nor two names that
look alike (equal TR39 skeletons, `lookalike.skeleton`: `alice` and Cyrillic `аlice`).

"A registration dies with its actor" (invariant 1) is kept by the connection actor,
which calls `forget` in the `finally` that ends its life; `forget` is idempotent.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

import attrs

from .lookalike import skeleton
from .protocol import MAX_ROOM, WrongRoomReason

A = TypeVar("A", bound=Hashable)


def draw_room_number() -> int:
    """A room number from a CSPRNG, 1..2^53-1: unguessable, and exact in a browser."""
    return secrets.randbelow(MAX_ROOM) + 1


@attrs.frozen
class Departure(Generic[A]):
    """`actor` left `room`; `remaining` are the members to tell (PEERLEFT)."""

    room: int
    remaining: tuple[A, ...]


@attrs.frozen
class Created(Generic[A]):
    room: int
    left: Departure[A] | None  # the room the creator was in before, if any


@attrs.frozen
class Entered(Generic[A]):
    room: int
    already_there: tuple[A, ...]  # to tell PEERJOINED
    left: Departure[A] | None


@attrs.frozen
class Refused(Generic[A]):
    reason: WrongRoomReason
    left: Departure[A] | None


@attrs.frozen
class RegistryStats:
    rooms: int
    members: int
    names: int = 0


class Registry(Generic[A]):
    """Rooms of at most `capacity` members; every member is in at most one room."""

    def __init__(self, capacity: int = 2, draw: Callable[[], int] = draw_room_number) -> None:
        if capacity < 2:
            raise ValueError("a room needs space for at least two members")
        self.capacity = capacity
        self._draw = draw
        self._rooms: dict[int, list[A]] = {}
        self._room_of: dict[A, int] = {}
        self._actor_named: dict[str, A] = {}
        self._name_of: dict[A, str] = {}
        self._name_with_skeleton: dict[str, str] = {}

    # ------------------------------------------------------------------ queries

    def room_of(self, actor: A) -> int | None:
        return self._room_of.get(actor)

    def members(self, room: int) -> tuple[A, ...]:
        return tuple(self._rooms.get(room, ()))

    def peers_of(self, actor: A) -> tuple[A, ...]:
        """The other members of `actor`'s room (empty when it is in none)."""
        room = self._room_of.get(actor)
        if room is None:
            return ()
        return tuple(m for m in self._rooms[room] if m != actor)

    def rooms(self) -> dict[int, tuple[A, ...]]:
        return {room: tuple(members) for room, members in self._rooms.items()}

    def statistics(self) -> RegistryStats:
        return RegistryStats(
            rooms=len(self._rooms), members=len(self._room_of), names=len(self._name_of)
        )

    def actor_named(self, name: str) -> A | None:
        return self._actor_named.get(name)

    def name_of(self, actor: A) -> str | None:
        return self._name_of.get(actor)

    def name_like(self, name: str) -> str | None:
        """The logged-in name that `name` looks like (the same skeleton), if any."""
        return self._name_with_skeleton.get(skeleton(name))

    def names(self) -> dict[str, A]:
        return dict(self._actor_named)

    # ------------------------------------------------------------------ changes

    def create(self, actor: A) -> Created[A]:
        """Make a new room with `actor` as its first member (leaving its old room)."""
        left = self.depart(actor)
        room = self._draw()
        while room in self._rooms:  # unique among live rooms
            room = self._draw()
        self._rooms[room] = [actor]
        self._room_of[actor] = room
        return Created(room=room, left=left)

    def enter(self, room: int | None, actor: A) -> Entered[A] | Refused[A]:
        """Join `room` if it exists and has space: checked and done in one step."""
        if room is not None and self._room_of.get(actor) == room:
            return Refused(reason=WrongRoomReason.ALREADY_IN_ROOM, left=None)
        left = self.depart(actor)
        if room is None:
            return Refused(reason=WrongRoomReason.INVALID_ROOM, left=left)
        members = self._rooms.get(room)
        if members is None:
            return Refused(reason=WrongRoomReason.NO_SUCH_ROOM, left=left)
        if len(members) >= self.capacity:
            return Refused(reason=WrongRoomReason.ROOM_FULL, left=left)
        already_there = tuple(members)
        members.append(actor)
        self._room_of[actor] = room
        return Entered(room=room, already_there=already_there, left=left)

    def depart(self, actor: A) -> Departure[A] | None:
        """Remove `actor` from its room, if any. Empty rooms die. Idempotent."""
        room = self._room_of.pop(actor, None)
        if room is None:
            return None
        members = self._rooms[room]
        members.remove(actor)
        if not members:
            del self._rooms[room]
        return Departure(room=room, remaining=tuple(members))

    def create_private(self, actors: tuple[A, ...]) -> tuple[int, list[Departure[A]]]:
        """A new room holding exactly `actors` (a call's two parties), each leaving the
        room it was in. Returns the room and the departures to announce."""
        if not 1 <= len(actors) <= self.capacity:
            raise ValueError("a private room holds between one and `capacity` actors")
        departures = [d for d in map(self.depart, actors) if d is not None]
        room = self._draw()
        while room in self._rooms:
            room = self._draw()
        self._rooms[room] = list(actors)
        for actor in actors:
            self._room_of[actor] = room
        return room, departures

    def register_name(self, name: str, actor: A) -> bool:
        """Claim `name` for `actor`. False if another live actor holds it, or `actor`
        already has a name (one name per connection), or a live name looks like it."""
        key = skeleton(name)
        if name in self._actor_named or actor in self._name_of or key in self._name_with_skeleton:
            return False
        self._actor_named[name] = actor
        self._name_of[actor] = name
        self._name_with_skeleton[key] = name
        return True

    def forget(self, actor: A) -> tuple[Departure[A] | None, str | None]:
        """Everything `actor` registered dies with it: its room and its name. Idempotent."""
        name = self._name_of.pop(actor, None)
        if name is not None:
            del self._actor_named[name]
            del self._name_with_skeleton[skeleton(name)]
        return self.depart(actor), name
