"""Does a number reproduce in another sitting? The issue-27 targets, over every pair of the sittings given.

    python tests/scripts/reproducibility.py SITTING SITTING [SITTING ...]   [--rejudge] [--batch 1]

A sitting is a run folder of ``bench run`` (summary.csv, rounds.csv). Over every pair of sittings, on
the cells both measured (runtime, model, batch, resolution, precision, threads), it prints:

* **cells**: headline (``latency_ms``) within 5% -- of all cells, and of the cells stable in both
  (target: at least 95% of those);
* **ratios**: each runtime over ``--ratio-to`` (default onnx), per model, within 3%, where both cells
  are stable in both sittings (target: at least 90%);
* **flagged**: cells unstable in each sitting (target on a calm machine: at most 20%);
* **coverage**: how often a sitting's headline falls inside the other sitting's interval as printed
  (every cell with an interval, and the stable ones; target: at least 90% at 95%);
* **compare, null**: cells ``bench compare`` calls changed between the two sittings (no code changed;
  target: at most 1 of 50);
* **compare, injected**: the second sitting's cells made 10% slower (headline and interval scaled), and
  the share of the cells compare judges that it calls a regression (target: 9 in 10);
* **variance**: where the spread lives (log scale, median over cells): rounds within a process,
  processes within a sitting, sittings.

``--rejudge`` first re-derives every row's headline, interval and validity from its rounds.csv under
the current rules (in a temporary copy; for folders written by an older version), leave one sitting
out: each sitting is judged with the spread between sittings learnt from the *other* sittings given
(:mod:`bench.core.measure.sitting_history`), as a machine's history would hold them; ``--machine-floor`` judges
them all against the lowest floor among them, as the machine's cache would have recorded it. Without
``--rejudge`` the sittings are read as they were written (each judged with the history its machine
had then). Exit status 0.
"""

from __future__ import annotations

import argparse
import itertools
import math
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

KEY = ["backend", "model", "infer_batch_size", "infer_img_size", "precision", "threads"]
LATENCY_TOLERANCE = 0.05
RATIO_TOLERANCE = 0.03
INJECTED = 1.10


def load(run_dir: Path, batch: int | None) -> pd.DataFrame:
    """The sitting's measured cells (first attempts only), keyed by :data:`KEY`."""
    from bench.core.records.schema import measured

    df = pd.read_csv(run_dir / "summary.csv")
    df = df[measured(df) & ~df["row_id"].astype(str).str.contains("#", regex=False)]
    if batch is not None:
        df = df[df["infer_batch_size"] == batch]
    df = df.assign(stable=df["validity"] == "stable", sitting=run_dir.name)
    return df.set_index(KEY)


def within(a: pd.Series, b: pd.Series, tolerance: float) -> pd.Series:
    return (np.maximum(a, b) / np.minimum(a, b) - 1.0) <= tolerance + 1e-12


def sitting_facts(run_dir: Path) -> str:
    """What the sitting was and how long it took, from its own files: the command's options, the time from
    its start to its last row (``started_at`` to the latest summary ``timestamp``), opening, extra passes."""
    import json

    env = json.loads((run_dir / "environment.json").read_text())
    args = list(env.get("argv", [])[1:])
    for flag in ("--out", "--cache-dir"):  # where it wrote is not what it measured
        if flag in args:
            at = args.index(flag)
            del args[at : at + 2]
    argv = " ".join(args) or "?"
    summary = pd.read_csv(run_dir / "summary.csv")
    start = pd.to_datetime(env.get("started_at"), utc=True, errors="coerce")
    end = pd.to_datetime(summary["timestamp"], utc=True, errors="coerce", format="mixed").max()
    wall = (end - start).total_seconds() if pd.notna(start) and pd.notna(end) else float("nan")
    extra = env.get("extra_rounds")
    passes = "-" if extra is None else f"{len(extra)} extra pass(es)"
    return (
        f"`{argv}`, started {env.get('started_at', '?')}, {wall:.0f} s to its last row "
        f"(opening {env.get('open_s', '?')} s, {passes}, {env.get('processes', 1)} process(es) per runtime)"
    )


def ratios(df: pd.DataFrame, ratio_to: str) -> pd.Series:
    """Each runtime's headline over ``ratio_to``'s for the same model and shape (stable cells only)."""
    flat = df.reset_index()
    base = flat[flat["backend"] == ratio_to].set_index(KEY[1:])
    out = {}
    for _, row in flat[flat["backend"] != ratio_to].iterrows():
        key = tuple(row[k] for k in KEY[1:])
        if key in base.index and row["stable"] and bool(base.loc[key, "stable"]):
            out[(row["backend"], *key)] = row["latency_ms"] / float(base.loc[key, "latency_ms"])
    return pd.Series(out, dtype=float)


def coverage(a: pd.DataFrame, b: pd.DataFrame, stable_only: bool) -> tuple[int, int]:
    """(covered, tested): B's headline inside A's printed prediction interval, over the cells sound in both
    sittings: an interval on each side and no fault but, at most, its width (the cells compare judges; a
    headline without an interval rests on a slow machine, one timed beside other work is biased)."""
    from bench.core.measure.stats import only_wide

    common = a.index.intersection(b.index)
    sound = lambda t: t.loc[common, "stable"] | t.loc[common, "validity_reason"].map(only_wide)  # noqa: E731
    common = common[(sound(a) & sound(b)).to_numpy()]
    if stable_only:
        common = common[(a.loc[common, "stable"] & b.loc[common, "stable"]).to_numpy()]
    low, high = a.loc[common, "latency_ci_low_ms"].to_numpy(), a.loc[common, "latency_ci_high_ms"].to_numpy()
    value = b.loc[common, "latency_ms"].to_numpy()
    has = np.isfinite(low) & np.isfinite(high) & np.isfinite(b.loc[common, "latency_ci_low_ms"].to_numpy())
    return int(((value >= low) & (value <= high))[has].sum()), int(has.sum())


def called_changed(a: pd.DataFrame, b: pd.DataFrame) -> tuple[int, int, int]:
    """(changed, judged, compared) by ``bench compare``'s statistics at its defaults."""
    from bench.core.measure import verdicts
    from bench.core.records.cell import Cell

    common = a.index.intersection(b.index)
    changed = judged = 0
    for key in common:
        v = verdicts.compare_headlines(Cell.from_row(a.loc[key]), Cell.from_row(b.loc[key]), threshold=5.0, alpha=0.01)[
            "verdict"
        ]
        changed += v in (verdicts.REGRESSION, verdicts.IMPROVED)
        judged += v not in (verdicts.NOT_JUDGED, verdicts.UNTESTED)
    return changed, judged, len(common)


def injected(a: pd.DataFrame, b: pd.DataFrame) -> tuple[int, int]:
    """(caught, tested): B's cells slowed by 10%, and compare's REGRESSION calls on them, over the cells
    compare judges (both sides with an interval and no fault but, at most, its width)."""
    from bench.core.measure import verdicts
    from bench.core.records.cell import Cell

    common = a.index.intersection(b.index)
    caught = tested = 0
    for key in common:
        null = verdicts.compare_headlines(
            Cell.from_row(a.loc[key]), Cell.from_row(b.loc[key]), threshold=5.0, alpha=0.01
        )["verdict"]
        if null in (verdicts.NOT_JUDGED, verdicts.UNTESTED):
            continue
        slow = b.loc[key].copy()
        for column in ("latency_ms", "latency_ci_low_ms", "latency_ci_high_ms"):
            slow[column] = slow[column] * INJECTED
        v = verdicts.compare_headlines(Cell.from_row(a.loc[key]), Cell.from_row(slow), threshold=5.0, alpha=0.01)[
            "verdict"
        ]
        caught += v == verdicts.REGRESSION
        tested += 1
    return caught, tested


def variance(dirs: Sequence[Path], tables: list[pd.DataFrame]) -> dict[str, float]:
    """Median over cells of the log-scale variance at each level (clean rounds only)."""
    from bench.core.measure import machine
    from bench.core.measure.stats import fast_mean

    within_process, between_process = [], []
    for run_dir in dirs:
        rounds = pd.read_csv(run_dir / "rounds.csv")
        rounds = rounds[~rounds["row_id"].astype(str).str.contains("#", regex=False)]
        floor = machine.MachineFloor.own_level(rounds["reference_ms"].astype(float).tolist())
        if "process" not in rounds:
            rounds["process"] = 0
        for _, cell in rounds.groupby("row_id"):
            clean = cell[machine.clean_mask(cell["reference_ms"].tolist(), floor, len(cell))]
            per_process = [np.log(g["median_ms"].to_numpy()) for _, g in clean.groupby("process") if len(g) >= 2]
            if per_process:
                within_process.append(float(np.mean([np.var(p, ddof=1) for p in per_process])))
            if len(per_process) >= 2:
                means = [np.log(fast_mean(np.exp(p).tolist())) for p in per_process]
                between_process.append(float(np.var(means, ddof=1)))
    differences = []  # |log| of a pair's headlines, over cells stable in both sittings of the pair
    for a, b in itertools.combinations(tables, 2):
        common = a.index.intersection(b.index)
        both = common[(a.loc[common, "stable"] & b.loc[common, "stable"]).to_numpy()]
        differences += np.abs(np.log(a.loc[both, "latency_ms"] / b.loc[both, "latency_ms"])).tolist()
    # one sitting's variance from the median absolute difference (robust, as the machine's history learns it)
    between_sitting = [(1.4826 * float(np.median(differences))) ** 2 / 2] if differences else []
    med = lambda xs: float(np.median(xs)) if xs else float("nan")  # noqa: E731
    return {
        "rounds within a process": med(within_process),
        "processes within a sitting": med(between_process),
        "sittings (a stable headline, own errors included; from pairs stable in both)": med(between_sitting),
    }


def rejudged_copies(
    dirs: Sequence[Path], scratch: Path, shared_floor: bool
) -> tuple[list[Path], list[str], list[dict[str, tuple[float, float]]]]:
    """Copies of ``dirs`` re-derived under the current rules, each judged with the spread between sittings
    learnt from the others (leave one sitting out), and a line per sitting saying what that spread was;
    ``shared_floor``: every sitting judged against the lowest floor among them, as a machine whose cache
    recorded it from earlier sittings."""
    from bench.core.measure import machine
    from bench.core.measure.sitting_history import CALM_LEVEL, estimate
    from tests.scripts.rejudge import rejudge, sitting_level

    floor = None
    if shared_floor:
        own = [machine.MachineFloor.own_level(pd.read_csv(d / "rounds.csv")["reference_ms"].tolist()) for d in dirs]
        floor = min(f for f in own if f is not None)
    copies = []
    for run_dir in dirs:
        target = scratch / run_dir.name
        shutil.copytree(run_dir, target)
        copies.append(target)
    kept = [rejudge(target, floor)[2] for target in copies]  # what each would leave in the machine's history
    calm = [sitting_level(target, floor) <= CALM_LEVEL for target in copies]  # as SittingHistory.spread keeps
    notes = []
    for n, target in enumerate(copies):
        spread = estimate([k for m, k in enumerate(kept) if m != n and calm[m]])
        rejudge(target, floor, spread.sd)
        source = f"learnt from {spread.cells} cell pairs of the other sittings" if spread.learnt else "assumed"
        notes.append(f"S{n + 1} judged with sittings differing by {spread.sd:.2%} ({source})")
    return copies, notes, kept


def spread_line(dirs: Sequence[Path], kept: list[dict[str, tuple[float, float]]] | None = None) -> str:
    """The spread between sittings that every sitting given, together, teaches (the history's estimate);
    ``kept``: what each leaves in the history, as judged already (else judged here against its own floor)."""
    from bench.core.measure.sitting_history import estimate
    from tests.scripts.rejudge import rejudge

    if kept is None:
        with tempfile.TemporaryDirectory() as scratch:
            kept = []
            for run_dir in dirs:
                target = Path(scratch) / run_dir.name
                shutil.copytree(run_dir, target)
                kept.append(rejudge(target)[2])
    spread = estimate(kept)
    return f"{spread.sd:.2%} over {spread.cells} cell pairs" if spread.learnt else "- (too few cells)"


APART_S = 3600
"""Issue 27 asks for agreement across sittings started at least an hour apart: those pairs are summed apart too."""


def started(run_dir: Path) -> pd.Timestamp:
    import json

    env = json.loads((run_dir / "environment.json").read_text())
    return pd.to_datetime(env.get("started_at"), utc=True, errors="coerce")


def pair_counts(a: pd.DataFrame, b: pd.DataFrame, ratio_to: str) -> dict[str, int]:
    """What one pair of sittings contributes to every target."""
    common = a.index.intersection(b.index)
    near = within(a.loc[common, "latency_ms"], b.loc[common, "latency_ms"], LATENCY_TOLERANCE)
    both = (a.loc[common, "stable"] & b.loc[common, "stable"]).to_numpy()
    ra, rb = ratios(a, ratio_to), ratios(b, ratio_to)
    rc = ra.index.intersection(rb.index)
    changed, judged, compared = called_changed(a, b)
    caught, tested = injected(a, b)
    c1, n1 = coverage(a, b, stable_only=False)
    c2, n2 = coverage(b, a, stable_only=False)
    s1, m1 = coverage(a, b, stable_only=True)
    s2, m2 = coverage(b, a, stable_only=True)
    return {
        "common": len(common),
        "near": int(near.sum()),
        "stable": int(both.sum()),
        "agree": int(near[both].sum()),
        "ratios": len(rc),
        "ratios_ok": int(within(ra[rc], rb[rc], RATIO_TOLERANCE).sum()),
        "changed": changed,
        "judged": judged,
        "compared": compared,
        "caught": caught,
        "tested": tested,
        "covered": c1 + c2,
        "cover_tested": n1 + n2,
        "covered_stable": s1 + s2,
        "cover_stable_tested": m1 + m2,
    }


def pair_line(i: int, j: int, c: dict[str, int]) -> str:
    return (
        f"S{i + 1} vs S{j + 1}: cells within 5% {c['near']}/{c['common']}; "
        f"stable in both {c['stable']}, of them within 5% {c['agree']}; "
        f"ratios of stable cells within 3% {c['ratios_ok']}/{c['ratios']}; "
        f"interval covers the other sitting {c['covered']}/{c['cover_tested']} "
        f"(stable cells {c['covered_stable']}/{c['cover_stable_tested']}); "
        f"compare calls changed {c['changed']}/{c['compared']} ({c['judged']} judged); "
        f"injected +10% caught {c['caught']}/{c['tested']}"
    )


def summary_lines(pairs: Sequence[dict[str, int]]) -> list[str]:
    """The targets summed over ``pairs`` (items 3-5 of issue 27)."""
    from bench.core.measure.stats import HEADLINE_LEVEL

    total = {k: sum(p[k] for p in pairs) for k in (pairs[0] if pairs else {})}

    def share(k: str, n: str) -> str:
        return f"{total[k]}/{total[n]} ({total[k] / total[n]:.0%})" if total.get(n) else "-"

    return [
        f"  stable in both and within 5%: {share('agree', 'stable')}   (target: at least 95%)",
        f"  ratios of stable cells within 3%: {share('ratios_ok', 'ratios')}   (target: at least 90%)",
        f"  interval ({HEADLINE_LEVEL:.0%}) covers the other sitting: {share('covered', 'cover_tested')} of cells "
        f"sound in both, {share('covered_stable', 'cover_stable_tested')} of cells stable in both   "
        "(target: at least 90%)",
        f"  compare calls a cell changed: {share('changed', 'compared')}   (target: at most 1 of 50)",
        f"  injected +10% caught: {share('caught', 'tested')}   (target: at least 9 in 10)",
    ]


def report(
    dirs: Sequence[Path],
    batch: int | None,
    ratio_to: str,
    notes: Sequence[str] = (),
    kept: list[dict[str, tuple[float, float]]] | None = None,
) -> str:
    tables = [load(d, batch) for d in dirs]
    lines = []
    for n, (d, t) in enumerate(zip(dirs, tables, strict=True), start=1):
        lines.append(
            f"S{n} = {d.name}: {int((~t['stable']).sum())} of {len(t)} cells flagged unstable; {sitting_facts(d)}"
        )
    lines += [*notes, ""]
    every, apart = [], []
    for (i, a), (j, b) in itertools.combinations(enumerate(tables), 2):
        counts = pair_counts(a, b, ratio_to)
        lines.append(pair_line(i, j, counts))
        every.append(counts)
        if abs((started(dirs[j]) - started(dirs[i])).total_seconds()) >= APART_S:
            apart.append(counts)
    flagged = sum(int((~t["stable"]).sum()) for t in tables), sum(len(t) for t in tables)
    share = f"{flagged[0]}/{flagged[1]} ({flagged[0] / max(flagged[1], 1):.0%})"
    lines += ["", "over every pair:", *summary_lines(every)]
    lines.append(f"  cells flagged unstable: {share}   (target on a calm machine: at most 20%)")
    lines += [
        f"  spread between sittings beyond a cell's own rounds, learnt from all of them: {spread_line(dirs, kept)}",
        "",
        f"over the {len(apart)} pairs started at least an hour apart:",
        *(summary_lines(apart) if apart else ["  -"]),
        "",
        "variance of log latency by level (median over cells):",
    ]
    for level, value in variance(dirs, tables).items():
        lines.append(f"  {level}: {value:.2e}" + (f" (sd {math.sqrt(value):.2%})" if math.isfinite(value) else ""))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sittings", nargs="+", type=Path, help="run folders (summary.csv and rounds.csv)")
    parser.add_argument("--rejudge", action="store_true", help="re-derive headlines and validity under current rules")
    parser.add_argument(
        "--machine-floor",
        action="store_true",
        help="with --rejudge: judge every sitting against the lowest floor among them (the machine's recorded one)",
    )
    parser.add_argument("--batch", type=int, default=None, help="only this batch size (default: every batch)")
    parser.add_argument("--ratio-to", default="onnx", help="the runtime ratios are over (default: onnx)")
    args = parser.parse_args(argv)
    for d in args.sittings:
        if not (d / "summary.csv").is_file() or not (d / "rounds.csv").is_file():
            print(f"error: {d}: not a run folder with summary.csv and rounds.csv", file=sys.stderr)
            return 2
    if len(args.sittings) < 2:
        print("error: give at least two sittings", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as scratch:
        dirs, notes, kept = (
            rejudged_copies(args.sittings, Path(scratch), args.machine_floor)
            if args.rejudge
            else (list(args.sittings), [], None)
        )
        print(report(dirs, args.batch, args.ratio_to, notes, kept))
    return 0


if __name__ == "__main__":
    sys.exit(main())
