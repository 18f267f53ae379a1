"""``bench compare OLD NEW``: did a model get slower?

Rows are matched by model, resolution, batch size and setting (:func:`bench.core.records.schema.setting_identity`
without the machine: backend, device, precision, threads, channels-last, compile, backend options,
weights, head); the latest successful run of each side is used, as in the report.

For each pair the change is NEW's headline over OLD's (the ``headline`` estimator of
:class:`bench.core.records.cell.Cell`, printed under that name), with an interval from both headlines'
standard errors, which include the spread between sittings:

- *REGRESSION*: slower by more than ``--threshold`` (the noise threshold, as in criterion.rs) and the
  interval lies entirely above 1. A setting that ran in OLD but fails in NEW is a regression too.
  *improved* is the mirror image.
- *not judged (unstable)*: a side is unstable (too few rounds on a calm machine, or its own rounds
  disagree): its number need not reproduce, so no verdict is given.
- *untested (no interval)*: a side has no interval (one round, or an import without rounds).

The machine's speed is not divided out (on committed sittings that turned small changes into false
regressions); the change of its calm-speed reference is shown as a diagnostic. The statistics and
verdicts live in :mod:`bench.core.measure.verdicts`. Exit code 1 when there is a regression (for CI), 3 when
nothing regressed but some setting could not be tested or judged (``--allow-untested``: 0), 0
otherwise, 2 on bad input. Comparing results from different environments (machine or software) is
allowed but warned about on stderr.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from bench.core import arguments
from bench.core.measure.verdicts import JUDGED, Side, compare, exit_code, level, tally
from bench.core.report.formatting import FORMATS, render


def _percent(text: str) -> float:
    try:
        value = float(text.strip().rstrip("%"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a percentage: {text!r}") from None
    if not 0 <= value < 1000:
        raise argparse.ArgumentTypeError(f"threshold must be between 0 and 1000 percent, got {text!r}")
    return value


def _alpha(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"alpha must be between 0 and 1, got {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("old", type=Path, help="baseline results (a run directory, a folder of runs or summary.csv)")
    parser.add_argument("new", type=Path, help="results to check against the baseline")
    parser.add_argument(
        "--threshold",
        type=_percent,
        default=5.0,
        metavar="PCT",
        help="noise threshold: smallest slowdown of the headline that counts as a regression (default: 5)",
    )
    parser.add_argument(
        "--alpha", type=_alpha, default=0.01, help="the change's interval has level 1-alpha (default: 0.01)"
    )
    parser.add_argument("--models", default=None, help="only these models: names, family ids, 'paper' or 'all'")
    parser.add_argument("--format", choices=FORMATS, default="table", help="output format (default: table)")
    parser.add_argument(
        "--allow-untested",
        action="store_true",
        help="exit 0 even when some setting could not be tested or judged (no interval, unstable): by default "
        "that is exit 3",
    )


# ------------------------------------------------------------------------------------ output


def _signed(v: object, digits: int = 1) -> str:
    return "-" if pd.isna(v) else f"{v:+.{digits}f}"


def display_frame(df: pd.DataFrame, alpha: float) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "model": df["model"],
            "backend": df["backend"] + "/" + df["device"],
            "precision": df["precision"],
            "batch": df["batch"].astype(str),
            "res": df["resolution"].astype(str),
            f"old {JUDGED} ms": df[f"old_{JUDGED}_ms"].map(lambda v: "-" if pd.isna(v) else f"{v:.3f}"),
            f"new {JUDGED} ms": df[f"new_{JUDGED}_ms"].map(lambda v: "-" if pd.isna(v) else f"{v:.3f}"),
            "change %": df["change_pct"].map(_signed),
            f"{level(alpha)} CI %": [
                "-" if pd.isna(lo) else f"[{(lo - 1) * 100:+.1f}, {(hi - 1) * 100:+.1f}]"
                for lo, hi in zip(df["ci_low"], df["ci_high"], strict=True)
            ],
            "clean rounds": [
                "-" if pd.isna(a) or pd.isna(b) else f"{int(a)}/{int(b)}"
                for a, b in zip(df["clean_rounds_old"], df["clean_rounds_new"], strict=True)
            ],
            "machine %": df["floor_change_pct"].map(_signed),
            "verdict": df["verdict"],
        }
    )


def main(args: argparse.Namespace) -> int:
    names = arguments.select_models(args.models) if args.models else None
    old = Side(args.old, "OLD", names)
    new = Side(args.new, "NEW", names)
    df, notes = compare(old, new, threshold=args.threshold, alpha=args.alpha)
    if notes and notes[0].startswith("warning:"):
        print(notes.pop(0), file=sys.stderr)
    if args.format in ("csv", "json"):
        print(render(df, args.format))
    else:
        print(render(display_frame(df, args.alpha), args.format))
    counts = tally(df)
    stream = sys.stdout if args.format in ("table", "markdown") else sys.stderr
    for note in notes:
        print(f"note: {note}", file=stream)
    print(counts.line(args.threshold, args.alpha), file=stream)
    code = exit_code(counts, args.allow_untested)
    if code == 3:
        print(
            f"warning: {counts.untested} setting(s) could not be tested (no interval) and {counts.unjudged} not "
            "judged (unstable); pass --allow-untested to accept that",
            file=sys.stderr,
        )
    return code
