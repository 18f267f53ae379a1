"""The shared skeleton of a runtime that times a converted file (ExecuTorch ``.pte``, LiteRT ``.tflite``,
OpenVINO IR): ``prepare`` checks the workload, keys the export cache, builds the artifact on a miss (or
when the cached one is damaged or refused by :meth:`ArtifactBackend.check_artifact`), and reports facts
about it; ``load`` starts from :meth:`ArtifactBackend.artifact`. A backend says only what differs: its
cache folder and suffix, how it converts, how it checks a file, and which facts it reports.
"""

from __future__ import annotations

import abc
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from bench.core.errors import BenchError
from bench.core.interface import artifacts
from bench.core.interface.runtime import Backend, Prepared, Workload

if TYPE_CHECKING:
    from torch import nn


class ArtifactBackend(Backend):
    """A :class:`~bench.core.interface.runtime.Backend` whose ``prepare`` writes one cached artifact."""

    cache_folder: ClassVar[str]
    """The folder under the cache directory (usually the backend's name)."""
    suffix: ClassVar[str]
    """The artifact's file (or folder) suffix, e.g. ``.pte``."""
    artifact_noun: ClassVar[str] = "converted model"
    """What ``prepare`` makes, as a missing artifact's error names it."""

    @abc.abstractmethod
    def cache_key(self, model: nn.Module, workload: Workload) -> dict[str, Any]:
        """Everything that changes the artifact (model, shape, options, versions, weights)."""

    def stem(self, workload: Workload, key: dict[str, Any]) -> str:
        """The artifact's readable name (the cache adds the key's digest)."""
        b, _, r, _ = workload.input_shape
        return f"{workload.model_name}-b{b}-r{r}-{workload.precision}"

    @abc.abstractmethod
    def build(
        self, model: nn.Module, workload: Workload, key: dict[str, Any], staged: Path, cache_dir: Path
    ) -> dict[str, Any] | None:
        """Write the artifact to ``staged``; what it returns is kept in the entry's metadata."""

    def check_artifact(self, candidate: Path, meta: dict, workload: Workload) -> str | None:
        """Why a cached artifact cannot be used (it is rebuilt then), or None. Raising counts as a reason."""
        return None

    @abc.abstractmethod
    def facts(self, entry: artifacts.Entry, key: dict[str, Any], workload: Workload) -> dict[str, str]:
        """What the row records about the artifact (``Prepared.detail``); ``convert_s`` is added here."""

    def prepare(self, model: nn.Module, workload: Workload, cache_dir: Path) -> Prepared:
        self.check(workload)
        key = self.cache_key(model, workload)
        path = artifacts.entry_path(cache_dir, self.cache_folder, self.stem(workload, key), self.suffix, key)
        started = time.perf_counter()
        entry = artifacts.cached(
            path,
            key,
            lambda staged: self.build(model, workload, key, staged, cache_dir),
            lambda candidate, meta: self.check_artifact(candidate, meta, workload),
        )
        detail = self.facts(entry, key, workload)
        if not entry.hit:
            detail["convert_s"] = f"{time.perf_counter() - started:.1f}"
        return Prepared(artifact=entry.path, cache_hit=entry.hit, detail=detail)

    def artifact(self, prepared: Prepared) -> Path:
        """The artifact ``prepare`` made; a one-line error when ``load`` is called without one."""
        if prepared.artifact is None:
            raise BenchError(f"the {self.name} backend needs a {self.artifact_noun}; call prepare first")
        return prepared.artifact
