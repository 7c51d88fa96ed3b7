"""Per-address limits, and the file-descriptor budget that `max_connections` must fit.

One address must not be able to fill the server: `max_handshakes_per_address`
connections may be sending their request head at once (slowloris from one host),
and `max_connections_per_address` may be open at once. The address is the TCP
peer's; with `--trust-proxy`, the open-connection limit counts the X-Forwarded-For
address instead, once the head is read, and the head limit is left to the proxy (it
reads heads before it forwards them, and every client shares its address here).
The defaults leave room for an office of hundreds of people behind one NAT.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import resource
from collections.abc import Iterator
from typing import Final

import attrs

from ..settings import Settings

log = logging.getLogger("rtcserver")

# Descriptors kept for everything but client sockets: listeners, www/ files being
# read, Redis, the log, the worker threads' needs.
FD_RESERVE: Final = 64


@attrs.define(eq=False)
class AddressCounts:
    """How many connections each address has open, and how many are in their head."""

    open: collections.Counter[str] = attrs.field(factory=collections.Counter)
    handshaking: collections.Counter[str] = attrs.field(factory=collections.Counter)

    @contextlib.contextmanager
    def hold(self, counter: collections.Counter[str], address: str) -> Iterator[None]:
        counter[address] += 1
        try:
            yield
        finally:
            counter[address] -= 1
            if counter[address] <= 0:
                del counter[address]


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
