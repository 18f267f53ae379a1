"""Findings come from the data: the README quotes findings.md word for word, and findings.md is what `bench report`
computes from the committed runs today. Editing a number in either, or changing the runs, fails here."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import numpy as np
import pytest

import models
from bench.core.findings import NEIGHBOUR_RATIO, findings_markdown
from bench.core.reporting import load_report
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
    report_md = (REPO / "reports" / "reference" / "report.md").read_text()
    command = shlex.split(re.search(r"Made by `([^`]+)`", report_md)[1])
    models_spec = command[command.index("--models") + 1] if "--models" in command else None
    fresh = findings_markdown(load_report([REPO / "results" / "reference"], models_spec))
    assert fresh == FINDINGS.read_text(), "regenerate reports/reference with the command its report.md states"


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


def test_findings_numbers_follow_the_rows(tmp_path: Path) -> None:
    """Two runtimes, one twice as slow for one model: the ratios, the fastest runtime and the neighbours follow."""
    chosen = ("casvit_xs", "casvit_s", "swiftformer_xs", "swiftformer_s", "efficientformer_l1")
    write_run(tmp_path, label="a", env=environment(), backend="onnx", models=chosen, seed=1)
    write_run(tmp_path, label="b", env=environment(), backend="torch", models=chosen, seed=2, slowdown=2.0)
    report = load_report([tmp_path])
    text = findings_markdown(report)
    m = report.measurements
    lat = m.pivot_table(index="model", columns="column", values="latency_ms")
    ratio = lat["B"] / lat["A"]
    assert "ONNX Runtime CPU (A) is the fastest runtime for 5 of 5 models" in text
    assert f"| PyTorch CPU (B) | {ratio.min():.2f}x | {ratio.median():.2f}x | {ratio.max():.2f}x" in text
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


def test_paper_table_decimals_are_consistent_and_params_have_one() -> None:
    from bench.core.tables import column_decimals, fmt_interval, paper_table

    report = load_report([REPO / "results" / "reference"])
    table = paper_table(report)
    body = [row for _, rows in table.groups for row in rows]
    text = [[c[0] if isinstance(c, tuple) else c for c in row] for row in body]
    for col in range(len(table.header)):
        cells = [row[col] for row in text if re.fullmatch(r"[\d.]+(±[\d.]+)?", row[col])]
        decimals = {len(c.split("±")[0].split(".")[1]) if "." in c.split("±")[0] else 0 for c in cells}
        assert len(decimals) <= 1, f"column {table.header[col]!r} mixes decimals: {cells}"
    assert all(re.fullmatch(r"\d+\.\d", row[1]) for row in text)  # params: one decimal
    assert all(re.fullmatch(r"\d+\.\d", row[3]) for row in text)  # top-1: one decimal
    # digits follow the interval: a ±0.4 interval keeps one decimal, ±4 none; the ± is never rounded down
    assert column_decimals([(10.3, 0.4), (6.0, 0.3), (8.1, 0.2)]) == 1
    assert column_decimals([(35.0, 4.0), (20.0, 3.0), (9.0, 0.05)]) == 0
    assert fmt_interval(3.8612, 0.041, 2) == "3.86±0.05" and fmt_interval(3.8612, None, 1) == "3.9"
    assert np.isclose(float(fmt_interval(10.0, 0.0001, 1).split("±")[1]), 0.1)  # at least one unit of the last digit


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
