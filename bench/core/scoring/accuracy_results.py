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

from collections.abc import Iterable
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
    for path in _result_files(paths):
        document = load_document(path)
        if document is None:
            continue
        data_name = str(document.data.get("name") or "an image folder")
        for r in document.results:
            if r.status != "ok" or not isinstance(r.top1, int | float) or isinstance(r.top1, bool):
                continue
            if r.precision in QUANTIZED:  # the top-1 column is the float network's; int8's cost is reported apart
                continue
            baseline = r.backend == r.baseline_backend and r.precision == "fp32"
            rank = (bool(r.imagenet_top1), baseline, str(r.timestamp))
            previous = chosen.get(r.model)
            if previous is not None and previous[0] >= rank:
                continue
            pre = r.preprocessing or {}
            what = f"{r.images} images of {data_name}"
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
    for path in _result_files(paths):
        document = load_document(path)
        if document is None:
            continue
        ok = [r for r in document.results if r.status == "ok" and isinstance(r.top1, int | float)]
        floats = {(r.model, r.backend, r.data_content_sha256): r for r in ok if r.precision == "fp32"}
        for r in ok:
            base = floats.get((r.model, r.backend, r.data_content_sha256))
            if r.precision not in QUANTIZED or base is None:
                continue
            paired = (r.baseline_backend, r.baseline_precision) == (r.backend, "fp32")
            drop = PrecisionDrop(
                drop_pp=float(base.top1) - float(r.top1),
                low=r.top1_drop_ci_low if paired else None,
                high=r.top1_drop_ci_high if paired else None,
                images=int(r.images),
                data=str(document.data.get("name") or "an image folder"),
            )
            key = (r.model, r.backend, r.precision)
            if key not in chosen or chosen[key][0] <= str(r.timestamp):
                chosen[key] = (str(r.timestamp), drop)
    return {key: drop for key, (_, drop) in chosen.items()}
