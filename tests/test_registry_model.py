"""The registry against a model small enough to be obviously right (hypothesis).

Random sequences of create, enter (existing, missing, invalid and full rooms, the
room one is already in), leave, crash (an actor ends: `depart`, as its `finally`
does) and races (several actors entering one room back to back, as they would when
their frames arrive in the same scheduler batch). After every step, rooms, members,
capacity and every operation's answer (who must be told what) match the model.
Room numbers come from a tiny range so that the unique-number draw collides often.
"""

from __future__ import annotations

import random

import hypothesis.strategies as st
from hypothesis import settings
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from rtcserver.protocol import WrongRoomReason
from rtcserver.rooms.registry import Created, Entered, Refused, Registry

MAX_ACTORS = 12
ROOM_NUMBERS = 40  # more than MAX_ACTORS: a free number always exists


class RegistryModel(RuleBasedStateMachine):
    actors = Bundle("actors")

    @initialize(capacity=st.integers(min_value=2, max_value=4), seed=st.integers(0, 2**32))
    def start(self, capacity: int, seed: int) -> None:
        rng = random.Random(seed)
        self.registry: Registry[str] = Registry(
            capacity=capacity, draw=lambda: rng.randrange(1, ROOM_NUMBERS + 1)
        )
        self.capacity = capacity
        self.rooms: dict[int, list[str]] = {}  # the model
        self.alive: set[str] = set()
        self.dead: set[str] = set()
        self.next_id = 0

    # ------------------------------------------------------------ model helpers

    def room_of(self, actor: str) -> int | None:
        for room, members in self.rooms.items():
            if actor in members:
                return room
        return None

    def model_depart(self, actor: str) -> tuple[int, tuple[str, ...]] | None:
        room = self.room_of(actor)
        if room is None:
            return None
        self.rooms[room].remove(actor)
        remaining = tuple(self.rooms[room])
        if not remaining:
            del self.rooms[room]
        return room, remaining

    def check_left(self, got: object, expected: tuple[int, tuple[str, ...]] | None) -> None:
        if expected is None:
            assert got is None
        else:
            assert got is not None
            assert (got.room, got.remaining) == expected  # type: ignore[attr-defined]

    # ------------------------------------------------------------ rules

    @precondition(lambda self: len(self.alive) < MAX_ACTORS)
    @rule(target=actors)
    def connect(self) -> str:
        self.next_id += 1
        actor = f"actor{self.next_id}"
        self.alive.add(actor)
        return actor

    @rule(actor=actors)
    def create(self, actor: str) -> None:
        if actor in self.dead:
            return
        expected_left = self.model_depart(actor)
        result = self.registry.create(actor)
        assert isinstance(result, Created)
        self.check_left(result.left, expected_left)
        assert result.room not in self.rooms, "a live room's number was handed out twice"
        assert 1 <= result.room <= ROOM_NUMBERS
        self.rooms[result.room] = [actor]

    def _enter(self, actor: str, room: int | None) -> None:
        current = self.room_of(actor)
        result = self.registry.enter(room, actor)
        if room is not None and current == room:
            assert result == Refused(reason=WrongRoomReason.ALREADY_IN_ROOM, left=None)
            return
        expected_left = self.model_depart(actor)
        self.check_left(result.left, expected_left)
        if room is None:
            assert isinstance(result, Refused) and result.reason is WrongRoomReason.INVALID_ROOM
        elif room not in self.rooms:
            assert isinstance(result, Refused) and result.reason is WrongRoomReason.NO_SUCH_ROOM
        elif len(self.rooms[room]) >= self.capacity:
            assert isinstance(result, Refused) and result.reason is WrongRoomReason.ROOM_FULL
        else:
            assert isinstance(result, Entered)
            assert result.already_there == tuple(self.rooms[room])
            self.rooms[room].append(actor)

    @rule(actor=actors, data=st.data())
    def enter_existing(self, actor: str, data: st.DataObject) -> None:
        if actor in self.dead or not self.rooms:
            return
        room = data.draw(st.sampled_from(sorted(self.rooms)))
        self._enter(actor, room)

    @rule(actor=actors, room=st.one_of(st.none(), st.integers(1, ROOM_NUMBERS)))
    def enter_any(self, actor: str, room: int | None) -> None:
        if actor in self.dead:
            return
        self._enter(actor, room)

    @rule(data=st.data())
    def race_into_one_room(self, data: st.DataObject) -> None:
        """Several actors enter the same room back to back: at most capacity get in."""
        if not self.rooms:
            return
        room = data.draw(st.sampled_from(sorted(self.rooms)))
        candidates = sorted(self.alive)
        racers = data.draw(st.lists(st.sampled_from(candidates), min_size=2, max_size=5))
        for actor in racers:
            self._enter(actor, room)
        assert len(self.registry.members(room)) <= self.capacity

    @rule(actor=actors)
    def leave(self, actor: str) -> None:
        """Normal close, crash, cancellation: every exit runs the same `depart`."""
        expected = self.model_depart(actor)
        self.check_left(self.registry.depart(actor), expected)

    @rule(actor=actors)
    def crash(self, actor: str) -> None:
        """The actor ends for good; its `finally` departs (twice is harmless)."""
        expected = self.model_depart(actor)
        self.check_left(self.registry.depart(actor), expected)
        assert self.registry.depart(actor) is None
        self.alive.discard(actor)
        self.dead.add(actor)

    # ------------------------------------------------------------ invariants

    @invariant()
    def matches_the_model(self) -> None:
        if not hasattr(self, "registry"):
            return
        rooms = self.registry.rooms()
        assert {room: list(members) for room, members in rooms.items()} == self.rooms
        for room, members in rooms.items():
            assert 0 < len(members) <= self.capacity
            assert len(set(members)) == len(members)
            for member in members:
                assert self.registry.room_of(member) == room
                assert member not in self.dead, "a registration outlived its actor"
                assert set(self.registry.peers_of(member)) == set(members) - {member}
        stats = self.registry.statistics()
        assert stats.rooms == len(self.rooms)
        assert stats.members == sum(len(m) for m in self.rooms.values())
        for actor in self.dead:
            assert self.registry.room_of(actor) is None


RegistryModel.TestCase.settings = settings(max_examples=200, stateful_step_count=40, deadline=None)
TestRegistryModel = RegistryModel.TestCase
