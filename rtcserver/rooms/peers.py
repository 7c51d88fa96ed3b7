"""What a room's member is, seen from the code that tells it things.

On one node every member is a local `Actor`. In cluster mode (`--redis`) a room can
also hold members that live on other nodes; they are proxies (`cluster.mirror`) with
the same non-blocking `tell`. The handler, the switchboard and the registry only ever
`tell` a member, so one loop (`for peer in peers: peer.tell(text)`) serves both kinds,
and the single-node path stays exactly what it was.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from .. import protocol

if TYPE_CHECKING:
    from .registry import Registry


class Peer(Protocol):
    """Anything that can be told a text frame. Never blocks; False if not queued."""

    def tell(self, text: str) -> bool: ...

    def __hash__(self) -> int: ...


def roster_text(registry: Registry[Peer], member: Peer, room: int) -> str:
    """ROOM for `member` of `room`: its own id, and the others' ids and names."""
    own = registry.member_id(member)
    assert own is not None, "told only to a member"
    others = [
        protocol.Member(id=member_id, name=registry.display_name(other))
        for member_id, other in registry.roster(room)
        if other is not member
    ]
    reply = protocol.Room(value=room, id=own, capacity=registry.capacity_of(room), members=others)
    return protocol.encode(reply)
