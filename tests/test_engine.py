"""The measurement engine: statistics, loops, result store, resume, export cache, parity, bad input."""

from __future__ import annotations

import argparse
import math
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import models
from bench.backends import REGISTRY, Workload
from bench.backends.onnx import OnnxBackend
from bench.backends.torch_backend import TorchBackend
from bench.commands import run as run_command
from bench.core.errors import BenchError
from bench.core.interface import settings as model_settings
from bench.core.interface.settings import Settings
from bench.core.measure import engine, sitting
from bench.core.measure.parity import check_parity
from bench.core.measure.stats import summarize
from bench.core.measure.timing import LoopLimits, timed_loop
from bench.core.records.schema import TIMM_COLUMNS
from bench.core.records.store import SUMMARY_FILE, load_results, resume_state
from tests.conftest import REPO, QuietProgress, assert_one_line_error, pause_env, run_cli, wait_paused

FAST = ("--resolution", "64", "--warmup", "1", "--warmup-time", "0", "--iters", "3", "--min-time", "0", "--no-progress",
        "--processes", "1", "--budget", "0")  # fmt: skip


# ------------------------------------------------------------------------------------------ statistics


def test_summary_statistics_against_hand_computed_values() -> None:
    s = summarize([1.0, 2.0, 3.0, 4.0, 100.0])
    assert s["latency_mean_ms"] == 22.0
    assert s["latency_median_ms"] == 3.0
    assert s["latency_p90_ms"] == pytest.approx(61.6)  # position 3.6: 4 + 0.6 * 96
    assert s["latency_p99_ms"] == pytest.approx(96.16)  # position 3.96: 4 + 0.96 * 96
    assert (s["latency_min_ms"], s["latency_max_ms"]) == (1.0, 100.0)
    assert s["latency_std_ms"] == pytest.approx(math.sqrt(7610 / 4))  # squared deviations sum to 7610
    assert s["latency_iqr_ms"] == 2.0  # q75 = 4, q25 = 2
    assert s["latency_cv"] == pytest.approx(math.sqrt(7610 / 4) / 22)


def test_summary_of_one_sample_and_of_none() -> None:
    assert summarize([5.0])["latency_std_ms"] == 0.0
    with pytest.raises(ValueError):
        summarize([])


class _Clock:
    """A clock that moves only when the timed call runs: each call takes exactly ``step_s`` (binary
    fractions of a second, so sums are exact)."""

    def __init__(self, step_s: float) -> None:
        self.now, self.step_s = 0.0, step_s

    def __call__(self) -> float:
        return self.now

    def run(self) -> None:
        self.now += self.step_s


def test_loop_runs_at_least_min_iters_and_min_time() -> None:
    calls = []
    result = timed_loop(lambda: calls.append(1), LoopLimits(min_iters=7, min_time_s=0.0, max_time_s=10))
    assert len(calls) == len(result.samples_ms) == 7
    clock = _Clock(1 / 64)
    result = timed_loop(clock.run, LoopLimits(min_iters=1, min_time_s=0.125, max_time_s=10), clock=clock)
    assert len(result.samples_ms) == 8 and result.elapsed_s == 0.125  # the minimum time, not one iteration
    assert result.samples_ms == [1000 / 64] * 8


def test_loop_stops_at_max_time() -> None:
    clock = _Clock(1 / 32)
    result = timed_loop(clock.run, LoopLimits(min_iters=10_000, min_time_s=0, max_time_s=0.125), clock=clock)
    assert len(result.samples_ms) == 4  # 1/32 s each: the fourth reaches 0.125 s, long before 10 000


def test_loop_runs_real_calls_with_the_wall_clock() -> None:
    result = timed_loop(lambda: time.sleep(0.01), LoopLimits(min_iters=3, min_time_s=0.0, max_time_s=10))
    assert len(result.samples_ms) == 3 and all(s >= 9.0 for s in result.samples_ms)  # a sleep is never shorter


def test_batch_decay_ladder() -> None:
    ladder, b = [], 256
    while b:
        ladder.append(b)
        b = engine.smaller_batch(b)
    assert ladder == [256, 192, 128, 96, 64, 48, 32, 24, 16, 12, 8, 6, 4, 3, 2, 1]


# -------------------------------------------------------------------------------------------- parity


def test_parity_accepts_float_noise_and_rejects_a_different_network() -> None:
    rng = np.random.default_rng(0)
    ref = rng.standard_normal((2, 1000)).astype(np.float32)
    assert check_parity(ref, ref + 1e-6, "fp32").ok
    broken = check_parity(ref, rng.standard_normal((2, 1000)).astype(np.float32), "fp32")
    assert not broken.ok and broken.cosine < 0.5
    assert not check_parity(ref, np.full_like(ref, np.nan), "fp32").ok
    assert not check_parity(ref, ref[:, :10], "fp32").ok


# --------------------------------------------------------------------------------------------- onnx


@pytest.fixture(scope="module")
def small_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return models.create_model("casvit_xs", img_size=64)


QUICK = Settings(
    backend="onnx",
    model_names=("casvit_xs",),
    resolution=64,
    limits_warmup=LoopLimits(1, 0, 5),
    limits_steady=LoopLimits(3, 0, 5),
)


def test_export_cache_hit_miss_and_corruption(tmp_path: Path, small_model) -> None:
    backend, workload = OnnxBackend(), QUICK.workload("casvit_xs", 1, 64)
    first = backend.prepare(small_model, workload, tmp_path)
    assert not first.cache_hit and first.artifact.exists()
    assert backend.prepare(small_model, workload, tmp_path).cache_hit
    # a truncated file is detected (checksum) and rebuilt, not timed
    first.artifact.write_bytes(first.artifact.read_bytes()[:1000])
    rebuilt = backend.prepare(small_model, workload, tmp_path)
    assert not rebuilt.cache_hit
    session = backend.load(small_model, rebuilt, workload, np.zeros(workload.input_shape, np.float32))
    assert session.predict(np.zeros(workload.input_shape, np.float32)).shape == (1, 1000)
    # different weights never share a cache entry
    other = models.create_model("casvit_xs", img_size=64)
    assert backend.cache_path(other, workload, tmp_path) != first.artifact


class _BrokenExport(OnnxBackend):
    """Exports a network whose weights were perturbed: the parity check must catch it."""

    def prepare(self, model, workload, cache_dir):
        broken = models.create_model(workload.model_name, img_size=workload.resolution)
        with torch.no_grad():
            broken.head.weight.mul_(-1)
        return super().prepare(broken, workload, cache_dir)


def test_parity_failure_is_recorded_and_not_timed(tmp_path: Path, small_model) -> None:
    settings = QUICK
    measurer = engine.Measurer(settings, _BrokenExport(), tmp_path, progress=QuietProgress())
    row, samples = measurer.measure(small_model, settings.workload("casvit_xs", 1, 64))
    assert row["status"] == "parity_failed" and samples == []
    assert "parity failed" in row["error"] and row["parity_cosine"] < 0.9999


# ------------------------------------------------------------------------------------ end to end (CLI)


def test_run_writes_summary_samples_and_environment(tmp_path: Path) -> None:
    proc = run_cli(
        "run",
        "--backend",
        "torch",
        "--models",
        "casvit_xs,swiftformer_xs",
        "--batch-sizes",
        "1,2",
        *FAST,
        "--out",
        str(tmp_path),
    )
    assert proc.returncode == 0, proc.stderr
    assert "casvit_xs" in proc.stdout and "median_ms" in proc.stdout
    summary, samples, envs = load_results([tmp_path])
    assert list(summary.columns[: len(TIMM_COLUMNS)]) == list(TIMM_COLUMNS)
    assert len(summary) == 4 and set(summary["status"]) == {"ok"}
    env = next(iter(envs.values()))
    assert env["versions"]["torch"] == torch.__version__ and env["cpu_count"]
    for row in summary.itertuples():
        mine = samples[samples["row_id"] == row.row_id]["latency_ms"]
        assert len(mine) == row.iterations >= 3
        assert row.latency_median_ms == pytest.approx(float(np.median(mine)), rel=1e-5)
        assert row.infer_samples_per_sec == pytest.approx(row.infer_batch_size * 1000 / mine.mean(), rel=1e-4)
    assert (summary["parity_max_abs_diff"] < 1e-4).all()


def test_failed_model_is_recorded_and_the_run_goes_on(tmp_path: Path, monkeypatch) -> None:
    real_build = model_settings.build_model

    def build(settings, name, resolution):
        if name == "casvit_xs":
            raise RuntimeError("export exploded\nsecond line")
        return real_build(settings, name, resolution)

    monkeypatch.setattr(model_settings, "build_model", build)
    args = engine_args("--backend", "torch", "--models", "casvit_xs,swiftformer_xs", *FAST, "--out", str(tmp_path))
    _, rows = sitting.run_inline(
        run_command.parse_settings(args), REGISTRY.get("torch"), tmp_path, tmp_path / "cache", False, False, False
    )
    assert [r["status"] for r in rows] == ["failed", "ok"]
    assert rows[0]["error"] == "RuntimeError: export exploded"


def engine_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    run_command.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_resume_after_a_killed_run(tmp_path: Path) -> None:
    argv = [
        "run",
        "--backend",
        "torch",
        "--models",
        "casvit_xs,swiftformer_xs,efficientformerv2_s0",
        "--batch-sizes",
        "1,2",
        "--resolution",
        "64",
        "--warmup",
        "1",
        "--warmup-time",
        "0",
        "--iters",
        "3",
        "--min-time",
        "0.1",
        "--rounds",
        "1",
        "--no-progress",
        "--no-flops",
        "--processes",
        "1",
        "--budget",
        "0",
        "--out",
        str(tmp_path),
    ]
    marker = tmp_path.parent / f"{tmp_path.name}-paused"  # outside --out: the resume reads every folder there
    proc = subprocess.Popen(  # held just after its first row is on disk (bench.core.measure.pause), then killed there
        [sys.executable, "-m", "bench", *argv], cwd=REPO, env=pause_env("row:1", marker),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_paused(proc, marker)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    rows_before = len(pd.read_csv(next(tmp_path.glob(f"*/{SUMMARY_FILE}"))))
    assert rows_before == 1, "the run is killed with exactly one row written"
    killed = pd.read_csv(next(tmp_path.glob(f"*/{SUMMARY_FILE}")))  # still parseable
    done_before = len(resume_state(tmp_path, env_id="").done)
    assert done_before == len(killed) >= 1

    resumed = run_cli(*argv, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    summary, _, _ = load_results([tmp_path])
    ok = summary[summary["status"] == "ok"]
    assert len(ok) == 6 and ok["settings_key"].is_unique
    new_run = summary[summary["run_id"] != killed["run_id"].iloc[0]]
    assert len(new_run) == 6 - done_before


# ------------------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    ("argv", "fragments"),
    [
        (["--models", "casvit_xz"], ["unknown model 'casvit_xz'", "casvit_xs"]),
        (["--backend", "tensorrt"], ["--backend", "'tensorrt'"]),
        (["--device", "tpu"], ["unknown device 'tpu'"]),
        (["--precision", "int3"], ["--precision", "'int3'"]),
        (["--batch-sizes", "0"], ["--batch-sizes must be between 1 and", "got 0"]),
        (["--batch-sizes", "²"], ["--batch-sizes", "digits 0-9", "'²'"]),
        (["--batch-sizes", "1,1"], ["--batch-sizes lists 1 more than once"]),
        (["--threads", "100000"], ["--threads must be between 1 and 1024"]),
        (["--threads", "²"], ["--threads", "digits"]),
        (["--seed", "99999999999"], ["--seed must be between 0 and 4294967295"]),
        (["--batch-sizes", "1,-4"], ["--batch-sizes", "'-4'"]),
        (["--batch-sizes", "eight"], ["--batch-sizes", "'eight'"]),
        (["--iters", "0"], ["--iters"]),
        (["--warmup", "1.5"], ["--warmup"]),
        (["--resolution", "100"], ["resolution 100 is not a positive multiple of 32"]),
        (["--min-time", "-1"], ["--min-time"]),
        (["--coreml-units", "GPU_ONLY"], ["--coreml-units", "GPU_ONLY"]),
        (["--onnx-graph-opt", "max"], ["--onnx-graph-opt", "'max'"]),
    ],
)
def test_bad_input_is_a_one_line_error(argv: list[str], fragments: list[str]) -> None:
    assert_one_line_error(run_cli("run", *argv), *fragments)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU; the no-GPU error cannot occur")
def test_cuda_without_gpu_is_a_one_line_error() -> None:
    assert_one_line_error(run_cli("run", "--backend", "torch", "--device", "cuda"), "no CUDA GPU")


def test_unwritable_output_directory(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    proc = run_cli("run", "--backend", "torch", "--models", "casvit_xs", *FAST, "--out", str(blocker / "sub"))
    assert_one_line_error(proc, "--out", "not writable")


def test_foreign_results_file_under_resume(tmp_path: Path) -> None:
    (tmp_path / "someone-else").mkdir()
    (tmp_path / "someone-else" / SUMMARY_FILE).write_text("a,b\n1,2\n")
    proc = run_cli("run", "--backend", "torch", "--models", "casvit_xs", *FAST, "--out", str(tmp_path), "--resume")
    assert_one_line_error(proc, "not a results directory of this suite")


def test_missing_and_corrupt_checkpoint(tmp_path: Path) -> None:
    proc = run_cli("run", "--models", "casvit_xs", "--checkpoint", str(tmp_path / "none.pth"), *FAST)
    assert_one_line_error(proc, "checkpoint not found")
    corrupt = tmp_path / "bad.pth"
    corrupt.write_bytes(b"PK\x03\x04 definitely not a zip")
    assert_one_line_error(run_cli("run", "--models", "casvit_xs", "--checkpoint", str(corrupt), *FAST), "corrupt")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none on this machine)")
def test_cuda_run(tmp_path: Path) -> None:
    proc = run_cli(
        "run",
        "--backend",
        "torch",
        "--device",
        "cuda",
        "--models",
        "casvit_xs",
        "--precision",
        "fp16",
        "--batch-sizes",
        "1,8",
        *FAST,
        "--out",
        str(tmp_path),
    )
    assert proc.returncode == 0, proc.stderr
    summary, _, envs = load_results([tmp_path])
    assert (summary["status"] == "ok").all() and (summary["cuda_max_allocated_mb"] > 0).all()
    assert next(iter(envs.values()))["gpu_name"]


def test_torch_backend_refuses_fp16_on_cpu() -> None:
    with pytest.raises(BenchError, match="fp16"):
        TorchBackend().check(Workload(model_name="casvit_xs", batch_size=1, resolution=64, precision="fp16"))


class _SmallMemoryBackend(TorchBackend):
    """Pretends to be a GPU that runs out of memory above batch 4."""

    def prepare(self, model, workload, cache_dir):
        if workload.batch_size > 4:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return super().prepare(model, workload, cache_dir)

    def load(self, model, prepared, workload, example):
        return super().load(model, prepared, replace(workload, device="cpu"), example)


def test_cuda_out_of_memory_retries_smaller_batches(small_model) -> None:
    settings = replace(QUICK, backend="torch", device="cuda")
    measurer = engine.Measurer(settings, _SmallMemoryBackend(), Path("."), progress=QuietProgress())
    workload, row, session = measurer.open_with_retry(small_model, settings.workload("casvit_xs", 16, 64), retry=True)
    assert workload.batch_size == 4  # 16 -> 12 -> 8 -> 6 -> 4
    assert row["error"] == "batch reduced from 16 after CUDA out-of-memory"
    session.close()
    with pytest.raises(RuntimeError, match="out of memory"):
        measurer.open_with_retry(small_model, settings.workload("casvit_xs", 16, 64), retry=False)
