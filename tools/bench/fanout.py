"""`--fanout`: what a multi-party room costs per delivered message, against rooms of two.

Starts one rtcserver (fresh for each layout) and runs a closed loop in each:

- `two-party`  rooms of two, ping-pong: one message in flight per room (the book's rooms:
               verbatim relay, no ids).
- `8-member`   rooms of eight (GETROOM `"capacity":8`): one message in flight per room;
               a member sends it without `to`, the server appends `"from"` and delivers
               it to the seven others, and once all seven have it the next member sends.
- `8-member-to` the same rooms, but every message names one receiver (`"to"`): the
               targeted path that a mesh's offers, answers and candidates take.

Every figure counts *delivered* messages (one per receiver), so a fan-out of seven
delivers seven per send. It reports delivered msgs/s and the server's CPU per
delivered message, with the ratio to `two-party`.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from . import procstat
from .client import Connection, Endpoint, close_all, connect
from .config import Plan
from .progress import say
from .rooms import BENCH_PREFIX, bench_message, pad_for
from .targets import rtcserver_launcher

LAYOUTS = ("two-party", "8-member", "8-member-to")
MEMBERS = 8


async def _open_room(
    url: Endpoint, size: int, timeout: float
) -> tuple[list[Connection], list[str]]:
    """A room of `size` members (capacity `size`); their connections and member ids."""
    async with asyncio.timeout(timeout):
        first = await connect(url)
        request: dict[str, Any] = {"type": "GETROOM", "value": ""}
        if size > 2:
            request["capacity"] = size
        first.send_json(request)
        room = (await first.receive_type("GETROOM"))["value"]
        members, ids = [first], [""]
        if size > 2:
            ids[0] = (await first.receive_type("ROOM"))["id"]
        for _ in range(size - 1):
            member = await connect(url)
            member.send_json({"type": "ENTERROOM", "value": room})
            if size > 2:
                ids.append((await member.receive_type("ROOM"))["id"])
            for other in members:
                await other.receive_type("PEERJOINED")
            members.append(member)
    return members, ids


async def _loop(
    url: Endpoint,
    layout: str,
    rooms: int,
    seconds: float,
    size: int,
    timeout: float,
    pid: int | None,
) -> dict[str, Any]:
    """Open the rooms (not measured), then run the loop for `seconds`, reading the
    server's CPU time at the window's two edges."""
    members = 2 if layout == "two-party" else MEMBERS
    targeted = layout == "8-member-to"
    opened = [await _open_room(url, members, timeout) for _ in range(rooms)]
    pad = pad_for(size)
    counts = {"sent": 0, "delivered": 0, "in_window": 0, "other": 0}
    start = time.monotonic_ns() + 200_000_000
    end = start + int(seconds * 1e9)

    def wire_room(conns: list[Connection], ids: list[str]) -> Callable[[], None]:
        turn = itertools.cycle(range(len(conns)))
        state = {"waiting": 0, "sender": 0}
        expected = 1 if targeted or members == 2 else members - 1

        def send_next() -> None:
            sender = next(turn)
            state["sender"], state["waiting"] = sender, expected
            message = bench_message(time.monotonic_ns(), counts["sent"], pad)
            if targeted:
                receiver = ids[(sender + 1) % len(ids)]
                message = message[:-1] + b',"to":' + orjson.dumps(receiver) + b"}"
            conns[sender].send(message)
            counts["sent"] += 1

        def on_text(payload: bytes) -> None:
            now = time.monotonic_ns()
            if not payload.startswith(BENCH_PREFIX):
                counts["other"] += 1
                return
            counts["delivered"] += 1
            if now < end:
                counts["in_window"] += 1
            state["waiting"] -= 1
            if state["waiting"] == 0 and now < end:
                send_next()

        for conn in conns:
            conn.on_text = on_text
        return send_next

    starters = [wire_room(conns, ids) for conns, ids in opened]
    await asyncio.sleep(max(0.0, (start - time.monotonic_ns()) / 1e9))
    cpu_start = procstat.cpu_seconds(pid) if pid else 0.0
    for begin in starters:
        begin()
    await asyncio.sleep(max(0.0, (end - time.monotonic_ns()) / 1e9))
    cpu = (procstat.cpu_seconds(pid) if pid else 0.0) - cpu_start
    await close_all([c for conns, _ in opened for c in conns])
    return {"rooms": len(opened), "members": members, "server_cpu": cpu, **counts}


def _measure(layout: str, url: str, pid: int | None, plan: Plan, size: int) -> dict[str, Any]:
    # Rooms of eight hold four times the connections: a quarter as many rooms.
    rooms = max(1, plan.pingpong_rooms // (1 if layout == "two-party" else 4))
    seconds = plan.pingpong_seconds
    result = asyncio.run(
        _loop(Endpoint.resolve(url), layout, rooms, seconds, size, plan.setup_timeout, pid)
    )
    delivered = result["in_window"]
    figures = {
        "layout": layout,
        "rooms": result["rooms"],
        "members": result["members"],
        "size": size,
        "delivered_per_s": delivered / seconds,
        "server_cpu_us_per_delivered": result["server_cpu"] / max(delivered, 1) * 1e6,
        "server_cpu_cores": result["server_cpu"] / seconds,
        "unexpected": result["other"],
    }
    say(
        f"{layout:>12}: {figures['delivered_per_s']:9.0f} delivered/s  server CPU "
        f"{figures['server_cpu_us_per_delivered']:.1f} µs/delivered"
    )
    return figures


def run_fanout(plan: Plan, log_dir: Path, pin: bool, json_path: Path | None) -> int:
    """The `--fanout` run: three layouts on fresh servers, one table. Exit status 0, 1
    (a layout delivered nothing or saw unexpected messages) or 2 (no server)."""
    size = plan.payloads[0]
    launch = rtcserver_launcher(log_dir, pin, ["--log-level", "warning"])
    results: list[dict[str, Any]] = []
    try:
        for layout in LAYOUTS:
            target = launch()
            try:
                results.append(_measure(layout, target.ws_url, target.pid, plan, size))
            finally:
                target.stop()
    except RuntimeError as exc:
        say(str(exc))
        return 2
    base = results[0]["server_cpu_us_per_delivered"]
    print(f"\nfan-out: rooms of {MEMBERS} vs rooms of two ({size} B, "
          f"{plan.pingpong_seconds:g} s closed loop each)")  # fmt: skip
    print(f"{'layout':>12} {'rooms':>6} {'delivered/s':>12} {'CPU µs/deliv':>13} "
          f"{'÷two-party':>11}")  # fmt: skip
    for r in results:
        print(
            f"{r['layout']:>12} {r['rooms']:6d} {r['delivered_per_s']:12.0f} "
            f"{r['server_cpu_us_per_delivered']:13.1f} "
            f"{r['server_cpu_us_per_delivered'] / base if base else float('nan'):11.2f}"
        )
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps({"fanout": results}, indent=2))
    return 1 if any(r["unexpected"] or not r["delivered_per_s"] for r in results) else 0
