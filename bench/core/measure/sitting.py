"""A sitting: every (runtime, model, batch) cell of a run measured together, into one results folder.

Runtimes measured one after another each meet a different phase of a shared machine (the whole VM
can run 20-40% slower for minutes), so their ratio partly measures the phase. A sitting measures
them side by side instead:

1. **Open, overlapped.** Every runtime gets its own worker process (:mod:`bench.core.measure.worker`),
   started once. All workers open their cells at the same time (build, export/convert -- cached --,
   load, first inference, parity): conversions need no quiet machine, so they overlap each other,
   while this process counts each model's parameters and GMACs once.
2. **Time, one at a time.** Then ``rounds`` rounds, each over every open cell of every runtime, in
   an order shuffled per round from a recorded seed (``order_seed`` and ``round_order`` in
   ``environment.json``), so every cell sees the same mix of machine phases. Only one worker times
   at a time; the others block on their pipes, and the CPU they use meanwhile is recorded with each
   round (``idle_cpu``). Every round of a cell times the same number of iterations, fixed at its
   first warmup (:func:`bench.core.measure.engine.calibrate`), so no phase weighs more.
3. **Nothing finished is lost.** Each round is on disk before the next starts; a row is written when
   its last round ends. A worker that dies (a crash, ``kill -9``) fails only its own runtime's cells,
   with the reason; Ctrl-C keeps every finished round; ``--resume`` times only what is missing.
"""

from __future__ import annotations

import contextlib
import itertools
import secrets
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from bench.core.errors import BenchError, stop_word
from bench.core.interface import settings as model_settings  # build_model through the module: tests patch it
from bench.core.interface.runtime import Backend
from bench.core.interface.runtime import registry as runtime_registry
from bench.core.interface.settings import Settings
from bench.core.measure import engine, machine, pause
from bench.core.measure.engine import OpenWorkload, RoundResult
from bench.core.measure.sitting_history import SittingHistory, SittingSpread
from bench.core.measure.stats import (
    MIN_CLEAN_ROUNDS,
    SITTING_SD,
    STABLE_WITHIN,
    Headline,
    can_reproduce,
    headline,
    only_wide,
)
from bench.core.measure.worker import (
    InlineWorker,
    Open,
    OpenAnswer,
    ProcessWorker,
    Reply,
    RoundAnswer,
    Time,
    WorkerDied,
    wait_any,
)
from bench.core.records import environment
from bench.core.records.cell import CellKey
from bench.core.records.schema import STABLE, STATUS_FAILED, STATUS_OK, UNSTABLE, SummaryRow
from bench.core.records.store import PartialRow, ResumeState, RunWriter, resume_state
from bench.core.util import one_line, timestamp


@dataclass(frozen=True)
class Runtime:
    """One runtime of a sitting as the command resolved it: its settings (with its own options), the
    ``"module:class"`` its worker imports, and its package versions (recorded in the environment)."""

    settings: Settings
    spec: str
    versions: dict[str, str] = field(default_factory=dict)
    backend: Backend | None = None
    """The backend itself, for an inline sitting (a worker process imports ``spec`` instead)."""

    @property
    def name(self) -> str:
        return self.settings.backend


@dataclass
class OpenCell:
    """One (runtime, model, batch) of the sitting while it is timed, as this process tracks it (its workers and
    rounds so far); once written, it is read back as a :class:`bench.core.records.cell.Cell`."""

    key: str
    """``backend/model/bN/rRES/precision``: names the cell in the recorded round order and in requests."""
    workers: dict[int, Any]
    """The runtime's worker processes that hold this cell open, by process index (the first opens it)."""
    item: OpenWorkload
    opened: bool = False
    done: bool = False

    @property
    def worker(self) -> Any:
        """The process that opens the cell (and reports its facts)."""
        return self.workers[min(self.workers)]

    def next_process(self) -> tuple[int, Any]:
        """The process that times the cell's next round: they take turns, in index order."""
        alive = sorted(self.workers)
        index = alive[len(self.item.rounds) % len(alive)]
        return index, self.workers[index]


BUDGET_CLOCK = time.perf_counter
"""What spends ``--budget`` (tests give a clock of their own)."""


def precisions_of(runtimes: list[Runtime]) -> tuple[str, ...]:
    """Every precision some runtime of the sitting runs, in ``--precision`` order."""
    return tuple(dict.fromkeys(p for runtime in runtimes for p in runtime.settings.precisions))


def cell_key(backend: str, workload: Any) -> str:
    return f"{backend}/{workload.model_name}/b{workload.batch_size}/r{workload.resolution}/{workload.precision}"


def plan_rounds(keys: list[str], first_round: dict[str, int], rounds: int, seed: int) -> list[list[str]]:
    """Per round, the cells that time in it, shuffled from ``seed`` (a cell resumed with k finished
    rounds joins from round k on). The same keys and seed give the same plan."""
    rng = np.random.default_rng(seed)
    plan = []
    for index in range(rounds):
        members = sorted(k for k in keys if first_round.get(k, 0) <= index)
        plan.append([members[i] for i in rng.permutation(len(members))])
    return plan


class Sitting:
    def __init__(
        self,
        runtimes: list[Runtime],
        writer: RunWriter,
        env_id: str,
        progress: Any,
        floor: machine.MachineFloor | None = None,
        spread: SittingSpread | None = None,
    ) -> None:
        self.runtimes = runtimes
        self.machine_floor = floor or machine.MachineFloor("")
        self.spread = spread or SittingSpread(SITTING_SD)
        """How far this machine's sittings differ (enters every interval and the stable verdict)."""
        self.settings = runtimes[0].settings  # the protocol (rounds, budgets, seed) is shared
        self.precisions = precisions_of(runtimes)
        self.writer = writer
        self.env_id = env_id
        self.progress = progress
        self.rows: list[SummaryRow] = []
        self.cells: dict[str, OpenCell] = {}
        self.unstable: list[OpenCell] = []
        self.last_timed: dict[str, int] = {}
        """Per cell, when its latest round ended (a sequence number): rows left for the end follow it."""
        self.resumes: set[str] = set()
        """The runs this sitting continues (``--resume``): their finished rows and rounds are part of it."""

    # ------------------------------------------------------------------------------------- recording

    def record(self, row: SummaryRow, steps: int) -> None:
        row.timestamp = timestamp()
        with _whole_against_ctrl_c():
            self.writer.add(row)
            self.rows.append(row)
        self.progress.update(steps)
        pause.point("row")

    def fail(self, cell: OpenCell, reason: str) -> None:
        """The cell ends as a failed row with ``reason`` (its finished rounds stay in rounds.csv)."""
        if cell.done:
            return
        cell.done = True
        row = cell.item.row
        row.set(status=STATUS_FAILED, error=reason)
        self.progress.write(f"{cell.key}: failed: {reason}", file=sys.stderr)
        self.record(row, (0 if cell.opened else 1) + max(self.settings.rounds - len(cell.item.rounds), 0))

    def fail_runtime(self, worker: Any, reason: str, where: str) -> None:
        """A dead worker: its runtime's unfinished cells go on in the runtime's other processes; a cell
        left with none fails with the reason."""
        for cell in self.cells.values():
            if cell.done:
                continue
            for index, other in list(cell.workers.items()):
                if other is worker:
                    del cell.workers[index]
            if not cell.workers:
                self.fail(cell, f"{reason} {where}")

    def floor(self) -> float | None:
        """The machine's calm-speed reference as known now: this sitting's references and earlier sittings'."""
        return self.machine_floor.of(self.references())

    def slow_level(self) -> float:
        """How far this sitting's own fast level stays above the machine's floor (0: it reached it)."""
        return self.machine_floor.level(self.references())

    def references(self) -> list[float]:
        return [r.record.reference_ms for c in self.cells.values() for r in c.item.rounds]

    def clean_rounds(self, cell: OpenCell, floor: float | None) -> int:
        references = [r.record.reference_ms for r in cell.item.rounds]
        return sum(machine.clean_mask(references, floor, len(references)))

    def own_headline(self, cell: OpenCell, floor: float | None, slow_level: float = 0.0) -> Headline:
        """The cell's headline as its rounds stand now (``slow_level``: :meth:`slow_level`)."""
        records = [r.record for r in cell.item.rounds]
        clean = machine.clean_mask([r.reference_ms for r in records], floor, len(records))
        medians, processes = [r.median_ms for r in records], [int(r.process or 0) for r in records]
        return headline(medians, clean, processes, self.spread.sd, slow_level)

    def settled(self, cell: OpenCell, floor: float | None, slow_level: float = 0.0) -> bool:
        """Whether more rounds cannot help: the cell has its clean rounds and an interval within the stable
        width, or this machine's sittings differ too much for any cell to reach it (more rounds would only
        spend the budget)."""
        if self.clean_rounds(cell, floor) < min(MIN_CLEAN_ROUNDS, self.settings.rounds):
            return False
        return not can_reproduce(self.spread.sd) or self.own_headline(cell, floor, slow_level).reproduces

    def headlines(self) -> dict[str, tuple[float, float]]:
        """What the machine's history keeps of this sitting: the headline and its own error of every
        finished cell with enough clean rounds (judged against the final floor) and no fault but, at
        most, its interval's width (a cell timed beside other work says nothing about the machine)."""
        floor = self.floor()
        out = {}
        for cell in self.cells.values():
            row = cell.item.row
            sound = row.validity == STABLE or only_wide(row.validity_reason)
            if cell.done and row.status == STATUS_OK and sound and self.clean_rounds(cell, floor) >= MIN_CLEAN_ROUNDS:
                h = self.own_headline(cell, floor)
                if h.own_sd is not None:
                    out[CellKey.of(cell.item.row.as_dict()).digest()] = (h.value, h.own_sd)
        return out

    def complete(self, cell: OpenCell) -> None:
        """All rounds done: write the row (an unstable one waits for its retry when one is asked for)."""
        row, _ = engine.Measurer.finish(cell.item, self.floor(), self.spread.sd, self.slow_level())
        if row.validity == UNSTABLE and self.settings.retry_unstable_s > 0 and cell not in self.unstable:
            self.unstable.append(cell)
            return
        _warn_unstable(self.progress, row)
        cell.done = True
        self.record(row, 0)

    # ------------------------------------------------------------------------------------- opening

    def open_all(self, workers: dict[str, list[Any]], resume: ResumeState, count_flops: bool, cache_dir: Path) -> None:
        """Ask every runtime's first worker to open its cells (they work at once), counting each model's
        facts here meanwhile; then the runtime's other workers open the cells that opened (their exports
        are cached by then)."""
        done, partial = resume.done, resume.partial
        pending: dict[Any, list[OpenCell]] = {w[0]: [] for w in workers.values()}
        for name, resolution, batches in _models(self.settings):
            cells = []
            for batch, runtime, precision in itertools.product(batches, self.runtimes, self.precisions):
                if precision in runtime.settings.precisions:
                    workload = runtime.settings.workload(name, batch, resolution, precision=precision)
                    row = engine.base_row(runtime.settings, workload, self.env_id)
                    key = cell_key(runtime.name, workload)
                    if (row.settings_key, self.env_id) in done:
                        self.resumes.add(done[row.settings_key, self.env_id])
                        self.progress.write(f"{key}: already measured (--resume)", file=sys.stderr)
                        self.progress.update(1 + self.settings.rounds)
                        continue
                    first = workers[runtime.name][0]
                    cells.append(OpenCell(key, {0: first}, OpenWorkload(workload, row, None)))  # type: ignore[arg-type]
            if not cells:
                continue
            self.progress.set_postfix_str(f"{name} facts")
            try:
                model = model_settings.build_model(self.settings, name, resolution)
                facts = engine.model_facts(model, resolution, count_flops, cache_dir)
                del model
            except Exception as exc:  # one model failing must not end the sitting
                for cell in cells:
                    self.cells[cell.key] = cell
                    self.fail(cell, one_line(exc))
                continue
            for cell in cells:
                self.cells[cell.key] = cell
                cell.item.row.set(**facts)
                try:
                    cell.worker.ask(cell.key, Open(cell.key, cell.item.workload))
                    pending[cell.worker].append(cell)
                except WorkerDied as exc:
                    self.fail(cell, f"{exc} before it opened this cell")
        self.progress.set_postfix_str("opening")
        self._collect({w: [(c, 0) for c in cells] for w, cells in pending.items()}, workers, partial)

    def _collect(
        self,
        pending: dict[Any, list[tuple[OpenCell, int]]],
        workers: dict[str, list[Any]],
        partial: dict[str, PartialRow],
    ) -> None:
        """The answers to ``open`` as they come, in each worker's order. A cell the runtime's first process
        opened is then opened by its further processes at once (its export is cached by then), overlapping
        the other cells' opening; a further process that cannot open it leaves it to the others."""
        waiting = [w for w, entries in pending.items() if entries]
        while waiting:
            for worker in wait_any(waiting):
                cell, index = pending[worker].pop(0)
                try:
                    reply = worker.answer()
                except WorkerDied as exc:
                    self._lost([(cell, index), *pending[worker]], str(exc))
                    pending[worker] = []
                else:
                    if index == 0:
                        self._opened(cell, reply, partial)
                        if cell.opened and not cell.done:
                            self._ask_siblings(cell, workers[cell.item.row.backend][1:], pending, waiting)
                    elif reply.ok and reply.value.timed:
                        cell.workers[index] = worker
                    else:
                        why = reply.value if not reply.ok else "it could not time"
                        self.progress.write(f"{cell.key}: process {index} did not open it ({why})", file=sys.stderr)
                if not pending[worker] and worker in waiting:
                    waiting.remove(worker)

    def _lost(self, entries: list[tuple[OpenCell, int]], reason: str) -> None:
        """A worker died while opening: the cells it opened first fail; further processes' opens are noted."""
        for n, (cell, index) in enumerate(entries):
            if index > 0:
                self.progress.write(f"{cell.key}: {reason} while opening it in process {index}", file=sys.stderr)
            else:
                self.fail(cell, f"{reason} {'while opening this cell' if n == 0 else 'before it opened this cell'}")

    @staticmethod
    def _ask_siblings(
        cell: OpenCell, siblings: list[Any], pending: dict[Any, list[tuple[OpenCell, int]]], waiting: list
    ) -> None:
        for index, sibling in enumerate(siblings, start=1):
            try:
                sibling.ask(cell.key, Open(cell.key, cell.item.workload, check=False))  # process 0 checked parity
            except WorkerDied:
                continue
            pending.setdefault(sibling, []).append((cell, index))
            if sibling not in waiting:
                waiting.append(sibling)

    def _opened(self, cell: OpenCell, reply: Reply, partial: dict[str, PartialRow]) -> None:
        if not reply.ok:
            self.fail(cell, str(reply.value))
            return
        answer: OpenAnswer = reply.value
        item = cell.item
        item.workload = answer.workload
        item.row.set(**answer.result, infer_batch_size=item.workload.batch_size)
        if not answer.timed:  # parity failed, or this platform cannot time: the row is final
            cell.done = True
            self.record(item.row, 1 + self.settings.rounds)
            return
        cell.opened = True
        self.progress.update(1)
        carried = partial.get(str(item.row.row_id))
        if carried is not None:
            _carry_over(self.writer, item, carried, self.settings.rounds)
            self.resumes.add(carried.run_id)
            self.progress.write(f"{cell.key}: {len(item.rounds)} round(s) resumed", file=sys.stderr)
            self.progress.update(len(item.rounds))

    # ------------------------------------------------------------------------------------- timing

    def time_cell(self, cell: OpenCell, round_index: int, workers: list[Any], complete: bool = True) -> None:
        """One round of one cell in the process whose turn it is, while every other worker waits; the round
        is on disk when this returns, and so is the row when the cell needs no more rounds."""
        item = cell.item
        process, worker = cell.next_process()
        self.progress.set_postfix_str(f"{cell.key} round {round_index + 1}/{self.settings.rounds} p{process}")
        others = [w for w in workers if w is not worker]
        before = [w.cpu_seconds() for w in others]
        start = time.perf_counter()
        try:
            worker.ask(cell.key, Time(cell.key, round_index, item.iterations))
            reply = worker.answer()
        except WorkerDied as exc:
            self.fail_runtime(worker, str(exc), f"while timing {cell.key}")
            return
        wall = time.perf_counter() - start
        after = [w.cpu_seconds() for w in others]
        if not reply.ok:
            self.fail(cell, str(reply.value))
            return
        answer: RoundAnswer = reply.value
        used = [b - a for a, b in zip(before, after, strict=True) if a is not None and b is not None]
        record = replace(answer.record, idle_cpu=sum(used) / wall if used and wall > 0 else None, process=process)
        item.iterations = answer.iterations
        item.device_ms += answer.device_ms
        result = RoundResult(list(answer.samples), record)
        with _whole_against_ctrl_c():  # on disk and counted, or neither
            self.writer.add_round(item.row, result.record, result.samples_ms)  # a full disk stops the sitting here
            item.rounds.append(result)
        self.last_timed[cell.key] = max(self.last_timed.values(), default=0) + 1
        self.progress.update(1)
        pause.point("round")
        if complete:
            self.complete_if_enough(cell)

    def complete_if_enough(self, cell: OpenCell) -> None:
        """Write the cell's row as soon as it has its rounds and (with a budget) is :meth:`settled`, judged
        against the floor as the sitting knows it then; the others wait for the extra passes."""
        if cell.done or cell in self.unstable or len(cell.item.rounds) < self.settings.rounds:
            return
        if self.settings.budget_s > 0 and not self.settled(cell, self.floor(), self.slow_level()):
            return
        self.complete(cell)

    def time_all(self, plan: list[list[str]], workers: list[Any]) -> None:
        for index, order in enumerate(plan):
            for key in order:
                cell = self.cells[key]
                if not cell.done and len(cell.item.rounds) == index:
                    self.time_cell(cell, index, workers)

    def lacking(self) -> list[OpenCell]:
        """Open cells that more rounds may still make stable (:meth:`settled`, as the floor is known now)."""
        floor, slow_level = self.floor(), self.slow_level()
        return [
            c
            for c in self.cells.values()
            if not c.done and c not in self.unstable and c.item.rounds and not self.settled(c, floor, slow_level)
        ]

    def extend(self, workers: list[Any], seed: int) -> list[list[str]]:
        """Extra passes over the cells that lack clean rounds, in a shuffled order per pass, while the
        budget lasts; returns the passes (recorded in environment.json). A pass is one round of each
        such cell, so every cell meets the same machine; the progress bar says why the sitting runs on."""
        budget = self.settings.budget_s
        clock = BUDGET_CLOCK
        deadline = clock() + budget
        passes: list[list[str]] = []
        rng = np.random.default_rng([seed, 1])
        while budget > 0 and clock() < deadline:
            short = self.lacking()
            if not short:
                break
            order = [short[i].key for i in rng.permutation(len(short))]
            passes.append(order)
            self.progress.total += len(order)
            for key in order:
                if clock() >= deadline:
                    break
                cell = self.cells[key]
                left = max(deadline - clock(), 0.0)
                self.progress.set_postfix_str(
                    f"extra pass {len(passes)}: {len(order)} cells lack {MIN_CLEAN_ROUNDS} calm-machine rounds or "
                    f"an interval within {STABLE_WITHIN:.0%} ({left:.0f} s of --budget left)"
                )
                if not cell.done:
                    self.time_cell(cell, len(cell.item.rounds), workers)
        return passes

    def complete_all(self) -> None:
        """Write the row of every cell still open (the budget is spent), in the order their last rounds ended."""
        waiting = [c for c in self.cells.values() if not c.done and c not in self.unstable and c.item.rounds]
        for cell in sorted(waiting, key=lambda c: self.last_timed.get(c.key, 0)):
            self.complete(cell)

    def retry_unstable(self, workers: list[Any]) -> None:
        """Re-time unstable rows under :func:`bench.core.measure.engine.retry_unstable`'s policy (what a retry can
        fix, at most three attempts, the budget); a cell whose worker died meanwhile stays failed."""

        def retime(cell: OpenCell, row_id: str) -> bool:
            cell.item.rounds, cell.item.device_ms = [], []
            cell.item.row.row_id = row_id
            for index in range(self.settings.rounds):
                self.time_cell(cell, index, workers, complete=False)
                if cell.done:
                    return False
            return True

        def record(cell: OpenCell, row: SummaryRow) -> None:
            if cell.done:
                return
            _warn_unstable(self.progress, row)
            cell.done = True
            self.record(row, 0)

        pending = [cell for cell in self.unstable if not cell.done]
        self.unstable = []
        engine.retry_unstable(
            pending,
            lambda cell: SummaryRow(
                **engine.Measurer.finish(cell.item, self.floor(), self.spread.sd, self.slow_level())[0].as_dict()
            ),
            retime,
            record,
            self.settings.retry_unstable_s,
            self.progress,
        )

    def interrupted(self, word: str = "interrupted") -> str:
        rounds = sum(len(c.item.rounds) for c in self.cells.values() if not c.done)
        return (
            f"{word}: {len(self.rows)} finished row(s) and {rounds} finished round(s) of unfinished rows are "
            f"saved in {self.writer.directory}; run the same command with --resume to continue from there"
        )


def run_sitting(
    runtimes: list[Runtime],
    out: Path,
    cache_dir: Path,
    *,
    resume: bool,
    count_flops: bool,
    show_progress: bool,
    models_spec: str | None = None,
    order_seed: int | None = None,
    inline: bool = False,
) -> tuple[Path, list[SummaryRow]]:
    """Measure every cell of ``runtimes`` in one sitting; returns (run directory, summary rows).

    ``inline`` answers the one runtime's requests in this process (programmatic use, tests);
    otherwise each runtime gets its own worker process. ``models_spec`` (the ``--models`` text) lets
    workers register external networks the same way this process did.
    """
    from tqdm import tqdm

    if not runtimes:
        raise BenchError("no runtime to measure")
    if inline and len(runtimes) != 1:
        raise BenchError("an inline sitting measures one runtime")
    settings = runtimes[0].settings
    seed = secrets.randbits(32) if order_seed is None else order_seed
    env = _environment(runtimes, seed)
    previous = resume_state(out, str(env["env_id"])) if resume else ResumeState({}, {})
    machine_key = machine.floor_key(str(env.get("cpu_model")), env.get("cpu_count"), settings.threads)  # type: ignore[arg-type]
    floor = machine.MachineFloor.load(cache_dir, machine_key)
    history = SittingHistory.load(cache_dir, machine_key)
    spread = history.spread(floor.recorded_ms)
    processes = 1 if inline else settings.processes
    started = time.perf_counter()
    workers: dict[str, list[Any]] = {}
    try:
        _start_workers(workers, runtimes, processes, cache_dir, models_spec, inline)
        protocol = {
            "processes": processes,
            "budget_s": settings.budget_s,
            "recorded_floor_ms": floor.recorded_ms,
            "sitting_sd": round(spread.sd, 5),
            "sitting_sd_source": spread.note(),
            "allocator": None if inline else machine.allocator_note(),
        }
        external_models = engine.external_cards(settings.model_names)  # report shows a spec's facts without it
        writer = RunWriter.create(out, _run_name(runtimes), {**env, **protocol, "external_models": external_models})
        cells_per_model = len(settings.batch_sizes) * sum(len(r.settings.precisions) for r in runtimes)
        total = len(settings.model_names) * cells_per_model * (1 + settings.rounds)
        progress = tqdm(total=total, disable=not show_progress, unit="step", file=sys.stderr)
        if settings.budget_s > 0 and show_progress:
            _announce_budget(progress, settings, processes, spread)
        sitting = Sitting(runtimes, writer, str(env["env_id"]), progress, floor, spread)
        try:
            opened = _open(sitting, workers, previous, count_flops, cache_dir, seed, started)
            writer.rewrite_environment({**env, **protocol, **opened})
            every_worker = [w for group in workers.values() for w in group]
            sitting.time_all(opened["round_order"], every_worker)
            extra = sitting.extend(every_worker, seed)
            sitting.complete_all()
            sitting.retry_unstable(every_worker)
            timed = {"extra_rounds": extra, "machine_floor_ms": sitting.floor(), "slow_level": sitting.slow_level()}
            with contextlib.suppress(BenchError, OSError):  # the rows are on disk: a full disk loses only this note
                writer.rewrite_environment({**env, **protocol, **opened, **timed})
            floor.save(cache_dir, sitting.references())
            fast_ms = machine.MachineFloor.own_level(sitting.references())
            history.save(cache_dir, writer.directory.name, sitting.headlines(), fast_ms)
        except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM (bench.core.errors.Terminated)
            progress.write(sitting.interrupted(stop_word(exc)), file=sys.stderr)
            exc.reported = True  # type: ignore[attr-defined]
            raise
        finally:
            progress.close()
        return writer.directory, sitting.rows
    finally:
        for group in workers.values():
            for worker in group:
                worker.stop()


def _environment(runtimes: list[Runtime], seed: int) -> dict[str, object]:
    """The sitting's ``environment.json`` as it starts: the machine, the runtimes and their versions, the seed."""
    settings = runtimes[0].settings
    names = [r.name for r in runtimes]
    return environment.collect(
        {
            "backend": "+".join(names),
            "backends": names,
            "device": settings.device,
            "threads": settings.threads,
            "backend_versions": {package: v for r in runtimes for package, v in r.versions.items()},
            "order_seed": seed,
        }
    )


def _run_name(runtimes: list[Runtime]) -> str:
    """The results folder's name after its stamp: the runtimes, the device, and the precisions beside fp32."""
    precisions = precisions_of(runtimes)
    name = f"{'+'.join(r.name for r in runtimes)}-{runtimes[0].settings.device}"
    return name + ("" if precisions == ("fp32",) else f"-{'+'.join(precisions)}")


def _start_workers(
    workers: dict[str, list[Any]],
    runtimes: list[Runtime],
    processes: int,
    cache_dir: Path,
    models_spec: str | None,
    inline: bool,
) -> None:
    """Start ``processes`` workers per runtime into ``workers`` (filled as they start, so a failure part-way still
    stops those already running); all at once: each imports its runtime while the others do."""
    for runtime in runtimes:
        group: list[Any] = workers.setdefault(runtime.name, [])
        if inline:
            backend = runtime.backend or runtime_registry().get(runtime.name)
            group.append(InlineWorker(runtime.name, runtime.settings, backend, cache_dir))
        else:
            for _ in range(processes):
                group.append(ProcessWorker(runtime.name, runtime.settings, runtime.spec, cache_dir, models_spec))


def _announce_budget(progress: Any, settings: Settings, processes: int, spread: Any) -> None:
    """Say up front how long the sitting may run past its rounds, and when no cell can be stable here."""
    progress.write(
        f"{settings.rounds} rounds per cell over {processes} process(es) per runtime, then up to "
        f"{settings.budget_s:g} s of extra rounds for cells that lack {MIN_CLEAN_ROUNDS} calm-machine rounds "
        f"or an interval within {STABLE_WITHIN:.0%} (this machine's sittings differ by {spread.note()})",
        file=sys.stderr,
    )
    if not can_reproduce(spread.sd):
        progress.write(
            f"this machine's sittings differ too much for any cell to be stable within {STABLE_WITHIN:.0%}: "
            "every row will be flagged (bench doctor; a quieter hour or machine)",
            file=sys.stderr,
        )


def _open(
    sitting: Sitting,
    workers: dict[str, list[Any]],
    previous: ResumeState,
    count_flops: bool,
    cache_dir: Path,
    seed: int,
    started: float,
) -> dict[str, object]:
    """Open every cell and plan the rounds of those still to time; returns what ``environment.json`` adds."""
    sitting.open_all(workers, previous, count_flops, cache_dir)
    open_keys = [k for k, c in sitting.cells.items() if not c.done]
    first = {k: len(sitting.cells[k].item.rounds) for k in open_keys}
    opened: dict[str, object] = {
        "open_s": round(time.perf_counter() - started, 1),
        "round_order": plan_rounds(open_keys, first, sitting.runtimes[0].settings.rounds, seed),
    }
    if sitting.resumes:
        opened["resumes"] = sorted(sitting.resumes)
    return opened


def run_inline(
    settings: Settings,
    backend: Backend,
    out: Path,
    cache_dir: Path,
    resume: bool,
    count_flops: bool,
    show_progress: bool,
) -> tuple[Path, list[SummaryRow]]:
    """Measure one runtime's workloads in this process; returns (run directory, list of summary rows).

    The same sitting as ``bench run``, with ``backend`` (the command's pick from the registry, named by
    ``settings.backend``) answering here instead of in a worker process: for programmatic use and tests
    that patch :mod:`bench.core.measure.engine`.
    """
    if backend.name != settings.backend:
        raise ValueError(f"settings name backend {settings.backend!r}, but {backend.name!r} was passed")
    runtime = Runtime(settings, "", backend.versions(), backend)
    return run_sitting(
        [runtime], out, cache_dir, resume=resume, count_flops=count_flops, show_progress=show_progress, inline=True
    )


@contextlib.contextmanager
def _whole_against_ctrl_c() -> Iterator[None]:
    """Ctrl-C (and SIGTERM) waits until the block is done, so what the interrupt message counts is on disk."""
    if not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _models(settings: Settings):
    """(model, resolution, batch sizes) in the order of ``--models``."""
    import models

    for name in settings.model_names:
        yield name, settings.resolution or models.get_card(name).default_resolution, settings.batch_sizes


def _carry_over(writer: RunWriter, item: OpenWorkload, carried: PartialRow, rounds: int) -> None:
    """Rounds finished by an interrupted sitting: copied into this one (so it is self-contained) and kept;
    the cell's iteration count stays the one its first round used."""
    for record in carried.records[:rounds]:
        samples = [float(s) for s in carried.samples.get(record.round, [])]
        result = RoundResult(samples, record)
        writer.add_round(item.row, result.record, samples)
        item.rounds.append(result)
    if item.rounds:
        item.iterations = item.rounds[0].record.iterations or None


def _warn_unstable(progress: Any, row: SummaryRow) -> None:
    if row.validity == UNSTABLE:
        progress.write(
            f"warning: {row.backend} {row.model} batch {row.infer_batch_size} is unstable: {row.validity_reason}",
            file=sys.stderr,
        )
