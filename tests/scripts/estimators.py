"""Which headline estimator reproduces across sittings? (not a unit test: reads results folders)

    python tests/scripts/estimators.py results/A results/B [results/C ...]

For every pair of sittings and every cell (runtime, model, batch) both measured, each estimator is
computed over the cell's round medians (rounds.csv) and the share of cells whose two values agree
within 5% is printed, with the share of runtime ratios (over ``--ratio-to``) within 3%: the two
reproducibility targets of a sitting. Also prints, per sitting, what the slow rounds looked like: how
much slower than the cell's fastest round they were, and how far the machine-speed reference moved
with them. This is the evidence behind the choice in ``bench/core/stats.py``.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from bench.core.stats import fast_count, fast_mean  # noqa: E402

ESTIMATORS: dict[str, Callable[[np.ndarray], float]] = {
    "median of all rounds": lambda a: float(np.median(a)),
    "mean of the fastest third (the headline)": fast_mean,
    "median of the rounds within 5% of the fastest": lambda a: float(np.median(a[a <= a.min() * 1.05])),
    "fastest round": lambda a: float(np.min(a)),
    "mean of all rounds": lambda a: float(np.mean(a)),
}
CELL = ["backend", "model", "infer_batch_size"]


def round_medians(run_dir: Path) -> pd.Series:
    """Each ok cell's round medians (an array per cell), the latest row of a cell measured twice."""
    from bench.core.schema import STATUS_OK
    from bench.core.store import ROUNDS_FILE, load_summary

    summary = load_summary(run_dir)
    ok = summary[summary["status"] == STATUS_OK].drop_duplicates(CELL, keep="last")
    rounds = pd.read_csv(run_dir / ROUNDS_FILE).drop_duplicates(["row_id", "round"], keep="last")
    merged = ok[["row_id", *CELL]].merge(rounds[["row_id", "median_ms", "reference_ms"]], on="row_id")
    return merged


def estimate(table: pd.DataFrame, estimator: Callable[[np.ndarray], float]) -> pd.Series:
    return table.groupby(CELL)["median_ms"].apply(lambda s: estimator(s.to_numpy(float)))


def agreement(a: pd.Series, b: pd.Series, ratio_to: str) -> tuple[float, float, int, int]:
    common = a.index.intersection(b.index)
    apart = np.maximum(a[common], b[common]) / np.minimum(a[common], b[common]) - 1
    ratios = []
    for side in (a[common], b[common]):
        table = side.unstack("backend")
        if ratio_to not in table:
            return float((apart <= 0.05).mean()), float("nan"), len(common), 0
        ratios.append(table.div(table[ratio_to], axis=0).drop(columns=ratio_to).stack())
    ratio_apart = np.maximum(*ratios) / np.minimum(*ratios) - 1
    return float((apart <= 0.05).mean()), float((ratio_apart <= 0.03).mean()), len(common), len(ratio_apart)


def slow_rounds(table: pd.DataFrame) -> str:
    """How slow the rounds more than 10% above each cell's headline were, and how far the reference moved."""
    slow, moved, count = [], [], 0
    for _, cell in table.groupby(CELL):
        m, ref = cell["median_ms"].to_numpy(float), cell["reference_ms"].to_numpy(float)
        fastest = np.argsort(m, kind="stable")[: fast_count(m.size)]
        late = m > m[fastest].mean() * 1.10
        count += m.size
        if late.any():
            slow.extend(m[late] / m[fastest].mean() - 1)
            moved.append(np.median(ref[late]) / np.median(ref[fastest]) - 1)
    if not slow:
        return f"none of {count} rounds more than 10% slower than its cell's fastest third"
    q = np.percentile(slow, [25, 50, 75])
    return (
        f"{len(slow)} of {count} rounds more than 10% slower than their cell's fastest third, by "
        f"{q[0]:.0%} / {q[1]:.0%} / {q[2]:.0%} (quartiles); reference in those rounds vs the fastest third: "
        f"{np.median(moved):+.0%} (median over cells)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sittings", nargs="+", type=Path, help="two or more results folders (one sitting each)")
    parser.add_argument("--ratio-to", default="onnx", help="runtime the ratios are taken over (default: onnx)")
    args = parser.parse_args(argv)
    if len(args.sittings) < 2:
        parser.error("give at least two results folders")
    from bench.core.errors import BenchError

    try:
        tables = {d: round_medians(d) for d in args.sittings}
    except (BenchError, OSError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for d, table in tables.items():
        print(f"{d.name}: {slow_rounds(table)}")
    for name, estimator in ESTIMATORS.items():
        values = {d: estimate(t, estimator) for d, t in tables.items()}
        parts = []
        for a, b in itertools.combinations(args.sittings, 2):
            lat, ratio, n, k = agreement(values[a], values[b], args.ratio_to)
            parts.append(f"latency {lat:.0%} of {n}, ratio {ratio:.0%} of {k}")
        print(f"{name}: {'; '.join(parts)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
