"""Overload and shutdown, against a real `python -m rtcserver` process.

- 5,000 idle WebSocket connections plus an abusive client (a message flood, oversized
  frames, garbage JSON, binary frames, garbage HTTP) while well-behaved pairs relay:
  the pairs see no error, their p99 relay latency is printed and bounded, and the
  abuser gets the named answers (a flood past the burst is throttled and still served,
  1009, ERRORs, 400).
- SIGTERM with 1,000 live connections: every client gets close 1001 and the process
  exits 0 within the drain deadline.

RLIMIT_NOFILE is raised here (both ends of every connection live on this machine,
and the server process inherits the limit).
"""

from __future__ import annotations

import json
import signal
import time

import trio

from tests.support.process import running_server

from .conftest import raise_nofile
from .harness import bystanders, percentile, summary
from .wsclient import HOST, Closed, WsClient

IDLE = 5_000
FLOOD_BURST = 2_000  # Settings.rate_burst's default
LIVE_AT_SHUTDOWN = 1_000


async def open_many(port: int, count: int, clients: list[WsClient], parallel: int = 100) -> None:

    async def opener(share: int) -> None:
        for _ in range(share):
            clients.append(await WsClient.connect(port))

    with trio.fail_after(120):
        async with trio.open_nursery() as nursery:
            for i in range(parallel):
                nursery.start_soon(opener, count // parallel + (1 if i < count % parallel else 0))


async def abuse(port: int, stop: trio.Event, answers: dict[str, int]) -> None:
    """Cycle through abuse until `stop` (bounded in rounds too)."""

    def note(what: str) -> None:
        answers[what] = answers.get(what, 0) + 1

    for _ in range(200):
        if stop.is_set():
            return
        # A flood: 1,000 messages past the burst. It is throttled (read at the rate),
        # never closed: every message is answered (ERROR not-in-room: it is in no
        # room), in order, and then its GETROOM is.
        flooder = await WsClient.connect(port)
        try:
            flood = FLOOD_BURST + 1_000
            for i in range(flood):
                await flooder.send(json.dumps({"type": "DATA", "i": i}))
            await flooder.send(json.dumps({"type": "GETROOM", "value": ""}))
            kinds = [json.loads(await flooder.recv(15))["type"] for _ in range(flood + 1)]
            served = kinds == ["ERROR"] * flood + ["GETROOM"]
            note("flood-served" if served else "flood-mangled")
        except (Closed, trio.BrokenResourceError):
            note("flood-close-abrupt")
        finally:
            flooder.abort()
        # An oversized frame: close 1009.
        big = await WsClient.connect(port)
        try:
            await big.send("x" * (64 * 1024 + 1))
            note(f"oversize-close-{await big.wait_closed(10)}")
        except (Closed, trio.BrokenResourceError):
            note("oversize-close-abrupt")
        finally:
            big.abort()
        # Garbage JSON and binary frames: ERRORs, the connection stays.
        junk = await WsClient.connect(port)
        try:
            for _ in range(20):
                await junk.send("{garbage")
                await junk.send_bytes(b"\xff" * 100)
            replies = [json.loads(await junk.recv(5)) for _ in range(40)]
            note(f"junk-errors-{sum(1 for r in replies if r['type'] == 'ERROR')}")
        finally:
            await junk.close()
        # Garbage HTTP: 400.
        stream = await trio.open_tcp_stream(HOST, port)
        async with stream:
            await stream.send_all(b"\x16\x03\x01garbage\r\n\r\n")
            with trio.fail_after(5):
                answer = await stream.receive_some(100)
            note(f"http-{answer[9:12].decode(errors='replace')}")


async def test_pairs_keep_relaying_beside_5000_idle_connections_and_an_abuser() -> None:
    raise_nofile(2 * IDLE + 2_000)
    with running_server(
        "--log-level", "warning", "--keepalive-interval", "120", "--max-connections", "10000"
    ) as proc:
        idle: list[WsClient] = []
        try:
            started = time.monotonic()
            await open_many(proc.port, IDLE, idle)
            print(f"{IDLE} idle connections opened in {time.monotonic() - started:.1f}s")
            answers: dict[str, int] = {}
            stop = trio.Event()
            async with (
                bystanders(proc.port, pairs=10, period=0.02) as watch,
                trio.open_nursery() as nursery,
            ):
                nursery.start_soon(abuse, proc.port, stop, answers)
                await watch.wait_rounds(10 * 250, timeout=60)  # ~5 s of relaying
                stop.set()
            print(f"relay beside {IDLE} idle + abuse: {summary(watch.latencies)}")
            print(f"p99 relay latency: {percentile(watch.latencies, 99) * 1e3:.2f} ms")
            print(f"abuser's answers: {sorted(answers.items())}")
            watch.check(max_latency=2.0)
            assert percentile(watch.latencies, 99) < 0.25
            assert answers.get("flood-served", 0) >= 1, answers
            assert "flood-mangled" not in answers and "flood-close-abrupt" not in answers
            assert answers.get("oversize-close-1009", 0) >= 1, answers
            assert answers.get("junk-errors-40", 0) >= 1, answers
            assert answers.get("http-400", 0) >= 1, answers
            # The idle ones are all still there.
            stream = await trio.open_tcp_stream(HOST, proc.port)
            async with stream:
                await stream.send_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                body = b""
                with trio.fail_after(5):
                    while chunk := await stream.receive_some(65536):
                        body += chunk
            health = json.loads(body.split(b"\r\n\r\n", 1)[1])
            assert health["connections"] >= IDLE, health
        finally:
            for client in idle:
                client.abort()


async def test_sigterm_with_1000_live_connections_closes_all_with_1001() -> None:
    raise_nofile(2 * LIVE_AT_SHUTDOWN + 1_000)
    with running_server("--log-level", "warning") as proc:
        clients: list[WsClient] = []
        try:
            await open_many(proc.port, LIVE_AT_SHUTDOWN, clients)
            codes: list[int | None] = []

            async def await_goodbye(client: WsClient) -> None:
                codes.append(await client.wait_closed(timeout=30))

            async with trio.open_nursery() as nursery:
                for client in clients:
                    nursery.start_soon(await_goodbye, client)
                await trio.testing.wait_all_tasks_blocked(0.1)
                started = time.monotonic()
                proc.proc.send_signal(signal.SIGTERM)
                with trio.fail_after(30):
                    returncode = await trio.to_thread.run_sync(proc.proc.wait)
                elapsed = time.monotonic() - started
            drain = 5.0  # Settings.drain_timeout's default
            print(
                f"SIGTERM with {LIVE_AT_SHUTDOWN} connections: exit {returncode} "
                f"in {elapsed:.2f}s; close codes {sorted(set(map(str, codes)))}"
            )
            assert returncode == 0
            assert elapsed < drain
            assert codes == [1001] * LIVE_AT_SHUTDOWN
        finally:
            for client in clients:
                client.abort()
