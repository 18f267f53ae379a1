"""ExecuTorch's ``executor_runner`` log.

``executor_runner`` (examples/portable/executor_runner) logs ``Model file <path> is loaded.`` and,
after ``--num_executions=N`` runs, ``Model executed successfully N time(s) in T ms.`` -- the total. A
log of several runs with N = 1 each gives one sample per run; otherwise the mean T / N is all there
is (aggregate-only).
"""

from __future__ import annotations

import re
from pathlib import Path

from bench.core.importers import Format, ImportFailure, Measurement, number, to_ms

RUNNER_TOOL = "executor_runner"
_LOADED_AT, _LOADED_END = "Model file ", " is loaded"
_EXECUTED = re.compile(r"Model executed successfully (\S+) time\(s\) in (\S+) (\w+)\.?\s*$")


def _loaded(line: str) -> str | None:
    """The path of a ``Model file <path> is loaded.`` line, found in time linear in the line (a regex with a
    lazy group searched from every ``Model file`` of a crafted line took quadratic time)."""
    end = line.rstrip()
    end = end[:-1] if end.endswith(".") else end
    if not end.endswith(_LOADED_END):
        return None
    at = end.find(_LOADED_AT)
    if at < 0:
        return None
    name = end[at + len(_LOADED_AT) : len(end) - len(_LOADED_END)]
    return name or None


def sniff_runner(text: str, path: Path) -> bool:
    return any(_EXECUTED.search(line) or _loaded(line) for line in text.splitlines()[:5000])


def parse_runner(path: Path, text: str) -> list[Measurement]:
    runs: list[Measurement] = []
    current: Measurement | None = None
    counts: list[tuple[int, float, int]] = []

    def finish() -> None:
        if current is not None and counts:
            _fill_runner(current, counts)
            runs.append(current)

    for line_no, raw in enumerate(text.splitlines(), start=1):
        if (loaded := _loaded(raw)) is not None:
            if current is None or counts or current.artifact != loaded.strip():
                finish()
                current, counts = Measurement(tool=RUNNER_TOOL, source=path, line=line_no), []
                current.artifact = loaded.strip()
        elif match := _EXECUTED.search(raw):
            if current is None:
                current = Measurement(tool=RUNNER_TOOL, source=path, line=line_no)
            n = int(number(match.group(1), path, line_no, "executions", whole=True))
            total = to_ms(
                number(match.group(2), path, line_no, "total time"), match.group(3), path, line_no, "total time"
            )
            if n < 1:
                raise ImportFailure(path, line_no, "zero executions")
            counts.append((n, total, line_no))
        elif "Model executed successfully" in raw:
            raise ImportFailure(path, line_no, f"garbled executor_runner line {raw.strip()[:70]!r}")
    finish()
    if not runs:
        raise ImportFailure(path, len(text.splitlines()), "truncated: no 'Model executed successfully' line")
    return runs


def _fill_runner(m: Measurement, counts: list[tuple[int, float, int]]) -> None:
    if len(counts) > 1 and all(n == 1 for n, _, _ in counts):  # one run per invocation: real samples
        m.samples_ms = [total for _, total, _ in counts]
        m.headline = "median"
        return
    executions = sum(n for n, _, _ in counts)
    m.stats["latency_mean_ms"] = sum(total for _, total, _ in counts) / executions
    m.iterations = executions
    m.headline = "mean"


FORMATS = [Format("executor-runner", RUNNER_TOOL, "ExecuTorch executor_runner log", sniff_runner, parse_runner)]
