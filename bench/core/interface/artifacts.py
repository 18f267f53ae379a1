"""The export/conversion cache every backend shares: keyed, checksummed, rebuilt when damaged.

An entry is an artifact (a file, or a directory such as an ``.mlpackage``) plus a JSON file beside it
holding the key it was built for and the SHA-256 of its bytes, written last. An entry is used only
when its key matches, its bytes still hash to the recorded value and the backend's own check (if
any) passes; anything else is removed and rebuilt. Builds happen in a temporary directory and are
moved into place, so a crash or a concurrent run never leaves a half-written artifact in use.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bench.core.util import (
    atomic_write_text,
    feed_file,
    json_digest,
    one_line,
    read_own_document,
    special_file_kind,
)


def weights_digest(model: nn.Module) -> str:
    """Hash of every tensor in the state dict (name, dtype, shape, bytes): other weights, other key."""
    h = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:16]


def tree_digest(path: Path) -> str:
    """SHA-256 of a file, or of the relative paths and contents of every file in a directory."""
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    if not files:
        raise FileNotFoundError(f"{path} has no files")
    for file in files:
        if file != path:
            h.update(file.relative_to(path).as_posix().encode() + b"\0")
        feed_file(h, file)
    return h.hexdigest()


def tree_mb(path: Path) -> float:
    """Size on disk of a file, or of every file under a folder (an OpenVINO IR, a Core ML package), in MB
    (2**20 bytes): what a phone downloads and stores for this network."""
    if path.is_dir():
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink()) / 2**20
    return path.stat().st_size / 2**20


def remove(path: Path) -> None:
    """Remove a file, link or folder of the cache; anything else (a pipe) is unlinked, never opened:
    ``shutil.rmtree`` opens its argument first and would wait on a pipe forever."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


@dataclass
class Entry:
    path: Path
    status: str
    """``hit``, ``miss`` or ``rebuilt: <why the old entry was refused>``."""
    meta: dict[str, Any]

    @property
    def hit(self) -> bool:
        return self.status == "hit"


def entry_path(cache_dir: Path, kind: str, stem: str, suffix: str, key: Mapping[str, Any]) -> Path:
    digest = json_digest(key, "sha256", 16)
    return Path(cache_dir) / kind / f"{stem}-{digest}{suffix}"


def _meta_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def _not_a_folder(folder: Path) -> str | None:
    """``folder`` or the first of its parents that exists but is no folder, said as what it is (``X (a named pipe,
    not a folder)``); None when every existing one is a folder (the error lies elsewhere: permissions, space)."""
    for part in (folder, *folder.parents):
        with contextlib.suppress(OSError):
            mode = part.stat().st_mode  # a link to a folder is a folder here, as for mkdir
            if not stat.S_ISDIR(mode):
                return f"{part} ({special_file_kind(mode) or 'a regular file'}, not a folder)"
            return None
    return None


def _problem(path: Path, key: Mapping[str, Any], check: Callable[[Path, dict], str | None] | None) -> tuple[dict, str]:
    """The entry's metadata and why it cannot be used ('' when it can)."""
    meta = read_own_document(_meta_path(path))  # a regular file only: a planted pipe would block the run
    if meta is None:
        return {}, "metadata unreadable"
    if not isinstance(meta, dict) or meta.get("key") != json.loads(json.dumps(key, default=str)):
        return {}, "metadata does not match"
    try:
        if tree_digest(path) != meta.get("sha256"):
            return meta, "artifact changed since it was written"
        problem = check(path, meta) if check is not None else None
    except Exception as exc:  # any failure to read the artifact means: rebuild it
        return meta, f"artifact unreadable ({one_line(exc)})"
    return meta, problem or ""


def cached(
    path: Path,
    key: Mapping[str, Any],
    build: Callable[[Path], Mapping[str, Any] | None],
    check: Callable[[Path, dict], str | None] | None = None,
) -> Entry:
    """The valid entry at ``path``, or a fresh one made by ``build(staging_path)``.

    ``build`` writes the artifact to the path it is given and may return extra metadata to keep;
    ``check(path, meta)`` returns why a cached artifact is unusable (None if it is usable).
    """
    status = "miss"
    if path.exists() or _meta_path(path).exists():
        meta, problem = _problem(path, key, check)
        if not problem:
            return Entry(path, "hit", meta)
        status = f"rebuilt: {problem}"[:200]
        evict(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = tempfile.TemporaryDirectory(dir=path.parent, prefix=".build-")
    except OSError as exc:
        what = _not_a_folder(path.parent)
        raise RuntimeError(f"cannot use the cache folder {what or path.parent}: {exc.strerror or exc}") from None
    with staging as tmp:
        staged = Path(tmp) / path.name
        extra = dict(build(staged) or {})
        meta = {**extra, "key": json.loads(json.dumps(key, default=str)), "sha256": tree_digest(staged)}
        if check is not None and (problem := check(staged, meta)):
            raise RuntimeError(f"the fresh {path.suffix} artifact is unusable: {problem}")
        # A run beside this one may have finished the same entry meanwhile: keep its artifact
        # rather than replacing files it may be reading.
        if not _meta_path(path).exists() or _problem(path, key, check)[1]:
            remove(path)
            os.replace(staged, path)
            atomic_write_text(_meta_path(path), json.dumps(meta, indent=1, sort_keys=True))  # last: complete
    return Entry(path, status, meta)


def evict(path: Path) -> bool:
    """Remove an entry (artifact and metadata); True if anything was there."""
    existed = path.exists() or _meta_path(path).exists()
    remove(_meta_path(path))
    remove(path)
    return existed
