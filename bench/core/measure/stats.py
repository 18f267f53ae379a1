"""Latency statistics from raw per-iteration samples (milliseconds).

Kept separate from timing so the same numbers are computed for every backend and can be
recomputed later from the samples file.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bench.core.records.schema import finite_number


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


# ------------------------------------------------------------------------------------- the headline
#
# Iterations inside one round share the machine's phase (lag-1 autocorrelation ~0.7 on the CI VM), so
# the unit of evidence is the round. On a shared VM slow phases only add time, and they can cover a
# whole sitting without any sign inside the VM (no steal, no other process). So a round counts only
# when the machine-speed reference timed just before it shows the machine at its calm speed (a *clean*
# round: :func:`bench.core.measure.machine.clean_mask`), and the headline is the mean of the fastest half of a
# cell's clean rounds (rounded up): what the runtime costs on this machine when nothing else slows it,
# which another sitting reproduces. A cell with too few clean rounds is flagged, not silently averaged
# over slow ones (:func:`bench.core.measure.machine.judge`).
#
# The interval is a *prediction* interval: where another sitting's headline of the same cell falls. It
# combines the spread of the estimator over this sitting's processes and rounds (a two-level
# bootstrap: processes, then rounds within them; Kalibera & Jones, ISMM 2013) with the spread between
# sittings that no sitting can see from inside: learnt from the machine's recent sittings
# (:mod:`bench.core.measure.sitting_history`; :data:`SITTING_SD` until enough are known). A cell is *stable* when
# that interval lies within :data:`STABLE_WITHIN` of its headline: another sitting is expected to agree.
# The achieved coverage is measured leave-one-sitting-out by tests/scripts/reproducibility.py.

HEADLINE_LEVEL = 0.95
HEADLINE_Z = 1.959963984540054
"""The normal quantile of :data:`HEADLINE_LEVEL` (two-sided)."""
FAST_SHARE = 1 / 2
"""The share of a cell's clean rounds (the fastest ones, rounded up) its headline averages."""
LEGACY_FAST_SHARE = 1 / 3
"""What rows written before clean rounds existed averaged (the fastest third of all rounds)."""
SITTING_SD = 0.01
"""Standard deviation (log scale) of a cell's headline between sittings beyond what its own rounds show,
assumed on a machine with too few earlier calm sittings to learn its own (:mod:`bench.core.measure.sitting_history`):
what the AMD sittings teach (1.0%, the estimate's floor, over 407 cell pairs; headlines stable in two sittings differ
by 1.06%: tests/data/amd-sittings/reproducibility.txt).
With 1.5% the 22:10 sitting of that directory flagged 92 of its 100 cells; re-derived with 1.0%, 59. A slower
machine shows in its clean rounds and its slow level, and its own history replaces this after two calm sittings."""
STABLE_WITHIN = 0.05
"""A cell is stable when its prediction interval lies within this share of its headline: another sitting
is expected (at :data:`HEADLINE_LEVEL`) to agree within it."""
WIDE_INTERVAL = "another sitting may differ by up to"
"""How the validity reason starts when a cell's interval is wider than :data:`STABLE_WITHIN`: its number
is sound, just not precise enough to promise agreement (``compare`` still judges such a cell)."""


def only_wide(reason: object) -> bool:
    """Whether an unstable row's only reason is its interval's width (:data:`WIDE_INTERVAL`)."""
    parts = [p for p in str(reason or "").split("; ") if p]
    return bool(parts) and all(p.startswith(WIDE_INTERVAL) for p in parts)


CLEAN_MARGIN = 0.06
"""A round is *clean* when the machine-speed reference before it was within this share of the machine's
floor (:class:`bench.core.measure.machine.MachineFloor`): the machine ran at its calm speed. On the 2-core CI VM
a calm sitting's reference sits within 2% of its floor most of the time; a slow phase moves it 10-80%."""
MIN_CLEAN_ROUNDS = 3
"""Clean rounds a cell needs for its headline to count as reproducible (``stable``); a sitting keeps
timing cells that have fewer, within its budget (:mod:`bench.core.measure.sitting`)."""
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0
"""Fixed, so that recomputing a row's interval from its rounds gives the same numbers."""


@dataclass(frozen=True)
class Headline:
    """The cited number of a cell (or of a ratio) and its prediction interval."""

    value: float
    low: float | None
    high: float | None
    rounds: int
    """Rounds the value rests on (the clean ones; all of them when none was clean)."""
    sd_log: float | None = None
    """Standard error of one sitting's headline, log scale (its own rounds and the sittings' spread together)."""
    own_sd: float | None = None
    """The part its own rounds and processes give (the bootstrap), log scale."""

    @property
    def reach(self) -> float | None:
        """How far the interval reaches from the value, the farther side, relative (None without one)."""
        if self.low is None or self.high is None or self.low <= 0:
            return None
        return max(self.high / self.value, self.value / self.low) - 1.0

    @property
    def reproduces(self) -> bool:
        """Its interval lies within :data:`STABLE_WITHIN` of the value on both sides (False without one)."""
        reach = self.reach
        return reach is not None and reach <= STABLE_WITHIN * (1.0 + 1e-12)

    @property
    def width(self) -> float | None:
        """Interval width relative to the value (None without an interval)."""
        if self.low is None or self.high is None or self.value <= 0:
            return None
        return (self.high - self.low) / self.value


def _valid(values: Sequence[float]) -> list[int]:
    return [i for i, v in enumerate(values) if v is not None and math.isfinite(v) and v > 0]


def fast_count(rounds: int, share: float = FAST_SHARE) -> int:
    """How many of ``rounds`` rounds (the fastest) the headline averages."""
    return max(1, math.ceil(rounds * share - 1e-9))


def fast_mean(values: Sequence[float], share: float = FAST_SHARE) -> float:
    """The headline estimator: the mean of the fastest half of ``values`` (rounded up)."""
    a = np.sort(np.asarray([values[i] for i in _valid(values)], dtype=np.float64))
    if a.size == 0:
        raise ValueError("no round values for a headline")
    return float(a[: fast_count(a.size, share)].mean())


def _pool(values: Sequence[float], clean: Sequence[bool] | None, process: Sequence[int] | None):
    """(values, process ids) of the rounds the headline rests on: the clean ones, or all when none is."""
    valid = _valid(values)
    if not valid:
        raise ValueError("no round values for a headline")
    chosen = [i for i in valid if clean is None or (i < len(clean) and clean[i])] or valid
    procs = [int(process[i]) if process is not None and i < len(process) else 0 for i in chosen]
    return np.asarray([values[i] for i in chosen], dtype=np.float64), np.asarray(procs)


def _bootstrap(a: np.ndarray, procs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """:func:`fast_mean` of resamples: processes with replacement, then rounds within each chosen process.

    Vectorised (a sitting judges every open cell after each extra pass): groups are padded to one length,
    and the rounds a resample does not hold sort last as +inf.
    """
    groups = [a[procs == p] for p in np.unique(procs)]
    sizes = np.asarray([g.size for g in groups])
    longest = int(sizes.max())
    padded = np.full((len(groups), longest), np.inf)
    for i, g in enumerate(groups):
        padded[i, : g.size] = g
    picked = rng.integers(0, len(groups), size=(BOOTSTRAP_RESAMPLES, len(groups)))
    n = sizes[picked][..., None]
    slots = np.arange(longest)
    rounds = np.floor(rng.random((BOOTSTRAP_RESAMPLES, len(groups), longest)) * n).astype(np.int64)
    drawn = np.where(slots < n, padded[picked[..., None], rounds], np.inf).reshape(BOOTSTRAP_RESAMPLES, -1)
    drawn.sort(axis=1)
    k = np.minimum(fast_count(a.size), n.reshape(BOOTSTRAP_RESAMPLES, -1).sum(axis=1))
    totals = np.cumsum(np.where(np.isfinite(drawn), drawn, 0.0), axis=1)
    return totals[np.arange(BOOTSTRAP_RESAMPLES), k - 1] / k


def _from_sd(
    value: float, sd_log: float, rounds: int, own_sd: float | None = None, slow_level: float = 0.0
) -> Headline:
    """The prediction interval for another sitting: both sittings' errors, so sqrt(2) standard errors; its low
    side reaches ``slow_level`` further down (a sitting whose machine never reached its calm speed)."""
    half = HEADLINE_Z * math.sqrt(2.0) * sd_log
    low = value * math.exp(-half) / (1.0 + max(slow_level, 0.0))
    return Headline(value, low, value * math.exp(half), rounds, sd_log, own_sd)


def can_reproduce(sitting_sd: float) -> bool:
    """Whether a cell can be stable at all on a machine whose sittings spread this much (even a cell
    whose rounds agree exactly gets an interval of ``z * sqrt(2) * sitting_sd``)."""
    return HEADLINE_Z * math.sqrt(2.0) * sitting_sd < math.log1p(STABLE_WITHIN)


def headline(
    values: Sequence[float],
    clean: Sequence[bool] | None = None,
    process: Sequence[int] | None = None,
    sitting_sd: float = SITTING_SD,
    slow_level: float = 0.0,
) -> Headline:
    """The mean of the fastest half of the clean rounds, with its prediction interval (none from one round).

    ``clean`` (from :func:`bench.core.measure.machine.clean_mask`) and ``process`` (which worker process timed each
    round) are per round; without them every round counts and all come from one process. ``sitting_sd``:
    how far this machine's sittings spread beyond their rounds (:mod:`bench.core.measure.sitting_history`).
    ``slow_level``: how far this sitting's own fastest level stayed above the machine's floor
    (:meth:`bench.core.measure.machine.MachineFloor.level`): a calm sitting may be that much faster, so the
    interval's low side reaches that much further (the Intel and AMD VMs drifted 2-3% between hours). A cell
    with fewer than :data:`MIN_CLEAN_ROUNDS` clean rounds gets no interval: its rounds say how a slow
    machine ran, not where another sitting will land (the noisy AMD evening's intervals missed the calm
    sittings' values in most cells).
    """
    a, procs = _pool(values, clean, process)
    value = fast_mean(a)
    calm = clean is None or sum(bool(c) for c in clean[: len(values)]) >= min(MIN_CLEAN_ROUNDS, len(_valid(values)))
    if a.size < 2 or not calm:  # resting on a slow machine, it predicts nothing about another sitting
        return Headline(value, None, None, int(a.size))
    draws = _bootstrap(a, procs, np.random.default_rng(BOOTSTRAP_SEED))
    own = float(np.std(np.log(draws)))
    return _from_sd(value, math.sqrt(own**2 + sitting_sd**2), int(a.size), own, slow_level)


def ratio_headline(
    mine: Sequence[float],
    base: Sequence[float],
    mine_clean: Sequence[bool] | None = None,
    base_clean: Sequence[bool] | None = None,
) -> Headline:
    """``headline(mine) / headline(base)`` from their rounds (:func:`ratio_of`)."""
    return ratio_of(headline(mine, mine_clean), headline(base, base_clean))


def ratio_of(a: Headline, b: Headline) -> Headline:
    """``a / b`` with a prediction interval from both cells' standard errors.

    The two cells' rounds are not paired (the same round index is not the same phase), and each side's
    between-sitting term enters on its own: a conservative choice where both move together.
    """
    value = a.value / b.value
    rounds = min(a.rounds, b.rounds)
    if a.sd_log is None or b.sd_log is None:
        return Headline(value, None, None, rounds)
    return _from_sd(value, math.sqrt(a.sd_log**2 + b.sd_log**2), rounds)


def stored_headline(value: float, low: float | None, high: float | None, rounds: int) -> Headline:
    """The headline a summary row stores (its interval read back as a standard error)."""
    return Headline(value, low, high, rounds, sd_from_interval(value, low, high))


def sd_from_interval(value: float, low: float | None, high: float | None) -> float | None:
    """The standard error (log scale) a row's stored prediction interval stands for (None without one)."""
    if low is None or high is None or not (0 < low <= value <= high) or high <= low:
        return None
    return math.log(high / low) / (2.0 * HEADLINE_Z * math.sqrt(2.0))


def fastest_spread(values: Sequence[float], clean: Sequence[bool] | None = None) -> float:
    """(slowest - fastest) / fastest within the rounds the headline averages (at least two): more than a
    few percent means the cell's own timing wobbled even while the machine was calm."""
    a, _ = _pool(values, clean, None)
    a = np.sort(a)
    fast = a[: max(2, fast_count(a.size))]
    return float(fast[-1] / fast[0] - 1.0)


def headline_columns(
    round_medians_ms: Sequence[float],
    clean: Sequence[bool] | None = None,
    process: Sequence[int] | None = None,
    sitting_sd: float = SITTING_SD,
    slow_level: float = 0.0,
) -> dict[str, float | None]:
    """The summary row's ``latency_ms`` and its interval columns."""
    h = headline(round_medians_ms, clean, process, sitting_sd, slow_level)
    return {"latency_ms": h.value, "latency_ci_low_ms": h.low, "latency_ci_high_ms": h.high}


MEASURED_COVERAGE = "93% (547 of 588)"
"""How often the interval covered another sitting's headline, over every pair of the committed sittings of
both machines (cells sound in both: tests/data/sittings/reproducibility.txt and
tests/data/amd-sittings/reproducibility.txt, written by tests/scripts/reproducibility.py; a test keeps
this equal to their sum)."""


def headline_note() -> str:
    """The footnote every table citing ``latency_ms`` carries: what the number and its interval are."""
    return (
        "Latency: mean of the fastest half of a cell's clean rounds (round medians; clean: a reference kernel "
        f"timed just before showed the machine within {CLEAN_MARGIN:.0%} of its calm speed). [low, high]: "
        f"{HEADLINE_LEVEL:.0%} prediction interval for another sitting's value (covered it in {MEASURED_COVERAGE} "
        f"of cells here; it includes how far this machine's sittings differ and how slow the sitting's machine "
        f"stayed). Unstable: under {MIN_CLEAN_ROUNDS} "
        f"clean rounds, or an interval reaching beyond {STABLE_WITHIN:.0%} of the value."
    )


def headline_text(row: Mapping[str, object], fmt: Callable[[object], str]) -> str:
    """``latency [low-high]`` of a row (``fmt`` formats each number); the interval only where it exists.

    Rows without ``latency_ms`` (written before it existed and never reloaded) show the pooled median.
    """
    value = finite_number(row.get("latency_ms"))
    if value is None:
        return fmt(row.get("latency_median_ms"))
    low, high = finite_number(row.get("latency_ci_low_ms")), finite_number(row.get("latency_ci_high_ms"))
    return fmt(value) if low is None or high is None else f"{fmt(value)} [{fmt(low)}-{fmt(high)}]"


def fill_headline(df: pd.DataFrame) -> pd.DataFrame:
    """Rows written before ``latency_ms`` existed get it from ``round_medians_ms`` (in place; returned).

    Rows without round medians (single-round runs of old) keep the pooled median, without an interval.
    """
    if "latency_ms" not in df:
        df["latency_ms"] = np.nan
    for name in ("latency_ci_low_ms", "latency_ci_high_ms"):
        if name not in df:
            df[name] = np.nan
    for index in df.index[df["latency_ms"].isna()]:
        medians = json_numbers(df.at[index, "round_medians_ms"] if "round_medians_ms" in df else None)
        if medians:
            for name, value in headline_columns(medians).items():
                df.at[index, name] = np.nan if value is None else value
        elif "latency_median_ms" in df:
            df.at[index, "latency_ms"] = df.at[index, "latency_median_ms"]
    return df


def json_numbers(text: object) -> list[float]:
    """The positive finite numbers of a JSON list stored in a CSV cell (``round_medians_ms``); [] when absent."""
    if not isinstance(text, str) or not text:
        return []
    try:
        values = json.loads(text)
    except ValueError:
        return []
    if not isinstance(values, list):
        return []
    numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return [float(v) for v in numbers if math.isfinite(v) and v > 0]
