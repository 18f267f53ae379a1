"""Runtime ratios: each runtime's latency relative to one chosen runtime, in one sitting.

The question researchers quote is "how much faster is runtime A than runtime B on this network".
On a shared machine the speed of the whole machine moves between phases by tens of percent, and a
phase does not hit every runtime alike (a small batch-1 workload suffers more than a large one), so
one scalar correction cannot remove it. What survives it is each cell's headline, as the summary
stores it (:func:`bench.core.measure.stats.headline`: its clean rounds): the ratio is the quotient of the two
cells' headlines, with a prediction interval from both cells' standard errors
(:func:`bench.core.measure.stats.ratio_of`).
Pairing the two cells round by round was tried and measured worse: a phase lasts a few seconds and
one round over every cell of a sitting lasts tens of seconds, so the same round index is not the
same phase. Ratios are formed only inside one sitting (one results folder, with the one ``--resume``
continued it in), where both cells were interleaved over the same stretch of time.
"""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd

from bench.core.measure.stats import Headline, ratio_of
from bench.core.records.cell import Cell, CellKey
from bench.core.records.schema import UNSTABLE
from bench.core.report.reporting import Report

CELL_COLUMNS = ("run_id", "model", "resolution", "batch", "threads", "precision", "backend")
"""What names a paired line (:func:`_line`): the sitting, the cell, and the runtime and precision divided."""

RATIO_COLUMNS = (
    *CELL_COLUMNS,
    "ratio_to",
    "rounds",
    "ratio",
    "ratio_ci_low",
    "ratio_ci_high",
    "latency_ms",
    "ratio_to_latency_ms",
    "unstable",
)
"""``run_id`` names the sitting (its first run: a sitting continued by ``--resume`` spans two); ``unstable``:
either cell is flagged unstable."""


def _headline(row: pd.Series) -> Headline:
    return Cell.from_row(row).headline


def _paired(
    measurements: pd.DataFrame, axis: str, base: str
) -> Iterator[tuple[object, pd.Series, Headline, pd.Series, Headline]]:
    """Within each sitting, every row of a report's measurements whose ``axis`` (``backend`` or
    ``precision``) is not ``base``, with the row that differs from it only there: (sitting, row, its
    headline, base row, its headline). Rows pair when their :meth:`CellKey.without` ``axis`` agree."""
    for sitting, table in measurements.groupby("sitting", sort=False):
        if base not in set(table[axis]) or table[axis].nunique() < 2:
            continue
        pairs = pd.Series([CellKey.of(row).without(axis) for row in table.to_dict("records")], index=table.index)
        for _, cell in table.groupby(pairs, sort=False):
            base_rows = cell[cell[axis] == base]
            if base_rows.empty:
                continue
            for _, other in cell[cell[axis] != base].iterrows():
                yield sitting, other, _headline(other), base_rows.iloc[0], _headline(base_rows.iloc[0])


def _line(sitting: object, row: pd.Series) -> dict[str, object]:
    return {
        "run_id": sitting,
        "model": row["model"],
        "resolution": int(row["infer_img_size"]),
        "batch": int(row["infer_batch_size"]),
        "threads": row["threads"],
        "precision": row["precision"],
        "backend": row["backend"],
    }


def ratio_frame(report: Report, ratio_to: str) -> pd.DataFrame:
    """One line per (sitting, cell, runtime other than ``ratio_to``) of the report's measurements (its models,
    one row per cell as it shows them): the ratio and its interval."""
    return ratios(report.measurements, ratio_to)


def ratios(measurements: pd.DataFrame, ratio_to: str) -> pd.DataFrame:
    """:func:`ratio_frame` of a report's measurements (or a part of them)."""
    lines = _divided(measurements, "backend", ratio_to, "ratio", "ratio_to", base_on_top=False)
    return pd.DataFrame(lines, columns=list(RATIO_COLUMNS))


def _divided(
    measurements: pd.DataFrame, axis: str, base: str, value: str, base_field: str, *, base_on_top: bool
) -> list[dict[str, object]]:
    """The lines of :func:`ratios` and :func:`speedups`: each pair of :func:`_paired` divided (the base's
    headline over the other's when ``base_on_top``, the other way round otherwise), with the interval, both
    latencies and whether either cell is unstable; ``value`` and ``base_field`` name the columns."""
    lines: list[dict[str, object]] = []
    for sitting, other, mine, base_row, base_headline in _paired(measurements, axis, base):
        h = ratio_of(base_headline, mine) if base_on_top else ratio_of(mine, base_headline)
        lines.append(
            {
                **_line(sitting, other),
                base_field: base,
                "rounds": h.rounds,
                value: h.value,
                f"{value}_ci_low": h.low,
                f"{value}_ci_high": h.high,
                "latency_ms": mine.value,
                f"{base_field}_latency_ms": base_headline.value,
                "unstable": UNSTABLE in (other.get("validity"), base_row.get("validity")),
            }
        )
    return lines


SPEEDUP_COLUMNS = (
    *CELL_COLUMNS,
    "speedup_over",
    "rounds",
    "speedup",
    "speedup_ci_low",
    "speedup_ci_high",
    "latency_ms",
    "speedup_over_latency_ms",
    "unstable",
)
"""``speedup`` is the ``speedup_over`` precision's latency divided by this precision's (above 1: faster);
``unstable``: either cell is flagged unstable."""


def speedup_frame(report: Report, over: str = "fp32") -> pd.DataFrame:
    """One line per (sitting, cell, precision other than ``over``) of the report's measurements: how many
    times faster the same runtime runs the same model in that precision, with the interval; both cells
    from one sitting, as for runtime ratios."""
    return speedups(report.measurements, over)


def speedups(measurements: pd.DataFrame, over: str = "fp32") -> pd.DataFrame:
    """:func:`speedup_frame` of a report's measurements (or a part of them)."""
    lines = _divided(measurements, "precision", over, "speedup", "speedup_over", base_on_top=True)
    return pd.DataFrame(lines, columns=list(SPEEDUP_COLUMNS))
