"""``bench flops``: units, the two counters and why they differ, uncounted ops, the published rules."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pytest
import torch
from torch import nn

import models
from bench.commands import flops as flops_command
from bench.core.measure import counting
from tests.conftest import assert_one_line_error, run_cli


class ConvBnLinear(nn.Module):
    """Every op kind both counters see (conv, linear), one only fvcore prices (BN, pooling) and two no
    counter prices (sigmoid, mul)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn(self.conv(x))
        y = y * torch.sigmoid(y)
        return self.fc(self.pool(y).flatten(1))


# hand counts for one 3x32x32 image
CONV_MACS = 32 * 32 * 8 * 3 * 9
BN_FVCORE = 2 * 8 * 32 * 32  # eval BatchNorm with affine: 2 per element
POOL_FVCORE = 8 * 32 * 32  # 1 per input element
FC_MACS = 8 * 10


def test_units_are_macs_per_image_and_flopcounter_is_halved() -> None:
    report = counting.count_model(ConvBnLinear(), "toy", resolution=32, batch_size=4)
    assert report.fvcore_macs == CONV_MACS + BN_FVCORE + POOL_FVCORE + FC_MACS
    # FlopCounterMode counts 2 FLOPs per multiply-add; the report converts it to MACs
    assert report.flopcounter_macs == CONV_MACS + FC_MACS
    assert counting.fvcore_gmacs(ConvBnLinear(), 32) == pytest.approx(report.fvcore_macs / 1e9)


def test_counter_difference_is_explained_by_category() -> None:
    report = counting.count_model(ConvBnLinear(), "toy", resolution=32)
    cats = report.by_category().set_index("category")
    assert cats.loc["conv", "difference_gmacs"] == 0 and cats.loc["conv", "why"] == "identical"
    assert cats.loc["matmul", "difference_gmacs"] == 0
    assert cats.loc["norm", "difference_gmacs"] * 1e9 == pytest.approx(BN_FVCORE)
    assert cats.loc["pool", "difference_gmacs"] * 1e9 == pytest.approx(POOL_FVCORE)
    assert "BatchNorm" in cats.loc["norm", "why"]
    # nothing is left unexplained: the categories add up to the whole gap
    gap = (report.fvcore_macs - report.flopcounter_macs) / 1e9
    assert cats["difference_gmacs"].sum() == pytest.approx(gap)


def test_uncounted_operators_are_reported_with_occurrences() -> None:
    report = counting.count_model(ConvBnLinear(), "toy", resolution=32)
    assert report.uncounted["sigmoid"] == 1
    assert report.uncounted["mul"] == 1
    table = flops_command.uncounted_frame([report])
    assert set(table["operator"]) >= {"sigmoid", "mul"}


def test_fvcore_gmacs_is_cached_and_leaves_training_mode_alone(tmp_path: Path) -> None:
    model = ConvBnLinear().train()
    first = counting.fvcore_gmacs(model, 32)
    assert model.training, "counting must not leave the model in eval mode"
    assert counting.cached_gmacs(model, 32, tmp_path) == round(first, 4)
    assert (tmp_path / counting.GMACS_CACHE_FILE).exists()
    assert counting.cached_gmacs(ConvBnLinear(), 32, tmp_path) == round(first, 4)  # same architecture: cached
    # counted in eval mode: BatchNorm at 2/elem, not the training-mode price
    assert first * 1e9 == CONV_MACS + BN_FVCORE + POOL_FVCORE + FC_MACS


def test_published_counting_rules() -> None:
    model = ConvBnLinear()
    thop = counting.rule_gmacs(model, 32, counting.THOP_RULE) * 1e9
    # thop: BN 4/elem, adaptive pool (window + 1) per output element
    assert thop == CONV_MACS + 2 * BN_FVCORE + (32 * 32 + 1) * 8 + FC_MACS
    toolbox = counting.rule_gmacs(model, 32, counting.TOOLBOX_RULE) * 1e9
    assert toolbox == CONV_MACS + FC_MACS  # EfficientFormer's toolbox skips BN and adaptive pooling


def testpublished_match_uses_the_published_rounding() -> None:
    assert counting.published_decimals(0.56) == 2 and counting.published_decimals(1.3) == 1
    assert flops_command.published_match(0.56, 0.5601) == "yes"
    assert flops_command.published_match(1.3, 1.3106) == "yes"
    assert flops_command.published_match(0.56, 0.5541).startswith("no (-0.6")
    assert flops_command.published_match(None, 0.5) == "-"


def test_module_totals_sum_uncalled_containers() -> None:
    scoped = {"": 10.0, "a.0": 3.0, "a.0.x": 1.0, "a.1": 4.0, "b": 3.0}
    assert counting.module_totals(scoped, ["", "a", "a.0", "b"]) == {"": 10.0, "a": 7.0, "a.0": 3.0, "b": 3.0}


def test_casvit_matches_its_published_count_under_thop_rules() -> None:
    report = counting.count_gmacs("casvit_xs")
    summary = flops_command.summary_frame([report]).iloc[0]
    assert summary["fvcore_gmacs"] == pytest.approx(0.554062, abs=1e-6)  # official rcvit_xs, fvcore
    assert summary["rule_matches_published"] == "yes"  # thop 0.5601 -> published 0.56
    assert summary["gap_by_category"] == "norm +0.0061, pool +0.0010"


def test_cli_csv_and_one_line_errors(tmp_path) -> None:
    proc = run_cli("flops", "--models", "casvit_xs", "--resolution", "64", "--format", "csv", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    row = pd.read_csv(io.StringIO(proc.stdout)).iloc[0]
    assert row["model"] == "casvit_xs" and row["resolution"] == 64
    assert pd.isna(row["published_gmacs"])  # published at 224 only
    assert {"flops.csv", "flops.md", "flops_by_module.csv", "uncounted_ops.csv"} <= {p.name for p in tmp_path.iterdir()}
    assert_one_line_error(run_cli("flops", "--models", "casvit_xs", "--batch-size", "0"), "--batch-size")


def _partly_frozen(name: str) -> nn.Module:
    """``name`` with its first parameter frozen, as a fine-tuning checkpoint may leave a network."""
    torch.manual_seed(0)
    model = models.create_model(name, img_size=64)
    next(model.parameters()).requires_grad_(False)
    return model


@pytest.mark.parametrize("name", models.list_models())
def test_run_counts_every_parameter_as_flops_does(name: str, tmp_path: Path) -> None:
    """``param_count`` (``bench run``) is :func:`counting.count_parameters`, which ``bench flops`` reports:
    every parameter, frozen ones too (checked on every model; the flops table itself below)."""
    from bench.core.measure import engine

    model = _partly_frozen(name)
    everything = sum(p.numel() for p in model.parameters())
    assert engine.model_facts(model, 64, False, tmp_path)["param_count"] == round(everything / 1e6, 4)
    assert counting.count_parameters(model) == everything


def test_flops_table_reports_the_parameter_count_run_records(tmp_path: Path) -> None:
    from bench.core.measure import engine

    model = _partly_frozen("casvit_xs")
    (flops,) = flops_command.summary_frame([counting.count_model(model, "casvit_xs", 64)])["params_m"]
    assert engine.model_facts(model, 64, False, tmp_path)["param_count"] == round(flops, 4)
