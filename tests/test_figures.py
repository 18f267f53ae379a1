"""Print figures: every panel on its own at 3.3 in and 7 in, text at 7 pt or more, nothing drawn over a label.

Checked from what matplotlib's renderer actually drew: the window extents of the point labels and of every
scatter marker. A label may not cover another label or any point's marker, a linear axis whose data are all
positive may not reach below zero to make room for a label, and the PDFs keep their text as TrueType text.
Every label reads as its own point's: that point is clearly the nearest to it, its leader line (if any) runs
through no other label, and it stays inside its axes (never over the ticks or the axis title).
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PathCollection
from matplotlib.text import Text
from matplotlib.transforms import Bbox

import models
from bench.core.records.schema import UNSTABLE
from bench.core.records.store import load_results
from bench.core.report import figures, label_layout
from bench.core.report.reporting import load_report
from tests.conftest import REPO


def _panels(report) -> list[figures.PrintPanel]:
    return [figures.PrintPanel(c.key, c.label, c.backend) for c in report.columns]


def _overlap(a: Bbox, b: Bbox) -> float:
    w = min(a.x1, b.x1) - max(a.x0, b.x0)
    h = min(a.y1, b.y1) - max(a.y0, b.y0)
    return w * h if w > 0 and h > 0 else 0.0


def label_boxes(fig) -> list[tuple[str, Bbox]]:
    """The drawn extent of every point label (annotations inside the axes), without its halo."""
    renderer = fig.canvas.get_renderer()
    out = []
    for ax in fig.axes:
        for text in ax.texts:
            if text.get_visible() and text.get_text().strip():
                text.update_positions(renderer) if hasattr(text, "update_positions") else None
                out.append((text.get_text(), super(type(text), text).get_window_extent(renderer)))
    return out


def marker_boxes(fig) -> list[tuple[tuple[float, float], Bbox]]:
    """The drawn extent of every scatter marker: its centre on the canvas, and its square of the marker's size."""
    out = []
    for ax in fig.axes:
        for coll in ax.collections:
            if not isinstance(coll, PathCollection) or not len(coll.get_offsets()):
                continue
            sizes = np.broadcast_to(coll.get_sizes(), (len(coll.get_offsets()),))
            centres = coll.get_offset_transform().transform(coll.get_offsets())
            for (px, py), area in zip(centres, sizes, strict=True):
                r = math.sqrt(area) / 2 * fig.dpi / 72
                out.append(((px, py), Bbox([[px - r, py - r], [px + r, py + r]])))
    return out


def collisions(fig, inside: bool = True) -> list[str]:
    """Every label that covers another label or a marker, or (``inside``) sticks out of its axes over the ticks
    and axis labels, and every axis stretched below zero."""
    labels, markers = label_boxes(fig), marker_boxes(fig)
    found = []
    frames = [ax.get_window_extent() for ax in fig.axes]
    for text, box in labels if inside else []:
        if not any(
            f.x0 - 1 <= box.x0 and box.x1 <= f.x1 + 1 and f.y0 - 1 <= box.y0 and box.y1 <= f.y1 + 1 for f in frames
        ):
            found.append(f"label {text!r} sticks out of its axes")
    for i, (text, box) in enumerate(labels):
        for other, other_box in labels[i + 1 :]:
            if _overlap(box, other_box) > 0:
                found.append(f"label {text!r} covers label {other!r}")
        for centre, marker in markers:
            if _overlap(box, marker) > 0:
                found.append(f"label {text!r} covers the marker at {tuple(round(c) for c in centre)}")
    for ax in fig.axes:
        data = [c.get_offsets() for c in ax.collections if isinstance(c, PathCollection) and len(c.get_offsets())]
        if not data:
            continue
        points = np.concatenate(data)
        for axis, values, (lo, _) in (("x", points[:, 0], ax.get_xlim()), ("y", points[:, 1], ax.get_ylim())):
            scale = ax.get_xscale() if axis == "x" else ax.get_yscale()
            if scale == "linear" and values.min() >= 0 and lo < 0:
                found.append(f"{axis} axis reaches {lo:.3g}, below zero, though every point is positive")
    return found


def _points_px(ax) -> list[tuple[float, float]]:
    """Centres (display pixels) of every marker drawn in ``ax``: scatter points and line markers (not bar caps)."""
    out = []
    for coll in ax.collections:
        if isinstance(coll, PathCollection) and len(coll.get_offsets()):
            out += [tuple(p) for p in coll.get_offset_transform().transform(coll.get_offsets())]
    for line in ax.lines:
        if line.get_visible() and line.get_marker() not in (None, "", "None", " ", "|", "_"):
            out += [tuple(p) for p in line.get_transform().transform(line.get_xydata())]
    return out


def _reads(box: Bbox, px: float, py: float) -> float:
    """The gap from a point to a label's text, in pixels, a vertical gap counted twice (text is wide and short: a
    point level with a label's end reads as its point sooner than one as far above it)."""
    dx = max(box.x0 - px, 0.0, px - box.x1)
    dy = max(box.y0 - py, 0.0, py - box.y1)
    return math.hypot(dx, 2 * dy)


def reading_problems(fig) -> list[str]:
    """Every label that does not read as its own point's, and every leader line through another label.

    A point label's own point (the annotated one) must be the nearest marker to it by 1.5 pt and by 15% of its
    distance (the layout asks for more). Within 10 pt of its own (a cluster of markers, which only the label's
    side tells apart), or for a label joined to its point by a leader line, another point need only be
    farther; one within 5 pt (its marker overlaps the own one's: no side of a label can tell such a pair
    apart, as in test_report's nearest-label test) is not asked about. Labels at line ends (gid ``line-end label``,
    fanned out beside a crowd of line ends) are joined to their end by a leader instead.
    """
    renderer = fig.canvas.get_renderer()
    fig.canvas.draw()
    pt = fig.dpi / 72
    found = []
    for ax in fig.axes:
        points = _points_px(ax)
        labels = [t for t in ax.texts if t.get_visible() and t.get_text().strip() and hasattr(t, "xy")]
        boxes = [Text.get_window_extent(t, renderer) for t in labels]
        for text, box in zip(labels, boxes, strict=True):
            name = text.get_text()
            own = tuple(ax.transData.transform(text.xy))
            if text.get_rotation() == 0 and text.get_gid() != "line-end label":
                mine = _reads(box, *own)
                led = getattr(text, "arrow_patch", None) is not None  # its leader line says which point it names
                for p in points:
                    apart = math.dist(p, own) / pt
                    if apart < 5:
                        continue
                    need = mine + (0.0 if apart < 10 or led else max(1.5 * pt, 0.15 * mine))
                    if _reads(box, *p) <= need:
                        found.append(f"label {name!r} reads as the point at {tuple(round(c) for c in p)}")
                        break
            arrow = getattr(text, "arrow_patch", None)
            if arrow is not None and arrow.get_visible():
                v = arrow.get_path().vertices
                line = np.concatenate([np.linspace(a, b, 50) for a, b in itertools.pairwise(v)])
                for other, b in zip(labels, boxes, strict=True):
                    inside = (line[:, 0] > b.x0 + 0.5) & (line[:, 0] < b.x1 - 0.5)
                    inside &= (line[:, 1] > b.y0 + 0.5) & (line[:, 1] < b.y1 - 0.5)
                    if other is not text and inside.any():
                        found.append(f"leader of {name!r} runs through label {other.get_text()!r}")
    return found


def _pdf_text_is_text(path: Path) -> bool:
    data = path.read_bytes()
    return b"/FontFile2" in data and b"/Type3" not in data


@pytest.fixture(scope="module")
def reference_figures() -> list[tuple[str, object]]:
    """The print figures of the committed reference report, as ``bench report --models sized`` draws them."""
    report = load_report([REPO / "results" / "reference"], "sized")
    return list(figures.print_figures(report.measurements, _panels(report)))


def test_every_reference_figure_is_sized_for_print_and_nothing_overlaps(reference_figures) -> None:
    names = [name for name, _ in reference_figures]
    # one file per panel and size: 5 runtimes x 2 sizes for the per-runtime plots, batch plots where batches vary
    assert sum(n.startswith("latency_vs_top1_") for n in names) == 10
    assert sum(n.startswith("throughput_vs_batch_") for n in names) == 10  # every runtime ran b=1, 8
    # the throughput-accuracy plot for print: at the largest batch, with the latency's interval as throughput
    tops = {n: fig for n, fig in reference_figures if n.startswith("throughput_vs_top1_")}
    assert len(tops) == 10
    bars = [c for c in tops["throughput_vs_top1_D_litert_7in"].axes[0].collections if not isinstance(c, PathCollection)]
    summary, _, _ = load_results([REPO / "results" / "reference"])
    litert8 = summary[(summary["backend"] == "litert") & (summary["infer_batch_size"] == 8)]
    assert len(bars) == int(litert8["latency_ci_low_ms"].notna().sum())  # a bar per model with an interval
    assert "batch 8" in tops["throughput_vs_top1_D_litert_7in"].axes[0].get_xlabel()
    # throughput against batch: an interval bar on every cell that has one, at both batches
    batch_fig = dict(reference_figures)["throughput_vs_batch_D_litert_7in"]
    bars = [c for c in batch_fig.axes[0].collections if not isinstance(c, PathCollection)]
    litert = summary[summary["backend"] == "litert"]
    assert len(bars) == int(litert["latency_ci_low_ms"].notna().sum()) > int(litert8["latency_ci_low_ms"].notna().sum())
    problems = {}
    for name, fig in reference_figures:
        width, _ = fig.get_size_inches()
        assert width == pytest.approx(3.3 if name.endswith("_3.3in") else 7.0)
        assert figures.smallest_text_pt(fig) >= figures.MIN_TEXT_PT, name
        found = collisions(fig) + reading_problems(fig)
        if found:
            problems[name] = found
    assert not problems, problems


def test_labels_read_as_their_own_points_and_line_ends_keep_their_order(reference_figures) -> None:
    """Issue 28 item 7: "SwiftFormer-L1" beside the EfficientFormer-L1 triangle, leader lines through labels, ten
    line-end labels fanned 50 img/s from their points as "XS, XS, S, S". Held on the committed report's figures."""
    drawn = dict(reference_figures)
    fig = drawn["latency_vs_gmacs_D_litert_7in"]
    assert not reading_problems(fig)
    ax = fig.axes[0]
    labels = {t.get_text(): t for t in ax.texts}
    assert {"SwiftFormer-L1", "EfficientFormer-L1", "MobileViTv2-1.0", "CAS-ViT-M"} <= set(labels)
    # line ends: full names even in a column, in the order of their ends, each leader stopping at its label's edge
    for name in ("throughput_vs_batch_B_torch_3.3in", "throughput_vs_batch_A_onnx_7in"):
        fig = drawn[name]
        ax = fig.axes[0]
        fig.canvas.draw()  # annotations take their places in a draw
        renderer = fig.canvas.get_renderer()
        ends = sorted(
            (t for t in ax.texts if t.get_gid() == "line-end label"), key=lambda t: ax.transData.transform(t.xy)[1]
        )
        assert len(ends) == 10 and all("-" in t.get_text() for t in ends), name  # "CAS-ViT-XS", never "XS"
        boxes = [Text.get_window_extent(t, renderer) for t in ends]
        centres = [(b.y0 + b.y1) / 2 for b in boxes]
        assert centres == sorted(centres), name  # no two leaders cross
        pt = fig.dpi / 72
        offsets = [(c - ax.transData.transform(t.xy)[1]) / pt for t, c in zip(ends, centres, strict=True)]
        gap = figures.LABEL_PT + 2  # a label's height and a little: the column's pitch
        # a crowd spreads both ways from its middle (least squares: the offsets sum to nothing) unless the axes'
        # bottom stops it, where pushing up from the lowest end fanned a crowd a column high above its points
        floor = (boxes[0].y0 - ax.get_window_extent().y0) / pt
        assert abs(np.mean(offsets)) < 1 or floor < gap / 2, (name, offsets, floor)
        assert max(map(abs, offsets)) <= gap * len(ends), (name, offsets)
        assert not reading_problems(fig), name


def test_the_reading_check_catches_a_label_beside_another_point_and_a_leader_through_a_label() -> None:
    """The check itself: a label moved level with a neighbour, and a leader drawn through another label, are
    reported."""
    m = _sized_panel()
    panel = [figures.PrintPanel("A", "ONNX Runtime CPU", "onnx")]
    _, fig = next(figures.print_figures(m, panel))
    ax = fig.axes[0]
    assert not reading_problems(fig)
    first, second = ax.texts[0], ax.texts[1]
    target = ax.transData.transform(second.xy)
    own = ax.transData.transform(first.xy)
    # "first" put 8 pt right of the second point, level with it: it reads as the second point's label
    first.set_position(((target[0] - own[0]) * 72 / fig.dpi + 8, (target[1] - own[1]) * 72 / fig.dpi))
    first.set_ha("left")
    first.set_va("center")
    first.arrow_patch = None
    assert any(f"label {first.get_text()!r} reads as" in p for p in reading_problems(fig))
    # a leader from a point across another label: the third label far off, its line through the second's text
    third = ax.texts[2]
    box = Text.get_window_extent(second, fig.canvas.get_renderer())
    start = ax.transData.transform(third.xy)
    far = (2 * ((box.x0 + box.x1) / 2) - start[0], 2 * ((box.y0 + box.y1) / 2) - start[1])
    leader = ax.annotate(
        third.get_text(), third.xy, xytext=far, textcoords="figure pixels", arrowprops={"arrowstyle": "-"}
    )
    third.set_visible(False)
    assert any(f"leader of {leader.get_text()!r} runs through label {second.get_text()!r}" in p
               for p in reading_problems(fig))  # fmt: skip


def test_line_end_labels_keep_order_gap_and_move_least() -> None:
    """A column of line-end labels: in the order of their ends, a gap apart, centred on a crowd (least squares),
    inside the limits."""
    ys = [10.0, 11.0, 12.0, 13.0, 60.0]
    placed = label_layout.column_positions(ys, 5.0, 0.0, 100.0)
    assert all(b - a >= 5.0 - 1e-9 for a, b in itertools.pairwise(placed))
    assert placed[:4] == pytest.approx([4.0, 9.0, 14.0, 19.0])  # the crowd of four spread both ways around 11.5
    assert placed[4] == 60.0  # a point clear of the crowd keeps its height
    assert label_layout.column_positions([1.0, 2.0], 5.0, 0.0, 100.0) == pytest.approx([0.0, 5.0])  # not below 0


def test_shared_scales_hollow_unstable_points_and_editable_pdf_text(reference_figures, tmp_path: Path) -> None:
    tops = [fig for name, fig in reference_figures if name.startswith("latency_vs_top1_") and name.endswith("3.3in")]
    assert len({fig.axes[0].get_xlim() for fig in tops}) == 1  # one latency scale for every runtime
    assert len({fig.axes[0].get_ylim() for fig in tops}) == 1
    assert len({tuple(np.round(fig.axes[0].get_position().bounds, 4)) for fig in tops}) == 1  # equally tall axes
    # unstable points are hollow: mark two more ExecuTorch cells unstable than the sitting flagged
    report = load_report([REPO / "results" / "reference"])
    m = report.measurements.copy()
    panel = next(p for p in _panels(report) if p.backend == "executorch")
    mine = m.index[(m["column"] == panel.key) & m["latency_batch"] & (m["validity"] != UNSTABLE)][:2]
    m.loc[mine, "validity"] = UNSTABLE
    flagged = m[(m["column"] == panel.key) & m["latency_batch"] & (m["validity"] == UNSTABLE)]
    drawn = dict(figures.print_figures(m, [panel]))
    executorch = next(fig for name, fig in drawn.items() if name.startswith("latency_vs_top1_") and "3.3in" in name)
    hollow = [c for c in executorch.axes[0].collections if isinstance(c, PathCollection) and len(c.get_offsets())]
    hollow = [c for c in hollow if not c.get_facecolor().size or c.get_facecolor()[0][3] == 0]
    assert sum(len(c.get_offsets()) for c in hollow) == len(flagged) >= 2
    legend = [t.get_text() for t in executorch.legends[0].get_texts()]
    assert "hollow: unstable (†)" in legend
    litert = [p for p in _panels(report) if p.backend == "litert"]
    paths = figures.write_figures(m, litert, tmp_path)  # LiteRT only: quick
    assert {p.suffix for p in paths} == {".pdf", ".png"}
    assert all(_pdf_text_is_text(p) for p in paths if p.suffix == ".pdf")


def _sized_panel() -> pd.DataFrame:
    """A panel of the whole size-matched set (18 models) with intervals and two unstable rows: the crowded case."""
    rng = np.random.default_rng(3)
    rows = []
    for i, name in enumerate(models.sized_set()):
        card = models.get_card(name)
        family = models.get_family(card.family)
        gmacs = card.published_gmacs or card.published_params_m / 6
        latency = 4.0 * gmacs * rng.uniform(0.8, 1.25)
        half = latency * (0.25 if i % 7 == 3 else 0.02)
        rows.append(
            {
                "column": "A",
                "model": name,
                "name": card.display_name or f"{family.label}-{card.variant}",
                "family": card.family,
                "family_label": family.label,
                "family_order": models.list_families().index(card.family),
                "model_order": i,
                "resolution": card.default_resolution,
                "batch": 1,
                "latency_batch": True,
                "top1": card.top1,
                "gmacs": gmacs,
                "latency_median_ms": latency,
                "latency_ms": latency,
                "latency_ci_low_ms": latency - half,
                "latency_ci_high_ms": latency + half,
                "throughput_ips": 1000 / latency,
                "validity": UNSTABLE if i % 7 == 3 else "stable",
            }
        )
    return pd.DataFrame(rows)


def test_crowded_size_matched_panel_with_intervals_keeps_labels_clear() -> None:
    m = _sized_panel()
    panel = [figures.PrintPanel("A", "ONNX Runtime CPU", "onnx")]
    drawn = list(figures.print_figures(m, panel, pareto="family"))
    assert [name for name, _ in drawn] == [
        f"{plot}_A_onnx_{size}"
        for plot in ("latency_vs_top1", "latency_vs_gmacs", "throughput_vs_top1")
        for size in figures.SIZES
    ]
    problems = {name: found for name, fig in drawn if (found := collisions(fig))}
    assert not problems, problems
    fig = dict(drawn)["latency_vs_top1_A_onnx_3.3in"]
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "95% interval (another sitting)" in legend
    bars = [c for c in fig.axes[0].collections if not isinstance(c, PathCollection)]
    assert len(bars) == len(m)  # one interval bar per point
    # each family's own Pareto front, in the family's colour and line style: five families, five fronts at most
    steps = [line for line in fig.axes[0].lines if line.get_drawstyle().startswith("steps")]
    assert 1 < len(steps) <= 5 and len({line.get_color() for line in steps}) == len(steps)
    declared = {models.get_family(f).linestyle for f in models.list_families()}
    assert len(declared) == len(models.list_families())  # grayscale: no two families share a line style


def test_collision_check_catches_a_label_on_a_marker() -> None:
    """The check itself: a label moved onto another point's marker is reported."""
    m = _sized_panel()
    panel = [figures.PrintPanel("A", "ONNX Runtime CPU", "onnx")]
    name, fig = next(figures.print_figures(m, panel))
    ax = fig.axes[0]
    label = ax.texts[0]
    target = m.iloc[5]
    label.xy = (target["latency_ms"], target["top1"])
    label.set_position((0, 0))
    label.set_ha("center")
    label.set_va("center")
    assert any("covers the marker" in p for p in collisions(fig)), name


def test_overview_plots_keep_labels_clear_on_the_reference() -> None:
    """The screen overview (every runtime on one figure): the same rules, iso-GFLOP/s line labels included, and
    every label inside its axes (the screen latency_vs_top1 once put "EfficientFormerV2-S1" over the axis title)."""
    import matplotlib

    from bench.core.report import plots

    report = load_report([REPO / "results" / "reference"], "sized")
    m = report.measurements
    panels = [plots.Panel(c.key, c.title, c.machine_detail) for c in report.columns]
    styles = plots.family_styles(m.drop_duplicates("family").sort_values("family_order")["family"].tolist())
    problems = {}
    with matplotlib.rc_context(plots.STYLE):
        for name, plot in plots.PLOTS.items():
            if name == "latency_distribution":
                continue  # no point labels: models are the axis
            found = collisions(plot(m, report.samples, panels, styles))
            found += reading_problems(plot(m, report.samples, panels, styles))
            if found:
                problems[name] = found
    assert not problems, problems


def test_overview_plots_mark_unstable_cells_and_draw_the_headline_interval() -> None:
    """Issue 28 item 9: unstable cells hollow in the screen throughput-vs-batch and distribution plots too, and the
    screen latency-vs-top-1 plot draws the headline's interval (as print does), not a bar to p90."""
    import matplotlib
    from matplotlib.collections import LineCollection

    from bench.core.report import plots
    from bench.core.report.tables import latency_interval

    report = load_report([REPO / "results" / "reference"], "sized")
    m = report.measurements.copy()
    panels = [plots.Panel(c.key, c.title, c.machine_detail) for c in report.columns]
    key = panels[0].key
    m.loc[m["column"] == key, "validity"] = "stable"
    mine = m.index[(m["column"] == key) & m["latency_batch"]]
    bare = mine[m.loc[mine, "latency_ci_low_ms"].isna()][::2]  # half the cells without an interval get one
    m.loc[bare, "latency_ci_low_ms"] = m.loc[bare, "latency_ms"] * 0.97
    m.loc[bare, "latency_ci_high_ms"] = m.loc[bare, "latency_ms"] * 1.04
    m.loc[mine[:2], "validity"] = UNSTABLE  # two cells of the first runtime unstable, every other stable
    styles = plots.family_styles(m.drop_duplicates("family").sort_values("family_order")["family"].tolist())
    with matplotlib.rc_context(plots.STYLE):
        batch = plots.plot_throughput_vs_batch(m, report.samples, panels[:1], styles)
        spread = plots.plot_latency_distribution(m, report.samples, panels[:1], styles)
        top1 = plots.plot_latency_vs_top1(m, report.samples, panels[:1], styles)

    def hollow(fig) -> int:
        colls = [c for c in fig.axes[0].collections if isinstance(c, PathCollection) and len(c.get_offsets())]
        return sum(len(c.get_offsets()) for c in colls if not c.get_facecolor().size or c.get_facecolor()[0][3] == 0)

    assert hollow(batch) == 2  # the two unstable cells; every other cell of the runtime is filled
    assert "hollow: unstable (†)" in [t.get_text() for t in batch.legends[0].get_texts()]
    empty = [p for p in spread.axes[0].patches if p.get_facecolor()[3] == 0]
    assert len(empty) == 2
    daggers = [t.get_text() for t in spread.axes[0].get_yticklabels() if t.get_text().endswith("†")]
    assert sorted(daggers) == sorted(f"{n} †" for n in m.loc[mine[:2], "name"])
    # the interval bars of the headline: one per row with an interval, spanning exactly its low..high
    rows = m[(m["column"] == key) & m["latency_batch"] & m["top1"].notna()]
    interval = latency_interval(rows)
    bars = [c for c in top1.axes[0].collections if isinstance(c, LineCollection)]
    assert len(bars) == int(interval["high"].notna().sum()) > 0
    spans = sorted(tuple(np.round(seg[:, 0], 6)) for c in bars for seg in c.get_segments())
    expected = sorted((round(lo, 6), round(hi, 6)) for lo, hi in zip(interval["low"], interval["high"], strict=True)
                      if pd.notna(hi))  # fmt: skip
    assert spans == expected
    assert "p90" not in top1.axes[0].get_xlabel() and "95% interval" in top1.axes[0].get_xlabel()


def test_serif_figures_set_every_text_in_a_times_design_and_keep_the_layout_rules(tmp_path: Path) -> None:
    """``--figure-font serif``: a figure beside a serif body sets its text in STIX (Times-like, shipped with
    matplotlib), embedded in the PDF, with labels still clear; the report's stated command keeps the choice."""
    from bench.core.report.report_files import PaperChoice, report_command

    m = _sized_panel()
    panel = [figures.PrintPanel("A", "ONNX Runtime CPU", "onnx")]
    drawn = dict(figures.print_figures(m, panel, font="serif"))
    fig = drawn["latency_vs_top1_A_onnx_3.3in"]
    names = {t.get_fontname() for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()}
    assert names == {"STIXGeneral"}
    sans = dict(figures.print_figures(m, panel))["latency_vs_top1_A_onnx_3.3in"]
    assert "STIXGeneral" not in {t.get_fontname() for t in sans.findobj(Text) if t.get_text().strip()}
    assert not collisions(fig) and not reading_problems(fig)
    paths = figures.write_figures(m, panel, tmp_path, font="serif")
    pdf = next(p for p in paths if p.name == "latency_vs_top1_A_onnx_3.3in.pdf")
    assert b"STIXGeneral" in pdf.read_bytes() and _pdf_text_is_text(pdf)
    command = report_command(["results/x"], "reports/x", paper=PaperChoice(font="serif"))
    assert "--figure-font serif" in command and "--figure-font" not in report_command(["results/x"], "reports/x")
    with pytest.raises(Exception, match="--figure-font"):
        next(figures.print_figures(m, panel, font="comic"))


def _texts_outside_the_figure(fig) -> list[str]:
    """Every visible text (title, axis label, tick label, legend entry) drawn past the figure's edge."""
    fig.canvas.draw()  # the constrained layout places everything on drawing
    renderer = fig.canvas.get_renderer()
    frame = fig.bbox
    hidden = set()  # tick labels of ticks outside the view: matplotlib keeps them but does not draw them
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            lo, hi = sorted(axis.get_view_interval())
            for tick in (*axis.get_major_ticks(), *axis.get_minor_ticks()):
                if not lo <= tick.get_loc() <= hi:
                    hidden |= {id(tick.label1), id(tick.label2)}
    out = []
    for text in fig.findobj(Text):
        if text.get_visible() and text.get_text().strip() and id(text) not in hidden:
            box = text.get_window_extent(renderer)
            if box.x0 < frame.x0 - 1 or box.x1 > frame.x1 + 1 or box.y0 < frame.y0 - 1 or box.y1 > frame.y1 + 1:
                out.append(text.get_text())
    return out


def test_forest_plots_of_runtime_ratios_and_latency_per_runtime_keep_each_runtime_in_one_style() -> None:
    """Issue 28's reviewer figures: a forest plot of runtime ratios (the ratios table with its intervals) and each
    model's latency on every runtime side by side, at print size, every text inside the figure, every runtime in
    the same colour and marker in both, a marker per model and runtime."""
    from matplotlib.colors import to_hex

    report = load_report([REPO / "results" / "reference"], "sized")
    m = report.measurements
    ratios = dict(figures.ratio_figures(m, "litert"))
    latencies = dict(figures.runtime_figures(m))
    assert set(ratios) == {"runtime_ratios_fp32_3.3in", "runtime_ratios_fp32_7in"}
    assert set(latencies) == {"latency_by_runtime_fp32_3.3in", "latency_by_runtime_fp32_7in"}
    timed = m[m["latency_batch"]]
    models_timed, runtimes = timed["model"].nunique(), timed["backend"].nunique()
    styles: dict[str, set] = {}
    for stem, fig in {**ratios, **latencies}.items():
        assert fig.get_size_inches()[0] == figures.SIZES[stem.rsplit("_", 1)[1]][0]
        assert figures.smallest_text_pt(fig) >= figures.MIN_TEXT_PT, stem
        assert not _texts_outside_the_figure(fig), (stem, _texts_outside_the_figure(fig))
        (ax,) = fig.axes
        names = [t.get_text() for t in ax.get_yticklabels()]
        assert len(names) == models_timed and names[0].startswith("EfficientFormerV2")  # first family on top
        assert any("(256 px)" in n for n in names)  # MobileViTv2 runs at 256: its row says so
        points = sum(len(c.get_offsets()) for c in ax.collections if isinstance(c, PathCollection))
        assert points == models_timed * (runtimes - 1 if stem.startswith("runtime_ratios") else runtimes)
        for handle in fig.legends[0].legend_handles:
            if handle.get_label().endswith("CPU"):
                styles.setdefault(handle.get_label(), set()).add((to_hex(handle.get_color()), handle.get_marker()))
    assert len(styles) == runtimes
    assert all(len(s) == 1 for s in styles.values()), styles  # one colour and marker per runtime everywhere
    ax = ratios["runtime_ratios_fp32_7in"].axes[0]
    assert ax.get_xscale() == "log" and "LiteRT" in ax.get_title(loc="left")
    assert any(line.get_xdata()[0] == 1.0 for line in ax.lines)  # the dashed line at ratio 1
