"""Command line: the arguments of ``bench complexity`` and its ``main``.

Everything counted rather than timed, end to end: the grid, the fits, the verdict and the token
comparison.
"""

from __future__ import annotations

import argparse
import shlex
import time
from pathlib import Path

from bench.backends import BACKENDS, DEFAULT_BACKEND, EAGER_BACKEND, backend_list
from bench.commands.complexity.counting import Grid
from bench.commands.complexity.fits import (
    STATED_MODEL,
    parse_cost_model,
    run_counts,
)
from bench.commands.complexity.latency import LatencySettings, run_latency
from bench.commands.complexity.progress import progress_bar
from bench.commands.complexity.report import _print, save
from bench.core import arguments
from bench.core.arguments import select_models
from bench.core.util import check_writable_dir

DEFAULT_LATENCY_MODELS = "casvit_xs,casvit_s,swiftformer_xs,efficientformerv2_s0,mobilevitv2_050"


_GRID_LISTS = (
    ("--batches", 4096, "1,2,4,8", "grid: batch sizes b"),
    ("--sizes", 4096, "7,14,28,56", "grid: H = W"),
    ("--channels", 65536, "32,48,64,96,128,192,256,384,512", "grid: C"),
    ("--block-batches", 4096, "1,2", "batches at which fvcore runs the whole CAS block"),
    ("--token-sizes", 4096, "7,14,28,56,112,224", "H = W of the token-count comparison"),
    ("--latency-sizes", 4096, "7,14,28,56", "H = W of the mixer latency runs"),
)
"""The list-valued options: (flag, largest value, default, what it sets)."""


def _add_list(parser: argparse.ArgumentParser, flag: str, limit: int, default: str, what: str) -> None:
    parser.add_argument(
        flag,
        type=arguments.int_list(flag, limit),
        default=default,
        metavar="N[,N...]",
        help=f"{what} (default: %(default)s)",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", default=STATED_MODEL, help="cost expression over b, H, W, C, N (default: %(default)s)"
    )
    for flag, limit, default, what in _GRID_LISTS[:4]:
        _add_list(parser, flag, limit, default, what)
    parser.add_argument(
        "--token-width",
        type=arguments.count("--token-width", 65536),
        default="64",
        metavar="C",
        help="C of the CATM-vs-MSA comparison (default: %(default)s)",
    )
    for flag, limit, default, what in _GRID_LISTS[4:]:
        _add_list(parser, flag, limit, default, what)
    parser.add_argument("--latency-models", default=DEFAULT_LATENCY_MODELS, help="networks timed across resolutions")
    _add_list(parser, "--resolutions", 4096, "128,256,512", "input sizes of the network latency runs")
    parser.add_argument(
        "--backends",
        default=f"{EAGER_BACKEND},{DEFAULT_BACKEND}",
        help=f"latency backends, comma-separated: {', '.join(BACKENDS)} (default: %(default)s)",
    )
    arguments.add_threads_argument(parser, default=1)  # 1: the steadiest on a small shared machine
    parser.add_argument(
        "--repeats",
        type=arguments.count("--repeats", 10**6),
        default="5",
        metavar="N",
        help="minimum timed iterations per latency point (default: %(default)s)",
    )
    parser.add_argument("--no-latency", action="store_true", help="counts, fits and verdict only")
    arguments.add_cache_dir_argument(parser)
    parser.add_argument(
        "--out",
        default="reports/complexity",
        help="output directory (default: %(default)s, git-ignored; the committed reference is "
        "reports/reference/complexity)",
    )
    parser.add_argument("--no-save", action="store_true", help="print only, write nothing")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _text(value: object) -> str:
    """An option's value as it is typed: lists comma-separated."""
    return ",".join(map(str, value)) if isinstance(value, list | tuple) else str(value)


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
    grid = Grid(tuple(args.batches), tuple(args.sizes), tuple(args.channels))
    block_batches, width, token_sizes = args.block_batches, args.token_width, args.token_sizes
    if not args.no_save:
        check_writable_dir(Path(args.out), "--out")  # before minutes of work, not after
    if not args.no_latency:  # validate every option before the long work starts
        settings = LatencySettings(
            backends=tuple(backend_list(args.backends, "--backends")),
            threads=args.threads,
            min_iters=args.repeats,
            min_time_s=0.1,
            max_time_s=2.0,
            cache_dir=Path(args.cache_dir),
        )
        names = select_models(args.latency_models)
        resolutions, latency_sizes = args.resolutions, args.latency_sizes
        check_writable_dir(settings.cache_dir, "--cache-dir")  # exports are cached there

    steps = 2 * len(grid.batches) * len(grid.sizes) * len(grid.channels) + 2 * len(token_sizes)
    if not args.no_latency:
        steps += len(settings.backends) * (2 * len(latency_sizes) + len(names) * len(resolutions))
    progress = progress_bar(steps, enabled=not args.no_progress)
    counts = run_counts(model, grid, block_batches, width, token_sizes, progress)
    notes = [
        "options: "
        + " ".join(f"--{k.replace('_', '-')}{'' if v is True else f' {_text(v)}'}" for k, v in _options(args).items()),
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
