"""The on-disk result store: one directory per run, written so that nothing finished is ever lost.

Layout of ``<out>/<run_id>/``:

- ``environment.json`` -- the machine and software the run used (written first, once);
- ``summary.csv``      -- one row per (model, batch size, setting), columns from :mod:`bench.core.records.schema`;
- ``samples.csv``      -- every timed iteration, written round by round as each round ends;
- ``rounds.csv``       -- one line per finished round (median, machine-speed reference, CPU use).

Each append is one ``write`` followed by ``fsync``. A write that fails part-way (a full disk, a
kill) is cut back to where the file ended before it, so earlier lines stay intact; a torn last line
left by a crash is recognised on reading (it has no newline) and dropped.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import errno
import io
import json
import math
import os
import shutil
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from bench.core.errors import BenchError
from bench.core.interface.runtime import registry
from bench.core.measure.stats import fill_headline
from bench.core.records.cell import CellKey
from bench.core.records.schema import (
    COLUMN_KINDS,
    IDENTITY_FIELDS,
    MAX_LATENCY_MS,
    MIN_LATENCY_MS,
    REQUIRED_COLUMNS,
    ROUND_COLUMNS,
    SAMPLE_COLUMNS,
    SCHEMA_VERSION,
    STATUS_OK,
    STATUSES,
    SUITE_ID,
    SUMMARY_COLUMNS,
    ManifestEntry,
    RoundRecord,
    SummaryRow,
    field_problem,
    finite_number,
    headline_statistic,
    measured,
    typed,
)
from bench.core.util import atomic_write_text, parse_document, read_input_file

SUMMARY_FILE = "summary.csv"
SAMPLES_FILE = "samples.csv"
ROUNDS_FILE = "rounds.csv"
ENVIRONMENT_FILE = "environment.json"
MANIFEST_FILE = "manifest.json"


def _csv_line(columns: Iterable[str], row: Mapping[str, object]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(["" if row.get(c) is None else row.get(c) for c in columns])
    return buf.getvalue()


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


@dataclass
class RunWriter:
    """Appends rows and per-round samples to one run directory; create it with :meth:`create`.

    The first write that fails (a full disk) stops the writer: it says what was kept, and every later
    write raises the same error without touching the files, so nothing after a gap is ever written.
    """

    directory: Path
    run_id: str
    rows_written: int = 0
    rounds_written: dict[str, int] = field(default_factory=dict)
    """row_id -> samples written so far (iteration numbers continue across rounds)."""
    open_rounds: dict[str, int] = field(default_factory=dict)
    """row_id -> rounds written of rows whose summary row is not written yet."""
    broken: str | None = None
    """Why writing stopped (the first failed write), once it has."""

    @classmethod
    def create(cls, out: Path, label: str, environment: Mapping[str, object]) -> RunWriter:
        directory = new_run_dir(out, label)
        run_id = directory.name
        try:
            atomic_write_text(directory / ENVIRONMENT_FILE, json.dumps(dict(environment), indent=2, default=str))
            headers = ((SUMMARY_FILE, SUMMARY_COLUMNS), (SAMPLES_FILE, SAMPLE_COLUMNS), (ROUNDS_FILE, ROUND_COLUMNS))
            for name, columns in headers:
                atomic_write_text(directory / name, ",".join(columns) + "\n")
        except OSError as exc:
            shutil.rmtree(directory, ignore_errors=True)  # an empty run, never a half-made one
            raise BenchError(f"cannot write results to {out}: {exc.strerror or exc}") from None
        return cls(directory, run_id)

    def add_round(self, row: SummaryRow, record: RoundRecord, samples_ms: Iterable[float]) -> None:
        """One finished timing round of one workload (samples, then its record), on disk before the next."""
        round_index = record.round
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
        what = f"round {round_index + 1} of {row.model} batch {row.infer_batch_size}"
        if lines:
            self._append(SAMPLES_FILE, lines, what)
        self._append(
            ROUNDS_FILE,
            _csv_line(ROUND_COLUMNS, {**record.as_dict(), "run_id": self.run_id, "row_id": row.row_id}),
            what,
        )
        self.rounds_written[str(row.row_id)] = start + len(samples)
        self.open_rounds[str(row.row_id)] = self.open_rounds.get(str(row.row_id), 0) + 1

    def add(self, row: SummaryRow) -> None:
        """The finished summary row (its samples were written round by round before it)."""
        row.run_id = self.run_id
        what = f"the row of {row.model} batch {row.infer_batch_size}"
        self._append(SUMMARY_FILE, _csv_line(SUMMARY_COLUMNS, row.as_dict()), what)
        self.rows_written += 1
        self.open_rounds.pop(str(row.row_id), None)

    def kept(self) -> str:
        """What is safely on disk: finished rows, and finished rounds of rows not finished yet."""
        rounds = sum(self.open_rounds.values())
        partial = f" and {rounds} finished round(s) of unfinished rows" if rounds else ""
        return f"kept the {self.rows_written} finished row(s){partial}, with their samples, in {self.directory}"

    def _append(self, name: str, text: str, what: str) -> None:
        if self.broken is not None:
            raise BenchError(self.broken)
        path = self.directory / name
        try:
            append_durably(path, text)
        except OSError as exc:
            self.broken = f"cannot write {what} to {path}: {exc.strerror or exc}; {self.kept()} ({resume_advice(exc)})"
            raise BenchError(self.broken) from None

    def rewrite_environment(self, env: dict[str, object]) -> None:
        """Replace ``environment.json`` (the sitting adds what it learnt while opening); a failure is one
        line saying what is kept, like a failed append."""
        path = self.directory / ENVIRONMENT_FILE
        try:
            atomic_write_text(path, json.dumps(env, indent=2, default=str))
        except OSError as exc:
            self.broken = f"cannot write {path}: {exc.strerror or exc}; {self.kept()} ({resume_advice(exc)})"
            raise BenchError(self.broken) from None


def resume_advice(exc: OSError) -> str:
    """What to do after a results file could not be written: free space only when space ran out."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        fix = "free space"
    elif exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        fix = "make the results folder writable"
    else:
        fix = "fix the cause"
    return f"{fix}, then run the same command with --resume to continue"


def new_run_dir(out: Path, label: str) -> Path:
    """A new, empty results folder ``<out>/<time>-<label>-<pid>``: every command that writes a run names
    it this way; two runs of one process within a second get ``-2``, ``-3``, ..."""
    stem = f"{time.strftime('%Y%m%d-%H%M%S')}-{label}-{os.getpid()}"
    for attempt in range(100):
        directory = Path(out) / (stem if attempt == 0 else f"{stem}-{attempt + 1}")
        try:
            directory.mkdir(parents=True, exist_ok=False)
            return directory
        except FileExistsError:
            continue
        except OSError as exc:
            raise BenchError(f"cannot write results to {out}: {exc.strerror or exc}") from None
    raise BenchError(f"cannot write results to {out}: 100 runs named {stem} already exist")


def append_durably(path: Path, text: str) -> None:
    """Append ``text`` and fsync; if any of it fails, cut the file back to its old length and raise.

    ``os.write`` may write only part of its buffer (or write part, then fail on a full disk); the
    loop finishes a short write, and a failure truncates, so the file never ends in half a line.
    If even the truncation fails, the half line has no newline and readers drop it.
    """
    data = memoryview(text.encode("utf-8"))
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        size = os.fstat(fd).st_size
        try:
            while data:
                written = os.write(fd, data)
                if written <= 0:
                    raise OSError(errno.EIO, f"write to {path} made no progress")
                data = data[written:]
            os.fsync(fd)
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, size)
                os.fsync(fd)
            raise
    finally:
        os.close(fd)


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
            if p.name != SUMMARY_FILE:  # any other file would silently stand for the folder it lies in
                raise BenchError(f"{p} is a file: give a results folder (or a run's {SUMMARY_FILE})")
            found.append(p.parent)
        elif (p / SUMMARY_FILE).exists():
            found.append(p)
        else:
            found.extend(sorted(s.parent for s in p.glob(f"*/{SUMMARY_FILE}")))
            found.extend(sorted(s.parent for s in p.glob(f"*/*/{SUMMARY_FILE}")))
    return list(dict.fromkeys(found))


def sitting_of(resumes: Mapping[str, object]) -> dict[str, str]:
    """run_id -> its sitting, given each run's ``resumes`` (environment.json): a run that ``--resume``
    continued and the run that continued it are one sitting (its rows were split between the two folders
    when it was interrupted), named by its earliest run. Runs not in ``resumes`` are not followed."""
    parent = {run: run for run in resumes}

    def root(run: str) -> str:
        while parent[run] != run:
            run = parent[run]
        return run

    for run, earlier in resumes.items():
        for other in earlier if isinstance(earlier, list) else []:
            if isinstance(other, str) and other in parent:
                a, b = sorted((root(run), root(other)))
                parent[b] = a
    return {run: root(run) for run in resumes}


def continued_runs(envs: Mapping[Path, Mapping[str, object]]) -> dict[str, object]:
    """Run folder name -> the runs it continues, given each run folder's environment: its ``resumes``; for a
    folder written before runs recorded them (a ``--resume`` command without that field), the earlier runs
    of the same command line on the same machine (``env_id``) in the same results folder, as ``--resume``
    skipped their finished rows and carried their rounds on. Else the run continues none."""

    def command(env: Mapping[str, object]) -> list[str] | None:
        argv = env.get("argv")
        return [a for a in argv[1:] if a != "--resume"] if isinstance(argv, list) else None

    out: dict[str, object] = {}
    for run_dir, env in envs.items():
        argv = env.get("argv")
        if "resumes" in env or not isinstance(argv, list) or "--resume" not in argv:
            out[run_dir.name] = env.get("resumes")
            continue
        out[run_dir.name] = [
            other.name
            for other, earlier in envs.items()
            if other.parent == run_dir.parent
            and earlier.get("env_id") == env.get("env_id")
            and command(earlier) == command(env)
            and str(earlier.get("started_at", "")) < str(env.get("started_at", ""))
        ]
    return out


def sittings(run_dirs: Iterable[Path]) -> list[list[Path]]:
    """``run_dirs`` grouped into sittings (:func:`sitting_of`), in the order each sitting is first met."""
    run_dirs = list(run_dirs)
    of = sitting_of(continued_runs({d: load_environment(d) for d in run_dirs}))
    groups: dict[str, list[Path]] = {}
    for d in run_dirs:
        groups.setdefault(of[d.name], []).append(d)
    return list(groups.values())


def load_environment(run_dir: Path) -> dict[str, object]:
    path = run_dir / ENVIRONMENT_FILE
    if not path.exists():
        raise BenchError(f"{path}: missing, so {run_dir} is not a results directory of this suite")
    try:  # a regular file only (a pipe planted here would block), parsed however deep it nests
        env = parse_document(read_input_file(path).decode("utf-8"), "json")
    except (UnicodeDecodeError, ValueError):
        raise BenchError(f"{path}: unreadable, so {run_dir} is not a results directory of this suite") from None
    if not isinstance(env, dict) or env.get("suite") != SUITE_ID:
        raise BenchError(f"{path}: lacks this suite's marker, so {run_dir} is not one of its results directories")
    if not isinstance(env.get("env_id"), str) or not env["env_id"]:
        raise BenchError(f"{path}: has no env_id, so its rows cannot be told apart from other machines'")
    return env


def load_manifest(path: Path) -> list[ManifestEntry]:
    """The artifacts ``bench export`` listed in ``path`` (:class:`ManifestEntry`, the one loader of a
    manifest); entries that do not parse are left out. A one-line :class:`BenchError` when the file is
    unreadable, not JSON or not this suite's manifest."""
    try:
        document = parse_document(read_input_file(path).decode("utf-8"), "json")  # a regular file only
    except json.JSONDecodeError as exc:
        raise BenchError(f"{path}:{exc.lineno}: not a JSON manifest ({exc.msg})") from None
    except UnicodeDecodeError:
        raise BenchError(f"{path}: not a JSON manifest (not UTF-8 text)") from None
    except ValueError as exc:
        raise BenchError(f"{path}: not a JSON manifest ({exc})") from None
    if (
        not isinstance(document, dict)
        or document.get("suite") != SUITE_ID
        or not isinstance(document.get("artifacts"), list)
    ):
        raise BenchError(f"{path}: not a manifest written by bench export")
    return [e for e in map(ManifestEntry.load, document["artifacts"]) if e is not None]


class Problems:
    """What a loader had to leave out of one file, said in one warning line per file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.dropped: list[str] = []
        self.blanked: list[str] = []
        self.other: list[str] = []
        self.damaged: list[str] = []
        """Lines that could not be read at all (torn, wrong number of fields, NUL bytes)."""

    def lines(self) -> list[str]:
        out = [f"{self.path}: {text}" for text in (*self.damaged, *self.other)]
        for items, verb in (
            (self.dropped, "ignored {} row(s)"),
            (self.blanked, "left out {} value(s) that do not parse or are out of range"),
        ):
            if items:
                shown = "; ".join(items[:3]) + (f"; and {len(items) - 3} more" if len(items) > 3 else "")
                out.append(f"{self.path}: {verb.format(len(items))} ({shown})")
        return out


def _read_csv(path: Path, problems: Problems | None = None) -> pd.DataFrame:
    """A CSV file of this suite, indexed by file line number; damaged lines are dropped and said so.

    A torn last line (no newline: the writer died mid-line) and lines with the wrong number of fields
    are dropped; a header naming a column twice, or no header at all, is an error.
    """
    if problems is None:  # said at once
        problems = Problems(path)
        df = _read_csv(path, problems)
        for text in problems.lines():
            warn(text)
        return df
    if not path.exists():
        raise BenchError(f"{path}: missing")
    try:  # a regular file only: a pipe planted here would block forever
        text = read_input_file(path).decode("utf-8-sig")  # -sig: a file saved by a spreadsheet starts with a BOM
    except UnicodeDecodeError as exc:
        raise BenchError(f"{path}: unreadable ({type(exc).__name__})") from None
    if text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
        problems.damaged.append("dropped a half-written last line")
    if "\0" in text:  # a crash can leave blocks of zeros where lines were being written
        lines = text.splitlines(keepends=True)
        damaged = sum("\0" in line for line in lines)
        problems.damaged.append(f"dropped {damaged} line(s) holding NUL bytes (damaged on disk)")
        text = "".join("\n" if "\0" in line else line for line in lines)  # blank: keeps the line numbers
    if not text.strip():
        raise BenchError(f"{path}: empty (not even a header line)")
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
        body: list[tuple[int, list[str]]] = []
        for fields in reader:
            body.append((reader.line_num, fields))
    except csv.Error as exc:
        raise BenchError(f"{path}: not a CSV file ({exc})") from None
    repeated = sorted({c for c in header if header.count(c) > 1})
    if repeated:
        raise BenchError(f"{path}: names column(s) {', '.join(repeated)} more than once")
    torn = [line for line, fields in body if len(fields) != len(header) and fields]
    if torn:
        problems.damaged.append(
            f"skipped {len(torn)} line(s) with the wrong number of fields (line {', '.join(map(str, torn[:5]))})"
        )
    rows = [(line, fields) for line, fields in body if len(fields) == len(header)]
    df = pd.DataFrame([f for _, f in rows], columns=header, index=[line for line, _ in rows], dtype=object)
    return df.replace("", None)


# ------------------------------------------------------------------------------------ checking values

_SUMMARY_SPECS = {f.name: f for f in dataclasses.fields(SummaryRow)}


def _cell_problem(name: str, text: str) -> str | None:
    """Why ``text`` is not a value of summary column ``name`` (its constraints are in the schema)."""
    return field_problem(_SUMMARY_SPECS[name], text)


def _short(text: object) -> str:
    text = str(text)
    return repr(text if len(text) <= 24 else text[:21] + "...")


def _checked(raw: pd.DataFrame, problems: Problems, env_id: str) -> pd.DataFrame:
    """``raw`` without rows whose identity, status or (ok rows) headline latency does not parse, or
    that claim another machine than the run's ``environment.json``; other values that do not parse
    are left out of their row. Each one is named in ``problems``."""
    raw = raw.copy()
    keep = pd.Series(True, index=raw.index)
    for line, row in raw.to_dict("index").items():  # (iterrows would turn None into NaN)
        blank = [c for c in (*REQUIRED_COLUMNS, "row_id", "run_id") if c in row and not row[c]]
        if row["status"] not in STATUSES:
            why = f"status {_short(row['status'] or '')} is not one of {', '.join(STATUSES)}"
        elif blank:
            why = f"{', '.join(blank)} empty"
        elif row["env_id"] != env_id:
            why = f"env_id {_short(row['env_id'])} is not this run's ({env_id}, environment.json)"
        else:
            continue
        keep[line] = False
        problems.dropped.append(f"line {line}: {why}")
    for name in raw.columns:
        kind = COLUMN_KINDS.get(name)
        if kind is None or kind == "str":
            continue
        for line, text in raw[name].items():
            if text is None or not keep[line]:
                continue
            why = _cell_problem(name, text)
            if why is None:
                continue
            where = f"line {line}: {name} {_short(text)} is {why}"
            if name in IDENTITY_FIELDS or (name == "latency_median_ms" and raw.at[line, "status"] == STATUS_OK):
                keep[line] = False
                problems.dropped.append(where)
            else:
                raw.at[line, name] = None
                problems.blanked.append(where)
    return raw[keep]


def _own_options(backend: str, options: str) -> str:
    """Only the backend's own options (runs before schema 2 recorded every backend's options on every row)."""
    backends = registry()
    try:
        values = json.loads(options)
    except ValueError:
        return "{}"
    if not isinstance(values, dict) or backend not in backends:
        return options if isinstance(values, dict) else "{}"
    declared = {f.name for f in dataclasses.fields(backends.backend_class(backend).Options)}
    return json.dumps({k: v for k, v in values.items() if k in declared}, sort_keys=True)


def load_summary(run_dir: Path, problems: Problems | None = None) -> pd.DataFrame:
    """One run's summary, typed by the schema; what cannot be used is left out and said in ``problems``.

    Without ``problems`` the warnings are printed at once.
    """
    env = load_environment(run_dir)
    path = run_dir / SUMMARY_FILE
    mine = problems if problems is not None else Problems(path)
    raw = _read_csv(path, mine)
    missing = [c for c in REQUIRED_COLUMNS if c not in raw.columns]
    if missing:
        raise BenchError(f"{path}: not a summary file of this suite (missing columns: {', '.join(missing)})")
    if "latency_median_ms" not in raw.columns and (raw["status"] == STATUS_OK).any():
        raise BenchError(f"{path}: has ok rows but no latency_median_ms column")
    if env.get("schema_version") == SCHEMA_VERSION:  # older runs lack newer columns; this one should not
        absent = [c for c in SUMMARY_COLUMNS if c not in raw.columns]
        if absent:
            shown = ", ".join(absent[:4]) + (f" and {len(absent) - 4} more" if len(absent) > 4 else "")
            mine.other.append(f"lacks column(s) {shown}; they read as not measured")
    df = _fill_artifact_size(fill_headline(typed(_checked(raw, mine, str(env["env_id"])))))
    version = env.get("schema_version")
    if not (isinstance(version, int) and version >= 2):  # schema 2 rows hold their own backend's options only
        df["backend_options"] = [_own_options(b, o) for b, o in zip(df["backend"], df["backend_options"], strict=True)]
    ok = df["status"] == STATUS_OK
    headless = pd.Series([headline_statistic(r) is None for r in df.to_dict("records")], index=df.index, dtype=bool)
    incomplete = ok & (headless | df["infer_batch_size"].isna() | df["infer_img_size"].isna())
    for line in df.index[incomplete]:
        mine.dropped.append(f"line {line}: an ok row without its latency, batch or size")
    df = _one_row_per_cell(_interval_holds_headline(df[~incomplete], mine), mine)
    if problems is None:
        for text in mine.lines():
            warn(text)
    return df


_SIZE_IN_DETAIL = ("pte_mb", "tflite_mb")
"""What rows written before ``artifact_mb`` existed (schema 4) said about their artifact's size, in
``runtime_detail``: ExecuTorch's .pte and LiteRT's .tflite."""


def _fill_artifact_size(df: pd.DataFrame) -> pd.DataFrame:
    """``artifact_mb`` of older rows from the size their ``runtime_detail`` recorded, where it did."""
    if "runtime_detail" not in df or "artifact_mb" not in df:
        return df
    missing = df["artifact_mb"].isna()
    for index in df.index[missing]:
        try:
            detail = json.loads(str(df.at[index, "runtime_detail"]))
        except (ValueError, RecursionError):  # not the suite's JSON: no size to take from it
            continue
        sizes = [detail.get(k) for k in _SIZE_IN_DETAIL] if isinstance(detail, dict) else []
        size = next((finite_number(v) for v in sizes if finite_number(v) is not None), None)
        if size is not None and size >= 0:
            df.at[index, "artifact_mb"] = size
    return df


def _interval_holds_headline(df: pd.DataFrame, problems: Problems) -> pd.DataFrame:
    """Leave out an interval that does not hold its headline (low <= latency_ms <= high): each end may be a
    plausible number, yet together they are no interval, and a plot would draw negative error bars."""
    low, high, headline = df["latency_ci_low_ms"], df["latency_ci_high_ms"], df["latency_ms"]
    ends = low.notna() | high.notna()
    broken = ends & ~(low.notna() & high.notna() & (low <= headline) & (headline <= high))
    for line in df.index[broken]:
        problems.blanked.append(
            f"line {line}: interval [{low[line]:g}, {high[line]:g}] does not hold the headline {headline[line]:g} ms"
        )
    df.loc[broken, ["latency_ci_low_ms", "latency_ci_high_ms"]] = np.nan
    return df


def _one_row_per_cell(df: pd.DataFrame, problems: Problems) -> pd.DataFrame:
    """One row per cell and setting: a run measures each once, so a second row of one (a file appended to,
    an older import of two outputs of one artifact) is left out and said. The last measured row is kept
    (else the last row), as ``report`` keeps a setting's latest run."""
    if df.empty:
        return df
    identity = {line: CellKey.of(r) for line, r in df.to_dict("index").items()}
    is_measured = measured(df)
    kept: dict[CellKey, int] = {}
    for line in sorted(df.index, key=lambda line: (bool(is_measured[line]), line)):  # measured rows win, then later
        kept[identity[line]] = line
    repeated = [line for line in df.index if kept[identity[line]] != line]
    for line in repeated:
        problems.dropped.append(f"line {line}: the same cell and setting as line {kept[identity[line]]}, which is used")
    return df.drop(index=repeated)


def load_samples(run_dir: Path, problems: Problems | None = None) -> pd.DataFrame:
    """``run_id, row_id, round, iteration, latency_ms`` (older runs without rounds read as one round)."""
    path = run_dir / SAMPLES_FILE
    mine = problems if problems is not None else Problems(path)
    raw = _read_csv(path, mine) if path.exists() else pd.DataFrame(columns=list(SAMPLE_COLUMNS))
    missing = [c for c in ("run_id", "row_id", "latency_ms") if c not in raw.columns]
    if missing:
        raise BenchError(f"{path}: not a samples file of this suite (missing columns: {', '.join(missing)})")
    s = raw.copy()
    latency = pd.to_numeric(s["latency_ms"], errors="coerce")
    bad = ~latency.between(MIN_LATENCY_MS, MAX_LATENCY_MS) | s["run_id"].isna() | s["row_id"].isna()
    for name in ("round", "iteration"):
        if name in s:
            number = pd.to_numeric(s[name], errors="coerce")
            bad |= ~(number.map(math.isfinite) & (number >= 0) & (number < 2**31) & (number == number.round()))
    if bad.any():
        lines = ", ".join(map(str, s.index[bad][:5]))
        mine.other.append(f"ignored {int(bad.sum())} sample line(s) whose ids or numbers do not parse (line {lines})")
        s = s[~bad]
    if "iteration" in s:  # the same iteration twice (a file appended to itself) would count twice
        again = s.duplicated(["run_id", "row_id", "round", "iteration"] if "round" in s else ["row_id", "iteration"])
        if again.any():
            lines = ", ".join(map(str, s.index[again][:5]))
            mine.other.append(f"ignored {int(again.sum())} repeated sample line(s) (line {lines})")
            s = s[~again]
    s["latency_ms"] = pd.to_numeric(s["latency_ms"]).astype(float)
    s["round"] = pd.to_numeric(s["round"]).astype(int) if "round" in s else 0
    s["iteration"] = pd.to_numeric(s["iteration"]).astype(int) if "iteration" in s else range(len(s))
    for c in ("run_id", "row_id"):
        s[c] = s[c].astype(str)
    if problems is None:
        for text in mine.lines():
            warn(text)
    return s[["run_id", "row_id", "round", "iteration", "latency_ms"]].reset_index(drop=True)


def load_results(paths: Iterable[Path]) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, dict[str, object]]]:
    """Merge summaries and samples of many runs; environments are returned keyed by ``env_id``. Each row's
    ``sitting`` names the sitting it was timed in (:func:`sitting_of`: a run and its ``--resume`` are one).

    What had to be left out is warned about once per file, after everything loaded; when nothing
    usable is left at all, the error names the file and why instead.
    """
    paths = list(paths)
    run_dirs = find_run_dirs(paths)
    if not run_dirs:
        raise BenchError(f"no results found in {', '.join(map(str, paths))}")
    summaries, samples, environments, found = [], [], {}, []
    seen: dict[str, Path] = {}  # run_id -> the folder it was read from
    resumes: dict[str, object] = {}
    envs = {run_dir: load_environment(run_dir) for run_dir in run_dirs}
    continues = continued_runs(envs)
    for run_dir in run_dirs:
        env = envs[run_dir]
        summary_problems, sample_problems = Problems(run_dir / SUMMARY_FILE), Problems(run_dir / SAMPLES_FILE)
        summary = load_summary(run_dir, summary_problems)
        found.append(summary_problems)
        again = sorted(set(summary["run_id"].astype(str)) & seen.keys())
        if again:  # a copy of a run (the same folder under two --results): its cells would count twice
            summary_problems.other.append(f"holds run {again[0]} again (read from {seen[again[0]]}): left out")
            continue
        seen.update(dict.fromkeys(summary["run_id"].astype(str), run_dir))
        resumes.update(dict.fromkeys(summary["run_id"].astype(str), continues[run_dir.name]))
        summaries.append(summary)
        samples.append(load_samples(run_dir, sample_problems))
        found.append(sample_problems)
        environments[str(env["env_id"])] = env
    summary = pd.concat(summaries, ignore_index=True)
    if summary.empty:
        damaged = next((p for p in found if p.dropped or p.damaged), None)
        if damaged is not None:
            reasons = [*damaged.damaged, *damaged.dropped]
            more = f"; and {len(reasons) - 1} more" if len(reasons) > 1 else ""
            raise BenchError(f"{damaged.path}: none of its rows can be used ({reasons[0]}{more})")
        where = run_dirs[0] / SUMMARY_FILE if len(run_dirs) == 1 else f"the {len(run_dirs)} runs in {paths[0]}"
        raise BenchError(f"{where}: no finished rows (a run stopped before its first row ended?)")
    if not (summary["status"] == STATUS_OK).any():
        damaged = next((p for p in found if any("ok row" in d or "latency" in d for d in p.dropped)), None)
        if damaged is not None:
            raise BenchError(
                f"{damaged.path}: no successful measurement left: its ok rows do not parse ({damaged.dropped[0]})"
            )
    for problems in found:
        for text in problems.lines():
            warn(text)
    summary["sitting"] = summary["run_id"].astype(str).map(sitting_of(resumes))
    summary["_order"] = range(len(summary))
    summary = summary.sort_values(["timestamp", "run_id", "_order"]).drop(columns="_order")  # oldest first
    return summary, pd.concat(samples, ignore_index=True), environments


@dataclass
class PartialRow:
    """Finished rounds of a workload whose run stopped before its last round (for ``--resume``)."""

    records: list[RoundRecord]
    samples: dict[int, list[float]]
    run_id: str = ""
    """The run whose rounds these are (the resumed run records it among the runs it continues)."""


@dataclass
class ResumeState:
    """What ``--resume`` finds in a results folder, read in one pass over its runs."""

    done: dict[tuple[str, str], str]
    """``(settings_key, env_id)`` of every successful row -> its run (the resumed run records the runs it
    continues)."""
    partial: dict[str, PartialRow]
    """row_id -> finished rounds of rows of this environment that have rounds but no summary row."""


def resume_state(out: Path, env_id: str) -> ResumeState:
    """Finished rows (any environment) and unfinished rows' rounds (this environment) under ``out``."""
    state = ResumeState({}, {})
    out = Path(out)
    if not out.exists():
        return state
    for run_dir in find_run_dirs([out]):
        summary = load_summary(run_dir)
        ok = summary[summary["status"] == STATUS_OK]
        keys = zip(ok["settings_key"].astype(str), ok["env_id"].astype(str), strict=True)
        state.done.update(dict.fromkeys(keys, run_dir.name))
        if load_environment(run_dir).get("env_id") == env_id:
            _collect_partial(run_dir, set(summary["row_id"].astype(str)), state.partial)
    return state


def _collect_partial(run_dir: Path, finished: set[str], found: dict[str, PartialRow]) -> None:
    """Add the rounds of ``run_dir``'s unfinished rows to ``found`` (the longest prefix of rounds per row).

    A round record whose numbers do not parse is not resumed (nor is any later round of its row).
    """
    rounds_path = run_dir / ROUNDS_FILE
    if not rounds_path.exists():
        return
    rounds = _read_csv(rounds_path)
    if rounds.empty or "row_id" not in rounds or "round" not in rounds:
        return
    rounds = rounds[rounds["row_id"].notna() & ~rounds["row_id"].isin(finished)]
    if rounds.empty:
        return
    samples = load_samples(run_dir)
    unusable = 0
    for row_id, group in rounds.groupby("row_id", sort=False):
        records: list[RoundRecord] = []
        for r in group.to_dict("records"):
            record = RoundRecord.load(r)
            if record is not None:
                records.append(record)
            else:
                unusable += 1
        records.sort(key=lambda r: r.round)
        records = [r for i, r in enumerate(records) if r.round == i]  # a prefix
        mine = samples[samples["row_id"] == row_id]
        by_round = {i: mine.loc[mine["round"] == i, "latency_ms"].tolist() for i in range(len(records))}
        if len(records) > len(found.get(str(row_id), PartialRow([], {})).records):
            found[str(row_id)] = PartialRow(records, by_round, run_dir.name)
    if unusable:
        warn(f"{rounds_path}: {unusable} round record(s) do not parse and are not resumed")
