"""The one exception type the command line turns into a one-line message and exit code 2."""


class BenchError(Exception):
    """Bad input or an impossible request (unknown backend, no GPU, unwritable output, ...)."""

    exit_code = 2


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, a scheduler, a shutting-down session), handled like Ctrl-C: what finished is kept
    and the command says so, then exits with 143 (128 + SIGTERM)."""


def stop_word(exc: BaseException) -> str:
    """How an interrupt is named in the message saying what was kept."""
    return "stopped by SIGTERM" if isinstance(exc, Terminated) else "interrupted"


def stop_status(exc: BaseException) -> int:
    """The exit status of a command ended by this interrupt: 143 for SIGTERM, 130 for Ctrl-C."""
    return 143 if isinstance(exc, Terminated) else 130
