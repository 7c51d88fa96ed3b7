"""`python -m rtcserver` tunes the garbage collector after start-up, and /metrics shows it.

A subprocess: the collector is process-wide, so servers inside the test process never
touch it (server/collector.py).
"""

from __future__ import annotations

import re

import trio

from tests.support.process import running_server
from tests.support.waiting import eventually
from tests.test_flash_crowd import scrape, served

GEN0 = 'generation="0"'


async def test_start_up_objects_are_frozen_and_the_thresholds_and_pauses_show() -> None:
    with (
        running_server("--stun", "", "--gc-thresholds", "100,5,5") as server,
        trio.fail_after(30),
    ):
        port = server.port
        for _ in range(5):  # connections make garbage: the young generation is collected
            await served(port, "127.0.0.1")
        metrics = await scrape(port)
        match = re.search(r"^rtcserver_gc_frozen_objects (\S+)$", metrics, re.MULTILINE)
        assert match is not None, metrics
        frozen = float(match.group(1))
        assert frozen > 1000  # the modules' functions and classes, at least
        assert f"rtcserver_gc_threshold{{{GEN0}}} 100.0" in metrics

        async def paused() -> bool:
            text = await scrape(port)
            return f"rtcserver_gc_pause_seconds_count{{{GEN0}}}" in text

        await eventually(paused, 10, "a timed collection of generation 0")


async def test_no_gc_freeze_leaves_the_collector_as_python_has_it() -> None:
    with running_server("--stun", "", "--no-gc-freeze") as server, trio.fail_after(20):
        metrics = await scrape(server.port)
    assert "rtcserver_gc_frozen_objects 0.0" in metrics
    assert f"rtcserver_gc_threshold{{{GEN0}}} 700.0" in metrics  # Python's own
