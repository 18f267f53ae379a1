"""The one session service: every caller that runs a model gets prepare -> load -> first inference ->
parity, with a bad cached artifact evicted and rebuilt once, and the same argument checks.

Each test plants what only the service catches (a cached export of *other* weights under the model's
key, with a matching checksum, or a runtime whose logits are off) and runs a different caller.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

import models
from bench.backends import REGISTRY
from bench.backends.onnx import OnnxBackend, export_onnx
from bench.cli import build_parser
from bench.cli import main as bench_main
from bench.core.errors import BenchError
from bench.core.interface import artifacts, sessions, settings
from bench.core.measure.parity import check_parity

MODEL = ("--models", "casvit_xs", "--resolution", "64", "--onnx-exporter", "torchscript")


def _plant_other_weights(argv: list[str], cache: Path, exporter: str = "torchscript") -> Path:
    """A valid ONNX export of seed-1 weights where the seed-0 model's export belongs; returns its path."""
    chosen = settings.from_args(build_parser(argv).parse_args(argv), REGISTRY.get("onnx"))
    workload = next(chosen.workloads())
    path, key = OnnxBackend().cache_path(settings.build_model(chosen, "casvit_xs", 64), workload, cache)
    other = settings.build_model(replace(chosen, seed=1), "casvit_xs", 64)
    example = torch.zeros(workload.input_shape)
    assert artifacts.cached(path, key, lambda staged: export_onnx(other, example, staged, exporter)).status == "miss"
    return path


def test_export_ships_the_rebuilt_artifact_not_a_wrong_cached_one(tmp_path: Path) -> None:
    argv = ["export", "--backend", "onnx", *MODEL, "--out", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "c")]
    planted = _plant_other_weights(argv, tmp_path / "c")
    wrong = artifacts.tree_digest(planted)
    assert bench_main(argv) == 0
    (entry,) = json.loads((tmp_path / "out" / "manifest.json").read_text())["artifacts"]
    assert entry["sha256"] != wrong and entry["sha256"] == artifacts.tree_digest(planted)  # rebuilt in place

    import onnxruntime as ort

    chosen = settings.from_args(build_parser(argv).parse_args(argv), REGISTRY.get("onnx"))
    x = sessions.example_input(next(chosen.workloads()), 0)
    exported = ort.InferenceSession(str(tmp_path / "out" / entry["file"]), providers=["CPUExecutionProvider"])
    with torch.inference_mode():
        eager = settings.build_model(chosen, "casvit_xs", 64)(torch.from_numpy(x)).numpy()
    assert check_parity(eager, exported.run(None, {exported.get_inputs()[0].name: x})[0], "fp32").ok


def test_complexity_latency_opens_checked_sessions(tmp_path: Path) -> None:
    from bench.commands.complexity.latency import LatencySettings, _checked_session
    from bench.core.interface.runtime import Workload

    argv = ["run", "--backend", "onnx", *MODEL[:4], "--threads", "1"]  # complexity uses the default options
    planted = _plant_other_weights(argv, tmp_path, "dynamo")
    wrong = artifacts.tree_digest(planted)
    latency = LatencySettings(("onnx",), 1, 1, 0.0, 0.1, tmp_path)
    torch.manual_seed(0)
    model = models.create_model("casvit_xs", img_size=64)
    session = _checked_session("onnx", model, Workload("casvit_xs", 1, 64, threads=1), latency)
    try:
        assert artifacts.tree_digest(planted) != wrong  # the wrong export was evicted and rebuilt
    finally:
        session.close()

    def off(ref, out, precision):
        return check_parity(ref, out + 1.0, precision)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sessions, "check_parity", off)
        with pytest.raises(BenchError, match="casvit_xs on onnx: parity failed"):
            _checked_session("onnx", model, Workload("casvit_xs", 1, 64, threads=1), latency)


def test_accuracy_records_a_runtime_that_fails_parity(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    from PIL import Image

    for label in range(2):
        (tmp_path / "data" / f"c{label}").mkdir(parents=True)
        Image.new("RGB", (40, 40), (label * 255,) * 3).save(tmp_path / "data" / f"c{label}" / "a.png")
    factory = tmp_path / "two.py"
    factory.write_text(
        "import torch\n\n\ndef two():\n    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LazyLinear(2))\n\n\n"
        'two.bench_card = {"resolution": 32, "family": "Two"}\n'
    )
    monkeypatch.setattr(sessions, "check_parity", lambda ref, out, precision: check_parity(ref, out + 1.0, precision))
    argv = ["accuracy", "--models", f"{factory}:two", "--data", str(tmp_path / "data"), "--backend", "torch"]
    code = bench_main([*argv, "--out", str(tmp_path / "r"), "--cache-dir", str(tmp_path / "c"), "--no-progress"])
    assert code == 1
    (document,) = [json.loads(p.read_text()) for p in (tmp_path / "r").glob("*/accuracy.json")]
    (result,) = document["results"]
    assert result["status"] == "failed" and result["error"].startswith("parity failed"), result
    assert "two on torch fp32: failed: parity failed" in capsys.readouterr().err


def test_every_model_command_refuses_the_same_bad_resolution() -> None:
    """One builder, one set of checks: ``export`` checks the resolution as ``run`` does."""
    for command in ("run", "export"):
        argv = [command, "--backend", "onnx", "--models", "efficientformer_l1", "--resolution", "100"]
        with pytest.raises(models.ModelError, match="resolution") as caught:
            settings.from_args(build_parser(argv).parse_args(argv), REGISTRY.get("onnx"))
        assert "100" in str(caught.value)


def test_example_input_is_seeded() -> None:
    workload = settings.Settings("onnx", ("casvit_xs",)).workload("casvit_xs", 2, 32)
    assert np.array_equal(sessions.example_input(workload, 3), sessions.example_input(workload, 3))
    assert not np.array_equal(sessions.example_input(workload, 3), sessions.example_input(workload, 4))


def test_a_session_records_the_size_of_the_artifact_it_loaded(tmp_path: Path) -> None:
    """``artifact_mb`` is the file (or IR folder) the runtime opened, as it lies on disk: a real ONNX export."""
    from bench.core.interface.runtime import Workload

    torch.manual_seed(0)
    model = models.create_model("casvit_xs", img_size=64)
    opened = sessions.open_session(OnnxBackend(), model, Workload("casvit_xs", 1, 64, threads=1), tmp_path)
    try:
        assert opened.session is not None
        on_disk = opened.prepared.artifact.stat().st_size / 2**20
        assert opened.row["artifact_mb"] == pytest.approx(on_disk, abs=0.01) and on_disk > 1.0  # 3.2 M weights
    finally:
        opened.session.close()
    folder = tmp_path / "ir.openvino"  # a runtime whose artifact is a folder counts every file in it
    folder.mkdir()
    (folder / "model.xml").write_bytes(b"x" * 2**19)
    (folder / "model.bin").write_bytes(b"x" * 2**20)
    assert artifacts.tree_mb(folder) == 1.5
