"""Command-line value types every sub-command shares, in one place (``type=`` functions for argparse).

Each type turns text into a checked value or raises :class:`argparse.ArgumentTypeError`, which the
parser prints as one line with exit code 2; the accepted form shows in ``--help`` via ``metavar``.
Only ASCII digits count as digits (``'²'.isdigit()`` is true in Python, ``int('²')`` fails).
"""

from __future__ import annotations

import argparse
import math
import os

import models
from bench.core.errors import BenchError

MAX_THREADS = 1024
"""Far above any machine's cores, far below what makes runtimes crash while allocating thread pools."""
MAX_SEED = 2**32 - 1
"""NumPy's and every runtime's seed range."""
MAX_BATCH = 1 << 20


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


def positive_int_list(text: str, what: str = "value", high: int = MAX_BATCH) -> list[int]:
    """``"1,8,32"`` -> ``[1, 8, 32]``: positive, distinct, at most ``high``; a one-line BenchError otherwise."""
    try:
        return _values(text, what, 1, high)
    except argparse.ArgumentTypeError as exc:
        raise BenchError(str(exc)) from None


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


def threads_or_default(text: str) -> int:
    """argparse type: intra-op threads, 1 to :data:`MAX_THREADS`, or 0 for the runtime's own choice."""
    return _whole(text, "--threads", 0, MAX_THREADS)


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


def add_iteration_arguments(p: argparse.ArgumentParser | argparse._ArgumentGroup, warmup: int, iters: int) -> None:
    """``--warmup N`` and ``--iters N``, defined once for every command that takes them (``run`` times
    with them; ``export`` writes them into the vendor tools' command lines). ``warmup``/``iters`` are the
    defaults (:data:`bench.core.settings.DEFAULT_WARMUP` / ``DEFAULT_STEADY``)."""
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


def select_models(spec: str) -> list[str]:
    """Expand ``spec`` into model names: comma-separated names, family ids, ``paper``, ``sized``, ``all``, and external
    networks (``file.py:factory``, ``package.module:factory``, ``timm:NAME``, a ``.toml``/``.json`` spec;
    see :mod:`models.external`), which are imported and registered here (a bad one: one line, exit 2)."""
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
            models.get_card(token)  # raises UnknownModelError with close matches
            chosen.append(token)
    if not chosen:
        raise BenchError("no models selected")
    return list(dict.fromkeys(chosen))
