"""The small interface every runtime implements, and the workload it is asked to run.

A backend turns a PyTorch model into something it can execute (``prepare``: export/convert, cached),
opens it (``load``) and hands back a :class:`Session` whose ``run`` does exactly one inference on an
input bound beforehand. The engine owns all timing, so every backend is measured the same way.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from torch import nn

PRECISIONS = ("fp32", "fp16", "bf16")


@dataclass(frozen=True)
class Workload:
    """One measured configuration: a model at an input shape on a device with given settings."""

    model_name: str
    batch_size: int
    resolution: int
    device: str = "cpu"
    precision: str = "fp32"
    threads: int | None = None
    channels_last: bool = False
    compile: bool = False
    options: tuple[tuple[str, str], ...] = ()
    """Backend-specific settings (e.g. ORT graph optimization level, Core ML compute units)."""

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        return (self.batch_size, 3, self.resolution, self.resolution)

    def option(self, key: str, default: str) -> str:
        return dict(self.options).get(key, default)


@dataclass
class Prepared:
    """What ``prepare`` produced: an artifact on disk (or the model itself) and how long it took."""

    artifact: Path | None
    cache_hit: bool = False
    detail: dict[str, str] = field(default_factory=dict)


class Session(abc.ABC):
    """A loaded model with its input bound; ``run`` blocks until the inference has finished."""

    detail: dict[str, str]

    @abc.abstractmethod
    def run(self) -> None: ...

    @abc.abstractmethod
    def predict(self, x: np.ndarray) -> np.ndarray:
        """Logits for ``x`` as float32 numpy (used for the parity check, not timed)."""

    def timed_run_ms(self) -> float | None:
        """Device-side time of the last ``run`` in ms where the runtime has one (CUDA events)."""
        return None

    def close(self) -> None:  # noqa: B027 - optional hook
        pass


class Backend(abc.ABC):
    name: str
    devices: tuple[str, ...] = ("cpu",)
    can_time_here: bool = True
    """False where this platform can prepare models but not execute them (Core ML off macOS)."""

    def check(self, workload: Workload) -> None:  # noqa: B027 - optional hook
        """Raise :class:`bench.errors.BenchError` if ``workload`` cannot run here (before any work)."""

    @abc.abstractmethod
    def prepare(self, model: nn.Module, workload: Workload, cache_dir: Path) -> Prepared: ...

    @abc.abstractmethod
    def load(self, model: nn.Module, prepared: Prepared, workload: Workload, example: np.ndarray) -> Session: ...

    def versions(self) -> dict[str, str]:
        return {}
