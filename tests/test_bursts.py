"""Nothing lost under bursts: byte-bounded mailboxes, and throttling instead of drops.

Real server, real sockets. The receivers are raw clients (tests/faults/wsclient.py)
that read only when told to, so "B reads later" and "B never reads" are exact.
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import trio

from tests.conftest import StartServer
from tests.faults.conftest import raise_nofile
from tests.faults.harness import bystanders, percentile
from tests.faults.wsclient import Closed, WsClient
from tests.support.process import running_server


@asynccontextmanager
async def room_pair(port: int) -> AsyncIterator[tuple[WsClient, WsClient]]:
    """(a, b) in one room; b entered second, and a has seen PEERJOINED."""
    a = await WsClient.connect(port)
    b = await WsClient.connect(port)
    try:
        await a.send_json({"type": "GETROOM", "value": ""})
        room = (await a.recv_json())["value"]
        await b.send_json({"type": "ENTERROOM", "value": room})
        assert await a.recv_json() == {"type": "PEERJOINED"}
        yield a, b
    finally:
        a.abort()
        b.abort()


def shrink_receive_buffer(client: WsClient, size: int = 4096) -> None:
    """A receiver on a slow link: the kernel holds little for it, so what it does not
    read waits in the server."""
    client.stream.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)


async def read_all(client: WsClient, count: int, timeout: float) -> list[str]:
    with trio.fail_after(timeout):
        return [await client.recv(timeout) for _ in range(count)]


async def test_a_burst_of_2000_small_messages_arrives_whole_at_default_settings(
    start_server: StartServer,
) -> None:
    server = await start_server()
    async with room_pair(server.port) as (a, b):
        sent = [json.dumps({"type": "DATA", "i": i, "pad": "x" * 70}) for i in range(2000)]
        for text in sent:  # b reads nothing until the whole burst has been sent
            await a.send(text)
        assert await read_all(b, len(sent), timeout=20) == sent
        assert a.close_code is None and b.close_code is None


async def test_a_2mb_burst_of_2kb_messages_arrives_whole_at_default_settings(
    start_server: StartServer,
) -> None:
    server = await start_server()
    async with room_pair(server.port) as (a, b):
        shrink_receive_buffer(b, 64 * 1024)
        sent = [json.dumps({"type": "DATA", "i": i, "pad": "y" * 2000}) for i in range(1000)]
        for text in sent:
            await a.send(text)
        assert await read_all(b, len(sent), timeout=30) == sent
        assert server.state.counters["mailbox-overflow"] == 0


async def test_20000_messages_over_the_rate_are_throttled_not_dropped(
    start_server: StartServer,
) -> None:
    # The rate is raised so the test takes seconds, not the default's 40; the sender
    # (a raw client, several thousand messages a second) is well over it all the same.
    server = await start_server(rate_limit=1500, rate_burst=100)
    async with room_pair(server.port) as (a, b):
        sent = [f'{{"type":"DATA","i":{i}}}' for i in range(20_000)]
        async with trio.open_nursery() as nursery:
            got: list[str] = []

            async def receive() -> None:
                got.extend(await read_all(b, len(sent), timeout=60))

            nursery.start_soon(receive)
            for text in sent:
                await a.send(text)
        assert got == sent
        assert server.state.throttled_seconds > 0  # it was slowed down, not cut
        assert a.close_code is None and b.close_code is None


async def test_a_receiver_at_a_quarter_of_the_senders_pace_gets_everything(
    start_server: StartServer,
) -> None:
    server = await start_server()
    async with room_pair(server.port) as (a, b):
        shrink_receive_buffer(b, 64 * 1024)
        sent = [json.dumps({"type": "DATA", "i": i, "pad": "z" * 3000}) for i in range(600)]
        got: list[str] = []

        async def slow_reader() -> None:
            with trio.fail_after(30):
                for _ in sent:
                    got.append(await b.recv(10))
                    await trio.sleep(1 / 120)  # a quarter of the sender's pace

        async with trio.open_nursery() as nursery:
            nursery.start_soon(slow_reader)
            for text in sent:  # 480 msgs/s, 1.4 MB/s, for 1.25 s
                await a.send(text)
                await trio.sleep(1 / 480)
            peak = server.state.budget.total
        assert got == sent
        assert b.close_code is None
        assert server.state.counters["mailbox-overflow"] == 0
        print(f"queued for the slow reader when the sender finished: {peak} bytes")


async def flood_until_peerleft(sender: WsClient, size: int, limit: int) -> int:
    """Send `size`-byte messages until the room is told the receiver left (bounded:
    `limit` messages). Returns how many went out. The sender is never blocked."""
    peerleft = trio.Event()

    async def watch() -> None:
        while True:
            message = json.loads(await sender.recv(30))
            if message == {"type": "PEERLEFT"}:
                peerleft.set()
                return

    pad = "f" * size
    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch)
        sent = 0
        with trio.fail_after(30):
            while not peerleft.is_set() and sent < limit:
                await sender.send(f'{{"type":"DATA","i":{sent},"pad":"{pad}"}}')
                sent += 1
                if sent % 64 == 0:
                    await trio.lowlevel.checkpoint()
            await peerleft.wait()
    return sent


async def test_a_receiver_that_never_reads_is_closed_over_the_hard_limit(
    start_server: StartServer,
) -> None:
    server = await start_server(
        mailbox_hard_limit=1024 * 1024, mailbox_soft_limit=1024 * 1024, rate_limit=0
    )
    async with (
        bystanders(server.port, pairs=3, period=0.01) as watch,
        room_pair(server.port) as (a, b),
    ):
        shrink_receive_buffer(b)
        sent = await flood_until_peerleft(a, 2000, limit=20_000)
        assert server.state.counters["close:hard-limit"] == 1
        # The sender carries on: each later message is answered, not lost silently.
        for i in range(3):
            await a.send(f'{{"type":"DATA","after":{i}}}')
            reply = await a.recv_json()
            assert (reply["type"], reply["code"]) == ("ERROR", "no-peer")
        await watch.wait_rounds(10)
    watch.check(max_latency=2.0)
    p99 = percentile(watch.latencies, 99) * 1e3
    print(f"closed after {sent} x 2 KB; bystanders' p99 {p99:.2f} ms")


async def test_a_receiver_over_the_soft_limit_past_its_grace_is_closed(
    start_server: StartServer,
) -> None:
    server = await start_server(
        mailbox_soft_limit=256 * 1024,
        mailbox_soft_seconds=0.5,
        mailbox_hard_limit=256 * 1024 * 1024,
        queue_budget=256 * 1024 * 1024,
        rate_limit=0,
    )
    async with room_pair(server.port) as (a, b):
        shrink_receive_buffer(b)
        await flood_until_peerleft(a, 2000, limit=20_000)
        closes = {k: v for k, v in server.state.counters.items() if k.startswith("close:")}
        assert closes == {"close:soft-limit": 1}, closes


def _status(pid: int, field: str) -> int:
    """A /proc/PID/status figure, in bytes."""
    text = Path(f"/proc/{pid}/status").read_text()
    match = re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE)
    assert match is not None
    return int(match.group(1)) * 1024


async def test_hundreds_of_flooded_non_readers_stay_within_the_server_budget() -> None:
    pairs, budget, per_receiver = 200, 32 * 1024 * 1024, 1024 * 1024
    raise_nofile(4 * pairs + 1000)
    with running_server(
        "--log-level", "warning",
        "--rate-limit", "0",
        "--queue-budget", str(budget),
        "--mailbox-hard-limit", str(4 * per_receiver),
        "--mailbox-soft-limit", str(2 * per_receiver),
    ) as proc:  # fmt: skip
        pid = proc.proc.pid
        async with trio.open_nursery() as nursery:
            clients: list[tuple[WsClient, WsClient]] = []
            for _ in range(pairs):
                pair = await nursery.start(_hold_pair, proc.port)
                clients.append(pair)
            before = _status(pid, "VmRSS")
            pad = "b" * 8000
            message_count = per_receiver // len(pad)

            async def flood(sender: WsClient) -> None:
                for i in range(message_count):
                    try:
                        await sender.send(f'{{"type":"DATA","i":{i},"pad":"{pad}"}}')
                    except (Closed, trio.BrokenResourceError):
                        return

            with trio.fail_after(120):
                async with trio.open_nursery() as flooding:
                    for sender, _ in clients:
                        flooding.start_soon(flood, sender)
            peak = _status(pid, "VmHWM")
            # The server still serves: a new pair relays.
            async with room_pair(proc.port) as (a, b):
                await a.send('{"type":"hello"}')
                assert await b.recv(10) == '{"type":"hello"}'
            health = await _metrics(proc.port)
            nursery.cancel_scope.cancel()
        offered = pairs * message_count * len(pad)
        overhead = 96 * 1024 * 1024  # Python's own growth: parsing, frames, allocator slack
        print(
            f"{pairs} non-readers offered {offered >> 20} MB; RSS {before >> 20} MB before, "
            f"peak {peak >> 20} MB; budget {budget >> 20} MB; "
            f"closed for the budget: {health.get('budget', 0)}"
        )
        assert peak - before < budget + overhead
        assert health.get("budget", 0) >= 1


async def _hold_pair(port: int, *, task_status: trio.TaskStatus[tuple[WsClient, WsClient]]) -> None:
    async with room_pair(port) as (a, b):
        shrink_receive_buffer(b)
        task_status.started((a, b))
        await trio.sleep_forever()


async def _metrics(port: int) -> dict[str, int]:
    """The `rtcserver_closes_total{cause=...}` counters from /metrics."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        body = b""
        with trio.fail_after(10):
            while chunk := await stream.receive_some(65536):
                body += chunk
    closes = re.findall(rb'^rtcserver_closes_total\{cause="([^"]+)"\} (\S+)$', body, re.M)
    return {cause.decode(): int(float(value)) for cause, value in closes}


async def test_a_departure_is_not_delayed_by_an_unanswered_ping(
    start_server: StartServer,
) -> None:
    """Security issue, item 11: PEERLEFT goes out at once, even while the server waits
    for the peer's pong (the writer never waits for pongs)."""
    server = await start_server(keepalive_interval=0.2, keepalive_timeout=30.0)
    async with room_pair(server.port) as (a, b):
        raw = b.stream  # read b's bytes ourselves: no pong is ever sent
        seen = b""
        with trio.fail_after(10):
            while b"\x89" not in seen:  # a ping frame (FIN + opcode 9) reached b
                seen += await raw.receive_some(4096)
        await a.close()
        with trio.fail_after(5):  # far below keepalive_timeout: not held behind the ping
            while b"PEERLEFT" not in seen:
                seen += await raw.receive_some(4096)
