"""The report's tables: the paper-style main table and its CSV twins, built from a :class:`Report`."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd

from bench.core.environment import FRAMEWORK_PACKAGE
from bench.core.errors import BenchError
from bench.core.formatting import Cell, PaperTable
from bench.core.reporting import STATUS_CELLS, Column, Report, _value
from bench.core.schema import SETTING_FIELDS, UNSTABLE
from bench.core.stats import headline_note, headline_text

UNSTABLE_MARK = "†"

# ------------------------------------------------------------------------------------ tables


def _fmt(value: object, digits: int) -> str:
    value = _value(value)
    return "-" if value is None else f"{float(value):.{digits}f}"


def fmt_ms(value: object) -> str:
    """Latency with three significant figures or so: 1.23, 12.3, 123."""
    value = _value(value)
    if value is None:
        return "-"
    return _fmt(value, 2 if value < 10 else 1 if value < 100 else 0)


def fmt_ips(value: object) -> str:
    value = _value(value)
    if value is None:
        return "-"
    return _fmt(value, 1 if value < 100 else 0)


def fmt_top1(value: float) -> str:
    """As published: 77.5, 78.09, 79.0 (at least one decimal, at most two)."""
    text = f"{value:.2f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


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
    parts = [f"{r.name} ({r.column}, b={r.batch}): {r.validity_reason}" for r in shaky.itertuples(index=False)]
    return [
        f"{UNSTABLE_MARK} Unstable measurement: its timing rounds disagree, or other processes or the hypervisor "
        f"took CPU time while it was timed; re-measure before citing it. {'; '.join(parts)}."
    ]


def main_table(report: Report) -> PaperTable:
    """Models by family x (params, GMACs, top-1, then median/p90 latency and img/s per column)."""
    facts = _row_keys(report)
    marks = source_marks(report)
    values, states = _lookup(report)
    header = ["Model", "Res", "Params (M)", "GMACs", "Top-1 (%)"]
    spans: list[tuple[str, int]] = [("", len(header))]
    for column in report.columns:
        leaves = _leaves(column)
        header += [h for h, _, _ in leaves]
        spans.append((column.title, len(leaves)))
    groups: list[tuple[str, list[list[Cell]]]] = []
    for (_, family_label), fam in facts.groupby(["family_order", "family_label"], sort=True):
        rows: list[list[Cell]] = []
        for r in fam.itertuples(index=False):
            top1: Cell = "-"
            if _value(r.top1) is not None:
                text = fmt_top1(r.top1)
                top1 = (text, marks[r.top1_source]) if isinstance(r.top1_source, str) else text
            cells: list[Cell] = [r.name, str(r.resolution), _fmt(r.params_m, 2), _fmt(r.gmacs, 2), top1]
            for column in report.columns:
                for _, measure, batch in _leaves(column):
                    found = values.get((column.key, r.model, r.resolution, batch))
                    if found is None:
                        cells.append(states.get((column.key, r.model, r.resolution, batch), "-"))
                    else:
                        fmt = fmt_ips if measure == "throughput_ips" else fmt_ms
                        text = headline_text(found, fmt_ms) if measure == "latency_ms" else fmt(found[measure])
                        cells.append((text, UNSTABLE_MARK) if found.get("validity") == UNSTABLE else text)
            rows.append(cells)
        groups.append((family_label, rows))
    return PaperTable(
        header=header,
        groups=groups,
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
            unit = {"latency_ms": "latency_ms", "latency_p90_ms": "p90_ms"}.get(measure, "img_per_s")
            name = f"{column.title} {unit} b={batch}"
            out[name] = [
                _value(values[(column.key, m, res, batch)][measure]) if (column.key, m, res, batch) in values else None
                for m, res in zip(facts["model"], facts["resolution"], strict=True)
            ]
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
"""The cited latency of a row and its 95% interval over rounds (summary columns); rows without them fall back to
the pooled ``latency_median_ms``, with no interval."""


def latency_interval(rows: pd.DataFrame) -> pd.DataFrame:
    """``value``, ``low``, ``high`` (ms) of each row: the headline and its interval, else the pooled median alone."""
    nan = pd.Series(float("nan"), index=rows.index)
    headline = pd.to_numeric(rows[HEADLINE], errors="coerce") if HEADLINE in rows else nan
    has = headline.notna()
    low = pd.to_numeric(rows[CI_LOW], errors="coerce").where(has) if CI_LOW in rows else nan
    high = pd.to_numeric(rows[CI_HIGH], errors="coerce").where(has) if CI_HIGH in rows else nan
    return pd.DataFrame({"value": headline.fillna(rows["latency_median_ms"]), "low": low, "high": high})


def half_width(value: float, low: object, high: object) -> float | None:
    """The larger side of the interval around ``value`` (None without one)."""
    low, high = _value(low), _value(high)
    if low is None or high is None:
        return None
    return max(float(high) - value, value - float(low), 0.0)


def supported_decimals(value: float, uncertainty: float | None) -> int:
    """Decimals the uncertainty supports: its first significant digit is the last one shown (0 to 2).

    Without an uncertainty, three significant figures (1.23, 12.3, 123).
    """
    if uncertainty is None or not math.isfinite(uncertainty) or uncertainty <= 0:
        return 2 if value < 10 else 1 if value < 100 else 0
    return min(2, max(0, -math.floor(math.log10(uncertainty))))


def column_decimals(cells: list[tuple[float, float | None]]) -> int:
    """One number of decimals for a whole column (the median cell's, rounded to fewer): consistent decimals."""
    if not cells:
        return 1
    return math.floor(float(np.median([supported_decimals(v, u) for v, u in cells])))


def fmt_interval(value: float, half: float | None, decimals: int) -> str:
    """``3.86±0.05``: the half-width rounded up (never shown smaller than it is), or the value alone."""
    text = f"{value:.{decimals}f}"
    if half is None:
        return text
    unit = 10.0**-decimals
    shown = max(unit, math.ceil(half / unit - 1e-9) * unit)
    return f"{text}±{shown:.{decimals}f}"


def _short_runtime(column: Column) -> tuple[str, str]:
    """Two header lines for a runtime column: the runtime's name, then device and key (``CPU (A)``)."""
    device = column.device.upper()
    return column.label.split(" (")[0].replace(f" {device}", ""), f"{device} ({column.key})"


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


def paper_columns(report: Report, runtime: str | None) -> list[Column]:
    """The report's columns whose backend or key is ``runtime`` (all of them for None)."""
    if runtime is None:
        return list(report.columns)
    found = [c for c in report.columns if runtime in (c.backend, c.key)]
    if not found:
        known = ", ".join(f"{c.key} ({c.backend})" for c in report.columns)
        raise BenchError(f"--paper-runtime {runtime!r} is not a column of this report; choose one of {known}")
    return found


def paper_table(
    report: Report, runtime: str | None = None, model_names: list[str] | None = None, one_column: bool = False
) -> PaperTable:
    """The slim table a paper prints: model, params, GMACs, top-1 and its source, distillation, one latency per
    runtime (with its interval); at most three lines of notes, the rest in the full (appendix) table.

    ``runtime`` (a backend name or column key) and ``model_names`` choose the columns and rows; ``one_column``
    lays it out for ``\\columnwidth`` (a ``table`` float in 7 pt type) instead of ``table*`` across the page.
    """
    columns = paper_columns(report, runtime)
    keys = [c.key for c in columns]
    rows = _paper_rows(report, keys, model_names)
    facts = _row_keys(report)
    facts = facts[facts["model"].isin(set(rows["model"]))]
    interval = latency_interval(rows)
    rows = rows.assign(lat_value=interval["value"], lat_low=interval["low"], lat_high=interval["high"])
    spreads = rows["round_spread"] if "round_spread" in rows else pd.Series(float("nan"), index=rows.index)

    def uncertainty(r, spread) -> float | None:
        half = half_width(r.lat_value, r.lat_low, r.lat_high)
        if half is None and _value(spread) is not None:  # no interval: the round medians' spread sets the digits
            half = r.lat_value * float(spread) / 2
        return half

    decimals = {}
    for key in keys:
        mine = rows[rows["column"] == key]
        cells = [(r.lat_value, uncertainty(r, s)) for r, s in zip(mine.itertuples(), spreads[mine.index], strict=True)]
        decimals[key] = column_decimals(cells)
    found = {(r.column, r.model, r.resolution): r for r in rows.itertuples()}

    citations = {}
    for r in facts.itertuples(index=False):
        if _value(r.top1) is None:
            continue
        citations.setdefault(_top1_source(report, r.model), str(len(citations) + 1))
    header = ["Model", "Params\n(M)", "GMACs\n(fvcore)", "Top-1\n(%)", "KD"]
    header += ["\n".join(_short_runtime(c)) for c in columns]
    groups: list[tuple[str, list[list[Cell]]]] = []
    any_interval = any(_value(h) is not None for h in rows["lat_high"])
    unstable = False
    for (_, family_label), fam in facts.groupby(["family_order", "family_label"], sort=True):
        body: list[list[Cell]] = []
        for r in fam.itertuples(index=False):
            top1: Cell = "-"
            if _value(r.top1) is not None:
                top1 = (f"{float(r.top1):.1f}", citations[_top1_source(report, r.model)])
            kd = {True: "✓", False: "", None: "?"}[_distilled(r.family)]
            cells: list[Cell] = [r.name, _fmt(r.params_m, 1), _fmt(r.gmacs, 2), top1, kd]
            for c in columns:
                hit = found.get((c.key, r.model, r.resolution))
                if hit is None:
                    cells.append("-")
                    continue
                half = half_width(hit.lat_value, hit.lat_low, hit.lat_high)
                text = fmt_interval(hit.lat_value, half, decimals[c.key])
                if getattr(hit, "validity", None) == UNSTABLE:
                    unstable = True
                    cells.append((text, UNSTABLE_MARK))
                else:
                    cells.append(text)
            body.append(cells)
        groups.append((family_label, body))
    batch = sorted({c.latency_batch for c in columns})
    at = f"batch {batch[0]}" if len(batch) == 1 else "batch " + "/".join(map(str, batch))
    spans = [("", 5), (f"Latency at {at} (ms)", len(columns))] if not one_column else []
    where = "" if not one_column else f" on {columns[0].label}"
    title = f"Latency{where} at {at} (ms), parameters (with distillation head), fvcore GMACs and ImageNet-1k top-1"
    return PaperTable(
        header=header,
        groups=groups,
        align="lrrrc" + "r" * len(columns),
        spans=spans,
        title=title,
        notes=[paper_notes(any_interval, unstable, citations)],
        label="tab:paper-column" if one_column else "tab:paper",
        float_env="table" if one_column else "table*",
        compact=True,
        font="scriptsize" if one_column else "footnotesize",
    )


def paper_notes(any_interval: bool, unstable: bool, citations: dict[str, str]) -> str:
    """The slim table's one paragraph of notes: what the marks mean, where the details are, the top-1 sources."""
    digits = "±: interval over rounds (larger side)" if any_interval else "digits: as the rounds' spread allows"
    flag = f"; {UNSTABLE_MARK} unstable" if unstable else ""
    sources = " ".join(f"[{mark}] {source}" for source, mark in citations.items())
    return f"{digits}{flag}; details in the full table. KD ✓: hard distillation. Top-1: {sources}."


def _top1_source(report: Report, model: str) -> str:
    """Where a row's top-1 comes from, short: measured here, or the first author and year of its paper."""
    return "measured here (bench accuracy)" if _measured(report, model) else _short_citation(_citation(model))


def _citation(model: str) -> str:
    from bench.core.reporting import _card

    card = _card(model)
    return card.citation if card else ""


def _measured(report: Report, model: str) -> bool:
    m = report.measurements
    if "top1_measured" not in m:
        return False
    return bool(m.loc[m["model"] == model, "top1_measured"].fillna(False).astype(bool).any())
