"""Runtime ratios: each runtime's latency relative to one chosen runtime, in one sitting.

The question researchers quote is "how much faster is runtime A than runtime B on this network".
On a shared machine the speed of the whole machine moves between phases by tens of percent, and a
phase does not hit every runtime alike (a small batch-1 workload suffers more than a large one), so
one scalar correction cannot remove it. What survives it is each cell's headline
(:func:`bench.core.stats.fast_mean`): the ratio is the quotient of the two cells' headlines, with
an interval from resampling each cell's rounds (:func:`bench.core.stats.ratio_headline`).
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
from bench.core.errors import BenchError
from bench.core.formatting import PaperTable, render_paper_table
from bench.core.schema import STATUS_OK
from bench.core.stats import HEADLINE_LEVEL, headline, ratio_headline
from bench.core.store import ROUNDS_FILE, find_run_dirs, load_summary
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


def load_round_medians(run_dir: Path) -> pd.DataFrame:
    """The round medians of a run's ok rows (the row's cell and backend beside each round).

    Retried rows keep only the attempt the summary chose (its ``row_id``); a cell measured twice on
    one backend in the run keeps its latest row, as ``report`` does.
    """
    summary = load_summary(run_dir)
    ok = summary[summary["status"] == STATUS_OK]
    ok = ok.groupby(["backend", *PAIR_KEY], dropna=False, sort=False).tail(1)
    path = run_dir / ROUNDS_FILE
    if ok.empty or not path.exists():
        return pd.DataFrame(columns=["run_id", "row_id", "backend", *PAIR_KEY, "round", "median_ms"])
    try:
        rounds = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError) as exc:
        raise BenchError(f"{path}: cannot be read as CSV ({exc})") from None
    if not {"row_id", "round", "median_ms"} <= set(rounds.columns):
        raise BenchError(f"{path}: not a rounds file of this suite (needs row_id, round, median_ms)")
    rounds = rounds.assign(
        round=pd.to_numeric(rounds["round"], errors="coerce"),
        median_ms=pd.to_numeric(rounds["median_ms"], errors="coerce"),
    )
    rounds = rounds[rounds["round"].notna() & (rounds["median_ms"] > 0)]
    rounds = rounds.drop_duplicates(["row_id", "round"], keep="last")
    facts = ok[["run_id", "row_id", "backend", *PAIR_KEY]]
    merged = facts.merge(rounds[["row_id", "round", "median_ms"]], on="row_id", how="inner")
    return merged.assign(round=merged["round"].astype(int))


def ratio_frame(run_dirs: Sequence[Path], ratio_to: str) -> pd.DataFrame:
    """One line per (sitting, cell, runtime other than ``ratio_to``): the ratio and its interval."""
    lines: list[dict[str, object]] = []
    for run_dir in run_dirs:
        table = load_round_medians(run_dir)
        if table.empty or ratio_to not in set(table["backend"]) or table["backend"].nunique() < 2:
            continue
        for _, cell in table.groupby(list(PAIR_KEY), dropna=False, sort=False):
            base = cell[cell["backend"] == ratio_to].set_index("round")["median_ms"]
            if base.empty:
                continue
            for backend, other in cell[cell["backend"] != ratio_to].groupby("backend", sort=False):
                mine = other.set_index("round")["median_ms"]
                h = ratio_headline(mine.tolist(), base.tolist())
                first = other.iloc[0]
                lines.append(
                    {
                        "run_id": first["run_id"],
                        "model": first["model"],
                        "resolution": int(first["infer_img_size"]),
                        "batch": int(first["infer_batch_size"]),
                        "threads": first["threads"],
                        "precision": first["precision"],
                        "backend": backend,
                        "ratio_to": ratio_to,
                        "rounds": h.rounds,
                        "ratio": h.value,
                        "ratio_ci_low": h.low,
                        "ratio_ci_high": h.high,
                        "latency_ms": headline(mine.tolist()).value,
                        "ratio_to_latency_ms": headline(base.tolist()).value,
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
        f"sitting: the quotient of the two cells' latencies (each the mean of its fastest third of rounds). "
        f"[low-high]: {HEADLINE_LEVEL:.0%} bootstrap "
        f"interval, each cell's rounds resampled. Below 1: faster than {ratio_to}."
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
