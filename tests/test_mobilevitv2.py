"""MobileViTv2-specific checks: checkpoint names (timm and ml-cvnets), patching, odd sizes, export.

``data/official_keys/mobilevitv2_050.txt`` lists the state-dict keys and shapes of timm's
``mobilevitv2_050`` (timm 1.0.31, the layout of the ``mobilevitv2_*.cvnets_in1k`` checkpoints users
download); ``mobilevitv2_050_cvnets.txt`` lists those of the official ml-cvnets ``MobileViTv2`` at width
0.5 (apple/ml-cvnets @7771756). Both were generated from that code once, offline; the two files list
the same tensors in the same order. Counts, shapes, determinism and batch independence of every
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
from models.mobilevitv2 import (
    LinearSelfAttention,
    MobileViTv2Block,
    checkpoint_filter,
    fold_patches,
    unfold_patches,
)

KEYS_DIR = Path(__file__).parent / "data" / "official_keys"
NAME = "mobilevitv2_050"
SMALL = 64  # smallest input that keeps every stage at least 2x2


def read_keys(file_name: str) -> dict[str, tuple[int, ...]]:
    keys = {}
    for line in (KEYS_DIR / file_name).read_text().splitlines():
        name, _, shape = line.partition("\t")
        keys[name] = tuple(int(s) for s in shape.split("x")) if shape else ()
    return keys


def random_state(keys: dict[str, tuple[int, ...]], seed: int = 0) -> dict[str, torch.Tensor]:
    """Random tensors under the given names; BN variances and norm scales positive so every branch counts."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for name, shape in keys.items():
        if name.endswith("num_batches_tracked"):
            state[name] = torch.tensor(3, dtype=torch.long)
        elif name.endswith("running_var"):
            state[name] = torch.rand(shape, generator=gen) + 0.5
        else:
            state[name] = 0.2 * torch.randn(shape, generator=gen)
    return state


def logits(model: torch.nn.Module, size: int = SMALL, seed: int = 1) -> torch.Tensor:
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return model(x)


@pytest.fixture(scope="module")
def timm_state() -> dict[str, torch.Tensor]:
    return random_state(read_keys(f"{NAME}.txt"))


@pytest.fixture(scope="module")
def reference(timm_state: dict[str, torch.Tensor]) -> torch.nn.Module:
    model = models.create_model(NAME)
    model.load_state_dict(timm_state, strict=True)
    return model.eval()


def test_state_dict_keys_and_shapes_are_timms() -> None:
    ours = {k: tuple(v.shape) for k, v in models.create_model(NAME).state_dict().items()}
    assert ours == read_keys(f"{NAME}.txt")


def test_cvnets_names_map_one_to_one_onto_timms() -> None:
    cvnets, timm = read_keys(f"{NAME}_cvnets.txt"), read_keys(f"{NAME}.txt")
    mapped = checkpoint_filter({k: torch.empty(s) for k, s in cvnets.items()})
    assert list(mapped) == list(timm)  # same tensors, same order: a pure renaming
    assert {k: tuple(v.shape) for k, v in mapped.items()} == timm


@pytest.mark.parametrize(
    ("cvnets_key", "ours"),
    [
        ("conv_1.block.norm.running_var", "stem.bn.running_var"),
        ("layer_2.1.block.red_1x1.block.conv.weight", "stages.1.1.conv3_1x1.conv.weight"),
        ("layer_4.1.local_rep.1.block.conv.weight", "stages.3.1.conv_1x1.weight"),
        ("layer_4.1.global_rep.3.pre_norm_ffn.3.block.conv.bias", "stages.3.1.transformer.3.mlp.fc2.bias"),
        ("layer_4.1.global_rep.4.weight", "stages.3.1.norm.weight"),  # the GroupNorm after the 4 layers
        (
            "layer_5.1.global_rep.2.pre_norm_attn.1.qkv_proj.block.conv.weight",
            "stages.4.1.transformer.2.attn.qkv_proj.weight",
        ),
        ("classifier.1.weight", "head.fc.weight"),
    ],
)
def test_cvnets_key_renaming(cvnets_key: str, ours: str) -> None:
    marker = torch.tensor([1.0])
    assert checkpoint_filter({cvnets_key: marker, "conv_1.block.conv.weight": marker})[ours] is marker


@pytest.mark.parametrize("fmt", ["pth", "safetensors"])
def test_timm_checkpoint_round_trip(
    tmp_path: Path, timm_state: dict[str, torch.Tensor], reference: torch.nn.Module, fmt: str
) -> None:
    path = tmp_path / f"{NAME}.{fmt}"
    if fmt == "pth":
        torch.save(timm_state, path)
    else:
        save_file({k: v.contiguous() for k, v in timm_state.items()}, str(path))
    loaded = models.create_model(NAME, checkpoint=path)
    assert not loaded.training
    qkv = "stages.4.1.transformer.2.attn.qkv_proj.weight"
    assert torch.equal(loaded.state_dict()[qkv], timm_state[qkv])
    assert torch.equal(logits(loaded), logits(reference))


def test_cvnets_checkpoint_round_trip(tmp_path: Path, timm_state: dict[str, torch.Tensor]) -> None:
    """An ml-cvnets checkpoint holding the same tensors as the timm one gives the same network."""
    cvnets_names = list(read_keys(f"{NAME}_cvnets.txt"))
    cvnets_state = dict(zip(cvnets_names, timm_state.values(), strict=True))  # same order in both files
    torch.save({"state_dict": cvnets_state}, tmp_path / "cvnets.pt")
    from_cvnets = models.create_model(NAME, checkpoint=tmp_path / "cvnets.pt")
    torch.save(timm_state, tmp_path / "timm.pth")
    from_timm = models.create_model(NAME, checkpoint=tmp_path / "timm.pth")
    assert torch.equal(logits(from_cvnets), logits(from_timm))


def test_checkpoint_without_bn_counters_loads(tmp_path: Path, timm_state: dict[str, torch.Tensor]) -> None:
    trimmed = {k: v for k, v in timm_state.items() if not k.endswith("num_batches_tracked")}
    save_file({k: v.contiguous() for k, v in trimmed.items()}, str(tmp_path / "trimmed.safetensors"))
    model = models.create_model(NAME, checkpoint=tmp_path / "trimmed.safetensors")
    assert torch.equal(model.state_dict()["stem.conv.weight"], timm_state["stem.conv.weight"])


def test_wrong_width_checkpoint_is_refused(tmp_path: Path, timm_state: dict[str, torch.Tensor]) -> None:
    torch.save(timm_state, tmp_path / "050.pth")
    with pytest.raises(models.CheckpointError, match="wrong shapes"):
        models.create_model("mobilevitv2_075", checkpoint=tmp_path / "050.pth")


def test_distillation_head_is_refused() -> None:
    with pytest.raises(models.ModelError, match="no distillation head"):
        models.create_model(NAME, distillation=True)
    assert models.create_model(NAME, distillation=False) is not None


def test_cards() -> None:
    names = models.list_models("mobilevitv2")
    assert [models.get_card(n).variant for n in names] == ["0.5", "0.75", "1.0", "1.25", "1.5", "1.75", "2.0"]
    for name in names:
        card = models.get_card(name)
        assert card.default_resolution == 256
        assert not card.default_distillation and not card.fixed_resolution
        assert card.published_gmacs is None


@pytest.mark.parametrize(("h", "w"), [(4, 4), (8, 6), (2, 10)])
def test_unfold_and_fold_match_im2col_and_col2im(h: int, w: int) -> None:
    x = torch.randn(2, 3, h, w)
    patches = unfold_patches(x, 2)
    expected = F.unfold(x, kernel_size=2, stride=2).reshape(2, 3, 4, -1)
    assert torch.equal(patches, expected)
    folded = fold_patches(patches, 2, h // 2, w // 2)
    assert torch.equal(folded, F.fold(expected.reshape(2, 12, -1), (h, w), kernel_size=2, stride=2))
    assert torch.equal(folded, x)


def test_separable_attention_formula() -> None:
    """Softmax of the 1-channel query over the patches axis N, weighted keys, ReLU on the values only."""
    torch.manual_seed(0)
    attn = LinearSelfAttention(8).eval()
    x = torch.randn(2, 8, 4, 5)
    with torch.no_grad():
        qkv = attn.qkv_proj(x)
        q, k, v = qkv[:, :1], qkv[:, 1:9], qkv[:, 9:]
        weights = torch.exp(q) / torch.exp(q).sum(dim=-1, keepdim=True)
        context = torch.einsum("bdpn,bpn->bdp", k, weights[:, 0]).unsqueeze(-1)
        expected = attn.out_proj(v.clamp_min(0) * context)
        torch.testing.assert_close(attn(x), expected)


def test_groupnorm_normalises_over_channels_and_tokens_together() -> None:
    block = MobileViTv2Block(channels=8, dim=16, depth=1).eval()
    norm = block.transformer[0].norm1
    assert isinstance(norm, torch.nn.GroupNorm) and norm.num_groups == 1 and norm.eps == 1e-5
    x = torch.randn(2, 16, 4, 9)
    with torch.no_grad():
        flat = x.flatten(1)
        expected = (flat - flat.mean(1, keepdim=True)) / torch.sqrt(flat.var(1, unbiased=False, keepdim=True) + 1e-5)
        torch.testing.assert_close(norm(x), expected.view_as(x))


def test_odd_size_is_upsampled_with_align_corners_and_not_resized_back() -> None:
    torch.manual_seed(0)
    block = MobileViTv2Block(channels=8, dim=16, depth=1).eval()
    x = torch.randn(1, 8, 7, 5)
    with torch.no_grad():
        out = block(x)
        expected = block(F.interpolate(x, size=(8, 6), mode="bilinear", align_corners=True))
    assert out.shape == (1, 8, 8, 6)
    assert torch.equal(out, expected)


def test_224_input_runs_the_last_stage_at_8x8() -> None:
    model = models.create_model(NAME)
    seen = []
    model.stages[4][1].register_forward_hook(lambda _m, _i, out: seen.append(tuple(out.shape[-2:])))
    assert logits(model, 224).shape == (2, 1000)
    assert seen == [(8, 8)]


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
def test_onnx_export_at_odd_size_matches_onnxruntime(tmp_path: Path, reference: torch.nn.Module) -> None:
    ort = pytest.importorskip("onnxruntime")
    x = torch.randn(1, 3, 96, 96, generator=torch.Generator().manual_seed(2))  # 96 -> 3x3 at stage 4: resize
    path = tmp_path / "m.onnx"
    torch.onnx.export(reference, (x,), str(path), dynamo=False, input_names=["x"])
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {"x": x.numpy()})
    with torch.no_grad():
        np.testing.assert_allclose(out, reference(x).numpy(), atol=1e-4, rtol=0)
