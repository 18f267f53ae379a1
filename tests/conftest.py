"""Shared fixtures and the rule that plain ``pytest`` never spends minutes on benchmarks."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import bench.backends  # noqa: F401 - installs the backend registry, as the command line does

REPO = Path(__file__).resolve().parent.parent


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--benchmark-matrix",
        choices=("small", "full"),
        default="small",
        help="pytest-benchmark matrix: 'small' (CAS-ViT + one model per baseline family) or 'full' (all models)",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    # `pytest` runs the tests, `pytest --benchmark-only` runs the benchmarks: benchmarks are skipped
    # unless explicitly asked for, so the README's test command stays fast.
    if not config.getoption("benchmark_only", default=False):
        config.option.benchmark_skip = True


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run ``python -m bench ARGS`` the way a user does, capturing its output."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "MPLBACKEND": "Agg"}
    return subprocess.run(
        [sys.executable, "-m", "bench", *args],
        cwd=cwd or REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *fragments: str) -> None:
    """Exit code 2, no traceback, a single line on stderr mentioning every fragment."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]):
    """``python -m bench ARGS`` in this process (the same parser, handlers and error handling, without
    paying for a fresh interpreter and torch import on every probe); the shared fixture of the hardening
    tests."""
    from bench.cli import main as bench_main

    def call(*argv: str) -> subprocess.CompletedProcess[str]:
        capsys.readouterr()
        try:
            code = bench_main(list(argv))
        except SystemExit as exc:  # argparse
            code = exc.code if isinstance(exc.code, int) else 2
        out = capsys.readouterr()
        return subprocess.CompletedProcess(["bench", *argv], code, out.out, out.err)

    return call


class QuietProgress:
    """Stands in for the engine's progress bar in tests."""

    def set_postfix_str(self, _: str) -> None: ...

    def write(self, _: str, **__: object) -> None: ...


def cpu_burner(seconds: float) -> subprocess.Popen:
    """One other CPU-bound process (bounded in time, so a failed test cannot leave it running)."""
    code = f"import time\nend = time.time() + {seconds}\nwhile time.time() < end:\n    pass\n"
    return subprocess.Popen([sys.executable, "-c", code])


def pause_env(point: str, marker: Path) -> dict[str, str]:
    """The environment of a command that pauses at ``point`` (``name:pass``; :mod:`bench.core.measure.pause`) and
    waits there until ``marker`` is removed: a test interrupts it at a known moment instead of racing it."""
    return {**os.environ, "PYTHONPATH": str(REPO), "MPLBACKEND": "Agg", "BENCH_PAUSE_AT": point,
            "BENCH_PAUSE_FILE": str(marker)}  # fmt: skip


def wait_paused(proc: subprocess.Popen, marker: Path, limit_s: float = 600) -> int:
    """Wait until ``proc`` (or a process it started) holds at its pause point; returns that process's pid.
    No race: the process cannot move on until the test removes ``marker``. ``limit_s`` only keeps a broken
    command from hanging the suite."""
    import time

    deadline = time.monotonic() + limit_s
    while not marker.exists():
        if proc.poll() is not None:
            _, err = proc.communicate()
            raise AssertionError(f"the command ended (status {proc.returncode}) before its pause point: {err}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("the command never reached its pause point")
        time.sleep(0.02)
    return int(marker.read_text())


def signal_when_paused(proc: subprocess.Popen, marker: Path, sig: int) -> str:
    """Send ``sig`` to ``proc`` once it holds at its pause point (:func:`wait_paused`); its stderr once it ended.
    The process is killed if it does not end, so a failed test leaves nothing running."""
    try:
        wait_paused(proc, marker)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=600)  # a guard only: a loaded machine may take minutes to wind down
    finally:
        if proc.poll() is None:
            proc.kill()
    return err


@pytest.fixture(scope="session")
def pdflatex() -> str:
    """The pdflatex the LaTeX tests compile with; CI (BENCH_REQUIRE_PDFLATEX=1) fails without it, others skip."""
    found = shutil.which("pdflatex")
    if found:
        return found
    if os.environ.get("BENCH_REQUIRE_PDFLATEX") == "1":
        pytest.fail("pdflatex not found, and BENCH_REQUIRE_PDFLATEX=1 requires it (install texlive-latex-recommended)")
    pytest.skip("pdflatex not found: install texlive-latex-base and texlive-latex-recommended to compile the tables")
