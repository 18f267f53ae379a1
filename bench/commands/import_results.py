"""``bench import``: results of the runtimes' own benchmark tools, as rows of this suite.

A researcher runs the artifacts of ``bench export`` on a phone or a board with the vendor's tool (the
manifest lists the exact command per artifact), copies the outputs back and imports them. Each
output is read by :mod:`bench.core.importers`, tied to its artifact through the export manifest
(SHA-256 of the named file when it is at hand, else its file name, else the output's own file name)
and written as one run directory per tool: ``environment.json`` describes the *device* (from
``--device-name`` / ``--device-file``), so ``report`` gives the sitting a column of its own labelled with
device and tool, and ``compare`` never matches it against another device.

Everything is read and checked before anything is written: one bad file means no run directory.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import platform
import shutil
import socket
import time
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.backends import ALL_PRECISIONS, BACKENDS
from bench.core import arguments
from bench.core.errors import BenchError
from bench.core.importers import ImportFailure, Measurement, formats, parse_file
from bench.core.interface.artifacts import tree_digest
from bench.core.measure.stats import summarize, throughput
from bench.core.records import store
from bench.core.records.environment import cpu_model, package_versions
from bench.core.records.schema import (
    SCHEMA_VERSION,
    STATUS_FAILED,
    STATUS_OK,
    SUITE_ID,
    RoundRecord,
    SummaryRow,
    identify,
)
from bench.core.records.store import RunWriter
from bench.core.util import check_writable_dir, one_line, parse_document, read_input_file, special_file_kind

DEVICE_KEYS = ("device", "soc", "os", "runtime_version", "threads", "delegate", "power_state", "notes")
"""What ``--device-file`` may say (``device`` is required); anything else is a typo and an error."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("files", nargs="+", type=Path, metavar="FILE", help="tool outputs to import")
    p.add_argument("--manifest", type=Path, default=None, help="manifest.json written by bench export")
    p.add_argument("--artifact", default=None, help="the manifest entry (file name or sha256 prefix) of every FILE")
    p.add_argument("--format", default=None, choices=[f.name for f in formats()], help="skip detection")
    device = p.add_mutually_exclusive_group()
    device.add_argument(
        "--device-name", default=None, help='what ran it, e.g. "Pixel 8 (Tensor G3)" (default: this machine)'
    )
    device.add_argument(
        "--device", dest="device_name", action=arguments.renamed("--device-name"), help=argparse.SUPPRESS
    )
    device.add_argument("--device-file", type=Path, default=None, help=f"TOML or JSON with {', '.join(DEVICE_KEYS)}")
    p.add_argument("--out", type=Path, default=Path("results"), help="results directory (default: results/)")
    alone = p.add_argument_group("without a manifest")
    alone.add_argument("--model", default=None, help="the model the outputs measured")
    alone.add_argument("--backend", default=None, choices=list(BACKENDS), help="the suite backend of the artifact")
    alone.add_argument("--batch", type=int, default=1, metavar="N", help="(default: 1)")
    alone.add_argument("--resolution", type=int, default=None, metavar="PX", help="(default: the model's own)")
    alone.add_argument("--precision", default="fp32", choices=ALL_PRECISIONS, help="(default: fp32)")
    p.epilog = "exit status: 0 imported, 2 bad input (nothing written)"


# ------------------------------------------------------------------------------------------ device


MAX_DEVICE_TEXT = {"notes": 1000}
"""The longest text a device fact may be (characters), by key; 200 for the others (names, versions)."""


def _hidden_character(text: str) -> tuple[int, str] | None:
    """The first character of ``text`` a report cannot show as it is: a control (NUL, line break, tab, ESC of an
    ANSI sequence), a format character (the bidi overrides such as U+202E, zero widths) or a lone surrogate."""
    for i, c in enumerate(text):
        if unicodedata.category(c) in ("Cc", "Cf", "Cs", "Zl", "Zp"):
            return i, c
    return None


def check_device_text(text: str, where: str, key: str = "device") -> str:
    """``text`` (a device fact from a flag or a file) with its line breaks and tabs folded into single spaces, when
    every report can print it, else a one-line error: it lands in table headers, figure labels, CSV cells and
    LaTeX captions, where an ESC (ANSI colours), NUL or bidi override would hide or reorder what is shown."""
    text = " ".join(text.split())
    hidden = _hidden_character(text)
    if hidden is not None:
        raise BenchError(
            f"{where}: {key} holds the control or invisible character U+{ord(hidden[1]):04X} at position "
            f"{hidden[0] + 1}; give it as plain text"
        )
    limit = MAX_DEVICE_TEXT.get(key, 200)
    if len(text) > limit:
        raise BenchError(f"{where}: {key} is {len(text)} characters long (at most {limit})")
    return text


def _told_text(text: object) -> str:
    """A device fact a tool's output reported: its hidden characters dropped and its length bounded."""
    return "".join(c for c in str(text) if _hidden_character(c) is None)[:200]


def device_description(args: argparse.Namespace, found: Sequence[Measurement]) -> dict[str, object]:
    """The device the outputs came from: the flag, the file, what the output says, or this machine."""
    if args.device_name is not None:
        if not args.device_name.strip():
            raise BenchError("--device-name is empty")
        return {"device": check_device_text(args.device_name, "--device-name")}
    if args.device_file is not None:
        return _device_file(args.device_file)
    told = next((m.device_info for m in found if m.device_info), None)
    if told:  # ExecuTorch's app says brand, model and OS
        name = " ".join(_told_text(v) for v in (told.get("device"), told.get("arch")) if v).strip()
        return {"device": name or "unknown device", "os": _told_text(told.get("os", ""))}
    return {"device": socket.gethostname(), "soc": cpu_model(), "this_machine": True}


def _device_file(path: Path) -> dict[str, object]:
    kind = "JSON" if path.suffix.lower() == ".json" else "TOML"
    try:
        data = parse_document(read_input_file(path).decode("utf-8"), kind.lower())
    except UnicodeDecodeError:
        raise BenchError(f"{path}: not {kind} (not UTF-8 text)") from None
    except ValueError as exc:  # the parsers' errors, and nesting too deep
        raise BenchError(f"{path}: not {kind} ({one_line(exc, with_type=False)})") from None
    if not isinstance(data, dict):
        raise BenchError(f"{path}: not a table of device facts")
    unknown = sorted(set(data) - set(DEVICE_KEYS))
    if unknown:
        raise BenchError(f"{path}: unknown key(s) {', '.join(unknown)} (known: {', '.join(DEVICE_KEYS)})")
    if not str(data.get("device", "")).strip():
        raise BenchError(f"{path}: needs a 'device' name")
    threads = data.get("threads")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise BenchError(f"{path}: threads {threads!r} is not a positive whole number")
    version = data.get("runtime_version")
    if isinstance(version, dict):  # one version per runtime: {onnx = "1.17.3", openvino = "2024.4"}
        unknown = sorted(str(k) for k in version if k not in BACKENDS)
        if unknown:
            raise BenchError(f"{path}: runtime_version names unknown runtime(s) {', '.join(unknown)}")
        data["runtime_version"] = {str(k): str(v) for k, v in version.items()}
    elif isinstance(version, list):
        raise BenchError(f"{path}: runtime_version is a version or a table of one version per runtime")
    for key, value in data.items():
        if isinstance(value, list | dict) and key != "runtime_version":
            raise BenchError(f"{path}: {key} is a table or list, not text")
        if isinstance(value, dict):
            data[key] = {k: check_device_text(str(v), str(path), f"{key}.{k}") for k, v in value.items()}
        elif key != "threads":
            data[key] = check_device_text(str(value), str(path), key)
    return dict(data)


def runtime_version_of(device: Mapping[str, object], backend: str) -> str | None:
    """The version ``--device-file`` gives for ``backend``'s runtime: a table's entry, or the one version."""
    version = device.get("runtime_version")
    if isinstance(version, dict):
        return version.get(backend)
    return str(version) if version else None


def check_runtime_version(device: Mapping[str, object], backends: set[str], where: object) -> None:
    """One ``runtime_version`` string stamps one runtime: outputs of several runtimes need a table."""
    if isinstance(device.get("runtime_version"), str) and len(backends) > 1:
        raise BenchError(
            f"{where}: runtime_version {device['runtime_version']!r} is one version, but the outputs ran "
            f"{len(backends)} runtimes ({', '.join(sorted(backends))}): give one per runtime, e.g. "
            f'runtime_version = {{ {sorted(backends)[0]} = "..." }}'
        )


def device_environment(
    device: Mapping[str, object], tool: str, backend_packages: Sequence[str], backend: str = ""
) -> dict[str, object]:
    """``environment.json`` of an imported sitting: the device stands where a run has its machine."""
    identity = {"device": dict(device), "tool": tool}
    env_id = "imp-" + hashlib.sha1(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:8]
    local = bool(device.get("this_machine"))
    versions = package_versions() if local else {}
    version = runtime_version_of(device, backend)
    if not local and version:  # the tool's own runtime only: never stamped onto another runtime's package
        versions = {p: version for p in backend_packages[:1]}
    return {
        "suite": SUITE_ID,
        "schema_version": SCHEMA_VERSION,
        "env_id": env_id,
        "imported": True,
        "source_tool": tool,
        "device": dict(device),
        "device_name": str(device["device"]),
        "hostname": str(device["device"]),
        "cpu_model": str(device.get("soc") or device["device"]),
        "cpu_count": None,
        "os": str(device.get("os") or (platform.platform() if local else "unknown OS")),
        "python": platform.python_version() if local else None,
        "versions": versions,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


# ---------------------------------------------------------------------------------------- matching


@dataclass
class Target:
    """What an imported measurement measured: a manifest entry, or the --model flags."""

    model: str
    backend: str
    batch: int
    resolution: int
    precision: str
    backend_options: dict[str, object]
    weights: str
    single_head: bool
    file: str | None
    matched_by: str


def load_manifest(path: Path) -> list[dict[str, object]]:
    """The manifest's entries (read by :func:`bench.core.records.store.load_manifest`), as the matching uses them."""
    entries = [e.as_dict() for e in store.load_manifest(path)]
    if not entries:
        raise BenchError(f"{path}: lists no artifacts")
    return entries


def _stem(name: str) -> str:
    return name.split(".", 1)[0]


def _names(candidate: str) -> list[str]:
    """Path components of a path as a tool printed it (device paths, Windows paths)."""
    return [c for c in candidate.replace("\\", "/").split("/") if c]


def match_entry(
    m: Measurement, entries: Sequence[dict[str, object]], artifact: str | None
) -> tuple[dict[str, object], str]:
    """The manifest entry ``m`` measured, and how it was found; a one-line error when none or several."""
    usable = [e for e in entries if m.backend is None or e.get("backend") == m.backend]
    if artifact is not None:
        chosen = [
            e
            for e in entries
            if artifact in (e["file"], _stem(str(e["file"]))) or str(e.get("sha256", "")).startswith(artifact)
        ]
        return _one(m, chosen, f"--artifact {artifact}", "--artifact")
    if m.artifact:
        local = Path(m.artifact)
        for here in (local, m.source.parent / local):
            digest = artifact_digest(here)
            by_sha = [e for e in entries if digest is not None and e.get("sha256") == digest]
            if by_sha:
                return _one(m, by_sha, f"the SHA-256 of {here}", "sha256")
        parts = _names(m.artifact)
        by_name = [e for e in usable if e["file"] in parts or (parts and _stem(parts[-1]) == _stem(str(e["file"])))]
        if by_name:
            return _one(m, by_name, f"the file name {m.artifact}", "file name")
    parts = _names(str(m.source.resolve()))[-3:]
    by_output = [e for e in usable if any(p == e["file"] or _stem(p) == _stem(str(e["file"])) for p in parts)]
    if by_output:
        return _one(m, by_output, f"the output's own path {m.source}", "output file name")
    named = m.artifact or m.source.name
    raise ImportFailure(m.source, m.line, f"artifact {named} is not in the manifest (use --artifact to name its entry)")


MAX_IR_FOLDER_ENTRIES = 16
"""An OpenVINO IR folder holds model.xml, model.bin and a few more; a folder with more is not one."""


def artifact_digest(path: Path) -> str | None:
    """The SHA-256 an export manifest would list for the artifact an output names, or None when ``path``
    cannot be one: only a non-empty regular file is hashed (an output naming ``/``, ``/usr``, a FIFO or
    ``/proc/self/mem`` is matched by name instead), and a ``model.xml``'s folder only when it is a small
    flat folder of regular files (an IR), never a tree walk."""
    try:
        info = os.stat(path)
        if special_file_kind(info.st_mode) is not None or info.st_size == 0:  # /proc files say size 0
            return None
        if path.name != "model.xml":
            return tree_digest(path)
        folder = path.parent
        with os.scandir(folder) as scan:
            entries = [e for _, e in zip(range(MAX_IR_FOLDER_ENTRIES + 1), scan, strict=False)]
        if len(entries) > MAX_IR_FOLDER_ENTRIES or not all(e.is_file() for e in entries):
            return None
        return tree_digest(folder)
    except (OSError, ValueError):
        return None


def _one(m: Measurement, chosen: list[dict[str, object]], how: str, matched_by: str) -> tuple[dict[str, object], str]:
    if not chosen:
        raise ImportFailure(m.source, m.line, f"{how} names no artifact of the manifest")
    if len({e["file"] for e in chosen}) > 1:
        files = ", ".join(sorted({str(e["file"]) for e in chosen}))
        raise ImportFailure(m.source, m.line, f"{how} fits several artifacts ({files}): name one with --artifact")
    return chosen[-1], matched_by


def target_of(m: Measurement, args: argparse.Namespace, entries: Sequence[dict[str, object]] | None) -> Target:
    if entries is not None:
        entry, how = match_entry(m, entries, args.artifact)
        backend = str(entry.get("backend"))
        if m.backend is not None and backend != m.backend:
            raise ImportFailure(
                m.source, m.line, f"{entry['file']} was exported for {backend}, but {m.tool} runs {m.backend}"
            )
        shape = entry["input_shape"]
        if not (isinstance(shape, list) and len(shape) == 4 and all(isinstance(v, int) for v in shape)):
            raise BenchError(f"{args.manifest}: {entry['file']} has no NCHW input_shape")
        options = entry.get("backend_options") if isinstance(entry.get("backend_options"), dict) else {}
        return Target(
            model=str(entry["model"]),
            backend=backend,
            batch=shape[0],
            resolution=shape[2],
            precision=str(entry.get("precision", "fp32")),
            backend_options=dict(options),  # type: ignore[arg-type]
            weights=str(entry.get("weights", "unknown")),
            single_head=bool(entry.get("single_head", False)),
            file=str(entry["file"]),
            matched_by=how,
        )
    if args.model is None:
        raise ImportFailure(m.source, m.line, "no --manifest: name the model with --model (and --batch, --resolution)")
    backend = m.backend or args.backend
    if backend is None:
        raise ImportFailure(
            m.source, m.line, f"{m.tool} does not say which runtime it ran: give --backend or --manifest"
        )
    if args.backend is not None and m.backend is not None and args.backend != m.backend:
        raise ImportFailure(m.source, m.line, f"--backend {args.backend}, but {m.tool} runs {m.backend}")
    resolution = args.resolution
    if resolution is None:
        import models

        try:
            resolution = models.get_card(args.model).default_resolution
        except models.ModelError:
            raise BenchError(f"--model {args.model} is not in the zoo: give --resolution") from None
    return Target(args.model, backend, args.batch, resolution, args.precision, {}, "unknown", False, None, "--model")


# ------------------------------------------------------------------------------------------- rows


def build_row(m: Measurement, target: Target, device: Mapping[str, object], env_id: str) -> SummaryRow:
    """The summary row of one measurement: the tool's numbers, nothing it did not print."""
    if m.batch is not None and m.batch != target.batch:
        raise ImportFailure(m.source, m.line, f"{m.tool} ran batch {m.batch}, the artifact has batch {target.batch}")
    digest = hashlib.sha256(read_input_file(m.source)).hexdigest()
    row = SummaryRow().set(
        model=target.model,
        infer_img_size=target.resolution,
        infer_batch_size=target.batch,
        backend=target.backend,
        device=m.unit or _unit_of_device(device),
        precision=target.precision,
        threads=m.threads or device.get("threads"),
        channels_last=False,
        compile=False,
        backend_options=json.dumps(target.backend_options, sort_keys=True),
        weights=target.weights,
        single_head=target.single_head,
        source_tool=m.tool,
        aggregate_only=m.samples_ms is None,
        env_id=env_id,
        timestamp=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    )
    detail: dict[str, object] = {
        "tool": m.tool,
        "source": str(m.source),
        "source_sha256": digest[:16],
        "artifact": target.file or "",
        "artifact_as_named": m.artifact or "",
        "matched_by": target.matched_by,
        **m.detail,
    }
    if m.failed is not None:
        row.set(status=STATUS_FAILED, error=m.failed)
    else:
        if m.samples_ms is not None:
            stats = summarize(m.samples_ms)
            iterations = len(m.samples_ms)
            detail["headline"] = "median"
        else:
            stats = dict(m.stats)
            iterations = m.iterations
            detail["headline"] = m.headline
        row.set(status=STATUS_OK, iterations=iterations, rounds=1, **stats)
        median = stats.get("latency_median_ms")
        mean = stats.get("latency_mean_ms")
        if median is not None:
            row.set(round_medians_ms=json.dumps([median]), round_spread=0.0)
            row.set(throughput_median_ips=throughput(target.batch, median))
        if mean is not None:
            row.set(infer_step_time=mean, infer_samples_per_sec=throughput(target.batch, mean))
    row.set(
        warmup_iterations=m.warmup_iterations,
        first_inference_ms=m.first_inference_ms,
        load_s=m.load_s,
        peak_rss_mb=m.peak_rss_mb,
        runtime_detail=json.dumps(detail, sort_keys=True, default=str),
    )
    identify(row, {"import": m.tool, "source": digest})
    return row


def _source_sha256(row: SummaryRow) -> str:
    return str(json.loads(str(row.runtime_detail)).get("source_sha256", ""))


def _refuse_repeats(by_tool: Mapping[str, list[tuple[Measurement, SummaryRow]]]) -> None:
    """Within one import: the same output twice (same bytes, under any name), or two outputs of one setting
    from one tool (one sitting cannot hold one cell twice: import them one at a time, as two sittings)."""
    seen: dict[str, Path] = {}
    cells: dict[tuple[object, ...], Measurement] = {}
    for items in by_tool.values():
        sources = {}
        for m, row in items:
            sources.setdefault(m.source, row)
        for source, row in sources.items():
            digest = _source_sha256(row)
            if digest in seen and seen[digest] != source:
                raise BenchError(f"{source} is the same output as {seen[digest]} (same SHA-256): import it once")
            seen[digest] = source
        for m, row in items:
            cell = (row.model, row.infer_batch_size, row.infer_img_size, row.backend, row.device, row.precision,
                    row.threads, row.backend_options, row.weights, m.tool)  # fmt: skip
            if cell in cells and row.status == STATUS_OK and cells[cell] is not m:
                first = cells[cell]
                raise BenchError(
                    f"{first.source}:{first.line} and {m.source}:{m.line} both measured {row.model} batch "
                    f"{row.infer_batch_size} on {row.backend} with {m.tool}: one sitting holds a setting once, "
                    "so import them in two calls (two sittings, two report columns)"
                )
            if row.status == STATUS_OK:
                cells[cell] = m


def _refuse_imported_before(out: Path, by_tool: Mapping[str, list[tuple[Measurement, SummaryRow]]]) -> None:
    """An output whose bytes an earlier import into ``out`` recorded (its SHA-256 is in every row it gave)
    would give the report a duplicate column: refused, nothing written."""
    mine = {_source_sha256(row): m.source for items in by_tool.values() for m, row in items}
    if not Path(out).is_dir():
        return
    for summary in sorted(Path(out).glob(f"*/{store.SUMMARY_FILE}")):
        try:
            with open(summary, encoding="utf-8", newline="") as f:
                details = [r.get("runtime_detail") or "" for r in csv.DictReader(f) if r.get("source_tool")]
        except (OSError, UnicodeDecodeError, csv.Error):
            continue
        for detail in details:
            try:
                digest = json.loads(detail).get("source_sha256")
            except (ValueError, AttributeError):
                continue
            if digest in mine:
                raise BenchError(f"{mine[digest]} was imported before, into {summary.parent}: nothing written")


def _unit_of_device(device: Mapping[str, object]) -> str:
    from bench.core.importers import unit_of

    return unit_of(str(device.get("delegate") or "")) or "cpu"


# -------------------------------------------------------------------------------------------- main


def main(args: argparse.Namespace) -> int:
    from bench.backends import backend_class, backend_for_tool

    entries = load_manifest(args.manifest) if args.manifest is not None else None
    if args.batch < 1 or (args.resolution is not None and args.resolution < 1):
        raise BenchError("--batch and --resolution must be positive")
    named: dict[Path, Path] = {}
    for path in args.files:
        key = path.resolve() if path.exists() else path
        if key in named:
            raise BenchError(f"{path} is listed twice ({named[key]}): import it once")
        named[key] = path
    found: list[Measurement] = []
    for path in args.files:
        found.extend(parse_file(path, args.format))
    for m in found:
        m.backend = backend_for_tool(m.tool)
    device = device_description(args, found)
    by_tool: dict[str, list[tuple[Measurement, SummaryRow]]] = {}
    envs: dict[str, dict[str, object]] = {}
    targets = [target_of(m, args, entries) for m in found]
    check_runtime_version(device, {t.backend for t in targets}, args.device_file)
    for m, target in zip(found, targets, strict=True):
        if m.tool not in envs:
            envs[m.tool] = device_environment(device, m.tool, backend_class(target.backend).packages, target.backend)
        by_tool.setdefault(m.tool, []).append((m, build_row(m, target, device, str(envs[m.tool]["env_id"]))))
    _refuse_repeats(by_tool)
    _refuse_imported_before(args.out, by_tool)
    out = check_writable_dir(args.out, "--out")
    written: list[tuple[str, RunWriter]] = []
    try:
        for tool, items in by_tool.items():
            writer = RunWriter.create(out, f"import-{tool}", envs[tool])
            written.append((tool, writer))
            for m, row in items:
                if m.samples_ms is not None:
                    record = RoundRecord(round=0, iterations=len(m.samples_ms), median_ms=row.latency_median_ms)
                    writer.add_round(row, record, m.samples_ms)
                writer.add(row)
    except BaseException:
        for _, writer in written:  # all or nothing: a half-imported sitting would pass for a whole one
            shutil.rmtree(writer.directory, ignore_errors=True)
        raise
    for tool, writer in written:
        print(f"{writer.directory}: {writer.rows_written} row(s) from {tool} on {envs[tool]['device_name']}")
    return 0
