"""Where text goes on a plot: labels beside their points, along lines, or spread at line ends.

Kept apart from the plots so the geometry (display-coordinate boxes, overlap costs) can change or be
tested without touching what is plotted. Placement is greedy and measured in pixels after a draw.
"""

from __future__ import annotations

import math

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

LABEL_SIZE = 10
HALO = {"boxstyle": "round,pad=0.12", "facecolor": "white", "edgecolor": "none", "alpha": 0.75}


def freeze_layout(fig: Figure) -> None:
    """Fix the layout so labels placed next can be measured in display coordinates."""
    fig.canvas.draw()
    fig.set_layout_engine("none")


def _overlap(a, b) -> float:
    w = min(a.x1, b.x1) - max(a.x0, b.x0)
    h = min(a.y1, b.y1) - max(a.y0, b.y0)
    return w * h if w > 0 and h > 0 else 0.0


_NEAR = ((7, 5, "left", "bottom"), (7, -5, "left", "top"), (-7, 5, "right", "bottom"), (-7, -5, "right", "top"))


_NEAR += ((0, 10, "center", "bottom"), (0, -10, "center", "top"), (11, 0, "left", "center"))


_NEAR += ((-11, 0, "right", "center"),)


def _keep_cheaper(best: tuple | None, candidate: tuple) -> tuple:
    """Of two ``(cost, annotation, box)`` label placements keep the cheaper; remove the other from the plot."""
    if best is None or candidate[0] < best[0]:
        if best is not None:
            best[1].remove()
        return candidate
    candidate[1].remove()
    return best


def label_points(ax: Axes, xs, ys, texts, colors, obstacles=()) -> list:
    """Put each text next to its point where it overlaps no other label, point or the axes edge.

    Greedy: for every point try positions around it, near then farther (with a leader line);
    take the first free one, or the least crowded. Returns the boxes of the labels.
    """
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    to_px = ax.transData.transform
    r = 7 * fig.dpi / 72
    taken = list(obstacles)
    placed = []
    for x, y in zip(xs, ys, strict=True):
        px, py = to_px((x, y))
        taken.append(matplotlib.transforms.Bbox([[px - r, py - r], [px + r, py + r]]))
    candidates = [(*c, 1.0) for c in _NEAR] + [(*c, s) for s in (2.6, 4.2) for c in _NEAR]
    order = np.argsort(np.asarray(xs, dtype=float))
    for i in order:
        best = None
        for dx, dy, ha, va, scale in candidates:
            far = scale > 1
            ann = ax.annotate(
                texts[i],
                (xs[i], ys[i]),
                xytext=(dx * scale, dy * scale),
                textcoords="offset points",
                ha=ha,
                va=va,
                fontsize=LABEL_SIZE,
                color=colors[i],
                arrowprops={"arrowstyle": "-", "color": colors[i], "lw": 0.7, "alpha": 0.7} if far else None,
                bbox=HALO,
                zorder=4,
            )
            box = ann.get_window_extent(renderer).expanded(1.04, 1.1)
            outside = (max(frame.x0 - box.x0, 0) + max(box.x1 - frame.x1, 0) + max(frame.y0 - box.y0, 0)) + max(
                box.y1 - frame.y1, 0
            )
            cost = sum(_overlap(box, t) for t in taken) + 50 * outside * box.height + (5 if far else 0)
            best = _keep_cheaper(best, (cost, ann, box))
            if cost == 0:
                break
        taken.append(best[2])
        placed.append(best[2])
    return placed


def marker_boxes(ax: Axes, xs, ys, radius_pt: float = 7.0) -> list:
    r = radius_pt * ax.figure.dpi / 72
    boxes = []
    for x, y in zip(xs, ys, strict=True):
        px, py = ax.transData.transform((x, y))
        boxes.append(matplotlib.transforms.Bbox([[px - r, py - r], [px + r, py + r]]))
    return boxes


def label_lines(ax: Axes, lines, obstacles) -> list:
    """Label each ``(xs, ys, text)`` line along itself, where the label hides no point or other label."""
    renderer = ax.figure.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    taken = list(obstacles)
    placed = []
    for xs, ys, text in lines:
        pts = ax.transData.transform(np.column_stack([xs, ys]))
        inside = np.flatnonzero(
            (pts[:, 0] > frame.x0) & (pts[:, 0] < frame.x1) & (pts[:, 1] > frame.y0) & (pts[:, 1] < frame.y1)
        )
        if len(inside) < 3:
            continue
        best = None
        for frac in (0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1):
            i = inside[min(int(frac * (len(inside) - 1)), len(inside) - 2)]
            (px0, py0), (px1, py1) = pts[i], pts[i + 1]
            angle = math.degrees(math.atan2(py1 - py0, px1 - px0))
            ann = ax.annotate(
                text,
                (xs[i], ys[i]),
                xytext=(0, 2),
                textcoords="offset points",
                ha="center",
                va="bottom",
                rotation=angle,
                rotation_mode="anchor",
                fontsize=9,
                color="0.4",
                zorder=2,
            )
            box = ann.get_window_extent(renderer)
            inside_frame = frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1
            cost = sum(_overlap(box, t) for t in taken) + (0 if inside_frame else 1e9)
            cost = 1e9 if cost > 0.25 * box.width * box.height else cost  # a hidden label is no label
            best = _keep_cheaper(best, (cost, ann, box))
            if cost == 0:
                break
        if best is not None and best[0] < 1e9:
            taken.append(best[2])
            placed.append(best[2])
        elif best is not None:
            best[1].remove()
    return placed


def spread_labels(ax: Axes, ends: list[tuple[float, float, str, str]]) -> None:
    """Labels at the right end of lines, pushed apart vertically so none overlap."""
    fig = ax.figure
    gap = (LABEL_SIZE + 2) * fig.dpi / 72
    pts = sorted(((ax.transData.transform((x, y))[1], x, y, t, c) for x, y, t, c in ends), key=lambda p: p[0])
    placed: list[float] = []
    for py, *_ in pts:
        placed.append(max(py, placed[-1] + gap) if placed else py)
    top = ax.get_window_extent().y1
    shift = max(placed[-1] - top, 0) if placed else 0  # keep the column inside the axes if it can
    placed = [p - shift for p in placed]
    for i in range(len(placed) - 2, -1, -1):
        placed[i] = min(placed[i], placed[i + 1] - gap)
    for (py, x, y, text, color), ty in zip(pts, placed, strict=True):
        ax.annotate(
            text,
            (x, y),
            xytext=(8, (ty - py) * 72 / fig.dpi),
            textcoords="offset points",
            va="center",
            ha="left",
            fontsize=LABEL_SIZE,
            color=color,
            arrowprops={"arrowstyle": "-", "color": color, "lw": 0.6, "alpha": 0.6},
        )
