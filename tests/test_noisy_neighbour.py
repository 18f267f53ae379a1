"""The noisy-neighbour generator (tests/scripts/noisy_neighbour.py): a seeded, alternating plan that it follows."""

from __future__ import annotations

import itertools

import pytest

from tests.scripts import noisy_neighbour as nn


def test_the_schedule_alternates_idle_and_busy_phases_and_covers_the_duration() -> None:
    plan = nn.schedule(600.0, mean_on_s=15.0, mean_off_s=10.0, seed=3)
    assert plan == nn.schedule(600.0, mean_on_s=15.0, mean_off_s=10.0, seed=3)  # a pure function of the seed
    assert plan != nn.schedule(600.0, mean_on_s=15.0, mean_off_s=10.0, seed=4)
    assert [p.kind == "idle" for p in plan] == [i % 2 == 0 for i in range(len(plan))]
    assert {p.kind for p in plan} == {"idle", "memory", "compute"}
    assert sum(p.length_s for p in plan) == pytest.approx(600.0, abs=0.01)
    for a, b in itertools.pairwise(plan):
        assert b.start_s == pytest.approx(a.start_s + a.length_s, abs=0.002)
    busy = [p.length_s for p in plan if p.kind != "idle"]
    idle = [p.length_s for p in plan if p.kind == "idle"]
    assert sum(busy) / len(busy) > sum(idle) / len(idle)  # longer busy phases, as asked


def test_a_short_run_follows_its_plan_and_bad_input_is_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert nn.main(["--duration", "1", "--mean-on", "0.2", "--mean-off", "0.2", "--seed", "1"]) == 0
    assert capsys.readouterr().out.startswith("worker 0:")
    assert nn.main(["--duration", "0"]) == 2
