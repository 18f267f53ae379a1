"""Reproducibility and flag-rate targets of the multi-runtime sitting (not a unit test: a run takes minutes).

    python tests/scripts/sitting_targets.py results/A results/B      # compare two sittings already run
    python tests/scripts/sitting_targets.py results/A                 # the flag rate of one sitting
    python tests/scripts/sitting_targets.py --run --gap 600 -- --backend all --models paper
                                                                      # run two sittings (bench run + the args
                                                                      # after --), --gap seconds apart, compare

Prints, against the issue's targets:
  * headline latency (``latency_ms``, the mean of the fastest third of rounds) within 5% between the two sittings
    for at least 90% of cells (a cell: runtime, model, batch, resolution, precision, threads);
  * runtime ratio (``bench/core/ratios.py``, each runtime over ``--ratio-to``) within 3% for at least
    90% of the (model, runtime) ratios;
  * at most 20% of cells flagged unstable in each sitting.
"Within x%" is symmetric: max(a, b) / min(a, b) - 1 <= x. ``--rejudge`` re-derives every row's
headline and validity from its rounds.csv with the current rules (for folders written by an older
version; runtime ratios are always computed from rounds.csv).
Exit status 0 when every target that could be measured is met, 1 when one is missed, 2 on bad input.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

LATENCY_TOLERANCE = 0.05
RATIO_TOLERANCE = 0.03
LATENCY_TARGET = 0.90
RATIO_TARGET = 0.90
FLAG_TARGET = 0.20


@dataclass
class Share:
    """``hits`` of ``total`` against a target (``at_most``: the share must not exceed it)."""

    name: str
    hits: int
    total: int
    target: float
    at_most: bool = False

    @property
    def share(self) -> float | None:
        return self.hits / self.total if self.total else None

    @property
    def met(self) -> bool | None:
        if self.share is None:
            return None
        return self.share <= self.target if self.at_most else self.share >= self.target

    def line(self) -> str:
        if self.share is None:
            return f"{self.name}: nothing to compare"
        bound = "<=" if self.at_most else ">="
        verdict = "met" if self.met else "MISSED"
        return f"{self.name}: {self.hits}/{self.total} ({self.share:.0%}), target {bound} {self.target:.0%}: {verdict}"


def apart(a: float, b: float) -> float:
    """Symmetric relative difference: max / min - 1."""
    return max(a, b) / min(a, b) - 1.0


def cells(run_dir: Path, rejudge: bool) -> pd.DataFrame:
    """The ok rows of one sitting, keyed by their cell (the latest row of a cell measured twice)."""
    from bench.core.schema import STATUS_OK, cell_identity, setting_identity
    from bench.core.store import ROUNDS_FILE, load_summary

    summary = load_summary(run_dir)
    ok = summary[summary["status"] == STATUS_OK].copy()
    if rejudge:
        from bench.core.stats import headline

        rounds = pd.read_csv(run_dir / ROUNDS_FILE)
        ok["validity"] = [judged(rounds, row) for row in ok.to_dict("records")]
        ok["latency_ms"] = [
            headline(rounds.loc[rounds["row_id"] == row_id, "median_ms"].astype(float).tolist()).value
            for row_id in ok["row_id"]
        ]
    ok["cell"] = [(setting_identity(r, with_env=False), cell_identity(r)) for r in ok.to_dict("records")]
    return ok.drop_duplicates("cell", keep="last").set_index("cell")


def judged(rounds: pd.DataFrame, row: dict) -> str:
    """The row's validity under the current rules, from its rounds as rounds.csv recorded them."""
    from bench.core import machine

    mine = rounds[rounds["row_id"] == row["row_id"]].sort_values("round")
    numbers = {c: pd.to_numeric(mine[c], errors="coerce") if c in mine else None for c in ("busy_cpu", "steal")}
    return machine.judge(
        mine["median_ms"].astype(float).tolist(),
        mine["reference_ms"].astype(float).tolist(),
        [None if pd.isna(v) else float(v) for v in numbers["busy_cpu"]] if numbers["busy_cpu"] is not None else [],
        [None if pd.isna(v) else float(v) for v in numbers["steal"]] if numbers["steal"] is not None else [],
        int(row["iterations"]) if not pd.isna(row["iterations"]) else 0,
    ).verdict


def flag_share(name: str, table: pd.DataFrame) -> Share:
    from bench.core.schema import UNSTABLE

    return Share(name, int((table["validity"] == UNSTABLE).sum()), len(table), FLAG_TARGET, at_most=True)


def latency_share(a: pd.DataFrame, b: pd.DataFrame) -> tuple[Share, pd.DataFrame]:
    common = a.index.intersection(b.index)
    diff = pd.DataFrame(
        {
            "backend": a.loc[common, "backend"],
            "model": a.loc[common, "model"],
            "batch": a.loc[common, "infer_batch_size"],
            "a_ms": a.loc[common, "latency_ms"],
            "b_ms": b.loc[common, "latency_ms"],
        }
    )
    diff["apart"] = [apart(x, y) for x, y in zip(diff["a_ms"], diff["b_ms"], strict=True)]
    hits = int((diff["apart"] <= LATENCY_TOLERANCE).sum())
    return Share("headline latency within 5%", hits, len(diff), LATENCY_TARGET), diff.reset_index(drop=True)


def ratio_share(a_dir: Path, b_dir: Path, ratio_to: str) -> tuple[Share, pd.DataFrame]:
    from bench.core.ratios import ratio_frame

    key = ["model", "resolution", "batch", "threads", "precision", "backend"]
    ra = ratio_frame([a_dir], ratio_to).set_index(key)["ratio"]
    rb = ratio_frame([b_dir], ratio_to).set_index(key)["ratio"]
    common = ra.index.intersection(rb.index)
    diff = pd.DataFrame({"a_ratio": ra[common], "b_ratio": rb[common]})
    diff["apart"] = [apart(x, y) for x, y in zip(diff["a_ratio"], diff["b_ratio"], strict=True)]
    hits = int((diff["apart"] <= RATIO_TOLERANCE).sum())
    return Share(f"runtime ratio (over {ratio_to}) within 3%", hits, len(diff), RATIO_TARGET), diff.reset_index()


def evaluate(dirs: Sequence[Path], ratio_to: str, rejudge: bool, details: bool) -> list[Share]:
    tables = [cells(d, rejudge) for d in dirs]
    shares = [flag_share(f"flagged unstable in {d.name}", t) for d, t in zip(dirs, tables, strict=True)]
    if len(dirs) == 2:
        latency, latency_diff = latency_share(*tables)
        ratio, ratio_diff = ratio_share(dirs[0], dirs[1], ratio_to)
        shares = [latency, ratio, *shares]
        if details:
            with pd.option_context("display.width", 200, "display.max_rows", 500):
                print(latency_diff.sort_values("apart", ascending=False).to_string(index=False), end="\n\n")
                print(ratio_diff.sort_values("apart", ascending=False).to_string(index=False), end="\n\n")
    return shares


def run_two(bench_args: Sequence[str], out: Path, gap_s: float) -> list[Path]:
    """Two sittings of ``bench run <bench_args>`` into ``out``, started ``gap_s`` seconds apart."""
    made: list[Path] = []
    for i in range(2):
        if i:
            time.sleep(gap_s)
        before = set(out.glob("*/"))
        proc = subprocess.run([sys.executable, "-m", "bench", "run", *bench_args, "--out", str(out)], cwd=REPO)
        if proc.returncode not in (0, 1):  # 1: some cells failed; the others still make a sitting
            raise SystemExit(f"error: sitting {i + 1} failed (bench run exit {proc.returncode})")
        new = sorted(set(out.glob("*/")) - before)
        if len(new) != 1:
            raise SystemExit(f"error: expected one new results folder in {out}, found {len(new)}")
        made.append(new[0])
    return made


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sittings", nargs="*", type=Path, help="one or two results folders (one sitting each)")
    parser.add_argument("--run", action="store_true", help="run two sittings (bench run + the arguments after --)")
    parser.add_argument("--gap", type=float, default=0.0, help="seconds between the two sittings' starts (--run)")
    parser.add_argument("--out", type=Path, default=Path("results/targets"), help="where --run writes (git-ignored)")
    parser.add_argument("--ratio-to", default="onnx", help="runtime the ratios are taken over (default: onnx)")
    parser.add_argument("--rejudge", action="store_true", help="validity from rounds.csv under the current rules")
    parser.add_argument("--details", action="store_true", help="print every cell's difference")
    args, rest = parser.parse_known_args(argv)
    bench_args = [a for a in rest if a != "--"]

    from bench.core.errors import BenchError

    if args.run:
        if args.sittings:
            parser.error("give results folders or --run, not both")
        args.out.mkdir(parents=True, exist_ok=True)
        args.sittings = run_two(bench_args, args.out, args.gap)
    elif bench_args:
        parser.error(f"unrecognized arguments: {' '.join(bench_args)}")
    if not 1 <= len(args.sittings) <= 2:
        parser.error("give one or two results folders (one sitting each)")
    try:
        shares = evaluate(args.sittings, args.ratio_to, args.rejudge, args.details)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for share in shares:
        print(share.line())
    return 1 if any(s.met is False for s in shares) else 0


if __name__ == "__main__":
    sys.exit(main())
