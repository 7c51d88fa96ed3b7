"""The optional latency plot (``--plot PATH.png``); needs matplotlib, the `bench` extra."""

from __future__ import annotations

import math
from array import array
from pathlib import Path

from .progress import say

PERCENTILES = [50, 75, 90, 95, 99, 99.5, 99.9, 99.95, 99.99]


MISSING_MATPLOTLIB = (
    "--plot needs matplotlib: pip install 'rtcserver[bench]' (or tools/setup-venv.sh bench)"
)


def matplotlib_missing() -> str | None:
    """One line naming the extra when `--plot` cannot be drawn, or None. Asked before
    the run, so minutes of measuring do not end in "plot skipped"."""
    try:
        import matplotlib  # type: ignore[import-not-found, unused-ignore]  # noqa: F401
    except ImportError:
        return MISSING_MATPLOTLIB
    return None


def plot_latency(path: Path, curves: dict[str, dict[str, array[int]]]) -> bool:
    """One panel per scenario, one line per target: latency against percentile.

    `curves` maps scenario id -> target name -> latency samples (ns). Returns False,
    having said why, when matplotlib is not installed.
    """
    try:
        import matplotlib  # type: ignore[import-not-found, unused-ignore]

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        say(f"plot skipped: {MISSING_MATPLOTLIB}")
        return False
    panels = {sid: by for sid, by in curves.items() if any(len(s) for s in by.values())}
    if not panels:
        say("plot skipped: no latency samples were recorded")
        return False
    from matplotlib.ticker import (  # type: ignore[import-not-found, unused-ignore]
        FuncFormatter,
        LogLocator,
    )

    columns = min(3, len(panels))
    rows = math.ceil(len(panels) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(5.5 * columns, 4.2 * rows), squeeze=False)
    flat = [ax for row in axes for ax in row]
    for ax in flat[len(panels) :]:
        ax.set_visible(False)
    for ax, (scenario_id, by_target) in zip(flat, panels.items(), strict=False):
        for name, values in by_target.items():
            if not values:
                continue
            ordered = sorted(values)
            xs, ys = [], []
            for q in PERCENTILES:
                rank = min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))
                xs.append(1 / (1 - q / 100))
                ys.append(ordered[rank] / 1e6)
            ax.plot(xs, ys, marker="o", label=f"{name} (n={len(ordered):,})")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks([1 / (1 - q / 100) for q in PERCENTILES])
        ax.set_xticklabels([f"{q:g}" for q in PERCENTILES], rotation=45)
        ax.set_xlabel("percentile")
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
        what = "room setup time" if scenario_id.startswith("setups") else "one-way latency"
        ax.set_ylabel(f"{what} (ms)")
        ax.set_title(scenario_id)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    say(f"latency plot written to {path}")
    return True
