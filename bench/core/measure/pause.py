"""Named pause points: a deterministic way to stop the suite at a known moment (for tests and probes).

A test that interrupts, stops or kills a run must not race it (send the signal "soon enough" and hope
the run has not finished yet). Instead it sets two environment variables::

    BENCH_PAUSE_AT=round:6          # the point's name and which pass over it (1 = the first)
    BENCH_PAUSE_FILE=/tmp/x/paused  # created there when the point is reached; removing it resumes

and starts the command. The process that reaches the point for the n-th time writes its pid into
``BENCH_PAUSE_FILE`` and then waits, doing nothing else, until that file is removed (or the process is
signalled: a Ctrl-C or SIGTERM arrives during the wait as it would anywhere else). The test waits for
the file, then signals, stops, kills or releases the process, knowing exactly what is on disk.

Points (each counted per process):

- ``round``        -- the sitting, just after a finished round is on disk;
- ``row``          -- the sitting, just after a summary row is on disk;
- ``<runtime>-worker-start`` -- a runtime's worker process (``onnx-worker-start``), as it begins, before
  it imports its runtime;
- ``<runtime>-worker-round`` -- a runtime's worker, just after it has sent the answer of a timing round;
- ``batch``        -- ``bench accuracy``, just after a batch is scored and its tallies are consistent.

Without ``BENCH_PAUSE_AT`` a point costs one dictionary lookup.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

PAUSE_AT = "BENCH_PAUSE_AT"
PAUSE_FILE = "BENCH_PAUSE_FILE"
POLL_S = 0.02

_passes: dict[str, int] = {}


def point(name: str) -> None:
    """Pass the named point; pause here when ``BENCH_PAUSE_AT`` names this pass (see the module doc)."""
    spec = os.environ.get(PAUSE_AT)
    if not spec:
        return
    wanted, _, count = spec.rpartition(":")
    if not wanted:
        wanted, count = count, "1"
    if wanted != name:
        return
    _passes[name] = _passes.get(name, 0) + 1
    try:
        target = int(count or "1")
    except ValueError:
        return
    marker = os.environ.get(PAUSE_FILE)
    if _passes[name] != target or not marker:
        return
    path = Path(marker)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(f"{os.getpid()}\n", encoding="utf-8")
    os.replace(tmp, path)  # the test never sees a half-written pid
    while path.exists():
        time.sleep(POLL_S)
