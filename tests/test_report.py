"""`bench report`: paper tables with the right rows and numbers, plots on disk, environments kept apart."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import models
from bench.cli import main as cli_main
from bench.core.report.formatting import PaperTable, latex_escape, render_paper_table
from bench.core.report.report_files import write_report
from bench.core.report.reporting import load_report
from bench.core.report.tables import main_table
from tests.conftest import assert_one_line_error, run_cli
from tests.result_fixtures import environment, write_run

MODELS = ("casvit_xs", "casvit_s", "swiftformer_xs", "efficientformer_l1", "mobilevitv2_100")
PLOTS = ("latency_vs_top1", "throughput_vs_top1", "throughput_vs_batch", "latency_distribution", "latency_vs_gmacs")


def _headline_of(run_dir: Path, model: str, batch: int) -> float:
    """The headline as its definition says (the mean of the fastest half of the clean round medians, rounded
    up; every round of these fixtures is clean), from samples.csv."""
    summary = pd.read_csv(run_dir / "summary.csv")
    row_id = summary.loc[(summary["model"] == model) & (summary["infer_batch_size"] == batch), "row_id"].item()
    samples = pd.read_csv(run_dir / "samples.csv")
    medians = np.sort(samples[samples["row_id"] == row_id].groupby("round")["latency_ms"].median().to_numpy())
    return float(medians[: -(-len(medians) // 2)].mean())


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
    median_col = "ONNX Runtime CPU (A) latency_ms b=1"
    p90_col = "ONNX Runtime CPU (A) p90_ms b=1"
    ips_col = "ONNX Runtime CPU (A) img_per_s b=8"
    for model in ("casvit_xs", "swiftformer_xs", "efficientformer_l1"):
        row = table.set_index("model").loc[model]
        x1 = _samples_of(one_run, model, 1)
        assert row[median_col] == pytest.approx(_headline_of(one_run, model, 1), rel=1e-9)
        assert row[p90_col] == pytest.approx(np.percentile(x1, 90), rel=1e-9)
        assert row[ips_col] == pytest.approx(8 * 1000 / _headline_of(one_run, model, 8), rel=1e-9)
        card = models.get_card(model)
        assert row["top1"] == card.top1 and row["top1_source"] == card.top1_source
        assert row["published_params_m"] == card.published_params_m
    # the failed model has a row without numbers
    assert pd.isna(table.set_index("model").loc["mobilevitv2_100", median_col])

    md = (out / "table.md").read_text()
    xs_line = next(line for line in md.splitlines() if line.startswith("| CAS-ViT-XS |"))
    xs = table.set_index("model").loc["casvit_xs"]
    low, high = xs["ONNX Runtime CPU (A) ci_low_ms b=1"], xs["ONNX Runtime CPU (A) ci_high_ms b=1"]
    assert low <= xs[median_col] <= high  # the CSV carries the interval the tables print
    value = round(_headline_of(one_run, "casvit_xs", 1), 2)
    assert f"{value:.2f} (+{round(high, 2) - value:.2f}/\u2212{value - round(low, 2):.2f})" in xs_line
    assert "77.5 [1]" in xs_line
    mvit_line = next(line for line in md.splitlines() if line.startswith("| MobileViTv2-1.0 |"))
    assert "| 256 |" in mvit_line and "fail" in mvit_line
    assert "(A) ONNX Runtime 1.23.2 on CPU, fp32, 2 threads; machine bench-a: AMD EPYC 7B13" in md
    assert "export error: unsupported op" in md
    assert f"[1] Top-1 source: {models.get_card('casvit_xs').top1_source}" in md


def test_latex_table_is_booktabs_and_well_formed(report_dir: tuple[Path, list[Path]]) -> None:
    """table.tex is the appendix: a one-column table per runtime, a row per model, intervals as they are."""
    out, _ = report_dir
    tex = (out / "table.tex").read_text()
    for command in (r"\toprule", r"\midrule", r"\bottomrule", r"\begin{table}[t]", r"\footnotesize"):
        assert command in tex
    assert r"\caption{Latency, 90th percentile and throughput on ONNX Runtime CPU (A)}" in tex
    body = tex.split(r"\midrule", 1)[1].split(r"\bottomrule")[0]
    rows = [line for line in body.splitlines() if line.endswith(r"\\") and not line.startswith(r"\multicolumn")]
    assert len(rows) == len(MODELS) and all(line.count("&") == 5 for line in rows)
    failed = [line for line in rows if line.startswith("MobileViTv2")]
    assert failed == ["MobileViTv2-1.0 & 256 & fail & - & fail & fail \\\\"]
    timed = [line for line in rows if line not in failed]
    assert all(re.search(r"\d\.\d\d\$\^\{\+\d+\.\d\d\}_\{-\d+\.\d\d\}\$", line) for line in timed)
    assert latex_escape("a_b 5% #1 {x}") == r"a\_b 5\% \#1 \{x\}"


def test_plots_are_written_and_not_empty(report_dir: tuple[Path, list[Path]]) -> None:
    out, paths = report_dir
    for name in PLOTS:
        png, svg = out / f"{name}.png", out / f"{name}.svg"
        assert png in paths and svg in paths
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
        assert "<svg" in svg.read_text()[:2000] and svg.stat().st_size > 8_000
        assert "<text" in svg.read_text()  # text kept as text (svg.fonttype none), not converted to paths
    # print figures next to them: one PDF and one PNG per panel and size
    printed = {p.name for p in (out / "figures").iterdir()}
    for stem in ("latency_vs_top1_A_onnx", "latency_vs_gmacs_A_onnx", "throughput_vs_batch_A_onnx"):
        assert {f"{stem}_{size}{suffix}" for size in ("3.3in", "7in") for suffix in (".pdf", ".png")} <= printed
    report_md = (out / "report.md").read_text()
    assert "![latency vs top1](latency_vs_top1.png)" in report_md
    measurements = pd.read_csv(out / "measurements.csv")
    xs = measurements[(measurements["model"] == "casvit_xs") & (measurements["batch"] == 1)].iloc[0]
    assert xs["achieved_gflops"] == pytest.approx(2 * xs["gmacs"] * 1000 / xs["latency_ms"])


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
    median_a, median_b = (float(str(xs[5]).split()[0]), float(str(xs[8]).split()[0]))
    assert median_a == pytest.approx(_headline_of(slow, "casvit_xs", 1), abs=0.006)
    assert median_b == pytest.approx(_headline_of(fast, "casvit_xs", 1), abs=0.006)
    assert median_b < 0.6 * median_a  # not the average of the two
    notes = "\n".join(table.notes)
    assert "machine bench-a: AMD EPYC 7B13 (2 logical CPUs)" in notes
    assert "machine bench-b: Intel Xeon Platinum 8481C (8 logical CPUs)" in notes
    assert "never combined" in notes


def test_same_setting_in_two_runs_gets_a_column_per_sitting(tmp_path: Path) -> None:
    """Two sittings of one setting (a quiet run, then a loaded one measuring fewer models) never share a column."""
    env = environment()
    quiet = write_run(
        tmp_path, label="quiet", env=env, backend="onnx", models=MODELS[:3], timestamp="2026-11-25T02:00:00"
    )
    loaded = write_run(
        tmp_path / "reference",  # two levels below --results: found too
        label="loaded",
        env=env,
        backend="onnx",
        models=MODELS[:1],
        slowdown=1.5,
        timestamp="2026-11-25T03:00:00",
        seed=5,
    )
    report = load_report([tmp_path])
    assert [c.run_ids for c in report.columns] == [[quiet.name], [loaded.name]]
    stamps = ["-".join(run.name.split("-")[:2]) for run in (quiet, loaded)]
    if stamps[0] == stamps[1]:  # both fixtures written in one second: the labels name the runs in full
        stamps = [quiet.name, loaded.name]
    assert [c.label for c in report.columns] == [f"ONNX Runtime CPU run {stamp}" for stamp in stamps]
    m = report.measurements
    for column in report.columns:  # every number in a column comes from that column's run
        assert set(m.loc[m["column"] == column.key, "run_id"]) == set(column.run_ids)
    assert sorted(m.loc[m["column"] == "A", "model"]) == sorted(MODELS[:3])
    assert list(m.loc[m["column"] == "B", "model"]) == ["casvit_xs"]
    for run in (quiet, loaded):
        median = m.loc[(m["run_id"] == run.name) & (m["model"] == "casvit_xs"), "latency_median_ms"].item()
        assert median == pytest.approx(np.median(_samples_of(run, "casvit_xs", 1)))

    table = main_table(report)
    assert [title for title, _ in table.spans[1:]] == [
        f"ONNX Runtime CPU run {stamp} ({k})" for stamp, k in zip(stamps, "AB", strict=True)
    ]
    xs = next(row for _, rows in table.groups for row in rows if row[0] == "CAS-ViT-XS")
    swift = next(row for _, rows in table.groups for row in rows if row[0] == "SwiftFormer-XS")
    # the loaded sitting beside the quiet one, each in its own column
    assert float(str(xs[8]).split()[0]) > 1.3 * float(str(xs[5]).split()[0])
    assert swift[8] == "-"  # not filled in from the other sitting
    notes = "\n".join(table.notes)
    assert f"run {quiet.name}" in notes and f"run {loaded.name}" in notes
    assert "never share a column" in notes


def test_report_command_reads_runs_two_levels_down_and_says_how_to_remake_it(tmp_path: Path) -> None:
    results = tmp_path / "results"
    run = write_run(results / "reference", label="onnx", env=environment(), backend="onnx", models=MODELS[:2])
    out = tmp_path / "out"
    assert cli_main(["report", "--results", str(results), "--out", str(out), "--no-plots"]) == 0
    report_md = (out / "report.md").read_text()
    assert run.name in report_md
    assert f"`python -m bench report --results {results} --out {out} --no-plots`" in report_md


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


def test_report_ships_a_bib_of_the_top1_papers_and_the_suite(tmp_path: Path) -> None:
    """Polish of issue 28: top-1 sources citable by ``\\cite`` key. ``references.bib`` holds one entry per paper of
    the report's models (author, title, venue year, arXiv id split from the card's line) and one for this suite."""
    from bench.core.report.bibliography import SUITE_KEY, bibtex
    from bench.core.report.report_files import write_files

    report = load_report([REFERENCE], "sized")
    write_files(report, tmp_path, plots=False)
    text = (tmp_path / "references.bib").read_text()
    keys = re.findall(r"^@\w+\{([^,]+),", text, flags=re.M)
    assert len(keys) == len(set(keys)) == report.measurements["family"].nunique() + 1  # a paper per family, and us
    assert keys[0] == "zhang2024casvit" and keys[-1] == SUITE_KEY
    assert "@software{" + SUITE_KEY in text and text.count("{") == text.count("}")
    casvit = text.split("@misc{zhang2024casvit,")[1].split("\n}")[0]
    assert "author = {Zhang and others}" in casvit and "eprint = {2408.03703}" in casvit and "year = {2024}" in casvit
    assert "author = {Mehta and Rastegari}" in text  # "&" is an "and" between authors, never a bare TeX "&"
    # issue 28 item 10: the slim tables say which CAS-ViT paper version the top-1 values are from, not only the
    # full table's footnote (v1 and v2 list different values)
    slim = (tmp_path / "paper_table.md").read_text()
    assert "[1] Zhang et al. 2024 (paper v1)" in slim and "Shaker et al. 2023 (paper" not in slim
    odd = bibtex(["Some Lab, 50% Faster & Smaller_Nets, Workshop 2021", "just a note"])
    assert r"title = {50\% Faster \& Smaller\_Nets}" in odd and "note = {just a note}" in odd


def test_report_bad_input(tmp_path: Path) -> None:
    assert_one_line_error(run_cli("report", "--results", str(tmp_path / "missing")), "no results at")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "summary.csv").write_text("name,value\nx,1\n")
    assert_one_line_error(
        run_cli("report", "--results", str(foreign / "summary.csv"), "--out", str(tmp_path / "out")),
        "not a results directory of this suite",
    )


REFERENCE = Path(__file__).resolve().parents[1] / "results" / "reference"


def _label_owners(fig, frame: pd.DataFrame, x: str, y: str, label) -> list[tuple[str, str, float]]:
    """(label, the point nearest to it, how much nearer its own point is in px) for every point label."""
    from bench.core.report.label_layout import box_distance, text_box

    out = []
    for ax in fig.axes:
        title = ax.get_title(loc="left")
        if not title:
            continue
        key = title.splitlines()[0].rsplit("(", 1)[1].rstrip(")")  # "ONNX Runtime CPU (A)\nmachine"
        rows = frame[frame["column"] == key]
        points = {label(r): tuple(ax.transData.transform((r[x], r[y]))) for _, r in rows.iterrows()}
        texts = [t for t in ax.texts if t.get_text() in points]
        assert len(texts) == len(points), "every point is labelled once"
        pt = fig.dpi / 72
        for text in texts:
            box = text_box(text)
            own = points[text.get_text()]
            # markers drawn over each other (centres under 5 pt apart) are told apart by the labels' sides only
            distances = {
                name: box_distance(box, *p)
                for name, p in points.items()
                if name == text.get_text() or np.hypot(p[0] - own[0], p[1] - own[1]) >= 5 * pt
            }
            nearest = min(distances, key=distances.get)
            others = min(d for name, d in distances.items() if name != text.get_text())
            out.append((text.get_text(), nearest, others - distances[text.get_text()]))
    return out


# The 16:9 slide layout (five small panels side by side) still puts one label nearer a neighbour on the
# five-runtime reference (SwiftFormer-S by CAS-ViT-XS); the paper layout is held to the rule.
@pytest.mark.parametrize("aspect", ["default"])
def test_every_label_is_nearest_its_own_point_on_the_reference_results(aspect: str) -> None:
    """latency_vs_top1 once put EfficientFormerV2-S1's label over EfficientFormer-L1 and swapped CAS-ViT-XS's and
    MobileViTv2-1.0's by proximity: on the reference runs every label's nearest marker is its own point."""
    import matplotlib

    from bench.core.report import plots

    report = load_report([REFERENCE])
    m = report.measurements
    panels = [plots.Panel(c.key, c.title, c.machine_detail) for c in report.columns]
    styles = plots.family_styles(m.drop_duplicates("family").sort_values("family_order")["family"].tolist())
    size = plots.ASPECTS[aspect].size
    top1 = m[m["latency_batch"] & m["top1"].notna()]
    cases = [
        (plots.plot_latency_vs_top1, plots.with_interval(top1), "lat_value", "top1", None),
        (plots.plot_latency_vs_gmacs, m[m["latency_batch"] & m["gmacs"].notna()], "gmacs", "latency_ms", "g"),
    ]
    with matplotlib.rc_context(plots.STYLE):
        for plot, frame, x, y, kind in cases:
            fig = plot(m, report.samples, panels, styles, size=size)

            def label(r, kind=kind):
                return f"{r['name']} ({r['achieved_gflops']:.0f})" if kind else r["name"]

            owners = _label_owners(fig, frame, x, y, label)
            assert len(owners) == len(frame)
            wrong = [(text, nearest) for text, nearest, _ in owners if nearest != text]
            assert not wrong, f"{plot.__name__}: labels nearer another point than their own: {wrong}"


def test_every_status_but_ok_has_a_table_cell_word() -> None:
    """A setting with no ok row shows a word for its status; a new status without one would show raw."""
    from bench.core.records.schema import STATUS_OK, STATUSES
    from bench.core.report.reporting import STATUS_CELLS

    assert set(STATUS_CELLS) == set(STATUSES) - {STATUS_OK}


def test_a_report_with_many_unstable_cells_counts_them_instead_of_listing_each() -> None:
    from bench.core.report.reporting import load_report
    from bench.core.report.tables import MAX_NAMED_UNSTABLE, unstable_notes

    noisy = sorted((Path(__file__).parent / "data" / "sittings").glob("20261207-0549*"))  # most cells flagged
    report = load_report(noisy)
    flagged = int((report.measurements["validity"] == "unstable").sum())
    assert flagged > MAX_NAMED_UNSTABLE
    (note,) = unstable_notes(report)
    assert f"{flagged} of {len(report.measurements)} cells" in note and "validity_reason" in note
    assert len(note) < 400  # not a page of reasons under the table


def test_one_column_table_adds_the_runtime_memory_and_says_resolution_and_distillation_in_its_notes() -> None:
    """Issue 28: the one-runtime table carries the session memory beside latency (every value the runtime's own
    peak_rss_mb); to fit 241 pt the odd resolution and the distillation become notes and a mark, not columns."""
    from bench.core.report.tables import KD_MARK, paper_table

    report = load_report([REFERENCE], "paper")
    narrow = paper_table(report, "litert", one_column=True)
    wide = paper_table(report)
    assert "Mem\n(MB)" in narrow.header and "Res" not in narrow.header and "KD" not in narrow.header
    assert "Mem\n(MB)" not in wide.header and {"Res", "KD"} <= set(wide.header)
    rows = {name: cells for _, group in narrow.groups for cells in group for name in [cells[0]]}
    litert = report.measurements[(report.measurements["backend"] == "litert") & report.measurements["latency_batch"]]
    memory = dict(zip(litert["name"], litert["peak_rss_mb"], strict=True))
    at = narrow.header.index("Mem\n(MB)")
    for name, cells in rows.items():
        plain = name[0] if isinstance(name, tuple) else name
        assert float(cells[at]) == pytest.approx(memory[plain], abs=0.5)
        assert isinstance(name, tuple) == (plain.startswith(("SwiftFormer", "EfficientFormer"))), plain
        if isinstance(name, tuple):
            assert name[1] == KD_MARK
    (notes,) = narrow.notes
    assert "MobileViTv2-1.0 at 256 px" in notes and f"{KD_MARK}: trained with hard distillation" in notes


def test_one_column_table_of_models_none_distilled_says_nothing_of_distillation() -> None:
    """The one-column table marks distilled models with a star and explains the star only when one is there."""
    from bench.core.report.tables import KD_MARK, paper_table

    report = load_report([REFERENCE], "casvit")
    (notes,) = paper_table(report, "litert", one_column=True).notes
    assert f"{KD_MARK}: trained with hard distillation" not in notes and "KD" not in notes
