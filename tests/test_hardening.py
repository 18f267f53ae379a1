"""Hostile input and hostile machines (issue 9): damaged result files, a full disk, bad caches, odd arguments.

Every probe goes through the command line a user types (``bench.cli.main``; a few in a fresh process
via ``run_cli``), with the bad file built by the test. A full disk is simulated by an ``os.write``
that writes part of its buffer and then fails with ENOSPC, as a filling disk does.
"""

from __future__ import annotations

import argparse
import csv
import errno
import io
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from bench.backends import REGISTRY
from bench.backends.onnx import OnnxBackend, export_onnx
from bench.commands import run as run_command
from bench.core.errors import BenchError
from bench.core.interface import artifacts, sessions
from bench.core.interface import settings as settings_module
from bench.core.measure import engine, sitting
from bench.core.measure.parity import check_parity
from bench.core.records.store import ENVIRONMENT_FILE, ROUNDS_FILE, SAMPLES_FILE, SUMMARY_FILE, load_results
from tests.conftest import REPO, assert_one_line_error, run_cli
from tests.result_fixtures import environment, write_run

FAST = (
    "--resolution", "64", "--warmup", "1", "--warmup-time", "0", "--iters", "3", "--min-time", "0",
    "--rounds", "1", "--no-flops", "--no-progress", "--processes", "1", "--budget", "0",
)  # fmt: skip


def engine_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    run_command.add_arguments(parser)
    return parser.parse_args(list(argv))


def _stderr_lines(proc: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.strip()]


# ------------------------------------------------------------------------------------------ damaged results


def _rewrite(path: Path, change) -> None:
    rows = list(csv.reader(io.StringIO(path.read_text())))
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(change(rows))
    path.write_text(buf.getvalue())


def _drop_column(name: str):
    def change(rows):
        i = rows[0].index(name)
        return [r[:i] + r[i + 1 :] for r in rows]

    return change


def _set(name: str, value: str, *lines: int):
    """Set column ``name`` to ``value`` on the given file lines (2 = the first data row)."""

    def change(rows):
        i = rows[0].index(name)
        for line in lines or (2,):
            rows[line - 1][i] = value
        return rows

    return change


def _tear(path: Path, cut: int = 7) -> None:
    """A half-written last line: the end of the file is cut off mid-line."""
    text = path.read_text()
    path.write_text(text[: len(text) - cut])


def _no_env_id(run: Path) -> None:
    env = json.loads((run / ENVIRONMENT_FILE).read_text())
    del env["env_id"]
    (run / ENVIRONMENT_FILE).write_text(json.dumps(env))


def _nul_line(run: Path) -> None:
    path = run / SUMMARY_FILE
    path.write_bytes(path.read_bytes().replace(b"casvit_xs", b"casvit\0xs", 1))


BOTH = {"casvit_xs", "casvit_s"}
XS_DROPPED = {"casvit_s"}  # the first data row (line 2) is casvit_xs
S_DROPPED = {"casvit_xs"}  # the last line is casvit_s

# name -> (damage to NEW's run directory, expected outcome): an error (one line naming the file and
# the fragments) or a warning naming the file and the fragments, with the intact rows still used.
DAMAGE = {
    "summary missing a statistics column": (
        lambda run: _rewrite(run / SUMMARY_FILE, _drop_column("latency_p90_ms")),
        ("warning", SUMMARY_FILE, ["lacks column(s) latency_p90_ms"], BOTH),
    ),
    "summary missing the headline column": (
        lambda run: _rewrite(run / SUMMARY_FILE, _drop_column("latency_median_ms")),
        ("error", SUMMARY_FILE, ["no latency_median_ms column"], None),
    ),
    "garbage batch size": (
        lambda run: _rewrite(run / SUMMARY_FILE, _set("infer_batch_size", "abc")),
        ("warning", SUMMARY_FILE, ["line 2: infer_batch_size 'abc' is not a whole number"], XS_DROPPED),
    ),
    "garbage threads": (
        lambda run: _rewrite(run / SUMMARY_FILE, _set("threads", "x7")),
        ("warning", SUMMARY_FILE, ["line 2: threads 'x7' is not a whole number"], XS_DROPPED),
    ),
    "batch size beyond int64": (
        lambda run: _rewrite(run / SUMMARY_FILE, _set("infer_batch_size", "1e300")),
        ("warning", SUMMARY_FILE, ["infer_batch_size '1e300'"], XS_DROPPED),
    ),
    "unknown status": (
        lambda run: _rewrite(run / SUMMARY_FILE, _set("status", "weird")),
        ("warning", SUMMARY_FILE, ["status 'weird' is not one of"], XS_DROPPED),
    ),
    "reference speeds that are not numbers": (
        lambda run: _rewrite(run / SUMMARY_FILE, _set("reference_ms", '["a"]')),
        ("warning", SUMMARY_FILE, ["reference_ms", "not a list of positive numbers"], BOTH),
    ),
    "unparseable numbers in every row": (
        lambda run: _rewrite(run / SUMMARY_FILE, _set("latency_median_ms", "fast", 2, 3)),
        ("error", SUMMARY_FILE, ["none of its rows can be used", "latency_median_ms 'fast'"], None),
    ),
    "samples file with other columns": (
        lambda run: (run / SAMPLES_FILE).write_text("a,b,c\n1,2,3\n"),
        ("error", SAMPLES_FILE, ["not a samples file", "missing columns: run_id, row_id, latency_ms"], None),
    ),
    "samples with a garbage round": (
        lambda run: _rewrite(run / SAMPLES_FILE, _set("round", "r2")),
        ("warning", SAMPLES_FILE, ["ignored 1 sample line(s)", "line 2"], BOTH),
    ),
    "environment.json without env_id": (_no_env_id, ("error", ENVIRONMENT_FILE, ["has no env_id"], None)),
    "torn last line of summary.csv": (
        lambda run: _tear(run / SUMMARY_FILE),
        ("warning", SUMMARY_FILE, ["dropped a half-written last line"], S_DROPPED),
    ),
    "torn last line of samples.csv": (
        lambda run: _tear(run / SAMPLES_FILE),
        ("warning", SAMPLES_FILE, ["dropped a half-written last line"], BOTH),
    ),
    "a row claiming another machine": (
        lambda run: _rewrite(run / SUMMARY_FILE, _set("env_id", "deadbeef")),
        ("warning", SUMMARY_FILE, ["line 2: env_id 'deadbeef' is not this run's"], XS_DROPPED),
    ),
    "samples appended twice": (
        lambda run: (run / SAMPLES_FILE).write_text(
            (run / SAMPLES_FILE).read_text() + "".join((run / SAMPLES_FILE).read_text().splitlines(True)[1:])
        ),
        ("warning", SAMPLES_FILE, ["ignored 60 repeated sample line(s)"], BOTH),
    ),
    "a torn line in the middle": (
        lambda run: _rewrite(run / SUMMARY_FILE, lambda rows: [rows[0], rows[1][:9] + rows[2]]),
        ("error", SUMMARY_FILE, ["none of its rows can be used", "wrong number of fields (line 2)"], None),
    ),
    "a line of NUL bytes": (_nul_line, ("warning", SUMMARY_FILE, ["1 line(s) holding NUL bytes"], XS_DROPPED)),
    "a column named twice": (
        lambda run: _rewrite(run / SUMMARY_FILE, lambda rows: [[*rows[0], "model"]] + [[*r, "x"] for r in rows[1:]]),
        ("error", SUMMARY_FILE, ["names column(s) model more than once"], None),
    ),
    "a header and no rows": (
        lambda run: _rewrite(run / SUMMARY_FILE, lambda rows: rows[:1]),
        ("error", SUMMARY_FILE, ["no finished rows"], None),
    ),
}


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("results")
    for side in ("old", "new"):
        write_run(root / side, label=side, env=environment(), backend="onnx", models=("casvit_xs", "casvit_s"), n=30)
    return root


@pytest.mark.parametrize("case", list(DAMAGE))
def test_damaged_results_give_one_line_or_a_warning_and_the_intact_rows(
    case: str, pristine: Path, tmp_path: Path, cli
) -> None:
    import shutil

    shutil.copytree(pristine, tmp_path, dirs_exist_ok=True)
    (run,) = (tmp_path / "new").iterdir()
    damage, (outcome, name, fragments, models) = DAMAGE[case]
    damage(run)
    report = cli("report", "--results", str(tmp_path / "new"), "--out", str(tmp_path / "report"), "--no-plots")
    compare = cli("compare", str(tmp_path / "old"), str(tmp_path / "new"), "--format", "csv")
    for proc in (report, compare):
        assert "Traceback" not in proc.stderr and "status: )" not in proc.stderr
        if outcome == "error":
            assert_one_line_error(proc, str(run / name), *fragments)
            continue
        assert proc.returncode == 0, (case, proc.stderr)
        warning = _stderr_lines(proc)[0]
        assert warning.startswith(f"warning: {run / name}: "), warning
        assert all(f in warning for f in fragments), warning
    if outcome == "warning":
        measured = (tmp_path / "report" / "measurements.csv").read_text()
        assert {m for m in BOTH if f",{m}," in measured} == models
        assert {m for m in BOTH if f"\n{m}," in compare.stdout} == models


# ------------------------------------------------------------------------------------------ full disk


class FullDisk:
    """``os.write`` that, on the ``nth`` write to a file named ``name``, writes half its bytes and then
    fails with ENOSPC (what a filling disk does); every other write goes through."""

    def __init__(self, name: str, nth: int) -> None:
        self.name, self.nth, self.calls = name, nth, 0
        self.real = os.write

    def __call__(self, fd: int, data) -> int:
        try:
            target = os.readlink(f"/proc/self/fd/{fd}").endswith(self.name)
        except OSError:
            target = False
        if target:
            self.calls += 1
            if self.calls == self.nth:
                self.real(fd, bytes(data[: max(len(data) // 2, 1)]))
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return self.real(fd, data)


def _intact(run_dir: Path) -> None:
    for name in (SUMMARY_FILE, SAMPLES_FILE, ROUNDS_FILE):
        text = (run_dir / name).read_text()
        assert text.endswith("\n"), f"{name} ends in half a line"
        width = len(text.splitlines()[0].split(","))
        assert all(len(r) == width for r in csv.reader(io.StringIO(text))), f"{name} has a torn line"


TWO_ROWS = ("run", "--backend", "torch", "--models", "casvit_xs", "--batch-sizes", "1,2", *FAST)


def test_full_disk_while_writing_samples_stops_with_one_line_and_keeps_every_earlier_row(tmp_path: Path) -> None:
    out = tmp_path / "results"
    code = (
        "import os, sys\n"
        "from tests.test_hardening import FullDisk\n"
        "os.write = FullDisk('samples.csv', 2)  # the second workload's samples\n"
        "from bench.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    argv = [*TWO_ROWS, "--out", str(out), "--cache-dir", str(tmp_path / "cache")]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", code, *argv], cwd=REPO, env=env, capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    (run_dir,) = out.iterdir()
    first, second = _batches_in_timing_order(run_dir)
    error = _stderr_lines(proc)[-1]
    assert error.startswith(f"error: cannot write round 1 of casvit_xs batch {second} to {run_dir / SAMPLES_FILE}: ")
    assert (
        "No space left on device" in error and f"kept the 1 finished row(s), with their samples, in {run_dir}" in error
    )
    assert "--resume" in error
    _intact(run_dir)
    summary, samples, _ = load_results([out])
    assert sorted(summary["infer_batch_size"].astype(int)) == [first]
    for row in summary.itertuples():
        assert (samples["row_id"] == row.row_id).sum() == row.iterations
    # what was kept is what --resume builds on: only the other batch is measured again
    settings = run_command.parse_settings(engine_args(*argv[1:]))
    _, rows = sitting.run_inline(settings, REGISTRY.get(settings.backend), out, tmp_path / "cache", True, False, False)
    assert [r.infer_batch_size for r in rows] == [second]


def _batches_in_timing_order(run_dir: Path) -> list[int]:
    """The batch sizes of a one-round sitting in the order it timed them (shuffled from its seed)."""
    (order,) = json.loads((run_dir / "environment.json").read_text())["round_order"]
    return [int(key.split("/")[2][1:]) for key in order]


def test_full_disk_while_writing_a_row_keeps_the_earlier_rows_and_the_finished_rounds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "results"
    settings = run_command.parse_settings(engine_args(*TWO_ROWS[1:]))
    monkeypatch.setattr(os, "write", FullDisk(SUMMARY_FILE, 2))  # the second row
    with pytest.raises(BenchError) as caught:
        sitting.run_inline(settings, REGISTRY.get(settings.backend), out, tmp_path / "cache", False, False, False)
    monkeypatch.undo()
    (run_dir,) = out.iterdir()
    first, second = _batches_in_timing_order(run_dir)
    message = str(caught.value)
    assert message.startswith(f"cannot write the row of casvit_xs batch {second} to {run_dir / SUMMARY_FILE}: ")
    assert "kept the 1 finished row(s) and 1 finished round(s) of unfinished rows" in message, message
    _intact(run_dir)
    summary, _, _ = load_results([out])
    assert sorted(summary["infer_batch_size"].astype(int)) == [first]

    # --resume should finish the other batch from its round on disk, without timing it again
    _, rows = sitting.run_inline(settings, REGISTRY.get(settings.backend), out, tmp_path / "cache", True, False, False)
    assert [r.infer_batch_size for r in rows] == [second]


# ------------------------------------------------------------------------------------------ bad folders


def test_unusable_output_and_cache_folders_are_refused_before_any_work(tmp_path: Path, cli) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    out = tmp_path / "results"
    base = ("run", "--backend", "onnx", "--models", "casvit_xs", *FAST, "--out", str(out))  # onnx: exports cached
    cases = {
        ("--cache-dir", str(a_file)): "is a file, not a folder",
        ("--cache-dir", str(a_file / "sub")): "is not writable",
        ("--report", "--report-dir", str(a_file)): "is a file, not a folder",
    }
    for extra, fragment in cases.items():
        proc = cli(*base, *extra)
        assert_one_line_error(proc, extra[-2], extra[-1], fragment)
        assert not list(out.glob("*/summary.csv")), "measured before refusing"
    assert_one_line_error(cli(*base[:-1], str(a_file)), "--out", "is a file, not a folder")


def test_a_cache_folder_that_cannot_be_written(tmp_path: Path, cli) -> None:
    """Refused before any work where exports go there (onnx); torch exports nothing, so it costs only the
    caching (issue 20: a read-only --cache-dir stopped a torch --no-flops run)."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    cache = blocker / "cache"  # cannot be created, whoever runs the test (root ignores permission bits)
    proc = cli("run", "--backend", "onnx", "--models", "casvit_xs", *FAST, "--out", str(tmp_path / "r"),
               "--cache-dir", str(cache))  # fmt: skip
    assert_one_line_error(proc, "--cache-dir", str(cache), "is not writable")
    assert not (tmp_path / "r").exists() or not list((tmp_path / "r").glob("*/summary.csv"))
    proc = cli("run", "--backend", "torch", "--models", "casvit_xs", *FAST, "--out", str(tmp_path / "t"),
               "--cache-dir", str(cache))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "nothing will be cached" in proc.stderr and list((tmp_path / "t").glob("*/summary.csv"))


def test_gmacs_cache_of_the_wrong_type_or_edited_is_recounted_and_rewritten(tmp_path: Path, capsys) -> None:
    settings = run_command.parse_settings(engine_args("--backend", "torch", "--models", "casvit_xs", *FAST))
    model = settings_module.build_model(settings, "casvit_xs", 64)
    cache = tmp_path / "cache"
    cache.mkdir()
    path = cache / "gmacs.json"

    path.write_text("[1, 2, 3]")  # a list, not the object the cache is
    true = engine.model_facts(model, 64, True, cache)["infer_gmacs"]
    assert isinstance(true, float) and true > 0
    entries = json.loads(path.read_text())
    assert isinstance(entries, dict) and len(entries) == 1

    (key,) = entries
    entries[key]["gmacs"] = 99.0  # edited by hand: the checksum no longer matches
    path.write_text(json.dumps(entries))
    assert engine.model_facts(model, 64, True, cache)["infer_gmacs"] == true
    assert json.loads(path.read_text())[key]["gmacs"] == true

    path.write_text("{not json")
    assert engine.model_facts(model, 64, True, cache)["infer_gmacs"] == true
    assert json.loads(path.read_text())[key]["gmacs"] == true

    path.unlink()
    path.mkdir()  # cannot be written at all: the row keeps its count, a warning says it was not cached
    capsys.readouterr()
    assert engine.model_facts(model, 64, True, cache)["infer_gmacs"] == true
    assert "warning: cannot update the GMACs cache" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ export cache parity


def test_cached_export_that_fails_parity_is_evicted_and_rebuilt_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    args = engine_args("--backend", "onnx", "--onnx-exporter", "torchscript", "--models", "casvit_xs", *FAST)
    settings = run_command.parse_settings(args)
    cache = tmp_path / "cache"
    model = settings_module.build_model(settings, "casvit_xs", 64)
    workload = next(settings.workloads())
    path, key = OnnxBackend().cache_path(model, workload, cache)

    # A valid export of *other* weights, under this model's key and with a checksum that matches:
    # only the parity check can tell.
    other = settings_module.build_model(replace(settings, seed=1), "casvit_xs", 64)
    entry = artifacts.cached(path, key, lambda staged: export_onnx(other, _example(workload), staged, "torchscript"))
    assert entry.status == "miss" and path.exists()

    _, rows = sitting.run_inline(settings, REGISTRY.get(settings.backend), tmp_path / "r1", cache, False, False, False)
    (row,) = rows
    assert row.status == "ok", row.error
    detail = json.loads(row.runtime_detail)
    assert detail["evicted"].startswith(f"cached {path.name} was rebuilt: parity failed"), detail
    assert artifacts.tree_digest(path) == json.loads(path.with_name(path.name + ".json").read_text())["sha256"]

    # Damaged so that it cannot even be loaded (checksum fixed up): rebuilt as well.
    path.write_bytes(b"not an onnx model")
    meta = path.with_name(path.name + ".json")
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "sha256": artifacts.tree_digest(path)}))
    _, rows = sitting.run_inline(settings, REGISTRY.get(settings.backend), tmp_path / "r2", cache, False, False, False)
    assert rows[0].status == "ok" and "failed to load" in json.loads(rows[0].runtime_detail)["evicted"]

    # If the fresh build fails parity too, the row says so, naming the file; it is not rebuilt again.
    monkeypatch.setattr(sessions, "check_parity", lambda ref, out, precision: check_parity(ref, out + 1.0, precision))
    _, rows = sitting.run_inline(settings, REGISTRY.get(settings.backend), tmp_path / "r3", cache, False, False, False)
    (row,) = rows
    assert row.status == "parity_failed"
    assert row.error.startswith("parity failed") and str(path) in row.error and "rebuilt" in row.error, row.error
    assert "was rebuilt: parity failed" in json.loads(row.runtime_detail)["evicted"]


def _example(workload):
    import torch

    return torch.zeros(workload.input_shape)


# ------------------------------------------------------------------------------------------ arguments

ARGUMENTS = {
    ("run", "--batch-sizes", "1,\u00b2"): ("--batch-sizes", "digits 0-9", "'\u00b2'"),
    ("run", "--seed", "\u00b2"): ("--seed", "digits 0-9"),
    ("run", "--threads", "\u00b2"): ("--threads", "digits 0-9"),
    ("run", "--threads", "100000"): ("--threads must be between 1 and 1024", "got 100000"),
    ("run", "--seed", "4294967296"): ("--seed must be between 0 and 4294967295",),
    ("run", "--seed", "9" * 5000): ("--seed must be between 0 and 4294967295",),
    ("run", "--batch-sizes", "1,1"): ("--batch-sizes", "lists 1 more than once"),
    ("run", "--batch-sizes", "1,,2"): ("--batch-sizes", "an empty entry"),
    ("run", "--iters", "3,4"): ("--iters", "one whole number"),
    ("compare", "a", "b", "--alpha", "\u00b2"): ("--alpha", "not a number"),
    ("flops", "--batch-size", "\u00b2"): ("--batch-size", "digits 0-9"),
    ("flops", "--resolution", "224,224"): ("--resolution", "lists 224 more than once"),
    ("flops", "--depth", "0"): ("--depth must be between 1 and 64",),
    ("complexity", "--batches", "1,1"): ("--batches", "more than once"),
    ("complexity", "--threads", "\u00b2"): ("--threads", "digits 0-9"),
    ("complexity", "--token-width", "-4"): ("--token-width", "digits 0-9"),
}


@pytest.mark.parametrize("argv", list(ARGUMENTS), ids=lambda argv: " ".join(argv)[:40])
def test_bad_numbers_are_one_line_with_exit_2(argv: tuple[str, ...], cli) -> None:
    assert_one_line_error(cli(*argv), "error: argument", *ARGUMENTS[argv])


def test_bad_numbers_in_a_fresh_process_and_the_types_in_help(cli) -> None:
    assert_one_line_error(run_cli("flops", "--batch-size", "\u00b2"), "--batch-size", "digits 0-9")
    for command, shown in {
        "run": ["--batch-sizes N[,N...]", "--threads N", "1-1024", "--seed N"],
        "flops": ["--batch-size N", "--resolution PX[,PX...]", "--depth N"],
        "complexity": ["--batches N[,N...]", "--threads N", "--repeats N"],
    }.items():
        proc = cli(command, "--help")
        assert proc.returncode == 0
        assert all(s in proc.stdout for s in shown), (command, proc.stdout)


# ------------------------------------------------------------------------------------------ checkpoints


def test_checkpoint_of_random_bytes_is_called_not_a_checkpoint(tmp_path: Path, cli) -> None:
    noise = tmp_path / "noise.pth"
    noise.write_bytes(np.random.default_rng(0).bytes(4096))
    proc = cli("run", "--backend", "torch", "--models", "casvit_xs", *FAST, "--checkpoint", str(noise),
               "--out", str(tmp_path / "r"))  # fmt: skip
    assert_one_line_error(proc, str(noise), "is not a checkpoint")
    assert "pickles Python objects" not in proc.stderr
