"""`bench compare`: a real slowdown is a regression (exit 1), noise is not (exit 0), bad input is exit 2."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.cli import main as cli_main
from bench.core.measure.stats import SITTING_SD, WIDE_INTERVAL, headline
from bench.core.measure.verdicts import IMPROVED, NOT_JUDGED, NOT_SIGNIFICANT, REGRESSION, UNTESTED, compare_headlines
from bench.core.records.cell import Cell
from bench.core.records.schema import COMPARE_COLUMNS
from tests.conftest import assert_one_line_error, run_cli
from tests.result_fixtures import environment, write_run

MODELS = ("casvit_xs", "casvit_s", "swiftformer_xs", "efficientformerv2_s1")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("runs")
    env = environment()
    kw = {"env": env, "backend": "onnx", "models": MODELS, "n": 80}
    return {
        "old": write_run(root / "old", label="old", seed=1, **kw),
        # every model 1% slower plus fresh noise: well inside the 5% threshold
        "noise": write_run(root / "noise", label="noise", seed=2, slowdown=1.01, **kw),
        # casvit_s 20% slower, the rest unchanged
        "slow": write_run(root / "slow", label="slow", seed=3, speed={"casvit_s": 1.2}, **kw),
        "fast": write_run(root / "fast", label="fast", seed=4, speed={"casvit_xs": 0.8}, **kw),
        # the whole machine 50% slower in two of three rounds: one calm round is too little to judge
        "busy": write_run(root / "busy", label="busy", seed=7, phases=(1.5, 1.5, 1.0), **kw),
        # one slow round of four, and casvit_s really 15% slower
        "busy_slow": write_run(
            root / "busy_slow", label="busy_slow", seed=8, phases=(1.0, 1.5, 1.0, 1.0), speed={"casvit_s": 1.15}, **kw
        ),
        "failing": write_run(root / "failing", label="failing", seed=5, failed={"swiftformer_xs": "boom"}, **kw),
        "other_env": write_run(
            root / "other",
            label="other",
            seed=6,
            **{**kw, "env": environment(hostname="bench-b", cpu_model="Intel Xeon Platinum 8481C")},
        ),
    }


def _verdicts(stdout: str) -> dict[str, str]:
    rows = json.loads(stdout)
    return {r["model"]: r["verdict"] for r in rows}


def test_injected_20_percent_slowdown_is_a_regression(runs: dict[str, Path]) -> None:
    proc = run_cli("compare", str(runs["old"]), str(runs["slow"]))
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    line = next(line for line in proc.stdout.splitlines() if line.startswith("casvit_s "))
    assert REGRESSION in line and "+2" in line  # change of about +20 %
    others = [line for line in proc.stdout.splitlines() if line.startswith(("casvit_xs ", "swiftformer_xs "))]
    assert others and not any(REGRESSION in line for line in others)
    assert "1 regression(s)" in proc.stdout
    assert proc.stderr == ""  # same environment: no warning


def test_noise_level_change_is_ignored(runs: dict[str, Path]) -> None:
    proc = run_cli("compare", str(runs["old"]), str(runs["noise"]))
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    assert REGRESSION not in proc.stdout and "0 regression(s)" in proc.stdout


def test_json_output_has_ratio_ci_and_p_value(runs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["compare", str(runs["old"]), str(runs["slow"]), "--format", "json"]) == 1
    rows = {r["model"]: r for r in json.loads(capsys.readouterr().out)}
    slow = rows["casvit_s"]
    assert slow["ratio"] == pytest.approx(1.2, abs=0.03)
    assert slow["ci_low"] > 1.05 and slow["p_value"] < 0.01 and slow["verdict"] == REGRESSION
    assert rows["casvit_xs"]["ci_low"] < 1 < rows["casvit_xs"]["ci_high"]
    assert {r["clean_rounds_old"] for r in rows.values()} == {3}
    assert all(abs(r["floor_change_pct"]) < 2 for r in rows.values())  # the same machine speed: a diagnostic


def test_threshold_decides_what_counts(runs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["compare", str(runs["old"]), str(runs["slow"]), "--threshold", "25%"]) == 0
    capsys.readouterr()


def test_improvement_is_not_a_regression(runs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["compare", str(runs["old"]), str(runs["fast"]), "--format", "csv"]) == 0
    df = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert df.set_index("model").loc["casvit_xs", "verdict"] == IMPROVED


def test_setting_that_now_fails_is_a_regression(runs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["compare", str(runs["old"]), str(runs["failing"])]) == 1
    out = capsys.readouterr().out
    assert "REGRESSION (now fails)" in out and "boom" in out


def test_output_columns_are_the_schema_declaration(runs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    """compare writes the columns :class:`CompareResult` declares, in order; ``error`` only when a setting fails."""
    assert cli_main(["compare", str(runs["old"]), str(runs["fast"]), "--format", "csv"]) == 0
    header = capsys.readouterr().out.splitlines()[0].split(",")
    assert tuple(header) == tuple(c for c in COMPARE_COLUMNS if c != "error")
    assert cli_main(["compare", str(runs["old"]), str(runs["failing"]), "--format", "csv"]) == 1
    header = capsys.readouterr().out.splitlines()[0].split(",")
    assert tuple(header) == COMPARE_COLUMNS


def test_different_environments_warn_on_one_line(runs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["compare", str(runs["old"]), str(runs["other_env"])]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("warning:")
    assert "hostname bench-a -> bench-b" in err[0] and "cpu_model" in err[0]


def test_a_slow_machine_is_not_judged_and_fails_the_gate(
    runs: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """Two of three rounds on a machine 50% slower: the headline rests on one calm round, so no verdict."""
    assert cli_main(["compare", str(runs["old"]), str(runs["busy"]), "--format", "json"]) == 3
    captured = capsys.readouterr()
    rows = {r["model"]: r for r in json.loads(captured.out)}
    assert {r["verdict"] for r in rows.values()} == {NOT_JUDGED}
    assert {r["new_validity"] for r in rows.values()} == {"unstable"}
    assert "not judged (unstable)" in captured.err and "--allow-untested" in captured.err


def test_one_slower_model_beside_a_slow_round_is_caught(
    runs: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli_main(["compare", str(runs["old"]), str(runs["busy_slow"]), "--format", "json"]) == 1
    rows = {r["model"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["casvit_s"]["verdict"] == REGRESSION
    assert rows["casvit_s"]["change_pct"] == pytest.approx(15, abs=3)
    assert {rows[m]["verdict"] for m in MODELS if m != "casvit_s"} == {NOT_SIGNIFICANT}


def _sitting_headline(rng: np.random.Generator, true_ms: float) -> pd.Series:
    """One sitting's row: nine clean rounds around a level that moves between sittings by SITTING_SD."""
    level = true_ms * float(np.exp(rng.normal(0.0, SITTING_SD)))
    h = headline((level * np.exp(rng.normal(0.0, 0.01, 9))).tolist())
    return pd.Series({"latency_ms": h.value, "latency_ci_low_ms": h.low, "latency_ci_high_ms": h.high,
                      "validity": "stable"})  # fmt: skip


def test_false_positive_rate_between_sittings_of_the_same_code() -> None:
    """Sittings differ by more than their rounds show (SITTING_SD): compare must not call that a change."""
    changed = 0
    for seed in range(200):
        rng = np.random.default_rng(seed)
        old, new = _sitting_headline(rng, 10.0), _sitting_headline(rng, 10.0)
        changed += compare_headlines(Cell.from_row(old), Cell.from_row(new), threshold=5, alpha=0.01)["verdict"] in (
            REGRESSION,
            IMPROVED,
        )
    assert changed <= 2  # at most 1%


def test_power_for_a_10_percent_slowdown_between_sittings() -> None:
    caught = 0
    for seed in range(100):
        rng = np.random.default_rng(1000 + seed)
        old, new = _sitting_headline(rng, 10.0), _sitting_headline(rng, 11.0)
        caught += (
            compare_headlines(Cell.from_row(old), Cell.from_row(new), threshold=5, alpha=0.01)["verdict"] == REGRESSION
        )
    assert caught >= 90


def test_bad_input_is_one_line_exit_2(runs: dict[str, Path], tmp_path: Path) -> None:
    assert_one_line_error(run_cli("compare", str(tmp_path / "missing"), str(runs["old"])), "no results at")
    foreign = tmp_path / "notours.csv"
    foreign.write_text("a,b\n1,2\n")
    assert_one_line_error(run_cli("compare", str(runs["old"]), str(foreign)), f"{foreign} is a file")
    (tmp_path / "foreign").mkdir()
    named = tmp_path / "foreign" / "summary.csv"  # a summary.csv, but not one of this suite's
    named.write_text("a,b\n1,2\n")
    assert_one_line_error(run_cli("compare", str(runs["old"]), str(named)), "not a results directory of this suite")


def test_nothing_in_common_and_bad_options(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = write_run(tmp_path, label="torch", env=environment(), backend="torch", models=MODELS[:1])
    assert cli_main(["compare", str(runs["old"]), str(other)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no setting was measured in both") and err.count("\n") == 1
    with pytest.raises(SystemExit) as exc:
        cli_main(["compare", str(runs["old"]), str(runs["old"]), "--alpha", "2"])
    assert exc.value.code == 2


# ----------------------------------------------------------------------- issue 20, class 11


def test_a_side_without_an_interval_is_untested_and_fails_the_gate(runs: dict[str, Path], tmp_path: Path) -> None:
    """One round gives a headline but no interval: compare cannot tell a change from noise."""
    env = environment()
    one = write_run(tmp_path / "one", label="one", seed=9, env=env, backend="onnx", models=MODELS, phases=(1.0,))
    proc = run_cli("compare", str(runs["old"]), str(one))
    assert proc.returncode == 3, (proc.stdout, proc.stderr)
    assert f"{len(MODELS)} untested (no interval), 0 unchanged" in proc.stdout
    assert "--allow-untested" in proc.stderr and "could not be tested" in proc.stderr
    assert UNTESTED in proc.stdout
    assert run_cli("compare", str(runs["old"]), str(one), "--allow-untested").returncode == 0


def test_every_new_setting_failing_is_a_regression_not_a_traceback(runs: dict[str, Path], tmp_path: Path) -> None:
    env = environment()
    failing = write_run(
        tmp_path / "all-fail", label="all-fail", seed=9, env=env, backend="onnx", models=MODELS,
        failed=dict.fromkeys(MODELS, "boom"),
    )  # fmt: skip
    proc = run_cli("compare", str(runs["old"]), str(failing))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stdout.count("REGRESSION (now fails)") == len(MODELS)


def test_the_interval_level_is_printed_as_asked(tmp_path: Path) -> None:
    env = environment()
    kw = {"env": env, "backend": "onnx", "models": MODELS[:1], "n": 40}
    old = write_run(tmp_path / "old", label="old", seed=1, **kw)
    new = write_run(tmp_path / "new", label="new", seed=2, slowdown=1.5, **kw)
    proc = run_cli("compare", str(old), str(new), "--alpha", "0.0000001", "--format", "json")
    (row,) = json.loads(proc.stdout)
    assert row["change_pct"] == pytest.approx(50, abs=5) and row["verdict"] == REGRESSION, row
    table = run_cli("compare", str(old), str(new), "--alpha", "0.0000001")
    assert "99.99999% CI" in table.stdout and "100% CI" not in table.stdout


def test_a_cell_flagged_only_for_a_wide_interval_is_still_judged() -> None:
    """Its interval is the evidence: a change beyond it is a change; any other fault leaves it unjudged."""
    wide = f"{WIDE_INTERVAL} 7.4% (standard errors: its rounds 1.0%, this machine's sittings 2.5%, stable needs 5%)"
    old = pd.Series({"latency_ms": 10.0, "latency_ci_low_ms": 9.3, "latency_ci_high_ms": 10.74,
                     "validity": "unstable", "validity_reason": wide})  # fmt: skip
    new = old.copy()
    for column in ("latency_ms", "latency_ci_low_ms", "latency_ci_high_ms"):
        new[column] = old[column] * 1.3
    assert compare_headlines(Cell.from_row(old), Cell.from_row(new), threshold=5, alpha=0.01)["verdict"] == REGRESSION
    busy = new.copy()
    busy["validity_reason"] = wide + "; other processes used 1.2 CPUs"
    assert compare_headlines(Cell.from_row(old), Cell.from_row(busy), threshold=5, alpha=0.01)["verdict"] == NOT_JUDGED
