"""Writing a report: every table (CSV, markdown, LaTeX; the full table and the slim paper tables), the findings,
the overview plots and the print figures, plus a ``report.md`` that says how to remake it.

Used by ``bench report`` and by ``bench run --report``.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.core.errors import BenchError
from bench.core.records.store import find_run_dirs, sittings
from bench.core.report.bibliography import bibtex
from bench.core.report.findings import findings_markdown
from bench.core.report.formatting import csv_text, render_paper_table
from bench.core.report.ratios import ratio_frame, speedup_frame
from bench.core.report.reporting import Column, Report, load_report
from bench.core.report.tables import (
    appendix_tables,
    columns_frame,
    main_table,
    measurements_frame,
    paper_columns,
    paper_frame,
    paper_table,
    ratio_table,
    speedup_table,
    table_frame,
)
from bench.core.util import write_output


@dataclass(frozen=True)
class PaperChoice:
    """What the paper outputs show: the one-column table's runtime and models (``None``: the first, all), and
    whether the print figures draw one Pareto front over all families or each family's own."""

    runtime: str | None = None
    models: str | None = None
    pareto: str = "global"
    ratio_to: str | None = None
    """The runtime the ratio tables and the findings divide by (None: ``runtime``, else the first column)."""
    sittings: tuple[str, ...] = ()
    """Results folders whose every sitting the findings are computed in (empty: the report's own)."""
    font: str = "sans"
    """The print figures' type: ``sans`` or ``serif`` (:data:`bench.core.report.figures.FONTS`)."""

    def reference(self, report: Report) -> Column:
        """The report column of the runtime every other is compared with (ratios, findings)."""
        if self.ratio_to:
            return paper_columns(report, self.ratio_to, "--ratio-to")[0]
        return paper_columns(report, self.runtime or report.columns[0].key)[0]


def report_command(
    results: Sequence[Path | str],
    out: Path | str,
    models: str | None = None,
    plots: bool = True,
    aspect: str = "default",
    paper: PaperChoice = PaperChoice(),
) -> str:
    """The command that writes a report again, as it is stated in its ``report.md``."""
    parts = ["python -m bench report", "--results", *(shlex.quote(str(p)) for p in results)]
    parts += ["--out", shlex.quote(str(out))]
    if models:
        parts += ["--models", shlex.quote(models)]
    if paper.runtime:
        parts += ["--paper-runtime", shlex.quote(paper.runtime)]
    if paper.models:
        parts += ["--paper-models", shlex.quote(paper.models)]
    if paper.pareto != "global":
        parts += ["--pareto", paper.pareto]
    if paper.ratio_to:
        parts += ["--ratio-to", shlex.quote(paper.ratio_to)]
    if paper.sittings:
        parts += ["--sittings", *(shlex.quote(str(p)) for p in paper.sittings)]
    if paper.font != "sans":
        parts += ["--figure-font", paper.font]
    if not plots:
        parts.append("--no-plots")
    if aspect != "default":
        parts += ["--aspect", aspect]
    return " ".join(parts)


# ------------------------------------------------------------------------------------ writing

FIGURES_DIR = "figures"
"""Where the print figures go inside a report (next to the overview plots)."""


def _report_markdown(report: Report, table_md: str, plot_paths: list[Path], plot_notes: list[str], command: str) -> str:
    runs = sorted({r for c in report.columns for r in c.run_ids})
    lines = [
        "# Benchmark report",
        "",
        f"Made by `{command}` ({len(runs)} run(s): {', '.join(runs)}).",
        "",
        table_md,
        "",
    ]
    pngs = [p for p in plot_paths if p.suffix == ".png" and p.parent.name != FIGURES_DIR]
    if pngs or plot_notes:
        lines += ["## Plots", ""]
    for p in pngs:
        lines += [f"![{p.stem.replace('_', ' ')}]({p.name})", ""]
    lines.extend(f"- {n}" for n in plot_notes)
    prints = sorted(p for p in plot_paths if p.parent.name == FIGURES_DIR and p.suffix == ".pdf")
    if prints:
        lines += [
            "",
            "## Figures for print",
            "",
            f"One file per panel in `{FIGURES_DIR}/`, as PDF (text kept as text) and 300 dpi PNG, at 3.3 in (one "
            "column) and 7 in (page width), every text 7 pt or more; panels of one plot share their scales. "
            "Hollow markers: unstable measurements; bars: the 95% prediction interval for another sitting.",
            "",
        ]
        lines.extend(f"- `{FIGURES_DIR}/{p.stem}` (.pdf, .png)" for p in prints)
    return "\n".join(lines)


def _paper_tables(report: Report, out_dir: Path, paper: PaperChoice) -> list[Path]:
    """The slim paper table across the page (every runtime) and its one-column variant (one runtime)."""
    names = None
    if paper.models:
        from bench.core.arguments import select_models

        names = select_models(paper.models)
    runtime = paper.runtime or report.columns[0].key
    column = paper_columns(report, runtime)[0].key
    wide = paper_table(report)
    narrow = paper_table(report, column, names, one_column=True)
    return [
        write_output(out_dir / "paper_table.tex", render_paper_table(wide, "latex")),
        write_output(out_dir / "paper_table.md", render_paper_table(wide, "markdown")),
        write_output(out_dir / "paper_table.csv", csv_text(paper_frame(report))),
        write_output(out_dir / "paper_table_column.tex", render_paper_table(narrow, "latex")),
    ]


def sitting_reports(report: Report, paper: PaperChoice, models: str | None) -> list[Report]:
    """One report per sitting (results folder, with the one ``--resume`` continued it in) of ``paper.sittings``, or
    of the report's inputs: what the findings are computed in."""
    folders = find_run_dirs([Path(p) for p in (paper.sittings or report.inputs)])
    return [load_report(sitting, models) for sitting in sittings(folders)]


def write_ratio_files(report: Report, out_dir: Path, ratio_to: str) -> list[Path]:
    """``ratios.csv`` (every ratio at full precision) and ``ratios.md``/``.tex`` (the paper table) for the sittings of
    the report that timed ``ratio_to`` beside another runtime; nothing when none did."""
    frame = ratio_frame(report, ratio_to)
    if frame.empty:
        return []
    table = ratio_table(report, frame)
    return [
        write_output(out_dir / "ratios.csv", csv_text(frame)),
        write_output(out_dir / "ratios.md", render_paper_table(table, "markdown")),
        write_output(out_dir / "ratios.tex", render_paper_table(table, "latex")),
    ]


def write_speedup_files(report: Report, out_dir: Path, over: str = "fp32") -> list[Path]:
    """``speedup.csv`` (every precision's speedup over ``over``, full precision) and ``speedup.md``/``.tex`` (the
    paper table) for the sittings that timed a runtime in ``over`` and another precision; nothing when none did."""
    frame = speedup_frame(report, over)
    if frame.empty:
        return []
    table = speedup_table(report, frame)
    return [
        write_output(out_dir / "speedup.csv", csv_text(frame)),
        write_output(out_dir / "speedup.md", render_paper_table(table, "markdown")),
        write_output(out_dir / "speedup.tex", render_paper_table(table, "latex")),
    ]


def _citations(report: Report) -> list[str]:
    """The papers of the report's models, in the tables' order (families, then variants)."""
    from bench.core.report.tables import _citation

    rows = report.measurements.drop_duplicates("model").sort_values(["family_order", "model_order", "model"])
    return [_citation(m) for m in rows["model"]]


def write_files(
    report: Report,
    out_dir: Path,
    plots: bool = True,
    aspect: str = "default",
    models: str | None = None,
    paper: PaperChoice = PaperChoice(),
) -> tuple[list[Path], list[str]]:
    """Write every table and plot of ``report`` into ``out_dir``; returns (paths, notes on skipped plots).

    ``models`` is the ``--models`` the report was made with, for the command its ``report.md`` states;
    ``paper`` chooses the one-column paper table's runtime and models.
    """
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BenchError(f"cannot create {out_dir}: {exc.strerror or exc}") from None
    table = main_table(report)
    table_md = render_paper_table(table, "markdown")
    paths = [
        write_output(out_dir / "table.csv", csv_text(table_frame(report))),
        write_output(out_dir / "table.md", table_md),
        write_output(
            out_dir / "table.tex", "\n\n".join(render_paper_table(t, "latex") for t in appendix_tables(report))
        ),
        write_output(out_dir / "columns.csv", csv_text(columns_frame(report))),
        write_output(out_dir / "measurements.csv", csv_text(measurements_frame(report))),
        *_paper_tables(report, out_dir, paper),
        write_output(
            out_dir / "findings.md",
            findings_markdown(report, sitting_reports(report, paper, models), paper.reference(report)),
        ),
        *write_ratio_files(report, out_dir, paper.reference(report).backend),
        *write_speedup_files(report, out_dir),
        write_output(out_dir / "references.bib", bibtex(_citations(report))),
    ]
    plot_paths: list[Path] = []
    plot_notes: list[str] = []
    if plots:
        from bench.core.report import figures
        from bench.core.report import plots as plotting  # matplotlib is slow to import; only when plotting

        panels = [plotting.Panel(c.key, c.title, c.machine_detail) for c in report.columns]
        plot_paths, plot_notes = plotting.write_plots(report.measurements, report.samples, panels, out_dir, aspect)
        print_panels = [figures.PrintPanel(c.key, c.label, c.backend) for c in report.columns]
        plot_paths += figures.write_figures(
            report.measurements,
            print_panels,
            out_dir / FIGURES_DIR,
            paper.pareto,
            paper.font,
            ratio_to=paper.reference(report).backend,
        )
    paths += plot_paths
    command = report_command(report.inputs, out_dir, models, plots, aspect, paper)
    paths.append(
        write_output(out_dir / "report.md", _report_markdown(report, table_md, plot_paths, plot_notes, command))
    )
    return paths, plot_notes


def write_report(
    result_paths: Sequence[Path | str],
    out_dir: Path | str,
    models: str | None = None,
    plots: bool = True,
    ratio_to: str | None = None,
) -> list[Path]:
    """Tables and plots for the runs in ``result_paths``, written to ``out_dir`` (for ``bench run --report``);
    ratios and findings relative to ``ratio_to`` (default: the first column)."""
    report = load_report(result_paths, models)
    present = {c.backend for c in report.columns}
    paper = PaperChoice(ratio_to=ratio_to if ratio_to in present else None)
    paths, _ = write_files(report, Path(out_dir), plots=plots, models=models, paper=paper)
    return paths
