"""Runtime backends, one module each, and the registry: the only place the suite lists them.

Adding a runtime is one new module here (a :class:`Backend` subclass) plus one line in
:data:`BACKENDS`; nothing outside this package names a backend. Modules are imported lazily, so a
runtime's heavy or optional packages load only when it is used.
"""

from __future__ import annotations

import importlib

from bench.backends.base import PRECISIONS, Backend, BackendOptions, Prepared, Session, Workload
from bench.core.errors import BenchError

__all__ = [
    "BACKENDS",
    "DEFAULT_BACKEND",
    "PRECISIONS",
    "REFERENCE_BACKENDS",
    "Backend",
    "BackendOptions",
    "Prepared",
    "Session",
    "Workload",
    "add_option_arguments",
    "available_backend",
    "backend_class",
    "get_backend",
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
REFERENCE_BACKENDS = ("torch", "onnx")
"""The eager framework and the portable runtime: what ``bench complexity`` times by default."""


def backend_class(name: str) -> type[Backend]:
    try:
        module_name, class_name = BACKENDS[name].split(":")
    except KeyError:
        raise BenchError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}") from None
    return getattr(importlib.import_module(module_name), class_name)


def get_backend(name: str) -> Backend:
    return backend_class(name)()


def available_backend(name: str) -> Backend:
    """The backend, or a one-line :class:`BenchError` saying what to install when its runtime is missing."""
    reason = backend_class(name).unavailable_reason()
    if reason is not None:
        raise BenchError(reason)
    return get_backend(name)


def add_option_arguments(parser) -> None:
    """Every backend's own options as flags (``--<backend>-<option>``), one argument group per backend."""
    for name in BACKENDS:
        cls = backend_class(name)
        cls.Options.add_arguments(parser, name, cls.label)
