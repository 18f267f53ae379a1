"""Output: the console tables, ``summary.md``, the CSV files and the plots."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pandas as pd

from bench.complexity.analysis import Counts
from bench.complexity.cost_model import STATED_MODEL, CostModel
from bench.complexity.figures import (
    plot_cost_vs_tokens,
    plot_latency_vs_tokens,
    plot_measured_vs_predicted,
    plot_operator_terms,
)
from bench.complexity.latency import Latency, latency_words
from bench.errors import BenchError
from bench.formatting import markdown_table, text_table


def _print(model: CostModel, c: Counts, latency: Latency | None, notes: list[str]) -> None:
    print(f"Verdict on Ω(CATM) = {STATED_MODEL}")
    print(text_table(c.verdict))
    print("\n" + textwrap.fill(c.plain, 110))
    print("\nLeast-squares fits on {b·HWC², b·HWC, b·C², HWC} (relative residuals)")
    print(text_table(c.fit_frame, 4))
    print(f"\n--model {model.text!r}: measured / predicted over the grid")
    print(text_table(c.comparison, 3))
    print("\nCATM operator terms (coefficient = term / its scaling; constant means the scaling holds)")
    print(text_table(c.terms, 3))
    print("\nExponent of cost vs tokens")
    print(text_table(c.token_exponents, 3))
    if latency is not None:
        print("\nExponent of latency (and of fvcore GMACs) vs tokens")
        print(text_table(latency.exponents, 3))
    for note in notes:
        print(f"note: {note}")


def _summary_markdown(model: CostModel, c: Counts, latency: Latency | None, notes: list[str]) -> str:
    analytic_ok = bool(c.frames["CATM"]["analytic_matches_tally"].all())
    parts = [
        f"# CATM complexity: is Ω(CATM) = {STATED_MODEL}?",
        "",
        "## Verdict in plain words",
        "",
        c.plain,
        "",
        markdown_table(c.verdict),
        "",
        "## Least-squares fits on {b·HWC², b·HWC, b·C², HWC}",
        "",
        "Each row divides by the measured value before solving (relative residuals). `per_image_HWC` is the "
        "H·W·C coefficient of one image; `implied_b` solves 47 + 10b = per_image_HWC.",
        "",
        markdown_table(c.fit_frame, 4),
        "",
        f"## `--model {model.text}` against the measurements",
        "",
        markdown_table(c.comparison, 3),
        "",
        "## CATM operator terms",
        "",
        "Counted terms are fvcore's, per module. The uncounted ones are derived by hand from the forward pass "
        f"(`catm_uncounted`) and {'agree' if analytic_ok else 'DISAGREE'} with a dispatch-level tally at every "
        "grid point.",
        "",
        markdown_table(c.terms, 3),
        "",
        "## Cost vs tokens: CATM vs a standard MSA of the same width",
        "",
        "Least-squares exponents of log cost vs log tokens, over the whole range and over its upper half "
        "(tokens at or above the geometric middle), where the MSA's quadratic term dominates.",
        "",
        markdown_table(c.token_exponents, 3),
        "",
    ]
    if latency is not None:
        parts += [
            "## Latency vs tokens",
            "",
            "Median latency at batch 1; exponents as above, of log latency vs log tokens "
            "(`(fvcore count)` rows: fvcore GMACs instead of latency).",
            "",
            latency_words(latency.exponents),
            "",
            markdown_table(latency.exponents, 3),
            "",
        ]
    parts += ["## Notes", "", *[f"- {n}" for n in notes], ""]
    return "\n".join(parts)


def save(model: CostModel, c: Counts, latency: Latency | None, notes: list[str], out: Path) -> list[Path]:
    """CSV tables, ``summary.md`` and the plots; returns the paths written."""
    tables = {
        "grid_catm.csv": c.frames["CATM"],
        "grid_cas_block.csv": c.frames["CAS block"],
        "fits.csv": c.fit_frame,
        "model_comparison.csv": c.comparison,
        "operator_terms.csv": c.terms,
        "verdict.csv": c.verdict,
        "tokens.csv": c.tokens,
        "token_exponents.csv": c.token_exponents,
    }
    if latency is not None:
        tables["latency.csv"] = pd.concat([latency.mixers, latency.networks], ignore_index=True)
        tables["latency_exponents.csv"] = latency.exponents
    try:
        out.mkdir(parents=True, exist_ok=True)
        written = []
        for name, frame in tables.items():
            frame.to_csv(out / name, index=False)
            written.append(out / name)
        (out / "summary.md").write_text(_summary_markdown(model, c, latency, notes))
        written.append(out / "summary.md")
        written += plot_measured_vs_predicted(model, c.frames, c.fits, out)
        written += plot_cost_vs_tokens(c.tokens, c.token_exponents, out)
        written += plot_operator_terms(c.frames["CATM"], out)
        if latency is not None:
            written += plot_latency_vs_tokens(latency.mixers, latency.networks, latency.exponents, out)
    except OSError as exc:
        raise BenchError(f"cannot write to {out}: {exc.strerror or exc}") from None
    return written
