"""A noisy neighbour on demand: memory-bandwidth and compute bursts with random on/off phases.

    python tests/scripts/noisy_neighbour.py --duration 600 &        # beside a sitting
    python -m bench run --backend all --out results/noisy
    python tests/scripts/noisy_neighbour.py --duration 600 --seed 3 --mean-on 20 --mean-off 10 --workers 2

Shared VMs have phases in which everything runs slower for seconds to minutes. This reproduces the
shape on any machine, so the reproducibility evidence does not wait for a noisy hour: each worker
alternates between idle phases and busy phases whose lengths are drawn (exponentially, seeded) around
``--mean-off`` and ``--mean-on`` seconds; a busy phase is either a memory-bandwidth burst (copying
arrays far larger than the caches) or a compute burst (dense matrix products), chosen at random.
Unlike the real thing it is visible from inside the machine (other processes' CPU time), so the
suite may flag cells as busy rather than as slow; run it niced (``nice -n 19``) to weigh on caches and
memory bandwidth more than on CPU time. The schedule is printed first and is a pure function of the
seed (``schedule``), which the tests check.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Phase:
    start_s: float
    length_s: float
    kind: str
    """``idle``, ``memory`` or ``compute``."""


def schedule(duration_s: float, mean_on_s: float, mean_off_s: float, seed: int) -> list[Phase]:
    """Alternating idle and busy phases covering ``duration_s``, starting idle; the same seed, the same plan."""
    rng = np.random.default_rng(seed)
    phases, t, busy = [], 0.0, False
    while t < duration_s:
        mean = mean_on_s if busy else mean_off_s
        length = min(float(rng.exponential(mean)) + 0.5, duration_s - t)
        kind = ("memory" if rng.random() < 0.5 else "compute") if busy else "idle"
        phases.append(Phase(round(t, 3), round(length, 3), kind))
        t += length
        busy = not busy
    return phases


def _memory_burst(until: float) -> None:
    src = np.ones(64 << 20 >> 3)  # 64 MiB: far beyond any cache
    dst = np.empty_like(src)
    while time.monotonic() < until:
        np.copyto(dst, src)


def _compute_burst(until: float) -> None:
    a = np.random.default_rng(0).random((256, 256))
    while time.monotonic() < until:
        a = np.tanh(a @ a)


def run_worker(phases: Sequence[Phase]) -> None:
    start = time.monotonic()
    for phase in phases:
        until = start + phase.start_s + phase.length_s
        if phase.kind == "memory":
            _memory_burst(until)
        elif phase.kind == "compute":
            _compute_burst(until)
        else:
            time.sleep(max(until - time.monotonic(), 0.0))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=300.0, help="seconds in all (default: 300)")
    parser.add_argument("--mean-on", type=float, default=15.0, help="mean busy phase, seconds (default: 15)")
    parser.add_argument("--mean-off", type=float, default=15.0, help="mean idle phase, seconds (default: 15)")
    parser.add_argument("--workers", type=int, default=1, help="processes, each with its own schedule (default: 1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the schedules (default: 0)")
    args = parser.parse_args(argv)
    if not (args.duration > 0 and args.mean_on > 0 and args.mean_off > 0 and 1 <= args.workers <= 64):
        print("error: --duration, --mean-on and --mean-off must be positive, --workers 1-64", file=sys.stderr)
        return 2
    plans = [schedule(args.duration, args.mean_on, args.mean_off, args.seed + i) for i in range(args.workers)]
    for i, plan in enumerate(plans):
        busy = sum(p.length_s for p in plan if p.kind != "idle")
        print(f"worker {i}: {len(plan)} phases, busy {busy:.0f} of {args.duration:.0f} s", flush=True)
    workers = [multiprocessing.Process(target=run_worker, args=(plan,), daemon=True) for plan in plans]
    for w in workers:
        w.start()
    try:
        for w in workers:
            w.join()
    except KeyboardInterrupt:
        for w in workers:
            w.terminate()
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
