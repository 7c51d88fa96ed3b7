"""What one connection knows about itself (the book's `#state{}` record), its log
line, and how it answers a client with an ERROR."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import attrs
import trio

from .. import protocol
from ..actors.actor import Actor
from ..protocol import CloseCode, ErrorCode
from ..security.auth import Identity
from ..security.ratelimit import TokenBucket
from ..server.state import ServerState
from ..wire import logsafe
from ..wire.engine import WebSocket

log = logging.getLogger("rtcserver")

# How long a closing handshake may take before the socket is simply dropped.
CLOSE_TIMEOUT = 1.0


@attrs.define(eq=False)
class Session:
    """What one connection knows about itself (the book's `#state{}`)."""

    actor: Actor
    identity: Identity | None  # None: must authenticate before anything else
    bucket: TokenBucket
    # Cluster mode: a GETROOM/ENTERROOM that needs Redis, awaited by the reader before
    # it reads on, so the client's later messages keep their order.
    pending: Callable[[], Awaitable[None]] | None = None
    # Resumable sessions (issue 15): a RESUME is only taken as the first message, and
    # adopting a parked actor swaps the writer task over to it.
    first: bool = True
    nursery: trio.Nursery | None = None
    ws: WebSocket | None = None
    writer: trio.CancelScope | None = None
    writer_done: trio.Event = attrs.field(factory=trio.Event)
    # Several workers: the message just dispatched belongs to this worker
    # (connection/handover.py), which the reader hands the connection to.
    handover_to: int | None = None
    hops: int = 0  # how many handovers brought this connection here in a row
    # The first message was the tutorial dialect's `login`: every message is its.
    dialect: bool = False


def log_event(actor: Actor, event: str, room: int | None = None, **extra: object) -> None:
    # Values may come from the client (a token's `sub`, a close reason): clean them.
    details = "".join(f" {key}={logsafe.clean(value)}" for key, value in extra.items())
    log.info(
        "conn=%d addr=%s room=%s event=%s%s",
        actor.id,
        actor.address,
        "-" if room is None else room,
        event,
        details,
    )


def reply_error(state: ServerState, actor: Actor, code: ErrorCode, message: str) -> None:
    state.counters[f"error:{code}"] += 1
    actor.tell(protocol.encode(protocol.Error(code=code, message=message)))


def refuse(state: ServerState, actor: Actor, code: ErrorCode, message: str) -> None:
    reply_error(state, actor, code, message)
    actor.close_code, actor.close_reason = CloseCode.POLICY_VIOLATION, code.value
    log_event(actor, "auth-refused", code=code.value)
