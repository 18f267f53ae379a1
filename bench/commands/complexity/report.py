"""Plots (matplotlib Agg canvas, the report module's style; PNG and SVG).

Output: the console tables, ``summary.md``, the CSV files and the plots.
"""

from __future__ import annotations

import contextlib
import itertools
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from bench.commands.complexity.counting import COUNTED_TERMS, UNCOUNTED_TERMS
from bench.commands.complexity.fits import STATED_MODEL, CostModel, Counts, Fit, design_matrix
from bench.commands.complexity.latency import Latency, latency_words
from bench.core.errors import BenchError
from bench.core.report import plots
from bench.core.report.formatting import markdown_table, text_table, write_csv
from bench.core.report.plot_style import family_styles, save_figure

_MIXER_STYLE = {"CATM": ("#D55E00", "*"), "MSA": ("#0072B2", "o")}
_COUNTER_LABEL = {"flopcounter": "conv MACs (FlopCounterMode)", "fvcore": "MACs (fvcore)"}
_BATCH_COLORS = {1: "#0072B2", 2: "#009E73", 4: "#E69F00", 8: "#D55E00"}


@contextlib.contextmanager
def _figure(ncols: int, nrows: int = 1, width: float = 6.0, height: float = 4.8) -> Iterator[tuple[Figure, np.ndarray]]:
    with matplotlib.rc_context(plots.STYLE):
        fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
        FigureCanvasAgg(fig)
        yield fig, fig.subplots(nrows, ncols, squeeze=False)


def _save_figure(fig: Figure, out: Path, stem: str) -> list[Path]:
    return [
        save_figure(fig, out / f"{stem}.png", dpi=plots.DPI),
        save_figure(fig, out / f"{stem}.svg", metadata={"Date": None}),
    ]


def _log_axes(ax) -> None:
    ax.set(xscale="log", yscale="log")
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_minor_formatter(NullFormatter())


def _grid_caption(frame: pd.DataFrame) -> str:
    values = {k: sorted(frame[k].unique()) for k in ("b", "H", "C")}
    return ", ".join(f"{k}∈{{{','.join(map(str, v))}}}" for k, v in values.items())


def _predicted(model: CostModel, fits: dict[tuple[str, str], Fit], data: pd.DataFrame, fit_key) -> np.ndarray:
    if fit_key is None:
        return model(b=data["b"], H=data["H"], W=data["W"], C=data["C"])
    return design_matrix(data) @ np.array(list(fits[fit_key].coefficients.values()))


def plot_measured_vs_predicted(model: CostModel, frames: dict[str, pd.DataFrame], fits, out: Path) -> list[Path]:
    """The ``--model`` expression against the CATM and the CAS block (conv MACs), and the fitted basis
    against the CATM's fvcore count, each point one grid configuration coloured by b."""
    panels = [
        ("CATM", "flopcounter", f"{model.text} vs CATM conv MACs", None),
        ("CAS block", "flopcounter", f"{model.text} vs CAS block conv MACs", None),
        ("CATM", "fvcore", "least-squares fit vs CATM fvcore count", ("CATM", "fvcore")),
    ]
    with _figure(3, width=5.6, height=5.0) as (fig, axes):
        for ax, (mixer, column, title, fit_key) in zip(axes[0], panels, strict=True):
            data = frames[mixer][frames[mixer][column].notna()]
            predicted = _predicted(model, fits, data, fit_key)
            for b in sorted(data["b"].unique()):
                sel = (data["b"] == b).to_numpy()
                ax.scatter(
                    predicted[sel], data[column][sel], s=14, alpha=0.8, color=_BATCH_COLORS.get(b), label=f"b={b}"
                )
            lo = min(predicted.min(), data[column].min()) / 2
            hi = max(predicted.max(), data[column].max()) * 2
            ax.plot([lo, hi], [lo, hi], color="black", lw=1, ls="--", label="measured = predicted", zorder=1)
            _log_axes(ax)
            ax.set(
                xlim=(lo, hi), ylim=(lo, hi), xlabel="predicted (MACs)", ylabel=f"measured, {_COUNTER_LABEL[column]}"
            )
            ax.set_title(title, fontsize=11, loc="left")
            ax.legend(fontsize=9, loc="upper left")
        fig.suptitle(f"Measured vs predicted cost over the grid {_grid_caption(frames['CATM'])}")
        return _save_figure(fig, out, "measured_vs_predicted")


def plot_cost_vs_tokens(tokens: pd.DataFrame, exponents: pd.DataFrame, out: Path) -> list[Path]:
    """Log-log cost vs tokens of the CATM and the reference MSA at one width, with slope-1 and -2 guides."""
    with _figure(1, width=7.5, height=5.2) as (fig, axes):
        ax = axes[0][0]
        for mixer, d in tokens.groupby("mixer", sort=False):
            color, marker = _MIXER_STYLE[mixer]
            e = exponents[(exponents["mixer"] == mixer) & (exponents["measure"] == "flopcounter")].iloc[0]
            label = f"{mixer}: exponent {e.exponent_all:.2f} overall, {e.exponent_upper:.2f} in the upper half"
            ax.plot(d["tokens"], d["flopcounter"], marker=marker, color=color, ms=10, label=label)
            fv = d[d["fvcore"].notna()]
            ax.plot(fv["tokens"], fv["fvcore"], ls="", marker="x", color="black", ms=6, label=f"{mixer}, fvcore count")
        n = np.array([tokens["tokens"].min(), tokens["tokens"].max()], dtype=float)
        start = tokens["flopcounter"].min() / 4
        for p, ls in ((1, ":"), (2, "-.")):
            ax.plot(n, start * (n / n[0]) ** p, color="grey", ls=ls, lw=1, label=f"slope {p} guide")
        _log_axes(ax)
        ax.set(xlabel="tokens N = H·W", ylabel="MACs per image (FlopCounterMode)")
        ax.set_title(f"Cost vs tokens at C = {int(tokens['C'].iloc[0])}: CATM vs standard MSA", fontsize=12, loc="left")
        ax.legend(fontsize=9, loc="upper left")
        return _save_figure(fig, out, "cost_vs_tokens")


def _latency_panel(ax, data: pd.DataFrame, exponents: pd.DataFrame, styles: dict[str, tuple[str, str]]) -> None:
    linestyles = itertools.cycle(["-", "--", "-.", ":"])
    for what, d in data.groupby("what", sort=False):
        d = d.sort_values("tokens")
        color, marker = styles.get(what, ("#000000", "o"))
        e = exponents[(exponents["what"] == what) & (exponents["backend"] == d["backend"].iloc[0])]
        label = what
        if len(e):
            label += f" ({e.iloc[0].exponent_all:.2f} overall, {e.iloc[0].exponent_upper:.2f} upper half)"
        ax.plot(d["tokens"], d["latency_ms"], marker=marker, color=color, ls=next(linestyles), ms=8, label=label)
    _log_axes(ax)
    ax.set(ylabel="median latency (ms)")
    ax.legend(fontsize=8, loc="upper left")


def plot_latency_vs_tokens(mixers: pd.DataFrame, nets: pd.DataFrame, exponents: pd.DataFrame, out: Path) -> list[Path]:
    """Top row: CATM vs MSA alone; bottom row: whole networks across resolutions; one column per backend."""
    backends = list(dict.fromkeys([*mixers["backend"], *nets["backend"]]))
    styles = family_styles(list(dict.fromkeys(nets["family"])))
    net_styles = {n: (styles[f].color, styles[f].marker) for n, f in zip(nets["what"], nets["family"], strict=True)}
    with _figure(len(backends), 2, width=6.5, height=4.8) as (fig, axes):
        for col, backend in enumerate(backends):
            _latency_panel(axes[0][col], mixers[mixers["backend"] == backend], exponents, _MIXER_STYLE)
            axes[0][col].set_title(
                f"{backend}: token mixers alone, C = {int(mixers['C'].iloc[0])}", fontsize=12, loc="left"
            )
            axes[0][col].set_xlabel("tokens N = H·W")
            _latency_panel(axes[1][col], nets[nets["backend"] == backend], exponents, net_styles)
            axes[1][col].set_title(f"{backend}: whole networks", fontsize=12, loc="left")
            axes[1][col].set_xlabel("tokens at stride 4 = (resolution / 4)²")
        fig.suptitle("Latency vs tokens, batch 1 (log-log; legend: least-squares exponents)")
        return _save_figure(fig, out, "latency_vs_tokens")


def plot_operator_terms(catm: pd.DataFrame, out: Path) -> list[Path]:
    """Share of each operator term in all of the CATM's work across widths (smallest b, H = W = 14)."""
    size = 14 if 14 in set(catm["H"]) else int(catm["H"].iloc[0])
    d = catm[(catm["b"] == catm["b"].min()) & (catm["H"] == size)].sort_values("C")
    parts = [(t, f"term_{t}") for t in COUNTED_TERMS if d[f"term_{t}"].sum() > 0]
    parts += [(f"{t} (no counter)", f"analytic_{t}") for t in UNCOUNTED_TERMS]
    with _figure(1, width=8.5, height=5.0) as (fig, axes):
        ax = axes[0][0]
        bottom = np.zeros(len(d))
        xs = np.arange(len(d))
        colors = matplotlib.colormaps["tab10"].colors
        for (label, column), color in zip(parts, colors, strict=False):
            share = 100 * d[column].to_numpy() / d["all_ops"].to_numpy()
            ax.bar(xs, share, bottom=bottom, color=color, label=label, hatch="//" if "no counter" in label else None)
            bottom += share
        ax.set_xticks(xs, [str(c) for c in d["C"]])
        ax.set(xlabel="channels C", ylabel="% of MACs + uncounted ops", ylim=(0, 100))
        ax.set_title(
            f"CATM operator terms at H = W = {size}, b = {d['b'].iloc[0]} (hatched: priced by no counter)",
            fontsize=12,
            loc="left",
        )
        ax.legend(fontsize=9, loc="center left", bbox_to_anchor=(1.0, 0.5))
        return _save_figure(fig, out, "operator_terms")


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


def stable(frame: pd.DataFrame, decimals: int = 10) -> pd.DataFrame:
    """Least-squares results rounded to ``decimals`` (and -0.0 made 0.0): the digits beyond are the BLAS build's
    rounding noise, which differs between CPUs and would make the same command write different files."""
    floats = frame.select_dtypes("float").columns
    return frame.assign(**{c: frame[c].round(decimals) + 0.0 for c in floats})


def _summary_markdown(model: CostModel, c: Counts, latency: Latency | None, notes: list[str], command: str = "") -> str:
    analytic_ok = bool(c.frames["CATM"]["analytic_matches_tally"].all())
    parts = [
        f"# CATM complexity: is Ω(CATM) = {STATED_MODEL}?",
        "",
        *(
            [
                f"Made by `{command}`. Counts, fits and verdict are exact and come out the same on any machine; "
                "latencies are measured and vary with the machine and its load (see the notes).",
                "",
            ]
            if command
            else []
        ),
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
        markdown_table(stable(c.fit_frame), 4),
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
        markdown_table(stable(c.token_exponents), 3),
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
            markdown_table(stable(latency.exponents), 3),
            "",
        ]
    parts += ["## Notes", "", *[f"- {n}" for n in notes], ""]
    return "\n".join(parts)


def save(
    model: CostModel, c: Counts, latency: Latency | None, notes: list[str], out: Path, command: str = ""
) -> list[Path]:
    """CSV tables, ``summary.md`` and the plots; returns the paths written."""
    tables = {
        "grid_catm.csv": c.frames["CATM"],
        "grid_cas_block.csv": c.frames["CAS block"],
        "fits.csv": stable(c.fit_frame),
        "model_comparison.csv": c.comparison,
        "operator_terms.csv": c.terms,
        "verdict.csv": c.verdict,
        "tokens.csv": c.tokens,
        "token_exponents.csv": stable(c.token_exponents),
    }
    if latency is not None:
        tables["latency.csv"] = pd.concat([latency.mixers, latency.networks], ignore_index=True)
        tables["latency_exponents.csv"] = stable(latency.exponents)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BenchError(f"cannot write to {out}: {exc.strerror or exc}") from None
    written = []
    for name, frame in tables.items():
        written.append(_write(out / name, lambda path, frame=frame: write_csv(path, frame)))
    summary = _summary_markdown(model, c, latency, notes, command)
    written.append(_write(out / "summary.md", lambda path: path.write_text(summary)))
    written += plot_measured_vs_predicted(model, c.frames, c.fits, out)
    written += plot_cost_vs_tokens(c.tokens, c.token_exponents, out)
    written += plot_operator_terms(c.frames["CATM"], out)
    if latency is not None:
        written += plot_latency_vs_tokens(latency.mixers, latency.networks, latency.exponents, out)
    return written


def _write(path: Path, write: Callable[[Path], object]) -> Path:
    """``write(path)``, with an OSError as the one-line error naming the file (figures: ``plot_style.save_figure``)."""
    try:
        write(path)
    except OSError as exc:
        raise BenchError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path
