"""An actor's address: the mailbox others `tell`, and the switch that ends it.

Erlang's `Pid ! Msg` never blocks the sender; neither does `tell`. What waits for a
client is counted in bytes (backlog.py): over the hard limit, or over the soft limit
for its grace period, or when it holds the most while the server is over its budget,
the client has stopped reading, and the policy is explicit: the slow consumer is
disconnected (close 4000) and its room is told it left. The sender is never blocked,
and nothing is dropped silently, because the sender learns (PEERLEFT) that the
receiver is gone.
"""

from __future__ import annotations

import itertools
from typing import Final, Protocol

import attrs
import trio

from ..protocol import CloseCode
from .backlog import Budget, Limits
from .mailbox import Mailbox, cost

_ids: Final = itertools.count(1)
# Seconds a frame already being written may take to finish once the actor is kicked.
KICK_GRACE: Final = 1.0


class Replay(Protocol):
    """What the actor's session (`rooms.sessions.Resumable`) does with what is written:
    keeps it, numbered, until a resume says it arrived. Defined here, where it is used,
    so this layer needs nothing of the rooms above it."""

    @property
    def asked(self) -> bool: ...

    def record(self, batch: list[bytes]) -> None: ...


class News(Protocol):
    """A logged-in user's directory subscription (`directory.presence.Subscriber`): what
    the writer sends after the mail, if the directory changed."""

    def take(self) -> list[bytes]: ...


class Seat(Protocol):
    """A seat in a room that another worker process owns, held there for this actor
    (`connection.seats.RemoteSeat`): the room's messages travel over a local link."""

    @property
    def room(self) -> int: ...

    @property
    def peers(self) -> int: ...

    @property
    def worker(self) -> int: ...

    def forward(self, text: str) -> bool: ...

    def vacate(self) -> None: ...

    def away(self) -> None: ...

    def back(self) -> None: ...

    def named(self, name: str) -> None: ...


def next_actor_id() -> int:
    return next(_ids)


@attrs.define(eq=False, repr=False)
class Actor:
    """One connection's identity, mailbox and kill switch. Hashable by identity."""

    id: int
    address: str
    limits: Limits
    budget: Budget
    mailbox: Mailbox = attrs.field(init=False, factory=Mailbox)
    # Entered by the actor's task; cancelling it ends the actor wherever it waits.
    scope: trio.CancelScope = attrs.field(init=False, factory=trio.CancelScope)
    close_code: CloseCode | None = attrs.field(init=False, default=None)
    close_reason: str = attrs.field(init=False, default="")
    # A short name for why it ended, for logs and /metrics (`rtcserver_closes`).
    close_cause: str = attrs.field(init=False, default="")
    # The shielded scope of a frame being written right now (see `kick`), and whether
    # a frame was ever cut in half: then no close frame can follow, only a TCP close.
    sending: trio.CancelScope | None = attrs.field(init=False, default=None)
    # When the client was last heard from (any bytes: messages, pongs): the keepalive
    # clock. `ping_sent`: when the keepalive's unanswered ping went out, if one did.
    last_heard: float = attrs.field(init=False, factory=trio.current_time)
    ping_sent: float | None = attrs.field(init=False, default=None)
    ping_due: bool = attrs.field(init=False, default=False)
    frame_cut: bool = attrs.field(init=False, default=False)
    # Given to another worker process with its socket (connection/handover.py): this
    # process forgets it without a close or a PEERLEFT of its own.
    handed_over: bool = attrs.field(init=False, default=False)
    # Stays in its room for a client another worker serves (connection/guests.py).
    guest: bool = attrs.field(init=False, default=False)
    # The directory subscription (directory/presence.py) of a logged-in user: its news is taken
    # when the writer writes, behind the mailbox, so calls never wait behind presence.
    presence: News | None = attrs.field(init=False, default=None)
    # Bytes the writer took from the mailbox and has not finished writing.
    writing: int = attrs.field(init=False, default=0)
    # Since when the queued bytes have been over the soft limit (None: they are not).
    over_soft_since: float | None = attrs.field(init=False, default=None)
    # The client's session (rooms/sessions.py), from the answer to its first message on.
    resumable: Replay | None = attrs.field(init=False, default=None)
    # Several workers: its room is another worker's, which holds its seat there.
    seat: Seat | None = attrs.field(init=False, default=None)

    def __repr__(self) -> str:
        return f"<Actor {self.id} {self.address}>"

    @property
    def queued(self) -> int:
        return self.mailbox.queued_bytes + self.writing

    @property
    def droppable(self) -> int:
        return self.mailbox.queued_bytes

    def tell(self, text: str) -> bool:
        """Queue `text` for this actor's client. Never blocks. False if not queued."""
        data = text.encode()
        size = cost(data)  # the payload and its object's memory, as the mailbox counts it
        mailbox = self.mailbox
        queued = mailbox.queued_bytes + self.writing + size
        limits = self.limits
        if queued > limits.hard:
            if not mailbox.closed:
                self.kick(
                    CloseCode.SLOW_CONSUMER,
                    f"slow consumer: over {limits.hard} bytes waiting unread",
                    cause="hard-limit",
                )
            return False
        now = trio.current_time()
        if not mailbox.put(data, now):
            return False
        if queued > limits.soft and self.over_soft_since is None:
            self.over_soft_since = now
        self.budget.add(size)
        return True

    def take_mail(self) -> list[bytes]:
        """The writer takes everything queued; it stays counted until `written`."""
        self.writing += self.mailbox.queued_bytes
        batch = self.mailbox.take_all()
        if self.resumable is not None:
            self.resumable.record(batch)  # kept until a resume says it arrived
        return batch

    def written(self) -> None:
        """The writer finished writing what it took: those bytes no longer count."""
        self.budget.release(self.writing)
        self.writing = 0
        if self.over_soft_since is not None and self.queued <= self.limits.soft:
            self.over_soft_since = None

    def drop_mail(self) -> list[bytes]:
        """Take what is queued out of the books without writing it (the caller may
        still send it, as on a clean close); everything the actor held is released."""
        self.budget.release(self.mailbox.queued_bytes)
        return self.mailbox.take_all()

    def evict(self, reason: str) -> None:
        """The server is over its queue budget and this actor holds the most."""
        self.kick(CloseCode.SLOW_CONSUMER, reason, cause="budget")
        self.drop_mail()
        self.mailbox.close()

    def extra_frames(self) -> list[bytes]:
        """What the writer sends after the mailbox: the directory's net change, if any."""
        presence = self.presence
        frames = [] if presence is None else presence.take()
        if frames and self.resumable is not None:
            # Numbered with the mail: a resume counts every text frame the client got.
            self.resumable.record(frames)
        return frames

    def request_ping(self, now: float) -> None:
        """Keepalive: have the writer ping the client (it is woken for it)."""
        self.ping_sent = now
        self.ping_due = True
        self.mailbox.nudge()

    def kick(self, code: CloseCode, reason: str, cause: str = "") -> None:
        """End this actor from anywhere, synchronously. The first reason given wins.

        A frame already on its way gets `KICK_GRACE` seconds to finish: cutting it
        would corrupt the stream, and the close frame with `code` could not follow.
        """
        if self.close_code is None:
            self.close_code = code
            self.close_reason = reason
            self.close_cause = cause or code.name.lower().replace("_", "-")
        if self.sending is not None:
            self.sending.deadline = min(self.sending.deadline, trio.current_time() + KICK_GRACE)
        self.scope.cancel()

    @property
    def backlog(self) -> int:
        return len(self.mailbox)
