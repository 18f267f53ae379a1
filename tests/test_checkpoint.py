"""The generic checkpoint loader: formats, wrappers, and refusal of bad files with one clear message.

Family-specific round trips with the official key names live in each family's test file.
"""

from __future__ import annotations

import collections
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import models
from models.checkpoint import read_state_dict
from models.errors import CheckpointError

NAME = "casvit_xs"


@pytest.fixture(scope="module")
def state() -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    return models.create_model(NAME).state_dict()


def _logits(model: torch.nn.Module) -> torch.Tensor:
    torch.manual_seed(2)
    with torch.inference_mode():
        return model(torch.randn(1, 3, 64, 64))


@pytest.mark.parametrize("wrapper", [None, "model", "state_dict", "module_prefix"])
def test_pth_round_trip(tmp_path: Path, state, wrapper: str | None) -> None:
    payload: object = state
    if wrapper == "module_prefix":
        payload = {f"module.{k}": v for k, v in state.items()}
    elif wrapper:
        payload = {wrapper: state, "epoch": 300}
    path = tmp_path / "weights.pth"
    torch.save(payload, path)
    loaded = models.create_model(NAME, checkpoint=path)
    reference = models.create_model(NAME)
    reference.load_state_dict(state)
    assert torch.equal(_logits(loaded), _logits(reference))


def test_safetensors_round_trip(tmp_path: Path, state) -> None:
    path = tmp_path / "weights.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    loaded = models.create_model(NAME, checkpoint=path)
    assert torch.equal(loaded.state_dict()["head.weight"], state["head.weight"])


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        models.create_model(NAME, checkpoint=tmp_path / "nope.pth")


def test_wrong_keys_are_named(tmp_path: Path, state) -> None:
    bad = dict(state)
    bad["extra.weight"] = torch.zeros(1)
    del bad["head.weight"]
    torch.save(bad, tmp_path / "w.pth")
    with pytest.raises(CheckpointError, match=r"missing keys: head\.weight.*unexpected keys: extra\.weight"):
        models.create_model(NAME, checkpoint=tmp_path / "w.pth")


def test_wrong_shapes_are_named(tmp_path: Path, state) -> None:
    bad = dict(state)
    bad["head.weight"] = torch.zeros(10, 220)
    torch.save(bad, tmp_path / "w.pth")
    with pytest.raises(CheckpointError, match=r"wrong shapes: head\.weight \(10, 220\) != \(1000, 220\)"):
        models.create_model(NAME, checkpoint=tmp_path / "w.pth")


def test_checkpoint_for_another_model_is_refused(tmp_path: Path) -> None:
    torch.save(models.create_model("swiftformer_xs").state_dict(), tmp_path / "w.pth")
    with pytest.raises(CheckpointError, match="does not fit casvit_xs"):
        models.create_model(NAME, checkpoint=tmp_path / "w.pth")


def test_truncated_file(tmp_path: Path, state) -> None:
    path = tmp_path / "w.pth"
    torch.save(state, path)
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        read_state_dict(path)


def test_truncated_safetensors(tmp_path: Path, state) -> None:
    path = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="corrupt safetensors"):
        read_state_dict(path)


class _Payload:
    """An arbitrary object: pickles of such objects can run code when loaded, so they are refused."""

    def __reduce__(self):
        return (print, ("this would run on load",))


def test_pickle_that_is_not_a_plain_state_dict_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pth"
    torch.save({"model": _Payload()}, path)
    with pytest.raises(CheckpointError, match="not a plain state dict"):
        read_state_dict(path)


def test_plain_pickle_of_non_tensors_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "odd.pth"
    torch.save({"weights": [1, 2, 3]}, path)
    with pytest.raises(CheckpointError, match="flat state dict of tensors"):
        read_state_dict(path)


def test_random_bytes_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "noise.pt"
    path.write_bytes(pickle.dumps(collections.Counter("abc"))[:3] + b"\x00garbage")
    with pytest.raises(CheckpointError):
        read_state_dict(path)
