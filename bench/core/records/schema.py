"""The result schema: every record the suite writes and reads back, declared, typed and documented once.

- :class:`SummaryRow`: one line of ``summary.csv`` (the one place a summary column exists);
- :class:`RoundRecord`: one line of ``rounds.csv`` (a finished timing round, what ``--resume`` continues from);
- :class:`Sample`: one line of ``samples.csv`` (one timed iteration);
- :data:`ENVIRONMENT_FIELDS`: ``environment.json`` (the machine and software of a run);
- :class:`ManifestEntry`: one artifact in ``bench export``'s ``manifest.json``;
- :class:`CompareResult`: one row of ``bench compare``'s output (:data:`COMPARE_COLUMNS`);
- :class:`AccuracyDocument` / :class:`AccuracyResult`: ``bench accuracy``'s ``accuracy.json`` (and
  :data:`PER_CLASS_COLUMNS`, its ``per_class.csv``).

Each field carries its documentation, its kind, its unit and its constraints (``low``: the smallest
value; ``identity``: a row whose value does not parse is left out, not guessed; ``json``: the shape
of a JSON value) beside it, and :func:`field_problem` is the one check of a value against them.
:data:`SCHEMA_VERSION` versions the run files, :data:`MANIFEST_VERSION` the manifest,
:data:`ACCURACY_FORMAT` the accuracy document. The writer, the
loaders, ``report``, ``compare`` and ``--resume`` take names, order, types and constraints from here.
:func:`setting_identity` is the one definition of "these rows measure the same thing": its fields
are the summary columns declared with ``role="setting"``, so no table can leave one out.
"""

from __future__ import annotations

import dataclasses
import json as _json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from bench.core.util import json_digest

SUITE_ID = "mobile-backbone-bench"
SCHEMA_VERSION = 5
"""2: rows know their weights, validity and per-round reference speed; samples know their round.
3: rows know the vendor tool they were imported from and whether they are aggregate-only, and carry
the headline ``latency_ms`` (:func:`bench.core.measure.stats.headline`) and its interval.
4: rows record what an int8 network was calibrated on (``calibration``).
5: rows record the size of the artifact their runtime loaded (``artifact_mb``; older ExecuTorch and LiteRT rows
get it from ``runtime_detail`` when read)."""

STATUS_OK = "ok"
STATUS_FAILED = "failed"
STATUS_PARITY_FAILED = "parity_failed"
STATUS_NOT_TIMED = "not_timed"
STATUSES = (STATUS_OK, STATUS_FAILED, STATUS_PARITY_FAILED, STATUS_NOT_TIMED)

MIN_LATENCY_MS = 1e-6
"""A nanosecond: no runtime times a network faster, so a smaller latency (0 included) is a broken value."""
MAX_LATENCY_MS = 1e7
"""About 2.8 hours per inference: anything longer is a unit or typing error (1e308 s, ...)."""

STABLE = "stable"
UNSTABLE = "unstable"


def col(
    doc: str,
    kind: str = "float",
    unit: str = "",
    *,
    low: float | None = None,
    high: float | None = None,
    positive: bool = False,
    identity: bool = False,
    checked: bool = False,
    json: str | None = None,
    role: str | None = None,
    runtime_own: bool = False,
    default: Any = None,
    factory: Any = None,
) -> Any:
    """A field: ``kind`` is str, int, float, bool or json (JSON stored as text, ``json`` saying its shape:
    ``object``, ``list`` of positive numbers (of plausible latencies when ``unit`` is ms) or ``indices``:
    whole numbers from 0). ``low`` is the smallest allowed value (ints default to 0), ``high`` the largest
    (latencies: :data:`MIN_LATENCY_MS` to :data:`MAX_LATENCY_MS`, so no absurd value reaches a table or a
    plot); ``positive``: above zero; ``identity``: the field says *what* was measured, so a record whose
    value is missing or does not parse is left out; ``checked``: a value that is there must be valid, or
    the record is left out; ``role``: ``setting`` or ``cell`` for the fields
    of :func:`setting_identity` / :func:`cell_identity`; ``runtime_own``: a setting of one runtime (two runtimes
    timing the same cell may differ in it: :data:`SHARED_SETTING_FIELDS`); ``default`` (or a ``factory`` of it)
    what a record lacking the field holds."""
    if kind == "int" and low is None:
        low = 0
    meta = {
        "doc": doc,
        "kind": kind,
        "unit": unit,
        "low": low,
        "high": high,
        "positive": positive,
        "identity": identity,
        "checked": checked,
        "json": json,
        "role": role,
        "runtime_own": runtime_own,
    }
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def latency_col(doc: str, **kw: Any) -> Any:
    """A latency field: milliseconds, from :data:`MIN_LATENCY_MS` to :data:`MAX_LATENCY_MS` (see :func:`col`)."""
    return col(doc, unit="ms", low=MIN_LATENCY_MS, high=MAX_LATENCY_MS, **kw)


def field_problem(spec: dataclasses.Field, text: object) -> str | None:
    """Why ``text`` (as read from a CSV file, or a value from a JSON document) is not a value of the field
    ``spec`` (None when it is)."""
    kind, low = spec.metadata["kind"], spec.metadata["low"]
    if kind == "json" and not isinstance(text, str):  # already parsed (a JSON document's value)
        return _json_problem(spec, text)
    text = str(text)
    if kind in ("int", "float"):
        value = finite_number(text)
        if value is None:
            return "not a finite number" if kind == "float" else "not a whole number"
        if kind == "int" and (not value.is_integer() or abs(value) >= 2**53):
            return "not a whole number"
        high = spec.metadata["high"]
        if high is not None and not (low or 0) <= value <= high:
            unit = f" {spec.metadata['unit']}" if spec.metadata["unit"] else ""
            return f"not a plausible value ({low or 0:g} to {high:g}{unit})"
        if (low is not None and value < low) or (spec.metadata["positive"] and value <= 0):
            return "not positive" if spec.metadata["positive"] or (low or 0) > 0 else "negative"
    elif kind == "bool":
        if text.strip().lower() not in _BOOL_TEXT:
            return "not true or false"
    elif kind == "json":
        try:
            value = _json.loads(text)
        except ValueError:
            return "not JSON"
        except RecursionError:
            return "JSON nested too deeply"
        return _json_problem(spec, value)
    return None


def _json_problem(spec: dataclasses.Field, value: object) -> str | None:
    if spec.metadata["json"] == "object" and not isinstance(value, dict):
        return "not a JSON object"
    if spec.metadata["json"] == "list":
        numbers = isinstance(value, list) and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
        if not (numbers and all(math.isfinite(v) and v > 0 for v in value)):
            return "not a list of positive numbers"
        if spec.metadata["unit"] == "ms" and not all(MIN_LATENCY_MS <= v <= MAX_LATENCY_MS for v in value):
            return f"not a list of plausible latencies ({MIN_LATENCY_MS:g} to {MAX_LATENCY_MS:g} ms)"
    if spec.metadata["json"] == "indices" and not (
        isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)
    ):
        return "not a list of indices (whole numbers from 0)"
    return None


def finite_number(value: object) -> float | None:
    """``value`` as a finite float, or None (text, NaN, infinity or anything else that is not a number)."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


_BOOL_TEXT = ("true", "false", "1", "0", "1.0", "0.0", "yes", "no")


@dataclass
class SummaryRow:
    """One measured setting of one model. timm's benchmark columns come first, so the files join timm's CSVs."""

    model: str = col("model name in the zoo", "str", role="cell")
    infer_img_size: int = col("input height = width", "int", "px", low=1, identity=True, role="cell")
    infer_batch_size: int = col(
        "batch size actually measured (CUDA out-of-memory may lower it)", "int", low=1, identity=True, role="cell"
    )
    infer_samples_per_sec: float = col(
        "images per second at the mean step time (timm's definition)", unit="img/s", low=0
    )
    infer_step_time: float = latency_col("mean latency of one batch (timm's definition)")
    param_count: float = col(
        "all parameters of the benchmarked network, trainable or not (buffers excluded); as bench flops counts",
        unit="M",
        low=0,
    )
    infer_gmacs: float = col("fvcore multiply-accumulates per image", unit="GMAC", low=0)
    family: str = col("model family id", "str")
    backend: str = col("runtime backend", "str", role="setting", runtime_own=True)
    device: str = col(
        "the kind of processor: cpu or cuda (bench run); cpu, gpu or npu (imported: the unit the tool used)",
        "str",
        role="setting",
    )
    precision: str = col("fp32, fp16, bf16, or int8 (the runtime's own post-training quantizer)", "str", role="setting")
    calibration: str = col(
        "what an int8 network's activation ranges were calibrated on (empty for float precisions)", "str",
        role="setting", runtime_own=True,
    )  # fmt: skip
    threads: int = col("intra-op threads the runtime was given", "int", low=1, identity=True, role="setting")
    channels_last: bool = col("NHWC memory format (torch)", "bool", identity=True, role="setting", runtime_own=True)
    compile: bool = col("torch.compile (torch)", "bool", identity=True, role="setting", runtime_own=True)
    backend_options: str = col(
        "the backend's own options, as JSON", "json", json="object", identity=True, role="setting", runtime_own=True
    )
    weights: str = col(
        "seed=N for seeded random weights, or the checkpoint's name@sha256 prefix", "str", role="setting"
    )
    single_head: bool = col("distillation head dropped (deployable network)", "bool", identity=True, role="setting")
    status: str = col(f"one of {', '.join(STATUSES)}", "str")
    error: str = col("why the row has no measurement, or a note (e.g. batch reduced)", "str")
    latency_ms: float = latency_col(
        "the headline: mean of the fastest half of the clean round medians (bench.core.measure.stats.headline)"
    )
    latency_ci_low_ms: float = latency_col(
        "low end of the headline's 95% prediction interval for another sitting (bench.core.measure.stats.headline)"
    )
    latency_ci_high_ms: float = latency_col("high end of the headline's interval (see latency_ci_low_ms)")
    latency_mean_ms: float = latency_col("mean of all timed iterations")
    latency_median_ms: float = latency_col("median of all timed iterations pooled over rounds (descriptive)")
    latency_p90_ms: float = latency_col("90th percentile (linear interpolation)")
    latency_p95_ms: float = latency_col("95th percentile")
    latency_p99_ms: float = latency_col("99th percentile")
    latency_min_ms: float = latency_col("fastest iteration")
    latency_max_ms: float = latency_col("slowest iteration")
    latency_std_ms: float = col("sample standard deviation (ddof=1)", unit="ms", low=0, high=MAX_LATENCY_MS)
    latency_iqr_ms: float = col("interquartile range", unit="ms", low=0, high=MAX_LATENCY_MS)
    latency_cv: float = col("std / mean", low=0)
    throughput_median_ips: float = col("images per second at the median step time", unit="img/s", low=0)
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
    artifact_mb: float = col(
        "size on disk of the artifact the runtime loaded (.onnx, OpenVINO IR folder, .pte, .tflite, .mlpackage); "
        "empty for eager PyTorch",
        unit="MB",
        low=0,
    )
    cuda_max_allocated_mb: float = col("peak CUDA memory allocated by torch", unit="MB")
    cuda_event_median_ms: float = latency_col("median CUDA-event time of one batch (device side)")
    parity_max_abs_diff: float = col("max |logits - torch fp32 eager logits|")
    parity_cosine: float = col("smallest per-sample cosine similarity to the eager logits (PyTorch fp32)")
    parity_top1_agreement: float = col("share of samples whose top-1 class is the eager logits' top-1")
    parity_tolerance: str = col("the tolerance the row was checked against", "str")
    rounds: int = col("timing rounds completed", "int")
    round_medians_ms: str = col("median latency of each round, as a JSON list", "json", "ms", json="list")
    round_spread: float = col("(max - min) / median of the round medians")
    reference_ms: str = col(
        "median of the machine-speed reference in each round, as a JSON list", "json", "ms", json="list"
    )
    reference_drift: float = col("(max - min) / median of the reference over the row's rounds")
    round_processes: str = col(
        "which of the runtime's worker processes timed each round (0, 1, ...), as a JSON list", "json", json="indices"
    )
    clean_rounds: int = col("rounds timed while the machine ran at its calm speed (bench.core.measure.machine)", "int")
    machine_floor_ms: float = col("the machine-speed reference at the machine's calm speed", unit="ms", low=0)
    busy_cpu: float = col("CPU time used by other processes during timing, in cores (Linux /proc)")
    steal: float = col("share of CPU time the hypervisor stole during timing (Linux /proc)")
    validity: str = col(f"{STABLE} or {UNSTABLE}", "str")
    validity_reason: str = col("why the row is unstable (empty when stable)", "str")
    runtime_detail: str = col(
        "facts the backend reported (providers, cache, delegation, ...), as JSON", "json", json="object"
    )
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
    timestamp: str = col("when the row was finished, local ISO 8601 with UTC offset", "str")

    def set(self, **values: object) -> SummaryRow:
        """Assign columns by name; a name that is not a column is a programming error, caught here."""
        for name, value in values.items():
            if name not in COLUMN_KINDS:
                raise AttributeError(f"{name!r} is not a summary column (see bench/core/records/schema.py)")
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
REQUIRED_COLUMNS = ("model", "backend", "status", "settings_key", "env_id")
"""A summary without these is not ours; every other column may be missing (older runs) and is filled."""


@dataclass
class Sample:
    """One line of ``samples.csv``: one timed iteration; ``round`` is the timing round (the unit of noise)."""

    run_id: str = col("the run directory's name", "str", identity=True)
    row_id: str = col("the summary row the sample belongs to", "str", identity=True)
    model: str = col("model name", "str")
    backend: str = col("runtime backend", "str")
    infer_batch_size: int = col("batch size", "int", low=1)
    round: int = col("timing round, from 0", "int", identity=True)
    process: int = col("which of the runtime's worker processes timed the round, from 0", "int", default=0)
    iteration: int = col("iteration within the row, counting on across rounds, from 0", "int", identity=True)
    latency_ms: float = latency_col("wall time of one batch", identity=True)


@dataclass
class RoundRecord:
    """One line of ``rounds.csv``: a finished timing round of one workload, on disk as the round ends, so
    ``--resume`` continues an interrupted row from its last finished round (:meth:`load` checks one)."""

    round: int = col("timing round, from 0", "int", identity=True)
    process: int = col("which of the runtime's worker processes timed the round, from 0", "int", default=0)
    iterations: int = col("timed iterations in the round", "int")
    median_ms: float = latency_col("median latency of the round", identity=True)
    reference_ms: float = col(
        "median of the machine-speed reference before the round", unit="ms", positive=True, identity=True
    )
    busy_cpu: float = col("CPU time other processes used during the round, in cores (Linux /proc)")
    steal: float = col("share of CPU time the hypervisor stole during the round (Linux /proc)")
    idle_cpu: float = col("CPU (in cores) the sitting's other, idle runtime workers used while the round ran", low=0)
    warmup_iterations: int = col("warmup iterations before the round", "int", checked=True)
    warmup_s: float = col("time spent warming up", unit="s", low=0, checked=True)
    measure_s: float = col("time spent in the timed loop", unit="s", low=0, checked=True)
    timestamp: str = col("when the round ended, local ISO 8601 with UTC offset", "str")

    def as_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)

    @classmethod
    def load(cls, values: Mapping[str, object]) -> RoundRecord | None:
        """The record in ``values`` (a line of ``rounds.csv``), typed; None when an identity field is
        missing or does not parse, or the times are not positive (such a round is not resumed)."""
        return load_record(cls, values)


def load_record(cls: type, values: Mapping[str, object]):
    """The one loader of a declared record from text values: typed by the declaration; None when a
    field marked ``identity`` is missing or breaks its constraints, or a ``checked`` one breaks them;
    other bad values become None, and a missing one the field's declared default."""
    typed_values: dict[str, object] = {}
    for spec in dataclasses.fields(cls):
        text = values.get(spec.name)
        missing = text is None or (isinstance(text, float) and text != text) or text == ""
        problem = None if missing else field_problem(spec, text)
        if missing or problem:
            if spec.metadata["identity"] or (problem and spec.metadata["checked"]):
                return None
            if missing and spec.default_factory is not dataclasses.MISSING:
                typed_values[spec.name] = spec.default_factory()
            elif missing and spec.default is not dataclasses.MISSING:
                typed_values[spec.name] = spec.default
            else:
                typed_values[spec.name] = None
            continue
        kind = spec.metadata["kind"]
        if kind == "int":
            typed_values[spec.name] = int(float(str(text)))
        elif kind == "float":
            typed_values[spec.name] = float(str(text))
        elif kind == "bool":
            typed_values[spec.name] = text if isinstance(text, bool) else str(text).strip().lower() in _BOOL_TRUE
        elif kind == "json":
            typed_values[spec.name] = text if not isinstance(text, str) else _json.loads(text)
        else:
            typed_values[spec.name] = str(text)
    return cls(**typed_values)


SAMPLE_COLUMNS = tuple(f.name for f in dataclasses.fields(Sample))
ROUND_COLUMNS = ("run_id", "row_id", *(f.name for f in dataclasses.fields(RoundRecord)))
"""rounds.csv: the run and row a round belongs to, then the :class:`RoundRecord`."""

# ---------------------------------------------------------------------------------------- environment

ENVIRONMENT_FIELDS: dict[str, tuple[str, bool]] = {
    "suite": ("this suite's marker, so foreign folders are never read as results", True),
    "schema_version": ("SCHEMA_VERSION of the files the run wrote", False),
    "env_id": ("hash of the machine and software: rows are only compared within one", True),
    "hostname": ("the machine's name (an imported run: the device's)", False),
    "cpu_model": ("the CPU's model name (an imported run: the device's SoC)", False),
    "cpu_count": ("logical CPUs", False),
    "gpu_name": ("the GPU, where CUDA is available", False),
    "gpu_driver": ("the NVIDIA driver version", False),
    "cuda": ("torch's CUDA version", False),
    "cudnn": ("torch's cuDNN version", False),
    "os": ("operating system and kernel", False),
    "python": ("the Python version", False),
    "versions": ("package -> version of the framework and every registered runtime", False),
    "git_commit": ("the suite's commit, where known", False),
    "started_at": ("when the run started", False),
    "argv": ("the command line", False),
    "system": ("the machine checks of bench doctor at the start of the run", False),
    "backend": ("the runtimes a sitting measured, joined by '+'", False),
    "backends": ("the runtimes a sitting measured, in --backend order", False),
    "device": ("the device it ran on (an imported run: the device file's facts)", False),
    "threads": ("intra-op threads", False),
    "backend_versions": ("versions of the measured runtimes' packages, one flat map", False),
    "order_seed": ("the seed the sitting's round order was shuffled from", False),
    "round_order": ("per round, the cells in the order they were timed", False),
    "open_s": ("seconds from the sitting's start until every cell was open", False),
    "resumes": (
        "the runs a --resume sitting continues: their finished rows and rounds are part of this sitting",
        False,
    ),
    "processes": ("worker processes per runtime; a cell's rounds take turns between them", False),
    "budget_s": ("seconds of extra rounds allowed for cells lacking clean rounds (--budget)", False),
    "recorded_floor_ms": ("the machine's calm-speed reference recorded by earlier sittings (cache), or null", False),
    "sitting_sd": (
        "how far this machine's sittings differ beyond their rounds (log-scale sd) in every interval",
        False,
    ),
    "sitting_sd_source": (
        "where sitting_sd came from: learnt from N cell pairs of earlier sittings, or assumed",
        False,
    ),
    "allocator": ("the malloc settings every worker fixed before it ran anything", False),
    "extra_rounds": ("per extra pass, the cells timed again because they lacked clean rounds", False),
    "machine_floor_ms": ("the calm-speed reference the sitting judged clean rounds against", False),
    "slow_level": (
        "how far the sitting's own fast level (10th percentile of its reference blocks) stayed above "
        "machine_floor_ms; every interval's low side reaches that much further",
        False,
    ),
    "external_models": ("published facts of the external networks measured (a spec's top-1, family, ...)", False),
    "imported": ("true for a run bench import wrote from a vendor tool's output", False),
    "source_tool": ("the vendor tool an imported run was read from", False),
    "device_name": ("the device an imported run was measured on", False),
}
"""``environment.json``: field -> (what it says, required). ``env_id`` hashes hostname, CPU, CPU count,
OS, Python, versions and GPU (an imported run's: the device and the tool)."""

# ---------------------------------------------------------------------------------------- export manifest

MANIFEST_VERSION = 1
"""1: per artifact the model, input shape, precision, backend and options, versions, weights, SHA-256 and
the vendor tools' command lines (manifests without ``format`` are read as 1)."""


@dataclass
class ManifestEntry:
    """One artifact ``bench export`` wrote, in ``manifest.json`` (``{"suite", "format", "created", "artifacts"}``)."""

    file: str = col("the artifact's name in the export folder", "str", identity=True)
    model: str = col("model name", "str", identity=True)
    input_shape: Any = col("static input shape [batch, channels, height, width]", "json", identity=True)
    precision: str = col("fp32, fp16 or bf16", "str")
    backend: str = col("the runtime it was prepared for", "str", identity=True)
    backend_options: Any = col("the backend's own options", "json", json="object")
    weights: str = col("seed=N or the checkpoint's name@sha256 prefix", "str")
    single_head: bool = col("distillation head dropped", "bool")
    versions: Any = col("versions of the runtime's packages", "json", json="object")
    sha256: str = col("SHA-256 of the artifact (of every file, for a directory artifact)", "str", identity=True)
    detail: Any = col("facts the backend reported while preparing it", "json", json="object")
    native: Any = col(
        "the vendor tools' command lines that time this artifact with the suite's settings "
        "(a list of {tool, command, output[, note]}; bench import reads their outputs)",
        "json",
    )

    def as_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)

    @classmethod
    def load(cls, values: object) -> ManifestEntry | None:
        """The entry in ``values`` (one item of ``artifacts``); None when it is not one."""
        return load_record(cls, values) if isinstance(values, Mapping) else None


# ---------------------------------------------------------------------------------------- compare


@dataclass
class CompareResult:
    """One setting measured on both sides of ``bench compare OLD NEW`` (or measured in OLD and failing in
    NEW), as its table, ``--csv`` and ``--json`` output show it (:func:`bench.core.measure.verdicts.compare`)."""

    model: str = col("model name", "str", identity=True)
    backend: str = col("runtime backend", "str", identity=True)
    device: str = col("cpu or cuda", "str")
    precision: str = col("fp32, fp16 or bf16", "str")
    batch: int = col("batch size (the summary's infer_batch_size)", "int", low=1)
    resolution: int = col("input height = width (the summary's infer_img_size)", "int", "px", low=1)
    threads: int = col("intra-op threads; empty: the runtime's own choice", "int", low=1)
    old_headline_ms: float = col("OLD cell's headline estimator (bench.core.records.cell.ESTIMATORS; rows older than "
                                 "the headline: their pooled median)", unit="ms", positive=True)  # fmt: skip
    new_headline_ms: float = col("NEW cell's headline, as old_headline_ms; empty when the setting now fails", unit="ms",
                                 positive=True)  # fmt: skip
    ratio: float = col("new_headline_ms / old_headline_ms: the change the verdict judges")
    change_pct: float = col("(ratio - 1) x 100", unit="%")
    ci_low: float = col("low end of ratio's interval (level 1 - alpha, from both headlines' standard errors); "
                        "empty when untested")  # fmt: skip
    ci_high: float = col("high end of ratio's interval")
    p_value: float = col("two-sided p of no change (normal on the log ratio); empty when untested", low=0)
    floor_change_pct: float = col("change of the machine's calm-speed reference between the two sittings (a "
                                  "diagnostic: never divided out)", unit="%")  # fmt: skip
    clean_rounds_old: int = col("OLD's clean rounds (timed on a calm machine)", "int")
    clean_rounds_new: int = col("NEW's clean rounds", "int")
    old_validity: str = col("OLD row's validity (stable or unstable; - when not judged)", "str")
    new_validity: str = col("NEW row's validity", "str")
    verdict: str = col("the outcome (measure.verdicts: REGRESSION, improved, not judged (unstable), ...)", "str",
                       identity=True)  # fmt: skip
    error: str = col("why NEW failed (status: error); a column only when some setting now fails", "str")


COMPARE_COLUMNS = tuple(f.name for f in dataclasses.fields(CompareResult))
"""``bench compare``'s output columns, in order (``error`` only when some setting now fails)."""

# ---------------------------------------------------------------------------------------- accuracy

ACCURACY_FORMAT = 4
"""Version of ``accuracy.json`` (``bench accuracy``'s document). 2: per result ``imagenet_top1`` (may it
replace the published top-1), per-runtime ``images_per_s``; the document keeps its ``resume_key``.
3: ``reference_backend`` is named ``baseline_backend`` (older documents are read under the new name).
4: a result per runtime and precision: ``baseline_precision``, the drop's paired interval, ``top1_changed``."""
READABLE_ACCURACY_FORMATS = (1, 2, 3, 4)
RENAMED_ACCURACY_FIELDS = {"reference_backend": "baseline_backend"}
"""Old name -> new name of :class:`AccuracyResult` fields: how older documents are migrated on read."""
ACCURACY_KIND = "accuracy"


@dataclass
class AccuracyResult:
    """One model on one runtime, in ``accuracy.json`` (:class:`AccuracyDocument`)."""

    model: str = col("model name", "str", identity=True)
    family: str = col("model family id", "str")
    backend: str = col("the runtime that scored the images", "str", identity=True)
    status: str = col(
        "ok, or failed (error says why: the model could not be built or run, or the runtime failed)",
        "str",
        identity=True,
    )
    error: str = col("why the result failed", "str")
    device: str = col("cpu or cuda", "str", default="cpu")
    precision: str = col("fp32, fp16 or bf16 (AMP on torch), or int8 (the runtime's quantizer)", "str",
                         default="fp32", identity=True)  # fmt: skip
    threads: int = col("intra-op threads the runtime was given", "int", low=1)
    batch_size: int = col("images per inference", "int", low=1)
    resolution: int = col("input height = width (the preprocessing's crop)", "int", "px", low=1)
    backend_detail: dict = col("facts the runtime reported (its version, providers, ...)", "json", json="object",
                               factory=dict)  # fmt: skip
    preprocessing: dict = col("the preprocessing applied, with a one-line summary", "json", json="object")
    weights: str = col("checkpoint, random (seeded, scores at chance) or external (the network's own)", "str")
    checkpoint: dict = col("the checkpoint's path, name and SHA-256", "json", json="object")
    images: int = col("images scored (skipped ones excluded)", "int", default=0)
    skipped_unreadable: int = col("images that could not be read", "int", default=0)
    skipped_examples: list = col("up to 20 of the skipped images", "json", factory=list)
    classes: int = col("outputs of the network's head", "int", low=1)
    correct_top1: int = col("images whose top-1 class is right", "int", default=0)
    correct_top5: int = col("images whose right class is among the top 5", "int", default=0)
    top1: float = col("percent of images right at top-1; empty when failed or nothing was scored", unit="%", low=0)
    top5: float = col("percent of images right at top-5", unit="%", low=0)
    baseline_backend: str = col(
        "the baseline runtime: the first of --backend that evaluated the model (empty if none did)", "str"
    )
    baseline_precision: str = col("the baseline runtime's precision (the first of --precision it ran)", "str")
    top1_drop: float = col("top-1 of the baseline runtime minus this runtime's", unit="pp")
    top1_drop_ci_low: float = col(
        "95% interval of top1_drop over images like these, paired (the same images scored by both)", unit="pp"
    )
    top1_drop_ci_high: float = col("upper end of top1_drop's interval", unit="pp")
    top1_changed: int = col(
        "images right at top-1 on one of this runtime and the baseline and wrong on the other", "int", low=0
    )
    published_top1: float = col("the top-1 the model's paper reports", unit="%", low=0)
    published_top1_source: str = col("where the published top-1 comes from", "str")
    imagenet_top1: bool = col(
        "top1 is an ImageNet-1k val top-1 (the full set, none skipped, real weights): it may replace the published one",
        "bool",
        default=False,
    )
    data_content_sha256: str = col("SHA-256 over the bytes of every image scored", "str")
    seconds: float = col("wall time of the whole evaluation of this model (decoding and every runtime)", unit="s",
                         low=0)  # fmt: skip
    predict_seconds: float = col("this runtime's own inference time", unit="s", low=0)
    images_per_s: float = col("images over predict_seconds (the runtime's rate, not decoding's)", unit="img/s",
                              low=0)  # fmt: skip
    timestamp: str = col("when the result was finished, local ISO 8601 with UTC offset", "str")

    @classmethod
    def from_dict(cls, raw: object) -> AccuracyResult | None:
        """The result in ``raw`` (one item of ``results``), by this declaration; None when it is not one.
        Fields of older formats are read under their new names (:data:`RENAMED_ACCURACY_FIELDS`)."""
        if not isinstance(raw, Mapping):
            return None
        renamed = {new: raw[old] for old, new in RENAMED_ACCURACY_FIELDS.items() if old in raw and new not in raw}
        return load_record(cls, {**raw, **renamed})


PER_CLASS_COLUMNS = (
    "model", "backend", "precision", "class_index", "class_name", "images", "correct_top1", "correct_top5"
)  # fmt: skip
"""``per_class.csv`` beside ``accuracy.json``: one line per model, runtime, precision and class that had images."""


@dataclass
class AccuracyDocument:
    """``accuracy.json``: one accuracy run (the machine, the data set, one :class:`AccuracyResult` per
    model and runtime), versioned by :data:`ACCURACY_FORMAT`."""

    run_id: str = col("the run directory's name", "str", identity=True)
    environment: dict = col("the machine and software (a subset of environment.json)", "json", json="object",
                            factory=dict)  # fmt: skip
    data: dict = col(
        "the data set: name (what it is, never the path), path, layout, counts, fingerprints, limit",
        "json",
        json="object",
        factory=dict,
    )
    results: list = col("one AccuracyResult per model and runtime", "json", factory=list)
    resume_key: str = col("hash of what decides the scores (data, models, runtimes, settings): --resume", "str")
    suite: str = col("this suite's marker", "str", default=SUITE_ID)
    kind: str = col("always accuracy", "str", default=ACCURACY_KIND)
    format: int = col("ACCURACY_FORMAT of the writer", "int", default=ACCURACY_FORMAT)

    def to_json(self) -> str:
        return _json.dumps(dataclasses.asdict(self), indent=1, default=str, ensure_ascii=True) + "\n"


# ---------------------------------------------------------------------------------------- identity

SETTING_FIELDS = tuple(f.name for f in dataclasses.fields(SummaryRow) if f.metadata["role"] == "setting")
"""What makes two rows measure different things (besides the model cell and the machine): the summary
columns declared with ``role="setting"``."""
SHARED_SETTING_FIELDS = tuple(
    f.name for f in dataclasses.fields(SummaryRow) if f.metadata["role"] == "setting" and not f.metadata["runtime_own"]
)
"""The settings two runtimes share when they time the same cell (a runtime's own ones, such as its options or its
calibration, aside): what a runtime ratio holds equal."""
CELL_FIELDS = tuple(f.name for f in dataclasses.fields(SummaryRow) if f.metadata["role"] == "cell")
IDENTITY_FIELDS = tuple(f.name for f in dataclasses.fields(SummaryRow) if f.metadata["identity"])
"""Summary columns that say *what* a row measured: a row whose value does not parse is left out."""


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


def measured(summary: pd.DataFrame) -> pd.Series:
    """Rows that measured: status ok and a median latency (only these are shown or compared)."""
    return (summary["status"] == STATUS_OK) & summary["latency_median_ms"].notna()


def latest_ok(summary: pd.DataFrame, key: Sequence[str]) -> pd.DataFrame:
    """The latest ok row per setting: of the :func:`measured` rows, the last of each ``key`` group, in file order.

    Rows come oldest first, so a setting measured again is shown by its latest run, never by an average.
    ``key`` names the columns that hold a setting's identity with its cell (``report`` adds the machine
    and the sitting, ``compare`` matches without the machine).
    """
    return summary[measured(summary)].groupby(list(key), dropna=False, sort=False).tail(1)


def settings_key(row: Mapping[str, object], protocol: Mapping[str, object]) -> str:
    """Hash of setting, cell and measurement protocol (iterations, rounds): a row ``--resume`` may skip."""
    payload = [setting_identity(row, with_env=False), cell_identity(row), dict(protocol)]
    return json_digest(payload, "sha1", 16)


def identify(row: SummaryRow, protocol: Mapping[str, object]) -> None:
    """Give a row its ``settings_key`` and ``row_id`` (the one place they are made: ``run`` and ``import``)."""
    row.settings_key = settings_key(row.as_dict(), protocol)
    row.row_id = f"{row.model}|b{row.infer_batch_size}|r{row.infer_img_size}|{row.settings_key}"


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
