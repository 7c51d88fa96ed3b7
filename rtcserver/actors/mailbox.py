"""A connection's mailbox: what other actors `tell` it, waiting for its writer.

Many producers put (synchronously, never blocking: Erlang's `Pid ! Msg`), one
consumer takes *everything* queued at once, so a burst costs the writer one wake-up
and one `send_all`. It counts what it holds in messages and bytes (each message's
payload plus the memory its object costs, `cost`), and remembers
since when something has been waiting, so the owner can apply its limits; it
enforces none itself.

Built on `trio.lowlevel` parking rather than a memory channel: a channel costs a
wake-up and a lock-step hand-off per message, and an empty list is smaller than an
empty deque, which matters because most connections are idle.
"""

from __future__ import annotations

from typing import Final, final

import trio

# What one queued message costs beyond its payload, counted with it (docs/PROTOCOL.md,
# "Limits"): the bytes object's header (sys.getsizeof(b"") = 33 on 64-bit CPython), the
# queue's pointer to it (8) and the allocator's rounding (pymalloc's 16-byte size
# classes; glibc's 8-byte chunk header, 16-byte aligned), rounded up. tracemalloc
# (tools/measure_flood.py) shows 2,081 bytes per queued 2,048-byte message, which glibc
# keeps in a 2,096-byte chunk; a 200-byte one is a 240-byte pymalloc block. Uncounted,
# a flood of 200-byte messages cost 1.3x the budget in RSS.
MESSAGE_OVERHEAD: Final = 64


def cost(data: bytes) -> int:
    """What `data` counts for while it waits: its length plus `MESSAGE_OVERHEAD`."""
    return len(data) + MESSAGE_OVERHEAD


class MailboxClosed(Exception):
    """The mailbox was closed and everything in it has been taken."""


@final
class Mailbox:
    __slots__ = ("_closed", "_nudged", "_queue", "_waiter", "queued_bytes", "waiting_since")

    def __init__(self) -> None:
        self._queue: list[bytes] = []
        self._waiter: trio.lowlevel.Task | None = None
        self._closed = False
        self._nudged = False
        self.queued_bytes = 0
        # trio.current_time() when the oldest queued message arrived; None when empty.
        self.waiting_since: float | None = None

    def __len__(self) -> int:
        return len(self._queue)

    def put(self, data: bytes, now: float) -> bool:
        """Queue `data` and wake the consumer. False (nothing queued) once closed."""
        if self._closed:
            return False
        if not self._queue:
            self.waiting_since = now
        self._queue.append(data)
        self.queued_bytes += len(data) + MESSAGE_OVERHEAD
        self._wake()
        return True

    def put_front(self, batch: list[bytes], now: float) -> int:
        """Queue `batch` ahead of everything waiting (a resumed session's replay, which
        must reach the client before the mail that came while it was away). Returns
        the bytes it counts for (`cost`)."""
        if not batch:
            return 0
        if not self._queue:
            self.waiting_since = now
        self._queue[:0] = batch
        size = sum(map(cost, batch))
        self.queued_bytes += size
        self._wake()
        return size

    def nudge(self) -> None:
        """Wake the consumer with nothing new queued (it has other work: a ping, a pong)."""
        self._nudged = True
        self._wake()

    def take_all(self) -> list[bytes]:
        """Everything queued, oldest first; the mailbox is empty afterwards."""
        queue = self._queue
        if queue:
            self._queue = []
            self.queued_bytes = 0
            self.waiting_since = None
        self._nudged = False
        return queue

    async def wait(self) -> None:
        """Return once something is queued or the consumer was nudged; raise
        MailboxClosed when closed and empty. One consumer at a time."""
        if self._queue or self._nudged:
            await trio.lowlevel.checkpoint()
            return
        if self._closed:
            await trio.lowlevel.checkpoint()
            raise MailboxClosed
        assert self._waiter is None, "a mailbox has one consumer"
        self._waiter = trio.lowlevel.current_task()

        def abort(_: object) -> trio.lowlevel.Abort:
            self._waiter = None
            return trio.lowlevel.Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)
        if self._closed and not self._queue:
            raise MailboxClosed

    def close(self) -> None:
        """Refuse further puts; the consumer takes what is left, then sees MailboxClosed."""
        self._closed = True
        self._wake()

    @property
    def closed(self) -> bool:
        return self._closed

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            trio.lowlevel.reschedule(waiter)
