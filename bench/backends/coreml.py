"""Core ML: convert a PyTorch model to an ML program with coremltools, cache the ``.mlpackage``, predict.

Conversion works on every platform, so users can check convertibility anywhere; prediction needs
the Core ML framework, i.e. macOS. Each cached package is checked against the SHA-256 of its files
recorded when it was written, then re-read by coremltools, so a damaged package is rebuilt instead
of being timed.

int8 is W8A8 made by coremltools' own PyTorch-side quantizer, :class:`LinearQuantizer`
(``coremltools.optimize.torch``, :data:`INT8_RECIPE`), used for calibration only: observers see the
shared calibration set (:mod:`bench.core.interface.calibration`), no training step, then ``finalize`` gives a
module of quantize/dequantize pairs that ``ct.convert`` turns into Core ML's int8 ops. Its coremltools
sibling ``linear_quantize_activations`` would need Core ML predictions (macOS), and the PT2E
``CoreMLQuantizer`` imports ``torch.ao.quantization.quantizer``, which torch 2.13 no longer has. The
activation ``quantize`` op is new in iOS 17, so int8 packages target iOS 17 / macOS 14. Only int8
cache keys carry the recipe and calibration set; fp32/fp16 keys are as they were.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import io
import logging
import platform
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
from torch import nn

from bench.core.errors import BenchError
from bench.core.interface import artifacts
from bench.core.interface.runtime import Backend, BackendOptions, Prepared, Session, Workload, option
from bench.core.util import export_program, one_line

INPUT_NAME = "input"
OUTPUT_NAME = "logits"
COMPUTE_UNITS = ("ALL", "CPU_ONLY", "CPU_AND_GPU", "CPU_AND_NE")
COMPUTE_PRECISION = {"fp32": "FLOAT32", "fp16": "FLOAT16", "int8": "FLOAT32"}
"""What the float ops compute in; int8's unquantized ops stay fp32, as on the other runtimes' int8."""
# iOS 16 / macOS 13: macOS 13 is the first that accepts CPU_AND_NE, and SwiftFormer's published
# iPhone 14 latencies were taken on iOS 16. Part of the cache key.
DEPLOYMENT_TARGET = "iOS16"
INT8_TARGET = "iOS17"
"""int8's target: the activation ``quantize`` op exists from the iOS 17 / macOS 14 opset on."""
INT8_RECIPE = {
    "tool": "coremltools LinearQuantizer (coremltools.optimize.torch, FX), calibration only, no training",
    "format": "W8A8: Core ML quantize/dequantize ops on activations, int8 constexpr_affine_dequantize weights",
    "weights": "int8 symmetric per channel, min/max",
    "activations": "uint8 per tensor, min/max (symmetric scheme: zero point 128 where signed)",
}
"""How an int8 package is made (the calibration set besides): part of its cache key and of the row's detail."""
QUANTIZED_OPS = ("quantize", "dequantize", "constexpr_affine_dequantize")
"""MIL ops that show a package really is quantized (counted into the row's detail)."""
FRONTENDS = ("auto", "trace", "export")
"""How the model reaches coremltools: ``trace`` (TorchScript, coremltools' documented stable path),
``export`` (torch.export, beta in coremltools), or ``auto``: trace, and export when tracing fails to
convert (coremltools 9.0 with NumPy >= 2.4 cannot convert the shape arithmetic MobileViTv2 traces to)."""
CACHE_FORMAT = 1
"""Bump when anything about how packages are produced changes, so old cache entries are not reused."""

# Where coremltools 9 creates its conversion progress bars (module, attribute holding tqdm).
_TQDM_SITES = (
    ("coremltools.converters.mil.frontend.torch.ops", "_tqdm"),
    ("coremltools.converters.mil.mil.passes.pass_pipeline", "tqdm"),
)
# Logged at import on every non-macOS platform; expected there and of no use to a reader.
_NOISE = ("Failed to load _ML",)
# torch.jit's own deprecation notices, and cleanup chatter from coremltools' temporary files.
_EXPECTED_WARNINGS = (DeprecationWarning, PendingDeprecationWarning, FutureWarning, ResourceWarning)
_notes: list[str] = []
"""coremltools messages worth keeping (e.g. its untested-torch-version warning), for ``detail``."""


class _Collect(logging.Handler):
    def __init__(self, sink: list[str]) -> None:
        super().__init__(logging.WARNING)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage().strip()
        if message and not message.startswith(_NOISE) and message not in self.sink:
            self.sink.append(message)


@contextlib.contextmanager
def _quiet(sink: list[str]) -> Iterator[None]:
    """Silence coremltools' progress bars, log lines, prints and Python warnings; keep the messages.

    The engine draws its own progress bar on stderr, and one conversion would otherwise print a
    few hundred bar updates into it.
    """
    logger = logging.getLogger("coremltools")
    handler = _Collect(sink)
    saved_propagate = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    patched: list[tuple[ModuleType, str, Any]] = []
    try:
        for module_name, attr in _TQDM_SITES:
            module = sys.modules.get(module_name)
            original = getattr(module, attr, None) if module is not None else None
            if original is not None and not isinstance(original, functools.partial):
                setattr(module, attr, functools.partial(original, disable=True))
                patched.append((module, attr, original))
        with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("always")
            yield
        for w in caught:
            if issubclass(w.category, _EXPECTED_WARNINGS):
                continue
            lines = str(w.message).strip().splitlines() or [""]
            text = f"{w.category.__name__}: {lines[0]}"
            if text not in sink:
                sink.append(text)
    finally:
        for module, attr, original in patched:
            setattr(module, attr, original)
        logger.removeHandler(handler)
        logger.propagate = saved_propagate


@functools.cache
def _ct() -> ModuleType:
    """Import coremltools lazily (several seconds) and quietly, with its progress bars silenced."""
    with _quiet(_notes):
        import coremltools

        # imported now so that _quiet finds (and can silence) their progress bars during conversion
        import coremltools.converters.mil.frontend.torch.ops
        import coremltools.converters.mil.mil.passes.pass_pipeline
    return coremltools


def coremltools_version() -> str:
    try:
        return metadata.version("coremltools")
    except metadata.PackageNotFoundError:
        return "not installed"


def read_io(package: Path) -> dict[str, Any]:
    """Program type and input/output names, shapes and dtypes of a package, read without loading it."""
    ct = _ct()
    with _quiet([]):
        spec = ct.models.MLModel(str(package), skip_model_load=True).get_spec()

    def describe(features) -> list[dict[str, Any]]:
        from coremltools.proto import FeatureTypes_pb2

        out = []
        for f in features:
            array = f.type.multiArrayType
            dtype = FeatureTypes_pb2.ArrayFeatureType.ArrayDataType.Name(array.dataType)
            out.append({"name": f.name, "shape": [int(s) for s in array.shape], "dtype": dtype})
        return out

    return {
        "type": spec.WhichOneof("Type"),
        "inputs": describe(spec.description.input),
        "outputs": describe(spec.description.output),
    }


def io_problem(found: dict[str, Any], input_shape: tuple[int, ...], output_shape: tuple[int, ...]) -> str | None:
    """Why a package does not have the one fp32 input and one fp32 output the engine expects, or None."""
    expected = {
        "type": "mlProgram",
        "inputs": [{"name": INPUT_NAME, "shape": list(input_shape), "dtype": "FLOAT32"}],
        "outputs": [{"name": OUTPUT_NAME, "shape": list(output_shape), "dtype": "FLOAT32"}],
    }
    for part in ("type", "inputs", "outputs"):
        if found.get(part) != expected[part]:
            return f"{part} {found.get(part)} != expected {expected[part]}"
    return None


def deployment_target(precision: str) -> str:
    return INT8_TARGET if precision == "int8" else DEPLOYMENT_TARGET


def op_counts(package: Path) -> dict[str, int]:
    """How many of each MIL op the package's ML program holds (every function and block), most first."""
    ct = _ct()
    with _quiet([]):
        spec = ct.models.MLModel(str(package), skip_model_load=True).get_spec()
    counts: dict[str, int] = {}

    def walk(operations) -> None:
        for op in operations:
            counts[op.type] = counts.get(op.type, 0) + 1
            for block in op.blocks:
                walk(block.operations)

    for function in spec.mlProgram.functions.values():
        for block in function.block_specializations.values():
            walk(block.operations)
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


class _EvalOnly(nn.Module):
    """``model`` held in eval mode: LinearQuantizer (a training tool) calls ``train()`` before it traces,
    which would trace the training branches (distillation heads, dropout) instead of the deployed network."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model.eval()

    def train(self, mode: bool = True) -> _EvalOnly:
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def quantize_int8(model: nn.Module, example: torch.Tensor, calibration: list[np.ndarray]) -> nn.Module:
    """``model`` with int8 quantize/dequantize pairs per :data:`INT8_RECIPE`, calibrated on ``calibration``:
    ``prepare`` inserts observers, the batches run in eval mode (batch norm keeps its statistics), ``finalize``."""
    _ct()
    from coremltools.optimize.torch.quantization import LinearQuantizer, LinearQuantizerConfig

    config = LinearQuantizerConfig.from_dict(
        {
            "global_config": {
                "quantization_scheme": "symmetric",
                "weight_observer": "min_max",
                "activation_observer": "min_max",
            }
        }
    )
    quantizer = LinearQuantizer(_EvalOnly(copy.deepcopy(model)), config)
    observed = quantizer.prepare(example_inputs=(example,), inplace=True)
    observed.eval()
    with torch.no_grad():
        for batch in calibration:
            observed(torch.from_numpy(batch))
    return quantizer.finalize(inplace=True)


def _source(model: nn.Module, example: torch.Tensor, frontend: str) -> Any:
    """The program coremltools converts: a TorchScript trace or an ATen-dialect ExportedProgram."""
    with torch.no_grad():
        if frontend == "trace":
            # check_trace would run the model twice more only to compare graphs; parity is checked on macOS.
            return torch.jit.trace(model, example, check_trace=False)
        return export_program(model, example).run_decompositions({})


def convert(
    model: nn.Module, workload: Workload, package: Path, notes: list[str], frontend: str = "auto"
) -> tuple[tuple[int, ...], str]:
    """Write ``model`` at the workload's shape to ``package`` as an ML program.

    Returns the output shape and the frontend that succeeded; raises RuntimeError naming each
    frontend's failure when none did.
    """
    ct = _ct()
    example = torch.randn(workload.input_shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        output = model(example)
    if not isinstance(output, torch.Tensor):
        raise TypeError(f"{workload.model_name}: Core ML conversion expects one logits tensor as output")
    if workload.precision == "int8":
        batches = workload.calibration.batches(workload.input_shape, workload.model_name)
        try:
            with _quiet(notes):
                model = quantize_int8(model, example, batches)
        except Exception as exc:
            raise RuntimeError(f"Core ML int8 quantization failed ({one_line(exc, 200)})") from None
    failures = []
    for attempt in ("trace", "export") if frontend == "auto" else (frontend,):
        artifacts.remove(package)  # nothing half-written by a failed attempt may survive
        said: list[str] = []  # kept only from the attempt that succeeds: a failure is summed up in one line
        try:
            with _quiet(said):
                mlmodel = ct.convert(
                    _source(model, example, attempt),
                    inputs=[ct.TensorType(name=INPUT_NAME, shape=tuple(example.shape), dtype=np.float32)],
                    outputs=[ct.TensorType(name=OUTPUT_NAME, dtype=np.float32)],
                    convert_to="mlprogram",
                    compute_precision=getattr(ct.precision, COMPUTE_PRECISION[workload.precision]),
                    minimum_deployment_target=getattr(ct.target, deployment_target(workload.precision)),
                    skip_model_load=True,  # loading compiles for a device: done in ``load``, on macOS only
                )
                mlmodel.save(str(package))
        except Exception as exc:
            failures.append(f"{attempt}: {one_line(exc, 200)}")
            continue
        if failures:
            notes.append(f"converted with {attempt} after {'; '.join(failures)}")
        notes.extend(said)
        return tuple(output.shape), attempt
    raise RuntimeError(f"Core ML conversion failed ({' | '.join(failures)})")


class CoreMLSession(Session):
    """A loaded Core ML model with its input dict bound once, so ``run`` is a bare ``predict``."""

    def __init__(self, mlmodel: Any, example: np.ndarray, detail: dict[str, str]) -> None:
        self._predict = mlmodel.predict
        self._feed = {INPUT_NAME: np.ascontiguousarray(example, dtype=np.float32)}
        self.detail = detail

    def run(self) -> None:
        self._predict(self._feed)

    def predict(self, x: np.ndarray) -> np.ndarray:
        out = self._predict({INPUT_NAME: np.ascontiguousarray(x, dtype=np.float32)})
        return np.asarray(out[OUTPUT_NAME], dtype=np.float32)


@dataclass(frozen=True)
class CoreMLOptions(BackendOptions):
    units: str = option("ALL", "Core ML compute units, chosen when the package is loaded", COMPUTE_UNITS)
    frontend: str = option(
        "auto",
        "how the model reaches coremltools: trace, export (torch.export), or auto (trace, then export)",
        FRONTENDS,
    )


class CoreMLBackend(Backend):
    """Converts anywhere; predicts (and so times) only on macOS, where the Core ML framework is."""

    name = "coreml"
    label = "Core ML"
    packages = ("coremltools",)
    requires = ("coremltools",)
    precisions = tuple(COMPUTE_PRECISION)
    Options = CoreMLOptions

    def cannot_time_reason(self) -> str | None:
        return None if sys.platform == "darwin" else f"Core ML timing needs macOS (this is {sys.platform})"

    def cache_key(self, model: nn.Module, workload: Workload) -> dict[str, Any]:
        """Everything that changes the package's bytes.

        Compute units are not in it: they are chosen when the package is loaded, so one package
        serves ALL, CPU_ONLY, CPU_AND_GPU and CPU_AND_NE alike.
        """
        key: dict[str, Any] = {
            "format": CACHE_FORMAT,
            "model": workload.model_name,
            "input_shape": list(workload.input_shape),
            "precision": workload.precision,
            "frontend": workload.option("frontend", "auto"),
            "target": deployment_target(workload.precision),
            "coremltools": coremltools_version(),
            "torch": torch.__version__,
            "weights": artifacts.weights_digest(model),
        }
        if workload.precision == "int8":  # only int8 keys grow: fp32/fp16 packages already cached stay valid
            key["quantization"] = workload.calibration.recipe_key(INT8_RECIPE)
        return key

    def cache_path(self, key: dict[str, Any], workload: Workload, cache_dir: Path) -> Path:
        b, _, r, _ = workload.input_shape
        stem = f"{workload.model_name}-b{b}-r{r}-{workload.precision}"
        return artifacts.entry_path(cache_dir, "coreml", stem, ".mlpackage", key)

    def prepare(self, model: nn.Module, workload: Workload, cache_dir: Path) -> Prepared:
        self.check(workload)
        key = self.cache_key(model, workload)
        package = self.cache_path(key, workload, cache_dir)
        notes: list[str] = []

        def build(staged: Path) -> dict[str, Any]:
            output_shape, used = convert(model, workload, staged, notes, key["frontend"])
            ops = op_counts(staged)
            quantized = {op: ops[op] for op in QUANTIZED_OPS if op in ops}
            if workload.precision == "int8" and not quantized:
                raise RuntimeError("the int8 package holds no quantized op (no quantize, dequantize or int8 weight)")
            return {"output_shape": list(output_shape), "frontend": used, "quantized_ops": quantized}

        def check(path: Path, meta: dict) -> str | None:
            return io_problem(read_io(path), workload.input_shape, tuple(meta.get("output_shape", ())))

        t0 = time.perf_counter()
        entry = artifacts.cached(package, key, build, check)
        detail = {
            "compute_units": workload.option("units", "ALL"),
            "compute_precision": COMPUTE_PRECISION[workload.precision],
            "deployment_target": key["target"],
            "threads": "not settable in Core ML",
            "coreml_cache": entry.status,
            "frontend": str(entry.meta.get("frontend")),
        }
        if workload.precision == "int8":
            detail["quantization"] = workload.calibration.recipe_detail(INT8_RECIPE)
            detail["quantized_ops"] = ",".join(f"{op}:{n}" for op, n in entry.meta.get("quantized_ops", {}).items())
        if not entry.hit:
            detail["convert_s"] = f"{time.perf_counter() - t0:.1f}"
        if notes:
            detail["coreml_warnings"] = " | ".join(notes)[:300]
        if _notes:
            detail["coremltools_note"] = " | ".join(_notes)[:300]
        return Prepared(artifact=package, cache_hit=entry.hit, detail=detail)

    def load(self, model: nn.Module, prepared: Prepared, workload: Workload, example: np.ndarray) -> Session:
        if sys.platform != "darwin":
            raise BenchError(
                f"Core ML prediction needs macOS (the Core ML framework); this is {sys.platform}, "
                f"so {prepared.artifact} was converted and validated only"
            )
        if prepared.artifact is None:
            raise BenchError("the coreml backend needs a converted package; call prepare first")
        ct = _ct()
        units = workload.option("units", "ALL")
        with _quiet([]):
            mlmodel = ct.models.MLModel(str(prepared.artifact), compute_units=getattr(ct.ComputeUnit, units))
        error = getattr(mlmodel, "_framework_error", None)
        if error is not None:
            raise RuntimeError(f"Core ML could not load {prepared.artifact.name}: {error}")
        detail = {"compute_units": units, "macos": platform.mac_ver()[0]}
        return CoreMLSession(mlmodel, example, detail)
