"""Helpers for ``tests/gpu/check.sh``: machine probe, bench wrapper, and checks of the results it wrote.

Only the standard library is used for the checks (they read ``summary.csv`` with :mod:`csv`), so they
work whatever the GPU machine has installed, and they rely on the CLI's output files only, not on
``bench``'s internal modules. Sub-commands (``python tests/gpu/check_gpu_results.py CMD --help``):

* ``env``            what the machine has: GPU, driver, Python/torch/CUDA/cuDNN, TF32 defaults, the
                     suite's dependencies (importable? version), ONNX Runtime providers.
* ``missing``        which of the given distributions are not importable (one per line).
* ``bench``          ``python -m bench ARGS`` in this process, optionally under a CUDA memory cap
                     (``--mem-cap-gib``: a real allocator out-of-memory at a batch the host can still
                     compute the reference for) or with TF32 off (``--no-tf32``: parity diagnosis).
* ``newest-run``     the run directory a bench step just created (by comparing listings).
* ``check-status``   per run: rows ok / failed / parity_failed, with the error of every bad row.
* ``check-events``   per torch-CUDA row: CUDA-event median vs wall median within bounds (see below).
* ``check-oom``      the out-of-memory row stepped its batch down and says so.
* ``check-onnx``     ONNX Runtime rows really ran on CUDAExecutionProvider (no silent CPU fallback).
* ``parity-failed``  models with parity_failed rows in a run (comma-separated, for a rerun).
* ``overview``       median latency per model x batch for every configuration side by side.

Exit status of a check: 0 pass, 1 fail (a violation is printed on a line starting with ``FAIL``).
"""

from __future__ import annotations

import argparse
import csv
import importlib
import importlib.metadata
import json
import math
import os
import platform
import runpy
import subprocess
import sys
from pathlib import Path

SUMMARY = "summary.csv"

# import name -> distribution name, for the suite's runtime and test dependencies
DEPENDENCIES = {
    "numpy": "numpy",
    "onnxruntime": "onnxruntime",
    "onnx": "onnx",
    "onnxscript": "onnxscript",
    "fvcore": "fvcore",
    "iopath": "iopath",
    "yacs": "yacs",
    "termcolor": "termcolor",
    "tabulate": "tabulate",
    "portalocker": "portalocker",
    "yaml": "PyYAML",
    "PIL": "pillow",
    "pandas": "pandas",
    "matplotlib": "matplotlib",
    "scipy": "scipy",
    "psutil": "psutil",
    "tqdm": "tqdm",
    "safetensors": "safetensors",
    "cpuinfo": "py-cpuinfo",
    "pytest": "pytest",
    "pytest_benchmark": "pytest-benchmark",
    "coremltools": "coremltools",
}

# --------------------------------------------------------------------------------------- reading runs


def run_dirs(paths: list[str]) -> list[Path]:
    """Run directories under ``paths`` (a run directory, a folder of runs, or a summary.csv)."""
    found: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_file():
            found.append(p.parent)
        elif (p / SUMMARY).is_file():
            found.append(p)
        elif p.is_dir():
            found.extend(sorted(s.parent for s in p.glob(f"*/{SUMMARY}")))
    return list(dict.fromkeys(found))


def read_summary(run: Path) -> tuple[list[str], list[dict[str, str]], list[str]]:
    """Header, rows and problems (ragged rows) of one run's summary.csv."""
    problems: list[str] = []
    with open(run / SUMMARY, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader, [])
        rows = []
        for n, values in enumerate(reader, start=2):
            if len(values) != len(header):
                problems.append(f"{run.name}/{SUMMARY} line {n}: {len(values)} fields, header has {len(header)}")
                continue
            rows.append(dict(zip(header, values, strict=True)))
    return header, rows, problems


def num(value: str | None) -> float | None:
    try:
        x = float(value) if value not in (None, "") else None
    except ValueError:
        return None
    return x if x is not None and math.isfinite(x) else None


def truthy(value: str | None) -> bool:
    return str(value).strip().lower() in ("true", "1", "yes")


def config_label(row: dict[str, str]) -> str:
    parts = [row.get("backend", "?"), row.get("device", "?"), row.get("precision", "?")]
    if truthy(row.get("channels_last")):
        parts.append("cl")
    if truthy(row.get("compile")):
        parts.append("compile")
    return "/".join(parts)


def table(headers: list[str], rows: list[list[object]]) -> str:
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = [
        "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
        for r in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def fmt(x: float | None, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


# ---------------------------------------------------------------------------------------- env / missing


def _version(module) -> str:
    return str(getattr(module, "__version__", getattr(module, "VERSION", "?")))


def cmd_env(args: argparse.Namespace) -> int:
    info: dict[str, object] = {
        "python": sys.version.split()[0],
        "executable": sys.executable,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_cuda_build"] = torch.version.cuda
        info["cuda_available"] = torch.cuda.is_available()
        if torch.cuda.is_available():
            p = torch.cuda.get_device_properties(0)
            info.update(
                gpu_name=p.name,
                gpu_count=torch.cuda.device_count(),
                gpu_capability=f"{p.major}.{p.minor}",
                gpu_memory_gib=round(p.total_memory / 2**30, 1),
                gpu_sms=p.multi_processor_count,
                cudnn=torch.backends.cudnn.version(),
                cudnn_allow_tf32=torch.backends.cudnn.allow_tf32,
                matmul_allow_tf32=torch.backends.cuda.matmul.allow_tf32,
                float32_matmul_precision=torch.get_float32_matmul_precision(),
            )
    except Exception as exc:  # the probe must describe a broken machine, not die on it
        info["torch"] = f"not importable: {type(exc).__name__}: {exc}"
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.sm", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout.strip()
        info["nvidia_smi"] = out
        info["gpu_driver"] = out.split(",")[1].strip() if "," in out else None
    except (OSError, subprocess.SubprocessError) as exc:
        info["nvidia_smi"] = f"unavailable: {type(exc).__name__}"
    deps = {}
    for module_name, dist in DEPENDENCIES.items():
        try:
            module = importlib.import_module(module_name)
            try:
                deps[dist] = importlib.metadata.version(dist)
            except importlib.metadata.PackageNotFoundError:
                deps[dist] = _version(module)
        except Exception as exc:
            deps[dist] = f"MISSING ({type(exc).__name__}: {str(exc).splitlines()[0][:80] if str(exc) else ''})"
    info["dependencies"] = deps
    try:
        import onnxruntime

        info["onnxruntime_providers"] = onnxruntime.get_available_providers()
        info["onnxruntime_cuda"] = "CUDAExecutionProvider" in onnxruntime.get_available_providers()
    except Exception:
        info["onnxruntime_providers"] = None
        info["onnxruntime_cuda"] = False
    for key, value in info.items():
        if key != "dependencies":
            print(f"{key:>24}: {value}")
    print(table(["dependency", "version"], [[k, v] for k, v in deps.items()]))
    if args.json:
        Path(args.json).write_text(json.dumps(info, indent=2, default=str))
    return 0


def cmd_missing(args: argparse.Namespace) -> int:
    """Print the distribution names (of the known import names given) that do not import."""
    for module_name in args.modules:
        try:
            importlib.import_module(module_name)
        except Exception:
            print(DEPENDENCIES.get(module_name, module_name))
    return 0


# ------------------------------------------------------------------------------------------ bench wrapper


def cmd_bench(args: argparse.Namespace) -> int:
    repo = str(Path(__file__).resolve().parents[2])
    if repo not in sys.path:
        sys.path.insert(0, repo)
    argv = list(args.bench_args)
    if argv and argv[0] == "--":
        argv = argv[1:]
    if args.mem_cap_gib or args.no_tf32:
        import torch

        if not torch.cuda.is_available():
            print("error: --mem-cap-gib/--no-tf32 need a CUDA GPU", file=sys.stderr)
            return 2
        if args.mem_cap_gib:
            total = torch.cuda.get_device_properties(0).total_memory
            fraction = min(1.0, args.mem_cap_gib * 2**30 / total)
            torch.cuda.set_per_process_memory_fraction(fraction, 0)
            print(
                f"[wrapper] CUDA caching allocator capped at {args.mem_cap_gib} GiB "
                f"(fraction {fraction:.4f} of {total / 2**30:.1f} GiB)",
                file=sys.stderr,
            )
        if args.no_tf32:
            torch.backends.cudnn.allow_tf32 = False
            torch.backends.cuda.matmul.allow_tf32 = False
            print("[wrapper] TF32 off for cuDNN convolutions and matmuls", file=sys.stderr)
    sys.argv = ["python -m bench", *argv]
    try:
        runpy.run_module("bench", run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return 0


def cmd_newest_run(args: argparse.Namespace) -> int:
    """Print the run directories in ``folder`` that are not in the listing file ``before``."""
    before = set(Path(args.before).read_text().split()) if Path(args.before).exists() else set()
    folder = Path(args.folder)
    new = sorted(p.name for p in folder.iterdir() if p.is_dir() and p.name not in before) if folder.is_dir() else []
    for name in new:
        print(folder / name)
    return 0 if new else 1


# ------------------------------------------------------------------------------------------------ checks


def cmd_check_status(args: argparse.Namespace) -> int:
    runs = run_dirs(args.paths)
    if not runs:
        print(f"FAIL no run directory (summary.csv) under {' '.join(args.paths)}")
        return 1
    bad, lines, problems = 0, [], []
    for run in runs:
        _, rows, ragged = read_summary(run)
        problems += ragged
        counts: dict[str, int] = {}
        for r in rows:
            counts[r.get("status", "?")] = counts.get(r.get("status", "?"), 0) + 1
        configs = sorted({config_label(r) for r in rows})
        validity: dict[str, int] = {}
        for r in rows:
            if r.get("validity"):
                validity[r["validity"]] = validity.get(r["validity"], 0) + 1
        lines.append(
            [
                run.name,
                ",".join(configs),
                len(rows),
                ", ".join(f"{k}={v}" for k, v in sorted(counts.items())),
                ", ".join(f"{k}={v}" for k, v in sorted(validity.items())) or "-",
            ]
        )
        if not rows:
            problems.append(f"{run.name}: no rows")
        for r in rows:
            if r.get("status") != "ok":
                bad += 1
                problems.append(
                    f"{run.name}: {r.get('model')} b{r.get('infer_batch_size')} {config_label(r)} "
                    f"status={r.get('status')} parity_max_abs={r.get('parity_max_abs_diff') or '-'} "
                    f"cos={r.get('parity_cosine') or '-'}: {r.get('error') or ''}"
                )
            elif args.expect_device and r.get("device") != args.expect_device:
                problems.append(f"{run.name}: {r.get('model')} ran on device={r.get('device')}")
    print(table(["run", "configs", "rows", "statuses", "validity (info)"], lines))
    for p in problems:
        print(f"FAIL {p}")
    return 1 if problems else 0


def event_bounds(event: float, args: argparse.Namespace) -> tuple[float, float]:
    return event * args.rel_low - args.abs_low_ms, event * args.rel_high + args.abs_high_ms


def cmd_check_events(args: argparse.Namespace) -> int:
    """Per torch-CUDA ok row: wall median (perf_counter around run()) vs CUDA-event median.

    Why these bounds. Every iteration the wall clock starts before ``start.record()`` and stops after
    ``torch.cuda.synchronize()`` returns, which is after the ``end`` event has completed: the wall
    interval contains the event interval, so wall >= event in every iteration, and hence for the
    medians too (the median is monotone). Lower bound: wall >= 0.98*event - 0.02 ms; the slack only
    absorbs GPU-vs-host clock differences and event resolution (~0.5 us); anything below means the
    events do not bracket the timed work (other stream, stale events, a missing synchronize).
    Upper bound: what wall adds is host work outside the event pair (entering inference_mode and
    autocast, the GPU reaching the start event, waking from synchronize, perf_counter): a roughly
    fixed tens of microseconds per call, a few hundred under VM jitter. wall <= 1.25*event + 0.5 ms
    allows 0.5 ms of that plus 25% for host jitter on long iterations; more means real per-call host
    work that the event pair does not see (e.g. input copies or a sync outside it), which would make
    the two numbers describe different things.
    """
    runs = run_dirs(args.paths)
    out, failures, checked = [], [], 0
    for run in runs:
        header, rows, ragged = read_summary(run)
        failures += [f"FAIL {p}" for p in ragged]
        cuda_rows = [
            r for r in rows if r.get("backend") == "torch" and r.get("device") == "cuda" and r.get("status") == "ok"
        ]
        if not cuda_rows:
            continue
        if "cuda_event_median_ms" not in header:
            failures.append(
                f"FAIL {run.name}: summary.csv has no cuda_event_median_ms column ({len(cuda_rows)} CUDA rows): "
                "bench computes the CUDA-event median but its result store does not write it"
            )
            continue
        for r in cuda_rows:
            checked += 1
            wall, event = num(r.get("latency_median_ms")), num(r.get("cuda_event_median_ms"))
            label = f"{r.get('model')} b{r.get('infer_batch_size')} {config_label(r)}"
            if wall is None or event is None or event <= 0:
                out.append([label, fmt(wall), fmt(event), "-", "-", "NO EVENT TIME"])
                failures.append(f"FAIL {run.name}: {label}: wall={wall} event={event} (no CUDA-event time)")
                continue
            low, high = event_bounds(event, args)
            verdict = "ok" if low <= wall <= high else ("WALL < EVENT" if wall < low else "WALL >> EVENT")
            out.append([label, fmt(wall), fmt(event), f"{(wall - event) * 1e3:.0f}", f"{wall / event:.3f}", verdict])
            if verdict != "ok":
                failures.append(
                    f"FAIL {run.name}: {label}: wall {wall:.4f} ms vs event {event:.4f} ms "
                    f"outside [{low:.4f}, {high:.4f}]"
                )
    bounds = (
        f"bounds: {args.rel_low}*event - {args.abs_low_ms} ms <= wall <= {args.rel_high}*event + {args.abs_high_ms} ms"
    )
    if out:
        print(table(["row", "wall_ms", "event_ms", "wall-event_us", "ratio", "verdict"], out))
    print(f"{checked} torch-CUDA rows checked; {bounds}")
    if not checked and not failures:
        if args.allow_none:
            print("SKIP no torch-CUDA rows to check")
            return 0
        failures.append(f"FAIL no torch-CUDA ok rows under {' '.join(args.paths)}")
    for f in failures:
        print(f)
    return 1 if failures else 0


def cmd_check_oom(args: argparse.Namespace) -> int:
    runs = run_dirs([args.run])
    if not runs:
        print(f"FAIL no summary.csv in {args.run}")
        return 1
    rows = [r for run in runs for r in read_summary(run)[1]]
    if not rows:
        print("FAIL the out-of-memory run wrote no row")
        return 1
    failures = []
    for r in rows:
        batch = num(r.get("infer_batch_size"))
        error = r.get("error") or ""
        print(
            f"{r.get('model')}: requested batch {args.requested}, measured batch {r.get('infer_batch_size')}, "
            f"status {r.get('status')}, error {error!r}, cuda_max_allocated_mb {r.get('cuda_max_allocated_mb')}"
        )
        if batch is None or batch >= args.requested:
            failures.append(
                f"FAIL {r.get('model')}: batch not reduced (infer_batch_size={r.get('infer_batch_size')}; "
                "no out-of-memory happened, or it was not retried)"
            )
        if f"batch reduced from {args.requested}" not in error:
            failures.append(f"FAIL {r.get('model')}: error column does not say 'batch reduced from {args.requested}'")
        if r.get("status") != "ok":
            failures.append(f"FAIL {r.get('model')}: status {r.get('status')} (the reduced batch should be measured)")
    for f in failures:
        print(f)
    return 1 if failures else 0


def cmd_check_onnx(args: argparse.Namespace) -> int:
    rows = [r for run in run_dirs([args.run]) for r in read_summary(run)[1] if r.get("backend") == "onnx"]
    if not rows:
        print(f"FAIL no onnx rows in {args.run}")
        return 1
    failures = []
    for r in rows:
        try:
            providers = str(json.loads(r.get("runtime_detail") or "{}").get("providers", ""))
        except ValueError:
            providers = ""
        print(
            f"{r.get('model')} b{r.get('infer_batch_size')}: status {r.get('status')}, providers {providers or '?'}, "
            f"median {r.get('latency_median_ms')} ms"
        )
        if r.get("status") == "ok" and not providers.startswith("CUDAExecutionProvider"):
            failures.append(f"FAIL {r.get('model')}: ONNX Runtime fell back to {providers or 'unknown providers'}")
    for f in failures:
        print(f)
    return 1 if failures else 0


def cmd_parity_failed(args: argparse.Namespace) -> int:
    names = []
    for run in run_dirs([args.run]):
        for r in read_summary(run)[1]:
            if r.get("status") == "parity_failed" and r.get("model") not in names:
                names.append(r.get("model"))
    if names:
        print(",".join(names))
    return 0


def cmd_overview(args: argparse.Namespace) -> int:
    """Median ms per (model, batch) for each configuration, and each one's speed-up over fp32 eager."""
    cells: dict[tuple[str, int], dict[str, float]] = {}
    configs: list[str] = []
    for run in run_dirs(args.paths):
        for r in read_summary(run)[1]:
            batch = num(r.get("infer_batch_size"))
            median = num(r.get("latency_median_ms"))
            if r.get("status") != "ok" or batch is None or median is None:
                continue
            label = config_label(r)
            if label not in configs:
                configs.append(label)
            cells.setdefault((r.get("model", "?"), int(batch)), {})[label] = median
    if not cells:
        print("no ok rows")
        return 0
    base = next((c for c in configs if c.endswith("/fp32") and c.startswith("torch/")), None)
    rows = []
    for (model, batch), by in sorted(cells.items()):
        line: list[object] = [model, batch]
        for c in configs:
            v = by.get(c)
            speed = f" x{by[base] / v:.2f}" if base and v and base in by and c != base else ""
            line.append("-" if v is None else f"{v:.3f}{speed}")
        rows.append(line)
    print(f"median latency (ms){f'; xN = speed-up over {base}' if base else ''}")
    print(table(["model", "batch", *configs], rows))
    return 0


# ---------------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="check_gpu_results.py", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("env")
    s.add_argument("--json", default=None, help="also write the probe as JSON here")
    s.set_defaults(fn=cmd_env)
    s = sub.add_parser("missing")
    s.add_argument("modules", nargs="+")
    s.set_defaults(fn=cmd_missing)
    s = sub.add_parser("bench", help="python -m bench ARGS (after --), optionally capped or without TF32")
    s.add_argument("--mem-cap-gib", type=float, default=None)
    s.add_argument("--no-tf32", action="store_true")
    s.add_argument("bench_args", nargs=argparse.REMAINDER)
    s.set_defaults(fn=cmd_bench)
    s = sub.add_parser("newest-run")
    s.add_argument("folder")
    s.add_argument("before", help="file listing the folder's entries before the step")
    s.set_defaults(fn=cmd_newest_run)
    s = sub.add_parser("check-status")
    s.add_argument("paths", nargs="+")
    s.add_argument("--expect-device", default=None)
    s.set_defaults(fn=cmd_check_status)
    s = sub.add_parser("check-events")
    s.add_argument("paths", nargs="+")
    s.add_argument("--rel-low", type=float, default=0.98)
    s.add_argument("--abs-low-ms", type=float, default=0.02)
    s.add_argument("--rel-high", type=float, default=1.25)
    s.add_argument("--abs-high-ms", type=float, default=0.5)
    s.add_argument("--allow-none", action="store_true", help="no CUDA rows is a skip, not a failure")
    s.set_defaults(fn=cmd_check_events)
    s = sub.add_parser("check-oom")
    s.add_argument("run")
    s.add_argument("--requested", type=int, required=True)
    s.set_defaults(fn=cmd_check_oom)
    s = sub.add_parser("check-onnx")
    s.add_argument("run")
    s.set_defaults(fn=cmd_check_onnx)
    s = sub.add_parser("parity-failed")
    s.add_argument("run")
    s.set_defaults(fn=cmd_parity_failed)
    s = sub.add_parser("overview")
    s.add_argument("paths", nargs="+")
    s.set_defaults(fn=cmd_overview)
    args = p.parse_args(argv)
    return int(args.fn(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
