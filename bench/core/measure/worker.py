"""One runtime's worker: the process that hosts that runtime's sessions for a whole sitting.

Each runtime of a sitting runs in its own process, started once and kept for all its cells, so the
thread pools of different runtimes never share a process, a crash of one runtime (even ``kill -9``)
costs only its own cells, and the peak memory of a row is that runtime's own. The sitting
(:mod:`bench.core.measure.sitting`) sends one request at a time per worker and waits for the answer:

- :class:`Open`  -- build the model, prepare (export/convert, cached), load, first inference, parity;
- :class:`Time`  -- time one round of an open cell (reference, warmup share, the cell's fixed iterations);
- :class:`Exit`  -- close every session and end.

Requests and answers (:class:`OpenAnswer`, :class:`RoundAnswer`) are typed: what crosses the pipe is
one of these dataclasses, and :meth:`CellHost.handle` is the one place that dispatches them.

Between requests a worker blocks on its pipe: it uses no CPU while another worker times (the
sitting measures this and records it per round as ``idle_cpu``). Runtimes whose thread pools spin
after an inference are told not to where they allow it (the backends do this when they load).

The runtime is named by a ``"module:class"`` spec and imported here, so the core never imports the
backends package. :class:`InlineWorker` runs the same requests in the calling process (for
programmatic single-runtime use and tests that patch the engine); :class:`ProcessWorker` is the
real thing.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import multiprocessing
import multiprocessing.connection
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.core.interface import settings as model_settings  # build_model through the module: tests patch it
from bench.core.interface.runtime import Backend, load_class
from bench.core.interface.settings import Settings
from bench.core.measure import engine, machine, pause
from bench.core.records.schema import RoundRecord, SummaryRow
from bench.core.util import one_line

POLL_S = 0.5
"""How often a waiting sitting looks at a silent worker (the pipe wakes it at once when an answer comes)."""
STOPPED_GRACE_S = 5.0
"""A worker stopped this long (SIGSTOP, a debugger) while the sitting runs has stopped answering."""
ROUND_BOUND_FLOOR_S = 300.0
"""The least time a timing round is allowed before its worker counts as hung (see :func:`round_bound_s`)."""


@dataclass(frozen=True)
class Open:
    """Open a cell: everything before timing. ``check=False`` skips parity (the runtime's first process
    checked the same artifact)."""

    key: str
    workload: Any
    check: bool = True


@dataclass(frozen=True)
class Time:
    """Time one round of an open cell; ``iterations`` fixes its count (None: calibrate in this round)."""

    key: str
    round_index: int
    iterations: int | None


@dataclass(frozen=True)
class Exit:
    """Close every session and end the worker."""


Request = Open | Time | Exit


@dataclass(frozen=True)
class OpenAnswer:
    """A worker's answer to ``open``: the workload as opened (a CUDA OOM may step the batch down), what was
    learnt on the way (summary columns), and whether the cell is open for timing (False: its row is final,
    parity failed or this platform cannot time)."""

    workload: Any
    result: dict[str, object]
    timed: bool


@dataclass(frozen=True)
class RoundAnswer:
    """A worker's answer to ``time``: one round of a cell."""

    record: RoundRecord
    samples: list[float]
    device_ms: list[float]
    iterations: int | None


class CellHost:
    """Opens cells, times their rounds and keeps their sessions: the work of one worker."""

    def __init__(self, settings: Settings, backend: Backend, cache_dir: Path) -> None:
        self.settings = settings
        self.measurer = engine.Measurer(settings, backend, cache_dir)
        self.cells: dict[str, engine.OpenWorkload] = {}
        self._built: tuple[tuple[str, int], Any] | None = None

    def open(self, key: str, workload: Any, check: bool = True) -> OpenAnswer:
        """Everything before timing; ``timed`` is False when the row is final already (not timed).
        ``check=False`` skips parity (the runtime's first process checked the same artifact)."""
        ident = (workload.model_name, workload.resolution)
        if self._built is None or self._built[0] != ident:
            self._built = None  # the previous model is freed before the next is built
            self._built = (ident, model_settings.build_model(self.settings, *ident))
        actual, result, session = self.measurer.open_with_retry(
            self._built[1], workload, self.settings.oom_retry, check
        )
        if session is not None:
            self.cells[key] = engine.OpenWorkload(actual, SummaryRow(), session)
        return OpenAnswer(actual, result, session is not None)

    def time(self, key: str, round_index: int, iterations: int | None) -> RoundAnswer:
        """One timing round of an open cell; ``iterations`` fixes the count (None: calibrate now)."""
        self._built = None  # no model is kept while timing
        cell = self.cells[key]
        if cell.iterations is None:
            cell.iterations = iterations
        cell.rounds, cell.device_ms = [], []
        result = self.measurer.time_round(cell)
        record = dataclasses.replace(result.record, round=round_index)
        return RoundAnswer(record, result.samples_ms, cell.device_ms, cell.iterations)

    def handle(self, request: Open | Time) -> OpenAnswer | RoundAnswer:
        """The answer to one request (the one dispatch of the worker protocol)."""
        if isinstance(request, Open):
            return self.open(request.key, request.workload, request.check)
        if isinstance(request, Time):
            return self.time(request.key, request.round_index, request.iterations)
        raise TypeError(f"not a worker request: {type(request).__name__}")

    def close_all(self) -> None:
        for cell in self.cells.values():
            with contextlib.suppress(Exception):
                cell.session.close()
        self.cells.clear()


def _answer(host: CellHost | None, failure: str | None, request: Open | Time) -> tuple[str, object]:
    if host is None:
        return "error", failure
    try:
        return "ok", host.handle(request)
    except Exception as exc:  # one cell failing (export error, OOM) must not end the worker
        return "error", one_line(exc)


def _become_worker(name: str) -> None:
    """Linux: end with the sitting's process (even when it is killed mid-conversion), and go by
    ``bench-<runtime>`` in ``ps``/``top`` (and for tests that kill one runtime's worker)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
            libc.prctl(15, ctypes.c_char_p(f"bench-{name}"[:15].encode()))  # PR_SET_NAME


def serve(
    name: str,
    conn: multiprocessing.connection.Connection,
    settings: Settings,
    spec: str,
    cache_dir: Path,
    models_spec: str | None,
) -> None:
    """The worker process: answer requests until ``exit`` or until the sitting goes away."""
    # Ctrl-C is the sitting's to handle (it keeps what finished). The worker started with SIGINT ignored
    # already (see ProcessWorker), so a Ctrl-C to the process group while it starts prints no traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    pause.point(f"{name}-worker-start")
    _become_worker(name)
    machine.steady_allocator()  # before anything allocates: a cell's speed must not depend on the worker's past
    host, failure = None, None
    try:
        if models_spec is not None:  # external networks are registered in this process too
            from bench.core import arguments

            arguments.select_models(models_spec)
        host = CellHost(settings, load_class(spec)(), cache_dir)
    except Exception as exc:
        failure = f"the worker could not start: {one_line(exc)}"
    try:
        while True:
            try:
                tag, request = conn.recv()
            except (EOFError, OSError):
                break
            if isinstance(request, Exit):
                break
            answer = _answer(host, failure, request)
            try:
                conn.send((tag, *answer))
            except OSError:
                break
            if isinstance(request, Time):
                pause.point(f"{name}-worker-round")
    finally:
        if host is not None:
            host.close_all()


class WorkerDied(Exception):
    """The worker process ended without answering."""


@dataclass
class Reply:
    tag: str
    ok: bool
    value: Any


class InlineWorker:
    """The same requests, answered in this process (one runtime, no isolation)."""

    def __init__(self, name: str, settings: Settings, backend: Backend, cache_dir: Path) -> None:
        self.name = name
        self._host: CellHost | None = None
        self._failure: str | None = None
        try:
            self._host = CellHost(settings, backend, cache_dir)
        except Exception as exc:
            self._failure = f"the {name} runtime could not start: {one_line(exc)}"
        self._replies: deque[Reply] = deque()
        self.pid: int | None = None

    def ask(self, tag: str, request: Open | Time) -> None:
        status, value = _answer(self._host, self._failure, request)
        self._replies.append(Reply(tag, status == "ok", value))

    def ready(self) -> bool:
        return bool(self._replies)

    def answer(self) -> Reply:
        return self._replies.popleft()

    def unresponsive(self) -> str | None:
        return None

    def connection(self) -> None:
        return None

    def cpu_seconds(self) -> float | None:
        return None

    def stop(self) -> None:
        if self._host is not None:
            self._host.close_all()


class ProcessWorker:
    """A runtime's own process, started at once (it imports its runtime while the others start)."""

    def __init__(self, name: str, settings: Settings, spec: str, cache_dir: Path, models_spec: str | None) -> None:
        self.name = name
        context = multiprocessing.get_context("spawn")  # a fresh interpreter: no thread pool state inherited
        self._conn, child = context.Pipe()
        self.process = context.Process(
            target=serve, args=(name, child, settings, spec, cache_dir, models_spec), name=f"bench-{name}", daemon=True
        )
        with _started_ignoring_ctrl_c():
            self.process.start()
        child.close()  # so that the worker's death reads as end-of-file here
        self.pid = self.process.pid
        self._dead: str | None = None
        self._round_bound_s = round_bound_s(settings)
        self._deadline: float | None = None
        self._stopped_since: float | None = None

    def ask(self, tag: str, request: Open | Time) -> None:
        if self._dead is not None:
            raise WorkerDied(self._dead)
        try:
            self._conn.send((tag, request))
        except OSError:
            raise WorkerDied(self._death()) from None
        # A round has a bound (its budgets); opening has none (a cold conversion can take many minutes)
        self._deadline = time.monotonic() + self._round_bound_s if isinstance(request, Time) else None

    def ready(self) -> bool:
        return False

    def answer(self) -> Reply:
        """The next answer. Blocks until it comes, the worker dies, the worker stays stopped (SIGSTOP,
        a debugger) for :data:`STOPPED_GRACE_S`, or a timing round outlasts its bound: each of the last
        two ends the worker and raises :class:`WorkerDied`, so a runtime that stops answering fails only
        its own rows, like one that dies."""
        if self._dead is not None:
            raise WorkerDied(self._dead)
        while True:
            try:
                if self._conn.poll(POLL_S):
                    break
            except (EOFError, OSError):
                break  # recv says what happened
            why = self.unresponsive()
            if why is None and self._deadline is not None and time.monotonic() > self._deadline:
                why = f"did not answer a timing round within {self._round_bound_s:.0f} s"
            if why is not None:
                self._dead = f"the {self.name} worker process {why}"
                with contextlib.suppress(Exception):
                    self.process.kill()  # SIGKILL ends a stopped process too
                    self.process.join(timeout=5)
                raise WorkerDied(self._dead)
        try:
            tag, status, value = self._conn.recv()
        except (EOFError, OSError):
            raise WorkerDied(self._death()) from None
        self._deadline = None
        return Reply(tag, status == "ok", value)

    def unresponsive(self) -> str | None:
        """Why the (living) worker cannot answer: stopped for at least :data:`STOPPED_GRACE_S` (a whole
        process group stopped by Ctrl-Z and continued by ``fg`` resumes together and is not counted)."""
        if self._dead is not None:
            return None
        state = process_state(self.pid)
        if state not in ("T", "t"):
            self._stopped_since = None
            return None
        now = time.monotonic()
        if self._stopped_since is None:
            self._stopped_since = now
        if now - self._stopped_since < STOPPED_GRACE_S:
            return None
        return f"stopped answering (it was stopped, e.g. by SIGSTOP, for {STOPPED_GRACE_S:.0f} s)"

    def connection(self) -> multiprocessing.connection.Connection:
        return self._conn

    def _death(self) -> str:
        self.process.join(timeout=5)
        code = self.process.exitcode
        if code is None:
            why = "stopped answering"
        elif code < 0:
            why = f"was killed by {signal.Signals(-code).name}"
        else:
            why = f"exited with status {code}"
        self._dead = f"the {self.name} worker process {why}"
        return self._dead

    def cpu_seconds(self) -> float | None:
        """CPU time the worker process has used so far (user + system), or None once it is gone."""
        try:
            import psutil

            times = psutil.Process(self.pid).cpu_times()
        except Exception:  # gone, or no psutil
            return None
        return float(times.user + times.system)

    def stop(self) -> None:
        """Ask it to close its sessions and end; end it firmly if it does not (e.g. mid-conversion)."""
        with contextlib.suppress(OSError):
            self._conn.send(("exit", Exit()))
        self.process.join(timeout=5)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(timeout=2)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(timeout=2)
        self._conn.close()


@contextlib.contextmanager
def _started_ignoring_ctrl_c() -> Iterator[None]:
    """A process started inside this block begins with SIGINT ignored (an ignored signal stays ignored
    across exec, and Python then installs no KeyboardInterrupt handler): a Ctrl-C to the process group
    while a worker is still importing its runtime is the sitting's alone, never a worker's traceback.
    SIGINT is blocked meanwhile, so one that arrives now waits for this process's own handler."""
    main = threading.current_thread() is threading.main_thread()
    if not main or not hasattr(signal, "pthread_sigmask"):
        yield
        return
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    handler = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, handler)
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


def wait_any(workers: list, timeout: float | None = None) -> list:
    """The workers with an answer waiting (inline ones first; process ones as their pipes wake us)."""
    ready = [w for w in workers if w.ready()]
    if ready:
        return ready
    connections = {w.connection(): w for w in workers if w.connection() is not None}
    if not connections:
        return []
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        wait_s = POLL_S if deadline is None else max(0.0, min(POLL_S, deadline - time.monotonic()))
        woken = multiprocessing.connection.wait(list(connections), wait_s)
        if woken:
            return [connections[c] for c in woken]
        # a stopped worker never wakes us: hand it back, its answer() says why and ends it
        stuck = [w for w in connections.values() if w.unresponsive() is not None]
        if stuck or (deadline is not None and time.monotonic() >= deadline):
            return stuck


def round_bound_s(settings: Settings) -> float:
    """How long one timing round may take before its worker counts as hung: far above what the round's
    budgets allow (reference, warmup share, timed share, each capped by ``--max-time``)."""
    budgets = settings.limits_warmup.max_time_s + settings.limits_steady.max_time_s
    return ROUND_BOUND_FLOOR_S + 3 * budgets


def process_state(pid: int | None) -> str | None:
    """The one-letter state of a process (``R``, ``S``, ``T`` stopped, ``Z``, ...), or None if unknown."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        return stat[stat.rindex(b")") + 2 :][:1].decode()
    except (OSError, ValueError):
        pass
    try:
        import psutil

        status = psutil.Process(pid).status()
    except Exception:
        return None
    return "T" if status == "stopped" else status[:1].upper()
