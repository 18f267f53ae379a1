"""MobileViTv2: separable self-attention for mobile vision transformers (Mehta & Rastegari, arXiv 2206.02680).

Written from the official ``apple/ml-cvnets`` code (commit 7771756, ``cvnets/models/classification/
mobilevit_v2.py``, ``cvnets/modules/mobilevit_block.py``, ``cvnets/modules/transformer.py``,
``cvnets/layers/linear_attention.py``) and checked against it and against timm's port, which holds the
checkpoints users download (``mobilevitv2_*.cvnets_in1k``). Module attribute names reproduce *timm's*
state-dict keys, so those checkpoints load as they are::

    stem.{conv,bn}                                      3x3 stride-2 conv + BN + SiLU (/2)
    stages.{0,1}.<i>.conv{1_1x1,2_kxk,3_1x1}.{conv,bn}  MobileNetV2 inverted residuals
    stages.{2,3,4}.0.<...>                              stride-2 inverted residual
    stages.{2,3,4}.1.<...>                              MobileViTv2 block: conv_kxk, conv_1x1,
                                                        transformer.<j>.{norm1,attn,norm2,mlp}, norm, conv_proj
    head.fc                                             global average pool + linear classifier

Checkpoints saved by ml-cvnets itself (``conv_1.block.conv``, ``layer_3.1.global_rep.0.pre_norm_attn...``)
are renamed on load by :func:`checkpoint_filter`.

Details kept from the official code, all of which change the numbers if done differently:

* the transformer's norm is ``GroupNorm(1, C)`` on ``[B, C, P, N]`` (one mean/variance over C, P and N
  per sample, per-channel affine), not a per-token LayerNorm;
* the attention applies ReLU to the values (and nothing to the keys), softmax over the patch axis N;
* activations are SiLU everywhere else; there is no skip around the MobileViTv2 block;
* if a block's input height or width is odd, it is first resized up to even size with bilinear
  interpolation (``align_corners=True``): at 224 input, ``stages.4`` sees 7x7 and runs on 8x8.

For export, unfold/fold (``F.unfold``/``F.fold`` in the official code; ``F.fold`` needs ONNX opset 18)
are written as reshape + permute with the same patch ordering. Dropout (0 in every official config) is
left out, and the official network has no stochastic depth, so neither appears here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from models.errors import ModelError
from models.registry import Family, ModelCard, Preprocessing, register_family, register_model

FAMILY = register_family(
    Family(
        id="mobilevitv2",
        label="MobileViTv2",
        color="#0072B2",
        marker="o",
        counting_rule="fvcore",
        paper_variants=("mobilevitv2_100",),
        linestyle=":",
        distillation="",
        distillation_source="ml-cvnets trains MobileViTv2 on ImageNet-1k labels only (no teacher)",
        sized_variants=("mobilevitv2_075", "mobilevitv2_100", "mobilevitv2_150", "mobilevitv2_200"),
        sized_reason="the width multipliers nearest each CAS-ViT size by params: 0.75 (2.9 M) by XS, 1.0 (4.9 M) "
        "by S, 1.5 (10.6 M) by M, 2.0 (18.4 M) by T; they run at 256 px, so their GMACs are higher",
        preprocessing=Preprocessing(
            resize=288,
            crop=256,
            mean=None,
            std=None,
            source="ml-cvnets config/classification/imagenet/mobilevit_v2.yaml: resize 288 (bicubic), "
            "center crop 256, RGB in [0, 1] without mean/std",
        ),
    )
)

__all__ = [
    "ConvNormAct",
    "InvertedResidual",
    "LinearSelfAttention",
    "LinearTransformerBlock",
    "MobileViTv2",
    "MobileViTv2Block",
    "checkpoint_filter",
    "fold_patches",
    "unfold_patches",
]

_CITATION = "Mehta & Rastegari, Separable Self-attention for Mobile Vision Transformers, TMLR 2023, arXiv:2206.02680"
_TOP1_SOURCE = "ml-cvnets model zoo (README-model-zoo.md), ImageNet-1k only, trained and evaluated at 256x256"


def _make_divisible(value: float, divisor: int, min_value: int | None = None) -> int:
    """The TensorFlow MobileNet rounding that ml-cvnets' width formulas use.

    Round to the nearest multiple of ``divisor`` (at least ``min_value``), then add one ``divisor`` if
    that lost more than 10 %.
    """
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return int(rounded)


# ---------------------------------------------------------------------------------------------------------
# Building blocks
# ---------------------------------------------------------------------------------------------------------


def unfold_patches(x: torch.Tensor, patch: int) -> torch.Tensor:
    """``[B, C, H, W]`` -> ``[B, C, P, N]``, the same layout as ``F.unfold(kernel=stride=patch)``.

    P indexes the pixel inside a patch (row-major), N the patches (raster order). Written as
    reshape + permute so it exports everywhere (no im2col); H and W must be multiples of ``patch``.
    """
    b, c, h, w = x.shape
    nh, nw = h // patch, w // patch
    x = x.reshape(b, c, nh, patch, nw, patch).permute(0, 1, 3, 5, 2, 4)
    return x.reshape(b, c, patch * patch, nh * nw)


def fold_patches(x: torch.Tensor, patch: int, nh: int, nw: int) -> torch.Tensor:
    """Inverse of :func:`unfold_patches`: ``[B, C, P, N]`` -> ``[B, C, nh * patch, nw * patch]`` (``F.fold``)."""
    b, c = x.shape[0], x.shape[1]
    x = x.reshape(b, c, patch, patch, nh, nw).permute(0, 1, 4, 2, 5, 3)
    return x.reshape(b, c, nh * patch, nw * patch)


class ConvNormAct(nn.Module):
    """Bias-free conv + BatchNorm (+ SiLU): the official ``ConvLayer2d`` with norm.

    The ``conv``/``bn`` attribute names give timm's keys (``*.conv.weight``, ``*.bn.running_mean``).
    """

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        kernel_size: int = 1,
        stride: int = 1,
        groups: int = 1,
        act: bool = True,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_chs, out_chs, kernel_size, stride=stride, padding=kernel_size // 2, groups=groups, bias=False
        )
        self.bn = nn.BatchNorm2d(out_chs)
        self.act = nn.SiLU() if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand (SiLU) -> 3x3 depthwise (SiLU) -> 1x1 project (linear).

    The hidden width is ``make_divisible(round(in * expand), 8)`` and the residual is used only when the
    stride is 1 and the widths match (in this network: the second block of ``stages.1``).
    """

    def __init__(self, in_chs: int, out_chs: int, stride: int, expand_ratio: float = 2.0) -> None:
        super().__init__()
        hidden = _make_divisible(round(in_chs * expand_ratio), 8)
        self.conv1_1x1 = ConvNormAct(in_chs, hidden, 1)
        self.conv2_kxk = ConvNormAct(hidden, hidden, 3, stride=stride, groups=hidden)
        self.conv3_1x1 = ConvNormAct(hidden, out_chs, 1, act=False)
        self.has_skip = stride == 1 and in_chs == out_chs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv3_1x1(self.conv2_kxk(self.conv1_1x1(x)))
        return x + out if self.has_skip else out


class LinearSelfAttention(nn.Module):
    """Separable self-attention on unfolded patches ``[B, d, P, N]`` (linear in the number of patches N).

    One 1x1 conv gives a 1-channel query, d keys and d values. The query's softmax over N weights the keys
    into one context vector per pixel position P; ``ReLU(values)`` are scaled by it and projected. Only
    elementwise products and reductions: no matmul, and no mixing across the batch.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.qkv_proj = nn.Conv2d(dim, 1 + 2 * dim, kernel_size=1, bias=True)
        self.out_proj = nn.Conv2d(dim, dim, kernel_size=1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        query, key, value = self.qkv_proj(x).split([1, self.dim, self.dim], dim=1)
        scores = F.softmax(query, dim=-1)  # [B, 1, P, N]
        context = (key * scores).sum(dim=-1, keepdim=True)  # [B, d, P, 1]
        # plain broadcasting (the official code's expand_as gives identical values) lets LiteRT convert
        return self.out_proj(F.relu(value) * context)


class ConvMlp(nn.Module):
    """Pointwise-conv FFN (d -> hidden -> d, biases, SiLU), applied on ``[B, d, P, N]`` without transposes."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(dim, hidden, kernel_size=1, bias=True)
        self.act = nn.SiLU()
        self.fc2 = nn.Conv2d(hidden, dim, kernel_size=1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class LinearTransformerBlock(nn.Module):
    """Pre-norm transformer layer (official ``LinearAttnFFN``): ``x + attn(GN(x))``, then ``x + mlp(GN(x))``.

    ``GroupNorm(1, d)`` is the official ``layer_norm_2d``; eps 1e-5. It exports to ONNX as
    InstanceNormalization (opset < 21) or GroupNormalization-21, both of which ONNX Runtime runs exactly.
    """

    def __init__(self, dim: int, mlp_hidden: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(1, dim)
        self.attn = LinearSelfAttention(dim)
        self.norm2 = nn.GroupNorm(1, dim)
        self.mlp = ConvMlp(dim, mlp_hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class MobileViTv2Block(nn.Module):
    """Local 3x3 depthwise conv, global separable attention over 2x2-patch pixels, 1x1 projection back.

    ``[B, C, H, W]`` -> (resize to even H, W if needed) -> DW3x3-BN-SiLU -> 1x1 C->d (no bias, no norm)
    -> unfold to ``[B, d, P=4, N=HW/4]`` -> transformer layers -> GroupNorm -> fold -> 1x1 d->C + BN.
    The output replaces the input: unlike MobileViT v1 there is no concatenation or residual.
    """

    def __init__(self, channels: int, dim: int, depth: int, patch_size: int = 2) -> None:
        super().__init__()
        self.patch_size = patch_size
        mlp_hidden = int(2 * dim // 16 * 16)  # official: FFN width 2d, rounded down to a multiple of 16
        self.conv_kxk = ConvNormAct(channels, channels, 3, groups=channels)
        self.conv_1x1 = nn.Conv2d(channels, dim, kernel_size=1, bias=False)
        self.transformer = nn.Sequential(*[LinearTransformerBlock(dim, mlp_hidden) for _ in range(depth)])
        self.norm = nn.GroupNorm(1, dim)
        self.conv_proj = ConvNormAct(dim, channels, 1, act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.patch_size
        h, w = x.shape[-2:]
        # Round up with non-negative operands only: traced into ONNX, ``//`` becomes a truncating Div,
        # so the ``-(-h // p)`` ceiling idiom would round 7 down to 6.
        new_h, new_w = (h + p - 1) // p * p, (w + p - 1) // p * p
        if new_h != h or new_w != w:
            # Official behaviour for sizes not divisible by the patch: upsample, never resize back.
            x = F.interpolate(x, size=(new_h, new_w), mode="bilinear", align_corners=True)
        x = self.conv_1x1(self.conv_kxk(x))
        x = self.norm(self.transformer(unfold_patches(x, p)))
        return self.conv_proj(fold_patches(x, p, new_h // p, new_w // p))


class ClassifierHead(nn.Module):
    """Global average pool then ``fc`` (timm's ``head.fc`` key; the official ``classifier.1``)."""

    def __init__(self, in_features: int, num_classes: int) -> None:
        super().__init__()
        self.fc = nn.Linear(in_features, num_classes) if num_classes > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.mean(dim=(2, 3)))


# ---------------------------------------------------------------------------------------------------------
# Network
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Widths:
    """Channel widths for a width multiplier, from ml-cvnets' ``config/mobilevit_v2.py`` formulas."""

    stem: int
    stages: tuple[int, int, int, int, int]
    attn_dims: tuple[int, int, int]

    @classmethod
    def for_multiplier(cls, alpha: float) -> _Widths:
        stem = _make_divisible(min(64.0, max(16.0, 32 * alpha)), 8, min_value=16)
        c1 = _make_divisible(64 * alpha, 16)
        c2, c3, c4, c5 = (_make_divisible(c * alpha, 8) for c in (128, 256, 384, 512))
        d3, d4, d5 = (_make_divisible(c * alpha, 8) for c in (128, 192, 256))
        return cls(stem, (c1, c2, c3, c4, c5), (d3, d4, d5))


class MobileViTv2(nn.Module):
    """MobileViTv2 with width multiplier ``alpha`` (depths are the same for every width).

    stem /2 -> stages.0: 1 IR -> stages.1: 2 IR (/4) -> stages.2..4: stride-2 IR + MobileViTv2 block with
    2, 4 and 3 attention layers (/8, /16, /32) -> average pool -> linear. All IRs expand by 2.
    """

    ATTN_DEPTHS = (2, 4, 3)

    def __init__(self, alpha: float = 1.0, num_classes: int = 1000) -> None:
        super().__init__()
        widths = _Widths.for_multiplier(alpha)
        c1, c2, c3, c4, c5 = widths.stages
        self.num_features = c5
        self.stem = ConvNormAct(3, widths.stem, 3, stride=2)
        stages: list[nn.Sequential] = [
            nn.Sequential(InvertedResidual(widths.stem, c1, stride=1)),
            nn.Sequential(InvertedResidual(c1, c2, stride=2), InvertedResidual(c2, c2, stride=1)),
        ]
        in_chs = c2
        for out_chs, dim, depth in zip((c3, c4, c5), widths.attn_dims, self.ATTN_DEPTHS, strict=True):
            attn_block = MobileViTv2Block(out_chs, dim, depth)
            stages.append(nn.Sequential(InvertedResidual(in_chs, out_chs, stride=2), attn_block))
            in_chs = out_chs
        self.stages = nn.Sequential(*stages)
        self.head = ClassifierHead(c5, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))


# ---------------------------------------------------------------------------------------------------------
# Checkpoint names: ml-cvnets -> timm (ours)
# ---------------------------------------------------------------------------------------------------------

_IR_PARTS = {"exp_1x1": "conv1_1x1", "conv_3x3": "conv2_kxk", "red_1x1": "conv3_1x1"}
_CVNETS_RULES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), replacement)
    for pattern, replacement in (
        (r"^conv_1\.block\.conv\.", "stem.conv."),
        (r"^conv_1\.block\.norm\.", "stem.bn."),
        (r"^classifier\.1\.", "head.fc."),
        (r"\.block\.(exp_1x1|conv_3x3|red_1x1)\.block\.conv\.", r".\1.conv."),
        (r"\.block\.(exp_1x1|conv_3x3|red_1x1)\.block\.norm\.", r".\1.bn."),
        (r"\.local_rep\.0\.block\.conv\.", ".conv_kxk.conv."),
        (r"\.local_rep\.0\.block\.norm\.", ".conv_kxk.bn."),
        (r"\.local_rep\.1\.block\.conv\.", ".conv_1x1."),
        (r"\.global_rep\.(\d+)\.pre_norm_attn\.0\.", r".transformer.\1.norm1."),
        (
            r"\.global_rep\.(\d+)\.pre_norm_attn\.1\.(qkv_proj|out_proj)\.block\.conv\.",
            r".transformer.\1.attn.\2.",
        ),
        (r"\.global_rep\.(\d+)\.pre_norm_ffn\.0\.", r".transformer.\1.norm2."),
        (r"\.global_rep\.(\d+)\.pre_norm_ffn\.1\.block\.conv\.", r".transformer.\1.mlp.fc1."),
        (r"\.global_rep\.(\d+)\.pre_norm_ffn\.3\.block\.conv\.", r".transformer.\1.mlp.fc2."),
        (r"\.global_rep\.\d+\.(weight|bias)$", r".norm.\1"),  # the GroupNorm after the last layer
        (r"\.conv_proj\.block\.conv\.", ".conv_proj.conv."),
        (r"\.conv_proj\.block\.norm\.", ".conv_proj.bn."),
    )
)


def _cvnets_to_timm(key: str) -> str:
    stage = re.match(r"^layer_(\d)\.", key)
    if stage:
        key = f"stages.{int(stage.group(1)) - 1}.{key[stage.end() :]}"
    for pattern, replacement in _CVNETS_RULES:
        key = pattern.sub(replacement, key)
    for official, ours in _IR_PARTS.items():
        key = key.replace(f".{official}.", f".{ours}.")
    return key


def checkpoint_filter(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Accept timm checkpoints as they are and ml-cvnets ones after renaming.

    BatchNorm ``num_batches_tracked`` counters (unused in eval) are filled in as 0 where a converted
    checkpoint dropped them, so strict loading only fails on real mismatches.
    """
    if any(k.startswith(("conv_1.", "layer_1.", "classifier.")) for k in state):
        state = {_cvnets_to_timm(k): v for k, v in state.items()}
    else:
        state = dict(state)
    for key in [k for k in state if k.endswith(".running_mean")]:
        counter = key.removesuffix("running_mean") + "num_batches_tracked"
        state.setdefault(counter, torch.tensor(0, dtype=torch.long))
    return state


# ---------------------------------------------------------------------------------------------------------
# Variants
# ---------------------------------------------------------------------------------------------------------

# width multiplier -> (published params in M, ImageNet-1k top-1 at 256), both from the ml-cvnets model zoo.
_ZOO: dict[str, tuple[float, float]] = {
    "0.5": (1.4, 70.18),
    "0.75": (2.9, 75.56),
    "1.0": (4.9, 78.09),
    "1.25": (7.5, 79.65),
    "1.5": (10.6, 80.38),
    "1.75": (14.3, 80.84),
    "2.0": (18.4, 81.17),
}


def _card(variant: str) -> ModelCard:
    params_m, top1 = _ZOO[variant]
    return ModelCard(
        name=f"mobilevitv2_{round(float(variant) * 100):03d}",
        family="mobilevitv2",
        variant=variant,
        default_resolution=256,
        published_params_m=params_m,
        published_gmacs=None,  # the paper's FLOPs could not be verified (see the baselines notes)
        top1=top1,
        top1_source=_TOP1_SOURCE,
        citation=_CITATION,
        fixed_resolution=False,
        default_distillation=False,
    )


def _build(variant: str, distillation: bool, num_classes: int) -> MobileViTv2:
    if distillation:
        raise ModelError(
            f"mobilevitv2 ({variant}) has no distillation head: it was trained without one; "
            "use distillation=False (the default)"
        )
    return MobileViTv2(alpha=float(variant), num_classes=num_classes)


@register_model(_card("0.5"), checkpoint_filter=checkpoint_filter)
def mobilevitv2_050(*, distillation: bool, num_classes: int, img_size: int) -> nn.Module:
    return _build("0.5", distillation, num_classes)


@register_model(_card("0.75"), checkpoint_filter=checkpoint_filter)
def mobilevitv2_075(*, distillation: bool, num_classes: int, img_size: int) -> nn.Module:
    return _build("0.75", distillation, num_classes)


@register_model(_card("1.0"), checkpoint_filter=checkpoint_filter)
def mobilevitv2_100(*, distillation: bool, num_classes: int, img_size: int) -> nn.Module:
    return _build("1.0", distillation, num_classes)


@register_model(_card("1.25"), checkpoint_filter=checkpoint_filter)
def mobilevitv2_125(*, distillation: bool, num_classes: int, img_size: int) -> nn.Module:
    return _build("1.25", distillation, num_classes)


@register_model(_card("1.5"), checkpoint_filter=checkpoint_filter)
def mobilevitv2_150(*, distillation: bool, num_classes: int, img_size: int) -> nn.Module:
    return _build("1.5", distillation, num_classes)


@register_model(_card("1.75"), checkpoint_filter=checkpoint_filter)
def mobilevitv2_175(*, distillation: bool, num_classes: int, img_size: int) -> nn.Module:
    return _build("1.75", distillation, num_classes)


@register_model(_card("2.0"), checkpoint_filter=checkpoint_filter)
def mobilevitv2_200(*, distillation: bool, num_classes: int, img_size: int) -> nn.Module:
    return _build("2.0", distillation, num_classes)
