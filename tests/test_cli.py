"""The command line as a user runs it: `--help`, `list`, and one-line errors for unknown names."""

from __future__ import annotations

import io
import json

import pandas as pd

import models
from tests.conftest import assert_one_line_error, run_cli


def test_help_lists_every_command() -> None:
    proc = run_cli("--help")
    assert proc.returncode == 0
    for command in ("list", "run", "flops", "complexity", "report", "compare"):
        assert command in proc.stdout


def test_list_table_shows_all_models_with_cards() -> None:
    proc = run_cli("list")
    assert proc.returncode == 0, proc.stderr
    for name in models.list_models():
        assert name in proc.stdout
    casvit_line = next(line for line in proc.stdout.splitlines() if line.startswith("casvit_xs "))
    assert "3.20" in casvit_line and "77.50" in casvit_line


def test_list_csv_and_json_are_complete() -> None:
    csv_out = run_cli("list", "--format", "csv")
    df = pd.read_csv(io.StringIO(csv_out.stdout))
    assert list(df["name"]) == models.list_models()
    assert {"citation", "top1_source", "params_m", "gmacs", "top1"} <= set(df.columns)
    rows = json.loads(run_cli("list", "--format", "json", "--models", "swiftformer").stdout)
    assert [r["name"] for r in rows] == models.list_models("swiftformer")


def test_list_markdown() -> None:
    proc = run_cli("list", "--format", "markdown", "--models", "casvit_t")
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("| name |") and lines[2].startswith("| casvit_t |")


def test_unknown_model_is_one_line_error_with_suggestion() -> None:
    assert_one_line_error(run_cli("list", "--models", "casvit_xss"), "unknown model 'casvit_xss'", "casvit_xs")


def test_unknown_command_is_one_line_error() -> None:
    proc = run_cli("frobnicate")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
