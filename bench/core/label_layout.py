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
from matplotlib.text import Text

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


_NEAR = (
    (7, 5, "left", "bottom"),
    (7, -5, "left", "top"),
    (-7, 5, "right", "bottom"),
    (-7, -5, "right", "top"),
    (0, 10, "center", "bottom"),
    (0, -10, "center", "top"),
    (11, 0, "left", "center"),
    (-11, 0, "right", "center"),
)
"""Offsets (points) and alignments around a marker, nearest first; farther rings scale them (with a leader line)."""


def _between(step_deg: float = 22.5) -> tuple:
    """Offsets at the angles between those of :data:`_NEAR` (tried after them), aligned away from the point."""
    out = []
    for k in range(int(360 / step_deg)):
        a = math.radians(k * step_deg)
        c, s = math.cos(a), math.sin(a)
        if k % 2 == 0 and k * step_deg % 45 == 0:
            continue  # the compass points and diagonals are in _NEAR already
        ha = "left" if c > 0.3 else "right" if c < -0.3 else "center"
        va = "bottom" if s > 0.3 else "top" if s < -0.3 else "center"
        out.append((round(11 * c, 1), round(9 * s, 1), ha, va))
    return tuple(out)


_AROUND = _NEAR + _between()
_SCALES = (1.0, 1.8, 2.6, 3.4, 4.2, 5.4, 7.0)

OWN_MARGIN_PT = 3.0
"""A label must be at least this much nearer its own point than any other point (in points)."""
_MISATTRIBUTED = 1e7
"""Cost of a label nearer another point than its own: above any overlap, so it is taken only with no other way."""


def _keep_cheaper(best: tuple | None, candidate: tuple) -> tuple:
    """Of two ``(cost, annotation, box)`` label placements keep the cheaper; remove the other from the plot."""
    if best is None or candidate[0] < best[0]:
        if best is not None:
            best[1].remove()
        return candidate
    candidate[1].remove()
    return best


def text_box(text: Text, renderer=None):
    """The pixels a label's text (with its halo) covers; an annotation's own extent also spans its leader line."""
    renderer = renderer or text.figure.canvas.get_renderer()
    if hasattr(text, "update_positions"):  # an annotation: place its text before measuring it
        text.update_positions(renderer)
    return Text.get_window_extent(text, renderer).expanded(1.04, 1.1)


def box_distance(box, px: float, py: float) -> float:
    """Distance in pixels from the point (px, py) to the nearest part of ``box`` (0 inside it)."""
    dx = max(box.x0 - px, 0.0, px - box.x1)
    dy = max(box.y0 - py, 0.0, py - box.y1)
    return math.hypot(dx, dy)


def misattribution(box, own: int, points_px) -> float:
    """By how many pixels another point is nearer ``box`` than point ``own`` is (<= 0: its own is the nearest)."""
    d = [box_distance(box, px, py) for px, py in points_px]
    others = [v for j, v in enumerate(d) if j != own]
    return d[own] - min(others) if others else -math.inf


ROOM_ATTEMPTS = 5
REPASSES = 3
"""Passes over the labels that still overlap something, each placed again knowing where all the others are."""
"""Placements tried while widening the axes to fit every label (each widening also moves the points)."""


def label_points(
    ax: Axes,
    xs,
    ys,
    texts,
    colors,
    obstacles=(),
    segments=(),
    make_room: bool = False,
    fontsize: float = LABEL_SIZE,
    marker_radius_pt: float = 7.0,
) -> list:
    """Put each text next to its point, nearer to it than to any other point, overlapping nothing.

    Candidates ring each point, near then farther (with a leader line). A candidate costs its overlap
    with points, other labels, ``obstacles`` (display-coordinate boxes), ``segments`` (data-coordinate
    ``((x0, y0), (x1, y1))`` lines such as error bars) and the axes edge; one whose nearest point is not
    its own (by less than :data:`OWN_MARGIN_PT`) costs more than any overlap, so a label is only ever
    misattributed when every candidate would be. Greedy from left to right, then every label is placed
    once more knowing where all the others went. With ``make_room``, axes limits widen (a few times, never
    across zero) until no label sticks out of the axes. Returns the boxes of the labels, in the order of the points.
    """
    for attempt in range(ROOM_ATTEMPTS if make_room else 1):
        obstacles_now = [*obstacles, *segment_boxes(ax, segments)]
        placed = _place_labels(ax, xs, ys, texts, colors, obstacles_now, fontsize, marker_radius_pt)
        overflow = _overflow(ax, [p[2] for p in placed])
        if not make_room or not any(overflow) or attempt == ROOM_ATTEMPTS - 1:
            break
        for p in placed:
            p[1].remove()
        _widen(ax, overflow)
    return [p[2] for p in placed]


def _overflow(ax: Axes, boxes) -> tuple[float, float, float, float]:
    """Pixels by which ``boxes`` stick out of the axes: left, right, bottom, top."""
    frame = ax.get_window_extent()
    return (
        max([frame.x0 - b.x0 for b in boxes] + [0.0]),
        max([b.x1 - frame.x1 for b in boxes] + [0.0]),
        max([frame.y0 - b.y0 for b in boxes] + [0.0]),
        max([b.y1 - frame.y1 for b in boxes] + [0.0]),
    )


def _widen(ax: Axes, overflow: tuple[float, float, float, float]) -> None:
    """Widen the data limits so that the area ``overflow`` pixels around the axes comes inside (a little more)."""
    left, right, bottom, top = (v * 1.15 + 4 if v > 0 else 0.0 for v in overflow)
    frame = ax.get_window_extent()
    inverse = ax.transData.inverted()
    (x0, y0), (x1, y1) = inverse.transform([(frame.x0 - left, frame.y0 - bottom), (frame.x1 + right, frame.y1 + top)])
    if left or right:
        ax.set_xlim(*_not_across_zero(ax.get_xlim(), (x0, x1), ax.get_xscale()))
    if bottom or top:
        ax.set_ylim(*_not_across_zero(ax.get_ylim(), (y0, y1), ax.get_yscale()))


def _not_across_zero(old: tuple[float, float], new: tuple[float, float], scale: str) -> tuple[float, float]:
    """New limits, except that a linear axis that started at or above zero stops at zero (no negative latency)."""
    lo, hi = new
    if scale == "linear" and old[0] >= 0 > lo:
        lo = 0.0
    return lo, hi


def _place_labels(
    ax: Axes, xs, ys, texts, colors, obstacles, fontsize: float = LABEL_SIZE, marker_radius_pt: float = 7.0
) -> list[tuple]:
    """``(cost, annotation, box)`` of every label, in the order of the points (see :func:`label_points`)."""
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    r = marker_radius_pt * fig.dpi / 72
    reach = fontsize / LABEL_SIZE  # offsets scale with the type
    margin = OWN_MARGIN_PT * fig.dpi / 72
    points_px = [tuple(ax.transData.transform((x, y))) for x, y in zip(xs, ys, strict=True)]
    markers = [matplotlib.transforms.Bbox([[px - r, py - r], [px + r, py + r]]) for px, py in points_px]
    candidates = [(*c, scale) for scale in _SCALES for c in (_NEAR if scale == 1.0 else _AROUND)]
    placed: dict[int, tuple] = {}

    def cost(i: int, box, scale: float) -> float:
        """What a label box costs where it is now: overlaps, sticking out, distance, and being nearer another point."""
        taken = [*obstacles, *markers, *(b[2] for j, b in placed.items() if j != i)]
        outside = max(frame.x0 - box.x0, 0) + max(box.x1 - frame.x1, 0) + max(frame.y0 - box.y0, 0)
        outside += max(box.y1 - frame.y1, 0)
        total = sum(_overlap(box, t) for t in taken) + 50 * outside * box.height + (5 * scale if scale > 1 else 0)
        wrong = misattribution(box, i, points_px) + margin
        return total + (_MISATTRIBUTED * (1 + wrong) if wrong > 0 else 0.0)

    def place(i: int) -> tuple:
        best = None
        for dx, dy, ha, va, scale in candidates:
            far = scale > 1
            ann = ax.annotate(
                texts[i],
                (xs[i], ys[i]),
                xytext=(dx * scale * reach, dy * scale * reach),
                textcoords="offset points",
                ha=ha,
                va=va,
                fontsize=fontsize,
                color=colors[i],
                arrowprops={"arrowstyle": "-", "color": colors[i], "lw": 0.7, "alpha": 0.7} if far else None,
                bbox=HALO,
                zorder=4,
            )
            box = text_box(ann, renderer)
            value = cost(i, box, scale)
            best = _keep_cheaper(best, (value, ann, box, scale))
            if value == 0:
                break
        return best

    order = [int(i) for i in np.argsort(np.asarray(xs, dtype=float), kind="stable")]
    for i in order:
        placed[i] = place(i)
    for i in order * REPASSES:  # more passes: each label again, now that every other one has a place
        previous = placed.pop(i)
        now = cost(i, previous[2], previous[3])
        if now == 0:
            placed[i] = previous
            continue
        previous[1].set_visible(False)
        again = place(i)
        if again[0] < now:
            previous[1].remove()
            placed[i] = again
        else:
            again[1].remove()
            previous[1].set_visible(True)
            placed[i] = previous
    return [placed[i] for i in range(len(texts))]


def segment_boxes(ax: Axes, segments, width_pt: float = 2.0) -> list:
    """Display boxes around ``((x0, y0), (x1, y1))`` data segments (bars, frontier steps) for labels to avoid."""
    pad = width_pt * ax.figure.dpi / 72 / 2
    boxes = []
    for a, b in segments:
        (ax0, ay0), (bx0, by0) = ax.transData.transform([a, b])
        boxes.append(
            matplotlib.transforms.Bbox(
                [[min(ax0, bx0) - pad, min(ay0, by0) - pad], [max(ax0, bx0) + pad, max(ay0, by0) + pad]]
            )
        )
    return boxes


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
            cost = 1e9 if cost > 0 else cost  # a line label over a point or another label: none at all
            best = _keep_cheaper(best, (cost, ann, box))
            if cost == 0:
                break
        if best is not None and best[0] < 1e9:
            taken.append(best[2])
            placed.append(best[2])
        elif best is not None:
            best[1].remove()
    return placed


def spread_labels(ax: Axes, ends: list[tuple[float, float, str, str]], fontsize: float = LABEL_SIZE) -> None:
    """Labels at the right end of lines, pushed apart vertically so none overlap."""
    fig = ax.figure
    gap = (fontsize + 2) * fig.dpi / 72
    pts = sorted(((ax.transData.transform((x, y))[1], x, y, t, c) for x, y, t, c in ends), key=lambda p: p[0])
    placed: list[float] = []
    for py, *_ in pts:
        placed.append(max(py, placed[-1] + gap) if placed else py)
    top = ax.get_window_extent().y1 - gap / 2  # a label is centred on its height: keep its upper half inside too
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
            fontsize=fontsize,
            color=color,
            arrowprops={"arrowstyle": "-", "color": color, "lw": 0.6, "alpha": 0.6},
        )
