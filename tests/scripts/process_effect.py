"""Does a worker's past change a later cell's speed? PyTorch MobileViTv2-1.0, batch 1, in fresh processes.

    python tests/scripts/process_effect.py [--repeats 3]

Each condition runs in its own fresh process, in turn (``--repeats`` times, interleaved), and times
batch 1 before and after three batch-8 inferences of the same network:

* ``default``: glibc's malloc as it comes (its mmap threshold rises when a large mapped block is freed);
* ``fixed``: the thresholds fixed first, as every sitting worker does
  (:func:`bench.core.measure.machine.steady_allocator`).

With the default allocator, batch 1 after batch 8 is faster than in the fresh process (its activations
come from the heap instead of fresh mappings); with the thresholds fixed, before and after agree.
Prints the median of per-process minimum and median latency per condition and phase, in ms.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

CHILD = """
import json, statistics, sys, time
sys.path.insert(0, {repo!r})
import torch, models
from bench.core.measure import machine
if sys.argv[1] == "fixed":
    machine.steady_allocator()
torch.set_num_threads(2)
torch.manual_seed(0)
m = models.create_model("mobilevitv2_100", img_size=256).eval()
x1, x8 = torch.randn(1, 3, 256, 256), torch.randn(8, 3, 256, 256)
def timed(x, n=25):
    with torch.inference_mode():
        for _ in range(3):
            m(x)
        s = []
        for _ in range(n):
            t = time.perf_counter(); m(x); s.append((time.perf_counter() - t) * 1e3)
    return min(s), statistics.median(s)
before = timed(x1)
with torch.inference_mode():
    for _ in range(3):
        m(x8)
after = timed(x1)
print(json.dumps({{"before": before, "after": after}}))
"""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="fresh processes per condition (default: 3)")
    args = parser.parse_args(argv)
    results: dict[str, list[dict[str, list[float]]]] = {"default": [], "fixed": []}
    code = CHILD.format(repo=str(REPO))
    for _ in range(args.repeats):
        for condition in results:  # interleaved, so both meet the same machine
            out = subprocess.run([sys.executable, "-c", code, condition], capture_output=True, text=True, check=True)
            results[condition].append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"PyTorch mobilevitv2_100 batch 1, 2 threads; {args.repeats} fresh process(es) per condition")
    print("condition  phase                        min_ms  median_ms")
    for condition, runs in results.items():
        for phase, label in (("before", "fresh process"), ("after", "after 3 batch-8 inferences")):
            mins = statistics.median(r[phase][0] for r in runs)
            meds = statistics.median(r[phase][1] for r in runs)
            print(f"{condition:9s}  {label:27s} {mins:7.1f}  {meds:9.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
