"""How fast and how busy the machine was while we timed: the speed reference, CPU sampling, validity.

On a shared VM the whole machine can run ~50% slower for tens of seconds (the host steals cycles),
which moves every model alike. So every timing round of every workload is preceded by a fixed
*reference* kernel; its median says how fast the machine was just then, and ``compare`` divides it
out. During each round, ``/proc/stat`` and our own CPU time give how much other processes used the
CPUs and how much the hypervisor stole. A row whose rounds disagree (its interval is wide), or that
ran beside other work, is marked ``unstable`` with the reason (MLPerf LoadGen's VALID/INVALID idea);
reference drift alone flags nothing.
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
from bench.core.stats import fast_count, fastest_spread, headline

REFERENCE_BLOCK_S = 0.05
"""Timed seconds of the reference per workload round (after a 20 ms pause and two warm calls).

The kernel takes about 1 ms, so a block holds ~50 calls: enough for a steady median, and 30 blocks
(10 models x 3 rounds) add under 3 s to a run."""

REWARM_AFTER_S = 5.0
"""A reference block this long after the previous one is warmed by an untimed block first."""

# Validity limits: a row beyond any of them is unstable. Chosen from A/A runs on the 2-core CI VM,
# where quiet periods give round spreads of 1-4% and busy phases 10-50%.
MAX_FASTEST_SPREAD = 0.10
"""Spread of the row's fastest third of rounds (:func:`bench.core.stats.fastest_spread`) beyond which
fewer than a third of its rounds escaped the slow phases, and its headline mixes phases."""
MAX_OWN_SLOWDOWN = 0.10
"""Rounds this much slower than the headline must be the machine's doing ..."""
MIN_EXPLAINING_DRIFT = 0.05
"""... shown by a reference at least this much slower in those rounds than in the fastest third; else
the slowdown is the cell's own (a runtime that slows some of its rounds), and the row is flagged."""
MIN_OWN_SLOW_SHARE = 0.25
"""Unexplained slow rounds flag a row only when they are at least this share of its rounds: one odd
round in nine is noise, a runtime slowing a quarter of its rounds is a property worth a flag."""
MAX_REFERENCE_DRIFT = 0.10
"""(max - min) / median of the reference over the row's rounds beyond which a fastest third that
disagrees is put down to the machine's speed in the reason. Never a flag on its own: a row whose
rounds agree is evidence enough."""
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
        self.last_block: float | None = None
        """perf_counter() at the end of the last block (None: no timed block yet)."""

    def _run(self) -> None:
        torch.nn.functional.conv2d(self.x, self.w, padding=1)
        torch.mm(self.a, self.a)

    def _block(self) -> list[float]:
        with torch.inference_mode():
            self._run()
            self._run()
            samples = []
            start = time.perf_counter()
            while len(samples) < 5 or time.perf_counter() - start < REFERENCE_BLOCK_S:
                t0 = time.perf_counter()
                self._run()
                samples.append((time.perf_counter() - t0) * 1e3)
        return samples

    def median_ms(self) -> float:
        """Median of one short block; a pause first lets other runtimes' spinning threads go idle.

        The first block of a sitting, or one after a long gap (exports, conversions), is preceded by
        an untimed block of the same length: a cold first block read 0.36 ms against 0.21 ms for
        every later one, a cold start that is not the machine's speed.
        """
        previous = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            time.sleep(0.02)
            if self.last_block is None or time.perf_counter() - self.last_block > REWARM_AFTER_S:
                self._block()
            samples = self._block()
            self.last_block = time.perf_counter()
        finally:
            torch.set_num_threads(previous)
        return float(np.median(samples))


# ------------------------------------------------------------------------------------------ sampling

_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def allowed_cpus() -> list[int] | None:
    """The CPUs this process may run on (its affinity mask: a container's cpuset, taskset), or None."""
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None


def parse_proc_stat(text: str, cpus: list[int] | None) -> tuple[float, float, float] | None:
    """(non-idle, steal, total) CPU seconds since boot summed over ``cpus`` (their ``cpuN`` lines).

    Fields: user nice system idle iowait irq softirq steal (guest time is already inside user).
    Idle and iowait are both idle; steal is neither ours nor another process's. The aggregate
    ``cpu`` line is used only when the per-CPU lines of ``cpus`` are missing: in a container whose
    cpuset is smaller than the host, it sums CPUs this process never runs on, and other tenants'
    work there showed up as "other processes used 5 CPUs" on a 2-CPU machine.
    """
    rows: dict[str, list[float]] = {}
    for line in text.splitlines():
        if not line.startswith("cpu"):
            break
        name, *fields = line.split()
        rows[name] = [float(v) / _CLK_TCK for v in fields[:8]]
    wanted = [f"cpu{c}" for c in cpus] if cpus else []
    chosen = [rows[w] for w in wanted] if wanted and all(w in rows for w in wanted) else [rows.get("cpu", [])]
    busy = steal = total = 0.0
    for values in chosen:
        if len(values) < 4:
            return None
        values = values + [0.0] * (8 - len(values))
        busy += values[0] + values[1] + values[2] + values[5] + values[6]  # not idle (3), iowait (4), steal (7)
        steal += values[7]
        total += sum(values)  # the eight fields together: the CPUs' whole time
    return busy, steal, total


def _proc_stat(cpus: list[int] | None = None) -> tuple[float, float, float] | None:
    """(non-idle, steal, total) CPU seconds of the CPUs this process may use, or None off Linux."""
    try:
        text = Path("/proc/stat").read_text()
    except OSError:
        return None
    return parse_proc_stat(text, cpus if cpus is not None else allowed_cpus())


def _own_cpu_s() -> float:
    """User + system CPU seconds of this process: every thread of it (runtime pools included)."""
    t = os.times()
    return t.user + t.system


@dataclass
class CpuWindow:
    """CPU use of everything else while one timing round ran (Linux; None elsewhere).

    Take it in the process that times: a runtime's threads are this process's own time; any other
    process (an idle worker that spins, the orchestrator, another user) is "other". /proc/stat counts
    in 10 ms ticks per CPU, so a window of W seconds reads other processes to about
    ``(CPUs + 1) * 0.01 / W`` cores; the result is kept within [0, CPUs] (what can physically happen).
    """

    cpus: list[int] | None = field(default_factory=allowed_cpus)
    started: tuple[float, float, float] | None = None
    own_start: float = 0.0
    wall_start: float = 0.0

    def __post_init__(self) -> None:
        self.started = _proc_stat(self.cpus)
        self.own_start = _own_cpu_s()
        self.wall_start = time.perf_counter()

    def finish(self) -> tuple[float | None, float | None]:
        """(other processes' CPU use in cores, share of CPU time stolen)."""
        end = _proc_stat(self.cpus)
        own = _own_cpu_s() - self.own_start
        wall = time.perf_counter() - self.wall_start
        if self.started is None or end is None or wall <= 0:
            return None, None
        return other_cores(self.started, end, own, wall, len(self.cpus) if self.cpus else None)


def other_cores(
    start: tuple[float, float, float], end: tuple[float, float, float], own_s: float, wall_s: float, n_cpus: int | None
) -> tuple[float, float]:
    """(cores other processes used, stolen share) between two :func:`parse_proc_stat` readings."""
    busy = end[0] - start[0]
    steal = end[1] - start[1]
    total = end[2] - start[2]
    other = max(busy - own_s, 0.0) / wall_s
    if n_cpus:
        other = min(other, float(n_cpus))
    return other, (min(max(steal / total, 0.0), 1.0) if total > 0 else 0.0)


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
    """Stable or unstable, with every reason that applies (limits above).

    The row's own evidence decides (:mod:`bench.core.stats` explains the fastest rounds its headline
    rests on): those rounds disagree by more than ``MAX_FASTEST_SPREAD``, or slow rounds that the
    machine-speed reference does not explain are the row's own slowdown. What the machine did that
    rounds cannot show, because it may have lasted through all of them, is a flag of its own: other
    processes' CPU use and the hypervisor's steal.
    """
    reasons = []
    round_spread = spread(round_medians)
    drift = spread(reference_ms)
    busy_known = [b for b in busy if b is not None]
    steal_known = [s for s in steal if s is not None]
    busy_cpu = float(np.mean(busy_known)) if busy_known else None
    stolen = float(np.mean(steal_known)) if steal_known else None
    if round_medians:
        h = headline(round_medians)
        fast_spread = fastest_spread(round_medians)
        if fast_spread > MAX_FASTEST_SPREAD:
            k = min(h.rounds, max(2, fast_count(h.rounds)))
            why = f"fastest {k} of {h.rounds} rounds {fast_spread:.0%} apart: fewer than {k} escaped the slow phases"
            if drift is not None and drift > MAX_REFERENCE_DRIFT:
                why += f" (the machine's speed moved {drift:.0%}, reference)"
            reasons.append(why)
        own = own_slowdown(round_medians, reference_ms, h.value)
        if own is not None:
            reasons.append(own)
    if busy_cpu is not None and busy_cpu > MAX_BUSY_CPU:
        reasons.append(
            f"other processes used {busy_cpu:.1f} CPUs (a thread pool with a thread per core waits for the core "
            "they hold, which can make a row many times slower: stop them, or use fewer --threads; bench doctor)"
        )
    if stolen is not None and stolen > MAX_STEAL:
        reasons.append(f"hypervisor stole {stolen:.0%} of CPU time")
    if iterations < MIN_ITERATIONS:
        reasons.append(f"only {iterations} iterations")
    return Validity(round_spread, drift, busy_cpu, stolen, UNSTABLE if reasons else STABLE, "; ".join(reasons))


def own_slowdown(round_medians: list[float], reference_ms: list[float], value: float) -> str | None:
    """The reason when rounds well above the headline are slow and the machine's reference was not.

    None when too few such rounds exist, or the reference was not recorded for every round.
    """
    medians = np.asarray(round_medians, dtype=np.float64)
    references = np.asarray(reference_ms, dtype=np.float64)
    if references.shape != medians.shape or not np.all(np.isfinite(references) & (references > 0)):
        return None
    slow = medians > value * (1.0 + MAX_OWN_SLOWDOWN)
    if slow.sum() < max(1, MIN_OWN_SLOW_SHARE * medians.size):
        return None
    fastest = np.argsort(medians, kind="stable")[: fast_count(medians.size)]
    moved = float(np.median(references[slow]) / np.median(references[fastest])) - 1.0
    if moved >= MIN_EXPLAINING_DRIFT:
        return None
    slowdown = float(np.median(medians[slow])) / value - 1.0
    return (
        f"{int(slow.sum())} of {medians.size} rounds {slowdown:.0%} slower while the machine's reference "
        f"moved {moved:+.0%}: the slowdown is this cell's own"
    )


def json_list(values: list[float]) -> str:
    return json.dumps([round(v, 4) for v in values])
