"""The result schema: every column of ``summary.csv`` and ``samples.csv``, defined, typed and documented once.

:class:`SummaryRow` is the one place a summary column exists; the writer, the loaders, ``report``,
``compare`` and ``--resume`` all take names, order and types from it. :func:`setting_identity` is the
one definition of "these rows measure the same thing".
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

SUITE_ID = "mobile-backbone-bench"
SCHEMA_VERSION = 3
"""2: rows know their weights, validity and per-round reference speed; samples know their round.
3: rows know the vendor tool they were imported from and whether they are aggregate-only, and carry
the headline ``latency_ms`` (mean of the fastest third of the round medians) and its interval."""

STATUS_OK = "ok"
STATUS_FAILED = "failed"
STATUS_PARITY_FAILED = "parity_failed"
STATUS_NOT_TIMED = "not_timed"
STATUSES = (STATUS_OK, STATUS_FAILED, STATUS_PARITY_FAILED, STATUS_NOT_TIMED)

STABLE = "stable"
UNSTABLE = "unstable"


def col(doc: str, kind: str = "float", unit: str = "") -> Any:
    """A column: ``kind`` is str, int, float, bool or json (a JSON object stored as text)."""
    return field(default=None, metadata={"doc": doc, "kind": kind, "unit": unit})


@dataclass
class SummaryRow:
    """One measured setting of one model. timm's benchmark columns come first, so the files join timm's CSVs."""

    model: str = col("model name in the zoo", "str")
    infer_img_size: int = col("input height = width", "int", "px")
    infer_batch_size: int = col("batch size actually measured (CUDA out-of-memory may lower it)", "int")
    infer_samples_per_sec: float = col("images per second at the mean step time (timm's definition)", unit="img/s")
    infer_step_time: float = col("mean latency of one batch (timm's definition)", unit="ms")
    param_count: float = col(
        "all parameters of the benchmarked network, trainable or not (buffers excluded); as bench flops counts",
        unit="M",
    )
    infer_gmacs: float = col("fvcore multiply-accumulates per image", unit="GMAC")
    family: str = col("model family id", "str")
    backend: str = col("runtime backend", "str")
    device: str = col("cpu or cuda", "str")
    precision: str = col("fp32, fp16 or bf16", "str")
    threads: int = col("intra-op threads the runtime was given", "int")
    channels_last: bool = col("NHWC memory format (torch)", "bool")
    compile: bool = col("torch.compile (torch)", "bool")
    backend_options: str = col("the backend's own options, as JSON", "json")
    weights: str = col("seed=N for seeded random weights, or the checkpoint's name@sha256 prefix", "str")
    single_head: bool = col("distillation head dropped (deployable network)", "bool")
    status: str = col(f"one of {', '.join(STATUSES)}", "str")
    error: str = col("why the row has no measurement, or a note (e.g. batch reduced)", "str")
    latency_ms: float = col(
        "the headline: mean of the fastest third of the round medians (bench.core.stats.headline)",
        unit="ms",
    )
    latency_ci_low_ms: float = col(
        "low end of the headline's interval (bootstrap over the round medians, nominal 95%)", unit="ms"
    )
    latency_ci_high_ms: float = col("high end of the headline's interval (see latency_ci_low_ms)", unit="ms")
    latency_mean_ms: float = col("mean of all timed iterations", unit="ms")
    latency_median_ms: float = col("median of all timed iterations pooled over rounds (descriptive)", unit="ms")
    latency_p90_ms: float = col("90th percentile (linear interpolation)", unit="ms")
    latency_p95_ms: float = col("95th percentile", unit="ms")
    latency_p99_ms: float = col("99th percentile", unit="ms")
    latency_min_ms: float = col("fastest iteration", unit="ms")
    latency_max_ms: float = col("slowest iteration", unit="ms")
    latency_std_ms: float = col("sample standard deviation (ddof=1)", unit="ms")
    latency_iqr_ms: float = col("interquartile range", unit="ms")
    latency_cv: float = col("std / mean")
    throughput_median_ips: float = col("images per second at the median step time", unit="img/s")
    iterations: int = col("timed iterations over all rounds", "int")
    warmup_iterations: int = col("warmup iterations over all rounds", "int")
    warmup_s: float = col("time spent warming up", unit="s")
    measure_s: float = col("time spent in timed loops", unit="s")
    prepare_s: float = col("export/conversion time (cache lookups included)", unit="s")
    load_s: float = col("time to open the prepared model", unit="s")
    first_inference_ms: float = col("the cold first inference", unit="ms")
    peak_rss_mb: float = col(
        "peak resident memory added by opening this session (load, first inference, parity) in its runtime's worker",
        unit="MB",
    )
    cuda_max_allocated_mb: float = col("peak CUDA memory allocated by torch", unit="MB")
    cuda_event_median_ms: float = col("median CUDA-event time of one batch (device side)", unit="ms")
    parity_max_abs_diff: float = col("max |logits - torch fp32 eager logits|")
    parity_cosine: float = col("smallest per-sample cosine similarity to the reference logits")
    parity_top1_agreement: float = col("share of samples whose top-1 class equals the reference's")
    parity_tolerance: str = col("the tolerance the row was checked against", "str")
    rounds: int = col("timing rounds completed", "int")
    round_medians_ms: str = col("median latency of each round, as a JSON list", "json", "ms")
    round_spread: float = col("(max - min) / median of the round medians")
    reference_ms: str = col("median of the machine-speed reference in each round, as a JSON list", "json", "ms")
    reference_drift: float = col("(max - min) / median of the reference over the row's rounds")
    busy_cpu: float = col("CPU time used by other processes during timing, in cores (Linux /proc)")
    steal: float = col("share of CPU time the hypervisor stole during timing (Linux /proc)")
    validity: str = col(f"{STABLE} or {UNSTABLE}", "str")
    validity_reason: str = col("why the row is unstable (empty when stable)", "str")
    runtime_detail: str = col("facts the backend reported (providers, cache, delegation, ...), as JSON", "json")
    source_tool: str = col("vendor tool whose output `bench import` read (empty: measured by this suite)", "str")
    aggregate_only: bool = col(
        "the tool printed only summary statistics, no per-iteration samples: the statistics it did not print "
        "stay empty and samples.csv has no lines for the row",
        "bool",
    )
    settings_key: str = col("hash of the setting and the measurement protocol (--resume)", "str")
    env_id: str = col("hash of the machine and software (environment.json)", "str")
    run_id: str = col("the run directory's name", "str")
    row_id: str = col("model|batch|resolution|settings_key: joins samples.csv", "str")
    timestamp: str = col("when the row was finished", "str")

    def set(self, **values: object) -> SummaryRow:
        """Assign columns by name; a name that is not a column is a programming error, caught here."""
        for name, value in values.items():
            if name not in COLUMN_KINDS:
                raise AttributeError(f"{name!r} is not a summary column (see bench/core/schema.py)")
            setattr(self, name, value)
        return self

    def __getitem__(self, name: str) -> object:
        return getattr(self, name)

    def as_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)


SUMMARY_COLUMNS = tuple(f.name for f in dataclasses.fields(SummaryRow))
TIMM_COLUMNS = SUMMARY_COLUMNS[:7]
"""timm's benchmark.py columns, first in every summary so the files join timm's published CSVs."""
COLUMN_KINDS = {f.name: f.metadata["kind"] for f in dataclasses.fields(SummaryRow)}
COLUMN_DOCS = {f.name: f.metadata["doc"] for f in dataclasses.fields(SummaryRow)}
REQUIRED_COLUMNS = ("model", "backend", "status", "settings_key", "env_id")
"""A summary without these is not ours; every other column may be missing (older runs) and is filled."""

SAMPLE_COLUMNS = ("run_id", "row_id", "model", "backend", "infer_batch_size", "round", "iteration", "latency_ms")
"""samples.csv: one line per timed iteration; ``round`` is the timing round (the unit of noise)."""

ROUND_COLUMNS = (
    "run_id",
    "row_id",
    "round",
    "iterations",
    "median_ms",
    "reference_ms",
    "busy_cpu",
    "steal",
    "idle_cpu",
    "warmup_iterations",
    "warmup_s",
    "measure_s",
    "timestamp",
)
"""rounds.csv: one line per finished timing round of a workload, written as the round ends (``--resume``).
``idle_cpu`` is the CPU (in cores) the sitting's other, idle runtime workers used while the round ran."""

# ---------------------------------------------------------------------------------------- identity

SETTING_FIELDS = (
    "backend",
    "device",
    "precision",
    "threads",
    "channels_last",
    "compile",
    "backend_options",
    "weights",
    "single_head",
)
"""What makes two rows measure different things (besides the model cell and the machine)."""
CELL_FIELDS = ("model", "infer_img_size", "infer_batch_size")


def setting_identity(row: Mapping[str, object], *, with_env: bool) -> tuple[str, ...]:
    """The setting a row measured, as comparable text; ``with_env`` adds the machine (``env_id``).

    ``report`` keeps one table column per identity with the environment; ``compare`` matches rows
    across runs by the identity without it (and warns when environments differ); ``--resume``
    hashes it with the cell and the measurement protocol (:func:`settings_key`).
    """
    names = (*SETTING_FIELDS, "env_id") if with_env else SETTING_FIELDS
    return tuple(_text(row.get(name)) for name in names)


def cell_identity(row: Mapping[str, object]) -> tuple[str, ...]:
    return tuple(_text(row.get(name)) for name in CELL_FIELDS)


def settings_key(row: Mapping[str, object], protocol: Mapping[str, object]) -> str:
    """Hash of setting, cell and measurement protocol (iterations, rounds): a row ``--resume`` may skip."""
    payload = [setting_identity(row, with_env=False), cell_identity(row), dict(protocol)]
    return hashlib.sha1(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _text(value: object) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# ---------------------------------------------------------------------------------------- typing

_BOOL_TRUE = ("true", "1", "1.0", "yes")
DEFAULTS: dict[str, object] = {
    "backend": "unknown",
    "device": "cpu",
    "precision": "fp32",
    "status": "",
    "channels_last": False,
    "compile": False,
    "single_head": False,
    "backend_options": "{}",
    "weights": "seed=0",  # rows written before the column existed used the default seed
    "validity": "",
    "source_tool": "",
    "aggregate_only": False,
}


def typed(df: pd.DataFrame) -> pd.DataFrame:
    """Every schema column present with its declared type (missing columns filled), extras kept.

    Unparseable numbers become missing values; callers decide what a row without its numbers means.
    """
    df = df.copy()
    for name, kind in COLUMN_KINDS.items():
        values = df[name] if name in df else pd.Series([DEFAULTS.get(name)] * len(df), index=df.index, dtype=object)
        if kind == "float":
            df[name] = pd.to_numeric(values, errors="coerce").astype(float)
        elif kind == "int":
            numbers = pd.to_numeric(values, errors="coerce")
            whole = numbers.where(numbers.isna() | (numbers == numbers.round()))
            df[name] = whole.astype("Int64")
        elif kind == "bool":
            df[name] = values.map(lambda v: str(v).strip().lower() in _BOOL_TRUE)
        else:
            default = DEFAULTS.get(name, "")
            df[name] = values.map(lambda v, d=default: d if v is None or v is pd.NA or v != v or v == "" else str(v))
    return df


HEADLINE_ORDER = ("latency_median_ms", "latency_mean_ms", "latency_min_ms")
"""The statistic a row is shown by: the median; an aggregate-only row whose tool printed no median
falls back to the mean, then the minimum (never presented as a median: see :func:`headline_statistic`)."""


def headline_statistic(row: Mapping[str, object]) -> str | None:
    """The column that holds the row's headline latency, or None when it has none."""
    allowed = HEADLINE_ORDER if _text(row.get("aggregate_only")).lower() in _BOOL_TRUE else HEADLINE_ORDER[:1]
    for name in allowed:
        if _text(row.get(name)) != "":
            return name
    return None
