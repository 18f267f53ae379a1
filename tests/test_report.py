"""`bench report`: paper tables with the right rows and numbers, plots on disk, environments kept apart."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import models
from bench.cli import main as cli_main
from bench.commands.report import write_report
from bench.core.formatting import PaperTable, latex_escape, render_paper_table
from bench.core.reporting import load_report
from bench.core.tables import main_table
from tests.conftest import assert_one_line_error, run_cli
from tests.result_fixtures import environment, write_run

MODELS = ("casvit_xs", "casvit_s", "swiftformer_xs", "efficientformer_l1", "mobilevitv2_100")
PLOTS = ("latency_vs_top1", "throughput_vs_top1", "throughput_vs_batch", "latency_distribution", "latency_vs_gmacs")


def _samples_of(run_dir: Path, model: str, batch: int) -> np.ndarray:
    summary = pd.read_csv(run_dir / "summary.csv")
    row_id = summary.loc[(summary["model"] == model) & (summary["infer_batch_size"] == batch), "row_id"].item()
    samples = pd.read_csv(run_dir / "samples.csv")
    return samples.loc[samples["row_id"] == row_id, "latency_ms"].to_numpy()


@pytest.fixture(scope="module")
def one_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("results")
    return write_run(
        root,
        label="onnx",
        env=environment(),
        backend="onnx",
        models=MODELS,
        batches=(1, 8),
        failed={"mobilevitv2_100": "export error: unsupported op"},
    )


@pytest.fixture(scope="module")
def report_dir(one_run: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    out = tmp_path_factory.mktemp("report")
    return out, write_report([one_run], out)


def test_table_rows_numbers_and_sources(one_run: Path, report_dir: tuple[Path, list[Path]]) -> None:
    out, _ = report_dir
    table = pd.read_csv(out / "table.csv")
    # one row per model, grouped by family in the zoo's (paper) order
    assert list(table["model"]) == ["casvit_xs", "casvit_s", "mobilevitv2_100", "swiftformer_xs", "efficientformer_l1"]
    assert list(table["name"][:2]) == ["CAS-ViT-XS", "CAS-ViT-S"]
    median_col = "ONNX Runtime CPU (A) median_ms b=1"
    p90_col = "ONNX Runtime CPU (A) p90_ms b=1"
    ips_col = "ONNX Runtime CPU (A) img_per_s b=8"
    for model in ("casvit_xs", "swiftformer_xs", "efficientformer_l1"):
        row = table.set_index("model").loc[model]
        x1, x8 = _samples_of(one_run, model, 1), _samples_of(one_run, model, 8)
        assert row[median_col] == pytest.approx(np.median(x1), rel=1e-9)
        assert row[p90_col] == pytest.approx(np.percentile(x1, 90), rel=1e-9)
        assert row[ips_col] == pytest.approx(8 * 1000 / np.median(x8), rel=1e-9)
        card = models.get_card(model)
        assert row["top1"] == card.top1 and row["top1_source"] == card.top1_source
        assert row["published_params_m"] == card.published_params_m
    # the failed model has a row without numbers
    assert pd.isna(table.set_index("model").loc["mobilevitv2_100", median_col])

    md = (out / "table.md").read_text()
    xs_line = next(line for line in md.splitlines() if line.startswith("| CAS-ViT-XS |"))
    assert f"{np.median(_samples_of(one_run, 'casvit_xs', 1)):.2f}" in xs_line
    assert "77.5 [1]" in xs_line
    mvit_line = next(line for line in md.splitlines() if line.startswith("| MobileViTv2-1.0 |"))
    assert "| 256 |" in mvit_line and "fail" in mvit_line
    assert "(A) ONNX Runtime 1.23.2 on CPU, fp32, 2 threads; machine bench-a: AMD EPYC 7B13" in md
    assert "export error: unsupported op" in md
    assert f"[1] Top-1 source: {models.get_card('casvit_xs').top1_source}" in md


def test_latex_table_is_booktabs_and_well_formed(report_dir: tuple[Path, list[Path]]) -> None:
    out, _ = report_dir
    tex = (out / "table.tex").read_text()
    for command in (r"\toprule", r"\midrule", r"\bottomrule", r"\begin{tabular}", r"\cmidrule(lr){6-9}"):
        assert command in tex
    assert r"\multicolumn{9}{l}{\textit{CAS-ViT}}" in tex
    assert r"77.5\textsuperscript{1}" in tex
    body = tex.split(r"\midrule", 1)[1].split(r"\bottomrule")[0]
    rows = [line for line in body.splitlines() if line.endswith(r"\\") and not line.startswith(r"\multicolumn")]
    assert len(rows) == len(MODELS) and all(line.count("&") == 8 for line in rows)
    assert latex_escape("a_b 5% #1 {x}") == r"a\_b 5\% \#1 \{x\}"


def test_plots_are_written_and_not_empty(report_dir: tuple[Path, list[Path]]) -> None:
    out, paths = report_dir
    for name in PLOTS:
        png, svg = out / f"{name}.png", out / f"{name}.svg"
        assert png in paths and svg in paths
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
        assert "<svg" in svg.read_text()[:2000] and svg.stat().st_size > 20_000
    report_md = (out / "report.md").read_text()
    assert "![latency vs top1](latency_vs_top1.png)" in report_md
    measurements = pd.read_csv(out / "measurements.csv")
    xs = measurements[(measurements["model"] == "casvit_xs") & (measurements["batch"] == 1)].iloc[0]
    assert xs["achieved_gflops"] == pytest.approx(2 * xs["gmacs"] * 1000 / xs["latency_median_ms"])


def test_two_environments_are_two_columns_never_averaged(tmp_path: Path) -> None:
    slow = write_run(tmp_path, label="a", env=environment(), backend="onnx", models=MODELS[:2], seed=1)
    fast_env = environment(hostname="bench-b", cpu_model="Intel Xeon Platinum 8481C", cpu_count=8)
    fast = write_run(tmp_path, label="b", env=fast_env, backend="onnx", models=MODELS[:2], seed=2, slowdown=0.5)
    report = load_report([tmp_path])
    assert [c.label for c in report.columns] == ["ONNX Runtime CPU @ bench-a", "ONNX Runtime CPU @ bench-b"]
    table = main_table(report)
    assert [title for title, _ in table.spans[1:]] == [
        "ONNX Runtime CPU @ bench-a (A)",
        "ONNX Runtime CPU @ bench-b (B)",
    ]
    xs = next(row for _, rows in table.groups for row in rows if row[0] == "CAS-ViT-XS")
    median_a, median_b = (float(xs[5]), float(xs[8]))
    assert median_a == pytest.approx(np.median(_samples_of(slow, "casvit_xs", 1)), abs=0.006)
    assert median_b == pytest.approx(np.median(_samples_of(fast, "casvit_xs", 1)), abs=0.006)
    assert median_b < 0.6 * median_a  # not the average of the two
    notes = "\n".join(table.notes)
    assert "machine bench-a: AMD EPYC 7B13 (2 logical CPUs)" in notes
    assert "machine bench-b: Intel Xeon Platinum 8481C (8 logical CPUs)" in notes
    assert "never combined" in notes


def test_same_setting_twice_uses_latest_run_and_says_so(tmp_path: Path) -> None:
    env = environment()
    write_run(tmp_path, label="first", env=env, backend="onnx", models=MODELS[:1], timestamp="2026-11-25T02:00:00")
    latest = write_run(
        tmp_path,
        label="second",
        env=env,
        backend="onnx",
        models=MODELS[:1],
        slowdown=1.5,
        timestamp="2026-11-25T03:00:00",
        seed=5,
    )
    report = load_report([tmp_path])
    assert len(report.columns) == 1
    m = report.measurements
    assert len(m) == 1 and m["run_id"].item() == latest.name
    assert m["latency_median_ms"].item() == pytest.approx(np.median(_samples_of(latest, "casvit_xs", 1)))
    assert any("latest run is used" in note and latest.name in note for note in report.notes)


def test_model_filter_and_paper_table_formats(one_run: Path) -> None:
    report = load_report([one_run], "casvit")
    assert set(report.measurements["model"]) == {"casvit_xs", "casvit_s"}
    table = main_table(report)
    text = render_paper_table(table, "table")
    assert "ONNX Runtime CPU (A)" in text.splitlines()[1] and "CAS-ViT-S" in text
    with pytest.raises(ValueError):
        PaperTable(header=["a", "b"], groups=[], align="l")


def test_report_command(one_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["report", "--results", str(one_run), "--out", str(tmp_path), "--no-plots", "--format", "markdown"]
    assert cli_main(args) == 0
    assert "| CAS-ViT-XS | 224 |" in capsys.readouterr().out
    assert {"table.csv", "table.md", "table.tex", "columns.csv", "measurements.csv"} <= {
        p.name for p in tmp_path.iterdir()
    }
    columns = pd.read_csv(tmp_path / "columns.csv")
    assert columns["env_id"].tolist() == [json.loads((one_run / "environment.json").read_text())["env_id"]]


def test_report_bad_input(tmp_path: Path) -> None:
    assert_one_line_error(run_cli("report", "--results", str(tmp_path / "missing")), "no results at")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "summary.csv").write_text("name,value\nx,1\n")
    assert_one_line_error(
        run_cli("report", "--results", str(foreign / "summary.csv"), "--out", str(tmp_path / "out")),
        "not a results directory of this suite",
    )
