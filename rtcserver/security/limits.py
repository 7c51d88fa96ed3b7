"""Per-address limits, and the file-descriptor budget that `max_connections` must fit.

One address must not be able to fill the server with heads it never finishes
(slowloris): at most `max_handshakes_per_address` of its connections may be *slow*,
still sending their request head `slow_head_grace` seconds after they were accepted
(`SlowHeads` says when a busy server or a silent client gets longer). A head that
completes promptly never counts, so a flash crowd from one NAT (a class opening a
link at 9:00, a load test) is served whole. And `max_connections_per_address`
connections may be open at once. The address is the TCP peer's; with `--trust-proxy`,
the open-connection limit counts the X-Forwarded-For address instead, once the head is
read, and the head limit is left to the proxy (it reads heads before it forwards them,
and every client shares its address here).
The defaults leave room for an office of hundreds of people behind one NAT.
"""

from __future__ import annotations

import collections
import contextlib
import enum
import logging
import resource
from collections.abc import Callable, Iterator
from typing import Final

import attrs

from ..settings import Settings

log = logging.getLogger("rtcserver")

# Descriptors kept for everything but client sockets: listeners, www/ files being
# read, Redis, the log, the worker threads' needs.
FD_RESERVE: Final = 64


@attrs.define(eq=False)
class AddressCounts:
    """How many connections each address has open."""

    open: collections.Counter[str] = attrs.field(factory=collections.Counter)

    @contextlib.contextmanager
    def hold(self, counter: collections.Counter[str], address: str) -> Iterator[None]:
        counter[address] += 1
        try:
            yield
        finally:
            counter[address] -= 1
            if counter[address] <= 0:
                del counter[address]


class Progress(enum.Enum):
    """How a pending head stands when its grace ends (the front door looks)."""

    SILENT = "silent"  # not a byte yet: a busy client, a browser's preconnect, or an attack
    UNREAD = "unread"  # bytes wait in the kernel for the server: the delay is the server's
    STALLED = "stalled"  # what came has been read, and the head is still not whole


@attrs.define(eq=False, slots=True)
class PendingHead:
    """One connection still sending its request head."""

    address: str
    accepted: float
    due: float  # when `promote` looks at it next
    refuse: Callable[[], None]  # ends its wait for the head (the front door answers 503)
    progress: Callable[[], Progress]
    slow: bool = False  # holds one of its address's places
    refused: bool = False


@attrs.define(eq=False)
class SlowHeads:
    """Which pending request heads count against their address: the slow ones.

    A head counts against nothing while it is young: for `grace` seconds after its
    accept, and longer while its bytes wait for a busy server (`Progress.UNREAD`: a
    thousand handshakes at once are the server's delay, not the clients') or while
    the client has sent nothing at all, up to `silent_grace` (a client busy opening
    a thousand sockets sends each head late, but whole). Past that, a head still
    incomplete becomes slow and takes one of its address's `limit` places; if they are
    all taken, it is refused then (`promote` returns it). So one address never holds
    more than `limit` slow heads however many prompt ones it opens, and a slow head
    beyond the limit is cut when its grace ends, not at the handshake timeout. Pure:
    the caller passes the clock and runs `promote` at `next_due()`
    (`frontdoor.slow_head_sweeper`).
    """

    limit: int
    grace: float
    silent_grace: float
    # Slow heads per address (each holds a place); addresses with none are absent.
    slow: collections.Counter[str] = attrs.field(factory=collections.Counter)
    # Heads within their grace, and silent ones given more; each in order of `due`
    # (heads arrive in clock order, and each queue adds the same delay to the clock).
    _young: dict[PendingHead, None] = attrs.field(factory=dict)
    _silent: dict[PendingHead, None] = attrs.field(factory=dict)

    @property
    def young(self) -> int:
        return len(self._young)

    @property
    def silent(self) -> int:
        return len(self._silent)

    def arrive(
        self,
        address: str,
        now: float,
        refuse: Callable[[], None],
        progress: Callable[[], Progress],
    ) -> PendingHead:
        head = PendingHead(address, now, now + self.grace, refuse, progress)
        self._young[head] = None
        return head

    def leave(self, head: PendingHead) -> None:
        """The head is complete, or its connection is gone: it holds nothing now."""
        if head.slow:
            head.slow = False
            self.slow[head.address] -= 1
            if self.slow[head.address] <= 0:
                del self.slow[head.address]
        else:
            self._young.pop(head, None)
            self._silent.pop(head, None)

    def next_due(self) -> float | None:
        """When `promote` has something to look at, or None if no head is young."""
        dues = [next(iter(queue)).due for queue in (self._young, self._silent) if queue]
        return min(dues, default=None)

    def promote(self, now: float) -> list[PendingHead]:
        """Look at every head whose grace has ended: give it more, or make it slow.
        Returns those refused because their address had no place left (each marked
        `refused` and left: its connection answers it)."""
        refused: list[PendingHead] = []
        for queue in (self._young, self._silent):
            while queue:
                head = next(iter(queue))
                if head.due > now:
                    break
                del queue[head]
                progress = head.progress()
                if progress is Progress.UNREAD:
                    head.due = now + self.grace  # later than every young head's due
                    self._young[head] = None
                elif progress is Progress.SILENT and queue is self._young:
                    # Never re-armed (that needs bytes), so due order is accept order.
                    head.due = head.accepted + self.silent_grace
                    self._silent[head] = None
                elif self.slow[head.address] < self.limit:
                    head.slow = True
                    self.slow[head.address] += 1
                else:
                    head.refused = True
                    refused.append(head)
        return refused


def fit_file_limit(settings: Settings) -> Settings:
    """Raise the soft RLIMIT_NOFILE towards what `max_connections` needs (up to the hard
    limit); if it still does not fit, lower `max_connections` and say so. Past the
    descriptor limit `accept()` fails (EMFILE) and nobody gets an answer; below it,
    the excess gets a 503."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # Each connection is one socket; a refused one lives briefly, so keep a margin.
    wanted = settings.max_connections + settings.max_connections // 10 + FD_RESERVE
    if soft != resource.RLIM_INFINITY and soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as error:
            log.warning("event=rlimit-unchanged error=%s", type(error).__name__)
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return settings
    capped = max(1, (soft - FD_RESERVE) * 10 // 11)
    log.warning(
        "event=max-connections-capped requested=%d capped=%d open-files-limit=%d "
        "hint=raise-the-hard-limit-with-ulimit-n",
        settings.max_connections,
        capped,
        soft,
    )
    return attrs.evolve(settings, max_connections=capped)


class _NoTraceback(logging.Filter):
    """trio logs a whole traceback each time accept() runs out of descriptors."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info:
            error = record.exc_info[1]
            record.msg = f"event=accept-failed error={type(error).__name__}: {error}"
            record.args = ()
            record.exc_info = None
            record.exc_text = None
        return True


def quiet_accept_errors() -> None:
    logger = logging.getLogger("trio.serve_listeners")
    if not any(isinstance(f, _NoTraceback) for f in logger.filters):
        logger.addFilter(_NoTraceback())
