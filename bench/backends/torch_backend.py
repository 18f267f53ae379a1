"""PyTorch eager (CPU or CUDA), optionally ``torch.compile``d.

Its fp32 eager logits are what every runtime's parity is checked against."""

from __future__ import annotations

import contextlib
import copy
from pathlib import Path

import numpy as np
import torch
from torch import nn

from bench.core.errors import BenchError
from bench.core.interface.runtime import Backend, Prepared, Session, Workload

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


class TorchSession(Session):
    """Runs ``model(x)`` under inference mode and autocast; on CUDA every run ends in a synchronize."""

    def __init__(self, model: nn.Module, workload: Workload, example: np.ndarray) -> None:
        self.device = torch.device(workload.device)
        self.cuda = self.device.type == "cuda"
        self.memory_format = torch.channels_last if workload.channels_last else torch.contiguous_format
        self.autocast_dtype = None if workload.precision == "fp32" else DTYPES[workload.precision]
        self.model = model
        self.x = self._to_input(example)
        self._events = (
            (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) if self.cuda else None
        )
        self.detail = {
            "torch_threads": str(torch.get_num_threads()),
            "autocast": str(self.autocast_dtype).replace("torch.", "") if self.autocast_dtype else "off",
            "cudnn_benchmark": str(torch.backends.cudnn.benchmark) if self.cuda else "n/a",
        }

    def _to_input(self, x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(x).to(self.device).contiguous(memory_format=self.memory_format)

    def _context(self) -> contextlib.ExitStack:
        stack = contextlib.ExitStack()
        stack.enter_context(torch.inference_mode())
        if self.autocast_dtype is not None:
            stack.enter_context(torch.autocast(self.device.type, dtype=self.autocast_dtype))
        return stack

    def run(self) -> None:
        with self._context():
            if self._events is None:
                self.model(self.x)
                return
            start, end = self._events
            start.record()
            self.model(self.x)
            end.record()
            torch.cuda.synchronize()

    def timed_run_ms(self) -> float | None:
        if self._events is None:
            return None
        start, end = self._events
        return float(start.elapsed_time(end))

    def predict(self, x: np.ndarray) -> np.ndarray:
        with self._context():
            out = self.model(self._to_input(x))
        return out.float().cpu().numpy()


class TorchBackend(Backend):
    """Threads: ``torch.set_num_threads(--threads)`` (intra-op); fp16/bf16 through autocast."""

    name = "torch"
    label = "PyTorch"
    packages = ("torch",)
    devices = ("cpu", "cuda")
    module_options = True

    def check(self, workload: Workload) -> None:
        super().check(workload)
        if workload.device == "cuda" and not torch.cuda.is_available():
            raise BenchError("--device cuda: no CUDA GPU is available to this PyTorch build")
        if workload.device == "cpu" and workload.precision == "fp16":
            raise BenchError("--precision fp16 needs --device cuda for the torch backend (CPU autocast is bf16)")

    uses_cache = False
    """The module runs as it is: no export, so a cache folder it cannot write costs nothing but GMACs caching."""

    def prepare(self, model: nn.Module, workload: Workload, cache_dir: Path) -> Prepared:
        return Prepared(artifact=None, detail={"compile": str(workload.compile)})

    def load(self, model: nn.Module, prepared: Prepared, workload: Workload, example: np.ndarray) -> Session:
        if workload.threads:
            torch.set_num_threads(workload.threads)
        if workload.device == "cuda":
            # cuDNN picks its algorithm per input shape during the (per-shape) warmup.
            torch.backends.cudnn.benchmark = True
        if workload.device != "cpu" or workload.channels_last or workload.compile:
            model = copy.deepcopy(model)  # the CPU fp32 original stays the source of the eager logits (parity)
        model = model.to(workload.device)
        if workload.channels_last:
            model = model.to(memory_format=torch.channels_last)
        if workload.compile:
            model = torch.compile(model)
        return TorchSession(model, workload, example)
