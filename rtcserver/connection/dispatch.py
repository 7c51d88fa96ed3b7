"""`websocket_handle`'s one synchronous step: act on one complete message.

GETROOM and ENTERROOM change the registry (in cluster mode they await Redis, through
`Session.pending`); LOGIN and the call messages go to the directory; everything else
is relayed verbatim to the room's other members (`dispatch_relay`). Nothing here
awaits another actor."""

from __future__ import annotations

import time
from typing import Any

from .. import protocol
from ..actors.actor import Actor
from ..cluster.errors import ClusterUnavailable
from ..directory import phone, tutorial
from ..protocol import ErrorCode, WrongRoomReason
from ..rooms.peers import Peer, roster_text
from ..rooms.registry import Created, Entered, Refused, is_multi_party
from ..security import expiry
from ..security.auth import Identity
from ..security.turn import ice_config
from ..server.state import ServerState
from . import handover, seats
from .record import Session, log_event, reply_error
from .resume import grant_session, resume, seats_held
from .terminate import announce_departure

# Added to a held seat's remaining grace in WRONGROOM's `retry`: the ENTERROOM then
# comes just after the grace ends (the check above frees the seat at once).
SEAT_RETRY_MARGIN = 0.05


def dispatch(state: ServerState, session: Session, text: str) -> None:
    """Act on one text frame. Synchronous: it cannot interleave with another."""
    registry = state.registry
    actor = session.actor
    if expiry.expired(session.identity):
        expiry.end(state, actor)  # the timer may not have woken yet: nothing more is done
        return
    if session.dialect:
        tutorial.handle(state, actor, text, _identity(session))
        return
    first, session.first = session.first, False
    if session.identity is None and not first:
        return  # a RESUME stood for AUTH and was refused: the connection is closing
    message = _decoded(state, actor, text)
    if message is None:
        return
    owner = handover.owner_of(state, session, message, first)
    if owner is not None and isinstance(message, protocol.EnterRoom) and seats.wanted(state, actor):
        _enter_elsewhere(state, session, message, owner, text)
        return
    if owner is not None:
        why = handover.refusal(state, session, message)
        if why is None:
            session.first, session.handover_to = first, owner  # the reader hands it over
            return
        reply_error(state, actor, ErrorCode.WORKER_UNSUPPORTED, why)
        return
    if first and isinstance(message, protocol.Relay) and tutorial.opens(message.fields):
        # The tutorial dialect (docs/PROTOCOL.md): for the rest of this connection. It
        # gets no resumable session: its clients cannot RESUME, and a lost socket's
        # partner must hear `leave` at once.
        session.dialect = True
        tutorial.handle(state, actor, text, _identity(session))
        return
    if actor.resumable is None and not isinstance(message, protocol.Resume):
        # Every client gets its session before the answer to its first message (one
        # that has sent nothing holds nothing to keep; a first RESUME takes an old one).
        grant_session(state, session, asked=isinstance(message, protocol.SessionRequest))
        if actor.resumable is not None and actor.resumable.asked:
            return  # that SESSION was the answer to the SESSION request
    match message:
        case protocol.Relay() if actor.seat is not None:
            seats.forward(state, actor, text)
        case protocol.Relay(type=kind, fields=fields):
            dispatch_relay(state, actor, text, kind, fields)
        case protocol.GetRoom(capacity=asked, roster=roster):
            if not _identity(session).may_create_rooms:
                reply_error(
                    state, actor, ErrorCode.FORBIDDEN, "your token allows only the rooms it lists"
                )
                return
            settings = state.settings
            capacity = protocol.room_capacity(
                asked, settings.room_capacity, settings.max_room_capacity
            )
            if capacity is None:
                reply_error(
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
            if actor.seat is not None:
                actor.seat.vacate()  # GETROOM leaves the room it was in
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
            # A seat whose away member's grace is over frees now, not at the sweep.
            held = None if room is None else seats_held(state, room)
            if actor.seat is not None:
                actor.seat.vacate()  # ENTERROOM leaves the room it was in
            _room_entered(state, actor, room, registry.enter(room, actor), roster, held)
        case protocol.GetConfig():
            config = ice_config(state.settings, _turn_user(session), time.time())
            actor.tell(protocol.encode(protocol.Config(**config)))
        case protocol.Login(name=name):
            session.pending = phone.login(state, actor, name, _identity(session))
        case protocol.CallControl(type=kind, fields=fields):
            if kind == "CALL" and tutorial.speaks_dialect(state, fields.get("to")):
                reply_error(
                    state,
                    actor,
                    ErrorCode.OTHER_DIALECT,
                    "that user speaks the tutorial dialect (offers by name), "
                    "which a CALL cannot ring",
                )
            elif registry.name_of(actor) is not None:
                phone.call_control(state, actor, kind, fields)
            elif registry.room_of(actor) is not None:
                dispatch_relay(state, actor, text, kind, fields)  # a room's own message
            else:
                reply_error(state, actor, ErrorCode.NOT_LOGGED_IN, f"{kind} needs a LOGIN first")
        case protocol.SessionRequest():
            grant_session(state, session, asked=True)
        case protocol.Resume():
            if first and actor.resumable is None:
                session.pending = lambda: resume(state, session, message)
            else:
                reply_error(
                    state, actor, ErrorCode.RESUME_FAILED, "RESUME must be the first message"
                )
        case protocol.Auth():
            reply_error(
                state, actor, ErrorCode.AUTH_FAILED, "already authenticated (or no auth here)"
            )


def _enter_elsewhere(
    state: ServerState, session: Session, message: protocol.EnterRoom, owner: int, text: str
) -> None:
    """A logged-in user enters a room another worker owns: it takes a seat there (its
    socket stays with its name: connection/seats.py)."""
    actor = session.actor
    room = message.room
    assert room is not None
    if not _identity(session).may_enter(room):
        actor.tell(protocol.encode(protocol.WrongRoom(reason=WrongRoomReason.FORBIDDEN)))
        log_event(actor, "wrongroom", room, reason=WrongRoomReason.FORBIDDEN)
        return
    seat = actor.seat
    if seat is not None and seat.worker == owner:
        seats.forward(state, actor, text)  # that worker answers, as for any ENTERROOM
        return
    seats.take_seat(state, actor, owner, room, text)


def dispatch_seated(state: ServerState, actor: Actor, text: str) -> None:
    """Act on a message of a client whose seat in this worker's room `actor` holds
    (connection/guests.py): its home sends only ENTERROOM and the room's messages."""
    registry = state.registry
    message = _decoded(state, actor, text)
    match message:
        case None:
            return
        case protocol.EnterRoom(room=room, roster=roster):
            held = None if room is None else seats_held(state, room)
            _room_entered(state, actor, room, registry.enter(room, actor), roster, held)
        case (
            protocol.Relay(type=kind, fields=fields)
            | protocol.CallControl(type=kind, fields=fields)
        ):
            dispatch_relay(state, actor, text, kind, fields)
        case _:
            reply_error(state, actor, ErrorCode.WORKER_UNSUPPORTED, "not a message for a room")


def _decoded(state: ServerState, actor: Actor, text: str) -> protocol.ClientMessage | None:
    """The message `text` is, or None when it is none (the client got the ERROR)."""
    try:
        return protocol.decode(text)
    except protocol.ProtocolError as error:
        state.counters[f"error:{error.code}"] += 1
        actor.tell(protocol.encode(error.reply))
        return None


def _identity(session: Session) -> Identity:
    assert session.identity is not None, "messages are dispatched only after websocket_init"
    return session.identity


def _room_created(state: ServerState, actor: Actor, created: Created[Peer], roster: bool) -> None:
    announce_departure(actor, created.left)
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
    held: float | None = None,
) -> None:
    announce_departure(actor, result.left)
    if isinstance(result, Refused):
        if result.reason is WrongRoomReason.ROOM_FULL and held is not None:
            # Full only while an away member holds its seat: "wait", not "go away".
            retry = round(max(held, 0.0) + SEAT_RETRY_MARGIN, 3)
            actor.tell(protocol.encode(protocol.SeatHeld(reason=result.reason, retry=retry)))
        else:
            actor.tell(protocol.encode(protocol.WrongRoom(reason=result.reason)))
        log_event(actor, "wrongroom", room, reason=result.reason)
        return
    registry = state.registry
    multi = is_multi_party(registry.capacity_of(result.room))
    if multi:
        joined = protocol.peer_joined_text(registry.member_id(actor), registry.display_name(actor))
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
        reply_error(state, actor, ErrorCode.CLUSTER_UNAVAILABLE, str(failure))
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
                reply_error(
                    state,
                    actor,
                    ErrorCode.NO_SUCH_PEER,
                    f"{kind!r} not delivered: `to` names nobody else in the room",
                )
                return
            peer.tell(text)
            state.counters["relayed"] += 1
            registry.count_relayed(actor, len(text))
            return
    peers = registry.peers_of(actor)
    if peers:
        for peer in peers:
            peer.tell(text)
        state.counters["relayed"] += len(peers)
        registry.count_relayed(actor, len(text) * len(peers))
    elif registry.room_of(actor) is None:
        reply_error(
            state,
            actor,
            ErrorCode.NOT_IN_ROOM,
            f"{kind!r} needs a room: send GETROOM or ENTERROOM first",
        )
    else:
        reply_error(
            state, actor, ErrorCode.NO_PEER, f"{kind!r} not delivered: nobody else is in the room"
        )


def _turn_user(session: Session) -> str:
    name = session.identity.name if session.identity else None
    return f"{name or 'conn'}-{session.actor.id}"
