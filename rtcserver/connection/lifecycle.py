"""The connection actor: the book's `handler_websocket`, on Trio.

A connection's whole life, named like Cowboy's callbacks:
- `websocket_init` (here): authenticate (when the server asks for it) before anything.
- `websocket_handle` (here): the reader loop, in the actor's own task: one read, then
  every message it completed is acted on synchronously (`dispatch.dispatch`: registry
  changes, `tell`s). It never awaits another actor, so it never stops draining its socket.
- `websocket_info` (`writer.py`): the writer loop, a child task, takes everything in the
  mailbox and writes it as one `send_all`; it also sends the keepalive's pings.
- `websocket_terminate` (`terminate.py`): the `finally`, which always runs, takes the
  actor out of its room and tells the peers (PEERLEFT) before the socket is closed; or,
  for a lost socket of a resumable session, `resume.park` keeps the actor for a RESUME.
`record.Session` is the book's `#state{}` record. The WebSocket itself is the engine's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import trio

from .. import protocol
from ..actors.actor import Actor
from ..protocol import CloseCode, ErrorCode
from ..security.auth import AuthFailed, Identity
from ..security.ratelimit import TokenBucket
from ..server.state import ServerState
from ..wire.engine import Closed, WebSocket
from . import seats
from .dispatch import dispatch
from .handover import Handover, hand_over
from .record import Session, log_event, refuse, reply_error
from .resume import close_parked, park
from .terminate import websocket_terminate
from .writer import flush_and_close, start_writer

log = logging.getLogger("rtcserver")


async def run_actor(
    state: ServerState,
    ws: WebSocket,
    actor: Actor,
    identity: Identity | None,
    handed: Handover | None = None,
) -> None:
    """Serve one WebSocket until either side ends it; then leave the room and close.
    `handed`: the connection comes from another worker, with messages to act on."""
    settings = state.settings
    session = Session(
        actor=actor,
        identity=identity,
        bucket=TokenBucket(rate=settings.rate_limit, burst=settings.rate_burst),
        ws=ws,
    )
    state.actors.add(actor)
    if identity is not None and identity.name:
        log_event(actor, "open", user=identity.name)
    else:
        log_event(actor, "open")
    try:
        with actor.scope:
            async with trio.open_nursery() as nursery:
                session.nursery = nursery
                start_writer(state, ws, session)
                if handed is None:
                    first = await websocket_init(state, ws, session)
                else:
                    first = adopted(state, session, handed)
                if first is not None:
                    await websocket_handle(state, ws, session, first)
                nursery.cancel_scope.cancel()
    except Exception:
        actor = session.actor  # a RESUME may have adopted a parked session's actor
        log.exception("conn=%d addr=%s event=crash", actor.id, actor.address)
        state.counters["crashes"] += 1
        if actor.close_code is None:
            actor.close_code, actor.close_reason = CloseCode.INTERNAL_ERROR, "internal error"
    finally:
        actor = session.actor
        heard = ws.close_received()
        parked_code: CloseCode | None = None
        if actor.handed_over:  # the socket lives on in another worker: no goodbye here
            state.counters["close:handed-over"] += 1
            if not actor.guest:  # (a guest stays in its room for it)
                websocket_terminate(state, actor)
        else:
            cause = actor.close_cause or ("client" if heard else "lost")
            state.counters[f"close:{cause}"] += 1
            parked_code = _park_or_end(state, ws, actor, heard)
    if actor.handed_over:
        return
    if parked_code is not None:
        if not actor.frame_cut:  # no frame can follow half a frame: the stream is dropped
            await close_parked(ws, parked_code)
    else:
        await flush_and_close(ws, actor)
        actor.written()  # a write cut short by the end: its bytes are no longer held
    log_event(
        actor,
        "close",
        code=actor.close_code.value if actor.close_code else (heard[0] if heard else "-"),
        reason=repr(actor.close_reason or (heard[1] if heard else "")),
    )


def _park_or_end(
    state: ServerState, ws: WebSocket, actor: Actor, heard: tuple[int, str] | None
) -> CloseCode | None:
    """Lost without a close from the client: the session waits for RESUME. So does
    one closed with 1001 (the page is going away: a refresh) if the client asked
    for its session, so it resumes after a reload; for a client that never asked
    (the book's) 1001 is a goodbye. Hang-up (1000) ends it.
    A client that broke the protocol (closed by the server: 1002, 1007, 1009)
    is not lost: its session ends. Returns the parked socket's close code, if parked."""
    broke = heard is None and ws.close_sent() is not None
    gone = not broke and (
        heard is None
        or (
            heard[0] == CloseCode.GOING_AWAY
            and actor.resumable is not None
            and actor.resumable.asked
        )
    )
    parked_code = park(state, actor, closed_by_client=heard is not None) if gone else None
    if parked_code is None:
        websocket_terminate(state, actor)
    return parked_code


async def websocket_init(
    state: ServerState, ws: WebSocket, session: Session
) -> list[str | bytes] | None:
    """When the server wants to know who is connecting and the URL did not say, the
    first message must be AUTH. Nothing else is processed before it succeeds.
    Returns the messages read behind AUTH (to be handled next, in order), or None
    when the connection is to end."""
    if session.identity is not None:
        state.expiries.watch(session.actor, session.identity)  # token-expiry hook
        return []
    actor = session.actor
    timeout = state.settings.handshake_timeout
    messages: list[str | bytes] = []
    with trio.move_on_after(timeout) as deadline:
        try:
            while not messages:
                messages = await ws.receive()
        except Closed:
            return None
    if deadline.cancelled_caught:
        refuse(state, actor, ErrorCode.AUTH_REQUIRED, f"no AUTH within {timeout:g}s")
        return None
    actor.last_heard = trio.current_time()
    first, rest = messages[0], messages[1:]
    message: protocol.ClientMessage | None = None
    if isinstance(first, str):
        try:
            message = protocol.decode(first)
        except protocol.ProtocolError:
            message = None
    if isinstance(message, protocol.Resume):
        return messages  # the session's secret stands for AUTH (refused: closed)
    if not isinstance(message, protocol.Auth):
        refuse(state, actor, ErrorCode.AUTH_REQUIRED, "this server needs AUTH first")
        return None
    gatekeeper = state.gatekeeper
    fields = message.fields
    try:
        if gatekeeper.mode == "token":
            token = fields.get("token")
            session.identity = gatekeeper.check_token(token if isinstance(token, str) else None)
        else:
            session.identity = await gatekeeper.check_password(
                fields.get("name"), fields.get("password"), actor.address, connected(ws)
            )
    except AuthFailed as failure:
        refuse(state, actor, ErrorCode(failure.code), failure.message)
        return None
    state.expiries.watch(actor, session.identity)  # token-expiry hook
    actor.tell(protocol.encode(protocol.AuthReply(name=session.identity.name)))
    log_event(actor, "authenticated", user=session.identity.name)
    return rest


def adopted(state: ServerState, session: Session, handed: Handover) -> list[str | bytes]:
    """`websocket_init` for a connection another worker handed over: it was checked
    there, and the session it had there goes on here as it was."""
    session.first, session.hops = handed.first, handed.hops
    if session.identity is not None:
        state.expiries.watch(session.actor, session.identity)  # token-expiry hook
    if handed.seat is not None:
        seats.adopt_seat(
            state, session.actor, handed.seat.worker, handed.seat.key, handed.seat.room
        )
    moved = handed.session
    if moved is not None:
        state.sessions.adopt(
            session.actor,
            session.identity,
            state.settings.resume_replay_bytes,
            (moved.id, moved.secret, moved.asked, moved.sent, list(handed.ring)),
        )
    return list(handed.messages)


def connected(ws: WebSocket) -> Callable[[], bool]:
    """Whether the client is still there (asked before a password is hashed for it)."""
    return lambda: not ws.peer_gone()


async def websocket_handle(
    state: ServerState, ws: WebSocket, session: Session, messages: list[str | bytes]
) -> None:
    """Act on every message of each read, in order, until the client goes.

    Over the rate limit the reader waits for tokens instead of dropping: the client's
    own TCP buffers fill and its sends slow down; nothing is lost, and a flooder costs
    the server at most the rate."""
    actor = session.actor
    bucket = session.bucket
    mailbox = actor.mailbox
    while True:
        for index, message in enumerate(messages):
            delay = bucket.delay(actor.last_heard)
            if delay > 0:
                await _throttle(state, actor, bucket, delay)
            if isinstance(message, bytes):
                reply_error(
                    state, actor, ErrorCode.BINARY_UNSUPPORTED, "binary frames are not supported"
                )
                continue
            dispatch(state, session, message)
            if session.pending is not None:
                pending, session.pending = session.pending, None
                await pending()
            if session.handover_to is not None:
                target, session.handover_to = session.handover_to, None
                if await hand_over(state, ws, session, target, messages[index:]):
                    return
                session.first = False
        try:
            messages = await ws.receive()
        except Closed:
            return
        actor.last_heard = trio.current_time()
        if ws.has_output():
            mailbox.nudge()  # a pong (or the echo of a close) for the writer to send


async def _throttle(state: ServerState, actor: Actor, bucket: TokenBucket, delay: float) -> None:
    """Wait until the bucket has a token for the next message, and take it. A client
    being throttled is not silent: it is the server that is not reading."""
    while delay > 0:
        state.throttled_seconds += delay
        await trio.sleep(delay)
        actor.last_heard = trio.current_time()
        delay = bucket.delay(actor.last_heard)
