"""Small statistics: percentiles of latency samples, medians of repeated runs."""

from __future__ import annotations

import math
import statistics
from array import array
from collections.abc import Iterable, Sequence


def samples(chunks: Iterable[bytes]) -> array[int]:
    """Join the latency arrays (int64 nanoseconds, as bytes) the workers sent back."""
    joined = array("q")
    for chunk in chunks:
        joined.frombytes(chunk)
    return joined


def percentile(sorted_values: Sequence[int] | Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by nearest rank; nan when there is nothing."""
    if not sorted_values:
        return float("nan")
    rank = max(0, min(len(sorted_values) - 1, math.ceil(q / 100 * len(sorted_values)) - 1))
    return float(sorted_values[rank])


def latency_summary_ms(values: array[int], prefix: str = "") -> dict[str, float]:
    """p50/p99/p99.9/max of nanosecond samples, in milliseconds."""
    ordered = sorted(values)
    return {
        f"{prefix}p50_ms": percentile(ordered, 50) / 1e6,
        f"{prefix}p99_ms": percentile(ordered, 99) / 1e6,
        f"{prefix}p999_ms": percentile(ordered, 99.9) / 1e6,
        f"{prefix}max_ms": (ordered[-1] / 1e6) if ordered else float("nan"),
    }


def spread(values: Sequence[float]) -> dict[str, float]:
    """Median with min and max: what `--repeat N` reports for every figure."""
    clean = [v for v in values if v == v]  # drop nan
    if not clean:
        return {"median": float("nan"), "min": float("nan"), "max": float("nan")}
    return {"median": statistics.median(clean), "min": min(clean), "max": max(clean)}
