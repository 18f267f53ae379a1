"""The accuracy result document (``accuracy.json``, written by ``bench accuracy``) and its one loader.

One document per accuracy run: the machine, the data set (what it is, its listing's fingerprint), and one
:class:`AccuracyResult` per model and runtime. ``format`` is the document's version: readers accept this
version and the ones listed in :data:`READABLE_FORMATS`.

A measured top-1 replaces a model's published ImageNet top-1 in the reports only when it is an ImageNet
top-1: the full ILSVRC2012 validation set (1000 standard classes, 50,000 images, none skipped, no
``--limit``) scored with real weights (a checkpoint or an external network's own). Anything else (a quick
look at a few images, random weights) is shown apart, marked as such.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from bench.core.schema import SUITE_ID

RESULT_FILE = "accuracy.json"
PER_CLASS_FILE = "per_class.csv"
PARTIAL_FILE = "accuracy.partial.json"
"""Tallies of the model in progress, saved after each batch: what ``--resume`` continues from."""
FORMAT = 2
READABLE_FORMATS = (1, 2)
KIND = "accuracy"
PER_CLASS_COLUMNS = ("model", "backend", "class_index", "class_name", "images", "correct_top1", "correct_top5")


@dataclass
class AccuracyResult:
    """One model on one runtime."""

    model: str
    family: str | None
    backend: str
    status: str
    """``ok``, or ``failed`` (``error`` says why: the model could not be built or run, or the runtime failed)."""
    error: str | None = None
    device: str = "cpu"
    precision: str = "fp32"
    threads: int | None = None
    batch_size: int | None = None
    resolution: int | None = None
    backend_detail: dict[str, str] = field(default_factory=dict)
    preprocessing: dict[str, object] | None = None
    weights: str | None = None
    """``checkpoint``, ``random`` (seeded, scores at chance) or ``external`` (the network's own)."""
    checkpoint: dict[str, object] | None = None
    images: int = 0
    """Images scored (skipped ones excluded)."""
    skipped_unreadable: int = 0
    skipped_examples: list[str] = field(default_factory=list)
    classes: int | None = None
    correct_top1: int = 0
    correct_top5: int = 0
    top1: float | None = None
    """Percent of ``images``; None when failed or nothing was scored."""
    top5: float | None = None
    reference_backend: str | None = None
    top1_drop: float | None = None
    """Top-1 of the reference (first) runtime minus this runtime's, in percentage points."""
    published_top1: float | None = None
    published_top1_source: str | None = None
    imagenet_top1: bool = False
    """True when ``top1`` is an ImageNet-1k val top-1 (full set, real weights): it may replace the published one."""
    data_content_sha256: str | None = None
    seconds: float | None = None
    """Wall time of the whole evaluation of this model (decoding and every runtime)."""
    predict_seconds: float | None = None
    images_per_s: float | None = None
    """This runtime's rate: ``images`` over ``predict_seconds`` (its own inference time, not decoding)."""
    timestamp: str | None = None

    @classmethod
    def from_dict(cls, raw: dict[str, object]) -> AccuracyResult:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in names})  # type: ignore[arg-type]


@dataclass
class AccuracyDocument:
    """``accuracy.json``: one accuracy run."""

    run_id: str
    environment: dict[str, object]
    data: dict[str, object]
    """The data set: ``name`` (what it is, never the path), ``path``, layout, counts, fingerprints, ``limit``."""
    results: list[AccuracyResult] = field(default_factory=list)
    resume_key: str | None = None
    """Hash of everything that decides the scores (data listing, models, runtimes, settings): ``--resume``."""
    suite: str = SUITE_ID
    kind: str = KIND
    format: int = FORMAT

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=1, default=str, ensure_ascii=True) + "\n"


def load_document(path: Path) -> AccuracyDocument | None:
    """The document at ``path``, or None when it is not a readable accuracy document of this suite."""
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if not isinstance(raw, dict) or raw.get("suite") != SUITE_ID or raw.get("kind") != KIND:
        return None
    if raw.get("format") not in READABLE_FORMATS:
        return None
    results = [AccuracyResult.from_dict(r) for r in raw.get("results") or [] if isinstance(r, dict) and "model" in r]
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
    reference runtime at fp32, then the latest. ``replaces`` says whether ``top1`` may stand in the
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
            reference = r.backend == r.reference_backend and r.precision == "fp32"
            rank = (bool(r.imagenet_top1), reference, str(r.timestamp))
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
