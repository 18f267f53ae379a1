"""The suite beside the runtimes' own tools on one machine (not a unit test: it takes minutes).

    python tests/scripts/roundtrip_native.py                       # the paper set, OpenVINO and LiteRT
    python tests/scripts/roundtrip_native.py --models casvit_xs    # one model, to check the script

The round trip a researcher with a phone makes, done here: ``bench export`` (the manifest names each
artifact's native command), the manifest's ``benchmark_app`` / ``litert-benchmark`` command lines run
exactly as written, ``bench import`` of their outputs, ``bench run`` of the same artifacts with the
same threads, warmup and iterations, and ``bench report`` over both. It writes into ``--out``:
``exports/``, ``results/`` (the suite's runs and the imported sittings), ``report/`` and
``roundtrip.csv`` / ``roundtrip.md`` -- per model and runtime the suite's median, the tool's median
and their ratio (the table the README shows). Numbers from a shared machine are not measurements.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

TOOLS = {"openvino": "benchmark_app", "litert": "litert-benchmark"}


def _bench(*args: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "bench", *args], cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"bench {args[0]} failed: {(proc.stderr or proc.stdout).strip()[-800:]}")


def _native(exports: Path) -> list[str]:
    """Run each artifact's native command from the manifest as written; the outputs' paths."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    outputs = []
    for entry in json.loads((exports / "manifest.json").read_text())["artifacts"]:
        tool = TOOLS.get(str(entry["backend"]))
        native = next((c for c in entry.get("native", []) if c["tool"] == tool), None)
        if native is None:
            continue
        print(f"{entry['file']}: {native['command']}", file=sys.stderr)
        proc = subprocess.run(
            native["command"], shell=True, cwd=exports, env={**os.environ, "PATH": path}, capture_output=True, text=True
        )
        if proc.returncode != 0:
            raise SystemExit(f"{tool} failed on {entry['file']}: {(proc.stderr or proc.stdout).strip()[-800:]}")
        outputs.append(str(exports / native["output"]))
    return outputs


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="paper")
    p.add_argument("--threads", default="1")
    p.add_argument("--warmup", default="10")
    p.add_argument("--iters", default="50")
    p.add_argument("--out", type=Path, default=REPO / "reports" / "roundtrip-native")
    args = p.parse_args()
    out = args.out.resolve()
    exports, results = out / "exports", out / "results"
    settings = ("--models", args.models, "--threads", args.threads, "--warmup", args.warmup, "--iters", args.iters)
    for backend in TOOLS:
        _bench("export", "--backend", backend, *settings, "--out", str(exports))
    _bench("import", *_native(exports), "--manifest", str(exports / "manifest.json"), "--out", str(results))
    for backend in TOOLS:  # one round of the same length as the tools' runs
        _bench("run", "--backend", backend, *settings, "--rounds", "1", "--warmup-time", "0", "--min-time", "0",
               "--no-flops", "--no-progress", "--out", str(results))  # fmt: skip
    _bench("report", "--results", str(results), "--out", str(out / "report"))

    from bench.core.records.store import load_results

    summary, _, _ = load_results([results])
    ok = summary[summary["status"] == "ok"]
    rows = []
    for (model, backend), group in ok.groupby(["model", "backend"], sort=False):
        suite = group[group["source_tool"] == ""]
        tool = group[group["source_tool"] != ""]
        if suite.empty or tool.empty:
            continue
        mine, theirs = float(suite["latency_median_ms"].iloc[-1]), float(tool["latency_median_ms"].iloc[-1])
        rows.append(
            {
                "model": model,
                "runtime": backend,
                "tool": tool["source_tool"].iloc[-1],
                "suite_median_ms": round(mine, 3),
                "tool_median_ms": round(theirs, 3),
                "tool_over_suite": round(theirs / mine, 3),
            }
        )
    if not rows:
        raise SystemExit("no model has both a suite row and an imported row")
    import pandas as pd

    table = pd.DataFrame(rows)
    table.to_csv(out / "roundtrip.csv", index=False)
    head = f"threads {args.threads}, warmup {args.warmup}, {args.iters} timed iterations, one sitting each"
    (out / "roundtrip.md").write_text(
        f"Suite vs the runtime's own tool on one machine ({head}).\n\n" + table.to_markdown(index=False) + "\n"
    )
    print(table.to_markdown(index=False))
    print(f"wrote {out / 'roundtrip.md'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
