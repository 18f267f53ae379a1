"""CAS-ViT: Convolutional Additive Self-attention Vision Transformers (Zhang et al., arXiv 2408.03703).

Written from the official ``classification/model/rcvit.py`` (github.com/Tianfang-Zhang/CAS-ViT, where the
network is called RCViT and the variants ``rcvit_xs/s/m/t``). Module attribute names follow the official
ones, so official checkpoints load without renaming:

    patch_embed.{0,1,3,4}                         conv-BN-ReLU-conv-BN-ReLU stem (/4)
    network.{0,2,4,6}.<block>.<...>                stages of CAS blocks (``AdditiveBlock``)
    network.{1,3,5}.{proj,norm}                    stride-2 3x3 conv + BN downsamplers
    norm, head, dist_head                         final BN and the (two) linear classifiers

The CATM token mixer (:class:`AdditiveTokenMixer`) is self-contained so that it can be built and
profiled on its own for any ``(B, C, H, W)``. Every op is a plain conv, BatchNorm, pointwise activation,
global average or broadcast product: nothing depends on the input size, so any resolution that is a
multiple of 32 works and the graph exports cleanly (TorchScript, ``torch.export``, ONNX).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from models.layers import ConvDownsample, DistilledClassifier, DropPath, conv_stem, drop_path_rates
from models.registry import Family, ModelCard, Preprocessing, register_family, register_model

FAMILY = register_family(
    Family(
        id="casvit",
        label="CAS-ViT",
        color="#D55E00",
        marker="*",
        counting_rule="thop",
        paper_variants=("casvit_xs", "casvit_s", "casvit_m", "casvit_t"),
        linestyle="-",
        distillation="",
        distillation_source="official classification/main.py builds the model with distillation=False and no "
        "teacher (the dist_head of rcvit_*() is never trained)",
        sized_variants=("casvit_xs", "casvit_s", "casvit_m", "casvit_t"),
        sized_reason="the four sizes every baseline is matched to: XS 3.2 M, S 5.8 M, M 12.4 M, T 21.8 M params",
        preprocessing=Preprocessing(
            resize=256,
            crop=224,
            source="official classification/data/datasets.py: Resize(int(224 / 0.875), bicubic), CenterCrop(224), "
            "ImageNet mean/std",
        ),
    )
)

__all__ = [
    "AdditiveBlock",
    "AdditiveTokenMixer",
    "CASBlock",
    "CASViT",
    "ChannelOperation",
    "LocalIntegration",
    "SpatialOperation",
]

_CITATION = (
    "Zhang et al., CAS-ViT: Convolutional Additive Self-attention Vision Transformers for Efficient "
    "Mobile Applications, arXiv 2024, arXiv:2408.03703"
)


# ---------------------------------------------------------------------------------------------------------
# Building blocks
# ---------------------------------------------------------------------------------------------------------


class SpatialOperation(nn.Module):
    """S(x): a per-pixel sigmoid gate shared by all channels.

    DW3x3 (with bias) -> BN -> ReLU -> 1x1 C->1 (no bias) -> sigmoid, then ``x * gate``. The official code
    keeps these in a ``Sequential`` named ``block`` (keys ``block.0``, ``block.1``, ``block.3``).
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.block = nn.Sequential(
            nn.Conv2d(dim, dim, kernel_size=3, stride=1, padding=1, groups=dim),
            nn.BatchNorm2d(dim),
            nn.ReLU(),
            nn.Conv2d(dim, 1, kernel_size=1, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.block(x)


class ChannelOperation(nn.Module):
    """C(x): a per-channel sigmoid gate from the global mean, SE-like but with no channel reduction.

    Global average -> 1x1 C->C (no bias) -> sigmoid, then ``x * gate`` (key ``block.1``).
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.block = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(dim, dim, kernel_size=1, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.block(x)


class AdditiveTokenMixer(nn.Module):
    """CATM, the convolutional additive token mixer: ``proj(dwc(Phi(Q) + Phi(K)) * V)``.

    * Q, K, V come from one fused 1x1 conv (``qkv``, no bias by default), split along channels.
    * Phi = C(S(.)): spatial gate first, then channel gate; Q and K have their own weights
      (``oper_q``, ``oper_k``).
    * ``dwc`` (Gamma in the paper) is a depthwise 3x3 with bias applied to the sum Phi(Q) + Phi(K);
      the result gates V element-wise.
    * ``proj``, the output projection, is a depthwise 3x3 with bias, not a 1x1.

    No softmax, no matrix product, no heads: the cost is linear in H*W. Input and output are [B, C, H, W].
    The official module ends with a ``Dropout(proj_drop)``; every official variant uses rate 0, which is
    the identity, so it is left out.
    """

    def __init__(self, dim: int, attn_bias: bool = False) -> None:
        super().__init__()
        self.qkv = nn.Conv2d(dim, 3 * dim, kernel_size=1, bias=attn_bias)
        self.oper_q = nn.Sequential(SpatialOperation(dim), ChannelOperation(dim))
        self.oper_k = nn.Sequential(SpatialOperation(dim), ChannelOperation(dim))
        self.dwc = nn.Conv2d(dim, dim, kernel_size=3, stride=1, padding=1, groups=dim)
        self.proj = nn.Conv2d(dim, dim, kernel_size=3, stride=1, padding=1, groups=dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x).chunk(3, dim=1)
        return self.proj(self.dwc(self.oper_q(q) + self.oper_k(k)) * v)


class LocalIntegration(nn.Module):
    """Local perception branch that runs before the mixer: 1x1 -> BN -> DW3x3 -> GELU -> 1x1 (all biased).

    Official keys ``network.0/1/2/4``. (The official class defaults say ReLU/GELU, but the network always
    builds it with GELU and BatchNorm, as here.)
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.network = nn.Sequential(
            nn.Conv2d(dim, dim, kernel_size=1),
            nn.BatchNorm2d(dim),
            nn.Conv2d(dim, dim, kernel_size=3, stride=1, padding=1, groups=dim),
            nn.GELU(),
            nn.Conv2d(dim, dim, kernel_size=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x)


class Mlp(nn.Module):
    """Pointwise feed-forward on feature maps: 1x1 conv -> exact (erf) GELU -> 1x1 conv."""

    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(dim, hidden_dim, kernel_size=1)
        self.act = nn.GELU()
        self.fc2 = nn.Conv2d(hidden_dim, dim, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class AdditiveBlock(nn.Module):
    """The CAS block: three residual branches, all norms BatchNorm, no layer scale.

    ``x + LocalIntegration(x)`` (no norm, no drop-path), then ``x + DropPath(CATM(BN(x)))``, then
    ``x + DropPath(Mlp(BN(x)))``. The official run script passes a layer-scale value that the network
    silently ignores, so there are no gamma parameters (the published parameter counts confirm it).
    """

    def __init__(self, dim: int, mlp_ratio: float = 4.0, drop_path: float = 0.0) -> None:
        super().__init__()
        self.local_perception = LocalIntegration(dim)
        self.norm1 = nn.BatchNorm2d(dim)
        self.attn = AdditiveTokenMixer(dim)
        self.drop_path: nn.Module = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = nn.BatchNorm2d(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.local_perception(x)
        x = x + self.drop_path(self.attn(self.norm1(x)))
        x = x + self.drop_path(self.mlp(self.norm2(x)))
        return x


CASBlock = AdditiveBlock
"""The paper's name for :class:`AdditiveBlock`."""


# ---------------------------------------------------------------------------------------------------------
# Network
# ---------------------------------------------------------------------------------------------------------


class CASViT(DistilledClassifier):
    """CAS-ViT classifier: stem (/4), four stages of CAS blocks with stride-2 downsamplers (/32 in all),
    final BN, global average pool and the linear head(s).

    ``network`` alternates stages (``nn.Sequential`` of blocks) and downsamplers in one ``ModuleList``,
    exactly like the official code, so block keys read ``network.<2*stage>.<block>...``.
    """

    def __init__(
        self,
        depths: tuple[int, ...],
        dims: tuple[int, ...],
        mlp_ratio: float = 4.0,
        num_classes: int = 1000,
        distillation: bool = True,
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        if len(depths) != len(dims):
            raise ValueError(f"depths {depths} and dims {dims} differ in length")
        self.num_classes = num_classes
        self.patch_embed = conv_stem(dims[0])

        rates = drop_path_rates(sum(depths), drop_path_rate)
        layers: list[nn.Module] = []
        start = 0
        for i, (depth, dim) in enumerate(zip(depths, dims, strict=True)):
            blocks = [AdditiveBlock(dim, mlp_ratio, drop_path=rates[start + j]) for j in range(depth)]
            layers.append(nn.Sequential(*blocks))
            start += depth
            if i + 1 < len(dims):
                layers.append(ConvDownsample(dim, dims[i + 1]))
        self.network = nn.ModuleList(layers)

        self.norm = nn.BatchNorm2d(dims[-1])
        self._init_heads(dims[-1], num_classes, distillation)
        self.apply(self._init_linear)

    @staticmethod
    def _init_linear(module: nn.Module) -> None:
        """Official init: only the linear heads get trunc-normal(0.02) weights and zero bias."""
        if isinstance(module, nn.Linear):
            nn.init.trunc_normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """[B, 3, H, W] -> normalised final feature map [B, C4, H/32, W/32]."""
        x = self.patch_embed(x)
        for layer in self.network:
            x = layer(x)
        return self.norm(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        # flatten + mean, as the official head does (kept for bit-identical pooling).
        return self._classify(self.forward_features(x).flatten(2).mean(-1))


# ---------------------------------------------------------------------------------------------------------
# Variants
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Config:
    depths: tuple[int, ...]
    dims: tuple[int, ...]


_CONFIGS: dict[str, _Config] = {
    "XS": _Config(depths=(2, 2, 4, 2), dims=(48, 56, 112, 220)),
    "S": _Config(depths=(3, 3, 6, 3), dims=(48, 64, 128, 256)),
    "M": _Config(depths=(3, 3, 6, 3), dims=(64, 96, 192, 384)),
    "T": _Config(depths=(3, 3, 6, 3), dims=(96, 128, 256, 512)),
}

# Current MODEL_ZOO (Dec 2024, paper v2) top-1 "a / b" pairs, quoted in the card's source text only.
_V2_TOP1 = {"XS": "78.3/78.7", "S": "80.9/81.1", "M": "82.8/83.0", "T": "83.9/84.1"}


def _card(variant: str, params_m: float, gmacs: float | None, top1: float) -> ModelCard:
    """Published params are the MODEL_ZOO ones (they include ``dist_head``); GMACs are paper v1 as
    reproduced in iFormer (arXiv 2501.15369) Table 18, counted with thop at 224; T has none published."""
    return ModelCard(
        name=f"casvit_{variant.lower()}",
        family="casvit",
        variant=variant,
        default_resolution=224,
        published_params_m=params_m,
        published_gmacs=gmacs,
        top1=top1,
        top1_source=(
            "CAS-ViT paper v1 / MODEL_ZOO (Oct 2024), 224, 300 ep; "
            f"current MODEL_ZOO (paper v2, Dec 2024) lists {_V2_TOP1[variant]}"
        ),
        citation=_CITATION,
        fixed_resolution=False,
        default_distillation=True,
    )


def _build(variant: str, distillation: bool, num_classes: int) -> CASViT:
    cfg = _CONFIGS[variant]
    return CASViT(cfg.depths, cfg.dims, num_classes=num_classes, distillation=distillation)


# img_size is accepted for the common builder signature; CAS-ViT has no size-dependent parameters.
@register_model(_card("XS", 3.20, 0.56, 77.5))
def casvit_xs(*, distillation: bool, num_classes: int, img_size: int) -> nn.Module:
    return _build("XS", distillation, num_classes)


@register_model(_card("S", 5.76, 0.93, 80.2))
def casvit_s(*, distillation: bool, num_classes: int, img_size: int) -> nn.Module:
    return _build("S", distillation, num_classes)


@register_model(_card("M", 12.42, 1.89, 81.4))
def casvit_m(*, distillation: bool, num_classes: int, img_size: int) -> nn.Module:
    return _build("M", distillation, num_classes)


@register_model(_card("T", 21.76, None, 82.3))
def casvit_t(*, distillation: bool, num_classes: int, img_size: int) -> nn.Module:
    return _build("T", distillation, num_classes)
