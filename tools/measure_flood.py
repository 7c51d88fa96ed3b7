"""How much memory a flood of non-readers costs the server, against `--queue-budget`
(not a test; issue 23, "memory that the queue budget does not see").

PAIRS rooms of two: a sender that floods SIZE-byte messages (OFFERED bytes in all,
spread over the rooms) and a receiver that never reads its socket (its kernel receive
buffer shrunk, so what it does not take waits in the server). The server is the real
`python -m rtcserver` in a subprocess; its RSS is sampled from /proc while the flood
runs. Printed: RSS before, peak growth, growth / budget, closes by cause, and whether a
fresh pair still relays afterwards.

    .venv/bin/python tools/measure_flood.py                 # 40 pairs, 480 MB, defaults
    .venv/bin/python tools/measure_flood.py --size 200 --offered-mb 160 \
        --server-arg=--queue-budget=67108864                # 200 B messages, 64 MiB
    .venv/bin/python tools/measure_flood.py --server-dir /tmp/old   # an exported commit
    .venv/bin/python tools/measure_flood.py --tracemalloc   # where the memory lives

With --tracemalloc the server runs inside this process instead (the clients' memory is
filtered out by file), and a snapshot taken when the budget is 80% full is printed
grouped by line: what the budget counts (the mailboxes) and what it does not.
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import sys
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import trio
from wsproto.events import Message

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.faults.conftest import raise_nofile  # noqa: E402
from tests.faults.wsclient import Closed, WsClient  # noqa: E402
from tests.support.process import running_server  # noqa: E402

# Bounded whatever happens: the flood, and the whole run.
FLOOD_SECONDS = 60
RUN_SECONDS = 120
BATCH = 32


def rss(pid: int, field: str = "VmRSS") -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    match = re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE)
    assert match is not None
    return int(match.group(1)) * 1024


async def open_pair(port: int, rcvbuf: int) -> tuple[WsClient, WsClient]:
    """(sender, receiver) in one room; the receiver's kernel buffer shrunk to `rcvbuf`
    (0: the system's), and from now on nobody reads it."""
    sender = await WsClient.connect(port)
    receiver = await WsClient.connect(port)
    if rcvbuf:
        receiver.stream.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    await sender.send_json({"type": "GETROOM", "value": ""})
    room = (await sender.recv_json(10))["value"]
    await receiver.send_json({"type": "ENTERROOM", "value": room})
    assert await sender.recv_json(10) == {"type": "PEERJOINED"}
    return sender, receiver


async def flood(sender: WsClient, count: int, size: int) -> None:
    """Send `count` messages, or until the room says the receiver left (the sender
    reads, so it is never a non-reader itself)."""
    left = trio.Event()

    async def watch() -> None:
        while True:
            try:
                if json.loads(await sender.recv(FLOOD_SECONDS)) == {"type": "PEERLEFT"}:
                    break
            except (Closed, trio.TooSlowError):
                break
        left.set()

    # Framed (and masked) once, sent BATCH at a time: a Python client that masks every
    # frame could not flood faster than the server's write timeout closes its victims.
    pad = "f" * (size - 20)
    frame = sender.ws.send(Message(data=f'{{"type":"DATA","pad":"{pad}"}}'))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch)
        for _ in range(0, count, BATCH):
            if left.is_set():
                break
            try:
                await sender.send_raw(frame * BATCH)
            except (Closed, trio.BrokenResourceError):
                break
        nursery.cancel_scope.cancel()


async def relays(port: int) -> bool:
    """Whether a fresh pair relays a message both ways."""
    a = await WsClient.connect(port)
    b = await WsClient.connect(port)
    try:
        await a.send_json({"type": "GETROOM", "value": ""})
        room = (await a.recv_json())["value"]
        await b.send_json({"type": "ENTERROOM", "value": room})
        assert await a.recv_json() == {"type": "PEERJOINED"}
        await a.send('{"type":"hello"}')
        await b.send('{"type":"back"}')
        return await b.recv(10) == '{"type":"hello"}' and await a.recv(10) == '{"type":"back"}'
    finally:
        a.abort()
        b.abort()


async def run_flood(
    port: int, args: argparse.Namespace, sample: Callable[[], Awaitable[None]]
) -> tuple[list[tuple[WsClient, WsClient]], float]:
    pairs, size = args.pairs, args.size
    clients = [await open_pair(port, args.rcvbuf) for _ in range(pairs)]
    per_pair = args.offered_mb * 1_000_000 // pairs // size
    started = time.monotonic()
    with trio.move_on_after(FLOOD_SECONDS):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(sample)
            async with trio.open_nursery() as flooding:
                for sender, _ in clients:
                    flooding.start_soon(flood, sender, per_pair, size)
            nursery.cancel_scope.cancel()
    return clients, time.monotonic() - started


async def measure_process(args: argparse.Namespace) -> None:
    server_args = ["--log-level", "warning", "--stun", "", *args.server_arg]
    if not any(a.startswith("--rate-limit") for a in args.server_arg):
        server_args += ["--rate-limit", "0"]
    budget = 256 * 1024 * 1024
    for arg in args.server_arg:
        if arg.startswith("--queue-budget="):
            budget = int(arg.split("=", 1)[1])
    offered = args.offered_mb * 1_000_000
    where = Path(args.server_dir) if args.server_dir else ROOT
    with running_server(*server_args, cwd=where) as proc, trio.fail_after(RUN_SECONDS):
        pid = proc.proc.pid
        before = rss(pid)
        peak = before

        async def sample() -> None:
            nonlocal peak
            while True:
                peak = max(peak, rss(pid))
                await trio.sleep(0.02)

        clients, took = await run_flood(proc.port, args, sample)
        peak = max(peak, rss(pid), rss(pid, "VmHWM") if args.hwm else 0)
        ok = await relays(proc.port)
        closes = await closes_by_cause(proc.port)
        for sender, receiver in clients:
            sender.abort()
            receiver.abort()
    growth = peak - before
    print(
        f"{args.pairs} non-readers, {offered / 1e6:.0f} MB offered in {args.size} B messages "
        f"({took:.1f} s); budget {budget / 2**20:.0f} MiB; RSS before {before / 2**20:.0f} MiB, "
        f"peak growth {growth / 2**20:.0f} MiB = {growth / budget:.2f}x the budget; "
        f"closes {closes}; a fresh pair relays: {ok}"
    )


async def closes_by_cause(port: int) -> dict[str, int]:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        body = b""
        with trio.fail_after(10):
            while chunk := await stream.receive_some(65536):
                body += chunk
    found = re.findall(rb'^rtcserver_closes_total\{cause="([^"]+)"\} (\S+)$', body, re.M)
    return {cause.decode(): int(float(value)) for cause, value in found}


async def measure_tracemalloc(args: argparse.Namespace) -> None:
    from rtcserver.app import serve
    from rtcserver.settings import Settings

    overrides: dict[str, Any] = {"host": "127.0.0.1", "port": 0, "stun": (), "rate_limit": 0}
    overrides["log_level"] = "warning"
    if args.budget:
        overrides["queue_budget"] = args.budget
    settings = Settings(**overrides)
    tracemalloc.start(8)
    async with trio.open_nursery() as nursery:
        server = await nursery.start(serve, settings)
        budget = server.state.budget
        shot: list[tracemalloc.Snapshot] = []

        async def sample() -> None:
            while not shot:
                if budget.total > 0.8 * budget.limit:
                    shot.append(tracemalloc.take_snapshot())
                    counted = budget.total
                await trio.sleep(0.005)
            print(f"snapshot at {counted} bytes counted by the budget ({budget.limit})")

        clients, _ = await run_flood(server.port, args, sample)
        for sender, receiver in clients:
            sender.abort()
            receiver.abort()
        await server.shutdown()
        nursery.cancel_scope.cancel()
    if not shot:
        print("the budget was never 80% full: offer more")
        return
    keep = [
        tracemalloc.Filter(True, "*/rtcserver/*"),
        tracemalloc.Filter(True, "*/websockets/*"),
        tracemalloc.Filter(True, "*/trio/*"),
    ]
    snapshot = shot[0].filter_traces(keep)
    total = sum(stat.size for stat in snapshot.statistics("filename"))
    print(f"server-side allocations traced: {total / 2**20:.1f} MiB")
    for stat in snapshot.statistics("traceback")[:12]:
        newest = list(stat.traceback)[::-1][:4]
        frames = " <- ".join(f"{Path(frame.filename).name}:{frame.lineno}" for frame in newest)
        print(f"{stat.size / 2**20:8.1f} MiB {stat.count:8d} blocks  {frames}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=40)
    parser.add_argument("--offered-mb", type=int, default=480, help="MB offered in all")
    parser.add_argument("--size", type=int, default=2048, help="message size in bytes")
    parser.add_argument(
        "--rcvbuf", type=int, default=4096, help="receivers' SO_RCVBUF (0: the system's)"
    )
    parser.add_argument("--server-arg", action="append", default=[], metavar="ARG")
    parser.add_argument(
        "--server-dir", help="run the server from this source tree (an exported commit)"
    )
    parser.add_argument("--hwm", action="store_true", help="also count VmHWM (the peak)")
    parser.add_argument("--tracemalloc", action="store_true")
    parser.add_argument("--budget", type=int, default=0, help="--tracemalloc: queue budget")
    args = parser.parse_args()
    raise_nofile(4 * args.pairs + 1000)
    trio.run(measure_tracemalloc if args.tracemalloc else measure_process, args)


if __name__ == "__main__":
    main()
