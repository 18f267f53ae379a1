"""How fast and how busy the machine was while we timed: the speed reference, its floor, CPU sampling,
process hygiene and validity.

On a shared VM the whole machine can run 20-80% slower for seconds to a whole sitting, with no sign
inside the VM (no steal, no other process). So every timing round of every cell is preceded by a
fixed *reference* kernel; compared with the machine's *floor* (its calm speed: :class:`MachineFloor`)
it says whether the round ran on a calm machine (a *clean* round). A cell's headline rests on its
clean rounds (:mod:`bench.core.measure.stats`); a cell with too few, or whose clean rounds disagree, or that
ran beside other work (``/proc/stat``: other processes, the hypervisor's steal), is marked
``unstable`` with the reason (MLPerf LoadGen's VALID/INVALID idea).
"""

from __future__ import annotations

import ctypes
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from bench.core.measure.stats import (
    CLEAN_MARGIN,
    MIN_CLEAN_ROUNDS,
    SITTING_SD,
    STABLE_WITHIN,
    WIDE_INTERVAL,
    fast_count,
    fastest_spread,
    headline,
)
from bench.core.records.schema import STABLE, UNSTABLE
from bench.core.util import read_own_document

REFERENCE_BLOCK_S = 0.05
"""Timed seconds of the reference per workload round (after a 20 ms pause and two warm calls).

The kernel takes about 1 ms, so a block holds ~50 calls: enough for a steady median, and 30 blocks
(10 models x 3 rounds) add under 3 s to a run."""

REWARM_AFTER_S = 5.0
"""A reference block this long after the previous one is warmed by an untimed block first."""

# Validity limits: a row beyond any of them is unstable. Chosen from A/A runs on the 2-core CI VM,
# where quiet periods give round spreads of 1-4% and busy phases 10-50%.
MAX_OWN_SLOWDOWN = 0.10
"""Rounds this much slower than the headline must be the machine's doing ..."""
MIN_EXPLAINING_DRIFT = 0.05
"""... shown by a reference at least this much slower in those rounds than in the fastest third; else
the slowdown is the cell's own (a runtime that slows some of its rounds), and the row is flagged."""
MIN_OWN_SLOW_SHARE = 0.25
"""Unexplained slow rounds flag a row only when they are at least this share of its rounds: one odd
round in nine is noise, a runtime slowing a quarter of its rounds is a property worth a flag."""
MAX_BUSY_CPU = 0.5
"""Cores' worth of CPU time other processes used while the row was timed."""
MAX_STEAL = 0.05
"""Share of CPU time the hypervisor stole while the row was timed."""
MIN_ITERATIONS = 10

MAX_CLEAN_SPREAD = 0.10
"""Spread of a cell's fastest clean rounds beyond which its own timing wobbles although the machine
was calm (the cell is flagged: the headline would depend on which of its rounds were kept)."""


# ------------------------------------------------------------------------------------ process hygiene

MMAP_THRESHOLD_BYTES = 32 * 1024 * 1024
TRIM_THRESHOLD_BYTES = 256 * 1024 * 1024


def allocator_note() -> str | None:
    """What :func:`steady_allocator` sets in every worker (None where it cannot: off Linux)."""
    if not sys.platform.startswith("linux"):
        return None
    return f"glibc mmap_threshold={MMAP_THRESHOLD_BYTES >> 20}MiB trim_threshold={TRIM_THRESHOLD_BYTES >> 20}MiB"


def steady_allocator() -> bool:
    """Fix glibc malloc's mmap and trim thresholds in this process (False where that is not possible).

    By default glibc raises its mmap threshold each time a large mmapped block is freed, so whether a
    network's activations are served from the heap or mapped (and page-faulted) afresh on every
    inference depends on what the process ran before: PyTorch MobileViTv2-1.0 at batch 1 is much
    slower in a fresh process than after a few batch-8 inferences, and the same either way with the
    thresholds fixed (``tests/scripts/process_effect.py``, its output in
    ``tests/data/sittings/process_effect.txt``). Every worker fixes them first, so a cell's speed does
    not depend on its neighbours in the sitting.
    """
    if allocator_note() is None:
        return False
    try:
        libc = ctypes.CDLL(None)
        return libc.mallopt(-3, MMAP_THRESHOLD_BYTES) == 1 and libc.mallopt(-1, TRIM_THRESHOLD_BYTES) == 1
    except (OSError, AttributeError):
        return False


# ------------------------------------------------------------------------------------ the machine's floor

FLOOR_FILE = "machine-floor.json"
FLOOR_MAX_AGE_S = 7 * 24 * 3600
"""A recorded floor older than this is forgotten (the VM may have moved to another host): re-learnt."""
FLOOR_QUANTILE = 0.10
"""The sitting's own floor is this low quantile of its reference blocks (the very fastest block can be a
lucky outlier; at least one block of 50 sits below it)."""


@dataclass
class MachineFloor:
    """The machine-speed reference at the machine's calm speed: the fastest level this machine reaches.

    Inside a VM a host that is busy for a whole sitting is invisible (no steal, no other process): every
    round is slow alike and the rounds agree. Only an absolute level tells, so the floor is the lower of
    the sitting's own fast level and the fastest level recorded for this machine (CPU model, cores,
    threads) in the cache directory by earlier sittings. A round is clean when its reference lies within
    :data:`CLEAN_MARGIN` of the floor.
    """

    key: str
    recorded_ms: float | None = None
    """From earlier sittings on this machine (None: this is the first)."""

    @classmethod
    def load(cls, cache_dir: Path, key: str) -> MachineFloor:
        try:
            entry = read_own_document(cache_dir / FLOOR_FILE).get(key, {})  # type: ignore[union-attr]
            value, stamp = entry.get("floor_ms"), float(entry.get("updated_s", 0))
        except (OSError, ValueError, AttributeError, TypeError):
            value, stamp = None, 0.0
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < 1e6
        fresh = -60 <= time.time() - stamp <= FLOOR_MAX_AGE_S  # a minute of clock skew is no age
        return cls(key, float(value) if ok and fresh else None)

    @staticmethod
    def own_level(reference_ms: list[float]) -> float | None:
        """A sitting's own fast level: the low quantile of its reference blocks (None without any)."""
        values = np.asarray([v for v in reference_ms if v is not None and np.isfinite(v) and v > 0], dtype=float)
        return float(np.quantile(values, FLOOR_QUANTILE)) if values.size else None

    def of(self, reference_ms: list[float]) -> float | None:
        """The floor for a sitting whose reference blocks so far are ``reference_ms``."""
        candidates = [v for v in (self.own_level(reference_ms), self.recorded_ms) if v is not None]
        return min(candidates) if candidates else None

    def level(self, reference_ms: list[float]) -> float:
        """How far this sitting's own fast level (its low quantile) stayed above the floor: 0 when it reached
        the machine's calm speed; 0.027 when its fastest blocks ran 2.7% slow (the whole sitting was)."""
        own = self.own_level(reference_ms)
        floor = self.of(reference_ms)
        return max(own / floor - 1.0, 0.0) if own is not None and floor else 0.0

    def save(self, cache_dir: Path, reference_ms: list[float]) -> None:
        """Record the sitting's fast level for later sittings (best effort: a read-only cache is fine)."""
        floor = self.of(reference_ms)
        if floor is None or len(reference_ms) < 20:  # too few blocks to trust a low quantile
            return
        path = cache_dir / FLOOR_FILE
        try:
            data = read_own_document(path)
            if not isinstance(data, dict):
                data = {}
            data[self.key] = {"floor_ms": round(floor, 5), "updated_s": int(time.time())}
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(data, indent=2))
            os.replace(tmp, path)
        except (OSError, ValueError):
            pass


def floor_key(cpu_model: str, cpu_count: int | None, threads: int) -> str:
    return f"{cpu_model}|{cpu_count}cpu|{threads}threads"


def clean_mask(reference_ms: list[float] | None, floor: float | None, rounds: int) -> list[bool]:
    """Which rounds ran while the machine was at its calm speed (all of them without a reference or floor)."""
    if floor is None or reference_ms is None or len(reference_ms) != rounds:
        return [True] * rounds
    limit = floor * (1.0 + CLEAN_MARGIN)
    return [r is not None and np.isfinite(r) and r <= limit for r in reference_ms]


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
    clean_rounds: int | None = None
    machine_floor_ms: float | None = None

    def as_columns(self) -> dict[str, object]:
        return {
            "round_spread": self.round_spread,
            "reference_drift": self.reference_drift,
            "busy_cpu": self.busy_cpu,
            "steal": self.steal,
            "validity": self.verdict,
            "validity_reason": self.reason,
            "clean_rounds": self.clean_rounds,
            "machine_floor_ms": self.machine_floor_ms,
        }


def judge(
    round_medians: list[float],
    reference_ms: list[float],
    busy: list[float | None],
    steal: list[float | None],
    iterations: int,
    floor: float | None = None,
    process: list[int] | None = None,
    sitting_sd: float = SITTING_SD,
    slow_level: float = 0.0,
) -> Validity:
    """Stable (the headline reproduces) or unstable, with every reason that applies (limits above).

    Stable needs evidence from a calm machine: at least :data:`MIN_CLEAN_ROUNDS` clean rounds (the
    reference within :data:`CLEAN_MARGIN` of the machine's ``floor``), whose fastest ones agree within
    :data:`MAX_CLEAN_SPREAD`, and a prediction interval (its rounds and processes, and ``sitting_sd``: how
    far this machine's sittings differ) within :data:`STABLE_WITHIN` of the headline: the promise that
    another sitting agrees. Without a floor (no reference recorded) every round counts as clean. Slow
    rounds that the reference does not explain are the cell's own slowdown. What rounds cannot show
    is flagged on its own: other processes' CPU use and the hypervisor's steal.
    """
    reasons = []
    round_spread = spread(round_medians)
    drift = spread(reference_ms)
    busy_known = [b for b in busy if b is not None]
    steal_known = [s for s in steal if s is not None]
    busy_cpu = float(np.mean(busy_known)) if busy_known else None
    stolen = float(np.mean(steal_known)) if steal_known else None
    clean = clean_mask(reference_ms, floor, len(round_medians))
    n_clean = sum(clean)
    if round_medians:
        if floor is not None and n_clean < min(MIN_CLEAN_ROUNDS, len(round_medians)):
            typical = float(np.median(reference_ms)) if reference_ms else float("nan")
            reasons.append(
                f"only {n_clean} of {len(round_medians)} rounds on a calm machine (reference within {CLEAN_MARGIN:.0%} "
                f"of {floor:.3f} ms; median here {typical:.3f} ms): need not reproduce"
            )
        h = headline(round_medians, clean, process, sitting_sd, slow_level)
        if n_clean >= min(MIN_CLEAN_ROUNDS, len(round_medians)) and h.reach is not None and not h.reproduces:
            slow = f"; this sitting's machine ran {slow_level:.1%} above its calm speed" if slow_level >= 0.005 else ""
            reasons.append(
                f"{WIDE_INTERVAL} {h.reach:.1%} (standard errors: its rounds {h.own_sd or 0:.1%}, "
                f"this machine's sittings {sitting_sd:.1%}, stable needs {STABLE_WITHIN:.0%}{slow})"
            )
        fast_spread = fastest_spread(round_medians, clean)
        if n_clean >= 2 and fast_spread > MAX_CLEAN_SPREAD:
            k = min(h.rounds, max(2, fast_count(h.rounds)))
            reasons.append(
                f"its fastest {k} clean rounds are {fast_spread:.0%} apart although the machine was calm: "
                "the cell's own timing wobbles"
            )
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
    return Validity(
        round_spread,
        drift,
        busy_cpu,
        stolen,
        UNSTABLE if reasons else STABLE,
        "; ".join(reasons),
        n_clean,
        floor,
    )


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
