"""How fast and how busy the machine was while we timed: the speed reference, CPU sampling, validity.

On a shared VM the whole machine can run ~50% slower for tens of seconds (the host steals cycles),
which moves every model alike. So every timing round of every workload is preceded by a fixed
*reference* kernel; its median says how fast the machine was just then, and ``compare`` divides it
out. During each round, ``/proc/stat`` and our own CPU time give how much other processes used the
CPUs and how much the hypervisor stole. A row whose rounds disagree, whose reference drifted, or that
ran beside other work is marked ``unstable`` with the reason (MLPerf LoadGen's VALID/INVALID idea).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from bench.core.schema import STABLE, UNSTABLE

REFERENCE_NAME = "conv3x3-32x28x28+gemm192 (torch, fp32)"
REFERENCE_BLOCK_S = 0.05
"""Timed seconds of the reference per workload round (after a 20 ms pause and two warm calls).

The kernel takes about 1 ms, so a block holds ~50 calls: enough for a steady median, and 30 blocks
(10 models x 3 rounds) add under 3 s to a run."""

# Validity limits: a row beyond any of them is unstable. Chosen from A/A runs on the 2-core CI VM,
# where quiet periods give round spreads of 1-4% and busy phases 10-50%.
MAX_ROUND_SPREAD = 0.10
"""(max - min) / median of the per-round medians."""
MAX_REFERENCE_DRIFT = 0.10
"""(max - min) / median of the reference medians over the row's rounds."""
MAX_BUSY_CPU = 0.5
"""Cores' worth of CPU time other processes used while the row was timed."""
MAX_STEAL = 0.05
"""Share of CPU time the hypervisor stole while the row was timed."""
MIN_ITERATIONS = 10


class Reference:
    """A fixed conv + GEMM kernel on the framework's CPU threads: the machine's speed, not any model's."""

    def __init__(self, threads: int) -> None:
        generator = torch.Generator().manual_seed(0)
        self.threads = threads
        self.x = torch.randn(1, 32, 28, 28, generator=generator)
        self.w = torch.randn(32, 32, 3, 3, generator=generator)
        self.a = torch.randn(192, 192, generator=generator)
        self.median_ms()  # the first calls create the kernels' primitives: not part of any measurement

    def _run(self) -> None:
        torch.nn.functional.conv2d(self.x, self.w, padding=1)
        torch.mm(self.a, self.a)

    def median_ms(self) -> float:
        """Median of one short block; a pause first lets other runtimes' spinning threads go idle."""
        previous = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            time.sleep(0.02)
            with torch.inference_mode():
                self._run()
                self._run()
                samples = []
                start = time.perf_counter()
                while len(samples) < 5 or time.perf_counter() - start < REFERENCE_BLOCK_S:
                    t0 = time.perf_counter()
                    self._run()
                    samples.append((time.perf_counter() - t0) * 1e3)
        finally:
            torch.set_num_threads(previous)
        return float(np.median(samples))


# ------------------------------------------------------------------------------------------ sampling

_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _proc_stat() -> tuple[float, float, float] | None:
    """(non-idle, steal, total) CPU seconds of the whole machine since boot, or None off Linux."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return None
    values = [float(v) / _CLK_TCK for v in fields]
    idle = values[3] + (values[4] if len(values) > 4 else 0.0)  # idle + iowait
    steal = values[7] if len(values) > 7 else 0.0
    total = sum(values[:8])
    return total - idle - steal, steal, total


def _own_cpu_s() -> float:
    t = os.times()
    return t.user + t.system


@dataclass
class CpuWindow:
    """CPU use of everything else while one timing round ran (Linux; None elsewhere)."""

    started: tuple[float, float, float] | None = field(default_factory=_proc_stat)
    own_start: float = field(default_factory=_own_cpu_s)
    wall_start: float = field(default_factory=time.perf_counter)

    def finish(self) -> tuple[float | None, float | None]:
        """(other processes' CPU use in cores, share of CPU time stolen)."""
        end = _proc_stat()
        wall = time.perf_counter() - self.wall_start
        if self.started is None or end is None or wall <= 0:
            return None, None
        busy = end[0] - self.started[0]
        steal = end[1] - self.started[1]
        total = end[2] - self.started[2]
        own = _own_cpu_s() - self.own_start
        return max(busy - own, 0.0) / wall, (steal / total if total > 0 else 0.0)


# ------------------------------------------------------------------------------------------ validity


def spread(values: list[float]) -> float | None:
    """(max - min) / median, or None for fewer than two values."""
    if len(values) < 2:
        return None
    median = float(np.median(values))
    return (max(values) - min(values)) / median if median > 0 else None


@dataclass
class Validity:
    round_spread: float | None
    reference_drift: float | None
    busy_cpu: float | None
    steal: float | None
    verdict: str
    reason: str

    def as_columns(self) -> dict[str, object]:
        return {
            "round_spread": self.round_spread,
            "reference_drift": self.reference_drift,
            "busy_cpu": self.busy_cpu,
            "steal": self.steal,
            "validity": self.verdict,
            "validity_reason": self.reason,
        }


def judge(
    round_medians: list[float],
    reference_ms: list[float],
    busy: list[float | None],
    steal: list[float | None],
    iterations: int,
) -> Validity:
    """Stable or unstable, with every reason that applies (limits above)."""
    reasons = []
    round_spread = spread(round_medians)
    drift = spread(reference_ms)
    busy_known = [b for b in busy if b is not None]
    steal_known = [s for s in steal if s is not None]
    busy_cpu = float(np.mean(busy_known)) if busy_known else None
    stolen = float(np.mean(steal_known)) if steal_known else None
    if round_spread is not None and round_spread > MAX_ROUND_SPREAD:
        reasons.append(f"round medians differ by {round_spread:.0%}")
    if drift is not None and drift > MAX_REFERENCE_DRIFT:
        reasons.append(f"machine speed drifted {drift:.0%} (reference)")
    if busy_cpu is not None and busy_cpu > MAX_BUSY_CPU:
        reasons.append(f"other processes used {busy_cpu:.1f} CPUs")
    if stolen is not None and stolen > MAX_STEAL:
        reasons.append(f"hypervisor stole {stolen:.0%} of CPU time")
    if iterations < MIN_ITERATIONS:
        reasons.append(f"only {iterations} iterations")
    return Validity(round_spread, drift, busy_cpu, stolen, UNSTABLE if reasons else STABLE, "; ".join(reasons))


def json_list(values: list[float]) -> str:
    return json.dumps([round(v, 4) for v in values])
