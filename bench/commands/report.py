"""``bench report``: paper-style tables and plots from one or more results directories."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.core.report.formatting import PAPER_FORMATS, csv_text, render_paper_table
from bench.core.report.report_files import PaperChoice, write_files
from bench.core.report.reporting import load_report
from bench.core.report.tables import main_table, table_frame


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--results",
        nargs="+",
        type=Path,
        default=[Path("results")],
        metavar="PATH",
        help="results directories (a run, or a folder of runs) or summary.csv files (default: results/)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("reports"),
        help="output directory (default: reports/, git-ignored; the committed reference is reports/reference)",
    )
    parser.add_argument(
        "--models", default=None, help="only these models: names, family ids, 'paper', 'sized' or 'all' (default: all)"
    )
    parser.add_argument(
        "--format",
        choices=(*PAPER_FORMATS, "csv"),
        default="table",
        help="how the table is printed on the terminal (files are written in every format)",
    )
    parser.add_argument(
        "--paper-runtime",
        default=None,
        metavar="BACKEND",
        help="the runtime of the one-column paper table (paper_table_column.tex): a backend name or a column "
        "letter (default: the first column)",
    )
    parser.add_argument(
        "--paper-models",
        default=None,
        metavar="MODELS",
        help="the models of the one-column paper table: names, family ids, 'paper', 'sized' (default: every model)",
    )
    parser.add_argument(
        "--pareto",
        choices=("global", "family"),
        default="global",
        help="Pareto front of the print figures: one over all models (default) or each family's own",
    )
    parser.add_argument(
        "--figure-font",
        choices=("sans", "serif"),
        default="sans",
        help="type of the print figures (figures/): sans-serif (default) or a Times-like serif, to sit beside a "
        "serif body text",
    )
    parser.add_argument("--no-plots", action="store_true", help="write the tables only")
    parser.add_argument(
        "--ratio-to",
        default=None,
        metavar="BACKEND",
        help="the runtime every other runtime's latency is divided by in ratios.csv/.md/.tex and findings.md, within "
        "each multi-runtime sitting (default: --paper-runtime, else the first column)",
    )
    parser.add_argument(
        "--sittings",
        nargs="+",
        type=Path,
        default=None,
        metavar="PATH",
        help="results folders whose every sitting findings.md is computed in, each claim stated with its spread "
        "across them and dropped where its direction flips (default: the sittings of --results)",
    )
    parser.add_argument(
        "--aspect",
        choices=("default", "16:9"),
        default="default",
        help="plot layout: default (one 6.2 x 4.8 in panel per column, for papers) or 16:9 (every panel on one "
        "1920 x 1080 slide, written as <plot>_16x9.png/.svg)",
    )


def main(args: argparse.Namespace) -> int:
    report = load_report(args.results, args.models)
    sittings = tuple(str(p) for p in args.sittings or ())
    paper = PaperChoice(args.paper_runtime, args.paper_models, args.pareto, args.ratio_to, sittings, args.figure_font)
    paths, plot_notes = write_files(
        report, args.out, plots=not args.no_plots, aspect=args.aspect, models=args.models, paper=paper
    )
    if args.format == "csv":
        print(csv_text(table_frame(report)), end="")
    else:
        print(render_paper_table(main_table(report), args.format))
    print()
    for note in plot_notes:
        print(f"note: {note}")
    if not any(p.name == "ratios.csv" for p in paths):
        reference = paper.reference(report).label
        print(f"note: no ratio table: no sitting in the results timed {reference} beside another runtime")
    print(f"wrote {len(paths)} files to {args.out}/: {', '.join(p.name for p in paths)}")
    return 0
