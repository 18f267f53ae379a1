"""The GPU check's result checks, on fabricated summary.csv files (no GPU needed)."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location("check_gpu_results", Path(__file__).with_name("check_gpu_results.py"))
checks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(checks)

HEADER = [
    "model",
    "infer_img_size",
    "infer_batch_size",
    "backend",
    "device",
    "precision",
    "channels_last",
    "compile",
    "status",
    "error",
    "latency_median_ms",
    "parity_max_abs_diff",
    "parity_cosine",
    "runtime_detail",
    "cuda_max_allocated_mb",
]


def row(model="casvit_xs", batch=1, device="cuda", status="ok", wall=5.0, event=None, **extra) -> dict:
    r = {
        "model": model,
        "infer_img_size": 224,
        "infer_batch_size": batch,
        "backend": "torch",
        "device": device,
        "precision": "fp32",
        "channels_last": "False",
        "compile": "False",
        "status": status,
        "error": "",
        "latency_median_ms": wall,
        "cuda_event_median_ms": event,
    }
    r.update(extra)
    return r


def write_run(root: Path, name: str, rows: list[dict], events: bool = True) -> Path:
    run = root / name
    run.mkdir(parents=True)
    header = HEADER + (["cuda_event_median_ms"] if events else [])
    with open(run / "summary.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        for r in rows:
            w.writerow(["" if r.get(c) is None else r.get(c) for c in header])
    return run


def run_main(capsys, *argv: str) -> tuple[int, str]:
    code = checks.main(list(argv))
    return code, capsys.readouterr().out


def test_event_vs_wall_bounds(tmp_path: Path, capsys) -> None:
    write_run(
        tmp_path,
        "r1",
        [
            row(wall=5.06, event=5.0),  # 60 us host overhead: fine
            row(batch=64, wall=0.9, event=0.5),  # launch-bound: 0.4 ms over, within the 0.5 ms allowance
            row(model="m_low", wall=4.0, event=5.0),  # wall shorter than the GPU work: impossible
            row(model="m_high", wall=10.0, event=5.0),  # 5 ms of host work outside the events
            row(model="cpu_row", device="cpu", wall=50.0),  # not a CUDA row: ignored
            row(model="pf", status="parity_failed", wall=None),  # not timed: ignored
        ],
    )
    code, out = run_main(capsys, "check-events", str(tmp_path))
    assert code == 1
    assert "4 torch-CUDA rows checked" in out
    fails = [line for line in out.splitlines() if line.startswith("FAIL")]
    assert len(fails) == 2 and "m_low" in fails[0] and "m_high" in fails[1]
    assert "WALL < EVENT" in out and "WALL >> EVENT" in out


def test_event_column_missing_or_empty_fails(tmp_path: Path, capsys) -> None:
    write_run(tmp_path, "no-column", [row(wall=5.0)], events=False)
    write_run(tmp_path, "empty", [row(model="noevent", wall=5.0, event=None)])
    code, out = run_main(capsys, "check-events", str(tmp_path))
    assert code == 1
    assert "no cuda_event_median_ms column" in out and "noevent" in out


def test_no_cuda_rows_fails_unless_allowed(tmp_path: Path, capsys) -> None:
    write_run(tmp_path, "cpu", [row(device="cpu")])
    assert run_main(capsys, "check-events", str(tmp_path))[0] == 1
    code, out = run_main(capsys, "check-events", str(tmp_path), "--allow-none")
    assert code == 0 and "SKIP" in out


def test_oom_row(tmp_path: Path, capsys) -> None:
    good = write_run(
        tmp_path,
        "good",
        [row(batch=96, wall=30.0, event=29.9, error="batch reduced from 512 after CUDA out-of-memory")],
    )
    assert run_main(capsys, "check-oom", str(good), "--requested", "512")[0] == 0
    not_reduced = write_run(tmp_path, "fit", [row(batch=512, wall=30.0, event=29.9)])
    code, out = run_main(capsys, "check-oom", str(not_reduced), "--requested", "512")
    assert code == 1 and "batch not reduced" in out and "does not say" in out
    failed = write_run(tmp_path, "failed", [row(batch=512, status="failed", error="OutOfMemoryError: CUDA out of")])
    code, out = run_main(capsys, "check-oom", str(failed), "--requested", "512")
    assert code == 1 and "status failed" in out


def test_status_and_parity_failed(tmp_path: Path, capsys) -> None:
    run = write_run(
        tmp_path,
        "r",
        [
            row(wall=5.0, event=4.9),
            row(model="casvit_t", status="parity_failed", error="parity failed: max|diff|=0.01", wall=None),
            row(model="casvit_s", status="parity_failed", wall=None),
        ],
    )
    code, out = run_main(capsys, "check-status", str(tmp_path), "--expect-device", "cuda")
    assert code == 1 and out.count("FAIL") == 2 and "ok=1, parity_failed=2" in out
    assert run_main(capsys, "parity-failed", str(run)) == (0, "casvit_t,casvit_s\n")


def test_ragged_csv_is_reported(tmp_path: Path, capsys) -> None:
    run = write_run(tmp_path, "r", [row(wall=5.0, event=4.9)])
    with open(run / "summary.csv", "a") as f:
        f.write("casvit_xs,224,1,torch\n")
    code, out = run_main(capsys, "check-status", str(tmp_path))
    assert code == 1 and "fields, header has" in out


def test_onnx_providers(tmp_path: Path, capsys) -> None:
    cuda = json.dumps({"providers": "CUDAExecutionProvider+CPUExecutionProvider"})
    cpu = json.dumps({"providers": "CPUExecutionProvider"})
    run = write_run(
        tmp_path,
        "onnx",
        [row(backend="onnx", runtime_detail=cuda), row(model="swiftformer_xs", backend="onnx", runtime_detail=cpu)],
    )
    code, out = run_main(capsys, "check-onnx", str(run))
    assert code == 1 and "swiftformer_xs: ONNX Runtime fell back to CPUExecutionProvider" in out


def test_overview_speedups(tmp_path: Path, capsys) -> None:
    write_run(tmp_path, "a", [row(wall=10.0, event=9.9)])
    write_run(tmp_path, "b", [row(wall=5.0, event=4.9, precision="fp16")])
    code, out = run_main(capsys, "overview", str(tmp_path))
    assert code == 0 and "5.000 x2.00" in out


@pytest.mark.parametrize("names", [["numpy"], ["surely_not_a_module_xyz", "yaml"]])
def test_missing(capsys, names: list[str]) -> None:
    code, out = run_main(capsys, "missing", *names)
    assert code == 0
    assert out.split() == [n for n in names if n == "surely_not_a_module_xyz"]
