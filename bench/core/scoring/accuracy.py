"""Scoring a network on labelled images: top-1/top-5 tallies per runtime over the same decoded batches.

The command (``bench accuracy``) opens one session per runtime and hands them here with the images; the
tallies can be saved after every batch and restored, so an interrupted evaluation continues where it stopped.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from bench.core.errors import BenchError
from bench.core.scoring.datasets import Item, load_image, shown
from bench.core.util import one_line

TOP_K = 5


@dataclass
class Tally:
    """Per-class counts of one model on one runtime at one precision; ``seconds`` is the time spent in its
    ``predict`` alone. ``hits`` keeps, per scored image in order, whether its top-1 was right: two tallies
    of the same images give a paired difference (:func:`paired_drop`)."""

    backend: str
    session: object | None
    num_classes: int
    detail: dict[str, str]
    error: str | None = None
    seconds: float = 0.0
    precision: str = "fp32"
    images: np.ndarray = field(init=False)
    top1: np.ndarray = field(init=False)
    top5: np.ndarray = field(init=False)
    hits: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.images = np.zeros(self.num_classes, dtype=np.int64)
        self.top1 = np.zeros(self.num_classes, dtype=np.int64)
        self.top5 = np.zeros(self.num_classes, dtype=np.int64)
        self.hits = np.zeros(0, dtype=bool)

    @property
    def name(self) -> str:
        """``onnx int8``: how messages and progress name this evaluation."""
        return f"{self.backend} {self.precision}"

    def fail(self, error: str) -> None:
        if self.session is not None:
            self.session.close()  # type: ignore[attr-defined]
        self.session, self.error = None, error

    def add(self, logits: np.ndarray, labels: np.ndarray) -> None:
        """Count one batch: the true class among the ``TOP_K`` highest logits (ties: the lower index first)."""
        k = min(TOP_K, logits.shape[1])
        ranked = np.argsort(-logits, axis=1, kind="stable")[:, :k]
        right = ranked[:, 0] == labels
        np.add.at(self.images, labels, 1)
        np.add.at(self.top1, labels, right)
        np.add.at(self.top5, labels, (ranked == labels[:, None]).any(axis=1))
        self.hits = np.concatenate([self.hits, right])

    def percent(self, counts: np.ndarray) -> float | None:
        total = int(self.images.sum())
        return round(100.0 * int(counts.sum()) / total, 4) if total and self.error is None else None

    def images_per_s(self) -> float | None:
        """This runtime's own rate: scored images over the seconds inside its ``predict`` (not decoding)."""
        total = int(self.images.sum())
        return round(total / self.seconds, 2) if total and self.seconds > 0 and self.error is None else None

    def state(self) -> dict[str, object]:
        return {
            "backend": self.backend,
            "precision": self.precision,
            "error": self.error,
            "seconds": self.seconds,
            "images": self.images.tolist(),
            "top1": self.top1.tolist(),
            "top5": self.top5.tolist(),
            "hits": np.packbits(self.hits).tobytes().hex(),
            "scored": int(self.hits.size),
        }

    def restore(self, state: dict[str, object]) -> None:
        """Counts saved by :meth:`state` (an interrupted evaluation of the same images)."""
        for name in ("images", "top1", "top5"):
            values = np.asarray(state[name], dtype=np.int64)
            if values.shape != (self.num_classes,):
                raise ValueError(f"saved {name} has {values.shape} entries, expected {self.num_classes}")
            setattr(self, name, values)
        scored = int(state.get("scored", 0))  # type: ignore[call-overload]
        packed = np.frombuffer(bytes.fromhex(str(state.get("hits", ""))), dtype=np.uint8)
        self.hits = np.unpackbits(packed)[:scored].astype(bool)
        if self.hits.size != int(self.images.sum()):
            raise ValueError(f"saved hits cover {self.hits.size} images, the counts {int(self.images.sum())}")
        self.seconds = float(state["seconds"])  # type: ignore[arg-type]
        if state.get("error"):
            self.fail(str(state["error"]))


def paired_drop(baseline: Tally, other: Tally) -> tuple[float, float, float, int] | None:
    """Top-1 of ``baseline`` minus ``other``'s in percentage points, with its 95% interval, paired over the
    images both scored (the interval of a difference of two proportions on the same images rests on the
    images whose verdicts differ: right on one, wrong on the other), and how many such images there are.
    None when the two did not score the same images."""
    if baseline.hits.size != other.hits.size or not baseline.hits.size:
        return None
    n = baseline.hits.size
    lost = int((baseline.hits & ~other.hits).sum())
    gained = int((~baseline.hits & other.hits).sum())
    drop = (lost - gained) / n
    sd = math.sqrt(max(lost + gained - (lost - gained) ** 2 / n, 0.0)) / n
    z = 1.959963984540054
    return 100 * drop, 100 * (drop - z * sd), 100 * (drop + z * sd), lost + gained


@dataclass
class Progress:
    """How far an evaluation got: images consumed (scored or skipped), the skipped ones, the content chain."""

    position: int = 0
    skipped: list[str] = field(default_factory=list)
    content: str = hashlib.sha256(b"").hexdigest()
    """SHA-256 chain over the evaluated files' bytes: ``h = sha256(h || sha256(file))`` in image order."""

    def state(self) -> dict[str, object]:
        return {"position": self.position, "skipped": self.skipped, "content": self.content}

    @classmethod
    def restore(cls, state: dict[str, object]) -> Progress:
        return cls(int(state["position"]), [str(s) for s in state["skipped"]], str(state["content"]))  # type: ignore


def head_size(model, resolution: int, name: str) -> int:
    """Outputs of the network's head, from one forward pass at ``resolution`` (raises what the model raises)."""
    import torch

    with torch.inference_mode():
        out = model(torch.zeros(1, 3, resolution, resolution))
    if not isinstance(out, torch.Tensor) or out.ndim != 2:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"{name}: output {shape} is not (batch, classes) logits")
    return int(out.shape[1])


def check_classes(
    classes: list[str] | None, layout: str, labels: Sequence[int], head: int, where: str, model: str
) -> None:
    """The labels must fit the head: as many classes as outputs (when named) and no index beyond it."""
    if classes is not None and len(classes) != head:
        what = "class folders" if layout == "imagefolder" else "classes in --labels"
        raise BenchError(f"{where} has {len(classes)} {what}, but the head of {model} has {head} outputs")
    top = max(labels, default=0)
    if top >= head:
        raise BenchError(f"{where} uses class index {top}, but the head of {model} has {head} outputs")


def batches(items: Sequence[Item], pre, size: int, pool: ThreadPoolExecutor) -> Iterator[list[tuple]]:
    """Decoded batches in order, the next one decoding on ``pool`` while this one runs."""
    starts = list(range(0, len(items), size))
    queue: deque[list[Future]] = deque()

    def submit(start: int) -> list[Future]:
        return [pool.submit(load_image, item.path, pre) for item in items[start : start + size]]

    for start in starts[:2]:
        queue.append(submit(start))
    for k in range(len(starts)):
        futures = queue.popleft()
        if k + 2 < len(starts):
            queue.append(submit(starts[k + 2]))
        yield [f.result() for f in futures]


def evaluate(
    items: Sequence[Item],
    pre,
    tallies: list[Tally],
    progress: Progress,
    *,
    batch_size: int,
    workers: int,
    skip_unreadable: bool,
    on_batch: Callable[[int], None] = lambda n: None,
    warn: Callable[[str], None] = print,
) -> None:
    """Score ``items[progress.position:]`` on every tally's session, updating the tallies and ``progress``.

    The last batch is zero-padded to ``batch_size`` (static-shape runtimes) and the padding's logits dropped.
    An image that cannot be read raises a one-line :class:`BenchError` unless ``skip_unreadable``; a runtime
    whose ``predict`` raises stops (its tally records the error), the others go on. ``tallies`` and
    ``progress`` are consistent after each batch (``on_batch`` is called then with the images consumed).
    """
    rest = list(items[progress.position :])
    with ThreadPoolExecutor(max_workers=workers) as pool:
        offset = 0
        for loaded in batches(rest, pre, batch_size, pool):
            arrays, labels, content, skipped = [], [], progress.content, []
            for (array, digest, problem), item in zip(loaded, rest[offset : offset + len(loaded)], strict=True):
                content = hashlib.sha256(bytes.fromhex(content) + digest).hexdigest()
                if problem is not None:
                    if not skip_unreadable:
                        raise BenchError(
                            f"cannot read image {shown(item.path)}: {problem} "
                            "(fix or remove it, or pass --skip-unreadable)"
                        )
                    skipped.append(shown(item.path))
                    continue
                arrays.append(array)
                labels.append(item.label)
            offset += len(loaded)
            if arrays:
                x = np.stack(arrays)
                if len(x) < batch_size:
                    x = np.concatenate([x, np.zeros((batch_size - len(x), *x.shape[1:]), np.float32)])
                target = np.asarray(labels)
                results = []
                for tally in tallies:
                    if tally.session is None:
                        results.append(None)
                        continue
                    t0 = time.perf_counter()
                    try:
                        logits = np.asarray(tally.session.predict(x), dtype=np.float32)[: len(labels)]
                        results.append((logits.reshape(len(labels), -1), time.perf_counter() - t0, None))
                    except Exception as exc:  # e.g. out of memory: this runtime stops, the others go on
                        results.append((None, 0.0, one_line(exc)))
                for tally, result in zip(tallies, results, strict=True):  # applied together: one consistent state
                    if result is None:
                        continue
                    logits, seconds, error = result
                    if error is not None:
                        warn(f"{tally.name}: failed: {error}")
                        tally.fail(error)
                        continue
                    tally.seconds += seconds
                    tally.add(logits, target)
            progress.position += len(loaded)
            progress.skipped.extend(skipped)
            progress.content = content
            on_batch(len(loaded))
