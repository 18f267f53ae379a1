"""OpenVINO ``benchmark_app``: its ``benchmark_report.csv`` (``-report_type no_counters`` or more).

The report is ``;``-separated ``key;value`` lines in sections (``Command line parameters``,
``Configuration setup``, ``Execution results``), blank lines between them. Latencies are in ms with
two decimals; the tool keeps no per-iteration latencies, so rows are aggregate-only: the median (or
the ``-latency_percentile`` it was asked for), mean, min and max, as printed. The JSON report is not
read (the issue that asked for this reader found it unreliable); the per-layer counters files are
not latencies.
"""

from __future__ import annotations

import re
from pathlib import Path

from bench.core.importers import Format, ImportFailure, Measurement, number, to_ms, unit_of

TOOL = "benchmark_app"
SECTIONS = ("Command line parameters", "Configuration setup", "Execution results")
_COUNTERS_HEADER = "layerName;execStatus;layerType;execType"
_LATENCY = re.compile(r"^latency(?: \((\d+) percentile\))? \((\w+)\)$")
_AGGREGATES = ("avg latency", "min latency", "max latency")
_PERCENTILE_COLUMNS = {50: "latency_median_ms", 90: "latency_p90_ms", 95: "latency_p95_ms", 99: "latency_p99_ms"}


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def sniff(text: str, path: Path) -> bool:
    first = _first_line(text)
    if first in SECTIONS or first.startswith(_COUNTERS_HEADER):
        return True
    return path.suffix == ".json" and '"execution_results"' in text and '"cmd_options"' in text


def parse(path: Path, text: str) -> list[Measurement]:
    sections = _sections(path, text)
    results = sections.get("Execution results")
    last = len(text.splitlines())
    if results is None:
        raise ImportFailure(path, last, "truncated: no 'Execution results' section (did benchmark_app finish?)")
    m = Measurement(tool=TOOL, source=path, line=next(iter(results.values()), ("", last))[1])
    _read_latencies(m, results, path, last)
    _read_run_facts(m, results, path)
    _read_settings(m, sections.get("Command line parameters", {}), sections.get("Configuration setup", {}), path)
    return [m]


Section = dict[str, tuple[str, int]]
"""A report section's ``key -> (value, line number)``."""


def _sections(path: Path, text: str) -> dict[str, Section]:
    """The report's sections by title; a file that is another of benchmark_app's outputs, or a line outside
    ``key;value``, is an :class:`ImportFailure` naming it."""
    first = _first_line(text)
    if first.startswith(_COUNTERS_HEADER):
        raise ImportFailure(path, 1, "benchmark_app's per-layer counters, not latencies: import benchmark_report.csv")
    if first not in SECTIONS:
        raise ImportFailure(
            path, 1, "benchmark_app's JSON report is not read (unreliable): import benchmark_report.csv"
        )
    sections: dict[str, Section] = {}
    current: Section | None = None
    for number_, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        if line in SECTIONS:
            current = sections.setdefault(line, {})
            continue
        if current is None or ";" not in line:
            raise ImportFailure(path, number_, f"garbled benchmark_app report line {line[:60]!r}")
        key, value = line.split(";", 1)
        current.setdefault(key.strip(), (value.strip(), number_))  # later groups (-data_shape) repeat keys
    return sections


def _read_latencies(m: Measurement, results: Section, path: Path, last: int) -> None:
    """The latency percentiles and aggregates; the median leads unless a percentile run replaced it."""
    m.headline = "median"
    for key, (value, line) in results.items():
        match = _LATENCY.match(key)
        if match is None and "lat" in key.lower() and key not in _AGGREGATES:
            raise ImportFailure(path, line, f"garbled benchmark_app latency line {key[:60]!r}")
        if match:
            percentile = int(match.group(1) or 50)
            ms = to_ms(number(value, path, line, key), match.group(2), path, line, key)
            column = _PERCENTILE_COLUMNS.get(percentile)
            if column is None:
                m.detail[f"latency_p{percentile}_ms"] = ms
            else:
                m.stats[column] = ms
            if percentile != 50:
                m.headline = "mean"
    for key, column in zip(_AGGREGATES, ("latency_mean_ms", "latency_min_ms", "latency_max_ms"), strict=True):
        if key in results:
            value, line = results[key]
            m.stats[column] = number(value, path, line, f"{key} (ms)")
    if "latency_median_ms" not in m.stats and "latency_mean_ms" not in m.stats:
        raise ImportFailure(path, last, "truncated: the 'Execution results' section has no latency")
    if not any(_LATENCY.match(key) for key in results):  # benchmark_app always leads with it
        raise ImportFailure(path, m.line, "no 'latency (ms)' line (the median benchmark_app leads with): garbled")


def _read_run_facts(m: Measurement, results: Section, path: Path) -> None:
    """Iterations, first inference, load time, throughput and total time of the run."""
    if "total number of iterations" in results:
        value, line = results["total number of iterations"]
        m.iterations = int(number(value, path, line, "total number of iterations", whole=True))
    if "first inference time (ms)" in results:
        value, line = results["first inference time (ms)"]
        m.first_inference_ms = number(value, path, line, "first inference time (ms)")
    load_ms = [
        number(results[k][0], path, results[k][1], k)
        for k in ("read model time (ms)", "compile model time (ms)", "import model time (ms)")
        if k in results
    ]
    if load_ms:
        m.load_s = sum(load_ms) / 1000.0
    for key in ("throughput", "total execution time (ms)"):
        if key in results:
            m.detail[key] = results[key][0]


def _read_settings(m: Measurement, command: Section, config: Section, path: Path) -> None:
    """What the run was asked for (command line) and what the tool set up (configuration)."""
    model = command.get("-m") or command.get("--path_to_model")
    m.artifact = model[0] if model else None
    threads = command.get("-nthreads") or command.get("--number_threads")
    if threads:
        m.threads = int(number(threads[0], path, threads[1], "-nthreads", whole=True))
    if "batch size" in config:
        value, line = config["batch size"]
        m.batch = int(number(value, path, line, "batch size", whole=True))  # 0 is refused, not ignored
    device = config.get("target device") or command.get("-d")
    if device:
        m.unit = unit_of(device[0])
        m.detail["target_device"] = device[0]
    for key in ("-infer_precision", "-hint", "-nstreams", "-nireq", "-api"):
        if key in command:
            m.detail[key.lstrip("-")] = command[key][0]
    for key in ("precision", "number of CPU streams", "inference_only", "API"):
        if key in config:
            m.detail[key] = config[key][0]


FORMATS = [Format("openvino-benchmark-app", TOOL, "OpenVINO benchmark_app benchmark_report.csv", sniff, parse)]
