"""Runtime backends, one module each; :func:`get_backend` is the only lookup."""

from __future__ import annotations

import importlib

from bench.backends.base import PRECISIONS, Backend, Prepared, Session, Workload
from bench.errors import BenchError

__all__ = ["BACKENDS", "PRECISIONS", "Backend", "Prepared", "Session", "Workload", "get_backend"]

# name -> "module:class"; imported lazily so e.g. coremltools is only loaded when asked for.
BACKENDS = {
    "torch": "bench.backends.torch_backend:TorchBackend",
    "onnx": "bench.backends.onnx:OnnxBackend",
    "coreml": "bench.backends.coreml:CoreMLBackend",
}


def get_backend(name: str) -> Backend:
    try:
        module_name, class_name = BACKENDS[name].split(":")
    except KeyError:
        raise BenchError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}") from None
    return getattr(importlib.import_module(module_name), class_name)()
