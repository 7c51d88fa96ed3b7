"""The tutorial dialect's rules, without a socket (rtcserver.directory.dialect)."""

from __future__ import annotations

from rtcserver.directory import dialect
from rtcserver.directory.dialect import Login, Relay, Reply


def logged_in(name: str) -> dialect.Session:
    session = dialect.Session()
    assert session.handle({"type": "login", "name": name}) == [Login(name)]
    session.logged_in(name)
    return session


def test_lower_case_login_opens_the_dialect_and_book_messages_do_not() -> None:
    assert dialect.opens_dialect({"type": "login", "name": "a"})
    assert not dialect.opens_dialect({"type": "LOGIN", "value": "a"})
    assert not dialect.opens_dialect({"type": "GETROOM", "value": ""})
    assert not dialect.opens_dialect("login")


def test_login_without_a_name_fails_and_names_the_problem() -> None:
    decisions = dialect.Session().handle({"type": "login"})
    assert decisions[0] == Reply({"type": "login", "success": False})
    assert isinstance(decisions[1], Reply)
    assert "'name'" in decisions[1].message["message"]


def test_offer_is_relayed_with_the_caller_name_and_sets_the_partner() -> None:
    alice = logged_in("alice")
    assert alice.handle({"type": "offer", "offer": {"sdp": "x"}, "name": "bob"}) == [
        Relay("bob", {"type": "offer", "offer": {"sdp": "x"}, "name": "alice"})
    ]
    assert alice.partner == "bob"


def test_answer_and_candidate_drop_the_name() -> None:
    bob = logged_in("bob")
    bob.offered_by("alice")
    assert bob.handle({"type": "answer", "answer": "sdp", "name": "alice"}) == [
        Relay("alice", {"type": "answer", "answer": "sdp"})
    ]
    assert bob.handle({"type": "candidate", "candidate": {"c": 1}, "name": "alice"}) == [
        Relay("alice", {"type": "candidate", "candidate": {"c": 1}})
    ]


def test_leave_tells_the_peer_and_closing_after_leave_tells_nobody() -> None:
    alice = logged_in("alice")
    alice.handle({"type": "offer", "offer": "o", "name": "bob"})
    assert alice.handle({"type": "leave", "name": "bob"}) == [Relay("bob", {"type": "leave"})]
    assert alice.closed() == []


def test_closing_during_a_call_tells_the_partner() -> None:
    bob = logged_in("bob")
    bob.offered_by("alice")
    assert bob.closed() == [Relay("alice", {"type": "leave"})]


def test_unknown_type_gets_command_not_found() -> None:
    assert logged_in("a").handle({"type": "dance"}) == [
        Reply({"type": "error", "message": "Command not found: dance"})
    ]


def test_relaying_before_login_or_without_a_name_is_an_error() -> None:
    assert dialect.Session().handle({"type": "offer", "offer": "o", "name": "b"}) == [
        dialect.error("offer: log in first")
    ]
    (reply,) = logged_in("a").handle({"type": "candidate", "candidate": "c"})
    assert isinstance(reply, Reply) and "'name'" in reply.message["message"]
    (reply,) = logged_in("a").handle({"type": "offer", "name": "b"})
    assert isinstance(reply, Reply) and "'offer' is missing" in reply.message["message"]


def test_an_undelivered_offer_starts_no_call() -> None:
    alice = logged_in("alice")
    alice.handle({"type": "offer", "offer": "o", "name": "nobody"})
    assert alice.in_call
    alice.undelivered("nobody")
    assert not alice.in_call and alice.closed() == []


def test_the_partner_leaving_ends_the_call_and_another_name_does_not() -> None:
    bob = logged_in("bob")
    bob.offered_by("alice")
    bob.left_by("carol")
    assert bob.in_call
    bob.left_by("alice")
    assert not bob.in_call and bob.closed() == []
