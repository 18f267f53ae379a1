"""Every LaTeX table the suite writes compiles with a real ``pdflatex -halt-on-error``, hostile data included.

Each table goes into a minimal ``article`` with ``booktabs`` (and ``graphicx``, which the wide tables
say they need), in one and in two columns; a TeX error, or a character TeX had to drop, fails the test.
Without ``pdflatex`` the tests skip, unless ``BENCH_REQUIRE_PDFLATEX=1`` (set by ``.ci/run``) makes
that a failure.
"""

from __future__ import annotations

import dataclasses
import re
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import models
from bench.cli import main as cli_main
from bench.core.report.formatting import PaperTable, latex_escape, latex_table, render_paper_table
from bench.core.report.ratios import ratio_frame
from bench.core.report.report_files import write_report
from bench.core.report.reporting import load_report
from bench.core.report.tables import appendix_tables, main_table, paper_table, ratio_table
from tests.conftest import REPO
from tests.result_fixtures import environment, write_run

SPECIALS = "_ % & # ~ ^ \\ { } $"
UNICODE = "× ± ≤ ≥ µ – — ² ’ “q” é è ü ñ ç ß ø ł ą Å Ω α 中文 😀 ﬁ e\u0301 \u200b"
HOSTILE = f'{SPECIALS} < > | [1] *x "q" ` -- {UNICODE}'
"""Every LaTeX special, the characters OT1 prints wrongly, row-start traps and Unicode."""

PACKAGES = ("booktabs", "graphicx")


def compile_latex(
    pdflatex: str,
    directory: Path,
    pieces: dict[str, str],
    *,
    twocolumn: bool = False,
    t1: bool = False,
    packages: tuple[str, ...] = PACKAGES,
    preamble_lines: tuple[str, ...] = (),
) -> str:
    """Compile ``pieces`` (file name -> LaTeX) ``\\input`` one after the other; returns the log, fails on error."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in pieces.items():
        (directory / name).write_text(text, encoding="utf-8")
    preamble = [r"\documentclass[twocolumn]{article}" if twocolumn else r"\documentclass{article}"]
    preamble += [rf"\usepackage{{{p}}}" for p in packages]
    if t1:
        preamble.append(r"\usepackage[T1]{fontenc}")
    preamble += preamble_lines
    body = [rf"\input{{{name}}}\par\bigskip" for name in pieces]
    name = f"doc-{'two' if twocolumn else 'one'}-{'t1' if t1 else 'ot1'}"
    document = [*preamble, r"\tracinglostchars=1", r"\begin{document}", *body, r"\end{document}", ""]
    (directory / f"{name}.tex").write_text("\n".join(document), encoding="ascii")
    # T1 fonts may only exist as METAFONT sources: draft mode checks the TeX without making the PDF's fonts
    command = [pdflatex, "-halt-on-error", "-interaction=nonstopmode", "-no-shell-escape"]
    command += ["-draftmode"] if t1 else []
    proc = subprocess.run(
        [*command, f"{name}.tex"], cwd=directory, capture_output=True, text=True, errors="replace", timeout=120
    )
    log_path = directory / f"{name}.log"
    log = log_path.read_text(errors="replace") if log_path.exists() else proc.stdout
    problems = [line for line in log.splitlines() if line.startswith("!") or "Missing character" in line]
    assert proc.returncode == 0 and not problems, f"{directory / name}.tex: {problems}\n{log[-3000:]}"
    if not t1:
        assert (directory / f"{name}.pdf").stat().st_size > 1000
    return log


def compile_everywhere(pdflatex: str, directory: Path, pieces: dict[str, str], *, t1: bool = False) -> None:
    """One- and two-column documents (and with ``\\usepackage[T1]{fontenc}`` when ``t1``)."""
    for twocolumn in (False, True):
        compile_latex(pdflatex, directory / f"{int(twocolumn)}", pieces, twocolumn=twocolumn)
    if t1:
        compile_latex(pdflatex, directory / "t1", pieces, twocolumn=True, t1=True)


def tex_files(directory: Path) -> dict[str, str]:
    found = {p.relative_to(directory).as_posix().replace("/", "-"): p.read_text() for p in directory.rglob("*.tex")}
    assert found, f"no .tex written in {directory}"
    return found


# ------------------------------------------------------------------------------------ escaping


def test_latex_escape_leaves_only_safe_ascii() -> None:
    assert latex_escape("a_b 5% #1 {x}") == r"a\_b 5\% \#1 \{x\}"
    assert latex_escape(r"\&~^$") == r"\textbackslash{}\&\textasciitilde{}\textasciicircum{}\$"
    assert latex_escape("[1] *") == "{[}1{]} {*}"  # never an optional argument or star of a preceding \\
    assert latex_escape("<a>|b") == r"\textless{}a\textgreater{}\textbar{}b"
    assert latex_escape("3×3 ±1 ≤2 µs 1–2 x² it’s é ß") == (
        r"3\ensuremath{\times}3 \ensuremath{\pm}1 \ensuremath{\leq}2 \ensuremath{\mu}s 1--2 "
        r"x\textsuperscript{2} it's \'{e} \ss{}"
    )
    assert latex_escape("a\nb\tc\x00d ½ ⅓ «q»") == r"a b cd 1/2 1/3 \ensuremath{\ll}q\ensuremath{\gg}"
    every = "".join(chr(c) for c in range(0x20, 0x3000)) + HOSTILE
    escaped = latex_escape(every)
    assert escaped.isascii() and escaped.isprintable()
    # what is left of the input outside commands has no special character unescaped
    bare = re.sub(r"\\[A-Za-z]+|\\.|\{[^{}]*\}", "", escaped)
    assert not set(bare) & set("&%$#_^\\<>|")  # ~ is a no-break space


def test_every_character_compiles(pdflatex: str, tmp_path: Path) -> None:
    """All of Latin-1, Latin Extended-A/B, Greek, punctuation and maths symbols, and astral characters."""
    ranges = [(0x20, 0x250), (0x370, 0x400), (0x2000, 0x2300), (0x1F600, 0x1F610)]
    text = "".join(chr(c) for lo, hi in ranges for c in range(lo, hi))
    words = [latex_escape(text[i : i + 40]) for i in range(0, len(text), 40)]
    compile_latex(pdflatex, tmp_path / "ot1", {"chars.tex": "\n\n".join(words)})
    compile_latex(pdflatex, tmp_path / "t1", {"chars.tex": "\n\n".join(words)}, t1=True)


# ------------------------------------------------------------------------------------ paper tables


def _paper_table(columns: int, text: str) -> PaperTable:
    header = ["Model", *[f"{text} {i}" if i == 1 else f"c{i}" for i in range(1, columns)]]
    rows: list[list[str | tuple[str, str]]] = [
        [f"[1] {text}", *[("77.5", "1") if i == 1 else "1.0" for i in range(1, columns)]],
        ["*starred", *[("80.1", "*") if i == 1 else "-" for i in range(1, columns)]],
    ]
    return PaperTable(
        header=header,
        groups=[(text, rows), ("", [["plain", *["2.0"] * (columns - 1)]])],
        align="l" + "r" * (columns - 1),
        spans=[("", 1), (text, columns - 1)],
        title=f"Title {text}",
        notes=[f"(A) machine {text}", f"[1] Top-1 source: {text}", f"[*] {text}", f"[2] not a mark: {text}"],
        label=f"tab:{text}",
    )


def test_narrow_paper_table_is_a_plain_float(pdflatex: str, tmp_path: Path) -> None:
    tex = render_paper_table(_paper_table(3, "x"), "latex")
    assert r"\begin{table}[t]" in tex and "graphicx" not in tex and r"\resizebox" not in tex
    # the notes are paragraphs, the marked ones with the cells' superscript: no \\ before a [
    assert r"\textsuperscript{1}\,Top-1 source: x\par" in tex and r"\textsuperscript{{*}}\,x\par" in tex
    assert "{[}2{]} not a mark" in tex
    assert not re.search(r"\\\\\s*[\[*]", tex)
    compile_latex(pdflatex, tmp_path, {"narrow.tex": tex}, packages=("booktabs",))


def test_paper_table_with_hostile_strings_compiles(pdflatex: str, tmp_path: Path) -> None:
    narrow = render_paper_table(_paper_table(2, HOSTILE), "latex")
    wide = render_paper_table(_paper_table(14, HOSTILE), "latex")
    assert r"\begin{table*}[t]" in wide and r"\resizebox{\linewidth}{!}" in wide and "graphicx" in wide
    for tex in (narrow, wide):
        assert tex.isascii() and not re.search(r"\\\\\s*[\[*]", tex)
        assert re.search(r"\\label\{tab:[A-Za-z0-9:._/-]+\}", tex)
    compile_everywhere(pdflatex, tmp_path, {"narrow.tex": narrow, "wide.tex": wide}, t1=True)


# ------------------------------------------------------------------------------------ files the suite writes

REPORT_MODELS = ("casvit_xs", "casvit_s", "casvit_m", "casvit_t", "mobilevitv2_100", "swiftformer_xs")


def test_report_tables_compile(pdflatex: str, tmp_path: Path) -> None:
    """`bench report` over two machines and two backends: every .tex it writes compiles."""
    env_b = environment(hostname="bench-b", cpu_model="Intel Xeon Platinum 8481C", cpu_count=8)
    write_run(tmp_path / "runs", label="a", env=environment(), backend="onnx", models=REPORT_MODELS, batches=(1, 8))
    write_run(tmp_path / "runs", label="b", env=env_b, backend="onnx", models=REPORT_MODELS, seed=2)
    write_run(
        tmp_path / "runs",
        label="c",
        env=environment(),
        backend="torch",
        models=REPORT_MODELS,
        failed={"swiftformer_xs": "export error: 50% of ops_unsupported & #1 {x}"},
        seed=3,
    )
    out = tmp_path / "report"
    write_report([tmp_path / "runs"], out, plots=False)
    pieces = tex_files(out)
    assert "table.tex" in pieces
    # the appendix: one one-column table per runtime column (two machines, two backends: three)
    assert pieces["table.tex"].count(r"\begin{table}[t]") == 3 and r"\begin{table*}" not in pieces["table.tex"]
    tex = render_paper_table(main_table(load_report([tmp_path / "runs"])), "latex")  # the full table (table.md)
    pieces["full.tex"] = tex
    assert r"\begin{table*}" in tex and "graphicx" in tex.splitlines()[0]
    # the four CAS-ViT sources differ only in their last clause: one footnote, referenced by each row
    casvit_rows = [line for line in tex.splitlines() if line.startswith("CAS-ViT-")]
    assert len(casvit_rows) == 4 and all(r"\textsuperscript{1} &" in line for line in casvit_rows)
    assert tex.count(r"\,Top-1 source:") == 3  # CAS-ViT, MobileViTv2, SwiftFormer
    source = next(line for line in tex.splitlines() if line.startswith(r"\textsuperscript{1}\,"))
    assert "78.3/78.7 (CAS-ViT-XS), 80.9/81.1 (CAS-ViT-S), 82.8/83.0 (CAS-ViT-M), 83.9/84.1 (CAS-ViT-T)" in source
    assert not re.search(r"\\\\\s*[\[*]", tex)
    compile_everywhere(pdflatex, tmp_path / "tex", pieces)


def test_reference_results_table_compiles(pdflatex: str, tmp_path: Path) -> None:
    """The committed reference runs, rendered by this version of the suite."""
    report = load_report([REPO / "results" / "reference"])
    tex = render_paper_table(main_table(report), "latex")
    compile_everywhere(pdflatex, tmp_path, {"reference.tex": tex})


def test_hostile_model_family_source_and_machine_compile(
    pdflatex: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An external model's name, family and top-1 source, and a machine description, full of LaTeX traps."""
    get_card, get_family = models.get_card, models.get_family

    def hostile_card(name: str) -> models.ModelCard:
        card = get_card(name)
        return dataclasses.replace(card, variant=f"{card.variant} {HOSTILE}", top1_source=f"{HOSTILE}; {name}")

    monkeypatch.setattr(models, "get_card", hostile_card)
    monkeypatch.setattr(models, "get_family", lambda f: dataclasses.replace(get_family(f), label=f"{f} {HOSTILE}"))
    hostile_env = environment(hostname=f"host {HOSTILE}", cpu_model=f"CPU {HOSTILE}")
    write_run(tmp_path / "runs", label="a", env=environment(), backend="onnx", models=REPORT_MODELS[:3])
    write_run(tmp_path / "runs", label="b", env=hostile_env, backend="onnx", models=REPORT_MODELS[:3], seed=4)
    out = tmp_path / "report"
    write_report([tmp_path / "runs"], out, plots=False)
    pieces = tex_files(out)
    assert latex_escape(HOSTILE) in pieces["table.tex"]
    assert cli_main(["list", "--models", "casvit", "--format", "latex", "--full"]) == 0
    pieces["list.tex"] = capsys.readouterr().out
    assert latex_escape(HOSTILE) in pieces["list.tex"]
    compile_everywhere(pdflatex, tmp_path / "tex", pieces, t1=True)


def test_list_and_compare_latex_compile(pdflatex: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pieces = {}
    for name, args in {"list": [], "list-full": ["--full"]}.items():
        assert cli_main(["list", "--format", "latex", *args]) == 0
        pieces[f"{name}.tex"] = capsys.readouterr().out
    old = write_run(tmp_path / "old", label="old", env=environment(), backend="onnx", models=REPORT_MODELS, seed=1)
    new = write_run(
        tmp_path / "new", label="new", env=environment(), backend="onnx", models=REPORT_MODELS, seed=2, slowdown=1.3
    )
    assert cli_main(["compare", str(old), str(new), "--format", "latex"]) == 1
    pieces["compare.tex"] = capsys.readouterr().out
    for text in pieces.values():
        assert text.startswith("% generated by `python -m bench`; needs \\usepackage{booktabs}")
        assert r"\begin{tabular}" in text and r"\bottomrule" in text
    compile_everywhere(pdflatex, tmp_path / "tex", pieces)


def test_flops_latex_compiles(pdflatex: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["flops", "--models", "swiftformer_xs", "--resolution", "64", "--format", "latex", "--no-save"]
    assert cli_main(args) == 0
    compile_everywhere(pdflatex, tmp_path, {"flops.tex": capsys.readouterr().out})


def test_plain_latex_table_with_hostile_frame_compiles(pdflatex: str, tmp_path: Path) -> None:
    df = pd.DataFrame({HOSTILE: [HOSTILE, "[2] x\n\ny"], "n": [1.5, float("nan")], "*": ["*", "[3]"]})
    tex = latex_table(df)
    assert tex.isascii() and not re.search(r"\\\\\s*[\[*]", tex)
    compile_everywhere(pdflatex, tmp_path, {"frame.tex": tex}, t1=True)


# ------------------------------------------------------------------------------------ the paper tables at print size

# (text width, column width) in pt of two-column venues: IEEEtran conference and ACM sigconf
LAYOUTS = {"ieee": (516.0, 252.0), "acm": (506.0, 241.0)}
MIN_TYPE_PT = 7.0
NOTE_LINES = {"paper.tex": 8, "column.tex": 16}
"""Lines of notes at most: they define the headline and its interval, the marks, params and the sources."""

# Logs the natural width of every table box the suite sizes to \linewidth, with the line width and type size
# there (the table is scaled by min(1, line / width)).
MEASURE_TABLES = (
    r"\makeatletter",
    r"\let\benchusebox\usebox",
    r"\renewcommand\usebox[1]{\typeout{BENCHBOX width=\the\wd#1;line=\the\linewidth;size=\f@size;}\benchusebox{#1}}",
    r"\makeatother",
)
# the notes' minipage, typeset as a box of the same width whose height tells how many lines the notes take
NOTES_BOX = (
    r"\setbox2=\vbox\bgroup\hsize=\linewidth",
    r"\par\xdef\benchskip{\the\baselineskip}\egroup"
    r"\typeout{BENCHNOTES height=\the\dimexpr\ht2+\dp2\relax;skip=\benchskip;}\box2",
)


def _pt(text: str) -> float:
    return float(text.removesuffix("pt"))


def measure_in_layout(pdflatex: str, directory: Path, pieces: dict[str, str], layout: str) -> tuple[list, list]:
    """Compile ``pieces`` in a two-column document of ``layout``; returns the tables' (width, line, size) in pt and
    the number of lines of each table's notes."""
    text, column = LAYOUTS[layout]
    measured = {
        name: tex.replace(r"\begin{minipage}{\linewidth}", NOTES_BOX[0]).replace(r"\end{minipage}", NOTES_BOX[1])
        for name, tex in pieces.items()
    }
    geometry = (
        rf"\setlength{{\textwidth}}{{{text}pt}}",
        rf"\setlength{{\columnsep}}{{{text - 2 * column}pt}}",
        r"\setlength{\oddsidemargin}{-30pt}",
        *MEASURE_TABLES,
    )
    log = compile_latex(pdflatex, directory, measured, twocolumn=True, preamble_lines=geometry)
    log = log.replace("\n", "")  # TeX wraps long log lines at 79 characters
    boxes = [
        (_pt(w), _pt(line), float(size))
        for w, line, size in re.findall(r"BENCHBOX width=([\d.]+pt);line=([\d.]+pt);size=([\d.]+);", log)
    ]
    notes = [
        round(_pt(h) / _pt(skip) + 0.2) for h, skip in re.findall(r"BENCHNOTES height=([\d.]+pt);skip=([\d.]+pt);", log)
    ]
    return boxes, notes


def _with_intervals(report) -> None:
    """Give every row the headline columns the way the suite computes them from round medians (3 rounds: min-max)."""
    import json

    medians = report.measurements["round_medians_ms"].map(json.loads)
    report.measurements["latency_ms"] = medians.map(np.median)
    report.measurements["latency_ci_low_ms"] = medians.map(min)
    report.measurements["latency_ci_high_ms"] = medians.map(max)


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("intervals", [False, True], ids=["median", "interval"])
def test_paper_tables_read_at_print_size_in_two_columns(
    pdflatex: str, tmp_path: Path, layout: str, intervals: bool
) -> None:
    """The slim table spans \\textwidth as table*, its one-column variant fits \\columnwidth, both in type of 7 pt
    or more as printed (never scaled below it), with at most three lines of notes; the full table stays the
    appendix table (scaled, as before)."""
    report = load_report([REPO / "results" / "reference"])
    if intervals:
        _with_intervals(report)
    else:  # rows without an interval (the loader gives every row with round medians one)
        report.measurements[["latency_ci_low_ms", "latency_ci_high_ms"]] = np.nan
    wide = render_paper_table(paper_table(report), "latex")
    narrow = render_paper_table(paper_table(report, "litert", one_column=True), "latex")
    assert r"\begin{table*}" in wide and r"\begin{table}[t]" in narrow
    assert ("$^{+" in wide) == intervals  # the interval as it is, upper and lower side
    frame = ratio_frame(report, "litert")
    pieces = {
        "paper.tex": wide,
        "column.tex": narrow,
        "full.tex": "\n\n".join(render_paper_table(t, "latex") for t in appendix_tables(report)),
        "ratios.tex": render_paper_table(ratio_table(report, frame), "latex"),
    }
    boxes, notes = measure_in_layout(pdflatex, tmp_path, pieces, layout)
    text, column = LAYOUTS[layout]
    names = ["paper.tex", "column.tex", *["full.tex"] * len(report.columns), "ratios.tex"]
    assert [line for _, line, _ in boxes] == [text, column, *[column] * len(report.columns), text]
    for (width, line, size), name in zip(boxes, names, strict=True):
        printed = size * min(1.0, line / width)
        assert printed >= MIN_TYPE_PT, (
            f"{name}: type printed at {printed:.1f} pt (natural width {width:.0f} > {line} pt)"
        )
        assert width <= line, f"{name} is scaled: natural width {width:.0f} pt in a {line} pt line"
        assert size >= (7.0 if name == "column.tex" else 8.0), f"{name} is set in {size} pt type"
    assert "Float too large" not in (tmp_path / "doc-two-ot1.log").read_text(), "a table is taller than the page"
    # the notes say how the number was measured (the headline's definition), yet stay a short paragraph
    assert notes[0] <= NOTE_LINES["paper.tex"] and notes[1] <= NOTE_LINES["column.tex"], f"notes take {notes[:2]} lines"
