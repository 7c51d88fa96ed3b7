"""Calling people by name: a sans-I/O switchboard.

This module owns every rule about calls between logged-in users: who may call whom,
what each side is told, when a ringing call gives up, and whether a user is
`available` or `in-call`. Like h11's `_state.py`, it does no I/O, never awaits, never
reads a clock and draws no random numbers. The caller passes the time in, call ids come
from an injected factory, and every decision comes back as a list of *effects* (`Send`,
`CreateRoom`, `CloseRoom`, `PresenceChanged`). The I/O shell carries them out in order.
Because every change to call state happens here, you can read the whole life of a call on
one screen and test it without a socket.

Long because it is one table-driven state machine (with its effect types) that
must be read whole to check a transition, as h11's `_state.py` is.
"""

from __future__ import annotations

import enum
import heapq
import unicodedata
from collections.abc import Callable, Mapping
from typing import Final, Protocol, TypeAlias, final

import attrs

from ..security import lookalike

# --- names -------------------------------------------------------------------------

NAME_MAX_LENGTH: Final = 32
_NAME_PUNCTUATION: Final = frozenset("._-")
_LETTER: Final = frozenset({"Lu", "Ll", "Lt", "Lm", "Lo"})
_MARK: Final = frozenset({"Mn", "Mc"})


def validate_name(name: str) -> str | None:
    """Return the reason `name` cannot be a login name, or None if it can.

    Other people read these names in their directory, so each name must be legible and
    must identify one person. A name is 1-32 code points long. It may contain letters of
    any script, decimal digits, `.`, `_` and `-`, and combining marks directly after a
    letter, so that accents and Indic vowel signs work. It must start with a letter or a
    digit. It must already be in Unicode NFC, so two names that look alike are the same
    string. Spaces, symbols, control characters and format characters are refused. The
    format characters include zero-width joiners and bidi overrides, which can make one
    name pass for another. Compatibility characters (full-width letters, ligatures:
    NFKC differs from NFC) are refused, and so are names that mix scripts
    (`lookalike.is_mixed_script`: Latin with a Cyrillic `а`). Whether a name looks like
    one already logged in is the registry's call (TR39 skeletons). Names are plain
    text and never HTML: clients must insert them with `textContent`.
    """
    if not name:
        return "name is empty"
    if unicodedata.normalize("NFC", name) != name:
        return "name is not in Unicode NFC form"
    if len(name) > NAME_MAX_LENGTH:
        return f"name is longer than {NAME_MAX_LENGTH} characters"
    previous = ""
    for position, char in enumerate(name):
        category = unicodedata.category(char)
        if category in _LETTER or category == "Nd":
            allowed = True
        elif category in _MARK:
            allowed = previous in _LETTER or previous in _MARK
        else:
            allowed = char in _NAME_PUNCTUATION and position > 0
        if not allowed:
            # Quote the code point, not the character: it may be invisible.
            return f"character U+{ord(char):04X} is not allowed at position {position + 1}"
        previous = category
    for position, char in enumerate(name):
        if unicodedata.normalize("NFKC", char) != char:
            # Full-width letters, ligatures: each has a plain form it passes for.
            return (
                f"character U+{ord(char):04X} at position {position + 1} is a compatibility "
                "character (full-width, ligature...): use its plain form"
            )
    if lookalike.is_mixed_script(name):
        used = ", ".join(sorted(s.title() for s in lookalike.scripts(name)))
        return f"name mixes scripts ({used}): use one"
    return None


# --- effects: what the shell must do ---------------------------------------------------

Message: TypeAlias = Mapping[str, str | int]
"""One JSON object for a client. The shell encodes it; nobody mutates it."""


@final
@attrs.frozen
class Send:
    """Deliver `message` to the logged-in user `to` (through their mailbox)."""

    to: str
    message: Message


@final
@attrs.frozen
class CreateRoom:
    """Create a private room holding exactly `caller` and `callee`, then report its
    number with `Switchboard.room_created(call, room)`."""

    call: str
    caller: str
    callee: str


@final
@attrs.frozen
class CloseRoom:
    """The call that owned `room` is over: take both members out of it."""

    call: str
    room: int


class Status(enum.StrEnum):
    AVAILABLE = "available"
    IN_CALL = "in-call"  # ringing (either side) or talking
    OFFLINE = "offline"


@final
@attrs.frozen
class PresenceChanged:
    """Tell the directory that `name` is now `status` (push PRESENCE updates)."""

    name: str
    status: Status


Effect: TypeAlias = Send | CreateRoom | CloseRoom | PresenceChanged


# --- the state machine -----------------------------------------------------------------

MEDIA: Final = frozenset({"audio", "video", "data"})


class CallErrorCode(enum.StrEnum):
    """The `code` of an ERROR about calls. Like protocol.ErrorCode, none closes the
    connection."""

    SELF_CALL = "self-call"  # CALL naming yourself
    BAD_MEDIA = "bad-media"  # CALL with media other than audio, video, data
    UNKNOWN_USER = "unknown-user"  # CALL to a name nobody online has
    ALREADY_IN_CALL = "already-in-call"  # CALL while your own call rings or is active
    NO_SUCH_CALL = "no-such-call"  # an id that is unknown, or a call you are not part of
    CALL_ENDED = "call-ended"  # your last call, which has just ended (the race losers)
    ALREADY_ACCEPTED = "already-accepted"  # ACCEPT, REJECT or CANCEL after the answer
    NOT_CALLEE = "not-callee"  # the caller tried ACCEPT or REJECT
    NOT_CALLER = "not-caller"  # the callee tried CANCEL


class CallState(enum.Enum):
    RINGING = "ringing"
    ACTIVE = "active"
    ENDED = "ended"  # never stored: an ended call is forgotten


class Role(enum.Enum):
    CALLER = "caller"
    CALLEE = "callee"


class Action(enum.Enum):
    ACCEPT = "ACCEPT"
    REJECT = "REJECT"
    CANCEL = "CANCEL"
    HANGUP = "HANGUP"
    LEAVE = "LEAVE"  # the user went offline: their connection ended


RINGING, ACTIVE, ENDED = CallState.RINGING, CallState.ACTIVE, CallState.ENDED
CALLER, CALLEE = Role.CALLER, Role.CALLEE

# Everything a party can do to a call: (state, action, who) -> (next state, what the
# *other* party is told). Any missing combination is refused; `_refusal` names the error.
# HANGUP and LEAVE mean "I am done with this call" in every state, so while the call
# is ringing they act as CANCEL (from the caller) or REJECT (from the callee).
_TRANSITIONS: Final[dict[tuple[CallState, Action, Role], tuple[CallState, str | None]]] = {
    (RINGING, Action.ACCEPT, CALLEE): (ACTIVE, None),  # CALLACCEPTED once the room exists
    (RINGING, Action.REJECT, CALLEE): (ENDED, "REJECTED"),
    (RINGING, Action.HANGUP, CALLEE): (ENDED, "REJECTED"),
    (RINGING, Action.LEAVE, CALLEE): (ENDED, "REJECTED"),
    (RINGING, Action.CANCEL, CALLER): (ENDED, "CANCELLED"),
    (RINGING, Action.HANGUP, CALLER): (ENDED, "CANCELLED"),
    (RINGING, Action.LEAVE, CALLER): (ENDED, "CANCELLED"),
    (ACTIVE, Action.HANGUP, CALLER): (ENDED, "HANGUP"),
    (ACTIVE, Action.HANGUP, CALLEE): (ENDED, "HANGUP"),
    (ACTIVE, Action.LEAVE, CALLER): (ENDED, "HANGUP"),
    (ACTIVE, Action.LEAVE, CALLEE): (ENDED, "HANGUP"),
}


def _refusal(state: CallState, action: Action) -> CallErrorCode:
    """The error code for an action that `_TRANSITIONS` does not allow."""
    if state is ACTIVE:
        return CallErrorCode.ALREADY_ACCEPTED  # a late ACCEPT, REJECT or CANCEL
    return CallErrorCode.NOT_CALLER if action is Action.CANCEL else CallErrorCode.NOT_CALLEE


@final
@attrs.frozen
class Call:
    """A snapshot of one live call. `deadline` is set while ringing; `room` once the
    shell has created the private room."""

    id: str
    caller: str
    callee: str
    media: str
    state: CallState
    deadline: float | None = None
    room: int | None = None

    def role_of(self, user: str) -> Role | None:
        if user == self.caller:
            return CALLER
        return CALLEE if user == self.callee else None

    def other(self, user: str) -> str:
        return self.callee if user == self.caller else self.caller


@final
@attrs.frozen
class SwitchboardStatistics:
    online: int
    ringing: int
    active: int


class NotOnline(LookupError):
    """The shell spoke for a user who is not logged in. That is a bug in the shell,
    because only a logged-in connection has a name to speak for."""


def _message(type_: str, **fields: str | int) -> Message:
    return {"type": type_, **fields}


def _error(user: str, code: CallErrorCode, text: str, **fields: str) -> Send:
    """An ERROR for `user`, shaped like protocol.py's: `code` for programs, `message`
    for people."""
    return Send(user, _message("ERROR", code=code.value, message=text, **fields))


class CallWatcher(Protocol):
    """Told of each call's life as it happens (the webhooks, `server/events.py`).
    Synchronous; it only takes notes. `outcome` is what the other party was told
    (REJECTED, CANCELLED, HANGUP) or NOANSWER."""

    def rang(self, call: Call) -> None: ...
    def answered(self, call: Call) -> None: ...
    def ended(self, call: Call, outcome: str) -> None: ...


@final
@attrs.define
class Switchboard:
    """All calls and all logged-in users. Every method returns effects, in order.

    A user takes part in at most one call at a time, ringing or active, and is
    `in-call` for that whole time. A user who is not in a call is `available`.
    """

    ring_timeout: float = attrs.field(kw_only=True, validator=attrs.validators.gt(0))
    new_id: Callable[[], str] = attrs.field(kw_only=True)
    _online: set[str] = attrs.field(init=False, factory=set)
    _calls: dict[str, Call] = attrs.field(init=False, factory=dict)
    _call_of: dict[str, str] = attrs.field(init=False, factory=dict)
    # The last call each user took part in. Remembering it lets a late ACCEPT get a
    # precise "call-ended" instead of "no-such-call". The memory is bounded by the number
    # of users online.
    _last_ended: dict[str, str] = attrs.field(init=False, factory=dict)
    # (deadline, call id) of every call that rang, a heap: `expire` and `next_deadline`
    # cost O(log n) per call, not a scan of all calls. Entries of calls that were
    # answered or ended meanwhile are stale, and dropped when they reach the top.
    _deadlines: list[tuple[float, str]] = attrs.field(init=False, factory=list)
    watcher: CallWatcher | None = attrs.field(default=None, kw_only=True)

    # --- users coming and going --------------------------------------------------------

    def online(self, name: str) -> list[Effect]:
        """`name` has logged in (the registry has just registered it)."""
        if name in self._online:
            raise ValueError(f"{name!r} is already online")
        self._online.add(name)
        return [PresenceChanged(name, Status.AVAILABLE)]

    def offline(self, name: str) -> list[Effect]:
        """`name`'s connection has ended. The user leaves their call as if they had hung
        up. Calling this more than once is harmless, so a `finally` block can call it."""
        if name not in self._online:
            return []
        self._online.discard(name)
        self._last_ended.pop(name, None)
        effects: list[Effect] = []
        if name in self._call_of:
            effects += self._act(self._calls[self._call_of[name]], name, Action.LEAVE)
        effects.append(PresenceChanged(name, Status.OFFLINE))
        return effects

    # --- what users ask for ----------------------------------------------------------------

    def call(self, caller: str, callee: str, media: str, now: float) -> list[Effect]:
        """CALL: ring `callee`. The call rings until `now + ring_timeout`.

        The checks run in this order, and the first one that fails answers: calling
        yourself, unknown media, a callee who is not online, a busy callee (BUSY), a
        caller who is already in a call. The busy callee comes before the busy caller
        because of glare. If two users call each other at once, the CALL that
        arrives first rings, and the second caller gets BUSY, which already sits behind
        the INCOMINGCALL it can still accept.
        """
        self._require_online(caller)
        if callee == caller:
            return [_error(caller, CallErrorCode.SELF_CALL, "you cannot call yourself", to=callee)]
        if media not in MEDIA:
            text = f"media must be one of {', '.join(sorted(MEDIA))}"
            return [_error(caller, CallErrorCode.BAD_MEDIA, text, to=callee)]
        if callee not in self._online:
            # Same answer for "never existed" and "logged out": no user enumeration.
            return [_error(caller, CallErrorCode.UNKNOWN_USER, "no such user online", to=callee)]
        if callee in self._call_of:
            return [Send(caller, _message("BUSY", to=callee))]
        if caller in self._call_of:
            text = "finish your current call first"
            current = self._call_of[caller]
            return [_error(caller, CallErrorCode.ALREADY_IN_CALL, text, to=callee, call=current)]

        call_id = self.new_id()
        if call_id in self._calls:
            raise RuntimeError("the call id factory repeated itself")
        deadline = now + self.ring_timeout
        self._calls[call_id] = Call(call_id, caller, callee, media, RINGING, deadline)
        if self.watcher is not None:
            self.watcher.rang(self._calls[call_id])
        heapq.heappush(self._deadlines, (deadline, call_id))
        self._call_of[caller] = self._call_of[callee] = call_id
        return [
            Send(callee, _message("INCOMINGCALL", **{"from": caller}, call=call_id, media=media)),
            Send(caller, _message("RINGING", call=call_id)),
            PresenceChanged(caller, Status.IN_CALL),
            PresenceChanged(callee, Status.IN_CALL),
        ]

    def respond(self, kind: str, user: str, call_id: str) -> list[Effect]:
        """ACCEPT, REJECT, CANCEL or HANGUP by its message type (`kind`), as both shells
        (one node: `phone.call_control`; the cluster's leader) receive it."""
        action = {
            "ACCEPT": self.accept,
            "REJECT": self.reject,
            "CANCEL": self.cancel,
            "HANGUP": self.hangup,
        }[kind]
        return action(user, call_id)

    def accept(self, user: str, call_id: str) -> list[Effect]:
        """ACCEPT: the callee answers. The shell gets `CreateRoom`; CALLACCEPTED goes
        out once it reports the room with `room_created`."""
        return self._party_action(user, call_id, Action.ACCEPT)

    def reject(self, user: str, call_id: str) -> list[Effect]:
        """REJECT: the callee declines a ringing call; the caller gets REJECTED."""
        return self._party_action(user, call_id, Action.REJECT)

    def cancel(self, user: str, call_id: str) -> list[Effect]:
        """CANCEL: the caller gives up before an answer; the callee gets CANCELLED."""
        return self._party_action(user, call_id, Action.CANCEL)

    def hangup(self, user: str, call_id: str) -> list[Effect]:
        """HANGUP: either party ends the call in any state; the other party is told."""
        return self._party_action(user, call_id, Action.HANGUP)

    # --- what the shell reports ------------------------------------------------------------

    def room_created(self, call_id: str, room: int) -> list[Effect]:
        """The shell created room `room` for `CreateRoom(call_id, ...)`.

        Both parties get CALLACCEPTED. If the call ended while the room was being made,
        the answer is `CloseRoom` so the room does not outlive its call. This can only
        happen if the shell awaits between the two steps.
        """
        call = self._calls.get(call_id)
        if call is None:
            return [CloseRoom(call_id, room)]
        if call.state is not ACTIVE or call.room is not None:
            raise ValueError(f"call {call_id!r} is not waiting for a room")
        self._calls[call_id] = attrs.evolve(call, room=room)
        accepted = _message("CALLACCEPTED", call=call_id, room=room)
        return [Send(call.caller, accepted), Send(call.callee, accepted)]

    def expire(self, now: float) -> list[Effect]:
        """End every call that has rung until its deadline. The caller gets NOANSWER and
        the callee gets CANCELLED. The shell calls this when its sleep until
        `next_deadline()` ends."""
        effects: list[Effect] = []
        deadlines = self._deadlines
        while deadlines and deadlines[0][0] <= now:
            deadline, call_id = heapq.heappop(deadlines)
            call = self._ringing(call_id)
            if call is None or call.deadline != deadline:
                continue
            effects.append(Send(call.caller, _message("NOANSWER", call=call.id)))
            effects.append(Send(call.callee, _message("CANCELLED", call=call.id)))
            effects += self._end(call, "NOANSWER")
        return effects

    # --- what the shell may ask ------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """When `expire` next has work to do, or None if no call is ringing."""
        deadlines = self._deadlines
        while deadlines and self._ringing(deadlines[0][1]) is None:
            heapq.heappop(deadlines)  # answered or ended meanwhile
        return deadlines[0][0] if deadlines else None

    def _ringing(self, call_id: str) -> Call | None:
        call = self._calls.get(call_id)
        return call if call is not None and call.deadline is not None else None

    def status(self, name: str) -> Status:
        if name not in self._online:
            return Status.OFFLINE
        return Status.IN_CALL if name in self._call_of else Status.AVAILABLE

    def lookup(self, call_id: str) -> Call | None:
        return self._calls.get(call_id)

    def calls(self) -> list[Call]:
        return list(self._calls.values())

    def statistics(self) -> SwitchboardStatistics:
        ringing = sum(1 for c in self._calls.values() if c.state is RINGING)
        return SwitchboardStatistics(len(self._online), ringing, len(self._calls) - ringing)

    # --- the one place where calls change ------------------------------------------------

    def _party_action(self, user: str, call_id: str, action: Action) -> list[Effect]:
        self._require_online(user)
        call = self._calls.get(call_id)
        if call is None or call.role_of(user) is None:
            # Strangers hear "no-such-call" even for live calls: ids do not leak.
            if self._last_ended.get(user) == call_id:
                return [_error(user, CallErrorCode.CALL_ENDED, "the call is over", call=call_id)]
            return [_error(user, CallErrorCode.NO_SUCH_CALL, "no such call", call=call_id)]
        return self._act(call, user, action)

    def _act(self, call: Call, user: str, action: Action) -> list[Effect]:
        role = call.role_of(user)
        assert role is not None
        transition = _TRANSITIONS.get((call.state, action, role))
        if transition is None:
            code = _refusal(call.state, action)
            return [_error(user, code, f"cannot {action.value} this call", call=call.id)]
        next_state, tell_other = transition
        if next_state is ACTIVE:
            self._calls[call.id] = attrs.evolve(call, state=ACTIVE, deadline=None)
            if self.watcher is not None:
                self.watcher.answered(self._calls[call.id])
            return [CreateRoom(call.id, call.caller, call.callee)]
        # Both parties of a live call are online: whoever leaves ends their call first.
        assert tell_other is not None
        ended = self._end(call, tell_other)
        return [Send(call.other(user), _message(tell_other, call=call.id)), *ended]

    def _end(self, call: Call, outcome: str) -> list[Effect]:
        """Forget `call` and free both parties. Parties still online become available."""
        del self._calls[call.id]
        if self.watcher is not None:
            self.watcher.ended(call, outcome)
        effects: list[Effect] = []
        if call.room is not None:
            effects.append(CloseRoom(call.id, call.room))
        for party in (call.caller, call.callee):
            del self._call_of[party]
            if party in self._online:
                self._last_ended[party] = call.id
                effects.append(PresenceChanged(party, Status.AVAILABLE))
        return effects

    def _require_online(self, user: str) -> None:
        if user not in self._online:
            raise NotOnline(user)
