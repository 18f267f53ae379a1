"""ONNX Runtime: export once per (model, shape, exporter, versions, weights), cache, validate, run.

Threads: ``intra_op_num_threads`` = ``--threads``, one inter-op thread, sequential execution.

Telemetry: ONNX Runtime (1.2x and later on Linux) records an event per session in a store under the
user's home (``~/.cache/Microsoft/DeveloperTools/.onnxruntime``) unless ``ORT_DISABLE_TELEMETRY`` is
set; the suite sets it before ONNX Runtime is first imported (a user's own setting is kept), as it
silences OpenVINO's.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from bench.core.errors import BenchError
from bench.core.interface import artifacts
from bench.core.interface.calibration import Calibration
from bench.core.interface.runtime import Backend, BackendOptions, Prepared, Session, Workload, native_command, option
from bench.core.util import quiet_export

OPSET = 17  # TorchScript exporter: first opset with a fused LayerNormalization op
DYNAMO_OPSET = 18  # the torch.export-based exporter's lowest well-supported opset
EXPORTERS = ("dynamo", "torchscript")
GRAPH_OPT_LEVELS = ("disable", "basic", "extended", "all")


@dataclass(frozen=True)
class OnnxOptions(BackendOptions):
    exporter: str = option(
        "dynamo", "ONNX exporter: dynamo (torch.export based) or torchscript (legacy, faster)", EXPORTERS
    )
    graph_opt: str = option("all", "ONNX Runtime graph optimization level", GRAPH_OPT_LEVELS)


TELEMETRY_SWITCH = "ORT_DISABLE_TELEMETRY"


def silence_telemetry() -> None:
    """Turn ONNX Runtime's telemetry off for this process and the workers it starts (inherited)."""
    os.environ.setdefault(TELEMETRY_SWITCH, "1")


silence_telemetry()  # on import of this module, before anything can import onnxruntime


def _ort():
    silence_telemetry()
    import onnxruntime

    return onnxruntime


def export_onnx(model: nn.Module, example: torch.Tensor, path: Path, exporter: str) -> None:
    """Export with a static input shape (the fixed-resolution families need it) to ``path``."""
    with quiet_export("torch.onnx"):  # also "torchvision is not installed" notices on every export
        if exporter == "dynamo":
            program = torch.onnx.export(model, (example,), dynamo=True, opset_version=DYNAMO_OPSET, verbose=False)
            program.save(str(path), external_data=False)
            return
        torch.onnx.export(
            model,
            (example,),
            str(path),
            dynamo=False,
            opset_version=OPSET,
            input_names=["input"],
            output_names=["logits"],
            do_constant_folding=True,
        )


def validate_onnx(path: Path) -> None:
    import onnx

    onnx.checker.check_model(str(path), full_check=True)


class OnnxSession(Session):
    def __init__(self, session, example: np.ndarray, detail: dict[str, str]) -> None:
        self.session = session
        self.input_name = session.get_inputs()[0].name
        self.feed = {self.input_name: example}
        self.output_names = [session.get_outputs()[0].name]
        self._run = session.run
        self.detail = detail

    def run(self) -> None:
        self._run(self.output_names, self.feed)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self._run(self.output_names, {self.input_name: x})[0], dtype=np.float32)

    def close(self) -> None:
        # Release the session (and its spinning thread pool) before the next workload is timed.
        self._run = None
        self.session = None


class OnnxBackend(Backend):
    name = "onnx"
    label = "ONNX Runtime"
    packages = ("onnxruntime", "onnxruntime-gpu", "onnx", "onnxscript")
    native_tools = ("onnxruntime_perf_test",)

    @classmethod
    def native_commands(cls, file: str, threads: int, precision: str, warmup: int, iters: int) -> list[dict[str, str]]:
        """``onnxruntime_perf_test`` on generated inputs; its result file keeps every run's time."""
        out = f"{file.split('.', 1)[0]}.onnxruntime_perf_test.txt"
        argv = ["onnxruntime_perf_test", "-I", "-m", "times", "-r", str(iters), "-x", str(threads), "-y", "1",
                "-e", "cpu", "-s", file, out]  # fmt: skip
        return [native_command("onnxruntime_perf_test", argv, out, "runs one untimed warmup inference (not settable)")]

    requires = ("onnxruntime", "onnx")
    devices = ("cpu", "cuda")
    Options = OnnxOptions

    precisions = ("fp32", "fp16", "int8")

    def check(self, workload: Workload) -> None:
        super().check(workload)
        if workload.precision == "fp16" and workload.device == "cpu":
            raise BenchError("the onnx backend runs fp32 or int8 on CPU; fp16 needs --device cuda with onnxruntime-gpu")
        if workload.precision == "int8" and workload.device != "cpu":
            raise BenchError("the onnx backend runs int8 on CPU only")
        if workload.precision == "bf16":
            raise BenchError("the onnx backend does not support --precision bf16")
        if workload.device == "cuda" and "CUDAExecutionProvider" not in _ort().get_available_providers():
            raise BenchError("--device cuda for onnx needs onnxruntime-gpu (CUDAExecutionProvider is not available)")

    def cache_path(self, model: nn.Module, workload: Workload, cache_dir: Path) -> tuple[Path, dict]:
        exporter = workload.option("exporter", "dynamo")
        key = {
            "model": workload.model_name,
            "shape": workload.input_shape,
            "precision": workload.precision,
            "exporter": exporter,
            "opset": DYNAMO_OPSET if exporter == "dynamo" else OPSET,
            "torch": torch.__version__,
            "onnx": _onnx_version(),
            "weights": artifacts.weights_digest(model),
        }
        if workload.precision == "int8":
            key["calibration"] = int8_recipe(workload.calibration)
            if workload.calibration.folder is not None:  # the synthetic set is named in full by its recipe
                key["calibration_set"] = workload.calibration.key()
        b, _, r, _ = workload.input_shape
        stem = f"{workload.model_name}-b{b}-r{r}-{workload.precision}-{exporter}"
        return artifacts.entry_path(cache_dir, "onnx", stem, ".onnx", key), key

    def prepare(self, model: nn.Module, workload: Workload, cache_dir: Path) -> Prepared:
        path, key = self.cache_path(model, workload, cache_dir)
        example = torch.zeros(workload.input_shape)
        export_model = model
        if workload.precision == "fp16":
            export_model, example = _half(model), example.half()

        def build(staged: Path) -> None:
            if workload.precision != "int8":
                export_onnx(export_model, example, staged, workload.option("exporter", "dynamo"))
                validate_onnx(staged)
                return
            fp32 = staged.with_name(staged.stem + "-fp32.onnx")
            try:
                export_onnx(export_model, example, fp32, workload.option("exporter", "dynamo"))
                quantize_int8(fp32, staged, workload.calibration.batches(workload.input_shape, workload.model_name))
            finally:
                fp32.unlink(missing_ok=True)
            validate_onnx(staged)

        entry = artifacts.cached(path, key, build)
        detail = {"export_cache": entry.status}
        if workload.precision == "int8":
            detail["quantization"] = "; ".join(f"{k}: {v}" for k, v in int8_recipe(workload.calibration).items())
        return Prepared(artifact=entry.path, cache_hit=entry.hit, detail=detail)

    def load(self, model: nn.Module, prepared: Prepared, workload: Workload, example: np.ndarray) -> Session:
        ort = _ort()
        opts = ort.SessionOptions()
        if workload.threads:
            opts.intra_op_num_threads = workload.threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        # Threads still spin inside an inference (latency), but stop when Run returns: an idle session (a
        # runtime waiting for its turn in a sitting) must not take CPU from the one being timed.
        opts.add_session_config_entry("session.force_spinning_stop", "1")
        level = workload.option("graph_opt", "all")
        opts.graph_optimization_level = {
            "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }[level]
        providers = (
            ["CUDAExecutionProvider", "CPUExecutionProvider"] if workload.device == "cuda" else ["CPUExecutionProvider"]
        )
        session = ort.InferenceSession(str(prepared.artifact), sess_options=opts, providers=providers)
        if workload.precision == "fp16":
            example = example.astype(np.float16)
        detail = {
            "providers": "+".join(session.get_providers()),
            "graph_opt": level,
            "intra_op_threads": str(workload.threads or "default"),
            "spinning": "stops after each run",
            **prepared.detail,
        }
        return OnnxSession(session, example, detail)


def int8_recipe(calibration: Calibration) -> dict[str, str]:
    """How an int8 ONNX artifact is made: part of its cache key and of the row's runtime detail."""
    return {
        "tool": "onnxruntime.quantization.quantize_static",
        "format": "QDQ",
        "weights": "int8 per channel",
        "activations": "uint8 per tensor, MinMax",
        "calibration": calibration.describe(),
    }


def quantize_int8(fp32: Path, out: Path, calibration: list[np.ndarray]) -> None:
    """Static post-training quantization with ONNX Runtime's own tool (:func:`int8_recipe`): QDQ nodes
    around every quantizable operator, activations calibrated on ``calibration`` (the shared set's batches)."""
    import logging

    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    name = _ort().InferenceSession(str(fp32), providers=["CPUExecutionProvider"]).get_inputs()[0].name
    batches = [{name: batch} for batch in calibration]

    class Images(CalibrationDataReader):
        def __init__(self) -> None:
            self.left = iter(batches)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.left, None)

    quiet_root = logging.getLogger()
    level = quiet_root.level
    quiet_root.setLevel(logging.ERROR)  # "consider pre-processing" and per-weight axis notices on every model
    try:
        quantize_static(
            str(fp32),
            str(out),
            Images(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
        )
    finally:
        quiet_root.setLevel(level)


def _onnx_version() -> str:
    import onnx

    return onnx.__version__


def _half(model: nn.Module) -> nn.Module:
    import copy

    return copy.deepcopy(model).half()
