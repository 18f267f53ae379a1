"""``bench compare OLD NEW``: did a model get slower, beyond what the machine itself did?

Rows are matched by model, resolution, batch size and setting (:func:`bench.core.schema.setting_identity`
without the machine: backend, device, precision, threads, channels-last, compile, backend options,
weights, head); the latest successful run of each side is used, as in the report.

For each pair the change is computed on per-round medians, each divided by the machine-speed
reference measured just before that round (:mod:`bench.core.machine`), with a two-level bootstrap
(rounds, then iterations) for its confidence interval (:func:`bench.core.stats.round_ratio`):

- *REGRESSION*: the drift-corrected median is slower by more than ``--threshold`` (the noise
  threshold, as in criterion.rs) and the interval lies entirely above 1. A setting that ran in OLD but
  fails in NEW is a regression too. *improved* is the mirror image.
- *machine drift*: the raw per-round change is beyond the threshold, the drift-corrected one is not:
  the machine was slower or faster, not the model.
- rows without a reference (older runs) are compared on raw per-round medians, and say so.

Exit code 1 when there is a regression (for CI), 0 otherwise, 2 on bad input. Comparing results
from different environments (machine or software) is allowed but warned about on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from bench.core import arguments
from bench.core.errors import BenchError
from bench.core.formatting import FORMATS, render
from bench.core.schema import STATUS_OK, UNSTABLE, cell_identity, setting_identity
from bench.core.stats import Rounds, round_ratio
from bench.core.store import load_results

MIN_SAMPLES = 3
ENV_FIELDS = ("hostname", "cpu_model", "cpu_count", "os", "python", "gpu_name")

REGRESSION = "REGRESSION"
NOW_FAILS = "REGRESSION (now fails)"
IMPROVED = "improved"
DRIFT = "machine drift"
BELOW_THRESHOLD = "below threshold"
NOT_SIGNIFICANT = "not significant"
UNTESTED = "untested (no samples)"

RESULT_COLUMNS = (
    "model", "backend", "device", "precision", "batch", "resolution", "threads", "old_ms", "new_ms",
    "raw_ratio", "ratio", "raw_change_pct", "change_pct", "ci_low", "ci_high", "p_value", "rounds_old", "rounds_new",
    "basis", "old_validity", "new_validity", "verdict",
)  # fmt: skip


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
        help="noise threshold: smallest drift-corrected slowdown that counts as a regression (default: 5)",
    )
    parser.add_argument(
        "--alpha", type=_alpha, default=0.01, help="the bootstrap interval has level 1-alpha (default: 0.01)"
    )
    parser.add_argument(
        "--bootstrap", type=arguments.count("--bootstrap", 10**6), default=2000, metavar="N", help="(default: 2000)"
    )
    parser.add_argument("--seed", type=arguments.seed, default=0, help="seed of the bootstrap (default: 0)")
    parser.add_argument("--models", default=None, help="only these models: names, family ids, 'paper' or 'all'")
    parser.add_argument("--format", choices=FORMATS, default="table", help="output format (default: table)")


# ------------------------------------------------------------------------------------ statistics


def compare_rounds(
    old: Rounds, new: Rounds, *, threshold: float, alpha: float, n_boot: int, seed: tuple[int, ...]
) -> dict[str, object]:
    """Raw and drift-corrected change, the corrected change's interval, and the verdict for one pair."""
    raw = float(np.median(new.all_samples) / np.median(old.all_samples))
    result: dict[str, object] = {"raw_ratio": raw, "ratio": raw, "p_value": None, "ci_low": None, "ci_high": None}
    if min(len(s) for s in [*old.samples, *new.samples]) < MIN_SAMPLES:
        result.update(verdict=UNTESTED, basis="-")
        return result
    use_reference = old.normalised and new.normalised
    rng = np.random.default_rng(list(seed))
    ratio, lo, hi, p = round_ratio(old, new, use_reference=use_reference, level=1 - alpha, n_boot=n_boot, rng=rng)
    result.update(ratio=ratio, ci_low=lo, ci_high=hi, p_value=p)
    result["basis"] = "drift-corrected" if use_reference else "raw rounds (no reference recorded)"
    limit = threshold / 100.0
    if ratio - 1 > limit and lo > 1:
        verdict = REGRESSION
    elif 1 - ratio > limit and hi < 1:
        verdict = IMPROVED
    elif lo > 1 or hi < 1:
        verdict = BELOW_THRESHOLD
    else:
        verdict = NOT_SIGNIFICANT
    raw_rounds = float(np.exp(np.log(new.values(False)).mean() - np.log(old.values(False)).mean()))
    if use_reference and verdict not in (REGRESSION, IMPROVED) and abs(raw_rounds - 1) > limit:
        verdict = DRIFT  # the raw numbers moved beyond the threshold; the machine's speed explains it
    result["verdict"] = verdict
    return result


# ------------------------------------------------------------------------------------ matching


def _key(row: pd.Series) -> tuple[str, ...]:
    return (*cell_identity(row), *setting_identity(row, with_env=False))


def _references(row: pd.Series) -> list[float] | None:
    try:
        values = json.loads(row["reference_ms"]) if isinstance(row.get("reference_ms"), str) else None
    except ValueError:
        return None
    return [float(v) for v in values] if isinstance(values, list) and values else None


class Side:
    """One result set: the latest ok (and failed) row per matched setting, samples and environments."""

    def __init__(self, path: Path, role: str, model_names: list[str] | None) -> None:
        summary, samples, self.environments = load_results([path])  # oldest first: later rows win below
        df = summary if model_names is None else summary[summary["model"].isin(model_names)]
        self.path = path
        self.role = role
        self.notes: list[str] = []
        self.ok: dict[tuple[str, ...], pd.Series] = {}
        self.failed: dict[tuple[str, ...], pd.Series] = {}
        envs: dict[tuple[str, ...], set[str]] = {}
        for _, row in df.iterrows():
            key = _key(row)
            if row["status"] == STATUS_OK and not pd.isna(row["latency_median_ms"]):
                self.ok[key] = row
                envs.setdefault(key, set()).add(str(row["env_id"]))
            else:
                self.failed[key] = row
        several = sum(len(e) > 1 for e in envs.values())
        if several:
            self.notes.append(
                f"{role} has {several} setting(s) measured in several environments; the latest run is compared"
            )
        self.samples = {k: g for k, g in samples.groupby(["run_id", "row_id"], sort=False)}

    def rounds_of(self, row: pd.Series) -> Rounds:
        s = self.samples.get((str(row["run_id"]), str(row["row_id"])))
        if s is None or s.empty:
            return Rounds([], None)
        per_round = [g["latency_ms"].to_numpy() for _, g in s.groupby("round", sort=True)]
        return Rounds(per_round, _references(row))


def environment_warning(old: Side, new: Side, old_envs: list[str], new_envs: list[str]) -> str | None:
    """One line naming what differs between the environments of the compared rows, or None."""
    if set(old_envs) == set(new_envs):
        return None
    a = old.environments.get(old_envs[0], {}) if old_envs else {}
    b = new.environments.get(new_envs[0], {}) if new_envs else {}
    diffs = [f"{k} {a.get(k)!s} -> {b.get(k)!s}" for k in ENV_FIELDS if a.get(k) != b.get(k)]
    va = a.get("versions") if isinstance(a.get("versions"), dict) else {}
    vb = b.get("versions") if isinstance(b.get("versions"), dict) else {}
    diffs += [f"{k} {va.get(k)} -> {vb.get(k)}" for k in sorted(set(va) | set(vb)) if va.get(k) != vb.get(k)]
    if not diffs:
        diffs = [f"env_id {', '.join(old_envs)} -> {', '.join(new_envs)}"]
    many = " (and more environments)" if len(set(old_envs)) > 1 or len(set(new_envs)) > 1 else ""
    return (
        f"warning: OLD and NEW come from different environments{many}: {'; '.join(diffs)}; "
        "a change may come from the machine or software, not the models"
    )


def compare(
    old: Side, new: Side, *, threshold: float, alpha: float, n_boot: int, seed: int
) -> tuple[pd.DataFrame, list[str]]:
    """One row per setting present in both sides (plus settings that newly fail), and notes."""
    rows = []
    old_envs, new_envs = [], []
    for key, a in old.ok.items():
        base = {
            "model": a["model"],
            "backend": a["backend"],
            "device": a["device"],
            "precision": a["precision"],
            "batch": a["infer_batch_size"],
            "resolution": a["infer_img_size"],
            "threads": a["threads"],
        }
        b = new.ok.get(key)
        if b is not None:
            ra, rb = old.rounds_of(a), new.rounds_of(b)
            if ra.samples and rb.samples:
                tag = zlib.crc32("|".join(key).encode())  # per-setting stream: independent of row order
                stats = compare_rounds(ra, rb, threshold=threshold, alpha=alpha, n_boot=n_boot, seed=(seed, tag))
                old_ms, new_ms = float(np.median(ra.all_samples)), float(np.median(rb.all_samples))
            else:  # no samples: the summaries' medians, untested
                old_ms, new_ms = float(a["latency_median_ms"]), float(b["latency_median_ms"])
                stats = {"raw_ratio": new_ms / old_ms, "ratio": new_ms / old_ms, "verdict": UNTESTED, "basis": "-"}
            rows.append(
                {
                    **base,
                    "old_ms": old_ms,
                    "new_ms": new_ms,
                    **stats,
                    "rounds_old": len(ra.samples),
                    "rounds_new": len(rb.samples),
                    "old_validity": a.get("validity") or "-",
                    "new_validity": b.get("validity") or "-",
                }
            )
            old_envs.append(str(a["env_id"]))
            new_envs.append(str(b["env_id"]))
        elif key in new.failed:
            f = new.failed[key]
            rows.append(
                {
                    **base,
                    "old_ms": float(a["latency_median_ms"]),
                    "verdict": NOW_FAILS,
                    "error": f"{f['status']}: {f['error']}" if isinstance(f.get("error"), str) else f["status"],
                }
            )
    if not rows:
        raise BenchError(
            f"no setting was measured in both {old.path} and {new.path} (rows match by model, resolution, "
            "batch and setting: backend, device, precision, threads, channels-last, compile, backend options, "
            "weights, head)"
        )
    notes = old.notes + new.notes
    for r in rows:
        if r["verdict"] == NOW_FAILS:
            notes.append(
                f"{r['model']} {r['backend']}/{r['device']} batch {r['batch']} ran in OLD but not in NEW ({r['error']})"
            )
    unstable = [r["model"] for r in rows if UNSTABLE in (r.get("old_validity"), r.get("new_validity"))]
    if unstable:
        notes.append(
            f"unstable rows (see their validity_reason): {', '.join(unstable)}; treat their verdicts with care"
        )
    only_old = len(set(old.ok) - set(new.ok) - set(new.failed))
    only_new = len(set(new.ok) - set(old.ok))
    if only_old:
        notes.append(f"{only_old} setting(s) only in OLD were not compared")
    if only_new:
        notes.append(f"{only_new} setting(s) only in NEW were not compared")
    warning = environment_warning(old, new, list(dict.fromkeys(old_envs)), list(dict.fromkeys(new_envs)))
    if warning:
        notes.insert(0, warning)
    df = pd.DataFrame(rows)
    df["change_pct"] = (df["ratio"] - 1.0) * 100.0
    df["raw_change_pct"] = (df["raw_ratio"] - 1.0) * 100.0 if "raw_ratio" in df else float("nan")
    df = df.reindex(columns=[*RESULT_COLUMNS, *(["error"] if "error" in df else [])])
    return df, notes


# ------------------------------------------------------------------------------------ output


def _signed(v: object, digits: int = 1) -> str:
    return "-" if pd.isna(v) else f"{v:+.{digits}f}"


def display_frame(df: pd.DataFrame, alpha: float) -> pd.DataFrame:
    level = f"{(1 - alpha) * 100:g}%"
    return pd.DataFrame(
        {
            "model": df["model"],
            "backend": df["backend"] + "/" + df["device"],
            "precision": df["precision"],
            "batch": df["batch"].astype(str),
            "res": df["resolution"].astype(str),
            "old ms": df["old_ms"].map(lambda v: "-" if pd.isna(v) else f"{v:.3f}"),
            "new ms": df["new_ms"].map(lambda v: "-" if pd.isna(v) else f"{v:.3f}"),
            "raw %": df["raw_change_pct"].map(_signed),
            "corrected %": df["change_pct"].map(_signed),
            f"{level} CI %": [
                "-" if pd.isna(lo) else f"[{(lo - 1) * 100:+.1f}, {(hi - 1) * 100:+.1f}]"
                for lo, hi in zip(df["ci_low"], df["ci_high"], strict=True)
            ],
            "rounds": [
                "-" if pd.isna(a) else f"{int(a)}/{int(b)}"
                for a, b in zip(df["rounds_old"], df["rounds_new"], strict=True)
            ],
            "verdict": df["verdict"],
        }
    )


def main(args: argparse.Namespace) -> int:
    names = arguments.select_models(args.models) if args.models else None
    old = Side(args.old, "OLD", names)
    new = Side(args.new, "NEW", names)
    df, notes = compare(old, new, threshold=args.threshold, alpha=args.alpha, n_boot=args.bootstrap, seed=args.seed)
    if notes and notes[0].startswith("warning:"):
        print(notes.pop(0), file=sys.stderr)
    if args.format in ("csv", "json"):
        print(render(df, args.format))
    else:
        print(render(display_frame(df, args.alpha), args.format))
    regressions = int(df["verdict"].isin([REGRESSION, NOW_FAILS]).sum())
    improved = int((df["verdict"] == IMPROVED).sum())
    drift = int((df["verdict"] == DRIFT).sum())
    summary = (
        f"{len(df)} setting(s) compared: {regressions} regression(s), {improved} improvement(s), "
        f"{drift} change(s) explained by machine drift, {len(df) - regressions - improved - drift} unchanged or "
        f"within {args.threshold:g}% (per-round medians over the machine-speed reference, "
        f"{(1 - args.alpha) * 100:g}% two-level bootstrap interval)"
    )
    stream = sys.stdout if args.format in ("table", "markdown") else sys.stderr
    for note in notes:
        print(f"note: {note}", file=stream)
    print(summary, file=stream)
    return 1 if regressions else 0
