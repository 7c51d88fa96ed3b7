"""The links between real nodes: announced in Redis, authenticated, and loud when they
break."""

from __future__ import annotations

import contextlib
import signal
import socket

import trio

from rtcserver.cluster import linkwire
from rtcserver.cluster.linkwire import FrameReader
from tests.cluster.conftest import LEASE_TTL, cluster_nodes
from tests.cluster.services import RedisServer, free_port
from tests.cluster.test_failures import REAP_BOUND, _healthz, _pair
from tests.support.client import connect
from tests.support.process import ServerProcess
from tests.support.waiting import eventually


async def _address(redis: RedisServer, node: ServerProcess) -> tuple[str, str, int]:
    node_id = (await _healthz(node))["node"]
    host, _, port = redis.cli("GET", f"rtc:addr:{node_id}").strip().rpartition(":")
    return node_id, host, int(port)


async def _handshake(host: str, port: int, node_id: str, key: bytes) -> tuple[str, bytes]:
    """Knock as a node holding `key`: the receiver's answer, and what came after it."""
    with trio.fail_after(5):
        stream = await trio.open_tcp_stream(host, port)
        async with stream:
            reader = FrameReader(1024)
            (hello,) = reader.feed(await stream.receive_some(1024))
            receiver, nonce = linkwire.parse_hello(hello)
            assert receiver == node_id
            claim = linkwire.claim(key, receiver, nonce, "test-node")
            await stream.send_all(linkwire.encode(claim))
            (answer,) = reader.feed(await stream.receive_some(1024))
            if answer.startswith("K|"):
                linkwire.check_accept(key, receiver, nonce, claim, answer)
                return answer, b""
            rest = b""
            while chunk := await stream.receive_some(1024):
                rest += chunk
            return answer, rest


async def test_a_node_announces_its_link_with_its_lease_and_refuses_a_wrong_key(
    redis: RedisServer,
) -> None:
    port = free_port()
    with cluster_nodes(redis, 1, "--cluster-link-port", str(port)) as (node,):
        node_id, host, announced = await _address(redis, node)
        assert (host, announced) == ("127.0.0.1", port)
        assert 0 < int(redis.cli("PTTL", f"rtc:addr:{node_id}")) <= LEASE_TTL * 1000
        wrong = linkwire.link_key(b"a guess")
        answer, rest = await _handshake(host, port, node_id, wrong)
        assert answer == "N|wrong link key"
        assert rest == b""  # and the link is closed
        # The same knock with the cluster's key (from Redis, as every node reads it)
        # is let in: the refusal above was about the key, nothing else.
        right = linkwire.link_key(redis.cli("GET", "rtc:idkey").strip().encode())
        answer, _ = await _handshake(host, port, node_id, right)
        assert answer.startswith("K|")


async def test_messages_to_a_killed_node_come_back_as_errors_before_it_is_reaped(
    redis: RedisServer,
) -> None:
    with cluster_nodes(redis, 2) as (node_a, node_b):
        async with contextlib.AsyncExitStack() as stack:
            a, b, _ = await _pair(node_a.ws_url, node_b.ws_url, stack)
            await a.send({"type": "CHATMSG", "value": "before"})
            assert (await b.recv())["value"] == "before"
            node_b.proc.send_signal(signal.SIGKILL)
            node_b.proc.wait(timeout=5)
            started = trio.current_time()
            errors = 0
            with trio.fail_after(REAP_BOUND):
                while True:
                    await a.send({"type": "CHATMSG", "value": "anyone?"})
                    message = await a.recv(REAP_BOUND)
                    if message["type"] == "PEERLEFT":
                        break
                    assert message["type"] == "ERROR", message
                    assert message["code"] in ("peer-unreachable", "no-peer"), message
                    errors += 1
                    if errors == 3:
                        break
            assert errors >= 1, "the killed node's peer heard nothing"
            assert trio.current_time() - started < REAP_BOUND


async def test_a_joiner_on_another_node_is_announced_before_its_first_messages(
    three_nodes: list[ServerProcess],
) -> None:
    """PEERJOINED (news J) and the joiner's burst (relays M) leave the joiner's node on
    the same link, in the order queued: the creator hears them in that order."""
    async with contextlib.AsyncExitStack() as stack:
        a = await stack.enter_async_context(connect(three_nodes[0].ws_url))
        b = await stack.enter_async_context(connect(three_nodes[1].ws_url))
        room = await a.create_room()
        await b.send({"type": "ENTERROOM", "value": room})
        for n in range(200):
            await b.send({"type": "CHATMSG", "value": n})
        assert (await a.recv())["type"] == "PEERJOINED"
        assert [(await a.recv())["value"] for _ in range(200)] == list(range(200))


def _two_free_ports() -> int:
    """A port P such that P and P + 1 are both free right now."""
    for _ in range(100):
        port = free_port()
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise AssertionError("no two consecutive free ports")


async def test_each_worker_is_a_node_with_its_own_link_port(redis: RedisServer) -> None:
    port = _two_free_ports()
    with cluster_nodes(redis, 1, "--workers", "2", "--cluster-link-port", str(port)):

        def announced() -> set[int]:
            keys = redis.cli("KEYS", "rtc:addr:*").split()
            return {int(redis.cli("GET", key).strip().rpartition(":")[2]) for key in keys}

        await eventually(lambda: announced() == {port, port + 1}, 10, "two link ports")
