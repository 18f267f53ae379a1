"""Small building blocks shared by several families (kept here so each family file stays short)."""

from __future__ import annotations

import torch
from torch import nn


class DropPath(nn.Module):
    """Stochastic depth per sample (identity in eval mode, so it never affects benchmarks)."""

    def __init__(self, drop_prob: float = 0.0) -> None:
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.drop_prob == 0.0 or not self.training:
            return x
        keep = 1.0 - self.drop_prob
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob}"


def drop_path_rates(total_blocks: int, rate: float) -> list[float]:
    """Linearly increasing stochastic-depth rates over the global block index, as DeiT-style recipes use."""
    if total_blocks <= 1:
        return [0.0] * total_blocks
    return [rate * i / (total_blocks - 1) for i in range(total_blocks)]


class DistilledClassifier(nn.Module):
    """Mixin-style base for DeiT-style networks with ``head`` and optional ``dist_head``.

    Subclasses call :meth:`_init_heads` and end their forward with :meth:`_classify`. The attribute
    names ``head``/``dist_head`` are the official ones, so checkpoints load without renaming. In eval
    mode the two heads are averaged (what the official code deploys); in training a tuple is returned.
    """

    head: nn.Module
    dist_head: nn.Module | None

    def _init_heads(self, in_features: int, num_classes: int, distillation: bool) -> None:
        self.head = nn.Linear(in_features, num_classes) if num_classes > 0 else nn.Identity()
        self.dist_head = None
        if distillation:
            self.dist_head = nn.Linear(in_features, num_classes) if num_classes > 0 else nn.Identity()

    def _classify(self, features: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        logits = self.head(features)
        if self.dist_head is None:
            return logits
        dist_logits = self.dist_head(features)
        if self.training:
            return logits, dist_logits
        return (logits + dist_logits) / 2


def conv_stem(out_chs: int, act_layer: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    """Two stride-2 3x3 conv + BN + activation layers (3 -> C/2 -> C, 1/4 resolution).

    Shared by CAS-ViT, SwiftFormer and EfficientFormer (ReLU) and EfficientFormerV2 (GELU). A flat
    ``Sequential`` on purpose: the official checkpoints name it ``patch_embed.{0,1,3,4}``.
    """
    mid = out_chs // 2
    return nn.Sequential(
        nn.Conv2d(3, mid, kernel_size=3, stride=2, padding=1),
        nn.BatchNorm2d(mid),
        act_layer(),
        nn.Conv2d(mid, out_chs, kernel_size=3, stride=2, padding=1),
        nn.BatchNorm2d(out_chs),
        act_layer(),
    )


class ConvDownsample(nn.Module):
    """Between stages: 3x3 stride-2 conv (with bias) then BN, no activation.

    The official ``Embedding`` of CAS-ViT, SwiftFormer and EfficientFormer V1/V2 (keys ``proj``/``norm``).
    """

    def __init__(self, in_chs: int, out_chs: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chs, out_chs, kernel_size=3, stride=2, padding=1)
        self.norm = nn.BatchNorm2d(out_chs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(x))
