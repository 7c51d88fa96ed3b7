"""The cluster's pure parts: the mirror of a node's rooms, and the cluster settings."""

from __future__ import annotations

from typing import Any

import pytest

from rtcserver.actors.actor import Actor
from rtcserver.cluster.mirror import Link, Mirror, RemoteMember, member_id, parse_member
from rtcserver.config import load_settings, validate
from rtcserver.server.state import ServerState
from rtcserver.settings import Settings


class FakeBus:
    def __init__(self) -> None:
        self.sent: list[tuple[str, int, Actor | None, int, str]] = []

    def relay(self, member: RemoteMember, sender: Actor | None, room: int, text: str) -> bool:
        self.sent.append((member.node, member.actor, sender, room, text))
        return True


def _actor(n: int) -> Actor:
    state = ServerState.create(Settings())
    return Actor(id=n, address=f"127.0.0.1:{n}", limits=state.limits, budget=state.budget)


def _mirror() -> tuple[Mirror, list[tuple[int, int]]]:
    departures: list[tuple[int, int]] = []
    mirror = Mirror(2, lambda actor, room: departures.append((actor.id, room)))
    return mirror, departures


async def test_remote_peers_come_out_as_links_bound_to_the_sender() -> None:
    mirror, _ = _mirror()
    bus: Any = FakeBus()
    local = _actor(1)
    remote = RemoteMember("node-b", 7, bus)
    mirror.add(42, local)
    mirror.add(42, remote)
    (peer,) = mirror.peers_of(local)
    assert isinstance(peer, Link)
    assert peer.tell('{"type":"offer"}')
    assert bus.sent == [("node-b", 7, local, 42, '{"type":"offer"}')]


async def test_local_departure_tells_only_local_peers_and_queues_the_redis_side() -> None:
    departures: list[tuple[int, int]] = []
    bus: Any = FakeBus()
    a, b = _actor(1), _actor(2)
    mirror = Mirror(3, lambda actor, room: departures.append((actor.id, room)))
    for member in (a, b, RemoteMember("node-b", 7, bus)):
        mirror.add(5, member)
    departure, name = mirror.forget(a)
    assert name is None
    assert departure is not None
    assert departure.remaining == (b,)  # the remote member hears it over the bus
    assert departures == [(a.id, 5)]
    assert mirror.room_of(a) is None
    assert a.id not in mirror.local


async def test_dropping_the_last_member_forgets_the_shared_room() -> None:
    mirror, departures = _mirror()
    bus: Any = FakeBus()
    remote = RemoteMember("node-b", 7, bus)
    mirror.add(9, remote)
    assert mirror.drop(remote) is not None
    assert 9 not in mirror.shared
    assert mirror.rooms() == {}
    assert departures == []  # remote members leave by news, not by a Redis write here


async def test_cross_node_rooms_lists_only_rooms_with_a_remote_member() -> None:
    mirror, _ = _mirror()
    bus: Any = FakeBus()
    a, b, c = _actor(1), _actor(2), _actor(3)
    mirror.add(1, a)
    mirror.add(1, b)
    mirror.add(2, c)
    mirror.add(2, RemoteMember("node-b", 7, bus))
    assert set(mirror.cross_node_rooms()) == {2}


def test_member_ids_round_trip() -> None:
    assert parse_member(member_id("host-12-abc", 99)) == ("host-12-abc", 99)


def test_cluster_settings_have_flags_env_and_checks() -> None:
    settings = load_settings(
        ["--lease-ttl", "2"], environ={"RTCSERVER_REDIS": "redis://127.0.0.1:6390/0"}
    )
    assert settings.redis == "redis://127.0.0.1:6390/0"
    assert settings.lease_ttl == 2.0
    assert Settings().redis == ""  # one node unless told otherwise
    assert validate(Settings(redis="http://example.org")) is not None
    assert validate(Settings(redis="redis://127.0.0.1:1/0", lease_ttl=0.1)) is not None
    assert validate(Settings(redis="redis://127.0.0.1:1/0")) is None
    with pytest.raises(SystemExit):
        load_settings(["--redis", "localhost:6379"], environ={})
