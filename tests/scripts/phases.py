"""Why is a latency distribution bimodal? Are the slow iterations clustered in time (machine phases)?

    python tests/scripts/phases.py results/reference/<run>    [--batch 1]

For each model: the two modes (2-means), the share of slow iterations, how often consecutive
iterations switch between modes compared with what a random mix would give, and the slow share per
timing round (or per third of the samples for runs without rounds). Few switches and whole rounds
slow or fast mean machine phases; many switches mean a per-iteration effect (thread wake-ups,
allocator, spinning pools). Where the run recorded its machine-speed reference, it is shown per round.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def two_means(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    centres = np.array([x.min(), x.max()])
    for _ in range(50):
        labels = np.abs(x[:, None] - centres[None, :]).argmin(axis=1)
        centres = np.array([x[labels == k].mean() if (labels == k).any() else centres[k] for k in (0, 1)])
    return centres, labels == 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--batch", type=int, default=1)
    args = parser.parse_args()

    from bench.core.records.store import load_samples, load_summary

    summary = load_summary(args.run)
    samples = load_samples(args.run)
    print("model                  modes (ms)      slow  switches  random  slow share per round   reference per round")
    for row in summary[summary["infer_batch_size"] == args.batch].itertuples():
        mine = samples[samples["row_id"] == row.row_id].sort_values(["round", "iteration"])
        x = mine["latency_ms"].to_numpy()
        if len(x) < 6:
            continue
        centres, slow = two_means(x)
        switches = int((np.diff(slow.astype(int)) != 0).sum())
        p = slow.mean()
        random_switches = 2 * p * (1 - p) * (len(x) - 1)
        rounds = mine["round"].to_numpy()
        by_round = len(set(rounds)) > 1
        groups = [slow[rounds == r] for r in sorted(set(rounds))] if by_round else np.array_split(slow, 3)
        shares = " ".join(f"{g.mean():.2f}" for g in groups)
        refs = json.loads(row.reference_ms) if row.reference_ms else []
        reference = " ".join(f"{v:.2f}" for v in refs) or "-"
        print(
            f"{row.model:<22} {centres[0]:6.1f}/{centres[1]:<6.1f} {p:5.2f}  {switches:8d}  {random_switches:6.0f}  "
            f"{shares:<21} {reference}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
