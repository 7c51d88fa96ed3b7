"""Sessions that outlive a socket: the table of resumable actors (pure bookkeeping).

A client that asks (SESSION) gets a session id and a secret. When its socket is lost
(no close frame from the client: TCP loss, keepalive timeout), its actor is *parked*
here with a deadline instead of ending: it keeps its room, its name and its mailbox
(still under the byte limits), and its peers hear PEERAWAY. A new socket presenting the
secret (RESUME) within the grace adopts the actor; otherwise the permanent sweeper
(connection/resume.py's session_sweeper) ends it as a departure is ended today. A waiting session is
state, not a task.

Exactly once: every message the writer *takes* for a resumable client is numbered and
kept in a small replay ring (`resume_replay_bytes`), whether or not its write then
completed. RESUME says how many messages the client received (`received`); the server
sends again what follows that number, then the mail that waited. Nothing here awaits.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Final, Protocol, cast

import attrs
import trio

if TYPE_CHECKING:
    from ..actors.actor import Actor
    from ..security.auth import Identity

# Compared against when the session id is unknown, so that the answer takes as long.
_DUMMY_SECRET: Final = secrets.token_urlsafe(32).encode()
# Moved sessions remembered (about 100 bytes each): more than live sessions move.
MAX_MOVED: Final = 100_000


def new_secret() -> str:
    return secrets.token_urlsafe(32)  # 256 bits from the CSPRNG


@attrs.define(eq=False)
class Resumable:
    """One resumable session: its credentials, its actor and its replay ring."""

    id: str
    secret: str
    actor: Actor
    identity: Identity | None
    replay_limit: int
    # The client asked for its session (SESSION), so it knows how to RESUME: a 1001
    # close (a page reload) then parks the session too, not only a lost socket.
    asked: bool = False
    # Messages the writer took for this client since the session began.
    sent: int = 0
    # A list, not a deque: every client has one, and an empty deque costs 600 bytes.
    # Dropping its head moves a few hundred pointers at most (the ring is small).
    ring: list[bytes] = attrs.field(factory=list)
    ring_bytes: int = 0
    # Set while parked (no socket): when the grace ends.
    deadline: float | None = None
    # Whether the connection that held the actor has let go of it (parked or ended),
    # and the event a RESUME waits on for that, made only when one waits (every
    # client has a session: an event each would cost 280 bytes).
    detached: bool = False
    _detached_event: trio.Event | None = None

    async def wait_detached(self) -> None:
        if not self.detached:
            if self._detached_event is None:
                self._detached_event = trio.Event()
            await self._detached_event.wait()

    def _set_detached(self, detached: bool) -> None:
        self.detached = detached
        if detached and self._detached_event is not None:
            self._detached_event.set()
        self._detached_event = None

    @property
    def first_kept(self) -> int:
        """The number of the oldest message still in the ring."""
        return self.sent - len(self.ring)

    def record(self, batch: list[bytes]) -> None:
        """The writer took `batch`: number it, keep it; forget the oldest over the limit."""
        ring = self.ring
        for data in batch:
            ring.append(data)
            self.ring_bytes += len(data)
        self.sent += len(batch)
        if self.ring_bytes > self.replay_limit:
            drop = 0
            while self.ring_bytes > self.replay_limit and drop < len(ring) - 1:
                self.ring_bytes -= len(ring[drop])
                drop += 1
            del ring[:drop]

    def rewind(self, received: int) -> list[bytes] | None:
        """What follows message number `received`, taken out of the ring (it is sent
        again, and numbered again when taken); None if it is no longer all kept."""
        if not self.first_kept <= received <= self.sent:
            return None
        replay: list[bytes] = []
        while self.sent > received:
            data = self.ring.pop()
            self.ring_bytes -= len(data)
            replay.append(data)
            self.sent -= 1
        replay.reverse()
        return replay


class Watcher(Protocol):
    """What `server/events.py` is told; synchronous, it only takes notes."""

    def away(self, actor: Actor) -> None: ...
    def back(self, actor: Actor) -> None: ...
    def ended_away(self, actor: Actor) -> None: ...


@attrs.define(eq=False)
class Sessions:
    """Every resumable session by id, and those parked (no socket) by actor."""

    by_id: dict[str, Resumable] = attrs.field(factory=dict)
    away: dict[Actor, Resumable] = attrs.field(factory=dict)
    # Session ids: with several workers they name this worker (owners.py).
    new_id: Callable[[], str] = lambda: secrets.token_urlsafe(12)
    # Sessions that moved to another worker with their connection, and where to:
    # a RESUME of one is sent on. Bounded: the oldest are forgotten first.
    moved: dict[str, int] = attrs.field(factory=dict)
    # Told when a session goes away, comes back, or ends while away (the webhooks).
    watcher: Watcher | None = None

    @staticmethod
    def of(actor: Actor) -> Resumable | None:
        """The actor's session. `Actor.resumable` is typed by the small protocol the
        actor layer needs (`Replay`); only `grant` sets it, always to a `Resumable`."""
        return cast("Resumable | None", actor.resumable)

    def grant(
        self, actor: Actor, identity: Identity | None, replay_limit: int, *, asked: bool
    ) -> Resumable:
        """Make `actor` resumable, or give its session a fresh secret (the old one dies).
        `asked`: the client requested it (SESSION), rather than got it unasked."""
        session = self.of(actor)
        if session is None:
            session = Resumable(
                id=self.new_id(),
                secret=new_secret(),
                actor=actor,
                identity=identity,
                replay_limit=replay_limit,
            )
            self.by_id[session.id] = session
            actor.resumable = session
        else:
            session.secret = new_secret()
        session.asked = session.asked or asked
        # The client counts from the SESSION reply (1) on: what is queued ahead of it
        # is numbered below 1, and the replay ring starts afresh.
        session.ring.clear()
        session.ring_bytes = 0
        session.sent = -len(actor.mailbox)
        return session

    def moved_to(self, session_id: str, worker: int) -> None:
        self.moved.pop(session_id, None)
        self.moved[session_id] = worker
        while len(self.moved) > MAX_MOVED:
            del self.moved[next(iter(self.moved))]

    def adopt(
        self,
        actor: Actor,
        identity: Identity | None,
        replay_limit: int,
        moved: tuple[str, str, bool, int, list[bytes]],
    ) -> Resumable:
        """Take over a session that came from another worker with its connection:
        its id, secret, numbering and replay ring, as they were there."""
        session_id, secret, asked, sent, ring = moved
        session = Resumable(
            id=session_id,
            secret=secret,
            actor=actor,
            identity=identity,
            replay_limit=replay_limit,
            asked=asked,
            sent=sent,
            ring=ring,
            ring_bytes=sum(map(len, ring)),
        )
        self.by_id[session_id] = session
        self.moved.pop(session_id, None)  # it may come back
        actor.resumable = session
        return session

    def claim(self, session_id: object, secret: object) -> Resumable | None:
        """The session `session_id` if `secret` is its secret, compared in constant
        time. A secret works once: it is spent here (the caller gives it back if the
        resume cannot go on)."""
        if not isinstance(session_id, str) or not isinstance(secret, str):
            return None
        found = self.by_id.get(session_id)
        expected = found.secret.encode() if found is not None else _DUMMY_SECRET
        if not secrets.compare_digest(expected, secret.encode()) or found is None:
            return None
        if not found.secret:
            return None  # spent by a resume in progress
        found.secret = ""
        return found

    def park(self, session: Resumable, deadline: float) -> None:
        session.deadline = deadline
        if self.watcher is not None and session.actor not in self.away:
            self.watcher.away(session.actor)
        self.away[session.actor] = session
        session._set_detached(True)

    def unpark(self, session: Resumable) -> None:
        if self.away.pop(session.actor, None) is not None and self.watcher is not None:
            self.watcher.back(session.actor)
        session.deadline = None
        session._set_detached(False)

    def end(self, actor: Actor) -> None:
        """The session (if any) is over for good. Idempotent."""
        session = self.of(actor)
        if session is None:
            return
        if self.away.pop(actor, None) is not None and self.watcher is not None:
            self.watcher.ended_away(actor)
        if self.by_id.get(session.id) is session:
            del self.by_id[session.id]
        session.secret = ""
        session._set_detached(True)

    def away_actors(self) -> Iterable[Actor]:
        return self.away.keys()
