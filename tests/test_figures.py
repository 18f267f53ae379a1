"""Print figures: every panel on its own at 3.3 in and 7 in, text at 7 pt or more, nothing drawn over a label.

Checked from what matplotlib's renderer actually drew: the window extents of the point labels and of every
scatter marker. A label may not cover another label or any point's marker, a linear axis whose data are all
positive may not reach below zero to make room for a label, and the PDFs keep their text as TrueType text.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PathCollection
from matplotlib.transforms import Bbox

import models
from bench.core import figures
from bench.core.reporting import load_report
from bench.core.schema import UNSTABLE
from bench.core.store import load_results
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


def _pdf_text_is_text(path: Path) -> bool:
    data = path.read_bytes()
    return b"/FontFile2" in data and b"/Type3" not in data


@pytest.fixture(scope="module")
def reference_figures() -> list[tuple[str, object]]:
    report = load_report([REPO / "results" / "reference"])
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
    assert len(bars) == int(litert8["latency_ci_low_ms"].notna().sum()) > 0  # a bar per model with an interval
    assert "batch 8" in tops["throughput_vs_top1_D_litert_7in"].axes[0].get_xlabel()
    problems = {}
    for name, fig in reference_figures:
        width, _ = fig.get_size_inches()
        assert width == pytest.approx(3.3 if name.endswith("_3.3in") else 7.0)
        assert figures.smallest_text_pt(fig) >= figures.MIN_TEXT_PT, name
        found = collisions(fig)
        if found:
            problems[name] = found
    assert not problems, problems


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
    """The screen overview (every runtime on one figure): the same rule, iso-GFLOP/s line labels included."""
    import matplotlib

    from bench.core import plots

    report = load_report([REPO / "results" / "reference"])
    m = report.measurements
    panels = [plots.Panel(c.key, c.title, c.machine_detail) for c in report.columns]
    styles = plots.family_styles(m.drop_duplicates("family").sort_values("family_order")["family"].tolist())
    problems = {}
    with matplotlib.rc_context(plots.STYLE):
        for name, plot in plots.PLOTS.items():
            if name == "latency_distribution":
                continue  # no point labels: models are the axis
            # the overview's linear latency axes stop at zero, so a label may reach over the tick labels there
            found = collisions(plot(m, report.samples, panels, styles), inside=False)
            if found:
                problems[name] = found
    assert not problems, problems
