"""The connection actor: the book's `handler_websocket`, on Trio.

One screen holds a connection's whole life, named like Cowboy's callbacks:
- `websocket_init`: authenticate (when the server asks for it) before anything else.
- `websocket_handle`: the reader loop, in the actor's own task: one read, then every
  message it completed is acted on synchronously (registry changes, `tell`s). It
  never awaits another actor, so it never stops draining its socket.
- `websocket_info`: the writer loop, a child task, takes everything in the mailbox
  and writes it as one `send_all`; it also sends the keepalive's pings.
- `websocket_terminate`: the `finally`, which always runs, takes the actor out of its
  room and tells the peers (PEERLEFT) before the socket is closed.
`Session` is the book's `#state{}` record. The WebSocket itself is engine.py's.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import trio

from . import expiry, logsafe, phone, protocol
from .actor import KICK_GRACE, Actor
from .auth import AuthFailed, Identity
from .cluster.errors import ClusterUnavailable
from .config import ice_config
from .engine import Closed, WebSocket
from .mailbox import MailboxClosed
from .protocol import CloseCode, ErrorCode, WrongRoomReason
from .ratelimit import TokenBucket
from .registry import Created, Departure, Entered, Refused, is_multi_party
from .rooms import Peer, roster_text
from .sessions import Resumable, new_secret
from .state import ServerState

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


async def run_actor(
    state: ServerState, ws: WebSocket, actor: Actor, identity: Identity | None
) -> None:
    """Serve one WebSocket until either side ends it; then leave the room and close."""
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
                _start_writer(state, ws, session)
                first = await websocket_init(state, ws, session)
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
        state.counters[f"close:{actor.close_cause or ('client' if heard else 'lost')}"] += 1
        # Lost without a close from the client: the session waits for RESUME. So does
        # one closed with 1001 (the page is going away: a refresh) if the client asked
        # for its session, so it resumes after a reload; for a client that never asked
        # (the book's) 1001 is a goodbye. Hang-up (1000) ends it.
        # A client that broke the protocol (closed by the server: 1002, 1007, 1009)
        # is not lost: its session ends.
        broke = heard is None and ws.close_sent() is not None
        gone = not broke and (
            heard is None
            or (
                heard[0] == CloseCode.GOING_AWAY
                and actor.resumable is not None
                and actor.resumable.asked
            )
        )
        parked_code = _park(state, actor) if gone else None
        if parked_code is None:
            websocket_terminate(state, actor)
    if parked_code is not None:
        if not actor.frame_cut:  # no frame can follow half a frame: the stream is dropped
            await _close_parked(ws, parked_code)
    else:
        await _flush_and_close(ws, actor)
        actor.written()  # a write cut short by the end: its bytes are no longer held
    log_event(
        actor,
        "close",
        code=actor.close_code.value if actor.close_code else (heard[0] if heard else "-"),
        reason=repr(actor.close_reason or (heard[1] if heard else "")),
    )


def _start_writer(state: ServerState, ws: WebSocket, session: Session) -> None:
    """Start the writer for `session.actor`. Its scope and end event exist before it
    runs, so a RESUME read before the task first runs can still stop it."""
    assert session.nursery is not None
    session.writer = trio.CancelScope()
    session.writer_done = trio.Event()
    session.nursery.start_soon(
        _write_until_done, state, ws, session, session.actor, session.writer, session.writer_done
    )


async def _write_until_done(
    state: ServerState,
    ws: WebSocket,
    session: Session,
    actor: Actor,
    scope: trio.CancelScope,
    done: trio.Event,
) -> None:
    # Whichever loop ends first ends the connection (unless a RESUME swaps writers).
    assert session.nursery is not None
    try:
        with scope:
            await websocket_info(state, ws, actor)
        if scope.cancelled_caught:
            return  # stopped to serve an adopted actor instead
        session.nursery.cancel_scope.cancel()
    finally:
        done.set()


# ------------------------------------------------------------------ init


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
        _refuse(state, actor, ErrorCode.AUTH_REQUIRED, f"no AUTH within {timeout:g}s")
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
        _refuse(state, actor, ErrorCode.AUTH_REQUIRED, "this server needs AUTH first")
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
        _refuse(state, actor, ErrorCode(failure.code), failure.message)
        return None
    state.expiries.watch(actor, session.identity)  # token-expiry hook
    actor.tell(protocol.encode(protocol.AuthReply(name=session.identity.name)))
    log_event(actor, "authenticated", user=session.identity.name)
    return rest


def connected(ws: WebSocket) -> Callable[[], bool]:
    """Whether the client is still there (asked before a password is hashed for it)."""
    return lambda: not ws.peer_gone()


def _refuse(state: ServerState, actor: Actor, code: ErrorCode, message: str) -> None:
    _reply_error(state, actor, code, message)
    actor.close_code, actor.close_reason = CloseCode.POLICY_VIOLATION, code.value
    log_event(actor, "auth-refused", code=code.value)


# ------------------------------------------------------------------ reader


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
        for message in messages:
            delay = bucket.delay(actor.last_heard)
            if delay > 0:
                await _throttle(state, actor, bucket, delay)
            if isinstance(message, bytes):
                _reply_error(
                    state, actor, ErrorCode.BINARY_UNSUPPORTED, "binary frames are not supported"
                )
                continue
            dispatch(state, session, message)
            if session.pending is not None:
                pending, session.pending = session.pending, None
                await pending()
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


def dispatch(state: ServerState, session: Session, text: str) -> None:
    """Act on one text frame. Synchronous: it cannot interleave with another."""
    registry = state.registry
    actor = session.actor
    if expiry.expired(session.identity):
        expiry.end(state, actor)  # the timer may not have woken yet: nothing more is done
        return
    first, session.first = session.first, False
    if session.identity is None and not first:
        return  # a RESUME stood for AUTH and was refused: the connection is closing
    try:
        message = protocol.decode(text)
    except protocol.ProtocolError as error:
        state.counters[f"error:{error.code}"] += 1
        actor.tell(protocol.encode(error.reply))
        return
    if actor.resumable is None and not isinstance(message, protocol.Resume):
        # Every client gets its session before the answer to its first message (one
        # that has sent nothing holds nothing to keep; a first RESUME takes an old one).
        _grant_session(state, session, asked=isinstance(message, protocol.SessionRequest))
        if actor.resumable is not None and actor.resumable.asked:
            return  # that SESSION was the answer to the SESSION request
    match message:
        case protocol.Relay(type=kind, fields=fields):
            dispatch_relay(state, actor, text, kind, fields)
        case protocol.GetRoom(capacity=asked, roster=roster):
            if not _identity(session).may_create_rooms:
                _reply_error(
                    state, actor, ErrorCode.FORBIDDEN, "your token allows only the rooms it lists"
                )
                return
            settings = state.settings
            capacity = protocol.room_capacity(
                asked, settings.room_capacity, settings.max_room_capacity
            )
            if capacity is None:
                _reply_error(
                    state,
                    actor,
                    ErrorCode.BAD_CAPACITY,
                    f"capacity must be an integer from 2 to {settings.max_room_capacity}",
                )
                return
            if state.cluster is not None:
                session.pending = lambda: _join_cluster(
                    state, actor, None, create=True, capacity=capacity, roster=roster
                )
                return
            _room_created(state, actor, registry.create(actor, capacity), roster)
        case protocol.EnterRoom(room=room, roster=roster):
            if room is not None and not _identity(session).may_enter(room):
                actor.tell(protocol.encode(protocol.WrongRoom(reason=WrongRoomReason.FORBIDDEN)))
                log_event(actor, "wrongroom", room, reason=WrongRoomReason.FORBIDDEN)
                return
            if state.cluster is not None:
                session.pending = lambda: _join_cluster(
                    state, actor, room, create=False, capacity=None, roster=roster
                )
                return
            _room_entered(state, actor, room, registry.enter(room, actor), roster)
        case protocol.GetConfig():
            config = ice_config(state.settings, _turn_user(session), time.time())
            actor.tell(protocol.encode(protocol.Config(**config)))
        case protocol.Login(name=name):
            session.pending = phone.login(state, actor, name, _identity(session))
        case protocol.CallControl(type=kind, fields=fields):
            if registry.name_of(actor) is not None:
                phone.call_control(state, actor, kind, fields)
            elif registry.room_of(actor) is not None:
                dispatch_relay(state, actor, text, kind, fields)  # a room's own message
            else:
                _reply_error(state, actor, ErrorCode.NOT_LOGGED_IN, f"{kind} needs a LOGIN first")
        case protocol.SessionRequest():
            _grant_session(state, session, asked=True)
        case protocol.Resume():
            if first and actor.resumable is None:
                session.pending = lambda: _resume(state, session, message)
            else:
                _reply_error(
                    state, actor, ErrorCode.RESUME_FAILED, "RESUME must be the first message"
                )
        case protocol.Auth():
            _reply_error(
                state, actor, ErrorCode.AUTH_FAILED, "already authenticated (or no auth here)"
            )


def _identity(session: Session) -> Identity:
    assert session.identity is not None, "messages are dispatched only after websocket_init"
    return session.identity


def _room_created(state: ServerState, actor: Actor, created: Created[Peer], roster: bool) -> None:
    _announce_departure(actor, created.left)
    actor.tell(protocol.encode(protocol.GetRoomReply(value=created.room)))
    if roster or is_multi_party(state.registry.capacity_of(created.room)):
        _tell_roster(state, actor, created.room)
    log_event(actor, "room-created", created.room)


def _room_entered(
    state: ServerState,
    actor: Actor,
    room: int | None,
    result: Entered[Peer] | Refused[Peer],
    roster: bool,
) -> None:
    _announce_departure(actor, result.left)
    if isinstance(result, Refused):
        actor.tell(protocol.encode(protocol.WrongRoom(reason=result.reason)))
        log_event(actor, "wrongroom", room, reason=result.reason)
        return
    registry = state.registry
    multi = is_multi_party(registry.capacity_of(result.room))
    if multi:
        joined = protocol.peer_joined_text(registry.member_id(actor), registry.name_of(actor))
    else:
        joined = protocol.PEER_JOINED_TEXT
    for member in result.already_there:
        member.tell(joined)
    if roster or multi:
        _tell_roster(state, actor, result.room)
    log_event(actor, "room-entered", result.room)


def _tell_roster(state: ServerState, actor: Actor, room: int) -> None:
    """ROOM: the newcomer's own id and the others' (with their names), oldest first."""
    actor.tell(roster_text(state.registry, actor, room))


async def _join_cluster(
    state: ServerState,
    actor: Actor,
    room: int | None,
    *,
    create: bool,
    capacity: int | None,
    roster: bool,
) -> None:
    """GETROOM/ENTERROOM in cluster mode: one atomic script on Redis (cluster/node.py)."""
    assert state.cluster is not None
    try:
        if create:
            assert capacity is not None
            _room_created(state, actor, await state.cluster.create(actor, capacity), roster)
        else:
            _room_entered(state, actor, room, await state.cluster.enter(room, actor), roster)
    except ClusterUnavailable as failure:
        _reply_error(state, actor, ErrorCode.CLUSTER_UNAVAILABLE, str(failure))
        log_event(actor, "cluster-unavailable", room)


def dispatch_relay(
    state: ServerState, actor: Actor, text: str, kind: str, fields: dict[str, Any]
) -> None:
    """Forward the original text to the other member(s); never silently drop it.
    In a multi-party room the text gains its sender's id as its last key, and `to`
    picks one receiver."""
    registry = state.registry
    suffix = registry.from_suffix(actor)
    if suffix is not None:
        text = text[: text.rindex("}")] + suffix
        to = fields.get("to")
        if to is not None:
            peer = registry.peer_with_id(actor, to)
            if peer is None:
                _reply_error(
                    state,
                    actor,
                    ErrorCode.NO_SUCH_PEER,
                    f"{kind!r} not delivered: `to` names nobody else in the room",
                )
                return
            peer.tell(text)
            state.counters["relayed"] += 1
            return
    peers = registry.peers_of(actor)
    if peers:
        for peer in peers:
            peer.tell(text)
        state.counters["relayed"] += len(peers)
    elif registry.room_of(actor) is None:
        _reply_error(
            state,
            actor,
            ErrorCode.NOT_IN_ROOM,
            f"{kind!r} needs a room: send GETROOM or ENTERROOM first",
        )
    else:
        _reply_error(
            state, actor, ErrorCode.NO_PEER, f"{kind!r} not delivered: nobody else is in the room"
        )


def _turn_user(session: Session) -> str:
    name = session.identity.name if session.identity else None
    return f"{name or 'conn'}-{session.actor.id}"


def _reply_error(state: ServerState, actor: Actor, code: ErrorCode, message: str) -> None:
    state.counters[f"error:{code}"] += 1
    actor.tell(protocol.encode(protocol.Error(code=code, message=message)))


def _announce_departure(actor: Actor, departure: Departure[Peer] | None) -> None:
    if departure is None:
        return
    text = protocol.peer_left_text(departure.left_id)
    for peer in departure.remaining:
        peer.tell(text)
    log_event(actor, "room-left", departure.room)


# ------------------------------------------------------------------ writer


async def websocket_info(state: ServerState, ws: WebSocket, actor: Actor) -> None:
    """Drain the mailbox onto the socket: everything queued goes out as one write.
    Pings when the keepalive asks (keepalive.py watches the clocks)."""
    timeout = state.settings.keepalive_timeout
    mailbox = actor.mailbox

    def progress() -> None:
        # A large write that keeps moving is a reader that keeps reading, however
        # slowly: renew its deadline (unless the actor is being kicked). Its bytes are
        # being acknowledged, so the client is alive too: keepalive counts it as heard
        # (a ping queued behind megabytes would otherwise time out on a live client).
        if actor.sending is not None and actor.close_code is None:
            now = trio.current_time()
            actor.sending.deadline = now + timeout
            actor.last_heard = now

    try:
        while True:
            await mailbox.wait()
            ws.queue_texts(actor.take_mail())
            ws.queue_texts(actor.extra_frames())  # presence: after the calls, coalesced
            # Most writes fit the socket's buffer: written at once, no await, no deadline.
            if not ws.write_now() and not await _write(actor, ws.flush(progress), timeout):
                actor.kick(
                    CloseCode.SLOW_CONSUMER,
                    f"slow consumer: a write made no progress for {timeout:g}s",
                    cause="write-timeout",
                )
            actor.written()
            if actor.ping_due:
                actor.ping_due = False
                if not await _write(actor, ws.ping(), timeout):
                    actor.kick(CloseCode.KEEPALIVE_TIMEOUT, f"a ping blocked for {timeout:g}s")
    except (MailboxClosed, trio.BrokenResourceError, trio.ClosedResourceError):
        return


async def _write(actor: Actor, operation: Awaitable[None], timeout: float) -> bool:
    """Run one socket write (or ping) whole, or time out. Cancellation cannot cut it in
    half (that would corrupt the stream); `Actor.kick` shortens its deadline instead.
    Returns False on timeout, after which the stream is only fit to be dropped."""
    with trio.CancelScope(shield=True, deadline=trio.current_time() + timeout) as scope:
        actor.sending = scope
        try:
            await operation
        finally:
            actor.sending = None
    if scope.cancelled_caught:
        actor.frame_cut = True
        return False
    return True


# ------------------------------------------------------------------ terminate


def websocket_terminate(state: ServerState, actor: Actor) -> None:
    """The registration dies with the actor: leave the room, tell who remains."""
    state.actors.discard(actor)
    state.expiries.forget(actor)
    state.sessions.end(actor)
    if actor.close_code is CloseCode.SLOW_CONSUMER:
        state.counters["mailbox-overflow"] += 1
    phone.unsubscribe(state, actor)
    departure, name = state.registry.forget(actor)
    _announce_departure(actor, departure)
    if name is not None:
        phone.logout(state, name)
    actor.mailbox.close()


async def _flush_and_close(ws: WebSocket, actor: Actor) -> None:
    """Send what is still queued (an ERROR that explains the close, say), then the
    close frame, and wait for the client's. Shielded but bounded: a peer that never
    reads cannot hold shutdown hostage, and a slow consumer's backlog is not worth
    waiting for."""
    if actor.frame_cut:
        return  # no frame can follow half a frame; the caller drops the TCP stream
    code = actor.close_code or CloseCode.NORMAL
    backlog = actor.drop_mail()
    with trio.CancelScope(shield=True), trio.move_on_after(CLOSE_TIMEOUT):
        if code not in (CloseCode.SLOW_CONSUMER, CloseCode.KEEPALIVE_TIMEOUT):
            ws.queue_texts(backlog)
        await ws.aclose(int(code), actor.close_reason)


# ------------------------------------------------------------------ sessions (issue 15)

# Why an actor ended, when it may wait for a RESUME: the socket was lost, not closed.
_PARKABLE = (None, CloseCode.KEEPALIVE_TIMEOUT, CloseCode.RESUMED_ELSEWHERE)


def _grant_session(state: ServerState, session: Session, *, asked: bool) -> None:
    actor = session.actor
    granted = state.sessions.grant(
        actor, session.identity, state.settings.resume_replay_bytes, asked=asked
    )
    reply = protocol.SessionGranted(
        session=granted.id, secret=granted.secret, grace=state.settings.resume_grace
    )
    actor.tell(protocol.encode(reply))


def _park(state: ServerState, actor: Actor) -> CloseCode | None:
    """Keep a resumable actor whose socket was lost: its room, name and mailbox wait
    `resume_grace` for a RESUME; its peers hear PEERAWAY. Returns the close code for
    the dead socket, or None when the actor is not to wait (it ends now)."""
    resumable = actor.resumable
    if resumable is None or state.shutting_down or actor.close_code not in _PARKABLE:
        return None
    code = actor.close_code or CloseCode.NORMAL
    actor.written()  # the write in progress is in the replay ring; no longer held
    state.actors.discard(actor)
    state.sessions.park(resumable, trio.current_time() + state.settings.resume_grace)
    away = protocol.peer_away_text(state.registry.named_id(actor))
    for peer in state.registry.peers_of(actor):
        peer.tell(away)
    log_event(actor, "session-away", state.registry.room_of(actor), code=int(code))
    return code


async def _close_parked(ws: WebSocket, code: CloseCode) -> None:
    """A parked actor's old socket: a close frame if it can still take one, nothing
    of the mail (that waits for the RESUME)."""
    with trio.CancelScope(shield=True), trio.move_on_after(CLOSE_TIMEOUT):
        await ws.aclose(int(code), "session waits for RESUME" if code < 4002 else "resumed")


def _end_parked(state: ServerState, resumable: Resumable, why: str) -> None:
    """The grace is over (or its limits were broken): as any departure ends."""
    actor = resumable.actor
    state.actors.discard(actor)
    websocket_terminate(state, actor)
    actor.drop_mail()
    log_event(actor, "session-ended", why=why)


async def session_sweeper(state: ServerState) -> None:
    """The permanent service that ends parked sessions at their deadline, and those
    whose mail broke the byte limits or whose token expired meanwhile."""
    settings = state.settings
    # Only parked sessions are looked at, so a short period costs little; it bounds
    # how late a peer hears PEERLEFT after a limit ended an away session.
    period = min(settings.resume_grace / 4, settings.mailbox_soft_seconds / 4, 0.5)
    while True:
        await trio.sleep(period)
        now = trio.current_time()
        for resumable in list(state.sessions.away.values()):
            actor = resumable.actor
            over_soft = actor.over_soft_since
            if actor.close_code not in _PARKABLE:
                _end_parked(state, resumable, actor.close_cause or "kicked")
            elif resumable.deadline is not None and now >= resumable.deadline:
                _end_parked(state, resumable, "grace-over")
            elif over_soft is not None and now - over_soft >= settings.mailbox_soft_seconds:
                _end_parked(state, resumable, "soft-limit")


async def _resume(state: ServerState, session: Session, message: protocol.Resume) -> None:
    """RESUME: this new connection adopts the parked actor (kicking its old socket
    first if the server has not yet noticed it died). Exactly one RESUME per secret."""
    received = message.received
    if type(received) is not int or received < 0:
        why = "`received` must be the count of messages received (an integer >= 0)"
        _resume_refused(state, session, ErrorCode.RESUME_FAILED, why)
        return
    found = state.sessions.claim(message.session, message.secret)
    if found is None:
        why = "no such session: unknown, ended, already resumed, or a wrong secret"
        _resume_refused(state, session, ErrorCode.RESUME_FAILED, why)
        return
    if found.deadline is None:  # still attached to a socket the client has given up on
        found.actor.kick(CloseCode.RESUMED_ELSEWHERE, "session resumed elsewhere", "resumed")
        with trio.move_on_after(KICK_GRACE + CLOSE_TIMEOUT):
            await found.wait_detached()
    old = found.actor
    if state.sessions.away.get(old) is not found or old.close_code not in _PARKABLE:
        _resume_refused(state, session, ErrorCode.RESUME_FAILED, "the session has ended")
        return
    replay = found.rewind(received)
    if replay is None:
        _end_parked(state, found, "resume-gap")
        _resume_refused(
            state, session, ErrorCode.RESUME_GAP, "messages you missed are no longer kept"
        )
        return
    deadline = found.deadline
    state.sessions.unpark(found)  # the sweeper cannot end it while the writers swap
    assert session.writer is not None and session.nursery is not None and session.ws
    try:
        session.writer.cancel()
        await session.writer_done.wait()
    except BaseException:
        found.secret = message.secret if isinstance(message.secret, str) else ""
        state.sessions.park(found, deadline or trio.current_time())
        raise
    _adopt(state, session, found, replay)
    _start_writer(state, session.ws, session)


def _adopt(state: ServerState, session: Session, found: Resumable, replay: list[bytes]) -> None:
    """Synchronous: the new connection's own actor is dropped (it holds nothing yet),
    the parked one takes its place, its replay and waiting mail go out first."""
    new, old = session.actor, found.actor
    state.actors.discard(new)
    state.expiries.forget(new)
    new.mailbox.close()
    old.scope = new.scope  # kicking the session now ends this connection
    old.address = new.address
    old.close_code, old.close_reason, old.close_cause = None, "", ""
    old.last_heard = trio.current_time()
    old.ping_sent, old.ping_due, old.frame_cut, old.sending = None, False, False, None
    state.actors.add(old)
    session.actor = old
    session.identity = found.identity
    found.asked = True  # it resumed: it knows sessions, so a reload parks it too
    found.secret = protocol_secret = new_secret()
    room = state.registry.room_of(old)
    resumed = protocol.encode(
        protocol.Resumed(
            session=found.id,
            secret=protocol_secret,
            room=room,
            peers=len(state.registry.peers_of(old)),
        )
    ).encode()
    batch = [resumed, *replay]
    old.mailbox.put_front(batch, trio.current_time())
    old.budget.add(sum(map(len, batch)))
    back = protocol.peer_back_text(state.registry.named_id(old))
    for peer in state.registry.peers_of(old):
        peer.tell(back)
    log_event(old, "session-resumed", room, replayed=len(replay))


def _resume_refused(state: ServerState, session: Session, code: ErrorCode, why: str) -> None:
    """The client goes on as a newcomer; with authentication on, the secret stood for
    AUTH, so a refused RESUME closes the connection as a failed AUTH does."""
    if session.identity is None:
        _refuse(state, session.actor, code, why)
        session.actor.scope.cancel()
        return
    _reply_error(state, session.actor, code, why)
