"""SwiftFormer (Shaker et al., ICCV 2023): conv stages, each ending in one efficient-additive-attention block.

Written from the official ``Amshaker/SwiftFormer`` ``models/swiftformer.py`` (commit 4aa6cd67) and checked
against it: eval-mode logits match and the module attribute names reproduce the official state-dict keys
(``patch_embed.*``, ``network.<i>.*``, ``Proj``, ``w_g``, ``dist_head`` ...), so released checkpoints load
as they are.

Two details follow the *current* official code on purpose:

* the attention weights over tokens are L2-normalised (``F.normalize(dim=1)``); the March 2023 release
  applied a softmax over a size-1 axis instead, which made them all ones;
* the global query is broadcast against the keys instead of being materialised with ``einops.repeat``
  (same values, no einops dependency, traces to a plain broadcasted ``Mul``).

Note that the Core ML models behind the README's iPhone latencies were converted with both normalisations
switched off (SwiftFormer#3), so those latencies are for a slightly smaller graph than this one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.layers import ConvDownsample, DistilledClassifier, DropPath, conv_stem, drop_path_rates
from models.registry import Family, ModelCard, Preprocessing, register_family, register_model

FAMILY = register_family(
    Family(
        id="swiftformer",
        label="SwiftFormer",
        color="#009E73",
        marker="s",
        counting_rule="unstated",
        paper_variants=("swiftformer_xs", "swiftformer_s", "swiftformer_l1"),
        linestyle="--",
        distillation="hard",
        distillation_source="official main.py: DeiT hard distillation from RegNetY-16GF (README results)",
        sized_variants=("swiftformer_xs", "swiftformer_s", "swiftformer_l1", "swiftformer_l3"),
        sized_reason="one variant per CAS-ViT size: XS (3.5 M) by XS, S (6.1 M) by S, L1 (12.1 M) by M, and L3 "
        "(28.5 M, the next one up) by T",
        preprocessing=Preprocessing(
            resize=256,
            crop=224,
            source="official util/datasets.py: Resize(int(224 / 0.875), bicubic), CenterCrop(224), ImageNet mean/std",
        ),
    )
)

# ---------------------------------------------------------------------------------------------------------
# Building blocks
# ---------------------------------------------------------------------------------------------------------


class ConvEncoder(nn.Module):
    """Residual dw3x3 -> BN -> 1x1 -> GELU -> 1x1 block with a per-channel layer scale initialised to 1.0.

    The official code has two classes with this exact structure and attribute names: ``ConvEncoder``
    (hidden width 4*dim, the plain blocks of every stage) and ``SwiftFormerLocalRepresentation`` (hidden
    width dim, the first part of each SwiftFormerEncoder); ``hidden_dim`` covers both.
    """

    def __init__(self, dim: int, hidden_dim: int, drop_path: float = 0.0) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size=3, padding=1, groups=dim)
        self.norm = nn.BatchNorm2d(dim)
        self.pwconv1 = nn.Conv2d(dim, hidden_dim, kernel_size=1)
        self.act = nn.GELU()
        self.pwconv2 = nn.Conv2d(hidden_dim, dim, kernel_size=1)
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.layer_scale = nn.Parameter(torch.ones(dim, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pwconv2(self.act(self.pwconv1(self.norm(self.dwconv(x)))))
        return x + self.drop_path(self.layer_scale * y)


class Mlp(nn.Module):
    """BN -> 1x1 (dim -> hidden) -> GELU -> 1x1 (hidden -> dim) on NCHW maps; the BN is the block's only
    norm (official name ``norm1``)."""

    def __init__(self, dim: int, hidden_dim: int, drop: float = 0.0) -> None:
        super().__init__()
        self.norm1 = nn.BatchNorm2d(dim)
        self.fc1 = nn.Conv2d(dim, hidden_dim, kernel_size=1)
        self.act = nn.GELU()
        self.fc2 = nn.Conv2d(hidden_dim, dim, kernel_size=1)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.drop(self.act(self.fc1(self.norm1(x))))
        return self.drop(self.fc2(x))


class EfficientAdditiveAttention(nn.Module):
    """Linear-cost attention on tokens [B, N, D]: one global query pooled with learned weights.

    No value projection and no N x N matrix: query and key are L2-normalised over channels, the token
    weights ``(q @ w_g) * D**-0.5`` are L2-normalised over the tokens, their weighted sum of queries is
    the global query ``g``, and the output is ``final(Proj(g * k) + q)``. Names (``to_query``, ``to_key``,
    ``w_g``, ``Proj``, ``final``) are the official ones.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.to_query = nn.Linear(dim, dim)
        self.to_key = nn.Linear(dim, dim)
        self.w_g = nn.Parameter(torch.randn(dim, 1))
        self.scale_factor = dim**-0.5
        self.Proj = nn.Linear(dim, dim)
        self.final = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        query = F.normalize(self.to_query(x), dim=-1)
        key = F.normalize(self.to_key(x), dim=-1)
        weights = F.normalize((query @ self.w_g) * self.scale_factor, dim=1)  # [B, N, 1]
        global_query = torch.sum(weights * query, dim=1, keepdim=True)  # [B, 1, D], broadcast over N
        return self.final(self.Proj(global_query * key) + query)


class SwiftFormerEncoder(nn.Module):
    """Last block of every stage: local representation, then attention and MLP residual branches.

    The attention sees the tokens with no norm in front of it (official). Its branch and the MLP branch
    have layer scales initialised to 1e-5 and share one stochastic-depth rate; the local representation
    has its own layer scale (init 1.0) and no stochastic depth, as in the official ``Stage``.
    """

    def __init__(
        self,
        dim: int,
        mlp_ratio: float = 4.0,
        drop: float = 0.0,
        drop_path: float = 0.0,
        layer_scale_init_value: float = 1e-5,
    ) -> None:
        super().__init__()
        self.local_representation = ConvEncoder(dim, hidden_dim=dim)
        self.attn = EfficientAdditiveAttention(dim)
        self.linear = Mlp(dim, hidden_dim=int(dim * mlp_ratio), drop=drop)
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.layer_scale_1 = nn.Parameter(torch.full((dim, 1, 1), layer_scale_init_value))
        self.layer_scale_2 = nn.Parameter(torch.full((dim, 1, 1), layer_scale_init_value))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.local_representation(x)
        tokens = x.flatten(2).transpose(1, 2)  # [B, H*W, C]
        attn = self.attn(tokens).transpose(1, 2).reshape(x.shape)
        x = x + self.drop_path(self.layer_scale_1 * attn)
        return x + self.drop_path(self.layer_scale_2 * self.linear(x))


# ---------------------------------------------------------------------------------------------------------
# Network
# ---------------------------------------------------------------------------------------------------------


class SwiftFormer(DistilledClassifier):
    """Stem (1/4) -> four stages at 1/4, 1/8, 1/16, 1/32 -> BN -> global mean -> head (+ dist_head).

    ``network`` alternates stages (``nn.Sequential`` of blocks) and :class:`~models.layers.ConvDownsample` downsamplers,
    indices 0..6, exactly as the official ``nn.ModuleList``. Every stage has ``depth - 1`` ConvEncoders
    and ends with one SwiftFormerEncoder. There are no resolution-dependent parameters, so any input
    whose sides are multiples of 32 works.
    """

    def __init__(
        self,
        depths: tuple[int, ...],
        widths: tuple[int, ...],
        *,
        num_classes: int = 1000,
        distillation: bool = True,
        mlp_ratio: float = 4.0,
        drop_path_rate: float = 0.0,
        layer_scale_init_value: float = 1e-5,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.patch_embed = conv_stem(widths[0])

        # The official schedule is global over all blocks but only the SwiftFormerEncoders use it.
        rates = drop_path_rates(sum(depths), drop_path_rate)
        network: list[nn.Module] = []
        start = 0
        for i, (depth, dim) in enumerate(zip(depths, widths, strict=True)):
            blocks: list[nn.Module] = [ConvEncoder(dim, hidden_dim=int(mlp_ratio * dim)) for _ in range(depth - 1)]
            blocks.append(
                SwiftFormerEncoder(
                    dim,
                    mlp_ratio=mlp_ratio,
                    drop_path=rates[start + depth - 1],
                    layer_scale_init_value=layer_scale_init_value,
                )
            )
            network.append(nn.Sequential(*blocks))
            start += depth
            if i + 1 < len(depths):
                network.append(ConvDownsample(dim, widths[i + 1]))
        self.network = nn.ModuleList(network)

        self.norm = nn.BatchNorm2d(widths[-1])
        self._init_heads(widths[-1], num_classes, distillation)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        """Official init: trunc-normal (std 0.02) conv/linear weights, zero biases; ``w_g`` stays randn."""
        if isinstance(m, nn.Conv2d | nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        for module in self.network:
            x = module(x)
        return self.norm(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        return self._classify(self.forward_features(x).flatten(2).mean(-1))


# ---------------------------------------------------------------------------------------------------------
# Variants
# ---------------------------------------------------------------------------------------------------------

_CONFIGS: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    # variant: (depths, widths), from the official SwiftFormer_depth / SwiftFormer_width tables
    "XS": ((3, 3, 6, 4), (48, 56, 112, 220)),
    "S": ((3, 3, 9, 6), (48, 64, 168, 224)),
    "L1": ((4, 3, 10, 5), (48, 96, 192, 384)),
    "L3": ((4, 4, 12, 6), (64, 128, 320, 512)),
}

_CITATION = (
    "Shaker et al., SwiftFormer: Efficient Additive Attention for Transformer-based Real-time Mobile "
    "Vision Applications, ICCV 2023, arXiv:2303.15446"
)
_TOP1_SOURCE = (
    "SwiftFormer README, ImageNet-1k at 224, 300 ep with hard distillation from RegNetY-16GF (params include dist_head)"
)


def _card(variant: str, params_m: float, gmacs: float, top1: float) -> ModelCard:
    return ModelCard(
        name=f"swiftformer_{variant.lower()}",
        family="swiftformer",
        variant=variant,
        default_resolution=224,
        published_params_m=params_m,
        published_gmacs=gmacs,
        top1=top1,
        top1_source=_TOP1_SOURCE,
        citation=_CITATION,
        fixed_resolution=False,
        default_distillation=True,
    )


def _build(variant: str, distillation: bool, num_classes: int) -> SwiftFormer:
    depths, widths = _CONFIGS[variant]
    return SwiftFormer(depths, widths, num_classes=num_classes, distillation=distillation)


@register_model(_card("XS", 3.5, 0.6, 75.7))
def swiftformer_xs(*, distillation: bool, num_classes: int, img_size: int) -> nn.Module:
    return _build("XS", distillation, num_classes)


@register_model(_card("S", 6.1, 1.0, 78.5))
def swiftformer_s(*, distillation: bool, num_classes: int, img_size: int) -> nn.Module:
    return _build("S", distillation, num_classes)


@register_model(_card("L1", 12.1, 1.6, 80.9))
def swiftformer_l1(*, distillation: bool, num_classes: int, img_size: int) -> nn.Module:
    return _build("L1", distillation, num_classes)


@register_model(_card("L3", 28.5, 4.0, 83.0))
def swiftformer_l3(*, distillation: bool, num_classes: int, img_size: int) -> nn.Module:
    return _build("L3", distillation, num_classes)
