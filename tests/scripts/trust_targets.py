"""Measure the suite's trust targets on this machine (not a unit test: it takes minutes).

    python tests/scripts/trust_targets.py aa      # A/A: 6 pairs of identical default runs, 2 models each
    python tests/scripts/trust_targets.py power   # 10 trials: a real 15% slowdown of one model

A/A: every pair is two back-to-back ``bench run --backend onnx --models casvit_xs,swiftformer_xs``
(the default settings) compared with ``bench compare``; target: at most 1 of the 12 comparisons flagged.
Power: per trial a baseline run of the same two models, then a run in which casvit_xs's forward does
extra work calibrated to 15% of its median; target: casvit_xs flagged as a regression in at least 9 of
10 trials, swiftformer_xs never. The slowdown is injected on the torch backend, where the extra work
can wrap ``forward`` directly; the extra work is matrix products, so it slows down with the machine
like the model does.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

MODELS = "casvit_xs,swiftformer_xs"
FLAGGED = ("REGRESSION", "improved")


def _bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bench", *args], cwd=REPO, capture_output=True, text=True)


def _compare(old: Path, new: Path) -> list[dict]:
    proc = _bench("compare", str(old), str(new), "--format", "json")
    if proc.returncode not in (0, 1, 3):  # 3: some cell untested or not judged (unstable)
        raise SystemExit(f"compare failed: {proc.stderr.strip()}")
    return json.loads(proc.stdout)


def aa(pairs: int, out: Path) -> int:
    flagged = unjudged = total = 0
    print("pair  model           change %  machine %  verdict                validity (old/new)")
    for pair in range(pairs):
        runs = []
        for side in ("a", "b"):
            target = out / f"pair{pair}-{side}"
            proc = _bench("run", "--backend", "onnx", "--models", MODELS, "--out", str(target), "--no-progress")
            if proc.returncode != 0:
                raise SystemExit(f"run failed: {proc.stderr.strip()}")
            runs.append(target)
        for row in _compare(*runs):
            total += 1
            flagged += row["verdict"] in FLAGGED
            unjudged += row["verdict"] in ("not judged (unstable)", "untested (no interval)")
            machine_pct = row.get("floor_change_pct")
            print(
                f"{pair:>4}  {row['model']:<14} {row['change_pct']:+8.1f}  "
                f"{'-' if machine_pct is None else format(machine_pct, '+9.1f')}  "
                f"{row['verdict']:<22} {row['old_validity']}/{row['new_validity']}"
            )
    print(f"A/A: {flagged} of {total} comparisons flagged (target: at most 1); not judged or untested: {unjudged}")
    return 0 if flagged <= 1 else 1


def power(trials: int, slowdown: float, out: Path) -> int:
    import numpy as np
    import torch

    from bench.backends import REGISTRY
    from bench.core.arguments import default_threads
    from bench.core.interface import settings as model_settings
    from bench.core.interface.settings import Settings
    from bench.core.measure import sitting

    class Slowed(torch.nn.Module):
        """The network plus ``reps`` 256x256 matrix products per forward: extra work on the same CPUs."""

        def __init__(self, net: torch.nn.Module, reps: int) -> None:
            super().__init__()
            self.net, self.reps = net, reps
            self.a = torch.randn(256, 256)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            for _ in range(self.reps):
                torch.mm(self.a, self.a)
            return self.net(x)

    def mm_ms() -> float:
        a = torch.randn(256, 256)
        times = []
        for _ in range(200):
            t0 = time.perf_counter()
            torch.mm(a, a)
            times.append((time.perf_counter() - t0) * 1e3)
        return float(np.median(times))

    settings = Settings(backend="torch", model_names=tuple(MODELS.split(",")), threads=default_threads(), rounds=3)
    real_build = model_settings.build_model
    caught = false_alarms = 0
    print("trial  injected %  casvit_xs change %     verdict        swiftformer_xs verdict")
    for trial in range(trials):
        base_dir, slow_dir = out / f"trial{trial}-base", out / f"trial{trial}-slow"
        model_settings.build_model = real_build
        _, rows = sitting.run_inline(
            settings, REGISTRY.get(settings.backend), base_dir, out / "cache", False, False, False
        )
        median = next(r.latency_median_ms for r in rows if r.model == "casvit_xs")
        reps = max(1, round(slowdown * median / mm_ms()))

        def slowed_build(s, name, resolution, reps=reps):
            net = real_build(s, name, resolution)
            return Slowed(net, reps).eval() if name == "casvit_xs" else net

        model_settings.build_model = slowed_build
        _, slow_rows = sitting.run_inline(
            settings, REGISTRY.get(settings.backend), slow_dir, out / "cache", False, False, False
        )
        model_settings.build_model = real_build
        injected = next(r.latency_median_ms for r in slow_rows if r.model == "casvit_xs") / median - 1
        verdicts = {row["model"]: row for row in _compare(base_dir, slow_dir)}
        cas, swift = verdicts["casvit_xs"], verdicts["swiftformer_xs"]
        caught += cas["verdict"] == "REGRESSION"
        false_alarms += swift["verdict"] in FLAGGED
        print(
            f"{trial:>5}  {injected * 100:+10.1f}  {cas['change_pct']:+21.1f}  {cas['verdict']:<13}  {swift['verdict']}"
        )
    print(
        f"power: casvit_xs flagged in {caught} of {trials} trials (target: at least 9), "
        f"swiftformer_xs flagged in {false_alarms} (target: 0)"
    )
    return 0 if caught >= 0.9 * trials and false_alarms == 0 else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("aa", "power"))
    parser.add_argument("--pairs", type=int, default=6)
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--slowdown", type=float, default=0.15)
    parser.add_argument("--out", type=Path, default=None, help="where runs are written (default: a temporary folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        return aa(args.pairs, out) if args.what == "aa" else power(args.trials, args.slowdown, out)


if __name__ == "__main__":
    sys.exit(main())
