"""One sitting for many runtimes, through the real CLI: one folder, a worker process per runtime,
rounds in a recorded shuffled order with equal iterations, a killed worker, Ctrl-C and --resume,
and idle workers that do not use the CPU while another times."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import psutil
import pytest

from bench.core.measure.engine import calibrate
from bench.core.measure.sitting import plan_rounds
from bench.core.measure.timing import LoopLimits
from bench.core.records.store import ENVIRONMENT_FILE, ROUNDS_FILE, SUMMARY_FILE, load_results
from tests.conftest import REPO, assert_one_line_error, pause_env, run_cli, signal_when_paused, wait_paused

SMALL = ["--resolution", "64", "--warmup", "2", "--warmup-time", "0", "--no-flops", "--no-progress", "--threads", "1"]
SMALL += ["--processes", "1", "--budget", "0"]  # one worker per runtime, exactly the rounds asked for
LAUNCHER = (  # what a user's Ctrl-C sends, even when the test runner started us with SIGINT ignored
    "import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "sys.argv = ['bench', *sys.argv[1:]]; runpy.run_module('bench', run_name='__main__')"
)


def _start(argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, *argv],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture(scope="module")
def sitting(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One two-runtime sitting on a tiny model, shared by the tests that read it."""
    out = tmp_path_factory.mktemp("sitting")
    argv = ["run", "--backend", "torch,onnx", "--models", "casvit_xs", *SMALL, "--threads", "2", "--iters", "4"]
    argv += ["--min-time", "0.6"]
    proc = run_cli(*argv, "--rounds", "3", "--order-seed", "7", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    (run_dir,) = out.iterdir()
    return run_dir


def test_two_runtimes_in_one_folder_with_the_order_recorded_and_followed(sitting: Path) -> None:
    summary, samples, _ = load_results([sitting])
    assert sorted(summary["backend"]) == ["onnx", "torch"] and set(summary["status"]) == {"ok"}
    env = json.loads((sitting / ENVIRONMENT_FILE).read_text())
    assert env["backends"] == ["torch", "onnx"] and env["order_seed"] == 7
    assert env["backend_versions"]["torch"] and env["backend_versions"]["onnxruntime"]  # each runtime's packages
    cells = ["onnx/casvit_xs/b1/r64/fp32", "torch/casvit_xs/b1/r64/fp32"]
    assert env["round_order"] == plan_rounds(cells, {}, 3, 7)
    assert all(sorted(order) == cells for order in env["round_order"])
    # rounds.csv is appended in the order the rounds ran: it follows the recorded plan
    rounds = pd.read_csv(sitting / ROUNDS_FILE)
    backend_of = dict(zip(summary["row_id"], summary["backend"], strict=True))
    ran = [backend_of[r] for r in rounds["row_id"]]
    assert ran == [key.split("/")[0] for order in env["round_order"] for key in order]
    # every round of a cell timed the same number of iterations, and the row holds exactly those samples
    for row_id, group in rounds.groupby("row_id"):
        assert group["iterations"].nunique() == 1 and sorted(group["round"]) == [0, 1, 2]
        assert len(samples[samples["row_id"] == row_id]) == group["iterations"].sum()


def test_every_round_records_the_idle_workers_cpu(sitting: Path) -> None:
    """The real sitting records, per round, the CPU the other runtime's worker used (in cores)."""
    summary, _, _ = load_results([sitting])
    rounds = pd.read_csv(sitting / ROUNDS_FILE)
    backend_of = dict(zip(summary["row_id"], summary["backend"], strict=True))
    rounds["backend"] = rounds["row_id"].map(backend_of)
    for backend in ("torch", "onnx"):
        idle = rounds.loc[rounds["backend"] == backend, "idle_cpu"]
        assert len(idle) == 3 and idle.notna().all() and (idle >= 0).all(), (backend, idle.tolist())


class _Worker:
    """A worker as the sitting sees it: CPU seconds read from a script; a timing reply when asked."""

    def __init__(self, cpu_seconds: list[float | None], reply: object = None) -> None:
        self.cpu, self.reply = iter(cpu_seconds), reply

    def cpu_seconds(self) -> float | None:
        return next(self.cpu)

    def ask(self, tag: str, request: object) -> None:
        self.asked = (tag, request)

    def answer(self) -> object:
        return self.reply


class _Progress:
    def set_postfix_str(self, text: str) -> None: ...

    def update(self, steps: int) -> None: ...


@pytest.mark.parametrize(
    ("others", "expected"),
    [
        ([[5.0, 5.0], [9.0, 9.0]], 0.0),  # blocked on their pipes: no CPU
        ([[5.0, 5.0], [9.0, 11.0]], 1.0),  # one spins a whole core through the 2 s round
        ([[5.0, 5.5], [None, None]], 0.25),  # a worker that is gone is left out
    ],
)
def test_idle_cpu_is_the_other_workers_cpu_seconds_over_the_round(
    others: list[list[float | None]], expected: float, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What ``idle_cpu`` means, on scripted CPU counters and a scripted clock (2 s round): the other
    workers' CPU seconds during the round over its wall time, the timing worker's own left out."""
    from bench.core.interface.settings import Settings
    from bench.core.measure import sitting
    from bench.core.measure.engine import OpenWorkload
    from bench.core.measure.worker import Reply, RoundAnswer
    from bench.core.records import schema
    from bench.core.records.store import RunWriter

    settings = Settings(backend="onnx", model_names=("casvit_xs",), resolution=64, rounds=3)
    record = schema.RoundRecord(round=0, iterations=2, median_ms=1.0, reference_ms=1.0)
    reply = Reply("k", True, RoundAnswer(record, [1.0, 1.0], [], 2))
    timing = _Worker([], reply)
    idle = [_Worker(cpu) for cpu in others]
    writer = RunWriter.create(tmp_path, "t", {"suite": schema.SUITE_ID, "env_id": "e"})
    run = sitting.Sitting([sitting.Runtime(settings, "")], writer, "e", _Progress())
    row = schema.SummaryRow(model="casvit_xs", backend="onnx", row_id="r", infer_batch_size=1)
    cell = sitting.OpenCell("k", {0: timing}, OpenWorkload(settings.workload("casvit_xs", 1, 64), row, None))  # type: ignore[arg-type]
    clock = iter([100.0, 102.0])
    real = sitting.time.perf_counter
    monkeypatch.setattr(sitting.time, "perf_counter", lambda: next(clock, None) or real())
    run.time_cell(cell, 0, [timing, *idle])
    monkeypatch.undo()
    (result,) = cell.item.rounds
    assert result.record.idle_cpu == expected and timing.asked[0] == "k"
    assert pd.read_csv(writer.directory / ROUNDS_FILE)["idle_cpu"].tolist() == [expected]


def test_an_idle_onnx_runtime_session_is_told_not_to_spin(tmp_path: Path) -> None:
    """ONNX Runtime's threads spin after a run by default; the session a worker keeps between its rounds
    is configured to stop spinning when a run returns, so it takes no CPU from the runtime being timed."""
    import models
    from bench.backends import get_backend
    from bench.core.interface.sessions import example_input
    from bench.core.interface.settings import Settings

    backend = get_backend("onnx")
    workload = Settings("onnx", ("casvit_xs",), threads=1).workload("casvit_xs", 1, 64)
    model = models.create_model("casvit_xs", img_size=64)
    prepared = backend.prepare(model, workload, tmp_path)
    session = backend.load(model, prepared, workload, example_input(workload, 0))
    options = session.session.get_session_options()  # type: ignore[attr-defined]
    assert options.get_session_config_entry("session.force_spinning_stop") == "1"


def test_a_killed_worker_fails_only_its_own_runtime(tmp_path: Path) -> None:
    argv = ["run", "--backend", "onnx,torch", "--models", "casvit_xs,swiftformer_xs", *SMALL, "--iters", "4"]
    argv += ["--min-time", "0.2", "--rounds", "3", "--out", str(tmp_path)]
    marker = tmp_path.parent / f"{tmp_path.name}-paused"
    proc = _start(argv, pause_env("onnx-worker-round:1", marker))  # the onnx worker holds after its first round
    try:
        victim = wait_paused(proc, marker)
        assert psutil.Process(victim).name() == "bench-onnx"
        os.kill(victim, signal.SIGKILL)
        _, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, err
    assert "Traceback" not in err
    summary, _, _ = load_results([tmp_path])
    torch_rows, onnx_rows = summary[summary["backend"] == "torch"], summary[summary["backend"] == "onnx"]
    assert len(torch_rows) == 2 and set(torch_rows["status"]) == {"ok"} and (torch_rows["rounds"] == 3).all()
    assert len(onnx_rows) == 2 and set(onnx_rows["status"]) == {"failed"}
    assert all("the onnx worker process was killed by SIGKILL" in e for e in onnx_rows["error"])


def test_a_stopped_worker_fails_only_its_own_runtime_instead_of_hanging(tmp_path: Path) -> None:
    """A worker stopped with SIGSTOP never answers and never dies: the sitting must not wait for it forever."""
    argv = ["run", "--backend", "onnx,torch", "--models", "casvit_xs", *SMALL, "--iters", "2"]
    argv += ["--min-time", "0", "--rounds", "3", "--out", str(tmp_path)]
    marker = tmp_path.parent / f"{tmp_path.name}-paused"
    proc = _start(argv, pause_env("onnx-worker-round:1", marker))
    try:
        victim = wait_paused(proc, marker)
        os.kill(victim, signal.SIGSTOP)  # stopped at a known point: after answering its first round
        marker.unlink()
        _, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
        with contextlib.suppress(ProcessLookupError):
            os.kill(victim, signal.SIGKILL)
    assert proc.returncode == 1, err
    assert "Traceback" not in err
    summary, _, _ = load_results([tmp_path])
    by_backend = dict(zip(summary["backend"], summary["status"], strict=True))
    assert by_backend == {"onnx": "failed", "torch": "ok"}
    (error,) = summary.loc[summary["backend"] == "onnx", "error"]
    assert "the onnx worker process stopped answering" in error and "SIGSTOP" in error
    assert not psutil.pid_exists(victim) or psutil.Process(victim).status() == psutil.STATUS_ZOMBIE


def test_ctrl_c_to_the_process_group_while_a_worker_starts_is_one_message(tmp_path: Path) -> None:
    """Ctrl-C reaches every process of the terminal's group: a worker still starting must not print a traceback."""
    argv = ["run", "--backend", "torch", "--models", "casvit_xs", *SMALL, "--rounds", "1", "--out", str(tmp_path)]
    marker = tmp_path.parent / f"{tmp_path.name}-paused"
    proc = subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, *argv], cwd=REPO, env=pause_env("torch-worker-start:1", marker),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        worker = wait_paused(proc, marker)  # the worker holds before importing its runtime
        assert worker != proc.pid
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert err.strip().startswith("interrupted"), err


def test_sigint_keeps_every_finished_round_and_resume_times_only_what_is_missing(tmp_path: Path) -> None:
    argv = ["run", "--backend", "torch,onnx", "--models", "casvit_xs,swiftformer_xs", *SMALL, "--iters", "4"]
    argv += ["--min-time", "0.2", "--rounds", "3", "--out", str(tmp_path)]
    marker = tmp_path.parent / f"{tmp_path.name}-paused"  # outside --out: the resume reads every folder there
    proc = _start(argv, pause_env("round:8", marker))  # held once 2 rounds x 4 cells are on disk
    err = signal_when_paused(proc, marker, signal.SIGINT)
    assert proc.returncode == 130, err
    assert "0 finished row(s) and 8 finished round(s)" in err and "--resume" in err and "Traceback" not in err
    (first,) = tmp_path.iterdir()
    kept, finished = pd.read_csv(first / ROUNDS_FILE), pd.read_csv(first / SUMMARY_FILE)
    assert len(kept) == 8 and len(finished) == 0
    unfinished = kept[~kept["row_id"].isin(finished["row_id"])]

    resumed = run_cli(*argv, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stderr.count("round(s) resumed") == 4 - len(finished)
    summary, _, _ = load_results([tmp_path])
    assert len(summary) == 4 and sorted(summary["backend"]) == ["onnx", "onnx", "torch", "torch"]
    assert (summary["rounds"] == 3).all() and set(summary["status"]) == {"ok"}
    (second,) = [p for p in tmp_path.iterdir() if p != first]
    again = pd.read_csv(second / ROUNDS_FILE)
    assert len(again) == 3 * (4 - len(finished))  # only the unfinished cells, each to its third round
    # their finished rounds were copied (same timestamps), only the missing ones timed, at the same count
    copied = again.merge(unfinished, on=["row_id", "round"], suffixes=("", "_kept"))
    assert len(copied) == len(unfinished) and (copied["timestamp"] == copied["timestamp_kept"]).all()
    assert again.groupby("row_id")["iterations"].nunique().eq(1).all()


def test_calibration_fixes_one_count_from_the_warmup() -> None:
    steady = LoopLimits(min_iters=50, min_time_s=2.0, max_time_s=60.0)
    assert calibrate([9.0, 5.0, 5.0, 5.0], steady, 5) == 80  # 0.4 s per round at 5 ms (the cold call ignored)
    assert calibrate([900.0, 500.0], steady, 5) == 10  # --iters' share wins for a slow model
    assert calibrate([20000.0, 20000.0], steady, 5) == 1  # capped by --max-time's share, never zero


def test_round_plans_are_permutations_reproducible_from_the_seed() -> None:
    keys = [f"b/m{i}/b1/r64" for i in range(6)]
    plan = plan_rounds(keys, {"b/m0/b1/r64": 2}, 4, seed=3)
    assert plan == plan_rounds(list(reversed(keys)), {"b/m0/b1/r64": 2}, 4, seed=3)
    assert [len(p) for p in plan] == [5, 5, 6, 6]  # a cell resumed with 2 rounds joins at round 2
    assert len({tuple(p) for p in plan[2:]} | {tuple(p) for p in plan[:2]}) > 1


@pytest.mark.parametrize(
    ("backend", "fragment"),
    [("onnx,onnx", "--backend lists onnx more than once"), ("all,onnx", "'all' cannot be combined"), ("onnx,", "''")],
)
def test_bad_backend_lists_are_one_line(backend: str, fragment: str) -> None:
    assert_one_line_error(run_cli("run", "--backend", backend, "--models", "casvit_xs"), fragment)


def test_all_means_every_installed_runtime_that_can_time_here() -> None:
    from bench.backends import BACKENDS, get_backend, timing_backends

    chosen = timing_backends("cpu")
    assert "torch" in chosen and chosen == [name for name in BACKENDS if name in chosen]  # registry order
    left_out = [name for name in BACKENDS if name not in chosen]
    assert all(get_backend(name).cannot_time_reason() is None for name in chosen)
    if sys.platform != "darwin":
        assert "coreml" in left_out  # converts anywhere, times on macOS only
