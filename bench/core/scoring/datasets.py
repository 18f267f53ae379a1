"""Labelled image folders for ``bench accuracy``: what is in them, what each image is labelled, and decoding
each image within a bounded amount of work.

Layouts:

- an ImageFolder: ``DIR/<class>/**/<image>``; class indices follow the sorted folder names (torchvision's
  ``ImageFolder``), except when every folder is an ImageNet synset id (``n01440764``): then each gets its
  standard ImageNet-1k index, so a few synset folders score against the 1000-class head as the full set does;
- a flat folder plus a label file in a usual ILSVRC2012 val format: ``<image> <index>`` lines (0-based
  index in sorted-synset order, e.g. Caffe's ``val.txt``), ``<image>,<wnid> ...`` (Kaggle's
  ``LOC_val_solution.csv``, with or without a byte-order mark), or the devkit's
  ``ILSVRC2012_validation_ground_truth.txt`` (one ILSVRC2012 id per line), which needs the devkit's
  ``meta.mat`` beside it.

Only regular files count as images (a named pipe would block the reader forever); folders are walked once
each, whatever symbolic links point at them (a loop would count images many times). Entries that cannot be
images (dangling links, pipes, devices) are listed in :attr:`Dataset.unreadable`, like images that fail to
decode, so ``--skip-unreadable`` decides for both.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.core.errors import BenchError
from bench.core.scoring import imagenet_classes
from bench.core.util import one_line

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
MAX_ASPECT = 50.0
"""Long side over short side beyond which an image is refused: resizing the short side to 256 would make the
long one enormous (a 1 x 20000 PNG of 165 bytes would need a 256 x 5,120,000 resize)."""
MAX_RESIZED_PIXELS = 25_000_000
"""Pixels after the short-side resize beyond which an image is refused (about 75 MB of RGB)."""
_WNID = re.compile(r"n\d{8}")
_DEVKIT_IMAGE = "ILSVRC2012_val_{:08d}"


def shown(text: str | os.PathLike[str]) -> str:
    """A path or name as it can be printed and written as UTF-8: undecodable bytes become ``\\xNN``."""
    return str(text).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


@dataclass(frozen=True)
class Item:
    path: Path
    label: int


@dataclass
class Dataset:
    """The images of ``--data`` with their labels."""

    root: Path
    layout: str
    """``imagefolder`` or ``labels``."""
    items: list[Item]
    classes: list[str] | None
    """Class names by index; None when a label file gives bare indices (the head decides how many)."""
    labels_file: Path | None = None
    unreadable: list[tuple[Path, str]] = field(default_factory=list)
    """Entries named like images that are not regular files (dangling link, pipe, device), with why."""
    imagenet_folders: bool = False
    """True when the class folders are ImageNet synset ids, mapped to their standard indices."""

    @property
    def imagenet_classes(self) -> bool:
        """True when the labels are the standard ImageNet-1k classes (indices are the standard ones)."""
        return self.classes is not None and tuple(self.classes) == imagenet_classes.WNIDS

    def name(self) -> str:
        """What the data set is, for a report: never the user's path."""
        if self.imagenet_classes:
            return "ImageNet-1k val" if self.is_imagenet_val() else "ImageNet-1k classes (a folder of val images)"
        return f"folder '{shown(self.root.resolve().name)}'"

    def is_imagenet_val(self, evaluated: int | None = None) -> bool:
        """The full ILSVRC2012 validation set: the 1000 standard classes, 50 images each, all evaluated."""
        if not self.imagenet_classes or len(self.items) != imagenet_classes.VAL_IMAGES or self.unreadable:
            return False
        if evaluated is not None and evaluated != len(self.items):
            return False
        counts = np.bincount([item.label for item in self.items], minlength=len(imagenet_classes.WNIDS))
        return bool((counts == imagenet_classes.VAL_IMAGES // len(imagenet_classes.WNIDS)).all())

    def fingerprint(self) -> dict[str, object]:
        """What the folder held (every image's path, size and label; not the bytes, which are hashed as read)."""
        h = hashlib.sha256()
        for item in self.items:
            relative = os.fsencode(item.path.relative_to(self.root).as_posix())
            try:
                size = item.path.stat().st_size
            except OSError:
                size = -1
            h.update(relative + f"\t{size}\t{item.label}\n".encode())
        found: dict[str, object] = {
            "path": shown(self.root.resolve()),
            "name": self.name(),
            "layout": self.layout,
            "images": len(self.items),
            "classes": len(self.classes) if self.classes is not None else None,
            "imagenet_folders": self.imagenet_folders,
            "listing_sha256": h.hexdigest(),
        }
        if self.labels_file is not None:
            found["labels_file"] = shown(self.labels_file.resolve())
            found["labels_sha256"] = hashlib.sha256(self.labels_file.read_bytes()).hexdigest()
        return found


def is_image_name(name: str) -> bool:
    return name.lower().endswith(IMG_EXTENSIONS)


def _kind(path: Path) -> str | None:
    """None for a regular file (after links), else why it cannot be an image."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "dangling symbolic link" if os.path.islink(path) else "no such file"
    except OSError as exc:
        return exc.strerror or str(exc)
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISFIFO(mode):
        return "a named pipe, not a regular file"
    if stat.S_ISDIR(mode):
        return "a folder"
    return "not a regular file"


def scan(root: Path, labels: Path | None) -> Dataset:
    """The images of ``--data`` with their labels, or a one-line :class:`BenchError`."""
    if not root.exists():
        raise BenchError(f"--data {shown(root)}: no such folder")
    if not root.is_dir():
        raise BenchError(f"--data {shown(root)} is a file, not a folder")
    if labels is not None:
        return _scan_flat(root, labels)
    classes = sorted(entry.name for entry in os.scandir(root) if entry.is_dir())
    imagenet = bool(classes) and all(name in imagenet_classes.INDEX for name in classes)
    items: list[Item] = []
    unreadable: list[tuple[Path, str]] = []
    seen: set[tuple[int, int]] = set()  # (device, inode) of every folder walked: a link loop is walked once
    for index, name in enumerate(classes):
        label = imagenet_classes.INDEX[name] if imagenet else index
        for folder, dirs, files in os.walk(root / name, followlinks=True):
            here = os.stat(folder)
            if (here.st_dev, here.st_ino) in seen:
                dirs[:] = []
                continue
            seen.add((here.st_dev, here.st_ino))
            dirs.sort()
            for f in sorted(files):
                if not is_image_name(f):
                    continue
                path = Path(folder) / f
                why = _kind(path)
                if why is None:
                    items.append(Item(path, label))
                else:
                    unreadable.append((path, why))
    if not items and not unreadable:
        loose = any(is_image_name(e.name) for e in os.scandir(root) if e.is_file())
        if loose:
            raise BenchError(
                f"--data {shown(root)} has images but no class folders; for a flat folder pass --labels FILE"
            )
        raise BenchError(f"--data {shown(root)} holds no images ({' '.join(IMG_EXTENSIONS)}) in class folders")
    names = list(imagenet_classes.WNIDS) if imagenet else classes
    return Dataset(root, "imagefolder", items, names, unreadable=unreadable, imagenet_folders=imagenet)


def _scan_flat(root: Path, labels: Path) -> Dataset:
    if not labels.is_file():
        raise BenchError(f"--labels {shown(labels)}: no such file")
    entries = sorted((e for e in os.scandir(root) if is_image_name(e.name)), key=lambda e: e.name)
    images = [e.name for e in entries if _kind(Path(e.path)) is None]
    unreadable = [(Path(e.path), why) for e in entries if (why := _kind(Path(e.path))) not in (None, "a folder")]
    if not images and not unreadable:
        folders = [e.name for e in os.scandir(root) if e.is_dir()]
        if any(is_image_name(f) for d in folders for f in os.listdir(root / d)):
            raise BenchError(
                f"--data {shown(root)} is an ImageFolder ({len(folders)} class folders with images), not a flat "
                "folder: drop --labels to label images by their folder"
            )
        raise BenchError(f"--data {shown(root)} holds no images ({' '.join(IMG_EXTENSIONS)})")
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
            f"--labels {shown(labels)} has no label for {len(unlabelled)} image(s) of {shown(root)}, "
            f"e.g. {shown(unlabelled[0])}"
        )
    return Dataset(root, "labels", items, classes, labels, unreadable=unreadable)


def read_labels(path: Path) -> tuple[dict[str, int], list[str] | None]:
    """``image name or stem -> class index`` and the class names (None for bare indices).

    Synset labels get the standard ImageNet-1k indices when they are all ImageNet synsets (a partial
    solution file still scores against the 1000-class head); an image listed twice with different labels
    is an error, not a silent last-one-wins.
    """
    try:
        lines = [line.strip() for line in path.read_text(encoding="utf-8-sig").splitlines()]
    except (OSError, UnicodeDecodeError) as exc:
        raise BenchError(f"--labels {shown(path)}: unreadable ({getattr(exc, 'strerror', None) or exc})") from None
    lines = [line for line in lines if line and not line.lower().startswith("imageid")]
    if not lines:
        raise BenchError(f"--labels {shown(path)} is empty")
    if all(line.isdigit() for line in lines):
        return _devkit_labels(path, [int(line) for line in lines])
    pairs = []
    for number, line in enumerate(lines, 1):
        parts = line.replace(",", " ").split()
        if len(parts) < 2:
            raise BenchError(
                f"--labels {shown(path)} line {number}: expected '<image> <class index or synset>', got {line!r}"
            )
        pairs.append((parts[0], parts[1]))
    if all(label.isdigit() for _, label in pairs):
        return _unique(path, [(name, int(label)) for name, label in pairs]), None
    bad = next((label for _, label in pairs if not _WNID.fullmatch(label)), None)
    if bad is not None:
        raise BenchError(f"--labels {shown(path)}: {bad!r} is neither a class index nor a synset id (n01440764)")
    wnids = {label for _, label in pairs}
    if wnids <= set(imagenet_classes.INDEX):
        return _unique(path, [(n, imagenet_classes.INDEX[w]) for n, w in pairs]), list(imagenet_classes.WNIDS)
    classes = sorted(wnids)
    index = {wnid: i for i, wnid in enumerate(classes)}
    return _unique(path, [(name, index[label]) for name, label in pairs]), classes


def _unique(path: Path, pairs: list[tuple[str, int]]) -> dict[str, int]:
    found: dict[str, int] = {}
    for name, label in pairs:
        if found.setdefault(name, label) != label:
            raise BenchError(
                f"--labels {shown(path)} labels {name} twice, as {found[name]} and {label}; keep one line per image"
            )
    return found


def _devkit_labels(path: Path, ids: list[int]) -> tuple[dict[str, int], list[str]]:
    meta = path.parent / "meta.mat"
    if not meta.is_file():
        raise BenchError(
            f"--labels {shown(path)} holds ILSVRC2012 ids (the devkit's ground truth); put the devkit's meta.mat "
            "beside it to map them to synsets, or give '<image> <index>' lines"
        )
    from scipy.io import loadmat

    try:
        synsets = loadmat(str(meta), squeeze_me=True)["synsets"]
        leaves = {int(s["ILSVRC2012_ID"]): str(s["WNID"]) for s in synsets if int(s["num_children"]) == 0}
    except Exception as exc:
        raise BenchError(f"{shown(meta)}: not the ILSVRC2012 devkit's meta.mat ({one_line(exc)})") from None
    classes = sorted(leaves.values())
    index = {wnid: i for i, wnid in enumerate(classes)}
    unknown = next((i for i in ids if i not in leaves), None)
    if unknown is not None:
        raise BenchError(f"--labels {shown(path)}: id {unknown} is not a leaf synset of {shown(meta)}")
    return {_DEVKIT_IMAGE.format(n): index[leaves[i]] for n, i in enumerate(ids, 1)}, classes


def subset(items: Sequence[Item], limit: int | None) -> list[Item]:
    """``limit`` images spread evenly over the whole (class-ordered) list, so every class has its share."""
    if limit is None or limit >= len(items):
        return list(items)
    return [items[i * len(items) // limit] for i in range(limit)]


# ------------------------------------------------------------------------------------------- decoding


def load_image(path: Path, pre) -> tuple[np.ndarray | None, bytes, str | None]:
    """(array, SHA-256 of the file, None) or (None, ..., why it cannot be read).

    The work per image is bounded before decoding: regular files only, an aspect ratio of at most
    :data:`MAX_ASPECT` and at most :data:`MAX_RESIZED_PIXELS` after the resize (Pillow's own
    decompression-bomb limit bounds the decoded size).
    """
    from PIL import Image

    from models.registry import resized_size

    why = _kind(path)
    if why is not None:
        return None, b"", why
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        return None, b"", exc.strerror or str(exc)
    digest = hashlib.sha256(data).digest()
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            if min(width, height) < 1 or max(width, height) / min(width, height) > MAX_ASPECT:
                return None, digest, f"{width}x{height} pixels: aspect ratio beyond {MAX_ASPECT:g}:1"
            w, h = resized_size(width, height, pre.resize)
            if w * h > MAX_RESIZED_PIXELS:
                return None, digest, f"{width}x{height} pixels would resize to {w}x{h} (over {MAX_RESIZED_PIXELS})"
            image.load()
            rgb = image.convert("RGB")
        return pre.apply(rgb), digest, None
    except Exception as exc:  # Pillow raises many types for broken files; each means: unreadable
        return None, digest, one_line(exc, 200)
