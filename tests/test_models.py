"""Every variant of the zoo: exact parameter counts, output shape, determinism, batch independence.

The expected counts are the exact trainable-parameter counts of the official implementations
(with the distillation head where the official constructor builds one, and without it), taken from
the official code (see ../shared/reference/ notes); they are the fidelity bar, not our own output.
"""

from __future__ import annotations

import pytest
import torch

import models
from models.errors import UnknownModelError

# name: (official default construction, distillation=False)
OFFICIAL_PARAMS = {
    "casvit_xs": (3_200_700, 2_979_700),
    "casvit_s": (5_764_224, 5_507_224),
    "casvit_m": (12_421_520, 12_036_520),
    "casvit_t": (21_763_120, 21_250_120),
    "mobilevitv2_050": (1_370_593, 1_370_593),
    "mobilevitv2_075": (2_866_009, 2_866_009),
    "mobilevitv2_100": (4_901_841, 4_901_841),
    "mobilevitv2_125": (7_478_089, 7_478_089),
    "mobilevitv2_150": (10_594_753, 10_594_753),
    "mobilevitv2_175": (14_251_833, 14_251_833),
    "mobilevitv2_200": (18_449_329, 18_449_329),
    "swiftformer_xs": (3_475_360, 3_254_360),
    "swiftformer_s": (6_092_128, 5_867_128),
    "swiftformer_l1": (12_057_920, 11_672_920),
    "swiftformer_l3": (28_494_736, 27_981_736),
    "efficientformer_l1": (12_289_928, 11_840_928),
    "efficientformer_l3": (31_406_000, 30_893_000),
    "efficientformer_l7": (82_229_328, 81_460_328),
    "efficientformerv2_s0": (3_600_256, 3_423_256),
    "efficientformerv2_s1": (6_185_560, 5_960_560),
    "efficientformerv2_s2": (12_710_112, 12_421_112),
    "efficientformerv2_l": (26_322_288, 25_937_288),
}

SMALL = 64  # forward-pass checks run at a small size to keep the suite fast; every family supports it


def trainable(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def test_zoo_has_exactly_the_22_variants() -> None:
    assert models.list_models() == list(OFFICIAL_PARAMS)


@pytest.mark.parametrize("name", OFFICIAL_PARAMS)
def test_parameter_counts_equal_official(name: str) -> None:
    with_default, single_head = OFFICIAL_PARAMS[name]
    assert trainable(models.create_model(name)) == with_default
    card = models.get_card(name)
    if card.default_distillation:
        assert trainable(models.create_model(name, distillation=False)) == single_head
    # the card's published (rounded) count agrees with the exact count
    assert abs(card.published_params_m - with_default / 1e6) < 0.15 + 0.01 * card.published_params_m


@pytest.mark.parametrize("name", OFFICIAL_PARAMS)
def test_default_resolution_forward_shape(name: str) -> None:
    torch.manual_seed(0)
    model = models.create_model(name, num_classes=10)
    assert not model.training
    size = models.get_card(name).default_resolution
    with torch.inference_mode():
        out = model(torch.randn(1, 3, size, size))
    assert out.shape == (1, 10)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", OFFICIAL_PARAMS)
def test_deterministic_and_batch_independent(name: str) -> None:
    torch.manual_seed(0)
    model = models.create_model(name, img_size=SMALL)
    x = torch.randn(3, 3, SMALL, SMALL)
    with torch.inference_mode():
        batch = model(x)
        again = model(x)
        singles = torch.cat([model(x[i : i + 1]) for i in range(3)])
    assert batch.shape == (3, 1000)
    assert torch.equal(batch, again)
    torch.testing.assert_close(batch, singles, rtol=1e-4, atol=1e-5)
    # the rows really differ (a network ignoring its input would pass the checks above)
    assert not torch.allclose(batch[0], batch[1])


def test_unknown_model_lists_close_matches() -> None:
    with pytest.raises(UnknownModelError, match="casvit_xs"):
        models.create_model("casvit_xx")


@pytest.mark.parametrize("size", [0, 100, -32])
def test_impossible_resolution_is_refused(size: int) -> None:
    with pytest.raises(models.ModelError, match="multiple of 32"):
        models.create_model("casvit_xs", img_size=size)


def test_cards_are_complete() -> None:
    for name in models.list_models():
        card = models.get_card(name)
        assert card.family and card.variant and card.citation and card.top1_source
        assert card.default_resolution in (224, 256)
        assert card.top1 is None or 60 < card.top1 < 90
