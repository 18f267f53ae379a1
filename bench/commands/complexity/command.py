"""Command line: the arguments of ``bench complexity`` and its ``main``.

Everything counted rather than timed, end to end: the grid, the fits, the verdict and the token
comparison.
"""

from __future__ import annotations

import argparse
import os
import shlex
import time
from pathlib import Path

from bench.backends import BACKENDS, REFERENCE_BACKENDS
from bench.commands.complexity.counting import Grid
from bench.commands.complexity.fits import (
    STATED_MODEL,
    parse_cost_model,
    run_counts,
)
from bench.commands.complexity.latency import LatencySettings, run_latency
from bench.commands.complexity.progress import progress_bar
from bench.commands.complexity.report import _print, save
from bench.core.arguments import positive_int, positive_int_list, select_models
from bench.core.errors import BenchError

DEFAULT_LATENCY_MODELS = "casvit_xs,casvit_s,swiftformer_xs,efficientformerv2_s0,mobilevitv2_050"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", default=STATED_MODEL, help="cost expression over b, H, W, C, N (default: %(default)s)"
    )
    parser.add_argument("--batches", default="1,2,4,8", help="grid: batch sizes b (default: %(default)s)")
    parser.add_argument("--sizes", default="7,14,28,56", help="grid: H = W (default: %(default)s)")
    parser.add_argument("--channels", default="32,48,64,96,128,192,256,384,512", help="grid: C")
    parser.add_argument("--block-batches", default="1,2", help="batches at which fvcore runs the whole CAS block")
    parser.add_argument("--token-width", default="64", help="C of the CATM-vs-MSA comparison (default: %(default)s)")
    parser.add_argument("--token-sizes", default="7,14,28,56,112,224", help="H = W of the token-count comparison")
    parser.add_argument("--latency-sizes", default="7,14,28,56", help="H = W of the mixer latency runs")
    parser.add_argument("--latency-models", default=DEFAULT_LATENCY_MODELS, help="networks timed across resolutions")
    parser.add_argument("--resolutions", default="128,256,512", help="input sizes of the network latency runs")
    parser.add_argument(
        "--backends",
        default=",".join(REFERENCE_BACKENDS),
        help=f"latency backends, comma-separated: {', '.join(BACKENDS)} (default: %(default)s)",
    )
    parser.add_argument(
        "--threads",
        default="1",
        help="intra-op threads of both runtimes (default: 1, the steadiest on a small shared machine; 0 = their own)",
    )
    parser.add_argument("--repeats", default="5", help="minimum timed iterations per latency point (default: 5)")
    parser.add_argument("--no-latency", action="store_true", help="counts, fits and verdict only")
    parser.add_argument("--cache-dir", default=os.environ.get("BENCH_CACHE_DIR", ".cache/bench"), help="ONNX cache")
    parser.add_argument(
        "--out",
        default="reports/complexity",
        help="output directory (default: %(default)s, git-ignored; the committed reference is "
        "reports/reference/complexity)",
    )
    parser.add_argument("--no-save", action="store_true", help="print only, write nothing")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _parse_backends(text: str) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(t.strip() for t in text.split(",") if t.strip()))
    if not chosen or any(b not in BACKENDS for b in chosen):
        raise BenchError(f"--backends: choose from {', '.join(BACKENDS)} (got {text!r})")
    return chosen


def _options(args: argparse.Namespace) -> dict[str, object]:
    """The options that shape the results, so a report says how it was made."""
    skip = {"command", "handler", "out", "no_save", "cache_dir", "no_progress"}
    return {k: v for k, v in vars(args).items() if k not in skip and v not in (None, False)}


def regenerate_command(args: argparse.Namespace) -> str:
    """The command that writes this report again: every option spelled out, so later default changes cannot
    silently change what it makes."""

    def text(value: object) -> str:
        return shlex.quote(",".join(map(str, value)) if isinstance(value, list | tuple) else str(value))

    options = [f"--{k.replace('_', '-')}" + ("" if v is True else f" {text(v)}") for k, v in _options(args).items()]
    return " ".join(["python -m bench complexity", *options, f"--out {text(args.out)}"])


def main(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    model = parse_cost_model(args.model)
    grid = Grid(
        tuple(positive_int_list(args.batches, "--batches")),
        tuple(positive_int_list(args.sizes, "--sizes")),
        tuple(positive_int_list(args.channels, "--channels")),
    )
    block_batches = positive_int_list(args.block_batches, "--block-batches")
    width = positive_int(args.token_width, "--token-width")
    token_sizes = positive_int_list(args.token_sizes, "--token-sizes")
    if not args.no_latency:  # validate every option before the long work starts
        settings = LatencySettings(
            backends=_parse_backends(args.backends),
            threads=None if args.threads.strip() == "0" else positive_int(args.threads, "--threads"),
            min_iters=positive_int(args.repeats, "--repeats"),
            min_time_s=0.1,
            max_time_s=2.0,
            cache_dir=Path(args.cache_dir),
        )
        names = select_models(args.latency_models)
        resolutions = positive_int_list(args.resolutions, "--resolutions")
        latency_sizes = positive_int_list(args.latency_sizes, "--latency-sizes")

    steps = 2 * len(grid.batches) * len(grid.sizes) * len(grid.channels) + 2 * len(token_sizes)
    if not args.no_latency:
        steps += len(settings.backends) * (2 * len(latency_sizes) + len(names) * len(resolutions))
    progress = progress_bar(steps, enabled=not args.no_progress)
    counts = run_counts(model, grid, block_batches, width, token_sizes, progress)
    notes = [
        "options: "
        + " ".join(f"--{k.replace('_', '-')}{'' if v is True else f' {v}'}" for k, v in _options(args).items()),
        f"counting, fitting and the token comparison took {time.perf_counter() - started:.1f} s",
    ]
    latency = None
    if not args.no_latency:
        latency = run_latency(settings, names, resolutions, width, latency_sizes, progress)
        notes.append(latency.note)
    progress.close()
    _print(model, counts, latency, notes)
    if not args.no_save:
        written = save(model, counts, latency, notes, Path(args.out), regenerate_command(args))
        print(f"\nwritten to {args.out}/: {', '.join(p.name for p in written)}")
    print(f"done in {time.perf_counter() - started:.1f} s")
    return 0
