"""Hostile input, round three (issue 31): multi-runtime sittings, ``bench import`` and reports over mixed
runs. Each probe builds its own bad input (or stops the suite at a known point through
:mod:`bench.core.measure.pause`, never by racing it) and goes through the command line.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from bench.core.errors import BenchError
from bench.core.records.store import ROUNDS_FILE, SUMMARY_FILE, load_results
from tests.conftest import REPO, assert_one_line_error, pause_env, run_cli, signal_when_paused, wait_paused

FAST = ("--resolution", "64", "--warmup", "1", "--warmup-time", "0", "--iters", "3", "--min-time", "0",
        "--no-flops", "--no-progress", "--processes", "1", "--budget", "0")  # fmt: skip


# ------------------------------------------------------------------- class 6: SIGTERM says what it kept


def test_sigterm_stops_a_sitting_saying_what_was_kept_and_resume_finishes_it(tmp_path: Path) -> None:
    out, marker = tmp_path / "out", tmp_path / "paused"
    argv = ["run", "--backend", "torch", "--models", "casvit_xs", *FAST, "--rounds", "3", "--out", str(out)]
    proc = subprocess.Popen(  # held once two rounds are on disk
        [sys.executable, "-m", "bench", *argv], cwd=REPO, env=pause_env("round:2", marker),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    err = signal_when_paused(proc, marker, signal.SIGTERM)
    assert proc.returncode == 143, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("stopped by SIGTERM: 0 finished row(s) and 2 finished round(s)")
    assert "--resume" in lines[0]
    (first,) = out.iterdir()
    assert len(pd.read_csv(first / ROUNDS_FILE)) == 2
    resumed = run_cli(*argv, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "2 round(s) resumed" in resumed.stderr
    summary, _, _ = load_results([out])
    assert len(summary) == 1 and summary["rounds"].tolist() == [3]


# ------------------------------------------------ class 1: the environment rewrite meets a full disk

ENV_REWRITE_FAILS = """\
import errno, os, sys
from pathlib import Path
import bench.core.records.store as store
real = store.atomic_write_text
def failing(path, text):
    if Path(path).name == "environment.json" and Path(path).exists():  # the rewrite after opening
        raise OSError(errno.{code}, os.strerror(errno.{code}))
    return real(path, text)
store.atomic_write_text = failing
from bench.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize(("code", "advice"), [("ENOSPC", "free space"), ("EROFS", "make the results folder writable")])
def test_a_failed_environment_rewrite_is_one_line_with_the_right_advice(tmp_path: Path, code: str, advice: str) -> None:
    out = tmp_path / "out"
    argv = ["run", "--backend", "torch", "--models", "casvit_xs", *FAST, "--rounds", "1", "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    script = ENV_REWRITE_FAILS.format(code=code)
    proc = subprocess.run([sys.executable, "-c", script, *argv], cwd=REPO, env=env, capture_output=True, text=True)
    assert_one_line_error(proc, "cannot write", "environment.json", os.strerror(getattr(__import__("errno"), code)))
    assert f"({advice}, then run the same command with --resume" in proc.stderr
    if code == "EROFS":
        assert "free space" not in proc.stderr
    (run_dir,) = out.iterdir()
    assert (run_dir / SUMMARY_FILE).exists()  # the folder the message names is there, headers intact


# --------------------------------------------------------------- class 2 and 1: what import reads and hashes

DATA = REPO / "tests" / "data" / "import"
MANIFEST = DATA / "manifest.json"
RUNNER_LOG = DATA / "executor_runner_one_process.log"


def _runner_log(tmp_path: Path, model_path: str) -> Path:
    """An executor_runner log whose ``Model file`` line names ``model_path``."""
    text = RUNNER_LOG.read_text().replace("/data/local/tmp/casvit_xs-b1-r224-fp32.pte", model_path)
    log = tmp_path / "named.log"
    log.write_text(text)
    return log


def _special_paths(tmp_path: Path) -> dict[str, Path]:
    (tmp_path / "empty").mkdir()
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "zero").symlink_to("/dev/zero")
    return {"root": Path("/"), "usr": Path("/usr"), "empty folder": tmp_path / "empty", "fifo": tmp_path / "pipe",
            "proc mem": Path("/proc/self/mem"), "dev zero link": tmp_path / "zero"}  # fmt: skip


@pytest.mark.parametrize("kind", ["root", "usr", "empty folder", "fifo", "proc mem", "dev zero link"])
def test_an_output_naming_a_folder_or_special_file_as_its_model_is_never_hashed(
    tmp_path: Path, kind: str, cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bench.commands import import_results

    hashed: list[Path] = []
    real = import_results.tree_digest

    def recording(path: Path) -> str:
        hashed.append(Path(path))
        return real(path)

    monkeypatch.setattr(import_results, "tree_digest", recording)
    named = _special_paths(tmp_path)[kind]
    proc = cli("import", str(_runner_log(tmp_path, str(named))), "--manifest", str(MANIFEST), "--out",
               str(tmp_path / "out"))  # fmt: skip
    assert "Traceback" not in proc.stderr
    assert hashed == []  # no tree walked, no pipe opened, no device read
    if proc.returncode == 2:
        assert_one_line_error(proc, "named.log")
    else:  # matched by the output's own name: a normal import
        assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("kind", ["fifo", "empty folder", "dev zero link", "proc mem"])
@pytest.mark.parametrize("role", ["output", "manifest", "device file"])
def test_import_reads_only_regular_files(tmp_path: Path, kind: str, role: str) -> None:
    """A named pipe blocked forever, a link to /dev/zero ran out of memory: each is one line now (run_cli's
    timeout only turns a regression's hang into a failure)."""
    bad = str(_special_paths(tmp_path)[kind])
    args = {"output": [bad, "--manifest", str(MANIFEST)],
            "manifest": [str(RUNNER_LOG), "--manifest", bad],
            "device file": [str(RUNNER_LOG), "--manifest", str(MANIFEST), "--device-file", bad]}[role]  # fmt: skip
    proc = run_cli("import", *args, "--out", str(tmp_path / "out"), timeout=120)
    kind_words = {"fifo": "named pipe", "empty folder": "folder", "dev zero link": "character device"}
    if kind in kind_words:
        assert_one_line_error(proc, bad, kind_words[kind])
    else:
        assert_one_line_error(proc, bad)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.parametrize(("role", "suffix", "text"), [
    ("output", ".json", "[" * 100_000),
    ("manifest", ".json", '{"a":' * 100_000),
    ("device file", ".json", "[" * 100_000),
    ("device file", ".toml", "a = " + "[" * 100_000),
    ("models spec", ".toml", "factory = " + "[" * 100_000),
])  # fmt: skip
def test_documents_nested_100000_deep_are_one_line(tmp_path: Path, role: str, suffix: str, text: str, cli) -> None:
    deep = tmp_path / f"deep{suffix}"
    deep.write_text(text)
    args = {"output": ["import", str(deep), "--manifest", str(MANIFEST), "--format", "litert-benchmark"],
            "manifest": ["import", str(RUNNER_LOG), "--manifest", str(deep)],
            "device file": ["import", str(RUNNER_LOG), "--manifest", str(MANIFEST), "--device-file", str(deep)],
            "models spec": ["list", "--models", str(deep)]}[role]  # fmt: skip
    proc = cli(*args, "--out", str(tmp_path / "out")) if role != "models spec" else cli(*args)
    assert_one_line_error(proc, str(deep), "nested too deeply")


def test_format_detection_is_linear_on_a_crafted_line(tmp_path: Path) -> None:
    """One 2 MB line of repeated ``Model file `` took hours to detect (a lazy regex searched from each); now it
    is refused at once (the timeout only catches a regression, it times nothing)."""
    crafted = tmp_path / "crafted.log"
    crafted.write_text("Model file " * 200_000 + "\n")
    proc = run_cli("import", str(crafted), "--manifest", str(MANIFEST), "--out", str(tmp_path / "out"), timeout=120)
    assert_one_line_error(proc, str(crafted), "not the output of a benchmark tool")


def test_format_named_on_another_tools_output_says_so(tmp_path: Path, cli) -> None:
    proc = cli("import", str(RUNNER_LOG), "--manifest", str(MANIFEST), "--format", "litert-benchmark",
               "--out", str(tmp_path / "out"))  # fmt: skip
    assert_one_line_error(proc, "not litert-benchmark output", "executor-runner")
    other = tmp_path / "notes.txt"
    other.write_text("just some notes\nnothing timed here\n")
    proc = cli("import", str(other), "--model", "casvit_xs", "--format", "executor-runner", "--out", str(tmp_path))
    assert_one_line_error(proc, "not executor-runner output")
    assert "truncated" not in proc.stderr


# ----------------------------------------------------------------- class 4: absurd values at import

LITERT_JSON = DATA / "litert-benchmark.json"
OV_REPORT = DATA / "openvino_no_counters" / "benchmark_report.csv"
ORT_RESULT = DATA / "casvit_xs-b1-r224-fp32.onnxruntime_perf_test.txt"
ORT_CONSOLE = DATA / "onnxruntime_perf_test.stdout.txt"


def _edited(tmp_path: Path, source: Path, old: str, new: str, name: str | None = None) -> Path:
    text = source.read_text()
    assert old in text, old
    path = tmp_path / (name or source.name)
    path.write_text(text.replace(old, new, 1))
    return path


ABSURD = [
    (LITERT_JSON, '"median_ms": 13.42', '"median_ms": 0', "latency_median_ms 0"),
    (LITERT_JSON, '"median_ms": 13.42', '"median_ms": 1e-300', "latency_median_ms 1e-300"),
    (LITERT_JSON, '"median_ms": 13.42', '"median_ms": 1e308', "latency_median_ms 1e+308"),
    (LITERT_JSON, '"avg_ms": 13.51', '"avg_ms": 0.0', "latency_mean_ms 0.0"),
    (ORT_CONSOLE, "Average inference time cost: 13.0945 ms", "Average inference time cost: 1e308 s", "inf"),
    (OV_REPORT, "latency (ms);8.41", "latency (ms);0.00", "latency_median_ms 0.0"),
    (OV_REPORT, "batch size;1", "batch size;0", "batch 0"),
    (OV_REPORT, "-nthreads;1", "-nthreads;1e20", "threads 100000000000000000000"),
    (OV_REPORT, "total number of iterations;8", "total number of iterations;0", "iterations 0"),
]  # fmt: skip


@pytest.mark.parametrize(("source", "old", "new", "fragment"), ABSURD, ids=[a[2][:28] for a in ABSURD])
def test_absurd_imported_values_are_refused_and_nothing_is_written(
    tmp_path: Path, source: Path, old: str, new: str, fragment: str, cli
) -> None:
    bad = _edited(tmp_path, source, old, new)
    out = tmp_path / "out"
    proc = cli("import", str(bad), "--manifest", str(MANIFEST), "--out", str(out), "--model", "casvit_xs")
    assert_one_line_error(proc, str(bad), fragment)
    assert not out.exists() or not any(out.iterdir())


def test_all_zero_samples_are_refused(tmp_path: Path, cli) -> None:
    lines = ORT_RESULT.read_text().splitlines()
    zeroed = tmp_path / ORT_RESULT.name
    runs = [line.split(",") for line in lines if line.count(",") == 4]
    zeroed.write_text("".join(",".join([p[0], "0", *p[2:]]) + "\n" for p in runs))
    proc = cli("import", str(zeroed), "--manifest", str(MANIFEST), "--out", str(tmp_path / "out"))
    assert_one_line_error(proc, str(zeroed), "iteration 1: latency 0.0")


@pytest.mark.parametrize(("source", "old", "new"), [
    (OV_REPORT, "latency (ms);8.41", "latncy (ms);8.41"),
    (OV_REPORT, "latency (ms);8.41", "Latency median;8.41"),
    (ORT_CONSOLE, "P50 Latency: 0.01319261 s", "P5O Latency: 0.01319261 s"),
    (ORT_CONSOLE, "P50 Latency: 0.01319261 s", "P50 Latncy: 0.01319261 s"),
    (ORT_CONSOLE, "P50 Latency: 0.01319261 s", ""),
])  # fmt: skip
def test_a_garbled_or_missing_median_line_is_an_error_not_a_row_led_by_the_mean(
    tmp_path: Path, source: Path, old: str, new: str, cli
) -> None:
    bad = _edited(tmp_path, source, old, new)
    out = tmp_path / "out"
    proc = cli("import", str(bad), "--manifest", str(MANIFEST), "--out", str(out), "--model", "casvit_xs")
    assert_one_line_error(proc, str(bad), "garbled")
    assert not out.exists()


def test_a_single_runtime_version_is_not_stamped_onto_several_runtimes(tmp_path: Path, cli) -> None:
    device = tmp_path / "device.toml"
    device.write_text('device = "Pixel 8"\nruntime_version = "2.16.1"\n')
    both = [str(LITERT_JSON), str(ORT_RESULT), "--manifest", str(MANIFEST), "--out", str(tmp_path / "out")]
    assert_one_line_error(cli("import", *both, "--device-file", str(device)), "runtime_version", "2 runtimes")
    device.write_text('device = "Pixel 8"\n[runtime_version]\nlitert = "1.4.0"\nonnx = "1.20.1"\n')
    proc = cli("import", *both, "--device-file", str(device))
    assert proc.returncode == 0, proc.stderr
    versions = {}
    for run in (tmp_path / "out").iterdir():
        env = json.loads((run / "environment.json").read_text())
        versions[env["source_tool"]] = env["versions"]
    assert sorted(v for vs in versions.values() for v in vs.values()) == ["1.20.1", "1.4.0"]
    assert all(len(vs) == 1 for vs in versions.values())  # each runtime gets its own version only


def test_the_same_output_imported_twice_is_refused(tmp_path: Path, cli) -> None:
    out = tmp_path / "out"
    copy = tmp_path / "copy.json"
    copy.write_bytes(LITERT_JSON.read_bytes())
    args = ["--manifest", str(MANIFEST), "--out", str(out)]
    assert_one_line_error(cli("import", str(LITERT_JSON), str(LITERT_JSON), *args), "listed twice")
    assert_one_line_error(cli("import", str(LITERT_JSON), str(copy), *args), "same output", "SHA-256")
    assert cli("import", str(LITERT_JSON), *args).returncode == 0
    (first,) = out.iterdir()
    assert_one_line_error(cli("import", str(copy), *args), "imported before", str(first))
    assert list(out.iterdir()) == [first]


def test_two_outputs_of_one_setting_in_one_import_are_refused(tmp_path: Path, cli) -> None:
    other = _edited(tmp_path, LITERT_JSON, '"median_ms": 13.42', '"median_ms": 13.5', name="again.json")
    proc = cli("import", str(LITERT_JSON), str(other), "--manifest", str(MANIFEST), "--out", str(tmp_path / "out"))
    assert_one_line_error(proc, "both measured", "two calls")


# ------------------------------------------------- class 3: no telemetry store, no write through a link


def test_an_onnx_runtime_run_leaves_nothing_in_the_users_home(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("ORT_DISABLE_TELEMETRY", "XDG_CACHE_HOME")}
    env.update(HOME=str(home), PYTHONPATH=str(REPO), BENCH_CACHE_DIR=str(tmp_path / "cache"))
    argv = ["run", "--backend", "onnx", "--models", "casvit_xs", *FAST, "--rounds", "1", "--out", str(tmp_path / "o")]
    argv += ["--onnx-exporter", "torchscript"]
    proc = subprocess.run([sys.executable, "-m", "bench", *argv], cwd=REPO, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert len(load_results([tmp_path / "o"])[0]) == 1
    assert [p for p in home.rglob("*") if "onnxruntime" in str(p).lower()] == []


def test_report_removes_only_its_own_figures_and_replaces_a_planted_link(tmp_path: Path, cli) -> None:
    from tests.result_fixtures import environment, write_run

    run = write_run(tmp_path / "results", label="onnx", env=environment(), backend="onnx",
                    models=("casvit_xs", "swiftformer_xs"))  # fmt: skip
    paper = tmp_path / "paper"
    mine = paper / "figures"
    mine.mkdir(parents=True)
    (mine / "my_diagram.pdf").write_bytes(b"%PDF-1.4 the user's own")
    (mine / "photo.png").write_bytes(b"\x89PNG the user's own")
    argv = ["report", "--results", str(run), "--out", str(paper)]
    assert cli(*argv).returncode == 0
    written = sorted(p.name for p in mine.glob("*.p[dn][fg]") if p.name not in ("my_diagram.pdf", "photo.png"))
    assert written and (mine / "my_diagram.pdf").read_bytes() == b"%PDF-1.4 the user's own"
    assert (mine / "photo.png").read_bytes() == b"\x89PNG the user's own"
    # a link planted where a figure goes: the figure replaces the link, its target is untouched
    target = tmp_path / "precious.pdf"
    target.write_bytes(b"keep me")
    (mine / written[0]).unlink()
    (mine / written[0]).symlink_to(target)
    assert cli(*argv).returncode == 0
    assert target.read_bytes() == b"keep me"
    assert not (mine / written[0]).is_symlink() and (mine / written[0]).stat().st_size > 100
    assert (mine / "my_diagram.pdf").exists() and (mine / "photo.png").exists()
    assert not list(mine.glob(".*.tmp*"))  # no temporary file left behind
    # the figures folder itself a link to a folder outside --out: the link is replaced, nothing written there
    elsewhere = tmp_path / "elsewhere"
    mine.rename(elsewhere)
    mine.symlink_to(elsewhere, target_is_directory=True)
    before = {p.name: p.stat().st_mtime_ns for p in elsewhere.iterdir()}
    assert cli(*argv).returncode == 0
    assert {p.name: p.stat().st_mtime_ns for p in elsewhere.iterdir()} == before
    assert not mine.is_symlink() and sorted(p.name for p in mine.glob("*.p[dn][fg]")) == written


# ---------------------------------------------------------------------- class 5: options and names


def test_an_option_of_any_listed_runtime_applies_to_its_cells(tmp_path: Path) -> None:
    from bench.commands import run as run_command
    from tests.test_engine import engine_args

    args = engine_args("--backend", "torch,onnx", "--models", "casvit_xs", "--onnx-graph-opt", "basic")
    runtimes = {r.name: dict(r.settings.options) for r in run_command.parse_runtimes(args)}
    assert runtimes["onnx"]["graph_opt"] == "basic" and runtimes["torch"] == {}
    lone = engine_args("--backend", "torch", "--models", "casvit_xs", "--onnx-graph-opt", "basic")
    with pytest.raises(BenchError, match="--onnx-graph-opt"):
        run_command.parse_runtimes(lone)


@pytest.mark.parametrize(("flag", "value", "fragment"), [
    ("--order-seed", "-1", "--order-seed"),
    ("--max-time", "1e308", "at most"),
    ("--min-time", "1e308", "at most"),
    ("--warmup-time", "1e300", "at most"),
])  # fmt: skip
def test_out_of_range_run_flags_are_one_line_under_their_own_name(flag: str, value: str, fragment: str, cli) -> None:
    proc = cli("run", "--backend", "torch", "--models", "casvit_xs", flag, value)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert flag in proc.stderr and fragment in proc.stderr
    if flag == "--order-seed":
        assert "--seed " not in proc.stderr.replace("--order-seed", "")


def test_an_external_network_named_sized_is_refused(tmp_path: Path, cli) -> None:
    from tests.test_external import TINY

    (tmp_path / "tiny.py").write_text(TINY)
    proc = cli("list", "--models", f"sized={tmp_path / 'tiny.py'}:tiny_net")
    assert_one_line_error(proc, "'sized'", "--models keyword")


# ------------------------------------- class 1: runs on disk holding a cell twice or absurd values


def _summary_edited(run: Path, edit) -> None:
    """Rewrite ``run``'s summary.csv through ``edit(header, rows) -> rows`` (as a hostile hand would)."""
    import csv

    with (run / SUMMARY_FILE).open(newline="") as f:
        header, *rows = list(csv.reader(f))
    with (run / SUMMARY_FILE).open("w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows([header, *edit(header, rows)])


def _two_model_run(root: Path) -> Path:
    from tests.result_fixtures import environment, write_run

    return write_run(root, label="onnx", env=environment(), backend="onnx", models=("casvit_xs", "swiftformer_xs"))


LATENCY_COLUMNS = ("latency_ms", "latency_ci_low_ms", "latency_ci_high_ms", "latency_mean_ms", "latency_median_ms",
                   "latency_min_ms", "latency_max_ms", "latency_p90_ms", "latency_p95_ms", "latency_p99_ms",
                   "infer_step_time")  # fmt: skip


@pytest.mark.parametrize(("value", "columns"), [
    ("0", ("latency_ms",)), ("1e-300", ("latency_ms",)), ("1e308", ("latency_ms",)), ("nan", ("latency_ms",)),
    ("0", ("latency_ci_low_ms", "latency_ci_high_ms")), ("1e308", ("latency_ci_low_ms", "latency_ci_high_ms")),
    ("5e-324", LATENCY_COLUMNS), ("1e308", LATENCY_COLUMNS),
])  # fmt: skip
def test_absurd_summary_values_are_left_out_when_loaded(tmp_path: Path, value: str, columns: tuple, cli) -> None:
    """0, 1e-300 or 1e308 ms crashed matplotlib in ``report`` and 0 ms was an "improvement" in ``compare``:
    the loader leaves every latency outside 1 ns to 1e7 ms out; the headline is recomputed from the round
    medians where the row has them, and a row whose median is absurd too is left out."""
    old = _two_model_run(tmp_path / "old")
    new = _two_model_run(tmp_path / "new")
    before = load_results([new])[0].set_index("model")["latency_ms"]

    def absurd(header: list[str], rows: list[list[str]]) -> list[list[str]]:
        for name in columns:
            rows[0][header.index(name)] = value
        return rows

    _summary_edited(new, absurd)
    summary = load_results([new])[0].set_index("model")
    if "latency_median_ms" in columns:
        assert list(summary.index) == ["swiftformer_xs"]
    else:
        assert summary.loc["casvit_xs", "latency_ms"] == pytest.approx(before["casvit_xs"])
    proc = cli("report", "--results", str(new), "--out", str(tmp_path / "report"))
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert f"'{value}' is not a" in proc.stderr
    proc = cli("compare", str(old), str(new), "--allow-untested")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "improved" not in proc.stdout


def test_an_interval_that_does_not_hold_its_headline_is_left_out(tmp_path: Path, cli) -> None:
    run = _two_model_run(tmp_path / "run")

    def beside(header: list[str], rows: list[list[str]]) -> list[list[str]]:
        headline = float(rows[0][header.index("latency_ms")])
        rows[0][header.index("latency_ci_low_ms")] = str(headline * 2)  # plausible ends, no interval of it
        rows[0][header.index("latency_ci_high_ms")] = str(headline * 3)
        return rows

    _summary_edited(run, beside)
    summary = load_results([run])[0].set_index("model")
    assert summary.loc[["casvit_xs"], ["latency_ci_low_ms", "latency_ci_high_ms"]].isna().all(axis=None)
    assert summary.loc[["swiftformer_xs"], ["latency_ci_low_ms", "latency_ci_high_ms"]].notna().all(axis=None)
    proc = cli("report", "--results", str(run), "--out", str(tmp_path / "report"))
    assert proc.returncode == 0 and "does not hold the headline" in proc.stderr, proc.stderr


@pytest.mark.parametrize("row_id", ["same", "new"])
def test_a_run_holding_a_cell_twice_is_read_as_one_row_per_cell(tmp_path: Path, row_id: str, cli) -> None:
    """Two outputs of one artifact in one older import (or a summary appended to) gave KeyError: 'backend'."""
    run = _two_model_run(tmp_path / "run")

    def twice(header: list[str], rows: list[list[str]]) -> list[list[str]]:
        again = list(rows[0])
        if row_id == "new":
            again[header.index("row_id")] = "0123456789ab"
        for name in ("latency_ms", "latency_ci_low_ms", "latency_ci_high_ms"):  # a later, slower measurement
            again[header.index(name)] = str(float(again[header.index(name)]) * 1.5)
        return [*rows, again]

    before = load_results([run])[0].set_index("model")["latency_ms"]
    _summary_edited(run, twice)
    summary = load_results([run])[0]
    assert sorted(summary["model"]) == ["casvit_xs", "swiftformer_xs"]  # once each, the later line kept
    assert summary.set_index("model").at["casvit_xs", "latency_ms"] == pytest.approx(before["casvit_xs"] * 1.5)
    proc = cli("report", "--results", str(run), "--out", str(tmp_path / "report"))
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert "line 2: the same cell and setting as line 4, which is used" in proc.stderr
    proc = cli("compare", str(run), str(run))
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr


def test_a_run_copied_under_two_results_folders_counts_once(tmp_path: Path, cli) -> None:
    import shutil

    run = _two_model_run(tmp_path / "a")
    shutil.copytree(run, tmp_path / "b" / run.name)
    summary = load_results([tmp_path / "a", tmp_path / "b"])[0]
    assert len(summary) == 2
    proc = cli("report", "--results", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "report"))
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert f"holds run {run.name} again" in proc.stderr


# ------------------------------------------ class 3: a sitting stopped and resumed is still one sitting


@pytest.mark.parametrize("stop", ["sigterm in the last round", "a killed worker"])
def test_a_sitting_stopped_and_resumed_keeps_its_ratios(tmp_path: Path, stop: str, cli) -> None:
    """Stopped once the first row is on disk (the other runtime's cell in its last round), or with the onnx
    worker killed after its first round, then ``--resume``: the rows lie in two folders. They were one sitting,
    so the ratio table and the findings must still pair them (they lost the model, or vanished)."""
    out, marker = tmp_path / "out", tmp_path / "paused"
    argv = ["run", "--backend", "torch,onnx", "--onnx-exporter", "torchscript", "--models", "casvit_xs", *FAST,
            "--rounds", "2", "--order-seed", "1", "--out", str(out)]  # fmt: skip
    point = "row:1" if stop.startswith("sigterm") else "onnx-worker-round:1"
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench", *argv], cwd=REPO, env=pause_env(point, marker),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    if stop.startswith("sigterm"):
        err = signal_when_paused(proc, marker, signal.SIGTERM)
        assert proc.returncode == 143 and "1 finished row(s)" in err, err
    else:
        try:
            os.kill(wait_paused(proc, marker), signal.SIGKILL)  # the onnx worker, held after its first round
            _, err = proc.communicate(timeout=300)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 1 and "killed by SIGKILL" in err, err
    (first,) = out.iterdir()
    resumed = run_cli(*argv, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    (second,) = set(out.iterdir()) - {first}
    assert json.loads((second / "environment.json").read_text())["resumes"] == [first.name]
    summary = load_results([out])[0]
    assert sorted(summary.loc[summary["status"] == "ok", "backend"]) == ["onnx", "torch"]
    assert set(summary["sitting"]) == {first.name}  # one sitting, in two folders
    report = tmp_path / "report"
    proc = cli("report", "--results", str(out), "--out", str(report), "--no-plots", "--ratio-to", "onnx")
    assert proc.returncode == 0, proc.stderr
    ratios = pd.read_csv(report / "ratios.csv")
    assert ratios[["model", "backend"]].values.tolist() == [["casvit_xs", "torch"]]
    assert f"run {first.name} (continued by --resume in {second.name})" in (report / "ratios.md").read_text()
    assert "within each of 1 sitting(s)" in (report / "findings.md").read_text()
    environment = json.loads((second / "environment.json").read_text())
    del environment["resumes"]  # as a folder written before runs recorded the runs they continue
    (second / "environment.json").write_text(json.dumps(environment))
    assert set(load_results([out])[0]["sitting"]) == {first.name}  # the same command's earlier run, resumed
    proc = cli("report", "--results", str(out), "--out", str(report), "--no-plots", "--ratio-to", "onnx")
    assert proc.returncode == 0, proc.stderr
    assert pd.read_csv(report / "ratios.csv")[["model", "backend"]].values.tolist() == [["casvit_xs", "torch"]]
    assert "within each of 1 sitting(s)" in (report / "findings.md").read_text()


# ------------------------------------------------------------- class 5: report --models and its ratios


def test_report_models_filters_the_ratio_tables_and_takes_names_the_results_hold(tmp_path: Path, cli) -> None:
    from tests.test_ratios import _sitting

    run = _sitting(tmp_path / "runs")

    def renamed(header: list[str], rows: list[list[str]]) -> list[list[str]]:
        for row in rows:  # an imported or external network: a name the registry does not know
            if row[header.index("model")] == "swiftformer_xs":
                row[header.index("model")] = "my_net"
        return rows

    _summary_edited(run, renamed)
    for chosen, other in (("casvit_xs", "my_net"), ("my_net", "CAS-ViT-XS")):
        out = tmp_path / chosen
        proc = cli("report", "--results", str(run), "--out", str(out), "--no-plots", "--models", chosen)
        assert proc.returncode == 0, proc.stderr
        assert set(pd.read_csv(out / "ratios.csv")["model"]) == {chosen}
        for name in ("ratios.md", "ratios.tex", "findings.md", "table.md"):
            assert other not in (out / name).read_text().replace("my\\_net", "my_net"), name
    assert_one_line_error(cli("report", "--results", str(run), "--out", str(tmp_path / "x"), "--models", "my_nett"),
                          "unknown model 'my_nett'")  # fmt: skip


# ---------------------------------------------- class 6: a device name holding a newline and a pipe


def test_a_device_name_with_a_newline_and_a_pipe_keeps_every_markdown_table_whole(tmp_path: Path, cli) -> None:
    import re

    results, out = tmp_path / "results", tmp_path / "report"
    name = "Pixel 8\n| evil | row |\n# Heading\r\nend"
    proc = cli("import", str(LITERT_JSON), "--manifest", str(MANIFEST), "--device-name", name, "--out", str(results))
    assert proc.returncode == 0, proc.stderr
    assert cli("report", "--results", str(results), "--out", str(out), "--no-plots").returncode == 0
    pipes = re.compile(r"(?<!\\)\|")
    for md in sorted(out.glob("*.md")):
        lines = md.read_text().splitlines()
        assert not [line for line in lines if line.startswith(("# Heading", "| evil", "end"))], md.name
        width = None
        for line in lines:  # every row of a table has as many cells as its header
            if not line.startswith("|"):
                width = None
                continue
            width = width or len(pipes.findall(line))
            assert len(pipes.findall(line)) == width, (md.name, line)
    assert "Pixel 8 \\| evil \\| row \\| # Heading end" in (out / "table.md").read_text()


# ----------------------------------------- round two, still open: a failed export says its cause, quietly

BRANCHY = """\
import torch
from torch import nn


class Branchy(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.head = nn.Linear(8, 10)

    def forward(self, x):
        y = self.conv(x)
        if y.mean() > 0:
            y = y * 2
        return self.head(y.mean((2, 3)))


def build():
    return Branchy()
"""


def test_a_dynamo_export_failing_on_a_data_dependent_branch_is_one_line_naming_the_cause(tmp_path: Path) -> None:
    """torch.export poured ~37 lines of FX graph onto stderr and the row said torch's generic "Next steps" (also in
    a multi-runtime sitting, where OpenVINO's export frontend printed the graph as well)."""
    (tmp_path / "branchy.py").write_text(BRANCHY)
    out = tmp_path / "out"
    proc = run_cli("run", "--backend", "onnx,openvino", "--onnx-exporter", "dynamo", "--models",
                   f"{tmp_path / 'branchy.py'}:build", *FAST, "--rounds", "1", "--cache-dir", str(tmp_path / "cache"),
                   "--out", str(out))  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 3 and "Traceback" not in proc.stderr, proc.stderr  # each row's failure and the count
    errors = load_results([out])[0].set_index("backend")["error"]
    assert all("Next steps" not in e and "data-dependent" in e for e in errors), errors
    assert "branchy.py:13 `if y.mean() > 0:`" in errors["onnx"]
    assert all(any(e in line for line in lines) for e in errors)


def test_openvino_and_executorch_exports_failing_on_a_branch_name_the_networks_line(tmp_path: Path) -> None:
    """OpenVINO and ExecuTorch said only torch.export's "Could not guard on data-dependent expression Eq(u0, 1)",
    not where: their rows name the line of the user's network too, as ONNX's do (one helper, :func:`one_line`)."""
    (tmp_path / "branchy.py").write_text(BRANCHY)
    out = tmp_path / "out"
    proc = run_cli("run", "--backend", "openvino,executorch", "--models", f"{tmp_path / 'branchy.py'}:build", *FAST,
                   "--rounds", "1", "--cache-dir", str(tmp_path / "cache"), "--out", str(out))  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 3 and "Traceback" not in proc.stderr, proc.stderr
    errors = load_results([out])[0].set_index("backend")["error"]
    assert sorted(errors.index) == ["executorch", "openvino"]
    for backend, error in errors.items():
        assert "at branchy.py:13 `if y.mean() > 0:`: " in error and "data-dependent" in error, error
        assert any(line.startswith(f"{backend}/") and error in line for line in lines), (error, lines)


MLIR_MESSAGE = "Verification failed:\nerror: loc(\"conv\"): 'tfl.conv_2d' op operand #0 must be a tensor\n note: ..."
STUB_CONVERTER = f"""\
__version__ = "0-stub"


class MLIRError(Exception):
    pass


def convert(*args, **kwargs):
    raise MLIRError({MLIR_MESSAGE!r})
"""


def test_a_litert_conversion_failure_keeps_the_cause_after_verification_failed(tmp_path: Path) -> None:
    """The row said only "MLIRError: Verification failed:". No network of the zoo fails LiteRT's verifier, so the
    converter's Python is this one with a litert_torch that raises MLIR's multi-line error; the suite's side (the
    converter script, its result line, the row's one-line error) is the real one."""
    stub = tmp_path / "stub" / "litert_torch"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text(STUB_CONVERTER)
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{stub.parent}", "BENCH_LITERT_PYTHON": sys.executable}
    out = tmp_path / "out"
    argv = ["run", "--backend", "litert", "--models", "casvit_xs", *FAST, "--rounds", "1",
            "--cache-dir", str(tmp_path / "cache"), "--out", str(out)]  # fmt: skip
    proc = subprocess.run([sys.executable, "-m", "bench", *argv], cwd=REPO, env=env, capture_output=True, text=True)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    (error,) = load_results([out])[0]["error"]
    assert "MLIRError: Verification failed: error: loc(\"conv\"): 'tfl.conv_2d' op operand #0 must be a tensor" in error


# ------------------------------------------------- class 6: compare and a row without a median


def test_compare_says_why_a_setting_without_a_median_is_not_compared(tmp_path: Path, cli) -> None:
    """A mean-only import (benchmark_model prints no median) as NEW read as "REGRESSION (now fails)"; as both
    sides it gave "no setting measured in both" without saying why."""
    import shutil

    old = _two_model_run(tmp_path / "old")
    new = tmp_path / "new" / old.name
    shutil.copytree(old, new)

    def mean_only(header: list[str], rows: list[list[str]]) -> list[list[str]]:
        blank = ("latency_median_ms", "latency_ms", "latency_ci_low_ms", "latency_ci_high_ms", "round_medians_ms")
        for name in blank:  # casvit_xs, as an import of a mean-only tool would give it
            rows[0][header.index(name)] = ""
        rows[0][header.index("aggregate_only")] = "True"
        rows[0][header.index("source_tool")] = "benchmark_model"
        return rows

    _summary_edited(new, mean_only)
    proc = cli("compare", str(old), str(new.parent))
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stdout + proc.stderr
    assert "now fails" not in proc.stdout and "REGRESSION" not in proc.stdout, proc.stdout
    assert "NEW has 1 setting(s) without a median (benchmark_model printed only a mean" in proc.stdout
    only = new.parent / "only"
    shutil.copytree(new, only / new.name)
    _summary_edited(only / new.name, lambda header, rows: rows[:1])
    proc = cli("compare", str(only), str(only))
    assert_one_line_error(proc, "no setting was measured in both", "OLD has 1 setting(s) without a median")


def test_findings_stay_within_the_suites_own_sittings_and_name_imported_columns(tmp_path: Path, cli) -> None:
    """Over a sitting and an import, the findings counted the import as a sitting (its cells "0% round spread")
    and printed an empty ratio table."""
    results = tmp_path / "results"
    _two_model_run(results)
    assert cli("import", str(LITERT_JSON), "--manifest", str(MANIFEST), "--device-name", "Pixel 8",
               "--out", str(results)).returncode == 0  # fmt: skip
    out = tmp_path / "report"
    assert cli("report", "--results", str(results), "--out", str(out), "--no-plots").returncode == 0
    findings = (out / "findings.md").read_text()
    assert "within each of 1 sitting(s)" in findings and "(by sitting)" not in findings
    assert "Imported columns (LiteRT" in findings and "no finding is computed from them" in findings
    assert "0%" not in findings
    assert not [line for line in findings.splitlines() if line.startswith("| runtime |")]  # no empty table
    only_import = tmp_path / "import-only"
    assert cli("import", str(LITERT_JSON), "--manifest", str(MANIFEST), "--out", str(only_import)).returncode == 0
    assert cli("report", "--results", str(only_import), "--out", str(out), "--no-plots").returncode == 0
    assert "no sitting of this suite in the results, no finding" in (out / "findings.md").read_text()


# ------------------------------------ class 1 and 2: a results folder holding a pipe, a device or a deep file


@pytest.mark.parametrize(("name", "plant", "words"), [
    ("environment.json", "deep", "unreadable"),
    ("environment.json", "fifo", "named pipe"),
    ("summary.csv", "fifo", "named pipe"),
    ("samples.csv", "dev zero link", "character device"),
])  # fmt: skip
def test_a_results_folder_holding_a_pipe_a_device_or_a_deep_document_is_one_line(
    tmp_path: Path, name: str, plant: str, words: str
) -> None:
    """environment.json nested 100,000 deep was a RecursionError, a pipe where a results file goes blocked
    report and compare forever, a link to /dev/zero ran out of memory (run_cli's timeout only turns a
    regression's hang into a failure)."""
    run = _two_model_run(tmp_path / "results")
    target = run / name
    target.unlink()
    if plant == "deep":
        target.write_text("[" * 100_000)
    elif plant == "fifo":
        os.mkfifo(target)
    else:
        target.symlink_to("/dev/zero")
    for argv in (["report", "--results", str(run.parent), "--out", str(tmp_path / "r"), "--no-plots"],
                 ["compare", str(run.parent), str(run.parent)]):  # fmt: skip
        assert_one_line_error(run_cli(*argv, timeout=120), str(target), words)


def test_deep_documents_the_suite_reads_back_are_ignored_not_a_recursion_error(tmp_path: Path, cli) -> None:
    """An accuracy.json (a results folder) or a cache file nested 100,000 deep was a RecursionError traceback."""
    from bench.core.measure import machine
    from bench.core.scoring.accuracy_results import load_document

    run = _two_model_run(tmp_path / "results")
    (run / "accuracy.json").write_text("[" * 100_000)
    assert load_document(run / "accuracy.json") is None
    proc = cli("report", "--results", str(run.parent), "--out", str(tmp_path / "r"), "--no-plots")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / machine.FLOOR_FILE).write_text('{"k": ' * 100_000)
    assert machine.MachineFloor.load(cache, "k").recorded_ms is None


# ----------------------------------------------- class 2: a pipe planted in the export cache never blocks


def test_pipes_planted_in_the_cache_folder_are_rebuilt_not_read(tmp_path: Path) -> None:
    """A named pipe where the suite keeps its own files in ``--cache-dir`` (an export's metadata, the GMACs cache,
    the machine's floor and sitting history) blocked the run forever: they are the suite's, so they are rebuilt
    (run_cli's timeout only turns a regression's hang into a failure)."""
    from bench.core.measure.counting import GMACS_CACHE_FILE
    from bench.core.measure.machine import FLOOR_FILE
    from bench.core.measure.sitting_history import HISTORY_FILE

    cache = tmp_path / "cache"
    argv = ["run", "--backend", "onnx", "--onnx-exporter", "torchscript", "--models", "casvit_xs",
            *[a for a in FAST if a != "--no-flops"], "--rounds", "1", "--cache-dir", str(cache)]  # fmt: skip
    assert run_cli(*argv, "--out", str(tmp_path / "first")).returncode == 0
    (artifact,) = (cache / "onnx").glob("*.onnx")
    planted = [artifact, artifact.with_name(artifact.name + ".json"), cache / GMACS_CACHE_FILE]
    planted += [cache / FLOOR_FILE, cache / HISTORY_FILE]
    for path in planted:
        path.unlink(missing_ok=True)
        os.mkfifo(path)
    proc = run_cli(*argv, "--out", str(tmp_path / "out"), timeout=300)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    (row,) = load_results([tmp_path / "out"])[0].to_dict("records")
    assert row["status"] == "ok" and row["infer_gmacs"] > 0
    assert "rebuilt: metadata unreadable" in row["runtime_detail"]
    assert all(path.is_file() for path in planted[:3])  # rewritten as regular files


def test_a_pipe_where_a_runtime_keeps_its_cache_folder_is_named_as_a_pipe(tmp_path: Path) -> None:
    """A pipe at ``<cache>/onnx`` (the runtime's folder, not a file of it) is not the suite's to replace: the row
    fails with one line that says what is there, instead of "File exists"."""
    cache = tmp_path / "cache"
    cache.mkdir()
    os.mkfifo(cache / "onnx")
    argv = ["run", "--backend", "onnx", "--onnx-exporter", "torchscript", "--models", "casvit_xs", *FAST,
            "--rounds", "1", "--cache-dir", str(cache), "--out", str(tmp_path / "out")]  # fmt: skip
    proc = run_cli(*argv, timeout=300)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    (error,) = load_results([tmp_path / "out"])[0]["error"]
    assert f"cannot use the cache folder {cache / 'onnx'} (a named pipe, not a folder)" in error
    assert stat.S_ISFIFO((cache / "onnx").lstat().st_mode)  # left as it was


def test_a_pipe_where_the_litert_converter_environment_goes_is_replaced(tmp_path: Path) -> None:
    """A pipe at ``<cache>/litert-venv`` blocked the run forever: shutil.rmtree opens what it removes. pip finds
    no index here (PIP_NO_INDEX), so the environment's creation fails at once, with its one-line error."""
    import importlib.util

    if importlib.util.find_spec("litert_torch") is not None:
        pytest.skip("litert-torch is installed here: the converter environment is not used")
    cache, out = tmp_path / "cache", tmp_path / "out"
    cache.mkdir()
    os.mkfifo(cache / "litert-venv")
    env = {**os.environ, "PYTHONPATH": str(REPO), "PIP_NO_INDEX": "1"}
    env.pop("BENCH_LITERT_PYTHON", None)
    argv = ["run", "--backend", "litert", "--models", "casvit_xs", *FAST, "--rounds", "1", "--cache-dir", str(cache),
            "--out", str(out)]  # fmt: skip
    proc = subprocess.run([sys.executable, "-m", "bench", *argv], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600)  # fmt: skip
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    (error,) = load_results([out])[0]["error"]
    assert "could not create the litert-torch environment" in error and "No matching distribution" in error
    assert (cache / "litert-venv").is_dir()  # the pipe was the suite's path: replaced


def test_an_old_row_whose_runtime_detail_is_not_json_or_nests_too_deep_has_no_artifact_size(tmp_path: Path) -> None:
    """Schema 4 rows get ``artifact_mb`` from runtime_detail when read; a hand-edited one (garbage, or JSON
    nested 50,000 deep) is read without it, never a RecursionError."""
    import shutil

    from bench.core.records.store import load_summary

    source = next((REPO / "results" / "reference").iterdir())
    run = tmp_path / source.name
    shutil.copytree(source, run)
    summary = pd.read_csv(run / "summary.csv")
    summary = summary.drop(columns=[c for c in ("artifact_mb",) if c in summary])
    litert = summary.index[summary["backend"] == "litert"]
    summary.loc[litert[0], "runtime_detail"] = "[" * 50_000 + "]" * 50_000  # within the CSV field limit
    summary.loc[litert[1], "runtime_detail"] = "not json"
    summary.to_csv(run / "summary.csv", index=False)
    loaded = load_summary(run).set_index("row_id")
    rows = summary.set_index("row_id")
    assert pd.isna(loaded.loc[rows.index[litert[0]], "artifact_mb"])
    assert pd.isna(loaded.loc[rows.index[litert[1]], "artifact_mb"])
    assert (loaded.loc[rows.index[litert[2:]], "artifact_mb"] > 1).all()  # the tflite_mb the others recorded
