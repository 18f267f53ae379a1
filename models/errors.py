"""Errors raised for bad user input; their message is meant to be shown as one line, and
:func:`one_line`, the one way the suite turns any exception into such a line."""

import re

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")


def one_line(exc: BaseException, limit: int = 300, *, with_type: bool = True) -> str:
    """``Type: first line of the message`` (or just the first line), for a terminal line or a results
    column: tracebacks and multi-line compiler output never reach the user.

    Terminal colour codes are dropped (torch.export colours its errors), the first line that says
    something is used (not a blank or a rule), an introducing line ("... failed. Next steps:") keeps
    the line it introduces, and an empty message gives the exception's type name.
    """
    lines = [line.strip() for line in _ANSI.sub("", str(exc)).splitlines() if line.strip("-=*_ ")]
    text = lines[0] if lines else ""
    if text.endswith(":") and len(lines) > 1:
        text = f"{text} {lines[1]}"
    if not text:
        return type(exc).__name__[:limit]
    return (f"{type(exc).__name__}: {text}" if with_type else text)[:limit]


class ModelError(ValueError):
    """Base class: a request about a model that cannot be honoured."""


class UnknownModelError(ModelError):
    pass


class CheckpointError(ModelError):
    pass
