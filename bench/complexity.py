"""``bench complexity``: put the CAS-ViT complexity claim for its token mixer to a measured test.

The published summary of CAS-ViT gives the cost of the Convolutional Additive Token Mixer (CATM) as
Ω(CATM) = (47 + 10b)·H·W·C with b "the batch size". The paper's own text is not available, so this
command does not assume what the formula means. It

1. evaluates the stated formula, or any other ``--model`` expression over (b, H, W, C, N=H·W), on a grid;
2. measures the project's own :class:`models.casvit.AdditiveTokenMixer` (and, to see where "47" comes
   from, the whole :class:`models.casvit.AdditiveBlock`) with fvcore, FlopCounterMode and thop's rules,
   split into operator terms, plus the elementwise ops and sigmoids no counter prices (counted
   analytically for the CATM, and cross-checked against a dispatch-level tally);
3. fits every measurement on the basis {b·HWC², b·HWC, b·C², HWC} by least squares;
4. turns the fits into a verdict table: how cost grows with b, which terms the formula lacks, and
   which readings of b make it exact;
5. checks the central claim (cost linear in tokens, where self-attention is quadratic) on counts and on
   measured latency (torch CPU and ONNX Runtime) of the mixers, whole CAS-ViT models and baselines;
6. writes CSV, a markdown summary and PNG+SVG plots to ``--out``.

Counts are in multiply-accumulates (MACs) for the counters; the uncounted elementwise work is in
single operations (one per output element), and tables that add the two say so.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import gc
import itertools
import math
import os
import re
import textwrap
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

import models
from bench import flops, plots
from bench.errors import BenchError
from bench.formatting import markdown_table, text_table
from bench.selection import positive_int, positive_int_list, select_models
from models.casvit import AdditiveBlock, AdditiveTokenMixer

STATED_MODEL = "(47 + 10b)HWC"

# ---------------------------------------------------------------------------------------------------------
# Cost-model expressions: a whitelist evaluator over ast, never eval()
# ---------------------------------------------------------------------------------------------------------

SYMBOLS = {
    "b": "batch size (the published summary's definition)",
    "H": "feature-map height",
    "W": "feature-map width",
    "C": "channels",
    "N": "tokens, H*W",
}
_MAX_EXPRESSION = 300
_BINARY = {
    ast.Add: np.add,
    ast.Sub: np.subtract,
    ast.Mult: np.multiply,
    ast.Div: np.divide,
    ast.Pow: np.power,
}
_UNARY = {ast.UAdd: np.positive, ast.USub: np.negative}
# Paper notation: juxtaposition multiplies. A number followed by a name or "(" ("10b", "2(H+W)"); a name
# made only of symbols ("HWC"); a symbol followed by "(" ("C(H+W)"); ")" followed by anything ("(..)HWC").
_NUMBER_THEN = re.compile(r"(?<![\w.])(\d[\d.]*(?:[eE][+-]?\d+)?)\s*(?=[A-Za-z_(])")
_NAME = re.compile(r"[A-Za-z_]\w*")
_SYMBOL_THEN_PAREN = re.compile(r"(?<!\w)([A-Za-z])\s*(?=\()")
_PAREN_THEN = re.compile(r"\)\s*(?=[\w(])")


def _split_symbols(match: re.Match) -> str:
    name = match.group()
    return "*".join(name) if all(ch in SYMBOLS for ch in name) else name


def _python_syntax(text: str) -> str:
    """Paper notation to Python: ``^`` is a power (``**``, so ``bHWC^2`` is b·H·W·C², binding tighter than
    the products) and juxtaposed numbers, symbols and parentheses multiply."""
    text = _NUMBER_THEN.sub(r"\1*", text.replace("^", "**"))
    text = _NAME.sub(_split_symbols, text)
    text = _SYMBOL_THEN_PAREN.sub(lambda m: f"{m.group(1)}*" if m.group(1) in SYMBOLS else m.group(), text)
    return _PAREN_THEN.sub(")*", text)


@dataclass(frozen=True)
class CostModel:
    """A parsed cost expression such as ``(47 + 10b)HWC`` or ``3*b*N*C^2 + 38*b*N*C``.

    Juxtaposition multiplies (``10b``, ``HWC``, ``(..)(..)``); ``^`` is a power. Only numbers, the
    symbols in :data:`SYMBOLS`, + - * / ** ^ and parentheses are accepted.
    """

    text: str
    tree: ast.Expression

    def __call__(self, **values: np.ndarray | float) -> np.ndarray:
        env = {k: np.asarray(v, dtype=np.float64) for k, v in values.items()}
        env.setdefault("N", env["H"] * env["W"])
        with np.errstate(all="ignore"):
            result = np.broadcast_to(self._eval(self.tree.body, env), np.broadcast(*env.values()).shape)
        if not np.all(np.isfinite(result)):
            raise BenchError(f"--model {self.text!r} is not finite on the grid (division by zero or overflow)")
        return np.array(result, dtype=np.float64)

    def _eval(self, node: ast.AST, env: dict[str, np.ndarray]) -> np.ndarray:
        if isinstance(node, ast.Constant):
            return np.float64(node.value)
        if isinstance(node, ast.Name):
            return self._name(node.id, env)
        if isinstance(node, ast.BinOp):
            return _BINARY[type(node.op)](self._eval(node.left, env), self._eval(node.right, env))
        return _UNARY[type(node.op)](self._eval(node.operand, env))

    @staticmethod
    def _name(name: str, env: dict[str, np.ndarray]) -> np.ndarray:
        # _check_node has accepted only symbols; a name made of several ("HW" after "1e1HW") is their product
        return math.prod((env[s] for s in name), start=np.float64(1.0))


def _check_node(node: ast.AST, text: str) -> None:
    """Raise a one-line :class:`BenchError` for anything but numbers, symbols and arithmetic."""
    if isinstance(node, ast.Expression | ast.Load) or type(node) in _BINARY or type(node) in _UNARY:
        return
    if isinstance(node, ast.BinOp | ast.UnaryOp):
        if type(node.op) not in _BINARY and type(node.op) not in _UNARY:
            raise BenchError(f"--model {text!r}: operator {type(node.op).__name__} is not allowed (use + - * / ^)")
        return
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, int | float):
            raise BenchError(f"--model {text!r}: only numbers are allowed as constants, got {node.value!r}")
        return
    if isinstance(node, ast.Name):
        unknown = [c for c in node.id if c not in SYMBOLS]
        if unknown:
            raise BenchError(
                f"--model {text!r}: unknown symbol {node.id!r}; allowed: {', '.join(SYMBOLS)} "
                "(products may be written together, as in HWC)"
            )
        return
    what = "function calls" if isinstance(node, ast.Call) else type(node).__name__
    raise BenchError(f"--model {text!r}: {what} not allowed; use numbers, {', '.join(SYMBOLS)}, + - * / ^ ( )")


def parse_cost_model(text: str) -> CostModel:
    """Parse ``text`` into a :class:`CostModel`; every mistake is a one-line :class:`BenchError`."""
    if not text or not text.strip():
        raise BenchError("--model: empty expression")
    if len(text) > _MAX_EXPRESSION:
        raise BenchError(f"--model: expression longer than {_MAX_EXPRESSION} characters")
    source = _python_syntax(text.strip())
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as exc:
        raise BenchError(f"--model {text!r}: syntax error ({' '.join(str(exc.msg).split())})") from None
    except (RecursionError, MemoryError, ValueError):
        raise BenchError(f"--model {text!r}: expression too deeply nested or malformed") from None
    for node in ast.walk(tree):
        _check_node(node, text)
    return CostModel(text=text, tree=tree)


# ---------------------------------------------------------------------------------------------------------
# Reference multi-head self-attention: the measuring stick for "quadratic in tokens"
# ---------------------------------------------------------------------------------------------------------


class ReferenceMSA(nn.Module):
    """Standard pre-norm multi-head self-attention on a ``[B, C, H, W]`` map (ViT/DeiT attention branch).

    ``x + proj(softmax(q kᵀ / sqrt(d)) v)`` with ``q, k, v = qkv(LayerNorm(tokens))``; head width 32.
    Its multiply-adds are 4·N·C² (qkv and output Linear) + 2·N²·C (q kᵀ and attn·v), N = H·W: the form
    efficient-ViT papers quote (e.g. Swin's Ω(MSA)). The products are explicit matmuls rather than
    ``scaled_dot_product_attention`` so both counters price them. It is an instrument for this command,
    not a zoo model: nothing is trained or exported with it except for the latency comparison.
    """

    def __init__(self, dim: int, head_dim: int = 32) -> None:
        super().__init__()
        self.heads = max(1, dim // head_dim)
        self.scale = (dim // self.heads) ** -0.5
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        tokens = x.flatten(2).transpose(1, 2)  # [B, N, C]
        qkv = self.qkv(self.norm(tokens)).reshape(b, h * w, 3, self.heads, c // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each [B, heads, N, d]
        attn = ((q * self.scale) @ k.transpose(-2, -1)).softmax(dim=-1)
        mixed = (attn @ v).transpose(1, 2).reshape(b, h * w, c)
        return (tokens + self.proj(mixed)).transpose(1, 2).reshape(b, c, h, w)


MIXERS: dict[str, Callable[[int], nn.Module]] = {
    "CATM": AdditiveTokenMixer,
    "CAS block": AdditiveBlock,
    "MSA": ReferenceMSA,
}

# ---------------------------------------------------------------------------------------------------------
# Operator terms
# ---------------------------------------------------------------------------------------------------------

# term -> how it scales. The counted terms come from fvcore's per-module counts; the rest from
# analytic formulas (CATM) or the dispatch tally (every mixer), since no counter prices them.
TERM_SCALING = {
    "projection": "b·HWC²",
    "depthwise": "b·HWC",
    "spatial_gate": "b·HWC",
    "channel_attention": "b·C²",
    "token_matmul": "b·(HW)²C",
    "normalization": "b·HWC",
    "pooling": "b·HWC",
    "other": "-",
    "elementwise": "b·HWC",
    "activation": "b·HWC",
    "bias": "b·HWC",
    "sigmoid": "b·(HW + C)",
}
COUNTED_TERMS = ("projection", "depthwise", "spatial_gate", "channel_attention", "token_matmul")
COUNTED_TERMS += ("normalization", "pooling", "other")
UNCOUNTED_TERMS = ("elementwise", "activation", "bias", "sigmoid")
_TERM_SCALE_FN = {
    "b·HWC²": lambda b, n, c: b * n * c * c,
    "b·HWC": lambda b, n, c: b * n * c,
    "b·C²": lambda b, n, c: b * c * c,
    "b·(HW)²C": lambda b, n, c: b * n * n * c,
    "b·(HW + C)": lambda b, n, c: b * (n + c),
}


def classify_module(module: nn.Module, input_shape: tuple[int, ...] | None) -> str:
    """Operator term of a leaf module, from its type and the shape it was called with.

    A 1x1 conv on a 1x1 map is channel attention on pooled features (∝ C²); a conv to one channel is
    the spatial gate; a conv with one group per channel is depthwise; other convs and linears project.
    """
    if isinstance(module, nn.Conv2d):
        if module.groups > 1 and module.groups == module.in_channels:
            return "depthwise"
        if input_shape is not None and math.prod(input_shape[2:]) == 1:
            return "channel_attention"
        return "spatial_gate" if module.out_channels == 1 else "projection"
    if isinstance(module, nn.Linear):
        return "projection"
    if isinstance(module, nn.modules.batchnorm._NormBase | nn.LayerNorm | nn.GroupNorm):
        return "normalization"
    if isinstance(module, nn.AdaptiveAvgPool2d | nn.AvgPool2d):
        return "pooling"
    return "other"


def _direct_op_term(op: str) -> str:
    """Term of an op a container runs itself (e.g. the attention matmuls of :class:`ReferenceMSA`)."""
    return "token_matmul" if op in ("matmul", "bmm", "einsum") else "other"


def fvcore_terms(
    module: nn.Module, by_module_op: dict[str, Counter], input_shapes: dict[str, tuple[int, ...]]
) -> Counter:
    """Split an fvcore count into operator terms: leaf modules by :func:`classify_module`, ops a
    container runs itself (its count minus its children's) by op name."""
    terms: Counter = Counter()
    for name, sub in module.named_modules():
        counts = Counter(by_module_op.get(name, {}))
        children = [f"{name}.{c}" if name else c for c, _ in sub.named_children()]
        if not children:
            term = classify_module(sub, input_shapes.get(name))
            terms[term] += sum(counts.values())
            continue
        for child in children:
            counts.subtract(by_module_op.get(child, {}))
        for op, value in counts.items():
            if value > 0:
                terms[_direct_op_term(op)] += value
    return terms


def catm_uncounted(b: int, h: int, w: int, c: int) -> dict[str, int]:
    """Operations in one CATM forward that neither fvcore nor FlopCounterMode price, derived by hand
    from ``proj(dwc(C(S(q)) + C(S(k))) * v)`` (one op per output element):

    * elementwise 6·bHWC: S gates x·map (2 branches), C gates x·w (2), q + k (1), · v (1);
    * activation 2·bHWC: the ReLU inside each S;
    * bias 4·bHWC: the biased depthwise convs (DW3x3 in each S, ``dwc``, ``proj``); convs are priced
      without their bias by both counters;
    * sigmoid 2·b·(HW + C): one spatial map [B,1,H,W] and one channel vector [B,C,1,1] per branch.
    """
    n = h * w
    return {
        "elementwise": 6 * b * n * c,
        "activation": 2 * b * n * c,
        "bias": 4 * b * n * c,
        "sigmoid": 2 * b * (n + c),
    }


_TALLY_KIND = {
    "mul": "elementwise",
    "add": "elementwise",
    "sub": "elementwise",
    "div": "elementwise",
    "sigmoid": "sigmoid",
    "relu": "activation",
    "gelu": "activation",
    "silu": "activation",
}


class UncountedTally(TorchDispatchMode):
    """Counts output elements of the elementwise aten ops (and conv bias adds) one forward dispatches.

    Runs on meta tensors, so it costs nothing; it checks the analytic :func:`catm_uncounted` and gives
    the same terms for modules without a hand-derived formula (the CAS block, MSA).
    """

    def __init__(self) -> None:
        super().__init__()
        self.counts: Counter = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        name = func.overloadpacket.__name__.rstrip("_")
        if name == "convolution" and args[2] is not None:
            self.counts["bias"] += out.numel()
        elif name in _TALLY_KIND and isinstance(out, torch.Tensor):
            self.counts[_TALLY_KIND[name]] += out.numel()
        return out


# ---------------------------------------------------------------------------------------------------------
# Measuring one configuration
# ---------------------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------------------
# Least-squares fit on the basis {b·HWC², b·HWC, b·C², HWC}
# ---------------------------------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------------------------
# The verdict
# ---------------------------------------------------------------------------------------------------------


def _fmt(x: float) -> str:
    text = f"{x:.3f}".rstrip("0").rstrip(".") if abs(x) < 1e4 else f"{x:.3g}"
    return "0" if text in ("-0", "") else text


def batch_linearity(frame: pd.DataFrame, column: str) -> float:
    """Largest |cost(b) / (b · cost(1)) - 1| over the grid: 0 means cost is exactly proportional to b."""
    data = frame[frame[column].notna()]
    if 1 not in set(data["b"]):
        return float("nan")
    one = data[data["b"] == 1].set_index(["H", "C"])[column]
    per_image = data[column] / (data["b"] * one.reindex(pd.MultiIndex.from_frame(data[["H", "C"]])).to_numpy())
    return float(np.nanmax(np.abs(per_image - 1)))


def _reading_rows(fits: dict[tuple[str, str], Fit], n_branches: int) -> list[dict[str, str]]:
    """For each measured per-image HWC coefficient κ: the b that makes 47 + 10b = κ, and what it could mean."""
    named = {0: "none: only the 47 alone (b = 0) fits", 1: "b = 1, i.e. per image at batch 1"}
    named[n_branches] = f"b = {n_branches}, the number of Φ branches (Q and K)"
    rows = []
    for key, label in TARGET_LABELS.items():
        if key not in fits or key[1] == "fvcore_no_projection":
            continue
        kappa = fits[key].per_image_hwc
        b = (kappa - 47) / 10
        whole = abs(b - round(b)) < 1e-3 and round(b) >= 0
        rows.append(
            {
                "aspect": f"reading of b: {label}",
                "stated model": "47 + 10b",
                "measured": f"{_fmt(kappa)}·HWC per image, so b = {_fmt(b)}",
                "verdict": named.get(round(b), f"b = {round(b)}") if whole else "no whole-number b makes it exact",
            }
        )
    return rows


def verdict_table(
    fits: dict[tuple[str, str], Fit], catm: pd.DataFrame, n_branches: int, branch_hwc: float
) -> pd.DataFrame:
    """The stated model against the measurements, aspect by aspect (not a yes/no)."""
    fv = fits[("CATM", "fvcore")].coefficients
    conv = fits[("CATM", "flopcounter")].per_image_hwc
    effective = catm["fvcore"] / (catm["b"] * catm["H"] * catm["W"] * catm["C"])
    c2_share = 100 * (catm["term_channel_attention"] / catm["fvcore"]).max()
    rest = conv - n_branches * branch_hwc
    fvcore_hwc = fits[("CATM", "fvcore")].per_image_hwc
    rows = [
        {
            "aspect": "growth with b (batch)",
            "stated model": "additive: 47·HWC + 10·b·HWC",
            "measured": (
                f"fit: {_fmt(fv['HWC'])}·HWC + {_fmt(fv['b·HWC'])}·b·HWC; cost(b)/(b·cost(1)) - 1 at most "
                f"{batch_linearity(catm, 'fvcore'):.1e}"
                if catm["b"].nunique() > 1
                else "one batch size measured: the b-free HWC term cannot be separated"
            ),
            "verdict": "multiplicative: cost = b × per-image cost; the additive form fails if b is the batch"
            if catm["b"].nunique() > 1
            else "not tested (give --batches with two or more values)",
        },
        {
            "aspect": "1x1 projection term (HWC²)",
            "stated model": "absent",
            "measured": f"{_fmt(fv['b·HWC²'])}·b·HWC² (the qkv 1x1 conv, C → 3C)",
            "verdict": f"missing; larger than the whole HWC term once C > {fv['b·HWC'] / fv['b·HWC²']:.1f}",
        },
        {
            "aspect": "channel attention on pooled features (C²)",
            "stated model": "absent",
            "measured": f"{_fmt(fv['b·C²'])}·b·C², at most {c2_share:.2f}% of the count on the grid",
            "verdict": "missing but negligible",
        },
        {
            "aspect": "per-image HWC coefficient, with the projection",
            "stated model": "57 at b = 1, a constant",
            "measured": f"count/(bHWC) from {effective.min():.1f} to {effective.max():.1f} over C = "
            f"{catm['C'].min()}..{catm['C'].max()}",
            "verdict": "not a constant (grows as 3C): the formula cannot cover the whole mixer",
        },
        {
            "aspect": "per-image HWC coefficient, without the projection",
            "stated model": "47 + 10b",
            "measured": (
                f"{_fmt(conv)} conv MACs = {_fmt(rest)} (Γ and proj, two DW3x3) + {n_branches} × "
                f"{_fmt(branch_hwc)} (per Φ branch: DW3x3 + 1x1 C→1); fvcore {_fmt(fvcore_hwc)}"
            ),
            "verdict": (
                f"linear in HWC as claimed; ({_fmt(rest)} + {_fmt(branch_hwc)}b)·HWC is exact for the CATM's conv "
                "MACs with b = number of Φ branches"
            ),
        },
    ]
    block = fits.get(("CAS block", "flopcounter"))
    if block is not None:
        block_rest = block.per_image_hwc - n_branches * branch_hwc
        rows.append(
            {
                "aspect": "where 47 comes from",
                "stated model": "47·HWC",
                "measured": f"whole CAS block conv MACs: {_fmt(block.per_image_hwc)}·HWC per image "
                f"(CATM {_fmt(conv)} + LocalIntegration DW3x3 {_fmt(block.per_image_hwc - conv)})",
                "verdict": (
                    f"47 is the CAS block's coefficient with both Φ branches included: "
                    f"({_fmt(block_rest)} + {_fmt(branch_hwc)}b)·HWC, b = {n_branches}, is exact; "
                    "47 + 10b would count the branches twice"
                ),
            }
        )
    rows.extend(_reading_rows(fits, n_branches))
    return pd.DataFrame(rows)


def plain_verdict(
    fits: dict[tuple[str, str], Fit], n_branches: int, branch_hwc: float, token_exps: pd.DataFrame
) -> str:
    """The verdict in sentences, every number taken from the fits."""
    fv = fits[("CATM", "fvcore")].coefficients
    conv = fits[("CATM", "flopcounter")].per_image_hwc
    rest = conv - n_branches * branch_hwc
    block = fits.get(("CAS block", "flopcounter"))
    readings = _reading_rows(fits, n_branches)
    exact = [r["aspect"].removeprefix("reading of b: ") for r in readings if r["verdict"].startswith("b = ")]
    head = token_exps[token_exps["measure"] == "flopcounter"].set_index("mixer")
    batch_sentence = (
        "Only one batch size was measured, so how cost grows with b is not tested."
        if math.isnan(fv["HWC"])
        else "If b is the batch size, the stated formula does not describe the project's CATM: every measured "
        "term grows in proportion to b (cost = b × per-image cost), not as 47 + 10b."
    )
    text = [
        batch_sentence,
        f"Per image the mixer costs {_fmt(fv['b·HWC²'])}·HWC² (its 1x1 qkv projection, absent from the "
        f"formula and the largest term once C > {fv['b·HWC'] / fv['b·HWC²']:.1f}) + {_fmt(fv['b·HWC'])}·HWC "
        f"(fvcore; {_fmt(conv)} of it convolution MACs) + {_fmt(fv['b·C²'])}·C² (negligible).",
        f"The part that is linear in HWC, the depthwise and gate convolutions, is ({_fmt(rest)} + "
        f"{_fmt(branch_hwc)}b)·HWC with b = the number of Φ branches ({n_branches}).",
    ]
    if block is not None:
        text.append(
            f"47 is the whole CAS block's coefficient ({_fmt(block.per_image_hwc)}·HWC conv MACs per image), "
            "which already contains both Φ branches."
        )
    text.append(
        "A whole-number reading of b that makes 47 + 10b exact exists only for: " + "; ".join(exact) + "."
        if exact
        else "No counting rule tried (conv MACs, fvcore, thop, every elementwise op) makes 47 + 10b exact "
        "for any whole-number b."
    )
    if {"CATM", "MSA"} <= set(head.index):
        text.append(
            f"The central claim holds: cost grows as tokens^{head.loc['CATM', 'exponent_all']:.2f} for the CATM, "
            f"while a standard MSA of the same width reaches tokens^{head.loc['MSA', 'exponent_upper']:.2f} "
            "over the upper half of the range."
        )
    return " ".join(text)


def phi_branch_cost(c: int = 64, h: int = 14) -> tuple[int, float]:
    """Number of Φ branches in the project's CATM and the conv MACs per image of one, per HWC.

    Read off the module (``oper_*`` children) rather than assumed, so a changed mixer changes the verdict.
    """
    with torch.device("meta"):
        mixer = AdditiveTokenMixer(c).eval()
    branches = [m for name, m in mixer.named_children() if name.startswith("oper_")]
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        branches[0](torch.zeros(1, c, h, h, device="meta"))
    conv_macs = counter.get_total_flops() / 2
    per_hwc = (conv_macs - c * c) / (h * h * c)  # minus the C(·) 1x1 on the pooled vector
    return len(branches), per_hwc


# ---------------------------------------------------------------------------------------------------------
# Cost vs tokens: CATM vs MSA
# ---------------------------------------------------------------------------------------------------------


def slope(tokens: np.ndarray, values: np.ndarray) -> float:
    """Least-squares exponent p of values ∝ tokens^p on log-log axes."""
    return float(np.polyfit(np.log(tokens), np.log(values), 1)[0])


def token_costs(width: int, sizes: list[int], fvcore_max: int) -> pd.DataFrame:
    """CATM and MSA counts at one width over square maps: FlopCounterMode on meta tensors for every
    size, fvcore (which executes the module) up to ``fvcore_max``."""
    rows = []
    for mixer in ("CATM", "MSA"):
        module = MIXERS[mixer](width).eval()
        for h in sizes:
            with single_threaded():
                fcm, shapes, _ = meta_pass(MIXERS[mixer], 1, h, width)
                row = {"mixer": mixer, "C": width, "H": h, "tokens": h * h, "flopcounter": fcm, "fvcore": np.nan}
                if h <= fvcore_max:
                    row["fvcore"] = fvcore_pass(module, 1, h, shapes)["fvcore"]
            rows.append(row)
    return pd.DataFrame(rows)


def upper_half(xs: np.ndarray) -> np.ndarray:
    """Points at or above the geometric middle of the range (at least the last two): where fixed per-call
    costs matter least, so the exponent there is the one that extrapolates."""
    mask = xs >= np.sqrt(xs.min() * xs.max())
    mask[-2:] = True
    return mask


def exponent_table(frame: pd.DataFrame, group: list[str], x: str, columns: list[str]) -> pd.DataFrame:
    """Exponents of each column vs ``x`` per group: over the whole range and over its upper half."""
    rows = []
    for keys, d in frame.groupby(group, sort=False):
        d = d.sort_values(x)
        for col in columns:
            ok = d[d[col].notna() & (d[col] > 0)]
            if len(ok) < 2:
                continue
            xs, ys = ok[x].to_numpy(float), ok[col].to_numpy(float)
            upper = upper_half(xs)
            rows.append(
                {
                    **dict(zip(group, keys if isinstance(keys, tuple) else (keys,), strict=True)),
                    "measure": col,
                    "exponent_all": slope(xs, ys),
                    "exponent_upper": slope(xs[upper], ys[upper]),
                    "from_tokens": int(xs[0]),
                    "to_tokens": int(xs[-1]),
                }
            )
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------------------
# Latency vs tokens (torch CPU, ONNX Runtime), reusing the suite's backends and timed loop
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LatencySettings:
    backends: tuple[str, ...]
    threads: int | None
    min_iters: int
    min_time_s: float
    max_time_s: float
    cache_dir: Path


def _median_ms(session, settings: LatencySettings) -> float:
    from bench.timing import LoopLimits, timed_loop

    for _ in range(2):
        session.run()  # warmup: first-run allocations and ORT's lazy initialisation
    limits = LoopLimits(settings.min_iters, settings.min_time_s, settings.max_time_s)
    return float(np.median(timed_loop(session.run, limits).samples_ms))


def _module_session(backend_name: str, module: nn.Module, example: np.ndarray, tag: str, settings):
    """A backend session for a bare module (input [B, C, H, W]); the ONNX file is cached by shape."""
    from bench.backends import get_backend
    from bench.backends.base import Prepared, Workload
    from bench.backends.onnx import export_onnx

    backend = get_backend(backend_name)
    workload = Workload(tag, example.shape[0], example.shape[-1], threads=settings.threads)
    artifact = None
    if backend_name == "onnx":
        shape = "x".join(map(str, example.shape))
        artifact = settings.cache_dir / "complexity" / f"{tag}-{shape}-torch{torch.__version__}.onnx"
        if not artifact.exists():
            artifact.parent.mkdir(parents=True, exist_ok=True)
            export_onnx(module, torch.from_numpy(example), artifact, "torchscript")
    return backend.load(module, Prepared(artifact=artifact), workload, example)


def mixer_latency(width: int, sizes: list[int], settings: LatencySettings) -> pd.DataFrame:
    """Latency of one CATM and one MSA forward (batch 1) per map size; one backend at a time."""
    rows = []
    for backend_name, mixer in itertools.product(settings.backends, ("CATM", "MSA")):
        module = MIXERS[mixer](width).eval()
        for h in sizes:
            example = np.zeros((1, width, h, h), dtype=np.float32)
            session = _module_session(backend_name, module, example, f"{mixer.lower()}-c{width}", settings)
            rows.append({"what": mixer, "backend": backend_name, "tokens": h * h, "size": h, "C": width})
            rows[-1]["latency_ms"] = _timed_and_closed(session, settings)
    return pd.DataFrame(rows)


def _timed_and_closed(session, settings: LatencySettings) -> float:
    """Median latency, then the session is released before the next one starts (no idle thread pools)."""
    try:
        return _median_ms(session, settings)
    finally:
        session.close()
        del session
        gc.collect()


def model_latency(names: list[str], resolutions: list[int], settings: LatencySettings) -> pd.DataFrame:
    """Latency (batch 1) and fvcore GMACs of whole networks per input resolution; one backend at a time,
    so that two runtimes' thread pools never compete for the cores."""
    from bench.backends import get_backend
    from bench.backends.base import Workload

    gmacs: dict[tuple[str, int], float] = {}
    rows = []
    for backend_name, name, res in itertools.product(settings.backends, names, resolutions):
        backend = get_backend(backend_name)
        workload = Workload(name, 1, res, threads=settings.threads)
        backend.check(workload)
        torch.manual_seed(0)
        model = models.create_model(name, img_size=res)
        if (name, res) not in gmacs:
            gmacs[(name, res)] = flops.fvcore_gmacs(model, res)
        prepared = backend.prepare(model, workload, settings.cache_dir)
        session = backend.load(model, prepared, workload, np.zeros(workload.input_shape, dtype=np.float32))
        rows.append(
            {
                "what": name,
                "family": models.get_card(name).family,
                "backend": backend_name,
                "resolution": res,
                "tokens": (res // 4) ** 2,
                "gmacs": gmacs[(name, res)],
                "latency_ms": _timed_and_closed(session, settings),
            }
        )
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------------------
# Plots (matplotlib Agg canvas, the report module's style; PNG and SVG)
# ---------------------------------------------------------------------------------------------------------

_MIXER_STYLE = {"CATM": ("#D55E00", "*"), "MSA": ("#0072B2", "o")}
_COUNTER_LABEL = {"flopcounter": "conv MACs (FlopCounterMode)", "fvcore": "MACs (fvcore)"}
_BATCH_COLORS = {1: "#0072B2", 2: "#009E73", 4: "#E69F00", 8: "#D55E00"}


@contextlib.contextmanager
def _figure(ncols: int, nrows: int = 1, width: float = 6.0, height: float = 4.8) -> Iterator[tuple[Figure, np.ndarray]]:
    with matplotlib.rc_context(plots.STYLE):
        fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
        FigureCanvasAgg(fig)
        yield fig, fig.subplots(nrows, ncols, squeeze=False)


def _save_figure(fig: Figure, out: Path, stem: str) -> list[Path]:
    paths = [out / f"{stem}.png", out / f"{stem}.svg"]
    fig.savefig(paths[0], dpi=plots.DPI)
    fig.savefig(paths[1], metadata={"Date": None})
    return paths


def _log_axes(ax) -> None:
    ax.set(xscale="log", yscale="log")
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_minor_formatter(NullFormatter())


def _grid_caption(frame: pd.DataFrame) -> str:
    values = {k: sorted(frame[k].unique()) for k in ("b", "H", "C")}
    return ", ".join(f"{k}∈{{{','.join(map(str, v))}}}" for k, v in values.items())


def _predicted(model: CostModel, fits: dict[tuple[str, str], Fit], data: pd.DataFrame, fit_key) -> np.ndarray:
    if fit_key is None:
        return model(b=data["b"], H=data["H"], W=data["W"], C=data["C"])
    return design_matrix(data) @ np.array(list(fits[fit_key].coefficients.values()))


def plot_measured_vs_predicted(model: CostModel, frames: dict[str, pd.DataFrame], fits, out: Path) -> list[Path]:
    """The ``--model`` expression against the CATM and the CAS block (conv MACs), and the fitted basis
    against the CATM's fvcore count, each point one grid configuration coloured by b."""
    panels = [
        ("CATM", "flopcounter", f"{model.text} vs CATM conv MACs", None),
        ("CAS block", "flopcounter", f"{model.text} vs CAS block conv MACs", None),
        ("CATM", "fvcore", "least-squares fit vs CATM fvcore count", ("CATM", "fvcore")),
    ]
    with _figure(3, width=5.6, height=5.0) as (fig, axes):
        for ax, (mixer, column, title, fit_key) in zip(axes[0], panels, strict=True):
            data = frames[mixer][frames[mixer][column].notna()]
            predicted = _predicted(model, fits, data, fit_key)
            for b in sorted(data["b"].unique()):
                sel = (data["b"] == b).to_numpy()
                ax.scatter(
                    predicted[sel], data[column][sel], s=14, alpha=0.8, color=_BATCH_COLORS.get(b), label=f"b={b}"
                )
            lo = min(predicted.min(), data[column].min()) / 2
            hi = max(predicted.max(), data[column].max()) * 2
            ax.plot([lo, hi], [lo, hi], color="black", lw=1, ls="--", label="measured = predicted", zorder=1)
            _log_axes(ax)
            ax.set(
                xlim=(lo, hi), ylim=(lo, hi), xlabel="predicted (MACs)", ylabel=f"measured, {_COUNTER_LABEL[column]}"
            )
            ax.set_title(title, fontsize=11, loc="left")
            ax.legend(fontsize=9, loc="upper left")
        fig.suptitle(f"Measured vs predicted cost over the grid {_grid_caption(frames['CATM'])}")
        return _save_figure(fig, out, "measured_vs_predicted")


def plot_cost_vs_tokens(tokens: pd.DataFrame, exponents: pd.DataFrame, out: Path) -> list[Path]:
    """Log-log cost vs tokens of the CATM and the reference MSA at one width, with slope-1 and -2 guides."""
    with _figure(1, width=7.5, height=5.2) as (fig, axes):
        ax = axes[0][0]
        for mixer, d in tokens.groupby("mixer", sort=False):
            color, marker = _MIXER_STYLE[mixer]
            e = exponents[(exponents["mixer"] == mixer) & (exponents["measure"] == "flopcounter")].iloc[0]
            label = f"{mixer}: exponent {e.exponent_all:.2f} overall, {e.exponent_upper:.2f} in the upper half"
            ax.plot(d["tokens"], d["flopcounter"], marker=marker, color=color, ms=10, label=label)
            fv = d[d["fvcore"].notna()]
            ax.plot(fv["tokens"], fv["fvcore"], ls="", marker="x", color="black", ms=6, label=f"{mixer}, fvcore count")
        n = np.array([tokens["tokens"].min(), tokens["tokens"].max()], dtype=float)
        start = tokens["flopcounter"].min() / 4
        for p, ls in ((1, ":"), (2, "-.")):
            ax.plot(n, start * (n / n[0]) ** p, color="grey", ls=ls, lw=1, label=f"slope {p} guide")
        _log_axes(ax)
        ax.set(xlabel="tokens N = H·W", ylabel="MACs per image (FlopCounterMode)")
        ax.set_title(f"Cost vs tokens at C = {int(tokens['C'].iloc[0])}: CATM vs standard MSA", fontsize=12, loc="left")
        ax.legend(fontsize=9, loc="upper left")
        return _save_figure(fig, out, "cost_vs_tokens")


def _latency_panel(ax, data: pd.DataFrame, exponents: pd.DataFrame, styles: dict[str, tuple[str, str]]) -> None:
    linestyles = itertools.cycle(["-", "--", "-.", ":"])
    for what, d in data.groupby("what", sort=False):
        d = d.sort_values("tokens")
        color, marker = styles.get(what, ("#000000", "o"))
        e = exponents[(exponents["what"] == what) & (exponents["backend"] == d["backend"].iloc[0])]
        label = what
        if len(e):
            label += f" ({e.iloc[0].exponent_all:.2f} overall, {e.iloc[0].exponent_upper:.2f} upper half)"
        ax.plot(d["tokens"], d["latency_ms"], marker=marker, color=color, ls=next(linestyles), ms=8, label=label)
    _log_axes(ax)
    ax.set(ylabel="median latency (ms)")
    ax.legend(fontsize=8, loc="upper left")


def plot_latency_vs_tokens(mixers: pd.DataFrame, nets: pd.DataFrame, exponents: pd.DataFrame, out: Path) -> list[Path]:
    """Top row: CATM vs MSA alone; bottom row: whole networks across resolutions; one column per backend."""
    backends = list(dict.fromkeys([*mixers["backend"], *nets["backend"]]))
    net_styles = {
        n: plots.FAMILY_STYLE.get(f, ("#000000", "P")) for n, f in zip(nets["what"], nets["family"], strict=True)
    }
    with _figure(len(backends), 2, width=6.5, height=4.8) as (fig, axes):
        for col, backend in enumerate(backends):
            _latency_panel(axes[0][col], mixers[mixers["backend"] == backend], exponents, _MIXER_STYLE)
            axes[0][col].set_title(
                f"{backend}: token mixers alone, C = {int(mixers['C'].iloc[0])}", fontsize=12, loc="left"
            )
            axes[0][col].set_xlabel("tokens N = H·W")
            _latency_panel(axes[1][col], nets[nets["backend"] == backend], exponents, net_styles)
            axes[1][col].set_title(f"{backend}: whole networks", fontsize=12, loc="left")
            axes[1][col].set_xlabel("tokens at stride 4 = (resolution / 4)²")
        fig.suptitle("Latency vs tokens, batch 1 (log-log; legend: least-squares exponents)")
        return _save_figure(fig, out, "latency_vs_tokens")


def plot_operator_terms(catm: pd.DataFrame, out: Path) -> list[Path]:
    """Share of each operator term in all of the CATM's work across widths (smallest b, H = W = 14)."""
    size = 14 if 14 in set(catm["H"]) else int(catm["H"].iloc[0])
    d = catm[(catm["b"] == catm["b"].min()) & (catm["H"] == size)].sort_values("C")
    parts = [(t, f"term_{t}") for t in COUNTED_TERMS if d[f"term_{t}"].sum() > 0]
    parts += [(f"{t} (no counter)", f"analytic_{t}") for t in UNCOUNTED_TERMS]
    with _figure(1, width=8.5, height=5.0) as (fig, axes):
        ax = axes[0][0]
        bottom = np.zeros(len(d))
        xs = np.arange(len(d))
        colors = matplotlib.colormaps["tab10"].colors
        for (label, column), color in zip(parts, colors, strict=False):
            share = 100 * d[column].to_numpy() / d["all_ops"].to_numpy()
            ax.bar(xs, share, bottom=bottom, color=color, label=label, hatch="//" if "no counter" in label else None)
            bottom += share
        ax.set_xticks(xs, [str(c) for c in d["C"]])
        ax.set(xlabel="channels C", ylabel="% of MACs + uncounted ops", ylim=(0, 100))
        ax.set_title(
            f"CATM operator terms at H = W = {size}, b = {d['b'].iloc[0]} (hatched: priced by no counter)",
            fontsize=12,
            loc="left",
        )
        ax.legend(fontsize=9, loc="center left", bbox_to_anchor=(1.0, 0.5))
        return _save_figure(fig, out, "operator_terms")


# ---------------------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------------------

DEFAULT_LATENCY_MODELS = "casvit_xs,casvit_s,swiftformer_xs,efficientformerv2_s0,mobilevitv2_050"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", default=STATED_MODEL, help="cost expression over b, H, W, C, N (default: %(default)s)"
    )
    parser.add_argument("--batches", default="1,2,4,8", help="grid: batch sizes b (default: %(default)s)")
    parser.add_argument("--sizes", default="7,14,28,56", help="grid: H = W (default: %(default)s)")
    parser.add_argument("--channels", default="32,48,64,96,128,192,256,384,512", help="grid: C")
    parser.add_argument("--block-batches", default="1,2", help="batches at which fvcore runs the whole CAS block")
    parser.add_argument("--token-width", default="64", help="C of the CATM-vs-MSA comparison (default: %(default)s)")
    parser.add_argument("--token-sizes", default="7,14,28,56,112,224", help="H = W of the token-count comparison")
    parser.add_argument("--latency-sizes", default="7,14,28,56", help="H = W of the mixer latency runs")
    parser.add_argument("--latency-models", default=DEFAULT_LATENCY_MODELS, help="networks timed across resolutions")
    parser.add_argument("--resolutions", default="128,256,512", help="input sizes of the network latency runs")
    parser.add_argument("--backends", default="torch,onnx", help="latency backends: torch, onnx (default: both)")
    parser.add_argument(
        "--threads",
        default="1",
        help="intra-op threads of both runtimes (default: 1, the steadiest on a small shared machine; 0 = their own)",
    )
    parser.add_argument("--repeats", default="5", help="minimum timed iterations per latency point (default: 5)")
    parser.add_argument("--no-latency", action="store_true", help="counts, fits and verdict only")
    parser.add_argument("--cache-dir", default=os.environ.get("BENCH_CACHE_DIR", ".cache/bench"), help="ONNX cache")
    parser.add_argument("--out", default="reports/complexity", help="output directory (default: %(default)s)")
    parser.add_argument("--no-save", action="store_true", help="print only, write nothing")


def _parse_backends(text: str) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(t.strip() for t in text.split(",") if t.strip()))
    if not chosen or any(b not in ("torch", "onnx") for b in chosen):
        raise BenchError(f"--backends: choose from torch, onnx (got {text!r})")
    return chosen


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


@dataclass
class Latency:
    mixers: pd.DataFrame
    networks: pd.DataFrame
    exponents: pd.DataFrame
    note: str


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


def latency_words(exponents: pd.DataFrame) -> str:
    """The latency check in one paragraph, from the upper-half exponents (at small sizes fixed per-call
    overheads dominate, which pulls the overall exponents down)."""
    upper = exponents[exponents["measure"] == "latency_ms"].set_index(["what", "backend"])["exponent_upper"]
    parts = []
    for backend in dict.fromkeys(upper.index.get_level_values("backend")):
        d = upper.xs(backend, level="backend")
        text = f"{backend}: " + ", ".join(f"{m} {d[m]:.2f}" for m in ("CATM", "MSA") if m in d)
        nets = d.drop(["CATM", "MSA"], errors="ignore")
        parts.append(text + (f"; whole networks {nets.min():.2f} to {nets.max():.2f}" if len(nets) else ""))
    catm = upper.xs("CATM", level="what") if "CATM" in upper.index.get_level_values("what") else pd.Series()
    msa = upper.xs("MSA", level="what") if "MSA" in upper.index.get_level_values("what") else pd.Series()
    separated = len(catm) and len(msa) and catm.max() < 1.3 and msa.min() > 1.6
    verdict = (
        "Measured latency separates the two as the counts do: about linear for the CATM, about quadratic for the MSA."
        if separated
        else "On this run the latencies do not separate linear from quadratic cleanly (see the load note)."
    )
    return "Exponent of latency vs tokens over the upper half of each range: " + "; ".join(parts) + ". " + verdict


def run_latency(settings: LatencySettings, names: list[str], resolutions: list[int], width: int, sizes: list[int]):
    load_before = os.getloadavg()[0]
    mixers = mixer_latency(width, sizes, settings)
    nets = model_latency(names, resolutions, settings)
    exps = exponent_table(pd.concat([mixers, nets]), ["what", "backend"], "tokens", ["latency_ms"])
    gmacs = exponent_table(nets[nets["backend"] == settings.backends[0]], ["what"], "tokens", ["gmacs"])
    exps = pd.concat([exps, gmacs.assign(backend="(fvcore count)")], ignore_index=True)
    note = (
        f"latency: {os.cpu_count()} CPUs, threads {settings.threads or 'runtime default'}, 1-minute load average "
        f"{load_before:.1f} before and {os.getloadavg()[0]:.1f} after (a load above the CPU count means other "
        "processes shared the cores and the latencies are inflated and noisy)"
    )
    return Latency(mixers, nets, exps, note)


def _options(args: argparse.Namespace) -> dict[str, object]:
    """The options that shape the results, so a report says how it was made."""
    skip = {"command", "handler", "out", "no_save", "cache_dir"}
    return {k: v for k, v in vars(args).items() if k not in skip and v not in (None, False)}


def main(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    model = parse_cost_model(args.model)
    grid = Grid(
        tuple(positive_int_list(args.batches, "--batches")),
        tuple(positive_int_list(args.sizes, "--sizes")),
        tuple(positive_int_list(args.channels, "--channels")),
    )
    block_batches = positive_int_list(args.block_batches, "--block-batches")
    width = positive_int(args.token_width, "--token-width")
    token_sizes = positive_int_list(args.token_sizes, "--token-sizes")
    if not args.no_latency:  # validate every option before the long work starts
        settings = LatencySettings(
            backends=_parse_backends(args.backends),
            threads=None if args.threads.strip() == "0" else positive_int(args.threads, "--threads"),
            min_iters=positive_int(args.repeats, "--repeats"),
            min_time_s=0.1,
            max_time_s=2.0,
            cache_dir=Path(args.cache_dir),
        )
        names = select_models(args.latency_models)
        resolutions = positive_int_list(args.resolutions, "--resolutions")
        latency_sizes = positive_int_list(args.latency_sizes, "--latency-sizes")

    counts = run_counts(model, grid, block_batches, width, token_sizes)
    notes = [
        "options: "
        + " ".join(f"--{k.replace('_', '-')}{'' if v is True else f' {v}'}" for k, v in _options(args).items()),
        f"counting, fitting and the token comparison took {time.perf_counter() - started:.1f} s",
    ]
    latency = None
    if not args.no_latency:
        latency = run_latency(settings, names, resolutions, width, latency_sizes)
        notes.append(latency.note)
    _print(model, counts, latency, notes)
    if not args.no_save:
        written = save(model, counts, latency, notes, Path(args.out))
        print(f"\nwritten to {args.out}/: {', '.join(p.name for p in written)}")
    print(f"done in {time.perf_counter() - started:.1f} s")
    return 0


# ---------------------------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------------------------


def _print(model: CostModel, c: Counts, latency: Latency | None, notes: list[str]) -> None:
    print(f"Verdict on Ω(CATM) = {STATED_MODEL}")
    print(text_table(c.verdict))
    print("\n" + textwrap.fill(c.plain, 110))
    print("\nLeast-squares fits on {b·HWC², b·HWC, b·C², HWC} (relative residuals)")
    print(text_table(c.fit_frame, 4))
    print(f"\n--model {model.text!r}: measured / predicted over the grid")
    print(text_table(c.comparison, 3))
    print("\nCATM operator terms (coefficient = term / its scaling; constant means the scaling holds)")
    print(text_table(c.terms, 3))
    print("\nExponent of cost vs tokens")
    print(text_table(c.token_exponents, 3))
    if latency is not None:
        print("\nExponent of latency (and of fvcore GMACs) vs tokens")
        print(text_table(latency.exponents, 3))
    for note in notes:
        print(f"note: {note}")


def _summary_markdown(model: CostModel, c: Counts, latency: Latency | None, notes: list[str]) -> str:
    analytic_ok = bool(c.frames["CATM"]["analytic_matches_tally"].all())
    parts = [
        f"# CATM complexity: is Ω(CATM) = {STATED_MODEL}?",
        "",
        "## Verdict in plain words",
        "",
        c.plain,
        "",
        markdown_table(c.verdict),
        "",
        "## Least-squares fits on {b·HWC², b·HWC, b·C², HWC}",
        "",
        "Each row divides by the measured value before solving (relative residuals). `per_image_HWC` is the "
        "H·W·C coefficient of one image; `implied_b` solves 47 + 10b = per_image_HWC.",
        "",
        markdown_table(c.fit_frame, 4),
        "",
        f"## `--model {model.text}` against the measurements",
        "",
        markdown_table(c.comparison, 3),
        "",
        "## CATM operator terms",
        "",
        "Counted terms are fvcore's, per module. The uncounted ones are derived by hand from the forward pass "
        f"(`catm_uncounted`) and {'agree' if analytic_ok else 'DISAGREE'} with a dispatch-level tally at every "
        "grid point.",
        "",
        markdown_table(c.terms, 3),
        "",
        "## Cost vs tokens: CATM vs a standard MSA of the same width",
        "",
        "Least-squares exponents of log cost vs log tokens, over the whole range and over its upper half "
        "(tokens at or above the geometric middle), where the MSA's quadratic term dominates.",
        "",
        markdown_table(c.token_exponents, 3),
        "",
    ]
    if latency is not None:
        parts += [
            "## Latency vs tokens",
            "",
            "Median latency at batch 1; exponents as above, of log latency vs log tokens "
            "(`(fvcore count)` rows: fvcore GMACs instead of latency).",
            "",
            latency_words(latency.exponents),
            "",
            markdown_table(latency.exponents, 3),
            "",
        ]
    parts += ["## Notes", "", *[f"- {n}" for n in notes], ""]
    return "\n".join(parts)


def save(model: CostModel, c: Counts, latency: Latency | None, notes: list[str], out: Path) -> list[Path]:
    """CSV tables, ``summary.md`` and the plots; returns the paths written."""
    tables = {
        "grid_catm.csv": c.frames["CATM"],
        "grid_cas_block.csv": c.frames["CAS block"],
        "fits.csv": c.fit_frame,
        "model_comparison.csv": c.comparison,
        "operator_terms.csv": c.terms,
        "verdict.csv": c.verdict,
        "tokens.csv": c.tokens,
        "token_exponents.csv": c.token_exponents,
    }
    if latency is not None:
        tables["latency.csv"] = pd.concat([latency.mixers, latency.networks], ignore_index=True)
        tables["latency_exponents.csv"] = latency.exponents
    try:
        out.mkdir(parents=True, exist_ok=True)
        written = []
        for name, frame in tables.items():
            frame.to_csv(out / name, index=False)
            written.append(out / name)
        (out / "summary.md").write_text(_summary_markdown(model, c, latency, notes))
        written.append(out / "summary.md")
        written += plot_measured_vs_predicted(model, c.frames, c.fits, out)
        written += plot_cost_vs_tokens(c.tokens, c.token_exponents, out)
        written += plot_operator_terms(c.frames["CATM"], out)
        if latency is not None:
            written += plot_latency_vs_tokens(latency.mixers, latency.networks, latency.exponents, out)
    except OSError as exc:
        raise BenchError(f"cannot write to {out}: {exc.strerror or exc}") from None
    return written
