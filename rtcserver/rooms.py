"""What a room's member is, seen from the code that tells it things.

On one node every member is a local `Actor`. In cluster mode (`--redis`) a room can
also hold members that live on other nodes; they are proxies (`cluster.mirror`) with
the same non-blocking `tell`. The handler, the switchboard and the registry only ever
`tell` a member, so one loop (`for peer in peers: peer.tell(text)`) serves both kinds,
and the single-node path stays exactly what it was.
"""

from __future__ import annotations

from typing import Protocol


class Peer(Protocol):
    """Anything that can be told a text frame. Never blocks; False if not queued."""

    def tell(self, text: str) -> bool: ...

    def __hash__(self) -> int: ...
