"""The registry (gproc's job) as a specification, without sockets."""

from __future__ import annotations

import itertools

import pytest

from rtcserver.protocol import MAX_ROOM, WrongRoomReason
from rtcserver.rooms.registry import Entered, Refused, Registry, draw_room_number


def registry(capacity: int = 2) -> Registry[str]:
    return Registry(capacity=capacity)


def test_creator_is_first_member_of_a_new_room() -> None:
    reg = registry()
    created = reg.create("a")
    assert reg.members(created.room) == ("a",)
    assert reg.room_of("a") == created.room
    assert created.left is None


def test_second_member_enters_and_is_announced_to_the_first() -> None:
    reg = registry()
    room = reg.create("a").room
    result = reg.enter(room, "b")
    assert isinstance(result, Entered)
    assert result.already_there == ("a",)
    assert reg.peers_of("a") == ("b",)
    assert reg.peers_of("b") == ("a",)


def test_third_peer_gets_wrongroom_room_full() -> None:
    reg = registry()
    room = reg.create("a").room
    reg.enter(room, "b")
    result = reg.enter(room, "c")
    assert isinstance(result, Refused)
    assert result.reason is WrongRoomReason.ROOM_FULL
    assert reg.members(room) == ("a", "b")
    assert reg.room_of("c") is None


def test_capacity_is_configurable() -> None:
    reg = registry(capacity=3)
    room = reg.create("a").room
    assert isinstance(reg.enter(room, "b"), Entered)
    assert isinstance(reg.enter(room, "c"), Entered)
    assert isinstance(reg.enter(room, "d"), Refused)


@pytest.mark.parametrize("room", [None, 12345])
def test_unknown_or_invalid_room_is_refused(room: int | None) -> None:
    reg = registry()
    result = reg.enter(room, "a")
    assert isinstance(result, Refused)
    expected = WrongRoomReason.INVALID_ROOM if room is None else WrongRoomReason.NO_SUCH_ROOM
    assert result.reason is expected


def test_departure_tells_who_remains_and_empty_rooms_die() -> None:
    reg = registry()
    room = reg.create("a").room
    reg.enter(room, "b")
    departure = reg.depart("a")
    assert departure is not None
    assert departure.room == room and departure.remaining == ("b",)
    last = reg.depart("b")
    assert last is not None and last.remaining == ()
    assert reg.statistics().rooms == 0
    assert isinstance(reg.enter(room, "c"), Refused)


def test_depart_is_idempotent() -> None:
    reg = registry()
    reg.create("a")
    assert reg.depart("a") is not None
    assert reg.depart("a") is None
    assert reg.depart("never-registered") is None


def test_getroom_while_in_a_room_leaves_it_first() -> None:
    reg = registry()
    first = reg.create("a").room
    reg.enter(first, "b")
    second = reg.create("a")
    assert second.left is not None
    assert second.left.room == first and second.left.remaining == ("b",)
    assert reg.members(first) == ("b",)
    assert reg.members(second.room) == ("a",)


def test_enterroom_while_in_a_room_leaves_it_first() -> None:
    reg = registry()
    old = reg.create("a").room
    reg.enter(old, "b")
    other = reg.create("c").room
    result = reg.enter(other, "a")
    assert isinstance(result, Entered)
    assert result.left is not None and result.left.remaining == ("b",)
    assert reg.members(old) == ("b",)


def test_entering_own_room_again_is_refused_and_keeps_membership() -> None:
    reg = registry()
    room = reg.create("a").room
    result = reg.enter(room, "a")
    assert isinstance(result, Refused)
    assert result.reason is WrongRoomReason.ALREADY_IN_ROOM
    assert reg.members(room) == ("a",)


def test_room_numbers_are_unique_among_live_rooms() -> None:
    draws = itertools.chain([7, 7, 7, 8], itertools.count(100))
    reg: Registry[str] = Registry(draw=lambda: next(draws))
    assert reg.create("a").room == 7
    assert reg.create("b").room == 8  # the repeated 7s were redrawn


def test_room_numbers_are_browser_safe_integers() -> None:
    for _ in range(1000):
        n = draw_room_number()
        assert isinstance(n, int) and 1 <= n <= MAX_ROOM
    # Unguessable: 1000 draws from 2^53 values never repeat in practice.
    assert len({draw_room_number() for _ in range(1000)}) == 1000


def test_statistics_count_rooms_and_members() -> None:
    reg = registry()
    room = reg.create("a").room
    reg.enter(room, "b")
    reg.create("c")
    stats = reg.statistics()
    assert (stats.rooms, stats.members) == (2, 3)


def test_a_creator_chooses_the_capacity_of_its_room() -> None:
    reg = registry()
    room = reg.create("a", capacity=4).room
    assert reg.capacity_of(room) == 4
    for member in "bcd":
        assert isinstance(reg.enter(room, member), Entered)
    refused = reg.enter(room, "e")
    assert isinstance(refused, Refused) and refused.reason is WrongRoomReason.ROOM_FULL
    two = reg.create("x").room
    assert reg.capacity_of(two) == 2


def test_members_have_ids_unique_in_their_room_and_new_at_each_entry() -> None:
    reg = registry()
    room = reg.create("a", capacity=8).room
    for member in "bcdefgh":
        reg.enter(room, member)
    ids = [member_id for member_id, _ in reg.roster(room)]
    assert len(set(ids)) == 8
    assert [m for _, m in reg.roster(room)] == list("abcdefgh")  # the order they came
    old = reg.member_id("b")
    reg.depart("b")
    assert reg.member_id("b") is None
    assert reg.peer_with_id("a", old) is None
    reg.enter(room, "b")
    assert reg.member_id("b") != old
    assert reg.peer_with_id("a", reg.member_id("b")) == "b"
    assert reg.peer_with_id("b", reg.member_id("b")) is None  # not oneself
    assert reg.peer_with_id("a", 7) is None


def test_only_multi_party_rooms_name_senders_and_who_left() -> None:
    reg = registry()
    two = reg.create("a").room
    reg.enter(two, "b")
    assert reg.from_suffix("a") is None
    departure = reg.depart("b")
    assert departure is not None and departure.left_id is None
    many = reg.create("c", capacity=3).room
    reg.enter(many, "d")
    d_id = reg.member_id("d")
    assert reg.from_suffix("d") == f',"from":"{d_id}"}}'
    departure = reg.depart("d")
    assert departure is not None and departure.left_id == d_id
    assert departure.remaining == ("c",)
    reg.depart("c")
    reg.depart("a")
    assert reg.statistics().rooms == 0
    assert reg.capacity_of(many) == 2  # a dead room's capacity is forgotten
