"""Render a report's paper table and a print figure on a two-column page, as a reviewer would see them.

    python tests/scripts/paper_page.py reports/reference [--figure latency_vs_top1_D_litert_3.3in]

Builds an IEEE-sized two-column ``article`` (516 pt text, 252 pt columns, 10 pt body) whose second page
has the slim ``table*`` across the top, the one-column table and the figure (its 3.3 in PDF, included at
its own size) in the columns (LaTeX puts a ``table*`` on the page after the one it is written on), compiles
it with ``pdflatex -halt-on-error`` and writes that page as ``paper_page.png`` (150 dpi) into the report
folder. Needs pdflatex (texlive-latex-base, texlive-latex-recommended) and pdftoppm (poppler-utils).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

FILLER = (
    "Body text of the paper at 10 pt, to show the tables and the figure at the size they are printed. "
    "Every number in them comes from the committed results; the full table is the appendix one. "
)


def page(figure: str) -> str:
    return "\n".join(
        [
            r"\documentclass[10pt,twocolumn]{article}",
            r"\usepackage{booktabs}",
            r"\usepackage{graphicx}",
            r"\setlength{\textwidth}{516pt}",
            r"\setlength{\columnsep}{12pt}",
            r"\setlength{\oddsidemargin}{-25pt}",
            r"\setlength{\textheight}{650pt}",
            r"\setlength{\topmargin}{-40pt}",
            r"\begin{document}",
            r"\input{paper_table.tex}",
            FILLER * 40,
            r"\begin{figure}[t]",
            r"\centering",
            rf"\includegraphics{{figures/{figure}.pdf}}",
            r"\caption{Latency vs top-1 on one runtime, from the report's figures folder at 3.3 in.}",
            r"\end{figure}",
            r"\input{paper_table_column.tex}",
            FILLER * 30,
            r"\end{document}",
            "",
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("report", type=Path)
    parser.add_argument("--figure", default="latency_vs_top1_D_litert_3.3in")
    args = parser.parse_args()
    for tool in ("pdflatex", "pdftoppm"):
        if not shutil.which(tool):
            print(f"error: {tool} not found (apt-get install texlive-latex-recommended poppler-utils)", file=sys.stderr)
            return 2
    if not (args.report / "paper_table.tex").exists():
        print(f"error: {args.report} has no paper_table.tex (run bench report first)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name in ("paper_table.tex", "paper_table_column.tex"):
            shutil.copy(args.report / name, work / name)
        (work / "figures").mkdir()
        shutil.copy(args.report / "figures" / f"{args.figure}.pdf", work / "figures")
        (work / "page.tex").write_text(page(args.figure), encoding="ascii")
        proc = subprocess.run(
            ["pdflatex", "-halt-on-error", "-interaction=nonstopmode", "page.tex"],
            cwd=work,
            capture_output=True,
            text=True,
            errors="replace",
        )
        if proc.returncode:
            print(f"error: pdflatex failed:\n{proc.stdout[-2000:]}", file=sys.stderr)
            return 1
        second_page = ["-f", "2", "-l", "2", "-singlefile"]
        subprocess.run(["pdftoppm", "-r", "150", *second_page, "-png", "page.pdf", "page"], cwd=work, check=True)
        shutil.copy(work / "page.png", args.report / "paper_page.png")
    print(f"wrote {args.report / 'paper_page.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
