"""Handing a live connection to the worker process that owns what it asks for.

With several workers (`--workers N`, rooms/owners.py) the kernel spreads accepted
sockets over them, but a room lives in one: ENTERROOM to a room another worker owns,
a RESUME of a session another worker holds, and a LOGIN (names and calls live on the
directory worker) are acted on there. This worker hands the socket itself over, with
the messages it has read but not acted on, and forgets the connection; the owner
carries on as if the socket had been accepted there, so from then on every relay is
in one process again (no frame forwarding on the hot path).

A handover happens only at a frame boundary (`WebSocket.at_frame_boundary`): the
owner starts a fresh frame parser on the next byte. Everything queued for the client
is written first, so the two processes never write to one socket at once.
"""

from __future__ import annotations

import logging
import struct

import attrs
import cattrs
import orjson
import trio

from .. import protocol
from ..actors.actor import Actor
from ..directory.dialect import opens_dialect
from ..protocol import ErrorCode, WrongRoomReason
from ..rooms.owners import DIRECTORY_WORKER
from ..security.auth import Identity
from ..server.state import ServerState
from ..wire import fdpass
from ..wire.engine import Closed, WebSocket
from .record import Session, log_event, reply_error
from .writer import start_writer

log = logging.getLogger("rtcserver")

_converter = cattrs.Converter()


@attrs.frozen
class MovedSession:
    """A session that moves with its connection: same id, secret and numbering, so
    the client notices nothing (its RESUME is forwarded: `Sessions.moved`)."""

    id: str
    secret: str
    asked: bool
    sent: int


@attrs.frozen
class KeptSeat:
    """The connection's room stays where it is: the worker it leaves keeps a guest in
    it (connection/guests.py), reached over the link with this key."""

    worker: int
    key: str
    room: int


@attrs.frozen
class Handover:
    """What travels with the socket."""

    messages: list[str]  # read here, not acted on; the first one caused the handover
    address: str  # the client's, as this worker logged it
    identity: Identity | None  # None: not authenticated yet
    first: bool  # the first message is the connection's first (RESUME may come)
    session: MovedSession | None = None
    # The session's replay ring, newest last (as much of it as fits one datagram).
    ring: list[bytes] = attrs.field(factory=list)
    hops: int = 1  # handovers in a row: a RESUME follows its session at most MAX_HOPS
    seat: KeptSeat | None = None


_LENGTH = struct.Struct("!I")
# A session moves with its connection, and a RESUME follows it from worker to worker:
# a few hops at most in practice; past this, a stale trail is answered where it ends.
MAX_HOPS = 4


def encode(handover: Handover, limit: int = fdpass.MAX_DATAGRAM) -> bytes:
    """The header: its fields as JSON, then the messages' and the ring's bytes as they
    are (JSON would escape every quote of an SDP). Ring entries that do not fit
    `limit` are left out, oldest first (a later RESUME that needs them gets
    resume-gap, as when the ring's own limit dropped them)."""
    texts = [m.encode() for m in handover.messages]
    ring = list(handover.ring)
    fields = _converter.unstructure(attrs.evolve(handover, messages=[], ring=[]))
    while True:
        fields["sizes"] = [len(t) for t in texts]
        fields["ring_sizes"] = [len(r) for r in ring]
        meta = orjson.dumps(fields)
        size = _LENGTH.size + len(meta) + sum(map(len, texts)) + sum(map(len, ring))
        if size <= limit or not ring:
            return b"".join([_LENGTH.pack(len(meta)), meta, *texts, *ring])
        ring.pop(0)


def decode(data: bytes) -> Handover:
    (length,) = _LENGTH.unpack_from(data)
    fields = orjson.loads(data[_LENGTH.size : _LENGTH.size + length])
    offset = _LENGTH.size + length
    chunks: dict[str, list[bytes]] = {}
    for key in ("sizes", "ring_sizes"):
        chunks[key] = []
        for size in fields.pop(key):
            chunks[key].append(data[offset : offset + size])
            offset += size
    if offset != len(data):
        raise ValueError("a handover header whose sizes do not add up")
    handover = _converter.structure(fields, Handover)
    return attrs.evolve(
        handover, messages=[t.decode() for t in chunks["sizes"]], ring=chunks["ring_sizes"]
    )


def owner_of(
    state: ServerState, session: Session, message: protocol.ClientMessage, first: bool
) -> int | None:
    """The worker that must act on `message`, when it is not this one."""
    workers = state.workers
    if not workers.several:
        return None
    if state.cluster is not None and not isinstance(message, protocol.Resume):
        return None  # each worker is a node: Redis holds the rooms and the leader the names
    owner: int | None
    match message:
        case protocol.EnterRoom(room=room) if room is not None:
            owner = workers.owner(room)
        case protocol.Resume(session=session_id) if first and isinstance(session_id, str):
            # Held here (perhaps moved here), moved on from here, or its worker's.
            if session_id in state.sessions.by_id or session.hops >= MAX_HOPS:
                return None
            owner = state.sessions.moved.get(session_id, workers.session_owner(session_id))
        case protocol.Login() if state.registry.name_of(session.actor) is None:
            owner = DIRECTORY_WORKER  # (a second LOGIN is answered where the name is)
        case protocol.Relay(fields=fields) if first and opens_dialect(fields):
            owner = DIRECTORY_WORKER  # the tutorial dialect's `login`: names live there
        case _:
            return None
    return None if owner is None or owner == workers.index else owner


def refusal(state: ServerState, session: Session, message: protocol.ClientMessage) -> str | None:
    """Why this connection cannot move to another worker, or None. Its name and its
    calls live here (a LOGIN), or its room does and it asks for a name; a TLS
    stream's keys cannot leave the process."""
    registry = state.registry
    actor = session.actor
    if not isinstance(session.ws and session.ws.stream, trio.SocketStream):
        return "with TLS in rtcserver, a connection cannot move to another worker process"
    if registry.name_of(actor) is not None:
        return "a logged-in connection cannot enter a room of another worker process"
    in_room = registry.room_of(actor) is not None
    if isinstance(message, protocol.Login) and in_room and state.host_guest is None:
        return "LOGIN after entering a room of a worker process other than the directory's"
    return None


async def hand_over(
    state: ServerState, ws: WebSocket, session: Session, target: int, messages: list[str | bytes]
) -> bool:
    """Give the connection to worker `target`, with `messages` (the one that caused
    this first). True when it is gone; False when it stays and goes on here (the
    first message then got its answer: the owner is unreachable)."""
    actor = session.actor
    texts = [m for m in messages if isinstance(m, str)]
    if len(texts) < len(messages):
        reply_error(state, actor, ErrorCode.BINARY_UNSUPPORTED, "binary frames are not supported")
    # Read on to a frame boundary (a client rarely sends half a frame behind a request).
    with trio.move_on_after(state.settings.handshake_timeout):
        try:
            while not ws.at_frame_boundary():
                more = await ws.receive()
                texts.extend(m for m in more if isinstance(m, str))
        except Closed:
            return True  # gone meanwhile: nothing to hand over, the connection ends
    if not ws.at_frame_boundary():
        _unreachable(state, actor, texts[0], "no frame boundary to hand the connection over at")
        return False
    # The writer stops, and what is queued goes out now: one writer per socket.
    assert session.writer is not None
    session.writer.cancel()
    await session.writer_done.wait()
    ws.queue_texts(actor.take_mail())
    ws.queue_texts(actor.extra_frames())
    try:
        with trio.fail_after(state.settings.keepalive_timeout):
            await ws.flush()
    except (trio.TooSlowError, trio.BrokenResourceError, trio.ClosedResourceError):
        return True  # the client is not reading or gone: the connection ends here
    resumable = state.sessions.of(actor)
    room = state.registry.room_of(actor)
    kept = None
    if room is not None and state.host_guest is not None:  # a LOGIN: it keeps its room
        kept = KeptSeat(
            worker=state.workers.index, key=f"{state.workers.index}.{actor.id}", room=room
        )
    moved = None
    if resumable is not None:
        moved = MovedSession(
            id=resumable.id, secret=resumable.secret, asked=resumable.asked, sent=resumable.sent
        )
    handover = Handover(
        messages=texts,
        address=actor.address,
        identity=session.identity,
        first=session.first,
        session=moved,
        ring=list(resumable.ring) if resumable is not None else [],
        hops=session.hops + 1,
        seat=kept,
    )
    assert isinstance(ws.stream, trio.SocketStream)
    try:
        with trio.fail_after(state.settings.keepalive_timeout):  # its inbox is not read
            fd = ws.stream.socket.fileno()
            await fdpass.send(state.workers.inbox(target), encode(handover), fd)
    except (fdpass.Unreachable, ValueError, trio.TooSlowError) as failure:
        start_writer(state, ws, session)
        _unreachable(state, actor, texts[0], str(failure))
        return False
    actor.handed_over = True
    if resumable is not None:  # a RESUME of it that comes here goes on to `target`
        state.sessions.moved_to(resumable.id, target)
    if kept is not None and state.host_guest is not None:
        actor.guest = True
        state.host_guest(actor, target, kept.key)
    state.counters["handed-over"] += 1
    log_event(actor, "handed-over", worker=target)
    return True


def _unreachable(state: ServerState, actor: Actor, text: str, why: str) -> None:
    """The answer to a message whose owner cannot be reached."""
    log_event(actor, "handover-failed", why=why)
    message = protocol.decode(text)
    if isinstance(message, protocol.EnterRoom):
        # Its worker is restarting: the rooms it held are gone with it.
        actor.tell(protocol.encode(protocol.WrongRoom(reason=WrongRoomReason.NO_SUCH_ROOM)))
        return
    if isinstance(message, protocol.Resume):
        reply_error(state, actor, ErrorCode.RESUME_FAILED, f"the session's worker is away: {why}")
        return
    reply_error(
        state, actor, ErrorCode.WORKER_UNREACHABLE, f"the worker that holds this is away: {why}"
    )
