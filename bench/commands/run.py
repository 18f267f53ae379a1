"""``bench run``: measure models on one or more runtimes in one sitting (:mod:`bench.core.measure.sitting`)."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from bench.backends import (
    ALL_PRECISIONS,
    BACKENDS,
    DEFAULT_BACKEND,
    add_option_arguments,
    available_backend,
    backend_list,
    timing_backends,
)
from bench.core import arguments
from bench.core.errors import BenchError
from bench.core.interface import settings
from bench.core.interface.settings import (
    DEFAULT_BUDGET_S,
    DEFAULT_PROCESSES,
    DEFAULT_ROUNDS,
    DEFAULT_STEADY,
    DEFAULT_WARMUP,
    Settings,
)
from bench.core.measure.engine import retry_can_help
from bench.core.measure.sitting import Runtime, run_sitting
from bench.core.records.schema import STATUS_NOT_TIMED, STATUS_OK, UNSTABLE, SummaryRow
from bench.core.report.formatting import text_table
from bench.core.util import check_writable_dir


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.epilog = "exit status: 0 all rows measured, 1 some rows failed or nothing could be timed, 2 bad input"
    p.add_argument(
        "--backend",
        default=DEFAULT_BACKEND,
        metavar="NAME[,NAME...]",
        help=f"runtimes measured together in one sitting, each in its own worker process ({', '.join(BACKENDS)}; "
        f"'all': every runtime that can time here; default: {DEFAULT_BACKEND})",
    )
    arguments.add_models_argument(p)
    arguments.add_device_argument(p)
    p.add_argument(
        "--batch-sizes",
        type=arguments.int_list("--batch-sizes"),
        default=[1],
        metavar="N[,N...]",
        help="distinct batch sizes (default: 1)",
    )
    arguments.add_resolution_argument(p)
    _add_timing_arguments(p)
    arguments.add_threads_argument(p)
    arguments.add_precision_argument(p, ALL_PRECISIONS, "precisions, each a cell of the sitting like a runtime")
    arguments.add_calibration_arguments(p)
    p.add_argument("--channels-last", action="store_true", help="torch: NHWC model and input")
    p.add_argument("--compile", action="store_true", help="torch: run torch.compile(model) (compiled in warmup)")
    p.add_argument("--checkpoint", type=Path, default=None, help="weights to load (a single model only)")
    p.add_argument("--single-head", action="store_true", help="drop the distillation head (deployable network)")
    p.add_argument("--out", type=Path, default=Path("results"), help="results directory (default: results/)")
    arguments.add_cache_dir_argument(p)
    p.add_argument("--resume", action="store_true", help="skip finished rows; continue unfinished ones by round")
    p.add_argument(
        "--seed", type=arguments.seed, default=0, metavar="N", help="seed for weights and inputs (default: 0)"
    )
    p.add_argument("--no-oom-retry", action="store_true", help="on CUDA out-of-memory, do not retry smaller batches")
    p.add_argument("--no-flops", action="store_true", help="skip the fvcore GMACs count per model")
    p.add_argument("--report", action="store_true", help="write tables and plots to --report-dir after the run")
    p.add_argument("--report-dir", type=Path, default=Path("reports"), help="where --report writes (default: reports/)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_option_arguments(p)


def _add_timing_arguments(p: argparse.ArgumentParser) -> None:
    """How long and how often each cell is timed: iterations, times, rounds, processes, the budget, the order."""
    w, m = DEFAULT_WARMUP, DEFAULT_STEADY
    arguments.add_iteration_arguments(p, w.min_iters, m.min_iters)
    p.add_argument(
        "--warmup-time", type=arguments.seconds, default=w.min_time_s, metavar="S", help=f"(default: {w.min_time_s})"
    )
    p.add_argument(
        "--min-time", type=arguments.seconds, default=m.min_time_s, metavar="S", help=f"(default: {m.min_time_s})"
    )
    p.add_argument(
        "--max-time", type=arguments.seconds, default=m.max_time_s, metavar="S", help=f"(default: {m.max_time_s})"
    )
    p.add_argument(
        "--rounds",
        type=arguments.count("--rounds", 1000),
        default=DEFAULT_ROUNDS,
        metavar="N",
        help="timing rounds over every cell in a shuffled order, each after a machine-speed reference "
        f"(default: {DEFAULT_ROUNDS})",
    )
    p.add_argument(
        "--processes",
        type=arguments.count("--processes", 8),
        default=DEFAULT_PROCESSES,
        metavar="N",
        help="worker processes per runtime; a cell's rounds alternate between them, so a process that settles "
        f"fast or slow shows as spread (default: {DEFAULT_PROCESSES})",
    )
    p.add_argument(
        "--budget",
        type=arguments.seconds,
        default=DEFAULT_BUDGET_S,
        metavar="S",
        help="seconds of extra rounds for cells that ran fewer than 3 rounds on a calm machine; a cell still "
        f"short of them when it is spent is flagged unstable (default: {DEFAULT_BUDGET_S:g}; 0: none)",
    )
    p.add_argument(
        "--order-seed",
        type=arguments.order_seed,
        default=None,
        metavar="N",
        help="seed of the per-round cell order (default: a fresh one, recorded in environment.json)",
    )
    p.add_argument(
        "--retry-unstable",
        type=arguments.seconds,
        default=0.0,
        metavar="S",
        help="spend up to S seconds re-timing rows marked unstable (default: 0, off)",
    )


def parse_runtimes(args: argparse.Namespace) -> list[Runtime]:
    """Check every value and what this machine can do before any model is built: one runtime per
    ``--backend`` entry, each with its own options and the precisions it runs here, all sharing the models
    and the protocol. A precision one runtime of several cannot run is left out of that runtime's cells
    (said on stderr); a runtime that runs none of them, or a precision no runtime runs, is bad input."""
    names = backend_list(args.backend, allow_all=True)
    every = args.backend.strip() == "all"
    if every:
        names = timing_backends(args.device)
        if not names:
            raise BenchError(f"--backend all: no installed runtime can time on {args.device} here")
    # an option of any listed runtime applies to that runtime's cells (checked against all of them)
    first = settings.from_args(args, available_backend(names[0]), also=tuple(names[1:]), check=False)
    runtimes = []
    for name in names:
        backend = available_backend(name)
        mine = replace(first, backend=name, options=backend.Options.from_args(args, name).items())
        runs, refused = settings.runnable_precisions(mine, backend)
        if not runs and not every:
            raise BenchError(next(iter(refused.values())))
        for precision, reason in refused.items():
            print(f"note: {reason}; its {precision} cells are left out", file=sys.stderr)
        if runs:
            runtimes.append(Runtime(replace(mine, precisions=runs), BACKENDS[name], backend.versions()))
    unrun = [p for p in first.precisions if not any(p in rt.settings.precisions for rt in runtimes)]
    if unrun:
        raise BenchError(f"--precision {','.join(unrun)}: no runtime of --backend {args.backend} runs it here")
    return runtimes


def parse_settings(args: argparse.Namespace) -> Settings:
    """The settings of the first runtime of ``--backend``, every value checked (programmatic use, tests)."""
    return settings.from_args(args, available_backend(backend_list(args.backend)[0]))


SUMMARY_VIEW = {
    "backend": "backend",
    "precision": "precision",
    "model": "model",
    "infer_batch_size": "batch",
    "infer_img_size": "res",
    "status": "status",
    "latency_ms": "latency_ms",
    "latency_ci_low_ms": "ci_low",
    "latency_ci_high_ms": "ci_high",
    "latency_median_ms": "median_ms",
    "latency_p90_ms": "p90_ms",
    "round_spread": "rounds±",
    "throughput_median_ips": "img/s",
    "param_count": "params_M",
    "infer_gmacs": "GMACs",
    "parity_max_abs_diff": "parity_max_abs",
    "validity": "validity",
}


def summary_table(rows: list[SummaryRow]) -> str:
    import pandas as pd

    df = pd.DataFrame([r.as_dict() for r in rows]).reindex(columns=list(SUMMARY_VIEW)).rename(columns=SUMMARY_VIEW)
    numeric = ("latency_ms", "ci_low", "ci_high", "median_ms", "p90_ms", "rounds±", "img/s")
    return text_table(df.astype({c: float for c in numeric if c in df}), 3)


def main(args: argparse.Namespace) -> int:
    runtimes = parse_runtimes(args)
    check_writable_dir(args.out, "--out")
    try:
        check_writable_dir(args.cache_dir, "--cache-dir")
    except BenchError as exc:  # a cache it cannot write costs the caching, not the run, where nothing is exported
        if any(getattr(available_backend(rt.name), "uses_cache", True) for rt in runtimes):
            raise
        print(f"warning: {exc}; nothing will be cached", file=sys.stderr)
    if args.report:
        check_writable_dir(args.report_dir, "--report-dir")
    run_dir, rows = run_sitting(
        runtimes,
        args.out,
        args.cache_dir,
        resume=args.resume,
        count_flops=not args.no_flops,
        show_progress=not args.no_progress,
        models_spec=args.models,
        order_seed=args.order_seed,
    )
    if rows:
        print(summary_table(rows))
    print(f"results: {run_dir}")
    if args.report:
        from bench.core.report.report_files import write_report

        for path in write_report([run_dir], args.report_dir, ratio_to=DEFAULT_BACKEND):
            print(f"report: {path}")
    statuses = [r.status for r in rows]
    unstable = [r for r in rows if r.validity == UNSTABLE]
    if unstable:
        fixable = [r for r in unstable if retry_can_help(r) is None]
        if fixable and not args.retry_unstable:
            advice = "; consider --retry-unstable"
        elif len(fixable) < len(unstable):
            why = next(reason for r in unstable if (reason := retry_can_help(r)) is not None)
            advice = f"; re-timing cannot fix {len(unstable) - len(fixable)} of them: {why}"
        else:
            advice = ""
        print(f"{len(unstable)} row(s) unstable (see the validity_reason column){advice}", file=sys.stderr)
    if statuses and all(s == STATUS_NOT_TIMED for s in statuses):
        print(f"error: {rows[0].error}: {len(rows)} workload(s), none timed", file=sys.stderr)
        return 1
    failed = sum(s != STATUS_OK for s in statuses)
    if failed:
        print(
            f"{failed} of {len(rows)} workload(s) did not produce a measurement (see the error column)",
            file=sys.stderr,
        )
        return 1
    return 0
