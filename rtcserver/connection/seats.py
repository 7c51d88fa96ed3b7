"""Seats in another worker's rooms, for connections that cannot move there.

With several workers a socket is handed to the worker that owns what it asks for
(handover.py). A logged-in user cannot be: its name, directory subscription and calls
live on the directory worker. When it enters a room another worker owns, that worker
holds a *guest* actor in the room for it, and the two talk over the local link
(wire/links.py):

    home (socket, name, session)              guest's worker (the room)
      ENTERROOM, relays, room messages  ──T──▶  dispatched as the guest's own
      lost socket, parked / resumed     ──W/B─▶  PEERAWAY / PEERBACK to the room
      left the room (any way)           ──L──▶  the guest departs: PEERLEFT
      the client's mail  ◀──M──  everything the room tells the guest, in order
      ended with a close code ◀──E──  kicked there (admin, limits): the home closes
      no longer in a room  ◀──G──  a refused ENTERROOM leaves it in none
      the room's size  ◀──C──  when the home parks, for its RESUMED
      seat adopted (after a LOGIN moved the socket) ──R──▶  the guest's mail may flow
      logged in while seated            ──N──▶  the room shows the name

Records of one seat go over one link each way, so both directions keep their order.
A broken link ends the seats on it: the guests depart, and each home client is told
with ERROR `worker-unreachable` that it is in no room now (nothing is lost silently).
"""

from __future__ import annotations

import logging

import attrs
import orjson

from ..actors.actor import Actor
from ..protocol import CloseCode, ErrorCode
from ..server.state import ServerState
from .record import log_event, reply_error
from .terminate import announce_departure

log = logging.getLogger("rtcserver")

# Home to guest.
OPEN, TEXT, AWAY, BACK, LEAVE, READY, NAMED = 1, 2, 3, 4, 5, 10, 11
# Guest to home.
MAIL, END, GONE, COUNT = 6, 7, 8, 9
TO_HOME = frozenset({MAIL, END, GONE, COUNT})


@attrs.define(eq=False)
class RemoteSeat:
    """The home's handle on its actor's seat in worker `worker`'s room `room`."""

    state: ServerState
    actor: Actor
    worker: int
    key: str
    room: int
    peers: int = 0

    def forward(self, text: str) -> bool:
        return self._send(TEXT, text.encode())

    def vacate(self) -> None:
        """The actor leaves the room (for another, or for good): its guest departs."""
        self._send(LEAVE, b"")
        self.drop()

    def away(self) -> None:
        self._send(AWAY, b"")

    def back(self) -> None:
        self._send(BACK, b"")

    def named(self, name: str) -> None:
        """It logged in: the room shows its name from now on, as on one worker."""
        self._send(NAMED, name.encode())

    def drop(self) -> None:
        """Forget the seat here only (its guest is gone already)."""
        if self.actor.seat is self:
            self.actor.seat = None
        if self.state.seated.get(self.key) is self.actor:
            del self.state.seated[self.key]

    def _send(self, kind: int, payload: bytes) -> bool:
        links = self.state.links
        return links is not None and links.send(self.worker, kind, self.key, payload)


def wanted(state: ServerState, actor: Actor) -> bool:
    """Whether `actor` enters another worker's rooms by a seat there: its name is here."""
    return state.links is not None and state.registry.name_of(actor) is not None


def take_seat(state: ServerState, actor: Actor, worker: int, room: int, text: str) -> None:
    """The logged-in `actor` enters `room` of worker `worker` (its ENTERROOM: `text`)."""
    if actor.seat is not None:
        actor.seat.vacate()  # one room at a time, as on one worker
    key = f"{state.workers.index}.{actor.id}"
    seat = RemoteSeat(state=state, actor=actor, worker=worker, key=key, room=room)
    name = state.registry.name_of(actor)
    opening = orjson.dumps({"address": actor.address, "name": name, "text": text})
    if not seat._send(OPEN, opening):
        _unreachable(state, actor, worker)
        return
    # A room of this worker's it was in is left now, as an ENTERROOM leaves it.
    announce_departure(actor, state.registry.depart(actor))
    actor.seat = seat
    state.seated[key] = actor
    log_event(actor, "seat-taken", room, worker=worker)


def adopt_seat(state: ServerState, actor: Actor, worker: int, key: str, room: int) -> None:
    """A connection handed over with its room kept on `worker` (its LOGIN came here)."""
    seat = RemoteSeat(state=state, actor=actor, worker=worker, key=key, room=room)
    actor.seat = seat
    state.seated[key] = actor
    # Its guest holds the room's mail until the seat is known here.
    if not seat._send(READY, b""):
        _unreachable(state, actor, worker)


def forward(state: ServerState, actor: Actor, text: str) -> None:
    """A message for the room of `actor`'s seat; the client learns if it cannot go."""
    seat = actor.seat
    assert seat is not None
    if not seat.forward(text):
        _unreachable(state, actor, seat.worker)


def _seat_of(actor: Actor) -> RemoteSeat | None:
    seat = actor.seat
    assert seat is None or isinstance(seat, RemoteSeat)
    return seat


def _unreachable(state: ServerState, actor: Actor, worker: int) -> None:
    seat = _seat_of(actor)
    if seat is not None and seat.worker == worker:
        seat.drop()
    reply_error(
        state,
        actor,
        ErrorCode.WORKER_UNREACHABLE,
        f"the worker process that holds the room (worker {worker}) cannot be reached; "
        "you are in no room now",
    )


# ------------------------------------------------------------------ the home's side


def at_home(state: ServerState, kind: int, key: str, payload: bytes) -> None:
    actor = state.seated.get(key)
    if actor is None:
        return  # the home connection is gone: its LEAVE is on its way
    seat = _seat_of(actor)
    match kind:
        case 6:  # MAIL
            actor.tell(payload.decode())
        case 7:  # END
            if seat is not None:
                seat.drop()
            ending = orjson.loads(payload)
            actor.kick(CloseCode(ending["code"]), str(ending["reason"]), str(ending["cause"]))
        case 8:  # GONE
            if seat is not None:
                seat.drop()
        case 9:  # COUNT
            if seat is not None:
                seat.peers = int(payload)


def lost(state: ServerState, worker: int) -> None:
    """Worker `worker`'s link broke: the seats there are gone, and their clients told."""
    for actor in [a for a in state.seated.values() if a.seat and a.seat.worker == worker]:
        _unreachable(state, actor, worker)
