"""``python -m bench``: one sub-command per module, each with ``add_arguments`` and ``main``.

Every expected failure (bad input, a backend that cannot run here) is a :class:`BenchError` or a
:class:`models.ModelError` and becomes one line on stderr with exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import threading
from collections.abc import Sequence

import bench.backends  # noqa: F401 - installs the backend registry the core consults (bench.core.interface.runtime)
from bench.core.errors import BenchError, Terminated, stop_status
from models.errors import ModelError

# sub-command -> module implementing it (kept lazy: importing torch/onnx for `--help` is slow)
COMMANDS = {
    "list": "bench.commands.list",
    "run": "bench.commands.run",
    "flops": "bench.commands.flops",
    "complexity": "bench.commands.complexity",
    "report": "bench.commands.report",
    "compare": "bench.commands.compare",
    "accuracy": "bench.commands.accuracy",
    "doctor": "bench.commands.doctor",
    "export": "bench.commands.export",
    "import": "bench.commands.import_results",
}

SUMMARIES = {
    "list": "print the model zoo with its published numbers (model cards)",
    "run": "measure latency/throughput of models on a runtime backend",
    "flops": "count GMACs with fvcore and FlopCounterMode, beside the published numbers",
    "complexity": "verify the CATM complexity model (47+10b)HWC and linear-in-tokens scaling",
    "report": "paper-style tables and plots from results directories",
    "compare": "compare two result sets, drift-corrected; exit 1 on regression",
    "accuracy": "measured top-1/top-5 of a checkpoint on an image folder, per runtime, with official preprocessing",
    "export": "write the deployable artifacts exactly as benchmarked, with a manifest",
    "import": "rows from the runtimes' own benchmark tools (benchmark_app, litert-benchmark, ...) run on a device",
    "doctor": "check whether this machine is fit to benchmark on now (governor, SMT, load, steal, ...)",
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line + exit 2, like every other bad input
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m bench",
        description="Latency benchmarking suite for efficient mobile vision backbones.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    # Only the chosen sub-command's module is imported (others show their one-line summary).
    chosen = next((a for a in argv if a in COMMANDS), None)
    for name, module_name in COMMANDS.items():
        command = sub.add_parser(name, help=SUMMARIES[name], description=SUMMARIES[name])
        if name == chosen:
            module = importlib.import_module(module_name)
            module.add_arguments(command)
            command.set_defaults(handler=module.main)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(argv).parse_args(argv)
    previous = _sigterm_like_ctrl_c()
    try:
        return int(args.handler(args) or 0)
    except (BenchError, ModelError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (Terminated): each command has said what it kept
        if not getattr(exc, "reported", False):
            print("stopped by SIGTERM" if isinstance(exc, Terminated) else "interrupted", file=sys.stderr)
        return stop_status(exc)
    except BrokenPipeError:  # e.g. `python -m bench list | head`
        sys.stderr.close()
        return 0
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _terminate(signum: int, frame: object) -> None:
    raise Terminated()


def _sigterm_like_ctrl_c() -> object | None:
    """SIGTERM raises :class:`Terminated` (a KeyboardInterrupt), so every place that keeps what finished at a
    Ctrl-C does so at a ``kill`` too and says how to resume; returns the handler to restore."""
    if threading.current_thread() is not threading.main_thread():
        return None
    previous = signal.signal(signal.SIGTERM, _terminate)
    return previous if previous is not None else signal.SIG_DFL
