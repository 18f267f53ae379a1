"""Did a model get slower? The verdicts of ``bench compare``, as an API.

Rows are matched by model, resolution, batch size and setting (:func:`bench.core.records.schema.setting_identity`
without the machine); the latest successful run of each side is used, as in the report. What is judged
is the headline itself (:func:`bench.core.measure.stats.headline`: the mean of the fastest half of a cell's
clean rounds), NEW over OLD, with an interval from both headlines' standard errors, which include the
spread between sittings (a change smaller than what two sittings of the same code show is no change).
The machine-speed reference is not divided out: on pairs of committed sittings that correction turned
small raw changes into false regressions (one scalar speed cannot stand for every workload), so the
change of the machine's floor is shown beside the verdict as a diagnostic. A cell unstable on either
side is not judged (its number need not reproduce), unless its only fault is an interval too wide to
promise 5%: that interval is the evidence, and a change beyond it is still a change. :func:`verdict`
names the outcome; :func:`tally` counts the outcomes and :func:`exit_code` turns them into a CI answer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist

import pandas as pd

from bench.core.errors import BenchError
from bench.core.records.cell import Cell, CellKey, Estimator
from bench.core.records.environment import device_name
from bench.core.records.schema import COMPARE_COLUMNS, STATUS_OK, latest_ok, measured
from bench.core.records.store import load_results

ENV_FIELDS = ("hostname", "cpu_model", "cpu_count", "os", "python", "gpu_name")

REGRESSION = "REGRESSION"
NOW_FAILS = "REGRESSION (now fails)"
IMPROVED = "improved"
BELOW_THRESHOLD = "below threshold"
NOT_SIGNIFICANT = "not significant"
NOT_JUDGED = "not judged (unstable)"
UNTESTED = "untested (no interval)"


# ------------------------------------------------------------------------------------ statistics


JUDGED: Estimator = "headline"
"""The estimator ``compare`` judges (and prints as ``old_headline_ms`` / ``new_headline_ms``)."""


def compare_headlines(old: Cell, new: Cell, *, threshold: float, alpha: float) -> dict[str, object]:
    """NEW / OLD of the two cells' headlines, its interval at level 1 - alpha, and the verdict for one pair."""
    old_ms, new_ms = old.headline.value, new.headline.value
    ratio = new_ms / old_ms
    result: dict[str, object] = {f"old_{JUDGED}_ms": old_ms, f"new_{JUDGED}_ms": new_ms, "ratio": ratio}
    if old.machine_floor_ms and new.machine_floor_ms:
        result["floor_change_pct"] = (new.machine_floor_ms / old.machine_floor_ms - 1.0) * 100.0
    sds = old.headline.sd_log, new.headline.sd_log
    if sds[0] is not None and sds[1] is not None:
        sd = math.hypot(sds[0], sds[1])
        z = NormalDist().inv_cdf(1.0 - alpha / 2.0)
        lo, hi = ratio * math.exp(-z * sd), ratio * math.exp(z * sd)
        p = 2.0 * (1.0 - NormalDist().cdf(abs(math.log(ratio)) / sd)) if sd > 0 else 0.0
        result.update(ci_low=lo, ci_high=hi, p_value=p)
    if not (old.judgeable and new.judgeable):
        result["verdict"] = NOT_JUDGED
    elif "ci_low" not in result:
        result["verdict"] = UNTESTED
    else:
        result["verdict"] = verdict(ratio, result["ci_low"], result["ci_high"], threshold=threshold)  # type: ignore[arg-type]
    return result


def verdict(ratio: float, lo: float, hi: float, *, threshold: float) -> str:
    """The outcome of one pair from the headline ratio NEW/OLD and that ratio's interval.

    - :data:`REGRESSION`: slower by more than ``threshold`` percent (criterion.rs' noise threshold) and
      the interval above 1; :data:`IMPROVED` is the mirror image;
    - :data:`BELOW_THRESHOLD`: the interval excludes 1 but the change is within the threshold;
    - :data:`NOT_SIGNIFICANT`: otherwise.
    """
    limit = threshold / 100.0
    if ratio - 1 > limit and lo > 1:
        return REGRESSION
    if 1 - ratio > limit and hi < 1:
        return IMPROVED
    if lo > 1 or hi < 1:
        return BELOW_THRESHOLD
    return NOT_SIGNIFICANT


# ------------------------------------------------------------------------------------ matching


_MATCH = "_match"
"""Column of a side's rows holding their :class:`~bench.core.records.cell.CellKey` while its latest rows are chosen."""


class Side:
    """One result set: the latest measured cell (and failed row) per cell key, and the environments."""

    def __init__(self, path: Path, role: str, model_names: list[str] | None) -> None:
        summary, _, self.environments = load_results([path])  # oldest first: later rows win below
        df = summary if model_names is None else summary[summary["model"].isin(model_names)]
        self.path = path
        self.role = role
        self.notes: list[str] = []
        df = df.assign(**{_MATCH: [CellKey.of(row) for _, row in df.iterrows()]})
        ok = measured(df).to_numpy()
        latest = {row[_MATCH]: Cell.from_row(row) for _, row in latest_ok(df, [_MATCH]).iterrows()}
        self.ok: dict[CellKey, Cell] = {key: latest[key] for key in dict.fromkeys(df.loc[ok, _MATCH])}
        """The latest measured cell per key, in the order the keys first appear."""
        failed = (df["status"] != STATUS_OK).to_numpy()
        self.failed: dict[CellKey, pd.Series] = {row[_MATCH]: row.drop(_MATCH) for _, row in df[failed].iterrows()}
        """The latest row that did not measure, per setting."""
        self.medianless = {key: str(tool or "its tool") for key, tool in zip(
            df.loc[~ok & ~failed, _MATCH], df.loc[~ok & ~failed, "source_tool"], strict=True
        )}  # fmt: skip
        """Settings measured without a median (an import of a tool that printed only a mean or a minimum), by tool."""
        envs: dict[CellKey, set[str]] = {}
        for key, env_id in zip(df.loc[ok, _MATCH], df.loc[ok, "env_id"], strict=True):
            envs.setdefault(key, set()).add(str(env_id))
        several = sum(len(e) > 1 for e in envs.values())
        if several:
            self.notes.append(
                f"{role} has {several} setting(s) measured in several environments; the latest run is compared"
            )


def _same_device(old: Side, new: Side, a: Cell, b: Cell) -> None:
    """A cell imported from a device is only ever compared with cells of the same device."""
    envs = [side.environments.get(cell.env_id, {}) for side, cell in ((old, a), (new, b))]
    devices = [device_name(env) for env in envs]
    if devices[0] != devices[1] and any(env.get("imported") for env in envs):
        raise BenchError(
            f"{a.model} {a.backend}: OLD ran on {devices[0] or '?'}, NEW on {devices[1] or '?'}: "
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


def compare(old: Side, new: Side, *, threshold: float, alpha: float) -> tuple[pd.DataFrame, list[str]]:
    """One row per setting present in both sides (plus settings that newly fail), and notes."""
    rows = []
    old_envs, new_envs = [], []
    for key, a in old.ok.items():
        base = {
            "model": a.model,
            "backend": a.backend,
            "device": a.device,
            "precision": a.precision,
            "batch": a.batch,
            "resolution": a.resolution,
            "threads": a.threads,
            "old_validity": a.validity,
        }
        b = new.ok.get(key)
        if b is not None:
            _same_device(old, new, a, b)
            stats = compare_headlines(a, b, threshold=threshold, alpha=alpha)
            rows.append(
                {
                    **base,
                    **stats,
                    "clean_rounds_old": a.clean_rounds,
                    "clean_rounds_new": b.clean_rounds,
                    "new_validity": b.validity,
                }
            )
            old_envs.append(a.env_id)
            new_envs.append(b.env_id)
        elif key in new.failed:
            f = new.failed[key]
            rows.append(
                {
                    **base,
                    f"old_{JUDGED}_ms": a.headline.value,
                    "verdict": NOW_FAILS,
                    "error": f"{f['status']}: {f['error']}" if isinstance(f.get("error"), str) else f["status"],
                }
            )
    medianless = [
        f"{side.role} has {len(side.medianless)} setting(s) without a median ({', '.join(sorted(set(tools)))} "
        "printed only a mean or a minimum), which compare cannot judge: a mean is no headline"
        for side in (old, new)
        if (tools := list(side.medianless.values()))
    ]
    if not rows:
        why = f"; {'; '.join(medianless)}" if medianless else ""
        raise BenchError(
            f"no setting was measured in both {old.path} and {new.path} (rows match by model, resolution, "
            "batch and setting: backend, device, precision, threads, channels-last, compile, backend options, "
            f"weights, head){why}"
        )
    notes = old.notes + new.notes + medianless
    for r in rows:
        if r["verdict"] == NOW_FAILS:
            notes.append(
                f"{r['model']} {r['backend']}/{r['device']} batch {r['batch']} ran in OLD but not in NEW ({r['error']})"
            )
    unjudged = [f"{r['model']} {r['backend']}" for r in rows if r["verdict"] == NOT_JUDGED]
    if unjudged:
        notes.append(
            f"not judged, unstable on a side (see its validity_reason; measure again on a calm machine): "
            f"{', '.join(unjudged)}"
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
    df = pd.DataFrame(rows).reindex(
        columns=[c for c in COMPARE_COLUMNS if c != "error" or any("error" in r for r in rows)]
    )
    df["change_pct"] = (pd.to_numeric(df["ratio"], errors="coerce") - 1.0) * 100.0
    return df, notes


@dataclass(frozen=True)
class Tally:
    """How many compared settings got each kind of outcome (each setting is counted once)."""

    compared: int
    regressions: int
    improvements: int
    unjudged: int
    """Unstable on a side: the number need not reproduce, so no verdict."""
    untested: int
    unchanged: int
    """Not significant or within the threshold."""

    def line(self, threshold: float, alpha: float) -> str:
        return (
            f"{self.compared} setting(s) compared: {self.regressions} regression(s), {self.improvements} "
            f"improvement(s), {self.unjudged} not judged (unstable), {self.untested} untested (no interval), "
            f"{self.unchanged} unchanged or within {threshold:g}% (headline NEW/OLD, {level(alpha)} interval "
            "from both headlines' standard errors, between-sitting spread included)"
        )


def tally(df: pd.DataFrame) -> Tally:
    """Count the verdicts of :func:`compare`'s rows."""
    v = df["verdict"]
    counts = {
        "regressions": int(v.isin([REGRESSION, NOW_FAILS]).sum()),
        "improvements": int((v == IMPROVED).sum()),
        "unjudged": int((v == NOT_JUDGED).sum()),
        "untested": int((v == UNTESTED).sum()),
    }
    return Tally(compared=len(df), unchanged=len(df) - sum(counts.values()), **counts)


def exit_code(counts: Tally, allow_untested: bool = False) -> int:
    """1 when something regressed, 3 when nothing did but some setting could not be tested or judged
    (unless ``allow_untested``), else 0: a CI gate never passes a result set it did not test."""
    if counts.regressions:
        return 1
    if (counts.untested or counts.unjudged) and not allow_untested:
        return 3
    return 0


def level(alpha: float) -> str:
    """The interval's level as a percentage, with as many digits as ``alpha`` needs (never a rounded 100%)."""
    return f"{(1 - alpha) * 100:.10g}%"
