"""Everything counted rather than timed, end to end: the grid, the fits, the verdict and the token
comparison."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from bench.complexity.cost_model import CostModel
from bench.complexity.counting import Grid, measure_grid
from bench.complexity.fits import Fit, fit_table, model_comparison, term_table
from bench.complexity.tokens import exponent_table, token_costs
from bench.complexity.verdict import phi_branch_cost, plain_verdict, verdict_table


@dataclass
class Counts:
    """Everything counted rather than timed."""

    frames: dict[str, pd.DataFrame]
    fits: dict[tuple[str, str], Fit]
    fit_frame: pd.DataFrame
    comparison: pd.DataFrame
    terms: pd.DataFrame
    verdict: pd.DataFrame
    plain: str
    tokens: pd.DataFrame
    token_exponents: pd.DataFrame


def run_counts(model: CostModel, grid: Grid, block_batches: list[int], width: int, token_sizes: list[int]) -> Counts:
    """The grid, the fits, the verdict and the token comparison."""
    frames = {
        "CATM": measure_grid("CATM", grid, analytic=True),
        "CAS block": measure_grid("CAS block", grid, fvcore_batches=block_batches),
    }
    fit_frame, fits = fit_table(frames)
    n_branches, branch_hwc = phi_branch_cost()
    tokens = token_costs(width, token_sizes, fvcore_max=56)
    token_exps = exponent_table(tokens, ["mixer"], "tokens", ["flopcounter", "fvcore"])
    return Counts(
        frames=frames,
        fits=fits,
        fit_frame=fit_frame,
        comparison=model_comparison(model, frames),
        terms=term_table(frames["CATM"]),
        verdict=verdict_table(fits, frames["CATM"], n_branches, branch_hwc),
        plain=plain_verdict(fits, n_branches, branch_hwc, token_exps),
        tokens=tokens,
        token_exponents=token_exps,
    )
