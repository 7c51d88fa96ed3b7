"""`websocket_terminate`: the `finally` of every connection, which always runs.

It takes the actor out of its room and its name and tells the peers (PEERLEFT),
synchronously, before the socket is closed."""

from __future__ import annotations

from .. import protocol
from ..actors.actor import Actor
from ..directory import phone, tutorial
from ..protocol import CloseCode
from ..rooms.peers import Peer
from ..rooms.registry import Departure
from ..server.state import ServerState
from .record import log_event


def websocket_terminate(state: ServerState, actor: Actor) -> None:
    """The registration dies with the actor: leave the room, tell who remains."""
    state.actors.discard(actor)
    state.expiries.forget(actor)
    state.sessions.end(actor)
    if actor.close_code is CloseCode.SLOW_CONSUMER:
        state.counters["mailbox-overflow"] += 1
    phone.unsubscribe(state, actor)
    tutorial.closed(state, actor)  # while its name still finds the partner's
    if actor.seat is not None:
        actor.seat.vacate()  # its seat in another worker's room goes with it
    departure, name = state.registry.forget(actor)
    announce_departure(actor, departure)
    if name is not None:
        phone.logout(state, name)
    actor.mailbox.close()


def announce_departure(actor: Actor, departure: Departure[Peer] | None) -> None:
    if departure is None:
        return
    text = protocol.peer_left_text(departure.left_id)
    for peer in departure.remaining:
        peer.tell(text)
    log_event(actor, "room-left", departure.room)
