"""Names, the directory and calls by name across cluster nodes (one leader decides)."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from typing import Any

import pytest
import trio

from tests.cluster.conftest import LEASE_TTL, cluster_nodes
from tests.cluster.services import RedisServer
from tests.cluster.test_cluster import ODD_TEXT
from tests.cluster.test_failures import _healthz, _wait_cluster
from tests.support.client import DIRECTORY_TYPES, Client, connect
from tests.support.process import ServerProcess
from tests.support.waiting import eventually
from tests.test_phone import call, login, until

Stack = contextlib.AsyncExitStack
RING_TIMEOUT = 1.0
# A dead node's lease expires within LEASE_TTL; the leader looks every LEASE_TTL/3; the
# rest is scheduling slack on a loaded machine.
DEATH_BOUND = LEASE_TTL * (1 + 0.4) + 1.5


@pytest.fixture(scope="module")
def two_nodes(shared_redis: RedisServer) -> Iterator[list[ServerProcess]]:
    with cluster_nodes(shared_redis, 2, "--ring-timeout", str(RING_TIMEOUT)) as nodes:
        yield nodes


async def _first_of(client: Client, kinds: set[str]) -> dict[str, Any]:
    """The next message of one of `kinds`, skipping directory news."""
    with trio.fail_after(5):
        while True:
            message = await client.recv()
            if message["type"] in kinds:
                return message
            assert message["type"] in DIRECTORY_TYPES, message


async def _try_login(client: Client, name: str) -> dict[str, Any]:
    await client.send({"type": "LOGIN", "name": name})
    return await until(client, "LOGIN")


async def _login_until_free(client: Client, name: str, timeout: float) -> None:
    """LOGIN again and again (with a deadline) until the name is ours."""
    with trio.fail_after(timeout):
        while True:
            reply = await _try_login(client, name)
            if reply["success"]:
                return
            assert reply["reason"] == "name taken", reply
            await trio.sleep(0.05)  # polling with a deadline


async def _leader(redis: RedisServer, nodes: list[ServerProcess]) -> int:
    """The index in `nodes` of the node that holds the leader lock."""
    ids = [(await _healthz(node))["node"] for node in nodes]
    await eventually(lambda: redis.cli("GET", "rtc:leader").strip() in ids, 5, "a leader")
    return ids.index(redis.cli("GET", "rtc:leader").strip())


async def _hear_all(
    client: Client, kinds: set[str], timeout: float, maybe: frozenset[str] = frozenset()
) -> dict[str, dict[str, Any]]:
    """Each of `kinds` once, in any order (they come from different nodes), skipping
    other directory news and at most one of each of `maybe`. "USERLEFT" is heard as a
    directory frame in which a user goes offline (the first one named)."""
    heard: dict[str, dict[str, Any]] = {}
    with trio.fail_after(timeout):
        while not kinds <= set(heard):
            message = await client.recv(timeout)
            kind = message["type"]
            if kind in DIRECTORY_TYPES:
                left = [c["name"] for c in message.get("changes", ()) if c["status"] == "offline"]
                if not left or "USERLEFT" in heard:
                    continue
                kind, message = "USERLEFT", {"type": "USERLEFT", "name": left[0]}
            assert kind in kinds | maybe and kind not in heard, message
            heard[kind] = message
    return heard


async def _accepted(alice: Client, bob: Client, call_id: str) -> int:
    await bob.send({"type": "ACCEPT", "call": call_id})
    room = (await until(alice, "CALLACCEPTED"))["room"]
    assert (await until(bob, "CALLACCEPTED")) == {
        "type": "CALLACCEPTED",
        "call": call_id,
        "room": room,
    }
    assert isinstance(room, int)
    return room


async def test_a_name_is_unique_across_nodes_and_dies_with_its_connection(
    two_nodes: list[ServerProcess],
) -> None:
    node_a, node_b = two_nodes
    async with Stack() as stack:
        b = await stack.enter_async_context(connect(node_b.ws_url))
        async with connect(node_a.ws_url) as a:
            await a.send({"type": "LOGIN", "name": "ann"})
            assert await a.expect("LOGIN") == {"type": "LOGIN", "success": True, "name": "ann"}
            reply = await _try_login(b, "ann")
            assert reply == {"type": "LOGIN", "success": False, "reason": "name taken"}
            # Still taken on its own node too.
            async with connect(node_a.ws_url) as again:
                assert (await _try_login(again, "ann"))["reason"] == "name taken"
        await _login_until_free(b, "ann", timeout=5)
        # One name per connection still holds, and the local checks still answer.
        assert (await _try_login(b, "other"))["reason"] == "already logged in as ann"


async def test_a_look_alike_name_is_taken_across_nodes(two_nodes: list[ServerProcess]) -> None:
    node_a, node_b = two_nodes
    async with Stack() as stack:
        a = await stack.enter_async_context(connect(node_a.ws_url))
        await a.send({"type": "LOGIN", "name": "ace"})
        assert (await a.expect("LOGIN"))["success"] is True
        b = await stack.enter_async_context(connect(node_b.ws_url))
        reply = await _try_login(b, "\u0430\u0441\u0435")  # Cyrillic асе: the same skeleton
        assert reply["success"] is False
        assert reply["reason"].startswith("name taken") and "looks like" in reply["reason"]


async def test_the_directory_lists_and_follows_users_on_every_node(
    two_nodes: list[ServerProcess],
) -> None:
    node_a, node_b = two_nodes
    async with Stack() as stack:
        dora = await login(stack, node_a.ws_url, "dora")
        await dora.expect("USERS")
        eve = await login(stack, node_b.ws_url, "eve")
        await eve.directory_until(lambda d: d.get("dora") == "available")
        await dora.directory_until(lambda d: d.get("eve") == "available")
        # A second user on eve's node hears about both.
        fred = await login(stack, node_b.ws_url, "fred")
        await fred.directory_until(lambda d: {"dora", "eve", "fred"} <= d.keys())
        await dora.directory_until(lambda d: "fred" in d)
        await eve.directory_until(lambda d: "fred" in d)
        # Presence crosses nodes: dora calls eve, fred (on B) sees both in-call.
        call_id = await call(dora, eve, "eve")
        await fred.directory_until(lambda d: d["dora"] == d["eve"] == "in-call")
        await dora.send({"type": "CANCEL", "call": call_id})
        assert (await until(eve, "CANCELLED"))["call"] == call_id
        await fred.directory_until(lambda d: d["dora"] == d["eve"] == "available")
        # Leaving crosses nodes.
        async with connect(node_a.ws_url) as gus:
            await gus.send({"type": "LOGIN", "name": "gus"})
            await gus.expect("LOGIN")
            await fred.directory_until(lambda d: "gus" in d)
        await fred.directory_until(lambda d: "gus" not in d)


async def test_a_call_across_nodes_rings_connects_relays_and_hangs_up(
    two_nodes: list[ServerProcess], shared_redis: RedisServer
) -> None:
    node_a, node_b = two_nodes
    async with Stack() as stack:
        alice = await login(stack, node_a.ws_url, "alice")
        bob = await login(stack, node_b.ws_url, "bob")
        await alice.send({"type": "CALL", "to": "bob", "media": "audio"})
        ringing = await until(alice, "RINGING")
        incoming = await until(bob, "INCOMINGCALL")
        assert incoming == {
            "type": "INCOMINGCALL",
            "from": "alice",
            "call": ringing["call"],
            "media": "audio",
        }
        room = await _accepted(alice, bob, ringing["call"])
        # The private room lives in Redis with one member from each node.
        members = shared_redis.cli("SMEMBERS", f"rtc:room:{room}").split()
        assert len(members) == 2 and len({m.rpartition("/")[0] for m in members}) == 2
        await alice.send(ODD_TEXT)
        assert await bob.recv_relayed() == ODD_TEXT
        answer = '{"type":"answer","sdp":"v=0\\r\\n"}'
        await bob.send(answer)
        assert await alice.recv_relayed() == answer
        await alice.send({"type": "HANGUP", "call": ringing["call"]})
        assert await until(bob, "HANGUP") == {"type": "HANGUP", "call": ringing["call"]}
        # Whoever heard HANGUP is out of the call's room already, and Redis empties it.
        await bob.send({"type": "CHATMSG", "value": "still there?"})
        assert (await until(bob, "ERROR"))["code"] == "not-in-room"
        await alice.send({"type": "CHATMSG", "value": "and you?"})
        assert (await until(alice, "ERROR"))["code"] == "not-in-room"
        await eventually(
            lambda: shared_redis.cli("EXISTS", f"rtc:room:{room}").strip() == "0",
            5,
            "the call's room gone from Redis",
        )


async def test_reject_no_answer_and_busy_across_nodes(two_nodes: list[ServerProcess]) -> None:
    node_a, node_b = two_nodes
    async with Stack() as stack:
        hal = await login(stack, node_a.ws_url, "hal")
        ida = await login(stack, node_b.ws_url, "ida")
        jon = await login(stack, node_a.ws_url, "jon")
        first = await call(hal, ida, "ida")
        await ida.send({"type": "REJECT", "call": first})
        assert await until(hal, "REJECTED") == {"type": "REJECTED", "call": first}
        # Busy: ida rings for hal; jon's call to ida gets BUSY.
        second = await call(hal, ida, "ida")
        await jon.send({"type": "CALL", "to": "ida", "media": "video"})
        assert await until(jon, "BUSY") == {"type": "BUSY", "to": "ida"}
        # Nobody answers: the leader's ring timer ends it on both sides.
        started = trio.current_time()
        assert await until(hal, "NOANSWER", timeout=RING_TIMEOUT + 3) == {
            "type": "NOANSWER",
            "call": second,
        }
        assert trio.current_time() - started < RING_TIMEOUT + 3
        assert await until(ida, "CANCELLED") == {"type": "CANCELLED", "call": second}
        # A late ACCEPT is told the call is over.
        await ida.send({"type": "ACCEPT", "call": second})
        assert (await until(ida, "ERROR"))["code"] == "call-ended"
        # And a stranger's name is unknown everywhere.
        await jon.send({"type": "CALL", "to": "nobody", "media": "video"})
        assert (await until(jon, "ERROR"))["code"] == "unknown-user"


async def test_disconnecting_ends_the_call_on_the_other_node(
    two_nodes: list[ServerProcess],
) -> None:
    node_a, node_b = two_nodes
    async with Stack() as stack:
        kim = await login(stack, node_a.ws_url, "kim")
        async with connect(node_b.ws_url) as lou:
            await lou.send({"type": "LOGIN", "name": "lou"})
            await lou.expect("LOGIN")
            ringing = await call(kim, lou, "lou")
            # While ringing, the callee's disconnect is a REJECT.
        assert await until(kim, "REJECTED") == {"type": "REJECTED", "call": ringing}
        # The directory coalesces a leave and a join within one presence interval
        # (presence.py): kim hears lou leave below only if kim was told lou was there.
        # So wait until kim's directory shows lou gone, then lou in the call.
        await kim.directory_until(lambda users: "lou" not in users)
        async with connect(node_b.ws_url) as lou:
            await _login_until_free(lou, "lou", timeout=5)
            call_id = await call(kim, lou, "lou")
            await _accepted(kim, lou, call_id)
            await kim.directory_until(lambda users: users.get("lou") == "in-call")
        # Once active, it is PEERLEFT (the room) then HANGUP (the call), as on one node.
        heard = await _hear_all(kim, {"PEERLEFT", "HANGUP", "USERLEFT"}, 5)
        assert list(heard) == ["PEERLEFT", "HANGUP", "USERLEFT"], heard
        assert heard["HANGUP"] == {"type": "HANGUP", "call": call_id}


async def test_kill_9_of_the_callees_node_ends_the_call_and_frees_the_name(
    redis: RedisServer,
) -> None:
    with cluster_nodes(redis, 2) as nodes:
        leader = await _leader(redis, nodes)
        alice_node, bob_node = nodes[leader], nodes[1 - leader]
        async with Stack() as stack:
            alice = await login(stack, alice_node.ws_url, "alice")
            bob = await login(stack, bob_node.ws_url, "bob")
            call_id = await call(alice, bob, "bob")
            await _accepted(alice, bob, call_id)
            started = trio.current_time()
            bob_node.proc.send_signal(signal.SIGKILL)
            heard = await _hear_all(alice, {"PEERLEFT", "HANGUP", "USERLEFT"}, DEATH_BOUND)
            assert trio.current_time() - started < DEATH_BOUND
            assert list(heard) == ["PEERLEFT", "HANGUP", "USERLEFT"], heard
            assert heard["HANGUP"] == {"type": "HANGUP", "call": call_id}
            assert heard["USERLEFT"] == {"type": "USERLEFT", "name": "bob"}
            again = await stack.enter_async_context(connect(alice_node.ws_url))
            reply = await _try_login(again, "bob")
            assert reply == {"type": "LOGIN", "success": True, "name": "bob"}


async def test_kill_9_of_the_leader_hands_names_and_calls_to_a_new_leader(
    redis: RedisServer,
) -> None:
    with cluster_nodes(redis, 3) as nodes:
        leader = await _leader(redis, nodes)
        dead = nodes[leader]
        alice_node, bob_node = (node for i, node in enumerate(nodes) if i != leader)
        async with Stack() as stack:
            alice = await login(stack, alice_node.ws_url, "alice")
            bob = await login(stack, bob_node.ws_url, "bob")
            await login(stack, dead.ws_url, "carl")
            await alice.directory_until(lambda d: {"bob", "carl"} <= d.keys())
            call_id = await call(alice, bob, "bob")
            await _accepted(alice, bob, call_id)
            started = trio.current_time()
            dead.proc.send_signal(signal.SIGKILL)
            # The new leader never knew the call: both parties are told it ended (and
            # PEERLEFT, if the other side leaves the room before this one). The dead
            # leader's user leaves the directory once the new leader has heard everyone.
            # A request on its way to the leader when it died comes back as ERROR
            # cluster-unavailable (its link broke before acknowledging it).
            for party in (alice, bob):
                heard = await _hear_all(
                    party,
                    {"HANGUP", "USERLEFT"},
                    2 * DEATH_BOUND,
                    maybe=frozenset({"PEERLEFT", "ERROR"}),
                )
                if "ERROR" in heard:
                    assert heard["ERROR"]["code"] == "cluster-unavailable", heard
                assert heard["HANGUP"] == {"type": "HANGUP", "call": call_id}
                assert heard["USERLEFT"] == {"type": "USERLEFT", "name": "carl"}
            assert trio.current_time() - started < 2 * DEATH_BOUND
            # Names were re-registered with the new leader: still unique, still callable.
            async with connect(bob_node.ws_url) as impostor:
                assert (await _try_login(impostor, "alice"))["reason"] == "name taken"
            await alice.send({"type": "CALL", "to": "bob", "media": "data"})
            ringing = await until(alice, "RINGING")
            assert (await until(bob, "INCOMINGCALL"))["call"] == ringing["call"]
            await _accepted(alice, bob, ringing["call"])
            await bob.send({"type": "CHATMSG", "value": "after the takeover"})
            assert await until(alice, "CHATMSG") == {
                "type": "CHATMSG",
                "value": "after the takeover",
            }


async def test_without_redis_login_and_call_fail_loudly_then_work_again(
    redis: RedisServer,
) -> None:
    with cluster_nodes(redis, 2) as (node_a, node_b):
        async with Stack() as stack:
            alice = await login(stack, node_a.ws_url, "alice")
            bob = await login(stack, node_b.ws_url, "bob")
            redis.stop()
            await _wait_cluster([node_a, node_b], "down", 5)
            await alice.send({"type": "CALL", "to": "bob", "media": "video"})
            assert (await until(alice, "ERROR"))["code"] == "cluster-unavailable"
            late = await stack.enter_async_context(connect(node_b.ws_url))
            await late.send({"type": "LOGIN", "name": "carol"})
            assert (await late.expect("ERROR"))["code"] == "cluster-unavailable"
            redis.start()  # empty: the leader and the names are rebuilt from the nodes
            await _wait_cluster([node_a, node_b], "up", 10)
            with trio.fail_after(10):
                while True:  # until the names are re-registered (polling with a deadline)
                    await alice.send({"type": "CALL", "to": "bob", "media": "video"})
                    reply = await _first_of(alice, {"RINGING", "ERROR"})
                    if reply["type"] == "RINGING":
                        break
                    assert reply["code"] in ("cluster-unavailable", "unknown-user"), reply
                    await trio.sleep(0.1)
            assert (await until(bob, "INCOMINGCALL"))["call"] == reply["call"]
            assert (await _try_login(late, "carol"))["success"] is True
