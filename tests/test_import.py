"""`bench import`: the vendor tools' outputs become rows of the suite, tied to their artifacts, on their device.

Fixtures are in tests/data/import (SOURCES.md says which are real outputs made here and which
follow a tool's source). Expected numbers are read from the fixture text itself, never typed in.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest

from bench.backends import backend_class
from bench.core.importers import ImportFailure, parse_file
from bench.core.records.store import load_environment, load_results
from tests.conftest import REPO, assert_one_line_error, run_cli

DATA = REPO / "tests" / "data" / "import"
MANIFEST = DATA / "manifest.json"
OV_REPORT = DATA / "openvino_no_counters" / "benchmark_report.csv"
LITERT_JSON = DATA / "litert-benchmark.json"


def _import(tmp_path: Path, *args: str) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    out = tmp_path / "imported"
    proc = run_cli("import", *args, "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    return load_results([out])


def _value(path: Path, pattern: str) -> float:
    match = re.search(pattern, path.read_text(), re.MULTILINE)
    assert match, pattern
    return float(match.group(1))


# ------------------------------------------------------------------------------ each format


def test_benchmark_app_report_gives_its_printed_statistics_and_no_invented_percentiles(tmp_path: Path) -> None:
    summary, samples, envs = _import(tmp_path, str(OV_REPORT), "--manifest", str(MANIFEST), "--device-name", "NUC 13")
    (row,) = summary.to_dict("records")
    assert (row["model"], row["backend"], row["infer_batch_size"], row["infer_img_size"]) == (
        "casvit_xs",
        "openvino",
        1,
        224,
    )
    assert row["latency_median_ms"] == _value(OV_REPORT, r"^latency \(ms\);(\S+)$")
    assert row["latency_mean_ms"] == _value(OV_REPORT, r"^avg latency;(\S+)$")
    assert row["latency_max_ms"] == _value(OV_REPORT, r"^max latency;(\S+)$")
    assert row["iterations"] == _value(OV_REPORT, r"^total number of iterations;(\S+)$")
    assert row["aggregate_only"] and row["source_tool"] == "benchmark_app"
    assert pd.isna(row["latency_p90_ms"]) and pd.isna(row["latency_p99_ms"]) and pd.isna(row["latency_std_ms"])
    assert samples.empty
    assert [e["device_name"] for e in envs.values()] == ["NUC 13"]
    detail = json.loads(row["runtime_detail"])
    assert detail["artifact"] == "casvit_xs-b1-r224-fp32.openvino" and detail["matched_by"] == "file name"


def test_detailed_counters_report_reads_the_same_and_the_counters_file_is_refused(tmp_path: Path) -> None:
    report = DATA / "openvino_detailed_counters" / "benchmark_report.csv"
    summary, _, _ = _import(tmp_path, str(report), "--manifest", str(MANIFEST))
    assert summary["latency_median_ms"].iloc[0] == _value(report, r"^latency \(ms\);(\S+)$")
    counters = DATA / "openvino_detailed_counters" / "benchmark_detailed_counters_report.csv"
    proc = run_cli("import", str(counters), "--manifest", str(MANIFEST), "--out", str(tmp_path / "x"))
    assert_one_line_error(proc, str(counters), ":1:", "import benchmark_report.csv")
    assert not (tmp_path / "x").exists() or not any((tmp_path / "x").iterdir())


def test_litert_benchmark_json(tmp_path: Path) -> None:
    summary, _, _ = _import(tmp_path, str(LITERT_JSON), "--manifest", str(MANIFEST))
    (row,) = summary.to_dict("records")
    latency = json.loads(LITERT_JSON.read_text())["latency"]
    assert row["backend"] == "litert" and row["aggregate_only"]
    assert (row["latency_median_ms"], row["latency_mean_ms"], row["latency_p95_ms"], row["latency_std_ms"]) == (
        latency["median_ms"],
        latency["avg_ms"],
        latency["p95_ms"],
        latency["std_ms"],
    )
    assert row["warmup_iterations"] == latency["num_warmup_runs"] and pd.isna(row["latency_p90_ms"])


def test_benchmark_model_log_is_mean_only(tmp_path: Path) -> None:
    log = DATA / "casvit_xs-b1-r224-fp32.benchmark_model.log"
    summary, _, _ = _import(tmp_path, str(log), "--manifest", str(MANIFEST), "--device-file", str(DATA / "pixel8.toml"))
    (row,) = summary.to_dict("records")
    assert row["latency_mean_ms"] == pytest.approx(_value(log, r"Inference \(avg\): (\S+)$") / 1000)
    assert row["latency_min_ms"] == pytest.approx(_value(log, r"count=76 .* min=(\d+)") / 1000)
    assert pd.isna(row["latency_median_ms"]) and row["aggregate_only"]  # the tool prints no median
    assert row["threads"] == 4 and row["iterations"] == 76 and row["peak_rss_mb"] == pytest.approx(49.3281)


def test_executorch_app_json_names_the_device(tmp_path: Path) -> None:
    path = DATA / "benchmark_results.json"
    summary, _, envs = _import(tmp_path, str(path), "--manifest", str(MANIFEST))
    (row,) = summary.to_dict("records")
    records = {r["metric"]: r["actualValue"] for r in json.loads(path.read_text())}
    assert row["backend"] == "executorch" and row["latency_mean_ms"] == records["avg_inference_latency(ms)"]
    assert json.loads(row["runtime_detail"])["trimmed_mean_ms"] == records["trimmean_inference_latency(ms)"]
    assert row["load_s"] == pytest.approx(records["model_load_time(ms)"] / 1000)
    (env,) = envs.values()
    assert env["device_name"] == "google Pixel 8" and env["os"] == "Android 14"  # from the app's deviceInfo


def test_executor_runner_per_process_lines_are_samples(tmp_path: Path) -> None:
    log = DATA / "casvit_xs-b1-r224-fp32.executor_runner.log"
    summary, samples, _ = _import(tmp_path, str(log), "--manifest", str(MANIFEST))
    printed = [float(t) for t in re.findall(r"in (\S+) ms\.", log.read_text())]
    assert sorted(samples["latency_ms"]) == pytest.approx(sorted(printed))
    assert not summary["aggregate_only"].iloc[0]
    assert summary["latency_median_ms"].iloc[0] == pytest.approx(pd.Series(printed).median())


def test_executor_runner_one_process_is_its_mean(tmp_path: Path) -> None:
    summary, samples, _ = _import(tmp_path, str(DATA / "executor_runner_one_process.log"), "--manifest", str(MANIFEST))
    assert summary["latency_mean_ms"].iloc[0] == pytest.approx(1250.5 / 50) and samples.empty
    assert json.loads(summary["runtime_detail"].iloc[0])["matched_by"] == "file name"


def test_onnxruntime_result_file_keeps_every_run_and_the_tools_own_percentiles(tmp_path: Path) -> None:
    path = DATA / "casvit_xs-b1-r224-fp32.onnxruntime_perf_test.txt"
    summary, samples, _ = _import(tmp_path, str(path), "--manifest", str(MANIFEST))
    runs = [float(line.split(",")[1]) * 1000 for line in path.read_text().splitlines() if line.count(",") == 4]
    assert sorted(samples["latency_ms"]) == pytest.approx(sorted(runs), rel=1e-6)
    row = summary.iloc[0]
    assert not row["aggregate_only"] and row["latency_p90_ms"] == pytest.approx(pd.Series(runs).quantile(0.9))
    detail = json.loads(row["runtime_detail"])  # matched by the output's own name; the tool's P50 kept
    assert detail["matched_by"] == "output file name"
    assert detail["tool_latency_median_ms"] == pytest.approx(_value(path, r"^P50 Latency: (\S+) s$") * 1000)


def test_onnxruntime_console_without_a_manifest(tmp_path: Path) -> None:
    path = DATA / "onnxruntime_perf_test.stdout.txt"
    summary, _, _ = _import(tmp_path, str(path), "--model", "casvit_xs")
    row = summary.iloc[0]
    assert (row["backend"], row["infer_img_size"], row["weights"]) == ("onnx", 224, "unknown")
    assert row["latency_median_ms"] == pytest.approx(_value(path, r"^P50 Latency: (\S+) s$") * 1000)
    assert row["peak_rss_mb"] == pytest.approx(96468992 / 2**20) and row["aggregate_only"]


def test_qai_hub_profile_samples_and_estimate_only(tmp_path: Path) -> None:
    full = DATA / "casvit_xs-b1-r224-fp32.qai_hub_profile.json"
    summary, samples, envs = _import(
        tmp_path,
        str(full),
        "--manifest",
        str(MANIFEST),
        "--artifact",
        "casvit_xs-b1-r224-fp32.tflite",
        "--device-name",
        "Galaxy S24 (Snapdragon 8 Gen 3)",
    )
    times = json.loads(full.read_text())["execution_summary"]["all_inference_times"]
    assert sorted(samples["latency_ms"]) == pytest.approx(sorted(t / 1000 for t in times))
    assert summary["device"].iloc[0] == "npu" and summary["backend"].iloc[0] == "litert"
    assert [e["device_name"] for e in envs.values()] == ["Galaxy S24 (Snapdragon 8 Gen 3)"]
    estimate = DATA / "casvit_xs-b1-r224-fp32.qai_hub_estimate.json"
    summary, samples, _ = _import(
        tmp_path / "2", str(estimate), "--manifest", str(MANIFEST), "--artifact", "casvit_xs-b1-r224-fp32.tflite"
    )
    row = summary.iloc[0]
    assert row["aggregate_only"] and pd.isna(row["latency_median_ms"]) and samples.empty
    assert (
        row["latency_min_ms"]
        == json.loads(estimate.read_text())["execution_summary"]["estimated_inference_time"] / 1000
    )


# ------------------------------------------------------------------------------ errors


def _at(prefix: str):
    """``:N:`` for the line of a fixture that starts with ``prefix`` (where the error must point)."""
    return lambda text: f":{next(i for i, line in enumerate(text.splitlines(), 1) if line.startswith(prefix))}:"


def _copy(tmp_path: Path, source: Path, text: str | None = None, name: str | None = None) -> Path:
    target = tmp_path / (name or source.name)
    target.write_text(source.read_text() if text is None else text)
    return target


@pytest.mark.parametrize(
    ("source", "edit", "fragments"),
    [
        (OV_REPORT, lambda t: t[: t.index("Execution results")], ("truncated", "Execution results")),
        (OV_REPORT, lambda t: t.replace("avg latency;", "avg latency;x"), (_at("avg latency;"), "is not a number")),
        (
            OV_REPORT,
            lambda t: t.replace("latency (ms);", "latency (fortnights);"),
            (_at("latency (ms);"), "unit 'fortnights'"),
        ),
        (
            OV_REPORT,
            lambda t: t.replace("read model time (ms);", "garbage line "),
            (_at("read model time (ms);"), "garbled"),
        ),
        (LITERT_JSON, lambda t: t[: len(t) // 2], ("truncated JSON",)),
        (
            DATA / "onnxruntime_perf_test.stdout.txt",
            lambda t: re.sub(r"(P50 Latency: \S+) s", r"\1 fortnights", t),
            (_at("P50"), "P50 Latency: unit 'fortnights'"),
        ),
        (
            DATA / "onnxruntime_perf_test.stdout.txt",
            lambda t: t.replace("P90 Latency: ", "P90 Latency "),
            (_at("P90"), "garbled"),
        ),
        (
            DATA / "casvit_xs-b1-r224-fp32.benchmark_model.log",
            lambda t: t.split("INFO: Inference timings")[0],
            ("truncated", "Inference timings in us"),
        ),
        (DATA / "SOURCES.md", None, (":1:", "not the output of a benchmark tool")),
        (
            REPO / "tests" / "data" / "import" / "openvino_no_counters" / "benchmark_report.csv",
            lambda t: "model,backend,status\ncasvit_xs,onnx,ok\n",
            (":1:", "not the output"),
        ),
    ],
)
def test_bad_files_are_one_line_errors_naming_file_and_line_and_write_nothing(
    tmp_path: Path, source, edit, fragments
) -> None:
    bad = _copy(tmp_path, source, None if edit is None else edit(source.read_text()))
    good = _copy(tmp_path, LITERT_JSON, name="good.json")
    out = tmp_path / "out"
    proc = run_cli(
        "import", str(good), str(bad), "--manifest", str(MANIFEST), "--out", str(out), "--model", "casvit_xs"
    )
    assert_one_line_error(proc, str(bad), *(f(source.read_text()) if callable(f) else f for f in fragments))
    assert not out.exists() or not any(out.iterdir())  # the good file was not imported either


def test_artifact_not_in_the_manifest(tmp_path: Path) -> None:
    other = _copy(
        tmp_path,
        LITERT_JSON,
        LITERT_JSON.read_text().replace("casvit_xs-b1-r224-fp32.tflite", "mystery.tflite"),
        "run.json",
    )
    proc = run_cli("import", str(other), "--manifest", str(MANIFEST), "--out", str(tmp_path / "out"))
    assert_one_line_error(proc, str(other), "mystery.tflite is not in the manifest")


def test_a_tool_that_runs_another_runtime_than_the_artifact_is_refused(tmp_path: Path) -> None:
    proc = run_cli(
        "import",
        str(LITERT_JSON),
        "--manifest",
        str(MANIFEST),
        "--artifact",
        "casvit_xs-b1-r224-fp32.onnx",
        "--out",
        str(tmp_path / "o"),
    )
    assert_one_line_error(proc, "exported for onnx", "litert-benchmark runs litert")


def test_device_file_with_an_unknown_key(tmp_path: Path) -> None:
    bad = tmp_path / "d.toml"
    bad.write_text('device = "Pixel 8"\nthread = 4\n')
    proc = run_cli(
        "import", str(LITERT_JSON), "--manifest", str(MANIFEST), "--device-file", str(bad), "--out", str(tmp_path / "o")
    )
    assert_one_line_error(proc, str(bad), "unknown key(s) thread")


def test_parsers_name_the_line_of_a_garbled_onnxruntime_result_file(tmp_path: Path) -> None:
    path = DATA / "casvit_xs-b1-r224-fp32.onnxruntime_perf_test.txt"
    lines = path.read_text().splitlines(keepends=True)
    lines[4] = "tmp,0.013,oops\n"
    with pytest.raises(ImportFailure, match=r":5: garbled result_file line"):
        parse_file(_copy(tmp_path, path, "".join(lines)))


# ------------------------------------------------------------------------------ device, report, compare


def test_device_file_is_the_sittings_environment_and_labels_the_report_column(tmp_path: Path) -> None:
    out = tmp_path / "imported"
    proc = run_cli(
        "import",
        str(DATA / "casvit_xs-b1-r224-fp32.benchmark_model.log"),
        "--manifest",
        str(MANIFEST),
        "--device-file",
        str(DATA / "pixel8.toml"),
        "--out",
        str(out),
    )
    assert proc.returncode == 0, proc.stderr
    (run,) = out.iterdir()
    env = load_environment(run)
    assert env["device"]["soc"] == "Google Tensor G3" and env["device"]["power_state"].startswith("plugged in")
    assert env["versions"] == {"ai-edge-litert": "2.16.1"}
    report = tmp_path / "report"
    proc = run_cli("report", "--results", str(out), "--out", str(report))
    assert proc.returncode == 0, proc.stderr
    columns = pd.read_csv(report / "columns.csv")
    label = columns["label"].iloc[0]
    assert "Pixel 8" in label and "via benchmark_model" in label and "(mean)" in label
    assert "imported from benchmark_model" in (report / "table.md").read_text()


def test_compare_never_mixes_devices(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    for out, device in ((a, "Pixel 8"), (b, "Pixel 9")):
        proc = run_cli(
            "import", str(LITERT_JSON), "--manifest", str(MANIFEST), "--device-name", device, "--out", str(out)
        )
        assert proc.returncode == 0, proc.stderr
    assert_one_line_error(run_cli("compare", str(a), str(b)), "Pixel 8", "Pixel 9", "never mixes devices")
    same = run_cli("compare", str(a), str(a), "--allow-untested")
    assert same.returncode == 0, same.stderr


def test_export_writes_the_native_command_with_the_suites_settings() -> None:
    (ov,) = backend_class("openvino").native_commands("m-b1-r224-fp32.openvino", 4, "fp32", 10, 50)
    assert "-nthreads 4" in ov["command"] and "-niter 50" in ov["command"] and "-infer_precision f32" in ov["command"]
    assert ov["output"] == "m-b1-r224-fp32.benchmark_app/benchmark_report.csv"
    lite, binary = backend_class("litert").native_commands("m.tflite", 2, "fp16", 3, 7)
    assert "--num_threads 2 --warmup_runs 3 --num_runs 7" in lite["command"]
    assert "--xnnpack_force_fp16=true" in binary["command"] and "--num_threads=2" in binary["command"]
    (ort,) = backend_class("onnx").native_commands("m.onnx", 2, "fp32", 3, 7)
    assert "-r 7 -x 2" in ort["command"] and ort["command"].endswith(ort["output"])
    assert backend_class("coreml").native_commands("m.mlpackage", 1, "fp32", 1, 1) == []
    (runner,) = backend_class("executorch").native_commands("m.pte", 1, "fp32", 2, 5)
    assert "seq 7" in runner["command"] and "tail -n 5" in runner["command"]


def test_the_manifest_fixture_carries_native_commands() -> None:
    entries = json.loads(MANIFEST.read_text())["artifacts"]
    assert {e["backend"] for e in entries} == {"openvino", "litert", "onnx", "executorch"}
    assert all(e["native"] and e["native"][0]["output"].startswith(e["file"].split(".")[0]) for e in entries)


# ------------------------------------------------------------------------------ round trip (item 5)


def _tool(name: str) -> Path:
    path = Path(sys.executable).parent / name
    found = path if path.exists() else shutil.which(name)
    if not found:
        pytest.skip(f"{name} is not installed")
    return Path(found)


@pytest.mark.slow
def test_round_trip_export_native_tool_import_report(tmp_path: Path) -> None:
    """export -> the manifest's native commands -> import -> report, beside the suite's own rows."""
    import subprocess

    tools = {"openvino": _tool("benchmark_app"), "litert": _tool("litert-benchmark")}
    exports = tmp_path / "exports"
    settings = ("--models", "casvit_xs", "--threads", "1", "--warmup", "2", "--iters", "6")
    for backend in tools:
        proc = run_cli("export", "--backend", backend, *settings, "--out", str(exports))
        assert proc.returncode == 0, proc.stderr
    printed: dict[str, float] = {}
    outputs = []
    for entry in json.loads((exports / "manifest.json").read_text())["artifacts"]:
        native = next(c for c in entry["native"] if c["tool"] in ("benchmark_app", "litert-benchmark"))
        path = f"{tools[entry['backend']].parent}{os.pathsep}{os.environ.get('PATH', '')}"
        done = subprocess.run(
            native["command"],
            shell=True,
            cwd=exports,
            env={**os.environ, "PATH": path},
            capture_output=True,
            text=True,
            timeout=600,
        )  # the command exactly as the manifest gives it
        assert done.returncode == 0, done.stdout + done.stderr
        pattern = r"Median:\s+(\S+) ms" if entry["backend"] == "openvino" else r"Inference \(median\):\s+(\S+) ms"
        printed[entry["backend"]] = float(re.search(pattern, done.stdout + done.stderr).group(1))
        outputs.append(str(exports / native["output"]))
    imported = tmp_path / "results"
    proc = run_cli("import", *outputs, "--manifest", str(exports / "manifest.json"), "--out", str(imported))
    assert proc.returncode == 0, proc.stderr
    summary, _, _ = load_results([imported])
    assert dict(zip(summary["backend"], summary["latency_median_ms"], strict=True)) == printed
    for backend in tools:  # the suite's own rows for the same runtimes, same settings
        suite = (
            "--warmup-time",
            "0",
            "--min-time",
            "0",
            "--rounds",
            "1",
            "--no-flops",
            "--no-progress",
            "--budget",
            "0",
        )
        proc = run_cli("run", "--backend", backend, *settings, *suite, "--out", str(tmp_path / "suite"), timeout=900)
        assert proc.returncode == 0, proc.stderr
    report = tmp_path / "report"
    proc = run_cli("report", "--results", str(tmp_path / "suite"), str(imported), "--out", str(report))
    assert proc.returncode == 0, proc.stderr
    columns = pd.read_csv(report / "columns.csv")
    for backend, tool in (("openvino", "benchmark_app"), ("litert", "litert-benchmark")):
        mine = columns.index[columns["backend"] == backend].tolist()
        assert len(mine) == 2 and mine[1] == mine[0] + 1  # side by side
        assert columns.loc[mine, "label"].str.contains(f"via {tool}").sum() == 1
    table = pd.read_csv(report / "measurements.csv")
    assert set(table["column"]) == set(columns["column"])
    same_machine = run_cli("compare", str(tmp_path / "suite"), str(imported), "--allow-untested")  # one machine
    assert "untested" in same_machine.stdout, same_machine.stderr  # aggregate-only rows have no rounds
    assert same_machine.returncode == (1 if "REGRESSION" in same_machine.stdout else 0), same_machine.stderr


def test_device_name_is_the_phone_and_the_old_device_spelling_still_reads_with_a_warning(capsys) -> None:
    """``--device`` is cpu or cuda everywhere else; in ``import`` the phone is ``--device-name``."""
    from bench.cli import build_parser

    argv = ["import", "out.json", "--device-name", "Pixel 8"]
    assert build_parser(argv).parse_args(argv).device_name == "Pixel 8"
    assert capsys.readouterr().err == ""
    old = ["import", "out.json", "--device", "Pixel 8"]
    assert build_parser(old).parse_args(old).device_name == "Pixel 8"
    assert "--device is deprecated here; use --device-name" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("edit", "fragment"),
    [
        (
            lambda t: t.replace('"num_threads": 1', '"num_threads": "2"'),
            "num_threads '2' is a JSON string, not a number",
        ),
        (lambda t: t.replace('"num_threads": 1', '"num_threads": 0'), "threads 0 is out of range (1 to 1024)"),
        (lambda t: t.replace('"num_threads": 1', '"num_threads": true'), "num_threads 'True' is a JSON boolean"),
        (lambda t: t.replace('"init_ms": 11.75', '"init_ms": "11.75"'), "latency.init_ms '11.75' is a JSON string"),
    ],
)
def test_a_json_output_holds_numbers_as_json_numbers_and_a_thread_count_of_one_or_more(
    tmp_path: Path, edit, fragment
) -> None:
    """A tool writes its numbers as JSON numbers and runs on at least one thread: a string, a boolean or a
    zero thread count is a file edited by hand (or another tool's), refused by name, not read as 2 or 'default'."""
    from bench.core.importers import check_measurement

    bad = _copy(tmp_path, LITERT_JSON, edit(LITERT_JSON.read_text()))
    with pytest.raises(ImportFailure, match=re.escape(fragment)):
        for m in parse_file(bad):
            check_measurement(m)
    for m in parse_file(LITERT_JSON):  # the tool's own output passes both
        check_measurement(m)
