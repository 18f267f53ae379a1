"""Small helpers every part of the suite shares (one copy each): error lines, atomic writes, quiet libraries."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import stat
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.core.errors import BenchError
from models.errors import one_line as one_line  # the one exception-to-line helper (models cannot import bench)


def feed_file(digest: hashlib._Hash, path: Path | str) -> None:
    """Add a file's bytes to ``digest``, read in 1 MiB blocks (checkpoints and artifacts can be large). Only a
    regular file is read (:func:`open_regular`): a pipe planted in the cache would block the run forever."""
    with os.fdopen(open_regular(path), "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)


def sha256_file(path: Path | str) -> str:
    """Hex SHA-256 of a file's bytes: the one file hash of checkpoints, exports and manifests."""
    digest = hashlib.sha256()
    feed_file(digest, path)
    return digest.hexdigest()


def timestamp() -> str:
    """Now, as every record writes it: ISO 8601 local time with its UTC offset (``2026-11-25T02:10:00+0100``).
    Files written before this helper existed may lack the offset."""
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def json_digest(value: object, algorithm: str = "sha256", length: int | None = None) -> str:
    """Hex digest of ``value`` as canonical JSON (keys sorted, anything else as ``str``): the one hash of a
    key, whether it names a cached export, a row ``--resume`` may skip, an accuracy run or an environment.
    ``length`` cuts the hex digits (the stored keys keep their historical algorithm and length)."""
    text = json.dumps(value, sort_keys=True, default=str)
    return hashlib.new(algorithm, text.encode()).hexdigest()[:length]


MAX_INPUT_BYTES = 512 << 20
"""The most a file the user names is read (tool outputs, manifests, device files): far above any real one."""

_NOT_REGULAR = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a named pipe"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def special_file_kind(mode: int) -> str | None:
    """What a non-regular file is ("a named pipe", "a folder", ...), or None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    return next((kind for test, kind in _NOT_REGULAR if test(mode)), "not a regular file")


def open_regular(path: Path | str) -> int:
    """A read-only descriptor of ``path`` if it is a regular file; else a one-line :class:`BenchError` naming it.

    A named pipe would block forever (even its ``open``), a device such as ``/dev/zero`` (or a link to one)
    never ends, a folder has no bytes: none of them is read. The file is opened without blocking and checked
    through its open descriptor, so it cannot be swapped meanwhile.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except FileNotFoundError:
        raise BenchError(f"{path}: no such file") from None
    except OSError as exc:
        raise BenchError(f"{path}: unreadable ({exc.strerror or exc})") from None
    kind = special_file_kind(os.fstat(fd).st_mode)
    if kind is not None:
        os.close(fd)
        raise BenchError(f"{path}: {kind}, not a regular file: nothing was read from it")
    return fd


def read_input_file(path: Path | str, limit: int = MAX_INPUT_BYTES) -> bytes:
    """The bytes of a file the user named, read only if it is a regular file (:func:`open_regular`) of at
    most ``limit`` bytes; anything else is a one-line :class:`BenchError` without reading a byte."""
    fd = open_regular(path)
    try:
        info = os.fstat(fd)
        if info.st_size > limit:
            raise BenchError(f"{path}: {info.st_size / 2**20:.0f} MiB, more than the {limit >> 20} MiB this reads")
        chunks, size = [], 0
        while chunk := os.read(fd, 1 << 20):
            size += len(chunk)
            if size > limit:  # grew while being read, or a file whose size the kernel does not know
                raise BenchError(f"{path}: more than the {limit >> 20} MiB this reads")
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError as exc:
        raise BenchError(f"{path}: unreadable ({exc.strerror or exc})") from None
    finally:
        os.close(fd)


def parse_document(text: str, kind: str) -> object:
    """``text`` parsed as ``kind`` ("json" or "toml"); nesting too deep for the parser (a crafted file of
    100,000 brackets) raises ``ValueError`` like any other malformed document, never ``RecursionError``."""
    import json
    import tomllib

    try:
        return json.loads(text) if kind == "json" else tomllib.loads(text)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def read_own_document(path: Path | str) -> object | None:
    """A JSON document the suite keeps for itself (a cache entry's metadata, the GMACs cache, the machine's floor
    and sitting history, a results folder's accuracy.json), or None when it is missing, not a regular file (a
    planted pipe would block), too big, not UTF-8 or malformed: the caller starts it afresh or leaves it out."""
    try:
        return parse_document(read_input_file(path).decode("utf-8"), "json")
    except (BenchError, UnicodeDecodeError, ValueError):
        return None


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old file or the new one, never a torn one."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_output(path: Path, text: str) -> Path:
    """Write a report file (atomically); an OSError becomes a one-line :class:`BenchError`."""
    try:
        atomic_write_text(path, text if text.endswith("\n") else text + "\n")
    except OSError as exc:
        raise BenchError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path


def check_writable_dir(path: Path, what: str) -> Path:
    """Create ``path`` if needed and prove it takes a file, before any work is done (one-line error if not)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise BenchError(f"{what} {path} is a file, not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise BenchError(f"{what} {path} is not writable: {exc.strerror or exc}") from None
    return path


@contextlib.contextmanager
def quiet(*loggers: str) -> Iterator[None]:
    """Silence Python warnings, stdout chatter and the named loggers below ERROR (exporters, converters)."""
    saved = [(logging.getLogger(name), logging.getLogger(name).level) for name in loggers]
    for logger, _ in saved:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in saved:
            logger.setLevel(level)


EXPORT_LOGGERS = ("torch.export", "torch._export", "torch.fx", "torch._dynamo")
"""Where torch.export logs why it gave up ("Unable to find user code corresponding to {u0}", guards)."""


@contextlib.contextmanager
def quiet_export(*loggers: str) -> Iterator[None]:
    """:func:`quiet` for ``torch.export`` and the converters built on it (and ``loggers``): a failed export also
    prints its FX graphs to stderr, dozens of lines; the row's error says the cause in one line (``one_line``:
    the cause and the line of the network it came from), so none of it is shown."""
    with quiet(*EXPORT_LOGGERS, *loggers), contextlib.redirect_stderr(io.StringIO()):
        yield


class ExportError(RuntimeError):
    """``torch.export`` gave up on a network; raised from its error so that :func:`one_line` says the cause and
    the line of the network that triggered it, as it does for the ONNX dynamo exporter's own wrapper."""


def export_program(model: object, example: object) -> Any:
    """``torch.export.export(model, (example,))``, the one export OpenVINO, ExecuTorch, LiteRT and Core ML
    convert from; a failure is an :class:`ExportError` whose row error names the network's line
    (``branchy.py:13 `if y.mean() > 0:```) and the cause, not torch's advice."""
    import torch

    try:
        return torch.export.export(model, (example,))  # type: ignore[arg-type]
    except Exception as exc:
        raise ExportError("torch.export could not export the network:") from exc


def _flush_c_stdio() -> None:
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None).fflush(None)


@contextlib.contextmanager
def quiet_native(sink: list[str] | None = None) -> Iterator[None]:
    """Silence what native code writes to file descriptor 2 (runtimes' C++ log lines).

    The lines go to a temporary file and, if ``sink`` is given, are appended to it.
    """
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no usable fd 2 (embedded interpreters): nothing to silence
        yield
        return
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            _flush_c_stdio()  # native libraries may buffer stderr: write it out while it still points here
            os.dup2(saved, 2)
            os.close(saved)
            if sink is not None:
                capture.seek(0)
                sink.extend(line for line in capture.read().decode(errors="replace").splitlines() if line.strip())
