"""The model zoo: every network of the suite, written here and checked against the official code.

Use :func:`create_model` and :func:`list_models`; :func:`get_card` gives the published facts.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from models.checkpoint import has_distillation_head, load_state, read_model_state
from models.errors import CheckpointError, ModelError, UnknownModelError
from models.registry import (
    Family,
    ModelCard,
    get_builder,
    get_card,
    get_family,
    list_families,
    list_models,
    paper_set,
    sized_set,
)

__all__ = [
    "CheckpointError",
    "Family",
    "ModelCard",
    "ModelError",
    "UnknownModelError",
    "create_model",
    "get_card",
    "get_family",
    "list_families",
    "list_models",
    "paper_set",
    "sized_set",
]


def create_model(
    name: str,
    *,
    checkpoint: str | Path | None = None,
    distillation: bool | None = None,
    num_classes: int = 1000,
    img_size: int | None = None,
) -> nn.Module:
    """Build ``name`` in its published configuration, optionally loading ``checkpoint``.

    ``distillation=None`` keeps the official default (a second ``dist_head`` for CAS-ViT,
    SwiftFormer and EfficientFormer V1/V2), unless ``checkpoint`` has no ``dist_head`` weights;
    ``False`` gives the single-head deployable network.
    ``img_size`` matters only for fixed-resolution families (EfficientFormer V1/V2).
    The model is returned in eval mode.
    """
    card = get_card(name)
    state = read_model_state(checkpoint, name) if checkpoint is not None else None
    if distillation is None:
        distillation = card.default_distillation
        # The official training scripts often deploy without the distillation head; follow the file.
        if distillation and state is not None and not has_distillation_head(state):
            distillation = False
    if num_classes < 0:
        raise ModelError(f"num_classes must be >= 0, got {num_classes}")
    size = card.default_resolution if img_size is None else img_size
    check_resolution(card, size)
    model = get_builder(name)(distillation=distillation, num_classes=num_classes, img_size=size)
    if state is not None:
        load_state(model, state, name, source=checkpoint)
    return model.eval()


def check_resolution(card: ModelCard, resolution: int) -> None:
    """Raise :class:`ModelError` unless ``card``'s network can be built for ``resolution`` input.

    Every family downsamples by 32. Fixed-resolution families (EfficientFormer V1/V2) can take any
    such size too, but only when built for it (``img_size``), since their bias tables depend on it.
    """
    if resolution <= 0 or resolution % 32:
        raise ModelError(f"{card.name}: resolution {resolution} is not a positive multiple of 32")
