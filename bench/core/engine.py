"""Measuring: the same protocol for every backend, every sample kept, nothing finished ever lost.

Flow per workload (model x resolution x batch): build (seeded) -> open a checked session
(:func:`bench.core.sessions.open_session`: prepare, load, cold first inference, parity). Then every open
workload is timed in ``rounds`` interleaved rounds (round 1 of every model, then round 2, ...), each
round preceded by the machine-speed reference (:mod:`bench.core.machine`). Each finished round is on
disk before the next starts; a row is written when its last round ends.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

import models
from bench.core import environment, machine
from bench.core.errors import BenchError
from bench.core.runtime import Backend, Session, Workload
from bench.core.schema import (
    STATUS_FAILED,
    STATUS_OK,
    UNSTABLE,
    SummaryRow,
    settings_key,
)
from bench.core.sessions import is_out_of_memory, open_session
from bench.core.settings import Settings, build_model
from bench.core.stats import headline_columns, summarize, throughput
from bench.core.store import PartialRow, ResumeState, RunWriter, resume_state
from bench.core.timing import LoopLimits, timed_loop
from bench.core.util import atomic_write_text, one_line
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
    """Parameters (M) and fvcore GMACs per image; GMACs are cached on disk by architecture and size.

    Each cache entry carries a checksum of its key and value, so an edited or foreign entry (or a
    file that is not a JSON object) is recounted and rewritten rather than used. A cache that cannot
    be written costs the caching, not the row (a warning says so).
    """
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    gmacs = None
    if count_flops:
        cache = Path(cache_dir) / "gmacs.json"
        key = hashlib.sha1(f"{model!r}|{resolution}".encode()).hexdigest()[:16]
        try:
            known = json.loads(cache.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            known = {}
        known = {k: v for k, v in known.items() if _valid_gmacs(k, v)} if isinstance(known, dict) else {}
        if key in known:
            gmacs = known[key]["gmacs"]
        else:
            from bench.core.counting import fvcore_gmacs

            gmacs = float(round(fvcore_gmacs(model, resolution), 4))
            known[key] = {"gmacs": gmacs, "check": _check(key, {"gmacs": gmacs})}
            try:
                cache.parent.mkdir(parents=True, exist_ok=True)
                atomic_write_text(cache, json.dumps(known, indent=0, sort_keys=True))
            except OSError as exc:
                print(
                    f"warning: cannot update the GMACs cache {cache} ({exc.strerror or exc}); not cached",
                    file=sys.stderr,
                )
    return {"param_count": round(params / 1e6, 4), "infer_gmacs": gmacs}


def _valid_gmacs(key: str, entry: object) -> bool:
    """A cache entry as :func:`model_facts` writes it: a finite, non-negative float under its checksum."""
    if not isinstance(entry, dict):
        return False
    value = entry.get("gmacs")
    return type(value) is float and math.isfinite(value) and value >= 0 and entry.get("check") == _check(key, entry)


def _check(key: str, entry: dict) -> str:
    return hashlib.sha1(f"{key}:{entry.get('gmacs')!r}".encode()).hexdigest()[:12]


def smaller_batch(batch: int) -> int:
    """Next batch size down on the ladder 1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, ... (0 when none is left)."""
    ladder = sorted({m << k for k in range(32) for m in (2, 3)} | {1})
    lower = [b for b in ladder if b < batch]
    return lower[-1] if lower else 0


@dataclass
class RoundResult:
    samples_ms: list[float]
    record: dict[str, object]


@dataclass
class OpenWorkload:
    """A workload that passed parity and is ready to be timed, round after round."""

    workload: Workload
    row: SummaryRow
    session: Session
    rounds: list[RoundResult] = field(default_factory=list)
    device_ms: list[float] = field(default_factory=list)

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
    """Opens workloads on one backend (prepare, load, cold run, parity), times rounds, builds rows."""

    def __init__(self, settings: Settings, backend: Backend, cache_dir: Path, progress=None) -> None:
        self.settings = settings
        self.backend = backend
        self.cache_dir = cache_dir
        self.progress = progress or _NoProgress()
        self.reference = machine.Reference(settings.threads)

    def phase(self, workload: Workload, name: str) -> None:
        self.progress.set_postfix_str(f"{workload.model_name} b{workload.batch_size} {name}")

    def open(self, model: nn.Module, workload: Workload) -> tuple[dict[str, object], Session | None]:
        """Everything before timing (:func:`~bench.core.sessions.open_session`); the session is None when
        the row is already final (not timed, parity failed)."""
        opened = open_session(
            self.backend,
            model,
            workload,
            self.cache_dir,
            seed=self.settings.seed,
            phase=lambda name: self.phase(workload, name),
        )
        return opened.row, opened.session

    def time_round(self, opened: OpenWorkload) -> RoundResult:
        """One round: the machine-speed reference, a share of the warmup, a share of the timed budget."""
        workload, session = opened.workload, opened.session
        rounds = self.settings.rounds
        self.phase(workload, "reference")
        reference_ms = self.reference.median_ms()
        warm_limits, steady_limits = (
            _share(lim, rounds) for lim in (self.settings.limits_warmup, self.settings.limits_steady)
        )
        self.phase(workload, f"round {len(opened.rounds) + 1}/{rounds}")
        warm = timed_loop(session.run, warm_limits)
        window = machine.CpuWindow()
        steady = timed_loop(session.run, steady_limits, session.timed_run_ms)
        busy, steal = window.finish()
        opened.device_ms += steady.device_ms
        record = {
            "round": len(opened.rounds),
            "iterations": len(steady.samples_ms),
            "median_ms": float(np.median(steady.samples_ms)),
            "reference_ms": reference_ms,
            "busy_cpu": busy,
            "steal": steal,
            "warmup_iterations": len(warm.samples_ms),
            "warmup_s": warm.elapsed_s,
            "measure_s": steady.elapsed_s,
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        result = RoundResult(steady.samples_ms, record)
        opened.rounds.append(result)
        return result

    def finish(self, opened: OpenWorkload) -> tuple[SummaryRow, list[float]]:
        """The row of a workload whose rounds are all done (the session stays open: the caller closes it)."""
        row, workload = opened.row, opened.workload
        samples = opened.samples_ms
        stats = summarize(samples)
        records = [r.record for r in opened.rounds]
        round_medians = [float(r["median_ms"]) for r in records]
        references = [float(r["reference_ms"]) for r in records]
        validity = machine.judge(
            round_medians,
            references,
            [_number(r.get("busy_cpu")) for r in records],
            [_number(r.get("steal")) for r in records],
            len(samples),
        )
        row.set(**stats, **headline_columns(round_medians), **validity.as_columns())
        row.set(
            status=STATUS_OK,
            iterations=len(samples),
            warmup_iterations=int(sum(float(r["warmup_iterations"]) for r in records)),
            warmup_s=sum(float(r["warmup_s"]) for r in records),
            measure_s=sum(float(r["measure_s"]) for r in records),
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

    def open_with_retry(self, model: nn.Module, workload: Workload, retry: bool):
        """On CUDA out-of-memory, step the batch down (and say so) instead of losing the row."""
        requested = workload.batch_size
        while True:
            try:
                row, session = self.open(model, workload)
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
            workload = self.settings.workload(workload.model_name, smaller, workload.resolution)


def _number(value: object) -> float | None:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


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
    row.settings_key = settings_key(row.as_dict(), protocol)
    row.row_id = f"{workload.model_name}|b{workload.batch_size}|r{workload.resolution}|{row.settings_key}"
    return row


def run(
    settings: Settings,
    backend: Backend,
    out: Path,
    cache_dir: Path,
    resume: bool,
    count_flops: bool,
    show_progress: bool,
):
    """Measure every workload on ``backend`` (the command's pick from the registry, named by
    ``settings.backend``); returns (run directory, list of summary rows).

    All workloads are opened first (export, load, parity), then timed in ``settings.rounds``
    interleaved rounds, so slow drifts of a shared machine spread over every model instead of
    landing on whichever model happened to be running. Every round is written as it ends; with
    ``resume``, finished rows are skipped and unfinished ones continue from their last finished round.
    """
    from tqdm import tqdm

    if backend.name != settings.backend:
        raise ValueError(f"settings name backend {settings.backend!r}, but {backend.name!r} was passed")
    env = environment.collect({"backend": settings.backend, "device": settings.device, "threads": settings.threads})
    env_id = str(env["env_id"])
    previous = resume_state(out, env_id) if resume else ResumeState(set(), {})
    done, partial = previous.done, previous.partial
    writer = RunWriter.create(
        out,
        f"{settings.backend}-{settings.device}",
        {**env, "backend_versions": backend.versions(), "external_models": external_cards(settings.model_names)},
    )
    torch.set_num_threads(settings.threads)

    workloads = list(settings.workloads())
    rows: list[SummaryRow] = []
    progress = tqdm(
        total=len(workloads) * (1 + settings.rounds), disable=not show_progress, unit="step", file=sys.stderr
    )
    measurer = Measurer(settings, backend, cache_dir, progress)

    def record(row: SummaryRow, steps: int) -> None:
        row.timestamp = time.strftime("%Y-%m-%dT%H:%M:%S")
        writer.add(row)
        rows.append(row)
        progress.update(steps)

    def record_failure(row: SummaryRow, workload: Workload, exc: Exception, steps: int) -> None:
        row.set(status=STATUS_FAILED, error=one_line(exc))
        progress.write(f"{workload.model_name} batch {workload.batch_size}: failed: {row.error}", file=sys.stderr)
        record(row, steps)

    opened: list[OpenWorkload] = []
    unstable: list[OpenWorkload] = []

    def complete(item: OpenWorkload) -> None:
        """All rounds done: write the row (unstable ones wait for their retry when one is asked for)."""
        row, _ = measurer.finish(item)
        opened.remove(item)
        if row.validity == UNSTABLE and settings.retry_unstable_s > 0:
            unstable.append(item)
            return
        _warn_unstable(progress, row)
        item.session.close()
        record(row, 0)

    built: tuple[tuple[str, int], nn.Module, dict[str, object]] | None = None
    try:
        for workload in workloads:
            row = base_row(settings, workload, env_id)
            if (row.settings_key, env_id) in done:
                progress.write(
                    f"{workload.model_name} batch {workload.batch_size}: already measured (--resume)", file=sys.stderr
                )
                progress.update(1 + settings.rounds)
                continue
            try:
                ident = (workload.model_name, workload.resolution)
                if built is None or built[0] != ident:
                    measurer.phase(workload, "build")
                    model = build_model(settings, *ident)
                    built = (ident, model, model_facts(model, workload.resolution, count_flops, cache_dir))
                row.set(**built[2])
                actual, result, session = measurer.open_with_retry(built[1], workload, settings.oom_retry)
                row.set(**result, infer_batch_size=actual.batch_size)
            except Exception as exc:  # one model failing (export error, OOM) must not end the run
                record_failure(row, workload, exc, 1 + settings.rounds)
                continue
            if session is None:
                record(row, 1 + settings.rounds)
                continue
            item = OpenWorkload(actual, row, session)
            carried = partial.get(str(row.row_id))
            if carried is not None:
                _carry_over(writer, item, carried, settings.rounds)
                progress.write(
                    f"{workload.model_name} batch {workload.batch_size}: {len(item.rounds)} round(s) resumed",
                    file=sys.stderr,
                )
                progress.update(len(item.rounds))
            progress.update(1)
            opened.append(item)
            if len(item.rounds) >= settings.rounds:  # every round was on disk already: only the row is missing
                complete(item)
        built = None
        for _ in range(settings.rounds):
            for item in list(opened):
                if len(item.rounds) >= settings.rounds:
                    continue
                try:
                    result = measurer.time_round(item)
                    writer.add_round(item.row, result.record, result.samples_ms)
                except BenchError:  # the results cannot be written (a full disk): stop, saying what was kept
                    raise
                except Exception as exc:
                    item.session.close()
                    opened.remove(item)
                    record_failure(item.row, item.workload, exc, settings.rounds - len(item.rounds) + 1)
                    continue
                progress.update(1)
                if len(item.rounds) == settings.rounds:
                    complete(item)
        _retry_unstable(measurer, writer, unstable, settings, progress, record)
    except KeyboardInterrupt:
        rounds = sum(len(item.rounds) for item in opened)
        progress.write(
            f"interrupted: {len(rows)} finished row(s) and {rounds} finished round(s) of unfinished rows are saved "
            f"in {writer.directory}; run the same command with --resume to continue from there",
            file=sys.stderr,
        )
        raise
    finally:
        for item in opened + unstable:
            item.session.close()
        progress.close()
    return writer.directory, rows


def _carry_over(writer: RunWriter, item: OpenWorkload, carried: PartialRow, rounds: int) -> None:
    """Rounds finished by an interrupted run: copied into this run (so it is self-contained) and kept."""
    for record in carried.records[:rounds]:
        index = int(record["round"])
        samples = [float(s) for s in carried.samples.get(index, [])]
        result = RoundResult(samples, {**record, "round": index})
        writer.add_round(item.row, result.record, samples)
        item.rounds.append(result)


def _warn_unstable(progress, row: SummaryRow) -> None:
    if row.validity == UNSTABLE:
        progress.write(
            f"warning: {row.model} batch {row.infer_batch_size} is unstable: {row.validity_reason}", file=sys.stderr
        )


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


def _retry_unstable(measurer: Measurer, writer: RunWriter, items, settings: Settings, progress, record) -> None:
    """Re-time unstable rows (all rounds again) while the time budget lasts, at most
    :data:`MAX_RETRY_ATTEMPTS` times each and only where :func:`retry_can_help`; keep the steadier attempt.

    An interrupt keeps every row already measured (the best attempt so far of each) before it propagates.
    """
    deadline = time.perf_counter() + settings.retry_unstable_s
    pending = list(items)
    best: SummaryRow | None = None
    try:
        while pending:
            item = pending[0]
            best = SummaryRow(**measurer.finish(item)[0].as_dict())
            base_id, attempt = str(best.row_id), 1
            why_not = retry_can_help(best)
            if why_not is not None:
                progress.write(f"{best.model} batch {best.infer_batch_size}: not re-timed: {why_not}", file=sys.stderr)
            while (
                why_not is None
                and best.validity == UNSTABLE
                and attempt <= MAX_RETRY_ATTEMPTS
                and time.perf_counter() < deadline
            ):
                attempt += 1
                item.rounds, item.device_ms = [], []
                item.row.row_id = f"{base_id}#{attempt}"  # the attempt's samples stay apart from the first's
                for _ in range(settings.rounds):
                    result = measurer.time_round(item)
                    writer.add_round(item.row, result.record, result.samples_ms)
                row = SummaryRow(**measurer.finish(item)[0].as_dict())
                if row.validity != UNSTABLE or (row.round_spread or math.inf) < (best.round_spread or math.inf):
                    best = row
            _warn_unstable(progress, best)
            item.session.close()
            pending.pop(0)
            record(best, 0)
            best = None
    except KeyboardInterrupt:  # every row with finished rounds is kept: the best attempt so far, else the first
        if pending:
            record(best if best is not None else SummaryRow(**measurer.finish(pending[0])[0].as_dict()), 0)
            for item in pending[1:]:
                record(SummaryRow(**measurer.finish(item)[0].as_dict()), 0)
        raise
