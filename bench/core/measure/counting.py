"""``bench flops``: multiply-accumulate counts with two independent counters, beside the published numbers.

Unit: **GMACs**, one fused multiply-add = 1 (what fvcore, timm and the papers' "FLOPs" columns count).

* fvcore ``FlopCountAnalysis`` traces the model with TorchScript and prices a fixed list of aten ops:
  convolutions and matrix products by their multiply-adds, eval BatchNorm at 2 per element (1 without an
  affine), Layer/GroupNorm at 5 per element, adaptive average pooling at 1 per input element, bilinear
  upsampling at 4 per output element. Every other op (add, mul, sigmoid, GELU, softmax, ...) counts 0
  and is reported as "uncounted" with its number of occurrences.
* ``torch.utils.flop_counter.FlopCounterMode`` intercepts dispatched aten ops (no tracing) and prices only
  convolutions, matrix products and attention kernels, at 2 FLOPs per multiply-add. It is converted here
  to MACs (halved), so what remains between the two is a *counting rule*, shown per operator category:
  the normalisations, poolings and resamplings that only fvcore prices.
* Each family's published GMACs were produced by a known tool (thop for CAS-ViT, EfficientFormer's own
  ``toolbox.py`` hooks, fvcore for MobileViTv2). Those rules are re-applied on the same fvcore trace by
  swapping op handles, so a gap between our fvcore count and a published number is explained, not guessed.

Counts are taken at ``--batch-size`` and reported per image. The engine fills its ``infer_gmacs`` column
with :func:`fvcore_gmacs` (batch 1, like timm).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import math
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch
from fvcore.nn import FlopCountAnalysis
from fvcore.nn.flop_count import _DEFAULT_SUPPORTED_OPS
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import models
from bench.core.errors import BenchError
from bench.core.util import atomic_write_text, quiet, read_own_document

GIGA = 1e9

# Operator categories shared by both counters, so that their totals can be compared term by term.
# Keys: fvcore's operator names (aten op without namespace) and FlopCounterMode's overload packets.
_CATEGORY_OF_OP = {
    "conv": "conv",
    "convolution": "conv",
    "_convolution": "conv",
    "linear": "matmul",
    "matmul": "matmul",
    "mm": "matmul",
    "addmm": "matmul",
    "bmm": "matmul",
    "baddbmm": "matmul",
    "einsum": "matmul",
    "batch_norm": "norm",
    "group_norm": "norm",
    "layer_norm": "norm",
    "instance_norm": "norm",
    "adaptive_avg_pool2d": "pool",
    "upsample_nearest2d": "resample",
    "upsample_bilinear2d": "resample",
    "grid_sampler": "resample",
}

# Why the counters may disagree on a category (printed beside each non-zero difference).
_CATEGORY_NOTE = {
    "conv": "both count kernel multiply-adds, neither counts the bias",
    "matmul": "both count multiply-adds of linear/mm/bmm/einsum, no bias",
    "attention": "fused scaled_dot_product_attention: FlopCounterMode prices it, fvcore does not",
    "norm": "fvcore: eval BatchNorm 2/elem (1 without affine), Layer/GroupNorm 5/elem; FlopCounterMode: 0",
    "pool": "fvcore: adaptive_avg_pool2d 1 per input element; FlopCounterMode: 0",
    "resample": "fvcore: bilinear upsample 4 per output element, nearest 1; FlopCounterMode: 0",
    "other": "operators outside both counters' tables",
}


def op_category(op_name: str) -> str:
    """Category of an operator name from either counter (``aten.convolution``, ``conv``, ``aten::mm``)."""
    short = op_name.replace("aten::", "").replace("aten.", "").split(".")[0]
    if "scaled_dot_product" in short or "flash_attention" in short or "efficient_attention" in short:
        return "attention"
    return _CATEGORY_OF_OP.get(short, "other")


# ---------------------------------------------------------------------------------------------------------
# The counting rules the papers used, re-applied as fvcore op handles
# ---------------------------------------------------------------------------------------------------------
# fvcore calls a handle with the TorchScript input and output values of one op and adds what it returns.
# A rule is a set of replacement handles; every op it does not mention is priced as fvcore prices it.

Handle = Callable[[list, list], float]


def _shape(value) -> list[int]:  # a jit Value of tensor type
    return value.type().sizes()


def _numel(value) -> int:
    return math.prod(_shape(value))


def _int_list(value) -> list[int]:
    """An ``int[]`` argument of a traced op: a constant, or a ``prim::ListConstruct`` of constants."""
    constant = value.toIValue()
    if constant is not None:
        return list(constant)
    return [v.toIValue() for v in value.node().inputs()]


def _not_counted(inputs, outputs) -> float:
    """Prices an op at 0. (fvcore's ``set_op_handle(name, None)`` leaves a default handle in place.)"""
    return 0


def _thop_batch_norm(inputs, outputs) -> float:
    """thop >= 0.1: 2 ops per element, doubled when the norm has an affine (weight is not None)."""
    affine = inputs[1].type().kind() != "NoneType"
    return _numel(inputs[0]) * (4 if affine else 2)


def _thop_adaptive_avg_pool(inputs, outputs) -> float:
    """thop: (pooled window area + 1) per output element."""
    window = _numel(inputs[0]) / _numel(outputs[0])
    return (window + 1) * _numel(outputs[0])


def _toolbox_gelu(inputs, outputs) -> float:
    """EfficientFormer ``toolbox.py`` GELU hook: ``size(1) * size(2)`` of the output, both for 3-D tokens
    and (a bug the published numbers carry) for 4-D maps, where it leaves out the width."""
    shape = _shape(outputs[0])
    return shape[1] * shape[2]


def _toolbox_layer_norm(inputs, outputs) -> float:
    shape = _shape(inputs[0])
    return 2 * shape[1] * shape[2]


def _toolbox_avg_pool(inputs, outputs) -> float:
    kernel = _int_list(inputs[1])
    return _numel(outputs[0]) * math.prod(kernel if len(kernel) == 2 else kernel * 2)


@dataclass(frozen=True)
class CountingRule:
    """How a family's published GMACs were counted, as changes to fvcore's default op handles."""

    name: str
    handles: dict[str, Handle]
    source: str


FVCORE_RULE = CountingRule("fvcore", {}, "fvcore FlopCountAnalysis defaults")
THOP_RULE = CountingRule(
    "thop 0.1.1",
    {"aten::batch_norm": _thop_batch_norm, "aten::adaptive_avg_pool2d": _thop_adaptive_avg_pool},
    "CAS-ViT rcvit.py __main__ runs thop.profile at 224: BN 4/elem, pooling window+1 (casvit.md §3.4)",
)
TOOLBOX_RULE = CountingRule(
    "EfficientFormer toolbox.py",
    {
        "aten::batch_norm": _not_counted,
        "aten::upsample_bilinear2d": _not_counted,
        "aten::adaptive_avg_pool2d": _not_counted,
        "aten::layer_norm": _toolbox_layer_norm,
        "aten::gelu": _toolbox_gelu,
        "aten::avg_pool2d": _toolbox_avg_pool,
    },
    "snap-research/EfficientFormer toolbox.py hooks: conv, linear, attention matmuls, GELU, LN 2/elem, "
    "avg-pool k^2; BN not counted",
)
UNSTATED_RULE = CountingRule(
    "not stated (fvcore assumed)",
    {},
    "SwiftFormer does not say how it counted; timm's fvcore count rounds to its published numbers",
)
RULES = {"fvcore": FVCORE_RULE, "thop": THOP_RULE, "toolbox": TOOLBOX_RULE, "unstated": UNSTATED_RULE}
"""A family's ``counting_rule`` (declared with the family in ``models/``) -> how to re-apply it."""


def family_rule(family_id: str) -> CountingRule:
    rule = models.get_family(family_id).counting_rule
    if rule not in RULES:
        known = ", ".join(RULES)
        raise BenchError(f"family {family_id!r} declares an unknown counting rule {rule!r}; known: {known}")
    return RULES[rule]


@dataclass
class RuleTally:
    """What :func:`dual_rule_handles` collects while fvcore traces."""

    delta: float = 0.0
    """rule count minus fvcore count, summed over the ops the rule re-prices."""
    uncounted: Counter = field(default_factory=Counter)
    """ops the rule prices but fvcore does not (they no longer appear in fvcore's unsupported list)."""


def dual_rule_handles(rule: CountingRule, tally: RuleTally) -> dict[str, Handle]:
    """Handles that return fvcore's own price and add ``rule``'s difference to ``tally``: one trace gives
    both the fvcore count and the rule's count."""

    def wrap(op: str, rule_handle: Handle) -> Handle:
        default = _DEFAULT_SUPPORTED_OPS.get(op)

        def handle(inputs, outputs) -> float:
            base = default(inputs, outputs) if default else 0
            if default is None:
                tally.uncounted[op] += 1
            tally.delta += rule_handle(inputs, outputs) - base
            return base

        return handle

    return {op: wrap(op, h) for op, h in rule.handles.items()}


def published_decimals(value: float) -> int:
    """Digits after the point the card quotes (0.56 -> 2): the rounding a match must be judged by."""
    text = repr(float(value))
    return len(text.split(".")[1]) if "." in text else 0


# ---------------------------------------------------------------------------------------------------------
# Counting
# ---------------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """FLOPs are inference counts: BatchNorm is priced differently in training mode."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def _example_input(model: nn.Module, shape: tuple[int, ...]) -> torch.Tensor:
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    return torch.zeros(shape, device=device, dtype=dtype)


def fvcore_analysis(model: nn.Module, inputs: torch.Tensor | tuple[torch.Tensor, ...]) -> FlopCountAnalysis:
    """A silenced fvcore analysis of ``model`` on ``inputs``; the trace runs on first use (``.total()``).

    Call it inside ``torch.no_grad()`` and on an eval-mode model (see :func:`fvcore_gmacs`).
    """
    analysis = FlopCountAnalysis(model, inputs)
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    analysis.tracer_warnings("none")
    return analysis


def fvcore_gmacs(model: nn.Module, resolution: int) -> float:
    """fvcore GMACs of one ``3 x resolution x resolution`` image (batch 1), as timm's ``infer_gmacs``.

    Counted afresh: the trace executes one forward pass; :func:`cached_gmacs` is the suite's one cache.
    """
    x = _example_input(model, (1, 3, resolution, resolution))
    with quiet("fvcore"), _eval_mode(model), torch.no_grad():
        return fvcore_analysis(model, x).total() / GIGA


GMACS_CACHE_FILE = "gmacs.json"


def cached_gmacs(model: nn.Module, resolution: int, cache_dir: Path) -> float:
    """:func:`fvcore_gmacs` rounded to 4 decimals, cached in ``cache_dir`` by architecture and size: the
    one GMACs cache (``bench run``, ``bench complexity``), shared across runs and processes.

    Each entry carries a checksum of its key and value, so an edited or foreign entry (or a file that
    is not a JSON object) is recounted and rewritten rather than used. A cache that cannot be written
    costs the caching, not the count (a warning says so).
    """
    cache = Path(cache_dir) / GMACS_CACHE_FILE
    key = hashlib.sha1(f"{model!r}|{resolution}".encode()).hexdigest()[:16]
    known = read_own_document(cache)  # None when missing, damaged or not a regular file: recounted, rewritten
    known = {k: v for k, v in known.items() if _valid_gmacs(k, v)} if isinstance(known, dict) else {}
    if key in known:
        return known[key]["gmacs"]
    gmacs = float(round(fvcore_gmacs(model, resolution), 4))
    known[key] = {"gmacs": gmacs, "check": _check(key, {"gmacs": gmacs})}
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(cache, json.dumps(known, indent=0, sort_keys=True))
    except OSError as exc:
        print(f"warning: cannot update the GMACs cache {cache} ({exc.strerror or exc}); not cached", file=sys.stderr)
    return gmacs


def _valid_gmacs(key: str, entry: object) -> bool:
    """A cache entry as :func:`cached_gmacs` writes it: a finite, non-negative float under its checksum."""
    if not isinstance(entry, dict):
        return False
    value = entry.get("gmacs")
    return type(value) is float and math.isfinite(value) and value >= 0 and entry.get("check") == _check(key, entry)


def _check(key: str, entry: dict) -> str:
    return hashlib.sha1(f"{key}:{entry.get('gmacs')!r}".encode()).hexdigest()[:12]


def rule_gmacs(model: nn.Module, resolution: int, rule: CountingRule) -> float:
    """GMACs of one image under ``rule``, at batch 1 as every original tool ran."""
    if not rule.handles:
        return fvcore_gmacs(model, resolution)
    x = _example_input(model, (1, 3, resolution, resolution))
    with quiet("fvcore"), _eval_mode(model), torch.no_grad():
        analysis = fvcore_analysis(model, x)
        analysis.set_op_handle(**rule.handles)
        return analysis.total() / GIGA


def flopcounter_macs(model: nn.Module, x: torch.Tensor) -> dict[str, Counter[str]]:
    """MACs per called module and aten op from ``FlopCounterMode`` (its FLOPs halved); ``""`` = whole model.

    Runs on a meta-device copy when the model allows it (shapes only, no arithmetic), else on ``x``.
    Containers that are never called (``nn.ModuleList``) do not appear; see :func:`module_totals`.
    """
    counter = FlopCounterMode(display=False, depth=1_000)
    try:
        meta = copy.deepcopy(model).to("meta")
        with _eval_mode(meta), torch.no_grad(), counter:
            meta(x.to("meta"))
    except (RuntimeError, NotImplementedError, TypeError):
        counter = FlopCounterMode(display=False, depth=1_000)
        with _eval_mode(model), torch.no_grad(), counter:
            model(x)
    root = type(model).__name__
    out: dict[str, Counter[str]] = {}
    for scope, ops in counter.get_flop_counts().items():
        if scope == root:
            continue  # same as "Global"
        name = "" if scope == "Global" else scope.removeprefix(root + ".")
        out[name] = Counter({str(op).replace("aten.", ""): flops / 2 for op, flops in ops.items()})
    out.setdefault("", Counter())
    return out


def module_totals(scoped: dict[str, float], names: list[str]) -> dict[str, float]:
    """Total of each module in ``names`` from nested per-scope totals (a scope includes its children).

    A module that was never called itself (a ``ModuleList`` of stages) is the sum of its outermost
    called descendants.
    """
    out = {}
    for name in names:
        if name in scoped:
            out[name] = scoped[name]
            continue
        inside = [s for s in scoped if s.startswith(f"{name}.")]
        outermost = [s for s in inside if not any(s.startswith(f"{o}.") for o in inside if o != s)]
        out[name] = sum(scoped[s] for s in outermost)
    return out


def count_parameters(model: nn.Module) -> int:
    """Every parameter of the network, trainable or frozen (buffers such as BatchNorm statistics are not
    parameters): the size of what is deployed, as papers report it. ``run`` and ``flops`` both use this."""
    return sum(p.numel() for p in model.parameters())


@dataclass
class FlopReport:
    """Both counters' results for one model at one input shape. All MACs are per image."""

    model: str
    resolution: int
    batch_size: int
    params: int
    fvcore_macs: float
    flopcounter_macs: float
    fvcore_by_op: dict[str, float]
    flopcounter_by_op: dict[str, float]
    fvcore_by_module: dict[str, float]
    flopcounter_by_module: dict[str, float]
    uncounted: dict[str, int]
    """aten ops fvcore met but priced 0, with how many times they occurred in the trace."""
    published_gmacs: float | None = None
    published_resolution: int | None = None
    rule: CountingRule | None = None
    """The family's published counting rule; ``rule_macs`` re-counts with it to explain the published value."""
    rule_macs: float | None = None

    def by_category(self) -> pd.DataFrame:
        """fvcore vs FlopCounterMode GMACs per operator category, with the rule that explains any gap."""
        fv: Counter = Counter()
        fc: Counter = Counter()
        for op, macs in self.fvcore_by_op.items():
            fv[op_category(op)] += macs
        for op, macs in self.flopcounter_by_op.items():
            fc[op_category(op)] += macs
        rows = []
        for cat in sorted(set(fv) | set(fc)):
            delta = fv[cat] - fc[cat]
            rows.append(
                {
                    "model": self.model,
                    "category": cat,
                    "fvcore_gmacs": fv[cat] / GIGA,
                    "flopcounter_gmacs": fc[cat] / GIGA,
                    "difference_gmacs": delta / GIGA,
                    "why": _CATEGORY_NOTE[cat] if abs(delta) > 0.5 else "identical",
                }
            )
        return pd.DataFrame(rows)

    def difference_explained(self) -> str:
        """One line: the fvcore - FlopCounterMode gap split by category (e.g. ``norm +0.0113``)."""
        cats = self.by_category()
        parts = [f"{r.category} {r.difference_gmacs:+.4f}" for r in cats.itertuples() if abs(r.difference_gmacs) > 5e-5]
        return ", ".join(parts) if parts else "none"


def _per_image(counts: Counter[str] | dict[str, float], batch: int) -> dict[str, float]:
    return {k: float(v) / batch for k, v in counts.items()}


def count_model(
    model: nn.Module,
    name: str,
    resolution: int,
    batch_size: int = 1,
    depth: int = 2,
    rule: CountingRule = FVCORE_RULE,
) -> FlopReport:
    """Count ``model`` (already built for ``resolution``) with both counters and with ``rule``.

    One fvcore trace serves the fvcore count and, at batch 1, the rule's count (rules such as the
    EfficientFormer toolbox's GELU price are only defined per image; other batches re-trace at 1).
    """
    x = _example_input(model, (batch_size, 3, resolution, resolution))
    tally = RuleTally()
    with quiet("fvcore"), _eval_mode(model), torch.no_grad():
        analysis = fvcore_analysis(model, x)
        if batch_size == 1:
            analysis.set_op_handle(**dual_rule_handles(rule, tally))
        total = analysis.total()
        by_op = dict(analysis.by_operator())
        by_module = {n: v for n, v in analysis.by_module().items() if n.count(".") < depth}
        uncounted = Counter(analysis.unsupported_ops()) + tally.uncounted
    rule_macs = total + tally.delta if batch_size == 1 else rule_gmacs(model, resolution, rule) * GIGA
    fc = flopcounter_macs(model, x)
    fc_scoped = {n: sum(ops.values()) / batch_size for n, ops in fc.items()}
    return FlopReport(
        model=name,
        resolution=resolution,
        batch_size=batch_size,
        params=count_parameters(model),
        fvcore_macs=total / batch_size,
        flopcounter_macs=sum(fc[""].values()) / batch_size,
        fvcore_by_op=_per_image({k: v for k, v in by_op.items() if v}, batch_size),
        flopcounter_by_op=_per_image(fc[""], batch_size),
        fvcore_by_module=_per_image(by_module, batch_size),
        flopcounter_by_module=module_totals(fc_scoped, list(by_module)),
        uncounted={op.replace("aten::", ""): n for op, n in sorted(uncounted.items())},
        rule=rule,
        rule_macs=rule_macs,
    )


def count_gmacs(
    model_name: str,
    resolution: int | None = None,
    batch_size: int = 1,
    depth: int = 2,
    distillation: bool | None = None,
) -> FlopReport:
    """Build zoo model ``model_name`` for ``resolution`` (default: its card's) and count it, with the
    published numbers and the family's published counting rule attached."""
    card = models.get_card(model_name)
    size = card.default_resolution if resolution is None else resolution
    model = models.create_model(model_name, img_size=size, distillation=distillation)
    rule = family_rule(card.family)
    report = count_model(model, model_name, size, batch_size, depth, rule)
    report.published_gmacs = card.published_gmacs
    report.published_resolution = card.default_resolution
    return report


# ---------------------------------------------------------------------------------------------------------
# Tables
