"""The arithmetic of tests/scripts/reproducibility.py on synthetic sittings whose answers are known."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tests.scripts import reproducibility
from tests.sitting_fixtures import write_sitting

MODELS = {"casvit_xs": 6.0, "casvit_s": 9.0, "swiftformer_xs": 7.0, "efficientformer_l1": 14.0}


def _sitting(root: Path, label: str, phases: list[float], scale: dict[tuple[str, str], float] | None = None) -> Path:
    medians = {}
    for model, ms in MODELS.items():
        for backend, factor in (("onnx", 1.0), ("litert", 0.6)):
            s = (scale or {}).get((backend, model), 1.0)
            medians[(backend, model)] = [ms * factor * s * p for p in phases]
    return write_sitting(root / label, medians, label=label)


def test_pairs_count_agreeing_cells_ratios_coverage_and_compare_calls(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    phases = [1.0, 1.01, 0.99, 1.0, 1.02]
    a = _sitting(tmp_path, "a", phases)
    # b: 2% slower overall (within 5%), one cell 10% slower still (not), which moves one ratio by 10%
    b = _sitting(tmp_path, "b", [1.02 * p for p in phases], scale={("onnx", "casvit_xs"): 1.10})
    c = _sitting(tmp_path, "c", phases)
    assert reproducibility.main([str(a), str(b), str(c), "--rejudge"]) == 0
    out = capsys.readouterr().out
    first = out.splitlines()[0]
    assert first.startswith("S1 = ") and first.endswith("-a-" + first.split("-a-")[-1])
    assert "0 of 8 cells flagged unstable" in first
    assert "S1 vs S2: cells within 5% 7/8; stable in both 8, of them within 5% 7;" in out
    assert "ratios of stable cells within 3% 3/4;" in out
    assert "S1 vs S3: cells within 5% 8/8" in out and "compare calls changed 0/8 (8 judged)" in out
    assert "injected +10% caught 8/8" in out  # a 10% slowdown where sittings agree within 2%
    assert "stable in both and within 5%: 22/24 (92%)" in out


def test_a_sitting_on_a_slow_machine_is_flagged_not_compared(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = _sitting(tmp_path, "a", [1.0] * 5)
    slow = _sitting(tmp_path, "slow", [1.0] * 5)
    # the slow sitting's reference ran 40% above the calm one throughout: judged against the machine's floor
    rounds = slow / "rounds.csv"
    rounds.write_text(rounds.read_text().replace(",0.2,", ",0.28,"))
    assert reproducibility.main([str(a), str(slow), "--rejudge", "--machine-floor"]) == 0
    out = capsys.readouterr().out
    assert "-slow-" in out.splitlines()[1] and "8 of 8 cells flagged unstable" in out.splitlines()[1]
    assert "compare calls changed 0/8 (0 judged)" in out


def test_bad_input_is_exit_2(tmp_path: Path) -> None:
    assert reproducibility.main([str(tmp_path), str(tmp_path)]) == 2


def test_pairs_started_an_hour_apart_are_summed_apart(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 27 judges agreement across sittings at least an hour apart: the script sums those pairs on their own."""
    import json

    a, b, c = (_sitting(tmp_path, label, [1.0, 1.01, 0.99, 1.0, 1.02]) for label in ("a", "b", "c"))
    env = json.loads((c / "environment.json").read_text())
    start = pd.Timestamp(env["started_at"]) + pd.Timedelta(hours=2)
    env["started_at"] = start.strftime("%Y-%m-%dT%H:%M:%S%z")
    (c / "environment.json").write_text(json.dumps(env))
    assert reproducibility.main([str(a), str(b), str(c), "--rejudge"]) == 0
    out = capsys.readouterr().out
    apart = out.split("over the 2 pairs started at least an hour apart:")[1]
    assert "stable in both and within 5%: 16/16 (100%)" in apart  # S1-S3 and S2-S3, 8 cells each
