"""The room registry: gproc's job, as a pure synchronous object.

Maps room numbers to their members and members to their room. Nothing here awaits,
so no two operations can interleave: check-and-join is atomic by construction
(invariant 2). Nothing here does I/O either; callers get back *who* must be told
what (the peers that remain after a departure, the members that see a newcomer)
and do the telling themselves.

It also holds names (gproc's unique `n` keys, beside the rooms' `p` keys): a logged-in
user's name maps to its actor, and no two live actors share one, nor two names that
look alike (equal TR39 skeletons, `lookalike.skeleton`: `alice` and Cyrillic `аlice`).

Every member has an id in its room (`member_id`): unguessable, unique in the room, new
at each entry. Rooms hold `capacity` members, chosen by their creator; a room of more
than two is *multi-party*: its departures name who left (`Departure.left_id`) and its
relayed messages name their sender (`from_suffix`). Rooms of two keep the book's shapes.

"A registration dies with its actor" (invariant 1) is kept by the connection actor,
which calls `forget` in the `finally` that ends its life; `forget` is idempotent.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Hashable
from typing import Generic, Protocol, TypeVar

import attrs

from ..protocol import MAX_ROOM, WrongRoomReason, from_suffix
from ..security.lookalike import skeleton

A = TypeVar("A", bound=Hashable)
A_contra = TypeVar("A_contra", bound=Hashable, contravariant=True)


class Watcher(Protocol[A_contra]):
    """Told of every change as it happens (the webhooks' source, `server/events.py`).
    Synchronous and must not fail or block: it only takes notes."""

    def joined(self, room: int, member: A_contra, member_id: str, first: bool) -> None: ...
    def left(self, room: int, member: A_contra, member_id: str, last: bool) -> None: ...
    def named(self, name: str, member: A_contra) -> None: ...
    def unnamed(self, name: str, member: A_contra) -> None: ...


def draw_room_number() -> int:
    """A room number from a CSPRNG, 1..2^53-1: unguessable, and exact in a browser."""
    return secrets.randbelow(MAX_ROOM) + 1


def draw_member_id(room: int, member: object) -> str:
    """A member id from a CSPRNG (72 bits): unguessable, and short on the wire."""
    return secrets.token_urlsafe(9)


def is_multi_party(capacity: int) -> bool:
    return capacity > 2


@attrs.frozen
class Departure(Generic[A]):
    """`actor` left `room`; `remaining` are the members to tell (PEERLEFT). `left_id`:
    the id of who left, in a multi-party room (None in a room of two: the book's PEERLEFT)."""

    room: int
    remaining: tuple[A, ...]
    left_id: str | None = None


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
    """Rooms of at most their capacity (`capacity` unless the creator chose another);
    every member is in at most one room."""

    def __init__(
        self,
        capacity: int = 2,
        draw: Callable[[], int] = draw_room_number,
        new_id: Callable[[int, A], str] = draw_member_id,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if capacity < 2:
            raise ValueError("a room needs space for at least two members")
        self.capacity = capacity
        self._draw = draw
        self._new_id = new_id
        self._rooms: dict[int, list[A]] = {}
        self._room_of: dict[A, int] = {}
        self._capacity: dict[int, int] = {}
        self._id_of: dict[A, str] = {}
        self._with_id: dict[int, dict[str, A]] = {}
        # Members of multi-party rooms only: what closes the messages they send.
        self._from: dict[A, str] = {}
        self._actor_named: dict[str, A] = {}
        self._name_of: dict[A, str] = {}
        self._label_of: dict[A, str] = {}
        self._name_with_skeleton: dict[str, str] = {}
        # What the admin API reports of a room: when it was made (`clock`, wall time)
        # and the bytes relayed in it (`count_relayed`); they die with the room.
        self._clock = clock
        self._created: dict[int, float] = {}
        self._relayed: dict[int, int] = {}
        self.watcher: Watcher[A] | None = None

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

    def capacity_of(self, room: int) -> int:
        return self._capacity.get(room, self.capacity)

    def member_id(self, actor: A) -> str | None:
        return self._id_of.get(actor)

    def named_id(self, actor: A) -> str | None:
        """`actor`'s id if its room names its members to each other (multi-party: as
        PEERLEFT names who left), else None (a room of two keeps the book's shapes)."""
        return self._id_of.get(actor) if actor in self._from else None

    def from_suffix(self, actor: A) -> str | None:
        """The relay's `,"from":id}` for a member of a multi-party room, else None."""
        return self._from.get(actor)

    def peer_with_id(self, actor: A, member_id: object) -> A | None:
        """The other member of `actor`'s room whose id is `member_id`, if any."""
        room = self._room_of.get(actor)
        if room is None or not isinstance(member_id, str):
            return None
        peer = self._with_id[room].get(member_id)
        return None if peer is None or peer == actor else peer

    def roster(self, room: int) -> list[tuple[str, A]]:
        """Every member of `room` with its id, in the order they came."""
        return [(self._id_of[m], m) for m in self._rooms.get(room, ())]

    def rooms(self) -> dict[int, tuple[A, ...]]:
        return {room: tuple(members) for room, members in self._rooms.items()}

    def created_at(self, room: int) -> float | None:
        return self._created.get(room)

    def relayed_bytes(self, room: int) -> int:
        return self._relayed.get(room, 0)

    def count_relayed(self, actor: A, size: int) -> None:
        """`actor` had `size` bytes relayed to its room's members (all deliveries)."""
        room = self._room_of.get(actor)
        if room is not None:
            self._relayed[room] = self._relayed.get(room, 0) + size

    def statistics(self) -> RegistryStats:
        return RegistryStats(
            rooms=len(self._rooms), members=len(self._room_of), names=len(self._name_of)
        )

    def actor_named(self, name: str) -> A | None:
        return self._actor_named.get(name)

    def name_of(self, actor: A) -> str | None:
        return self._name_of.get(actor)

    def display_name(self, actor: A) -> str | None:
        """The name the room shows: its own, or the one it holds on another worker."""
        return self.name_of(actor) or self._label_of.get(actor)  # (a mirror knows more)

    def label(self, actor: A, name: str | None) -> None:
        """Show `name` for `actor`, whose name lives elsewhere (the directory worker's
        registry holds it): rooms show it, but it claims nothing here."""
        if name is None:
            self._label_of.pop(actor, None)
        else:
            self._label_of[actor] = name

    def name_like(self, name: str) -> str | None:
        """The logged-in name that `name` looks like (the same skeleton), if any."""
        return self._name_with_skeleton.get(skeleton(name))

    def names(self) -> dict[str, A]:
        return dict(self._actor_named)

    # ------------------------------------------------------------------ changes

    def create(self, actor: A, capacity: int | None = None) -> Created[A]:
        """Make a new room with `actor` as its first member (leaving its old room)."""
        left = self.depart(actor)
        room = self._draw()
        while room in self._rooms:  # unique among live rooms
            room = self._draw()
        self._capacity[room] = capacity or self.capacity
        self._put(room, actor)
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
        if len(members) >= self.capacity_of(room):
            return Refused(reason=WrongRoomReason.ROOM_FULL, left=left)
        already_there = tuple(members)
        self._put(room, actor)
        return Entered(room=room, already_there=already_there, left=left)

    def depart(self, actor: A) -> Departure[A] | None:
        """Remove `actor` from its room, if any. Empty rooms die. Idempotent."""
        room = self._room_of.pop(actor, None)
        if room is None:
            return None
        members = self._rooms[room]
        members.remove(actor)
        left_id = self._id_of.pop(actor)
        del self._with_id[room][left_id]
        multi = self._from.pop(actor, None) is not None
        if self.watcher is not None:
            self.watcher.left(room, actor, left_id, not members)
        if not members:
            del self._rooms[room]
            del self._with_id[room]
            self._capacity.pop(room, None)
            self._created.pop(room, None)
            self._relayed.pop(room, None)
        return Departure(room=room, remaining=tuple(members), left_id=left_id if multi else None)

    def _put(self, room: int, member: A) -> None:
        """Add `member` to `room` (which it is not in), with a fresh id."""
        first = room not in self._rooms
        if first:
            self._created[room] = self._clock()
        self._rooms.setdefault(room, []).append(member)
        self._room_of[member] = room
        ids = self._with_id.setdefault(room, {})
        member_id = self._new_id(room, member)
        while member_id in ids:  # unique in the room
            member_id = draw_member_id(room, member)
        ids[member_id] = member
        self._id_of[member] = member_id
        if is_multi_party(self.capacity_of(room)):
            self._from[member] = from_suffix(member_id)
        if self.watcher is not None:
            self.watcher.joined(room, member, member_id, first)

    def create_private(self, actors: tuple[A, ...]) -> tuple[int, list[Departure[A]]]:
        """A new room holding exactly `actors` (a call's two parties), each leaving the
        room it was in. Returns the room and the departures to announce."""
        if not 1 <= len(actors) <= self.capacity:
            raise ValueError("a private room holds between one and `capacity` actors")
        departures = [d for d in map(self.depart, actors) if d is not None]
        room = self._draw()
        while room in self._rooms:
            room = self._draw()
        self._capacity[room] = max(2, len(actors))
        for actor in actors:
            self._put(room, actor)
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
        if self.watcher is not None:
            self.watcher.named(name, actor)
        return True

    def forget(self, actor: A) -> tuple[Departure[A] | None, str | None]:
        """Everything `actor` registered dies with it: its room and its name. Idempotent."""
        name = self._name_of.pop(actor, None)
        self._label_of.pop(actor, None)
        if name is not None:
            del self._actor_named[name]
            del self._name_with_skeleton[skeleton(name)]
        departure = self.depart(actor)
        if name is not None and self.watcher is not None:
            self.watcher.unnamed(name, actor)
        return departure, name
