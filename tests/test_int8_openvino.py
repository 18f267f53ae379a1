"""int8 on OpenVINO: an IR quantized by NNCF (OpenVINO's own post-training quantizer, really run here), gated
by its logits' cosine with fp32, timed with int8 kernels the CPU plugin reports; the float IR's cache entry
is the one it was before int8 existed, and without NNCF int8 is refused in one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bench.backends import backend_class
from bench.core.interface.runtime import Workload
from bench.core.records.store import load_results
from tests.conftest import REPO, assert_one_line_error, run_cli

TINY = ["--models", "casvit_xs", "--resolution", "64", "--batch-sizes", "1", "--rounds", "1", "--processes", "1",
        "--budget", "0", "--iters", "3", "--min-time", "0", "--warmup", "1", "--warmup-time", "0", "--no-flops",
        "--no-progress", "--threads", "1"]  # fmt: skip


@pytest.fixture(autouse=True)
def _needs_openvino_and_nncf() -> None:
    reason = backend_class("openvino").unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    pytest.importorskip("nncf", reason="NNCF is not installed (pip install '.[openvino]')")


def test_int8_on_openvino_is_quantized_by_nncf_checked_by_agreement_and_runs_int8_kernels(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    proc = run_cli("run", "--backend", "openvino", "--precision", "int8", *TINY, "--out", str(tmp_path / "r"),
                   "--cache-dir", str(cache))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "INFO:nncf" not in proc.stdout + proc.stderr
    summary, _, _ = load_results([tmp_path / "r"])
    row = summary.iloc[0]
    assert row["status"] == "ok" and row["precision"] == "int8", row["error"]
    assert row["parity_tolerance"] == "cos>=0.98" and row["parity_cosine"] >= 0.98
    detail = json.loads(row["runtime_detail"])
    assert "nncf.quantize" in detail["quantization"] and "synthetic" in detail["quantization"]
    assert detail["inference_precision"] == "float32"  # the rest of the network in f32, not this CPU's bf16
    nodes = dict(part.split(":") for part in detail["runtime_nodes_by_precision"].split(","))
    assert int(nodes.get("i8", 0)) + int(nodes.get("u8", 0)) > 0, nodes  # the plugin ran int8 kernels
    (ir,) = cache.rglob("casvit_xs-b1-r64-int8-export*/model.xml")
    assert ir.read_text().count('type="FakeQuantize"') == int(detail["fake_quantize_nodes"]) > 0


def _key_and_stem(precision: str) -> tuple[dict, str]:
    from models import create_model

    backend = backend_class("openvino")()
    workload = Workload("casvit_xs", batch_size=1, resolution=64, precision=precision, threads=1)
    torch.manual_seed(0)
    key = backend.cache_key(create_model("casvit_xs"), workload)
    return key, backend.stem(workload, key)


def test_the_float_ir_keeps_its_cache_entry_and_int8_gets_its_own() -> None:
    fp32_key, fp32_stem = _key_and_stem("fp32")
    assert fp32_stem == "casvit_xs-b1-r64-export"  # the name float IRs had before int8: no precision in it
    assert set(fp32_key) == {"format", "model", "input_shape", "frontend", "openvino", "torch", "weights"}
    assert _key_and_stem("bf16") == (fp32_key, fp32_stem)  # one IR for every float precision
    int8_key, int8_stem = _key_and_stem("int8")
    assert int8_stem == "casvit_xs-b1-r64-int8-export"
    assert {k: int8_key[k] for k in fp32_key} == fp32_key
    assert int8_key["precision"] == "int8" and int8_key["calibration"]["images"] > 0
    assert "nncf" in int8_key and "nncf.quantize" in int8_key["quantization"]["tool"]


def test_int8_on_openvino_without_nncf_is_refused_in_one_line(tmp_path: Path) -> None:
    hide_nncf = "import sys; sys.modules['nncf'] = None; from bench.cli import main; sys.exit(main())"
    argv = ["run", "--backend", "openvino", "--precision", "int8", *TINY, "--out", str(tmp_path / "r")]
    proc = subprocess.run(
        [sys.executable, "-c", hide_nncf, *argv],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), "MPLBACKEND": "Agg"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert_one_line_error(proc, "int8 on openvino needs NNCF", "pip install nncf")


def test_benchmark_app_times_the_int8_ir_with_the_f32_hint_like_the_suite() -> None:
    (command,) = backend_class("openvino").native_commands("m-int8.openvino", 1, "int8", 1, 10)
    assert "-infer_precision f32" in command["command"]  # else it would pick bf16 on this CPU for the f32 parts
