"""The guest's side of a seat in this worker's room (seats.py has the home's side and
the picture): a guest actor stands in the room for a client whose socket another
worker holds. What the room tells it goes home over the link, in order; what the
client sends comes here and is dispatched as the guest's own (`dispatch_seated`).

`serve_links` runs the link (wire/links.py) and owns every guest task: none outlives
the link, and a broken link ends the guests of that worker (their rooms hear PEERLEFT).
"""

from __future__ import annotations

import attrs
import orjson
import trio

from .. import protocol
from ..actors.actor import Actor
from ..actors.mailbox import MailboxClosed
from ..protocol import CloseCode, ErrorCode
from ..server.state import ServerState
from ..wire import links
from . import seats
from .dispatch import dispatch_seated
from .seats import AWAY, BACK, COUNT, END, GONE, LEAVE, MAIL, NAMED, OPEN, READY, TEXT, TO_HOME
from .terminate import websocket_terminate


@attrs.define(eq=False)
class Guest:
    actor: Actor
    home: int  # the worker that holds the client's socket
    key: str
    ended_by_home: bool = False
    # Its mail may go home: at once for a seat the home opened; for one kept when the
    # socket moved, once the home has adopted the seat (its READY).
    ready: trio.Event = attrs.field(factory=trio.Event)


@attrs.define(eq=False)
class Guests:
    """This worker's guests, by the key their home gave their seat."""

    state: ServerState
    nursery: trio.Nursery
    by_key: dict[str, Guest] = attrs.field(factory=dict)

    def on_record(self, source: int, kind: int, key: str, payload: bytes) -> None:
        """One record from worker `source`, acted on synchronously, in order."""
        state = self.state
        if kind in TO_HOME:
            seats.at_home(state, kind, key, payload)
            return
        guest = self.by_key.get(key)
        if kind == OPEN:
            fields = orjson.loads(payload)
            if guest is not None:  # (cannot happen: a new seat follows its old one's LEAVE)
                self._end(guest)
            actor = state.new_actor(str(fields["address"]))
            guest = Guest(actor=actor, home=source, key=key)
            guest.ready.set()
            self.by_key[key] = guest
            state.registry.label(actor, fields["name"])
            self.nursery.start_soon(self._run, guest)
            self._dispatch(guest, str(fields["text"]))
            return
        if guest is None:
            if kind == TEXT:  # its seat is gone and the home has not heard yet
                error = protocol.Error(
                    code=ErrorCode.NOT_IN_ROOM, message="not delivered: you are in no room now"
                )
                self._reply(source, key, MAIL, protocol.encode(error).encode())
            return
        registry = state.registry
        actor = guest.actor
        if kind == TEXT:
            self._dispatch(guest, payload.decode())
        elif kind == AWAY:
            away = protocol.peer_away_text(registry.named_id(actor))
            for peer in registry.peers_of(actor):
                peer.tell(away)
            self._reply(source, key, COUNT, str(len(registry.peers_of(actor))).encode())
        elif kind == BACK:
            back = protocol.peer_back_text(registry.named_id(actor))
            for peer in registry.peers_of(actor):
                peer.tell(back)
        elif kind == LEAVE:
            self._end(guest)
        elif kind == READY:
            guest.ready.set()
        elif kind == NAMED:
            registry.label(actor, payload.decode())

    def host(self, actor: Actor, home: int, key: str) -> None:
        """Keep `actor`, whose socket went to worker `home` (for its LOGIN), in its
        room as a guest: from now on it is the room's side of that client's seat."""
        state = self.state
        state.actors.discard(actor)
        state.expiries.forget(actor)
        state.sessions.end(actor)  # the session moved with the socket
        actor.resumable = None
        actor.scope = trio.CancelScope()  # its connection's task is over
        guest = Guest(actor=actor, home=home, key=key)
        self.by_key[key] = guest
        self.nursery.start_soon(self._run, guest)

    def lost(self, worker: int) -> None:
        """The link with `worker` broke: its guests depart, its clients' seats end."""
        for guest in [g for g in self.by_key.values() if g.home == worker]:
            self._end(guest)
        seats.lost(self.state, worker)

    def _dispatch(self, guest: Guest, text: str) -> None:
        dispatch_seated(self.state, guest.actor, text)
        if self.state.registry.room_of(guest.actor) is None and self.by_key.get(guest.key) is guest:
            self._end(guest)  # a refused ENTERROOM: in no room, so no seat
            self._reply(guest.home, guest.key, GONE, b"")

    def _end(self, guest: Guest) -> None:
        """The home ended the seat: the guest departs now, in the order of the records."""
        guest.ended_by_home = True
        if self.by_key.get(guest.key) is guest:
            del self.by_key[guest.key]
        self._flush(guest)
        websocket_terminate(self.state, guest.actor)
        guest.actor.scope.cancel()

    def _flush(self, guest: Guest) -> None:
        actor = guest.actor
        for data in actor.take_mail():
            if not self._reply(guest.home, guest.key, MAIL, data):
                actor.kick(CloseCode.SLOW_CONSUMER, "the link to its worker is behind", "link")
        actor.written()

    async def _run(self, guest: Guest) -> None:
        """The guest's writer: what the room tells it goes to its home, in order."""
        actor = guest.actor
        try:
            with actor.scope:
                await guest.ready.wait()
                while True:
                    try:
                        await actor.mailbox.wait()
                    except MailboxClosed:
                        return
                    self._flush(guest)
        finally:
            if not guest.ended_by_home:
                # Ended here (an admin's close, a limit): the home closes with its code.
                if self.by_key.get(guest.key) is guest:
                    del self.by_key[guest.key]
                self._flush(guest)
                websocket_terminate(self.state, actor)
                code = actor.close_code or CloseCode.GOING_AWAY
                ending = {
                    "code": int(code),
                    "reason": actor.close_reason,
                    "cause": actor.close_cause,
                }
                self._reply(guest.home, guest.key, END, orjson.dumps(ending))

    def _reply(self, home: int, key: str, kind: int, payload: bytes) -> bool:
        links = self.state.links
        return links is not None and links.send(home, kind, key, payload)


async def serve_links(state: ServerState) -> None:
    """The links to the other workers, and the guests they bring (children here)."""
    workers = state.workers
    async with trio.open_nursery() as nursery:
        guests = Guests(state=state, nursery=nursery)
        state.links = links.Links(workers.index, workers.link, guests.on_record, guests.lost)
        state.host_guest = guests.host
        try:
            await state.links.serve(workers.link(workers.index))
        finally:
            for guest in list(guests.by_key.values()):
                guests._end(guest)
            state.links = state.host_guest = None
            nursery.cancel_scope.cancel()
