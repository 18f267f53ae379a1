"""`--retry-unstable` (issue 20, class 7): only what a retry can fix is re-timed, attempts are capped
whatever the budget, and an interrupt during the retries keeps every measured row."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from bench.core.measure import engine
from bench.core.records.schema import STABLE, UNSTABLE, SummaryRow
from bench.core.records.store import load_results
from tests.conftest import run_cli


class FakeMeasurer:
    """Finishes every attempt as the row it is given (unstable unless told); counts the rounds it times."""

    def __init__(self, iterations: int = 100, interrupt_at: int | None = None, stable_from: int | None = None):
        self.rounds_timed = 0
        self.iterations, self.interrupt_at, self.stable_from = iterations, interrupt_at, stable_from

    def finish(self, item):
        stable = self.stable_from is not None and self.rounds_timed >= self.stable_from
        row = SummaryRow(model=item.name, row_id=item.row.row_id, infer_batch_size=1, iterations=self.iterations)
        row.set(validity=STABLE if stable else UNSTABLE, round_spread=0.5, validity_reason="round medians differ")
        return row, None

    def time_round(self, item):
        if self.interrupt_at is not None and self.rounds_timed == self.interrupt_at:
            raise KeyboardInterrupt
        self.rounds_timed += 1
        return SimpleNamespace(record={}, samples_ms=[1.0])


class Quiet:
    def write(self, *_, **__) -> None: ...


def _item(name: str) -> SimpleNamespace:
    return SimpleNamespace(
        name=name, row=SimpleNamespace(row_id=f"{name}-row"), session=SimpleNamespace(close=lambda: None)
    )


def _policy(measurer: FakeMeasurer, items, recorded: list[SummaryRow], budget: float = 1e9) -> None:
    """The sitting's retry policy with a fake cell: an attempt is two rounds."""

    def retime(item, row_id: str) -> bool:
        item.row.row_id = row_id
        for _ in range(2):
            measurer.time_round(item)
        return True

    engine.retry_unstable(
        items, lambda item: measurer.finish(item)[0], retime, lambda _, row: recorded.append(row), budget, Quiet()
    )


def _retry(measurer: FakeMeasurer, items, budget: float = 1e9) -> list[SummaryRow]:
    recorded: list[SummaryRow] = []
    _policy(measurer, items, recorded, budget)
    return recorded


def test_attempts_are_capped_whatever_the_budget() -> None:
    measurer = FakeMeasurer()
    (row,) = _retry(measurer, [_item("a")], budget=1e9)  # would loop forever without the cap
    assert measurer.rounds_timed == engine.MAX_RETRY_ATTEMPTS * 2
    assert row.validity == UNSTABLE


def test_a_retry_that_steadies_the_row_stops_there() -> None:
    measurer = FakeMeasurer(stable_from=2)
    (row,) = _retry(measurer, [_item("a")])
    assert measurer.rounds_timed == 2 and row.validity == STABLE and row.row_id == "a-row#2"


def test_too_few_iterations_is_never_re_timed() -> None:
    measurer = FakeMeasurer(iterations=4)
    (row,) = _retry(measurer, [_item("a")])
    assert measurer.rounds_timed == 0 and row.validity == UNSTABLE
    assert "only 4 iterations" in engine.retry_can_help(row)


def test_an_interrupt_during_the_retries_keeps_every_row() -> None:
    measurer = FakeMeasurer(interrupt_at=3)
    recorded: list[SummaryRow] = []
    with pytest.raises(KeyboardInterrupt):
        _policy(measurer, [_item("a"), _item("b")], recorded)
    assert [r.model for r in recorded] == ["a", "b"]


def test_cli_does_not_re_time_or_advise_a_retry_for_too_few_iterations(tmp_path: Path) -> None:
    proc = run_cli("run", "--backend", "torch", "--models", "casvit_xs", "--resolution", "64", "--warmup", "1",
                   "--warmup-time", "0", "--iters", "3", "--min-time", "0", "--max-time", "0.001", "--rounds", "1",
                   "--no-flops", "--no-progress", "--retry-unstable", "604800", "--budget", "0",
                   "--out", str(tmp_path))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"not re-timed: only \d iterations", proc.stderr), proc.stderr
    assert "re-timing cannot fix 1 of them" in proc.stderr and "consider --retry-unstable" not in proc.stderr
    summary, samples, _ = load_results([tmp_path])
    assert set(samples["row_id"]) == {summary.iloc[0]["row_id"]}  # one attempt only
