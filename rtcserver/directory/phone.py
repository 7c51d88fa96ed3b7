"""Calling people by name: the thin shell around `calls.Switchboard` and registry names.

Every decision about calls is the switchboard's (pure, in `calls.py`); every decision
about who holds a name is the registry's. This module only carries out what they
return, in order, synchronously: `Send` becomes a `tell`, `CreateRoom` a private room,
`PresenceChanged` a directory update. The ring timer is a permanent service child.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol, cast

import orjson
import trio

from .. import protocol
from ..actors.actor import Actor
from ..protocol import ErrorCode
from ..rooms.peers import Peer
from ..rooms.registry import Registry
from ..security.auth import Identity
from ..settings import Settings
from ..wire import logsafe
from . import calls
from .presence import Directory, Subscriber


class NameService(Protocol):
    """Names and calls decided elsewhere: the cluster's leader (`cluster.names.Names`)."""

    def login(self, actor: Actor, name: str) -> Awaitable[None]: ...

    def logout(self, name: str) -> None: ...

    def call_control(self, actor: Actor, name: str, kind: str, fields: dict[str, Any]) -> None: ...


class PhoneHost(Protocol):
    """What calls by name need of the server (`server.state.ServerState`)."""

    @property
    def settings(self) -> Settings: ...

    @property
    def registry(self) -> Registry[Peer]: ...

    @property
    def presence(self) -> Directory: ...

    @property
    def switchboard(self) -> calls.Switchboard: ...

    @property
    def names(self) -> NameService | None:
        """In cluster mode, the leader's name service; None on one node."""

    def presence_changed(self) -> None: ...

    def presence_event(self) -> trio.Event: ...

    def ring_timer_changed(self) -> None: ...

    def ring_timer_event(self) -> trio.Event: ...


log = logging.getLogger("rtcserver")


def login(
    state: PhoneHost, actor: Actor, requested: object, identity: Identity
) -> Callable[[], Awaitable[None]] | None:
    """LOGIN: claim a name (checked against the authenticated identity, if any). In
    cluster mode the leader decides whether it is free: the reader awaits what this
    returns (cluster/names.py)."""

    def refuse(reason: str) -> Callable[[], Awaitable[None]] | None:
        actor.tell(protocol.encode(protocol.LoginRefused(reason=reason)))
        return None

    problem = name_refusal(state, actor, requested, identity)
    if problem is not None:
        return refuse(problem)
    assert isinstance(requested, str)  # name_refusal refuses anything else
    names = state.names
    if names is not None:
        return lambda: names.login(actor, requested)
    taken = claim_name(state, actor, requested)
    if taken is not None:
        return refuse(taken)
    log.info(
        "conn=%d addr=%s event=login user=%s", actor.id, actor.address, logsafe.clean(requested)
    )
    actor.tell(protocol.encode(protocol.LoginOk(name=requested)))
    if actor.seat is not None:
        actor.seat.named(requested)  # its room is another worker's: it shows the name
    subscribe(state, actor)
    apply(state, state.switchboard.online(requested))  # the directory: a join
    return None


def name_refusal(
    state: PhoneHost, actor: Actor, requested: object, identity: Identity
) -> str | None:
    """Why `actor` may not log in as `requested` (one rule for LOGIN and the tutorial
    dialect's `login`: one namespace), or None if it may try to claim it."""
    if not isinstance(requested, str):
        return "invalid name: `name` must be a string"
    problem = calls.validate_name(requested)
    if problem is not None:
        return f"invalid name: {problem}"
    refusal = identity.login_refusal(requested)
    if refusal is not None:
        return refusal
    current = state.registry.name_of(actor)
    if current is not None:
        return f"already logged in as {current}"
    return None


def claim_name(state: PhoneHost, actor: Actor, name: str) -> str | None:
    """Register `name` for `actor` on this node; the refusal if someone holds it (or a
    name that looks like it), else None."""
    registry = state.registry
    if not registry.register_name(name, actor):
        if registry.actor_named(name) is None and registry.name_like(name):
            return "name taken: it looks like the name of someone logged in"
        return "name taken"
    return None


def subscribe(state: PhoneHost, actor: Actor) -> None:
    """A user just logged in: the writer now takes the directory's news too, starting
    with the whole directory (USERS), when it next writes."""
    if state.settings.directory and actor.presence is None:
        actor.presence = state.presence.subscribe(actor.mailbox.nudge)
        actor.mailbox.nudge()


def unsubscribe(state: PhoneHost, actor: Actor) -> None:
    if actor.presence is not None:
        state.presence.unsubscribe(cast(Subscriber, actor.presence))  # `subscribe` set it
        actor.presence = None


def presence_changed(state: PhoneHost, name: str, status: calls.Status) -> None:
    """Record a change; the publisher sends it with the others of its interval."""
    if not state.settings.directory:
        return
    if status is calls.Status.OFFLINE:
        state.presence.remove(name)
    else:
        state.presence.set(name, status.value)
    state.presence_changed()


def logout(state: PhoneHost, name: str) -> None:
    """The connection holding `name` has ended (its registrations are already gone)."""
    if state.names is not None:
        return state.names.logout(name)
    apply(state, state.switchboard.offline(name))
    state.ring_timer_changed()


def call_control(state: PhoneHost, actor: Actor, kind: str, fields: dict[str, Any]) -> None:
    """CALL, ACCEPT, REJECT, CANCEL, HANGUP from a logged-in connection."""
    name = state.registry.name_of(actor)
    assert name is not None
    if state.names is not None:  # the cluster's leader decides (cluster/names.py)
        return state.names.call_control(actor, name, kind, fields)
    board = state.switchboard
    now = trio.current_time()
    apply(state, board.expire(now))  # a late ACCEPT must see the timeout (exact deadlines)
    if kind == "CALL":
        to, media = fields.get("to"), fields.get("media", "video")
        if not isinstance(to, str) or not isinstance(media, str):
            _error(actor, ErrorCode.BAD_TYPE, "CALL needs string `to` and `media`")
            return
        apply(state, board.call(name, to, media, now))
        state.ring_timer_changed()
        return
    call_id = fields.get("call")
    if not isinstance(call_id, str):
        _error(actor, ErrorCode.BAD_TYPE, f"{kind} needs the string `call` id it is about")
        return
    apply(state, board.respond(kind, name, call_id))


def apply(state: PhoneHost, effects: Iterable[calls.Effect]) -> None:
    """Carry out the switchboard's effects, in order."""
    registry = state.registry
    for effect in effects:
        match effect:
            case calls.Send(to=to, message=message):
                actor = registry.actor_named(to)
                if actor is not None:
                    actor.tell(orjson.dumps(dict(message)).decode())
            case calls.PresenceChanged(name=name, status=status):
                presence_changed(state, name, status)
            case calls.CreateRoom(call=call_id, caller=caller, callee=callee):
                parties = tuple(registry.actor_named(n) for n in (caller, callee))
                members = tuple(a for a in parties if a is not None)
                for member in members:
                    seat = getattr(member, "seat", None)  # (a cluster proxy has none)
                    if seat is not None:
                        seat.vacate()  # its room on another worker is left
                room, departures = registry.create_private(members)
                for departure in departures:
                    left = protocol.peer_left_text(departure.left_id)
                    for peer in departure.remaining:
                        peer.tell(left)
                log.info("event=call-room call=%s room=%d", call_id, room)
                apply(state, state.switchboard.room_created(call_id, room))
            case calls.CloseRoom(room=room):
                # The parties already heard HANGUP (or PEERLEFT): leave without a word more.
                for member in registry.members(room):
                    registry.depart(member)


async def ring_timer(state: PhoneHost) -> None:
    """Sleep until the next ring deadline, then time the due calls out. Runs forever,
    as a permanent child of the supervisor."""
    while True:
        deadline = state.switchboard.next_deadline()
        changed = state.ring_timer_event()
        with trio.move_on_at(deadline if deadline is not None else float("inf")):
            await changed.wait()
            continue
        apply(state, state.switchboard.expire(trio.current_time()))


async def presence_publisher(state: PhoneHost) -> None:
    """Publish the directory's changes: seal them into a version and wake every
    subscriber's writer, at most once per interval. The interval grows with the
    subscribers (`presence_rate` frames per second in all), so presence work per
    second is bounded whatever the login rate; a change after a quiet spell goes out
    at once. Runs forever, as a permanent child of the supervisor."""
    settings = state.settings
    directory = state.presence
    last = -float("inf")
    while True:
        while not directory.pending:  # a change made before we looked is not lost
            await state.presence_event().wait()
        interval = max(settings.presence_interval, directory.subscribers / settings.presence_rate)
        await trio.sleep_until(last + interval)
        last = trio.current_time()
        for subscriber in directory.seal():
            subscriber.wake()


def _error(actor: Actor, code: ErrorCode, message: str) -> None:
    actor.tell(protocol.encode(protocol.Error(code=code, message=message)))
