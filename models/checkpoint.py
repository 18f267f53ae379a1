"""Safe checkpoint loading for every family.

Accepts what users actually download: ``.pth``/``.pt`` (a bare state dict, or one wrapped under
``model``/``state_dict``/``model_ema``) and ``.safetensors``. Pickles are opened with
``weights_only=True`` so a checkpoint can never run code. Keys must match exactly (after the
family's filter maps official names); the first offending keys are named in the error.
"""

from __future__ import annotations

import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from models.errors import CheckpointError
from models.registry import get_checkpoint_filter

_WRAPPER_KEYS = ("model", "state_dict", "model_ema", "module")
_MAX_NAMED = 5


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a checkpoint file into a flat ``{name: tensor}`` dict, or raise :class:`CheckpointError`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    raw = _read_safetensors(path) if path.suffix == ".safetensors" else _read_pickle(path)
    return _unwrap(raw, path)


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"corrupt safetensors checkpoint {path}: {_first_line(exc)}") from None


def _read_pickle(path: Path) -> object:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights_only" in str(exc) or "Unsupported global" in str(exc):
            raise CheckpointError(
                f"refusing {path}: it pickles Python objects, not a plain state dict "
                "(only tensors and containers are loaded, for safety)"
            ) from None
        raise CheckpointError(f"corrupt checkpoint {path}: {_first_line(exc)}") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as exc:
        raise CheckpointError(f"corrupt or truncated checkpoint {path}: {_first_line(exc)}") from None


def _unwrap(raw: object, path: Path) -> dict[str, torch.Tensor]:
    while isinstance(raw, Mapping):
        wrapped = next((raw[k] for k in _WRAPPER_KEYS if isinstance(raw.get(k), Mapping)), None)
        if wrapped is None:
            break
        raw = wrapped
    if not isinstance(raw, Mapping) or not raw:
        raise CheckpointError(f"{path} holds no state dict (found {type(raw).__name__})")
    bad = [k for k, v in raw.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{path} is not a flat state dict of tensors (e.g. entry {bad[0]!r})")
    # Checkpoints saved from DataParallel/DistributedDataParallel prefix every key with "module.".
    if all(k.startswith("module.") for k in raw):
        raw = {k.removeprefix("module."): v for k, v in raw.items()}
    return dict(raw)


def read_model_state(path: str | Path, model_name: str) -> dict[str, torch.Tensor]:
    """Read ``path`` and map the family's official key names onto this model's (the family filter)."""
    state = read_state_dict(path)
    key_filter = get_checkpoint_filter(model_name)
    return key_filter(state) if key_filter is not None else state


def has_distillation_head(state: Mapping[str, torch.Tensor]) -> bool:
    return any(k.startswith("dist_head.") for k in state)


def load_state(model: nn.Module, state: Mapping[str, torch.Tensor], model_name: str, source: str | Path) -> None:
    """Load an already filtered ``state`` into ``model`` strictly, naming the first offending keys."""
    check_state_dict(model, state, f"{source} does not fit {model_name}")
    model.load_state_dict(state, strict=True)


def check_state_dict(model: nn.Module, state: Mapping[str, torch.Tensor], context: str) -> None:
    """Raise :class:`CheckpointError` naming the first missing, unexpected or mis-shaped keys."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong_shape = [
        f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    problems = []
    for label, keys in (
        ("missing keys", missing),
        ("unexpected keys", unexpected),
        ("wrong shapes", wrong_shape),
    ):
        if keys:
            more = f" (+{len(keys) - _MAX_NAMED} more)" if len(keys) > _MAX_NAMED else ""
            problems.append(f"{label}: {', '.join(keys[:_MAX_NAMED])}{more}")
    if problems:
        raise CheckpointError(f"{context}: {'; '.join(problems)}")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
