"""Reference multi-head self-attention, the measuring stick for "quadratic in tokens", and the mixers
measured by name."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

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
