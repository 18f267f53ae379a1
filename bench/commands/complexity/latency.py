"""Latency vs tokens (torch CPU, ONNX Runtime), reusing the suite's backends and timed loop."""

from __future__ import annotations

import gc
import itertools
import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

import models
from bench.commands.complexity.counting import MIXERS, exponent_table
from bench.commands.complexity.progress import step
from bench.core.measure import counting


@dataclass(frozen=True)
class LatencySettings:
    backends: tuple[str, ...]
    threads: int | None
    min_iters: int
    min_time_s: float
    max_time_s: float
    cache_dir: Path


def _median_ms(session, settings: LatencySettings) -> float:
    """Median of the timed loop; the session service's cold run and parity check were its warmup."""
    from bench.core.measure.timing import LoopLimits, timed_loop

    limits = LoopLimits(settings.min_iters, settings.min_time_s, settings.max_time_s)
    return float(np.median(timed_loop(session.run, limits).samples_ms))


def _checked_session(backend_name: str, module: nn.Module, workload, settings: LatencySettings):
    """A session opened by the suite's session service (prepared and cached like any model, checked
    against the module's eager output); a failed check stops the command with one line."""
    from bench.backends import get_backend
    from bench.core.errors import BenchError
    from bench.core.interface.sessions import open_session

    backend = get_backend(backend_name)
    workload = replace(workload, options=backend.Options().items())
    backend.check(workload)
    opened = open_session(backend, module, workload, settings.cache_dir)
    if opened.session is None:
        raise BenchError(f"{workload.model_name} on {backend_name}: {opened.error}")
    return opened.session


def _module_session(backend_name: str, module: nn.Module, shape: tuple[int, ...], tag: str, settings):
    """A backend session for a bare module (input ``shape`` [B, C, H, W])."""
    from bench.core.interface.runtime import Workload

    b, c, h, _ = shape
    return _checked_session(backend_name, module, Workload(tag, b, h, threads=settings.threads, channels=c), settings)


def mixer_latency(width: int, sizes: list[int], settings: LatencySettings, progress=None) -> pd.DataFrame:
    """Latency of one CATM and one MSA forward (batch 1) per map size; one backend at a time."""
    rows = []
    for backend_name, mixer in itertools.product(settings.backends, ("CATM", "MSA")):
        module = MIXERS[mixer](width).eval()
        for h in sizes:
            with step(progress, f"time {mixer} {backend_name} {h}x{h}"):
                session = _module_session(backend_name, module, (1, width, h, h), f"{mixer.lower()}-c{width}", settings)
                rows.append({"what": mixer, "backend": backend_name, "tokens": h * h, "size": h, "C": width})
                rows[-1]["latency_ms"] = _timed_and_closed(session, settings)
    return pd.DataFrame(rows)


def _timed_and_closed(session, settings: LatencySettings) -> float:
    """Median latency, then the session is released before the next one starts (no idle thread pools)."""
    try:
        return _median_ms(session, settings)
    finally:
        session.close()
        del session
        gc.collect()


def model_latency(names: list[str], resolutions: list[int], settings: LatencySettings, progress=None) -> pd.DataFrame:
    """Latency (batch 1) and fvcore GMACs of whole networks per input resolution; one backend at a time,
    so that two runtimes' thread pools never compete for the cores."""
    from bench.core.interface.runtime import Workload

    rows = []
    for backend_name, name, res in itertools.product(settings.backends, names, resolutions):
        with step(progress, f"time {name} {backend_name} {res}px"):
            torch.manual_seed(0)
            model = models.create_model(name, img_size=res)
            session = _checked_session(backend_name, model, Workload(name, 1, res, threads=settings.threads), settings)
            rows.append(
                {
                    "what": name,
                    "family": models.get_card(name).family,
                    "backend": backend_name,
                    "resolution": res,
                    "tokens": (res // 4) ** 2,
                    "gmacs": counting.cached_gmacs(model, res, settings.cache_dir),
                    "latency_ms": _timed_and_closed(session, settings),
                }
            )
    return pd.DataFrame(rows)


@dataclass
class Latency:
    mixers: pd.DataFrame
    networks: pd.DataFrame
    exponents: pd.DataFrame
    note: str


def latency_words(exponents: pd.DataFrame) -> str:
    """The latency check in one paragraph, from the upper-half exponents (at small sizes fixed per-call
    overheads dominate, which pulls the overall exponents down)."""
    upper = exponents[exponents["measure"] == "latency_ms"].set_index(["what", "backend"])["exponent_upper"]
    parts = []
    for backend in dict.fromkeys(upper.index.get_level_values("backend")):
        d = upper.xs(backend, level="backend")
        text = f"{backend}: " + ", ".join(f"{m} {d[m]:.2f}" for m in ("CATM", "MSA") if m in d)
        nets = d.drop(["CATM", "MSA"], errors="ignore")
        parts.append(text + (f"; whole networks {nets.min():.2f} to {nets.max():.2f}" if len(nets) else ""))
    catm = upper.xs("CATM", level="what") if "CATM" in upper.index.get_level_values("what") else pd.Series()
    msa = upper.xs("MSA", level="what") if "MSA" in upper.index.get_level_values("what") else pd.Series()
    separated = len(catm) and len(msa) and catm.max() < 1.3 and msa.min() > 1.6
    verdict = (
        "Measured latency separates the two as the counts do: about linear for the CATM, about quadratic for the MSA."
        if separated
        else "On this run the latencies do not separate linear from quadratic cleanly (see the load note)."
    )
    return "Exponent of latency vs tokens over the upper half of each range: " + "; ".join(parts) + ". " + verdict


def run_latency(
    settings: LatencySettings, names: list[str], resolutions: list[int], width: int, sizes: list[int], progress=None
):
    """Mixers, then networks; one ``progress`` step per timed point."""
    load_before = os.getloadavg()[0]
    mixers = mixer_latency(width, sizes, settings, progress)
    nets = model_latency(names, resolutions, settings, progress)
    exps = exponent_table(pd.concat([mixers, nets]), ["what", "backend"], "tokens", ["latency_ms"])
    gmacs = exponent_table(nets[nets["backend"] == settings.backends[0]], ["what"], "tokens", ["gmacs"])
    exps = pd.concat([exps, gmacs.assign(backend="(fvcore count)")], ignore_index=True)
    note = (
        f"latency: {os.cpu_count()} CPUs, threads {settings.threads or 'runtime default'}, 1-minute load average "
        f"{load_before:.1f} before and {os.getloadavg()[0]:.1f} after (a load above the CPU count means other "
        "processes shared the cores and the latencies are inflated and noisy)"
    )
    return Latency(mixers, nets, exps, note)
