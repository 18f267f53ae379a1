"""Measuring one configuration (FlopCounterMode and the uncounted-op tally on meta tensors, fvcore and
thop's rules on real ones) and a whole b x H x C grid."""

from __future__ import annotations

import contextlib
import itertools
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from bench import flops
from bench.complexity.instruments import MIXERS
from bench.complexity.terms import COUNTED_TERMS, UNCOUNTED_TERMS, UncountedTally, catm_uncounted, fvcore_terms


def meta_pass(factory: Callable[[int], nn.Module], b: int, h: int, c: int) -> tuple[float, dict, Counter]:
    """FlopCounterMode MACs, each module's input shape, and the uncounted-op tally, all on meta tensors."""
    with torch.device("meta"):
        module = factory(c).eval()
    shapes: dict[str, tuple[int, ...]] = {}

    def record(name: str) -> Callable:
        def hook(_module: nn.Module, args: tuple) -> None:
            shapes.setdefault(name, tuple(args[0].shape))

        return hook

    hooks = [sub.register_forward_pre_hook(record(name)) for name, sub in module.named_modules()]
    x = torch.zeros(b, c, h, h, device="meta")
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        module(x)
    for hook in hooks:
        hook.remove()
    tally = UncountedTally()
    with torch.no_grad(), tally:
        module(x)
    return counter.get_total_flops() / 2, shapes, tally.counts


def fvcore_pass(module: nn.Module, b: int, h: int, shapes: dict) -> dict[str, float]:
    """fvcore total, thop-rule total and fvcore's operator terms, from a single trace on real tensors."""
    tally = flops.RuleTally()
    x = torch.zeros(b, module_width(module), h, h)
    with flops.quiet_fvcore(), torch.no_grad():
        analysis = flops.fvcore_analysis(module, x)
        analysis.set_op_handle(**flops.dual_rule_handles(flops.THOP_RULE, tally))
        total = analysis.total()
        terms = fvcore_terms(module, analysis.by_module_and_operator(), shapes)
    return {"fvcore": total, "thop": total + tally.delta, **{f"term_{t}": float(terms[t]) for t in COUNTED_TERMS}}


def module_width(module: nn.Module) -> int:
    """Channels the mixer expects (the first conv's or norm's input width)."""
    for sub in module.modules():
        if isinstance(sub, nn.Conv2d):
            return sub.in_channels
        if isinstance(sub, nn.LayerNorm):
            return sub.normalized_shape[0]
    raise ValueError(f"cannot tell the width of {type(module).__name__}")


@contextlib.contextmanager
def single_threaded() -> Iterator[None]:
    """Counting runs thousands of small kernels whose arithmetic is irrelevant; handing each to a pool of
    intra-op threads costs more than it saves, and stalls badly when other processes hold the cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@dataclass(frozen=True)
class Grid:
    """The measurement grid of the issue: b x H (= W) x C."""

    batches: tuple[int, ...] = (1, 2, 4, 8)
    sizes: tuple[int, ...] = (7, 14, 28, 56)
    channels: tuple[int, ...] = (32, 48, 64, 96, 128, 192, 256, 384, 512)


def _measure_point(
    mixer: str, module: nn.Module, b: int, h: int, c: int, with_fvcore: bool, analytic: bool
) -> dict[str, object]:
    fcm, shapes, tally = meta_pass(MIXERS[mixer], b, h, c)
    row: dict[str, object] = {"mixer": mixer, "b": b, "H": h, "W": h, "C": c, "flopcounter": fcm}
    row.update({f"tally_{k}": float(tally.get(k, 0)) for k in UNCOUNTED_TERMS})
    if with_fvcore:
        row.update(fvcore_pass(module, b, h, shapes))
    if analytic:
        row.update({f"analytic_{k}": float(v) for k, v in catm_uncounted(b, h, h, c).items()})
    return row


def measure_grid(
    mixer: str, grid: Grid, fvcore_batches: Iterable[int] | None = None, analytic: bool = False
) -> pd.DataFrame:
    """Every count of ``mixer`` on ``grid``: one row per (b, H, C).

    fvcore runs the module for real, so it can be limited to ``fvcore_batches`` (default: all); the
    meta-tensor counts cover the whole grid. ``analytic`` adds :func:`catm_uncounted` (CATM only).
    """
    fv_batches = set(grid.batches if fvcore_batches is None else fvcore_batches)
    rows = []
    with single_threaded():
        for c in grid.channels:
            module = MIXERS[mixer](c).eval()  # one per width: weights do not change any count
            for b, h in itertools.product(grid.batches, grid.sizes):
                rows.append(_measure_point(mixer, module, b, h, c, b in fv_batches, analytic))
    return _add_derived(pd.DataFrame(rows), analytic)


def _add_derived(frame: pd.DataFrame, analytic: bool) -> pd.DataFrame:
    """Uncounted ops (analytic for the CATM, tallied otherwise) and the totals built from them."""
    source = "analytic" if analytic else "tally"
    frame["uncounted"] = sum(frame[f"{source}_{k}"] for k in UNCOUNTED_TERMS)
    if analytic:
        frame["analytic_matches_tally"] = np.isclose(
            frame["uncounted"], sum(frame[f"tally_{k}"] for k in UNCOUNTED_TERMS), rtol=0, atol=0.5
        )
    if "fvcore" in frame:
        frame["all_ops"] = frame["fvcore"] + frame["uncounted"]
        frame["fvcore_no_projection"] = frame["fvcore"] - frame["term_projection"]
    return frame
