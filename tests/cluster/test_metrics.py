"""/metrics in Prometheus text format, on one node and in a cluster."""

from __future__ import annotations

import contextlib

import trio
from prometheus_client.parser import text_string_to_metric_families

from rtcserver.app import Server
from tests.conftest import StartServer
from tests.support.client import connect, make_pair
from tests.support.process import ServerProcess


async def _scrape(port: int) -> dict[str, float]:
    """Every sample as `name{label="v",...}` -> value."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := await stream.receive_some(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    assert b"text/plain; version=0.0.4" in head
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples


async def test_single_node_metrics_count_connections_rooms_relays_and_errors(
    start_server: StartServer,
) -> None:
    server: Server = await start_server()
    url = f"ws://127.0.0.1:{server.port}/ws"
    async with contextlib.AsyncExitStack() as stack:
        creator, joiner, _ = await make_pair(stack, url)
        for n in range(3):
            await creator.send({"type": "CHATMSG", "value": n})
            await joiner.expect("CHATMSG")
        await creator.send("not json")
        await creator.expect("ERROR")
        lonely = await stack.enter_async_context(connect(url))
        await lonely.send({"type": "CHATMSG", "value": "x"})
        await lonely.expect("ERROR")
        samples = await _scrape(server.port)
    assert samples["rtcserver_connections"] == 3
    assert samples["rtcserver_rooms"] == 1
    assert samples['rtcserver_messages_relayed_total{path="local"}'] == 3
    assert samples['rtcserver_messages_relayed_total{path="remote"}'] == 0
    assert samples['rtcserver_errors_total{code="bad-json"}'] == 1
    assert samples['rtcserver_errors_total{code="not-in-room"}'] == 1
    assert samples["rtcserver_mailbox_overflows_total"] == 0
    assert not any(name.startswith("rtcserver_cluster") for name in samples)


async def test_cluster_metrics_show_remote_relay_latency_and_redis_round_trips(
    three_nodes: list[ServerProcess],
) -> None:
    node_a, node_b, _ = three_nodes
    before = await _scrape(node_a.port)
    async with contextlib.AsyncExitStack() as stack:
        a = await stack.enter_async_context(connect(node_a.ws_url))
        b = await stack.enter_async_context(connect(node_b.ws_url))
        room = await a.create_room()
        await b.send({"type": "ENTERROOM", "value": room})
        await a.expect("PEERJOINED")
        for n in range(5):
            await a.send({"type": "CHATMSG", "value": n})
            await b.expect("CHATMSG")
        after = await _scrape(node_a.port)
    remote = 'rtcserver_messages_relayed_total{path="remote"}'
    assert after[remote] - before.get(remote, 0) == 5
    assert after["rtcserver_relay_latency_seconds_count"] >= 5
    assert after["rtcserver_relay_latency_seconds_sum"] > 0
    assert after['rtcserver_redis_roundtrip_seconds_count{op="create"}'] >= 1
    assert after['rtcserver_redis_roundtrip_seconds_count{op="acquire"}'] == 1
    assert after["rtcserver_cluster_up"] == 1
    assert after["rtcserver_redis_reconnects_total"] == 0
