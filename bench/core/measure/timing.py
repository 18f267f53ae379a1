"""The timed loops: the only place where latency is measured, identical for every backend."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class LoopLimits:
    """Run at least ``min_iters`` iterations AND ``min_time_s`` seconds, but stop at ``max_time_s``."""

    min_iters: int
    min_time_s: float
    max_time_s: float


@dataclass
class LoopResult:
    samples_ms: list[float]
    device_ms: list[float]
    elapsed_s: float


def timed_loop(
    run: Callable[[], None],
    limits: LoopLimits,
    device_time_ms: Callable[[], float | None] | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> LoopResult:
    """Time each call of ``run`` with ``clock`` (``perf_counter``); the garbage collector is paused meanwhile.

    ``run`` must block until the inference is complete (CUDA sessions synchronize inside it).
    ``device_time_ms`` (CUDA events) is read after each call and kept alongside the wall time.
    ``clock`` is there for tests, which give a clock of their own to check the loop's limits exactly.
    """
    samples: list[float] = []
    device: list[float] = []
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        start = clock()
        while True:
            t0 = clock()
            run()
            t1 = clock()
            samples.append((t1 - t0) * 1e3)
            if device_time_ms is not None and (ms := device_time_ms()) is not None:
                device.append(ms)
            elapsed = t1 - start
            if (len(samples) >= limits.min_iters and elapsed >= limits.min_time_s) or elapsed >= limits.max_time_s:
                break
    finally:
        if gc_was_enabled:
            gc.enable()
    return LoopResult(samples, device, elapsed)
