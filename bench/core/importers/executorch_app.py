"""ExecuTorch's Android benchmark app ("minibench"): its ``benchmark_results.json``.

The app (extension/benchmark/android/benchmark, "minibench") writes a JSON list of metric records:
``benchmarkModel`` (``name`` = the ``.pte`` file name without extension, ``backend``,
``quantization``), ``metric`` (``avg_inference_latency(ms)``, ``trimmean_inference_latency(ms)``,
``model_load_time(ms)``, ``load_status``, ``ram_pss_usage(mb)``), ``actualValue``, ``targetValue``
and ``deviceInfo`` (``device`` = brand, ``arch`` = model, ``os``, ``totalMem``, ``availMem``). It
keeps no per-run times: aggregate-only rows led by the mean (the trimmed mean is kept as a detail).
"""

from __future__ import annotations

import re
from pathlib import Path

from bench.core.importers import Format, ImportFailure, Measurement, json_line, json_number, load_json, to_ms, unit_of

APP_TOOL = "executorch-benchmark-app"
_METRIC = re.compile(r"^([a-z_]+)\((\w+)\)$")


def sniff_app(text: str, path: Path) -> bool:
    head = text.lstrip()[:2000]
    return head.startswith("[") and '"benchmarkModel"' in head and '"metric"' in head


def parse_app(path: Path, text: str) -> list[Measurement]:
    records = load_json(path, text)
    if not isinstance(records, list):
        raise ImportFailure(path, 1, "not an ExecuTorch benchmark_results.json (not a list of metric records)")
    found: dict[tuple[str, str, str], Measurement] = {}
    for index, record in enumerate(records):
        where = f"record {index + 1}"
        line = json_line(text, "metric", _nth(text, '"benchmarkModel"', index))
        if not isinstance(record, dict) or not isinstance(record.get("benchmarkModel"), dict) or "metric" not in record:
            raise ImportFailure(path, line, f"{where}: not a metric record (benchmarkModel, metric, actualValue)")
        model = record["benchmarkModel"]
        key = (str(model.get("name", "")), str(model.get("backend", "")), str(model.get("quantization", "")))
        if key not in found:
            name = key[0] + (f"_{key[1]}_{key[2]}" if key[1] else "")  # the .pte stem the app parsed
            found[key] = Measurement(tool=APP_TOOL, source=path, line=line, headline="mean")
            found[key].artifact = f"{name}.pte"
            found[key].unit = unit_of(key[1]) if key[1] else None
            if key[2]:
                found[key].detail["quantization"] = key[2]
            info = record.get("deviceInfo")
            if isinstance(info, dict):
                found[key].device_info = {k: str(v) for k, v in info.items()}
        m = found[key]
        metric = str(record["metric"])
        value = json_number(record.get("actualValue"), path, line, f"{where}: actualValue of {metric}")
        match = _METRIC.match(metric)
        if metric == "load_status":
            if value != 0:
                m.failed = f"the app could not load the model (load_status {value:g})"
            continue
        if match is None:
            m.detail[metric] = value
            continue
        name, unit = match.groups()
        if unit.lower() == "mb":
            m.detail[name + "_mb"] = value
            continue
        ms = to_ms(value, unit, path, line, f"{where}: {metric}")
        if name == "avg_inference_latency":
            m.stats["latency_mean_ms"] = ms
        elif name == "trimmean_inference_latency":
            m.detail["trimmed_mean_ms"] = ms
        elif name == "model_load_time":
            m.load_s = ms / 1000.0
        else:
            m.detail[f"{name}_ms"] = ms
    for m in found.values():
        if m.failed is None and "latency_mean_ms" not in m.stats:
            raise ImportFailure(path, m.line, f"no avg_inference_latency(ms) record for {m.artifact}: truncated?")
    return list(found.values())


def _nth(text: str, needle: str, n: int) -> int:
    at = -1
    for _ in range(n + 1):
        at = text.find(needle, at + 1)
        if at < 0:
            return 0
    return at


FORMATS = [
    Format("executorch-app", APP_TOOL, "ExecuTorch Android benchmark app benchmark_results.json", sniff_app, parse_app),
]
