"""``--precision fp32,int8``: precision is part of a cell, so one sitting interleaves precisions like runtimes;
a runtime that cannot run one of them leaves those cells out (said on stderr); the report divides each
precision by fp32 within the sitting (speedup.csv/.md/.tex)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from bench.core.records.store import load_results
from tests.conftest import assert_one_line_error, run_cli
from tests.test_int8 import TINY
from tests.test_latex import compile_everywhere


@pytest.fixture(scope="module")
def mixed_sitting(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("precisions")
    proc = run_cli("run", "--backend", "onnx,torch", "--precision", "fp32,int8", *TINY, "--out", str(out / "r"),
                   "--cache-dir", str(out / "cache"))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return out, proc.stderr


def test_a_precision_list_is_one_sitting_of_cells_each_with_its_precision(mixed_sitting: tuple[Path, str]) -> None:
    out, stderr = mixed_sitting
    summary, _, _ = load_results([out / "r"])
    cells = sorted(zip(summary["backend"], summary["precision"], strict=True))
    assert cells == [("onnx", "fp32"), ("onnx", "int8"), ("torch", "fp32")]  # torch has no int8 path
    assert "torch backend supports --precision fp32 or fp16 or bf16, not int8; its int8 cells are left out" in stderr
    assert summary["run_id"].nunique() == 1 and (summary["status"] == "ok").all()
    (run_dir,) = (out / "r").iterdir()
    assert run_dir.name.split("-")[-3:-1] == ["cpu", "fp32+int8"]
    orders = json.loads((run_dir / "environment.json").read_text())["round_order"]
    for order in orders:  # every round times both precisions, interleaved with the other runtime
        assert sorted(key.rsplit("/", 1)[1] for key in order) == ["fp32", "fp32", "int8"]


def test_the_report_divides_each_precision_by_fp32_of_the_same_runtime_and_sitting(
    mixed_sitting: tuple[Path, str],
) -> None:
    out, _ = mixed_sitting
    proc = run_cli("report", "--results", str(out / "r"), "--out", str(out / "report"), "--no-plots")
    assert proc.returncode == 0, proc.stderr
    summary, _, _ = load_results([out / "r"])
    latency = {p: summary[(summary["backend"] == "onnx") & (summary["precision"] == p)]["latency_ms"].iloc[0]
               for p in ("fp32", "int8")}  # fmt: skip
    (line,) = pd.read_csv(out / "report" / "speedup.csv").itertuples()
    assert (line.backend, line.precision, line.speedup_over) == ("onnx", "int8", "fp32")
    assert line.speedup == pytest.approx(latency["fp32"] / latency["int8"])
    table = (out / "report" / "speedup.md").read_text()
    assert "ONNX Runtime int8" in table and "CAS-ViT-XS" in table
    assert "calibrated on 16 seeded synthetic images" in table and "not for accuracy" in table
    ratios = pd.read_csv(out / "report" / "ratios.csv")
    assert set(ratios["precision"]) == {"fp32"}  # runtimes are compared at one precision only
    paper = (out / "report" / "paper_table.md").read_text()
    assert "(B) int8: quantized by the runtime's own post-training tool, calibrated on 16 seeded" in paper
    findings = (out / "report" / "findings.md").read_text()
    relative, precisions = findings.split("**Precisions against fp32**")
    assert "CPU int8" not in relative.split("**Which runtime is fastest.**")[1]  # runtimes compared at fp32
    assert f"int8 is {line.speedup:.2f}x as fast as fp32" in precisions


@pytest.mark.parametrize(
    ("backends", "precision", "fragments"),
    [
        ("onnx", "fp32,fp32", ("--precision", "lists fp32 more than once")),
        ("onnx", "fp32,int4", ("--precision", "unknown precision 'int4'")),
        ("onnx", "fp32,", ("--precision", "unknown precision an empty entry")),
        ("torch,onnx", "bf16", ("the onnx backend supports --precision fp32 or fp16 or int8, not bf16",)),
    ],
)
def test_a_precision_list_no_runtime_can_run_is_one_line(
    tmp_path: Path, backends: str, precision: str, fragments: tuple[str, ...]
) -> None:
    proc = run_cli("run", "--backend", backends, "--precision", precision, *TINY, "--out", str(tmp_path))
    assert_one_line_error(proc, *fragments)
    assert not any(tmp_path.iterdir())


def test_the_speedup_figure_has_a_marker_per_model_and_runtime_at_print_size(mixed_sitting: tuple[Path, str]) -> None:
    from matplotlib.collections import PathCollection

    from bench.core.report import figures
    from bench.core.report.reporting import load_report

    out, _ = mixed_sitting
    drawn = dict(figures.speedup_figures(load_report([out / "r"]).measurements))
    assert set(drawn) == {"speedup_int8_3.3in", "speedup_int8_7in"}
    for stem, fig in drawn.items():
        assert fig.get_size_inches()[0] == figures.SIZES[stem.rsplit("_", 1)[1]][0]
        assert figures.smallest_text_pt(fig) >= figures.MIN_TEXT_PT
        (ax,) = fig.axes
        assert [t.get_text() for t in ax.get_yticklabels()] == ["CAS-ViT-XS"]
        points = [c.get_offsets() for c in ax.collections if isinstance(c, PathCollection)]  # markers, not bars
        assert sum(len(p) for p in points) == 1  # one runtime ran both precisions


def test_the_speedup_table_compiles_in_one_and_two_columns(mixed_sitting: tuple[Path, str], pdflatex: str) -> None:
    out, _ = mixed_sitting
    proc = run_cli("report", "--results", str(out / "r"), "--out", str(out / "latex-report"), "--no-plots")
    assert proc.returncode == 0, proc.stderr
    compile_everywhere(pdflatex, out / "latex", {"speedup.tex": (out / "latex-report" / "speedup.tex").read_text()})
