"""The queue budget bounds the server's memory, not only its count (issue 23).

Real server in a subprocess (its RSS is read from /proc), real sockets. Receivers that
never read are flooded with 200-byte messages, where the memory of each queued object
matters most; the budget counts it (docs/PROTOCOL.md, "Limits"), so RSS grows by at
most 1.25x the budget plus a fixed allowance for the process's own growth under load.
Measured (tools/measure_flood.py, the same flood): 20-21 MiB for this 16 MiB budget;
27-28 MiB when only payloads were counted. Nothing here is timed.
"""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

import trio
from wsproto.events import Message

from tests.faults.conftest import raise_nofile
from tests.faults.harness import bystanders
from tests.faults.wsclient import WsClient
from tests.support.process import running_server

PAIRS = 16
BUDGET = 16 * 1024 * 1024
PER_RECEIVER = 6_000_000  # 96 MB offered in all: six times the budget
SIZE = 200
# Python's own growth while it reads and relays the flood (parsing, frames, the
# allocator's free lists), whatever the budget: measured 4-5 MiB.
ALLOWANCE = 6 * 1024 * 1024
BATCH = 32


def _status(pid: int, field: str) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    match = re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE)
    assert match is not None
    return int(match.group(1)) * 1024


async def _pair(port: int) -> tuple[WsClient, WsClient]:
    """(sender, receiver) in one room; the receiver's kernel buffer shrunk, so what it
    does not read waits in the server, and nobody reads it until the flood is over."""
    sender = await WsClient.connect(port)
    receiver = await WsClient.connect(port)
    receiver.stream.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    await sender.send_json({"type": "GETROOM", "value": ""})
    room = (await sender.recv_json(10))["value"]
    await receiver.send_json({"type": "ENTERROOM", "value": room})
    assert await sender.recv_json(10) == {"type": "PEERJOINED"}
    return sender, receiver


async def _flood(sender: WsClient, left: trio.Event) -> None:
    """Offer PER_RECEIVER bytes, or stop once the room says the receiver left. The
    frame is built (and masked) once: a client masking each frame in Python would be
    slower than the flood needs to be."""

    async def watch() -> None:
        while True:
            if json.loads(await sender.recv(60)) == {"type": "PEERLEFT"}:
                left.set()
                return

    frame = sender.ws.send(Message(data='{"type":"DATA","pad":"' + "f" * (SIZE - 24) + '"}'))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch)
        for _ in range(0, PER_RECEIVER // SIZE, BATCH):
            if left.is_set():
                break
            await sender.send_raw(frame * BATCH)
        nursery.cancel_scope.cancel()


async def _late_departure(sender: WsClient, left: trio.Event) -> None:
    with trio.move_on_after(2):
        while json.loads(await sender.recv(5)) != {"type": "PEERLEFT"}:
            pass
        left.set()


async def _close_code_at_the_end(receiver: WsClient) -> int | None:
    """Read the raw stream to its end (faster than parsing megabytes of frames); the
    code of the close frame it ends with, if it ends with one. Its receive buffer is
    widened first, or the 4 KiB window would let the kernel's backlog trickle in."""
    receiver.stream.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    tail = b""
    while chunk := await receiver.stream.receive_some(1 << 20):
        tail = (tail + chunk)[-256:]
    for length in range(2, 126):  # a close frame from the server: 0x88, length, code, reason
        if len(tail) >= length + 2 and tail[-length - 2] == 0x88 and tail[-length - 1] == length:
            return int.from_bytes(tail[-length : -length + 2], "big")
    return None


async def _closes(port: int) -> dict[str, int]:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        body = b""
        while chunk := await stream.receive_some(65536):
            body += chunk
    found = re.findall(rb'^rtcserver_closes_total\{cause="([^"]+)"\} (\S+)$', body, re.M)
    return {cause.decode(): int(float(value)) for cause, value in found}


async def test_flooded_non_readers_grow_rss_by_at_most_1_25x_the_budget() -> None:
    raise_nofile(4 * PAIRS + 1000)
    with (
        running_server(
            "--log-level", "warning",
            "--rate-limit", "0",
            "--queue-budget", str(BUDGET),
            # Both under the budget, so it is the budget that closes the receivers.
            "--mailbox-hard-limit", str(BUDGET // 2),
            "--mailbox-soft-limit", str(BUDGET // 2),
            # No write may time out meanwhile: every close here is the budget's.
            "--keepalive-timeout", "120",
        ) as proc,
        trio.fail_after(120),
    ):  # fmt: skip
        pid = proc.proc.pid
        async with bystanders(proc.port, pairs=2, period=0.01) as watch:
            pairs = [await _pair(proc.port) for _ in range(PAIRS)]
            before = _status(pid, "VmRSS")
            left = [trio.Event() for _ in pairs]
            async with trio.open_nursery() as nursery:
                for (sender, _), gone in zip(pairs, left, strict=True):
                    nursery.start_soon(_flood, sender, gone)
            # A receiver evicted by another sender's message after its own sender was
            # done: the PEERLEFT waits at that sender (no more floods: no more evictions).
            async with trio.open_nursery() as nursery:
                for (sender, _), gone in zip(pairs, left, strict=True):
                    if not gone.is_set():
                        nursery.start_soon(_late_departure, sender, gone)
            peak = _status(pid, "VmHWM")
            await watch.wait_rounds(10)  # the bystanders still relay after the flood
        watch.check(max_latency=30.0)  # generous: only a stall would reach it
        closes = await _closes(proc.port)
        evicted = [
            receiver for (_, receiver), gone in zip(pairs, left, strict=True) if gone.is_set()
        ]
        # Each evicted receiver's stream ends (EOF), with the budget's close frame, 4000,
        # or none if a frame was half-written (docs/PROTOCOL.md, close codes).
        # The server has closed them (its kernel still delivers what it had queued):
        # read them all at once, each through its slowly widening window.
        codes: set[int | None] = set()

        async def end_of(receiver: WsClient) -> None:
            codes.add(await _close_code_at_the_end(receiver))

        async with trio.open_nursery() as nursery:
            for receiver in evicted:
                nursery.start_soon(end_of, receiver)
        for sender, receiver in pairs:
            sender.abort()
            receiver.abort()
    growth = peak - before
    print(
        f"{PAIRS} non-readers offered {PAIRS * PER_RECEIVER >> 20} MiB; RSS grew "
        f"{growth / 2**20:.1f} MiB for a {BUDGET >> 20} MiB budget; closes {closes}"
    )
    assert evicted, "the budget closed nobody: the flood did not reach it"
    assert closes.get("budget", 0) == len(evicted), closes
    assert codes <= {4000, None}, codes
    assert growth <= 1.25 * BUDGET + ALLOWANCE
