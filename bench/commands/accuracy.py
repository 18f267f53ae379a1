"""``bench accuracy``: measured top-1/top-5 of a checkpoint, with its family's official preprocessing, per runtime.

Data (``--data DIR``):

- an ImageFolder: ``DIR/<class>/**/<image>``; class indices follow the sorted folder names (torchvision's
  ``ImageFolder`` convention, so ``DIR`` = ImageNet ``val/`` in the usual 1000-folder layout);
- a flat folder plus ``--labels FILE`` in a usual ILSVRC2012 val format: ``<image> <index>`` lines (0-based
  index in sorted-synset order, e.g. Caffe's ``val.txt``), ``<image>,<wnid> ...`` (Kaggle's
  ``LOC_val_solution.csv``; classes are the sorted synsets listed), or the devkit's
  ``ILSVRC2012_validation_ground_truth.txt`` (one ILSVRC2012 id per line for ``ILSVRC2012_val_%08d``),
  which needs the devkit's ``meta.mat`` beside it to map ids to synsets.

Images: ``.jpg .jpeg .png .ppm .bmp .pgm .tif .tiff .webp`` (any case), decoded with Pillow and converted to
RGB, then the model's declared evaluation preprocessing (:class:`models.registry.Preprocessing`): short
side resized with Pillow (``torchvision.transforms.Resize(int)`` sizes), center crop (torchvision's
offsets), ``/255``, mean/std. An unreadable image stops the run with its file name (exit 2) unless
``--skip-unreadable``, which skips it, counts it and records it in the results.

Runtimes: ``--backend torch,onnx`` evaluates the same images on each runtime (``prepare``/``load`` of the
backend at ``--batch-size``, ``session.predict``; the last batch is zero-padded, padding ignored), so
the top-1 drop per runtime is printed beside the first backend's. Torch runs on CPU or CUDA, fp32 or
AMP (``--precision``).

Results: ``<out>/<stamp>-accuracy-<pid>/accuracy.json`` (top-1, top-5, counts, the preprocessing, the
checkpoint's SHA-256, the data folder's fingerprint, the machine) and ``per_class.csv``; ``bench report``
uses the measured top-1 (marked as measured, with the checkpoint) instead of the published one.
Bad input (missing folder, no images, an unreadable image, classes that do not match the head): one
line, exit 2. A runtime that fails on a model: one line, the other runtimes and models go on, exit 1.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import math
import os
import re
import sys
import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.backends import (
    BACKENDS,
    PRECISIONS,
    REFERENCE_BACKENDS,
    add_option_arguments,
    available_backend,
    backend_class,
    backend_list,
)
from bench.core import arguments
from bench.core.accuracy_results import RESULT_FILE
from bench.core.errors import BenchError
from bench.core.schema import SUITE_ID
from bench.core.sessions import SessionRefused, open_session
from bench.core.util import atomic_write_text, check_writable_dir, one_line

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
PER_CLASS_FILE = "per_class.csv"
FORMAT = 1
_WNID = re.compile(r"n\d{8}")
_DEVKIT_IMAGE = "ILSVRC2012_val_{:08d}"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from bench.core.settings import DEFAULT_CACHE

    p.epilog = "exit status: 0 all evaluated, 1 a runtime failed on a model, 2 bad input"
    p.add_argument("--models", required=True, help="model names, family ids, or external networks (file.py:factory)")
    p.add_argument("--data", type=Path, required=True, metavar="DIR", help="ImageFolder, or flat folder with --labels")
    p.add_argument("--labels", type=Path, default=None, metavar="FILE", help="ILSVRC2012-style val labels (flat DIR)")
    p.add_argument("--checkpoint", type=Path, default=None, help="weights to evaluate (a single model only)")
    p.add_argument(
        "--backend",
        default=REFERENCE_BACKENDS[0],
        metavar="NAME[,NAME...]",
        help=f"runtimes to evaluate on, the first is the reference for the drop ({', '.join(BACKENDS)}; "
        f"default {REFERENCE_BACKENDS[0]}: the framework's own eager runtime)",
    )
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    p.add_argument("--precision", default="fp32", choices=PRECISIONS, help="fp32, or AMP fp16/bf16 (default: fp32)")
    p.add_argument("--batch-size", type=arguments.count("--batch-size", 4096), default=32, metavar="N")
    p.add_argument(
        "--resolution", type=arguments.count("--resolution", 4096), default=None, metavar="PX", help="crop size"
    )
    p.add_argument(
        "--limit", type=arguments.count("--limit"), default=None, metavar="N", help="N images, spread evenly"
    )
    p.add_argument("--skip-unreadable", action="store_true", help="skip (and count) images that cannot be decoded")
    p.add_argument("--workers", type=arguments.count("--workers", 64), default=min(4, os.cpu_count() or 1))
    p.add_argument("--threads", type=arguments.threads, default=None, metavar="N", help="intra-op threads")
    p.add_argument("--single-head", action="store_true", help="drop the distillation head")
    p.add_argument("--seed", type=arguments.seed, default=0, metavar="N", help="seed for weights without checkpoint")
    p.add_argument("--out", type=Path, default=Path("results"), help="results directory (default: results/)")
    p.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE, help=f"export cache (default: {DEFAULT_CACHE})")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_option_arguments(p)


# ------------------------------------------------------------------------------------------------ data


@dataclass(frozen=True)
class Item:
    path: Path
    label: int


@dataclass
class Dataset:
    root: Path
    layout: str
    """``imagefolder`` or ``labels``."""
    items: list[Item]
    classes: list[str] | None
    """Class names by index; None when a label file gives bare indices (the head decides how many)."""
    labels_file: Path | None = None

    def fingerprint(self) -> dict[str, object]:
        """What the folder held (every image's path, size and label; not the bytes, which are hashed as read)."""
        h = hashlib.sha256()
        for item in self.items:
            h.update(
                f"{item.path.relative_to(self.root).as_posix()}\t{item.path.stat().st_size}\t{item.label}\n".encode()
            )
        found: dict[str, object] = {
            "path": str(self.root.resolve()),
            "layout": self.layout,
            "images": len(self.items),
            "classes": len(self.classes) if self.classes is not None else None,
            "listing_sha256": h.hexdigest(),
        }
        if self.labels_file is not None:
            found["labels_file"] = str(self.labels_file.resolve())
            found["labels_sha256"] = hashlib.sha256(self.labels_file.read_bytes()).hexdigest()
        return found


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMG_EXTENSIONS)


def scan(root: Path, labels: Path | None) -> Dataset:
    """The images of ``--data`` with their labels, or a one-line :class:`BenchError`."""
    if not root.exists():
        raise BenchError(f"--data {root}: no such folder")
    if not root.is_dir():
        raise BenchError(f"--data {root} is a file, not a folder")
    if labels is not None:
        return _scan_flat(root, labels)
    classes = sorted(entry.name for entry in os.scandir(root) if entry.is_dir())
    items = []
    for index, name in enumerate(classes):
        for folder, dirs, files in sorted(os.walk(root / name, followlinks=True)):
            dirs.sort()
            items.extend(Item(Path(folder) / f, index) for f in sorted(files) if _is_image(f))
    if not items:
        loose = any(_is_image(e.name) for e in os.scandir(root) if e.is_file())
        if loose:
            raise BenchError(f"--data {root} has images but no class folders; for a flat folder pass --labels FILE")
        raise BenchError(f"--data {root} holds no images ({' '.join(IMG_EXTENSIONS)}) in class folders")
    return Dataset(root, "imagefolder", items, classes)


def _scan_flat(root: Path, labels: Path) -> Dataset:
    if not labels.is_file():
        raise BenchError(f"--labels {labels}: no such file")
    images = sorted(e.name for e in os.scandir(root) if e.is_file() and _is_image(e.name))
    if not images:
        raise BenchError(f"--data {root} holds no images ({' '.join(IMG_EXTENSIONS)})")
    by_name, classes = read_labels(labels)
    items, unlabelled = [], []
    for name in images:
        label = by_name.get(name, by_name.get(Path(name).stem))
        if label is None:
            unlabelled.append(name)
        else:
            items.append(Item(root / name, label))
    if unlabelled:
        raise BenchError(
            f"--labels {labels} has no label for {len(unlabelled)} image(s) of {root}, e.g. {unlabelled[0]}"
        )
    return Dataset(root, "labels", items, classes, labels)


def read_labels(path: Path) -> tuple[dict[str, int], list[str] | None]:
    """``image name or stem -> class index`` and the class names (None for bare indices)."""
    try:
        lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    except (OSError, UnicodeDecodeError) as exc:
        raise BenchError(f"--labels {path}: unreadable ({getattr(exc, 'strerror', None) or exc})") from None
    lines = [line for line in lines if line and not line.lower().startswith("imageid")]
    if not lines:
        raise BenchError(f"--labels {path} is empty")
    if all(line.isdigit() for line in lines):
        return _devkit_labels(path, [int(line) for line in lines])
    pairs = []
    for number, line in enumerate(lines, 1):
        parts = line.replace(",", " ").split()
        if len(parts) < 2:
            raise BenchError(f"--labels {path} line {number}: expected '<image> <class index or synset>', got {line!r}")
        pairs.append((parts[0], parts[1]))
    if all(label.isdigit() for _, label in pairs):
        return {name: int(label) for name, label in pairs}, None
    bad = next((label for _, label in pairs if not _WNID.fullmatch(label)), None)
    if bad is not None:
        raise BenchError(f"--labels {path}: {bad!r} is neither a class index nor a synset id (n01440764)")
    classes = sorted({label for _, label in pairs})
    index = {wnid: i for i, wnid in enumerate(classes)}
    return {name: index[label] for name, label in pairs}, classes


def _devkit_labels(path: Path, ids: list[int]) -> tuple[dict[str, int], list[str]]:
    meta = path.parent / "meta.mat"
    if not meta.is_file():
        raise BenchError(
            f"--labels {path} holds ILSVRC2012 ids (the devkit's ground truth); put the devkit's meta.mat beside it "
            "to map them to synsets, or give '<image> <index>' lines"
        )
    from scipy.io import loadmat

    try:
        synsets = loadmat(str(meta), squeeze_me=True)["synsets"]
        leaves = {int(s["ILSVRC2012_ID"]): str(s["WNID"]) for s in synsets if int(s["num_children"]) == 0}
    except Exception as exc:
        raise BenchError(f"{meta}: not the ILSVRC2012 devkit's meta.mat ({one_line(exc)})") from None
    classes = sorted(leaves.values())
    index = {wnid: i for i, wnid in enumerate(classes)}
    unknown = next((i for i in ids if i not in leaves), None)
    if unknown is not None:
        raise BenchError(f"--labels {path}: id {unknown} is not a leaf synset of {meta}")
    return {_DEVKIT_IMAGE.format(n): index[leaves[i]] for n, i in enumerate(ids, 1)}, classes


def subset(items: Sequence[Item], limit: int | None) -> list[Item]:
    """``limit`` images spread evenly over the whole (class-ordered) list, so every class has its share."""
    if limit is None or limit >= len(items):
        return list(items)
    return [items[i * len(items) // limit] for i in range(limit)]


# ---------------------------------------------------------------------------------------- preprocessing


def resized_size(width: int, height: int, short: int) -> tuple[int, int]:
    """``torchvision.transforms.Resize(short)``: the short side becomes ``short``, the long one is truncated."""
    if width <= height:
        return short, int(short * height / width)
    return int(short * width / height), short


def center_box(width: int, height: int, crop: int) -> tuple[int, int, int, int]:
    """``torchvision.transforms.CenterCrop(crop)``'s box (its offsets round half to even, like Python)."""
    left = round((width - crop) / 2.0)
    top = round((height - crop) / 2.0)
    return left, top, left + crop, top + crop


def preprocess(image, pre) -> np.ndarray:
    """An RGB Pillow image -> float32 CHW array, by ``pre`` (:class:`models.registry.Preprocessing`)."""
    from PIL import Image

    resample = getattr(Image.Resampling, pre.interpolation.upper())
    size = resized_size(*image.size, pre.resize)
    if size != image.size:
        image = image.resize(size, resample)
    image = image.crop(center_box(*image.size, pre.crop))
    x = np.asarray(image, dtype=np.float32) / np.float32(255)
    if pre.mean is not None:
        x = (x - np.asarray(pre.mean, dtype=np.float32)) / np.asarray(pre.std, dtype=np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def load_image(path: Path, pre) -> tuple[np.ndarray | None, bytes, str | None]:
    """(array, SHA-256 of the file, None) or (None, ..., why it cannot be read)."""
    from PIL import Image

    try:
        data = path.read_bytes()
    except OSError as exc:
        return None, b"", exc.strerror or str(exc)
    digest = hashlib.sha256(data).digest()
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            rgb = image.convert("RGB")
        return preprocess(rgb, pre), digest, None
    except Exception as exc:  # Pillow raises many types for broken files; each means: unreadable
        return None, digest, one_line(exc, 200)


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


# ------------------------------------------------------------------------------------------- evaluation


@dataclass
class Tally:
    """Counts of one model on one runtime."""

    backend: str
    session: object | None
    num_classes: int
    detail: dict[str, str]
    error: str | None = None
    seconds: float = 0.0

    def __post_init__(self) -> None:
        self.images = np.zeros(self.num_classes, dtype=np.int64)
        self.top1 = np.zeros(self.num_classes, dtype=np.int64)
        self.top5 = np.zeros(self.num_classes, dtype=np.int64)

    def fail(self, error: str) -> None:
        if self.session is not None:
            self.session.close()  # type: ignore[attr-defined]
        self.session, self.error = None, error

    def add(self, logits: np.ndarray, labels: np.ndarray) -> None:
        k = min(5, logits.shape[1])
        ranked = np.argsort(-logits, axis=1, kind="stable")[:, :k]
        np.add.at(self.images, labels, 1)
        np.add.at(self.top1, labels, ranked[:, 0] == labels)
        np.add.at(self.top5, labels, (ranked == labels[:, None]).any(axis=1))

    def percent(self, counts: np.ndarray) -> float | None:
        total = int(self.images.sum())
        return round(100.0 * int(counts.sum()) / total, 4) if total and self.error is None else None


def _backends(text: str) -> list[str]:
    return backend_list(text)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _head_size(model, resolution: int, name: str) -> int:
    import torch

    with torch.inference_mode():
        out = model(torch.zeros(1, 3, resolution, resolution))
    if not isinstance(out, torch.Tensor) or out.ndim != 2:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise BenchError(f"{name}: output {shape} is not (batch, classes) logits")
    return int(out.shape[1])


def _check_classes(data: Dataset, classes: int, name: str) -> None:
    if data.classes is not None and len(data.classes) != classes:
        what = "class folders" if data.layout == "imagefolder" else "classes in --labels"
        raise BenchError(
            f"--data {data.root} has {len(data.classes)} {what}, but the head of {name} has {classes} outputs"
        )
    top = max(item.label for item in data.items)
    if top >= classes:
        raise BenchError(
            f"--labels {data.labels_file} uses class index {top}, but the head of {name} has {classes} outputs"
        )


def _open(backend_name: str, model, workload, cache_dir: Path, seed: int):
    """A session checked like every other (:func:`bench.core.sessions.open_session`): parity failed is a failure."""
    backend = available_backend(backend_name)
    reason = backend.cannot_time_reason()
    if reason is not None:
        raise BenchError(f"--backend {backend_name} cannot run models here: {reason}")
    opened = open_session(backend, model, workload, cache_dir, seed=seed)
    session = opened.require()
    runtime = backend.label
    version = backend.runtime_version(backend.versions())
    return session, {"runtime": f"{runtime} {version}" if version else runtime, **opened.detail}


def evaluate_model(name: str, args, settings, backends: list[str], data: Dataset, items: list[Item], progress: bool):
    """Every runtime on the same decoded batches.

    Returns (tallies, skipped image paths, SHA-256 of the evaluated files' bytes, seconds, preprocessing, card).
    """
    import models
    from bench.core.settings import build_model
    from models.registry import get_preprocessing, is_external

    card = models.get_card(name)
    resolution = args.resolution or card.default_resolution
    models.check_resolution(card, resolution)
    pre = get_preprocessing(name).at(resolution)
    model = build_model(settings, name, resolution)
    classes = _head_size(model, resolution, name)
    _check_classes(data, classes, name)
    if settings.checkpoint is None and not is_external(name):
        print(
            f"warning: {name} has no --checkpoint: random weights score at chance (seed {settings.seed})",
            file=sys.stderr,
        )
    tallies: list[Tally] = []
    for backend_name in backends:
        options = backend_class(backend_name).Options.from_args(args, backend_name).items()
        workload = settings.workload(name, args.batch_size, resolution, options)
        try:
            session, detail = _open(backend_name, model, workload, args.cache_dir, settings.seed)
            tallies.append(Tally(backend_name, session, classes, detail))
        except BenchError:
            raise
        except Exception as exc:  # an export that fails: this runtime is skipped, the others go on
            why = str(exc) if isinstance(exc, SessionRefused) else one_line(exc)
            print(f"{name} on {backend_name}: failed: {why}", file=sys.stderr)
            tallies.append(Tally(backend_name, None, classes, {}, error=why))
    from tqdm import tqdm

    content = hashlib.sha256()
    skipped: list[str] = []
    bar = tqdm(total=len(items), unit="img", desc=name, disable=not progress, file=sys.stderr, dynamic_ncols=True)
    started = time.perf_counter()
    try:
        with ThreadPoolExecutor(max_workers=args.workers) as pool:
            position = 0
            for loaded in batches(items, pre, args.batch_size, pool):
                arrays, labels = [], []
                for (array, digest, problem), item in zip(
                    loaded, items[position : position + len(loaded)], strict=True
                ):
                    content.update(digest)
                    if problem is not None:
                        if not args.skip_unreadable:
                            raise BenchError(
                                f"cannot read image {item.path}: {problem} "
                                "(fix or remove it, or pass --skip-unreadable)"
                            )
                        skipped.append(str(item.path))
                        continue
                    arrays.append(array)
                    labels.append(item.label)
                position += len(loaded)
                if arrays:
                    x = np.stack(arrays)
                    if len(x) < args.batch_size:  # static-shape runtimes: pad, then drop the padding's logits
                        x = np.concatenate([x, np.zeros((args.batch_size - len(x), *x.shape[1:]), np.float32)])
                    target = np.asarray(labels)
                    for tally in tallies:
                        if tally.session is None:
                            continue
                        t0 = time.perf_counter()
                        try:
                            logits = np.asarray(tally.session.predict(x), dtype=np.float32)[: len(labels)]
                        except Exception as exc:  # e.g. out of memory: this runtime stops, the others go on
                            bar.write(f"{name} on {tally.backend}: failed: {one_line(exc)}", file=sys.stderr)
                            tally.fail(one_line(exc))
                            continue
                        tally.seconds += time.perf_counter() - t0
                        tally.add(logits.reshape(len(labels), -1), target)
                bar.update(len(loaded))
                shown = [f"{t.backend} top1 {t.percent(t.top1):.2f}%" for t in tallies if t.percent(t.top1) is not None]
                bar.set_postfix_str(" ".join(shown))
    finally:
        bar.close()
        for tally in tallies:
            if tally.session is not None:
                tally.session.close()
    return tallies, skipped, content.hexdigest(), time.perf_counter() - started, pre, card


def _class_names(data: Dataset, classes: int) -> list[str]:
    return list(data.classes) if data.classes is not None else [str(i) for i in range(classes)]


def main(args: argparse.Namespace) -> int:
    backends = _backends(args.backend)
    data = scan(args.data, args.labels)  # bad data is reported before torch and the models load
    items = subset(data.items, args.limit)
    from bench.core import settings as setting

    # every value checked (e.g. --device cuda without a GPU, fp16 on a CPU) before any work
    settings = setting.from_args(args, available_backend(backends[0]), batch_sizes=(args.batch_size,))
    names = list(settings.model_names)
    for backend_name in backends[1:]:
        options = backend_class(backend_name).Options.from_args(args, backend_name).items()
        setting.check_backend(settings, available_backend(backend_name), options)
    check_writable_dir(args.out, "--out")
    check_writable_dir(args.cache_dir, "--cache-dir")

    import torch

    from bench.core import environment

    torch.set_num_threads(settings.threads)
    checkpoint = None
    if args.checkpoint is not None:
        checkpoint = {
            "path": str(args.checkpoint.resolve()),
            "name": args.checkpoint.name,
            "sha256": _sha256(args.checkpoint),
        }
    env = environment.collect({"device": args.device, "threads": settings.threads})
    run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-accuracy-{os.getpid()}"
    run_dir = Path(args.out) / run_id
    fingerprint = data.fingerprint()
    document: dict[str, object] = {
        "suite": SUITE_ID,
        "kind": "accuracy",
        "format": FORMAT,
        "run_id": run_id,
        "environment": {
            k: env.get(k)
            for k in ("env_id", "hostname", "cpu_model", "gpu_name", "os", "python", "versions", "git_commit")
        },
        "data": {**fingerprint, "limit": args.limit, "evaluated": len(items)},
        "results": [],
    }
    per_class: list[dict[str, object]] = []
    failed = 0
    table = []
    for name in names:
        tallies, skipped, content, seconds, pre, card = evaluate_model(
            name, args, settings, backends, data, items, not args.no_progress
        )
        reference = next((t for t in tallies if t.session is not None), None)
        for tally in tallies:
            top1 = tally.percent(tally.top1) if tally.error is None else None
            top5 = tally.percent(tally.top5) if tally.error is None and tally.num_classes >= 5 else None
            ref_top1 = reference.percent(reference.top1) if reference is not None else None
            result = {
                "model": name,
                "family": card.family,
                "backend": tally.backend,
                "status": "ok" if tally.error is None else "failed",
                "error": tally.error,
                "device": args.device,
                "precision": args.precision,
                "threads": settings.threads,
                "batch_size": args.batch_size,
                "resolution": pre.crop,
                "backend_detail": tally.detail,
                "preprocessing": {**_as_dict(pre), "summary": pre.describe()},
                "weights": settings.weights,
                "checkpoint": checkpoint,
                "images": int(tally.images.sum()),
                "skipped_unreadable": len(skipped),
                "skipped_examples": skipped[:20],
                "classes": tally.num_classes,
                "correct_top1": int(tally.top1.sum()),
                "correct_top5": int(tally.top5.sum()),
                "top1": top1,
                "top5": top5,
                "reference_backend": reference.backend if reference is not None else None,
                "top1_drop": None if top1 is None or ref_top1 is None else round(ref_top1 - top1, 4),
                "published_top1": card.top1,
                "published_top1_source": card.top1_source or None,
                "data_content_sha256": content,
                "seconds": round(seconds, 3),
                "predict_seconds": round(tally.seconds, 3),
                "images_per_s": round(len(items) / seconds, 2) if seconds > 0 else None,
                "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S"),
            }
            document["results"].append(result)  # type: ignore[union-attr]
            failed += tally.error is not None
            names_by_index = _class_names(data, tally.num_classes)
            if tally.error is None:
                for i in np.flatnonzero(tally.images):
                    per_class.append(
                        {
                            "model": name,
                            "backend": tally.backend,
                            "class_index": int(i),
                            "class_name": names_by_index[i] if i < len(names_by_index) else str(i),
                            "images": int(tally.images[i]),
                            "correct_top1": int(tally.top1[i]),
                            "correct_top5": int(tally.top5[i]),
                        }
                    )
            table.append(result)
        _write(run_dir, document, per_class)  # each finished model is on disk before the next starts
        if skipped:
            print(f"{name}: skipped {len(skipped)} unreadable image(s), e.g. {skipped[0]}", file=sys.stderr)
    print(_table(table))
    print(f"results: {run_dir}")
    return 1 if failed else 0


def _as_dict(pre) -> dict[str, object]:
    return {
        "resize": pre.resize,
        "crop": pre.crop,
        "interpolation": pre.interpolation,
        "mean": list(pre.mean) if pre.mean is not None else None,
        "std": list(pre.std) if pre.std is not None else None,
        "source": pre.source,
    }


def _write(run_dir: Path, document: dict[str, object], per_class: list[dict[str, object]]) -> None:
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run_dir / RESULT_FILE, json.dumps(document, indent=1, default=str) + "\n")
        buf = io.StringIO()
        fields = ["model", "backend", "class_index", "class_name", "images", "correct_top1", "correct_top5"]
        writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(per_class)
        atomic_write_text(run_dir / PER_CLASS_FILE, buf.getvalue())
    except OSError as exc:
        raise BenchError(f"cannot write results to {run_dir}: {exc.strerror or exc}") from None


def _fmt(value: object, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float | int) and not isinstance(value, bool) else str(value)


def _table(results: list[dict[str, object]]) -> str:
    import pandas as pd

    from bench.core.formatting import text_table

    rows = [
        {
            "model": r["model"],
            "backend": r["backend"],
            "precision": r["precision"],
            "images": r["images"],
            "top1 %": _fmt(r["top1"]),
            "top5 %": _fmt(r["top5"]),
            "drop": "-" if r["top1_drop"] is None or r["backend"] == r["reference_backend"] else _fmt(r["top1_drop"]),
            "published": _fmt(r["published_top1"]),
            "img/s": _fmt(r["images_per_s"], 1),
        }
        for r in results
    ]
    return text_table(pd.DataFrame(rows))


# ------------------------------------------------------------------------------------- for bench report
