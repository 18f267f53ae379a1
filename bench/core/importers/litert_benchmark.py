"""LiteRT ``litert-benchmark --result_json`` (the ai-edge-litert package's Python benchmark).

One JSON object per run: ``model``, ``accelerators``, ``num_threads`` and a ``latency`` object with
``init_ms``, ``warmup_first_ms``, ``avg_ms``, ``min_ms``, ``max_ms``, ``median_ms``, ``std_ms``,
``p5_ms``, ``p95_ms``, ``num_runs``, ``num_warmup_runs`` -- rounded to 0.01 ms by the tool, which
keeps no per-iteration times: aggregate-only rows.
"""

from __future__ import annotations

from pathlib import Path

from bench.core.importers import Format, ImportFailure, Measurement, json_line, json_number, load_json, unit_of

TOOL = "litert-benchmark"
_STATS = {
    "median_ms": "latency_median_ms",
    "avg_ms": "latency_mean_ms",
    "min_ms": "latency_min_ms",
    "max_ms": "latency_max_ms",
    "std_ms": "latency_std_ms",
    "p95_ms": "latency_p95_ms",
}


def sniff(text: str, path: Path) -> bool:
    head = text.lstrip()[:4000]
    return (
        head.startswith("{")
        and '"latency"' in head
        and ('"median_ms"' in head or '"avg_ms"' in head or '"fully_accelerated"' in head)
    )


def parse(path: Path, text: str) -> list[Measurement]:
    data = load_json(path, text)
    if not isinstance(data, dict) or not isinstance(data.get("latency"), dict):
        raise ImportFailure(path, 1, "not a litert-benchmark result (no 'latency' object)")
    latency = data["latency"]
    where = json_line(text, "latency")
    m = Measurement(tool=TOOL, source=path, line=where, headline="median")
    for key, column in _STATS.items():
        if key in latency:
            m.stats[column] = json_number(latency[key], path, json_line(text, key), f"latency.{key}")
    if "latency_median_ms" not in m.stats:
        raise ImportFailure(path, where, "truncated: the 'latency' object has no median_ms")
    if "p5_ms" in latency:
        m.detail["latency_p5_ms"] = json_number(latency["p5_ms"], path, json_line(text, "p5_ms"), "latency.p5_ms")
    if "num_runs" in latency:
        m.iterations = int(json_number(latency["num_runs"], path, json_line(text, "num_runs"), "num_runs", whole=True))
    if "num_warmup_runs" in latency:
        line = json_line(text, "num_warmup_runs")
        m.warmup_iterations = int(json_number(latency["num_warmup_runs"], path, line, "num_warmup_runs", whole=True))
    if "warmup_first_ms" in latency:
        line = json_line(text, "warmup_first_ms")
        m.first_inference_ms = json_number(latency["warmup_first_ms"], path, line, "latency.warmup_first_ms")
    if "init_ms" in latency:
        m.load_s = json_number(latency["init_ms"], path, json_line(text, "init_ms"), "latency.init_ms") / 1000.0
    if data.get("num_threads") is not None:
        line = json_line(text, "num_threads")
        m.threads = int(json_number(data["num_threads"], path, line, "num_threads", whole=True))
    accelerators = data.get("accelerators")
    if isinstance(accelerators, list):
        m.unit = unit_of(*map(str, accelerators))
        m.detail["accelerators"] = ",".join(map(str, accelerators))
    for key in ("fully_accelerated", "signature", "model_size_mb", "throughput_mb_s"):
        if key in data:
            m.detail[key] = data[key]
    m.artifact = str(data["model"]) if data.get("model") else None
    return [m]


FORMATS = [Format("litert-benchmark", TOOL, "litert-benchmark --result_json", sniff, parse)]
