"""``bench accuracy``: measured top-1/top-5 of a checkpoint, with its family's official preprocessing, per runtime.

Data (``--data DIR``):

- an ImageFolder: ``DIR/<class>/**/<image>``; class indices follow the sorted folder names (torchvision's
  ``ImageFolder`` convention), or the standard ImageNet-1k indices when the folders are synset ids (a subset
  of ImageNet ``val/`` scores against the 1000-class head);
- a flat folder plus ``--labels FILE`` in a usual ILSVRC2012 val format: ``<image> <index>`` lines (0-based
  index in sorted-synset order, e.g. Caffe's ``val.txt``), ``<image>,<wnid> ...`` (Kaggle's
  ``LOC_val_solution.csv``; classes are the sorted synsets listed), or the devkit's
  ``ILSVRC2012_validation_ground_truth.txt`` (one ILSVRC2012 id per line for ``ILSVRC2012_val_%08d``),
  which needs the devkit's ``meta.mat`` beside it to map ids to synsets.

Images: ``.jpg .jpeg .png .ppm .bmp .pgm .tif .tiff .webp`` (any case), decoded with Pillow and converted to
RGB, then the model's declared evaluation preprocessing (:class:`models.registry.Preprocessing`): short
side resized with Pillow (``torchvision.transforms.Resize(int)`` sizes), center crop (torchvision's
offsets), ``/255``, mean/std. An unreadable image (or an entry that is not a regular file, or an image whose
resize would be huge) stops the run with its file name (exit 2) unless ``--skip-unreadable``, which skips
it, counts it and records it in the results; when nothing at all can be read, exit 2.

Runtimes: ``--backend torch,onnx`` evaluates the same images on each runtime (``prepare``/``load`` of the
backend at ``--batch-size``, ``session.predict``; the last batch is zero-padded, padding ignored), so
the top-1 drop per runtime is printed against the model's **baseline runtime**: the first runtime of
``--backend`` that evaluated it (one that failed to open or run is skipped). ``--precision fp32,int8`` scores
the same batches in each precision a runtime runs (torch: AMP fp16/bf16; int8: the runtime's own quantizer,
its parity gated by agreement), so the drop of each against the baseline (the first runtime at the first
precision) is paired: its 95% interval rests on the images whose top-1 verdicts differ between the two.

Results: ``<out>/<stamp>-accuracy-<pid>/accuracy.json`` (:mod:`bench.core.scoring.accuracy_results`: top-1,
top-5, counts, the preprocessing, the checkpoint's SHA-256, the data set and its fingerprint, the machine)
and ``per_class.csv``, written after each model; the tallies of the model in progress are saved as it
goes, so after Ctrl-C ``--resume`` continues where it stopped. ``bench report`` uses a measured top-1
instead of the published one only for the full ImageNet-1k val with real weights; other measurements
are shown apart, marked as a quick check.
Bad input (missing folder, no images, an unreadable image, classes that do not match the head): one
line, exit 2. A model that cannot be built or run, or a runtime that fails on a model: one line, a
failed result, the other runtimes and models go on, exit 1.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import time
from pathlib import Path

from bench.backends import (
    ALL_PRECISIONS,
    BACKENDS,
    EAGER_BACKEND,
    add_option_arguments,
    available_backend,
    backend_class,
    backend_list,
)
from bench.core import arguments
from bench.core.errors import BenchError, stop_status, stop_word
from bench.core.interface.sessions import SessionRefused, open_session, workload_facts
from bench.core.measure import pause
from bench.core.records.store import new_run_dir
from bench.core.scoring.accuracy import Progress, Tally, check_classes, evaluate, head_size, paired_drop
from bench.core.scoring.accuracy_results import (
    PARTIAL_FILE,
    PER_CLASS_COLUMNS,
    PER_CLASS_FILE,
    RESULT_FILE,
    AccuracyDocument,
    AccuracyResult,
    load_document,
)
from bench.core.scoring.datasets import Dataset, scan, shown, subset
from bench.core.util import (
    atomic_write_text,
    check_writable_dir,
    json_digest,
    one_line,
    parse_document,
    sha256_file,
    timestamp,
)
from models.errors import CheckpointError

__all__ = ["PER_CLASS_FILE", "RESULT_FILE", "add_arguments", "main"]
SAVE_EVERY_S = 2.0
"""Seconds between saves of the tallies in progress (and at every interrupt)."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.epilog = "exit status: 0 all evaluated, 1 a model or runtime failed, 2 bad input, 130 interrupted"
    arguments.add_models_argument(p, default=None)
    p.add_argument("--data", type=Path, required=True, metavar="DIR", help="ImageFolder, or flat folder with --labels")
    p.add_argument("--labels", type=Path, default=None, metavar="FILE", help="ILSVRC2012-style val labels (flat DIR)")
    p.add_argument("--checkpoint", type=Path, default=None, help="weights to evaluate (a single model only)")
    p.add_argument(
        "--backend",
        default=EAGER_BACKEND,
        metavar="NAME[,NAME...]",
        help=f"runtimes to evaluate on ({', '.join(BACKENDS)} or all); per model, the first that evaluates it is "
        f"the baseline runtime the others' top-1 drop is measured against (default {EAGER_BACKEND}: the "
        "framework's own eager runtime)",
    )
    arguments.add_device_argument(p)
    arguments.add_precision_argument(
        p,
        ALL_PRECISIONS,
        "precisions each runtime scores the same images in (torch: AMP fp16/bf16; int8: the "
        "runtime's own quantizer); each gets its top-1 and its paired drop against the baseline",
    )
    arguments.add_calibration_arguments(p)
    p.add_argument("--batch-size", type=arguments.count("--batch-size", 4096), default=32, metavar="N")
    arguments.add_resolution_argument(p)
    p.add_argument(
        "--limit", type=arguments.count("--limit"), default=None, metavar="N", help="N images, spread evenly"
    )
    p.add_argument("--skip-unreadable", action="store_true", help="skip (and count) images that cannot be decoded")
    p.add_argument("--workers", type=arguments.count("--workers", 64), default=min(4, os.cpu_count() or 1))
    arguments.add_threads_argument(p)
    p.add_argument("--single-head", action="store_true", help="drop the distillation head")
    p.add_argument("--seed", type=arguments.seed, default=0, metavar="N", help="seed for weights without checkpoint")
    p.add_argument("--out", type=Path, default=Path("results"), help="results directory (default: results/)")
    arguments.add_cache_dir_argument(p)
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the latest interrupted run of this same command in --out (finished models are kept)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_option_arguments(p)


def _open(backend_name: str, model, workload, cache_dir: Path, seed: int):
    """A session checked like every other (:func:`bench.core.interface.sessions.open_session`): parity failed
    is a failure."""
    backend = available_backend(backend_name)
    reason = backend.cannot_time_reason()
    if reason is not None:
        raise BenchError(f"--backend {backend_name} cannot run models here: {reason}")
    opened = open_session(backend, model, workload, cache_dir, seed=seed)
    session = opened.require()
    runtime = backend.label
    version = backend.runtime_version(backend.versions())
    return session, {"runtime": f"{runtime} {version}" if version else runtime, **opened.detail}


class ModelFailed(Exception):
    """The model itself could not be built or run: a failed result, the next model goes on."""


def _build(name: str, args, settings, data: Dataset):
    """(model, resolution, preprocessing, card, head size); :class:`ModelFailed` when the model is broken."""
    import models
    from bench.core.interface.settings import build_model
    from models.registry import get_preprocessing

    card = models.get_card(name)
    resolution = args.resolution or card.default_resolution
    models.check_resolution(card, resolution)
    pre = get_preprocessing(name).at(resolution)
    try:
        model = build_model(settings, name, resolution)
        classes = head_size(model, resolution, name)
    except (BenchError, CheckpointError):
        raise
    except Exception as exc:  # the factory raised, returned no network, or its forward fails
        raise ModelFailed(one_line(exc)) from None
    where = f"--data {shown(data.root)}" if data.classes is not None else f"--labels {shown(data.labels_file or '')}"
    check_classes(data.classes, data.layout, [item.label for item in data.items], classes, where, name)
    return model, resolution, pre, card, classes


Evaluation = tuple[str, str]
"""(runtime, precision): what scores the images once; a model's evaluations share every batch."""


def _open_all(
    name: str, model, resolution: int, classes: int, args, settings, evaluations: list[Evaluation]
) -> list[Tally]:
    tallies: list[Tally] = []
    for backend_name, precision in evaluations:
        options = backend_class(backend_name).Options.from_args(args, backend_name).items()
        workload = settings.workload(name, args.batch_size, resolution, options, precision=precision)
        try:
            session, detail = _open(backend_name, model, workload, args.cache_dir, settings.seed)
            tallies.append(Tally(backend_name, session, classes, detail, precision=precision))
        except BenchError:
            raise
        except Exception as exc:  # an export that fails or fails parity: this runtime is skipped, the others go on
            why = str(exc) if isinstance(exc, SessionRefused) else one_line(exc)
            print(f"{name} on {backend_name} {precision}: failed: {why}", file=sys.stderr)
            tallies.append(Tally(backend_name, None, classes, {}, error=why, precision=precision))
    return tallies


def _resume_key(args, names: list[str], evaluations: list[Evaluation], fingerprint: dict[str, object],
                checkpoint) -> str:  # fmt: skip
    """Everything that decides the scores: a run continues only a run with the same key."""
    backends = list(dict.fromkeys(b for b, _ in evaluations))
    options = {k: str(v) for k, v in sorted(vars(args).items()) if k.startswith(tuple(f"{b}_" for b in backends))}
    key = {
        "listing": fingerprint.get("listing_sha256"),
        "labels": fingerprint.get("labels_sha256"),
        "limit": args.limit,
        "models": names,
        "backends": backends,
        "device": args.device,
        "evaluations": [list(e) for e in evaluations],
        "calibration": str(args.calibration.resolve()) if args.calibration else None,
        "calibration_images": args.calibration_images,
        "batch": args.batch_size,
        "resolution": args.resolution,
        "checkpoint": checkpoint["sha256"] if checkpoint else None,
        "seed": args.seed,
        "single_head": args.single_head,
        "skip_unreadable": args.skip_unreadable,
        "options": options,
    }
    return json_digest(key)


def _previous_run(out: Path, key: str) -> tuple[Path, AccuracyDocument] | None:
    """The latest accuracy run in ``out`` with this resume key."""
    found = []
    for path in out.glob(f"*/{RESULT_FILE}"):
        document = load_document(path)
        if document is not None and document.resume_key == key:
            found.append((path.stat().st_mtime, path.parent, document))
    if not found:
        return None
    _, run_dir, document = max(found, key=lambda f: f[0])
    return run_dir, document


def _partial(run_dir: Path, name: str, evaluations: list[Evaluation]) -> dict[str, object] | None:
    try:
        state = parse_document((run_dir / PARTIAL_FILE).read_text(encoding="utf-8"), "json")
    except (OSError, ValueError):
        return None
    if not isinstance(state, dict) or state.get("model") != name:
        return None
    if [(t.get("backend"), t.get("precision", "fp32")) for t in state.get("tallies", [])] != evaluations:
        return None
    return state


def _result(name, card, tally: Tally, baseline: Tally | None, progress: Progress, seconds, args, settings, pre,
            checkpoint, imagenet: bool) -> AccuracyResult:  # fmt: skip
    top1 = tally.percent(tally.top1) if tally.error is None else None
    top5 = tally.percent(tally.top5) if tally.error is None and tally.num_classes >= 5 else None
    baseline_top1 = baseline.percent(baseline.top1) if baseline is not None else None
    paired = paired_drop(baseline, tally) if baseline is not None and top1 is not None else None
    return AccuracyResult(
        model=name,
        family=card.family,
        backend=tally.backend,
        status="ok" if tally.error is None else "failed",
        error=tally.error,
        **workload_facts(settings.workload(name, args.batch_size, pre.crop, precision=tally.precision)),
        backend_detail=tally.detail,
        preprocessing=pre.as_dict(),
        weights=settings.weights,
        checkpoint=checkpoint,
        images=int(tally.images.sum()),
        skipped_unreadable=len(progress.skipped),
        skipped_examples=progress.skipped[:20],
        classes=tally.num_classes,
        correct_top1=int(tally.top1.sum()),
        correct_top5=int(tally.top5.sum()),
        top1=top1,
        top5=top5,
        baseline_backend=baseline.backend if baseline is not None else None,
        baseline_precision=baseline.precision if baseline is not None else None,
        top1_drop=None if top1 is None or baseline_top1 is None else round(baseline_top1 - top1, 4),
        top1_drop_ci_low=round(paired[1], 4) if paired else None,
        top1_drop_ci_high=round(paired[2], 4) if paired else None,
        top1_changed=paired[3] if paired else None,
        published_top1=card.top1,
        published_top1_source=card.top1_source or None,
        imagenet_top1=imagenet and top1 is not None,
        data_content_sha256=progress.content,
        seconds=round(seconds, 3),
        predict_seconds=round(tally.seconds, 6),
        images_per_s=tally.images_per_s(),
        timestamp=timestamp(),
    )


def _failed(name: str, evaluations: list[Evaluation], error: str, args, settings) -> list[AccuracyResult]:
    import models

    try:
        card = models.get_card(name)
        family, published = card.family, card.top1
    except Exception:
        family, published = None, None
    return [
        AccuracyResult(
            model=name,
            family=family,
            backend=b,
            status="failed",
            error=error,
            **workload_facts(settings.workload(name, args.batch_size, settings.resolution, precision=p)),
            weights=settings.weights,
            published_top1=published,
            baseline_backend=None,  # no runtime evaluated the model, so none is its baseline
            timestamp=timestamp(),
        )
        for b, p in evaluations
    ]


def _checked_inputs(args: argparse.Namespace):
    """(evaluations, data set, the images to score, settings), every value checked before any model loads.

    Each runtime scores every precision of ``--precision`` it runs here; one it cannot run is left out, said on
    stderr (a runtime that runs none of them is bad input, as in ``run``)."""
    backends = backend_list(args.backend)
    data = scan(args.data, args.labels)  # bad data is reported before torch and the models load
    if data.unreadable and not args.skip_unreadable:
        path, why = data.unreadable[0]
        raise BenchError(f"cannot read image {shown(path)}: {why} (fix or remove it, or pass --skip-unreadable)")
    items = subset(data.items, args.limit)
    from bench.core.interface import settings as setting

    # every value checked (e.g. --device cuda without a GPU, fp16 on a CPU) before any work
    settings = setting.from_args(
        args, available_backend(backends[0]), batch_sizes=(args.batch_size,), also=tuple(backends[1:]), check=False
    )
    evaluations: list[Evaluation] = []
    for backend_name in backends:
        options = backend_class(backend_name).Options.from_args(args, backend_name).items()
        runs, refused = setting.runnable_precisions(settings, available_backend(backend_name), options)
        if not runs:
            raise BenchError(next(iter(refused.values())))
        for precision, reason in refused.items():
            print(f"note: {reason}; {backend_name} scores no {precision}", file=sys.stderr)
        evaluations += [(backend_name, p) for p in runs]
    check_writable_dir(args.out, "--out")
    check_writable_dir(args.cache_dir, "--cache-dir")
    return evaluations, data, items, settings


def _checkpoint_facts(path: Path | None) -> dict[str, str] | None:
    if path is None:
        return None
    return {"path": shown(path.resolve()), "name": path.name, "sha256": sha256_file(path)}


class _Run:
    """One accuracy run: its folder, its document, its per-class lines, and how ``--resume`` continues it.

    The resume protocol:

    1. a run is known by its resume key (:func:`_resume_key`: data, models, runtimes, settings, weights);
    2. ``--resume`` continues the latest run in ``--out`` with the same key (:func:`_previous_run`);
       without one it starts afresh, saying so;
    3. a model that has results in the document is finished and skipped;
    4. the model in progress continues from its saved tallies (:data:`PARTIAL_FILE`, saved by
       :class:`_Saver` every few seconds and at Ctrl-C) when they are of the same model and runtimes;
    5. each finished model is written (``accuracy.json``, ``per_class.csv``) before the next starts;
       the partial file goes when every model is done.
    """

    def __init__(self, directory: Path, document: AccuracyDocument, resumed: bool) -> None:
        self.directory, self.document, self.resumed = directory, document, resumed
        self.per_class = _read_per_class(directory) if resumed else []
        self.in_progress: _Saver | None = None

    @classmethod
    def open(cls, args: argparse.Namespace, key: str, data: Dataset, fingerprint: dict, items, settings) -> _Run:
        previous = _previous_run(args.out, key) if args.resume else None
        if args.resume and previous is None:
            note = f"note: --resume: no earlier run of this command in {shown(args.out)}; starting afresh"
            print(note, file=sys.stderr)
        if previous is not None:
            print(f"resuming {shown(previous[0])}", file=sys.stderr)
            return cls(*previous, resumed=True)
        from bench.core.records import environment

        env = environment.collect({"device": args.device, "threads": settings.threads})
        run_dir = new_run_dir(Path(args.out), "accuracy")  # two runs of one process in a second get two folders
        shared = ("env_id", "hostname", "cpu_model", "gpu_name", "os", "python", "versions", "git_commit")
        document = AccuracyDocument(
            run_id=run_dir.name,
            environment={k: env.get(k) for k in shared},
            data={
                **fingerprint,
                "limit": args.limit,
                "evaluated": len(items),
                "not_files": [shown(p) for p, _ in data.unreadable],
            },
            resume_key=key,
        )
        _write(run_dir, document)
        return cls(run_dir, document, resumed=False)

    def finished(self, name: str) -> bool:
        return any(r.model == name for r in self.document.results)

    def restore(self, name: str, evaluations: list[Evaluation], tallies: list[Tally]) -> Progress:
        """The progress of ``name`` so far (its saved tallies restored into ``tallies``), or a fresh one."""
        saved = _partial(self.directory, name, evaluations) if self.resumed else None
        if saved is None:
            return Progress()
        for tally, tally_state in zip(tallies, saved["tallies"], strict=True):  # type: ignore[arg-type]
            tally.restore(tally_state)
        progress = Progress.restore(saved["progress"])  # type: ignore[arg-type]
        print(f"{name}: {progress.position} image(s) resumed", file=sys.stderr)
        return progress

    def add(self, results: list[AccuracyResult], per_class: list[dict[str, object]] | None = None) -> None:
        """Record a finished model and write it out before the next model starts."""
        self.document.results.extend(results)
        self.per_class.extend(per_class or [])
        _write(self.directory, self.document, self.per_class if per_class is not None else None)

    def interrupted(self, exc: KeyboardInterrupt) -> int:
        """Ctrl-C or SIGTERM: save the model in progress, say what is kept; exit status 130 (143)."""
        kept = ""
        if self.in_progress is not None:
            self.in_progress.save()
            position = self.in_progress.state["progress"]["position"]  # type: ignore[index]
            kept = f"{position} image(s) of {self.in_progress.name} scored so far and "
        print(
            f"{stop_word(exc)}: {kept}{len({r.model for r in self.document.results})} finished model(s) are saved "
            f"in {shown(self.directory)}; run the same command with --resume to continue from there",
            file=sys.stderr,
        )
        return stop_status(exc)

    def done(self) -> int:
        """Every model finished: drop the partial file, print the table; 1 if any result failed."""
        (self.directory / PARTIAL_FILE).unlink(missing_ok=True)
        print(_table(self.document.results))
        print(f"results: {shown(self.directory)}")
        return 1 if any(r.status != "ok" for r in self.document.results) else 0


def main(args: argparse.Namespace) -> int:
    evaluations, data, items, settings = _checked_inputs(args)
    import torch

    torch.set_num_threads(settings.threads)
    checkpoint = _checkpoint_facts(args.checkpoint)
    fingerprint = data.fingerprint()
    key = _resume_key(args, list(settings.model_names), evaluations, fingerprint, checkpoint)
    run = _Run.open(args, key, data, fingerprint, items, settings)
    try:
        for name in settings.model_names:
            if run.finished(name):
                print(f"{name}: already evaluated (--resume)", file=sys.stderr)
                continue
            _evaluate_model(name, run, args, settings, evaluations, data, items, checkpoint)
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM
        return run.interrupted(exc)
    return run.done()


def _evaluate_model(name: str, run: _Run, args, settings, evaluations: list[Evaluation], data: Dataset, items,
                    checkpoint) -> None:  # fmt: skip
    """Score ``name`` on every runtime and precision over the same batches and add its results to ``run``."""
    from models.registry import is_external

    try:
        model, resolution, pre, card, classes = _build(name, args, settings, data)
    except ModelFailed as exc:
        print(f"{name}: failed: {exc}", file=sys.stderr)
        run.add(_failed(name, evaluations, str(exc), args, settings))
        return
    if settings.checkpoint is None and not is_external(name):
        print(f"warning: {name} has no --checkpoint: random weights score at chance (seed {settings.seed})",
              file=sys.stderr)  # fmt: skip
    tallies = _open_all(name, model, resolution, classes, args, settings, evaluations)
    progress = run.restore(name, evaluations, tallies)
    seconds = _score(name, run, tallies, progress, pre, args, items)
    scored = max((int(t.images.sum()) for t in tallies), default=0)
    if scored == 0 and progress.skipped:
        raise BenchError(
            f"no image of --data {shown(data.root)} could be read ({len(progress.skipped)} skipped, "
            f"e.g. {progress.skipped[0]}): nothing was scored"
        )
    progress.skipped = [*(shown(p) for p, _ in data.unreadable), *progress.skipped]
    real_weights = settings.checkpoint is not None or is_external(name)
    imagenet = data.is_imagenet_val(len(items)) and not progress.skipped and real_weights
    baseline = next((t for t in tallies if t.error is None), None)  # the first evaluation that scored it
    results = [
        _result(name, card, tally, baseline, progress, seconds, args, settings, pre, checkpoint, imagenet)
        for tally in tallies
    ]
    run.add(results, _per_class_rows(name, tallies, data))  # on disk before the next model starts
    run.in_progress = None
    if progress.skipped:
        print(f"{name}: skipped {len(progress.skipped)} unreadable image(s), e.g. {progress.skipped[0]}",
              file=sys.stderr)  # fmt: skip


def _score(name: str, run: _Run, tallies: list[Tally], progress: Progress, pre, args, items) -> float:
    """Run the images through every open runtime (saving as it goes); the seconds it took."""
    from tqdm import tqdm

    bar = tqdm(total=len(items), initial=progress.position, unit="img", desc=name,
               disable=args.no_progress, file=sys.stderr, dynamic_ncols=True)  # fmt: skip
    run.in_progress = saver = _Saver(run.directory, name, tallies, progress, bar)
    started = time.perf_counter()
    try:
        evaluate(
            items,
            pre,
            tallies,
            progress,
            batch_size=args.batch_size,
            workers=args.workers,
            skip_unreadable=args.skip_unreadable,
            on_batch=saver,
            warn=saver.warn,
        )
    finally:
        bar.close()
        for tally in tallies:
            if tally.session is not None:
                tally.session.close()
    return time.perf_counter() - started


class _Saver:
    """Called after each batch: keeps the last consistent state of the model in progress and saves it
    every :data:`SAVE_EVERY_S` seconds (and, through :meth:`save`, at an interrupt)."""

    def __init__(self, run_dir: Path, name: str, tallies: list[Tally], progress: Progress, bar) -> None:
        self.run_dir, self.name, self.tallies, self.progress, self.bar = run_dir, name, tallies, progress, bar
        self.state = self._snapshot()
        self.saved_at = time.monotonic()

    def _snapshot(self) -> dict[str, object]:
        return {"model": self.name, "progress": self.progress.state(), "tallies": [t.state() for t in self.tallies]}

    def __call__(self, images: int) -> None:
        self.state = self._snapshot()
        pause.point("batch")
        self.bar.update(images)
        top1 = [(t.name, t.percent(t.top1)) for t in self.tallies]
        self.bar.set_postfix_str(" ".join(f"{b} top1 {p:.2f}%" for b, p in top1 if p is not None))
        if time.monotonic() - self.saved_at > SAVE_EVERY_S:
            self.save()

    def warn(self, line: str) -> None:
        self.bar.write(f"{self.name} on {line}", file=sys.stderr)

    def save(self) -> None:
        try:
            atomic_write_text(self.run_dir / PARTIAL_FILE, json.dumps(self.state) + "\n")
        except OSError as exc:
            raise BenchError(f"cannot write results to {shown(self.run_dir)}: {exc.strerror or exc}") from None
        self.saved_at = time.monotonic()


def _per_class_rows(name: str, tallies: list[Tally], data: Dataset) -> list[dict[str, object]]:
    names = [shown(c) for c in data.classes] if data.classes is not None else []
    rows: list[dict[str, object]] = []
    for tally in tallies:
        if tally.error is not None:
            continue
        for i in tally.images.nonzero()[0]:
            rows.append(
                {
                    "model": name,
                    "backend": tally.backend,
                    "precision": tally.precision,
                    "class_index": int(i),
                    "class_name": names[i] if i < len(names) else str(i),
                    "images": int(tally.images[i]),
                    "correct_top1": int(tally.top1[i]),
                    "correct_top5": int(tally.top5[i]),
                }
            )
    return rows


def _read_per_class(run_dir: Path) -> list[dict[str, object]]:
    try:
        with open(run_dir / PER_CLASS_FILE, encoding="utf-8", newline="") as f:
            return list(csv.DictReader(f))
    except OSError:
        return []


def _write(run_dir: Path, document: AccuracyDocument, per_class: list[dict[str, object]] | None = None) -> None:
    import pandas as pd

    from bench.core.report.formatting import csv_text

    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run_dir / RESULT_FILE, document.to_json())
        if per_class is not None:
            frame = pd.DataFrame(per_class, columns=list(PER_CLASS_COLUMNS))
            atomic_write_text(run_dir / PER_CLASS_FILE, csv_text(frame))
    except OSError as exc:
        raise BenchError(f"cannot write results to {shown(run_dir)}: {exc.strerror or exc}") from None


def _fmt(value: object, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float | int) and not isinstance(value, bool) else str(value)


def _drop(r: AccuracyResult) -> str:
    """``0.50 [-0.20, 1.20]``: the top-1 drop against the baseline with its paired interval ('-' for the
    baseline itself)."""
    if r.top1_drop is None or (r.backend, r.precision) == (r.baseline_backend, r.baseline_precision or "fp32"):
        return "-"
    if r.top1_drop_ci_low is None or r.top1_drop_ci_high is None:
        return _fmt(r.top1_drop)
    return f"{_fmt(r.top1_drop)} [{_fmt(r.top1_drop_ci_low)}, {_fmt(r.top1_drop_ci_high)}]"


def _table(results: list[AccuracyResult]) -> str:
    import pandas as pd

    from bench.core.report.formatting import text_table

    rows = [
        {
            "model": r.model,
            "backend": r.backend,
            "precision": r.precision,
            "status": r.status,
            "images": r.images,
            "top1 %": _fmt(r.top1),
            "top5 %": _fmt(r.top5),
            "drop": _drop(r),
            "published": _fmt(r.published_top1),
            "img/s": _fmt(r.images_per_s, 1),
        }
        for r in results
    ]
    return text_table(pd.DataFrame(rows))
