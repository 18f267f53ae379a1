"""Trust in one number: rounds on disk as they finish, resume by round, validity flags, ``bench doctor``."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.backends import REGISTRY
from bench.commands import run as run_command
from bench.core.measure import engine, machine, sitting
from bench.core.records.schema import ENVIRONMENT_FIELDS, STABLE, UNSTABLE
from bench.core.records.store import ROUNDS_FILE, SUMMARY_FILE, load_results
from tests.conftest import REPO, run_cli

MODELS = "casvit_xs,swiftformer_xs,efficientformerv2_s0"
SMALL = ["--resolution", "64", "--warmup", "1", "--warmup-time", "0", "--no-flops", "--no-progress"]
SMALL += ["--processes", "1", "--budget", "0"]  # one worker per runtime, exactly the rounds asked for


def test_sigint_after_two_of_three_rounds_keeps_them_and_resume_times_only_the_last(tmp_path: Path) -> None:
    argv = ["run", "--backend", "torch", "--models", MODELS, *SMALL, "--iters", "3"]
    argv += ["--rounds", "3", "--out", str(tmp_path)]
    # The real CLI in a child process, with a deterministic Ctrl-C: a SIGINT raised in the main thread just
    # before the sitting starts its 7th round (2 rounds x 3 models are finished and on disk by then). A shell
    # that starts jobs in the background makes them ignore SIGINT, and the child inherits that: restore
    # Python's Ctrl-C handler so the signal does what a user's Ctrl-C does.
    launcher = "\n".join(
        [
            "import runpy, signal, sys",
            "from bench.core.measure.sitting import Sitting",
            "signal.signal(signal.SIGINT, signal.default_int_handler)",
            "real, started = Sitting.time_cell, []",
            "def time_cell(self, *args, **kwargs):",
            "    started.append(args)",
            "    if len(started) == 7:",
            "        signal.raise_signal(signal.SIGINT)",
            "    return real(self, *args, **kwargs)",
            "Sitting.time_cell = time_cell",
            "sys.argv = ['bench', *sys.argv[1:]]",
            "runpy.run_module('bench', run_name='__main__')",
        ]
    )
    proc = subprocess.Popen([sys.executable, "-c", launcher, *argv], cwd=REPO, stderr=subprocess.PIPE, text=True)
    _, err = proc.communicate(timeout=600)  # a safety net only: the run ends itself at the 7th round
    assert proc.returncode == 130, err
    assert "6 finished round(s)" in err and "--resume" in err and "Traceback" not in err
    (first,) = tmp_path.iterdir()
    rounds = pd.read_csv(first / ROUNDS_FILE)
    assert rounds.groupby("row_id")["round"].apply(sorted).tolist() == [[0, 1]] * 3
    assert len(pd.read_csv(first / SUMMARY_FILE)) == 0

    resumed = run_cli(*argv, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stderr.count("2 round(s) resumed") == 3
    (second,) = [p for p in tmp_path.iterdir() if p != first]
    summary = pd.read_csv(second / SUMMARY_FILE)
    assert len(summary) == 3 and (summary["rounds"] == 3).all()
    new_rounds = pd.read_csv(second / ROUNDS_FILE)
    # rounds 0 and 1 were copied from the interrupted run (same timestamps), only round 2 is new
    copied = new_rounds[new_rounds["round"] < 2].sort_values(["row_id", "round"])["timestamp"].tolist()
    assert copied == rounds.sort_values(["row_id", "round"])["timestamp"].tolist()
    samples = pd.read_csv(second / "samples.csv")
    for row in summary.itertuples():
        mine = samples[samples["row_id"] == row.row_id]
        assert sorted(mine["round"].unique()) == [0, 1, 2] and len(mine) == row.iterations


class _Window:
    """A CPU sample of one timing round, as :class:`machine.CpuWindow` reports it: given, not measured."""

    def __init__(self, busy: float) -> None:
        self.busy = busy

    def finish(self) -> tuple[float, float]:
        return self.busy, 0.0


def _windows(*busy: float):
    """A ``Measurer.cpu_window`` handing out these samples in turn (the last one from then on)."""
    given = iter(busy)
    last = [busy[-1]]

    def window() -> _Window:
        last[0] = next(given, last[0])
        return _Window(last[0])

    return staticmethod(window)


def _run_in_process(tmp_path: Path, *argv: str):
    parser = argparse.ArgumentParser()
    run_command.add_arguments(parser)
    args = parser.parse_args(["--backend", "torch", "--models", "casvit_xs", *SMALL, *argv, "--out", str(tmp_path)])
    settings = run_command.parse_settings(args)
    return sitting.run_inline(settings, REGISTRY.get("torch"), tmp_path, tmp_path / "cache", False, False, False)


def test_a_busy_process_marks_rows_unstable_with_the_reason(tmp_path: Path, monkeypatch, capsys) -> None:
    """Another process using a whole core during every round (the CPU sample is given, so the test does
    not depend on how loaded this machine is)."""
    monkeypatch.setattr(engine.Measurer, "cpu_window", _windows(1.0))
    _run_in_process(tmp_path, "--iters", "3", "--min-time", "0", "--rounds", "2", "--threads", "1")
    summary, _, envs = load_results([tmp_path])
    row = summary.iloc[0]
    assert row["validity"] == UNSTABLE and "other processes used" in row["validity_reason"]
    assert row["busy_cpu"] == pytest.approx(1.0)
    assert "casvit_xs batch 1 is unstable" in capsys.readouterr().err
    assert len(json.loads(row["reference_ms"])) == 2 and len(json.loads(row["round_medians_ms"])) == 2
    (env,) = envs.values()  # a sitting's environment.json holds only fields the schema declares
    assert set(env) <= set(ENVIRONMENT_FIELDS), set(env) - set(ENVIRONMENT_FIELDS)


def test_validity_rules() -> None:
    calm = machine.judge([10.0, 10.1, 10.05], [5.0, 5.02, 4.99], [0.0, 0.05, 0.0], [0.0, 0.0, 0.0], 60)
    assert calm.verdict == STABLE and calm.reason == ""
    drifting = machine.judge([10.0, 15.0, 15.0], [5.0, 7.5, 7.5], [0.0] * 3, [0.0, 0.2, 0.0], 4, floor=5.0)
    assert drifting.verdict == UNSTABLE
    for fragment in ("only 1 of 3 rounds on a calm machine", "stole", "only 4 iterations"):
        assert fragment in drifting.reason


def test_the_reference_reports_the_median_of_its_kernels_times(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a scripted clock that only the kernel moves (0.2, 0.2 and 5 ms, in turn), the reference reports
    the median run, in ms: 0.2 (the mean would be 1.8)."""
    import itertools

    now = [0.0]
    durations = itertools.cycle([0.0002, 0.0002, 0.005])

    def kernel(self) -> None:
        now[0] += next(durations)

    monkeypatch.setattr(machine.Reference, "_run", kernel)
    monkeypatch.setattr(machine.time, "perf_counter", lambda: now[0])
    assert machine.Reference(threads=1).median_ms() == pytest.approx(0.2)


def test_the_cpu_window_samples_this_machine() -> None:
    window = machine.CpuWindow()
    np.linalg.svd(np.random.default_rng(0).standard_normal((300, 300)))
    busy, steal = window.finish()
    if sys.platform.startswith("linux"):
        assert busy is not None and busy >= 0 and 0 <= steal <= 1


def test_doctor_reports_checks_and_a_verdict() -> None:
    proc = run_cli("doctor", "--sample", "0.2", "--format", "json")
    assert proc.stdout.startswith("{"), proc.stderr
    report = json.loads(proc.stdout)
    names = {c["name"] for c in report["checks"]}
    assert {"cpu governor", "SMT", "load average", "steal", "other processes", "thread spinning"} <= names
    assert report["verdict"] in ("ok", "warn", "bad", "unknown")
    assert proc.returncode == (0 if report["verdict"] in ("ok", "unknown") else 1), proc.stderr


def test_every_run_records_its_system_checks(tmp_path: Path) -> None:
    proc = run_cli("run", "--backend", "torch", "--models", "casvit_xs", *SMALL, "--iters", "3", "--min-time", "0",
                   "--rounds", "1", "--out", str(tmp_path))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    _, _, envs = load_results([tmp_path])
    system = next(iter(envs.values()))["system"]
    assert system["verdict"] in ("ok", "warn", "bad", "unknown") and system["checks"]


@pytest.mark.parametrize("rounds", [1, 3])
def test_samples_know_their_round(tmp_path: Path, rounds: int) -> None:
    proc = run_cli("run", "--backend", "torch", "--models", "casvit_xs", *SMALL, "--iters", "6", "--min-time", "0",
                   "--rounds", str(rounds), "--out", str(tmp_path))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    summary, samples, _ = load_results([tmp_path])
    assert sorted(samples["round"].unique()) == list(range(rounds))
    assert summary.iloc[0]["rounds"] == rounds


def test_retry_unstable_re_times_within_its_budget(tmp_path: Path, monkeypatch) -> None:
    """Busy during the first attempt's two rounds; the budget's clock allows exactly one retry."""
    monkeypatch.setattr(engine.Measurer, "cpu_window", _windows(1.0, 1.0, 0.0))
    ticks = iter([0.0, 0.0])  # the deadline, then one check inside the budget; every later check is past it
    policy = engine.retry_unstable
    monkeypatch.setattr(engine, "retry_unstable", lambda *a, **k: policy(*a, **k, clock=lambda: next(ticks, 1e9)))
    # enough iterations that a retry can help (too few are never re-timed)
    _run_in_process(tmp_path, "--iters", "10", "--min-time", "0", "--rounds", "2", "--retry-unstable", "10")
    summary, samples, _ = load_results([tmp_path])
    row = summary.iloc[0]
    assert set(samples["row_id"]) == {row["row_id"].split("#")[0], row["row_id"].split("#")[0] + "#2"}
    kept = samples[samples["row_id"] == row["row_id"]]
    assert len(kept) == row["iterations"]  # the kept attempt's samples, and only those, back the row


def test_report_marks_unstable_cells_and_says_why(tmp_path: Path) -> None:
    from tests.result_fixtures import environment, write_run

    run = write_run(tmp_path / "r", label="r", env=environment(), backend="onnx", models=("casvit_xs", "casvit_s"))
    summary_path = run / SUMMARY_FILE
    summary = pd.read_csv(summary_path)
    summary["validity"] = ["unstable", "stable"]
    summary["validity_reason"] = ["round medians differ by 31%", ""]
    summary.to_csv(summary_path, index=False)
    proc = run_cli(
        "report", "--results", str(run), "--out", str(tmp_path / "rep"), "--no-plots", "--format", "markdown"
    )
    assert proc.returncode == 0, proc.stderr
    xs = next(line for line in proc.stdout.splitlines() if line.startswith("| CAS-ViT-XS"))
    s = next(line for line in proc.stdout.splitlines() if line.startswith("| CAS-ViT-S "))
    assert "†" in xs and "†" not in s
    assert "† Unstable measurement" in proc.stdout and "round medians differ by 31%" in proc.stdout
    measurements = pd.read_csv(tmp_path / "rep" / "measurements.csv")
    assert set(measurements["validity"]) == {"unstable", "stable"}
