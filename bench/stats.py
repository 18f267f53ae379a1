"""Latency statistics from raw per-iteration samples (milliseconds).

Kept separate from timing so the same numbers are computed for every backend and can be
recomputed later from the samples file.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

STAT_COLUMNS = (
    "latency_mean_ms",
    "latency_median_ms",
    "latency_p90_ms",
    "latency_p95_ms",
    "latency_p99_ms",
    "latency_min_ms",
    "latency_max_ms",
    "latency_std_ms",
    "latency_iqr_ms",
    "latency_cv",
)


def summarize(samples_ms: Sequence[float]) -> dict[str, float]:
    """Mean, median, tail percentiles (linear interpolation), spread, IQR and coefficient of variation.

    ``std`` is the sample standard deviation (ddof=1); CV = std / mean.
    """
    if len(samples_ms) == 0:
        raise ValueError("no latency samples to summarize")
    a = np.asarray(samples_ms, dtype=np.float64)
    q25, q50, q75, q90, q95, q99 = np.percentile(a, [25, 50, 75, 90, 95, 99])
    mean = float(a.mean())
    std = float(a.std(ddof=1)) if a.size > 1 else 0.0
    return {
        "latency_mean_ms": mean,
        "latency_median_ms": float(q50),
        "latency_p90_ms": float(q90),
        "latency_p95_ms": float(q95),
        "latency_p99_ms": float(q99),
        "latency_min_ms": float(a.min()),
        "latency_max_ms": float(a.max()),
        "latency_std_ms": std,
        "latency_iqr_ms": float(q75 - q25),
        "latency_cv": std / mean if mean > 0 else 0.0,
    }


def throughput(batch_size: int, median_ms: float) -> float:
    """Images per second at the median step time."""
    return batch_size * 1000.0 / median_ms if median_ms > 0 else 0.0
