"""EfficientFormerV2-specific checks: official checkpoint layout, bias index tables, no stale bias cache,
fixed-resolution handling, block details and ONNX export.

``data/official_keys/efficientformerv2_s0.txt`` lists the state-dict keys and shapes of the official
``efficientformerv2_s0`` at resolution 224 (snap-research/EfficientFormer @d01da426, default
``distillation=True``), generated once, offline, from the official code. It includes the official
``attention_bias_idxs`` buffers, which this implementation recomputes (non-persistent) and whose
checkpoint filter drops. Counts, shapes, determinism and batch independence of every variant are
covered by test_models.py.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from torch import nn

import models
from models.efficientformer_v2 import (
    Attention2d,
    Attention2dDownsample,
    AttnFFNBlock,
    FFNBlock,
    LocalGlobalQuery,
    checkpoint_filter,
    relative_bias_index,
)
from tests.official_keys import official_shapes, random_official_state

NAME = "efficientformerv2_s0"
SMALL = 64


def first_seen_index(key_res: int, query_res: int, step: int) -> torch.Tensor:
    """The official numbering: offsets get ids in the order they are first met, queries then keys row-major."""
    offsets: dict[tuple[int, int], int] = {}
    idxs = []
    for qy, qx in itertools.product(range(query_res), repeat=2):
        for ky, kx in itertools.product(range(key_res), repeat=2):
            offset = (abs(qy * step - ky), abs(qx * step - kx))
            idxs.append(offsets.setdefault(offset, len(offsets)))
    return torch.tensor(idxs).view(query_res**2, key_res**2)


def official_state_with_junk_indices(seed: int = 0) -> dict[str, torch.Tensor]:
    """Random tensors under the official names; the index buffers are junk, since they must be ignored."""

    def junk_index(key: str, shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor | None:
        return torch.randint(0, shape[1], shape, generator=gen) if key.endswith("attention_bias_idxs") else None

    return random_official_state(NAME, seed, positive=("running_var", "layer_scale"), special=junk_index)


@pytest.fixture(scope="module")
def official_state() -> dict[str, torch.Tensor]:
    return official_state_with_junk_indices()


@pytest.fixture(scope="module")
def image() -> torch.Tensor:
    return torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))


def test_state_dict_is_official_minus_index_buffers() -> None:
    model = models.create_model(NAME)
    official = official_shapes(NAME)
    persistent = {k: v for k, v in official.items() if not k.endswith("attention_bias_idxs")}
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == persistent
    # the index tables still exist, as non-persistent buffers, under the official names and shapes
    index_buffers = {k: tuple(v.shape) for k, v in model.named_buffers() if k.endswith("attention_bias_idxs")}
    assert index_buffers == {k: v for k, v in official.items() if k not in persistent}
    assert index_buffers["network.5.attn.attention_bias_idxs"] == (49, 196)


@pytest.mark.parametrize("fmt", ["pth", "safetensors"])
def test_official_checkpoint_round_trip(
    tmp_path: Path, official_state: dict[str, torch.Tensor], image: torch.Tensor, fmt: str
) -> None:
    path = tmp_path / f"{NAME}.{fmt}"
    if fmt == "pth":
        torch.save({"model": official_state}, path)  # the official training script wraps under "model"
    else:
        save_file(official_state, str(path))
    loaded = models.create_model(NAME, checkpoint=path)

    reference = models.create_model(NAME)
    reference.load_state_dict(checkpoint_filter(official_state), strict=True)
    state = loaded.state_dict()
    for key in (
        "network.4.5.token_mixer.attention_biases",
        "network.4.5.token_mixer.talking_head1.weight",
        "network.5.attn.q.local.0.weight",
        "network.6.3.layer_scale_1",
        "dist_head.weight",
    ):
        assert torch.equal(state[key], official_state[key])
    # the junk index tables in the file were dropped; ours are the computed ones
    assert torch.equal(loaded.network[5].attn.attention_bias_idxs, first_seen_index(14, 7, 2))

    with torch.inference_mode():
        out, ref = loaded(image), reference(image)
    assert torch.equal(out, ref)


def test_checkpoint_filter_only_drops_index_buffers(official_state: dict[str, torch.Tensor]) -> None:
    filtered = checkpoint_filter(official_state)
    dropped = set(official_state) - set(filtered)
    assert dropped and all(k.endswith("attention_bias_idxs") for k in dropped)
    assert len(dropped) == 5  # 2 strided (stage 3) + 2 plain (stage 4) attentions + the downsample attention


@pytest.mark.parametrize(
    ("key_res", "query_res", "step"),
    [(7, 7, 1), (2, 2, 1), (5, 5, 1), (14, 7, 2), (10, 5, 2), (4, 2, 2)],
)
def test_bias_index_matches_official_first_seen_order(key_res: int, query_res: int, step: int) -> None:
    idx = relative_bias_index(key_res, query_res, step)
    assert torch.equal(idx, first_seen_index(key_res, query_res, step))
    assert int(idx.max()) + 1 == key_res**2  # every table entry is used


@pytest.mark.parametrize(("img_size", "grid"), [(224, 7), (256, 8), (160, 5)])
def test_img_size_sizes_attention_tables(img_size: int, grid: int) -> None:
    model = models.create_model(NAME, img_size=img_size, num_classes=0)
    stage3_attn = model.network[4][-1].token_mixer  # strided: attends at half of the stage-3 grid
    stage4_attn = model.network[6][-1].token_mixer
    down = model.network[5].attn
    assert stage3_attn.stride_conv is not None and stage3_attn.upsample is not None
    assert stage4_attn.stride_conv is None and stage4_attn.upsample is None
    for attn in (stage3_attn, stage4_attn):
        assert attn.attention_biases.shape == (8, grid * grid)
        assert attn.attention_bias_idxs.shape == (grid * grid, grid * grid)
    assert down.attention_biases.shape == (8, (2 * grid) ** 2)
    assert down.attention_bias_idxs.shape == (grid * grid, (2 * grid) ** 2)
    with torch.inference_mode():
        out = model(torch.randn(1, 3, img_size, img_size))
    assert out.shape == (1, 176)


def test_wrong_input_size_is_a_clear_error() -> None:
    model = models.create_model(NAME, img_size=SMALL)
    with pytest.raises(models.ModelError, match=r"built for 64x64 input, got 96x96; rebuild with img_size=96"):
        model(torch.randn(1, 3, 96, 96))


def test_bias_changes_after_eval_take_effect() -> None:
    """Upstream caches the gathered bias when switching to eval; loading weights afterwards was silently ignored."""
    torch.manual_seed(0)
    model = models.create_model(NAME, img_size=SMALL).eval()
    x = torch.randn(1, 3, SMALL, SMALL)
    with torch.inference_mode():
        before = model(x)
    state = model.state_dict()
    for key in state:
        if key.endswith("attention_biases"):
            state[key] = torch.randn_like(state[key])
    model.load_state_dict(state)
    with torch.inference_mode():
        after = model(x)
    assert not torch.allclose(before, after)
    # and a fresh model given the same state agrees exactly
    fresh = models.create_model(NAME, img_size=SMALL)
    fresh.load_state_dict(state)
    with torch.inference_mode():
        assert torch.equal(fresh(x), after)


def test_to_after_eval_moves_index_tables() -> None:
    model = models.create_model(NAME, img_size=SMALL).eval().to(torch.float64)
    idx = model.network[6][-1].token_mixer.attention_bias_idxs
    assert idx.dtype == torch.long  # index tables survive dtype casts
    with torch.inference_mode():
        out = model(torch.randn(1, 3, SMALL, SMALL, dtype=torch.float64))
    assert out.dtype == torch.float64


def test_local_global_query_pool_is_strided_subsampling() -> None:
    lgq = LocalGlobalQuery(8, 16)
    for size in (14, 7):  # even and odd grids
        x = torch.randn(2, 8, size, size)
        torch.testing.assert_close(lgq.pool(x), x[..., ::2, ::2], rtol=0, atol=0)


def test_block_layout_and_official_details() -> None:
    model = models.create_model(NAME)
    stages = [model.network[i] for i in (0, 2, 4, 6)]
    kinds = [["attn" if isinstance(b, AttnFFNBlock) else "ffn" for b in stage] for stage in stages]
    assert kinds == [["ffn"] * 2, ["ffn"] * 2, ["ffn"] * 4 + ["attn"] * 2, ["ffn"] * 2 + ["attn"] * 2]
    ratios = [[b.mlp.fc1.out_channels // b.mlp.fc1.in_channels for b in stage] for stage in stages]
    assert ratios == [[4, 4], [4, 4], [4, 3, 3, 3, 4, 4], [4, 3, 3, 4]]

    acts = [m for m in model.modules() if isinstance(m, nn.GELU)]
    assert acts and all(m.approximate == "none" for m in acts)
    assert not any(isinstance(m, (nn.ReLU, nn.LayerNorm, nn.Hardswish)) for m in model.modules())
    assert isinstance(model.patch_embed[2], nn.GELU) and isinstance(model.patch_embed[5], nn.GELU)
    assert all(m.eps == 1e-5 for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    for block in model.modules():
        if isinstance(block, (FFNBlock, AttnFFNBlock)):
            assert torch.all(block.layer_scale_2 == 1e-5)
    for m in model.modules():
        if isinstance(m, Attention2d):
            assert m.num_heads == 8 and m.key_dim == 32 and m.val_total == 1024
            assert math.isclose(m.scale, 32**-0.5)
            assert m.talking_head1.in_channels == m.talking_head2.out_channels == 8
        if isinstance(m, Attention2dDownsample):
            assert m.key_dim == 16 and m.val_total == 512
            assert not hasattr(m, "talking_head1")  # no talking heads in the downsampling attention


def test_train_mode_returns_both_heads() -> None:
    model = models.create_model(NAME, img_size=SMALL).train()
    out = model(torch.randn(2, 3, SMALL, SMALL))
    assert isinstance(out, tuple) and len(out) == 2
    model.eval()
    x = torch.randn(2, 3, SMALL, SMALL)
    with torch.inference_mode():
        feats = model.forward_features(x).flatten(2).mean(-1)
        torch.testing.assert_close(model(x), (model.head(feats) + model.dist_head(feats)) / 2)


def test_onnx_export_matches_onnxruntime(tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    model = models.create_model(NAME, img_size=SMALL)
    with torch.no_grad():  # non-trivial statistics and biases so the comparison means something
        for key, t in model.state_dict().items():
            if key.endswith("running_var"):
                t.uniform_(0.5, 1.5)
            elif key.endswith(("running_mean", "attention_biases")):
                t.normal_(0, 0.2)
    x = torch.randn(2, 3, SMALL, SMALL)
    path = tmp_path / "effv2.onnx"
    torch.onnx.export(
        model,
        (x,),
        str(path),
        dynamo=False,
        opset_version=17,
        input_names=["x"],
        output_names=["logits"],
        dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}},
    )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    with torch.inference_mode():
        ref = model(x).numpy()
    out = session.run(None, {"x": x.numpy()})[0]
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-4)
    single = session.run(None, {"x": x[:1].numpy()})[0]
    np.testing.assert_allclose(single, ref[:1], rtol=0, atol=1e-4)


def test_torch_export_round_trip() -> None:
    model = models.create_model(NAME, img_size=SMALL)
    x = torch.randn(2, 3, SMALL, SMALL)
    program = torch.export.export(model, (x,))
    with torch.inference_mode():
        torch.testing.assert_close(program.module()(x), model(x), rtol=0, atol=1e-5)
