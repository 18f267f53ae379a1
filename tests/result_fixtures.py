"""Synthetic but internally consistent result runs, written with the suite's own :class:`RunWriter`.

Every summary row is computed from the samples it writes (``bench.stats.summarize``), so a report or a
comparison over these runs must reproduce exactly the numbers a test can recompute from the samples.
Latencies are log-normal around a chosen median with a few slow outliers, like a real CPU run.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from bench.core.measure import machine
from bench.core.measure.stats import headline_columns, summarize, throughput
from bench.core.records.schema import SCHEMA_VERSION, STATUS_FAILED, STATUS_OK, SUITE_ID, RoundRecord, SummaryRow
from bench.core.records.store import RunWriter

# name -> (family, resolution, measured params (M), measured GMACs at batch 1, ORT CPU batch-1 median ms)
FIXTURE_MODELS: dict[str, tuple[str, int, float, float, float]] = {
    "casvit_xs": ("casvit", 224, 2.99, 0.56, 6.1),
    "casvit_s": ("casvit", 224, 5.46, 0.93, 9.8),
    "casvit_m": ("casvit", 224, 12.0, 1.89, 17.5),
    "casvit_t": ("casvit", 224, 21.2, 3.37, 29.0),
    "mobilevitv2_100": ("mobilevitv2", 256, 4.90, 1.84, 21.4),
    "swiftformer_xs": ("swiftformer", 224, 3.47, 0.61, 6.8),
    "swiftformer_s": ("swiftformer", 224, 6.09, 0.99, 10.6),
    "swiftformer_l1": ("swiftformer", 224, 12.05, 1.60, 16.2),
    "efficientformer_l1": ("efficientformer", 224, 12.29, 1.31, 13.9),
    "efficientformerv2_s1": ("efficientformerv2", 224, 6.19, 0.65, 11.7),
}

# per-image speed-up of a batch over batch 1 on a CPU (throughput grows, then saturates)
BATCH_GAIN = {1: 1.0, 8: 1.55, 32: 1.75}


def environment(hostname: str = "bench-a", cpu_model: str = "AMD EPYC 7B13", cpu_count: int = 2, **extra):
    """An environment.json like the engine's (``env_id`` hashes the machine and software)."""
    env: dict[str, object] = {
        "suite": SUITE_ID,
        "schema_version": SCHEMA_VERSION,
        "hostname": hostname,
        "cpu_model": cpu_model,
        "cpu_count": cpu_count,
        "os": "Linux-6.8.0-x86_64-with-glibc2.39",
        "python": "3.11.7",
        "versions": {"torch": "2.13.0", "onnxruntime": "1.23.2", "onnx": "1.19.1", "coremltools": "9.0"},
        "gpu_name": None,
        "git_commit": "5da367b5a7f1",
        "started_at": "2026-11-25T02:00:00+0000",
    }
    env.update(extra)
    identity = {k: env[k] for k in ("hostname", "cpu_model", "cpu_count", "os", "python", "versions", "gpu_name")}
    env["env_id"] = hashlib.sha1(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:12]
    return env


def latency_samples(median_ms: float, n: int, rng: np.random.Generator, sigma: float = 0.03) -> np.ndarray:
    """Log-normal jitter around ``median_ms`` plus ~2% slow outliers (scheduler noise)."""
    x = median_ms * np.exp(rng.normal(0.0, sigma, n))
    spikes = rng.random(n) < 0.02
    x[spikes] *= rng.uniform(1.2, 1.8, spikes.sum())
    return x


def summary_row(
    model: str,
    *,
    backend: str,
    env_id: str,
    samples: Iterable[float] | None,
    batch: int = 1,
    device: str = "cpu",
    precision: str = "fp32",
    threads: int = 2,
    timestamp: str = "2026-11-25T02:10:00",
    status: str = STATUS_OK,
    error: str | None = None,
) -> SummaryRow:
    family, resolution, params, gmacs, _ = FIXTURE_MODELS[model]
    settings = f"{model}|{backend}|{device}|{precision}|{batch}|{resolution}|{threads}"
    row: dict[str, object] = {
        "model": model,
        "infer_img_size": resolution,
        "infer_batch_size": batch,
        "param_count": params,
        "infer_gmacs": gmacs,
        "family": family,
        "backend": backend,
        "device": device,
        "precision": precision,
        "threads": threads,
        "channels_last": False,
        "compile": False,
        "status": status,
        "error": error,
        "settings_key": hashlib.sha1(settings.encode()).hexdigest()[:16],
        "env_id": env_id,
        "row_id": hashlib.sha1(f"{settings}|{timestamp}".encode()).hexdigest()[:12],
        "timestamp": timestamp,
    }
    if samples is not None and status == STATUS_OK:
        samples = list(samples)
        stats = summarize(samples)
        row.update(stats)
        ips = throughput(batch, stats["latency_median_ms"])
        row.update(
            infer_samples_per_sec=ips,
            infer_step_time=stats["latency_mean_ms"],
            throughput_median_ips=ips,
            iterations=len(samples),
            warmup_iterations=10,
            parity_max_abs_diff=2e-5,
            parity_cosine=1.0,
            parity_top1_agreement=1.0,
            parity_tolerance=1e-3,
        )
    return SummaryRow(**row)


REFERENCE_MS = 5.0
"""The machine-speed reference's median on an undisturbed fixture machine."""


def write_run(
    root: Path,
    *,
    label: str,
    env: Mapping[str, object],
    backend: str,
    models: Iterable[str] = tuple(FIXTURE_MODELS),
    batches: Iterable[int] = (1,),
    slowdown: float = 1.0,
    speed: Mapping[str, float] | None = None,
    n: int = 60,
    seed: int = 0,
    sigma: float = 0.03,
    threads: int = 2,
    device: str = "cpu",
    timestamp: str = "2026-11-25T02:10:00",
    failed: Mapping[str, str] | None = None,
    phases: Sequence[float] = (1.0, 1.0, 1.0),
) -> Path:
    """One run directory of ``models`` x ``batches`` on ``backend``, timed in ``len(phases)`` rounds.

    ``slowdown`` multiplies every true median (``speed`` per model: a real change of that model);
    ``phases`` is how slow the whole machine was in each round (it moves the models *and* the
    machine-speed reference); ``failed`` maps a model to the error it fails with (a failed row
    without samples, as the engine writes it).
    """
    rng = np.random.default_rng(seed)
    writer = RunWriter.create(root, label, {**env, "backend": backend, "device": device, "threads": threads})
    backend_factor = {"onnx": 1.0, "torch": 1.6}.get(backend, 1.3)
    for model in models:
        for batch in batches:
            if failed and model in failed:
                row = summary_row(
                    model,
                    backend=backend,
                    env_id=str(env["env_id"]),
                    samples=None,
                    batch=batch,
                    device=device,
                    threads=threads,
                    timestamp=timestamp,
                    status=STATUS_FAILED,
                    error=failed[model],
                )
                writer.add(row)
                continue
            base = FIXTURE_MODELS[model][4] * backend_factor * slowdown * (speed or {}).get(model, 1.0)
            median = base * batch / BATCH_GAIN.get(batch, 1.8)
            per_round = [max(n // len(phases), 3)] * len(phases)
            # rounded as RunWriter stores them, so the summary is exactly what the samples give
            rounds = [
                np.round(latency_samples(median * f, k, rng, sigma), 6) for f, k in zip(phases, per_round, strict=True)
            ]
            references = [float(REFERENCE_MS * f * np.exp(rng.normal(0.0, 0.005))) for f in phases]
            samples = np.concatenate(rounds)
            row = summary_row(
                model,
                backend=backend,
                env_id=str(env["env_id"]),
                samples=samples,
                batch=batch,
                device=device,
                threads=threads,
                timestamp=timestamp,
            )
            row.rounds = len(phases)
            row.reference_ms = json.dumps(references)
            round_medians = [float(np.median(r)) for r in rounds]
            row.round_medians_ms = json.dumps(round_medians)
            # judged as the sitting judges: against the machine's calm speed (phase 1.0)
            quiet = [0.0] * len(phases)
            validity = machine.judge(round_medians, references, quiet, quiet, len(samples), REFERENCE_MS)
            clean = machine.clean_mask(references, REFERENCE_MS, len(phases))
            row.set(**headline_columns(round_medians, clean), **validity.as_columns())
            for i, (r, ref) in enumerate(zip(rounds, references, strict=True)):
                record = RoundRecord(round=i, iterations=len(r), median_ms=float(np.median(r)), reference_ms=ref)
                writer.add_round(row, record, r)
            writer.add(row)
    return writer.directory
