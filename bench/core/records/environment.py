"""What a run ran on, captured once per run so results from different machines are never mixed."""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform
import socket
import subprocess
import sys
from pathlib import Path

from bench.core.interface.runtime import registry
from bench.core.measure import system
from bench.core.records.schema import SCHEMA_VERSION, SUITE_ID
from bench.core.util import json_digest, timestamp

FRAMEWORK_PACKAGE = "torch"
"""The framework every model is written in: its eager output is the parity reference of every runtime."""
CORE_PACKAGES = (FRAMEWORK_PACKAGE, "numpy", "fvcore")
_REPO = Path(__file__).resolve().parent.parent


def package_versions() -> dict[str, str | None]:
    """Versions of the core packages and of every registered backend's packages (None: not installed)."""
    names = [*CORE_PACKAGES, *registry().packages()]
    versions: dict[str, str | None] = {}
    for name in dict.fromkeys(names):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def cpu_model() -> str:
    try:
        import cpuinfo

        return str(cpuinfo.get_cpu_info().get("brand_raw") or platform.processor() or "unknown")
    except Exception:  # cpuinfo probes the CPU in odd ways on odd platforms; the name is optional
        return platform.processor() or "unknown"


def gpu_info() -> dict[str, str | None]:
    import torch

    if not torch.cuda.is_available():
        return {"gpu_name": None, "gpu_driver": None, "cuda": None, "cudnn": None}
    driver = None
    with contextlib.suppress(OSError, subprocess.SubprocessError, IndexError):
        driver = _command_output("nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader").splitlines()[0]
    return {
        "gpu_name": torch.cuda.get_device_name(0),
        "gpu_driver": driver,
        "cuda": torch.version.cuda,
        "cudnn": str(torch.backends.cudnn.version()),
    }


def _command_output(*argv: str) -> str:
    """Stripped stdout of a short command; raises OSError/SubprocessError if it cannot run."""
    return subprocess.run(argv, capture_output=True, text=True, timeout=10, check=True).stdout.strip()


def git_commit() -> str | None:
    try:
        commit = _command_output("git", "-C", str(_REPO), "rev-parse", "--short=12", "HEAD")
        dirty = _command_output("git", "-C", str(_REPO), "status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("-dirty" if dirty else "")


def collect(extra: dict[str, object] | None = None) -> dict[str, object]:
    """Machine and software description; ``env_id`` hashes the parts that change timings."""
    env: dict[str, object] = {
        "suite": SUITE_ID,
        "schema_version": SCHEMA_VERSION,
        "hostname": socket.gethostname(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "versions": package_versions(),
        **gpu_info(),
        "git_commit": git_commit(),
        "started_at": timestamp(),
        "argv": sys.argv,
        "system": system.as_dict(system.quick_checks()),
    }
    identity = {k: env[k] for k in ("hostname", "cpu_model", "cpu_count", "os", "python", "versions", "gpu_name")}
    env["env_id"] = json_digest(identity, "sha1", 12)
    env.update(extra or {})
    return env


def device_name(env: dict[str, object]) -> str:
    """What a sitting ran on: the device ``bench import`` was told of, else the machine's hostname
    (an import of this machine's own tool output is named by its hostname too)."""
    return str(env.get("device_name") or env.get("hostname") or "")
