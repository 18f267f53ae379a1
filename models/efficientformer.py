"""EfficientFormer (V1): Li et al., "EfficientFormer: Vision Transformers at MobileNet Speed", NeurIPS 2022.

A dimension-consistent hybrid: four stages of 4-D "Meta4D" blocks (pooling token mixer + conv MLP, like
PoolFormer but without a norm before the pooling), and in the last stage a few 3-D "Meta3D" blocks
(LeViT-style multi-head attention with a learned relative-position bias + linear MLP) operating on
flattened tokens.

Attribute names follow the official ``snap-research/EfficientFormer`` ``models/efficientformer.py`` so
its checkpoints load directly; :func:`checkpoint_filter` only drops the ``attention_bias_idxs`` buffers,
which this model computes itself. Unlike the official code there is no ``self.ab`` bias cache: the bias
is gathered from the parameter table at every forward, so ``.eval()``/``.to()``/``load_state_dict`` may
be called in any order and tracing/export see a plain gather.

The attention bias table has one entry per (|dy|, |dx|) offset on the final ``img_size / 32`` grid,
so a network is built for one resolution (7x7 tokens at 224, as published).
"""

from __future__ import annotations

import torch
from torch import nn

from models.errors import CheckpointError, ModelError
from models.layers import ConvDownsample, DistilledClassifier, DropPath, conv_stem, drop_path_rates
from models.registry import Family, ModelCard, Preprocessing, register_family, register_model

FAMILY = register_family(
    Family(
        id="efficientformer",
        label="EfficientFormer",
        color="#E69F00",
        marker="^",
        counting_rule="toolbox",
        paper_variants=("efficientformer_l1",),
        linestyle="-.",
        distillation="hard",
        distillation_source="official main.py and paper: hard distillation from RegNetY-16GF",
        sized_variants=("efficientformer_l1", "efficientformer_l3"),
        sized_reason="L1 (12.3 M) by CAS-ViT-M and L3 (31.3 M) by T; there is none as small as XS or S, and "
        "L7 (82.1 M) is far above every CAS-ViT size",
        preprocessing=Preprocessing(
            resize=256,
            crop=224,
            source="official util/datasets.py: Resize(int(224 / 0.875), bicubic), CenterCrop(224), ImageNet mean/std",
        ),
    )
)

_LAYER_SCALE_INIT = 1e-5
_CITATION = "Li et al., EfficientFormer: Vision Transformers at MobileNet Speed, NeurIPS 2022, arXiv 2206.01191"


def relative_offset_index(resolution: int) -> torch.Tensor:
    """``(N, N)`` table (N = resolution²) mapping a query/key token pair to its bias column.

    The official code numbers offsets ``(|dy|, |dx|)`` in first-seen order while scanning all token
    pairs row-major; since the first query (0, 0) already meets every offset in row-major order, that
    numbering is exactly ``|dy| * resolution + |dx|``.
    """
    coords = torch.arange(resolution)
    rows = coords.repeat_interleave(resolution)
    cols = coords.repeat(resolution)
    dy = (rows[:, None] - rows[None, :]).abs()
    dx = (cols[:, None] - cols[None, :]).abs()
    return dy * resolution + dx


# ---------------------------------------------------------------------------------------------------
# Building blocks
# ---------------------------------------------------------------------------------------------------


class Attention(nn.Module):
    """LeViT-style MHSA over ``resolution²`` tokens with a learned per-head relative-position bias.

    One fused ``qkv`` Linear whose output is split *per head* into (key_dim, key_dim, attn_ratio*key_dim)
    (the official layout, so checkpoint weights line up); no activation before ``proj``. The bias is
    added to the scaled logits before softmax, as in the official code.
    """

    def __init__(
        self, dim: int, key_dim: int = 32, num_heads: int = 8, attn_ratio: int = 4, resolution: int = 7
    ) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.scale = key_dim**-0.5
        self.value_dim = attn_ratio * key_dim
        self.num_tokens = resolution**2
        self.qkv = nn.Linear(dim, (2 * key_dim + self.value_dim) * num_heads)
        self.proj = nn.Linear(self.value_dim * num_heads, dim)
        self.attention_biases = nn.Parameter(torch.zeros(num_heads, resolution**2))
        # Non-persistent: derived from the resolution, never read from a checkpoint.
        self.register_buffer("attention_bias_idxs", relative_offset_index(resolution), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, _ = x.shape
        qkv = self.qkv(x).reshape(batch, tokens, self.num_heads, -1)
        q, k, v = qkv.split([self.key_dim, self.key_dim, self.value_dim], dim=3)
        q = q.permute(0, 2, 1, 3)
        k = k.permute(0, 2, 1, 3)
        v = v.permute(0, 2, 1, 3)
        bias = self.attention_biases[:, self.attention_bias_idxs]
        attn = (q @ k.transpose(-2, -1)) * self.scale + bias
        attn = attn.softmax(dim=-1)
        x = (attn @ v).transpose(1, 2).reshape(batch, tokens, self.value_dim * self.num_heads)
        return self.proj(x)


class Pooling(nn.Module):
    """PoolFormer token mixer ``avgpool(x) - x`` (padding excluded from the average, no pre-norm)."""

    def __init__(self, pool_size: int = 3) -> None:
        super().__init__()
        self.pool = nn.AvgPool2d(pool_size, stride=1, padding=pool_size // 2, count_include_pad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(x) - x


class ConvMlp(nn.Module):
    """Meta4D MLP: 1x1 conv -> BN -> GELU -> 1x1 conv -> BN (official key names fc1/norm1/fc2/norm2)."""

    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(dim, hidden_dim, 1)
        self.act = nn.GELU()
        self.fc2 = nn.Conv2d(hidden_dim, dim, 1)
        self.norm1 = nn.BatchNorm2d(hidden_dim)
        self.norm2 = nn.BatchNorm2d(dim)
        for conv in (self.fc1, self.fc2):
            nn.init.trunc_normal_(conv.weight, std=0.02)
            nn.init.zeros_(conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.norm1(self.fc1(x)))
        return self.norm2(self.fc2(x))


class LinearMlp(nn.Module):
    """Meta3D MLP on tokens: Linear -> GELU -> Linear."""

    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Meta4D(nn.Module):
    """4-D block on ``(B, C, H, W)``: x + ls1 * pool(x), then x + ls2 * mlp(x); layer scales init 1e-5."""

    def __init__(self, dim: int, mlp_ratio: float = 4.0, drop_path: float = 0.0) -> None:
        super().__init__()
        self.token_mixer = Pooling()
        self.mlp = ConvMlp(dim, int(dim * mlp_ratio))
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.layer_scale_1 = nn.Parameter(torch.full((dim,), _LAYER_SCALE_INIT))
        self.layer_scale_2 = nn.Parameter(torch.full((dim,), _LAYER_SCALE_INIT))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.layer_scale_1[:, None, None] * self.token_mixer(x))
        return x + self.drop_path(self.layer_scale_2[:, None, None] * self.mlp(x))


class Meta3D(nn.Module):
    """3-D block on ``(B, N, C)`` tokens: pre-LN attention and pre-LN MLP, each with a 1e-5 layer scale."""

    def __init__(self, dim: int, resolution: int, mlp_ratio: float = 4.0, drop_path: float = 0.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)  # official: nn.LayerNorm defaults, eps 1e-5
        self.token_mixer = Attention(dim, resolution=resolution)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = LinearMlp(dim, int(dim * mlp_ratio))
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.layer_scale_1 = nn.Parameter(torch.full((dim,), _LAYER_SCALE_INIT))
        self.layer_scale_2 = nn.Parameter(torch.full((dim,), _LAYER_SCALE_INIT))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.layer_scale_1 * self.token_mixer(self.norm1(x)))
        return x + self.drop_path(self.layer_scale_2 * self.mlp(self.norm2(x)))


class Flat(nn.Module):
    """``(B, C, H, W) -> (B, H*W, C)``. A module (not a reshape in forward) because the official code
    puts it inside the last stage's Sequential, where it occupies an index of the checkpoint keys."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(2).transpose(1, 2)


# ---------------------------------------------------------------------------------------------------
# Network
# ---------------------------------------------------------------------------------------------------


class EfficientFormer(DistilledClassifier):
    """EfficientFormer V1 classifier built for ``img_size x img_size`` input.

    ``network`` alternates stages and ``ConvDownsample`` downsamplers (indices 0..6, as official). The
    last ``vit_num`` blocks of stage 4 are :class:`Meta3D`, preceded by a :class:`Flat` module.
    """

    def __init__(
        self,
        depths: tuple[int, ...],
        widths: tuple[int, ...],
        vit_num: int,
        *,
        num_classes: int = 1000,
        distillation: bool = True,
        img_size: int = 224,
        mlp_ratio: float = 4.0,
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        if img_size <= 0 or img_size % 32:
            raise ModelError(f"EfficientFormer: img_size {img_size} is not a positive multiple of 32")
        if not 0 <= vit_num <= depths[-1]:
            raise ValueError(f"vit_num {vit_num} must be within the last stage's depth {depths[-1]}")
        self.img_size = img_size
        self.num_classes = num_classes
        resolution = img_size // 32
        rates = drop_path_rates(sum(depths), drop_path_rate)

        self.patch_embed = conv_stem(widths[0])
        network: list[nn.Module] = []
        for i, (depth, width) in enumerate(zip(depths, widths, strict=True)):
            last_stage = i == len(depths) - 1
            first_3d = depth - vit_num if last_stage else depth
            blocks: list[nn.Module] = []
            for j in range(depth):
                if last_stage and j == first_3d:
                    blocks.append(Flat())
                rate = rates[sum(depths[:i]) + j]
                if j >= first_3d:
                    blocks.append(Meta3D(width, resolution, mlp_ratio=mlp_ratio, drop_path=rate))
                else:
                    blocks.append(Meta4D(width, mlp_ratio=mlp_ratio, drop_path=rate))
            if last_stage and vit_num == 0:
                blocks.append(Flat())  # the head averages tokens, so an all-4D stage 4 still flattens
            network.append(nn.Sequential(*blocks))
            if not last_stage:
                network.append(ConvDownsample(width, widths[i + 1]))
        self.network = nn.ModuleList(network)

        self.norm = nn.LayerNorm(widths[-1])
        self._init_heads(widths[-1], num_classes, distillation)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Image ``(B, 3, S, S)`` -> normalised tokens ``(B, (S/32)², C)``."""
        # (skipped while tracing: a trace is specialised to its example's size anyway)
        if not torch.jit.is_tracing() and (x.shape[-2] != self.img_size or x.shape[-1] != self.img_size):
            raise ModelError(
                f"EfficientFormer was built for {self.img_size}x{self.img_size} input (its attention bias "
                f"table is fixed), got {x.shape[-2]}x{x.shape[-1]}; build it with img_size=..."
            )
        x = self.patch_embed(x)
        for stage in self.network:
            x = stage(x)
        return self.norm(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        return self._classify(self.forward_features(x).mean(-2))


# ---------------------------------------------------------------------------------------------------
# Checkpoints, variants and registered builders
# ---------------------------------------------------------------------------------------------------


def checkpoint_filter(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop the official ``attention_bias_idxs`` buffers after checking they match our index table.

    A checkpoint with a different offset numbering would silently scramble the learned biases, so a
    mismatch is an error rather than something to ignore.
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if not key.endswith("attention_bias_idxs"):
            out[key] = value
            continue
        tokens = value.shape[0] if value.ndim == 2 else -1
        resolution = round(tokens**0.5) if tokens > 0 else 0
        if value.ndim != 2 or value.shape[1] != tokens or resolution**2 != tokens:
            raise CheckpointError(f"{key}: expected a square (N, N) index table, got {tuple(value.shape)}")
        if not torch.equal(value.long(), relative_offset_index(resolution)):
            raise CheckpointError(f"{key}: relative-position index table differs from EfficientFormer's")
    return out


_CONFIGS: dict[str, tuple[tuple[int, ...], tuple[int, ...], int]] = {
    # name: (depths, widths, vit_num = number of Meta3D blocks at the end of stage 4)
    "l1": ((3, 2, 6, 4), (48, 96, 224, 448), 1),
    "l3": ((4, 4, 12, 6), (64, 128, 320, 512), 4),
    "l7": ((6, 6, 18, 8), (96, 192, 384, 768), 8),
}


def _build(variant: str, *, distillation: bool, num_classes: int, img_size: int) -> EfficientFormer:
    depths, widths, vit_num = _CONFIGS[variant]
    return EfficientFormer(
        depths, widths, vit_num, num_classes=num_classes, distillation=distillation, img_size=img_size
    )


def _card(variant: str, params_m: float, gmacs: float, top1: float, source: str) -> ModelCard:
    return ModelCard(
        name=f"efficientformer_{variant}",
        family="efficientformer",
        variant=variant.upper(),
        default_resolution=224,
        published_params_m=params_m,
        published_gmacs=gmacs,
        top1=top1,
        top1_source=source,
        citation=_CITATION,
        fixed_resolution=True,
        default_distillation=True,
    )


_SOURCE = "EfficientFormer README/paper, ImageNet-1k 224, 300 ep, hard distillation from RegNetY-16GF"


@register_model(
    _card("l1", 12.3, 1.3, 79.2, _SOURCE + "; the 1000-ep L1 checkpoint reaches 80.2"),
    checkpoint_filter=checkpoint_filter,
)
def efficientformer_l1(*, distillation: bool, num_classes: int, img_size: int) -> nn.Module:
    return _build("l1", distillation=distillation, num_classes=num_classes, img_size=img_size)


@register_model(_card("l3", 31.3, 3.9, 82.4, _SOURCE), checkpoint_filter=checkpoint_filter)
def efficientformer_l3(*, distillation: bool, num_classes: int, img_size: int) -> nn.Module:
    return _build("l3", distillation=distillation, num_classes=num_classes, img_size=img_size)


@register_model(_card("l7", 82.1, 10.2, 83.3, _SOURCE), checkpoint_filter=checkpoint_filter)
def efficientformer_l7(*, distillation: bool, num_classes: int, img_size: int) -> nn.Module:
    return _build("l7", distillation=distillation, num_classes=num_classes, img_size=img_size)
