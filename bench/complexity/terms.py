"""Operator terms: classifying fvcore's per-module counts, and the elementwise ops and sigmoids that no
counter prices (analytic for the CATM, tallied at dispatch level for every mixer)."""

from __future__ import annotations

import math
from collections import Counter

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

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
