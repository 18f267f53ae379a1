"""Rendering of tables for the terminal and for files (csv, json, markdown, LaTeX booktabs)."""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass, field

import pandas as pd

FORMATS = ("table", "csv", "json", "markdown", "latex")


_FORMULA_LEAD = ("=", "+", "-", "@", "\t", "\r", "\n")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?%?|[+-]?(inf|nan)", re.IGNORECASE)


def spreadsheet_safe(value: object) -> object:
    """A text cell that a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@``, tab, CR) gets a
    leading ``'``, so it shows as text; numbers, signed numbers written as text and a lone ``-`` pass."""
    if isinstance(value, str) and value.startswith(_FORMULA_LEAD) and value != "-" and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


def csv_text(df: pd.DataFrame) -> str:
    """``df`` as CSV for spreadsheets: every text cell (and column name) through :func:`spreadsheet_safe`.

    Every CSV the suite writes for people goes through here (report tables, ``--format csv``, per-class
    counts); the raw records the suite reads back (``summary.csv``, ``rounds.csv``) keep their values.
    """
    safe = df.copy()
    for column in safe.columns:
        if not pd.api.types.is_numeric_dtype(safe[column]) and not pd.api.types.is_bool_dtype(safe[column]):
            safe[column] = safe[column].astype(object).map(spreadsheet_safe)
    safe.columns = [spreadsheet_safe(str(c)) for c in safe.columns]
    return safe.to_csv(index=False)


def write_csv(path, df: pd.DataFrame) -> None:
    """Write ``df`` to ``path`` as :func:`csv_text` (raises ``OSError`` like ``Path.write_text``)."""
    from pathlib import Path

    Path(path).write_text(csv_text(df), encoding="utf-8")


_HTML_TAG = re.compile(r"<(?!br>)(?=[A-Za-z/!?])")
"""The opening ``<`` of an HTML tag, comment or declaration (``<script>``, ``</a>``, ``<!--``), but the ``<br>``
the tables put between a header's lines: what a markdown renderer would take as HTML rather than text."""


def markdown_line(text: object) -> str:
    """Text on one markdown line (a title, a note, a list item): line breaks folded, so a name holding one (an
    imported device's) cannot start a table row or a heading of its own, and an HTML tag in it (``<script>``)
    shown as text (``&lt;script>``), never rendered."""
    return _HTML_TAG.sub("&lt;", " ".join(str(text).splitlines()))


def markdown_cell(text: object) -> str:
    """Text for one markdown table cell: ``|`` escaped and line breaks folded, so the row keeps its cells."""
    return markdown_line(str(text).replace("\\", "\\\\").replace("|", "\\|"))


def _cell(value: object, float_digits: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.{float_digits}f}"
    return str(value)


def markdown_table(df: pd.DataFrame, float_digits: int = 2) -> str:
    """A GitHub-flavoured markdown table (numbers right-aligned)."""
    header = "| " + " | ".join(map(markdown_cell, df.columns)) + " |"
    align = "|" + "|".join("---:" if pd.api.types.is_numeric_dtype(df[c]) else ":---" for c in df.columns) + "|"
    rows = [
        "| " + " | ".join(markdown_cell(_cell(v, float_digits)) for v in row) + " |"
        for row in df.itertuples(index=False)
    ]
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
        return csv_text(df).rstrip("\n")
    if fmt == "json":
        return df.to_json(orient="records", indent=2)
    if fmt == "markdown":
        return markdown_table(df, float_digits)
    if fmt == "latex":
        return latex_table(df, float_digits)
    return text_table(df, float_digits)


# ------------------------------------------------------------------------------------ LaTeX

# Every string that reaches LaTeX from data goes through ``latex_escape``. The output compiles with plain
# ``pdflatex`` and the default OT1 font encoding (no fontenc, inputenc or textcomp assumed), and also under
# ``\\usepackage[T1]{fontenc}``: specials become commands, common Unicode becomes the LaTeX command for it,
# accented Latin letters become accent commands, and anything else is spelled in ASCII or replaced by ``?``.
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
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "|": r"\textbar{}",
    '"': "''",
    # after ``\\`` a row starting with [ or * would be read as its optional argument or star
    "[": "{[}",
    "]": "{]}",
    "*": "{*}",
    "\t": " ",
    "\n": " ",
    "\r": " ",
}

_LATEX_UNICODE = {
    "\u00a0": "~",
    "\u2009": r"\,",
    "\u202f": r"\,",
    "\u00d7": r"\ensuremath{\times}",
    "\u00b1": r"\ensuremath{\pm}",
    "\u2213": r"\ensuremath{\mp}",
    "\u2264": r"\ensuremath{\leq}",
    "\u2265": r"\ensuremath{\geq}",
    "\u2260": r"\ensuremath{\neq}",
    "\u2248": r"\ensuremath{\approx}",
    "\u223c": r"\ensuremath{\sim}",
    "\u221e": r"\ensuremath{\infty}",
    "\u2212": r"\ensuremath{-}",
    "\u00b7": r"\ensuremath{\cdot}",
    "\u22c5": r"\ensuremath{\cdot}",
    "\u00f7": r"\ensuremath{\div}",
    "\u221a": r"\ensuremath{\surd}",
    "\u2192": r"\ensuremath{\rightarrow}",
    "\u2190": r"\ensuremath{\leftarrow}",
    "\u2194": r"\ensuremath{\leftrightarrow}",
    "\u21d2": r"\ensuremath{\Rightarrow}",
    "\u2191": r"\ensuremath{\uparrow}",
    "\u2193": r"\ensuremath{\downarrow}",
    "\u00b0": r"\ensuremath{^\circ}",
    "\u2032": r"\ensuremath{'}",
    "\u00b5": r"\ensuremath{\mu}",
    "\u00b9": r"\textsuperscript{1}",
    "\u00b2": r"\textsuperscript{2}",
    "\u00b3": r"\textsuperscript{3}",
    "\u2070": r"\textsuperscript{0}",
    "\u2074": r"\textsuperscript{4}",
    "\u2075": r"\textsuperscript{5}",
    "\u2076": r"\textsuperscript{6}",
    "\u2077": r"\textsuperscript{7}",
    "\u2078": r"\textsuperscript{8}",
    "\u2079": r"\textsuperscript{9}",
    "\u207b": r"\textsuperscript{\ensuremath{-}}",
    "\u2010": "-",
    "\u2011": "-",
    "\u2012": "--",
    "\u2013": "--",
    "\u2014": "---",
    "\u2015": "---",
    "\u2018": "`",
    "\u2019": "'",
    "\u201a": ",",
    "\u201c": "``",
    "\u201d": "''",
    "\u201e": ",,",
    "\u2026": r"\ldots{}",
    "\u2022": r"\textbullet{}",
    "\u2020": r"\ensuremath{\dagger}",
    "\u2713": r"\ensuremath{\surd}",
    "\u2021": r"\ensuremath{\ddagger}",
    "\u00a7": r"\S{}",
    "\u00b6": r"\P{}",
    "\u00a9": r"\copyright{}",
    "\u00ae": r"\textsuperscript{R}",
    "\u2122": r"\textsuperscript{TM}",
    "\u20ac": "EUR",
    "\u00a3": r"\pounds{}",
    "\u00a1": r"\textexclamdown{}",
    "\u00bf": r"\textquestiondown{}",
    "\u00ab": r"\ensuremath{\ll}",
    "\u00bb": r"\ensuremath{\gg}",
    "\u00df": r"\ss{}",
    "\u00e6": r"\ae{}",
    "\u00c6": r"\AE{}",
    "\u0153": r"\oe{}",
    "\u0152": r"\OE{}",
    "\u00f8": r"\o{}",
    "\u00d8": r"\O{}",
    "\u0142": r"\l{}",
    "\u0141": r"\L{}",
    "\u0131": r"\i{}",
    "\u00f0": "d",
    "\u00d0": "D",
    "\u00ac": r"\ensuremath{\neg}",
    "\u00a6": r"\textbar{}",
    "\u0111": "d",
    "\u0110": "D",
    "\u00fe": "th",
    "\u00de": "Th",
    "\u03bc": r"\ensuremath{\mu}",
}
# Greek: math commands; the capitals without one look like Latin letters (Alpha -> A)
for _code in [*range(0x391, 0x3AA), *range(0x3B1, 0x3CA)]:
    _char = chr(_code)
    if not unicodedata.name(_char, ""):
        continue  # U+03A2 is unassigned
    _name = unicodedata.name(_char).split()[-1].lower().replace("lamda", "lambda")
    _name = "varsigma" if unicodedata.name(_char).endswith("FINAL SIGMA") else _name
    if _char.isupper():
        _name = _name.capitalize()
    _command = rf"\ensuremath{{\{_name}}}"
    if _name in (
        "Alpha",
        "Beta",
        "Epsilon",
        "Zeta",
        "Eta",
        "Iota",
        "Kappa",
        "Mu",
        "Nu",
        "Omicron",
        "Rho",
        "Tau",
        "Chi",
    ):
        _command = {"Eta": "H", "Rho": "P", "Chi": "X"}.get(_name, _name[0])
    elif _name == "omicron":
        _command = "o"
    _LATEX_UNICODE.setdefault(_char, _command)

# combining accents -> the OT1-safe accent command (ogonek and the like have none: the accent is dropped)
_LATEX_ACCENTS = {
    "\u0300": "\\`",
    "\u0301": "\\'",
    "\u0302": "\\^",
    "\u0303": "\\~",
    "\u0304": "\\=",
    "\u0306": "\\u",
    "\u0307": "\\.",
    "\u0308": '\\"',
    "\u030a": "\\r",
    "\u030b": "\\H",
    "\u030c": "\\v",
    "\u0323": "\\d",
    "\u0327": "\\c",
    "\u0331": "\\b",
}


def _latex_char(ch: str) -> str:
    """One character that is not plain printable ASCII, as something ``pdflatex`` typesets in OT1 or T1."""
    if ch in _LATEX_UNICODE:
        return _LATEX_UNICODE[ch]
    if unicodedata.category(ch)[0] == "C":  # control, format, private use, unassigned
        return ""
    decomposed = unicodedata.normalize("NFD", ch)
    base, marks = decomposed[0], decomposed[1:]
    if len(decomposed) > 1 and base.isascii() and base.isalpha():
        out = (
            {"i": r"\i{}", "j": r"\j{}"}.get(base, base)
            if marks[:1] in ("\u0300", "\u0301", "\u0302", "\u0308")
            else base
        )
        for mark in marks:
            if mark in _LATEX_ACCENTS:
                out = f"{_LATEX_ACCENTS[mark]}{{{out}}}"
        return out
    if unicodedata.category(ch) == "Zs":
        return " "
    ascii_form = unicodedata.normalize("NFKD", ch).replace("\u2044", "/").encode("ascii", "ignore").decode()
    if ascii_form.strip() and ascii_form.isprintable():  # ligatures, full-width and styled letters: ﬁ, Ａ, ℝ
        return "".join(_LATEX_SPECIALS.get(c, c) for c in ascii_form)
    return "?"


def latex_escape(text: object) -> str:
    """``text`` as LaTeX source that prints it: the one place data is made safe for LaTeX."""
    out = []
    for ch in unicodedata.normalize("NFC", str(text)):
        if ch in _LATEX_SPECIALS:
            out.append(_LATEX_SPECIALS[ch])
        elif " " <= ch <= "~":
            out.append(ch)
        else:
            out.append(_latex_char(ch))
    return "".join(out)


def latex_label(text: str) -> str:
    """A ``\\label`` key: only characters that are safe in one."""
    return re.sub(r"[^A-Za-z0-9:._/-]", "-", text)


TWO_COLUMN_WIDTH_PT = 240.0
"""About ``\\columnwidth`` of a two-column paper (IEEE 252pt, ACM 241pt, CVPR 237pt)."""


def latex_width_pt(cells: list[list[str]], char_pt: float = 5.0) -> float:
    """A rough natural width of a ``tabular`` of plain-text ``cells`` (rows of strings) in points."""
    if not cells:
        return 0.0
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    return sum(w * char_pt + 12.0 for w in widths)  # 12pt: 2\tabcolsep per column


def fit_to_linewidth(tabular: list[str]) -> list[str]:
    """``tabular`` lines wrapped so that it is scaled down to ``\\linewidth`` only if it is wider (graphicx)."""
    return [
        r"\sbox0{%",
        *tabular[:-1],
        tabular[-1] + "%",
        r"}%",
        r"\ifdim\wd0>\linewidth\resizebox{\linewidth}{!}{\usebox0}\else\usebox0\fi",
    ]


def latex_table(df: pd.DataFrame, float_digits: int = 2) -> str:
    """A plain booktabs ``tabular`` (needs ``\\usepackage{booktabs}``).

    One too wide for a two-column paper's column is wrapped to be scaled down to ``\\linewidth`` when it
    does not fit where it is put (then it also needs ``\\usepackage{graphicx}``).
    """
    align = "".join("r" if pd.api.types.is_numeric_dtype(df[c]) else "l" for c in df.columns)
    text = [[str(c) for c in df.columns]] + [
        [_cell(v, float_digits) for v in row] for row in df.itertuples(index=False)
    ]
    lines = [rf"\begin{{tabular}}{{{align}}}", r"\toprule"]
    lines.append(" & ".join(latex_escape(c) for c in text[0]) + r" \\")
    lines.append(r"\midrule")
    lines.extend(" & ".join(latex_escape(c) for c in row) + r" \\" for row in text[1:])
    lines += [r"\bottomrule", r"\end{tabular}"]
    if latex_width_pt(text) <= TWO_COLUMN_WIDTH_PT:
        return "\n".join([r"% generated by `python -m bench`; needs \usepackage{booktabs}", *lines])
    header = (
        r"% generated by `python -m bench`; needs \usepackage{booktabs} and \usepackage{graphicx}: "
        r"scaled down to \linewidth where it does not fit"
    )
    return "\n".join([header, *fit_to_linewidth(lines)])


# ------------------------------------------------------------------------------------ paper tables


@dataclass(frozen=True)
class Interval:
    """A number with an asymmetric interval around it, already formatted: ``value``, ``+plus`` and ``-minus``.

    Printed as ``21.45 (+4.56/-0.00)`` in text and markdown and as ``21.45`` with ``+4.56`` over ``-0.00`` beside
    it in LaTeX (``$^{+4.56}_{-0.00}$``): the same numbers, in the width a paper's column allows.
    """

    value: str
    plus: str
    minus: str

    def __str__(self) -> str:
        return f"{self.value} (+{self.plus}/\u2212{self.minus})"

    def latex(self) -> str:
        return rf"{latex_escape(self.value)}$^{{+{latex_escape(self.plus)}}}_{{-{latex_escape(self.minus)}}}$"


Text = str | Interval
Entry = Text | tuple[Text, str]
"""A formatted table entry (not a measured cell): its text (or an :class:`Interval`), or ``(text, mark)`` where
``mark`` refers to a note (e.g. a source)."""


@dataclass
class PaperTable:
    """A table laid out like a paper's: row groups (families) and header spans over column groups.

    Cells are already formatted strings, so each column keeps its own precision. ``spans`` is a list
    of ``(title, width)`` covering every leaf column in order (``""`` for no title).
    """

    header: list[str]
    groups: list[tuple[str, list[list[Entry]]]]
    align: str
    """One ``l`` or ``r`` per column."""
    spans: list[tuple[str, int]] = field(default_factory=list)
    title: str = ""
    notes: list[str] = field(default_factory=list)
    """Printed under the table; one that starts with ``[mark] `` explains the cells marked ``mark``."""
    label: str = ""
    float_env: str = ""
    """``table`` (one column), ``table*`` (across a two-column page) or ``""``: chosen by the estimated width."""
    compact: bool = False
    """A paper's slim layout: narrow column gaps, headers on two lines (``\\n`` in a header), and the notes as
    one paragraph in the body's type, whose ``[mark]``s become superscripts; never scaled unless wider than the
    line."""
    colsep_pt: float = 3.0
    """Half the gap between columns of a compact table (``\\tabcolsep``)."""
    font: str = "small"
    """The LaTeX size command of the table's type (``small`` 9 pt, ``footnotesize`` 8 pt, ``scriptsize`` 7 pt in a
    10 pt document)."""

    def __post_init__(self) -> None:
        if len(self.align) != len(self.header):
            raise ValueError("align needs one character per column")
        if self.spans and sum(w for _, w in self.spans) != len(self.header):
            raise ValueError("spans must cover every column")


def _plain(cell: Entry) -> str:
    return f"{cell[0]} [{cell[1]}]" if isinstance(cell, tuple) else str(cell)


def _one_line(header: str) -> str:
    """A header written on several lines (``\\n``) for LaTeX, on one line for text and markdown."""
    return header.replace("\n", " ")


def _paper_text(table: PaperTable) -> str:
    header = [_one_line(h) for h in table.header]
    body = [[_plain(c) for c in row] for _, rows in table.groups for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in body]) for i, h in enumerate(header)]
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
    lines.append(line(header))
    lines.append("  ".join("-" * w for w in widths))
    for name, rows in table.groups:
        if name:
            lines.append(name)
        lines.extend(line([_plain(c) for c in row]) for row in rows)
    if table.notes:
        lines.append("")
        lines.extend(" ".join(note.splitlines()) for note in table.notes)
    return "\n".join(lines)


def _paper_markdown(table: PaperTable) -> str:
    # markdown has no spanning cells: a span's title heads the first of its columns
    header, start = [_one_line(h) for h in table.header], 0
    for title, width in table.spans:
        if title:
            header[start] = f"{title}<br>{header[start]}"
        start += width
    lines = [f"**{markdown_line(table.title)}**", ""] if table.title else []
    lines.append("| " + " | ".join(map(markdown_cell, header)) + " |")
    lines.append("|" + "|".join("---:" if a == "r" else ":---" for a in table.align) + "|")
    for name, rows in table.groups:
        if name:
            lines.append("| " + " | ".join([f"*{markdown_cell(name)}*"] + [""] * (len(table.header) - 1)) + " |")
        lines.extend("| " + " | ".join(markdown_cell(_plain(c)) for c in row) + " |" for row in rows)
    if table.notes:
        lines.append("")
        lines.extend(f"- {markdown_line(note)}" for note in table.notes)
    return "\n".join(lines)


def _latex_text(text: Text) -> str:
    return text.latex() if isinstance(text, Interval) else latex_escape(text)


def _latex_cell(cell: Entry) -> str:
    if isinstance(cell, tuple):  # a thin space keeps a mark apart from an interval's superscript
        gap = r"\," if isinstance(cell[0], Interval) else ""
        return rf"{_latex_text(cell[0])}{gap}\textsuperscript{{{latex_escape(cell[1])}}}"
    return _latex_text(cell)


_NOTE_MARK = re.compile(r"\[([^\]\s]+)\] (.*)", re.DOTALL)


def _latex_note(note: str, marks: set[str]) -> str:
    """A note as its own paragraph; ``[mark] text`` explaining marked cells gets the cells' superscript."""
    found = _NOTE_MARK.fullmatch(note)
    if found and found[1] in marks:
        return rf"\textsuperscript{{{latex_escape(found[1])}}}\,{latex_escape(found[2])}\par"
    return latex_escape(note) + r"\par"


def _paper_width_pt(table: PaperTable) -> float:
    body = [[_plain(c) for c in row] for _, rows in table.groups for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in body]) for i, h in enumerate(map(_one_line, table.header))]
    start = 0
    for title, width in table.spans:  # a span title wider than its columns widens them
        widths[start + width - 1] += max(0, len(title) - sum(widths[start : start + width]))
        start += width
    return latex_width_pt([["x" * w for w in widths]])


def _latex_header(header: str, align: str) -> str:
    """A header cell; one written on several lines becomes a small nested tabular, aligned like its column."""
    lines = header.split("\n")
    if len(lines) == 1:
        return latex_escape(header)
    inner = r" \\ ".join(latex_escape(line) for line in lines)
    return rf"\begin{{tabular}}[b]{{@{{}}{align}@{{}}}}{inner}\end{{tabular}}"


def _latex_marked_text(text: str, marks: set[str]) -> str:
    """``text`` with every ``[mark]`` of a marked cell as that superscript (other brackets stay as they are)."""
    out, last = [], 0
    for found in re.finditer(r"\[([^\]\s]+)\] ?", text):
        if found[1] in marks:
            out += [latex_escape(text[last : found.start()]), rf"\textsuperscript{{{latex_escape(found[1])}}}"]
            last = found.end()
    return "".join([*out, latex_escape(text[last:])])


def _paper_latex(table: PaperTable) -> str:
    n = len(table.header)
    wide = table.float_env == "table*" if table.float_env else _paper_width_pt(table) > TWO_COLUMN_WIDTH_PT
    float_env = table.float_env or ("table*" if wide else "table")
    if table.compact:
        lines = [
            r"% generated by `python -m bench report`; needs \usepackage{booktabs} and \usepackage{graphicx}",
            rf"% Sized for a two-column paper: a {float_env} float in \{table.font} type (never scaled up; scaled "
            r"down to \linewidth only if your class's line is narrower than the table).",
        ]
    elif wide:
        lines = [
            r"% generated by `python -m bench report`; needs \usepackage{booktabs} and \usepackage{graphicx}",
            r"% Wide table: a table* float spans both columns of a two-column paper (in a one-column paper it is",
            r"% the same as table), and the tabular is scaled down to \linewidth with \resizebox only where it",
            r"% does not fit (never enlarged). To keep it in one column instead, change table* to table.",
        ]
    else:
        lines = [r"% generated by `python -m bench report`; needs \usepackage{booktabs}"]
    lines += [rf"\begin{{{float_env}}}[t]", r"\centering", rf"\{table.font}"]
    if table.compact:
        lines.append(rf"\setlength{{\tabcolsep}}{{{table.colsep_pt:g}pt}}")
    if table.title:
        lines.append(rf"\caption{{{latex_escape(table.title)}}}")
    if table.label:
        lines.append(rf"\label{{{latex_label(table.label)}}}")
    tabular = [rf"\begin{{tabular}}{{{table.align}}}", r"\toprule"]
    if any(t for t, _ in table.spans):
        parts, rules, start = [], [], 1
        for title, width in table.spans:
            if title:
                parts.append(rf"\multicolumn{{{width}}}{{c}}{{{latex_escape(title)}}}")
                rules.append(rf"\cmidrule(lr){{{start}-{start + width - 1}}}")
            else:
                parts.extend([""] * width)
            start += width
        tabular.append(" & ".join(parts) + r" \\")
        tabular.append(" ".join(rules))
    tabular.append(" & ".join(_latex_header(h, a) for h, a in zip(table.header, table.align, strict=True)) + r" \\")
    for name, rows in table.groups:
        tabular.append(r"\midrule")
        if name:
            tabular.append(rf"\multicolumn{{{n}}}{{l}}{{\textit{{{latex_escape(name)}}}}} \\")
        tabular.extend(" & ".join(_latex_cell(c) for c in row) + r" \\" for row in rows)
    tabular += [r"\bottomrule", r"\end{tabular}"]
    lines += fit_to_linewidth(tabular) if wide or table.compact else tabular
    if table.notes:
        marks = {c[1] for _, rows in table.groups for row in rows for c in row if isinstance(c, tuple)}
        size = table.font if table.compact else "footnotesize"
        lines += [r"\par\smallskip", rf"\begin{{minipage}}{{\linewidth}}\{size}\raggedright"]
        if table.compact:
            lines.extend(_latex_marked_text(note, marks) + r"\par" for note in table.notes)
        else:
            lines.extend(_latex_note(note, marks) for note in table.notes)
        lines.append(r"\end{minipage}")
    lines.append(rf"\end{{{float_env}}}")
    return "\n".join(lines)


PAPER_FORMATS = ("table", "markdown", "latex")


def render_paper_table(table: PaperTable, fmt: str) -> str:
    """``table`` (terminal), ``markdown`` (GitHub) or ``latex`` (booktabs, with notes under it)."""
    if fmt == "markdown":
        return _paper_markdown(table)
    if fmt == "latex":
        return _paper_latex(table)
    return _paper_text(table)
