"""pytest-benchmark suite: model x backend latency, plus the harness-overhead check of the engine.

Run with ``pytest --benchmark-only`` (plain ``pytest`` skips these). Export/conversion happens in
a session-scoped cache, never inside the timed function. ``--benchmark-matrix=full`` selects every
model; the default is each CAS-ViT variant and one model per baseline family, batch 1.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

import models
from bench.backends import Session, Workload, get_backend
from bench.core.arguments import default_threads
from bench.core.engine import Measurer, Settings
from bench.core.timing import LoopLimits
from tests.conftest import QuietProgress

SMALL_MATRIX = (
    "casvit_xs",
    "casvit_s",
    "casvit_m",
    "casvit_t",
    "mobilevitv2_100",
    "swiftformer_xs",
    "efficientformer_l1",
    "efficientformerv2_s0",
)
BACKENDS = ("torch", "onnx", "coreml")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if {"model_name", "backend_name"} <= set(metafunc.fixturenames):
        full = metafunc.config.getoption("benchmark_matrix") == "full"
        names = models.list_models() if full else SMALL_MATRIX
        metafunc.parametrize("backend_name", BACKENDS)
        metafunc.parametrize("model_name", names)


class SessionCache:
    """Prepared and loaded sessions, built once per (model, backend) for the whole pytest session."""

    def __init__(self, tmp_dir) -> None:
        self.tmp_dir = tmp_dir
        self.sessions: dict[tuple[str, str], tuple[Session, Workload, dict[str, object]]] = {}

    def get(self, model_name: str, backend_name: str):
        key = (model_name, backend_name)
        if key not in self.sessions:
            backend = get_backend(backend_name)
            if not backend.can_time_here:
                pytest.skip(f"{backend_name} can only convert on this platform; timing needs macOS")
            card = models.get_card(model_name)
            workload = Workload(model_name, 1, card.default_resolution, threads=default_threads())
            torch.manual_seed(0)
            torch.set_num_threads(default_threads())
            model = models.create_model(model_name)
            prepared = backend.prepare(model, workload, self.tmp_dir)
            x = np.random.default_rng(0).standard_normal(workload.input_shape, dtype=np.float32)
            facts = nn_facts(model, card)
            self.sessions[key] = (backend.load(model, prepared, workload, x), workload, facts)
        return self.sessions[key]


def nn_facts(model: torch.nn.Module, card: models.ModelCard) -> dict[str, object]:
    return {
        "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
        "published_gmacs": card.published_gmacs,
        "family": card.family,
    }


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory: pytest.TempPathFactory) -> SessionCache:
    return SessionCache(tmp_path_factory.mktemp("bench-cache"))


def test_latency(benchmark, model_name: str, backend_name: str, session_cache: SessionCache) -> None:
    session, workload, facts = session_cache.get(model_name, backend_name)
    benchmark.group = f"{model_name} b{workload.batch_size} r{workload.resolution}"
    benchmark.extra_info.update(
        facts,
        model=model_name,
        backend=backend_name,
        device=workload.device,
        precision=workload.precision,
        threads=workload.threads,
        batch_size=workload.batch_size,
        resolution=workload.resolution,
        runtime=session.detail,
    )
    benchmark.pedantic(session.run, warmup_rounds=10, rounds=50, iterations=1)


def test_harness_overhead_onnx(benchmark, tmp_path) -> None:
    """The engine's reported median vs a bare ``session.run`` loop on the same exported file (target: 2%).

    Blocks of the two are interleaved (ABAB...) in one process so machine noise hits both alike.
    """
    import onnxruntime as ort

    settings = Settings(
        backend="onnx",
        model_names=("casvit_xs",),
        limits_warmup=LoopLimits(10, 0.5, 30),
        limits_steady=LoopLimits(100, 1.0, 30),
        threads=default_threads(),
    )
    workload = settings.workload("casvit_xs", 1, 224)
    torch.manual_seed(0)
    model = models.create_model("casvit_xs")
    backend = get_backend("onnx")
    prepared = backend.prepare(model, workload, tmp_path)

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = workload.threads
    opts.inter_op_num_threads = 1
    bare = ort.InferenceSession(str(prepared.artifact), sess_options=opts, providers=["CPUExecutionProvider"])
    feed = {bare.get_inputs()[0].name: np.random.default_rng(0).standard_normal(workload.input_shape, np.float32)}

    def bare_loop(n: int) -> list[float]:
        out = []
        for _ in range(n):
            t0 = time.perf_counter()
            bare.run(None, feed)
            out.append((time.perf_counter() - t0) * 1e3)
        return out

    measurer = Measurer(settings, backend, tmp_path, progress=QuietProgress())
    suite_medians, bare_medians = [], []
    bare_loop(20)
    for _ in range(5):
        row, samples = measurer.measure(model, workload)
        suite_medians.append(row["latency_median_ms"])
        bare_medians.append(float(np.median(bare_loop(len(samples)))))
    benchmark.pedantic(bare.run, args=(None, feed), warmup_rounds=10, rounds=100, iterations=1)
    suite, plain = float(np.median(suite_medians)), float(np.median(bare_medians))
    ratio = suite / plain
    benchmark.extra_info.update(suite_median_ms=suite, bare_median_ms=plain, ratio=ratio)
    print(f"\nharness overhead: suite median {suite:.3f} ms, bare loop median {plain:.3f} ms, ratio {ratio:.4f}")
    assert abs(ratio - 1) <= 0.02, f"suite median {suite:.3f} ms vs bare {plain:.3f} ms (ratio {ratio:.4f})"
