"""Sessions that outlive a socket, on the connection's side (docs/PROTOCOL.md,
"Sessions and resume").

A lost socket parks its actor (`park`): room, name and mailbox wait `resume_grace`
for a RESUME (`resume`), which adopts the parked actor into the new connection and
sends again what the client missed; the permanent `session_sweeper` ends those whose
grace ran out. The bookkeeping itself is `rooms.sessions`'s (pure)."""

from __future__ import annotations

import trio

from .. import protocol
from ..actors.actor import KICK_GRACE, Actor
from ..protocol import CloseCode, ErrorCode
from ..rooms.sessions import Resumable, new_secret
from ..server.state import ServerState
from ..wire.engine import WebSocket
from .record import CLOSE_TIMEOUT, Session, log_event, refuse, reply_error
from .terminate import websocket_terminate
from .writer import start_writer

# Why an actor ended, when it may wait for a RESUME: the socket was lost, not closed.
_PARKABLE = (None, CloseCode.KEEPALIVE_TIMEOUT, CloseCode.RESUMED_ELSEWHERE)


def grant_session(state: ServerState, session: Session, *, asked: bool) -> None:
    actor = session.actor
    granted = state.sessions.grant(
        actor, session.identity, state.settings.resume_replay_bytes, asked=asked
    )
    reply = protocol.SessionGranted(
        session=granted.id, secret=granted.secret, grace=state.settings.resume_grace
    )
    actor.tell(protocol.encode(reply))


def park(state: ServerState, actor: Actor, *, closed_by_client: bool = False) -> CloseCode | None:
    """Keep a resumable actor whose socket was lost: its room, name and mailbox wait
    `resume_grace` for a RESUME (`reload_grace` when the client closed with 1001: a
    reload comes back at once, and a closed tab must not keep a newcomer waiting);
    its peers hear PEERAWAY. Returns the close code for the dead socket, or None when
    the actor is not to wait (it ends now)."""
    resumable = state.sessions.of(actor)
    if resumable is None or state.shutting_down or actor.close_code not in _PARKABLE:
        return None
    code = actor.close_code or CloseCode.NORMAL
    actor.written()  # the write in progress is in the replay ring; no longer held
    state.actors.discard(actor)
    settings = state.settings
    grace = settings.resume_grace
    if closed_by_client:
        grace = min(settings.reload_grace, grace)
    state.sessions.park(resumable, trio.current_time() + grace)
    away = protocol.peer_away_text(state.registry.named_id(actor))
    for peer in state.registry.peers_of(actor):
        peer.tell(away)
    if actor.seat is not None:
        actor.seat.away()  # its room is another worker's: its peers hear it there
    log_event(actor, "session-away", state.registry.room_of(actor), code=int(code))
    return code


async def close_parked(ws: WebSocket, code: CloseCode) -> None:
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


def seats_held(state: ServerState, room: int) -> float | None:
    """Before an ENTERROOM: end the away sessions of `room` whose grace is over (the
    sweeper may not have come by yet), so a newcomer takes a freed seat the moment it
    frees. Returns the seconds until the next seat held by an away member frees, or
    None when no member of the room is away."""
    now = trio.current_time()
    soonest: float | None = None
    for member in state.registry.members(room):
        if not isinstance(member, Actor):
            continue  # a member on another node (cluster mode): not parked here
        resumable = state.sessions.away.get(member)
        if resumable is None or resumable.deadline is None:
            continue
        if resumable.deadline <= now:
            _end_parked(state, resumable, "grace-over")
        elif soonest is None or resumable.deadline < soonest:
            soonest = resumable.deadline
    return None if soonest is None else soonest - now


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


async def resume(state: ServerState, session: Session, message: protocol.Resume) -> None:
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
    start_writer(state, session.ws, session)


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
    peers = len(state.registry.peers_of(old))
    if old.seat is not None:  # its room is another worker's (connection/seats.py)
        room, peers = old.seat.room, old.seat.peers
        old.seat.back()
    resumed = protocol.encode(
        protocol.Resumed(session=found.id, secret=protocol_secret, room=room, peers=peers)
    ).encode()
    batch = [resumed, *replay]
    old.budget.add(old.mailbox.put_front(batch, trio.current_time()))
    back = protocol.peer_back_text(state.registry.named_id(old))
    for peer in state.registry.peers_of(old):
        peer.tell(back)
    log_event(old, "session-resumed", room, replayed=len(replay))


def _resume_refused(state: ServerState, session: Session, code: ErrorCode, why: str) -> None:
    """The client goes on as a newcomer; with authentication on, the secret stood for
    AUTH, so a refused RESUME closes the connection as a failed AUTH does."""
    if session.identity is None:
        refuse(state, session.actor, code, why)
        session.actor.scope.cancel()
        return
    reply_error(state, session.actor, code, why)
