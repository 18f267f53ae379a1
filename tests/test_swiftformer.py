"""SwiftFormer-specific checks: official checkpoint layout, attention details, layer scales, export.

``data/official_keys/swiftformer_xs.txt`` lists the state-dict keys and shapes of the official
``SwiftFormer_XS`` (Amshaker/SwiftFormer @4aa6cd67, default ``distillation=True``); it was generated
from the official code once, offline. Counts, shapes, determinism and batch independence of every
variant are covered by test_models.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

import models
from models.swiftformer import ConvEncoder, EfficientAdditiveAttention, SwiftFormerEncoder
from tests.official_keys import official_shapes, random_official_state

SMALL = 64


@pytest.fixture(scope="module")
def official_state() -> dict[str, torch.Tensor]:
    return random_official_state("swiftformer_xs", positive=("running_var", "layer_scale"))


def test_state_dict_keys_and_shapes_are_the_official_ones() -> None:
    model = models.create_model("swiftformer_xs")
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert ours == official_shapes("swiftformer_xs")


@pytest.mark.parametrize("fmt", ["pth", "safetensors"])
def test_official_checkpoint_round_trip(tmp_path: Path, official_state: dict[str, torch.Tensor], fmt: str) -> None:
    path = tmp_path / f"swiftformer_xs.{fmt}"
    if fmt == "pth":
        torch.save({"model": official_state}, path)  # the official training script wraps under "model"
    else:
        save_file(official_state, str(path))
    loaded = models.create_model("swiftformer_xs", checkpoint=path)

    reference = models.create_model("swiftformer_xs")
    reference.load_state_dict(official_state, strict=True)
    for key in ("network.6.3.attn.w_g", "network.6.3.attn.Proj.weight", "dist_head.weight"):
        assert torch.equal(loaded.state_dict()[key], official_state[key])

    x = torch.randn(2, 3, SMALL, SMALL, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        out, ref = loaded(x), reference(x)
    assert torch.equal(out, ref)
    assert torch.isfinite(out).all()


def test_single_head_model_names_dist_head_when_given_official_checkpoint(
    tmp_path: Path, official_state: dict[str, torch.Tensor]
) -> None:
    path = tmp_path / "xs.pth"
    torch.save(official_state, path)
    with pytest.raises(models.CheckpointError, match="dist_head"):
        models.create_model("swiftformer_xs", checkpoint=path, distillation=False)
    single = {k: v for k, v in official_state.items() if not k.startswith("dist_head")}
    torch.save(single, path)
    model = models.create_model("swiftformer_xs", checkpoint=path, distillation=False)
    assert model.dist_head is None


def test_eval_averages_heads_and_training_returns_both(official_state: dict[str, torch.Tensor]) -> None:
    model = models.create_model("swiftformer_xs")
    model.load_state_dict(official_state)
    x = torch.randn(2, 3, SMALL, SMALL)
    with torch.no_grad():
        features = model.forward_features(x).flatten(2).mean(-1)
        expected = (model.head(features) + model.dist_head(features)) / 2
        torch.testing.assert_close(model(x), expected)
        model.train()
        model.apply(lambda m: m.eval() if isinstance(m, torch.nn.BatchNorm2d) else None)
        cls, dist = model(x)
    torch.testing.assert_close(cls, model.head(features).detach())
    torch.testing.assert_close(dist, model.dist_head(features).detach())


def test_layer_scale_inits_are_official() -> None:
    model = models.create_model("swiftformer_s")
    encoders = [m for m in model.modules() if isinstance(m, SwiftFormerEncoder)]
    conv_encoders = [m for m in model.modules() if isinstance(m, ConvEncoder)]
    assert len(encoders) == 4  # one per stage, always the last block
    assert len(conv_encoders) == (3 + 3 + 9 + 6 - 4) + 4  # plain blocks + one local representation each
    for stage in model.network[::2]:
        assert isinstance(stage[-1], SwiftFormerEncoder)
    for block in conv_encoders:
        assert torch.equal(block.layer_scale, torch.ones_like(block.layer_scale))
    for block in encoders:
        assert torch.equal(block.layer_scale_1, torch.full_like(block.layer_scale_1, 1e-5))
        assert torch.equal(block.layer_scale_2, torch.full_like(block.layer_scale_2, 1e-5))
        assert block.local_representation.pwconv1.out_channels == block.local_representation.pwconv1.in_channels


def test_attention_matches_the_published_formula() -> None:
    """L2 normalisation over tokens (not the March 2023 softmax over a size-1 axis, which gave all ones)."""
    torch.manual_seed(0)
    dim, tokens = 16, 12
    attn = EfficientAdditiveAttention(dim).eval()
    x = torch.randn(3, tokens, dim)
    with torch.no_grad():
        q = F.normalize(attn.to_query(x), dim=-1)
        k = F.normalize(attn.to_key(x), dim=-1)
        scores = torch.einsum("bnd,d->bn", q, attn.w_g[:, 0]) * dim**-0.5
        weights = scores / scores.norm(dim=1, keepdim=True).clamp_min(1e-12)
        global_query = torch.einsum("bn,bnd->bd", weights, q)
        expected = attn.final(attn.Proj(global_query[:, None, :] * k) + q)
        out = attn(x)
        # permuting tokens permutes the output: the global query is order-free
        perm = torch.randperm(tokens)
        permuted = attn(x[:, perm])
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(permuted, out[:, perm], rtol=1e-5, atol=1e-6)
    assert not torch.allclose(weights, weights[:, :1].expand_as(weights))


def test_encoder_token_layout_on_non_square_maps() -> None:
    """Tokens are row-major over (H, W) and go back to the same pixels, checked on a 3x5 map."""
    torch.manual_seed(0)
    block = SwiftFormerEncoder(8).eval()
    with torch.no_grad():
        block.layer_scale_1.fill_(1.0)
        block.layer_scale_2.fill_(1.0)
        x = torch.randn(2, 8, 3, 5)
        out = block(x)
        # the official channels-last route
        y = block.local_representation(x)
        b, c, h, w = y.shape
        attn = block.attn(y.permute(0, 2, 3, 1).reshape(b, h * w, c)).reshape(b, h, w, c).permute(0, 3, 1, 2)
        y = y + attn
        expected = y + block.linear(y)
    torch.testing.assert_close(out, expected, rtol=0, atol=0)


def test_any_multiple_of_32_including_non_square() -> None:
    model = models.create_model("swiftformer_xs", num_classes=5)
    with torch.inference_mode():
        assert model(torch.randn(1, 3, 96, 64)).shape == (1, 5)
        assert model(torch.randn(1, 3, 32, 32)).shape == (1, 5)


def test_onnx_export_matches_onnxruntime(tmp_path: Path, official_state: dict[str, torch.Tensor]) -> None:
    """F.normalize exports as ReduceL2 + Clip + Expand + Div; ONNX Runtime must give the same logits."""
    ort = pytest.importorskip("onnxruntime")
    model = models.create_model("swiftformer_xs")
    model.load_state_dict(official_state)
    x = torch.randn(2, 3, SMALL, SMALL, generator=torch.Generator().manual_seed(3))
    path = tmp_path / "xs.onnx"
    torch.onnx.export(
        model,
        (x,),
        str(path),
        input_names=["input"],
        output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    with torch.inference_mode():
        for batch in (x, x[:1]):
            got = session.run(None, {"input": batch.numpy()})[0]
            want = model(batch).numpy()
            # these random weights give logits of order 100: compare relative to that scale
            assert np.abs(got - want).max() < 1e-5 * np.abs(want).max()


def test_torch_export_with_dynamic_batch() -> None:
    model = models.create_model("swiftformer_xs")
    x = torch.randn(2, 3, SMALL, SMALL)
    program = torch.export.export(model, (x,), dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=16)},))
    y = torch.randn(5, 3, SMALL, SMALL)
    with torch.inference_mode():
        torch.testing.assert_close(program.module()(y), model(y), rtol=1e-5, atol=1e-6)
