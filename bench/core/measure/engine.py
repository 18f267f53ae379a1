"""Measuring one cell: the same protocol for every backend, every sample kept.

Per workload (model x resolution x batch): build (seeded) -> open a checked session
(:func:`bench.core.interface.sessions.open_session`: prepare, load, cold first inference, parity); then, round
by round, the machine-speed reference (:mod:`bench.core.measure.machine`), a share of the warmup and the
cell's fixed number of timed iterations (:func:`calibrate`). Which cells are timed when, and how
rounds reach the disk, is the sitting's (:mod:`bench.core.measure.sitting`); a worker process hosts the cells
of one runtime (:mod:`bench.core.measure.worker`)."""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import models
from bench.core.interface.runtime import Backend, Session, Workload
from bench.core.interface.sessions import is_out_of_memory, open_session
from bench.core.interface.settings import Settings
from bench.core.measure import machine
from bench.core.measure.stats import SITTING_SD, headline_columns, summarize, throughput
from bench.core.measure.timing import LoopLimits, timed_loop
from bench.core.records.schema import (
    STATUS_OK,
    UNSTABLE,
    RoundRecord,
    SummaryRow,
    finite_number,
    identify,
)
from bench.core.util import timestamp
from models import external

# ------------------------------------------------------------------------------------------- measuring


def external_cards(names) -> dict[str, dict[str, object]]:
    """The published facts of the external networks among ``names`` (a spec's top-1, family, citation),
    kept with the run so ``report`` shows them without the spec being passed again."""
    keep = ("family", "variant", "default_resolution", "published_params_m", "published_gmacs", "top1",
            "top1_source", "citation", "display_name")  # fmt: skip
    return {
        name: {k: v for k, v in models.get_card(name).as_row().items() if k in keep}
        for name in names
        if external.source_digest(name) is not None
    }


def model_facts(model: nn.Module, resolution: int, count_flops: bool, cache_dir: Path) -> dict[str, object]:
    """Parameters (M, all of them: :func:`~bench.core.measure.counting.count_parameters`, as ``bench flops``
    counts) and fvcore GMACs per image (:func:`~bench.core.measure.counting.cached_gmacs`, cached on disk)."""
    from bench.core.measure import counting

    gmacs = counting.cached_gmacs(model, resolution, cache_dir) if count_flops else None
    return {"param_count": round(counting.count_parameters(model) / 1e6, 4), "infer_gmacs": gmacs}


def smaller_batch(batch: int) -> int:
    """Next batch size down on the ladder 1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, ... (0 when none is left)."""
    ladder = sorted({m << k for k in range(32) for m in (2, 3)} | {1})
    lower = [b for b in ladder if b < batch]
    return lower[-1] if lower else 0


@dataclass
class RoundResult:
    samples_ms: list[float]
    record: RoundRecord


@dataclass
class OpenWorkload:
    """A workload that passed parity and is ready to be timed, round after round."""

    workload: Workload
    row: SummaryRow
    session: Session
    rounds: list[RoundResult] = field(default_factory=list)
    device_ms: list[float] = field(default_factory=list)
    iterations: int | None = None
    """Timed iterations of every round, fixed at the first round's warmup (:func:`calibrate`)."""

    @property
    def samples_ms(self) -> list[float]:
        return [ms for r in self.rounds for ms in r.samples_ms]


class _NoProgress:
    def set_postfix_str(self, text: str) -> None:
        pass

    def update(self, n: int = 1) -> None:
        pass

    def write(self, text: str, file=None) -> None:
        print(text, file=file or sys.stderr)


class Measurer:
    """Opens workloads on one backend (prepare, load, cold run, parity), times rounds, builds rows.

    ``cpu_window`` (what other processes did during a round) is the seam where tests put a CPU sample of
    their own, so the validity logic is checked exactly, whatever else this machine is doing.
    """

    cpu_window = staticmethod(machine.CpuWindow)

    def __init__(self, settings: Settings, backend: Backend, cache_dir: Path, progress=None) -> None:
        self.settings = settings
        self.backend = backend
        self.cache_dir = cache_dir
        self.progress = progress or _NoProgress()
        self.reference = machine.Reference(settings.threads)

    def phase(self, workload: Workload, name: str) -> None:
        self.progress.set_postfix_str(f"{workload.model_name} b{workload.batch_size} {name}")

    def open(
        self, model: nn.Module, workload: Workload, check: bool = True
    ) -> tuple[dict[str, object], Session | None]:
        """Everything before timing (:func:`~bench.core.interface.sessions.open_session`); the session is None when
        the row is already final (not timed, parity failed). ``check=False``: no parity (a further
        process of a runtime, loading the artifact its first process checked)."""
        opened = open_session(
            self.backend,
            model,
            workload,
            self.cache_dir,
            seed=self.settings.seed,
            phase=lambda name: self.phase(workload, name),
            check=check,
        )
        return opened.row, opened.session

    def time_round(self, opened: OpenWorkload) -> RoundResult:
        """One round: the machine-speed reference, a share of the warmup, then the cell's fixed count of
        timed iterations (calibrated from the first round's warmup, see :func:`calibrate`)."""
        workload, session = opened.workload, opened.session
        rounds = self.settings.rounds
        self.phase(workload, "reference")
        reference_ms = self.reference.median_ms()
        self.phase(workload, f"round {len(opened.rounds) + 1}/{rounds}")
        warm = timed_loop(session.run, _share(self.settings.limits_warmup, rounds))
        if opened.iterations is None:
            opened.iterations = calibrate(warm.samples_ms, self.settings.limits_steady, rounds)
        window = self.cpu_window()
        steady = timed_loop(session.run, LoopLimits(opened.iterations, 0.0, math.inf), session.timed_run_ms)
        busy, steal = window.finish()
        opened.device_ms += steady.device_ms
        record = RoundRecord(
            round=len(opened.rounds),
            iterations=len(steady.samples_ms),
            median_ms=float(np.median(steady.samples_ms)),
            reference_ms=reference_ms,
            busy_cpu=busy,
            steal=steal,
            warmup_iterations=len(warm.samples_ms),
            warmup_s=warm.elapsed_s,
            measure_s=steady.elapsed_s,
            timestamp=timestamp(),
        )
        result = RoundResult(steady.samples_ms, record)
        opened.rounds.append(result)
        return result

    @staticmethod
    def finish(
        opened: OpenWorkload, floor: float | None = None, sitting_sd: float = SITTING_SD, slow_level: float = 0.0
    ) -> tuple[SummaryRow, list[float]]:
        """The row of a workload whose rounds are all done (the session stays open: the caller closes it).

        ``floor`` is the machine-speed reference at the machine's calm speed (:class:`~bench.core.measure.machine.
        MachineFloor`): rounds whose reference lies near it are the clean ones the headline rests on.
        ``sitting_sd``: how far this machine's sittings differ (:mod:`bench.core.measure.sitting_history`);
        ``slow_level``: how far the sitting's own fast level stayed above ``floor`` (:meth:`MachineFloor.level`).
        """
        row, workload = opened.row, opened.workload
        samples = opened.samples_ms
        stats = summarize(samples)
        records = [r.record for r in opened.rounds]
        round_medians = [r.median_ms for r in records]
        references = [r.reference_ms for r in records]
        processes = [int(r.process or 0) for r in records]
        validity = machine.judge(
            round_medians,
            references,
            [finite_number(r.busy_cpu) for r in records],
            [finite_number(r.steal) for r in records],
            len(samples),
            floor,
            processes,
            sitting_sd,
            slow_level,
        )
        clean = machine.clean_mask(references, floor, len(records))
        headline = headline_columns(round_medians, clean, processes, sitting_sd, slow_level)
        row.set(**stats, **headline, **validity.as_columns())
        row.set(round_processes=json.dumps(processes))
        row.set(
            status=STATUS_OK,
            iterations=len(samples),
            warmup_iterations=sum(r.warmup_iterations or 0 for r in records),
            warmup_s=sum(r.warmup_s or 0.0 for r in records),
            measure_s=sum(r.measure_s or 0.0 for r in records),
            rounds=len(records),
            round_medians_ms=machine.json_list(round_medians),
            reference_ms=machine.json_list(references),
            infer_step_time=stats["latency_mean_ms"],
            infer_samples_per_sec=throughput(workload.batch_size, stats["latency_mean_ms"]),
            throughput_median_ips=throughput(workload.batch_size, stats["latency_median_ms"]),
        )
        if opened.device_ms:
            row.cuda_event_median_ms = float(np.median(opened.device_ms))
        return row, samples

    def measure(self, model: nn.Module, workload: Workload) -> tuple[SummaryRow, list[float]]:
        """Open and time one workload on its own (all rounds back to back), without writing anything."""
        row = SummaryRow(model=workload.model_name, backend=self.backend.name, infer_batch_size=workload.batch_size)
        result, session = self.open(model, workload)
        row.set(**result)
        if session is None:
            return row, []
        opened = OpenWorkload(workload, row, session)
        try:
            for _ in range(self.settings.rounds):
                self.time_round(opened)
            return self.finish(opened)
        finally:
            session.close()

    def open_with_retry(self, model: nn.Module, workload: Workload, retry: bool, check: bool = True):
        """On CUDA out-of-memory, step the batch down (and say so) instead of losing the row."""
        requested = workload.batch_size
        while True:
            try:
                row, session = self.open(model, workload, check)
                if workload.batch_size != requested:
                    row["error"] = f"batch reduced from {requested} after CUDA out-of-memory"
                return workload, row, session
            except (RuntimeError, MemoryError) as exc:
                smaller = smaller_batch(workload.batch_size)
                if not (retry and workload.device == "cuda" and is_out_of_memory(exc) and smaller):
                    raise
                self.progress.write(
                    f"{workload.model_name}: out of memory at batch {workload.batch_size}, retrying at {smaller}",
                    file=sys.stderr,
                )
            # outside the except block, so the failed attempt's tensors (held by the traceback) are freed
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            workload = self.settings.workload(
                workload.model_name, smaller, workload.resolution, precision=workload.precision
            )


def calibrate(warmup_ms: list[float], steady: LoopLimits, rounds: int) -> int:
    """Timed iterations per round for a cell, fixed once from its first warmup and kept for every round.

    Every round then weighs the same in the row (a round that runs in a fast phase of the machine
    does not contribute more samples). The count is the round's share of ``--iters`` or of
    ``--min-time`` at the warmup's per-iteration time, whichever is more, capped at the round's share
    of ``--max-time``. The per-iteration time is the median of the later half of the warmup (its
    first calls are the coldest).
    """
    share = _share(steady, rounds)
    later = warmup_ms[len(warmup_ms) // 2 :] or [1.0]
    per_iteration_s = max(float(np.median(later)) / 1e3, 1e-6)
    wanted = max(share.min_iters, math.ceil(share.min_time_s / per_iteration_s))
    cap = max(1, math.floor(share.max_time_s / per_iteration_s))
    return max(1, min(wanted, cap))


def _share(limits: LoopLimits, rounds: int) -> LoopLimits:
    """Split a loop budget over ``rounds`` (at least one iteration per round)."""
    return LoopLimits(
        max(1, math.ceil(limits.min_iters / rounds)), limits.min_time_s / rounds, limits.max_time_s / rounds
    )


def base_row(settings: Settings, workload: Workload, env_id: str) -> SummaryRow:
    row = SummaryRow(
        model=workload.model_name,
        family=models.get_card(workload.model_name).family,
        infer_img_size=workload.resolution,
        infer_batch_size=workload.batch_size,
        backend=settings.backend,
        device=workload.device,
        precision=workload.precision,
        calibration=workload.calibration.describe() if workload.quantized else "",
        threads=workload.threads,
        channels_last=workload.channels_last,
        compile=workload.compile,
        backend_options=json.dumps(dict(workload.options), sort_keys=True),
        weights=settings.weights,
        single_head=settings.single_head,
        env_id=env_id,
    )
    source = external.source_digest(workload.model_name)  # an edited external file is a new measurement
    protocol = settings.protocol if source is None else {**settings.protocol, "source": source}
    identify(row, protocol)
    return row


MAX_RETRY_ATTEMPTS = 3
"""Re-timings of one unstable row at most: a row still unstable after three is reported as it is."""


def retry_can_help(row: SummaryRow) -> str | None:
    """None when re-timing ``row`` may make it stable; else why not (a retry times it the same way).

    Too few iterations is a property of the protocol (``--iters``, ``--min-time``, ``--max-time``), not of
    the machine's mood: re-timing would time as few again.
    """
    iterations = row.iterations if isinstance(row.iterations, int | float) else None
    if iterations is not None and iterations < machine.MIN_ITERATIONS:
        return (
            f"only {int(iterations)} iterations, and a retry would time as few "
            f"(raise --iters or --min-time/--max-time to reach {machine.MIN_ITERATIONS})"
        )
    return None


def retry_unstable(
    items: list[Any],
    finish: Callable[[Any], SummaryRow],
    retime: Callable[[Any, str], bool],
    record: Callable[[Any, SummaryRow], None],
    budget_s: float,
    progress: Any,
    clock: Callable[[], float] = time.perf_counter,
) -> None:
    """The ``--retry-unstable`` policy: re-time unstable rows (all rounds again, via ``retime(item,
    attempt_row_id)``, which says False when the cell died meanwhile) while the budget lasts, at most
    :data:`MAX_RETRY_ATTEMPTS` times each and only where :func:`retry_can_help`; ``record`` the steadier
    attempt. An interrupt records every row already measured (its best attempt so far) before it propagates.
    ``clock`` measures the budget (tests give one of their own).
    """
    deadline = clock() + budget_s
    pending = list(items)
    best: SummaryRow | None = None
    try:
        while pending:
            item = pending[0]
            best = finish(item)
            base_id, attempt = str(best.row_id), 1
            why_not = retry_can_help(best)
            if why_not is not None:
                progress.write(f"{best.model} batch {best.infer_batch_size}: not re-timed: {why_not}", file=sys.stderr)
            alive = True
            while (
                alive
                and why_not is None
                and best.validity == UNSTABLE
                and attempt <= MAX_RETRY_ATTEMPTS
                and clock() < deadline
            ):
                attempt += 1
                alive = retime(item, f"{base_id}#{attempt}")  # the attempt's samples stay apart from the first's
                if alive:
                    row = finish(item)
                    if row.validity != UNSTABLE or (row.round_spread or math.inf) < (best.round_spread or math.inf):
                        best = row
            pending.pop(0)
            if alive:
                record(item, best)
            best = None
    except KeyboardInterrupt:  # every row with finished rounds is kept: the best attempt so far, else the first
        if pending:
            record(pending[0], best if best is not None else finish(pending[0]))
            for item in pending[1:]:
                record(item, finish(item))
        raise
