"""Runtime ratios: each runtime's latency relative to one chosen runtime, in one sitting.

The question researchers quote is "how much faster is runtime A than runtime B on this network".
On a shared machine the speed of the whole machine moves between phases by tens of percent, and a
phase does not hit every runtime alike (a small batch-1 workload suffers more than a large one), so
one scalar correction cannot remove it. What survives it is each cell's headline, as the summary
stores it (:func:`bench.core.stats.headline`: its clean rounds): the ratio is the quotient of the two
cells' headlines, with a prediction interval from both cells' standard errors
(:func:`bench.core.stats.ratio_of`).
Pairing the two cells round by round was tried and measured worse: a phase lasts a few seconds and
one round over every cell of a sitting lasts tens of seconds, so the same round index is not the
same phase. Ratios are formed only inside one sitting (one results folder), where both cells were
interleaved over the same stretch of time.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

import models
from bench.core.formatting import PaperTable, render_paper_table
from bench.core.schema import STATUS_OK, finite_number
from bench.core.stats import HEADLINE_LEVEL, Headline, fill_headline, ratio_of, stored_headline
from bench.core.store import find_run_dirs, load_summary
from bench.core.util import write_output

PAIR_KEY = ("model", "infer_img_size", "infer_batch_size", "device", "precision", "threads", "weights", "single_head")
"""Two rows of one sitting that differ only in their backend measure the same cell on two runtimes."""

RATIO_COLUMNS = (
    "run_id",
    "model",
    "resolution",
    "batch",
    "threads",
    "precision",
    "backend",
    "ratio_to",
    "rounds",
    "ratio",
    "ratio_ci_low",
    "ratio_ci_high",
    "latency_ms",
    "ratio_to_latency_ms",
)


def cell_headlines(run_dir: Path) -> pd.DataFrame:
    """The ok rows of a run with their headlines; a cell measured twice on one backend keeps its latest row,
    as ``report`` does (retried rows keep the attempt the summary chose)."""
    summary = fill_headline(load_summary(run_dir))
    ok = summary[(summary["status"] == STATUS_OK) & summary["latency_ms"].notna()]
    return ok.groupby(["backend", *PAIR_KEY], dropna=False, sort=False).tail(1)


def _headline(row: pd.Series) -> Headline:
    rounds = finite_number(row.get("clean_rounds")) or finite_number(row.get("rounds")) or 0
    low, high = finite_number(row.get("latency_ci_low_ms")), finite_number(row.get("latency_ci_high_ms"))
    return stored_headline(float(row["latency_ms"]), low, high, int(rounds))


def ratio_frame(run_dirs: Sequence[Path], ratio_to: str) -> pd.DataFrame:
    """One line per (sitting, cell, runtime other than ``ratio_to``): the ratio and its interval."""
    lines: list[dict[str, object]] = []
    for run_dir in run_dirs:
        table = cell_headlines(run_dir)
        if table.empty or ratio_to not in set(table["backend"]) or table["backend"].nunique() < 2:
            continue
        for _, cell in table.groupby(list(PAIR_KEY), dropna=False, sort=False):
            base_rows = cell[cell["backend"] == ratio_to]
            if base_rows.empty:
                continue
            base = _headline(base_rows.iloc[0])
            for _, other in cell[cell["backend"] != ratio_to].iterrows():
                mine = _headline(other)
                h = ratio_of(mine, base)
                lines.append(
                    {
                        "run_id": other["run_id"],
                        "model": other["model"],
                        "resolution": int(other["infer_img_size"]),
                        "batch": int(other["infer_batch_size"]),
                        "threads": other["threads"],
                        "precision": other["precision"],
                        "backend": other["backend"],
                        "ratio_to": ratio_to,
                        "rounds": h.rounds,
                        "ratio": h.value,
                        "ratio_ci_low": h.low,
                        "ratio_ci_high": h.high,
                        "latency_ms": mine.value,
                        "ratio_to_latency_ms": base.value,
                    }
                )
    return pd.DataFrame(lines, columns=list(RATIO_COLUMNS))


def _fmt_ratio(value: object) -> str:
    return "-" if value is None or pd.isna(value) else f"{float(value):.2f}"


def ratio_table(frame: pd.DataFrame) -> PaperTable:
    """Models x runtimes, one row group per sitting; a cell is ``ratio [low-high]``."""
    backends = list(dict.fromkeys(frame["backend"]))
    ratio_to = str(frame["ratio_to"].iloc[0])
    header = ["Model", "Res", "Batch", *[f"{b} / {ratio_to}" for b in backends]]
    groups: list[tuple[str, list[list[str]]]] = []
    order = {name: i for i, name in enumerate(models.list_models())}
    for run_id, sitting in frame.groupby("run_id", sort=False):
        rows = []
        sitting = sitting.sort_values(["batch", "model"], key=lambda c: c.map(order) if c.name == "model" else c)
        for (model, res, batch), cell in sitting.groupby(["model", "resolution", "batch"], sort=False):
            by_backend = cell.set_index("backend")
            cells = [str(model), str(res), str(batch)]
            for b in backends:
                if b not in by_backend.index:
                    cells.append("-")
                    continue
                r = by_backend.loc[b]
                interval = "" if pd.isna(r["ratio_ci_low"]) else f" [{_fmt_ratio(r['ratio_ci_low'])}-"
                interval += "" if pd.isna(r["ratio_ci_low"]) else f"{_fmt_ratio(r['ratio_ci_high'])}]"
                cells.append(_fmt_ratio(r["ratio"]) + interval)
            rows.append(cells)
        groups.append((f"sitting {run_id}", rows))
    note = (
        f"Each runtime's latency divided by {ratio_to}'s on the same model, batch and threads, in the same "
        f"sitting: the quotient of the two cells' headlines (each the mean of the fastest half of its clean rounds). "
        f"[low-high]: {HEADLINE_LEVEL:.0%} prediction interval for another sitting's ratio (both cells' "
        f"standard errors). Below 1: faster than {ratio_to}."
    )
    return PaperTable(
        header=header,
        groups=groups,
        align="lrr" + "r" * len(backends),
        title=f"Latency relative to {ratio_to}",
        notes=[note],
        label="tab:ratios",
    )


def write_ratio_tables(results: Sequence[Path | str], out_dir: Path | str, ratio_to: str | None) -> list[Path]:
    """ratios.csv/.md/.tex for every sitting under ``results`` that timed ``ratio_to`` beside another runtime.

    Writes nothing (and returns no path) when no sitting did, or ``ratio_to`` is None; ``bench report``
    then says so.
    """
    if ratio_to is None:
        return []
    frame = ratio_frame(find_run_dirs(map(Path, results)), ratio_to)
    if frame.empty:
        return []
    out = Path(out_dir)
    table = ratio_table(frame)
    return [
        write_output(out / "ratios.csv", frame.to_csv(index=False)),
        write_output(out / "ratios.md", render_paper_table(table, "markdown")),
        write_output(out / "ratios.tex", render_paper_table(table, "latex")),
    ]
