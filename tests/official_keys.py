"""Official state-dict layouts, committed as data, and random state dicts under those names.

``data/official_keys/<model>.txt`` was written once from the official implementation (one
``key<TAB>shape`` line per entry, shape ``AxB`` or empty/``scalar`` for 0-d buffers); tests build
checkpoints from it, so loading official weights is checked without shipping official code.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

KEYS_DIR = Path(__file__).parent / "data" / "official_keys"


def official_shapes(file_stem: str) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {}
    for line in (KEYS_DIR / f"{file_stem}.txt").read_text().splitlines():
        key, _, shape = line.partition("\t")
        shapes[key] = () if shape in ("", "scalar") else tuple(int(d) for d in shape.split("x"))
    return shapes


def random_official_state(
    file_stem: str,
    seed: int = 0,
    scale: float = 0.2,
    positive: tuple[str, ...] = ("running_var",),
    special: Callable[[str, tuple[int, ...], torch.Generator], torch.Tensor | None] | None = None,
) -> dict[str, torch.Tensor]:
    """Random tensors under exactly the official names and shapes.

    BN variances (and any key containing a ``positive`` fragment, e.g. layer scales) are drawn from
    [0.5, 1.5) so that every branch visibly affects the logits; ``special`` may supply a tensor for a
    key (e.g. an index buffer) or return None to fall back to the defaults.
    """
    gen = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    for key, shape in official_shapes(file_stem).items():
        value = special(key, shape, gen) if special is not None else None
        if value is not None:
            state[key] = value
        elif key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(7, dtype=torch.long)
        elif any(fragment in key for fragment in positive):
            state[key] = torch.rand(shape, generator=gen) + 0.5
        else:
            state[key] = scale * torch.randn(shape, generator=gen)
    return state
