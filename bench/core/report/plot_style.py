"""What every figure of the suite shares, screen plots (:mod:`bench.core.report.plots`) and print figures
(:mod:`bench.core.report.figures`) alike: each family's colour, marker and line style, the rc settings that keep files
reproducible and their text editable, the Pareto front, plain log axes, and writing a figure safely.

The two stacks differ only in what the medium needs (sizes, type sizes, DPI), each as a few rc keys over
:data:`BASE_STYLE`, so a family looks the same on a slide, in a report and in a paper.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from bench.core.errors import BenchError

BASE_STYLE = {
    "axes.grid": True,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "pdf.fonttype": 42,  # TrueType: PDF text stays text
    "svg.fonttype": "none",  # SVG text stays text (editable), not paths
    "svg.hashsalt": "mobile-backbone-bench",  # stable SVG ids, so regenerated reports diff cleanly
    "text.parse_math": False,  # labels are data (device and model names): "$\\input{..}$" is text, never mathtext
}
"""rc settings of every figure the suite draws; :mod:`plots` and :mod:`figures` add their medium's sizes."""


@dataclass(frozen=True)
class FamilyStyle:
    """How one model family is drawn everywhere: colour, marker and (for fronts and lines) line style."""

    color: str
    marker: str
    linestyle: str | tuple


SPARE_LINESTYLES = ((0, (1, 1)), (0, (3, 1, 1, 1)), (0, (5, 2)), "-")


def family_styles(families: list[str]) -> dict[str, FamilyStyle]:
    """The style each family declares beside its models; families without a declaration (external networks,
    families of older runs) take spare ones (colour and marker from :func:`models.registry.spare_style`, the
    pool every plot and external family shares)."""
    import models
    from models.registry import spare_style

    known = set(models.list_families())
    spare_lines = iter(SPARE_LINESTYLES * (1 + len(families)))
    styles = {}
    for family in families:
        if family in known:
            declared = models.get_family(family)
            styles[family] = FamilyStyle(declared.color, declared.marker, declared.linestyle)
        else:
            color, marker = spare_style(family)
            styles[family] = FamilyStyle(color, marker, next(spare_lines))
    return styles


def pareto_front(x: np.ndarray, y: np.ndarray, smaller_x_better: bool) -> np.ndarray:
    """Indices of the points no other point beats in both x and y (higher y is better), by x."""
    order = np.argsort(x if smaller_x_better else -x, kind="stable")
    front, best = [], -np.inf
    for i in order:
        if y[i] > best:
            front.append(i)
            best = y[i]
    return np.asarray(sorted(front, key=lambda i: x[i]), dtype=int)


def front_within_intervals(
    x: np.ndarray, y: np.ndarray, low: np.ndarray, high: np.ndarray, smaller_x_better: bool
) -> np.ndarray:
    """Indices of the points no other point *clearly* beats, by x: one beats another clearly when it is at least as
    accurate (y) and better in x with the two intervals ``[low, high]`` apart (a point without an interval is its
    own value at both ends). A superset of :func:`pareto_front`: two models 0.06 ms apart with overlapping
    intervals both stay on it."""
    lo = np.where(np.isnan(low), x, low)
    hi = np.where(np.isnan(high), x, high)
    clearly_better = hi[:, None] < lo[None, :] if smaller_x_better else lo[:, None] > hi[None, :]  # [j, i]
    beaten = (clearly_better & (y[:, None] >= y[None, :])).any(axis=0)
    return np.asarray(sorted(np.flatnonzero(~beaten), key=lambda i: x[i]), dtype=int)


def plain_log_axis(axis) -> None:
    """Ticks at 1-2-3-5 steps with plain numbers (no 10^x), so a log axis reads like a linear one."""
    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 3.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_locator(LogLocator(base=10, subs=(4.0, 6.0, 7.0, 8.0, 9.0)))
    axis.set_minor_formatter(NullFormatter())


def step_segments(x: np.ndarray, y: np.ndarray, where: str) -> list:
    """The horizontal and vertical pieces of ``ax.step(x, y, where=where)`` (for labels to keep clear of)."""
    out = []
    for (x0, y0), (x1, y1) in zip(zip(x[:-1], y[:-1], strict=True), zip(x[1:], y[1:], strict=True), strict=True):
        corner = (x1, y0) if where == "post" else (x0, y1)
        out += [((x0, y0), corner), (corner, (x1, y1))]
    return out


def save_figure(fig: Figure, path: Path, **options: object) -> Path:
    """``fig.savefig(path, **options)`` for every report and command that writes a figure, so a folder it
    cannot write or a full disk is the suite's one-line error naming the file, never a traceback."""
    path = Path(path)
    # drawn to a temporary file beside it, then renamed over it: a symbolic link planted where the figure
    # goes is replaced, never written through to its target (as report tables are), and a reader never
    # sees half a figure
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")
    try:
        fig.savefig(tmp, format=path.suffix.lstrip(".") or None, **options)
        os.replace(tmp, path)
    except OSError as exc:
        raise BenchError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    return path
