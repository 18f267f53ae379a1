"""int8 on LiteRT: quantized by litert-torch's PT2E quantizer in the converter's environment, calibrated on the
suite's shared set, run on XNNPACK, gated by its logits' cosine with fp32; fp32 and fp16 keep their cache keys.

The converter lives in its own environment (``python -m bench.backends.litert --setup``), which these tests
never create: the end-to-end test skips where it is missing, as the other LiteRT tests do.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from torch import nn

from bench.backends import backend_class
from bench.core.interface import artifacts
from bench.core.interface.runtime import Workload
from tests.conftest import REPO
from tests.test_int8 import timed_int8_row

TINY = ["--models", "casvit_xs", "--resolution", "64", "--batch-sizes", "1", "--rounds", "1", "--processes", "1",
        "--budget", "0", "--iters", "5", "--min-time", "0", "--warmup", "1", "--warmup-time", "0", "--no-flops",
        "--no-progress", "--threads", "1"]  # fmt: skip


def _converter() -> Path:
    reason = backend_class("litert").unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    from bench.backends import litert

    try:
        return litert.converter_python(REPO / ".cache" / "bench", create=False)
    except Exception as exc:
        pytest.skip(f"no LiteRT converter environment ({exc}); `python -m bench.backends.litert --setup`")


def test_int8_on_litert_is_quantized_checked_by_agreement_and_timed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ai_edge_litert.interpreter import Interpreter

    monkeypatch.setenv("BENCH_LITERT_PYTHON", str(_converter()))  # a fresh artifact cache, the same converter
    cache = tmp_path / "cache"
    _, detail = timed_int8_row("litert", TINY, tmp_path / "r", cache)
    assert "PT2EQuantizer" in detail["quantization"] and "calibration" in detail["quantization"]
    assert int(detail["xnnpack_ops"]) > 0
    # really int8: most of the model's tensors (weights and activations) are int8, and its input is too
    (model,) = cache.rglob("*-int8-*.tflite")
    interpreter = Interpreter(model_path=str(model))
    dtypes = [np.dtype(t["dtype"]).name for t in interpreter.get_tensor_details()]
    assert dtypes.count("int8") > len(dtypes) / 2, dtypes
    assert np.dtype(interpreter.get_input_details()[0]["dtype"]).name == "int8"


def test_int8_leaves_the_fp32_and_fp16_cache_keys_as_they_were() -> None:
    from bench.backends import litert

    backend = backend_class("litert")()
    model = nn.Conv2d(3, 4, 3)
    keys = {p: backend.cache_key(model, Workload("casvit_xs", 1, 64, precision=p)) for p in ("fp32", "fp16", "int8")}
    for precision in ("fp32", "fp16"):  # the key exactly as before int8: models already converted are reused
        assert keys[precision] == {
            "format": 1,
            "model": "casvit_xs",
            "input_shape": [1, 3, 64, 64],
            "precision": precision,
            "converter": list(litert.CONVERTER_REQUIREMENTS),
            "torch": keys["fp32"]["torch"],
            "weights": artifacts.weights_digest(model),
        }
    quantization = keys["int8"].pop("quantization")
    assert keys["int8"] == {**keys["fp32"], "precision": "int8"}
    assert quantization["calibration"] == {"source": "synthetic standard normal", "images": 16, "seed": 0}


def test_an_int8_model_is_fed_and_read_through_its_quantization() -> None:
    from bench.backends.litert import Codec

    codec = Codec("int8", 0.5, -1, "int8", 0.25, 3)
    assert codec.encode(np.array([0.0, 1.0, -100.0, 100.0])).tolist() == [-1, 1, -128, 127]
    assert codec.decode(np.array([3, 7], dtype=np.int8)).tolist() == [0.0, 1.0]
    assert Codec().encode(np.ones((1, 2))).dtype == np.float32
