"""``bench report``: paper-style tables and plots from one or more results directories.

Runs from several backends and machines are merged, but a number is only ever put beside numbers
from the same environment: every *table column* is one (machine ``env_id``, backend, device,
precision, threads, channels-last, compile) setting, footnoted with the machine and runtime it ran
on. Nothing is averaged across runs; when the same setting was measured more than once on the same
machine, the latest run is used and a note says so.

Outputs (in ``--out``): ``table.{csv,md,tex}`` (the main table), ``columns.csv`` (what each column
is), ``measurements.csv`` (the tidy data behind the tables and plots), ``report.md`` (tables and
plots together) and the plots of :mod:`bench.plots` as PNG and SVG.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from bench.errors import BenchError
from bench.formatting import PAPER_FORMATS, Cell, PaperTable, render_paper_table
from bench.results import STATUS_OK, load_results

BACKEND_LABELS = {"onnx": "ONNX Runtime", "torch": "PyTorch", "coreml": "Core ML"}
BACKEND_ORDER = ("onnx", "torch", "coreml")
RUNTIME_PACKAGE = {"onnx": "onnxruntime", "torch": "torch", "coreml": "coremltools"}
FAMILY_LABELS = {
    "casvit": "CAS-ViT",
    "mobilevitv2": "MobileViTv2",
    "swiftformer": "SwiftFormer",
    "efficientformer": "EfficientFormer",
    "efficientformerv2": "EfficientFormerV2",
}
STATUS_CELLS = {"failed": "fail", "parity_failed": "parity", "not_timed": "n/t"}

# One table column (and one plot panel) per distinct value of these; never merged across them.
SETTING = ("env_id", "backend", "device", "precision", "threads", "channels_last", "compile")
# Within a column, one measurement per model, resolution and batch size.
CELL = ("model", "infer_img_size", "infer_batch_size")

TABLE_FILES = ("table.csv", "table.md", "table.tex", "columns.csv", "measurements.csv", "report.md")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--results",
        nargs="+",
        type=Path,
        default=[Path("results")],
        metavar="PATH",
        help="results directories (a run, or a folder of runs) or summary.csv files (default: results/)",
    )
    parser.add_argument("--out", type=Path, default=Path("reports"), help="output directory (default: reports/)")
    parser.add_argument(
        "--models", default=None, help="only these models: names, family ids, 'paper' or 'all' (default: all)"
    )
    parser.add_argument(
        "--format",
        choices=(*PAPER_FORMATS, "csv"),
        default="table",
        help="how the table is printed on the terminal (files are written in every format)",
    )
    parser.add_argument("--no-plots", action="store_true", help="write the tables only")


# ------------------------------------------------------------------------------------ data model


@dataclass
class Column:
    """One table column group / plot panel: a setting on one machine."""

    key: str
    """Letter that links the column to its footnote: ``A``, ``B``, ..."""
    label: str
    backend: str
    device: str
    precision: str
    threads: int | None
    channels_last: bool
    compile: bool
    env_id: str
    env: dict[str, object]
    machine: str
    run_ids: list[str]
    batches: list[int]

    @property
    def title(self) -> str:
        return f"{self.label} ({self.key})"

    @property
    def latency_batch(self) -> int:
        """Latency is reported at batch 1, or the smallest batch measured when 1 was not."""
        return 1 if 1 in self.batches else min(self.batches)

    @property
    def runtime_version(self) -> str | None:
        versions = self.env.get("versions") or {}
        package = RUNTIME_PACKAGE.get(self.backend, self.backend)
        if isinstance(versions, dict):
            return versions.get(package) or (versions.get("onnxruntime-gpu") if self.backend == "onnx" else None)
        return None

    @property
    def machine_detail(self) -> str:
        env = self.env
        cpu = f"{env.get('cpu_model', 'unknown CPU')} ({env.get('cpu_count', '?')} logical CPUs)"
        gpu = f", GPU {env['gpu_name']}" if env.get("gpu_name") else ""
        return f"{self.machine}: {cpu}{gpu}"

    @property
    def footnote(self) -> str:
        runtime = BACKEND_LABELS.get(self.backend, self.backend)
        if self.runtime_version:
            runtime += f" {self.runtime_version}"
        extras = [self.precision, f"{self.threads} threads" if self.threads is not None else "default threads"]
        if self.channels_last:
            extras.append("channels-last")
        if self.compile:
            extras.append("torch.compile")
        env = self.env
        software = [str(env.get("os", "unknown OS")), f"Python {env.get('python', '?')}"]
        versions = env.get("versions") if isinstance(env.get("versions"), dict) else {}
        if self.backend != "torch" and versions.get("torch"):
            software.append(f"torch {versions['torch']}")
        runs = ", ".join(self.run_ids)
        commit = f", suite {env['git_commit']}" if env.get("git_commit") else ""
        return (
            f"({self.key}) {runtime} on {self.device.upper()}, {', '.join(extras)}; machine "
            f"{self.machine_detail}; {', '.join(software)}; env {self.env_id}, run {runs}{commit}."
        )


@dataclass
class Report:
    measurements: pd.DataFrame
    """One row per (column, model, resolution, batch) that was measured: the latest ok run."""
    failures: pd.DataFrame
    """Settings with no ok measurement: the latest failed / not-timed row of each."""
    samples: pd.DataFrame
    """Per-iteration latencies of the chosen rows (``column``, ``model``, ``latency_ms`` ...)."""
    columns: list[Column]
    inputs: list[str]
    notes: list[str] = field(default_factory=list)


def _card(name: str):
    import models  # torch comes with it: only imported once a report is actually built

    try:
        return models.get_card(name)
    except models.ModelError:  # a model measured by an older version of the suite
        return None


def normalize_summary(df: pd.DataFrame) -> pd.DataFrame:
    """Summary rows with uniform types (the CSV leaves blanks and mixed types), oldest first."""
    df = df.copy()
    for column, default in (("backend", "unknown"), ("device", "cpu"), ("precision", "fp32"), ("status", "")):
        df[column] = df[column].fillna(default).astype(str) if column in df else default
    for column in ("channels_last", "compile"):
        values = df[column] if column in df else pd.Series(False, index=df.index)
        df[column] = values.map(lambda v: str(v).strip().lower() in ("true", "1", "1.0", "yes"))
    for column in ("threads", "infer_img_size", "infer_batch_size"):
        df[column] = pd.to_numeric(df.get(column), errors="coerce").astype("Int64")
    for column in ("env_id", "run_id", "row_id", "model", "settings_key"):
        df[column] = df[column].astype(str) if column in df else ""
    df["timestamp"] = df["timestamp"].fillna("").astype(str) if "timestamp" in df else ""
    numeric = [c for c in df.columns if c.startswith(("latency_", "throughput_", "infer_", "param", "parity_"))]
    for column in numeric:
        if column not in ("infer_img_size", "infer_batch_size"):
            df[column] = pd.to_numeric(df[column], errors="coerce")
    df["_order"] = range(len(df))
    return df.sort_values(["timestamp", "run_id", "_order"])


def normalize_samples(samples: pd.DataFrame) -> pd.DataFrame:
    """``run_id, row_id, iteration, latency_ms`` with string ids (they join the summary's)."""
    s = samples.copy()
    for c in ("run_id", "row_id"):
        s[c] = s[c].astype(str)
    s["latency_ms"] = pd.to_numeric(s["latency_ms"], errors="coerce")
    if "iteration" not in s:
        s["iteration"] = range(len(s))
    return s.dropna(subset=["latency_ms"])[["run_id", "row_id", "iteration", "latency_ms"]]


def _model_info(names: Iterable[str], summary: pd.DataFrame) -> pd.DataFrame:
    """Family, display name, paper order and published numbers of every measured model."""
    import models

    try:
        family_order = {f: i for i, f in enumerate(models.list_families())}
        model_order = {m: i for i, m in enumerate(models.list_models())}
    except models.ModelError:
        family_order, model_order = {}, {}
    rows = []
    for name in names:
        card = _card(name)
        measured_family = summary.loc[summary["model"] == name, "family"].dropna() if "family" in summary else []
        family = card.family if card else (str(measured_family.iloc[0]) if len(measured_family) else "other")
        family_label = FAMILY_LABELS.get(family, family)
        rows.append(
            {
                "model": name,
                "name": f"{family_label}-{card.variant}" if card else name,
                "family": family,
                "family_label": family_label,
                "family_order": family_order.get(family, len(family_order)),
                "model_order": model_order.get(name, len(model_order)),
                "default_resolution": card.default_resolution if card else None,
                "published_params_m": card.published_params_m if card else None,
                "published_gmacs": card.published_gmacs if card else None,
                "top1": card.top1 if card else None,
                "top1_source": card.top1_source if card and card.top1 is not None else None,
            }
        )
    return pd.DataFrame(rows)


def _machines(env_ids: Sequence[str], environments: dict[str, dict[str, object]]) -> dict[str, str]:
    """Short machine names: the hostname, with the env id where one host has several environments."""
    hosts = {e: str(environments.get(e, {}).get("hostname") or e[:8]) for e in env_ids}
    counts = pd.Series(list(hosts.values())).value_counts()
    return {e: (h if counts[h] == 1 else f"{h} [{e[:6]}]") for e, h in hosts.items()}


def _value(v: object) -> object:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA else v


def build_report(
    summary: pd.DataFrame,
    samples: pd.DataFrame,
    environments: dict[str, dict[str, object]],
    model_names: Sequence[str] | None = None,
    inputs: Sequence[str] = (),
) -> Report:
    """Choose one measurement per setting and cell, and describe every column (see module doc)."""
    df = normalize_summary(summary)
    if model_names is not None:
        df = df[df["model"].isin(model_names)]
    if df.empty:
        raise BenchError("no results for the selected models")
    notes: list[str] = []
    key = [*SETTING, *CELL]
    ok = df[(df["status"] == STATUS_OK) & df["latency_median_ms"].notna()]
    chosen = ok.groupby(key, dropna=False, sort=False).tail(1)

    repeated = ok.groupby(key, dropna=False, sort=False)["run_id"].agg(list)
    repeated = repeated[repeated.map(len) > 1]
    hidden = ok.groupby(key, dropna=False, sort=False)["settings_key"].nunique()
    hidden = int((hidden > 1).sum())
    if len(repeated):
        examples = []
        for idx, runs in list(repeated.items())[:4]:
            parts = dict(zip(key, idx, strict=True))
            examples.append(
                f"{parts['model']} {parts['backend']}/{parts['device']} b={parts['infer_batch_size']}: "
                f"{runs[-1]} (over {', '.join(runs[:-1])})"
            )
        more = f"; and {len(repeated) - 4} more" if len(repeated) > 4 else ""
        notes.append(
            f"{len(repeated)} setting(s) were measured more than once on the same machine; the latest run is "
            f"used, never an average: {'; '.join(examples)}{more}."
        )
    if hidden:
        notes.append(
            f"{hidden} of them differ in settings that are not table columns (e.g. exporter, graph optimization, "
            "compute units or iteration counts); report such runs with separate --results to see both."
        )

    failed = df[df["status"] != STATUS_OK]
    if len(chosen):
        done = pd.MultiIndex.from_frame(chosen[key].astype(str))
        failed = failed[~pd.MultiIndex.from_frame(failed[key].astype(str)).isin(done)]
    failures = failed.groupby(key, dropna=False, sort=False).tail(1)
    if chosen.empty:
        states = ", ".join(sorted(failures["status"].unique()))
        raise BenchError(f"no successful measurement in the results (status: {states})")

    # ---- columns
    settings = chosen[list(SETTING)].drop_duplicates()
    settings = settings.assign(
        _backend=settings["backend"].map(lambda b: BACKEND_ORDER.index(b) if b in BACKEND_ORDER else 99),
        _env=settings["env_id"].map({e: i for i, e in enumerate(dict.fromkeys(chosen["env_id"]))}),
    ).sort_values(["_backend", "backend", "device", "_env", "precision", "threads", "channels_last", "compile"])
    machines = _machines(list(dict.fromkeys(settings["env_id"])), environments)
    varying = {
        a
        for a in ("precision", "threads", "channels_last", "compile", "env_id")
        if settings[a].nunique(dropna=False) > 1
    }
    columns: list[Column] = []
    for i, s in enumerate(settings.itertuples(index=False)):
        parts = [BACKEND_LABELS.get(s.backend, s.backend), s.device.upper()]
        if "precision" in varying or s.precision != "fp32":
            parts.append(s.precision)
        if "threads" in varying and not pd.isna(s.threads):
            parts.append(f"{s.threads}T")
        if "channels_last" in varying and s.channels_last:
            parts.append("CL")
        if "compile" in varying and s.compile:
            parts.append("compiled")
        if "env_id" in varying:
            parts.append(f"@ {machines[s.env_id]}")
        mask = pd.Series(True, index=chosen.index)
        for a in SETTING:
            value = getattr(s, a)
            mask &= chosen[a].isna() if pd.isna(value) else chosen[a] == value
        rows = chosen[mask]
        columns.append(
            Column(
                key=_letters(i),
                label=" ".join(parts),
                backend=s.backend,
                device=s.device,
                precision=s.precision,
                threads=None if pd.isna(s.threads) else int(s.threads),
                channels_last=bool(s.channels_last),
                compile=bool(s.compile),
                env_id=s.env_id,
                env=dict(environments.get(s.env_id, {})),
                machine=machines[s.env_id],
                run_ids=list(dict.fromkeys(rows["run_id"])),
                batches=sorted(int(b) for b in rows["infer_batch_size"].dropna().unique()),
            )
        )
        chosen.loc[mask, "column"] = columns[-1].key
    if len(machines) > 1:
        notes.append(
            f"Results come from {len(machines)} machines/software environments; each column is from one "
            "of them (see its footnote) and numbers are never combined across them."
        )
    by_key = {c.key: c for c in columns}

    # ---- model facts and derived numbers
    failures = failures.assign(column=[_column_for(r, columns) for r in failures.itertuples(index=False)])
    info = _model_info(list(dict.fromkeys([*chosen["model"], *failures["model"]])), df)
    m = _with_model_facts(chosen, info)
    m["column_label"] = m["column"].map(lambda k: by_key[k].label)
    m["machine"] = m["column"].map(lambda k: by_key[k].machine)
    m["throughput_ips"] = m["batch"] * 1000.0 / m["latency_median_ms"]
    m["achieved_gflops"] = 2.0 * m["gmacs"] * m["throughput_ips"]  # 1 MAC = 2 FLOPs
    m["latency_batch"] = m["column"].map(lambda k: by_key[k].latency_batch) == m["batch"]
    m = m.sort_values(["column", "family_order", "model_order", "model", "resolution", "batch"]).reset_index(drop=True)

    # ---- samples of the rows at each column's latency batch (for the distribution plot)
    picked = m[m["latency_batch"]][["run_id", "row_id", "column", "model", "name", "family", "family_order"]]
    s = normalize_samples(samples).merge(picked, on=["run_id", "row_id"], how="inner")

    if len(failures):
        lines = []
        for r in failures.head(6).itertuples(index=False):
            err = f": {r.error}" if isinstance(r.error, str) and r.error else ""
            lines.append(f"{r.model} {r.backend}/{r.device} b={r.infer_batch_size} {r.status}{err}")
        more = f"; and {len(failures) - 6} more" if len(failures) > 6 else ""
        notes.append(f"Not measured ({len(failures)}): {'; '.join(lines)}{more}.")
    return Report(
        measurements=m,
        failures=_with_model_facts(failures, info),
        samples=s,
        columns=columns,
        inputs=list(inputs),
        notes=notes,
    )


def _with_model_facts(rows: pd.DataFrame, info: pd.DataFrame) -> pd.DataFrame:
    """Add the model's card facts; params/GMACs as measured, else published (GMACs only at its resolution)."""
    m = rows.drop(columns=[c for c in info.columns if c != "model" and c in rows]).merge(info, on="model", how="left")
    m["batch"] = m["infer_batch_size"].astype(int)
    m["resolution"] = m["infer_img_size"].astype("Int64")
    m["params_m"] = m["param_count"] if "param_count" in m else float("nan")
    m["gmacs"] = m["infer_gmacs"] if "infer_gmacs" in m else float("nan")
    at_default = m["resolution"] == m["default_resolution"]
    m["params_m"] = m["params_m"].fillna(m["published_params_m"])
    m["gmacs"] = m["gmacs"].fillna(m["published_gmacs"].where(at_default))
    return m


def _column_for(row, columns: list[Column]) -> str | None:
    threads = None if pd.isna(row.threads) else int(row.threads)
    setting = (row.env_id, row.backend, row.device, row.precision, threads, row.channels_last, row.compile)
    for c in columns:
        if setting == (c.env_id, c.backend, c.device, c.precision, c.threads, c.channels_last, c.compile):
            return c.key
    return None


def _letters(i: int) -> str:
    out = ""
    i += 1
    while i:
        i, r = divmod(i - 1, 26)
        out = chr(65 + r) + out
    return out


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
    leaves = [(f"Median{suffix} (ms)", "latency_median_ms", lb), (f"P90{suffix} (ms)", "latency_p90_ms", lb)]
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


def source_marks(report: Report) -> dict[str, str]:
    """Published top-1 source text -> its note number, in table order."""
    marks: dict[str, str] = {}
    for source in _row_keys(report)["top1_source"]:
        if isinstance(source, str) and source not in marks:
            marks[source] = str(len(marks) + 1)
    return marks


def table_notes(report: Report) -> list[str]:
    batches = sorted({c.latency_batch for c in report.columns})
    at = "batch 1" if batches == [1] else "batch 1 (or the b shown where 1 was not measured)"
    notes = [c.footnote for c in report.columns]
    notes.append(
        f"Median / P90: percentiles of the per-iteration latency at {at}, in ms. img/s: images per second at "
        "batch b from the median step time (b x 1000 / median). Params (M) and GMACs (multiply-accumulates "
        "per image, 1 MAC = 2 FLOPs) as counted by the suite on the benchmarked network (published values "
        "where none was recorded). Top-1: published ImageNet-1k accuracy, not measured here. "
        "'-': not measured; fail / parity / n/t: failed / failed the parity check / not timed."
    )
    notes.extend(f"[{mark}] Top-1 source: {source}" for source, mark in source_marks(report).items())
    notes.extend(report.notes)
    return notes


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
                        cells.append(fmt(found[measure]))
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
            unit = {"latency_median_ms": "median_ms", "latency_p90_ms": "p90_ms"}.get(measure, "img_per_s")
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
                "backend": c.backend,
                "runtime_version": c.runtime_version,
                "device": c.device,
                "precision": c.precision,
                "threads": c.threads,
                "channels_last": c.channels_last,
                "compile": c.compile,
                "batch_sizes": " ".join(map(str, c.batches)),
                "machine": c.machine,
                "env_id": c.env_id,
                "hostname": env.get("hostname"),
                "cpu_model": env.get("cpu_model"),
                "cpu_count": env.get("cpu_count"),
                "gpu_name": env.get("gpu_name"),
                "os": env.get("os"),
                "python": env.get("python"),
                "torch": versions.get("torch"),
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
    "backend",
    "device",
    "precision",
    "threads",
    "channels_last",
    "compile",
    "params_m",
    "gmacs",
    "published_params_m",
    "published_gmacs",
    "top1",
    "top1_source",
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
)


def measurements_frame(report: Report) -> pd.DataFrame:
    return report.measurements.reindex(columns=list(MEASUREMENT_COLUMNS))


# ------------------------------------------------------------------------------------ writing


def _write(path: Path, text: str) -> Path:
    try:
        path.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
    except OSError as exc:
        raise BenchError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path


def _report_markdown(report: Report, table_md: str, plot_paths: list[Path], plot_notes: list[str]) -> str:
    runs = sorted({r for c in report.columns for r in c.run_ids})
    lines = [
        "# Benchmark report",
        "",
        f"Made by `python -m bench report` from {', '.join(f'`{p}`' for p in report.inputs) or 'results'} "
        f"({len(runs)} run(s): {', '.join(runs)}).",
        "",
        table_md,
        "",
    ]
    pngs = [p for p in plot_paths if p.suffix == ".png"]
    if pngs or plot_notes:
        lines += ["## Plots", ""]
    for p in pngs:
        lines += [f"![{p.stem.replace('_', ' ')}]({p.name})", ""]
    lines.extend(f"- {n}" for n in plot_notes)
    return "\n".join(lines)


def write_files(report: Report, out_dir: Path, plots: bool = True) -> tuple[list[Path], list[str]]:
    """Write every table and plot of ``report`` into ``out_dir``; returns (paths, notes on skipped plots)."""
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BenchError(f"cannot create {out_dir}: {exc.strerror or exc}") from None
    table = main_table(report)
    table_md = render_paper_table(table, "markdown")
    paths = [
        _write(out_dir / "table.csv", table_frame(report).to_csv(index=False)),
        _write(out_dir / "table.md", table_md),
        _write(out_dir / "table.tex", render_paper_table(table, "latex")),
        _write(out_dir / "columns.csv", columns_frame(report).to_csv(index=False)),
        _write(out_dir / "measurements.csv", measurements_frame(report).to_csv(index=False)),
    ]
    plot_paths: list[Path] = []
    plot_notes: list[str] = []
    if plots:
        from bench import plots as plotting  # matplotlib is slow to import; only when plotting

        panels = [plotting.Panel(c.key, c.title, c.machine_detail) for c in report.columns]
        plot_paths, plot_notes = plotting.write_plots(report.measurements, report.samples, panels, out_dir)
    paths += plot_paths
    paths.append(_write(out_dir / "report.md", _report_markdown(report, table_md, plot_paths, plot_notes)))
    return paths, plot_notes


def load_report(result_paths: Sequence[Path | str], model_spec: str | None = None) -> Report:
    paths = [Path(p) for p in result_paths]
    summary, samples, environments = load_results(paths)
    names = None
    if model_spec:
        from bench.selection import select_models

        names = select_models(model_spec)
    return build_report(summary, samples, environments, names, inputs=[str(p) for p in paths])


def write_report(
    result_paths: Sequence[Path | str], out_dir: Path | str, models: str | None = None, plots: bool = True
) -> list[Path]:
    """Tables and plots for the runs in ``result_paths``, written to ``out_dir`` (for ``bench run --report``)."""
    report = load_report(result_paths, models)
    paths, _ = write_files(report, Path(out_dir), plots=plots)
    return paths


def main(args: argparse.Namespace) -> int:
    report = load_report(args.results, args.models)
    paths, plot_notes = write_files(report, args.out, plots=not args.no_plots)
    if args.format == "csv":
        print(table_frame(report).to_csv(index=False), end="")
    else:
        print(render_paper_table(main_table(report), args.format))
    print()
    for note in plot_notes:
        print(f"note: {note}")
    print(f"wrote {len(paths)} files to {args.out}/: {', '.join(p.name for p in paths)}")
    return 0
