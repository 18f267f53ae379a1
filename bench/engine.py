"""``bench run``: measure models on one backend, the same way every time, keeping every sample.

Flow per workload (model x resolution x batch): build (seeded) -> reference logits (torch fp32 eager)
-> prepare (export/convert, cached) -> load -> first inference (cold) -> parity check -> warmup ->
steady state. Each row is flushed to ``results/<run>/`` as soon as it is measured.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

import models
from bench import environment, memory
from bench.backends import PRECISIONS, Backend, Session, Workload, get_backend
from bench.errors import BenchError
from bench.parity import check_parity
from bench.results import (
    STATUS_FAILED,
    STATUS_NOT_TIMED,
    STATUS_OK,
    STATUS_PARITY_FAILED,
    RunWriter,
    completed_keys,
)
from bench.selection import positive_int, positive_int_list, select_models
from bench.stats import summarize, throughput
from bench.timing import LoopLimits, timed_loop

DEFAULT_CACHE = Path(os.environ.get("BENCH_CACHE_DIR", ".cache/bench"))
COREML_UNITS = ("ALL", "CPU_ONLY", "CPU_AND_GPU", "CPU_AND_NE")
DEFAULT_WARMUP = LoopLimits(min_iters=10, min_time_s=1.0, max_time_s=60.0)
DEFAULT_STEADY = LoopLimits(min_iters=50, min_time_s=2.0, max_time_s=60.0)


def default_threads() -> int:
    """Physical cores: what ONNX Runtime picks by default, and what latency papers usually pin."""
    import psutil

    return psutil.cpu_count(logical=False) or os.cpu_count() or 1


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.epilog = "exit status: 0 all rows measured, 1 some rows failed or nothing could be timed, 2 bad input"
    p.add_argument("--backend", default="onnx", help="torch, onnx or coreml (default: onnx)")
    p.add_argument("--models", default="paper", help="names, family ids (e.g. casvit), 'paper' (default) or 'all'")
    p.add_argument("--device", default="cpu", help="cpu or cuda (torch; onnx with onnxruntime-gpu)")
    p.add_argument("--batch-sizes", default="1", help="comma-separated batch sizes (default: 1)")
    p.add_argument("--resolution", default=None, help="input size; default: each model's published resolution")
    w, m = DEFAULT_WARMUP, DEFAULT_STEADY
    p.add_argument("--warmup", default=str(w.min_iters), help=f"minimum warmup iterations (default: {w.min_iters})")
    p.add_argument("--warmup-time", type=float, default=w.min_time_s, help=f"min warmup s (default: {w.min_time_s})")
    p.add_argument("--iters", default=str(m.min_iters), help=f"minimum timed iterations (default: {m.min_iters})")
    p.add_argument("--min-time", type=float, default=m.min_time_s, help=f"minimum timed s (default: {m.min_time_s})")
    p.add_argument("--max-time", type=float, default=m.max_time_s, help=f"max timed s (default: {m.max_time_s})")
    p.add_argument(
        "--rounds",
        default="3",
        help="split warmup and timing into N rounds interleaved across workloads (default: 3)",
    )
    p.add_argument(
        "--threads",
        default=None,
        help=f"intra-op threads (default: physical cores, here {default_threads()})",
    )
    p.add_argument("--precision", default="fp32", help="fp32, fp16 or bf16 (torch autocast; onnx fp16 on cuda)")
    p.add_argument("--channels-last", action="store_true", help="torch: NHWC model and input")
    p.add_argument("--compile", action="store_true", help="torch: run torch.compile(model) (compiled in warmup)")
    p.add_argument("--checkpoint", type=Path, default=None, help="weights to load (a single model only)")
    p.add_argument("--single-head", action="store_true", help="drop the distillation head (deployable network)")
    p.add_argument("--out", type=Path, default=Path("results"), help="results directory (default: results/)")
    p.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE, help=f"export cache (default: {DEFAULT_CACHE})")
    p.add_argument("--resume", action="store_true", help="skip rows already measured with these settings here")
    p.add_argument("--seed", default="0", help="seed for weights and inputs (default: 0)")
    p.add_argument(
        "--onnx-exporter", default="dynamo", help="dynamo (default, torch.export based) or torchscript (legacy, faster)"
    )
    p.add_argument("--onnx-graph-opt", default="all", help="ORT graph optimization: disable, basic, extended, all")
    p.add_argument("--coreml-units", default="ALL", help=f"Core ML compute units: {', '.join(COREML_UNITS)}")
    p.add_argument("--no-oom-retry", action="store_true", help="on CUDA out-of-memory, do not retry smaller batches")
    p.add_argument("--no-flops", action="store_true", help="skip the fvcore GMACs count per model")
    p.add_argument("--report", action="store_true", help="write tables and plots to --report-dir after the run")
    p.add_argument("--report-dir", type=Path, default=Path("reports"), help="where --report writes (default: reports/)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


@dataclass(frozen=True)
class Settings:
    """What a run measures and how; :func:`parse_settings` builds it from the command line, checking
    every value before any model is built (the defaults here are for programmatic use)."""

    backend: str
    model_names: tuple[str, ...]
    batch_sizes: tuple[int, ...] = (1,)
    resolution: int | None = None
    device: str = "cpu"
    limits_warmup: LoopLimits = DEFAULT_WARMUP
    limits_steady: LoopLimits = DEFAULT_STEADY
    threads: int = 1
    precision: str = "fp32"
    channels_last: bool = False
    compile: bool = False
    checkpoint: str | None = None
    single_head: bool = False
    seed: int = 0
    options: tuple[tuple[str, str], ...] = ()
    oom_retry: bool = True
    rounds: int = 1

    def workloads(self) -> Iterator[Workload]:
        for name in self.model_names:
            resolution = self.resolution or models.get_card(name).default_resolution
            for batch in self.batch_sizes:
                yield self.workload(name, batch, resolution)

    def workload(self, name: str, batch: int, resolution: int) -> Workload:
        return Workload(
            model_name=name,
            batch_size=batch,
            resolution=resolution,
            device=self.device,
            precision=self.precision,
            threads=self.threads,
            channels_last=self.channels_last,
            compile=self.compile,
            options=self.options,
        )

    def key(self, workload: Workload) -> str:
        """Identifies a row for ``--resume``: the workload plus everything that changes the measurement."""
        payload = {
            "workload": asdict(workload),
            "backend": self.backend,
            "warmup": asdict(self.limits_warmup),
            "steady": asdict(self.limits_steady),
            "rounds": self.rounds,
            "checkpoint": self.checkpoint,
            "single_head": self.single_head,
            "seed": self.seed,
        }
        return hashlib.sha1(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _non_negative(value: float, flag: str) -> float:
    if not math.isfinite(value) or value < 0:
        raise BenchError(f"{flag} must be a non-negative number of seconds, got {value}")
    return value


def parse_settings(args: argparse.Namespace) -> Settings:
    backend = get_backend(args.backend)  # unknown backend -> BenchError
    if args.device not in backend.devices:
        raise BenchError(
            f"unknown device {args.device!r} for backend {args.backend}; choose {', '.join(backend.devices)}"
        )
    if args.precision not in PRECISIONS:
        raise BenchError(f"unknown precision {args.precision!r}; choose {', '.join(PRECISIONS)}")
    if args.coreml_units not in COREML_UNITS:
        raise BenchError(f"unknown Core ML compute units {args.coreml_units!r}; choose {', '.join(COREML_UNITS)}")
    names = tuple(select_models(args.models))
    resolution = positive_int(args.resolution, "--resolution") if args.resolution is not None else None
    if resolution is not None:
        for name in names:
            models.check_resolution(models.get_card(name), resolution)
    max_time = _non_negative(args.max_time, "--max-time")
    if max_time == 0:
        raise BenchError("--max-time must be positive")
    checkpoint = None
    if args.checkpoint is not None:
        if len(names) != 1:
            raise BenchError("--checkpoint needs exactly one model in --models")
        checkpoint = str(args.checkpoint)
    options = (
        ("exporter", args.onnx_exporter),
        ("graph_opt", args.onnx_graph_opt),
        ("compute_units", args.coreml_units),
    )
    settings = Settings(
        backend=args.backend,
        model_names=names,
        device=args.device,
        batch_sizes=tuple(positive_int_list(args.batch_sizes, "--batch-sizes")),
        resolution=resolution,
        limits_warmup=LoopLimits(
            positive_int(args.warmup, "--warmup"), _non_negative(args.warmup_time, "--warmup-time"), max_time
        ),
        limits_steady=LoopLimits(
            positive_int(args.iters, "--iters"), _non_negative(args.min_time, "--min-time"), max_time
        ),
        threads=positive_int(args.threads, "--threads") if args.threads is not None else default_threads(),
        precision=args.precision,
        channels_last=args.channels_last,
        compile=args.compile,
        checkpoint=checkpoint,
        single_head=args.single_head,
        seed=int(args.seed) if str(args.seed).isdigit() else _bad_seed(args.seed),
        options=options,
        oom_retry=not args.no_oom_retry,
        rounds=positive_int(args.rounds, "--rounds"),
    )
    first = next(settings.workloads())
    backend.check(first)  # e.g. --device cuda without a GPU: fail before any work
    if checkpoint is not None:
        build_model(settings, first.model_name, first.resolution)  # a missing or unfit checkpoint is bad input
    return settings


def _bad_seed(value: str) -> int:
    raise BenchError(f"--seed must be a non-negative integer, got {value!r}")


# ------------------------------------------------------------------------------------------- measuring


def build_model(settings: Settings, name: str, resolution: int) -> nn.Module:
    torch.manual_seed(settings.seed)  # the same weights whatever the model order
    return models.create_model(
        name,
        checkpoint=settings.checkpoint,
        distillation=False if settings.single_head else None,
        img_size=resolution,
    )


def model_facts(model: nn.Module, resolution: int, count_flops: bool, cache_dir: Path) -> dict[str, object]:
    """Parameters (M) and fvcore GMACs per image; GMACs are cached on disk by architecture and size."""
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    gmacs = None
    if count_flops:
        cache = Path(cache_dir) / "gmacs.json"
        key = hashlib.sha1(f"{model!r}|{resolution}".encode()).hexdigest()[:16]
        try:
            known = json.loads(cache.read_text())
        except (OSError, ValueError):
            known = {}
        if not isinstance(known.get(key), float):
            from bench.flops import fvcore_gmacs

            known[key] = round(fvcore_gmacs(model, resolution), 4)
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_name(f"{cache.name}.{os.getpid()}")
            tmp.write_text(json.dumps(known, indent=0, sort_keys=True))
            os.replace(tmp, cache)
        gmacs = known[key]
    return {"param_count": round(params / 1e6, 4), "infer_gmacs": gmacs}


def is_out_of_memory(exc: BaseException) -> bool:
    return isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower()


def smaller_batch(batch: int) -> int:
    """Next batch size down on the ladder 1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, ... (0 when none is left)."""
    ladder = sorted({m << k for k in range(32) for m in (2, 3)} | {1})
    lower = [b for b in ladder if b < batch]
    return lower[-1] if lower else 0


@dataclass
class OpenWorkload:
    """A workload that passed parity and is ready to be timed, round after round."""

    workload: Workload
    row: dict[str, object]
    session: Session
    warmup_samples: list[float] = field(default_factory=list)
    samples_ms: list[float] = field(default_factory=list)
    device_ms: list[float] = field(default_factory=list)
    warmup_s: float = 0.0
    measure_s: float = 0.0


class Measurer:
    """Opens workloads on one backend (prepare, load, cold run, parity), times them, builds their rows."""

    def __init__(self, settings: Settings, backend: Backend, cache_dir: Path, progress) -> None:
        self.settings = settings
        self.backend = backend
        self.cache_dir = cache_dir
        self.progress = progress

    def phase(self, workload: Workload, name: str) -> None:
        self.progress.set_postfix_str(f"{workload.model_name} b{workload.batch_size} {name}")

    def open(self, model: nn.Module, workload: Workload) -> tuple[dict[str, object], Session | None]:
        """Everything before timing; the session is None when the row is already final (not timed)."""
        row: dict[str, object] = {}
        x = np.random.default_rng(self.settings.seed).standard_normal(workload.input_shape, dtype=np.float32)
        with torch.inference_mode():
            reference = model(torch.from_numpy(x)).float().numpy()

        self.phase(workload, "prepare")
        t0 = time.perf_counter()
        prepared = self.backend.prepare(model, workload, self.cache_dir)
        row["prepare_s"] = time.perf_counter() - t0
        row["runtime_detail"] = json.dumps(prepared.detail, sort_keys=True)
        if not self.backend.can_time_here:
            row["status"] = STATUS_NOT_TIMED
            row["error"] = f"{self.backend.name} timing needs macOS; model converted and validated only"
            return row, None

        self.phase(workload, "load")
        t0 = time.perf_counter()
        session = self.backend.load(model, prepared, workload, x)
        row["load_s"] = time.perf_counter() - t0
        try:
            self.phase(workload, "first inference")
            t0 = time.perf_counter()
            session.run()
            row["first_inference_ms"] = (time.perf_counter() - t0) * 1e3
            parity = check_parity(reference, session.predict(x), workload.precision)
        except BaseException:
            session.close()
            raise
        row.update(parity.as_row())
        row["runtime_detail"] = json.dumps({**prepared.detail, **session.detail}, sort_keys=True)
        if not parity.ok:
            session.close()
            row["status"] = STATUS_PARITY_FAILED
            row["error"] = parity.describe()
            return row, None
        return row, session

    def time_round(self, opened: OpenWorkload, rounds: int) -> None:
        """One round: a share of the warmup, then a share of the steady-state budget, samples appended.

        Peak memory is taken over the first round (per workload, whatever else is open).
        """
        workload, session, first = opened.workload, opened.session, not opened.samples_ms
        cuda = workload.device == "cuda"
        if first:
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            memory.reset_peak()
        warm_limits, steady_limits = (
            _share(lim, rounds) for lim in (self.settings.limits_warmup, self.settings.limits_steady)
        )
        self.phase(workload, "warmup")
        warm = timed_loop(session.run, warm_limits)
        self.phase(workload, "measure")
        steady = timed_loop(session.run, steady_limits, session.timed_run_ms)
        opened.warmup_samples += warm.samples_ms
        opened.samples_ms += steady.samples_ms
        opened.device_ms += steady.device_ms
        opened.warmup_s += warm.elapsed_s
        opened.measure_s += steady.elapsed_s
        if first:
            opened.row["peak_rss_mb"] = round(memory.peak_rss_mb(), 1)
            if cuda:
                opened.row["cuda_max_allocated_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)

    def finish(self, opened: OpenWorkload) -> tuple[dict[str, object], list[float]]:
        opened.session.close()
        row, workload = opened.row, opened.workload
        stats = summarize(opened.samples_ms)
        row.update(stats)
        row.update(
            status=STATUS_OK,
            iterations=len(opened.samples_ms),
            warmup_iterations=len(opened.warmup_samples),
            warmup_s=opened.warmup_s,
            measure_s=opened.measure_s,
            infer_step_time=stats["latency_mean_ms"],
            infer_samples_per_sec=throughput(workload.batch_size, stats["latency_mean_ms"]),
            throughput_median_ips=throughput(workload.batch_size, stats["latency_median_ms"]),
        )
        if opened.device_ms:
            row["cuda_event_median_ms"] = float(np.median(opened.device_ms))
        return row, opened.samples_ms

    def measure(self, model: nn.Module, workload: Workload) -> tuple[dict[str, object], list[float]]:
        """Open and time one workload on its own (all rounds back to back)."""
        row, session = self.open(model, workload)
        if session is None:
            return row, []
        opened = OpenWorkload(workload, row, session)
        try:
            for _ in range(self.settings.rounds):
                self.time_round(opened, self.settings.rounds)
        except BaseException:
            session.close()
            raise
        return self.finish(opened)

    def open_with_retry(self, model: nn.Module, workload: Workload, retry: bool):
        """On CUDA out-of-memory, step the batch down (and say so) instead of losing the row."""
        requested = workload.batch_size
        while True:
            try:
                row, session = self.open(model, workload)
                if workload.batch_size != requested:
                    row["error"] = f"batch reduced from {requested} after CUDA out-of-memory"
                return workload, row, session
            except (RuntimeError, MemoryError) as exc:
                smaller = smaller_batch(workload.batch_size)
                if not (retry and workload.device == "cuda" and is_out_of_memory(exc) and smaller):
                    raise
                self.progress.write(
                    f"{workload.model_name}: out of memory at batch {workload.batch_size}, retrying at {smaller}",
                    file=sys.stderr,
                )
                torch.cuda.empty_cache()
                workload = self.settings.workload(workload.model_name, smaller, workload.resolution)


def _share(limits: LoopLimits, rounds: int) -> LoopLimits:
    """Split a loop budget over ``rounds`` (at least one iteration per round)."""
    return LoopLimits(
        max(1, math.ceil(limits.min_iters / rounds)), limits.min_time_s / rounds, limits.max_time_s / rounds
    )


def base_row(settings: Settings, workload: Workload, env_id: str) -> dict[str, object]:
    key = settings.key(workload)
    return {
        "model": workload.model_name,
        "family": models.get_card(workload.model_name).family,
        "infer_img_size": workload.resolution,
        "infer_batch_size": workload.batch_size,
        "backend": settings.backend,
        "device": workload.device,
        "precision": workload.precision,
        "threads": workload.threads,
        "channels_last": workload.channels_last,
        "compile": workload.compile,
        "backend_options": json.dumps(dict(workload.options), sort_keys=True),
        "settings_key": key,
        "env_id": env_id,
        "row_id": f"{workload.model_name}|b{workload.batch_size}|r{workload.resolution}|{key}",
    }


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


def run(settings: Settings, out: Path, cache_dir: Path, resume: bool, count_flops: bool, show_progress: bool):
    """Measure every workload; returns (run directory, list of summary rows).

    All workloads are opened first (export, load, parity), then timed in ``settings.rounds``
    interleaved rounds, so slow drifts of a shared machine spread over every model instead of
    landing on whichever model happened to be running. A row is written as soon as its last round ends.
    """
    from tqdm import tqdm

    backend = get_backend(settings.backend)
    done = completed_keys(out) if resume else set()
    env = environment.collect({"backend": settings.backend, "device": settings.device, "threads": settings.threads})
    env_id = str(env["env_id"])
    writer = RunWriter.create(
        out, f"{settings.backend}-{settings.device}", {**env, "backend_versions": backend.versions()}
    )
    torch.set_num_threads(settings.threads)

    workloads = list(settings.workloads())
    rows: list[dict[str, object]] = []
    progress = tqdm(total=len(workloads), disable=not show_progress, unit="workload", file=sys.stderr)
    measurer = Measurer(settings, backend, cache_dir, progress)

    def record(row: dict[str, object], samples: list[float]) -> None:
        row["timestamp"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        writer.add(row, samples)
        rows.append(row)
        progress.update()

    def record_failure(row: dict[str, object], workload: Workload, exc: Exception) -> None:
        row.update(status=STATUS_FAILED, error=one_line(exc))
        progress.write(f"{workload.model_name} batch {workload.batch_size}: failed: {row['error']}", file=sys.stderr)
        record(row, [])

    opened: list[OpenWorkload] = []
    built: tuple[tuple[str, int], nn.Module, dict[str, object]] | None = None
    try:
        for workload in workloads:
            row = base_row(settings, workload, env_id)
            if (row["settings_key"], env_id) in done:
                progress.write(f"{workload.model_name} batch {workload.batch_size}: already measured (--resume)")
                progress.update()
                continue
            try:
                ident = (workload.model_name, workload.resolution)
                if built is None or built[0] != ident:
                    measurer.phase(workload, "build")
                    model = build_model(settings, *ident)
                    built = (ident, model, model_facts(model, workload.resolution, count_flops, cache_dir))
                row.update(built[2])
                actual, result, session = measurer.open_with_retry(built[1], workload, settings.oom_retry)
                row.update(result, infer_batch_size=actual.batch_size)
            except Exception as exc:  # one model failing (export error, OOM) must not end the run
                record_failure(row, workload, exc)
                continue
            if session is None:
                record(row, [])
            else:
                opened.append(OpenWorkload(actual, row, session))
        built = None
        for round_index in range(settings.rounds):
            for item in list(opened):
                try:
                    measurer.time_round(item, settings.rounds)
                except Exception as exc:
                    item.session.close()
                    opened.remove(item)
                    record_failure(item.row, item.workload, exc)
                    continue
                if round_index == settings.rounds - 1:
                    record(*measurer.finish(item))
    finally:
        for item in opened:
            item.session.close()
        progress.close()
    return writer.directory, rows


SUMMARY_VIEW = {
    "model": "model",
    "infer_batch_size": "batch",
    "infer_img_size": "res",
    "status": "status",
    "latency_median_ms": "median_ms",
    "latency_p90_ms": "p90_ms",
    "latency_cv": "cv",
    "throughput_median_ips": "img/s",
    "param_count": "params_M",
    "infer_gmacs": "GMACs",
    "parity_max_abs_diff": "parity_max_abs",
}


def summary_table(rows: list[dict[str, object]]) -> str:
    import pandas as pd

    from bench.formatting import text_table

    df = pd.DataFrame(rows).reindex(columns=list(SUMMARY_VIEW)).rename(columns=SUMMARY_VIEW)
    return text_table(df.astype({c: float for c in ("median_ms", "p90_ms", "cv", "img/s") if c in df}), 3)


def main(args: argparse.Namespace) -> int:
    settings = parse_settings(args)
    run_dir, rows = run(
        settings,
        out=args.out,
        cache_dir=args.cache_dir,
        resume=args.resume,
        count_flops=not args.no_flops,
        show_progress=not args.no_progress,
    )
    if rows:
        print(summary_table(rows))
    print(f"results: {run_dir}")
    if args.report:
        from bench.report import write_report

        for path in write_report([run_dir], args.report_dir):
            print(f"report: {path}")
    statuses = [r["status"] for r in rows]
    if statuses and all(s == STATUS_NOT_TIMED for s in statuses):
        print(
            f"error: {settings.backend} timing needs macOS: {len(rows)} workload(s) converted and validated here, "
            "none timed",
            file=sys.stderr,
        )
        return 1
    failed = sum(s != STATUS_OK for s in statuses)
    if failed:
        print(
            f"{failed} of {len(rows)} workload(s) did not produce a measurement (see the error column)",
            file=sys.stderr,
        )
        return 1
    return 0
