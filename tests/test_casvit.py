"""CAS-ViT specific checks: official checkpoint keys, the standalone CATM mixer, heads and structure.

Generic zoo properties (parameter counts, output shapes, determinism, batch independence) live in
``tests/test_models.py``.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import torch
from torch import nn

from models import CheckpointError, create_model
from models.casvit import (
    AdditiveBlock,
    AdditiveTokenMixer,
    CASBlock,
    ChannelOperation,
    SpatialOperation,
)
from tests.official_keys import official_shapes, random_official_state


def test_official_key_names_and_shapes() -> None:
    model = create_model("casvit_xs")
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert ours == official_shapes("casvit_xs")


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_official_checkpoint_round_trip(tmp_path: Path, suffix: str) -> None:
    state = random_official_state("casvit_xs", scale=0.1)
    path = tmp_path / f"rcvit_xs{suffix}"
    if suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, str(path))
    else:
        torch.save({"model": state}, path)  # official training checkpoints wrap the weights under "model"

    loaded = create_model("casvit_xs", checkpoint=path)
    reference = create_model("casvit_xs")
    reference.load_state_dict(state, strict=True)

    torch.testing.assert_close(loaded.network[4][1].attn.proj.weight, state["network.4.1.attn.proj.weight"])
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out, ref = loaded(x), reference(x)
    assert out.shape == (2, 1000)
    assert torch.equal(out, ref)


def test_checkpoint_without_dist_head_builds_the_single_head_network(tmp_path: Path) -> None:
    """The official training script builds the network with distillation=False, so released weights may
    lack ``dist_head``: by default the model follows the file; asking for the head explicitly is refused."""
    state = {k: v for k, v in random_official_state("casvit_xs", scale=0.1).items() if not k.startswith("dist_head.")}
    path = tmp_path / "single_head.pth"
    torch.save(state, path)
    for model in (
        create_model("casvit_xs", checkpoint=path),
        create_model("casvit_xs", checkpoint=path, distillation=False),
    ):
        assert model.dist_head is None
        torch.testing.assert_close(model.head.bias, state["head.bias"])
    with pytest.raises(CheckpointError, match=r"missing keys: dist_head\.weight"):
        create_model("casvit_xs", checkpoint=path, distillation=True)


def test_heads_average_in_eval_and_pair_in_training() -> None:
    torch.manual_seed(0)
    model = create_model("casvit_xs")
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        feats = model.forward_features(x).flatten(2).mean(-1)
        expected = (model.head(feats) + model.dist_head(feats)) / 2
        torch.testing.assert_close(model(x), expected, rtol=0, atol=1e-6)
        model.train()
        both = model(x)
    assert isinstance(both, tuple) and len(both) == 2

    features_only = create_model("casvit_xs", num_classes=0)
    with torch.no_grad():
        assert features_only(x).shape == (1, 220)


def test_card_matches_brief() -> None:
    from models import get_card, list_models

    assert list_models("casvit") == ["casvit_xs", "casvit_s", "casvit_m", "casvit_t"]
    tops = [get_card(n).top1 for n in list_models("casvit")]
    gmacs = [get_card(n).published_gmacs for n in list_models("casvit")]
    assert tops == [77.5, 80.2, 81.4, 82.3]
    assert gmacs == [0.56, 0.93, 1.89, None]
    for name in list_models("casvit"):
        card = get_card(name)
        assert card.default_distillation and not card.fixed_resolution and card.default_resolution == 224


# --- the standalone CATM mixer (imported on its own by the complexity analysis) ----------------------------


def test_mixer_constructor_takes_only_dim() -> None:
    params = inspect.signature(AdditiveTokenMixer).parameters
    assert next(iter(params)) == "dim"
    assert all(p.default is not inspect.Parameter.empty for name, p in params.items() if name != "dim")
    assert CASBlock is AdditiveBlock


@pytest.mark.parametrize(("batch", "height", "width", "dim"), [(1, 7, 7, 8), (2, 14, 9, 16), (3, 5, 12, 24)])
def test_mixer_any_grid(batch: int, height: int, width: int, dim: int) -> None:
    torch.manual_seed(0)
    mixer = AdditiveTokenMixer(dim).eval()
    block = AdditiveBlock(dim).eval()
    x = torch.randn(batch, dim, height, width)
    with torch.no_grad():
        assert mixer(x).shape == x.shape
        assert block(x).shape == x.shape
        # No batch mixing: each image alone gives the same result.
        torch.testing.assert_close(mixer(x[-1:]), mixer(x)[-1:], rtol=0, atol=1e-6)


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("dim", [8, 48, 220])
def test_closed_form_parameter_counts(dim: int) -> None:
    """Mixer 5C^2 + 46C and block 15C^2 + 69C (no layer scale, qkv without bias): the reference notes'
    per-block count, which together with the heads gives the official totals."""
    assert _count(AdditiveTokenMixer(dim)) == 5 * dim * dim + 46 * dim
    assert _count(AdditiveBlock(dim)) == 15 * dim * dim + 69 * dim


def test_mixer_structure_details() -> None:
    """Easy-to-miss official details: depthwise 3x3 ``proj`` and ``dwc``, bias-free qkv and gates,
    spatial gate before channel gate, only BatchNorm, exact GELU."""
    dim = 16
    mixer = AdditiveTokenMixer(dim)
    assert mixer.qkv.bias is None and mixer.qkv.kernel_size == (1, 1)
    for conv in (mixer.dwc, mixer.proj):
        assert conv.kernel_size == (3, 3) and conv.groups == dim and conv.bias is not None
    for oper in (mixer.oper_q, mixer.oper_k):
        assert isinstance(oper[0], SpatialOperation) and isinstance(oper[1], ChannelOperation)
        assert oper[0].block[3].out_channels == 1 and oper[0].block[3].bias is None
        assert oper[1].block[1].bias is None
    assert mixer.oper_q[0].block[0].weight.data_ptr() != mixer.oper_k[0].block[0].weight.data_ptr()

    model = create_model("casvit_xs")
    kinds = {type(m) for m in model.modules()}
    assert nn.LayerNorm not in kinds and nn.GroupNorm not in kinds
    assert all(m.approximate == "none" for m in model.modules() if isinstance(m, nn.GELU))
    assert not any("gamma" in k or "layer_scale" in k for k in model.state_dict())


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_mixer_onnx_matches_eager(tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    mixer = AdditiveTokenMixer(24).eval()
    x = torch.randn(2, 24, 10, 13)
    path = tmp_path / "catm.onnx"
    torch.onnx.export(mixer, (x,), str(path), dynamo=False, input_names=["x"], output_names=["y"])
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {"x": x.numpy()})
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(out), mixer(x), rtol=0, atol=1e-5)


# --- resolution -------------------------------------------------------------------------------------------


def test_non_square_and_non_default_resolution() -> None:
    torch.manual_seed(0)
    model = create_model("casvit_xs", img_size=256)
    base = create_model("casvit_xs")
    assert _count(model) == _count(base)
    with torch.no_grad():
        assert model(torch.randn(1, 3, 96, 160)).shape == (1, 1000)
        assert model.forward_features(torch.randn(1, 3, 96, 160)).shape == (1, 220, 3, 5)
