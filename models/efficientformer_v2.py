"""EfficientFormerV2 (Li et al., ICCV 2023): S0, S1, S2 and L.

A 4-stage hierarchical network built only from BatchNorm'd convolutions plus multi-head attention
in the last blocks of stages 3 and 4, and an attention-assisted downsampling between them.

Written from the official ``snap-research/EfficientFormer`` ``models/efficientformer_v2.py``
(commit d01da426) and kept numerically identical to it in eval mode. Module attribute names
reproduce the official state-dict keys, so released checkpoints load after one filter step
(:func:`checkpoint_filter`) that drops the official ``attention_bias_idxs`` buffers: here those
index tables are non-persistent buffers computed at construction.

Export notes: the relative-position bias is gathered from its table on every forward call. The
official code caches it in a plain attribute (``self.ab``) when switching to eval mode, which goes
stale after ``load_state_dict`` and stays on the wrong device after ``.to()``; there is no such
cache here. Attention resolutions are fixed at construction from ``img_size`` (the official
``resolution`` argument), so a model only accepts the input size it was built for.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from models.errors import ModelError
from models.layers import ConvDownsample, DistilledClassifier, DropPath, conv_stem, drop_path_rates
from models.registry import Builder, Family, ModelCard, Preprocessing, register_family, register_model

FAMILY = register_family(
    Family(
        id="efficientformerv2",
        label="EfficientFormerV2",
        color="#CC79A7",
        marker="D",
        counting_rule="toolbox",
        paper_variants=("efficientformerv2_s1",),
        linestyle=(0, (5, 1, 1, 1, 1, 1)),
        distillation="hard",
        distillation_source="official EfficientFormer repo: trained with distillation (default hard, RegNetY-16GF)",
        sized_variants=("efficientformerv2_s0", "efficientformerv2_s1", "efficientformerv2_s2", "efficientformerv2_l"),
        sized_reason="one variant per CAS-ViT size: S0 (3.5 M) by XS, S1 (6.1 M) by S, S2 (12.6 M) by M, "
        "L (26.1 M) by T",
        preprocessing=Preprocessing(
            resize=256,
            crop=224,
            source="official util/datasets.py: Resize(int(224 / 0.875), bicubic), CenterCrop(224), ImageNet mean/std",
        ),
    )
)

__all__ = ["EfficientFormerV2", "checkpoint_filter"]

LAYER_SCALE_INIT = 1e-5
_INIT_STD = 0.02


# --------------------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------------------


def _conv_bn(in_chs: int, out_chs: int, kernel_size: int = 1, stride: int = 1, groups: int = 1) -> nn.Sequential:
    """Conv (with bias) then BN, as a Sequential so keys read ``<name>.0`` / ``<name>.1`` like upstream."""
    return nn.Sequential(
        nn.Conv2d(in_chs, out_chs, kernel_size, stride=stride, padding=kernel_size // 2, groups=groups),
        nn.BatchNorm2d(out_chs),
    )


def relative_bias_index(key_res: int, query_res: int, query_step: int) -> torch.Tensor:
    """Index table [query_res**2, key_res**2] into a bias table of ``key_res**2`` (|dy|, |dx|) offsets.

    Query ``(i, j)`` sits at key-grid position ``(query_step*i, query_step*j)``. The official code numbers
    offsets in first-seen order while scanning queries then keys row-major; since the first query is at
    the origin, that order is exactly ``|dy| * key_res + |dx|``, which is what is computed here.
    """
    q = torch.arange(query_res) * query_step
    k = torch.arange(key_res)
    dy = (q[:, None, None, None] - k[None, None, :, None]).abs()
    dx = (q[None, :, None, None] - k[None, None, None, :]).abs()
    return (dy * key_res + dx).reshape(query_res * query_res, key_res * key_res)


class ConvMlp(nn.Module):
    """1x1 expand + BN + GELU, depthwise 3x3 + BN + GELU, 1x1 project + BN (official ``Mlp(mid_conv=True)``).

    The single ``act`` module is applied twice, as upstream. Upstream's ``Dropout(0)`` is omitted.
    """

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(dim, hidden, 1)
        self.act = nn.GELU()
        self.fc2 = nn.Conv2d(hidden, dim, 1)
        for conv in (self.fc1, self.fc2):  # upstream initialises only fc1/fc2 this way, not ``mid``
            nn.init.trunc_normal_(conv.weight, std=_INIT_STD)
            nn.init.zeros_(conv.bias)
        self.mid = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.mid_norm = nn.BatchNorm2d(hidden)
        self.norm1 = nn.BatchNorm2d(hidden)
        self.norm2 = nn.BatchNorm2d(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.norm1(self.fc1(x)))
        x = self.act(self.mid_norm(self.mid(x)))
        return self.norm2(self.fc2(x))


class Attention2d(nn.Module):
    """Multi-head self-attention on an NCHW map (official ``Attention4D``).

    q/k/v are 1x1 conv+BN; a depthwise 3x3 conv+BN of v ("v_local") is added to the attention output;
    talking-head 1x1 convs mix the heads before and after the softmax. With ``stride`` (stage 3) the
    input is first reduced by a depthwise strided conv+BN and the output bilinearly upsampled back.
    """

    def __init__(
        self,
        dim: int,
        resolution: int,
        stride: int | None = None,
        key_dim: int = 32,
        num_heads: int = 8,
        attn_ratio: int = 4,
    ) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.scale = key_dim**-0.5
        self.val_dim = attn_ratio * key_dim
        self.val_total = self.val_dim * num_heads
        if stride is not None:
            self.resolution = math.ceil(resolution / stride)
            self.stride_conv: nn.Module | None = _conv_bn(dim, dim, 3, stride=stride, groups=dim)
            self.upsample: nn.Module | None = nn.Upsample(scale_factor=stride, mode="bilinear")
        else:
            self.resolution = resolution
            self.stride_conv = None
            self.upsample = None
        self.num_tokens = self.resolution**2

        qk_total = key_dim * num_heads
        self.q = _conv_bn(dim, qk_total)
        self.k = _conv_bn(dim, qk_total)
        self.v = _conv_bn(dim, self.val_total)
        self.v_local = _conv_bn(self.val_total, self.val_total, 3, groups=self.val_total)
        self.talking_head1 = nn.Conv2d(num_heads, num_heads, 1)
        self.talking_head2 = nn.Conv2d(num_heads, num_heads, 1)
        self.proj = nn.Sequential(nn.GELU(), *_conv_bn(self.val_total, dim))

        self.attention_biases = nn.Parameter(torch.zeros(num_heads, self.num_tokens))
        self.register_buffer(
            "attention_bias_idxs", relative_bias_index(self.resolution, self.resolution, 1), persistent=False
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride_conv is not None:
            x = self.stride_conv(x)
        h, n = self.num_heads, self.num_tokens
        q = self.q(x).reshape(-1, h, self.key_dim, n).transpose(2, 3)  # B, h, N, kd
        k = self.k(x).reshape(-1, h, self.key_dim, n)  # B, h, kd, N
        v = self.v(x)
        v_local = self.v_local(v)
        v = v.reshape(-1, h, self.val_dim, n).transpose(2, 3)  # B, h, N, d

        attn = (q @ k) * self.scale + self.attention_biases[:, self.attention_bias_idxs]
        attn = self.talking_head1(attn)
        attn = attn.softmax(dim=-1)
        attn = self.talking_head2(attn)

        out = (attn @ v).transpose(2, 3).reshape(-1, self.val_total, self.resolution, self.resolution)
        out = out + v_local
        if self.upsample is not None:
            out = self.upsample(out)
        return self.proj(out)


class LocalGlobalQuery(nn.Module):
    """Stride-2 queries: depthwise 3x3 s2 conv (no BN) + 1x1 average pool s2, summed, then 1x1 conv+BN.

    ``AvgPool2d(1, 2)`` is plain subsampling (``x[..., ::2, ::2]``); it is kept as the pooling op so the
    graph matches upstream.
    """

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.pool = nn.AvgPool2d(1, 2, 0)
        self.local = nn.Sequential(nn.Conv2d(in_dim, in_dim, 3, stride=2, padding=1, groups=in_dim))
        self.proj = _conv_bn(in_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.local(x) + self.pool(x))


class Attention2dDownsample(nn.Module):
    """Attention that halves the resolution (official ``Attention4DDownsample``), used between stages 3 and 4.

    Queries come from :class:`LocalGlobalQuery` on the half-size grid; keys and values from the full grid
    (49 x 196 at 224 input). No talking heads here. v_local is a depthwise 3x3 *stride-2* conv+BN.
    """

    def __init__(
        self,
        dim: int,
        out_dim: int,
        resolution: int,
        key_dim: int = 16,
        num_heads: int = 8,
        attn_ratio: int = 4,
    ) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.scale = key_dim**-0.5
        self.val_dim = attn_ratio * key_dim
        self.val_total = self.val_dim * num_heads
        self.resolution = resolution
        self.resolution2 = math.ceil(resolution / 2)
        self.num_keys = resolution**2
        self.num_queries = self.resolution2**2

        qk_total = key_dim * num_heads
        self.q = LocalGlobalQuery(dim, qk_total)
        self.k = _conv_bn(dim, qk_total)
        self.v = _conv_bn(dim, self.val_total)
        self.v_local = _conv_bn(self.val_total, self.val_total, 3, stride=2, groups=self.val_total)
        self.proj = nn.Sequential(nn.GELU(), *_conv_bn(self.val_total, out_dim))

        self.attention_biases = nn.Parameter(torch.zeros(num_heads, self.num_keys))
        query_step = math.ceil(resolution / self.resolution2)
        self.register_buffer(
            "attention_bias_idxs",
            relative_bias_index(resolution, self.resolution2, query_step),
            persistent=False,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.num_heads
        q = self.q(x).reshape(-1, h, self.key_dim, self.num_queries).transpose(2, 3)  # B, h, Nq, kd
        k = self.k(x).reshape(-1, h, self.key_dim, self.num_keys)  # B, h, kd, Nk
        v = self.v(x)
        v_local = self.v_local(v)
        v = v.reshape(-1, h, self.val_dim, self.num_keys).transpose(2, 3)  # B, h, Nk, d

        attn = (q @ k) * self.scale + self.attention_biases[:, self.attention_bias_idxs]
        attn = attn.softmax(dim=-1)
        out = (attn @ v).transpose(2, 3).reshape(-1, self.val_total, self.resolution2, self.resolution2)
        return self.proj(out + v_local)


class AttnDownsample(nn.Module):
    """Stage 3->4 downsampling: attention branch + (3x3 s2 conv + BN) branch (``Embedding(asub=True)``)."""

    def __init__(self, in_chs: int, out_chs: int, resolution: int) -> None:
        super().__init__()
        self.attn = Attention2dDownsample(in_chs, out_chs, resolution)
        self.conv = nn.Conv2d(in_chs, out_chs, 3, stride=2, padding=1)
        self.bn = nn.BatchNorm2d(out_chs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attn(x) + self.bn(self.conv(x))


def _layer_scale(dim: int, init: float) -> nn.Parameter:
    return nn.Parameter(init * torch.ones(dim, 1, 1))


class FFNBlock(nn.Module):
    """x + LS * ConvMlp(x): the plain block of every stage (official ``FFN``, scale ``layer_scale_2``)."""

    def __init__(self, dim: int, mlp_ratio: float, drop_path: float, layer_scale_init: float) -> None:
        super().__init__()
        self.mlp = ConvMlp(dim, int(dim * mlp_ratio))
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.layer_scale_2 = _layer_scale(dim, layer_scale_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.drop_path(self.layer_scale_2 * self.mlp(x))


class AttnFFNBlock(nn.Module):
    """Attention residual then ConvMlp residual, each layer-scaled (official ``AttnFFN``)."""

    def __init__(
        self,
        dim: int,
        mlp_ratio: float,
        drop_path: float,
        layer_scale_init: float,
        resolution: int,
        stride: int | None,
    ) -> None:
        super().__init__()
        self.token_mixer = Attention2d(dim, resolution, stride=stride)
        self.mlp = ConvMlp(dim, int(dim * mlp_ratio))
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.layer_scale_1 = _layer_scale(dim, layer_scale_init)
        self.layer_scale_2 = _layer_scale(dim, layer_scale_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.layer_scale_1 * self.token_mixer(x))
        return x + self.drop_path(self.layer_scale_2 * self.mlp(x))


# --------------------------------------------------------------------------------------------------
# Network
# --------------------------------------------------------------------------------------------------


class EfficientFormerV2(DistilledClassifier):
    """Stem, then ``network`` = [stage1, down, stage2, down, stage3, attn-down, stage4], BN, mean pool, heads.

    The last ``num_attn_blocks`` blocks of stages 3 and 4 are :class:`AttnFFNBlock`s; in stage 3 they
    attend at half resolution (stride 2). ``img_size`` fixes every attention grid and bias table, so the
    network accepts only ``img_size x img_size`` input.
    """

    def __init__(
        self,
        widths: Sequence[int],
        depths: Sequence[int],
        mlp_ratios: Sequence[Sequence[float]],
        num_attn_blocks: int,
        *,
        img_size: int = 224,
        num_classes: int = 1000,
        distillation: bool = True,
        drop_path_rate: float = 0.0,
        layer_scale_init: float = LAYER_SCALE_INIT,
    ) -> None:
        super().__init__()
        if not len(widths) == len(depths) == len(mlp_ratios) == 4:
            raise ValueError("EfficientFormerV2 has exactly 4 stages")
        self.img_size = img_size
        self.num_classes = num_classes
        self.num_features = widths[-1]
        self.patch_embed = conv_stem(widths[0], nn.GELU)

        rates = drop_path_rates(sum(depths), drop_path_rate)
        network: list[nn.Module] = []
        block_idx = 0
        for i, (dim, depth) in enumerate(zip(widths, depths, strict=True)):
            resolution = math.ceil(img_size / 2 ** (i + 2))
            if len(mlp_ratios[i]) != depth:
                raise ValueError(f"stage {i}: {len(mlp_ratios[i])} expansion ratios for {depth} blocks")
            blocks: list[nn.Module] = []
            for j in range(depth):
                ratio, rate = mlp_ratios[i][j], rates[block_idx]
                block_idx += 1
                if i >= 2 and j >= depth - num_attn_blocks:
                    stride = 2 if i == 2 else None
                    blocks.append(AttnFFNBlock(dim, ratio, rate, layer_scale_init, resolution, stride))
                else:
                    blocks.append(FFNBlock(dim, ratio, rate, layer_scale_init))
            network.append(nn.Sequential(*blocks))
            if i < 3:
                nxt = widths[i + 1]
                network.append(AttnDownsample(dim, nxt, resolution) if i >= 2 else ConvDownsample(dim, nxt))
        self.network = nn.ModuleList(network)

        self.norm = nn.BatchNorm2d(widths[-1])
        self._init_heads(widths[-1], num_classes, distillation)
        for m in (self.head, self.dist_head):
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=_INIT_STD)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Final normalised NCHW feature map (before pooling)."""
        # Friendly error instead of a reshape failure deep inside; skipped under jit.trace, where the
        # sizes are traced tensors (torch.export and ONNX see plain ints and keep the check).
        if not torch.jit.is_tracing() and tuple(x.shape[-2:]) != (self.img_size, self.img_size):
            raise ModelError(
                f"EfficientFormerV2 was built for {self.img_size}x{self.img_size} input, got "
                f"{x.shape[-2]}x{x.shape[-1]}; rebuild with img_size={x.shape[-1]}"
            )
        x = self.patch_embed(x)
        for module in self.network:
            x = module(x)
        return self.norm(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        return self._classify(self.forward_features(x).flatten(2).mean(-1))


# --------------------------------------------------------------------------------------------------
# Variants
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Config:
    widths: tuple[int, int, int, int]
    depths: tuple[int, int, int, int]
    stage3_ratios: tuple[int, ...]
    stage4_ratios: tuple[int, ...]
    num_attn_blocks: int
    train_drop_path: float
    """Upstream training value, for reference only: builders use 0.0 (inference benchmarking)."""

    def mlp_ratios(self) -> list[tuple[int, ...]]:
        return [(4,) * self.depths[0], (4,) * self.depths[1], self.stage3_ratios, self.stage4_ratios]


_CONFIGS: dict[str, _Config] = {
    "S0": _Config((32, 48, 96, 176), (2, 2, 6, 4), (4, 3, 3, 3, 4, 4), (4, 3, 3, 4), 2, 0.0),
    "S1": _Config((32, 48, 120, 224), (3, 3, 9, 6), (4, 4, 3, 3, 3, 3, 4, 4, 4), (4, 4, 3, 3, 4, 4), 2, 0.0),
    "S2": _Config(
        (32, 64, 144, 288),
        (4, 4, 12, 8),
        (4, 4, 3, 3, 3, 3, 3, 3, 4, 4, 4, 4),
        (4, 4, 3, 3, 3, 3, 4, 4),
        4,
        0.02,
    ),
    "L": _Config(
        (40, 80, 192, 384),
        (5, 5, 15, 10),
        (4, 4, 4, 4, 3, 3, 3, 3, 3, 3, 3, 4, 4, 4, 4),
        (4, 4, 4, 3, 3, 3, 3, 4, 4, 4),
        6,
        0.1,
    ),
}


def checkpoint_filter(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop the official ``attention_bias_idxs`` buffers; this model computes them itself."""
    return {k: v for k, v in state.items() if not k.endswith("attention_bias_idxs")}


def _build(variant: str, distillation: bool, num_classes: int, img_size: int) -> EfficientFormerV2:
    cfg = _CONFIGS[variant]
    return EfficientFormerV2(
        cfg.widths,
        cfg.depths,
        cfg.mlp_ratios(),
        cfg.num_attn_blocks,
        img_size=img_size,
        num_classes=num_classes,
        distillation=distillation,
    )


_CITATION = (
    "Li et al., Rethinking Vision Transformers for MobileNet Size and Speed (EfficientFormerV2), "
    "ICCV 2023, arXiv:2212.08059"
)


def _register(
    name: str, variant: str, params_m: float, gmacs: float, top1_300: float, top1_450: float
) -> Callable[[Builder], Builder]:
    """Register a builder with its card (README numbers) and the official-checkpoint filter."""
    card = ModelCard(
        name=name,
        family="efficientformerv2",
        variant=variant,
        default_resolution=224,
        published_params_m=params_m,
        published_gmacs=gmacs,
        top1=top1_300,
        top1_source=(
            "EfficientFormer README (snap-research/EfficientFormer), ImageNet-1k at 224, 300 epochs, trained "
            f"with distillation (repo default: hard, RegNetY-16GF teacher); 450 epochs: {top1_450}"
        ),
        citation=_CITATION,
        fixed_resolution=True,
        default_distillation=True,
    )
    return register_model(card, checkpoint_filter=checkpoint_filter)


@_register("efficientformerv2_s0", "S0", 3.5, 0.40, 75.7, 76.2)
def efficientformerv2_s0(*, distillation: bool, num_classes: int, img_size: int) -> EfficientFormerV2:
    return _build("S0", distillation, num_classes, img_size)


@_register("efficientformerv2_s1", "S1", 6.1, 0.65, 79.0, 79.7)
def efficientformerv2_s1(*, distillation: bool, num_classes: int, img_size: int) -> EfficientFormerV2:
    return _build("S1", distillation, num_classes, img_size)


@_register("efficientformerv2_s2", "S2", 12.6, 1.25, 81.6, 82.0)
def efficientformerv2_s2(*, distillation: bool, num_classes: int, img_size: int) -> EfficientFormerV2:
    return _build("S2", distillation, num_classes, img_size)


@_register("efficientformerv2_l", "L", 26.1, 2.56, 83.3, 83.5)
def efficientformerv2_l(*, distillation: bool, num_classes: int, img_size: int) -> EfficientFormerV2:
    return _build("L", distillation, num_classes, img_size)
