"""Errors raised for bad user input; their message is meant to be shown as one line, and
:func:`one_line`, the one way the suite turns any exception into such a line."""

import re
import sysconfig
import traceback
from pathlib import Path

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")


def one_line(exc: BaseException, limit: int = 300, *, with_type: bool = True) -> str:
    """``Type: first line of the message`` (or just the first line), for a terminal line or a results
    column: tracebacks and multi-line compiler output never reach the user.

    Terminal colour codes are dropped (torch.export colours its errors), the first line that says
    something is used (not a blank or a rule), an introducing line ("... failed. Next steps:") keeps
    the line it introduces (unless the exception was raised from another: then that cause is said, with the
    line of user code it came from), and an empty message gives the exception's type name.
    """
    lines = [line.strip() for line in _ANSI.sub("", str(exc)).splitlines() if line.strip("-=*_ ")]
    text = lines[0] if lines else ""
    if text.endswith(":") and exc.__cause__ is not None:  # a wrapper's advice ("Next steps:"): say the cause
        where = _user_frame(exc.__cause__)
        cause = one_line(exc.__cause__, limit)
        text = f"{text.split('. ')[0].rstrip('.:')}" + (f" at {where}" if where else "") + f": {cause}"
    elif text.endswith(":") and len(lines) > 1:
        text = f"{text} {lines[1]}"
    if not text:
        return type(exc).__name__[:limit]
    return (f"{type(exc).__name__}: {text}" if with_type else text)[:limit]


_SUITE = str(Path(__file__).resolve().parents[1] / "bench")
"""The suite's own code: never the line to name (the call that exported the network, say)."""


def _user_frame(exc: BaseException) -> str | None:
    """``file.py:LINE `code``` of the last frame of ``exc``'s traceback outside installed packages, the standard
    library and the suite itself: the line of the network that torch.export could not trace, say."""
    stdlib = sysconfig.get_paths()["stdlib"]
    frames = [
        f
        for f in traceback.extract_tb(exc.__traceback__)
        if Path(f.filename).is_file() and not f.filename.startswith((stdlib, _SUITE)) and "-packages" not in f.filename
    ]
    if not frames:
        return None
    code = (frames[-1].line or "").split("  #")[0].strip()
    return f"{Path(frames[-1].filename).name}:{frames[-1].lineno}" + (f" `{code}`" if code else "")


class ModelError(ValueError):
    """Base class: a request about a model that cannot be honoured."""


class UnknownModelError(ModelError):
    pass


class CheckpointError(ModelError):
    pass
