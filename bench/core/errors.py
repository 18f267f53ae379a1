"""The one exception type the command line turns into a one-line message and exit code 2."""


class BenchError(Exception):
    """Bad input or an impossible request (unknown backend, no GPU, unwritable output, ...)."""

    exit_code = 2
