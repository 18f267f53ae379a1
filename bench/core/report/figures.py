"""Figures for print: one file per panel, drawn at the size it is printed (a column or the page), in PDF and PNG.

The overview plots of :mod:`bench.core.report.plots` put every runtime on one large figure for a screen; a paper
needs one panel at a time, sized in inches for a 3.3 in column or a 7 in page width, with every text at
7 pt or more at that size. Here every panel of a plot shares its scales with the other panels of the same
plot (runtimes are compared by eye), families differ by marker and line style as well as colour (they stay
apart in grayscale), unstable measurements are hollow markers, and intervals are error bars. PDFs keep
their text as text (TrueType, ``pdf.fonttype`` 42); PNGs are 300 dpi.
"""

from __future__ import annotations

import itertools
import math
import re
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import NullLocator

from bench.core.errors import BenchError
from bench.core.records.schema import UNSTABLE
from bench.core.report import label_layout
from bench.core.report.plot_style import (
    BASE_STYLE,
    FamilyStyle,
    family_styles,
    pareto_front,
    plain_log_axis,
    save_figure,
    step_segments,
)
from bench.core.report.tables import latency_interval
from bench.core.util import write_output

SIZES = {"3.3in": (3.3, 2.9), "7in": (7.0, 3.6)}
"""Printed size (width, height in inches) of a panel for one column and for the page width of a two-column paper."""
MIN_TEXT_PT = 7.0
LABEL_PT = 7.0
DPI = 300
STYLE = BASE_STYLE | {
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.fontsize": 7,
    "axes.linewidth": 0.6,
    "xtick.major.width": 0.6,
    "ytick.major.width": 0.6,
    "xtick.minor.width": 0.4,
    "ytick.minor.width": 0.4,
    "lines.linewidth": 1.0,
    "grid.linewidth": 0.4,
    "grid.color": "0.85",
}
"""Print sizes over the shared style."""
FONTS = {
    "sans": {},
    # STIX (shipped with matplotlib, so every machine draws the same figure) is a Times design: the figures then
    # match a Times body text, as the 10 pt two-column classes set it
    # named, not "serif": a text keeps the name, so it measures and draws the same outside this style's context
    "serif": {"font.family": ["STIXGeneral", "DejaVu Serif"], "mathtext.fontset": "stix"},
}
"""Type of the print figures' text (``--figure-font``): matplotlib's sans-serif, or a serif beside a serif body."""
MARKER_AREA = {"*": 60.0}
"""Marker areas in pt^2 (a star needs more area to look as big as the others)."""
DEFAULT_AREA = 26.0
PARETO_MODES = ("global", "family")


@dataclass(frozen=True)
class PrintPanel:
    """One report column (a runtime on a machine) drawn alone."""

    key: str
    title: str
    backend: str


def marker_area(marker: str) -> float:
    return MARKER_AREA.get(marker, DEFAULT_AREA)


def _label(row, size: str) -> str:
    """A point's label: the full name on a page-wide panel; in a column only the variant (``XS``), whose family
    the marker beside it says (full names would not fit 3.3 in without covering each other or the axes)."""
    name = str(row["name"])
    prefix = f"{row['family_label']}-"
    return name[len(prefix) :] if size == "3.3in" and name.startswith(prefix) else name


# ------------------------------------------------------------------------------------ shared pieces


def _figure(size: str, title: str) -> tuple[Figure, Axes]:
    fig = Figure(figsize=SIZES[size], layout="constrained", dpi=DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.set_title(title, loc="left")
    return fig, ax


def _points(ax: Axes, rows: pd.DataFrame, x: str, y: str, styles: dict[str, FamilyStyle]) -> None:
    """Markers of every row: filled when stable, hollow when unstable."""
    for family, grp in rows.groupby("family", sort=False):
        st = styles[family]
        unstable = grp["validity"].eq(UNSTABLE) if "validity" in grp else pd.Series(False, index=grp.index)
        area = marker_area(st.marker)
        ax.scatter(
            grp.loc[~unstable, x],
            grp.loc[~unstable, y],
            s=area,
            marker=st.marker,
            facecolors=st.color,
            edgecolors="0.1",
            linewidths=0.5,
            zorder=3,
        )
        ax.scatter(
            grp.loc[unstable, x],
            grp.loc[unstable, y],
            s=area,
            marker=st.marker,
            facecolors="none",
            edgecolors=st.color,
            linewidths=1.1,
            zorder=3.2,  # over the filled markers: an unstable point beside a stable one stays in sight
        )


def _error_bars(
    ax: Axes, rows: pd.DataFrame, x: str, y: str, styles, axis: str, bounds: tuple[str, str] = ("lat_low", "lat_high")
) -> list:
    """Interval bars (x or y) of the rows that have an interval (``bounds``: its columns); returns their segments for
    the labels to avoid."""
    segments = []
    for r in rows.itertuples(index=False):
        lo, hi = getattr(r, bounds[0]), getattr(r, bounds[1])
        if pd.isna(lo) or pd.isna(hi):
            continue
        px, py = getattr(r, x), getattr(r, y)
        color = styles[r.family].color
        centre = px if axis == "x" else py
        ax.errorbar(
            px,
            py,
            **{f"{axis}err": [[centre - lo], [hi - centre]]},
            fmt="none",
            ecolor=color,
            elinewidth=0.8,
            capsize=1.5,
            capthick=0.8,
            zorder=2,
        )
        segments.append(((lo, py), (hi, py)) if axis == "x" else ((px, lo), (px, hi)))
    return segments


def _fronts(ax: Axes, rows: pd.DataFrame, x: str, y: str, styles, mode: str, smaller_x_better: bool) -> list:
    """The Pareto front (higher y, better x): one across all families, or each family's own in its line style."""
    groups = [("", rows)] if mode == "global" else list(rows.groupby("family", sort=False))
    segments = []
    where = "post" if smaller_x_better else "pre"
    for family, grp in groups:
        xs, ys = grp[x].to_numpy(float), grp[y].to_numpy(float)
        front = pareto_front(xs, ys, smaller_x_better)
        if len(front) < 2:
            continue
        if mode == "global":
            color, style = "0.35", (0, (4, 2))
        else:
            color, style = styles[family].color, styles[family].linestyle
        ax.step(xs[front], ys[front], where=where, color=color, linestyle=style, lw=0.9, zorder=1)
        segments += step_segments(xs[front], ys[front], where)
    return segments


def _legend(fig: Figure, rows: pd.DataFrame, styles, *, lines: bool, extra: list[Line2D]) -> None:
    fams = rows.drop_duplicates("family").sort_values("family_order")
    handles = [
        Line2D(
            [],
            [],
            marker=styles[f].marker,
            color=styles[f].color,
            markeredgecolor="0.1",
            markeredgewidth=0.5,
            linestyle=styles[f].linestyle if lines else "",
            lw=0.9,
            markersize=math.sqrt(marker_area(styles[f].marker)),
            label=label,
        )
        for f, label in zip(fams["family"], fams["family_label"], strict=True)
    ]
    if "validity" in rows and rows["validity"].eq(UNSTABLE).any():
        handles.append(
            Line2D(
                [],
                [],
                marker="o",
                color="0.3",
                markerfacecolor="none",
                markeredgewidth=1.1,
                linestyle="",
                markersize=math.sqrt(DEFAULT_AREA),
                label="hollow: unstable (†)",
            )
        )
    handles += extra
    width = fig.get_figwidth()
    ncols = max(1, min(len(handles), int(width / 1.15)))
    ncols = math.ceil(len(handles) / math.ceil(len(handles) / ncols))
    fig.legend(
        handles=handles,
        loc="outside lower center",
        ncols=ncols,
        frameon=False,
        handlelength=2.2,
        columnspacing=1.0,
        handletextpad=0.4,
    )


def _log_limits(values: list[pd.Series], pad: float = 1.25) -> tuple[float, float]:
    v = pd.concat(values).dropna()
    v = v[v > 0]
    return float(v.min()) / pad, float(v.max()) * pad


def _interval_rows(rows: pd.DataFrame) -> pd.DataFrame:
    interval = latency_interval(rows)
    return rows.assign(lat_value=interval["value"], lat_low=interval["low"], lat_high=interval["high"])


def _interval_handle(rows: pd.DataFrame) -> list[Line2D]:
    if rows["lat_high"].notna().any():
        return [Line2D([], [], color="0.3", marker="|", markersize=4, lw=0.8, label="95% interval (another sitting)")]
    return []


# ------------------------------------------------------------------------------------ the figures


@dataclass
class PrintPlot:
    """One kind of print figure: which rows of a panel it draws and how."""

    name: str
    pick: Callable[[pd.DataFrame], pd.DataFrame]
    draw: Callable[..., Figure]
    shared: Callable[[list[pd.DataFrame]], dict]


def _pick_latency_top1(d: pd.DataFrame) -> pd.DataFrame:
    return _interval_rows(d[d["latency_batch"] & d["top1"].notna()])


def _shared_latency_top1(frames: list[pd.DataFrame]) -> dict:
    xs = [f["lat_value"] for f in frames] + [f["lat_low"] for f in frames] + [f["lat_high"] for f in frames]
    top1 = pd.concat([f["top1"] for f in frames])
    return {"xlim": _log_limits(xs, 1.6), "ylim": (float(top1.min()) - 1.0, float(top1.max()) + 0.7)}


def _draw_vs_top1(
    rows: pd.DataFrame, panel: PrintPanel, size: str, styles, shared: dict, pareto: str, *, x: str,
    bounds: tuple[str, str], smaller_x_better: bool, xlabel: str, unit: str,
) -> Figure:  # fmt: skip
    """Top-1 against a log-scale speed axis ``x`` (latency or throughput), with intervals and Pareto fronts."""
    fig, ax = _figure(size, f"{panel.title} ({panel.key})")
    segments = _error_bars(ax, rows, x, "top1", styles, "x", bounds)
    segments += _fronts(ax, rows, x, "top1", styles, pareto, smaller_x_better=smaller_x_better)
    _points(ax, rows, x, "top1", styles)
    ax.set_xscale("log")
    plain_log_axis(ax.xaxis)
    ax.set_xlim(*shared["xlim"])
    ax.set_ylim(*shared["ylim"])
    ax.set_xlabel(f"{xlabel} at batch {int(rows['batch'].iloc[0])} ({unit}, log scale)")
    measured = "top1_measured" in rows and bool(rows["top1_measured"].fillna(False).astype(bool).any())
    ax.set_ylabel("ImageNet-1k top-1 (%, measured)" if measured else "ImageNet-1k top-1 (%, published)")
    front = [Line2D([], [], color="0.35", linestyle=(0, (4, 2)), lw=0.9, label="Pareto front")]
    _legend(
        fig,
        shared["all"],
        styles,
        lines=pareto == "family",
        extra=(front if pareto == "global" else []) + _interval_handle(shared["all"]),
    )
    _place(fig, ax, rows, x, "top1", styles, size, segments)
    return fig


def draw_latency_vs_top1(rows: pd.DataFrame, panel: PrintPanel, size: str, styles, shared: dict, pareto: str) -> Figure:
    return _draw_vs_top1(rows, panel, size, styles, shared, pareto, x="lat_value", bounds=("lat_low", "lat_high"),
                         smaller_x_better=True, xlabel="Latency", unit="ms")  # fmt: skip


def _pick_latency_gmacs(d: pd.DataFrame) -> pd.DataFrame:
    return _interval_rows(d[d["latency_batch"] & d["gmacs"].notna() & (d["gmacs"] > 0)])


def _shared_latency_gmacs(frames: list[pd.DataFrame]) -> dict:
    ys = [f["lat_value"] for f in frames] + [f["lat_low"] for f in frames] + [f["lat_high"] for f in frames]
    return {"xlim": _log_limits([f["gmacs"] for f in frames], 1.45), "ylim": _log_limits(ys, 1.45)}


def draw_latency_vs_gmacs(
    rows: pd.DataFrame, panel: PrintPanel, size: str, styles, shared: dict, pareto: str
) -> Figure:
    fig, ax = _figure(size, f"{panel.title} ({panel.key})")
    segments = _error_bars(ax, rows, "gmacs", "lat_value", styles, "y")
    _points(ax, rows, "gmacs", "lat_value", styles)
    ax.set_xscale("log")
    ax.set_yscale("log")
    plain_log_axis(ax.xaxis)
    plain_log_axis(ax.yaxis)
    ax.set_xlim(*shared["xlim"])
    ax.set_ylim(*shared["ylim"])
    ax.set_xlabel("GMACs per image (fvcore, log scale)")
    ax.set_ylabel(f"Latency at batch {int(rows['batch'].iloc[0])} (ms, log)")
    _legend(fig, shared["all"], styles, lines=False, extra=_interval_handle(shared["all"]))
    _place(fig, ax, rows, "gmacs", "lat_value", styles, size, segments)
    return fig


def _pick_throughput_top1(d: pd.DataFrame) -> pd.DataFrame:
    """Each panel's largest batch, with the throughput's interval from the latency's (b x 1000 / latency)."""
    d = d[d["top1"].notna()]
    if d.empty:
        return d
    return _with_ips_interval(d[d["batch"] == d["batch"].max()])


def _shared_throughput_top1(frames: list[pd.DataFrame]) -> dict:
    xs = [f["throughput_ips"] for f in frames] + [f["ips_low"] for f in frames] + [f["ips_high"] for f in frames]
    top1 = pd.concat([f["top1"] for f in frames])
    return {"xlim": _log_limits(xs, 1.6), "ylim": (float(top1.min()) - 1.0, float(top1.max()) + 0.7)}


def draw_throughput_vs_top1(
    rows: pd.DataFrame, panel: PrintPanel, size: str, styles, shared: dict, pareto: str
) -> Figure:
    return _draw_vs_top1(rows, panel, size, styles, shared, pareto, x="throughput_ips", bounds=("ips_low", "ips_high"),
                         smaller_x_better=False, xlabel="Throughput", unit="images/s")  # fmt: skip


def _with_ips_interval(rows: pd.DataFrame) -> pd.DataFrame:
    """``rows`` with the latency's interval, and the throughput's from it (b x 1000 / latency: the bounds swap)."""
    rows = _interval_rows(rows)
    return rows.assign(
        ips_low=rows["batch"] * 1000.0 / rows["lat_high"], ips_high=rows["batch"] * 1000.0 / rows["lat_low"]
    )


def _pick_batches(d: pd.DataFrame) -> pd.DataFrame:
    return _with_ips_interval(d if d["batch"].nunique() > 1 else d.iloc[0:0])


def _shared_batches(frames: list[pd.DataFrame]) -> dict:
    top = max(float(pd.concat([f["throughput_ips"], f["ips_high"]]).max()) for f in frames)
    batches = sorted({int(b) for f in frames for b in f["batch"]})
    return {"ymax": top * 1.08, "batches": batches}


def draw_throughput_vs_batch(
    rows: pd.DataFrame, panel: PrintPanel, size: str, styles, shared: dict, pareto: str
) -> Figure:
    fig, ax = _figure(size, f"{panel.title} ({panel.key})")
    ax.set_xscale("log", base=2)
    batches = shared["batches"]
    ax.set_xticks(batches, [str(b) for b in batches])
    ax.xaxis.set_minor_locator(NullLocator())
    for _, grp in rows.sort_values("batch").groupby(["model", "resolution"], sort=False):
        st = styles[grp["family"].iloc[0]]
        ax.plot(grp["batch"], grp["throughput_ips"], color=st.color, linestyle=st.linestyle, lw=1.0, zorder=2)
    _error_bars(ax, rows, "batch", "throughput_ips", styles, "y", ("ips_low", "ips_high"))
    _points(ax, rows, "batch", "throughput_ips", styles)
    left = math.log2(batches[0]) - 0.25
    right = left + (math.log2(batches[-1]) - left) / (0.5 if size == "3.3in" else 0.72)  # room for end labels
    ax.set_xlim(2**left, 2**right)
    ax.set_ylim(0, shared["ymax"])
    ax.set_xlabel("Batch size")
    ax.set_ylabel("Throughput (images/s)")
    _legend(fig, shared["all"], styles, lines=True, extra=_interval_handle(shared["all"]))
    label_layout.freeze_layout(fig)
    last = rows.sort_values("batch").groupby(["model", "resolution"], sort=False).tail(1)
    # full names even in a column: ten lines of one colour end in a crowd, where "XS" beside "XS" names neither
    ends = [(r["batch"], r["throughput_ips"], str(r["name"]), "0.1") for _, r in last.iterrows()]
    label_layout.spread_labels(ax, ends, fontsize=LABEL_PT)
    return fig


def _place(fig: Figure, ax: Axes, rows: pd.DataFrame, x: str, y: str, styles, size: str, segments: list) -> None:
    """Labels next to their points (after the layout is fixed), avoiding markers, bars and fronts."""
    label_layout.freeze_layout(fig)
    radius = max(math.sqrt(marker_area(styles[f].marker)) / 2 + 0.8 for f in rows["family"])
    label_layout.label_points(
        ax,
        rows[x].tolist(),
        rows[y].tolist(),
        [_label(r, size) for _, r in rows.iterrows()],
        ["0.1"] * len(rows),
        segments=segments,
        fontsize=LABEL_PT,
        marker_radius_pt=radius,
        make_room=True,  # a crowded corner may need a little more room than the shared limits leave
    )


PRINT_PLOTS = (
    PrintPlot("latency_vs_top1", _pick_latency_top1, draw_latency_vs_top1, _shared_latency_top1),
    PrintPlot("latency_vs_gmacs", _pick_latency_gmacs, draw_latency_vs_gmacs, _shared_latency_gmacs),
    PrintPlot("throughput_vs_batch", _pick_batches, draw_throughput_vs_batch, _shared_batches),
    PrintPlot("throughput_vs_top1", _pick_throughput_top1, draw_throughput_vs_top1, _shared_throughput_top1),
)


def print_figures(
    measurements: pd.DataFrame, panels: list[PrintPanel], pareto: str = "global", font: str = "sans"
) -> Iterator[tuple[str, Figure]]:
    """``(file stem, figure)`` of every print figure the data supports: each plot x panel x size."""
    if pareto not in PARETO_MODES:
        raise BenchError(f"--pareto {pareto!r}: choose {' or '.join(PARETO_MODES)}")
    if font not in FONTS:
        raise BenchError(f"--figure-font {font!r}: choose {' or '.join(FONTS)}")
    style = STYLE | FONTS[font]
    families = measurements.drop_duplicates("family").sort_values("family_order")["family"].tolist()
    styles = family_styles(families)
    for plot in PRINT_PLOTS:
        data = [(p, plot.pick(measurements[measurements["column"] == p.key])) for p in panels]
        data = [(p, rows) for p, rows in data if len(rows)]
        if not data:
            continue
        shared = plot.shared([rows for _, rows in data])
        shared["all"] = pd.concat([rows for _, rows in data])  # one legend for every panel: panels equally tall
        for panel, rows in data:
            for size in SIZES:
                with matplotlib.rc_context(style):
                    fig = plot.draw(rows, panel, size, styles, shared, pareto)
                yield f"{plot.name}_{panel.key}_{panel.backend}_{size}", fig


RUNTIME_MARKERS = ("o", "s", "^", "D", "v", "P", "X")


@dataclass(frozen=True)
class Forest:
    """A forest plot: a row per model, a marker per runtime (a series), each with its interval bar.

    ``rows`` holds ``model``, ``series`` (a key of ``series``), ``value``, ``low``, ``high`` and ``unstable``;
    ``series`` names each key and gives its slot: the report column's place, so a runtime keeps its colour and
    marker in every forest of a report; ``reference`` draws a dashed line (1 for a ratio); ``log`` puts ``value``
    on a log axis (latencies of different models span a decade)."""

    title: str
    xlabel: str
    rows: pd.DataFrame
    series: dict[object, tuple[str, int]]
    reference: float | None = None
    log: bool = False


def _model_order(measurements: pd.DataFrame, models: pd.Series) -> tuple[list[str], list[str]]:
    """The models of ``models`` in the tables' order (families, then variants) from the top, with their names; a
    model timed at another resolution than most says so (its latency covers more pixels)."""
    facts = measurements.drop_duplicates("model").set_index("model")
    order = sorted(dict.fromkeys(models), key=lambda m: (facts.at[m, "family_order"], facts.at[m, "model_order"]))
    order.reverse()  # the first model on top
    sizes = measurements.drop_duplicates("model").set_index("model")["infer_img_size"]
    usual = sizes.mode().iloc[0] if len(sizes) else None
    return order, [f"{facts.at[m, 'name']}{'' if sizes[m] == usual else f' ({sizes[m]} px)'}" for m in order]


def _forest_figure(forest: Forest, models: list[str], names: list[str], size: str) -> Figure:
    width, height = SIZES[size]
    fig = Figure(figsize=(width, max(height, 1.4 + 0.22 * len(models))), layout="constrained", dpi=DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    chars = 30 if size == "3.3in" else 90  # what the axes' width holds at 8 pt beside the models' names
    ax.set_title("\n".join(textwrap.wrap(forest.title, chars)), loc="left")
    rows, count = forest.rows, len(forest.series)
    step = 0.7 / max(count, 1)
    handles: list[Line2D] = []
    for i, (key, (name, slot)) in enumerate(forest.series.items()):
        mine = rows[rows["series"] == key]
        y = np.array([models.index(m) - (i - (count - 1) / 2) * step for m in mine["model"]])  # 1st series on top
        x = mine["value"].to_numpy(float)
        low, high = mine["low"].to_numpy(float), mine["high"].to_numpy(float)
        color, marker = matplotlib.colormaps["tab10"](slot % 10), RUNTIME_MARKERS[slot % len(RUNTIME_MARKERS)]
        bars = ~(np.isnan(low) | np.isnan(high))
        if bars.any():
            xerr = [x[bars] - low[bars], high[bars] - x[bars]]
            ax.errorbar(x[bars], y[bars], xerr=xerr, fmt="none", ecolor=color, elinewidth=0.8, capsize=1.5)
        hollow = mine["unstable"].to_numpy(bool)
        for part, face, edge, lw in ((~hollow, color, "0.1", 0.5), (hollow, "none", color, 1.1)):
            ax.scatter(x[part], y[part], s=DEFAULT_AREA, marker=marker, facecolors=face, edgecolors=edge, linewidths=lw,
                       zorder=3)  # fmt: skip
        handles.append(Line2D([], [], ls="none", marker=marker, color=color, mec="0.1", mew=0.5, label=name))
    if rows["unstable"].any():
        handles.append(Line2D([], [], ls="none", marker="o", mfc="none", mec="0.3", label="hollow: unstable"))
    if rows[["low", "high"]].notna().all(axis=1).any():
        handles.append(Line2D([], [], color="0.3", marker="|", markersize=4, lw=0.8, label="95% interval"))
    if forest.reference is not None:
        ax.axvline(forest.reference, color="0.4", lw=0.8, linestyle=(0, (4, 2)), zorder=1)
    if forest.log:
        ax.set_xscale("log")
        plain_log_axis(ax.xaxis)
    ax.set_yticks(range(len(models)), names)
    ax.set_ylim(-0.6, len(models) - 0.4)
    ax.set_xlabel("\n".join(textwrap.wrap(forest.xlabel, chars)))
    ax.grid(axis="y", visible=False)
    columns = min(len(handles), 2 if size == "3.3in" else 3)
    fig.legend(handles=handles, loc="outside upper center", ncols=columns, frameon=False)
    return fig


def _forests(measurements: pd.DataFrame, forests: Iterator[tuple[str, Forest]], font: str):
    """``(file stem, figure)`` of each forest at both print sizes."""
    for stem, forest in forests:
        if forest.rows.empty:
            continue
        models, names = _model_order(measurements, forest.rows["model"])
        for size in SIZES:
            with matplotlib.rc_context(STYLE | FONTS[font]):
                yield f"{stem}_{size}", _forest_figure(forest, models, names, size)


def _slots(measurements: pd.DataFrame) -> dict[object, int]:
    """Each report column's place among the report's columns (its colour and marker in every forest)."""
    return {column: i for i, column in enumerate(sorted(measurements["column"].dropna().unique()))}


def _series_labels(measurements: pd.DataFrame, rows: pd.DataFrame, precision: object) -> dict[object, tuple[str, int]]:
    """Each (sitting, runtime) of ``rows`` named by its report column's label at ``precision``, with its slot."""
    columns = measurements.drop_duplicates(["sitting", "backend", "precision"]).set_index(
        ["sitting", "backend", "precision"]
    )[["column_label", "column"]]
    slots, out = _slots(measurements), {}
    for i, key in enumerate(dict.fromkeys(rows["series"])):
        found = (*key, precision) in columns.index
        label, column = columns.loc[(*key, precision)] if found else (key[1], None)
        out[key] = (str(label), slots.get(column, len(slots) + i))
    return out


def _batch_words(rows: pd.DataFrame) -> str:
    batches = sorted({int(b) for b in rows["batch"]})
    return f"batch {batches[0]}" if len(batches) == 1 else "batch " + ", ".join(map(str, batches))


def _paired_rows(
    measurements: pd.DataFrame, frame: pd.DataFrame, value: str
) -> Iterator[tuple[object, pd.DataFrame, dict[object, tuple[str, int]]]]:
    """Each precision's lines of a paired frame (``ratio`` or ``speedup``, :mod:`bench.core.report.ratios`) as a
    forest's rows, a series per (sitting, runtime), with the series' names and slots."""
    for precision, rows in frame.groupby("precision", sort=False):
        rows = rows.assign(
            series=list(zip(rows["run_id"], rows["backend"], strict=True)),
            value=rows[value], low=rows[f"{value}_ci_low"], high=rows[f"{value}_ci_high"],
        )  # fmt: skip
        yield precision, rows, _series_labels(measurements, rows, precision)


def speedup_figures(measurements: pd.DataFrame, font: str = "sans") -> Iterator[tuple[str, Figure]]:
    """``(file stem, figure)`` per precision timed beside fp32 (:func:`bench.core.report.ratios.speedups`): each model's
    speedup over fp32 on every runtime that ran both, at the latency batch, with its interval; one row per model
    (families in the tables' order), one marker per runtime (hollow where either cell is unstable), at both print
    sizes."""
    from bench.core.report.ratios import speedups

    if not {"sitting", "precision", "latency_batch"} <= set(measurements) or measurements["precision"].nunique() < 2:
        return  # one precision (or measurements of no sitting): nothing to divide
    frame = speedups(measurements[measurements["latency_batch"]])

    def forests() -> Iterator[tuple[str, Forest]]:
        for precision, rows, series in _paired_rows(measurements, frame, "speedup"):
            title = f"{precision} over fp32, {_batch_words(rows)}"
            xlabel = f"fp32 latency / {precision} latency"  # right of the dashed 1: faster
            yield f"speedup_{precision}", Forest(title, xlabel, rows, series, reference=1.0)

    yield from _forests(measurements, forests(), font)


def ratio_figures(measurements: pd.DataFrame, ratio_to: str, font: str = "sans") -> Iterator[tuple[str, Figure]]:
    """``(file stem, figure)`` per precision: the forest plot of runtime ratios
    (:func:`bench.core.report.ratios.ratios`): each model's latency on every other runtime divided by its latency
    on ``ratio_to``, within one sitting, with the ratio's interval, at the latency batch; the ratios table
    (``ratios.*``) as a figure."""
    from bench.core.report.ratios import ratios

    if not {"sitting", "latency_batch"} <= set(measurements):
        return
    frame = ratios(measurements[measurements["latency_batch"]], ratio_to)
    base = measurements[measurements["backend"] == ratio_to]

    def forests() -> Iterator[tuple[str, Forest]]:
        for precision, rows, series in _paired_rows(measurements, frame, "ratio"):
            label = base.loc[base["precision"] == precision, "column_label"]
            name = re.sub(r" \([^)]*\)", "", str(label.iloc[0])) if len(label) else ratio_to  # no "(XNNPACK)"
            title = f"Latency relative to {name}, {_batch_words(rows)}"
            title = title if str(precision) in name.split() else title.replace(",", f", {precision},", 1)
            xlabel = f"latency / {name} latency (log scale)"  # left of the dashed 1: faster
            yield f"runtime_ratios_{precision}", Forest(title, xlabel, rows, series, reference=1.0, log=True)

    yield from _forests(measurements, forests(), font)


def runtime_figures(measurements: pd.DataFrame, font: str = "sans") -> Iterator[tuple[str, Figure]]:
    """``(file stem, figure)`` per precision: each model's latency on every runtime side by side, with its interval,
    at the latency batch (the paper table's latency columns as a figure; one marker per report column)."""
    if not {"latency_batch", "column", "column_label"} <= set(measurements):
        return
    timed = measurements[measurements["latency_batch"]]

    def forests() -> Iterator[tuple[str, Forest]]:
        for precision, rows in timed.groupby("precision", sort=False):
            if rows["column"].nunique() < 2:
                continue  # one runtime: the latency-vs-top-1 figure already shows it
            interval = latency_interval(rows)
            rows = rows.assign(
                series=rows["column"], value=interval["value"], low=interval["low"], high=interval["high"],
                unstable=rows["validity"].eq(UNSTABLE), batch=rows["infer_batch_size"],
            )  # fmt: skip
            slots = _slots(measurements)
            labels = rows.drop_duplicates("column").sort_values("column").set_index("column")["column_label"]
            series = {column: (str(label), slots[column]) for column, label in labels.items()}
            title = f"Latency per runtime, {precision}, {_batch_words(rows)}"
            yield f"latency_by_runtime_{precision}", Forest(title, "latency (ms, log scale)", rows, series, log=True)

    yield from _forests(measurements, forests(), font)


def write_figures(
    measurements: pd.DataFrame,
    panels: list[PrintPanel],
    out_dir: Path,
    pareto: str = "global",
    font: str = "sans",
    ratio_to: str | None = None,
) -> list[Path]:
    """Write every print figure as PDF and PNG into ``out_dir`` (created; a link there is replaced by a folder, as
    the tables replace links, never written through). Figures an earlier report wrote there and this one does not
    are removed: only those, as listed in :data:`WRITTEN_LIST` (a user's own
    files in the folder are never touched)."""
    out_dir = Path(out_dir)
    listed = out_dir / WRITTEN_LIST
    try:
        if out_dir.is_symlink():  # a link planted there would send the figures outside --out: replace the link
            out_dir.unlink()
        out_dir.mkdir(parents=True, exist_ok=True)
        before = listed.read_text(encoding="utf-8").splitlines() if listed.is_file() else []
    except (OSError, UnicodeDecodeError) as exc:
        raise BenchError(f"cannot write {out_dir}: {getattr(exc, 'strerror', None) or exc}") from None
    paths = []
    drawn = itertools.chain(
        print_figures(measurements, panels, pareto, font),
        runtime_figures(measurements, font),
        ratio_figures(measurements, ratio_to, font) if ratio_to else (),
        speedup_figures(measurements, font),
    )
    for stem, fig in drawn:
        for suffix, extra in ((".pdf", {"metadata": {"CreationDate": None}}), (".png", {"dpi": DPI})):
            with matplotlib.rc_context(STYLE | FONTS[font]):
                paths.append(save_figure(fig, out_dir / f"{stem}{suffix}", **extra))
    names = {p.name for p in paths}
    try:
        for name in before:
            if name and name not in names and Path(name).name == name and name.endswith((".pdf", ".png")):
                (out_dir / name).unlink(missing_ok=True)
    except OSError as exc:
        raise BenchError(f"cannot remove an older figure in {out_dir}: {exc.strerror or exc}") from None
    write_output(listed, "\n".join(sorted(names)))
    return paths


WRITTEN_LIST = ".bench-figures"
"""The figures folder's list of the files ``report`` wrote there (so a later report removes only those)."""


def smallest_text_pt(fig: Figure) -> float:
    """The smallest type size of any visible text in ``fig`` (titles, ticks, labels, legend), in points."""
    sizes = [t.get_fontsize() for t in fig.findobj(matplotlib.text.Text) if t.get_visible() and t.get_text().strip()]
    return float(np.min(sizes)) if sizes else math.inf
