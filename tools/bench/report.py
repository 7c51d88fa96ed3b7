"""The results: a table for people (stdout) and a JSON document for machines.

Figures of repeated runs are reported as the median with min–max. Where a baseline
ran, every figure gets the ratio rtcserver ÷ baseline (of the medians).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from .scenarios import Measurement
from .stats import spread

# scenario id -> target name -> one Measurement per repeat
Results = dict[str, dict[str, list[Measurement]]]

LABELS = {
    "msgs_per_s": "relayed msgs/s",
    "p50_ms": "latency p50 ms",
    "p99_ms": "latency p99 ms",
    "p999_ms": "latency p99.9 ms",
    "max_ms": "latency max ms",
    "server_cpu_us_per_msg": "server CPU µs/msg",
    "server_cpu_cores": "server CPU cores",
    "loadgen_cpu_cores": "loadgen CPU cores",
    "sent": "messages sent",
    "received": "messages received",
    "lost": "messages lost",
    "offered_per_s": "offered msgs/s",
    "received_per_s": "received msgs/s",
    "late": "late messages",
    "in_flight_at_end": "backlog at window end",
    "send_lag_p99_ms": "loadgen send lag p99 ms",
    "connections": "idle connections",
    "connects_per_s": "connections opened/s",
    "rss_kb_per_conn": "server KB/conn (slope)",
    "rss_kb_per_conn_total": "server KB/conn (total)",
    "rss_mb": "server RSS MB",
    "open_at_end": "still open at end",
    "rooms_relaying": "idle rooms still relaying",
    "server_cpu_cores_idle": "server CPU cores, idle",
    "server_cpu_us_per_conn": "server CPU µs/connect",
    "failed": "failed",
    "setups_per_s": "room setups/s",
    "setup_p50_ms": "setup p50 ms",
    "setup_p99_ms": "setup p99 ms",
    "server_cpu_us_per_setup": "server CPU µs/setup",
    "completed": "setups completed",
}

TABLE_ROWS = {
    "pingpong": [
        "msgs_per_s",
        "p50_ms",
        "p99_ms",
        "server_cpu_us_per_msg",
        "server_cpu_cores",
        "loadgen_cpu_cores",
        "sent",
        "received",
        "lost",
    ],
    "openloop": [
        "offered_per_s",
        "received_per_s",
        "p50_ms",
        "p99_ms",
        "p999_ms",
        "max_ms",
        "late",
        "in_flight_at_end",
        "lost",
        "send_lag_p99_ms",
        "server_cpu_us_per_msg",
        "server_cpu_cores",
        "loadgen_cpu_cores",
    ],
    "idle": [
        "connections",
        "connects_per_s",
        "server_cpu_us_per_conn",
        "rss_kb_per_conn",
        "rss_kb_per_conn_total",
        "rss_mb",
        "open_at_end",
        "rooms_relaying",
        "server_cpu_cores_idle",
        "loadgen_cpu_cores",
        "failed",
    ],
    "setups": [
        "setups_per_s",
        "setup_p50_ms",
        "setup_p99_ms",
        "server_cpu_us_per_setup",
        "server_cpu_cores",
        "loadgen_cpu_cores",
        "completed",
        "failed",
    ],
}


def kind_of(scenario_id: str) -> str:
    return scenario_id.split("-", 1)[0]


def summarize(results: Results) -> dict[str, Any]:
    """Everything as plain data: per scenario, per target, runs and median/min/max."""
    out: dict[str, Any] = {}
    for scenario_id, by_target in results.items():
        entry: dict[str, Any] = {"targets": {}, "ratio": {}}
        for name, runs in by_target.items():
            keys = list(dict.fromkeys(k for run in runs for k in run.metrics))
            entry["targets"][name] = {
                "runs": [run.metrics for run in runs],
                "summary": {
                    k: spread([run.metrics.get(k, math.nan) for run in runs]) for k in keys
                },
                "notes": sorted({note for run in runs for note in run.notes}),
            }
        targets = entry["targets"]
        if "rtcserver" in targets and "baseline" in targets:
            mine, theirs = targets["rtcserver"]["summary"], targets["baseline"]["summary"]
            for key in mine:
                if key in theirs:
                    entry["ratio"][key] = _ratio(mine[key]["median"], theirs[key]["median"])
        out[scenario_id] = entry
    return out


def _ratio(a: float, b: float) -> float:
    if math.isnan(a) or math.isnan(b) or b == 0:
        return math.nan
    return a / b


def number(value: float) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "-"
    size = abs(value)
    if size >= 100 or (value == int(value) and size >= 10):
        return f"{value:,.0f}"
    if size >= 10:
        return f"{value:.1f}"
    if size >= 0.1 or value == 0:
        return f"{value:.2f}"
    return f"{value:.3f}"


def _cell(summary: dict[str, float] | None, repeated: bool) -> str:
    if summary is None:
        return "-"
    text = number(summary["median"])
    if repeated and summary["min"] != summary["max"]:
        text += f" ({number(summary['min'])}–{number(summary['max'])})"
    return text


def table(summary: dict[str, Any], repeat: int) -> str:
    names: list[str] = list(
        dict.fromkeys(n for entry in summary.values() for n in entry["targets"])
    )
    has_ratio = any(entry["ratio"] for entry in summary.values())
    header = ["scenario", "figure", *names] + (["ratio"] if has_ratio else [])
    rows: list[list[str]] = []
    notes: list[str] = []
    for scenario_id, entry in summary.items():
        keys = TABLE_ROWS.get(kind_of(scenario_id), [])
        first = True
        for key in keys:
            cells = [
                entry["targets"][n]["summary"].get(key) if n in entry["targets"] else None
                for n in names
            ]
            if all(c is None for c in cells):
                continue
            row = [scenario_id if first else "", LABELS.get(key, key)]
            row += [_cell(c, repeat > 1) for c in cells]
            if has_ratio:
                ratio = entry["ratio"].get(key, math.nan)
                row.append("-" if math.isnan(ratio) else f"{ratio:.2f}")
            rows.append(row)
            first = False
        for name, data in entry["targets"].items():
            notes += [f"{scenario_id} / {name}: {note}" for note in data["notes"]]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    previous = ""
    for row in rows:
        if row[0] and previous:
            lines.append("")
        previous = row[0] or previous
        padded = [row[0].ljust(widths[0]), row[1].ljust(widths[1])]
        padded += [c.rjust(w) for c, w in zip(row[2:], widths[2:], strict=True)]
        lines.append("  ".join(padded).rstrip())
    if has_ratio:
        lines.append("")
        lines.append(
            "ratio = rtcserver ÷ baseline (medians); for rates >1 is better, "
            "for latency, CPU and memory <1 is better"
        )
    if notes:
        lines.append("")
        lines += [f"note: {n}" for n in notes]
    return "\n".join(lines)


def loadgen_peak(summary: dict[str, Any]) -> tuple[float, str]:
    """The highest load-generator CPU use of any run, in cores, and where it was."""
    peak, where = 0.0, ""
    for scenario_id, entry in summary.items():
        for name, data in entry["targets"].items():
            for run in data["runs"]:
                cores = run.get("loadgen_cpu_cores", 0.0)
                if cores > peak:
                    peak, where = cores, f"{scenario_id} / {name}"
    return peak, where


def write_json(path: Path, meta: dict[str, Any], summary: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    document = _clean({"meta": meta, "scenarios": summary})
    path.write_text(json.dumps(document, indent=2, allow_nan=False) + "\n")


def _clean(value: Any) -> Any:
    """JSON has no NaN: a figure that could not be measured becomes null."""
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value
