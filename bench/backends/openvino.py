"""OpenVINO on the CPU: ``ov.convert_model`` from a ``torch.export`` program, cached as IR, compiled per row.

The float IR (``model.xml`` + ``model.bin``, fp32 weights) does not depend on the precision: fp32, fp16 and
bf16 are chosen when the model is compiled (``INFERENCE_PRECISION_HINT``), so one cached IR serves all
three, and its cache key and name carry no precision.

int8 is a different IR: OpenVINO's own post-training quantizer, NNCF, inserts FakeQuantize nodes
calibrated on the row's calibration set (:func:`int8_recipe`), so its cache key and name carry the
precision, the recipe and the calibration set. It is compiled with the f32 hint: the plugin runs int8
kernels where FakeQuantize allows and f32 elsewhere (not bf16, which this CPU would otherwise pick), and
``runtime_nodes_by_precision`` shows the i8/u8 nodes it ran. NNCF is imported only for int8; without it
int8 is refused in one line.

The CPU plugin quietly runs an f16 hint as bf16 on CPUs without fp16 arithmetic, so a precision
is accepted only where the CPU lists it in ``OPTIMIZATION_CAPABILITIES``, and the precision the compiled
model actually uses is read back and recorded.

Threads: ``INFERENCE_NUM_THREADS`` = ``--threads``, with ``PERFORMANCE_HINT=LATENCY`` and one stream
(one synchronous request at a time, as the engine times it).

``ov.convert_model`` reports usage to OpenVINO's telemetry service unless the user opted out; the suite
switches that off for its own conversions (see :func:`_openvino`).
"""

from __future__ import annotations

import collections
import functools
import importlib.util
import sys
import time
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
from bench.core.interface.artifact_backend import ArtifactBackend
from bench.core.interface.calibration import Calibration
from bench.core.interface.runtime import BackendOptions, Prepared, Session, Workload, native_command, option
from bench.core.util import export_program, quiet_export, quiet_native

FRONTENDS = ("export", "trace")
"""How the model reaches OpenVINO: ``export`` (a torch.export ExportedProgram; faster to convert and
the maintained path) or ``trace`` (``convert_model(module, example_input=...)``, TorchScript tracing)."""
HINTS = {"fp32": "f32", "fp16": "f16", "bf16": "bf16", "int8": "f32"}
"""``INFERENCE_PRECISION_HINT`` per precision; int8's IR is quantized already, the rest of it runs in f32."""
CAPABILITY = {"fp16": "FP16", "bf16": "BF16", "int8": "INT8"}
TYPE_NAMES = {"float32": "f32", "float16": "f16", "bfloat16": "bf16"}
"""How ``INFERENCE_PRECISION_HINT`` reads back (``<Type: 'float32'>``) -> the hint that asked for it."""
CACHE_FORMAT = 1
DEVICE = "CPU"
XML = "model.xml"
INT8_NODE_PRECISIONS = ("i8", "u8")
"""Runtime precisions of the plugin's int8 kernels (``runtimePrecision`` of a compiled node)."""
INT8_PRESET = "mixed"
"""NNCF's ``mixed`` preset (asymmetric activations), not its CNN default ``performance`` (symmetric): on these
hybrid ViTs symmetric activations cost parity (mobilevitv2_050 at 224 px: cosine 0.970, under the 0.98 gate;
0.9996 mixed) and were not faster. NNCF's ``transformer`` model type (SmoothQuant, Add/Divide/MVN kept in
f32) is not used: no faster here, and EfficientFormer-L1's cosine fell from 0.9999 to 0.993."""


def int8_recipe(calibration: Calibration) -> dict[str, str]:
    """How an int8 OpenVINO IR is made: part of its cache key and of the row's runtime detail.

    Activation ranges are the calibration set's global min/max (as ONNX Runtime's MinMax), not NNCF's default
    mean of per-batch ranges: on a handful of images that mean clips the extreme ones, and the test network of
    known int8 accuracy lost an image to it."""
    return {
        "tool": "nncf.quantize (NNCF post-training quantization, default model type)",
        "format": "OpenVINO IR with FakeQuantize",
        "preset": INT8_PRESET,
        "weights": "int8 per channel, symmetric",
        "activations": "8 bit per tensor, asymmetric, global min/max",
        "bias_correction": "fast (NNCF default)",
        "calibration": calibration.describe(),
    }


@functools.cache
def _openvino() -> ModuleType:
    """Import openvino with its telemetry replaced by OpenVINO's own no-op stub.

    ``import openvino`` itself, and every ``convert_model``, report usage (Google Analytics) unless a
    consent file says no; a benchmark must not phone home. While openvino is imported,
    ``openvino_telemetry`` is made unimportable, so its tools fall back to the stub they ship for
    when it is not installed; if openvino was imported earlier in this process, the modules that hold
    the telemetry module are pointed at the stub for the conversions to come.
    """
    blocked = "openvino_telemetry" not in sys.modules
    if blocked:
        sys.modules["openvino_telemetry"] = None  # type: ignore[assignment]  # "import" raises ImportError
    try:
        import openvino
        import openvino.tools.ovc.convert_impl
        import openvino.tools.ovc.telemetry_stub
        import openvino.tools.ovc.telemetry_utils
        import openvino.tools.ovc.utils
    finally:
        if blocked:
            del sys.modules["openvino_telemetry"]
    for module in (
        openvino.tools.ovc.convert_impl,
        openvino.tools.ovc.telemetry_utils,
        openvino.tools.ovc.utils,
    ):
        if hasattr(module, "tm"):
            module.tm = openvino.tools.ovc.telemetry_stub
    return openvino


@functools.cache
def _nncf() -> ModuleType:
    """Import NNCF (only for int8) with its telemetry off, as :func:`_openvino` does for openvino.

    NNCF reports each ``quantize`` to OpenVINO's telemetry service when ``openvino_telemetry`` imports;
    while NNCF is imported that module is made unimportable, so NNCF keeps its own no-op stub. If NNCF was
    imported earlier in this process, its telemetry objects are replaced by that stub.
    """
    _openvino()
    blocked = "openvino_telemetry" not in sys.modules
    if blocked:
        sys.modules["openvino_telemetry"] = None  # type: ignore[assignment]
    try:
        with quiet_export("nncf"):  # its import notes which backends it found
            import nncf
            import nncf.telemetry.decorator
            import nncf.telemetry.wrapper
    finally:
        if blocked:
            del sys.modules["openvino_telemetry"]
    stub = nncf.telemetry.wrapper.NNCFTelemetryStub()
    nncf.telemetry.wrapper.telemetry = stub
    nncf.telemetry.decorator.telemetry = stub
    return nncf


def nncf_version() -> str:
    try:
        return metadata.version("nncf")
    except metadata.PackageNotFoundError:
        return "not installed"


@functools.cache
def _core() -> Any:
    return _openvino().Core()


def openvino_version() -> str:
    try:
        return metadata.version("openvino")
    except metadata.PackageNotFoundError:
        return "not installed"


def cpu_capabilities() -> tuple[str, ...]:
    return tuple(str(c) for c in _core().get_property(DEVICE, "OPTIMIZATION_CAPABILITIES"))


def convert(
    model: nn.Module, example: torch.Tensor, directory: Path, frontend: str, calibration: list[np.ndarray] | None = None
) -> dict[str, Any]:
    """Convert ``model`` at the example's static shape and save the IR in ``directory``: fp32 weights, or
    quantized by NNCF on the ``calibration`` batches when they are given (int8)."""
    ov = _openvino()
    t0 = time.perf_counter()
    with quiet_export("openvino"), torch.no_grad():
        if frontend == "export":
            converted = ov.convert_model(export_program(model, example))
        else:
            converted = ov.convert_model(model, example_input=(example,))
    converted.reshape(list(example.shape))  # static: the converted input's dimensions may be left dynamic
    meta: dict[str, Any] = {}
    if calibration is not None:
        converted_s = time.perf_counter()
        converted = quantize_int8(converted, calibration)
        meta["quantize_s"] = round(time.perf_counter() - converted_s, 2)
        meta["fake_quantize_nodes"] = sum(op.get_type_name() == "FakeQuantize" for op in converted.get_ordered_ops())
    directory.mkdir(parents=True, exist_ok=True)
    ov.save_model(converted, str(directory / XML), compress_to_fp16=False)  # the default would halve the weights
    return {"convert_s": round(time.perf_counter() - t0, 2), "ir_ops": len(converted.get_ordered_ops()), **meta}


def quantize_int8(converted: Any, batches: list[np.ndarray]) -> Any:
    """NNCF post-training quantization of an OpenVINO model (:func:`int8_recipe`), its activation ranges
    calibrated on ``batches`` (the shared calibration set's); NNCF's log lines and progress bars are silenced."""
    nncf = _nncf()
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    ranges = RangeEstimatorParametersSet.MINMAX  # global, not NNCF's mean of per-batch ranges: see int8_recipe
    with quiet_export("nncf"), quiet_native():
        return nncf.quantize(
            converted,
            nncf.Dataset(batches),
            preset=nncf.QuantizationPreset(INT8_PRESET),
            advanced_parameters=nncf.AdvancedQuantizationParameters(activations_range_estimator_params=ranges),
            subset_size=len(batches),  # every calibration batch (one dataset item each), no more
        )


def io_problem(directory: Path, input_shape: tuple[int, ...]) -> str | None:
    """Why the IR in ``directory`` is not the one-input model of ``input_shape`` expected (None if it is)."""
    model = _core().read_model(str(directory / XML))
    shapes = [tuple(int(d) for d in i.get_partial_shape().to_shape()) for i in model.inputs]
    if shapes != [tuple(input_shape)] or len(model.outputs) != 1:
        return f"IR inputs {shapes} / {len(model.outputs)} outputs, expected [{tuple(input_shape)}] / 1"
    return None


def runtime_facts(compiled: Any) -> dict[str, str]:
    """What the CPU plugin made of the model: precision, threads, streams, and its nodes per precision."""
    facts = {}
    for key, prop in (
        ("execution_devices", "EXECUTION_DEVICES"),
        ("inference_precision", "INFERENCE_PRECISION_HINT"),
        ("inference_threads", "INFERENCE_NUM_THREADS"),
        ("streams", "NUM_STREAMS"),
        ("performance_hint", "PERFORMANCE_HINT"),
        ("cpu_pinning", "ENABLE_CPU_PINNING"),
    ):
        try:
            value = compiled.get_property(prop)
        except Exception:  # a property this version does not have
            continue
        if isinstance(value, (list, tuple)):
            value = "+".join(str(v) for v in value)
        facts[key] = str(value).replace("<Type: '", "").replace("'>", "")
    precisions: collections.Counter[str] = collections.Counter()
    for node in compiled.get_runtime_model().get_ordered_ops():
        info = node.get_rt_info()
        if "layerType" in info and info["layerType"].astype(str) in ("Const", "Parameter", "Result"):
            continue
        if "runtimePrecision" in info:
            precisions[info["runtimePrecision"].astype(str)] += 1
    facts["runtime_nodes_by_precision"] = ",".join(f"{p}:{n}" for p, n in precisions.most_common())
    return facts


class OpenVINOSession(Session):
    """One infer request with its input bound, for ``run``; a second one for ``predict``."""

    def __init__(self, compiled: Any, example: np.ndarray, detail: dict[str, str]) -> None:
        ov = _openvino()
        self._compiled = compiled
        self._request = compiled.create_infer_request()
        self._example = np.ascontiguousarray(example, dtype=np.float32)  # kept alive: the tensor shares it
        self._request.set_input_tensor(ov.Tensor(self._example, shared_memory=True))
        self._infer = self._request.infer
        self._check = compiled.create_infer_request()
        self.detail = detail

    def run(self) -> None:
        self._infer()

    def predict(self, x: np.ndarray) -> np.ndarray:
        out = self._check.infer({0: np.ascontiguousarray(x, dtype=np.float32)})
        return np.array(out[0], dtype=np.float32)  # a copy: the request reuses its output buffer

    def close(self) -> None:
        self._infer = None
        self._request = None
        self._check = None
        self._compiled = None


@dataclass(frozen=True)
class OpenVINOOptions(BackendOptions):
    frontend: str = option(
        "export", "how the model reaches OpenVINO: export (torch.export) or trace (TorchScript)", FRONTENDS
    )


class OpenVINOBackend(ArtifactBackend):
    name = "openvino"
    label = "OpenVINO"
    packages = ("openvino",)
    native_tools = ("benchmark_app",)

    @classmethod
    def native_commands(cls, file: str, threads: int, precision: str, warmup: int, iters: int) -> list[dict[str, str]]:
        """``benchmark_app`` with this backend's compile settings (one stream, one request, the threads and
        precision hint); its CSV report goes to ``<stem>.benchmark_app/``, which it does not create."""
        folder = f"{file.split('.', 1)[0]}.benchmark_app"
        argv = ["benchmark_app", "-m", f"{file}/{XML}", "-d", DEVICE, "-hint", "none", "-nstreams", "1", "-nireq", "1",
                "-api", "sync", "-nthreads", str(threads), "-infer_precision", HINTS[precision], "-niter", str(iters),
                "-report_type", "no_counters", "-report_folder", folder]  # fmt: skip
        note = "runs one untimed first inference (not settable) before its -niter timed ones"
        return [
            native_command(
                "benchmark_app", argv, f"{folder}/benchmark_report.csv", note, wrap=f"mkdir -p {folder} && {{}}"
            )
        ]

    extra = "openvino"
    requires = ("openvino",)
    Options = OpenVINOOptions

    precisions = ("fp32", "fp16", "bf16", "int8")

    def check(self, workload: Workload) -> None:
        super().check(workload)
        if workload.precision == "int8" and importlib.util.find_spec("nncf") is None:
            raise BenchError(
                "--precision int8 on openvino needs NNCF, which is not installed "
                "(pip install nncf, or pip install '.[openvino]')"
            )
        needed = CAPABILITY.get(workload.precision)
        if needed is not None:
            found = cpu_capabilities()
            if needed not in found:
                raise BenchError(
                    f"this CPU has no {needed} arithmetic for OpenVINO (capabilities: {', '.join(found)}); "
                    f"it would silently run another precision"
                )

    def cache_key(self, model: nn.Module, workload: Workload) -> dict[str, Any]:
        """Everything that changes the IR. A float precision is not in it (chosen at compile time, one IR for
        all three, keyed as before int8 existed); int8 adds the precision, the recipe, NNCF's version and the
        calibration set, since its IR is another file."""
        key: dict[str, Any] = {
            "format": CACHE_FORMAT,
            "model": workload.model_name,
            "input_shape": list(workload.input_shape),
            "frontend": workload.option("frontend", "export"),
            "openvino": openvino_version(),
            "torch": torch.__version__,
            "weights": artifacts.weights_digest(model),
        }
        if workload.precision == "int8":
            key["precision"] = "int8"
            key["quantization"] = int8_recipe(workload.calibration)
            key["nncf"] = nncf_version()
            key["calibration"] = workload.calibration.key()
        return key

    cache_folder = "openvino"
    suffix = ".openvino"

    def stem(self, workload: Workload, key: dict[str, Any]) -> str:
        """A float precision is not in the name: one IR serves them all (chosen at compile time); int8 is."""
        b, _, r, _ = workload.input_shape
        quantized = "-int8" if key.get("precision") == "int8" else ""
        return f"{workload.model_name}-b{b}-r{r}{quantized}-{key['frontend']}"

    def build(
        self, model: nn.Module, workload: Workload, key: dict[str, Any], staged: Path, cache_dir: Path
    ) -> dict[str, Any]:
        calibration = None
        if key.get("precision") == "int8":
            calibration = workload.calibration.batches(workload.input_shape, workload.model_name)
        return convert(model, torch.zeros(workload.input_shape), staged, key["frontend"], calibration)

    def check_artifact(self, candidate: Path, meta: dict, workload: Workload) -> str | None:
        return io_problem(candidate, workload.input_shape)

    def facts(self, entry: artifacts.Entry, key: dict[str, Any], workload: Workload) -> dict[str, str]:
        facts = {
            "openvino_cache": entry.status,
            "frontend": key["frontend"],
            "ir_ops": str(entry.meta.get("ir_ops", "")),
        }
        if key.get("precision") == "int8":
            facts["quantization"] = "; ".join(f"{k}: {v}" for k, v in key["quantization"].items())
            facts["nncf"] = key["nncf"]
            facts["fake_quantize_nodes"] = str(entry.meta.get("fake_quantize_nodes", ""))
        return facts

    def load(self, model: nn.Module, prepared: Prepared, workload: Workload, example: np.ndarray) -> Session:
        artifact = self.artifact(prepared)
        core = _core()
        config: dict[str, Any] = {
            "PERFORMANCE_HINT": "LATENCY",
            "NUM_STREAMS": 1,
            "INFERENCE_PRECISION_HINT": HINTS[workload.precision],
        }
        if workload.threads:
            config["INFERENCE_NUM_THREADS"] = workload.threads
        compiled = core.compile_model(core.read_model(str(artifact / XML)), DEVICE, config)
        facts = runtime_facts(compiled)
        got = facts.get("inference_precision", "")
        if got and TYPE_NAMES.get(got, got) != HINTS[workload.precision]:
            raise RuntimeError(f"OpenVINO compiled --precision {workload.precision} as {got} on this CPU")
        if workload.precision == "int8" and not any(
            f"{p}:" in facts.get("runtime_nodes_by_precision", "") for p in INT8_NODE_PRECISIONS
        ):
            raise RuntimeError("OpenVINO compiled the int8 IR without a single int8 kernel (no i8/u8 node ran)")
        detail = {
            **prepared.detail,
            "openvino": openvino_version(),
            "cpu": str(core.get_property(DEVICE, "FULL_DEVICE_NAME")),
            **facts,
        }
        return OpenVINOSession(compiled, example, detail)
