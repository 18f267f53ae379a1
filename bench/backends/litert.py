"""LiteRT (TensorFlow Lite): litert-torch converts to ``.tflite``, ai-edge-litert runs it on XNNPACK.

The converter cannot live in the suite's environment: litert-torch needs ``ai-edge-litert[model-utils]``,
which pins ``xdsl==0.28.0``, which needs ``typing-extensions<4.13``, and the suite pins a newer one.
So conversion runs in a subprocess with its own Python environment, and only a ``torch.export``
program crosses over (``.pt2``, same torch version on both sides; no suite code is needed there).
That Python is, in order: ``$BENCH_LITERT_PYTHON``; this interpreter, if litert-torch is importable
here; else a virtual environment ``<cache dir>/litert-venv``, created on first use with pinned
:data:`CONVERTER_REQUIREMENTS` and this process's exact torch version (about a minute and 2 GB, once;
``python -m bench.backends.litert --setup`` does it ahead of time). The runtime, ai-edge-litert, installs
beside the suite's pins as it is.

Conversion is cached and checksummed like every artifact. XNNPACK's coverage is read from the
converted model once, per operator, and recorded with every row: the model's operator count, how many
XNNPACK claims, which stay on LiteRT's builtin kernels, and the number of XNNPACK partitions.

Threads: the CPU accelerator's ``num_threads`` = ``--threads``. fp16: the converter stores fp16 weights
and the XNNPACK flag FORCE_FP16 makes XNNPACK compute in fp16 (without it, x86 dequantizes the weights
and computes in fp32; Arm CPUs with fp16 arithmetic use fp16 for such models by default). On CPUs without
native fp16 arithmetic it is emulated and slower than fp32.
int8: litert-torch's own PT2E quantizer (:data:`INT8_RECIPE`), run in the converter's Python on the
exported program and calibrated on the shared set, which the suite writes next to the ``.pt2`` (the
converter side has no suite code); the converter then folds the quantize/dequantize pairs into int8
TFLite operators. Its input is int8 too (the image's quantization is folded into the signature), so the
session quantizes the image once, outside the timing, as an app would. Only int8 cache keys carry the
recipe and calibration set; fp32/fp16 keys are as they were.
"""

from __future__ import annotations

import atexit
import collections
import gc
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from bench.core.arguments import default_cache_dir
from bench.core.errors import BenchError
from bench.core.interface import artifacts
from bench.core.interface.artifact_backend import ArtifactBackend
from bench.core.interface.runtime import Prepared, Session, Workload, native_command
from bench.core.util import export_program, one_line, quiet_export, quiet_native, read_own_document

CONVERTER_REQUIREMENTS = ("litert-torch==0.10.0",)
"""Installed (with ``torch==<this torch>``) into the converter environment; part of the cache key."""
PRECISIONS = ("fp32", "fp16", "int8")
CACHE_FORMAT = 1
CONVERT_TIMEOUT_S = 1800
SETUP_TIMEOUT_S = 1800
XNNPACK_FLAG_QS8, XNNPACK_FLAG_QU8, XNNPACK_FLAG_FORCE_FP16 = 1, 2, 4  # TFLITE_XNNPACK_DELEGATE_FLAG_*
RESULT_TAG = "BENCH_LITERT_RESULT "
INT8_RECIPE = {
    "tool": "litert-torch PT2EQuantizer (PT2E: torchao prepare_pt2e/convert_pt2e, converted with QuantConfig)",
    "format": "static int8 TFLite operators (the converter folds the quantize/dequantize pairs)",
    "weights": "int8 symmetric per channel",
    "activations": "int8 per tensor, histogram observer",
}
"""How an int8 ``.tflite`` is made (the calibration set besides): part of its cache key and of the row's detail."""
READY = ".bench-ready.json"

# Runs in the converter's Python: argv = pt2 path, output path, precision, input shape "1,3,224,224", and
# for int8 the calibration batches (.npy, stacked: batches x shape) that the suite wrote.
_CONVERTER = r"""
import json, sys, time
pt2, out, precision, shape = sys.argv[1], sys.argv[2], sys.argv[3], tuple(int(s) for s in sys.argv[4].split(","))
result = {}
try:
    import torch
    import litert_torch
    result.update(litert_torch=litert_torch.__version__, torch=torch.__version__)
    module = torch.export.load(pt2).module()
    for sub in module.modules():
        sub.training = False  # eval() is not allowed on an exported module; its graph is eval-mode already
    kwargs = {}
    if precision == "fp16":
        from litert_torch.generative.quantize import quant_recipes
        kwargs["quant_config"] = quant_recipes.full_fp16_recipe()
    t0 = time.perf_counter()
    if precision == "int8":
        import numpy as np
        from litert_torch.quantize import pt2e_quantizer as pq
        from litert_torch.quantize.quant_config import QuantConfig
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
        quantizer = pq.PT2EQuantizer().set_global(pq.get_symmetric_quantization_config(is_per_channel=True))
        module = prepare_pt2e(module, quantizer)
        with torch.no_grad():
            for batch in np.load(sys.argv[5]):
                module(torch.from_numpy(batch))
        module = convert_pt2e(module, fold_quantize=False)
        kwargs["quant_config"] = QuantConfig(pt2e_quantizer=quantizer)
        result.update(quantize_s=round(time.perf_counter() - t0, 2))
    litert_torch.convert(module, (torch.zeros(shape),), **kwargs).export(out)
    result.update(status="ok", convert_s=round(time.perf_counter() - t0, 2))
except BaseException as exc:  # the whole message: the suite makes it one line (an MLIR error's cause is below)
    result.update(status="failed", error_type=type(exc).__name__, error=str(exc)[:20000])
print("BENCH_LITERT_RESULT " + json.dumps(result), flush=True)
"""


def runtime_version() -> str:
    try:
        return metadata.version("ai-edge-litert")
    except metadata.PackageNotFoundError:
        return "not installed"


# ---------------------------------------------------------------------------------------------- converter


def _venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _requirements() -> list[str]:
    return [f"torch=={torch.__version__}", *CONVERTER_REQUIREMENTS]


def converter_python(cache_dir: Path, create: bool = True) -> Path:
    """The Python that runs litert-torch (see the module docstring for the order it is looked for in)."""
    configured = os.environ.get("BENCH_LITERT_PYTHON")
    if configured:
        if not Path(configured).exists():
            raise BenchError(f"BENCH_LITERT_PYTHON={configured} does not exist")
        return Path(configured)
    import importlib.util

    if importlib.util.find_spec("litert_torch") is not None:
        return Path(sys.executable)
    venv = Path(cache_dir).resolve() / "litert-venv"
    python = _venv_python(venv)
    if _ready(venv):
        return python
    if not create:
        raise BenchError(f"no litert-torch converter environment at {venv}")
    return create_converter_env(venv)


def _ready(venv: Path) -> bool:
    """Whether the environment was finished for these requirements (its marker, a regular file, says so)."""
    marker = read_own_document(venv / READY)
    return isinstance(marker, dict) and marker.get("requirements") == _requirements()


def create_converter_env(venv: Path) -> Path:
    """Create (or recreate) the converter virtual environment at ``venv``; one process at a time."""
    import fcntl

    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / f".{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a concurrent run waits here, then finds the environment ready
        if _ready(venv):
            return _venv_python(venv)
        artifacts.remove(venv)  # not shutil.rmtree, which opens (and waits on) a pipe planted there
        print(
            f"creating the litert-torch converter environment {venv} (once; about a minute): "
            f"{' '.join(_requirements())}",
            file=sys.stderr,
            flush=True,
        )
        env = {k: v for k, v in os.environ.items() if k not in ("PIP_CONSTRAINT", "PIP_REQUIRE_VIRTUALENV")}
        # The suite's constraints (PIP_CONSTRAINT under tox) pin typing-extensions too new for the converter.
        steps = (
            [sys.executable, "-m", "venv", str(venv)],
            [str(_venv_python(venv)), "-m", "pip", "install", "--disable-pip-version-check", "-q", *_requirements()],
        )
        for step in steps:
            try:
                done = subprocess.run(step, env=env, capture_output=True, text=True, timeout=SETUP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                raise BenchError(f"creating {venv} timed out after {SETUP_TIMEOUT_S} s") from None
            if done.returncode != 0:
                tail = (done.stderr.strip().splitlines() or done.stdout.strip().splitlines() or ["?"])[-1]
                raise BenchError(
                    f"could not create the litert-torch environment {venv} ({' '.join(step[2:5])}...): {tail}; "
                    "or point BENCH_LITERT_PYTHON at a Python that has litert-torch"
                )
        version = subprocess.run(
            [str(_venv_python(venv)), "-c", "import importlib.metadata as m; print(m.version('litert-torch'))"],
            capture_output=True,
            text=True,
        ).stdout.strip()
        (venv / READY).write_text(json.dumps({"requirements": _requirements(), "litert_torch": version}))
    return _venv_python(venv)


def convert(model: nn.Module, workload: Workload, out: Path, python: Path) -> dict[str, Any]:
    """Convert ``model`` at the workload's static shape to ``out`` (.tflite) in the converter's Python."""
    example = torch.zeros(workload.input_shape)
    pt2 = out.with_name(out.stem + ".pt2")
    calibration = out.with_name(out.stem + "-calibration.npy")
    t0 = time.perf_counter()
    with quiet_export(), quiet_native(), torch.no_grad():  # no FX graph dumps
        torch.export.save(export_program(model, example), str(pt2))
    extra = []
    if workload.precision == "int8":  # the shared set, from this process: the converter's side has no suite code
        np.save(calibration, np.stack(workload.calibration.batches(workload.input_shape, workload.model_name)))
        extra.append(str(calibration))
    env = {
        **os.environ,
        "LITERT_TORCH_SHOW_PROGRESS": "n",  # else a progress tree on stdout
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "PYTHONWARNINGS": "ignore",
        "PYTHONNOUSERSITE": "1",
    }
    command = [str(python), "-c", _CONVERTER, str(pt2), str(out), workload.precision, ",".join(map(str, example.shape))]
    command += extra
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=CONVERT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"litert-torch conversion timed out after {CONVERT_TIMEOUT_S} s") from None
    finally:
        pt2.unlink(missing_ok=True)
        calibration.unlink(missing_ok=True)
    result = next(
        (
            json.loads(line[len(RESULT_TAG) :])
            for line in reversed(done.stdout.splitlines())
            if line.startswith(RESULT_TAG)
        ),
        None,
    )
    if result is None:  # the converter died (killed, out of memory, broken environment)
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"litert-torch converter exited with code {done.returncode}: {tail}")
    if result.get("status") != "ok":
        error = str(result.get("error", "unknown error")).replace(str(Path.cwd()) + os.sep, "")
        failure = type(str(result.get("error_type") or "Error"), (Exception,), {})(error)
        raise RuntimeError(f"litert-torch cannot convert {workload.model_name}: {one_line(failure)}")
    facts = {
        "litert_torch": result.get("litert_torch", ""),
        "convert_s": round(time.perf_counter() - t0, 2),
        **xnnpack_coverage(out),
    }
    if workload.precision == "int8":
        facts["quantize_s"] = result.get("quantize_s", "")
        facts["tensor_dtypes"] = tensor_dtypes(out)
    return facts


# ---------------------------------------------------------------------------------------------- runtime


def _interpreter(path: Path, **kwargs: Any) -> Any:
    from ai_edge_litert.interpreter import Interpreter

    with quiet_native():  # "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."
        interpreter = Interpreter(model_path=str(path), num_threads=1, **kwargs)
        interpreter.allocate_tensors()
    return interpreter


def xnnpack_coverage(path: Path) -> dict[str, Any]:
    """Which of the model's operators XNNPACK runs, read per operator.

    With node fusion disabled, XNNPACK replaces every operator it supports by a delegate node of its
    own that has the operator's outputs; an operator without such a twin stays on a builtin kernel.
    """
    single = _interpreter(path, experimental_disable_delegate_node_fusion=True)._get_ops_details()
    delegate_outputs = {tuple(op["outputs"]) for op in single if op["op_name"] == "DELEGATE"}
    model_ops = [op for op in single if op["op_name"] != "DELEGATE"]
    outside = collections.Counter(op["op_name"] for op in model_ops if tuple(op["outputs"]) not in delegate_outputs)
    fused = _interpreter(path)._get_ops_details()
    return {
        "model_ops": len(model_ops),
        "xnnpack_ops": len(model_ops) - sum(outside.values()),
        "ops_outside_xnnpack": ",".join(f"{name}:{n}" for name, n in outside.most_common()),
        "xnnpack_partitions": sum(op["op_name"] == "DELEGATE" for op in fused),
    }


def tensor_dtypes(path: Path) -> str:
    """How many of the model's tensors have each dtype, most common first (``int8:812,int32:90,...``)."""
    from ai_edge_litert.interpreter import Interpreter

    with quiet_native():
        interpreter = Interpreter(model_path=str(path))
    counts = collections.Counter(np.dtype(t["dtype"]).name for t in interpreter.get_tensor_details())
    return ",".join(f"{name}:{n}" for name, n in counts.most_common())


@dataclass(frozen=True)
class Codec:
    """How a model's one input and one output are stored: float32, or int8 with (scale, zero point).

    A statically quantized model from the converter takes and gives int8 (the quantize at the input and the
    dequantize at the output are folded into its signature), as int8 models on phones do: the app quantizes
    the image once. The session does that here, outside the timed run, and dequantizes logits for parity.
    """

    input_dtype: str = "float32"
    input_scale: float = 1.0
    input_zero: int = 0
    output_dtype: str = "float32"
    output_scale: float = 1.0
    output_zero: int = 0

    def encode(self, x: np.ndarray) -> np.ndarray:
        if self.input_dtype == "float32":
            return np.ascontiguousarray(x, dtype=np.float32).reshape(-1)
        q = np.round(np.asarray(x, dtype=np.float32) / self.input_scale) + self.input_zero
        return np.clip(q, -128, 127).astype(np.int8).reshape(-1)

    def decode(self, y: np.ndarray) -> np.ndarray:
        if self.output_dtype == "float32":
            return np.asarray(y, dtype=np.float32)
        return ((np.asarray(y, dtype=np.float32) - self.output_zero) * self.output_scale).astype(np.float32)


def read_codec(path: Path) -> tuple[Codec, list, int]:
    """The model's :class:`Codec`, its inputs as ``(shape, dtype)`` pairs, and its number of outputs."""
    from ai_edge_litert.interpreter import Interpreter

    with quiet_native():
        interpreter = Interpreter(model_path=str(path))
    ins, outs = interpreter.get_input_details(), interpreter.get_output_details()
    inputs = [(tuple(int(d) for d in i["shape"]), np.dtype(i["dtype"]).name) for i in ins]
    (in_scale, in_zero), (out_scale, out_zero) = ins[0]["quantization"], outs[0]["quantization"]
    codec = Codec(inputs[0][1], float(in_scale), int(in_zero), np.dtype(outs[0]["dtype"]).name, float(out_scale),
                  int(out_zero))  # fmt: skip
    return codec, inputs, len(outs)


def io_problem(path: Path, input_shape: tuple[int, ...], precision: str = "fp32") -> str | None:
    """Why the model at ``path`` is not the one input of ``input_shape`` expected (None if it is): float32,
    or for int8 float32 or int8 with a scale, and one output of the same kind."""
    codec, inputs, outputs = read_codec(path)
    kinds = {"float32"} | ({"int8"} if precision == "int8" else set())
    dtype = inputs[0][1] if inputs else "float32"
    ok = inputs == [(tuple(input_shape), dtype)] and dtype in kinds and outputs == 1
    scales = [
        scale
        for kind, scale in ((dtype, codec.input_scale), (codec.output_dtype, codec.output_scale))
        if kind == "int8"
    ]
    if not ok or codec.output_dtype not in kinds or 0 in scales:
        expected = " or ".join(f"({tuple(input_shape)}, '{k}')" for k in sorted(kinds))
        return f"inputs {inputs}, expected [{expected}] and one output"
    return None


_FILTER = """
import sys
for line in sys.stdin.buffer:
    if not any(word in line for word in (b"accelerator_registry.cc", b"DestroyAccelerator")):
        sys.stderr.buffer.write(line)
        sys.stderr.buffer.flush()
"""
_teardown_filtered = False


def _filter_teardown_lines() -> None:
    """LiteRT's native accelerator registry logs ``INFO: ... DestroyAccelerator`` lines from C++ static
    destructors, after every Python object is gone, so no ``quiet_native`` block can hold them. At exit,
    fd 2 is passed through a small filter process that drops just those lines; anything else still shows."""
    global _teardown_filtered
    if _teardown_filtered:
        return
    _teardown_filtered = True

    def install() -> None:
        try:
            sys.stderr.flush()
            read, write = os.pipe()
            subprocess.Popen([sys.executable, "-c", _FILTER], stdin=read, close_fds=True)
            os.close(read)
            os.dup2(write, 2)
            os.close(write)
        except (OSError, ValueError):  # no usable fd 2 or no process to spare: the lines show
            pass

    atexit.register(install)


class LiteRTSession(Session):
    """A CompiledModel (CPU accelerator: XNNPACK) with input and output buffers bound; ``run`` runs it."""

    def __init__(self, compiled: Any, example: np.ndarray, detail: dict[str, str], codec: Codec = Codec()) -> None:
        self._compiled = compiled
        self._codec = codec
        signature = next(iter(compiled.get_signature_list()))
        outputs = compiled.get_output_tensor_details(signature)
        self._out_shape = tuple(next(iter(outputs.values()))["shape"])
        self._inputs = compiled.create_input_buffers(0)
        self._outputs = compiled.create_output_buffers(0)
        self._inputs[0].write(codec.encode(example))
        self._check_inputs = compiled.create_input_buffers(0)
        self._check_outputs = compiled.create_output_buffers(0)
        self._run = compiled.run_by_index
        self.detail = detail

    def run(self) -> None:
        self._run(0, self._inputs, self._outputs)

    def predict(self, x: np.ndarray) -> np.ndarray:
        self._check_inputs[0].write(self._codec.encode(x))
        self._run(0, self._check_inputs, self._check_outputs)
        size = int(np.prod(self._out_shape))
        out = self._check_outputs[0].read(size, np.dtype(self._codec.output_dtype).type)
        return self._codec.decode(np.array(out)).reshape(self._out_shape)

    def close(self) -> None:
        self._run = None
        with quiet_native():  # "DestroyAccelerator" lines
            self._inputs = self._outputs = self._check_inputs = self._check_outputs = []
            if self._compiled is not None:
                self._compiled.close()
            self._compiled = None
            gc.collect()


class LiteRTBackend(ArtifactBackend):
    name = "litert"
    label = "LiteRT (XNNPACK)"
    packages = ("ai-edge-litert",)
    native_tools = ("litert-benchmark", "benchmark_model")

    @classmethod
    def native_commands(cls, file: str, threads: int, precision: str, warmup: int, iters: int) -> list[dict[str, str]]:
        """``litert-benchmark`` (pip) and the ``benchmark_model`` binary (phones), both on XNNPACK."""
        stem = file.split(".", 1)[0]
        python = ["litert-benchmark", "--model", file, "--num_threads", str(threads), "--warmup_runs", str(warmup),
                  "--num_runs", str(iters), "--result_json", f"{stem}.litert-benchmark.json"]  # fmt: skip
        fp16 = ["--xnnpack_force_fp16=true"] if precision == "fp16" else []
        binary = ["benchmark_model", f"--graph={file}", f"--num_threads={threads}", f"--warmup_runs={warmup}",
                  f"--num_runs={iters}", "--use_xnnpack=true", *fp16,
                  "--report_peak_memory_footprint=true"]  # fmt: skip
        log = f"{stem}.benchmark_model.log"
        return [
            native_command("litert-benchmark", python, python[-1]),
            native_command(
                "benchmark_model", binary, log, "prints only the mean: an aggregate-only row", wrap=f"{{}} > {log} 2>&1"
            ),
        ]

    extra = "litert"
    requires = ("ai_edge_litert",)
    precisions = PRECISIONS

    def cache_key(self, model: nn.Module, workload: Workload) -> dict[str, Any]:
        key = {
            "format": CACHE_FORMAT,
            "model": workload.model_name,
            "input_shape": list(workload.input_shape),
            "precision": workload.precision,
            "converter": list(CONVERTER_REQUIREMENTS),
            "torch": torch.__version__,
            "weights": artifacts.weights_digest(model),
        }
        if workload.precision == "int8":  # only int8 keys grow: fp32/fp16 models already cached stay valid
            key["quantization"] = workload.calibration.recipe_key(INT8_RECIPE)
        return key

    cache_folder = "litert"
    suffix = ".tflite"

    def build(
        self, model: nn.Module, workload: Workload, key: dict[str, Any], staged: Path, cache_dir: Path
    ) -> dict[str, Any]:
        return convert(model, workload, staged, converter_python(cache_dir))

    def check_artifact(self, candidate: Path, meta: dict, workload: Workload) -> str | None:
        return io_problem(candidate, workload.input_shape, workload.precision)

    def facts(self, entry: artifacts.Entry, key: dict[str, Any], workload: Workload) -> dict[str, str]:
        meta = entry.meta
        detail = {
            "litert_cache": entry.status,
            "litert_torch": str(meta.get("litert_torch", "")),
            "model_ops": str(meta.get("model_ops", "")),
            "xnnpack_ops": str(meta.get("xnnpack_ops", "")),
            "ops_outside_xnnpack": str(meta.get("ops_outside_xnnpack", ""))[:300],
            "xnnpack_partitions": str(meta.get("xnnpack_partitions", "")),
            "tflite_mb": f"{entry.path.stat().st_size / 2**20:.1f}",
        }
        if workload.precision == "int8":
            detail["quantization"] = workload.calibration.recipe_detail(INT8_RECIPE)
            detail["tensor_dtypes"] = str(meta.get("tensor_dtypes", ""))[:200]
        return detail

    def load(self, model: nn.Module, prepared: Prepared, workload: Workload, example: np.ndarray) -> Session:
        artifact = self.artifact(prepared)
        from ai_edge_litert.compiled_model import CompiledModel
        from ai_edge_litert.options import Options

        options = Options()
        options.cpu_options.num_threads = workload.threads or 0  # 0: LiteRT decides
        if workload.precision == "fp16":
            options.cpu_options.xnnpack_flags = XNNPACK_FLAG_QS8 | XNNPACK_FLAG_QU8 | XNNPACK_FLAG_FORCE_FP16
        _filter_teardown_lines()
        with quiet_native():  # ~20 INFO lines: accelerator registry, vendor plugins looked for
            compiled = CompiledModel.from_file(str(artifact), options=options)
            fully = compiled.is_fully_accelerated()
            codec = read_codec(artifact)[0]
            session = LiteRTSession(compiled, example, {}, codec)
        session.detail = {
            **prepared.detail,
            "ai_edge_litert": runtime_version(),
            "accelerator": "cpu (XNNPACK)",
            "fully_accelerated": str(fully),
            "num_threads": str(workload.threads or "default"),
            "xnnpack_fp16": "forced" if workload.precision == "fp16" else "off",
        }
        if codec.input_dtype != "float32":
            io = f"input {codec.input_dtype}, output {codec.output_dtype}"
            session.detail["io"] = f"{io} (the image is quantized once, outside the timing)"
        return session


if __name__ == "__main__":  # pragma: no cover - a setup entry point for CI and users
    if len(sys.argv) < 2 or sys.argv[1] != "--setup":
        sys.exit("usage: python -m bench.backends.litert --setup [CACHE_DIR]  (creates the converter environment)")
    target = Path(sys.argv[2]) if len(sys.argv) > 2 else default_cache_dir()
    print(converter_python(target))
