"""The runtime interface: what every backend implements, its own options, the workload it is asked to
run, and the registry through which the core reaches backends without importing them.

A backend is one module in ``bench/backends/`` that says everything the rest of the suite needs to know
about it: its name and display label, the devices it runs on, the packages whose versions identify it,
its own command line options (a small dataclass), why it cannot run or time here if so, and how to
``prepare`` (export/convert, cached), ``load`` and run a model. The engine owns all timing, so every
backend is measured the same way, and no code outside ``bench/backends/`` names a backend.

The interface lives here, in the core, so that the dependency points one way: backends import the
core, the core never imports ``bench.backends``. Commands pick a backend from the registry and pass
the instance in. Where the core needs facts about backends by name (a report labelling an old run's
rows, the package versions of every runtime), it asks the :class:`Registry` that ``bench.backends``
installs when it is imported (:func:`registry`); a backend class is then loaded from its
``"module:class"`` spec with :mod:`importlib`, as a worker process would.
"""

from __future__ import annotations

import abc
import argparse
import dataclasses
import importlib
import importlib.metadata
import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from bench.core.errors import BenchError
from bench.core.interface.calibration import DEFAULT_CALIBRATION, Calibration

if TYPE_CHECKING:  # the framework loads with the first model, not with the interface
    from torch import nn

PRECISIONS = ("fp32", "fp16", "bf16")
"""Float precisions: what a backend runs unless it declares otherwise (:attr:`Backend.precisions`)."""
QUANTIZED = ("int8",)
"""Quantized precisions: only backends whose own tooling quantizes declare them (each says how, in its module)."""
ALL_PRECISIONS = PRECISIONS + QUANTIZED
"""What ``--precision`` accepts; each backend says which it runs (:meth:`Backend.check`)."""


def option(default: str, help: str, choices: tuple[str, ...] | None = None) -> Any:
    """Declare one backend option: a string with a default, a help text and optional choices.

    The command-line flag is ``--<backend>-<field name with dashes>`` (e.g. ``--onnx-graph-opt``).
    """
    return field(default=default, metadata={"help": help, "choices": choices})


@dataclass(frozen=True)
class BackendOptions:
    """A backend's own settings; subclasses declare fields with :func:`option`.

    Only the chosen backend's options enter a workload, its result rows and its resume key, so
    changing another backend's flag never changes what a run is.
    """

    @classmethod
    def flag(cls, backend: str, name: str) -> str:
        return f"--{backend}-{name.replace('_', '-')}"

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser, backend: str, label: str) -> None:
        specs = dataclasses.fields(cls)
        if not specs:
            return
        group = parser.add_argument_group(f"{label} options (--backend {backend})")
        for spec in specs:
            choices = spec.metadata.get("choices")
            group.add_argument(
                cls.flag(backend, spec.name),
                dest=f"{backend}_{spec.name}",
                default=argparse.SUPPRESS,  # absent unless given: a flag of a backend not run can be refused
                choices=choices,
                help=f"{spec.metadata.get('help', '')} (default: {spec.default})",
            )

    @classmethod
    def from_args(cls, args: argparse.Namespace, backend: str) -> BackendOptions:
        values = {spec.name: getattr(args, f"{backend}_{spec.name}", spec.default) for spec in dataclasses.fields(cls)}
        return cls.from_mapping(values, backend)

    @classmethod
    def from_mapping(cls, values: Mapping[str, str], backend: str) -> BackendOptions:
        """Options from ``values``, each checked against its choices (a one-line error naming the flag)."""
        known = {spec.name: spec for spec in dataclasses.fields(cls)}
        for name, value in values.items():
            spec = known.get(name)
            if spec is None:
                raise BenchError(f"the {backend} backend has no option {name!r}")
            choices = spec.metadata.get("choices")
            if choices and value not in choices:
                raise BenchError(f"{cls.flag(backend, name)}: unknown value {value!r}; choose {', '.join(choices)}")
        return cls(**{k: str(v) for k, v in values.items()})

    def items(self) -> tuple[tuple[str, str], ...]:
        return tuple((spec.name, str(getattr(self, spec.name))) for spec in dataclasses.fields(self))


@dataclass(frozen=True)
class NoOptions(BackendOptions):
    """For backends without options of their own."""


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
    """The backend's own options (:meth:`BackendOptions.items`)."""
    channels: int = 3
    """Input channels: 3 for images; more when a bare block is measured (``bench complexity``)."""
    calibration: Calibration = DEFAULT_CALIBRATION
    """What a quantized precision calibrates on (:mod:`bench.core.interface.calibration`); float precisions
    ignore it."""

    @property
    def quantized(self) -> bool:
        return self.precision in QUANTIZED

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        return (self.batch_size, self.channels, self.resolution, self.resolution)

    def option(self, key: str, default: str) -> str:
        return dict(self.options).get(key, default)


@dataclass
class Prepared:
    """What ``prepare`` produced: an artifact on disk (or the model itself), and facts about it."""

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


def native_command(tool: str, argv: list[str], output: str, note: str = "", *, wrap: str = "{}") -> dict[str, str]:
    """One entry of :meth:`Backend.native_commands`: ``argv`` quoted for a POSIX shell, inside ``wrap``."""
    import shlex

    found = {"tool": tool, "command": wrap.format(shlex.join(argv)), "output": output}
    return {**found, "note": note} if note else found


class Backend(abc.ABC):
    name: ClassVar[str]
    label: ClassVar[str]
    """How tables and plots name the runtime, e.g. ``ONNX Runtime``."""
    packages: ClassVar[tuple[str, ...]]
    """Distributions whose versions identify this runtime; the first one installed is the runtime's version."""
    extra: ClassVar[str | None] = None
    """The ``pip install .[extra]`` that installs this runtime, where it is optional."""
    requires: ClassVar[tuple[str, ...]] = ()
    """Python modules the runtime needs; when one is missing the backend is unavailable here."""
    devices: ClassVar[tuple[str, ...]] = ("cpu",)
    Options: ClassVar[type[BackendOptions]] = NoOptions
    native_tools: ClassVar[tuple[str, ...]] = ()
    """The vendor's own benchmark tools that time this runtime, as ``bench import`` names them."""

    @classmethod
    def native_commands(cls, file: str, threads: int, precision: str, warmup: int, iters: int) -> list[dict[str, str]]:
        """Shell lines of the vendor's tools that time the exported ``file`` with the suite's settings.

        Each is ``{tool, command, output[, note]}``, run in the folder holding the artifact (e.g.
        ``/data/local/tmp`` on a phone); ``output`` is named after the artifact so ``bench import``
        ties it back even where the tool's output does not name the model. None here: no such tool.
        """
        return []

    @classmethod
    def unavailable_reason(cls) -> str | None:
        """Why this runtime cannot be used at all here (a module is missing), or None."""
        missing = [m for m in cls.requires if importlib.util.find_spec(m) is None]
        if not missing:
            return None
        how = f"pip install '.[{cls.extra}]'" if cls.extra else f"install {', '.join(missing)}"
        return f"the {cls.name} backend needs {', '.join(missing)}, which is not installed ({how})"

    def cannot_time_reason(self) -> str | None:
        """Why this platform can prepare models but not time them (None: it can)."""
        return None

    precisions: ClassVar[tuple[str, ...]] = PRECISIONS
    """What ``--precision`` may be for this runtime (further limits, e.g. per device, in ``check``)."""
    module_options: ClassVar[bool] = False
    """True where ``--channels-last`` and ``--compile`` apply (they change the PyTorch module itself)."""

    def check(self, workload: Workload) -> None:
        """Raise :class:`bench.core.errors.BenchError` if ``workload`` cannot run here (before any work).

        Backends extend this (``super().check(workload)`` first) with their own limits.
        """
        if workload.device not in self.devices:
            raise BenchError(
                f"the {self.name} backend runs on {', '.join(self.devices)}, not --device {workload.device}"
            )
        if workload.precision not in self.precisions:
            allowed = " or ".join(self.precisions)
            raise BenchError(f"the {self.name} backend supports --precision {allowed}, not {workload.precision}")
        if (workload.channels_last or workload.compile) and not self.module_options:
            raise BenchError("--channels-last and --compile apply to the torch backend only")

    @abc.abstractmethod
    def prepare(self, model: nn.Module, workload: Workload, cache_dir: Path) -> Prepared: ...

    @abc.abstractmethod
    def load(self, model: nn.Module, prepared: Prepared, workload: Workload, example: np.ndarray) -> Session: ...

    def evict(self, prepared: Prepared) -> bool:
        """Remove a cached artifact that failed its parity check; True if there was one to remove."""
        from bench.core.interface import artifacts

        return prepared.artifact is not None and artifacts.evict(prepared.artifact)

    @classmethod
    def versions(cls) -> dict[str, str]:
        """Installed versions of :attr:`packages` (those not installed are left out)."""
        found = {}
        for package in cls.packages:
            try:
                found[package] = importlib.metadata.version(package)
            except importlib.metadata.PackageNotFoundError:
                continue
        return found

    @classmethod
    def runtime_version(cls, versions: Mapping[str, object]) -> str | None:
        """The runtime's version among recorded package ``versions`` (e.g. an old run's environment)."""
        return next((str(versions[p]) for p in cls.packages if versions.get(p)), None)


def load_class(spec: str) -> type[Backend]:
    """The backend class named by a ``"module:class"`` spec (how a worker process finds its runtime)."""
    module_name, _, class_name = spec.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, Backend)):
        raise BenchError(f"{spec!r} does not name a backend class")
    return cls


@dataclass(frozen=True)
class Registry:
    """The backends by name, each a ``"module:class"`` spec imported on first use (a runtime's heavy or
    optional packages load only when it is used). ``bench.backends`` declares the one instance."""

    specs: Mapping[str, str]
    """name -> ``"module:class"``, in the order reports show them."""

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.specs)

    def __contains__(self, name: object) -> bool:
        return name in self.specs

    def spec(self, name: str) -> str:
        try:
            return self.specs[name]
        except KeyError:
            raise BenchError(f"unknown backend {name!r}; choose one of {', '.join(self.specs)}") from None

    def backend_class(self, name: str) -> type[Backend]:
        return load_class(self.spec(name))

    def get(self, name: str) -> Backend:
        return self.backend_class(name)()

    def available(self, name: str) -> Backend:
        """The backend, or a one-line :class:`BenchError` saying what to install when its runtime is missing."""
        reason = self.backend_class(name).unavailable_reason()
        if reason is not None:
            raise BenchError(reason)
        return self.get(name)

    def for_tool(self, tool: str) -> str | None:
        """The backend whose vendor benchmark tool is ``tool`` (None: the tool runs several runtimes)."""
        return next((name for name in self.specs if tool in self.backend_class(name).native_tools), None)

    def packages(self) -> list[str]:
        """Every backend's identifying packages, in registry order (what an environment records)."""
        return [p for name in self.specs for p in self.backend_class(name).packages]


_installed: Registry | None = None


def install(found: Registry) -> None:
    """Make ``found`` the registry the core consults (``bench.backends`` does this on import)."""
    global _installed
    _installed = found


def registry() -> Registry:
    """The installed registry; importing ``bench.backends`` (as every command does) installs it."""
    if _installed is None:
        raise BenchError("no backend registry is installed: import bench.backends first")
    return _installed
