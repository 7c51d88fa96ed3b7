"""What happens when a node dies, and when Redis goes away and comes back."""

from __future__ import annotations

import contextlib
import signal
from typing import Any

import orjson
import trio

from tests.cluster.conftest import LEASE_TTL, cluster_nodes
from tests.cluster.services import RedisServer
from tests.support.client import Client, connect
from tests.support.process import ServerProcess
from tests.support.waiting import eventually

# A dead node's lease runs out within LEASE_TTL of its last renewal; a janitor looks
# every LEASE_TTL/3 (±20%). The rest is scheduling slack on a loaded machine.
REAP_BOUND = LEASE_TTL * (1 + 0.4) + 1.0


async def _pair(
    a_url: str, b_url: str, stack: contextlib.AsyncExitStack
) -> tuple[Client, Client, int]:
    a = await stack.enter_async_context(connect(a_url))
    b = await stack.enter_async_context(connect(b_url))
    room = await a.create_room()
    await b.send({"type": "ENTERROOM", "value": room})
    await a.expect("PEERJOINED")
    return a, b, room


async def _healthz(node: ServerProcess) -> dict[str, Any]:
    stream = await trio.open_tcp_stream("127.0.0.1", node.port)
    async with stream:
        await stream.send_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := await stream.receive_some(65536):
            data += chunk
    value = orjson.loads(data.split(b"\r\n\r\n", 1)[1])
    assert isinstance(value, dict)
    return value


async def _wait_cluster(nodes: list[ServerProcess], status: str, timeout: float) -> None:
    async def all_report() -> bool:
        return all([(await _healthz(node))["cluster"] == status for node in nodes])

    await eventually(all_report, timeout, f"cluster {status} on every node")


async def test_kill_9_of_a_node_tells_its_peers_elsewhere_and_cleans_its_rooms(
    redis: RedisServer,
) -> None:
    with cluster_nodes(redis, 3) as (node_a, node_b, node_c):
        dead = (await _healthz(node_b))["node"]
        async with contextlib.AsyncExitStack() as stack:
            a, _b, room = await _pair(node_a.ws_url, node_b.ws_url, stack)
            assert dead in redis.cli("SMEMBERS", "rtc:nodes").split()
            assert len(redis.cli("SMEMBERS", f"rtc:room:{room}").split()) == 2
            started = trio.current_time()
            node_b.proc.send_signal(signal.SIGKILL)
            await a.expect("PEERLEFT", timeout=REAP_BOUND)
            elapsed = trio.current_time() - started
            assert elapsed < REAP_BOUND, elapsed
            # Redis forgot the dead node and its member; the room lives on with `a`.
            (survivor,) = redis.cli("SMEMBERS", f"rtc:room:{room}").split()
            assert survivor.startswith((await _healthz(node_a))["node"] + "/"), survivor
            assert dead not in redis.cli("SMEMBERS", "rtc:nodes").split()
            assert redis.cli("EXISTS", f"rtc:members:{dead}").strip() == "0"
            # The freed place can be taken from another node, and the relay works.
            c = await stack.enter_async_context(connect(node_c.ws_url))
            await c.send({"type": "ENTERROOM", "value": room})
            await a.expect("PEERJOINED")
            await a.send({"type": "CHATMSG", "value": "hi C"})
            assert await c.recv() == {"type": "CHATMSG", "value": "hi C"}


async def test_redis_outage_local_relay_works_cross_node_fails_loudly_then_heals(
    redis: RedisServer,
) -> None:
    with cluster_nodes(redis, 2) as nodes:
        node_a, node_b = nodes
        async with contextlib.AsyncExitStack() as stack:
            a, b, room = await _pair(node_a.ws_url, node_b.ws_url, stack)
            c1, c2, local_room = await _pair(node_a.ws_url, node_a.ws_url, stack)

            redis.stop()
            # Cross-node relay: the sender hears ERROR cluster-unavailable, never silence.
            await a.send({"type": "CHATMSG", "value": "lost?"})
            error = await a.expect("ERROR", timeout=3)
            assert error["code"] == "cluster-unavailable", error
            # Making or entering a room needs Redis: a clear ERROR, and nothing changes.
            fresh = await stack.enter_async_context(connect(node_a.ws_url))
            await fresh.send({"type": "GETROOM", "value": ""})
            assert (await fresh.expect("ERROR"))["code"] == "cluster-unavailable"
            # Relay between members on the same node keeps working, in order.
            for n in range(3):
                await c1.send({"type": "CHATMSG", "value": n})
            assert [(await c2.recv())["value"] for _ in range(3)] == [0, 1, 2]
            # Once the lease has run out, cross-node peers are told they are cut off.
            await a.expect("PEERLEFT", timeout=REAP_BOUND + 1)
            await b.expect("PEERLEFT", timeout=REAP_BOUND + 1)
            await _wait_cluster(nodes, "down", 2)
            # The same-node room was not touched.
            await c2.send({"type": "CHATMSG", "value": "still here"})
            assert (await c1.recv())["value"] == "still here"

            redis.start()  # empty: the nodes must rebuild their state
            await _wait_cluster(nodes, "up", 10)
            # Memberships are back: the cross-node room heals (whoever was there first
            # hears PEERJOINED and renegotiates), the local room is registered again.
            joined = await _first_message(a, b, timeout=5)
            assert joined["type"] == "PEERJOINED", joined
            await a.send({"type": "CHATMSG", "value": "back"})
            assert await b.recv() == {"type": "CHATMSG", "value": "back"}
            await b.send({"type": "CHATMSG", "value": "welcome"})
            assert await a.recv() == {"type": "CHATMSG", "value": "welcome"}
            assert len(redis.cli("SMEMBERS", f"rtc:room:{room}").split()) == 2
            assert len(redis.cli("SMEMBERS", f"rtc:room:{local_room}").split()) == 2
            # New rooms work across nodes again.
            d, e, _ = await _pair(node_b.ws_url, node_a.ws_url, stack)
            await e.send({"type": "CHATMSG", "value": "new room"})
            assert await d.recv() == {"type": "CHATMSG", "value": "new room"}
            await fresh.send({"type": "GETROOM", "value": ""})
            await fresh.expect("GETROOM")
        metrics = await _metrics(node_a)
        assert "rtcserver_redis_reconnects_total" in metrics
        assert _value(metrics, "rtcserver_redis_reconnects_total") >= 1
        assert _value(metrics, "rtcserver_cluster_lease_losses_total") >= 1
        assert _value(metrics, 'rtcserver_errors_total{code="cluster-unavailable"}') >= 2


async def _first_message(a: Client, b: Client, timeout: float) -> dict[str, Any]:
    """The first message either client gets (the other must get nothing meanwhile)."""
    got: list[dict[str, Any]] = []
    with trio.fail_after(timeout):
        async with trio.open_nursery() as nursery:

            async def watch(client: Client) -> None:
                got.append(await client.recv(timeout))
                nursery.cancel_scope.cancel()

            nursery.start_soon(watch, a)
            nursery.start_soon(watch, b)
    assert len(got) == 1, got
    return got[0]


async def _metrics(node: ServerProcess) -> str:
    stream = await trio.open_tcp_stream("127.0.0.1", node.port)
    async with stream:
        await stream.send_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := await stream.receive_some(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    return body.decode()


def _value(metrics: str, name: str) -> float:
    for line in metrics.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{name} not in metrics:\n{metrics}")
