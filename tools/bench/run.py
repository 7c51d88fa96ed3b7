"""One benchmark run: every scenario, every repeat, every target, in that nesting.

Targets alternate inside each repeat (rtcserver, baseline, rtcserver, baseline, ...)
so that slow drift of the machine touches both alike; each measurement gets a fresh
server process when the server is local.
"""

from __future__ import annotations

import dataclasses
import math
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import report, scenarios
from .config import Plan
from .plot import plot_latency
from .progress import Bar, say
from .scenarios import Measurement
from .targets import LOADGEN_CORE, Launcher, Target
from .worker import Pool, WorkerError, raise_fd_limit

Measure = Callable[[Pool, Target, Plan, Bar], Measurement]
# Past this share of a core the load generator may be what limits a figure.
LOADGEN_LIMIT = 0.9


def scenario_steps(plan: Plan) -> list[tuple[str, Measure]]:
    steps: list[tuple[str, Measure]] = []
    for name in plan.scenarios:
        if name == "pingpong":
            for size in plan.payloads:
                steps.append((f"pingpong-{size}B", _pingpong_of(size)))
        elif name == "openloop":
            steps.append(("openloop", scenarios.openloop))
        elif name == "idle":
            steps.append(("idle", scenarios.idle))
        elif name == "setups":
            steps.append(("setups", scenarios.setups))
    return steps


def _pingpong_of(size: int) -> Measure:
    def measure(pool: Pool, target: Target, plan: Plan, bar: Bar) -> Measurement:
        return scenarios.pingpong(pool, target, plan, size, bar)

    return measure


HEADLINE = {
    "pingpong": ("msgs_per_s", "msgs/s"),
    "openloop": ("p99_ms", "ms p99"),
    "idle": ("rss_kb_per_conn", "KB/conn"),
    "setups": ("setups_per_s", "setups/s"),
}


def _headline(scenario_id: str, m: Measurement) -> str:
    key, unit = HEADLINE[report.kind_of(scenario_id)]
    value = m.metrics.get(key, math.nan)
    cpu = m.metrics.get("loadgen_cpu_cores", math.nan)
    text = f"{report.number(value)} {unit}" if not math.isnan(value) else "failed"
    return f"{text}; loadgen {cpu:.2f} cores" if not math.isnan(cpu) else text


def run(
    plan: Plan,
    launchers: dict[str, Launcher],
    pin: bool,
    json_path: Path | None,
    plot_path: Path | None,
    meta_extra: dict[str, Any],
) -> int:
    fd_limit = raise_fd_limit()  # the local servers inherit it too
    if pin:
        os.sched_setaffinity(0, {LOADGEN_CORE})  # the workers inherit it
    if "idle" in plan.scenarios:
        _check_descriptors(
            plan, fd_limit, local="baseline" in launchers or meta_extra["url"] is None
        )
    steps = scenario_steps(plan)
    results: report.Results = {}
    pool = Pool(plan.workers)
    started = time.time()
    try:
        for scenario_id, measure in steps:
            for repeat in range(plan.repeat):
                for name, launch in launchers.items():
                    label = f"{scenario_id} {name}"
                    if plan.repeat > 1:
                        label += f" {repeat + 1}/{plan.repeat}"
                    target = launch()
                    bar = Bar(label, 1.0)
                    try:
                        measurement = measure(pool, target, plan, bar)
                    except WorkerError as exc:
                        measurement = Measurement({}, notes=[f"failed: {_first_line(exc)}"])
                        say(f"\n{label} failed:\n{exc}\n{target.log_tail()}")
                        pool.close()
                        pool = Pool(plan.workers)
                    finally:
                        target.stop()
                    cores = measurement.metrics.get("loadgen_cpu_cores", 0.0)
                    if cores >= LOADGEN_LIMIT:
                        measurement.notes.append(
                            f"the load generator used {cores:.2f} cores: this run may be "
                            "limited by the load generator rather than the server"
                        )
                    bar.finish(_headline(scenario_id, measurement))
                    results.setdefault(scenario_id, {}).setdefault(name, []).append(measurement)
    finally:
        pool.close()

    summary = report.summarize(results)
    print(report.table(summary, plan.repeat))
    peak, where = report.loadgen_peak(summary)
    verdict = (
        "below one core"
        if peak < LOADGEN_LIMIT
        else "NEAR OR ABOVE ONE CORE: see the notes for the figures it may limit"
    )
    print(
        f"\nload generator CPU (conductor + {plan.workers} workers): peak {peak:.2f} cores "
        f"in {where}: {verdict}"
    )
    if json_path is not None:
        meta = {
            **meta_extra,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
            "seconds": round(time.time() - started, 1),
            "plan": dataclasses.asdict(plan),
            "pin": pin,
            "cpu_count": os.cpu_count(),
            "fd_limit": fd_limit,
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "node": _node_version() if "baseline" in launchers else None,
            "targets": list(launchers),
            "loadgen_peak_cores": peak,
            "loadgen_peak_where": where,
        }
        report.write_json(json_path, meta, summary)
        say(f"results written to {json_path}")
    if plot_path is not None:
        curves = {
            sid: {name: _joined(runs) for name, runs in by.items()} for sid, by in results.items()
        }
        plot_latency(plot_path, curves)
    failed = any(
        note.startswith("failed")
        for by in results.values()
        for runs in by.values()
        for run in runs
        for note in run.notes
    )
    return 1 if failed else 0


def _check_descriptors(plan: Plan, fd_limit: int, local: bool) -> None:
    per_worker = -(-plan.idle_connections // plan.workers)
    if per_worker + 64 > fd_limit:
        say(
            f"warning: {per_worker} idle connections per worker exceed the descriptor limit "
            f"({fd_limit}); use more --workers"
        )
    if local and plan.idle_connections + 256 > fd_limit:
        say(
            f"warning: a local server holding {plan.idle_connections} connections needs more "
            f"than its descriptor limit ({fd_limit}); raise `ulimit -Hn` or lower --idle"
        )


def _joined(runs: list[Measurement]) -> Any:
    joined = runs[0].latency_ns[:0] if runs else []
    for run in runs:
        joined += run.latency_ns
    return joined


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[-1] if text else type(exc).__name__


def _node_version() -> str | None:
    node = shutil.which("node")
    if node is None:
        return None
    try:
        return subprocess.run(
            [node, "--version"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
