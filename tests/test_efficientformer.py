"""EfficientFormer (V1) specifics: official checkpoint keys, the relative-position bias table, the fixed
resolution, and the pitfalls of the official ``self.ab`` bias cache that this implementation avoids.

``data/official_keys/efficientformer_l1.txt`` lists the state-dict keys and shapes of the official
``efficientformer_l1`` (snap-research/EfficientFormer @d01da426, default ``distillation=True``).
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

import models
from models.efficientformer import Attention, Flat, Meta3D, Meta4D, checkpoint_filter, relative_offset_index
from tests.official_keys import official_shapes, random_official_state

NAME = "efficientformer_l1"


def first_seen_offsets(resolution: int) -> torch.Tensor:
    """The official numbering, written independently: offsets (|dy|, |dx|) in first-seen order."""
    points = list(itertools.product(range(resolution), range(resolution)))
    seen: dict[tuple[int, int], int] = {}
    idxs = []
    for p1 in points:
        for p2 in points:
            offset = (abs(p1[0] - p2[0]), abs(p1[1] - p2[1]))
            idxs.append(seen.setdefault(offset, len(seen)))
    return torch.tensor(idxs).view(len(points), len(points))


def official_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """Random tensors under exactly the official names and shapes (official index buffers included)."""

    def index_buffer(key: str, shape: tuple[int, ...], _: torch.Generator) -> torch.Tensor | None:
        return first_seen_offsets(round(shape[0] ** 0.5)) if key.endswith("attention_bias_idxs") else None

    return random_official_state(NAME, seed, special=index_buffer)


def logits(model: nn.Module, size: int = 224, seed: int = 3) -> torch.Tensor:
    x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(seed))
    with torch.inference_mode():
        return model(x)


@pytest.fixture(scope="module")
def state() -> dict[str, torch.Tensor]:
    return official_state()


@pytest.fixture(scope="module")
def reference_logits(state) -> torch.Tensor:
    model = models.create_model(NAME)
    model.load_state_dict(checkpoint_filter(state))
    return logits(model)


@pytest.mark.parametrize("resolution", [1, 2, 4, 7, 8])
def test_index_table_equals_official_numbering(resolution: int) -> None:
    assert torch.equal(relative_offset_index(resolution), first_seen_offsets(resolution))


def test_state_dict_keys_are_official() -> None:
    ours = {k: tuple(v.shape) for k, v in models.create_model(NAME).state_dict().items()}
    expected = {k: s for k, s in official_shapes(NAME).items() if not k.endswith("attention_bias_idxs")}
    assert ours == expected


@pytest.mark.parametrize("fmt", ["pth", "safetensors"])
def test_official_checkpoint_round_trip(tmp_path: Path, state, reference_logits, fmt: str) -> None:
    path = tmp_path / f"official.{fmt}"
    if fmt == "pth":
        torch.save({"model": state}, path)  # the official checkpoints wrap the weights under "model"
    else:
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    loaded = models.create_model(NAME, checkpoint=path)
    key = "network.6.4.token_mixer.attention_biases"
    assert torch.equal(loaded.state_dict()[key], state[key])
    assert torch.equal(logits(loaded), reference_logits)


def test_scrambled_index_table_is_refused(tmp_path: Path, state) -> None:
    bad = dict(state)
    key = "network.6.4.token_mixer.attention_bias_idxs"
    bad[key] = bad[key].flip(0)
    torch.save(bad, tmp_path / "w.pth")
    with pytest.raises(models.CheckpointError, match="index table differs"):
        models.create_model(NAME, checkpoint=tmp_path / "w.pth")


def test_checkpoint_for_another_resolution_is_refused(tmp_path: Path, state) -> None:
    torch.save(state, tmp_path / "w.pth")
    with pytest.raises(models.CheckpointError, match=r"attention_biases \(8, 49\) != \(8, 64\)"):
        models.create_model(NAME, checkpoint=tmp_path / "w.pth", img_size=256)


def test_bias_is_read_at_forward_time() -> None:
    """The official cache (``self.ab``, filled in ``eval()``) goes stale when weights load after ``eval()``."""
    model = models.create_model(NAME, img_size=64)  # already in eval mode, zero biases
    state = model.state_dict()
    state["network.6.4.layer_scale_1"] = torch.ones_like(state["network.6.4.layer_scale_1"])
    model.load_state_dict(state)
    before = logits(model, 64)
    key = "network.6.4.token_mixer.attention_biases"
    state[key] = torch.randn(state[key].shape)
    model.load_state_dict(state)
    after = logits(model, 64)
    assert not torch.equal(before, after)
    reloaded = models.create_model(NAME, img_size=64)
    reloaded.load_state_dict(state)
    assert torch.equal(after, logits(reloaded, 64))


def test_to_after_eval_moves_the_bias_index() -> None:
    """``.eval()`` then ``.to()`` failed in the official code (cached bias left behind); here the index
    table is a non-persistent buffer, so it follows the module and stays out of checkpoints."""
    model = models.create_model(NAME, img_size=64).eval().to(torch.float64)
    assert "network.6.4.token_mixer.attention_bias_idxs" in dict(model.named_buffers())
    assert not any(k.endswith("attention_bias_idxs") for k in model.state_dict())
    assert model.network[6][4].token_mixer.attention_bias_idxs.dtype == torch.long
    with torch.inference_mode():
        out = model(torch.randn(1, 3, 64, 64, dtype=torch.float64))
    assert out.dtype == torch.float64


@pytest.mark.parametrize("size", [64, 256])
def test_builds_for_other_resolutions(size: int) -> None:
    model = models.create_model(NAME, img_size=size, num_classes=5)
    grid = size // 32
    attention = model.network[6][4].token_mixer
    assert attention.attention_biases.shape == (8, grid * grid)
    assert torch.equal(attention.attention_bias_idxs, first_seen_offsets(grid))
    assert logits(model, size).shape == (1, 5)


def test_input_of_another_size_is_refused() -> None:
    model = models.create_model(NAME, img_size=64)
    with pytest.raises(models.ModelError, match="built for 64x64"):
        logits(model, 96)


def test_official_details() -> None:
    model = models.create_model(NAME)
    blocks = list(model.modules())
    assert all(m.eps == 1e-5 for m in blocks if isinstance(m, nn.LayerNorm))
    assert all(m.approximate == "none" for m in blocks if isinstance(m, nn.GELU))
    for block in (m for m in blocks if isinstance(m, Meta3D | Meta4D)):
        assert torch.all(block.layer_scale_1 == 1e-5) and torch.all(block.layer_scale_2 == 1e-5)
    attention = next(m for m in blocks if isinstance(m, Attention))
    assert attention.qkv.out_features == 8 * (32 + 32 + 128) and attention.proj.in_features == 1024


@pytest.mark.parametrize(("name", "n_3d"), [("efficientformer_l1", 1), ("efficientformer_l3", 4)])
def test_meta3d_blocks_end_the_last_stage(name: str, n_3d: int) -> None:
    last = list(models.create_model(name, img_size=64).network[6])
    flat = next(i for i, m in enumerate(last) if isinstance(m, Flat))
    assert all(isinstance(m, Meta4D) for m in last[:flat])
    assert len(last[flat + 1 :]) == n_3d and all(isinstance(m, Meta3D) for m in last[flat + 1 :])


def test_training_mode_returns_both_heads() -> None:
    model = models.create_model(NAME, img_size=64).train()
    out = model(torch.randn(2, 3, 64, 64))
    assert isinstance(out, tuple) and len(out) == 2 and out[0].shape == (2, 1000)
    model.eval()
    with torch.inference_mode():
        x = torch.randn(1, 3, 64, 64)
        features = model.forward_features(x).mean(-2)
        expected = (model.head(features) + model.dist_head(features)) / 2
        assert torch.equal(model(x), expected)


def test_onnx_runtime_matches(tmp_path: Path, state) -> None:
    """The bias gather must survive export: compare ONNX Runtime logits with eager ones."""
    ort = pytest.importorskip("onnxruntime")
    model = models.create_model(NAME, img_size=64)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "attention_biases" in name or "layer_scale" in name:
                param.normal_(0, 0.3)
    x = torch.randn(2, 3, 64, 64)
    path = tmp_path / "model.onnx"
    torch.onnx.export(model, (x,), str(path), dynamo=False, opset_version=17, input_names=["x"])
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {"x": x.numpy()})
    with torch.inference_mode():
        expected = model(x)
    torch.testing.assert_close(torch.from_numpy(out), expected, rtol=0, atol=1e-4)
