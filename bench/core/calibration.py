"""The images a post-training quantizer calibrates its activation ranges on, shared by every runtime.

Every runtime's own quantization tool (ONNX Runtime's ``quantize_static``, OpenVINO's NNCF, the PT2E
quantizers of ExecuTorch and LiteRT) is fed the same batches from here, so two runtimes' int8 artifacts of
one model differ by their tools, never by what they saw. What the set is enters each artifact's cache key
(:meth:`Calibration.key`) and each row's runtime detail (:meth:`Calibration.describe`).

Without user images the set is seeded standard-normal noise: it makes a valid int8 artifact whose speed is
representative (the kernels do not care what the ranges are), but whose accuracy is not, hence the
"not for accuracy" in its description.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SYNTHETIC_IMAGES = 16
SYNTHETIC_SEED = 0


@dataclass(frozen=True)
class Calibration:
    """A calibration set: ``images`` seeded synthetic images (the only kind so far)."""

    images: int = SYNTHETIC_IMAGES
    seed: int = SYNTHETIC_SEED

    def key(self) -> dict[str, object]:
        """What changes a calibrated artifact: part of every quantized artifact's cache key."""
        return {"source": "synthetic standard normal", "images": self.images, "seed": self.seed}

    def describe(self) -> str:
        return f"{self.images} seeded synthetic images (standard normal, seed {self.seed}): not for accuracy"

    def batches(self, shape: tuple[int, ...]) -> list[np.ndarray]:
        """Float32 batches of ``shape`` (its first dimension the batch), at least one, ``images`` in all
        where the batch size divides it; the same arrays on every call and every runtime."""
        rng = np.random.default_rng(self.seed)
        count = max(self.images // shape[0], 1)
        return [rng.standard_normal(shape).astype(np.float32) for _ in range(count)]


DEFAULT_CALIBRATION = Calibration()
