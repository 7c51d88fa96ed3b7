"""Specification of the switchboard: calling people by name (rtcserver/directory/calls.py).

Every test drives the pure state machine directly and states the exact effects it
expects, in order. The last part is a hypothesis state machine that checks the
invariants after every step of random traffic among four users.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
)

from rtcserver.directory.calls import (
    NAME_MAX_LENGTH,
    Call,
    CallState,
    CloseRoom,
    CreateRoom,
    Effect,
    NotOnline,
    PresenceChanged,
    Send,
    Status,
    Switchboard,
    SwitchboardStatistics,
    validate_name,
)

RING = 30.0
T0 = 1000.0
AVAILABLE, IN_CALL, OFFLINE = Status.AVAILABLE, Status.IN_CALL, Status.OFFLINE


def counting_ids(prefix: str = "call") -> Callable[[], str]:
    counter = itertools.count(1)
    return lambda: f"{prefix}{next(counter)}"


@pytest.fixture
def board() -> Switchboard:
    board = Switchboard(ring_timeout=RING, new_id=counting_ids())
    for name in ("alice", "bob", "carol"):
        board.online(name)
    return board


def ringing(board: Switchboard, caller: str = "alice", callee: str = "bob") -> str:
    """Place a call and return its id."""
    effects = board.call(caller, callee, "video", T0)
    (incoming,) = [e for e in effects if isinstance(e, Send) and e.to == callee]
    return str(incoming.message["call"])


def connected(board: Switchboard, room: int = 7) -> str:
    """An alice -> bob call that bob accepted and whose room exists."""
    call = ringing(board)
    board.accept("bob", call)
    board.room_created(call, room)
    return call


def error(user: str, code: str, **fields: str) -> tuple[str, str, dict[str, str]]:
    """What `errors_in` finds for an ERROR with `code` sent to `user`."""
    return (user, code, fields)


def errors_in(effects: list[Effect]) -> list[tuple[str, str, dict[str, str]]]:
    """ERROR sends reduced to (to, code, other fields), ignoring the human `message`."""
    found = []
    for e in effects:
        if isinstance(e, Send) and e.message["type"] == "ERROR":
            rest = {k: str(v) for k, v in e.message.items() if k not in ("type", "code", "message")}
            assert isinstance(e.message["message"], str) and e.message["message"]
            found.append((e.to, str(e.message["code"]), rest))
    return found


# --- names -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["alice", "Bob_2", "a.b-c", "7", "josé", "李小龙", "नमस्ते", "Ωμέγα", "x" * NAME_MAX_LENGTH],
)
def test_valid_names(name: str) -> None:
    assert validate_name(name) is None


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("", "empty"),
        ("x" * (NAME_MAX_LENGTH + 1), "longer than 32"),
        ("jose\u0301", "NFC"),  # decomposed é: looks like "josé" but is another string
        ("al ice", "U+0020"),
        ("<b>bob</b>", "U+003C"),
        ("bob\u200d", "U+200D"),  # zero-width joiner
        ("\u202eecila", "U+202E"),  # right-to-left override
        ("\u0301a", "U+0301"),  # a combining mark cannot start a name
        ("a.\u0301", "U+0301"),  # nor follow punctuation
        (".hidden", "U+002E"),
        ("bob\n", "U+000A"),
        ("😀", "U+1F600"),
        ("x²", "U+00B2"),  # not a decimal digit
    ],
)
def test_invalid_names_say_why(name: str, why: str) -> None:
    reason = validate_name(name)
    assert reason is not None and why in reason


# --- users coming and going ------------------------------------------------------------


def test_login_reports_available() -> None:
    board = Switchboard(ring_timeout=RING, new_id=counting_ids())
    assert board.online("dave") == [PresenceChanged("dave", AVAILABLE)]
    assert board.status("dave") is AVAILABLE


def test_logout_reports_offline_and_is_idempotent(board: Switchboard) -> None:
    assert board.offline("carol") == [PresenceChanged("carol", OFFLINE)]
    assert board.offline("carol") == []
    assert board.offline("never-seen") == []
    assert board.status("carol") is OFFLINE


def test_logging_in_twice_is_a_shell_bug(board: Switchboard) -> None:
    with pytest.raises(ValueError):
        board.online("alice")


def test_speaking_for_an_offline_user_is_a_shell_bug(board: Switchboard) -> None:
    call = ringing(board)
    board.offline("carol")
    with pytest.raises(NotOnline):
        board.call("carol", "bob", "audio", T0)
    with pytest.raises(NotOnline):
        board.hangup("carol", call)


# --- placing a call --------------------------------------------------------------


def test_call_rings_both_sides_and_makes_both_busy(board: Switchboard) -> None:
    effects = board.call("alice", "bob", "video", T0)
    assert effects == [
        Send("bob", {"type": "INCOMINGCALL", "from": "alice", "call": "call1", "media": "video"}),
        Send("alice", {"type": "RINGING", "call": "call1"}),
        PresenceChanged("alice", IN_CALL),
        PresenceChanged("bob", IN_CALL),
    ]
    assert board.lookup("call1") == Call(
        "call1", "alice", "bob", "video", CallState.RINGING, deadline=T0 + RING
    )
    assert board.next_deadline() == T0 + RING


@pytest.mark.parametrize("media", ["audio", "video", "data"])
def test_every_media_kind_can_be_called(board: Switchboard, media: str) -> None:
    effects = board.call("alice", "bob", media, T0)
    assert isinstance(effects[0], Send) and effects[0].message["media"] == media


def test_calling_yourself_is_an_error(board: Switchboard) -> None:
    effects = board.call("alice", "alice", "audio", T0)
    assert errors_in(effects) == [error("alice", "self-call", to="alice")]
    assert board.status("alice") is AVAILABLE


def test_unknown_media_is_an_error(board: Switchboard) -> None:
    effects = board.call("alice", "bob", "smell", T0)
    assert errors_in(effects) == [error("alice", "bad-media", to="bob")]


def test_calling_an_unknown_user_is_an_error(board: Switchboard) -> None:
    effects = board.call("alice", "zed", "audio", T0)
    assert errors_in(effects) == [error("alice", "unknown-user", to="zed")]


def test_calling_a_logged_out_user_looks_like_an_unknown_user(board: Switchboard) -> None:
    board.offline("bob")
    effects = board.call("alice", "bob", "audio", T0)
    assert errors_in(effects) == [error("alice", "unknown-user", to="bob")]


def test_calling_someone_whose_phone_rings_gets_busy(board: Switchboard) -> None:
    ringing(board, "alice", "bob")
    assert board.call("carol", "bob", "audio", T0) == [Send("carol", {"type": "BUSY", "to": "bob"})]
    assert board.call("carol", "alice", "audio", T0) == [
        Send("carol", {"type": "BUSY", "to": "alice"})
    ]


def test_calling_someone_in_an_active_call_gets_busy(board: Switchboard) -> None:
    connected(board)
    assert board.call("carol", "bob", "audio", T0) == [Send("carol", {"type": "BUSY", "to": "bob"})]


def test_a_user_has_one_call_at_a_time(board: Switchboard) -> None:
    call = ringing(board, "alice", "bob")
    effects = board.call("alice", "carol", "audio", T0)
    assert errors_in(effects) == [error("alice", "already-in-call", to="carol", call=call)]
    assert board.status("carol") is AVAILABLE


def test_glare_the_first_call_wins_and_the_second_caller_gets_busy(board: Switchboard) -> None:
    first = board.call("alice", "bob", "video", T0)
    second = board.call("bob", "alice", "video", T0)
    to_bob = [e.message["type"] for e in first + second if isinstance(e, Send) and e.to == "bob"]
    # In bob's mailbox, the INCOMINGCALL he can still accept comes before the BUSY.
    assert to_bob == ["INCOMINGCALL", "BUSY"]
    assert second == [Send("bob", {"type": "BUSY", "to": "alice"})]
    assert [c.caller for c in board.calls()] == ["alice"]


# --- answering --------------------------------------------------------------------


def test_accept_asks_the_shell_for_a_private_room(board: Switchboard) -> None:
    call = ringing(board)
    assert board.accept("bob", call) == [CreateRoom(call, "alice", "bob")]
    snapshot = board.lookup(call)
    assert snapshot is not None
    assert snapshot.state is CallState.ACTIVE and snapshot.deadline is None
    assert board.next_deadline() is None


def test_room_created_sends_callaccepted_to_both(board: Switchboard) -> None:
    call = ringing(board)
    board.accept("bob", call)
    accepted: dict[str, str | int] = {"type": "CALLACCEPTED", "call": call, "room": 7}
    assert board.room_created(call, 7) == [Send("alice", accepted), Send("bob", accepted)]
    assert board.status("alice") is IN_CALL and board.status("bob") is IN_CALL


def test_reporting_a_room_for_a_call_that_is_not_waiting_for_one_is_a_shell_bug(
    board: Switchboard,
) -> None:
    call = ringing(board)
    with pytest.raises(ValueError):
        board.room_created(call, 7)
    board.accept("bob", call)
    board.room_created(call, 7)
    with pytest.raises(ValueError):
        board.room_created(call, 8)


def test_reject_tells_the_caller_and_frees_both(board: Switchboard) -> None:
    call = ringing(board)
    assert board.reject("bob", call) == [
        Send("alice", {"type": "REJECTED", "call": call}),
        PresenceChanged("alice", AVAILABLE),
        PresenceChanged("bob", AVAILABLE),
    ]
    assert board.calls() == []


def test_cancel_tells_the_callee_and_frees_both(board: Switchboard) -> None:
    call = ringing(board)
    assert board.cancel("alice", call) == [
        Send("bob", {"type": "CANCELLED", "call": call}),
        PresenceChanged("alice", AVAILABLE),
        PresenceChanged("bob", AVAILABLE),
    ]


# --- ring timeout -------------------------------------------------------------------


def test_nothing_expires_before_the_deadline(board: Switchboard) -> None:
    ringing(board)
    assert board.expire(T0 + RING - 0.001) == []


def test_no_answer_in_time_gives_noanswer_and_cancelled(board: Switchboard) -> None:
    call = ringing(board)
    assert board.expire(T0 + RING) == [
        Send("alice", {"type": "NOANSWER", "call": call}),
        Send("bob", {"type": "CANCELLED", "call": call}),
        PresenceChanged("alice", AVAILABLE),
        PresenceChanged("bob", AVAILABLE),
    ]
    assert board.next_deadline() is None


def test_next_deadline_is_the_earliest_ringing_call(board: Switchboard) -> None:
    board.online("dave")
    assert board.next_deadline() is None
    board.call("alice", "bob", "audio", T0 + 5)
    board.call("carol", "dave", "audio", T0)
    assert board.next_deadline() == T0 + RING
    assert len(board.expire(T0 + RING)) == 4
    assert board.next_deadline() == T0 + 5 + RING


def test_an_accepted_call_never_times_out(board: Switchboard) -> None:
    call = connected(board)
    assert board.expire(T0 + 10 * RING) == []
    assert board.lookup(call) is not None


def test_accept_after_timeout_gets_call_ended(board: Switchboard) -> None:
    call = ringing(board)
    board.expire(T0 + RING)
    assert errors_in(board.accept("bob", call)) == [error("bob", "call-ended", call=call)]


# --- races between the two parties ------------------------------------------------


def test_cancel_seen_before_accept_wins_and_accept_gets_call_ended(board: Switchboard) -> None:
    call = ringing(board)
    board.cancel("alice", call)
    assert errors_in(board.accept("bob", call)) == [error("bob", "call-ended", call=call)]


def test_accept_seen_before_cancel_wins_and_cancel_gets_already_accepted(
    board: Switchboard,
) -> None:
    call = ringing(board)
    board.accept("bob", call)
    effects = board.cancel("alice", call)
    assert errors_in(effects) == [error("alice", "already-accepted", call=call)]
    # The call goes on; alice may HANGUP if she no longer wants it.
    assert board.room_created(call, 7)[0] == Send(
        "alice", {"type": "CALLACCEPTED", "call": call, "room": 7}
    )


def test_reject_racing_cancel_first_seen_wins(board: Switchboard) -> None:
    call = ringing(board)
    board.reject("bob", call)
    assert errors_in(board.cancel("alice", call)) == [error("alice", "call-ended", call=call)]


def test_duplicate_accept_gets_already_accepted(board: Switchboard) -> None:
    call = ringing(board)
    board.accept("bob", call)
    assert errors_in(board.accept("bob", call)) == [error("bob", "already-accepted", call=call)]


def test_reject_after_accept_gets_already_accepted(board: Switchboard) -> None:
    call = connected(board)
    assert errors_in(board.reject("bob", call)) == [error("bob", "already-accepted", call=call)]


def test_the_caller_cannot_accept_or_reject_their_own_call(board: Switchboard) -> None:
    call = ringing(board)
    assert errors_in(board.accept("alice", call)) == [error("alice", "not-callee", call=call)]
    assert errors_in(board.reject("alice", call)) == [error("alice", "not-callee", call=call)]
    assert board.lookup(call) is not None


def test_the_callee_cannot_cancel(board: Switchboard) -> None:
    call = ringing(board)
    assert errors_in(board.cancel("bob", call)) == [error("bob", "not-caller", call=call)]


# --- hanging up -----------------------------------------------------------------------


@pytest.mark.parametrize(("who", "other"), [("alice", "bob"), ("bob", "alice")])
def test_either_side_hangs_up_and_the_room_is_closed(
    board: Switchboard, who: str, other: str
) -> None:
    call = connected(board, room=7)
    assert board.hangup(who, call) == [
        Send(other, {"type": "HANGUP", "call": call}),
        CloseRoom(call, 7),
        PresenceChanged("alice", AVAILABLE),
        PresenceChanged("bob", AVAILABLE),
    ]


def test_hangup_while_ringing_acts_as_cancel_for_the_caller(board: Switchboard) -> None:
    call = ringing(board)
    assert board.hangup("alice", call)[0] == Send("bob", {"type": "CANCELLED", "call": call})


def test_hangup_while_ringing_acts_as_reject_for_the_callee(board: Switchboard) -> None:
    call = ringing(board)
    assert board.hangup("bob", call)[0] == Send("alice", {"type": "REJECTED", "call": call})


def test_hangup_twice_gets_call_ended(board: Switchboard) -> None:
    call = connected(board)
    board.hangup("alice", call)
    assert errors_in(board.hangup("alice", call)) == [error("alice", "call-ended", call=call)]
    assert errors_in(board.hangup("bob", call)) == [error("bob", "call-ended", call=call)]


def test_a_room_reported_after_the_call_ended_is_closed_at_once(board: Switchboard) -> None:
    call = ringing(board)
    board.accept("bob", call)
    # No room yet, so nothing to close and no CALLACCEPTED to send.
    assert board.hangup("alice", call) == [
        Send("bob", {"type": "HANGUP", "call": call}),
        PresenceChanged("alice", AVAILABLE),
        PresenceChanged("bob", AVAILABLE),
    ]
    assert board.room_created(call, 7) == [CloseRoom(call, 7)]


# --- strangers and unknown ids ---------------------------------------------------------


@pytest.mark.parametrize("action", ["accept", "reject", "cancel", "hangup"])
def test_a_stranger_cannot_touch_a_call_and_learns_nothing(board: Switchboard, action: str) -> None:
    call = ringing(board)
    effects = getattr(board, action)("carol", call)
    assert errors_in(effects) == [error("carol", "no-such-call", call=call)]
    assert board.lookup(call) is not None and board.status("carol") is AVAILABLE


@pytest.mark.parametrize("action", ["accept", "reject", "cancel", "hangup"])
def test_an_unknown_call_id_gets_no_such_call(board: Switchboard, action: str) -> None:
    effects = getattr(board, action)("bob", "nonsense")
    assert errors_in(effects) == [error("bob", "no-such-call", call="nonsense")]


# --- disconnecting --------------------------------------------------------------------


def test_caller_disconnecting_mid_ring_cancels(board: Switchboard) -> None:
    call = ringing(board)
    assert board.offline("alice") == [
        Send("bob", {"type": "CANCELLED", "call": call}),
        PresenceChanged("bob", AVAILABLE),
        PresenceChanged("alice", OFFLINE),
    ]


def test_callee_disconnecting_mid_ring_rejects(board: Switchboard) -> None:
    call = ringing(board)
    assert board.offline("bob") == [
        Send("alice", {"type": "REJECTED", "call": call}),
        PresenceChanged("alice", AVAILABLE),
        PresenceChanged("bob", OFFLINE),
    ]
    assert board.next_deadline() is None


def test_disconnecting_mid_call_hangs_up_and_closes_the_room(board: Switchboard) -> None:
    call = connected(board, room=7)
    assert board.offline("bob") == [
        Send("alice", {"type": "HANGUP", "call": call}),
        CloseRoom(call, 7),
        PresenceChanged("alice", AVAILABLE),
        PresenceChanged("bob", OFFLINE),
    ]
    assert errors_in(board.hangup("alice", call)) == [error("alice", "call-ended", call=call)]


def test_a_returning_user_starts_fresh(board: Switchboard) -> None:
    call = connected(board)
    board.offline("bob")
    board.online("bob")
    assert board.status("bob") is AVAILABLE
    assert errors_in(board.hangup("bob", call)) == [error("bob", "no-such-call", call=call)]


# --- one user, several calls over time ------------------------------------------------


def test_a_user_with_several_calls(board: Switchboard) -> None:
    first = ringing(board, "alice", "bob")
    assert board.call("carol", "bob", "audio", T0) == [Send("carol", {"type": "BUSY", "to": "bob"})]
    board.reject("bob", first)
    second = ringing(board, "carol", "bob")
    assert second != first
    # A late answer to the first call cannot touch the second one.
    assert errors_in(board.accept("bob", first)) == [error("bob", "call-ended", call=first)]
    assert board.accept("bob", second) == [CreateRoom(second, "carol", "bob")]
    board.room_created(second, 9)
    board.hangup("carol", second)
    # Only the most recent call is remembered as ended; older ids are simply unknown.
    assert errors_in(board.accept("bob", first)) == [error("bob", "no-such-call", call=first)]


def test_a_repeated_call_id_is_refused(board: Switchboard) -> None:
    board = Switchboard(ring_timeout=RING, new_id=lambda: "same")
    for name in ("alice", "bob", "carol", "dave"):
        board.online(name)
    board.call("alice", "bob", "audio", T0)
    with pytest.raises(RuntimeError):
        board.call("carol", "dave", "audio", T0)


def test_statistics_count_users_and_calls(board: Switchboard) -> None:
    board.online("dave")
    connected(board)
    ringing(board, "carol", "dave")
    assert board.statistics() == SwitchboardStatistics(online=4, ringing=1, active=1)


# --- random traffic, invariants after every step ------------------------------------------

USERS = ("ann", "ben", "cat", "dan")
ACTIONS = ("accept", "reject", "cancel", "hangup")
TIMEOUT = 10.0


class SwitchboardMachine(RuleBasedStateMachine):
    """Plays the shell: carries out effects and checks them against the board."""

    call_ids = Bundle("call_ids")

    def __init__(self) -> None:
        super().__init__()
        self.board = Switchboard(ring_timeout=TIMEOUT, new_id=counting_ids("id"))
        self.now = 0.0
        self.presence: dict[str, Status] = {}  # as reported by effects
        self.parties: dict[str, tuple[str, str]] = {}
        self.awaiting_room: set[str] = set()  # CreateRoom seen, room_created not yet called
        self.open_rooms: dict[int, str] = {}  # rooms the shell created and not yet closed
        self.rooms = itertools.count(1)

    def carry_out(self, effects: list[Effect]) -> None:
        for effect in effects:
            match effect:
                case Send(to, message):
                    assert self.board.status(to) is not OFFLINE, effect
                    call = message.get("call")
                    if call is not None and message["type"] != "ERROR":
                        assert to in self.parties[str(call)], effect
                case PresenceChanged(name, status):
                    self.presence[name] = status
                case CreateRoom(call, caller, callee):
                    assert (caller, callee) == self.parties[call]
                    assert call not in self.awaiting_room
                    self.awaiting_room.add(call)
                case CloseRoom(call, room):
                    assert self.open_rooms.pop(room) == call

    @initialize()
    def everyone_logs_in(self) -> None:
        for user in USERS:
            self.carry_out(self.board.online(user))

    @rule(user=st.sampled_from(USERS))
    def login(self, user: str) -> None:
        if self.board.status(user) is OFFLINE:
            self.carry_out(self.board.online(user))

    @rule(user=st.sampled_from(USERS))
    def disconnect(self, user: str) -> None:
        self.carry_out(self.board.offline(user))

    @rule(
        target=call_ids,
        caller=st.sampled_from(USERS),
        callee=st.sampled_from(USERS),
        media=st.sampled_from(["audio", "video", "data", "smell"]),
    )
    def place_call(self, caller: str, callee: str, media: str) -> object:
        if self.board.status(caller) is OFFLINE:
            with pytest.raises(NotOnline):
                self.board.call(caller, callee, media, self.now)
            return multiple()
        before = {c.id for c in self.board.calls()}
        effects = self.board.call(caller, callee, media, self.now)
        new = [c for c in self.board.calls() if c.id not in before]
        for c in new:
            self.parties[c.id] = (c.caller, c.callee)
        self.carry_out(effects)
        return multiple(*(c.id for c in new))

    @rule(
        user=st.sampled_from(USERS),
        action=st.sampled_from(ACTIONS),
        call=call_ids | st.just("bogus"),
    )
    def anyone_acts(self, user: str, action: str, call: str) -> None:
        self.act(user, action, call)

    @rule(
        caller_side=st.booleans(),
        action=st.sampled_from(ACTIONS),
        call=call_ids,
    )
    def a_party_acts(self, caller_side: bool, action: str, call: str) -> None:
        """Strangers are common in `anyone_acts`; this rule lets calls get answered."""
        caller, callee = self.parties[call]
        self.act(caller if caller_side else callee, action, call)

    @precondition(lambda self: any(c.state is CallState.RINGING for c in self.board.calls()))
    @rule(data=st.data())
    def a_callee_answers(self, data: st.DataObject) -> None:
        """Random actions end most calls before anyone answers; this keeps answered calls common."""
        ids = sorted(c.id for c in self.board.calls() if c.state is CallState.RINGING)
        call = data.draw(st.sampled_from(ids))
        self.act(self.parties[call][1], "accept", call)

    def act(self, user: str, action: str, call: str) -> None:
        method = getattr(self.board, action)
        if self.board.status(user) is OFFLINE:
            with pytest.raises(NotOnline):
                method(user, call)
            return
        effects = method(user, call)
        if call not in self.parties or user not in self.parties[call]:
            assert errors_in(effects) == [error(user, "no-such-call", call=call)]
        self.carry_out(effects)

    @precondition(lambda self: bool(self.awaiting_room))
    @rule(data=st.data())
    def create_room(self, data: st.DataObject) -> None:
        call = data.draw(st.sampled_from(sorted(self.awaiting_room)))
        self.awaiting_room.discard(call)
        room = next(self.rooms)
        self.open_rooms[room] = call
        self.carry_out(self.board.room_created(call, room))

    @rule(dt=st.sampled_from([0.0, 1.0, TIMEOUT / 2, TIMEOUT]))
    def time_passes(self, dt: float) -> None:
        self.now += dt
        self.carry_out(self.board.expire(self.now))

    @invariant()
    def a_user_is_in_at_most_one_call(self) -> None:
        parties = [p for c in self.board.calls() for p in (c.caller, c.callee)]
        assert len(parties) == len(set(parties))

    @invariant()
    def both_parties_of_every_call_are_online(self) -> None:
        for c in self.board.calls():
            assert self.board.status(c.caller) is IN_CALL
            assert self.board.status(c.callee) is IN_CALL

    @invariant()
    def nobody_is_both_available_and_in_a_call(self) -> None:
        in_calls = {p for c in self.board.calls() for p in (c.caller, c.callee)}
        for user in USERS:
            status = self.board.status(user)
            assert (status is IN_CALL) == (user in in_calls)
        assert self.board.statistics().online == sum(
            self.board.status(u) is not OFFLINE for u in USERS
        )

    @invariant()
    def every_ringing_call_has_a_future_deadline(self) -> None:
        for c in self.board.calls():
            if c.state is CallState.RINGING:
                assert c.deadline is not None and c.deadline > self.now
            else:
                assert c.deadline is None
        deadlines = [c.deadline for c in self.board.calls() if c.deadline is not None]
        assert self.board.next_deadline() == min(deadlines, default=None)

    @invariant()
    def reported_presence_matches_the_board(self) -> None:
        for user in USERS:
            assert self.presence.get(user, OFFLINE) is self.board.status(user)

    @invariant()
    def open_rooms_are_exactly_those_of_active_calls(self) -> None:
        with_room = {c.id for c in self.board.calls() if c.room is not None}
        assert set(self.open_rooms.values()) == with_room
        for c in self.board.calls():
            if c.state is CallState.ACTIVE and c.room is None:
                assert c.id in self.awaiting_room


SwitchboardMachine.TestCase.settings = settings(
    max_examples=300, stateful_step_count=60, deadline=None
)
test_switchboard_invariants = SwitchboardMachine.TestCase


def test_many_calls_time_out_in_deadline_order_and_answered_ones_never() -> None:
    board = Switchboard(ring_timeout=RING, new_id=counting_ids())
    users = [f"u{i}" for i in range(40)]
    for name in users:
        board.online(name)
    ids = [
        ringing_at(board, users[2 * k], users[2 * k + 1], T0 + k) for k in range(len(users) // 2)
    ]
    for k in range(0, len(ids), 2):  # every other call is answered, so never times out
        board.accept(users[2 * k + 1], ids[k])
    assert board.next_deadline() == T0 + 1 + RING
    due = board.expire(T0 + 10 + RING)
    noanswer = [
        e.message["call"] for e in due if isinstance(e, Send) and e.message["type"] == "NOANSWER"
    ]
    assert noanswer == [ids[k] for k in range(1, 11, 2)]
    assert board.next_deadline() == T0 + 11 + RING
    board.expire(T0 + 100 + RING)
    assert board.next_deadline() is None
    assert board.statistics().ringing == 0 and board.statistics().active == 10


def ringing_at(board: Switchboard, caller: str, callee: str, now: float) -> str:
    effects = board.call(caller, callee, "video", now)
    (incoming,) = [e for e in effects if isinstance(e, Send) and e.to == callee]
    return str(incoming.message["call"])
