"""``bench export``: write the deployable artifacts exactly as benchmarked, with a manifest.

The artifacts come out of the same session service (and cache) as ``bench run``: prepared, loaded
and checked against PyTorch eager before they are copied, so what a user takes to a phone is byte
for byte what was timed: ``.onnx``, ``.pte``, ``.tflite``, OpenVINO ``.xml``/``.bin``,
``.mlpackage``. ``manifest.json`` lists per artifact the model, input shape, precision, backend
options, runtime versions, weights and SHA-256, and ``native``: the exact command line of the
runtime's own benchmark tool that times the artifact with the suite's settings (threads, warmup and
timed iterations), writing an output ``bench import`` reads back -- export, run on the device, import,
report.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from bench.backends import (
    ALL_PRECISIONS,
    BACKENDS,
    DEFAULT_BACKEND,
    add_option_arguments,
    available_backend,
)
from bench.core import arguments
from bench.core.errors import BenchError
from bench.core.interface import settings
from bench.core.interface.artifacts import tree_digest
from bench.core.interface.sessions import open_session
from bench.core.interface.settings import DEFAULT_STEADY, DEFAULT_WARMUP, build_model
from bench.core.records.schema import MANIFEST_VERSION, SUITE_ID, ManifestEntry
from bench.core.records.store import MANIFEST_FILE, load_manifest
from bench.core.util import atomic_write_text, check_writable_dir, one_line, timestamp
from models.errors import CheckpointError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", default=DEFAULT_BACKEND, choices=list(BACKENDS), help="(default: %(default)s)")
    arguments.add_models_argument(p)
    p.add_argument("--batch-sizes", type=arguments.int_list("--batch-sizes"), default=[1], metavar="N[,N...]")
    arguments.add_resolution_argument(p)
    arguments.add_precision_argument(p, ALL_PRECISIONS, "precisions, an artifact each")
    arguments.add_calibration_arguments(p)
    p.add_argument("--checkpoint", type=Path, default=None, help="weights to load (a single model only)")
    p.add_argument("--single-head", action="store_true", help="drop the distillation head (deployable network)")
    p.add_argument("--seed", type=arguments.seed, default=0, metavar="N")
    p.add_argument("--out", type=Path, default=Path("exports"), help="output folder (default: exports/)")
    arguments.add_cache_dir_argument(p)
    native = p.add_argument_group("the native tools' command lines in the manifest")
    arguments.add_threads_argument(native)
    arguments.add_iteration_arguments(native, DEFAULT_WARMUP.min_iters, DEFAULT_STEADY.min_iters)
    add_option_arguments(p)
    p.epilog = "exit status: 0 every artifact written, 1 some model could not be exported, 2 bad input"


def main(args: argparse.Namespace) -> int:
    backend = available_backend(args.backend)
    chosen = settings.from_args(args, backend)
    out = check_writable_dir(args.out, "--out")
    check_writable_dir(args.cache_dir, "--cache-dir")
    entries, failures = [], 0
    for workload in chosen.workloads():
        try:
            model = build_model(chosen, workload.model_name, workload.resolution)
            opened = open_session(backend, model, workload, args.cache_dir, seed=chosen.seed)
        except (BenchError, CheckpointError):  # bad input (a refused checkpoint): one line, exit 2
            raise
        except Exception as exc:  # one model failing must not stop the others
            failures += 1
            print(f"{workload.model_name} b{workload.batch_size}: cannot export: {one_line(exc)}", file=sys.stderr)
            continue
        if opened.session is not None:
            opened.session.close()
        elif opened.parity is not None:  # parity failed even after a rebuild: not what a run would time
            failures += 1
            print(f"{workload.model_name} b{workload.batch_size}: cannot export: {opened.error}", file=sys.stderr)
            continue
        prepared = opened.prepared
        if prepared.artifact is None:
            raise BenchError(f"the {backend.name} backend runs the PyTorch module itself: it has no artifact to export")
        target = out / f"{workload.model_name}-b{workload.batch_size}-r{workload.resolution}-{workload.precision}"
        target = target.with_name(target.name + _suffixes(prepared.artifact))
        _copy(prepared.artifact, target)
        entries.append(
            ManifestEntry(
                file=target.name,
                model=workload.model_name,
                input_shape=list(workload.input_shape),
                precision=workload.precision,
                backend=backend.name,
                backend_options=dict(workload.options),
                weights=chosen.weights,
                single_head=chosen.single_head,
                versions=backend.versions(),
                sha256=tree_digest(target),
                detail=prepared.detail,
                native=backend.native_commands(
                    target.name,
                    workload.threads or arguments.default_threads(),
                    workload.precision,
                    chosen.limits_warmup.min_iters,
                    chosen.limits_steady.min_iters,
                ),
            )
        )
        print(f"{target}  ({entries[-1].sha256[:12]})")
    if not entries:  # nothing exported: no manifest that lists nothing
        return 1
    path = out / MANIFEST_FILE
    earlier: list[ManifestEntry] = []
    if path.exists():  # keep what an earlier export into the same folder listed
        try:
            earlier = load_manifest(path)
        except BenchError:
            earlier = []
    written = {e.file for e in entries}
    manifest = {
        "suite": SUITE_ID,
        "format": MANIFEST_VERSION,
        "created": timestamp(),
        "artifacts": [e.as_dict() for e in earlier if e.file not in written] + [e.as_dict() for e in entries],
    }
    atomic_write_text(path, json.dumps(manifest, indent=2, sort_keys=True, default=str))
    print(f"manifest: {path}")
    return 1 if failures else 0


def _suffixes(artifact: Path) -> str:
    """The artifact's extension(s) without the cache's digest part (``x-1a2b.onnx`` -> ``.onnx``)."""
    return artifact.suffix


def _copy(source: Path, target: Path) -> None:
    """Copy a file, or a directory artifact (``.mlpackage``), and any sidecar file the runtime needs."""
    if target.exists():
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    if source.is_dir():
        shutil.copytree(source, target)
    else:
        shutil.copy2(source, target)
    for sidecar in source.parent.glob(source.stem + ".bin"):  # OpenVINO keeps its weights beside the .xml
        shutil.copy2(sidecar, target.with_suffix(".bin"))
