"""``bench compare OLD NEW``: did latency change between two result sets, beyond noise?

Rows are matched by model, backend, device, precision, batch size, resolution and threads (the
latest successful run of each side, as in the report). For each pair, on the per-iteration samples:

- the change of the median latency, ``median(NEW) / median(OLD) - 1``;
- a two-sided Mann-Whitney U test (are NEW's iterations shifted against OLD's?);
- a percentile bootstrap confidence interval (level ``1 - alpha``, seeded) of the median ratio.

A pair is a *regression* when its median is slower by more than ``--threshold`` AND the change is
significant: Mann-Whitney ``p < alpha`` and the bootstrap interval lies entirely above 1. An
improvement is the mirror image. A setting that ran in OLD but fails in NEW is a regression too.
Exit code 1 when there is a regression (for CI), 0 otherwise, 2 on bad input. Comparing results
from different environments (machine or software) is allowed but warned about on stderr.
"""

from __future__ import annotations

import argparse
import sys
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from bench.errors import BenchError
from bench.formatting import FORMATS, render
from bench.report import normalize_samples, normalize_summary
from bench.results import STATUS_OK, load_results

MATCH = ("model", "backend", "device", "precision", "infer_batch_size", "infer_img_size", "threads")
MIN_SAMPLES = 3
ENV_FIELDS = ("hostname", "cpu_model", "cpu_count", "os", "python", "gpu_name")

REGRESSION = "REGRESSION"
NOW_FAILS = "REGRESSION (now fails)"
IMPROVED = "improved"
BELOW_THRESHOLD = "below threshold"
NOT_SIGNIFICANT = "not significant"
UNTESTED = "untested (no samples)"

RESULT_COLUMNS = (
    "model", "backend", "device", "precision", "batch", "resolution", "threads", "old_ms", "new_ms",
    "ratio", "change_pct", "ci_low", "ci_high", "p_value", "n_old", "n_new", "verdict",
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


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return int(text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("old", type=Path, help="baseline results (a run directory, a folder of runs or summary.csv)")
    parser.add_argument("new", type=Path, help="results to check against the baseline")
    parser.add_argument(
        "--threshold",
        type=_percent,
        default=5.0,
        metavar="PCT",
        help="smallest slowdown of the median that counts as a regression, in percent (default: 5)",
    )
    parser.add_argument(
        "--alpha",
        type=_alpha,
        default=0.01,
        help="significance level of the Mann-Whitney U test; the bootstrap CI has level 1-alpha (default: 0.01)",
    )
    parser.add_argument(
        "--bootstrap", type=_positive, default=2000, metavar="N", help="bootstrap resamples (default: 2000)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (default: 0)")
    parser.add_argument("--models", default=None, help="only these models: names, family ids, 'paper' or 'all'")
    parser.add_argument("--format", choices=FORMATS, default="table", help="output format (default: table)")


# ------------------------------------------------------------------------------------ statistics


def bootstrap_medians(x: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Medians of ``n_boot`` resamples (with replacement) of ``x``, in bounded-memory chunks."""
    out = np.empty(n_boot)
    chunk = max(1, 2_000_000 // max(len(x), 1))
    for start in range(0, n_boot, chunk):
        stop = min(start + chunk, n_boot)
        idx = rng.integers(0, len(x), size=(stop - start, len(x)))
        out[start:stop] = np.median(x[idx], axis=1)
    return out


def median_ratio_ci(
    old: np.ndarray, new: np.ndarray, level: float, n_boot: int, rng: np.random.Generator
) -> tuple[float, float]:
    """Percentile bootstrap CI of ``median(new) / median(old)`` (the two sides resampled independently)."""
    ratios = bootstrap_medians(new, n_boot, rng) / bootstrap_medians(old, n_boot, rng)
    tail = (1.0 - level) / 2.0 * 100.0
    lo, hi = np.percentile(ratios, [tail, 100.0 - tail])
    return float(lo), float(hi)


def compare_samples(
    old: np.ndarray, new: np.ndarray, *, threshold: float, alpha: float, n_boot: int, seed: Sequence[int]
) -> dict[str, object]:
    """Change of the median, its test and CI, and the verdict for one pair of sample sets."""
    old = np.asarray(old, dtype=float)
    new = np.asarray(new, dtype=float)
    ratio = float(np.median(new) / np.median(old))
    result: dict[str, object] = {"ratio": ratio, "p_value": None, "ci_low": None, "ci_high": None}
    if len(old) < MIN_SAMPLES or len(new) < MIN_SAMPLES:
        result["verdict"] = UNTESTED
        return result
    from scipy.stats import mannwhitneyu  # slow to import; not needed for --help

    p = float(mannwhitneyu(old, new, alternative="two-sided").pvalue)
    lo, hi = median_ratio_ci(old, new, 1.0 - alpha, n_boot, np.random.default_rng(list(seed)))
    result.update(p_value=p, ci_low=lo, ci_high=hi)
    limit = threshold / 100.0
    significant = p < alpha
    if significant and ratio - 1 > limit and lo > 1:
        result["verdict"] = REGRESSION
    elif significant and 1 - ratio > limit and hi < 1:
        result["verdict"] = IMPROVED
    elif significant and (lo > 1 or hi < 1):
        result["verdict"] = BELOW_THRESHOLD
    else:
        result["verdict"] = NOT_SIGNIFICANT
    return result


# ------------------------------------------------------------------------------------ matching


def _key(row: pd.Series) -> tuple[str, ...]:
    return tuple("" if pd.isna(row[c]) else str(row[c]) for c in MATCH)


class Side:
    """One result set: the latest ok (and failed) row per matched setting, samples and environments."""

    def __init__(self, path: Path, role: str, model_names: list[str] | None) -> None:
        summary, samples, self.environments = load_results([path])
        df = normalize_summary(summary)  # oldest first: later rows overwrite earlier ones below
        if model_names is not None:
            df = df[df["model"].isin(model_names)]
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
        s = normalize_samples(samples)
        self.samples = {k: g["latency_ms"].to_numpy() for k, g in s.groupby(["run_id", "row_id"], sort=False)}

    def samples_of(self, row: pd.Series) -> np.ndarray:
        return self.samples.get((str(row["run_id"]), str(row["row_id"])), np.empty(0))


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
        base = {c: a[c] for c in MATCH}
        b = new.ok.get(key)
        if b is not None:
            xa, xb = old.samples_of(a), new.samples_of(b)
            if len(xa) and len(xb):
                tag = zlib.crc32("|".join(key).encode())  # per-setting stream: independent of row order
                stats = compare_samples(xa, xb, threshold=threshold, alpha=alpha, n_boot=n_boot, seed=(seed, tag))
                old_ms, new_ms = float(np.median(xa)), float(np.median(xb))
            else:  # no samples: the summaries' medians, untested
                old_ms, new_ms = float(a["latency_median_ms"]), float(b["latency_median_ms"])
                stats = {"ratio": new_ms / old_ms, "p_value": None, "ci_low": None, "ci_high": None}
                stats["verdict"] = UNTESTED
            rows.append({**base, "old_ms": old_ms, "new_ms": new_ms, **stats, "n_old": len(xa), "n_new": len(xb)})
            old_envs.append(str(a["env_id"]))
            new_envs.append(str(b["env_id"]))
        elif key in new.failed:
            f = new.failed[key]
            rows.append(
                {
                    **base,
                    "old_ms": float(a["latency_median_ms"]),
                    "verdict": NOW_FAILS,
                    "n_old": len(old.samples_of(a)),
                    "n_new": 0,
                    "error": f"{f['status']}: {f['error']}" if isinstance(f.get("error"), str) else f["status"],
                }
            )
    if not rows:
        raise BenchError(
            f"no setting was measured in both {old.path} and {new.path} "
            f"(rows match by {', '.join(MATCH).replace('infer_', '')})"
        )
    notes = old.notes + new.notes
    for r in rows:
        if r["verdict"] == NOW_FAILS:
            notes.append(
                f"{r['model']} {r['backend']}/{r['device']} batch {r['infer_batch_size']} ran in OLD but not in NEW "
                f"({r['error']})"
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
    df = pd.DataFrame(rows).rename(columns={"infer_batch_size": "batch", "infer_img_size": "resolution"})
    df = df.reindex(columns=[*RESULT_COLUMNS, *(["error"] if "error" in df else [])])
    df["change_pct"] = (df["ratio"] - 1.0) * 100.0
    return df, notes


# ------------------------------------------------------------------------------------ output


def _signed(v: object, digits: int = 1) -> str:
    return "-" if pd.isna(v) else f"{v:+.{digits}f}"


def display_frame(df: pd.DataFrame, alpha: float) -> pd.DataFrame:
    level = f"{(1 - alpha) * 100:g}%"
    out = pd.DataFrame(
        {
            "model": df["model"],
            "backend": df["backend"] + "/" + df["device"],
            "precision": df["precision"],
            "batch": df["batch"].astype(str),
            "res": df["resolution"].astype(str),
            "threads": df["threads"].map(lambda t: "-" if pd.isna(t) else str(int(t))),
            "old ms": df["old_ms"].map(lambda v: "-" if pd.isna(v) else f"{v:.3f}"),
            "new ms": df["new_ms"].map(lambda v: "-" if pd.isna(v) else f"{v:.3f}"),
            "change %": df["change_pct"].map(_signed),
            f"{level} CI %": [
                "-" if pd.isna(lo) else f"[{(lo - 1) * 100:+.1f}, {(hi - 1) * 100:+.1f}]"
                for lo, hi in zip(df["ci_low"], df["ci_high"], strict=True)
            ],
            "p (MWU)": df["p_value"].map(lambda p: "-" if pd.isna(p) else f"{p:.2g}"),
            "verdict": df["verdict"],
        }
    )
    return out


def main(args: argparse.Namespace) -> int:
    names = None
    if args.models:
        from bench.selection import select_models

        names = select_models(args.models)
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
    summary = (
        f"{len(df)} setting(s) compared: {regressions} regression(s), {improved} improvement(s), "
        f"{len(df) - regressions - improved} unchanged or within {args.threshold:g}% "
        f"(Mann-Whitney U at alpha {args.alpha:g} and {(1 - args.alpha) * 100:g}% bootstrap CI of the median ratio)"
    )
    stream = sys.stdout if args.format in ("table", "markdown") else sys.stderr
    for note in notes:
        print(f"note: {note}", file=stream)
    print(summary, file=stream)
    return 1 if regressions else 0
