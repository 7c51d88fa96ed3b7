"""What the admin API reads and acts on: `AdminView`, and `LocalAdmin` for this process.

The routes (`admin.py`) see only `AdminView`, so a cross-worker view (`workeradmin.py`)
or a cluster view can stand in for `LocalAdmin`, which reads this process's registry
and switchboard and acts on its actors. The view is asynchronous because those others
ask someone else; `LocalAdmin` never awaits.
"""

from __future__ import annotations

from typing import Any, Generic, Protocol, TypeVar

import attrs

from .. import protocol
from ..directory.calls import Switchboard
from ..protocol.codes import CloseCode
from ..rooms.peers import Peer
from ..rooms.registry import Registry

ROOM_CLOSED_REASON = "The room was closed"
REMOVED_REASON = "Removed from the room"
SIGNED_OUT_REASON = "Signed out by the server"


@attrs.frozen
class MemberInfo:
    id: str
    name: str | None


@attrs.frozen
class RoomInfo:
    number: int
    capacity: int
    members: tuple[MemberInfo, ...]
    created_at: float | None  # Unix time (None if unknown, e.g. a mirror of a remote room)
    bytes_relayed: int


@attrs.frozen
class CallInfo:
    id: str
    state: str  # "ringing" or "active"
    peer: str  # the other party's name
    room: int | None


@attrs.frozen
class UserInfo:
    name: str
    status: str  # "available" or "in-call"
    call: CallInfo | None


Item = TypeVar("Item")


@attrs.frozen
class Listing(Generic[Item]):
    """One page of a list, in key order: the items after the cursor, whether there are
    more, and (with several workers) which workers answered."""

    items: tuple[Item, ...]
    more: bool
    answered: tuple[int, ...] | None = None  # None: one process answers for itself
    of: int = 1


class Unavailable(Exception):
    """The worker (or node) that holds what a request names did not answer in time:
    the API answers 503 naming it, never with a guess."""

    def __init__(self, where: str, why: str) -> None:
        super().__init__(f"{where} {why}")
        self.where = where


class AdminView(Protocol):
    """What the API needs of the server: rooms and users to read and end, messages to post.
    A view that must ask another process raises `Unavailable` when it gets no answer."""

    async def rooms(self, after: int | None, limit: int) -> Listing[RoomInfo]: ...
    async def room(self, number: int) -> RoomInfo | None: ...
    async def close_room(self, number: int) -> bool: ...
    async def remove_member(self, number: int, member_id: str) -> bool: ...
    async def post(self, number: int, data: dict[str, Any], to: str | None) -> int | None:
        """Tell the room's members (or the one with id `to`) ADMIN `data`: how many were
        told, or None if there is no such room or member."""
        ...

    async def users(self, after: str | None, limit: int) -> Listing[UserInfo]: ...
    async def sign_out(self, name: str) -> bool: ...


class LocalState(Protocol):
    """The part of `ServerState` that `LocalAdmin` reads."""

    @property
    def registry(self) -> Registry[Peer]: ...

    @property
    def switchboard(self) -> Switchboard: ...


@attrs.frozen
class LocalAdmin:
    """`AdminView` over this process's registry: its members are actors it can kick."""

    state: LocalState

    async def rooms(self, after: int | None, limit: int) -> Listing[RoomInfo]:
        return self.room_listing(after, limit)

    def room_listing(self, after: int | None, limit: int) -> Listing[RoomInfo]:
        numbers = sorted(n for n in self.state.registry.rooms() if after is None or n > after)
        found = (self.room_info(number) for number in numbers[:limit])
        return Listing(tuple(info for info in found if info is not None), len(numbers) > limit)

    async def room(self, number: int) -> RoomInfo | None:
        return self.room_info(number)

    def room_info(self, number: int) -> RoomInfo | None:
        registry = self.state.registry
        if number not in registry.rooms():
            return None
        members = tuple(
            MemberInfo(member_id, registry.display_name(peer))
            for member_id, peer in registry.roster(number)
        )
        return RoomInfo(
            number,
            registry.capacity_of(number),
            members,
            registry.created_at(number),
            registry.relayed_bytes(number),
        )

    async def close_room(self, number: int) -> bool:
        members = self.state.registry.rooms().get(number)
        if members is None:
            return False
        for peer in members:
            _kick(peer, CloseCode.ROOM_CLOSED, ROOM_CLOSED_REASON)
        return True

    async def remove_member(self, number: int, member_id: str) -> bool:
        peer = self._member(number, member_id)
        if peer is None:
            return False
        _kick(peer, CloseCode.REMOVED, REMOVED_REASON)
        return True

    async def post(self, number: int, data: dict[str, Any], to: str | None) -> int | None:
        registry = self.state.registry
        if number not in registry.rooms():
            return None
        if to is None:
            receivers = list(registry.members(number))
        else:
            peer = self._member(number, to)
            if peer is None:
                return None
            receivers = [peer]
        text = protocol.encode(protocol.AdminMessage(data=data))
        for peer in receivers:
            peer.tell(text)
        return len(receivers)

    async def users(self, after: str | None, limit: int) -> Listing[UserInfo]:
        return self.user_listing(after, limit)

    def user_listing(self, after: str | None, limit: int) -> Listing[UserInfo]:
        names = sorted(n for n in self.state.registry.names() if after is None or n > after)
        board = self.state.switchboard
        call_of = {}
        for call in board.calls():
            for party in (call.caller, call.callee):
                call_of[party] = CallInfo(
                    call.id, call.state.name.lower(), call.other(party), call.room
                )
        users = (UserInfo(name, board.status(name).value, call_of.get(name)) for name in names)
        return Listing(tuple(users)[:limit], len(names) > limit)

    async def sign_out(self, name: str) -> bool:
        peer = self.state.registry.actor_named(name)
        if peer is None:
            return False
        _kick(peer, CloseCode.SIGNED_OUT, SIGNED_OUT_REASON)
        return True

    def _member(self, number: int, member_id: str) -> Peer | None:
        for found_id, peer in self.state.registry.roster(number):
            if found_id == member_id:
                return peer
        return None


def _kick(peer: Peer, code: CloseCode, reason: str) -> None:
    # Local members are actors; the actor's finally leaves the room (PEERLEFT) and,
    # as these codes are not parkable, ends its session: RESUME cannot undo it.
    kick = getattr(peer, "kick", None)
    if kick is not None:
        kick(code, reason, cause="admin")
