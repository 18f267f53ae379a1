"""Is the machine-speed reference the same in every runtime's worker? (not a unit test: seconds)

    python tests/scripts/reference_by_worker.py tests/data/amd-sittings/2*/ tests/data/precision-sittings/2*/ \
        results/reference/2*/ results/precision/2*/

The reference kernel is timed in the worker that times the round after it, so a process-level difference
between workers (thread pinning, allocator, the runtime's own threads) would move it. Per sitting, the low
quantile the floor is taken from (:meth:`bench.core.measure.machine.MachineFloor.own_level`) over all its reference
blocks, then over the blocks each runtime's workers timed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.core.measure.machine import MachineFloor


def main(folders: list[str]) -> int:
    for folder in map(Path, folders):
        rounds, summary = pd.read_csv(folder / "rounds.csv"), pd.read_csv(folder / "summary.csv")
        worker = dict(zip(summary["row_id"], summary["backend"] + "/" + summary["precision"].astype(str), strict=True))
        rounds["worker"] = rounds["row_id"].map(worker)
        rounds = rounds.dropna(subset=["worker", "reference_ms"])
        if rounds.empty:
            continue
        overall = MachineFloor.own_level(rounds["reference_ms"].tolist())
        by_worker = rounds.groupby("worker")["reference_ms"]
        levels = by_worker.agg(lambda v: MachineFloor.own_level(v.tolist())).sort_values()
        parts = ", ".join(f"{w} {v:.4f} ({v / overall - 1:+.1%})" for w, v in levels.items())
        print(f"{folder.name}: all {overall:.4f} ms; by worker: {parts}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
