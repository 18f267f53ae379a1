"""A sitting times until its cells rest on enough calm-machine rounds, within its budget, over several
worker processes (the machine-speed reference is scripted, so nothing depends on this machine's mood)."""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from bench.backends import REGISTRY
from bench.commands import run as run_command
from bench.core.measure import engine, machine, sitting
from bench.core.measure.engine import RoundResult
from bench.core.measure.sitting_history import SittingHistory, SittingSpread
from bench.core.records.schema import UNSTABLE, RoundRecord
from bench.core.records.store import ROUNDS_FILE, load_results
from tests.conftest import run_cli
from tests.test_trust import _windows

TINY = ["--backend", "torch", "--models", "casvit_xs", "--resolution", "64", "--warmup", "1", "--warmup-time", "0",
        "--iters", "10", "--min-time", "0", "--no-flops", "--no-progress", "--threads", "1"]  # fmt: skip


def _inline(tmp_path: Path, *argv: str):
    parser = argparse.ArgumentParser()
    run_command.add_arguments(parser)
    settings = run_command.parse_settings(parser.parse_args([*TINY, *argv, "--out", str(tmp_path)]))
    return sitting.run_inline(settings, REGISTRY.get("torch"), tmp_path, tmp_path / "cache", False, False, False)


@pytest.fixture
def scripted_machine(monkeypatch: pytest.MonkeyPatch):
    """The machine's recorded calm speed is 0.2 ms; the reference reads the values the test scripts. Its
    sittings differ by 3% (learnt): no cell can be stable within 5%, so only clean rounds decide how long
    a cell is timed, whatever this machine's real noise does to the tiny model's rounds."""
    monkeypatch.setattr(engine.Measurer, "cpu_window", _windows(0.0))
    monkeypatch.setattr(machine.MachineFloor, "load", classmethod(lambda cls, cache_dir, key: cls(key, 0.2)))
    monkeypatch.setattr(SittingHistory, "spread", lambda self, floor_ms=None: SittingSpread(0.03, 100, 4))

    def script(values):
        it = iter(values)
        monkeypatch.setattr(machine.Reference, "median_ms", lambda self: next(it))

    return script


def test_cells_that_lack_calm_rounds_get_extra_rounds_until_they_have_enough(tmp_path: Path, scripted_machine) -> None:
    scripted_machine(itertools.chain([0.3, 0.3, 0.3], itertools.repeat(0.2)))  # three slow rounds, then a calm machine
    _inline(tmp_path, "--rounds", "3", "--budget", "600")
    summary, _, envs = load_results([tmp_path])
    row = summary.iloc[0]
    assert row["rounds"] == 6 and row["clean_rounds"] == 3 and row["machine_floor_ms"] == pytest.approx(0.2)
    assert row["validity"] == UNSTABLE and "this machine's sittings 3.0%" in row["validity_reason"]
    (env,) = envs.values()
    assert env["extra_rounds"] == [["torch/casvit_xs/b1/r64/fp32"]] * 3 and env["budget_s"] == 600
    assert env["sitting_sd"] == 0.03 and "learnt from 100 cell pairs of 4 earlier sittings" in env["sitting_sd_source"]
    rounds = pd.read_csv(next(tmp_path.glob(f"*/{ROUNDS_FILE}")))
    assert rounds["round"].tolist() == list(range(6))


def test_a_spent_budget_flags_the_cell_with_the_reason(tmp_path: Path, scripted_machine, monkeypatch) -> None:
    scripted_machine(itertools.repeat(0.3))  # slow throughout: invisible from inside, but not at the floor
    ticks = iter([0.0, 0.0, 0.0])  # the deadline, one pass, one cell; every later look is past the budget
    monkeypatch.setattr(sitting, "BUDGET_CLOCK", lambda: next(ticks, 1e9))
    _inline(tmp_path, "--rounds", "3", "--budget", "30")
    summary, _, envs = load_results([tmp_path])
    row = summary.iloc[0]
    assert row["rounds"] == 4 and row["clean_rounds"] == 0 and row["validity"] == UNSTABLE
    assert "only 0 of 4 rounds on a calm machine" in row["validity_reason"]
    assert len(next(iter(envs.values()))["extra_rounds"]) == 1


def test_no_budget_times_exactly_the_rounds_asked_for(tmp_path: Path, scripted_machine) -> None:
    scripted_machine(itertools.repeat(0.3))
    _inline(tmp_path, "--rounds", "2", "--budget", "0")
    summary, _, envs = load_results([tmp_path])
    assert summary.iloc[0]["rounds"] == 2 and next(iter(envs.values()))["extra_rounds"] == []


def test_rounds_take_turns_between_the_runtimes_worker_processes(tmp_path: Path) -> None:
    proc = run_cli("run", *TINY, "--rounds", "4", "--processes", "2", "--budget", "0", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    rounds = pd.read_csv(next(tmp_path.glob(f"*/{ROUNDS_FILE}")))
    assert rounds.sort_values("round")["process"].tolist() == [0, 1, 0, 1]
    summary, _, envs = load_results([tmp_path])
    assert json.loads(summary.iloc[0]["round_processes"]) == [0, 1, 0, 1]
    (env,) = envs.values()
    assert env["processes"] == 2 and "mmap_threshold" in env["allocator"]


def _cell(medians: list[float], references: list[float]) -> sitting.OpenCell:
    rounds = [
        RoundResult([], RoundRecord(round=i, median_ms=m, reference_ms=r, process=i % 2))
        for i, (m, r) in enumerate(zip(medians, references, strict=True))
    ]
    return sitting.OpenCell("onnx/m/b1/r224", {}, SimpleNamespace(rounds=rounds))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("medians", "references", "sitting_sd", "settled"),
    [
        ([10.0, 10.01, 10.02, 10.0], [0.2] * 4, 0.01, True),  # calm and agreeing: stable, done
        ([10.0, 10.01, 10.02, 10.0], [0.2, 0.3, 0.3, 0.3], 0.01, False),  # one calm round: more rounds may help
        ([10.0, 11.0, 10.1, 11.2], [0.2] * 4, 0.01, False),  # processes disagree: more rounds may help
        ([10.0, 11.0, 10.1, 11.2], [0.2] * 4, 0.03, True),  # no cell reaches 5% here: do not spend the budget
    ],
)
def test_a_cell_is_timed_on_while_more_rounds_can_make_it_stable(medians, references, sitting_sd, settled) -> None:
    here = sitting.Sitting.__new__(sitting.Sitting)
    here.settings = SimpleNamespace(rounds=3)  # type: ignore[assignment]
    here.spread = SittingSpread(sitting_sd, 100, 4)
    assert here.settled(_cell(medians, references), floor=0.2) is settled
