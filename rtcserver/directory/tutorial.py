"""The shell that carries out the tutorial dialect's decisions (`dialect.py`) for an actor.

A connection whose first message is a lower-case `login` speaks the dialect for the
rest of its life. Its names live in the same registry as LOGIN names (one namespace,
`phone.name_refusal` and `phone.claim_name`), so a phone-page user and a dialect user
can never hold the same or look-alike names; a dialect user shows in the directory as
`available` or `in-call` (it is not subscribed to it: its clients would not read it).
Relays go straight to the named peer's mailbox (`tell`: the same byte limits). Calls
between the two flows are refused with an error naming why (docs/PROTOCOL.md).
"""

from __future__ import annotations

import collections
import logging
from typing import Any, Protocol

import orjson

from ..actors.actor import Actor
from ..rooms.peers import Peer
from ..security.auth import Identity
from ..wire import logsafe
from . import calls, dialect, phone

log = logging.getLogger("rtcserver")


class TutorialHost(phone.PhoneHost, Protocol):
    """What the dialect needs of the server (`server.state.ServerState`)."""

    @property
    def dialect_sessions(self) -> dict[Peer, dialect.Session]: ...

    @property
    def counters(self) -> collections.Counter[str]: ...


def opens(message: dict[str, Any]) -> bool:
    """Whether a connection's first message (already decoded) opens the dialect."""
    return dialect.opens_dialect(message)


def speaks_dialect(state: TutorialHost, name: object) -> bool:
    """Whether `name` is logged in from a dialect connection (a phone CALL cannot ring it)."""
    if not isinstance(name, str):
        return False
    actor = state.registry.actor_named(name)
    return actor is not None and actor in state.dialect_sessions


def handle(state: TutorialHost, actor: Actor, text: str, identity: Identity) -> None:
    """One text frame from a dialect connection, acted on synchronously."""
    session = state.dialect_sessions.get(actor)
    if session is None:
        session = state.dialect_sessions[actor] = dialect.Session()
    try:
        message = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        # The original server ignores it; an answer naming the problem is additive.
        _tell(actor, dialect.error(f"not valid JSON: {exc.msg}").message)
        state.counters["error:dialect"] += 1
        return
    was_in_call = session.in_call
    for decision in session.handle(message):
        match decision:
            case dialect.Reply(message=reply):
                if reply["type"] == "error":
                    state.counters["error:dialect"] += 1
                _tell(actor, reply)
            case dialect.Login(name=name):
                _login(state, actor, session, name, identity)
            case dialect.Relay(name=peer, message=relayed):
                _relay(state, actor, session, peer, relayed)
    _presence(state, session, was_in_call)


def closed(state: TutorialHost, actor: Actor) -> None:
    """The dialect connection has ended (its name is still registered): its partner
    hears `leave`, and the directory loses it."""
    session = state.dialect_sessions.pop(actor, None)
    if session is None or session.name is None:
        return
    for relay in session.closed():
        peer = state.registry.actor_named(relay.name)
        peer_session = state.dialect_sessions.get(peer) if peer is not None else None
        if peer is not None and peer_session is not None:
            _tell(peer, relay.message)
            _left(state, peer_session, session.name)
    phone.presence_changed(state, session.name, calls.Status.OFFLINE)


def _login(
    state: TutorialHost, actor: Actor, session: dialect.Session, name: str, identity: Identity
) -> None:
    if state.names is not None:
        refusal: str | None = "the tutorial dialect is served on one node only (not with --redis)"
    else:
        refusal = phone.name_refusal(state, actor, name, identity)
        if refusal is None:
            refusal = phone.claim_name(state, actor, name)
    if refusal is not None:
        _tell(actor, {"type": "login", "success": False})
        _tell(actor, dialect.error(f"login: {refusal}").message)  # additive: why
        state.counters["error:dialect"] += 1
        return
    session.logged_in(name)
    log.info(
        "conn=%d addr=%s event=login user=%s dialect=tutorial",
        actor.id,
        actor.address,
        logsafe.clean(name),
    )
    _tell(actor, {"type": "login", "success": True})
    phone.presence_changed(state, name, calls.Status.AVAILABLE)


def _relay(
    state: TutorialHost,
    actor: Actor,
    session: dialect.Session,
    peer_name: str,
    message: dict[str, Any],
) -> None:
    kind = message["type"]
    sender = session.name
    assert sender is not None  # the dialect relays only for a logged-in session
    peer = state.registry.actor_named(peer_name)
    peer_session = state.dialect_sessions.get(peer) if peer is not None else None
    if peer is None or peer_session is None:
        session.undelivered(peer_name)
        if peer is None:
            # The original server does nothing; the error is additive. "Not logged in"
            # whether the name never existed or has gone: no user enumeration.
            why = f"{kind} not delivered: no user named {peer_name!r} is logged in"
        else:
            why = (
                f"{kind} not delivered: {peer_name!r} is logged in from the phone page "
                "(LOGIN), which calls with CALL/ACCEPT, not offers by name"
            )
        _tell(actor, dialect.error(why).message)
        state.counters["error:dialect"] += 1
        return
    peer_was_in_call = peer_session.in_call
    _tell(peer, message)
    state.counters["relayed"] += 1
    if kind == "offer":
        peer_session.offered_by(sender)
        log.info(
            "conn=%d addr=%s event=dialect-offer user=%s to=%s",
            actor.id,
            actor.address,
            logsafe.clean(sender),
            logsafe.clean(peer_name),
        )
    elif kind == "leave":
        peer_session.left_by(sender)
    _presence(state, peer_session, peer_was_in_call)


def _left(state: TutorialHost, session: dialect.Session, peer: str) -> None:
    was_in_call = session.in_call
    session.left_by(peer)
    _presence(state, session, was_in_call)


def _presence(state: TutorialHost, session: dialect.Session, was_in_call: bool) -> None:
    """The directory shows a dialect user `in-call` while it has a partner."""
    if session.name is None or session.in_call == was_in_call:
        return
    status = calls.Status.IN_CALL if session.in_call else calls.Status.AVAILABLE
    phone.presence_changed(state, session.name, status)


def _tell(peer: Peer, message: dict[str, Any]) -> None:
    peer.tell(orjson.dumps(message).decode())
