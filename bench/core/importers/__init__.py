"""Readers for the outputs of the runtimes' own benchmark tools (``bench import``), one module per tool.

Each module declares a :class:`Format`: a cheap ``sniff`` that says whether a text looks like its
tool's output, and a ``parse`` that turns it into :class:`Measurement` records -- what the tool
printed, in milliseconds, nothing invented. A tool that keeps every iteration (``samples_ms``) gets
the suite's own statistics computed from them; a tool that prints only aggregates yields an
*aggregate-only* measurement whose missing statistics stay missing. Every problem is a
:class:`ImportFailure` naming the file and line, raised before anything is written.
"""

from __future__ import annotations

import importlib
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.core.errors import BenchError
from bench.core.records.schema import MAX_LATENCY_MS, MIN_LATENCY_MS
from bench.core.util import read_input_file

FORMAT_MODULES = (
    "benchmark_app",
    "litert_benchmark",
    "benchmark_model",
    "executorch_app",
    "executor_runner",
    "onnxruntime_perf_test",
    "qai_hub",
)
"""Modules of this package, each defining ``FORMATS``; the order is the order of detection."""

UNITS_TO_MS = {"us": 1e-3, "µs": 1e-3, "ms": 1.0, "s": 1e3, "sec": 1e3}


class ImportFailure(BenchError):
    """A tool output that cannot be imported: ``path:line: why``."""

    def __init__(self, path: Path | str, line: int, why: str) -> None:
        super().__init__(f"{path}:{line}: {why}")


class NestedTooDeeply(ImportFailure):
    """A document nested deeper than any parser should follow: refused as such, whatever format was named."""


@dataclass
class Measurement:
    """One timed model as a tool reported it; latency statistics in ms, keyed by summary column."""

    tool: str
    """The tool's own name (``benchmark_app``, ``litert-benchmark``, ...): the row's ``source_tool``."""
    source: Path
    line: int
    """Where in ``source`` the measurement starts (error messages point here)."""
    backend: str | None = None
    """The suite backend the tool runs: filled from the backends' ``native_tools`` by ``bench import``
    (None where only the artifact can tell: AI Hub runs several runtimes)."""
    artifact: str | None = None
    """The model file as the tool names it (a path on the device, or only its name)."""
    samples_ms: list[float] | None = None
    """Every timed iteration, when the tool keeps them; None: aggregate-only."""
    stats: dict[str, float] = field(default_factory=dict)
    """``latency_*_ms`` columns exactly as the tool printed them (converted to ms)."""
    headline: str = "median"
    """The statistic the tool leads with: median, mean or min."""
    threads: int | None = None
    unit: str | None = None
    """cpu, gpu or npu when the output says where the model ran."""
    batch: int | None = None
    iterations: int | None = None
    warmup_iterations: int | None = None
    first_inference_ms: float | None = None
    load_s: float | None = None
    peak_rss_mb: float | None = None
    failed: str | None = None
    """Why the tool could not time the model (it said so), else None."""
    device_info: dict[str, str] = field(default_factory=dict)
    """What the output says about the device (ExecuTorch's ``deviceInfo``)."""
    detail: dict[str, object] = field(default_factory=dict)
    """Further facts the tool printed, kept in the row's ``runtime_detail``."""


@dataclass(frozen=True)
class Format:
    name: str
    tool: str
    description: str
    sniff: Callable[[str, Path], bool]
    parse: Callable[[Path, str], list[Measurement]]


def formats() -> list[Format]:
    found: list[Format] = []
    for name in FORMAT_MODULES:
        found.extend(importlib.import_module(f"{__name__}.{name}").FORMATS)
    return found


def read_text(path: Path) -> str:
    data = read_input_file(path)  # a regular file only: a named pipe or /dev/zero is refused, not read
    if b"\0" in data:
        line = data[: data.index(b"\0")].count(b"\n") + 1
        raise ImportFailure(path, line, "holds NUL bytes: a binary file, or one damaged on disk")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ImportFailure(path, data[: exc.start].count(b"\n") + 1, "not UTF-8 text") from None


def parse_file(path: Path, format_name: str | None = None) -> list[Measurement]:
    """The measurements in one tool output; the format is detected unless ``format_name`` names it."""
    text = read_text(path)
    if not text.strip():
        raise ImportFailure(path, 1, "empty file")
    known = formats()
    if format_name is not None:
        chosen = [f for f in known if f.name == format_name]
        if chosen and not chosen[0].sniff(text, path):
            return _parse_as_told(path, text, chosen[0], known)
    else:
        chosen = [f for f in known if f.sniff(text, path)]
    if not chosen:
        names = ", ".join(f.name for f in known)
        raise ImportFailure(path, 1, f"not the output of a benchmark tool this suite reads ({names})")
    if len(chosen) > 1:
        raise ImportFailure(path, 1, f"could be {' or '.join(f.name for f in chosen)}: name one with --format")
    found = chosen[0].parse(path, text)
    if not found:
        raise ImportFailure(path, 1, f"{chosen[0].tool} output without a single timed model")
    for m in found:
        check_measurement(m)
    return found


MAX_COUNT = 10**12
"""Iterations or warmup runs beyond this are not a run that happened."""
MAX_BATCH = 1 << 20
MAX_THREADS = 1024
MAX_LOAD_S = 1e6
MAX_MEMORY_MB = 1e8


def check_measurement(m: Measurement) -> None:
    """Every number a tool's output gave is one the suite can store, rank and plot: latencies between
    :data:`MIN_LATENCY_MS` and :data:`MAX_LATENCY_MS` (after unit conversion), counts, batch and threads
    in range. Anything else is a one-line :class:`ImportFailure` before a file is written, never a row
    that crashes or vanishes later."""

    def fail(what: str, value: object, why: str) -> None:
        raise ImportFailure(m.source, m.line, f"{what} {value!r} {why}")

    def latency(what: str, value: float, *, spread: bool = False) -> None:
        low = 0.0 if spread else MIN_LATENCY_MS
        if not math.isfinite(value) or value > MAX_LATENCY_MS or value < low:
            fail(what, value, f"ms is not a plausible latency ({'0' if spread else MIN_LATENCY_MS:g} to "
                 f"{MAX_LATENCY_MS:g} ms)")  # fmt: skip

    def count(what: str, value: int | None, low: int, high: float) -> None:
        if value is not None and not low <= value <= high:
            fail(what, value, f"is out of range ({low} to {high:g})")

    if m.samples_ms is not None:
        if not m.samples_ms:
            raise ImportFailure(m.source, m.line, "no timed iteration")
        for index, value in enumerate(m.samples_ms):
            latency(f"iteration {index + 1}: latency", value)
    for column, value in m.stats.items():
        latency(column, value, spread=column.endswith(("std_ms", "mad_ms", "iqr_ms")))
    if m.first_inference_ms is not None:
        latency("first inference", m.first_inference_ms)
    count("batch", m.batch, 1, MAX_BATCH)
    count("threads", m.threads, 1, MAX_THREADS)
    count("iterations", m.iterations, 1, MAX_COUNT)
    count("warmup iterations", m.warmup_iterations, 0, MAX_COUNT)
    for what, value, high in (("load time (s)", m.load_s, MAX_LOAD_S), ("peak memory (MB)", m.peak_rss_mb,
                                                                        MAX_MEMORY_MB)):  # fmt: skip
        if value is not None and not (math.isfinite(value) and 0 <= value <= high):
            fail(what, value, f"is out of range (0 to {high:g})")


def _parse_as_told(path: Path, text: str, told: Format, known: list[Format]) -> list[Measurement]:
    """``--format`` names a format the text does not look like: another tool's output is refused as such;
    otherwise the parse is tried, and its failure is said to be about the format, not a damaged file."""
    others = [f.name for f in known if f is not told and f.sniff(text, path)]
    if others:
        raise ImportFailure(path, 1, f"not {told.name} output: it looks like {' or '.join(others)} output")
    try:
        found = told.parse(path, text)
    except NestedTooDeeply:
        raise
    except ImportFailure:  # its parser's complaint ("truncated", ...) would blame a file that is not one
        raise ImportFailure(path, 1, f"not {told.name} output (it does not read as {told.tool}'s output)") from None
    if not found:
        raise ImportFailure(path, 1, f"not {told.name} output: no timed model in it")
    return found


# ------------------------------------------------------------------------------------ shared helpers


def number(text: object, path: Path, line: int, what: str, *, whole: bool = False) -> float:
    """A finite, non-negative number or a one-line error naming the value."""
    try:
        value = float(str(text).strip())
    except ValueError:
        raise ImportFailure(path, line, f"{what} {str(text).strip()[:40]!r} is not a number") from None
    if isinstance(text, bool) or not math.isfinite(value) or value < 0:
        raise ImportFailure(path, line, f"{what} {str(text).strip()[:40]!r} is not a finite non-negative number")
    if whole and not value.is_integer():
        raise ImportFailure(path, line, f"{what} {value!r} is not a whole number")
    return value


def json_number(value: object, path: Path, line: int, what: str, *, whole: bool = False) -> float:
    """:func:`number` for a value a JSON output holds: the tools write numbers as JSON numbers, so a string
    (``"2"``), a boolean or null there means a file edited by hand or written by another tool."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        kind = {"str": "string", "bool": "boolean", "NoneType": "null", "list": "array", "dict": "object"}
        kind = kind.get(type(value).__name__, type(value).__name__)
        raise ImportFailure(path, line, f"{what} {str(value)[:40]!r} is a JSON {kind}, not a number")
    return number(value, path, line, what, whole=whole)


def to_ms(value: float, unit: str, path: Path, line: int, what: str) -> float:
    """``value`` in ``unit`` as milliseconds; an unknown unit is an error, never a guess."""
    factor = UNITS_TO_MS.get(unit.strip().lower())
    if factor is None:
        raise ImportFailure(path, line, f"{what}: unit {unit.strip()[:20]!r} is not one of {', '.join(UNITS_TO_MS)}")
    return value * factor


def load_json(path: Path, text: str) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        why = "truncated" if exc.lineno >= text.rstrip().count("\n") + 1 else "garbled"  # an error on the last line
        raise ImportFailure(path, exc.lineno, f"{why} JSON ({exc.msg})") from None
    except RecursionError:
        raise NestedTooDeeply(path, 1, "JSON nested too deeply to be a tool's output") from None


def json_line(text: str, key: str, start: int = 0) -> int:
    """Line of the first ``"key"`` in a JSON text (1 when absent): where an error about it points."""
    at = text.find(f'"{key}"', start)
    return text.count("\n", 0, at) + 1 if at >= 0 else 1


def unit_of(*names: str) -> str | None:
    """cpu, gpu or npu from accelerator / delegate / compute-unit names."""
    text = " ".join(n.lower() for n in names if n)
    for unit, words in (
        ("npu", ("npu", "htp", "dsp", "qnn", "hexagon", "ane", "neural")),
        ("gpu", ("gpu", "vulkan", "opencl", "metal", "mps", "webgpu")),
    ):
        if any(re.search(rf"\b{w}", text) for w in words):
            return unit
    return "cpu" if text else None
