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

OWN_MARGIN_PT = 2.5
"""How much nearer (in points) a label must read to its own point than to any other point."""
OWN_RATIO = 1.25
"""... or, for a label farther out, how many times nearer (20 pt from its point: the next point 25 pt off)."""
VERTICAL_WEIGHT = 2.0
"""A gap above or below a label counts this many times a gap beside it: a line of text is wide and short, so a
point level with a label's end reads as its point more than one the same distance above or below it."""
CLUSTER_PT = 10.0
"""Points nearer each other than this (about two marker widths) are a cluster: there a label need only be nearer its
own point than the others, since at that distance no side of a label is much nearer one than the other."""
SAME_PLACE_PT = 2.0
"""Points nearer each other than this are drawn over each other: no label can be nearer one than the other."""
_HARD = 1e9
"""Cost of a broken rule (a label over a point or another label or nearer another point than its own, a leader line
across another label): above any other cost, so it is taken only where every candidate breaks one."""
_OUTSIDE = 1e4
"""Cost of each pixel a label sticks out of the axes, where the axes may widen to fit it: below a broken rule,
above any overlap with bars and lines."""


def reading_distance(box, px: float, py: float) -> float:
    """How far a label ``box`` reads from the point (px, py), in pixels: the gap, vertical part weighted
    (:data:`VERTICAL_WEIGHT`)."""
    dx = max(box.x0 - px, 0.0, px - box.x1)
    dy = max(box.y0 - py, 0.0, py - box.y1)
    return math.hypot(dx, VERTICAL_WEIGHT * dy)


def attribution_shortfall(
    box, own: int, points_px, margin_px: float, overlap_px: float = 0.0, same_px: float = 0.0, ratio: float = OWN_RATIO
) -> float:
    """By how many pixels some other point reads nearer ``box`` than the rule allows (<= 0: none does).

    The rule: every other point is at least ``margin_px`` (and ``ratio`` times) farther from the label than its
    own point. A point nearer than ``overlap_px`` to its own (overlapping markers) need only be farther: the
    two can be told apart only by the side each label is on; one nearer than ``same_px`` is not asked about. The
    plain gap (unweighted) of every other point must be larger than the own point's as well."""
    ox, oy = points_px[own]
    d_own = reading_distance(box, ox, oy)
    worst = -math.inf
    for j, (px, py) in enumerate(points_px):
        if j == own:
            continue
        apart = math.hypot(px - ox, py - oy)
        if apart < same_px:
            continue
        overlapping = apart < overlap_px
        need = d_own + (1.0 if overlapping else max(margin_px, (ratio - 1.0) * d_own))
        worst = max(worst, need - reading_distance(box, px, py))
        # and plainly nearer (no weighting) too: a point just above a label's middle is not nearer than its own
        worst = max(worst, box_distance(box, ox, oy) + 1.0 - box_distance(box, px, py))
    return worst


def crosses(p0, p1, box) -> bool:
    """Whether the segment p0-p1 (display pixels) passes through the inside of ``box`` (Liang-Barsky clipping)."""
    (x0, y0), (x1, y1) = p0, p1
    dx, dy = x1 - x0, y1 - y0
    lo, hi = 0.0, 1.0
    for p, q in ((-dx, x0 - box.x0), (dx, box.x1 - x0), (-dy, y0 - box.y0), (dy, box.y1 - y0)):
        if p == 0:
            if q <= 0:
                return False
            continue
        t = q / p
        if p < 0:
            lo = max(lo, t)
        else:
            hi = min(hi, t)
        if lo >= hi:
            return False
    return True


def leader_segment(point, box):
    """A leader line as matplotlib draws it: from the point towards the centre of its label (hidden inside it)."""
    return tuple(point), ((box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2)


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


ROOM_ATTEMPTS = 5
"""Placements tried while widening the axes to fit every label (each widening also moves the points)."""
REPASSES = 3
"""Passes over the labels that still overlap something, each placed again knowing where all the others are."""


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
    """Put each text next to its point, reading as that point's label, overlapping nothing.

    Candidates ring each point, near then farther (with a leader line). A candidate costs its overlap with
    ``obstacles`` (display-coordinate boxes) and ``segments`` (data-coordinate ``((x0, y0), (x1, y1))`` lines
    such as error bars), then how far it sticks out of the axes, then, above all, each rule it breaks: covering
    a point or another label, another point reading nearer than its own (:func:`attribution_shortfall`), its
    leader line through another label or another's through it. A label breaks a rule only where every
    candidate does. The most crowded points are placed first, then every label once more knowing where all
    the others went, and a label still breaking a rule trades places with a neighbour's. With ``make_room``,
    axes limits widen (a few times, never across zero) until no label sticks out of the axes. Returns the
    boxes of the labels, in the order of the points.
    """
    room = make_room  # the axes may still widen for a label sticking out
    for attempt in range(ROOM_ATTEMPTS):
        room = room and attempt < ROOM_ATTEMPTS - 1
        obstacles_now = [*obstacles, *segment_boxes(ax, segments)]
        placed = _place_labels(ax, xs, ys, texts, colors, obstacles_now, fontsize, marker_radius_pt, room)
        overflow = _overflow(ax, [p[2] for p in placed])
        if not room or not any(overflow):
            break
        for p in placed:
            p[1].remove()
        room = _widen(ax, overflow)  # where it cannot (a linear axis at zero), place once more within the axes
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


def _widen(ax: Axes, overflow: tuple[float, float, float, float]) -> bool:
    """Widen the data limits so that the area ``overflow`` pixels around the axes comes inside (a little more);
    whether they changed."""
    left, right, bottom, top = (v * 1.15 + 4 if v > 0 else 0.0 for v in overflow)
    frame = ax.get_window_extent()
    inverse = ax.transData.inverted()
    (x0, y0), (x1, y1) = inverse.transform([(frame.x0 - left, frame.y0 - bottom), (frame.x1 + right, frame.y1 + top)])
    before = (ax.get_xlim(), ax.get_ylim())
    if left or right:
        ax.set_xlim(*_not_across_zero(ax.get_xlim(), (x0, x1), ax.get_xscale()))
    if bottom or top:
        ax.set_ylim(*_not_across_zero(ax.get_ylim(), (y0, y1), ax.get_yscale()))
    return not np.allclose(np.ravel(before), np.ravel((ax.get_xlim(), ax.get_ylim())), rtol=1e-3, atol=0)


def _not_across_zero(old: tuple[float, float], new: tuple[float, float], scale: str) -> tuple[float, float]:
    """New limits, except that a linear axis that started at or above zero stops at zero (no negative latency)."""
    lo, hi = new
    if scale == "linear" and old[0] >= 0 > lo:
        lo = 0.0
    return lo, hi


def _place_labels(
    ax: Axes,
    xs,
    ys,
    texts,
    colors,
    obstacles,
    fontsize: float = LABEL_SIZE,
    marker_radius_pt: float = 7.0,
    room: bool = False,
) -> list[tuple]:
    """``(cost, annotation, box)`` of every label, in the order of the points (see :func:`label_points`)."""
    layout = _Layout(ax, xs, ys, texts, colors, obstacles, fontsize, marker_radius_pt, room)
    order = layout.crowded_first()
    placed = layout.placed
    for i in order:
        placed[i] = layout.place(i)
    for i in order * REPASSES:  # more passes: each label again, now that every other one has a place
        previous = placed.pop(i)
        now = layout.cost(i, previous[2], previous[3])
        if now == 0:
            placed[i] = previous
            continue
        previous[1].set_visible(False)
        again = layout.place(i)
        if again[0] < now:
            previous[1].remove()
            placed[i] = again
        else:
            again[1].remove()
            previous[1].set_visible(True)
            placed[i] = previous
    for i in order:  # a label still breaking a rule: place it first and a neighbour's label after it
        if placed[i][0] >= _HARD:
            _swap_with_neighbours(i, placed, layout.points_px, layout.place, layout.cost)
    return [placed[i] for i in range(len(texts))]


class _Layout:
    """The labels of one axes' points while they are placed: the geometry in display pixels, the labels placed
    so far (``placed``: point index -> (cost, annotation, box, offset scale)), what a place costs and the best
    place of one label."""

    def __init__(self, ax: Axes, xs, ys, texts, colors, obstacles, fontsize, marker_radius_pt, room) -> None:
        fig = ax.figure
        self.ax, self.xs, self.ys, self.texts, self.colors = ax, xs, ys, texts, colors
        self.obstacles, self.fontsize, self.room = obstacles, fontsize, room
        self.renderer = fig.canvas.get_renderer()
        self.frame = ax.get_window_extent(self.renderer)
        self.r = marker_radius_pt * fig.dpi / 72
        self.reach = fontsize / LABEL_SIZE  # offsets scale with the type
        self.margin = OWN_MARGIN_PT * fig.dpi / 72
        self.cluster = CLUSTER_PT * fig.dpi / 72
        self.same = SAME_PLACE_PT * fig.dpi / 72
        self.points_px = [tuple(ax.transData.transform((x, y))) for x, y in zip(xs, ys, strict=True)]
        r = self.r
        self.markers = [matplotlib.transforms.Bbox([[px - r, py - r], [px + r, py + r]]) for px, py in self.points_px]
        self.candidates = [(*c, scale) for scale in _SCALES for c in (_NEAR if scale == 1.0 else _AROUND)]
        self.placed: dict[int, tuple] = {}

    def cost(self, i: int, box, scale: float) -> float:
        """What a label box costs where it is now: overlaps (with bars and lines) and distance; then sticking out of
        the axes (which ``make_room`` can mend); then, above all, a broken rule (see :data:`_HARD`): covering a
        point or another label, nearer another point than its own, a leader line across another label or
        another leader across it."""
        frame, markers, points_px = self.frame, self.markers, self.points_px
        others = [b for j, b in self.placed.items() if j != i]
        total = sum(_overlap(box, t) for t in self.obstacles) + (5 * scale if scale > 1 else 0)
        outside = max(frame.x0 - box.x0, 0) + max(box.x1 - frame.x1, 0) + max(frame.y0 - box.y0, 0)
        outside += max(box.y1 - frame.y1, 0)
        broken = sum(_overlap(box, t) for t in [*markers, *(b[2] for b in others)])
        broken += max(attribution_shortfall(box, i, points_px, self.margin, self.cluster, self.same), 0.0)
        if scale > 1:  # a leader line
            leader = leader_segment(points_px[i], box)
            broken += sum(10.0 for b in others if crosses(*leader, b[2]))
            total += sum(self.r * self.r for k, m in enumerate(markers) if k != i and crosses(*leader, m))
        for j, b in self.placed.items():  # another label's leader line through this one
            if j != i and b[3] > 1 and crosses(*leader_segment(points_px[j], b[2]), box):
                broken += 10.0
        if not self.room:
            broken += outside
        return total + _OUTSIDE * outside + (_HARD * (1 + broken) if broken > 0 else 0.0)

    def place(self, i: int) -> tuple:
        """The cheapest of the candidate places of label ``i`` (the first that costs nothing)."""
        best = None
        for dx, dy, ha, va, scale in self.candidates:
            far = scale > 1
            ann = self.ax.annotate(
                self.texts[i],
                (self.xs[i], self.ys[i]),
                xytext=(dx * scale * self.reach, dy * scale * self.reach),
                textcoords="offset points",
                ha=ha,
                va=va,
                fontsize=self.fontsize,
                color=self.colors[i],
                arrowprops={"arrowstyle": "-", "color": self.colors[i], "lw": 0.7, "alpha": 0.7} if far else None,
                bbox=HALO,
                zorder=4,
            )
            box = text_box(ann, self.renderer)
            value = self.cost(i, box, scale)
            best = _keep_cheaper(best, (value, ann, box, scale))
            if value == 0:
                break
        return best

    def crowded_first(self) -> list[int]:
        """The points, most crowded first: two almost on top of each other have one good side each, which a
        neighbour's label placed earlier would take."""
        pts = np.asarray(self.points_px, dtype=float).reshape(-1, 2)
        apart = np.hypot(*(pts[:, None, :] - pts[None, :, :]).transpose(2, 0, 1))
        np.fill_diagonal(apart, np.inf)
        return [int(i) for i in np.lexsort((pts[:, 0], apart.min(axis=1) if len(pts) > 1 else np.zeros(len(pts))))]


NEIGHBOURS = 4
"""How many of the nearest labels :func:`_swap_with_neighbours` moves out of the way of a label breaking a rule."""


def _swap_with_neighbours(i: int, placed: dict, points_px, place, cost) -> None:
    """Greedy placement can leave a label with no good place because a neighbour's label took it. For each of the
    nearest few neighbours: lift both labels, place ``i`` first and the neighbour after it; keep the pair if
    their joint cost falls."""
    near = sorted((j for j in placed if j != i), key=lambda j: math.dist(points_px[i], points_px[j]))
    for j in near[:NEIGHBOURS]:
        old_i, old_j = placed[i], placed[j]
        before = cost(i, old_i[2], old_i[3]) + cost(j, old_j[2], old_j[3])
        del placed[i], placed[j]
        old_i[1].set_visible(False)
        old_j[1].set_visible(False)
        placed[i] = place(i)
        placed[j] = place(j)
        new_i, new_j = placed[i], placed[j]
        after = cost(i, new_i[2], new_i[3]) + cost(j, new_j[2], new_j[3])
        if after < before:
            old_i[1].remove()
            old_j[1].remove()
            placed[i] = (cost(i, new_i[2], new_i[3]), *new_i[1:])
            if placed[i][0] < _HARD:
                return
        else:
            new_i[1].remove()
            new_j[1].remove()
            old_i[1].set_visible(True)
            old_j[1].set_visible(True)
            placed[i], placed[j] = old_i, old_j


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


def _isotonic(values: list[float]) -> list[float]:
    """The non-decreasing sequence nearest ``values`` in squared distance (pooling adjacent violators)."""
    blocks: list[list[float]] = []  # [mean, count]
    for v in values:
        blocks.append([v, 1.0])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            (m1, n1), (m2, n2) = blocks.pop(-2), blocks.pop()
            blocks.append([(m1 * n1 + m2 * n2) / (n1 + n2), n1 + n2])
    return [m for m, n in blocks for _ in range(int(n))]


def column_positions(ys: list[float], gap: float, low: float, high: float) -> list[float]:
    """Heights for labels of points at sorted heights ``ys``: ``gap`` apart, in the same order, moved as little as
    they can be (least squares, so a crowd spreads both ways from its middle) and kept within low..high if they fit."""
    shifted = _isotonic([y - k * gap for k, y in enumerate(ys)])
    out = [z + k * gap for k, z in enumerate(shifted)]
    if out and out[-1] > high:
        out = [v - (out[-1] - high) for v in out]
    if out and out[0] < low:
        out = [v + (low - out[0]) for v in out]
    return out


def spread_labels(ax: Axes, ends: list[tuple[float, float, str, str]], fontsize: float = LABEL_SIZE) -> None:
    """Labels at the right end of lines, in a column in the order of the ends, each as near its end as the others
    let it be. A leader line joins each label to its end and stops at the label's left edge, so it never runs
    through another label of the column."""
    fig = ax.figure
    gap = (fontsize + 2) * fig.dpi / 72
    pts = sorted(((ax.transData.transform((x, y))[1], x, y, t, c) for x, y, t, c in ends), key=lambda p: p[0])
    frame = ax.get_window_extent()
    # a label is centred on its height: keep its halves inside the axes
    placed = column_positions([p[0] for p in pts], gap, frame.y0 + gap / 2, frame.y1 - gap / 2)
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
            arrowprops={"arrowstyle": "-", "color": color, "lw": 0.6, "alpha": 0.6, "relpos": (0.0, 0.5)},
            gid="line-end label",
        )
