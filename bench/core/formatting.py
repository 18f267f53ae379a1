"""Rendering of tables for the terminal and for files (csv, json, markdown, LaTeX booktabs)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

FORMATS = ("table", "csv", "json", "markdown", "latex")


def _cell(value: object, float_digits: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.{float_digits}f}"
    return str(value)


def markdown_table(df: pd.DataFrame, float_digits: int = 2) -> str:
    """A GitHub-flavoured markdown table (numbers right-aligned)."""
    header = "| " + " | ".join(map(str, df.columns)) + " |"
    align = "|" + "|".join("---:" if pd.api.types.is_numeric_dtype(df[c]) else ":---" for c in df.columns) + "|"
    rows = ["| " + " | ".join(_cell(v, float_digits) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([header, align, *rows])


def text_table(df: pd.DataFrame, float_digits: int = 2) -> str:
    """A plain aligned table for the terminal."""
    cells = [[str(c) for c in df.columns]] + [
        [_cell(v, float_digits) for v in row] for row in df.itertuples(index=False)
    ]
    widths = [max(len(r[i]) for r in cells) for i in range(len(df.columns))]
    numeric = [pd.api.types.is_numeric_dtype(df[c]) for c in df.columns]
    lines = []
    for n, r in enumerate(cells):
        lines.append(
            "  ".join(v.rjust(w) if num and n else v.ljust(w) for v, w, num in zip(r, widths, numeric, strict=True))
        )
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def render(df: pd.DataFrame, fmt: str, float_digits: int = 2) -> str:
    if fmt == "csv":
        return df.to_csv(index=False).rstrip("\n")
    if fmt == "json":
        return df.to_json(orient="records", indent=2)
    if fmt == "markdown":
        return markdown_table(df, float_digits)
    if fmt == "latex":
        return latex_table(df, float_digits)
    return text_table(df, float_digits)


# ------------------------------------------------------------------------------------ paper tables

_LATEX_SPECIALS = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def latex_escape(text: object) -> str:
    return "".join(_LATEX_SPECIALS.get(ch, ch) for ch in str(text))


def latex_table(df: pd.DataFrame, float_digits: int = 2) -> str:
    """A plain booktabs ``tabular`` (needs ``\\usepackage{booktabs}``)."""
    align = "".join("r" if pd.api.types.is_numeric_dtype(df[c]) else "l" for c in df.columns)
    lines = [rf"\begin{{tabular}}{{{align}}}", r"\toprule"]
    lines.append(" & ".join(latex_escape(c) for c in df.columns) + r" \\")
    lines.append(r"\midrule")
    for row in df.itertuples(index=False):
        lines.append(" & ".join(latex_escape(_cell(v, float_digits)) for v in row) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines)


Cell = str | tuple[str, str]
"""A formatted cell: its text, or ``(text, mark)`` where ``mark`` refers to a note (e.g. a source)."""


@dataclass
class PaperTable:
    """A table laid out like a paper's: row groups (families) and header spans over column groups.

    Cells are already formatted strings, so each column keeps its own precision. ``spans`` is a list
    of ``(title, width)`` covering every leaf column in order (``""`` for no title).
    """

    header: list[str]
    groups: list[tuple[str, list[list[Cell]]]]
    align: str
    """One ``l`` or ``r`` per column."""
    spans: list[tuple[str, int]] = field(default_factory=list)
    title: str = ""
    notes: list[str] = field(default_factory=list)
    label: str = ""

    def __post_init__(self) -> None:
        if len(self.align) != len(self.header):
            raise ValueError("align needs one character per column")
        if self.spans and sum(w for _, w in self.spans) != len(self.header):
            raise ValueError("spans must cover every column")


def _plain(cell: Cell) -> str:
    return f"{cell[0]} [{cell[1]}]" if isinstance(cell, tuple) else cell


def _paper_text(table: PaperTable) -> str:
    body = [[_plain(c) for c in row] for _, rows in table.groups for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in body]) for i, h in enumerate(table.header)]
    # widen the columns under a span title that is longer than they are together
    start = 0
    for title, width in table.spans:
        room = sum(widths[start : start + width]) + 2 * (width - 1)
        if title and len(title) > room:
            widths[start + width - 1] += len(title) - room
        start += width

    def line(cells: list[str]) -> str:
        out = [c.rjust(w) if a == "r" else c.ljust(w) for c, w, a in zip(cells, widths, table.align, strict=True)]
        return "  ".join(out).rstrip()

    lines = [table.title] if table.title else []
    if any(t for t, _ in table.spans):
        parts, start = [], 0
        for title, width in table.spans:
            room = sum(widths[start : start + width]) + 2 * (width - 1)
            parts.append(title.center(room) if title else " " * room)
            start += width
        lines.append("  ".join(parts).rstrip())
    lines.append(line(table.header))
    lines.append("  ".join("-" * w for w in widths))
    for name, rows in table.groups:
        if name:
            lines.append(name)
        lines.extend(line([_plain(c) for c in row]) for row in rows)
    if table.notes:
        lines.append("")
        lines.extend(table.notes)
    return "\n".join(lines)


def _paper_markdown(table: PaperTable) -> str:
    # markdown has no spanning cells: a span's title heads the first of its columns
    header, start = list(table.header), 0
    for title, width in table.spans:
        if title:
            header[start] = f"{title}<br>{header[start]}"
        start += width
    lines = [f"**{table.title}**", ""] if table.title else []
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join("---:" if a == "r" else ":---" for a in table.align) + "|")
    for name, rows in table.groups:
        if name:
            lines.append("| " + " | ".join([f"*{name}*"] + [""] * (len(table.header) - 1)) + " |")
        lines.extend("| " + " | ".join(_plain(c) for c in row) + " |" for row in rows)
    if table.notes:
        lines.append("")
        lines.extend(f"- {note}" for note in table.notes)
    return "\n".join(lines)


def _latex_cell(cell: Cell) -> str:
    if isinstance(cell, tuple):
        return rf"{latex_escape(cell[0])}\textsuperscript{{{latex_escape(cell[1])}}}"
    return latex_escape(cell)


def _paper_latex(table: PaperTable) -> str:
    n = len(table.header)
    lines = [
        r"% generated by `python -m bench report`; needs \usepackage{booktabs}",
        r"\begin{table}[t]",
        r"\centering",
        r"\small",
    ]
    if table.title:
        lines.append(rf"\caption{{{latex_escape(table.title)}}}")
    if table.label:
        lines.append(rf"\label{{{table.label}}}")
    lines += [rf"\begin{{tabular}}{{{table.align}}}", r"\toprule"]
    if any(t for t, _ in table.spans):
        parts, rules, start = [], [], 1
        for title, width in table.spans:
            if title:
                parts.append(rf"\multicolumn{{{width}}}{{c}}{{{latex_escape(title)}}}")
                rules.append(rf"\cmidrule(lr){{{start}-{start + width - 1}}}")
            else:
                parts.extend([""] * width)
            start += width
        lines.append(" & ".join(parts) + r" \\")
        lines.append(" ".join(rules))
    lines.append(" & ".join(latex_escape(h) for h in table.header) + r" \\")
    for name, rows in table.groups:
        lines.append(r"\midrule")
        if name:
            lines.append(rf"\multicolumn{{{n}}}{{l}}{{\textit{{{latex_escape(name)}}}}} \\")
        lines.extend(" & ".join(_latex_cell(c) for c in row) + r" \\" for row in rows)
    lines += [r"\bottomrule", r"\end{tabular}"]
    if table.notes:
        lines += [r"\par\smallskip", r"\begin{minipage}{\linewidth}\footnotesize"]
        lines.extend(latex_escape(note) + r"\\" for note in table.notes)
        lines.append(r"\end{minipage}")
    lines.append(r"\end{table}")
    return "\n".join(lines)


PAPER_FORMATS = ("table", "markdown", "latex")


def render_paper_table(table: PaperTable, fmt: str) -> str:
    """``table`` (terminal), ``markdown`` (GitHub) or ``latex`` (booktabs, with notes under it)."""
    if fmt == "markdown":
        return _paper_markdown(table)
    if fmt == "latex":
        return _paper_latex(table)
    return _paper_text(table)
