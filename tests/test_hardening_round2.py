"""Hostile input, round two (issue 20, classes 4 and 7-11 and the "also seen" items): external names and
specs, flags of another backend, formula cells in every CSV and markdown table the suite writes, export's
errors, LiteRT's teardown lines and doctor's thread advice. Each probe builds its own bad input and goes
through the command line.
"""

from __future__ import annotations

import csv
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from bench.core.records.store import ENVIRONMENT_FILE, SUMMARY_FILE, load_results
from bench.core.report.formatting import markdown_cell, spreadsheet_safe
from tests.conftest import REPO, assert_one_line_error, run_cli
from tests.result_fixtures import environment, write_run
from tests.test_external import SPEC, TINY

FAST = ("--resolution", "64", "--warmup", "1", "--warmup-time", "0", "--iters", "3", "--min-time", "0",
        "--rounds", "1", "--no-flops", "--no-progress", "--processes", "1", "--budget", "0")  # fmt: skip
FORMULA_LEAD = ("=", "+", "-", "@")


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    (tmp_path / "tiny.py").write_text(TINY)
    return tmp_path / "tiny.py"


def _spec(tmp_path: Path, text: str, name: str = "spec.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# ------------------------------------------------------------------- class 8: names, specs, resume


@pytest.mark.parametrize("name", ["casvit", "paper", "all"])
def test_an_external_network_cannot_take_a_family_id_or_keyword(tiny: Path, name: str, cli) -> None:
    proc = cli("list", "--models", f"{name}={tiny}:tiny_net")
    assert_one_line_error(proc, repr(name), "family id or a --models keyword")


def test_a_spec_with_resolution_zero_is_refused(tiny: Path, tmp_path: Path, cli) -> None:
    spec = _spec(tmp_path, 'factory = "tiny.py:tiny_net"\nresolution = 0\n')
    assert_one_line_error(cli("list", "--models", str(spec)), "resolution must be a positive", "0")


def test_resume_measures_an_edited_external_file_again(tiny: Path, tmp_path: Path, cli) -> None:
    argv = ("run", "--backend", "torch", "--models", f"{tiny}:tiny_net", *FAST, "--out", str(tmp_path / "r"),
            "--resume", "--cache-dir", str(tmp_path / "cache"))  # fmt: skip
    assert cli(*argv).returncode == 0
    assert "already measured" in cli(*argv).stderr  # unchanged: skipped
    tiny.write_text(TINY.replace("stride=4", "stride=2"))
    proc = cli(*argv)
    assert proc.returncode == 0 and "already measured" not in proc.stderr, proc.stderr
    summary, _, _ = load_results([tmp_path / "r"])
    assert summary["settings_key"].nunique() == 2


def test_a_specs_top1_reaches_the_report_without_the_spec(tiny: Path, tmp_path: Path, cli) -> None:
    spec = _spec(tmp_path, SPEC, "tiny_wide.toml")
    out = tmp_path / "r"
    run = cli("run", "--backend", "torch", "--models", str(spec), *FAST, "--out", str(out),
              "--cache-dir", str(tmp_path / "cache"))  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert cli("report", "--results", str(out), "--out", str(tmp_path / "rep"), "--no-plots").returncode == 0
    facts = pd.read_csv(tmp_path / "rep" / "measurements.csv").set_index("model")
    assert facts.loc["tiny_wide", "top1"] == 70.5 and facts.loc["tiny_wide", "family"] == "TinyNet"


# --------------------------------------------------------------------- class 9: another backend's flags


def test_flags_of_a_backend_not_run_are_refused(cli, tmp_path: Path) -> None:
    proc = cli("run", "--backend", "torch", "--models", "casvit_xs", *FAST, "--openvino-frontend", "trace",
               "--executorch-delegate", "none", "--out", str(tmp_path))  # fmt: skip
    assert_one_line_error(proc, "--openvino-frontend", "--executorch-delegate", "--backend torch")
    assert not list(tmp_path.iterdir())
    proc = cli("export", "--backend", "onnx", "--models", "casvit_xs", "--openvino-frontend", "trace",
               "--out", str(tmp_path / "x"))  # fmt: skip
    assert_one_line_error(proc, "--openvino-frontend")


# ------------------------------------------------------------------ class 10: what reports pass through


def test_formula_cells_are_neutralised_and_pipes_escaped() -> None:
    assert spreadsheet_safe("=cmd|' /C calc'!A0") == "'=cmd|' /C calc'!A0"
    assert [spreadsheet_safe(v) for v in ("@SUM(A1)", "+1+1", "-cmd")] == ["'@SUM(A1)", "'+1+1", "'-cmd"]
    assert [spreadsheet_safe(v) for v in ("-1.5", "+3", "-", "casvit_xs", 7)] == ["-1.5", "+3", "-", "casvit_xs", 7]
    assert markdown_cell("a|b\nc") == "a\\|b c"


def test_a_spec_cannot_label_its_family_with_a_formula_nor_call_the_standard_library(
    tiny: Path, tmp_path: Path, cli
) -> None:
    spec = _spec(tmp_path, 'factory = "tiny.py:tiny_net"\nfamily = "=cmd|\' /C calc\'!A0"\n')
    assert_one_line_error(cli("list", "--models", str(spec)), "cannot label a family")
    marker = tmp_path / "ran"
    spec = _spec(tmp_path, f'factory = "os:system"\n[kwargs]\ncommand = "touch {marker}"\n', "os.toml")
    assert_one_line_error(cli("run", "--backend", "torch", "--models", str(spec), *FAST), "standard library")
    assert not marker.exists()


def _cells(path: Path) -> list[str]:
    with open(path, encoding="utf-8", newline="") as f:
        return [cell for row in csv.reader(f) for cell in row]


def test_planted_cells_never_reach_a_spreadsheet_as_formulas(tmp_path: Path, cli) -> None:
    run = write_run(tmp_path / "r", label="r", env=environment(), backend="onnx", models=("casvit_xs",))
    summary = pd.read_csv(run / SUMMARY_FILE)
    summary["validity"] = "unstable"
    summary["validity_reason"] = '=HYPERLINK("http://x")'
    summary.to_csv(run / SUMMARY_FILE, index=False)
    env = json.loads((run / ENVIRONMENT_FILE).read_text())
    env.update(hostname="=cmd|' /C calc'!A0", cpu_model="@SUM(1)|x")
    (run / ENVIRONMENT_FILE).write_text(json.dumps(env))
    proc = cli("report", "--results", str(run), "--out", str(tmp_path / "rep"), "--no-plots")
    assert proc.returncode == 0, proc.stderr
    for name in ("table.csv", "measurements.csv", "columns.csv"):
        cells = _cells(tmp_path / "rep" / name)
        bad = [c for c in cells if c.startswith(FORMULA_LEAD) and spreadsheet_safe(c) != c]
        assert not bad, (name, bad)
    rows = [line for line in (tmp_path / "rep" / "table.md").read_text().splitlines() if line.startswith("| ")]
    widths = {len([c for c in line.replace("\\|", "").split("|")]) for line in rows}
    assert len(widths) == 1, rows  # an escaped '|' never adds a cell
    listed = cli("list", "--models", "casvit_xs", "--format", "csv", "--full")
    assert listed.returncode == 0 and not any(c.startswith("=") for c in _cells_of(listed.stdout))


def _cells_of(text: str) -> list[str]:
    return [cell for row in csv.reader(text.splitlines()) for cell in row]


# ---------------------------------------------------------------------------- class 4: export's messages


class Payload:
    def __reduce__(self):
        return (os.system, ("touch /tmp/bench-export-payload-ran",))


def test_export_refuses_a_malicious_checkpoint_with_exit_2_and_no_manifest(tmp_path: Path) -> None:
    evil = tmp_path / "evil.pth"
    evil.write_bytes(pickle.dumps({"state_dict": Payload()}))
    proc = run_cli("export", "--backend", "onnx", "--models", "casvit_xs", "--resolution", "64",
                   "--checkpoint", str(evil), "--out", str(tmp_path / "out"))  # fmt: skip
    assert_one_line_error(proc, str(evil))
    assert proc.stdout == "" and not (tmp_path / "out" / "manifest.json").exists()
    assert not Path("/tmp/bench-export-payload-ran").exists()


UNTRACEABLE = """
from torch import nn


class Branchy(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 10)

    def forward(self, x):
        if x.mean() > 0:  # data-dependent control flow: torch.export cannot trace it
            x = x * 2
        return self.fc(x.mean(dim=(2, 3)))


def branchy():
    return Branchy()


branchy.bench_card = {"resolution": 32}
"""


def test_a_model_torch_export_cannot_trace_is_one_line_on_stderr(tmp_path: Path) -> None:
    pytest.importorskip("executorch")
    (tmp_path / "branchy.py").write_text(UNTRACEABLE)
    proc = run_cli("export", "--backend", "executorch", "--models", f"{tmp_path / 'branchy.py'}:branchy",
                   "--out", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache"))  # fmt: skip
    assert proc.returncode == 1 and proc.stdout == "", (proc.stdout, proc.stderr)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "cannot export" in lines[0] and "\x1b[" not in lines[0], proc.stderr
    assert not (tmp_path / "out" / "manifest.json").exists()


# ---------------------------------------------------------------------------- also seen: LiteRT, doctor


def test_litert_teardown_lines_are_dropped_and_other_lines_kept() -> None:
    script = (
        "import atexit, os\n"
        "atexit.register(lambda: os.write(2, b'INFO: [accelerator_registry.cc:43] DestroyAccelerator: ptr=0x1\\n'"
        " b'a real problem\\n'))\n"
        "from bench.backends import litert\n"
        "litert._filter_teardown_lines()\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], env={**os.environ, "PYTHONPATH": str(REPO)},
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "a real problem" in proc.stderr and "DestroyAccelerator" not in proc.stderr


def test_doctor_names_the_thread_setting_that_leaves_busy_cores_alone(monkeypatch: pytest.MonkeyPatch, cli) -> None:
    import psutil

    from bench.core.measure import machine, system

    monkeypatch.setattr(machine.CpuWindow, "finish", lambda self: (1.0, 0.0))  # one core's worth busy elsewhere
    proc = cli("doctor", "--sample", "0.1")
    cores = psutil.cpu_count(logical=False) or os.cpu_count() or 1
    assert proc.returncode == 1
    assert f"--threads {max(1, cores - 1)}" in proc.stdout, proc.stdout
    assert system.free_threads(1.0, cores=8) == 7 and system.free_threads(3.5, cores=2) == 1


def test_one_line_errors_drop_colour_codes_and_keep_what_an_introduction_introduces() -> None:
    from bench.core.util import one_line

    coloured = RuntimeError("\x1b[31m\n-----\nGuard on data-dependent expression\x1b[0m\nmore")
    assert one_line(coloured) == "RuntimeError: Guard on data-dependent expression"
    intro = RuntimeError("Export failed. Next steps:\n\n  rewrite the branch with torch.cond\n")
    assert one_line(intro) == "RuntimeError: Export failed. Next steps: rewrite the branch with torch.cond"
