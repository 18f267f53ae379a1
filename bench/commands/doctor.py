"""``bench doctor``: is this machine fit to benchmark on right now, and what to change if not."""

from __future__ import annotations

import argparse
import json
import os

from bench.core import arguments
from bench.core.measure import system
from bench.core.measure.machine import floor_key
from bench.core.records.environment import cpu_model
from bench.core.report.formatting import FORMATS, render


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sample",
        type=arguments.seconds,
        default=1.0,
        metavar="S",
        help="seconds to sample steal and CPU use (default: 1)",
    )
    parser.add_argument("--format", choices=(*FORMATS,), default="table", help="output format (default: table)")
    arguments.add_cache_dir_argument(parser)  # where earlier sittings left how far they disagreed
    parser.epilog = "exit status: 0 fit (ok or unknown), 1 a check warns or fails"


def main(args: argparse.Namespace) -> int:
    import pandas as pd

    checks = system.quick_checks() + system.sampled_checks(max(args.sample, 0.1))
    key = floor_key(cpu_model(), os.cpu_count(), arguments.default_threads())
    checks.append(system.sitting_spread(args.cache_dir, key))
    verdict = system.overall(checks)
    if args.format == "json":
        print(json.dumps(system.as_dict(checks), indent=2))
    else:
        frame = pd.DataFrame([{"check": c.name, "verdict": c.verdict, "value": c.value} for c in checks])
        print(render(frame, args.format))
        advice = [f"- {c.name}: {c.advice}" for c in checks if c.advice and c.verdict in (system.WARN, system.BAD)]
        if advice:
            print("\nadvice:\n" + "\n".join(advice))
        print(f"\nverdict: {verdict}")
    return 0 if verdict in (system.OK, system.UNKNOWN) else 1
