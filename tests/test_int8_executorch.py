"""int8 on ExecuTorch: quantized by its own XNNPACK quantizer (PT2E), run on XNNPACK's int8 kernels, gated by
its logits' cosine with fp32; the fp32 and fp16 programs keep the cache keys they had before int8 existed."""

from __future__ import annotations

from pathlib import Path

import pytest
from torch import nn

from bench.backends import backend_class
from bench.core.interface import artifacts
from bench.core.interface.runtime import Workload
from tests.conftest import assert_one_line_error, run_cli
from tests.test_int8 import timed_int8_row

TINY = ["--models", "casvit_xs", "--resolution", "64", "--batch-sizes", "1", "--rounds", "1", "--processes", "1",
        "--budget", "0", "--iters", "5", "--min-time", "0", "--warmup", "1", "--warmup-time", "0", "--no-flops",
        "--no-progress", "--threads", "1"]  # fmt: skip


def _needs_executorch() -> None:
    reason = backend_class("executorch").unavailable_reason()
    if reason is not None:
        pytest.skip(reason)


def test_int8_on_executorch_is_quantized_delegated_checked_by_agreement_and_timed(tmp_path: Path) -> None:
    _needs_executorch()
    cache = tmp_path / "cache"
    row, detail = timed_int8_row("executorch", TINY, tmp_path / "r", cache)
    assert "XNNPACKQuantizer" in detail["quantization"] and "calibration" in detail["quantization"]
    # XNNPACK took every quantize/dequantize op, so the quantized convolutions and matmuls run on its int8
    # kernels; what stays outside is data movement, never a convolution or a linear layer
    assert int(detail["quant_ops_delegated"]) > 0 and detail["quant_ops_left"] == "0"
    left = detail["non_delegated_ops"]
    assert not any(op in left for op in ("convolution", "linear", "addmm", "mm:", "bmm"))
    # really int8: the program is under half the size the float32 weights alone would take (int8: about a quarter)
    (program,) = cache.rglob("*-int8-*.pte")
    assert program.stat().st_size < row["param_count"] * 1e6 * 4 / 2  # param_count is in millions


def test_int8_needs_the_xnnpack_delegate_in_one_line(tmp_path: Path) -> None:
    _needs_executorch()
    proc = run_cli("run", "--backend", "executorch", "--precision", "int8", "--executorch-delegate", "none", *TINY,
                   "--out", str(tmp_path))  # fmt: skip
    assert_one_line_error(proc, "the executorch backend runs int8 with --executorch-delegate xnnpack only")


def test_int8_leaves_the_fp32_and_fp16_cache_keys_as_they_were() -> None:
    backend = backend_class("executorch")()
    model = nn.Conv2d(3, 4, 3)
    keys = {}
    for precision in ("fp32", "fp16", "int8"):
        workload = Workload("casvit_xs", 1, 64, precision=precision)
        keys[precision] = backend.cache_key(model, workload)
    for precision in ("fp32", "fp16"):  # the key exactly as before int8: programs already cached are reused
        assert keys[precision] == {
            "format": 1,
            "model": "casvit_xs",
            "input_shape": [1, 3, 64, 64],
            "precision": precision,
            "delegate": "xnnpack",
            "executorch": keys["fp32"]["executorch"],
            "torch": keys["fp32"]["torch"],
            "weights": artifacts.weights_digest(model),
        }
    quantization = keys["int8"].pop("quantization")
    assert keys["int8"] == {**keys["fp32"], "precision": "int8"}
    assert quantization["calibration"] == {"source": "synthetic standard normal", "images": 16, "seed": 0}
    workload = Workload("casvit_xs", 1, 64)
    path = artifacts.entry_path(Path("c"), "executorch", backend.stem(workload, keys["fp32"]), ".pte", keys["fp32"])
    assert path.name == f"casvit_xs-b1-r64-fp32-xnnpack-{artifacts.json_digest(keys['fp32'], 'sha256', 16)}.pte"
