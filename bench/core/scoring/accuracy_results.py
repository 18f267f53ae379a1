"""The accuracy result document (``accuracy.json``, written by ``bench accuracy``): its one loader and
what the reports take from it.

One document per accuracy run: the machine, the data set (what it is, its listing's fingerprint), and one
:class:`~bench.core.records.schema.AccuracyResult` per model and runtime, both declared in
:mod:`bench.core.records.schema` with every other record. ``format`` is the document's version: readers
accept this version and the ones listed in :data:`~bench.core.records.schema.READABLE_ACCURACY_FORMATS`.

A measured top-1 replaces a model's published ImageNet top-1 in the reports only when it is an ImageNet
top-1: the full ILSVRC2012 validation set (1000 standard classes, 50,000 images, none skipped, no
``--limit``) scored with real weights (a checkpoint or an external network's own). Anything else (a quick
look at a few images, random weights) is shown apart, marked as such.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.core.interface.runtime import QUANTIZED
from bench.core.records.schema import (
    ACCURACY_KIND,
    PER_CLASS_COLUMNS,
    READABLE_ACCURACY_FORMATS,
    SUITE_ID,
    AccuracyDocument,
    AccuracyResult,
)
from bench.core.util import read_own_document

RESULT_FILE = "accuracy.json"
PER_CLASS_FILE = "per_class.csv"
PARTIAL_FILE = "accuracy.partial.json"
"""Tallies of the model in progress, saved after each batch: what ``--resume`` continues from."""
__all__ = [
    "PER_CLASS_COLUMNS",
    "AccuracyDocument",
    "AccuracyResult",
    "PrecisionDrop",
    "load_document",
    "measured_drops",
    "measured_top1",
]


def load_document(path: Path) -> AccuracyDocument | None:
    """The document at ``path``, or None when it is not a readable accuracy document of this suite."""
    raw = read_own_document(path)  # a regular file only: a pipe planted in a results folder would block
    if not isinstance(raw, dict) or raw.get("suite") != SUITE_ID or raw.get("kind") != ACCURACY_KIND:
        return None
    if raw.get("format") not in READABLE_ACCURACY_FORMATS:
        return None
    results = [r for r in map(AccuracyResult.from_dict, raw.get("results") or []) if r is not None]
    data = raw.get("data") if isinstance(raw.get("data"), dict) else {}
    env = raw.get("environment") if isinstance(raw.get("environment"), dict) else {}
    return AccuracyDocument(str(raw.get("run_id")), env, data, results, raw.get("resume_key"))  # type: ignore


_WARNED: set[str] = set()


def _warn(line: str) -> None:
    """One line on stderr, once per process: the tables and the top-1 column both read the same documents."""
    line = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in line[:600])  # names come from the file
    if line not in _WARNED:
        _WARNED.add(line)
        print(f"warning: {line}", file=sys.stderr)


def document_problem(path: Path) -> str | None:
    """Why the ``accuracy.json`` at ``path`` cannot be read (None when :func:`load_document` reads it)."""
    if not path.is_file():
        return "not a regular file"
    raw = read_own_document(path)
    if raw is None:
        return "not a readable JSON document (truncated, too big, not UTF-8 or nested too deeply)"
    if not isinstance(raw, dict) or raw.get("suite") != SUITE_ID or raw.get("kind") != ACCURACY_KIND:
        return "not an accuracy document of this suite"
    if raw.get("format") not in READABLE_ACCURACY_FORMATS:
        readable = ", ".join(map(str, READABLE_ACCURACY_FORMATS))
        return f"format {str(raw.get('format'))[:20]!r} is not one this version reads ({readable})"
    return None


def _plausible_top1(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and 0 <= value <= 100


def _documents(paths: Iterable[Path | str]) -> Iterator[AccuracyDocument]:
    """The readable accuracy documents under ``paths``, each with its usable results only: a file that cannot be
    read, and a result whose top-1 is no percentage (NaN, negative, above 100), or that a second result for
    the same model, runtime, precision and images contradicts, are left out with a one-line warning."""
    for path in _result_files(paths):
        document = load_document(path)
        if document is None:
            _warn(f"{path}: {document_problem(path) or 'unreadable'}; its top-1s are left out of the report")
            continue
        usable: dict[tuple, AccuracyResult] = {}
        contradicted: set[tuple] = set()
        for r in document.results:
            if r.status != "ok":
                continue
            what = f"{r.model} on {r.backend} {r.precision}"
            if not _plausible_top1(r.top1):
                _warn(f"{path}: {what}: no top-1 between 0 and 100%; left out of the report")
                continue
            key = (r.model, r.backend, r.precision, r.data_content_sha256)
            if key in usable and usable[key].top1 != r.top1:
                _warn(f"{path}: {what} is there twice with different top-1s; left out of the report")
                contradicted.add(key)
            usable.setdefault(key, r)
        document.results = [r for key, r in usable.items() if key not in contradicted]
        yield document


def _result_files(paths: Iterable[Path | str]) -> list[Path]:
    found: list[Path] = []
    for p in map(Path, paths):
        base = p.parent if p.is_file() else p
        for pattern in (RESULT_FILE, f"*/{RESULT_FILE}", f"*/*/{RESULT_FILE}"):
            found.extend(sorted(base.glob(pattern)))
    return list(dict.fromkeys(found))


def _pct(value: object) -> str:
    return f"{value:.2f}%" if isinstance(value, int | float) else "-"


def measured_top1(paths: Iterable[Path | str]) -> dict[str, dict[str, object]]:
    """``model -> {top1, source, weights, replaces}`` from the ``accuracy.json`` files under ``paths``.

    Per model, an ImageNet top-1 (see the module docstring) wins over any other measurement; then the
    baseline runtime at fp32, then the latest. ``replaces`` says whether ``top1`` may stand in the
    ImageNet column; when False, ``source`` describes the measurement so a report can show it apart.
    """
    chosen: dict[str, tuple[tuple, dict[str, object]]] = {}
    for document in _documents(paths):
        data_name = str(document.data.get("name") or "an image folder")
        for r in document.results:  # each usable (_documents): measured, a top-1 between 0 and 100%
            if r.precision in QUANTIZED:  # the top-1 column is the float network's; int8's cost is reported apart
                continue
            baseline = r.backend == r.baseline_backend and r.precision == "fp32"
            rank = (bool(r.imagenet_top1), baseline, str(r.timestamp))
            previous = chosen.get(r.model)
            if previous is not None and previous[0] >= rank:
                continue
            pre = r.preprocessing or {}
            what = f"{r.images} images of {data_name}" if r.images else data_name  # older documents: no count
            if r.imagenet_top1:
                source = (
                    f"measured here (bench accuracy, {r.backend} {r.precision}): weights {r.weights}, {what} "
                    f"({str(r.data_content_sha256)[:12]}), {pre.get('summary', 'declared preprocessing')}"
                )
            else:
                source = (
                    f"quick check, not an ImageNet top-1: bench accuracy measured {_pct(r.top1)} on {what} "
                    f"({r.backend} {r.precision}, {r.weights} weights)"
                )
            chosen[r.model] = (
                rank,
                {"top1": float(r.top1), "source": source, "weights": r.weights, "replaces": bool(r.imagenet_top1)},
            )
    return {model: found for model, (_, found) in chosen.items()}


@dataclass(frozen=True)
class PrecisionDrop:
    """What a quantized network cost in top-1 on one runtime: its fp32 top-1 minus its own, in points, on the
    same images; the paired interval when the runtime's fp32 was the accuracy run's baseline."""

    drop_pp: float
    low: float | None
    high: float | None
    images: int
    data: str


def measured_drops(paths: Iterable[Path | str]) -> dict[tuple[str, str, str], PrecisionDrop]:
    """``(model, backend, precision) -> PrecisionDrop`` from the ``accuracy.json`` files under ``paths``: every
    quantized result beside the same runtime's fp32 on the same images (the latest such pair wins)."""
    chosen: dict[tuple[str, str, str], tuple[str, PrecisionDrop]] = {}
    for document in _documents(paths):
        floats = {(r.model, r.backend, r.data_content_sha256): r for r in document.results if r.precision == "fp32"}
        for r in document.results:  # each usable (_documents)
            base = floats.get((r.model, r.backend, r.data_content_sha256))
            if r.precision not in QUANTIZED or base is None:
                continue
            paired = (r.baseline_backend, r.baseline_precision) == (r.backend, "fp32")
            drop_pp = float(base.top1) - float(r.top1)
            low, high = (r.top1_drop_ci_low, r.top1_drop_ci_high) if paired else (None, None)
            if (low is None) != (high is None) or (
                low is not None and not (-100 <= low <= drop_pp + 1e-9 and drop_pp - 1e-9 <= high <= 100)
            ):
                _warn(
                    f"{r.model} on {r.backend} {r.precision}: the top-1 drop's interval [{low}, {high}] does not "
                    f"hold the drop {drop_pp:.2f} pp; shown without it"
                )
                low = high = None
            drop = PrecisionDrop(
                drop_pp=drop_pp,
                low=low,
                high=high,
                images=int(r.images),
                data=str(document.data.get("name") or "an image folder"),
            )
            key = (r.model, r.backend, r.precision)
            if key not in chosen or chosen[key][0] <= str(r.timestamp):
                chosen[key] = (str(r.timestamp), drop)
    return {key: drop for key, (_, drop) in chosen.items()}
