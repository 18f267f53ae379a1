"""``onnxruntime_perf_test``: its console summary, and its ``result_file``.

Console (onnxruntime/test/perftest/performance_runner.cc): ``Session creation time cost: X s``,
``First inference time cost: N ms``, ``Total inference requests: N``, ``Average inference time cost:
X ms``, ``Peak working set size: N bytes`` ...; with ``-s`` also ``Min/Max/P50/P90/P95/P99/P999
Latency: X s`` (seconds; nearest-rank percentiles, no interpolation). Console output alone is
aggregate-only.

``result_file`` (the optional last positional argument): one ``model_name,seconds,peak_working_set,
avg_cpu_usage,run_index`` line per timed run -- every sample -- then, with ``-s``, a blank line and
the same percentile lines. ``model_name`` is the name of the folder holding the model.
"""

from __future__ import annotations

import re
from pathlib import Path

from bench.core.importers import Format, ImportFailure, Measurement, number, to_ms

TOOL = "onnxruntime_perf_test"
_STAT = re.compile(r"^(Min|Max|P50|P90|P95|P99|P999) Latency(?::| is) (\S+) (\w+)$")
_STAT_COLUMNS = {
    "Min": "latency_min_ms",
    "Max": "latency_max_ms",
    "P50": "latency_median_ms",
    "P90": "latency_p90_ms",
    "P95": "latency_p95_ms",
    "P99": "latency_p99_ms",
}
_LOOKS_LIKE_A_STAT = re.compile(r"^(?:min|max|p\S{0,4})\s+la\w*\b|^\S{0,6}\s+latency\b", re.IGNORECASE)
"""A percentile line with a typo ("P5O Latency", "P50 Latncy"): an error, never silently skipped."""
_LINE = re.compile(r"^([^:]+?): (\S+)(?: (\w+))?\s*$")
_SAMPLE = re.compile(r"^([^,]*),([^,]+),([^,]+),([^,]+),([^,]+)$")


def sniff_text(text: str, path: Path) -> bool:
    starts = ("Average inference time cost:", "Session creation time cost:")
    return any(line.strip().startswith(starts) for line in text.splitlines()[:5000])


def sniff_result(text: str, path: Path) -> bool:
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return bool(_SAMPLE.match(first)) and first.rsplit(",", 1)[-1].strip() == "0"


def _percentiles(m: Measurement, path: Path, line_no: int, match: re.Match[str]) -> None:
    name, value, unit = match.groups()
    ms = to_ms(number(value, path, line_no, f"{name} Latency"), unit, path, line_no, f"{name} Latency")
    column = _STAT_COLUMNS.get(name)
    if column is None:
        m.detail["latency_p999_ms"] = ms
    else:
        m.stats[column] = ms


def parse_text(path: Path, text: str) -> list[Measurement]:
    m = Measurement(tool=TOOL, source=path, line=1, headline="median")
    seen_average = False
    for line_no, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if match := _STAT.match(line):
            _percentiles(m, path, line_no, match)
            continue
        if re.match(r"^(Min|Max|P\d+) Latency\b", line) or _LOOKS_LIKE_A_STAT.match(line):
            raise ImportFailure(path, line_no, f"garbled percentile line {line[:60]!r}")
        match = _LINE.match(line)
        if match is None:
            continue
        key, value, unit = match.group(1), match.group(2), match.group(3) or ""
        if key == "Session creation time cost":
            m.load_s = to_ms(number(value, path, line_no, key), unit, path, line_no, key) / 1000.0
            m.line = line_no
        elif key == "First inference time cost":
            m.first_inference_ms = to_ms(number(value, path, line_no, key), unit, path, line_no, key)
        elif key == "Total inference requests":
            m.iterations = int(number(value, path, line_no, key, whole=True))
        elif key == "Average inference time cost":
            m.stats["latency_mean_ms"] = to_ms(number(value, path, line_no, key), unit, path, line_no, key)
            seen_average = True
        elif key == "Peak working set size":
            if unit != "bytes":
                raise ImportFailure(path, line_no, f"{key}: unit {unit!r} is not bytes")
            m.peak_rss_mb = number(value, path, line_no, key) / 2**20
        elif key == "Avg CPU usage":
            m.detail["avg_cpu_usage_percent"] = number(value, path, line_no, key)
    if not seen_average:
        raise ImportFailure(path, len(text.splitlines()), "truncated: no 'Average inference time cost' line")
    if "latency_median_ms" not in m.stats:
        if m.stats.keys() - {"latency_mean_ms"}:  # the percentiles are printed together: P50 went missing
            raise ImportFailure(path, len(text.splitlines()), "the percentile lines lack 'P50 Latency': garbled")
        m.headline = "mean"
    return [m]


def parse_result(path: Path, text: str) -> list[Measurement]:
    by_model: dict[str, Measurement] = {}
    samples: dict[str, list[float]] = {}
    tail: Measurement | None = None
    for line_no, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        if match := _STAT.match(line):
            if tail is None:
                raise ImportFailure(path, line_no, "percentile line before any run line")
            _percentiles(tail, path, line_no, match)
            continue
        match = _SAMPLE.match(line)
        if match is None:
            raise ImportFailure(path, line_no, f"garbled result_file line {line[:60]!r}")
        model, seconds, peak, cpu, run = match.groups()
        run_index = int(number(run, path, line_no, "run index", whole=True))
        if model not in by_model:
            by_model[model] = Measurement(tool=TOOL, source=path, line=line_no, artifact=model or None)
            samples[model] = []
        if run_index != len(samples[model]):  # each perf_test run appends its lines: a new run starts at 0
            if run_index == 0:
                raise ImportFailure(path, line_no, "a second perf_test run appended to the same result_file")
            raise ImportFailure(path, line_no, f"run {run_index} follows run {len(samples[model]) - 1}: lines missing")
        samples[model].append(number(seconds, path, line_no, "time cost (s)") * 1000.0)
        by_model[model].peak_rss_mb = number(peak, path, line_no, "peak working set (bytes)") / 2**20
        by_model[model].detail["avg_cpu_usage_percent"] = number(cpu, path, line_no, "CPU usage")
        tail = by_model[model]
    for model, m in by_model.items():
        m.samples_ms = samples[model]
        m.detail.update({f"tool_{k}": v for k, v in m.stats.items()})  # its own nearest-rank percentiles
        m.stats = {}
    return list(by_model.values())


FORMATS = [
    Format("onnxruntime-perf-test", TOOL, "onnxruntime_perf_test console output", sniff_text, parse_text),
    Format("onnxruntime-result-file", TOOL, "onnxruntime_perf_test result_file", sniff_result, parse_result),
]
