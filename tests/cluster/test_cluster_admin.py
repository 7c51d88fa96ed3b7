"""The admin API in cluster mode: any node answers for the whole cluster
(server/clusteradmin.py), on real nodes and a real Redis."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

from tests.cluster.conftest import cluster_nodes
from tests.cluster.services import RedisServer
from tests.cluster.test_cluster import _pair_across
from tests.support.client import connect
from tests.support.process import ServerProcess
from tests.support.waiting import eventually
from tests.test_admin import TOKEN, api, api_post
from tests.test_phone import call as phone_call
from tests.test_phone import login

Stack = contextlib.AsyncExitStack


@pytest.fixture
def two_nodes(redis: RedisServer) -> Iterator[list[ServerProcess]]:
    with cluster_nodes(redis, 2, "--admin-token", TOKEN) as nodes:
        yield nodes


async def _json(node: ServerProcess, path: str, method: str = "GET") -> tuple[int, dict[str, Any]]:
    status, body = await api(node.port, path, method)
    assert isinstance(body, dict), body
    return status, body


async def test_any_node_lists_and_reads_every_room_of_the_cluster(
    two_nodes: list[ServerProcess],
) -> None:
    node_a, node_b = two_nodes
    async with Stack() as stack:
        a, b, shared = await _pair_across(node_a, node_b, stack)
        # Relayed on both nodes: each node's bytes reach the cluster's total.
        sent = ['{"type":"OFFER","n":1}', '{"type":"ANSWER","n":22}']
        await a.send(sent[0])
        await b.expect("OFFER")
        await b.send(sent[1])
        await a.expect("ANSWER")
        total = sum(len(text) for text in sent)

        async def both_count_every_byte() -> bool:
            found = [(await _json(node, f"/api/v1/rooms/{shared}"))[1] for node in two_nodes]
            return all(room["bytes_relayed"] == total for room in found)

        await eventually(both_count_every_byte, 10, f"{total} bytes on both nodes")
        alone = await stack.enter_async_context(connect(node_b.ws_url))
        only_on_b = await alone.create_room()
        rooms = sorted([shared, only_on_b])
        listed: dict[str, list[dict[str, Any]]] = {}
        for node in two_nodes:
            status, body = await _json(node, "/api/v1/rooms")
            assert status == 200 and body["next_cursor"] is None
            assert [r["number"] for r in body["rooms"]] == rooms
            listed[str(node.port)] = body["rooms"]
            # A page of one, then the next: the cursor works on the other node.
            _, first = await _json(node, "/api/v1/rooms?limit=1")
            assert [r["number"] for r in first["rooms"]] == rooms[:1]
            other = node_b if node is node_a else node_a
            _, rest = await _json(other, f"/api/v1/rooms?limit=1&cursor={first['next_cursor']}")
            assert [r["number"] for r in rest["rooms"]] == rooms[1:]
        # The same rooms, members and ids, whenever made, whichever node answers (the
        # room only on B has its age on A too).
        seen_from_a, seen_from_b = (
            [(r["number"], r["capacity"], r["members"], r["created_at"]) for r in rooms_]
            for rooms_ in listed.values()
        )
        assert seen_from_a == seen_from_b
        assert [len(members) for number, _, members, _ in seen_from_a] == [
            2 if number == shared else 1 for number, _, _, _ in seen_from_a
        ]
        assert all(created is not None for _, _, _, created in seen_from_a)
        # A room with no member on node A is still node A's to show.
        status, one = await _json(node_a, f"/api/v1/rooms/{only_on_b}")
        assert status == 200 and one["number"] == only_on_b and len(one["members"]) == 1
        assert (await _json(node_a, f"/api/v1/rooms/{only_on_b + 1}"))[0] == 404


async def test_posting_removing_and_closing_reach_members_on_other_nodes(
    two_nodes: list[ServerProcess],
) -> None:
    node_a, node_b = two_nodes
    async with Stack() as stack:
        creator, joiner, room = await _pair_across(node_a, node_b, stack)
        path = f"/api/v1/rooms/{room}/messages"
        status, told = await api_post(node_a.port, path, {"data": {"hello": "all"}})
        assert (status, told) == (200, {"room": room, "delivered": 2})
        for client in (creator, joiner):
            assert await client.expect("ADMIN") == {"type": "ADMIN", "data": {"hello": "all"}}
        # To one member at a time, from node A: each hears only its own id.
        _, one = await _json(node_b, f"/api/v1/rooms/{room}")
        ids = [m["id"] for m in one["members"]]
        for member_id in ids:
            status, told = await api_post(
                node_a.port, path, {"data": {"id": member_id}, "to": member_id}
            )
            assert (status, told) == (200, {"room": room, "delivered": 1})
        id_of = {}
        for name, client in (("creator", creator), ("joiner", joiner)):
            id_of[name] = (await client.expect("ADMIN"))["data"]["id"]
            await client.expect_nothing(0.3)
        assert sorted(id_of.values()) == sorted(ids)
        # Node A removes the member that lives on node B.
        removed = f"/api/v1/rooms/{room}/members/{id_of['joiner']}"
        assert (await _json(node_a, removed, "DELETE"))[0] == 200
        closed = await joiner.expect_close()
        assert (closed.code, closed.reason) == (4004, "Removed from the room")
        await creator.expect("PEERLEFT")

        async def one_left() -> bool:
            return len((await _json(node_a, f"/api/v1/rooms/{room}"))[1]["members"]) == 1

        await eventually(one_left, 5, "the removed member gone from Redis")
        # Node B closes the room: the creator, on node A, is closed.
        again = await stack.enter_async_context(connect(node_b.ws_url))
        await again.send({"type": "ENTERROOM", "value": room})
        await creator.expect("PEERJOINED")
        assert (await _json(node_b, f"/api/v1/rooms/{room}", "DELETE"))[0] == 200
        for client in (creator, again):
            closed = await client.expect_close()
            assert (closed.code, closed.reason) == (4003, "The room was closed")

        async def gone() -> bool:
            return (await _json(node_a, f"/api/v1/rooms/{room}"))[0] == 404

        await eventually(gone, 5, "the closed room gone from the cluster")
        assert (await api_post(node_b.port, path, {"data": {}}))[0] == 404


async def test_users_are_the_clusters_directory_and_any_node_signs_one_out(
    two_nodes: list[ServerProcess],
) -> None:
    node_a, node_b = two_nodes
    async with Stack() as stack:
        alice = await login(stack, node_a.ws_url, "alice")
        bob = await login(stack, node_b.ws_url, "bob")

        def names_on(node: ServerProcess, expected: list[str]) -> Any:
            async def check() -> bool:
                _, body = await _json(node, "/api/v1/users")
                return [u["name"] for u in body["users"]] == expected

            return check

        for node in two_nodes:
            await eventually(names_on(node, ["alice", "bob"]), 5, "both users listed")
            _, page = await _json(node, "/api/v1/users?limit=1")
            assert page["next_cursor"] == "alice"
            assert page["users"][0]["status"] == "available"
        # The calls are the leader's: every node lists them.
        call_id = await phone_call(alice, bob, "bob")
        for node in two_nodes:
            _, body = await _json(node, "/api/v1/users")
            assert body["users"][0] == {
                "name": "alice",
                "status": "in-call",
                "call": {"id": call_id, "state": "ringing", "with": "bob", "room": None},
            }
        status, body = await _json(node_a, "/api/v1/users/bob", "DELETE")
        assert (status, body) == (200, {"signed_out": "bob"})
        closed = await bob.expect_close()
        assert (closed.code, closed.reason) == (4005, "Signed out by the server")
        for node in two_nodes:
            await eventually(names_on(node, ["alice"]), 5, "bob gone from the directory")
        assert (await _json(node_b, "/api/v1/users/bob", "DELETE"))[0] == 404


async def test_without_redis_a_request_is_a_503_naming_it(
    redis: RedisServer, two_nodes: list[ServerProcess]
) -> None:
    node_a, _ = two_nodes
    assert (await _json(node_a, "/api/v1/rooms"))[0] == 200
    redis.stop()
    for path in ("/api/v1/rooms", "/api/v1/rooms/12"):
        status, body = await _json(node_a, path)
        assert status == 503, body
        assert body["unavailable"] == "the cluster's Redis"
