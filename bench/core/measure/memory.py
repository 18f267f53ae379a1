"""Peak resident memory of this process per measured workload.

On Linux the kernel's high-water mark (VmHWM) can be reset by writing ``5`` to
``/proc/self/clear_refs``, which gives a true per-workload peak at zero cost while timing.
Elsewhere the counter cannot be reset: :func:`peak_rss_mb` then gives the lifetime peak from
``getrusage`` (an upper bound), so the session service leaves ``peak_rss_mb`` empty there rather
than report a number that is not the session's.
"""

from __future__ import annotations

import resource
import sys
from pathlib import Path

_CLEAR_REFS = Path("/proc/self/clear_refs")
_STATUS = Path("/proc/self/status")


def reset_peak() -> bool:
    """Reset the peak-RSS counter; returns False where the platform cannot (the peak is then lifetime)."""
    try:
        _CLEAR_REFS.write_text("5")
        return True
    except OSError:
        return False


def current_rss_mb() -> float | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def peak_rss_mb() -> float:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024  # bytes on macOS, kB on Linux
