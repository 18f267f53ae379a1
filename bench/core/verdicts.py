"""Did a model get slower, beyond what the machine itself did? The verdicts of ``bench compare``, as an API.

Rows are matched by model, resolution, batch size and setting (:func:`bench.core.schema.setting_identity`
without the machine); the latest successful run of each side is used, as in the report. For each pair the
change is computed on per-round medians, each divided by the machine-speed reference measured just before
that round (:mod:`bench.core.machine`), with a two-level bootstrap for its interval
(:func:`bench.core.stats.round_ratio`). :func:`verdict` names the outcome; :func:`tally` counts the
outcomes of a comparison and :func:`exit_code` turns them into a CI answer.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bench.core.environment import device_name
from bench.core.errors import BenchError
from bench.core.schema import COMPARE_COLUMNS, UNSTABLE, cell_identity, latest_ok, measured, setting_identity
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
    raw_rounds = float(np.exp(np.log(new.values(False)).mean() - np.log(old.values(False)).mean()))
    result["verdict"] = verdict(ratio, lo, hi, raw_rounds, threshold=threshold, drift_corrected=use_reference)
    return result


def verdict(ratio: float, lo: float, hi: float, raw_ratio: float, *, threshold: float, drift_corrected: bool) -> str:
    """The outcome of one pair from its corrected ratio NEW/OLD, that ratio's interval and the raw ratio.

    - :data:`REGRESSION`: corrected change slower by more than ``threshold`` percent, interval above 1;
      :data:`IMPROVED` is the mirror image;
    - :data:`DRIFT`: the raw change is beyond the threshold while the corrected one is within it (the
      machine's speed explains the move); only when the change was drift-corrected;
    - :data:`BELOW_THRESHOLD`: significant but within the threshold; :data:`NOT_SIGNIFICANT`: otherwise.
    """
    limit = threshold / 100.0
    if ratio - 1 > limit and lo > 1:
        return REGRESSION
    if 1 - ratio > limit and hi < 1:
        return IMPROVED
    if drift_corrected and abs(raw_ratio - 1) > limit and abs(ratio - 1) <= limit:
        return DRIFT
    if lo > 1 or hi < 1:
        return BELOW_THRESHOLD
    return NOT_SIGNIFICANT


# ------------------------------------------------------------------------------------ matching


_MATCH = "_match"
"""Column of a side's rows holding :func:`_key` while its latest rows are chosen."""


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
        df = df.assign(**{_MATCH: [_key(row) for _, row in df.iterrows()]})
        ok = measured(df).to_numpy()
        latest = {row[_MATCH]: row.drop(_MATCH) for _, row in latest_ok(df, [_MATCH]).iterrows()}
        self.ok: dict[tuple[str, ...], pd.Series] = {key: latest[key] for key in dict.fromkeys(df.loc[ok, _MATCH])}
        """The latest ok row per setting, in the order the settings first appear."""
        self.failed: dict[tuple[str, ...], pd.Series] = {row[_MATCH]: row.drop(_MATCH) for _, row in df[~ok].iterrows()}
        """The latest row that did not measure, per setting."""
        envs: dict[tuple[str, ...], set[str]] = {}
        for key, env_id in zip(df.loc[ok, _MATCH], df.loc[ok, "env_id"], strict=True):
            envs.setdefault(key, set()).add(str(env_id))
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


def _same_device(old: Side, new: Side, a: pd.Series, b: pd.Series) -> None:
    """A row imported from a device is only ever compared with rows of the same device."""
    envs = [side.environments.get(str(row["env_id"]), {}) for side, row in ((old, a), (new, b))]
    devices = [device_name(env) for env in envs]
    if devices[0] != devices[1] and any(env.get("imported") for env in envs):
        raise BenchError(
            f"{a['model']} {a['backend']}: OLD ran on {devices[0] or '?'}, NEW on {devices[1] or '?'}: "
            "compare never mixes devices (report puts them side by side)"
        )


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
            _same_device(old, new, a, b)
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
    df = df.reindex(columns=[c for c in COMPARE_COLUMNS if c != "error" or "error" in df])
    return df, notes


@dataclass(frozen=True)
class Tally:
    """How many compared settings got each kind of outcome (each setting is counted once)."""

    compared: int
    regressions: int
    improvements: int
    drift: int
    untested: int
    unchanged: int
    """Not significant or within the threshold."""

    def line(self, threshold: float, alpha: float) -> str:
        return (
            f"{self.compared} setting(s) compared: {self.regressions} regression(s), {self.improvements} "
            f"improvement(s), {self.drift} change(s) explained by machine drift, {self.untested} untested (no "
            f"samples to test), {self.unchanged} unchanged or within {threshold:g}% (per-round medians over the "
            f"machine-speed reference, {level(alpha)} two-level bootstrap interval)"
        )


def tally(df: pd.DataFrame) -> Tally:
    """Count the verdicts of :func:`compare`'s rows."""
    v = df["verdict"]
    counts = {
        "regressions": int(v.isin([REGRESSION, NOW_FAILS]).sum()),
        "improvements": int((v == IMPROVED).sum()),
        "drift": int((v == DRIFT).sum()),
        "untested": int((v == UNTESTED).sum()),
    }
    return Tally(compared=len(df), unchanged=len(df) - sum(counts.values()), **counts)


def exit_code(counts: Tally, allow_untested: bool = False) -> int:
    """1 when something regressed, 3 when nothing did but some setting could not be tested (unless
    ``allow_untested``), else 0: a CI gate never passes a result set it did not test."""
    if counts.regressions:
        return 1
    if counts.untested and not allow_untested:
        return 3
    return 0


def level(alpha: float) -> str:
    """The interval's level as a percentage, with as many digits as ``alpha`` needs (never a rounded 100%)."""
    return f"{(1 - alpha) * 100:.10g}%"
