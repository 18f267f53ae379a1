"""Rendering of tables for the terminal and for files (csv, json, markdown)."""

from __future__ import annotations

import math

import pandas as pd

FORMATS = ("table", "csv", "json", "markdown")


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
    return text_table(df, float_digits)
