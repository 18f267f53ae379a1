"""The README's commands leave a fresh clone's working tree clean: user runs write only to git-ignored places.

Committed reference outputs live in ``reports/reference/`` (and ``results/reference/``); ``bench report``,
``flops``, ``complexity`` and ``run`` write to ``reports/`` and ``results/`` by default, which are ignored.
The commands run in a ``git clone`` of this repository's HEAD (uncommitted changes are not in it), cut down
where the README's full command takes minutes (one model, a small input), but with every output location
left at its default.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(
    shutil.which("git") is None or not (ROOT / ".git").exists(), reason="needs git and this repository's history"
)


def _git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("clone") / "repo"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(target)], check=True, capture_output=True)
    assert _git("status", "--porcelain", "--ignored", cwd=target) == "", "a fresh clone starts clean"
    return target


def _bench(clone: Path, *args: str, ok: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess[str]:
    """``python -m bench ARGS`` inside the clone, with the clone's code (not this checkout's) and no
    redirections of the suite's defaults from the caller's environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BENCH_")}
    env.update(PYTHONPATH=str(clone), MPLBACKEND="Agg", PYTHONDONTWRITEBYTECODE="1")
    proc = subprocess.run(
        [sys.executable, "-m", "bench", *args], cwd=clone, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode in ok, f"bench {' '.join(args)} exited {proc.returncode}:\n{proc.stderr[-2000:]}"
    return proc


def test_readme_commands_leave_the_working_tree_clean(clone: Path) -> None:
    reference_runs = sorted(p.name for p in (clone / "results" / "reference").iterdir() if p.is_dir())
    assert reference_runs, "the clone has the committed reference runs"
    sitting = reference_runs[0]  # one sitting over every runtime

    _bench(clone, "list")
    _bench(clone, "flops", "--models", "casvit_xs")  # README: --models all (2 min), same default --out
    _bench(clone, "report", "--results", "results/")  # includes results/reference/ two levels down
    # a sitting against itself: nothing regressed; unstable cells are not judged (exit 3)
    _bench(clone, "compare", f"results/reference/{sitting}", f"results/reference/{sitting}", ok=(0, 3))
    run = _bench(
        clone,
        "run",
        "--backend",
        "onnx",
        "--models",
        "casvit_xs",
        "--resolution",
        "64",
        "--warmup",
        "1",
        "--warmup-time",
        "0",
        "--iters",
        "3",
        "--min-time",
        "0",
        "--rounds",
        "1",
        "--budget",
        "0",
        "--no-flops",
        "--no-progress",
    )
    status = _git("status", "--porcelain", cwd=clone)
    assert status == "", f"the README's commands changed or added tracked files:\n{status}"

    # ... because they wrote where they should: user outputs beside the references, never over them
    assert (clone / "reports" / "flops" / "flops.md").is_file()
    assert (clone / "reports" / "table.md").is_file()
    report_md = (clone / "reports" / "report.md").read_text()
    assert all(r in report_md for r in reference_runs), "report --results results/ includes results/reference/"
    assert any(p.name.startswith("20") for p in (clone / "results").iterdir()), run.stdout[-500:]
    assert _git("diff", "--stat", "HEAD", cwd=clone) == ""


def test_committed_reports_say_how_to_make_them_again() -> None:
    """Each committed report names the exact command that writes it (and that command writes it there)."""
    flops = (ROOT / "reports" / "reference" / "flops" / "flops.md").read_text()
    assert "Made by `python -m bench flops --models all " in flops and "--out reports/reference/flops`" in flops
    complexity = (ROOT / "reports" / "reference" / "complexity" / "summary.md").read_text()
    assert "Made by `python -m bench complexity " in complexity
    assert "--out reports/reference/complexity`" in complexity
    report = (ROOT / "reports" / "reference" / "report.md").read_text()
    assert "Made by `python -m bench report" in report and "results/reference" in report
    assert not (ROOT / "reports" / "flops").exists() or _git("ls-files", "reports/flops", cwd=ROOT) == ""
    assert _git("ls-files", "reports/complexity", cwd=ROOT) == ""
