"""ONNX Runtime: export once per (model, shape, exporter, versions, weights), cache, validate, run.

The export is cached under a key that includes everything that changes the file, and each cached
file is checked against its recorded SHA-256 before use, so a truncated or corrupted export is
rebuilt rather than timed.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from bench.backends.base import Backend, Prepared, Session, Workload
from bench.errors import BenchError

OPSET = 17  # TorchScript exporter: first opset with a fused LayerNormalization op
DYNAMO_OPSET = 18  # the torch.export-based exporter's lowest well-supported opset
EXPORTERS = ("dynamo", "torchscript")
DEFAULT_EXPORTER = "dynamo"  # the maintained path; the TorchScript exporter is deprecated since torch 2.9
GRAPH_OPT_LEVELS = ("disable", "basic", "extended", "all")


def _ort():
    import onnxruntime

    return onnxruntime


def weights_digest(model: nn.Module) -> str:
    """A short hash of the model's tensors, so exports of different weights never share a cache entry."""
    h = hashlib.sha1()
    for name, tensor in model.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:12]


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def export_onnx(model: nn.Module, example: torch.Tensor, path: Path, exporter: str) -> None:
    """Export with a static input shape (the fixed-resolution families need it) to ``path`` atomically."""
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    exporter_log = logging.getLogger("torch.onnx")
    level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)  # e.g. "torchvision is not installed" notices on every export
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            _export(model, example, tmp, exporter)
    finally:
        exporter_log.setLevel(level)
    os.replace(tmp, path)


def _export(model: nn.Module, example: torch.Tensor, tmp: Path, exporter: str) -> None:
    if exporter == "dynamo":
        program = torch.onnx.export(model, (example,), dynamo=True, opset_version=DYNAMO_OPSET, verbose=False)
        program.save(str(tmp), external_data=False)
        return
    torch.onnx.export(
        model,
        (example,),
        str(tmp),
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
    devices = ("cpu", "cuda")

    def check(self, workload: Workload) -> None:
        if workload.precision != "fp32" and workload.device == "cpu":
            raise BenchError("the onnx backend runs fp32 on CPU; fp16 needs --device cuda with onnxruntime-gpu")
        if workload.precision == "bf16":
            raise BenchError("the onnx backend does not support --precision bf16")
        if workload.device == "cuda" and "CUDAExecutionProvider" not in _ort().get_available_providers():
            raise BenchError("--device cuda for onnx needs onnxruntime-gpu (CUDAExecutionProvider is not available)")
        if workload.option("exporter", DEFAULT_EXPORTER) not in EXPORTERS:
            raise BenchError(
                f"unknown ONNX exporter {workload.option('exporter', '')!r}; choose {', '.join(EXPORTERS)}"
            )
        if workload.option("graph_opt", "all") not in GRAPH_OPT_LEVELS:
            raise BenchError(f"unknown graph optimization level; choose {', '.join(GRAPH_OPT_LEVELS)}")
        if workload.channels_last or workload.compile:
            raise BenchError("--channels-last and --compile apply to the torch backend only")

    def cache_path(self, model: nn.Module, workload: Workload, cache_dir: Path) -> Path:
        exporter = workload.option("exporter", DEFAULT_EXPORTER)
        key = json.dumps(
            {
                "model": workload.model_name,
                "shape": workload.input_shape,
                "precision": workload.precision,
                "exporter": exporter,
                "opset": DYNAMO_OPSET if exporter == "dynamo" else OPSET,
                "torch": torch.__version__,
                "onnx": _onnx_version(),
                "weights": weights_digest(model),
            },
            sort_keys=True,
        )
        digest = hashlib.sha1(key.encode()).hexdigest()[:16]
        b, _, r, _ = workload.input_shape
        return (
            Path(cache_dir) / "onnx" / f"{workload.model_name}-b{b}-r{r}-{workload.precision}-{exporter}-{digest}.onnx"
        )

    def prepare(self, model: nn.Module, workload: Workload, cache_dir: Path) -> Prepared:
        path = self.cache_path(model, workload, cache_dir)
        meta_path = path.with_suffix(".json")
        if path.exists() and meta_path.exists():
            with contextlib.suppress(OSError, ValueError, KeyError):
                if json.loads(meta_path.read_text())["sha256"] == file_sha256(path):
                    return Prepared(artifact=path, cache_hit=True, detail={"export_cache": "hit"})
        path.parent.mkdir(parents=True, exist_ok=True)
        example = torch.zeros(workload.input_shape)
        export_model = model
        if workload.precision == "fp16":
            export_model, example = _half(model), example.half()
        export_onnx(export_model, example, path, workload.option("exporter", DEFAULT_EXPORTER))
        validate_onnx(path)
        meta_path.write_text(json.dumps({"sha256": file_sha256(path), "workload": repr(workload)}))
        return Prepared(artifact=path, cache_hit=False, detail={"export_cache": "miss"})

    def load(self, model: nn.Module, prepared: Prepared, workload: Workload, example: np.ndarray) -> Session:
        ort = _ort()
        opts = ort.SessionOptions()
        if workload.threads:
            opts.intra_op_num_threads = workload.threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
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
            **prepared.detail,
        }
        return OnnxSession(session, example, detail)

    def versions(self) -> dict[str, str]:
        return {"onnxruntime": _ort().__version__, "onnx": _onnx_version()}


def _onnx_version() -> str:
    import onnx

    return onnx.__version__


def _half(model: nn.Module) -> nn.Module:
    import copy

    return copy.deepcopy(model).half()
