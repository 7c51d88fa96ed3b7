"""The benchmark works: a tiny `--quick` run of every scenario, checked for sane figures.

This checks that `python tools/bench` measures what it says, not how fast anything is:
every message sent in ping-pong comes back, latencies are positive, the server's CPU
per message is measured, idle connections are all open and still relay.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "tools" / "bench"
TINY = [
    "--quick",
    "--loadgen",
    "2",
    "--rooms",
    "6",
    "--payloads",
    "200,2048",
    "--seconds",
    "0.6",
    "--open-rooms",
    "10",
    "--rate",
    "400",
    "--open-seconds",
    "0.8",
    "--idle",
    "120",
    "--setups",
    "40",
    "--setup-concurrency",
    "4",
]


def run_bench(tmp_path: Path, *args: str, timeout: float = 90) -> dict[str, Any]:
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(BENCH), *TINY, "--json", str(out), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.returncode == 0, f"bench failed:\n{proc.stdout}\n{proc.stderr}"
    assert "scenario" in proc.stdout and "figure" in proc.stdout  # the table was printed
    document: dict[str, Any] = json.loads(out.read_text())
    return document


def figures(document: dict[str, Any], scenario: str, target: str) -> dict[str, float]:
    """One run's figures; its notes (the first error seen, if any) go into `_notes`."""
    entry = document["scenarios"][scenario]["targets"][target]
    assert len(entry["runs"]) == 1
    metrics: dict[str, Any] = {**entry["runs"][0], "_notes": entry["notes"]}
    return metrics


def positive(value: float | None) -> bool:
    return value is not None and math.isfinite(value) and value > 0


def check_pingpong(m: dict[str, float]) -> None:
    assert m["rooms"] == 6, m["_notes"]
    assert m["sent"] > 0
    assert m["received"] == m["sent"], "ping-pong lost or invented messages"
    assert m["lost"] == 0
    assert m["unexpected"] == 0, m["_notes"]
    assert positive(m["msgs_per_s"])
    assert positive(m["p50_ms"]) and m["p99_ms"] >= m["p50_ms"]
    assert positive(m["server_cpu_us_per_msg"])
    assert positive(m["loadgen_cpu_us_per_msg"])


def test_quick_run_against_rtcserver_reports_every_scenario(tmp_path: Path) -> None:
    document = run_bench(tmp_path, "--baseline", "off")
    assert document["meta"]["targets"] == ["rtcserver"]
    assert set(document["scenarios"]) == {
        "pingpong-200B",
        "pingpong-2048B",
        "openloop",
        "idle",
        "setups",
    }

    for size in ("200B", "2048B"):
        check_pingpong(figures(document, f"pingpong-{size}", "rtcserver"))

    loop = figures(document, "openloop", "rtcserver")
    assert loop["rooms"] == 10, loop["_notes"]
    assert loop["sent"] > 0 and loop["received"] == loop["sent"] and loop["lost"] == 0
    for key in ("p50_ms", "p99_ms", "p999_ms", "max_ms", "server_cpu_us_per_msg"):
        assert positive(loop[key]), key
    assert loop["p50_ms"] <= loop["p99_ms"] <= loop["p999_ms"] <= loop["max_ms"]
    assert loop["late"] >= 0 and loop["send_lag_p99_ms"] >= 0

    idle = figures(document, "idle", "rtcserver")
    assert idle["connections"] == 120 and idle["failed"] == 0, idle["_notes"]
    assert idle["open_at_end"] == 120 and idle["rooms_relaying"] == 60
    assert positive(idle["rss_mb"]) and positive(idle["connects_per_s"])
    assert "rss_kb_per_conn" in idle

    setups = figures(document, "setups", "rtcserver")
    assert setups["completed"] == 40 and setups["failed"] == 0, setups["_notes"]
    assert positive(setups["setups_per_s"]) and positive(setups["setup_p50_ms"])
    assert positive(setups["server_cpu_us_per_setup"])

    assert 0 < document["meta"]["loadgen_peak_cores"] < 4


def test_baseline_relay_speaks_the_same_protocol(tmp_path: Path) -> None:
    # tools/test.sh installs Node's packages; a missing one is a setup bug, not a skip.
    assert shutil.which("node"), "node is not installed"
    assert (ROOT / "tools" / "baseline" / "node_modules" / "ws").is_dir(), (
        "tools/baseline has no node_modules: run npm install there (tools/test.sh does)"
    )
    document = run_bench(
        tmp_path, "--baseline", "only", "--scenarios", "pingpong,setups", "--payloads", "200"
    )
    check_pingpong(figures(document, "pingpong-200B", "baseline"))
    assert figures(document, "setups", "baseline")["completed"] == 40


def test_directory_run_measures_both_servers_completely(tmp_path: Path) -> None:
    """`--directory` at a tiny N: every scenario completes for rtcserver and the naive
    Node directory, nobody is closed, and the figures are there (not their values)."""
    assert shutil.which("node"), "node is not installed"
    out = tmp_path / "directory.json"
    args = ["--directory", "--storm-sizes", "60", "--leave-users", "80", "--call-users", "40"]
    proc = subprocess.run(
        [sys.executable, str(BENCH), *args, "--baseline", "on", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.returncode == 0, f"bench failed:\n{proc.stdout}\n{proc.stderr}"
    results = json.loads(out.read_text())["directory"]
    seen = {(r["scenario"], r["target"]) for r in results}
    assert seen == {
        (scenario, target)
        for scenario in ("storm-60", "leave-80", "calls-40")
        for target in ("rtcserver", "node")
    }
    for r in results:
        assert r["complete"] and r["closed"] == 0, r
        assert positive(r["server_cpu_s"]) or r["server_cpu_s"] == 0, r
        assert 0 < r["loadgen_cores"] < 4, r
    for r in results:
        if r["scenario"] == "storm-60":
            assert positive(r["rss_per_user_kb"]) and r["extra_p99_ms"] >= r["extra_p50_ms"] > 0
        if r["scenario"] == "calls-40":
            assert r["calls_completed"] == 20 and r["incoming_p99_ms"] > 0


def test_fanout_compares_rooms_of_eight_with_rooms_of_two(tmp_path: Path) -> None:
    out = tmp_path / "fanout.json"
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--fanout", "--rooms", "8", "--seconds", "0.5",
         "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=90,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    assert proc.returncode == 0, f"bench failed:\n{proc.stdout}\n{proc.stderr}"
    assert "÷two-party" in proc.stdout
    results = {r["layout"]: r for r in json.loads(out.read_text())["fanout"]}
    assert set(results) == {"two-party", "8-member", "8-member-to"}
    assert results["8-member"]["members"] == 8 and results["two-party"]["members"] == 2
    for figures in results.values():
        assert figures["delivered_per_s"] > 0 and figures["unexpected"] == 0
        assert figures["server_cpu_us_per_delivered"] > 0


@pytest.mark.parametrize("placement", ["apart", "same", "seated"])
def test_placed_members_on_two_workers_relay_everything(tmp_path: Path, placement: str) -> None:
    """`--workers 2 --placement ...`: the rooms really open with their members placed
    (a joiner that landed apart, or a logged-in joiner seated in worker 1's room), and
    every message comes back; the server's CPU is summed over its processes."""
    document = run_bench(
        tmp_path,
        "--baseline",
        "off",
        "--scenarios",
        "pingpong",
        "--payloads",
        "200",
        "--workers",
        "2",
        "--placement",
        placement,
        timeout=120,
    )
    check_pingpong(figures(document, "pingpong-200B", "rtcserver"))
