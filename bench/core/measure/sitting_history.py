"""How far this machine's sittings disagree, learnt from its own recent sittings.

A sitting sees the spread of its rounds and of its worker processes, not the state the VM's host is in
for minutes at a time: two sittings of the same cell differ by more than either one's rounds show. How
much more is a property of the machine (two calm sittings on the AMD CI VM: about 1%; the Intel VM on a
noisy morning: about 3%), so it is learnt from the headlines of the machine's recent sittings, kept in
the cache directory beside its floor (:class:`bench.core.measure.machine.MachineFloor`). It enters every
prediction interval (:func:`bench.core.measure.stats.headline`) and, through the interval's width, the stable
verdict: a machine whose sittings disagree by 3% cannot promise 5%, whatever one sitting does.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import numpy as np

from bench.core.measure.stats import SITTING_SD
from bench.core.util import read_own_document

HISTORY_FILE = "sitting-history.json"
KEEP_SITTINGS = 8
"""Recent sittings kept per machine: enough pairs for a steady estimate, recent enough to be today's VM."""
MAX_AGE_S = 7 * 24 * 3600
"""Sittings older than this are forgotten (the VM may have moved to another host), as the floor is."""
MIN_PAIRED_CELLS = 20
"""Cells timed in two earlier sittings that an estimate needs; with fewer, :data:`SITTING_SD` is assumed."""
MIN_SITTING_SD = 0.01
"""Never assume sittings agree more closely than this: two calm AMD sittings five minutes apart agreed
to 0.5%, but sittings an hour apart differ more, and a few lucky pairs are not a promise."""
CALM_LEVEL = 0.01
"""A sitting whose own fast level (the 10th percentile of its reference blocks) stayed more than this above the
machine's floor ran on a slower machine throughout: its intervals reach lower by that level already
(:meth:`bench.core.measure.machine.MachineFloor.level`), so it does not teach the spread between calm sittings
(counting it twice would leave no cell stable on a calm evening after a slow afternoon)."""
ROBUST_SD = 1.4826
"""Median absolute value to standard deviation for a normal law: a few cells that move a lot between
sittings (a process-level effect) must not widen every interval of the machine."""


@dataclass(frozen=True)
class SittingSpread:
    """The standard deviation (log scale) of one cell's headline between sittings, beyond its own rounds."""

    sd: float
    cells: int = 0
    """Cell pairs (a cell timed in two earlier sittings) it was learnt from; 0: assumed."""
    sittings: int = 0

    @property
    def learnt(self) -> bool:
        return self.cells > 0

    def note(self) -> str:
        """Where the number comes from, for environment.json and the progress line."""
        if self.learnt:
            return f"{self.sd:.1%}, learnt from {self.cells} cell pairs of {self.sittings} earlier sittings here"
        return f"{self.sd:.1%}, assumed (fewer than {MIN_PAIRED_CELLS} cells timed in two earlier sittings here)"


Headlines = Mapping[str, tuple[float, float]]
"""One sitting: :meth:`bench.core.records.cell.CellKey.digest` (the machine aside: the history is per machine)
-> (headline ms, the standard error its own rounds give, log scale)."""


def estimate(sittings: Sequence[Headlines]) -> SittingSpread:
    """The spread between sittings beyond each headline's own error, from every pair of ``sittings``.

    Method of moments on log differences, made robust: the median absolute difference gives the spread
    of a difference (two sittings' headlines), half its square one sitting's; the median of the cells'
    own variances is taken off.
    """
    differences, own = [], []
    for a, b in combinations(sittings, 2):
        for key in a.keys() & b.keys():
            (va, sa), (vb, sb) = a[key], b[key]
            if va > 0 and vb > 0:
                differences.append(abs(math.log(va / vb)))
                own.append((sa * sa + sb * sb) / 2.0)
    if len(differences) < MIN_PAIRED_CELLS:
        return SittingSpread(SITTING_SD, 0, len(sittings))
    one_sitting = (ROBUST_SD * float(np.median(differences))) ** 2 / 2.0
    excess = one_sitting - float(np.median(own))
    return SittingSpread(math.sqrt(max(excess, MIN_SITTING_SD**2)), len(differences), len(sittings))


@dataclass
class SittingHistory:
    """The recent sittings of one machine (CPU model, cores, threads: the floor's key) in the cache."""

    key: str
    sittings: list[dict]

    @classmethod
    def load(cls, cache_dir: Path, key: str) -> SittingHistory:
        try:
            entries = read_own_document(cache_dir / HISTORY_FILE).get(key, [])  # type: ignore[union-attr]
        except (OSError, ValueError, AttributeError, TypeError):
            entries = []
        now = time.time()
        if not isinstance(entries, list):
            entries = []
        kept = [e for e in entries if _valid(e) and -60 <= now - e["when_s"] <= MAX_AGE_S]  # a minute of skew is no age
        return cls(key, kept[-KEEP_SITTINGS:])

    def spread(self, floor_ms: float | None = None) -> SittingSpread:
        """The estimate from the kept sittings that reached the machine's calm speed (``floor_ms``, as recorded
        now: a floor found later tells an earlier sitting was slow); without a floor, from all of them."""
        return estimate([_headlines(e) for e in self.sittings if _calm(e, floor_ms)])

    def save(self, cache_dir: Path, run_id: str, cells: Headlines, fast_ms: float | None = None) -> None:
        """Add (or replace) this sitting's headlines and its own fast level (``fast_ms``: the 10th percentile of
        its reference blocks), keep the latest :data:`KEEP_SITTINGS`; best effort."""
        if not cells:
            return
        entry = {
            "run_id": run_id,
            "when_s": int(time.time()),
            "cells": {k: [round(v, 5), round(s, 5)] for k, (v, s) in cells.items()},
        }
        if fast_ms is not None and math.isfinite(fast_ms) and fast_ms > 0:
            entry["fast_ms"] = round(fast_ms, 5)
        path = cache_dir / HISTORY_FILE
        data = read_own_document(path)
        if not isinstance(data, dict):  # the suite's own cache file, missing or unreadable: start it afresh
            data = {}
        try:
            kept = data.get(self.key)
            mine = [e for e in kept if _valid(e) and e["run_id"] != run_id] if isinstance(kept, list) else []
            data[self.key] = [*mine, entry][-KEEP_SITTINGS:]
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(data))
            os.replace(tmp, path)
        except (OSError, ValueError, TypeError):
            pass


def _valid(entry: object) -> bool:
    return (
        isinstance(entry, dict)
        and isinstance(entry.get("run_id"), str)
        and isinstance(entry.get("when_s"), int)
        and isinstance(entry.get("cells"), dict)
    )


def _calm(entry: dict, floor_ms: float | None) -> bool:
    """Whether a kept sitting reached the calm speed of ``floor_ms``. Without a floor every sitting counts; with
    one, a sitting that did not record its level (an older suite's) is not known to be calm and does not count:
    one slow afternoon among them widens every interval of the evening enough that no cell is stable."""
    if floor_ms is None:
        return True
    fast = entry.get("fast_ms")
    if not isinstance(fast, (int, float)) or isinstance(fast, bool) or not math.isfinite(fast):
        return False
    return fast <= floor_ms * (1.0 + CALM_LEVEL)


def _headlines(entry: dict) -> dict[str, tuple[float, float]]:
    out = {}
    for key, pair in entry["cells"].items():
        if (
            isinstance(pair, list)
            and len(pair) == 2
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in pair)
            and pair[0] > 0
            and pair[1] >= 0
        ):
            out[key] = (float(pair[0]), float(pair[1]))
    return out
