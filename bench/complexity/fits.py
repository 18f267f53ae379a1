"""Least-squares fits on the basis {b·HWC², b·HWC, b·C², HWC}, the operator-term table and the
``--model`` comparison."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from bench.complexity.cost_model import CostModel
from bench.complexity.terms import _TERM_SCALE_FN, COUNTED_TERMS, TERM_SCALING, UNCOUNTED_TERMS

BASIS = {
    "b·HWC²": lambda b, h, w, c: b * h * w * c * c,
    "b·HWC": lambda b, h, w, c: b * h * w * c,
    "b·C²": lambda b, h, w, c: b * c * c,
    "HWC": lambda b, h, w, c: h * w * c,
}


@dataclass(frozen=True)
class Fit:
    """Least-squares coefficients and the relative residuals they leave."""

    target: str
    coefficients: dict[str, float]
    rms_rel_residual: float
    max_rel_residual: float
    points: int

    @property
    def per_image_hwc(self) -> float:
        """The HWC coefficient of one image: what "47 + 10b" would have to equal at batch 1."""
        return float(np.nansum([self.coefficients.get("b·HWC", 0.0), self.coefficients.get("HWC", 0.0)]))


def design_matrix(frame: pd.DataFrame, basis: dict[str, Callable] = BASIS) -> np.ndarray:
    b, h, w, c = (frame[k].to_numpy(dtype=np.float64) for k in ("b", "H", "W", "C"))
    return np.column_stack([f(b, h, w, c) for f in basis.values()])


def fit_basis(frame: pd.DataFrame, target: str, basis: dict[str, Callable] = BASIS) -> Fit:
    """Fit ``frame[target]`` on ``basis`` minimising *relative* residuals.

    Counts span six orders of magnitude over the grid; an unweighted fit would ignore the small
    configurations, so every row is divided by its measured value before solving.
    """
    data = frame[frame[target].notna()]
    if data["b"].nunique() < 2 and "HWC" in basis:  # b·HWC and HWC are the same column at one batch size
        fit = fit_basis(data, target, {k: f for k, f in basis.items() if k != "HWC"})
        return replace(fit, coefficients={**fit.coefficients, "HWC": float("nan")})
    y = data[target].to_numpy(dtype=np.float64)
    x = design_matrix(data, basis)
    weights = 1.0 / np.where(y == 0, 1.0, np.abs(y))
    scale = np.abs(x).max(axis=0)
    scale[scale == 0] = 1.0
    solution, *_ = np.linalg.lstsq(x * weights[:, None] / scale, y * weights, rcond=None)
    coefficients = solution / scale
    rel = (x @ coefficients - y) * weights
    coefficients[np.abs(coefficients) < 1e-9 * np.abs(coefficients).max()] = 0.0  # no "-0.0000" rounding noise
    return Fit(
        target=target,
        coefficients=dict(zip(basis, coefficients.tolist(), strict=True)),
        rms_rel_residual=float(np.sqrt(np.mean(rel**2))),
        max_rel_residual=float(np.max(np.abs(rel))),
        points=len(y),
    )


# (mixer, column) -> label, for every measured quantity that is fitted and judged.
TARGET_LABELS = {
    ("CATM", "flopcounter"): "CATM, FlopCounterMode (conv MACs only)",
    ("CATM", "fvcore"): "CATM, fvcore (+ BN 2/elem, pooling 1/elem)",
    ("CATM", "thop"): "CATM, thop rules (the paper's counter: BN 4/elem)",
    ("CATM", "all_ops"): "CATM, fvcore + uncounted ops (analytic)",
    ("CATM", "fvcore_no_projection"): "CATM without the 1x1 qkv projection, fvcore",
    ("CAS block", "flopcounter"): "CAS block, FlopCounterMode (conv MACs only)",
    ("CAS block", "fvcore"): "CAS block, fvcore",
    ("CAS block", "thop"): "CAS block, thop rules",
    ("CAS block", "all_ops"): "CAS block, fvcore + uncounted ops (tallied)",
}


def fit_table(frames: dict[str, pd.DataFrame]) -> tuple[pd.DataFrame, dict[tuple[str, str], Fit]]:
    """Fit every target in :data:`TARGET_LABELS` that was measured."""
    fits = {}
    rows = []
    for (mixer, column), label in TARGET_LABELS.items():
        frame = frames.get(mixer)
        if frame is None or column not in frame:
            continue
        fit = fit_basis(frame, column)
        fits[(mixer, column)] = fit
        rows.append(
            {
                "quantity": label,
                **fit.coefficients,
                "per_image_HWC": fit.per_image_hwc,
                "implied_b": (fit.per_image_hwc - 47) / 10,
                "rms_rel_residual": fit.rms_rel_residual,
                "max_rel_residual": fit.max_rel_residual,
                "points": fit.points,
            }
        )
    return pd.DataFrame(rows), fits


def term_table(catm: pd.DataFrame) -> pd.DataFrame:
    """Each operator term of the CATM divided by its claimed scaling: constant iff the claim holds."""
    n = catm["H"] * catm["W"]
    rows = []
    for term in (*COUNTED_TERMS, *UNCOUNTED_TERMS):
        column = f"term_{term}" if term in COUNTED_TERMS else f"analytic_{term}"
        if column not in catm or not catm[column].fillna(0).any():
            continue
        values = catm[column]
        scaling = TERM_SCALING[term]
        ratio = values / _TERM_SCALE_FN[scaling](catm["b"], n, catm["C"])
        counter = "analytic (no counter prices it)" if term in UNCOUNTED_TERMS else "fvcore"
        share = values / catm["all_ops"]
        rows.append(
            {
                "term": term,
                "scales_as": scaling,
                "coefficient_min": ratio.min(),
                "coefficient_max": ratio.max(),
                "share_of_all_ops_min_pct": 100 * share.min(),
                "share_of_all_ops_max_pct": 100 * share.max(),
                "source": counter,
            }
        )
    return pd.DataFrame(rows)


def model_comparison(model: CostModel, frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Measured / predicted over the grid for every quantity: 1.0 everywhere would mean exact."""
    rows = []
    for (mixer, column), label in TARGET_LABELS.items():
        frame = frames.get(mixer)
        if frame is None or column not in frame:
            continue
        data = frame[frame[column].notna()]
        predicted = model(b=data["b"], H=data["H"], W=data["W"], C=data["C"])
        ratio = data[column].to_numpy() / predicted
        rows.append(
            {
                "quantity": label,
                "measured_over_predicted_min": ratio.min(),
                "median": float(np.median(ratio)),
                "max": ratio.max(),
                "exact_within_1pct": bool(np.all(np.abs(ratio - 1) < 0.01)),
            }
        )
    return pd.DataFrame(rows)
