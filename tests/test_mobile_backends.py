"""ExecuTorch, OpenVINO and LiteRT through the real CLI: parity-checked rows with their delegation facts.

Each test skips with the reason when its runtime is not installed (``pip install '.[all]'``); LiteRT's
converter lives in its own environment (``python -m bench.backends.litert --setup``), which these
tests never create: they skip where it is missing.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.backends import backend_class
from bench.core.records.store import load_results
from tests.conftest import REPO, run_cli

QUICK = ["--resolution", "64", "--warmup", "1", "--warmup-time", "0", "--iters", "3", "--min-time", "0"]
QUICK += ["--rounds", "1", "--no-flops", "--no-progress", "--processes", "1", "--budget", "0"]


def _needs(backend: str) -> None:
    reason = backend_class(backend).unavailable_reason()
    if reason is not None:
        pytest.skip(reason)


def _run(backend: str, models: str, tmp_path: Path, *extra: str):
    proc = run_cli("run", "--backend", backend, "--models", models, *QUICK, *extra, "--out", str(tmp_path / "r"))
    summary, _, envs = load_results([tmp_path / "r"]) if (tmp_path / "r").exists() else (None, None, None)
    return proc, summary, envs


def test_executorch_delegates_to_xnnpack_and_passes_parity(tmp_path: Path) -> None:
    _needs("executorch")
    proc, summary, envs = _run("executorch", "casvit_xs", tmp_path, "--cache-dir", str(tmp_path / "cache"))
    assert proc.returncode == 0, proc.stderr
    row = summary.iloc[0]
    assert row["status"] == "ok" and row["parity_max_abs_diff"] < 1e-3
    detail = json.loads(row["runtime_detail"])
    assert int(detail["delegated_nodes"]) > 0
    assert next(iter(envs.values()))["backend_versions"]["executorch"].startswith("1.")
    assert list((tmp_path / "cache" / "executorch").glob("*.pte"))


def test_openvino_runs_and_records_its_devices(tmp_path: Path) -> None:
    _needs("openvino")
    proc, summary, _ = _run("openvino", "casvit_xs,swiftformer_xs", tmp_path, "--threads", "1")
    assert proc.returncode == 0, proc.stderr
    assert set(summary["status"]) == {"ok"} and (summary["parity_max_abs_diff"] < 1e-3).all()
    detail = json.loads(summary.iloc[0]["runtime_detail"])
    assert "CPU" in json.dumps(detail)


def _litert_converter() -> None:
    _needs("litert")
    from bench.backends import litert

    try:
        litert.converter_python(REPO / ".cache" / "bench", create=False)
    except Exception as exc:
        pytest.skip(f"no LiteRT converter environment ({exc}); `python -m bench.backends.litert --setup`")


def test_litert_converts_mobilevitv2_after_the_broadcast_fix(tmp_path: Path) -> None:
    _litert_converter()
    proc, summary, _ = _run("litert", "casvit_xs,mobilevitv2_050", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert set(summary["status"]) == {"ok"}, summary[["model", "status", "error"]]


def test_an_unavailable_runtime_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reason = backend_class("executorch").unavailable_reason()
    if reason is None:
        pytest.skip("executorch is installed here; the missing-runtime message cannot occur")
    proc = run_cli("run", "--backend", "executorch", "--out", str(tmp_path))
    assert proc.returncode == 2 and "pip install" in proc.stderr
