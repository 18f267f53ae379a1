"""The one way a model becomes a runnable, checked session: prepare -> load -> first inference -> parity.

Every caller that runs a model on a backend (``bench run``'s engine, ``bench accuracy``, ``bench
complexity``'s latency, ``bench export`` and the pytest-benchmark suite) opens it here, so each gets
the same guarantees: the artifact comes from the shared cache, the runtime's logits match PyTorch fp32
eager on a few seeded images within the precision's tolerance, and a cached artifact that fails to
load or fails parity is evicted and rebuilt once (never trusted again) before anything is reported.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from bench.core.interface import artifacts
from bench.core.interface.runtime import Backend, Prepared, Session, Workload
from bench.core.measure import memory
from bench.core.measure.parity import Parity, check_parity
from bench.core.records.schema import STATUS_NOT_TIMED, STATUS_PARITY_FAILED
from bench.core.util import one_line

PARITY_IMAGES = 4
"""Images of the batch whose logits are checked against the eager logits (samples are independent)."""


def example_input(workload: Workload, seed: int) -> np.ndarray:
    """The seeded input a session is loaded with and checked on (standard normal, the workload's shape).

    A network quantized on the user's images is checked on the first of them instead: its activation
    ranges are those images', and agreement with fp32 means agreement on such inputs (noise would fall
    outside the ranges and fail a faithful quantization)."""
    if workload.quantized and workload.calibration.folder is not None:
        return workload.calibration.batches(workload.input_shape, workload.model_name)[0]
    return np.random.default_rng(seed).standard_normal(workload.input_shape, dtype=np.float32)


def workload_facts(workload: Workload) -> dict[str, object]:
    """What a session of ``workload`` runs, under the names results outside ``summary.csv`` record it by
    (the accuracy document, the pytest-benchmark suite's ``extra_info``): the one place they are spelled."""
    return {
        "device": workload.device,
        "precision": workload.precision,
        "threads": workload.threads,
        "batch_size": workload.batch_size,
        "resolution": workload.resolution,
    }


def is_out_of_memory(exc: BaseException) -> bool:
    return isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower()


class SessionRefused(RuntimeError):
    """A session that could not be opened for use: not runnable here, or its output failed parity."""


@dataclass
class Opened:
    """A session that passed parity (``session``), or why there is none (``status`` and ``error``).

    ``row`` holds what was learnt on the way as summary columns (prepare and load times, the cold first
    inference, memory, parity, the runtime's detail), so the engine can put it on its row as it is.
    """

    prepared: Prepared
    session: Session | None
    parity: Parity | None = None
    detail: dict[str, str] = field(default_factory=dict)
    row: dict[str, object] = field(default_factory=dict)

    @property
    def status(self) -> str | None:
        """None when the session is open; else ``not_timed`` or ``parity_failed``."""
        return self.row.get("status")  # type: ignore[return-value]

    @property
    def error(self) -> str | None:
        return self.row.get("error")  # type: ignore[return-value]

    def require(self) -> Session:
        """The open session, or :class:`SessionRefused` saying why there is none."""
        if self.session is None:
            raise SessionRefused(self.error or "no session")
        return self.session


def open_session(
    backend: Backend,
    model: nn.Module,
    workload: Workload,
    cache_dir: Path,
    *,
    seed: int = 0,
    phase: Callable[[str], None] | None = None,
    check: bool = True,
) -> Opened:
    """Prepare, load, run once (cold) and check parity; evict-and-rebuild a bad cached artifact once.

    A platform that can convert but not run (``cannot_time_reason``) stops after ``prepare``. Errors
    from a fresh build propagate (the caller records them); the caller closes the returned session.
    ``check=False`` skips the eager logits and parity: for a runtime's further worker processes, which
    load the artifact the first one has just checked (half a sitting's opening time went there).
    """
    say = phase or (lambda _: None)
    row: dict[str, object] = {}
    x = example_input(workload, seed)
    eager = None
    if check:
        with torch.inference_mode():  # on a few images: a huge batch must not exhaust host memory here
            eager = model(torch.from_numpy(x[:PARITY_IMAGES])).float().numpy()  # the parity baseline

    say("prepare")
    t0 = time.perf_counter()
    prepared = backend.prepare(model, workload, cache_dir)
    row["prepare_s"] = time.perf_counter() - t0
    row["runtime_detail"] = json.dumps(prepared.detail, sort_keys=True)
    _record_size(row, prepared)
    reason = backend.cannot_time_reason()
    if reason is not None:
        row["status"] = STATUS_NOT_TIMED
        row["error"] = f"{reason}; model converted and validated only"
        return Opened(prepared, None, None, dict(prepared.detail), row)

    # A cached artifact that fails parity (or cannot even be loaded) is evicted and rebuilt once,
    # never trusted again; a fresh build that fails too is reported, naming the file.
    evicted = None
    try:
        session, parity, detail = _load_and_check(backend, model, prepared, workload, x, eager, row, say)
    except Exception as exc:
        if not prepared.cache_hit or is_out_of_memory(exc) or not backend.evict(prepared):
            raise
        evicted = f"cached {_name(prepared)} was rebuilt: it failed to load ({one_line(exc)})"
    else:
        if parity is not None and not parity.ok and prepared.cache_hit and backend.evict(prepared):
            session.close()
            evicted = f"cached {_name(prepared)} was rebuilt: {parity.describe()}"
    if evicted is not None:
        say("rebuild")
        prepared = backend.prepare(model, workload, cache_dir)
        _record_size(row, prepared)
        session, parity, detail = _load_and_check(backend, model, prepared, workload, x, eager, row, say)
        detail["evicted"] = evicted
    if parity is None:
        row["runtime_detail"] = json.dumps(detail, sort_keys=True)
        return Opened(prepared, session, None, detail, row)
    row.update(parity.as_row())
    row["runtime_detail"] = json.dumps(detail, sort_keys=True)
    if not parity.ok:
        session.close()
        row["status"] = STATUS_PARITY_FAILED
        where = f" ({prepared.artifact})" if prepared.artifact is not None else ""
        again = ", freshly rebuilt after the cached one failed too" if evicted is not None else ""
        row["error"] = parity.describe() + where + again
        return Opened(prepared, None, parity, detail, row)
    return Opened(prepared, session, parity, detail, row)


def _record_size(row: dict[str, object], prepared: Prepared) -> None:
    if prepared.artifact is not None and prepared.artifact.exists():
        row["artifact_mb"] = round(artifacts.tree_mb(prepared.artifact), 2)


def _load_and_check(backend, model, prepared: Prepared, workload: Workload, x, eager, row, say):
    """Load, first inference and parity; the memory this session added is measured meanwhile."""
    say("load")
    baseline = memory.current_rss_mb()
    can_reset = memory.reset_peak()
    cuda = workload.device == "cuda" and torch.cuda.is_available()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    session = backend.load(model, prepared, workload, x)
    row["load_s"] = time.perf_counter() - t0
    try:
        say("first inference")
        t0 = time.perf_counter()
        session.run()
        row["first_inference_ms"] = (time.perf_counter() - t0) * 1e3
        parity = None if eager is None else check_parity(eager, session.predict(x)[:PARITY_IMAGES], workload.precision)
    except BaseException:
        session.close()
        raise
    if can_reset and baseline is not None:
        row["peak_rss_mb"] = round(max(memory.peak_rss_mb() - baseline, 0.0), 1)
    if cuda:
        row["cuda_max_allocated_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return session, parity, {**prepared.detail, **session.detail}


def _name(prepared: Prepared) -> str:
    return prepared.artifact.name if prepared.artifact is not None else "artifact"
