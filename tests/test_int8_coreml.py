"""int8 on Core ML: W8A8 by coremltools' own LinearQuantizer, calibrated on the shared set and converted here;
timed (and gated by agreement with fp32) only on macOS, left out in one line elsewhere, as fp32 is.

Conversion runs on every platform, like the other Core ML tests; the timed half needs macOS.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from torch import nn

from bench.backends.coreml import INT8_RECIPE, CoreMLBackend, op_counts, quantize_int8
from bench.core.interface import artifacts
from bench.core.interface.calibration import DEFAULT_CALIBRATION, Calibration
from bench.core.interface.runtime import Workload
from bench.core.records.store import load_results
from tests.conftest import run_cli
from tests.test_int8 import timed_int8_row

TINY = ["--models", "casvit_xs", "--resolution", "64", "--batch-sizes", "1", "--rounds", "1", "--processes", "1",
        "--budget", "0", "--iters", "5", "--min-time", "0", "--warmup", "1", "--warmup-time", "0", "--no-flops",
        "--no-progress", "--threads", "1"]  # fmt: skip


def test_int8_export_writes_a_w8a8_package_and_run_leaves_it_out_off_macos(tmp_path: Path) -> None:
    cache, out = tmp_path / "cache", tmp_path / "export"
    proc = run_cli("export", "--backend", "coreml", "--precision", "int8", "--models", "casvit_xs",
                   "--resolution", "64", "--out", str(out), "--cache-dir", str(cache))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    (entry,) = json.loads((out / "manifest.json").read_text())["artifacts"]
    assert entry["precision"] == "int8" and entry["file"] == "casvit_xs-b1-r64-int8.mlpackage"
    detail = entry["detail"]
    assert detail["quantization"] == DEFAULT_CALIBRATION.recipe_detail(INT8_RECIPE)  # recipe and calibration
    assert detail["deployment_target"] == "iOS17"
    # really quantized: activations through quantize/dequantize ops, weights stored as int8 constants
    ops = op_counts(out / entry["file"])
    assert ops["quantize"] > 0 and ops["dequantize"] > 0 and ops["constexpr_affine_dequantize"] > 0, ops
    assert detail["quantized_ops"].startswith(f"quantize:{ops['quantize']},")
    (weights,) = (out / entry["file"]).rglob("weight.bin")
    assert weights.stat().st_size < 3.2e6 * 4 / 2  # casvit_xs's 3.2 M weights: int8 is about a quarter of fp32

    if sys.platform == "darwin":  # Core ML predicts: timed, gated by agreement with fp32
        _, detail = timed_int8_row("coreml", TINY, tmp_path / "r", cache)
        assert detail["coreml_cache"] == "hit"
        return
    proc = run_cli("run", "--backend", "coreml", "--precision", "int8", *TINY, "--out", str(tmp_path / "r"),
                   "--cache-dir", str(cache))  # fmt: skip
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: Core ML timing needs macOS (this is {sys.platform}); model converted and validated only: "
        "1 workload(s), none timed"
    ]
    summary, _, _ = load_results([tmp_path / "r"])
    row = summary.iloc[0]
    assert row["status"] == "not_timed" and row["precision"] == "int8"
    assert json.loads(row["runtime_detail"])["coreml_cache"] == "hit"  # the exported package, not a new one


class TwoHeads(nn.Module):
    """A distilled network's shape: two outputs while training, their mean in eval, and a batch norm."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1))
        self.head, self.dist = nn.Linear(8, 10), nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        f = self.body(x).flatten(1)
        return (self.head(f), self.dist(f)) if self.training else (self.head(f) + self.dist(f)) / 2


def test_quantization_traces_the_eval_network_and_leaves_the_model_alone() -> None:
    model = TwoHeads().eval()
    before = artifacts.weights_digest(model)
    example = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    quantized = quantize_int8(model, example, DEFAULT_CALIBRATION.batches((2, 3, 16, 16)))
    with torch.no_grad():
        got, expected = quantized(example), model(example)
    assert isinstance(got, torch.Tensor) and got.shape == expected.shape  # the eval branch, one output
    assert torch.nn.functional.cosine_similarity(got, expected).min() > 0.98
    assert artifacts.weights_digest(model) == before and not model.training  # the caller's model is untouched


def test_int8_cache_key_carries_recipe_and_calibration_and_float_keys_stay() -> None:
    backend, model = CoreMLBackend(), nn.Conv2d(3, 4, 3)
    fp32 = backend.cache_key(model, Workload("casvit_xs", 1, 64))
    assert "quantization" not in fp32 and fp32["target"] == "iOS16"  # as before int8: cached packages stay valid
    int8 = backend.cache_key(model, Workload("casvit_xs", 1, 64, precision="int8"))
    assert int8.pop("quantization") == DEFAULT_CALIBRATION.recipe_key(INT8_RECIPE)
    assert int8 == {**fp32, "precision": "int8", "target": "iOS17"}
    other = backend.cache_key(model, Workload("casvit_xs", 1, 64, precision="int8", calibration=Calibration(images=8)))
    assert other["quantization"]["calibration"] == Calibration(images=8).key()

    def path(key: dict) -> Path:
        return backend.cache_path(key, Workload("casvit_xs", 1, 64, precision="int8"), Path("c"))

    assert path(other) != path({**int8, "quantization": DEFAULT_CALIBRATION.recipe_key(INT8_RECIPE)})
