"""Findings come from the data: the README quotes findings.md word for word, and findings.md is what `bench report`
computes from the committed runs today. Editing a number in either, or changing the runs, fails here."""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import models
from bench.core.report.findings import NEIGHBOUR_RATIO, findings_markdown
from bench.core.report.reporting import load_report
from tests.conftest import REPO
from tests.result_fixtures import environment, write_run

FINDINGS = REPO / "reports" / "reference" / "findings.md"
BEGIN = "<!-- findings: begin (copy of reports/reference/findings.md; do not edit here) -->\n"
END = "<!-- findings: end -->"


def readme_findings() -> str:
    text = (REPO / "README.md").read_text()
    assert BEGIN in text and END in text, "the README's results section lost its findings block"
    return text.split(BEGIN, 1)[1].split(END, 1)[0]


def test_readme_quotes_findings_md_exactly() -> None:
    assert readme_findings() == FINDINGS.read_text(), "run: python tests/scripts/readme_findings.py"


def test_findings_md_is_what_report_computes_from_the_committed_runs() -> None:
    """The committed findings.md equals a fresh computation with the command reports/reference/report.md states."""
    from bench.core.report.report_files import PaperChoice, sitting_reports

    report_md = (REPO / "reports" / "reference" / "report.md").read_text()
    command = shlex.split(re.search(r"Made by `([^`]+)`", report_md)[1])

    def option(name: str) -> list[str]:
        if name not in command:
            return []
        rest = command[command.index(name) + 1 :]
        return rest[: next((i for i, word in enumerate(rest) if word.startswith("--")), len(rest))]

    models_spec = (option("--models") or [None])[0]
    report = load_report([REPO / p for p in option("--results")], models_spec)
    paper = PaperChoice(runtime=(option("--paper-runtime") or [None])[0], sittings=tuple(str(REPO / p) for p in
                        option("--sittings")))  # fmt: skip
    fresh = findings_markdown(report, sitting_reports(report, paper, models_spec), paper.reference(report))
    assert fresh == FINDINGS.read_text(), "regenerate reports/reference with the command its report.md states"
    assert len(option("--sittings")) >= 2, "the findings are computed over every committed sitting"


def test_readme_results_section_states_no_number_outside_the_findings() -> None:
    """Between the results heading and the trust table, every number is inside the quoted findings (or a command)."""
    text = (REPO / "README.md").read_text()
    section = text.split("## Reference results", 1)[1].split("### How much to trust a number", 1)[0]
    outside = section.replace(readme_findings(), "")
    outside = re.sub(r"```.*?```", "", outside, flags=re.DOTALL)  # commands
    outside = re.sub(r"`[^`]*`", "", outside)  # file and column names
    outside = re.sub(r"\[[^\]]*\]\([^)]*\)", "", outside)  # links
    numbers = re.findall(r"\d+(?:\.\d+)?\s*(?:%|ms|x|×)", outside)
    assert not numbers, f"numbers in the README's results section that findings.md does not state: {numbers}"


def one_sitting(root: Path, *runs: Path) -> Path:
    """The runs merged into the first one's folder: one sitting timing every runtime of them."""
    first = runs[0]
    for name in ("summary.csv", "samples.csv", "rounds.csv"):
        frames = [pd.read_csv(run / name, dtype=str, keep_default_na=False) for run in runs]
        merged = pd.concat([f.assign(run_id=first.name) if "run_id" in f else f for f in frames], ignore_index=True)
        merged.to_csv(first / name, index=False)
    for run in runs[1:]:
        shutil.rmtree(run)
    return first


def test_findings_numbers_follow_the_rows(tmp_path: Path) -> None:
    """Two runtimes in one sitting, one twice as slow: the ratios, the fastest runtime and the neighbours follow."""
    chosen = ("casvit_xs", "casvit_s", "swiftformer_xs", "swiftformer_s", "efficientformer_l1")
    a = write_run(tmp_path, label="a", env=environment(), backend="onnx", models=chosen, seed=1)
    b = write_run(tmp_path, label="b", env=environment(), backend="torch", models=chosen, seed=2, slowdown=2.0)
    one_sitting(tmp_path, a, b)
    report = load_report([tmp_path])
    text = findings_markdown(report)
    m = report.measurements
    lat = m.pivot_table(index="model", columns="column", values="latency_ms")
    ratio = lat["B"] / lat["A"]
    assert "ONNX Runtime CPU (A) has the lowest latency for 5 of 5 models" in text
    assert f"| PyTorch CPU (B) | {ratio.median():.2f}x | {ratio.min():.2f}x" in text
    # size-matched neighbours: within the declared ratio, never across it
    rows = [line for line in text.splitlines() if line.startswith("| CAS-ViT-")]
    pairs = {tuple(cell.strip() for cell in line.split("|")[1:3]) for line in rows}
    params = m.drop_duplicates("model").set_index("name")["params_m"]
    for ours, theirs in pairs:
        assert 1 / NEIGHBOUR_RATIO <= params[ours] / params[theirs] <= NEIGHBOUR_RATIO
    assert ("CAS-ViT-XS", "SwiftFormer-XS") in pairs and ("CAS-ViT-XS", "EfficientFormer-L1") not in pairs
    xs = lat.loc["casvit_xs"] / lat.loc["swiftformer_xs"]
    line = next(r for r in rows if "| CAS-ViT-XS | SwiftFormer-XS |" in r)
    assert f"{xs['A']:.2f}x" in line and f"{xs['B']:.2f}x" in line


def test_the_fastest_runtime_is_named_whatever_the_ratios_are_divided_by(tmp_path: Path) -> None:
    """One sitting, ratios over the slower runtime: the fastest is still named, not called a split between sittings."""
    chosen = ("casvit_xs", "swiftformer_xs", "efficientformer_l1")
    a = write_run(tmp_path, label="a", env=environment(), backend="onnx", models=chosen, seed=3)
    b = write_run(tmp_path, label="b", env=environment(), backend="torch", models=chosen, seed=4, slowdown=2.0)
    one_sitting(tmp_path, a, b)
    report = load_report([tmp_path])
    slower = next(c for c in report.columns if c.backend == "torch")
    text = findings_markdown(report, None, slower)
    assert "ONNX Runtime CPU (A) has the lowest latency for 3 of 3 models" in text
    assert "fastest for most models differs" not in text
    assert "**Latency relative to PyTorch CPU (B)**" in text


def test_findings_hold_across_sittings_or_are_dropped(tmp_path: Path) -> None:
    """Three sittings: a claim is stated with its spread over them, and one whose direction flips is not made."""
    chosen = ("casvit_xs", "swiftformer_xs", "efficientformer_l1")
    folders = []
    for i, torch_speed in enumerate((2.0, 2.2, 0.5)):  # PyTorch slower in two sittings, faster in the third
        root = tmp_path / f"s{i}"
        a = write_run(root, label=f"a{i}", env=environment(), backend="onnx", models=chosen, seed=10 * i)
        b = write_run(root, label=f"b{i}", env=environment(), backend="torch", models=chosen, seed=10 * i + 1,
                      slowdown=torch_speed)  # fmt: skip
        folders.append(one_sitting(root, a, b))
    sittings = [load_report([f]) for f in folders]
    both = findings_markdown(sittings[0], sittings[:2])
    ratios = [s.measurements.pivot_table(index="model", columns="column", values="latency_ms") for s in sittings[:2]]
    medians = sorted(float((r["B"] / r["A"]).median()) for r in ratios)
    assert f"| PyTorch CPU (B) | {np.median(medians):.2f}x ({medians[0]:.2f}-{medians[1]:.2f}x) |" in both
    assert "within each of 2 sitting(s)" in both and "3 of 3 models" in both
    flipped = findings_markdown(sittings[0], sittings)
    assert "differs between sittings" in flipped and "lowest latency" not in flipped
    assert "| 0 of 3 |" in flipped  # slower in every sitting: none
    assert "faster in some sittings and slower in others for" in flipped


def test_sized_set_gives_every_casvit_size_neighbours_from_the_other_families() -> None:
    """The size-matched set, as declared by the families: each CAS-ViT size has a baseline of at least three other
    families within the neighbour ratio, and every family says why it chose its variants."""
    sized = models.sized_set()
    assert set(models.paper_set()) <= set(sized)
    cards = {n: models.get_card(n) for n in sized}
    for name in models.get_family("casvit").sized_variants:
        size = cards[name].published_params_m
        near = {
            c.family
            for c in cards.values()
            if c.family != "casvit" and 1 / NEIGHBOUR_RATIO <= c.published_params_m / size <= NEIGHBOUR_RATIO
        }
        assert len(near) >= 3, f"{name} ({size} M) has neighbours from {near} only"
    for family_id in models.list_families():
        family = models.get_family(family_id)
        assert family.sized_variants and family.sized_reason
        assert set(family.sized_variants) <= set(models.list_models(family_id))
        assert family.distillation in ("", "hard") and family.distillation_source
    # as the papers state: SwiftFormer and EfficientFormer V1/V2 distilled, MobileViTv2 and CAS-ViT not
    assert {f: models.get_family(f).distillation for f in models.list_families()} == {
        "casvit": "",
        "mobilevitv2": "",
        "swiftformer": "hard",
        "efficientformer": "hard",
        "efficientformerv2": "hard",
    }


def test_paper_table_prints_intervals_as_they_are_with_consistent_decimals() -> None:
    from bench.core.report.formatting import Interval
    from bench.core.report.tables import interval_cell, interval_decimals, paper_table

    report = load_report([REPO / "results" / "reference"])
    table = paper_table(report)
    body = [row for _, rows in table.groups for row in rows]
    text = [[str(c[0] if isinstance(c, tuple) else c) for c in row] for row in body]
    for col in range(len(table.header)):
        numbers = [re.findall(r"\d+(?:\.\d+)?", row[col]) for row in text if re.match(r"\d", row[col])]
        decimals = {len(n.split(".")[1]) if "." in n else 0 for found in numbers for n in found}
        assert len(decimals) <= 1, f"column {table.header[col]!r} mixes decimals: {numbers}"
    names = [row[0] for row in text]
    assert all(re.fullmatch(r"\d+\.\d", row[2]) for row in text)  # params: one decimal (3.2, 12.4)
    assert all(re.fullmatch(r"\d+\.\d", row[4]) for row in text)  # top-1: one decimal (78.1, not 78.09)
    assert text[names.index("MobileViTv2-1.0")][1] == "256"  # the resolution, where models differ in it
    # every latency cell is the interval as it is: value +(high - value) / -(value - low), from the rows
    m = report.measurements
    rows = m[m["latency_batch"]].set_index(["name", "column"])
    for row, cells in zip(text, body, strict=True):
        for key, cell in zip([c.key for c in report.columns], cells[-len(report.columns) :], strict=True):
            interval = cell[0] if isinstance(cell, tuple) else cell
            r = rows.loc[(row[0], key)]
            if pd.isna(r["latency_ci_low_ms"]):  # one clean round: a value, and no interval is made up
                assert not isinstance(interval, Interval) and float(interval) == pytest.approx(
                    r["latency_ms"], abs=0.05
                )
                continue
            assert isinstance(interval, Interval)
            assert float(interval.value) == pytest.approx(r["latency_ms"], abs=0.005)
            assert float(interval.value) + float(interval.plus) == pytest.approx(r["latency_ci_high_ms"], abs=0.011)
            assert float(interval.value) - float(interval.minus) == pytest.approx(r["latency_ci_low_ms"], abs=0.011)
    # the cases: disjoint intervals never print the same number; an asymmetric one keeps its shape
    digits = interval_decimals([(6.97, 6.91, 7.09), (7.46, 7.25, 7.86), (21.45, 21.45, 26.01)])
    assert digits == 2 and interval_cell(21.45, 21.45, 26.01, digits) == Interval("21.45", "4.56", "0.00")
    assert interval_decimals([(7.04, 7.0, 7.04), (7.043, 7.042, 7.06)]) == 3  # 7.04 twice, yet disjoint: one more
    assert interval_cell(3.8612, None, None, 1) == "3.9"
    assert str(Interval("21.45", "4.56", "0.00")) == "21.45 (+4.56/\u22120.00)"


@pytest.mark.parametrize("bad", ["nonesuch", "Z"])
def test_bad_paper_runtime_is_one_line(bad: str, tmp_path: Path) -> None:
    from tests.conftest import assert_one_line_error, run_cli

    write_run(tmp_path / "runs", label="a", env=environment(), backend="onnx", models=("casvit_xs",))
    result = run_cli(
        "report",
        "--results",
        str(tmp_path / "runs"),
        "--out",
        str(tmp_path / "out"),
        "--no-plots",
        "--paper-runtime",
        bad,
    )
    assert_one_line_error(result, f"--paper-runtime {bad!r} is not a column of this report")


def test_the_front_within_intervals_keeps_a_model_no_front_model_beats_clearly() -> None:
    """Issue 28: a Pareto front that respects uncertainty. Two models 0.06 ms apart with overlapping intervals: the
    slower, less accurate one is off the strict front but not clearly off; once the intervals part, it is off."""
    import numpy as np

    from bench.core.report.plot_style import front_within_intervals, pareto_front

    x, y = np.array([10.00, 10.06, 20.0]), np.array([78.0, 77.5, 80.0])
    low, high = np.array([9.9, 9.95, 19.0]), np.array([10.1, 10.2, 21.0])
    assert pareto_front(x, y, smaller_x_better=True).tolist() == [0, 2]
    assert front_within_intervals(x, y, low, high, smaller_x_better=True).tolist() == [0, 1, 2]
    apart = np.array([9.9, 10.05, 19.0]), np.array([10.0, 10.2, 21.0])
    assert front_within_intervals(x, y, *apart, smaller_x_better=True).tolist() == [0, 2]
    no_interval = np.full(3, np.nan)  # a value without an interval stands for both ends: the strict front
    assert front_within_intervals(x, y, no_interval, no_interval, smaller_x_better=True).tolist() == [0, 2]
