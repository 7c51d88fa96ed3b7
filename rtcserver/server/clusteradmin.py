"""The admin API in cluster mode (`--redis`): any node answers for the whole cluster.

Rooms are read from Redis (`room:<N>`, `cap:<N>`, `label:<N>`, `born:<N>`, `bytes:<N>`:
cluster/scripts.py),
not from this node's mirror, so a room with no member here is listed too. What a
request does to members goes to their nodes over the bus (cluster/bus.py): K frames
close them (4003, 4004, 4005), M frames without a sender carry an ADMIN message. The
users are the cluster's directory, asked of the leader (a P request, answered with a
U frame: cluster/names.py).
If Redis does not answer, or the bus cannot take a frame, the request fails with
`Unavailable` (503).

`created_at` is kept in Redis (`born:<N>`, set when the room is made); `bytes_relayed`
is the sum over every node: each adds what it relayed to `bytes:<N>` with its lease
renewal (`Cluster._add_relayed`), so the total is at most `lease_ttl / 3` behind for
other nodes' relays, and exact for this node's.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

import attrs
import trio

from .. import protocol
from ..cluster import scripts
from ..cluster.errors import ClusterUnavailable
from ..cluster.mirror import parse_member
from ..protocol.codes import CloseCode
from ..rooms.peers import Peer
from ..rooms.registry import Registry
from .adminview import (
    REMOVED_REASON,
    ROOM_CLOSED_REASON,
    SIGNED_OUT_REASON,
    CallInfo,
    Listing,
    MemberInfo,
    RoomInfo,
    Unavailable,
    UserInfo,
)

REDIS = "the cluster's Redis"
LEADER = "the cluster's leader"


class AdminBus(Protocol):
    def admin(self, node: str, payload: str) -> bool: ...


class NamesPart(Protocol):
    async def directory(self, timeout: float) -> list[list[Any]] | None: ...


class ClusterPart(Protocol):
    """What the view needs of `cluster.node.Cluster`."""

    prefix: str
    timeout: float
    capacity: int
    redis: Any

    @property
    def bus(self) -> AdminBus: ...

    @property
    def names(self) -> NamesPart: ...

    async def call(self, op: str, script: str, *args: object) -> Any: ...

    def public_id(self, room: int, who: str) -> str: ...

    def unadded_relayed(self, room: int) -> int: ...


class ClusterState(Protocol):
    @property
    def registry(self) -> Registry[Peer]: ...


@attrs.frozen
class Member:
    id: str  # the member id clients see
    who: str  # `<node>/<actor>`, as in Redis
    name: str | None


@attrs.frozen
class ClusterAdmin:
    """`AdminView` for the whole cluster, from any node."""

    state: ClusterState
    cluster: ClusterPart

    async def rooms(self, after: int | None, limit: int) -> Listing[RoomInfo]:
        numbers = sorted(n for n in await self._room_numbers() if after is None or n > after)
        found = [await self.room(number) for number in numbers[:limit]]
        return Listing(tuple(info for info in found if info is not None), len(numbers) > limit)

    async def room(self, number: int) -> RoomInfo | None:
        found = await self._room(number)
        if found is None:
            return None
        capacity, members, created, relayed = found
        mirror = self.state.registry
        if created is None and number in mirror.rooms():
            created = mirror.created_at(number)
        return RoomInfo(
            number,
            capacity,
            tuple(MemberInfo(m.id, m.name) for m in members),
            created,
            relayed + self.cluster.unadded_relayed(number),
        )

    async def close_room(self, number: int) -> bool:
        found = await self._room(number)
        if found is None:
            return False
        self._close(number, found[1], CloseCode.ROOM_CLOSED, ROOM_CLOSED_REASON)
        return True

    async def remove_member(self, number: int, member_id: str) -> bool:
        found = await self._room(number)
        members = [m for m in (found[1] if found else ()) if m.id == member_id]
        if not members:
            return False
        self._close(number, members, CloseCode.REMOVED, REMOVED_REASON)
        return True

    async def post(self, number: int, data: dict[str, Any], to: str | None) -> int | None:
        found = await self._room(number)
        if found is None:
            return None
        members = [m for m in found[1] if to is None or m.id == to]
        if not members:
            return None
        text = protocol.encode(protocol.AdminMessage(data=data))
        for member in members:
            node, actor = parse_member(member.who)
            self._send(node, f"M|{number}|-|{actor}\n{text}")
        return len(members)

    async def users(self, after: str | None, limit: int) -> Listing[UserInfo]:
        users = [u for u in await self._directory() if after is None or u.name > after]
        return Listing(tuple(users[:limit]), len(users) > limit)

    async def sign_out(self, name: str) -> bool:
        if name not in {user.name for user in await self._directory()}:
            return False
        # Only the leader knows the name's node: every node is told, its holder acts.
        for node in await self._redis(self.cluster.redis.smembers(self.cluster.prefix + "nodes")):
            self._send(str(node), f"K|0|{int(CloseCode.SIGNED_OUT)}|@{name}\n{SIGNED_OUT_REASON}")
        return True

    async def _directory(self) -> list[UserInfo]:
        found = await self.cluster.names.directory(self.cluster.timeout)
        if found is None:
            raise Unavailable(LEADER, f"did not answer within {self.cluster.timeout:g} s")
        try:
            return [
                UserInfo(str(name), str(status), None if call is None else CallInfo(*call))
                for name, status, call in found
            ]
        except (TypeError, ValueError) as bad:
            raise Unavailable(LEADER, f"gave an answer this node cannot read: {bad}") from None

    async def _room_numbers(self) -> list[int]:
        async def scan() -> list[int]:
            pattern = f"{self.cluster.prefix}room:*"
            keys = [str(k) async for k in self.cluster.redis.scan_iter(match=pattern, count=1000)]
            return [int(k.rpartition(":")[2]) for k in keys if k.rpartition(":")[2].isdigit()]

        numbers: list[int] = await self._redis(scan())
        return numbers

    async def _room(self, number: int) -> tuple[int, list[Member], float | None, int] | None:
        """The room's capacity, members, when it was made and the bytes relayed in it
        (as the nodes last added them up), or None if there is no such room."""
        try:
            reply = await self.cluster.call("admin", scripts.ROOM_INFO, number)
        except ClusterUnavailable as down:
            raise Unavailable(REDIS, str(down)) from None
        if not reply:
            return None
        capacity = int(reply[0]) if reply[0] else self.cluster.capacity
        created = float(reply[1]) if reply[1] else None
        relayed = int(reply[2])
        pairs = sorted(zip(reply[3::2], reply[4::2], strict=True))
        members = [
            Member(self.cluster.public_id(number, str(who)), str(who), str(name) or None)
            for who, name in pairs
        ]
        return capacity, members, created, relayed

    def _close(self, number: int, members: Iterable[Member], code: CloseCode, reason: str) -> None:
        by_node: dict[str, list[str]] = {}
        for member in members:
            node, actor = parse_member(member.who)
            by_node.setdefault(node, []).append(str(actor))
        for node, actors in by_node.items():
            self._send(node, f"K|{number}|{int(code)}|{','.join(actors)}\n{reason}")

    def _send(self, node: str, payload: str) -> None:
        if not self.cluster.bus.admin(node, payload):
            raise Unavailable("the cluster bus", "could not take the frame (Redis down or busy)")

    async def _redis(self, work: Any) -> Any:
        try:
            with trio.fail_after(self.cluster.timeout):
                return await work
        except Exception as failure:
            why = f"did not answer ({type(failure).__name__})"
            raise Unavailable(REDIS, why) from None
