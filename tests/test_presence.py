"""The presence core (rtcserver/directory/presence.py), without sockets: what each subscriber is
told, coalesced, and when it gets a snapshot instead."""

from __future__ import annotations

from typing import Any

import orjson

from rtcserver.directory.presence import MIN_HISTORY, Directory, Subscriber


def told(subscriber: Subscriber) -> list[dict[str, Any]]:
    return [orjson.loads(frame) for frame in subscriber.take()]


def view_after(frames: list[dict[str, Any]], view: dict[str, str]) -> dict[str, str]:
    """What a client knows after `frames` (the phone page's rules)."""
    for frame in frames:
        if frame["type"] == "USERS":
            view = {u["name"]: u["status"] for u in frame["users"]}
        else:
            for change in frame["changes"]:
                if change["status"] == "offline":
                    view.pop(change["name"], None)
                else:
                    view[change["name"]] = change["status"]
    return view


def test_first_take_is_a_snapshot_then_nothing() -> None:
    directory = Directory()
    directory.set("alice", "available")
    directory.set("bob", "in-call")
    directory.seal()
    sub = directory.subscribe()
    [frame] = told(sub)
    assert frame["type"] == "USERS"
    assert sorted(frame["users"], key=lambda u: u["name"]) == [
        {"name": "alice", "status": "available"},
        {"name": "bob", "status": "in-call"},
    ]
    assert told(sub) == []


def test_many_changes_between_writes_are_one_frame() -> None:
    directory = Directory()
    sub = directory.subscribe()
    told(sub)
    for i in range(10):
        directory.set(f"u{i}", "available")
        assert directory.seal() == [sub]
    directory.remove("u3")
    directory.set("u4", "in-call")
    directory.seal()
    [frame] = told(sub)
    assert frame["type"] == "DIRECTORY"
    assert len(frame["changes"]) == 9
    assert view_after([frame], {}) == {f"u{i}": "available" for i in range(10) if i != 3} | {
        "u4": "in-call"
    }


def test_a_join_and_leave_between_writes_is_no_change() -> None:
    directory = Directory()
    directory.set("alice", "available")
    directory.seal()
    sub = directory.subscribe()
    told(sub)
    directory.set("bob", "available")
    directory.seal()
    directory.set("bob", "in-call")
    directory.seal()
    directory.remove("bob")
    assert directory.seal() == [sub]  # told an older version: woken, though nothing is news
    assert told(sub) == []
    directory.set("carol", "available")
    directory.remove("carol")
    assert directory.seal() == []  # within one version: not even a version


def test_a_leave_and_rejoin_is_a_status_at_most() -> None:
    directory = Directory()
    directory.set("bob", "in-call")
    directory.seal()
    sub = directory.subscribe()
    told(sub)
    directory.remove("bob")
    directory.seal()
    directory.set("bob", "available")
    directory.seal()
    assert told(sub) == [{"type": "DIRECTORY", "changes": [{"name": "bob", "status": "available"}]}]


def test_a_subscriber_far_behind_gets_a_snapshot() -> None:
    directory = Directory()
    sub = directory.subscribe()
    told(sub)
    for i in range(MIN_HISTORY * 3):
        directory.set(f"u{i}", "available")
        directory.seal()
    for i in range(MIN_HISTORY * 2):
        directory.remove(f"u{i}")
        directory.seal()
    [frame] = told(sub)
    assert frame["type"] == "USERS"
    assert {u["name"] for u in frame["users"]} == {f"u{i}" for i in range(64 * 2, 64 * 3)}


def test_subscribers_told_different_versions_each_learn_everything() -> None:
    directory = Directory()
    subs = [directory.subscribe() for _ in range(5)]
    views: list[dict[str, str]] = [{} for _ in subs]
    for step in range(40):
        directory.set(f"u{step}", "available")
        if step % 3 == 0:
            directory.remove(f"u{step // 2}")
        if step % 5 == 0:
            directory.set(f"u{step // 3}", "in-call")
        directory.seal()
        for k, sub in enumerate(subs):
            if step % (k + 1) == 0:  # subscriber k writes every k+1 versions
                views[k] = view_after(told(sub), views[k])
    for k, sub in enumerate(subs):
        assert view_after(told(sub), views[k]) == directory.users()


def test_deltas_and_snapshots_are_shared_between_subscribers() -> None:
    directory = Directory()
    a, b = directory.subscribe(), directory.subscribe()
    directory.set("x", "available")
    directory.seal()
    assert a.take()[0] is b.take()[0]
    directory.set("y", "available")
    directory.seal()
    assert a.take()[0] is b.take()[0]


def test_replace_turns_the_difference_into_changes() -> None:
    directory = Directory()
    directory.set("a", "available")
    directory.set("b", "available")
    directory.seal()
    sub = directory.subscribe()
    told(sub)
    directory.replace({"b": "in-call", "c": "available"})
    directory.seal()
    assert view_after(told(sub), {"a": "available", "b": "available"}) == {
        "b": "in-call",
        "c": "available",
    }


def test_unsubscribed_is_told_nothing_and_not_woken() -> None:
    directory = Directory()
    sub = directory.subscribe()
    directory.unsubscribe(sub)
    directory.set("a", "available")
    assert directory.seal() == []
    assert sub.take() == []
