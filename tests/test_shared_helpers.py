"""Concepts that used to exist twice and drifted apart, now with one home each: the backend-list parser,
the exception-to-one-line rule, the file hash, the spare plot styles, the results-folder name, the latest
ok row per setting, and model families found on disk (a new family is one file)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import models
from bench.backends import BACKENDS, backend_list
from bench.core.errors import BenchError
from bench.core.records.store import new_run_dir
from bench.core.util import sha256_file
from models.errors import one_line
from tests.conftest import REPO


def test_backend_list_accepts_all_and_refuses_repeats_and_unknown_names() -> None:
    assert backend_list("torch, onnx") == ["torch", "onnx"]
    assert backend_list("all", allow_all=True) == list(BACKENDS)
    for text, fragment in (("onnx,onnx", "more than once"), ("onnx,tensorrt", "'tensorrt'"), ("onnx,", "''")):
        with pytest.raises(BenchError, match=fragment) as caught:
            backend_list(text, "--backends")
        assert str(caught.value).startswith("--backends")


def test_complexity_refuses_a_repeated_backend_like_accuracy(tmp_path: Path) -> None:
    from tests.conftest import assert_one_line_error, run_cli

    for command in (["complexity", "--backends", "onnx,onnx", "--no-save"], ["accuracy", "--backend", "onnx,onnx"]):
        extra = ["--models", "casvit_xs", "--data", str(tmp_path)] if command[0] == "accuracy" else []
        assert_one_line_error(run_cli(*command, *extra), "onnx more than once")


def test_one_line_keeps_the_first_line_and_names_the_type() -> None:
    assert one_line(RuntimeError("first\nsecond")) == "RuntimeError: first"
    assert one_line(RuntimeError("first\nsecond"), with_type=False) == "first"
    assert one_line(ValueError("")) == "ValueError" == one_line(ValueError("  \n"), with_type=False)
    assert len(one_line(RuntimeError("x" * 1000))) == 300


def test_file_hash(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(os.urandom(3 << 20))  # more than one read block
    assert sha256_file(path) == hashlib.sha256(path.read_bytes()).hexdigest()


def test_two_runs_of_one_process_in_one_second_get_distinct_folders(tmp_path: Path) -> None:
    first, second = new_run_dir(tmp_path, "accuracy"), new_run_dir(tmp_path, "accuracy")
    assert first != second and first.is_dir() and second.is_dir() and second.name.startswith(first.name)


def test_an_external_family_and_an_undeclared_family_get_different_styles(tmp_path: Path) -> None:
    from bench.core.report.plot_style import family_styles
    from models import external

    factory = tmp_path / "mine.py"
    factory.write_text(
        "import torch\n\n\ndef net():\n    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LazyLinear(3))\n\n\n"
        'net.bench_card = {"resolution": 32, "family": "Spare Style Check"}\n'
    )
    name, _ = external.register(f"{factory}:net")
    family = models.get_card(name).family
    styles = family_styles([family, "a family from an older run", "another"])
    assert len(set(styles.values())) == 3
    declared = models.get_family(family)
    assert (styles[family].color, styles[family].marker) == (declared.color, declared.marker)  # as registered
    assert family_styles([family])[family] == styles[family]  # stable within a process


TINY_FAMILY = """
from torch import nn

from models.registry import Family, ModelCard, register_family, register_model

FAMILY = register_family(Family(id="tiny", label="Tiny", color="#123456", marker="D", counting_rule="fvcore"))


CARD = ModelCard("tiny_a", "tiny", "A", 32, None, None, None, "", "")


@register_model(CARD)
def tiny_a(*, distillation: bool, num_classes: int, img_size: int) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * img_size * img_size, num_classes))
"""


def test_a_family_module_dropped_into_models_appears_in_bench_list(tmp_path: Path) -> None:
    shutil.copytree(REPO / "models", tmp_path / "models", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "models" / "tiny.py").write_text(TINY_FAMILY)
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{REPO}"}
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "list", "--models", "tiny", "--format", "csv"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "tiny_a,tiny,A,32" in proc.stdout


def test_latest_ok_row_per_setting_is_one_rule_for_report_and_compare(monkeypatch: pytest.MonkeyPatch) -> None:
    """Report and compare show a setting measured again by its latest ok row (never a failed or latency-less
    one); compare keeps its rows in the order the settings first appear."""
    import pandas as pd

    from bench.core.measure import verdicts
    from bench.core.records.schema import latest_ok

    rows = pd.DataFrame(
        {
            "model": ["a", "b", "a", "a", "c"],
            "backend": "onnx",
            "device": "cpu",
            "run_id": ["r1", "r1", "r2", "r3", "r3"],
            "row_id": ["1", "2", "1", "1", "2"],
            "status": ["ok", "ok", "ok", "failed", "ok"],
            "latency_median_ms": [1.0, 2.0, 3.0, float("nan"), float("nan")],
            "env_id": "e",
            "source_tool": ["", "", "", "", "benchmark_model"],
        }
    )
    chosen = latest_ok(rows, ["model", "backend"])
    assert list(zip(chosen["model"], chosen["run_id"], strict=True)) == [("b", "r1"), ("a", "r2")]

    samples = pd.DataFrame(columns=["run_id", "row_id", "round", "latency_ms"])
    monkeypatch.setattr(verdicts, "load_results", lambda paths: (rows, samples, {}))
    side = verdicts.Side(Path("results"), "OLD", None)
    assert [(c.model, c.run_id) for c in side.ok.values()] == [("a", "r2"), ("b", "r1")]  # typed cells
    assert [(r["model"], r["run_id"]) for r in side.failed.values()] == [("a", "r3")]
    assert list(side.medianless.values()) == ["benchmark_model"]  # ok without a median: not a failure
    assert "_match" not in next(iter(side.failed.values())).index
