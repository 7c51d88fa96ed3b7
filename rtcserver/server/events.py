"""What happened, as webhook events: the registry's and the sessions' watcher.

The registry tells its `Watcher` of every member that joins or leaves a room and of
every name claimed or freed; the sessions tell theirs of a session going away (its
socket lost) and coming back. `Events` turns those into the events of docs/API.md
("Webhooks") and hands them to `Webhooks.emit`. Why a member left is read from how its
connection ended (its close code), so no code path that ends a connection needs to
know webhooks exist.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Final, Protocol

import attrs

from ..directory.calls import Call
from ..protocol import CloseCode
from ..rooms.peers import Peer
from ..rooms.registry import Registry

# How a connection ended -> the `reason` of member.left and user.offline.
REASONS: Final = {
    None: "left",
    CloseCode.NORMAL: "left",
    CloseCode.RESUMED_ELSEWHERE: "left",
    CloseCode.KEEPALIVE_TIMEOUT: "lost",
    CloseCode.SLOW_CONSUMER: "slow-consumer",
    CloseCode.GOING_AWAY: "server-shutdown",
    CloseCode.POLICY_VIOLATION: "token-expired",
    CloseCode.MESSAGE_TOO_BIG: "protocol-error",
    CloseCode.INTERNAL_ERROR: "crashed",
    CloseCode.ROOM_CLOSED: "room-closed",
    CloseCode.REMOVED: "kicked",
    CloseCode.SIGNED_OUT: "signed-out",
}
RESUME_TIMED_OUT: Final = "resume-timed-out"
# What the switchboard told the other party -> call.ended's `outcome`.
OUTCOMES: Final = {
    "CANCELLED": "cancelled",
    "NOANSWER": "no-answer",
    "HANGUP": "hung-up",
}


class Sink(Protocol):
    def emit(self, kind: str, data: dict[str, Any]) -> None: ...


@attrs.define(eq=False)
class Events:
    """`rooms.registry.Watcher` and `rooms.sessions.Watcher` in one: notes to events."""

    sink: Sink
    registry: Registry[Peer]
    clock: Callable[[], float] = time.time
    _joined_at: dict[Peer, float] = attrs.field(factory=dict)
    # Logged-in members: since when, and their name (the registry forgets the name
    # before the room, so member.left reads it here).
    _online: dict[Peer, tuple[float, str]] = attrs.field(factory=dict)
    # Members whose session ended while they were away (they timed out): whether a
    # user.offline is still to come for them, after their member.left.
    _timed_out: dict[Peer, bool] = attrs.field(factory=dict)
    # Live calls: when they rang, and when they were accepted.
    _calls: dict[str, tuple[float, float | None]] = attrs.field(factory=dict)

    # --- rooms.registry.Watcher -------------------------------------------------------

    def joined(self, room: int, member: Peer, member_id: str, first: bool) -> None:
        registry = self.registry
        if first:
            self.sink.emit("room.created", {"room": room, "capacity": registry.capacity_of(room)})
        self._joined_at[member] = self.clock()
        self.sink.emit(
            "member.joined", {"room": room, "member": member_id, "name": self._name(member)}
        )

    def left(self, room: int, member: Peer, member_id: str, last: bool) -> None:
        registry = self.registry
        now = self.clock()
        joined = self._joined_at.pop(member, now)
        self.sink.emit(
            "member.left",
            {
                "room": room,
                "member": member_id,
                "name": self._name(member),
                "reason": self._reason(member, last_word=member not in self._online),
                "duration": round(now - joined, 3),
            },
        )
        if last:
            created = registry.created_at(room)
            self.sink.emit(
                "room.ended",
                {
                    "room": room,
                    "duration": round(now - (created if created is not None else now), 3),
                    "bytes_relayed": registry.relayed_bytes(room),
                },
            )

    def named(self, name: str, member: Peer) -> None:
        self._online[member] = (self.clock(), name)
        self.sink.emit("user.online", {"name": name})

    def unnamed(self, name: str, member: Peer) -> None:
        now = self.clock()
        since, _ = self._online.pop(member, (now, name))
        reason = self._reason(member, last_word=True)
        self.sink.emit(
            "user.offline", {"name": name, "reason": reason, "duration": round(now - since, 3)}
        )

    # --- rooms.sessions.Watcher -------------------------------------------------------

    def away(self, member: Peer) -> None:
        self.sink.emit("session.away", self._where(member))

    def back(self, member: Peer) -> None:
        self.sink.emit("session.back", self._where(member))

    def ended_away(self, member: Peer) -> None:
        # Only if a member.left or user.offline is to come (and take the note away).
        if self.registry.room_of(member) is not None or member in self._online:
            self._timed_out[member] = member in self._online

    # --- directory.calls.CallWatcher ---------------------------------------------------

    def rang(self, call: Call) -> None:
        self._calls[call.id] = (self.clock(), None)
        self.sink.emit("call.ringing", {**_parties(call), "media": call.media})

    def answered(self, call: Call) -> None:
        now = self.clock()
        rang, _ = self._calls.get(call.id, (now, None))
        self._calls[call.id] = (rang, now)
        self.sink.emit("call.accepted", {**_parties(call), "ringing": round(now - rang, 3)})

    def ended(self, call: Call, outcome: str) -> None:
        now = self.clock()
        rang, accepted = self._calls.pop(call.id, (now, None))
        ringing = round((accepted if accepted is not None else now) - rang, 3)
        if outcome == "REJECTED":
            self.sink.emit("call.rejected", {**_parties(call), "ringing": ringing})
            return
        duration = 0.0 if accepted is None else round(now - accepted, 3)
        self.sink.emit(
            "call.ended",
            {
                **_parties(call),
                "outcome": OUTCOMES.get(outcome, outcome.lower()),
                "ringing": ringing,
                "duration": duration,
            },
        )

    # ------------------------------------------------------------------------------------

    def _where(self, member: Peer) -> dict[str, Any]:
        registry = self.registry
        return {
            "room": registry.room_of(member),
            "member": registry.member_id(member),
            "name": self._name(member),
        }

    def _name(self, member: Peer) -> str | None:
        online = self._online.get(member)
        return online[1] if online is not None else self.registry.display_name(member)

    def _reason(self, member: Peer, last_word: bool) -> str:
        """Why `member` left; `last_word`: no event about its leaving follows this one."""
        timed_out = self._timed_out.pop(member, None) if last_word else self._timed_out.get(member)
        code = getattr(member, "close_code", None)
        if code is None and timed_out is not None:
            return RESUME_TIMED_OUT
        return REASONS.get(code, f"closed-{int(code)}" if code is not None else "left")


def _parties(call: Call) -> dict[str, Any]:
    return {"call": call.id, "from": call.caller, "to": call.callee}
