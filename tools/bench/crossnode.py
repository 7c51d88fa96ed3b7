"""`--cluster`: what crossing nodes costs, measured against one node in the same run.

Starts a private redis-server (Debian's `/usr/bin/redis-server`, on a free port in a
temporary directory) and three rtcserver targets, fresh for each layout:

- `single`      one rtcserver without Redis; both ends of every room on it.
- `same-node`   two nodes in cluster mode; both ends of every room on node A
                (the local path with cluster mode on: relay stays in memory).
- `cross-node`  the same two nodes; creator on A, joiner on B: every message goes
                A -> B over the nodes' direct link (and back over B's link to A);
                Redis holds the rooms and the nodes' addresses.

Each layout runs the ping-pong load (closed loop, one message in flight per room,
`--rooms` rooms, `--seconds`, the first of `--payloads`) from this process, and reports
relayed msgs/s, one-way latency percentiles and the servers' CPU per message (every
rtcserver node and redis-server counted).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import tempfile
import time
from array import array
from pathlib import Path
from typing import Any

from . import procstat
from .client import Connection, Endpoint, close_all, connect
from .config import Plan
from .progress import say
from .rooms import BENCH_PREFIX, bench_message, pad_for, sent_ns
from .stats import latency_summary_ms
from .targets import Target, rtcserver_launcher

REDIS_SERVER = "/usr/bin/redis-server"
LAYOUTS = ("single", "same-node", "cross-node")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_redis(directory: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = _free_port()
    proc = subprocess.Popen(
        [REDIS_SERVER, "--bind", "127.0.0.1", "--port", str(port), "--save", "",
         "--appendonly", "no", "--dir", str(directory)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc, port
        if proc.poll() is not None:
            break
        time.sleep(0.02)
    proc.kill()
    raise RuntimeError(f"redis-server did not start on 127.0.0.1:{port}")


async def _open(a: Endpoint, b: Endpoint, timeout: float) -> tuple[Connection, Connection]:
    async with asyncio.timeout(timeout):
        creator = await connect(a)
        creator.send_json({"type": "GETROOM", "value": ""})
        room = (await creator.receive_type("GETROOM"))["value"]
        joiner = await connect(b)
        joiner.send_json({"type": "ENTERROOM", "value": room})
        await creator.receive_type("PEERJOINED")
    return creator, joiner


async def _pingpong(
    a: Endpoint, b: Endpoint, rooms: int, seconds: float, size: int, timeout: float
) -> dict[str, Any]:
    pairs: list[tuple[Connection, Connection]] = []
    for _ in range(rooms):
        pairs.append(await _open(a, b, timeout))
    pad = pad_for(size)
    latency: array[int] = array("q")
    counts = {"sent": 0, "received": 0, "in_window": 0, "other": 0}
    start = time.monotonic_ns() + 200_000_000
    end = start + int(seconds * 1e9)

    def answerer(me: Connection) -> Any:
        def on_text(payload: bytes) -> None:
            now = time.monotonic_ns()
            if not payload.startswith(BENCH_PREFIX):
                counts["other"] += 1
                return
            counts["received"] += 1
            if now < end:
                counts["in_window"] += 1
                if now >= start:
                    latency.append(now - sent_ns(payload))
                me.send(bench_message(now, counts["sent"], pad))
                counts["sent"] += 1

        return on_text

    for creator, joiner in pairs:
        creator.on_text = answerer(creator)
        joiner.on_text = answerer(joiner)
    await asyncio.sleep(max(0.0, (start - time.monotonic_ns()) / 1e9))
    in_window_at_start = counts["in_window"]
    for creator, _ in pairs:
        creator.send(bench_message(time.monotonic_ns(), counts["sent"], pad))
        counts["sent"] += 1
    await asyncio.sleep(max(0.0, (end - time.monotonic_ns()) / 1e9))
    deadline = time.monotonic() + timeout
    while counts["received"] < counts["sent"] and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    await close_all([c for pair in pairs for c in pair])
    return {
        "rooms": len(pairs),
        "received_in_window": counts["in_window"] - in_window_at_start,
        "lost": counts["sent"] - counts["received"],
        "unexpected": counts["other"],
        "latency": latency,
    }


def _measure(
    name: str, ends: tuple[Target, Target], pids: list[int], plan: Plan, size: int
) -> dict[str, Any]:
    cpu0 = procstat.total_cpu_seconds(pids)
    self0 = procstat.cpu_seconds(_self_pid())
    t0 = time.monotonic()
    result = asyncio.run(
        _pingpong(
            Endpoint.resolve(ends[0].ws_url),
            Endpoint.resolve(ends[1].ws_url),
            plan.pingpong_rooms,
            plan.pingpong_seconds,
            size,
            plan.setup_timeout,
        )
    )
    wall = time.monotonic() - t0
    server_cpu = procstat.total_cpu_seconds(pids) - cpu0
    loadgen_cpu = procstat.cpu_seconds(_self_pid()) - self0
    relayed = result["received_in_window"]
    figures = {
        "layout": name,
        "rooms": result["rooms"],
        "size": size,
        "msgs_per_s": relayed / plan.pingpong_seconds,
        **latency_summary_ms(result["latency"]),
        "server_cpu_us_per_msg": server_cpu / max(relayed, 1) * 1e6,
        "loadgen_cpu_cores": loadgen_cpu / max(wall, 1e-9),
        "lost": result["lost"],
        "unexpected": result["unexpected"],
    }
    say(
        f"{name:>10}: {figures['msgs_per_s']:9.0f} msgs/s  p50 {figures['p50_ms']:.3f} ms  "
        f"p99 {figures['p99_ms']:.3f} ms  server CPU {figures['server_cpu_us_per_msg']:.0f} "
        f"µs/msg  lost {figures['lost']}"
    )
    return figures


def _self_pid() -> int:
    import os

    return os.getpid()


def run_cluster(
    plan: Plan, log_dir: Path, pin: bool, json_path: Path | None, source: Path | None = None
) -> int:
    """The `--cluster` run: three layouts, one table (rtcserver from `source`, a checkout,
    with --server-dir). Exit status 0, 1 (a layout lost messages or failed), or 2 (a
    server or Redis could not be started)."""
    if not Path(REDIS_SERVER).exists():
        say(f"{REDIS_SERVER} is missing (apt-get install redis-server)")
        return 2
    size = plan.payloads[0]
    redis_dir = Path(tempfile.mkdtemp(prefix="rtcbench-redis-"))
    results: list[dict[str, Any]] = []
    try:
        redis, port = _start_redis(redis_dir)
    except RuntimeError as exc:
        say(str(exc))
        return 2
    try:
        cluster_args = ["--redis", f"redis://127.0.0.1:{port}/0", "--log-level", "warning"]
        for layout in LAYOUTS:
            if layout == "single":
                launch = rtcserver_launcher(log_dir, pin, ["--log-level", "warning"], source)
                targets = [launch()]
                ends = (targets[0], targets[0])
            else:
                launch = rtcserver_launcher(log_dir, pin, cluster_args, source)
                targets = [launch(), launch()]
                ends = (targets[0], targets[0] if layout == "same-node" else targets[1])
            try:
                pids = [t.pid for t in targets if t.pid]
                if layout != "single":
                    pids.append(redis.pid)
                results.append(_measure(layout, ends, pids, plan, size))
            finally:
                for target in targets:
                    target.stop()
    except RuntimeError as exc:
        say(str(exc))
        return 2
    finally:
        redis.terminate()
        try:
            redis.wait(timeout=10)
        except subprocess.TimeoutExpired:
            redis.kill()
            redis.wait()
        shutil.rmtree(redis_dir, ignore_errors=True)
    base = results[0]
    print(f"\ncross-node relay vs one node ({plan.pingpong_rooms} rooms, {size} B, "
          f"{plan.pingpong_seconds:g} s ping-pong each)")  # fmt: skip
    print(f"{'layout':>10} {'msgs/s':>9} {'÷single':>8} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'CPU µs/msg':>11} {'lost':>5}")  # fmt: skip
    for r in results:
        ratio = r["msgs_per_s"] / base["msgs_per_s"] if base["msgs_per_s"] else float("nan")
        print(
            f"{r['layout']:>10} {r['msgs_per_s']:9.0f} {ratio:8.2f} {r['p50_ms']:8.3f} "
            f"{r['p99_ms']:8.3f} {r['server_cpu_us_per_msg']:11.0f} {r['lost']:5d}"
        )
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps({"cluster": results}, indent=2))
    return 1 if any(r["lost"] or r["unexpected"] or not r["rooms"] for r in results) else 0
