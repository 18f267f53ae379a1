"""Figures for print: one file per panel, drawn at the size it is printed (a column or the page), in PDF and PNG.

The overview plots of :mod:`bench.core.plots` put every runtime on one large figure for a screen; a paper
needs one panel at a time, sized in inches for a 3.3 in column or a 7 in page width, with every text at
7 pt or more at that size. Here every panel of a plot shares its scales with the other panels of the same
plot (runtimes are compared by eye), families differ by marker and line style as well as colour (they stay
apart in grayscale), unstable measurements are hollow markers, and intervals are error bars. PDFs keep
their text as text (TrueType, ``pdf.fonttype`` 42); PNGs are 300 dpi.
"""

from __future__ import annotations

import math
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

from bench.core import label_layout
from bench.core.errors import BenchError
from bench.core.plots import _pareto, _plain_log_axis, _step_segments, save_figure
from bench.core.schema import UNSTABLE
from bench.core.tables import latency_interval
from bench.core.util import write_output

SIZES = {"3.3in": (3.3, 2.9), "7in": (7.0, 3.6)}
"""Printed size (width, height in inches) of a panel for one column and for the page width of a two-column paper."""
MIN_TEXT_PT = 7.0
LABEL_PT = 7.0
DPI = 300
STYLE = {
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
    "axes.grid": True,
    "grid.linewidth": 0.4,
    "grid.color": "0.85",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "pdf.fonttype": 42,  # TrueType: text stays text in the PDF
    "svg.fonttype": "none",
    "svg.hashsalt": "mobile-backbone-bench",
}
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
class FamilyStyle:
    color: str
    marker: str
    linestyle: str | tuple


@dataclass(frozen=True)
class PrintPanel:
    """One report column (a runtime on a machine) drawn alone."""

    key: str
    title: str
    backend: str


def family_styles(families: list[str]) -> dict[str, FamilyStyle]:
    """Colour, marker and line style each family declares; families without a declaration take spare ones
    (colour and marker from :func:`models.registry.spare_style`, the pool every plot and external family shares)."""
    import models
    from models.registry import spare_style

    known = set(models.list_families())
    spare_lines = iter([(0, (1, 1)), (0, (3, 1, 1, 1)), (0, (5, 2)), "-"] * (1 + len(families)))
    styles = {}
    for family in families:
        if family in known:
            declared = models.get_family(family)
            styles[family] = FamilyStyle(declared.color, declared.marker, declared.linestyle)
        else:
            color, marker = spare_style(family)
            styles[family] = FamilyStyle(color, marker, next(spare_lines))
    return styles


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
        front = _pareto(xs, ys, smaller_x_better)
        if len(front) < 2:
            continue
        if mode == "global":
            color, style = "0.35", (0, (4, 2))
        else:
            color, style = styles[family].color, styles[family].linestyle
        ax.step(xs[front], ys[front], where=where, color=color, linestyle=style, lw=0.9, zorder=1)
        segments += _step_segments(xs[front], ys[front], where)
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
    _plain_log_axis(ax.xaxis)
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
    _plain_log_axis(ax.xaxis)
    _plain_log_axis(ax.yaxis)
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


def speedup_figures(measurements: pd.DataFrame, font: str = "sans") -> Iterator[tuple[str, Figure]]:
    """``(file stem, figure)`` per precision timed beside fp32 (:func:`bench.core.ratios.speedups`): each model's
    speedup over fp32 on every runtime that ran both, at the latency batch, with its interval; one row per model
    (families in the tables' order), one marker per runtime (hollow where either cell is unstable), at both print
    sizes."""
    from bench.core.ratios import speedups

    if not {"sitting", "precision", "latency_batch"} <= set(measurements) or measurements["precision"].nunique() < 2:
        return  # one precision (or measurements of no sitting): nothing to divide
    frame = speedups(measurements[measurements["latency_batch"]])
    if frame.empty:
        return
    facts = measurements.drop_duplicates("model").set_index("model")
    labels = measurements.drop_duplicates(["sitting", "backend", "precision"]).set_index(
        ["sitting", "backend", "precision"]
    )["column_label"]
    for precision, rows in frame.groupby("precision", sort=False):
        order = [(facts.at[m, "family_order"], facts.at[m, "model_order"]) for m in rows["model"]]
        models = list(dict.fromkeys(rows.assign(order=order).sort_values("order", ascending=False)["model"]))
        names = [str(facts.at[m, "name"]) for m in models]
        runtimes = {
            key: str(labels.get((*key, precision), key[1]))
            for key in dict.fromkeys(zip(rows["run_id"], rows["backend"], strict=True))
        }
        for size in SIZES:
            with matplotlib.rc_context(STYLE | FONTS[font]):
                fig = _speedup_figure(rows, models, names, runtimes, str(precision), size)
            yield f"speedup_{precision}_{size}", fig


def _speedup_figure(
    rows: pd.DataFrame, models: list[str], names: list[str], runtimes: dict[tuple, str], precision: str, size: str
) -> Figure:
    width, height = SIZES[size]
    fig = Figure(figsize=(width, max(height, 1.0 + 0.2 * len(models))), layout="constrained", dpi=DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.set_title(f"{precision} over fp32, batch {int(rows['batch'].min())}", loc="left")
    step = 0.7 / max(len(runtimes), 1)
    handles: list[Line2D] = []
    for i, ((run, backend), name) in enumerate(runtimes.items()):
        mine = rows[(rows["run_id"] == run) & (rows["backend"] == backend)]
        y = np.array([models.index(m) - (i - (len(runtimes) - 1) / 2) * step for m in mine["model"]])  # 1st on top
        x = mine["speedup"].to_numpy(float)
        low, high = mine["speedup_ci_low"].to_numpy(float), mine["speedup_ci_high"].to_numpy(float)
        color, marker = matplotlib.colormaps["tab10"](i % 10), RUNTIME_MARKERS[i % len(RUNTIME_MARKERS)]
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
    ax.axvline(1.0, color="0.4", lw=0.8, linestyle=(0, (4, 2)), zorder=1)
    ax.set_yticks(range(len(models)), names)
    ax.set_ylim(-0.6, len(models) - 0.4)
    ax.set_xlabel(f"fp32 latency / {precision} latency")  # right of the dashed 1: faster
    ax.grid(axis="y", visible=False)
    fig.legend(handles=handles, loc="outside upper center", ncols=min(len(handles), 2), frameon=False)
    return fig


def write_figures(
    measurements: pd.DataFrame, panels: list[PrintPanel], out_dir: Path, pareto: str = "global", font: str = "sans"
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
    for stem, fig in (*print_figures(measurements, panels, pareto, font), *speedup_figures(measurements, font)):
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
