"""Byte limits on what waits to be written to clients, after Redis and NATS.

Redis closes a pub/sub client over a hard output-buffer limit, or over a soft limit
held for a grace period; NATS closes a slow consumer over a pending-bytes limit. Both
count bytes and time, not messages: a burst of small messages is cheap, a reader
that keeps up (even slowly) is never closed, and memory is bounded.

- per connection (`Limits`): queued bytes (its mailbox plus the write in progress)
  over `hard` close it at once; over `soft` for `soft_seconds` close it too.
- per server (`Budget`): queued bytes of all connections together over `limit` close
  the connection holding the most, then the next, until the total is under it again.
  Without it the worst case would be max_connections × hard.

Pure bookkeeping, no I/O: the actor calls it, the keepalive sweeper applies the soft
limit's clock, and `/metrics` reads it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

import attrs


@attrs.frozen
class Limits:
    hard: int
    soft: int
    soft_seconds: float


class Holder(Protocol):
    """What the budget needs of a connection: what it holds, and how to let go."""

    @property
    def queued(self) -> int:
        """Bytes held: queued plus the write in progress."""
        ...

    @property
    def droppable(self) -> int:
        """Bytes held that no write has started on (what an eviction frees at once)."""
        ...

    def evict(self, reason: str) -> None:
        """Close for the budget, dropping (and releasing) what is droppable."""
        ...


@attrs.define(eq=False)
class Budget:
    """Queued bytes across the server, and who to close first when over `limit`."""

    limit: int
    holders: Callable[[], Iterable[Holder]]
    total: int = 0
    evictions: int = 0

    def add(self, size: int) -> None:
        self.total += size
        if self.total > self.limit:
            self._relieve()

    def release(self, size: int) -> None:
        self.total -= size

    def largest(self) -> int:
        return max((holder.queued for holder in self.holders()), default=0)

    def _relieve(self) -> None:
        """Close the biggest holders until the total is within the limit again (or
        nothing is left to drop: bytes already being written go when their write ends)."""
        while self.total > self.limit:
            victim = max(self.holders(), key=lambda holder: holder.droppable, default=None)
            if victim is None or victim.droppable == 0:
                return
            self.evictions += 1
            victim.evict(
                f"server queue budget ({self.limit} bytes) exceeded: "
                f"this client held the most ({victim.queued} bytes)"
            )
