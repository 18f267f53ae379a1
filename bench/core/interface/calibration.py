"""The images a post-training quantizer calibrates its activation ranges on, shared by every runtime.

Every runtime's own quantization tool (ONNX Runtime's ``quantize_static``, OpenVINO's NNCF, the PT2E
quantizers of ExecuTorch and LiteRT) is fed the same batches from here, so two runtimes' int8 artifacts of
one model differ by their tools, never by what they saw. What the set is enters each artifact's cache key
(:meth:`Calibration.key`), each quantized row's ``calibration`` column and its runtime detail
(:meth:`Calibration.describe`).

Two kinds:

- ``--calibration DIR``: the user's images (an ImageFolder or a flat folder: every image file under it,
  as ``accuracy --data`` finds them, no labels needed), ``--calibration-images N`` of them chosen with a
  seed, each through the model's own evaluation preprocessing. The chosen files' bytes are hashed into the
  key, so an edited image makes a new artifact.
- without it, seeded standard-normal noise: a valid int8 artifact whose speed is representative (the
  kernels do not care what the ranges are) but whose accuracy is not (real images fall outside the ranges
  noise gives), hence "not for accuracy" in its description.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.core.errors import BenchError
from bench.core.scoring.datasets import is_image_name, load_image, shown

SYNTHETIC_IMAGES = 16
SYNTHETIC_SEED = 0
FOLDER_IMAGES = 32
"""Images chosen from ``--calibration DIR`` unless ``--calibration-images`` says otherwise."""


@dataclass(frozen=True)
class Calibration:
    """A calibration set: ``images`` seeded synthetic images, or ``files`` chosen from a folder."""

    images: int = SYNTHETIC_IMAGES
    seed: int = SYNTHETIC_SEED
    folder: str | None = None
    files: tuple[str, ...] = ()
    content_sha256: str = ""
    """SHA-256 over the chosen files' bytes, in order (folder sets only)."""

    @classmethod
    def from_folder(cls, root: Path, images: int = FOLDER_IMAGES, seed: int = SYNTHETIC_SEED) -> Calibration:
        """``images`` image files of ``root`` chosen with ``seed`` (all of them when it holds fewer), or a
        one-line :class:`BenchError` naming the folder."""
        if not root.is_dir():
            raise BenchError(f"--calibration {shown(root)}: {'not a folder' if root.exists() else 'no such folder'}")
        found = sorted(_image_files(root))
        if not found:
            raise BenchError(f"--calibration {shown(root)} holds no image files")
        rng = np.random.default_rng(seed)
        chosen = found if len(found) <= images else [found[i] for i in sorted(rng.choice(len(found), images, False))]
        digest = hashlib.sha256()
        for path in chosen:
            try:
                digest.update(hashlib.sha256(path.read_bytes()).digest())
            except OSError as exc:
                raise BenchError(f"--calibration: cannot read {shown(path)}: {exc.strerror or exc}") from None
        return cls(len(chosen), seed, str(root.resolve()), tuple(map(str, chosen)), digest.hexdigest())

    def key(self) -> dict[str, object]:
        """What changes a calibrated artifact: part of every quantized artifact's cache key."""
        if self.folder is None:
            return {"source": "synthetic standard normal", "images": self.images, "seed": self.seed}
        return {"source": "images", "images": self.images, "seed": self.seed, "content_sha256": self.content_sha256}

    def recipe_key(self, recipe: dict[str, str]) -> dict[str, object]:
        """``recipe`` (how a runtime's tool quantizes) with this set's :meth:`key`: the cache key's ``quantization``."""
        return {**recipe, "calibration": self.key()}

    def recipe_detail(self, recipe: dict[str, str]) -> str:
        """``recipe`` with this set's :meth:`describe`, in one line: the row's (and manifest's) ``quantization``."""
        return "; ".join(f"{k}: {v}" for k, v in {**recipe, "calibration": self.describe()}.items())

    def describe(self) -> str:
        if self.folder is None:
            return f"{self.images} seeded synthetic images (standard normal, seed {self.seed}): not for accuracy"
        return (
            f"{self.images} images of {shown(Path(self.folder).name)} (seeded choice, seed {self.seed}; "
            f"content {self.content_sha256[:12]})"
        )

    def batches(self, shape: tuple[int, ...], model_name: str | None = None) -> list[np.ndarray]:
        """Float32 batches of ``shape`` (its first dimension the batch), at least one; the same arrays on
        every call and every runtime. Folder images go through ``model_name``'s evaluation preprocessing at
        the shape's resolution; the last batch is filled up with the first images (static shapes)."""
        if self.folder is None:
            rng = np.random.default_rng(self.seed)
            count = max(self.images // shape[0], 1)
            return [rng.standard_normal(shape).astype(np.float32) for _ in range(count)]
        if model_name is None:
            raise ValueError("images of a folder need the model's preprocessing: pass model_name")
        from models.registry import get_preprocessing

        pre = get_preprocessing(model_name).at(int(shape[-1]))
        arrays = []
        for file in self.files:
            array, _, problem = load_image(Path(file), pre)
            if problem is not None or array is None:
                raise BenchError(f"--calibration: cannot read image {shown(file)}: {problem}")
            arrays.append(array)
        size = int(shape[0])
        while len(arrays) % size:
            arrays.append(arrays[len(arrays) % len(self.files)])
        return [np.stack(arrays[i : i + size]).astype(np.float32) for i in range(0, len(arrays), size)]


def _image_files(root: Path) -> list[Path]:
    """Regular image files under ``root`` (class folders or flat), symbolic links to folders not followed."""
    found = []
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in files:
            path = Path(folder) / name
            if is_image_name(name) and path.is_file():
                found.append(path)
    return found


DEFAULT_CALIBRATION = Calibration()
