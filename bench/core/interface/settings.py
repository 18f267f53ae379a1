"""What a command measures or evaluates, and the one place command-line arguments become it.

:class:`Settings` is the setting of a run (backend, models, shapes, precision, weights, protocol);
:func:`from_args` builds it from any command's arguments with one set of checks, so ``run``,
``export``, ``accuracy`` and the rest accept and refuse the same values with the same one-line errors,
before any model is built. :func:`build_model` makes the seeded (or checkpointed) network a setting
names.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import models
from bench.core import arguments
from bench.core.errors import BenchError
from bench.core.interface.calibration import DEFAULT_CALIBRATION, FOLDER_IMAGES, Calibration
from bench.core.interface.runtime import QUANTIZED, Backend, Workload, registry
from bench.core.measure.timing import LoopLimits
from bench.core.util import sha256_file

if TYPE_CHECKING:
    from torch import nn

DEFAULT_WARMUP = LoopLimits(min_iters=10, min_time_s=1.0, max_time_s=60.0)
DEFAULT_STEADY = LoopLimits(min_iters=50, min_time_s=2.0, max_time_s=60.0)
DEFAULT_ROUNDS = 9
"""Rounds of a ``bench run`` (the timing budget is split over them). The headline rests on a cell's
clean rounds (:mod:`bench.core.measure.stats`), so more rounds give more chances to meet the machine calm."""
DEFAULT_PROCESSES = 2
"""Worker processes per runtime in a ``bench run``: a process can settle into a fast or slow state that
repeats within it (pyperf spawns many for this reason), so a cell's rounds alternate between two."""
DEFAULT_BUDGET_S = 90.0
"""Seconds of extra rounds a ``bench run`` may spend on cells that lack clean rounds (a calm machine
needs few or none; a slow one spends it, then the cells are flagged with the reason)."""


@dataclass(frozen=True)
class Settings:
    """What a run measures and how; commands build it with :func:`from_args`, checking every value
    before any model is built (the defaults here are for programmatic use)."""

    backend: str
    model_names: tuple[str, ...]
    batch_sizes: tuple[int, ...] = (1,)
    resolution: int | None = None
    device: str = "cpu"
    limits_warmup: LoopLimits = DEFAULT_WARMUP
    limits_steady: LoopLimits = DEFAULT_STEADY
    threads: int = 1
    precisions: tuple[str, ...] = ("fp32",)
    """Each is a cell of its own (a list is measured in one sitting, like several runtimes)."""
    calibration: Calibration = DEFAULT_CALIBRATION
    """What quantized precisions calibrate on (``--calibration DIR``, else seeded synthetic images)."""
    channels_last: bool = False
    compile: bool = False
    checkpoint: str | None = None
    single_head: bool = False
    seed: int = 0
    options: tuple[tuple[str, str], ...] = ()
    """The chosen backend's own options only."""
    oom_retry: bool = True
    rounds: int = DEFAULT_ROUNDS
    retry_unstable_s: float = 0.0
    """Seconds to spend re-timing unstable rows after the main rounds (0: never)."""
    processes: int = 1
    """Worker processes per runtime; a cell's rounds alternate between them (the process level varies too)."""
    budget_s: float = 0.0
    """Seconds of extra rounds for cells that lack clean rounds after the main rounds (0: none)."""

    def workloads(self) -> Iterator[Workload]:
        for name in self.model_names:
            resolution = self.resolution or models.get_card(name).default_resolution
            for batch in self.batch_sizes:
                for precision in self.precisions:
                    yield self.workload(name, batch, resolution, precision=precision)

    @property
    def precision(self) -> str:
        """The one precision of a setting that has one (``accuracy``, ``import``); a list has none."""
        if len(self.precisions) != 1:
            raise ValueError(f"this setting measures {len(self.precisions)} precisions; name one")
        return self.precisions[0]

    def workload(
        self,
        name: str,
        batch: int,
        resolution: int,
        options: tuple[tuple[str, str], ...] | None = None,
        *,
        precision: str | None = None,
    ) -> Workload:
        """The workload of one model at one shape and precision (``options``: another backend's, where one
        setting is evaluated on several runtimes; ``precision`` may be left out where there is one)."""
        return Workload(
            model_name=name,
            batch_size=batch,
            resolution=resolution,
            device=self.device,
            precision=precision or self.precision,
            calibration=self.calibration,
            threads=self.threads,
            channels_last=self.channels_last,
            compile=self.compile,
            options=self.options if options is None else options,
        )

    @property
    def weights(self) -> str:
        """What the weights are: ``seed=N``, or the checkpoint's file name and content hash."""
        if self.checkpoint is None:
            return f"seed={self.seed}"
        return f"{Path(self.checkpoint).name}@{sha256_file(self.checkpoint)[:12]}"

    @property
    def protocol(self) -> dict[str, object]:
        """How rows are measured (not what): part of the resume key, not of the setting's identity."""
        return {
            "warmup": asdict(self.limits_warmup),
            "steady": asdict(self.limits_steady),
            "rounds": self.rounds,
            "processes": self.processes,
            "seed": self.seed,
        }


def build_model(settings: Settings, name: str, resolution: int) -> nn.Module:
    """The network ``settings`` name: seeded, so every model gets the same weights whatever the order."""
    import torch

    torch.manual_seed(settings.seed)
    return models.create_model(
        name,
        checkpoint=settings.checkpoint,
        distillation=False if settings.single_head else None,
        img_size=resolution,
    )


def _arg(args: argparse.Namespace, name: str, default: object) -> object:
    """An argument the command may not declare (``export`` has no ``--warmup``): its default then."""
    value = getattr(args, name, None)
    return default if value is None else value


def check_option_flags(args: argparse.Namespace, chosen: tuple[str, ...] | list[str]) -> None:
    """Refuse a backend's own flag (``--openvino-frontend`` ...) when that backend is not run: silently
    ignoring it would report a setting that was never applied (as ``--channels-last`` on onnx is refused).
    Option flags are absent from ``args`` unless given (:meth:`BackendOptions.add_arguments`)."""
    import dataclasses

    found = registry()
    given = [
        found.backend_class(name).Options.flag(name, spec.name)
        for name in found.names
        if name not in chosen
        for spec in dataclasses.fields(found.backend_class(name).Options)
        if hasattr(args, f"{name}_{spec.name}")
    ]
    if given:
        runs = ",".join(chosen)
        raise BenchError(f"{', '.join(given)} apply to another backend than --backend {runs}; drop them or add it")


def from_args(
    args: argparse.Namespace,
    backend: Backend,
    *,
    batch_sizes: tuple[int, ...] | None = None,
    also: tuple[str, ...] = (),
    check: bool = True,
) -> Settings:
    """The checked setting of a command's arguments; every check runs before any model is built.

    Reads whichever of the shared model arguments the command declares (``--models``, ``--device``,
    ``--batch-sizes``, ``--resolution``, loop limits, ``--threads``, ``--precision``, ``--checkpoint``,
    ``--single-head``, ``--seed``, the backend's own options ...); ``batch_sizes`` overrides
    ``--batch-sizes`` for a command with one ``--batch-size``; ``also`` names further backends the
    command runs the setting on (their flags are not refused); ``check=False`` leaves asking whether the
    backend runs every precision to the caller (``run`` drops what one runtime of several cannot run).
    Bad input is a one-line :class:`BenchError`.
    """
    check_option_flags(args, (backend.name, *also))
    device = str(_arg(args, "device", "cpu"))
    _check_device(device, backend)
    names = tuple(arguments.select_models(args.models))
    resolution = getattr(args, "resolution", None)
    if resolution is not None:
        for name in names:
            models.check_resolution(models.get_card(name), resolution)
    warmup, steady = DEFAULT_WARMUP, DEFAULT_STEADY
    max_time = float(_arg(args, "max_time", steady.max_time_s))  # type: ignore[arg-type]
    if max_time == 0:
        raise BenchError("--max-time must be positive")
    checkpoint = getattr(args, "checkpoint", None)
    if checkpoint is not None:
        if len(names) != 1:
            raise BenchError("--checkpoint needs exactly one model in --models")
        if not Path(checkpoint).is_file():
            raise BenchError(f"checkpoint not found: {checkpoint}")
    threads = getattr(args, "threads", None)
    precisions = _precisions(_arg(args, "precision", "fp32"))
    settings = Settings(
        backend=backend.name,
        model_names=names,
        device=device,
        batch_sizes=batch_sizes or tuple(_arg(args, "batch_sizes", (1,))),  # type: ignore[arg-type]
        resolution=resolution,
        limits_warmup=LoopLimits(
            int(_arg(args, "warmup", warmup.min_iters)),  # type: ignore[arg-type]
            float(_arg(args, "warmup_time", warmup.min_time_s)),  # type: ignore[arg-type]
            max_time,
        ),
        limits_steady=LoopLimits(
            int(_arg(args, "iters", steady.min_iters)),  # type: ignore[arg-type]
            float(_arg(args, "min_time", steady.min_time_s)),  # type: ignore[arg-type]
            max_time,
        ),
        threads=threads if threads is not None else (arguments.default_threads() if hasattr(args, "threads") else 1),
        precisions=precisions,
        calibration=_calibration(args, precisions),
        channels_last=bool(getattr(args, "channels_last", False)),
        compile=bool(getattr(args, "compile", False)),
        checkpoint=str(checkpoint) if checkpoint is not None else None,
        single_head=bool(getattr(args, "single_head", False)),
        seed=int(_arg(args, "seed", 0)),  # type: ignore[arg-type]
        options=backend.Options.from_args(args, backend.name).items(),
        oom_retry=not getattr(args, "no_oom_retry", False),
        rounds=int(_arg(args, "rounds", DEFAULT_ROUNDS)),  # type: ignore[arg-type]
        retry_unstable_s=float(_arg(args, "retry_unstable", 0.0)),  # type: ignore[arg-type]
        processes=int(_arg(args, "processes", 1)),  # type: ignore[arg-type]
        budget_s=float(_arg(args, "budget", 0.0)),  # type: ignore[arg-type]
    )
    if check:
        check_backend(settings, backend)
    if checkpoint is not None:
        first = next(settings.workloads())
        build_model(settings, first.model_name, first.resolution)  # a checkpoint that does not fit is bad input
    return settings


def _calibration(args: argparse.Namespace, precisions: tuple[str, ...]) -> Calibration:
    """``--calibration DIR`` (with ``--calibration-images``), checked; only where a precision quantizes."""
    folder = getattr(args, "calibration", None)
    if folder is None:
        return DEFAULT_CALIBRATION
    if not any(p in QUANTIZED for p in precisions):
        raise BenchError(f"--calibration applies to quantized precisions ({', '.join(QUANTIZED)}), not to "
                         f"--precision {','.join(precisions)}")  # fmt: skip
    images = getattr(args, "calibration_images", None) or FOLDER_IMAGES
    return Calibration.from_folder(Path(folder), images, int(_arg(args, "seed", 0)))  # type: ignore[arg-type]


def _precisions(value: object) -> tuple[str, ...]:
    """``--precision`` as a command declares it: a list (``run``, ``export``) or one name (``accuracy``)."""
    return (value,) if isinstance(value, str) else tuple(value)  # type: ignore[arg-type]


def check_backend(settings: Settings, backend: Backend, options: tuple[tuple[str, str], ...] | None = None) -> None:
    """Can ``backend`` run this setting here (device, every precision, a GPU that is there ...)? A one-line
    :class:`BenchError` if not, before any work."""
    _check_device(settings.device, backend)
    first = next(settings.workloads())
    for precision in settings.precisions:
        backend.check(
            settings.workload(first.model_name, first.batch_size, first.resolution, options, precision=precision)
        )


def runnable_precisions(
    settings: Settings, backend: Backend, options: tuple[tuple[str, str], ...] | None = None
) -> tuple[tuple[str, ...], dict[str, str]]:
    """The precisions of ``settings`` that ``backend`` runs here, and why it refuses each other one."""
    _check_device(settings.device, backend)
    first = next(settings.workloads())
    runs, refused = [], {}
    for precision in settings.precisions:
        workload = settings.workload(first.model_name, first.batch_size, first.resolution, options, precision=precision)
        try:
            backend.check(workload)
        except BenchError as exc:
            refused[precision] = str(exc)
        else:
            runs.append(precision)
    return tuple(runs), refused


def _check_device(device: str, backend: Backend) -> None:
    if device not in backend.devices:
        raise BenchError(f"unknown device {device!r} for backend {backend.name}; choose {', '.join(backend.devices)}")
