"""Is this machine fit to benchmark on right now? The checks of pyperf's ``system show`` that apply here.

Each check reads what the OS exposes (Linux ``/proc`` and ``/sys``; best effort elsewhere) and
returns a verdict (``ok``, ``warn``, ``bad`` or ``unknown``) with advice. ``bench doctor`` prints them;
every run stores the quick ones (no sampling) in ``environment.json`` under ``system``.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

OK, WARN, BAD, UNKNOWN = "ok", "warn", "bad", "unknown"
_RANK = {OK: 0, UNKNOWN: 1, WARN: 2, BAD: 3}
_CPU = Path("/sys/devices/system/cpu")


@dataclass(frozen=True)
class Check:
    name: str
    verdict: str
    value: str
    advice: str = ""


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def governor() -> Check:
    found = sorted({g for p in _CPU.glob("cpu[0-9]*/cpufreq/scaling_governor") if (g := _read(p))})
    if not found:
        return Check("cpu governor", UNKNOWN, "not readable (no cpufreq: typical of VMs)", "")
    if found == ["performance"]:
        return Check("cpu governor", OK, "performance")
    return Check(
        "cpu governor",
        WARN,
        ", ".join(found),
        "frequency scaling moves latency: `sudo cpupower frequency-set -g performance` (pyperf system tune does this)",
    )


def frequency_limits() -> Check:
    lows, highs, maxima = [], [], []
    for cpu in _CPU.glob("cpu[0-9]*/cpufreq"):
        lo, hi, mx = (_read(cpu / n) for n in ("scaling_min_freq", "scaling_max_freq", "cpuinfo_max_freq"))
        if lo and hi and mx:
            lows.append(int(lo))
            highs.append(int(hi))
            maxima.append(int(mx))
    if not highs:
        return Check("frequency limits", UNKNOWN, "not readable")
    capped = any(h < m for h, m in zip(highs, maxima, strict=True))
    value = f"{min(lows) / 1e3:.0f}-{max(highs) / 1e3:.0f} MHz (hardware max {max(maxima) / 1e3:.0f})"
    return Check(
        "frequency limits", WARN if capped else OK, value, "a lowered max frequency caps speed" if capped else ""
    )


def turbo() -> Check:
    no_turbo = _read(_CPU / "intel_pstate/no_turbo")
    boost = _read(_CPU / "cpufreq/boost")
    if no_turbo is None and boost is None:
        return Check("turbo boost", UNKNOWN, "not readable")
    on = no_turbo == "0" if no_turbo is not None else boost == "1"
    advice = "turbo makes speed depend on temperature and load; disable it for stable numbers" if on else ""
    return Check("turbo boost", WARN if on else OK, "on" if on else "off", advice)


def smt() -> Check:
    active = _read(_CPU / "smt/active")
    import psutil

    logical, physical = psutil.cpu_count(), psutil.cpu_count(logical=False)
    value = f"{logical} logical CPUs on {physical} cores" + (f", SMT active={active}" if active is not None else "")
    if active == "1" or (logical and physical and logical > physical):
        return Check("SMT", WARN, value, "sibling threads share a core: pin --threads to physical cores (the default)")
    return Check("SMT", OK, value)


def load_average() -> Check:
    try:
        one, _, _ = os.getloadavg()
    except OSError:
        return Check("load average", UNKNOWN, "not available")
    cpus = os.cpu_count() or 1
    verdict = BAD if one > cpus * 0.75 else WARN if one > 0.5 else OK
    advice = "other work is running: wait for it or stop it" if verdict != OK else ""
    return Check("load average", verdict, f"{one:.2f} over 1 min on {cpus} CPUs", advice)


def isolation() -> Check:
    cmdline = _read(Path("/proc/cmdline")) or ""
    isolated = [w for w in cmdline.split() if w.startswith(("isolcpus=", "nohz_full="))]
    if isolated:
        return Check("isolated CPUs", OK, " ".join(isolated))
    return Check("isolated CPUs", OK, "none (fine for a CPU benchmark of whole machines)")


def thread_spinning() -> Check:
    policy = os.environ.get("OMP_WAIT_POLICY")
    settings = [
        f"{k}={os.environ[k]}" for k in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "MKL_NUM_THREADS") if k in os.environ
    ]
    value = ", ".join(settings) or "defaults"
    advice = (
        "ONNX Runtime and OpenMP spin idle worker threads for a while after each run; on a small machine "
        "that steals CPU from whatever runs next. The suite releases each session before the next model "
        "opens and pauses 20 ms before its speed reference."
    )
    return Check("thread spinning", WARN if policy and policy.upper() == "ACTIVE" else OK, value, advice)


def memory() -> Check:
    import psutil

    vm = psutil.virtual_memory()
    verdict = WARN if vm.available < 2 * 2**30 else OK
    return Check("free memory", verdict, f"{vm.available / 2**30:.1f} of {vm.total / 2**30:.1f} GiB available")


def sitting_spread(cache_dir: Path, machine_key: str) -> Check:
    """How far this machine's recent sittings disagreed (:mod:`bench.core.measure.sitting_history`; ``machine_key``:
    :func:`bench.core.measure.machine.floor_key`): whether a cell can be stable here at all."""
    from bench.core.measure.machine import MachineFloor
    from bench.core.measure.sitting_history import SittingHistory
    from bench.core.measure.stats import STABLE_WITHIN, can_reproduce

    floor = MachineFloor.load(cache_dir, machine_key).recorded_ms  # as a sitting starting now would judge
    spread = SittingHistory.load(cache_dir, machine_key).spread(floor)
    value = f"{spread.note()} ({machine_key})"
    if not spread.learnt:
        return Check("sittings agree", UNKNOWN, value, "")
    if not can_reproduce(spread.sd):
        advice = (
            f"sittings here differ too much for any cell to be stable within {STABLE_WITHIN:.0%}: every row "
            "will be flagged; a quieter hour or another machine"
        )
        return Check("sittings agree", BAD, value, advice)
    return Check("sittings agree", OK, value)


def quick_checks() -> list[Check]:
    """Checks that read settings only (no sampling): stored with every run."""
    return [governor(), frequency_limits(), turbo(), smt(), load_average(), isolation(), thread_spinning(), memory()]


def sampled_checks(seconds: float = 1.0) -> list[Check]:
    """Steal and other processes' CPU use, sampled over ``seconds``."""
    import psutil

    from bench.core.measure.machine import CpuWindow

    window = CpuWindow()
    procs = list(psutil.process_iter(["pid", "name"]))
    for p in procs:
        try:
            p.cpu_percent(None)
        except psutil.Error:
            continue
    time.sleep(seconds)
    busy, steal = window.finish()
    me = os.getpid()
    users = []
    for p in procs:
        try:
            pct = p.cpu_percent(None)
        except psutil.Error:
            continue
        if p.pid != me and pct >= 5:
            users.append((pct, f"{p.info['name']} (pid {p.pid}) {pct:.0f}%"))
    users.sort(reverse=True)
    checks = []
    if steal is None:
        checks.append(Check("steal", UNKNOWN, "not available (not Linux)"))
    else:
        verdict = BAD if steal > 0.05 else WARN if steal > 0.01 else OK
        advice = "the hypervisor is taking CPU time: numbers will drift; compare ratios within one run" if steal else ""
        checks.append(Check("steal", verdict, f"{steal:.1%} of CPU time over {seconds:g} s", advice))
    if busy is not None:
        verdict = BAD if busy > 0.5 else WARN if busy > 0.1 else OK
        value = f"{busy:.2f} CPUs used by other processes" + (
            f": {', '.join(u for _, u in users[:3])}" if users else ""
        )
        advice = thread_advice(busy) if verdict != OK else ""
        checks.append(Check("other processes", verdict, value, advice))
    return checks


def free_threads(busy: float, cores: int | None = None) -> int:
    """Threads that leave the cores other processes use (``busy`` cores' worth) alone: at least 1."""
    import math

    import psutil

    cores = cores or psutil.cpu_count(logical=False) or os.cpu_count() or 1
    return max(1, cores - math.ceil(busy - 0.05))


def thread_advice(busy: float, cores: int | None = None) -> str:
    """What to do about other processes' CPU use: stop them, or run on the cores they leave.

    A runtime with one thread per core waits at every synchronisation point for the thread whose core
    another process holds: a torch row has been seen 70-130x slower so, not the few percent the busy
    share suggests. Fewer threads than cores avoid it.
    """
    n = free_threads(busy, cores)
    return (
        f"stop them before timing, or leave their cores alone with --threads {n} (all-core runtimes wait "
        "at each synchronisation for the thread whose core another process holds: rows can be many times slower)"
    )


def overall(checks: list[Check]) -> str:
    return max((c.verdict for c in checks), key=_RANK.__getitem__, default=OK)


def as_dict(checks: list[Check]) -> dict[str, object]:
    return {"verdict": overall(checks), "checks": [asdict(c) for c in checks]}
