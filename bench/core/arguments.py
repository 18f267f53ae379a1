"""Command-line arguments every sub-command shares, in one place: value types and the shared flags.

Each type turns text into a checked value or raises :class:`argparse.ArgumentTypeError`, which the
parser prints as one line with exit code 2; the accepted form shows in ``--help`` via ``metavar``.
Only ASCII digits count as digits (``'²'.isdigit()`` is true in Python, ``int('²')`` fails).

A flag that several commands take (``--models``, ``--resolution``, ``--device``, ``--threads``,
``--cache-dir``, ``--warmup``/``--iters``) is defined once here, by an ``add_*`` function, with one type,
one meaning and one default; a command only says whether it takes it.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Collection
from pathlib import Path

import models
from bench.core.errors import BenchError

MAX_THREADS = 1024
"""Far above any machine's cores, far below what makes runtimes crash while allocating thread pools."""
MAX_SEED = 2**32 - 1
"""NumPy's and every runtime's seed range."""
MAX_BATCH = 1 << 20
MAX_RESOLUTION = 4096
"""Largest input height = width a command accepts."""
CACHE_ENV = "BENCH_CACHE_DIR"
"""Environment variable naming the export cache (default :data:`DEFAULT_CACHE_DIR`)."""
DEFAULT_CACHE_DIR = ".cache/bench"

Parser = argparse.ArgumentParser | argparse._ArgumentGroup


def _whole(token: str, what: str, low: int, high: int) -> int:
    token = token.strip()
    # ASCII digits only, and few enough of them (int() of 5000 digits raises rather than being out of range)
    if not (token.isascii() and token.isdigit()):
        shown = repr(token if len(token) <= 24 else token[:21] + "...") if token else "an empty entry"
        raise argparse.ArgumentTypeError(f"{what} must be whole numbers written with digits 0-9, got {shown}")
    if len(token.lstrip("0")) > len(str(high)) or not low <= int(token) <= high:
        shown = token if len(token) <= 24 else token[:21] + "..."
        raise argparse.ArgumentTypeError(f"{what} must be between {low} and {high}, got {shown}")
    return int(token)


def _values(text: str, what: str, low: int, high: int) -> list[int]:
    values = [_whole(token, what, low, high) for token in str(text).split(",")]
    repeated = sorted({v for v in values if values.count(v) > 1})
    if repeated:
        raise argparse.ArgumentTypeError(f"{what} lists {', '.join(map(str, repeated))} more than once")
    return values


def _named(convert, name: str):
    """Give an argparse type a ``__name__`` (argparse names it in some messages)."""
    convert.__name__ = name
    return convert


def int_list(what: str, high: int = MAX_BATCH, low: int = 1):
    """argparse type: comma-separated distinct whole numbers from ``low`` to ``high``."""
    return _named(lambda text: _values(text, what, low, high), "list of whole numbers")


def count(what: str, high: int = 10**9, low: int = 1):
    """argparse type: one whole number from ``low`` (default 1) to ``high``."""

    def convert(text: str) -> int:
        if "," in text:
            raise argparse.ArgumentTypeError(f"{what} takes one whole number, got {text!r}")
        return _whole(text, what, low, high)

    return _named(convert, "whole number")


def threads(text: str) -> int:
    """argparse type: intra-op threads, 1 to :data:`MAX_THREADS`."""
    return _whole(text, "--threads", 1, MAX_THREADS)


def seed(text: str) -> int:
    """argparse type: a seed from 0 to 2**32-1 (what NumPy and every runtime accept)."""
    return _whole(text, "--seed", 0, MAX_SEED)


def order_seed(text: str) -> int:
    """argparse type: ``--order-seed``, a seed named as itself in its error."""
    return _whole(text, "--order-seed", 0, MAX_SEED)


MAX_SECONDS = 7 * 24 * 3600.0
"""A week: the longest time budget a flag accepts (1e308 s overflowed every row's iteration count)."""


def seconds(text: str) -> float:
    """argparse type: a finite, non-negative number of seconds."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative number of seconds, got {text!r}")
    if value > MAX_SECONDS:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_SECONDS:.0f} s (a week), got {text!r}")
    return value


def add_models_argument(p: Parser, default: str | None = "paper") -> None:
    """``--models``: what :func:`select_models` expands; ``default=None`` makes it required."""
    p.add_argument(
        "--models",
        default=default,
        required=default is None,
        metavar="SPEC[,SPEC...]",
        help="model names, family ids (e.g. casvit), 'paper' (each family's paper variants), 'sized', 'all', "
        "or external networks (file.py:factory, timm:NAME)" + (f" (default: {default})" if default else ""),
    )


def add_resolution_argument(p: Parser, several: bool = False) -> None:
    """``--resolution``: input height = width, 1 to :data:`MAX_RESOLUTION`; ``several`` for a command that
    evaluates a list of them (``flops``). Default: each model's published resolution (None)."""
    p.add_argument(
        "--resolution",
        type=(int_list if several else count)("--resolution", MAX_RESOLUTION),
        default=None,
        metavar="PX[,PX...]" if several else "PX",
        help=f"input size{'s, comma-separated' if several else ''} (default: each model's published resolution)",
    )


def add_precision_argument(p: Parser, choices: tuple[str, ...], help: str = "") -> None:
    """``--precision``: one or more of ``choices``, comma-separated and distinct (a list is measured in one
    sitting: precision is part of a cell, like the runtime)."""

    def convert(text: str) -> tuple[str, ...]:
        values = [token.strip() for token in str(text).split(",")]
        for value in values:
            if value not in choices:
                shown = repr(value) if value else "an empty entry"
                raise argparse.ArgumentTypeError(f"unknown precision {shown}; choose from {', '.join(choices)}")
        repeated = sorted({v for v in values if values.count(v) > 1})
        if repeated:
            raise argparse.ArgumentTypeError(f"lists {', '.join(repeated)} more than once")
        return tuple(values)

    p.add_argument(
        "--precision",
        type=_named(convert, "list of precisions"),
        default=("fp32",),
        metavar="P[,P...]",
        help=f"{help or 'precisions, each measured as its own cell'} ({', '.join(choices)}; default: fp32)",
    )


def add_calibration_arguments(p: Parser) -> None:
    """``--calibration DIR`` and ``--calibration-images N``: the images int8 quantizers calibrate on
    (:mod:`bench.core.interface.calibration`)."""
    p.add_argument(
        "--calibration",
        type=Path,
        default=None,
        metavar="DIR",
        help="images (ImageFolder or flat folder) int8 calibrates on, each through the model's preprocessing "
        "(default: seeded synthetic images, good for timing, not for accuracy)",
    )
    p.add_argument(
        "--calibration-images",
        type=count("--calibration-images", 100_000),
        default=None,
        metavar="N",
        help="images chosen from --calibration DIR with --seed (default: 32)",
    )


def add_device_argument(p: Parser) -> None:
    """``--device``: the kind of processor a session runs on here (each backend lists the ones it supports;
    :func:`bench.core.interface.settings.from_args` checks). A phone or board is ``bench import --device-name``."""
    p.add_argument(
        "--device",
        default="cpu",
        help="the processor to run on: cpu or cuda (torch; onnx with onnxruntime-gpu) (default: cpu)",
    )


def add_threads_argument(p: Parser, default: int | None = None) -> None:
    """``--threads``: intra-op threads, 1 to :data:`MAX_THREADS`; ``None`` (the usual default) means the
    physical cores (:func:`default_threads`)."""
    shown = f"physical cores, here {default_threads()}" if default is None else default
    p.add_argument(
        "--threads",
        type=threads,
        default=default,
        metavar="N",
        help=f"intra-op threads, 1-{MAX_THREADS} (default: {shown})",
    )


def default_cache_dir() -> Path:
    """The export cache: ``$BENCH_CACHE_DIR``, else ``.cache/bench`` (read when asked, not at import)."""
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE_DIR)


def add_cache_dir_argument(p: Parser) -> None:
    """``--cache-dir``: where exports (and converter environments) are cached (:func:`default_cache_dir`)."""
    cache = default_cache_dir()
    p.add_argument(
        "--cache-dir",
        type=Path,
        default=cache,
        metavar="DIR",
        help=f"export cache (default: ${CACHE_ENV}, else {DEFAULT_CACHE_DIR}; here {cache})",
    )


def renamed(new: str) -> type[argparse.Action]:
    """argparse action of a flag's old spelling: still read (into the new flag's ``dest``), with a warning
    on stderr naming ``new``. Its ``help`` is usually ``argparse.SUPPRESS``."""

    class Renamed(argparse.Action):
        def __call__(self, parser, namespace, values, option_string=None) -> None:
            print(f"warning: {option_string} is deprecated here; use {new}", file=sys.stderr)
            setattr(namespace, self.dest, values)

    return Renamed


def add_iteration_arguments(p: Parser, warmup: int, iters: int) -> None:
    """``--warmup N`` and ``--iters N``, defined once for every command that takes them (``run`` times
    with them; ``export`` writes them into the vendor tools' command lines). ``warmup``/``iters`` are the
    defaults (:data:`bench.core.interface.settings.DEFAULT_WARMUP` / ``DEFAULT_STEADY``)."""
    for flag, default, kind in (("--warmup", warmup, "warmup"), ("--iters", iters, "timed")):
        p.add_argument(
            flag,
            type=count(flag),
            default=default,
            metavar="N",
            help=f"minimum {kind} iterations (default: {default})",
        )


def default_threads() -> int:
    """Physical cores: what ONNX Runtime picks by default, and what latency papers usually pin."""
    import psutil

    return psutil.cpu_count(logical=False) or os.cpu_count() or 1


def select_models(spec: str, known: Collection[str] = ()) -> list[str]:
    """Expand ``spec`` into model names: comma-separated names, family ids, ``paper``, ``sized``, ``all``, and external
    networks (``file.py:factory``, ``package.module:factory``, ``timm:NAME``, a ``.toml``/``.json`` spec;
    see :mod:`models.external`), which are imported and registered here (a bad one: one line, exit 2). ``known``:
    names taken as they are (``report``: the models its results hold, an imported or external one included)."""
    from models import external

    chosen: list[str] = []
    sources: dict[str, str] = {}
    families = models.list_families()
    for token in external.split_models(spec):
        if token == "all":
            chosen.extend(models.list_models())
        elif token == "paper":
            chosen.extend(models.paper_set())
        elif token == "sized":
            chosen.extend(models.sized_set())
        elif token in families:
            chosen.extend(models.list_models(token))
        elif external.is_external(token):
            name, digest = external.register(token)
            if sources.setdefault(name, digest) != digest:
                raise BenchError(f"two --models entries are both named {name!r}; name one with NAME=... ({token})")
            chosen.append(name)
        else:
            if token not in known:
                models.get_card(token)  # raises UnknownModelError with close matches
            chosen.append(token)
    if not chosen:
        raise BenchError("no models selected")
    return list(dict.fromkeys(chosen))
