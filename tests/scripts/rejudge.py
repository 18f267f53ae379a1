"""Recompute a results folder's headline and validity columns under the current rules (rewrites summary.csv).

    python tests/scripts/rejudge.py results/reference/<run> [more run folders] [--floor-ms F] [--sitting-sd SD]

The headline (``latency_ms`` and its interval) and the validity verdict are derived from the rounds
a run recorded (``rounds.csv``: each round's median, the machine-speed reference before it, other
processes' CPU use and steal). When the rules that derive them change, a committed reference is
brought up to date with this instead of being re-measured; every measured column, every sample and
every round stay as they were. Only ok rows with recorded rounds are touched; the script says how
many changed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

DERIVED = (
    "latency_ms",
    "latency_ci_low_ms",
    "latency_ci_high_ms",
    "round_spread",
    "reference_drift",
    "clean_rounds",
    "machine_floor_ms",
    "round_processes",
)


def _numbers(frame: pd.DataFrame, column: str) -> list[float | None]:
    if column not in frame:
        return [None] * len(frame)
    values = pd.to_numeric(frame[column], errors="coerce")
    return [None if pd.isna(v) else float(v) for v in values]


def sitting_level(run_dir: Path, recorded_floor: float | None = None) -> float:
    """How far the run's own fast level stayed above the machine's floor (``MachineFloor.level``), from its
    rounds.csv."""
    from bench.core.measure import machine
    from bench.core.records.store import ROUNDS_FILE

    rounds = pd.read_csv(run_dir / ROUNDS_FILE, dtype=str, keep_default_na=False)
    references = [r for r in _numbers(rounds[~rounds["row_id"].str.contains("#")], "reference_ms") if r is not None]
    return machine.MachineFloor("rejudge", recorded_floor).level(references)


def rejudge(
    run_dir: Path, recorded_floor: float | None = None, sitting_sd: float | None = None
) -> tuple[int, int, dict[str, tuple[float, float]]]:
    """(rows recomputed, rows whose verdict changed, what the machine's history would keep) for one run.

    The machine's floor is the run's own (a low quantile of every reference block it timed), or
    ``recorded_floor`` where that is lower (the floor earlier sittings recorded on this machine).
    ``sitting_sd``: how far the machine's sittings differ (default: what the run recorded it judged
    with, else :data:`~bench.core.measure.stats.SITTING_SD`).
    """
    import json

    from bench.core.measure import machine
    from bench.core.measure.stats import MIN_CLEAN_ROUNDS, SITTING_SD, headline, headline_columns, only_wide
    from bench.core.records.cell import CellKey
    from bench.core.records.schema import STABLE, STATUS_OK, SUMMARY_COLUMNS
    from bench.core.records.store import ROUNDS_FILE, SUMMARY_FILE

    if sitting_sd is None:
        try:
            sitting_sd = float(json.loads((run_dir / "environment.json").read_text()).get("sitting_sd"))
        except (OSError, ValueError, TypeError):
            sitting_sd = SITTING_SD
    kept: dict[str, tuple[float, float]] = {}

    summary = pd.read_csv(run_dir / SUMMARY_FILE, dtype=str, keep_default_na=False)
    rounds = pd.read_csv(run_dir / ROUNDS_FILE, dtype=str, keep_default_na=False)
    rounds = rounds.drop_duplicates(["row_id", "round"], keep="last")
    rounds = rounds.assign(order=pd.to_numeric(rounds["round"], errors="coerce")).sort_values("order")
    sitting_references = [
        r for r in _numbers(rounds[~rounds["row_id"].str.contains("#")], "reference_ms") if r is not None
    ]
    floor = machine.MachineFloor("rejudge", recorded_floor).of(sitting_references)
    slow_level = machine.MachineFloor("rejudge", recorded_floor).level(sitting_references)
    for column in DERIVED:
        if column not in summary:
            summary[column] = ""
    done = changed = 0
    for index, row in summary.iterrows():
        mine = rounds[rounds["row_id"] == row["row_id"]]
        if row["status"] != STATUS_OK or mine.empty:
            continue
        medians = [m for m in _numbers(mine, "median_ms") if m is not None]
        references = [r if r is not None else float("nan") for r in _numbers(mine, "reference_ms")]
        processes = [int(p) if p is not None else 0 for p in _numbers(mine, "process")]
        verdict = machine.judge(
            medians,
            references,
            _numbers(mine, "busy_cpu"),
            _numbers(mine, "steal"),
            int(float(row["iterations"] or 0)),
            floor,
            processes,
            sitting_sd,
            slow_level,
        )
        clean = machine.clean_mask(references, floor, len(medians))
        if sum(clean) >= MIN_CLEAN_ROUNDS and (verdict.verdict == STABLE or only_wide(verdict.reason)):
            h = headline(medians, clean, processes, sitting_sd, slow_level)
            kept[CellKey.of(row.to_dict()).digest()] = (h.value, float(h.own_sd or 0.0))
        values = {
            **headline_columns(medians, clean, processes, sitting_sd, slow_level),
            **verdict.as_columns(),
            "round_processes": json.dumps(processes),
        }
        changed += values["validity"] != row.get("validity")
        for column in (*DERIVED, "validity", "validity_reason"):
            if column in summary:
                value = values.get(column)
                summary.at[index, column] = "" if value is None else str(value)
        done += 1
    ordered = [c for c in SUMMARY_COLUMNS if c in summary] + [c for c in summary if c not in SUMMARY_COLUMNS]
    summary[ordered].to_csv(run_dir / SUMMARY_FILE, index=False, lineterminator="\n")
    return done, changed, kept


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders (each with summary.csv and rounds.csv)")
    parser.add_argument("--floor-ms", type=float, default=None, help="the machine's recorded calm-speed reference")
    parser.add_argument(
        "--sitting-sd", type=float, default=None, help="how far the machine's sittings differ (log-scale sd)"
    )
    args = parser.parse_args(argv)
    for run_dir in args.runs:
        if not (run_dir / "summary.csv").is_file() or not (run_dir / "rounds.csv").is_file():
            print(f"error: {run_dir}: not a run folder with summary.csv and rounds.csv", file=sys.stderr)
            return 2
        done, changed, _ = rejudge(run_dir, args.floor_ms, args.sitting_sd)
        print(f"{run_dir}: recomputed {done} row(s); {changed} changed verdict")
    return 0


if __name__ == "__main__":
    sys.exit(main())
