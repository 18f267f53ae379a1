"""The on-disk result store: one directory per run, rows flushed as soon as they are measured.

Layout of ``<out>/<run_id>/``:

- ``environment.json`` -- the machine and software the run used (written first, once);
- ``summary.csv``      -- one row per (model, batch size, setting); timm-compatible columns first;
- ``samples.csv``      -- every timed iteration in long format (``row_id, iteration, latency_ms``).

Each run gets its own directory (timestamp + pid), so concurrent runs never share a file. Rows are
written with a single ``write`` and ``fsync``'d, so an interrupted run leaves parseable files.
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bench.errors import BenchError
from bench.stats import STAT_COLUMNS

SUITE_ID = "mobile-backbone-bench"
SCHEMA_VERSION = 1

SUMMARY_FILE = "summary.csv"
SAMPLES_FILE = "samples.csv"
ENVIRONMENT_FILE = "environment.json"

# timm's benchmark CSV columns come first so the files join timm's published results.
TIMM_COLUMNS = (
    "model",
    "infer_img_size",
    "infer_batch_size",
    "infer_samples_per_sec",
    "infer_step_time",
    "param_count",
    "infer_gmacs",
)

SUMMARY_COLUMNS = (
    *TIMM_COLUMNS,
    "family",
    "backend",
    "device",
    "precision",
    "threads",
    "channels_last",
    "compile",
    "backend_options",
    "status",
    "error",
    *STAT_COLUMNS,
    "throughput_median_ips",
    "iterations",
    "warmup_iterations",
    "warmup_s",
    "measure_s",
    "prepare_s",
    "load_s",
    "first_inference_ms",
    "peak_rss_mb",
    "cuda_max_allocated_mb",
    "parity_max_abs_diff",
    "parity_cosine",
    "parity_top1_agreement",
    "parity_tolerance",
    "runtime_detail",
    "settings_key",
    "env_id",
    "run_id",
    "row_id",
    "timestamp",
)

SAMPLE_COLUMNS = ("run_id", "row_id", "model", "backend", "infer_batch_size", "iteration", "latency_ms")

STATUS_OK = "ok"
STATUS_FAILED = "failed"
STATUS_PARITY_FAILED = "parity_failed"
STATUS_NOT_TIMED = "not_timed"


def _csv_line(columns: Iterable[str], row: Mapping[str, object]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(["" if row.get(c) is None else row.get(c) for c in columns])
    return buf.getvalue()


@dataclass
class RunWriter:
    """Appends rows to one run directory; create it with :meth:`create`."""

    directory: Path
    run_id: str

    @classmethod
    def create(cls, out: Path, label: str, environment: Mapping[str, object]) -> RunWriter:
        run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{label}-{os.getpid()}"
        directory = Path(out) / run_id
        try:
            directory.mkdir(parents=True, exist_ok=False)
            (directory / ENVIRONMENT_FILE).write_text(json.dumps(dict(environment), indent=2, default=str))
            for name, columns in ((SUMMARY_FILE, SUMMARY_COLUMNS), (SAMPLES_FILE, SAMPLE_COLUMNS)):
                (directory / name).write_text(",".join(columns) + "\n")
        except OSError as exc:
            raise BenchError(f"cannot write results to {out}: {exc.strerror or exc}") from None
        return cls(directory, run_id)

    def add(self, summary: Mapping[str, object], samples_ms: Iterable[float] = ()) -> None:
        """Write the samples, then the summary row that refers to them (both flushed to disk)."""
        row = {**summary, "run_id": self.run_id}
        lines = "".join(
            _csv_line(
                SAMPLE_COLUMNS,
                {
                    "run_id": self.run_id,
                    "row_id": row["row_id"],
                    "model": row["model"],
                    "backend": row["backend"],
                    "infer_batch_size": row["infer_batch_size"],
                    "iteration": i,
                    "latency_ms": f"{ms:.6f}",
                },
            )
            for i, ms in enumerate(samples_ms)
        )
        if lines:
            _append(self.directory / SAMPLES_FILE, lines)
        _append(self.directory / SUMMARY_FILE, _csv_line(SUMMARY_COLUMNS, row))


def _append(path: Path, text: str) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


# ---------------------------------------------------------------------------------------------- reading


def find_run_dirs(paths: Iterable[Path]) -> list[Path]:
    """Run directories under ``paths`` (a run directory itself, a results root, or a summary.csv)."""
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
    return list(dict.fromkeys(found))


def load_environment(run_dir: Path) -> dict[str, object]:
    path = run_dir / ENVIRONMENT_FILE
    try:
        env = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        raise BenchError(
            f"{run_dir} is not a results directory of this suite (unreadable {ENVIRONMENT_FILE})"
        ) from None
    if not isinstance(env, dict) or env.get("suite") != SUITE_ID:
        raise BenchError(f"{run_dir} is not a results directory of this suite ({ENVIRONMENT_FILE} lacks our marker)")
    return env


def load_summary(run_dir: Path) -> pd.DataFrame:
    """Read one run's summary, checking it is ours; a half-written last line is dropped."""
    load_environment(run_dir)
    path = run_dir / SUMMARY_FILE
    try:
        df = pd.read_csv(path, on_bad_lines="skip", keep_default_na=False, na_values=[""])
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise BenchError(f"cannot read {path}: {exc}") from None
    missing = [c for c in ("model", "backend", "status", "settings_key", "env_id") if c not in df.columns]
    if missing:
        raise BenchError(f"{path} is not a summary file of this suite (missing columns: {', '.join(missing)})")
    return df


def load_samples(run_dir: Path) -> pd.DataFrame:
    path = run_dir / SAMPLES_FILE
    try:
        return pd.read_csv(path, on_bad_lines="skip")
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise BenchError(f"cannot read {path}: {exc}") from None


def load_results(paths: Iterable[Path]) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, dict[str, object]]]:
    """Merge summaries and samples of many runs; environments are returned keyed by ``env_id``."""
    run_dirs = find_run_dirs(paths)
    if not run_dirs:
        raise BenchError(f"no results found in {', '.join(map(str, paths))}")
    summaries, samples, environments = [], [], {}
    for run_dir in run_dirs:
        env = load_environment(run_dir)
        summaries.append(load_summary(run_dir))
        samples.append(load_samples(run_dir))
        environments[str(env["env_id"])] = env
    return (
        pd.concat(summaries, ignore_index=True),
        pd.concat(samples, ignore_index=True),
        environments,
    )


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
