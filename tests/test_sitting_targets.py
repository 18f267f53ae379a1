"""The arithmetic of tests/scripts/sitting_targets.py on synthetic sittings whose answers are known."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.sitting_fixtures import write_sitting

MODELS = {"casvit_xs": 6.0, "casvit_s": 9.0, "swiftformer_xs": 7.0, "efficientformer_l1": 14.0}


def _script():
    spec = importlib.util.spec_from_file_location("sitting_targets", REPO / "tests/scripts/sitting_targets.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _sitting(root: Path, label: str, phases: list[float], scale: dict[tuple[str, str], float] | None = None) -> Path:
    medians = {}
    for model, ms in MODELS.items():
        for backend, factor in (("onnx", 1.0), ("litert", 0.6)):
            s = (scale or {}).get((backend, model), 1.0)
            medians[(backend, model)] = [ms * factor * s * p for p in phases]
    return write_sitting(root / label, medians, label=label)


def test_a_slower_day_moves_latencies_but_not_ratios(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = _sitting(tmp_path, "a", [1.0, 1.2, 1.0, 1.1, 1.0])
    b = _sitting(tmp_path, "b", [1.3, 1.4, 1.3, 1.3, 1.35])  # every round 30% slower: a slow day
    code = _script().main([str(a), str(b)])
    out = capsys.readouterr().out
    assert "headline latency within 5%: 0/8 (0%)" in out
    assert "runtime ratio (over onnx) within 3%: 4/4 (100%)" in out
    assert code == 1 and "MISSED" in out


def test_shares_count_cells_and_ratios_and_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    phases = [1.0, 1.01, 0.99, 1.0, 1.02]
    a = _sitting(tmp_path, "a", phases)
    # b: 2% slower overall (within 5%), one cell 10% slower still (not), which moves one ratio by 10%
    b = _sitting(tmp_path, "b", [1.02 * p for p in phases], scale={("onnx", "casvit_xs"): 1.10})
    shares = {s.name: s for s in _script().evaluate([a, b], "onnx", rejudge=True, details=False)}
    latency = shares["headline latency within 5%"]
    assert (latency.hits, latency.total, latency.met) == (7, 8, False)
    ratio = shares["runtime ratio (over onnx) within 3%"]
    assert (ratio.hits, ratio.total) == (3, 4)
    assert shares[f"flagged unstable in {a.name}"].hits == 0


def test_flag_rate_of_one_sitting_rejudged_from_its_rounds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    medians = {("onnx", m): [ms] * 5 for m, ms in MODELS.items()}
    medians[("onnx", "casvit_s")] = [9.0, 10.8, 9.0, 10.8, 9.0]  # a 20% slowdown in two of five rounds
    run = write_sitting(tmp_path, medians, label="one")
    code = _script().main([str(run), "--rejudge"])
    out = capsys.readouterr().out
    assert f"flagged unstable in {run.name}: 1/4 (25%), target <= 20%: MISSED" in out and code == 1


def test_bad_input_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _script().main([str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "not a results directory" in err and err.count("\n") == 1
