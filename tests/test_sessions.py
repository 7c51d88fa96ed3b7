"""The replay ring of a session (sessions.Resumable), without sockets."""

from __future__ import annotations

from typing import Any

from rtcserver.rooms.sessions import Resumable, Sessions


class FakeActor:
    def __init__(self) -> None:
        self.resumable: Resumable | None = None
        self.mailbox: list[bytes] = []


def session(limit: int) -> Resumable:
    actor: Any = FakeActor()
    return Sessions().grant(actor, None, limit, asked=False)


def test_the_ring_keeps_the_last_bytes_and_at_least_one_message() -> None:
    ring = session(limit=10)
    ring.record([b"aaaa", b"bbbb", b"cccc"])  # 12 bytes: the oldest goes
    assert (ring.sent, ring.ring, ring.ring_bytes) == (3, [b"bbbb", b"cccc"], 8)
    ring.record([b"x" * 50])  # alone over the limit: still kept
    assert (ring.ring, ring.first_kept) == ([b"x" * 50], 3)


def test_rewind_gives_back_what_follows_and_numbers_it_again() -> None:
    ring = session(limit=1000)
    ring.record([b"1", b"2", b"3", b"4"])
    assert ring.rewind(2) == [b"3", b"4"]
    assert (ring.sent, ring.ring, ring.ring_bytes) == (2, [b"1", b"2"], 2)
    assert ring.rewind(2) == []


def test_rewind_past_what_is_kept_is_a_gap() -> None:
    ring = session(limit=2)
    ring.record([b"1", b"2", b"3"])
    assert ring.first_kept == 1
    assert ring.rewind(0) is None  # message 1 is no longer kept
    assert ring.rewind(4) is None  # the client cannot have more than was sent
    assert ring.rewind(1) == [b"2", b"3"]


def test_a_grant_unasked_then_asked_keeps_the_session_and_marks_it() -> None:
    sessions = Sessions()
    actor: Any = FakeActor()
    first = sessions.grant(actor, None, 100, asked=False)
    secret = first.secret
    again = sessions.grant(actor, None, 100, asked=True)
    assert again is first and again.asked and again.secret != secret
    assert sessions.claim(first.id, secret) is None  # the old secret died
    assert sessions.claim(first.id, again.secret) is first
