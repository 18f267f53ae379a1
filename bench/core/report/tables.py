"""The report's tables: the paper-style main table and its CSV twins, built from a :class:`Report`."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from bench.core.errors import BenchError
from bench.core.measure.stats import HEADLINE_LEVEL, headline_note
from bench.core.records.environment import FRAMEWORK_PACKAGE
from bench.core.records.schema import SETTING_FIELDS, UNSTABLE
from bench.core.report.formatting import Entry, Interval, PaperTable, Text
from bench.core.report.reporting import STATUS_CELLS, Column, Report, _value

UNSTABLE_MARK = "†"
INTERVAL_NOTATION = "Latency +a/\u2212b: its interval [latency \u2212 b, latency + a], as it is (asymmetric)."

# ------------------------------------------------------------------------------------ numbers

FIGURES = 3
"""Significant figures of a column's smallest number; every number of the column gets that many decimals."""
MAX_DECIMALS = 3


def _fmt(value: object, digits: int) -> str:
    value = _value(value)
    return "-" if value is None else f"{float(value):.{digits}f}"


def fmt_top1(value: object) -> str:
    """Top-1 with one decimal, as every paper table prints it (78.09 -> 78.1)."""
    return _fmt(value, 1)


def column_decimals(values: object, figures: int = FIGURES) -> int:
    """Decimals that give the column's smallest positive value :data:`FIGURES` significant figures (0 to 3), so
    the whole column shows the same number of decimals: 6.97, 12.60, 143.00 -- never 7.85 beside 12.6."""
    found = [float(v) for v in values if _value(v) is not None and float(v) > 0 and math.isfinite(float(v))]
    if not found:
        return 1
    return min(MAX_DECIMALS, max(0, figures - 1 - math.floor(math.log10(min(found)))))


def fmt_column(values: list[object], figures: int = FIGURES) -> list[str]:
    """Every value of a column with the same decimals (:func:`column_decimals`); ``-`` where there is none."""
    digits = column_decimals(values, figures)
    return [_fmt(v, digits) for v in values]


def interval_decimals(cells: list[tuple[float, float | None, float | None]], figures: int = FIGURES) -> int:
    """Decimals for ``(value, low, high)`` cells: :func:`column_decimals`, then more while two cells whose
    intervals do not overlap would print the same value (distinguishable numbers stay distinct)."""
    digits = column_decimals([v for v, _, _ in cells], figures)
    spans = [(v, lo, hi) for v, lo, hi in cells if _value(lo) is not None and _value(hi) is not None]

    def clash(d: int) -> bool:
        shown: dict[str, list[tuple[float, float]]] = {}
        for v, lo, hi in spans:
            shown.setdefault(f"{v:.{d}f}", []).append((float(lo), float(hi)))
        return any(a_hi < b_lo or b_hi < a_lo for same in shown.values() for a_lo, a_hi in same for b_lo, b_hi in same)

    while digits < MAX_DECIMALS and clash(digits):
        digits += 1
    return digits


def interval_cell(value: float, low: object, high: object, digits: int) -> Text:
    """``value`` and its interval as printed: ``Interval("21.45", "4.56", "0.00")`` (value +4.56/-0.00, the
    interval as it is, asymmetric), ``[low, high]`` beside the value where it lies outside them, or the value."""
    low, high = _value(low), _value(high)
    text = f"{value:.{digits}f}"
    if low is None or high is None:
        return text
    plus = round(float(high), digits) - round(value, digits)
    minus = round(value, digits) - round(float(low), digits)
    if plus < 0 or minus < 0:
        return f"{text} [{float(low):.{digits}f}, {float(high):.{digits}f}]"
    return Interval(text, f"{abs(plus):.{digits}f}", f"{abs(minus):.{digits}f}")


def _row_keys(report: Report) -> pd.DataFrame:
    """One row per (model, resolution) in the table: measured ones and those that failed in a column."""
    failed = report.failures[report.failures["column"].notna()]
    m = pd.concat([report.measurements, failed], ignore_index=True) if len(failed) else report.measurements
    facts = (
        m.sort_values(["family_order", "model_order", "model", "resolution"])
        .groupby(["model", "resolution"], sort=False)
        .agg(
            name=("name", "first"),
            family=("family", "first"),
            family_label=("family_label", "first"),
            family_order=("family_order", "first"),
            params_m=("params_m", "first"),
            gmacs=("gmacs", "first"),
            published_params_m=("published_params_m", "first"),
            published_gmacs=("published_gmacs", "first"),
            top1=("top1", "first"),
            top1_source=("top1_source", "first"),
        )
        .reset_index()
    )
    return facts


def _leaves(column: Column) -> list[tuple[str, str, int]]:
    """``(header, measure, batch)`` of the table columns under one setting."""
    lb = column.latency_batch
    suffix = "" if lb == 1 else f" b={lb}"
    leaves = [(f"Latency{suffix} (ms)", "latency_ms", lb), (f"P90{suffix} (ms)", "latency_p90_ms", lb)]
    leaves += [(f"img/s b={b}", "throughput_ips", b) for b in column.batches]
    return leaves


def _lookup(report: Report) -> tuple[dict[tuple, pd.Series], dict[tuple, str]]:
    m = report.measurements
    values = {(r["column"], r["model"], r["resolution"], r["batch"]): r for _, r in m.iterrows()}
    states = {}
    for r in report.failures.itertuples(index=False):
        if r.column is not None:
            states[(r.column, r.model, r.infer_img_size, r.infer_batch_size)] = STATUS_CELLS.get(r.status, r.status)
    return values, states


def _source_footnotes(report: Report) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """Top-1 sources of the table's rows as footnotes: ``({source: mark}, [(mark, note text)])``.

    Identical sources share one footnote. Sources that differ only in their last ``; `` clause (the
    CAS-ViT cards quote each variant's paper-v2 numbers there) share one too, which lists what differs
    with the rows it belongs to: ``...; current MODEL_ZOO ... lists 78.3/78.7 (CAS-ViT-XS), 80.9/81.1 (CAS-ViT-S)``.
    """
    facts = _row_keys(report)
    names: dict[str, list[str]] = {}  # source -> names of the rows citing it, in table order
    for source, name, top1 in zip(facts["top1_source"], facts["name"], facts["top1"], strict=True):
        if isinstance(source, str) and _value(top1) is not None and name not in names.setdefault(source, []):
            names[source].append(name)
    groups: dict[tuple[bool, str], list[str]] = {}
    for source in names:
        stem = source.rsplit("; ", 1)[0]
        groups.setdefault((stem != source, stem), []).append(source)
    marks: dict[str, str] = {}
    notes: list[tuple[str, str]] = []
    for (_, stem), sources in groups.items():
        mark = str(len(notes) + 1)
        marks.update(dict.fromkeys(sources, mark))
        if len(sources) == 1:
            notes.append((mark, sources[0]))
            continue
        tails = [source[len(stem) + 2 :] for source in sources]
        same = next(
            (i for i, chars in enumerate(zip(*tails, strict=False)) if len(set(chars)) > 1), min(map(len, tails))
        )
        common = tails[0][: tails[0].rfind(" ", 0, same) + 1]  # the words all of them start with
        listed = ", ".join(
            f"{tail[len(common) :]} ({', '.join(names[s])})" for tail, s in zip(tails, sources, strict=True)
        )
        notes.append((mark, f"{stem}; {common}{listed}"))
    return marks, notes


def source_marks(report: Report) -> dict[str, str]:
    """Published top-1 source text -> its note number, in table order (one number per footnote)."""
    return _source_footnotes(report)[0]


def table_notes(report: Report) -> list[str]:
    batches = sorted({c.latency_batch for c in report.columns})
    at = "batch 1" if batches == [1] else "batch 1 (or the b shown where 1 was not measured)"
    notes = [c.footnote for c in report.columns]
    m = report.measurements
    measured = "top1_measured" in m and bool(m["top1_measured"].fillna(False).astype(bool).any())
    top1 = (
        "Top-1: ImageNet-1k accuracy, measured here where its source note says so (bench accuracy), else published."
        if measured
        else "Top-1: published ImageNet-1k accuracy, not measured here."
    )
    notes.append(headline_note())
    notes.append(INTERVAL_NOTATION)
    notes.append(
        f"P90: 90th percentile of the per-iteration latency at {at}, in ms. img/s: images per second at "
        "batch b from the step latency (b x 1000 / latency). Params (M) and GMACs (multiply-accumulates "
        "per image, 1 MAC = 2 FLOPs) as counted by the suite on the benchmarked network (published values "
        f"where none was recorded). {top1} "
        "'-': not measured; fail / parity / n/t: failed / failed the parity check / not timed."
    )
    notes.extend(f"[{mark}] Top-1 source: {text}" for mark, text in _source_footnotes(report)[1])
    notes.extend(unstable_notes(report))
    notes.extend(report.notes)
    return notes


def unstable_notes(report: Report) -> list[str]:
    """One note naming every unstable measurement shown and why (never presented as a clean number)."""
    m = report.measurements
    if "validity" not in m:
        return []
    shaky = m[m["validity"] == UNSTABLE]
    if shaky.empty:
        return []
    why = (
        f"{UNSTABLE_MARK} Unstable measurement: its timing rounds disagree, or other processes or the hypervisor "
        "took CPU time while it was timed; re-measure before citing it."
    )
    if len(shaky) > MAX_NAMED_UNSTABLE:  # a note longer than the table helps no reader: count, point to the reasons
        return [f"{why} {len(shaky)} of {len(m)} cells; each reason is in measurements.csv (validity_reason)."]
    parts = [f"{r.name} ({r.column}, b={r.batch}): {r.validity_reason}" for r in shaky.itertuples(index=False)]
    return [f"{why} {'; '.join(parts)}."]


def _leaf_cells(report: Report, facts: pd.DataFrame) -> dict[tuple[str, str, int], list[Entry]]:
    """Every measured cell of the main table, formatted: ``(column key, measure, batch) -> cells`` in row order.

    Latency cells carry their interval (one number of decimals for every latency cell of the table, so values
    compare across runtimes); p90 and img/s share decimals down each table column.
    """
    values, states = _lookup(report)
    keys = list(zip(facts["model"], facts["resolution"], strict=True))
    leaves = [(c.key, measure, batch) for c in report.columns for _, measure, batch in _leaves(c)]
    found = {leaf: [values.get((leaf[0], m, res, leaf[2])) for m, res in keys] for leaf in leaves}
    spans = [
        (float(r["_value"]), r["_low"], r["_high"])
        for (_, measure, _), rows in found.items()
        if measure == "latency_ms"
        for r in (_with_interval(r) for r in rows if r is not None)
    ]
    latency_digits = interval_decimals(spans)
    out: dict[tuple[str, str, int], list[Entry]] = {}
    for leaf, rows in found.items():
        key, measure, batch = leaf
        digits = column_decimals([r[measure] for r in rows if r is not None]) if measure != "latency_ms" else 0
        cells: list[Entry] = []
        for (model, res), r in zip(keys, rows, strict=True):
            if r is None:
                cells.append(states.get((key, model, res, batch), "-"))
                continue
            if measure == "latency_ms":
                r = _with_interval(r)
                text: Text = interval_cell(float(r["_value"]), r["_low"], r["_high"], latency_digits)
            else:
                text = _fmt(r[measure], digits)
            cells.append((text, UNSTABLE_MARK) if r.get("validity") == UNSTABLE else text)
        out[leaf] = cells
    return out


def _with_interval(row: pd.Series) -> pd.Series:
    """The row with ``_value``, ``_low``, ``_high``: its headline and interval (the pooled median alone without)."""
    headline = _value(pd.to_numeric(row.get(HEADLINE), errors="coerce"))
    if headline is None:
        extra = {"_value": row["latency_median_ms"], "_low": None, "_high": None}
    else:
        low, high = (_value(pd.to_numeric(row.get(k), errors="coerce")) for k in (CI_LOW, CI_HIGH))
        extra = {"_value": headline, "_low": low, "_high": high}
    return pd.concat([row, pd.Series(extra, dtype=object)])


def main_table(report: Report) -> PaperTable:
    """Models by family x (params, GMACs, top-1, then latency with its interval, p90 and img/s per column)."""
    facts = _row_keys(report)
    marks = source_marks(report)
    leaves = _leaf_cells(report, facts)
    header = ["Model", "Res", "Params (M)", "GMACs", "Top-1 (%)"]
    spans: list[tuple[str, int]] = [("", len(header))]
    for column in report.columns:
        own = _leaves(column)
        header += [h for h, _, _ in own]
        spans.append((column.title, len(own)))
    params, gmacs = fmt_column(list(facts["params_m"])), fmt_column(list(facts["gmacs"]))
    rows_of: dict[str, list[list[Entry]]] = {}
    for i, r in enumerate(facts.itertuples(index=False)):
        top1: Entry = "-"
        if _value(r.top1) is not None:
            text = fmt_top1(r.top1)
            top1 = (text, marks[r.top1_source]) if isinstance(r.top1_source, str) else text
        cells: list[Entry] = [r.name, str(r.resolution), params[i], gmacs[i], top1]
        for column in report.columns:
            cells += [leaves[(column.key, measure, batch)][i] for _, measure, batch in _leaves(column)]
        rows_of.setdefault(r.family_label, []).append(cells)
    return PaperTable(
        header=header,
        groups=list(rows_of.items()),
        align="lr" + "r" * (len(header) - 2),
        spans=spans,
        title="Latency and throughput per runtime (one column group per backend, device and machine)",
        notes=table_notes(report),
        label="tab:latency",
    )


def table_frame(report: Report) -> pd.DataFrame:
    """The main table with full-precision numbers, for spreadsheets (columns described in columns.csv)."""
    facts = _row_keys(report)
    values, _ = _lookup(report)
    out = facts[
        [
            "family",
            "model",
            "name",
            "resolution",
            "params_m",
            "gmacs",
            "published_params_m",
            "published_gmacs",
            "top1",
            "top1_source",
        ]
    ].copy()
    for column in report.columns:
        for _, measure, batch in _leaves(column):
            found = [values.get((column.key, m, res, batch)) for m, res in zip(facts["model"], facts["resolution"],
                                                                              strict=True)]  # fmt: skip
            if measure == "latency_ms":  # the headline and its interval, as the tables print them
                for unit, part in (("latency_ms", "_value"), ("ci_low_ms", "_low"), ("ci_high_ms", "_high")):
                    out[f"{column.title} {unit} b={batch}"] = [
                        None if r is None else _value(_with_interval(r)[part]) for r in found
                    ]
                continue
            unit = {"latency_p90_ms": "p90_ms"}.get(measure, "img_per_s")
            out[f"{column.title} {unit} b={batch}"] = [None if r is None else _value(r[measure]) for r in found]
    return out


def columns_frame(report: Report) -> pd.DataFrame:
    rows = []
    for c in report.columns:
        env = c.env
        versions = env.get("versions") if isinstance(env.get("versions"), dict) else {}
        rows.append(
            {
                "column": c.key,
                "label": c.label,
                **{name: getattr(c, name) for name in SETTING_FIELDS},  # every field that splits a column
                "runtime_version": c.runtime_version,
                "batch_sizes": " ".join(map(str, c.batches)),
                "machine": c.machine,
                "env_id": c.env_id,
                "hostname": env.get("hostname"),
                "cpu_model": env.get("cpu_model"),
                "cpu_count": env.get("cpu_count"),
                "gpu_name": env.get("gpu_name"),
                "os": env.get("os"),
                "python": env.get("python"),
                FRAMEWORK_PACKAGE: versions.get(FRAMEWORK_PACKAGE),
                "git_commit": env.get("git_commit"),
                "run_ids": " ".join(c.run_ids),
                "footnote": c.footnote,
            }
        )
    return pd.DataFrame(rows)


MEASUREMENT_COLUMNS = (
    "column",
    "column_label",
    "machine",
    "env_id",
    "run_id",
    "row_id",
    "timestamp",
    "family",
    "model",
    "name",
    "resolution",
    "batch",
    *SETTING_FIELDS,  # every field that splits a column (the schema's setting identity)
    "params_m",
    "gmacs",
    "published_params_m",
    "published_gmacs",
    "top1",
    "top1_source",
    "latency_ms",
    "latency_ci_low_ms",
    "latency_ci_high_ms",
    "latency_median_ms",
    "latency_p90_ms",
    "latency_p95_ms",
    "latency_p99_ms",
    "latency_mean_ms",
    "latency_min_ms",
    "latency_max_ms",
    "latency_std_ms",
    "latency_iqr_ms",
    "latency_cv",
    "iterations",
    "throughput_ips",
    "achieved_gflops",
    "peak_rss_mb",
    "artifact_mb",
    "rounds",
    "round_spread",
    "reference_drift",
    "busy_cpu",
    "validity",
    "validity_reason",
)


def measurements_frame(report: Report) -> pd.DataFrame:
    return report.measurements.reindex(columns=list(MEASUREMENT_COLUMNS))


# ------------------------------------------------------------------------------------ the paper table

HEADLINE, CI_LOW, CI_HIGH = "latency_ms", "latency_ci_low_ms", "latency_ci_high_ms"
"""The cited latency of a row and its 95% prediction interval (summary columns); rows without them fall back to
the pooled ``latency_median_ms``, with no interval."""


def latency_interval(rows: pd.DataFrame) -> pd.DataFrame:
    """``value``, ``low``, ``high`` (ms) of each row: the headline and its interval, else the pooled median alone."""
    nan = pd.Series(float("nan"), index=rows.index)
    headline = pd.to_numeric(rows[HEADLINE], errors="coerce") if HEADLINE in rows else nan
    has = headline.notna()
    low = pd.to_numeric(rows[CI_LOW], errors="coerce").where(has) if CI_LOW in rows else nan
    high = pd.to_numeric(rows[CI_HIGH], errors="coerce").where(has) if CI_HIGH in rows else nan
    return pd.DataFrame({"value": headline.fillna(rows["latency_median_ms"]), "low": low, "high": high})


def _short_runtime(column: Column) -> tuple[str, str]:
    """Two header lines for a runtime column: the runtime's name with what sets the column apart (``ExecuTorch
    int8``: the label's words after the device), then device and key (``CPU (A)``)."""
    device = column.device.upper()
    runtime = column.label.split(f" {device}", 1)[0].split(" (")[0]
    apart = column.label.split(f" {device}", 1)[1].strip() if f" {device}" in column.label else ""
    return f"{runtime} {apart}".strip(), f"{device} ({column.key})"


def _short_citation(citation: object) -> str:
    """``Zhang et al., CAS-ViT: ..., arXiv 2024, arXiv:2408.03703`` -> ``Zhang et al. 2024``."""
    text = str(citation or "").strip()
    if not text:
        return "unknown source"
    years = re.findall(r"\b(?:19|20)\d\d\b", text)
    who = text.split(",")[0].strip()
    return f"{who} {years[0]}" if years and years[0] not in who else who


def _distilled(family: str) -> bool | None:
    import models

    try:
        return models.get_family(family).distillation == "hard"
    except models.ModelError:
        return None  # an external family: not declared


def _paper_rows(report: Report, keys: list[str], model_names: list[str] | None) -> pd.DataFrame:
    m = report.measurements
    rows = m[m["latency_batch"] & m["column"].isin(keys)]
    if model_names is not None:
        rows = rows[rows["model"].isin(model_names)]
    if rows.empty:
        raise BenchError("the paper table has no measured row for the chosen runtimes and models")
    return rows


def paper_columns(report: Report, runtime: str | None, flag: str = "--paper-runtime") -> list[Column]:
    """The report's columns whose backend or key is ``runtime`` (all of them for None); the error names the
    ``flag`` the user gave it under (``--ratio-to`` too)."""
    if runtime is None:
        return list(report.columns)
    found = [c for c in report.columns if runtime in (c.backend, c.key)]
    if not found:
        known = ", ".join(f"{c.key} ({c.backend})" for c in report.columns)
        raise BenchError(f"{flag} {runtime!r} is not a column of this report; choose one of {known}")
    return found


def _measured_on(columns: list[Column], rows: pd.DataFrame) -> str:
    """How the latencies were measured, said once where every column shares it: machine, threads, precision, rounds."""
    said = []
    machines = {c.machine_detail.split(": ", 1)[-1] for c in columns}
    if len(machines) == 1:
        said.append(machines.pop())
    threads = {c.threads for c in columns}
    if len(threads) == 1:
        (n,) = threads
        said.append("default threads" if n is None else f"{n} thread{'s' if n != 1 else ''}")
    precisions = {c.precision for c in columns}
    if len(precisions) == 1:
        said.append(precisions.pop())
    rounds = pd.to_numeric(rows["rounds"], errors="coerce").dropna() if "rounds" in rows else pd.Series(dtype=float)
    if len(rounds):
        lo, hi = int(rounds.min()), int(rounds.max())
        said.append(f"{lo} rounds per cell" if lo == hi else f"{lo}-{hi} rounds per cell")
    return ", ".join(said)


def _params_note(facts: pd.DataFrame) -> str:
    """What the parameter counts include: the distillation head each official constructor builds, trained or not."""
    import models

    trained, untrained, none = [], [], []
    for family, label in dict(zip(facts["family"], facts["family_label"], strict=True)).items():
        names = facts.loc[facts["family"] == family, "model"]
        try:
            head = any(models.get_card(n).default_distillation for n in names)
        except models.ModelError:
            continue  # an external network: nothing declared
        (trained if head and _distilled(family) else untrained if head else none).append(label)
    if not trained and not untrained:
        return ""
    parts = []
    if trained:
        parts.append(f"trained ({', '.join(trained)})")
    if untrained:
        parts.append(f"built but never trained ({', '.join(untrained)})")
    text = "Params: as the official code builds each network, with its distillation head " + " or ".join(parts)
    return text + (f"; {', '.join(none)} ha{'s' if len(none) == 1 else 've'} none." if none else ".")


def paper_table(
    report: Report, runtime: str | None = None, model_names: list[str] | None = None, one_column: bool = False
) -> PaperTable:
    """The slim table a paper prints: model, (resolution where it varies,) params, GMACs, top-1 and its source,
    distillation, one latency per runtime with its interval as it is (asymmetric); the caption and one paragraph
    of notes say how the latency was measured and what its interval is.

    ``runtime`` (a backend name or column key) and ``model_names`` choose the columns and rows; ``one_column``
    lays it out for ``\\columnwidth`` (a ``table`` float in 7 pt type) instead of ``table*`` across the page (8 pt).
    """
    columns = paper_columns(report, runtime)
    keys = [c.key for c in columns]
    rows = _paper_rows(report, keys, model_names)
    facts = _row_keys(report)
    facts = facts[facts["model"].isin(set(rows["model"]))].reset_index(drop=True)
    interval = latency_interval(rows)
    rows = rows.assign(lat_value=interval["value"], lat_low=interval["low"], lat_high=interval["high"])
    digits = interval_decimals(list(zip(rows["lat_value"], rows["lat_low"], rows["lat_high"], strict=True)))
    found = {(r.column, r.model, r.resolution): r for r in rows.itertuples()}
    resolutions = facts["resolution"].nunique() > 1
    # A column's width has room for neither: the notes name the odd resolutions out, distillation marks the name.
    res_column, kd_column = resolutions and not one_column, not one_column

    citations = {}
    for r in facts.itertuples(index=False):
        if _value(r.top1) is not None:
            citations.setdefault(_top1_source(report, r.model), str(len(citations) + 1))
    header = ["Model", *(["Res"] if res_column else []), "Params\n(M)", "GMACs\n(fvcore)", "Top-1\n(%)"]
    header += ["KD"] if kd_column else []
    fixed = len(header)
    # one column: the caption names the runtime, the header only what the numbers are
    header += ["Latency\n(ms)"] if one_column else ["\n".join(_short_runtime(c)) for c in columns]
    deployed = _deployment_facts(rows, facts, columns) if one_column else {}
    header += list(deployed)
    params, gmacs = fmt_column(list(facts["params_m"]), 2), fmt_column(list(facts["gmacs"]), 2)  # 3.2, 0.55
    groups: dict[str, list[list[Entry]]] = {}
    any_interval = rows["lat_high"].notna().any()
    for i, r in enumerate(facts.itertuples(index=False)):
        top1: Entry = "-"
        if _value(r.top1) is not None:
            top1 = (fmt_top1(r.top1), citations[_top1_source(report, r.model)])
        distilled = _distilled(r.family)
        name: Entry = r.name if kd_column or not distilled else (r.name, KD_MARK)
        cells: list[Entry] = [name, *([str(r.resolution)] if res_column else []), params[i], gmacs[i], top1]
        cells += [{True: "✓", False: "", None: "?"}[distilled]] if kd_column else []
        cells += [_latency_entry(found.get((c.key, r.model, r.resolution)), digits) for c in columns]
        cells += [values[i] for values in deployed.values()]
        groups.setdefault(r.family_label, []).append(cells)
    unstable = any(isinstance(e, tuple) and e[1] == UNSTABLE_MARK for g in groups.values() for row in g for e in row)
    batch = sorted({c.latency_batch for c in columns})
    at = f"batch {batch[0]}" if len(batch) == 1 else "batch " + "/".join(map(str, batch))
    spans = [("", fixed), (f"Latency at {at} (ms)", len(columns))] if not one_column else []
    where = f" on {columns[0].label}" if one_column else ""
    how = _measured_on(columns, rows)
    title = (
        f"Latency{where} at {at} (ms{f'; {how}' if how else ''}) with parameters, fvcore GMACs and ImageNet-1k top-1"
    )
    any_distilled = any(_distilled(f) for f in facts["family"])
    notes = paper_notes(
        bool(any_interval), unstable, citations, _params_note(facts), res_column, kd_column, any_distilled
    )
    if resolutions and not res_column:
        notes += f" {_resolution_note(facts)}"
    notes += quantized_note(columns) + (f" {DEPLOYMENT_NOTE}" if deployed else "")
    return PaperTable(
        header=header,
        groups=list(groups.items()),
        align="l" + "r" * (fixed - 1 - kd_column) + "c" * kd_column + "r" * (len(columns) + len(deployed)),
        spans=spans,
        title=title,
        notes=[notes],
        label="tab:paper-column" if one_column else "tab:paper",
        float_env="table" if one_column else "table*",
        compact=True,
        font="scriptsize" if one_column else "footnotesize",  # 7 pt: the intervals need it in 241 pt
        colsep_pt=1.5 if one_column else 3.0,
    )


def _latency_entry(hit: Any, digits: int) -> Entry:
    """One runtime's latency in the slim table: its headline and interval, marked when unstable; - when not timed."""
    if hit is None:
        return "-"
    text = interval_cell(hit.lat_value, hit.lat_low, hit.lat_high, digits)
    return (text, UNSTABLE_MARK) if getattr(hit, "validity", None) == UNSTABLE else text


def _resolution_note(facts: pd.DataFrame) -> str:
    """'Input 224 px; MobileViTv2-1.0 at 256 px.': the most common side, then the models at another one (GMACs
    and latency are at each model's own)."""
    common = int(facts["resolution"].mode().iloc[0])
    odd = facts[facts["resolution"] != common]
    others = ", ".join(f"{r.name} at {r.resolution} px" for r in odd.itertuples(index=False))
    return f"Input {common} px; {others}."


KD_MARK = "*"
"""The one-column table's mark on a model trained with hard distillation (the wide table has a KD column)."""
DEPLOYMENT_NOTE = "Mem: peak memory its session added (load, first run)."
_DEPLOYMENT_COLUMNS = {"Mem\n(MB)": "peak_rss_mb"}
"""The one runtime's own facts beside its latency (its artifact's size, ``artifact_mb``, is in measurements.csv:
a column more does not fit 241 pt with the intervals, and at fp32 it is four bytes per parameter)."""


def _deployment_facts(rows: pd.DataFrame, facts: pd.DataFrame, columns: list[Column]) -> dict[str, list[str]]:
    """Header -> a formatted cell per model row of ``facts``: the one runtime's session memory (a deployment
    reader's next question after latency), where any row measured it."""
    if len(columns) != 1:
        return {}
    by_model = {(r["model"], r["resolution"]): r for r in rows.to_dict("records")}
    out = {}
    for header, field_name in _DEPLOYMENT_COLUMNS.items():
        keys = zip(facts["model"], facts["resolution"], strict=True)
        values = [by_model.get(key, {}).get(field_name) for key in keys]
        if any(_value(v) is not None for v in values):
            out[header] = fmt_column(values, 2)  # 9.2 MB beside 229 MB: two figures say it
    return out


def quantized_note(columns: list[Column]) -> str:
    """' (B) int8: ...': which columns run a quantized network and what it calibrated on; the top-1 beside them is
    the float network's (what quantizing costs is ``bench accuracy --precision fp32,int8``)."""
    quantized = [c for c in columns if c.calibration]
    if not quantized:
        return ""
    sets = {c.calibration for c in quantized}
    which = ", ".join(f"({c.key}) {c.precision}" for c in quantized)
    calibrated = f"calibrated on {sets.pop()}" if len(sets) == 1 else "calibration sets in columns.csv"
    return f" {which}: quantized by the runtime's own post-training tool, {calibrated}; top-1 is the float network's."


def paper_notes(any_interval: bool, unstable: bool, citations: dict[str, str], params: str = "",
                resolutions: bool = False, kd_column: bool = True, distilled: bool = True) -> str:  # fmt: skip
    """The slim table's paragraph of notes: what the latency and its interval are (:func:`headline_note`), the marks,
    what the parameter counts include, the top-1 sources."""
    parts = [headline_note() if any_interval else "Latency: the median of the timed iterations (no interval)."]
    if any_interval:
        parts.append(INTERVAL_NOTATION)
    if unstable:
        parts.append(f"{UNSTABLE_MARK}: unstable, re-measure before citing (reasons in the full table).")
    if resolutions:
        parts.append("Res: input side in pixels; GMACs and latency are at that resolution.")
    if kd_column or distilled:
        parts.append(f"{'KD ✓' if kd_column else KD_MARK}: trained with hard distillation.")
    if params:
        parts.append(params)
    sources = " ".join(f"[{mark}] {source}" for source, mark in citations.items())
    if sources:
        parts.append(f"Top-1: {sources}.")
    return " ".join(parts)


def appendix_tables(report: Report) -> list[PaperTable]:
    """The full timing tables for an appendix (``table.tex``): one one-column table per runtime column, a row per
    model with its latency and interval, p90 and img/s at every batch, in 8 pt type. The first carries the notes
    (runtimes and machine said once, the estimator, every mark); params, GMACs and top-1 are in the slim table."""
    facts = _row_keys(report)
    batches = sorted({b for c in report.columns for b in c.batches})
    leaves = _leaf_cells(report, facts)
    measured = report.measurements
    ips_digits = {b: column_decimals(measured.loc[measured["batch"] == b, "throughput_ips"]) for b in batches}
    p90_digits = column_decimals(measured.loc[measured["latency_batch"], "latency_p90_ms"])
    values, states = _lookup(report)
    tables = []
    for n, c in enumerate(report.columns):
        at = f"b={c.latency_batch}"
        header = ["Model", "Res", f"Latency\n{at} (ms)", f"P90\n{at} (ms)", *[f"img/s\nb={b}" for b in batches]]
        body: list[list[Entry]] = []
        for i, r in enumerate(facts.itertuples(index=False)):
            latency = leaves[(c.key, "latency_ms", c.latency_batch)][i]
            if latency == "-":
                continue  # not measured on this runtime
            row = values.get((c.key, r.model, r.resolution, c.latency_batch))
            cells: list[Entry] = [r.name, str(r.resolution), latency]
            cells.append("-" if row is None else _fmt(row["latency_p90_ms"], p90_digits))
            for b in batches:
                hit = values.get((c.key, r.model, r.resolution, b))
                key = (c.key, r.model, r.resolution, b)
                cells.append(_fmt(hit["throughput_ips"], ips_digits[b]) if hit is not None else states.get(key, "-"))
            body.append(cells)
        first = report.columns[0].title
        tables.append(
            PaperTable(
                header=header,
                groups=[("", body)],
                align="lrrr" + "r" * len(batches),
                title=f"Latency, 90th percentile and throughput on {c.title}",
                notes=appendix_notes(report) if n == 0 else [f"Columns, marks and machine as in the table of {first}."],
                label=f"tab:latency-{c.key}",
                float_env="table",
                compact=True,
                font="footnotesize",
                colsep_pt=1.8,
            )
        )
    return tables


MAX_NAMED_UNSTABLE = 12
"""Unstable cells the appendix notes name one by one; beyond this many they are counted."""


def appendix_notes(report: Report) -> list[str]:
    """The appendix table's notes: runtimes and machine said once, the estimator, the columns, the marks."""
    columns = report.columns
    runtimes = []
    for c in columns:
        runtime = f"({c.key}) {c.label.split(' (')[0]}"
        if c.runtime_version:
            runtime += f" {c.runtime_version}"
        options = [f"{k} {v}" for k, v in json.loads(c.backend_options or "{}").items()]
        runtimes.append(runtime + (f" ({', '.join(options)})" if options else ""))
    how = _measured_on(columns, report.measurements)
    machines = {c.machine_detail for c in columns}
    software = {c.footnote.split("; ")[-2] for c in columns if c.footnote.count("; ") >= 3}
    runs = sorted({r for c in columns for r in c.run_ids})
    setting = f"Runtimes: {'; '.join(runtimes)}; {how}" + (
        f"; machine {machines.pop()}" if len(machines) == 1 else "; machines: see columns.csv"
    )
    setting += f"; {software.pop()}" if len(software) == 1 else ""
    setting += f"; run{'s' if len(runs) > 1 else ''} {', '.join(runs)}."
    notes = [setting, headline_note(), INTERVAL_NOTATION]
    notes.append(
        "P90: 90th percentile of the per-iteration latency at the same batch. img/s: images per second at batch b "
        "from the step latency (b x 1000 / latency). '-': not measured; fail / parity / n/t: failed / failed the "
        "parity check / not timed."
    )
    m = report.measurements
    shaky = m[m["validity"] == UNSTABLE] if "validity" in m else m.iloc[0:0]
    if len(shaky) > MAX_NAMED_UNSTABLE:  # a list longer than the table would not fit the page
        notes.append(
            f"{UNSTABLE_MARK} Unstable: {len(shaky)} of {len(m)} cells (re-measure before citing; each reason is in "
            "measurements.csv, validity_reason)."
        )
    elif len(shaky):
        cells = ", ".join(f"{r.name} ({r.column}, b={r.batch})" for r in shaky.itertuples(index=False))
        notes.append(
            f"{UNSTABLE_MARK} Unstable (re-measure before citing; each reason is in measurements.csv, "
            f"validity_reason): {cells}."
        )
    notes.extend(report.notes)
    return notes


def _top1_source(report: Report, model: str) -> str:
    """Where a row's top-1 comes from, short: measured here, or the first author and year of its paper, with the
    paper's version where its card names one (CAS-ViT's v1 and v2 list different top-1 values)."""
    if _measured(report, model):
        return "measured here (bench accuracy)"
    return _short_citation(_citation(model)) + _paper_version(model)


def _paper_version(model: str) -> str:
    """`` (paper v1)`` where the card's top-1 source names the version of the paper it was read from, else ``""``."""
    from bench.core.report.reporting import _card

    card = _card(model)
    found = re.search(r"\bpaper (v\d+)\b", str(getattr(card, "top1_source", "") or ""))
    return f" (paper {found.group(1)})" if found else ""


def _citation(model: str) -> str:
    from bench.core.report.reporting import _card

    card = _card(model)
    return card.citation if card else ""


def _measured(report: Report, model: str) -> bool:
    m = report.measurements
    if "top1_measured" not in m:
        return False
    return bool(m.loc[m["model"] == model, "top1_measured"].fillna(False).astype(bool).any())


def paper_frame(report: Report) -> pd.DataFrame:
    """The slim table's numbers at full precision (``paper_table.csv``): a row per model and runtime at the latency
    batch, with the headline, its interval and validity."""
    m = report.measurements
    rows = m[m["latency_batch"]]
    interval = latency_interval(rows)
    keys = {c.key: c for c in report.columns}
    return pd.DataFrame(
        {
            "model": rows["model"],
            "name": rows["name"],
            "family": rows["family"],
            "resolution": rows["resolution"],
            "params_m": rows["params_m"],
            "gmacs": rows["gmacs"],
            "top1": rows["top1"],
            "column": rows["column"],
            "runtime": rows["column"].map(lambda k: keys[k].label),
            "batch": rows["batch"],
            "latency_ms": interval["value"],
            "latency_ci_low_ms": interval["low"],
            "latency_ci_high_ms": interval["high"],
            "validity": rows.get("validity"),
        }
    ).reset_index(drop=True)


# ------------------------------------------------------------------------------------ runtime ratios


@dataclass(frozen=True)
class _PairGrid:
    """A frame of paired cells (runtime ratios or precision speedups) laid out as a paper table's body:
    models by family, one column per report column (and batch) of the non-base cells."""

    header: list[Entry]
    spans: list[tuple[str, int]]
    groups: list[tuple[str, list[list[Entry]]]]
    bases: list[Column]
    """The columns divided by (one per precision where runtimes are compared at several)."""
    runs: str
    several: bool

    def table(self, title: str, note: str, label: str) -> PaperTable:
        """The page-wide paper table of this grid."""
        return PaperTable(
            header=self.header,
            groups=self.groups,
            align="l" + "r" * (len(self.header) - 1),
            spans=self.spans,
            title=title,
            notes=[note],
            label=label,
            float_env="table*",
            compact=True,
            font="footnotesize",
        )


Beside = tuple[str, Callable[[str, Column], Entry | None]]
"""Columns a pair table adds after its numbers, one per runtime column: (header's first line, the cell of a model
on a column, None where there is none)."""


def _pair_grid(
    report: Report, frame: pd.DataFrame, value: str, base_of: tuple[str, str], beside: Beside | None = None
) -> _PairGrid:
    """``value`` names the frame's number (``ratio``, ``speedup``; its interval is ``value_ci_low/high``);
    ``base_of`` says which row the frame divides by: (``backend`` or ``precision``, its name); ``beside`` adds a
    column per runtime column (once, after every batch) where any of its cells is known."""
    by_key = {c.key: c for c in report.columns}
    m = report.measurements
    columns = {
        (run, b, p): by_key[k]
        for run, b, p, k in zip(m["sitting"], m["backend"], m["precision"], m["column"], strict=True)
    }
    frame = frame[frame["model"].isin(set(report.measurements["model"]))]
    frame = frame.assign(
        column=[columns.get(k) for k in zip(frame["run_id"], frame["backend"], frame["precision"], strict=True)]
    )
    frame = frame[frame["column"].notna()]
    if frame.empty:
        raise BenchError(f"no {value} of the report's models and columns")
    keys = [c.key for c in report.columns if c.key in {col.key for col in frame["column"]}]
    frame = frame.assign(key=[c.key for c in frame["column"]])
    batches = sorted(int(b) for b in frame["batch"].unique())
    sittings = list(dict.fromkeys(frame["run_id"]))
    axis, name = base_of
    position = {"backend": 1, "precision": 2}[axis]
    bases = list({id(c): c for k, c in columns.items() if k[position] == name and k[0] in sittings}.values())
    numbers = list(zip(frame[value], frame[f"{value}_ci_low"], frame[f"{value}_ci_high"], strict=True))
    digits = interval_decimals(numbers, figures=2)  # 0.91, 1.07, 3.78
    facts = _row_keys(report)
    found = {(r.run_id, r.model, int(r.resolution), int(r.batch), r.key): r for r in frame.itertuples()}
    header: list[Entry] = ["Model"] + ["\n".join(_short_runtime(by_key[k])) for _ in batches for k in keys]
    spans = [("", 1)] + [(f"batch {b}" if len(batches) > 1 else "", len(keys)) for b in batches]
    extra = [] if beside is None else [k for k in keys if any(beside[1](m, by_key[k]) for m in facts["model"])]
    if extra:
        header += [f"{beside[0]}\n{_short_runtime(by_key[k])[0]}" for k in extra]
        spans.append(("", len(extra)))
    groups: list[tuple[str, list[list[Entry]]]] = []
    for run in sittings:
        for family_label, fam in facts.groupby("family_label", sort=False):
            body = []
            for r in fam.itertuples(index=False):
                cells: list[Entry] = [r.name]
                for b in batches:
                    for k in keys:
                        hit = found.get((run, r.model, int(r.resolution), b, k))
                        cells.append(
                            "-"
                            if hit is None
                            else interval_cell(
                                getattr(hit, value),
                                getattr(hit, f"{value}_ci_low"),
                                getattr(hit, f"{value}_ci_high"),
                                digits,
                            )
                        )
                if extra:
                    cells += [beside[1](r.model, by_key[k]) or "-" for k in extra]
                if any(c != "-" for c in cells[1:]):
                    body.append(cells)
            if body:
                title = f"{family_label}, run {run}" if len(sittings) > 1 else family_label
                groups.append((title, body))
    parts = m.groupby("sitting", sort=False)["run_id"].unique()  # a sitting continued by --resume spans runs
    runs = ", ".join(
        run
        + (f" (continued by --resume in {', '.join(r for r in parts[run] if r != run)})" if len(parts[run]) > 1 else "")
        for run in sittings
    )
    return _PairGrid(header, spans if len(batches) > 1 else [], groups, bases, runs, len(sittings) > 1)


def ratio_table(report: Report, frame: pd.DataFrame) -> PaperTable:
    """Runtime ratios for a paper (``ratios.md``/``.tex``): models by family, one column per runtime in the report's
    column order (and per batch), each ``ratio +a/-b`` (its interval as it is); runtimes and models by their names.

    ``frame`` is :func:`bench.core.report.ratios.ratio_frame`'s: the ratios are formed within one sitting only.
    """
    base = str(frame["ratio_to"].iloc[0])
    grid = _pair_grid(report, frame, "ratio", ("backend", base))
    base_name = " / ".join(c.title for c in grid.bases) or base  # one per precision compared
    note = (
        f"Each runtime's latency divided by that of {base_name} for the same model, batch, threads and precision, "
        f"both cells from one sitting (run{'s' if grid.several else ''} {grid.runs}); below 1: faster than "
        f"{base_name}. +a/\u2212b: the ratio's interval [ratio \u2212 b, ratio + a], each cell's rounds resampled, "
        f"nominal {HEADLINE_LEVEL:.0%}, printed as it is (asymmetric). {headline_note()}"
    )
    return grid.table(f"Latency of each runtime relative to {base_name}", note, "tab:ratios")


def speedup_table(report: Report, frame: pd.DataFrame) -> PaperTable:
    """Precision speedups for a paper (``speedup.md``/``.tex``): models by family, one column per runtime and
    precision other than the base (and per batch), each ``speedup +a/-b``.

    ``frame`` is :func:`bench.core.report.ratios.speedup_frame`'s: both cells of a speedup are from one sitting.
    """
    from bench.core.scoring.accuracy_results import measured_drops

    over = str(frame["speedup_over"].iloc[0])
    drops = measured_drops(report.inputs)

    def drop_cell(model: str, column: Column) -> Entry | None:
        found = drops.get((model, column.backend, column.precision))
        if found is None:
            return None
        return interval_cell(found.drop_pp, found.low, found.high, 1)

    grid = _pair_grid(report, frame, "speedup", ("precision", over), ("top-1 drop (pp)", drop_cell))
    measured = sorted({f"{d.images} images of {d.data}" if d.images else d.data for d in drops.values()})
    cost = (
        f" Top-1 drop: the runtime's {over} top-1 minus its top-1 in the column's precision, in points, on the same "
        f"images ({'; '.join(measured)}; bench accuracy), with the paired interval where that runtime's {over} was "
        f"the accuracy run's baseline; above 0: the quantized network is less accurate."
        if drops
        else ""
    )
    details = sorted({str(d) for d in report.measurements["calibration"].dropna() if d})
    calibration = (
        f" Quantized networks: each runtime's own post-training tool, calibrated on {'; '.join(details)}."
        if details
        else ""
    )
    note = (
        f"Each runtime's {over} latency divided by its latency in the column's precision, for the same model, batch "
        f"and threads, both cells from one sitting (run{'s' if grid.several else ''} {grid.runs}); above 1: faster "
        f"than {over}. +a/\u2212b: the interval [speedup \u2212 b, speedup + a], each cell's rounds resampled, "
        f"nominal {HEADLINE_LEVEL:.0%}, printed as it is (asymmetric). {headline_note()}{calibration}{cost}"
    )
    return grid.table(f"Speedup over {over} of each runtime's other precisions", note, "tab:speedup")
