"""The on-disk result store: one directory per run, written so that nothing finished is ever lost.

Layout of ``<out>/<run_id>/``:

- ``environment.json`` -- the machine and software the run used (written first, once);
- ``summary.csv``      -- one row per (model, batch size, setting), columns from :mod:`bench.core.schema`;
- ``samples.csv``      -- every timed iteration, written round by round as each round ends;
- ``rounds.csv``       -- one line per finished round (median, machine-speed reference, CPU use).

Each append is one ``write`` followed by ``fsync``. A write that fails part-way (a full disk, a
kill) is cut back to where the file ended before it, so earlier lines stay intact; a torn last line
left by a crash is recognised on reading (it has no newline) and dropped.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from bench.core.errors import BenchError
from bench.core.schema import (
    REQUIRED_COLUMNS,
    ROUND_COLUMNS,
    SAMPLE_COLUMNS,
    STATUS_OK,
    SUITE_ID,
    SUMMARY_COLUMNS,
    SummaryRow,
    typed,
)

SUMMARY_FILE = "summary.csv"
SAMPLES_FILE = "samples.csv"
ROUNDS_FILE = "rounds.csv"
ENVIRONMENT_FILE = "environment.json"


def _csv_line(columns: Iterable[str], row: Mapping[str, object]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(["" if row.get(c) is None else row.get(c) for c in columns])
    return buf.getvalue()


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


@dataclass
class RunWriter:
    """Appends rows and per-round samples to one run directory; create it with :meth:`create`."""

    directory: Path
    run_id: str
    rows_written: int = 0
    rounds_written: dict[str, int] = field(default_factory=dict)
    """row_id -> samples written so far (iteration numbers continue across rounds)."""

    @classmethod
    def create(cls, out: Path, label: str, environment: Mapping[str, object]) -> RunWriter:
        run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{label}-{os.getpid()}"
        directory = Path(out) / run_id
        try:
            directory.mkdir(parents=True, exist_ok=False)
            (directory / ENVIRONMENT_FILE).write_text(json.dumps(dict(environment), indent=2, default=str))
            headers = ((SUMMARY_FILE, SUMMARY_COLUMNS), (SAMPLES_FILE, SAMPLE_COLUMNS), (ROUNDS_FILE, ROUND_COLUMNS))
            for name, columns in headers:
                (directory / name).write_text(",".join(columns) + "\n")
        except OSError as exc:
            raise BenchError(f"cannot write results to {out}: {exc.strerror or exc}") from None
        return cls(directory, run_id)

    def add_round(self, row: SummaryRow, record: Mapping[str, object], samples_ms: Iterable[float]) -> None:
        """One finished timing round of one workload (samples, then its record), on disk before the next."""
        round_index = int(record["round"])  # type: ignore[call-overload]
        ids = {
            "run_id": self.run_id,
            "row_id": row.row_id,
            "model": row.model,
            "backend": row.backend,
            "infer_batch_size": row.infer_batch_size,
            "round": round_index,
        }
        start = self.rounds_written.get(str(row.row_id), 0)
        samples = list(samples_ms)
        lines = "".join(
            _csv_line(SAMPLE_COLUMNS, {**ids, "iteration": start + i, "latency_ms": f"{ms:.6f}"})
            for i, ms in enumerate(samples)
        )
        what = f"round {round_index + 1} of {row.model}"
        if lines:
            self._append(SAMPLES_FILE, lines, what)
        self._append(
            ROUNDS_FILE, _csv_line(ROUND_COLUMNS, {**record, "run_id": self.run_id, "row_id": row.row_id}), what
        )
        self.rounds_written[str(row.row_id)] = start + len(samples)

    def add(self, row: SummaryRow) -> None:
        """The finished summary row (its samples were written round by round before it)."""
        row.run_id = self.run_id
        self._append(SUMMARY_FILE, _csv_line(SUMMARY_COLUMNS, row.as_dict()), f"the row of {row.model}")
        self.rows_written += 1

    def _append(self, name: str, text: str, what: str) -> None:
        path = self.directory / name
        try:
            append_durably(path, text)
        except OSError as exc:
            raise BenchError(
                f"cannot write {what} to {path}: {exc.strerror or exc}; kept the {self.rows_written} finished "
                f"row(s) and their samples in {self.directory} (use --resume to continue)"
            ) from None


def append_durably(path: Path, text: str) -> None:
    """Append ``text`` with one write and fsync; on failure cut the file back to its old length."""
    data = text.encode("utf-8")
    with open(path, "ab") as f:
        size = f.tell()
        try:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        except OSError:
            with contextlib.suppress(OSError):  # if even this fails, a torn last line is recognised on reading
                f.truncate(size)
            raise


# ---------------------------------------------------------------------------------------------- reading


def find_run_dirs(paths: Iterable[Path]) -> list[Path]:
    """Run directories under ``paths`` (a run directory itself, a results root, or a summary.csv).

    A results root is searched two levels deep, so ``results/`` includes ``results/reference/<run>``.
    """
    found: list[Path] = []
    for p in map(Path, paths):
        if not p.exists():
            raise BenchError(f"no results at {p}")
        if p.is_file():
            found.append(p.parent)
        elif (p / SUMMARY_FILE).exists():
            found.append(p)
        else:
            found.extend(sorted(s.parent for s in p.glob(f"*/{SUMMARY_FILE}")))
            found.extend(sorted(s.parent for s in p.glob(f"*/*/{SUMMARY_FILE}")))
    return list(dict.fromkeys(found))


def load_environment(run_dir: Path) -> dict[str, object]:
    path = run_dir / ENVIRONMENT_FILE
    try:
        env = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        raise BenchError(f"{path}: unreadable, so {run_dir} is not a results directory of this suite") from None
    if not isinstance(env, dict) or env.get("suite") != SUITE_ID:
        raise BenchError(f"{path}: lacks this suite's marker, so {run_dir} is not one of its results directories")
    if not isinstance(env.get("env_id"), str) or not env["env_id"]:
        raise BenchError(f"{path}: has no env_id, so its rows cannot be told apart from other machines'")
    return env


def _read_csv(path: Path) -> pd.DataFrame:
    """A CSV file of this suite; a torn last line (no newline: the writer died mid-line) is dropped."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BenchError(f"{path}: missing") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BenchError(f"{path}: unreadable ({getattr(exc, 'strerror', None) or type(exc).__name__})") from None
    if text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
        warn(f"{path}: dropped a half-written last line")
    if not text.strip():
        raise BenchError(f"{path}: empty")
    rows = list(csv.reader(io.StringIO(text)))
    header, body = rows[0], rows[1:]
    torn = [i for i, r in enumerate(body) if len(r) != len(header)]
    if torn:
        warn(f"{path}: skipped {len(torn)} line(s) with the wrong number of fields")
        body = [r for i, r in enumerate(body) if i not in set(torn)]
    return pd.DataFrame(body, columns=header, dtype=object).replace("", None)


def load_summary(run_dir: Path) -> pd.DataFrame:
    """One run's summary, typed by the schema; rows whose numbers do not parse are dropped with a warning."""
    load_environment(run_dir)
    path = run_dir / SUMMARY_FILE
    raw = _read_csv(path)
    missing = [c for c in REQUIRED_COLUMNS if c not in raw.columns]
    if missing:
        raise BenchError(f"{path}: not a summary file of this suite (missing columns: {', '.join(missing)})")
    df = typed(raw)
    ok = df["status"] == STATUS_OK
    broken = ok & (df["latency_median_ms"].isna() | df["infer_batch_size"].isna() | df["infer_img_size"].isna())
    if "latency_median_ms" not in raw.columns and ok.any():
        raise BenchError(f"{path}: has ok rows but no latency_median_ms column")
    if broken.any():
        warn(f"{path}: ignored {int(broken.sum())} ok row(s) whose latency, batch or size does not parse")
        df = df[~broken]
    return df


def load_samples(run_dir: Path) -> pd.DataFrame:
    """``run_id, row_id, round, iteration, latency_ms`` (older runs without rounds read as one round)."""
    path = run_dir / SAMPLES_FILE
    raw = _read_csv(path) if path.exists() else pd.DataFrame(columns=list(SAMPLE_COLUMNS))
    missing = [c for c in ("run_id", "row_id", "latency_ms") if c not in raw.columns]
    if missing:
        raise BenchError(f"{path}: not a samples file of this suite (missing columns: {', '.join(missing)})")
    s = raw.copy()
    s["latency_ms"] = pd.to_numeric(s["latency_ms"], errors="coerce")
    bad = s["latency_ms"].isna() | (s["latency_ms"] <= 0)
    if bad.any():
        warn(f"{path}: ignored {int(bad.sum())} sample(s) that are not positive numbers")
        s = s[~bad]
    s["round"] = pd.to_numeric(s["round"], errors="coerce").fillna(0).astype(int) if "round" in s else 0
    s["iteration"] = pd.to_numeric(s.get("iteration"), errors="coerce") if "iteration" in s else range(len(s))
    for c in ("run_id", "row_id"):
        s[c] = s[c].astype(str)
    return s[["run_id", "row_id", "round", "iteration", "latency_ms"]].reset_index(drop=True)


def load_results(paths: Iterable[Path]) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, dict[str, object]]]:
    """Merge summaries and samples of many runs; environments are returned keyed by ``env_id``."""
    paths = list(paths)
    run_dirs = find_run_dirs(paths)
    if not run_dirs:
        raise BenchError(f"no results found in {', '.join(map(str, paths))}")
    summaries, samples, environments = [], [], {}
    for run_dir in run_dirs:
        env = load_environment(run_dir)
        summaries.append(load_summary(run_dir))
        samples.append(load_samples(run_dir))
        environments[str(env["env_id"])] = env
    summary = pd.concat(summaries, ignore_index=True)
    summary["_order"] = range(len(summary))
    summary = summary.sort_values(["timestamp", "run_id", "_order"]).drop(columns="_order")  # oldest first
    return summary, pd.concat(samples, ignore_index=True), environments


def completed_keys(out: Path) -> set[tuple[str, str]]:
    """``(settings_key, env_id)`` of every successful row already in ``out`` (for ``--resume``)."""
    out = Path(out)
    if not out.exists():
        return set()
    done: set[tuple[str, str]] = set()
    for run_dir in find_run_dirs([out]):
        df = load_summary(run_dir)
        ok = df[df["status"] == STATUS_OK]
        done.update(zip(ok["settings_key"].astype(str), ok["env_id"].astype(str), strict=True))
    return done


@dataclass
class PartialRow:
    """Finished rounds of a workload whose run stopped before its last round (for ``--resume``)."""

    records: list[dict[str, object]]
    samples: dict[int, list[float]]


def partial_rows(out: Path, env_id: str) -> dict[str, PartialRow]:
    """row_id -> finished rounds, for rows of this environment in ``out`` that have rounds but no summary row."""
    out = Path(out)
    found: dict[str, PartialRow] = {}
    if not out.exists():
        return found
    for run_dir in find_run_dirs([out]):
        rounds_path = run_dir / ROUNDS_FILE
        if not rounds_path.exists() or load_environment(run_dir).get("env_id") != env_id:
            continue
        finished = set(load_summary(run_dir)["row_id"].astype(str))
        rounds = _read_csv(rounds_path)
        if rounds.empty or "row_id" not in rounds:
            continue
        rounds = rounds[~rounds["row_id"].isin(finished)]
        if rounds.empty:
            continue
        samples = load_samples(run_dir)
        for row_id, group in rounds.groupby("row_id", sort=False):
            records = [{k: v for k, v in r.items() if k not in ("run_id", "row_id")} for r in group.to_dict("records")]
            records.sort(key=lambda r: int(r["round"]))
            records = [r for i, r in enumerate(records) if int(r["round"]) == i]  # a contiguous prefix only
            mine = samples[samples["row_id"] == row_id]
            by_round = {i: mine.loc[mine["round"] == i, "latency_ms"].tolist() for i in range(len(records))}
            if len(records) > len(found.get(str(row_id), PartialRow([], {})).records):
                found[str(row_id)] = PartialRow(records, by_round)
    return found
