"""ExecuTorch with the XNNPACK delegate: the runtime PyTorch ships models to phones with.

``torch.export`` -> ``to_edge_transform_and_lower`` with the XNNPACK partitioner -> ``.pte`` (cached,
checksummed) -> ``executorch.runtime``. The lowering step says how much of the graph XNNPACK took:
delegated and non-delegated node counts, the number of XNNPACK subgraphs and the operators left to
ExecuTorch's portable kernels are recorded with every row.

Threads: ExecuTorch's process-wide threadpool, which the XNNPACK delegate runs on, is resized to
``--threads`` (``portable_lib._unsafe_reset_threadpool``; the runtime's own default is the core count).
fp16: the model and input are converted to half before export, so XNNPACK computes in fp16 (on a CPU
without native fp16 arithmetic, e.g. x86 without AVX512-FP16, that is emulated and slower than fp32).
int8: ExecuTorch's own XNNPACK quantizer through PT2E (:data:`INT8_RECIPE`): the exported graph gets
observers, sees the shared calibration set (:mod:`bench.core.interface.calibration`), and its quantize/dequantize
pairs are re-exported and lowered, so XNNPACK runs the quantized operators on its int8 kernels. The
recipe and calibration set enter the int8 program's cache key; fp32/fp16 keys are as they were.
"""

from __future__ import annotations

import copy
import functools
import re
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
from bench.core.interface.runtime import BackendOptions, Prepared, Session, Workload, native_command, option
from bench.core.util import export_program, quiet, quiet_export, quiet_native

DELEGATES = ("xnnpack", "none")
PRECISIONS = ("fp32", "fp16", "int8")
CACHE_FORMAT = 1
"""Bump when anything about how programs are produced changes, so old cache entries are not reused."""
INT8_RECIPE = {
    "tool": "executorch XNNPACKQuantizer (PT2E: torchao prepare_pt2e/convert_pt2e)",
    "format": "quantize/dequantize pairs lowered to XNNPACK's int8 kernels",
    "weights": "int8 symmetric per channel",
    "activations": "int8 per tensor, histogram observer",
}
"""How an int8 program is made (the calibration set besides): part of its cache key and of the row's detail."""
# Loggers that talk while executorch (and the torchao it imports) load and lower: "Failed to load
# .../torchao/_C_mxfp8...so" and torch's pytree deprecation notice, once per process.
_LOGGERS = ("torchao", "torch.utils._pytree", "executorch", "torch._export", "torch.export")


@functools.cache
def _runtime() -> tuple[Any, ModuleType, int]:
    """``executorch.runtime.Runtime``, the pybindings module, and the threadpool size the runtime chose."""
    with quiet(*_LOGGERS), quiet_native():
        from executorch.extension.pybindings import portable_lib
        from executorch.runtime import Runtime

        runtime = Runtime.get()
        default_threads = int(portable_lib._threadpool_get_thread_count())
    return runtime, portable_lib, default_threads


def executorch_version() -> str:
    try:
        return metadata.version("executorch")
    except metadata.PackageNotFoundError:
        return "not installed"


def set_threads(threads: int | None) -> int:
    """Resize ExecuTorch's threadpool to ``threads`` (None or 0: the runtime's default); returns the size.

    The pool is process-wide and must not be resized while a method runs; the engine only loads
    sessions between inferences.
    """
    _, lib, default = _runtime()
    wanted = threads or default
    if int(lib._threadpool_get_thread_count()) != wanted:
        with quiet_native():  # "[threadpool.cpp:66] Resetting threadpool to N threads."
            lib._unsafe_reset_threadpool(wanted)
    return int(lib._threadpool_get_thread_count())


def quantize_int8(model: nn.Module, example: torch.Tensor, calibration: list[np.ndarray]) -> nn.Module:
    """``model`` with int8 quantize/dequantize ops per :data:`INT8_RECIPE`, calibrated on ``calibration``:
    export, ``prepare_pt2e`` with ExecuTorch's XNNPACK quantizer, run the calibration batches, ``convert_pt2e``."""
    with quiet_export(*_LOGGERS), quiet_native(), torch.no_grad():
        from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
            XNNPACKQuantizer,
            get_symmetric_quantization_config,
        )
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

        quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
        observed = prepare_pt2e(export_program(model, example).module(), quantizer)
        for batch in calibration:
            observed(torch.from_numpy(batch))
        return convert_pt2e(observed)


def lower(model: nn.Module, example: torch.Tensor, path: Path, delegate: str) -> dict[str, Any]:
    """Export, lower (XNNPACK or none) and write the ``.pte`` to ``path``; returns the delegation facts."""
    with quiet_export(*_LOGGERS), quiet_native(), torch.no_grad():
        from executorch.devtools.backend_debug import get_delegation_info
        from executorch.exir import to_edge_transform_and_lower

        partitioners = []
        if delegate == "xnnpack":
            from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner

            partitioners.append(XnnpackPartitioner())
        t0 = time.perf_counter()
        program = export_program(model, example)
        t1 = time.perf_counter()
        edge = to_edge_transform_and_lower(program, partitioner=partitioners)
        t2 = time.perf_counter()
        info = get_delegation_info(edge.exported_program().graph_module)
        with open(path, "wb") as f:
            edge.to_executorch().write_to_file(f)
        t3 = time.perf_counter()
    left = sorted(
        (
            (re.sub(r"_default$", "", re.sub(r"^aten_", "", op)), b.non_delegated)
            for op, b in info.delegation_by_operator.items()
            if b.non_delegated and op != "getitem"
        ),
        key=lambda item: (-item[1], item[0]),
    )
    quant = [b for op, b in info.delegation_by_operator.items() if "quantize_per_" in op]
    return {
        "delegated_nodes": info.num_delegated_nodes,
        "non_delegated_nodes": sum(n for _, n in left),
        "delegate_subgraphs": info.num_delegated_subgraphs,
        "non_delegated_ops": ",".join(f"{op}:{n}" for op, n in left),
        "quant_ops_delegated": sum(b.delegated for b in quant),
        "quant_ops_left": sum(b.non_delegated for b in quant),
        "export_s": round(t1 - t0, 2),
        "lower_s": round(t2 - t1, 2),
        "emit_s": round(t3 - t2, 2),
    }


def load_program(path: Path) -> Any:
    """The program at ``path``, verified for internal consistency (raises if it is not a valid ``.pte``)."""
    runtime, _, _ = _runtime()
    with quiet_native():
        return runtime.load_program(str(path))


class ExecuTorchSession(Session):
    """A loaded ``forward`` method with its input tensor bound; ``run`` is one ``execute``."""

    def __init__(self, method: Any, program: Any, example: torch.Tensor, detail: dict[str, str]) -> None:
        self._program = program  # keeps the program (and so the method's memory) alive
        self._execute = method.execute
        self._inputs = [example]
        self._dtype = example.dtype
        self.detail = detail

    def run(self) -> None:
        self._execute(self._inputs)

    def predict(self, x: np.ndarray) -> np.ndarray:
        out = self._execute([torch.from_numpy(np.ascontiguousarray(x)).to(self._dtype)])[0]
        # outputs may live in the method's planned memory: copy before the next execute overwrites them
        return out.detach().float().numpy().copy()

    def close(self) -> None:
        self._execute = None
        self._inputs = []
        self._program = None


@dataclass(frozen=True)
class ExecuTorchOptions(BackendOptions):
    delegate: str = option(
        "xnnpack", "ExecuTorch delegate: xnnpack (XNNPACK partitioner) or none (portable kernels only)", DELEGATES
    )


class ExecuTorchBackend(ArtifactBackend):
    name = "executorch"
    label = "ExecuTorch (XNNPACK)"
    packages = ("executorch",)
    native_tools = ("executorch-benchmark-app", "executor_runner")

    @classmethod
    def native_commands(cls, file: str, threads: int, precision: str, warmup: int, iters: int) -> list[dict[str, str]]:
        """``executor_runner`` once per run (its log line is that run's time), the first ``warmup`` runs dropped."""
        log = f"{file.split('.', 1)[0]}.executor_runner.log"
        argv = ["executor_runner", f"--model_path={file}", "--num_executions=1"]
        wrap = (
            f"for i in $(seq {warmup + iters}); do {{}} 2>&1 | grep 'Model executed successfully'; done"
            f" | tail -n {iters} > {log}"
        )
        return [native_command("executor_runner", argv, log, "has no warmup or thread flags", wrap=wrap)]

    extra = "executorch"
    requires = ("executorch",)
    precisions = PRECISIONS
    Options = ExecuTorchOptions

    def check(self, workload: Workload) -> None:
        super().check(workload)
        if workload.precision == "int8" and workload.option("delegate", "xnnpack") != "xnnpack":
            raise BenchError("the executorch backend runs int8 with --executorch-delegate xnnpack only")

    def cache_key(self, model: nn.Module, workload: Workload) -> dict[str, Any]:
        key = {
            "format": CACHE_FORMAT,
            "model": workload.model_name,
            "input_shape": list(workload.input_shape),
            "precision": workload.precision,
            "delegate": workload.option("delegate", "xnnpack"),
            "executorch": executorch_version(),
            "torch": torch.__version__,
            "weights": artifacts.weights_digest(model),
        }
        if workload.precision == "int8":  # only int8 keys grow: fp32/fp16 programs already cached stay valid
            key["quantization"] = workload.calibration.recipe_key(INT8_RECIPE)
        return key

    cache_folder = "executorch"
    suffix = ".pte"
    artifact_noun = "lowered program"

    def stem(self, workload: Workload, key: dict[str, Any]) -> str:
        return f"{super().stem(workload, key)}-{key['delegate']}"

    def build(
        self, model: nn.Module, workload: Workload, key: dict[str, Any], staged: Path, cache_dir: Path
    ) -> dict[str, Any]:
        example = torch.zeros(workload.input_shape)
        if workload.precision == "fp16":
            model, example = copy.deepcopy(model).half(), example.half()
        elif workload.precision == "int8":
            model = quantize_int8(
                model, example, workload.calibration.batches(workload.input_shape, workload.model_name)
            )
        return lower(model, example, staged, key["delegate"])

    def check_artifact(self, candidate: Path, meta: dict, workload: Workload) -> str | None:
        load_program(candidate)  # raises on a damaged program: the cache rebuilds it
        return None

    def facts(self, entry: artifacts.Entry, key: dict[str, Any], workload: Workload) -> dict[str, str]:
        meta = entry.meta
        detail = {
            "executorch_cache": entry.status,
            "delegate": key["delegate"],
            "delegated_nodes": str(meta.get("delegated_nodes", "")),
            "non_delegated_nodes": str(meta.get("non_delegated_nodes", "")),
            "delegate_subgraphs": str(meta.get("delegate_subgraphs", "")),
            "non_delegated_ops": str(meta.get("non_delegated_ops", ""))[:300],
            "pte_mb": f"{entry.path.stat().st_size / 2**20:.1f}",
        }
        if not entry.hit:
            detail["lower_s"] = str(meta.get("lower_s", ""))
        if workload.precision == "int8":
            detail["quantization"] = workload.calibration.recipe_detail(INT8_RECIPE)
            detail["quant_ops_delegated"] = str(meta.get("quant_ops_delegated", ""))
            detail["quant_ops_left"] = str(meta.get("quant_ops_left", ""))
        return detail

    def load(self, model: nn.Module, prepared: Prepared, workload: Workload, example: np.ndarray) -> Session:
        artifact = self.artifact(prepared)
        threads = set_threads(workload.threads)
        program = load_program(artifact)
        with quiet_native():
            method = program.load_method("forward")
        if method is None:
            raise RuntimeError(f"{artifact.name} has no forward method")
        dtype = torch.float16 if workload.precision == "fp16" else torch.float32
        x = torch.from_numpy(np.ascontiguousarray(example)).to(dtype)
        runtime, _, default = _runtime()
        detail = {
            **prepared.detail,
            "executorch": executorch_version(),
            "threadpool_threads": str(threads),
            "threadpool_default": str(default),
            "registered_backends": "+".join(runtime.backend_registry.registered_backend_names),
        }
        return ExecuTorchSession(method, program, x, detail)
