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

from models.errors import CheckpointError, one_line
from models.registry import get_checkpoint_filter

_WRAPPER_KEYS = ("model", "state_dict", "model_ema", "module")
_MAX_NAMED = 5


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a checkpoint file into a flat ``{name: tensor}`` dict, or raise :class:`CheckpointError`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    kind = _sniff(path)
    raw = _read_safetensors(path) if kind == "safetensors" else _read_pickle(path)
    return _unwrap(raw, path)


_LEGACY_MAGIC = b"\x80\x02\x8a\nl\xfc\x9cF\xf9 j\xa8P\x19."
"""How a pre-1.6 ``torch.save`` file starts (its magic number, pickled with protocol 2)."""


def _sniff(path: Path) -> str:
    """``pickle`` (a torch.save file) or ``safetensors``, from the file's first bytes; otherwise a
    :class:`CheckpointError` saying what the file is (random bytes are never "pickled Python objects")."""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc.strerror or exc}") from None
    if not head:
        raise CheckpointError(f"{path} is empty, not a checkpoint")
    if len(head) >= 10 and head[8:10] == b'{"':  # 8-byte header length, then a JSON header
        return "safetensors"
    if path.suffix == ".safetensors":
        raise CheckpointError(f"{path} is not a safetensors file (no safetensors header)")
    if head.startswith(_LEGACY_MAGIC):
        return "pickle"
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError, ValueError):
            raise CheckpointError(f"corrupt or truncated checkpoint {path}: its zip archive is damaged") from None
        if any(n == "data.pkl" or n.endswith("/data.pkl") for n in names):
            return "pickle"
        raise CheckpointError(f"{path} is a zip archive but not a PyTorch checkpoint (it has no data.pkl)")
    if head.startswith(b"version https://git-lfs"):
        raise CheckpointError(f"{path} is a Git LFS pointer, not the checkpoint itself (run `git lfs pull`)")
    if head.lstrip().startswith(b"<"):
        raise CheckpointError(f"{path} is an HTML or XML page, not a checkpoint (a failed download?)")
    raise CheckpointError(
        f"{path} is not a checkpoint: it is neither a PyTorch file (torch.save) nor safetensors (unknown format "
        "or damaged)"
    )


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"corrupt safetensors checkpoint {path}: {one_line(exc, with_type=False)}") from None


def _read_pickle(path: Path) -> object:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights_only" in str(exc) or "Unsupported global" in str(exc):
            raise CheckpointError(
                f"refusing {path}: it pickles Python objects, not a plain state dict "
                "(only tensors and containers are loaded, for safety)"
            ) from None
        raise CheckpointError(f"corrupt checkpoint {path}: {one_line(exc, with_type=False)}") from None
    except Exception as exc:  # a damaged file fails anywhere in the unpickler: never a traceback
        raise CheckpointError(f"corrupt or truncated checkpoint {path}: {one_line(exc, with_type=False)}") from None


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
