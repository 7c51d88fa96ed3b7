"""Webhooks in cluster mode: a call between two nodes is reported once, by the leader."""

from __future__ import annotations

import contextlib

import trio

from tests.cluster.conftest import cluster_nodes
from tests.cluster.services import RedisServer
from tests.cluster.test_cluster_names import _accepted
from tests.support.client import connect
from tests.support.receiver import running_receiver
from tests.test_phone import call, until
from tests.test_webhooks import SECRET, verified


async def test_a_call_across_nodes_is_reported_once(redis: RedisServer) -> None:
    async with running_receiver() as receiver:
        hooks = ("--webhook-url", receiver.url, "--webhook-secret", SECRET)
        with cluster_nodes(redis, 2, *hooks) as (node_a, node_b):
            async with contextlib.AsyncExitStack() as stack:
                alice = await stack.enter_async_context(connect(node_a.ws_url))
                bob = await stack.enter_async_context(connect(node_b.ws_url))
                for client, name in ((alice, "alice"), (bob, "bob")):
                    await client.send({"type": "LOGIN", "name": name})
                    assert (await until(client, "LOGIN"))["success"] is True
                call_id = await call(alice, bob, "bob")
                await _accepted(alice, bob, call_id)
                await alice.send({"type": "HANGUP", "call": call_id})
                await until(bob, "HANGUP")

                def call_events() -> list[str]:
                    return [
                        e["type"]
                        for e in verified(receiver.deliveries)
                        if e["type"].startswith("call.")
                    ]

                with trio.fail_after(20):
                    while len(call_events()) < 3:
                        await receiver.wait_for(len(receiver.deliveries) + 1, timeout=20)
                # Anything more would have come with the rest: one more event settles it.
                await alice.send({"type": "GETROOM", "value": ""})
                await until(alice, "GETROOM")
                await receiver.wait_for(len(receiver.deliveries) + 1, timeout=20)
        assert call_events() == ["call.ringing", "call.accepted", "call.ended"]
