"""`bench export`: the deployable artifact is the benchmarked one, described by a manifest."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import onnx

from bench.core.records.schema import MANIFEST_VERSION
from bench.core.records.store import load_manifest
from tests.conftest import assert_one_line_error, run_cli


def test_onnx_export_writes_the_artifact_and_its_manifest(tmp_path: Path) -> None:
    argv = ["export", "--backend", "onnx", "--models", "casvit_xs", "--resolution", "64", "--batch-sizes", "1,2"]
    proc = run_cli(*argv, "--out", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache"))
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert [a["input_shape"] for a in manifest["artifacts"]] == [[1, 3, 64, 64], [2, 3, 64, 64]]
    assert manifest["format"] == MANIFEST_VERSION
    loaded = load_manifest(tmp_path / "out" / "manifest.json")  # the one loader, by the schema's declaration
    assert [e.as_dict() for e in loaded] == manifest["artifacts"]
    for entry in manifest["artifacts"]:
        path = tmp_path / "out" / entry["file"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"]
        assert entry["versions"]["onnxruntime"] and entry["weights"] == "seed=0"
        onnx.checker.check_model(str(path))
        cached = next((tmp_path / "cache" / "onnx").glob(f"casvit_xs-b{entry['input_shape'][0]}-*.onnx"))
        assert cached.read_bytes() == path.read_bytes()  # exactly what `bench run` times


def test_torch_has_nothing_to_export(tmp_path: Path) -> None:
    proc = run_cli(
        "export", "--backend", "torch", "--models", "casvit_xs", "--resolution", "64", "--out", str(tmp_path)
    )
    assert_one_line_error(proc, "no artifact to export")
