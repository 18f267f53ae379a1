"""Latency statistics from raw per-iteration samples (milliseconds).

Kept separate from timing so the same numbers are computed for every backend and can be
recomputed later from the samples file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


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


def throughput(batch_size: int, step_ms: float) -> float:
    """Images per second at a step time (the median for our tables, the mean for timm's column)."""
    return batch_size * 1000.0 / step_ms if step_ms > 0 else 0.0


# ------------------------------------------------------------------------------------- comparing runs
#
# The noise of a shared machine lives at the level of rounds (tens of seconds of a slow phase move
# every iteration of a round together), not of iterations. So two results are compared on their
# per-round medians, each divided by the machine-speed reference timed just before that round, and
# the uncertainty comes from a two-level bootstrap: resample rounds, then iterations within each
# resampled round (Kalibera & Jones, "Rigorous Benchmarking in Reasonable Time", ISMM 2013).


@dataclass
class Rounds:
    """One side of a comparison: the samples of each round and, where recorded, the reference speed."""

    samples: list[np.ndarray]
    reference_ms: list[float] | None

    @property
    def normalised(self) -> bool:
        return self.reference_ms is not None and len(self.reference_ms) == len(self.samples)

    def values(self, use_reference: bool) -> np.ndarray:
        medians = np.array([np.median(s) for s in self.samples])
        return medians / np.asarray(self.reference_ms) if use_reference else medians

    @property
    def all_samples(self) -> np.ndarray:
        return np.concatenate(self.samples) if self.samples else np.empty(0)


def _boot_log_means(side: Rounds, use_reference: bool, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Bootstrap distribution of the mean log per-round value (rounds, then iterations, resampled)."""
    k = len(side.samples)
    scale = np.asarray(side.reference_ms, dtype=float) if use_reference else np.ones(k)
    picks = rng.integers(0, k, size=(n_boot, k))
    medians = np.empty((n_boot, k))
    for r in range(k):
        x = side.samples[r]
        idx = rng.integers(0, len(x), size=(n_boot, len(x)))
        boot = np.median(x[idx], axis=1) / scale[r]
        medians[:, r] = boot
    chosen = np.take_along_axis(medians, picks, axis=1)
    return np.log(chosen).mean(axis=1)


def round_ratio(
    old: Rounds, new: Rounds, *, use_reference: bool, level: float, n_boot: int, rng: np.random.Generator
) -> tuple[float, float, float, float]:
    """(ratio new/old, CI low, CI high, two-sided bootstrap p) of the geometric mean per-round value."""
    point = float(np.exp(np.log(new.values(use_reference)).mean() - np.log(old.values(use_reference)).mean()))
    diffs = _boot_log_means(new, use_reference, n_boot, rng) - _boot_log_means(old, use_reference, n_boot, rng)
    tail = (1.0 - level) / 2.0 * 100.0
    lo, hi = np.exp(np.percentile(diffs, [tail, 100.0 - tail]))
    p = float(min(1.0, 2 * min((diffs <= 0).mean(), (diffs >= 0).mean())))
    return point, float(lo), float(hi), p
