"""int8 on ONNX Runtime: quantized by ONNX Runtime's own tool, gated by its logits' cosine with fp32 (not max |diff|),
timed like any cell; a runtime without a quantization path says so in one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pandas as pd

from bench.core.measure.parity import check_parity
from bench.core.records.store import load_results
from tests.conftest import assert_one_line_error, run_cli

TINY = ["--models", "casvit_xs", "--resolution", "64", "--batch-sizes", "4", "--rounds", "2", "--processes", "1",
        "--budget", "0",
        "--iters", "5", "--min-time", "0", "--warmup", "1", "--warmup-time", "0", "--no-flops", "--no-progress",
        "--threads", "1"]  # fmt: skip


def timed_int8_row(backend: str, tiny: list[str], out: Path, cache: Path) -> tuple[pd.Series, dict]:
    """Run ``backend`` at int8 through the CLI and check what every runtime's int8 row must be: timed, int8,
    gated by the logits' cosine, top-1 agreement recorded; its row and parsed runtime detail."""
    proc = run_cli("run", "--backend", backend, "--precision", "int8", *tiny, "--out", str(out),
                   "--cache-dir", str(cache))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    summary, _, _ = load_results([out])
    row = summary.iloc[0]
    assert row["status"] == "ok" and row["precision"] == "int8", row["error"]
    assert row["parity_tolerance"] == "cos>=0.98" and row["parity_cosine"] >= 0.98
    assert 0 <= row["parity_top1_agreement"] <= 1  # recorded beside the gate
    return row, json.loads(row["runtime_detail"])


def test_int8_on_onnx_runtime_is_quantized_checked_by_agreement_and_timed(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    _, detail = timed_int8_row("onnx", TINY, tmp_path / "r", cache)
    assert "quantize_static" in detail["quantization"]
    (artifact,) = cache.rglob("*-int8-*.onnx")
    ops = {node.op_type for node in onnx.load(str(artifact)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops  # really quantized, not the fp32 graph renamed


def test_a_runtime_without_a_quantization_path_refuses_int8_in_one_line(tmp_path: Path) -> None:
    proc = run_cli("run", "--backend", "torch", "--precision", "int8", *TINY, "--out", str(tmp_path))
    assert_one_line_error(proc, "the torch backend supports --precision fp32 or fp16 or bf16, not int8")


def test_int8_parity_is_agreement_not_max_abs_difference() -> None:
    rng = np.random.default_rng(0)
    eager = rng.standard_normal((4, 1000))
    close = eager + 0.05 * rng.standard_normal((4, 1000))  # quantization noise: far beyond fp32's max |diff|
    assert not check_parity(eager, close, "fp32").ok
    assert check_parity(eager, close, "int8").ok
    flipped = eager.copy()
    flipped[:2] = rng.standard_normal((2, 1000))  # two of four images now unrelated to fp32
    assert not check_parity(eager, flipped, "int8").ok
