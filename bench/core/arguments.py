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
    if not (token.isascii() and token.isdigit()):
        raise argparse.ArgumentTypeError(f"{what} must be whole numbers written with digits 0-9, got {token!r}")
    value = int(token)
    if not low <= value <= high:
        raise argparse.ArgumentTypeError(f"{what} must be between {low} and {high}, got {value}")
    return value


def positive_int_list(text: str, what: str = "value", high: int = MAX_BATCH) -> list[int]:
    """``"1,8,32"`` -> ``[1, 8, 32]``: positive, distinct, at most ``high``; a one-line error otherwise."""
    try:
        values = [_whole(token, what, 1, high) for token in str(text).split(",")]
    except argparse.ArgumentTypeError as exc:
        raise BenchError(str(exc)) from None
    repeated = sorted({v for v in values if values.count(v) > 1})
    if repeated:
        raise BenchError(f"{what} lists {', '.join(map(str, repeated))} more than once")
    return values


def positive_int(text: str, what: str = "value", high: int = MAX_BATCH) -> int:
    values = positive_int_list(text, what, high)
    if len(values) != 1:
        raise BenchError(f"{what} takes one positive integer, got {text!r}")
    return values[0]


def _as_type(parse, *args, **kwargs):
    def convert(text: str):
        try:
            return parse(text, *args, **kwargs)
        except BenchError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return convert


def int_list(what: str, high: int = MAX_BATCH):
    """argparse type: comma-separated distinct positive integers."""
    return _as_type(positive_int_list, what, high)


def count(what: str, high: int = 10**9):
    """argparse type: one positive integer."""
    return _as_type(positive_int, what, high)


def threads(text: str) -> int:
    """argparse type: intra-op threads, 1 to :data:`MAX_THREADS`."""
    value = _whole(text, "--threads", 1, MAX_THREADS)
    return value


def seed(text: str) -> int:
    """argparse type: a seed from 0 to 2**32-1."""
    return _whole(text, "--seed", 0, MAX_SEED)


def seconds(text: str) -> float:
    """argparse type: a finite, non-negative number of seconds."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative number of seconds, got {text!r}")
    return value


def default_threads() -> int:
    """Physical cores: what ONNX Runtime picks by default, and what latency papers usually pin."""
    import psutil

    return psutil.cpu_count(logical=False) or os.cpu_count() or 1


def select_models(spec: str) -> list[str]:
    """Expand ``spec`` into model names: comma-separated names, family ids, ``paper``, ``all``, and external
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
