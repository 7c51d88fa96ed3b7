"""The conductor's side of each scenario: drive the workers, read the clocks, and
turn what came back into figures.

Every scenario measures over a window the conductor opens and closes itself, reading
the server's CPU time and the load generator's (the conductor and every worker) from
/proc at both edges. A figure per relayed message or per setup divides by what the
workers counted inside that same window.
"""

from __future__ import annotations

import math
import os
import time
from array import array
from dataclasses import dataclass, field
from typing import Any

from . import procstat
from .config import Plan, share
from .progress import Bar
from .stats import latency_summary_ms, samples
from .targets import Target
from .worker import Pool

Metrics = dict[str, float]
LEAD_NS = 300_000_000  # the workers get this long between "go" and the window's start


@dataclass
class Measurement:
    """One scenario, run once against one target."""

    metrics: Metrics
    latency_ns: array[int] = field(default_factory=lambda: array("q"))
    notes: list[str] = field(default_factory=list)


class CpuWindow:
    """CPU seconds used by the server and by the load generator between two instants."""

    def __init__(self, server_pid: int | None, loadgen_pids: list[int]):
        self.server_pid = server_pid if procstat.available(server_pid) else None
        self.loadgen_pids = [os.getpid(), *loadgen_pids]
        self.seconds = 0.0
        self.server = float("nan")
        self.loadgen = 0.0

    def begin(self) -> None:
        self._t0 = time.monotonic()
        self._server0 = procstat.cpu_seconds(self.server_pid) if self.server_pid else 0.0
        self._loadgen0 = procstat.total_cpu_seconds(self.loadgen_pids)

    def end(self) -> None:
        self.seconds = time.monotonic() - self._t0
        if self.server_pid:
            self.server = procstat.cpu_seconds(self.server_pid) - self._server0
        self.loadgen = procstat.total_cpu_seconds(self.loadgen_pids) - self._loadgen0

    def figures(self, per: float, unit: str) -> Metrics:
        """Cores used, and CPU microseconds per `unit` (per relayed message, per setup)."""
        seconds = max(self.seconds, 1e-9)
        return {
            "server_cpu_cores": self.server / seconds,
            f"server_cpu_us_per_{unit}": self.server / per * 1e6 if per else math.nan,
            "loadgen_cpu_cores": self.loadgen / seconds,
            f"loadgen_cpu_us_per_{unit}": self.loadgen / per * 1e6 if per else math.nan,
        }


def _ready(pool: Pool, plan: Plan, rooms: int, bar: Bar) -> list[dict[str, Any]]:
    timeout = plan.setup_timeout * 3 + rooms / 50
    ready: list[dict[str, Any]] = pool.gather(
        "ready", timeout, lambda n: bar.update(n * 0.1 / max(rooms, 1), f"opening rooms {n}")
    )
    return ready


def _setup_notes(ready: list[dict[str, Any]], wanted: int) -> tuple[int, list[str]]:
    opened = sum(r.get("rooms", 0) for r in ready)
    errors = [r["setup_error"] for r in ready if r.get("setup_error")]
    notes = [f"only {opened} of {wanted} rooms opened; first error: {errors[0]}"] if errors else []
    return opened, notes


def _go(pool: Pool, seconds: float) -> tuple[int, int]:
    start_ns = time.monotonic_ns() + LEAD_NS
    end_ns = start_ns + int(seconds * 1e9)
    pool.tell_all("go", start_ns, end_ns)
    return start_ns, end_ns


def pingpong(pool: Pool, target: Target, plan: Plan, size: int, bar: Bar) -> Measurement:
    rooms = share(plan.pingpong_rooms, len(pool))
    limits = share(plan.pingpong_max_messages, len(pool))
    pool.start(
        "pingpong",
        lambda i: {
            "url": target.ws_url,
            "insecure": plan.insecure,
            "rooms": rooms[i],
            "size": size,
            "concurrency": plan.room_open_concurrency,
            "setup_timeout": plan.setup_timeout,
            "drain_timeout": plan.drain_timeout,
            "max_messages": limits[i],
        },
    )
    opened, notes = _setup_notes(_ready(pool, plan, plan.pingpong_rooms, bar), plan.pingpong_rooms)
    window, results = _load_window(pool, target, plan, plan.pingpong_seconds, bar)
    received_in_window = sum(r["received_in_window"] for r in results)
    sent = sum(r["sent"] for r in results)
    received = sum(r["received"] for r in results)
    latency = samples(r["latency_ns"] for r in results)
    metrics: Metrics = {
        "rooms": opened,
        "msgs_per_s": received_in_window / window.seconds,
        "sent": sent,
        "received": received,
        "lost": sent - received,
        "unexpected": sum(r["unexpected"] for r in results),
        **latency_summary_ms(latency),
        **window.figures(received_in_window, "msg"),
    }
    notes += _unexpected_notes(results)
    return Measurement(metrics, latency, notes)


def _load_window(
    pool: Pool, target: Target, plan: Plan, seconds: float, bar: Bar
) -> tuple[CpuWindow, list[dict[str, Any]]]:
    """Run the started load for `seconds` while measuring CPU, then collect the results."""
    start_ns, end_ns = _go(pool, seconds)
    window = CpuWindow(target.pid, pool.pids)
    pool.wait_until(start_ns)
    window.begin()
    pool.wait_until(
        end_ns,
        lambda n: bar.update(
            0.1 + 0.9 * (time.monotonic_ns() - start_ns) / (end_ns - start_ns), f"{n:,} msgs"
        ),
    )
    window.end()
    pool.gather("stopped", 10.0)
    results = pool.gather("result", plan.drain_timeout + 30.0)
    return window, results


def openloop(pool: Pool, target: Target, plan: Plan, bar: Bar) -> Measurement:
    rooms = share(plan.open_rooms, len(pool))
    pool.start(
        "openloop",
        lambda i: {
            "url": target.ws_url,
            "insecure": plan.insecure,
            "rooms": rooms[i],
            "rate": plan.open_rate / len(pool),
            "size": plan.open_size,
            "late_ms": plan.late_ms,
            "concurrency": plan.room_open_concurrency,
            "setup_timeout": plan.setup_timeout,
            "drain_timeout": plan.drain_timeout,
        },
    )
    opened, notes = _setup_notes(_ready(pool, plan, plan.open_rooms, bar), plan.open_rooms)
    window, results = _load_window(pool, target, plan, plan.open_seconds, bar)
    sent_in_window = sum(r["sent_in_window"] for r in results)
    received_in_window = sum(r["received_in_window"] for r in results)
    sent = sum(r["sent"] for r in results)
    received = sum(r["received"] for r in results)
    late = sum(r["late"] for r in results)
    latency = samples(r["latency_ns"] for r in results)
    lag = samples(r["lag_ns"] for r in results)
    metrics: Metrics = {
        "rooms": opened,
        "offered_per_s": plan.open_rate,
        "sent_per_s": sent_in_window / window.seconds,
        "received_per_s": received_in_window / window.seconds,
        "sent": sent,
        "received": received,
        "in_flight_at_end": sent_in_window - received_in_window,
        "lost": sent - received,
        "late": late,
        "late_pct": 100.0 * late / max(received, 1),
        **latency_summary_ms(latency),
        "send_lag_p99_ms": latency_summary_ms(lag)["p99_ms"],
        "unexpected": sum(r["unexpected"] for r in results),
        **window.figures(received_in_window, "msg"),
    }
    notes += _unexpected_notes(results)
    return Measurement(metrics, latency, notes)


def idle(pool: Pool, target: Target, plan: Plan, bar: Bar) -> Measurement:
    """Grow to half the connections, then to all, and read the server's RSS at both:
    the slope between the two levels is the memory one more connection costs, free of
    whatever the server allocates once, on its first connections."""
    pairs_total = plan.idle_connections // 2
    local = procstat.available(target.pid)
    pool.start(
        "idle",
        lambda i: {
            "url": target.ws_url,
            "insecure": plan.insecure,
            "concurrency": plan.room_open_concurrency,
            "setup_timeout": plan.setup_timeout,
        },
    )
    pool.gather("ready", 30.0)
    rss0 = procstat.rss_bytes(target.pid) if local and target.pid else 0
    levels: list[tuple[int, int]] = []  # (connections, RSS bytes)
    connect_seconds = 0.0
    failed = 0
    notes: list[str] = []
    window = CpuWindow(target.pid, pool.pids)
    connecting = CpuWindow(target.pid, pool.pids)
    connect_cpu = 0.0
    halves = [pairs_total // 2, pairs_total - pairs_total // 2]
    for step, pairs in enumerate(halves):
        shares = share(pairs, len(pool))
        connecting.begin()
        for conn, n in zip(pool.conns, shares, strict=True):
            conn.send(("connect", n))
        replies = pool.gather(
            "connected",
            plan.setup_timeout * 3 + pairs / 20,
            lambda n: bar.update(
                0.9 * 2 * n / max(plan.idle_connections, 1), f"{n * 2:,} connections"
            ),
        )
        connecting.end()
        connect_cpu += connecting.server
        connect_seconds += max(r["seconds"] for r in replies)
        failed += sum(2 * r["failed"] for r in replies)
        notes += [f"connect failures; first: {r['error']}" for r in replies if r["failed"]][:1]
        connections = 2 * sum(r["rooms"] for r in replies)
        if step == len(halves) - 1:
            window.begin()  # the hold at full size: what idle connections cost in CPU
        time.sleep(plan.idle_hold_seconds)
        levels.append((connections, procstat.rss_bytes(target.pid) if local and target.pid else 0))
    window.end()
    health = target.healthz()
    pool.tell_all("verify", plan.setup_timeout)
    verified = pool.gather("verified", plan.setup_timeout + 10.0)
    pool.tell_all("close")
    pool.gather("closed", 60.0)
    (n1, rss1), (n2, rss2) = levels
    metrics: Metrics = {
        "connections": n2,
        "failed": failed,
        "connects_per_s": n2 / max(connect_seconds, 1e-9),
        "open_at_end": sum(v["open_connections"] for v in verified),
        "rooms_relaying": sum(v["rooms_relaying"] for v in verified),
        "server_cpu_us_per_conn": connect_cpu / n2 * 1e6 if n2 else math.nan,
        "server_cpu_cores_idle": window.server / max(window.seconds, 1e-9),
        "loadgen_cpu_cores": window.loadgen / max(window.seconds, 1e-9),
    }
    if local:
        metrics["rss_mb"] = rss2 / 2**20
        metrics["rss_kb_per_conn"] = (rss2 - rss1) / 1024 / max(n2 - n1, 1)
        metrics["rss_kb_per_conn_total"] = (rss2 - rss0) / 1024 / max(n2, 1)
    if health is not None:
        for key in ("connections", "rooms"):
            if isinstance(health.get(key), int | float):
                metrics[f"healthz_{key}"] = float(health[key])
    return Measurement(metrics, notes=notes)


def setups(pool: Pool, target: Target, plan: Plan, bar: Bar) -> Measurement:
    counts = share(plan.setups, len(pool))
    lanes = share(max(plan.setup_concurrency, len(pool)), len(pool))
    pool.start(
        "setups",
        lambda i: {
            "url": target.ws_url,
            "insecure": plan.insecure,
            "count": counts[i],
            "concurrency": lanes[i],
            "setup_timeout": plan.setup_timeout,
        },
    )
    pool.gather("ready", 30.0)
    start_ns, end_ns = _go(pool, plan.setups_seconds)
    window = CpuWindow(target.pid, pool.pids)
    pool.wait_until(start_ns)
    window.begin()
    pool.gather(
        "stopped",
        plan.setups_seconds + plan.setup_timeout + 10.0,
        lambda n: bar.update(n / max(plan.setups, 1), f"{n:,} setups"),
    )
    window.end()
    results = pool.gather("result", 30.0)
    completed = sum(r["completed"] for r in results)
    latency = samples(r["latency_ns"] for r in results)
    notes = [f"setup failures; first: {r['error']}" for r in results if r["failed"]][:1]
    metrics: Metrics = {
        "setups_per_s": completed / window.seconds,
        "completed": completed,
        "failed": sum(r["failed"] for r in results),
        **latency_summary_ms(latency, "setup_"),
        **window.figures(completed, "setup"),
    }
    return Measurement(metrics, latency, notes)


def _unexpected_notes(results: list[dict[str, Any]]) -> list[str]:
    firsts = [r["first_unexpected"] for r in results if r.get("first_unexpected")]
    return [f"unexpected messages during the load; first: {firsts[0]}"] if firsts else []
