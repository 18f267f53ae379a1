"""Reference multi-head self-attention, the measuring stick for "quadratic in tokens", and the mixers
measured by name.

Operator terms: classifying fvcore's per-module counts, and the elementwise ops and sigmoids that no
counter prices (analytic for the CATM, tallied at dispatch level for every mixer).

Measuring one configuration (FlopCounterMode and the uncounted-op tally on meta tensors, fvcore and
thop's rules on real ones) and a whole b x H x C grid.

Cost vs tokens, CATM vs MSA: counts over square maps and log-log exponents.
"""

from __future__ import annotations

import contextlib
import itertools
import math
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from bench.commands.complexity.progress import step
from bench.core.measure import counting
from bench.core.util import quiet
from models.casvit import AdditiveBlock, AdditiveTokenMixer


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
    tally = counting.RuleTally()
    x = torch.zeros(b, module_width(module), h, h)
    with quiet("fvcore"), torch.no_grad():
        analysis = counting.fvcore_analysis(module, x)
        analysis.set_op_handle(**counting.dual_rule_handles(counting.THOP_RULE, tally))
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
    mixer: str, grid: Grid, fvcore_batches: Iterable[int] | None = None, analytic: bool = False, progress=None
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
                with step(progress, f"count {mixer} b={b} H={h} C={c}"):
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


def slope(tokens: np.ndarray, values: np.ndarray) -> float:
    """Least-squares exponent p of values ∝ tokens^p on log-log axes."""
    return float(np.polyfit(np.log(tokens), np.log(values), 1)[0])


def token_costs(width: int, sizes: list[int], fvcore_max: int, progress=None) -> pd.DataFrame:
    """CATM and MSA counts at one width over square maps: FlopCounterMode on meta tensors for every
    size, fvcore (which executes the module) up to ``fvcore_max``."""
    rows = []
    for mixer in ("CATM", "MSA"):
        module = MIXERS[mixer](width).eval()
        for h in sizes:
            with step(progress, f"count {mixer} tokens {h}x{h}"), single_threaded():
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
