"""Does the suite's latency agree with the runtimes' own benchmark tools? (not a unit test: minutes)

    python tests/scripts/native_agreement.py                       # paper set, openvino and litert, 2 threads
    python tests/scripts/native_agreement.py --models casvit_xs --runtimes litert --rounds 3
    python tests/scripts/native_agreement.py --precision int8 --models casvit_xs,casvit_s

For each runtime and model, the suite prepares the artifact exactly as ``bench run`` does (the same
export cache) and opens its session; then, in one sitting, rounds alternate between the suite timing
that session (``--warmup`` untimed then ``--iters`` timed calls of ``Session.run``, the median) and
the vendor tool timing the same artifact file with the same thread count in a subprocess:

  OpenVINO: ``benchmark_app -m model.xml -d CPU -hint none -nstreams 1 -nthreads N -api sync -pin P
            -niter K -report_type no_counters -report_folder DIR`` (``latency (ms)`` of its CSV: the median;
            ``-pin`` set to what the suite's compiled model reports, so pinning is not the difference)
  LiteRT:   ``litert-benchmark --model X.tflite --num_threads N --num_runs K --warmup_runs W --result_json F``
            (``latency.median_ms``)

Which side goes first alternates by round. Per model the ratio suite/tool is the quotient of the two
sides' headlines (mean of the fastest third of rounds) with its bootstrap interval
(``bench.core.measure.stats.ratio_headline``, as the runtime ratios of bench/core/report/ratios.py); target 0.95-1.05.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

LOW, HIGH = 0.95, 1.05
TOOLS = {"openvino": "benchmark_app", "litert": "litert-benchmark"}


def _tool(name: str) -> str:
    """The tool next to this Python (the extras install it into the same environment), else on PATH."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        raise SystemExit(f"error: {name} not found (install the suite's extras: pip install -e '.[all]')")
    return found


def openvino_median(
    artifact: Path, threads: int, iters: int, pinning: str, work: Path, precision: str
) -> tuple[float, str]:
    """(median ms, the tool's own word on threads/streams/pinning) from one benchmark_app run, with the suite's
    precision hint (without one it would pick bf16 on a CPU that has it)."""
    from bench.backends.openvino import HINTS, XML

    folder = Path(tempfile.mkdtemp(dir=work))
    cmd = [_tool("benchmark_app"), "-m", str(artifact / XML), "-d", "CPU", "-hint", "none", "-nstreams", "1"]
    cmd += ["-nthreads", str(threads), "-api", "sync", "-niter", str(iters), "-pin", pinning, "-infer_precision"]
    cmd += [HINTS[precision]]
    cmd += ["-report_type", "no_counters", "-report_folder", str(folder)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    report = folder / "benchmark_report.csv"
    if proc.returncode != 0 or not report.exists():
        raise RuntimeError(f"benchmark_app failed: {(proc.stderr or proc.stdout).strip().splitlines()[-1:]}")
    with report.open() as f:
        values = {row[0].strip(): row[1].strip() for row in csv.reader(f, delimiter=";") if len(row) >= 2}
    said = [line.split("]", 1)[-1].strip() for line in proc.stdout.splitlines()]
    facts = [s for s in said if s.split(":")[0] in ("INFERENCE_NUM_THREADS", "NUM_STREAMS", "ENABLE_CPU_PINNING")]
    return float(values["latency (ms)"]), ", ".join(dict.fromkeys(facts))


def litert_median(artifact: Path, threads: int, iters: int, warmup: int, work: Path) -> tuple[float, str]:
    out = work / "litert.json"
    cmd = [_tool("litert-benchmark"), "--model", str(artifact), "--num_threads", str(threads)]
    cmd += ["--num_runs", str(iters), "--warmup_runs", str(warmup), "--result_json", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0 or not out.exists():
        raise RuntimeError(f"litert-benchmark failed: {(proc.stderr or proc.stdout).strip().splitlines()[-1:]}")
    result = json.loads(out.read_text())
    return float(result["latency"]["median_ms"]), f"num_threads={result.get('num_threads')}"


def suite_median(session, iters: int, warmup: int) -> float:
    """What a round of ``bench run`` times: the bound session's ``run`` (input already in place)."""
    for _ in range(warmup):
        session.run()
    samples = []
    for _ in range(iters):
        t0 = time.perf_counter()
        session.run()
        samples.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(samples))


def agreement(runtime: str, name: str, args: argparse.Namespace, work: Path) -> dict[str, object]:
    import torch

    import models
    from bench.backends import Workload, available_backend
    from bench.core.interface.sessions import open_session
    from bench.core.measure.stats import headline, ratio_headline

    backend = available_backend(runtime)
    torch.manual_seed(0)
    resolution = models.get_card(name).default_resolution
    model = models.create_model(name, img_size=resolution)
    workload = Workload(
        model_name=name, batch_size=1, resolution=resolution, threads=args.threads, precision=args.precision
    )
    opened = open_session(backend, model, workload, args.cache)  # as bench run: cache, parity, rebuild
    session, prepared = opened.require(), opened.prepared
    pinning = "YES" if str(opened.detail.get("cpu_pinning", "")).lower() in ("true", "yes") else "NO"
    suite, tool, facts = [], [], ""
    try:
        session.run()
        time.sleep(args.pause)
        for r in range(args.rounds):
            order = ("suite", "tool") if r % 2 == 0 else ("tool", "suite")
            got: dict[str, float] = {}
            for side in order:
                if side == "suite":
                    got[side] = suite_median(session, args.iters, args.warmup)
                elif runtime == "openvino":
                    got[side], facts = openvino_median(
                        prepared.artifact, args.threads, args.iters, pinning, work, args.precision
                    )
                else:
                    got[side], facts = litert_median(prepared.artifact, args.threads, args.iters, args.warmup, work)
                time.sleep(args.pause)  # idle pools of the other side settle
            suite.append(got["suite"])
            tool.append(got["tool"])
    finally:
        session.close()
    h = ratio_headline(suite, tool)
    return {
        "runtime": runtime,
        "model": name,
        "suite_ms": headline(suite).value,
        "tool_ms": headline(tool).value,
        "ratio": h.value,
        "low": h.low,
        "high": h.high,
        "suite_detail": {k: v for k, v in opened.detail.items() if "thread" in k or "pin" in k or "hint" in k},
        "tool_said": facts,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="paper", help="as bench run --models (default: paper)")
    parser.add_argument("--runtimes", default=",".join(TOOLS), help="openvino, litert or both (default: both)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--precision", default="fp32", help="fp32 or int8 (both sides time the same artifact)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--iters", type=int, default=50, help="timed calls per round and side")
    parser.add_argument("--warmup", type=int, default=10, help="untimed calls per round and side")
    parser.add_argument("--pause", type=float, default=0.2, help="seconds between sides")
    parser.add_argument("--cache", type=Path, default=None, help="export cache (default: bench run's)")
    args = parser.parse_args()

    from bench.core.arguments import default_cache_dir, select_models
    from bench.core.errors import BenchError

    args.cache = args.cache or default_cache_dir()
    runtimes = [r.strip() for r in args.runtimes.split(",") if r.strip()]
    unknown = [r for r in runtimes if r not in TOOLS]
    if unknown or not runtimes:
        parser.error(f"--runtimes: choose from {', '.join(TOOLS)} (got {args.runtimes!r})")
    try:
        names = select_models(args.models)
    except BenchError as exc:
        parser.error(str(exc))
    results, failures = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for runtime in runtimes:
            for name in names:
                try:
                    results.append(agreement(runtime, name, args, Path(tmp)))
                except (BenchError, RuntimeError) as exc:
                    failures.append(f"{runtime} {name}: {exc}")
                    continue
                r = results[-1]
                inside = LOW <= r["ratio"] <= HIGH
                print(
                    f"{runtime:9s} {name:22s} suite {r['suite_ms']:8.3f} ms  tool {r['tool_ms']:8.3f} ms  "
                    f"suite/tool {r['ratio']:.3f} [{r['low']:.3f}-{r['high']:.3f}]  {'ok' if inside else 'OUTSIDE'}",
                    flush=True,
                )
                print(f"{'':9s} suite: {json.dumps(r['suite_detail'], sort_keys=True)}; tool: {r['tool_said']}")
    inside = sum(LOW <= r["ratio"] <= HIGH for r in results)
    setup = f"{args.precision}, threads {args.threads}, {args.rounds} rounds"
    print(f"\nsuite/tool within {LOW}-{HIGH}: {inside} of {len(results)} ({setup})")
    for line in failures:
        print(f"failed: {line}")
    return 0 if results and inside == len(results) and not failures else 1


if __name__ == "__main__":
    sys.exit(main())
