"""Measured top-1 on disk: ``bench accuracy`` writes ``accuracy.json`` beside latency runs; reports read it here."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from bench.core.runtime import registry
from bench.core.schema import SUITE_ID

RESULT_FILE = "accuracy.json"


def _result_files(paths: Iterable[Path | str]) -> list[Path]:
    found: list[Path] = []
    for p in map(Path, paths):
        base = p.parent if p.is_file() else p
        for pattern in (RESULT_FILE, f"*/{RESULT_FILE}", f"*/*/{RESULT_FILE}"):
            found.extend(sorted(base.glob(pattern)))
    return list(dict.fromkeys(found))


def measured_top1(paths: Iterable[Path | str]) -> dict[str, dict[str, object]]:
    """``model -> {top1, source, weights}`` from the ``accuracy.json`` files under ``paths``.

    Per model the latest torch fp32 measurement is used, else the latest of any runtime; files that are
    not this suite's are ignored.
    """
    chosen: dict[str, tuple[tuple, dict[str, object]]] = {}
    eager = registry().eager
    for path in _result_files(paths):
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            continue
        if not isinstance(document, dict) or document.get("suite") != SUITE_ID or document.get("kind") != "accuracy":
            continue
        data = document.get("data") if isinstance(document.get("data"), dict) else {}
        for r in document.get("results") or []:
            if not isinstance(r, dict) or r.get("status") != "ok" or not isinstance(r.get("top1"), int | float):
                continue
            reference = r.get("backend") == eager and r.get("precision") == "fp32"
            rank = (reference, str(r.get("timestamp")))
            previous = chosen.get(str(r["model"]))
            if previous is not None and previous[0] >= rank:
                continue
            pre = r.get("preprocessing") if isinstance(r.get("preprocessing"), dict) else {}
            source = (
                f"measured here (bench accuracy, {r.get('backend')} {r.get('precision')}): weights {r.get('weights')}, "
                f"{r.get('images')} images of {data.get('path')} ({str(r.get('data_content_sha256'))[:12]}), "
                f"{pre.get('summary', 'declared preprocessing')}"
            )
            chosen[str(r["model"])] = (rank, {"top1": float(r["top1"]), "source": source, "weights": r.get("weights")})
    return {model: found for model, (_, found) in chosen.items()}
