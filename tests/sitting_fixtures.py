"""A synthetic multi-runtime sitting on disk with round medians chosen by the test (known answers)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from bench.core.measure.stats import headline_columns
from bench.core.records.schema import RoundRecord
from bench.core.records.store import RunWriter
from tests.result_fixtures import environment, summary_row


def write_sitting(
    root: Path,
    medians: Mapping[tuple[str, str], Sequence[float]],
    *,
    label: str = "sitting",
    iterations: int = 20,
    busy: float = 0.0,
    timestamp: str = "2026-11-25T02:10:00",
) -> Path:
    """One run folder: for each ``(backend, model)`` a row whose round ``i`` has median ``medians[...][i]``.

    Each round's samples are ``iterations`` values spread +-1% around its median (their median is it),
    so the summary, rounds.csv and samples.csv agree as the engine writes them.
    """
    env = environment()
    writer = RunWriter.create(root, label, {**env, "backend": "multi", "device": "cpu", "threads": 2})
    spread = np.linspace(-0.01, 0.01, iterations)
    for (backend, model), per_round in medians.items():
        rounds = [np.round(m * (1 + spread), 6) for m in per_round]
        samples = np.concatenate(rounds)
        row = summary_row(model, backend=backend, env_id=str(env["env_id"]), samples=samples, timestamp=timestamp)
        round_medians = [float(np.median(r)) for r in rounds]
        row.set(
            rounds=len(rounds),
            round_medians_ms=json.dumps(round_medians),
            reference_ms=json.dumps([0.2] * len(rounds)),
            busy_cpu=busy,
            steal=0.0,
            **headline_columns(round_medians),
        )
        for i, r in enumerate(rounds):
            record = RoundRecord(
                round=i, iterations=len(r), median_ms=float(np.median(r)), reference_ms=0.2, busy_cpu=busy, steal=0.0
            )
            writer.add_round(row, record, r)
        writer.add(row)
    return writer.directory
