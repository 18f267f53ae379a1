"""Runtime backends, one module each, and the registry: the only place the suite lists them.

Adding a runtime is one new module here (a :class:`bench.core.interface.runtime.Backend` subclass) plus one
line in :data:`BACKENDS`; nothing outside this package names a backend. Modules are imported lazily,
so a runtime's heavy or optional packages load only when it is used. Importing this package installs
:data:`REGISTRY` as the one the core consults (:func:`bench.core.interface.runtime.registry`).
"""

from __future__ import annotations

import argparse

from bench.core.errors import BenchError
from bench.core.interface import runtime
from bench.core.interface.runtime import (
    ALL_PRECISIONS,
    PRECISIONS,
    Backend,
    BackendOptions,
    Prepared,
    Registry,
    Session,
    Workload,
)

__all__ = [
    "ALL_PRECISIONS",
    "BACKENDS",
    "DEFAULT_BACKEND",
    "EAGER_BACKEND",
    "PRECISIONS",
    "REGISTRY",
    "Backend",
    "BackendOptions",
    "Prepared",
    "Session",
    "Workload",
    "add_option_arguments",
    "available_backend",
    "backend_class",
    "backend_for_tool",
    "backend_list",
    "get_backend",
    "timing_backends",
]

# name -> "module:class", in the order reports show them.
BACKENDS = {
    "onnx": "bench.backends.onnx:OnnxBackend",
    "torch": "bench.backends.torch_backend:TorchBackend",
    "coreml": "bench.backends.coreml:CoreMLBackend",
    "executorch": "bench.backends.executorch:ExecuTorchBackend",
    "litert": "bench.backends.litert:LiteRTBackend",
    "openvino": "bench.backends.openvino:OpenVINOBackend",
}
DEFAULT_BACKEND = "onnx"
"""What ``bench run`` measures when no ``--backend`` is given: the portable CPU runtime."""
EAGER_BACKEND = "torch"
"""The framework's own eager runtime: ``bench accuracy``'s default baseline runtime, and with
:data:`DEFAULT_BACKEND` what ``bench complexity`` times by default."""

REGISTRY = Registry(BACKENDS)
runtime.install(REGISTRY)

backend_class = REGISTRY.backend_class
get_backend = REGISTRY.get
available_backend = REGISTRY.available
backend_for_tool = REGISTRY.for_tool


def add_option_arguments(parser: argparse.ArgumentParser) -> None:
    """Every backend's own options as flags (``--<backend>-<option>``), one argument group per backend."""
    for name in BACKENDS:
        cls = backend_class(name)
        cls.Options.add_arguments(parser, name, cls.label)


def backend_list(text: str, flag: str = "--backend", allow_all: bool = False) -> list[str]:
    """``"onnx,torch"`` -> the names in order; an unknown, empty or repeated entry is a one-line error.

    With ``allow_all``, ``all`` stands alone for every runtime (the caller narrows it, see
    :func:`timing_backends`).
    """
    names = [t.strip() for t in str(text).split(",")]
    choices = ", ".join([*BACKENDS, "all"] if allow_all else BACKENDS)
    if allow_all and "all" in names:
        if len(names) != 1:
            raise BenchError(f"{flag}: 'all' cannot be combined with other runtimes ({text})")
        return list(BACKENDS)
    unknown = [repr(n) for n in names if n not in BACKENDS]
    if unknown:
        raise BenchError(f"{flag}: unknown runtime {', '.join(unknown)}; choose from {choices}")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise BenchError(f"{flag} lists {', '.join(repeated)} more than once")
    return names


def timing_backends(device: str) -> list[str]:
    """Every runtime that is installed, runs on ``device`` and can time here (what ``--backend all`` means)."""
    found = []
    for name in BACKENDS:
        cls = backend_class(name)
        if cls.unavailable_reason() is None and device in cls.devices and cls().cannot_time_reason() is None:
            found.append(name)
    return found
