"""Runtime ratios from the cells' headlines, on synthetic sittings whose answer is known."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from bench.cli import main as cli_main
from bench.core.measure.stats import headline
from bench.core.report.ratios import ratio_frame
from bench.core.report.reporting import load_report
from tests.conftest import assert_one_line_error, run_cli
from tests.sitting_fixtures import write_sitting

PHASES = [1.0, 1.5, 1.0, 1.4, 1.05]
"""How slow the whole machine was in each round: it moves every runtime of that round."""


def _sitting(root: Path, label: str = "s") -> Path:
    return write_sitting(
        root,
        {
            ("onnx", "casvit_xs"): [10.0 * p for p in PHASES],
            ("litert", "casvit_xs"): [6.0 * p for p in PHASES],  # 0.6 x onnx in every phase
            ("torch", "casvit_xs"): [20.0 * p for p in PHASES],
            ("onnx", "swiftformer_xs"): [8.0 * p for p in PHASES],
            ("litert", "swiftformer_xs"): [8.8 * p for p in PHASES[:4]],  # one round missing: 4 pairs
        },
        label=label,
    )


def test_slow_phases_do_not_enter_a_ratio(tmp_path: Path) -> None:
    frame = ratio_frame(load_report([_sitting(tmp_path)]), "onnx").set_index(["model", "backend"])
    xs = frame.loc[("casvit_xs", "litert")]
    assert xs["ratio"] == pytest.approx(0.6, rel=1e-6)
    assert xs["ratio_ci_low"] <= 0.6 <= xs["ratio_ci_high"]
    assert xs["rounds"] == 5
    assert frame.loc[("casvit_xs", "torch"), "ratio"] == pytest.approx(2.0, rel=1e-6)
    swift = frame.loc[("swiftformer_xs", "litert")]
    expected = headline([8.8 * p for p in PHASES[:4]]).value / headline([8.0 * p for p in PHASES]).value
    assert swift["ratio"] == pytest.approx(expected, rel=1e-6) and swift["rounds"] == 4
    # the ratio is the quotient of the two cells' headlines, so the ratio table and the latency table agree
    assert xs["latency_ms"] == pytest.approx(headline([6.0 * p for p in PHASES]).value, rel=1e-6)
    assert xs["ratio_to_latency_ms"] == pytest.approx(headline([10.0 * p for p in PHASES]).value, rel=1e-6)


def test_a_runtime_slowed_in_some_rounds_is_compared_on_its_fast_phase(tmp_path: Path) -> None:
    run = write_sitting(
        tmp_path,
        {("onnx", "casvit_xs"): [10.0, 15.0, 10.0, 15.0, 10.0], ("torch", "casvit_xs"): [15.0, 15.0, 15.0, 15.0, 15.0]},
    )
    r = ratio_frame(load_report([run]), "onnx").iloc[0]
    assert r["ratio"] == pytest.approx(1.5)  # onnx's fastest half: its three rounds at 10 ms
    assert r["ratio_ci_low"] < 1.5 < r["ratio_ci_high"]  # where another sitting's ratio falls


def test_ratios_stay_inside_one_sitting_and_report_writes_them(tmp_path: Path) -> None:
    a = _sitting(tmp_path / "a", "a")
    only_onnx = write_sitting(tmp_path / "b", {("onnx", "casvit_xs"): [9.0] * 5}, label="b")
    frame = ratio_frame(load_report([a, only_onnx]), "onnx")
    assert set(frame["run_id"]) == {a.name}
    out = tmp_path / "report"
    argv = ["report", "--results", str(tmp_path), "--out", str(out), "--no-plots", "--ratio-to", "litert"]
    assert cli_main(argv) == 0
    written = pd.read_csv(out / "ratios.csv")
    onnx_xs = written[(written["model"] == "casvit_xs") & (written["backend"] == "onnx")]
    assert onnx_xs["ratio"].item() == pytest.approx(1 / 0.6, rel=1e-6)
    md = (out / "ratios.md").read_text()
    assert "relative to LiteRT" in md and "1.67" in md
    assert "\\begin{tabular" in (out / "ratios.tex").read_text()


def test_a_ratio_runtime_the_results_lack_is_one_line_naming_it(tmp_path: Path) -> None:
    _sitting(tmp_path / "runs")
    out = tmp_path / "report"
    proc = run_cli("report", "--results", str(tmp_path / "runs"), "--out", str(out), "--no-plots",
                   "--ratio-to", "openvino")  # fmt: skip
    assert_one_line_error(proc, "--ratio-to 'openvino' is not a column")  # under its own name, not --paper-runtime
    assert not (out / "ratios.csv").exists()
