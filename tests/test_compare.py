"""`bench compare`: a real slowdown is a regression (exit 1), noise is not (exit 0), bad input is exit 2."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.cli import main as cli_main
from bench.compare import IMPROVED, NOT_SIGNIFICANT, REGRESSION, compare_samples, median_ratio_ci
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
    assert {r["n_old"] for r in rows.values()} == {80}


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


def test_different_environments_warn_on_one_line(runs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["compare", str(runs["old"]), str(runs["other_env"])]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("warning:")
    assert "hostname bench-a -> bench-b" in err[0] and "cpu_model" in err[0]


def test_large_change_on_few_noisy_samples_is_not_significant() -> None:
    rng = np.random.default_rng(0)
    old = 10 * np.exp(rng.normal(0, 0.4, 6))
    new = 11 * np.exp(rng.normal(0, 0.4, 6))
    result = compare_samples(old, new, threshold=5, alpha=0.01, n_boot=500, seed=(0,))
    assert result["verdict"] == NOT_SIGNIFICANT


def test_bootstrap_ci_is_seeded_and_covers_the_ratio() -> None:
    rng = np.random.default_rng(1)
    old, new = rng.normal(10, 0.3, 200), rng.normal(12, 0.3, 200)
    ci = median_ratio_ci(old, new, 0.99, 1000, np.random.default_rng(7))
    assert ci == median_ratio_ci(old, new, 0.99, 1000, np.random.default_rng(7))
    assert ci[0] < np.median(new) / np.median(old) < ci[1] and ci[0] > 1.15


def test_bad_input_is_one_line_exit_2(runs: dict[str, Path], tmp_path: Path) -> None:
    assert_one_line_error(run_cli("compare", str(tmp_path / "missing"), str(runs["old"])), "no results at")
    foreign = tmp_path / "notours.csv"
    foreign.write_text("a,b\n1,2\n")
    assert_one_line_error(run_cli("compare", str(runs["old"]), str(foreign)), "not a results directory of this suite")


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
