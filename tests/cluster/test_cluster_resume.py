"""Sessions in cluster mode: a session lives on the node that holds its actor. A RESUME
on that node works across nodes' rooms; on another node it is refused clearly, and the
client re-enters as a newcomer once the away session's grace has ended."""

from __future__ import annotations

from tests.cluster.conftest import cluster_nodes
from tests.cluster.services import RedisServer
from tests.faults.wsclient import WsClient
from tests.test_resume import Party, chat


async def _pair(home: int, other: int) -> tuple[Party, Party, int]:
    """`a` (resumable) on node `home` makes a room; `b` on node `other` enters it."""
    a = Party(await WsClient.connect(home))
    b = Party(await WsClient.connect(other))
    await a.send({"type": "SESSION"})
    await a.expect("SESSION")
    await a.send({"type": "GETROOM", "value": ""})
    room = (await a.expect("GETROOM"))["value"]
    await b.send({"type": "ENTERROOM", "value": room})
    await b.expect("SESSION")  # unasked: every client has one
    await a.expect("PEERJOINED")
    return a, b, room


async def test_resume_on_the_same_node_with_the_peer_on_another(redis: RedisServer) -> None:
    with cluster_nodes(redis, 2) as (node_a, node_b):
        a, b, room = await _pair(node_a.port, node_b.port)
        a.client.abort()
        await b.expect("PEERAWAY")  # crossed nodes
        await chat(b, 1, 2)
        a2 = await a.resume_on(node_a.port)
        assert (await a2.expect("RESUMED"))["room"] == room
        assert [(await a2.recv())["value"] for _ in range(2)] == [1, 2]
        await b.expect("PEERBACK")
        await chat(a2, 3)
        assert (await b.recv())["value"] == 3
        for party in (a2, b):
            await party.client.close()


async def test_resume_on_another_node_is_refused_and_the_client_re_enters(
    redis: RedisServer,
) -> None:
    with cluster_nodes(redis, 2, "--resume-grace", "3") as (node_a, node_b):
        a, b, room = await _pair(node_a.port, node_b.port)
        a.client.abort()
        await b.expect("PEERAWAY")
        elsewhere = await a.resume_on(node_b.port)
        refused = await elsewhere.expect("ERROR")
        assert refused["code"] == "resume-failed"
        # The away session still holds its place until its grace ends.
        await elsewhere.send({"type": "ENTERROOM", "value": room})
        await elsewhere.expect("SESSION")  # a newcomer's own
        assert (await elsewhere.expect("WRONGROOM"))["reason"] == "room-full"
        await b.expect("PEERLEFT")
        await elsewhere.send({"type": "ENTERROOM", "value": room})
        await b.expect("PEERJOINED")
        for party in (elsewhere, b):
            await party.client.close()
