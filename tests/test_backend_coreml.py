"""Core ML backend: conversion of a zoo model, the package cache (hits, corruption, keys), refusals.

Conversion runs on every platform; prediction needs macOS, so that test skips elsewhere.
A zoo model is converted at 64x64 and a tiny conv net is used wherever only the cache logic is
under test, which keeps the file well under a minute on two cores.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import models
from bench.backends import coreml
from bench.backends.coreml import INPUT_NAME, OUTPUT_NAME, CoreMLBackend, io_problem, read_io
from bench.core.errors import BenchError
from bench.core.interface.runtime import Prepared, Workload

ZOO_MODEL = "casvit_xs"
ZOO_RES = 64


def tiny_net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.GELU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10)
    ).eval()


def tiny_workload(**kw) -> Workload:
    return Workload("tiny", batch_size=2, resolution=32, **kw)


@pytest.fixture(scope="module")
def zoo(tmp_path_factory) -> tuple[nn.Module, Workload, Path, Prepared]:
    torch.manual_seed(0)
    model = models.create_model(ZOO_MODEL)
    workload = Workload(ZOO_MODEL, batch_size=1, resolution=ZOO_RES, options=(("units", "CPU_ONLY"),))
    cache = tmp_path_factory.mktemp("coreml-zoo")
    return model, workload, cache, CoreMLBackend().prepare(model, workload, cache)


@pytest.fixture(scope="module")
def tiny_cache(tmp_path_factory) -> Path:
    """One clean converted entry of the tiny net; tests copy it before damaging it."""
    cache = tmp_path_factory.mktemp("coreml-tiny")
    CoreMLBackend().prepare(tiny_net(), tiny_workload(), cache)
    return cache


def test_zoo_model_converts_to_a_valid_ml_program(zoo) -> None:
    _, workload, cache, prepared = zoo
    assert not prepared.cache_hit
    assert prepared.detail["coreml_cache"] == "miss"
    assert prepared.artifact is not None and prepared.artifact.suffix == ".mlpackage"
    assert prepared.artifact.parent == cache / "coreml"
    found = read_io(prepared.artifact)
    assert io_problem(found, workload.input_shape, (1, 1000)) is None, found
    assert prepared.detail["compute_precision"] == "FLOAT32"


def test_second_prepare_hits_the_cache(zoo) -> None:
    model, workload, cache, first = zoo
    again = CoreMLBackend().prepare(model, workload, cache)
    assert again.cache_hit and again.detail["coreml_cache"] == "hit"
    assert again.artifact == first.artifact
    assert again.detail["frontend"] == first.detail["frontend"] == "trace"


def test_mobilevitv2_converts_through_the_fallback(tmp_path) -> None:
    """coremltools 9.0 + NumPy >= 2.4 fail on MobileViTv2's traced shape arithmetic; export still converts."""
    workload = Workload("mobilevitv2_050", batch_size=1, resolution=ZOO_RES)
    prepared = CoreMLBackend().prepare(models.create_model("mobilevitv2_050"), workload, tmp_path)
    assert io_problem(read_io(prepared.artifact), workload.input_shape, (1, 1000)) is None
    if prepared.detail["frontend"] == "export":  # a coremltools with the fix converts the trace directly
        assert "trace: TypeError" in prepared.detail["coreml_warnings"]


def test_auto_frontend_falls_back_to_export_and_records_it(tmp_path, monkeypatch) -> None:
    real_source = coreml._source

    def trace_breaks(model, example, frontend):
        if frontend == "trace":
            raise RuntimeError("unsupported op\nsecond line")
        return real_source(model, example, frontend)

    monkeypatch.setattr(coreml, "_source", trace_breaks)
    backend, workload = CoreMLBackend(), tiny_workload()
    prepared = backend.prepare(tiny_net(), workload, tmp_path)
    assert prepared.detail["frontend"] == "export"
    assert "trace: RuntimeError: unsupported op" in prepared.detail["coreml_warnings"]
    assert backend.prepare(tiny_net(), workload, tmp_path).detail["frontend"] == "export"  # kept in the cache
    with pytest.raises(RuntimeError, match=r"Core ML conversion failed \(trace: RuntimeError: unsupported op\)"):
        backend.prepare(tiny_net(), tiny_workload(options=(("frontend", "trace"),)), tmp_path)


def copy_cache(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    (package,) = (dst / "coreml").glob("*.mlpackage")
    return package


def flip_weight_bytes(package: Path) -> None:
    (weights,) = package.rglob("weight.bin")
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))


def truncate_spec(package: Path) -> None:
    (spec,) = package.rglob("model.mlmodel")
    spec.write_bytes(spec.read_bytes()[: spec.stat().st_size // 2])


def drop_manifest(package: Path) -> None:
    (package / "Manifest.json").unlink()


def drop_metadata(package: Path) -> None:
    package.with_name(package.name + ".json").unlink()  # as after a run killed between package and metadata


@pytest.mark.parametrize("damage", [flip_weight_bytes, truncate_spec, drop_manifest, drop_metadata])
def test_damaged_cache_entry_is_rebuilt(tiny_cache, tmp_path, damage) -> None:
    package = copy_cache(tiny_cache, tmp_path / "cache")
    damage(package)
    backend, model, workload = CoreMLBackend(), tiny_net(), tiny_workload()
    rebuilt = backend.prepare(model, workload, tmp_path / "cache")
    assert not rebuilt.cache_hit
    assert rebuilt.detail["coreml_cache"].startswith("rebuilt"), rebuilt.detail
    assert rebuilt.artifact == package
    assert backend.prepare(model, workload, tmp_path / "cache").cache_hit


def test_conversion_prints_no_progress_bars(tmp_path, capfd) -> None:
    prepared = CoreMLBackend().prepare(tiny_net(), tiny_workload(precision="fp16"), tmp_path)
    out, err = capfd.readouterr()
    assert "Converting PyTorch Frontend" not in out + err
    assert "Running MIL" not in out + err
    assert prepared.detail["compute_precision"] == "FLOAT16"
    assert read_io(prepared.artifact)["inputs"][0]["dtype"] == "FLOAT32"  # fp16 inside, fp32 interface


def test_cache_key_separates_weights_shapes_and_precision_but_not_compute_units(tmp_path) -> None:
    backend = CoreMLBackend()

    def path(model: nn.Module, workload: Workload) -> Path:
        return backend.cache_path(backend.cache_key(model, workload), workload, tmp_path)

    base = path(tiny_net(0), tiny_workload())
    assert path(tiny_net(0), tiny_workload()) == base
    assert path(tiny_net(1), tiny_workload()) != base  # another checkpoint
    assert path(tiny_net(0), tiny_workload(precision="fp16")) != base
    assert path(tiny_net(0), Workload("tiny", batch_size=4, resolution=32)) != base
    assert path(tiny_net(0), Workload("tiny", batch_size=2, resolution=64)) != base
    # compute units are picked when loading: one package serves them all
    assert path(tiny_net(0), tiny_workload(options=(("units", "CPU_AND_NE"),))) == base


def test_io_problem_names_the_mismatch() -> None:
    found = {
        "type": "mlProgram",
        "inputs": [{"name": INPUT_NAME, "shape": [1, 3, 32, 32], "dtype": "FLOAT32"}],
        "outputs": [{"name": OUTPUT_NAME, "shape": [1, 10], "dtype": "FLOAT32"}],
    }
    assert io_problem(found, (1, 3, 32, 32), (1, 10)) is None
    assert "inputs" in str(io_problem(found, (2, 3, 32, 32), (2, 10)))
    assert "outputs" in str(io_problem(found, (1, 3, 32, 32), (1, 1000)))


@pytest.mark.parametrize(
    ("workload", "fragment"),
    [
        (tiny_workload(precision="bf16"), "bf16"),
        (tiny_workload(channels_last=True), "torch backend only"),
    ],
)
def test_unsupported_settings_are_one_line_bench_errors(tmp_path, workload, fragment) -> None:
    backend = CoreMLBackend()
    for call in (lambda: backend.check(workload), lambda: backend.prepare(tiny_net(), workload, tmp_path)):
        with pytest.raises(BenchError) as info:
            call()
        assert fragment in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "coreml").exists()  # refused before any conversion


def test_versions_and_platform_flag() -> None:
    backend = CoreMLBackend()
    assert backend.versions()["coremltools"][0].isdigit()
    assert (backend.cannot_time_reason() is None) == (sys.platform == "darwin")


@pytest.mark.parametrize(
    ("values", "fragment"), [({"units": "NPU"}, "--coreml-units"), ({"frontend": "onnx"}, "--coreml-frontend")]
)
def test_unknown_option_values_name_their_flag(values, fragment) -> None:
    with pytest.raises(BenchError) as info:
        CoreMLBackend.Options.from_mapping(values, "coreml")
    assert fragment in str(info.value) and "\n" not in str(info.value)


@pytest.mark.skipif(sys.platform == "darwin", reason="off macOS only: load must refuse")
def test_load_off_macos_is_a_clear_error(zoo) -> None:
    model, workload, _, prepared = zoo
    with pytest.raises(BenchError, match="needs macOS"):
        CoreMLBackend().load(model, prepared, workload, np.zeros(workload.input_shape, np.float32))


@pytest.mark.skipif(sys.platform != "darwin", reason="Core ML prediction needs macOS (Core ML framework)")
def test_prediction_matches_torch(zoo) -> None:
    model, workload, _, prepared = zoo
    x = np.random.default_rng(0).standard_normal(workload.input_shape, dtype=np.float32)
    with torch.inference_mode():
        expected = model(torch.from_numpy(x)).numpy()
    session = CoreMLBackend().load(model, prepared, workload, x)
    try:
        session.run()
        got = session.predict(x)
    finally:
        session.close()
    assert got.dtype == np.float32 and got.shape == expected.shape
    assert np.abs(got - expected).max() < 1e-2 * max(1.0, float(np.abs(expected).max()))
    assert (got.argmax(1) == expected.argmax(1)).all()
