"""The report's overview plots (matplotlib, Agg canvas; no pyplot state): PNG and SVG, every runtime on one figure.

For print, :mod:`bench.core.report.figures` draws each panel alone at a paper's column or page width.

Each plot draws one panel per table column of the report (a backend/device/machine setting), so
numbers from different machines or runtimes never share an axis unlabelled. Every family has one
colour and marker in every plot (Okabe-Ito colours, readable by colour-blind viewers and in
greyscale thanks to the markers); points carry the model's name; axes carry units.

Input is the report's tidy ``measurements`` frame (one row per column/model/resolution/batch with
``column``, ``name``, ``family``, ``family_label``, ``family_order``, ``model_order``, ``batch``,
``latency_batch``, ``top1``, ``gmacs``, ``latency_*``, ``throughput_ips``, ``achieved_gflops``)
and the per-iteration ``samples`` of the rows at each column's latency batch.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import NullLocator

from bench.core.records.schema import UNSTABLE
from bench.core.report import label_layout
from bench.core.report.plot_style import (
    BASE_STYLE,
    family_styles,
    pareto_front,
    plain_log_axis,
    save_figure,
    step_segments,
)

STYLE = BASE_STYLE | {
    "font.size": 12,
    "axes.titlesize": 13,
    "axes.labelsize": 12,
    "xtick.labelsize": 11,
    "ytick.labelsize": 11,
    "legend.fontsize": 11,
    "grid.alpha": 0.3,
}
"""Screen sizes over the shared style."""
DPI = 150
PANEL_W, PANEL_H = 6.2, 4.8


@dataclass(frozen=True)
class Aspect:
    """How a plot's figure is sized: per panel (papers, the default) or one fixed slide for all panels."""

    suffix: str
    """Appended to the file names (``latency_vs_top1_16x9.png``)."""
    size: tuple[float, float] | None
    """Inches of the whole figure, or None: :data:`PANEL_W` x :data:`PANEL_H` per panel."""
    dpi: int


ASPECTS = {
    "default": Aspect("", None, DPI),
    "16:9": Aspect("_16x9", (40 / 3, 7.5), 144),  # a 13.33 x 7.5 in slide, 1920 x 1080 px
}


@dataclass(frozen=True)
class Panel:
    key: str
    title: str
    subtitle: str


def _marker_size(marker: str) -> float:
    return 190.0 if marker == "*" else 75.0


# ------------------------------------------------------------------------------------ figure helpers


def _figure(
    panels: list[Panel], height: float = PANEL_H, size: tuple[float, float] | None = None
) -> tuple[Figure, list[Axes]]:
    """One axes per panel, up to three a row; ``size`` fixes the whole figure (a slide) instead."""
    n = len(panels)
    ncols = min(n, 3) if size is None or n <= 3 else math.ceil(n / 2)
    nrows = math.ceil(n / ncols)
    figsize = size or (PANEL_W * ncols, height * nrows + 0.7)
    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel().tolist()
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    for ax, panel in zip(axes, panels, strict=False):
        ax.set_title(f"{panel.title}\n{panel.subtitle}", fontsize=12, loc="left")
    return fig, axes[: len(panels)]


def _family_legend(
    fig: Figure, frame: pd.DataFrame, styles: dict[str, tuple[str, str]], title: str, boxes: bool = False
) -> None:
    """Title and one legend entry per family, drawn as the plot draws it: its marker, or (``boxes``) a box."""
    fams = frame.drop_duplicates("family").sort_values("family_order")
    handles = [
        Patch(facecolor=styles[f].color, edgecolor=styles[f].color, alpha=0.75, label=label)
        if boxes
        else Line2D(
            [],
            [],
            linestyle="",
            marker=styles[f].marker,
            color=styles[f].color,
            markersize=13 if styles[f].marker == "*" else 9,
            label=label,
        )
        for f, label in zip(fams["family"], fams["family_label"], strict=True)
    ]
    extra = getattr(fig, "_extra_handles", [])
    fig.suptitle(title, fontsize=15, fontweight="bold")
    entries = len(handles) + len(extra)
    ncols = max(1, min(entries, int(fig.get_figwidth() / 1.9)))
    ncols = math.ceil(entries / math.ceil(entries / ncols))  # balanced rows
    fig.legend(
        handles=handles + extra,
        loc="outside lower center",
        ncols=ncols,
        frameon=False,
    )


def _scatter_families(ax: Axes, frame: pd.DataFrame, x: str, y: str, styles) -> None:
    """Family markers: filled when the measurement is stable, hollow when it is unstable."""
    for family, grp in frame.groupby("family", sort=False):
        color, marker = styles[family].color, styles[family].marker
        unstable = grp["validity"].eq(UNSTABLE) if "validity" in grp else pd.Series(False, index=grp.index)
        ax.scatter(
            grp.loc[~unstable, x],
            grp.loc[~unstable, y],
            s=_marker_size(marker),
            marker=marker,
            color=color,
            edgecolor="white",
            linewidth=0.6,
            zorder=3,
        )
        ax.scatter(
            grp.loc[unstable, x],
            grp.loc[unstable, y],
            s=_marker_size(marker),
            marker=marker,
            facecolors="none",
            edgecolors=color,
            linewidth=1.6,
            zorder=3.2,  # over the filled markers: an unstable point beside a stable one stays in sight
        )


def _unstable_handle(frame: pd.DataFrame) -> list[Line2D]:
    """The legend entry for hollow markers, where a plotted row is unstable."""
    if "validity" in frame and frame["validity"].eq(UNSTABLE).any():
        return [
            Line2D(
                [],
                [],
                marker="o",
                color="0.3",
                markerfacecolor="none",
                markeredgewidth=1.6,
                linestyle="",
                markersize=9,
                label="hollow: unstable (†)",
            )
        ]
    return []


def _maybe_log(ax: Axes, values: pd.Series, which: str, ratio: float = 8.0) -> None:
    v = values[values > 0]
    if len(v) and v.max() / v.min() > ratio:
        (ax.set_xscale if which == "x" else ax.set_yscale)("log")
        plain_log_axis(ax.xaxis if which == "x" else ax.yaxis)


# ------------------------------------------------------------------------------------ the plots


class Skip(Exception):
    """A plot that the data cannot support; its message becomes a note in the report."""


def _panel_rows(measurements: pd.DataFrame, panels: list[Panel], pick) -> list[tuple[Panel, pd.DataFrame]]:
    out = []
    for panel in panels:
        rows = pick(measurements[measurements["column"] == panel.key])
        if len(rows):
            out.append((panel, rows))
    return out


def _batch_label(rows: pd.DataFrame) -> str:
    batches = sorted(rows["batch"].unique())
    return f"batch {batches[0]}" if len(batches) == 1 else "batch " + "/".join(map(str, batches))


def _plot_vs_top1(
    measurements: pd.DataFrame,
    panels,
    styles,
    pick,
    metric: str,
    xlabel: str,
    title: str,
    smaller_is_better: bool,
    extra_handles: list[Line2D],
    decorate=None,
    size: tuple[float, float] | None = None,
) -> Figure:
    """A speed metric against published top-1 per panel, with the Pareto frontier and labelled points.

    ``decorate(ax, rows)`` draws extra marks and returns their ``((x0, y0), (x1, y1))`` segments, which
    labels avoid like the frontier's steps.
    """
    data = _panel_rows(measurements, panels, pick)
    if not data:
        raise Skip("no measured model has a published top-1")
    fig, axes = _figure([p for p, _ in data], size=size)
    fig._extra_handles = [
        Line2D([], [], color="0.35", linestyle="--", label="Pareto frontier"),
        *extra_handles,
        *_unstable_handle(pd.concat([rows for _, rows in data])),
    ]
    segments = []
    for ax, (_, rows) in zip(axes, data, strict=True):
        drawn = list(decorate(ax, rows)) if decorate is not None else []
        _scatter_families(ax, rows, metric, "top1", styles)
        x, y = rows[metric].to_numpy(float), rows["top1"].to_numpy(float)
        front = pareto_front(x, y, smaller_x_better=smaller_is_better)
        if len(front) > 1:
            where = "post" if smaller_is_better else "pre"
            ax.step(x[front], y[front], where=where, color="0.35", linestyle="--", lw=1.3, zorder=1)
            drawn += step_segments(x[front], y[front], where)
        segments.append(drawn)
        _maybe_log(ax, rows[metric], "x", ratio=3)  # a log axis spreads the crowd of fast models, as in print
        ax.margins(x=0.14, y=0.1)
        ax.set_xlabel(xlabel.format(batch=_batch_label(rows)))
        measured = "top1_measured" in rows and bool(rows["top1_measured"].fillna(False).astype(bool).any())
        ax.set_ylabel("ImageNet-1k top-1 (%, measured where noted)" if measured else "ImageNet-1k top-1 (%, published)")
    _family_legend(fig, measurements, styles, title)
    label_layout.freeze_layout(fig)
    for ax, (_, rows), drawn in zip(axes, data, segments, strict=True):
        colors = [styles[f].color for f in rows["family"]]
        label_layout.label_points(
            ax,
            rows[metric].tolist(),
            rows["top1"].tolist(),
            rows["name"].tolist(),
            colors,
            segments=drawn,
            make_room=True,
        )
    return fig


def with_interval(rows: pd.DataFrame) -> pd.DataFrame:
    """``rows`` with ``lat_value``, ``lat_low``, ``lat_high``: the headline latency and its interval (as the tables
    print them), the pooled median where a row has no headline."""
    from bench.core.report.tables import latency_interval

    interval = latency_interval(rows)
    return rows.assign(lat_value=interval["value"], lat_low=interval["low"], lat_high=interval["high"])


INTERVAL_LABEL = "95% interval (another sitting)"


def plot_latency_vs_top1(measurements, samples, panels, styles, size=None) -> Figure:
    def interval_bars(ax: Axes, rows: pd.DataFrame) -> list:
        """The headline's interval as a bar through each point that has one (the print figures draw the same)."""
        bars = []
        for r in rows.itertuples(index=False):
            if pd.isna(r.lat_low) or pd.isna(r.lat_high):
                continue
            ax.errorbar(
                r.lat_value,
                r.top1,
                xerr=[[r.lat_value - r.lat_low], [r.lat_high - r.lat_value]],
                fmt="none",
                ecolor=styles[r.family].color,
                elinewidth=1.4,
                capsize=3,
                alpha=0.8,
                zorder=2,
            )
            bars.append(((r.lat_low, r.top1), (r.lat_high, r.top1)))
        return bars

    pick = lambda d: with_interval(d[d["latency_batch"] & d["top1"].notna()])  # noqa: E731
    picked = [pick(measurements[measurements["column"] == p.key]) for p in panels]
    any_interval = any(f["lat_high"].notna().any() for f in picked if len(f))
    handle = [Line2D([], [], color="0.35", marker="|", markersize=8, lw=1.4, label=INTERVAL_LABEL)]
    return _plot_vs_top1(
        measurements,
        panels,
        styles,
        pick=pick,
        metric="lat_value",
        xlabel="Latency at {batch} (ms; bar: 95% interval)" if any_interval else "Latency at {batch} (ms)",
        title="Latency vs top-1 (upper left is better)",
        smaller_is_better=True,
        extra_handles=handle if any_interval else [],
        decorate=interval_bars,
        size=size,
    )


def _largest_batch(d: pd.DataFrame) -> pd.DataFrame:
    d = d[d["top1"].notna()]
    return d[d["batch"] == d["batch"].max()] if len(d) else d


def plot_throughput_vs_top1(measurements, samples, panels, styles, size=None) -> Figure:
    return _plot_vs_top1(
        measurements,
        panels,
        styles,
        pick=_largest_batch,
        metric="throughput_ips",
        xlabel="Throughput at {batch} (images/s)",
        title="Throughput vs top-1 (upper right is better)",
        smaller_is_better=False,
        extra_handles=[],
        size=size,
    )


def plot_throughput_vs_batch(measurements, samples, panels, styles, size=None) -> Figure:
    data = _panel_rows(measurements, panels, lambda d: d if d["batch"].nunique() > 1 else d.iloc[0:0])
    if not data:
        raise Skip("needs results at two or more batch sizes in one column (one was measured)")
    fig, axes = _figure([p for p, _ in data], size=size)
    for ax, (_, rows) in zip(axes, data, strict=True):
        ax.set_xscale("log", base=2)
        batches = sorted(int(b) for b in rows["batch"].unique())
        ax.set_xticks(batches, [str(b) for b in batches])
        ax.xaxis.set_minor_locator(NullLocator())
        for _, grp in rows.sort_values("batch").groupby(["model", "resolution"], sort=False):
            color = styles[grp["family"].iloc[0]].color
            ax.plot(grp["batch"], grp["throughput_ips"], color=color, lw=1.8, alpha=0.9, zorder=2)
        _scatter_families(ax, rows, "batch", "throughput_ips", styles)  # hollow where a cell is unstable
        # the last batch at ~70% of the width leaves room for the labels at the line ends
        left = math.log2(batches[0]) - 0.3
        right = left + (math.log2(batches[-1]) - left) / 0.7
        ax.set_xlim(2**left, 2**right)
        ax.set_ylim(bottom=0)
        ax.margins(y=0.08)
        ax.set_xlabel("Batch size")
        ax.set_ylabel("Throughput (images/s)")
    fig._extra_handles = _unstable_handle(pd.concat([rows for _, rows in data]))
    _family_legend(fig, measurements, styles, "Throughput vs batch size")
    label_layout.freeze_layout(fig)
    for ax, (_, rows) in zip(axes, data, strict=True):
        last = rows.sort_values("batch").groupby(["model", "resolution"], sort=False).tail(1)
        label_layout.spread_labels(
            ax, [(r.batch, r.throughput_ips, r.name, styles[r.family].color) for r in last.itertuples()]
        )
    return fig


def plot_latency_distribution(measurements, samples, panels, styles, size=None) -> Figure:
    if samples is None or samples.empty:
        raise Skip("the results have no per-iteration samples")
    present = [p for p in panels if (samples["column"] == p.key).any()]
    if not present:
        raise Skip("no per-iteration samples match the measured rows")
    models = (
        measurements[measurements["latency_batch"]]
        .drop_duplicates(["model"])
        .sort_values(["family_order", "model_order", "model"])
    )
    rows_needed = len(models) + models["family"].nunique()
    fig, axes = _figure(present, height=max(3.2, 0.36 * rows_needed + 1.4), size=size)
    any_unstable = False
    for ax, panel in zip(axes, present, strict=True):
        s = samples[samples["column"] == panel.key]
        in_panel = measurements[(measurements["column"] == panel.key) & measurements["latency_batch"]]
        unstable_models = (
            set(in_panel.loc[in_panel["validity"].eq(UNSTABLE), "model"]) if "validity" in in_panel else set()
        )
        data, pos, colors, labels, hollow = [], [], [], [], []
        y, prev_family = 0.0, None
        for m in models.itertuples(index=False):
            if prev_family is not None and m.family != prev_family:
                y += 0.6  # a gap between families
            prev_family = m.family
            values = s.loc[s["model"] == m.model, "latency_ms"].to_numpy()
            if len(values):
                data.append(values)
                pos.append(y)
                colors.append(styles[m.family].color)
                hollow.append(m.model in unstable_models)
                labels.append(f"{m.name} †" if hollow[-1] else m.name)
            y += 1.0
        bp = ax.boxplot(
            data,
            positions=pos,
            orientation="horizontal",
            whis=(5, 95),
            widths=0.62,
            patch_artist=True,
            showfliers=True,
            medianprops={"color": "black", "lw": 1.6},
            flierprops={"marker": ".", "markersize": 3, "alpha": 0.5, "markeredgecolor": "none"},
        )
        for patch, flier, color, unstable in zip(bp["boxes"], bp["fliers"], colors, hollow, strict=True):
            patch.set_facecolor("none" if unstable else color)  # hollow: unstable, as the points of the other plots
            patch.set_alpha(None if unstable else 0.75)
            patch.set_edgecolor(color)
            patch.set_linewidth(1.6 if unstable else 1.0)
            flier.set_markerfacecolor(color)
        any_unstable |= any(hollow)
        for i, color in enumerate(colors):
            for line in (*bp["whiskers"][2 * i : 2 * i + 2], *bp["caps"][2 * i : 2 * i + 2]):
                line.set_color(color)
        ax.set_yticks(pos, labels)
        for tick, color in zip(ax.get_yticklabels(), colors, strict=True):
            tick.set_color(color)
        ax.invert_yaxis()
        ax.grid(axis="y", visible=False)
        _maybe_log(ax, pd.Series(np.concatenate(data)), "x", ratio=3)
        ax.set_xlabel(f"Latency per iteration at {_batch_label(in_panel)} (ms)\nbox: quartiles, whiskers: 5th-95th pct")
    fig._extra_handles = [Line2D([], [], color="black", lw=1.6, label="median")]
    if any_unstable:
        fig._extra_handles.append(Patch(facecolor="none", edgecolor="0.3", lw=1.6, label="hollow: unstable (†)"))
    _family_legend(fig, models, styles, "Per-iteration latency distribution", boxes=True)
    return fig


def _nice_levels(lo: float, hi: float) -> list[float]:
    levels = [m * 10.0**e for e in range(-2, 6) for m in (1, 2, 5)]
    inside = [v for v in levels if lo <= v <= hi]
    while len(inside) > 4:
        inside = inside[::2]
    return inside


def plot_latency_vs_gmacs(measurements, samples, panels, styles, size=None) -> Figure:
    data = _panel_rows(measurements, panels, lambda d: d[d["latency_batch"] & d["gmacs"].notna() & (d["gmacs"] > 0)])
    if not data:
        raise Skip("no GMACs were recorded for the measured models")
    fig, axes = _figure([p for p, _ in data], size=size)
    fig._extra_handles = [
        Line2D([], [], color="0.55", linestyle=":", label="constant GFLOP/s"),
        *_unstable_handle(pd.concat([rows for _, rows in data])),
    ]
    for ax, (_, rows) in zip(axes, data, strict=True):
        _scatter_families(ax, rows, "gmacs", "latency_ms", styles)
        ax.set_xscale("log")
        ax.set_yscale("log")
        plain_log_axis(ax.xaxis)
        plain_log_axis(ax.yaxis)
        ax.margins(x=0.3, y=0.15)  # room for the labels of the smallest models
        ax.set_xlabel("GMACs per image (1 MAC = 2 FLOPs)")
        ax.set_ylabel(f"Latency at {_batch_label(rows)} (ms)")
    _family_legend(fig, measurements, styles, "Latency vs GMACs (achieved GFLOP/s in brackets)")
    label_layout.freeze_layout(fig)
    for ax, (_, rows) in zip(axes, data, strict=True):
        (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
        batch = int(rows["batch"].iloc[0])
        g = rows["achieved_gflops"]
        xs = np.geomspace(x0, x1, 60)
        lines = []
        for level in _nice_levels(g.min() / 3, g.max() * 3):
            ys = 2000.0 * xs * batch / level  # latency_ms = 2 * GMACs * batch * 1000 / (GFLOP/s)
            ax.plot(xs, ys, color="0.55", linestyle=":", lw=1.1, zorder=1)
            lines.append((xs, ys, f"{level:g} GFLOP/s"))
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
        labels = [f"{n} ({v:.0f})" for n, v in zip(rows["name"], g, strict=True)]
        colors = [styles[f].color for f in rows["family"]]
        boxes = label_layout.label_points(
            ax, rows["gmacs"].tolist(), rows["latency_ms"].tolist(), labels, colors, make_room=True
        )
        markers = label_layout.marker_boxes(ax, rows["gmacs"], rows["latency_ms"])  # after make_room moved them
        label_layout.label_lines(ax, lines, markers + boxes)
    return fig


PLOTS: dict[str, Callable[..., Figure]] = {
    "latency_vs_top1": plot_latency_vs_top1,
    "throughput_vs_top1": plot_throughput_vs_top1,
    "throughput_vs_batch": plot_throughput_vs_batch,
    "latency_distribution": plot_latency_distribution,
    "latency_vs_gmacs": plot_latency_vs_gmacs,
}


def write_plots(
    measurements: pd.DataFrame, samples: pd.DataFrame, panels: list[Panel], out_dir: Path, aspect: str = "default"
) -> tuple[list[Path], list[str]]:
    """Draw every plot the data supports into ``out_dir`` (PNG + SVG); returns (paths, skip notes).

    ``aspect`` is a key of :data:`ASPECTS`: ``"16:9"`` draws each plot on one slide-sized figure and writes
    ``<plot>_16x9.png`` / ``.svg`` (1920 x 1080 px) instead.
    """
    layout = ASPECTS[aspect]
    families = measurements.drop_duplicates("family").sort_values("family_order")["family"].tolist()
    styles = family_styles(families)
    paths: list[Path] = []
    notes: list[str] = []
    with matplotlib.rc_context(STYLE):
        for name, plot in PLOTS.items():
            stem = f"{name}{layout.suffix}"
            try:
                fig = plot(measurements, samples, panels, styles, size=layout.size)
            except Skip as why:
                notes.append(f"no {name} plot: {why}")
                for suffix in (".png", ".svg"):  # never leave an older run's plot looking current
                    (Path(out_dir) / f"{stem}{suffix}").unlink(missing_ok=True)
                continue
            for suffix, extra in ((".png", {"dpi": layout.dpi}), (".svg", {"metadata": {"Date": None}})):
                paths.append(save_figure(fig, Path(out_dir) / f"{stem}{suffix}", **extra))
    return paths, notes
