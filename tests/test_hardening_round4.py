"""Hostile input, round four: ``accuracy.json`` beside a two-precision sitting (the speedup table's top-1 drop),
``bench import`` device names in every report format, ``bench compare`` over imported rows."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from bench.core.records import schema
from bench.core.scoring import accuracy_results
from bench.core.scoring.accuracy_results import measured_drops, measured_top1
from tests.conftest import REPO, assert_one_line_error, run_cli

PRECISION_RUN = next((REPO / "results" / "precision").glob("*fp32+int8*"))

# ------------------------------------------------------------------- class 1: accuracy.json is untrusted input


def _result(precision: str, top1: object, **extra: object) -> dict:
    return {"model": "casvit_xs", "backend": "onnx", "status": "ok", "precision": precision, "top1": top1,
            "images": 1000, "baseline_backend": "onnx", "baseline_precision": "fp32", "data_content_sha256": "abc",
            "timestamp": "2026-12-07T10:00:00+00:00", **extra}  # fmt: skip


def _document(results: list[dict], **extra: object) -> str:
    raw = json.loads(schema.AccuracyDocument(run_id="acc", results=[]).to_json())
    return json.dumps({**raw, "results": results, **extra})


GOOD = [_result("fp32", 78.0), _result("int8", 77.0, top1_drop_ci_low=0.5, top1_drop_ci_high=1.5)]


@pytest.fixture(autouse=True)
def _fresh_warnings() -> None:
    accuracy_results._WARNED.clear()


def test_a_sound_accuracy_document_gives_its_drop_with_its_interval(tmp_path: Path) -> None:
    (tmp_path / "accuracy.json").write_text(_document(GOOD))
    drop = measured_drops([tmp_path])[("casvit_xs", "onnx", "int8")]
    assert (drop.drop_pp, drop.low, drop.high) == (1.0, 0.5, 1.5)


@pytest.mark.parametrize(
    ("results", "warning"),
    [
        ([_result("fp32", 250.0), GOOD[1]], "no top-1 between 0 and 100%"),  # would show a drop of 173 pp
        ([_result("fp32", 1e300), GOOD[1]], "no top-1 between 0 and 100%"),
        ([_result("fp32", float("nan")), GOOD[1]], "no top-1 between 0 and 100%"),
        ([*GOOD, _result("int8", 50.0)], "twice with different top-1s"),  # the last one silently won: 28 pp
    ],
    ids=["over-100", "huge", "nan", "duplicate"],
)
def test_an_implausible_or_contradicted_top1_is_left_out_with_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], results: list[dict], warning: str
) -> None:
    (tmp_path / "accuracy.json").write_text(_document(results))
    assert measured_drops([tmp_path]) == {}
    assert measured_top1([tmp_path]).get("casvit_xs", {}).get("top1") in (None, 78.0)
    err = capsys.readouterr().err
    assert (
        warning in err
        and len(err.strip().splitlines()) >= 1
        and all(line.startswith("warning: ") for line in err.strip().splitlines())
    )


def test_an_interval_that_does_not_hold_the_drop_is_not_shown(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bad = _result("int8", 77.0, top1_drop_ci_low=1e300, top1_drop_ci_high=-1e300)
    (tmp_path / "accuracy.json").write_text(_document([GOOD[0], bad]))
    drop = measured_drops([tmp_path])[("casvit_xs", "onnx", "int8")]
    assert (drop.drop_pp, drop.low, drop.high) == (1.0, None, None)
    assert "does not hold the drop" in capsys.readouterr().err


def _plant(path: Path, kind: str) -> None:
    if kind == "truncated":
        path.write_text(_document(GOOD)[:100])
    elif kind == "format":
        path.write_text(_document(GOOD, format=99))
    elif kind == "deep":
        path.write_text("[" * 100_000 + "]" * 100_000)
    elif kind == "directory":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to("/dev/zero")


@pytest.mark.parametrize("kind", ["truncated", "format", "deep", "directory", "fifo", "dev-zero"])
def test_an_unreadable_accuracy_json_is_named_in_one_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    _plant(tmp_path / "accuracy.json", kind)
    assert measured_drops([tmp_path]) == {} and measured_top1([tmp_path]) == {}
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "accuracy.json" in err and "left out" in err, err


def test_report_over_a_sitting_with_a_corrupt_accuracy_json_warns_and_shows_no_drop(tmp_path: Path) -> None:
    results = tmp_path / "results"
    shutil.copytree(PRECISION_RUN, results / PRECISION_RUN.name)
    (results / "accuracy.json").write_text(_document([_result("fp32", 250.0), GOOD[1]]))
    proc = run_cli("report", "--results", str(results), "--out", str(tmp_path / "report"), "--no-plots")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert "no top-1 between 0 and 100%" in proc.stderr
    assert "top-1 drop" not in (tmp_path / "report" / "speedup.md").read_text()


# ------------------------------------------------------- class 2: device facts are shown in every report format

ORT_TXT = REPO / "tests" / "data" / "import" / "casvit_xs-b1-r224-fp32.onnxruntime_perf_test.txt"
ORT = ("--model", "casvit_xs", "--backend", "onnx", str(ORT_TXT))


@pytest.mark.parametrize(
    ("name", "shown"),
    [("red \x1b[31mdevice", "U+001B"), ("evil\u202eled", "U+202E"), ("nul\x00byte", "U+0000"),
     ("zero\u200bwidth", "U+200B"), ("x" * 100_000, "100000 characters long")],
    ids=["ansi", "bidi", "nul", "zero-width", "100k"],
)  # fmt: skip
@pytest.mark.parametrize("via", ["flag", "json", "toml"])
def test_a_device_fact_a_report_cannot_show_as_it_is_is_refused_in_one_line(
    tmp_path: Path, cli, name: str, shown: str, via: str
) -> None:
    from tests.conftest import assert_one_line_error

    if via == "flag":
        if "\x00" in name:
            pytest.skip("an argv cannot hold NUL")
        argv = ["--device-name", name]
    elif via == "json":
        (tmp_path / "d.json").write_text(json.dumps({"device": "Pixel 8", "soc": name}))
        argv = ["--device-file", str(tmp_path / "d.json")]
    else:
        (tmp_path / "d.toml").write_text(f"device = {json.dumps(name)}\n")  # JSON's string escapes are TOML's
        argv = ["--device-file", str(tmp_path / "d.toml")]
    assert_one_line_error(cli("import", *argv, *ORT, "--out", str(tmp_path / "out")), shown)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_a_device_file_folds_line_breaks_and_tabs_and_refuses_a_list(tmp_path: Path, cli) -> None:
    from tests.conftest import assert_one_line_error

    (tmp_path / "d.json").write_text(json.dumps({"device": "Pixel\n8\tPro", "notes": ["a", "b"]}))
    assert_one_line_error(cli("import", "--device-file", str(tmp_path / "d.json"), *ORT, "--out", str(tmp_path)),
                          "notes is a table or list")  # fmt: skip
    (tmp_path / "d.json").write_text(json.dumps({"device": "Pixel\n8\tPro"}))
    proc = cli("import", "--device-file", str(tmp_path / "d.json"), *ORT, "--out", str(tmp_path / "out"))
    assert proc.returncode == 0 and "on Pixel 8 Pro" in proc.stdout, proc.stderr


def test_a_latex_active_device_name_is_text_in_every_figure_and_table(tmp_path: Path) -> None:
    """``$\\input{..}$`` in a device name crashed the figures (matplotlib parsed it as mathtext)."""
    name = "$\\input{/etc/passwd}$ 50% & _x_ #1 ~^{} =cmd|' /C calc'!A0 C:\\new <script>"
    device = tmp_path / "d.json"
    device.write_text(json.dumps({"device": name, "soc": name, "os": name, "notes": name}))
    results = tmp_path / "results"
    proc = run_cli("import", "--device-file", str(device), *ORT, "--out", str(results))
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("report", "--results", str(results), "--out", str(tmp_path / "report"))
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert list((tmp_path / "report").glob("*.svg")), "the figures were drawn"
    tex = (tmp_path / "report" / "table.tex").read_text()
    assert "\\input{" not in tex and "\\$\\textbackslash{}input\\{" in tex
    for md in (tmp_path / "report").glob("*.md"):
        assert "<script>" not in md.read_text(), md.name
    for csv_file in (tmp_path / "report").glob("*.csv"):
        assert ",=cmd" not in csv_file.read_text(), csv_file.name  # a formula cell is neutralised


def test_an_html_tag_in_a_name_is_text_in_markdown_but_the_header_break_stays() -> None:
    from bench.core.report.formatting import markdown_cell, markdown_line

    assert markdown_cell("a|b <script>x</script>") == "a\\|b &lt;script>x&lt;/script>"
    assert markdown_cell("(A)<br>Latency") == "(A)<br>Latency"  # the tables' own header break
    assert markdown_line("cos>=0.98, p < 0.05 <!-- x") == "cos>=0.98, p < 0.05 &lt;!-- x"


def test_a_file_given_for_results_is_named_unless_it_is_a_summary(tmp_path: Path) -> None:
    """``compare README.md run`` said 'environment.json: missing, so . is not a results directory' (the folder the
    file lay in), and a run's rounds.csv silently stood for its run: any file but a run's summary.csv is refused
    by its own name."""
    run = next((REPO / "results" / "precision").iterdir())
    for path in (REPO / "README.md", run / "rounds.csv"):
        proc = run_cli("compare", str(path), str(run))
        assert_one_line_error(proc, f"{path} is a file: give a results folder")
    proc = run_cli("compare", str(run / "summary.csv"), str(run), "--allow-untested")
    assert proc.returncode == 0, proc.stderr


def test_a_result_without_an_image_count_is_not_said_to_rest_on_zero_images(tmp_path: Path) -> None:
    """Older accuracy documents lack ``images`` (read as 0): the top-1 source names the data, never '0 images'."""
    results = [{k: v for k, v in r.items() if k != "images"} for r in GOOD]
    (tmp_path / "accuracy.json").write_text(_document(results))
    source = measured_top1([tmp_path])["casvit_xs"]["source"]
    assert "0 images" not in source and "on an image folder" in source
    assert measured_drops([tmp_path])[("casvit_xs", "onnx", "int8")].images == 0
