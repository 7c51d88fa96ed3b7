"""The garbage collector, tuned for the relay's tail latency, and its pauses measured.

A full collection scans every tracked object, and after start-up most of those are
the modules' own (functions, classes, their dicts) that live as long as the process.
`gc.freeze()` moves them to the permanent generation, so full collections scan only
what connections made, and pause for less (`--gc-freeze`). `--gc-thresholds` sets how
often each generation is collected. Every collection's pause goes into
`rtcserver_gc_pause_seconds{generation}`, so the effect shows in /metrics next to the
latency it costs. Process-wide, so only `python -m rtcserver` (`app.main`) tunes it:
servers inside the test process leave the tests' collector alone.
"""

from __future__ import annotations

import gc
import time
from typing import Any

from prometheus_client import Histogram

from ..settings import Settings
from .metrics import ServerMetrics

# Young collections take microseconds; a full one over a big heap, tens of milliseconds.
PAUSE_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1)


def tune(settings: Settings, metrics: ServerMetrics) -> None:
    """Apply --gc-thresholds and --gc-freeze, and time every collection from now on."""
    if settings.gc_thresholds:
        gc.set_threshold(*(int(value) for value in settings.gc_thresholds))
    if settings.gc_freeze:
        gc.collect()  # start-up's garbage is not frozen with what lives
        gc.freeze()
    pauses = Histogram(
        "rtcserver_gc_pause_seconds",
        "garbage collections and how long each paused the server, by generation",
        ["generation"],
        registry=metrics.registry,
        buckets=PAUSE_BUCKETS,
    )
    started = 0.0

    def on_collection(phase: str, info: dict[str, Any]) -> None:
        nonlocal started
        if phase == "start":
            started = time.perf_counter()
        else:
            pauses.labels(str(info["generation"])).observe(time.perf_counter() - started)

    gc.callbacks.append(on_collection)
