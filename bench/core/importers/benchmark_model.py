"""The TFLite / LiteRT ``benchmark_model`` binary's text log (stdout, or ``adb logcat`` lines).

What it prints (tensorflow/lite/tools/benchmark/benchmark_model.cc and benchmark_tflite_model.cc):
the parameters (``Graph: [...]``, ``Num threads: [...]``), one ``count= first= curr= min= max= avg=
std=`` line per phase in microseconds (warmup first, then the timed runs; ``count=N curr=X`` when
every run took the same time), the summary ``Inference timings in us: Init: ..., First inference:
..., Warmup (avg): ..., Inference (avg): ...`` and the memory-footprint lines in MB. It prints no
percentiles and keeps no per-run times: rows are aggregate-only, led by the mean.
"""

from __future__ import annotations

import re
from pathlib import Path

from bench.core.importers import Format, ImportFailure, Measurement, number

TOOL = "benchmark_model"
_PREFIX = re.compile(r"^(?:\S+\s+\S+\s+\d+\s+\d+\s+[VDIWEF]\s+[^:]*:\s*|[A-Z]+:\s+|[IWE]\s+[^:]*:\s+)?")
_STAT = re.compile(
    r"^count=(\d+)(?: first=(\S+))? curr=(\S+)(?: min=(\S+) max=(\S+) avg=(\S+) std=(\S+))?(?: \(all same\))?$"
)
_SUMMARY = re.compile(
    r"^Inference timings in us: Init: (\S+), First inference: (\S+), Warmup \(avg\): (\S+), Inference \(avg\): (\S+)$"
)
_PARAM = re.compile(r"^(Graph|Num threads|Use xnnpack|Use gpu|Use NNAPI|Min num runs|Min warmup runs)\s*:\s*\[(.*)\]$")
_MEMORY = re.compile(
    r"^(?:Memory footprint delta from the start of the tool|Peak memory footprint) \(MB\): init=(\S+) overall=(\S+)$"
)
_PEAK = re.compile(r"^Overall peak memory footprint \(MB\) via periodic monitoring: (\S+)$")


def _message(line: str) -> str:
    return _PREFIX.sub("", line.strip(), count=1).strip()


def sniff(text: str, path: Path) -> bool:
    messages = {_message(line).split(":", 1)[0] for line in text.splitlines()[:2000]}
    return "Inference timings in us" in messages or {"Min num runs", "Graph"} <= messages


def parse(path: Path, text: str) -> list[Measurement]:
    stats: list[tuple[int, re.Match[str]]] = []
    summary: tuple[int, re.Match[str]] | None = None
    params: dict[str, str] = {}
    m = Measurement(tool=TOOL, source=path, line=1, headline="mean")
    for line_no, raw in enumerate(text.splitlines(), start=1):
        msg = _message(raw)
        if match := _STAT.match(msg):
            stats.append((line_no, match))
        elif match := _SUMMARY.match(msg):
            summary = (line_no, match)
        elif match := _PARAM.match(msg):
            params.setdefault(match.group(1), match.group(2))
            m.line = m.line if m.line > 1 else line_no
        elif match := _MEMORY.match(msg):
            m.detail["memory_init_mb"] = number(match.group(1), path, line_no, "init memory (MB)")
            m.detail["memory_overall_mb"] = number(match.group(2), path, line_no, "overall memory (MB)")
        elif match := _PEAK.match(msg):
            m.peak_rss_mb = number(match.group(1), path, line_no, "peak memory footprint (MB)")
        elif msg.startswith("Inference timings in us") or (msg.startswith("count=") and "curr=" in msg):
            raise ImportFailure(path, line_no, f"garbled benchmark_model line {msg[:70]!r}")
    last = len(text.splitlines())
    if summary is None:
        raise ImportFailure(path, last, "truncated: no 'Inference timings in us' summary (did benchmark_model finish?)")
    line_no, match = summary
    init, first, warmup_avg, inference_avg = (
        number(v, path, line_no, what)
        for v, what in zip(match.groups(), ("Init", "First inference", "Warmup (avg)", "Inference (avg)"), strict=True)
    )
    m.load_s = init / 1e6
    m.first_inference_ms = first / 1e3
    m.stats["latency_mean_ms"] = inference_avg / 1e3
    m.detail["warmup_avg_ms"] = warmup_avg / 1e3
    timed = [s for s in stats if s[0] < line_no]
    if timed:  # the last count= line before the summary is the timed phase; the one before it the warmup
        stat_line, stat = timed[-1]
        count = int(stat.group(1))
        curr = number(stat.group(3), path, stat_line, "curr (us)")
        low, high, avg, std = (stat.group(i) for i in (4, 5, 6, 7))
        if avg is None:  # every run took the same time
            low = high = avg = str(curr)
            std = "0"
        values = [
            number(v, path, stat_line, what) / 1e3
            for v, what in ((low, "min (us)"), (high, "max (us)"), (std, "std (us)"))
        ]
        m.stats.update(latency_min_ms=values[0], latency_max_ms=values[1], latency_std_ms=values[2])
        if abs(number(avg, path, stat_line, "avg (us)") - inference_avg) > 1e-6 * max(1.0, inference_avg):
            raise ImportFailure(path, stat_line, "the timed runs' avg= differs from 'Inference (avg)' in the summary")
        m.iterations = count
        if len(timed) >= 2:
            m.warmup_iterations = int(timed[-2][1].group(1))
    graph = params.get("Graph")
    m.artifact = graph or None
    if params.get("Num threads", "-1") not in ("", "-1"):  # -1: the platform's default
        m.threads = int(number(params["Num threads"], path, m.line, "Num threads", whole=True)) or None
    delegates = [k for k in ("Use gpu", "Use NNAPI") if params.get(k, "").lower() in ("1", "true")]
    m.unit = "gpu" if "Use gpu" in delegates else ("npu" if delegates else "cpu")
    for key in ("Use xnnpack", "Use gpu", "Use NNAPI"):
        if key in params:
            m.detail[key.lower().replace(" ", "_")] = params[key]
    return [m]


FORMATS = [Format("tflite-benchmark-model", TOOL, "TFLite/LiteRT benchmark_model text log", sniff, parse)]
