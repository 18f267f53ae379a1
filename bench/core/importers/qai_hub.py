"""Qualcomm AI Hub profile results (``ProfileJob.download_profile()`` saved as JSON).

``execution_summary`` holds ``estimated_inference_time`` (microseconds; AI Hub's documentation says
it reports the fastest inference it observed), ``estimated_inference_peak_memory`` (bytes),
``first_load_time`` / ``warm_load_time`` (microseconds) and, when present, ``all_inference_times``
(microseconds, every timed inference: the samples). ``execution_detail`` lists the layers with the
``compute_unit`` each ran on. Without ``all_inference_times`` the row is aggregate-only and has only
its minimum.
"""

from __future__ import annotations

import collections
from pathlib import Path

from bench.core.importers import Format, ImportFailure, Measurement, json_line, json_number, load_json, unit_of

TOOL = "qai-hub-profile"


def sniff(text: str, path: Path) -> bool:
    return text.lstrip().startswith("{") and '"execution_summary"' in text


def parse(path: Path, text: str) -> list[Measurement]:
    data = load_json(path, text)
    summary = data.get("execution_summary") if isinstance(data, dict) else None
    where = json_line(text, "execution_summary")
    if not isinstance(summary, dict):
        raise ImportFailure(path, where, "not an AI Hub profile (no execution_summary object)")
    m = Measurement(tool=TOOL, source=path, line=where)
    times = summary.get("all_inference_times")
    if times is not None:
        line = json_line(text, "all_inference_times")
        if not isinstance(times, list) or not times:
            raise ImportFailure(path, line, "all_inference_times is not a non-empty list")
        m.samples_ms = [json_number(t, path, line, "all_inference_times entry (us)") / 1e3 for t in times]
    if "estimated_inference_time" in summary:
        line = json_line(text, "estimated_inference_time")
        estimate = json_number(summary["estimated_inference_time"], path, line, "estimated_inference_time (us)") / 1e3
        m.detail["estimated_inference_time_ms"] = estimate
        if m.samples_ms is None:
            m.stats["latency_min_ms"] = estimate
            m.headline = "min"
    elif m.samples_ms is None:
        raise ImportFailure(path, where, "truncated: neither estimated_inference_time nor all_inference_times")
    if "estimated_inference_peak_memory" in summary:
        line = json_line(text, "estimated_inference_peak_memory")
        m.peak_rss_mb = (
            json_number(summary["estimated_inference_peak_memory"], path, line, "peak memory (bytes)") / 2**20
        )
    for key in ("first_load_time", "warm_load_time", "compile_time"):
        if summary.get(key) is not None:
            m.detail[f"{key}_ms"] = json_number(summary[key], path, json_line(text, key), f"{key} (us)") / 1e3
    if "warm_load_time_ms" in m.detail:
        m.load_s = float(m.detail["warm_load_time_ms"]) / 1000.0  # type: ignore[arg-type]
    layers = data.get("execution_detail")
    if isinstance(layers, list):
        units = collections.Counter(str(layer.get("compute_unit", "")) for layer in layers if isinstance(layer, dict))
        if units:
            m.unit = unit_of(units.most_common(1)[0][0])
            m.detail["compute_units"] = ",".join(f"{u}:{n}" for u, n in units.most_common())
    return [m]


FORMATS = [Format("qai-hub-profile", TOOL, "Qualcomm AI Hub profile JSON", sniff, parse)]
