"""The typed cell (issue 26): one key for "the same cell", named estimators, read from a stored row."""

from __future__ import annotations

import json

import pytest

from bench.core.measure.stats import WIDE_INTERVAL
from bench.core.records.cell import ESTIMATORS, Cell, CellKey

ROW = {
    "model": "casvit_xs",
    "backend": "onnx",
    "device": "cpu",
    "precision": "fp32",
    "threads": 2,
    "infer_batch_size": 1,
    "infer_img_size": 224,
    "run_id": "r1",
    "env_id": "e1",
    "latency_ms": 10.0,
    "latency_ci_low_ms": 9.8,
    "latency_ci_high_ms": 10.4,
    "latency_median_ms": 11.5,
    "round_medians_ms": json.dumps([10.1, 9.9, 12.0, 10.0]),
    "clean_rounds": 4,
    "validity": "stable",
}


def test_the_key_is_the_setting_and_cell_not_the_run_or_the_machine() -> None:
    key = CellKey.of(ROW)
    assert key == CellKey.of({**ROW, "run_id": "r2", "env_id": "e2", "latency_ms": 12.0})
    assert key != CellKey.of({**ROW, "infer_batch_size": 8})
    assert key != CellKey.of({**ROW, "precision": "int8"})
    assert key.digest() == CellKey.of({**ROW, "run_id": "r2"}).digest() != CellKey.of({**ROW, "threads": 1}).digest()


def test_cells_on_two_runtimes_pair_along_the_runtime_only() -> None:
    onnx, torch = CellKey.of(ROW), CellKey.of({**ROW, "backend": "torch"})
    assert onnx != torch and onnx.without("backend") == torch.without("backend")
    assert onnx.without("backend") != CellKey.of({**ROW, "backend": "torch", "infer_batch_size": 8}).without("backend")
    int8 = CellKey.of({**ROW, "precision": "int8"})
    assert int8.without("precision") == onnx.without("precision") and int8.without("backend") != onnx.without("backend")


def test_each_estimator_is_named_and_distinct() -> None:
    cell = Cell.from_row(ROW)
    assert cell.estimate("headline") == 10.0 and cell.headline.low == 9.8 and cell.headline.sd_log
    assert cell.estimate("pooled_median") == 11.5
    assert cell.estimate("fastest_round") == 9.9
    assert set(ESTIMATORS) == {"headline", "pooled_median", "fastest_round"}
    with pytest.raises(ValueError, match="unknown estimator"):
        cell.estimate("mean")  # type: ignore[arg-type]


def test_a_row_older_than_the_headline_stands_on_its_pooled_median() -> None:
    old = {k: v for k, v in ROW.items() if not k.startswith("latency_") or k == "latency_median_ms"}
    cell = Cell.from_row(old)
    assert cell.headline.value == 11.5 and cell.headline.low is None and cell.headline.sd_log is None
    with pytest.raises(ValueError, match="needs a latency"):
        Cell.from_row({**old, "latency_median_ms": None})


def test_only_an_interval_too_wide_leaves_an_unstable_cell_judgeable() -> None:
    assert Cell.from_row(ROW).judgeable
    wide = Cell.from_row({**ROW, "validity": "unstable", "validity_reason": f"{WIDE_INTERVAL} 7.4%"})
    busy = Cell.from_row({**ROW, "validity": "unstable", "validity_reason": "other processes used 1.2 CPUs"})
    assert wide.unstable and wide.judgeable and busy.unstable and not busy.judgeable


def test_empty_text_columns_read_as_empty_not_nan() -> None:
    cell = Cell.from_row({**ROW, "validity": float("nan"), "validity_reason": float("nan"), "env_id": float("nan")})
    assert cell.validity == "-" and cell.validity_reason == "" and cell.env_id == "" and not cell.unstable
