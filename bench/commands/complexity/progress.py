"""One progress bar on stderr for the whole of ``bench complexity`` (counting, then latency), like ``run``'s."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator


def progress_bar(total: int, enabled: bool):
    """A tqdm bar over ``total`` steps (grid points, token sizes, latency points); a silent one if not ``enabled``."""
    from tqdm import tqdm

    return tqdm(total=total, disable=not enabled, unit="step", file=sys.stderr, desc="complexity")


@contextlib.contextmanager
def step(progress, what: str) -> Iterator[None]:
    """Show ``what`` beside the bar while it runs, then count it as done (``progress`` may be None)."""
    if progress is not None:
        progress.set_postfix_str(what, refresh=True)
    yield
    if progress is not None:
        progress.update(1)
