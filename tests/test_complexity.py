"""``bench complexity``: the expression parser, the CATM's operator terms, the fit and the verdict."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from bench.commands import complexity as cx
from bench.core.errors import BenchError
from tests.conftest import assert_one_line_error, run_cli

# ------------------------------------------------------------------------------------------- expressions


def test_stated_model_reads_as_written() -> None:
    model = cx.parse_cost_model(cx.STATED_MODEL)
    value = model(b=np.array([1, 2]), H=np.array([7, 7]), W=np.array([7, 7]), C=np.array([64, 64]))
    assert value.tolist() == [57 * 49 * 64, 67 * 49 * 64]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3bHWC^2 + 38bHWC + 2bC^2", 3 * 2 * 12 * 25 + 38 * 2 * 12 * 5 + 2 * 2 * 25),
        ("2(H+W)C", 2 * 7 * 5),
        ("(b+1)(C-1)", 3 * 4),
        ("1e1N", 10 * 12),
        ("C**2 / 5 - -1", 6.0),
    ],
)
def test_expression_syntax(text: str, expected: float) -> None:
    assert cx.parse_cost_model(text)(b=2, H=3, W=4, C=5) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("(47 + 10b", "syntax error"),
        ("47 + 10x", "unknown symbol 'x'"),
        ("HWK", "unknown symbol 'HWK'"),
        ("__import__('os').system('true')", "not allowed"),
        ("H.real", "not allowed"),
        ("H < W", "not allowed"),
        ("'47'", "only numbers"),
        ("True * H", "only numbers"),
        ("H // W", "operator FloorDiv"),
        ("", "empty"),
        ("1 / (H - H)", "not finite"),
        ("(" * 400 + "H" + ")" * 400, "longer than"),
    ],
)
def test_bad_expressions_are_one_line_errors(text: str, fragment: str) -> None:
    with pytest.raises(BenchError) as info:
        cx.parse_cost_model(text)(b=1, H=7, W=7, C=32)
    message = str(info.value)
    assert fragment in message and "\n" not in message


# fmt: off
TINY_GRID = (
    "--no-latency", "--no-progress", "--batches", "1,2", "--sizes", "7,14", "--channels", "16,32,48",
    "--block-batches", "1", "--token-width", "16", "--token-sizes", "7,14,28",
)
# fmt: on
"""A grid small enough to count in seconds."""


@pytest.mark.parametrize("blocked", ["grid_catm.csv", "summary.md", "measured_vs_predicted.png", "cost_vs_tokens.svg"])
def test_a_file_it_cannot_write_is_one_line_naming_it(cli, tmp_path, blocked: str) -> None:
    """A table, the summary or a figure that cannot be written (here: a folder stands in its place, as a
    full disk or a read-only file would refuse it) ends the command with one line naming that file."""
    (tmp_path / blocked).mkdir()
    proc = cli("complexity", *TINY_GRID, "--out", str(tmp_path))
    assert_one_line_error(proc, f"cannot write {tmp_path / blocked}: ")


def test_bad_expressions_through_the_real_cli() -> None:
    proc = run_cli("complexity", "--model", "(47 + 10b", "--no-latency", "--no-save")
    assert_one_line_error(proc, "--model", "syntax error")
    proc = run_cli("complexity", "--model", "47 + 10*q*HWC", "--no-latency", "--no-save")
    assert_one_line_error(proc, "unknown symbol 'q'")


# ------------------------------------------------------------------------------------------- operator terms


def test_small_catm_operator_terms_equal_hand_counts() -> None:
    b, h, c = 2, 5, 8
    n = h * h
    row = cx.measure_grid("CATM", cx.Grid((b,), (h,), (c,)), analytic=True).iloc[0]
    hand = {
        "projection": 3 * b * n * c * c,  # qkv 1x1, C -> 3C
        "depthwise": 4 * 9 * b * n * c,  # DW3x3 in S(q), S(k), dwc, proj
        "spatial_gate": 2 * b * n * c,  # 1x1 C -> 1 in S(q), S(k)
        "channel_attention": 2 * b * c * c,  # 1x1 C -> C on the pooled vector, C(q) and C(k)
        "normalization": 2 * 2 * b * n * c,  # BN in S(q), S(k): fvcore prices eval BN at 2/elem
        "pooling": 2 * b * n * c,  # global average in C(q), C(k): 1 per input element
        "token_matmul": 0,
        "other": 0,
    }
    for term, value in hand.items():
        assert row[f"term_{term}"] == value, term
    assert row["fvcore"] == sum(hand.values())
    conv = sum(hand[t] for t in ("projection", "depthwise", "spatial_gate", "channel_attention"))
    assert row["flopcounter"] == conv
    assert row["thop"] == row["fvcore"] + hand["normalization"] + 2 * b * c  # BN 4/elem, pool +1 per output
    uncounted = {"elementwise": 6 * b * n * c, "activation": 2 * b * n * c, "bias": 4 * b * n * c}
    uncounted["sigmoid"] = 2 * b * (n + c)
    for term, value in uncounted.items():
        assert row[f"analytic_{term}"] == value and row[f"tally_{term}"] == value, term
    assert row["analytic_matches_tally"]


def test_reference_msa_costs_4nc2_plus_2n2c() -> None:
    b, h, c = 1, 6, 64
    n = h * h
    fcm, _, _ = cx.meta_pass(cx.ReferenceMSA, b, h, c)
    assert fcm == 4 * n * c * c + 2 * n * n * c
    row = cx.measure_grid("MSA", cx.Grid((b,), (h,), (c,))).iloc[0]
    assert row["term_token_matmul"] == 2 * n * n * c
    assert row["term_projection"] == 4 * n * c * c
    assert row["term_normalization"] == 5 * n * c  # fvcore prices LayerNorm at 5 per element


def test_reference_msa_is_standard_attention() -> None:
    torch.manual_seed(0)
    msa = cx.ReferenceMSA(64).eval()
    x = torch.randn(2, 64, 5, 5)
    tokens = x.flatten(2).transpose(1, 2)
    attention = torch.nn.MultiheadAttention(64, msa.heads, batch_first=True)
    attention.in_proj_weight.data.copy_(msa.qkv.weight)
    attention.in_proj_bias.data.copy_(msa.qkv.bias)
    attention.out_proj.load_state_dict(msa.proj.state_dict())
    normed = msa.norm(tokens)
    expected = tokens + attention(normed, normed, normed, need_weights=False)[0]
    torch.testing.assert_close(msa(x), expected.transpose(1, 2).reshape(x.shape), atol=1e-5, rtol=1e-5)


def test_phi_branches_are_read_from_the_module() -> None:
    assert cx.phi_branch_cost() == (2, 10.0)  # Q and K; DW3x3 (9) + 1x1 C->1 (1) per HWC


# ------------------------------------------------------------------------------------------- the fit


def _grid_frame(batches=(1, 2, 4, 8), sizes=(7, 14, 28, 56), channels=(32, 64, 128, 256, 512)) -> pd.DataFrame:
    rows = [{"b": b, "H": h, "W": h, "C": c} for b in batches for h in sizes for c in channels]
    return pd.DataFrame(rows)


def test_fit_recovers_known_coefficients() -> None:
    frame = _grid_frame()
    truth = {"b·HWC²": 3.0, "b·HWC": 38.0, "b·C²": 2.0, "HWC": 47.0}
    frame["y"] = cx.design_matrix(frame) @ np.array(list(truth.values()))
    fit = cx.fit_basis(frame, "y")
    for name, value in truth.items():
        assert fit.coefficients[name] == pytest.approx(value, rel=1e-9)
    assert fit.rms_rel_residual < 1e-12
    assert fit.per_image_hwc == pytest.approx(85.0)


def test_fit_with_noise_and_a_missing_term_reports_residuals() -> None:
    frame = _grid_frame()
    rng = np.random.default_rng(0)
    clean = 3.0 * frame["b"] * frame["H"] * frame["W"] * frame["C"] ** 2 + 10.0 * frame["b"] * frame["H"] * frame["W"]
    frame["y"] = clean * (1 + 1e-4 * rng.standard_normal(len(frame)))
    fit = cx.fit_basis(frame, "y")
    assert fit.coefficients["b·HWC²"] == pytest.approx(3.0, rel=1e-3)
    assert fit.max_rel_residual > 1e-5  # the b·HW term is not in the basis: it shows up as residual


def test_grid_fit_and_verdict_run_in_seconds() -> None:
    started = time.perf_counter()
    grid = cx.Grid(batches=(1, 2), sizes=(7, 14), channels=(16, 32, 48))
    frames = {
        "CATM": cx.measure_grid("CATM", grid, analytic=True),
        "CAS block": cx.measure_grid("CAS block", grid, fvcore_batches=(1, 2)),
    }
    fit_frame, fits = cx.fit_table(frames)
    n_branches, branch_hwc = cx.phi_branch_cost()
    verdict = cx.verdict_table(fits, frames["CATM"], n_branches, branch_hwc)
    elapsed = time.perf_counter() - started
    assert elapsed < 30, f"grid + fit took {elapsed:.1f} s"

    conv = fits[("CATM", "flopcounter")].coefficients
    assert [round(conv[k], 6) for k in cx.BASIS] == [3, 38, 2, 0]
    assert fits[("CATM", "fvcore")].per_image_hwc == pytest.approx(44)  # + BN 4 + pooling 2
    assert fits[("CAS block", "flopcounter")].per_image_hwc == pytest.approx(47)
    assert fit_frame["rms_rel_residual"].max() < 1e-3
    aspects = dict(zip(verdict["aspect"], verdict["verdict"], strict=True))
    assert aspects["growth with b (batch)"].startswith("multiplicative")
    assert "(18 + 10b)" in aspects["per-image HWC coefficient, without the projection"]
    assert "(27 + 10b)" in aspects["where 47 comes from"]


def test_token_exponents_linear_vs_quadratic() -> None:
    tokens = cx.token_costs(64, [7, 14, 28, 56, 112, 224], fvcore_max=14)
    exps = cx.exponent_table(tokens, ["mixer"], "tokens", ["flopcounter"]).set_index("mixer")
    assert exps.loc["CATM", "exponent_all"] == pytest.approx(1.0, abs=0.01)
    assert exps.loc["MSA", "exponent_upper"] > 1.9


def test_flopcounter_on_meta_equals_real_tensors() -> None:
    """The grid counts FlopCounterMode on meta tensors; that must be the same count as on real ones."""
    module = cx.MIXERS["CATM"](16).eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        module(torch.zeros(2, 16, 7, 7))
    assert cx.meta_pass(cx.MIXERS["CATM"], 2, 7, 16)[0] == counter.get_total_flops() / 2


def test_upper_half_keeps_the_large_end() -> None:
    xs = np.array([49.0, 196, 784, 3136, 12544, 50176])
    assert cx.upper_half(xs).tolist() == [False, False, False, True, True, True]
    assert cx.upper_half(np.array([1.0, 2.0])).tolist() == [True, True]
