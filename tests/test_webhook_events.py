"""The webhooks' pure parts, without sockets: events from the registry and switchboard
watchers, the signature, and the byte-bounded queue."""

from __future__ import annotations

import base64
import collections
import datetime
import itertools
from typing import Any

import pytest
from standardwebhooks import Webhook

from rtcserver.directory.calls import Switchboard
from rtcserver.rooms.registry import Registry
from rtcserver.security import webhooksig
from rtcserver.server.events import Events
from rtcserver.server.webhooks import Webhooks
from rtcserver.settings import Settings

KEY = bytes(range(32))
SECRET = "whsec_" + base64.b64encode(KEY).decode()


class Sink:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def emit(self, kind: str, data: dict[str, Any]) -> None:
        self.events.append((kind, data))


def watched() -> tuple[Registry[Any], Sink, Events]:
    ticks = itertools.count(100)
    registry: Registry[Any] = Registry(clock=lambda: 0.0)
    sink = Sink()
    events = Events(sink, registry, clock=lambda: float(next(ticks)))
    registry.watcher = events
    return registry, sink, events


def test_a_room_s_life_in_events() -> None:
    registry, sink, _ = watched()
    registry.register_name("ann", "a")
    room = registry.create("a").room
    registry.enter(room, "b")
    registry.forget("b")
    registry.forget("a")
    assert [(kind, data.get("name"), data.get("reason")) for kind, data in sink.events] == [
        ("user.online", "ann", None),
        ("room.created", None, None),
        ("member.joined", "ann", None),
        ("member.joined", None, None),
        ("member.left", None, "left"),
        ("member.left", "ann", "left"),  # the name is still known when the room is left
        ("room.ended", None, None),
        ("user.offline", "ann", "left"),
    ]
    assert sink.events[4][1]["duration"] == 1.0  # joined at tick 102, left at 103


def test_a_session_that_timed_out_away_says_so_once() -> None:
    registry, sink, events = watched()
    registry.register_name("ann", "a")
    registry.create("a")
    events.away("a")
    events.ended_away("a")
    registry.forget("a")
    reasons = [
        data.get("reason") for kind, data in sink.events if kind.endswith(("left", "offline"))
    ]
    assert reasons == ["resume-timed-out", "resume-timed-out"]
    assert events._timed_out == {}  # nothing kept once it has been said


def test_call_events_from_the_switchboard() -> None:
    _, sink, events = watched()
    board = Switchboard(ring_timeout=30, new_id=lambda: "c1", watcher=events)
    board.online("ann")
    board.online("bob")
    board.call("ann", "bob", "video", now=0)
    board.accept("bob", "c1")
    board.hangup("ann", "c1")
    assert [kind for kind, _ in sink.events] == ["call.ringing", "call.accepted", "call.ended"]
    assert sink.events[2][1] == {
        "call": "c1",
        "from": "ann",
        "to": "bob",
        "outcome": "hung-up",
        "ringing": 1.0,
        "duration": 1.0,
    }


def test_signatures_are_what_an_independent_verifier_expects() -> None:
    assert webhooksig.parse_secret(SECRET) == KEY
    moment = datetime.datetime(2026, 12, 3, tzinfo=datetime.UTC)
    expected = Webhook(SECRET).sign("msg_1", moment, '{"a":1}')
    assert webhooksig.signature(KEY, "msg_1", int(moment.timestamp()), b'{"a":1}') == expected
    for bad in ("plain", "whsec_!!!", "whsec_" + base64.b64encode(b"short").decode()):
        with pytest.raises(ValueError):
            webhooksig.parse_secret(bad)


async def test_the_queue_is_bounded_in_bytes_and_counts_its_drops() -> None:
    settings = Settings(
        webhook_url=("http://a/", "http://b/"), webhook_secret=SECRET, webhook_queue_bytes=1024
    )
    counters: collections.Counter[str] = collections.Counter()
    hooks = Webhooks(settings, counters)
    for n in range(100):
        hooks.emit("room.created", {"room": n, "padding": "x" * 50})
    for lane in hooks.lanes:
        assert 0 < lane.queued_bytes <= 1024
        assert lane.queued_bytes == sum(len(e.body) for e in lane.queue)
    kept = len(hooks.lanes[0].queue)
    assert counters["webhook:queued"] == 2 * kept
    assert counters["webhook:dropped"] == 2 * (100 - kept)
