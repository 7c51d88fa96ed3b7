"""An actor's address: the bounded mailbox others `tell`, and the switch that ends it.

Erlang's `Pid ! Msg` never blocks the sender; neither does `tell`. When a mailbox is
full its owner has stopped reading, and the policy is explicit: the slow consumer is
disconnected (close 4000) and its room is told it left. The sender is never blocked,
and nothing is dropped silently, because the sender learns (PEERLEFT) that the
receiver is gone.
"""

from __future__ import annotations

import itertools
from typing import Final

import attrs
import trio

from .protocol import CloseCode

_ids: Final = itertools.count(1)
# Seconds a frame already being written may take to finish once the actor is kicked.
KICK_GRACE: Final = 1.0


def next_actor_id() -> int:
    return next(_ids)


@attrs.define(eq=False, repr=False)
class Actor:
    """One connection's identity, mailbox and kill switch. Hashable by identity."""

    id: int
    address: str
    mailbox_size: int
    outbox: trio.MemorySendChannel[str] = attrs.field(init=False)
    inbox: trio.MemoryReceiveChannel[str] = attrs.field(init=False)
    # Entered by the actor's task; cancelling it ends the actor wherever it waits.
    scope: trio.CancelScope = attrs.field(init=False, factory=trio.CancelScope)
    close_code: CloseCode | None = attrs.field(init=False, default=None)
    close_reason: str = attrs.field(init=False, default="")
    # The shielded scope of a frame being written right now (see `kick`), and whether
    # a frame was ever cut in half: then no close frame can follow, only a TCP close.
    sending: trio.CancelScope | None = attrs.field(init=False, default=None)
    # When the client was last heard from (a message or a pong): the keepalive clock.
    last_heard: float = attrs.field(init=False, factory=trio.current_time)
    frame_cut: bool = attrs.field(init=False, default=False)

    def __attrs_post_init__(self) -> None:
        self.outbox, self.inbox = trio.open_memory_channel[str](self.mailbox_size)

    def __repr__(self) -> str:
        return f"<Actor {self.id} {self.address}>"

    def tell(self, text: str) -> bool:
        """Queue `text` for this actor's client. Never blocks. False if not queued."""
        try:
            self.outbox.send_nowait(text)
        except trio.WouldBlock:
            self.kick(
                CloseCode.SLOW_CONSUMER,
                f"slow consumer: {self.mailbox_size} messages waiting unread",
            )
            return False
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            return False
        return True

    def kick(self, code: CloseCode, reason: str) -> None:
        """End this actor from anywhere, synchronously. The first reason given wins.

        A frame already on its way gets `KICK_GRACE` seconds to finish: cutting it
        would corrupt the stream, and the close frame with `code` could not follow.
        """
        if self.close_code is None:
            self.close_code = code
            self.close_reason = reason
        if self.sending is not None:
            self.sending.deadline = min(self.sending.deadline, trio.current_time() + KICK_GRACE)
        self.scope.cancel()

    @property
    def backlog(self) -> int:
        return self.outbox.statistics().current_buffer_used
