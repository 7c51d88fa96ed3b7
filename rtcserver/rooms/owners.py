"""Which worker process owns what, when one server runs as several (`--workers N`).

Pure: no sockets, no clock. A room's number says which worker owns it (`number % N`),
so every worker knows, without asking anyone, where a room lives: GETROOM draws a
number that the creator's own worker owns, and a socket that enters someone else's
room is handed over to that room's worker (connection/handover.py), after which the
room's relay is in one process again. A session's id starts with its worker's index,
so a RESUME finds its way too. Names, the directory and calls by name live on worker
0, the *directory worker*: a LOGIN is handed there.

With one worker (`Workers.single()`) every room, session and name is this process's.
"""

from __future__ import annotations

from typing import Final

import attrs

from ..protocol import MAX_ROOM
from ..settings import Settings
from .registry import draw_room_number

# The worker that holds names, the directory and calls by name.
DIRECTORY_WORKER: Final = 0


@attrs.frozen
class Workers:
    """This process's place among the workers of one server."""

    index: int
    count: int
    # Names this server's workers among others on the machine (the supervisor's pid).
    group: str = ""

    @classmethod
    def single(cls) -> Workers:
        return cls(index=0, count=1)

    @property
    def several(self) -> bool:
        return self.count > 1

    def share(self, settings: Settings) -> Settings:
        """This worker's part of the limits that hold for the whole server: its front
        door admits `max_connections / N` (and per address likewise), its queues hold
        `queue_budget / N`, so N workers together hold what one process would. (A
        handover does not count against the owner's door: it was admitted once.)"""
        count = self.count
        if count == 1:
            return settings

        def part(total: int) -> int:
            return max(1, -(-total // count))  # rounded up: a limit of 1 stays 1

        return attrs.evolve(
            settings,
            max_connections=part(settings.max_connections),
            max_connections_per_address=part(settings.max_connections_per_address),
            queue_budget=max(settings.queue_budget // count, settings.mailbox_hard_limit),
        )

    def owner(self, room: int) -> int:
        """The index of the worker that owns room `room`."""
        return room % self.count

    def draw(self) -> int:
        """A room number this worker owns, as unguessable as any (1..2^53-1)."""
        while True:
            number = draw_room_number()
            number += (self.index - number) % self.count
            if 1 <= number <= MAX_ROOM and number % self.count == self.index:
                return number

    def session_id(self, token: str) -> str:
        """A session id that names its worker (`3.<token>`); the token alone with one."""
        return f"{self.index}.{token}" if self.several else token

    def session_owner(self, session_id: object) -> int | None:
        """The worker a RESUME of `session_id` must reach; None if the id names none."""
        if not self.several or not isinstance(session_id, str):
            return None
        prefix, dot, _ = session_id.partition(".")
        if not dot or not prefix.isdigit():
            return None
        index = int(prefix)
        return index if index < self.count else None

    def inbox(self, index: int) -> bytes:
        """The abstract Unix socket address where worker `index` takes handovers."""
        return f"\0rtcserver.{self.group}.{index}".encode()

    def link(self, index: int) -> bytes:
        """The abstract Unix socket address of worker `index`'s links (wire/links.py)."""
        return f"\0rtcserver.{self.group}.{index}.link".encode()
